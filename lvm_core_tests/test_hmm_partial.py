"""Partially labelled training and missing observations.

Partial labels (the course notes' "supervision over only a subset of the
variables"): ``fit(X, lengths, states)`` with ``states[t] = -1`` where the
state is unknown.  Known states are clamped in the E-step, i.e. the sum over
state paths of Rabiner (1989), eq. (17) runs over the paths that agree with
the labels only.  The references:

* all states known -> EM is counting (Rabiner 1989, eq. 40 with the
  expectations replaced by counts; Bishop PRML sec. 13.2.1 for the complete-
  data likelihood);
* none known -> plain EM;
* some known -> the brute-force sum over the paths consistent with the
  labels (tiny problems), and hmmlearn with the same clamping applied to its
  emission log-likelihoods (``hmm_reference.clamped_hmmlearn``) for bigger ones;
* a meaning test: labels steer EM away from a nuisance mode of the
  likelihood that unsupervised EM falls into.

Missing data: with ``allow_missing=True`` an all-NaN row has log-emission 0
(the observation is marginalised out), so the likelihood is the brute-force
sum with that row's emission factor replaced by 1.
"""
from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from . import hmm_reference as R
from .conftest import require


def _clamped_reference(kind, X, params, lengths, states, ct="diag"):
    lf = R.log_frameprob_of(kind, X, params, ct)
    return R.brute_force(np.log(params["startprob_"]), np.log(params["transmat_"]), lf,
                         lengths, states)


def _mle_start_trans(bf, n_sequences):
    """pi = sum_s gamma_1^(s) / S;  a_ij = xi_sum_ij / sum_j xi_sum_ij (priors = 1)."""
    return bf["start_sum"] / n_sequences, bf["xi_sum"] / bf["xi_sum"].sum(axis=1, keepdims=True)


# --------------------------------------------------------------------------
# all states known: counting
# --------------------------------------------------------------------------

def _labelled_data(kind, seed, K=3, D=2, F=4, lengths=(40, 30, 50)):
    rng = np.random.default_rng(seed)
    truth = R.random_params(rng, kind, K, D=D, n_features=F)
    if kind == "categorical":
        def emit(k, r):
            return [r.choice(F, p=truth["emissionprob_"][k])]
    elif kind == "gaussian":
        def emit(k, r):
            return truth["means_"][k] + np.sqrt(truth["covars_"][k]) * r.normal(size=D)
    else:
        def emit(k, r):
            return r.poisson(truth["lambdas_"][k])
    X, z = R.sample_hmm(rng, truth["startprob_"], truth["transmat_"], emit, lengths)
    start = R.random_params(rng, kind, K, D=D, n_features=F)  # a different starting point
    return X, z, np.array(lengths), start


@pytest.mark.parametrize("kind", ["categorical", "gaussian", "poisson"])
@pytest.mark.parametrize("n_iter", [1, 3])
def test_all_states_known_gives_counting_estimates(kind, n_iter):
    K = 3
    X, z, lengths, start = _labelled_data(kind, seed=2, K=K)
    counts = np.bincount(z, minlength=K)
    _, trans_counts = R.counting_estimates(z, lengths, K)
    assert np.all(counts > 0) and np.all(np.isfinite(trans_counts))  # precondition
    hyper = dict(n_features=4) if kind == "categorical" else {}
    if kind == "gaussian":  # no covariance prior: the plain sample variance
        hyper.update(covariance_type="diag", covars_prior=0.0, covars_weight=1.0)
    model = R.lvm_model(kind, start, K, n_iter=n_iter, **hyper)
    model.fit(X, lengths, states=z)

    startprob, transmat = R.counting_estimates(z, lengths, K)
    np.testing.assert_allclose(model.startprob_, startprob, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(model.transmat_, transmat, rtol=1e-10, atol=1e-14)
    onehot = np.eye(K)[z]  # (T, K)
    if kind == "categorical":
        emission = onehot.T @ np.eye(4)[X[:, 0]]
        np.testing.assert_allclose(model.emissionprob_, emission / emission.sum(axis=1, keepdims=True),
                                   rtol=1e-10, atol=1e-14)
    else:
        means = onehot.T @ X / counts[:, None]
        name = "means_" if kind == "gaussian" else "lambdas_"
        np.testing.assert_allclose(getattr(model, name), means, rtol=1e-10)
        if kind == "gaussian":
            var = onehot.T @ X**2 / counts[:, None] - means**2
            np.testing.assert_allclose(model.covars_, var, rtol=1e-8)
    # the objective is log p(X, z) of the single consistent path at the start
    lf = R.log_frameprob_of(kind, X, start)
    log_joint = sum(
        R.path_log_joint(np.log(start["startprob_"]), np.log(start["transmat_"]), lf[lo:hi],
                         z[None, lo:hi])[0]
        for lo, hi in R.split_lengths(lengths))
    np.testing.assert_allclose(model.monitor_.history[0], log_joint, rtol=1e-10)


# --------------------------------------------------------------------------
# no state known: plain EM
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind,ct", [("categorical", None), ("gaussian", "full"), ("gmm", "diag"),
                                     ("poisson", None)])
