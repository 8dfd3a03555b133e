"""Array namespaces: which library (and device) the inputs live on.

lvm_core never keeps a global "current backend".  Every function takes its
array namespace from its inputs, following the Python array API standard
(https://data-apis.org/array-api/) through ``array-api-compat``:

    xp = get_namespace(X, W)      # numpy, cupy, array_api_strict, ...
    Y = xp.matmul(X, W)           # array type in == array type out

Rules enforced here:

* mixing namespaces (a NumPy array with a CuPy array) or devices raises a
  TypeError that names both sides and how to fix it; nothing is moved
  silently between devices;
* moving data is explicit: :func:`to_numpy` (device -> host) and
  :func:`asarray` with ``like=`` (host -> the device of ``like``).

Where a backend lacks a function that the models need (``logsumexp``,
``softplus``, scatter-add, random numbers) lvm_core has one small helper for
it, here or in :mod:`lvm_core.random`, instead of scattered special cases.
"""
from __future__ import annotations

import numpy as np
import array_api_compat

__all__ = [
    "get_namespace",
    "namespace_name",
    "is_numpy_namespace",
    "device_of",
    "to_numpy",
    "asarray",
    "float_dtype",
    "is_floating",
    "scatter_add_rows",
    "item",
]


def _is_array(x) -> bool:
    return array_api_compat.is_array_api_obj(x) and not isinstance(
        x, (bool, int, float, complex)
    )


def namespace_name(xp) -> str:
    """Short human-readable name of an array namespace (``'numpy'``, ``'cupy'``...)."""
    name = getattr(xp, "__name__", None) or repr(xp)  # repr only when needed (it is slow)
    for short in ("numpy", "cupy", "array_api_strict", "torch", "jax", "dask"):
        if short in name:
            return short
    return name


def is_numpy_namespace(xp) -> bool:
    """True when ``xp`` is NumPy (plain or array-api-compat's wrapper)."""
    return array_api_compat.is_numpy_namespace(xp)


def device_of(x):
    """Device of array ``x`` (``'cpu'`` for NumPy)."""
    return array_api_compat.device(x)


_NUMPY_XP = []


def _numpy_namespace():
    """array-api-compat's NumPy namespace (looked up once)."""
    if not _NUMPY_XP:
        _NUMPY_XP.append(array_api_compat.array_namespace(np.empty(0)))
    return _NUMPY_XP[0]


def get_namespace(*arrays):
    """Array namespace shared by ``arrays`` (``None`` and Python scalars ignored).

    Returns the array-api-compat namespace (for NumPy, a thin wrapper whose
    functions return plain ``numpy.ndarray``).  Raises ``TypeError`` when the
    arrays come from different libraries or live on different devices, naming
    both and the fix: move one side explicitly with :func:`asarray` (``like=``)
    or :func:`to_numpy`.  With no arrays at all, NumPy is returned.
    """
    numpy_only = False
    for a in arrays:  # fast path: NumPy arrays only (one namespace, one device: the host)
        if type(a) is np.ndarray:
            numpy_only = True
        elif a is not None:
            numpy_only = False
            break
    if numpy_only:
        return _numpy_namespace()
    found = [a for a in arrays if a is not None and _is_array(a)]
    if not found:
        return array_api_compat.array_namespace(np.empty(0))
    first = found[0]
    xp = array_api_compat.array_namespace(first)
    dev = device_of(first)
    for other in found[1:]:
        xp_other = array_api_compat.array_namespace(other)
        if namespace_name(xp_other) != namespace_name(xp):
            raise TypeError(
                f"Arrays from different array libraries were mixed: "
                f"{namespace_name(xp)} ({type(first).__name__}) and "
                f"{namespace_name(xp_other)} ({type(other).__name__}). "
                "lvm_core never moves data between devices silently; convert one "
                "side explicitly, e.g. lvm_core.backend.asarray(x, like=y) or "
                "lvm_core.backend.to_numpy(x)."
            )
        dev_other = device_of(other)
        if dev_other != dev:
            raise TypeError(
                f"Arrays on different devices were mixed: {dev!r} and "
                f"{dev_other!r} ({namespace_name(xp)}). Move one of them "
                "explicitly, e.g. lvm_core.backend.asarray(x, like=y)."
            )
    return xp


