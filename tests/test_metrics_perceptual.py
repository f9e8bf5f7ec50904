"""LPIPS / DISTS: published values with the fetched ImageNet weights, plumbing with random backbones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from mribench.metrics import dists, lpips, percentile_normalize
from mribench.metrics.perceptual import get_model
from mribench.metrics.weights import missing_weights

# the LPIPS authors' example images (BSD-2-Clause; see the LICENSE file beside them)
EXAMPLES = Path(__file__).resolve().parent / "data" / "lpips_examples"


def _needs_weights(metric: str) -> None:
    missing = missing_weights(metric)
    if missing:
        pytest.skip(f"weights {missing} not fetched (run `mribench weights fetch`)")


def _rgb(name: str) -> torch.Tensor:
    """(1, 3, H, W) float32 in [0, 1]."""
    from PIL import Image

    a = np.asarray(Image.open(EXAMPLES / name).convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(a).permute(2, 0, 1).unsqueeze(0).contiguous()


@pytest.mark.parametrize(("metric", "expected"), [("lpips_vgg", (0.569, 0.422)), ("lpips_alex", (0.722, 0.138))])
def test_lpips_reproduces_published_values(metric: str, expected: tuple[float, float]) -> None:
    _needs_weights(metric)
    model = get_model(metric)
    ref, p0, p1 = _rgb("ex_ref.png"), _rgb("ex_p0.png"), _rgb("ex_p1.png")
    with torch.no_grad():
        d0 = float(model(ref * 2 - 1, p0 * 2 - 1))
        d1 = float(model(ref * 2 - 1, p1 * 2 - 1))
    assert d0 == pytest.approx(expected[0], abs=1.5e-3)
    assert d1 == pytest.approx(expected[1], abs=1.5e-3)


def _authors_dists(monkeypatch: pytest.MonkeyPatch) -> torch.nn.Module:
    """The DISTS authors' module (DISTS_pytorch 0.1) with the converted weights, built here without
    mribench's builder: torchvision's VGG16 loaded with the converted features, then alpha/beta."""
    import torchvision
    from DISTS_pytorch import DISTS_pt

    from mribench.metrics.weights import load_weights

    with torch.random.fork_rng(devices=[]):
        vgg = torchvision.models.vgg16(weights=None)
    vgg.features.load_state_dict({k.removeprefix("features."): v for k, v in load_weights("vgg16_imagenet").items()})
    monkeypatch.setattr(DISTS_pt.models, "vgg16", lambda pretrained=True: vgg)  # the constructor would download
    with torch.random.fork_rng(devices=[]):
        model = DISTS_pt.DISTS(load_weights=False)
    ab = load_weights("dists_alpha_beta")
    model.alpha.data, model.beta.data = ab["alpha"].clone(), ab["beta"].clone()
    return model.eval().requires_grad_(False)


def test_dists_matches_published_values_and_the_authors_module(monkeypatch: pytest.MonkeyPatch) -> None:
    _needs_weights("dists")
    ref, p0, p1 = _rgb("ex_ref.png"), _rgb("ex_p0.png"), _rgb("ex_p1.png")
    model = get_model("dists")
    with torch.no_grad():
        ours = [float(model(ref, p)) for p in (p0, p1)]
    assert ours[0] == pytest.approx(0.3879, abs=2e-4)
    assert ours[1] == pytest.approx(0.2250, abs=2e-4)
    authors = _authors_dists(monkeypatch)
    theirs = [float(authors(ref, p)) for p in (p0, p1)]
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-6)


def _percentile_rgb(x: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, 3, H, W): each image / its 99.9th percentile, clipped to [0, 1] (written out)."""
    q = torch.stack([torch.quantile(im.flatten().float(), 0.999) for im in x]).view(-1, 1, 1)
    return (x.float() / q).clamp(0, 1).unsqueeze(1).repeat(1, 3, 1, 1)


