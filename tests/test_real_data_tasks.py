"""Every shipped task on data that mribench did not generate itself.

1. A fastMRI-layout root built here (real header conventions and names, training and validation
   folders, a test-set file without targets, a truncated file, fastMRI+ annotations).
2. The slice index of the real metadata of Lin & Heckel's fastMRI (and Stanford 3D) volumes
   (their split CSVs, vendored under tests/data/lh24).
3. ``mribench tasks check`` and ``mribench evaluate`` on both kinds of root, and on roots that
   lack what a task needs.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from real_layout import BRAIN, build_real_layout_root
from typer.testing import CliRunner

from mribench.cli.app import app
from mribench.data.index import COLUMNS, build_index
from mribench.data.metadata_csv import index_from_metadata_csv
from mribench.errors import DataError
from mribench.tasks import SPLITS, list_tasks, load_split_csv, load_task, make_splits

LH24 = Path(__file__).parent / "data" / "lh24"


@pytest.fixture(scope="module")
def real_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_real_layout_root(tmp_path_factory.mktemp("fastmri"))


@pytest.fixture(scope="module")
def metadata_index() -> pd.DataFrame:
    return index_from_metadata_csv(
        [LH24 / "testset.csv", LH24 / "all_data_subset.csv", LH24 / "pathology_testset.csv"],
        annotations=[LH24 / "pathology_testset.csv"],
    )


def test_index_reads_only_what_real_files_carry(real_root: Path) -> None:
    idx = build_index(real_root, use_cache=False)
    assert "site" not in idx.table.columns and list(idx.table.columns) == COLUMNS
    vols = idx.volumes().set_index("file")
    assert set(vols["dataset"]) == {"fastmri_knee", "fastmri_brain", "stanford_3d_sag"}
    assert set(vols["official_split"]) == {"train", "val", "test"} and set(vols["origin"]) == {"real"}
    assert set(vols.loc[vols["dataset"] == "fastmri_knee", "field"]) == {"3T", "1.5T"}  # 2.89362 / 1.494 T
    assert set(vols.loc[vols["dataset"] == "fastmri_brain", "field"]) == {"3T", "1.5T"}  # 2.8936 / 1.494 T
    assert set(vols["manufacturer"]) == {"SIEMENS", "GE"}
    assert vols.loc["file1099999.h5", "official_split"] == "test" and pd.isna(vols.loc["file1099999.h5", "target_h"])
    assert set(vols["study_level"]) == {"", "Normal for age"} and vols["pathology"].sum() == 2
    assert list(idx.skipped["file"]) == ["knee/multicoil_train/file1099998.h5"]  # the truncated file


def _assert_serves_every_task(index: pd.DataFrame | object, held_out: set[str]) -> None:
    for name in list_tasks():
        task = load_task(name)
        splits = make_splits(task, index)  # raises, saying why, when a split is empty
        for s in SPLITS:
            rows = splits[s].rows
            assert len(rows) > 0, (name, s)
            if s.startswith("test"):
                assert set(rows["official_split"]) <= held_out, (name, s, splits[s].source)
                if task.test_slices == "middle":
                    assert (rows["slice"] == rows["num_slices"] // 2).all()
        p = set(splits["train_P"].rows["file"]) | set(splits["test_P"].rows["file"])
        q = set(splits["train_Q"].rows["file"]) | set(splits["test_Q"].rows["file"])
        assert (p == q) if task.same_volumes else not (p & q), name


def test_every_task_selects_all_four_splits_on_a_fastmri_layout_root(real_root: Path) -> None:
    idx = build_index(real_root, use_cache=False)
    _assert_serves_every_task(idx, {"val"})
    for name in list_tasks():
        splits = make_splits(load_task(name), idx)
        # both kinds of folder on every side: the official split, never a hash
        assert all(set(splits[s].rows["official_split"]) == {"train"} for s in ("train_P", "train_Q")), name
        assert all(splits[s].source.startswith("official") for s in SPLITS), name


def test_every_task_selects_all_four_splits_on_the_real_metadata(metadata_index: pd.DataFrame) -> None:
    assert set(metadata_index.columns) == set(COLUMNS)
    vols = metadata_index.drop_duplicates("file")
    assert {"fastmri_knee", "fastmri_brain", "stanford_3d_sag"} <= set(vols["dataset"])
    assert (vols["study_level"] == "Normal for age").sum() >= 80
    _assert_serves_every_task(metadata_index, {"val", "test"})
    splits = make_splits(load_task("anatomy"), metadata_index)
    assert set(splits["train_P"].rows["official_split"]) == {"train"}  # fastMRI knee from multicoil_train
    ref = pd.read_csv(LH24 / "testset.csv")
    axt2 = set(ref.loc[ref["protocolName"] == "AXT2", "filename"])
    assert len(axt2) == 48 and axt2 <= set(splits["test_Q"].rows["file"])  # every AXT2 brain of their test set
    # LH24's pathology P ("Normal for age") is only labelled on validation volumes: a hash split within them
    path = make_splits(load_task("pathology"), metadata_index)
    assert path["train_P"].source.startswith("hash split within") and "val" in path["train_P"].source


def test_a_root_with_only_validation_folders_is_hash_split_and_says_so(tmp_path: Path, real_root: Path) -> None:
    import shutil

    root = tmp_path / "val-only"
    shutil.copytree(real_root / "knee" / "multicoil_val", root / "multicoil_val")
    for i, f in enumerate(sorted((real_root / "knee" / "multicoil_train").glob("file100000*.h5"))):
        shutil.copy(f, root / "multicoil_val" / f"file10001{i:02d}.h5")
    splits = make_splits(load_task("acceleration"), build_index(root, use_cache=False))
    for s in SPLITS:
        assert "hash split within" in splits[s].source and "val" in splits[s].source


def test_split_file_imports_lin_heckels_testset(real_root: Path, tmp_path: Path) -> None:
    idx = build_index(real_root)
    rows, missing = load_split_csv(LH24 / "testset.csv", idx)
    ref = pd.read_csv(LH24 / "testset.csv")
    assert ref["filename"].nunique() == 182 and set(rows["file"]) | set(missing) == set(ref["filename"])
    assert set(rows["file"]) <= set(idx.table["file"]) and len(missing) >= 180
    # the same format, listing files of this root
    csv = tmp_path / "mine.csv"
    pd.DataFrame(
        {"folderDirectory": ["/x/multicoil_val/"], "filename": ["file1000001.h5"], "start_slice": [1], "end_slice": [3]}
    ).to_csv(csv, index=False)
    rows, missing = load_split_csv(csv, build_index(real_root))
    assert list(zip(rows["file"], rows["slice"])) == [("file1000001.h5", 1), ("file1000001.h5", 2)] and not missing


# ----------------------------------------------------------------------------- the CLI


def test_tasks_check_prints_the_table_on_both_roots(real_root: Path, tmp_path: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["tasks", "check", "--data-root", str(real_root)])
    assert res.exit_code == 0, res.output
    for name in list_tasks():
        assert name in res.output
    assert "official: val folders" in res.output
    # the embedded benchmark (tiny) is served too
    from mribench.data.synthetic import generate

    generate(tmp_path / "sim", size="tiny", workers=1)
    res = runner.invoke(app, ["tasks", "check", "--data-root", str(tmp_path / "sim")])
    assert res.exit_code == 0, res.output
    assert "d22-anatomy" in res.output and "lh24-vendor" in res.output


def test_tasks_check_names_the_missing_protocol(tmp_path: Path) -> None:
    no_t2 = [v for v in BRAIN if v[1] in ("AXT1PRE", "AXFLAIR")]
    root = build_real_layout_root(tmp_path / "no-axt2", brain=no_t2)
    res = CliRunner().invoke(app, ["tasks", "check", "d22-anatomy", "--data-root", str(root)])
    assert res.exit_code == 1
    text = " ".join(res.output.split())
    assert "no volume with protocol AXT2 among volumes with dataset fastmri_brain" in text
    assert "protocol present: AXFLAIR, AXT1PRE" in text


def test_evaluate_explains_an_empty_split_instead_of_got_none(tmp_path: Path) -> None:
    root = build_real_layout_root(tmp_path / "knee-only", brain=[])
    with pytest.raises(
        DataError,
        match=r"Q: fastMRI brain AXT2 = dataset fastmri_brain, protocol AXT2\), got none: no volume with dataset fastmri_brain",
    ) as e:
        from mribench import evaluate

        evaluate("zero-filled", "anatomy", data=root, run_dir=tmp_path / "run")
    assert "dataset present: fastmri_knee, stanford_3d_sag" in str(e.value)
    res = CliRunner().invoke(
        app,
        ["evaluate", "-m", "zero-filled", "-t", "anatomy", "--data-root", str(root), "--run-dir", str(tmp_path / "r")],
    )
    assert res.exit_code != 0 and isinstance(res.exception, DataError)
    assert "dataset present: fastmri_knee" in str(res.exception) and not (tmp_path / "r").exists()


@pytest.fixture(scope="module")
def sim_tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from mribench.data.synthetic import generate

    root = tmp_path_factory.mktemp("sim") / "tiny"
    generate(root, size="tiny", workers=1)
    return root


@pytest.mark.parametrize("task", list_tasks())
def test_every_task_runs_end_to_end_on_mribench_sim(
    task: str, sim_tiny: Path, tmp_path: Path, one_thread: object
) -> None:
    """``mribench evaluate -m zero-filled -t TASK --limit 2`` on the embedded benchmark (tiny size)."""
    res = CliRunner().invoke(
        app,
        ["evaluate", "-m", "zero-filled", "-t", task, "--limit", "2", "--data-root", str(sim_tiny)]
        + ["--run-dir", str(tmp_path / "run")],
    )
    assert res.exit_code == 0, res.output
    import json

    cfg = json.loads((tmp_path / "run" / "run.json").read_text())
    assert cfg["task"]["name"] == task and cfg["splits"]["test_Q"]["source"].startswith("official")
    assert cfg["splits"]["test_Q"]["n_slices"] >= 1
    assert cfg["options"]["normalize_output"] is load_task(task).normalize_output  # LH24 coils declares it


def test_an_alias_is_printed_and_recorded(sim_tiny: Path, tmp_path: Path, one_thread: object) -> None:
    import json

    res = CliRunner().invoke(
        app,
        ["evaluate", "-m", "zero-filled", "-t", "anatomy", "--limit", "1", "--data-root", str(sim_tiny)]
        + ["--run-dir", str(tmp_path / "run")],
    )
    assert res.exit_code == 0, res.output
    assert "task anatomy = d22-anatomy v3" in res.output and "Darestani" in res.output
    cfg = json.loads((tmp_path / "run" / "run.json").read_text())
    assert cfg["task"]["name"] == "d22-anatomy" and cfg["masks"]["test_Q"]["center_lines"] == 33
    assert cfg["options"]["normalize_output"] is False
    assert "ssim_d22" in cfg["metrics"] and cfg["metric_profiles"]["ssim_d22"]["profile"] == "ssim@darestani-v1"
