"""GaussianMixture: scikit-learn parity, EM monotonicity, additive statistics,
hand-computed densities, sampling moments, bad input, backends."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from lvm_core.models import gmm
from lvm_core.models.gmm import GaussianMixture
from lvm_core.validation import NotFittedError
from lvm_core_tests.conftest import require

COVARIANCE_TYPES = ["full", "tied", "diag", "spherical"]


def blobs(rng, N=240, D=3, K=3, spread=3.0):
    """K Gaussian clusters with random full covariances, shape (N, D)."""
    centers = rng.normal(size=(K, D)) * spread
    factors = rng.normal(size=(K, D, D)) * 0.4 + np.eye(D)
    labels = rng.integers(0, K, size=N)
    return centers[labels] + np.einsum("nd,nde->ne", rng.normal(size=(N, D)), factors[labels])


def random_start(rng, X, K, covariance_type):
    """weights_init, means_init, precisions_init of the right shapes."""
    D = X.shape[1]
    weights = rng.dirichlet(np.ones(K) * 5.0)
    means = X[rng.choice(X.shape[0], size=K, replace=False)]
    A = rng.normal(size=(K, D, D)) * 0.3
    precisions_full = np.einsum("kij,klj->kil", A, A) + np.eye(D) * 0.5  # (K, D, D) SPD
    precisions = {
        "full": precisions_full,
        "tied": precisions_full[0],
        "diag": rng.uniform(0.3, 2.0, size=(K, D)),
        "spherical": rng.uniform(0.3, 2.0, size=K),
    }[covariance_type]
    return weights, means, precisions


def covariances_dense(model):
    """Per-component (K, D, D) covariances for any covariance_type."""
    K, D = model.means_.shape
    cov = np.asarray(model.covariances_)
    if model.covariance_type == "full":
        return cov
    if model.covariance_type == "tied":
        return np.repeat(cov[None], K, axis=0)
    if model.covariance_type == "diag":
        return np.stack([np.diag(c) for c in cov])
    return np.stack([np.eye(D) * c for c in cov])


# ---------------------------------------------------------------------------
# scikit-learn parity
# ---------------------------------------------------------------------------
@pytest.mark.reference
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_matches_sklearn_from_the_same_initial_parameters(covariance_type):
    mixture = require("sklearn.mixture")
    rng = np.random.default_rng(0)
    X = blobs(rng)
    w0, m0, p0 = random_start(rng, X, 3, covariance_type)
    kwargs = dict(n_components=3, covariance_type=covariance_type, weights_init=w0,
                  means_init=m0, precisions_init=p0, max_iter=40, tol=1e-6, reg_covar=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = mixture.GaussianMixture(**kwargs).fit(X)
        ours = GaussianMixture(**kwargs).fit(X)
    assert ours.n_iter_ == ref.n_iter_
    assert ours.converged_ == ref.converged_
    assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=1e-8)
    assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-8)
    assert_allclose(ours.weights_, ref.weights_, rtol=1e-8)
    assert_allclose(ours.means_, ref.means_, rtol=1e-8, atol=1e-12)
    assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-8, atol=1e-12)
    assert_allclose(ours.precisions_cholesky_, ref.precisions_cholesky_, rtol=1e-7, atol=1e-10)
    assert_allclose(ours.precisions_, ref.precisions_, rtol=1e-7, atol=1e-10)
    X_new = blobs(np.random.default_rng(1), N=50)
    assert_allclose(ours.score_samples(X_new), ref.score_samples(X_new), rtol=1e-8)
    assert_allclose(ours.predict_proba(X_new), ref.predict_proba(X_new), rtol=1e-6, atol=1e-10)
    np.testing.assert_array_equal(ours.predict(X_new), ref.predict(X_new))
    assert_allclose(ours.bic(X_new), ref.bic(X_new), rtol=1e-8)
    assert_allclose(ours.aic(X_new), ref.aic(X_new), rtol=1e-8)


def test_sklearn_one_hot_start_convention_gives_reg_covar_covariances():
    """A one-hot start at K data points (random_from_data, k-means++): means = the
    points, covariances = reg_covar I, weights = 1/N each (not renormalised), as in
    scikit-learn's _initialize."""
    rng = np.random.default_rng(3)
    X = blobs(rng, N=60)
    model = GaussianMixture(n_components=3, init_params="random_from_data", random_state=0,
                            reg_covar=1e-3)
    _, Xc = model._validate_X(X, fitting=True)
    import array_api_compat.numpy as xp

    weights, means, prec_chol, cov = model._initialize(xp, Xc, np.random.default_rng(0), {})
    # raw second moments leave round-off of order eps * |x|^2 off the diagonal
    assert_allclose(cov, np.broadcast_to(np.eye(3) * 1e-3, (3, 3, 3)), rtol=1e-6, atol=1e-10)
    assert_allclose(weights, np.full(3, 1.0 / 60), rtol=1e-12)
    # each mean is one data point (up to the 10 eps added to N_k)
    distances = np.abs(X[None, :, :] - means[:, None, :]).max(axis=2)  # (K, N)
    assert np.all(distances.min(axis=1) < 1e-12)


