"""Per-slice result store and run summaries.

A run directory holds:

- ``run.json``: the run's configuration and provenance (schema :data:`SCHEMA_VERSION`), written
  atomically before any slice is computed;
- ``slices/*.jsonl``: one JSON record per finished slice, appended line by line and fsync'd (one file
  per worker rank). A line cut short by a crash is ignored on load, so a killed run loses at most the
  batch in flight and resumes where it stopped;
- ``summary.json``: a cache of :func:`summarize` — always re-derivable from the slices, never the
  source of truth.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mribench.errors import ResultsError
from mribench.paths import atomic_write_text

SCHEMA_VERSION = 1
SLICE_COLUMNS = ["split", "file", "slice", "status", "error", "seconds"]
OPTIONAL_COLUMNS = ["ttt_steps"]  # test-time-training steps per slice, when the model reports them


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def json_number(v: float) -> float | str | None:
    """How a float is stored in results JSON: itself when finite, None for NaN, ``"inf"``/``"-inf"``."""
    if math.isfinite(v):
        return v
    return None if v != v else ("inf" if v > 0 else "-inf")


def dumps(obj: Any, indent: int | None = None) -> str:
    """Standard JSON with sorted keys; NaN is written as null, +-Inf as the strings ``"inf"``/``"-inf"``.

    Results never contain non-standard JSON (``NaN``, ``Infinity``). NaN means "not defined" and
    reads back as NaN; an infinity is a real value (PSNR of an exact reconstruction) and must not
    become a missing one, so it is written as a string that :func:`metric_value` (and ``float()``,
    ``pandas.to_numeric``) read back as the infinity (see :mod:`mribench.analysis.stats`).
    """
    try:  # fast path: plain JSON types and finite numbers
        return json.dumps(obj, sort_keys=True, allow_nan=False, indent=indent)
    except (ValueError, TypeError):
        pass

    def clean(o: Any) -> Any:
        if isinstance(o, float):
            return json_number(o)
        if isinstance(o, dict):
            return {str(k): clean(v) for k, v in o.items()}
        if isinstance(o, (list, tuple)):
            return [clean(v) for v in o]
        if isinstance(o, (np.floating, np.integer)):
            return clean(o.item())
        return o

    return json.dumps(clean(obj), default=_json_default, sort_keys=True, indent=indent)


class SliceStore:
    """Append-only per-slice records of one run (one JSONL file per rank).

    Each batch is one ``write`` of complete lines, so a killed process never loses a written batch
    (the page cache survives it); ``fsync`` (against power loss) runs at most every
    ``fsync_interval`` seconds and at :meth:`close`. The file stays open between appends.
    """

    def __init__(self, run_dir: str | os.PathLike[str], rank: int = 0, fsync_interval: float = 1.0) -> None:
        self.run_dir = Path(run_dir)
        self.dir = self.run_dir / "slices"
        self.path = self.dir / f"rank{rank}.jsonl"
        self.fsync_interval = fsync_interval
        self._last_sync = 0.0
        self._dirty = False
        self._fd: int | None = None

    def _open(self) -> tuple[int, bytes]:
        """Open for appending; returns the fd and a newline that closes a line torn by a crash, if any."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
        size = os.fstat(fd).st_size
        torn = size > 0 and os.pread(fd, 1, size - 1) != b"\n"
        self._fd = fd
        return fd, b"\n" if torn else b""

    def sync(self) -> None:
        """Flush written records to disk."""
        if self._dirty and self._fd is not None:
            os.fsync(self._fd)
        self._dirty = False

    def close(self) -> None:
        """Flush and close the file (appending again reopens it)."""
        self.sync()
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def append(self, records: list[dict[str, Any]]) -> None:
        """Append records as one write of complete lines."""
        if not records:
            return
        data = "".join(dumps(r) + "\n" for r in records).encode()
        if self._fd is None:
            fd, prefix = self._open()
            data = prefix + data  # keeps the new records intact after a torn last line
        else:
            fd = self._fd
        os.write(fd, data)
        now = time.monotonic()
        if now - self._last_sync >= self.fsync_interval:
            os.fsync(fd)
            self._last_sync = now
            self._dirty = False
        else:
            self._dirty = True

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            os.close(self._fd)  # type: ignore[arg-type]

    def records(self) -> list[dict[str, Any]]:
        """All complete records of every rank (a truncated line, or one without a string split and
        file and an integer slice, is skipped)."""
        out: list[dict[str, Any]] = []
        if not self.dir.is_dir():
            return out
        for f in sorted(self.dir.glob("*.jsonl")):
            for line in f.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash
                if (
                    isinstance(rec, dict)
                    and isinstance(rec.get("split"), str)
                    and isinstance(rec.get("file"), str)
                    and isinstance(rec.get("slice"), int)
                ):
                    out.append(rec)
        return out

    def done_keys(self) -> set[tuple[str, str, int]]:
        return {(r["split"], r["file"], int(r["slice"])) for r in self.records()}


