"""In-place optimizer updates over a dict of parameters, for training loops.

The same rules as :func:`lvm_core.nn.adam` / :func:`lvm_core.nn.sgd` (Kingma &
Ba 2015 with decoupled weight decay, Loshchilov & Hutter 2019; SGD with
momentum as torch.optim.SGD, Sutskever et al. 2013), in the same state format
(``{"step", "m", "v"}`` / ``{"step", "momentum_buffer"}``), without their
per-call validation: the caller checks hyper-parameters once.  Only the keys
in ``keys`` (default: all of ``grads``) are updated, which is how parameter
groups train a subset.  NumPy float32/float64 arrays are updated by one numba
pass each with every scalar in the array's dtype; other arrays by
:mod:`lvm_core.ops.reference` and written back with ``theta[...] = new``.
"""
from __future__ import annotations

import math

import numpy as np

from . import _cupy
from . import reference as ref
from ._dispatch import fusable
from ._optim_numba import GROUP, adam_inplace_group, sgd_inplace_kernel

__all__ = ["adam_", "sgd_", "check_optimizer_inputs"]

_STATE_KEYS = {"adam": ("step", "m", "v"), "sgd": ("step", "momentum_buffer")}


def check_optimizer_inputs(params, grads, state, kind, keys=None):
    """ValueError/TypeError, naming the entry, unless ``params`` and ``grads`` are dicts of
    arrays whose updated entries (``keys``, default all of ``grads``) exist in both with
    equal shapes, and ``state`` is None or a state of this optimizer (``kind`` "adam" or
    "sgd") whose buffers have the parameters' shapes.  Reads no data: shapes and keys only."""
    if not isinstance(params, dict) or not isinstance(grads, dict):
        raise TypeError(
            f"params and grads must be dicts of arrays; got {type(params).__name__} and "
            f"{type(grads).__name__}. Pass e.g. model.params and the grads from loss_and_grads."
        )
    if state is not None:
        missing = [k for k in _STATE_KEYS[kind] if not isinstance(state, dict) or k not in state]
        if missing:
            raise ValueError(
                f"state must be None or the state of {kind} (keys {list(_STATE_KEYS[kind])}; "
                f"{type(state).__name__} lacking {missing}). Pass state=None to start, "
                f"then the state the previous {kind} step returned."
            )
    names = list(grads) if keys is None else list(keys)
    for k in names:
        if k not in params:
            raise ValueError(
                f"grads has keys that params lacks: [{k!r}] (params has {sorted(params)}). "
                "Pass the gradients of the params being optimised (same keys)."
            )
        if k not in grads:
            raise ValueError(f"keys names {k!r} but grads has no such entry (grads has "
                             f"{sorted(grads)}). Pass the gradient of every updated key.")
        theta, g = params[k], grads[k]
        for what, arr in (("params", theta), ("grads", g)):
            if not hasattr(arr, "shape") or not hasattr(arr, "dtype"):
                raise TypeError(f"{what}[{k!r}] must be an array; got {type(arr).__name__}. "
                                "Convert it with numpy.asarray (or the backend's asarray).")
        if tuple(g.shape) != tuple(theta.shape):
            raise ValueError(
                f"grads[{k!r}] has shape {tuple(g.shape)} but params[{k!r}] has shape "
                f"{tuple(theta.shape)}. Pass the gradient of that parameter (same shape)."
            )
        if state is None:
            continue
        buffers = [("m", state["m"]), ("v", state["v"])] if kind == "adam" else \
            [("momentum_buffer", state["momentum_buffer"])]
        for where, table in buffers:
            buf = table.get(k) if isinstance(table, dict) else None
            if buf is not None and tuple(getattr(buf, "shape", ())) != tuple(theta.shape):
                raise ValueError(
                    f"state[{where!r}][{k!r}] has shape {tuple(getattr(buf, 'shape', ()))} but "
                    f"params[{k!r}] has shape {tuple(theta.shape)}: the state belongs to other "
                    "parameters. Pass state=None to start a new run."
                )


def _zeros_like(x):
    from ..backend import get_namespace

    return get_namespace(x).zeros_like(x)


