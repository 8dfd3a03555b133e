"""Optimizers as pure functions over dicts of arrays.

``params, state = adam(params, grads, state, lr=...)``: ``state=None`` starts
a new run; the returned state is passed to the next call.  By default new
arrays are returned and neither the caller's params nor the state passed in
are modified; ``inplace=True`` updates the param arrays (and the state's
arrays) in place, which saves allocations in training loops.  Parameters
missing from ``grads`` are left unchanged (the step count t is shared by all
parameters; torch counts steps per parameter, which differs only when some
parameters skip steps).  All temporaries stay in each
parameter's dtype (hyper-parameters are used as Python floats, so float32
parameters are never promoted to float64).  For C-contiguous NumPy arrays
Adam and SGD run as one fused numba pass per array (same arithmetic, tested equal to
the array-API path).

Adam (Kingma & Ba 2015, Algorithm 1) with decoupled weight decay (AdamW,
Loshchilov & Hutter 2019), as in ``torch.optim.AdamW``; step t = 1, 2, ...:

    theta <- theta (1 - lr wd)
    m <- beta1 m + (1 - beta1) g,       v <- beta2 v + (1 - beta2) g^2
    theta <- theta - (lr / (1 - beta1^t)) m / (sqrt(v) / sqrt(1 - beta2^t) + eps)

SGD with momentum mu, dampening tau and coupled weight decay, as in
``torch.optim.SGD`` (Sutskever et al. 2013 for the Nesterov form):

    g <- g + wd theta
    buf <- g (first step),  buf <- mu buf + (1 - tau) g (later steps)
    g <- g + mu buf (Nesterov)  or  g <- buf
    theta <- theta - lr g

Gradient clipping by global norm (Pascanu et al. 2013):
||g|| = sqrt(sum over all arrays of sum g^2); if ||g|| > max_norm every
gradient is scaled by max_norm / (||g|| + 1e-6).
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ..backend import get_namespace, item
from ..ops.optim import check_optimizer_inputs

__all__ = ["adam", "sgd", "clip_grad_norm"]


def _check_float_hyper(value, name, low=0.0, high=None, low_inclusive=True):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite real number; got {value!r}.")
    value = float(value)
    ok_low = value >= low if low_inclusive else value > low
    ok_high = True if high is None else value < high
    if not (ok_low and ok_high):
        allowed = f"in [{low}, {high})" if high is not None else (
            f">= {low}" if low_inclusive else f"> {low}")
        raise ValueError(f"{name} must be {allowed}; got {value!r}.")
    return value


def _check_dicts(params, grads, state=None, kind="adam"):
    if not isinstance(params, dict) or not isinstance(grads, dict):
        raise TypeError(
            f"params and grads must be dicts of arrays; got {type(params).__name__} and "
            f"{type(grads).__name__}."
        )
    extra = [k for k in grads if k not in params]
    if extra:
        raise ValueError(
            f"grads has keys that params lacks: {extra}. Pass the gradients of the "
            "params being optimised (same keys)."
        )
    check_optimizer_inputs(params, grads, state, kind)
    for k, g in grads.items():
        if tuple(g.shape) != tuple(params[k].shape):
            raise ValueError(
                f"grads[{k!r}] has shape {tuple(g.shape)} but params[{k!r}] has shape "
                f"{tuple(params[k].shape)}."
            )
        if g.dtype != params[k].dtype:
            raise TypeError(
                f"grads[{k!r}] has dtype {g.dtype} but params[{k!r}] has dtype "
                f"{params[k].dtype}; cast the gradient (no silent promotion)."
            )


def _zeros_like(x):
    return get_namespace(x).zeros_like(x)


def adam(params, grads, state, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
         inplace=False):
    """One bias-corrected Adam step (AdamW when ``weight_decay`` > 0).

    Returns ``(params, state)``; ``state`` is ``{"step": t, "m": {...}, "v": {...}}``
    (``state=None`` initialises m = v = 0, t = 0).  Matches ``torch.optim.Adam``
    (weight_decay=0) and ``torch.optim.AdamW``.
    """
    _check_dicts(params, grads, state, "adam")
    if not isinstance(betas, (tuple, list)) or len(betas) != 2:
        raise ValueError(f"betas must be a pair (beta1, beta2); got {betas!r}. Pass e.g. "
                         "betas=(0.9, 0.999).")
    lr = _check_float_hyper(lr, "lr")
    beta1 = _check_float_hyper(betas[0], "betas[0]", 0.0, 1.0)
    beta2 = _check_float_hyper(betas[1], "betas[1]", 0.0, 1.0)
    eps = _check_float_hyper(eps, "eps")
    weight_decay = _check_float_hyper(weight_decay, "weight_decay")
    if state is None:
        state = {"step": 0, "m": {}, "v": {}}
    step = int(state["step"]) + 1
    bias_correction1 = 1.0 - beta1 ** step
    sqrt_bias_correction2 = math.sqrt(1.0 - beta2 ** step)
    step_size = lr / bias_correction1
    new_params = params if inplace else dict(params)
    new_m = state["m"] if inplace else dict(state["m"])
    new_v = state["v"] if inplace else dict(state["v"])
    for key, g in grads.items():
        theta = params[key]
        m = state["m"].get(key)
        v = state["v"].get(key)
        if m is None:
            m, v = _zeros_like(theta), _zeros_like(theta)
        step_fn = _adam_step_fused if _can_fuse(inplace, theta, g, m, v) else _adam_step
        theta, m, v = step_fn(theta, g, m, v, inplace, lr, beta1, beta2, eps, weight_decay,
                              step_size, sqrt_bias_correction2)
        new_params[key], new_m[key], new_v[key] = theta, m, v
    if inplace:
        state["step"] = step
        return params, state
    return new_params, {"step": step, "m": new_m, "v": new_v}


def _adam_step(theta, g, m, v, inplace, lr, beta1, beta2, eps, weight_decay, step_size,
               sqrt_bc2):
    """One Adam step on one array (any array-API backend); returns (theta, m, v)."""
    xp = get_namespace(theta, g)
    if inplace:
        if weight_decay:
            theta *= 1.0 - lr * weight_decay
        m *= beta1
        m += (1.0 - beta1) * g
        v *= beta2
        v += (1.0 - beta2) * (g * g)
        denom = xp.sqrt(v) / sqrt_bc2 + eps
        theta -= step_size * (m / denom)
        return theta, m, v
    if weight_decay:
        theta = theta * (1.0 - lr * weight_decay)
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * (g * g)
    denom = xp.sqrt(v) / sqrt_bc2 + eps
    return theta - step_size * (m / denom), m, v


# NumPy fast path: one fused numba pass per array instead of ~10 elementwise
# passes with temporaries.  Tested equal to _adam_step / _sgd_step; set to
# False to disable.
_FUSED = True


def _can_fuse(inplace, theta, *others):
    """True for C-contiguous NumPy arrays of one float dtype (writeable if in place)."""
    if not _FUSED:
        return False
    arrays = (theta, *others)
    if not all(type(a) is np.ndarray for a in arrays):
        return False
    if theta.dtype not in (np.float32, np.float64) or any(a.dtype != theta.dtype for a in arrays):
        return False
    if not all(a.flags.c_contiguous for a in arrays):
        return False
    return not inplace or all(a.flags.writeable for a in (theta, *others[1:]))


def _adam_step_fused(theta, g, m, v, inplace, lr, beta1, beta2, eps, weight_decay, step_size,
                     sqrt_bc2):
    from ..ops._optim_numba import adam_update

    return adam_update(theta, g, m, v, inplace, lr, beta1, beta2, eps, weight_decay, step_size,
                       sqrt_bc2)


def sgd(params, grads, state, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
        inplace=False, dampening=0.0):
    """One SGD step with optional (Nesterov) momentum, as ``torch.optim.SGD``.

    Returns ``(params, state)``; ``state`` is ``{"step": t, "momentum_buffer": {...}}``
    (``state=None`` initialises it; buffers are created at the first step).
    """
    _check_dicts(params, grads, state, "sgd")
    lr = _check_float_hyper(lr, "lr")
    momentum = _check_float_hyper(momentum, "momentum")
    weight_decay = _check_float_hyper(weight_decay, "weight_decay")
    dampening = _check_float_hyper(dampening, "dampening")
    if nesterov and (momentum <= 0.0 or dampening != 0.0):
        raise ValueError(
            "nesterov=True requires momentum > 0 and dampening = 0; got "
            f"momentum={momentum}, dampening={dampening}."
        )
    if state is None:
        state = {"step": 0, "momentum_buffer": {}}
    buffers = state["momentum_buffer"] if inplace else dict(state["momentum_buffer"])
    new_params = params if inplace else dict(params)
    for key, g in grads.items():
        theta = params[key]
        buf = state["momentum_buffer"].get(key) if momentum else None
        arrays = (theta, g) if buf is None else (theta, g, buf)
        step_fn = _sgd_step_fused if _can_fuse(inplace, *arrays) else _sgd_step
        theta, buf = step_fn(theta, g, buf, inplace, lr, momentum, nesterov, weight_decay,
                             dampening)
        new_params[key] = theta
        if buf is not None:
            buffers[key] = buf
    step = int(state["step"]) + 1
    if inplace:
        state["step"] = step
        return params, state
    return new_params, {"step": step, "momentum_buffer": buffers}


def _sgd_step(theta, g, buf, inplace, lr, momentum, nesterov, weight_decay, dampening):
    """One SGD step on one array (any array-API backend); returns (theta, buf)."""
    d = g + weight_decay * theta if weight_decay else g
    if momentum:
        if buf is None:
            buf = get_namespace(d).asarray(d, copy=True)
        elif inplace:
            buf *= momentum
            buf += (1.0 - dampening) * d
        else:
            buf = momentum * buf + (1.0 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    if inplace:
        theta -= lr * d
        return theta, buf
    return theta - lr * d, buf


def _sgd_step_fused(theta, g, buf, inplace, lr, momentum, nesterov, weight_decay, dampening):
    from ..ops._optim_numba import sgd_update

    return sgd_update(theta, g, buf, inplace, lr, momentum, nesterov, weight_decay, dampening)


def clip_grad_norm(grads, max_norm):
    """Scale all gradients together so that their global L2 norm is <= max_norm.

    total_norm = sqrt(sum_k sum g_k^2) (a Python float; a device sync).  When
    total_norm > max_norm, returns scaled copies g_k * max_norm / (total_norm +
    1e-6); otherwise a new dict holding the same arrays.  Returns
    ``(grads, total_norm)``.
    """
    max_norm = _check_float_hyper(max_norm, "max_norm", low_inclusive=False)
    if not isinstance(grads, dict):
        raise TypeError(f"grads must be a dict of arrays; got {type(grads).__name__}.")
    total_sq = 0.0
    for g in grads.values():
        xp = get_namespace(g)
        total_sq += item(xp.sum(g * g))
    total_norm = math.sqrt(total_sq)
    if total_norm > max_norm:
        scale = max_norm / (total_norm + 1e-6)
        return {k: g * scale for k, g in grads.items()}, total_norm
    return dict(grads), total_norm
