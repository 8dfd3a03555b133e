"""Tests of meaning for lvm_core.functional: identities, hand-computed values
and Monte Carlo checks (a gradient check cannot see a forward pass that is
consistently wrong, e.g. exp(log_var) used where exp(log_var / 2) belongs).
"""
from __future__ import annotations

import functools
import math
import warnings

import numpy as np
import pytest

import lvm_core.functional as F
from lvm_core.random import categorical, gumbel, normal


# ------------------------------------------------------------------ reparameterization
def test_reparameterized_draws_have_mean_mu_and_variance_exp_log_var():
    mu = np.array([[0.5, -2.0, 3.0], [1.0, 0.0, -1.0]])
    log_var = np.array([[0.0, -1.5, 1.2], [2.0, -3.0, 0.3]])
    R = 200_000
    eps = normal(0, (R, *mu.shape))
    z, _ = F.reparameterize_forward(mu, log_var, eps)  # (R, N, L)
    var = np.exp(log_var)
    # standard errors: sqrt(var / R) for the mean, var sqrt(2 / R) for the variance
    np.testing.assert_allclose(z.mean(axis=0), mu, rtol=0, atol=5 * np.sqrt(var.max() / R))
    np.testing.assert_allclose(z.var(axis=0), var, rtol=5 * np.sqrt(2 / R))


def test_reparameterized_gradient_is_monte_carlo_gradient_of_expectation():
    """d/dlog_var E[z^2 / 2] = exp(log_var) / 2 and d/dmu E[z^2 / 2] = mu."""
    mu = np.array([[0.7, -1.1]])
    log_var = np.array([[0.4, -0.8]])
    R = 200_000
    eps = normal(1, (R, *mu.shape))
    z, cache = F.reparameterize_forward(mu, log_var, eps)
    dmu, dlog_var = F.reparameterize_backward(z / R, cache)  # loss = mean_R z^2 / 2
    np.testing.assert_allclose(dmu, mu, rtol=0, atol=0.02)
    np.testing.assert_allclose(dlog_var, np.exp(log_var) / 2, rtol=0.03)


# ------------------------------------------------------------------ KL
def test_kl_is_zero_between_equal_distributions():
    rng = np.random.default_rng(0)
    mu = rng.standard_normal((4, 3))
    log_var = rng.standard_normal((4, 3))
    kl, dmu_q, dlv_q, dmu_p, dlv_p = F.kl_normal_normal(mu, log_var, mu, log_var)
    np.testing.assert_allclose(kl, 0.0, atol=1e-14)
    for g in (dmu_q, dlv_q, dmu_p, dlv_p):  # a minimum: zero gradient
        np.testing.assert_allclose(g, 0.0, atol=1e-14)
    kl0, dmu, dlog_var = F.kl_normal_std_normal(np.zeros((2, 3)), np.zeros((2, 3)))
    np.testing.assert_allclose(kl0, 0.0, atol=0)
    kl_s, _, _ = F.kl_normal_std_normal(np.zeros((1, 2)), np.full((1, 2), math.log(2.5)),
                                        prior_var=2.5)
    np.testing.assert_allclose(kl_s, 0.0, atol=1e-15)


def test_kl_hand_values():
    # KL(N(1, 1) || N(0, 1)) = 1/2 per dimension; KL(N(0, e) || N(0, 1)) = (e - 2)/2
    kl, _, _ = F.kl_normal_std_normal(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0]]))
    np.testing.assert_allclose(kl, [0.5 + (math.e - 2) / 2], rtol=1e-15)


def test_kl_std_normal_is_kl_normal_normal_with_zero_mean_prior():
    rng = np.random.default_rng(1)
    mu = rng.standard_normal((3, 4))
    log_var = rng.standard_normal((3, 4))
    s2 = 0.3
    a = F.kl_normal_std_normal(mu, log_var, prior_var=s2)
    b = F.kl_normal_normal(mu, log_var, np.zeros(4), np.full(4, math.log(s2)))
    for x, y in zip(a, b[:3]):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("prior", ["std", "general"])
def test_kl_matches_monte_carlo(prior):
    """KL(q || p) = E_q[log q(z) - log p(z)], estimated with 200k draws."""
    rng = np.random.default_rng(2)
    mu_q = rng.standard_normal((2, 3))
    log_var_q = 0.5 * rng.standard_normal((2, 3))
    if prior == "std":
        mu_p, log_var_p = np.zeros(3), np.full(3, math.log(1.7))
        kl = F.kl_normal_std_normal(mu_q, log_var_q, prior_var=1.7)[0]
    else:
        mu_p, log_var_p = rng.standard_normal(3), 0.5 * rng.standard_normal(3)
        kl = F.kl_normal_normal(mu_q, log_var_q, mu_p, log_var_p)[0]
    R = 200_000
    z, _ = F.reparameterize_forward(mu_q, log_var_q, normal(3, (R, 2, 3)))
    log_q = F.gaussian_log_likelihood(z, mu_q, log_var_q)[0]  # (R, N)
    log_p = F.gaussian_log_likelihood(z, mu_p, log_var_p)[0]
    diff = log_q - log_p
    se = diff.std(axis=0) / np.sqrt(R)
    np.testing.assert_allclose(diff.mean(axis=0), kl, rtol=0, atol=float(5 * se.max()))


