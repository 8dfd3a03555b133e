"""Synthetic generators: sample moments match the returned true parameters
(GMM, Bishop 9.2; factor analysis, Bishop 12.2.4; HMM, Rabiner 1989)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_tools.synthetic import make_fa_data, make_gmm_data, make_hmm_data, random_spd


def _full_covariances(params, K, D):
    c, kind = params["covariances"], params["covariance_type"]
    if kind == "full":
        return c
    if kind == "tied":
        return np.broadcast_to(c, (K, D, D))
    if kind == "diag":
        return np.stack([np.diag(v) for v in c])
    return c[:, None, None] * np.eye(D)


@pytest.mark.parametrize("covariance_type", ["full", "diag", "spherical", "tied"])
def test_gmm_sample_moments(covariance_type):
    K, D, N = 3, 2, 30000
    weights = np.array([0.5, 0.3, 0.2])
    X, labels, params = make_gmm_data(N, K, D, covariance_type, weights=weights, random_state=0)
    assert X.shape == (N, D) and labels.shape == (N,) and labels.dtype == np.int64
    np.testing.assert_array_equal(params["weights"], weights)
    freq = np.bincount(labels, minlength=K) / N
    np.testing.assert_allclose(freq, weights, atol=4 * np.sqrt(0.25 / N))
    cov = _full_covariances(params, K, D)
    for k in range(K):
        Xk = X[labels == k]
        nk = Xk.shape[0]
        se = np.sqrt(np.diag(cov[k]) / nk)
        np.testing.assert_allclose(Xk.mean(axis=0), params["means"][k], atol=float(5 * se.max()))
        np.testing.assert_allclose(np.cov(Xk.T), cov[k], atol=6 * float(cov[k].max()) / np.sqrt(nk))


@settings(max_examples=15)
@given(K=st.integers(1, 4), D=st.integers(1, 4), seed=st.integers(0, 2**31),
       covariance_type=st.sampled_from(["full", "diag", "spherical", "tied"]))
def test_gmm_shapes_and_valid_covariances(K, D, seed, covariance_type):
    X, labels, params = make_gmm_data(20, K, D, covariance_type, random_state=seed)
    assert X.shape == (20, D) and np.all((0 <= labels) & (labels < K))
    expected = {"full": (K, D, D), "diag": (K, D), "spherical": (K,), "tied": (D, D)}
    assert params["covariances"].shape == expected[covariance_type]
    for c in _full_covariances(params, K, D):
        np.testing.assert_allclose(c, c.T, atol=1e-12)
        assert np.linalg.eigvalsh(c).min() > 0
    X2, _, _ = make_gmm_data(20, K, D, covariance_type, random_state=seed)
    np.testing.assert_array_equal(X, X2)  # reproducible


def test_random_spd_spectrum():
    S = random_spd(0, 5, scale=2.0, min_eig=0.5)
    eig = np.linalg.eigvalsh(S)
    assert eig.min() >= 1.0 - 1e-12 and eig.max() <= 2.0 + 1e-12


@pytest.mark.parametrize("noise", ["diag", "isotropic"])
def test_fa_sample_covariance_is_WWT_plus_psi(noise):
    N, D, L = 40000, 6, 2
    X, Z, params = make_fa_data(N, D, L, noise=noise, random_state=0)
    W, psi, mu = params["W"], params["noise_var"], params["mean"]
    assert W.shape == (D, L) and psi.shape == (D,) and mu.shape == (D,) and Z.shape == (N, L)
    if noise == "isotropic":
        assert np.all(psi == psi[0])
    C = W @ W.T + np.diag(psi)
    np.testing.assert_allclose(params["covariance"], C, rtol=1e-12)
    np.testing.assert_allclose(X.mean(axis=0), mu, atol=5 * np.sqrt(np.diag(C).max() / N))
    np.testing.assert_allclose(np.cov(X.T), C, atol=6 * np.diag(C).max() / np.sqrt(N))
    # The noise is what is left: x - W z - mu has covariance diag(psi).
    resid = X - Z @ W.T - mu
    np.testing.assert_allclose(resid.var(axis=0), psi, rtol=6 * np.sqrt(2 / N))
    np.testing.assert_allclose(np.cov(Z.T), np.eye(L), atol=6 / np.sqrt(N))


def test_fa_errors():
    with pytest.raises(ValueError, match="n_latent.*must not exceed"):
        make_fa_data(10, 2, 3)
    with pytest.raises(ValueError, match="n_samples must be a positive int"):
        make_fa_data(0, 2, 1)


def _transition_counts(states, lengths, K):
    counts = np.zeros((K, K))
    start = 0
    for n in lengths:
        s = states[start : start + n]
        np.add.at(counts, (s[:-1], s[1:]), 1)
        start += n
    return counts


@pytest.mark.parametrize("emission", ["gaussian", "categorical", "poisson"])
def test_hmm_sample_statistics(emission):
    K, D = 3, 4
    lengths_in = [300] * 100 + [150] * 100
    X, lengths, states, params = make_hmm_data(200, lengths_in, K, emission, n_features=D,
                                               random_state=0)
    T = sum(lengths_in)
    np.testing.assert_array_equal(lengths, lengths_in)
    assert states.shape == (T,) and states.dtype == np.int64
    A = params["transmat"]
    np.testing.assert_allclose(A.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(params["startprob"].sum(), 1.0, rtol=1e-12)
    counts = _transition_counts(states, lengths, K)
    A_hat = counts / counts.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(A_hat, A, atol=5 * 0.5 / np.sqrt(counts.sum(axis=1).min()))
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    first = np.bincount(states[starts], minlength=K) / len(lengths)
    np.testing.assert_allclose(first, params["startprob"], atol=5 * 0.5 / np.sqrt(len(lengths)))
    for k in range(K):
        Xk = X[states == k]
        nk = Xk.shape[0]
        if emission == "gaussian":
            assert X.shape == (T, D) and X.dtype == np.float64
            np.testing.assert_allclose(Xk.mean(axis=0), params["means"][k], atol=5 / np.sqrt(nk))
            np.testing.assert_allclose(Xk.var(axis=0), params["covars"][k], rtol=6 * np.sqrt(2 / nk))
        elif emission == "categorical":
            assert X.shape == (T, 1) and X.dtype == np.int64
            freq = np.bincount(Xk[:, 0], minlength=D) / nk
            np.testing.assert_allclose(freq, params["emissionprob"][k], atol=5 * 0.5 / np.sqrt(nk))
        else:
            assert X.shape == (T, D) and X.dtype == np.int64
            lam = params["lambdas"][k]
            np.testing.assert_allclose(Xk.mean(axis=0), lam, atol=float(5 * np.sqrt(lam.max() / nk)))
            np.testing.assert_allclose(Xk.var(axis=0), lam, rtol=0.1)  # Poisson: var == mean


def test_hmm_reproducible_and_errors():
    a = make_hmm_data(3, 20, 2, "categorical", n_features=5, random_state=0)
    b = make_hmm_data(3, 20, 2, "categorical", n_features=5, random_state=0)
    for u, v in zip(a[:3], b[:3]):
        np.testing.assert_array_equal(u, v)
    with pytest.raises(ValueError, match="emission must be one of"):
        make_hmm_data(1, 5, 2, "bernoulli")
    with pytest.raises(ValueError, match="one per sequence"):
        make_hmm_data(2, [5, 6, 7], 2)
    with pytest.raises(ValueError, match="self_transition"):
        make_hmm_data(1, 5, 2, self_transition=1.0)


def test_known_params_are_used_copied_and_checked():
    K, D = 2, 1
    given = {"startprob": np.array([1.0, 0.0]), "transmat": np.array([[0.0, 1.0], [1.0, 0.0]]),
             "means": np.array([[-5.0], [5.0]]), "covars": np.full((K, D), 0.01)}
    before = {k: v.copy() for k, v in given.items()}
    X, lengths, states, params = make_hmm_data(4, 6, K, "gaussian", n_features=D,
                                               params=given, random_state=0)
    # Deterministic chain 0, 1, 0, 1, ... in every sequence, emissions near -5 / +5.
    np.testing.assert_array_equal(states, np.tile([0, 1, 0, 1, 0, 1], 4))
    np.testing.assert_allclose(X[:, 0], np.where(states == 0, -5.0, 5.0), atol=0.5)
    for k in given:
        np.testing.assert_array_equal(params[k], before[k])
        np.testing.assert_array_equal(given[k], before[k])
        assert params[k] is not given[k]
    with pytest.raises(ValueError, match=r"params\['means'\] must have shape \(2, 1\); got \(3, 1\)"):
        make_hmm_data(1, 5, K, n_features=D, params={"means": np.zeros((3, 1))})
    with pytest.raises(ValueError, match=r"params\['transmat'\] must hold non-negative rows"):
        make_hmm_data(1, 5, K, n_features=D, params={"transmat": np.ones((2, 2))})
    with pytest.raises(ValueError, match="unknown parameter"):
        make_hmm_data(1, 5, K, n_features=D, params={"lambdas": np.ones((2, 1))})

    W = np.array([[1.0], [2.0], [0.0]])
    X, Z, fa = make_fa_data(20000, 3, 1, params={"W": W, "noise_var": np.full(3, 0.5)},
                            random_state=0)
    np.testing.assert_array_equal(fa["W"], W)
    np.testing.assert_allclose(np.cov(X.T), W @ W.T + 0.5 * np.eye(3), atol=6 * 4.5 / np.sqrt(20000))
    with pytest.raises(ValueError, match="noise_var.*positive"):
        make_fa_data(10, 3, 1, params={"noise_var": np.zeros(3)})

    means = np.array([[0.0, 0.0], [10.0, 10.0]])
    X, labels, gmm = make_gmm_data(2000, 2, 2, "spherical", params={"means": means,
                                   "covariances": np.array([1.0, 4.0])}, random_state=0)
    np.testing.assert_allclose(X[labels == 1].var(axis=0), 4.0, rtol=0.2)
    with pytest.raises(ValueError, match="positive definite"):
        make_gmm_data(10, 1, 2, "tied", params={"covariances": -np.eye(2)})