def test_no_state_known_equals_unlabelled_fit(kind, ct):
    rng = np.random.default_rng(6)
    K, lengths = 3, np.array([9, 4, 12])
    params = R.random_params(rng, kind, K, D=2, n_features=4, n_mix=2, covariance_type=ct or "diag")
    X = R.random_X(rng, kind, int(lengths.sum()), D=2, n_features=4)
    hyper = {"categorical": dict(n_features=4), "gaussian": dict(covariance_type=ct),
             "gmm": dict(covariance_type=ct, n_mix=2), "poisson": {}}[kind]
    a = R.lvm_model(kind, params, K, n_iter=4, **hyper).fit(X, lengths)
    b = R.lvm_model(kind, params, K, n_iter=4, **hyper).fit(X, lengths,
                                                            states=np.full(len(X), -1))
    np.testing.assert_allclose(b.monitor_.history, a.monitor_.history, rtol=1e-12)
    for name in params:
        np.testing.assert_allclose(getattr(b, name), getattr(a, name), rtol=1e-12, atol=1e-15,
                                   err_msg=name)


# --------------------------------------------------------------------------
# some states known: brute force and clamped hmmlearn
# --------------------------------------------------------------------------

@st.composite
def partial_problems(draw):
    K = draw(st.integers(2, 3), label="K")
    lengths = draw(st.lists(st.integers(2, 5), min_size=1, max_size=2), label="lengths")
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    T = sum(lengths)
    states = np.where(rng.uniform(size=T) < 0.4, rng.integers(0, K, size=T), -1)
    states[0] = -1  # keeps every state's statistics positive (all parameters are > 0)
    return K, np.array(lengths), rng, states, seed


