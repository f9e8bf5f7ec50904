"""fastMRI+ bounding-box annotations (CSV: file, slice, study_level, x, y, width, height, label).

Coordinates follow fastMRI+: pixels of the reconstruction FLIPPED VERTICALLY (``y`` counted on
``np.flipud(target)``). Rows with ``study_level == "Yes"`` carry no box; zero-size boxes are dropped
with a warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from mribench.errors import DataError

Box = tuple[int, int, int, int]  # (x, y, width, height) on the vertically flipped image

REQUIRED_COLUMNS = ("file", "slice", "x", "y", "width", "height", "label")


def _normalise_name(name: str) -> str:
    name = os.path.basename(str(name))
    return name if name.endswith(".h5") else f"{name}.h5"


def load_annotations(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Load a fastMRI+ annotation CSV.

    Returns:
        DataFrame with columns file (``*.h5``), slice (int), x, y, width, height (int), label (str),
        study_level (str), one row per box.

    Raises:
        DataError: if the file is missing or lacks required columns.
    """
    p = Path(path)
    if not p.is_file():
        raise DataError(f"expected a fastMRI+ annotation CSV, got no file at {p}")
    try:
        df = pd.read_csv(p)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"expected a readable CSV at {p}, got {type(e).__name__}: {e}") from None
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(f"expected columns {list(REQUIRED_COLUMNS)} in {p.name}, missing {missing}")
    if "study_level" not in df.columns:
        df["study_level"] = "No"
    df = df[df["study_level"].astype(str).str.lower() != "yes"].copy()
    df = df.dropna(subset=["x", "y", "width", "height"])
    df["file"] = df["file"].map(_normalise_name)
    for c in ("slice", "x", "y", "width", "height"):
        df[c] = df[c].astype(float).round().astype(int)
    zero = (df["width"] <= 0) | (df["height"] <= 0)
    if zero.any():
        warnings.warn(f"{p.name}: dropped {int(zero.sum())} zero-size box(es)", stacklevel=2)
        df = df[~zero]
    return df[["file", "slice", "x", "y", "width", "height", "label", "study_level"]].reset_index(drop=True)


def boxes_by_slice(df: pd.DataFrame) -> dict[tuple[str, int], list[Box]]:
    """Group an annotation table into ``{(file, slice): [(x, y, w, h), ...]}``."""
    out: dict[tuple[str, int], list[Box]] = {}
    for row in df.itertuples(index=False):
        out.setdefault((row.file, int(row.slice)), []).append((int(row.x), int(row.y), int(row.width), int(row.height)))
    return out
