"""Writing parameter gradients into a model's ``grads`` dict.

The layer protocol: a backward writes d loss/d param into ``grads[key]``,

    grads[key] = g          (no buffer yet: the new array is stored),
    grads[key][...] = g     (a buffer exists: overwritten in place),
    grads[key] += g         (a buffer exists and accumulate=True: summed in place,
                             e.g. over the steps of a recurrence),

so a training loop that hands in the same buffers every step allocates no new
gradient arrays, and a layer used several times (weight sharing, one step at
a time) can sum its contributions.
"""
from __future__ import annotations

from ..backend import namespace_name, get_namespace

__all__ = ["store_grad", "check_param"]


def store_grad(grads, key, value, accumulate=False):
    """grads[key] = value, or += value with ``accumulate``; in place into an
    existing buffer.  Raises ValueError/TypeError when the buffer does not fit."""
    buf = grads.get(key)
    if buf is None:
        grads[key] = value
        return
    if tuple(buf.shape) != tuple(value.shape):
        raise ValueError(
            f"grads[{key!r}] has shape {tuple(buf.shape)} but the gradient has shape "
            f"{tuple(value.shape)}. Pass gradient buffers shaped like the parameters "
            "(or leave the key out of grads to get a new array)."
        )
    if buf.dtype != value.dtype:
        raise TypeError(
            f"grads[{key!r}] has dtype {buf.dtype} but the gradient has dtype "
            f"{value.dtype}. Allocate gradient buffers in the parameters' dtype."
        )
    get_namespace(buf, value)  # mixed namespaces or devices raise here
    if accumulate:
        buf += value
    else:
        buf[...] = value


def check_param(params, key, shape, owner):
    """params[key], checked for presence and shape; errors name the layer."""
    if key not in params:
        raise KeyError(
            f"params has no entry {key!r}; {owner} needs it. Pass the model's flat "
            f"params dict (create the entries with {owner.split('(')[0]}.init(rng))."
        )
    value = params[key]
    if not hasattr(value, "shape") or tuple(value.shape) != tuple(shape):
        got = tuple(value.shape) if hasattr(value, "shape") else type(value).__name__
        raise ValueError(
            f"params[{key!r}] must have shape {tuple(shape)} for {owner}; got {got}. "
            "Were the parameters created for a layer of another size?"
        )
    xp = get_namespace(value)
    if not xp.isdtype(value.dtype, "real floating"):
        raise TypeError(
            f"params[{key!r}] must be float32 or float64 ({namespace_name(xp)}); got "
            f"{value.dtype}."
        )
    return value
