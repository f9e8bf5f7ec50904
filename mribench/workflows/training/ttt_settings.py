"""Per-task test-time-training settings as data: ``ttt_d22.yaml``, keyed by shift and architecture.

Darestani, Liu & Heckel (ICML 2022) adapt with a learning rate that depends on the architecture
and a stopping window W that depends on the shift (FIDELITY.md section 5). The table ships as
``ttt_d22.yaml`` beside this module; :func:`ttt_settings` reads it (or another file of the same
layout) and returns the settings together with their provenance, which every TTT run records.
Shifts the paper does not cover (field strength, coils, pathology) have no entry: asking for one is
an error naming the shifts that have, never a silent default.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

#: The shipped table (D22's settings).
SETTINGS_FILE = Path(__file__).with_name("ttt_d22.yaml")
#: Checkpoint architecture -> the table's architecture key.
ARCH_KEYS = {"unet-complex": "unet", "unet": "unet", "varnet": "varnet"}
_FIELDS = ("lr", "window", "max_steps", "val_fraction")


@dataclass(frozen=True)
class TTTSettings:
    """The TTT settings of one (shift, architecture) and where they come from.

    Attributes:
        lr: Adam learning rate.
        window: W of the stopping rule.
        max_steps: most Adam steps.
        val_fraction: share of the sampled k-space points held out for self-validation.
        shift: the table's shift key (after aliases).
        arch: the table's architecture key.
        source: the table's ``source`` line.
        file: the table file.
        sha256: hash of the table file's bytes.
    """

    lr: float
    window: int
    max_steps: int
    val_fraction: float
    shift: str
    arch: str
    source: str
    file: str
    sha256: str

    def kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :class:`mribench.workflows.training.ttt.TTTModel`."""
        return {"lr": self.lr, "window": self.window, "max_steps": self.max_steps, "val_fraction": self.val_fraction}

    def provenance(self) -> dict[str, Any]:
        """What a run records: the table entry, its key, file and hash."""
        return {
            **self.kwargs(),
            "shift": self.shift,
            "arch": self.arch,
            "reference": self.source,
            "file": Path(self.file).name,
            "sha256": self.sha256,
        }


def load_table(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The parsed settings table (default: the shipped ``ttt_d22.yaml``), validated.

    Raises:
        ValueError: a missing file or a malformed table (naming the entry).
    """
    p = Path(path) if path is not None else SETTINGS_FILE
    if not p.is_file():
        raise ValueError(f"expected a TTT settings YAML file, got no file at {p}")
    doc = yaml.safe_load(p.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("shifts"), dict) or not doc["shifts"]:
        raise ValueError(f"expected a mapping with a non-empty 'shifts' table in {p.name}, got {type(doc).__name__}")
    for shift, archs in doc["shifts"].items():
        if not isinstance(archs, dict) or not archs:
            raise ValueError(f"expected architectures under shift {shift!r} in {p.name}, got {archs!r}")
        for arch, entry in archs.items():
            if not isinstance(entry, dict) or set(entry) != set(_FIELDS):
                raise ValueError(
                    f"expected keys {sorted(_FIELDS)} for {shift}/{arch} in {p.name}, got {sorted(entry or {})}"
                )
            if not (
                entry["lr"] > 0
                and int(entry["window"]) >= 1
                and int(entry["max_steps"]) >= 0
                and 0 < entry["val_fraction"] < 1
            ):
                raise ValueError(
                    f"expected lr > 0, window >= 1, max_steps >= 0, val_fraction in (0, 1) for "
                    f"{shift}/{arch} in {p.name}, got {entry}"
                )
    return doc


def ttt_settings(shift: str, arch: str, path: str | os.PathLike[str] | None = None) -> TTTSettings:
    """The TTT settings of a shift (a task card's ``shift``) and an architecture.

    Args:
        shift: ``anatomy``, ``dataset``, ``modality`` (alias ``contrast``) or ``acceleration`` in the
            shipped table.
        arch: a checkpoint architecture (``unet-complex``, ``unet``, ``varnet``) or a table key.
        path: another table of the same layout (default: the shipped one).

    Raises:
        ValueError: a shift or architecture without an entry (with the known ones).
    """
    p = Path(path) if path is not None else SETTINGS_FILE
    doc = load_table(p)
    key = str((doc.get("aliases") or {}).get(shift, shift))
    shifts = doc["shifts"]
    if key not in shifts:
        raise ValueError(
            f"expected a shift with TTT settings in {p.name} ({', '.join(sorted(shifts))}), got {shift!r} "
            f"(hint: give lr, window and max_steps explicitly; the paper defines none for this shift)"
        )
    a = ARCH_KEYS.get(arch, arch)
    if a not in shifts[key]:
        raise ValueError(f"expected an architecture in {sorted(shifts[key])} for shift {key!r}, got {arch!r}")
    e = shifts[key][a]
    return TTTSettings(
        lr=float(e["lr"]),
        window=int(e["window"]),
        max_steps=int(e["max_steps"]),
        val_fraction=float(e["val_fraction"]),
        shift=key,
        arch=a,
        source=str(doc.get("source", "")),
        file=str(p),
        sha256=hashlib.sha256(p.read_bytes()).hexdigest(),
    )


__all__ = ["ARCH_KEYS", "SETTINGS_FILE", "TTTSettings", "load_table", "ttt_settings"]
