"""Leaderboard: entries from real run dirs validate; tampering is caught with one clear line each;
the rendered site escapes entry text; exports round-trip."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from mribench import Runtime, evaluate, load_run
from mribench.cli.leaderboard import leaderboard_app, submit_command
from mribench.errors import SubmissionError
from mribench.results import dumps
from mribench.tasks import parse_task
from mribench.workflows.leaderboard import (
    build_entry,
    build_site,
    export_table,
    json_schema,
    leaderboard_table,
    validate_leaderboard,
    write_entry,
)
from mribench.workflows.leaderboard.io import read_json_capped, sidecar_bytes

REPO = Path(__file__).resolve().parents[1]
TASK_NAME = "tiny-anatomy"
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
SCALED_MODEL = """
    from mribench.physics import zero_filled

    class Scaled:
        def __call__(self, masked_kspace, mask, meta):
            return 0.8 * zero_filled(masked_kspace, meta.target_size)

    def build():
        return Scaled()
"""


@pytest.fixture(scope="module")
def runs(tiny_root: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Real run dirs: zero-filled and a scaled zero-filled model (every test slice: rankable)."""
    tmp = tmp_path_factory.mktemp("runs")
    model_file = tmp / "scaled.py"
    model_file.write_text(textwrap.dedent(SCALED_MODEL))
    out = {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MRIBENCH_CACHE", str(tmp / "cache"))
        for name, model in (("zero-filled", "zero-filled"), ("scaled", f"{model_file}:build")):
            evaluate(
                model,
                TASK,
                data=tiny_root,
                run_dir=tmp / name,
                runtime=Runtime(device="cpu"),
            )
            out[name] = tmp / name
    return out


def _submit(root: Path, run_dir: Path, name: str, **kw: object) -> Path:
    kw.setdefault("display_name", name.title())
    entry = build_entry(run_dir, name=name, **kw)  # type: ignore[arg-type]
    return write_entry(entry, load_run(run_dir).slices, root)


@pytest.fixture()
def board(runs: dict[str, Path], tmp_path: Path) -> Path:
    """A valid leaderboard with two evaluated entries (one with a gap) and one reported entry."""
    root = tmp_path / "leaderboard"
    _submit(
        root,
        runs["zero-filled"],
        "zero-filled",
        authors=["A. Author"],
        paper="https://example.org/p",
        code="https://example.org/c",
        training_data="none (no learning)",
    )
    _submit(root, runs["scaled"], "scaled", q_reference=runs["zero-filled"])
    reported = json.loads((REPO / "leaderboard/reported/d22-anatomy/unet-darestani2022.json").read_text())
    reported["task"] = {"name": TASK_NAME, "version": 1, "sha256": None}
    dest = root / "reported" / TASK_NAME / "unet-darestani2022.json"
    dest.parent.mkdir(parents=True)
    dest.write_text(json.dumps(reported))
    return root


def _problems(root: Path, **kw: object) -> list[str]:
    return [str(p) for p in validate_leaderboard(root, tasks=TASKS, **kw)]  # type: ignore[arg-type]


def _edit(path: Path, fn) -> None:  # noqa: ANN001
    data = json.loads(path.read_text())
    fn(data)
    path.write_text(json.dumps(data, indent=2))


def _entry(root: Path, name: str = "zero-filled") -> Path:
    return root / "entries" / TASK_NAME / f"{name}.json"


def _single(problems: list[str], code: str, path: str) -> str:
    """Exactly one problem, of the expected kind, one line, naming the file."""
    assert len(problems) == 1, problems
    p = problems[0]
    assert f"[{code}]" in p and p.startswith(path) and "\n" not in p
    return p


# ----------------------------------------------------------------------------- valid entries


def test_valid_leaderboard_and_entry_contents(board: Path, runs: dict[str, Path]) -> None:
    assert _problems(board) == []
    e = json.loads(_entry(board).read_text())
    r = load_run(runs["zero-filled"])
    assert e["schema_version"] == 1 and e["kind"] == "evaluated"
    assert e["task"] == {"name": TASK_NAME, "version": 1, "sha256": TASK.sha256}
    for sp in ("test_P", "test_Q"):
        assert e["splits"][sp]["manifest"] == r.config.splits[sp].manifest
        assert e["splits"][sp]["evaluated_manifest"] == r.config.splits[sp].evaluated_manifest
        for m in ("ssim", "psnr", "nmse"):
            assert e["summary"]["splits"][sp]["metrics"][m]["mean"] == pytest.approx(
                r.summary.splits[sp].metrics[m].mean, abs=1e-12
            )
    assert e["summary"]["shift"]["ssim"]["drop"] == pytest.approx(r.summary.shift["ssim"].drop, abs=1e-12)
    assert e["metric_profiles"] == r.config.metric_profiles and e["limit"] is None and e["partial"] is False
    secs = r.slices["seconds"].to_numpy(dtype=float)
    assert e["cost"]["seconds_per_slice"] == pytest.approx(float(np.nanmean(secs)), rel=1e-12)
    side = pd.read_parquet(_entry(board).with_name("zero-filled.slices.parquet"))
    assert list(side.columns) == ["split", "file", "slice", "status", "seconds", "ssim", "psnr", "nmse"]
    assert len(side) == e["slices"]["rows"] == len(r.slices) > 8
    # the gap of the scaled model against the zero-filled "Q reference" is consistent
    g = json.loads(_entry(board, "scaled").read_text())["summary"]["gap"]["ssim"]
    assert g["q_trained"] == pytest.approx(r.summary.splits["test_Q"].metrics["ssim"].mean, abs=1e-12)
    assert g["gap"] == pytest.approx(g["q_trained"] - g["p_trained"], abs=1e-12)


def test_schema_file_is_current() -> None:
    committed = json.loads((REPO / "leaderboard/schema/entry-v1.json").read_text())
    assert committed == json.loads(json.dumps(json_schema()))


def test_repository_leaderboard_is_valid() -> None:
    assert [str(p) for p in validate_leaderboard(REPO / "leaderboard")] == []


def test_tasks_from_mribench_tasks_path(board: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / f"{TASK_NAME}.yaml").write_text(yaml.safe_dump(TASK_DICT))
    monkeypatch.setenv("MRIBENCH_TASKS_PATH", str(tasks_dir))
    assert [str(p) for p in validate_leaderboard(board)] == []
    monkeypatch.delenv("MRIBENCH_TASKS_PATH")
    problems = [str(p) for p in validate_leaderboard(board)]
    assert len(problems) == 3 and all("[unknown-task]" in p and TASK_NAME in p for p in problems)


def test_build_entry_rejects_bad_input(runs: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(SubmissionError, match="model.paper"):
        build_entry(runs["zero-filled"], name="zf", display_name="ZF", paper="javascript:alert(1)")
    with pytest.raises(SubmissionError, match="model.id"):
        build_entry(runs["zero-filled"], name="Bad Name!", display_name="ZF")
    # an unfinished run (a slice missing from the store) cannot be submitted
    rd = tmp_path / "partial"
    shutil.copytree(runs["zero-filled"], rd)
    store = next((rd / "slices").glob("*.jsonl"))
    store.write_text("".join(store.read_text().splitlines(keepends=True)[:-1]))
    with pytest.raises(SubmissionError, match="continues the run"):
        build_entry(rd, name="zf", display_name="ZF")
    # write_entry refuses a per-slice table other than the entry's
    e = build_entry(runs["zero-filled"], name="zf", display_name="ZF")
    other = load_run(runs["scaled"]).slices
    with pytest.raises(SubmissionError, match="different table"):
        write_entry(e, other, tmp_path / "lb")
    write_entry(e, load_run(runs["zero-filled"]).slices, tmp_path / "lb")
    with pytest.raises(SubmissionError, match="exists"):
        write_entry(e, load_run(runs["zero-filled"]).slices, tmp_path / "lb")


# ----------------------------------------------------------------------------- rejections


def test_tampered_number(board: Path) -> None:
    _edit(
        _entry(board),
        lambda d: d["summary"]["splits"]["test_Q"]["metrics"]["ssim"].update(
            mean=d["summary"]["splits"]["test_Q"]["metrics"]["ssim"]["mean"] + 1e-6
        ),
    )
    p = _single(_problems(board), "summary", f"entries/{TASK_NAME}/zero-filled.json")
    assert "summary.splits.test_Q.metrics.ssim.mean" in p and "recomputes to" in p


def test_tampered_ci_and_cost(board: Path) -> None:
    _edit(_entry(board), lambda d: d["cost"].update(seconds_per_slice=d["cost"]["seconds_per_slice"] * 0.5))
    _single(_problems(board), "cost", f"entries/{TASK_NAME}/zero-filled.json")


def test_wrong_task_version(board: Path) -> None:
    _edit(_entry(board), lambda d: d["task"].update(version=2))
    p = _single(_problems(board), "task-version", f"entries/{TASK_NAME}/zero-filled.json")
    assert "version 1" in p and "version 2" in p


def test_duplicate_model_id(board: Path) -> None:
    rep = board / "reported" / TASK_NAME / "unet-darestani2022.json"
    shutil.copy(rep, rep.with_name("copy.json"))
    problems = _problems(board)
    dup = [p for p in problems if "[duplicate-id]" in p]
    assert len(dup) == 1 and "'unet-darestani2022'" in dup[0] and "also in" in dup[0]
    assert any("[location]" in p and "copy.json" in p for p in problems)


def test_tampered_sidecar(board: Path) -> None:
    side = _entry(board).with_name("zero-filled.slices.parquet")
    t = pq.read_table(side)
    ssim = t.column("ssim").to_numpy().copy()
    ssim[0] += 0.01
    pq.write_table(t.set_column(t.schema.get_field_index("ssim"), "ssim", pa.array(ssim)), side)
    p = _single(_problems(board), "sidecar-hash", f"entries/{TASK_NAME}/zero-filled.slices.parquet")
    assert "does not match" in p


def test_sidecar_with_matching_hash_but_wrong_numbers(board: Path) -> None:
    """Re-hashing a tampered sidecar does not help: the numbers no longer recompute."""
    side = _entry(board).with_name("zero-filled.slices.parquet")
    df = pd.read_parquet(side)
    df.loc[0, "ssim"] += 0.01
    data = sidecar_bytes(df, ["ssim", "psnr", "nmse"])
    side.write_bytes(data)
    import hashlib

    _edit(_entry(board), lambda d: d["slices"].update(sha256=hashlib.sha256(data).hexdigest()))
    problems = _problems(board)
    assert problems and all("[summary]" in p for p in problems)


def test_non_finite_number(board: Path) -> None:
    path = _entry(board)
    text = path.read_text()
    path.write_text(text.replace('"seconds_per_slice": ', '"seconds_per_slice": NaN, "x": ', 1))
    p = _single(_problems(board), "non-finite", f"entries/{TASK_NAME}/zero-filled.json")
    assert "NaN" in p
    path.write_text(text.replace('"seconds_per_slice": ', '"seconds_per_slice": 1e999, "y": ', 1))
    _single(_problems(board), "non-finite", f"entries/{TASK_NAME}/zero-filled.json")


def test_oversized_and_malformed_files(board: Path) -> None:
    _edit(_entry(board), lambda d: d.update(notes="x" * (5 * 1024 * 1024 + 10)))
    p = _single(_problems(board), "oversized", f"entries/{TASK_NAME}/zero-filled.json")
    assert "limit" in p
    _entry(board).write_text('{"schema_version": 1, ')
    _single(_problems(board), "malformed", f"entries/{TASK_NAME}/zero-filled.json")


def test_schema_errors_and_stray_files(board: Path) -> None:
    _edit(_entry(board), lambda d: d["model"].update(code="ftp://example.org/x", unexpected=1))
    problems = _problems(board)
    assert len(problems) == 2 and all("[schema]" in p for p in problems)
    assert any("model.code" in p for p in problems) and any("model.unexpected" in p for p in problems)
    (board / "entries" / TASK_NAME / "evil.pkl").write_bytes(b"\x80\x04")
    assert any("[stray-file]" in p and "evil.pkl" in p for p in _problems(board))
    (board / "entries" / TASK_NAME / "link.json").symlink_to(_entry(board, "scaled"))
    assert any("[malformed]" in p and "link.json" in p and "symbolic" in p for p in _problems(board))


def test_manifest_checks(board: Path, tiny_root: Path) -> None:
    assert _problems(board, data_root=tiny_root) == []
    # a full entry's split manifest equals its evaluated manifest (checked against the sidecar) ...
    _edit(_entry(board), lambda d: d["splits"]["test_P"].update(manifest="0" * 64))
    p = _single(_problems(board), "manifest", f"entries/{TASK_NAME}/zero-filled.json")
    assert "a full split must be evaluated" in p
    # ... and the task's split recomputed from the data
    assert any("[manifest]" in p and "recomputed from" in p for p in _problems(board, data_root=tiny_root))
    # the evaluated manifest is always checked against the sidecar's (file, slice) list
    _edit(_entry(board), lambda d: d["splits"]["test_Q"].update(evaluated_manifest="1" * 64))
    assert any("[manifest]" in p and "test_Q.evaluated_manifest" in p for p in _problems(board))


def test_gap_consistency(board: Path) -> None:
    _edit(_entry(board, "scaled"), lambda d: d["summary"]["gap"]["ssim"].update(gap=0.5))
    _single(_problems(board), "gap", f"entries/{TASK_NAME}/scaled.json")


def test_cli_validate_build_export(board: Path, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    runner = CliRunner()
    ok = runner.invoke(leaderboard_app, ["validate", "--root", str(board)], env={"MRIBENCH_TASKS_PATH": ""})
    assert ok.exit_code == 1  # the test task is unknown to the CLI unless on MRIBENCH_TASKS_PATH
    tasks_dir = tmp_path / "tasks"
    tasks_dir.mkdir()
    (tasks_dir / f"{TASK_NAME}.yaml").write_text(yaml.safe_dump(TASK_DICT))
    env = {"MRIBENCH_TASKS_PATH": str(tasks_dir)}
    ok = runner.invoke(leaderboard_app, ["validate", "--root", str(board)], env=env)
    assert ok.exit_code == 0, ok.output
    _edit(_entry(board), lambda d: d["task"].update(version=3))
    _edit(_entry(board, "scaled"), lambda d: d["summary"]["shift"]["ssim"].update(drop=1.0))
    bad = runner.invoke(leaderboard_app, ["validate", "--root", str(board)], env=env)
    assert bad.exit_code == 1
    lines = [ln for ln in bad.output.splitlines() if ln.startswith("entries/")]
    assert len(lines) == 2 and any("[task-version]" in ln for ln in lines) and any("[summary]" in ln for ln in lines)
    built = runner.invoke(leaderboard_app, ["build", "--root", str(board), "--out", str(tmp_path / "site")])
    assert built.exit_code == 0 and (tmp_path / "site" / "index.html").is_file()
    exp = runner.invoke(
        leaderboard_app, ["export", "--root", str(board), "--format", "parquet", "-o", str(tmp_path / "x.parquet")]
    )
    assert exp.exit_code == 0 and (tmp_path / "x.parquet").is_file()


def test_cli_submit(runs: dict[str, Path], tmp_path: Path) -> None:
    import typer
    from typer.testing import CliRunner

    app = typer.Typer()
    app.command("submit")(submit_command)
    app.command("noop")(lambda: None)
    root = tmp_path / "lb"
    res = CliRunner().invoke(
        app,
        [
            "submit",
            str(runs["zero-filled"]),
            "--name",
            "zf",
            "--display-name",
            "Zero filled",
            "--authors",
            "A. One",
            "--authors",
            "B. Two",
            "--paper",
            "https://example.org/p",
            "--root",
            str(root),
        ],
    )
    assert res.exit_code == 0, res.output
    assert "submitted zf" in res.output
    e = read_json_capped(root / "entries" / TASK_NAME / "zf.json")
    assert e["model"]["authors"] == ["A. One", "B. Two"]
    assert [str(p) for p in validate_leaderboard(root, tasks=TASKS)] == []


# ----------------------------------------------------------------------------- rendering and export


def test_site_escapes_entry_text(runs: dict[str, Path], tmp_path: Path) -> None:
    root = tmp_path / "lb"
    evil = "<script>alert(1)</script>"
    _submit(
        root,
        runs["zero-filled"],
        "evil",
        display_name=evil,
        authors=['"><img src=x onerror=alert(2)>'],
        training_data=f"data {evil}",
        notes=f"| {evil} |",
    )
    _submit(root, runs["scaled"], "scaled")
    assert [str(p) for p in validate_leaderboard(root, tasks=TASKS)] == []
    res = build_site(root)
    pages = sorted((root / "site").rglob("*.html")) + sorted((root / "site").rglob("*.svg"))
    assert len(pages) == 5  # index, task page, 2 entry pages, plot
    for page in pages:
        text = page.read_text()
        assert evil not in text and "<img" not in text and "onerror=alert(2)>" not in text
        assert text.count("<script") == (1 if page.suffix == ".html" else 0)  # only the site's own sort.js
        if page.suffix == ".html":
            assert "sort.js" in text and "Content-Security-Policy" in text
    shown = "&lt;script&gt;alert(1)&lt;/script&gt;"
    site = root / "site"
    for page in (
        site / "tasks" / f"{TASK_NAME}.html",
        site / "entries" / TASK_NAME / "evil.html",
        site / "tasks" / f"{TASK_NAME}-er.svg",
    ):
        assert shown in page.read_text()
    assert "&quot;&gt;&lt;img src=x onerror=alert(2)&gt;" in (site / "entries" / TASK_NAME / "evil.html").read_text()
    readme = res.readme.read_text()
    assert evil not in readme and "&lt;script&gt;alert\\(1\\)&lt;/script&gt;" in readme
    # rebuilding an unchanged leaderboard gives identical files
    before = {p: p.read_bytes() for p in (root / "site").rglob("*") if p.is_file()}
    build_site(root)
    assert before == {p: p.read_bytes() for p in (root / "site").rglob("*") if p.is_file()}


def test_export_round_trip(board: Path, tmp_path: Path) -> None:
    df = leaderboard_table(board)
    # 2 evaluated entries x 2 splits x 3 metrics + 1 reported entry x test_Q x ssim
    assert len(df) == 13 and set(df["kind"]) == {"evaluated", "reported"}
    pq_path = export_table(board, format="parquet", out=tmp_path / "lb.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(pq_path), df)
    import datasets

    ds_path = export_table(board, format="datasets", out=tmp_path / "lb_ds")
    back = datasets.load_from_disk(str(ds_path)).to_pandas()
    assert list(back.columns) == list(df.columns) and len(back) == len(df)
    for c in ("mean", "ci_low", "ci_high", "gap"):
        np.testing.assert_array_equal(back[c].to_numpy(dtype=float), df[c].to_numpy(dtype=float))
    assert back["model_id"].tolist() == df["model_id"].tolist()
    assert export_table(board, format="datasets", out=ds_path) == ds_path  # replaces a saved dataset
    with pytest.raises(ValueError, match="format"):
        export_table(board, format="csv", out=tmp_path / "x")  # type: ignore[arg-type]


def test_an_evaluated_entry_is_a_check_reference(board: Path, runs: dict[str, Path]) -> None:
    """``mribench check --reference entry.json``: the entry and its sidecar become a comparable run."""
    from mribench.workflows.check import compare_runs
    from mribench.workflows.leaderboard import entry_to_run

    ref = entry_to_run(_entry(board))
    run = load_run(runs["zero-filled"])
    assert ref.config.task == run.config.task.model_copy(update={"description": "", "origin": None})
    assert ref.summary.splits["test_Q"] == run.summary.splits["test_Q"]
    assert compare_runs(_entry(board), runs["zero-filled"]).passed
    with pytest.raises(SubmissionError, match="reported entry"):
        entry_to_run(board / "reported" / TASK_NAME / "unet-darestani2022.json")


def test_a_gap_reference_must_be_comparable(board: Path, runs: dict[str, Path], tmp_path: Path) -> None:
    """The Q-trained reference of a gap must be defined like the run (here: another normalisation)."""
    import shutil

    from mribench.results import read_config, write_config

    other = tmp_path / "normalized"
    shutil.copytree(runs["zero-filled"], other)
    cfg = read_config(other)
    write_config(other, cfg.model_copy(update={"options": cfg.options.model_copy(update={"normalize_output": True})}))
    with pytest.raises(SubmissionError, match="options.normalize_output: False != True"):
        build_entry(runs["scaled"], name="scaled", display_name="Scaled", q_reference=other)


def test_reported_ttt_entry_holds_darestani_fraction_closed() -> None:
    """The reported D22 TTT row: gap_before is the supervised gap, fraction_closed is D22's 98.6%."""
    from mribench.analysis import d22_fraction_closed

    g = json.loads((REPO / "leaderboard/reported/d22-anatomy/unet-ttt-darestani2022.json").read_text())["summary"][
        "gap"
    ]
    s = g["ssim_d22"]
    want = d22_fraction_closed(q_supervised=0.9187, p_supervised=0.8521, q_ttt=s["q_trained"], p_ttt=s["p_trained"])
    assert s["gap_before"] == pytest.approx(0.9187 - 0.8521, abs=1e-12)
    assert s["fraction_closed"] == pytest.approx(want, abs=1e-12) and round(100 * want, 1) == 98.6


def test_infinite_psnr_is_kept_counted_and_validated(runs: dict[str, Path], tmp_path: Path) -> None:
    """An exact reconstruction's PSNR (+Inf) survives the store, is counted in n_inf (left out of the
    mean), reaches the entry and its page, and a tampered count is caught."""
    run = tmp_path / "run"
    shutil.copytree(runs["zero-filled"], run)
    f = sorted((run / "slices").glob("*.jsonl"))[0]
    lines = f.read_text().splitlines()
    rec = json.loads(lines[0])
    rec["metrics"]["psnr"] = float("inf")
    lines[0] = dumps(rec)
    assert '"psnr": "inf"' in lines[0]
    f.write_text("\n".join(lines) + "\n")
    res = load_run(run)
    sp = rec["split"]
    psnr = res.summary.splits[sp].metrics["psnr"]
    rows = res.slices[(res.slices["split"] == sp) & (res.slices["status"] == "ok")]
    finite = rows["psnr"].to_numpy()[np.isfinite(rows["psnr"].to_numpy())]
    assert np.isinf(rows["psnr"]).sum() == 1 and psnr.n_inf == 1 and psnr.n == len(rows) - 1
    assert psnr.mean == pytest.approx(finite.mean(), rel=1e-15)
    assert res.summary.splits[sp].metrics["ssim"].n_inf == 0

    root = tmp_path / "lb"
    path = _submit(root, run, "exact-once")
    data = json.loads(path.read_text())
    assert data["summary"]["splits"][sp]["metrics"]["psnr"]["n_inf"] == 1
    assert "n_inf" not in data["summary"]["splits"][sp]["metrics"]["ssim"]  # written only when non-zero
    assert _problems(root) == []
    build_site(root)
    pages = [p.read_text() for p in (root / "site").rglob("*.html") if "exact-once" in p.name]
    assert pages and "(+1 inf)" in pages[0]
    _edit(path, lambda d: d["summary"]["splits"][sp]["metrics"]["psnr"].update(n_inf=0))
    assert any("n_inf is 0 but the sidecar gives 1" in p for p in _problems(root))


def test_entries_of_all_finite_runs_carry_no_infinite_count(board: Path) -> None:
    assert "n_inf" not in _entry(board).read_text()
