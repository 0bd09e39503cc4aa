"""Low-bit backend (issue 17): packed checkpoints (CPU) and the CUDA kernels (skipped without CUDA + Triton)."""

import json

import pytest
import torch
from tiny_models import tiny_pair

from fpqvar.checkpoints import save_safetensors
from fpqvar.formats import DualFormat, get_format
from fpqvar.loading import load_var
from fpqvar.lowbit import (
    HAVE_TRITON,
    load_packed_var,
    pack_nibbles,
    packed_layers,
    packed_size_bytes,
    save_packed,
    unpack_nibbles,
)
from fpqvar.methods import get_recipe, quantize_model
from fpqvar.model import VAR, released_var_config
from fpqvar.quant import PerGroup, dequantize, fake_quantize, quantize

CUDA = torch.cuda.is_available() and HAVE_TRITON
needs_cuda = pytest.mark.skipif(not CUDA, reason="low-bit kernels need a CUDA GPU and Triton (CPU CI checks packing only)")


def _lambdas(var, seed=0):
    g = torch.Generator().manual_seed(seed)
    C = var.config.C
    return {f"blocks.{i}.{k}": torch.rand(C, generator=g) + 0.5 for i in range(len(var.blocks)) for k in ("attn.mat_qkv", "ffn.fc1")}


def _quantized_tiny(recipe="fp4_fpqvar", width=128):
    vae, var = tiny_pair(width=width)
    r = get_recipe(recipe)
    return vae, quantize_model(var, r, _lambdas(var) if r.galt else None)


def test_pack_unpack_round_trips_every_code_pair():
    codes = torch.cartesian_prod(torch.arange(16), torch.arange(16)).to(torch.uint8).reshape(2, 256)
    packed = pack_nibbles(codes)
    assert packed.shape == (2, 128) and packed.dtype == torch.uint8
    assert torch.equal(unpack_nibbles(packed), codes)
    assert sorted(packed.reshape(-1).tolist()) == list(range(256))  # every byte value, once: the map is a bijection
    assert packed[0, 0] == (codes[0, 0] | codes[0, 1] << 4)  # low nibble first
    with pytest.raises(ValueError, match="0..15"):
        pack_nibbles(torch.tensor([16, 0], dtype=torch.uint8))
    with pytest.raises(ValueError, match="even"):
        pack_nibbles(torch.zeros(3, dtype=torch.uint8))


@pytest.mark.parametrize("fmt", ["fp4_e2m1", "fp4_e1m2", "fp4_e3m0", "dfq_e1m2neg_e2m1pos"])
def test_every_fp4_code_survives_packing_and_dequantizes_exactly(fmt):
    f = get_format(fmt)
    x = torch.randn(8, 256) * 3
    x[0, :16] = f.values_by_code.float() * (x[0].abs().max() / f.max_value)  # every code in one group
    q = quantize(x, f, PerGroup(128))
    assert len(set(q.codes.reshape(-1).tolist())) >= 15  # every code occurs (a dual format has one zero)
    assert torch.equal(unpack_nibbles(pack_nibbles(q.codes)), q.codes)


@pytest.mark.parametrize("recipe", ["fp4_fpqvar", "fp4_baseline", "fp4_dfq_ht"])
def test_packed_checkpoint_reloads_to_the_same_logits(tmp_path, recipe):
    vae, var = _quantized_tiny(recipe)
    record = save_packed(var, tmp_path / "p.safetensors")
    assert len(record["layers"]) == 4 * len(var.blocks)  # mat_qkv, proj, fc1, fc2 of every block
    reloaded = load_var(tmp_path / "p.safetensors")  # the dispatching loader reads packed files
    a, b = var.state_dict(), reloaded.state_dict()
    assert set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(1)
    labels = torch.tensor([1, 3])
    x = torch.randn(2, var.config.num_tokens - 1, var.Cvae)
    with torch.no_grad():  # every token's logits (same tensors, same recipe: sampling follows)
        assert torch.equal(var(labels, x), reloaded(labels, x))


