"""lvm_core.gradcheck: passes right gradients, raises on wrong ones."""
from __future__ import annotations

import array_api_strict
import numpy as np
import pytest

from lvm_core.gradcheck import (GradientCheckError, check_directional, check_gradient, check_grads,
                                numerical_gradient, relative_error)


def f_cubic(x):
    return np.sum(x**3) + np.sum(np.sin(x))


def grad_cubic(x):
    return 3 * x**2 + np.cos(x)


def test_numerical_gradient_of_known_function():
    x = np.array([[0.5, -1.0], [2.0, 0.1]])
    np.testing.assert_allclose(numerical_gradient(f_cubic, x), grad_cubic(x), rtol=1e-8)


def test_check_gradient_passes_right_and_raises_on_wrong():
    x = np.random.default_rng(0).standard_normal((3, 2))
    assert check_gradient(f_cubic, x, grad_cubic(x)) < 1e-8
    wrong = grad_cubic(x)
    wrong[1, 0] *= 1.01
    with pytest.raises(GradientCheckError, match=r"relative error 9\.9\d+e-03 > rtol=1\.0e-06; worst entry .*analytic.*numeric"):
        check_gradient(f_cubic, x, wrong)
    assert check_gradient(f_cubic, x, wrong, raise_on_fail=False) > 1e-3
    with pytest.raises(ValueError, match="shape"):
        check_gradient(f_cubic, x, wrong.T)


def test_check_directional_and_check_grads():
    x = np.random.default_rng(1).standard_normal(50)
    assert check_directional(f_cubic, x, grad_cubic(x)) < 1e-6
    with pytest.raises(GradientCheckError):
        check_directional(f_cubic, x, 1.1 * grad_cubic(x))
    params = {"a": x[:10].copy(), "b": x[10:].copy()}

    def f(p):
        return f_cubic(p["a"]) + 2 * f_cubic(p["b"])

    grads = {"a": grad_cubic(params["a"]), "b": 2 * grad_cubic(params["b"])}
    errors = check_grads(f, params, grads, max_coords=5)
    assert set(errors) == {"a", "b"} and max(errors.values()) < 1e-6
    grads["b"] = grad_cubic(params["b"])  # factor 2 missing
    with pytest.raises(GradientCheckError, match="'b'"):
        check_grads(f, params, grads)
    with pytest.raises(ValueError, match="same keys"):
        check_grads(f, params, {"a": grads["a"]})


def test_gradcheck_on_strict_device():
    """The checker hands perturbed points to f on the device of x."""
    xp = array_api_strict
    x = xp.asarray([0.3, -0.7], dtype=xp.float64, device=xp.Device("device1"))

    def f(v):
        return xp.sum(v * v * v)

    assert check_gradient(f, x, 3 * x * x) < 1e-8


def test_relative_error_is_max_norm_relative():
    assert relative_error(np.array([1.0, 100.0]), np.array([1.5, 100.0])) == pytest.approx(0.005)
    assert relative_error(np.zeros(3), np.zeros(3)) == 0.0
    with pytest.raises(ValueError, match="shapes differ"):
        relative_error(np.zeros(2), np.zeros(3))
