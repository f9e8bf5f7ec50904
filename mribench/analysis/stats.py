"""Every mean, confidence interval and paired comparison mribench reports (one module, one rule).

Run summaries (:func:`mribench.results.summarize`, hence ``evaluate``, ``report`` and the
leaderboard), the regression gate (``mribench check``), robustness curves and the gap analyses all
come through the functions here.

**Cluster bootstrap.** Slices of one volume are strongly correlated (same subject, same mask, same
scanner), so the resampling unit is the *volume*: a bootstrap draw picks ``G`` volumes with
replacement out of the ``G`` volumes present, and every picked volume contributes all of its
slices. The statistic of a draw is the **per-slice mean** of the resampled slices (volumes with more
slices weigh more, exactly as in the point estimate, which is the plain mean over slices). Intervals
are percentile intervals ``[q(alpha/2), q(1 - alpha/2)]`` of the bootstrap distribution, except for
the regression gate's :func:`bootstrap_t_interval` (see there).

The draws are vectorised: slices are first reduced to per-volume sums and counts, a draw is a row
of ``G`` uniform volume indices (``rng.integers(0, G, size=(B, G), dtype=int32)``), and the bootstrap
mean of a draw is the sum of the picked volumes' sums over the sum of their counts, computed for all
draws at once in memory-bounded chunks (no Python loop over draws).

**Non-finite per-slice values (mribench's rule; the papers do not define one).** A per-slice metric
value is finite, NaN or infinite, and the two kinds of non-finite value mean different things:

* **NaN = not defined on this slice** (a region metric on a slice without an annotated box; NMSE of
  an all-zero target). It is excluded from the mean and the CI and counted (``n_dropped`` here;
  ``n_ok - n - n_inf`` in a run summary).
* **+-Inf = a value the metric's definition reaches**: PSNR of an exact reconstruction is +Inf
  (MSE = 0, ``10 log10(range^2 / 0)``). It is a real outcome, so it is never turned into a missing
  value: the per-slice store keeps it (JSON ``"inf"`` / ``"-inf"``, see :func:`mribench.results.dumps`;
  Parquet stores it natively) and every summary counts it in ``n_inf``. It is excluded from the mean
  and the CI, because one infinite term makes a mean infinite and says nothing about the other
  slices: ``mean`` and the CI describe the ``n`` finite values, and ``n_inf`` is shown next to them
  wherever it is non-zero (CLI table, report, leaderboard entry, check notes). No value is capped.
* Paired comparisons use the pairs finite on both sides; a pair with an infinite side is counted in
  ``n_inf``, any other dropped pair (a NaN side) in ``n_dropped``.

On all-finite data nothing of this changes a number.
"""

from __future__ import annotations

