"""Products of a binary matrix with a dense one, for block Gibbs sampling.

In a restricted Boltzmann machine (Smolensky 1986; Hinton 2002) every Gibbs
half-step multiplies a *binary* state matrix with the weights:

    a_hidden  = V W        V (N, D) in {0, 1},  W (D, H)     -> (N, H)
    a_visible = S W^T      S (N, H) in {0, 1}                -> (N, D)

and the contrastive-divergence statistics are

    G = V^T P              V (N, D) in {0, 1},  P (N, H)     -> (D, H).

With binary V, row n of V W is the sum of the rows W[d] over the d with
V[n, d] = 1, so it costs (number of ones) x H additions instead of D x H
multiply-adds: on binarised images (about a third of the pixels on) and
sparse hidden states (about a tenth on) that is 3-10x less arithmetic than a
dense GEMM.  The NumPy kernels below do exactly that (numba, parallel over
blocks of output columns, so a block of W stays in cache while all N rows are
accumulated); every other backend, and NumPy arrays the kernels do not take
(other dtypes, non-binary inputs are the caller's responsibility), use the
array-API reference ``xp.matmul``.

Contract: the binary argument holds only the values 0 and 1 (any non-zero
entry counts as 1 in the kernels; callers validate data once and pass Gibbs
samples, which are binary by construction).  Results equal the reference up
to the order of floating-point additions.
"""
from __future__ import annotations

import numba
import numpy as np

from ..backend import get_namespace, is_numpy_namespace

__all__ = [
    "binary_matmul",
    "binary_matmul_reference",
    "binary_t_matmul",
    "binary_t_matmul_reference",
]



# --------------------------------------------------------------------------- references
def binary_matmul_reference(V, W):
    """A = V W for binary V (N, D) and W (D, H); returns (N, H).  Any backend."""
    xp = get_namespace(V, W)
    return xp.matmul(V, W)


def binary_t_matmul_reference(V, P):
    """G = V^T P for binary V (N, D) and P (N, H); returns (D, H).  Any backend."""
    xp = get_namespace(V, P)
    return xp.matmul(V.T, P)


# --------------------------------------------------------------------------- kernels
@numba.njit(cache=True, error_model="numpy")
def _row_support(V):
    """Column indices of the non-zero entries of each row: (idx (N, D) int32, count (N,))."""
    N, D = V.shape
    idx = np.empty((N, D), dtype=np.int32)
    count = np.zeros(N, dtype=np.int32)
    for n in range(N):
        k = 0
        for d in range(D):
            idx[n, k] = d  # written always, kept only when V[n, d] != 0 (no branch)
            k += V[n, d] != 0
        count[n] = k
    return idx, count


@numba.njit(cache=True, error_model="numpy")
def _col_support(V):
    """Row indices of the non-zero entries of each column: (idx (D, N) int32, count (D,))."""
    N, D = V.shape
    idx = np.empty((D, N), dtype=np.int32)
    count = np.zeros(D, dtype=np.int32)
    for n in range(N):
        for d in range(D):
            if V[n, d] != 0:
                idx[d, count[d]] = n
                count[d] += 1
    return idx, count


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _gather_rows_sum(idx, count, W, out, width):
    """out[n, :] = sum_k W[idx[n, k], :] over k < count[n].

    Parallel over blocks of ``width`` output columns: each block copies its
    (D, width) slab of W (any strides) into a contiguous buffer that stays in
    cache while all N rows are accumulated, four selected rows at a time.
    """
    N = out.shape[0]
    D, H = W.shape
    n_blocks = (H + width - 1) // width
    for blk in numba.prange(n_blocks):
        lo = blk * width
        w = min(width, H - lo)
        slab = np.zeros((D, width), dtype=W.dtype)
        for d in range(D):
            for j in range(w):
                slab[d, j] = W[d, lo + j]
        acc = np.empty(width, dtype=W.dtype)
        for n in range(N):
            for j in range(width):
                acc[j] = 0.0
            c = count[n]
            k = 0
            while k + 4 <= c:
                r0 = slab[idx[n, k]]
                r1 = slab[idx[n, k + 1]]
                r2 = slab[idx[n, k + 2]]
                r3 = slab[idx[n, k + 3]]
                for j in range(width):
                    acc[j] += (r0[j] + r1[j]) + (r2[j] + r3[j])
                k += 4
            while k < c:
                r0 = slab[idx[n, k]]
                for j in range(width):
                    acc[j] += r0[j]
                k += 1
            for j in range(w):
                out[n, lo + j] = acc[j]


def _width(H):
    """Block width: 64 columns, or H rounded up to a multiple of 8 when smaller."""
    return 64 if H >= 64 else max(8, -(-H // 8) * 8)


def binary_matmul(V, W):
    """A = V W (N, H) for V (N, D) with entries in {0, 1} and W (D, H).

    NumPy float32/float64 inputs: row n of A is the sum of the rows of W
    selected by the ones of V[n] (numba); otherwise ``xp.matmul``.
    """
    xp = get_namespace(V, W)
    if not _fusable(xp, V, W):
        return binary_matmul_reference(V, W)
    idx, count = _row_support(V)
    out = np.empty((V.shape[0], W.shape[1]), dtype=W.dtype)
    _gather_rows_sum(idx, count, W, out, _width(W.shape[1]))
    return out


def binary_t_matmul(V, P):
    """G = V^T P (D, H) for V (N, D) with entries in {0, 1} and P (N, H).

    NumPy float32/float64 inputs: row d of G is the sum of the rows of P
    selected by the ones of column d of V (numba); otherwise ``xp.matmul``.
    """
    xp = get_namespace(V, P)
    if not _fusable(xp, V, P):
        return binary_t_matmul_reference(V, P)
    idx, count = _col_support(V)
    out = np.empty((V.shape[1], P.shape[1]), dtype=P.dtype)
    _gather_rows_sum(idx, count, P, out, _width(P.shape[1]))
    return out


def _fusable(xp, A, B):
    return (is_numpy_namespace(xp) and isinstance(A, np.ndarray) and isinstance(B, np.ndarray)
            and B.dtype in (np.float32, np.float64) and A.dtype == B.dtype
            and A.ndim == 2 and B.ndim == 2)
