"""FastICA: recovery of independent sources up to sign and permutation (Amari
index), whitening identities, the contrasts' derivatives, scikit-learn parity,
backends, bad input, and the example script."""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from lvm_core.models import ica
from lvm_core.models.ica import FastICA, amari_index
from lvm_core_tests.conftest import require

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def mixed_sources(seed=0, N=3000, D=4):
    """Independent non-Gaussian sources (uniform, Laplace, ...) and a random mixing A (D, D)."""
    rng = np.random.default_rng(seed)
    kinds = [lambda n: rng.uniform(-np.sqrt(3), np.sqrt(3), n), lambda n: rng.laplace(size=n) / np.sqrt(2),
             lambda n: np.sign(rng.normal(size=n)) * rng.exponential(size=n), lambda n: rng.uniform(-1, 1, n) ** 3]
    S = np.column_stack([kinds[i % 4](N) for i in range(D)])
    A = rng.normal(size=(D, D))
    return S, A, S @ A.T + rng.normal(size=D)


@pytest.mark.parametrize("algorithm", ["parallel", "deflation"])
@pytest.mark.parametrize("fun", ["logcosh", "exp", "cube"])
@pytest.mark.parametrize("solver", ["eigh", "svd"])
def test_recovers_sources_up_to_sign_and_permutation(algorithm, fun, solver):
    S, A, X = mixed_sources(N=5000)
    model = FastICA(algorithm=algorithm, fun=fun, whiten_solver=solver, random_state=0,
                    max_iter=500).fit(X)
    assert model.converged_
    assert amari_index(model.components_, A) < 0.04  # 0.008-0.02 measured at this seed
    # each estimated source matches one true source with |corr| close to 1
    corr = np.abs(np.corrcoef(model.transform(X).T, S.T)[:4, 4:])
    assert np.all(corr.max(axis=1) > 0.99)


def test_amari_index_is_zero_for_scaled_permutations_and_positive_otherwise():
    rng = np.random.default_rng(1)
    A = rng.normal(size=(5, 5))
    P = np.eye(5)[[2, 0, 4, 1, 3]] * np.array([1.0, -2.0, 0.5, 3.0, -1.0])[:, None]
    assert amari_index(P @ np.linalg.inv(A), A) == pytest.approx(0.0, abs=1e-12)
    assert amari_index(rng.normal(size=(5, 5)), A) > 0.1
    assert amari_index(np.ones((3, 3)), np.eye(3)) == pytest.approx(1.0)


def test_sources_are_white_and_mixing_inverts_the_unmixing():
    _, _, X = mixed_sources(seed=2)
    model = FastICA(random_state=0).fit(X)
    S_hat = model.transform(X)
    assert_allclose(S_hat.mean(axis=0), 0.0, atol=1e-10)
    assert_allclose(S_hat.T @ S_hat / len(X), np.eye(4), atol=1e-10)
    assert_allclose(model.components_ @ model.mixing_, np.eye(4), atol=1e-10)
    assert_allclose(model.inverse_transform(S_hat), X, atol=1e-9)
    assert_allclose(model.fit_transform(X), S_hat, atol=1e-10)


def test_fewer_components_give_a_pseudo_inverse():
    _, _, X = mixed_sources(seed=3, D=5)
    model = FastICA(n_components=3, random_state=0).fit(X)
    assert model.components_.shape == (3, 5) and model.mixing_.shape == (5, 3)
    assert_allclose(model.components_ @ model.mixing_, np.eye(3), atol=1e-10)
    assert_allclose(model.mixing_, np.linalg.pinv(model.components_), atol=1e-8)


@pytest.mark.parametrize("solver", ["eigh", "svd"])
def test_whitening_gives_identity_covariance(solver):
    _, _, X = mixed_sources(seed=4, N=500)
    Z, mean, K, lam, U = ica.whiten(X, 4, solver=solver)
    assert_allclose(Z.T @ Z / 500, np.eye(4), atol=1e-10)
    assert_allclose(Z, (X - mean) @ K.T, atol=1e-9)
    assert_allclose(np.sort(lam), np.sort(np.linalg.eigvalsh(np.cov(X.T, bias=True))), rtol=1e-10)


