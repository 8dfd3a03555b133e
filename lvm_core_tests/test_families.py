"""Observation families: densities against dense formulas, additive statistics
about an explicit reference point, M-steps, k-means, on every backend."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from lvm_core.families import bernoulli, categorical, gaussian, kmeans, poisson, safe_log

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def random_gaussian(rng, K, D, ctype):
    means = rng.normal(size=(K, D)) * 2.0
    A = rng.normal(size=(K, D, D)) * 0.4
    full = np.einsum("kij,klj->kil", A, A) + np.eye(D) * 0.5
    covars = {"full": full, "tied": full[0], "diag": rng.uniform(0.3, 2.0, size=(K, D)),
              "spherical": rng.uniform(0.3, 2.0, size=K)}[ctype]
    return means, covars


def dense_log_normal(X, mu, cov):
    D = X.shape[1]
    diff = X - mu
    sol = np.linalg.solve(cov, diff.T).T
    return -0.5 * (D * math.log(2 * math.pi) + np.linalg.slogdet(cov)[1] + np.sum(diff * sol, axis=1))


def test_safe_log_gives_minus_infinity_without_warnings():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = safe_log(np.array([0.0, 1.0, math.e]))
    assert_allclose(out, [-np.inf, 0.0, 1.0])


@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
def test_gaussian_log_prob_matches_the_dense_formula(backend64, ctype):
    rng = np.random.default_rng(0)
    K, D = 3, 4
    means, covars = random_gaussian(rng, K, D, ctype)
    X = rng.normal(size=(20, D)) * 2.0
    full = np.asarray(gaussian.full_covariances(covars, ctype, K, D))
    expected = np.stack([dense_log_normal(X, means[k], full[k]) for k in range(K)], axis=1)
    U = gaussian.compute_precision_cholesky(backend64.asarray(covars), ctype)
    got = gaussian.log_prob(backend64.asarray(X), backend64.asarray(means), U, ctype)
    assert_allclose(backend64.to_numpy(got), expected, rtol=1e-11)


@settings(max_examples=20)
@given(seed=st.integers(0, 10_000), ctype=st.sampled_from(COVARIANCE_TYPES),
       cut=st.integers(1, 59))
def test_gaussian_statistics_add_up_over_chunks_about_a_fixed_reference(seed, ctype, cut):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(60, 3)) + 1e3  # a large offset: the reference point removes it
    resp = rng.dirichlet(np.ones(3), size=60)
    c = X.mean(axis=0)
    whole = gaussian.statistics(X, resp, ctype, shift=c)
    first = gaussian.statistics(X[:cut], resp[:cut], ctype, shift=c)
    second = gaussian.statistics(X[cut:], resp[cut:], ctype, shift=c)
    for key in whole:
        assert_allclose(first[key] + second[key], whole[key], rtol=1e-12, atol=1e-9)
    # the M-step is translation-equivariant: shifted means + c are the plain means
    w0, m0, c0 = gaussian.m_step(gaussian.statistics(X, resp, ctype), ctype, 0.0)
    w1, m1, c1 = gaussian.m_step(whole, ctype, 0.0)
    assert_allclose(w1, w0, rtol=1e-12)
    assert_allclose(m1 + c, m0, rtol=1e-12)
    assert_allclose(c1, c0, rtol=1e-6, atol=1e-6 * np.abs(c1).max())  # plain moments lose digits


@pytest.mark.parametrize("ctype", COVARIANCE_TYPES)
def test_map_m_step_without_prior_is_the_ml_m_step(ctype):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    resp = rng.dirichlet(np.ones(2), size=200)
    stats = gaussian.statistics(X, resp, ctype)
    _, means_ml, cov_ml = gaussian.m_step(stats, ctype, 0.0)
    means0, cov0 = random_gaussian(rng, 2, 3, ctype)
    weight = 1.0 if ctype in ("diag", "spherical") else 3.0  # nu - 1 = 0, nu - D = 0
    means, cov = gaussian.map_m_step(stats, means0, cov0, ctype, means_prior=0.0, means_weight=0.0,
                                     covars_prior=0.0, covars_weight=weight, min_covar=1e-3,
                                     learn_means=True, learn_covars=True)
    assert_allclose(means, means_ml, rtol=1e-12)
    assert_allclose(cov, cov_ml, rtol=1e-10)


def test_covariance_floors_only_touch_collapsed_components():
    var = np.array([[1.0, 1e-12], [0.5, 2.0]])
    assert_allclose(gaussian.floor_variances(var, 1e-3), [[1.0, 1e-3], [0.5, 2.0]])
    cov = np.stack([np.eye(2), np.diag([1.0, 0.0])])
    floored = gaussian.floor_covariances(cov, 1e-3)
    assert_allclose(floored[0], np.eye(2))
    assert_allclose(np.linalg.eigvalsh(floored[1]).min(), 1e-3, rtol=1e-12)


def test_gaussian_sample_has_the_covariances():
    rng = np.random.default_rng(2)
    means, full = random_gaussian(rng, 2, 3, "full")
    labels = np.repeat([0, 1], 20_000)
    X = gaussian.sample(rng, means, full, labels)
    for k in range(2):
        assert_allclose(np.cov(X[labels == k].T), full[k], atol=0.06)
        assert_allclose(X[labels == k].mean(axis=0), means[k], atol=0.04)


def test_categorical_family():
    rng = np.random.default_rng(3)
    B = rng.dirichlet(np.ones(5), size=2)
    B[0, 4] = 0.0
    B[0] /= B[0].sum()
    symbols = np.array([0, 4, 2, 4])
    lp = categorical.log_prob(symbols, B)
    assert lp[1, 0] == -np.inf
    assert_allclose(lp[:, 1], np.log(B[1, symbols]))
    resp = rng.dirichlet(np.ones(2), size=4)
    counts = categorical.statistics(symbols, resp, 5)["counts"]
    assert_allclose(counts.sum(axis=1), resp.sum(axis=0))
    new = categorical.map_m_step(counts, 1.0, B)
    assert_allclose(new, counts / counts.sum(axis=1, keepdims=True))
    assert_allclose(categorical.map_m_step(np.zeros((2, 5)), 1.0, B), B)  # no mass: kept


def test_poisson_family():
    rng = np.random.default_rng(4)
    X = rng.poisson(3.0, size=(30, 2)).astype(float)
    lam = np.array([[1.0, 2.0], [4.0, 0.5]])
    expected = np.stack([np.sum(X * np.log(lam[k]) - lam[k], axis=1)
                         - np.sum([[math.lgamma(v + 1) for v in row] for row in X], axis=1)
                         for k in range(2)], axis=1)
    assert_allclose(poisson.log_prob(X, poisson.log_factorial(X), lam), expected, rtol=1e-12)
    resp = rng.dirichlet(np.ones(2), size=30)
    stats = poisson.statistics(X, resp)
    assert_allclose(poisson.map_m_step(stats, lam, 0.0, 0.0),
                    stats["x_sum"] / stats["resp_sum"][:, None], rtol=1e-12)


def test_bernoulli_family():
    rng = np.random.default_rng(5)
    X = (rng.random((25, 4)) < 0.4).astype(float)
    p = rng.uniform(0.1, 0.9, size=(3, 4))
    expected = np.stack([np.sum(X * np.log(p[k]) + (1 - X) * np.log(1 - p[k]), axis=1)
                         for k in range(3)], axis=1)
    assert_allclose(bernoulli.log_prob(X, p), expected, rtol=1e-12)
    resp = rng.dirichlet(np.ones(3), size=25)
    weights, probs = bernoulli.map_m_step(bernoulli.statistics(X, resp))
    assert_allclose(weights, resp.mean(axis=0), rtol=1e-12)
    assert_allclose(probs, resp.T @ X / resp.sum(axis=0)[:, None], rtol=1e-12)


def test_kmeans_finds_separated_clusters_and_is_seeded(backend64):
    rng = np.random.default_rng(6)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    X = centres[np.repeat(np.arange(3), 50)] + rng.normal(size=(150, 2)) * 0.5
    found, labels = kmeans(backend64.asarray(X), 3, np.random.default_rng(0))
    found = backend64.to_numpy(found)
    order = np.argsort(np.round(found[:, 0] / 10) + 2 * np.round(found[:, 1] / 10))
    assert_allclose(found[order], centres[[0, 1, 2]], atol=0.3)
    again, _ = kmeans(backend64.asarray(X), 3, np.random.default_rng(0))
    assert_allclose(backend64.to_numpy(again), found, rtol=0, atol=0)
