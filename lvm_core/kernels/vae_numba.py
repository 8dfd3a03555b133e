"""Fused float32 elementwise kernels for the VAE fast path (CPU, NumPy only).

Each kernel makes one pass over a (N, D) buffer in place, so that the step
between two BLAS matmuls costs one read and one write of memory.  exp and log
are left to NumPy's vectorised ufuncs (numba has no vector math library here).
The kernels are serial (no ``parallel=True``): BLAS owns the cores.
``error_model="numpy"`` lets LLVM vectorise the divisions.

Equations (Kingma & Welling 2014 with a Bernoulli decoder):

* ``bias_relu``: h = max(a + b, 0)
* ``bias_neg_abs``: l = l + b, t = -|l|
* ``bernoulli_nll_backward``: with e = exp(-|l|), sigmoid(l) = 1/(1+e) (l >= 0) or
  e/(1+e); dl = (sigmoid(l) - x) / N; db = sum_n dl; acc_d = sum_n max(l, 0) - x l;
  e <- 1 + e (its log is the rest of softplus(l) = max(l, 0) + log(1 + e))
* ``relu_backward_bias``: da = dh 1[h > 0], db = sum_n da

Adam itself is :func:`lvm_core.nn._optim_numba.adam_inplace_kernel`, shared with
:func:`lvm_core.nn.adam`.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["bias_relu", "bias_neg_abs", "bernoulli_nll_backward", "relu_backward_bias"]

_jit = numba.njit(cache=True, error_model="numpy", fastmath=False, nogil=True)


@_jit
def bias_relu(a, b):
    """a <- max(a + b, 0) in place.  a (N, H), b (H,)."""
    N, H = a.shape
    zero = np.float32(0.0)
    for n in range(N):
        for j in range(H):
            v = a[n, j] + b[j]
            a[n, j] = v if v > zero else zero


@_jit
def bias_neg_abs(logits, b, t):
    """logits <- logits + b; t <- -|logits|.  logits, t (N, D), b (D,)."""
    N, D = logits.shape
    for n in range(N):
        for j in range(D):
            v = logits[n, j] + b[j]
            logits[n, j] = v
            t[n, j] = -abs(v)


@_jit
def bernoulli_nll_backward(logits, x, e, dlogits, db, acc, scale):
    """Fused Bernoulli NLL backward (see the module docstring).

    logits, x, e, dlogits (N, D) float32; db (D,) float32 (overwritten);
    acc (D,) float64 (overwritten with sum_n max(l, 0) - x l); scale = 1/N.
    """
    N, D = logits.shape
    one = np.float32(1.0)
    zero = np.float32(0.0)
    for j in range(D):
        db[j] = zero
        acc[j] = 0.0
    for n in range(N):
        for j in range(D):
            l = logits[n, j]
            ej = e[n, j]
            xj = x[n, j]
            inv = one / (one + ej)
            s = inv if l >= zero else ej * inv
            d = (s - xj) * scale
            dlogits[n, j] = d
            db[j] += d
            acc[j] += (l if l > zero else zero) - xj * l
            e[n, j] = one + ej


@_jit
def relu_backward_bias(dh, h, db):
    """dh <- dh 1[h > 0] in place; db <- sum_n dh.  dh, h (N, H), db (H,)."""
    N, H = dh.shape
    zero = np.float32(0.0)
    for j in range(H):
        db[j] = zero
    for n in range(N):
        for j in range(H):
            v = dh[n, j] if h[n, j] > zero else zero
            dh[n, j] = v
            db[j] += v
