"""CLI for dataset conversion: ``mribench data convert`` and ``mribench data datasets``.

Thin layer over :mod:`mribench.data.convert`: parse options, show progress, print a summary.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from mribench.data.convert import CONVERTERS, DEFAULT_LEVEL, DEFAULT_PERCENTILE, convert_dataset
from mribench.errors import MribenchError

console = Console()
err_console = Console(stderr=True)

convert_app = typer.Typer(no_args_is_help=True, help="Convert other MRI datasets to the fastMRI format.")


@convert_app.command("convert")
def convert(
    dataset: str = typer.Argument(..., help="Dataset name (see `mribench data datasets`)."),
    src: Path = typer.Argument(..., help="Source file or folder of the dataset's native files."),
    out: Path = typer.Argument(..., help="Output folder for the fastMRI-format files."),
    view: Optional[list[str]] = typer.Option(None, "--view", help="View to write (repeatable; 3D datasets)."),
    trim: Optional[tuple[int, int]] = typer.Option(
        None, "--trim", help="Slices dropped at the start and the end: --trim 5 5."
    ),
    recon_size: Optional[tuple[int, int]] = typer.Option(
        None, "--recon-size", help="Target crop: --recon-size 320 320."
    ),
    level: float = typer.Option(DEFAULT_LEVEL, help="Value of the RSS percentile after scaling."),
    percentile: float = typer.Option(DEFAULT_PERCENTILE, help="RSS percentile the scaling matches to --level."),
    protocol: Optional[str] = typer.Option(None, help="Protocol name written to the header."),
    anatomy: Optional[str] = typer.Option(None, help="Anatomy (knee, brain, ...)."),
    vendor: Optional[str] = typer.Option(None, help="Scanner vendor."),
    model: Optional[str] = typer.Option(None, help="Scanner model."),
    field: Optional[float] = typer.Option(None, help="Field strength in tesla."),
    institution: Optional[str] = typer.Option(None, help="Institution name."),
    dataset_name: Optional[str] = typer.Option(
        None, "--dataset-name", help="The `dataset` recorded in every file (default: the converter's name for it)."
    ),
    limit: Optional[int] = typer.Option(None, min=1, help="Convert at most this many source files."),
    overwrite: bool = typer.Option(False, help="Replace existing output files."),
) -> None:
    """Convert a dataset to fastMRI multi-coil HDF5 files (one per scan and view)."""
    meta = {
        "protocol": protocol,
        "anatomy": anatomy,
        "vendor": vendor,
        "model": model,
        "field": field,
        "institution": institution,
    }
    try:
        with console.status(f"converting {dataset}") as status:

            def progress(done: int, total: int, name: str) -> None:
                status.update(f"converting {dataset}: {done}/{total} {name}")

            report = convert_dataset(
                dataset,
                src,
                out,
                views=view or None,
                trim=trim,
                recon_size=recon_size,
                level=level,
                percentile=percentile,
                metadata=meta,
                limit=limit,
                overwrite=overwrite,
                progress=progress,
                dataset_name=dataset_name,
            )
    except (MribenchError, ValueError) as e:
        err_console.print(f"[red]error:[/red] {e}")
        raise typer.Exit(2) from None
    console.print(f"wrote {len(report.written)} file(s) under {out}")
    for f, reason in report.skipped:
        err_console.print(f"[yellow]skipped[/yellow] {f}: {reason}")
    if report.skipped and not report.written:
        raise typer.Exit(1)


@convert_app.command("datasets")
def datasets() -> None:
    """List the datasets `convert` knows, with their status, source and licence."""
    table = Table("name", "dataset", "supported", "views", "source", "licence")
    for name in CONVERTERS.names():
        s = CONVERTERS.get(name)
        views = ", ".join(s.default_views) if s.kind == "3d" else "native 2D"
        table.add_row(name, s.title, "yes" if s.supported else "no", views if s.supported else "-", s.source, s.licence)
    console.print(table)


__all__ = ["convert", "convert_app", "datasets"]
