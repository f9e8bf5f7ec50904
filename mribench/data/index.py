"""The slice index: one row per slice of every fastMRI-format file under a data root.

Every column a task filters on comes from what real files carry: the ISMRMRD header (protocol,
vendor, system model, field strength, coils, institution, sequence type), the file layout (file
name and folder: ``dataset``, ``official_split``) and a converter's record (the ``dataset`` /
``anatomy`` attrs mribench's converters write), plus fastMRI+ annotations (boxes, study-level
labels). Attributes only mribench's own generator writes are never read (the ``generator`` attr
only fills the informational ``origin`` column). Derived columns: anatomy, contrast, field bucket
(real values 2.8936 / 2.89362 / 1.494 T), manufacturer, pathology.

The index is cached as Parquet next to a fingerprint of the files (name, size, mtime) and rebuilt
when any file changes. Unreadable files never abort the scan: they are listed in
:attr:`SliceIndex.skipped` with the reason.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mribench.data.annotations import load_annotations, load_study_labels
from mribench.data.datasets import DATASETS, dataset_from_name, manufacturer, official_split
from mribench.data.fastmri_io import VolumeInfo, read_info
from mribench.errors import DataError
from mribench.paths import atomic_write_bytes, atomic_write_text, cache_dir

INDEX_VERSION = "2"

COLUMNS = [
    "file",
    "slice",
    "num_slices",
    "path",
    "dataset",
    "official_split",
    "origin",
    "acquisition",
    "protocol",
    "anatomy",
    "contrast",
    "vendor",
    "manufacturer",
    "system_model",
    "field_strength",
    "field",
    "coils",
    "institution",
    "sequence_type",
    "tr",
    "te",
    "ti",
    "kspace_h",
    "kspace_w",
    "target_h",
    "target_w",
    "recon_h",
    "recon_w",
    "padding_left",
    "padding_right",
    "volume_max",
    "patient_id",
    "study_level",
    "pathology",
    "slice_pathology",
    "num_boxes",
]

SLICE_COLUMNS = ("slice", "slice_pathology", "num_boxes")
"""The columns that differ between the slices of one volume (all others are per volume)."""

_CONTRASTS = {  # protocol (upper case) -> contrast label
    "CORPD_FBK": "PD",
    "CORPDFS_FBK": "PDFS",
    "SAGPD": "PD",
    "AXT1": "T1",
    "AXT1PRE": "T1PRE",
    "AXT1POST": "T1POST",
    "AXT2": "T2",
    "AXFLAIR": "FLAIR",
}


def derive_anatomy(protocol: str | None, attrs: dict[str, Any] | None = None, dataset: str = "") -> str:
    """Anatomy: a converter's ``anatomy`` attr, else the protocol name (fastMRI: ``*_FBK`` knee,
    ``AX*`` brain), else what the dataset is known to hold."""
    if attrs and isinstance(attrs.get("anatomy"), str):
        return attrs["anatomy"]
    p = (protocol or "").upper()
    if "FBK" in p or "KNEE" in p:
        return "knee"
    if p.startswith("AX") or "BRAIN" in p or "HEAD" in p:
        return "brain"
    info = DATASETS.get(dataset)
    return info.anatomy if info is not None else "unknown"


def derive_contrast(protocol: str | None) -> str:
    """Contrast label from the protocol name (``AXT1PRE`` -> ``T1PRE``, ``3D_FSE_PDFS`` -> ``PDFS``);
    unknown protocols pass through."""
    p = (protocol or "").upper()
    if p in _CONTRASTS:
        return _CONTRASTS[p]
    for key in sorted(_CONTRASTS, key=len, reverse=True):
        if key in p:
            return _CONTRASTS[key]
    for key in ("PDFS", "FLAIR", "T1POST", "T1PRE", "T2", "T1", "PD"):  # other datasets' protocol names
        if key in p:
            return key
    return p or "unknown"


def field_bucket(tesla: float | None) -> str:
    """Field-strength bucket: ``<1T``, ``1.5T``, ``3T`` or ``7T`` (``unknown`` if absent)."""
    if tesla is None or pd.isna(tesla):
        return "unknown"
    if tesla < 1.0:
        return "<1T"
    if tesla < 2.2:
        return "1.5T"
    if tesla < 5.0:
        return "3T"
    return "7T"


def derive_dataset(file_name: str, attrs: dict[str, Any] | None = None) -> str:
    """The dataset a file belongs to: its ``dataset`` attr (a converter's record), else fastMRI's naming."""
    if attrs and isinstance(attrs.get("dataset"), str) and attrs["dataset"]:
        return str(attrs["dataset"])
    return dataset_from_name(file_name)


def _volume_rows(
    info: VolumeInfo, root: Path, boxes: dict[tuple[str, int], int], study: dict[str, str]
) -> list[dict[str, Any]]:
    h, a = info.header, info.attrs
    name = info.path.name
    rel = info.path.relative_to(root) if info.path.is_relative_to(root) else Path(info.path.name)
    dataset = derive_dataset(name, a)
    protocol = h.protocol_name or str(a.get("acquisition", ""))
    vol_boxes = [nb for s in range(info.num_slices) if (nb := boxes.get((name, s), 0))]
    base = {
        "file": name,
        "num_slices": info.num_slices,
        "path": str(rel) if info.path.is_relative_to(root) else str(info.path),
        "dataset": dataset,
        "official_split": official_split(rel, root.name),
        "origin": "synthetic" if "generator" in a else "real",
        "acquisition": str(a.get("acquisition", h.protocol_name or "")),
        "protocol": protocol,
        "anatomy": derive_anatomy(protocol, a, dataset),
        "contrast": derive_contrast(protocol),
        "vendor": h.system_vendor,
        "manufacturer": manufacturer(h.system_vendor, dataset),
        "system_model": h.system_model,
        "field_strength": h.field_strength_t,
        "field": field_bucket(h.field_strength_t),
        "coils": info.kspace_shape[1],
        "institution": h.institution_name,
        "sequence_type": h.sequence_type,
        "tr": h.tr_ms,
        "te": h.te_ms,
        "ti": h.ti_ms,
        "kspace_h": info.kspace_shape[2],
        "kspace_w": info.kspace_shape[3],
        "target_h": info.target_shape[0] if info.target_shape else None,
        "target_w": info.target_shape[1] if info.target_shape else None,
        "recon_h": h.recon_size[0],
        "recon_w": h.recon_size[1],
        "padding_left": h.padding_left,
        "padding_right": h.padding_right,
        "volume_max": float(a["max"]) if "max" in a else None,
        "patient_id": str(a.get("patient_id", "")),
        "study_level": study.get(name, ""),
        "pathology": bool(vol_boxes),
    }
    rows = []
    for s in range(info.num_slices):
        nb = boxes.get((name, s), 0)
        rows.append({**base, "slice": s, "slice_pathology": nb > 0, "num_boxes": nb})
    return rows


def _fingerprint(files: list[Path], annotations: Path | None) -> str:
    h = hashlib.sha256(INDEX_VERSION.encode())
    for f in [*files, *([annotations] if annotations else [])]:
        st = f.stat()
        h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


@dataclass
class SliceIndex:
    """A scanned data root.

    Attributes:
        root: the data root.
        table: one row per slice, columns :data:`COLUMNS`.
        skipped: one row per file that could not be indexed: ``file``, ``reason``.
        fingerprint: hash of the files' names, sizes and mtimes.
    """

    root: Path
    table: pd.DataFrame
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["file", "reason"]))
    fingerprint: str = ""

    def volumes(self) -> pd.DataFrame:
        """One row per volume (the first slice's row, without slice-level columns)."""
        return self.table.drop_duplicates("file").drop(columns=list(SLICE_COLUMNS))

    def filter(self, spec: dict[str, Any]) -> pd.DataFrame:
        """Rows matching a metadata filter (see :func:`apply_filter`)."""
        return apply_filter(self.table, spec)


def apply_filter(table: pd.DataFrame, spec: dict[str, Any]) -> pd.DataFrame:
    """Select rows by metadata.

    Args:
        table: a slice-index table.
        spec: ``{column: value}``; a value may be a scalar (equality), a list (membership) or a dict
            with ``min``/``max`` (inclusive range) or ``not`` (exclusion, scalar or list).

    Raises:
        DataError: for an unknown column.
    """
    return table[filter_mask(table, spec)]


def filter_mask(table: pd.DataFrame, spec: dict[str, Any]) -> np.ndarray:
    """The rows of ``table`` that :func:`apply_filter` selects, as a boolean array (N,)."""
    keep = np.ones(len(table), dtype=bool)
    for col, want in spec.items():
        if col not in table.columns:
            from mribench.registry import suggest

            raise DataError(f"expected a slice-index column, got {col!r}{suggest(col, list(table.columns))}")
        s = table[col]
        if isinstance(want, dict):
            unknown = set(want) - {"min", "max", "not"}
            if unknown:
                raise DataError(f"expected filter keys min/max/not for {col!r}, got {sorted(unknown)}")
            if "min" in want:
                keep &= (s >= want["min"]).to_numpy(dtype=bool, na_value=False)
            if "max" in want:
                keep &= (s <= want["max"]).to_numpy(dtype=bool, na_value=False)
            if "not" in want:
                excl = want["not"] if isinstance(want["not"], list) else [want["not"]]
                keep &= ~s.isin(excl).to_numpy(dtype=bool, na_value=False)
        elif isinstance(want, list):
            keep &= s.isin(want).to_numpy(dtype=bool, na_value=False)
        else:
            keep &= (s == want).to_numpy(dtype=bool, na_value=False)
    return keep


def find_files(root: Path) -> list[Path]:
    """All ``*.h5`` files below ``root``, sorted by relative path."""
    return sorted(p for p in root.rglob("*.h5") if p.is_file() and not p.name.startswith("."))


def _index_cache_paths(root: Path) -> tuple[Path, Path]:
    key = hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
    d = cache_dir() / "index"
    return d / f"{key}.parquet", d / f"{key}.json"


def build_index(
    root: str | os.PathLike[str],
    *,
    annotations: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> SliceIndex:
    """Scan ``root`` (recursively) for fastMRI-format files and build the slice index.

    Args:
        root: data root.
        annotations: a fastMRI+ CSV; defaults to ``root/annotations.csv`` when present.
        use_cache: reuse the cached index when the fingerprint matches.
        progress: called as ``progress(done, total)`` while scanning.

    Raises:
        DataError: if ``root`` is not a folder or holds no ``.h5`` files.
    """
    r = Path(root).expanduser()
    if not r.is_dir():
        head = f"expected a data folder, got {r}"
        raise DataError(
            f"{head} (hint: data= a folder of fastMRI-format .h5 files, or set MRIBENCH_DATA)",
            cli=f"{head} (hint: pass --data-root or set MRIBENCH_DATA)",
        )
    files = find_files(r)
    if not files:
        raise DataError(f"expected fastMRI-format .h5 files under {r}, got none")
    ann = Path(annotations) if annotations else (r / "annotations.csv")
    ann_path = ann if ann.is_file() else None
    if annotations and ann_path is None:
        raise DataError(f"expected an annotation CSV at {ann}, got no file")
    fp = _fingerprint(files, ann_path)
    if use_cache and (hit := _MEMO.get(fp)) is not None:
        return SliceIndex(r, hit.table.copy(), hit.skipped.copy(), fp)  # copies: callers may modify theirs
    pq, meta = _index_cache_paths(r)
    if use_cache and pq.is_file() and meta.is_file():
        try:
            m = json.loads(meta.read_text())
            if m.get("fingerprint") == fp:
                return _remember(
                    SliceIndex(r, pd.read_parquet(pq), pd.DataFrame(m["skipped"], columns=["file", "reason"]), fp)
                )
        except (OSError, ValueError, KeyError):
            pass  # a broken cache is rebuilt
    boxes: dict[tuple[str, int], int] = {}
    study: dict[str, str] = {}
    if ann_path is not None:
        for row in load_annotations(ann_path).itertuples(index=False):
            boxes[(row.file, int(row.slice))] = boxes.get((row.file, int(row.slice)), 0) + 1
        study = load_study_labels(ann_path)
    rows: list[dict[str, Any]] = []
    skipped: list[dict[str, str]] = []
    for i, f in enumerate(files):
        try:
            rows.extend(_volume_rows(read_info(f), r, boxes, study))
        except DataError as e:
            skipped.append({"file": str(f.relative_to(r)), "reason": str(e)})
        if progress:
            progress(i + 1, len(files))
    table = pd.DataFrame(rows, columns=COLUMNS)
    sk = pd.DataFrame(skipped, columns=["file", "reason"])
    if table.empty:
        head = f"expected at least one readable fastMRI file under {r}, got none: {skipped_summary(skipped)}"
        raise DataError(
            f"{head} (hint: fastMRI's multi-coil files hold `kspace` and `ismrmrd_header`; other datasets are "
            f"converted by mribench.data.convert)",
            cli=f"{head} (hint: fastMRI's multi-coil files hold `kspace` and `ismrmrd_header`; other datasets are "
            f"converted by `mribench data convert`)",
        )
    if use_cache:
        import io

        buf = io.BytesIO()
        table.to_parquet(buf, index=False)
        atomic_write_bytes(pq, buf.getvalue())
        atomic_write_text(meta, json.dumps({"fingerprint": fp, "root": str(r), "skipped": skipped}))
    return _remember(SliceIndex(r, table, sk, fp)) if use_cache else SliceIndex(r, table, sk, fp)


def skipped_summary(skipped: list[dict[str, str]], shown: int = 3) -> str:
    """``N file(s) skipped: a.h5: reason; b.h5: reason; ... and M more`` (the first reasons, the count)."""
    lines = [f"{s['file']}: {s['reason']}" for s in skipped[:shown]]
    more = f"; ... and {len(skipped) - shown} more" if len(skipped) > shown else ""
    return f"{len(skipped)} file(s) skipped: " + "; ".join(lines) + more


# Small indexes already read in this process, by fingerprint (which covers the root, every file's
# name, size and mtime and the annotations): repeated evaluations in one session skip the Parquet
# read, whose fixed cost dominates for small tables. Large tables read fast from Parquet and would
# cost memory here.
_MEMO: dict[str, SliceIndex] = {}
_MEMO_SIZE = 4
_MEMO_MAX_ROWS = 50_000


def _remember(index: SliceIndex) -> SliceIndex:
    if len(index.table) > _MEMO_MAX_ROWS:
        return index
    _MEMO.pop(index.fingerprint, None)
    _MEMO[index.fingerprint] = SliceIndex(index.root, index.table.copy(), index.skipped.copy(), index.fingerprint)
    while len(_MEMO) > _MEMO_SIZE:
        _MEMO.pop(next(iter(_MEMO)))
    return index
