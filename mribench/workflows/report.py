"""``mribench report``: a self-contained HTML (and Markdown) report over one or more runs.

Per task: ID/OOD means with 95% CIs, the ID->OOD drop, the distribution-shift gap against a
Q-trained run (with paired CIs), D22's fraction of the gap closed by test-time training (when the
four runs it needs are given), LH24's effective robustness above the line of the reference runs
(models trained on P; with CIs over test volumes), plots (effective-robustness scatter,
reconstruction panels), provenance and the metric profiles used. The HTML embeds its images, so the
single file can be mailed or archived.
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mribench import fmt
from mribench.errors import ResultsError
from mribench.paths import atomic_write_text, slug
from mribench.results import RunResult, describe_measurement, load_run


@dataclass
class TaskReport:
    """Numbers and figures of one task."""

    task: str
    version: int
    metric: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    figures: list[tuple[str, Path]] = field(default_factory=list)  # (caption, png)
    notes: list[str] = field(default_factory=list)
    measured: list[str] = field(default_factory=list)  # what the numbers measure (one line per distinct setting)


def _model_name(run: RunResult) -> str:
    return run.config.model.name


def _task_name(run: RunResult) -> str:
    return run.config.task.name


def _higher_is_better(run: RunResult, metric: str) -> bool:
    return bool(run.config.higher_is_better.get(metric, True))


def _trained_on_q(run: RunResult) -> bool:
    return run.config.model.training_side == "Q"


def _gap_rows(task_runs: list[RunResult], q_run: RunResult | None, metric: str, tr: TaskReport) -> None:
    from mribench.analysis import performance_gap_ci

    if q_run is None:
        tr.notes.append("No Q-trained reference run (pass --q-trained RUN_DIR): the gap is not computed.")
        return
    hib = q_run.config.higher_is_better.get(metric, True)
    q = q_run.slices[(q_run.slices["split"] == "test_Q") & (q_run.slices["status"] == "ok")]
    for row, run in zip(tr.rows, task_runs):
        if run is q_run:
            row["gap"] = "reference (trained on Q)"
            continue
        p = run.slices[(run.slices["split"] == "test_Q") & (run.slices["status"] == "ok")]
        m = q.merge(p, on=["file", "slice"], suffixes=("_q", "_p"))
        if m.empty:
            row["gap"] = fmt.MISSING
            continue
        g = performance_gap_ci(
            m[f"{metric}_q"].to_numpy(float),
            m[f"{metric}_p"].to_numpy(float),
            m["file"].to_numpy(),
            higher_is_better=hib,
        )
        row["gap"] = fmt.ci(g.gap, g.low, g.high) + fmt.infinite_note(g.n_inf)


def _ok_split(run: RunResult, split: str, metric: str) -> Any:
    """(file, slice) -> metric of the finite ok slices of ``split``, as a pandas Series."""
    df = run.slices
    sel = df[(df["split"] == split) & (df["status"] == "ok")][["file", "slice", metric]].dropna()
    return sel.set_index(["file", "slice"])[metric].astype(float)


def _paired_split(runs: list[RunResult], split: str, metric: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-slice scores (runs, N) on the slices of ``split`` every run scored, and their volumes (N,)."""
    cols = [_ok_split(r, split, metric) for r in runs]
    common = cols[0].index
    for c in cols[1:]:
        common = common.intersection(c.index)
    common = common.sort_values()
    return np.stack([c.reindex(common).to_numpy(float) for c in cols]), common.get_level_values("file").to_numpy()


