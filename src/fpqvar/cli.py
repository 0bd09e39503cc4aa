"""The `fpqvar` command line."""

from __future__ import annotations

import argparse
import sys

from . import __version__


def _formats(args: argparse.Namespace) -> int:
    from .formats import FORMATS, describe

    columns = ["format", "bits", "exponent_bits", "mantissa_bits", "bias", "min", "max", "levels"]
    rows = [describe(f) for f in FORMATS.values()]
    print("\t".join(columns))
    for row in rows:
        print("\t".join(str(row.get(c, "")) for c in columns))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fpqvar", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fpqvar {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("formats", help="list the number formats and their ranges").set_defaults(run=_formats)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
