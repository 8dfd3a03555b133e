"""Rows of a data array taken by index: the minibatch gather of a training loop.

    take_rows(X, idx)[r] = X[idx[r]],     X (N, ...), idx (n,) -> (n, ...)

the same values as ``xp.take(X, idx, axis=0)``.  For a C-contiguous NumPy
array with at least two axes and integer indices in [0, N), one numba pass
copies the rows and prefetches those a few places ahead
(:mod:`lvm_core.ops._rows_kernels`), so that the cache misses of randomly
placed rows overlap instead of following one another; every other input
goes to ``np.take`` / ``xp.take``, which also raise the usual errors for
indices out of range.
"""
from __future__ import annotations

import numpy as np

from ..backend import get_namespace
from ._rows_kernels import take_rows_bytes

__all__ = ["take_rows"]

#: bytes of rows prefetched ahead of the one being copied (a few rows of an image
#: batch; the distance in rows is this over the row size, between 2 and 64)
AHEAD_BYTES = 24576


def take_rows(X, idx, out=None):
    """X[idx] along the first axis, written into ``out`` when it fits.

    ``out``: a C-contiguous array of shape (len(idx),) + X.shape[1:] and X's dtype,
    not overlapping X (NumPy; otherwise a fresh array is returned).  Always use the
    returned array.
    """
    if (type(X) is np.ndarray and type(idx) is np.ndarray and X.ndim >= 2 and X.size
            and X.dtype.kind in "biufc" and X.flags.c_contiguous and idx.ndim == 1
            and idx.dtype.kind in "iu"):
        shape = (idx.shape[0],) + X.shape[1:]
        if (out is None or type(out) is not np.ndarray or out.shape != shape
                or out.dtype != X.dtype or not out.flags.c_contiguous or not out.flags.writeable
                or np.may_share_memory(out, X)):
            out = np.empty(shape, dtype=X.dtype)
        if not idx.size:
            return out
        width = X.nbytes // X.shape[0]
        src = X.reshape(X.shape[0], -1).view(np.uint8)
        dst = out.reshape(idx.shape[0], -1).view(np.uint8)
        ahead = max(2, min(64, AHEAD_BYTES // width))
        if take_rows_bytes(src, idx if idx.dtype == np.intp else idx.astype(np.intp), dst,
                           ahead):
            return out
        return np.take(X, idx, axis=0, out=out)  # an index outside [0, N): NumPy's rules
    if type(X) is np.ndarray:
        return np.take(X, idx, axis=0)
    return get_namespace(X).take(X, idx, axis=0)
