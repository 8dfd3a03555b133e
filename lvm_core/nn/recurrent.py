"""Recurrent cells (GRU, LSTM) with single steps, a sequence unroll and
backpropagation through time written by hand.

Gated recurrent unit (Cho et al. 2014, with PyTorch's placement of the reset
gate inside the candidate, as ``torch.nn.GRU``), for x_t (N, D), h_{t-1} (N, H):

    r_t = s(x_t W_ir + b_ir + h_{t-1} W_hr + b_hr)
    z_t = s(x_t W_iz + b_iz + h_{t-1} W_hz + b_hz)
    n_t = tanh(x_t W_in + b_in + r_t * (h_{t-1} W_hn + b_hn))
    h_t = (1 - z_t) * n_t + z_t * h_{t-1}

Long short-term memory (Hochreiter & Schmidhuber 1997, with the forget gate
of Gers et al. 2000, as ``torch.nn.LSTM``):

    a_t = x_t W_x + b_x + h_{t-1} W_h + b_h = [a_i, a_f, a_g, a_o]     # (N, 4H)
    i = s(a_i),  f = s(a_f),  g = tanh(a_g),  o = s(a_o)
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

s is the logistic sigmoid.  The gates share one matmul per input: W_x (D, 3H
or 4H), W_h (H, 3H or 4H), b_x and b_h (3H or 4H,), gates stacked along the
columns in PyTorch's order (r, z, n and i, f, g, o), so that
``W_x = weight_ih_l0.T``, ``W_h = weight_hh_l0.T``, ``b_x = bias_ih_l0``,
``b_h = bias_hh_l0``.  Initialisation as PyTorch: every entry ~ U(-k, k),
k = 1/sqrt(H).

Masks (sequences of different lengths in one batch): with m_t (N,) in {0, 1},

    state_t = m_t * cell(x_t, state_{t-1}) + (1 - m_t) * state_{t-1},

so where m_t = 0 the state is carried unchanged and x_t gets zero gradient.

Backpropagation through time (Werbos 1990): the unroll is one deep network
whose layers share W.  With dh_t = dL/dh_t collected from the output at t and
from step t + 1, going t = T .. 1 (GRU):

    dn = dh_t (1 - z),  dz = dh_t (h_{t-1} - n)
    da_n = dn (1 - n^2),  da_z = dz z (1 - z),  da_r = da_n (h_{t-1} W_hn + b_hn) r (1 - r)
    dA_x,t = [da_r, da_z, da_n],   dA_h,t = [da_r, da_z, r da_n]
    dh_{t-1} = dh_t z + dA_h,t W_h^T

and (LSTM, dc_t arriving from step t + 1):

    dc = dc_t + dh_t o (1 - tanh^2 c_t)
    da_i = dc g i (1 - i),  da_f = dc c_{t-1} f (1 - f),  da_g = dc i (1 - g^2),
    da_o = dh_t tanh(c_t) o (1 - o),   dA_t = [da_i, da_f, da_g, da_o]
    dh_{t-1} = dA_t W_h^T,   dc_{t-1} = dc f.

The parameter gradients are sums over steps, computed after the loop as one
matmul each over the stacked (T N) rows:

    dW_x = sum_t x_t^T dA_x,t,  db_x = sum_{t,n} dA_x,t,
    dW_h = sum_t h_{t-1}^T dA_h,t,  db_h = sum_{t,n} dA_h,t,  dx_t = dA_x,t W_x^T.

With a mask, dh_t (and dc_t) is split: m_t dh_t enters the cell's backward,
(1 - m_t) dh_t passes to dh_{t-1} unchanged.

The layer protocol (shared by every layer in lvm_core.nn): parameters live in
the model's flat ``params`` dict under ``prefix``; ``init(rng)`` returns new
arrays; backward writes d loss/d param into ``grads`` (in place into existing
buffers).  The input projection x W_x + b_x of all T steps is one matmul
(:func:`lvm_core.functional.linear_forward`), the recurrence one (N, H) x
(H, 3H or 4H) matmul per step.

Example (the first layers of a character RNN; VRNN-style models call
``step_forward`` / ``step_backward`` instead, one step at a time)::

    emb, gru = Embedding(K, D, prefix="emb_"), GRUCell(D, H, prefix="gru_")
    params = {**emb.init(0), **gru.init(1)}
    X, c_emb = emb.forward(params, symbols)              # (T, N) -> (T, N, D)
    H_seq, c_gru = gru.forward(params, X, mask=mask)     # (T, N, H)
    grads = {}
    dX, dh0 = gru.backward_with_state(params, dH_seq, c_gru, grads)
    emb.backward(params, dX, c_emb, grads)               # grads holds all five keys
"""
from __future__ import annotations

