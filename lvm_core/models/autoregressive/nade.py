"""Neural autoregressive distribution estimator (NADE), Bernoulli and categorical.

References: Larochelle & Murray 2011 ("The neural autoregressive distribution
estimator", AISTATS; eqs. 5-7 and Algorithm 1); Uria, Cote, Gregor, Murray &
Larochelle 2016 (JMLR review, categorical conditionals); lecture notes, seed
001 (the categorical generalisation for K-valued data such as grey levels).

One hidden layer per conditional, with input weights tied across the
conditionals, so that the pre-activations are a running sum.  In the
model's order d = 1..D (see :mod:`._base`), with H hidden units::

    a_1 = c,     a_{d+1} = a_d + x_d W_d          (binary x_d in {0, 1}; W (D, H))
                 a_{d+1} = a_d + W_{d, x_d}        (categorical x_d in {0..K-1}; W (D, K, H))
    h_d = sigmoid(a_d)                             (H,)
    Bernoulli:   p(x_d = 1 | x_<d) = sigmoid(b_d + V_d . h_d)          V (D, H), b (D,)
    categorical: p(x_d = k | x_<d) = softmax_k(b_d + h_d V_d)_k        V (D, H, K), b (D, K)

Computing a_d from scratch for every d costs O(D^2 H) per example; the
running sum costs O(D H).  Backward (Algorithm 1 of Larochelle & Murray
2011), with g_d = dloss/dlogits_d from the output likelihood::

    dV_d = h_d^T g_d,   db_d = g_d,   dh_d = g_d V_d^T
    da_d = dh_d * h_d * (1 - h_d)
    s_d = sum_{k > d} da_k            (running, from d = D down to 1)
    dW_d = x_d s_d  (binary)   or   dW_{d, k} = [x_d = k] s_d  (categorical)
    dc = s_0 = sum_d da_d

(summed over the N examples of the batch; the last input weights W_D feed
no conditional and get zero gradient).  Layout: the per-dimension hidden
states are kept as one array Hs (D, N, H), so that the output layers and
their gradients are D batched matrix products.
"""
from __future__ import annotations

import math

import numpy as np

from ...backend import device_of, get_namespace
from ...functional import (bernoulli_log_likelihood, categorical_log_likelihood, log_softmax,
                           softplus, tanh_forward)
from ...random import categorical, uniform
from ...validation import check_positive_int
from ._base import AutoregressiveModel

__all__ = [
    "NADE",
    "nade_hidden_forward",
    "nade_hidden_backward",
    "nade_preactivation_forward",
    "nade_preactivation_backward",
    "per_dimension_linear_forward",
    "per_dimension_linear_backward",
]


# ----------------------------------------------------------------------------
# the running pre-activation and its backward (shared with RNADE)
# ----------------------------------------------------------------------------
def _sigmoid(a):
    """sigmoid(a) = (1 + tanh(a / 2)) / 2: one tanh pass, finite for any a (about 9x
    faster on NumPy than the exp/where form for the (D, N, H) hidden states)."""
    t, _ = tanh_forward(0.5 * a)
    t *= 0.5  # t is a fresh array: in place saves two (D, N, H) temporaries
    t += 0.5
    return t


def nade_preactivation_forward(X, W, c):
    """The running pre-activations a_d of every conditional, stacked: A (D, N, H).

    a_1 = c, a_{d+1} = a_d + x_d W_d (X float (N, D), W (D, H)), or
    a_{d+1} = a_d + W_{d, x_d} (X int (N, D), W (D, K, H)).
    Cost O(N D H): one (N, H) addition per dimension.  Returns A and a cache.
    """
    xp = get_namespace(X, W, c)
    N, D = X.shape
    categorical_input = W.ndim == 3
    a = xp.zeros((N, c.shape[0]), dtype=c.dtype, device=device_of(c)) + c  # (N, H)
    pre = [a]
    for d in range(D - 1):  # x_D feeds no conditional
        if categorical_input:
            a = a + xp.take(W[d, ...], X[:, d], axis=0)  # (N, H): row x_nd of W_d
        else:
            a = a + X[:, d:d + 1] * W[d, ...]  # (N, H)
        pre.append(a)
    return xp.stack(pre, axis=0), {"X": X, "K": W.shape[1] if categorical_input else None}


