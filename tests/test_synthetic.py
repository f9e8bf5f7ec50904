"""MRIBench-Sim: format, physics, determinism and every shift axis, on the ``tiny`` size."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import fastmri
import h5py
import numpy as np
import pytest
import torch
from fastmri.data import SliceDataset
from fastmri.data.transforms import center_crop as fm_center_crop
from fastmri.data.transforms import to_tensor

from mribench.data import build_index, load_annotations, parse_header
from mribench.data.annotations import load_study_labels
from mribench.data.datasets import dataset_from_name
from mribench.data.header import build_header
from mribench.data.index import derive_anatomy, derive_contrast
from mribench.data.synthetic import (
    DATA_SUBDIRS,
    SIM_VERSION,
    SimManifest,
    VolumeSpec,
    catalog,
    default_root,
    ensure_synthetic,
    generate,
    verify_synthetic,
)
from mribench.data.synthetic.coils import noise_covariance
from mribench.data.synthetic.simulate import simulate_volume
from mribench.data.synthetic.sites import SITES


def _rng_states() -> tuple[Any, ...]:
    return (np.random.get_state()[1].copy(), torch.get_rng_state().clone(), random.getstate())


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The tiny dataset, generated once (in this process), plus the RNG states around it."""
    root = tmp_path_factory.mktemp("sim") / "tiny"
    np.random.seed(1234)
    torch.manual_seed(1234)
    random.seed(1234)
    before = _rng_states()
    calls: list[tuple[int, int]] = []
    manifest = generate(root, size="tiny", seed=0, workers=1, progress=lambda d, t: calls.append((d, t)))
    after = _rng_states()
    return {
        "root": root,
        "manifest": manifest,
        "before": before,
        "after": after,
        "calls": calls,
        "specs": {s.name: s for s in catalog("tiny")},
    }


def _path(root: Path, name: str) -> Path:
    (path,) = [root / sub / name for sub in DATA_SUBDIRS if (root / sub / name).is_file()]
    return path


def _read(root: Path, name: str) -> tuple[np.ndarray, np.ndarray, Any, dict[str, Any]]:
    with h5py.File(_path(root, name), "r") as hf:
        return hf["kspace"][()], hf["reconstruction_rss"][()], parse_header(hf["ismrmrd_header"][()]), dict(hf.attrs)


def _pick(specs: dict[str, VolumeSpec], **kw: Any) -> VolumeSpec:
    for s in specs.values():
        if all(getattr(s, k) == v for k, v in kw.items()):
            return s
    raise AssertionError(f"no tiny volume with {kw}")


# ----------------------------------------------------------------------------- format


def test_layout_manifest_and_progress(sim: dict[str, Any]) -> None:
    root, m = sim["root"], sim["manifest"]
    assert (root / "manifest.json").is_file() and (root / "annotations.csv").is_file()
    h5 = sorted(p.name for sub in DATA_SUBDIRS for p in (root / sub).iterdir())
    assert h5 == sorted(sim["specs"]) and all(n.endswith(".h5") for n in h5)
    for spec in sim["specs"].values():  # fastMRI's folders: the catalog says which split a volume is in
        assert (root / spec.path).is_file() and spec.path.startswith(f"multicoil_{spec.split}/")
    assert {s.split for s in sim["specs"].values()} == {"train", "val"}
    assert SimManifest.load(root) == m and m.version == SIM_VERSION and m.size == "tiny"
    assert sim["calls"][-1] == (len(h5), len(h5)) and len(sim["calls"]) == len(h5)
    assert verify_synthetic(root) == []


def test_files_load_with_fastmri_slicedataset(sim: dict[str, Any], tmp_path: Path) -> None:
    n = 0
    for sub in DATA_SUBDIRS:
        ds = SliceDataset(
            sim["root"] / sub, challenge="multicoil", transform=None, dataset_cache_file=tmp_path / f"{sub}.pkl"
        )
        n += len(ds)
    assert n == sum(s.slices for s in sim["specs"].values())
    kspace, mask, target, attrs, fname, slice_num = ds[0]
    assert kspace.ndim == 3 and np.iscomplexobj(kspace) and target.dtype == np.float32
    assert {"padding_left", "padding_right", "max", "acquisition", "patient_id"} <= set(attrs)
    assert attrs["max"] == pytest.approx(float(attrs["max"]))


