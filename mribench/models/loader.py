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

import contextlib
import hashlib
import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeAlias

import torch

from mribench._version import __version__
from mribench.api.model import ModelInfo
from mribench.errors import ModelError
from mribench.models.builtin import ZeroFilled
from mribench.models.checkpoints import CHECKPOINT_SUFFIXES, checkpoint_identity, file_sha256, load_checkpoint
from mribench.models.identity import local_sources, object_identity
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


@contextlib.contextmanager
def _importable_neighbours(folder: Path) -> Iterator[None]:
    """Let a model file import the modules beside it: its folder is first on ``sys.path`` while it
    loads, and removed after; the neighbour modules it imported are dropped from ``sys.modules``
    again, so that a later load in the same process sees their current source (as the identity
    hash does) and two model folders with a ``utils.py`` each do not see each other's."""
    before = set(sys.modules)
    entry = str(folder)
    sys.path.insert(0, entry)
    try:
        yield
    finally:
        try:
            sys.path.remove(entry)
        except ValueError:
            pass
        for name in set(sys.modules) - before:
            f = getattr(sys.modules.get(name), "__file__", None)
            if f and Path(f).resolve().is_relative_to(folder):
                sys.modules.pop(name, None)


def _import_target(spec: str) -> tuple[Any, Path | None, dict[str, str]]:
    """The object a ``file.py:attr`` / ``module:attr`` spec names, its source file, and the model's
    own source files with their sha256 (:func:`mribench.models.identity.local_sources`)."""
    target, _, attr = spec.rpartition(":")
    if not target or not attr:
        raise ModelError(f"expected 'module:attr' or 'file.py:attr', got {spec!r}")
    source: Path | None = None
    sources: dict[str, str] = {}
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
            with _importable_neighbours(source.parent):
                module_spec.loader.exec_module(module)
        except Exception as e:  # user code: report whatever it raised
            raise ModelError(f"importing {source.name} failed: {type(e).__name__}: {e}") from e
        sources = local_sources(source, source.parent)
    else:
        try:
            module = importlib.import_module(target)
        except ImportError as e:
            raise ModelError(f"expected an importable module {target!r}, got: {e}") from None
        f = getattr(module, "__file__", None)
        source = Path(f) if f else None
        if source is not None and source.is_file():
            depth = target.count(".") + (1 if source.name == "__init__.py" else 0)
            sources = local_sources(source, source.resolve().parents[depth], package=target.split(".")[0])
    if not hasattr(module, attr):
        raise ModelError(f"expected {attr!r} in {target}, got no such attribute")
    return getattr(module, attr), source, sources


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

    A factory that accepts a ``checkpoint`` keyword receives ``--checkpoint``. A model file may
    import the modules beside it (at module level or in the factory: its folder is on
    ``sys.path`` while it loads). The identity hash covers the model's own source files (the file
    and the local modules it imports, listed with their hashes under ``details["sources"]``), the
    parameters of an ``nn.Module`` and the checkpoint file.
    """
    obj, source, sources = _import_target(spec)
    if _is_factory(obj):
        beside = source is not None and spec.rpartition(":")[0].endswith(".py")
        try:
            kwargs = (
                {"checkpoint": checkpoint} if checkpoint and "checkpoint" in inspect.signature(obj).parameters else {}
            )
            with _importable_neighbours(source.parent) if beside and source else contextlib.nullcontext():
                model = obj(**kwargs)
        except Exception as e:  # user code
            raise ModelError(f"building the model {spec} failed: {type(e).__name__}: {e}") from e
    else:
        model = obj
    if not callable(model):
        raise ModelError(f"expected a callable ReconModel from {spec}, got {type(model).__name__}")
    h = hashlib.sha256()
    for rel, digest in sources.items():  # the model's own source files (sorted by path)
        h.update(f"{rel}\0{digest}\0".encode())
    h.update(spec.encode())
    if isinstance(model, torch.nn.Module):
        for k, v in sorted(model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().contiguous().numpy().tobytes())
    if checkpoint:
        h.update(file_sha256(checkpoint).encode())
    details: dict[str, Any] = {"source": str(source) if source else None}
    if sources:
        details["sources"] = {rel: digest[:12] for rel, digest in sources.items()}
    return LoadedModel(model, ModelInfo(spec, "user", h.hexdigest(), details))


ModelLike: TypeAlias = str | os.PathLike[str] | LoadedModel | Callable[..., Any]
"""What :func:`load_model` and :func:`mribench.evaluate` accept as a model."""


def model_from_object(obj: Any, name: str | None = None) -> LoadedModel:
    """Wrap a model object in a :class:`LoadedModel` with an identity (kind ``object``).

    Args:
        obj: a callable ``obj(masked_kspace, mask, meta) -> image`` (a function, a
            ``torch.nn.Module``, any object with ``__call__``), or a class whose no-argument
            instance is one.
        name: the model's name (default: the function's or class's name).

    The identity (:func:`mribench.models.identity.object_identity`) covers the object's class or
    function source and its parameters; ``details["identity"]`` in ``run.json`` says that it is
    weaker than the hash of a model file or checkpoint.

    Raises:
        ModelError: ``obj`` is not callable, or its class cannot be built without arguments.
    """
    if inspect.isclass(obj):
        try:
            obj = obj()
        except Exception as e:  # user code
            raise ModelError(f"building the model {obj.__name__}() failed: {type(e).__name__}: {e}") from e
    if not callable(obj):
        raise ModelError(
            f"expected a model name, a path, a LoadedModel or a callable model(masked_kspace, mask, meta), "
            f"got {type(obj).__name__}"
        )
    sha, details = object_identity(obj)
    default = getattr(obj, "__name__", None) if inspect.isfunction(obj) or inspect.ismethod(obj) else None
    return LoadedModel(obj, ModelInfo(name or default or type(obj).__name__, "object", sha, details))


def load_model(name_or_path: ModelLike, checkpoint: str | None = None) -> LoadedModel:
    """Resolve a model.

    Args:
        name_or_path: a registered name (``zero-filled``, ``unet``, ``varnet``, shipped baselines,
            entry points), a checkpoint path (``str`` or ``os.PathLike``), ``package.module:attr``,
            ``path/to/file.py:attr``, a :class:`LoadedModel` (returned as it is), or a model object
            (a callable or ``torch.nn.Module``: :func:`model_from_object`).
        checkpoint: weights for ``unet``/``varnet`` (or passed to a user factory).

    Raises:
        ModelError: with a suggestion for near-miss names.
    """
    if isinstance(name_or_path, LoadedModel):
        if checkpoint:
            raise ModelError("expected no checkpoint with a loaded model, got one")
        return name_or_path
    if isinstance(name_or_path, os.PathLike):
        name_or_path = os.fspath(name_or_path)
    if not isinstance(name_or_path, str):
        if checkpoint:
            raise ModelError(
                f"expected no checkpoint with a model object, got one (hint: load the weights into the "
                f"{type(name_or_path).__name__} first)"
            )
        return model_from_object(name_or_path)
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
            head = f"expected no checkpoint for the zoo model {entry.name!r} (its weights come from the zoo), got one"
            raise ModelError(
                f"{head} (hint: load_model({entry.arch!r}, checkpoint) loads other weights of the same architecture)",
                cli=f"{head} (hint: --model {entry.arch} --checkpoint FILE loads other weights of the same architecture)",
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