def adam_(params, grads, state, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0,
          keys=None, advance=True, check=True, cache=None):
    """One Adam(W) step on ``params`` in place; returns ``state`` (updated in place).

    ``state`` None starts a run (m = v = 0, t = 0).  The step count t advances
    by one per call unless ``advance=False`` (a second parameter group of the
    same step).  Keys, shapes and the state's buffers are checked (no data is read):
    a mismatch raises ValueError naming the entry.  ``check=False`` skips that
    check, for a training loop that checked its first step and then passes the
    same dicts every step.  The C-contiguous NumPy arrays of one dtype are updated
    :data:`GROUP` at a time by one numba call (every array in one pass).

    ``cache``: a dict the caller keeps from step to step (a training loop keeps one
    per parameter group).  When every updated array takes the grouped numba path,
    the groups are stored in it and reused as long as ``params``, ``grads`` and
    ``state`` hold the very same arrays (checked by identity at every call), which
    saves rebuilding them each step; any replaced array rebuilds them.
    """
    if check or state is None:
        check_optimizer_inputs(params, grads, state, "adam", keys)
    if state is None:
        state = {"step": 0, "m": {}, "v": {}}
    if advance:
        state["step"] = int(state["step"]) + 1
    t = int(state["step"])
    beta1, beta2 = float(betas[0]), float(betas[1])
    step_size = lr / (1.0 - beta1 ** t)
    sqrt_bc2 = math.sqrt(1.0 - beta2 ** t)
    m_all, v_all = state["m"], state["v"]
    names = grads if keys is None else keys
    if cache is not None and _same_arrays(cache, names, params, grads, m_all, v_all):
        _adam_groups(cache["groups"], lr, weight_decay, beta1, beta2, sqrt_bc2, eps, step_size)
        return state
    groups = {}  # dtype -> ([theta], [g], [m], [v]) flat views for the grouped kernel
    arrays, grouped_only = [], True  # what the cache checks: (theta, g, m, v) per key
    for k in names:
        theta, g = params[k], grads[k]
        m, v = m_all.get(k), v_all.get(k)
        if m is None:
            m = m_all[k] = _zeros_like(theta)
            v = v_all[k] = _zeros_like(theta)
        arrays += (theta, g, m, v)
        if fusable(theta, g, m, v) and theta.flags.writeable and m.flags.writeable \
                and v.flags.writeable:
            views = groups.get(theta.dtype)
            if views is None:
                views = groups[theta.dtype] = ([], [], [], [])
            for lst, a in zip(views, (theta, g, m, v)):
                lst.append(a.reshape(-1))
        elif _cupy.applies(theta, g, m, v) and theta.shape == g.shape:
            grouped_only = False
            _cupy.adam_(theta, g, m, v, 1.0 - lr * weight_decay, beta1, beta2, sqrt_bc2, eps,
                        step_size)
        else:
            grouped_only = False
            new_theta, new_m, new_v = ref.adam_step(theta, g, m, v, lr, beta1, beta2, eps,
                                                    weight_decay, t)
            theta[...] = new_theta
            m[...] = new_m
            v[...] = new_v
    calls = []  # (dtype, (thetas, gs, ms, vs) of GROUP arrays each) per kernel call
    for dtype, views in groups.items():
        for lst in views:  # pad to a multiple of GROUP with empty arrays (no work)
            lst.extend([_EMPTY[dtype]] * (-len(lst) % GROUP))
        calls += [(dtype, tuple(tuple(lst[i:i + GROUP]) for lst in views))
                  for i in range(0, len(views[0]), GROUP)]
    _adam_groups(calls, lr, weight_decay, beta1, beta2, sqrt_bc2, eps, step_size)
    if cache is not None:
        cache.clear()
        if grouped_only:
            cache.update(state=state, names=tuple(names), arrays=tuple(arrays), groups=calls)
    return state


def _adam_groups(calls, lr, weight_decay, beta1, beta2, sqrt_bc2, eps, step_size):
    """The grouped numba calls of one Adam step (scalars cast to each group's dtype)."""
    scalars = {}
    for dtype, arrays in calls:
        sc = scalars.get(dtype)
        if sc is None:
            dt = dtype.type
            sc = scalars[dtype] = (dt(1.0 - lr * weight_decay), dt(beta1), dt(1.0 - beta1),
                                   dt(beta2), dt(1.0 - beta2), dt(sqrt_bc2), dt(eps),
                                   dt(step_size))
        adam_inplace_group(*arrays, *sc)


def _same_arrays(cache, names, params, grads, m_all, v_all):
    """True when ``cache`` holds groups built from exactly these arrays (identity)."""
    arrays = cache.get("arrays")
    if arrays is None or cache["state"]["m"] is not m_all or cache["state"]["v"] is not v_all:
        return False
    if tuple(names) != cache["names"]:
        return False
    i = 0
    for k in names:
        if (arrays[i] is not params.get(k) or arrays[i + 1] is not grads.get(k)
                or arrays[i + 2] is not m_all.get(k) or arrays[i + 3] is not v_all.get(k)):
            return False
        i += 4
    return True


#: the zero-length arrays that pad a group (read and written nowhere)
_EMPTY = {np.dtype(np.float32): np.empty(0, np.float32),
          np.dtype(np.float64): np.empty(0, np.float64)}


def sgd_(params, grads, state, lr, momentum=0.0, nesterov=False, weight_decay=0.0,
         dampening=0.0, keys=None, advance=True, check=True):
    """One SGD step on ``params`` in place; returns ``state`` (updated in place).

    Keys, shapes and the state's buffers are checked as in :func:`adam_`
    (``check=False`` skips it once a state exists)."""
    if check or state is None:
        check_optimizer_inputs(params, grads, state, "sgd", keys)
    if state is None:
        state = {"step": 0, "momentum_buffer": {}}
    if advance:
        state["step"] = int(state["step"]) + 1
    buffers = state["momentum_buffer"]
    for k in (grads if keys is None else keys):
        theta, g = params[k], grads[k]
        buf = buffers.get(k) if momentum else None
        if _cupy.applies(theta, g, buf) and theta.shape == g.shape:
            has_buf = buf is not None
            if momentum and not has_buf:
                buf = buffers[k] = _zeros_like(theta)
            _cupy.sgd_(theta, g, buf, lr, momentum, nesterov, weight_decay, dampening, has_buf)
        elif fusable(theta, g, buf) and theta.flags.writeable:
            has_buf = buf is not None
            if momentum and not has_buf:
                buf = buffers[k] = _zeros_like(theta)
            dt = theta.dtype.type
            sgd_inplace_kernel(theta.reshape(-1), g.reshape(-1),
                               (buf if momentum else theta).reshape(-1), dt(weight_decay),
                               dt(momentum), dt(1.0 - dampening), dt(lr), has_buf, bool(nesterov))
        else:
            new_theta, new_buf = ref.sgd_step(theta, g, buf, lr, momentum, nesterov,
                                              weight_decay, dampening)
            theta[...] = new_theta
            if momentum:
                if buf is None:
                    buffers[k] = new_buf if new_buf is not g else _copy(new_buf)
                else:
                    buf[...] = new_buf
    return state


def _copy(x):
    from ..backend import get_namespace

    return get_namespace(x).asarray(x, copy=True)