def test_target_is_fastmri_rss_of_the_full_kspace(sim: dict[str, Any]) -> None:
    for name in sim["specs"]:
        kspace, target, header, attrs = _read(sim["root"], name)
        ref = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(to_tensor(kspace))), dim=1)
        ref = fm_center_crop(ref, target.shape[-2:]).numpy()
        np.testing.assert_allclose(target, ref, rtol=1e-5, atol=1e-6 * float(target.max()))
        assert kspace.dtype == np.complex64 and target.dtype == np.float32
        assert attrs["max"] == pytest.approx(float(target.max()))
        assert 1e-4 <= attrs["max"] <= 1e-3  # fastMRI multicoil intensity range
        assert (header.recon_size[0], header.recon_size[1]) == target.shape[-2:]


def test_header_round_trip_and_metadata(sim: dict[str, Any]) -> None:
    for name, spec in sim["specs"].items():
        with h5py.File(sim["root"] / spec.path, "r") as hf:
            xml = hf["ismrmrd_header"][()]
            shape = hf["kspace"].shape
            attrs = dict(hf.attrs)
        h = parse_header(xml)
        assert parse_header(build_header(h)) == h
        assert (h.protocol_name, h.system_vendor, h.system_model) == (spec.protocol_name, spec.vendor, spec.model)
        assert h.field_strength_t == pytest.approx(spec.field_t) and h.receiver_channels == spec.coils == shape[1]
        assert h.institution_name == spec.institution and h.sequence_type == "TurboSpinEcho"
        assert h.encoded_size[:2] == shape[-2:] and h.tr_ms and h.te_ms
        assert (h.ti_ms is not None) == (spec.protocol == "AXFLAIR")
        # what real files carry, nothing only MRIBench-Sim knows: fastMRI-like files are read as fastMRI's
        # (anatomy and contrast from the protocol name, dataset from the file name); the Stanford-like
        # ones carry what mribench's Stanford converter records
        assert "site" not in attrs and "pathology" not in attrs
        assert attrs["dataset"] == spec.dataset and attrs["generator"] == "MRIBench-Sim"
        assert attrs["acquisition"] == spec.protocol_name
        assert derive_contrast(h.protocol_name) == derive_contrast(spec.protocol)
        if spec.dataset.startswith("fastmri"):
            assert derive_anatomy(h.protocol_name) == spec.anatomy and "anatomy" not in attrs
            assert dataset_from_name(name) == spec.dataset
        else:
            assert attrs["anatomy"] == spec.anatomy == "knee" and attrs["view"] == "sagittal"
            assert name.startswith("stanford3d_") and name.endswith("_sagittal.h5")


def test_padding_columns_follow_the_encoding_limits(sim: dict[str, Any]) -> None:
    for name, spec in sim["specs"].items():
        kspace, target, h, _ = _read(sim["root"], name)
        left, right = h.padding_left, h.padding_right
        acquired = np.abs(kspace).sum(axis=(0, 1, 2)) > 0
        assert acquired[left:right].all() and not acquired[:left].any() and not acquired[right:].any()
        if spec.site == "SITE_A":
            assert left > 0 and right < kspace.shape[-1]  # fastMRI-like zero padding columns
        else:
            assert (left, right) == (0, kspace.shape[-1])


# ----------------------------------------------------------------------------- determinism


def test_global_rng_untouched(sim: dict[str, Any]) -> None:
    b, a = sim["before"], sim["after"]
    assert np.array_equal(b[0], a[0]) and torch.equal(b[1], a[1]) and b[2] == a[2]


def test_bit_identical_regeneration_with_other_worker_count(sim: dict[str, Any], tmp_path: Path) -> None:
    m2 = generate(tmp_path / "again", size="tiny", seed=0, workers=2)
    assert m2.files == sim["manifest"].files
    assert (tmp_path / "again" / "manifest.json").read_bytes() == (sim["root"] / "manifest.json").read_bytes()


def test_seed_changes_the_data_not_the_catalog() -> None:
    spec = catalog("tiny")[0]
    a, b = simulate_volume(spec, "tiny", 0), simulate_volume(spec, "tiny", 1)
    assert a.kspace.shape == b.kspace.shape and not np.array_equal(a.kspace, b.kspace)


# ----------------------------------------------------------------------------- shift axes


def _noise_to_signal(kspace: np.ndarray, target: np.ndarray, left: int, right: int) -> float:
    """Per-coil noise std from the outer k-space corners over the median object intensity."""
    H = kspace.shape[-2]
    ch, cw = H // 8, max((right - left) // 8, 2)
    corners = [
        kspace[..., :ch, left : left + cw],
        kspace[..., -ch:, left : left + cw],
        kspace[..., :ch, right - cw : right],
        kspace[..., -ch:, right - cw : right],
    ]
    sigma = float(np.sqrt(np.mean(np.concatenate([np.abs(c).ravel() ** 2 for c in corners]))))
    return sigma / float(np.median(target[target > 0.25 * target.max()]))


