"""MultinomialHMM: the likelihood by hand, parity with hmmlearn 0.3's
MultinomialHMM (same parameters -> same log-likelihood, posteriors, Viterbi
path and EM step), the categorical special case, n_trials checks, sampling."""
from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from lvm_core.models.hmm import CategoricalHMM, MultinomialHMM

from .conftest import require

PI = np.array([0.6, 0.4])
A = np.array([[0.8, 0.2], [0.3, 0.7]])
B = np.array([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]])


def _model(**kw):
    m = MultinomialHMM(2, init=(), **kw)
    m.startprob_, m.transmat_, m.emissionprob_ = PI.copy(), A.copy(), B.copy()
    return m


def _data(seed=0, T=40, n=5):
    rng = np.random.default_rng(seed)
    z = (np.arange(T) // 8) % 2
    return np.stack([rng.multinomial(n, B[k]) for k in z])


def test_one_step_likelihood_by_hand():
    """One row x = (2, 0, 1): p = 3!/(2! 0! 1!) sum_k pi_k prod_f B_kf^x_f."""
    x = np.array([[2, 0, 1]])
    p = 3 * (PI[0] * 0.2 ** 2 * 0.5 + PI[1] * 0.6 ** 2 * 0.1)
    np.testing.assert_allclose(_model().score(x), math.log(p), rtol=1e-13)


def test_one_trial_is_the_categorical_hmm():
    """With n_t = 1 the counts are one-hot symbols: the CategoricalHMM's numbers."""
    rng = np.random.default_rng(1)
    symbols = rng.integers(0, 3, 30)
    onehot = np.eye(3, dtype=np.int64)[symbols]
    cat = CategoricalHMM(2, init=())
    cat.startprob_, cat.transmat_, cat.emissionprob_ = PI, A, B
    m = _model()
    np.testing.assert_allclose(m.score(onehot), cat.score(symbols[:, None]), rtol=1e-12)
    np.testing.assert_allclose(m.predict_proba(onehot), cat.predict_proba(symbols[:, None]),
                               rtol=1e-10, atol=1e-14)
    m.set_params(n_iter=2).fit(onehot)
    cat.set_params(n_iter=2).fit(symbols[:, None])
    np.testing.assert_allclose(m.emissionprob_, cat.emissionprob_, rtol=1e-10)


def _hmmlearn_model(hmm, **kw):
    logging.getLogger("hmmlearn").setLevel(logging.ERROR)
    h = hmm.MultinomialHMM(2, init_params="", implementation="scaling", **kw)
    h.startprob_, h.transmat_, h.emissionprob_ = PI.copy(), A.copy(), B.copy()
    return h


@pytest.mark.reference
@pytest.mark.parametrize("n", [1, 5, 40])
def test_parity_with_hmmlearn(n):
    hmm = require("hmmlearn.hmm")
    X = _data(seed=n, n=n)
    lengths = [15, 25]
    h = _hmmlearn_model(hmm, n_trials=n)
    m = _model(n_trials=n)
    np.testing.assert_allclose(m.score(X, lengths), h.score(X, lengths), rtol=1e-11)
    np.testing.assert_allclose(m.predict_proba(X, lengths), h.predict_proba(X, lengths),
                               rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(m.predict(X, lengths), h.predict(X, lengths))
    h.set_params(n_iter=3, tol=-np.inf).fit(X, lengths)
    m.set_params(n_iter=3, tol=0.0).fit(X, lengths)
    for name in ("startprob_", "transmat_", "emissionprob_"):
        np.testing.assert_allclose(getattr(m, name), getattr(h, name), rtol=1e-9, atol=1e-12,
                                   err_msg=name)


@pytest.mark.reference
def test_parity_with_hmmlearn_row_totals_vary():
    """n_trials=None: each row is a multinomial of its own total (hmmlearn's
    likelihood with n = X.sum(axis=1))."""
    hmm = require("hmmlearn.hmm")
    rng = np.random.default_rng(3)
    X = np.stack([rng.multinomial(int(rng.integers(0, 9)), B[t % 2]) for t in range(30)])
    h = _hmmlearn_model(hmm, n_trials=X.sum(axis=1))
    np.testing.assert_allclose(_model().score(X), h.score(X), rtol=1e-11)


def test_zero_probability_symbol_and_n_trials_checks():
    m = _model()
    m.emissionprob_ = np.array([[0.5, 0.5, 0.0], [0.6, 0.3, 0.1]])
    x = np.array([[1, 1, 1]])
    np.testing.assert_allclose(m.score(x), math.log(PI[1] * 6 * 0.6 * 0.3 * 0.1), rtol=1e-12)
    with pytest.raises(ValueError, match="n_trials"):
        _model(n_trials=4).score(np.array([[1, 1, 1]]))
    with pytest.raises(ValueError, match="non-negative"):
        _model().score(np.array([[1, -1, 1]]))
    with pytest.raises(ValueError, match="integer"):
        _model().score(np.array([[1.5, 1, 1]]))
    with pytest.raises(ValueError, match="features"):
        _model().score(np.array([[1, 1]]))


def test_sample_and_fit_recover_the_emissions():
    m = _model(n_trials=20)
    X, states = m.sample(3000, random_state=0)
    assert X.shape == (3000, 3) and np.all(X.sum(axis=1) == 20)
    fit = MultinomialHMM(2, n_trials=20, random_state=0, n_iter=50).fit(X)
    order = np.argsort(fit.emissionprob_[:, 0])  # state 0 has the smaller B[:, 0]
    np.testing.assert_allclose(fit.emissionprob_[order], B, atol=0.02)
    with pytest.raises(ValueError, match="single number of trials"):
        _model().sample(3)
