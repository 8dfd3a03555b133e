"""Reparameterized sampling: Gaussian and Gumbel-softmax, forward and backward.

Gaussian reparameterization (Kingma & Welling 2014, sec. 2.4): with
eps ~ N(0, I) drawn by the caller (``lvm_core.random.normal(rng, shape, like=mu)``),

    z = mu + exp(log_var / 2) * eps,
    dmu = dz,    dlog_var = dz * eps * exp(log_var / 2) / 2.

A leading sample axis is supported (IWAE, Burda et al. 2016): mu, log_var
(N, L) with eps (R, N, L) give z (R, N, L) and gradients summed over R.

Gumbel-softmax / concrete relaxation (Jang et al. 2017; Maddison et al. 2017):
with g standard Gumbel draws (``lvm_core.random.gumbel``) and temperature tau,

    y = softmax((logits + g) / tau),
    dlogits = (1/tau) y * (dy - sum_k dy_k y_k).
"""
from __future__ import annotations

import math
from typing import NamedTuple

from ..backend import get_namespace
from ._common import broadcast_shape, check_float, check_same_dtype, sum_to_shape
from .reductions import softmax

__all__ = [
    "reparameterize_forward",
    "reparameterize_backward",
    "gumbel_softmax_forward",
    "gumbel_softmax_backward",
    "ReparameterizeCache",
    "GumbelSoftmaxCache",
]


class ReparameterizeCache(NamedTuple):
    """What :func:`reparameterize_backward` needs."""

    eps: object  # (R, N, L) or (N, L)
    sigma: object  # exp(log_var / 2), shape of log_var
    mu_shape: tuple
    log_var_shape: tuple


def reparameterize_forward(mu, log_var, eps):
    """z = mu + exp(log_var / 2) * eps.

    Shapes: mu (N, L), log_var (N, L), eps (N, L) or (R, N, L); z has eps's
    (broadcast) shape.  Returns ``(z, cache)``.
    """
    check_float(mu, "mu")
    check_float(log_var, "log_var")
    check_float(eps, "eps")
    check_same_dtype("mu", mu, "log_var", log_var)
    check_same_dtype("mu", mu, "eps", eps)
    broadcast_shape((mu, "mu"), (log_var, "log_var"), (eps, "eps"))
    xp = get_namespace(mu, log_var, eps)
    sigma = xp.exp(0.5 * log_var)
    z = mu + sigma * eps  # (R, N, L)
    return z, ReparameterizeCache(eps=eps, sigma=sigma, mu_shape=tuple(mu.shape),
                                  log_var_shape=tuple(log_var.shape))


def reparameterize_backward(dz, cache):
    """dmu = sum_R dz,  dlog_var = sum_R dz * eps * exp(log_var / 2) / 2."""
    dmu = sum_to_shape(dz, cache.mu_shape)
    dlog_var = sum_to_shape(0.5 * dz * cache.eps * cache.sigma, cache.log_var_shape)
    return dmu, dlog_var


class GumbelSoftmaxCache(NamedTuple):
    """What :func:`gumbel_softmax_backward` needs."""

    y: object  # relaxed sample, shape of logits + g
    temperature: float
    logits_shape: tuple


def gumbel_softmax_forward(logits, g, temperature):
    """y = softmax((logits + g) / temperature) over the last axis K.

    Shapes: logits (N, K), g (N, K) or (R, N, K) Gumbel noise; y has the
    broadcast shape.  ``temperature`` is a positive Python float.
    """
    check_float(logits, "logits")
    check_float(g, "g")
    check_same_dtype("logits", logits, "g", g)
    broadcast_shape((logits, "logits"), (g, "g"))
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) or not (
            math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"temperature must be a positive finite Python float; got {temperature!r}."
        )
    temperature = float(temperature)
    y = softmax((logits + g) / temperature, axis=-1)
    return y, GumbelSoftmaxCache(y=y, temperature=temperature,
                                 logits_shape=tuple(logits.shape))


def gumbel_softmax_backward(dy, cache):
    """dlogits = (1/tau) y * (dy - sum_k dy_k y_k), summed over broadcast axes."""
    xp = get_namespace(dy, cache.y)
    y = cache.y
    inner = xp.sum(dy * y, axis=-1, keepdims=True)
    dlogits = y * (dy - inner) / cache.temperature
    return sum_to_shape(dlogits, cache.logits_shape)
