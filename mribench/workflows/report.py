"""``mribench report``: a self-contained HTML (and Markdown) report over one or more runs.

Per task: ID/OOD means with 95% CIs, the ID->OOD drop, the distribution-shift gap against a
Q-trained run (with paired CIs), effective robustness above the ID->OOD trend of the runs (with
CIs), plots (effective-robustness scatter, reconstruction panels), provenance and the metric
profiles used. The HTML embeds its images, so the single file can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mribench.errors import ResultsError
from mribench.paths import atomic_write_text
from mribench.results import RunResult, load_run


@dataclass
class TaskReport:
    """Numbers and figures of one task."""

    task: str
    version: int
    metric: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, png)
    notes: list[str] = field(default_factory=list)


def _fmt(v: Any, nd: int = 4) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    return f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def _ci_text(mean: float, lo: float, hi: float, nd: int = 4) -> str:
    return f"{_fmt(mean, nd)} [{_fmt(lo, nd)}, {_fmt(hi, nd)}]"


def _trained_on_q(run: RunResult) -> bool:
    extra = (run.config.get("model", {}).get("details", {}) or {}).get("extra", {}) or {}
    return str(extra.get("training_side", "")).upper() == "Q"


def _gap_rows(task_runs: list[RunResult], q_run: RunResult | None, metric: str, tr: TaskReport) -> None:
    from mribench.analysis import performance_gap_ci

    if q_run is None:
        tr.notes.append("No Q-trained reference run (pass --q-trained RUN_DIR): the gap is not computed.")
        return
    hib = q_run.config["higher_is_better"].get(metric, True)
    q = q_run.slices[(q_run.slices["split"] == "test_Q") & (q_run.slices["status"] == "ok")]
    for row, run in zip(tr.rows, task_runs):
        if run is q_run:
            row["gap"] = "reference (trained on Q)"
            continue
        p = run.slices[(run.slices["split"] == "test_Q") & (run.slices["status"] == "ok")]
        m = q.merge(p, on=["file", "slice"], suffixes=("_q", "_p"))
        if m.empty:
            row["gap"] = "-"
            continue
        g = performance_gap_ci(
            m[f"{metric}_q"].to_numpy(float),
            m[f"{metric}_p"].to_numpy(float),
            m["file"].to_numpy(),
            higher_is_better=hib,
        )
        row["gap"] = _ci_text(g.gap, g.low, g.high)


def _id_ood(r: RunResult, metric: str) -> tuple[float, float] | None:
    s = r.summary["shift"].get(metric, {})
    a, b = s.get("id"), s.get("ood")
    ok = a is not None and b is not None and math.isfinite(a) and math.isfinite(b)
    return (float(a), float(b)) if ok else None


def _effective_robustness(
    task_runs: list[RunResult], metric: str, tr: TaskReport, out: Path, reference: list[RunResult] | None
) -> None:
    from mribench.analysis import effective_robustness_ci, plot_effective_robustness

    pts = [_id_ood(r, metric) for r in task_runs]
    ok = [i for i, p in enumerate(pts) if p is not None]
    refs = [p for p in (_id_ood(r, metric) for r in (reference or [task_runs[i] for i in ok])) if p is not None]
    if len(refs) < 3:
        tr.notes.append(f"Effective robustness needs >= 3 reference runs with ID and OOD scores (got {len(refs)}).")
        return
    if not reference:
        tr.notes.append(
            "The effective-robustness line is fitted over all runs of the report; for the papers' "
            "definition pass the models trained on P as --er-reference."
        )
    ids = np.array([pts[i][0] for i in ok])  # type: ignore[index]
    oods = np.array([pts[i][1] for i in ok])  # type: ignore[index]
    ref_id, ref_ood = np.array([p[0] for p in refs]), np.array([p[1] for p in refs])
    er = effective_robustness_ci(ref_id, ref_ood, ids, oods, method="bootstrap", n_boot=1000)
    for j, i in enumerate(ok):
        tr.rows[i]["effective_robustness"] = _ci_text(float(er.er[j]), float(er.low[j]), float(er.high[j]))
    names = {tr.rows[i]["model"]: (float(ids[j]), float(oods[j])) for j, i in enumerate(ok)}
    png, _ = plot_effective_robustness(
        ref_id,
        ref_ood,
        out / f"{tr.task}-effective-robustness",
        models=names,
        metric=metric.upper(),
        title=f"{tr.task}: OOD vs ID {metric}",
    )
    tr.figures.append(
        (
            f"Effective robustness on {tr.task}: OOD vs ID {metric} with the linear fit over the runs "
            "and its 95% band; a model's effective robustness is its height above the line.",
            png,
        )
    )


def _panel(run: RunResult, metric: str, tr: TaskReport, out: Path, n: int, data_root: Path | None) -> None:
    """Re-run the model on the first ``n`` OOD slices and plot target | recon | error."""
    import torch

    from mribench.analysis import plot_reconstruction_panel
    from mribench.data.fastmri_io import read_info, read_slice
    from mribench.models import SliceMeta, load_model
    from mribench.physics.masks import MaskSpec, volume_mask

    cfg = run.config
    det = cfg["model"].get("details", {}) or {}
    try:
        model = load_model(
            cfg["model"]["name"] if cfg["model"]["kind"] != "checkpoint" else det.get("path", ""),
            checkpoint=det.get("path") if cfg["model"]["name"] in ("unet", "varnet") else None,
        )
    except Exception as e:  # a report must not fail because a model moved
        tr.notes.append(f"No reconstruction panel for {cfg['model']['name']}: cannot reload the model ({e}).")
        return
    root = data_root or Path(cfg["data"]["root"])
    ok = run.slices[(run.slices["split"] == "test_Q") & (run.slices["status"] == "ok")].head(n)
    spec = MaskSpec.from_dict(cfg["masks"]["test_Q"])
    targets, recons, scores, titles = [], [], [], []
    found: dict[str, Path | None] = {}
    for r in ok.itertuples():
        if r.file not in found:
            found[r.file] = next(root.rglob(r.file), None)
        path = found[r.file]
        if path is None:
            continue
        kspace, t, attrs = read_slice(path, int(r.slice))
        if t is None:
            continue
        k = torch.from_numpy(kspace)[None]
        vmax = float(attrs["max"])
        info = read_info(path)
        pad = (info.header.padding_left, info.header.padding_right)
        mask = volume_mask(spec, k.shape[-1], r.file, pad).reshape(1, 1, 1, -1)
        c = spec.choice(k.shape[-1], r.file)
        meta = SliceMeta(r.file, (int(r.slice),), tuple(t.shape), pad, c.num_low_frequencies, c.acceleration, vmax, {})
        with torch.inference_mode():
            rec = model(k * mask, mask, meta)[0].float().cpu().numpy()
        targets.append(t)
        recons.append(rec)
        scores.append(float(getattr(r, metric)))
        titles.append(f"{r.file} slice {r.slice}")
    if targets:
        png, _ = plot_reconstruction_panel(
            np.stack(targets),
            np.stack(recons),
            out / f"{tr.task}-{_slug(cfg['model']['name'])}-panel",
            scores=scores,
            score_name=metric.upper(),
            titles=titles,
        )
        tr.figures.append((f"{cfg['model']['name']} on OOD slices of {tr.task}: target, reconstruction, error.", png))


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in Path(s).name)[:60]


def build_report(
    run_dirs: list[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    metric: str = "ssim",
    q_trained: str | os.PathLike[str] | None = None,
    panels: int = 2,
    data_root: str | os.PathLike[str] | None = None,
    er_reference: list[str | os.PathLike[str]] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Write ``index.html``, ``report.md`` and figures (PNG + SVG) into ``output``.

    Args:
        run_dirs: run directories (any tasks; grouped by task).
        output: folder to write.
        metric: the headline metric.
        q_trained: the run of a model trained on Q (the gap reference); runs whose checkpoint
            metadata says ``training_side: Q`` are also recognised.
        panels: OOD slices per model in the reconstruction panels (0: none).
        data_root: where the runs' data lives now, if it moved.
        er_reference: runs of models trained on P (the reference distribution) over which the
            ID -> OOD line is fitted; default all runs of the task (with a note).

    Returns:
        Path of ``index.html``.
    """
    if not run_dirs:
        raise ValueError("expected at least one run directory, got none")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    runs = [load_run(d) for d in run_dirs]
    qr = None
    if q_trained:
        same = [r for r in runs if Path(r.run_dir).resolve() == Path(q_trained).resolve()]
        qr = same[0] if same else load_run(q_trained)
        if not same:
            runs.append(qr)
    for r in runs:
        if metric not in r.config["metrics"]:
            raise ResultsError(f"expected metric {metric!r} in run {r.run_dir}, got {r.config['metrics']}")
    er_runs = [load_run(d) for d in er_reference] if er_reference else []
    by_task: dict[tuple[str, int], list[RunResult]] = {}
    for r in runs:
        by_task.setdefault((r.config["task"]["name"], int(r.config["task"]["version"])), []).append(r)
    reports = []
    for i, ((task, version), task_runs) in enumerate(sorted(by_task.items())):
        if progress:
            progress(i, len(by_task), task)
        tr = TaskReport(task, version, metric)
        for r in task_runs:
            s = r.summary["splits"]
            row: dict[str, Any] = {"model": r.config["model"]["name"], "kind": r.config["model"]["kind"]}
            for sp, label in (("test_P", "ID"), ("test_Q", "OOD")):
                m = s.get(sp, {}).get("metrics", {}).get(metric)
                row[label] = _ci_text(m["mean"], m["ci_low"], m["ci_high"]) if m else "-"
            row["drop"] = _fmt(r.summary["shift"].get(metric, {}).get("drop"))
            row["failed"] = sum(v.get("n_failed", 0) for v in s.values())
            tr.rows.append(row)
        q_run = (
            qr
            if qr is not None and any(r is qr for r in task_runs)
            else next((r for r in task_runs if _trained_on_q(r)), None)
        )
        _gap_rows(task_runs, q_run, metric, tr)
        refs = [r for r in er_runs if r.config["task"]["name"] == task] if er_runs else None
        _effective_robustness(task_runs, metric, tr, out, refs)
        if panels:
            for r in task_runs:
                _panel(r, metric, tr, out, panels, Path(data_root) if data_root else None)
        reports.append(tr)
    atomic_write_text(out / "report.md", _markdown(reports, runs))
    index = out / "index.html"
    atomic_write_text(index, _html(reports, runs))
    return index