def nade_preactivation_backward(dA, cache):
    """dW, dc of the running pre-activation for an upstream dA (D, N, H).

    s_d = sum_{k>d} dA_k accumulated from d = D down to 1; dW_d = x_d^T s_d
    (binary) or onehot(x_d)^T s_d (categorical); dc = sum_n sum_d dA_d.
    """
    xp = get_namespace(dA)
    X, K = cache["X"], cache["K"]
    N, D = X.shape
    s = xp.zeros(tuple(dA.shape[1:]), dtype=dA.dtype, device=device_of(dA))  # (N, H)
    if K is not None:
        classes = xp.arange(K, device=device_of(X))
    dW = [None] * D
    for d in range(D - 1, -1, -1):
        if K is None:
            dW[d] = X[:, d] @ s  # (H,)
        else:
            onehot = xp.astype(X[:, d:d + 1] == classes, dA.dtype)  # (N, K)
            dW[d] = onehot.T @ s  # (K, H)
        s = s + dA[d, ...]
    return xp.stack(dW, axis=0), xp.sum(s, axis=0)


def nade_hidden_forward(X, W, c):
    """Hidden states h_d = sigmoid(a_d) with the running pre-activation a_d.

    See :func:`nade_preactivation_forward`.  Returns Hs (D, N, H) (Hs[d] = h_d
    for every example) and a cache.
    """
    A, cache = nade_preactivation_forward(X, W, c)
    Hs = _sigmoid(A)
    return Hs, {**cache, "Hs": Hs}


def nade_hidden_backward(dHs, cache):
    """Gradients dW, dc for an upstream dHs (D, N, H): da_d = dHs_d h_d (1 - h_d), then
    :func:`nade_preactivation_backward`."""
    Hs = cache["Hs"]
    return nade_preactivation_backward(dHs * Hs * (1.0 - Hs), cache)


def per_dimension_linear_forward(Hs, V, b):
    """One linear output layer per dimension: out_d = h_d V_d + b_d.

    Hs (D, N, H), V (D, H, K), b (D, K) -> out (D, N, K) (D batched matmuls).
    """
    return Hs @ V + b[:, None, :], {"Hs": Hs, "V": V}


def per_dimension_linear_backward(dout, cache):
    """dHs = dout V^T, dV = Hs^T dout, db = sum_n dout, for dout (D, N, K)."""
    xp = get_namespace(dout)
    Hs, V = cache["Hs"], cache["V"]
    V_T = xp.permute_dims(V, (0, 2, 1))  # (D, K, H)
    dHs = dout * V_T if V.shape[2] == 1 else dout @ V_T  # (D, N, H)
    dV = xp.permute_dims(Hs, (0, 2, 1)) @ dout  # (D, H, K)
    return dHs, dV, xp.sum(dout, axis=1)


