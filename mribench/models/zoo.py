"""The model zoo: published models, fetched once, pinned by sha256, cached.

The table is data, ``zoo.yaml`` next to this module (name, architecture and hyper-parameters, URL,
training data, paper, source, licence). Files live in :func:`mribench.paths.models_dir`
(``<cache>/models/<name>/<file>``) and ``pins.json`` there records the sha256 of each model's file
the first time it is fetched or added (trust on first use, unless the table already names a
sha256). Later fetches and every load check the file against its pin; a changed file is refused.

Downloading happens only in :func:`fetch_model` (``mribench models fetch``), over plain HTTP(S);
loading a zoo model whose file is missing raises an error naming the URL and the commands that
provide the file (``models fetch`` online, ``models add`` for a copy obtained elsewhere).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import shutil
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from mribench.errors import ModelError
from mribench.paths import atomic_write_text, file_sha256, models_dir
from mribench.registry import suggest

ZOO_FILE = Path(__file__).resolve().with_name("zoo.yaml")
PINS = "pins.json"
_FIELDS = (
    "name",
    "arch",
    "config",
    "url",
    "file",
    "download",
    "sha256",
    "training_data",
    "paper",
    "source",
    "licence",
    "notes",
)
_REQUIRED = ("name", "arch", "config", "url", "file", "training_data", "paper", "source", "licence")

#: ``progress(done_bytes, total_bytes)``; total is 0 when the server does not say.
ByteProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class ZooEntry:
    """One published model of the zoo table.

    Attributes:
        name: the model name (``--model NAME``).
        arch: mribench architecture (see :mod:`mribench.models.architectures`).
        config: the hyper-parameters the publisher used.
        url: where the file is published.
        file: the file name it is cached under.
        download: ``http`` (``models fetch`` downloads it) or ``manual`` (the user downloads, unpacks and
            runs ``models add``).
        sha256: the file's sha256 if the table pins it, else ``None`` (pinned on first use).
        training_data, paper, source, licence, notes: what the model card says.
    """

    name: str
    arch: str
    config: dict[str, Any]
    url: str
    file: str
    training_data: str
    paper: str
    source: str
    licence: str
    download: str = "http"
    sha256: str | None = None
    notes: str = ""

    def card(self) -> dict[str, Any]:
        """The entry's descriptive fields (recorded in the model details of every result)."""
        return {
            "zoo": self.name,
            "url": self.url,
            "training_data": self.training_data,
            "paper": self.paper,
            "source": self.source,
            "licence": self.licence,
        }


def parse_zoo(data: Any, where: str = "zoo table") -> list[ZooEntry]:
    """Validate a zoo table (the parsed YAML) and return its entries.

    Raises:
        ModelError: missing or unknown fields, duplicate names, a bad ``download`` or ``sha256``.
    """
    if not isinstance(data, dict) or not isinstance(data.get("models"), list):
        raise ModelError(f"expected a mapping with a 'models' list in the {where}, got {type(data).__name__}")
    entries, seen = [], set()
    for i, raw in enumerate(data["models"]):
        if not isinstance(raw, dict):
            raise ModelError(f"expected a mapping for model {i} of the {where}, got {type(raw).__name__}")
        missing = [k for k in _REQUIRED if not raw.get(k) and k != "config"]
        unknown = sorted(set(raw) - set(_FIELDS))
        if missing or unknown or not isinstance(raw.get("config", {}), dict):
            raise ModelError(
                f"expected fields {list(_REQUIRED)} (config a mapping) for {raw.get('name', i)!r} in the {where}, "
                f"got missing {missing}, unknown {unknown}"
            )
        if raw["name"] in seen:
            raise ModelError(f"expected unique model names in the {where}, got {raw['name']!r} twice")
        if raw.get("download", "http") not in ("http", "manual"):
            raise ModelError(f"expected download 'http' or 'manual' for {raw['name']!r}, got {raw['download']!r}")
        sha = raw.get("sha256")
        if sha is not None and (not isinstance(sha, str) or len(sha) != 64):
            raise ModelError(f"expected a 64-character hex sha256 or null for {raw['name']!r}, got {sha!r}")
        seen.add(raw["name"])
        entries.append(
            ZooEntry(
                name=str(raw["name"]),
                arch=str(raw["arch"]),
                config=dict(raw.get("config") or {}),
                url=str(raw["url"]),
                file=Path(str(raw["file"])).name,
                training_data=str(raw["training_data"]),
                paper=str(raw["paper"]),
                source=str(raw["source"]),
                licence=str(raw["licence"]),
                download=str(raw.get("download", "http")),
                sha256=sha.lower() if sha else None,
                notes=" ".join(str(raw.get("notes", "")).split()),
            )
        )
    return entries


@lru_cache(maxsize=1)
def _shipped_zoo() -> tuple[ZooEntry, ...]:
    return tuple(parse_zoo(yaml.safe_load(ZOO_FILE.read_text()), ZOO_FILE.name))


def zoo_entries() -> list[ZooEntry]:
    """The published models of the shipped zoo table, in table order."""
    return list(_shipped_zoo())