def to_numpy(x) -> np.ndarray:
    """Explicit transfer of ``x`` to a NumPy array on the host.

    NumPy input is returned as is (no copy); CuPy arrays are copied with
    ``.get()``; other array-API arrays are first moved to their library's
    CPU device.  Python scalars and sequences go through ``np.asarray``.
    """
    if isinstance(x, np.ndarray):
        return x
    if x is None or not _is_array(x):
        return np.asarray(x)
    if array_api_compat.is_cupy_array(x):
        return x.get()
    if array_api_compat.is_numpy_array(x):
        return np.asarray(x)
    xp = array_api_compat.array_namespace(x)
    if namespace_name(xp) == "array_api_strict":
        import array_api_strict

        x = x.to_device(array_api_strict.Device("CPU_DEVICE"))
        return np.asarray(x)
    try:
        return np.asarray(x)
    except Exception:  # pragma: no cover - depends on third-party backends
        return np.asarray(array_api_compat.to_device(x, "cpu"))


def asarray(x, like=None, dtype=None, copy=None):
    """``x`` as an array of the namespace and device of ``like``.

    This is the explicit host -> device move: ``asarray(np_array, like=W)``
    puts a NumPy array on the device of ``W``.  With ``like=None`` the result
    is NumPy (arrays of other libraries are moved to the host with
    :func:`to_numpy`).  ``dtype`` may be a dtype of the target namespace, a NumPy dtype,
    or a string such as ``"float32"``.  Arrays already of the right namespace
    and device are not copied unless ``copy=True``.
    """
    if like is None:
        if _is_array(x) and not isinstance(x, np.ndarray):
            x = to_numpy(x)  # the explicit device -> host move that like=None asks for
        return np.asarray(x, dtype=None if dtype is None else np.dtype(_dtype_name(dtype)))
    xp = get_namespace(like)
    dev = device_of(like)
    if dtype is not None:
        dtype = getattr(xp, _dtype_name(dtype))
    if _is_array(x):
        xp_x = array_api_compat.array_namespace(x)
        if namespace_name(xp_x) != namespace_name(xp):
            x = to_numpy(x)
    return xp.asarray(x, dtype=dtype, device=dev, copy=copy)


def _dtype_name(dtype) -> str:
    if isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name
    except TypeError:
        # a non-NumPy dtype object (array_api_strict.float32, cupy is numpy's)
        text = str(dtype)
        for name in ("float64", "float32", "float16", "int64", "int32", "int16",
                     "int8", "uint8", "bool"):
            if name in text:
                return name
        raise TypeError(f"Unrecognised dtype {dtype!r}.")


def is_floating(x) -> bool:
    """True when ``x`` has a real floating dtype."""
    xp = get_namespace(x)
    return xp.isdtype(x.dtype, "real floating")


def float_dtype(*arrays):
    """Floating dtype for computations on ``arrays``.

    The result type of the floating inputs; float64 when none is floating
    (integer symbols, booleans).  float32 in stays float32 (no promotion).
    """
    xp = get_namespace(*arrays)
    floats = [a.dtype for a in arrays if a is not None and _is_array(a)
              and xp.isdtype(a.dtype, "real floating")]
    if not floats:
        return xp.float64
    return xp.result_type(*floats)


def item(x) -> float:
    """A 0-d (or size-1) array as a Python float (an explicit device -> host sync)."""
    if isinstance(x, (int, float)):
        return float(x)
    if isinstance(x, np.ndarray) or np.isscalar(x):
        return float(np.asarray(x).reshape(()))
    xp = get_namespace(x)
    return float(xp.reshape(x, ()))


def scatter_add_rows(target, index, values):
    """``target[index[i]] += values[i]`` with repeated indices accumulated.

    ``target``: (K, ...) array, ``index``: (N,) integer array, ``values``:
    (N, ...) array.  Returns the updated ``target`` (a new array on backends
    without in-place scatter-add).  NumPy uses ``np.add.at``, CuPy
    ``cupyx.scatter_add``; other backends a one-hot matrix product.
    """
    xp = get_namespace(target, values)
    if is_numpy_namespace(xp):
        out = np.array(target, copy=True)
        np.add.at(out, np.asarray(index), values)
        return out
    if namespace_name(xp) == "cupy":  # pragma: no cover - needs a GPU
        import cupyx

        out = target.copy()
        cupyx.scatter_add(out, index, values)
        return out
    K = target.shape[0]
    one_hot = xp.astype(
        index[:, None] == xp.arange(K, device=device_of(target))[None, :],
        values.dtype,
    )  # (N, K)
    flat = xp.reshape(values, (values.shape[0], -1))
    added = xp.reshape(one_hot.T @ flat, target.shape)
    return target + added
