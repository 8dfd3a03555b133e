"""Layers with handwritten backward passes and reusable buffers.

References: Bishop PRML sec. 5.1-5.3 (affine layers, backpropagation);
Kingma & Welling 2014 (the Gaussian head of a VAE encoder); Germain et al.
2015, "MADE" (masked connectivity).

Every layer follows the protocol of :mod:`lvm_core.nn` (see its docstring):
parameters live in the model's flat ``params`` dict under the layer's keys;
``forward(params, x, ws)`` returns ``(y, cache)``; ``backward(params, dy,
cache, grads, ws, need_dx)`` writes d loss/d param into ``grads`` and returns
d loss/d x.  The arithmetic is done by :mod:`lvm_core.ops` (numba kernels and
BLAS into workspace buffers for NumPy float arrays, array-API code otherwise).
"""
from __future__ import annotations

import numbers

import numpy as np

from .. import ops
from ..backend import asarray, device_of, get_namespace
from ..ops._dispatch import writable_out
from ._grads import store_grad
from .init import INIT_SCHEMES, init_linear

__all__ = ["Dense", "GaussianHead", "MaskedDense", "store_grad"]


def _buffer(ws, name, shape, like):
    """A workspace buffer for a NumPy result, or None (the op allocates)."""
    if ws is None or type(like) is not np.ndarray:
        return None
    return ws.empty(name, shape, like)


def _grad_out(grads, key, shape, dtype):
    """The NumPy buffer grads[key] when a fused op can write into it, else None."""
    return writable_out(grads.get(key), shape, dtype)


def _check_size(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}.")
    return int(value)


def _get(params, key, owner):
    """params[key], or a KeyError naming ``owner`` (its repr is taken only then)."""
    try:
        return params[key]
    except KeyError:
        raise KeyError(
            f"params has no entry {key!r}; {owner!r} needs it. Pass the model's params dict "
            "(create the entries with layer.init(rng))."
        ) from None


def _check_input(x, W, owner):
    """x (N, D_in) in W's dtype, or an error naming ``owner`` (its repr is taken only then)."""
    if x.ndim != 2 or x.shape[1] != W.shape[0]:
        raise ValueError(
            f"{owner!r}: x must have shape (N, D_in) with D_in = {W.shape[0]}; got "
            f"{tuple(x.shape)}. Check the layer sizes."
        )
    if x.dtype != W.dtype:
        raise TypeError(
            f"{owner!r}: x has dtype {x.dtype} but the weights have {W.dtype}; cast the data "
            "to the model's dtype (float32 models stay float32)."
        )


