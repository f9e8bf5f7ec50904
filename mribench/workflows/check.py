"""Regression gate: paired per-slice comparison of a candidate run against a reference.

A candidate *regresses* on (split, metric) when, with confidence ``1 - alpha``, it is worse than the
reference by more than the allowed drop: the lower end of the paired CI of the degradation
(reference - candidate for higher-is-better metrics, candidate - reference otherwise) exceeds the
threshold. The CI is ``mean +- t(1 - alpha/2, G - 1) * SE`` with SE the standard deviation of the
paired cluster bootstrap (volumes resampled, slices of a volume kept together) times
sqrt(G / (G - 1)): with the few volumes of a typical test split, plain percentile intervals are too
narrow and a gate built on them fails on noise (measured: 15% instead of 5% with 10 volumes). Identical runs give a zero-width CI at 0 and pass; a change within noise
has a CI that includes 0 and passes; a systematic loss fails. Because a check makes one test per
(split, metric), ``alpha`` is Bonferroni-corrected over them by default, so that a gate with many
comparisons does not fail on noise more often than ``alpha``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import pandas as pd

from mribench.api.run import comparable
from mribench.errors import MribenchError, ResultsError
from mribench.results import RunResult, config_from_json, load_run, summarize

MAX_JSON_BYTES = 200 * 1024 * 1024


class CheckMisuse(MribenchError):
    """The two runs cannot be compared (different task, splits or metric definitions)."""

    exit_code = 2


@dataclass(frozen=True)
class Comparison:
    """The verdict for one (split, metric).

    Attributes:
        split, metric: what was compared.
        n: paired slices; n_volumes: volumes they come from.
        reference, candidate: means over the paired slices.
        degradation: mean loss of the candidate (positive = worse), direction-aware.
        ci_low, ci_high: paired cluster-bootstrap CI of the degradation.
        p_value: two-sided bootstrap p-value of a zero difference.
        threshold: allowed degradation.
        regression: the verdict.
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
    regression: bool


@dataclass
class CheckReport:
    """All comparisons of a check, with the identity of both runs."""

    task: str
    task_version: int
    reference: str
    candidate: str
    alpha: float
    comparisons: list[Comparison] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not any(c.regression for c in self.comparisons)

    @property
    def regressions(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.regression]

    def to_dict(self) -> dict[str, Any]:
        return {
            **{k: v for k, v in asdict(self).items() if k != "comparisons"},
            "passed": self.passed,
            "comparisons": [asdict(c) for c in self.comparisons],
        }


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
    rows = [
        [None if isinstance(v, float) and not math.isfinite(v) else v for v in r]
        for r in df[cols].itertuples(index=False)
    ]
    return {"columns": cols, "rows": [[x.item() if isinstance(x, np.generic) else x for x in r] for r in rows]}


