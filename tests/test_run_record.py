"""The run contract: options, the typed run record, its upgrade from older schemas, comparability."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mribench.api.run import SCHEMA_VERSION, EvalOptions, RunConfig, Runtime, comparable, parse_run_config
from mribench.errors import ResultsError
from mribench.results import read_config, write_config
from mribench.workflows.check import load_comparable

REPO = Path(__file__).resolve().parents[1]
REFERENCE_RUNS = sorted((REPO / "tests" / "data" / "schema1-runs").glob("*.json"))  # committed schema-1 runs


def _config(**changes: object) -> RunConfig:
    base = {
        "task": {"name": "anatomy", "version": 1, "sha256": "a" * 64},
        "model": {"name": "zero-filled", "kind": "builtin", "sha256": "b" * 64},
        "metrics": ["ssim", "psnr"],
        "higher_is_better": {"ssim": True, "psnr": True},
        "metric_profiles": {m: {"profile": f"{m}@v1", "hash": m * 3} for m in ("ssim", "psnr")},
        "masks": {
            s: {"type": "equispaced", "acceleration": 4, "center_fraction": 0.08, "seed": 0} for s in ("test_P",)
        },
        "splits": {"test_P": {"manifest": "c" * 64, "evaluated_manifest": "c" * 64, "n_slices": 3, "n_volumes": 1}},
    }
    return parse_run_config({**base, **changes})


def test_committed_schema_1_runs_are_upgraded_and_summarised_as_written() -> None:
    assert REFERENCE_RUNS
    for path in REFERENCE_RUNS:
        raw = json.loads(path.read_text())
        assert raw["config"]["schema_version"] == 1 and "batch_size" in raw["config"]["options"]
        run = load_comparable(path)
        cfg = run.config
        assert cfg.schema_version == SCHEMA_VERSION
        assert cfg.provenance.batch_size == raw["config"]["options"]["batch_size"]
        assert cfg.options.precision == "fp32" and cfg.options.limit == raw["config"]["options"]["limit"]
        assert cfg.model_dump(mode="json")["task"] == raw["config"]["task"]
        for sp, stored in raw["summary"]["splits"].items():
            for m, v in stored["metrics"].items():
                assert run.summary.splits[sp].metrics[m].mean == pytest.approx(v["mean"], abs=1e-12)
                assert run.summary.splits[sp].metrics[m].ci_low == pytest.approx(v["ci_low"], abs=1e-12)
        for m, v in raw["summary"]["shift"].items():
            assert run.summary.shift[m].drop == pytest.approx(v["drop"], abs=1e-12)


def test_record_round_trips_and_bad_records_are_refused(tmp_path: Path) -> None:
    cfg = _config()
    write_config(tmp_path, cfg)
    assert read_config(tmp_path) == cfg
    raw = json.loads((tmp_path / "run.json").read_text())
    (tmp_path / "run.json").write_text(json.dumps({**raw, "schema_version": SCHEMA_VERSION + 1}))
    with pytest.raises(ResultsError, match="upgrade mribench"):
        read_config(tmp_path)
    (tmp_path / "run.json").write_text(json.dumps({**raw, "optoins": {}}))
    with pytest.raises(ResultsError, match="optoins"):
        read_config(tmp_path)


def test_comparable_names_each_field_that_changes_results() -> None:
    a = _config()
    assert comparable(a, a) == [] and comparable(a, a, same_run=True) == []
    b = _config(options={"normalize_output": True, "precision": "bf16"})
    assert comparable(a, b) == ["options.normalize_output: False != True", "options.precision: 'fp32' != 'bf16'"]
    c = _config(metric_profiles={"ssim": {"profile": "ssim@v2", "hash": "other"}, "psnr": {"hash": "psnrpsnrpsnr"}})
    assert comparable(a, c) == ["metric_profiles.ssim.hash: 'ssimssimssim' != 'other'"]
    # another model or limit is another run, but its numbers are comparable
    d = _config(model={"name": "unet", "kind": "checkpoint", "sha256": "d" * 64}, options={"limit": 2})
    assert comparable(a, d) == []
    assert comparable(a, d, same_run=True) == [
        "model.name: 'zero-filled' != 'unet'",
        "model.kind: 'builtin' != 'checkpoint'",
        f"model.sha256: {'b' * 12} != {'d' * 12}",
        "options.limit: None != 2",
    ]
    # unknown on one side (no task hash, no masks: a leaderboard entry) is not a difference
    e = _config(task={"name": "anatomy", "version": 1}, masks={})
    assert comparable(a, e) == []
    assert comparable(a, _config(task={"name": "anatomy", "version": 2, "sha256": "a" * 64})) == [
        "task.version: 1 != 2"
    ]


def test_options_and_runtime_are_validated_with_clear_messages() -> None:
    with pytest.raises(ValueError, match="expected limit >= 1, got 0"):
        EvalOptions(limit=0)
    with pytest.raises(ValueError, match="expected precision in"):
        EvalOptions(precision="fp8")
    with pytest.raises(ValueError, match="expected split names in"):
        EvalOptions(split_files={"test_R": "x.csv"})
    with pytest.raises(ValueError, match="expected 0 <= rank < world_size"):
        Runtime(rank=2, world_size=2)
    with pytest.raises(ValueError, match="batch_size"):
        Runtime(batch_size=0)
    assert EvalOptions(annotations=Path("a.csv"), split_files={"test_Q": Path("q.csv")}).split_files == {
        "test_Q": "q.csv"
    }


def test_cli_reports_an_invalid_option_on_one_line() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "mribench", "evaluate", "-m", "zero-filled", "-t", "anatomy", "--limit", "0"],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "error: expected limit >= 1, got 0 (hint: `mribench evaluate --help`)"