class Dense:
    """Affine layer with an activation: y = act(x W + b).

    Shapes: x (N, D_in), W (D_in, D_out), b (D_out,), y (N, D_out).
    Backward: da = dy act'(a), dW = x^T da, db = sum_n da, dx = da W^T.
    With ``transpose=True`` W is stored (D_out, D_in) (y = x W^T, dW = da^T x,
    dx = da W), the layout of torch's nn.Linear and of models written as
    ``mu = V x``; with ``bias=False`` there is no b.

    Parameters
    ----------
    d_in, d_out : int
    activation : str or None
        One of :data:`lvm_core.ops.ACTIVATIONS` (None = identity).
    prefix, suffix : str
        Keys are ``prefix + "W" + suffix`` and ``prefix + "b" + suffix``
        (``Dense(..., prefix="enc_", suffix="0")`` owns ``enc_W0``, ``enc_b0``),
        unless ``W_key`` / ``b_key`` name them outright.
    init : {"torch", "glorot", "he"}
        Scheme of :func:`lvm_core.nn.init_linear`.
    bias, transpose : bool
    """

    def __init__(self, d_in, d_out, activation=None, prefix="", suffix="", init="torch",
                 bias=True, transpose=False, W_key=None, b_key=None):
        self.d_in = _check_size(d_in, "d_in")
        self.d_out = _check_size(d_out, "d_out")
        self.activation = ops.check_activation(activation)
        if init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {INIT_SCHEMES}; got {init!r}.")
        self.init_scheme = init
        self.bias = bool(bias)
        self.transpose = bool(transpose)
        self.W_key = f"{prefix}W{suffix}" if W_key is None else W_key
        self.b_key = (f"{prefix}b{suffix}" if b_key is None else b_key) if self.bias else None
        self._W_shape = (self.d_out, self.d_in) if self.transpose else (self.d_in, self.d_out)

    @property
    def param_names(self):
        return [self.W_key, self.b_key] if self.bias else [self.W_key]

    def init(self, rng, dtype="float32", like=None):
        """{W_key: W, b_key: b (D_out,)} drawn with ``init``'s scheme (W (D_in, D_out),
        or (D_out, D_in) when transposed)."""
        W, b = init_linear(rng, self.d_in, self.d_out, scheme=self.init_scheme, dtype=dtype,
                           like=like)
        if self.transpose:  # (D_out, D_in), C-contiguous on NumPy (the fused ops need it)
            W = np.ascontiguousarray(W.T) if type(W) is np.ndarray else \
                get_namespace(W).asarray(W.T, copy=True)
        return {self.W_key: W, self.b_key: b} if self.bias else {self.W_key: W}

    def _weight(self, params, ws):
        return _get(params, self.W_key, self)

    def _bias(self, params, like):
        if self.bias:
            return _get(params, self.b_key, self)
        xp = get_namespace(like)
        return xp.zeros((self.d_out,), dtype=like.dtype, device=device_of(like))

    def forward(self, params, x, ws=None, out=None):
        """y = act(x W + b); returns (y, cache).

        ``out``: a buffer (N, D_out) for y (NumPy: written in place, e.g. one
        step's rows of a (T, N, D_out) array; ignored by other namespaces),
        instead of the workspace's.  Always use the returned y.
        """
        W = self._weight(params, ws)
        _check_input(x, W.T if self.transpose else W, self)
        if out is None or type(out) is not np.ndarray:
            out = _buffer(ws, self.W_key + ".y", (x.shape[0], self.d_out), x)
        a = ops.matmul(x, W.T if self.transpose else W, out=out)
        if not self.bias and self.activation == "identity":
            return a, (x, a)
        y = ops.bias_act(a, self._bias(params, a), self.activation, out=a, ws=ws,
                         name=self.W_key)
        return y, (x, y)

    def _weight_grad(self, dW_raw):
        return dW_raw

    def backward(self, params, dy, cache, grads, ws=None, need_dx=True):
        """Writes grads[W_key] (and grads[b_key]); returns dx (N, D_in) or None."""
        x, y = cache
        N = x.shape[0]
        if not self.bias and self.activation == "identity":
            da = dy
        else:
            da, db = ops.bias_act_backward(
                dy, y, self.activation,
                out=None if self.activation == "identity" else _buffer(
                    ws, self.W_key + ".da", (N, self.d_out), dy),
                db_out=_grad_out(grads, self.b_key, (self.d_out,), dy.dtype) if self.bias
                else None, ws=ws, name=self.W_key)
            if self.bias:
                store_grad(grads, self.b_key, db)
        out = _grad_out(grads, self.W_key, self._W_shape, x.dtype)
        dW = ops.matmul(da.T, x, out=out) if self.transpose else ops.matmul(x.T, da, out=out)
        store_grad(grads, self.W_key, self._weight_grad(dW))
        if not need_dx:
            return None
        W = self._weight(params, ws)
        return ops.matmul(da, W if self.transpose else W.T,
                          out=_buffer(ws, self.W_key + ".dx", (N, self.d_in), x))

    def __repr__(self):
        return (f"{type(self).__name__}({self.d_in}, {self.d_out}, "
                f"activation={self.activation!r}, keys={self.param_names})")


class MaskedDense(Dense):
    """Dense layer with a fixed 0/1 connectivity mask on W (MADE, Germain et al. 2015).

    y = act(x (W * M) + b),   dW = (x^T da) * M,   dx = da (W * M)^T.

    ``mask`` (D_in, D_out) of 0/1 values (any array-like; kept on the host and
    moved next to W on use).  Entries of W where M = 0 never influence the
    output and get a zero gradient.
    """

    def __init__(self, d_in, d_out, mask, activation=None, prefix="", suffix="", init="torch"):
        super().__init__(d_in, d_out, activation=activation, prefix=prefix, suffix=suffix,
                         init=init)
        host = np.asarray(mask)
        if host.shape != (self.d_in, self.d_out):
            raise ValueError(
                f"mask must have shape (d_in, d_out) = ({self.d_in}, {self.d_out}); got "
                f"{host.shape}. (MaskedDense stores W as (d_in, d_out).)"
            )
        if not np.all((host == 0) | (host == 1)):
            raise ValueError("mask must hold only 0 and 1 (connection absent / present).")
        self.mask = host.astype(np.float64)
        self._masks = {}

    def _mask_like(self, W):
        key = (type(W), str(device_of(W)), str(W.dtype))
        m = self._masks.get(key)
        if m is None:
            m = asarray(self.mask, like=W, dtype=W.dtype)
            self._masks[key] = m
        return m

    def _weight(self, params, ws):
        W = _get(params, self.W_key, self)
        mask = self._mask_like(W)
        out = _buffer(ws, self.W_key + ".masked", W.shape, W)
        if out is not None:
            return np.multiply(W, mask, out=out)
        return W * mask

    def _weight_grad(self, dW_raw):
        mask = self._mask_like(dW_raw)
        if type(dW_raw) is np.ndarray:
            return np.multiply(dW_raw, mask, out=dW_raw)
        return dW_raw * mask


