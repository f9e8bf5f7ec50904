"""Slice index at scale: build, Parquet cache, task filters and splits on a synthetic 500k-row table.

Usage::

    python benchmarks/index_scale.py [--rows 500000] [--profile] [--json out.json]

The table has the columns of :data:`mribench.data.index.COLUMNS` with fastMRI-like value
distributions (knee volumes of 30-45 slices, brain volumes of 14-16, several sites, field strengths,
coil counts and protocols, ~10% pathological volumes). It is built the way ``build_index`` builds
its table (one dict per slice, then ``pd.DataFrame(rows, columns=COLUMNS)``) and, for comparison,
column-wise. Every shipped task's filters and ``make_splits`` run on it (nothing is monkeypatched).
Target (DESIGN.md): seconds.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import pstats
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from mribench.data.index import COLUMNS, apply_filter, derive_contrast, field_bucket
from mribench.tasks import list_tasks, load_task, make_splits

KNEE = ["CORPD_FBK", "CORPDFS_FBK"]
BRAIN = ["AXT1", "AXT1PRE", "AXT1POST", "AXT2", "AXFLAIR"]
MODELS = [("Skyra", 2.89362), ("Prisma_fit", 2.89362), ("Biograph_mMR", 2.89362), ("Aera", 1.494), ("Avanto", 1.494)]
INSTITUTIONS = ["NYU", "NYU LANGONE CBI", "TH RADIOLOGY", "HJD"]


def volume_rows(n_rows: int, seed: int = 0) -> list[dict[str, Any]]:
    """Per-slice dict rows (as ``build_index`` makes them) until ``n_rows`` slices."""
    rng = np.random.default_rng(seed)
    rows: list[dict[str, Any]] = []
    v = 0
    while len(rows) < n_rows:
        knee = rng.random() < 0.45
        stanford = knee and rng.random() < 0.1  # converted Stanford 3D knees (GE)
        protocol = "3D_FSE_PDFS" if stanford else str(rng.choice(KNEE if knee else BRAIN))
        model, tesla = ("DISCOVERY MR750", 3.0) if stanford else MODELS[int(rng.integers(len(MODELS)))]
        n = int(rng.integers(30, 46) if knee else rng.integers(14, 17))
        coils = 15 if knee else int(rng.choice([4, 8, 12, 16, 20]))
        w = int(rng.choice([368, 372])) if knee else int(rng.choice([320, 396]))
        pathology = bool(rng.random() < 0.1)
        dataset = "stanford_3d_sag" if stanford else f"fastmri_{'knee' if knee else 'brain'}"
        name = (
            f"stanford3d_{v:07d}_sagittal.h5"
            if stanford
            else (f"file{1000000 + v}.h5" if knee else f"file_brain_{protocol}_200_{6000000 + v}.h5")
        )
        split = "val" if rng.random() < 0.2 else "train"
        institution = str(rng.choice(INSTITUTIONS, p=[0.55, 0.2, 0.15, 0.1]))
        base = {
            "file": name,
            "num_slices": n,
            "path": f"{dataset}/multicoil_{split}/{name}",
            "dataset": dataset,
            "official_split": split,
            "origin": "real",
            "acquisition": protocol,
            "protocol": protocol,
            "anatomy": "knee" if knee else "brain",
            "contrast": derive_contrast(protocol),
            "vendor": "GE MEDICAL SYSTEMS" if stanford else "SIEMENS",
            "manufacturer": "GE" if stanford else "SIEMENS",
            "system_model": model,
            "field_strength": tesla,
            "field": field_bucket(tesla),
            "coils": coils,
            "institution": institution,
            "sequence_type": "TurboSpinEcho",
            "tr": float(rng.uniform(2000, 6000)),
            "te": float(rng.uniform(10, 120)),
            "ti": None,
            "kspace_h": 640,
            "kspace_w": w,
            "target_h": 320,
            "target_w": 320,
            "recon_h": 320,
            "recon_w": 320,
            "padding_left": (w - 320) // 2 - 10,
            "padding_right": w - (w - 320) // 2 + 10,
            "volume_max": float(rng.uniform(2e-4, 1e-3)),
            "patient_id": f"p{v // 2:07d}",
            "study_level": "" if knee or pathology else str(rng.choice(["Normal for age", ""])),
            "pathology": pathology,
        }
        for s in range(n):
            nb = int(rng.poisson(1.5)) if pathology and rng.random() < 0.4 else 0
            rows.append({**base, "slice": s, "slice_pathology": nb > 0, "num_boxes": nb})
        v += 1
    return rows[:n_rows]


def columnar(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    return {c: [r[c] for r in rows] for c in COLUMNS}


def timed(fn: Callable[[], Any], repeat: int = 3) -> tuple[float, Any]:
    """Best of ``repeat`` wall times (seconds) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def profile(fn: Callable[[], Any], top: int = 12) -> str:
    pr = cProfile.Profile()
    pr.enable()
    fn()
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("cumulative").print_stats(top)
    return s.getvalue()


