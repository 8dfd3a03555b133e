"""Finite-difference gradient checks (public: check your own layers with them).

Two checks of an analytic gradient g = df/dx of a scalar function f:

* coordinate-wise central differences (exact up to O(h^2)),

      g_i ~ (f(x + h e_i) - f(x - h e_i)) / (2 h);

* random directions v (cheap for large x, sees every coordinate at once),

      <g, v> ~ (f(x + h v) - f(x - h v)) / (2 h).

The error reported is the max-norm relative error

      rel(a, b) = max_i |a_i - b_i| / max(max_i |a_i|, max_i |b_i|, tiny),

which is scale-free and does not blow up on individual near-zero entries.
Run checks in float64: with h = 1e-6 a correct gradient gives rel ~ 1e-9,
so the project's threshold of 1e-6 separates right from wrong cleanly.

The functions perturb a host (NumPy) float64 copy of ``x`` and hand each
perturbed point back to ``f`` on the device of ``x`` (an explicit transfer),
so they work on any array-API backend.
"""
from __future__ import annotations

import numpy as np

from typing import NamedTuple

from .backend import asarray, to_numpy
from .random import as_generator

__all__ = [
    "GradientCheckError",
    "relative_error",
    "numerical_gradient",
    "check_gradient",
    "check_directional",
    "check_grads",
    "GradReport",
    "grad_report",
    "check_grads_resolvable",
]


class GradientCheckError(AssertionError):
    """An analytic gradient disagrees with finite differences."""


def relative_error(a, b) -> float:
    """Max-norm relative error max|a - b| / max(max|a|, max|b|, tiny)."""
    a = np.asarray(to_numpy(a), dtype=np.float64)
    b = np.asarray(to_numpy(b), dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"relative_error: shapes differ, {a.shape} vs {b.shape}.")
    if a.size == 0:
        return 0.0
    scale = max(float(np.max(np.abs(a))), float(np.max(np.abs(b))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(a - b)) / scale)


def _scalar(value) -> float:
    return float(np.asarray(to_numpy(value), dtype=np.float64).reshape(()))


def _call(f, x_host, like):
    if like is None:
        return _scalar(f(x_host))
    return _scalar(f(asarray(x_host, like=like)))


def numerical_gradient(f, x, h=1e-6):
    """Central-difference gradient of scalar ``f`` at ``x``, as a float64 NumPy array.

    ``f`` maps an array shaped like ``x`` to a scalar (float or 0-d array).
    Cost: 2 * x.size evaluations of ``f``.
    """
    like = None if isinstance(x, np.ndarray) else x
    x0 = np.array(to_numpy(x), dtype=np.float64, copy=True, order="C")
    grad = np.zeros_like(x0)
    gflat = grad.reshape(-1)
    for i in range(x0.size):
        gflat[i] = _central_difference(f, x0, i, h, like)
    return grad


def _central_difference(f, x0, i, h, like):
    """(f(x + h e_i) - f(x - h e_i)) / 2h, perturbing ``x0`` (float64, host) in place
    and restoring it."""
    flat = x0.reshape(-1)
    old = flat[i]
    flat[i] = old + h
    f_plus = _call(f, x0, like)
    flat[i] = old - h
    f_minus = _call(f, x0, like)
    flat[i] = old
    return (f_plus - f_minus) / (2.0 * h)


def _fail(message, raise_on_fail):
    if raise_on_fail:
        raise GradientCheckError(message)


def check_gradient(f, x, grad, h=1e-6, rtol=1e-6, raise_on_fail=True, name="x") -> float:
    """Compare the analytic ``grad`` of ``f`` at ``x`` with central differences.

    Returns the max-norm relative error.  With ``raise_on_fail`` (default) a
    :class:`GradientCheckError` is raised when it exceeds ``rtol``, naming the
    worst coordinate and both values.
    """
    g_num = numerical_gradient(f, x, h=h)
    g = np.asarray(to_numpy(grad), dtype=np.float64)
    if g.shape != g_num.shape:
        raise ValueError(
            f"gradient for {name} has shape {g.shape} but {name} has shape {g_num.shape}."
        )
    err = relative_error(g, g_num)
    if err > rtol:
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(np.abs(g - g_num))), g.shape)) if g.size else ()
        _fail(
            f"gradient check failed for {name}: relative error {err:.3e} > rtol={rtol:.1e}; "
            f"worst entry {idx}: analytic {g[idx]!r} vs numeric {g_num[idx]!r}. "
            "Is the function evaluated in float64 and is the backward of every op right?",
            raise_on_fail,
        )
    return err


def check_directional(f, x, grad, rng=0, n_directions=4, h=1e-5, rtol=1e-6,
                      raise_on_fail=True, name="x") -> float:
    """Random-direction check: (f(x+hv) - f(x-hv)) / 2h against <grad, v>.

    Directions are standard normal, normalised to unit length.  Returns the
    largest relative error over directions, |d_num - d| / max(|d_num|, |d|, tiny).
    """
    rng = as_generator(rng)
    like = None if isinstance(x, np.ndarray) else x
    x0 = np.array(to_numpy(x), dtype=np.float64, copy=True, order="C")
    g = np.asarray(to_numpy(grad), dtype=np.float64)
    if g.shape != x0.shape:
        raise ValueError(f"gradient for {name} has shape {g.shape} but {name} has shape {x0.shape}.")
    worst = 0.0
    for _ in range(int(n_directions)):
        v = rng.standard_normal(x0.shape)
        v /= max(np.linalg.norm(v), np.finfo(np.float64).tiny)
        d_num = (_call(f, x0 + h * v, like) - _call(f, x0 - h * v, like)) / (2.0 * h)
        d = float(np.sum(g * v))
        err = abs(d_num - d) / max(abs(d_num), abs(d), np.finfo(np.float64).tiny)
        worst = max(worst, err)
    if worst > rtol:
        _fail(
            f"directional gradient check failed for {name}: relative error {worst:.3e} "
            f"> rtol={rtol:.1e}.",
            raise_on_fail,
        )
    return worst