@settings(max_examples=15)
@given(pb=partial_problems(), implementation=st.sampled_from(["numba", "xp"]))
def test_some_states_known_matches_brute_force_categorical(pb, implementation):
    """One EM step with labels: the objective is the sum over label-consistent
    paths, and every parameter is the M-step of the clamped brute-force
    posteriors (gamma is one-hot at the labelled steps)."""
    K, lengths, rng, states, _ = pb
    F = 3
    params = R.random_params(rng, "categorical", K, n_features=F)
    X = R.random_X(rng, "categorical", int(lengths.sum()), n_features=F)
    bf = _clamped_reference("categorical", X, params, lengths, states)
    known = states >= 0
    np.testing.assert_allclose(bf["posteriors"][known], np.eye(K)[states[known]], rtol=0, atol=1e-12)

    model = R.lvm_model("categorical", params, K, n_features=F,
                        implementation=implementation).fit(X, lengths, states=states)
    np.testing.assert_allclose(model.monitor_.history[0], bf["log_prob"].sum(), rtol=1e-10, atol=1e-12)
    startprob, transmat = _mle_start_trans(bf, len(lengths))
    np.testing.assert_allclose(model.startprob_, startprob, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(model.transmat_, transmat, rtol=1e-9, atol=1e-14)
    emission = bf["posteriors"].T @ np.eye(F)[X[:, 0]]  # (K, F) expected counts
    np.testing.assert_allclose(model.emissionprob_, emission / emission.sum(axis=1, keepdims=True),
                               rtol=1e-9, atol=1e-14)


@settings(max_examples=10)
@given(pb=partial_problems())
def test_some_states_known_matches_brute_force_gaussian(pb):
    """As above with Gaussian emissions: the labelled rows enter only their
    state's weighted means (mu_k = sum_t gamma_tk x_t / sum_t gamma_tk)."""
    K, lengths, rng, states, _ = pb
    params = R.random_params(rng, "gaussian", K, D=2, covariance_type="diag")
    X = R.random_X(rng, "gaussian", int(lengths.sum()), D=2)
    bf = _clamped_reference("gaussian", X, params, lengths, states)
    model = R.lvm_model("gaussian", params, K, covariance_type="diag").fit(X, lengths, states=states)
    np.testing.assert_allclose(model.monitor_.history[0], bf["log_prob"].sum(), rtol=1e-10, atol=1e-12)
    startprob, transmat = _mle_start_trans(bf, len(lengths))
    np.testing.assert_allclose(model.startprob_, startprob, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(model.transmat_, transmat, rtol=1e-9, atol=1e-14)
    gamma = bf["posteriors"]
    np.testing.assert_allclose(model.means_, gamma.T @ X / gamma.sum(axis=0)[:, None], rtol=1e-9)


@pytest.mark.reference
@pytest.mark.parametrize("kind,ct", [("categorical", None), ("gaussian", "diag"), ("gaussian", "full"),
                                     ("gmm", "diag"), ("poisson", None)])
def test_partial_labels_parity_with_clamped_hmmlearn(kind, ct):
    """Longer sequences (no brute force): three EM steps with 30 % of the
    states known equal hmmlearn's EM on the same clamped emission
    log-likelihoods, at 1e-8."""
    require("hmmlearn")
    rng = np.random.default_rng(12)
    K, lengths = 3, np.array([30, 11, 25])
    params = R.random_params(rng, kind, K, D=2, n_features=4, n_mix=2, covariance_type=ct or "diag")
    X = R.random_X(rng, kind, int(lengths.sum()), D=2, n_features=4)
    states = np.where(rng.uniform(size=len(X)) < 0.3, rng.integers(0, K, size=len(X)), -1)
    hyper = {"categorical": dict(n_features=4), "gaussian": dict(covariance_type=ct),
             "gmm": dict(covariance_type=ct, n_mix=2), "poisson": {}}[kind]
    ours = R.lvm_model(kind, params, K, n_iter=3, **hyper).fit(X, lengths, states=states)
    theirs = R.hmmlearn_model(kind, params, K, n_iter=3, **hyper)
    R.clamped_hmmlearn(theirs, [states[lo:hi] for lo, hi in R.split_lengths(lengths)])
    R.hmmlearn_fit(theirs, X, lengths)
    np.testing.assert_allclose(ours.monitor_.history, list(theirs.monitor_.history), rtol=1e-8)
    for name in params:
        want = getattr(theirs, "_covars_" if (name == "covars_" and kind == "gaussian") else name)
        np.testing.assert_allclose(getattr(ours, name), want, rtol=1e-8, atol=1e-13, err_msg=name)


def test_semi_supervised_beats_unsupervised():
    """Meaning: the true state moves x_1 by +-1, while x_2 is a large i.i.d.
    nuisance (+-5 on every step, unrelated to the state).  Unsupervised EM from a
    neutral start splits on the nuisance (about chance accuracy under the best
    relabelling); with 20 % of the states known the same EM recovers the states,
    with no relabelling needed.  Fixed seeds, same starting parameters."""
    K = 2
    acc_unsup, acc_semi = [], []
    for seed in (0, 3, 4):
        rng = np.random.default_rng(seed)
        startprob = np.full(K, 0.5)
        transmat = np.array([[0.95, 0.05], [0.05, 0.95]])
        mu = np.array([-1.0, 1.0])

        def emit(k, r):
            return np.array([mu[k] + r.normal(), 5.0 * r.choice([-1, 1]) + 0.5 * r.normal()])

        lengths = np.array([100, 100, 100, 100])
        X, z = R.sample_hmm(rng, startprob, transmat, emit, lengths)
        labels = np.where(rng.uniform(size=len(z)) < 0.2, z, -1)
        start = dict(startprob_=np.full(K, 0.5), transmat_=np.full((K, K), 0.5),
                     means_=rng.normal(size=(K, 2)), covars_=np.ones((K, 2)))
        unsup = R.lvm_model("gaussian", start, K, n_iter=20, tol=1e-6,
                            covariance_type="diag").fit(X, lengths)
        semi = R.lvm_model("gaussian", start, K, n_iter=20, tol=1e-6,
                           covariance_type="diag").fit(X, lengths, states=labels)
        acc_unsup.append(R.best_permutation_accuracy(z, unsup.predict(X, lengths), K))
        acc_semi.append(float(np.mean(semi.predict(X, lengths) == z)))
    assert min(acc_semi) > 0.9, acc_semi
    assert np.mean(acc_semi) > np.mean(acc_unsup) + 0.3, (acc_semi, acc_unsup)


# --------------------------------------------------------------------------
# missing observations
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind,ct", [("gaussian", "diag"), ("gaussian", "full"), ("gaussian", "spherical"),
                                     ("gaussian", "tied"), ("gmm", "diag"), ("gmm", "full")])