# ----------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------
class NADE(AutoregressiveModel):
    """NADE with Bernoulli (binary data) or categorical (K-valued data) conditionals.

    Parameters
    ----------
    n_features : int
        D, the number of variables.
    n_hidden : int
        H, hidden units shared by all conditionals.
    n_categories : None or int
        None: binary data and Bernoulli conditionals.  K >= 2: data with
        values 0..K-1 and softmax conditionals (e.g. K grey levels).
    ordering : None or sequence of int
        The order of the chain rule (a permutation of range(D)); None is natural.
    dtype : {"float32", "float64"}
    random_state : None, int or Generator
        Seeds the initialisation: W ~ N(0, 1/D), V ~ N(0, 1/H) entrywise, c = b = 0.

    Attributes
    ----------
    params : dict
        Bernoulli: ``W`` (D, H), ``c`` (H,), ``V`` (D, H), ``b`` (D,);
        categorical: ``W`` (D, K, H), ``c`` (H,), ``V`` (D, H, K), ``b`` (D, K);
        all in the model's order.
    """

    def __init__(self, n_features, n_hidden=50, n_categories=None, ordering=None,
                 dtype="float32", random_state=None):
        self.n_features = n_features
        self.n_hidden = n_hidden
        self.n_categories = n_categories
        self.ordering = ordering
        self.dtype = dtype
        self.random_state = random_state
        rng = self._setup(n_features, ordering, dtype, random_state)
        H = check_positive_int(n_hidden, "n_hidden")
        D = int(n_features)
        if n_categories is not None:
            K = check_positive_int(n_categories, "n_categories", minimum=2)
            W = rng.standard_normal((D, K, H)) / math.sqrt(D)
            V = rng.standard_normal((D, H, K)) / math.sqrt(H)
            b = np.zeros((D, K))
        else:
            W = rng.standard_normal((D, H)) / math.sqrt(D)
            V = rng.standard_normal((D, H)) / math.sqrt(H)
            b = np.zeros(D)
        self.params = {"W": W.astype(dtype), "c": np.zeros(H, dtype=dtype),
                       "V": V.astype(dtype), "b": b.astype(dtype)}

    _decayed = ("W", "V")

    @property
    def _data_kind(self):
        return "binary" if self.n_categories is None else "categorical"

    def _logits(self, X_o):
        """Output logits (N, D) (Bernoulli) or (N, D, K) (categorical), and the caches."""
        xp = get_namespace(X_o)
        p = self.params
        Hs, hidden_cache = nade_hidden_forward(X_o, p["W"], p["c"])
        if self.n_categories is None:
            out, out_cache = per_dimension_linear_forward(Hs, p["V"][:, :, None], p["b"][:, None])
            logits = out[:, :, 0].T  # (N, D)
        else:
            out, out_cache = per_dimension_linear_forward(Hs, p["V"], p["b"])
            logits = xp.permute_dims(out, (1, 0, 2))  # (N, D, K)
        return logits, hidden_cache, out_cache

    def _log_conditionals_ordered(self, X_o):
        logits, _, _ = self._logits(X_o)
        if self.n_categories is None:
            return X_o * logits - softplus(logits)
        ll, _ = categorical_log_likelihood(logits, X_o)  # (N, D)
        return ll

    def _loss_and_grads_ordered(self, X_o):
        xp = get_namespace(X_o)
        N = X_o.shape[0]
        logits, hidden_cache, out_cache = self._logits(X_o)
        if self.n_categories is None:
            ll, dll = bernoulli_log_likelihood(logits, X_o)  # (N,), (N, D)
            dout = (-dll / float(N)).T[:, :, None]  # (D, N, 1)
        else:
            ll, dll = categorical_log_likelihood(logits, X_o)  # (N, D), (N, D, K)
            dout = xp.permute_dims(-dll / float(N), (1, 0, 2))  # (D, N, K)
        loss = -xp.sum(ll) / float(N)
        dHs, dV, db = per_dimension_linear_backward(dout, out_cache)
        dW, dc = nade_hidden_backward(dHs, hidden_cache)
        if self.n_categories is None:
            dV, db = dV[:, :, 0], db[:, 0]
        return loss, {"W": dW, "c": dc, "V": dV, "b": db}

    def _sample_ordered(self, n, rng):
        """Ancestral sampling with the running pre-activation: O(n D H)."""
        p = self.params
        W, c, V, b = p["W"], p["c"], p["V"], p["b"]
        xp = get_namespace(W)
        a = xp.zeros((n, c.shape[0]), dtype=c.dtype, device=device_of(c)) + c
        columns = []
        if self.n_categories is None:
            u = uniform(rng, (n, self.D), like=W)
        for d in range(self.D):
            h = _sigmoid(a)  # (n, H)
            if self.n_categories is None:
                x_d = xp.astype(u[:, d] < _sigmoid(h @ V[d, ...] + b[d, ...]), W.dtype)  # (n,)
                a = a + x_d[:, None] * W[d, ...]
            else:
                x_d = categorical(rng, log_softmax(h @ V[d, ...] + b[d, ...]), axis=-1)  # (n,)
                x_d = xp.astype(x_d, xp.int64)
                a = a + xp.take(W[d, ...], x_d, axis=0)
            columns.append(x_d)
        return xp.stack(columns, axis=1)
