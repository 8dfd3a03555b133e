"""Real-valued NADE with mixture-of-Gaussian conditionals (RNADE-MoG).

References: Uria, Murray & Larochelle 2013 ("RNADE: the real-valued neural
autoregressive density-estimator", NIPS; eqs. 2-6); Larochelle & Murray 2011
(the tied running pre-activation); Bishop PRML sec. 5.6 (mixture density
networks, whose output gradients these are); lecture notes, seed 001.

In the model's order d = 1..D, with H hidden units and K components::

    a_1 = c,   a_{d+1} = a_d + x_d W_d,   h_d = sigmoid(rho_d a_d)    W (D, H), c (H,), rho (D,)
    alpha_d = softmax(h_d V^alpha_d + b^alpha_d)                       (K,) mixing weights
    mu_d = h_d V^mu_d + b^mu_d,   log sigma_d = h_d V^sigma_d + b^sigma_d   (K,)
    p(x_d | x_<d) = sum_k alpha_dk N(x_d; mu_dk, sigma_dk^2)

(V^* (D, H, K), b^* (D, K); rho_d is Uria et al.'s learned rescaling of the
pre-activation, initialised to 1, which keeps h_d from saturating as a_d
accumulates more inputs.)  With the log component
terms l_dk = log alpha_dk - 1/2 z_dk^2 - log sigma_dk - 1/2 log 2 pi,
z_dk = (x_d - mu_dk) / sigma_dk, and the responsibilities r_dk =
softmax_k(l_dk), the gradients of log p(x_d | x_<d) are (mixture density
network, Bishop 1994)::

    d/d logits^alpha_dk = r_dk - alpha_dk
    d/d mu_dk = r_dk z_dk / sigma_dk
    d/d log sigma_dk = r_dk (z_dk^2 - 1)

and flow back through h_d = sigmoid(rho_d a_d)::

    g_d = dh_d * h_d (1 - h_d),   da_d = rho_d g_d,   drho_d = sum_{n, h} g_d a_d

and into W, c exactly as in NADE (see :mod:`.nade`: s_d = sum_{k>d} da_k,
dW_d = x_d s_d, dc = sum_d da_d).
"""
from __future__ import annotations

import math

import numpy as np

from ...backend import device_of, get_namespace
from ...functional import log_softmax, logsumexp, softmax
from ...random import categorical, normal
from ...validation import check_positive_int
from ._base import AutoregressiveModel
from .nade import (_sigmoid, nade_preactivation_backward, nade_preactivation_forward, per_dimension_linear_backward,
                   per_dimension_linear_forward)

__all__ = ["RNADE", "mog_log_likelihood"]

LOG_2PI = math.log(2.0 * math.pi)
_HEADS = ("alpha", "mu", "log_sigma")


def mog_log_likelihood(x, logits_alpha, mu, log_sigma):
    """Log-density of a one-dimensional Gaussian mixture, and its gradients.

    ll = logsumexp_k [log softmax(logits_alpha)_k - 1/2 z_k^2 - log sigma_k - 1/2 log 2 pi],
    z_k = (x - mu_k) / sigma_k.

    Shapes: x (...,), the others (..., K).  Returns ll (...,) and the gradients of
    each ll entry: dlogits_alpha = r - alpha, dmu = r z / sigma,
    dlog_sigma = r (z^2 - 1) (each (..., K)) and dx = -sum_k r z / sigma (...,),
    r = softmax_k of the log component terms (the responsibilities).
    """
    xp = get_namespace(x, logits_alpha, mu, log_sigma)
    inv_sigma = xp.exp(-log_sigma)
    z = (x[..., None] - mu) * inv_sigma  # (..., K)
    log_terms = log_softmax(logits_alpha, axis=-1) - 0.5 * z * z - log_sigma - 0.5 * LOG_2PI
    ll = logsumexp(log_terms, axis=-1)
    r = softmax(log_terms, axis=-1)
    r_z_inv_sigma = r * z * inv_sigma
    dlogits_alpha = r - softmax(logits_alpha, axis=-1)
    return ll, dlogits_alpha, r_z_inv_sigma, r * (z * z - 1.0), -xp.sum(r_z_inv_sigma, axis=-1)


