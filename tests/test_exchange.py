"""Models from any framework: `export-inputs` writes a task's inputs, `score` scores reconstruction files."""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mribench import EvalOptions, Runtime, evaluate, load_run
from mribench.errors import DataError
from mribench.tasks import parse_task
from mribench.workflows.exchange import MANIFEST, export_inputs, read_manifest, score

REPO = Path(__file__).resolve().parents[1]
TASK: dict[str, Any] = {
    "version": 1,
    "source": {"filter": {"anatomy": "knee"}, "mask": {"acceleration": 4}},
    "target": {"filter": {"anatomy": "brain"}, "mask": {"acceleration": 8}},
    "mask": {"type": "equispaced", "acceleration": 4},
    "splits": {"test_fraction": 0.5},
    "metrics": ["ssim", "psnr", "nmse"],
}
KEY = ["split", "file", "slice"]
METRICS = ["ssim", "psnr", "nmse"]


@pytest.fixture()
def task() -> Any:
    return parse_task(dict(TASK), "tiny-exchange")


def _zero_filled_script() -> Any:
    """The example a user outside mribench starts from (h5py, numpy and fastmri only)."""
    return runpy.run_path(str(REPO / "examples" / "external" / "zero_filled.py"))["main"]


def _table(run_dir: Path) -> Any:
    df = load_run(run_dir).slices
    return df.sort_values(KEY).reset_index(drop=True)


