"""Cluster-bootstrap statistics over volumes."""

from __future__ import annotations

import time

import numpy as np
import pytest

from mribench.analysis import (
    AnalysisInputError,
    bootstrap_mean_ci,
    cluster_bootstrap_means,
    paired_difference,
)
from mribench.analysis.stats import bootstrap_t_interval, finite_split, summarize_columns
from mribench.errors import MribenchError


def _volumes(rng: np.random.Generator, n_vol: int, per_vol: int, vol_sd: float = 0.05, slice_sd: float = 0.01):
    """Slices strongly correlated within a volume: value = mu + volume effect + slice noise."""
    effects = rng.normal(0.0, vol_sd, n_vol)
    groups = np.repeat([f"file{i:04d}.h5" for i in range(n_vol)], per_vol)
    values = 0.9 + np.repeat(effects, per_vol) + rng.normal(0.0, slice_sd, n_vol * per_vol)
    return values, groups


def test_vectorised_draws_equal_a_naive_loop_over_draws() -> None:
    rng = np.random.default_rng(1)
    sizes = rng.integers(1, 6, 13)
    groups = np.repeat(np.arange(13), sizes)
    values = rng.normal(size=len(groups))
    fast = cluster_bootstrap_means(values, groups, n_boot=50, seed=3)
    draw_rng = np.random.default_rng(3)
    picks = draw_rng.integers(0, 13, size=(50, 13), dtype=np.int32)
    naive = [np.concatenate([values[groups == g] for g in row]).mean() for row in picks]
    np.testing.assert_allclose(fast, naive, rtol=1e-12)


def test_ci_brackets_mean_is_seeded_and_reports_counts() -> None:
    values, groups = _volumes(np.random.default_rng(0), 30, 10)
    ci = bootstrap_mean_ci(values, groups, n_boot=1000, seed=5)
    assert ci.low < ci.mean < ci.high
    assert ci.mean == pytest.approx(values.mean())
    assert (ci.n, ci.n_groups, ci.n_dropped, ci.alpha) == (300, 30, 0, 0.05)
    assert bootstrap_mean_ci(values, groups, n_boot=1000, seed=5) == ci
    assert bootstrap_mean_ci(values, groups, n_boot=1000, seed=6) != ci


def test_cluster_interval_reflects_volume_correlation() -> None:
    """Width ~ 2 * 1.96 * sd(volume means) / sqrt(G), far wider than an iid slice bootstrap would give."""
    values, groups = _volumes(np.random.default_rng(2), 40, 25, vol_sd=0.05, slice_sd=0.01)
    ci = bootstrap_mean_ci(values, groups, n_boot=4000, seed=0)
    vol_means = values.reshape(40, 25).mean(1)
    expected = 2 * 1.96 * vol_means.std(ddof=1) / np.sqrt(40)
    assert (ci.high - ci.low) == pytest.approx(expected, rel=0.15)
    iid = 2 * 1.96 * values.std(ddof=1) / np.sqrt(len(values))
    assert ci.high - ci.low > 3 * iid


def test_coverage_is_close_to_nominal() -> None:
    rng = np.random.default_rng(11)
    hits = 0
    for sim in range(200):
        values, groups = _volumes(rng, 25, 6)
        ci = bootstrap_mean_ci(values, groups, n_boot=400, seed=sim)
        hits += ci.low <= 0.9 <= ci.high
    assert 0.86 <= hits / 200 <= 0.99


def test_two_thousand_draws_over_ten_thousand_slices_is_fast() -> None:
    values, groups = _volumes(np.random.default_rng(0), 500, 20)
    bootstrap_mean_ci(values, groups, n_boot=50)  # warm-up
    t0 = time.perf_counter()
    bootstrap_mean_ci(values, groups, n_boot=2000)
    one_slice_per_volume = np.arange(10_000)
    bootstrap_mean_ci(values, one_slice_per_volume, n_boot=2000)
    assert time.perf_counter() - t0 < 2.0  # both together; each is a fraction of a second


