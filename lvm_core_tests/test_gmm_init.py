"""GaussianMixture's default initialisation is scikit-learn's (k-means labels drawn from the
same RandomState), so the same data and seed give the same fit."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from numpy.testing import assert_allclose

from lvm_core.models.gmm import GaussianMixture, kmeans_labels

from .conftest import require


def _blobs(seed, K, D, n=100, spread=5.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0.0, spread, (K, D))
    return np.concatenate([rng.normal(centres[k], 1.0, (n, D)) for k in range(K)])


def _min_gap(means):
    K = means.shape[0]
    return min(np.linalg.norm(means[i] - means[j]) for i in range(K) for j in range(i + 1, K))


def test_tied_default_fit_never_collapses_two_means():
    """Defect: with the previous default (one-row k-means++ starts), covariance_type="tied"
    converged to two equal means on 3 well separated blobs for 3 of 20 seeds."""
    X = _blobs(1, K=3, D=2)
    for seed in range(20):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            model = GaussianMixture(n_components=3, covariance_type="tied", random_state=seed).fit(X)
        assert _min_gap(model.means_) > 3.0, seed


@pytest.mark.reference
@pytest.mark.parametrize("covariance_type", ["full", "tied", "diag", "spherical"])
def test_default_fit_equals_scikit_learn_for_the_same_seed(covariance_type):
    require("sklearn")
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    for data_seed, K, D in [(1, 3, 2), (2, 2, 5), (3, 4, 3)]:
        X = _blobs(data_seed, K, D)
        for seed in range(2):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ours = GaussianMixture(n_components=K, covariance_type=covariance_type,
                                       random_state=seed).fit(X)
                ref = SkGaussianMixture(n_components=K, covariance_type=covariance_type,
                                        random_state=seed).fit(X)
            assert_allclose(ours.means_, ref.means_, rtol=1e-9, atol=1e-9)
            assert_allclose(ours.weights_, ref.weights_, rtol=1e-9, atol=1e-12)
            assert_allclose(ours.covariances_, ref.covariances_, rtol=1e-8, atol=1e-12)
            assert ours.n_iter_ == ref.n_iter_
            assert_allclose(ours.lower_bound_, ref.lower_bound_, rtol=1e-10)


@pytest.mark.reference
def test_kmeans_labels_equal_scikit_learn_kmeans():
    require("sklearn")
    from sklearn.cluster import KMeans

    for data_seed, K, D in [(0, 2, 2), (1, 3, 2), (3, 4, 3), (5, 6, 4)]:
        X = _blobs(data_seed, K, D, spread=2.0)  # overlapping blobs: several Lloyd rounds
        for seed in range(3):
            ours = kmeans_labels(X, K, np.random.RandomState(seed))
            ref = KMeans(n_clusters=K, n_init=1, random_state=seed).fit(X).labels_
            np.testing.assert_array_equal(ours, ref)


def test_a_passed_random_state_and_generator_work():
    X = _blobs(0, K=2, D=2)
    a = GaussianMixture(n_components=2, random_state=np.random.RandomState(3)).fit(X)
    b = GaussianMixture(n_components=2, random_state=3).fit(X)
    assert_allclose(a.means_, b.means_)
    c = GaussianMixture(n_components=2, random_state=np.random.default_rng(3)).fit(X)
    assert c.converged_ and _min_gap(c.means_) > 1.0


@pytest.mark.reference
def test_warm_start_continues_like_scikit_learn_and_is_off_by_default():
    require("sklearn")
    from sklearn.mixture import GaussianMixture as SkGaussianMixture

    X = _blobs(1, K=3, D=2, spread=3.0)
    ours = GaussianMixture(n_components=3, max_iter=3, random_state=0, warm_start=True)
    ref = SkGaussianMixture(n_components=3, max_iter=3, random_state=0, warm_start=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            ours.fit(X)
            ref.fit(X)
            assert_allclose(ours.means_, ref.means_, rtol=1e-10, atol=1e-12)
            assert ours.n_iter_ == ref.n_iter_ and ours.converged_ == ref.converged_
        cold = GaussianMixture(n_components=3, max_iter=3, random_state=0)
        first = cold.fit(X).means_.copy()
        np.testing.assert_array_equal(cold.fit(X).means_, first)  # off: starts again
