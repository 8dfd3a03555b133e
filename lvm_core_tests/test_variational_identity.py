"""The variational identity log sum_z g = max_q [sum q log g - sum q log q] (seed 000,
sec. 1.a) and its consequence ELBO <= log p(x), tight at the exact posterior, for a
Gaussian mixture, factor analysis and a hidden Markov model (Neal & Hinton 1998;
Bishop PRML sec. 9.4; Rabiner 1989 for the HMM recursions used as references).
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from numpy.testing import assert_allclose

from lvm_core.variational import elbo_discrete, log_normalizer, optimal_q, variational_gap

from .conftest import require


# ----------------------------------------------------------------------------
# strategies: g in log space (some zeros), q on the simplex (some zeros)
# ----------------------------------------------------------------------------
@st.composite
def log_g_and_q(draw, max_n=3, max_k=8):
    N = draw(st.integers(1, max_n))
    K = draw(st.integers(1, max_k))
    log_g = draw(hnp.arrays(np.float64, (N, K), elements=st.floats(-60.0, 60.0)))
    zero_g = draw(hnp.arrays(np.bool_, (N, K)))
    keep = np.argmax(log_g, axis=1)  # every row keeps at least one g(z) > 0
    zero_g[np.arange(N), keep] = False
    log_g = np.where(zero_g, -np.inf, log_g)
    w = draw(hnp.arrays(np.float64, (N, K), elements=st.floats(0.0, 1.0)))
    w = np.where(zero_g, 0.0, w)  # q puts no mass where g = 0 (else Q = -inf)
    w[np.arange(N), keep] += 1e-3
    q = w / w.sum(axis=1, keepdims=True)
    return log_g, q


def reference_kl(q, log_g):
    """KL(q || g / sum g) with scipy (an independent implementation)."""
    special = require("scipy.special")
    q_star = np.exp(log_g - special.logsumexp(log_g, axis=-1, keepdims=True))
    return special.rel_entr(q, q_star).sum(axis=-1)


# ----------------------------------------------------------------------------
# the identity itself
# ----------------------------------------------------------------------------
@settings(max_examples=30)
@given(data=log_g_and_q())
def test_bound_holds_for_any_q_and_gap_is_kl(data):
    log_g, q = data
    Q = elbo_discrete(log_g, q)
    log_Z = log_normalizer(log_g)
    scale = 1e-12 * np.max(np.abs(np.where(np.isfinite(log_g), log_g, 0.0))) + 1e-12
    assert np.all(Q <= log_Z + scale)
    gap = variational_gap(log_g, q)
    assert np.all(gap >= -scale)
    assert_allclose(log_Z - Q, gap, rtol=1e-9, atol=1e-9 + 10 * scale)
    assert_allclose(gap, reference_kl(q, log_g), rtol=1e-7, atol=1e-9 + 10 * scale)


@settings(max_examples=30)
@given(data=log_g_and_q())
def test_equality_exactly_at_q_star(data):
    log_g, _ = data
    q_star = optimal_q(log_g)
    assert_allclose(q_star.sum(axis=1), 1.0, rtol=1e-12)
    log_Z = log_normalizer(log_g)
    special = require("scipy.special")
    # log-sum-exp is accurate to ~eps times the size of its inputs (absolute)
    scale = max(1.0, float(np.max(np.abs(log_g[np.isfinite(log_g)]))))
    assert_allclose(log_Z, special.logsumexp(log_g, axis=1), rtol=1e-12, atol=1e-13 * scale)
    assert_allclose(elbo_discrete(log_g, q_star), log_Z, rtol=1e-12, atol=1e-12 * scale)
    assert_allclose(variational_gap(log_g, q_star), 0.0, atol=1e-12 * scale)
    # q* is proportional to g: q*_z / q*_z' = g(z) / g(z')
    finite = np.isfinite(log_g)
    assert np.all(q_star[~finite] == 0.0)
    ref = np.argmax(log_g, axis=1)
    log_ratio = np.log(q_star, where=finite, out=np.full_like(q_star, -np.inf)) \
        - np.log(q_star[np.arange(len(ref)), ref])[:, None]
    assert_allclose(log_ratio[finite], (log_g - log_g[np.arange(len(ref)), ref][:, None])[finite],
                    atol=1e-9)


@settings(max_examples=20)
@given(K=st.integers(2, 6), seed=st.integers(0, 2 ** 31 - 1))
def test_q_star_is_the_stationary_point_on_the_simplex(K, seed):
    """The seed's Lagrangian step: dQ/dq_j = log g_j - log q_j - 1 is the same for
    every j at q* (so Q is flat along any direction v with sum v = 0); elsewhere the
    directional derivative is sum_j v_j (log g_j - log q_j)."""
    rng = np.random.default_rng(seed)
    log_g = rng.uniform(-4.0, 4.0, size=(1, K))
    v = rng.standard_normal((1, K))
    v -= v.mean()  # tangent to the simplex
    q_star = optimal_q(log_g)
    q = rng.dirichlet(np.ones(K))[None, :] * 0.8 + 0.2 / K
    for point, expected in ((q_star, 0.0), (q, float(np.sum(v * (log_g - np.log(q)))))):
        h = 1e-3 * float(np.min(point)) / float(np.max(np.abs(v)))  # central difference step
        d_num = (elbo_discrete(log_g, point + h * v)[0] - elbo_discrete(log_g, point - h * v)[0]) / (2 * h)
        assert abs(d_num - expected) < 1e-5 * max(1.0, abs(expected))
    assert abs(float(np.sum(v * (log_g - np.log(q))))) > 1e-3  # q is not stationary
    # and q* is a maximum: a step along v lowers Q by ~ 1/2 v^T diag(1/q*) v h^2
    step = 1e-3 * min(1.0, float(np.min(q_star)) / float(np.max(np.abs(v))))
    assert elbo_discrete(log_g, q_star + step * v)[0] < elbo_discrete(log_g, q_star)[0]


def test_hand_computed_values():
    """g = (1, 3), q = (1/2, 1/2): Q = 1/2 log 3 + log 2, log Z = log 4,
    gap = KL((1/2, 1/2) || (1/4, 3/4)) = 1/2 log(4/3)."""
    log_g = np.log([[1.0, 3.0]])
    q = np.array([[0.5, 0.5]])
    assert_allclose(elbo_discrete(log_g, q), [0.5 * np.log(3.0) + np.log(2.0)], rtol=1e-15)
    assert_allclose(log_normalizer(log_g), [np.log(4.0)], rtol=1e-15)
    assert_allclose(variational_gap(log_g, q), [0.5 * np.log(4.0 / 3.0)], rtol=1e-14)
    assert_allclose(optimal_q(log_g), [[0.25, 0.75]], rtol=1e-15)
    # zeros: 0 log 0 = 0, and mass on a z with g(z) = 0 makes Q = -inf
    log_g0 = np.array([[0.0, -np.inf, np.log(2.0)]])
    assert_allclose(elbo_discrete(log_g0, np.array([[1.0, 0.0, 0.0]])), [0.0], atol=0)
    assert elbo_discrete(log_g0, np.array([[0.5, 0.5, 0.0]]))[0] == -np.inf
    assert_allclose(log_normalizer(log_g0), [np.log(3.0)], rtol=1e-15)


def test_axis_argument_reduces_the_right_axis():
    rng = np.random.default_rng(0)
    log_g = rng.standard_normal((4, 3))
    q = rng.dirichlet(np.ones(4), size=3).T  # columns on the simplex
    assert_allclose(elbo_discrete(log_g, q, axis=0), elbo_discrete(log_g.T, q.T), rtol=1e-14)
    assert_allclose(log_normalizer(log_g, axis=0), log_normalizer(log_g.T), rtol=1e-14)


def test_backends_agree_and_keep_dtype(backend):
    rng = np.random.default_rng(1)
    log_g = rng.uniform(-10, 10, size=(3, 5))
    q = rng.dirichlet(np.ones(5), size=3)
    lg, qb = backend.asarray(log_g), backend.asarray(q)
    rtol = 1e-5 if backend.dtype_name == "float32" else 1e-12
    for fn, args, ref_args in ((elbo_discrete, (lg, qb), (log_g, q)),
                               (variational_gap, (lg, qb), (log_g, q)),
                               (log_normalizer, (lg,), (log_g,)),
                               (optimal_q, (lg,), (log_g,))):
        out = fn(*args)
        assert out.dtype == backend.dtype
        assert_allclose(backend.to_numpy(out), fn(*ref_args), rtol=rtol, atol=rtol)


@pytest.mark.parametrize("log_g, q, exc, match", [
    (np.zeros((2, 3)), np.full((2, 2), 0.5), ValueError, "shape"),
    (np.zeros((1, 3)), np.array([[0.5, 0.6, 0.0]]), ValueError, "sum to 1"),
    (np.zeros((1, 2)), np.array([[1.5, -0.5]]), ValueError, "non-negative"),
    (np.array([[0.0, np.nan]]), np.array([[0.5, 0.5]]), ValueError, "NaN"),
    (np.array([[0.0, np.inf]]), np.array([[0.5, 0.5]]), ValueError, r"\+inf"),
    (np.array([[0, 1]]), np.array([[0.5, 0.5]]), TypeError, "floating"),
])
def test_bad_inputs_raise_clear_errors(log_g, q, exc, match):
    with pytest.raises(exc, match=match):
        elbo_discrete(log_g, q)


def test_inputs_are_not_mutated():
    log_g = np.array([[0.0, -np.inf, 1.0]])
    q = np.array([[0.3, 0.0, 0.7]])
    lg0, q0 = log_g.copy(), q.copy()
    elbo_discrete(log_g, q), variational_gap(log_g, q), optimal_q(log_g)
    assert np.array_equal(log_g, lg0) and np.array_equal(q, q0)


# ----------------------------------------------------------------------------
# Gaussian mixture: z = component, g(k) = pi_k N(x; mu_k, Sigma_k)
# ----------------------------------------------------------------------------
def random_gmm(rng, K, D):
    weights = rng.dirichlet(np.ones(K))
    means = rng.standard_normal((K, D)) * 2.0
    A = rng.standard_normal((K, D, D))
    covariances = A @ np.transpose(A, (0, 2, 1)) + 0.5 * np.eye(D)
    return weights, means, covariances


def gmm_log_joint(X, weights, means, covariances):
    """log g(x, k) = log pi_k + log N(x; mu_k, Sigma_k), (N, K), via Cholesky factors."""
    N, D = X.shape
    out = np.empty((N, len(weights)))
    for k, (w, mu, cov) in enumerate(zip(weights, means, covariances)):
        C = np.linalg.cholesky(cov)
        y = np.linalg.solve(C, (X - mu).T)  # (D, N)
        out[:, k] = (np.log(w) - 0.5 * D * np.log(2 * np.pi) - np.sum(np.log(np.diag(C)))
                     - 0.5 * np.sum(y * y, axis=0))
    return out


@settings(max_examples=15)
@given(K=st.integers(1, 5), D=st.integers(1, 4), seed=st.integers(0, 2 ** 31 - 1))
def test_gmm_elbo_bounds_evidence_and_is_tight_at_responsibilities(K, D, seed):
    stats = require("scipy.stats")
    rng = np.random.default_rng(seed)
    weights, means, covariances = random_gmm(rng, K, D)
    X = rng.standard_normal((6, D)) * 3.0
    log_g = gmm_log_joint(X, weights, means, covariances)
    # reference for log p(x): the mixture density summed directly (scipy)
    dens = sum(w * stats.multivariate_normal(m, c).pdf(X).reshape(-1)
               for w, m, c in zip(weights, means, covariances))
    log_px = log_normalizer(log_g)
    assert_allclose(log_px, np.log(dens), rtol=1e-9)
    q = rng.dirichlet(np.ones(K), size=6)
    assert np.all(elbo_discrete(log_g, q) <= log_px + 1e-9)
    resp = optimal_q(log_g)  # the E-step: p(k | x)
    assert_allclose(resp, (np.exp(log_g).T / dens).T, rtol=1e-7, atol=1e-12)
    assert_allclose(elbo_discrete(log_g, resp), log_px, rtol=1e-12, atol=1e-10)


@pytest.mark.reference
def test_gmm_evidence_matches_sklearn_score_samples():
    mixture = require("sklearn.mixture")
    rng = np.random.default_rng(3)
    weights, means, covariances = random_gmm(rng, 3, 2)
    X = rng.standard_normal((10, 2)) * 2.0
    ref = mixture.GaussianMixture(n_components=3, covariance_type="full")
    ref.weights_, ref.means_, ref.covariances_ = weights, means, covariances
    ref.precisions_cholesky_ = np.linalg.cholesky(np.linalg.inv(covariances))
    log_g = gmm_log_joint(X, weights, means, covariances)
    assert_allclose(log_normalizer(log_g), ref.score_samples(X), rtol=1e-10)
    q_star = optimal_q(log_g)
    assert_allclose(q_star, ref.predict_proba(X), rtol=1e-8, atol=1e-12)
    assert_allclose(elbo_discrete(log_g, q_star), ref.score_samples(X), rtol=1e-10)


def test_gmm_identity_matches_the_gaussian_mixture_model():
    """Q(q*) = log p(x) from our own log g equals GaussianMixture.score_samples, and
    q* equals its predict_proba (the E-step)."""
    from lvm_core.models import gmm
    rng = np.random.default_rng(7)
    weights, means, covariances = random_gmm(rng, 3, 2)
    X = rng.standard_normal((12, 2)) * 2.0
    model = gmm.GaussianMixture(n_components=3, covariance_type="full")
    model.weights_, model.means_, model.covariances_ = weights, means, covariances
    model.precisions_cholesky_ = gmm.compute_precision_cholesky(covariances, "full")
    model.precisions_ = np.linalg.inv(covariances)
    log_g = gmm_log_joint(X, weights, means, covariances)
    q_star = optimal_q(log_g)
    assert_allclose(elbo_discrete(log_g, q_star), model.score_samples(X), rtol=1e-10)
    assert_allclose(q_star, model.predict_proba(X), rtol=1e-8, atol=1e-12)
    q = rng.dirichlet(np.ones(3), size=12)
    assert np.all(elbo_discrete(log_g, q) <= model.score_samples(X) + 1e-10)


# ----------------------------------------------------------------------------
# factor analysis: continuous z, q in AEVB's Gaussian family
# ----------------------------------------------------------------------------
@settings(max_examples=15)
@given(D=st.integers(1, 5), L=st.integers(1, 3), seed=st.integers(0, 2 ** 31 - 1))
def test_fa_elbo_bounds_evidence_and_is_tight_at_posterior(D, L, seed):
    from lvm_core.models.aevb_fa import AEVBFactorAnalysis

    rng = np.random.default_rng(seed)
    model = AEVBFactorAnalysis(D, L, random_state=seed)
    model.params["U"] = np.triu(rng.standard_normal((L, L))) + np.diag(rng.uniform(0.3, 1.0, L))
    X = rng.standard_normal((5, D)) * 2.0
    evidence = model.log_evidence(X)
    assert np.all(model.exact_elbo(X) <= evidence + 1e-9)
    model.params.update(model.exact_q_params())
    assert_allclose(model.exact_elbo(X), evidence, rtol=1e-10, atol=1e-9)


@pytest.mark.reference
def test_fa_evidence_matches_sklearn_factor_analysis():
    decomposition = require("sklearn.decomposition")
    from lvm_core.functional import softplus
    from lvm_core.models.aevb_fa import AEVBFactorAnalysis

    model = AEVBFactorAnalysis(4, 2, random_state=5)
    X = model.sample(20, rng=0)
    ref = decomposition.FactorAnalysis(n_components=2)
    ref.components_ = model.params["W"].T
    ref.noise_variance_ = softplus(model.params["pre_sigma"]) ** 2
    ref.mean_ = np.zeros(4)
    assert_allclose(model.log_evidence(X), ref.score_samples(X), rtol=1e-10)
    mean, _ = model.posterior(X)
    assert_allclose(mean, ref.transform(X), rtol=1e-9, atol=1e-12)


# ----------------------------------------------------------------------------
# hidden Markov model: z = the whole state path, all K^T paths enumerated
# ----------------------------------------------------------------------------
def random_hmm(rng, K, M):
    return (rng.dirichlet(np.ones(K)), rng.dirichlet(np.ones(K), size=K),
            rng.dirichlet(np.ones(M), size=K))


def hmm_log_joint_paths(x, startprob, transmat, emissionprob):
    """All K^T paths s and log g(s) = log pi_s1 + sum_t log A_{s_t-1 s_t} + sum_t log B_{s_t x_t}."""
    K, T = len(startprob), len(x)
    paths = np.array(list(itertools.product(range(K), repeat=T)))  # (K^T, T)
    log_g = np.log(startprob[paths[:, 0]]) + np.log(emissionprob[paths[:, 0], x[0]])
    for t in range(1, T):
        log_g = log_g + np.log(transmat[paths[:, t - 1], paths[:, t]]) \
            + np.log(emissionprob[paths[:, t], x[t]])
    return paths, log_g


@settings(max_examples=15)
@given(K=st.integers(1, 3), T=st.integers(1, 5), M=st.integers(2, 4),
       seed=st.integers(0, 2 ** 31 - 1))
def test_hmm_elbo_over_paths_bounds_evidence_and_is_tight_at_posterior(K, T, M, seed):
    from lvm_core.kernels import hmm_numba, hmm_xp

    rng = np.random.default_rng(seed)
    startprob, transmat, emissionprob = random_hmm(rng, K, M)
    x = rng.integers(0, M, size=T)
    paths, log_g = hmm_log_joint_paths(x, startprob, transmat, emissionprob)
    log_g = log_g[None, :]  # (1, K^T)
    log_px = log_normalizer(log_g)[0]
    # the forward recursion (Rabiner 1989) computes the same sum over paths
    log_frameprob = np.log(emissionprob[:, x].T)  # (T, K)
    args = (np.log(startprob), np.log(transmat), log_frameprob)
    assert_allclose(log_px, hmm_numba.forward_log_prob(*args)[0], rtol=1e-10)
    assert_allclose(log_px, hmm_xp.forward_log_prob(*args)[0], rtol=1e-10)
    # any q over paths is a lower bound ...
    q = rng.dirichlet(np.full(paths.shape[0], 0.5))[None, :]
    assert elbo_discrete(log_g, q)[0] <= log_px + 1e-10
    # ... tight at the posterior over paths, whose marginals are forward-backward's
    q_star = optimal_q(log_g)
    assert_allclose(elbo_discrete(log_g, q_star)[0], log_px, rtol=1e-12, atol=1e-12)
    _, gamma, start_sum, xi_sum = hmm_numba.forward_backward(*args)
    gamma_paths = np.stack([np.bincount(paths[:, t], weights=q_star[0], minlength=K)
                            for t in range(T)])  # (T, K)
    assert_allclose(gamma, gamma_paths, rtol=1e-9, atol=1e-12)
    xi_paths = np.zeros((K, K))
    for t in range(1, T):
        np.add.at(xi_paths, (paths[:, t - 1], paths[:, t]), q_star[0])
    assert_allclose(xi_sum, xi_paths, rtol=1e-9, atol=1e-12)


def test_hmm_path_identity_matches_the_hmm_model():
    """log p(x) = max_q Q over all K^T paths equals CategoricalHMM.score, and the
    path posterior's marginals equal its predict_proba."""
    from lvm_core.models.hmm import CategoricalHMM

    rng = np.random.default_rng(6)
    startprob, transmat, emissionprob = random_hmm(rng, 3, 4)
    x = rng.integers(0, 4, size=6)
    model = CategoricalHMM(n_components=3, n_features=4)
    model.startprob_, model.transmat_, model.emissionprob_ = startprob, transmat, emissionprob
    paths, log_g = hmm_log_joint_paths(x, startprob, transmat, emissionprob)
    q_star = optimal_q(log_g[None, :])
    assert_allclose(elbo_discrete(log_g[None, :], q_star)[0], model.score(x.reshape(-1, 1)),
                    rtol=1e-10)
    gamma_paths = np.stack([np.bincount(paths[:, t], weights=q_star[0], minlength=3)
                            for t in range(len(x))])
    assert_allclose(model.predict_proba(x.reshape(-1, 1)), gamma_paths, rtol=1e-9, atol=1e-12)


@pytest.mark.reference
def test_hmm_evidence_matches_hmmlearn_score():
    hmm = require("hmmlearn.hmm")
    rng = np.random.default_rng(4)
    startprob, transmat, emissionprob = random_hmm(rng, 3, 4)
    x = rng.integers(0, 4, size=5)
    ref = hmm.CategoricalHMM(n_components=3, init_params="", params="")
    ref.n_features = 4
    ref.startprob_, ref.transmat_, ref.emissionprob_ = startprob, transmat, emissionprob
    _, log_g = hmm_log_joint_paths(x, startprob, transmat, emissionprob)
    assert_allclose(log_normalizer(log_g[None, :])[0], ref.score(x.reshape(-1, 1)), rtol=1e-10)