# ---------------------------------------------------------------------------
# meaning: the first bound is log p(X) at the initial parameters; hand densities
# ---------------------------------------------------------------------------
def mixture_log_density(X, weights, means, covariances):
    """log sum_k pi_k N(x | mu_k, Sigma_k) written out with slogdet/solve."""
    D = X.shape[1]
    columns = []
    for w, mu, cov in zip(weights, means, covariances):
        diff = X - mu
        _, logdet = np.linalg.slogdet(cov)
        maha = np.sum(diff * np.linalg.solve(cov, diff.T).T, axis=1)
        columns.append(math.log(w) - 0.5 * (D * math.log(2 * math.pi) + logdet + maha))
    columns = np.stack(columns, axis=1)
    top = columns.max(axis=1)
    return top + np.log(np.exp(columns - top[:, None]).sum(axis=1))


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_first_bound_is_the_log_likelihood_of_the_initial_parameters(covariance_type):
    rng = np.random.default_rng(4)
    X = blobs(rng, N=80)
    w0, m0, p0 = random_start(rng, X, 3, covariance_type)
    model = GaussianMixture(n_components=3, covariance_type=covariance_type, weights_init=w0,
                            means_init=m0, precisions_init=p0, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(X)
    if covariance_type == "full":
        p_dense = p0
    elif covariance_type == "tied":
        p_dense = np.repeat(p0[None], 3, axis=0)
    elif covariance_type == "diag":
        p_dense = np.stack([np.diag(p) for p in p0])
    else:
        p_dense = np.stack([np.eye(3) * p for p in p0])
    expected = mixture_log_density(X, w0, m0, np.linalg.inv(p_dense)).mean()
    assert_allclose(model.lower_bounds_[0], expected, rtol=1e-12)


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_score_samples_and_predict_proba_match_dense_formulas(covariance_type):
    rng = np.random.default_rng(5)
    X = blobs(rng, N=100)
    model = GaussianMixture(n_components=3, covariance_type=covariance_type, random_state=0).fit(X)
    dense = covariances_dense(model)
    log_p = mixture_log_density(X, model.weights_, model.means_, dense)
    assert_allclose(model.score_samples(X), log_p, rtol=1e-11)
    assert_allclose(model.score(X), log_p.mean(), rtol=1e-11)
    # Bayes' rule by hand for the responsibilities of component 0
    diff = X - model.means_[0]
    _, logdet = np.linalg.slogdet(dense[0])
    log_joint0 = (math.log(model.weights_[0]) - 0.5 * (3 * math.log(2 * math.pi) + logdet
                  + np.sum(diff * np.linalg.solve(dense[0], diff.T).T, axis=1)))
    assert_allclose(model.predict_proba(X)[:, 0], np.exp(log_joint0 - log_p), rtol=1e-9, atol=1e-14)
    assert_allclose(model.predict_proba(X).sum(axis=1), 1.0, rtol=1e-12)


def test_m_step_with_one_component_is_the_sample_mean_and_biased_covariance():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(50, 4)) @ rng.normal(size=(4, 4)) + 2.0
    resp = np.ones((50, 1))
    stats = gmm._statistics_from_resp(np, X, resp, "full")
    weights, means, covariances = gmm.m_step(stats, "full", reg_covar=0.0)
    assert_allclose(weights, [1.0], rtol=1e-14)
    assert_allclose(means[0], X.mean(axis=0), rtol=1e-12)
    assert_allclose(covariances[0], np.cov(X, rowvar=False, bias=True), rtol=1e-10)


