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

import numpy as np

from ..backend import get_namespace, namespace_name

_NP_FLOATS = (np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64),
              np.dtype(np.longdouble))

__all__ = ["store_grad", "check_param"]


def store_grad(grads, key, value, accumulate=False, copy=False):
    """grads[key] = value (or += value with ``accumulate``), in place into an existing buffer.

    * no buffer yet: ``value`` is stored (a copy with ``copy=True``, for
      ``value`` in workspace memory that the next step overwrites);
    * the buffer already is ``value`` (a fused op wrote into it): nothing to do;
    * a buffer of the same shape and dtype: overwritten (or summed) in place, or
      replaced when it cannot be written (read-only, another device);
    * a buffer of another shape or dtype: ValueError naming the key (a caller's
      ``grads_out`` that does not match the parameters is a bug worth hearing of).

    Returns the array now held in ``grads[key]``.
    """
    cur = grads.get(key)
    if cur is value and not accumulate:
        return value
    if cur is not None:
        if tuple(cur.shape) != tuple(value.shape) or cur.dtype != value.dtype:
            raise ValueError(
                f"grads[{key!r}] has shape {tuple(cur.shape)} and dtype {cur.dtype}; the "
                f"gradient has shape {tuple(value.shape)} and dtype {value.dtype}. Pass "
                "gradient buffers shaped like the parameters, in their dtype (or leave the "
                "key out of grads to get a new array)."
            )
        try:
            if accumulate:
                cur += value
            else:
                cur[...] = value
            return cur
        except (TypeError, ValueError):  # read-only or foreign buffer: replace it
            value = cur + value if accumulate else value
    if copy:
        value = get_namespace(value).asarray(value, copy=True)
    grads[key] = value
    return value


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
    if type(value) is np.ndarray and value.dtype in _NP_FLOATS:  # the common case, checked fast
        return value
    xp = get_namespace(value)
    if not xp.isdtype(value.dtype, "real floating"):
        raise TypeError(
            f"params[{key!r}] must be float32 or float64 ({namespace_name(xp)}); got "
            f"{value.dtype}."
        )
    return value
