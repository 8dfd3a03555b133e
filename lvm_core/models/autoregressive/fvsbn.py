"""Fully visible sigmoid belief network (FVSBN): one logistic regression per dimension.

References: Neal 1992 ("Connectionist learning of belief networks"); Frey
1998 (*Graphical models for machine learning and digital communication*,
the "logistic autoregressive" model); Larochelle & Murray 2011 (the FVSBN
baseline of the NADE paper); lecture notes, seed 001.

In the model's order d = 1..D (see :mod:`._base` for orderings), with
x in {0, 1}^D, W (D, D) used through its strictly lower triangle and b (D,)::

    a_d = b_d + sum_{j<d} W_dj x_j          (logits: a = x tril(W, -1)^T + b)
    p(x_d = 1 | x_<d) = sigmoid(a_d)
    log p(x) = sum_d [x_d a_d - softplus(a_d)]

The D(D-1)/2 + D free parameters grow as O(D^2).  Gradients of the mean
negative log-likelihood over N examples (delta = sigmoid(a) - x, (N, D))::

    dloss/da = delta / N,   dW = tril(delta^T X, -1) / N,   db = sum_n delta_n / N

(the upper triangle of W never enters the model; its gradient is zero).
"""
from __future__ import annotations

import numpy as np

from ...backend import device_of, get_namespace
from ...functional import bernoulli_log_likelihood, sigmoid, softplus
from ...random import uniform
from ._base import AutoregressiveModel

__all__ = ["FVSBN", "fvsbn_logits_forward", "fvsbn_logits_backward"]


def fvsbn_logits_forward(X, W, b):
    """Logits a = X tril(W, -1)^T + b of p(x_d = 1 | x_<d).

    X: (N, D) in the model's order, W: (D, D), b: (D,).  Returns a (N, D) and a cache.
    """
    xp = get_namespace(X, W, b)
    W_strict = xp.tril(W, k=-1)  # (D, D): row d holds the weights on x_<d
    return X @ W_strict.T + b, {"X": X}


def fvsbn_logits_backward(da, cache):
    """dW = tril(da^T X, -1), db = sum_n da_n for an upstream da (N, D)."""
    xp = get_namespace(da)
    return xp.tril(da.T @ cache["X"], k=-1), xp.sum(da, axis=0)


class FVSBN(AutoregressiveModel):
    """Fully visible sigmoid belief network on binary data (Frey 1998).

    Parameters
    ----------
    n_features : int
        D, the number of binary variables.
    ordering : None or sequence of int
        The order o in which the chain rule takes the columns (a permutation
        of range(D)); None is the natural order.
    dtype : {"float32", "float64"}
        Parameter dtype (float32 by default, as for every gradient model).
    random_state : None, int or Generator
        Seeds the initialisation W ~ N(0, 0.01^2) (strict lower triangle), b = 0.

    Attributes
    ----------
    params : dict
        ``{"W": (D, D), "b": (D,)}`` in the model's order; only the strictly
        lower triangle of W is used.
    """

    _data_kind = "binary"

    def __init__(self, n_features, ordering=None, dtype="float32", random_state=None):
        self.n_features = n_features
        self.ordering = ordering
        self.dtype = dtype
        self.random_state = random_state
        rng = self._setup(n_features, ordering, dtype, random_state)
        D = int(n_features)
        W = np.tril(0.01 * rng.standard_normal((D, D)), k=-1)
        self.params = {"W": W.astype(dtype), "b": np.zeros(D, dtype=dtype)}

    def _log_conditionals_ordered(self, X_o):
        a, _ = fvsbn_logits_forward(X_o, self.params["W"], self.params["b"])
        return X_o * a - softplus(a)

    def _loss_and_grads_ordered(self, X_o):
        xp = get_namespace(X_o)
        N = X_o.shape[0]
        a, cache = fvsbn_logits_forward(X_o, self.params["W"], self.params["b"])
        ll, dll_da = bernoulli_log_likelihood(a, X_o)  # (N,), (N, D)
        loss = -xp.sum(ll) / float(N)
        dW, db = fvsbn_logits_backward(-dll_da / float(N), cache)
        return loss, {"W": dW, "b": db}

    def _sample_ordered(self, n, rng):
        """x_d = [u_d < sigmoid(b_d + W_d,<d x_<d)], u_d ~ U(0, 1), for d = 1..D."""
        W, b = self.params["W"], self.params["b"]
        xp = get_namespace(W)
        u = uniform(rng, (n, self.D), like=W)
        X = xp.zeros((n, self.D), dtype=W.dtype, device=device_of(W))
        for d in range(self.D):
            a_d = X @ W[d, :] + b[d]  # (n,): columns >= d are still 0
            X[:, d] = xp.astype(u[:, d] < sigmoid(a_d), W.dtype)
        return X