def _effective_robustness(
    task_runs: list[RunResult],
    metric: str,
    tr: TaskReport,
    out: Path,
    reference: list[RunResult] | None,
    scale: str = "linear",
) -> None:
    """LH24 effective robustness: line over the reference runs (trained on P), x = test_P, y = test_Q."""
    from mribench.analysis import effective_robustness_volume_ci, plot_effective_robustness

    refs = [r for r in (reference or []) if not _trained_on_q(r)]
    for r in reference or []:
        if _trained_on_q(r):
            tr.notes.append(f"Reference run {r.run_dir} is marked as trained on Q: left out of the reference line.")
    if len(refs) < 2:
        tr.notes.append(
            f"Effective robustness not computed: it needs at least 2 reference runs of models trained on "
            f"the reference distribution P, evaluated on test_P and test_Q (pass them with --er-reference), "
            f"got {len(refs)}."
        )
        return
    models = [r for r in task_runs if not any(r is x for x in refs)]
    if not models:
        tr.notes.append("Effective robustness not computed: every run of the task is a reference run.")
        return
    try:
        id_vals, id_groups = _paired_split(refs + models, "test_P", metric)
        ood_vals, ood_groups = _paired_split(refs + models, "test_Q", metric)
        er = effective_robustness_volume_ci(
            id_vals[: len(refs)],
            ood_vals[: len(refs)],
            id_vals[len(refs) :],
            ood_vals[len(refs) :],
            id_groups,
            ood_groups,
            scale=scale,  # type: ignore[arg-type]
            n_boot=1000,
        )
    except ValueError as e:  # AnalysisInputError: no common slices, equal ID scores, values outside (0, 1)
        tr.notes.append(f"Effective robustness not computed: {e}")
        return
    for j, run in enumerate(models):
        i = next(k for k, r in enumerate(task_runs) if r is run)
        tr.rows[i]["effective_robustness"] = fmt.ci(float(er.er[j]), float(er.low[j]), float(er.high[j]))
    tr.notes.append(
        f"Effective robustness (Lin & Heckel 2024): height above the {scale} fit of test_Q on test_P {metric} "
        f"over {len(refs)} reference runs trained on P ({', '.join(_model_name(r) for r in refs)}), "
        f"on the {id_vals.shape[1]} test_P and {ood_vals.shape[1]} test_Q slices every run scored; 95% CIs "
        f"resample {er.resampled}."
    )
    ids, oods = id_vals.mean(axis=1), ood_vals.mean(axis=1)
    names = {_model_name(r): (float(ids[len(refs) + j]), float(oods[len(refs) + j])) for j, r in enumerate(models)}
    png, _ = plot_effective_robustness(
        ids[: len(refs)],
        oods[: len(refs)],
        out / f"{tr.task}-effective-robustness",
        models=names,
        trend=er.trend,
        metric=metric.upper(),
        title=f"{tr.task}: OOD vs ID {metric}",
    )
    tr.figures.append(
        (
            f"Effective robustness on {tr.task}: test_Q vs test_P {metric} of the reference runs (trained on P) "
            "with their fit and its 95% band; a model's effective robustness is its height above the line.",
            png,
        )
    )


def _d22_fraction(runs4: list[RunResult], metric: str, tr: TaskReport) -> None:
    """D22's fraction of the gap closed by TTT: 1 - gap(self-sup + TTT) / gap(supervised), on test_Q."""
    from mribench.analysis import d22_fraction_closed_ci

    hib = _higher_is_better(runs4[0], metric)
    try:
        vals, groups = _paired_split(runs4, "test_Q", metric)
        if vals.shape[1] == 0:
            raise ValueError("the four runs share no scored test_Q slice")
    except ValueError as e:
        tr.notes.append(f"D22 fraction of the gap closed not computed: {e}")
        return
    p_sup, q_sup, p_ttt, q_ttt = vals
    f = d22_fraction_closed_ci(q_sup, p_sup, q_ttt, p_ttt, groups, higher_is_better=hib)
    names = [_model_name(r) for r in runs4]
    tr.notes.append(
        f"Fraction of the gap closed by test-time training (Darestani et al. 2022: 1 - gap after / supervised "
        f"gap) = {fmt.ci(f.fraction, f.low, f.high, 3)}; supervised gap {fmt.ci(f.gap_before.mean, f.gap_before.low, f.gap_before.high)} "
        f"({names[1]} - {names[0]}), gap after TTT {fmt.ci(f.gap_after.mean, f.gap_after.low, f.gap_after.high)} "
        f"({names[3]} - {names[2]}); paired over {f.n} test_Q slices, 95% CIs over their {f.n_groups} volumes."
    )


