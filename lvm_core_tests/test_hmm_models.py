"""HMM models: hand-computed values, EM monotonicity, partial labels, missing
data, robustness, and the array-API path equal to the numba path.

(hmmlearn parity, bad input and partial-label parity live in
test_hmm_parity.py, test_hmm_inputs.py and test_hmm_partial.py.)
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core.em import EMDecreaseWarning
from lvm_core.models.hmm import GMMHMM, CategoricalHMM, GaussianHMM, PoissonHMM
from lvm_core.validation import NotFittedError

PI = np.array([0.6, 0.4])
A = np.array([[0.7, 0.3], [0.2, 0.8]])
B = np.array([[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]])


def _categorical(**kw):
    m = CategoricalHMM(2, **kw)
    m.startprob_, m.transmat_, m.emissionprob_ = PI.copy(), A.copy(), B.copy()
    return m


def _sample_gaussian(rng, K=3, D=2, T=400, covariance_type="diag"):
    true = GaussianHMM(K, covariance_type=covariance_type)
    true.startprob_ = np.full(K, 1.0 / K)
    true.transmat_ = 0.8 * np.eye(K) + 0.2 / K
    true.means_ = 4.0 * rng.normal(size=(K, D))
    true.covars_ = {"diag": np.ones((K, D)), "spherical": np.ones(K),
                    "full": np.tile(np.eye(D), (K, 1, 1)), "tied": np.eye(D)}[covariance_type]
    return true.sample(T, random_state=int(rng.integers(1 << 30)))


# ----------------------------------------------------------- hand-computed


def test_hand_computed_two_step_example():
    """X = (0, 2): p(X) = sum over the 4 paths of pi_i B_i0 A_ij B_j2 (written out)."""
    paths = {(i, j): PI[i] * B[i, 0] * A[i, j] * B[j, 2] for i in range(2) for j in range(2)}
    # by hand: (0,0) .6*.5*.7*.1 = .021, (0,1) .6*.5*.3*.6 = .054,
    #          (1,0) .4*.1*.2*.1 = .0008, (1,1) .4*.1*.8*.6 = .0192
    np.testing.assert_allclose([paths[0, 0], paths[0, 1], paths[1, 0], paths[1, 1]],
                               [0.021, 0.054, 0.0008, 0.0192], rtol=1e-12)
    p_X = 0.021 + 0.054 + 0.0008 + 0.0192  # 0.095
    model = _categorical()
    X = np.array([[0], [2]])
    np.testing.assert_allclose(model.score(X), np.log(p_X), rtol=1e-13)
    log_prob, post = model.score_samples(X)
    np.testing.assert_allclose(log_prob, np.log(p_X), rtol=1e-13)
    np.testing.assert_allclose(post, [[0.075 / p_X, 0.02 / p_X], [0.0218 / p_X, 0.0732 / p_X]],
                               rtol=1e-12)
    # Viterbi: the best path is (0, 1) with joint probability 0.054
    v, path = model.decode(X)
    np.testing.assert_allclose(v, np.log(0.054), rtol=1e-13)
    np.testing.assert_array_equal(path, [0, 1])
    # one EM step: expected counts (Rabiner eqs. 40a-c) normalised
    model = _categorical(n_iter=1, init=())
    model.fit(X)
    np.testing.assert_allclose(model.startprob_, [0.075 / p_X, 0.02 / p_X], rtol=1e-12)
    xi = np.array([[paths[0, 0], paths[0, 1]], [paths[1, 0], paths[1, 1]]]) / p_X
    np.testing.assert_allclose(model.transmat_, xi / xi.sum(1, keepdims=True), rtol=1e-12)
    gamma = np.array([[0.075, 0.02], [0.0218, 0.0732]]) / p_X
    want_B = np.zeros((2, 3))
    want_B[:, 0] = gamma[0]
    want_B[:, 2] = gamma[1]
    np.testing.assert_allclose(model.emissionprob_, want_B / want_B.sum(1, keepdims=True),
                               rtol=1e-12)


def test_gaussian_single_state_is_the_sample_mean_and_variance():
    """K = 1: one EM step gives the ML mean and (prior-free) variance of the data."""
    rng = np.random.default_rng(0)
    X = rng.normal(loc=[1.0, -2.0], scale=[0.5, 3.0], size=(500, 2))
    m = GaussianHMM(1, covars_prior=0.0, covars_weight=1, n_iter=1, init=())
    m.startprob_, m.transmat_ = np.ones(1), np.ones((1, 1))
    m.means_, m.covars_ = np.zeros((1, 2)), np.ones((1, 2))
    m.fit(X)
    np.testing.assert_allclose(m.means_[0], X.mean(0), rtol=1e-12)
    np.testing.assert_allclose(m.covars_[0], X.var(0), rtol=1e-10)
    ll = np.sum(-0.5 * np.log(2 * np.pi * X.var(0)) - 0.5 * (X - X.mean(0)) ** 2 / X.var(0))
    np.testing.assert_allclose(m.score(X), ll, rtol=1e-12)


# ----------------------------------------------------------- EM behaviour


MODEL_CASES = ["categorical", "poisson", "gaussian-diag", "gaussian-spherical", "gaussian-full",
               "gaussian-tied", "gmm-diag", "gmm-full", "gmm-spherical", "gmm-tied"]


def _model_and_data(case, seed, n_iter=8):
    rng = np.random.default_rng(seed)
    if case == "categorical":
        true = _categorical()
        X, _ = true.sample(300, random_state=seed)
        return CategoricalHMM(3, n_iter=n_iter, tol=0.0, random_state=seed), X
    if case == "poisson":
        true = PoissonHMM(2)
        true.startprob_, true.transmat_ = PI, A
        true.lambdas_ = np.array([[1.0, 6.0], [8.0, 2.0]])
        X, _ = true.sample(300, random_state=seed)
        return PoissonHMM(2, n_iter=n_iter, tol=0.0, random_state=seed), X
    family, ct = case.split("-")
    X, _ = _sample_gaussian(rng, covariance_type=ct)
    if family == "gaussian":
        return GaussianHMM(3, covariance_type=ct, n_iter=n_iter, tol=0.0, random_state=seed), X
    return GMMHMM(2, n_mix=2, covariance_type=ct, n_iter=n_iter, tol=0.0, random_state=seed), X


@pytest.mark.parametrize("case", MODEL_CASES)
def test_em_log_likelihood_never_decreases(case):
    """Exact EM: log p(X) rises at every iteration (checked step by step)."""
    model, X = _model_and_data(case, seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", EMDecreaseWarning)
        model.fit(X, [len(X) - 100, 100])
    h = np.array(model.monitor_.history)
    assert len(h) == model.n_iter_ == 8
    steps = np.diff(h)
    assert np.all(steps >= -1e-9 * np.abs(h[1:])), steps
    assert h[-1] > h[0]
    # the final parameters score at least as well as the last E-step's
    assert model.score(X, [len(X) - 100, 100]) >= h[-1] - 1e-9 * abs(h[-1])


@settings(max_examples=10)
@given(seed=st.integers(0, 2**31 - 1), case=st.sampled_from(["categorical", "gaussian-diag",
                                                               "gaussian-full", "poisson"]))
def test_em_monotone_property(seed, case):
    model, X = _model_and_data(case, seed, n_iter=5)
    model.fit(X)
    h = np.array(model.monitor_.history)
    assert np.all(np.diff(h) >= -1e-9 * np.abs(h[1:]))


def test_random_state_zero_is_reproducible():
    rng = np.random.default_rng(5)
    X, _ = _sample_gaussian(rng)
    a = GaussianHMM(3, random_state=0, n_iter=3).fit(X)
    b = GaussianHMM(3, random_state=0, n_iter=3).fit(X)
    np.testing.assert_array_equal(a.means_, b.means_)
    np.testing.assert_array_equal(a.monitor_.history, b.monitor_.history)
    c = GaussianHMM(3, random_state=0, n_iter=3, init_method="random").fit(X)
    assert np.all(np.isfinite(c.means_))


def test_tol_stops_early_and_monitor_records():
    rng = np.random.default_rng(6)
    X, _ = _sample_gaussian(rng)
    m = GaussianHMM(3, random_state=0, n_iter=200, tol=1e-6).fit(X)
    assert m.converged_ and m.n_iter_ < 200
    h = m.monitor_.history
    assert abs(h[-1] - h[-2]) <= 1e-6 * abs(h[-1])


# ----------------------------------------------------------- partial labels


def test_all_states_known_is_closed_form_counting():
    """With every state labelled, one EM step gives the counting estimates:
    start / transition frequencies, per-state means and variances."""
    rng = np.random.default_rng(2)
    X, Z = _sample_gaussian(rng, K=3, D=2, T=600)
    lengths = [250, 350]
    m = GaussianHMM(3, covars_prior=0.0, n_iter=1, init=("means", "covars"), random_state=0)
    m.startprob_ = np.full(3, 1 / 3)
    m.transmat_ = np.full((3, 3), 1 / 3)
    m.fit(X, lengths, states=Z)
    starts = Z[[0, 250]]
    np.testing.assert_allclose(m.startprob_, np.bincount(starts, minlength=3) / 2, atol=1e-12)
    counts = np.zeros((3, 3))
    for lo, hi in ((0, 250), (250, 600)):
        np.add.at(counts, (Z[lo:hi - 1], Z[lo + 1:hi]), 1)
    np.testing.assert_allclose(m.transmat_, counts / counts.sum(1, keepdims=True), rtol=1e-11,
                               atol=1e-14)
    for k in range(3):
        np.testing.assert_allclose(m.means_[k], X[Z == k].mean(0), rtol=1e-10)
        np.testing.assert_allclose(m.covars_[k], X[Z == k].var(0), rtol=1e-9)
    # the objective is log p(X, Z) of the labelled path
    log_prob = m.monitor_.history[0]
    assert np.isfinite(log_prob)


def test_no_states_known_is_plain_baum_welch():
    rng = np.random.default_rng(3)
    X, _ = _sample_gaussian(rng)
    a = GaussianHMM(3, random_state=0, n_iter=4, tol=0.0).fit(X)
    b = GaussianHMM(3, random_state=0, n_iter=4, tol=0.0).fit(X, states=np.full(len(X), -1))
    np.testing.assert_array_equal(a.monitor_.history, b.monitor_.history)
    np.testing.assert_array_equal(a.means_, b.means_)


def test_known_states_are_clamped_in_the_posteriors():
    """After fitting with labels the E-step's objective is log p(X, z_known):
    it equals the log-sum over the label-consistent paths (brute force)."""
    X = np.array([[0], [2], [1], [2]])
    states = np.array([-1, 1, -1, 0])
    m = _categorical(n_iter=1, init=())
    m.fit(X, states=states)
    total = 0.0
    for z0 in range(2):
        for z2 in range(2):
            z = [z0, 1, z2, 0]
            p = PI[z[0]] * B[z[0], 0]
            for t in range(1, 4):
                p *= A[z[t - 1], z[t]] * B[z[t], X[t, 0]]
            total += p
    np.testing.assert_allclose(m.monitor_.history[0], np.log(total), rtol=1e-12)


# ----------------------------------------------------------- missing data


def test_missing_rows_are_marginalised():
    """All-NaN rows contribute p(x_t | z_t) = 1: trailing missing rows leave
    log p unchanged, and a missing row in the middle equals summing over it."""
    rng = np.random.default_rng(4)
    X, _ = _sample_gaussian(rng, T=50)
    m = GaussianHMM(3, random_state=0, n_iter=2, allow_missing=True).fit(X)
    X_tail = np.vstack([X, np.full((3, 2), np.nan)])
    np.testing.assert_allclose(m.score(X_tail), m.score(X), rtol=1e-12)
    # a hole at t: p(x_{t-1}, x_{t+1}) uses A^2 between the neighbours
    Xc = np.array([[0], [0], [2]], dtype=float)
    Xc[1] = np.nan
    c = _categorical(allow_missing=True)
    want = sum(PI[i] * B[i, 0] * (A @ A)[i, j] * B[j, 2] for i in range(2) for j in range(2))
    np.testing.assert_allclose(c.score(Xc), np.log(want), rtol=1e-12)
    # fitting with holes works and uses only observed rows for emissions
    X_holes = X.copy()
    X_holes[::7] = np.nan
    f = GaussianHMM(3, random_state=0, n_iter=3, allow_missing=True).fit(X_holes)
    assert np.all(np.isfinite(f.means_)) and np.all(np.diff(f.monitor_.history) > -1e-9)
    with pytest.raises(ValueError, match="allow_missing"):
        GaussianHMM(3).fit(X_holes)


# ----------------------------------------------------------- robustness


def test_state_without_mass_keeps_its_parameters_and_zeros_stay_zero():
    """State 2 is unreachable (startprob 0, no transitions into it): its
    emission parameters are kept instead of becoming NaN, and structural
    zeros of startprob_/transmat_ stay exactly zero."""
    rng = np.random.default_rng(7)
    X, _ = _sample_gaussian(rng, K=2, T=200)
    m = GaussianHMM(3, n_iter=3, init=(), tol=0.0)
    m.startprob_ = np.array([0.5, 0.5, 0.0])
    m.transmat_ = np.array([[0.9, 0.1, 0.0], [0.1, 0.9, 0.0], [0.3, 0.3, 0.4]])
    means = np.vstack([X[:2], [[50.0, 50.0]]])
    m.means_ = means.copy()
    m.covars_ = np.ones((3, 2))
    m.fit(X)
    assert m.startprob_[2] == 0.0 and m.transmat_[0, 2] == 0.0 and m.transmat_[1, 2] == 0.0
    np.testing.assert_array_equal(m.means_[2], [50.0, 50.0])
    np.testing.assert_array_equal(m.covars_[2], [1.0, 1.0])
    np.testing.assert_array_equal(m.transmat_[2], [0.3, 0.3, 0.4])  # no mass: row kept
    assert np.all(np.isfinite(m.means_)) and np.all(np.isfinite(m.covars_))
    np.testing.assert_allclose(m.transmat_.sum(1), 1.0, rtol=1e-12)


def test_collapsed_variance_is_floored():
    """A state explaining one repeated value has variance 0 without a prior;
    min_covar keeps it positive and the likelihood finite."""
    X = np.concatenate([np.zeros(20), np.linspace(5, 9, 30)])[:, None]
    m = GaussianHMM(2, covars_prior=0.0, min_covar=1e-3, n_iter=1, init=())
    m.startprob_ = np.array([0.5, 0.5])
    m.transmat_ = np.array([[0.9, 0.1], [0.1, 0.9]])
    m.means_ = np.array([[0.0], [7.0]])
    m.covars_ = np.array([[1e-4], [4.0]])
    m.fit(X)
    assert m.covars_[0, 0] == pytest.approx(1e-3, rel=1e-12) or m.covars_[0, 0] > 1e-9
    assert np.isfinite(m.score(X))


def test_impossible_observation_names_sequence_and_time():
    m = CategoricalHMM(2)
    m.startprob_ = np.array([0.5, 0.5])
    m.transmat_ = np.array([[0.5, 0.5], [0.5, 0.5]])
    m.emissionprob_ = np.array([[0.5, 0.5, 0.0], [0.5, 0.5, 0.0]])
    X = np.array([[0], [1], [0], [1], [2], [0]])
    with pytest.raises(ValueError, match=r"sequence 1 .*time index 1 .*row 4"):
        m.score(X, lengths=[3, 3])
    with pytest.raises(ValueError, match=r"sequence 1"):
        m.fit(X, lengths=[3, 3])
    with pytest.raises(ValueError, match=r"time index"):
        m.predict(X, lengths=[3, 3])


def test_length_one_sequences_fit():
    rng = np.random.default_rng(8)
    X, _ = _sample_gaussian(rng, T=30)
    m = GaussianHMM(2, random_state=0, n_iter=3).fit(X, lengths=[1] * 30)
    assert np.all(np.isfinite(m.means_))
    np.testing.assert_allclose(m.transmat_.sum(1), 1.0)
    assert np.isfinite(m.score(X[:1]))


def test_not_fitted_raises():
    with pytest.raises(NotFittedError):
        GaussianHMM(2).predict(np.zeros((3, 2)))


def test_gaussian_fits_a_million_steps_without_underflow():
    """K = 8, T = 1,000,000 in one sequence: two EM iterations, finite and rising."""
    rng = np.random.default_rng(9)
    K, D, T = 8, 2, 1_000_000
    true = GaussianHMM(K)
    true.startprob_ = np.full(K, 1 / K)
    true.transmat_ = 0.9 * np.eye(K) + 0.1 / K
    true.means_ = 3.0 * rng.normal(size=(K, D))
    true.covars_ = np.ones((K, D))
    Z = np.repeat(rng.integers(0, K, size=T // 1000), 1000)
    X = true.means_[Z] + rng.normal(size=(T, D))
    m = GaussianHMM(K, n_iter=2, tol=0.0, init=())
    m.startprob_, m.transmat_ = true.startprob_, true.transmat_
    m.means_, m.covars_ = true.means_ + 0.5, 2.0 * true.covars_
    m.fit(X)
    h = np.array(m.monitor_.history)
    assert np.all(np.isfinite(h)) and h[1] > h[0] and h[0] < -1e6


# ----------------------------------------------------------- API shapes


@pytest.mark.parametrize("case", ["categorical", "poisson", "gaussian-full", "gmm-diag"])
def test_sample_decode_predict_shapes(case):
    model, X = _model_and_data(case, seed=3, n_iter=2)
    model.fit(X)
    Xs, Zs = model.sample(25, random_state=0)
    assert Xs.shape[0] == 25 and Zs.shape == (25,) and Zs.dtype == np.int64
    Xs2, _ = model.sample(25, random_state=0)
    np.testing.assert_array_equal(Xs, Xs2)
    _, Z3 = model.sample(5, random_state=1, currstate=1)
    assert Z3[0] == 1
    for algorithm in ("viterbi", "map"):
        lp, path = model.decode(X, algorithm=algorithm)
        assert np.isfinite(lp) and path.shape == (len(X),)
    proba = model.predict_proba(X)
    np.testing.assert_allclose(proba.sum(1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(X), model.decode(X)[1])
    n = {"categorical": 3 - 1 + 3 * 2 + 3 * 2, "poisson": 1 + 2 + 4,
         "gaussian-full": 2 + 6 + 6 + 3 * 3, "gmm-diag": 1 + 2 + 8 + 8 + 1}[case]
    T = len(X)
    np.testing.assert_allclose(model.bic(X) - model.aic(X), n * (np.log(T) - 2), rtol=1e-10)


def test_full_covars_property():
    rng = np.random.default_rng(10)
    X, _ = _sample_gaussian(rng)
    for ct in ("spherical", "diag", "full", "tied"):
        m = GaussianHMM(3, covariance_type=ct, n_iter=1, random_state=0).fit(X)
        full = m.full_covars_
        assert full.shape == (3, 2, 2)
        if ct == "diag":
            np.testing.assert_array_equal(full[1], np.diag(m.covars_[1]))
        if ct == "tied":
            np.testing.assert_array_equal(full[2], m.covars_)


# ----------------------------------------------------------- xp == numba


@pytest.mark.parametrize("case", ["categorical", "gaussian-diag", "gaussian-tied", "poisson",
                                  "gmm-full"])
def test_xp_implementation_equals_numba_through_the_model(case):
    model, X = _model_and_data(case, seed=4, n_iter=3)
    a = model.set_params(implementation="numba").fit(X, [len(X) - 60, 60])
    params = {n: getattr(a, n) for n in ("startprob_", "transmat_")}
    model_x, _ = _model_and_data(case, seed=4, n_iter=3)
    b = model_x.set_params(implementation="xp").fit(X, [len(X) - 60, 60])
    np.testing.assert_allclose(b.monitor_.history, a.monitor_.history, rtol=1e-10)
    for name, v in params.items():
        np.testing.assert_allclose(getattr(b, name), v, rtol=1e-8, atol=1e-12)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_model_on_strict_device_equals_numpy(backend64):
    """fit / score / predict on array-api-strict's device1 (the xp kernels) give
    the numpy (numba) results; parameters stay on the device of X."""
    b = backend64
    rng = np.random.default_rng(11)
    X, _ = _sample_gaussian(rng, T=120)
    init = dict(startprob_=np.full(3, 1 / 3), transmat_=0.8 * np.eye(3) + 0.2 / 3,
                means_=X[[0, 40, 80]].copy(), covars_=np.ones((3, 2)))
    ref = GaussianHMM(3, n_iter=3, tol=0.0, init=())
    for k, v in init.items():
        setattr(ref, k, v)
    ref.fit(X, [70, 50])
    dev = GaussianHMM(3, n_iter=3, tol=0.0, init=())
    for k, v in init.items():
        setattr(dev, k, b.asarray(v))
    Xd = b.asarray(X)
    dev.fit(Xd, [70, 50])
    assert type(dev.means_) is type(Xd)
    np.testing.assert_allclose(dev.monitor_.history, ref.monitor_.history, rtol=1e-10)
    np.testing.assert_allclose(b.to_numpy(dev.means_), ref.means_, rtol=1e-9)
    np.testing.assert_allclose(dev.score(Xd), ref.score(X), rtol=1e-10)
    np.testing.assert_array_equal(b.to_numpy(dev.predict(Xd)), ref.predict(X))
    c = _categorical()
    cd = CategoricalHMM(2)
    cd.startprob_, cd.transmat_, cd.emissionprob_ = b.asarray(PI), b.asarray(A), b.asarray(B)
    Xc = np.array([[0], [2], [1], [1], [0]])
    np.testing.assert_allclose(cd.score(b.asarray(Xc)), c.score(Xc), rtol=1e-12)
