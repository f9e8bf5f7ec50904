"""Resolve a model by name, checkpoint path, ``module:attr``, ``file.py:attr`` or entry point.

Names (the :data:`MODELS` registry, in this order of registration): the built-ins ``zero-filled`` and
``cs-l1wavelet``; the architectures ``unet``, ``varnet``, ``unet-d22`` (weights from ``--checkpoint``);
the shipped checkpoints of :mod:`mribench.models.shipped`; the published models of the zoo table
(:mod:`mribench.models.zoo`: their weights come from the cache, put there by ``mribench models fetch``
or ``models add``; a missing file raises an error naming the URL and both commands); plugins of the
``mribench.models`` entry-point group. Anything else with a checkpoint suffix is a checkpoint path
(:func:`mribench.models.checkpoints.load_checkpoint` infers the architecture of bare state dicts),
and anything with a ``:`` is user code.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from mribench._version import __version__
from mribench.api.model import ModelInfo
from mribench.errors import ModelError
from mribench.models.builtin import ZeroFilled
from mribench.models.checkpoints import CHECKPOINT_SUFFIXES, checkpoint_identity, file_sha256, load_checkpoint
from mribench.models.loaded import LoadedModel
from mribench.models.shipped import shipped_baselines, shipped_path
from mribench.models.zoo import check_config, resolve_zoo_file, zoo_entries, zoo_entry
from mribench.registry import Registry

#: name -> factory(checkpoint path or None) -> LoadedModel. Plugins: entry-point group ``mribench.models``.
MODELS: Registry[Callable[[str | None], LoadedModel]] = Registry("model", ModelError, "mribench.models")


def _zero_filled(checkpoint: str | None) -> LoadedModel:
    if checkpoint:
        raise ModelError("expected no --checkpoint for zero-filled, got one")
    h = hashlib.sha256(f"zero-filled@{__version__}".encode()).hexdigest()
    return LoadedModel(
        ZeroFilled(), ModelInfo("zero-filled", "builtin", h, {"description": "RSS of the IFFT of the masked k-space"})
    )


def _cs_l1wavelet(checkpoint: str | None) -> LoadedModel:
    from mribench.models.cs import L1WaveletCS

    if checkpoint:
        raise ModelError("expected no --checkpoint for cs-l1wavelet (it has no trained weights), got one")
    model = L1WaveletCS()
    h = hashlib.sha256(f"cs-l1wavelet@{__version__}|{sorted(model.config.items())}".encode()).hexdigest()
    details = {
        "description": "l1-wavelet compressed sensing with ESPIRiT maps (sigpy L1WaveletRecon)",
        "config": model.config,
    }
    return LoadedModel(model, ModelInfo("cs-l1wavelet", "builtin", h, details))


def _arch_factory(arch: str) -> Callable[[str | None], LoadedModel]:
    def factory(checkpoint: str | None) -> LoadedModel:
        if not checkpoint:
            raise ModelError(
                f"expected --checkpoint for {arch} (a .safetensors, .pt or .ckpt state dict), got none "
                f"(hint: mribench never reports scores of randomly initialised networks)"
            )
        return load_checkpoint_model(checkpoint, name=arch, expect_arch=arch)

    return factory


MODELS.register("zero-filled", _zero_filled)
MODELS.register("cs-l1wavelet", _cs_l1wavelet)
MODELS.register("unet", _arch_factory("unet"))
MODELS.register("varnet", _arch_factory("varnet"))
MODELS.register("unet-d22", _arch_factory("unet-d22"))


def load_checkpoint_model(path: str, name: str | None = None, expect_arch: str | None = None) -> LoadedModel:
    """Load an mribench/fastMRI checkpoint as a :class:`LoadedModel`."""
    model, details = load_checkpoint(path)
    if expect_arch and details["arch"] != expect_arch:
        raise ModelError(f"expected a {expect_arch} checkpoint, got a {details['arch']} one in {Path(path).name}")
    return LoadedModel(
        model,
        ModelInfo(name or Path(path).stem, "checkpoint", checkpoint_identity(path), {**details, "path": str(path)}),
    )


def register_pretrained(name: str, path: Path, description: str = "") -> None:
    """Register a shipped checkpoint under a model name (used by the embedded baselines)."""

    def factory(checkpoint: str | None) -> LoadedModel:
        if checkpoint:
            raise ModelError(f"expected no --checkpoint for the pretrained model {name!r}, got one")
        lm = load_checkpoint_model(str(path), name=name)
        lm.info.details["description"] = description
        return lm

    MODELS.register(name, factory, overwrite=True)


def _import_target(spec: str) -> tuple[Any, Path | None]:
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ModelError(f"expected 'module:attr' or 'file.py:attr', got {spec!r}")
    source: Path | None = None
    if target.endswith(".py"):
        source = Path(target).expanduser().resolve()
        if not source.is_file():
            raise ModelError(f"expected a Python file at {source}, got none")
        mod_name = f"_mribench_user_{hashlib.sha256(str(source).encode()).hexdigest()[:8]}"
        module_spec = importlib.util.spec_from_file_location(mod_name, source)
        if module_spec is None or module_spec.loader is None:
            raise ModelError(f"expected an importable Python file, got {source}")
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[mod_name] = module
        try:
            module_spec.loader.exec_module(module)
        except Exception as e:  # user code: report whatever it raised
            raise ModelError(f"importing {source.name} failed: {type(e).__name__}: {e}") from e
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ModelError(f"expected an importable module {target!r}, got: {e}") from None
        f = getattr(module, "__file__", None)
        source = Path(f) if f else None
    if not hasattr(module, attr):
        raise ModelError(f"expected {attr!r} in {target}, got no such attribute")
    return getattr(module, attr), source


def _is_factory(obj: Any) -> bool:
    if inspect.isclass(obj):
        return True
    if not callable(obj) or isinstance(obj, torch.nn.Module):
        return False
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return False
    return all(p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params)


def load_user_model(spec: str, checkpoint: str | None = None) -> LoadedModel:
    """Load ``module:attr`` / ``file.py:attr``: a ReconModel, a class, or a zero-argument factory.

    A factory that accepts a ``checkpoint`` keyword receives ``--checkpoint``.
    """
    obj, source = _import_target(spec)
    if _is_factory(obj):
        try:
            kwargs = (
                {"checkpoint": checkpoint} if checkpoint and "checkpoint" in inspect.signature(obj).parameters else {}
            )
            model = obj(**kwargs)
        except Exception as e:  # user code
            raise ModelError(f"building the model {spec} failed: {type(e).__name__}: {e}") from e
    else:
        model = obj
    if not callable(model):
        raise ModelError(f"expected a callable ReconModel from {spec}, got {type(model).__name__}")
    h = hashlib.sha256()
    if source is not None and source.is_file():
        h.update(source.read_bytes())
    h.update(spec.encode())
    if isinstance(model, torch.nn.Module):
        for k, v in sorted(model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    if checkpoint:
        h.update(file_sha256(checkpoint).encode())
    return LoadedModel(model, ModelInfo(spec, "user", h.hexdigest(), {"source": str(source) if source else None}))


def load_model(name_or_path: str, checkpoint: str | None = None) -> LoadedModel:
    """Resolve a model.

    Args:
        name_or_path: a registered name (``zero-filled``, ``unet``, ``varnet``, shipped baselines,
            entry points), a checkpoint path, ``package.module:attr`` or ``path/to/file.py:attr``.
        checkpoint: weights for ``unet``/``varnet`` (or passed to a user factory).

    Raises:
        ModelError: with a suggestion for near-miss names.
    """
    if name_or_path in MODELS:
        return MODELS.get(name_or_path)(checkpoint)
    p = Path(name_or_path)
    if p.suffix in CHECKPOINT_SUFFIXES and ":" not in name_or_path:
        return load_checkpoint_model(name_or_path)
    if ":" in name_or_path:
        return load_user_model(name_or_path, checkpoint)
    MODELS.get(name_or_path)  # raises the did-you-mean error
    raise AssertionError("unreachable")


def list_models() -> list[str]:
    """Registered model names (built-ins, shipped baselines, plugins)."""
    return MODELS.names()


def _zoo_factory(name: str) -> Callable[[str | None], LoadedModel]:
    def factory(checkpoint: str | None) -> LoadedModel:
        entry = zoo_entry(name)  # looked up when loaded: the table is data
        if checkpoint:
            raise ModelError(
                f"expected no --checkpoint for the zoo model {entry.name!r} (its weights come from the zoo), got one "
                f"(hint: --model {entry.arch} --checkpoint FILE loads other weights of the same architecture)"
            )
        path, sha256 = resolve_zoo_file(entry)
        model, details = load_checkpoint(path)
        check_config(entry, details)
        return LoadedModel(model, ModelInfo(entry.name, "zoo", sha256, {**details, "path": str(path), **entry.card()}))

    return factory


def register_zoo() -> list[str]:
    """Register every published model of the zoo table under its name (files are resolved when loaded).

    Returns:
        The registered names.
    """
    names = []
    for e in zoo_entries():
        MODELS.register(e.name, _zoo_factory(e.name), overwrite=True)
        names.append(e.name)
    return names


def register_shipped_baselines() -> list[str]:
    """Register every shipped checkpoint of :mod:`mribench.models.shipped` under its name.

    Returns:
        The registered names.
    """
    names = []
    for e in shipped_baselines():
        path = shipped_path(e)
        if path.is_file():
            register_pretrained(e["name"], path, e.get("description", ""))
            names.append(e["name"])
    return names


register_shipped_baselines()
register_zoo()
