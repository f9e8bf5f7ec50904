from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from mribench import load_run

TASK = {
    "version": 1,
    "source": {"filter": {"anatomy": "knee"}},
    "target": {"filter": {"anatomy": "brain"}},
    "metrics": ["ssim", "psnr"],
}


def test_two_process_torchrun_equals_one_process(tiny_root: Path, tmp_path: Path) -> None:
    tf = tmp_path / "t.yaml"
    tf.write_text(yaml.safe_dump(TASK))
    args = [
        "-m",
        "mribench",
        "evaluate",
        "-m",
        "zero-filled",
        "-t",
        str(tf),
        "--data-root",
        str(tiny_root),
        "--batch-size",
        "1",
        "--device",
        "cpu",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [sys.executable, *args, "--run-dir", str(tmp_path / "one")], check=True, capture_output=True, env=env
    )
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc-per-node",
            "2",
            "--master-port",
            "29517",
            *args,
            "--run-dir",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert two.returncode == 0, two.stderr[-2000:]
    assert sorted(p.name for p in (tmp_path / "two" / "slices").iterdir()) == ["rank0.jsonl", "rank1.jsonl"]
    a, b = load_run(tmp_path / "one"), load_run(tmp_path / "two")
    cols = ["split", "file", "slice", "status", "ssim", "psnr"]
    assert a.slices[cols].equals(b.slices[cols])
    assert a.summary.shift == b.summary.shift
