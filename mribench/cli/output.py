"""What the commands print about a run besides its table: stored slices used, failed slices, long lists."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from mribench.cli.progress import err_console

if TYPE_CHECKING:
    from mribench.results import RunResult


def first(items: Sequence[str], shown: int = 10) -> str:
    """``a, b, c`` for the first ``shown`` items, then ``... and N more``."""
    text = ", ".join(items[:shown])
    return text + (f" ... and {len(items) - shown} more" if len(items) > shown else "")


def print_reuse(result: RunResult) -> None:
    """Say (on stderr) when an evaluation used slices stored in its run directory."""
    r = result.reuse
    if r is None:
        return
    if r.kind == "stored":
        text = (
            f"{result.run_dir} holds this evaluation already (same model identity, task, data and options): "
            f"showing its stored result, nothing recomputed"
        )
    else:
        text = f"continued the run in {result.run_dir}: {r.n_stored} of {r.n_planned} slices were stored already"
    if r.left_out:
        text += (
            f"; metrics {', '.join(r.left_out)} were unavailable (weights missing) when the run started and stay "
            f"out of it"
        )
    err_console.print(f"[cyan]{text}[/cyan] (--overwrite recomputes everything)", highlight=False)


def print_failures(result: RunResult, shown: int = 10) -> None:
    """List the failed slices of a run on stderr (the first ``shown``, then how many more)."""
    fails = result.failures
    err_console.print(f"[red]{len(fails)} slice(s) failed[/red]:")
    for r in fails.head(shown).itertuples():
        err_console.print(f"  {r.split} {r.file} slice {r.slice}: {r.error}", highlight=False)
    if len(fails) > shown:
        err_console.print(f"  ... and {len(fails) - shown} more (all in {result.run_dir}/slices)", highlight=False)
