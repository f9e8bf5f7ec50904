"""Export all entries as one table: Parquet, or a Hugging Face ``datasets`` folder.

Layout ("long" / tidy): **one row per entry x split x metric**, because entries differ in their
splits and metrics (reported entries often have test_Q only; some runs add LPIPS, DISTS...) and a
long table needs no sparse columns. Columns, in order:

``task, task_version, model_id, display_name, kind, dataset, real_data, split, metric,
higher_is_better, mean, ci_low, ci_high, n, drop, gap, fraction_closed, seconds_per_slice, date,
mribench_version, paper, code, citation, sidecar_sha256``

``drop``, ``gap`` and ``fraction_closed`` are per (entry, metric) and repeated on the entry's rows of
that metric; missing numbers are null. ``df.pivot_table(index=["task", "model_id"],
columns=["split", "metric"], values="mean")`` gives the wide view.
"""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from pathlib import Path
from typing import Literal

import pandas as pd

from mribench.paths import atomic_write_bytes
from mribench.workflows.leaderboard.entry import load_entries

COLUMNS = [
    "task",
    "task_version",
    "model_id",
    "display_name",
    "kind",
    "dataset",
    "real_data",
    "split",
    "metric",
    "higher_is_better",
    "mean",
    "ci_low",
    "ci_high",
    "n",
    "drop",
    "gap",
    "fraction_closed",
    "seconds_per_slice",
    "date",
    "mribench_version",
    "paper",
    "code",
    "citation",
    "sidecar_sha256",
]
_FLOAT = ("mean", "ci_low", "ci_high", "drop", "gap", "fraction_closed", "seconds_per_slice")


def leaderboard_table(root: str | os.PathLike[str] = "leaderboard") -> pd.DataFrame:
    """All entries under ``root`` as the long table described in the module docstring."""
    rows = []
    for le in load_entries(root):
        e = le.entry
        for split, s in sorted(e.summary.splits.items()):
            for metric, v in s.metrics.items():
                sh, g = e.summary.shift.get(metric), e.summary.gap.get(metric)
                rows.append(
                    {
                        "task": e.task.name,
                        "task_version": e.task.version,
                        "model_id": e.model.id,
                        "display_name": e.model.display_name,
                        "kind": e.kind,
                        "dataset": e.data.name,
                        "real_data": e.data.real,
                        "split": split,
                        "metric": metric,
                        "higher_is_better": e.higher_is_better.get(metric, True),
                        "mean": v.mean,
                        "ci_low": v.ci_low,
                        "ci_high": v.ci_high,
                        "n": v.n,
                        "drop": sh.drop if sh else None,
                        "gap": g.gap if g else None,
                        "fraction_closed": g.fraction_closed if g else None,
                        "seconds_per_slice": e.cost.seconds_per_slice if e.cost else None,
                        "date": e.date.isoformat(),
                        "mribench_version": e.mribench_version,
                        "paper": e.model.paper,
                        "code": e.model.code,
                        "citation": f"{e.source.citation} ({e.source.table})" if e.source else None,
                        "sidecar_sha256": e.slices.sha256 if e.slices else None,
                    }
                )
    df = pd.DataFrame(rows, columns=COLUMNS)
    for c in _FLOAT:
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    df["task_version"] = df["task_version"].astype("int64")
    df["n"] = df["n"].astype("Int64")
    df["real_data"] = df["real_data"].astype(bool)
    df["higher_is_better"] = df["higher_is_better"].astype(bool)
    return df.sort_values(["task", "model_id", "split", "metric"], kind="mergesort").reset_index(drop=True)


def export_table(
    root: str | os.PathLike[str] = "leaderboard",
    format: Literal["parquet", "datasets"] = "parquet",
    out: str | os.PathLike[str] = "leaderboard.parquet",
) -> Path:
    """Write all entries as one table.

    Args:
        root: the leaderboard folder.
        format: ``parquet`` (one file) or ``datasets`` (a ``datasets.Dataset.save_to_disk`` folder,
            ready for ``Dataset.load_from_disk(out).push_to_hub(...)``).
        out: output file or folder. An existing ``datasets`` folder is replaced; any other existing
            folder is refused.

    Returns:
        The output path.

    Raises:
        ValueError: unknown format, or ``out`` is an existing folder that is not a saved dataset.
    """
    df = leaderboard_table(root)
    path = Path(out)
    if format == "parquet":
        buf = io.BytesIO()
        df.to_parquet(buf, index=False, engine="pyarrow")
        atomic_write_bytes(path, buf.getvalue())
        return path
    if format != "datasets":
        raise ValueError(f"expected format 'parquet' or 'datasets', got {format!r}")
    import datasets

    if path.exists() and not (path.is_dir() and (path / "state.json").is_file()):
        raise ValueError(f"expected --output to be a new folder or a saved dataset, got existing {path}")
    path.parent.mkdir(parents=True, exist_ok=True)
    ds = datasets.Dataset.from_pandas(df, preserve_index=False)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    bars_were_on = not datasets.utils.are_progress_bars_disabled()
    datasets.utils.disable_progress_bars()  # the library never prints
    try:
        ds.save_to_disk(str(tmp / "ds"))
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp / "ds", path)
    finally:
        if bars_were_on:
            datasets.utils.enable_progress_bars()
        shutil.rmtree(tmp, ignore_errors=True)
    return path