# ---------------------------------------------------------------------------
# EM: monotone bound; additive statistics; fast path == generic path
# ---------------------------------------------------------------------------
@settings(max_examples=15)
@given(seed=st.integers(0, 2 ** 31 - 1), K=st.integers(1, 4), D=st.integers(1, 4),
       covariance_type=st.sampled_from(COVARIANCE_TYPES),
       init_params=st.sampled_from(["random", "kmeans"]))
def test_em_bound_never_decreases(seed, K, D, covariance_type, init_params):
    """Exact EM (reg_covar=0) never lowers log p(X).  (A positive reg_covar adds a
    constant after the maximisation, which can lower it by O(reg_covar) near the
    optimum, in scikit-learn too; hence reg_covar=0 here.)"""
    rng = np.random.default_rng(seed)
    X = blobs(rng, N=int(rng.integers(40, 90)), D=D, K=K, spread=float(rng.uniform(0.5, 4.0)))
    model = GaussianMixture(n_components=K, covariance_type=covariance_type, max_iter=25, tol=0.0,
                            init_params=init_params, random_state=seed, reg_covar=0.0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            model.fit(X)
    except ValueError as exc:  # a component collapsed onto <= D points: no maximum exists
        assert "positive" in str(exc)
        assume(False)
    # A component that collapsed onto a single point has a variance of pure
    # round-off (~1e-14): the likelihood is unbounded there and its trajectory is
    # noise, not EM.  Such draws are degenerate, not counterexamples.
    cov = np.asarray(model.covariances_, dtype=np.float64)
    if covariance_type in ("full", "tied"):
        smallest = np.min(np.linalg.eigvalsh(cov))
    else:
        smallest = np.min(cov)
    assume(smallest > 1e-8 * float(np.var(X)))
    bounds = np.asarray(model.lower_bounds_)
    assert len(bounds) == 25
    steps = np.diff(bounds)
    assert np.all(steps >= -1e-12 * np.abs(bounds[1:])), steps.min()
    assert model.monitor_.n_decreases == 0


@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_statistics_of_two_halves_add_up_to_the_whole(covariance_type):
    rng = np.random.default_rng(7)
    X = blobs(rng, N=101)
    w0, m0, p0 = random_start(rng, X, 3, covariance_type)
    U = gmm.precision_cholesky_from_precisions(p0, covariance_type)
    whole, ll = gmm.e_step(X, w0, m0, U, covariance_type)
    first, ll1 = gmm.e_step(X[:40], w0, m0, U, covariance_type)
    second, ll2 = gmm.e_step(X[40:], w0, m0, U, covariance_type)
    summed = first + second
    assert set(summed) == set(whole)
    for key in whole:
        assert_allclose(summed[key], whole[key], rtol=1e-12, atol=1e-12)
    assert_allclose(ll1 + ll2, ll, rtol=1e-13)
    params = gmm.m_step(summed, covariance_type, 1e-6)
    for a, b in zip(params, gmm.m_step(whole, covariance_type, 1e-6)):
        assert_allclose(a, b, rtol=1e-11)


@settings(max_examples=10)
@given(seed=st.integers(0, 2 ** 31 - 1), K=st.integers(1, 5), D=st.integers(1, 6),
       N=st.integers(1, 5000))
def test_blocked_numba_full_e_step_equals_generic_path(seed, K, D, N):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(N, D)) * 2.0 + 1.0
    w0, m0, p0 = random_start(rng, np.vstack([X, rng.normal(size=(K, D))]), K, "full")
    U = gmm.precision_cholesky_from_precisions(p0, "full")
    fast, ll_fast = gmm.e_step(X, w0, m0, U, "full", fast=True)
    slow, ll_slow = gmm.e_step(X, w0, m0, U, "full", fast=False)
    assert_allclose(ll_fast, ll_slow, rtol=1e-12)
    for key in slow:
        assert_allclose(fast[key], slow[key], rtol=1e-10, atol=1e-10 * N)


