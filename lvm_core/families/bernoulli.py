"""Independent binary features: p(x | k) = prod_d p_kd^x_d (1 - p_kd)^(1 - x_d).

References: Bishop, PRML, sec. 9.3.3 (mixtures of Bernoulli distributions,
eqs. 9.47-9.60); Beta(a, b) conjugate prior for the MAP estimate (PRML 2.1.1).

    log p(x_n | k) = sum_d [x_nd log p_kd + (1 - x_nd) log(1 - p_kd)]
                   = x_n . (log p_k - log(1 - p_k)) + sum_d log(1 - p_kd)
    resp_sum_k = sum_n r_nk,   x_sum_k = sum_n r_nk x_n              (additive)
    p_kd = (x_sum_kd + a - 1) / (resp_sum_k + a + b - 2),  clipped to [floor, 1 - floor]
"""
from __future__ import annotations

import numpy as np

from ..backend import get_namespace
from ._common import safe_log

__all__ = ["log_prob", "statistics", "map_m_step", "init_random", "sample"]


def log_prob(X, probs):
    """x_n . (log p_k - log(1 - p_k)) + sum_d log(1 - p_kd), (N, K); X (N, D) in {0, 1}."""
    xp = get_namespace(X, probs)
    log_p, log_q = safe_log(probs), safe_log(1.0 - probs)  # (K, D)
    return xp.matmul(X, (log_p - log_q).T) + xp.sum(log_q, axis=1)[None, :]


def statistics(X, resp):
    """resp_sum (K,) and x_sum (K, D) = r^T X."""
    xp = get_namespace(X, resp)
    return {"resp_sum": xp.sum(resp, axis=0), "x_sum": xp.matmul(resp.T, X)}


def map_m_step(stats, alpha=1.0, beta=1.0, floor=1e-10):
    """Mixing weights and MAP probabilities (PRML eqs. 9.59-9.60 with a Beta(a, b) prior).

    pi_k = N_k / N;  p_kd = (x_sum_kd + a - 1) / (N_k + a + b - 2), clipped to
    [floor, 1 - floor] (a component without mass gets p = 1/2 when a = b = 1).
    Returns ``(weights, probs)``.
    """
    xp = get_namespace(stats["x_sum"])
    N_k = stats["resp_sum"]
    weights = N_k / xp.sum(N_k)
    den = N_k[:, None] + (alpha + beta - 2.0)
    num = stats["x_sum"] + (alpha - 1.0)
    ok = den > 0
    probs = xp.where(ok, num / xp.where(ok, den, xp.ones_like(den)), xp.full_like(num, 0.5))
    probs = xp.clip(probs, floor, 1.0 - floor)
    return weights, probs


def init_random(n_components, n_features, rng):
    """p_kd ~ Uniform(0.25, 0.75) (Bishop's suggestion of a random start); NumPy (K, D)."""
    return rng.uniform(0.25, 0.75, size=(n_components, n_features))


def sample(rng, probs, labels):
    """x_nd ~ Bernoulli(p_{l_n d}); NumPy (N, D) float64."""
    return (rng.random((len(labels), probs.shape[1])) < probs[labels]).astype(np.float64)
