"""Multinomial observations: counts x in N^F of n = sum_f x_f trials with
symbol probabilities B[k, :].

References: Bishop, PRML, sec. 2.2 (multinomial, Dirichlet prior); hmmlearn
0.3's MultinomialHMM (the same likelihood and M-step).

    log p(x_n | k) = log n_n! - sum_f log x_nf! + sum_f x_nf log B[k, f]
                     (x log 0 = 0 when x = 0, -inf when x > 0)
    counts[k, f]   = sum_n r_nk x_nf                                  (K, F), additive
    B[k, f]        = max(counts[k, f] + a - 1, 0) / sum_f' max(counts[k, f'] + a - 1, 0)

The M-step is the categorical one (:func:`lvm_core.families.categorical.map_m_step`)
applied to the expected symbol counts.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import get_namespace
from .poisson import log_factorial

__all__ = ["log_coefficient", "log_prob", "statistics", "sample"]


def log_coefficient(X):
    """log n_n! - sum_f log x_nf! (N,), the multinomial coefficient of each row."""
    xp = get_namespace(X)
    n = xp.sum(X, axis=1)
    return log_factorial(n[:, None]) - log_factorial(X)


def log_prob(X, log_coef, emissionprob):
    """sum_f x_nf log B[k, f] + log coefficient, (N, K); x log 0 = 0 for x = 0."""
    xp = get_namespace(X, emissionprob)
    positive = emissionprob > 0
    log_B = xp.log(xp.where(positive, emissionprob, xp.ones_like(emissionprob)))  # (K, F)
    finite = xp.matmul(X, log_B.T)  # (N, K) over the symbols with B > 0
    impossible = xp.matmul(xp.astype(X > 0, X.dtype), xp.astype(~positive, X.dtype).T) > 0
    out = finite + log_coef[:, None]
    return xp.where(impossible, xp.full_like(out, -math.inf), out)


def statistics(X, resp):
    """counts[k, f] = sum_n r_nk x_nf, (K, F)."""
    xp = get_namespace(X, resp)
    return {"counts": xp.matmul(resp.T, X)}


def sample(rng, emissionprob, labels, n_trials):
    """x_n ~ Multinomial(n_trials, B[l_n]); NumPy (N, F) int64."""
    out = np.empty((len(labels), emissionprob.shape[1]), dtype=np.int64)
    for i, k in enumerate(labels):
        p = emissionprob[k] / emissionprob[k].sum()
        out[i] = rng.multinomial(int(n_trials), p)
    return out