_COLS = ["model", "kind", "ID", "OOD", "drop", "gap", "effective_robustness", "failed"]


def _markdown(reports: list[TaskReport], runs: list[RunResult]) -> str:
    lines = ["# mribench report", ""]
    for tr in reports:
        lines += [
            f"## Task `{tr.task}` (v{tr.version}), metric {tr.metric}",
            "",
            "| " + " | ".join(_COLS) + " |",
            "|" + "---|" * len(_COLS),
        ]
        for row in tr.rows:
            lines.append("| " + " | ".join(str(row.get(c, "-")).replace("|", "/") for c in _COLS) + " |")
        lines += [""] + [f"- {n}" for n in tr.notes] + [""]
        lines += [f"![{cap}]({png.name})" for cap, png in tr.figures] + [""]
    lines += ["## Provenance", ""] + [f"- `{r.run_dir}`: {_provenance_line(r)}" for r in runs]
    return "\n".join(lines) + "\n"


def _provenance_line(r: RunResult) -> str:
    p, c = r.config.get("provenance", {}), r.config
    prof = ", ".join(f"{k}={v.get('profile')}" for k, v in c.get("metric_profiles", {}).items())
    return (
        f"model {c['model']['name']} ({c['model']['sha256'][:12]}), task {c['task']['name']} v{c['task']['version']}, "
        f"mribench {p.get('mribench')}, torch {p.get('torch')}, device {p.get('device')}, profiles: {prof}"
    )


