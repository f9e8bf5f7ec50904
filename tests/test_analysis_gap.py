"""Distribution-shift gap and fraction of the gap closed."""

from __future__ import annotations

import numpy as np
import pytest

from mribench.analysis import (
    d22_fraction_closed,
    d22_fraction_closed_ci,
    fraction_gap_closed,
    fraction_gap_closed_ci,
    fraction_gap_closed_from_metrics,
    performance_gap,
    performance_gap_ci,
)


def test_d22_table1_fraction_closed_through_the_public_api() -> None:
    """D22 Table 1, U-Net, anatomy shift: supervised 0.9187 (Q) / 0.8521 (P); self-supervised + TTT
    0.9234 (Q) / 0.9225 (P); 1 - 0.0009 / 0.0666 = 98.6%."""
    import mribench.analysis as analysis

    frac = analysis.d22_fraction_closed(q_supervised=0.9187, p_supervised=0.8521, q_ttt=0.9234, p_ttt=0.9225)
    assert frac == pytest.approx(1 - 0.0009 / 0.0666, abs=1e-12)
    assert f"{100 * frac:.1f}%" == "98.6%"
    # the same four numbers as (one-volume-per-slice) per-slice columns: same point estimate
    r = d22_fraction_closed_ci([0.9187] * 2, [0.8521] * 2, [0.9234] * 2, [0.9225] * 2, ["a", "b"], n_boot=50)
    assert r.fraction == pytest.approx(frac, abs=1e-12)
    assert r.gap_before.mean == pytest.approx(0.0666, abs=1e-12) and r.gap_after.mean == pytest.approx(0.0009)


def test_d22_fraction_ci_resamples_volumes_with_the_supervised_gap_as_denominator() -> None:
    qb, pb, qa, pa, groups = _four_models()
    r = d22_fraction_closed_ci(q_supervised=qb, p_supervised=pb, q_ttt=qa, p_ttt=pa, groups=groups, n_boot=500)
    assert r == fraction_gap_closed_ci(qb, pb, qa, pa, groups, n_boot=500)
    assert r.fraction == pytest.approx(1 - (qa.mean() - pa.mean()) / (qb.mean() - pb.mean()))
    assert r.low < r.fraction < r.high and r.n_groups == 25
    assert d22_fraction_closed(qb.mean(), pb.mean(), qa.mean(), pa.mean()) == pytest.approx(r.fraction)


def test_darestani_table1_unet_anatomy_shift() -> None:
    """U-Net, anatomy shift (Darestani et al. 2022, Table 1): TTT closes 98.6% of the gap."""
    before = performance_gap(q_trained=0.9187, p_trained=0.8521)
    after = performance_gap(q_trained=0.9234, p_trained=0.9225)
    assert before == pytest.approx(0.0666, abs=1e-12)
    assert after == pytest.approx(0.0009, abs=1e-12)
    frac = fraction_gap_closed(before, after)
    assert round(100 * frac, 1) == 98.6
    assert fraction_gap_closed_from_metrics(0.9187, 0.8521, 0.9234, 0.9225) == pytest.approx(frac)


def test_lower_is_better_flips_the_sign() -> None:
    # NMSE: the P-trained model has the larger error on Q -> positive gap
    assert performance_gap(0.010, 0.015, higher_is_better=False) == pytest.approx(0.005)
    assert fraction_gap_closed_from_metrics(0.010, 0.015, 0.010, 0.011, higher_is_better=False) == pytest.approx(0.8)


def test_zero_gap_before_is_rejected() -> None:
    with pytest.raises(ValueError, match="non-zero gap"):
        fraction_gap_closed(0.0, 0.01)


def _four_models(seed: int = 0, n_vol: int = 25, per_vol: int = 8):
    rng = np.random.default_rng(seed)
    groups = np.repeat(np.arange(n_vol), per_vol)
    base = 0.85 + np.repeat(rng.normal(0, 0.03, n_vol), per_vol) + rng.normal(0, 0.01, n_vol * per_vol)
    q_before = base + 0.06
    p_before = base + rng.normal(0, 0.005, len(base))
    q_after = base + 0.07
    p_after = base + 0.065 + rng.normal(0, 0.005, len(base))
    return q_before, p_before, q_after, p_after, groups


def test_per_slice_gap_matches_means_and_has_a_ci() -> None:
    qb, pb, _, _, groups = _four_models()
    g = performance_gap_ci(qb, pb, groups, n_boot=1000)
    assert g.gap == pytest.approx(qb.mean() - pb.mean())
    assert g.q_trained == pytest.approx(qb.mean()) and g.p_trained == pytest.approx(pb.mean())
    assert g.low < g.gap < g.high and g.low > 0 and g.p_value < 0.01
    flipped = performance_gap_ci(-qb, -pb, groups, higher_is_better=False, n_boot=1000)
    assert flipped.gap == pytest.approx(g.gap) and (flipped.low, flipped.high) == pytest.approx((g.low, g.high))
    assert flipped.q_trained == pytest.approx(-qb.mean())


def test_per_slice_fraction_closed_matches_scalar_version() -> None:
    qb, pb, qa, pa, groups = _four_models()
    r = fraction_gap_closed_ci(qb, pb, qa, pa, groups, n_boot=1000)
    expected = fraction_gap_closed_from_metrics(qb.mean(), pb.mean(), qa.mean(), pa.mean())
    assert r.fraction == pytest.approx(expected)
    assert r.low < r.fraction < r.high
    assert r.gap_before.mean == pytest.approx(qb.mean() - pb.mean())
    assert r.gap_after.low < r.gap_after.mean < r.gap_after.high
    assert (r.n, r.n_groups, r.n_dropped) == (200, 25, 0)
    assert fraction_gap_closed_ci(qb, pb, qa, pa, groups, n_boot=1000) == r  # seeded


def test_fraction_closed_drops_slices_with_any_nan() -> None:
    qb, pb, qa, pa, groups = _four_models()
    qa[3] = np.nan
    pb[10] = np.nan
    r = fraction_gap_closed_ci(qb, pb, qa, pa, groups, n_boot=200)
    assert (r.n, r.n_dropped) == (198, 2)
    assert np.isfinite([r.fraction, r.low, r.high]).all()


def test_fraction_closed_rejects_mismatched_lengths() -> None:
    qb, pb, qa, pa, groups = _four_models()
    with pytest.raises(ValueError, match="equal length"):
        fraction_gap_closed_ci(qb, pb, qa[:-1], pa, groups)