# ------------------------------------------------------------------ continuous Bernoulli
CB_LOGITS = [-200.0, -40.0, -5.0, -0.5, -1e-3, -1e-9, 0.0, 1e-6, 0.3, 0.49999, 0.5,
             0.50001, 1.0, 7.5, 60.0]


@functools.lru_cache(maxsize=1)
def _gauss_legendre_01(n=16, pieces=100):
    """Composite Gauss-Legendre rule on [0, 1]: ``pieces`` equal intervals with
    ``n`` nodes each (exact for piecewise polynomials of degree < 2n)."""
    nodes, weights = np.polynomial.legendre.leggauss(n)
    left = np.arange(pieces)[:, None] / pieces
    x = left + 0.5 * (nodes[None, :] + 1.0) / pieces  # (pieces, n)
    w = np.broadcast_to(0.5 * weights / pieces, x.shape)
    return x.ravel(), w.ravel()


@pytest.mark.parametrize("l", CB_LOGITS)
def test_continuous_bernoulli_density_integrates_to_one(l):
    """int_0^1 p(x | l) dx = 1 and int_0^1 x p(x | l) dx = E[x] (Gauss-Legendre)."""
    x, w = _gauss_legendre_01()
    logits = np.full((1, x.size), l)
    # the per-example ll sums over D; with D = 1 per row it is the log-density
    log_p = F.continuous_bernoulli_log_likelihood(logits.reshape(-1, 1), x.reshape(-1, 1))[0]
    p = np.exp(log_p)
    np.testing.assert_allclose(np.sum(w * p), 1.0, rtol=1e-10)
    mean = F.continuous_bernoulli_mean(np.array([l]))[0]
    np.testing.assert_allclose(np.sum(w * x * p), mean, rtol=1e-10)


def test_continuous_bernoulli_normalizer_values():
    l = np.array([0.0, 1e-8, -0.2, 0.499, 0.501, 3.0, -30.0, 1e4])
    log_C, dlog_C = F.continuous_bernoulli_log_normalizer(l)
    assert log_C[0] == pytest.approx(math.log(2.0), rel=1e-15)
    assert dlog_C[0] == 0.0
    direct = np.log(l[2:] / np.tanh(l[2:] / 2))  # fine away from 0
    np.testing.assert_allclose(log_C[2:], direct, rtol=1e-13)
    np.testing.assert_allclose(dlog_C[2:6], 1 / l[2:6] - 1 / np.sinh(l[2:6]), rtol=1e-12)
    # l/6 - 7 l^3/360 near 0; 1/l for large |l|
    assert dlog_C[1] == pytest.approx(1e-8 / 6, rel=1e-12)
    assert log_C[-1] == pytest.approx(math.log(1e4), rel=1e-15)
    assert dlog_C[-1] == pytest.approx(1e-4, rel=1e-12)
    # log C = log(2 artanh(1 - 2 lam) / (1 - 2 lam)) in terms of lam (the paper's form)
    lam = 1 / (1 + np.exp(-l[2:6]))
    paper = np.log(2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam))
    np.testing.assert_allclose(log_C[2:6], paper, rtol=1e-9)


def test_continuous_bernoulli_mean_limits():
    m = F.continuous_bernoulli_mean(np.array([0.0, 1e-9, -1e4, 1e4, 2.0, -2.0]))
    assert m[0] == 0.5 and m[1] == pytest.approx(0.5 + 1e-9 / 12, rel=1e-15)
    assert m[2] == pytest.approx(1e-4, rel=1e-12) and m[3] == pytest.approx(1 - 1e-4, rel=1e-12)
    np.testing.assert_allclose(m[4] + m[5], 1.0, rtol=1e-14)  # symmetry E[x | -l] = 1 - E[x | l]
    lam = 1 / (1 + np.exp(-2.0))
    paper = lam / (2 * lam - 1) + 1 / (2 * np.arctanh(1 - 2 * lam))
    assert m[4] == pytest.approx(paper, rel=1e-12)


