"""Leaderboard integrity (issue 17 problem 7): only complete runs without failed slices are ranked,
partial runs only with an explicit flag and apart from the ranking and the fit, every number
(TTT steps and cost included) is re-derived from the per-slice sidecar, the task hash is checked,
and audits re-evaluate a sample of an entry's slices: a fabricated entry passes ``validate`` but
fails ``audit``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from mribench import EvalOptions, Runtime, evaluate, load_run
from mribench.errors import SubmissionError
from mribench.tasks import parse_task
from mribench.workflows.leaderboard import build_entry, build_site, load_entries, validate_leaderboard, write_entry
from mribench.workflows.leaderboard.io import read_sidecar, sidecar_bytes

TASK_NAME = "tiny-integrity"
TASK_DICT = {
    "version": 1,
    "description": "knee -> brain on the tiny test data",
    "source": {"filter": {"anatomy": "knee"}},
    "target": {"filter": {"anatomy": "brain"}},
    "mask": {"type": "equispaced", "acceleration": 4},
    "splits": {"test_fraction": 0.5},
    "metrics": ["ssim", "psnr", "nmse"],
}
TASK = parse_task(dict(TASK_DICT), TASK_NAME)
TASKS = {TASK_NAME: TASK}

MODELS = """
    import torch
    from mribench.physics import zero_filled

    class Scaled:
        def __call__(self, k, m, meta):
            return 0.8 * zero_filled(k, meta.target_size)

    class CrashOnBrains:
        def __call__(self, k, m, meta):
            if "brain" in meta.file:
                raise RuntimeError("cannot reconstruct brains")
            return zero_filled(k, meta.target_size)

    class CrashAlways:
        def __call__(self, k, m, meta):
            raise RuntimeError("broken")

    class Adapting:
        '''Reports test-time-training steps per slice, like the TTT baseline.'''

        def __call__(self, k, m, meta):
            self._n = list(meta.slices)
            return zero_filled(k, meta.target_size)

        def slice_stats(self):
            return [{"steps": 2 + s} for s in self._n]
