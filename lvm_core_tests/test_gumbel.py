"""Gumbel-softmax and straight-through (lvm_core.ops.gumbel): the backward against
float64 central differences and PyTorch autograd, and what the samples mean
(the Gumbel-max trick, the zero-temperature limit, finite noise).

References: Jang, Gu & Poole 2017; Maddison, Mnih & Teh 2017; Bengio et al. 2013.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core.backend import to_numpy
from lvm_core.gradcheck import check_grads_resolvable, relative_error
from lvm_core.ops.gumbel import (annealed_temperature, gumbel_softmax, gumbel_softmax_backward,
                                 one_hot_argmax, sample_gumbel)

from .conftest import require

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=25)
@given(N=st.integers(1, 4), K=st.integers(1, 6), R=st.integers(1, 3),
       tau=st.floats(0.2, 3.0), seed=seeds)
def test_backward_matches_central_differences(N, K, R, tau, seed):
    """loss = sum w * y(logits), y = softmax((logits + g) / tau), g (R, N, K) broadcast
    against logits (N, K): the backward summed over R is d loss / d logits."""
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, K))
    g = sample_gumbel(rng, (R, N, K), like=logits)
    w = rng.standard_normal((R, N, K))

    def f(lg):
        y, _ = gumbel_softmax(lg, g, tau)
        return float(np.sum(w * y))

    y, cache = gumbel_softmax(logits, g, tau)
    grad = np.sum(gumbel_softmax_backward(w, cache), axis=0)
    if K == 1:  # softmax of one entry is constant 1: the gradient is exactly zero
        assert np.all(grad == 0.0)
        return
    # a saturated draw leaves gradients at the level of the differences' round-off:
    # the suite's check filters on the numeric gradient (a wrong zero still fails)
    check_grads_resolvable(lambda p: f(p["logits"]), {"logits": logits}, {"logits": grad},
                           f(logits), h=1e-5, rtol=1e-6)


@pytest.mark.oracle
@pytest.mark.parametrize("hard", [False, True])
def test_matches_torch_autograd(hard):
    torch = require("torch")
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((5, 4))
    g = sample_gumbel(rng, (5, 4), like=logits)
    w = rng.standard_normal((5, 4))
    tau = 0.7
    y, cache = gumbel_softmax(logits, g, tau, hard=hard)
    grad = gumbel_softmax_backward(w, cache)
    lt = torch.tensor(logits, requires_grad=True)
    y_soft = torch.softmax((lt + torch.tensor(g)) / tau, dim=-1)
    if hard:  # the straight-through estimator as usually written in torch
        idx = y_soft.argmax(-1, keepdim=True)
        y_hard = torch.zeros_like(y_soft).scatter_(-1, idx, 1.0)
        y_t = y_hard - y_soft.detach() + y_soft
    else:
        y_t = y_soft
    (y_t * torch.tensor(w)).sum().backward()
    np.testing.assert_allclose(y, y_t.detach().numpy(), rtol=1e-12, atol=1e-15)
    assert relative_error(grad, lt.grad.numpy()) < 1e-10


def test_gumbel_max_trick_gives_the_categorical():
    """argmax_k (logits_k + g_k) ~ Categorical(softmax(logits)); so does the hard sample."""
    rng = np.random.default_rng(2)
    logits = np.array([1.0, -0.5, 0.3, -2.0])
    p = np.exp(logits) / np.exp(logits).sum()
    M = 40000
    g = sample_gumbel(rng, (M, 4), like=logits)
    y, _ = gumbel_softmax(np.broadcast_to(logits, (M, 4)), g, 0.5, hard=True)
    assert set(np.unique(y)) <= {0.0, 1.0} and np.all(y.sum(axis=1) == 1.0)
    freq = y.mean(axis=0)
    assert np.all(np.abs(freq - p) < 5 * np.sqrt(p * (1 - p) / M)), (freq, p)


def test_relaxed_sample_is_on_the_simplex_and_hardens_as_tau_falls():
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((200, 5))
    g = sample_gumbel(rng, (200, 5), like=logits)
    hard = one_hot_argmax(logits + g)
    gaps = []
    for tau in (5.0, 1.0, 0.1, 0.01):
        y, _ = gumbel_softmax(logits, g, tau)
        np.testing.assert_allclose(y.sum(axis=1), 1.0, rtol=1e-12)
        assert np.all(y >= 0)
        gaps.append(float(np.mean(np.abs(y - hard))))
    assert gaps == sorted(gaps, reverse=True) and gaps[-1] < 1e-3, gaps


def test_gumbel_noise_is_finite_with_the_standard_moments():
    rng = np.random.default_rng(4)
    g = sample_gumbel(rng, (200000,), like=np.zeros(1, np.float32))
    assert g.dtype == np.float32 and np.all(np.isfinite(g))
    assert float(np.mean(g)) == pytest.approx(0.5772156649, abs=0.01)  # Euler-Mascheroni
    assert float(np.var(g)) == pytest.approx(math.pi ** 2 / 6, rel=0.02)


def test_annealing_schedule():
    assert annealed_temperature(0, 1.0, 0.5, 1e-3) == 1.0
    assert annealed_temperature(100, 1.0, 0.5, 1e-3) == pytest.approx(math.exp(-0.1))
    assert annealed_temperature(10 ** 6, 1.0, 0.5, 1e-3) == 0.5
    with pytest.raises(ValueError, match="tau_min"):
        annealed_temperature(0, 1.0, 0.0, 1e-3)


def test_runs_on_every_backend(backend):
    rng = np.random.default_rng(5)
    logits = backend.asarray(rng.standard_normal((3, 4)))
    g = sample_gumbel(rng, (2, 3, 4), like=logits)
    assert g.dtype == backend.dtype
    for hard in (False, True):
        y, cache = gumbel_softmax(logits, g, 0.5, hard=hard)
        assert y.shape == (2, 3, 4) and y.dtype == backend.dtype
        d = gumbel_softmax_backward(y, cache)
        assert d.shape == (2, 3, 4) and d.dtype == backend.dtype
    ref, _ = gumbel_softmax(to_numpy(logits).astype(np.float64),
                            to_numpy(g).astype(np.float64), 0.5)
    y, _ = gumbel_softmax(logits, g, 0.5)
    np.testing.assert_allclose(to_numpy(y), ref, rtol=backend.rtol * 100, atol=1e-6)


def test_errors_are_named():
    x = np.zeros((2, 3))
    with pytest.raises(ValueError, match="temperature"):
        gumbel_softmax(x, x, 0.0)
    with pytest.raises(TypeError, match="dtype"):
        gumbel_softmax(x, x.astype(np.float32), 1.0)
