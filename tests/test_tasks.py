from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import REFERENCE

from mribench.data import build_index
from mribench.errors import TaskError
from mribench.tasks import SPLITS, list_tasks, load_split_csv, load_task, make_splits, manifest_hash, parse_task

SHIPPED = {"anatomy", "dataset", "contrast", "field", "acceleration", "coils", "pathology"}


def test_every_required_task_ships_and_validates() -> None:
    names = set(list_tasks())
    assert SHIPPED <= names
    assert {
        "anatomy-brain-knee",
        "contrast-pd-pdfs",
        "field-1.5t-3t",
        "acceleration-4x-8x",
        "acceleration-4x-3x",
    } <= names
    for n in names:
        t = load_task(n)
        assert t.version >= 1 and t.metrics and t.card.get("shift")


def test_include_variant_overrides_only_what_it_says() -> None:
    base, var = load_task("acceleration"), load_task("acceleration-4x-8x")
    assert var.source == base.source
    assert var.target.mask.acceleration == 8 and var.target.mask.cf == 0.04
    assert var.target.filter == base.target.filter
    assert load_task("anatomy-brain-knee").source.filter["anatomy"] == "brain"


def test_unknown_task_suggests_the_closest() -> None:
    with pytest.raises(TaskError, match="did you mean 'anatomy'"):
        load_task("anatomyy")


@pytest.mark.parametrize(
    "patch, match",
    [
        ({"version": 0}, "positive integer 'version'"),
        ({"sorce": {}}, "did you mean 'source'"),
        ({"source": {"filter": {"anatomie": "knee"}}}, "did you mean 'anatomy'"),
        ({"mask": {"type": "radial", "acceleration": 4}}, "mask type"),
        ({"mask": {"acceleration": 5}}, "center_fraction"),
        ({"splits": {"test_fraction": 1.5}}, "test_fraction"),
        ({"metrics": "ssim"}, "metrics"),
    ],
)
def test_invalid_tasks_are_rejected_clearly(patch: dict, match: str) -> None:
    data = {"version": 1, "source": {"filter": {"anatomy": "knee"}}, "target": {"filter": {"anatomy": "brain"}}}
    data.update(patch)
    with pytest.raises(TaskError, match=match):
        parse_task(data, "bad")


def test_splits_are_deterministic_disjoint_and_order_independent(tiny_root: Path) -> None:
    task = load_task("anatomy")
    task = parse_task(
        {**task.raw, "source": {"filter": {"anatomy": "knee"}}, "target": {"filter": {"anatomy": "brain"}}}, "t"
    )
    idx = build_index(tiny_root)
    a = make_splits(task, idx)
    shuffled = idx.table.sample(frac=1.0, random_state=np.random.RandomState(3))
    b = make_splits(task, shuffled)
    for s in SPLITS:
        assert a[s].manifest == b[s].manifest and len(a[s].rows) > 0
    files = [set(a[s].rows["file"]) for s in SPLITS]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not files[i] & files[j]
    assert a["test_P"].manifest == manifest_hash(a["test_P"].rows)
    only = make_splits(task, shuffled, names=("test_Q", "test_P"))  # what an evaluation builds
    assert set(only) == {"test_P", "test_Q"}
    for s in only:
        assert only[s].rows.equals(a[s].rows)
    with pytest.raises(ValueError, match="expected split names"):
        make_splits(task, idx, names=("test_R",))


def test_overlapping_pools_never_share_a_volume(tiny_root: Path) -> None:
    task = parse_task(
        {
            "version": 1,
            "source": {"filter": {"anatomy": "knee"}, "mask": {"acceleration": 4}},
            "target": {"filter": {"anatomy": "knee"}, "mask": {"acceleration": 2}},
        },
        "acc",
    )
    sp = make_splits(task, build_index(tiny_root))
    all_files = [f for s in SPLITS for f in set(sp[s].rows["file"])]
    assert len(all_files) == len(set(all_files)) == 8


def test_manifest_hash_is_the_sha256_of_sorted_pairs() -> None:
    import hashlib

    want = hashlib.sha256(b"a.h5\t0\na.h5\t1\nb.h5\t0").hexdigest()
    assert manifest_hash([("b.h5", 0), ("a.h5", 1), ("a.h5", 0)]) == want


def test_split_csv_import_reports_missing_files(tiny_root: Path, tmp_path: Path) -> None:
    csv = tmp_path / "split.csv"
    pd.DataFrame(
        {
            "folderDirectory": ["/x/", "/x/"],
            "filename": ["file_knee_001.h5", "file_absent.h5"],
            "start_slice": [1, 0],
            "end_slice": [3, 5],
        }
    ).to_csv(csv, index=False)
    rows, missing = load_split_csv(csv, build_index(tiny_root))
    assert list(zip(rows["file"], rows["slice"])) == [("file_knee_001.h5", 1), ("file_knee_001.h5", 2)]
    assert missing == ["file_absent.h5"]


@pytest.mark.skipif(not (REFERENCE / "testset.csv").is_file(), reason="reference split CSV not available")
def test_lin_heckel_reference_split_format_imports(tiny_root: Path) -> None:
    rows, missing = load_split_csv(REFERENCE / "testset.csv", build_index(tiny_root))
    ref = pd.read_csv(REFERENCE / "testset.csv")
    assert rows.empty and len(missing) == ref["filename"].nunique()