import math
import numbers
from typing import NamedTuple

import numpy as np

from ..backend import _dtype_name, device_of, get_namespace
from ..functional.linear import linear_backward, linear_forward
from ..ops.dense import bias_act, matmul
from ..ops.recurrent import gru_gates, gru_gates_backward, lstm_gates, lstm_gates_backward
from ..random import as_generator, uniform
from ._grads import check_param, store_grad

__all__ = ["GRUCell", "LSTMCell", "GRUStepCache", "LSTMStepCache", "GRUCache", "LSTMCache"]


# --------------------------------------------------------------------------- caches
class GRUStepCache(NamedTuple):
    """One GRU step: input, previous state and the gate values."""

    x: object  # (N, D)
    h_prev: object  # (N, H)
    r: object  # (N, H)
    z: object  # (N, H)
    n: object  # (N, H)
    ghn: object  # (N, H)  h_prev W_hn + b_hn


class LSTMStepCache(NamedTuple):
    """One LSTM step: input, previous state, gates and tanh(c_t)."""

    x: object  # (N, D)
    h_prev: object  # (N, H)
    c_prev: object  # (N, H)
    gates: object  # (N, 4H) activated i, f, g, o
    tanh_c: object  # (N, H)


class GRUCache(NamedTuple):
    """A GRU unroll: what BPTT needs."""

    linear: object  # LinearCache of the input projection (x = X (T, N, D))
    h0: object  # (N, H)
    H_seq: object  # (T, N, H)
    gates: object  # (T, N, 3H) r, z, n
    ghn: object  # (T, N, H)
    mask: object  # (T, N, 1) float 0/1, or None


class LSTMCache(NamedTuple):
    """An LSTM unroll: what BPTT needs."""

    linear: object  # LinearCache of the input projection
    h0: object  # (N, H)
    c0: object  # (N, H)
    H_seq: object  # (T, N, H)
    C_seq: object  # (T, N, H)
    gates: object  # (T, N, 4H) i, f, g, o
    tanh_c: object  # (T, N, H) tanh of the unmasked new cell state
    mask: object  # (T, N, 1) float 0/1, or None


