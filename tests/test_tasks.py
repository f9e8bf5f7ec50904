from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mribench.data import build_index
from mribench.errors import DataError, TaskError
from mribench.tasks import (
    SPLITS,
    aliases,
    check_task,
    list_tasks,
    load_split_csv,
    load_task,
    make_splits,
    manifest_hash,
    parse_task,
)

D22 = {"d22-anatomy", "d22-dataset", "d22-modality", "d22-acceleration"}
LH24 = {
    "lh24-anatomy",
    "lh24-contrast",
    "lh24-field",
    "lh24-scanner",
    "lh24-vendor",
    "lh24-coils",
    "lh24-pathology",
    "lh24-acceleration",
}
ALIASES = {
    "anatomy": "d22-anatomy",
    "dataset": "d22-dataset",
    "contrast": "d22-modality",
    "acceleration": "d22-acceleration",
    "field": "lh24-field",
    "coils": "lh24-coils",
    "pathology": "lh24-pathology",
}


def test_both_families_ship_with_cards_naming_their_paper() -> None:
    assert set(list_tasks()) == D22 | LH24
    assert set(list_tasks("d22")) == D22 and set(list_tasks("lh24")) == LH24
    for n in D22 | LH24:
        t = load_task(n)
        assert t.version >= 1 and t.metrics and t.card.get("shift") and t.family == n.split("-")[0]
        assert ("Darestani" if t.family == "d22" else "Lin & Heckel") in t.card["paper"]
        assert t.card.get("table") and t.card.get("differs_from_the_paper") and t.card.get("on_the_embedded_benchmark")
        assert "exactly as" not in str(t.card).lower()  # every task card says how it differs
        assert not {"site", "origin"} & {*t.source.filter, *t.target.filter}  # real metadata only
    with pytest.raises(TaskError, match="family"):
        list_tasks("lh25")


def test_short_names_are_aliases_of_one_family() -> None:
    assert {k: v for k, v in aliases().items() if k in ALIASES} == ALIASES
    for short, full in ALIASES.items():
        t = load_task(short)
        assert t.name == full and t.alias == short and t.sha256 == load_task(full).sha256
    assert load_task("d22-anatomy").alias == ""


def test_d22_tasks_follow_the_paper() -> None:
    for n in D22:
        t = load_task(n)
        assert t.test_slices == "middle" and t.metrics[0] == "ssim_d22"
        for m in (t.source.mask, t.target.mask):
            assert m.type == "random" and m.seed_rule == "fixed" and m.center_lines in (33, 68)
    acc = load_task("acceleration")
    assert acc.same_volumes and acc.source.filter == acc.target.filter
    assert (acc.source.mask.acceleration, acc.target.mask.acceleration) == (4, 2)
    assert (acc.source.mask.center_lines, acc.target.mask.center_lines) == (33, 68)


def test_lh24_tasks_follow_the_paper() -> None:
    for n in LH24:
        t = load_task(n)
        assert t.test_slices == "all"
        for m in (t.source.mask, t.target.mask):
            assert m.type == "equispaced" and m.seed_rule == "fastmri"
    coils = load_task("coils")
    assert coils.normalize_output and coils.target_normalization == "none"
    assert coils.target.filter == {"dataset": "fastmri_brain", "system_model": "Avanto", "coils": 4}
    field = load_task("field")
    assert field.source.filter["system_model"] == ["Aera", "Avanto"]
    assert set(field.source.filter["dataset"]) == {"fastmri_knee", "fastmri_brain"}
    path = load_task("pathology")
    assert path.source.filter["study_level"] == "Normal for age" and path.target.test_filter == {
        "slice_pathology": True
    }


def test_include_variant_overrides_only_what_it_says(tmp_path: Path) -> None:
    (tmp_path / "per-volume.yaml").write_text(
        "include: d22-acceleration\nversion: 1\nsource: {mask: {seed_rule: file_hash}}\n"
    )
    base, var = load_task("d22-acceleration"), load_task(str(tmp_path / "per-volume.yaml"))
    assert var.target == base.target and var.source.filter == base.source.filter
    assert var.source.mask.seed_rule == "file_hash" and var.source.mask.center_lines == 33


