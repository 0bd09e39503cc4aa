"""The analysis behind the book's chapters 03 and 04: shares, levels, outliers, rotations, costs, searches."""

import math

import pytest
import torch
import torch.nn.functional as F
from tiny_models import tiny_pair
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from fpqvar.analysis.activations import (
    GELU_MINIMUM,
    flatten_steps,
    kurtosis,
    levels_in_range,
    per_tensor_levels,
    value_shares,
)
from fpqvar.analysis.dual_format import blockwise_input_errors, model_wide_search, round_trips, search_per_layer
from fpqvar.analysis.format_error import quantization_mse
from fpqvar.analysis.model_costs import build_on_meta, parameter_counts, transformer_flops, vqvae_generation_flops
from fpqvar.analysis.models import DeviceUnavailableError, checkpoint_label, require_device
from fpqvar.analysis.outliers import (
    channel_absmax_per_step,
    outlier_ratio,
    overlap_matrix,
    tokens_per_step,
    top_channels,
)
from fpqvar.analysis.rotation_effect import group_statistics, rotations
from fpqvar.formats import DFQ_FP4, FP4_E1M2
from fpqvar.methods.calibration import ActivationStore
from fpqvar.methods.search import search_dual_format
from fpqvar.model.config import RELEASED_VAE, RELEASED_VAR


def test_value_shares_count_the_boundaries_as_the_paper_states_them():
    x = torch.tensor([-0.5, -0.17, -0.1, 0.0, 0.2, 1.0])
    s = value_shares(x, low=-0.17)
    assert (s.below_low, s.low_to_zero, s.positive) == (1 / 6, 3 / 6, 2 / 6)  # -0.17 and 0 are inside [low, 0]


def test_every_negative_gelu_output_lies_in_the_papers_range():
    x = F.gelu(torch.linspace(-20, 20, 400_001), approximate="tanh")  # VAR's FFN activation
    assert value_shares(x).below_low == 0.0  # GELU_MINIMUM is at or below the float32 minimum
    assert float(x.min()) == pytest.approx(GELU_MINIMUM, abs=1e-6)
    assert 0 < value_shares(x, low=-0.17).below_low < 1e-3  # the paper's rounded -0.17 would cut a sliver off


def test_per_tensor_levels_scale_each_half_as_alg_1():
    x = torch.tensor([-0.17, -0.05, 0.3, 2.0])
    e2m1 = per_tensor_levels(x, "fp4_e2m1")
    assert len(e2m1) == 15 and float(e2m1.max()) == pytest.approx(2.0) and float(e2m1.min()) == pytest.approx(-2.0)
    dfq = per_tensor_levels(x, DFQ_FP4)
    negative = dfq[dfq <= 0]
    assert float(negative.min()) == pytest.approx(-0.17) and float(dfq.max()) == pytest.approx(2.0)
    assert torch.allclose(negative.diff(), negative.diff()[0].expand(len(negative) - 1))  # E1M2: uniform steps
    afpq = per_tensor_levels(x, "afpq_e2m1")
    assert float(afpq.min()) == pytest.approx(-0.17)
    assert not torch.allclose(afpq[afpq <= 0].diff(), afpq[afpq <= 0].diff()[0].expand(7))  # E2M1: dense near 0
    # in [-0.17, 0): E2M1 has 1 level there (its scale is set by 2.0), AFPQ and DFQ 7 each
    assert [levels_in_range(g, -0.1701, -1e-12) for g in (e2m1, afpq, dfq)] == [1, 7, 7]


def test_kurtosis_of_known_distributions():
    assert kurtosis(torch.tensor([-1.0, 1.0] * 50)) == pytest.approx(1.0)
    g = torch.Generator().manual_seed(0)
    assert kurtosis(torch.randn(1_000_000, generator=g)) == pytest.approx(3.0, abs=0.03)  # std. error ~0.005
    assert math.isnan(kurtosis(torch.ones(10)))


def test_outlier_channels_are_found_per_step_and_their_overlap_measured():
    steps = [torch.zeros(2, 1, 16), torch.zeros(2, 4, 16)]
    steps[0][1, 0, 3], steps[0][0, 0, 5] = -9.0, 4.0
    steps[1][0, 2, 5], steps[1][1, 3, 11] = 7.0, 6.0
    for t in steps:
        t += 0.1
    absmax = channel_absmax_per_step(steps)
    assert absmax.shape == (2, 16) and float(absmax[0, 3]) == pytest.approx(8.9)  # |-9 + 0.1|
    assert top_channels(absmax, 2) == [[3, 5], [5, 11]]
    assert overlap_matrix([[3, 5], [5, 11]]).tolist() == [[1.0, 0.5], [0.5, 1.0]]
    assert tokens_per_step(steps) == [2, 8]
    assert outlier_ratio(absmax).tolist() == pytest.approx([8.9 / 0.1, 7.1 / 0.1])
    with pytest.raises(ValueError):
        top_channels(absmax, 17)