# ------------------------------------------------------------------ Bernoulli / Gaussian / categorical
def test_bernoulli_finite_and_right_at_extreme_logits():
    for dtype in (np.float32, np.float64):
        logits = np.array([[1e4, -1e4, 1e4, -1e4]], dtype=dtype)
        x = np.array([[1.0, 0.0, 0.0, 1.0]], dtype=dtype)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # no overflow warnings either
            ll, dlogits = F.bernoulli_log_likelihood(logits, x)
        assert ll.dtype == dtype and np.all(np.isfinite(ll))
        np.testing.assert_allclose(ll, [-2e4], rtol=1e-7)
        np.testing.assert_allclose(dlogits, [[0.0, 0.0, -1.0, 1.0]], atol=0)


def test_bernoulli_equals_textbook_form():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((4, 5))
    x = rng.uniform(size=(4, 5))
    p = 1 / (1 + np.exp(-logits))
    expected = np.sum(x * np.log(p) + (1 - x) * np.log(1 - p), axis=1)
    np.testing.assert_allclose(F.bernoulli_log_likelihood(logits, x)[0], expected, rtol=1e-13)


def test_gaussian_hand_values():
    ll, dx, dmu, dlog_var = F.gaussian_log_likelihood(np.array([[1.0, 3.0]]), np.array([1.0, 1.0]),
                                                      np.array([0.0, math.log(4.0)]))
    # -1/2 [log 2pi + 0 + 0] - 1/2 [log 2pi + log 4 + (2^2)/4]
    expected = -math.log(2 * math.pi) - 0.5 * math.log(4.0) - 0.5
    assert ll[0] == pytest.approx(expected, rel=1e-15)
    np.testing.assert_allclose(dmu, [0.0, 0.5], atol=1e-15)  # (x - mu) / var
    np.testing.assert_allclose(dlog_var, [-0.5, 0.0], atol=1e-15)


def test_gaussian_broadcast_gradients_are_sums():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((6, 2))
    mu = rng.standard_normal(2)
    full = F.gaussian_log_likelihood(x, np.broadcast_to(mu, x.shape).copy(), 0.3)
    row = F.gaussian_log_likelihood(x, mu, 0.3)
    np.testing.assert_allclose(row[0], full[0], rtol=1e-15)
    np.testing.assert_allclose(row[2], full[2].sum(axis=0), rtol=1e-13)
    np.testing.assert_allclose(row[3], full[3], rtol=1e-13)


def test_categorical_hand_values_and_gradient_rows_sum_to_zero():
    ll, dlogits = F.categorical_log_likelihood(np.zeros((2, 4)), np.array([0, 3]))
    np.testing.assert_allclose(ll, [-math.log(4)] * 2, rtol=1e-15)
    np.testing.assert_allclose(dlogits.sum(axis=1), 0.0, atol=1e-15)
    ll, _ = F.categorical_log_likelihood(np.array([[1000.0, 0.0]]), np.array([1]))
    assert ll[0] == pytest.approx(-1000.0, rel=1e-15)
    with pytest.raises(ValueError, match="labels must lie in"):
        F.categorical_log_likelihood(np.zeros((2, 4)), np.array([0, 4]))
    with pytest.raises(TypeError, match="labels must be an integer"):
        F.categorical_log_likelihood(np.zeros((2, 4)), np.array([0.0, 1.0]))


# ------------------------------------------------------------------ reductions and activations
def test_logsumexp_of_all_minus_inf_is_minus_inf():
    x = np.array([[-np.inf, -np.inf], [0.0, -np.inf]])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = F.logsumexp(x)
        p = F.softmax(x)
        log_p = F.log_softmax(x)
    assert y[0] == -np.inf and y[1] == 0.0
    np.testing.assert_array_equal(p, [[0.0, 0.0], [1.0, 0.0]])
    assert np.all(log_p[0] == -np.inf) and log_p[1, 0] == 0.0
    assert F.logsumexp(x, axis=(0, 1)) == 0.0


def test_logsumexp_no_overflow_and_identities():
    x = np.array([[1000.0, 1000.0, -1000.0], [-1e4, -1e4, -1e4]])
    np.testing.assert_allclose(F.logsumexp(x), [1000 + math.log(2), -1e4 + math.log(3)], rtol=1e-15)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 4))
    np.testing.assert_allclose(F.logsumexp(x, axis=0, keepdims=True).shape, (1, 4))
    np.testing.assert_allclose(np.exp(F.log_softmax(x, axis=0)), F.softmax(x, axis=0), rtol=1e-14)
    np.testing.assert_allclose(F.softmax(x).sum(axis=-1), 1.0, rtol=1e-15)
    np.testing.assert_allclose(F.logsumexp(x), np.log(np.exp(x).sum(axis=-1)), rtol=1e-14)


