"""Elementwise activations as forward/backward pairs, written to be stable.

Each pair is ``y, cache = f_forward(x)`` and ``dx = f_backward(dy, cache)``
with dx = dy * f'(x) (Goodfellow, Bengio & Courville 2016, sec. 6.3).

Stable forms used (no overflow for any finite x, float32 included):

    sigmoid(x)     = 1 / (1 + e^{-x})  for x >= 0,   e^{x} / (1 + e^{x}) for x < 0
    softplus(x)    = log(1 + e^{x}) = max(x, 0) + log1p(e^{-|x|})
    log_sigmoid(x) = -softplus(-x)
    elu(x)         = x for x > 0,   alpha * expm1(x) for x <= 0   (Clevert et al. 2016)

Derivatives: relu' = [x > 0]; leaky_relu' = 1 or negative_slope; tanh' =
1 - tanh^2; sigmoid' = s (1 - s); softplus' = sigmoid; elu' = 1 or elu(x) + alpha.
"""
from __future__ import annotations

from typing import NamedTuple

from ..backend import get_namespace
from ._common import check_float

__all__ = [
    "sigmoid",
    "softplus",
    "log_sigmoid",
    "relu_forward",
    "relu_backward",
    "leaky_relu_forward",
    "leaky_relu_backward",
    "tanh_forward",
    "tanh_backward",
    "sigmoid_forward",
    "sigmoid_backward",
    "softplus_forward",
    "softplus_backward",
    "elu_forward",
    "elu_backward",
    "ActivationCache",
]


class ActivationCache(NamedTuple):
    """What an activation's backward needs: its input, output and parameter."""

    x: object
    y: object
    param: float = 0.0  # negative_slope (leaky_relu) or alpha (elu); unused otherwise


# --------------------------------------------------------------------------- helpers
def sigmoid(x):
    """sigmoid(x) = 1 / (1 + exp(-x)), evaluated without overflow for any x."""
    check_float(x, "x")
    xp = get_namespace(x)
    e = xp.exp(-xp.abs(x))  # in (0, 1]
    return xp.where(x >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x):
    """softplus(x) = log(1 + exp(x)) = max(x, 0) + log1p(exp(-|x|))."""
    check_float(x, "x")
    xp = get_namespace(x)
    return xp.maximum(x, 0.0) + xp.log1p(xp.exp(-xp.abs(x)))


def log_sigmoid(x):
    """log sigmoid(x) = -softplus(-x) (finite for any finite x)."""
    return -softplus(-x)


# --------------------------------------------------------------------------- pairs
def relu_forward(x):
    """y = max(x, 0).  Shapes: any; y like x."""
    check_float(x, "x")
    xp = get_namespace(x)
    y = xp.maximum(x, 0.0)
    return y, ActivationCache(x=x, y=y)


def relu_backward(dy, cache):
    """dx = dy * [x > 0]."""
    xp = get_namespace(dy, cache.x)
    return xp.where(cache.x > 0, dy, xp.zeros_like(dy))


def leaky_relu_forward(x, negative_slope=0.01):
    """y = x for x > 0, negative_slope * x otherwise."""
    check_float(x, "x")
    slope = _check_scalar(negative_slope, "negative_slope")
    xp = get_namespace(x)
    y = xp.where(x > 0, x, slope * x)
    return y, ActivationCache(x=x, y=y, param=slope)


def leaky_relu_backward(dy, cache):
    """dx = dy for x > 0, negative_slope * dy otherwise."""
    xp = get_namespace(dy, cache.x)
    return xp.where(cache.x > 0, dy, cache.param * dy)


def tanh_forward(x):
    """y = tanh(x)."""
    check_float(x, "x")
    xp = get_namespace(x)
    y = xp.tanh(x)
    return y, ActivationCache(x=x, y=y)


def tanh_backward(dy, cache):
    """dx = dy * (1 - y^2), y = tanh(x)."""
    return dy * (1.0 - cache.y * cache.y)


def sigmoid_forward(x):
    """y = sigmoid(x) (stable for large |x|)."""
    y = sigmoid(x)
    return y, ActivationCache(x=x, y=y)


def sigmoid_backward(dy, cache):
    """dx = dy * y * (1 - y), y = sigmoid(x)."""
    return dy * cache.y * (1.0 - cache.y)


def softplus_forward(x):
    """y = softplus(x) = max(x, 0) + log1p(exp(-|x|))."""
    y = softplus(x)
    return y, ActivationCache(x=x, y=y)


def softplus_backward(dy, cache):
    """dx = dy * sigmoid(x)."""
    return dy * sigmoid(cache.x)


def elu_forward(x, alpha=1.0):
    """y = x for x > 0, alpha * expm1(x) for x <= 0 (Clevert et al. 2016)."""
    check_float(x, "x")
    alpha = _check_scalar(alpha, "alpha")
    xp = get_namespace(x)
    # expm1 of min(x, 0): the unused branch never overflows
    neg = alpha * xp.expm1(xp.minimum(x, 0.0))
    y = xp.where(x > 0, x, neg)
    return y, ActivationCache(x=x, y=y, param=alpha)


def elu_backward(dy, cache):
    """dx = dy for x > 0, dy * (y + alpha) = dy * alpha * exp(x) otherwise."""
    xp = get_namespace(dy, cache.x)
    return xp.where(cache.x > 0, dy, dy * (cache.y + cache.param))


def _check_scalar(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(
            f"{name} must be a Python float; got {type(value).__name__} ({value!r}). "
            f"Pass e.g. {name}=0.1 (a Python float keeps float32 inputs float32)."
        )
    return float(value)
