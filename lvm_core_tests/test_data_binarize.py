"""Binarisation: threshold, fixed stochastic (Salakhutdinov & Murray 2008) and dynamic
(Burda et al. 2016) draws x_bin ~ Bernoulli(x)."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_tools.binarize import binarize_stochastic, binarize_threshold, dynamic_binarizer


def test_threshold_hand_computed():
    X = np.array([[0.0, 0.49, 0.5, 0.51, 1.0]], dtype=np.float32)
    np.testing.assert_array_equal(binarize_threshold(X), [[0, 0, 0, 1, 1]])
    np.testing.assert_array_equal(binarize_threshold(X, threshold=0.2), [[0, 1, 1, 1, 1]])
    assert binarize_threshold(X).dtype == np.float32


@settings(max_examples=20)
@given(
    n=st.integers(1, 20),
    d=st.integers(1, 20),
    seed=st.integers(0, 2**31),
    dtype=st.sampled_from([np.float32, np.float64]),
)
def test_binary_values_dtype_and_no_mutation(n, d, seed, dtype):
    X = np.random.default_rng(seed).random((n, d)).astype(dtype)
    before = X.copy()
    for out in (
        binarize_threshold(X),
        binarize_stochastic(X, random_state=seed),
        dynamic_binarizer(seed)(X, None),
        dynamic_binarizer()(X, np.random.default_rng(seed)),
    ):
        assert out.shape == X.shape and out.dtype == X.dtype
        assert set(np.unique(out)) <= {0.0, 1.0}
        assert out is not X
    np.testing.assert_array_equal(X, before)


def test_stochastic_mean_matches_grey_level():
    # Monte Carlo: 20,000 draws per grey level p; E[x_bin] = p, sd = sqrt(p(1-p)/n).
    p = np.array([0.0, 0.05, 0.3, 0.5, 0.9, 1.0])
    n = 20000
    X = np.tile(p, (n, 1))
    mean = binarize_stochastic(X, random_state=0).mean(axis=0)
    sd = np.sqrt(p * (1 - p) / n)
    assert np.all(np.abs(mean - p) <= 5 * sd + 1e-12)
    assert mean[0] == 0.0 and mean[-1] == 1.0  # the extremes are deterministic


def test_stochastic_is_reproducible_with_seed_zero():
    X = np.random.default_rng(1).random((50, 30))
    a = binarize_stochastic(X, random_state=0)
    b = binarize_stochastic(X, random_state=0)
    c = binarize_stochastic(X, random_state=1)
    np.testing.assert_array_equal(a, b)
    assert np.any(a != c)


def test_dynamic_differs_between_epochs_and_is_reproducible():
    X = np.full((40, 25), 0.5)
    f = dynamic_binarizer(random_state=0)
    epoch1, epoch2 = f(X, None), f(X, None)
    assert np.mean(epoch1 != epoch2) > 0.3  # two independent Bernoulli(0.5) draws differ half the time
    g = dynamic_binarizer(random_state=0)
    np.testing.assert_array_equal(g(X, None), epoch1)
    np.testing.assert_array_equal(g(X, None), epoch2)
    # With the training loop's rng, the loop's seed decides the draws.
    h = dynamic_binarizer(random_state=123)
    np.testing.assert_array_equal(h(X, np.random.default_rng(7)), f(X, np.random.default_rng(7)))
    np.testing.assert_array_equal(h(X, 7), binarize_stochastic(X, random_state=7))


def test_every_backend_same_draws_as_numpy(backend):
    # Draws come from the seeded host generator, so every backend gets the same bits.
    host = np.random.default_rng(3).random((300, 10)).astype(backend.dtype_name)
    X = backend.asarray(host)
    stochastic = binarize_stochastic(X, random_state=0)
    dynamic = dynamic_binarizer(5)(X, None)
    threshold = binarize_threshold(X, threshold=0.4)
    for out in (stochastic, dynamic, threshold):
        assert type(out) is type(X) and out.dtype == X.dtype
        if backend.device is not None:
            assert out.device == backend.device
    np.testing.assert_array_equal(backend.to_numpy(stochastic), binarize_stochastic(host, 0))
    np.testing.assert_array_equal(backend.to_numpy(dynamic), dynamic_binarizer(5)(host, None))
    np.testing.assert_array_equal(backend.to_numpy(threshold), (host > 0.4).astype(host.dtype))
    np.testing.assert_array_equal(backend.to_numpy(X), host)  # input untouched


def test_bad_inputs_named():
    with pytest.raises(ValueError, match=r"grey levels in \[0, 1\].*255"):
        binarize_stochastic(np.array([[0.0, 255.0]]), random_state=0)
    with pytest.raises(TypeError, match="floating.*uint8.*255"):
        binarize_stochastic(np.zeros((2, 2), dtype=np.uint8), random_state=0)
    with pytest.raises(ValueError, match="X_batch contains NaN"):
        dynamic_binarizer(0)(np.array([[np.nan, 0.5]]), None)
    with pytest.raises(ValueError, match="X contains NaN"):
        binarize_threshold(np.array([np.nan]))
