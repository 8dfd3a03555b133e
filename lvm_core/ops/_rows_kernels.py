"""numba kernel behind :func:`lvm_core.ops.take_rows`: a row gather that prefetches.

A minibatch is B rows of the data taken at random: each row starts with a
cache miss, and a plain row-by-row copy (``np.take``) waits for memory at every
row.  This kernel asks for the rows a few places ahead with the CPU's prefetch
instruction (:mod:`lvm_core.ops._prefetch`: a hint, never a fault, never a
change of any value) while it copies the current one, so the misses overlap.
On 128 rows of 784 float32 values taken from 60,000: 33 us instead of 60-76 us.

The rows are copied as bytes (``src`` and ``dst`` are uint8 views of the
arrays, one row per line), so one compiled kernel serves every dtype.
"""
from __future__ import annotations

from .._jit import njit
from ._prefetch import prefetch_row


@njit(nogil=True)
def take_rows_bytes(src, idx, dst, ahead):
    """dst[r] = src[idx[r]] for every r, prefetching row idx[r + ahead] meanwhile.

    ``src`` (N, W) and ``dst`` (n, W) uint8, C-contiguous; ``idx`` (n,) integers.
    Returns False, having copied nothing, when an index lies outside [0, N).
    """
    n, N = idx.shape[0], src.shape[0]
    for r in range(n):
        if idx[r] < 0 or idx[r] >= N:
            return False
    for r in range(min(ahead, n)):
        prefetch_row(src, idx[r])
    width = src.shape[1]
    for r in range(n):
        if r + ahead < n:
            prefetch_row(src, idx[r + ahead])
        row = idx[r]
        for j in range(width):  # a plain loop: LLVM vectorises it (a slice copy does not)
            dst[r, j] = src[row, j]
    return True
