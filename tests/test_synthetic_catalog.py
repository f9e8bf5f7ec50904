"""MRIBench-Sim building blocks without generating a dataset: catalog, splits, physics pieces."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from mribench.data.datasets import dataset_from_name, manufacturer
from mribench.data.index import derive_contrast, field_bucket
from mribench.data.synthetic import catalog
from mribench.data.synthetic.acquisition import band_limit, fermi_window, fft2c_np, ifft2c_np
from mribench.data.synthetic.catalog import VolumeSpec
from mribench.data.synthetic.coils import cholesky, coil_maps, noise_covariance
from mribench.data.synthetic.sites import matrix_for
from mribench.data.synthetic.tissues import (
    FIELD_3T_BRAIN,
    FIELD_15T,
    PROTOCOLS,
    draw_subject_tissues,
    inversion_recovery,
    spin_echo,
    tissue_signals,
)
from mribench.tasks import list_tasks, load_task, make_splits


def _count(**kw: object) -> int:
    return sum(all(getattr(s, k) == v for k, v in kw.items()) for s in catalog("default"))


def test_default_catalog_serves_every_shift() -> None:
    specs = catalog("default")
    assert 140 <= len(specs) <= 180 and len({s.name for s in specs}) == len(specs)
    assert _count(dataset="fastmri_knee", protocol="CORPDFS_FBK", coils=15) >= 2  # LH24 coil shift P
    assert _count(dataset="fastmri_knee", protocol="CORPD_FBK") >= 20
    assert _count(dataset="fastmri_knee", model="Aera") >= 8  # 1.5T knee (LH24 field shift)
    assert _count(dataset="stanford_3d_sag", protocol="CORPDFS_FBK") >= 20
    assert _count(protocol="AXT2", field_t=FIELD_3T_BRAIN, lesions=()) >= 10
    assert _count(protocol="AXT1PRE", lesions=()) >= 20
    for p in ("AXT1", "AXT1POST", "AXFLAIR"):
        assert _count(protocol=p, lesions=()) >= 3
    assert _count(anatomy="brain", field_t=FIELD_15T) >= 8
    assert _count(anatomy="brain", model="Avanto", coils=4) >= 4  # LH24 coil shift Q
    assert sum(s.pathology for s in specs) >= 8
    # whole organs: knees patella to posterior capsule (20-30 slices), brains 16 slices
    assert all(20 <= s.slices <= 30 for s in specs if s.anatomy == "knee")
    assert all(s.slices == 16 for s in specs if s.anatomy == "brain")
    assert {s.split for s in specs} == {"train", "val"}
    # the fastmri size: the same volumes with the scanners' real coil counts
    real = catalog("fastmri")
    assert [s.name for s in real] == [s.name for s in specs]
    assert {s.coils for s in real} >= {4, 8, 12, 15, 16, 20}


D22 = ("d22-anatomy", "d22-dataset", "d22-modality", "d22-acceleration")


def _bytes(specs: list[VolumeSpec], size: str = "default") -> int:
    total = 0
    for s in specs:
        m = matrix_for(s.site, s.anatomy, size)
        total += s.slices * (s.coils * m.kspace[0] * m.kspace[1] * 8 + m.recon[0] * m.recon[1] * 4)
    return total


def test_d22_tasks_train_in_the_papers_regime_within_the_disk_budget() -> None:
    """>= 300 training slices per side of every D22 task (issue 18), and what one task generates
    (its test volumes, or everything to train on both sides) stays within 3 GB."""
    from mribench.tasks.embedded import embedded_volumes

    by_name = {s.name: s for s in catalog("default")}
    index = _fake_index("default")
    for name in D22:
        task = load_task(name)
        splits = make_splits(task, index, names=("train_P", "train_Q"))
        for side in ("train_P", "train_Q"):
            assert len(splits[side].rows) >= 300, (name, side)
        test = [by_name[n] for n in embedded_volumes(task, ("test",))]
        full = [by_name[n] for n in embedded_volumes(task, ("test", "train_P", "train_Q"))]
        assert _bytes(test) < 1.6e9 and _bytes(full) < 3.0e9, name


def _fake_index(size: str) -> pd.DataFrame:
    """The slice index the catalog gives, from its metadata alone (no generation)."""
    rows = []
    for s in catalog(size):
        dataset = dataset_from_name(s.name) if s.dataset.startswith("fastmri") else s.dataset
        for i in range(s.slices):
            rows.append(
                {
                    "file": s.name,
                    "slice": i,
                    "num_slices": s.slices,
                    "dataset": dataset,
                    "official_split": s.split,
                    "protocol": s.protocol_name,
                    "anatomy": s.anatomy,
                    "contrast": derive_contrast(s.protocol_name),
                    "system_model": s.model,
                    "manufacturer": manufacturer(s.vendor, dataset),
                    "field": field_bucket(s.field_t),
                    "coils": s.coils,
                    "target_h": 64,
                    "study_level": "Normal for age" if dataset == "fastmri_brain" and not s.pathology else "",
                    "pathology": s.pathology,
                    "slice_pathology": s.pathology,
                }
            )
    return pd.DataFrame(rows)


@pytest.mark.parametrize("size, least", [("default", 1), ("tiny", 1)])
def test_every_task_split_gets_volumes(size: str, least: int) -> None:
    index = _fake_index(size)
    for name in list_tasks():
        splits = make_splits(load_task(name), index)
        for split in splits.values():
            assert split.rows["file"].nunique() >= least, (size, name, split.name)
            # official folders: test splits from the validation folder, train splits from training
            want = "val" if split.name.startswith("test") else "train"
            assert set(split.rows["official_split"]) == {want}, (size, name, split.name)


def test_matrices_match_the_sites() -> None:
    a = matrix_for("SITE_A", "knee", "default")
    assert a.recon == (256, 256) and a.kspace[0] == a.recon[0]  # default: no read-out oversampling
    assert a.padding_left > 0 and a.padding_right < a.kspace[1]
    assert a.enc_limits_center == a.kspace[1] // 2 - a.padding_left
    f = matrix_for("SITE_A", "knee", "fastmri")  # fastMRI's knee matrix: 640 x 368, 334 acquired, 320 targets
    assert f.recon == (320, 320) and f.kspace == (640, 368) and f.padding_right - f.padding_left == 334
    b = matrix_for("SITE_B", "knee", "default")
    assert b.kspace == b.recon and (b.padding_left, b.padding_right) == (0, b.kspace[1])
    assert matrix_for("SITE_A", "brain", "tiny").recon == (64, 64)
    assert matrix_for("SITE_A", "brain", "tiny").kspace[0] == 128
    with pytest.raises(ValueError, match="expected site"):
        matrix_for("SITE_C", "knee", "default")


def test_signal_equations() -> None:
    assert spin_echo(1.0, 1e9, 1e9, 1000, 10) == pytest.approx(0.0, abs=1e-5)
    assert spin_echo(0.8, 1000.0, 100.0, 3000.0, 20.0) == pytest.approx(0.8 * (1 - np.exp(-3)) * np.exp(-0.2))
    # FLAIR nulls a tissue with TI = T1 ln 2 (long TR)
    assert inversion_recovery(1.0, 4000.0, 2000.0, 1e6, 0.0, 4000.0 * np.log(2)) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(0)
    t15, t3 = draw_subject_tissues(rng, FIELD_15T), draw_subject_tissues(rng, FIELD_3T_BRAIN)
    assert t3["wm"].t1 > t15["wm"].t1 and t3["gm"].t1 > t15["gm"].t1  # T1 lengthens with field
    post = tissue_signals(t3, PROTOCOLS["AXT1POST"], tr=600, te=12, ti=None, fat_residual=0.1)
    pre = tissue_signals(t3, PROTOCOLS["AXT1PRE"], tr=600, te=12, ti=None, fat_residual=0.1)
    assert post["enhancing"] > 1.5 * pre["enhancing"] and post["wm"] == pre["wm"]
    fs = tissue_signals(t3, PROTOCOLS["CORPDFS_FBK"], tr=2800, te=30, ti=None, fat_residual=0.1)
    nofs = tissue_signals(t3, PROTOCOLS["CORPD_FBK"], tr=2800, te=30, ti=None, fat_residual=0.1)
    assert fs["fat"] == pytest.approx(0.1 * nofs["fat"]) and fs["muscle"] == nofs["muscle"]
    with pytest.raises(ValueError, match="field strength"):
        draw_subject_tissues(rng, 0.0)


@pytest.mark.parametrize("n", [4, 8, 15, 20])
def test_coil_maps_are_smooth_complex_bumps_with_flat_sum_of_squares(n: int) -> None:
    maps = coil_maps(n, (96, 80), 2.0, (60.0, 50.0), np.random.default_rng(n))
    assert maps.shape == (n, 96, 80) and maps.dtype == np.complex64
    np.testing.assert_allclose((np.abs(maps) ** 2).sum(0), 1.0, rtol=1e-5)
    mag = np.abs(maps)
    assert all(mag[c].max() > 2 * mag[c].min() for c in range(n))  # one bump per element
    assert np.ptp(np.angle(maps[0])) > 0.5  # complex, not real-valued
    assert np.abs(np.diff(mag, axis=-1)).max() < 0.1  # smooth


def test_noise_covariance_and_cholesky() -> None:
    cov = noise_covariance(16, 0.35, "SITE_B:x")
    np.testing.assert_allclose(cov, cov.conj().T, atol=1e-12)
    assert np.linalg.eigvalsh(cov).min() > 0 and np.mean(np.diag(cov).real) == pytest.approx(1.0)
    low = cholesky(cov)
    np.testing.assert_allclose(low @ low.conj().T, cov, atol=1e-10)
    np.testing.assert_allclose(low, np.linalg.cholesky(cov), atol=1e-10)
    np.testing.assert_array_equal(noise_covariance(16, 0.35, "SITE_B:x"), cov)  # fixed per site
    diag = noise_covariance(4, 0.0, "k")
    assert np.allclose(diag, np.diag(np.diag(diag)))  # no coupling: uncorrelated coils


def test_band_limit_keeps_amplitude_and_position() -> None:
    yy, xx = np.mgrid[-48:48, -40:40] / 12.0
    fine = np.exp(-(yy**2 + xx**2))  # smooth: band-limiting changes (almost) nothing
    coarse = band_limit(fine, (64, 54))
    assert coarse.shape == (64, 54)
    assert abs(coarse).max() == pytest.approx(1.0, rel=2e-2)
    assert np.unravel_index(np.abs(coarse).argmax(), coarse.shape) == (32, 27)
    with pytest.raises(ValueError, match="even fine grid"):
        band_limit(fine, (65, 54))


def test_centred_ffts_are_fastmri_conventions() -> None:
    import fastmri
    import torch

    x = np.random.default_rng(0).standard_normal((2, 8, 6)) + 1j * np.random.default_rng(1).standard_normal((2, 8, 6))
    ref = torch.view_as_complex(fastmri.fft2c(torch.view_as_real(torch.from_numpy(x)))).numpy()
    np.testing.assert_allclose(fft2c_np(x), ref, atol=1e-12)
    np.testing.assert_allclose(ifft2c_np(fft2c_np(x)), x, atol=1e-12)
    w = fermi_window((32, 32), 0.78, 0.05)
    assert w[16, 16] == pytest.approx(1.0, abs=1e-6) and w[0, 0] < 1e-3


def test_catalog_groups_and_names() -> None:
    specs = catalog("tiny")
    counts = Counter((s.dataset, s.split) for s in specs)
    assert counts[("stanford_3d_sag", "train")] >= 1 and counts[("stanford_3d_sag", "val")] >= 1
    assert counts[("fastmri_brain", "train")] + counts[("fastmri_brain", "val")] >= 10
    for s in specs:
        assert s.name.endswith(".h5") and s.summary()["field"] in ("1.5T", "3T")
        if s.dataset == "fastmri_brain":
            assert s.name.startswith(f"file_brain_{s.protocol}_")
        elif s.dataset == "fastmri_knee":
            assert dataset_from_name(s.name) == "fastmri_knee" and s.name[4:-3].isdigit()
        else:
            assert s.name.startswith("stanford3d_") and s.protocol_name == "3D_FSE_PDFS"
