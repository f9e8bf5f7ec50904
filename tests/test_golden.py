"""Per-slice results of every shipped task (zero-filled) and a shipped baseline equal their goldens.

Equal means: the same slices and statuses, and every metric within float32 round-off across CPUs
(``golden.GOLDEN_RELATIVE``; 10x tighter than the tolerances of ``mribench check``).

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
    if want["metric_profiles"] != got["metric_profiles"] and (missing := golden.missing_weights()):
        out.append(f"or the metric weights {', '.join(missing)} are missing here: run `mribench weights fetch`")
    return out


@pytest.mark.parametrize("task", TASKS)
def test_per_slice_results_equal_the_goldens(task: str, volumes: Path, tmp_path: Path) -> None:
    for model in golden.models_of(task):
        want = golden.read_golden(task, model)
        folder = golden.task_folder(want["chosen"], volumes, tmp_path / "data" / model)
        got = golden.evaluate_golden(task, model, folder, tmp_path / "run" / model)
        problems = _identity_problems(task, model, want, got)
        assert not problems, "\n".join(problems)
        assert len(want["slices"]) > 0
        diff = golden.slice_differences(want["slices"], got["slices"])
        assert not diff, f"{task} with {model}: {len(diff)} value(s) differ from the golden, first: {diff[0]}"


def test_a_changed_task_asks_for_regeneration() -> None:
    want = golden.read_golden("d22-anatomy", "zero-filled")
    got = {**want, "task_sha256": "0" * 64}
    (problem,) = _identity_problems("d22-anatomy", "zero-filled", want, got)
    assert problem.startswith("task d22-anatomy changed since the golden") and golden.REGENERATE in problem
    with pytest.raises(FileNotFoundError, match="regenerate.py"):
        golden.read_golden("no-such-task", "zero-filled")


def test_round_off_passes_and_any_real_change_fails() -> None:
    rec = {"split": "test_P", "file": "a.h5", "slice": 3, "status": "ok", "metrics": {"ssim": 0.6707937968508443}}
    rec["metrics"]["region_ssim"] = None

    def with_(**kw: object) -> list[dict]:
        return [{**rec, **kw}]

    metrics = rec["metrics"]
    # the difference seen between two x86 CPUs (AVX-512 or not): equal
    assert golden.slice_differences([rec], with_(metrics={**metrics, "ssim": 0.6707937992357235})) == []
    (problem,) = golden.slice_differences([rec], with_(metrics={**metrics, "ssim": 0.6709}))
    assert "ssim 0.6709 (golden 0.6707937968508443" in problem
    assert golden.slice_differences([rec], with_(metrics={**metrics, "region_ssim": 0.5}))
    assert golden.slice_differences([rec], with_(status="error"))
    assert golden.slice_differences([rec], with_(metrics={"ssim": 0.6707937968508443}))
    assert golden.slice_differences([rec], [rec, rec]) == ["2 slices, the golden has 1"]
