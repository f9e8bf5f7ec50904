"""Per-slice goldens of the shipped tasks and one shipped baseline (used by tests/test_golden.py).

For every shipped task, one volume of test_P and one of test_Q of the embedded MRIBench-Sim
benchmark (default size) are chosen, preferring volumes other tasks use too and then cheap ones.
Only those volumes are generated (each is a pure function of the generator version, the seed and
its file name, so it is byte-identical to the same file of the full benchmark), and the task is
evaluated on a folder holding just its two volumes: a volume's split depends only on its own name
and metadata, and a slice's metrics only on its own volume, so every per-slice number equals the
one of a full run. ``tests/data/golden/<task>@<model>.json`` holds the numbers, keyed by the task's
name and sha256, the model's sha256, the generator version and the metric profiles.

Regenerate after an intended change (a new task version, a changed metric) with::

    python tests/data/golden/regenerate.py            # all goldens
    python tests/data/golden/regenerate.py anatomy    # some tasks

and commit the JSON files with the change that explains them.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any

GOLDEN_DIR = Path(__file__).resolve().parent / "data" / "golden"
REGENERATE = "python tests/data/golden/regenerate.py"
SPLITS = ("test_P", "test_Q")
TRAIN_SPLITS = ("train_P", "train_Q")  # present in a task folder, not evaluated
BASELINES = {"d22-anatomy": ("unet-sim-knee",)}  # shipped baselines with goldens, per task
SIM_SIZE, SIM_SEED = "default", 0


def missing_weights() -> list[str]:
    """Metric weights files that are not in place (``mribench weights fetch``). Without them a task's
    LPIPS/DISTS metrics are left out of its evaluation, so a golden computed or checked then lacks them."""
    from mribench.metrics.weights import weights_status

    return [w.name for w in weights_status() if w.status != "found"]


def golden_path(task: str, model: str) -> Path:
    return GOLDEN_DIR / f"{task}@{model}.json"


def models_of(task: str) -> tuple[str, ...]:
    return ("zero-filled", *BASELINES.get(task, ()))


def choose_volumes(tasks: list[str], root: Path) -> dict[str, dict[str, str]]:
    """``{task: {split: file}}``: one volume per evaluated split of each task, from the full benchmark."""
    from mribench.data.index import build_index
    from mribench.data.synthetic.catalog import catalog
    from mribench.data.synthetic.generate import _cost
    from mribench.tasks import load_task, make_splits

    cost = {s.name: _cost(s) for s in catalog(SIM_SIZE)}
    index = build_index(root)
    chosen: set[str] = set()
    out: dict[str, dict[str, str]] = {}
    for name in tasks:
        # a training volume of each side too: with both official folders present the test splits
        # are exactly the validation volumes (a root holding only one kind would be hash-split)
        splits = make_splits(load_task(name), index, names=(*SPLITS, *TRAIN_SPLITS))
        out[name] = {}
        for sp in (*SPLITS, *TRAIN_SPLITS):
            files = sorted(set(splits[sp].rows["file"]))
            if not files:
                raise ValueError(f"expected slices in {sp} of task {name} on MRIBench-Sim, got none")
            f = min(files, key=lambda f: (f not in chosen, cost[f], f))
            out[name][sp] = f
            chosen.add(f)
    return out


def _paths(files: set[str]) -> dict[str, str]:
    """``{file: path relative to the benchmark root}`` (``multicoil_train/...`` or ``multicoil_val/...``)."""
    from mribench.data.synthetic.catalog import catalog

    specs = {s.name: s for s in catalog(SIM_SIZE)}
    missing = sorted(files - set(specs))
    if missing:
        raise ValueError(f"expected MRIBench-Sim volumes, got unknown names {missing} ({REGENERATE})")
    return {f: specs[f].path for f in files}


def generate_volumes(files: set[str], root: Path) -> Path:
    """Generate the named MRIBench-Sim volumes (and their annotation rows) into ``root``, in the
    benchmark's own folder layout."""
    from mribench.data.synthetic.catalog import catalog
    from mribench.data.synthetic.generate import _generate_one, _row_key

    specs = {s.name: s for s in catalog(SIM_SIZE)}
    _paths(files)  # unknown names fail here
    root.mkdir(parents=True, exist_ok=True)
    rows: list[list[Any]] = []
    for f in sorted(files):
        rows += _generate_one(specs[f], SIM_SIZE, SIM_SEED, str(root))[2]
    with open(root / "annotations.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["file", "slice", "study_level", "x", "y", "width", "height", "label"])
        w.writerows(sorted(rows, key=_row_key))
    return root


def task_folder(volumes: dict[str, str], data: Path, out: Path) -> Path:
    """A data folder holding only a task's chosen volumes (links into ``data``, same layout)."""
    for rel in _paths(set(volumes.values())).values():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        os.symlink(data / rel, out / rel)
    os.symlink(data / "annotations.csv", out / "annotations.csv")
    return out


def evaluate_golden(task: str, model: str, data: Path, run_dir: Path) -> dict[str, Any]:
    """Evaluate ``model`` on ``task`` over ``data``; the golden record (per-slice metrics, identities)."""
    from mribench import Runtime, evaluate
    from mribench.data.synthetic import SIM_VERSION

    r = evaluate(model, task, data=data, run_dir=run_dir, mode="overwrite", runtime=Runtime(device="cpu"))
    records = r.slices.to_dict("records")
    return {
        "task": task,
        "task_version": r.config.task.version,
        "task_sha256": r.config.task.sha256,
        "model": model,
        "model_sha256": r.config.model.sha256,
        "sim_version": SIM_VERSION,
        "metric_profiles": r.config.metric_profiles,
        "volumes": sorted(set(r.slices["file"])),
        "slices": [
            {
                "split": x["split"],
                "file": x["file"],
                "slice": int(x["slice"]),
                "status": x["status"],
                "metrics": {m: _number(x[m]) for m in r.config.metrics},
            }
            for x in records
        ],
    }


# How close a re-computed number must be to its golden. Float32 results depend on the CPU's kernels
# (numpy's SIMD dispatch, OpenBLAS, torch): on an AVX-512 machine the metrics differed from the goldens
# by up to 4.9e-7 relative (DISTS; LPIPS 1.6e-7, NMSE and region SSIM 1.4e-7, the shipped U-Net's SSIM
# 5e-8), and by up to 9e-8 with numpy's and torch's AVX-512 paths disabled: bit-equality across
# machines is not to be had. 1e-5 relative covers round-off of about 80 float32 ulps per pixel (see
# mribench/metrics/definitions.py) and is 10x tighter than the tolerances of `mribench check` and the
# leaderboard audit; a change of a task, mask, generator, metric or model moves numbers by far more.
GOLDEN_RELATIVE, GOLDEN_ABSOLUTE = 1e-5, 1e-8
_IDENTITY = ("split", "file", "slice", "status")


def slice_differences(want: list[dict[str, Any]], got: list[dict[str, Any]]) -> list[str]:
    """Where re-computed per-slice records differ from the golden ones (empty when they agree).

    Identity fields (split, file, slice, status) and missing values (None) must be equal; metric
    values within ``GOLDEN_ABSOLUTE + GOLDEN_RELATIVE * |golden|`` (the rule of mribench's metric
    :class:`~mribench.metrics.registry.Tolerance`, which `mribench check` and the audit use).
    """
    from mribench.metrics.registry import Tolerance

    tolerance = Tolerance(absolute=GOLDEN_ABSOLUTE, relative=GOLDEN_RELATIVE, why="float32 round-off across CPUs")
    if len(want) != len(got):
        return [f"{len(got)} slices, the golden has {len(want)}"]
    out = []
    for w, g in zip(want, got, strict=True):
        where = f"{w['split']} {w['file']} slice {w['slice']}"
        if any(w[k] != g[k] for k in _IDENTITY) or set(w["metrics"]) != set(g["metrics"]):
            out.append(f"{where}: {({k: g[k] for k in _IDENTITY}, sorted(g['metrics']))} is not the golden's")
            continue
        for name, a in w["metrics"].items():
            b = g["metrics"][name]
            if a is None or b is None:
                if a is not b:
                    out.append(f"{where}: {name} {b} (golden {a})")
            elif not abs(a - b) <= tolerance.allowed(a):
                out.append(f"{where}: {name} {b!r} (golden {a!r}, difference {abs(a - b):.1e})")
    return out


def _number(v: Any) -> float | None:
    """A metric value as stored: a float, or None where it is not finite (a region metric without boxes)."""
    f = float(v)
    return f if math.isfinite(f) else None


def write_golden(record: dict[str, Any], volumes: dict[str, str]) -> Path:
    path = golden_path(record["task"], record["model"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**record, "chosen": volumes}, indent=1, sort_keys=True) + "\n")
    return path


def read_golden(task: str, model: str) -> dict[str, Any]:
    path = golden_path(task, model)
    if not path.is_file():
        raise FileNotFoundError(f"no per-slice golden for task {task} with {model} ({path.name}); run: {REGENERATE}")
    return dict(json.loads(path.read_text()))
