from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from mribench import EvalOptions, Runtime, evaluate, load_run
from mribench.errors import DataError, MetricError, RunConflict, StoredRun, TaskError
from mribench.results import SliceStore
from mribench.tasks import parse_task

TASK = {
    "version": 1,
    "source": {"filter": {"anatomy": "knee"}},
    "target": {"filter": {"anatomy": "brain"}},
    "mask": {"type": "equispaced", "acceleration": 4},
    "splits": {"test_fraction": 0.5},
    "metrics": ["ssim", "psnr", "nmse"],
}


@pytest.fixture()
def task():  # noqa: ANN201
    return parse_task(dict(TASK), "tiny-anatomy")


def _write_model(tmp_path: Path, body: str) -> str:
    f = tmp_path / "my_model.py"
    f.write_text(textwrap.dedent(body))
    return f"{f}:build"


def test_zero_filled_scores_id_and_ood(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    r = evaluate("zero-filled", task, data=tiny_root, run_dir=tmp_path / "run", runtime=Runtime(batch_size=2))
    s = r.summary
    assert set(s.splits) == {"test_P", "test_Q"}
    for sp in ("test_P", "test_Q"):
        m = s.splits[sp].metrics["ssim"]
        assert m.mean is not None and 0 < m.mean < 1 and m.n == s.splits[sp].n_ok > 0
    assert set(s.shift) == {"ssim", "psnr", "nmse"}
    assert r.config.splits["test_Q"].manifest and r.config.provenance.torch == torch.__version__
    assert r.config.metric_profiles["ssim"]["profile"]  # type: ignore[index,call-overload]
    assert r.config.provenance.batch_size == 2 and r.config.schema_version == 2
    assert (r.slices["status"] == "ok").all()


def test_metrics_match_direct_computation(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    import h5py
    from fastmri.evaluate import ssim as fm_ssim

    from mribench.physics import zero_filled
    from mribench.physics.masks import volume_mask

    r = evaluate("zero-filled", task, data=tiny_root, run_dir=tmp_path / "run", options=EvalOptions(limit=1))
    row = r.slices.iloc[0]
    with h5py.File(tiny_root / row.file) as hf:
        k = torch.from_numpy(hf["kspace"][row.slice])
        target = hf["reconstruction_rss"][row.slice]
        vmax = hf.attrs["max"]
        mask = volume_mask(task.mask_for(row.split), k.shape[-1], row.file, (2, k.shape[-1] - 2))
    recon = zero_filled((k * mask)[None], target.shape)[0].numpy()
    assert row.ssim == pytest.approx(fm_ssim(target[None], recon[None], maxval=vmax), abs=1e-6)


def test_user_model_and_nan_reporting(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    spec = _write_model(
        tmp_path,
        """
        import torch
        from mribench.physics import zero_filled
        class M:
            def __call__(self, masked_kspace, mask, meta):
                out = zero_filled(masked_kspace, meta.target_size)
                if meta.file.startswith("file_brain"):
                    out[:, 0, 0] = float("nan")
                return out
        def build():
            return M()
    """,
    )
    r = evaluate(spec, task, data=tiny_root, run_dir=tmp_path / "run")
    failed = r.failures
    assert len(failed) > 0 and set(failed["split"]) <= {"test_Q", "test_P"}
    assert (failed["error"].str.contains("NaN")).all()
    assert set(failed["file"]).issubset({f for f in r.slices["file"] if f.startswith("file_brain")})
    assert r.summary.splits["test_P"].metrics["ssim"].mean is not None
    assert r.summary.splits["test_Q"].n_ok == 0 and r.summary.splits["test_Q"].metrics["ssim"].mean is None
    assert "ssim" not in r.summary.shift and len(r.summary.failures) == len(failed)


@pytest.mark.parametrize(
    "body, match",
    [
        ("raise RuntimeError('boom')", "model raised RuntimeError: boom"),
        ("return torch.zeros(1, 3, 3)", "expected a reconstruction of shape"),
    ],
)
def test_crashing_or_misshapen_model_is_recorded(tiny_root: Path, tmp_path: Path, task, body: str, match: str) -> None:  # noqa: ANN001
    spec = _write_model(
        tmp_path,
        f"""
        import torch
        def build():
            def model(masked_kspace, mask, meta):
                {body}
            return model
    """,
    )
    r = evaluate(spec, task, data=tiny_root, run_dir=tmp_path / "run", runtime=Runtime(fail_fast=True))
    assert len(r.failures) >= 1 and r.failures["error"].str.contains(match, regex=False).all()
    assert len(r.slices) < 48  # fail-fast stopped early


def test_reader_threads_stop_and_worker_processes_give_the_same_slices(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    import threading

    spec = _write_model(
        tmp_path,
        """
        def build():
            def model(masked_kspace, mask, meta):
                raise RuntimeError("boom")
            return model
    """,
    )
    evaluate(spec, task, data=tiny_root, run_dir=tmp_path / "failed", runtime=Runtime(fail_fast=True, batch_size=1))
    deadline = time.monotonic() + 5
    while any(t.name == "mribench-prefetch" for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name == "mribench-prefetch" for t in threading.enumerate())
    three = EvalOptions(limit=3)
    a = evaluate(
        "zero-filled", task, data=tiny_root, run_dir=tmp_path / "thread", options=three, runtime=Runtime(batch_size=2)
    )
    b = evaluate(
        "zero-filled",
        task,
        data=tiny_root,
        run_dir=tmp_path / "procs",
        options=three,
        runtime=Runtime(batch_size=2, num_workers=1),
    )
    a, b = a.slices, b.slices
    cols = ["split", "file", "slice", "status", "ssim", "psnr", "nmse"]
    assert a[cols].equals(b[cols])


def test_resume_continues_without_recomputing(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    one = Runtime(batch_size=1)
    full = evaluate("zero-filled", task, data=tiny_root, run_dir=tmp_path / "full", runtime=one)
    part = tmp_path / "part"
    evaluate("zero-filled", task, data=tiny_root, run_dir=part, runtime=one)
    store = SliceStore(part)
    lines = store.path.read_text().splitlines()
    store.path.write_text("\n".join(lines[:5]) + "\n" + lines[5][:17])  # a crash mid-write
    with open(store.path.parent / "rank9.jsonl", "w") as f:  # records without a usable key are skipped too
        f.write('{"split": "test_P", "file": null, "slice": 0}\n{"split": "test_P", "file": "x.h5", "slice": null}\n')
    # the same evaluation again continues the killed run (no mode needed) and says so
    with pytest.warns(StoredRun, match=r"continued the run in .*part: 5 of 24 slices were stored already"):
        r = evaluate("zero-filled", task, data=tiny_root, run_dir=part, runtime=one)
    assert r.reuse is not None and (r.reuse.kind, r.reuse.n_stored, r.reuse.n_planned) == ("continued", 5, 24)
    cols = ["split", "file", "slice", "ssim", "psnr", "nmse"]
    assert r.slices[cols].equals(full.slices[cols])
    assert len(store.path.read_text().splitlines()) == len(full.slices) + 1  # +1: the torn line, ignored
    # mode="resume" is the same
    with pytest.warns(StoredRun, match="holds this evaluation already"):
        again = evaluate("zero-filled", task, data=tiny_root, run_dir=part, mode="resume", runtime=one)
    assert again.reuse is not None and again.reuse.kind == "stored" and again.slices[cols].equals(full.slices[cols])


def test_resume_refuses_a_different_configuration(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    rd = tmp_path / "r"
    evaluate("zero-filled", task, data=tiny_root, run_dir=rd, options=EvalOptions(limit=2))
    with pytest.raises(
        RunConflict, match=r"splits.test_P.evaluated_manifest: \w+ != \w+; .*options.limit: 2 != 3"
    ) as e:
        evaluate("zero-filled", task, data=tiny_root, run_dir=rd, mode="resume", options=EvalOptions(limit=3))
    assert 'hint: run_dir=... for a separate run, or mode="overwrite" to replace it' in str(e.value)
    assert "--run-dir DIR for a separate run, or --overwrite" in e.value.for_cli()
    with pytest.raises(RunConflict, match="options.normalize_output: False != True"):
        evaluate(
            "zero-filled",
            task,
            data=tiny_root,
            run_dir=rd,
            mode="resume",
            options=EvalOptions(limit=2, normalize_output=True),
        )
    # how it runs is not part of the configuration: another batch size resumes the same run
    with pytest.warns(StoredRun):
        r = evaluate(
            "zero-filled",
            task,
            data=tiny_root,
            run_dir=rd,
            mode="resume",
            options=EvalOptions(limit=2),
            runtime=Runtime(batch_size=1),
        )
    assert len(r.slices) == 12  # 2 whole volumes of 3 slices per split


def test_sigkill_then_resume_equals_uninterrupted(tiny_root: Path, tmp_path: Path) -> None:
    """A real SIGKILL mid-run; the resumed run's per-slice results equal an uninterrupted run."""
    task_file = tmp_path / "t.yaml"
    import yaml

    task_file.write_text(yaml.safe_dump(TASK))
    slow = _write_model(
        tmp_path,
        """
        import time
        from mribench.physics import zero_filled
        def build():
            def model(masked_kspace, mask, meta):
                time.sleep(0.15)
                return zero_filled(masked_kspace, meta.target_size)
            return model
    """,
    )
    run = tmp_path / "killed"
    cmd = [
        sys.executable,
        "-m",
        "mribench",
        "evaluate",
        "-m",
        slow,
        "-t",
        str(task_file),
        "--data-root",
        str(tiny_root),
        "--run-dir",
        str(run),
        "--batch-size",
        "1",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=os.environ.copy())
    store = SliceStore(run)
    deadline = time.time() + 60
    while time.time() < deadline and len(store.records()) < 6:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    n_before = len(store.records())
    assert 6 <= n_before < 48
    subprocess.run([*cmd, "--resume"], check=True, capture_output=True, env=os.environ.copy())
    ref = subprocess.run(
        [*cmd[:-4], "--run-dir", str(tmp_path / "ref"), "--batch-size", "1"],
        check=True,
        capture_output=True,
        env=os.environ.copy(),
    )
    a, b = load_run(run).slices, load_run(tmp_path / "ref").slices
    cols = ["split", "file", "slice", "ssim", "psnr", "nmse"]
    assert a[cols].equals(b[cols])
    keys = [(r["split"], r["file"], r["slice"]) for r in store.records()]
    assert len(keys) == len(set(keys))  # nothing computed twice
    assert ref.returncode == 0


def test_clear_errors(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    with pytest.raises(DataError, match="expected a data folder"):
        evaluate("zero-filled", task, data=tmp_path / "missing")
    with pytest.raises(TaskError, match="did you mean"):
        evaluate("zero-filled", "anatomyy", data=tiny_root)
    empty = parse_task({**TASK, "target": {"filter": {"anatomy": "spine"}}}, "empty")
    with pytest.raises(DataError, match="expected slices in split test_Q"):
        evaluate("zero-filled", empty, data=tiny_root, run_dir=tmp_path / "e")
    with pytest.raises(MetricError, match="did you mean 'ssim'"):
        evaluate("zero-filled", task, data=tiny_root, options=EvalOptions(metrics=("sssim",)), run_dir=tmp_path / "m")
    with pytest.raises(ValueError, match="expected split names"):
        EvalOptions(splits=("test_X",))
    with pytest.raises(ValueError, match="expected batch_size >= 1, got 0"):
        Runtime(batch_size=0)
    with pytest.raises(ValueError, match="expected mode in"):
        evaluate("zero-filled", task, data=tiny_root, mode="append")  # type: ignore[arg-type]


def test_output_json_and_cli_exit_codes(tiny_root: Path, tmp_path: Path) -> None:
    import yaml

    task_file = tmp_path / "t.yaml"
    task_file.write_text(yaml.safe_dump(TASK))
    out = tmp_path / "res.json"
    base = [sys.executable, "-m", "mribench", "evaluate", "-t", str(task_file), "--data-root", str(tiny_root)]
    ok = subprocess.run(
        [
            *base,
            "-m",
            "zero-filled",
            "--run-dir",
            str(tmp_path / "a"),
            "-o",
            str(out),
            "--limit",
            "2",
            "--threads",
            "1",
        ],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert "OOD" in ok.stdout and "ID" in ok.stdout
    res = json.loads(out.read_text())
    assert res["config"]["splits"]["test_P"]["manifest"] and res["summary"]["shift"]["ssim"]["drop"] is not None
    assert res["config"]["provenance"]["threads"] == 1
    bad = subprocess.run([*base, "-m", "zero-filed", "--run-dir", str(tmp_path / "b")], capture_output=True, text=True)
    assert bad.returncode == 2 and "did you mean 'zero-filled'" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_bf16_autocast_runs_and_is_recorded(tiny_root: Path, tmp_path: Path, task) -> None:  # noqa: ANN001
    from mribench.api.model import ModelInfo
    from mribench.models import UnetRecon
    from mribench.models.loaded import LoadedModel

    net = UnetRecon(chans=4, num_pool_layers=2)
    lm = LoadedModel(net, ModelInfo("tiny-unet", "user", "0" * 64))
    two = EvalOptions(limit=2)
    r32 = evaluate(lm, task, data=tiny_root, run_dir=tmp_path / "a", options=two)
    r16 = evaluate(lm, task, data=tiny_root, run_dir=tmp_path / "b", options=EvalOptions(limit=2, precision="bf16"))
    assert r16.config.options.precision == "bf16" and (r16.slices["status"] == "ok").all()
    assert np.allclose(r16.slices["ssim"], r32.slices["ssim"], atol=0.05)
    with pytest.raises(ValueError, match="precision"):
        EvalOptions(precision="fp8")
    with torch.autocast("cpu", dtype=torch.bfloat16):  # fp32 means fp32, also inside a caller's autocast
        r32_inside = evaluate(lm, task, data=tiny_root, run_dir=tmp_path / "d", options=two)
    assert r32_inside.slices["ssim"].equals(r32.slices["ssim"])


def test_ssim_data_range_is_the_volume_max_without_attrs_max(tmp_path: Path, task) -> None:  # noqa: ANN001
    """A file without ``attrs["max"]`` is scored with the max of its whole target volume, whatever the
    batch size (it once took the max of the batch: SSIM then depended on --batch-size)."""
    import h5py
    from conftest import make_volume

    roots = {}
    for kind in ("with_max", "without_max"):
        root = roots[kind] = tmp_path / kind
        root.mkdir()
        for i in range(2):
            make_volume(root, f"file_knee_{i:03d}", protocol="CORPD_FBK", slices=5, seed=i)
            make_volume(root, f"file_brain_AXT2_{i:03d}", protocol="AXT2", slices=5, seed=100 + i)
        if kind == "without_max":
            for f in root.glob("*.h5"):
                with h5py.File(f, "a") as hf:
                    del hf.attrs["max"]
    ssim = {}
    for kind, root in roots.items():
        for b in (1, 3):
            r = evaluate(
                "zero-filled", task, data=root, run_dir=tmp_path / f"{kind}-{b}", runtime=Runtime(batch_size=b)
            )
            assert (r.slices["status"] == "ok").all() and len(r.slices) == 20
            ssim[kind, b] = r.slices["ssim"].tolist()
    assert ssim["without_max", 1] == ssim["without_max", 3] == ssim["with_max", 1] == ssim["with_max", 3]