def check_grads(f, params, grads, h=1e-6, rtol=1e-6, raise_on_fail=True,
                max_coords=None, rng=0):
    """Check a dict of gradients of ``f(params) -> scalar``.

    For each key, only that entry of ``params`` is perturbed (the others are
    held fixed).  With ``max_coords`` set, keys with more entries than that
    are checked on ``max_coords`` random coordinates plus 2 random directions
    instead of every coordinate.  Returns ``{key: relative error}``; raises
    :class:`GradientCheckError` naming the worst key when asked to.
    """
    rng = as_generator(rng)
    missing = set(params) ^ set(grads)
    if missing:
        raise ValueError(f"params and grads must have the same keys; they differ in {sorted(missing)}.")
    errors = {}
    for key in params:
        def f_key(value, key=key):
            trial = dict(params)
            trial[key] = value
            return f(trial)

        x = params[key]
        size = int(np.prod(x.shape)) if x.shape else 1
        if max_coords is None or size <= max_coords:
            errors[key] = check_gradient(f_key, x, grads[key], h=h, rtol=rtol,
                                         raise_on_fail=False, name=key)
        else:
            errors[key] = max(
                _check_coords(f_key, x, grads[key], rng, max_coords, h),
                check_directional(f_key, x, grads[key], rng=rng, n_directions=2,
                                  h=h, rtol=rtol, raise_on_fail=False, name=key),
            )
    worst = max(errors, key=errors.get) if errors else None
    if worst is not None and errors[worst] > rtol:
        _fail(
            f"gradient check failed: worst parameter {worst!r} has relative error "
            f"{errors[worst]:.3e} > rtol={rtol:.1e}; all errors: "
            + ", ".join(f"{k}={v:.2e}" for k, v in errors.items()),
            raise_on_fail,
        )
    return errors


def _check_coords(f, x, grad, rng, n, h):
    """Relative error on ``n`` random coordinates (scaled by the whole gradient)."""
    like = None if isinstance(x, np.ndarray) else x
    x0 = np.array(to_numpy(x), dtype=np.float64, copy=True, order="C")
    g = np.asarray(to_numpy(grad), dtype=np.float64).reshape(-1)
    idx = rng.choice(x0.size, size=n, replace=False)
    num = np.array([_central_difference(f, x0, i, h, like) for i in idx])
    scale = max(float(np.max(np.abs(g))), float(np.max(np.abs(num))), np.finfo(np.float64).tiny)
    return float(np.max(np.abs(num - g[idx])) / scale)


class GradReport(NamedTuple):
    """One parameter's check: max-norm relative error and the two gradients' sizes."""

    error: float  # max|a - n| / max(max|a|, max|n|)
    numeric_max: float  # max|n|, the central-difference gradient
    analytic_max: float  # max|a|


def grad_report(f, params, grads, h=1e-6):
    """Every coordinate of every key of ``params`` against central differences.

    Returns ``{key: GradReport}``; the error is scaled by the larger of the two
    gradients, so an analytic gradient that is wrongly zero has error 1.
    """
    missing = set(params) ^ set(grads)
    if missing:
        raise ValueError(f"params and grads must have the same keys; they differ in {sorted(missing)}.")
    out = {}
    for key in params:
        def f_key(value, key=key):
            trial = dict(params)
            trial[key] = value
            return f(trial)

        num = numerical_gradient(f_key, params[key], h=h)
        ana = np.asarray(to_numpy(grads[key]), dtype=np.float64)
        if ana.shape != num.shape:
            raise ValueError(f"gradient for {key} has shape {ana.shape} but {key} has shape "
                             f"{num.shape}.")
        n_max = float(np.max(np.abs(num))) if num.size else 0.0
        a_max = float(np.max(np.abs(ana))) if ana.size else 0.0
        out[key] = GradReport(relative_error(ana, num), n_max, a_max)
    return out


def check_grads_resolvable(f, params, grads, f_value, h=1e-5, rtol=1e-6, floor=1e-4,
                           round_off=1e-9):
    """The gradient check the test suite applies to whole models and layers.

    Each key whose *numeric* gradient central differences can resolve
    (max|numeric| >= floor (1 + |f|)) must have a relative error below
    ``rtol``, scaled by max(|analytic|, |numeric|); the others (gradients at
    the level of the differences' round-off, ~1e-16 |f| / h) must have an
    absolute error below ``round_off (1 + |f|)``.  The filter looks at the
    numeric gradient only, never the analytic one, so a backward that wrongly
    returns zeros fails.  Returns the reports; raises GradientCheckError.
    """
    reports = grad_report(f, params, grads, h=h)
    bound = 1.0 + abs(float(f_value))
    bad = []
    for key, r in reports.items():
        if r.numeric_max >= floor * bound:
            if r.error >= rtol:
                bad.append(f"{key}: relative error {r.error:.3e} >= {rtol:.1e} "
                           f"(max|numeric| {r.numeric_max:.3e}, max|analytic| {r.analytic_max:.3e})")
        else:
            abs_err = r.error * max(r.numeric_max, r.analytic_max)
            if abs_err >= round_off * bound:
                bad.append(f"{key}: absolute error {abs_err:.3e} >= {round_off * bound:.3e} on a "
                           f"gradient below the resolvable size (max|numeric| {r.numeric_max:.3e})")
    if bad:
        raise GradientCheckError("gradient check failed: " + "; ".join(bad))
    return reports
