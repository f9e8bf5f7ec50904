"""Thin CLI of the leaderboard: ``mribench submit`` and ``mribench leaderboard validate|build|export``.

Mount with::

    from mribench.cli.leaderboard import leaderboard_app, submit_command
    app.command("submit")(submit_command)
    app.add_typer(leaderboard_app, name="leaderboard")
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from mribench.fmt import number

console = Console()
err_console = Console(stderr=True)

leaderboard_app = typer.Typer(no_args_is_help=True, help="Validate, build and export the leaderboard.")


def submit_command(
    run_dir: Annotated[Path, typer.Argument(help="A finished run directory (mribench evaluate --run-dir).")],
    name: Annotated[str, typer.Option("--name", help="Model id: lowercase letters, digits, - and _.")],
    display_name: Annotated[str, typer.Option("--display-name", help="Human-readable model name.")],
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
    ttt_steps: Annotated[
        float | None, typer.Option("--ttt-steps", help="Mean test-time-training steps per slice.")
    ] = None,
    notes: Annotated[str | None, typer.Option("--notes", help="Free-text notes.")] = None,
    root: Annotated[Path, typer.Option("--root", help="Leaderboard folder.")] = Path("leaderboard"),
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing entry with the same --name.")
    ] = False,
) -> None:
    """Turn a finished run into a leaderboard entry (JSON + per-slice Parquet) under --root."""
    from mribench.results import load_run
    from mribench.workflows.leaderboard.entry import build_entry, write_entry

    run = load_run(run_dir)
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
        ttt_steps=ttt_steps,
        notes=notes,
    )
    path = write_entry(entry, run.slices, root, overwrite=overwrite)
    shift = entry.summary.shift
    first = entry.metrics[0]
    scores = f" ({first}: ID {number(shift[first].id)}, OOD {number(shift[first].ood)})" if first in shift else ""
    console.print(
        f"[green]submitted[/green] {entry.model.id} to task {entry.task.name} v{entry.task.version}{scores}",
        highlight=False,
    )
    console.print(
        f"[dim]{path} (+ {entry.slices.file if entry.slices else 'no sidecar'}); next: "
        f"`mribench leaderboard validate --root {root}` and open a pull request[/dim]",
        highlight=False,
    )


@leaderboard_app.command("validate")
def validate_command(
    root: Annotated[Path, typer.Option("--root", help="Leaderboard folder.")] = Path("leaderboard"),
    data_root: Annotated[
        Path | None,
        typer.Option(
            "--data-root", envvar="MRIBENCH_DATA", help="Data the entries were run on: recompute the task splits."
        ),
    ] = None,
) -> None:
    """Check every entry (schema, task version, manifests, numbers vs per-slice results); exit 1 on problems."""
    from mribench.workflows.leaderboard.validate import validate_leaderboard

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
