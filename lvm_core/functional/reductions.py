"""Max-shifted reductions in log space: logsumexp, softmax, log_softmax.

The log-sum-exp trick (e.g. Bishop PRML sec. 13.2.4 on scaling; Murphy 2012
sec. 3.5.3): with m = max_k x_k,

    log sum_k exp(x_k) = m + log sum_k exp(x_k - m),

so no term overflows and at least one term equals 1.  A slice whose entries
are all -inf (an impossible event) gives -inf, never NaN.  The derivative is
the softmax:

    d/dx_k log sum_j exp(x_j) = softmax(x)_k = exp(x_k - logsumexp(x)).
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from ..backend import get_namespace
from ._common import check_float

__all__ = [
    "logsumexp",
    "softmax",
    "log_softmax",
    "logsumexp_forward",
    "logsumexp_backward",
    "LogSumExpCache",
]


def _safe_max(x, axis):
    """max over ``axis`` (keepdims) with non-finite maxima replaced by 0."""
    xp = get_namespace(x)
    m = xp.max(x, axis=axis, keepdims=True)
    return xp.where(xp.isfinite(m), m, xp.zeros_like(m))


def logsumexp(x, axis=-1, keepdims=False):
    """log sum_k exp(x_k) over ``axis`` (int or tuple), max-shifted.

    y = m + log sum_k exp(x_k - m),  m = max_k x_k.

    An all -inf slice gives -inf (not NaN).  dtype and device of ``x`` kept.
    """
    check_float(x, "x")
    xp = get_namespace(x)
    m = _safe_max(x, axis)
    s = xp.sum(xp.exp(x - m), axis=axis, keepdims=True)
    with np.errstate(divide="ignore"):
        y = xp.log(s) + m
    if not keepdims:
        y = xp.squeeze(y, axis=axis)
    return y


def softmax(x, axis=-1):
    """softmax(x)_k = exp(x_k - m) / sum_j exp(x_j - m) over ``axis`` (max-shifted).

    An all -inf slice carries no probability mass and gives zeros (not NaN).
    """
    check_float(x, "x")
    xp = get_namespace(x)
    e = xp.exp(x - _safe_max(x, axis))
    s = xp.sum(e, axis=axis, keepdims=True)
    positive = s > 0
    return xp.where(positive, e / xp.where(positive, s, xp.ones_like(s)), xp.zeros_like(e))


def log_softmax(x, axis=-1):
    """log softmax(x)_k = x_k - logsumexp(x) over ``axis``.

    An all -inf slice gives -inf everywhere (not NaN).
    """
    xp = get_namespace(x)
    lse = logsumexp(x, axis=axis, keepdims=True)
    lse = xp.where(xp.isfinite(lse), lse, xp.zeros_like(lse))
    return x - lse


class LogSumExpCache(NamedTuple):
    """What :func:`logsumexp_backward` needs: the softmax of ``x`` and the axis."""

    p: object  # softmax(x) over axis, shape of x
    axis: int


def logsumexp_forward(x, axis=-1):
    """y = logsumexp(x, axis) (axis removed) and a cache for the backward.

    Shapes: x (..., K) with ``axis=-1`` gives y (...,).
    """
    if not isinstance(axis, (int, np.integer)) or isinstance(axis, bool):
        raise TypeError(f"axis must be an int for logsumexp_forward; got {axis!r}.")
    y = logsumexp(x, axis=int(axis))
    return y, LogSumExpCache(p=softmax(x, axis=int(axis)), axis=int(axis))


def logsumexp_backward(dy, cache):
    """dx = dy * softmax(x), dy broadcast back along the reduced axis."""
    xp = get_namespace(dy, cache.p)
    return xp.expand_dims(dy, axis=cache.axis) * cache.p
