"""Regression gate: paired per-slice comparison of a candidate run against a reference.

A candidate *regresses* on (split, metric) when, with confidence ``1 - alpha``, it is worse than the
reference by more than the allowed drop: the lower end of the paired CI of the degradation
(reference - candidate for higher-is-better metrics, candidate - reference otherwise) exceeds the
threshold. The CI is :func:`mribench.analysis.stats.bootstrap_t_interval`: ``mean +- t(1 - alpha/2,
G - 1) * SE`` with SE from the paired cluster bootstrap over volumes (plain percentile intervals
are too narrow with the few volumes of a typical test split). Identical runs give a zero-width CI
at 0 and pass; a change within noise has a CI that includes 0 and passes; a systematic loss fails.
Only slices finite in both runs are compared; slices where either run has an infinite value (PSNR
of an exact reconstruction) are counted in ``n_inf`` and named in the notes, never silently lost. Because a check makes one test per
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

from mribench.analysis.stats import bootstrap_t_interval, finite_split
from mribench.api.run import comparable
from mribench.errors import MribenchError, ResultsError
from mribench.fmt import compact
from mribench.results import RunResult, config_from_json, json_number, load_run, summarize

MAX_JSON_BYTES = 200 * 1024 * 1024


class CheckMisuse(MribenchError):
    """The two runs cannot be compared (different task, splits or metric definitions)."""

    exit_code = 2


@dataclass(frozen=True)
class Comparison:
    """The verdict for one (split, metric).

    Attributes:
        split, metric: what was compared.
        n: paired slices compared (finite in both runs); n_volumes: volumes they come from.
        reference, candidate: means over the paired slices.
        degradation: mean loss of the candidate (positive = worse), direction-aware.
        ci_low, ci_high: paired cluster-bootstrap CI of the degradation.
        p_value: two-sided bootstrap p-value of a zero difference.
        threshold: allowed degradation.
        regression: the verdict.
        n_inf: paired slices left out because either run's value was infinite.
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
    n_inf: int = 0


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
    rows = [[x.item() if isinstance(x, np.generic) else x for x in r] for r in df[cols].itertuples(index=False)]
    return {"columns": cols, "rows": [[json_number(v) if isinstance(v, float) else v for v in r] for r in rows]}


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
            fs = finite_split(ra, cb)
            ok = fs.keep
            if fs.n_inf:
                report.notes.append(
                    f"{split} {m}: {fs.n_inf} slice(s) with an infinite value in either run are not compared"
                )
            if not ok.any():
                continue
            sign = 1.0 if directions.get(m, True) else -1.0
            d = sign * (ra[ok] - cb[ok])  # degradation per slice
            groups = g["file"].to_numpy()[ok]
            mean, low, high, p = bootstrap_t_interval(d, groups, alpha_eff, n_boot, seed)
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
                    n_inf=fs.n_inf,
                )
            )
    unknown_thr = sorted(set(thresholds) - set(names))
    if unknown_thr:
        raise CheckMisuse(f"expected --max-drop for compared metrics ({', '.join(names)}), got {unknown_thr}")
    return report


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
            f"| {c.split} | {c.metric} | {c.n} | {compact(c.reference, 5)} | {compact(c.candidate, 5)} | "
            f"{compact(c.degradation, 3, sign=True)} [{compact(c.ci_low, 3, sign=True)}, "
            f"{compact(c.ci_high, 3, sign=True)}] | {compact(c.threshold, 6)} | {verdict} |"
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
                f"{report.task}/{c.split}/{c.metric}: degraded by {compact(c.degradation)} "
                f"(CI {compact(c.ci_low)}..{compact(c.ci_high)}) > allowed {compact(c.threshold, 6)}"
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
        f"regression: task {report.task}, split {c.split}, metric {c.metric}: {compact(c.reference, 5)} -> "
        f"{compact(c.candidate, 5)} (degradation {compact(c.degradation)}, {100 * (1 - report.alpha):.0f}% CI "
        f"[{compact(c.ci_low)}, {compact(c.ci_high)}], allowed {compact(c.threshold, 6)})"
        for c in report.regressions
    ]
