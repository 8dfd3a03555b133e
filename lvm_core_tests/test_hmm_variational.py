"""Variational Bayesian HMMs (Beal 2003): the evidence lower bound never
decreases (many seeds), parity with hmmlearn's VariationalCategoricalHMM and
VariationalGaussianHMM from the same posteriors, the posterior means recover
the generating model, refit semantics, and the building blocks (digamma,
Dirichlet KL) against their definitions."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from lvm_core.families.dirichlet import digamma, kl_dirichlet
from lvm_core.models.hmm import VariationalCategoricalHMM, VariationalGaussianHMM

from .conftest import require


def _categorical_data(seed, T=240):
    rng = np.random.default_rng(seed)
    z = (np.arange(T) // 20) % 3
    return np.where(rng.random(T) < 0.8, z, rng.integers(0, 4, T))[:, None]


def _gaussian_data(seed, T=240):
    rng = np.random.default_rng(seed)
    z = (np.arange(T) // 20) % 3
    return rng.normal(size=(T, 2)) + 3.0 * np.stack([z, z % 2], axis=1)


def _assert_never_decreases(history):
    h = np.asarray(history)
    assert np.all(np.isfinite(h))
    # non-decreasing up to float64 round-off of sums of |F| ~ 1e3
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:])), np.diff(h).min()


@pytest.mark.parametrize("seed", range(12))
def test_categorical_lower_bound_never_decreases(seed):
    X = _categorical_data(seed)
    m = VariationalCategoricalHMM(3, random_state=seed, n_iter=40, tol=0.0).fit(X, [100, 140])
    _assert_never_decreases(m.monitor_.history)
    assert m.lower_bound_ == m.monitor_.history[-1]


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
@pytest.mark.parametrize("seed", range(12))
def test_gaussian_lower_bound_never_decreases(seed, ct):
    X = _gaussian_data(seed)
    m = VariationalGaussianHMM(3, covariance_type=ct, random_state=seed, n_iter=30,
                               tol=0.0).fit(X, [100, 140])
    _assert_never_decreases(m.monitor_.history)


@pytest.mark.parametrize("ct", ["full", "tied", "diag", "spherical"])
def test_posterior_means_recover_the_model(ct):
    X = _gaussian_data(0, T=600)
    m = VariationalGaussianHMM(3, covariance_type=ct, random_state=0, n_iter=100).fit(X)
    got = m.means_[np.lexsort(m.means_.T[::-1])]
    np.testing.assert_allclose(got, [[0.0, 0.0], [3.0, 3.0], [6.0, 0.0]], atol=0.3)
    np.testing.assert_allclose(m.transmat_.sum(axis=1), 1.0, rtol=1e-12)
    assert np.isfinite(m.score(X)) and m.predict(X).shape == (600,)
    Xc = _categorical_data(0, 600)
    c = VariationalCategoricalHMM(3, random_state=0, n_iter=100).fit(Xc)
    assert np.allclose(c.emissionprob_.sum(axis=1), 1.0)
    # far better than i.i.d. uniform symbols (VB may switch off a state it does not need)
    assert c.score(Xc) > 600 * math.log(1 / 4) + 150


def test_refit_restarts_and_warm_start_continues():
    X = _categorical_data(1)
    a = VariationalCategoricalHMM(3, random_state=0, n_iter=5, tol=0.0).fit(X).fit(X)
    b = VariationalCategoricalHMM(3, random_state=0, n_iter=5, tol=0.0).fit(X)
    np.testing.assert_allclose(a.monitor_.history, b.monitor_.history, rtol=1e-12)
    w = VariationalCategoricalHMM(3, random_state=0, n_iter=5, tol=0.0, warm_start=True).fit(X)
    first = w.monitor_.history[-1]
    w.fit(X)
    assert w.monitor_.history[0] >= first - 1e-9 * abs(first)


def test_digamma_and_dirichlet_kl_by_definition():
    # psi(1) = -Euler gamma; psi(x + 1) = psi(x) + 1/x; psi(1/2) = -gamma - 2 log 2
    euler = 0.5772156649015329
    np.testing.assert_allclose(digamma([1.0, 0.5]), [-euler, -euler - 2 * math.log(2)],
                               rtol=1e-14)
    x = np.array([0.01, 0.3, 2.5, 17.0, 1e4])
    np.testing.assert_allclose(digamma(x + 1), digamma(x) + 1 / x, rtol=1e-13, atol=1e-13)
    # KL(Dir(a) || Dir(a)) = 0; KL by Monte Carlo of log q - log p
    a, b = np.array([2.0, 3.0, 0.5]), np.array([1.0, 1.0, 1.0])
    assert abs(kl_dirichlet(a, a)) < 1e-12
    rng = np.random.default_rng(0)
    p = rng.dirichlet(a, size=200000)

    def log_dir(p, c):
        return (math.lgamma(c.sum()) - sum(math.lgamma(v) for v in c)
                + np.sum((c - 1) * np.log(p), axis=1))

    mc = np.mean(log_dir(p, a) - log_dir(p, b))
    np.testing.assert_allclose(kl_dirichlet(a, b), mc, rtol=2e-2)


@pytest.mark.reference
def test_categorical_parity_with_hmmlearn():
    """From the same posteriors and priors, three VB iterations give hmmlearn's
    lower bounds and posteriors."""
    vhmm = require("hmmlearn.vhmm")
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    X, lengths = _categorical_data(2), [100, 140]
    rng = np.random.default_rng(5)
    post = dict(startprob=rng.uniform(0.5, 2, 3), transmat=rng.uniform(1, 30, (3, 3)),
                emissionprob=rng.uniform(1, 30, (3, 4)))
    h = vhmm.VariationalCategoricalHMM(3, n_iter=3, tol=-np.inf, init_params="",
                                       implementation="scaling")
    h.n_features = 4
    h.startprob_prior_, h.transmat_prior_ = np.full(3, 1 / 3), np.full((3, 3), 1 / 3)
    h.emissionprob_prior_ = np.full((3, 4), 1 / 4)
    m = VariationalCategoricalHMM(3, n_features=4, n_iter=3, tol=0.0, random_state=0)
    for name, value in post.items():
        setattr(h, name + "_posterior_", value.copy())
        setattr(m, name + "_posterior_", value.copy())
    h.fit(X, lengths)
    m.fit(X, lengths)
    np.testing.assert_allclose(m.monitor_.history, list(h.monitor_.history), rtol=1e-10)
    for name in post:
        np.testing.assert_allclose(getattr(m, name + "_posterior_"),
                                   getattr(h, name + "_posterior_"), rtol=1e-9, err_msg=name)
    np.testing.assert_allclose(m.emissionprob_, h.emissionprob_, rtol=1e-9)


@pytest.mark.reference
@pytest.mark.parametrize("ct", ["full", "tied"])
def test_gaussian_parity_with_hmmlearn(ct):
    vhmm = require("hmmlearn.vhmm")
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    X, lengths = _gaussian_data(3), [100, 140]
    K, D = 3, 2
    rng = np.random.default_rng(6)
    post = dict(startprob=rng.uniform(0.5, 2, K), transmat=rng.uniform(1, 30, (K, K)),
                means=np.array([[0.0, 0.0], [3.0, 3.0], [6.0, 0.0]]) + 0.3 * rng.normal(size=(K, D)),
                beta=rng.uniform(20, 80, K), dof=rng.uniform(20, 80, K))
    post["scale"] = np.stack([np.eye(D) * post["dof"][k] * rng.uniform(0.7, 1.4) for k in range(K)])
    prior = dict(startprob=np.full(K, 1 / K), transmat=np.full((K, K), 1 / K),
                 means=np.tile(X.mean(axis=0), (K, 1)), beta=np.ones(K), dof=np.full(K, 2.0),
                 scale=np.tile(1e-3 * np.eye(D), (K, 1, 1)))
    if ct == "tied":  # one Wishart: scalar dof, (D, D) scale
        post["dof"], post["scale"] = np.float64(150.0), 150.0 * np.eye(D)
        prior["dof"], prior["scale"] = np.float64(2.0), 1e-3 * np.eye(D)
    h = vhmm.VariationalGaussianHMM(K, covariance_type=ct, n_iter=3, tol=-np.inf,
                                    init_params="", implementation="scaling")
    h.n_features = D
    m = VariationalGaussianHMM(K, covariance_type=ct, n_iter=3, tol=0.0, random_state=0,
                               means_prior=prior["means"], dof_prior=2.0)
    for name, value in prior.items():
        setattr(h, name + "_prior_", value.copy())
    for name, value in post.items():
        setattr(h, name + "_posterior_", value.copy())
        setattr(m, name + "_posterior_", value.copy())
    h.fit(X, lengths)
    m.fit(X, lengths)
    # hmmlearn's Gaussian bound leaves out the constant -(T D / 2) log(2 pi) of the
    # Gaussian densities; ours is the full evidence lower bound
    constant = -X.shape[0] * D / 2.0 * math.log(2.0 * math.pi)
    np.testing.assert_allclose(m.monitor_.history, np.asarray(h.monitor_.history) + constant,
                               rtol=1e-9)
    for name in post:
        np.testing.assert_allclose(getattr(m, name + "_posterior_"),
                                   getattr(h, name + "_posterior_"), rtol=1e-8, err_msg=name)
    np.testing.assert_allclose(m.full_covars_, h.covars_, rtol=1e-8)  # hmmlearn: (K, D, D)


def test_diag_bound_is_the_full_bound_for_diagonal_data_terms():
    """For D = 1 the Normal-Gamma (diag) and Normal-Wishart (full) posteriors are
    the same distribution (a Wishart in one dimension is a Gamma): equal bounds."""
    X = _gaussian_data(4)[:, :1]
    a = VariationalGaussianHMM(3, covariance_type="full", random_state=0, n_iter=5, tol=0.0).fit(X)
    b = VariationalGaussianHMM(3, covariance_type="diag", random_state=0, n_iter=5, tol=0.0).fit(X)
    np.testing.assert_allclose(b.monitor_.history, a.monitor_.history, rtol=1e-10)
    np.testing.assert_allclose(b.covars_[:, 0], a.covars_[:, 0, 0], rtol=1e-10)


def test_covariance_types_agree_where_they_are_the_same_model():
    """D = 1: full, diag and spherical are one model (a Wishart in one dimension
    is a Gamma); K = 1: tied and full are one model.  Equal bounds."""
    X = _gaussian_data(4)
    runs = {}
    for ct in ("full", "diag", "spherical"):
        runs[ct] = VariationalGaussianHMM(3, covariance_type=ct, random_state=0, n_iter=5,
                                          tol=0.0).fit(X[:, :1]).monitor_.history
    np.testing.assert_allclose(runs["diag"], runs["full"], rtol=1e-10)
    np.testing.assert_allclose(runs["spherical"], runs["full"], rtol=1e-10)
    tied = VariationalGaussianHMM(1, covariance_type="tied", random_state=0, n_iter=5,
                                  tol=0.0).fit(X)
    full = VariationalGaussianHMM(1, covariance_type="full", random_state=0, n_iter=5,
                                  tol=0.0).fit(X)
    np.testing.assert_allclose(tied.monitor_.history, full.monitor_.history, rtol=1e-10)
    np.testing.assert_allclose(tied.covars_, full.covars_[0], rtol=1e-10)