@settings(max_examples=6)
@given(seed=st.integers(0, 2**32 - 1), lengths=st.lists(st.integers(1, 4), min_size=1, max_size=3))
def test_missing_rows_are_marginalised(kind, ct, seed, lengths):
    """log p(X_observed) = brute-force sum over paths with b_k(x_t) := 1 on the
    all-NaN rows; posteriors and Viterbi likewise."""
    rng = np.random.default_rng(seed)
    K, lengths = 2, np.array(lengths)
    T = int(lengths.sum())
    params = R.random_params(rng, kind, K, D=2, n_mix=2, covariance_type=ct)
    X = R.random_X(rng, kind, T, D=2)
    missing = rng.uniform(size=T) < 0.4
    X[missing] = np.nan
    lf = np.zeros((T, K))
    if np.any(~missing):
        lf[~missing] = R.log_frameprob_of(kind, X[~missing], params, ct)
    bf = R.brute_force(np.log(params["startprob_"]), np.log(params["transmat_"]), lf, lengths)
    hyper = dict(covariance_type=ct, allow_missing=True)
    if kind == "gmm":
        hyper["n_mix"] = 2
    model = R.lvm_model(kind, params, K, **hyper)
    # (atol: with every row missing the log-likelihood is 0)
    np.testing.assert_allclose(model.score(X, lengths), bf["log_prob"].sum(), rtol=1e-10, atol=1e-12)
    log_prob, posteriors = model.score_samples(X, lengths)
    np.testing.assert_allclose(posteriors, bf["posteriors"], rtol=1e-9, atol=1e-12)
    v_log_prob, path = model.decode(X, lengths, algorithm="viterbi")
    np.testing.assert_allclose(v_log_prob, bf["viterbi_log_prob"].sum(), rtol=1e-10, atol=1e-12)
    for (lo, hi), best in zip(R.split_lengths(lengths), bf["viterbi_log_prob"]):
        joint = R.path_log_joint(np.log(params["startprob_"]), np.log(params["transmat_"]), lf[lo:hi],
                                 np.asarray(path)[None, lo:hi])
        np.testing.assert_allclose(joint[0], best, rtol=1e-10, atol=1e-12)


def test_missing_rows_in_em():
    """EM with missing rows: the objective is the marginal likelihood (brute
    force), start / transition statistics come from the marginalised
    posteriors, emission parameters stay finite, and the objective never
    decreases."""
    rng = np.random.default_rng(21)
    K, lengths = 2, np.array([5, 4])
    params = R.random_params(rng, "gaussian", K, D=2, covariance_type="diag")
    X = R.random_X(rng, "gaussian", 9, D=2)
    X[[1, 5, 6]] = np.nan
    missing = np.isnan(X[:, 0])
    lf = np.zeros((9, K))
    lf[~missing] = R.log_frameprob_of("gaussian", X[~missing], params)
    bf = R.brute_force(np.log(params["startprob_"]), np.log(params["transmat_"]), lf, lengths)

    model = R.lvm_model("gaussian", params, K, covariance_type="diag", allow_missing=True)
    model.fit(X, lengths)
    np.testing.assert_allclose(model.monitor_.history[0], bf["log_prob"].sum(), rtol=1e-10, atol=1e-12)
    startprob, transmat = _mle_start_trans(bf, 2)
    np.testing.assert_allclose(model.startprob_, startprob, rtol=1e-9)
    np.testing.assert_allclose(model.transmat_, transmat, rtol=1e-9)
    assert np.all(np.isfinite(model.means_)) and np.all(np.isfinite(model.covars_))
    assert np.all(model.covars_ > 0)

    long = R.lvm_model("gaussian", params, K, n_iter=15, covariance_type="diag", allow_missing=True)
    long.fit(X, lengths)
    history = np.asarray(long.monitor_.history)
    assert np.all(np.isfinite(history))
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:])), history