@pytest.mark.parametrize("size", [128, 320])
def test_dists_equals_the_authors_network_without_resizing(size: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """mribench's DISTS metric equals DISTS_pytorch's module on the same [0, 1] images at 128 and 320
    pixels (piq resized a 320-pixel slice to 256 and differed by up to 0.05)."""
    _needs_weights("dists")
    g = torch.Generator().manual_seed(size)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    target = (torch.exp(-(xx**2 + yy**2) * 3) + 0.2 * torch.rand(2, size, size, generator=g)) * 3e-4
    recon = (target + 4e-5 * torch.randn(2, size, size, generator=g)).abs()
    ours = dists(target, recon)
    authors = _authors_dists(monkeypatch)
    theirs = authors(_percentile_rgb(target), _percentile_rgb(recon)).reshape(-1).double()
    assert ours.shape == (2,) and bool((ours > 0.01).all())
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-5)


def _mri_like(b: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 48), torch.linspace(-1, 1, 40), indexing="ij")
    target = (torch.exp(-(xx**2 + yy**2) * 3) + 0.1 * torch.rand(b, 48, 40, generator=g)) * 3e-4
    recon = (target + 3e-5 * torch.randn(b, 48, 40, generator=g)).abs()
    return target, recon


def test_percentile_normalize() -> None:
    x = torch.arange(1000, dtype=torch.float32).view(1, 10, 100) * 2.0
    out = percentile_normalize(x)
    q = float(torch.quantile(x.flatten(), 0.999))
    torch.testing.assert_close(out, (x / q).clamp(0, 1))
    assert float(out.max()) == 1.0 and float(out.min()) == 0.0
    assert float(percentile_normalize(torch.zeros(1, 4, 4)).abs().max()) == 0.0


@pytest.mark.parametrize("metric", ["lpips_alex", "dists"])
def test_random_backbone_plumbing(metric: str) -> None:
    """Explicit random weights (tests only): d(x, x) = 0, batch == per image, scale invariance."""
    fn = (
        (lambda t, r, **kw: lpips(t, r, net="alex", allow_random_weights=True, **kw))
        if metric == "lpips_alex"
        else (lambda t, r, **kw: dists(t, r, allow_random_weights=True, **kw))
    )
    target, recon = _mri_like(3, seed=1)
    same = fn(target, target)
    assert same.shape == (3,) and same.dtype == torch.float64
    torch.testing.assert_close(same, torch.zeros(3, dtype=torch.float64), rtol=0, atol=1e-6)
    batch = fn(target, recon)
    single = torch.cat([fn(target[i : i + 1], recon[i : i + 1]) for i in range(3)])
    torch.testing.assert_close(batch, single, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(fn(target, recon, batch_size=2), batch, rtol=1e-4, atol=1e-6)
    assert bool((batch > 0).all())
    torch.testing.assert_close(fn(target * 1e3, recon * 1e3), batch, rtol=1e-4, atol=1e-6)  # percentile normalisation


def test_perceptual_metrics_leave_global_rng_untouched() -> None:
    state = torch.random.get_rng_state()
    np_state = np.random.get_state()[1].copy()
    target, recon = _mri_like(2, seed=2)
    lpips(target, recon, net="alex", allow_random_weights=True)
    dists(target, recon, allow_random_weights=True)
    if not missing_weights("lpips_alex"):
        lpips(target, recon, net="alex")
    assert torch.equal(state, torch.random.get_rng_state())
    assert np.array_equal(np_state, np.random.get_state()[1])


def test_real_weights_differ_from_random_on_mri_like_slices() -> None:
    _needs_weights("lpips_alex")
    target, recon = _mri_like(2, seed=3)
    real = lpips(target, recon, net="alex")
    fake = lpips(target, recon, net="alex", allow_random_weights=True)
    assert real.shape == (2,) and not torch.allclose(real, fake)


@pytest.mark.parametrize("metric", ["lpips_vgg", "lpips_alex", "dists"])
def test_registry_computes_perceptual_metrics_with_real_weights(metric: str) -> None:
    _needs_weights(metric)
    from mribench.metrics import get_metric

    target, recon = _mri_like(2, seed=4)
    spec = get_metric(metric)
    spec.check_available()
    out = spec.compute(target, recon, data_range=torch.full((2,), float(target.max()), dtype=torch.float64))
    assert out.shape == (2,) and out.dtype == torch.float64 and bool((out > 0).all())
    assert bool((spec.compute(target, target, data_range=torch.ones(2, dtype=torch.float64)).abs() < 1e-5).all())