def test_nan_values_are_dropped_and_counted() -> None:
    values, groups = _volumes(np.random.default_rng(0), 10, 4)
    values[[0, 5, 7]] = np.nan
    ci = bootstrap_mean_ci(values, groups, n_boot=200)
    assert (ci.n, ci.n_dropped) == (37, 3)
    assert ci.mean == pytest.approx(np.nanmean(values))
    all_nan = bootstrap_mean_ci([np.nan, np.nan], ["a", "b"])
    assert all_nan.n == 0 and all_nan.n_dropped == 2 and np.isnan(all_nan.mean)


def test_single_volume_has_undefined_interval() -> None:
    ci = bootstrap_mean_ci([0.8, 0.9, 1.0], ["v", "v", "v"])
    assert ci.mean == pytest.approx(0.9) and np.isnan(ci.low) and np.isnan(ci.high) and ci.n_groups == 1


def test_paired_difference_detects_a_shift_and_not_noise() -> None:
    rng = np.random.default_rng(4)
    a, groups = _volumes(rng, 30, 8)
    b = a + 0.01 + rng.normal(0, 0.002, len(a))
    d = paired_difference(a, b, groups, n_boot=2000, seed=0)
    assert d.mean == pytest.approx(np.mean(b - a))
    assert d.low < d.mean < d.high and d.low > 0
    assert d.p_value == pytest.approx(1 / 2001)  # every recentred draw is far below |d|
    assert d.mean_a == pytest.approx(a.mean()) and d.mean_b == pytest.approx(b.mean())
    null = paired_difference(a, a + rng.normal(0, 0.002, len(a)), groups, n_boot=2000, seed=0)
    assert null.p_value > 0.05 and null.low < 0 < null.high


def test_paired_difference_p_value_is_roughly_uniform_under_the_null() -> None:
    rng = np.random.default_rng(9)
    ps = []
    for sim in range(150):
        a, groups = _volumes(rng, 20, 5)
        ps.append(paired_difference(a, a + rng.normal(0, 0.01, len(a)), groups, n_boot=300, seed=sim).p_value)
    assert 0.01 <= np.mean(np.array(ps) < 0.05) <= 0.12


def test_paired_difference_drops_nan_pairs() -> None:
    a = np.array([0.9, np.nan, 0.8, 0.7, 0.6, 0.5])
    b = np.array([1.0, 0.9, np.nan, 0.8, 0.7, 0.6])
    d = paired_difference(a, b, ["x", "x", "y", "y", "z", "z"], n_boot=100)
    assert (d.n, d.n_dropped, d.n_groups) == (4, 2, 3)
    assert d.mean == pytest.approx(0.1)


@pytest.mark.parametrize(
    "call",
    [
        lambda: bootstrap_mean_ci([1.0, 2.0], ["a"]),
        lambda: bootstrap_mean_ci(np.ones((2, 2)), ["a", "b"]),
        lambda: bootstrap_mean_ci([1.0], ["a"], alpha=1.5),
        lambda: bootstrap_mean_ci([1.0], ["a"], n_boot=0),
        lambda: bootstrap_mean_ci([], []),
        lambda: paired_difference([1.0, 2.0], [1.0], ["a", "b"]),
    ],
)
def test_bad_input_raises_value_error(call) -> None:
    with pytest.raises(ValueError, match="expected"):
        call()
    with pytest.raises(MribenchError):
        call()
    assert issubclass(AnalysisInputError, ValueError)


def test_global_rng_untouched() -> None:
    state = np.random.get_state()
    values, groups = _volumes(np.random.default_rng(0), 10, 3)
    bootstrap_mean_ci(values, groups, n_boot=100)
    paired_difference(values, values + 1, groups, n_boot=100)
    assert (np.random.get_state()[1] == state[1]).all()


