"""The variational identity behind EM and AEVB, for a discrete latent variable.

For any non-negative g over the K values of z and any q on the simplex,

    log sum_z g(z) = max_q Q(q, g),   Q(q, g) = sum_z q_z log g(z) - sum_z q_z log q_z,

and the maximum is attained at q* = g / sum_z g (course notes seed 000,
sec. 1.a, a Lagrange-multiplier proof; Neal & Hinton 1998; Bishop PRML
sec. 9.4).  The gap is a KL divergence (Gibbs' inequality):

    log sum_z g(z) - Q(q, g) = KL(q || q*) >= 0.

With g(z) = p(x, z) this reads log p(x) = ELBO(q) + KL(q || p(z | x)): the
E-step of EM sets q = p(z | x) (the bound becomes tight) and the M-step
raises the bound in theta; AEVB does both by gradient steps (seed 002).

Everything is in log space: the functions take ``log_g`` (entries may be
-inf, i.e. g(z) = 0) and reduce over ``axis``, so a batch of N examples is a
(N, K) array.  Conventions: 0 log 0 = 0, so q may put zero mass anywhere;
q_z > 0 where g(z) = 0 gives Q = -inf.
"""
from __future__ import annotations

from .backend import float_dtype, get_namespace
from .functional import logsumexp
from .validation import check_probability_vector

__all__ = ["elbo_discrete", "log_normalizer", "optimal_q", "variational_gap"]


def _check_log_g(log_g, name="log_g"):
    xp = get_namespace(log_g)
    if not hasattr(log_g, "dtype") or not xp.isdtype(log_g.dtype, "real floating"):
        raise TypeError(
            f"{name} must be a floating array of log-values log g(z); got "
            f"{type(log_g).__name__} with dtype {getattr(log_g, 'dtype', None)}. "
            "Pass e.g. numpy.log(g) as float64."
        )
    if bool(xp.any(xp.isnan(log_g))) or bool(xp.any(log_g == float("inf"))):
        raise ValueError(
            f"{name} must not contain NaN or +inf (-inf, i.e. g(z) = 0, is allowed); "
            "check how the log-values were computed."
        )
    return xp


def _check_q(q, log_g, axis, name="q"):
    xp = get_namespace(log_g, q)
    if tuple(q.shape) != tuple(log_g.shape):
        raise ValueError(
            f"{name} must have the shape of log_g {tuple(log_g.shape)} (one probability per "
            f"value of z); got {tuple(q.shape)}."
        )
    atol = 1e-4 if float_dtype(q) == xp.float32 else 1e-6
    check_probability_vector(q, name, axis=axis, atol=atol)
    return xp


def _xlogy(xp, q, log_y):
    """q * log_y with 0 * log_y = 0 (also for log_y = -inf)."""
    return q * xp.where(q > 0, log_y, xp.zeros_like(log_y))


def elbo_discrete(log_g, q, axis=-1):
    """Q(q, g) = sum_z q_z log g(z) - sum_z q_z log q_z  (<= log sum_z g(z)).

    ``log_g`` and ``q`` have the same shape, e.g. (N, K); the sum runs over
    ``axis`` (result (N,)).  0 log 0 = 0.
    """
    xp = _check_log_g(log_g)
    _check_q(q, log_g, axis)
    log_q = xp.log(xp.where(q > 0, q, xp.ones_like(q)))  # log q where q > 0, 0 elsewhere
    return xp.sum(_xlogy(xp, q, log_g) - q * log_q, axis=axis)


def log_normalizer(log_g, axis=-1):
    """log sum_z g(z) (max-shifted log-sum-exp), the value of max_q Q(q, g)."""
    _check_log_g(log_g)
    return logsumexp(log_g, axis=axis)


def optimal_q(log_g, axis=-1):
    """The maximiser q* = g / sum_z g(z) = exp(log g - log sum_z g) of Q(q, g).

    With g(z) = p(x, z) this is the exact posterior p(z | x) (the E-step).
    An all -inf slice (g = 0) has no normaliser and gives NaN there.
    """
    xp = _check_log_g(log_g)
    return xp.exp(log_g - logsumexp(log_g, axis=axis, keepdims=True))


def variational_gap(log_g, q, axis=-1):
    """KL(q || q*) = sum_z q_z (log q_z - log q*_z) = log sum_z g(z) - Q(q, g)  (>= 0)."""
    xp = _check_log_g(log_g)
    _check_q(q, log_g, axis)
    log_q_star = log_g - logsumexp(log_g, axis=axis, keepdims=True)
    log_q = xp.log(xp.where(q > 0, q, xp.ones_like(q)))
    return xp.sum(q * log_q - _xlogy(xp, q, log_q_star), axis=axis)
