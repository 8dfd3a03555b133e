"""Shared fixtures: the backend matrix and optional reference libraries.

Backends: NumPy and array-api-strict's simulated device ``device1`` (which,
like a GPU, refuses any conversion to NumPy), each in float32 and float64;
CuPy is added when a GPU is present.  Test ids carry the backend name
(``numpy-float32``, ``strict-device1-float64``, ...), so ``-k device1`` selects
the simulated-device runs.

Markers (registered here so the suite needs no config file):

* ``oracle``: compares with PyTorch autograd (torch is a test-time oracle only);
* ``reference``: compares with scikit-learn / hmmlearn;
* ``slow``: takes more than a few seconds.

Optional libraries are skipped when missing, unless the environment variable
``LVM_CORE_REQUIRE_OPTIONAL=1`` is set (``.ci/run`` sets it), in which case a
missing oracle fails the run instead of silently skipping it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "lvm_core",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
    derandomize=False,
)
# Under CI (CI=true) the examples are derandomized: the same inputs on every
# run, so a landing never depends on luck; locally each run explores new ones.
settings.register_profile(
    "lvm_core_ci",
    parent=settings.get_profile("lvm_core"),
    derandomize=True,
    print_blob=True,
)
settings.load_profile("lvm_core_ci" if os.environ.get("CI") else "lvm_core")


def pytest_configure(config):
    for line in (
        "oracle: compares with PyTorch autograd (needs torch)",
        "reference: compares with scikit-learn / hmmlearn",
        "slow: takes more than a few seconds",
    ):
        config.addinivalue_line("markers", line)


def require(module_name):
    """Import an optional test dependency, or skip (fail under CI's strict mode)."""
    if os.environ.get("LVM_CORE_REQUIRE_OPTIONAL") == "1":
        import importlib

        return importlib.import_module(module_name)
    return pytest.importorskip(module_name)


@dataclass(frozen=True)
class Backend:
    """One cell of the backend matrix: a namespace, a device and a dtype."""

    name: str
    dtype_name: str

    @property
    def id(self):
        return f"{self.name}-{self.dtype_name}"

    @property
    def xp(self):
        if self.name == "numpy":
            import array_api_compat.numpy as xp
        elif self.name == "strict-device1":
            import array_api_strict as xp
        else:
            import cupy as xp
        return xp

    @property
    def dtype(self):
        return getattr(self.xp, self.dtype_name)

    @property
    def device(self):
        if self.name == "strict-device1":
            import array_api_strict

            return array_api_strict.Device("device1")
        return None

    @property
    def is_numpy(self):
        return self.name == "numpy"

    @property
    def rtol(self):
        """A tolerance fitting the dtype for value comparisons."""
        return 1e-5 if self.dtype_name == "float32" else 1e-10

    def asarray(self, x, dtype=None):
        """Host data -> this backend's device, in this backend's float dtype
        (integer and boolean arrays keep their kind)."""
        x = np.asarray(x)
        if dtype is None:
            dtype = self.dtype if np.issubdtype(x.dtype, np.floating) else None
        elif isinstance(dtype, str):
            dtype = getattr(self.xp, dtype)
        if self.name == "numpy":
            return np.asarray(x, dtype=None if dtype is None else dtype)
        if self.name == "strict-device1":
            return self.xp.asarray(x, dtype=dtype, device=self.device)
        return self.xp.asarray(x, dtype=dtype)

    def to_numpy(self, x):
        from lvm_core.backend import to_numpy

        return to_numpy(x)


def _gpu_available():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


BACKEND_NAMES = ["numpy", "strict-device1"] + (["cupy"] if _gpu_available() else [])
ALL_BACKENDS = [Backend(n, d) for n in BACKEND_NAMES for d in ("float32", "float64")]


@pytest.fixture(params=ALL_BACKENDS, ids=lambda b: b.id)
def backend(request):
    """Every backend x dtype cell (numpy / strict-device1 / cupy x float32 / float64)."""
    return request.param


@pytest.fixture(params=[b for b in ALL_BACKENDS if b.dtype_name == "float64"], ids=lambda b: b.id)
def backend64(request):
    """Every backend in float64 (for tight numerical comparisons)."""
    return request.param


@pytest.fixture(params=[b for b in ALL_BACKENDS if b.dtype_name == "float32"], ids=lambda b: b.id)
def backend32(request):
    """Every backend in float32 (dtype preservation checks)."""
    return request.param