class RNADE(AutoregressiveModel):
    """RNADE with K-component Gaussian-mixture conditionals on real-valued data.

    Parameters
    ----------
    n_features : int
        D, the number of real variables (standardise them first).
    n_hidden : int
        H, hidden units shared by all conditionals.
    n_components : int
        K, Gaussian components per conditional.
    ordering : None or sequence of int
        The order of the chain rule; None is natural.
    dtype : {"float32", "float64"}
    random_state : None, int or Generator
        Seeds the initialisation (W ~ N(0, 1/D), V^* ~ N(0, 0.01/H),
        b^mu spread over [-2, 2], b^alpha = b^sigma = 0).

    Attributes
    ----------
    params : dict
        ``W`` (D, H), ``c`` (H,), ``rho`` (D,), ``V_alpha``, ``V_mu``, ``V_log_sigma``
        (D, H, K), ``b_alpha``, ``b_mu``, ``b_log_sigma`` (D, K), in the
        model's order.
    """

    _data_kind = "real"
    _decayed = ("W", "V_alpha", "V_mu", "V_log_sigma")

    def __init__(self, n_features, n_hidden=50, n_components=10, ordering=None,
                 dtype="float32", random_state=None):
        self.n_features = n_features
        self.n_hidden = n_hidden
        self.n_components = n_components
        self.ordering = ordering
        self.dtype = dtype
        self.random_state = random_state
        rng = self._setup(n_features, ordering, dtype, random_state)
        H = check_positive_int(n_hidden, "n_hidden")
        K = check_positive_int(n_components, "n_components")
        D = int(n_features)
        params = {"W": rng.standard_normal((D, H)) / math.sqrt(D), "c": np.zeros(H),
                  "rho": np.ones(D)}
        for head in _HEADS:
            params[f"V_{head}"] = 0.1 * rng.standard_normal((D, H, K)) / math.sqrt(H)
            params[f"b_{head}"] = np.zeros((D, K))
        params["b_mu"] = params["b_mu"] + np.linspace(-2.0, 2.0, K)[None, :]
        self.params = {k: v.astype(dtype) for k, v in params.items()}

    def _heads(self, X_o):
        """The mixture parameters (D, N, K) per head, and the caches."""
        p = self.params
        A, pre_cache = nade_preactivation_forward(X_o, p["W"], p["c"])  # (D, N, H)
        Hs = _sigmoid(p["rho"][:, None, None] * A)
        hidden_cache = {"A": A, "Hs": Hs, "pre": pre_cache}
        outs, caches = {}, {}
        for head in _HEADS:
            outs[head], caches[head] = per_dimension_linear_forward(Hs, p[f"V_{head}"],
                                                                    p[f"b_{head}"])
        return outs, hidden_cache, caches

    def _log_conditionals_ordered(self, X_o):
        outs, _, _ = self._heads(X_o)
        ll, *_ = mog_log_likelihood(X_o.T, outs["alpha"], outs["mu"], outs["log_sigma"])
        return ll.T  # (N, D)

    def _loss_and_grads_ordered(self, X_o):
        xp = get_namespace(X_o)
        N = X_o.shape[0]
        outs, hidden_cache, caches = self._heads(X_o)
        ll, d_alpha, d_mu, d_log_sigma, _ = mog_log_likelihood(
            X_o.T, outs["alpha"], outs["mu"], outs["log_sigma"])  # ll (D, N)
        loss = -xp.sum(ll) / float(N)
        scale = -1.0 / float(N)
        grads, dHs = {}, None
        for head, dout in zip(_HEADS, (d_alpha, d_mu, d_log_sigma)):
            dH_head, grads[f"V_{head}"], grads[f"b_{head}"] = per_dimension_linear_backward(
                scale * dout, caches[head])
            dHs = dH_head if dHs is None else dHs + dH_head
        A, Hs = hidden_cache["A"], hidden_cache["Hs"]
        g = dHs * Hs * (1.0 - Hs)  # d loss / d (rho_d a_d), (D, N, H)
        grads["rho"] = xp.sum(xp.reshape(g * A, (A.shape[0], -1)), axis=1)
        dA = self.params["rho"][:, None, None] * g
        grads["W"], grads["c"] = nade_preactivation_backward(dA, hidden_cache["pre"])
        return loss, {k: grads[k] for k in self.params}

    def _sample_ordered(self, n, rng):
        """k ~ Cat(alpha_d), x_d = mu_dk + sigma_dk eps, eps ~ N(0, 1), for d = 1..D."""
        p = self.params
        W, c = p["W"], p["c"]
        xp = get_namespace(W)
        K = int(self.n_components)
        classes = xp.arange(K, device=device_of(W))
        a = xp.zeros((n, c.shape[0]), dtype=c.dtype, device=device_of(c)) + c
        eps = normal(rng, (n, self.D), like=W)
        columns = []
        for d in range(self.D):
            h = _sigmoid(p["rho"][d] * a)
            logits_alpha = h @ p["V_alpha"][d, ...] + p["b_alpha"][d, ...]  # (n, K)
            mu = h @ p["V_mu"][d, ...] + p["b_mu"][d, ...]
            log_sigma = h @ p["V_log_sigma"][d, ...] + p["b_log_sigma"][d, ...]
            k = categorical(rng, log_softmax(logits_alpha, axis=-1), axis=-1)  # (n,)
            chosen = xp.astype(xp.astype(k, xp.int64)[:, None] == classes, W.dtype)  # (n, K)
            x_d = xp.sum(chosen * (mu + xp.exp(log_sigma) * eps[:, d:d + 1]), axis=1)
            a = a + x_d[:, None] * W[d, ...]
            columns.append(x_d)
        return xp.stack(columns, axis=1)

