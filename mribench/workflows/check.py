"""Regression gate: paired per-slice comparison of a candidate run against a reference.

Verdicts (and the exit codes of ``mribench check``):

* **pass** (0): for every compared (split, metric) the candidate is shown to be at most the
  allowed drop worse than the reference: the upper end of the paired CI of the degradation
  (reference - candidate for higher-is-better metrics, candidate - reference otherwise) is at most
  the allowed drop, or every slice is equal within the metric's tolerance;
* **regression** (1): the candidate failed on some slice (a crash, a wrong shape, NaN/Inf), or is
  shown to be worse than allowed: the lower end of the CI exceeds the allowed drop;
* **misuse** (2): the runs cannot be compared (numbers defined differently: task, task hash, split
  manifests, masks, metric profiles, normalisation, precision; the candidate misses reference
  slices without ``allow_missing``; a reference with failed slices; bad arguments);
* **inconclusive** (3): neither is shown: the CI contains the allowed drop. The check then reports
  its *detectable* drop (the CI half-width: the smallest mean degradation it tells apart from the
  allowed drop) and about how many volumes would decide.

The CI is :func:`mribench.analysis.stats.bootstrap_t_interval`: ``mean +- t(1 - alpha/2, G - 1) * SE``
over the ``G`` volumes, with SE the standard deviation of the paired cluster bootstrap (volumes resampled, slices of a volume kept together)
times sqrt(G / (G - 1)): with the few volumes of a typical test split, plain percentile intervals
are too narrow and a gate built on them fails on noise (measured: 15% instead of 5% with 10
volumes). One volume gives no interval (nothing is known about the spread between volumes): such
a comparison is inconclusive unless the runs are equal. ``alpha`` is Bonferroni-corrected over the
comparisons by default, so that a gate with many comparisons does not fail on noise more often.
Only slices finite in both runs are compared; slices where either run has an infinite value (PSNR of
an exact reconstruction) are counted in ``n_inf`` and named in the notes, never silently lost.

Allowed drops: ``max_drop`` per metric; every metric is allowed at least its tolerance
(:class:`mribench.metrics.registry.Tolerance`, part of the metric's definition), so float-level
differences (another CPU, another BLAS) never fail, and metrics not named get exactly that.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pandas as pd

from mribench.analysis.stats import bootstrap_t_interval, finite_split
from mribench.api.metric_names import canonical_metric
from mribench.api.run import EvalOptions, RunConfig, Runtime, comparable
from mribench.errors import MribenchError, ResultsError
from mribench.fmt import compact
from mribench.results import RunResult, config_from_json, json_number, load_run, summarize

if TYPE_CHECKING:
    from mribench.models.loaded import LoadedModel
    from mribench.tasks import TaskSpec

MAX_JSON_BYTES = 200 * 1024 * 1024
VERDICTS = ("pass", "regression", "inconclusive")
EXIT_CODES = {"pass": 0, "regression": 1, "misuse": 2, "inconclusive": 3}
"""Exit codes of ``mribench check``: 0 pass, 1 regression, 2 misuse (no verdict), 3 inconclusive."""


class CheckMisuse(MribenchError):
    """The two runs cannot be compared (different task, splits or metric definitions, missing slices)."""

    exit_code = 2


@dataclass(frozen=True)
class Comparison:
    """The verdict for one (split, metric).

    Attributes:
        split, metric: what was compared.
        n: paired slices; n_volumes: volumes they come from.
        reference, candidate: means over the paired slices.
        degradation: mean loss of the candidate (positive = worse), direction-aware.
        ci_low, ci_high: the CI of the degradation (NaN with fewer than 2 volumes).
        p_value: two-sided p-value of a zero difference (NaN with fewer than 2 volumes).
        threshold: the allowed degradation (at least ``tolerance``).
        tolerance: the metric's tolerance at the reference mean.
        detectable: the CI half-width (inf with fewer than 2 volumes).
        volumes_needed: about how many volumes would decide an inconclusive comparison (None when
            it cannot be estimated or the comparison is decided).
        equal: every paired slice is equal within the metric's tolerance.
        verdict: ``pass``, ``regression`` or ``inconclusive``.
        n_inf: paired slices left out because either run's value was infinite (the rule of
            :mod:`mribench.analysis.stats`: such slices are counted and named, never silently lost).
    """

    split: str
    metric: str
    n: int
    n_volumes: int
    reference: float
    candidate: float
    degradation: float
    ci_low: float
    ci_high: float
    p_value: float
    threshold: float
    tolerance: float
    detectable: float
    volumes_needed: int | None
    equal: bool
    verdict: str
    n_inf: int = 0

    @property
    def regression(self) -> bool:
        return self.verdict == "regression"

    @property
    def inconclusive(self) -> bool:
        return self.verdict == "inconclusive"


@dataclass(frozen=True)
class FailedSlices:
    """Candidate slices that failed in one split.

    Attributes:
        split: the split.
        count: failed slices.
        errors: ``(error, count)`` of the most frequent reasons.
    """

    split: str
    count: int
    errors: list[tuple[str, int]]

    def describe(self) -> str:
        why = "; ".join(f"{e} (x{n})" if n > 1 else e for e, n in self.errors)
        return f"{self.count} failed slice(s) in {self.split}: {why}"


@dataclass
class CheckReport:
    """All comparisons of a check, with the identity of both runs."""

    task: str
    task_version: int
    reference: str
    candidate: str
    alpha: float
    comparisons: list[Comparison] = field(default_factory=list)
    failures: list[FailedSlices] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    comparison_alpha: float | None = None  # alpha of each CI (after the Bonferroni correction)

    @property
    def confidence(self) -> str:
        """The confidence of each comparison's CI, e.g. ``98.75%``."""
        a = self.comparison_alpha if self.comparison_alpha is not None else self.alpha
        return f"{100 * (1 - a):.4g}%"

    @property
    def verdict(self) -> str:
        if self.failures or any(c.regression for c in self.comparisons):
            return "regression"
        return "inconclusive" if any(c.inconclusive for c in self.comparisons) else "pass"

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def passed(self) -> bool:
        return self.verdict == "pass"

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.regression]

    @property
    def undecided(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.inconclusive]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able (non-finite numbers as None)."""
        out = {
            **{k: v for k, v in asdict(self).items() if k not in ("comparisons", "failures")},
            "verdict": self.verdict,
            "exit_code": self.exit_code,
            "failures": [asdict(f) for f in self.failures],
            "comparisons": [asdict(c) for c in self.comparisons],
        }
        return json.loads(json.dumps(_finite_or_none(out)))


def _finite_or_none(o: Any) -> Any:
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if isinstance(o, dict):
        return {k: _finite_or_none(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_finite_or_none(v) for v in o]
    return o


def load_comparable(source: str | os.PathLike[str] | RunResult) -> RunResult:
    """Load a run dir, a results JSON written by ``evaluate --output``, or a leaderboard entry.

    Raises:
        ResultsError: if the source is missing or holds no per-slice results.
    """
    if isinstance(source, RunResult):
        return source
    p = Path(source)
    if p.is_dir():
        return load_run(p)
    if not p.is_file():
        raise ResultsError(f"expected a run directory, results JSON or leaderboard entry, got no such path {p}")
    if p.stat().st_size > MAX_JSON_BYTES:
        raise ResultsError(f"expected a results file under {MAX_JSON_BYTES >> 20} MB, got {p.stat().st_size >> 20} MB")
    try:
        data = json.loads(p.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ResultsError(f"expected JSON in {p}, got: {e}") from None
    if isinstance(data, dict) and "config" in data and "slices" in data:
        cfg = config_from_json(data["config"], p)
        sl = data["slices"]
        records = [dict(zip(sl["columns"], row)) for row in sl["rows"]]
        frame = pd.DataFrame(records)
        for m in cfg.metrics:
            frame[m] = pd.to_numeric(frame.get(m), errors="coerce")
        return RunResult(p, cfg, frame, summarize(frame, cfg.metrics, cfg.higher_is_better))
    from mribench.workflows.leaderboard import entry_to_run  # leaderboard entries carry a per-slice sidecar

    return entry_to_run(p)


def slices_payload(result: RunResult) -> dict[str, Any]:
    """The per-slice table as ``{"columns", "rows"}`` for embedding in a results JSON."""
    df = result.slices
    cols = [c for c in df.columns if c != "error"] + ["error"]
    rows = [[x.item() if isinstance(x, np.generic) else x for x in r] for r in df[cols].itertuples(index=False)]
    return {"columns": cols, "rows": [[json_number(v) if isinstance(v, float) else v for v in r] for r in rows]}


def parse_thresholds(values: list[str] | dict[str, float] | None) -> dict[str, float]:
    """``["ssim=0.002", "psnr=0.1"]`` -> ``{"ssim": 0.002, "psnr": 0.1}``."""
    if values is None:
        return {}
    if isinstance(values, dict):
        return {k: float(v) for k, v in values.items()}
    out: dict[str, float] = {}
    for v in values:
        for part in v.split(","):
            name, sep, num = part.partition("=")
            try:
                out[name.strip()] = float(num)
            except ValueError:
                raise ValueError(
                    f"expected METRIC=NUMBER for --max-drop, got {part!r} (hint: --max-drop ssim=0.002)"
                ) from None
            if not sep or out[name.strip()] < 0:
                raise ValueError(
                    f"expected METRIC=NON-NEGATIVE-NUMBER for --max-drop, got {part!r} (hint: --max-drop ssim=0.002)"
                )
    return out


def _require_same(ref: RunResult, cand: RunResult, metrics: list[str], splits: list[str]) -> None:
    """Refuse runs whose numbers are defined differently (:func:`mribench.api.run.comparable`)."""
    diffs = comparable(ref.config, cand.config, splits=splits, metrics=metrics)
    if diffs:
        raise CheckMisuse(
            f"expected runs whose numbers are defined the same way, got {'; '.join(diffs)} "
            f"(reference first; hint: the same task version, data, split files, masks, metric profiles and options)"
        )


def _keys(df: pd.DataFrame) -> pd.MultiIndex:
    return pd.MultiIndex.from_frame(df[["split", "file", "slice"]])


def _coverage(ref: RunResult, cand: RunResult, splits: list[str], allow_missing: bool) -> list[str]:
    """Refuse a candidate that misses reference slices (unless allowed); notes on what is not compared."""
    r, c = ref.slices, cand.slices
    r_keys, c_keys = _keys(r), _keys(c)
    notes: list[str] = []
    missing: list[str] = []
    for sp in splits:
        in_ref = (r["split"] == sp).to_numpy()
        gone = int((in_ref & ~r_keys.isin(c_keys)).sum())
        if gone:
            missing.append(f"{gone} of {int(in_ref.sum())} reference slices in {sp}")
        extra = int(((c["split"] == sp).to_numpy() & ~c_keys.isin(r_keys)).sum())
        if extra:
            notes.append(f"{extra} candidate slice(s) in {sp} are not in the reference and are not compared")
    if missing and not allow_missing:
        raise CheckMisuse(
            f"expected the candidate to cover the reference's slices, got missing {', '.join(missing)} "
            f"(hint: evaluate the candidate with the reference's --limit, or --allow-missing to compare "
            f"only the slices both runs have)"
        )
    notes += [f"{m} were not evaluated by the candidate and are not compared (--allow-missing)" for m in missing]
    return notes


def _failures(cand: RunResult, ref: RunResult, splits: list[str]) -> list[FailedSlices]:
    """The candidate's failed slices among the reference's, per split, with their most frequent reasons."""
    c = cand.slices
    bad = c[(c["status"] != "ok").to_numpy() & _keys(c).isin(_keys(ref.slices))]
    out = []
    for sp in splits:
        rows = bad[bad["split"] == sp]
        if len(rows):
            errors = Counter(str(e) if e is not None else "unknown error" for e in rows["error"].tolist())
            out.append(FailedSlices(sp, len(rows), errors.most_common(3)))
    return out


def compare_runs(
    reference: str | os.PathLike[str] | RunResult,
    candidate: str | os.PathLike[str] | RunResult,
    *,
    max_drop: dict[str, float] | None = None,
    alpha: float = 0.05,
    metrics: list[str] | None = None,
    n_boot: int = 2000,
    seed: int = 0,
    correction: str = "bonferroni",
    allow_missing: bool = False,
) -> CheckReport:
    """Compare two runs slice by slice (see the module docstring for the verdicts).

    Args:
        reference, candidate: run dirs, results JSONs, leaderboard entries or loaded runs.
        max_drop: allowed degradation per metric; every metric is allowed at least its tolerance
            (:func:`mribench.metrics.tolerance_of`), and metrics not named exactly that.
        alpha: 1 - confidence of the paired CI.
        metrics: metrics to compare (default: those both runs have).
        n_boot, seed: bootstrap settings.
        correction: ``"bonferroni"`` (alpha divided by the number of comparisons) or ``"none"``.
        allow_missing: compare only the slices both runs have when the candidate misses some of
            the reference's (default: refuse).

    Raises:
        CheckMisuse: runs whose numbers are defined differently (task, task hash, split manifests,
            masks, metric profiles, normalisation, precision: :func:`mribench.api.run.comparable`),
            a candidate missing reference slices (without ``allow_missing``), a reference with
            failed slices, or no slices in common.
    """
    from mribench.metrics import tolerance_of

    if not 0 < alpha < 1:
        raise ValueError(f"expected alpha in (0, 1), got {alpha}")
    if correction not in ("bonferroni", "none"):
        raise ValueError(f"expected correction 'bonferroni' or 'none', got {correction!r}")
    ref, cand = load_comparable(reference), load_comparable(candidate)
    common = [m for m in ref.config.metrics if m in cand.config.metrics]
    names = [canonical_metric(m) for m in metrics] if metrics else common  # `lpips` is lpips_vgg
    unknown = [m for m in names if m not in common]
    if unknown:
        raise CheckMisuse(f"expected metrics present in both runs ({', '.join(common)}), got {unknown}")
    thresholds = {canonical_metric(k): v for k, v in (max_drop or {}).items()}
    unknown_thr = sorted(set(thresholds) - set(names))
    if unknown_thr:
        raise CheckMisuse(
            f"expected --max-drop for compared metrics ({', '.join(names)}), got {unknown_thr} "
            f"(hint: --metrics selects the compared metrics)"
        )
    splits = sorted(ref.config.splits)
    shared = [s for s in splits if s in cand.config.splits]
    if not shared and not allow_missing:
        raise CheckMisuse(
            f"expected the candidate to evaluate the reference's splits ({', '.join(splits)}), got "
            f"{', '.join(sorted(cand.config.splits)) or 'none'}"
        )
    _require_same(ref, cand, names, shared)
    ref_bad = ref.slices[ref.slices["status"] != "ok"]
    if len(ref_bad):
        raise CheckMisuse(
            f"expected a reference without failed slices, got: the reference has {len(ref_bad)} failed slice(s) "
            f"(first: {ref_bad['split'].iloc[0]} {ref_bad['file'].iloc[0]} slice {ref_bad['slice'].iloc[0]}: "
            f"{ref_bad['error'].iloc[0]}) (hint: fix and re-evaluate the reference)"
        )
    directions = {**cand.config.higher_is_better, **ref.config.higher_is_better}
    report = CheckReport(ref.config.task.name, ref.config.task.version, str(ref.run_dir), str(cand.run_dir), alpha)
    report.notes += _coverage(ref, cand, splits, allow_missing)
    report.failures = _failures(cand, ref, splits)
    key = ["split", "file", "slice"]
    a = ref.slices[ref.slices["status"] == "ok"]
    b = cand.slices[cand.slices["status"] == "ok"]
    paired = a.merge(b, on=key, suffixes=("_ref", "_cand"))
    if paired.empty and not report.failures:
        raise CheckMisuse("expected slices evaluated successfully in both runs, got none in common")
    n_tests = len(splits) * len(names)
    alpha_eff = alpha / n_tests if correction == "bonferroni" else alpha
    report.comparison_alpha = alpha_eff
    if correction == "bonferroni" and n_tests > 1:
        report.notes.append(
            f"Bonferroni correction over {n_tests} comparisons: each CI at {100 * (1 - alpha_eff):.2f}%"
        )
    for split in splits:
        g = paired[paired["split"] == split]
        for m in names:
            ra, cb = g[f"{m}_ref"].to_numpy(float), g[f"{m}_cand"].to_numpy(float)
            fs = finite_split(ra, cb)
            ok = fs.keep
            if fs.n_inf:
                report.notes.append(
                    f"{split} {m}: {fs.n_inf} slice(s) with an infinite value in either run are not compared"
                )
            if not ok.any():
                continue
            hib = directions.get(m, True)
            report.comparisons.append(
                _compare(
                    split,
                    m,
                    ra[ok],
                    cb[ok],
                    g["file"].to_numpy()[ok],
                    hib,
                    thresholds.get(m),
                    tolerance_of(m),
                    alpha_eff,
                    n_boot,
                    seed,
                    fs.n_inf,
                )
            )
    return report


def _compare(
    split: str,
    metric: str,
    ra: np.ndarray,
    cb: np.ndarray,
    groups: np.ndarray,
    higher_is_better: bool,
    max_drop: float | None,
    tolerance: Any,
    alpha: float,
    n_boot: int,
    seed: int,
    n_inf: int = 0,
) -> Comparison:
    """The verdict of one (split, metric) from the paired finite values ``ra``, ``cb`` (N,)."""
    from mribench.analysis.stats import t_half_width, volumes_to_decide

    d = (1.0 if higher_is_better else -1.0) * (ra - cb)  # degradation per slice
    ref_mean = float(ra.mean())
    tol = float(tolerance.allowed(ref_mean))
    thr = max(float(max_drop or 0.0), tol)
    equal = bool(np.all(np.abs(ra - cb) <= np.array([tolerance.allowed(x) for x in ra])))
    mean, low, high, p, se = bootstrap_t_interval(d, groups, alpha, n_boot, seed)
    n_volumes = len(set(groups.tolist()))
    detectable = t_half_width(se, n_volumes, alpha)
    needed = None
    if equal or (math.isfinite(low) and high <= thr):
        verdict = "pass"
    elif math.isfinite(low) and low > thr:
        verdict = "regression"
    else:
        verdict = "inconclusive"
        needed = volumes_to_decide(se, n_volumes, abs(thr - mean), alpha)
    return Comparison(
        split=split,
        metric=metric,
        n=len(d),
        n_volumes=n_volumes,
        reference=ref_mean,
        candidate=float(cb.mean()),
        degradation=mean,
        ci_low=low,
        ci_high=high,
        p_value=p,
        threshold=thr,
        tolerance=tol,
        detectable=detectable,
        volumes_needed=needed,
        equal=equal,
        verdict=verdict,
        n_inf=n_inf,
    )


# --------------------------------------------------------------------------- evaluating a candidate


def task_of(config: RunConfig) -> str:
    """The task of a stored run: its name when shipped, else the YAML it came from."""
    from mribench.tasks import list_tasks

    name, origin = config.task.name, config.task.origin or ""
    return name if name in list_tasks() or not origin or not Path(origin).is_file() else origin


def candidate_options(ref: RunResult, metrics: list[str] | None = None, limit: int | None = None) -> EvalOptions:
    """The options that evaluate a candidate on the reference's slices (or the first ``limit``
    volumes of them, in the reference's selection order).

    Raises:
        CheckMisuse: a reference limited to its first slices (written before ``--limit`` selected
            volumes): its selection cannot be repeated.
    """
    opts = ref.config.options
    if opts.limit is not None and opts.limit_seed is None:
        raise CheckMisuse(
            f"expected a reference whose selection of slices can be repeated, got a run limited to its first "
            f"{opts.limit} slices (written before --limit selected whole volumes) (hint: regenerate the "
            f"reference with `mribench evaluate --limit VOLUMES`)"
        )
    if limit is not None and opts.limit is not None:
        limit = min(limit, opts.limit)
    return EvalOptions(
        metrics=tuple(canonical_metric(m) for m in metrics) if metrics else tuple(ref.config.metrics),
        splits=tuple(ref.config.splits),
        limit=limit if limit is not None else opts.limit,
        limit_seed=opts.limit_seed or 0,
        normalize_output=opts.normalize_output,
        precision=opts.precision,
    )


@dataclass(frozen=True)
class CheckSettings:
    """How a check compares (see :func:`compare_runs`)."""

    max_drop: dict[str, float] = field(default_factory=dict)
    alpha: float = 0.05
    metrics: list[str] | None = None
    allow_missing: bool = False


def check_model(
    reference: str | os.PathLike[str] | RunResult,
    model: str | LoadedModel,
    *,
    task: str | TaskSpec | None = None,
    data: str | os.PathLike[str] | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    settings: CheckSettings | None = None,
    runtime: Runtime | None = None,
    until_decided: bool = False,
    start_volumes: int = 5,
) -> tuple[CheckReport, RunResult]:
    """Evaluate ``model`` as the candidate on the reference's slices, then compare.

    With ``until_decided``, volumes are evaluated in the reference's selection order
    (:func:`mribench.data.subset.volume_order`) in rounds, starting with ``start_volumes`` per
    split and growing at least 1.5-fold (to the number an inconclusive comparison asks for), until
    every comparison is decided or all the reference's volumes are used. ``alpha`` is then further
    divided by the number of rounds the schedule can take (Bonferroni over the looks), so that
    stopping early does not make the gate fail or pass on noise more often.

    Returns:
        The report and the candidate run (in ``run_dir``, default ``mribench-runs/check/<task>``).
    """
    from mribench.models.loader import load_model
    from mribench.workflows.evaluation import evaluate

    settings = settings or CheckSettings()
    ref = load_comparable(reference)
    lm = model if not isinstance(model, str) else load_model(model)
    spec = task or task_of(ref.config)
    rd = Path(run_dir) if run_dir else Path("mribench-runs") / "check" / ref.config.task.name
    total = max((s.n_volumes for s in ref.config.splits.values()), default=0)
    schedule = _schedule(start_volumes, total) if until_decided else [total]
    alpha = settings.alpha / len(schedule)
    n, first = schedule[0], True
    while True:
        limit = None if n >= total and ref.config.options.limit is None else n
        options = candidate_options(ref, settings.metrics, limit)
        if not first:
            (rd / "run.json").unlink(missing_ok=True)  # extend the run: its scored slices stay in the store
        cand = evaluate(
            lm, spec, data=data, run_dir=rd, mode="overwrite" if first else "resume", options=options, runtime=runtime
        )
        last = n >= total
        report = compare_runs(
            ref,
            cand,
            max_drop=settings.max_drop,
            alpha=alpha,
            metrics=settings.metrics,
            allow_missing=settings.allow_missing or not last,
        )
        if last or report.verdict != "inconclusive":
            break
        needed = max((c.volumes_needed or 0 for c in report.undecided), default=0)
        n = min(total, max(next((x for x in schedule if x > n), total), needed))
        first = False
    if until_decided:
        report.notes = [x for x in report.notes if "(--allow-missing)" not in x or settings.allow_missing]
        report.notes.append(
            f"--until-decided: {'decided' if report.verdict != 'inconclusive' else 'undecided'} on {min(n, total)} "
            f"of {total} volumes per split, in {len(schedule)} possible rounds (alpha {compact(settings.alpha, 6)} / "
            f"{len(schedule)} per round); volumes not needed were not evaluated"
        )
    return report, cand


def _schedule(start: int, total: int) -> list[int]:
    """Volumes per round: ``start``, then at least 1.5-fold more each round, ending at ``total``."""
    out, n = [], max(1, min(start, total))
    while n < total:
        out.append(n)
        n = max(n + 1, math.ceil(1.5 * n))
    return [*out, total]


# --------------------------------------------------------------------------- reports


def _fmt_ci(c: Comparison) -> str:
    if not math.isfinite(c.ci_low):
        return f"{compact(c.degradation, 3, sign=True)} [no interval: 1 volume]"
    return f"{compact(c.degradation, 3, sign=True)} [{compact(c.ci_low, 3, sign=True)}, {compact(c.ci_high, 3, sign=True)}]"


def _verdict_cell(c: Comparison) -> str:
    if c.regression:
        return "**regression**"
    if c.inconclusive:
        return "**inconclusive**"
    return "ok (equal)" if c.equal else "ok"


def to_markdown(report: CheckReport) -> str:
    """A Markdown summary (for a CI job summary)."""
    head = {
        "pass": "PASSED",
        "regression": f"FAILED ({len(report.regressions) + len(report.failures)} regression(s))",
        "inconclusive": f"INCONCLUSIVE ({len(report.undecided)} undecided comparison(s))",
    }[report.verdict]
    lines = [
        f"### mribench check: {head}",
        "",
        f"Task `{report.task}` v{report.task_version}; reference `{report.reference}`, candidate `{report.candidate}`; "
        f"paired cluster bootstrap over volumes, {report.confidence} t intervals.",
        "",
        "| split | metric | volumes | slices | reference | candidate | degradation [CI] | allowed | detectable | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in report.comparisons:
        lines.append(
            f"| {c.split} | {c.metric} | {c.n_volumes} | {c.n} | {c.reference:.5g} | {c.candidate:.5g} | "
            f"{_fmt_ci(c)} | {compact(c.threshold, 3)} | {compact(c.detectable, 3)} | {_verdict_cell(c)} |"
        )
    lines.append("")
    lines += [f"- **regression**: {f.describe()}" for f in report.failures]
    lines += [f"- **inconclusive**: {_undecided(report, c)}" for c in report.undecided]
    lines += [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def _undecided(report: CheckReport, c: Comparison) -> str:
    where = f"{c.split} {c.metric}"
    if not math.isfinite(c.ci_low):
        return (
            f"{where}: {c.n_volumes} volume gives no interval; at least 2 volumes are needed "
            f"(hint: a larger --limit, or --until-decided)"
        )
    need = (
        f"about {c.volumes_needed} volumes would decide (hint: --limit {c.volumes_needed}, or --until-decided)"
        if c.volumes_needed
        else "it cannot be decided with the volumes available"
    )
    return (
        f"{where}: the CI [{compact(c.ci_low, 4)}, {compact(c.ci_high, 4)}] contains the allowed drop {compact(c.threshold, 4)}; the check "
        f"detects drops of {compact(c.detectable, 3)} on {c.n_volumes} volumes; {need}"
    )


def to_junit(report: CheckReport) -> str:
    """JUnit XML: one test case per (split, metric), failed when it regressed, an error when
    inconclusive; one failed test case per split with failed candidate slices."""
    cases = []
    for f in report.failures:
        msg = f"{report.task}/{f.split}: {f.describe()}"
        cases.append(
            f"  <testcase classname={quoteattr('mribench.check.' + report.task)} "
            f"name={quoteattr(f'{f.split}.failed-slices')}><failure message={quoteattr(msg)}>{escape(msg)}"
            f"</failure></testcase>"
        )
    for c in report.comparisons:
        name = quoteattr(f"{c.split}.{c.metric}")
        body = ""
        if c.regression:
            msg = (
                f"{report.task}/{c.split}/{c.metric}: degraded by {compact(c.degradation, 4)} "
                f"(CI {compact(c.ci_low, 4)}..{compact(c.ci_high, 4)}) > allowed {compact(c.threshold, 6)}"
            )
            body = f"<failure message={quoteattr(msg)}>{escape(msg)}</failure>"
        elif c.inconclusive:
            msg = f"{report.task}/{_undecided(report, c)}"
            body = f'<error message={quoteattr(msg)} type="inconclusive">{escape(msg)}</error>'
        cases.append(
            f"  <testcase classname={quoteattr('mribench.check.' + report.task)} name={name}>{body}</testcase>"
        )
    n_fail = len(report.regressions) + len(report.failures)
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={quoteattr("mribench check " + report.task)} '
        f'tests="{len(cases)}" failures="{n_fail}" errors="{len(report.undecided)}">\n'
        + "\n".join(cases)
        + "\n</testsuite>\n"
    )


def describe_regressions(report: CheckReport) -> list[str]:
    """One line per failed split and per regression naming task, split and metric."""
    out = [f"regression: task {report.task}: {f.describe()}" for f in report.failures]
    out += [
        f"regression: task {report.task}, split {c.split}, metric {c.metric}: {c.reference:.5g} -> {c.candidate:.5g} "
        f"(degradation {compact(c.degradation, 4)}, {report.confidence} CI [{compact(c.ci_low, 4)}, {compact(c.ci_high, 4)}], "
        f"allowed {compact(c.threshold, 6)})"
        for c in report.regressions
    ]
    return out


def describe_undecided(report: CheckReport) -> list[str]:
    """One line per inconclusive comparison: why, what it can detect, how many volumes would decide."""
    return [f"inconclusive: task {report.task}, {_undecided(report, c)}" for c in report.undecided]
