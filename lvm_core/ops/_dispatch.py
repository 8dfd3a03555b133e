"""The dispatch rule of :mod:`lvm_core.ops`, applied at every call (no global state)."""
from __future__ import annotations

import numpy as np

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))


def fusable(*arrays, contiguous=True):
    """True when every array is a NumPy array of one float dtype (float32 or
    float64), C-contiguous unless ``contiguous=False`` (kernels that take strided
    views): the numba kernels apply.  ``None`` entries are ignored."""
    dt = None
    for a in arrays:
        if a is None:
            continue
        if type(a) is not np.ndarray or (contiguous and not a.flags.c_contiguous):
            return False
        if dt is None:
            dt = a.dtype
            if dt not in _FLOATS:
                return False
        elif a.dtype != dt:
            return False
    return dt is not None


def writable_out(out, shape, dtype, contiguous=True):
    """``out`` when it can receive a fused result of ``shape``/``dtype``, else None."""
    if (out is not None and type(out) is np.ndarray
            and (out.flags.c_contiguous or not contiguous)
            and out.flags.writeable and out.shape == tuple(shape) and out.dtype == dtype):
        return out
    return None