def _img(png: Path) -> str:
    data = base64.b64encode(png.read_bytes()).decode()
    return f'<img alt="" src="data:image/png;base64,{data}">'


def _html(reports: list[TaskReport], runs: list[RunResult]) -> str:
    e = html.escape
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>mribench report</title><style>",
        "body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:1em 0}",
        "td,th{border:1px solid #ccc;padding:4px 8px;text-align:right}td:first-child,th:first-child{text-align:left}",
        "img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}.note{color:#8a5a00}</style></head><body>",
        "<h1>mribench report</h1>",
    ]
    for tr in reports:
        parts.append(f"<h2>Task {e(tr.task)} (v{tr.version}), metric {e(tr.metric)}</h2><table><tr>")
        parts += [f"<th>{e(c)}</th>" for c in _COLS] + ["</tr>"]
        for row in tr.rows:
            parts.append("<tr>" + "".join(f"<td>{e(str(row.get(c, '-')))}</td>" for c in _COLS) + "</tr>")
        parts.append("</table>")
        parts += [f"<p class='note'>{e(n)}</p>" for n in tr.notes]
        parts += [f"<figure>{_img(png)}<figcaption>{e(cap)}</figcaption></figure>" for cap, png in tr.figures]
    parts.append("<h2>Provenance and metric profiles</h2><ul>")
    parts += [f"<li><code>{e(str(r.run_dir))}</code>: {e(_provenance_line(r))}</li>" for r in runs]
    parts.append("</ul></body></html>")
    return "\n".join(parts)
