"""Random numbers: every draw takes an explicit ``rng``.

There is no global random state in lvm_core.  Functions that need
randomness accept ``rng`` (or ``random_state``), which may be

* ``None``: fresh, unpredictable entropy;
* an ``int`` (``0`` included): a reproducible ``numpy.random.Generator``;
* a ``numpy.random.Generator`` or ``cupy.random.Generator``: used as is.

Draws are produced on the device of the arrays they feed (``like=``):
NumPy and CuPy Generators draw natively; for any other backend (e.g.
array-api-strict's simulated device) the numbers are drawn on the host with
NumPy and moved explicitly to the target device.

Gumbel draws follow g = -log(-log(u)), u ~ U(0, 1) (Gumbel 1954; used by the
Gumbel-max trick for categorical sampling, Jang et al. 2017, Maddison et al.
2017).
"""
from __future__ import annotations

import numbers

import numpy as np

from .backend import _dtype_name, asarray, get_namespace, to_numpy

__all__ = [
    "as_generator",
    "normal",
    "uniform",
    "gumbel",
    "categorical",
    "permutation",
    "integers",
]


def as_generator(seed_or_rng=None):
    """A random Generator from ``None``, an int seed or an existing Generator.

    ``as_generator(0)`` is reproducible (seed 0 is a seed, not "no seed").
    A ``numpy.random.RandomState`` is accepted and wrapped through its bit
    generator so legacy code keeps working.  Anything else raises TypeError.
    """
    if seed_or_rng is None:
        return np.random.default_rng()
    if isinstance(seed_or_rng, (bool, np.bool_)):
        raise TypeError(
            "random_state/rng must be None, an int seed or a Generator; got a bool "
            f"({seed_or_rng!r}). Pass an integer seed such as 0."
        )
    if isinstance(seed_or_rng, numbers.Integral):
        if int(seed_or_rng) < 0:
            raise ValueError(
                f"random_state/rng seed must be non-negative; got {int(seed_or_rng)}."
            )
        return np.random.default_rng(int(seed_or_rng))
    if isinstance(seed_or_rng, np.random.Generator):
        return seed_or_rng
    if isinstance(seed_or_rng, np.random.RandomState):
        return np.random.Generator(seed_or_rng._bit_generator)
    if type(seed_or_rng).__module__.startswith("cupy"):  # pragma: no cover - GPU
        return seed_or_rng
    raise TypeError(
        "random_state/rng must be None, an int seed, a numpy.random.Generator or a "
        f"cupy.random.Generator; got {type(seed_or_rng).__name__}. "
        "Use lvm_core.random.as_generator(0) for a reproducible generator."
    )


def _is_cupy_rng(rng) -> bool:
    return type(rng).__module__.startswith("cupy")


def _target(like, dtype):
    """Namespace, dtype name and whether a native draw is possible."""
    if like is None:
        xp = get_namespace()
    else:
        xp = get_namespace(like)
    if dtype is None:
        dtype = like.dtype if like is not None else "float64"
    return xp, _dtype_name(dtype)


def _draw_dtype(dt):
    return dt if dt in ("float32", "float64") else "float64"


def _deliver(values, like, dtype_name):
    if like is None:
        return values.astype(dtype_name, copy=False)
    return asarray(values, like=like, dtype=dtype_name)


def normal(rng, shape, like=None, dtype=None):
    """Standard normal draws eps ~ N(0, I) of ``shape`` on the device of ``like``.

    ``dtype`` defaults to ``like.dtype`` (float64 without ``like``); float32
    draws are generated in float32 directly (no float64 round trip on NumPy).
    """
    rng = as_generator(rng)
    _, dt = _target(like, dtype)
    values = rng.standard_normal(shape, dtype=_draw_dtype(dt))
    if _is_cupy_rng(rng):  # pragma: no cover - GPU
        return values.astype(dt, copy=False)
    return _deliver(values, like, dt)


def uniform(rng, shape, like=None, dtype=None, low=0.0, high=1.0):
    """Uniform draws u ~ U[low, high) of ``shape`` on the device of ``like``."""
    rng = as_generator(rng)
    _, dt = _target(like, dtype)
    values = rng.random(shape, dtype=_draw_dtype(dt))
    if low != 0.0 or high != 1.0:
        values = low + (high - low) * values
    if _is_cupy_rng(rng):  # pragma: no cover - GPU
        return values.astype(dt)
    return _deliver(values, like, dt)


def gumbel(rng, shape, like=None, dtype=None):
    """Standard Gumbel draws g = -log(-log u), u ~ U(0, 1), on ``like``'s device.

    ``u`` is kept inside the open interval (tiny, 1) so that g is finite.
    """
    rng = as_generator(rng)
    _, dt = _target(like, dtype)
    u = rng.random(shape)  # float64 on the generator's device
    mod = np if not _is_cupy_rng(rng) else __import__("cupy")
    u = mod.clip(u, np.finfo(np.float64).tiny, 1.0 - np.finfo(np.float64).eps)
    g = -mod.log(-mod.log(u))
    if _is_cupy_rng(rng):  # pragma: no cover - GPU
        return g.astype(dt)
    return _deliver(g, like, dt)


def categorical(rng, log_p, axis=-1):
    """Index draws from the categorical distributions with log-probabilities ``log_p``.

    Gumbel-max: argmax_k (log_p_k + g_k) with g_k iid standard Gumbel is a
    draw from Cat(softmax(log_p)).  ``log_p`` may be unnormalised; the result
    has ``log_p``'s shape without ``axis`` and lives on ``log_p``'s device.
    """
    xp = get_namespace(log_p)
    g = gumbel(rng, tuple(log_p.shape), like=log_p)
    return xp.argmax(log_p + g, axis=axis)


def permutation(rng, n, like=None):
    """A random permutation of ``range(n)`` (int64) on the device of ``like``."""
    rng = as_generator(rng)
    perm = rng.permutation(int(n))
    if like is None or _is_cupy_rng(rng):
        return perm
    return asarray(to_numpy(perm), like=like, dtype="int64")


def integers(rng, low, high, shape, like=None):
    """Integer draws in [low, high) (int64) of ``shape`` on ``like``'s device."""
    rng = as_generator(rng)
    values = rng.integers(low, high, size=shape)
    if like is None or _is_cupy_rng(rng):
        return values
    return asarray(to_numpy(values), like=like, dtype="int64")
