"""Numba kernels for the full-covariance Gaussian mixture E-step on NumPy arrays.

Reference: C. M. Bishop, Pattern Recognition and Machine Learning, 2006,
eq. 9.23 (responsibilities) and eqs. 9.24-9.25 (their statistics).

For a block of rows, Y = X [U_1 | ... | U_K] (n, K*D) holds all whitened data
from one GEMM (U_k the precision Cholesky factors); a fused kernel subtracts
mu_k U_k, forms ||y_nk||^2, the log-sum-exp and r_nk.  The second moments
SS_k = sum_n r_nk x_n x_n^T come from one GEMM of the responsibilities
against the packed products x_a x_b (a <= b), shape (n, D(D+1)/2).  The
generic array-API code of :mod:`lvm_core.families.gaussian` is the reference
it is tested against.
"""
from __future__ import annotations

import math

import numpy as np

from .._jit import njit

__all__ = ["full_e_step"]

BLOCK_ROWS = 2048  # rows per block


@njit(error_model="numpy", fastmath={"reassoc", "contract"})
def _full_block_resp(Y, mu_U, const, resp):  # pragma: no cover - compiled
    """Fused per-row kernel: maha, log-sum-exp, responsibilities; returns sum_n log p(x_n).

    Y (n, K*D) holds x_n [U_1 | ... | U_K]; with y_nk = Y[n, kD:(k+1)D] - mu_k U_k,
    w_nk = const_k - 1/2 ||y_nk||^2, log p(x_n) = logsumexp_k w_nk and
    resp[n, k] = exp(w_nk - log p(x_n)).
    """
    n, K = resp.shape
    D = Y.shape[1] // K
    total = 0.0
    for i in range(n):
        w_max = -np.inf
        for k in range(K):
            s = 0.0
            for d in range(D):
                v = Y[i, k * D + d] - mu_U[k * D + d]
                s += v * v
            w = const[k] - 0.5 * s
            resp[i, k] = w
            if w > w_max:
                w_max = w
        norm = 0.0
        for k in range(K):
            e = np.exp(resp[i, k] - w_max)
            resp[i, k] = e
            norm += e
        for k in range(K):
            resp[i, k] /= norm
        total += w_max + np.log(norm)
    return total


@njit(error_model="numpy")
def _packed_outer(X, out):  # pragma: no cover - compiled
    """out[n, :] = upper triangle of x_n x_n^T, row by row (x_a x_b for a <= b)."""
    n, D = X.shape
    for i in range(n):
        idx = 0
        for a in range(D):
            xa = X[i, a]
            for b in range(a, D):
                out[i, idx] = xa * X[i, b]
                idx += 1


def full_e_step(X, weights, means, precisions_cholesky, shift=None):
    """NumPy/Numba fast path of the full-covariance E-step (same math, blocked).

    For a block of rows, Y = X [U_1 | ... | U_K] (n, K*D) holds all whitened
    data from one GEMM; a fused kernel subtracts mu_k U_k, forms ||y_nk||^2,
    the log-sum-exp and r_nk.  SS_k = sum_n r_nk x_n x_n^T comes from one
    GEMM of the responsibilities against the packed products x_a x_b (a <= b),
    shape (n, D(D+1)/2), unpacked into symmetric (K, D, D) at the end.
    """
    N, D = X.shape
    K = means.shape[0]
    dtype = X.dtype
    X = np.ascontiguousarray(X)
    U_stack = np.ascontiguousarray(np.transpose(precisions_cholesky, (1, 0, 2)).reshape(D, K * D))  # (D, K*D)
    mu_U = np.einsum("kd,kde->ke", means, precisions_cholesky).reshape(K * D)  # (K*D,)
    log_det = np.sum(np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)), axis=1)
    const = np.log(weights) + log_det - 0.5 * D * math.log(2.0 * math.pi)  # (K,)
    n_pairs = D * (D + 1) // 2
    resp_sum = np.zeros(K, dtype=dtype)
    x_sum = np.zeros((K, D), dtype=dtype)
    xx_packed = np.zeros((K, n_pairs), dtype=dtype)  # (K, D(D+1)/2)
    log_likelihood = 0.0
    n_block = max(1, min(N, BLOCK_ROWS))
    Xs_buf = None if shift is None else np.empty((n_block, D), dtype=dtype)
    Y_buf = np.empty((n_block, K * D), dtype=dtype)
    resp_buf = np.empty((n_block, K), dtype=dtype)
    XX_buf = np.empty((n_block, n_pairs), dtype=dtype)
    for start in range(0, N, n_block):
        Xb = X[start:start + n_block]  # (n, D)
        n = Xb.shape[0]
        if shift is not None:
            Xb = np.subtract(Xb, shift, out=Xs_buf[:n])
        Y, resp, XX = Y_buf[:n], resp_buf[:n], XX_buf[:n]
        np.matmul(Xb, U_stack, out=Y)  # (n, K*D)
        log_likelihood += _full_block_resp(Y, mu_U, const, resp)
        resp_sum += np.sum(resp, axis=0)
        x_sum += resp.T @ Xb
        _packed_outer(Xb, XX)
        xx_packed += resp.T @ XX  # (K, D(D+1)/2)
    rows, cols = np.triu_indices(D)
    xx_sum = np.empty((K, D, D), dtype=dtype)
    xx_sum[:, rows, cols] = xx_packed
    xx_sum[:, cols, rows] = xx_packed
    return resp_sum, x_sum, xx_sum, float(log_likelihood)