_INFINITIES = {"inf": math.inf, "-inf": -math.inf}


def metric_value(v: Any) -> float:
    """A stored per-slice metric value as a float: a number, null (NaN), or ``"inf"``/``"-inf"``.

    Raises:
        ResultsError: for any other value.
    """
    if v is None:
        return math.nan
    if isinstance(v, numbers.Real) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str) and v in _INFINITIES:
        return _INFINITIES[v]
    raise ResultsError(f'expected a metric value as a number, null, "inf" or "-inf", got {v!r}')


def records_to_frame(records: list[dict[str, Any]], metrics: list[str]) -> pd.DataFrame:
    """Flatten records into one row per slice: split, file, slice, status, error, seconds, <metrics>.

    Rows are sorted by (split, file, slice). Duplicate keys (possible only after a crash between two
    ranks' writes) keep the last record.
    """
    extra = [c for c in OPTIONAL_COLUMNS if any(c in r for r in records)]
    columns = [*SLICE_COLUMNS, *extra, *metrics]
    latest: dict[tuple[str, str, int], dict[str, Any]] = {}
    for r in records:  # plain Python: pandas' per-call overhead dominates for typical run sizes
        latest[(r["split"], r["file"], int(r["slice"]))] = r
    keys = sorted(latest)
    if not keys:
        return pd.DataFrame(columns=columns)
    data: dict[str, list[Any]] = {c: [latest[k].get(c) for k in keys] for c in (*SLICE_COLUMNS, *extra)}
    data["slice"] = [k[2] for k in keys]  # the int() of the key
    for m in metrics:
        data[m] = [metric_value((latest[k].get("metrics") or {}).get(m)) for k in keys]
    return pd.DataFrame(data, columns=columns)


def _metric_cis(files: np.ndarray, arrays: dict[str, np.ndarray], seed: int = 0) -> dict[str, dict[str, Any]]:
    """Per-metric mean and 95% CI (cluster bootstrap over volumes, 1000 draws).

    The rule for non-finite values is :mod:`mribench.analysis.stats`'s: ``mean``/CI over the ``n``
    finite values, +-Inf values counted in ``n_inf``, NaN (not defined) left out.

    Args:
        files: (N,) volume of each slice.
        arrays: ``{metric: (N,) float64 values}``.
        seed: seed of the bootstrap.
    """
    from mribench.analysis.stats import summarize_columns

    cis = summarize_columns(arrays, files, n_boot=1000, alpha=0.05, seed=seed)
    return {m: {"mean": c.mean, "ci_low": c.low, "ci_high": c.high, "n": c.n, "n_inf": c.n_inf} for m, c in cis.items()}