import math
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
        n: number of slices used (finite values).
        n_groups: number of volumes those slices came from.
        n_dropped: number of slices left out because their value was NaN (not defined).
        n_inf: number of slices left out of the mean because their value was +-Inf (counted, see
            the module docstring).
    """

    mean: float
    low: float
    high: float
    alpha: float
    n: int
    n_groups: int
    n_dropped: int
    n_inf: int = 0


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
        n: number of pairs used (finite on both sides).
        n_groups: number of volumes those pairs came from.
        n_dropped: number of pairs dropped because ``a`` or ``b`` was NaN (and neither infinite).
        n_inf: number of pairs left out because ``a`` or ``b`` was +-Inf.
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
    n_inf: int = 0


@dataclass(frozen=True)
class FiniteSplit:
    """Which values enter a mean under the module's rule.

    Attributes:
        keep: (N,) bool, True where every value of the row is finite.
        n_dropped: rows left out for a NaN (and no infinite value).
        n_inf: rows left out for an infinite value.
    """

    keep: np.ndarray
    n_dropped: int
    n_inf: int


def finite_split(*columns: np.ndarray) -> FiniteSplit:
    """Apply the non-finite rule to one or more aligned (N,) columns (a row is kept when all are finite).

    Args:
        *columns: float arrays of equal shape (N,).

    Returns:
        A :class:`FiniteSplit`.
    """
    stacked = np.stack([np.asarray(c, dtype=np.float64) for c in columns], axis=1)  # (N, K)
    keep = np.asarray(np.isfinite(stacked).all(axis=1))
    n_inf = int(np.isinf(stacked).any(axis=1).sum())
    return FiniteSplit(keep, int((~keep).sum()) - n_inf, n_inf)


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

    Non-finite values follow the module's rule: NaN values are dropped (counted in ``n_dropped``),
    +-Inf values are left out of the mean and counted in ``n_inf``. With no finite value the result
    is all-NaN with ``n == 0``; with a single volume the interval is undefined (NaN bounds).

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
    fs = finite_split(vals)
    vals, grp = vals[fs.keep], grp[fs.keep]
    if len(vals) == 0:
        nan = float("nan")
        return CI(nan, nan, nan, alpha, 0, 0, fs.n_dropped, fs.n_inf)
    n_groups = factorize_groups(grp)[1]
    mean = float(vals.mean())
    if n_groups < 2:
        return CI(mean, float("nan"), float("nan"), alpha, len(vals), n_groups, fs.n_dropped, fs.n_inf)
    low, high = percentile_interval(cluster_bootstrap_means(vals, grp, n_boot, seed), alpha)
    return CI(mean, low, high, alpha, len(vals), n_groups, fs.n_dropped, fs.n_inf)


def summarize_columns(
    columns: dict[str, np.ndarray],
    groups: Sequence[Any] | np.ndarray,
    n_boot: int = 1000,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict[str, CI]:
    """:func:`bootstrap_mean_ci` of several metrics of the same slices (what a run summary shows).

    Columns that are finite on the same slices share one bootstrap call: the draws depend only on
    the seed and the number of volumes, so the result equals one call per column, at a fraction of
    the cost.

    Args:
        columns: ``{name: (N,) float values}``.
        groups: (N,) volume id of each slice.
        n_boot: number of bootstrap draws.
        alpha: miscoverage level of the intervals.
        seed: seed of the local generator.

    Returns:
        ``{name: CI}`` in the order of ``columns``.
    """
    check_alpha(alpha)
    check_positive_int("n_boot", n_boot)
    grp = np.asarray(groups, dtype=object)
    arrays = {m: np.asarray(a, dtype=np.float64) for m, a in columns.items()}
    patterns: dict[bytes, list[str]] = {}
    for m, a in arrays.items():
        if a.shape != grp.shape:
            raise AnalysisInputError(f"expected {m} of shape {grp.shape} (one value per group id), got {a.shape}")
        patterns.setdefault(np.isfinite(a).tobytes(), []).append(m)  # region metrics: NaN without boxes
    out: dict[str, CI] = {}
    nan = float("nan")
    for names in patterns.values():
        keep = np.isfinite(arrays[names[0]])
        n = int(keep.sum())
        n_groups = len(set(grp[keep].tolist()))
        means = {m: float(arrays[m][keep].mean()) if n else nan for m in names}
        bounds = {m: (nan, nan) for m in names}
        if n and n_groups >= 2:
            draws = cluster_bootstrap_means(
                np.stack([arrays[m][keep] for m in names], axis=1), grp[keep], n_boot=n_boot, seed=seed
            )
            bounds = {m: percentile_interval(draws[:, k], alpha) for k, m in enumerate(names)}
        for m in names:
            n_inf = int(np.isinf(arrays[m]).sum())
            n_dropped = len(keep) - n - n_inf
            out[m] = CI(means[m], bounds[m][0], bounds[m][1], alpha, n, n_groups, n_dropped, n_inf)
    return {m: out[m] for m in arrays}


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
    intervention). Only pairs finite on both sides are used (a pair with an infinite side is counted
    in ``n_inf``, one with a NaN side in ``n_dropped``). The CI is the percentile interval of
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
    fs = finite_split(va, vb)
    va, vb, grp = va[fs.keep], vb[fs.keep], grp[fs.keep]
    nan = float("nan")
    if len(va) == 0:
        return PairedDifference(nan, nan, nan, nan, nan, nan, alpha, 0, 0, fs.n_dropped, fs.n_inf)
    diff = vb - va
    d = float(diff.mean())
    n_groups = factorize_groups(grp)[1]
    mean_a, mean_b = float(va.mean()), float(vb.mean())
    if n_groups < 2:
        return PairedDifference(d, nan, nan, nan, mean_a, mean_b, alpha, len(va), n_groups, fs.n_dropped, fs.n_inf)
    draws = cluster_bootstrap_means(diff, grp, n_boot, seed)
    low, high = percentile_interval(draws, alpha)
    p = (1 + int(np.count_nonzero(np.abs(draws - d) >= abs(d)))) / (1 + n_boot)
    return PairedDifference(d, low, high, float(p), mean_a, mean_b, alpha, len(va), n_groups, fs.n_dropped, fs.n_inf)


def bootstrap_t_interval(
    d: np.ndarray, groups: Sequence[Any] | np.ndarray, alpha: float, n_boot: int = 2000, seed: int = 0
) -> tuple[float, float, float, float, float]:
    """Mean of paired differences with a t-interval from the cluster-bootstrap standard error.

    The interval is ``mean +- t(1 - alpha/2, G - 1) * SE`` with SE the standard deviation of the
    cluster-bootstrap means of ``d`` times ``sqrt(G / (G - 1))``; the p-value is the two-sided t
    test of a zero mean with the same SE and ``G - 1`` degrees of freedom. With the few volumes of a
    typical test split, percentile intervals are too narrow and a gate built on them fails on noise
    (measured: 15% instead of 5% with 10 volumes), hence this interval for ``mribench check``. A
    constant ``d`` (e.g. identical runs) gives a zero-width interval at its value. With fewer than 2
    volumes nothing is known about the spread between volumes: the bounds, p-value and SE are NaN
    (never a zero-width interval).

    Args:
        d: (N,) finite paired differences (drop non-finite pairs first, see :func:`finite_split`).
        groups: (N,) volume id of each pair.
        alpha: miscoverage level of the interval.
        n_boot: number of bootstrap draws.
        seed: seed of the local generator.

    Returns:
        ``(mean, low, high, p_value, se)``.
    """
    from scipy import stats  # scipy.stats costs a second to import; only the gate needs it

    check_alpha(alpha)
    d = as_1d("d", d)
    if len(d) == 0:
        raise AnalysisInputError("expected at least one difference, got 0")
    if not np.isfinite(d).all():
        raise AnalysisInputError("expected finite differences, got a non-finite value (drop those pairs first)")
    mean = float(d.mean())
    n_groups = len(set(np.asarray(groups, dtype=object).tolist()))
    nan = float("nan")
    if n_groups < 2:
        return mean, nan, nan, nan, nan
    if np.all(d == d[0]):
        return mean, mean, mean, 1.0 if mean == 0 else 0.0, 0.0
    draws = cluster_bootstrap_means(d, groups, n_boot=n_boot, seed=seed)
    se = float(np.std(draws, ddof=1)) * math.sqrt(n_groups / (n_groups - 1))
    if se == 0:
        return mean, mean, mean, 1.0 if mean == 0 else 0.0, 0.0
    q = float(stats.t.ppf(1 - alpha / 2, df=n_groups - 1))
    p = float(2 * stats.t.sf(abs(mean) / se, df=n_groups - 1))
    return mean, mean - q * se, mean + q * se, p, se


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