def _reload(run: RunResult, tr: TaskReport) -> Any:
    """The run's model, loaded again (None, with a note, when it cannot be)."""
    from mribench.models import load_model

    cfg = run.config
    path = cfg.model.details.get("path")
    try:
        if cfg.model.kind == "reconstructions":  # `mribench score`: the reconstruction files again
            from mribench.workflows.exchange import model_of_run

            return model_of_run(run)
        if cfg.model.kind == "object":
            raise ValueError("a Python object passed to evaluate is not stored with its run")
        return load_model(
            cfg.model.name if cfg.model.kind != "checkpoint" else str(path or ""),
            checkpoint=str(path) if cfg.model.name in ("unet", "varnet") and path else None,
        )
    except Exception as e:  # a report must not fail because a model moved
        tr.notes.append(f"No reconstruction panel for {cfg.model.name}: cannot reload the model ({e}).")
        return None


def _panels(task_runs: list[RunResult], metric: str, tr: TaskReport, out: Path, n: int, data_root: Path | None) -> None:
    """Re-run every model on the same first ``n`` OOD slices and plot target | recon | error, with one
    error colour scale per slice shared by all the models' panels."""
    import torch

    from mribench.analysis import error_scales, plot_reconstruction_panel
    from mribench.data.index import build_index
    from mribench.data.slices import plan_requests, read_sample
    from mribench.errors import MribenchError
    from mribench.physics.masks import MaskSpec

    runs = [r for r in task_runs if "test_Q" in r.config.masks and (data_root is not None or r.config.data)]
    if not runs:
        return
    oks = [r.slices[(r.slices["split"] == "test_Q") & (r.slices["status"] == "ok")] for r in runs]
    common = sorted(set.intersection(*({(str(f), int(s)) for f, s in zip(o["file"], o["slice"])} for o in oks)))[:n]
    if not common:
        tr.notes.append("No reconstruction panels: the runs share no successfully scored test_Q slice.")
        return
    models = [(r, _reload(r, tr)) for r in runs]
    models = [(r, m) for r, m in models if m is not None]
    if not models:
        return
    first = models[0][0].config
    root = data_root or Path(first.data.root)  # type: ignore[union-attr]
    spec = MaskSpec.from_dict(first.masks["test_Q"].model_dump())
    try:
        index = build_index(root).table
    except MribenchError as e:
        tr.notes.append(f"No reconstruction panels: no data under {root} ({e}).")
        return
    import pandas as pd

    rows = index.merge(pd.DataFrame(common, columns=["file", "slice"]), on=["file", "slice"])
    targets: list[np.ndarray] = []
    titles: list[str] = []
    recons: dict[int, list[np.ndarray]] = {i: [] for i in range(len(models))}
    for req in plan_requests(rows, "test_Q", spec, root, batch_size=1):
        try:
            sample = read_sample(req)
        except MribenchError:
            continue
        targets.append(sample.target[0].numpy())
        titles.append(f"{req.file} slice {req.slices[0]}")
        for i, (_, model) in enumerate(models):
            with torch.inference_mode():
                recons[i].append(model(sample.masked_kspace, sample.mask, sample.meta)[0].float().cpu().numpy())
    if not targets:
        return
    scales = error_scales(np.stack(targets), [np.stack(recons[i]) for i in recons])
    for i, (run, _) in enumerate(models):
        cfg = run.config
        score = {
            (str(f), int(s)): float(v) for f, s, v in zip(run.slices["file"], run.slices["slice"], run.slices[metric])
        }
        keys = [(t.split(" slice ")[0], int(t.split(" slice ")[1])) for t in titles]
        png, _ = plot_reconstruction_panel(
            np.stack(targets),
            np.stack(recons[i]),
            # no "." in the stem: the figure writer adds its suffix with Path.with_suffix
            out / f"{tr.task}-{slug(cfg.model.name, max_len=60).replace('.', '-')}-panel",
            scores=[score.get(k, float("nan")) for k in keys],
            score_name=metric.upper(),
            titles=titles,
            error_max=scales,
            suptitle=cfg.model.name,
        )
        tr.figures.append(
            (
                f"{cfg.model.name} on OOD slices of {tr.task}: target, reconstruction, error (the error colour "
                f"scale of each slice is shared by every model's panel).",
                png,
            )
        )


