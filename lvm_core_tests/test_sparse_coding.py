"""Sparse coding: ISTA and FISTA reach the same Lasso minimum (KKT conditions),
equal to scikit-learn's at matched regularisation; FISTA's O(1/k^2) rate; the
numba kernel equals the array-API reference; dictionary learning (monotone
atom updates, unit-norm atoms, planted-dictionary recovery); backends; bad
input; the example script."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from lvm_core.models.sparse_coding import (DictionaryLearning, fista, ista, lasso_objective,
                                           soft_threshold, sparse_encode, update_dictionary)
from lvm_core.ops.lasso import prox_gradient_lasso, prox_gradient_lasso_reference
from lvm_core_tests.conftest import require

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def lasso_problem(seed=0, N=30, D=12, K=20):
    """Random data and a unit-norm overcomplete dictionary (K, D)."""
    rng = np.random.default_rng(seed)
    Dict = rng.normal(size=(K, D))
    Dict /= np.linalg.norm(Dict, axis=1, keepdims=True)
    X = rng.normal(size=(N, D))
    return X, Dict


def kkt_violation(X, Dict, C, alpha):
    """Largest violation of 0 in grad f(c) + alpha d||c||_1 (optimality of the Lasso)."""
    grad = (C @ Dict - X) @ Dict.T  # (N, K)
    nonzero = C != 0
    v_nonzero = np.abs(grad + alpha * np.sign(C))[nonzero]
    v_zero = np.maximum(np.abs(grad) - alpha, 0.0)[~nonzero]
    return max(v_nonzero.max(initial=0.0), v_zero.max(initial=0.0))


def test_soft_threshold_is_the_prox_of_the_l1_norm():
    v = np.linspace(-3, 3, 61)
    expected = np.array([min((u for u in np.linspace(-4, 4, 80001)),
                             key=lambda u: 0.5 * (u - x) ** 2 + 0.7 * abs(u)) for x in v[::10]])
    assert_allclose(soft_threshold(v, 0.7)[::10], expected, atol=1e-4)


@pytest.mark.parametrize("backtracking", [True, False])
def test_ista_and_fista_reach_the_same_minimum(backtracking):
    X, Dict = lasso_problem()
    alpha = 0.3
    C_ista, _ = ista(X, Dict, alpha, tol=1e-12, max_iter=50000, backtracking=backtracking)
    C_fista, _ = fista(X, Dict, alpha, tol=1e-12, max_iter=50000, backtracking=backtracking)
    C_plain, _ = fista(X, Dict, alpha, tol=1e-12, max_iter=50000, backtracking=backtracking,
                       restart=False)
    F = [lasso_objective(X, Dict, C, alpha).sum() for C in (C_ista, C_fista, C_plain)]
    assert_allclose(F, F[0], rtol=1e-10)
    for C in (C_ista, C_fista, C_plain):
        assert kkt_violation(X, Dict, C, alpha) < 1e-7
        assert 0.05 < (C != 0).mean() < 0.95  # a genuinely sparse, non-trivial solution


def test_support_polish_stops_at_the_exact_minimiser_in_fewer_steps():
    X, Dict = lasso_problem(seed=12, N=40, D=12, K=30)
    alpha = 0.2
    C_plain, n_plain = fista(X, Dict, alpha, tol=1e-10, max_iter=50000)
    C_pol, n_pol = fista(X, Dict, alpha, tol=1e-10, max_iter=50000, polish=True)
    assert kkt_violation(X, Dict, C_pol, alpha) < 1e-10
    assert_allclose(C_pol, C_plain, atol=1e-6)  # (the plain run is 2e-8 from the minimiser)
    assert n_pol < n_plain
    F_pol = lasso_objective(X, Dict, C_pol, alpha).sum()
    assert F_pol <= lasso_objective(X, Dict, C_plain, alpha).sum() * (1 + 1e-14)
    # sparse_encode polishes by default
    assert_allclose(sparse_encode(X, Dict, alpha=alpha), C_pol, atol=1e-8)


@pytest.mark.reference
def test_equals_scikit_learn_at_matched_regularisation():
    """scikit-learn's lasso_cd / lasso_lars minimise F / D with its alpha divided by D:
    the same alpha gives the same minimiser, and the objectives agree."""
    sk = require("sklearn.decomposition")
    X, Dict = lasso_problem(seed=1)
    alpha = 0.3
    ours = sparse_encode(X, Dict, alpha=alpha, tol=1e-12, max_iter=50000)
    lars = sk.sparse_encode(X, Dict, algorithm="lasso_lars", alpha=alpha)
    cd = sk.sparse_encode(X, Dict, algorithm="lasso_cd", alpha=alpha, max_iter=100000)
    F_ours = lasso_objective(X, Dict, ours, alpha).sum()
    F_lars = lasso_objective(X, Dict, lars, alpha).sum()
    F_cd = lasso_objective(X, Dict, cd, alpha).sum()
    assert F_ours <= min(F_lars, F_cd) * (1 + 1e-9)
    assert_allclose([F_lars, F_cd], F_ours, rtol=1e-6)
    assert_allclose(ours, lars, atol=1e-5)


def test_fista_objective_gap_falls_as_one_over_k_squared():
    """Beck & Teboulle thm 4.4: F(c_k) - F* <= 2 L ||c_0 - c*||^2 / (k + 1)^2 (fixed step 1/L),
    against ISTA's L ||c_0 - c*||^2 / (2 k) (thm 3.1), on a random problem."""
    X, Dict = lasso_problem(seed=2, N=5, D=20, K=60)
    alpha = 0.05
    C_star, _ = fista(X, Dict, alpha, tol=0.0, max_iter=20000, backtracking=False)
    F_star = lasso_objective(X, Dict, C_star, alpha).sum()
    L = np.linalg.eigvalsh(Dict @ Dict.T).max()
    R2 = (C_star ** 2).sum()  # ||c_0 - c*||^2 with c_0 = 0
    ks = [1, 2, 4, 8, 16, 32, 64, 128, 256]
    gap_fista, gap_ista = [], []
    for k in ks:
        C_k, n = fista(X, Dict, alpha, tol=0.0, max_iter=k, backtracking=False, restart=False)
        assert n == k
        gap_fista.append(lasso_objective(X, Dict, C_k, alpha).sum() - F_star)
        C_k, _ = ista(X, Dict, alpha, tol=0.0, max_iter=k, backtracking=False)
        gap_ista.append(lasso_objective(X, Dict, C_k, alpha).sum() - F_star)
    gap_fista, gap_ista = np.array(gap_fista), np.array(gap_ista)
    k = np.array(ks, dtype=float)
    assert np.all(gap_fista * (k + 1) ** 2 <= 2 * L * R2 * (1 + 1e-9))
    assert np.all(gap_ista * 2 * k <= L * R2 * (1 + 1e-9))
    # the gap falls at least like 1/k^2 over the range (the bound is not vacuous here) ...
    assert gap_fista[-1] < gap_fista[0] * 1e-3
    # ... and faster than ISTA's
    assert gap_fista[-1] < 0.1 * gap_ista[-1]


