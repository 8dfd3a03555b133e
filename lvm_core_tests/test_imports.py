"""Importing lvm_core must not pull in torch, jax, tensorflow, scikit-learn,
scipy or hmmlearn (the run-time dependencies are numpy, numba, h5py and
array-api-compat only).  Checked in a fresh interpreter.

The allowed dependencies are imported first and what *they* load is the
baseline (numba itself imports scipy when scipy is installed); only modules
that importing lvm_core adds on top of that baseline count.
"""
from __future__ import annotations

import subprocess
import sys

FORBIDDEN = ["torch", "jax", "tensorflow", "sklearn", "scipy", "hmmlearn"]

SCRIPT = f"""
import importlib, pkgutil, sys
import numpy, numba, h5py, array_api_compat
forbidden = set({FORBIDDEN!r})
baseline = {{m.split('.')[0] for m in sys.modules}} & forbidden
import lvm_core
failed = []
for info in pkgutil.walk_packages(lvm_core.__path__, "lvm_core."):
    try:
        importlib.import_module(info.name)
    except Exception as exc:  # report, do not hide
        failed.append(f"{{info.name}}: {{exc!r}}")
loaded = sorted(({{m.split('.')[0] for m in sys.modules}} & forbidden) - baseline)
print("MODULES", len([m for m in sys.modules if m.startswith("lvm_core")]))
print("FORBIDDEN", ",".join(loaded))
print("FAILED", " | ".join(failed))
"""


def test_lvm_core_imports_no_heavy_or_test_only_library():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True,
                         timeout=120, check=True).stdout
    lines = dict(line.split(" ", 1) if " " in line else (line, "") for line in out.splitlines())
    assert int(lines["MODULES"]) >= 10, out
    assert lines["FORBIDDEN"].strip() == "", f"lvm_core imported {lines['FORBIDDEN']}"
    assert lines["FAILED"].strip() == "", f"modules failed to import: {lines['FAILED']}"
