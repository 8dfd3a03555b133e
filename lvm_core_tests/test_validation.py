"""lvm_core.validation: errors name the argument, the expectation, what was
received and the fix; inputs are never modified."""
from __future__ import annotations

import array_api_strict
import numpy as np
import pytest

from lvm_core.validation import (NotFittedError, check_array, check_choice, check_is_fitted,
                                 check_lengths, check_positive_int, check_probability_vector)


def test_check_lengths_valid_and_default():
    np.testing.assert_array_equal(check_lengths(None, 7), [7])
    out = check_lengths([3, 4], 7)
    assert out.dtype == np.int64 and out.tolist() == [3, 4]
    assert check_lengths(np.array([2.0, 5.0]), 7).tolist() == [2, 5]


@pytest.mark.parametrize("lengths, n, error, match", [
    ([3, 3], 7, ValueError, "sum to the number of samples in X \\(7\\); they sum to 6"),
    ([3, 0, 4], 7, ValueError, r"lengths\[1\] = 0"),
    ([-1, 8], 7, ValueError, "positive lengths"),
    ([], 0, ValueError, "non-empty 1-D"),
    ([[3, 4]], 7, ValueError, "non-empty 1-D"),
    ([2.5, 4.5], 7, TypeError, "integers"),
])
def test_check_lengths_errors(lengths, n, error, match):
    with pytest.raises(error, match=match):
        check_lengths(lengths, n)


def test_check_array_errors_name_the_argument():
    with pytest.raises(ValueError, match=r"X must have 2 dimension\(s\).*reshape\(-1, 1\)"):
        check_array(np.ones(3), "X", ndim=2)
    with pytest.raises(ValueError, match="X contains NaN"):
        check_array(np.array([[np.nan]]), "X")
    with pytest.raises(ValueError, match="infinite"):
        check_array(np.array([[np.inf]]), "X")
    with pytest.raises(ValueError, match="at least 1 row"):
        check_array(np.ones((0, 3)), "X")
    with pytest.raises(ValueError, match="must have 4 features"):
        check_array(np.ones((2, 3)), "X", n_features=4)
    with pytest.raises(TypeError, match="integral"):
        check_array(np.ones((2, 3)), "X", dtype_kind="integral")
    with pytest.raises(TypeError, match="X must be an array"):
        check_array("abc", "X")
    x = np.array([[1.0, np.nan]])
    assert check_array(x, "X", allow_nan=True) is x
    assert np.isnan(x[0, 1])  # untouched


def test_check_array_on_strict_device():
    x = array_api_strict.asarray([[1.0, float("nan")]], device=array_api_strict.Device("device1"))
    with pytest.raises(ValueError, match="NaN"):
        check_array(x, "X")
    assert check_array(x, "X", allow_nan=True) is x


def test_small_checks():
    class Model:
        means_ = None

    with pytest.raises(NotFittedError, match="not fitted yet.*means_"):
        check_is_fitted(Model(), "means_")
    with pytest.raises(TypeError):
        check_positive_int(True, "n_components")
    with pytest.raises(ValueError, match="n_components must be an integer >= 1; got 0"):
        check_positive_int(0, "n_components")
    assert check_positive_int(np.int64(3), "n") == 3
    with pytest.raises(ValueError, match="covariance_type must be one of 'full', 'diag'"):
        check_choice("tied", "covariance_type", ["full", "diag"])
    with pytest.raises(ValueError, match="sum to 1"):
        check_probability_vector(np.array([0.5, 0.6]), "startprob")
    with pytest.raises(ValueError, match="non-negative"):
        check_probability_vector(np.array([-0.1, 1.1]), "startprob")


# ---------------------------------------------------------------------------
# data that must never reach the models: complex, sparse, object, no columns
# ---------------------------------------------------------------------------
def _bad_inputs():
    import scipy.sparse as sp

    X = np.random.default_rng(0).standard_normal((20, 3))
    return {
        "complex": (X + 1j * X, ValueError, "Complex data not supported.*X.real"),
        "sparse": (sp.csr_matrix(X), TypeError, "sparse matrix.*toarray"),
        "sparse_array": (sp.csr_array(X), TypeError, "sparse matrix.*toarray"),
        "object": (np.array([[1.0, "a", None]] * 20, dtype=object), TypeError,
                   "must hold numbers.*object"),
        "strings": (X.astype(str), TypeError, "must hold numbers"),
        "no_features": (np.zeros((20, 0)), ValueError, "at least one feature.*0 feature"),
        "no_rows": (np.zeros((0, 3)), ValueError, "at least 1 row"),
    }


@pytest.mark.parametrize("case", list(_bad_inputs()))
def test_check_array_refuses_data_it_cannot_use_faithfully(case):
    X, error, match = _bad_inputs()[case]
    with pytest.raises(error, match=match) as info:
        check_array(X, "X", ndim=2)
    assert "X" in str(info.value)


def _entry_points():
    from lvm_core.models.factor_analysis import PPCA, FactorAnalysis
    from lvm_core.models.gmm import GaussianMixture
    from lvm_core.models.vae import VAE

    return {
        "GaussianMixture.fit": lambda X: GaussianMixture(n_components=2).fit(X),
        "FactorAnalysis.fit": lambda X: FactorAnalysis(n_components=1).fit(X),
        "PPCA.fit": lambda X: PPCA(n_components=1).fit(X),
        "VAE.fit": lambda X: VAE(n_features=3, n_latent=1, hidden=(2,)).fit(
            X, epochs=1),
    }


@pytest.mark.parametrize("case", ["complex", "sparse", "object", "no_features"])
@pytest.mark.parametrize("entry", list(_entry_points()))
def test_public_entry_points_refuse_unusable_data(entry, case):
    X, error, match = _bad_inputs()[case]
    before = X.copy()
    with pytest.raises((TypeError, ValueError), match=match):
        _entry_points()[entry](X)
    if isinstance(X, np.ndarray) and X.dtype != object:
        np.testing.assert_array_equal(X, before)


def test_object_arrays_of_numbers_are_converted_like_scikit_learn_does():
    X = np.arange(6.0).reshape(3, 2)
    out = check_array(X.astype(object), "X", ndim=2)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, X)