def run(n_rows: int, do_profile: bool) -> dict[str, Any]:
    res: dict[str, Any] = {"rows": n_rows}
    t0 = time.perf_counter()
    rows = volume_rows(n_rows)
    res["generate_rows_s"] = time.perf_counter() - t0
    res["build_from_dict_rows_s"], table = timed(lambda: pd.DataFrame(rows, columns=COLUMNS), 1)
    cols = columnar(rows)
    res["build_columnar_s"], _ = timed(lambda: pd.DataFrame(cols, columns=COLUMNS), 1)
    rows.clear()
    cols.clear()
    res["volumes"] = int(table["file"].nunique())
    res["memory_mb"] = float(table.memory_usage(deep=True).sum() / 2**20)

    buf = io.BytesIO()
    res["parquet_write_s"], _ = timed(lambda: (buf.seek(0), buf.truncate(), table.to_parquet(buf, index=False)))
    res["parquet_mb"] = buf.getbuffer().nbytes / 2**20
    res["parquet_read_s"], back = timed(lambda: pd.read_parquet(io.BytesIO(buf.getvalue())))
    assert len(back) == len(table)

    filters, splits = {}, {}
    for name in list_tasks():
        task = load_task(name)
        specs = [
            task.source.filter,
            task.target.filter,
            *([task.target.test_filter] if task.target.test_filter else []),
        ]
        filters[name], _ = timed(lambda specs=specs: [apply_filter(table, f) for f in specs])
        splits[name], out = timed(lambda task=task: make_splits(task, table), 1)
        splits[name + ":sizes"] = {k: len(s.rows) for k, s in out.items()}
    res["apply_filter_s"] = filters
    res["make_splits_s"] = splits
    slowest = max((k for k in splits if ":" not in k), key=lambda k: splits[k])
    res["slowest_make_splits"] = slowest
    if do_profile:
        task = load_task(slowest)
        res["profile_make_splits"] = profile(lambda: make_splits(task, table))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=500_000)
    ap.add_argument("--profile", action="store_true", help="cProfile the slowest make_splits")
    ap.add_argument("--json", help="write the results as JSON to this file")
    args = ap.parse_args(argv)
    res = run(args.rows, args.profile)
    prof = res.pop("profile_make_splits", None)
    print(f"slice index, {res['rows']} rows, {res['volumes']} volumes, {res['memory_mb']:.0f} MiB in memory")
    for k in ("generate_rows_s", "build_from_dict_rows_s", "build_columnar_s", "parquet_write_s", "parquet_read_s"):
        print(f"  {k:28s} {res[k]:8.3f}")
    print(f"  {'parquet size (MiB)':28s} {res['parquet_mb']:8.1f}")
    print("  task          apply_filter_s  make_splits_s  split sizes (slices)")
    for name, t in res["apply_filter_s"].items():
        print(f"  {name:22s} {t:7.3f}  {res['make_splits_s'][name]:9.3f}  {res['make_splits_s'][name + ':sizes']}")
    if prof:
        print(f"\nprofile of make_splits({res['slowest_make_splits']}):\n{prof}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
