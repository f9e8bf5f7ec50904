"""Tiny baseline checkpoints trained on the embedded benchmark (MRIBench-Sim), shipped in the package.

The files live in the data package :mod:`mribench._baselines`: ``registry.json`` lists them (name,
file, sha256, description, task, recipe, training data); it and the ``.safetensors`` files are
written by ``baselines/anatomy/train_embedded.py``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REGISTRY = Path(__file__).resolve().parent.parent / "_baselines" / "registry.json"


def shipped_baselines() -> list[dict[str, Any]]:
    """The registry entries (``[]`` when no registry is shipped)."""
    if not REGISTRY.is_file():
        return []
    return list(json.loads(REGISTRY.read_text())["models"])


def shipped_path(entry: dict[str, Any]) -> Path:
    """The checkpoint file of a registry entry."""
    return REGISTRY.parent / entry["file"]


def verify_shipped_baselines() -> dict[str, str]:
    """``{name: problem}`` for entries whose file is missing or whose sha256 differs (``{}`` when all match)."""
    from mribench.models.checkpoints import file_sha256

    problems = {}
    for e in shipped_baselines():
        path = shipped_path(e)
        if not path.is_file():
            problems[e["name"]] = f"missing file {e['file']}"
        elif file_sha256(path) != e["sha256"]:
            problems[e["name"]] = f"sha256 mismatch for {e['file']}"
    return problems


__all__ = ["REGISTRY", "shipped_baselines", "shipped_path", "verify_shipped_baselines"]