def zoo_entry(name: str) -> ZooEntry:
    """The zoo entry called ``name``.

    Raises:
        ModelError: no such entry (with a did-you-mean hint).
    """
    for e in _shipped_zoo():
        if e.name == name:
            return e
    names = [e.name for e in _shipped_zoo()]
    raise ModelError(f"expected a zoo model name, got {name!r}{suggest(name, names)} (known: {', '.join(names)})")


def zoo_path(entry: ZooEntry) -> Path:
    """Where the entry's file is cached (it may not exist)."""
    return models_dir() / entry.name / entry.file


def read_pins() -> dict[str, dict[str, Any]]:
    """``{name: {"sha256", "file", "url", "how", "pinned_at"}}`` of the pinned models (``{}`` if none)."""
    path = models_dir() / PINS
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ModelError(f"expected a JSON pin file at {path}, got: {e} (hint: delete it to re-pin)") from None
    return dict(data) if isinstance(data, dict) else {}


def _write_pin(entry: ZooEntry, sha256: str, how: str) -> None:
    pins = read_pins()
    pins[entry.name] = {
        "sha256": sha256,
        "file": entry.file,
        "url": entry.url,
        "how": how,
        "pinned_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }
    atomic_write_text(models_dir() / PINS, json.dumps(pins, indent=1, sort_keys=True))


def expected_sha256(entry: ZooEntry) -> str | None:
    """The sha256 the entry's file must have: the table's, else the pin's, else ``None`` (not pinned yet)."""
    if entry.sha256:
        return entry.sha256
    pin = read_pins().get(entry.name)
    return str(pin["sha256"]) if pin and pin.get("sha256") else None


def _pin_text(entry: ZooEntry) -> str:
    pin = read_pins().get(entry.name)
    if entry.sha256:
        return "pinned by the zoo table"
    if pin:
        return f"pinned by `models {pin.get('how', 'fetch')}` on {pin.get('pinned_at', '?')}"
    return "not pinned"


def _how_to_get(entry: ZooEntry) -> str:
    add = f"`mribench models add {entry.name} FILE`"
    if entry.download == "manual":
        return f"download {entry.url} (see the zoo notes: {entry.notes or 'unpack it'}), then {add}"
    return f"run `mribench models fetch {entry.name}`, or download {entry.url} on another machine and run {add}"


def zoo_status(entry: ZooEntry) -> str:
    """``ready`` (file present; its pin is checked when it is loaded), ``not fetched`` or ``missing (pinned)``."""
    if zoo_path(entry).is_file():
        return "ready"
    return "missing (pinned)" if expected_sha256(entry) else "not fetched"


def resolve_zoo_file(entry: ZooEntry) -> tuple[Path, str]:
    """The cached file of a zoo model and its sha256, checked against its pin.

    Raises:
        ModelError: the file is missing (the message names the URL and the fetch / add commands) or
            differs from its pin.
    """
    path = zoo_path(entry)
    if not path.is_file():
        raise ModelError(
            f"expected the weights of zoo model {entry.name!r} in {path.parent}, got none (hint: {_how_to_get(entry)})"
        )
    want = expected_sha256(entry)
    got = file_sha256(path)
    if want is None:
        _write_pin(entry, got, "fetch")  # a file placed by hand: pin it now
    elif got != want:
        raise ModelError(
            f"expected {path} to have sha256 {want} ({_pin_text(entry)}), got {got} (hint: the cached file "
            f"changed; `mribench models remove {entry.name}` then fetch or add it again)"
        )
    return path, got


def _check_loads(entry: ZooEntry, path: Path) -> str:
    """Load the file as the entry's architecture and hyper-parameters; return the inferred line."""
    from mribench.models.checkpoints import load_checkpoint

    _, details = load_checkpoint(path)
    check_config(entry, details)
    return str(details.get("inferred", ""))


def check_config(entry: ZooEntry, details: dict[str, Any]) -> None:
    """Raise ModelError unless a loaded checkpoint's arch and (tensor-determined) config match the entry's."""
    if details["arch"] != entry.arch:
        raise ModelError(
            f"expected a {entry.arch} checkpoint for zoo model {entry.name!r}, got a {details['arch']} one"
        )
    differ = {
        k: (v, details["config"].get(k))
        for k, v in entry.config.items()
        if k != "drop_prob" and k in details["config"] and details["config"][k] != v
    }
    if differ:
        raise ModelError(
            f"expected {entry.name!r} weights with {entry.config}, got tensors of another shape: "
            + ", ".join(f"{k}: table {a}, file {b}" for k, (a, b) in differ.items())
        )


@dataclass(frozen=True)
class FetchResult:
    """What :func:`fetch_model` / :func:`add_model` did.

    Attributes:
        path: the cached file.
        sha256: its sha256.
        downloaded: whether bytes were downloaded (``False``: the cached file was reused).
        pinned_now: whether this call pinned the sha256 (first use).
        inferred: what loading the file inferred (empty when the cached file was reused).
    """

    path: Path
    sha256: str
    downloaded: bool
    pinned_now: bool
    inferred: str = ""


def _refuse_changed(entry: ZooEntry, where: str, got: str, want: str) -> ModelError:
    return ModelError(
        f"refusing {where} for zoo model {entry.name!r}: expected sha256 {want} ({_pin_text(entry)}), got {got} "
        f"(hint: the published file changed; if that is intended, `mribench models remove {entry.name}` "
        f"and fetch again, which pins the new file)"
    )


def _download(entry: ZooEntry, dest: Path, timeout: float, progress: ByteProgress | None) -> str:
    """Stream ``entry.url`` into ``dest`` and return its sha256."""
    h = hashlib.sha256()
    req = urllib.request.Request(entry.url, headers={"User-Agent": "mribench"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp, open(dest, "wb") as f:
            total = int(resp.headers.get("Content-Length") or 0)
            done = 0
            while chunk := resp.read(1 << 20):
                f.write(chunk)
                h.update(chunk)
                done += len(chunk)
                if progress is not None:
                    progress(done, total)
    except (urllib.error.URLError, OSError, ValueError) as e:
        dest.unlink(missing_ok=True)
        reason = getattr(e, "reason", None) or e
        raise ModelError(
            f"expected to download zoo model {entry.name!r} from {entry.url}, got: {reason} (hint: offline? on a "
            f"machine with network download {entry.url}, copy it here and run "
            f"`mribench models add {entry.name} FILE`)"
        ) from None
    return h.hexdigest()


def fetch_model(
    name: str, *, timeout: float = 60.0, progress: ByteProgress | None = None, verify_load: bool = True
) -> FetchResult:
    """Download a zoo model once, pin its sha256 on first use, and reuse the cached file afterwards.

    Args:
        name: a zoo model name.
        timeout: seconds to wait for the server (connect and each read).
        progress: ``progress(done_bytes, total_bytes)`` during the download.
        verify_load: load the downloaded file (weights only) and check its architecture and
            hyper-parameters against the table before pinning it.

    Returns:
        A :class:`FetchResult`.

    Raises:
        ModelError: a ``manual`` entry, the server is unreachable (the message names the URL and the
            ``models add`` command), the file differs from its pin, or it is not the table's model.
    """
    entry = zoo_entry(name)
    path = zoo_path(entry)
    want = expected_sha256(entry)
    if path.is_file() and want is not None and file_sha256(path) == want:
        return FetchResult(path, want, downloaded=False, pinned_now=False)
    if entry.download == "manual":
        raise ModelError(
            f"expected a file mribench can download for {name!r}, got a manual one (hint: {_how_to_get(entry)})"
        )
    if not entry.url.lower().startswith(("http://", "https://")):
        raise ModelError(f"expected an http(s) URL for zoo model {name!r}, got {entry.url!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part{os.getpid()}")
    got = _download(entry, tmp, timeout, progress)
    try:
        if want is not None and got != want:
            raise _refuse_changed(entry, f"the file downloaded from {entry.url}", got, want)
        inferred = _check_loads(entry, tmp) if verify_load else ""
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    if want is None:
        _write_pin(entry, got, "fetch")
    return FetchResult(path, got, downloaded=True, pinned_now=want is None, inferred=inferred)


def add_model(name: str, file: str | os.PathLike[str], *, verify_load: bool = True) -> FetchResult:
    """Register a zoo model's file obtained elsewhere (copied into the cache, pinned on first use).

    Args:
        name: a zoo model name.
        file: the downloaded (and unpacked) checkpoint.
        verify_load: load it (weights only) and check architecture and hyper-parameters against the table.

    Raises:
        ModelError: no such file, it differs from the model's pin, or it is not the table's model.
    """
    entry = zoo_entry(name)
    src = Path(file).expanduser()
    if not src.is_file():
        raise ModelError(f"expected a checkpoint file to add as {name!r}, got no file at {src}")
    got = file_sha256(src)
    want = expected_sha256(entry)
    if want is not None and got != want:
        raise _refuse_changed(entry, str(src), got, want)
    inferred = _check_loads(entry, src) if verify_load else ""
    path = zoo_path(entry)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part{os.getpid()}")
    shutil.copyfile(src, tmp)
    os.replace(tmp, path)
    if want is None:
        _write_pin(entry, got, "add")
    return FetchResult(path, got, downloaded=False, pinned_now=want is None, inferred=inferred)


def remove_model(name: str) -> bool:
    """Delete a zoo model's cached file and its pin. Returns whether anything was removed."""
    entry = zoo_entry(name)
    removed = False
    path = zoo_path(entry)
    if path.is_file():
        path.unlink()
        removed = True
    pins = read_pins()
    if pins.pop(name, None) is not None:
        atomic_write_text(models_dir() / PINS, json.dumps(pins, indent=1, sort_keys=True))
        removed = True
    return removed


__all__ = [
    "PINS",
    "ZOO_FILE",
    "FetchResult",
    "ZooEntry",
    "add_model",
    "check_config",
    "expected_sha256",
    "fetch_model",
    "parse_zoo",
    "read_pins",
    "remove_model",
    "resolve_zoo_file",
    "zoo_entries",
    "zoo_entry",
    "zoo_path",
    "zoo_status",
]
