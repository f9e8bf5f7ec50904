"""The definitions lock: every shipped task's version and hash, every metric profile's hash.

``tasks/_lock.yaml`` pins what results depend on. A task whose definition changes without a new
version, or a metric whose definition changes under the same profile id, fails
:func:`check_lock` (run by the test suite), so stored results are never compared across
definitions that differ. After a deliberate change with a version bump, ``mribench tasks lock
--write`` records the new state.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from mribench.metrics.registry import METRICS, definition_hash, get_metric
from mribench.paths import atomic_write_text
from mribench.tasks import load_task, shipped_tasks, tasks_dir

LOCK_NAME = "_lock.yaml"
_HEADER = (
    "# Pinned definitions: shipped task -> (version, sha256 of its resolved YAML); metric profile -> sha256\n"
    "# of its definition. Checked by the test suite; after a deliberate change (task: bump its version;\n"
    "# metric: a new profile id) regenerate with `mribench tasks lock --write`.\n"
)


def lock_path() -> Path:
    """Where the lock lives (next to the shipped task YAMLs)."""
    return tasks_dir() / LOCK_NAME


def current_lock() -> dict[str, Any]:
    """The lock the shipped tasks and built-in metrics give now."""
    tasks = {}
    for name in shipped_tasks():
        t = load_task(str(tasks_dir() / f"{name}.yaml"))
        tasks[name] = {"version": t.version, "sha256": t.sha256}
    profiles = {}
    for name in METRICS.names():
        spec = get_metric(name)
        profiles[spec.profile] = definition_hash(spec)
    return {"tasks": tasks, "metric_profiles": dict(sorted(profiles.items()))}


def read_lock(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The stored lock (empty sections when the file is missing)."""
    p = Path(path) if path is not None else lock_path()
    if not p.is_file():
        return {"tasks": {}, "metric_profiles": {}}
    data = yaml.safe_load(p.read_text()) or {}
    return {"tasks": dict(data.get("tasks") or {}), "metric_profiles": dict(data.get("metric_profiles") or {})}


def check_lock(path: str | os.PathLike[str] | None = None) -> list[str]:
    """Differences between the stored lock and the current definitions, one line each (empty: ok)."""
    old, new = read_lock(path), current_lock()
    problems = []
    for name, rec in new["tasks"].items():
        was = old["tasks"].get(name)
        if was is None:
            problems.append(f"task {name} v{rec['version']} is not in the lock (run `mribench tasks lock --write`)")
        elif rec["version"] == was["version"] and rec["sha256"] != was["sha256"]:
            problems.append(
                f"task {name} changed without a version bump (v{rec['version']}): bump 'version' in its YAML, "
                "then `mribench tasks lock --write`"
            )
        elif rec["version"] < was["version"]:
            problems.append(f"task {name}: version went down from v{was['version']} to v{rec['version']}")
        elif rec["version"] != was["version"]:
            problems.append(
                f"task {name} v{rec['version']} is new (lock has v{was['version']}): `mribench tasks lock --write`"
            )
    for name in old["tasks"]:
        if name not in new["tasks"]:
            problems.append(f"task {name} is in the lock but no longer shipped (run `mribench tasks lock --write`)")
    for profile, h in new["metric_profiles"].items():
        was = old["metric_profiles"].get(profile)
        if was is None:
            problems.append(f"metric profile {profile} is not in the lock (run `mribench tasks lock --write`)")
        elif was != h:
            problems.append(
                f"metric profile {profile} changed its definition under the same id: give it a new profile version"
            )
    for profile in old["metric_profiles"]:
        if profile not in new["metric_profiles"]:
            problems.append(
                f"metric profile {profile} is in the lock but no longer defined (`mribench tasks lock --write`)"
            )
    return problems


def write_lock(path: str | os.PathLike[str] | None = None) -> Path:
    """Write the current definitions as the lock and return its path."""
    p = Path(path) if path is not None else lock_path()
    atomic_write_text(p, _HEADER + yaml.safe_dump(current_lock(), sort_keys=True, width=200))
    return p


__all__ = ["LOCK_NAME", "check_lock", "current_lock", "lock_path", "read_lock", "write_lock"]
