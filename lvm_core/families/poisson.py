"""Independent Poisson counts per feature: p(x | k) = prod_d lambda_kd^x_d e^{-lambda_kd} / x_d!.

References: Bishop, PRML, sec. 2.4 (exponential family, conjugate Gamma
prior); hmmlearn 0.3's PoissonHMM prior convention.

    log p(x_n | k) = sum_d [x_nd log lambda_kd - lambda_kd - log x_nd!]
    resp_sum_k = sum_n r_nk,   x_sum_k = sum_n r_nk x_n              (additive)
    lambda_k   = max((alpha + n xbar_k) / (beta + n), LAMBDA_FLOOR),
                 xbar_k = x_sum_k / resp_sum_k, n = sum_k resp_sum_k  (MAP, Gamma(alpha, beta))

The floor keeps every rate positive: a state that only saw zeros would
otherwise get lambda = 0, for which any later positive count is impossible.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import device_of, get_namespace
from ._common import kmeans

LAMBDA_FLOOR = 1e-10  # smallest rate an M-step returns

__all__ = ["LAMBDA_FLOOR", "log_factorial", "log_prob", "statistics", "map_m_step", "init_kmeans", "sample"]


TABLE_MAX = 4096  # log n! from a table up to here, from Stirling's series above
MAX_COUNT = 2.0 ** 53  # counts above this are not exact in float64


def log_factorial(X):
    """sum_d log(x_nd!) (N,).

    log n! = sum_{i <= n} log i from a table of cumulative sums for n <= TABLE_MAX
    (so memory stays bounded whatever the counts), and Stirling's series
    log n! = n log n - n + log(2 pi n) / 2 + 1/(12 n) - 1/(360 n^3) + 1/(1260 n^5)
    above it (its next term, 1/(1680 n^7) < 1e-28, is far below float64 round-off).
    """
    xp = get_namespace(X)
    n_max = int(xp.max(X)) if X.shape[0] else 0
    zero = xp.zeros((1,), dtype=xp.float64, device=device_of(X))
    top = min(n_max, TABLE_MAX)
    if top > 0:
        i = xp.arange(1, top + 1, dtype=xp.float64, device=device_of(X))
        table = xp.concat([zero, xp.cumulative_sum(xp.log(i))])
    else:
        table = zero
    Xf = xp.astype(X, xp.float64)
    idx = xp.reshape(xp.astype(xp.minimum(Xf, xp.full_like(Xf, float(top))), xp.int64), (-1,))
    out = xp.reshape(xp.take(table, idx), X.shape)
    if n_max > TABLE_MAX:
        n = xp.maximum(Xf, xp.full_like(Xf, float(TABLE_MAX)))
        inv = 1.0 / n
        inv2 = inv * inv
        stirling = (n * xp.log(n) - n + 0.5 * xp.log(2.0 * math.pi * n)
                    + inv * (1.0 / 12.0 - inv2 * (1.0 / 360.0 - inv2 / 1260.0)))
        out = xp.where(Xf > TABLE_MAX, stirling, out)
    return xp.sum(out, axis=1)


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
    """MAP rates with a Gamma(alpha, beta) prior (module docstring), floored at
    LAMBDA_FLOOR; a component without mass keeps its rates.  alpha = beta = 0
    gives lambda_k = max(xbar_k, LAMBDA_FLOOR)."""
    xp = get_namespace(lambdas)
    post = stats["resp_sum"]
    has_mass = post > 0
    safe = xp.where(has_mass, post, xp.ones_like(post))
    n = xp.sum(post)
    new = (lambdas_prior + n * (stats["x_sum"] / safe[:, None])) / (lambdas_weight + n)
    new = xp.maximum(new, xp.full_like(new, LAMBDA_FLOOR))
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
