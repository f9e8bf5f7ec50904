"""Cluster-bootstrap confidence intervals over volumes.

Slices of one volume are strongly correlated (same subject, same mask, same scanner), so the
resampling unit is the *volume*: a bootstrap draw picks ``G`` volumes with replacement out of the
``G`` volumes present, and every picked volume contributes all of its slices. The statistic of a draw
is the **per-slice mean** of the resampled slices (volumes with more slices weigh more, exactly as in
the point estimate, which is the plain mean over slices). Intervals are percentile intervals
``[q(alpha/2), q(1 - alpha/2)]`` of the bootstrap distribution.

The draws are vectorised: slices are first reduced to per-volume sums and counts, a draw is a row
of ``G`` uniform volume indices (``rng.integers(0, G, size=(B, G), dtype=int32)``), and the bootstrap
mean of a draw is the sum of the picked volumes' sums over the sum of their counts, computed for all
draws at once in memory-bounded chunks (no Python loop over draws).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mribench.analysis._checks import AnalysisInputError, as_1d, check_alpha, check_positive_int, same_length

# Upper bound on the number of gathered per-volume sums materialised at once (B_chunk * G * K).
_CHUNK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class CI:
    """A point estimate with a bootstrap confidence interval.

    Attributes:
        mean: the per-slice mean of the finite values.
        low: lower bound of the ``1 - alpha`` percentile interval (NaN with fewer than 2 volumes).
        high: upper bound of the interval (NaN with fewer than 2 volumes).
        alpha: the interval's miscoverage level (0.05 -> 95% interval).
        n: number of slices used.
        n_groups: number of volumes those slices came from.
        n_dropped: number of slices dropped because their value was NaN.
    """

    mean: float
    low: float
    high: float
    alpha: float
    n: int
    n_groups: int
    n_dropped: int


@dataclass(frozen=True)
class PairedDifference:
    """Mean paired difference ``b - a`` with a cluster-bootstrap CI and p-value.

    Attributes:
        mean: mean over slices of ``b - a``.
        low: lower CI bound of the mean difference (NaN with fewer than 2 volumes).
        high: upper CI bound of the mean difference (NaN with fewer than 2 volumes).
        p_value: two-sided bootstrap p-value for "mean difference = 0" (see :func:`paired_difference`).
        mean_a: mean of ``a`` over the pairs used.
        mean_b: mean of ``b`` over the pairs used.
        alpha: the interval's miscoverage level.
        n: number of pairs used.
        n_groups: number of volumes those pairs came from.
        n_dropped: number of pairs dropped because ``a`` or ``b`` was NaN.
    """

    mean: float
    low: float
    high: float
    p_value: float
    mean_a: float
    mean_b: float
    alpha: float
    n: int
    n_groups: int
    n_dropped: int


def factorize_groups(groups: Sequence[Any] | np.ndarray) -> tuple[np.ndarray, int]:
    """Map volume ids to integer codes.

    Args:
        groups: (N,) hashable volume ids (file names, integers, ...).

    Returns:
        ``(codes, n_groups)``: int64 codes (N,) in ``[0, n_groups)`` and the number of distinct ids.
    """
    arr = np.asarray(groups, dtype=object) if not isinstance(groups, np.ndarray) else groups
    if arr.ndim != 1:
        raise AnalysisInputError(f"expected groups of shape (N,), got shape {arr.shape}")
    codes, uniques = pd.factorize(arr, use_na_sentinel=False)
    return codes.astype(np.int64), len(uniques)


def cluster_bootstrap_means(
    values: np.ndarray, groups: Sequence[Any] | np.ndarray, n_boot: int = 2000, seed: int = 0
) -> np.ndarray:
    """Bootstrap distribution of per-slice means, resampling volumes with replacement.

    Several columns share the same draws, so statistics built from them (differences, ratios) are
    paired. NaNs are not removed here; drop them first (they would propagate into every draw).

    Args:
        values: (N,) or (N, K) per-slice values.
        groups: (N,) volume id of each slice.
        n_boot: number of bootstrap draws B.
        seed: seed of the local generator (``np.random.default_rng(seed)``).

    Returns:
        (B,) bootstrap means for 1-D ``values``, (B, K) for 2-D ``values``.
    """
    check_positive_int("n_boot", n_boot)
    vals = np.asarray(values, dtype=np.float64)
    if vals.ndim not in (1, 2):
        raise AnalysisInputError(f"expected values of shape (N,) or (N, K), got shape {vals.shape}")
    cols = vals.reshape(len(vals), -1)  # (N, K)
    codes, n_groups = factorize_groups(groups)
    same_length(values=cols, groups=codes)
    if len(cols) == 0:
        raise AnalysisInputError("expected at least one value, got 0")
    sums = np.zeros((n_groups, cols.shape[1]))
    np.add.at(sums, codes, cols)  # (G, K) per-volume sums
    counts = np.bincount(codes, minlength=n_groups).astype(np.float64)  # (G,)
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ELEMENTS // (n_groups * cols.shape[1]))
    out = np.empty((n_boot, cols.shape[1]))
    for start in range(0, n_boot, rows):  # loop over memory chunks, not over draws
        b = min(rows, n_boot - start)
        picks = rng.integers(0, n_groups, size=(b, n_groups), dtype=np.int32)  # (b, G) volumes per draw
        out[start : start + b] = sums[picks].sum(axis=1) / counts[picks].sum(axis=1)[:, None]  # (b, K)
    return out[:, 0] if vals.ndim == 1 else out


def percentile_interval(draws: np.ndarray, alpha: float) -> tuple[float, float]:
    """``[q(alpha/2), q(1 - alpha/2)]`` of the finite draws (B,); NaNs when none is finite."""
    finite = draws[np.isfinite(draws)]
    if finite.size == 0:
        return float("nan"), float("nan")
    lo, hi = np.quantile(finite, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def bootstrap_mean_ci(
    values: Sequence[float] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> CI:
    """Per-slice mean with a cluster-bootstrap (over volumes) percentile confidence interval.

    NaN values are dropped (their count is reported in ``n_dropped``). With all values NaN the
    result is all-NaN with ``n == 0``; with a single volume the interval is undefined (NaN bounds).

    Args:
        values: (N,) per-slice metric values.
        groups: (N,) volume id of each slice.
        n_boot: number of bootstrap draws.
        alpha: miscoverage level of the interval (0.05 -> 95% CI).
        seed: seed of the local generator.

    Returns:
        A :class:`CI`.
    """
    check_alpha(alpha)
    check_positive_int("n_boot", n_boot)
    vals = as_1d("values", values)
    grp = np.asarray(groups, dtype=object)
    same_length(values=vals, groups=grp)
    if len(vals) == 0:
        raise AnalysisInputError("expected at least one value, got 0")
    keep = ~np.isnan(vals)
    vals, grp = vals[keep], grp[keep]
    n_dropped = int((~keep).sum())
    if len(vals) == 0:
        nan = float("nan")
        return CI(nan, nan, nan, alpha, 0, 0, n_dropped)
    n_groups = factorize_groups(grp)[1]
    mean = float(vals.mean())
    if n_groups < 2:
        return CI(mean, float("nan"), float("nan"), alpha, len(vals), n_groups, n_dropped)
    low, high = percentile_interval(cluster_bootstrap_means(vals, grp, n_boot, seed), alpha)
    return CI(mean, low, high, alpha, len(vals), n_groups, n_dropped)


def paired_difference(
    a: Sequence[float] | np.ndarray,
    b: Sequence[float] | np.ndarray,
    groups: Sequence[Any] | np.ndarray,
    n_boot: int = 2000,
    alpha: float = 0.05,
    seed: int = 0,
) -> PairedDifference:
    """Mean paired difference ``b - a`` over slices with a cluster-bootstrap CI and p-value.

    ``a[i]`` and ``b[i]`` are the same slice under two conditions (two models, before/after an
    intervention). Pairs with a NaN on either side are dropped. The CI is the percentile interval of
    the cluster-bootstrap distribution of the mean difference ``d*``. The two-sided p-value for
    H0 "mean difference = 0" uses the bootstrap distribution recentred at zero (Hall & Wilson, 1991):
    ``p = (1 + #{|d*_b - d| >= |d|}) / (1 + B)`` where ``d`` is the observed mean difference, so
    ``p`` is never exactly 0 and its resolution is ``1 / (1 + B)``.

    Args:
        a: (N,) per-slice values of the reference condition.
        b: (N,) per-slice values of the compared condition.
        groups: (N,) volume id of each slice.
        n_boot: number of bootstrap draws B.
        alpha: miscoverage level of the interval.
        seed: seed of the local generator.

    Returns:
        A :class:`PairedDifference`; CI bounds and p-value are NaN with fewer than 2 volumes.
    """
    check_alpha(alpha)
    check_positive_int("n_boot", n_boot)
    va, vb = as_1d("a", a), as_1d("b", b)
    grp = np.asarray(groups, dtype=object)
    same_length(a=va, b=vb, groups=grp)
    if len(va) == 0:
        raise AnalysisInputError("expected at least one pair, got 0")
    keep = ~(np.isnan(va) | np.isnan(vb))
    va, vb, grp = va[keep], vb[keep], grp[keep]
    n_dropped = int((~keep).sum())
    nan = float("nan")
    if len(va) == 0:
        return PairedDifference(nan, nan, nan, nan, nan, nan, alpha, 0, 0, n_dropped)
    diff = vb - va
    d = float(diff.mean())
    n_groups = factorize_groups(grp)[1]
    mean_a, mean_b = float(va.mean()), float(vb.mean())
    if n_groups < 2:
        return PairedDifference(d, nan, nan, nan, mean_a, mean_b, alpha, len(va), n_groups, n_dropped)
    draws = cluster_bootstrap_means(diff, grp, n_boot, seed)
    low, high = percentile_interval(draws, alpha)
    p = (1 + int(np.count_nonzero(np.abs(draws - d) >= abs(d)))) / (1 + n_boot)
    return PairedDifference(d, low, high, float(p), mean_a, mean_b, alpha, len(va), n_groups, n_dropped)


# --------------------------------------------------------------------------- power of a paired check


def t_half_width(se: float, n_groups: int, alpha: float) -> float:
    """Half-width ``t(1 - alpha/2, G - 1) * se`` of a t interval over ``G`` volumes.

    This is the smallest mean difference such an interval tells apart from a given value (the
    *detectable* difference of a check): an interval ``mean +- half-width`` lies wholly on one side
    of a threshold only when the mean is at least this far from it.

    Args:
        se: standard error of the mean difference (e.g. from a cluster bootstrap over volumes).
        n_groups: number of volumes ``G``.
        alpha: miscoverage of the interval.

    Returns:
        The half-width; ``inf`` with fewer than 2 volumes (no interval) or a non-finite ``se``.
    """
    from scipy import stats

    check_alpha(alpha)
    if n_groups < 2 or not np.isfinite(se):
        return float("inf")
    return float(stats.t.ppf(1 - alpha / 2, df=n_groups - 1)) * float(se)


def volumes_to_decide(
    se: float, n_groups: int, margin: float, alpha: float, max_volumes: int = 1_000_000
) -> int | None:
    """How many volumes would make a t interval's half-width smaller than ``margin``.

    The standard error is assumed to shrink as ``se * sqrt(G / G')`` when ``G'`` volumes like the
    ``G`` observed ones are used, and the t quantile is taken at ``G' - 1`` degrees of freedom.
    With ``margin = |threshold - mean|`` this is about how many volumes a check needs to decide on
    which side of the threshold the mean difference lies (an estimate: the mean and the spread
    are themselves estimated from ``G`` volumes).

    Args:
        se: standard error observed over ``n_groups`` volumes.
        n_groups: volumes observed ``G`` (>= 2).
        margin: the half-width to get below (> 0).
        alpha: miscoverage of the interval.
        max_volumes: give up above this many.

    Returns:
        The smallest ``G' >= 2`` that suffices (``n_groups`` or fewer when already decided), or
        None when it cannot be estimated (fewer than 2 volumes, non-finite ``se``, ``margin <= 0``)
        or exceeds ``max_volumes``.
    """
    check_alpha(alpha)
    if n_groups < 2 or not np.isfinite(se) or not margin > 0 or not np.isfinite(margin):
        return None
    if se == 0:
        return 2

    def enough(g: int) -> bool:
        return t_half_width(se * float(np.sqrt(n_groups / g)), g, alpha) < margin

    if not enough(max_volumes):
        return None
    lo, hi = 2, max_volumes  # enough(hi) holds; find the smallest such g
    if enough(lo):
        return lo
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if enough(mid):
            hi = mid
        else:
            lo = mid
    return hi
