"""Thin CLI of the file exchange: ``mribench export-inputs`` and ``mribench score``.

Mount with ``register(app, print_summary)``; the work is :mod:`mribench.workflows.exchange`.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from mribench.cli.output import first, print_failures, print_reuse
from mribench.cli.progress import err_console, progress_bars

console = Console(width=None if sys.stdout.isatty() else 140)  # logs and CI: no wrapped lines

# the run table `evaluate` prints, handed over by `register` (this module cannot import the app that mounts it)
_print_summary: list[Callable[[Any], None]] = [lambda result: None]
_SPLITS_HELP = "Comma-separated splits (default: test_P,test_Q; for score, those of the export)."


def _options(
    splits: str | None, limit: int | None, split_file: list[str] | None, extra: dict[str, Any] | None = None
) -> Any:
    from mribench.api.run import EvalOptions

    kw: dict[str, Any] = dict(extra or {})
    if splits is not None:
        kw["splits"] = tuple(s.strip() for s in splits.split(",") if s.strip())
    files = {}
    for v in split_file or []:
        name, sep, path = v.partition("=")
        if not sep:
            raise typer.BadParameter(f"expected SPLIT=CSV (e.g. test_Q=testset.csv), got {v!r}")
        files[name] = path
    return EvalOptions(limit=limit, split_files=files, **kw)


def export_inputs_command(
    task: Annotated[str, typer.Option("--task", "-t", help="Task name or YAML path.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Export folder.")],
    splits: Annotated[str | None, typer.Option("--splits", "--split", help=_SPLITS_HELP)] = None,
    limit: Annotated[int | None, typer.Option(help="At most N slices per split (quick runs).")] = None,
    split_file: Annotated[
        list[str] | None, typer.Option(help="SPLIT=CSV in Lin & Heckel's format (repeatable).")
    ] = None,
    data_root: Annotated[
        Path | None, typer.Option(envvar="MRIBENCH_DATA", help="fastMRI-format data folder (default: embedded).")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an earlier export in --output.")] = False,
) -> None:
    """Write a task's inputs (masked k-space, mask, header; no targets) as fastMRI test-set style files."""
    from mribench.workflows.exchange import MANIFEST, export_inputs

    options = _options(splits, limit, split_file)
    with progress_bars() as prog:
        rep = export_inputs(task, output, data=data_root, options=options, overwrite=overwrite, progress=prog)
    for s, sp in rep.manifest["splits"].items():
        m = sp["mask"]
        console.print(
            f"{s}: {sp['n_volumes']} files, {sp['n_slices']} slices, {m['type']} mask {m['acceleration']}x "
            f"(centre fraction {m['center_fraction']})"
        )
    console.print(f"inputs in {rep.output}/<split>/<file>; manifest {rep.output / MANIFEST}")
    console.print(
        "[dim]write one file per input, same name, under <split>/, with a 'reconstruction' dataset "
        "(slices, h, w) (the manifest's reconstruction_shape); then: mribench score --task "
        f"{rep.manifest['task']['name']} RECON_DIR --inputs {rep.output}[/dim]"
    )