def test_field_strength_noise_is_about_twice_as_high_at_1_5t(sim: dict[str, Any]) -> None:
    ratios: dict[str, list[float]] = {"1.5T": [], "3T": []}
    for spec in sim["specs"].values():
        if spec.protocol == "AXT2" and spec.coils == 16 and not spec.pathology:
            k, t, h, _ = _read(sim["root"], spec.name)
            ratios[spec.field].append(_noise_to_signal(k, t, h.padding_left, h.padding_right))
    assert ratios["1.5T"] and ratios["3T"]
    assert 1.4 < np.mean(ratios["1.5T"]) / np.mean(ratios["3T"]) < 2.6


def _tissue_means(spec: VolumeSpec, min_fraction: float = 0.8, size: str = "tiny") -> dict[str, float]:
    v = simulate_volume(spec, size, 0, tissue_maps=True)
    assert v.tissues is not None
    out = {}
    for name, frac in v.tissues.items():
        sel = frac > min_fraction
        if sel.sum() >= 5:
            out[name] = float(v.target[sel].mean() / v.target.max())
    return out


def test_contrast_orderings_follow_the_signal_equations(sim: dict[str, Any]) -> None:
    specs = sim["specs"]
    t2 = _tissue_means(_pick(specs, protocol="AXT2", field_t=2.8936, coils=16, lesions=()))
    assert t2["csf"] > t2["gm"] > t2["wm"]
    t1 = _tissue_means(_pick(specs, protocol="AXT1"))
    assert t1["wm"] > t1["gm"] and t1["fat"] > t1["wm"]
    flair = _tissue_means(_pick(specs, protocol="AXFLAIR", lesions=()))
    assert flair["csf"] < 0.7 * flair["wm"]  # CSF nulled
    pd = _tissue_means(_pick(specs, protocol="CORPD_FBK", site="SITE_A"))
    # joint fluid is thin: a fastMRI-like PDFS knee at the default matrix (three slices through the joint)
    knee = next(s for s in catalog("default") if s.protocol == "CORPDFS_FBK" and s.site == "SITE_A")
    pdfs = _tissue_means(VolumeSpec(**{**knee.__dict__, "slices": 3}), size="default")
    assert pd["fat"] > 1.5 * pd["muscle"] and pdfs["fat"] < 0.5 * pdfs["muscle"]  # fat suppressed
    assert pdfs["fluid"] > pdfs["muscle"]


def test_t1_contrast_order_and_enhancement_at_full_resolution() -> None:
    full = next(s for s in catalog("default") if s.protocol == "AXT1PRE" and s.field_t > 2)
    spec = VolumeSpec(**{**full.__dict__, "slices": 3})  # 256x256, three slices of the 16 (time)
    pre = simulate_volume(spec, "default", 0, tissue_maps=True)
    post = simulate_volume(VolumeSpec(**{**spec.__dict__, "protocol": "AXT1POST"}), "default", 0, tissue_maps=True)
    assert pre.tissues is not None and post.tissues is not None

    def mean(v: Any, t: str) -> float:
        return float(v.target[v.tissues[t] > 0.9].mean() / v.target.max())

    assert mean(pre, "wm") > mean(pre, "gm") > mean(pre, "csf")
    assert mean(post, "enhancing") > 1.5 * mean(pre, "enhancing")  # gadolinium shortens T1


def test_coil_counts_cover_the_shift(sim: dict[str, Any]) -> None:
    coils = {s.coils for s in sim["specs"].values()}
    assert {4, 8, 12, 15, 16, 20} <= coils
    for s in sim["specs"].values():
        with h5py.File(sim["root"] / s.path, "r") as hf:
            assert hf["kspace"].shape[1] == s.coils


