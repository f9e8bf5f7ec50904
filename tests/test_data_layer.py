from __future__ import annotations

from pathlib import Path

import fastmri
import h5py
import numpy as np
import pytest
from conftest import make_volume
from fastmri.data import SliceDataset
from fastmri.data.transforms import center_crop as fm_center_crop
from fastmri.data.transforms import to_tensor

from mribench.data import build_index, parse_header, read_info
from mribench.data.header import build_header
from mribench.errors import DataError

HEADER = Path(__file__).parent / "data" / "fastmri_knee_header.xml"


def test_parse_realistic_fastmri_header() -> None:
    h = parse_header(HEADER.read_text())
    assert h.encoded_size == (640, 368, 1)
    assert h.recon_size == (320, 320, 1)
    assert (h.enc_limits_center, h.enc_limits_max) == (168, 333)
    # fastmri's SliceDataset: padding_left = enc_size[1] // 2 - center; right = left + max + 1
    assert (h.padding_left, h.padding_right) == (16, 350)
    assert h.protocol_name == "CORPD_FBK"
    assert (h.system_vendor, h.system_model, h.institution_name) == ("SIEMENS", "Skyra", "NYU")
    assert h.field_strength_t == pytest.approx(2.89362)
    assert h.receiver_channels == 15
    assert h.sequence_type == "TurboSpinEcho"
    assert (h.tr_ms, h.te_ms, h.ti_ms) == (2750.0, 27.0, 100.0)


def test_header_round_trip() -> None:
    h = parse_header(HEADER.read_text())
    h2 = parse_header(build_header(h))
    assert h2 == h


def test_malformed_header_is_a_clear_error() -> None:
    with pytest.raises(DataError, match="well-formed"):
        parse_header("<ismrmrdHeader><encoding>")


def test_written_file_reads_with_fastmri_slicedataset(tmp_path: Path) -> None:
    make_volume(tmp_path, "file_knee_000", coils=3, slices=2)
    ds = SliceDataset(tmp_path, challenge="multicoil", transform=None, dataset_cache_file=tmp_path / "cache.pkl")
    assert len(ds) == 2
    kspace, mask, target, attrs, fname, slice_num = ds[1]
    assert kspace.shape == (3, 64, 40) and kspace.dtype == np.complex64
    assert attrs["padding_left"] == 2 and attrs["padding_right"] == 38
    assert attrs["recon_size"] == (32, 32, 1)
    # target == RSS of the IFFT of the full k-space, centre-cropped, as fastmri computes it
    ref = fastmri.rss(fastmri.complex_abs(fastmri.ifft2c(to_tensor(kspace))), dim=0)
    ref = fm_center_crop(ref, target.shape)
    np.testing.assert_allclose(target, ref.numpy(), rtol=1e-5, atol=1e-6 * float(target.max()))
    with h5py.File(tmp_path / "file_knee_000.h5") as hf:
        assert hf.attrs["max"] == pytest.approx(float(hf["reconstruction_rss"][()].max()))


def test_single_coil_is_rejected(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "sc.h5", "w") as hf:
        hf["kspace"] = np.zeros((2, 8, 8), np.complex64)
    with pytest.raises(DataError, match="single-coil"):
        read_info(tmp_path / "sc.h5")


