"""SSIM / PSNR / NMSE against fastmri.evaluate, Laplacian variance against scipy, normalisation, RNG."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from fastmri import evaluate
from scipy import ndimage

from mribench.metrics import laplacian_variance, mse, nmse, normalize_output, psnr, ssim

SHAPES = [(1, 7, 7), (3, 32, 32), (2, 33, 47), (4, 65, 31), (2, 100, 9), (1, 320, 320)]


def _pair(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth positive 'image' and a noisy, slightly blurred reconstruction of it."""
    g = torch.Generator().manual_seed(seed)
    b, h, w = shape
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, h), torch.linspace(-1, 1, w), indexing="ij")
    base = torch.exp(-(xx**2 + yy**2) * 2.0)
    target = (base + 0.3 * torch.rand(b, h, w, generator=g)) * 1e-4  # fastMRI-like magnitudes
    recon = (target + 2e-5 * torch.randn(b, h, w, generator=g)).abs()
    return target.to(dtype), recon.to(dtype)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_ssim_equals_fastmri_per_slice(shape: tuple[int, ...], dtype: torch.dtype) -> None:
    target, recon = _pair(shape, seed=sum(shape), dtype=dtype)
    vmax = float(target.max())  # mribench passes the volume max as data range
    ours = ssim(target, recon, vmax)
    assert ours.shape == (shape[0],) and ours.dtype == torch.float64
    t, r = target.numpy(), recon.numpy()
    ref = np.array([evaluate.ssim(t[i : i + 1], r[i : i + 1], maxval=vmax).item() for i in range(shape[0])])
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-6)


def test_ssim_float64_matches_to_machine_precision_and_per_slice_data_range() -> None:
    target, recon = _pair((3, 41, 29), seed=1, dtype=torch.float64)
    dr = torch.tensor([1e-4, 2e-4, 5e-4], dtype=torch.float64)
    ours = ssim(target, recon, dr)
    t, r = target.numpy(), recon.numpy()
    ref = np.array([evaluate.ssim(t[i : i + 1], r[i : i + 1], maxval=float(dr[i])).item() for i in range(3)])
    np.testing.assert_allclose(ours.numpy(), ref, rtol=0, atol=1e-12)


def test_ssim_2d_input_and_batch_equals_per_slice() -> None:
    target, recon = _pair((5, 40, 36), seed=2)
    batch = ssim(target, recon, 1e-4)
    single = torch.cat([ssim(target[i], recon[i], 1e-4) for i in range(5)])
    assert ssim(target[0], recon[0], 1e-4).shape == (1,)
    torch.testing.assert_close(batch, single, rtol=0, atol=0)


def test_ssim_accepts_strided_and_half_precision_inputs() -> None:
    target, recon = _pair((3, 40, 36), seed=6)
    ref = ssim(target, recon, 1e-4)
    t_strided = target.transpose(-1, -2).contiguous().transpose(-1, -2)  # same values, column-major
    torch.testing.assert_close(ssim(t_strided, recon, 1e-4), ref, rtol=0, atol=0)
    half = ssim(target.to(torch.float16), recon.to(torch.float16), 1e-4)
    exact = ssim(target.to(torch.float16).double(), recon.to(torch.float16).double(), 1e-4)
    torch.testing.assert_close(half, exact, rtol=0, atol=0)


def test_ssim_non_finite_pixel_gives_nan_like_the_reference() -> None:
    target, recon = _pair((2, 30, 30), seed=7)
    recon[1, 10, 12] = float("nan")
    ours = ssim(target, recon, 1e-4)
    assert torch.isfinite(ours[0]) and torch.isnan(ours[1])
    with np.errstate(invalid="ignore"):
        ref = evaluate.ssim(target[1:].numpy(), recon[1:].numpy(), maxval=1e-4)
    assert np.isnan(ref)