def test_site_b_differs_like_another_dataset(sim: dict[str, Any]) -> None:
    a = _pick(sim["specs"], site="SITE_A", anatomy="knee", protocol="CORPD_FBK")
    b = _pick(sim["specs"], site="SITE_B")
    ka, ta, ha, _ = _read(sim["root"], a.name)
    kb, tb, hb, _ = _read(sim["root"], b.name)
    assert ka.shape[-2] == 2 * ta.shape[-2]  # 2x read-out oversampling
    assert kb.shape[-2] == tb.shape[-2]  # none
    assert ta.shape != tb.shape and ha.system_vendor != hb.system_vendor and hb.system_vendor.startswith("GE")
    assert ha.encoded_fov_mm[2] > hb.encoded_fov_mm[2]  # thinner slices at site B
    assert ka.shape[1] == 15 and kb.shape[1] == 8
    # Fermi apodisation: the k-space corners are attenuated far below the edge centres
    edge = np.abs(kb[..., kb.shape[-2] // 2, -2:]).mean()
    corner = np.abs(kb[..., :2, -2:]).mean()
    assert corner < 0.2 * edge

    # different coil-noise correlation (the site's fixed covariance used for the noise)
    def coherence(spec: VolumeSpec) -> float:
        cov = noise_covariance(spec.coils, SITES[spec.site].noise_coupling, f"{spec.site}:{spec.scanner}")
        d = np.sqrt(np.diag(cov).real)
        r = np.abs(cov / np.outer(d, d))
        return float((r.sum() - np.trace(r)) / (r.size - len(r)))

    assert coherence(b) > 2 * coherence(a)


def test_lesion_boxes_lie_on_bright_abnormal_tissue(sim: dict[str, Any]) -> None:
    df = load_annotations(sim["root"] / "annotations.csv")
    study = load_study_labels(sim["root"] / "annotations.csv")
    normal = {s.name for s in sim["specs"].values() if s.dataset == "fastmri_brain" and not s.pathology}
    assert study == dict.fromkeys(normal, "Normal for age")  # fastMRI+'s study-level label
    assert list(pd_columns(sim["root"] / "annotations.csv")) == [
        "file",
        "slice",
        "study_level",
        "x",
        "y",
        "width",
        "height",
        "label",
    ]
    lesion_files = {s.name for s in sim["specs"].values() if s.pathology}
    assert set(df["file"]) == lesion_files
    assert set(df["label"]) <= {"Mass", "Nonspecific lesion", "Lacunar infarct"}
    for row in df.itertuples():
        _, target, _, attrs = _read(sim["root"], row.file)
        img = np.flipud(target[row.slice])  # fastMRI+ boxes live on the vertically flipped image
        box = img[row.y : row.y + row.height, row.x : row.x + row.width]
        assert box.size and row.y + row.height <= img.shape[0] and row.x + row.width <= img.shape[1]
        brain = img[img > 0.2 * img.max()]
        assert box.max() > np.percentile(brain, 75)
        # and on the unflipped image the same rows hold the lesion ground truth
        v = simulate_volume(sim["specs"][row.file], "tiny", 0, tissue_maps=True)
        lesion = np.flipud(v.tissues["lesion"][row.slice])  # type: ignore[index]
        assert lesion[row.y : row.y + row.height, row.x : row.x + row.width].max() > 0.5


def pd_columns(path: Path) -> list[str]:
    return path.read_text().splitlines()[0].split(",")


def test_index_sees_every_axis(sim: dict[str, Any]) -> None:
    idx = build_index(sim["root"], use_cache=False)
    vols = idx.volumes()
    assert set(vols["anatomy"]) == {"brain", "knee"}
    assert {"PD", "PDFS", "T1", "T1PRE", "T1POST", "T2", "FLAIR"} <= set(vols["contrast"])
    assert set(vols["field"]) == {"1.5T", "3T"}
    assert set(vols["dataset"]) == {"fastmri_knee", "fastmri_brain", "stanford_3d_sag"}
    assert set(vols["official_split"]) == {"train", "val"} and set(vols["origin"]) == {"synthetic"}
    assert set(vols["manufacturer"]) == {"SIEMENS", "GE"}
    assert set(vols["study_level"]) == {"", "Normal for age"}
    assert vols["pathology"].any() and not vols["pathology"].all()
    assert idx.table["slice_pathology"].any()


# ----------------------------------------------------------------------------- integrity


def test_verify_reports_changed_missing_and_unexpected_files(sim: dict[str, Any], tmp_path: Path) -> None:
    root = tmp_path / "copy"
    shutil.copytree(sim["root"], root)
    files = sorted((root / DATA_SUBDIRS[1]).iterdir())
    with open(files[0], "r+b") as f:
        f.seek(-10, 2)
        b = f.read(1)
        f.seek(-10, 2)
        f.write(bytes([b[0] ^ 0xFF]))
    files[1].unlink()
    (root / DATA_SUBDIRS[0] / "extra.h5").write_bytes(b"x")
    problems = verify_synthetic(root)
    assert any(p.startswith("changed:") and files[0].name in p for p in problems)
    assert any(p.startswith("missing:") and files[1].name in p for p in problems)
    assert any(p.startswith("unexpected:") and "extra.h5" in p for p in problems)
    assert verify_synthetic(tmp_path / "nothing") != []


def test_ensure_synthetic_generates_once_and_atomically(sim: dict[str, Any], tmp_path: Path) -> None:
    root = tmp_path / "data"
    out = ensure_synthetic("tiny", root=root)
    assert out == root and verify_synthetic(root) == []
    assert SimManifest.load(root).files == sim["manifest"].files
    mtime = (root / "manifest.json").stat().st_mtime_ns
    assert ensure_synthetic("tiny", root=root) == root and (root / "manifest.json").stat().st_mtime_ns == mtime
    # a killed generation keeps only whole, recorded volumes; the next call completes the same dataset
    dead = tmp_path / "dead"

    def boom(done: int, total: int) -> None:
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ensure_synthetic("tiny", root=dead, progress=boom)
    kept = SimManifest.load(dead).files
    assert 3 <= len([k for k in kept if k.endswith(".h5")]) < len(sim["manifest"].files) - 1
    assert all(kept[k] == sim["manifest"].files[k] for k in kept if k.endswith(".h5"))
    assert ensure_synthetic("tiny", root=dead) == dead and SimManifest.load(dead).files == sim["manifest"].files
    assert verify_synthetic(dead) == []
    # killed before any manifest was written (volume files only): regenerated, not refused
    (dead / "manifest.json").unlink()
    (dead / "annotations.csv").unlink()
    assert ensure_synthetic("tiny", root=dead) == dead and SimManifest.load(dead).files == sim["manifest"].files
    # a folder holding something else is refused, not overwritten
    other = tmp_path / "other"
    other.mkdir()
    (other / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match="expected an empty folder"):
        ensure_synthetic("tiny", root=other)
    assert (other / "mine.txt").read_text() == "keep"


def test_default_root_is_versioned_in_the_cache(sim: dict[str, Any], tmp_path: Path) -> None:
    assert default_root("tiny").parts[-2:] == ("sim", f"{SIM_VERSION}-tiny")
    assert str(default_root("default")).startswith(str(tmp_path))  # the per-test cache of conftest
    root = ensure_synthetic("tiny")
    assert root == default_root("tiny") and SimManifest.load(root).files == sim["manifest"].files
    assert [p.name for p in root.parent.iterdir()] == [root.name]  # no partial folder left behind


def test_bad_arguments_are_value_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="expected size"):
        catalog("huge")
    with pytest.raises(ValueError, match="expected size"):
        ensure_synthetic("huge", root=tmp_path / "x")
    with pytest.raises(ValueError, match="seed"):
        generate(tmp_path / "y", size="tiny", seed=-1)
    with pytest.raises(ValueError, match="workers"):
        generate(tmp_path / "z", size="tiny", workers=0)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "a").write_text("a")
    with pytest.raises(ValueError, match="empty folder"):
        generate(tmp_path / "full", size="tiny")


