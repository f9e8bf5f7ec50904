"""Dataset conversion to the fastMRI convention, on synthetic 3D k-space built here."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from mribench.data.convert import (
    CONVERTERS,
    DEFAULT_LEVEL,
    Slices2D,
    View,
    Volume3D,
    acquired_columns,
    convert_dataset,
    convert_slices,
    convert_volume,
    fft1c,
    flip_kspace,
    ifft1c,
    read_cc359,
    read_skmtea,
    view_kspace,
    volume_scale,
)
from mribench.data.fastmri_io import read_info
from mribench.data.header import AcquisitionHeader
from mribench.errors import DataError


def _fftnc(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    for a in axes:
        x = fft1c(x, a)
    return x


def _ifftnc(x: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """Reference centred inverse FFT in double precision (numpy), independent of the code under test."""
    x = np.fft.ifftshift(x.astype(np.complex128), axes=axes)
    x = np.fft.ifftn(x, axes=axes, norm="ortho")
    return np.fft.fftshift(x, axes=axes)


def _ifft2c_np(k: np.ndarray) -> np.ndarray:
    return _ifftnc(k, (-2, -1))


def synthetic_kspace3d(shape: tuple[int, int, int] = (12, 9, 10), coils: int = 3, seed: int = 0) -> np.ndarray:
    """Centred 3D k-space (coils, kx, ky, kz) of a smooth ellipsoid phantom seen by a few coils."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, n) for n in shape], indexing="ij")
    obj = np.zeros(shape)
    for _ in range(3):
        c = rng.uniform(-0.3, 0.3, 3)
        r = rng.uniform(0.3, 0.7, 3)
        obj += rng.uniform(0.5, 1.0) * (
            (((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2) < 1
        )
    obj = obj * np.exp(1j * (0.4 * x - 0.2 * z))
    sens = np.stack(
        [
            np.exp(-((x - 0.5 * np.cos(a)) ** 2 + (y - 0.5 * np.sin(a)) ** 2)) * np.exp(1j * a)
            for a in np.linspace(0, 2 * np.pi, coils, endpoint=False)
        ]
    )
    img = sens * obj + 0.01 * (rng.standard_normal((coils, *shape)) + 1j * rng.standard_normal((coils, *shape)))
    return _fftnc(img.astype(np.complex64), (1, 2, 3)).astype(np.complex64)


def direct_targets(k3: np.ndarray, view: View, scale: float, crop: tuple[int, int]) -> np.ndarray:
    """RSS of the 3D inverse FFT, sliced along the view, flipped, trimmed and centre-cropped."""
    rss3 = np.sqrt((np.abs(_ifftnc(k3, (1, 2, 3))) ** 2).sum(0))  # (X, Y, Z)
    t = rss3.transpose(view.slice_axis, view.row_axis, view.col_axis)
    if view.flip_rows:
        t = t[:, ::-1]
    if view.flip_cols:
        t = t[:, :, ::-1]
    t = t[view.trim[0] : t.shape[0] - view.trim[1]]
    h, w = crop
    top, left = (t.shape[1] - h) // 2, (t.shape[2] - w) // 2
    return scale * t[:, top : top + h, left : left + w]


@pytest.mark.parametrize("n", [8, 9])
@pytest.mark.parametrize("axis", [-2, -1])
def test_flip_kspace_flips_the_image(n: int, axis: int) -> None:
    rng = np.random.default_rng(n)
    img = (rng.standard_normal((2, n, n + 3)) + 1j * rng.standard_normal((2, n, n + 3))).astype(np.complex64)
    img = img if axis == -2 else img.transpose(0, 2, 1).copy()
    k = _fftnc(img, (-2, -1))
    flipped = _ifft2c_np(flip_kspace(k, img.ndim + axis))
    np.testing.assert_allclose(flipped, np.flip(img, axis), atol=2e-6)
    # the naive flip of k-space is NOT the flipped image for even sizes (only its magnitude is off by a shift)
    if img.shape[axis] % 2 == 0:
        assert np.abs(_ifft2c_np(np.flip(k, axis)) - np.flip(img, axis)).max() > 1e-2


def test_fft1c_roundtrip_and_convention() -> None:
    rng = np.random.default_rng(1)
    x = (rng.standard_normal((4, 10)) + 1j * rng.standard_normal((4, 10))).astype(np.complex64)
    np.testing.assert_allclose(ifft1c(fft1c(x, 1), 1), x, atol=1e-6)
    assert fft1c(x, 1).dtype == np.complex64
    # same convention as fastmri's 2D transform applied to one axis
    import fastmri

    k2 = torch.view_as_complex(fastmri.fft2c(torch.view_as_real(torch.from_numpy(x)[None])))[0].numpy()
    np.testing.assert_allclose(fft1c(fft1c(x, 0), 1), k2, atol=1e-5)


@pytest.mark.parametrize(
    "view", [View("a", 0, 1, 2), View("b", 1, 2, 0, flip_rows=True), View("c", 2, 0, 1, flip_cols=True, trim=(2, 1))]
)
def test_view_kspace_matches_sliced_3d_reconstruction(view: View) -> None:
    k3 = synthetic_kspace3d()
    k2 = view_kspace(k3, view)
    assert k2.dtype == np.complex64
    got = np.sqrt((np.abs(_ifft2c_np(k2)) ** 2).sum(1))
    want = direct_targets(k3, view, 1.0, got.shape[-2:])
    np.testing.assert_allclose(got, want, atol=2e-5 * want.max())


def test_view_rejects_bad_axes_and_trim() -> None:
    with pytest.raises(ValueError, match="permutation"):
        View("x", 0, 0, 1)
    with pytest.raises(ValueError, match="trim"):
        view_kspace(synthetic_kspace3d(), View("x", 0, 1, 2, trim=(6, 6)))


def test_volume_scale_rule() -> None:
    rss = np.random.default_rng(0).uniform(0, 5, size=1000)
    s = volume_scale(rss, level=2e-4, percentile=99.9)
    assert np.percentile(rss * s, 99.9) == pytest.approx(2e-4, rel=1e-9)
    with pytest.raises(DataError):
        volume_scale(np.zeros(10))
    with pytest.raises(ValueError):
        volume_scale(rss, level=-1)


@pytest.fixture
def converted(tmp_path: Path) -> tuple[np.ndarray, Path, dict[str, View]]:
    k3 = synthetic_kspace3d()
    src = tmp_path / "src"
    src.mkdir()
    np.save(src / "scan01.npy", k3)
    report = convert_dataset(
        "generic3d",
        src,
        tmp_path / "out",
        recon_size=(8, 6),
        trim=(1, 1),
        metadata={"protocol": "T1_3D", "anatomy": "knee", "vendor": "ACME", "field": 3.0},
    )
    assert not report.skipped
    assert len(report.written) == 3
    views = {
        n: View(v.name, v.slice_axis, v.row_axis, v.col_axis, v.flip_rows, v.flip_cols, (1, 1))
        for n, v in CONVERTERS.get("generic3d").views.items()
    }
    return k3, tmp_path / "out", views


def test_converted_targets_match_direct_reconstruction(converted: tuple[np.ndarray, Path, dict[str, View]]) -> None:
    k3, out, views = converted
    rss3 = np.sqrt((np.abs(_ifftnc(k3, (1, 2, 3))) ** 2).sum(0))
    scale = DEFAULT_LEVEL / np.percentile(rss3, 99.9)
    for name, view in views.items():
        path = out / name / f"generic3d_scan01_{name}.h5"
        with h5py.File(path, "r") as hf:
            target = hf["reconstruction_rss"][()]
            kspace = hf["kspace"][()]
            attrs = dict(hf.attrs)
        assert attrs["scale"] == pytest.approx(scale, rel=1e-5)
        want = direct_targets(k3, view, scale, (8, 6))
        assert target.shape == want.shape and target.dtype == np.float32
        np.testing.assert_allclose(target, want, rtol=0, atol=1e-5 * want.max())
        assert attrs["max"] == pytest.approx(float(target.max()))
        # the stored k-space reconstructs the stored target (fastMRI's definition of the target)
        recon = np.sqrt((np.abs(_ifft2c_np(kspace)) ** 2).sum(1))
        top, left = (recon.shape[1] - 8) // 2, (recon.shape[2] - 6) // 2
        np.testing.assert_allclose(recon[:, top : top + 8, left : left + 6], target, atol=1e-5 * want.max())
        info = read_info(path)
        assert info.num_slices == k3.shape[1 + view.slice_axis] - 2
        assert info.header.encoded_size[:2] == kspace.shape[-2:]
        assert info.header.recon_size[:2] == (8, 6)
        assert (info.header.padding_left, info.header.padding_right) == (0, kspace.shape[-1])
        assert info.header.protocol_name == "T1_3D" and info.header.field_strength_t == 3.0
        assert info.header.receiver_channels == 3 and attrs["anatomy"] == "knee" and attrs["view"] == name


def test_converted_files_load_with_fastmri_and_index(converted: tuple[np.ndarray, Path, dict[str, View]]) -> None:
    from fastmri.data import SliceDataset

    from mribench.data.index import build_index

    _, out, _ = converted
    n = 0
    for view in ("sagittal", "coronal", "axial"):  # SliceDataset reads one folder, not recursively
        ds = SliceDataset(out / view, challenge="multicoil", use_dataset_cache=False)
        kspace, mask, target, attrs, fname, slice_num = ds[0]
        assert target.shape == (8, 6) and kspace.ndim == 3
        assert attrs["padding_left"] == 0 and attrs["padding_right"] == kspace.shape[-1]
        n += len(ds)
    assert n == (12 - 2) + (9 - 2) + (10 - 2)
    index = build_index(out, use_cache=False)
    assert len(index.table) == n and index.skipped.empty
    assert set(index.table["anatomy"]) == {"knee"}
    assert set(index.table["field"]) == {"3T"}
    assert index.table["file"].nunique() == 3


def test_acquired_columns_detected_into_the_header(tmp_path: Path) -> None:
    k3 = synthetic_kspace3d()
    view = View("axial", 2, 0, 1)
    k3[:, :, :2] = 0  # zero padding of the column axis (ky) at both ends
    k3[:, :, -1:] = 0
    (path,) = convert_volume(Volume3D("s", k3), tmp_path, [view])
    h = read_info(path).header
    assert (h.padding_left, h.padding_right) == (2, 8)
    assert acquired_columns(view_kspace(k3, view)) == (2, 8)


def test_cc359_reader_recovers_centred_kspace(tmp_path: Path) -> None:
    k3 = synthetic_kspace3d(coils=2)
    hybrid = ifft1c(k3, 1)  # x in image space
    for a in (2, 3):  # (ky, kz) with the non-centred FFT: image = plain ifft
        hybrid = np.fft.fft(ifft1c(hybrid, a), axis=a, norm="ortho")
    raw = np.zeros((*hybrid.shape[1:], 2 * hybrid.shape[0]), dtype=np.float32)
    raw[..., 0::2] = hybrid.real.transpose(1, 2, 3, 0)
    raw[..., 1::2] = hybrid.imag.transpose(1, 2, 3, 0)
    with h5py.File(tmp_path / "e1.h5", "w") as hf:
        hf["kspace"] = raw
    (vol,) = list(read_cc359(tmp_path / "e1.h5"))
    np.testing.assert_allclose(vol.kspace, k3, atol=1e-5 * np.abs(k3).max())


def test_skmtea_reader_one_volume_per_echo(tmp_path: Path) -> None:
    echoes = [synthetic_kspace3d(coils=2, seed=s) for s in (0, 1)]
    hybrid = np.stack([ifft1c(k, 1).transpose(1, 2, 3, 0) for k in echoes], axis=3)  # (x, ky, kz, E, C)
    with h5py.File(tmp_path / "MTR_001.h5", "w") as hf:
        hf["kspace"] = hybrid.astype(np.complex64)
    vols = list(read_skmtea(tmp_path / "MTR_001.h5"))
    assert [v.name for v in vols] == ["MTR_001_E1", "MTR_001_E2"]
    for v, k in zip(vols, echoes, strict=True):
        np.testing.assert_allclose(v.kspace, k, atol=1e-5 * np.abs(k).max())
    report = convert_dataset("skm-tea", tmp_path, tmp_path / "out", metadata={"field": 3.0})
    assert len(report.written) == 2 and not report.skipped
    info = read_info(report.written[0])
    assert info.header.protocol_name == "qDESS_E1" and info.header.system_vendor == "GE"
    assert info.attrs["anatomy"] == "knee"


def test_ismrmrd_reader(tmp_path: Path) -> None:
    ismrmrd = pytest.importorskip("ismrmrd")
    from mribench.data.convert import read_ismrmrd3d
    from mribench.data.header import build_header

    k3 = synthetic_kspace3d(shape=(6, 4, 3), coils=2)
    header = AcquisitionHeader(
        encoded_size=(6, 4, 3),
        recon_size=(6, 4, 3),
        enc_limits_center=2,
        enc_limits_max=3,
        protocol_name="MP2RAGE",
        system_vendor="ACME",
        field_strength_t=7.0,
        receiver_channels=2,
    )
    path = tmp_path / "sub01.h5"
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dset.write_xml_header(build_header(header))
    noise = ismrmrd.Acquisition.from_array(np.ones((2, 6), np.complex64))
    noise.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    dset.append_acquisition(noise)
    for iy in range(4):
        for iz in range(3):
            acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(k3[:, :, iy, iz]))
            acq.idx.kspace_encode_step_1 = iy
            acq.idx.kspace_encode_step_2 = iz
            dset.append_acquisition(acq)
    dset.close()
    (vol,) = list(read_ismrmrd3d(path))
    np.testing.assert_array_equal(vol.kspace, k3)
    assert vol.metadata["protocol"] == "MP2RAGE" and vol.metadata["field"] == 7.0


def _fastmri_like(path: Path, acquisition: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = np.zeros((3, 2, 16, 12), complex)
    img[:, :, 4:12, 3:9] = rng.uniform(50, 150, (3, 2, 8, 6)) * np.exp(1j * rng.uniform(0, 1, (3, 2, 8, 6)))
    k = _fftnc(img.astype(np.complex64), (-2, -1)).astype(np.complex64)
    target = np.sqrt((np.abs(img) ** 2).sum(1))[:, 2:14, 1:11].astype(np.float32)
    header = AcquisitionHeader(
        encoded_size=(16, 12, 1),
        recon_size=(12, 10, 1),
        enc_limits_center=6,
        enc_limits_max=11,
        protocol_name=acquisition,
        receiver_channels=2,
    )
    from mribench.data.fastmri_io import write_volume

    write_volume(path, k, target, header, acquisition=acquisition, patient_id=f"p{seed}")
    return img


def test_m4raw_is_rescaled_flipped_and_gre_skipped(tmp_path: Path) -> None:
    src = tmp_path / "src"
    img = _fastmri_like(src / "2022061003_T201.h5", "AXT2", 0)
    _fastmri_like(src / "2022061003_GRE01.h5", "AXGRE", 1)
    report = convert_dataset("m4raw", src, tmp_path / "out")
    assert len(report.written) == 1 and len(report.skipped) == 1 and "GRE" in report.skipped[0][1]
    path = report.written[0]
    info = read_info(path)
    assert info.header.field_strength_t == 0.3 and info.header.system_model == "Oper-0.3"
    assert info.header.recon_size[:2] == (12, 10) and info.attrs["acquisition"] == "AXT2"
    with h5py.File(path, "r") as hf:
        target, scale = hf["reconstruction_rss"][()], float(hf.attrs["scale"])
    rss = np.sqrt((np.abs(img) ** 2).sum(1))
    want = scale * np.flip(rss, axis=1)[:, 2:14, 1:11]
    np.testing.assert_allclose(target, want, atol=1e-5 * want.max())
    assert np.percentile(scale * rss, 99.9) == pytest.approx(DEFAULT_LEVEL, rel=1e-4)


def test_convert_slices_trim(tmp_path: Path) -> None:
    k = _fftnc(np.ones((4, 1, 6, 6), np.complex64), (-2, -1)).astype(np.complex64)
    path = convert_slices(Slices2D("x", k, (4, 4)), tmp_path, dataset="d", trim=(1, 2), scale=2.0)
    info = read_info(path)
    assert info.num_slices == 1 and info.attrs["scale"] == 2.0
    with pytest.raises(ValueError, match="trim"):
        convert_slices(Slices2D("x", k, (4, 4)), tmp_path, dataset="d", trim=(2, 2))


def test_registry_unknown_and_unsupported(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="did you mean 'cc359'"):
        convert_dataset("cc-359", tmp_path, tmp_path)
    with pytest.raises(DataError, match="no reader"):
        convert_dataset("stanford2d", tmp_path, tmp_path)
    with pytest.raises(DataError, match="not found"):
        convert_dataset("generic3d", tmp_path / "missing", tmp_path)
    np.save(tmp_path / "a.npy", synthetic_kspace3d())
    with pytest.raises(ValueError, match="views"):
        convert_dataset("generic3d", tmp_path / "a.npy", tmp_path / "o", views=["oblique"])
    for name in CONVERTERS.names():
        spec = CONVERTERS.get(name)
        assert spec.supported == (spec.reader is not None)
        assert spec.source and spec.licence


def test_existing_outputs_are_skipped_unless_overwrite(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", synthetic_kspace3d())
    r1 = convert_dataset("generic3d", tmp_path / "a.npy", tmp_path / "o", views=["axial"])
    mtime = r1.written[0].stat().st_mtime_ns
    r2 = convert_dataset("generic3d", tmp_path / "a.npy", tmp_path / "o", views=["axial"])
    assert r2.written == r1.written and r2.written[0].stat().st_mtime_ns == mtime
    convert_dataset("generic3d", tmp_path / "a.npy", tmp_path / "o", views=["axial"], overwrite=True)
    assert r1.written[0].stat().st_mtime_ns != mtime


def test_cli_convert_and_datasets(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mribench.cli.convert import convert_app

    np.save(tmp_path / "a.npy", synthetic_kspace3d())
    runner = CliRunner()
    res = runner.invoke(
        convert_app,
        [
            "convert",
            "generic3d",
            str(tmp_path / "a.npy"),
            str(tmp_path / "o"),
            "--view",
            "axial",
            "--trim",
            "1",
            "1",
            "--anatomy",
            "brain",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "wrote 1 file" in res.output
    assert read_info(tmp_path / "o" / "axial" / "generic3d_a_axial.h5").num_slices == 8
    res = runner.invoke(convert_app, ["convert", "nope", str(tmp_path), str(tmp_path / "o")])
    assert res.exit_code == 2
    res = runner.invoke(convert_app, ["datasets"])
    assert res.exit_code == 0 and "m4raw" in res.output and "cc359" in res.output


def _stanford_ismrmrd(path: Path, k: np.ndarray, rec_std: np.ndarray, chop_y: int) -> None:
    """An ISMRMRD file laid out as mridata.org's Stanford 3D FSE knees: one acquisition per
    (sagittal slice, phase-encoding line), read-out in image space, chopped, with rec_std."""
    ismrmrd = pytest.importorskip("ismrmrd")
    from mribench.data.header import build_header

    s, coils, nx, ny = k.shape
    header = AcquisitionHeader(
        encoded_size=(nx, ny + 2, 1),
        recon_size=(nx, ny, 1),
        enc_limits_center=(ny + 2) // 2 - 1,
        enc_limits_max=ny - 1,
        system_vendor="GE MEDICAL SYSTEMS",
        system_model="DISCOVERY MR750",
        field_strength_t=3.0,
        receiver_channels=coils,
    )
    xml = build_header(header).replace(
        "</ismrmrdHeader>",
        "  <userParameters>\n    <userParameterLong>\n      <name>ChopY</name>\n"
        f"      <value>{chop_y}</value>\n    </userParameterLong>\n  </userParameters>\n</ismrmrdHeader>",
    )
    dset = ismrmrd.Dataset(str(path), "dataset", create_if_needed=True)
    dset.write_xml_header(xml)
    dset.append_array("rec_std", rec_std.astype(np.float32))
    noise = ismrmrd.Acquisition.from_array(np.ones((coils, nx), np.complex64))
    noise.set_flag(ismrmrd.ACQ_IS_NOISE_MEASUREMENT)
    dset.append_acquisition(noise)
    for sl in range(s):
        for ky in range(ny):
            acq = ismrmrd.Acquisition.from_array(np.ascontiguousarray(k[sl, :, :, ky]))
            acq.idx.kspace_encode_step_1 = ky
            acq.idx.slice = sl
            dset.append_acquisition(acq)
    dset.close()


def test_stanford3d_converter_records_the_dataset(tmp_path: Path) -> None:
    """Lin & Heckel's / MRAugment's Stanford 3D reading: rec_std weights, ChopY sign, encoding-limit
    padding, vertical flip; the files say dataset stanford_3d_sag and index as knee."""
    pytest.importorskip("ismrmrd")
    from mribench.data.index import build_index

    rng = np.random.default_rng(0)
    s, coils, nx, ny = 4, 3, 10, 8
    k = (rng.standard_normal((s, coils, nx, ny)) + 1j * rng.standard_normal((s, coils, nx, ny))).astype(np.complex64)
    rec_std = np.array([1.0, 2.0, 4.0])
    src = tmp_path / "src" / "52c2fd53-d233-4444-8bfd-7c454240d314.h5"
    src.parent.mkdir()
    _stanford_ismrmrd(src, k, rec_std, chop_y=0)  # ChopY 0: every other line negated
    report = convert_dataset("stanford3d", src, tmp_path / "out" / "train")
    assert not report.skipped and len(report.written) == 1
    path = report.written[0]
    assert path.name == "stanford3d_52c2fd53-d233-4444-8bfd-7c454240d314_sagittal.h5"
    w = 1.0 / rec_std**2
    w = np.sqrt(w / w.sum())
    sign = (-1.0) ** np.arange(ny)
    want = np.zeros((s, coils, nx, ny + 2), np.complex64)
    want[..., 1 : 1 + ny] = w[None, :, None, None] * k * sign
    with h5py.File(path, "r") as hf:
        stored, scale, attrs = hf["kspace"][()], float(hf.attrs["scale"]), dict(hf.attrs)
    flipped = flip_kspace(want, 2)  # fastMRI orientation, exactly in k-space
    np.testing.assert_allclose(stored, scale * flipped, rtol=1e-4, atol=1e-6 * np.abs(scale * flipped).max())
    assert attrs["dataset"] == "stanford_3d_sag" and attrs["anatomy"] == "knee" and attrs["view"] == "sagittal"
    info = read_info(path)
    assert info.header.system_vendor == "GE MEDICAL SYSTEMS" and info.header.protocol_name == "3D_FSE_PDFS"
    assert (info.header.padding_left, info.header.padding_right) == (1, 1 + ny)
    vols = build_index(tmp_path / "out", use_cache=False).volumes()
    assert vols[["dataset", "anatomy", "contrast", "manufacturer", "official_split"]].values.tolist() == [
        ["stanford_3d_sag", "knee", "PDFS", "GE", "train"]
    ]
