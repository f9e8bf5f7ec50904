"""Safe reading and canonical writing of entry files (JSON + per-slice Parquet sidecar).

Nothing from a submission is ever executed or unpickled: JSON goes through :mod:`json` with a size
cap and non-finite constants rejected; Parquet goes through pyarrow only, its schema is checked
column by column before the data are read, and its pandas metadata is ignored.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from mribench.errors import SubmissionError
from mribench.workflows.leaderboard.schema import MAX_ENTRY_BYTES, MAX_SIDECAR_BYTES

KEY_COLUMNS = ("split", "file", "slice", "status", "seconds")
TTT_COLUMN = "ttt_steps"  # optional, after seconds: test-time-training steps per slice
MAX_SIDECAR_ROWS = 2_000_000


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _reject_constant(name: str) -> Any:
    raise ValueError(f"expected finite numbers, got {name}")


def _finite_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise ValueError(f"expected finite numbers, got {text} (overflows to {v})")
    return v


def read_json_capped(path: Path, max_bytes: int = MAX_ENTRY_BYTES) -> dict[str, Any]:
    """Read a JSON object with a size cap; NaN/Infinity and duplicate keys are rejected.

    Raises:
        SubmissionError: oversized, unreadable, not UTF-8, invalid JSON, non-finite number, or not
            an object.
    """
    size = path.stat().st_size
    if size > max_bytes:
        raise SubmissionError(f"oversized file: {size} bytes (limit {max_bytes})")
    with open(path, "rb") as f:
        raw = f.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise SubmissionError(f"oversized file: more than {max_bytes} bytes (limit {max_bytes})")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for k, v in pairs:
            if k in out:
                raise ValueError(f"expected unique keys, got {k!r} twice")
            out[k] = v
        return out

    try:
        text = raw.decode("utf-8")
        data = json.loads(
            text, parse_constant=_reject_constant, parse_float=_finite_float, object_pairs_hook=no_duplicates
        )
    except UnicodeDecodeError:
        raise SubmissionError("malformed JSON: expected UTF-8 text") from None
    except json.JSONDecodeError as e:
        raise SubmissionError(f"malformed JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    except ValueError as e:
        if "finite" in str(e):
            raise SubmissionError(f"non-finite number: {e}") from None
        raise SubmissionError(f"malformed JSON: {e}") from None
    except RecursionError:
        raise SubmissionError("malformed JSON: nested too deeply") from None
    if not isinstance(data, dict):
        raise SubmissionError(f"malformed JSON: expected an object at the top, got {type(data).__name__}")
    return data


def entry_json_text(data: dict[str, Any]) -> str:
    """Canonical text of an entry: sorted keys, 2-space indent, finite numbers only, trailing newline."""
    return json.dumps(data, indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"


# --------------------------------------------------------------------------- sidecar


def _has_ttt(slices: pd.DataFrame) -> bool:
    """Whether a per-slice table records test-time-training steps (a column with a value)."""
    return TTT_COLUMN in slices.columns and bool(pd.to_numeric(slices[TTT_COLUMN], errors="coerce").notna().any())


def sidecar_frame(slices: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The per-slice table as stored: split, file, slice, status, seconds, [ttt_steps,] <metrics>; sorted.

    Args:
        slices: a run's per-slice table (``load_run(dir).slices``); extra columns are dropped
            (``ttt_steps`` is kept when the run recorded it).
        metrics: metric column names, in order.

    Raises:
        SubmissionError: a needed column is missing.
    """
    need = [*KEY_COLUMNS, *metrics]
    missing = [c for c in need if c not in slices.columns]
    if missing:
        raise SubmissionError(f"expected per-slice columns {need}, got no {missing}")
    extra = [TTT_COLUMN] if _has_ttt(slices) else []
    df = slices[[*KEY_COLUMNS, *extra, *metrics]].copy()
    df["split"] = df["split"].astype(str)
    df["file"] = df["file"].astype(str)
    df["slice"] = df["slice"].astype("int64")
    df["status"] = df["status"].astype(str)
    for c in ("seconds", *extra, *metrics):
        df[c] = pd.to_numeric(df[c], errors="coerce").astype("float64")
    return df.sort_values(["split", "file", "slice"], kind="mergesort").reset_index(drop=True)


def _arrow_schema(metrics: list[str], ttt: bool = False) -> pa.Schema:
    fields = [
        pa.field("split", pa.string()),
        pa.field("file", pa.string()),
        pa.field("slice", pa.int64()),
        pa.field("status", pa.string()),
        pa.field("seconds", pa.float64()),
    ]
    fields += [pa.field(TTT_COLUMN, pa.float64())] if ttt else []
    return pa.schema(fields + [pa.field(m, pa.float64()) for m in metrics])