def test_stable_helpers_at_extremes():
    x = np.array([-1000.0, -30.0, 0.0, 30.0, 1000.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        s, sp, ls = F.sigmoid(x), F.softplus(x), F.log_sigmoid(x)
        F.elu_forward(x)
    np.testing.assert_allclose(s, [0.0, np.exp(-30) / (1 + np.exp(-30)), 0.5,
                                   1 / (1 + np.exp(-30)), 1.0], rtol=1e-15)
    np.testing.assert_allclose(sp, [0.0, np.log1p(np.exp(-30)), math.log(2), 30 + np.log1p(np.exp(-30)),
                                    1000.0], rtol=1e-15)
    np.testing.assert_allclose(ls, -F.softplus(-x), rtol=0)
    assert ls[0] == -1000.0
    np.testing.assert_allclose(F.softplus(x) - F.softplus(-x), x, rtol=1e-15)  # identity


def test_activation_values():
    x = np.array([-2.0, -0.5, 0.5, 2.0])
    np.testing.assert_array_equal(F.relu_forward(x)[0], [0, 0, 0.5, 2.0])
    np.testing.assert_allclose(F.leaky_relu_forward(x, negative_slope=0.1)[0], [-0.2, -0.05, 0.5, 2.0],
                               rtol=1e-15)
    np.testing.assert_allclose(F.elu_forward(x, alpha=2.0)[0], [2 * np.expm1(-2), 2 * np.expm1(-0.5),
                                                                0.5, 2.0], rtol=1e-15)
    np.testing.assert_allclose(F.tanh_forward(x)[0], np.tanh(x), rtol=1e-15)
    y, cache = F.linear_forward(np.array([[1.0, 2.0]]), np.array([[1.0, 0.0], [0.5, -1.0]]),
                                np.array([0.25, 0.0]))
    np.testing.assert_allclose(y, [[2.25, -2.0]], rtol=1e-15)


def test_linear_rejects_bad_shapes_without_mutating():
    x = np.ones((2, 3))
    W = np.ones((4, 2))
    with pytest.raises(ValueError, match="D_in"):
        F.linear_forward(x, W, None)
    with pytest.raises(ValueError, match="b must have shape"):
        F.linear_forward(x, np.ones((3, 2)), np.ones(3))
    with pytest.raises(TypeError, match="same float dtype"):
        F.linear_forward(x.astype(np.float32), np.ones((3, 2)), None)


# ------------------------------------------------------------------ Gumbel
def test_gumbel_softmax_low_temperature_approaches_one_hot_argmax():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((50, 6))
    g = gumbel(1, logits.shape)
    onehot = np.eye(6)[np.argmax(logits + g, axis=1)]
    distances = []
    for temperature in (1.0, 0.1, 0.01, 0.001, 1e-4):
        y, _ = F.gumbel_softmax_forward(logits, g, temperature)
        np.testing.assert_array_equal(np.argmax(y, axis=1), np.argmax(onehot, axis=1))
        distances.append(np.abs(y - onehot).mean())
    assert all(a > b for a, b in zip(distances, distances[1:])), distances
    assert distances[-1] < 1e-4
    y_hot, _ = F.gumbel_softmax_forward(logits, g, 100.0)
    np.testing.assert_allclose(y_hot, 1 / 6, atol=0.02)  # high temperature: near uniform


def test_categorical_draws_match_softmax_frequencies():
    logits = np.array([[0.5, -1.0, 2.0, 0.0]])
    log_p = np.broadcast_to(logits, (200_000, 4)).copy()
    draws = categorical(0, log_p)
    freq = np.bincount(draws, minlength=4) / draws.size
    p = F.softmax(logits)[0]
    np.testing.assert_allclose(freq, p, rtol=0, atol=5 * np.sqrt(p * (1 - p) / draws.size).max())
    # relaxed samples: argmax of the Gumbel-softmax has the same law
    y, _ = F.gumbel_softmax_forward(log_p, gumbel(1, log_p.shape), 0.5)
    freq_y = np.bincount(np.argmax(y, axis=1), minlength=4) / draws.size
    np.testing.assert_allclose(freq_y, p, rtol=0, atol=0.01)


@pytest.mark.parametrize("fn", [F.bernoulli_log_likelihood, F.continuous_bernoulli_log_likelihood])
def test_bernoulli_likelihoods_broadcast_data_over_samples(fn):
    """logits (R, N, D) with x (N, D): each sample r scored against the same x."""
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((3, 4, 5))
    x = rng.uniform(size=(4, 5))
    ll, dlogits = fn(logits, x)
    assert ll.shape == (3, 4) and dlogits.shape == (3, 4, 5)
    for r in range(3):
        ll_r, d_r = fn(logits[r], x)
        np.testing.assert_allclose(ll[r], ll_r, rtol=1e-15)
        np.testing.assert_allclose(dlogits[r], d_r, rtol=1e-15)
    with pytest.raises(ValueError, match="broadcast"):
        fn(logits[0], rng.uniform(size=(3, 4, 5)))
    with pytest.raises(ValueError, match="shape of logits"):
        fn(logits, rng.uniform(size=(4, 4)))