def score_command(
    recon_dir: Annotated[Path, typer.Argument(help="Folder of reconstruction files: <split>/<file>.")],
    task: Annotated[str, typer.Option("--task", "-t", help="Task name or YAML path.")],
    inputs: Annotated[
        Path | None,
        typer.Option(help="The export folder (or manifest) to check the inputs against (default: one in RECON_DIR)."),
    ] = None,
    name: Annotated[str | None, typer.Option(help="Model name in the results (default: the folder's name).")] = None,
    data_root: Annotated[
        Path | None, typer.Option(envvar="MRIBENCH_DATA", help="fastMRI-format data folder (default: embedded).")
    ] = None,
    run_dir: Annotated[
        Path | None, typer.Option(help="Per-slice result store (default ./mribench-runs/TASK/NAME).")
    ] = None,
    resume: Annotated[
        bool, typer.Option(hidden=True, help="Continue the run in --run-dir (the default when it is the same).")
    ] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace the run in --run-dir (recompute everything).")] = False,
    metrics: Annotated[str | None, typer.Option(help="Comma-separated metrics overriding the task's list.")] = None,
    splits: Annotated[str | None, typer.Option("--splits", "--split", help=_SPLITS_HELP)] = None,
    limit: Annotated[int | None, typer.Option(help="At most N slices per split (default: the export's).")] = None,
    split_file: Annotated[
        list[str] | None, typer.Option(help="SPLIT=CSV in Lin & Heckel's format (repeatable).")
    ] = None,
    normalize_output: Annotated[bool, typer.Option(help="Match recon mean/std to the target (Lin & Heckel).")] = False,
    annotations: Annotated[Path | None, typer.Option(help="fastMRI+ annotation CSV.")] = None,
    device: Annotated[str, typer.Option(help="Where the metrics run: auto, cpu, cuda, cuda:N.")] = "auto",
    batch_size: Annotated[int, typer.Option(help="Slices per read.")] = 8,
    threads: Annotated[int | None, typer.Option(min=1, help="CPU threads per operation (default: torch's).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write summary + provenance JSON here.")] = None,
) -> None:
    """Score reconstruction files (fastMRI submission layout) like a model: per-slice store, summary, check, submit."""
    import warnings

    from mribench.api.run import RunMode, Runtime
    from mribench.errors import StoredRun
    from mribench.workflows.exchange import MANIFEST, read_manifest, score

    manifest = inputs if inputs is not None else recon_dir / MANIFEST if (recon_dir / MANIFEST).is_file() else None
    if manifest is not None and (splits is None or limit is None):
        m = read_manifest(manifest)
        splits = splits if splits is not None else ",".join(m["splits"])
        limit = limit if limit is not None else m.get("limit")
    extra: dict[str, Any] = {"normalize_output": normalize_output}
    if metrics:
        extra["metrics"] = tuple(x.strip() for x in metrics.split(",") if x.strip())
    if annotations is not None:
        extra["annotations"] = str(annotations)
    options = _options(splits, limit, split_file, extra)
    mode: RunMode = "overwrite" if overwrite else "resume" if resume else "new"
    with progress_bars() as prog, warnings.catch_warnings():
        warnings.simplefilter("ignore", StoredRun)  # said below, in the words of the command line
        res = score(
            task,
            recon_dir,
            data=data_root,
            run_dir=run_dir,
            mode=mode,
            options=options,
            runtime=Runtime(device=device, batch_size=batch_size, threads=threads, progress=prog),
            inputs=inputs,
            name=name,
        )
    result = res.result
    print_reuse(result)
    _print_summary[0](result)
    console.print(f"[dim]per-slice results: {result.run_dir}[/dim]")
    if res.manifest is not None:
        console.print(f"[dim]inputs checked against {res.manifest}[/dim]")
    if output:
        from mribench.paths import atomic_write_text
        from mribench.results import dumps
        from mribench.workflows.check import slices_payload

        payload = {**result.to_json(), "slices": slices_payload(result)}
        atomic_write_text(output, json.dumps(json.loads(dumps(payload)), indent=1))
        console.print(f"[dim]summary written to {output}[/dim]")
    if res.missing:
        err_console.print(f"[red]{len(res.missing)} reconstruction file(s) missing[/red]: {first(res.missing)}")
    if res.extra:
        err_console.print(f"[yellow]{len(res.extra)} extra file(s) not scored[/yellow]: {first(res.extra)}")
    if len(result.failures):
        print_failures(result)
        raise typer.Exit(1)


def register(app: typer.Typer, print_summary: Callable[[Any], None]) -> None:
    """Mount ``export-inputs`` and ``score`` on the top-level app.

    Args:
        app: the top-level app.
        print_summary: prints a run's ID / OOD table (the one ``evaluate`` prints).
    """
    _print_summary[0] = print_summary
    app.command("export-inputs", help="Write a task's inputs as fastMRI test-set style files (no targets).")(
        export_inputs_command
    )
    app.command("score", help="Score reconstruction files of exported inputs (fastMRI submission layout).")(
        score_command
    )


__all__ = ["export_inputs_command", "register", "score_command"]
