"""``mribench baseline``: list and run the baseline recipes (thin layer over :mod:`mribench.workflows.training.recipes`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from mribench.cli.progress import err_console, progress_bars
from mribench.fmt import number

console = Console()

baseline_app = typer.Typer(no_args_is_help=True, help="Train and evaluate baseline recipes (sup-p, sup-q, joint, ...).")


_progress = progress_bars


@baseline_app.command("list")
def list_cmd() -> None:
    """List the baseline recipes."""
    from mribench.workflows.training.recipes import RECIPES, recipe_card

    table = Table("recipe", "trains on", "model", "loss", "description")
    for name in RECIPES:
        c = recipe_card(name)
        table.add_row(name, c["train_on"], c["arch"], c["loss"], c["description"])
    console.print(table)


@baseline_app.command("config")
def config_cmd(
    name: str | None = typer.Argument(None, help="Recipe name (default: all, with --write)."),
    write: Path | None = typer.Option(
        None, "--write", help="Write <DIR>/<recipe>/config.yaml for every recipe (e.g. --write baselines)."
    ),
) -> None:
    """Print a recipe's default configuration as YAML (the start of an override file), or write all of them."""
    from mribench.workflows.training.recipe_files import config_yaml, write_config_files

    if write is not None:
        for p in write_config_files(write):
            console.print(f"wrote {p}")
        return
    if name is None:
        raise typer.BadParameter("expected a recipe name (or --write DIR for all recipes)")
    try:
        text = config_yaml(name)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from None
    typer.echo(text, nl=False)


@baseline_app.command("run")
def run_cmd(
    name: str = typer.Argument(..., help="Recipe name (see `mribench baseline list`)."),
    task: str = typer.Option(..., "--task", "-t", help="Task name or YAML path."),
    epochs: int | None = typer.Option(None, "--epochs", help="Override training.epochs."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:N."),
    out: Path | None = typer.Option(
        None, "--out", "-o", help="Run directory (default mribench-runs/baselines/<task>/<recipe>)."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="YAML overriding the recipe defaults (e.g. baselines/<name>/config.yaml)."
    ),
    data_root: Path | None = typer.Option(
        None, "--data-root", help="fastMRI-format data (default $MRIBENCH_DATA or the embedded benchmark)."
    ),
    threads: int | None = typer.Option(
        None, "--threads", help="torch intra-op CPU threads (tiny models on a busy CPU: 1)."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No per-epoch lines or progress bars."),
    launcher: str | None = typer.Option(None, "--launcher", help="Run as a cluster job: local or slurm (submitit)."),
    partition: str | None = typer.Option(None, "--partition", help="With --launcher slurm: the partition."),
    gpus_per_node: int = typer.Option(0, "--gpus-per-node", help="With --launcher: GPUs for the job."),
    timeout_min: int = typer.Option(600, "--timeout-min", help="With --launcher: wall-time limit (minutes)."),
) -> None:
    """Train a recipe on a task, evaluate it on test_P / test_Q and write a run directory (re-running resumes)."""
    from mribench.workflows.training.recipes import run_recipe

    if threads is not None:
        if threads < 1:
            raise ValueError(f"expected --threads >= 1, got {threads}")
        import torch

        torch.set_num_threads(threads)

    def on_epoch(rec: dict[str, Any]) -> None:
        if not quiet:
            err_console.print(
                f"epoch {rec['epoch']}: loss {number(rec['train_loss'])}  ID SSIM {number(rec.get('id_ssim'))}  "
                f"OOD SSIM {number(rec.get('ood_ssim'))}  ({rec['seconds']:.1f} s)",
                highlight=False,
            )

    if launcher is not None:
        from mribench.workflows.launch import LaunchSpec, launch_recipe

        folder = (out or Path("mribench-runs") / "baselines" / Path(task).stem / name) / "jobs"
        spec = LaunchSpec(launcher, 1, folder, timeout_min, gpus_per_node, partition=partition)
        r = launch_recipe(name, task, spec, config=config, epochs=epochs, device=device, out=out, data_root=data_root)
    else:
        with _progress(not quiet) as prog:
            r = run_recipe(
                name,
                task,
                config=config,
                epochs=epochs,
                device=device,
                out=out,
                data_root=data_root,
                progress=prog,
                on_epoch=on_epoch,
            )
    table = Table("recipe", "model", "epoch", "SSIM test_P (ID)", "SSIM test_Q (OOD)", "train s", "eval s")
    table.add_row(
        name,
        r.config.name,
        str(r.chosen_epoch),
        number(r.scores.get("test_P")),
        number(r.scores.get("test_Q")),
        f"{r.train_seconds:.0f}",
        f"{r.eval_seconds:.0f}",
    )
    console.print(table)
    if "diverse" in r.extra:
        d = r.extra["diverse"]
        for k, v in d["singles"].items():
            console.print(f"single P_i={k}: test_Q SSIM {number(v['scores'].get('test_Q'))}")
        console.print(f"best single: {d['best_single']}; union OOD gain: {number(d['ood_gain_over_best_single'])}")
    console.print(f"run directory: {r.out_dir}")


__all__ = ["baseline_app"]
