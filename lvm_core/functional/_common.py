"""Small private helpers shared by the functional modules.

Broadcasting rule used throughout (NumPy / array API broadcasting): when an
input ``a`` of shape ``s`` was broadcast against others in the forward pass,
its gradient is the upstream gradient summed over the broadcast axes,

    da = sum_{broadcast axes} dout,    reshaped to s,

so every gradient has the shape of its input.
"""
from __future__ import annotations

import numbers

import numpy as np

from ..backend import device_of, get_namespace


def sum_to_shape(g, shape):
    """Sum ``g`` over the axes that broadcasting added or stretched to reach ``shape``."""
    xp = get_namespace(g)
    shape = tuple(shape)
    if tuple(g.shape) == shape:
        return g
    n_lead = g.ndim - len(shape)
    if n_lead > 0:
        g = xp.sum(g, axis=tuple(range(n_lead)))
    stretched = tuple(i for i, (gs, s) in enumerate(zip(g.shape, shape)) if s == 1 and gs != 1)
    if stretched:
        g = xp.sum(g, axis=stretched, keepdims=True)
    return xp.reshape(g, shape)


def as_array_like(value, like, name):
    """``value`` as an array of ``like``'s namespace, device and float dtype.

    Python (or NumPy) scalars become 0-d arrays of ``like.dtype`` (no float64
    promotion).
    Arrays of another namespace raise the namespace TypeError.
    """
    xp = get_namespace(like)
    if isinstance(value, (bool, np.bool_)) or value is None:
        raise TypeError(f"{name} must be a real array or Python float; got {value!r}.")
    if isinstance(value, numbers.Real):  # Python or NumPy scalar: take like's dtype
        return xp.asarray(float(value), dtype=like.dtype, device=device_of(like))
    if not hasattr(value, "shape"):
        raise TypeError(
            f"{name} must be an array or a Python float; got {type(value).__name__}. "
            "Convert it with lvm_core.backend.asarray(value, like=x)."
        )
    get_namespace(like, value)  # raises on mixed namespaces / devices
    return value


def check_float(x, name):
    """Raise TypeError unless ``x`` is an array with a real floating dtype."""
    if not hasattr(x, "dtype") or not hasattr(x, "shape"):
        raise TypeError(
            f"{name} must be an array with a real floating dtype; got {type(x).__name__}. "
            "Convert it with lvm_core.backend.asarray(..., dtype='float32')."
        )
    xp = get_namespace(x)
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{name} must have a real floating dtype (float32 or float64); got {x.dtype}. "
            "Convert it, e.g. with xp.astype(x, xp.float32)."
        )
    return x


def check_same_dtype(name_a, a, name_b, b):
    """Raise TypeError when two floating arrays have different dtypes."""
    if a.dtype != b.dtype:
        raise TypeError(
            f"{name_a} and {name_b} must have the same float dtype; got {a.dtype} and "
            f"{b.dtype}. Cast one of them explicitly (float32 models stay float32)."
        )


def broadcast_shape(*arrays_and_names):
    """Broadcast shape of named arrays, or a ValueError naming them."""
    shapes = [tuple(a.shape) for a, _ in arrays_and_names]
    try:
        return tuple(np.broadcast_shapes(*shapes))
    except ValueError:
        desc = ", ".join(f"{n} {tuple(a.shape)}" for a, n in arrays_and_names)
        raise ValueError(
            f"shapes do not broadcast: {desc}. Expected equal shapes, or shapes that "
            "broadcast against each other (e.g. (N, D) with (D,) or ())."
        ) from None
