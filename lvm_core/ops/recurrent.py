"""The gate blocks of one GRU / LSTM step and their backward (the elementwise
part of a recurrent step; the matmuls stay with the caller).

GRU (Cho et al. 2014, PyTorch's form), from gx = x W_x + b_x and
gh = h_{t-1} W_h + b_h, both (N, 3H) in gate order r, z, n:

    r = s(gx_r + gh_r),   z = s(gx_z + gh_z),   n = tanh(gx_n + r gh_n)
    h_t = (1 - z) n + z h_{t-1}

and for dh = dL/dh_t:

    da_n = dh (1 - z)(1 - n^2),   da_z = dh (h_{t-1} - n) z (1 - z),
    da_r = da_n gh_n r (1 - r)
    dA_x = [da_r, da_z, da_n],    dA_h = [da_r, da_z, r da_n],   dh z
    (so that dL/dh_{t-1} = dh z + dA_h W_h^T).

LSTM (Hochreiter & Schmidhuber 1997; Gers et al. 2000), from the
pre-activation a = x W_x + b_x + h W_h + b_h (N, 4H), gate order i, f, g, o:

    i, f, o = s(a_i), s(a_f), s(a_o),   g = tanh(a_g)
    c_t = f c_{t-1} + i g,   h_t = o tanh(c_t)

and for dh = dL/dh_t, dc = dL/dc_t from later steps:

    dc_tot = dc + dh o (1 - tanh^2 c_t)
    dA = [dc_tot g i (1 - i), dc_tot c_{t-1} f (1 - f), dc_tot i (1 - g^2),
          dh tanh(c_t) o (1 - o)],   dL/dc_{t-1} = dc_tot f.

s is the logistic sigmoid, evaluated on the fused path as 1/2 + 1/2 tanh(a/2)
(the same function; one transcendental per gate, NumPy's vectorised tanh).
C-contiguous NumPy float32/float64 arrays take numba kernels
(:mod:`lvm_core.ops._recurrent_kernels`) writing into the given buffers;
every other array takes :mod:`lvm_core.ops.reference` (the backward kernels
also take strided views, e.g. the gh_n columns of one step).  Always use the
returned arrays.
"""
from __future__ import annotations

import numpy as np

from . import _recurrent_kernels as K
from . import reference as ref
from ._dispatch import fusable, writable_out

__all__ = ["gru_gates", "gru_gates_backward", "lstm_gates", "lstm_gates_backward"]


def _buffer(out, shape, like):
    b = writable_out(out, shape, like.dtype)
    return np.empty(shape, dtype=like.dtype) if b is None else b


def gru_gates(gx, gh, h_prev, gates=None, h_new=None):
    """GRU gate block: returns (gates (N, 3H) = [r, z, n], h_new (N, H)).

    gx, gh (N, 3H); h_prev (N, H).  On the fused path the results are written
    into ``gates`` / ``h_new`` when those are writable C-contiguous buffers of
    the right shape and dtype.
    """
    if not fusable(gx, gh, h_prev) or gx.ndim != 2 or gh.shape != gx.shape \
            or h_prev.ndim != 2 or 3 * h_prev.shape[1] != gx.shape[1]:
        return ref.gru_gates(gx, gh, h_prev)
    N, H = h_prev.shape
    g = _buffer(gates, (N, 3 * H), gx)
    hn = _buffer(h_new, (N, H), gx)
    K.gru_pre(gx, gh, g)
    np.tanh(g[:, :2 * H], out=g[:, :2 * H])
    K.gru_mid(gx, gh, g)
    np.tanh(g[:, 2 * H:], out=g[:, 2 * H:])
    K.gru_out(g, h_prev, hn)
    return g, hn


def gru_gates_backward(dh, h_prev, gates, ghn, dA_x=None, dA_h=None, dh_z=None):
    """Backward of :func:`gru_gates` for dh = dL/dh_new (N, H), with ``ghn`` =
    gh[:, 2H:] (N, H).  Returns (dA_x (N, 3H), dA_h (N, 3H), dh z (N, H))."""
    if not fusable(dh, h_prev, gates, ghn, contiguous=False) or dh.ndim != 2 or h_prev.shape != dh.shape \
            or ghn.shape != dh.shape or gates.shape != (dh.shape[0], 3 * dh.shape[1]):
        return ref.gru_gates_backward(dh, h_prev, gates, ghn)
    N, H = dh.shape
    ax = _buffer(dA_x, (N, 3 * H), dh)
    ah = _buffer(dA_h, (N, 3 * H), dh)
    hz = _buffer(dh_z, (N, H), dh)
    K.gru_backward(dh, h_prev, gates, ghn, ax, ah, hz)
    return ax, ah, hz


def lstm_gates(a, c_prev, gates=None, c_new=None, tanh_c=None, h_new=None):
    """LSTM gate block: returns (gates (N, 4H) = activated [i, f, g, o], c_new,
    tanh(c_new), h_new), each (N, H) after the first.  a (N, 4H), c_prev (N, H)."""
    if not fusable(a, c_prev) or a.ndim != 2 or c_prev.ndim != 2 \
            or 4 * c_prev.shape[1] != a.shape[1] or c_prev.shape[0] != a.shape[0]:
        return ref.lstm_gates(a, c_prev)
    N, H = c_prev.shape
    g = _buffer(gates, (N, 4 * H), a)
    c = _buffer(c_new, (N, H), a)
    tc = _buffer(tanh_c, (N, H), a)
    hn = _buffer(h_new, (N, H), a)
    K.lstm_pre(a, g)
    np.tanh(g, out=g)
    K.lstm_mid(g, c_prev, c)
    np.tanh(c, out=tc)
    K.lstm_out(g, tc, hn)
    return g, c, tc, hn


def lstm_gates_backward(dh, dc, c_prev, gates, tanh_c, dA=None, dc_prev=None):
    """Backward of :func:`lstm_gates` for dh = dL/dh_t, dc = dL/dc_t (N, H).
    Returns (dA (N, 4H), dL/dc_{t-1} (N, H))."""
    if not fusable(dh, dc, c_prev, gates, tanh_c, contiguous=False) or dh.ndim != 2 \
            or dc.shape != dh.shape or c_prev.shape != dh.shape or tanh_c.shape != dh.shape \
            or gates.shape != (dh.shape[0], 4 * dh.shape[1]):
        return ref.lstm_gates_backward(dh, dc, c_prev, gates, tanh_c)
    N, H = dh.shape
    d = _buffer(dA, (N, 4 * H), dh)
    dcp = _buffer(dc_prev, (N, H), dh)
    K.lstm_backward(dh, dc, c_prev, gates, tanh_c, d, dcp)
    return d, dcp
