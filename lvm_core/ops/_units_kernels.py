"""numba kernels behind :mod:`lvm_core.ops.units` (NumPy float32/float64, C-contiguous).

One serial pass each (BLAS owns the cores).  Uniforms for Bernoulli draws come
from SplitMix64 (Steele, Lea & Flood 2014, "Fast splittable pseudorandom
number generators"), used as a counter-based generator (Salmon et al. 2011,
"Parallel random numbers: as easy as 1, 2, 3"): the i-th draw of a call is the
SplitMix64 output mix(key + (i + 1) gamma), gamma = 0x9e3779b97f4a7c15, with the
64-bit key taken from the caller's NumPy Generator.  Every element is
independent of the others, so LLVM vectorises the loop (64-bit multiplies
included), and a call costs one draw of the caller's generator.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit
from ._kernels import _ONE, _ZERO, exp_neg_parts, log1p_unit, sigmoid_from_exp

_jit = njit(error_model="numpy", nogil=True)
_jit_rows = njit(error_model="numpy", nogil=True, fastmath={"reassoc"})

GAMMA = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)
_S40, _S11 = np.uint64(40), np.uint64(11)
_U24 = np.float32(2.0 ** -24)
_U53 = 2.0 ** -53


@_jit
def splitmix64(x):
    """SplitMix64's output function (the "mix13" finaliser) of a uint64."""
    z = (x ^ (x >> _S30)) * _M1
    z = (z ^ (z >> _S27)) * _M2
    return z ^ (z >> _S31)


@_jit
def bernoulli_sample_f32(p, key, s):
    """s_i = 1[u_i < p_i], u_i = top 24 bits of mix(key + (i + 1) gamma) / 2^24 (flat arrays)."""
    for i in range(p.size):
        z = splitmix64(key + np.uint64(i + 1) * GAMMA)
        u = np.float32(z >> _S40) * _U24
        s[i] = _ONE if u < p[i] else _ZERO


@_jit
def bernoulli_sample_f64(p, key, s):
    """s_i = 1[u_i < p_i], u_i = top 53 bits of mix(key + (i + 1) gamma) / 2^53 (flat arrays)."""
    for i in range(p.size):
        z = splitmix64(key + np.uint64(i + 1) * GAMMA)
        u = np.float64(z >> _S11) * _U53
        s[i] = 1.0 if u < p[i] else 0.0


# In place (s is p): one-array kernels (two arguments that are one array run scalar).
@_jit
def bernoulli_sample_f32_(ps, key):
    for i in range(ps.size):
        z = splitmix64(key + np.uint64(i + 1) * GAMMA)
        u = np.float32(z >> _S40) * _U24
        ps[i] = _ONE if u < ps[i] else _ZERO


@_jit
def bernoulli_sample_f64_(ps, key):
    for i in range(ps.size):
        z = splitmix64(key + np.uint64(i + 1) * GAMMA)
        u = np.float64(z >> _S11) * _U53
        ps[i] = 1.0 if u < ps[i] else 0.0


@_jit_rows
def bernoulli_units_f32(a, b, p2, bits, fbits, y, lse):
    """y = sigmoid(a + b) and lse_n = sum_j softplus(a_nj + b_j), float32, with the
    polynomial exp and log1p of :mod:`lvm_core.ops._kernels` (scratch ``p2`` (H,)
    float32, ``bits`` (H,) int32 and ``fbits`` its float32 view).  y is not a: two
    arguments that are one array run scalar, so the in-place call is
    :func:`bernoulli_units_f32_`."""
    N, H = a.shape
    for n in range(N):
        for j in range(H):  # e = exp(-|x|) = 2^-f (p2) * 2^-k (bits)
            p2[j], bits[j] = exp_neg_parts(abs(a[n, j] + b[j]))
        acc = np.float32(0.0)
        for j in range(H):
            x = a[n, j] + b[j]
            e = p2[j] * fbits[j]
            y[n, j] = sigmoid_from_exp(x, e)[1]
            acc += (x if x > _ZERO else _ZERO) + log1p_unit(e)
        lse[n] = acc


@_jit_rows
def bernoulli_units_f32_(y, b, p2, bits, fbits, lse):
    """:func:`bernoulli_units_f32` in place: y holds a on entry."""
    N, H = y.shape
    for n in range(N):
        for j in range(H):
            p2[j], bits[j] = exp_neg_parts(abs(y[n, j] + b[j]))
        acc = np.float32(0.0)
        for j in range(H):
            x = y[n, j] + b[j]
            e = p2[j] * fbits[j]
            y[n, j] = sigmoid_from_exp(x, e)[1]
            acc += (x if x > _ZERO else _ZERO) + log1p_unit(e)
        lse[n] = acc


@_jit_rows
def bernoulli_units_f64(a, b, y, lse):
    """y = sigmoid(a + b), lse_n = sum_j softplus(a_nj + b_j), float64 (libm exp/log1p)."""
    N, H = a.shape
    for n in range(N):
        acc = 0.0
        for j in range(H):
            x = a[n, j] + b[j]
            e = np.exp(-abs(x))
            y[n, j] = sigmoid_from_exp(x, e)[1]
            acc += (x if x > 0.0 else 0.0) + np.log1p(e)
        lse[n] = acc


@_jit_rows
def bernoulli_units_f64_(y, b, lse):
    """:func:`bernoulli_units_f64` in place: y holds a on entry."""
    N, H = y.shape
    for n in range(N):
        acc = 0.0
        for j in range(H):
            x = y[n, j] + b[j]
            e = np.exp(-abs(x))
            y[n, j] = sigmoid_from_exp(x, e)[1]
            acc += (x if x > 0.0 else 0.0) + np.log1p(e)
        lse[n] = acc
