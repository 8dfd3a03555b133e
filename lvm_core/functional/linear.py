"""Affine layer y = x W + b and its backward pass.

Matrix calculus for a scalar loss with upstream gradient dy = dLoss/dy
(e.g. Goodfellow, Bengio & Courville 2016, sec. 6.5; cs231n affine layer):

    dx = dy W^T,    dW = x^T dy,    db = sum_n dy_n.

Leading axes beyond the first are allowed (x of shape (R, N, D_in)); they are
treated as extra rows.
"""
from __future__ import annotations

from typing import NamedTuple

from ..backend import get_namespace
from ._common import check_float, check_same_dtype

__all__ = ["linear_forward", "linear_backward", "LinearCache"]


class LinearCache(NamedTuple):
    """Inputs of :func:`linear_forward` kept for the backward."""

    x: object  # (N, D_in)
    W: object  # (D_in, D_out)
    has_bias: bool


def linear_forward(x, W, b=None):
    """y = x W + b.

    Shapes: x (N, D_in) (or (..., D_in)), W (D_in, D_out), b (D_out,) or None;
    y (N, D_out).  Returns ``(y, cache)``.
    """
    check_float(x, "x")
    check_float(W, "W")
    xp = get_namespace(x, W, b)
    if W.ndim != 2:
        raise ValueError(f"W must be 2-D (D_in, D_out); got shape {tuple(W.shape)}.")
    if x.ndim < 1 or x.shape[-1] != W.shape[0]:
        raise ValueError(
            f"x must have D_in = W.shape[0] = {W.shape[0]} features in its last axis; "
            f"got x of shape {tuple(x.shape)}. Check the layer sizes."
        )
    check_same_dtype("x", x, "W", W)
    y = xp.matmul(x, W)  # (N, D_out)
    if b is not None:
        check_float(b, "b")
        check_same_dtype("x", x, "b", b)
        if tuple(b.shape) != (W.shape[1],):
            raise ValueError(
                f"b must have shape (D_out,) = ({W.shape[1]},); got {tuple(b.shape)}."
            )
        y = y + b
    return y, LinearCache(x=x, W=W, has_bias=b is not None)


def linear_backward(dy, cache):
    """dx = dy W^T, dW = x^T dy, db = sum_n dy_n (None when there was no bias).

    Shapes: dy (N, D_out) -> dx (N, D_in), dW (D_in, D_out), db (D_out,).
    """
    x, W = cache.x, cache.W
    xp = get_namespace(dy, W)
    d_in, d_out = W.shape
    dy2 = xp.reshape(dy, (-1, d_out))  # (N, D_out)
    x2 = xp.reshape(x, (-1, d_in))  # (N, D_in)
    dx = xp.reshape(xp.matmul(dy2, W.T), tuple(x.shape))
    dW = xp.matmul(x2.T, dy2)
    db = xp.sum(dy2, axis=0) if cache.has_bias else None
    return dx, dW, db
