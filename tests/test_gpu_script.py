"""benchmarks/gpu.sh: the driver's rows and failure handling (fast), and its CPU fallback end to end (slow)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def _driver():  # noqa: ANN202
    spec = importlib.util.spec_from_file_location("gpu_driver", BENCH / "gpu.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules["gpu_driver"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_rows_cover_every_cuda_path_and_failures_stay_in_their_row(tmp_path: Path) -> None:
    gpu = _driver()
    names = ["cuda-tests", "ttt-embedded", "ttt-paper", "eval", "metrics"]
    cuda = gpu.plan("cuda", tmp_path)
    assert [r.name for r in cuda] == names and sum(r.timeout for r in cuda) <= 8 * 60 - 30
    assert "--preset" in cuda[2].argv and cuda[2].argv[cuda[2].argv.index("--preset") + 1] == "paper"
    assert all("--device" in r.argv and "cuda" in r.argv for r in cuda[1:])
    assert [r.name for r in gpu.plan("cpu", tmp_path)] == names
    # a failing, a hanging and a passing row: each reports in its line, the table lists all
    ok_json = tmp_path / "ok.json"
    rows = [
        gpu.Row("crash", ["-c", "import sys; print('boom'); sys.exit(3)"], 30, lambda d: ""),
        gpu.Row("hang", ["-c", "import time; time.sleep(30)"], 1, lambda d: ""),
        gpu.Row(
            "fine",
            ["-c", f"import json; json.dump({{'x': 2}}, open({str(ok_json)!r}, 'w'))", "--json", str(ok_json)],
            30,
            lambda d: f"x = {d['x']}",
        ),
    ]
    for r in rows:
        gpu.run_row(r)
    assert rows[0].result["status"].startswith("FAILED (rc 3)") and "boom" in rows[0].result["status"]
    assert rows[1].result["status"] == "timeout" and rows[2].result["status"] == "ok"
    table = gpu._table(rows, "test", 1.0)
    assert "crash" in table and "timeout" in table and "x = 2" in table


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback (a GPU machine runs the real rows)")
def test_cpu_fallback_runs_every_row(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        ["bash", str(BENCH / "gpu.sh"), "--cpu-fallback", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
        env={**__import__("os").environ, "PYTHON": sys.executable},
    )
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    import json

    rows = json.loads(out.read_text())["rows"]
    assert rows["cuda-tests"]["status"] == "skipped"
    assert all(rows[n]["status"] == "ok" for n in ("ttt-embedded", "ttt-paper", "eval", "metrics"))
    assert set(rows["eval"]["runs"]) == {"unet-fp32", "unet-bf16", "varnet-fp32", "varnet-bf16"}
    assert "mribench GPU check" in proc.stdout
