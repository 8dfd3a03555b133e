"""lvm_core.random: explicit generators, reproducibility, draws on the device
and in the dtype of ``like``, and the distributions of the draws."""
from __future__ import annotations

import array_api_strict
import numpy as np
import pytest

from lvm_core.backend import device_of, to_numpy
from lvm_core.random import (as_generator, categorical, gumbel, integers, normal, permutation,
                             uniform)


def test_as_generator_seed_zero_is_reproducible():
    a = as_generator(0).standard_normal(5)
    b = as_generator(0).standard_normal(5)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, as_generator(1).standard_normal(5))
    g = np.random.default_rng(3)
    assert as_generator(g) is g
    assert isinstance(as_generator(None), np.random.Generator)
    assert isinstance(as_generator(np.random.RandomState(0)), np.random.Generator)


@pytest.mark.parametrize("bad", [True, False, np.bool_(True)])
def test_as_generator_rejects_bools(bad):
    with pytest.raises(TypeError, match="bool"):
        as_generator(bad)


def test_as_generator_rejects_other_types_and_negative_seeds():
    with pytest.raises(TypeError, match="Generator"):
        as_generator("0")
    with pytest.raises(ValueError, match="non-negative"):
        as_generator(-1)


@pytest.mark.parametrize("draw", ["normal", "uniform", "gumbel"])
def test_draws_land_on_device_of_like_with_dtype(backend, draw):
    like = backend.asarray(np.zeros(2))
    fn = {"normal": normal, "uniform": uniform, "gumbel": gumbel}[draw]
    x = fn(0, (3, 4), like=like)
    assert x.dtype == backend.dtype and device_of(x) == device_of(like)
    assert tuple(x.shape) == (3, 4)
    y = fn(0, (3, 4), like=like)
    np.testing.assert_array_equal(to_numpy(x), to_numpy(y))  # seed 0 reproducible
    z = fn(0, (2,), like=like, dtype="float64")
    assert z.dtype == backend.xp.float64


def test_integer_draws_on_device():
    like = array_api_strict.asarray([0.0], device=array_api_strict.Device("device1"))
    p = permutation(0, 10, like=like)
    i = integers(0, 2, 5, (100,), like=like)
    assert device_of(p) == device_of(like) and device_of(i) == device_of(like)
    assert sorted(to_numpy(p).tolist()) == list(range(10))
    assert set(to_numpy(i).tolist()) <= {2, 3, 4}


def test_distributions_of_draws():
    n = 200_000
    z = normal(0, (n,))
    assert abs(z.mean()) < 5 / np.sqrt(n) and abs(z.var() - 1) < 5 * np.sqrt(2 / n)
    u = uniform(1, (n,), low=-2.0, high=3.0)
    assert u.min() >= -2 and u.max() < 3 and abs(u.mean() - 0.5) < 5 * 5 / np.sqrt(12 * n)
    g = gumbel(2, (n,))
    assert np.all(np.isfinite(g))
    assert abs(g.mean() - np.euler_gamma) < 5 * (np.pi / np.sqrt(6)) / np.sqrt(n)


def test_categorical_on_device_matches_probabilities():
    log_p = np.log(np.array([0.1, 0.6, 0.3]))
    dev = array_api_strict.asarray(np.tile(log_p, (50_000, 1)),
                                   device=array_api_strict.Device("device1"))
    draws = categorical(0, dev)
    assert device_of(draws) == device_of(dev)
    freq = np.bincount(to_numpy(draws), minlength=3) / 50_000
    np.testing.assert_allclose(freq, [0.1, 0.6, 0.3], rtol=0, atol=0.01)