def test_packed_file_holds_codes_not_floats_and_lists_high_precision(tmp_path):
    from safetensors import safe_open

    _, var = _quantized_tiny()
    save_packed(var, tmp_path / "p.safetensors")
    with safe_open(str(tmp_path / "p.safetensors"), framework="pt") as f:
        keys, record = set(f.keys()), json.loads(f.metadata()["fpqvar_packed"])
        codes = f.get_tensor("blocks.0.ffn.fc2.weight_codes")
    assert "blocks.0.ffn.fc2.weight" not in keys and codes.dtype == torch.uint8 and codes.shape == (128, 256)
    assert "blocks.0.ada_lin.1.weight" in record["high_precision"] and "head.weight" in record["high_precision"]
    assert set(record["high_precision"]) | {k for k in keys if ".weight_" in k} == keys
    size = packed_size_bytes(var)
    file_size = (tmp_path / "p.safetensors").stat().st_size
    assert size["total"] < file_size < size["total"] + 64 * 1024  # tensors + JSON header
    # the four quantized linears per block shrink about 8x (fp32 -> 4 bits, plus one fp32 scale per 128)
    fp32_bytes = sum(4 * var.get_submodule(name).weight.numel() for name in packed_layers(var))
    assert 7 * size["packed_weights"] < fp32_bytes < 8 * size["packed_weights"]


def test_packed_checkpoint_is_refused_for_unquantized_or_unpackable_models(tmp_path):
    _, var = tiny_pair()
    with pytest.raises(ValueError, match="not quantized"):
        save_packed(var, tmp_path / "p.safetensors")
    _, var6 = _quantized_tiny("fp6_fpqvar")
    assert packed_layers(var6) == {}  # FP6 per channel does not pack into nibbles: stays high precision, listed
    record = save_packed(var6, tmp_path / "p6.safetensors")
    assert record["layers"] == {} and "blocks.0.ffn.fc2.weight" in record["high_precision"]
    from fpqvar.methods import save_quantized

    save_quantized(var6, tmp_path / "fake.safetensors")
    with pytest.raises(ValueError, match="not a packed"):
        load_packed_var(tmp_path / "fake.safetensors")


@pytest.mark.parametrize("fmt", ["fp4_e2m1", "fp4_e1m2", "fp4_e3m0"])
def test_codes_are_recovered_exactly_from_fake_quantized_weights(fmt):
    from fpqvar.lowbit.codes import recover_codes

    w = torch.randn(256, 512) * 0.02
    w[3, :128] = 0  # an all-zero group
    fake = fake_quantize(w, fmt, PerGroup(128))
    q = recover_codes(fake, fmt, 128)
    assert torch.equal(dequantize(q), fake)
    assert torch.equal(q.codes, quantize(w, fmt, PerGroup(128)).codes.to(torch.uint8))
    with pytest.raises(ValueError, match="groups"):
        recover_codes(w, fmt, 128)  # not fake-quantized: refused, never silently rounded


def test_d30_fp4_fpqvar_packed_size_from_a_meta_model():
    with torch.device("meta"):
        var = VAR(released_var_config("d30"))
        lambdas = {f"blocks.{i}.{k}": torch.ones(1920) for i in range(30) for k in ("attn.mat_qkv", "ffn.fc1")}
        quantize_model(var, get_recipe("fp4_fpqvar"), lambdas)
    params = sum(p.numel() for p in var.state_dict().values())
    fp32 = packed_size_bytes(var)
    bf16 = packed_size_bytes(var, high_precision_dtype=torch.bfloat16)
    quantized = 30 * 12 * 1920**2  # mat_qkv 3C^2 + proj C^2 + fc1 4C^2 + fc2 4C^2 per block
    assert fp32["packed_weights"] == quantized // 2 + quantized // 128 * 4  # codes + one fp32 scale per group
    assert 1.9e9 < params < 2.1e9
    assert fp32["packed_weights"] <= 1.3e9  # the target for the quantized part
    # what stays high precision: mostly the 30 AdaLN linears (6C x C each) -> listed by the checkpoint
    assert bf16["high_precision"] == pytest.approx(2 * (params - quantized), rel=1e-3)