# ---------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_sample_moments(covariance_type):
    rng = np.random.default_rng(8)
    X = blobs(rng, N=120, D=2, K=2, spread=6.0)
    model = GaussianMixture(n_components=2, covariance_type=covariance_type, random_state=0).fit(X)
    n = 40_000
    S, y = model.sample(n, random_state=0)
    assert S.shape == (n, 2) and y.shape == (n,)
    counts = np.bincount(y, minlength=2) / n
    # binomial standard error sqrt(p(1-p)/n) <= 0.0025: 5 sigma
    assert_allclose(counts, model.weights_, atol=0.0125)
    dense = covariances_dense(model)
    for k in range(2):
        Sk = S[y == k]
        se = np.sqrt(np.diag(dense[k]) / len(Sk))
        assert np.all(np.abs(Sk.mean(axis=0) - model.means_[k]) < 5 * se)
        assert_allclose(np.cov(Sk, rowvar=False), dense[k], rtol=0.08, atol=0.05 * np.abs(dense[k]).max())
    S2, y2 = model.sample(n, random_state=0)
    np.testing.assert_array_equal(S, S2)


# ---------------------------------------------------------------------------
# initialisations, n_init, hyper-parameters
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("init_params", ["kmeans++", "k-means++", "random", "random_from_data", "kmeans"])
def test_every_initialisation_fits_and_is_reproducible(init_params):
    X = blobs(np.random.default_rng(9), N=150, spread=8.0)
    a = GaussianMixture(n_components=3, init_params=init_params, random_state=0).fit(X)
    b = GaussianMixture(n_components=3, init_params=init_params, random_state=0).fit(X)
    assert_allclose(a.lower_bound_, b.lower_bound_, rtol=0, atol=0)
    assert a.converged_ and np.isfinite(a.lower_bound_)
    assert_allclose(a.weights_.sum(), 1.0, rtol=1e-12)


def test_n_init_keeps_the_best_run():
    X = blobs(np.random.default_rng(10), N=150, K=4, spread=2.0)
    many = GaussianMixture(n_components=4, init_params="random", n_init=4, random_state=11).fit(X)
    rng = np.random.default_rng(11)
    bounds = []
    for _ in range(4):  # the same stream of starts, one at a time
        model = GaussianMixture(n_components=4, init_params="random", random_state=rng).fit(X)
        bounds.append(model.lower_bound_)
    assert_allclose(many.lower_bound_, max(bounds), rtol=1e-12)


def test_get_set_params_and_repr():
    model = GaussianMixture(n_components=3, covariance_type="diag")
    assert model.get_params()["n_components"] == 3
    model.set_params(tol=1e-5)
    assert model.tol == 1e-5 and "diag" in repr(model)


def test_float32_dtype_is_kept():
    X = blobs(np.random.default_rng(12), N=90).astype(np.float32)
    model = GaussianMixture(n_components=2, dtype="float32", random_state=0, reg_covar=1e-3).fit(X)
    assert model.means_.dtype == np.float32 and model.covariances_.dtype == np.float32
    assert model.score_samples(X).dtype == np.float32


