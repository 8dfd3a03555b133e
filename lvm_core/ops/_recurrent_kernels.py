"""numba kernels behind :mod:`lvm_core.ops.recurrent` (NumPy float32/float64, C-contiguous).

The gate blocks of one GRU or LSTM step, split around NumPy's vectorised
``np.tanh`` (numba has no vector math library here; a scalar ``math.tanh``
in a loop is ~20x slower than the ufunc).  Sigmoids are taken in their tanh
form s(a) = 1/2 + 1/2 tanh(a/2), so each step needs only tanh.  The backward
kernels are pure arithmetic: one pass writing every output.  Equations: the
docstrings of :mod:`lvm_core.ops.recurrent`.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit

_jit = njit(error_model="numpy", nogil=True)

_ONE = np.float32(1.0)
_HALF = np.float32(0.5)


# --------------------------------------------------------------------------- GRU
@_jit
def gru_pre(gx, gh, g):
    """g[:, :2H] = (gx + gh)[:, :2H] / 2 (the tanh argument of r and z)."""
    N, G = gx.shape
    H2 = (G // 3) * 2
    for i in range(N):
        for j in range(H2):
            g[i, j] = _HALF * (gx[i, j] + gh[i, j])


@_jit
def gru_mid(gx, gh, g):
    """r, z = 1/2 + 1/2 g (in place); g[:, 2H:] = gx_n + r gh_n (the tanh argument of n)."""
    N, G = gx.shape
    H = G // 3
    for i in range(N):
        for j in range(2 * H):
            g[i, j] = _HALF + _HALF * g[i, j]
        for j in range(H):
            g[i, 2 * H + j] = gx[i, 2 * H + j] + g[i, j] * gh[i, 2 * H + j]


@_jit
def gru_out(g, h_prev, h_new):
    """h_new = (1 - z) n + z h_prev (exactly h_prev where z = 1)."""
    N, H = h_prev.shape
    for i in range(N):
        for j in range(H):
            z = g[i, H + j]
            h_new[i, j] = (_ONE - z) * g[i, 2 * H + j] + z * h_prev[i, j]


@_jit
def gru_backward(dh, h_prev, g, ghn, dA_x, dA_h, dh_z):
    N, H = dh.shape
    for i in range(N):
        for j in range(H):
            r = g[i, j]
            z = g[i, H + j]
            n = g[i, 2 * H + j]
            d = dh[i, j]
            da_n = d * (_ONE - z) * (_ONE - n * n)
            da_z = d * (h_prev[i, j] - n) * z * (_ONE - z)
            da_r = da_n * ghn[i, j] * r * (_ONE - r)
            dA_x[i, j] = da_r
            dA_x[i, H + j] = da_z
            dA_x[i, 2 * H + j] = da_n
            dA_h[i, j] = da_r
            dA_h[i, H + j] = da_z
            dA_h[i, 2 * H + j] = r * da_n
            dh_z[i, j] = d * z


# --------------------------------------------------------------------------- LSTM
@_jit
def lstm_pre(a, g):
    """g = a / 2 on the sigmoid columns (i, f, o), g = a on the tanh column (g)."""
    N, G = a.shape
    H = G // 4
    for i in range(N):
        for j in range(2 * H):
            g[i, j] = _HALF * a[i, j]
        for j in range(2 * H, 3 * H):
            g[i, j] = a[i, j]
        for j in range(3 * H, 4 * H):
            g[i, j] = _HALF * a[i, j]


@_jit
def lstm_mid(g, c_prev, c_new):
    """i, f, o = 1/2 + 1/2 g (in place); c_new = f c_prev + i g."""
    N, H = c_prev.shape
    for i in range(N):
        for j in range(2 * H):
            g[i, j] = _HALF + _HALF * g[i, j]
        for j in range(3 * H, 4 * H):
            g[i, j] = _HALF + _HALF * g[i, j]
        for j in range(H):
            c_new[i, j] = g[i, H + j] * c_prev[i, j] + g[i, j] * g[i, 2 * H + j]


@_jit
def lstm_out(g, tanh_c, h_new):
    """h_new = o tanh(c_new)."""
    N, H = tanh_c.shape
    for i in range(N):
        for j in range(H):
            h_new[i, j] = g[i, 3 * H + j] * tanh_c[i, j]


@_jit
def lstm_backward(dh, dc, c_prev, g, tanh_c, dA, dc_prev):
    N, H = dh.shape
    for i in range(N):
        for j in range(H):
            gi = g[i, j]
            gf = g[i, H + j]
            gg = g[i, 2 * H + j]
            go = g[i, 3 * H + j]
            tc = tanh_c[i, j]
            d = dh[i, j]
            dct = dc[i, j] + d * go * (_ONE - tc * tc)
            dA[i, j] = dct * gg * gi * (_ONE - gi)
            dA[i, H + j] = dct * c_prev[i, j] * gf * (_ONE - gf)
            dA[i, 2 * H + j] = dct * gi * (_ONE - gg * gg)
            dA[i, 3 * H + j] = d * tc * go * (_ONE - go)
            dc_prev[i, j] = dct * gf