def test_partial_generation_is_byte_identical_and_grows(sim: dict[str, Any], tmp_path: Path) -> None:
    """Only the volumes a job needs are generated; each equals the same file of a full generation,
    later jobs add theirs to the same folder, and a complete folder equals a full generation."""
    from mribench.tasks import load_task, make_splits
    from mribench.tasks.embedded import embedded_volumes

    task = load_task("d22-anatomy")
    need = embedded_volumes(task, ("test",), size="tiny")
    root = ensure_synthetic("tiny", root=tmp_path / "part", volumes=need)
    files = SimManifest.load(root).files
    assert sorted(k.split("/")[-1] for k in files if k.endswith(".h5")) == sorted(need)
    assert all(files[k] == sim["manifest"].files[k] for k in files if k.endswith(".h5"))
    # the test splits are those of the full dataset (official folders on both sides)
    full = make_splits(task, build_index(sim["root"]), names=("test_P", "test_Q"))
    part = make_splits(task, build_index(root), names=("test_P", "test_Q"))
    for name in ("test_P", "test_Q"):
        assert part[name].rows["file"].tolist() == full[name].rows["file"].tolist()
    # a training job adds its side; everything else later gives the full dataset
    more = embedded_volumes(task, ("test", "train_P"), size="tiny")
    assert set(need) <= set(more) and len(more) < len(sim["specs"])
    ensure_synthetic("tiny", root=root, volumes=more)
    assert len(SimManifest.load(root).files) == len(more) + 1  # + annotations.csv
    ensure_synthetic("tiny", root=root)
    assert SimManifest.load(root).files == sim["manifest"].files and verify_synthetic(root) == []
    with pytest.raises(ValueError, match="unknown"):
        ensure_synthetic("tiny", root=root, volumes=["file_nothing.h5"])


