"""Dense-layer primitives: matmul into a buffer, bias + activation, and its backward
fused with the bias-gradient reduction (Bishop PRML sec. 5.3, backpropagation).

For a layer y = act(a + b), a = x W (x (N, D_in), W (D_in, H), b (H,)):

    forward:   y = act(a + b)
    backward:  da = dy * act'(a + b),   db = sum_n da_n,   dW = x^T da,   dx = da W^T

Every activation's derivative is written with its output y, so the backward
needs no copy of the pre-activation:

    relu        y > 0                     leaky_relu  1 if y > 0 else slope (0.01)
    tanh        1 - y^2                   sigmoid     y (1 - y)
    softplus    1 - exp(-y) = sigmoid(a)  elu         1 if y > 0 else y + alpha (alpha 1)
    identity    1

(Clevert et al. 2016 for the ELU.)  NumPy float32/float64 arrays take one
numba pass (exp/log in NumPy ufuncs where needed); other arrays take
:mod:`lvm_core.ops.reference`.
"""
from __future__ import annotations

import numpy as np

from . import _cupy
from . import _kernels as K
from . import reference as ref
from ._dispatch import fusable, writable_out
from .workspace import scratch

__all__ = ["ACTIVATIONS", "matmul", "bias_act", "bias_act_backward"]

ACTIVATIONS = tuple(ref.ACTIVATIONS)


def check_activation(activation, name="activation"):
    """``activation`` as a valid name (None means identity), or a ValueError."""
    key = "identity" if activation is None else activation
    if key not in ref.ACTIVATIONS:
        raise ValueError(
            f"{name} must be one of {sorted(ref.ACTIVATIONS)} or None; got {activation!r}."
        )
    return key


def matmul(a, b, out=None):
    """a @ b; with NumPy arrays written into ``out`` (BLAS, no temporary) when given.

    Shapes (N, K) @ (K, M) -> (N, M).  Always use the returned array.
    """
    if type(a) is np.ndarray and type(b) is np.ndarray and out is not None \
            and type(out) is np.ndarray:
        return np.matmul(a, b, out=out)
    return ref.matmul(a, b)


def bias_act(a, b, activation, out=None, ws=None, name="bias_act"):
    """y = act(a + b); a (N, H), b (H,) -> y (N, H).

    The fused path writes y into ``out`` (which may be ``a`` itself); ``ws`` holds
    its scratch (under ``name``).  Always use the returned array.
    """
    if _cupy.applies(a, b) and a.ndim == 2 and activation in ref.ACTIVATIONS:
        return _cupy.bias_act(a, b, activation, out)
    if not fusable(a, b) or a.ndim != 2:
        return ref.bias_act(a, b, activation)
    y = writable_out(out, a.shape, a.dtype)
    if y is None:
        y = np.empty_like(a)
    dt = a.dtype.type
    inplace = y is a  # one-array kernels: two arguments that are one array run scalar
    if activation in ("identity", "tanh"):
        if inplace:
            K.bias_identity_(y, b)
        else:
            K.bias_identity(a, b, y)
        if activation == "tanh":
            np.tanh(y, out=y)
    elif activation == "relu":
        if inplace:
            K.bias_relu_(y, b)
        else:
            K.bias_relu(a, b, y)
    elif activation == "leaky_relu":
        slope = dt(ref.ACTIVATIONS["leaky_relu"])
        if inplace:
            K.bias_leaky_relu_(y, b, slope)
        else:
            K.bias_leaky_relu(a, b, slope, y)
    elif activation == "elu" and a.dtype == np.float32:  # one pass, polynomial exp
        if inplace:
            K.bias_elu_f32_(y, b, dt(ref.ACTIVATIONS["elu"]))
        else:
            K.bias_elu_f32(a, b, dt(ref.ACTIVATIONS["elu"]), y)
    elif activation == "elu":
        t = scratch(ws, name + ".t", a.shape, a)
        if inplace:
            K.bias_min0_(y, b, t)
        else:
            K.bias_min0(a, b, y, t)
        np.exp(t, out=t)
        K.elu_finish(y, t, dt(ref.ACTIVATIONS["elu"]))
    elif activation in ("sigmoid", "softplus"):
        t = scratch(ws, name + ".t", a.shape, a)
        if inplace:
            K.bias_neg_abs_(y, b, t)
        else:
            K.bias_neg_abs(a, b, y, t)
        np.exp(t, out=t)
        if activation == "sigmoid":
            K.sigmoid_finish(y, t)
        else:
            np.log1p(t, out=t)
            K.softplus_finish(y, t)
    else:
        check_activation(activation)
    return y


def bias_act_backward(dy, y, activation, out=None, db_out=None, ws=None, name="bias_act"):
    """da = dy * act'(a) (from y = act(a)) and db = sum_n da.  Returns (da, db).

    dy, y (N, H) -> da (N, H), db (H,).  The fused path writes da into ``out``
    (which may be ``dy`` when the caller owns it) and db into ``db_out``.  For
    the identity, da is ``dy`` itself when no ``out`` is given.
    """
    if _cupy.applies(dy, y) and dy.ndim == 2 and activation in ref.ACTIVATIONS:
        return _cupy.bias_act_backward(dy, y, activation, out, db_out)
    if not fusable(dy, y) or dy.ndim != 2:
        return ref.bias_act_backward(dy, y, activation)
    N, H = dy.shape
    db = writable_out(db_out, (H,), dy.dtype)
    if db is None:
        db = np.empty(H, dtype=dy.dtype)
    if activation == "identity":
        if out is None:
            K.col_sum(dy, db)
            return dy, db
    da = writable_out(out, dy.shape, dy.dtype)
    if da is None:
        da = np.empty_like(dy)
    dt = dy.dtype.type
    if activation == "identity":
        K.identity_backward_bias(dy, da, db)
    elif activation == "relu":
        K.relu_backward_bias(dy, y, da, db)
    elif activation == "leaky_relu":
        K.leaky_relu_backward_bias(dy, y, dt(ref.ACTIVATIONS["leaky_relu"]), da, db)
    elif activation == "elu":
        K.elu_backward_bias(dy, y, dt(ref.ACTIVATIONS["elu"]), da, db)
    elif activation == "tanh":
        K.tanh_backward_bias(dy, y, da, db)
    elif activation == "sigmoid":
        K.sigmoid_backward_bias(dy, y, da, db)
    elif activation == "softplus":
        m = scratch(ws, name + ".m", y.shape, y)
        np.negative(y, out=m)
        np.expm1(m, out=m)
        K.softplus_backward_bias(dy, m, da, db)
    else:
        check_activation(activation)
    return da, db
