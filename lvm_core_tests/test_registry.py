"""Every forward (and every loss with gradients) in lvm_core.functional must
have a gradient test: a test function whose name starts with ``test_grad`` in
a ``test_functional_*.py`` file that references it by name.

Functions covered: every public ``*_forward``, every ``*_log_likelihood``,
``kl_*`` and ``*_log_normalizer`` (these return their own gradients).
"""
from __future__ import annotations

import ast
import importlib
import pkgutil
from pathlib import Path

import lvm_core.functional

TEST_DIR = Path(__file__).parent


def functions_needing_gradient_tests():
    """Public names in lvm_core.functional's modules that return gradients."""
    names = set()
    for info in pkgutil.iter_modules(lvm_core.functional.__path__):
        module = importlib.import_module(f"lvm_core.functional.{info.name}")
        for name in getattr(module, "__all__", []):
            if (name.endswith("_forward") or name.endswith("_log_likelihood")
                    or name.startswith("kl_") or name.endswith("_log_normalizer")):
                names.add(name)
    return names


def names_in_gradient_tests(sources):
    """Names (identifiers, attributes, string constants) inside ``test_grad*``
    functions of the given test-module sources, and of module-level tables
    those functions read (e.g. a dict of activation pairs)."""
    found = set()
    for source in sources:
        tree = ast.parse(source)
        module_tables = {}
        for node in tree.body:
            if isinstance(node, ast.Assign):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        module_tables[target.id] = node.value
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                    node.name.startswith("test_grad"):
                used = _identifiers(node)
                found |= used
                for table in used & set(module_tables):
                    found |= _identifiers(module_tables[table])
    return found


def _identifiers(node):
    out = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name):
            out.add(sub.id)
        elif isinstance(sub, ast.Attribute):
            out.add(sub.attr)
        elif isinstance(sub, ast.Constant) and isinstance(sub.value, str):
            out.add(sub.value)
    return out


def missing_gradient_tests(required, sources):
    return sorted(set(required) - names_in_gradient_tests(sources))


def _functional_test_sources():
    return [p.read_text() for p in sorted(TEST_DIR.glob("test_functional_*.py"))]


def test_every_forward_has_a_gradient_test():
    required = functions_needing_gradient_tests()
    assert "linear_forward" in required and "kl_normal_normal" in required
    missing = missing_gradient_tests(required, _functional_test_sources())
    assert not missing, (
        f"these functions have no test_grad* test in test_functional_*.py: {missing}. "
        "Add a hypothesis gradient test (lvm_core.gradcheck) for each."
    )


def test_registry_detects_a_forward_without_gradient_test():
    """The check fails for a new forward that no gradient test references, and
    a reference outside a test_grad* function does not count."""
    sources = _functional_test_sources() + [
        "def test_values_only():\n    F.brand_new_forward(x)\n"
    ]
    required = functions_needing_gradient_tests() | {"brand_new_forward"}
    assert missing_gradient_tests(required, sources) == ["brand_new_forward"]
    sources.append("def test_grad_brand_new():\n    F.brand_new_forward(x)\n")
    assert missing_gradient_tests(required, sources) == []