def test_catalog_table_predicts_the_slice_index(sim: dict[str, Any]) -> None:
    """The volume-level index columns predicted from the catalog equal those read from the files."""
    from mribench.data.synthetic.plan import VOLUME_COLUMNS, catalog_table

    index = build_index(sim["root"]).table
    got = index.drop_duplicates("file").set_index("file").sort_index()
    pred = catalog_table("tiny").set_index("file").sort_index()
    assert list(got.index) == list(pred.index)
    for col in VOLUME_COLUMNS[1:]:
        if col in got.columns:
            a, b = got[col].tolist(), pred[col].tolist()
            assert [str(x) for x in a] == [str(x) for x in b], col


def test_cli_generates_the_volumes_of_a_task(sim: dict[str, Any], tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mribench.cli.app import app
    from mribench.tasks import load_task
    from mribench.tasks.embedded import embedded_volumes

    root = tmp_path / "cli"
    res = CliRunner().invoke(app, ["data", "generate", "--size", "tiny", "--root", str(root), "--task", "d22-modality"])
    assert res.exit_code == 0, res.output
    want = embedded_volumes(load_task("d22-modality"), ("test", "train_P", "train_Q"), size="tiny")
    got = sorted(p.name for sub in DATA_SUBDIRS for p in (root / sub).glob("*.h5"))
    assert got == sorted(want)
    res = CliRunner().invoke(app, ["data", "verify", "--root", str(root)])
    assert res.exit_code == 0, res.output


def test_knee_line_networks_are_strengthened_exactly() -> None:
    """3.2's knees: strengthen_lines adds (gain - 1) times the network term of tissue_modulation, and only
    to tissues that have a network."""
    from mribench.data.synthetic import texture

    rng = np.random.default_rng(3)
    fields = texture.texture_fields(rng, (48, 48), 0.5)
    for tissue, net in (("marrow", "trabecular"), ("fat", "septa"), ("muscle", "septa")):
        base = texture.tissue_modulation(fields, tissue, 0.5)
        assert base is not None
        out = texture.strengthen_lines(base, fields, tissue, 0.5, 3.0)
        expected = base.astype(np.float64) + 2.0 * texture.TEXTURES[tissue].septa * 0.5 * fields[net]
        assert out.dtype == np.float32 and np.abs(out - np.maximum(expected, 0.05)).max() < 1e-6
        assert texture.strengthen_lines(base, fields, tissue, 0.5, 1.0) is base
    flat = texture.tissue_modulation(fields, "cartilage", 0.5)
    assert flat is not None and texture.strengthen_lines(flat, fields, "cartilage", 0.5, 3.0) is flat


def test_sulcal_field_runs_from_the_surface_inwards() -> None:
    """3.2's brains: the sulcal field varies along the arc and slowly along the radius, so its zero
    crossings (the clefts) run radially; the ribbon is cut off below the sulcal depth."""
    from mribench.data.synthetic.anatomy_brain import SULCUS_DEPTH_MM, _radial_folds

    n, px = 160, 1.0
    yy, xx = np.mgrid[0:n, 0:n] - (n - 1) / 2
    r = np.hypot(yy, xx)
    gm = ((r > 50) & (r < 65)).astype(np.float32)
    wm = (r <= 50).astype(np.float32)
    fold, ribbon = _radial_folds(np.random.default_rng(0), gm, wm, np.ones_like(gm), px)
    assert fold.shape == gm.shape and fold.dtype == np.float32
    gy, gx = np.gradient(fold.astype(np.float64))
    ring = (r > 40) & (r < 64)
    radial = (gy * yy + gx * xx) / np.maximum(r, 1e-6)  # derivative along the radius
    along_arc = (gx * yy - gy * xx) / np.maximum(r, 1e-6)  # ... and along the arc
    assert np.mean(along_arc[ring] ** 2) > 10 * np.mean(radial[ring] ** 2)
    assert ribbon[r < 64 - SULCUS_DEPTH_MM - 1].max() == 0 and ribbon[(r > 60) & (r < 64)].min() == 1