# --------------------------------------------------------------------------- shared
class _Cell:
    """Parameters, initialisation and input checks shared by GRU and LSTM."""

    n_gates = 0
    name = ""

    def __init__(self, D, H, prefix=""):
        for arg, value in (("D", D), ("H", H)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{arg} must be a positive integer; got {value!r}.")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str; got {type(prefix).__name__}.")
        self.D = int(D)
        self.H = int(H)
        self.prefix = prefix

    @property
    def param_names(self):
        """[prefix+"W_x", prefix+"W_h", prefix+"b_x", prefix+"b_h"]."""
        return [self.prefix + k for k in ("W_x", "W_h", "b_x", "b_h")]

    def _shapes(self):
        G = self.n_gates * self.H
        return {"W_x": (self.D, G), "W_h": (self.H, G), "b_x": (G,), "b_h": (G,)}

    def init(self, rng, dtype="float32", like=None):
        """New parameters, every entry ~ U(-1/sqrt(H), 1/sqrt(H)) (as PyTorch).

        Returns ``{prefix+"W_x": (D, G), prefix+"W_h": (H, G), prefix+"b_x": (G,),
        prefix+"b_h": (G,)}`` with G = 3H (GRU) or 4H (LSTM), on the namespace
        and device of ``like`` (NumPy when None).
        """
        dt = _dtype_name(dtype)
        if dt not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}.")
        rng = as_generator(rng)
        bound = 1.0 / math.sqrt(self.H)
        return {self.prefix + k: uniform(rng, shape, like=like, dtype=dt, low=-bound, high=bound)
                for k, shape in self._shapes().items()}

    def _params(self, params):
        shapes = self._shapes()
        owner = repr(self)
        W_x, W_h, b_x, b_h = (check_param(params, self.prefix + k, shapes[k], owner)
                              for k in ("W_x", "W_h", "b_x", "b_h"))
        get_namespace(W_x, W_h, b_x, b_h)
        return W_x, W_h, b_x, b_h

    def _check_x(self, x, W_x, ndim, name):
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            raise TypeError(
                f"{name} must be an array; got {type(x).__name__}. Convert it with "
                "lvm_core.backend.asarray(x, like=W)."
            )
        get_namespace(x, W_x)
        what = "(T, N, D)" if ndim == 3 else "(N, D)"
        if x.ndim != ndim or x.shape[-1] != self.D:
            raise ValueError(
                f"{name} must have shape {what} with D = {self.D}; got {tuple(x.shape)}. "
                + ("Put time first: X[t] is the batch at step t." if ndim == 3 else "")
            )
        if ndim == 3 and x.shape[0] < 1:
            raise ValueError(f"{name} must have at least one time step; got shape {tuple(x.shape)}.")
        if x.dtype != W_x.dtype:
            raise TypeError(
                f"{name} has dtype {x.dtype} but the parameters are {W_x.dtype}. Cast one "
                "of them explicitly (float32 models stay float32)."
            )

    def _state_array(self, s, N, like, name):
        xp = get_namespace(like)
        if s is None:
            return xp.zeros((N, self.H), dtype=like.dtype, device=device_of(like))
        if not hasattr(s, "shape"):
            raise TypeError(f"{name} must be an array of shape (N, H); got {type(s).__name__}.")
        get_namespace(s, like)
        if tuple(s.shape) != (N, self.H):
            raise ValueError(
                f"{name} must have shape (N, H) = ({N}, {self.H}); got {tuple(s.shape)}."
            )
        if s.dtype != like.dtype:
            raise TypeError(f"{name} has dtype {s.dtype}; expected {like.dtype} like the input.")
        return s

    def _mask(self, mask, T, N, like, check):
        """(T, N) 0/1 mask -> (T, N, 1) bool and float arrays (None, None without one)."""
        if mask is None:
            return None, None
        xp = get_namespace(like)
        if not hasattr(mask, "shape"):
            raise TypeError(f"mask must be an array of shape (T, N); got {type(mask).__name__}.")
        get_namespace(mask, like)
        if tuple(mask.shape) != (T, N):
            raise ValueError(
                f"mask must have shape (T, N) = ({T}, {N}) like X's first two axes; got "
                f"{tuple(mask.shape)}. Build it as mask[t, n] = t < length[n]."
            )
        if xp.isdtype(mask.dtype, "bool"):
            m_bool = mask
        else:
            if check and bool(xp.any((mask != 0) & (mask != 1))):
                raise ValueError(
                    "mask must hold only 0 and 1 (or booleans); got other values. "
                    "Use mask = (t < length) per sequence."
                )
            m_bool = mask != 0
        m_bool = m_bool[:, :, None]  # (T, N, 1)
        return m_bool, xp.astype(m_bool, like.dtype)

    def _input_projection(self, x_t, gx, W_x, b_x):
        """(gx, like): x_t W_x + b_x (N, G), computed or the caller's checked."""
        if gx is None:
            self._check_x(x_t, W_x, 2, "x_t")
            gx, _ = linear_forward(x_t, W_x, b_x)  # (N, G)
            return gx, x_t
        G = self.n_gates * self.H
        if not hasattr(gx, "shape") or gx.ndim != 2 or gx.shape[1] != G:
            raise ValueError(f"gx must be the input projection x_t W_x + b_x of shape (N, {G}); "
                             f"got {getattr(gx, 'shape', type(gx).__name__)}.")
        get_namespace(gx, W_x)
        if gx.dtype != W_x.dtype:
            raise TypeError(f"gx has dtype {gx.dtype} but the parameters are {W_x.dtype}.")
        if x_t is not None:
            self._check_x(x_t, W_x, 2, "x_t")
        return gx, gx

    def param_grads(self, grads, X, H_prev, dA_x, dA_h, accumulate=False):
        """Parameter gradients of steps whose gate gradients are known, summed over rows:

            dW_x = X^T dA_x,  db_x = sum_rows dA_x,  dW_h = H_prev^T dA_h,  db_h = sum_rows dA_h,

        for the stacked rows (M, .) of any number of steps (X the cell inputs
        (M, D), H_prev the states entering them (M, H), dA_x / dA_h (M, G) from
        :meth:`step_backward_gates`): one matmul per weight instead of one per
        step.  Writes (``accumulate=True``: adds) into ``grads``.
        """
        xp = get_namespace(X, H_prev, dA_x, dA_h)
        _write_param_grads(self, grads, xp.matmul(X.T, dA_x), xp.sum(dA_x, axis=0),
                           xp.matmul(H_prev.T, dA_h), xp.sum(dA_h, axis=0), accumulate)

    def backward(self, params, dH_seq, cache, grads, dstate_T=None, need_dx=True, ws=None,
                 accumulate=False):
        """BPTT through an unroll; returns dX (T, N, D), or None with need_dx=False.

        Same as :meth:`backward_with_state` without the gradient of the initial
        state (use that method when state0 is trained or comes from another layer).
        """
        return self.backward_with_state(params, dH_seq, cache, grads, dstate_T=dstate_T,
                                        need_dx=need_dx, ws=ws, accumulate=accumulate)[0]

    def __repr__(self):
        return f"{type(self).__name__}(D={self.D}, H={self.H}, prefix={self.prefix!r})"