@settings(max_examples=15)
@given(seed=st.integers(0, 2 ** 31 - 1), accelerate=st.booleans(), restart=st.booleans(),
       backtracking=st.booleans(), polish=st.booleans(),
       dtype=st.sampled_from(["float64", "float32"]))
def test_kernel_equals_the_array_api_reference(seed, accelerate, restart, backtracking, polish,
                                               dtype):
    X, Dict = lasso_problem(seed=seed, N=7, D=6, K=9)
    G = (Dict @ Dict.T).astype(dtype)
    B = (X @ Dict.T).astype(dtype)
    C0 = np.zeros((7, 9), dtype=dtype)
    C0[0, :3] = 0.5
    # every step is run (tol=0): round-off (the kernel sums in another order) could flip a
    # stopping decision; float32 also without backtracking for the same reason
    tol = 0.0
    if dtype == "float32":
        backtracking = False
    L0 = float(np.diag(G).max()) if backtracking else float(np.linalg.eigvalsh(G).max())
    args = (G, B, 0.2, C0, L0, 40, tol, accelerate, restart, backtracking, 2.0, polish)
    C_k, n_k, L_k = prox_gradient_lasso(*args)
    C_r, n_r, L_r = prox_gradient_lasso_reference(*args)
    tol = 1e-4 if dtype == "float32" else 1e-10
    assert C_k.dtype == np.dtype(dtype)
    assert_allclose(C_k, C_r, rtol=tol, atol=tol)
    assert_allclose(L_k, L_r, rtol=tol)
    if dtype == "float64":  # (float32 rows may reach an exactly zero step a few steps apart)
        np.testing.assert_array_equal(n_k, n_r)
    assert_allclose(C0[0, :3], 0.5)  # the start is not modified