# ---------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------
def test_bad_input_raises_clear_errors():
    X = blobs(np.random.default_rng(13), N=30)
    with pytest.raises(ValueError, match="2 dimension"):
        GaussianMixture().fit(X[:, 0])
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        GaussianMixture().fit(X_nan)
    with pytest.raises(ValueError, match="at least 1 row"):
        GaussianMixture().fit(np.empty((0, 3)))
    with pytest.raises(ValueError, match="n_components=40 must be <= n_samples=30"):
        GaussianMixture(n_components=40).fit(X)
    with pytest.raises(ValueError, match="covariance_type"):
        GaussianMixture(covariance_type="banded").fit(X)
    with pytest.raises(ValueError, match="init_params"):
        GaussianMixture(init_params="best").fit(X)
    with pytest.raises(ValueError, match=r"means_init must have shape \(2, 3\)"):
        GaussianMixture(n_components=2, means_init=np.zeros((2, 4))).fit(X)
    with pytest.raises(ValueError, match="weights_init"):
        GaussianMixture(n_components=2, weights_init=[0.7, 0.7]).fit(X)
    with pytest.raises(ValueError, match="positive definite"):
        GaussianMixture(n_components=1, precisions_init=-np.eye(3)[None]).fit(X)
    with pytest.raises(NotFittedError, match="not fitted"):
        GaussianMixture().score_samples(X)
    with pytest.raises(TypeError, match="n_components"):
        GaussianMixture(n_components=2.5).fit(X)
    model = GaussianMixture(n_components=2, random_state=0).fit(X)
    with pytest.raises(ValueError, match="3 features"):
        model.predict(X[:, :2])
    X_before = X.copy()
    model.fit(X)
    np.testing.assert_array_equal(X, X_before)  # the caller's array is untouched


# ---------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("covariance_type", COVARIANCE_TYPES)
def test_backends_agree_with_numpy(backend64, covariance_type):
    rng = np.random.default_rng(14)
    X = blobs(rng, N=60)
    w0, m0, p0 = random_start(rng, X, 3, covariance_type)
    kwargs = dict(n_components=3, covariance_type=covariance_type, max_iter=6, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = GaussianMixture(weights_init=w0, means_init=m0, precisions_init=p0, **kwargs).fit(X)
        ours = GaussianMixture(weights_init=backend64.asarray(w0), means_init=backend64.asarray(m0),
                               precisions_init=backend64.asarray(p0), **kwargs).fit(backend64.asarray(X))
    assert_allclose(ours.lower_bounds_, ref.lower_bounds_, rtol=1e-10)
    assert_allclose(backend64.to_numpy(ours.means_), ref.means_, rtol=1e-9, atol=1e-12)
    assert_allclose(backend64.to_numpy(ours.covariances_), ref.covariances_, rtol=1e-9, atol=1e-12)
    Xd = backend64.asarray(X[:10])
    log_p = ours.score_samples(Xd)
    assert type(log_p) is type(Xd)
    assert_allclose(backend64.to_numpy(log_p), ref.score_samples(X[:10]), rtol=1e-10)
    assert_allclose(backend64.to_numpy(ours.predict_proba(Xd)), ref.predict_proba(X[:10]),
                    rtol=1e-8, atol=1e-12)
    S, y = ours.sample(5, random_state=0)
    assert type(S) is type(Xd) and S.shape == (5, 3) and y.shape == (5,)


def test_kmeans_initialisation_runs_on_the_simulated_device(backend64):
    X = blobs(np.random.default_rng(15), N=60, spread=8.0)
    a = GaussianMixture(n_components=3, init_params="kmeans", random_state=0).fit(backend64.asarray(X))
    b = GaussianMixture(n_components=3, init_params="kmeans", random_state=0).fit(X)
    assert_allclose(a.lower_bound_, b.lower_bound_, rtol=1e-9)
