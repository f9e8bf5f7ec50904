"""Regenerate the per-slice goldens of tests/test_golden.py (see tests/golden.py for what they hold).

Usage (from the repository root; needs the embedded benchmark, generated on first use)::

    python tests/data/golden/regenerate.py [TASK ...]

Run it after an intended change of results (a new task version, a changed metric or generator) and
commit the JSON files together with that change.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # tests/

import golden  # noqa: E402


def main(argv: list[str]) -> None:
    from mribench.data.synthetic import ensure_synthetic
    from mribench.tasks import list_tasks

    tasks = argv or list_tasks()
    missing = golden.missing_weights()
    if missing:  # the goldens would silently lose the LPIPS/DISTS metrics of the tasks that score them
        sys.exit(f"expected every metric's weights, got {', '.join(missing)} missing: run `mribench weights fetch`")
    full = ensure_synthetic(golden.SIM_SIZE)
    chosen = golden.choose_volumes(tasks, full)
    with tempfile.TemporaryDirectory() as tmp:
        data = golden.generate_volumes({f for v in chosen.values() for f in v.values()}, Path(tmp) / "sim")
        for task in tasks:
            folder = golden.task_folder(chosen[task], data, Path(tmp) / "tasks" / task)
            for model in golden.models_of(task):
                record = golden.evaluate_golden(task, model, folder, Path(tmp) / "runs" / task / model)
                path = golden.write_golden(record, chosen[task])
                print(f"{path.name}: {len(record['slices'])} slices of {', '.join(record['volumes'])}")


if __name__ == "__main__":
    main(sys.argv[1:])