def test_index_columns_and_skipped_files(tmp_path: Path) -> None:
    make_volume(tmp_path, "file_knee_a", protocol="CORPD_FBK", coils=4, slices=2)
    make_volume(tmp_path, "file_brain_b", protocol="AXFLAIR", coils=6, slices=3, field=1.494, model="Aera")
    good = (tmp_path / "file_knee_a.h5").read_bytes()
    (tmp_path / "truncated.h5").write_bytes(good[: len(good) // 3])
    (tmp_path / "notes.h5").write_text("not hdf5")
    idx = build_index(tmp_path)
    assert len(idx.table) == 5
    vols = idx.volumes().set_index("file")
    knee, brain = vols.loc["file_knee_a.h5"], vols.loc["file_brain_b.h5"]
    assert (knee.anatomy, knee.contrast, knee.field, knee.coils) == ("knee", "PD", "3T", 4)
    assert (brain.anatomy, brain.contrast, brain.field, brain.coils, brain.system_model) == (
        "brain",
        "FLAIR",
        "1.5T",
        6,
        "Aera",
    )
    assert (knee.padding_left, knee.padding_right) == (2, 38)
    skipped = dict(zip(idx.skipped["file"], idx.skipped["reason"]))
    assert set(skipped) == {"truncated.h5", "notes.h5"}
    assert all("expected" in r for r in skipped.values())


def test_index_cache_is_invalidated_when_files_change(tmp_path: Path) -> None:
    make_volume(tmp_path, "file_knee_a", slices=2)
    a = build_index(tmp_path)
    assert build_index(tmp_path).fingerprint == a.fingerprint
    make_volume(tmp_path, "file_knee_b", slices=3, seed=1)
    b = build_index(tmp_path)
    assert b.fingerprint != a.fingerprint and len(b.table) == 5


def test_missing_root_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="expected a data folder"):
        build_index(tmp_path / "nope")


def test_annotations_mark_pathology(tmp_path: Path) -> None:
    make_volume(tmp_path, "file_brain_a", protocol="AXT2", slices=3)
    (tmp_path / "annotations.csv").write_text(
        "file,slice,study_level,x,y,width,height,label\n"
        "file_brain_a,1,No,4,5,6,7,Mass\nfile_brain_a,1,No,1,1,0,3,Mass\nfile_brain_a,,Yes,,,,,Edema\n"
    )
    with pytest.warns(UserWarning, match="zero-size"):
        idx = build_index(tmp_path)
    t = idx.table.set_index("slice")
    assert bool(t.loc[1, "slice_pathology"]) and not bool(t.loc[0, "slice_pathology"])
    assert t["pathology"].all() and int(t.loc[1, "num_boxes"]) == 1


def test_read_rows_matches_h5py_for_every_storage_layout(tmp_path: Path) -> None:
    from mribench.data.fastmri_io import _raw_extent, read_rows

    rng = np.random.default_rng(0)
    k = (rng.standard_normal((4, 3, 8, 6)) + 1j * rng.standard_normal((4, 3, 8, 6))).astype(np.complex64)
    t = rng.standard_normal((4, 5, 5)).astype(np.float32)
    p = tmp_path / "layouts.h5"
    with h5py.File(p, "w") as hf:
        hf.create_dataset("contiguous", data=k)
        hf.create_dataset("chunked", data=k, chunks=(1, 3, 8, 6), compression="gzip")
        hf.create_dataset("big_endian", data=t.astype(">f4"))
        hf.create_dataset("float", data=t)
        hf.create_dataset("float64", data=t.astype(np.float64))
    with h5py.File(p, "r") as hf:
        assert _raw_extent(hf["contiguous"], np.dtype(np.complex64)) is not None  # the GIL-free path is taken
        assert _raw_extent(hf["chunked"], np.dtype(np.complex64)) is None
        assert _raw_extent(hf["big_endian"], np.dtype(np.float32)) is None
        for name, dtype in [
            ("contiguous", np.complex64),
            ("chunked", np.complex64),
            ("big_endian", np.float32),
            ("float", np.float32),
            ("float64", np.float32),
        ]:
            for rows in (slice(0, 4), slice(1, 3), slice(3, 4), slice(2, 2), [0, 2]):
                got = read_rows(hf, name, rows, np.dtype(dtype))
                want = np.asarray(hf[name][rows], dtype=dtype)
                assert got.dtype == want.dtype and got.shape == want.shape
                np.testing.assert_array_equal(got, want)


def test_index_read_again_in_one_process_is_an_independent_copy(tmp_path: Path) -> None:
    make_volume(tmp_path, "file_knee_a", slices=2)
    a = build_index(tmp_path)
    want = a.table.copy()
    a.table.loc[0, "anatomy"] = "changed by a caller"
    b = build_index(tmp_path)
    assert b.table is not a.table
    assert b.table.equals(want)