def _write_param_grads(cell, grads, dW_x, db_x, dW_h, db_h, accumulate):
    p = cell.prefix
    store_grad(grads, p + "W_x", dW_x, accumulate)
    store_grad(grads, p + "W_h", dW_h, accumulate)
    store_grad(grads, p + "b_x", db_x, accumulate)
    store_grad(grads, p + "b_h", db_h, accumulate)


def _check_grad_array(d, like, name):
    """An incoming gradient: an array of ``like``'s namespace, shape and dtype."""
    if not hasattr(d, "shape") or not hasattr(d, "dtype"):
        raise TypeError(f"{name} must be an array of shape {tuple(like.shape)} or None; got "
                        f"{type(d).__name__}.")
    get_namespace(d, like)
    if tuple(d.shape) != tuple(like.shape):
        raise ValueError(f"{name} must have shape {tuple(like.shape)}; got {tuple(d.shape)}.")
    if d.dtype != like.dtype:
        raise TypeError(f"{name} has dtype {d.dtype}; expected {like.dtype} like the "
                        "forward pass.")
    return d


def _x_projection_backward(dA, lin_cache, need_dx):
    """(dx, dW_x, db_x) of gx = x W_x + b_x; dx None when not needed."""
    if need_dx:
        return linear_backward(dA, lin_cache)
    xp = get_namespace(dA)
    G = dA.shape[-1]
    dA2 = xp.reshape(dA, (-1, G))
    x2 = xp.reshape(lin_cache.x, (-1, lin_cache.W.shape[0]))
    return None, xp.matmul(x2.T, dA2), xp.sum(dA2, axis=0)


def _affine_state(h, W_h, b_h, out=None):
    """h W_h + b_h (N, G); on NumPy written into ``out`` (BLAS, then one fused pass)."""
    a = matmul(h, W_h, out=out)
    return bias_act(a, b_h, "identity", out=a)


def _into(buf, value):
    """``value`` stored in the view ``buf`` unless a fused op already wrote it there."""
    if value is not buf:
        buf[...] = value


def _add_into(a, b):
    """a + b, in place into ``a`` for NumPy arrays (``a`` is the caller's scratch)."""
    if type(a) is type(b) is np.ndarray:
        np.add(a, b, out=a)
        return a
    return a + b


def _plus_matmul(d, a, W, out=None):
    """d + a W (the state gradient flowing back through the recurrent matmul)."""
    m = matmul(a, W, out=out)
    if type(m) is type(d) is np.ndarray and m is out:
        np.add(m, d, out=m)
        return m
    return d + m


# --------------------------------------------------------------------------- GRU