def test_cli_quantize_packed_then_sample_fake(tmp_path):
    from fpqvar.cli import main

    vae, var = tiny_pair(width=384)
    save_safetensors(var, tmp_path / "var.safetensors")
    save_safetensors(vae, tmp_path / "vae.safetensors")
    assert main(["quantize", "--var", str(tmp_path / "var.safetensors"), "--recipe", "fp4_dfq_ght", "--packed",
                 "--out", str(tmp_path / "q.safetensors")]) == 0
    direct = quantize_model(tiny_pair(width=384)[1], get_recipe("fp4_dfq_ght")).state_dict()
    reloaded = load_var(tmp_path / "q.safetensors").state_dict()
    assert set(direct) == set(reloaded) and all(torch.equal(direct[k], reloaded[k]) for k in direct)
    assert main(["sample", "--var", str(tmp_path / "q.safetensors"), "--vae", str(tmp_path / "vae.safetensors"),
                 "--out", str(tmp_path / "s"), "--classes", "0", "--per-class", "1", "--batch-size", "1",
                 "--dtype", "fp32", "--device", "cpu", "--quiet", "--backend", "fake"]) == 0
    lowbit = ["sample", "--var", str(tmp_path / "q.safetensors"), "--vae", str(tmp_path / "vae.safetensors"),
              "--out", str(tmp_path / "s2"), "--classes", "0", "--per-class", "1", "--batch-size", "1", "--quiet",
              "--backend", "lowbit"]
    assert main([*lowbit, "--dtype", "fp16"]) == 2  # the kernels emulate bf16 (or fp32) quantizer arithmetic only
    assert main([*lowbit, "--dtype", "bf16", "--device", "cpu"]) == 2  # needs a CUDA GPU (and Triton): refused


@needs_cuda
def test_cli_quantize_packed_then_sample_lowbit_on_the_gpu(tmp_path):
    """The README's low-bit sequence end to end through the command line: packed file in, PNGs out, each image
    once, and a second run of the same command resumes (nothing left to do, the same files)."""
    from fpqvar.cli import main

    vae, var = tiny_pair(width=384)
    save_safetensors(var, tmp_path / "var.safetensors")
    save_safetensors(vae, tmp_path / "vae.safetensors")
    assert main(["quantize", "--var", str(tmp_path / "var.safetensors"), "--recipe", "fp4_dfq_ght", "--packed",
                 "--out", str(tmp_path / "q.safetensors")]) == 0
    command = ["sample", "--var", str(tmp_path / "q.safetensors"), "--vae", str(tmp_path / "vae.safetensors"),
               "--out", str(tmp_path / "s"), "--classes", "0-1", "--per-class", "2", "--batch-size", "2", "--quiet",
               "--backend", "lowbit", "--dtype", "bf16", "--device", "cuda"]
    assert main(command) == 0
    images = sorted(p.name for p in (tmp_path / "s").glob("*.png"))
    assert images == [f"class{c}_img{i}.png" for c in (0, 1) for i in (0, 1)]
    before = {name: (tmp_path / "s" / name).read_bytes() for name in images}
    assert main(command) == 0
    assert {name: (tmp_path / "s" / name).read_bytes() for name in images} == before


# ---------------------------------------------------------------- CUDA: kernels against the fake quantizer

def _tie_inputs(fmt, rows=64):
    """Groups whose scale is exactly 1 (absmax = max_value) holding every grid value, every midpoint between
    neighbours (ties) and values just beside them, so rounding and tie-breaking are both exercised."""
    f = get_format(fmt)
    grid = f.grid.float()
    mids = (grid[1:] + grid[:-1]) / 2
    near = torch.cat([mids * (1 + 2.0**-7), mids * (1 - 2.0**-7)])
    values = torch.cat([grid, mids, near])
    g = torch.Generator().manual_seed(0)
    x = values[torch.randint(0, values.numel(), (rows, 256), generator=g)]
    x[:, 0], x[:, 128] = f.max_value, f.max_value
    if isinstance(f, DualFormat):
        x[:, 1], x[:, 129] = f.min_value, f.min_value
    return x.to(torch.bfloat16)


def _kernel_levels(codes, m, dual):
    c = codes[:m].float()
    if dual:
        c = c.reshape(m, -1, 2, 128)
        return c[:, :, 0].reshape(m, -1), c[:, :, 1].reshape(m, -1)
    return c, None


