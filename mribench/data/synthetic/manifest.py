"""The manifest of a generated MRIBench-Sim dataset (``manifest.json``) and integrity checks.

The manifest is written last and atomically: a folder without it is not a complete dataset. It
holds no timestamps, so regenerating with the same version, size and seed gives identical bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mribench.errors import DataError
from mribench.paths import file_sha256

MANIFEST = "manifest.json"
"""File name of the manifest at the dataset root."""
ANNOTATIONS = "annotations.csv"
"""fastMRI+-style annotations (lesion boxes, study-level labels) at the dataset root."""
DATA_SUBDIRS = ("multicoil_train", "multicoil_val")
"""Folders of the ``.h5`` files, fastMRI's (only HDF5 files, so ``fastmri.data.SliceDataset`` reads each)."""


@dataclass(frozen=True)
class SimManifest:
    """What a generation produced.

    Attributes:
        version: generator version (``SIM_VERSION``).
        size: ``default`` or ``tiny``.
        seed: generation seed.
        files: ``{relative path: record}`` for every file but the manifest; a record holds
            ``sha256``, ``bytes`` and, for volumes, the catalog metadata (dataset, split, anatomy,
            protocol, vendor, model, field, coils, slices, pathology, boxes).
        generator: ``MRIBench-Sim``.
    """

    version: str
    size: str
    seed: int
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    generator: str = "MRIBench-Sim"

    @property
    def volumes(self) -> dict[str, dict[str, Any]]:
        """The ``.h5`` records only."""
        return {k: v for k, v in self.files.items() if k.endswith(".h5")}

    def summary(self) -> dict[str, dict[str, int]]:
        """Volumes per dataset, split, anatomy, protocol, field, coils and pathology."""
        out: dict[str, dict[str, int]] = {}
        for key in ("dataset", "split", "anatomy", "protocol", "field", "coils", "pathology"):
            counts: dict[str, int] = {}
            for rec in self.volumes.values():
                v = str(rec.get(key))
                counts[v] = counts.get(v, 0) + 1
            out[key] = dict(sorted(counts.items()))
        return out

    def to_json(self) -> str:
        """Deterministic JSON text (sorted keys, no timestamps)."""
        doc = {
            "generator": self.generator,
            "version": self.version,
            "size": self.size,
            "seed": self.seed,
            "num_volumes": len(self.volumes),
            "num_slices": sum(int(r.get("slices", 0)) for r in self.volumes.values()),
            "total_bytes": sum(int(r["bytes"]) for r in self.files.values()),
            "summary": self.summary(),
            "files": self.files,
        }
        return json.dumps(doc, indent=1, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> SimManifest:
        """Parse :meth:`to_json` output.

        Raises:
            DataError: if the text is not a manifest.
        """
        try:
            d = json.loads(text)
            return cls(
                version=str(d["version"]),
                size=str(d["size"]),
                seed=int(d["seed"]),
                files=dict(d["files"]),
                generator=str(d.get("generator", "MRIBench-Sim")),
            )
        except (ValueError, KeyError, TypeError) as e:
            raise DataError(
                f"expected an MRIBench-Sim manifest, got unreadable JSON ({type(e).__name__}: {e})"
            ) from None

    @classmethod
    def load(cls, root: str | os.PathLike[str]) -> SimManifest:
        """Read ``root/manifest.json``.

        Raises:
            DataError: if it is missing or unreadable.
        """
        p = Path(root) / MANIFEST
        if not p.is_file():
            raise DataError(f"expected an MRIBench-Sim dataset with {MANIFEST} at {Path(root)}, got none")
        return cls.from_json(p.read_text(encoding="utf-8"))


def verify_synthetic(root: str | os.PathLike[str]) -> list[str]:
    """Check a generated dataset against its manifest.

    Args:
        root: the dataset folder.

    Returns:
        One line per problem (missing manifest, missing / changed / unexpected files); empty when
        every file's size and sha256 match.
    """
    r = Path(root)
    try:
        manifest = SimManifest.load(r)
    except DataError as e:
        return [str(e)]
    problems: list[str] = []
    for rel, rec in sorted(manifest.files.items()):
        p = r / rel
        if not p.is_file():
            problems.append(f"missing: {rel}")
        elif p.stat().st_size != int(rec["bytes"]) or file_sha256(p) != rec["sha256"]:
            problems.append(f"changed: {rel} (sha256 differs from the manifest)")
    known = set(manifest.files)
    for sub in DATA_SUBDIRS:
        if (r / sub).is_dir():
            for p in sorted((r / sub).iterdir()):
                rel = f"{sub}/{p.name}"
                if rel not in known:
                    problems.append(f"unexpected: {rel} (not in the manifest)")
    return problems