def summarize(slices: pd.DataFrame, config: dict[str, Any]) -> dict[str, Any]:
    """Derive the run summary from the per-slice table.

    Returns:
        ``{"splits": {split: {"n_ok", "n_failed", "n_volumes", "metrics": {m: {mean, ci_low,
        ci_high, n, n_inf}}}}, "shift": {m: {"id", "ood", "drop"}}, "failures": [...]}``. ``drop`` is
        the loss from ID to OOD (positive = worse out of distribution) whatever the metric's
        direction. ``mean``/CI are over the ``n`` finite values; ``n_inf`` counts the infinite
        ones (e.g. PSNR of exact reconstructions), left out of the mean (see
        :mod:`mribench.analysis.stats`).
    """
    metrics: list[str] = list(config.get("metrics", []))
    directions: dict[str, bool] = config.get("higher_is_better", {})
    out: dict[str, Any] = {"splits": {}, "shift": {}, "failures": []}
    if slices.empty:
        return out
    # NumPy columns rather than groupby: this runs at the end of every evaluation
    split = slices["split"].to_numpy(dtype=object)
    files = slices["file"].to_numpy(dtype=object)
    is_ok = slices["status"].to_numpy(dtype=object) == "ok"
    values = {m: slices[m].to_numpy(dtype=np.float64) for m in metrics}
    for name in sorted(set(split.tolist())):
        sel = split == name
        ok = sel & is_ok
        entry: dict[str, Any] = {
            "n_ok": int(ok.sum()),
            "n_failed": int((sel & ~is_ok).sum()),
            "n_volumes": len(set(files[ok].tolist())),
            "metrics": {},
        }
        cis = _metric_cis(files[ok], {m: v[ok] for m, v in values.items()})
        entry["metrics"] = {m: cis[m] for m in metrics}
        out["splits"][name] = entry
    sp = out["splits"]
    if "test_P" in sp and "test_Q" in sp:
        for m in metrics:
            i, o = sp["test_P"]["metrics"][m]["mean"], sp["test_Q"]["metrics"][m]["mean"]
            hib = directions.get(m, True)
            out["shift"][m] = {"id": i, "ood": o, "drop": (i - o) if hib else (o - i)}
    bad = np.flatnonzero(~is_ok).tolist()
    if bad:
        sl = slices["slice"].to_numpy()
        err = slices["error"].to_numpy(dtype=object) if "error" in slices.columns else [None] * len(slices)
        out["failures"] = [{"split": split[i], "file": files[i], "slice": int(sl[i]), "error": err[i]} for i in bad]
    return out


@dataclass
class RunResult:
    """A run loaded from its directory.

    Attributes:
        run_dir: the folder.
        config: contents of ``run.json``.
        slices: one row per slice (split, file, slice, status, error, seconds, metrics...).
        summary: :func:`summarize` of ``slices``.
    """

    run_dir: Path
    config: dict[str, Any]
    slices: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)

    @property
    def failures(self) -> pd.DataFrame:
        return self.slices[self.slices["status"] != "ok"] if not self.slices.empty else self.slices

    def to_json(self) -> dict[str, Any]:
        """Summary + provenance, as written by ``--output``."""
        return {
            "schema_version": SCHEMA_VERSION,
            "run_dir": str(self.run_dir),
            "config": self.config,
            "summary": self.summary,
        }


def read_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """Read ``run.json``.

    Raises:
        ResultsError: if missing, corrupt or of a newer schema.
    """
    p = Path(run_dir) / "run.json"
    if not p.is_file():
        raise ResultsError(f"expected a run directory with run.json, got {Path(run_dir)}")
    try:
        cfg = json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise ResultsError(f"expected valid JSON in {p}, got: {e}") from None
    if cfg.get("schema_version", 0) > SCHEMA_VERSION:
        raise ResultsError(
            f"expected result schema <= {SCHEMA_VERSION}, got {cfg.get('schema_version')} (upgrade mribench)"
        )
    return cfg


def write_config(run_dir: str | os.PathLike[str], config: dict[str, Any]) -> None:
    atomic_write_text(Path(run_dir) / "run.json", dumps(config, indent=2))


def load_run(run_dir: str | os.PathLike[str]) -> RunResult:
    """Load a run directory: config, per-slice table and (re-derived) summary."""
    cfg = read_config(run_dir)
    slices = records_to_frame(SliceStore(run_dir).records(), list(cfg.get("metrics", [])))
    return RunResult(Path(run_dir), cfg, slices, summarize(slices, cfg))
