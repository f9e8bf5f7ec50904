"""Robustness-curve area and SNR noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mribench.analysis import add_noise, robustness_auc


def test_auc_is_the_average_metric_over_the_range() -> None:
    assert robustness_auc({2: 0.9, 4: 0.9, 8: 0.9}) == pytest.approx(0.9)
    assert robustness_auc({2: 1.0, 8: 0.4}) == pytest.approx(0.7)
    curve = {2: 0.95, 3: 0.93, 4: 0.9, 6: 0.85, 8: 0.8}
    x = np.array(sorted(curve))
    y = np.array([curve[k] for k in x])
    assert robustness_auc(curve) == pytest.approx(np.trapezoid(y, x) / (x[-1] - x[0]))
    lx = np.log(x)
    assert robustness_auc(curve, log_x=True) == pytest.approx(np.trapezoid(y, lx) / (lx[-1] - lx[0]))


def test_auc_on_a_sub_range_interpolates_the_ends() -> None:
    curve = {0.0: 0.0, 10.0: 1.0}
    assert robustness_auc(curve, x_range=(2.0, 4.0)) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="x span"):
        robustness_auc(curve, x_range=(-1.0, 4.0))
    with pytest.raises(ValueError, match="at least 2"):
        robustness_auc({4: 0.9})
    with pytest.raises(ValueError, match="finite"):
        robustness_auc({2: 0.9, 4: float("nan")})


def _kspace(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(4, 64, 48, dtype=torch.complex64, generator=g) * 3.0
    k[..., ::3] = 0  # unacquired columns
    return k


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 25.0])
def test_add_noise_hits_the_requested_snr(snr_db: float) -> None:
    k = _kspace()
    noisy = add_noise(k, snr_db, seed=1)
    acquired = k != 0
    noise = (noisy - k)[acquired]
    measured = 10 * math.log10((k[acquired].abs() ** 2).mean() / (noise.abs() ** 2).mean())
    assert measured == pytest.approx(snr_db, abs=0.2)
    assert (noisy[~acquired] == 0).all() and noisy.dtype == k.dtype and noisy.shape == k.shape


def test_add_noise_is_seeded_and_respects_masks() -> None:
    k = _kspace()
    assert torch.equal(add_noise(k, 10, seed=3), add_noise(k, 10, seed=3))
    assert not torch.equal(add_noise(k, 10, seed=3), add_noise(k, 10, seed=4))
    assert torch.equal(add_noise(k, math.inf, seed=0), k)
    mask = torch.zeros(48, dtype=torch.bool)
    mask[10:20] = True
    noisy = add_noise(k, 5, seed=0, mask=mask)
    assert torch.equal(noisy[..., ~mask], k[..., ~mask]) and not torch.equal(noisy[..., mask], k[..., mask])
    state = torch.get_rng_state()
    add_noise(k, 5, seed=0)
    assert torch.equal(torch.get_rng_state(), state)


def test_add_noise_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="complex"):
        add_noise(torch.ones(2, 4, 4), 10, seed=0)
    with pytest.raises(ValueError, match="acquired"):
        add_noise(torch.zeros(2, 4, 4, dtype=torch.complex64), 10, seed=0)
    with pytest.raises(ValueError, match="SNR"):
        add_noise(_kspace(), float("nan"), seed=0)