@pytest.mark.parametrize("accelerate, polish", [(True, False), (False, False), (True, True)])
def test_kernel_and_reference_stop_at_the_same_point(accelerate, polish):
    X, Dict = lasso_problem(seed=11, N=20, D=6, K=9)
    G, B = Dict @ Dict.T, X @ Dict.T
    args = (G, B, 0.2, np.zeros((20, 9)), float(np.diag(G).max()), 5000, 1e-7, accelerate,
            True, True, 2.0, polish)
    C_k, n_k, _ = prox_gradient_lasso(*args)
    C_r, n_r, _ = prox_gradient_lasso_reference(*args)
    assert_allclose(C_k, C_r, atol=1e-6)
    assert np.all(np.abs(n_k - n_r) <= 2)


def test_backends_agree(backend):
    X, Dict = lasso_problem(seed=3, N=6, D=5, K=8)
    ref = sparse_encode(X, Dict, alpha=0.2, tol=1e-10, max_iter=5000)
    code = sparse_encode(backend.asarray(X), backend.asarray(Dict), alpha=0.2, tol=1e-10,
                         max_iter=5000)
    assert type(code) is type(backend.asarray(X)) and code.dtype == backend.dtype
    tol = 1e-4 if backend.dtype_name == "float32" else 1e-8
    assert_allclose(backend.to_numpy(code), ref, atol=tol)


