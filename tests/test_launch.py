from __future__ import annotations

from pathlib import Path

import pytest

from mribench import EvalOptions, Runtime, evaluate
from mribench.workflows.launch import LaunchSpec, launch_evaluation

TASK = {
    "version": 1,
    "source": {"filter": {"anatomy": "knee"}},
    "target": {"filter": {"anatomy": "brain"}},
    "metrics": ["ssim", "psnr"],
}


def test_local_launcher_shards_equal_one_process(tiny_root: Path, tmp_path: Path) -> None:
    """Two submitit jobs (local executor) produce the per-slice results of one process."""
    import yaml

    tf = tmp_path / "t.yaml"
    tf.write_text(yaml.safe_dump(TASK))
    one = evaluate("zero-filled", str(tf), data=tiny_root, run_dir=tmp_path / "one", runtime=Runtime(batch_size=1))
    spec = LaunchSpec("local", shards=2, folder=tmp_path / "jobs", timeout_min=5)
    two = launch_evaluation(
        "zero-filled",
        str(tf),
        spec,
        run_dir=tmp_path / "two",
        data=str(tiny_root),
        options=EvalOptions(),
        runtime=Runtime(batch_size=1),
    )
    assert not isinstance(two, list)
    assert sorted(p.name for p in (tmp_path / "two" / "slices").iterdir()) == ["rank0.jsonl", "rank1.jsonl"]
    cols = ["split", "file", "slice", "status", "ssim", "psnr"]
    assert one.slices[cols].equals(two.slices[cols])
    assert one.summary.shift == two.summary.shift


def test_launch_spec_is_validated() -> None:
    with pytest.raises(ValueError, match="launcher"):
        LaunchSpec("kubernetes")
    with pytest.raises(ValueError, match="shards"):
        LaunchSpec("local", shards=0)


def test_recipe_as_a_local_job(tiny_root: Path, tmp_path: Path) -> None:
    import yaml

    from mribench.workflows.launch import launch_recipe

    tf = tmp_path / "t.yaml"
    tf.write_text(yaml.safe_dump({**TASK, "metrics": ["ssim"]}))
    tiny = {
        "training": {"model": {"chans": 2, "num_pool_layers": 1}, "batch_size": 3, "lr": 3e-3},
        "val_limit": 3,
        "evaluation": {"batch_size": 3, "limit": 3},
    }
    spec = LaunchSpec("local", shards=1, folder=tmp_path / "jobs", timeout_min=5)
    r = launch_recipe(
        "sup-p", str(tf), spec, config=tiny, epochs=1, device="cpu", out=tmp_path / "run", data_root=str(tiny_root)
    )
    assert 0 < r.scores["test_Q"] < 1 and (tmp_path / "run" / "run.json").is_file()