@pytest.mark.parametrize("fun", ["logcosh", "exp", "cube"])
def test_contrast_derivative_matches_central_differences(fun):
    y = np.linspace(-3, 3, 61)[:, None]
    h = 1e-6
    g, g_prime_mean = ica.contrast(y, fun, alpha=1.5)
    g_plus, _ = ica.contrast(y + h, fun, alpha=1.5)
    g_minus, _ = ica.contrast(y - h, fun, alpha=1.5)
    numeric = (g_plus - g_minus) / (2 * h)
    assert_allclose(g_prime_mean, numeric.mean(axis=0), rtol=1e-7)


def test_symmetric_decorrelation_gives_orthonormal_rows_closest_to_w():
    rng = np.random.default_rng(5)
    W = rng.normal(size=(4, 4))
    Wd = ica.symmetric_decorrelation(W)
    assert_allclose(Wd @ Wd.T, np.eye(4), atol=1e-12)
    U, _, Vt = np.linalg.svd(W)
    assert_allclose(Wd, U @ Vt, atol=1e-10)  # the polar factor


def test_newton_statistics_blocks_equal_one_product():
    rng = np.random.default_rng(6)
    Z = rng.normal(size=(20000, 3))
    W = rng.normal(size=(3, 3))
    g_z, g_prime = ica.newton_statistics(Z, W, "logcosh", 1.0)
    Y = np.tanh(Z @ W.T)
    assert_allclose(g_z, Y.T @ Z / len(Z), rtol=1e-10)
    assert_allclose(g_prime, 1 - (Y ** 2).mean(axis=0), rtol=1e-10)


@pytest.mark.reference
@pytest.mark.parametrize("algorithm", ["parallel", "deflation"])
def test_matches_scikit_learn_from_the_same_start(algorithm):
    sk = require("sklearn.decomposition")
    _, A, X = mixed_sources(seed=7)
    w0 = np.random.default_rng(0).normal(size=(4, 4))
    ours = FastICA(algorithm=algorithm, w_init=w0, tol=1e-8, max_iter=1000).fit(X)
    theirs = sk.FastICA(algorithm=algorithm, w_init=w0, tol=1e-8, max_iter=1000,
                        whiten="unit-variance", whiten_solver="eigh").fit(X)
    # the same unmixing up to sign and order (unit-variance sources on both sides; the
    # whitening bases differ by signs, so the same w_init need not give the same order)
    P = np.abs(ours.components_ @ theirs.mixing_)
    if algorithm == "parallel":  # one fixed point of the symmetric iteration
        assert_allclose(np.sort(P, axis=1)[:, -1], 1.0, atol=1e-6)
        assert_allclose(np.sort(P, axis=1)[:, :-1], 0.0, atol=1e-4)
        assert abs(amari_index(ours.components_, A) - amari_index(theirs.components_, A)) < 1e-4
    else:  # deflation's result depends on the order the units are found in
        assert np.all(np.sort(P, axis=1)[:, -1] > 0.99)
        assert abs(amari_index(ours.components_, A) - amari_index(theirs.components_, A)) < 0.01


