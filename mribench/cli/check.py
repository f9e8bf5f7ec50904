"""``mribench check``: the CI regression gate (thin: parsing, printing, exit codes).

Exit codes: 0 pass, 1 regression, 2 misuse (no verdict), 3 inconclusive (see
:mod:`mribench.workflows.check`).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from mribench.cli.progress import err_console, progress_bars

console = Console(width=None if sys.stdout.isatty() else 140)  # logs and CI: no wrapped tables


def check_command(
    reference: Path = typer.Option(
        ..., "--reference", "-r", help="Reference: run dir, results JSON or leaderboard entry."
    ),
    candidate: Optional[Path] = typer.Option(None, "--candidate", "-c", help="Candidate run (or use --model)."),
    model: Optional[str] = typer.Option(
        None, "--model", "-m", help="Evaluate this model now on the reference's slices and use it as the candidate."
    ),
    task: Optional[str] = typer.Option(None, "--task", "-t", help="Task for --model (default: the reference's)."),
    checkpoint: Optional[str] = typer.Option(None, help="Weights for --model."),
    data_root: Optional[Path] = typer.Option(None, envvar="MRIBENCH_DATA"),
    run_dir: Optional[Path] = typer.Option(None, help="Where the --model run is stored."),
    device: str = typer.Option("auto"),
    threads: Optional[int] = typer.Option(None, help="CPU threads per operation for --model."),
    max_drop: list[str] = typer.Option(
        [], help="Allowed degradation, e.g. ssim=0.002 (repeatable); other metrics: their float tolerance."
    ),
    alpha: float = typer.Option(0.05, help="1 - confidence of the paired CI (Bonferroni over the comparisons)."),
    metrics: Optional[str] = typer.Option(None, help="Comma-separated metrics to compare (default: all shared)."),
    allow_missing: bool = typer.Option(
        False, "--allow-missing", help="Compare only the slices both runs have when the candidate misses some."
    ),
    until_decided: bool = typer.Option(
        False,
        "--until-decided",
        help="With --model: evaluate volumes in rounds (the reference's selection order) until every comparison "
        "is decided, instead of all at once.",
    ),
    junit: Optional[Path] = typer.Option(None, help="Write JUnit XML here."),
    markdown: Optional[Path] = typer.Option(None, help="Write the Markdown summary here."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write the report as JSON here."),
) -> None:
    """CI regression gate: exit 0 pass, 1 regression, 2 misuse, 3 inconclusive (too few volumes to decide)."""
    import json

    from mribench.workflows.check import (
        CheckSettings,
        check_model,
        compare_runs,
        describe_regressions,
        describe_undecided,
        parse_thresholds,
        to_junit,
        to_markdown,
    )

    if (candidate is None) == (model is None):
        raise typer.BadParameter("expected exactly one of --candidate or --model")
    if until_decided and model is None:
        raise typer.BadParameter("expected --model with --until-decided (it evaluates volumes as needed)")
    settings = CheckSettings(
        max_drop=parse_thresholds(max_drop),
        alpha=alpha,
        metrics=[m.strip() for m in metrics.split(",") if m.strip()] if metrics else None,
        allow_missing=allow_missing,
    )
    if model is not None:
        from mribench.api.run import Runtime
        from mribench.models.loader import load_model

        with progress_bars() as prog:
            report, _ = check_model(
                reference,
                load_model(model, checkpoint),
                task=task,
                data=data_root,
                run_dir=run_dir,
                settings=settings,
                runtime=Runtime(device=device, threads=threads, progress=prog),
                until_decided=until_decided,
            )
    else:
        report = compare_runs(
            reference,
            candidate,  # type: ignore[arg-type]
            max_drop=settings.max_drop,
            alpha=alpha,
            metrics=settings.metrics,
            allow_missing=allow_missing,
        )
    md = to_markdown(report)
    console.print(md, markup=False, highlight=False)
    if markdown:
        markdown.write_text(md)
    summary_file = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary_file:
        with open(summary_file, "a") as f:
            f.write(md)
    if junit:
        junit.write_text(to_junit(report))
    if output:
        from mribench.paths import atomic_write_text

        atomic_write_text(output, json.dumps(report.to_dict(), indent=1))
    for line in describe_regressions(report) + describe_undecided(report):
        colour = "red" if line.startswith("regression") else "yellow"
        err_console.print(line, style=colour, highlight=False, markup=False, soft_wrap=True)
    if report.exit_code:
        raise typer.Exit(report.exit_code)
