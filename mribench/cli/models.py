"""CLI sub-app ``mribench models ...``: list, inspect, fetch, add and remove models (mounted by :mod:`mribench.cli.app`)."""

from __future__ import annotations

import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from mribench.cli.progress import progress_bars

console = Console(width=None if sys.stdout.isatty() else 160)

models_app = typer.Typer(
    no_args_is_help=True, help="List models; fetch, add and remove published ones (the model zoo); inspect checkpoints."
)

_ARCH_HINT = {
    "unet": "--checkpoint FILE (fastMRI U-Net)",
    "varnet": "--checkpoint FILE (fastMRI VarNet)",
    "unet-d22": "--checkpoint FILE (D22 2-channel U-Net)",
}


@models_app.command("list")
def models_list() -> None:
    """Built-in, shipped and plugin models, then the published models of the zoo with their status."""
    from mribench.models import MODELS
    from mribench.models.shipped import shipped_baselines
    from mribench.models.zoo import zoo_entries, zoo_status

    zoo = {e.name: e for e in zoo_entries()}
    shipped = {e["name"]: e for e in shipped_baselines()}
    t = Table("model", "kind", "architecture", "training data", "how to use", title="Built-in and shipped models")
    for n in MODELS.names():
        if n in zoo:
            continue
        if n in shipped:
            e = shipped[n]
            data = (e.get("training_data") or {}).get("description", "")
            cfg = ", ".join(f"{k}={v}" for k, v in (e.get("config") or {}).items())
            t.add_row(n, "shipped", f"{e.get('arch', '')} ({cfg})", f"{e.get('dataset', '')}: {data}", "")
        elif n in _ARCH_HINT:
            t.add_row(n, "architecture", n, "-", _ARCH_HINT[n])
        elif n in ("zero-filled", "cs-l1wavelet"):
            t.add_row(n, "built-in", "classical", "none", "")
        else:
            t.add_row(n, "plugin", "", "", "")
    console.print(t)
    z = Table("model", "architecture", "training data", "paper", title="Published models (zoo)")
    z.add_column("source URL", overflow="fold")
    z.add_column("licence")
    z.add_column("status")
    for entry in zoo.values():
        z.add_row(entry.name, entry.arch, entry.training_data, entry.paper, entry.url, entry.licence, zoo_status(entry))
    console.print(z)
    console.print(
        "[dim]Zoo models: `mribench models fetch NAME` (download once, sha256 pinned) or `mribench models add NAME "
        "FILE` (a copy obtained elsewhere), then `--model NAME`. Also: a checkpoint path, package.module:attr, or "
        "path/to/file.py:attr.[/dim]"
    )


@models_app.command("fetch")
def models_fetch(
    names: list[str] = typer.Argument(..., help="Zoo model names (see `mribench models list`)."),
    timeout: float = typer.Option(60.0, help="Seconds to wait for the server."),
) -> None:
    """Download zoo models once (plain HTTPS), pin their sha256 on first use, reuse the cached file afterwards."""
    from mribench.models.zoo import fetch_model

    for name in names:
        with progress_bars() as prog:

            def bar(done: int, total: int, label: str = f"downloading {name}") -> None:
                prog(done, total or done, label)

            r = fetch_model(name, timeout=timeout, progress=bar)
        what = "downloaded" if r.downloaded else "cached"
        pin = "pinned now" if r.pinned_now else "matches its pin"
        console.print(f"[green]ok[/green] {name}: {what}, sha256 {r.sha256} ({pin}) at {r.path}", highlight=False)
        if r.inferred:
            console.print(f"  [dim]{r.inferred}[/dim]", highlight=False)


@models_app.command("add")
def models_add(
    name: str = typer.Argument(..., help="Zoo model name."),
    file: Path = typer.Argument(..., help="The model's file, downloaded (and unpacked) elsewhere."),
) -> None:
    """Register a zoo model's file obtained elsewhere (offline machines): copied into the cache and pinned."""
    from mribench.models.zoo import add_model

    r = add_model(name, file)
    pin = "pinned now" if r.pinned_now else "matches its pin"
    console.print(f"[green]ok[/green] {name}: sha256 {r.sha256} ({pin}) at {r.path}", highlight=False)
    if r.inferred:
        console.print(f"  [dim]{r.inferred}[/dim]", highlight=False)


@models_app.command("remove")
def models_remove(name: str = typer.Argument(..., help="Zoo model name.")) -> None:
    """Delete a zoo model's cached file and its sha256 pin (the next fetch pins again)."""
    from mribench.models.zoo import remove_model

    removed = remove_model(name)
    console.print(f"{'removed' if removed else 'nothing cached for'} {name}")


@models_app.command("inspect")
def models_inspect(
    model: str = typer.Argument(..., help="A checkpoint file or a model name."),
    checkpoint: str = typer.Option(None, help="Weights for unet / varnet / unet-d22."),
) -> None:
    """Load a model (weights only, nothing executed) and show what was recognised and inferred."""
    from mribench.models import load_model

    lm = load_model(model, checkpoint)
    d = lm.info.details
    console.print(f"[bold]{lm.info.name}[/bold] ({lm.info.kind}), sha256 {lm.info.sha256}", highlight=False)
    for key in ("arch", "config", "inferred", "path", "url", "paper", "training_data", "licence", "description"):
        if d.get(key) not in (None, "", {}):
            console.print(f"  {key}: {d[key]}", highlight=False, soft_wrap=True)


__all__ = ["models_app"]
