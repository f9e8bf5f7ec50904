"""fastMRI+ annotations: slice-level bounding boxes and study-level labels.

Two CSV layouts are read:

- fastMRI+ (``brain.csv`` / ``knee.csv``): ``file, slice, study_level, x, y, width, height, label``;
- Lin & Heckel's split CSVs (``pathology_testset.csv``): ``filename, start_slice, end_slice,
  study_level, x, y, width, height, label`` (``end_slice`` exclusive; a box row covers its slices).

Rows with ``study_level == "Yes"`` carry no box but a label for the whole study ("Normal for age",
"Global ischemia", ...). Coordinates follow fastMRI+: pixels of the reconstruction FLIPPED
VERTICALLY (``y`` counted on ``np.flipud(target)``). Zero-size boxes are dropped with a warning.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import pandas as pd

from mribench.errors import DataError

Box = tuple[int, int, int, int]  # (x, y, width, height) on the vertically flipped image

REQUIRED_COLUMNS = ("file", "slice", "x", "y", "width", "height", "label")
LH24_COLUMNS = ("filename", "start_slice", "end_slice", "x", "y", "width", "height", "label")

NORMAL_FOR_AGE = "Normal for age"
"""The fastMRI+ study-level label of brains without findings (Lin & Heckel's healthy P)."""


def _normalise_name(name: str) -> str:
    name = os.path.basename(str(name))
    return name if name.endswith(".h5") else f"{name}.h5"


def _read(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The CSV in fastMRI+ columns (``file`` with ``.h5``, ``slice``, ``study_level`` Yes/No, box, label)."""
    p = Path(path)
    if not p.is_file():
        raise DataError(f"expected a fastMRI+ annotation CSV, got no file at {p}")
    try:
        df = pd.read_csv(p)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as e:
        raise DataError(f"expected a readable CSV at {p}, got {type(e).__name__}: {e}") from None
    if all(c in df.columns for c in LH24_COLUMNS):
        df = df.rename(columns={"filename": "file", "start_slice": "slice"})
        span = (df["end_slice"] - df["slice"]).fillna(1).clip(lower=1).astype(int)
        study = df.get("study_level", pd.Series("No", index=df.index)).astype(str).str.lower() == "yes"
        df = df.loc[df.index.repeat(span.where(~study, 1))].copy()  # one row per slice a box covers
        df["slice"] = df["slice"] + df.groupby(level=0).cumcount()
        df = df.reset_index(drop=True)
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise DataError(
            f"expected columns {list(REQUIRED_COLUMNS)} (fastMRI+) or {list(LH24_COLUMNS)} (Lin & Heckel) in "
            f"{p.name}, missing {missing}"
        )
    if "study_level" not in df.columns:
        df["study_level"] = "No"
    df["study_level"] = df["study_level"].fillna("No").astype(str)
    df["file"] = df["file"].map(_normalise_name)
    return df


def load_annotations(path: str | os.PathLike[str]) -> pd.DataFrame:
    """The slice-level boxes of a fastMRI+ (or Lin & Heckel pathology) CSV.

    Returns:
        DataFrame with columns file (``*.h5``), slice (int), x, y, width, height (int), label (str),
        study_level (str), one row per box.

    Raises:
        DataError: if the file is missing or lacks required columns.
    """
    df = _read(path)
    df = df[df["study_level"].str.lower() != "yes"].copy()
    df = df.dropna(subset=["slice", "x", "y", "width", "height"])
    for c in ("slice", "x", "y", "width", "height"):
        df[c] = df[c].astype(float).round().astype(int)
    zero = (df["width"] <= 0) | (df["height"] <= 0)
    if zero.any():
        warnings.warn(f"{Path(path).name}: dropped {int(zero.sum())} zero-size box(es)", stacklevel=2)
        df = df[~zero]
    df["label"] = df["label"].astype(str)
    return df[["file", "slice", "x", "y", "width", "height", "label", "study_level"]].reset_index(drop=True)


def load_study_labels(path: str | os.PathLike[str]) -> dict[str, str]:
    """The study-level labels per file: ``{file.h5: "label; label"}`` (sorted, de-duplicated).

    Raises:
        DataError: if the file is missing or lacks required columns.
    """
    df = _read(path)
    df = df[df["study_level"].str.lower() == "yes"].dropna(subset=["label"])
    out: dict[str, set[str]] = {}
    for f, label in zip(df["file"], df["label"].astype(str)):
        out.setdefault(f, set()).add(label.strip())
    return {f: "; ".join(sorted(labels)) for f, labels in out.items()}


def boxes_by_slice(df: pd.DataFrame) -> dict[tuple[str, int], list[Box]]:
    """Group an annotation table into ``{(file, slice): [(x, y, w, h), ...]}``."""
    out: dict[tuple[str, int], list[Box]] = {}
    for row in df.itertuples(index=False):
        out.setdefault((row.file, int(row.slice)), []).append((int(row.x), int(row.y), int(row.width), int(row.height)))
    return out
