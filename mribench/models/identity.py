"""What a user model's identity hash covers: its own source files, and for Python objects their code.

A run records the model's sha256 so that a run directory is never continued (or returned as stored)
for a model that changed. For a ``file.py:attr`` or ``module:attr`` spec the hash covers the file
and the **local modules it imports** (:func:`local_sources`: found by reading the import statements,
not by what happens to be imported in this process, so the identity is the same in every session).
For a Python object passed directly (:func:`object_identity`) there is no file to hash: the hash
covers the source of its class or function and its parameters, which is weaker (state it reads from
elsewhere, such as global variables or data files, is not covered) and is recorded as such.
"""

from __future__ import annotations

import ast
import hashlib
import inspect
import numbers
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

MAX_LOCAL_SOURCES = 500
"""At most this many local source files are followed from one model file."""

OBJECT_IDENTITY = (
    "sha256 of the object's class or function source and its parameters (state_dict, plain attributes); "
    "weaker than a file or checkpoint hash: what it reads from elsewhere (global variables, files) is not covered"
)


def _module_files(root: Path, dotted: str) -> list[Path]:
    """Files under ``root`` that importing ``dotted`` executes (packages' ``__init__.py`` included)."""
    parts = dotted.split(".")
    out: list[Path] = []
    for i in range(1, len(parts) + 1):
        base = root.joinpath(*parts[:i])
        init, mod = base / "__init__.py", base.with_suffix(".py")
        if init.is_file():
            out.append(init)
        elif mod.is_file():
            out.append(mod)
        elif not base.is_dir():  # a folder without __init__.py is a namespace package: go on
            break
    return out


def _imports(source: bytes, path: Path) -> Iterator[tuple[int, str, list[str]]]:
    """``(level, module, names)`` of every import statement of a Python file's source (any nesting)."""
    try:
        tree = ast.parse(source, filename=str(path))
    except (SyntaxError, ValueError):
        return
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield 0, alias.name, []
        elif isinstance(node, ast.ImportFrom):
            yield node.level, node.module or "", [a.name for a in node.names if a.name != "*"]


def local_sources(entry: Path, root: Path, package: str | None = None) -> dict[str, str]:
    """The model's own source files: ``entry`` and the modules under ``root`` it imports, transitively.

    Args:
        entry: the model's Python file.
        root: the folder absolute imports are resolved against (a model file's own folder; for a
            module of a package, the folder holding the package).
        package: follow absolute imports only into this top-level package (for a module spec, so
            that the other packages of a shared ``site-packages`` are not followed); None: any name
            that resolves to a file under ``root``.

    Returns:
        ``{path relative to root: sha256 of its bytes}``, sorted by path.
    """
    root = root.resolve()
    seen: dict[Path, str] = {}
    todo = [entry.resolve()]
    while todo and len(seen) < MAX_LOCAL_SOURCES:
        f = todo.pop()
        if f in seen or not f.is_file():
            continue
        source = f.read_bytes()  # read once: hashed for the identity and parsed for its imports
        seen[f] = hashlib.sha256(source).hexdigest()
        for level, module, names in _imports(source, f):
            if level:  # relative: from the importing file's package
                base = f.parent
                for _ in range(level - 1):
                    base = base.parent
                rel = base.relative_to(root) if base.is_relative_to(root) else None
                if rel is None:
                    continue
                prefix = ".".join([*rel.parts, *([module] if module else [])])
            else:
                if package is not None and module.split(".")[0] != package:
                    continue
                prefix = module
            for dotted in [prefix, *(f"{prefix}.{n}" if prefix else n for n in names)]:
                if dotted:
                    todo += [p.resolve() for p in _module_files(root, dotted)]
    return {
        str(p.relative_to(root)) if p.is_relative_to(root) else str(p): h
        for p, h in sorted(seen.items(), key=lambda kv: str(kv[0]))
    }


def _plain(value: Any, depth: int = 0) -> Any:
    """A stable, hashable description of a parameter value (None for values without one)."""
    if value is None or isinstance(value, (bool, str, numbers.Number)):
        return value
    if isinstance(value, torch.Tensor):
        t = value.detach().cpu().contiguous()
        return ("tensor", str(t.dtype), tuple(t.shape), hashlib.sha256(t.numpy().tobytes()).hexdigest())
    if hasattr(value, "dtype") and hasattr(value, "tobytes") and hasattr(value, "shape"):  # numpy arrays
        return ("array", str(value.dtype), tuple(value.shape), hashlib.sha256(value.tobytes()).hexdigest())
    if depth < 3 and isinstance(value, (list, tuple)):
        return [_plain(v, depth + 1) for v in value]
    if depth < 3 and isinstance(value, dict):
        return {str(k): _plain(v, depth + 1) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    return None  # an object without a stable description: not covered (see OBJECT_IDENTITY)


def _code_digest(code: Any) -> str:
    """A digest of a code object (bytecode, constants, names), used when no source text is available."""
    h = hashlib.sha256(code.co_code)
    for c in code.co_consts:
        h.update((_code_digest(c) if inspect.iscode(c) else repr(_plain(c))).encode())
    h.update(" ".join(code.co_names).encode())
    return h.hexdigest()


def _source(obj: Any) -> str:
    try:
        return inspect.getsource(obj)
    except (OSError, TypeError):
        code = getattr(obj, "__code__", None)
        return _code_digest(code) if code is not None else getattr(obj, "__qualname__", type(obj).__qualname__)


def object_identity(obj: Any) -> tuple[str, dict[str, Any]]:
    """The identity of a model object: ``(sha256, details)``.

    Covers, for a ``torch.nn.Module``: its class's source, its structure (``repr``) and every tensor
    of its ``state_dict``; for a function: its source (or bytecode), defaults and closure values;
    for another callable object: its class's source and its plain attributes (numbers, strings,
    tensors, arrays and lists or dicts of them).

    Returns:
        The hex digest and the details recorded with the run (``identity`` says what is covered).
    """
    h = hashlib.sha256()
    cls = obj if inspect.isfunction(obj) or inspect.ismethod(obj) else type(obj)
    qual = f"{getattr(cls, '__module__', '?')}.{getattr(cls, '__qualname__', type(obj).__name__)}"
    h.update(qual.encode())
    h.update(_source(obj.__func__ if inspect.ismethod(obj) else cls).encode())
    if isinstance(obj, torch.nn.Module):
        h.update(repr(obj).encode())
        for k, v in sorted(obj.state_dict().items()):
            h.update(k.encode())
            h.update(repr(_plain(v)).encode())
    elif inspect.isfunction(obj):
        h.update(repr(_plain(list(obj.__defaults__ or ()))).encode())
        for cell in obj.__closure__ or ():
            try:
                h.update(repr(_plain(cell.cell_contents)).encode())
            except ValueError:  # an empty cell
                pass
    else:
        attrs = getattr(obj, "__dict__", {})
        for k in sorted(attrs):
            v = attrs[k]
            h.update(k.encode())
            h.update(repr(object_identity(v)[0] if isinstance(v, torch.nn.Module) else _plain(v)).encode())
    try:
        where = inspect.getsourcefile(cls)
    except TypeError:
        where = None
    return h.hexdigest(), {"identity": OBJECT_IDENTITY, "object": qual, "source": where}


__all__ = ["MAX_LOCAL_SOURCES", "OBJECT_IDENTITY", "local_sources", "object_identity"]
