"""Write files so that an interrupted run never leaves a half-written one: temp file, then rename.

What a write through `atomic_path` guarantees:

- the target is a regular file or nothing: a directory, device, FIFO or socket at the path is refused
  (`UserInputError`), never replaced;
- a symlink is followed: its target file is written (replaced atomically) and the link itself stays;
- a new file gets the permissions the umask allows (``0o666 & ~umask``, as `open` would give); a replaced file keeps
  its mode;
- the temporary file is ``.<name>.<random>.tmp`` beside the target: hidden, and with a suffix no reader reads, so
  globbing ``*.png`` never finds one; `remove_leftovers` deletes those an interrupted run left behind.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import re
import stat
import tempfile

from .errors import UserInputError

TEMP_SUFFIX = ".tmp"


def _umask() -> int:
    """The process's umask: read from /proc on Linux; elsewhere set and put straight back (the only portable way)."""
    try:
        for line in pathlib.Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _regular_target(path: str | os.PathLike) -> pathlib.Path:
    """``path`` with symlinks followed; refused (`UserInputError`) when it is a directory, device, FIFO or socket."""
    path = pathlib.Path(os.path.realpath(path))
    if path.exists() and not path.is_file():
        raise UserInputError(f"{path} is {_kind(path.stat().st_mode)}; give the path of a regular file to write")
    return path


def writable_target(path: str | os.PathLike) -> pathlib.Path:
    """The file a write to ``path`` lands in (a symlink's target), after checking that it can be written there:
    call it before long work whose result goes to ``path``.

    Raises `UserInputError` when the path (or its symlink's target) is a directory, device, FIFO or socket, when a
    parent is not a folder, or when the nearest existing folder does not accept a new file. Nothing is left behind:
    the probe file is removed and no folder is created."""
    path = _regular_target(path)
    folder = path.parent
    while not folder.exists():
        folder = folder.parent
    if not folder.is_dir():
        raise UserInputError(f"cannot write {path}: {folder} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".fpqvar-probe.", suffix=TEMP_SUFFIX)
    except OSError as error:
        raise UserInputError(f"cannot write {path}: {folder} does not accept new files ({error.strerror})") from None
    os.close(fd)
    os.unlink(probe)
    return path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path`` (a symlink's target); it replaces that file only if the block succeeds."""
    path = _regular_target(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMP_SUFFIX)
    os.close(fd)
    try:
        yield pathlib.Path(tmp)
        mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def temp_pattern(name_pattern: str) -> re.Pattern:
    """The names of `atomic_path`'s temporary files for targets whose names match the regex ``name_pattern``."""
    return re.compile(rf"\.{name_pattern}\.[^/]+")


def remove_leftovers(folder: str | os.PathLike, name_pattern: str) -> list[pathlib.Path]:
    """Delete the temporary files an interrupted `atomic_path` left in ``folder`` for targets matching the regex
    ``name_pattern`` (also those of older versions, which kept the target's suffix); returns what was deleted."""
    folder, pattern = pathlib.Path(folder), temp_pattern(name_pattern)
    if not folder.is_dir():
        return []
    removed = [f for f in folder.iterdir() if pattern.fullmatch(f.name) and f.is_file()]
    for f in removed:
        f.unlink()
    return removed
