"""Log-likelihoods as value + gradient in one pass (Bishop PRML sec. 2.1, 2.3, 4.3;
Loaiza-Ganem & Cunningham 2019 for the continuous Bernoulli).

Each function returns the per-row log-likelihood ll (M,) (summed over the
last axis) and ``scale`` times the gradient of sum_n ll_n with respect to the
decoder outputs: the caller passes the factor its loss needs (for a mean
negative log-likelihood over N rows, ``scale = -1/N``), so the gradient comes
out of the same pass as the value.  Equations:

    Bernoulli       ll = sum_d [x l - softplus(l)],        dll/dl = x - sigmoid(l)
    cont. Bernoulli ll = sum_d [x l - softplus(l) + log C(l)],
                    dll/dl = x - sigmoid(l) + 1/l - 1/sinh(l)
    Gaussian        ll = -1/2 sum_d [log 2 pi + log_var + (x - mu)^2 exp(-log_var)],
                    dll/dmu = (x - mu) exp(-log_var), dll/dlog_var = -1/2 (1 - (x - mu)^2 exp(-log_var))
    categorical     ll = l_y - logsumexp(l),               dll/dl = onehot(y) - softmax(l)

with log C(l) = log(l / tanh(l/2)) (its Taylor series for |l| < 1/2; see
:mod:`lvm_core.functional.likelihoods`).  Inputs are 2-D (M, D); the NumPy
float32/float64 path is numba + NumPy ufuncs with scratch from ``ws``; other
arrays take :mod:`lvm_core.ops.reference`.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import device_of, get_namespace
from . import _cupy
from . import _kernels as K
from . import reference as ref
from ._dispatch import fusable, writable_out
from .workspace import scratch

__all__ = ["bernoulli_loglik", "continuous_bernoulli_loglik", "gaussian_loglik",
           "categorical_loglik"]

_LOG_2PI = math.log(2.0 * math.pi)
_CUTOFF = 0.5  # |l| below this: Taylor series of log C (as in functional.likelihoods)


def _outs(ws, name, like, grad_out):
    M, D = like.shape
    g = writable_out(grad_out, like.shape, like.dtype)
    if g is None:
        g = scratch(ws, name + ".grad", like.shape, like)
    return g, scratch(ws, name + ".ll", (M,), like), scratch(ws, name + ".e", like.shape, like), \
        scratch(ws, name + ".m", (M,), like)


def _row_map(logits, x, scale, repeat):
    """Check the row mapping of x and scale onto the rows of logits (M, D).

    Row m of logits pairs with row (m // repeat) % N of x (N, D), so x (M, D) with
    repeat 1 is the plain case, x (N, D) with M = R N tiles it R times, and
    repeat = K repeats each row K times ((R, N, K) row order).  ``scale`` is a
    Python float or an (M,) array of per-row factors.  Returns (repeat, scale
    as a float or an (M,) array).
    """
    M, D = logits.shape
    repeat = int(repeat)
    if x.ndim != 2 or x.shape[1] != D or repeat < 1 or M % (x.shape[0] * repeat) != 0:
        raise ValueError(
            f"x must have shape (N, {D}) with rows (m // repeat) % N pairing with the M = {M} "
            f"rows of the logits (M a multiple of N * repeat); got x of shape "
            f"{tuple(x.shape)} and repeat={repeat}. Pass x with one row per logits row, or "
            "the N distinct rows and their repeat count.")
    if getattr(scale, "ndim", 0) != 0:
        if tuple(scale.shape) != (M,):
            raise ValueError(
                f"scale must be a number or an array of shape ({M},) (one factor per row); "
                f"got shape {tuple(scale.shape)}.")
        return repeat, scale
    return repeat, float(scale)


def _expanded(logits, x, scale, repeat):
    """x (M, D) and scale (M, 1) (or a float) materialised, for the reference path."""
    xp = get_namespace(logits, x)
    M = logits.shape[0]
    if x.shape[0] != M:
        rows = (xp.arange(M, device=device_of(x)) // repeat) % x.shape[0]
        x = xp.take(x, rows, axis=0)
    if not isinstance(scale, float):
        scale = xp.reshape(scale, (M, 1))
    return x, scale


def _f32_outs(ws, name, logits, grad_out):
    """Outputs and scratch of the one-pass float32 kernels: dl (M, D) (``grad_out`` when it
    fits), ll (M,), and the (D,) rows p2 (float32) and bits (int32) of exp(-|l|)'s parts."""
    g = writable_out(grad_out, logits.shape, logits.dtype)
    dl = scratch(ws, name + ".grad", logits.shape, logits) if g is None else g
    ll = scratch(ws, name + ".ll", logits.shape[:1], logits)
    p2 = scratch(ws, name + ".p2", logits.shape[1:], logits)
    bits = scratch(ws, name + ".bits", logits.shape[1:], logits, dtype=np.int32)
    return dl, ll, p2, bits


def _scale_vector(scale, dtype):
    if isinstance(scale, float):
        return np.full(1, scale, dtype=dtype)
    return scale if scale.dtype == dtype else scale.astype(dtype)


def bernoulli_loglik(logits, x, scale=1.0, grad_out=None, ws=None, name="bernoulli",
                     repeat=1):
    """Bernoulli log-likelihood with logits l (M, D) of targets x in [0, 1].

    Returns ll (M,) and dlogits = scale (x - sigmoid(l)) (M, D).  x is (M, D), or
    (N, D) rows that logits row m takes as x_((m // repeat) % N) (samples or
    mixture components stacked over the batch, without a repeated copy of x);
    ``scale`` a number or one factor per row (M,).
    """
    if logits.ndim != 2:
        return ref.bernoulli_loglik(logits, x, scale)
    repeat, scale = _row_map(logits, x, scale, repeat)
    plain = x.shape == logits.shape and isinstance(scale, float)
    if plain and _cupy.applies(logits, x):
        return _cupy.bernoulli_loglik(logits, x, scale, grad_out)
    if not fusable(logits, x, None if isinstance(scale, float) else scale):
        return ref.bernoulli_loglik(logits, *_expanded(logits, x, scale, repeat))
    if logits.dtype == np.float32:
        dl, ll, p2, bits = _f32_outs(ws, name, logits, grad_out)
        K.bernoulli_loglik_f32(logits, x, _scale_vector(scale, logits.dtype), repeat, p2, bits,
                               bits.view(np.float32), dl, ll)
        return ll, dl
    dl, ll, e, _ = _outs(ws, name, logits, grad_out)
    K.neg_abs(logits, e)
    np.exp(e, out=e)
    K.bernoulli_grad(logits, x, e, _scale_vector(scale, logits.dtype), repeat, dl, ll)
    np.log(e, out=e)  # log(1 + exp(-|l|))
    K.row_sum_into(e, ll, logits.dtype.type(-1.0))
    return ll, dl


def continuous_bernoulli_loglik(logits, x, scale=1.0, grad_out=None, ws=None,
                                name="continuous_bernoulli", repeat=1):
    """Continuous-Bernoulli log-likelihood with logits l (M, D) of x in [0, 1].

    Returns ll (M,) and dlogits = scale (x - sigmoid(l) + dlog C/dl) (M, D); rows of
    x and ``scale`` as in :func:`bernoulli_loglik`.
    """
    if logits.ndim != 2:
        return ref.continuous_bernoulli_loglik(logits, x, scale)
    repeat, scale = _row_map(logits, x, scale, repeat)
    plain = x.shape == logits.shape and isinstance(scale, float)
    if plain and _cupy.applies(logits, x):
        return _cupy.continuous_bernoulli_loglik(logits, x, scale, grad_out)
    if not fusable(logits, x, None if isinstance(scale, float) else scale):
        return ref.continuous_bernoulli_loglik(logits, *_expanded(logits, x, scale, repeat))
    dt = logits.dtype.type
    if logits.dtype == np.float32:
        dl, ll, p2, bits = _f32_outs(ws, name, logits, grad_out)
        K.continuous_bernoulli_f32(logits, x, _scale_vector(scale, logits.dtype), repeat,
                                   dt(_CUTOFF), p2, bits, bits.view(np.float32), dl, ll)
        return ll, dl
    dl, ll, e, _ = _outs(ws, name, logits, grad_out)
    K.neg_abs(logits, e)
    np.exp(e, out=e)
    K.continuous_bernoulli_grad(logits, x, e, _scale_vector(scale, logits.dtype), repeat,
                                dt(_CUTOFF), dl, ll)
    np.log(e, out=e)
    K.row_sum_into(e, ll, logits.dtype.type(1.0))
    return ll, dl


def gaussian_loglik(x, mu, log_var, scale=1.0, grad_out=None, log_var_grad_out=None, ws=None,
                    name="gaussian"):
    """Diagonal Gaussian log-density of x (M, D) with mean mu (M, D).

    ``log_var``: a Python float (fixed variance) or an (M, D) array.  Returns
    ll (M,), dmu = scale dll/dmu (M, D) and dlog_var = scale dll/dlog_var
    ((M, D), or None for a float log_var).
    """
    fixed = isinstance(log_var, float)
    if _cupy.applies(x, mu, None if fixed else log_var) and mu.ndim == 2 \
            and x.shape == mu.shape and (fixed or log_var.shape == mu.shape):
        return _cupy.gaussian_loglik(x, mu, log_var, scale)
    if not fusable(x, mu, None if fixed else log_var, contiguous=False) or mu.ndim != 2 \
            or x.shape != mu.shape or (not fixed and log_var.shape != mu.shape):
        return ref.gaussian_loglik(x, mu, log_var, scale)
    M, D = mu.shape
    dt = mu.dtype.type
    dmu, ll, e, _ = _outs(ws, name, mu, grad_out)
    if fixed:
        K.gaussian_fixed_grad(x, mu, dt(math.exp(-log_var)), dt(scale), dmu, ll)
        ll -= dt(0.5 * D * (_LOG_2PI + log_var))
        return ll, dmu, None
    dlv = writable_out(log_var_grad_out, mu.shape, mu.dtype)
    if dlv is None:
        dlv = scratch(ws, name + ".dlog_var", mu.shape, mu)
    np.negative(log_var, out=e)
    np.exp(e, out=e)
    K.gaussian_grad(x, mu, log_var, e, dt(scale), dmu, dlv, ll)
    ll -= dt(0.5 * D * _LOG_2PI)
    return ll, dmu, dlv


def categorical_loglik(logits, labels, scale=1.0, grad_out=None, ws=None, name="categorical"):
    """Categorical log-likelihood of integer labels (M,) in [0, K) under logits (M, K).

    Returns ll (M,) and dlogits = scale (onehot(y) - softmax(l)) (M, K).  Labels
    are not range-checked on the fused path (validate them once, before training).
    """
    if _cupy.applies(logits) and logits.ndim == 2 and _cupy.is_cupy_array(labels) \
            and labels.shape == logits.shape[:1] and labels.dtype.kind in "iu":
        return _cupy.categorical_loglik(logits, labels, scale)
    if not fusable(logits) or logits.ndim != 2 or type(labels) is not np.ndarray \
            or labels.shape != logits.shape[:1] or labels.dtype.kind not in "iu":
        return ref.categorical_loglik(logits, labels, scale)
    dl, ll, p, m = _outs(ws, name, logits, grad_out)
    K.row_max_shift(logits, p, m)
    np.exp(p, out=p)
    K.categorical_grad(logits, labels, p, m, logits.dtype.type(scale), dl, ll)
    np.log(ll, out=ll)
    np.subtract(m, ll, out=ll)
    return ll, dl