def _require_same(ref: RunResult, cand: RunResult, metrics: list[str], splits: list[str]) -> None:
    """Refuse runs whose numbers are defined differently (:func:`mribench.api.run.comparable`)."""
    diffs = comparable(ref.config, cand.config, splits=splits, metrics=metrics)
    if diffs:
        raise CheckMisuse(
            f"expected runs whose numbers are defined the same way, got {'; '.join(diffs)} "
            f"(reference first; hint: the same task version, data, split files, masks, metric profiles and options)"
        )


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
                raise ValueError(f"expected METRIC=NUMBER for --max-drop, got {part!r}") from None
            if not sep or out[name.strip()] < 0:
                raise ValueError(f"expected METRIC=NON-NEGATIVE-NUMBER for --max-drop, got {part!r}")
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
) -> CheckReport:
    """Compare two runs slice by slice.

    Args:
        reference, candidate: run dirs, results JSONs, leaderboard entries or loaded runs.
        max_drop: allowed degradation per metric (default 0: any significant loss fails).
        alpha: 1 - confidence of the paired bootstrap CI.
        metrics: metrics to compare (default: those both runs have).
        n_boot, seed: bootstrap settings.
        correction: ``"bonferroni"`` (alpha divided by the number of comparisons) or ``"none"``.

    Raises:
        CheckMisuse: runs whose numbers are defined differently (task, split manifests, masks,
            metric profiles, normalisation, precision: :func:`mribench.api.run.comparable`), or no
            slices in common.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"expected alpha in (0, 1), got {alpha}")
    if correction not in ("bonferroni", "none"):
        raise ValueError(f"expected correction 'bonferroni' or 'none', got {correction!r}")
    ref, cand = load_comparable(reference), load_comparable(candidate)
    common = [m for m in ref.config.metrics if m in cand.config.metrics]
    names = metrics or common
    unknown = [m for m in names if m not in common]
    if unknown:
        raise CheckMisuse(f"expected metrics present in both runs ({', '.join(common)}), got {unknown}")
    splits = sorted(set(ref.config.splits) & set(cand.config.splits))
    if not splits:
        raise CheckMisuse("expected the runs to share at least one split, got none")
    _require_same(ref, cand, names, splits)
    thresholds = max_drop or {}
    directions = {**cand.config.higher_is_better, **ref.config.higher_is_better}
    report = CheckReport(ref.config.task.name, ref.config.task.version, str(ref.run_dir), str(cand.run_dir), alpha)
    key = ["split", "file", "slice"]
    a = ref.slices[ref.slices["status"] == "ok"]
    b = cand.slices[cand.slices["status"] == "ok"]
    paired = a.merge(b, on=key, suffixes=("_ref", "_cand"))
    if paired.empty:
        raise CheckMisuse("expected slices evaluated successfully in both runs, got none in common")
    n_fail = int((cand.slices["status"] != "ok").sum())
    if n_fail:
        report.notes.append(f"candidate has {n_fail} failed slice(s); they are not compared")
    n_tests = len(splits) * len(names)
    alpha_eff = alpha / n_tests if correction == "bonferroni" else alpha
    if correction == "bonferroni" and n_tests > 1:
        report.notes.append(
            f"Bonferroni correction over {n_tests} comparisons: each CI at {100 * (1 - alpha_eff):.2f}%"
        )
    for split in splits:
        g = paired[paired["split"] == split]
        for m in names:
            ra, cb = g[f"{m}_ref"].to_numpy(float), g[f"{m}_cand"].to_numpy(float)
            ok = np.isfinite(ra) & np.isfinite(cb)
            if not ok.any():
                continue
            sign = 1.0 if directions.get(m, True) else -1.0
            d = sign * (ra[ok] - cb[ok])  # degradation per slice
            groups = g["file"].to_numpy()[ok]
            mean, low, high, p = _paired_ci(d, groups, alpha_eff, n_boot, seed)
            thr = float(thresholds.get(m, 0.0))
            report.comparisons.append(
                Comparison(
                    split=split,
                    metric=m,
                    n=int(ok.sum()),
                    n_volumes=len(set(groups)),
                    reference=float(ra[ok].mean()),
                    candidate=float(cb[ok].mean()),
                    degradation=mean,
                    ci_low=low,
                    ci_high=high,
                    p_value=p,
                    threshold=thr,
                    regression=bool(low > thr if math.isfinite(low) else mean > thr),
                )
            )
    unknown_thr = sorted(set(thresholds) - set(names))
    if unknown_thr:
        raise CheckMisuse(f"expected --max-drop for compared metrics ({', '.join(names)}), got {unknown_thr}")
    return report


def _paired_ci(
    d: np.ndarray, groups: np.ndarray, alpha: float, n_boot: int, seed: int
) -> tuple[float, float, float, float]:
    """Mean degradation, its t-interval from the cluster-bootstrap SE, and a two-sided p-value."""
    from scipy import stats

    from mribench.analysis.stats import cluster_bootstrap_means

    mean = float(d.mean())
    n_groups = len(set(groups))
    if n_groups < 2 or np.all(d == d[0]):
        return mean, mean, mean, 1.0 if mean == 0 else 0.0
    draws = cluster_bootstrap_means(d, groups, n_boot=n_boot, seed=seed)
    se = float(np.std(draws, ddof=1)) * math.sqrt(n_groups / (n_groups - 1))
    if se == 0:
        return mean, mean, mean, 1.0 if mean == 0 else 0.0
    q = float(stats.t.ppf(1 - alpha / 2, df=n_groups - 1))
    p = float(2 * stats.t.sf(abs(mean) / se, df=n_groups - 1))
    return mean, mean - q * se, mean + q * se, p


def to_markdown(report: CheckReport) -> str:
    """A Markdown summary (for a CI job summary)."""
    head = "PASSED" if report.passed else f"FAILED ({len(report.regressions)} regression(s))"
    lines = [
        f"### mribench check: {head}",
        "",
        f"Task `{report.task}` v{report.task_version}; reference `{report.reference}`, candidate `{report.candidate}`; "
        f"paired cluster bootstrap over volumes, {100 * (1 - report.alpha):.0f}% CI.",
        "",
        "| split | metric | slices | reference | candidate | degradation [CI] | allowed | verdict |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for c in report.comparisons:
        verdict = "**regression**" if c.regression else "ok"
        lines.append(
            f"| {c.split} | {c.metric} | {c.n} | {c.reference:.5g} | {c.candidate:.5g} | "
            f"{c.degradation:+.3g} [{c.ci_low:+.3g}, {c.ci_high:+.3g}] | {c.threshold:g} | {verdict} |"
        )
    lines += [f"- {n}" for n in report.notes]
    return "\n".join(lines) + "\n"


def to_junit(report: CheckReport) -> str:
    """JUnit XML: one test case per (split, metric), failed when it regressed."""
    cases = []
    for c in report.comparisons:
        name = quoteattr(f"{c.split}.{c.metric}")
        body = ""
        if c.regression:
            msg = (
                f"{report.task}/{c.split}/{c.metric}: degraded by {c.degradation:.4g} "
                f"(CI {c.ci_low:.4g}..{c.ci_high:.4g}) > allowed {c.threshold:g}"
            )
            body = f"<failure message={quoteattr(msg)}>{escape(msg)}</failure>"
        cases.append(
            f"  <testcase classname={quoteattr('mribench.check.' + report.task)} name={name}>{body}</testcase>"
        )
    return (
        f'<?xml version="1.0" encoding="utf-8"?>\n<testsuite name={quoteattr("mribench check " + report.task)} '
        f'tests="{len(cases)}" failures="{len(report.regressions)}">\n' + "\n".join(cases) + "\n</testsuite>\n"
    )


def describe_regressions(report: CheckReport) -> list[str]:
    """One line per regression naming task, split and metric."""
    return [
        f"regression: task {report.task}, split {c.split}, metric {c.metric}: {c.reference:.5g} -> {c.candidate:.5g} "
        f"(degradation {c.degradation:.4g}, {100 * (1 - report.alpha):.0f}% CI [{c.ci_low:.4g}, {c.ci_high:.4g}], "
        f"allowed {c.threshold:g})"
        for c in report.regressions
    ]