@needs_cuda
@pytest.mark.parametrize("fmt", ["fp4_e2m1", "fp4_e1m2", "fp4_e3m0", "dfq_e1m2neg_e2m1pos"])
@pytest.mark.parametrize("inputs", ["random", "ties"])
def test_activation_kernel_codes_and_scales_equal_the_fake_quantizer(fmt, inputs):
    from fpqvar.lowbit.kernels import quantize_activation

    torch.manual_seed(0)
    x = (torch.randn(333, 512) * 2).to(torch.bfloat16) if inputs == "random" else _tie_inputs(fmt)
    x = x.cuda()
    f = get_format(fmt)
    codes, scales = quantize_activation(x, fmt)
    q = quantize(x, f, PerGroup(128))  # eager, on the GPU: the quantizer's own arithmetic
    levels = f.decode(q.codes).float()
    m = x.shape[0]
    neg, pos = _kernel_levels(codes, m, isinstance(f, DualFormat))
    if pos is None:
        assert torch.equal(neg, levels)
        assert torch.equal(scales[:m], q.scale.float())
    else:
        assert torch.equal(neg, torch.where(levels <= 0, levels, 0)) and torch.equal(pos, torch.where(levels > 0, levels, 0))
        assert torch.equal(scales[:m, 0::2], q.negative_scale.float()) and torch.equal(scales[:m, 1::2], q.scale.float())
    assert (codes[m:].float() == 0).all()
    # and the dequantized values equal the fake quantizer's output (bf16) bit for bit
    s = scales[:m].repeat_interleave(128, 1)
    if pos is None:
        dequantized = (neg * s).to(torch.bfloat16)
    else:
        sn, sp = scales[:m, 0::2].repeat_interleave(128, 1), scales[:m, 1::2].repeat_interleave(128, 1)
        dequantized = torch.where(pos > 0, pos * sp, neg * sn).to(torch.bfloat16)
    assert torch.equal(dequantized, fake_quantize(x, f, PerGroup(128)))


@needs_cuda
def test_activation_kernel_with_fused_ght_matches_rotation_then_quantizer():
    """Inputs k / 4 (|k| <= 8) make every product with the bf16 Hadamard entries and every partial sum exact in
    float32, so tl.dot and cuBLAS give the same bf16 rotation whatever their summation order: the codes and
    scales must then equal the quantizer's on the autocast rotation bit for bit."""
    from fpqvar.lowbit.kernels import quantize_activation
    from fpqvar.rotation import orthogonal_hadamard

    g = torch.Generator().manual_seed(0)
    x = (torch.randint(-8, 9, (300, 1920), generator=g).float() / 4).cuda()
    r = orthogonal_hadamard(128, 0).float().cuda()
    codes, scales = quantize_activation(x, "fp4_e2m1", r.to(torch.bfloat16))
    with torch.autocast("cuda", dtype=torch.bfloat16):
        rotated = (x.reshape(300, 15, 128) @ r).reshape(300, 1920)
    q = quantize(rotated, "fp4_e2m1", PerGroup(128))
    assert torch.equal(codes[:300].float(), get_format("fp4_e2m1").decode(q.codes).float())
    assert torch.equal(scales[:300], q.scale.float())


def _dequantized_weight_and_kernel_operands(N, K, seed=0):
    torch.manual_seed(seed)
    w = torch.randn(N, K, device="cuda") * 0.02
    q = quantize(w, "fp4_e2m1", PerGroup(128))
    levels = get_format("fp4_e2m1").decode(q.codes).float()
    exact = levels.double() * q.scale.double().repeat_interleave(128, 1)
    return exact, pack_nibbles(q.codes), levels.to(torch.float8_e4m3fn), q.scale.float().t().contiguous()