def test_infinite_values_are_left_out_of_the_mean_and_counted() -> None:
    """The rule of mribench.analysis.stats: +-Inf is a value (PSNR of an exact reconstruction), counted in
    n_inf and left out of the mean; NaN is 'not defined' and counted in n_dropped."""
    values, groups = _volumes(np.random.default_rng(0), 10, 4)
    finite = values.copy()
    values[[1, 9]] = np.inf
    values[4] = np.nan
    ci = bootstrap_mean_ci(values, groups, n_boot=200, seed=1)
    assert (ci.n, ci.n_inf, ci.n_dropped) == (37, 2, 1)
    keep = np.isfinite(values)
    assert np.isfinite(ci.mean) and ci.mean == pytest.approx(finite[keep].mean(), rel=1e-15)
    same = bootstrap_mean_ci(finite[keep], groups[keep], n_boot=200, seed=1)
    assert (ci.mean, ci.low, ci.high, ci.n_groups) == (same.mean, same.low, same.high, same.n_groups)
    only_inf = bootstrap_mean_ci([np.inf, -np.inf], ["a", "b"])
    assert (only_inf.n, only_inf.n_inf) == (0, 2) and np.isnan(only_inf.mean)


def test_paired_difference_counts_pairs_with_an_infinite_side() -> None:
    a = np.array([30.0, np.inf, 31.0, 32.0, np.nan, 33.0])
    b = np.array([31.0, np.inf, np.inf, 33.0, 34.0, 34.0])
    d = paired_difference(a, b, ["x", "x", "y", "y", "z", "z"], n_boot=100)
    assert (d.n, d.n_inf, d.n_dropped) == (3, 2, 1)
    assert d.mean == pytest.approx(1.0) and np.isfinite(d.low) and np.isfinite(d.high)


def test_summarize_columns_shares_draws_and_matches_one_call_per_column() -> None:
    rng = np.random.default_rng(3)
    values, groups = _volumes(rng, 12, 5)
    psnr = 30 + 10 * values
    psnr[[0, 7]] = np.inf  # two exact reconstructions
    region = values.copy()
    region[::3] = np.nan  # a region metric: NaN where a slice has no box
    cols = {"ssim": values, "psnr": psnr, "region": region}
    out = summarize_columns(cols, groups, n_boot=300, seed=2)
    assert list(out) == ["ssim", "psnr", "region"]
    for m, c in out.items():
        one = bootstrap_mean_ci(cols[m], groups, n_boot=300, seed=2)
        for k in ("mean", "low", "high"):
            assert getattr(c, k) == pytest.approx(getattr(one, k), rel=1e-12)
        assert (c.n, c.n_groups, c.n_dropped, c.n_inf) == (one.n, one.n_groups, one.n_dropped, one.n_inf)
    assert (out["psnr"].n, out["psnr"].n_inf) == (58, 2) and out["region"].n_dropped == 20


def test_finite_split_counts_rows() -> None:
    fs = finite_split(np.array([1.0, np.inf, np.nan, np.nan, 2.0]), np.array([1.0, 1.0, 1.0, -np.inf, np.nan]))
    assert fs.keep.tolist() == [True, False, False, False, False] and (fs.n_inf, fs.n_dropped) == (2, 2)


def test_bootstrap_t_interval_is_a_point_for_constant_differences_and_refuses_non_finite() -> None:
    assert bootstrap_t_interval(np.zeros(6), ["a", "a", "b", "b", "c", "c"], 0.05) == (0.0, 0.0, 0.0, 1.0, 0.0)
    mean, low, high, p, se = bootstrap_t_interval(np.array([0.1, 0.2]), ["a", "a"], 0.05)  # one volume
    assert mean == pytest.approx(0.15) and all(np.isnan(x) for x in (low, high, p, se))
    values, groups = _volumes(np.random.default_rng(5), 20, 3)
    mean, low, high, p, _ = bootstrap_t_interval(values - 0.9, groups, 0.05, n_boot=500)
    assert low < mean < high and 0 < p <= 1
    with pytest.raises(AnalysisInputError, match="finite"):
        bootstrap_t_interval(np.array([0.1, np.inf]), ["a", "b"], 0.05)
