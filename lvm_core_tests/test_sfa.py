"""Slow feature analysis: the Wiskott-Sejnowski test signal, the constraints
(zero mean, unit variance, decorrelation), ordering by slowness, eta-values,
rank-deficient input, deterministic signs, backends, bad input, the example."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from lvm_core.models.sfa import SFA, quadratic_expansion
from lvm_core_tests.conftest import require

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def ws_signal(T=2000):
    """Wiskott & Sejnowski (2002), sec. 4.1: x1 = sin t + cos^2 11t, x2 = cos 11t, t in [0, 2 pi]."""
    t = np.linspace(0.0, 2.0 * np.pi, T)
    return t, np.column_stack([np.sin(t) + np.cos(11 * t) ** 2, np.cos(11 * t)])


def sines(T=3000, seed=0):
    """A random mixture of sines with 1, 3, 7 and 15 periods over the T samples."""
    t = np.arange(T) / T
    S = np.column_stack([np.sqrt(2) * np.sin(2 * np.pi * k * t + 0.3 * k) for k in (1, 3, 7, 15)])
    A = np.random.default_rng(seed).normal(size=(4, 4))
    return S, S @ A.T


def test_recovers_the_slow_signal_of_the_wiskott_sejnowski_test():
    t, X = ws_signal()
    model = SFA(n_components=3, expansion="quadratic").fit(X)
    y = model.transform(X)[:, 0]
    assert abs(np.corrcoef(y, np.sin(t))[0, 1]) > 0.99
    # the linear expansion cannot: sin t = x1 - x2^2 is quadratic
    y_lin = SFA(n_components=1).fit_transform(X)[:, 0]
    assert abs(np.corrcoef(y_lin, np.sin(t))[0, 1]) < 0.99


@pytest.mark.parametrize("expansion", ["linear", "quadratic"])
def test_outputs_are_white_and_ordered_by_slowness(expansion):
    _, X = sines()
    model = SFA(expansion=expansion).fit(X)
    Y = model.transform(X)
    T = len(Y)
    assert_allclose(Y.mean(axis=0), 0.0, atol=1e-10)
    assert_allclose(Y.T @ Y / T, np.eye(Y.shape[1]), atol=1e-8)
    delta = np.mean(np.diff(Y, axis=0) ** 2, axis=0)
    assert_allclose(delta, model.delta_, rtol=1e-8, atol=1e-14)
    assert np.all(np.diff(delta) >= 0)


def test_eta_value_of_a_sine_is_its_number_of_periods():
    S, X = sines()
    model = SFA().fit(X)
    # the outputs are the sources (up to sign), slowest first; eta = number of periods
    corr = np.abs(np.corrcoef(model.transform(X).T, S.T)[:4, 4:])
    assert_allclose(np.diag(corr), 1.0, atol=1e-6)
    assert_allclose(model.eta_, [1, 3, 7, 15], rtol=2e-3)


def test_rank_deficient_input_is_whitened_on_its_range_only():
    S, X = sines(seed=1)
    X_dup = np.column_stack([X, X[:, 0] - 2 * X[:, 1], np.zeros(len(X)) + 3.0])
    ref = SFA().fit(X)
    model = SFA().fit(X_dup)
    assert model.rank_ == 4
    # the same slow features and slowness values: nothing was added to the eigenvalues
    assert_allclose(model.delta_, ref.delta_, rtol=1e-9)
    assert_allclose(np.abs(model.transform(X_dup)), np.abs(ref.transform(X)), atol=1e-8)
    with pytest.raises(ValueError, match="exceeds the rank.*rank deficient"):
        SFA(n_components=5).fit(X_dup)


def test_signs_are_deterministic():
    _, X = ws_signal(500)
    model = SFA(n_components=3, expansion="quadratic").fit(X)
    Y = model.transform(X)
    ramp = np.arange(500) - 249.5
    assert np.all(ramp @ Y > 0)  # every output rises over the series on average
    # reversing time flips exactly that: the same features with the opposite signs
    Y_rev = SFA(n_components=3, expansion="quadratic").fit(X[::-1]).transform(X)
    assert_allclose(Y_rev, -Y, atol=1e-8)


def test_quadratic_expansion_lists_all_monomials_once():
    X = np.array([[1.0, 2.0, 3.0]])
    assert_allclose(quadratic_expansion(X), [[1, 2, 3, 1, 2, 3, 4, 6, 9]])


def test_backends_agree(backend):
    _, X = ws_signal(400)
    ref = SFA(n_components=2, expansion="quadratic").fit(X)
    model = SFA(n_components=2, expansion="quadratic", dtype=backend.dtype_name)
    Xb = backend.asarray(X)
    Y = model.fit_transform(Xb)
    assert type(Y) is type(Xb) and Y.dtype == backend.dtype
    tol = 2e-3 if backend.dtype_name == "float32" else 1e-8
    assert_allclose(backend.to_numpy(Y), ref.transform(X), atol=tol)
    assert_allclose(backend.to_numpy(model.eta_), ref.eta_, rtol=tol)


def test_bad_input_gives_clear_errors():
    _, X = ws_signal(100)
    X_nan = X.copy()
    X_nan[5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SFA().fit(X_nan)
    with pytest.raises(ValueError, match="at least 3 samples"):
        SFA().fit(X[:2])
    with pytest.raises(ValueError, match="constant"):
        SFA().fit(np.ones((10, 2)))
    with pytest.raises(ValueError, match="expansion must be one of"):
        SFA(expansion="cubic").fit(X)
    with pytest.raises(ValueError, match="not fitted"):
        SFA().transform(X)
    model = SFA().fit(X)
    with pytest.raises(ValueError, match="2 features"):
        model.transform(X[:, :1])
    X_before = X.copy()
    SFA(expansion="quadratic").fit(X)
    assert_allclose(X, X_before, rtol=0, atol=0)


@pytest.mark.slow
def test_example_runs_quick(tmp_path):
    require("matplotlib")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "sfa_slow_signal.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "sfa_slow_signal.png").stat().st_size > 2000
    corr = float(re.search(r"RESULT sfa_slow_signal corr=(\S+)", proc.stdout).group(1))
    assert corr > 0.99, proc.stdout
