"""Categorical observations: x in {0, ..., F-1} with p(x = f | k) = B[k, f].

References: L. R. Rabiner, "A tutorial on hidden Markov models ...", Proc.
IEEE 77(2), 1989, eq. 40c (re-estimation of B); Bishop, PRML, sec. 2.2
(Dirichlet prior, MAP estimate).

    log p(x_n | k)  = log B[k, x_n]
    counts[k, f]    = sum_{n: x_n = f} r_nk                  (K, F), additive
    B[k, f]         = max(counts[k, f] + a - 1, 0) / sum_f' max(counts[k, f'] + a - 1, 0)
"""
from __future__ import annotations

import numpy as np

from ..backend import device_of, get_namespace
from ._common import safe_log

__all__ = ["log_prob", "statistics", "map_m_step", "init_random", "sample"]


def log_prob(symbols, emissionprob):
    """log B[k, x_n], (N, K); symbols (N,) int64 in 0..F-1, emissionprob (K, F)."""
    xp = get_namespace(emissionprob)
    return xp.take(safe_log(emissionprob).T, symbols, axis=0)  # (N, K)


def statistics(symbols, resp, n_symbols):
    """counts[k, f] = sum_{n: x_n = f} r_nk, (K, F) (generic array-API code)."""
    xp = get_namespace(resp)
    one_hot = xp.astype(
        symbols[:, None] == xp.arange(n_symbols, device=device_of(resp))[None, :], resp.dtype)
    return {"counts": xp.matmul(resp.T, one_hot)}  # (K, F)


def map_m_step(counts, emissionprob_prior, emissionprob):
    """Dirichlet(a) MAP update of each row of B (see the module docstring).

    A row with nothing to normalise (no mass and a <= 1) keeps ``emissionprob``.
    """
    xp = get_namespace(counts)
    c = xp.maximum(counts + (emissionprob_prior - 1.0), xp.zeros_like(counts))
    total = xp.sum(c, axis=1, keepdims=True)
    ok = total > 0
    return xp.where(ok, c / xp.where(ok, total, xp.ones_like(total)), emissionprob)


def init_random(n_components, n_symbols, rng):
    """Rows of B drawn uniformly then normalised (hmmlearn's random start); NumPy (K, F)."""
    B = rng.random((n_components, int(n_symbols)))
    return B / B.sum(axis=1, keepdims=True)


def sample(rng, emissionprob, labels):
    """x_n ~ Categorical(B[l_n]) by inverse CDF; NumPy, returns (N,) int64."""
    cdf = np.cumsum(emissionprob, axis=1)[labels]  # (N, F)
    u = rng.random(len(labels))[:, None]
    return np.minimum((cdf <= u * cdf[:, -1:]).sum(axis=1), emissionprob.shape[1] - 1)
