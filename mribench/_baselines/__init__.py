"""Tiny baseline checkpoints trained on the embedded benchmark (MRIBench-Sim), shipped in the package.

``registry.json`` lists them (name, file, sha256, description, task, recipe, training data); it
and the ``.safetensors`` files are written by ``baselines/anatomy/train_embedded.py``. This module
stays import-light (json + pathlib) so that :mod:`mribench.models.loader` can call
:func:`register_shipped_baselines` at import time without cycles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

REGISTRY = Path(__file__).with_name("registry.json")


def shipped_baselines() -> list[dict[str, Any]]:
    """The registry entries (``[]`` when no registry is shipped)."""
    if not REGISTRY.is_file():
        return []
    return list(json.loads(REGISTRY.read_text())["models"])


def register_shipped_baselines() -> list[str]:
    """Register every shipped checkpoint under its name (``mribench.models.register_pretrained``).

    Returns:
        The registered names.
    """
    from mribench.models.loader import register_pretrained

    names = []
    for e in shipped_baselines():
        path = REGISTRY.parent / e["file"]
        if path.is_file():
            register_pretrained(e["name"], path, e.get("description", ""))
            names.append(e["name"])
    return names


def verify_shipped_baselines() -> dict[str, str]:
    """``{name: problem}`` for entries whose file is missing or whose sha256 differs (``{}`` when all match)."""
    from mribench.models.checkpoints import file_sha256

    problems = {}
    for e in shipped_baselines():
        path = REGISTRY.parent / e["file"]
        if not path.is_file():
            problems[e["name"]] = f"missing file {e['file']}"
        elif file_sha256(path) != e["sha256"]:
            problems[e["name"]] = f"sha256 mismatch for {e['file']}"
    return problems


__all__ = ["REGISTRY", "register_shipped_baselines", "shipped_baselines", "verify_shipped_baselines"]
