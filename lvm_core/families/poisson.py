"""Independent Poisson counts per feature: p(x | k) = prod_d lambda_kd^x_d e^{-lambda_kd} / x_d!.

References: Bishop, PRML, sec. 2.4 (exponential family, conjugate Gamma
prior); hmmlearn 0.3's PoissonHMM prior convention.

    log p(x_n | k) = sum_d [x_nd log lambda_kd - lambda_kd - log x_nd!]
    resp_sum_k = sum_n r_nk,   x_sum_k = sum_n r_nk x_n              (additive)
    lambda_k   = (alpha + n xbar_k) / (beta + n),  xbar_k = x_sum_k / resp_sum_k,
                 n = sum_k resp_sum_k                                  (MAP, Gamma(alpha, beta))
"""
from __future__ import annotations

import numpy as np

from ..backend import device_of, get_namespace
from ._common import kmeans

__all__ = ["log_factorial", "log_prob", "statistics", "map_m_step", "init_kmeans", "sample"]


def log_factorial(X):
    """sum_d log(x_nd!) (N,), from the cumulative sums log n! = sum_{i<=n} log i."""
    xp = get_namespace(X)
    n_max = int(xp.max(X)) if X.shape[0] else 0
    zero = xp.zeros((1,), dtype=xp.float64, device=device_of(X))
    if n_max > 0:
        i = xp.arange(1, n_max + 1, dtype=xp.float64, device=device_of(X))
        table = xp.concat([zero, xp.cumulative_sum(xp.log(i))])
    else:
        table = zero
    idx = xp.reshape(xp.astype(X, xp.int64), (-1,))
    return xp.sum(xp.reshape(xp.take(table, idx), X.shape), axis=1)


def log_prob(X, log_factorial_X, lambdas):
    """sum_d [x_nd log lambda_kd - lambda_kd] - log x_n!, (N, K); lambdas (K, D)."""
    xp = get_namespace(X, lambdas)
    return (xp.matmul(X, xp.log(lambdas).T) - xp.sum(lambdas, axis=1)[None, :]
            - log_factorial_X[:, None])


def statistics(X, resp):
    """resp_sum (K,) and x_sum (K, D) = r^T X."""
    xp = get_namespace(X, resp)
    return {"resp_sum": xp.sum(resp, axis=0), "x_sum": xp.matmul(resp.T, X)}


def map_m_step(stats, lambdas, lambdas_prior, lambdas_weight):
    """MAP rates with a Gamma(alpha, beta) prior (module docstring); a component
    without mass keeps its rates.  alpha = beta = 0 gives lambda_k = xbar_k."""
    xp = get_namespace(lambdas)
    post = stats["resp_sum"]
    has_mass = post > 0
    safe = xp.where(has_mass, post, xp.ones_like(post))
    n = xp.sum(post)
    new = (lambdas_prior + n * (stats["x_sum"] / safe[:, None])) / (lambdas_weight + n)
    return xp.where(has_mass[:, None], new, lambdas)


def init_kmeans(X, n_components, rng, kmeans_init=True):
    """Rates 1/2 (k-means centre) + 1/2 (data mean) + 1e-3 (NumPy, (K, D));
    ``kmeans_init=False`` takes random rows instead of k-means centres."""
    K = n_components
    if kmeans_init:
        centres = np.asarray(kmeans(X, K, rng, max_iter=10)[0])
    else:
        centres = X[rng.choice(X.shape[0], K, replace=X.shape[0] < K)]
    return 0.5 * centres + 0.5 * X.mean(axis=0) + 1e-3


def sample(rng, lambdas, labels):
    """x_n ~ Poisson(lambda_{l_n}); NumPy (N, D) int64."""
    return rng.poisson(lambdas[labels]).astype(np.int64)