def build_report(
    run_dirs: list[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    metric: str | None = None,
    q_trained: str | os.PathLike[str] | None = None,
    panels: int = 2,
    data_root: str | os.PathLike[str] | None = None,
    er_reference: list[str | os.PathLike[str]] | None = None,
    er_scale: str = "linear",
    d22_runs: tuple[str | os.PathLike[str], ...] | list[str | os.PathLike[str]] | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> Path:
    """Write ``index.html``, ``report.md`` and figures (PNG + SVG) into ``output``.

    Args:
        run_dirs: run directories (any tasks; grouped by task).
        output: folder to write.
        metric: the headline metric; ``None``: the first metric of the first run's task (a task card
            lists the paper's primary metric first, e.g. ``ssim_d22`` for the D22 family) when every
            run has it, else ``ssim``.
        q_trained: the run of a model trained on Q (the gap reference); runs whose checkpoint
            metadata says ``training_side: Q`` are also recognised.
        panels: OOD slices per model in the reconstruction panels (0: none).
        data_root: where the runs' data lives now, if it moved.
        er_reference: runs of models trained on P (the reference distribution P_best) over which
            the test_P -> test_Q line is fitted (Lin & Heckel 2024). Without at least 2 of them on a
            task, effective robustness is not computed (the report says what is missing).
        er_scale: ``"linear"`` (the paper's) or ``"logit"`` fit of the effective-robustness line.
        d22_runs: ``(P supervised, Q supervised, P self-supervised + TTT, Q self-supervised + TTT)``
            runs of one task: adds Darestani et al.'s fraction of the gap closed by TTT, ``1 - gap
            after TTT / supervised gap``, with a CI over test_Q volumes.

    Returns:
        Path of ``index.html``.
    """
    if not run_dirs:
        raise ValueError("expected at least one run directory, got none")
    if er_scale not in ("linear", "logit"):
        raise ValueError(f"expected er_scale 'linear' or 'logit', got {er_scale!r}")
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    runs = [load_run(d) for d in run_dirs]
    qr = None
    if q_trained:
        same = [r for r in runs if Path(r.run_dir).resolve() == Path(q_trained).resolve()]
        qr = same[0] if same else load_run(q_trained)
        if not same:
            runs.append(qr)
    if metric is None:
        first = runs[0].config.metrics[0] if runs[0].config.metrics else "ssim"
        metric = first if all(first in r.config.metrics for r in runs) else "ssim"
    for r in runs:
        if metric not in r.config.metrics:
            raise ResultsError(f"expected metric {metric!r} in run {r.run_dir}, got {r.config.metrics}")
    er_runs = [load_run(d) for d in er_reference] if er_reference else []
    if d22_runs is not None and len(d22_runs) != 4:
        raise ValueError(
            "expected d22_runs as (P supervised, Q supervised, P self-supervised + TTT, Q self-supervised + TTT), "
            f"got {len(d22_runs)} runs"
        )
    d22 = [load_run(d) for d in d22_runs] if d22_runs else []
    for r in d22:
        if metric not in r.slices.columns:
            raise ResultsError(f"expected metric {metric!r} in run {r.run_dir}, got none")
    by_task: dict[tuple[str, int], list[RunResult]] = {}
    for r in runs:
        by_task.setdefault((r.config.task.name, r.config.task.version), []).append(r)
    reports = []
    for i, ((task, version), task_runs) in enumerate(sorted(by_task.items())):
        if progress:
            progress(i, len(by_task), task)
        tr = TaskReport(task, version, metric)
        for r in task_runs:
            s = r.summary.splits
            row: dict[str, Any] = {"model": r.config.model.name, "kind": r.config.model.kind}
            ms = {
                label: s[sp].metrics.get(metric) if sp in s else None
                for sp, label in (("test_P", "ID"), ("test_Q", "OOD"))
            }
            shift = r.summary.shift.get(metric)
            nd = fmt.decimals(*(x for m in ms.values() if m for x in (m.mean, m.ci_low, m.ci_high)))
            for label, m in ms.items():
                row[label] = fmt.ci(m.mean, m.ci_low, m.ci_high, nd) + fmt.infinite_note(m.n_inf) if m else fmt.MISSING
            row["drop"] = fmt.number(shift.drop if shift else None, nd)
            row["failed"] = sum(v.n_failed or 0 for v in s.values())
            tr.rows.append(row)
        tr.measured = sorted({describe_measurement(r.config) for r in task_runs})
        q_run = (
            qr
            if qr is not None and any(r is qr for r in task_runs)
            else next((r for r in task_runs if _trained_on_q(r)), None)
        )
        _gap_rows(task_runs, q_run, metric, tr)
        refs = [r for r in er_runs if _task_name(r) == task]
        _effective_robustness(task_runs, metric, tr, out, refs, er_scale)
        if d22 and all(_task_name(r) == task for r in d22):
            _d22_fraction(d22, metric, tr)
        if panels:
            _panels(task_runs, metric, tr, out, panels, Path(data_root) if data_root else None)
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
            lines.append("| " + " | ".join(str(row.get(c, fmt.MISSING)).replace("|", "/") for c in _COLS) + " |")
        lines += [""] + [f"*{m}*" for m in tr.measured]
        lines += [""] + [f"- {n}" for n in tr.notes] + [""]
        lines += [f"![{cap}]({png.name})" for cap, png in tr.figures] + [""]
    lines += ["## Provenance", ""] + [f"- `{r.run_dir}`: {_provenance_line(r)}" for r in runs]
    return "\n".join(lines) + "\n"


def _provenance_line(r: RunResult) -> str:
    p, c = r.config.provenance, r.config
    prof = ", ".join(f"{k}={v.get('profile') if isinstance(v, dict) else None}" for k, v in c.metric_profiles.items())
    return (
        f"model {c.model.name} ({c.model.sha256[:12]}), task {c.task.name} v{c.task.version}, "
        f"mribench {p.mribench}, torch {p.torch}, device {p.device}, profiles: {prof}"
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
        "img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}.note{color:#8a5a00}.measured{color:#444;font-size:90%}",
        "</style></head><body>",
        "<h1>mribench report</h1>",
    ]
    for tr in reports:
        parts.append(f"<h2>Task {e(tr.task)} (v{tr.version}), metric {e(tr.metric)}</h2><table><tr>")
        parts += [f"<th>{e(c)}</th>" for c in _COLS] + ["</tr>"]
        for row in tr.rows:
            parts.append("<tr>" + "".join(f"<td>{e(str(row.get(c, fmt.MISSING)))}</td>" for c in _COLS) + "</tr>")
        parts.append("</table>")
        parts += [f"<p class='measured'>{e(m)}</p>" for m in tr.measured]
        parts += [f"<p class='note'>{e(n)}</p>" for n in tr.notes]
        parts += [f"<figure>{_img(png)}<figcaption>{e(cap)}</figcaption></figure>" for cap, png in tr.figures]
    parts.append("<h2>Provenance and metric profiles</h2><ul>")
    parts += [f"<li><code>{e(str(r.run_dir))}</code>: {e(_provenance_line(r))}</li>" for r in runs]
    parts.append("</ul></body></html>")
    return "\n".join(parts)
