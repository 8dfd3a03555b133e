"""BernoulliMixture (Bishop, PRML sec. 9.3.3): brute-force likelihoods, monotone
EM, sampling moments, recovery of well-separated components, bad input."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from lvm_core.models.bernoulli_mixture import BernoulliMixture
from lvm_core.validation import NotFittedError

pytestmark = pytest.mark.filterwarnings("ignore:BernoulliMixture did not converge:RuntimeWarning")


def binary_data(rng, N=400, D=8, K=3):
    probs = rng.uniform(0.05, 0.95, size=(K, D))
    labels = rng.integers(0, K, size=N)
    return (rng.random((N, D)) < probs[labels]).astype(np.float64), probs, labels


def brute_log_p(x, weights, probs):
    """log sum_k pi_k prod_d p^x (1-p)^(1-x), term by term."""
    total = 0.0
    for k in range(len(weights)):
        term = weights[k]
        for d in range(len(x)):
            term *= probs[k, d] if x[d] == 1 else 1.0 - probs[k, d]
        total += term
    return math.log(total)


def test_score_samples_and_posteriors_match_brute_force():
    rng = np.random.default_rng(0)
    X, _, _ = binary_data(rng, N=50, D=4, K=2)
    model = BernoulliMixture(2, random_state=0, max_iter=5, tol=0.0).fit(X)
    expected = [brute_log_p(x, model.weights_, model.probs_) for x in X]
    assert_allclose(model.score_samples(X), expected, rtol=1e-12)
    joint0 = np.array([math.log(model.weights_[0]) + np.sum(x * np.log(model.probs_[0])
                       + (1 - x) * np.log(1 - model.probs_[0])) for x in X])
    assert_allclose(model.predict_proba(X)[:, 0], np.exp(joint0 - expected), rtol=1e-10)


def test_probabilities_of_all_binary_vectors_sum_to_one():
    rng = np.random.default_rng(1)
    X, _, _ = binary_data(rng, N=100, D=5, K=3)
    model = BernoulliMixture(3, random_state=0, max_iter=20).fit(X)
    every = np.array(list(itertools.product([0.0, 1.0], repeat=5)))
    assert_allclose(np.exp(model.score_samples(every)).sum(), 1.0, rtol=1e-12)


@settings(max_examples=15)
@given(seed=st.integers(0, 10_000), K=st.integers(1, 4), init=st.sampled_from(["random", "kmeans"]))
def test_em_log_likelihood_never_decreases(seed, K, init):
    rng = np.random.default_rng(seed)
    X, _, _ = binary_data(rng, N=120, D=6, K=3)
    model = BernoulliMixture(K, init_params=init, random_state=seed, max_iter=30, tol=0.0)
    model.fit(X)
    steps = np.diff(model.lower_bounds_)
    assert np.all(steps >= -1e-12 * np.abs(model.lower_bounds_[1:])), steps.min()


def test_recovers_well_separated_components():
    rng = np.random.default_rng(2)
    probs = np.array([[0.9] * 6 + [0.1] * 6, [0.1] * 6 + [0.9] * 6])
    labels = rng.integers(0, 2, size=3000)
    X = (rng.random((3000, 12)) < probs[labels]).astype(float)
    model = BernoulliMixture(2, random_state=0, n_init=2, max_iter=200).fit(X)
    order = np.argsort(model.probs_[:, 0])[::-1]
    assert_allclose(model.probs_[order], probs, atol=0.04)
    assert np.mean(model.predict(X) == order[labels]) > 0.98


def test_sample_moments():
    model = BernoulliMixture(2)
    model.weights_ = np.array([0.3, 0.7])
    model.probs_ = np.array([[0.2, 0.9, 0.5], [0.7, 0.1, 0.5]])
    X, y = model.sample(20_000, random_state=0)
    assert set(np.unique(X)) <= {0.0, 1.0}
    assert_allclose(np.mean(y == 0), 0.3, atol=0.015)
    for k in range(2):
        assert_allclose(X[y == k].mean(axis=0), model.probs_[k], atol=0.02)


def test_beta_prior_is_the_map_estimate_with_one_component():
    rng = np.random.default_rng(3)
    X = (rng.random((40, 3)) < 0.3).astype(float)
    model = BernoulliMixture(1, alpha=3.0, beta=2.0, max_iter=2).fit(X)
    assert_allclose(model.probs_[0], (X.sum(axis=0) + 2.0) / (40 + 3.0), rtol=1e-12)


def test_bad_input_and_not_fitted():
    with pytest.raises(NotFittedError):
        BernoulliMixture(2).score_samples(np.zeros((2, 2)))
    with pytest.raises(ValueError, match="binary"):
        BernoulliMixture(2).fit(np.array([[0.0, 2.0], [1.0, 0.0]]))
    with pytest.raises(ValueError, match="alpha"):
        BernoulliMixture(2, alpha=0.5).fit(np.zeros((4, 2)))
    with pytest.raises(ValueError, match="init_params"):
        BernoulliMixture(2, init_params="nope").fit(np.zeros((4, 2)))
    model = BernoulliMixture(2, random_state=0, max_iter=3).fit(np.eye(4))
    with pytest.raises(ValueError, match="features"):
        model.score(np.zeros((3, 5)))
