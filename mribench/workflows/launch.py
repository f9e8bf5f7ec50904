"""Evaluations as cluster jobs: shards of one run as a Slurm job array (or local processes) via submitit.

The launcher prepares the run directory once (``run.json``), submits one job per shard, and each
shard appends to its own per-slice file. A preempted or killed shard is requeued (submitit's
checkpointing) and resumes from the per-slice store, so no slice is computed twice. When every
shard has finished, the summary is derived from the merged store as for any run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mribench.api.run import EvalOptions, RunMode, Runtime
from mribench.results import RunResult, load_run, write_summary

LAUNCHERS = ("local", "slurm")


@dataclass(frozen=True)
class LaunchSpec:
    """Where and how the shards run.

    Attributes:
        launcher: ``local`` (processes on this machine) or ``slurm``.
        shards: number of jobs (array tasks).
        folder: submitit's log/pickle folder.
        timeout_min: wall-time limit per shard.
        gpus_per_node: GPUs per shard.
        cpus_per_task: CPUs per shard.
        mem_gb: memory per shard.
        partition: Slurm partition.
    """

    launcher: str = "local"
    shards: int = 2
    folder: Path = Path("mribench-runs/launch")
    timeout_min: int = 60
    gpus_per_node: int = 0
    cpus_per_task: int | None = None
    mem_gb: float | None = None
    partition: str | None = None

    def __post_init__(self) -> None:
        if self.launcher not in LAUNCHERS:
            raise ValueError(f"expected launcher in {LAUNCHERS}, got {self.launcher!r}")
        if self.shards < 1:
            raise ValueError(f"expected shards >= 1, got {self.shards}")


def _executor(spec: LaunchSpec, name: str) -> Any:
    """A submitit executor configured from ``spec``."""
    import submitit

    ex = submitit.AutoExecutor(folder=str(spec.folder), cluster=spec.launcher)
    params: dict[str, Any] = {"timeout_min": spec.timeout_min, "name": name}
    if spec.gpus_per_node:
        params["gpus_per_node"] = spec.gpus_per_node
    if spec.cpus_per_task:
        params["cpus_per_task"] = spec.cpus_per_task
    if spec.mem_gb:
        params["mem_gb"] = spec.mem_gb
    if spec.launcher == "slurm" and spec.partition:
        params["slurm_partition"] = spec.partition
    ex.update_parameters(**params)
    return ex


class EvaluationShard:
    """One shard of an evaluation (picklable; requeued with the same arguments when preempted).

    The model travels by name (and checkpoint) and is loaded in the job.
    """

    def __init__(self, job: dict[str, Any], world_size: int) -> None:
        self.job = job
        self.world_size = world_size

    def __call__(self, rank: int) -> int:
        from mribench.models.loader import load_model
        from mribench.workflows.evaluation import evaluate

        job = self.job
        runtime = job["runtime"].model_copy(update={"rank": rank, "world_size": self.world_size, "synchronize": False})
        res = evaluate(
            load_model(job["model"], job["checkpoint"]),
            job["task"],
            data=job["data"],
            run_dir=job["run_dir"],
            mode="resume",
            options=job["options"],
            runtime=runtime,
        )
        return int(len(res.slices))

    def checkpoint(self, rank: int) -> Any:
        """submitit calls this on preemption/timeout: resubmit the shard; the store makes it resume."""
        import submitit

        return submitit.helpers.DelayedSubmission(self, rank)


def launch_evaluation(
    model: str,
    task: str,
    spec: LaunchSpec,
    *,
    run_dir: str | os.PathLike[str],
    checkpoint: str | None = None,
    data: str | os.PathLike[str] | None = None,
    mode: RunMode = "new",
    options: EvalOptions | None = None,
    runtime: Runtime | None = None,
    wait: bool = True,
) -> RunResult | list[Any]:
    """Evaluate ``model`` on ``task`` as ``spec.shards`` jobs.

    Args:
        model, task: as :func:`mribench.evaluate` (names or paths: they travel to the jobs).
        spec: launcher settings.
        run_dir: the run directory shared by all shards (on a shared file system for Slurm).
        checkpoint: weights for ``unet``/``varnet`` or a user factory (see :func:`mribench.load_model`).
        data, mode, options: as :func:`mribench.evaluate`.
        runtime: how each shard runs (device, batch size, threads); rank, world size and the
            progress callback are the launcher's.
        wait: wait for the jobs and return the merged :class:`RunResult`; else return the jobs.

    Raises:
        MribenchError subclasses from the preparation (unknown names, missing data, mismatched
        resume); a failed shard re-raises its error when waited for.
    """
    from mribench.models.loader import load_model
    from mribench.workflows.evaluation import prepare_run

    options = options or EvalOptions()
    runtime = (runtime or Runtime()).model_copy(update={"progress": None, "rank": 0, "world_size": 1})
    prepare_run(
        load_model(model, checkpoint), task, data=data, run_dir=run_dir, mode=mode, options=options, runtime=runtime
    )
    ex = _executor(spec, f"mribench-{Path(str(task)).stem}")
    job = {
        "model": model,
        "checkpoint": checkpoint,
        "task": task,
        "data": None if data is None else str(data),
        "run_dir": str(run_dir),
        "options": options,
        "runtime": runtime,
    }
    jobs = ex.map_array(EvaluationShard(job, spec.shards), list(range(spec.shards)))
    if not wait:
        return jobs
    for j in jobs:
        j.result()  # re-raises a shard's error
    result = load_run(run_dir)
    write_summary(run_dir, result.summary)
    return result


class RecipeJob:
    """A baseline recipe as one job (picklable; requeued on preemption, and the recipe resumes)."""

    def __init__(self, name: str, task: str, kwargs: dict[str, Any]) -> None:
        self.name, self.task, self.kwargs = name, task, kwargs

    def __call__(self) -> Any:
        from mribench.workflows.training.recipes import run_recipe

        return run_recipe(self.name, self.task, **self.kwargs)

    def checkpoint(self) -> Any:
        import submitit

        return submitit.helpers.DelayedSubmission(self)


def launch_recipe(name: str, task: str, spec: LaunchSpec, *, wait: bool = True, **kwargs: Any) -> Any:
    """Train and evaluate a baseline recipe as one cluster job (``spec.shards`` is ignored).

    Args:
        name, task: as :func:`mribench.workflows.training.recipes.run_recipe`.
        spec: launcher settings (GPUs, time limit, partition).
        wait: wait and return the ``RecipeResult``; else return the job.
        **kwargs: further ``run_recipe`` options (config, epochs, device, out, data_root).
    """
    ex = _executor(spec, f"mribench-{name}")
    job = ex.submit(RecipeJob(name, task, {k: v for k, v in kwargs.items() if k not in ("progress", "on_epoch")}))
    return job.result() if wait else job