def test_unknown_task_suggests_the_closest() -> None:
    with pytest.raises(TaskError, match="did you mean 'anatomy'"):
        load_task("anatomyy")
    with pytest.raises(TaskError, match="did you mean 'lh24-field'"):
        load_task("lh24-feld")


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
        ({"metrics": ["ssim", "ssim_d23"]}, "known metric names, got 'ssim_d23' \\(did you mean 'ssim_d22'"),
        ({"splits": {"test_slices": "first"}}, "test_slices"),
        ({"scoring": {"output_normalization": "minmax"}}, "output_normalization"),
        ({"family": "x99"}, "family"),
        ({"splits": {"same_volumes": True}}, "same filter on both sides"),
        ({"source": {"filter": {"site": "SITE_A"}}}, "slice-index columns"),
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
        # a flat folder has no official split: hashed, and said so
        assert a[s].source.startswith("hash split within") and "no official train/validation folders" in a[s].source
    files = [set(a[s].rows["file"]) for s in SPLITS]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not files[i] & files[j]
    assert a["test_P"].manifest == manifest_hash(a["test_P"].rows)
    assert (a["test_P"].rows["slice"] == 1).all()  # the middle slice of 3 (D22)
    only = make_splits(task, shuffled, names=("test_Q", "test_P"))  # what an evaluation builds
    assert set(only) == {"test_P", "test_Q"}
    for s in only:
        assert only[s].rows.equals(a[s].rows)
    with pytest.raises(ValueError, match="expected split names"):
        make_splits(task, idx, names=("test_R",))


def test_overlapping_pools_never_share_a_volume_unless_the_task_says_so(tiny_root: Path) -> None:
    data = {
        "version": 1,
        "source": {"filter": {"anatomy": "knee"}, "mask": {"acceleration": 4}},
        "target": {"filter": {"anatomy": "knee"}, "mask": {"acceleration": 2}},
    }
    sp = make_splits(parse_task(data, "acc"), build_index(tiny_root))
    all_files = [f for s in SPLITS for f in set(sp[s].rows["file"])]
    assert len(all_files) == len(set(all_files)) == 8
    same = make_splits(parse_task({**data, "splits": {"same_volumes": True}}, "acc"), build_index(tiny_root))
    for kind in ("train", "test"):
        assert same[f"{kind}_P"].rows.equals(same[f"{kind}_Q"].rows)


def test_an_empty_split_is_explained(tiny_root: Path) -> None:
    idx = build_index(tiny_root)
    with pytest.raises(DataError, match=r"no volume with dataset fastmri_brain.*dataset present: fastmri_knee") as e:
        make_splits(
            parse_task(
                {
                    "version": 1,
                    "source": {"filter": {"anatomy": "knee"}},
                    "target": {"filter": {"anatomy": "knee", "dataset": "fastmri_brain"}, "label": "brain"},
                },
                "t",
            ),
            idx,
        )
    assert "Q: brain" in str(e.value) and "tasks check" in str(e.value)
    check = check_task(load_task("anatomy"), idx)
    assert check.ok  # file_knee_* / file_brain_AXT2_* are fastMRI names
    check = check_task(load_task("dataset"), idx)
    assert not check.ok and check.splits["train_P"].slices == 0
    assert (
        "no volume with protocol CORPDFS_FBK among volumes with dataset fastmri_knee" in check.splits["test_P"].problem
    )
    assert "protocol present: CORPD_FBK" in check.splits["test_P"].problem


def test_the_definitions_lock_is_current_and_catches_silent_changes(tmp_path: Path) -> None:
    import yaml

    from mribench.workflows.lock import check_lock, current_lock, read_lock

    assert check_lock() == []
    lock = read_lock()
    assert lock == current_lock()
    version = lock["tasks"]["d22-anatomy"]["version"]  # the same version with another hash: a silent change
    changed = {**lock, "tasks": {**lock["tasks"], "d22-anatomy": {"version": version, "sha256": "0" * 64}}}
    changed["metric_profiles"] = {**lock["metric_profiles"], "ssim@fastmri-v1": "f" * 64}
    (tmp_path / "lock.yaml").write_text(yaml.safe_dump(changed))
    problems = check_lock(tmp_path / "lock.yaml")
    assert any("d22-anatomy changed without a version bump" in p for p in problems)
    assert any("ssim@fastmri-v1 changed its definition" in p for p in problems)


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


def test_lin_heckel_split_csv_imports(tiny_root: Path) -> None:
    lh24 = Path(__file__).parent / "data" / "lh24"
    rows, missing = load_split_csv(lh24 / "testset.csv", build_index(tiny_root))
    ref = pd.read_csv(lh24 / "testset.csv")
    assert rows.empty and len(missing) == ref["filename"].nunique()