@pytest.mark.parametrize("algorithm", ["parallel", "deflation"])
def test_subsample_start_reaches_the_full_data_fixed_point(algorithm):
    S, A, X = mixed_sources(seed=12, N=12000)
    full = FastICA(algorithm=algorithm, n_subsample=None, random_state=0, tol=1e-6).fit(X)
    two = FastICA(algorithm=algorithm, n_subsample=2000, random_state=0, tol=1e-6).fit(X)
    assert full.n_iter_subsample_ == 0 and two.n_iter_subsample_ > 0
    assert two.converged_ and two.n_iter_ < full.n_iter_
    # the same unmixing up to sign and order (deflation: each unit's fixed point moves with
    # the small errors of the units found before it)
    P = np.abs(two.components_ @ full.mixing_)
    assert_allclose(np.sort(P, axis=1)[:, -1], 1.0, atol=1e-4 if algorithm == "parallel" else 1e-3)
    assert abs(amari_index(two.components_, A) - amari_index(full.components_, A)) < 1e-3
    # the whitening used all rows: the training sources are exactly white
    S_hat = two.transform(X)
    assert_allclose(S_hat.T @ S_hat / len(X), np.eye(4), atol=1e-10)
    # "auto" only subsamples large data
    assert FastICA(random_state=0).fit(X).n_iter_subsample_ == 0


def test_random_state_zero_is_reproducible():
    _, _, X = mixed_sources(seed=8, N=800)
    a = FastICA(random_state=0).fit(X).components_
    b = FastICA(random_state=0).fit(X).components_
    assert_allclose(a, b, rtol=0, atol=0)


def test_backends_agree(backend):
    _, _, X = mixed_sources(seed=9, N=1000, D=3)
    w0 = np.random.default_rng(0).normal(size=(3, 3))
    ref = FastICA(w_init=w0, tol=1e-6).fit(X)
    model = FastICA(w_init=backend.asarray(w0), tol=1e-6, dtype=backend.dtype_name)
    Xb = backend.asarray(X)
    S = model.fit_transform(Xb)
    assert type(S) is type(Xb) and S.dtype == backend.dtype
    tol = 1e-3 if backend.dtype_name == "float32" else 1e-7
    assert_allclose(backend.to_numpy(model.components_), ref.components_, rtol=tol, atol=tol)
    back = model.inverse_transform(model.transform(Xb))
    assert_allclose(backend.to_numpy(back), X, rtol=tol, atol=10 * tol)


def test_bad_input_gives_clear_errors():
    _, _, X = mixed_sources(seed=10, N=200, D=3)
    X_nan = X.copy()
    X_nan[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        FastICA().fit(X_nan)
    X_dup = np.column_stack([X, X[:, 0] + X[:, 1]])
    with pytest.raises(ValueError, match="rank deficient.*n_components"):
        FastICA(random_state=0).fit(X_dup)
    FastICA(n_components=3, random_state=0).fit(X_dup)  # fine with n_components <= rank
    with pytest.raises(ValueError, match="more samples than components"):
        FastICA().fit(X[:3])
    with pytest.raises(ValueError, match="n_components=4 must be <= n_features=3"):
        FastICA(n_components=4).fit(X)
    with pytest.raises(ValueError, match=r"w_init must have shape \(3, 3\)"):
        FastICA(w_init=np.eye(2)).fit(X)
    with pytest.raises(ValueError, match="fun must be one of"):
        FastICA(fun="tanh").fit(X)
    with pytest.raises(ValueError, match="alpha"):
        FastICA(fun_args={"alpha": 5.0}).fit(X)
    with pytest.raises(ValueError, match="n_subsample=3 must exceed n_components=3"):
        FastICA(n_subsample=3).fit(X)
    with pytest.raises(ValueError, match="not fitted"):
        FastICA().transform(X)
    model = FastICA(random_state=0).fit(X)
    with pytest.raises(ValueError, match="3 features"):
        model.transform(X[:, :2])
    X_before = X.copy()
    FastICA(random_state=0).fit(X)
    assert_allclose(X, X_before, rtol=0, atol=0)


@pytest.mark.slow
def test_example_runs_quick(tmp_path):
    require("matplotlib")
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "ica_unmixing.py"), "--quick", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "MPLBACKEND": "Agg", "OPENBLAS_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "ica_unmixing.png").stat().st_size > 2000
    amari = float(re.search(r"RESULT ica_unmixing amari=(\S+)", proc.stdout).group(1))
    assert amari < 0.05, proc.stdout