def test_cli_export_then_score_zero_filled_equals_evaluate(tiny_root: Path, tmp_path: Path, one_thread: Any) -> None:
    from mribench.cli.app import app

    task_file = tmp_path / "t.yaml"
    task_file.write_text(yaml.safe_dump(TASK))
    common = ["-t", str(task_file), "--data-root", str(tiny_root)]
    runner = CliRunner()
    res = runner.invoke(app, ["export-inputs", *common, "-o", str(tmp_path / "in")])
    assert res.exit_code == 0, res.output
    _zero_filled_script()(tmp_path / "in", tmp_path / "rec")
    res = runner.invoke(
        app,
        ["score", str(tmp_path / "rec"), *common, "--inputs", str(tmp_path / "in"), "--run-dir", str(tmp_path / "s")],
    )
    assert res.exit_code == 0, res.output
    assert "inputs checked against" in res.output
    ref = evaluate(
        "zero-filled", task_file.as_posix(), data=tiny_root, run_dir=tmp_path / "e", runtime=Runtime(batch_size=2)
    )
    got, want = _table(tmp_path / "s"), _table(tmp_path / "e")
    assert len(got) == len(want) > 8 and (got["status"] == "ok").all()
    assert got[KEY + METRICS].equals(want[KEY + METRICS])  # identical, not approximately
    run = load_run(tmp_path / "s")
    assert run.config.model.kind == "reconstructions" and run.config.model.details["n_missing_files"] == 0
    assert run.config.masks == ref.config.masks and run.config.splits == ref.config.splits
    # the same check and leaderboard path as any run
    res = runner.invoke(app, ["check", "-r", str(tmp_path / "e"), "-c", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    res = runner.invoke(
        app,
        ["submit", str(tmp_path / "s"), "--name", "zf-files", "--display-name", "ZF", "--root", str(tmp_path / "lb")],
    )
    assert res.exit_code == 0, res.output
    from mribench.workflows.report import build_report

    build_report([tmp_path / "s"], tmp_path / "report", panels=1, data_root=tiny_root)
    assert (tmp_path / "report" / "t-rec-panel.png").is_file()  # the report reads the files again


def test_exported_files_are_the_evaluator_inputs_without_targets(
    tiny_root: Path, tmp_path: Path, task: Any, one_thread: Any
) -> None:
    import torch
    from fastmri.data import SliceDataset

    from mribench.data.slices import read_sample
    from mribench.workflows.evaluation import plan_slices

    options = EvalOptions(limit=5)
    rep = export_inputs(task, tmp_path / "in", data=tiny_root, options=options)
    plan = plan_slices(task, data=tiny_root, options=options, batch_size=1)
    assert len(rep.files) == len({(r.split, r.file) for r in plan.requests}) >= 4
    seen = 0
    for req in plan.requests:
        sample = read_sample(req)  # exactly what `evaluate` gives a model
        with h5py.File(tmp_path / "in" / req.split / req.file, "r") as hf:
            assert set(hf) == {"kspace", "mask", "ismrmrd_header"}
            assert set(hf.attrs) <= {"acceleration", "num_low_frequencies", "slices", "acquisition", "patient_id"}
            row = list(hf.attrs["slices"]).index(req.slices[0])
            k = torch.from_numpy(hf["kspace"][row : row + 1])
            assert k.dtype == torch.complex64 and torch.equal(k, sample.masked_kspace)
            assert hf["mask"].dtype == bool and hf["mask"].shape == (k.shape[-1],)
            assert torch.equal(torch.from_numpy(hf["mask"][()]).float(), sample.mask.reshape(-1))
            assert hf.attrs["acceleration"] == req.mask.acceleration
            assert hf.attrs["num_low_frequencies"] == sample.meta.num_low_frequencies
        seen += 1
    assert seen == sum(len(r.slices) for r in plan.requests) and seen > 10  # --limit 5: five whole volumes per split
    assert read_manifest(tmp_path / "in")["splits"]["test_Q"]["mask"]["acceleration"] == 8
    # fastmri reads them as test files: no target, recon size from the header = the target's size
    for split in ("test_P", "test_Q"):
        ds = SliceDataset(tmp_path / "in" / split, challenge="multicoil")
        kspace, mask, target, attrs, fname, _ = ds[0]
        entry = rep.manifest["splits"][split]["files"][fname]
        assert target is None and "max" not in attrs and "norm" not in attrs
        assert list(attrs["recon_size"][:2]) == entry["reconstruction_shape"][1:]


def test_bad_reconstructions_fail_per_slice_with_reasons(
    tiny_root: Path, tmp_path: Path, task: Any, one_thread: Any
) -> None:
    export_inputs(task, tmp_path / "in", data=tiny_root)
    rec = tmp_path / "rec"
    _zero_filled_script()(tmp_path / "in", rec)
    files = sorted(p.relative_to(rec).as_posix() for p in rec.glob("*/*.h5"))
    missing, shaped, nan, cplx, nodata = files[:5]
    (rec / missing).unlink()
    with h5py.File(rec / shaped, "r+") as hf:
        x = hf["reconstruction"][()]
        del hf["reconstruction"]
        hf["reconstruction"] = x[:, 1:, :]
    with h5py.File(rec / nan, "r+") as hf:
        hf["reconstruction"][1, 3, 3] = np.nan
    with h5py.File(rec / cplx, "r+") as hf:
        x = hf["reconstruction"][()]
        del hf["reconstruction"]
        hf["reconstruction"] = x.astype(np.complex64)
    with h5py.File(rec / nodata, "r+") as hf:
        hf["image"] = hf["reconstruction"][()]
        del hf["reconstruction"]
    (rec / "test_Q" / "file_not_in_task.h5").write_bytes(b"")
    (rec / "notes.txt").write_text("extra")

    res = score(task, rec, data=tiny_root, run_dir=tmp_path / "s", runtime=Runtime(batch_size=2))
    assert res.missing == [missing]
    assert res.extra == ["notes.txt", "test_Q/file_not_in_task.h5"]
    details = res.result.config.model.details
    assert details["missing_files"] == [missing] and details["n_extra_files"] == 2
    got = _table(tmp_path / "s")
    want = _table(evaluate("zero-filled", task, data=tiny_root, run_dir=tmp_path / "e").run_dir)

    def rows(rel: str) -> Any:
        split, file = rel.split("/")
        return got[(got["split"] == split) & (got["file"] == file)]

    def errors(rel: str) -> list[str]:
        return rows(rel)["error"].tolist()

    assert all("no such file" in e and missing.split("/")[1] in e for e in errors(missing))
    assert all("expected 'reconstruction' of shape (3, 32, 32)" in e and "(3, 31, 32)" in e for e in errors(shaped))
    assert (
        rows(nan)["status"].tolist() == ["ok", "failed", "ok"] and errors(nan)[1] == "model returned NaN or Inf values"
    )
    assert all("expected a real 'reconstruction'" in e for e in errors(cplx))
    assert all("expected a 'reconstruction' dataset" in e and "['image']" in e for e in errors(nodata))
    failed = got["status"] != "ok"
    assert failed.sum() == 4 * 3 + 1
    # every other slice is scored as `evaluate` scores it, and failed slices are never averaged
    assert got.loc[~failed, KEY + METRICS].equals(want.loc[~failed, KEY + METRICS])
    s = res.result.summary
    for split in ("test_P", "test_Q"):
        ok = got[(got["split"] == split) & ~failed]
        assert s.splits[split].n_failed == int((failed & (got["split"] == split)).sum())
        assert s.splits[split].metrics["ssim"].mean == pytest.approx(ok["ssim"].mean(), rel=1e-12)
    # the command names them and exits 1, as `evaluate` does for failed slices
    from mribench.cli.app import app

    task_file = tmp_path / "t.yaml"
    task_file.write_text(yaml.safe_dump(TASK))
    cli = CliRunner().invoke(
        app, ["score", str(rec), "-t", str(task_file), "--data-root", str(tiny_root), "--run-dir", str(tmp_path / "c")]
    )
    assert cli.exit_code == 1
    assert "1 reconstruction file(s) missing" in cli.output and "2 extra file(s) not scored" in cli.output
    assert "13 slice(s) failed" in cli.output


def test_score_refuses_inputs_other_than_exported(tiny_root: Path, tmp_path: Path, task: Any) -> None:
    export_inputs(task, tmp_path / "in", data=tiny_root, options=EvalOptions(limit=2))
    (tmp_path / "rec").mkdir()
    with pytest.raises(DataError, match="evaluated_manifest"):
        score(task, tmp_path / "rec", data=tiny_root, options=EvalOptions(limit=3), inputs=tmp_path / "in")
    other = parse_task({**TASK, "target": {**TASK["target"], "mask": {"acceleration": 4}}}, "tiny-exchange")
    with pytest.raises(DataError, match=r"task.sha256.*splits.test_Q.mask"):
        score(other, tmp_path / "rec", data=tiny_root, options=EvalOptions(limit=2), inputs=tmp_path / "in")
    with pytest.raises(DataError, match="expected an earlier export|without an earlier export"):
        export_inputs(task, tmp_path / "in", data=tiny_root, options=EvalOptions(limit=2))
    rep = export_inputs(task, tmp_path / "in", data=tiny_root, options=EvalOptions(limit=1), overwrite=True)
    assert sorted(p.relative_to(tmp_path / "in").as_posix() for p in (tmp_path / "in").glob("*/*.h5")) == rep.files
    assert (tmp_path / "in" / MANIFEST).is_file()
    with pytest.raises(DataError, match="no such folder"):
        score(task, tmp_path / "nowhere", data=tiny_root)


def test_a_subset_of_slices_per_volume_round_trips(tiny_root: Path, tmp_path: Path, task: Any, one_thread: Any) -> None:
    """Only the middle slice of each volume (as a split file or a task may select): exported and scored as planned."""
    import pandas as pd

    csv = tmp_path / "middle.csv"
    pd.DataFrame(
        {"filename": [f"file_brain_AXT2_{i:03d}.h5" for i in range(8)], "start_slice": 1, "end_slice": 2}
    ).to_csv(csv, index=False)
    options = EvalOptions(splits=("test_Q",), split_files={"test_Q": str(csv)})
    rep = export_inputs(task, tmp_path / "in", data=tiny_root, options=options)
    assert len(rep.files) == 8 and all(f["slices"] == [1] for f in rep.manifest["splits"]["test_Q"]["files"].values())
    _zero_filled_script()(tmp_path / "in", tmp_path / "rec")
    res = score(task, tmp_path / "rec", data=tiny_root, options=options, inputs=tmp_path / "in", run_dir=tmp_path / "s")
    ref = evaluate("zero-filled", task, data=tiny_root, options=options, run_dir=tmp_path / "e")
    got, want = _table(res.result.run_dir), _table(ref.run_dir)
    assert (got["slice"] == 1).all() and len(got) == 8
    assert got[KEY + METRICS].equals(want[KEY + METRICS])