def test_labels_on_missing_rows():
    """A known state at a missing row still constrains the path: the objective
    is the brute-force sum over label-consistent paths with the missing
    emissions marginalised, and start / transition updates follow from it."""
    rng = np.random.default_rng(8)
    K, lengths = 3, np.array([4, 3])
    params = R.random_params(rng, "gaussian", K, D=2, covariance_type="diag")
    X = R.random_X(rng, "gaussian", 7, D=2)
    X[[1, 4]] = np.nan
    states = np.array([-1, 2, -1, -1, 0, 1, -1])  # rows 1 and 4 are missing and labelled
    missing = np.isnan(X[:, 0])
    lf = np.zeros((7, K))
    lf[~missing] = R.log_frameprob_of("gaussian", X[~missing], params)
    bf = R.brute_force(np.log(params["startprob_"]), np.log(params["transmat_"]), lf, lengths, states)
    model = R.lvm_model("gaussian", params, K, covariance_type="diag", allow_missing=True)
    model.fit(X, lengths, states=states)
    np.testing.assert_allclose(model.monitor_.history[0], bf["log_prob"].sum(), rtol=1e-10)
    startprob, transmat = _mle_start_trans(bf, 2)
    np.testing.assert_allclose(model.startprob_, startprob, rtol=1e-9, atol=1e-14)
    np.testing.assert_allclose(model.transmat_, transmat, rtol=1e-9, atol=1e-14)


def test_allow_missing_without_missing_rows_changes_nothing():
    rng = np.random.default_rng(2)
    params = R.random_params(rng, "gaussian", 3, D=2, covariance_type="full")
    X = R.random_X(rng, "gaussian", 12, D=2)
    a = R.lvm_model("gaussian", params, 3, covariance_type="full", n_iter=3, allow_missing=True)
    b = R.lvm_model("gaussian", params, 3, covariance_type="full", n_iter=3)
    np.testing.assert_allclose(a.score(X), b.score(X), rtol=1e-13)
    a.fit(X)
    b.fit(X)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-12)
    np.testing.assert_allclose(a.covars_, b.covars_, rtol=1e-12)


def test_whole_sequence_missing_contributes_zero():
    rng = np.random.default_rng(4)
    params = R.random_params(rng, "gaussian", 2, D=2, covariance_type="diag")
    X = R.random_X(rng, "gaussian", 7, D=2)
    X[4:] = np.nan  # the second sequence (rows 4..6) is entirely missing
    model = R.lvm_model("gaussian", params, 2, covariance_type="diag", allow_missing=True)
    np.testing.assert_allclose(model.score(X, [4, 3]), model.score(X[:4]), rtol=1e-12)
    _, posteriors = model.score_samples(X, [4, 3])
    # with nothing observed the posteriors are the prior marginals pi A^t
    prior = [params["startprob_"]]
    for _ in range(2):
        prior.append(prior[-1] @ params["transmat_"])
    np.testing.assert_allclose(posteriors[4:], np.array(prior), rtol=1e-10)


@pytest.mark.parametrize("method", ["score", "fit", "predict"])
def test_partially_missing_row_rejected(method):
    rng = np.random.default_rng(0)
    params = R.random_params(rng, "gaussian", 2, D=3, covariance_type="diag")
    X = R.random_X(rng, "gaussian", 6, D=3)
    X[2, 1] = np.nan  # one NaN in a row with observed features
    model = R.lvm_model("gaussian", params, 2, covariance_type="diag", allow_missing=True)
    with pytest.raises(ValueError, match=r"NaN") as excinfo:
        getattr(model, method)(X)
    assert re.search(r"\bX\b", str(excinfo.value)), str(excinfo.value)


def test_all_nan_row_rejected_without_allow_missing():
    rng = np.random.default_rng(0)
    params = R.random_params(rng, "gaussian", 2, D=2, covariance_type="diag")
    X = R.random_X(rng, "gaussian", 6, D=2)
    X[3] = np.nan
    model = R.lvm_model("gaussian", params, 2, covariance_type="diag")
    with pytest.raises(ValueError, match=r"allow_missing"):
        model.score(X)