def test_ght_spreads_an_outlier_within_its_group_only_and_ht_everywhere():
    x = torch.zeros(3, 256)
    x[:, 7] = 10.0
    rotated = {name: r(x) for name, r in rotations(256, group=128).items()}
    for r in rotated.values():
        assert torch.allclose(r.norm(dim=-1), x.norm(dim=-1), atol=1e-4)  # rotations keep each token's norm
    assert torch.equal(rotated["none"], x)
    assert bool((rotated["GHT"][:, :128].abs() > 0).all()) and bool((rotated["GHT"][:, 128:] == 0).all())
    assert bool((rotated["HT"].abs() > 0).all())
    stats = group_statistics(x, 128)
    assert len(stats) == 2 and stats[0]["group"] == 0 and math.isinf(stats[0]["max/median"])
    assert group_statistics(rotated["GHT"], 128)[0]["max/median"] == pytest.approx(1.0)  # +-10/sqrt(128) everywhere


def test_released_parameter_counts_match_the_official_sizes():
    var, vae = build_on_meta(RELEASED_VAR["d16"], RELEASED_VAE)
    counts = parameter_counts(var, vae)
    assert counts["transformer"] == sum(p.numel() for p in var.parameters())
    assert sum(v for k, v in counts.items() if k.startswith("VQVAE")) == sum(p.numel() for p in vae.parameters())
    assert round(counts["transformer"] / 1e6) == 310  # VAR-d16: 310M (VAR release); d30: 2.0B
    assert round(parameter_counts(*build_on_meta(RELEASED_VAR["d30"], RELEASED_VAE))["transformer"] / 1e8) == 20


@pytest.mark.parametrize("shared_aln", [False, True])
def test_flop_counts_equal_torchs_counter_over_a_real_generation(shared_aln):
    vae, var = tiny_pair(seed=0, shared_aln=shared_aln)
    # the math backend computes attention with matmuls that the counter sees (the fused CPU kernel it does not count)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        var.generate(vae, 1, labels=torch.tensor([3]), seed=0)
    ours = sum(transformer_flops(var).values()) + sum(vqvae_generation_flops(vae).values())
    assert ours == counter.get_total_flops()


def _store(tensors_by_name):
    store = ActivationStore()
    for name, tensors in tensors_by_name.items():
        for step, x in enumerate(tensors):
            store.add(name, step, x)
    return store


def test_model_wide_search_equals_the_search_over_every_tensor():
    g = torch.Generator().manual_seed(1)
    gelu = lambda *shape: F.gelu(torch.randn(*shape, generator=g) * 2, approximate="tanh")  # noqa: E731
    tensors = {f"blocks.{i}.ffn.fc2": [gelu(2, 1, 128) * (i + 1), gelu(2, 4, 128)] for i in range(3)}
    store = _store(tensors)
    per_layer = search_per_layer(store, list(tensors))
    pair, mean = model_wide_search(per_layer)
    _, direct = search_dual_format([x for ts in tensors.values() for x in ts])
    assert mean == pytest.approx(direct, rel=1e-12)
    assert pair == min(direct, key=direct.get)
    errors = blockwise_input_errors(store, list(tensors), {"E1M2": FP4_E1M2})
    expected = [(quantization_mse(ts[0], FP4_E1M2) + quantization_mse(ts[1], FP4_E1M2)) / 2 for ts in tensors.values()]
    assert errors["E1M2"] == pytest.approx(expected, rel=1e-12)
    assert flatten_steps(tensors["blocks.0.ffn.fc2"]).shape == (2 + 8, 128)


def test_round_trips_tells_registered_names_from_unknown_ones():
    from fpqvar.formats import DualFormat, get_format

    assert round_trips(DFQ_FP4)
    assert not round_trips(DualFormat("no_such_format", get_format("fp4_e3m0"), get_format("fp4_e1m2")))


def test_device_errors_are_one_clear_line():
    with pytest.raises(DeviceUnavailableError, match="not a torch device"):
        require_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="no CUDA"):
            require_device("cuda")
    assert require_device("cpu") == torch.device("cpu")
    assert checkpoint_label("/a/b/var_d30.pth", "VAR") == "var_d30.pth" and checkpoint_label("embedded", "VAR") == "embedded VAR"
