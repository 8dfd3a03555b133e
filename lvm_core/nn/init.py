"""Weight initialisation for affine layers.

Schemes (fan_in = d_in, fan_out = d_out):

* ``"torch"``: PyTorch's default ``nn.Linear`` initialisation,
  W, b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)) -- what kaiming_uniform with
  a = sqrt(5) reduces to (He et al. 2015);
* ``"glorot"``: W ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out)), b = 0
  (Glorot & Bengio 2010);
* ``"he"``: W ~ N(0, 2 / fan_in), b = 0 (He et al. 2015).
"""
from __future__ import annotations

import math
import numbers

from ..backend import _dtype_name, device_of, get_namespace
from ..random import as_generator, normal, uniform

__all__ = ["init_linear", "INIT_SCHEMES"]

INIT_SCHEMES = ("torch", "glorot", "he")


def init_linear(rng, d_in, d_out, scheme="torch", dtype="float32", like=None):
    """Initial W (d_in, d_out) and b (d_out,) for y = x W + b.

    ``rng``: None, an int seed or a Generator.  ``dtype``: "float32" or
    "float64" (or a dtype object); ``None`` takes ``like.dtype``.  The arrays are
    created on the namespace and device of ``like`` (NumPy when None).
    """
    for name, value in (("d_in", d_in), ("d_out", d_out)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    if scheme not in INIT_SCHEMES:
        raise ValueError(
            f"scheme must be one of {INIT_SCHEMES}; got {scheme!r}."
        )
    if dtype is None:
        dtype = like.dtype if like is not None else "float32"
    dt = _dtype_name(dtype)
    if dt not in ("float32", "float64"):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}.")
    rng = as_generator(rng)
    d_in, d_out = int(d_in), int(d_out)
    if scheme == "torch":
        bound = 1.0 / math.sqrt(d_in)
        W = uniform(rng, (d_in, d_out), like=like, dtype=dt, low=-bound, high=bound)
        b = uniform(rng, (d_out,), like=like, dtype=dt, low=-bound, high=bound)
        return W, b
    if scheme == "glorot":
        bound = math.sqrt(6.0 / (d_in + d_out))
        W = uniform(rng, (d_in, d_out), like=like, dtype=dt, low=-bound, high=bound)
    else:  # "he"
        W = math.sqrt(2.0 / d_in) * normal(rng, (d_in, d_out), like=like, dtype=dt)
    xp = get_namespace(W)
    b = xp.zeros((d_out,), dtype=W.dtype, device=device_of(W))
    return W, b