def _activation_operand_and_its_exact_value(M, K, fmt):
    """Codes and scales of a random (M, K) bf16 activation (GELU outputs for DFQ, as FC2 sees) from the kernel,
    and the float64 value they stand for, a dual format's two parts per group summed back to width K."""
    from fpqvar.lowbit.kernels import quantize_activation

    x = torch.randn(M, K, device="cuda").to(torch.bfloat16)
    if fmt.startswith("dfq"):
        x = torch.nn.functional.gelu(x.float(), approximate="tanh").to(torch.bfloat16)
    codes, scales = quantize_activation(x, fmt)
    exact = codes[:M].double() * scales[:M].double().repeat_interleave(128, 1)
    if exact.shape[1] == 2 * K:
        exact = exact.reshape(M, K // 128, 2, 128).sum(2).reshape(M, K)
    return codes, scales, exact


@needs_cuda
@pytest.mark.parametrize("shape", [(2, 1920, 5760), (333, 1920, 7680), (1024, 7680, 1920)])
@pytest.mark.parametrize("gemm", ["triton_packed", "triton_fp8", "scaled_mm"])
@pytest.mark.parametrize("fmt", ["fp4_e2m1", "dfq_e1m2neg_e2m1pos"])
def test_gemms_equal_the_float64_product_of_dequantized_operands(shape, gemm, fmt):
    from fpqvar.lowbit.kernels import blockwise_scaled_mm, group_scaled_gemm, repeat_groups

    M, K, N = shape
    exact_w, w_packed, w_fp8, w_scales = _dequantized_weight_and_kernel_operands(N, K)
    codes, scales, a_exact = _activation_operand_and_its_exact_value(M, K, fmt)
    bias = torch.randn(N, device="cuda")
    if gemm == "scaled_mm":
        w, s = repeat_groups(w_fp8, w_scales) if fmt.startswith("dfq") else (w_fp8, w_scales)
        out = blockwise_scaled_mm(codes, scales, w, s, M, bias, out_dtype=torch.float32)
    else:
        packed = gemm == "triton_packed"
        out = group_scaled_gemm(codes, scales, w_packed if packed else w_fp8, w_scales, M, bias, packed_b=packed,
                                out_dtype=torch.float32)
    reference = a_exact @ exact_w.t() + bias.double()
    error = ((out.double() - reference).norm() / reference.norm()).item()
    worst = ((out.double() - reference).abs().max() / reference.abs().max()).item()
    print(f"gemm {shape} {fmt} {gemm}: relative error {error:.2e}, worst element / max {worst:.2e}")
    assert error < 1e-5 and worst < 1e-4  # float32 output: only the tensor cores' accumulation error remains


@needs_cuda
@pytest.mark.parametrize("fmt", ["fp4_e2m1", "dfq_e1m2neg_e2m1pos"])
def test_scaled_mm_bf16_output_adds_the_bias_before_its_one_rounding(fmt):
    from fpqvar.lowbit.kernels import blockwise_scaled_mm, repeat_groups

    M, K, N = 1024, 1920, 1920
    exact_w, _, w_fp8, w_scales = _dequantized_weight_and_kernel_operands(N, K)
    if fmt.startswith("dfq"):
        w_fp8, w_scales = repeat_groups(w_fp8, w_scales)
    codes, scales, a_exact = _activation_operand_and_its_exact_value(M, K, fmt)
    bias = (torch.randn(N, device="cuda") * 4).to(torch.bfloat16)
    out = blockwise_scaled_mm(codes, scales, w_fp8, w_scales, M, bias, out_dtype=torch.bfloat16)
    reference = a_exact @ exact_w.t() + bias.double()
    # One rounding to bf16: within half an ulp of the exact value, plus the float32 accumulation error (worst
    # element 3e-7 of the largest in the float32-output test above; 10x that allowed). Rounding the product
    # first and then the sum (the bias added outside the GEMM) reaches a whole ulp on some elements.
    half_ulp = torch.ldexp(torch.ones_like(reference), torch.frexp(reference)[1] - 9)
    excess = (out.double() - reference).abs() - half_ulp
    assert excess.max().item() <= 3e-6 * reference.abs().max().item()


@needs_cuda
@pytest.mark.parametrize("recipe,gemm", [("fp4_fpqvar", "scaled_mm"), ("fp4_fpqvar", "triton"), ("fp4_baseline", "scaled_mm")])
def test_lowbit_model_logits_close_to_fake_on_a_d16_shaped_model(recipe, gemm):
    from fpqvar.lowbit import to_lowbit
    from fpqvar.model import VARConfig

    torch.manual_seed(0)
    with torch.device("cuda"):
        var = VAR(VARConfig(depth=16))
    var.init_weights(init_adaln=0.5, init_adaln_gamma=0.5)
    var.eval()
    r = get_recipe(recipe)
    quantize_model(var, r, _lambdas(var) if r.galt else None)
    labels = torch.tensor([1, 500], device="cuda")
    x = torch.randn(2, var.config.num_tokens - 1, var.Cvae, device="cuda")
    with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16):
        fake = var(labels, x)
        assert to_lowbit(var, gemm=gemm) == {}
        low = var(labels, x)
    error = ((low - fake).norm() / fake.norm()).item()
    print(f"d16 {recipe} {gemm}: low-bit vs fake logits relative error {error:.2e}")
    assert error < 2e-2
