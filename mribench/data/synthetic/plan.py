"""Which MRIBench-Sim volumes a job needs, from the catalog alone (nothing generated yet).

Generating the whole default benchmark takes minutes and gigabytes; a job usually needs a few
strata: an evaluation only the validation-folder volumes of its task's two sides, a training the
training-folder volumes of the side it trains on. :func:`catalog_table` predicts, for every catalog
volume, the volume-level columns the slice index will read from its file (header, layout, the
``dataset`` attr, fastMRI+ study labels), so a task's metadata filters can be applied before any
file exists; :func:`volumes_matching` applies them. Filter keys the catalog cannot know (timings,
slice-level columns) are ignored, so the selection is a superset of what the filters select on
the generated files.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from mribench.data.annotations import NORMAL_FOR_AGE
from mribench.data.datasets import manufacturer
from mribench.data.index import COLUMNS, apply_filter, derive_anatomy, derive_contrast, field_bucket
from mribench.data.synthetic.catalog import SPLIT_FOLDERS, catalog
from mribench.data.synthetic.sites import matrix_for
from mribench.data.synthetic.tissues import PROTOCOLS

# the slice index's columns, less those the catalog does not predict
_NOT_PREDICTED = frozenset(
    {"slice", "path", "tr", "te", "ti", "volume_max", "patient_id", "slice_pathology", "num_boxes"}
)
VOLUME_COLUMNS = tuple(c for c in COLUMNS if c not in _NOT_PREDICTED)
"""Slice-index columns the catalog predicts exactly (the others are ignored by :func:`volumes_matching`)."""


@functools.lru_cache(maxsize=4)
def _table(size: str) -> pd.DataFrame:
    rows: list[dict[str, Any]] = []
    for s in catalog(size):
        m = matrix_for(s.site, s.anatomy, size)
        attrs = {"anatomy": s.anatomy} if not s.dataset.startswith("fastmri") else {}
        rows.append(
            {
                "file": s.name,
                "num_slices": s.slices,
                "dataset": s.dataset,
                "official_split": s.split,
                "origin": "synthetic",
                "acquisition": s.protocol_name,
                "protocol": s.protocol_name,
                "anatomy": derive_anatomy(s.protocol_name, attrs, s.dataset),
                "contrast": derive_contrast(s.protocol_name),
                "vendor": s.vendor,
                "manufacturer": manufacturer(s.vendor, s.dataset),
                "system_model": s.model,
                "field_strength": s.field_t,
                "field": field_bucket(s.field_t),
                "coils": s.coils,
                "institution": s.institution,
                "sequence_type": PROTOCOLS[s.protocol].sequence_type,
                "kspace_h": m.kspace[0],
                "kspace_w": m.kspace[1],
                "target_h": m.recon[0],
                "target_w": m.recon[1],
                "recon_h": m.recon[0],
                "recon_w": m.recon[1],
                "padding_left": m.padding_left,
                "padding_right": m.padding_right,
                "study_level": NORMAL_FOR_AGE if (s.anatomy == "brain" and not s.lesions) else "",
                "pathology": bool(s.lesions),
                "path": s.path,
            }
        )
    return pd.DataFrame(rows)


def catalog_table(size: str = "default") -> pd.DataFrame:
    """One row per catalog volume with the volume-level slice-index columns it will have, plus ``path``.

    Raises:
        ValueError: for an unknown size.
    """
    return _table(size).copy()


def volumes_matching(
    size: str,
    filters: Iterable[Mapping[str, Any]],
    splits: Iterable[str] = tuple(SPLIT_FOLDERS),
) -> list[str]:
    """Names of the catalog volumes that match any of ``filters`` and lie in one of ``splits``.

    Args:
        size: dataset size.
        filters: metadata filters as tasks write them (``{column: value | [values] | {min, max, not}}``);
            keys outside :data:`VOLUME_COLUMNS` are ignored (a superset is selected).
        splits: official splits (``train`` / ``val``).

    Returns:
        Sorted file names.
    """
    table = _table(size)
    table = table[table["official_split"].isin(list(splits))]
    chosen: set[str] = set()
    for f in filters:
        known = {k: v for k, v in f.items() if k in VOLUME_COLUMNS}
        chosen.update(apply_filter(table, known)["file"].tolist())
    return sorted(chosen)
