"""PyTorch autograd as an oracle for the log-likelihoods, KL terms, sampling
and reductions of lvm_core.functional (float64; max-norm relative error < 1e-6).
torch is a test-time dependency only (imported through conftest.require).
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lvm_core.functional as F
from lvm_core.gradcheck import relative_error

from .conftest import require

pytestmark = pytest.mark.oracle
RTOL = 1e-6
seeds = st.integers(min_value=0, max_value=2**32 - 1)
dims = st.integers(min_value=1, max_value=5)


@pytest.fixture(scope="module")
def torch():
    return require("torch")


def _t(torch, a):
    return torch.tensor(np.asarray(a, dtype=np.float64), requires_grad=True)


def _close(ours, theirs):
    theirs = theirs.detach().numpy() if hasattr(theirs, "detach") else np.asarray(theirs)
    err = relative_error(ours, theirs)
    assert err < RTOL, f"relative error {err:.2e}"


@settings(max_examples=10)
@given(N=dims, D=dims, seed=seeds)
def test_bernoulli_matches_torch(torch, N, D, seed):
    rng = np.random.default_rng(seed)
    logits, x = 3 * rng.standard_normal((N, D)), rng.uniform(size=(N, D))
    tl = _t(torch, logits)
    ll_t = -torch.nn.functional.binary_cross_entropy_with_logits(
        tl, torch.tensor(x), reduction="none").sum(-1)
    ll_t.sum().backward()
    ll, dlogits = F.bernoulli_log_likelihood(logits, x)
    _close(ll, ll_t)
    _close(dlogits, tl.grad)


@settings(max_examples=10)
@given(N=dims, D=dims, seed=seeds, scale=st.sampled_from([0.3, 1.0, 4.0]))
def test_continuous_bernoulli_matches_torch(torch, N, D, seed, scale):
    """Moderate logits only: torch switches to a crude Taylor form for probs in
    (0.499, 0.501) and clamps probs away from 0 and 1 (its value at l = 33 is
    off by 1e-5, ours agrees with 40-digit arithmetic); those regions are
    covered by test_functional_meaning.py."""
    rng = np.random.default_rng(seed)
    logits = np.clip(scale * rng.standard_normal((N, D)), -8.0, 8.0)
    logits = np.where(np.abs(logits) < 0.05, 0.05 + np.abs(logits), logits)
    x = rng.uniform(size=(N, D))
    tl = _t(torch, logits)
    dist = torch.distributions.ContinuousBernoulli(logits=tl)
    ll_t = dist.log_prob(torch.tensor(x)).sum(-1)
    ll_t.sum().backward()
    ll, dlogits = F.continuous_bernoulli_log_likelihood(logits, x)
    _close(ll, ll_t)
    _close(dlogits, tl.grad)
    _close(F.continuous_bernoulli_mean(logits), dist.mean)


@settings(max_examples=10)
@given(N=dims, D=dims, seed=seeds, lv_kind=st.sampled_from([(True, True), (False, True), (False, False)]))
def test_gaussian_matches_torch(torch, N, D, seed, lv_kind):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D))
    mu = rng.standard_normal((N, D) if lv_kind[0] else (D,))
    log_var = rng.standard_normal((N, D) if lv_kind[1] else (D,))
    tx, tm, tv = _t(torch, x), _t(torch, mu), _t(torch, log_var)
    ll_t = torch.distributions.Normal(tm, torch.exp(0.5 * tv)).log_prob(tx).sum(-1)
    ll_t.sum().backward()
    ll, dx, dmu, dlog_var = F.gaussian_log_likelihood(x, mu, log_var)
    for ours, theirs in ((ll, ll_t), (dx, tx.grad), (dmu, tm.grad), (dlog_var, tv.grad)):
        _close(ours, theirs)


@settings(max_examples=10)
@given(N=dims, K=st.integers(min_value=2, max_value=6), seed=seeds)
def test_categorical_matches_torch(torch, N, K, seed):
    rng = np.random.default_rng(seed)
    logits, labels = 2 * rng.standard_normal((N, K)), rng.integers(0, K, size=N)
    tl = _t(torch, logits)
    ll_t = -torch.nn.functional.cross_entropy(tl, torch.tensor(labels), reduction="none")
    ll_t.sum().backward()
    ll, dlogits = F.categorical_log_likelihood(logits, labels)
    _close(ll, ll_t)
    _close(dlogits, tl.grad)


@settings(max_examples=10)
@given(N=dims, L=dims, seed=seeds, prior_var=st.sampled_from([1.0, 0.5, 3.0]))
def test_kl_normal_std_normal_matches_torch(torch, N, L, seed, prior_var):
    rng = np.random.default_rng(seed)
    mu, log_var = rng.standard_normal((N, L)), rng.standard_normal((N, L))
    tm, tv = _t(torch, mu), _t(torch, log_var)
    q = torch.distributions.Normal(tm, torch.exp(0.5 * tv))
    p = torch.distributions.Normal(torch.zeros(L, dtype=torch.float64),
                                   math.sqrt(prior_var) * torch.ones(L, dtype=torch.float64))
    kl_t = torch.distributions.kl_divergence(q, p).sum(-1)
    kl_t.sum().backward()
    kl, dmu, dlog_var = F.kl_normal_std_normal(mu, log_var, prior_var=prior_var)
    for ours, theirs in ((kl, kl_t), (dmu, tm.grad), (dlog_var, tv.grad)):
        _close(ours, theirs)


@settings(max_examples=10)
@given(N=dims, L=dims, seed=seeds, p_full=st.booleans())
def test_kl_normal_normal_matches_torch(torch, N, L, seed, p_full):
    rng = np.random.default_rng(seed)
    shape_p = (N, L) if p_full else (L,)
    arrays = [rng.standard_normal((N, L)), rng.standard_normal((N, L)),
              rng.standard_normal(shape_p), rng.standard_normal(shape_p)]
    t = [_t(torch, a) for a in arrays]
    q = torch.distributions.Normal(t[0], torch.exp(0.5 * t[1]))
    p = torch.distributions.Normal(t[2], torch.exp(0.5 * t[3]))
    kl_t = torch.distributions.kl_divergence(q, p).sum(-1)
    kl_t.sum().backward()
    ours = F.kl_normal_normal(*arrays)
    _close(ours[0], kl_t)
    for g, ta in zip(ours[1:], t):
        _close(g, ta.grad)


@settings(max_examples=10)
@given(N=dims, K=dims, R=st.sampled_from([1, 3]), seed=seeds)
def test_sampling_and_logsumexp_match_torch(torch, N, K, R, seed):
    rng = np.random.default_rng(seed)
    mu, log_var, eps = rng.standard_normal((N, K)), rng.standard_normal((N, K)), \
        rng.standard_normal((R, N, K))
    w = rng.standard_normal((R, N, K))
    tm, tv = _t(torch, mu), _t(torch, log_var)
    (torch.tensor(w) * (tm + torch.exp(0.5 * tv) * torch.tensor(eps))).sum().backward()
    z, cache = F.reparameterize_forward(mu, log_var, eps)
    dmu, dlog_var = F.reparameterize_backward(w, cache)
    _close(dmu, tm.grad)
    _close(dlog_var, tv.grad)
    # Gumbel-softmax (g given) and logsumexp
    tl = _t(torch, mu)
    y_t = torch.softmax((tl + torch.tensor(eps)) / 0.7, dim=-1)
    (torch.tensor(w) * y_t).sum().backward()
    y, cache = F.gumbel_softmax_forward(mu, eps, 0.7)
    _close(y, y_t)
    _close(F.gumbel_softmax_backward(w, cache), tl.grad)
    tx = _t(torch, eps)
    lse_t = torch.logsumexp(tx, dim=-1)
    (torch.tensor(w[..., 0]) * lse_t).sum().backward()
    lse, cache = F.logsumexp_forward(eps)
    _close(lse, lse_t)
    _close(F.logsumexp_backward(w[..., 0], cache), tx.grad)