class GaussianHead:
    """mu and log_var of a diagonal Gaussian from one matmul (Kingma & Welling 2014, app. C.2).

    [mu | log_var] = x [W_mu | W_log_var] + [b_mu | b_log_var]
    Backward with dy = (dmu, dlog_var): dh = [dmu | dlog_var],
    d[W_mu | W_log_var] = x^T dh, db = sum_n dh, dx = dh [W_mu | W_log_var]^T.

    Keys ``prefix + "W_" + mu_name``, ``prefix + "b_" + mu_name`` and the same
    with ``log_var_name`` (defaults "mu", "log_var": ``enc_W_mu``, ...).
    ``forward`` returns y = (mu, log_var), each (N, L).
    """

    def __init__(self, d_in, d_out, prefix="", mu_name="mu", log_var_name="log_var",
                 init="torch"):
        self.d_in = _check_size(d_in, "d_in")
        self.d_out = _check_size(d_out, "d_out")
        self.mu = Dense(d_in, d_out, prefix=prefix + "", suffix="_" + mu_name, init=init)
        self.log_var = Dense(d_in, d_out, prefix=prefix, suffix="_" + log_var_name, init=init)
        self._name = self.mu.W_key + "+" + self.log_var.W_key

    @property
    def param_names(self):
        return self.mu.param_names + self.log_var.param_names

    def init(self, rng, dtype="float32", like=None):
        """Draws (W_mu, b_mu) then (W_log_var, b_log_var), as two Dense layers would."""
        params = self.mu.init(rng, dtype=dtype, like=like)
        params.update(self.log_var.init(rng, dtype=dtype, like=like))
        return params

    def _stacked(self, params, ws):
        W_mu = _get(params, self.mu.W_key, self)
        W_lv = _get(params, self.log_var.W_key, self)
        b_mu = _get(params, self.mu.b_key, self)
        b_lv = _get(params, self.log_var.b_key, self)
        L = self.d_out
        W = _buffer(ws, self._name + ".W", (self.d_in, 2 * L), W_mu)
        b = _buffer(ws, self._name + ".b", (2 * L,), b_mu)
        if W is None or b is None:
            xp = get_namespace(W_mu, W_lv, b_mu, b_lv)
            return xp.concat([W_mu, W_lv], axis=1), xp.concat([b_mu, b_lv], axis=0)
        W[:, :L] = W_mu
        W[:, L:] = W_lv
        b[:L] = b_mu
        b[L:] = b_lv
        return W, b

    def forward(self, params, x, ws=None, out=None):
        """(mu, log_var), each (N, L); returns ((mu, log_var), cache).

        ``out``: a buffer (N, 2L) for [mu | log_var] (NumPy; see :meth:`Dense.forward`).
        """
        W, b = self._stacked(params, ws)
        _check_input(x, W, self)
        L = self.d_out
        if out is None or type(out) is not np.ndarray:
            out = _buffer(ws, self._name + ".y", (x.shape[0], 2 * L), x)
        h = ops.matmul(x, W, out=out)
        h = ops.bias_act(h, b, "identity", out=h)
        return (h[:, :L], h[:, L:]), (x, W)

    def backward(self, params, dy, cache, grads, ws=None, need_dx=True):
        """dy = (dmu, dlog_var); writes the four gradients; returns dx (N, D_in) or None."""
        x, W = cache
        dmu, dlog_var = dy
        L, N = self.d_out, x.shape[0]
        dh = _buffer(ws, self._name + ".dh", (N, 2 * L), dmu)
        if dh is None:
            dh = get_namespace(dmu, dlog_var).concat([dmu, dlog_var], axis=1)
        else:
            dh[:, :L] = dmu
            dh[:, L:] = dlog_var
        _, db = ops.bias_act_backward(dh, None, "identity",
                                      db_out=_buffer(ws, self._name + ".db", (2 * L,), dh))
        dW = ops.matmul(x.T, dh, out=_buffer(ws, self._name + ".dW", (self.d_in, 2 * L), x))
        store_grad(grads, self.mu.W_key, dW[:, :L], copy=True)
        store_grad(grads, self.log_var.W_key, dW[:, L:], copy=True)
        store_grad(grads, self.mu.b_key, db[:L], copy=True)
        store_grad(grads, self.log_var.b_key, db[L:], copy=True)
        if not need_dx:
            return None
        return ops.matmul(dh, W.T, out=_buffer(ws, self._name + ".dx", (N, self.d_in), x))

    def __repr__(self):
        return f"GaussianHead({self.d_in}, {self.d_out}, keys={self.param_names})"
