"""Helpers shared by every observation family: safe log, k-means, row sampling.

References: D. Arthur and S. Vassilvitskii, "k-means++: the advantages of
careful seeding", SODA 2007 (seeding with probability ~ D(x)^2); S. P. Lloyd,
"Least squares quantization in PCM", IEEE Trans. IT 28(2), 1982 (the
alternating assignment / centroid steps).  The log-sum-exp is the one of
:mod:`lvm_core.functional.reductions` (re-exported here so that families and
models import a single one).

These are the library's only safe log and only k-means: mixtures, HMMs and
their families all use them.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import asarray, get_namespace, item
from ..functional.reductions import logsumexp
from ..random import categorical

__all__ = ["safe_log", "logsumexp", "squared_distances", "kmeans_plusplus", "kmeans",
           "init_rows"]


def safe_log(p):
    """log p elementwise with log 0 = -inf (no warning, no NaN for p >= 0)."""
    xp = get_namespace(p)
    positive = p > 0
    return xp.where(positive, xp.log(xp.where(positive, p, xp.ones_like(p))),
                    xp.full_like(p, -math.inf))


def squared_distances(X, centers):
    """||x_n - c_k||^2 = ||x_n||^2 - 2 x_n . c_k + ||c_k||^2, shape (N, K), clipped at 0."""
    xp = get_namespace(X, centers)
    d2 = (xp.sum(X * X, axis=1)[:, None] - 2.0 * xp.matmul(X, centers.T)
          + xp.sum(centers * centers, axis=1)[None, :])
    return xp.maximum(d2, xp.zeros_like(d2))


def kmeans_plusplus(X, K, rng):
    """k-means++ seeding: indices of K rows of X (N, D).

    The first centre is uniform over the rows; each next one is drawn with
    p(n) = D(x_n)^2 / sum_m D(x_m)^2, D(x) the distance to the nearest centre
    chosen so far (Arthur & Vassilvitskii 2007).  When every remaining row
    coincides with a centre, a remaining row is drawn uniformly.
    """
    xp = get_namespace(X)
    N = X.shape[0]
    indices = [int(rng.integers(0, N))]
    min_d2 = squared_distances(X, X[indices[0]:indices[0] + 1, :])[:, 0]  # (N,)
    for _ in range(1, K):
        total = item(xp.sum(min_d2))
        if total <= 0.0:
            remaining = np.setdiff1d(np.arange(N), np.asarray(indices))
            indices.append(int(rng.choice(remaining)))
        else:
            indices.append(int(item(categorical(rng, safe_log(min_d2)))))
        d2 = squared_distances(X, X[indices[-1]:indices[-1] + 1, :])[:, 0]
        min_d2 = xp.minimum(min_d2, d2)
    return indices


def kmeans(X, K, rng, max_iter=100):
    """Lloyd's k-means from a k-means++ start; returns ``(centers (K, D), labels (N,))``.

    Assignment: l_n = argmin_k ||x_n - c_k||^2; update: c_k = mean of the rows
    with l_n = k (an empty cluster keeps its centre).  Stops when the labels
    no longer change or after ``max_iter`` rounds.
    """
    xp = get_namespace(X)
    index = asarray(np.asarray(kmeans_plusplus(X, K, rng), dtype=np.int64), like=X, dtype="int64")
    centers = xp.take(X, index, axis=0)  # (K, D)
    labels = None
    for _ in range(max_iter):
        new_labels = xp.argmin(squared_distances(X, centers), axis=1)
        if labels is not None and bool(xp.all(new_labels == labels)):
            break
        labels = new_labels
        one_hot = xp.astype(labels[:, None] == xp.arange(K, device=X.device)[None, :], X.dtype)
        counts = xp.sum(one_hot, axis=0)  # (K,)
        sums = xp.matmul(one_hot.T, X)  # (K, D)
        safe = xp.where(counts > 0, counts, xp.ones_like(counts))
        centers = xp.where(counts[:, None] > 0, sums / safe[:, None], centers)
    return centers, labels


def init_rows(n_rows, max_rows, rng):
    """Row indices used by an initialisation: all rows (None) when
    ``n_rows <= max_rows``, else ``max_rows`` rows drawn without replacement."""
    if n_rows <= max_rows:
        return None
    return rng.choice(n_rows, max_rows, replace=False)
