"""A slice-index table from metadata CSVs in Lin & Heckel's format, without the data.

Lin & Heckel's split files (public code MLI-lab/mri_data_diversity, ``dataset_csv/``) list one row
per volume with the ISMRMRD header fields their code filters on (``protocolName``, ``systemModel``,
``systemFieldStrength_T``, ``receiverChannels``, ``institutionName``, ``sequence_type``,
``encodeX/Y``, ``reconX/Y``, ``numSlices``, ``datasetName``) and the folder the file lies in; their
pathology file adds fastMRI+ study-level labels and boxes. :func:`index_from_metadata_csv` turns
such files into the table :func:`mribench.data.index.build_index` would build from the files
themselves, so that tasks can be checked against the real metadata of a dataset one does not hold.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePath
from typing import Any

import pandas as pd

from mribench.data.annotations import load_annotations, load_study_labels
from mribench.data.datasets import dataset_from_name, manufacturer, official_split
from mribench.data.index import COLUMNS, derive_anatomy, derive_contrast, field_bucket
from mribench.errors import DataError

_NEEDED = ("filename", "start_slice", "end_slice")


def _num(v: Any) -> float | None:
    try:
        x = float(v)
    except (TypeError, ValueError):
        return None
    return None if x != x else x


def _str(v: Any) -> str | None:
    return None if v is None or (isinstance(v, float) and v != v) or str(v) == "" else str(v)


def index_from_metadata_csv(
    paths: list[str | os.PathLike[str]], annotations: list[str | os.PathLike[str]] | None = None
) -> pd.DataFrame:
    """The slice-index table (columns :data:`~mribench.data.index.COLUMNS`) of the volumes the CSVs list.

    A volume listed in several files takes each field from the first file that has it. Its slices
    are ``start_slice .. end_slice - 1`` of the first row that lists it. Every listed volume is
    taken to have targets (``target_h``/``target_w`` are 0 where the CSV gives no recon size);
    columns the CSVs do not hold (vendor, TR/TE, padding, volume max) are empty, and the
    manufacturer is the dataset's known one.

    Args:
        paths: metadata CSVs (``testset.csv``, ``all_data.csv``, ``pathology_testset.csv``, ...).
        annotations: fastMRI+ or Lin & Heckel pathology CSVs for boxes and study-level labels.

    Raises:
        DataError: a CSV without ``filename``, ``start_slice`` and ``end_slice``.
    """
    volumes: dict[str, dict[str, Any]] = {}
    for path in paths:
        p = Path(path)
        try:
            df = pd.read_csv(p)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
            raise DataError(f"expected a readable metadata CSV at {p}, got {type(e).__name__}: {e}") from None
        missing = [c for c in _NEEDED if c not in df.columns]
        if missing:
            raise DataError(f"expected columns {list(_NEEDED)} in {p.name}, missing {missing}")
        for rec in df.to_dict("records"):
            name = os.path.basename(str(rec["filename"]))
            cur = volumes.setdefault(name, {})
            for k, v in rec.items():
                if k not in cur or _str(cur[k]) is None:
                    cur[k] = v
    boxes: dict[tuple[str, int], int] = {}
    study: dict[str, str] = {}
    for a in annotations or []:
        for row in load_annotations(a).itertuples(index=False):
            boxes[(row.file, int(row.slice))] = boxes.get((row.file, int(row.slice)), 0) + 1
        for f, labels in load_study_labels(a).items():
            study[f] = "; ".join(sorted({*study.get(f, "").split("; "), *labels.split("; ")} - {""}))
    rows: list[dict[str, Any]] = []
    for name, r in volumes.items():
        folder = _str(r.get("folderDirectory")) or ""
        split = official_split(PurePath(folder) / name)
        if split == "unknown" and _str(r.get("split")) in ("train", "val", "test"):
            split = str(r["split"])
        dataset = _str(r.get("datasetName")) or dataset_from_name(name)
        protocol = _str(r.get("protocolName")) or _protocol_from_name(name)
        tesla = _num(r.get("systemFieldStrength_T"))
        coils = _num(r.get("receiverChannels"))
        first, stop = int(_num(r["start_slice"]) or 0), int(_num(r["end_slice"]) or 0)
        n = int(_num(r.get("numSlices")) or stop)
        vol_boxes = any(boxes.get((name, s), 0) for s in range(n))
        base = {
            "file": name,
            "num_slices": n,
            "path": str(PurePath(folder) / name),
            "dataset": dataset,
            "official_split": split,
            "origin": "real",
            "acquisition": protocol or "",
            "protocol": protocol or "",
            "anatomy": derive_anatomy(protocol, None, dataset),
            "contrast": derive_contrast(protocol),
            "vendor": None,
            "manufacturer": manufacturer(None, dataset),
            "system_model": _str(r.get("systemModel")),
            "field_strength": tesla,
            "field": field_bucket(tesla),
            "coils": int(coils) if coils is not None else None,
            "institution": _str(r.get("institutionName")),
            "sequence_type": _str(r.get("sequence_type")),
            "tr": None,
            "te": None,
            "ti": None,
            "kspace_h": _int(r.get("encodeX")),
            "kspace_w": _int(r.get("encodeY")),
            # the CSVs list volumes with targets; 0 = present, size not listed
            "target_h": _int(r.get("reconX")) or 0,
            "target_w": _int(r.get("reconY")) or 0,
            "recon_h": _int(r.get("reconX")),
            "recon_w": _int(r.get("reconY")),
            "padding_left": None,
            "padding_right": None,
            "volume_max": None,
            "patient_id": "",
            "study_level": study.get(name, ""),
            "pathology": vol_boxes,
        }
        for s in range(first, max(stop, first + 1)):
            nb = boxes.get((name, s), 0)
            rows.append({**base, "slice": s, "slice_pathology": nb > 0, "num_boxes": nb})
    return pd.DataFrame(rows, columns=COLUMNS)


def _int(v: Any) -> int | None:
    x = _num(v)
    return None if x is None else int(x)


def _protocol_from_name(name: str) -> str | None:
    """fastMRI brain file names carry the protocol: ``file_brain_AXT2_200_6002026.h5`` -> ``AXT2``."""
    parts = name.split("_")
    return parts[2] if len(parts) >= 5 and parts[0] == "file" and parts[1] == "brain" else None


__all__ = ["index_from_metadata_csv"]