"""


@pytest.fixture(scope="module")
def runs(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("integrity")
    (tmp / "models.py").write_text(textwrap.dedent(MODELS))
    specs = {
        "zero-filled": ("zero-filled", None),
        "scaled": (f"{tmp / 'models.py'}:Scaled", None),
        "crash-ood": (f"{tmp / 'models.py'}:CrashOnBrains", None),
        "crash-all": (f"{tmp / 'models.py'}:CrashAlways", None),
        "adapting": (f"{tmp / 'models.py'}:Adapting", None),
        "limited": ("zero-filled", 1),
    }
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MRIBENCH_CACHE", str(tmp / "cache"))
        for name, (model, limit) in specs.items():
            evaluate(
                model,
                TASK,
                data=tiny_root,
                run_dir=tmp / name,
                options=EvalOptions(limit=limit),
                runtime=Runtime(device="cpu"),
            )
            out[name] = tmp / name
    out["models"] = tmp / "models.py"
    return out


def _submit(root: Path, run_dir: Path, name: str, **kw: object) -> Path:
    entry = build_entry(run_dir, name=name, display_name=name.title(), **kw)  # type: ignore[arg-type]
    return write_entry(entry, load_run(run_dir).slices, root)


def _problems(root: Path, **kw: object) -> list[str]:
    return [str(p) for p in validate_leaderboard(root, tasks=TASKS, **kw)]  # type: ignore[arg-type]


def _edit(path: Path, fn) -> None:  # noqa: ANN001
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data, indent=2))


# ----------------------------------------------------------------------------- coverage


@pytest.mark.parametrize("name", ["crash-all", "crash-ood", "limited"])
def test_incomplete_or_failed_runs_are_not_ranked_without_an_explicit_flag(
    runs: dict[str, Path], tmp_path: Path, name: str
) -> None:
    """65/65 failed, the whole OOD split failed, and a --limit run were all accepted and ranked."""
    with pytest.raises(SubmissionError, match="partial"):
        build_entry(runs[name], name="x", display_name="X")
    path = _submit(tmp_path / "lb", runs[name], "x", partial=True)
    assert json.loads(path.read_text())["partial"] is True
    assert _problems(tmp_path / "lb") == []


def test_partial_entries_are_shown_apart_and_never_in_the_fit(runs: dict[str, Path], tmp_path: Path) -> None:
    from mribench.workflows.leaderboard.board import make_boards

    root = tmp_path / "lb"
    _submit(root, runs["zero-filled"], "zero-filled")
    _submit(root, runs["scaled"], "scaled")
    _submit(root, runs["limited"], "limited", partial=True)
    (board,) = make_boards(load_entries(root))
    assert [r.model_id for r in board.evaluated] == ["zero-filled", "scaled"]
    assert [r.model_id for r in board.unranked] == ["limited"]
    assert board.trend is not None and board.trend.n == 2
    build_site(root)
    page = (root / "site" / "tasks" / f"{TASK_NAME}.html").read_text()
    assert "Not ranked" in page and page.index("Not ranked") > page.index("evaluated-table")
    assert "partial run" in page
    readme = (root / "README.md").read_text()
    assert "Not ranked" in readme and readme.index("Not ranked") > readme.index("[Scaled]")


def test_a_ranked_entry_that_does_not_cover_the_task_is_a_problem(runs: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "lb"
    path = _submit(root, runs["limited"], "limited", partial=True)
    _edit(path, lambda d: d.update(partial=False))
    (p,) = _problems(root)
    assert "[coverage]" in p and "partial" in p


# ----------------------------------------------------------------------------- re-derived numbers


def test_ttt_steps_come_from_the_per_slice_results(runs: dict[str, Path], tmp_path: Path) -> None:
    """--ttt-steps was typed by hand although every run records it per slice."""
    root = tmp_path / "lb"
    path = _submit(root, runs["adapting"], "adapting")
    run = load_run(runs["adapting"])
    e = json.loads(path.read_text())
    assert e["cost"]["ttt_steps"] == pytest.approx(float(run.slices["ttt_steps"].mean()))
    side = read_sidecar(path.with_name("adapting.slices.parquet"), ["ssim", "psnr", "nmse"])
    assert "ttt_steps" in side.columns
    assert _problems(root) == []
    _edit(path, lambda d: d["cost"].update(ttt_steps=1.0))
    (p,) = _problems(root)
    assert "[cost]" in p and "ttt_steps" in p
    with pytest.raises(TypeError):
        build_entry(runs["adapting"], name="a", display_name="A", ttt_steps=5.0)  # type: ignore[call-arg]


def test_the_task_hash_is_checked(runs: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "lb"
    path = _submit(root, runs["zero-filled"], "zero-filled")
    _edit(path, lambda d: d["task"].update(sha256="0" * 64))
    (p,) = _problems(root)
    assert "[task-hash]" in p and TASK.sha256[:12] in p


def test_the_limit_selection_is_recomputed_from_the_data(
    runs: dict[str, Path], tmp_path: Path, tiny_root: Path
) -> None:
    root = tmp_path / "lb"
    path = _submit(root, runs["limited"], "limited", partial=True)
    assert _problems(root, data_root=tiny_root) == []
    _edit(path, lambda d: d.update(limit_seed=12345))
    problems = _problems(root, data_root=tiny_root)
    assert problems and all("[manifest]" in p and "evaluated" in p for p in problems)


# ----------------------------------------------------------------------------- audits


def _fabricate(path: Path, metric: str = "ssim", by: float = 0.05) -> None:
    """Raise a metric on every slice of an entry and recompute its summary so that it validates."""
    from mribench.workflows.leaderboard.summary import summary_from_slices

    data = json.loads(path.read_text())
    side = path.with_name(data["slices"]["file"])
    df = read_sidecar(side, data["metrics"])
    df[metric] = df[metric] + by
    blob = sidecar_bytes(df, data["metrics"])
    side.write_bytes(blob)
    s = summary_from_slices(df, data["metrics"], data["higher_is_better"])
    data["summary"] = json.loads(s.model_dump_json())
    data["slices"]["sha256"] = hashlib.sha256(blob).hexdigest()
    path.write_text(json.dumps(data, indent=2))


def test_a_fabricated_entry_passes_validate_but_fails_audit(
    runs: dict[str, Path], tmp_path: Path, tiny_root: Path
) -> None:
    from mribench.workflows.leaderboard.audit import audit_entry

    root = tmp_path / "lb"
    path = _submit(root, runs["zero-filled"], "zero-filled")
    honest = audit_entry(path, "zero-filled", data=tiny_root, fraction=0.5, task=TASK)
    assert honest.passed and honest.record.max_difference["ssim"] <= 1e-9
    rec = json.loads(path.read_text())["audits"][-1]
    assert rec["passed"] is True and rec["mribench_version"] and rec["date"]
    assert rec["n_slices"] >= 2 and sum(len(v) for v in rec["sample"].values()) >= 2
    assert _problems(root) == []  # the audit record is part of a valid entry
    build_site(root)
    assert "audit" in (root / "site" / "entries" / TASK_NAME / "zero-filled.html").read_text().lower()

    _fabricate(path)
    assert _problems(root) == []  # consistent invented numbers pass validation ...
    bad = audit_entry(path, "zero-filled", data=tiny_root, fraction=0.5, task=TASK)
    assert not bad.passed  # ... but not an audit
    assert bad.record.max_difference["ssim"] == pytest.approx(0.05, abs=1e-9)
    assert json.loads(path.read_text())["audits"][-1]["passed"] is False
    (board,) = __import__("mribench.workflows.leaderboard.board", fromlist=["make_boards"]).make_boards(
        load_entries(root)
    )
    assert board.evaluated == [] and [r.model_id for r in board.unranked] == ["zero-filled"]


def test_audits_draw_a_new_sample_and_refuse_another_model(
    runs: dict[str, Path], tmp_path: Path, tiny_root: Path
) -> None:
    from mribench.workflows.check import CheckMisuse
    from mribench.workflows.leaderboard.audit import audit_entry

    root = tmp_path / "lb"
    path = _submit(root, runs["zero-filled"], "zero-filled")
    samples = {
        json.dumps(
            audit_entry(path, "zero-filled", data=tiny_root, fraction=0.25, task=TASK, record=False).record.sample
        )
        for _ in range(4)
    }
    assert len(samples) > 1  # drawn at audit time
    assert "audits" not in json.loads(path.read_text()) or json.loads(path.read_text())["audits"] == []
    with pytest.raises(CheckMisuse, match="sha256"):
        audit_entry(path, f"{runs['models']}:Scaled", data=tiny_root, fraction=0.25, task=TASK)


def test_cli_audit_and_one_step_submit(runs: dict[str, Path], tmp_path: Path, tiny_root: Path) -> None:
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / f"{TASK_NAME}.yaml").write_text(yaml.safe_dump(TASK_DICT))
    env = {**__import__("os").environ, "MRIBENCH_TASKS_PATH": str(tasks_dir)}
    root = tmp_path / "lb"
    mb = [sys.executable, "-m", "mribench"]
    sub = subprocess.run(
        [
            *mb,
            "submit",
            "--model",
            "zero-filled",
            "--task",
            TASK_NAME,
            "--data-root",
            str(tiny_root),
            "--name",
            "zf",
            "--display-name",
            "Zero filled",
            "--root",
            str(root),
            "--run-dir",
            str(tmp_path / "run"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert sub.returncode == 0, sub.stderr
    entry = root / "entries" / TASK_NAME / "zf.json"
    assert entry.is_file() and _problems(root) == []
    # issue 17 problem 5: `check --reference <entry>` (documented) crashed with an ImportError
    ref = subprocess.run([*mb, "check", "-r", str(entry), "-c", str(tmp_path / "run")], capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    audit = [*mb, "leaderboard", "audit", str(entry), "--model", "zero-filled", "--data-root", str(tiny_root)]
    ok = subprocess.run([*audit, "--fraction", "0.3"], capture_output=True, text=True, env=env)
    assert ok.returncode == 0, ok.stderr
    assert "audit passed" in ok.stdout
    _fabricate(entry)
    bad = subprocess.run([*audit, "--fraction", "0.3", "--no-record"], capture_output=True, text=True, env=env)
    assert bad.returncode == 1 and "audit failed" in bad.stderr and "ssim" in bad.stderr
    assert np.isclose(json.loads(entry.read_text())["audits"][-1]["max_difference"]["ssim"], 0.0)
