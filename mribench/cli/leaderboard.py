"""Thin CLI of the leaderboard: ``mribench submit`` and ``mribench leaderboard validate|audit|build|export``.

Mount with::

    from mribench.cli.leaderboard import leaderboard_app, submit_command
    app.command("submit")(submit_command)
    app.add_typer(leaderboard_app, name="leaderboard")
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mribench.fmt import number

console = Console()
err_console = Console(stderr=True, soft_wrap=True)

leaderboard_app = typer.Typer(no_args_is_help=True, help="Validate, build and export the leaderboard.")


def submit_command(
    name: Annotated[str, typer.Option("--name", help="Model id: lowercase letters, digits, - and _.")],
    display_name: Annotated[str, typer.Option("--display-name", help="Human-readable model name.")],
    run_dir: Annotated[
        Path | None, typer.Argument(help="A finished run directory (or evaluate now with --model and --task).")
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", "-m", help="Evaluate this model now (name, checkpoint, file.py:attr).")
    ] = None,
    task: Annotated[str | None, typer.Option("--task", "-t", help="The task to evaluate --model on.")] = None,
    checkpoint: Annotated[str | None, typer.Option("--checkpoint", help="Weights for unet/varnet.")] = None,
    data_root: Annotated[
        Path | None, typer.Option("--data-root", envvar="MRIBENCH_DATA", help="Data (default: the embedded benchmark).")
    ] = None,
    eval_dir: Annotated[
        Path | None,
        typer.Option("--run-dir", help="Where the --model run is stored (default mribench-runs/TASK/NAME)."),
    ] = None,
    launcher: Annotated[
        str | None, typer.Option("--launcher", help="Evaluate --model as cluster jobs: local or slurm (submitit).")
    ] = None,
    shards: Annotated[int, typer.Option("--shards", help="With --launcher: number of jobs.")] = 2,
    partition: Annotated[str | None, typer.Option("--partition", help="With --launcher slurm: the partition.")] = None,
    gpus_per_node: Annotated[int, typer.Option("--gpus-per-node", help="With --launcher: GPUs per job.")] = 0,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    authors: Annotated[list[str] | None, typer.Option("--authors", help="Author name (repeatable).")] = None,
    paper: Annotated[str | None, typer.Option("--paper", help="http(s) link to the paper.")] = None,
    code: Annotated[str | None, typer.Option("--code", help="http(s) link to the code.")] = None,
    training_data: Annotated[str | None, typer.Option("--training-data", help="What the model was trained on.")] = None,
    dataset: Annotated[
        str | None, typer.Option("--dataset", help="Name of the evaluation data (default: detected).")
    ] = None,
    q_reference: Annotated[
        Path | None, typer.Option("--q-reference", help="Run of the Q-trained model (adds the gap).")
    ] = None,
    trained_on: Annotated[
        str | None,
        typer.Option(
            "--trained-on",
            help="P, Q or P+Q: what the model was trained on (default: from the checkpoint's record). "
            "A Q-trained entry is the task's reference for the gap, never ranked.",
        ),
    ] = None,
    notes: Annotated[str | None, typer.Option("--notes", help="Free-text notes.")] = None,
    partial: Annotated[
        bool,
        typer.Option("--partial", help="Accept a run that cannot be ranked (limited, failed slices): listed apart."),
    ] = False,
    root: Annotated[Path, typer.Option("--root", help="Leaderboard folder.")] = Path("leaderboard"),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing entry with the same --name.")
    ] = False,
) -> None:
    """Write a leaderboard entry (JSON + per-slice Parquet) under --root, from a finished run or by
    evaluating --model on --task now (every test slice; TTT steps and cost come from the run)."""
    from mribench.results import load_run
    from mribench.workflows.leaderboard.entry import build_entry, write_entry

    if (run_dir is None) == (model is None):
        raise typer.BadParameter("expected a RUN_DIR or --model (with --task), not both")
    if model is not None:
        if task is None:
            raise typer.BadParameter("expected --task with --model")
        run = _evaluate_for_submit(
            model,
            task,
            checkpoint,
            data_root,
            eval_dir or Path("mribench-runs") / Path(task).stem / name,
            launcher,
            (shards, partition, gpus_per_node),
            device,
        )
    else:
        run = load_run(run_dir)  # type: ignore[arg-type]
    entry = build_entry(
        run,
        name=name,
        display_name=display_name,
        authors=authors or [],
        paper=paper,
        code=code,
        training_data=training_data,
        dataset=dataset,
        q_reference=q_reference,
        notes=notes,
        partial=partial,
        trained_on=trained_on.upper() if trained_on else None,
    )
    path = write_entry(entry, run.slices, root, overwrite=overwrite)
    shift = entry.summary.shift
    first = entry.metrics[0]
    scores = f" ({first}: ID {number(shift[first].id)}, OOD {number(shift[first].ood)})" if first in shift else ""
    console.print(
        f"[green]submitted[/green] {entry.model.id} to task {entry.task.name} v{entry.task.version}{scores}"
        + (" [yellow](partial: not ranked)[/yellow]" if entry.partial else ""),
        highlight=False,
    )
    console.print(
        f"[dim]{path} (+ {entry.slices.file if entry.slices else 'no sidecar'}); next: "
        f"`mribench leaderboard validate --root {root}` and open a pull request[/dim]",
        highlight=False,
    )


def _evaluate_for_submit(
    model: str,
    task: str,
    checkpoint: str | None,
    data_root: Path | None,
    run_dir: Path,
    launcher: str | None,
    cluster: tuple[int, str | None, int],
    device: str,
) -> Any:
    """Evaluate ``model`` on every slice of ``task``'s test splits (resuming ``run_dir``), locally
    or as cluster jobs."""
    from mribench.api.run import EvalOptions, Runtime

    if launcher is not None:
        from mribench.workflows.launch import LaunchSpec, launch_evaluation

        shards, partition, gpus = cluster
        spec = LaunchSpec(launcher, shards, run_dir / "jobs", gpus_per_node=gpus, partition=partition)
        return launch_evaluation(
            model,
            task,
            spec,
            run_dir=run_dir,
            checkpoint=checkpoint,
            data=data_root,
            mode="resume",
            options=EvalOptions(),
            runtime=Runtime(device=device),
        )
    import warnings

    from mribench.cli.progress import progress_bars
    from mribench.errors import RunConflict, StoredRun
    from mribench.models.loader import load_model
    from mribench.workflows.evaluation import evaluate

    with progress_bars() as prog, warnings.catch_warnings():
        warnings.simplefilter("ignore", StoredRun)  # a stored run of the same model is what is submitted
        try:
            return evaluate(
                load_model(model, checkpoint),
                task,
                data=data_root,
                run_dir=run_dir,
                mode="resume",
                options=EvalOptions(),
                runtime=Runtime(device=device, progress=prog),
            )
        except RunConflict as e:
            raise e.with_hints(
                "another run directory", f"--run-dir DIR for a separate run, or delete {run_dir}"
            ) from None


@leaderboard_app.command("audit")
def audit_command(
    entry: Annotated[Path, typer.Argument(help="The entry's JSON (entries/TASK/ID.json).")],
    model: Annotated[str, typer.Option("--model", "-m", help="The entry's model (name, checkpoint, file.py:attr).")],
    fraction: Annotated[
        float, typer.Option("--fraction", help="Fraction of each split's volumes to re-evaluate (at least one).")
    ] = 0.1,
    seed: Annotated[int | None, typer.Option("--seed", help="Seed of the sample (default: drawn now).")] = None,
    checkpoint: Annotated[str | None, typer.Option("--checkpoint", help="Weights for unet/varnet.")] = None,
    data_root: Annotated[
        Path | None, typer.Option("--data-root", envvar="MRIBENCH_DATA", help="Data (default: the embedded benchmark).")
    ] = None,
    device: Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N.")] = "auto",
    threads: Annotated[int | None, typer.Option("--threads", help="CPU threads per operation.")] = None,
    run_dir: Annotated[Path | None, typer.Option("--run-dir", help="Where the re-evaluation is stored.")] = None,
    record: Annotated[
        bool, typer.Option("--record/--no-record", help="Append the audit to the entry (default) or only report.")
    ] = True,
) -> None:
    """Re-evaluate a random sample of an entry's slices and compare them slice by slice (exit 0 passed,
    1 failed, 2 misuse); the audit is recorded in the entry."""
    from mribench.api.run import Runtime
    from mribench.workflows.leaderboard.audit import audit_entry

    res = audit_entry(
        entry,
        model,
        data=data_root,
        fraction=fraction,
        seed=seed,
        checkpoint=checkpoint,
        runtime=Runtime(device=device, threads=threads),
        run_dir=run_dir,
        record=record,
    )
    a = res.record
    diffs = ", ".join(f"{m} {'-' if v is None else f'{v:.2e}'}" for m, v in a.max_difference.items())
    where = f"{a.n_slices} slices of {sum(len(v) for v in a.sample.values())} volumes (seed {a.seed})"
    if res.passed:
        console.print(f"[green]audit passed[/green]: {entry}: {where}; max difference {diffs}", highlight=False)
    else:
        err_console.print(
            f"audit failed: {entry}: {a.mismatches} of {a.n_slices} slices differ ({where}; max difference {diffs})",
            style="red",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        for line in res.mismatches:
            err_console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    if record:
        console.print(f"[dim]recorded in {entry}[/dim]", highlight=False)
    if not res.passed:
        raise typer.Exit(1)


@leaderboard_app.command("validate")
def validate_command(
    root: Annotated[Path, typer.Option("--root", help="Leaderboard folder.")] = Path("leaderboard"),
    data_root: Annotated[
        Path | None,
        typer.Option(
            "--data-root", envvar="MRIBENCH_DATA", help="Data the entries were run on: recompute the task splits."
        ),
    ] = None,
    recompute_splits: Annotated[
        bool,
        typer.Option(
            "--recompute-splits",
            help="Recompute the task splits from the data even without --data-root (default data: "
            "$MRIBENCH_DATA or the embedded benchmark, generated if needed).",
        ),
    ] = False,
) -> None:
    """Check every entry (schema, task version and hash, manifests, coverage, numbers and cost vs per-slice
    results); exit 1 on problems."""
    from mribench.workflows.leaderboard.validate import validate_leaderboard

    if recompute_splits and data_root is None:
        from mribench.cli.progress import progress_bars
        from mribench.data.root import resolve_data_root

        with progress_bars() as prog:
            data_root = resolve_data_root(None, prog)
    problems = validate_leaderboard(root, data_root=data_root)
    if problems:
        for p in problems:
            err_console.print(str(p), highlight=False, markup=False, soft_wrap=True)
        err_console.print(f"[red]{len(problems)} problem(s)[/red] in {root}", highlight=False)
        raise typer.Exit(1)
    from mribench.workflows.leaderboard.entry import iter_entry_files

    n = len(iter_entry_files(root))
    console.print(f"[green]ok[/green] {n} entr{'y' if n == 1 else 'ies'} in {root}", highlight=False)


@leaderboard_app.command("build")
def build_command(
    root: Annotated[Path, typer.Option("--root", help="Leaderboard folder.")] = Path("leaderboard"),
    out: Annotated[Path | None, typer.Option("--out", help="Site folder (default ROOT/site).")] = None,
) -> None:
    """Render ROOT/README.md and the static site (HTML, works offline from file://)."""
    from mribench.workflows.leaderboard.site import build_site

    res = build_site(root, out)
    console.print(f"[green]built[/green] {res.pages} files for {len(res.tasks)} task(s): {res.index}", highlight=False)
    console.print(f"[dim]{res.readme}[/dim]", highlight=False)


@leaderboard_app.command("export")
def export_command(
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (parquet) or folder (datasets).")],
    format: Annotated[
        str, typer.Option("--format", help="parquet or datasets (Hugging Face save_to_disk folder).")
    ] = "parquet",
    root: Annotated[Path, typer.Option("--root", help="Leaderboard folder.")] = Path("leaderboard"),
) -> None:
    """Export all entries as one table (one row per entry x split x metric)."""
    from mribench.workflows.leaderboard.export import export_table

    if format not in ("parquet", "datasets"):
        raise typer.BadParameter(f"expected parquet or datasets, got {format!r}", param_hint="--format")
    path = export_table(root, format=format, out=output)  # type: ignore[arg-type]
    console.print(f"[green]exported[/green] {path}", highlight=False)


@leaderboard_app.command("schema")
def schema_command(
    root: Annotated[Path, typer.Option("--root", help="Leaderboard folder.")] = Path("leaderboard"),
) -> None:
    """Write the entry JSON Schema to ROOT/schema/entry-v1.json."""
    from mribench.workflows.leaderboard.entry import write_json_schema

    console.print(f"[green]wrote[/green] {write_json_schema(root)}", highlight=False)
