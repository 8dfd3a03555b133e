"""Lower layers of lvm_core never import higher ones (DESIGN.md, "Layers of the code").

backend / random / validation / gradcheck / _jit  <  functional, families  <  ops  <  nn  <  kernels
<  models, em, train, io, variational.  Every import statement is read from the
source (module level and inside functions, absolute and relative), so a lazy
import cannot hide a wrong dependency.  lvm_core never imports data_tools.
"""
from __future__ import annotations

import ast
from pathlib import Path

import lvm_core

ROOT = Path(lvm_core.__file__).resolve().parent

RANK = {
    "backend": 0, "random": 0, "validation": 0, "gradcheck": 0, "_jit": 0,
    "metrics": 0,
    "functional": 1, "families": 1,
    "ops": 2,
    "nn": 3,
    "kernels": 4,
    "models": 5, "em": 5, "train": 5, "io": 5, "variational": 5,
}


def _module_name(path, root=ROOT):
    rel = path.relative_to(root.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return parts  # ["lvm_core", "ops", "dense"]


def _imports(path, root=ROOT):
    """Absolute dotted names of every module imported by the file at ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    here = _module_name(path, root)
    package = here if path.name == "__init__.py" else here[:-1]
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names.append(mod)
            names.extend(f"{mod}.{alias.name}" for alias in node.names)  # "from . import ops"
    return names


def _layer(dotted):
    parts = dotted.split(".")
    if parts[0] != "lvm_core" or len(parts) < 2:
        return None
    return parts[1]


def _files():
    return sorted(p for p in ROOT.rglob("*.py") if "__pycache__" not in p.parts)


def test_every_module_has_a_layer():
    for path in _files():
        parts = _module_name(path)
        if len(parts) >= 2:
            assert parts[1] in RANK, f"{path}: add {parts[1]!r} to the layer table"


def test_lower_layers_never_import_higher_ones():
    problems = []
    for path in _files():
        parts = _module_name(path)
        if len(parts) < 2:
            continue  # lvm_core/__init__.py sits on top
        rank = RANK[parts[1]]
        for name in _imports(path):
            layer = _layer(name)
            if layer in RANK and RANK[layer] > rank:
                problems.append(f"{'.'.join(parts)} (layer {parts[1]}) imports {name}")
    assert not problems, "\n".join(sorted(set(problems)))


def test_lvm_core_never_imports_data_tools_or_test_oracles():
    problems = []
    for path in _files():
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ("data_tools", "torch", "jax", "sklearn", "lvm_core_tests"):
                problems.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert not problems, "\n".join(problems)


def test_the_checker_sees_relative_and_lazy_imports(tmp_path):
    """A lazy relative import of a higher layer inside a function is found."""
    root = tmp_path / "lvm_core"
    (root / "functional").mkdir(parents=True)
    bad = root / "functional" / "bad.py"
    bad.write_text("def f():\n    from ..models import vae\n    from . import kl\n")
    names = _imports(bad, root)
    assert "lvm_core.models" in names and "lvm_core.models.vae" in names
    assert "lvm_core.functional.kl" in names
    assert max(RANK[_layer(n)] for n in names) > RANK["functional"]
