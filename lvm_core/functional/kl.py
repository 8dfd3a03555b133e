"""Closed-form KL divergences between diagonal Gaussians, with gradients.

Kingma & Welling 2014, appendix B (and Bishop PRML eq. 2.43 for the
densities): for q = N(mu_q, diag exp(log_var_q)) and p = N(mu_p, diag
exp(log_var_p)),

    KL(q || p) = 1/2 sum_l [ log_var_p - log_var_q
                             + (exp(log_var_q) + (mu_q - mu_p)^2) exp(-log_var_p) - 1 ].

With p = N(0, s^2 I) (prior_var = s^2) this is

    KL = 1/2 sum_l [ (exp(log_var) + mu^2) / s^2 - 1 - log_var + log s^2 ].

The sum runs over the last (latent) axis L; the result has one value per row
(N,).  Gradients are those of sum_n KL_n.
"""
from __future__ import annotations

import math

from ..backend import get_namespace
from ._common import as_array_like, broadcast_shape, check_float, check_same_dtype, sum_to_shape

__all__ = ["kl_normal_std_normal", "kl_normal_normal"]


def kl_normal_std_normal(mu, log_var, prior_var=1.0):
    """KL(N(mu, diag exp(log_var)) || N(0, prior_var I)) per row.

    kl_n = 1/2 sum_l [(exp(log_var) + mu^2)/prior_var - 1 - log_var + log prior_var]
    dmu = mu / prior_var,   dlog_var = 1/2 (exp(log_var)/prior_var - 1).

    Shapes: mu (N, L), log_var (N, L) -> kl (N,), dmu (N, L), dlog_var (N, L).
    ``prior_var`` is a positive Python float.
    """
    check_float(mu, "mu")
    check_float(log_var, "log_var")
    check_same_dtype("mu", mu, "log_var", log_var)
    if tuple(mu.shape) != tuple(log_var.shape):
        raise ValueError(
            f"mu and log_var must have the same shape (N, L); got {tuple(mu.shape)} and "
            f"{tuple(log_var.shape)}."
        )
    if isinstance(prior_var, bool) or not isinstance(prior_var, (int, float)) or not (
            math.isfinite(prior_var) and prior_var > 0):
        raise ValueError(
            f"prior_var must be a positive finite Python float (the prior variance s^2); "
            f"got {prior_var!r}."
        )
    prior_var = float(prior_var)
    xp = get_namespace(mu, log_var)
    var = xp.exp(log_var)
    kl = 0.5 * xp.sum((var + mu * mu) / prior_var - 1.0 - log_var + math.log(prior_var),
                      axis=-1)
    dmu = mu / prior_var
    dlog_var = 0.5 * (var / prior_var - 1.0)
    return kl, dmu, dlog_var


def kl_normal_normal(mu_q, log_var_q, mu_p, log_var_p):
    """KL(N(mu_q, diag exp(log_var_q)) || N(mu_p, diag exp(log_var_p))) per row.

    kl_n = 1/2 sum_l [log_var_p - log_var_q + (exp(log_var_q) + (mu_q - mu_p)^2)
                      exp(-log_var_p) - 1]

    dmu_q = (mu_q - mu_p) exp(-log_var_p) = -dmu_p,
    dlog_var_q = 1/2 (exp(log_var_q - log_var_p) - 1),
    dlog_var_p = 1/2 (1 - (exp(log_var_q) + (mu_q - mu_p)^2) exp(-log_var_p)).

    Shapes: all four broadcast together to (N, L) (e.g. a prior given as (L,)
    or ()); returns kl (N,) and the four gradients, each shaped like its input.
    """
    ref = check_float(mu_q, "mu_q")
    log_var_q = check_float(as_array_like(log_var_q, ref, "log_var_q"), "log_var_q")
    mu_p = check_float(as_array_like(mu_p, ref, "mu_p"), "mu_p")
    log_var_p = check_float(as_array_like(log_var_p, ref, "log_var_p"), "log_var_p")
    for name, a in (("log_var_q", log_var_q), ("mu_p", mu_p), ("log_var_p", log_var_p)):
        check_same_dtype("mu_q", mu_q, name, a)
    shape = broadcast_shape((mu_q, "mu_q"), (log_var_q, "log_var_q"), (mu_p, "mu_p"),
                            (log_var_p, "log_var_p"))
    if len(shape) < 1:
        raise ValueError("the inputs must have at least one (latent) axis; got 0-d arrays.")
    xp = get_namespace(mu_q, log_var_q, mu_p, log_var_p)
    diff = mu_q - mu_p
    ratio = xp.exp(log_var_q - log_var_p)  # var_q / var_p
    sq = diff * diff * xp.exp(-log_var_p)
    kl = 0.5 * xp.sum(log_var_p - log_var_q + ratio + sq - 1.0, axis=-1)
    dmu_q_full = diff * xp.exp(-log_var_p)
    dlog_var_q_full = 0.5 * (ratio - 1.0)
    dlog_var_p_full = 0.5 * (1.0 - ratio - sq)
    return (kl,
            sum_to_shape(xp.broadcast_to(dmu_q_full, shape), mu_q.shape),
            sum_to_shape(xp.broadcast_to(dlog_var_q_full, shape), log_var_q.shape),
            sum_to_shape(xp.broadcast_to(-dmu_q_full, shape), mu_p.shape),
            sum_to_shape(xp.broadcast_to(dlog_var_p_full, shape), log_var_p.shape))