def sidecar_bytes(slices: pd.DataFrame, metrics: list[str]) -> bytes:
    """Serialise the per-slice table to Parquet bytes, deterministically for a given pyarrow.

    The table is built column by column with an explicit schema and no pandas metadata, so the bytes
    (and their sha256) depend only on the values.
    """
    df = sidecar_frame(slices, metrics)
    schema = _arrow_schema(metrics, TTT_COLUMN in df.columns)
    arrays = []
    for f in schema:
        col = df[f.name]
        if pa.types.is_string(f.type):
            arrays.append(pa.array(col.tolist(), type=f.type))
        elif pa.types.is_integer(f.type):
            arrays.append(pa.array(col.to_numpy(dtype=np.int64), type=f.type))
        else:
            vals = col.to_numpy(dtype=np.float64)
            arrays.append(pa.array(vals, type=f.type, mask=np.isnan(vals)))
    table = pa.Table.from_arrays(arrays, schema=schema)
    buf = io.BytesIO()
    pq.write_table(
        table, buf, compression="zstd", use_dictionary=["split", "status"], write_statistics=False, store_schema=False
    )
    return buf.getvalue()


def read_sidecar(path: Path, metrics: list[str], max_bytes: int = MAX_SIDECAR_BYTES) -> pd.DataFrame:
    """Read a per-slice sidecar safely (pyarrow only), checking its columns and types first.

    Missing metric values come back as NaN; infinite metric values (PSNR of an exact
    reconstruction) are kept (see :mod:`mribench.analysis.stats`).

    Raises:
        SubmissionError: oversized, not Parquet, unexpected/missing columns or types, too many rows,
            null keys, or non-finite seconds.
    """
    size = path.stat().st_size
    if size > max_bytes:
        raise SubmissionError(f"oversized sidecar: {size} bytes (limit {max_bytes})")
    with open(path, "rb") as f:
        head = f.read(4)
    if head != b"PAR1":
        raise SubmissionError("malformed sidecar: not a Parquet file")
    try:
        pf = pq.ParquetFile(path)
        schema = pf.schema_arrow
    except (pa.ArrowException, OSError, ValueError) as e:
        raise SubmissionError(f"malformed sidecar: {type(e).__name__}: {e}") from None
    names = list(schema.names)
    expected = _arrow_schema(metrics, TTT_COLUMN in names)
    if names != list(expected.names):
        raise SubmissionError(f"malformed sidecar: expected columns {list(expected.names)}, got {names}")
    for f in expected:
        got = schema.field(f.name).type
        ok = (
            (
                pa.types.is_string(f.type)
                and (
                    pa.types.is_string(got)
                    or pa.types.is_large_string(got)
                    or (pa.types.is_dictionary(got) and pa.types.is_string(got.value_type))
                )
            )
            or (pa.types.is_integer(f.type) and pa.types.is_integer(got))
            or (pa.types.is_floating(f.type) and (pa.types.is_floating(got) or pa.types.is_null(got)))
        )
        if not ok:
            raise SubmissionError(f"malformed sidecar: expected column {f.name} of type {f.type}, got {got}")
    if pf.metadata.num_rows > MAX_SIDECAR_ROWS:
        raise SubmissionError(f"malformed sidecar: {pf.metadata.num_rows} rows (limit {MAX_SIDECAR_ROWS})")
    try:
        table = pf.read()
    except (pa.ArrowException, OSError, ValueError) as e:
        raise SubmissionError(f"malformed sidecar: {type(e).__name__}: {e}") from None
    data: dict[str, Any] = {}
    for f in expected:
        col = table.column(f.name)
        if f.name in ("split", "file", "slice", "status") and col.null_count:
            raise SubmissionError(f"malformed sidecar: column {f.name} has {col.null_count} null value(s)")
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        if pa.types.is_string(f.type):
            data[f.name] = [str(v) for v in col.to_pylist()]
        elif pa.types.is_integer(f.type):
            data[f.name] = np.asarray(col.to_pylist(), dtype=np.int64)
        else:
            data[f.name] = np.asarray([math.nan if v is None else float(v) for v in col.to_pylist()], dtype=np.float64)
    df = pd.DataFrame(data, columns=list(expected.names))
    for c in ("seconds", TTT_COLUMN):
        if c in df.columns and np.isinf(df[c].to_numpy()).any():
            raise SubmissionError(f"malformed sidecar: non-finite value in column {c}")
    return df