class GRUCell(_Cell):
    """Gated recurrent unit (Cho et al. 2014) in PyTorch's form; see the module
    docstring for the equations and their BPTT.

    Parameters: ``prefix + "W_x"`` (D, 3H), ``"W_h"`` (H, 3H), ``"b_x"`` (3H,),
    ``"b_h"`` (3H,), gate columns in the order r, z, n.
    The state is h (N, H).
    """

    n_gates = 3

    # ----------------------------------------------------------------- one step
    def step_forward(self, params, x_t, state=None, ws=None, gx=None):
        """h_t = GRU(x_t, h_{t-1}).  Shapes: x_t (N, D), state h_{t-1} (N, H) or None
        (zeros).  Returns ``(h_t, cache)``; h_t is the next step's state.  ``ws`` is
        accepted for the layer protocol and unused.

        ``gx`` (N, 3H): the input projection x_t W_x + b_x when the caller has
        it already (e.g. computed for all steps in one matmul, or in parts);
        x_t is then only stored in the cache (it may be None when the caller
        takes the parameter gradients with :meth:`param_grads`)."""
        W_x, W_h, b_x, b_h = self._params(params)
        gx, like = self._input_projection(x_t, gx, W_x, b_x)
        h_prev = self._state_array(state, gx.shape[0], like, "state")
        gh = _affine_state(h_prev, W_h, b_h)  # (N, 3H)
        H = self.H
        g, h_new = gru_gates(gx, gh, h_prev)
        return h_new, GRUStepCache(x=x_t, h_prev=h_prev, r=g[:, :H], z=g[:, H:2 * H],
                                   n=g[:, 2 * H:], ghn=gh[:, 2 * H:])

    def step_backward(self, params, dstate_out, cache, grads, accumulate=True, need_dx=True,
                      ws=None):
        """Backward of one step for dstate_out = dL/dh_t (N, H).

        Adds (``accumulate=True``, the default: steps share the weights) or
        writes the parameter gradients into ``grads``.  Returns ``(dx_t,
        dh_{t-1})``; dx_t is None with ``need_dx=False``.
        """
        W_x, _, _, _ = self._params(params)
        c = cache
        dA_x, dA_h, dh_prev = self.step_backward_gates(params, dstate_out, cache)
        xp = get_namespace(dA_x, W_x)
        dx = xp.matmul(dA_x, W_x.T) if need_dx else None
        self.param_grads(grads, c.x, c.h_prev, dA_x, dA_h, accumulate=accumulate)
        return dx, dh_prev

    def step_backward_gates(self, params, dstate_out, cache):
        """The gate pre-activation gradients of one step, without parameter gradients.

        For dstate_out = dL/dh_t (N, H) returns ``(dA_x, dA_h, dh_{t-1})`` with
        dA_x = [da_r, da_z, da_n] and dA_h = [da_r, da_z, r da_n] (N, 3H) (module
        docstring).  Then dx_t = dA_x W_x^T, and the parameter gradients of any
        number of steps are one :meth:`param_grads` call on their stacked rows.
        """
        _, W_h, _, _ = self._params(params)
        c = cache
        _check_grad_array(dstate_out, c.h_prev, "dstate_out")
        xp = get_namespace(dstate_out, W_h)
        gates = xp.concat([c.r, c.z, c.n], axis=1)  # (N, 3H)
        dA_x, dA_h, dh_z = gru_gates_backward(dstate_out, c.h_prev, gates, c.ghn)
        dh_prev = _plus_matmul(dh_z, dA_h, W_h.T)
        return dA_x, dA_h, dh_prev

    # ----------------------------------------------------------------- unroll
    def forward(self, params, X, state0=None, mask=None, ws=None, check=True):
        """H_seq[t] = h_t for t = 1 .. T.  Shapes: X (T, N, D), state0 h_0 (N, H) or
        None (zeros), mask (T, N) of 0/1 or bool, or None.  Returns ``(H_seq, cache)``
        with H_seq (T, N, H); the final state is H_seq[T - 1].

        ``check=False`` skips the 0/1 check of a non-boolean mask (one device ->
        host sync).  ``ws`` is accepted for the layer protocol and unused.
        """
        W_x, W_h, b_x, b_h = self._params(params)
        self._check_x(X, W_x, 3, "X")
        xp = get_namespace(X, W_x)
        T, N, _ = X.shape
        H = self.H
        h0 = self._state_array(state0, N, X, "state0")
        m_bool, m_float = self._mask(mask, T, N, X, check)
        GX, lin_cache = linear_forward(X, W_x, b_x)  # (T, N, 3H): every step at once
        dev = device_of(X)
        H_seq = xp.empty((T, N, H), dtype=X.dtype, device=dev)
        gates = xp.empty((T, N, 3 * H), dtype=X.dtype, device=dev)
        ghn_seq = xp.empty((T, N, H), dtype=X.dtype, device=dev)
        gh_buf = xp.empty((N, 3 * H), dtype=X.dtype, device=dev)
        h = h0
        for t in range(T):
            gh = _affine_state(h, W_h, b_h, out=gh_buf)  # (N, 3H)
            g_t, h_t = gates[t, ...], H_seq[t, ...]
            g, h_new = gru_gates(GX[t, ...], gh, h, gates=g_t,
                                 h_new=h_t if m_bool is None else None)
            _into(g_t, g)
            if m_bool is not None:
                h_new = xp.where(m_bool[t, ...], h_new, h)
            _into(h_t, h_new)
            ghn_seq[t, ...] = gh[:, 2 * H:]
            h = h_t
        return H_seq, GRUCache(linear=lin_cache, h0=h0, H_seq=H_seq, gates=gates,
                               ghn=ghn_seq, mask=m_float)

    def backward_with_state(self, params, dH_seq, cache, grads, dstate_T=None, need_dx=True,
                            ws=None, accumulate=False):
        """Backpropagation through time (Werbos 1990) of an unroll.

        ``dH_seq`` (T, N, H) = dL/dH_seq (None: zeros), ``dstate_T`` (N, H) =
        dL/dh_T from beyond the sequence (None: zeros; a loss on the final state
        may equally be put into dH_seq[T - 1]).  Writes (``accumulate=True``:
        adds) the parameter gradients into ``grads``.  Returns ``(dX, dh0)``:
        dX (T, N, D) (None with ``need_dx=False``) and dh0 = dL/d state0 (N, H).
        """
        W_x, W_h, _, _ = self._params(params)
        c = cache
        xp = get_namespace(c.H_seq, W_h)
        T, N, H = c.H_seq.shape
        if dstate_T is None:
            dh = xp.zeros((N, H), dtype=c.h0.dtype, device=device_of(c.h0))
        else:
            dh = _check_grad_array(dstate_T, c.h0, "dstate_T")
        if dH_seq is not None:
            _check_grad_array(dH_seq, c.H_seq, "dH_seq")
        dev = device_of(c.H_seq)
        dA_x = xp.empty((T, N, 3 * H), dtype=c.H_seq.dtype, device=dev)
        dA_h = xp.empty((T, N, 3 * H), dtype=c.H_seq.dtype, device=dev)
        dh_z_buf = xp.empty((N, H), dtype=c.H_seq.dtype, device=dev)
        dh_buf = xp.empty((N, H), dtype=c.H_seq.dtype, device=dev)  # dh, once consumed
        for t in range(T - 1, -1, -1):
            if dH_seq is not None:
                dh = dh + dH_seq[t, ...]
            h_prev = c.H_seq[t - 1, ...] if t > 0 else c.h0
            if c.mask is not None:
                dh_cell = dh * c.mask[t, ...]  # enters the cell where m_t = 1
                dh_carry = dh - dh_cell  # passes straight to h_{t-1} where m_t = 0
            else:
                dh_cell = dh
            ax_t, ah_t = dA_x[t, ...], dA_h[t, ...]
            ax, ah, dh_z = gru_gates_backward(dh_cell, h_prev, c.gates[t, ...], c.ghn[t, ...],
                                              dA_x=ax_t, dA_h=ah_t, dh_z=dh_z_buf)
            _into(ax_t, ax)
            _into(ah_t, ah)
            dh = _plus_matmul(dh_z, ah_t, W_h.T, out=dh_buf)
            if c.mask is not None:
                dh = dh + dh_carry
        dX, dW_x, db_x = _x_projection_backward(dA_x, c.linear, need_dx)
        H_prev = xp.reshape(xp.concat([c.h0[None, ...], c.H_seq[:T - 1, ...]], axis=0),
                            (T * N, H))  # (T N, H): the state entering each step
        dA_h2 = xp.reshape(dA_h, (T * N, 3 * H))
        _write_param_grads(self, grads, dW_x, db_x, xp.matmul(H_prev.T, dA_h2),
                           xp.sum(dA_h2, axis=0), accumulate)
        return dX, dh