def test_ssim_properties_identity_symmetry_bounds() -> None:
    target, recon = _pair((3, 48, 40), seed=3)
    torch.testing.assert_close(ssim(target, target, 1e-4), torch.ones(3, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(ssim(target, recon, 1e-4), ssim(recon, target, 1e-4), rtol=0, atol=1e-12)
    g = torch.Generator().manual_seed(0)
    noise = torch.rand(3, 48, 40, generator=g)
    v = ssim(noise, 1 - noise, 1.0)
    assert bool(((v >= -1) & (v <= 1)).all()) and bool((v < 0).all())


def test_ssim_autograd_path_equals_fast_path() -> None:
    target, recon = _pair((2, 30, 30), seed=4)
    r = recon.clone().requires_grad_(True)
    v = ssim(target, r, 1e-4)
    v.sum().backward()
    assert r.grad is not None and bool(torch.isfinite(r.grad).all())
    torch.testing.assert_close(v.detach(), ssim(target, recon, 1e-4), rtol=0, atol=1e-12)


@pytest.mark.parametrize(
    "bad",
    [
        lambda t, r: ssim(t, r[:, :-1], 1.0),  # shape mismatch
        lambda t, r: ssim(t[:, :6], r[:, :6], 1.0),  # smaller than the window
        lambda t, r: ssim(t, r, 0.0),  # non-positive data range
        lambda t, r: ssim(t, r, torch.ones(5)),  # wrong data-range shape
        lambda t, r: ssim(t.to(torch.complex64), r.to(torch.complex64), 1.0),
        lambda t, r: psnr(t[0, 0], r[0, 0], 1.0),  # 1-D
    ],
)
def test_bad_inputs_raise_value_error(bad) -> None:  # type: ignore[no-untyped-def]
    target, recon = _pair((2, 16, 16), seed=5)
    with pytest.raises(ValueError, match="expected"):
        bad(target, recon)


@pytest.mark.parametrize("shape", SHAPES)
def test_psnr_and_nmse_equal_fastmri(shape: tuple[int, ...]) -> None:
    target, recon = _pair(shape, seed=10 + sum(shape))
    vmax = float(target.max())
    t, r = target.numpy(), recon.numpy()
    ref_psnr = [float(evaluate.psnr(t[i], r[i], maxval=vmax)) for i in range(shape[0])]
    ref_nmse = [float(evaluate.nmse(t[i], r[i])) for i in range(shape[0])]
    np.testing.assert_allclose(psnr(target, recon, vmax).numpy(), ref_psnr, rtol=0, atol=1e-6)
    np.testing.assert_allclose(nmse(target, recon).numpy(), ref_nmse, rtol=1e-6, atol=0)
    np.testing.assert_allclose(
        mse(target, recon).numpy(), [float(evaluate.mse(t[i], r[i])) for i in range(shape[0])], rtol=1e-6
    )


def test_psnr_identical_is_inf_and_nmse_zero() -> None:
    target, _ = _pair((2, 16, 16), seed=6)
    assert bool(torch.isinf(psnr(target, target, 1.0)).all())
    assert bool((nmse(target, target) == 0).all())


@pytest.mark.parametrize("shape", [(1, 9, 9), (3, 33, 20), (2, 64, 64)])
def test_laplacian_variance_matches_scipy(shape: tuple[int, ...]) -> None:
    target, recon = _pair(shape, seed=20 + sum(shape), dtype=torch.float64)
    vmax = float(target.max())
    ours = laplacian_variance(target, recon, vmax)
    err = np.abs(target.numpy() - recon.numpy()) / vmax * 255
    ref = [ndimage.laplace(err[i]).var() for i in range(shape[0])]  # default mode 'reflect'
    np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-10, atol=0)
    assert float(laplacian_variance(target, target, vmax)[0]) == 0.0


def test_laplacian_variance_is_scale_free_on_the_8bit_scale() -> None:
    """Raw fastMRI-like intensities (~1e-4) give values ~1e-9 that scale with intensity squared; the
    metric is on |error| / volume max * 255 instead, so a common scaling changes nothing."""
    target, recon = _pair((2, 48, 40), seed=3, dtype=torch.float64)
    vmax = torch.tensor([float(target[0].max()), float(target[1].max())], dtype=torch.float64)
    ours = laplacian_variance(target, recon, vmax)
    torch.testing.assert_close(laplacian_variance(1e6 * target, 1e6 * recon, 1e6 * vmax), ours, rtol=1e-10, atol=0)
    raw = laplacian_variance(target, recon, 1.0, scale=1.0)
    assert float(raw.max()) < 1e-8  # the raw-intensity values of laplacian_variance@linheckel-v1
    torch.testing.assert_close(ours, raw * (255 / vmax) ** 2, rtol=1e-10, atol=0)
    assert 10 < float(ours.min()) and float(ours.max()) < 1e5  # hundreds to thousands, as in LH24 Table 4


def test_laplacian_variance_grows_with_high_frequency_error() -> None:
    target, _ = _pair((1, 64, 64), seed=7)
    smooth = target + 1e-5 * torch.linspace(0, 1, 64).view(1, 1, 64)
    checker = target + 1e-5 * ((torch.arange(64).view(-1, 1) + torch.arange(64).view(1, -1)) % 2).float()
    assert float(laplacian_variance(target, checker, 1e-4)[0]) > 100 * float(
        laplacian_variance(target, smooth, 1e-4)[0]
    )


def test_normalize_output_matches_target_statistics() -> None:
    target, recon = _pair((3, 32, 32), seed=8)
    recon = 3.0 * recon + 1.0
    out = normalize_output(recon, target)
    assert out.shape == recon.shape and out.dtype == recon.dtype
    torch.testing.assert_close(out.mean(dim=(-2, -1)), target.mean(dim=(-2, -1)), rtol=1e-4, atol=1e-9)
    torch.testing.assert_close(out.std(dim=(-2, -1)), target.std(dim=(-2, -1)), rtol=1e-4, atol=1e-9)
    const = normalize_output(torch.ones(32, 32), target[0])
    assert const.shape == (32, 32)
    torch.testing.assert_close(const, torch.full((32, 32), float(target[0].mean())), rtol=1e-5, atol=1e-9)


def test_metrics_leave_global_rng_untouched() -> None:
    from mribench.metrics import region_ssim

    torch_state = torch.random.get_rng_state()
    np_state = np.random.get_state()
    target, recon = _pair((2, 40, 40), seed=9)
    ssim(target, recon, 1e-4)
    psnr(target, recon, 1e-4)
    nmse(target, recon)
    laplacian_variance(target, recon, 1e-4)
    normalize_output(recon, target)
    region_ssim(target, recon, 1e-4, [[(3, 4, 10, 12)], []])
    assert torch.equal(torch_state, torch.random.get_rng_state())
    after = np.random.get_state()
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:]
