"""Per-slice results of every shipped task (zero-filled) and a shipped baseline equal their goldens exactly.

The goldens (tests/data/golden/, see tests/golden.py) were computed on volumes of the embedded
benchmark; only those volumes are generated here. A task, model, generator or metric definition
that changed since its golden fails with the command that regenerates it.
"""

from __future__ import annotations

from pathlib import Path

import golden
import pytest

from mribench.tasks import list_tasks

TASKS = list_tasks()


@pytest.fixture(scope="module")
def volumes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The volumes every golden was computed on, generated once."""
    files: set[str] = set()
    for task in TASKS:
        for model in golden.models_of(task):
            if golden.golden_path(task, model).is_file():
                files |= set(golden.read_golden(task, model)["chosen"].values())
    return golden.generate_volumes(files, tmp_path_factory.mktemp("golden-sim"))


def _identity_problems(task: str, model: str, want: dict, got: dict) -> list[str]:
    regen = f"regenerate with `{golden.REGENERATE} {task}` and commit it with the change"
    out = []
    for key, what in (
        ("task_sha256", f"task {task} changed"),
        ("model_sha256", f"model {model} changed"),
        ("sim_version", "the MRIBench-Sim generator changed"),
        ("metric_profiles", "a metric definition changed"),
    ):
        if want[key] != got[key]:
            old, new = (str(want[key])[:40], str(got[key])[:40])
            out.append(f"{what} since the golden ({key} {old} -> {new}): {regen}")
    return out


@pytest.mark.parametrize("task", TASKS)
def test_per_slice_results_equal_the_goldens(task: str, volumes: Path, tmp_path: Path) -> None:
    for model in golden.models_of(task):
        want = golden.read_golden(task, model)
        folder = golden.task_folder(want["chosen"], volumes, tmp_path / "data" / model)
        got = golden.evaluate_golden(task, model, folder, tmp_path / "run" / model)
        problems = _identity_problems(task, model, want, got)
        assert not problems, "\n".join(problems)
        assert len(got["slices"]) == len(want["slices"]) > 0
        diff = [(w, g) for w, g in zip(want["slices"], got["slices"], strict=True) if w != g]
        assert not diff, f"{task} with {model}: {len(diff)} slice(s) differ from the golden, first: {diff[0]}"


def test_a_changed_task_asks_for_regeneration() -> None:
    want = golden.read_golden("d22-anatomy", "zero-filled")
    got = {**want, "task_sha256": "0" * 64}
    (problem,) = _identity_problems("d22-anatomy", "zero-filled", want, got)
    assert problem.startswith("task d22-anatomy changed since the golden") and golden.REGENERATE in problem
    with pytest.raises(FileNotFoundError, match="regenerate.py"):
        golden.read_golden("no-such-task", "zero-filled")