# --------------------------------------------------------------------------- LSTM


class LSTMCell(_Cell):
    """Long short-term memory (Hochreiter & Schmidhuber 1997; forget gate, Gers et al.
    2000) in PyTorch's form; see the module docstring for the equations and BPTT.

    Parameters: ``prefix + "W_x"`` (D, 4H), ``"W_h"`` (H, 4H), ``"b_x"`` (4H,),
    ``"b_h"`` (4H,), gate columns in the order i, f, g, o.
    The state is the tuple (h, c), each (N, H).
    """

    n_gates = 4

    def _state_pair(self, state, N, like, name):
        if state is None:
            state = (None, None)
        if not isinstance(state, (tuple, list)) or len(state) != 2:
            raise TypeError(
                f"{name} of an LSTMCell must be a tuple (h, c) of (N, H) arrays, or None; "
                f"got {type(state).__name__}."
            )
        return (self._state_array(state[0], N, like, name + "[0] (h)"),
                self._state_array(state[1], N, like, name + "[1] (c)"))

    # ----------------------------------------------------------------- one step
    def step_forward(self, params, x_t, state=None, ws=None, gx=None):
        """(h_t, c_t) = LSTM(x_t, (h_{t-1}, c_{t-1})).  Shapes: x_t (N, D), state a
        tuple of (N, H) arrays or None (zeros).  Returns ``((h_t, c_t), cache)``;
        the tuple is the next step's state.  ``ws`` is accepted and unused.
        ``gx`` (N, 4H): the input projection x_t W_x + b_x when the caller has it
        (see :meth:`GRUCell.step_forward`)."""
        W_x, W_h, b_x, b_h = self._params(params)
        gx, like = self._input_projection(x_t, gx, W_x, b_x)
        h_prev, c_prev = self._state_pair(state, gx.shape[0], like, "state")
        a = _add_into(_affine_state(h_prev, W_h, b_h), gx)  # (N, 4H)
        gates, c_new, tanh_c, h_new = lstm_gates(a, c_prev)
        return (h_new, c_new), LSTMStepCache(x=x_t, h_prev=h_prev, c_prev=c_prev, gates=gates,
                                             tanh_c=tanh_c)

    def step_backward(self, params, dstate_out, cache, grads, accumulate=True, need_dx=True,
                      ws=None):
        """Backward of one step for dstate_out = (dL/dh_t, dL/dc_t) (either may be
        None: zeros).

        Adds (``accumulate=True``, the default) or writes the parameter gradients
        into ``grads``.  Returns ``(dx_t, (dh_{t-1}, dc_{t-1}))``; dx_t is None with
        ``need_dx=False``.
        """
        W_x, _, _, _ = self._params(params)
        c = cache
        dA, _, dstate_prev = self.step_backward_gates(params, dstate_out, cache)
        xp = get_namespace(dA, W_x)
        dx = xp.matmul(dA, W_x.T) if need_dx else None
        self.param_grads(grads, c.x, c.h_prev, dA, dA, accumulate=accumulate)
        return dx, dstate_prev

    def step_backward_gates(self, params, dstate_out, cache):
        """The gate pre-activation gradients of one step, without parameter gradients.

        For dstate_out = (dL/dh_t, dL/dc_t) returns ``(dA, dA, (dh_{t-1},
        dc_{t-1}))`` with dA = [da_i, da_f, da_g, da_o] (N, 4H) (the same array
        twice: the input and recurrent projections share it; the signature is
        :meth:`GRUCell.step_backward_gates`'s).  dx_t = dA W_x^T; parameter
        gradients by :meth:`param_grads`.
        """
        _, W_h, _, _ = self._params(params)
        c = cache
        dh, dc = self._state_pair(dstate_out, c.h_prev.shape[0], c.h_prev, "dstate_out")
        xp = get_namespace(dh, W_h)
        dA, dc_prev = lstm_gates_backward(dh, dc, c.c_prev, c.gates, c.tanh_c)  # (N, 4H)
        dh_prev = xp.matmul(dA, W_h.T)
        return dA, dA, (dh_prev, dc_prev)

    # ----------------------------------------------------------------- unroll
    def forward(self, params, X, state0=None, mask=None, ws=None, check=True):
        """H_seq[t] = h_t for t = 1 .. T.  Shapes: X (T, N, D), state0 a tuple
        (h_0, c_0) of (N, H) arrays or None (zeros), mask (T, N) of 0/1 or bool, or
        None.  Returns ``(H_seq, cache)``; the final state is (H_seq[T - 1],
        cache.C_seq[T - 1]).

        ``check=False`` skips the 0/1 check of a non-boolean mask.  ``ws`` is
        accepted for the layer protocol and unused.
        """
        W_x, W_h, b_x, b_h = self._params(params)
        self._check_x(X, W_x, 3, "X")
        xp = get_namespace(X, W_x)
        T, N, _ = X.shape
        H = self.H
        h0, c0 = self._state_pair(state0, N, X, "state0")
        m_bool, m_float = self._mask(mask, T, N, X, check)
        GX, lin_cache = linear_forward(X, W_x, b_x)  # (T, N, 4H)
        dev = device_of(X)
        H_seq = xp.empty((T, N, H), dtype=X.dtype, device=dev)
        C_seq = xp.empty((T, N, H), dtype=X.dtype, device=dev)
        tanh_seq = xp.empty((T, N, H), dtype=X.dtype, device=dev)
        gates = xp.empty((T, N, 4 * H), dtype=X.dtype, device=dev)
        a_buf = xp.empty((N, 4 * H), dtype=X.dtype, device=dev)
        h, c = h0, c0
        for t in range(T):
            a = _affine_state(h, W_h, b_h, out=a_buf)
            a = _add_into(a, GX[t, ...])  # (N, 4H)
            g_t, tc_t, h_t, c_t = gates[t, ...], tanh_seq[t, ...], H_seq[t, ...], C_seq[t, ...]
            unmasked = m_bool is None
            g, c_new, tanh_c, h_new = lstm_gates(a, c, gates=g_t, tanh_c=tc_t,
                                                 c_new=c_t if unmasked else None,
                                                 h_new=h_t if unmasked else None)
            _into(g_t, g)
            _into(tc_t, tanh_c)
            if not unmasked:
                c_new = xp.where(m_bool[t, ...], c_new, c)
                h_new = xp.where(m_bool[t, ...], h_new, h)
            _into(h_t, h_new)
            _into(c_t, c_new)
            h, c = h_t, c_t
        return H_seq, LSTMCache(linear=lin_cache, h0=h0, c0=c0, H_seq=H_seq, C_seq=C_seq,
                                gates=gates, tanh_c=tanh_seq, mask=m_float)

    def backward_with_state(self, params, dH_seq, cache, grads, dstate_T=None, need_dx=True,
                            ws=None, accumulate=False):
        """Backpropagation through time (Werbos 1990) of an unroll.

        ``dH_seq`` (T, N, H) = dL/dH_seq (None: zeros); ``dstate_T`` = (dL/dh_T,
        dL/dc_T) from beyond the sequence (None, or either entry None: zeros).
        Writes (``accumulate=True``: adds) the parameter gradients into
        ``grads``.  Returns ``(dX, (dh0, dc0))``: dX (T, N, D) (None with
        ``need_dx=False``) and the gradient of the initial state.
        """
        W_x, W_h, _, _ = self._params(params)
        c = cache
        xp = get_namespace(c.H_seq, W_h)
        T, N, H = c.H_seq.shape
        dh, dc = self._state_pair(dstate_T, N, c.h0, "dstate_T")
        if dH_seq is not None:
            _check_grad_array(dH_seq, c.H_seq, "dH_seq")
        dA = xp.empty((T, N, 4 * H), dtype=c.H_seq.dtype, device=device_of(c.H_seq))
        for t in range(T - 1, -1, -1):
            if dH_seq is not None:
                dh = dh + dH_seq[t, ...]
            c_prev = c.C_seq[t - 1, ...] if t > 0 else c.c0
            if c.mask is not None:
                m = c.mask[t, ...]
                dh_cell, dc_cell = dh * m, dc * m
                dh_carry, dc_carry = dh - dh_cell, dc - dc_cell
            else:
                dh_cell, dc_cell = dh, dc
            dA_t = dA[t, ...]
            d, dc = lstm_gates_backward(dh_cell, dc_cell, c_prev, c.gates[t, ...],
                                        c.tanh_c[t, ...], dA=dA_t)
            _into(dA_t, d)
            dh = xp.matmul(dA_t, W_h.T)
            if c.mask is not None:
                dh = dh + dh_carry
                dc = dc + dc_carry
        dX, dW_x, db_x = _x_projection_backward(dA, c.linear, need_dx)
        H_prev = xp.reshape(xp.concat([c.h0[None, ...], c.H_seq[:T - 1, ...]], axis=0),
                            (T * N, H))  # (T N, H)
        dA2 = xp.reshape(dA, (T * N, 4 * H))
        _write_param_grads(self, grads, dW_x, db_x, xp.matmul(H_prev.T, dA2),
                           xp.sum(dA2, axis=0), accumulate)
        return dX, (dh, dc)