def test_update_dictionary_minimises_each_atom_on_the_unit_sphere():
    X, Dict = lasso_problem(seed=4, N=200, D=8, K=12)
    C = sparse_encode(X, Dict, alpha=0.2)
    before = 0.5 * ((X - C @ Dict) ** 2).sum()
    new = update_dictionary(Dict, C.T @ C, C.T @ X, X=X, rng=0)
    after = 0.5 * ((X - C @ new) ** 2).sum()
    assert after <= before
    assert_allclose(np.linalg.norm(new, axis=1), 1.0, rtol=1e-12)
    # atom j's update is the exact minimiser over the unit sphere: perturbing it increases the loss
    j = int(np.argmax((C != 0).sum(axis=0)))
    single = update_dictionary(Dict, C.T @ C, C.T @ X, X=X, rng=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        trial = single.copy()
        d = single[j] + 0.05 * rng.normal(size=8)
        trial[j] = d / np.linalg.norm(d)
        # compare with the dictionary where only atom j differs (other atoms as after the pass)
        base = 0.5 * ((X - C @ single) ** 2).sum()
        assert 0.5 * ((X - C @ trial) ** 2).sum() >= base - 1e-9


def planted_dictionary_data(seed=5, K=6, D=10, N=600):
    """X = codes @ true + noise with 2 active atoms per row; true (K, D) unit-norm."""
    rng = np.random.default_rng(seed)
    true = rng.normal(size=(K, D))
    true /= np.linalg.norm(true, axis=1, keepdims=True)
    codes = np.zeros((N, K))
    for n in range(N):
        idx = rng.choice(K, size=2, replace=False)
        codes[n, idx] = rng.normal(size=2) * 2 + np.sign(rng.normal(size=2)) * 2
    return codes @ true + 0.01 * rng.normal(size=(N, D)), true


def test_dictionary_learning_recovers_a_planted_dictionary():
    X, true = planted_dictionary_data()
    model = DictionaryLearning(6, alpha=0.05, max_iter=300, random_state=0).fit(X)
    atoms = model.components_
    assert_allclose(np.linalg.norm(atoms, axis=1), 1.0, rtol=1e-10)
    cos = np.abs(true @ atoms.T).max(axis=1)
    assert np.all(cos > 0.99), cos
    obj = np.array(model.objective_)
    assert np.all(np.diff(obj) <= 1e-6 * obj[:-1])  # alternating minimisation never rises
    code = model.transform(X)
    assert code.shape == (600, 6)
    rel = np.linalg.norm(model.inverse_transform(code) - X) / np.linalg.norm(X)
    assert rel < 0.05


def test_minibatch_dictionary_learning_lowers_the_objective():
    X, true = planted_dictionary_data()
    model = DictionaryLearning(6, alpha=0.05, max_iter=20, batch_size=50, random_state=0).fit(X)
    assert_allclose(np.linalg.norm(model.components_, axis=1), 1.0, rtol=1e-10)
    obj = np.array(model.objective_)
    assert obj[-1] < obj[0]
    batch = DictionaryLearning(6, alpha=0.05, max_iter=300, random_state=0).fit(X).objective_[-1]
    assert obj[-1] < 1.5 * batch  # 0.287 against the batch optimum 0.231
    # most atoms are found (minibatch runs can stop in a local minimum with two atoms mixed)
    cos = np.abs(true @ model.components_.T).max(axis=1)
    assert np.sum(cos > 0.95) >= 3, cos


def test_dictionary_learning_on_a_backend(backend):
    X, _ = lasso_problem(seed=6, N=40, D=5, K=8)
    model = DictionaryLearning(6, alpha=0.1, max_iter=3, random_state=0,
                               dtype=backend.dtype_name).fit(backend.asarray(X))
    atoms = model.components_
    assert atoms.dtype == backend.dtype
    assert_allclose(backend.to_numpy(atoms), DictionaryLearning(6, alpha=0.1, max_iter=3,
                    random_state=0).fit(X).components_,
                    atol=1e-3 if backend.dtype_name == "float32" else 1e-8)


def test_bad_input_gives_clear_errors():
    X, Dict = lasso_problem(seed=7)
    X_nan = X.copy()
    X_nan[0, 0] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        sparse_encode(X_nan, Dict)
    with pytest.raises(ValueError, match="dictionary must have 12 features"):
        sparse_encode(X, Dict[:, :5])
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        sparse_encode(X, Dict, alpha=-1.0)
    with pytest.raises(ValueError, match="algorithm must be one of"):
        sparse_encode(X, Dict, algorithm="omp")
    with pytest.raises(ValueError, match=r"code_init must have shape \(30, 20\)"):
        fista(X, Dict, 0.1, code_init=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="n_samples >= n_components"):
        DictionaryLearning(40).fit(X)
    with pytest.raises(ValueError, match="not fitted"):
        DictionaryLearning(4).transform(X)
    X_zero = X.copy()
    X_zero[:] = 0.0
    with pytest.raises(ValueError, match="all-zero atom"):
        DictionaryLearning(4, random_state=0).fit(X_zero)
    X_before, Dict_before = X.copy(), Dict.copy()
    sparse_encode(X, Dict)
    DictionaryLearning(4, max_iter=2, random_state=0).fit(X)
    assert_allclose(X, X_before, rtol=0, atol=0)
    assert_allclose(Dict, Dict_before, rtol=0, atol=0)


@pytest.mark.slow
def test_example_runs_quick(tmp_path):
    require("matplotlib")
    require("PIL")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "dictionary_patches.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "dictionary_atoms.png").stat().st_size > 2000
    match = re.search(r"RESULT dictionary_patches objective_first=(\S+) objective_last=(\S+)",
                      proc.stdout)
    assert match, proc.stdout
    assert float(match.group(2)) < float(match.group(1)), proc.stdout
