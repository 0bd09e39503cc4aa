"""Training: the VQ forward, loss decrease on tiny models, and resuming to the bit."""

import pytest
import torch
from tiny_models import TINY_VAE, tiny_pair

from fpqvar.model import VQVAE
from fpqvar.train.loop import TrainConfig, learning_rate, train
from fpqvar.train.tasks import init_codebook_from_data, tokenize, var_task, vqvae_task


def _images(n=64, seed=0):
    """Class-dependent blobs in [-1, 1]: a bright square whose position is the label."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 4, (n,), generator=g)
    images = torch.full((n, 3, 8, 8), -1.0) + 0.1 * torch.randn(n, 3, 8, 8, generator=g)
    for i, c in enumerate(labels.tolist()):
        r, q = divmod(c, 2)
        images[i, :, 4 * r : 4 * r + 4, 4 * q : 4 * q + 4] = 0.8
    return images.clamp(-1, 1), labels


def test_learning_rate_shape():
    cfg = TrainConfig(steps=100, lr=1.0, warmup_fraction=0.1, final_lr_fraction=0.1)
    assert learning_rate(0, cfg) == pytest.approx(0.005)
    assert learning_rate(10, cfg) == pytest.approx(1.0)
    assert learning_rate(14, cfg) == pytest.approx(1.0)  # flat for 5% of the 90 post-warm-up steps
    assert learning_rate(99, cfg) == pytest.approx(0.1, abs=0.02)


def test_vq_forward_is_straight_through_and_matches_tokenization():
    torch.manual_seed(0)
    vae = VQVAE(TINY_VAE)
    x, _ = _images(4)
    f = vae.encode(x)
    f_hat, vq_loss, usage = vae.quantize(f)
    assert torch.allclose(f_hat, vae.quantize.f_to_idxBl_or_fhat(f, to_fhat=True)[-1], atol=1e-6)
    assert usage.sum(1).tolist() == [4 * pn * pn for pn in TINY_VAE.patch_nums]
    f_hat.sum().backward()
    assert torch.allclose(vae.quant_conv.bias.grad, torch.full((8,), 4.0 * 16))  # d(sum)/df = 1 everywhere
    # the VQ loss in value: per scale beta |f_hat_k - f|^2 + |f_hat_k - f|^2 on the partial sums, averaged over scales
    partial_sums = vae.quantize.f_to_idxBl_or_fhat(f.detach(), to_fhat=True)
    expected = sum((1 + TINY_VAE.beta) * (fk - f.detach()).pow(2).mean() for fk in partial_sums) / len(partial_sums)
    assert vq_loss.item() > 0 and torch.allclose(vq_loss, expected, rtol=1e-5, atol=0)


def test_vqvae_and_var_losses_fall():
    images, labels = _images()
    torch.manual_seed(0)
    vae = VQVAE(TINY_VAE)
    init_codebook_from_data(vae, images)
    log = train(vae, vqvae_task(vae, images, 16), TrainConfig(steps=60, lr=2e-3), progress=False)
    assert sum(r["recon"] for r in log[-10:]) < 0.5 * sum(r["recon"] for r in log[:10])
    _, var = tiny_pair()
    inputs, targets = tokenize(vae.eval(), images)
    log = train(var, var_task(var, inputs, targets, labels, 16), TrainConfig(steps=60, lr=3e-3), progress=False)
    assert sum(r["loss"] for r in log[-10:]) < 0.8 * sum(r["loss"] for r in log[:10])


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    images, _ = _images()

    def fresh():
        torch.manual_seed(0)
        vae = VQVAE(TINY_VAE)
        init_codebook_from_data(vae, images)
        return vae

    cfg = TrainConfig(steps=12, lr=2e-3, checkpoint_every=5)
    straight = fresh()
    train(straight, vqvae_task(straight, images, 8), cfg, progress=False)
    interrupted = fresh()
    with pytest.raises(KeyboardInterrupt):
        def stop_at_7(step, row):
            if step == 6:
                raise KeyboardInterrupt
        train(interrupted, vqvae_task(interrupted, images, 8), cfg, checkpoint=tmp_path / "ck.pt", on_log=stop_at_7, progress=False)
    resumed = fresh()
    log = train(resumed, vqvae_task(resumed, images, 8), cfg, checkpoint=tmp_path / "ck.pt", progress=False)
    assert [r["step"] for r in log] == list(range(12))
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="other training settings"):
        train(fresh(), vqvae_task(fresh(), images, 8), TrainConfig(steps=13), checkpoint=tmp_path / "ck.pt", progress=False)
