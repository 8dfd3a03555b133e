"""FactorAnalysis and PPCA: Woodbury evidence == dense formula, additive statistics,
monotone EM, PPCA closed form == EM fixed point, scikit-learn parity, sampling,
bad input, backends."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from lvm_core.models import factor_analysis as fa
from lvm_core.models.factor_analysis import PPCA, FactorAnalysis
from lvm_core.validation import NotFittedError
from lvm_core_tests.conftest import require


def fa_data(rng, N=300, D=6, L=2, offset=2.0):
    """Data from a factor model with heteroscedastic noise, shape (N, D)."""
    W = rng.normal(size=(L, D))
    psi = rng.uniform(0.2, 1.5, size=D)
    return rng.normal(size=(N, L)) @ W + rng.normal(size=(N, D)) * np.sqrt(psi) + offset


def random_params(rng, D, L):
    return rng.normal(size=(L, D)), rng.uniform(0.1, 2.0, size=D), rng.normal(size=D)


def dense_log_evidence(X, mean, components, noise_variance):
    """log N(x | mu, W^T W + Psi) with an explicit D x D slogdet and solve."""
    D = X.shape[1]
    C = components.T @ components + np.diag(np.broadcast_to(noise_variance, (D,)))
    diff = X - mean
    _, logdet = np.linalg.slogdet(C)
    maha = np.sum(diff * np.linalg.solve(C, diff.T).T, axis=1)
    return -0.5 * (D * math.log(2 * math.pi) + logdet + maha)


# ---------------------------------------------------------------------------
# meaning: Woodbury == dense; posterior; precision
# ---------------------------------------------------------------------------
@settings(max_examples=20)
@given(seed=st.integers(0, 2 ** 31 - 1), D=st.integers(1, 7), L=st.integers(1, 4),
       isotropic=st.booleans())
def test_woodbury_log_evidence_equals_dense_formula(seed, D, L, isotropic):
    rng = np.random.default_rng(seed)
    W, psi, mu = random_params(rng, D, L)
    if isotropic:
        psi = np.asarray(psi[0])
    X = rng.normal(size=(9, D)) * 2.0
    assert_allclose(fa.log_evidence(X, mu, W, psi), dense_log_evidence(X, mu, W, psi), rtol=1e-10)
    scatter = (X - mu).T @ (X - mu)
    _, ll = fa.e_step_from_scatter(scatter, 9, W, psi)
    assert_allclose(ll, dense_log_evidence(X, mu, W, psi).sum(), rtol=1e-10)


def test_posterior_mean_precision_and_covariance_match_dense_algebra():
    rng = np.random.default_rng(1)
    X = fa_data(rng)
    model = FactorAnalysis(n_components=2).fit(X)
    C = model.components_.T @ model.components_ + np.diag(model.noise_variance_)
    assert_allclose(model.get_covariance(), C, rtol=1e-12)
    assert_allclose(model.get_precision(), np.linalg.inv(C), rtol=1e-9, atol=1e-12)
    # E[z | x] = W C^{-1} (x - mu) (Gaussian conditioning, PRML 2.116)
    expected = (X - model.mean_) @ np.linalg.solve(C, model.components_.T)
    assert_allclose(model.transform(X), expected, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------
# statistics: data path == scatter path; two halves add up
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("isotropic", [False, True])
def test_statistics_from_data_scatter_and_halves_agree(isotropic):
    rng = np.random.default_rng(2)
    X = fa_data(rng, N=101)
    W, psi, _ = random_params(rng, 6, 2)
    if isotropic:
        psi = np.asarray(0.7)
    mu = X.mean(axis=0)
    whole, ll = fa.e_step(X, mu, W, psi)
    halves = [fa.e_step(part, mu, W, psi) for part in (X[:37], X[37:])]
    summed = halves[0][0] + halves[1][0]
    for key in whole:
        assert_allclose(summed[key], whole[key], rtol=1e-12, atol=1e-12)
    assert_allclose(halves[0][1] + halves[1][1], ll, rtol=1e-13)
    scatter_stats, ll_scatter = fa.e_step_from_scatter((X - mu).T @ (X - mu), 101, W, psi)
    for key in whole:
        assert_allclose(scatter_stats[key], whole[key], rtol=1e-10, atol=1e-10)
    assert_allclose(ll_scatter, ll, rtol=1e-11)
    for a, b in zip(fa.m_step(summed, isotropic=isotropic), fa.m_step(whole, isotropic=isotropic)):
        assert_allclose(a, b, rtol=1e-10)


# ---------------------------------------------------------------------------
# EM: monotone, closed form is the fixed point
# ---------------------------------------------------------------------------
@settings(max_examples=15)
@given(seed=st.integers(0, 2 ** 31 - 1), D=st.integers(2, 8), L=st.integers(1, 3),
       model=st.sampled_from(["fa", "ppca"]))
def test_em_log_likelihood_never_decreases(seed, D, L, model):
    rng = np.random.default_rng(seed)
    L = min(L, D - 1)
    X = fa_data(rng, N=int(rng.integers(20, 120)), D=D, L=max(1, L))
    if model == "fa":
        est = FactorAnalysis(n_components=L, tol=0.0, max_iter=30,
                             noise_variance_init=rng.uniform(0.1, 3.0, size=D))
    else:
        est = PPCA(n_components=L, method="em", tol=0.0, max_iter=30, random_state=seed)
    est.fit(X)
    ll = np.asarray(est.loglike_)
    assert len(ll) == 30
    assert np.all(np.diff(ll) >= -1e-10 * np.abs(ll[1:])), np.diff(ll).min()
    assert est.monitor_.n_decreases == 0


def test_ppca_closed_form_is_a_fixed_point_of_em_and_em_converges_to_it():
    rng = np.random.default_rng(3)
    X = fa_data(rng, N=400, D=7, L=3)
    closed = PPCA(n_components=3).fit(X)
    scatter = (X - closed.mean_).T @ (X - closed.mean_)
    stats, _ = fa.e_step_from_scatter(scatter, 400, closed.components_, closed.noise_variance_)
    W1, sigma2_1 = fa.m_step(stats, isotropic=True)
    assert_allclose(W1.T @ W1, closed.components_.T @ closed.components_, rtol=1e-9, atol=1e-12)
    assert_allclose(sigma2_1, closed.noise_variance_, rtol=1e-10)
    em = PPCA(n_components=3, method="em", tol=1e-10, max_iter=5000, random_state=0).fit(X)
    assert em.converged_
    assert_allclose(em.loglike_[-1], closed.loglike_[0], rtol=1e-9)
    assert_allclose(em.get_covariance(), closed.get_covariance(), rtol=1e-4, atol=1e-5)
    assert max(em.loglike_) <= closed.loglike_[0] + 1e-8 * abs(closed.loglike_[0])  # global max


def test_ppca_closed_form_noise_is_the_mean_of_the_discarded_eigenvalues():
    rng = np.random.default_rng(4)
    X = fa_data(rng, N=200, D=5, L=2)
    model = PPCA(n_components=2).fit(X)
    lam = np.sort(np.linalg.eigvalsh(np.cov(X, rowvar=False, bias=True)))[::-1]
    assert_allclose(model.noise_variance_, lam[2:].mean(), rtol=1e-11)
    # W W^T has the top eigenvalues minus sigma^2
    top = np.sort(np.linalg.eigvalsh(model.components_ @ model.components_.T))[::-1]
    assert_allclose(top, lam[:2] - lam[2:].mean(), rtol=1e-10)


# ---------------------------------------------------------------------------
# scikit-learn parity
# ---------------------------------------------------------------------------
@pytest.mark.reference
def test_fa_scores_match_sklearn_at_the_same_parameters():
    decomposition = require("sklearn.decomposition")
    rng = np.random.default_rng(5)
    X = fa_data(rng)
    ref = decomposition.FactorAnalysis(n_components=2, svd_method="lapack").fit(X)
    ours = FactorAnalysis(n_components=2)
    ours.components_, ours.noise_variance_, ours.mean_ = ref.components_, ref.noise_variance_, ref.mean_
    X_new = fa_data(np.random.default_rng(6), N=40)
    assert_allclose(ours.score_samples(X_new), ref.score_samples(X_new), rtol=1e-10)
    assert_allclose(ours.score(X_new), ref.score(X_new), rtol=1e-10)
    assert_allclose(ours.transform(X_new), ref.transform(X_new), rtol=1e-9, atol=1e-12)
    assert_allclose(ours.get_precision(), ref.get_precision(), rtol=1e-9, atol=1e-12)
    assert_allclose(ours.get_covariance(), ref.get_covariance(), rtol=1e-12)


@pytest.mark.reference
def test_fa_fit_starts_where_sklearn_starts_and_reaches_its_optimum():
    decomposition = require("sklearn.decomposition")
    rng = np.random.default_rng(17)  # a problem without a Heywood case (psi -> 0)
    X = fa_data(rng, N=400, D=8, L=2)
    ref = decomposition.FactorAnalysis(n_components=2, svd_method="lapack", tol=1e-7,
                                       max_iter=3000).fit(X)
    ours = FactorAnalysis(n_components=2, tol=1e-8, max_iter=20000).fit(X)
    assert ours.converged_ and ref.n_iter_ < 3000
    assert_allclose(ours.loglike_[0], ref.loglike_[0], rtol=1e-10)  # same start
    assert_allclose(ours.loglike_[-1], ref.loglike_[-1], rtol=1e-9)
    # the likelihood is flat near the optimum: 1e-9 in log-likelihood ~ 1e-4 in psi
    assert_allclose(ours.noise_variance_, ref.noise_variance_, rtol=1e-3)
    assert_allclose(ours.get_covariance(), ref.get_covariance(), rtol=1e-3, atol=1e-5)
    assert_allclose(ours.mean_, ref.mean_, rtol=1e-12)


@pytest.mark.reference
def test_ppca_matches_sklearn_pca():
    decomposition = require("sklearn.decomposition")
    rng = np.random.default_rng(8)
    N = 250
    X = fa_data(rng, N=N, D=6, L=2)
    ref = decomposition.PCA(n_components=2).fit(X)
    ours = PPCA(n_components=2).fit(X)
    # scikit-learn's PCA divides the scatter by N - 1, the ML estimate by N
    assert_allclose(ours.get_covariance() * N / (N - 1), ref.get_covariance(), rtol=1e-10, atol=1e-12)
    assert_allclose(ours.noise_variance_ * N / (N - 1), ref.noise_variance_, rtol=1e-10)
    # at sklearn's parameters our evidence is sklearn's score_samples
    ours.noise_variance_ = np.asarray(ref.noise_variance_)
    ours.components_ = ref.components_ * np.sqrt(ref.explained_variance_ - ref.noise_variance_)[:, None]
    ours.mean_ = ref.mean_
    assert_allclose(ours.score_samples(X), ref.score_samples(X), rtol=1e-10)
    assert_allclose(ours.get_precision(), ref.get_precision(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [FactorAnalysis, PPCA])
def test_sample_moments(cls):
    X = fa_data(np.random.default_rng(9), N=300, D=4, L=2)
    model = cls(n_components=2).fit(X)
    n = 50_000
    S = model.sample(n, random_state=0)
    C = model.get_covariance()
    se = np.sqrt(np.diag(C) / n)
    assert np.all(np.abs(S.mean(axis=0) - model.mean_) < 5 * se)
    # sample covariance entries have sd about sqrt((C_ii C_jj + C_ij^2) / n) <= 0.012 here
    assert_allclose(np.cov(S, rowvar=False), C, atol=6 * np.sqrt(2 * np.max(np.diag(C)) ** 2 / n))
    np.testing.assert_array_equal(S, model.sample(n, random_state=0))


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def test_bad_input_raises_clear_errors():
    X = fa_data(np.random.default_rng(10), N=30, D=4)
    with pytest.raises(ValueError, match="n_components=5 must be <= n_features=4"):
        FactorAnalysis(n_components=5).fit(X)
    with pytest.raises(ValueError, match="n_components < n_features"):
        PPCA(n_components=4).fit(X)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        FactorAnalysis(n_components=2).fit(X_nan)
    with pytest.raises(ValueError, match="at least 2 row"):
        FactorAnalysis(n_components=2).fit(X[:1])
    with pytest.raises(ValueError, match="at least 2 row"):
        PPCA(n_components=2).fit(np.empty((0, 4)))
    with pytest.raises(ValueError, match="2 dimension"):
        PPCA(n_components=1).fit(X[:, 0])
    with pytest.raises(ValueError, match=r"noise_variance_init must have shape \(4,\)"):
        FactorAnalysis(n_components=2, noise_variance_init=np.ones(3)).fit(X)
    with pytest.raises(ValueError, match="positive"):
        FactorAnalysis(n_components=2, noise_variance_init=-np.ones(4)).fit(X)
    with pytest.raises(ValueError, match="method"):
        PPCA(n_components=2, method="svd").fit(X)
    with pytest.raises(NotFittedError, match="not fitted"):
        FactorAnalysis(n_components=2).score_samples(X)
    with pytest.raises(NotFittedError, match="not fitted"):
        PPCA(n_components=2).transform(X)
    model = FactorAnalysis(n_components=2).fit(X)
    with pytest.raises(ValueError, match="4 features"):
        model.score_samples(X[:, :3])
    X_before = X.copy()
    PPCA(n_components=2).fit(X)
    np.testing.assert_array_equal(X, X_before)


def test_get_set_params_and_float32():
    model = FactorAnalysis(n_components=2, dtype="float32")
    assert model.get_params()["dtype"] == "float32"
    X = fa_data(np.random.default_rng(11), N=100, D=5).astype(np.float32)
    model.fit(X)
    assert model.components_.dtype == np.float32 and model.score_samples(X).dtype == np.float32


# ---------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------
def test_fa_backends_agree_with_numpy(backend64):
    X = fa_data(np.random.default_rng(12), N=80, D=5)
    ref = FactorAnalysis(n_components=2, tol=0.0, max_iter=15).fit(X)
    ours = FactorAnalysis(n_components=2, tol=0.0, max_iter=15).fit(backend64.asarray(X))
    assert_allclose(ours.loglike_, ref.loglike_, rtol=1e-10)
    Xd = backend64.asarray(X[:7])
    for name in ("score_samples", "transform"):
        out = getattr(ours, name)(Xd)
        assert type(out) is type(Xd)
        assert_allclose(backend64.to_numpy(out), getattr(ref, name)(X[:7]), rtol=1e-8, atol=1e-10)
    assert_allclose(backend64.to_numpy(ours.get_precision()), ref.get_precision(), rtol=1e-8, atol=1e-10)
    assert ours.sample(4, random_state=0).shape == (4, 5)


@pytest.mark.parametrize("method", ["closed_form", "em"])
def test_ppca_backends_agree_with_numpy(backend64, method):
    X = fa_data(np.random.default_rng(13), N=80, D=5)
    ref = PPCA(n_components=2, method=method, tol=0.0, max_iter=10).fit(X)
    ours = PPCA(n_components=2, method=method, tol=0.0, max_iter=10).fit(backend64.asarray(X))
    assert_allclose(ours.loglike_, ref.loglike_, rtol=1e-10)
    assert_allclose(backend64.to_numpy(ours.get_covariance()), ref.get_covariance(), rtol=1e-8, atol=1e-10)
    Xd = backend64.asarray(X[:7])
    assert_allclose(backend64.to_numpy(ours.score_samples(Xd)), ref.score_samples(X[:7]), rtol=1e-10)
