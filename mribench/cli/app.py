"""The ``mribench`` command line: a thin layer over the library (parsing, printing, exit codes)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional, cast

import typer
from rich.console import Console
from rich.table import Table

from mribench import fmt
from mribench._version import __version__
from mribench.cli.output import print_failures, print_reuse
from mribench.cli.progress import err_console, progress_bars
from mribench.errors import DataError, MribenchError

if TYPE_CHECKING:
    from mribench.api.run import RunMode
    from mribench.results import RunResult

console = Console(width=None if sys.stdout.isatty() else 140)  # logs and CI: no wrapped tables

app = typer.Typer(
    add_completion=False, no_args_is_help=True, help="Robustness benchmark for deep-learning MRI reconstruction."
)
tasks_app = typer.Typer(no_args_is_help=True, help="List, show, check and validate tasks; export their splits.")
data_app = typer.Typer(no_args_is_help=True, help="Generate, index, inspect and verify data.")
app.add_typer(tasks_app, name="tasks")
app.add_typer(data_app, name="data")


def _mount() -> None:
    """Sub-apps live with their features (keeps this module thin); their heavy imports are lazy."""
    from mribench.cli.baseline import baseline_app
    from mribench.cli.check import check_command
    from mribench.cli.convert import convert, datasets
    from mribench.cli.exchange import register as register_exchange
    from mribench.cli.leaderboard import leaderboard_app, submit_command
    from mribench.cli.metrics import metrics_app, weights_app
    from mribench.cli.models import models_app

    app.add_typer(weights_app, name="weights")
    app.add_typer(metrics_app, name="metrics")
    app.add_typer(leaderboard_app, name="leaderboard")
    app.add_typer(baseline_app, name="baseline")
    app.add_typer(models_app, name="models")
    app.command("submit", help="Evaluate a model (or take a finished run) and write its leaderboard entry.")(
        submit_command
    )
    app.command("check")(check_command)
    register_exchange(app, lambda result: print_summary(result))  # export-inputs, score
    data_app.command("convert", help="Convert another dataset to the fastMRI format.")(convert)
    data_app.command("datasets", help="Datasets the converters support, with licences and sources.")(datasets)


_mount()


_progress = progress_bars


def _version_cb(value: bool) -> None:
    if value:
        console.print(f"mribench {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version_cb, is_eager=True, help="Show the version."),
    debug: bool = typer.Option(False, "--debug", help="Show the traceback of an error (also: MRIBENCH_DEBUG=1)."),
) -> None:
    """mribench: score MRI reconstruction models on standard distribution-shift tasks."""


def print_summary(result: RunResult) -> None:
    """Print the ID / OOD table of a run, with one line saying what it measured."""
    from mribench.results import describe_measurement

    s, cfg = result.summary, result.config
    t = Table(title=f"{cfg.model.name} on task {cfg.task.name} (v{cfg.task.version})")
    t.add_column("metric")
    splits = [x for x in ("test_P", "test_Q", "train_P", "train_Q") if x in s.splits]
    for sp in splits:
        label = {"test_P": "ID (test_P)", "test_Q": "OOD (test_Q)"}.get(sp, sp)
        t.add_column(f"{label} mean [95% CI]", justify="right")
    with_shift = "test_P" in s.splits and "test_Q" in s.splits
    if with_shift:
        t.add_column("drop (+ = worse OOD)", justify="right")
    for m in cfg.metrics:
        row = [m + ("" if cfg.higher_is_better.get(m, True) else " (lower better)")]
        values = [s.splits[sp].metrics[m] for sp in splits]
        shift = s.shift.get(m) if with_shift else None
        nd = fmt.decimals(*(x for v in values for x in (v.mean, v.ci_low, v.ci_high)), shift.drop if shift else None)
        row += [fmt.ci(v.mean, v.ci_low, v.ci_high, nd) + fmt.infinite_note(v.n_inf) for v in values]
        if with_shift:
            row.append(fmt.number(shift.drop if shift else None, nd))
        t.add_row(*row)
    console.print(t)
    console.print(f"[dim]{describe_measurement(cfg)}[/dim]", soft_wrap=True, highlight=False)
    counts = ", ".join(f"{sp}: {s.splits[sp].n_ok} slices / {s.splits[sp].n_volumes} volumes" for sp in splits)
    console.print(f"[dim]{counts}[/dim]")
    for sp in splits:
        rec = cfg.splits.get(sp)
        if rec is not None and rec.source:
            console.print(f"[dim]{sp} volumes: {rec.source}[/dim]")
    for m, why in cfg.unavailable_metrics.items():
        console.print(f"[yellow]metric {m} unavailable:[/yellow] {why}", soft_wrap=True)


def _announce_task(name: str) -> None:
    """Say which task a name stands for (aliases resolve to one family's task)."""
    from mribench.tasks import load_task

    try:
        t = load_task(name)
    except MribenchError:
        return  # the evaluation reports it
    what = f"{t.alias} = {t.name}" if t.alias else t.name
    paper = f"; mirrors {t.paper}" if t.paper else ""
    console.print(f"[dim]task {what} v{t.version}: {t.description}{paper}[/dim]", soft_wrap=True)


def _parse_split_files(values: list[str]) -> dict[str, str]:
    out = {}
    for v in values:
        name, sep, path = v.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected SPLIT=CSV (e.g. test_Q=testset.csv), got {v!r}")
        out[name] = path
    return out


@app.command()
def evaluate(
    model: str = typer.Option(..., "--model", "-m", help="Model name, checkpoint, module:attr or file.py:attr."),
    task: str = typer.Option(..., "--task", "-t", help="Task name or YAML path (see `mribench tasks list`)."),
    checkpoint: Optional[str] = typer.Option(None, help="Weights for unet/varnet (safetensors or state dict)."),
    data_root: Optional[Path] = typer.Option(
        None, envvar="MRIBENCH_DATA", help="fastMRI-format data folder (default: embedded benchmark)."
    ),
    run_dir: Optional[Path] = typer.Option(None, help="Per-slice result store (default ./mribench-runs/TASK/MODEL)."),
    resume: bool = typer.Option(
        False, hidden=True, help="Continue the run in --run-dir (the default when its configuration is the same)."
    ),
    overwrite: bool = typer.Option(False, help="Replace the run in --run-dir (recompute everything)."),
    metrics: Optional[str] = typer.Option(None, help="Comma-separated metrics overriding the task's list."),
    splits: str = typer.Option("test_P,test_Q", help="Comma-separated splits to evaluate."),
    limit: Optional[int] = typer.Option(
        None, help="At most N volumes per split, whole, spread over the split by --limit-seed (quick runs)."
    ),
    limit_seed: int = typer.Option(0, help="Seed of the --limit selection (recorded with the run)."),
    device: str = typer.Option("auto", help="auto, cpu, cuda, cuda:N."),
    batch_size: int = typer.Option(8, help="Slices per model call."),
    num_workers: int = typer.Option(0, help="DataLoader workers reading HDF5."),
    fail_fast: bool = typer.Option(False, help="Stop at the first failed slice."),
    normalize_output: bool = typer.Option(False, help="Match recon mean/std to the target (Lin & Heckel)."),
    split_file: list[str] = typer.Option([], help="SPLIT=CSV in Lin & Heckel's format (repeatable)."),
    annotations: Optional[Path] = typer.Option(None, help="fastMRI+ annotation CSV."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write summary + provenance JSON here."),
    precision: str = typer.Option("fp32", help="fp32, or bf16/fp16 autocast for models that allow it."),
    threads: Optional[int] = typer.Option(
        None,
        help="CPU threads per operation (default: torch's, one per core); fewer on a machine shared with other jobs.",
    ),
    launcher: Optional[str] = typer.Option(None, help="Run as cluster jobs: local or slurm (submitit)."),
    shards: int = typer.Option(2, help="With --launcher: number of jobs (a Slurm array)."),
    partition: Optional[str] = typer.Option(None, help="With --launcher slurm: the partition."),
    gpus_per_node: int = typer.Option(0, help="With --launcher: GPUs per job."),
    timeout_min: int = typer.Option(60, help="With --launcher: wall-time limit per job (minutes)."),
) -> None:
    """Evaluate a model on a task: ID (test_P) and OOD (test_Q) scores with 95% CIs.

    Running the same evaluation again shows the stored result (a killed run is continued); another
    configuration in the same --run-dir is refused, naming what differs.
    """
    import warnings

    from mribench.api.run import EvalOptions, Runtime
    from mribench.errors import StoredRun
    from mribench.paths import atomic_write_text
    from mribench.results import dumps

    options = EvalOptions(
        metrics=tuple(m.strip() for m in metrics.split(",") if m.strip()) if metrics else None,
        splits=tuple(s.strip() for s in splits.split(",") if s.strip()),
        limit=limit,
        limit_seed=limit_seed,
        normalize_output=normalize_output,
        precision=precision,
        split_files=_parse_split_files(split_file),
        annotations=None if annotations is None else str(annotations),
    )
    mode: RunMode = "overwrite" if overwrite else "resume" if resume else "new"
    if threads is not None and threads < 1:
        raise ValueError(f"expected --threads >= 1, got {threads}")
    if int(os.environ.get("RANK", "0")) == 0:
        _announce_task(task)
    if launcher is not None:
        from mribench.workflows.launch import LaunchSpec, launch_evaluation

        rd = run_dir or Path("mribench-runs") / Path(task).stem / Path(model).name.replace(":", "-")
        spec = LaunchSpec(launcher, shards, rd / "jobs", timeout_min, gpus_per_node, partition=partition)
        runtime = Runtime(device=device, batch_size=batch_size, threads=threads)
        launched = launch_evaluation(
            model,
            task,
            spec,
            run_dir=rd,
            checkpoint=checkpoint,
            data=data_root,
            mode=mode,
            options=options,
            runtime=runtime,
        )
        result, rank = cast("RunResult", launched), 0  # waited for: the merged run
    else:
        from mribench.models.loader import load_model
        from mribench.workflows.evaluation import evaluate as run_eval

        rank = int(os.environ.get("RANK", "0"))
        world = int(os.environ.get("WORLD_SIZE", "1"))
        with _progress() as prog, warnings.catch_warnings():
            warnings.simplefilter("ignore", StoredRun)  # said below, in the words of the command line
            runtime = Runtime(
                device=device,
                batch_size=batch_size,
                num_workers=num_workers,
                threads=threads,
                fail_fast=fail_fast,
                rank=rank,
                world_size=world,
                progress=prog,
            )
            result = run_eval(
                load_model(model, checkpoint),
                task,
                data=data_root,
                run_dir=run_dir,
                mode=mode,
                options=options,
                runtime=runtime,
            )
    if rank != 0:
        return
    print_reuse(result)
    print_summary(result)
    console.print(f"[dim]per-slice results: {result.run_dir}[/dim]")
    if output:
        from mribench.workflows.check import slices_payload

        payload = {**result.to_json(), "slices": slices_payload(result)}
        atomic_write_text(output, json.dumps(json.loads(dumps(payload)), indent=1))
        console.print(f"[dim]summary written to {output}[/dim]")
    if len(result.failures):
        print_failures(result)
        raise typer.Exit(1)


# ----------------------------------------------------------------------------- tasks


@tasks_app.command("list")
def tasks_list(
    family: Optional[str] = typer.Option(
        None, help="Only one family: d22 (Darestani et al. 2022) or lh24 (Lin & Heckel 2024)."
    ),
) -> None:
    """List the tasks of both families (d22-*, lh24-*) and the short-name aliases."""
    from mribench.tasks import FAMILIES, aliases, list_tasks, load_task

    by_task: dict[str, list[str]] = {}
    for short, full in aliases().items():
        by_task.setdefault(full, []).append(short)
    t = Table("task", "alias", "version", "P (source)", "Q (target)", "masks", "paper")
    for name in list_tasks(family):
        s = load_task(name)
        masks = _masks_text(s)
        paper = FAMILIES.get(s.family, "")
        t.add_row(
            name, ", ".join(sorted(by_task.get(name, []))), str(s.version), s.source.label, s.target.label, masks, paper
        )
    console.print(t)


def _masks_text(s: Any) -> str:
    def one(m: Any) -> str:
        accs = "/".join(f"{a}x" for a in (m.accelerations or (m.acceleration,)))
        centre = f", {m.center_lines} centre lines" if m.center_lines else ""
        return f"{m.type} {accs}{centre}"

    src, tgt = one(s.source.mask), one(s.target.mask)
    return src if src == tgt else f"{src} -> {tgt}"


@tasks_app.command("show")
def tasks_show(name: str) -> None:
    """Show a task's resolved definition (an alias shows the task it stands for)."""
    import yaml

    from mribench.tasks import load_task

    s = load_task(name)
    if s.alias:
        console.print(f"# {s.alias} is an alias of {s.name}")
    console.print(yaml.safe_dump({**s.raw, "sha256": s.sha256}, sort_keys=False))


@tasks_app.command("validate")
def tasks_validate(names: list[str] = typer.Argument(None, help="Task names or YAML paths (default: all).")) -> None:
    """Validate task definitions (exit 2 on the first invalid one)."""
    from mribench.tasks import list_tasks, load_task

    for n in names or list_tasks():
        s = load_task(n)
        console.print(f"[green]ok[/green] {s.name} v{s.version} ({s.sha256[:12]})")


@tasks_app.command("splits")
def tasks_splits(
    name: str,
    data_root: Optional[Path] = typer.Option(None, envvar="MRIBENCH_DATA"),
    export: Optional[str] = typer.Option(None, help="Export format: csv."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Export file (default stdout)."),
) -> None:
    """Show split sizes, how each was chosen and manifest hashes; --export csv writes (split, file, slice) rows."""
    import pandas as pd

    from mribench.data.index import build_index
    from mribench.data.root import resolve_data_root
    from mribench.tasks import load_task, make_splits

    with _progress() as prog:
        root = resolve_data_root(data_root, prog)
        splits = make_splits(load_task(name), build_index(root))
    if export:
        if export != "csv":
            raise typer.BadParameter(f"expected --export csv, got {export!r}")
        df = pd.concat([s.rows.assign(split=n)[["split", "file", "slice"]] for n, s in splits.items()])
        text = df.to_csv(index=False)
        if output:
            output.write_text(text)
        else:
            sys.stdout.write(text)
        return
    t = Table("split", "volumes", "slices", "chosen by", "manifest sha256")
    for n, s in splits.items():
        t.add_row(n, str(s.num_volumes), str(len(s.rows)), s.source, s.manifest)
    console.print(t)


@tasks_app.command("check")
def tasks_check(
    names: list[str] = typer.Argument(None, help="Tasks or aliases (default: every task)."),
    data_root: Optional[Path] = typer.Option(
        None, envvar="MRIBENCH_DATA", help="fastMRI-format data folder (default: the embedded benchmark)."
    ),
    annotations: Optional[Path] = typer.Option(None, help="fastMRI+ annotation CSV (default ROOT/annotations.csv)."),
) -> None:
    """Volumes and slices per split of every task on a data root; for an empty split, why (exit 1)."""
    from mribench.data.index import build_index
    from mribench.tasks import check_task, list_tasks, load_task
    from mribench.workflows.evaluation import resolve_data_root

    with _progress() as prog:
        root = resolve_data_root(data_root, prog)
        index = build_index(root, annotations=annotations, progress=lambda d, t: prog(d, t, "indexing"))
    console.print(f"{index.table['file'].nunique()} volumes, {len(index.table)} slices under {root}")
    t = Table("task", "train_P", "test_P", "train_Q", "test_Q", "test volumes from")
    problems: list[str] = []
    for n in names or list_tasks():
        c = check_task(load_task(n), index)
        cells = [f"{v.volumes} vol / {v.slices} sl" if v.slices else "[red]none[/red]" for v in c.splits.values()]
        sources = sorted({c.splits[s].source for s in ("test_P", "test_Q") if c.splits[s].source})
        t.add_row(c.task.name if not c.task.alias else f"{c.task.name} ({c.task.alias})", *cells, "; ".join(sources))
        problems += [v.problem for v in c.splits.values() if v.problem]
    console.print(t)
    for p in problems:
        err_console.print(f"[yellow]{p}[/yellow]")
    if len(index.skipped):
        err_console.print(f"[yellow]{len(index.skipped)} file(s) skipped[/yellow] (see `mribench data index`)")
    if problems:
        raise typer.Exit(1)


@tasks_app.command("lock")
def tasks_lock(
    write: bool = typer.Option(False, "--write", help="Record the current definitions as the lock."),
) -> None:
    """Check (or --write) the definitions lock: task versions and hashes, metric profile hashes."""
    from mribench.workflows.lock import check_lock, write_lock

    if write:
        console.print(f"[green]wrote[/green] {write_lock()}")
        return
    problems = check_lock()
    for p in problems:
        err_console.print(f"[red]{p}[/red]")
    if problems:
        raise typer.Exit(1)
    console.print("[green]ok[/green] every task and metric profile matches the lock")


# ----------------------------------------------------------------------------- data


@data_app.command("generate")
def data_generate(
    size: str = typer.Option("default", help="default, fastmri (fastMRI's matrices and coil counts) or tiny."),
    root: Optional[Path] = typer.Option(None, help="Output folder (default: the cache)."),
    task: Optional[list[str]] = typer.Option(
        None, "--task", "-t", help="Only the volumes these tasks train and test on (repeatable; default: all)."
    ),
) -> None:
    """Generate the embedded MRIBench-Sim benchmark (deterministic; cached; jobs generate what they need)."""
    from mribench.data.synthetic import ensure_synthetic
    from mribench.tasks import load_task
    from mribench.tasks.embedded import embedded_volumes

    volumes: set[str] | None = None
    if task:
        volumes = set()
        for t in task:
            volumes |= set(embedded_volumes(load_task(t), ("test", "train_P", "train_Q"), size=size))
    with _progress() as prog:
        path = ensure_synthetic(size=size, root=root, progress=lambda d, t: prog(d, t, "generating"), volumes=volumes)
    console.print(f"MRIBench-Sim ({size}) at {path}")


@data_app.command("verify")
def data_verify(
    root: Optional[Path] = typer.Option(None, help="Dataset folder (default: the cached default size)."),
) -> None:
    """Check the generated volumes of the embedded benchmark against their checksums."""
    from mribench.data.synthetic import default_root, verify_synthetic

    path = root or default_root("default")
    if not path.is_dir():
        raise DataError(
            f"expected a generated MRIBench-Sim folder, got nothing at {path} (hint: mribench data generate)"
        )
    problems = verify_synthetic(path)
    if problems:
        for p in problems:
            err_console.print(f"[red]{p}[/red]")
        raise typer.Exit(1)
    console.print(f"[green]ok[/green] {path}")


def _index(data_root: Optional[Path]) -> Any:
    from mribench.data.index import build_index
    from mribench.data.root import resolve_data_root

    with _progress() as prog:
        root = resolve_data_root(data_root, prog)
        return build_index(root, progress=lambda d, t: prog(d, t, "indexing"))


def _root_argument(positional: Optional[Path], option: Optional[Path]) -> Optional[Path]:
    """The data root given as an argument, else --data-root (or $MRIBENCH_DATA, which it reads)."""
    return positional if positional is not None else option


_ROOT_ARG = typer.Argument(None, help="Data folder (or --data-root; default $MRIBENCH_DATA or the embedded benchmark).")


@data_app.command("index")
def data_index(
    root: Optional[Path] = _ROOT_ARG,
    data_root: Optional[Path] = typer.Option(None, envvar="MRIBENCH_DATA", help="Data folder (as the argument)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the slice index (.csv or .parquet)."),
) -> None:
    """Build (or refresh) the slice index of a data root; list skipped files with reasons."""
    idx = _index(_root_argument(root, data_root))
    console.print(f"{len(idx.table)} slices in {idx.table['file'].nunique()} volumes under {idx.root}")
    for r in idx.skipped.itertuples():
        err_console.print(f"[yellow]skipped[/yellow] {r.file}: {r.reason}", highlight=False)
    if output:
        (idx.table.to_parquet if output.suffix == ".parquet" else idx.table.to_csv)(output, index=False)


def _natural(value: str) -> tuple[int, float, str]:
    """Sort key: numbers by value (4 < 12 < 16), then text."""
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


@data_app.command("info")
def data_info(
    root: Optional[Path] = _ROOT_ARG,
    data_root: Optional[Path] = typer.Option(None, envvar="MRIBENCH_DATA", help="Data folder (as the argument)."),
) -> None:
    """Volumes per dataset / official split / anatomy / contrast / manufacturer / field / coils / pathology."""
    idx = _index(_root_argument(root, data_root))
    vols = idx.volumes()
    console.print(f"[bold]{len(vols)} volumes, {len(idx.table)} slices[/bold] under {idx.root}")
    for col in ("dataset", "official_split", "anatomy", "contrast", "manufacturer", "field", "coils", "pathology"):
        t = Table(col, "volumes", "slices")
        counts = vols[col].astype(str).value_counts()
        slices = idx.table[col].astype(str).value_counts()
        for k in sorted(counts.index, key=_natural):
            t.add_row(str(k), str(counts[k]), str(slices.get(k, 0)))
        console.print(t)
    if len(idx.skipped):
        console.print(f"[yellow]{len(idx.skipped)} file(s) skipped[/yellow] (see `mribench data index`)")


@app.command()
def report(
    run_dirs: list[Path] = typer.Argument(..., help="Run directories (any tasks)."),
    output: Path = typer.Option(Path("mribench-report"), "--output", "-o", help="Output folder."),
    metric: Optional[str] = typer.Option(
        None, help="Headline metric (default: the task's primary metric, the first of its card, e.g. ssim_d22)."
    ),
    q_trained: Optional[Path] = typer.Option(None, help="Run of a model trained on Q (the gap reference)."),
    panels: int = typer.Option(2, help="OOD slices per model in the reconstruction panels (0: none)."),
    data_root: Optional[Path] = typer.Option(None, envvar="MRIBENCH_DATA"),
    er_reference: list[Path] = typer.Option(
        [],
        help="Runs of models trained on P (the reference distribution) for the effective-robustness line "
        "(repeatable; at least 2, else effective robustness is not computed).",
    ),
    er_scale: str = typer.Option("linear", help="Effective-robustness fit: linear (Lin & Heckel) or logit."),
    d22_runs: Optional[tuple[Path, Path, Path, Path]] = typer.Option(
        None,
        help="Four runs P_SUP Q_SUP P_TTT Q_TTT (supervised on P / on Q, self-supervised + TTT on P / on Q): "
        "adds Darestani et al.'s fraction of the gap closed, 1 - gap after TTT / supervised gap.",
    ),
) -> None:
    """Write a self-contained HTML (and Markdown) report: tables, gap, effective robustness, plots, provenance."""
    from mribench.workflows.report import build_report

    index = build_report(
        list(run_dirs),
        output,
        metric=metric,
        q_trained=q_trained,
        panels=panels,
        data_root=data_root,
        er_reference=list(er_reference) or None,
        er_scale=er_scale,
        d22_runs=d22_runs,
    )
    console.print(f"report: {index}")


@app.command()
def curve(
    model: str = typer.Option(..., "--model", "-m"),
    task: str = typer.Option(..., "--task", "-t"),
    axis: str = typer.Option("acceleration", help="acceleration, coils or snr."),
    values: Optional[str] = typer.Option(None, help="Comma-separated axis values (default per axis)."),
    checkpoint: Optional[str] = typer.Option(None),
    metric: str = typer.Option("ssim"),
    data_root: Optional[Path] = typer.Option(None, envvar="MRIBENCH_DATA"),
    run_root: Path = typer.Option(Path("mribench-runs/curves"), help="Where each point's run goes."),
    limit: Optional[int] = typer.Option(None, help="At most N volumes per split per point."),
    overwrite: bool = typer.Option(False, help="Recompute every point (stored points are reused by default)."),
    device: str = typer.Option("auto"),
    plot: Optional[Path] = typer.Option(None, help="Write the curve as PNG + SVG (path without suffix)."),
) -> None:
    """Robustness curve: a metric versus acceleration, coil count or added noise, with its AUC.

    Each point is a run below --run-root; points already stored for the same model are reused.
    """
    from mribench.api.run import Runtime
    from mribench.models.loader import load_model
    from mribench.workflows.curve import robustness_curve

    vals = [float(v) for v in values.split(",")] if values else None
    with _progress() as prog:
        cr = robustness_curve(
            load_model(model, checkpoint),
            task,
            axis,
            values=vals,
            metric=metric,
            data=data_root,
            run_root=run_root,
            limit=limit,
            overwrite=overwrite,
            runtime=Runtime(device=device, progress=prog),
        )
    t = Table(axis, *[f"{s} {metric}" for s in cr.points])
    xs = sorted({x for pts in cr.points.values() for x in pts})
    for x in xs:
        t.add_row(f"{x:g}", *[fmt.number(cr.points[s].get(x)) for s in cr.points])
    t.add_row("AUC", *[fmt.number(cr.auc.get(s)) for s in cr.points])
    console.print(t)
    if plot:
        from mribench.analysis import plot_robustness_curves

        plot_robustness_curves(
            {f"{model} {s}": pts for s, pts in cr.points.items()}, plot, xlabel=axis, metric=metric.upper()
        )
        console.print(f"[dim]plot: {plot}.png[/dim]")


@app.command()
def similarity(
    task: str = typer.Option(..., "--task", "-t"),
    clip_checkpoint: Optional[Path] = typer.Option(
        None, envvar="MRIBENCH_CLIP_CHECKPOINT", help="open_clip ViT-B-16 DataComp weights."
    ),
    data_root: Optional[Path] = typer.Option(None, envvar="MRIBENCH_DATA"),
    per_image: int = typer.Option(8, help="Patches per slice."),
    max_slices: Optional[int] = typer.Option(None, help="At most N slices per split."),
    device: str = typer.Option("auto"),
    plot: Optional[Path] = typer.Option(None, help="Write the histograms as PNG + SVG (path without suffix)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the numbers as JSON."),
) -> None:
    """CLIP nearest-neighbour similarity of test_Q patches to train_P and to train_Q (Lin & Heckel)."""
    from mribench.workflows.similarity import task_similarity

    res = task_similarity(
        task, data_root=data_root, checkpoint=clip_checkpoint, per_image=per_image, max_slices=max_slices, device=device
    )
    t = Table("train -> test", "mean NN similarity", "test patches")
    pairs = {k: v for k, v in res.items() if "->" in k}
    for k, v in pairs.items():
        t.add_row(k, fmt.number(v.mean), str(len(v.values)))
    console.print(t)
    if plot:
        from mribench.analysis import plot_similarity_histograms

        plot_similarity_histograms(pairs, plot)
    if output:
        from mribench.paths import atomic_write_text

        atomic_write_text(
            output,
            json.dumps(
                {
                    k: {"mean": v.mean, "counts": list(map(int, v.counts)), "edges": list(map(float, v.edges))}
                    for k, v in pairs.items()
                },
                indent=1,
            ),
        )


def _one_line(e: ValueError) -> str:
    """A ValueError as one line: for options validated by pydantic, the first error's own message."""
    errors = getattr(e, "errors", None)
    if callable(errors) and type(e).__name__ == "ValidationError":
        first = errors()[0]
        return str(first["msg"]).removeprefix("Value error, ")
    return str(e)


def _is_click_error(e: BaseException) -> bool:
    """A click (or typer's vendored click) usage error: a ``ClickException`` by class name, since
    typer may vendor its own copy of click."""
    return any(c.__name__ == "ClickException" for c in type(e).__mro__)


def _command_path(args: list[str]) -> str:
    """``mribench SUB CMD`` as far as ``args`` name commands (for the hint of an error)."""
    import typer.main

    cmd: Any = typer.main.get_command(app)
    path = ["mribench"]
    for a in args:
        sub = getattr(cmd, "commands", {}).get(a)
        if sub is None:
            break
        path.append(a)
        cmd = sub
    return " ".join(path)


def _error_line(message: str, args: list[str], ctx: Any = None) -> str:
    """``error: <message> (hint: ...)`` on one line; the hint names the command's --help when the
    message brings none."""
    msg = "; ".join(line.strip() for line in str(message).splitlines() if line.strip()) or "unknown error"
    if "hint" not in msg:
        where = getattr(ctx, "command_path", None) or _command_path(args)
        msg += f" (hint: `{where} --help`)"
    return f"error: {msg}"


def _fail(line: str, code: int, debug: bool) -> None:
    from rich.text import Text

    if debug:
        import traceback

        traceback.print_exc()
    err_console.print(Text.assemble(("error:", "red"), line.removeprefix("error:")), highlight=False)
    sys.exit(code)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and map every error to one line and an exit code.

    Exit codes: 0 success (``check``: pass), 1 a result that failed (``check``: a regression;
    ``evaluate``: failed slices; ``leaderboard validate``/``audit``: problems), 2 misuse or an error
    (a usage error, bad input, missing data, an internal error: no result), 3 ``check``:
    inconclusive. ``--debug`` (anywhere on the line) or ``MRIBENCH_DEBUG=1`` adds the traceback.
    """
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("MRIBENCH_DEBUG") == "1"
    args = [a for a in args if a != "--debug"]
    try:
        rc = app(args=args, prog_name="mribench", standalone_mode=False)  # returns a typer.Exit's code
    except MribenchError as e:
        _fail(_error_line(e.for_cli(), args), e.exit_code, debug)
    except ValueError as e:
        _fail(_error_line(_one_line(e), args), 2, debug)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except Exception as e:
        if type(e).__name__ == "NoArgsIsHelpError":  # a group called without a command: its help
            e.show()  # type: ignore[attr-defined]
            sys.exit(2)
        if _is_click_error(e):
            _fail(_error_line(e.format_message(), args, getattr(e, "ctx", None)), 2, debug)  # type: ignore[attr-defined]
        _fail(
            f"error: internal error: {type(e).__name__}: {e} (hint: rerun with --debug for the traceback, and report it)",
            2,
            debug,
        )
    if isinstance(rc, int) and rc:
        sys.exit(rc)


if __name__ == "__main__":
    main()
