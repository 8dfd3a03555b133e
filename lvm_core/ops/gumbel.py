"""The Gumbel-softmax (concrete) relaxation of a categorical sample and its
straight-through variant (Jang, Gu & Poole 2017, "Categorical reparameterization
with Gumbel-softmax"; Maddison, Mnih & Teh 2017, "The concrete distribution";
Bengio, Leonard & Courville 2013 for the straight-through estimator).

Gumbel-max trick: with g_k = -log(-log u_k), u_k ~ U(0, 1) i.i.d.,
argmax_k (logits_k + g_k) ~ Categorical(softmax(logits)).  Relaxation::

    y = softmax((logits + g) / tau)                              (N, K), rows sum to 1
    dlogits = (1 / tau) y * (dy - sum_k dy_k y_k)                 (softmax Jacobian / tau)

Straight-through: the forward pass uses the one-hot y_hard = onehot(argmax_k y_k)
(a discrete sample from the categorical), the backward pass treats it as y:
dlogits = (1 / tau) y * (dy - sum_k dy_k y_k) with dy = d loss/d y_hard.

Annealing (Jang et al. 2017, sec. 4): tau_t = max(tau_min, tau_0 exp(-r t)).

The arrays are small ((N, K) with K components), so every backend runs the
same array-API code; the Gumbel noise is drawn with
:func:`lvm_core.random.gumbel`, which keeps u inside (0, 1) so that g is finite.
"""
from __future__ import annotations

import math
from typing import NamedTuple

from ..backend import get_namespace
from ..functional.reductions import softmax
from ..random import gumbel

__all__ = ["GumbelSoftmaxCache", "sample_gumbel", "gumbel_softmax", "gumbel_softmax_backward",
           "one_hot_argmax", "annealed_temperature"]


class GumbelSoftmaxCache(NamedTuple):
    """What :func:`gumbel_softmax_backward` needs: the relaxed sample and tau."""

    y_soft: object  # (..., K)
    temperature: float


def _check_temperature(temperature, name="temperature"):
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not (math.isfinite(temperature) and temperature > 0):
        raise ValueError(
            f"{name} must be a positive finite number; got {temperature!r}. "
            "Pass e.g. 1.0 (anneal it towards 0.5)."
        )
    return float(temperature)


def sample_gumbel(rng, shape, like):
    """g = -log(-log u), u ~ U(0, 1) kept off 0 and 1: finite standard Gumbel draws."""
    return gumbel(rng, tuple(shape), like=like)


def one_hot_argmax(y):
    """onehot(argmax_k y_k) over the last axis, in y's dtype (ties: the first index)."""
    xp = get_namespace(y)
    K = y.shape[-1]
    idx = xp.argmax(y, axis=-1)
    ks = xp.arange(K, device=getattr(y, "device", None))
    return xp.astype(xp.expand_dims(idx, axis=-1) == ks, y.dtype)


def gumbel_softmax(logits, g, temperature, hard=False):
    """y = softmax((logits + g) / tau); with ``hard=True`` the straight-through sample.

    logits (..., K) and g broadcasting to the same shape.  Returns (y, cache):
    y is the relaxed sample (hard=False) or onehot(argmax y_soft) (hard=True).
    """
    tau = _check_temperature(temperature)
    if logits.dtype != g.dtype:
        raise TypeError(
            f"logits ({logits.dtype}) and g ({g.dtype}) must share a dtype; draw g with "
            "sample_gumbel(rng, shape, like=logits)."
        )
    y_soft = softmax((logits + g) / tau, axis=-1)
    y = one_hot_argmax(y_soft) if hard else y_soft
    return y, GumbelSoftmaxCache(y_soft=y_soft, temperature=tau)


def gumbel_softmax_backward(dy, cache):
    """dlogits = (1/tau) y_soft * (dy - sum_k dy_k y_soft_k) (the same for straight-through)."""
    xp = get_namespace(dy, cache.y_soft)
    y = cache.y_soft
    inner = xp.sum(dy * y, axis=-1, keepdims=True)
    return y * (dy - inner) / cache.temperature


def annealed_temperature(step, tau0=1.0, tau_min=0.5, rate=3e-5):
    """tau_t = max(tau_min, tau0 exp(-rate t)) (Jang et al. 2017)."""
    tau0 = _check_temperature(tau0, "tau0")
    tau_min = _check_temperature(tau_min, "tau_min")
    if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate >= 0:
        raise ValueError(f"rate must be a non-negative number; got {rate!r}.")
    return max(tau_min, tau0 * math.exp(-float(rate) * float(step)))
