from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed_in_pyproject() -> None:
    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "mribench").rglob("__init__.py")}
    assert found - {"mribench._tasks"} <= listed, f"add to pyproject packages: {sorted(found - listed)}"
    assert "mribench._tasks" in listed


def test_pyproject_declares_what_the_package_imports() -> None:
    """Every third-party top-level import in mribench/ is a declared dependency (or the stdlib)."""
    import ast

    deps = " ".join(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]).lower()
    alias = {"yaml": "pyyaml", "open_clip": "open_clip_torch", "skimage": "scikit-image", "PIL": "pillow"}
    optional = {"ismrmrd", "selenium"}  # optional extras, imported lazily with clear errors
    transitive = {"pillow"}  # torchvision / matplotlib bring it
    missing = set()
    for f in (ROOT / "mribench").rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else ([node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
            )
            for n in names:
                top = n.split(".")[0]
                if top in sys.stdlib_module_names or top in ("mribench", "__future__") or top in optional:
                    continue
                pkg = alias.get(top, top).lower()
                if pkg not in deps and pkg.replace("_", "-") not in deps and pkg not in transitive:
                    missing.add(f"{top} ({f.relative_to(ROOT)})")
    assert not missing, f"undeclared imports: {sorted(missing)}"


@pytest.mark.slow
def test_wheel_ships_tasks_and_baselines(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("mribench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"mribench/_tasks/d22-anatomy.yaml", "mribench/_tasks/_aliases.yaml", "mribench/_tasks/_lock.yaml"} <= names
    assert any(n.startswith("mribench/_baselines/") and n.endswith(".safetensors") for n in names)
    assert "mribench/models/zoo.yaml" in names
