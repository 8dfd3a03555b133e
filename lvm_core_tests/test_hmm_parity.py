"""HMM inference and EM against independent references.

Three references, none of which shares code with lvm_core:

1. a hand-computed example (the two-state "healthy / fever" HMM that
   illustrates the Viterbi algorithm; the forward recursion of Rabiner 1989,
   eqs. 19-21, worked out on paper below);
2. brute-force enumeration over all K^T state paths (``hmm_reference``), for
   the kernels and for every model on random tiny problems;
3. hmmlearn 0.3.3 with identical parameters (marker ``reference``): total
   log-likelihood, posteriors, Viterbi and MAP decoding, AIC/BIC, and every
   parameter after EM steps from the same starting point, with default and
   with non-trivial priors, for every emission and covariance type, at a
   relative tolerance of 1e-8.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st

from . import hmm_reference as R
from .conftest import require

RTOL = 1e-8
ATOL_PROB = 1e-12  # probabilities are compared absolutely below this size
ATOL_LOGP = 1e-10  # log-likelihoods near 0 (a perfect fit) are compared absolutely

KINDS = [
    ("categorical", None),
    ("gaussian", "diag"),
    ("gaussian", "full"),
    ("gaussian", "spherical"),
    ("gaussian", "tied"),
    ("gmm", "diag"),
    ("gmm", "full"),
    ("gmm", "spherical"),
    ("gmm", "tied"),
    ("poisson", None),
]
KIND_IDS = [k if c is None else f"{k}-{c}" for k, c in KINDS]

EMISSION_PARAMS = {
    "categorical": ("emissionprob_",),
    "gaussian": ("means_", "covars_"),
    "gmm": ("weights_", "means_", "covars_"),
    "poisson": ("lambdas_",),
}


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

def _hyper(kind, ct, F, M):
    hyper = {}
    if kind == "categorical":
        hyper["n_features"] = F
    if kind in ("gaussian", "gmm"):
        hyper["covariance_type"] = ct
    if kind == "gmm":
        hyper["n_mix"] = M
    return hyper


@st.composite
def problems(draw, kind, ct, max_K=3, max_T=6, transitions=False):
    """A random model of ``kind`` with K states and data in 1-3 sequences.

    ``transitions=True`` (for the EM tests) keeps the M-step well posed:
    the first sequence is at least 2 long, so that every state has expected
    outgoing transitions (with all sequences of length 1 and no prior,
    hmmlearn's M-step leaves all-zero rows in ``transmat_``, which are not
    distributions); full / tied covariances get at least D + 2 rows; GMM
    components start near data points, so that each has some mass.
    """
    K = draw(st.integers(1, max_K), label="K")
    D = draw(st.integers(1, 3), label="D")
    F = draw(st.integers(2, 4), label="n_features")
    M = draw(st.integers(1, 2), label="n_mix")
    lengths = draw(st.lists(st.integers(1, max_T), min_size=1, max_size=3), label="lengths")
    if transitions:
        lengths[0] = max(lengths[0], 2)
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    params = R.random_params(rng, kind, K, D=D, n_features=F, n_mix=M,
                             covariance_type=ct or "diag")
    X = R.random_X(rng, kind, sum(lengths), D=D, n_features=F)
    if transitions and kind == "gmm":  # components near the data, so that each has mass
        params["means_"] = X[rng.integers(0, len(X), size=(K, M))] + 0.3 * rng.normal(size=(K, M, D))
    if transitions and kind in ("gaussian", "gmm") and ct in ("full", "tied"):
        lengths[0] = max(lengths[0], D + 2)  # enough rows for a non-singular scatter matrix
        X = np.concatenate([X, R.random_X(rng, kind, sum(lengths) - len(X), D=D)])
    return dict(kind=kind, ct=ct, K=K, D=D, F=F, M=M, lengths=np.array(lengths),
                params=params, X=X, hyper=_hyper(kind, ct, F, M))


def _fixed_problem(kind, ct, seed=0, K=3, D=2, F=4, M=2, lengths=(5, 1, 7)):
    rng = np.random.default_rng(seed)
    params = R.random_params(rng, kind, K, D=D, n_features=F, n_mix=M,
                             covariance_type=ct or "diag")
    X = R.random_X(rng, kind, sum(lengths), D=D, n_features=F)
    return dict(kind=kind, ct=ct, K=K, D=D, F=F, M=M, lengths=np.array(lengths),
                params=params, X=X, hyper=_hyper(kind, ct, F, M))


def _reference(pb):
    """Brute-force results for a problem dict."""
    p = pb["params"]
    log_frameprob = R.log_frameprob_of(pb["kind"], pb["X"], p, pb["ct"] or "diag")
    with np.errstate(divide="ignore"):
        return R.brute_force(np.log(p["startprob_"]), np.log(p["transmat_"]),
                             log_frameprob, pb["lengths"]), log_frameprob


def _compact_covars_hmmlearn(model, kind, ct):
    """hmmlearn's covariances in our compact layout."""
    if kind == "gaussian":
        cv = np.asarray(model._covars_)
        if ct == "spherical" and cv.ndim == 2:  # hmmlearn tiles (K,) to (K, D) in its M-step
            np.testing.assert_allclose(cv, cv[:, :1] * np.ones_like(cv), rtol=1e-12)
            cv = cv[:, 0]
        return cv
    return np.asarray(model.covars_)


def _assert_same_paths(ours, theirs, pb, log_frameprob, what="Viterbi path"):
    """Paths equal, or (a floating-point tie) of equal joint log-probability."""
    ours = np.asarray(ours)
    assert ours.shape == np.asarray(theirs).shape, f"{what}: shape {ours.shape}"
    if np.array_equal(ours, theirs):
        return
    p = pb["params"]
    for lo, hi in R.split_lengths(pb["lengths"]):
        a = R.path_log_joint(np.log(p["startprob_"]), np.log(p["transmat_"]),
                             log_frameprob[lo:hi], np.stack([ours[lo:hi], theirs[lo:hi]]))
        np.testing.assert_allclose(a[0], a[1], rtol=RTOL,
                                   err_msg=f"{what} differs in rows {lo}:{hi} and is not a tie")


def _assert_same_map(ours, theirs, posteriors):
    ours = np.asarray(ours)
    assert ours.shape == np.asarray(theirs).shape
    differ = np.flatnonzero(ours != theirs)
    for t in differ:  # only ties may differ
        np.testing.assert_allclose(posteriors[t, ours[t]], posteriors[t, theirs[t]],
                                   rtol=0, atol=1e-10, err_msg=f"MAP state differs at t={t}")


# --------------------------------------------------------------------------
# 1. the hand-computed example
# --------------------------------------------------------------------------
#
# pi = (0.6, 0.4); A = [[0.7, 0.3], [0.4, 0.6]];
# B = [[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]];  x = (0, 1, 2).
# alpha_1 = (0.6*0.5, 0.4*0.1)                         = (0.3, 0.04)
# alpha_2 = ((0.3*0.7 + 0.04*0.4)*0.4, (0.3*0.3 + 0.04*0.6)*0.3)
#                                                       = (0.0904, 0.0342)
# alpha_3 = ((0.0904*0.7 + 0.0342*0.4)*0.1, (0.0904*0.3 + 0.0342*0.6)*0.6)
#                                                       = (0.007696, 0.028584)
# p(x) = 0.03628 = 907/25000;  gamma_3 = alpha_3 / p(x) = (962/4535, 3573/4535).
# Best path (0, 0, 1): 0.6*0.5 * 0.7*0.4 * 0.3*0.6 = 0.01512.
# gamma_1 = (795/907, 112/907), gamma_2 = (565/907, 342/907) (by summing the
# eight path probabilities).

HAND = dict(
    startprob_=np.array([0.6, 0.4]),
    transmat_=np.array([[0.7, 0.3], [0.4, 0.6]]),
    emissionprob_=np.array([[0.5, 0.4, 0.1], [0.1, 0.3, 0.6]]),
)
HAND_X = np.array([[0], [1], [2]])
HAND_POSTERIORS = np.array([[795 / 907, 112 / 907], [565 / 907, 342 / 907],
                            [962 / 4535, 3573 / 4535]])


def test_brute_force_reference_reproduces_hand_computation():
    log_frameprob = R.categorical_log_frameprob(HAND_X, HAND["emissionprob_"])
    bf = R.brute_force(np.log(HAND["startprob_"]), np.log(HAND["transmat_"]), log_frameprob)
    np.testing.assert_allclose(bf["log_prob"], [math.log(0.03628)], rtol=1e-14)
    np.testing.assert_allclose(bf["posteriors"], HAND_POSTERIORS, rtol=1e-14)
    np.testing.assert_array_equal(bf["viterbi_path"], [0, 0, 1])
    np.testing.assert_allclose(bf["viterbi_log_prob"], [math.log(0.01512)], rtol=1e-14)


def test_categorical_hand_computed_example():
    model = R.lvm_model("categorical", HAND, 2, n_features=3)
    np.testing.assert_allclose(model.score(HAND_X), math.log(0.03628), rtol=1e-12)
    log_prob, posteriors = model.score_samples(HAND_X)
    np.testing.assert_allclose(log_prob, math.log(0.03628), rtol=1e-12)
    np.testing.assert_allclose(posteriors, HAND_POSTERIORS, rtol=1e-12)
    np.testing.assert_allclose(model.predict_proba(HAND_X), HAND_POSTERIORS, rtol=1e-12)
    log_prob, path = model.decode(HAND_X, algorithm="viterbi")
    np.testing.assert_array_equal(path, [0, 0, 1])
    np.testing.assert_allclose(log_prob, math.log(0.01512), rtol=1e-12)
    np.testing.assert_array_equal(model.predict(HAND_X), [0, 0, 1])
    # MAP: argmax of each gamma_t = (0, 0, 1); hmmlearn's score is sum_t max_k gamma_t(k)
    log_prob, path = model.decode(HAND_X, algorithm="map")
    np.testing.assert_array_equal(path, [0, 0, 1])
    np.testing.assert_allclose(log_prob, 795 / 907 + 565 / 907 + 3573 / 4535, rtol=1e-12)
    # (T,) symbols are accepted as well as (T, 1)
    np.testing.assert_allclose(model.score(HAND_X.ravel()), math.log(0.03628), rtol=1e-12)


def test_categorical_hand_computed_one_em_step():
    """One Baum-Welch step on the hand example, from the brute-force posteriors.

    pi' = gamma_1; a'_ij = sum_t xi_t(i,j) / sum_t gamma_t(i) (t < T);
    b'_k(s) = sum_{t: x_t = s} gamma_t(k) / sum_t gamma_t(k)  (Rabiner eq. 40).
    """
    log_frameprob = R.categorical_log_frameprob(HAND_X, HAND["emissionprob_"])
    bf = R.brute_force(np.log(HAND["startprob_"]), np.log(HAND["transmat_"]), log_frameprob)
    gamma = bf["posteriors"]
    expected_transmat = bf["xi_sum"] / gamma[:-1].sum(axis=0)[:, None]
    expected_emission = gamma.T / gamma.sum(axis=0)[:, None]  # x = (0, 1, 2): one-hot rows
    model = R.lvm_model("categorical", HAND, 2, n_features=3).fit(HAND_X)
    np.testing.assert_allclose(model.startprob_, HAND_POSTERIORS[0], rtol=1e-12)
    np.testing.assert_allclose(model.transmat_, expected_transmat, rtol=1e-12)
    np.testing.assert_allclose(model.emissionprob_, expected_emission, rtol=1e-12)
    np.testing.assert_allclose(model.monitor_.history[0], math.log(0.03628), rtol=1e-12)


# --------------------------------------------------------------------------
# 2. brute force: kernels and models
# --------------------------------------------------------------------------

def _kernel(name):
    import importlib

    return importlib.import_module(f"lvm_core.kernels.{name}")


def _random_log_params(rng, K, T, forbid=False):
    startprob = R.random_startprob(rng, K)
    transmat = R.random_transmat(rng, K)
    if forbid and K > 1:  # a left-right chain: no way back, one forbidden start
        transmat = np.triu(transmat)
        transmat /= transmat.sum(axis=1, keepdims=True)
        startprob[-1] = 0.0
        startprob /= startprob.sum()
    log_frameprob = rng.normal(scale=2.0, size=(T, K))
    with np.errstate(divide="ignore"):
        return np.log(startprob), np.log(transmat), log_frameprob


@pytest.mark.parametrize("kernel", ["hmm_numba", "hmm_xp"])
@settings(max_examples=15)
@given(K=st.integers(1, 3), lengths=st.lists(st.integers(1, 5), min_size=1, max_size=3),
       seed=st.integers(0, 2**32 - 1), forbid=st.booleans())
def test_kernels_match_brute_force(kernel, K, lengths, seed, forbid):
    mod = _kernel(kernel)
    rng = np.random.default_rng(seed)
    lengths = np.array(lengths, dtype=np.int64)
    log_startprob, log_transmat, log_frameprob = _random_log_params(rng, K, int(lengths.sum()), forbid)
    bf = R.brute_force(log_startprob, log_transmat, log_frameprob, lengths)

    log_prob, posteriors, start_sum, xi_sum = mod.forward_backward(
        log_startprob, log_transmat, log_frameprob, lengths)
    np.testing.assert_allclose(np.asarray(log_prob), bf["log_prob"], rtol=1e-10)
    np.testing.assert_allclose(np.asarray(posteriors), bf["posteriors"], rtol=1e-9, atol=ATOL_PROB)
    np.testing.assert_allclose(np.asarray(start_sum), bf["start_sum"], rtol=1e-9, atol=ATOL_PROB)
    np.testing.assert_allclose(np.asarray(xi_sum), bf["xi_sum"], rtol=1e-9, atol=ATOL_PROB)
    assert np.asarray(xi_sum).shape == (K, K)

    np.testing.assert_allclose(
        np.asarray(mod.forward_log_prob(log_startprob, log_transmat, log_frameprob, lengths)),
        bf["log_prob"], rtol=1e-10)

    v_log_prob, path = mod.viterbi(log_startprob, log_transmat, log_frameprob, lengths)
    path = np.asarray(path)
    assert path.dtype == np.int64 and path.shape == (int(lengths.sum()),)
    np.testing.assert_allclose(np.asarray(v_log_prob), bf["viterbi_log_prob"], rtol=1e-10)
    for (lo, hi), best in zip(R.split_lengths(lengths), bf["viterbi_log_prob"]):
        joint = R.path_log_joint(log_startprob, log_transmat, log_frameprob[lo:hi], path[None, lo:hi])
        np.testing.assert_allclose(joint[0], best, rtol=1e-10)


def test_kernels_agree_on_long_sequences():
    """numba and array-API kernels: same numbers where brute force cannot go (T = 500)."""
    rng = np.random.default_rng(3)
    K, lengths = 4, np.array([200, 1, 299], dtype=np.int64)
    log_startprob, log_transmat, log_frameprob = _random_log_params(rng, K, int(lengths.sum()))
    log_frameprob = log_frameprob * 10.0  # wide dynamic range: scaling must hold up
    a = _kernel("hmm_numba").forward_backward(log_startprob, log_transmat, log_frameprob, lengths)
    b = _kernel("hmm_xp").forward_backward(log_startprob, log_transmat, log_frameprob, lengths)
    for x, y in zip(a, b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(np.asarray(a[1]).sum(axis=1), 1.0, rtol=1e-12)
    # sum_j xi_sum[i, j] = sum over non-final steps of gamma_t(i)
    gamma = np.asarray(a[1])
    ends = np.cumsum(lengths) - 1
    not_last = np.ones(len(gamma), bool)
    not_last[ends] = False
    np.testing.assert_allclose(np.asarray(a[3]).sum(axis=1), gamma[not_last].sum(axis=0), rtol=1e-9)
    va = _kernel("hmm_numba").viterbi(log_startprob, log_transmat, log_frameprob, lengths)
    vb = _kernel("hmm_xp").viterbi(log_startprob, log_transmat, log_frameprob, lengths)
    np.testing.assert_allclose(np.asarray(va[0]), np.asarray(vb[0]), rtol=1e-12)
    np.testing.assert_array_equal(np.asarray(va[1]), np.asarray(vb[1]))


def test_xp_kernel_on_simulated_device(backend64):
    """The array-API kernel runs where NumPy conversion is refused and returns
    arrays of the input namespace, equal to brute force."""
    rng = np.random.default_rng(5)
    K, lengths = 2, np.array([3, 2], dtype=np.int64)
    log_startprob, log_transmat, log_frameprob = _random_log_params(rng, K, 5)
    bf = R.brute_force(log_startprob, log_transmat, log_frameprob, lengths)
    mod = _kernel("hmm_xp")
    args = [backend64.asarray(a) for a in (log_startprob, log_transmat, log_frameprob)]
    log_prob, posteriors, start_sum, xi_sum = mod.forward_backward(*args, lengths)
    for got, want in ((log_prob, bf["log_prob"]), (posteriors, bf["posteriors"]),
                      (start_sum, bf["start_sum"]), (xi_sum, bf["xi_sum"])):
        assert type(got) is type(args[0])
        np.testing.assert_allclose(backend64.to_numpy(got), want, rtol=1e-9, atol=ATOL_PROB)
    v_log_prob, path = mod.viterbi(*args, lengths)
    np.testing.assert_allclose(backend64.to_numpy(v_log_prob), bf["viterbi_log_prob"], rtol=1e-10)
    np.testing.assert_array_equal(backend64.to_numpy(path), bf["viterbi_path"])


@pytest.mark.parametrize("kind,ct", KINDS, ids=KIND_IDS)
@settings(max_examples=4)
@given(data=st.data())
def test_models_match_brute_force(kind, ct, data):
    """score / score_samples / predict_proba / decode / predict of every model
    equal the sums and maxima over all state paths."""
    pb = data.draw(problems(kind, ct, max_T=4))
    implementation = data.draw(st.sampled_from(["auto", "numba", "xp"]), label="implementation")
    bf, log_frameprob = _reference(pb)
    X, lengths = pb["X"], pb["lengths"]
    model = R.lvm_model(kind, pb["params"], pb["K"], implementation=implementation, **pb["hyper"])
    assert isinstance(model.score(X, lengths), float)
    np.testing.assert_allclose(model.score(X, lengths), bf["log_prob"].sum(), rtol=1e-10, atol=1e-12)
    log_prob, posteriors = model.score_samples(X, lengths)
    np.testing.assert_allclose(log_prob, bf["log_prob"].sum(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(posteriors, bf["posteriors"], rtol=1e-9, atol=ATOL_PROB)
    np.testing.assert_allclose(model.predict_proba(X, lengths), bf["posteriors"],
                               rtol=1e-9, atol=ATOL_PROB)
    v_log_prob, path = model.decode(X, lengths, algorithm="viterbi")
    np.testing.assert_allclose(v_log_prob, bf["viterbi_log_prob"].sum(), rtol=1e-10, atol=1e-12)
    _assert_same_paths(path, bf["viterbi_path"], pb, log_frameprob)
    _assert_same_paths(model.predict(X, lengths), bf["viterbi_path"], pb, log_frameprob)
    m_score, m_path = model.decode(X, lengths, algorithm="map")
    _assert_same_map(m_path, bf["map_path"], bf["posteriors"])
    np.testing.assert_allclose(m_score, bf["map_score"], rtol=1e-10)


def test_em_step_keeps_small_expected_counts():
    """A state that explains the data very poorly (emission probabilities 1e-9)
    has expected counts ~1e-9; its M-step rows must still be exact to 1e-8
    relative, as in the brute-force reference (and hmmlearn, which adds
    ``prior - 1`` to the counts).  Computing ``(counts + prior) - 1`` instead
    rounds such counts to multiples of 2**-52."""
    params = dict(startprob_=np.array([0.5, 0.3, 0.2]),
                  transmat_=np.array([[0.6, 0.3, 0.1], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4]]),
                  emissionprob_=np.array([[0.7, 0.2, 0.1], [0.1, 0.6, 0.3], [1e-9, 1e-9, 1 - 2e-9]]))
    X = np.array([[0], [1], [1], [0], [0], [1]])
    log_frameprob = R.categorical_log_frameprob(X, params["emissionprob_"])
    bf = R.brute_force(np.log(params["startprob_"]), np.log(params["transmat_"]), log_frameprob)
    transmat = bf["xi_sum"] / bf["xi_sum"].sum(axis=1, keepdims=True)
    emission = bf["posteriors"].T @ np.eye(3)[X[:, 0]]  # (K, F) expected counts
    emission /= emission.sum(axis=1, keepdims=True)
    model = R.lvm_model("categorical", params, 3, n_features=3).fit(X)
    np.testing.assert_allclose(model.startprob_, bf["start_sum"], rtol=1e-8)
    np.testing.assert_allclose(model.transmat_, transmat, rtol=1e-8)
    np.testing.assert_allclose(model.emissionprob_, emission, rtol=1e-8)


@pytest.mark.parametrize("kind,ct", [("categorical", None), ("gaussian", "full"), ("gmm", "diag"),
                                     ("poisson", None)])
def test_models_on_backend_match_brute_force(backend64, kind, ct):
    """Data and parameters on another array namespace / device (array-api-strict's
    device1 refuses NumPy conversion): same numbers as brute force, results in
    the input namespace, and one EM step equal to the NumPy model's."""
    pb = _fixed_problem(kind, ct, seed=13, K=2, lengths=(3, 4))
    bf, log_frameprob = _reference(pb)
    as_dev = {k: backend64.asarray(v) for k, v in pb["params"].items()}
    X = backend64.asarray(pb["X"])
    lengths = pb["lengths"]
    model = R.lvm_model(kind, as_dev, pb["K"], **pb["hyper"])
    np.testing.assert_allclose(model.score(X, lengths), bf["log_prob"].sum(), rtol=1e-10, atol=1e-12)
    _, posteriors = model.score_samples(X, lengths)
    assert type(posteriors) is type(X)
    np.testing.assert_allclose(backend64.to_numpy(posteriors), bf["posteriors"], rtol=1e-9,
                               atol=ATOL_PROB)
    v_log_prob, path = model.decode(X, lengths)
    np.testing.assert_allclose(v_log_prob, bf["viterbi_log_prob"].sum(), rtol=1e-10, atol=1e-12)
    _assert_same_paths(backend64.to_numpy(path), bf["viterbi_path"], pb, log_frameprob)

    model.fit(X, lengths)
    host = R.lvm_model(kind, pb["params"], pb["K"], **pb["hyper"]).fit(pb["X"], lengths)
    for name in pb["params"]:
        got = getattr(model, name)
        assert type(got) is type(X), name
        np.testing.assert_allclose(backend64.to_numpy(got), getattr(host, name), rtol=1e-10,
                                   atol=1e-14, err_msg=name)


# --------------------------------------------------------------------------
# 3. hmmlearn parity
# --------------------------------------------------------------------------

def _check_inference_parity(pb):
    require("hmmlearn")
    X, lengths, K = pb["X"], pb["lengths"], pb["K"]
    ours = R.lvm_model(pb["kind"], pb["params"], K, **pb["hyper"])
    theirs = R.hmmlearn_model(pb["kind"], pb["params"], K, **pb["hyper"])
    log_frameprob = R.log_frameprob_of(pb["kind"], X, pb["params"], pb["ct"] or "diag")

    np.testing.assert_allclose(ours.score(X, lengths), theirs.score(X, lengths), rtol=RTOL,
                               atol=ATOL_LOGP)
    lp_o, post_o = ours.score_samples(X, lengths)
    lp_t, post_t = theirs.score_samples(X, lengths)
    np.testing.assert_allclose(lp_o, lp_t, rtol=RTOL, atol=ATOL_LOGP)
    assert np.asarray(post_o).shape == (len(X), K)
    np.testing.assert_allclose(post_o, post_t, rtol=RTOL, atol=ATOL_PROB)
    np.testing.assert_allclose(ours.predict_proba(X, lengths), post_t, rtol=RTOL, atol=ATOL_PROB)

    v_o, path_o = ours.decode(X, lengths, algorithm="viterbi")
    v_t, path_t = theirs.decode(X, lengths, algorithm="viterbi")
    np.testing.assert_allclose(v_o, v_t, rtol=RTOL, atol=ATOL_LOGP)
    _assert_same_paths(path_o, path_t, pb, log_frameprob)
    _assert_same_paths(ours.predict(X, lengths), theirs.predict(X, lengths), pb, log_frameprob)

    m_o, mpath_o = ours.decode(X, lengths, algorithm="map")
    m_t, mpath_t = theirs.decode(X, lengths, algorithm="map")
    np.testing.assert_allclose(m_o, m_t, rtol=RTOL)
    _assert_same_map(mpath_o, mpath_t, post_t)

    # the model's own ``algorithm`` is the default of decode / predict
    ours.set_params(algorithm="map")
    theirs.set_params(algorithm="map")
    m_o, mpath_o = ours.decode(X, lengths)
    np.testing.assert_allclose(m_o, m_t, rtol=RTOL)
    _assert_same_map(ours.predict(X, lengths), theirs.predict(X, lengths), post_t)

    np.testing.assert_allclose(ours.aic(X, lengths), theirs.aic(X, lengths), rtol=RTOL)
    np.testing.assert_allclose(ours.bic(X, lengths), theirs.bic(X, lengths), rtol=RTOL)


def _hmmlearn_covariances_valid(model, kind, ct, K, D, M):
    """False where hmmlearn's M-step returned a covariance that is not a
    covariance (singular from fewer rows than features, or negative: its
    GMMHMM spherical default prior divides by D (N_km + 1) - M, which is < 0
    for a component with little mass).  lvm_core floors such collapsed
    covariances at min_covar instead, so no parity is expected there."""
    if kind == "gaussian":
        full = R.full_covars(_compact_covars_hmmlearn(model, kind, ct), ct, K, D)
    elif kind == "gmm":
        cv = np.asarray(model.covars_)
        full = cv if ct == "tied" else np.stack([R.full_covars(c, ct, M, D) for c in cv])
    else:
        return True
    full = full.reshape(-1, D, D)
    return bool(np.all(np.linalg.eigvalsh(0.5 * (full + np.swapaxes(full, 1, 2)))[:, 0] > 1e-6))


def _check_em_parity(pb, n_iter=1, learn=None, **priors):
    """Parameters and log-likelihood history after ``n_iter`` EM steps."""
    require("hmmlearn")
    X, lengths, K, kind = pb["X"], pb["lengths"], pb["K"], pb["kind"]
    implementation = priors.pop("implementation", "auto")
    hyper = dict(pb["hyper"], **priors)
    ours = R.lvm_model(kind, pb["params"], K, n_iter=n_iter, learn=learn,
                       implementation=implementation, **hyper)
    theirs = R.hmmlearn_model(kind, pb["params"], K, n_iter=n_iter, learn=learn, **hyper)
    given_params = {name: np.array(v, copy=True) for name, v in pb["params"].items()}

    R.hmmlearn_fit(theirs, X, lengths)
    assume(_hmmlearn_covariances_valid(theirs, kind, pb["ct"], K, pb["D"], pb["M"]))
    assert ours.fit(X, lengths) is ours

    assert ours.n_iter_ == theirs.monitor_.iter == n_iter
    np.testing.assert_allclose(ours.monitor_.history, list(theirs.monitor_.history), rtol=RTOL,
                               atol=ATOL_LOGP)
    for name in ("startprob_", "transmat_") + EMISSION_PARAMS[kind]:
        got = np.asarray(getattr(ours, name))
        if name == "covars_":
            want = _compact_covars_hmmlearn(theirs, kind, pb["ct"])
        else:
            want = np.asarray(getattr(theirs, name))
        assert got.shape == want.shape, f"{name}: shape {got.shape} != hmmlearn {want.shape}"
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=1e-13, err_msg=name)
        if learn is not None and name.rstrip("_") not in learn:
            np.testing.assert_array_equal(got, given_params[name], err_msg=f"{name} not in learn")
    if kind == "gaussian":  # (hmmlearn's own full form is wrong for "spherical" after fit)
        want = R.full_covars(_compact_covars_hmmlearn(theirs, kind, pb["ct"]), pb["ct"], K, pb["D"])
        np.testing.assert_allclose(ours.full_covars_, want, rtol=RTOL, atol=1e-13)
    # the fitted model scores like hmmlearn's fitted model
    np.testing.assert_allclose(ours.score(X, lengths), theirs.score(X, lengths), rtol=RTOL,
                               atol=ATOL_LOGP)


@pytest.mark.reference
@pytest.mark.parametrize("kind,ct", KINDS, ids=KIND_IDS)
@settings(max_examples=5)
@given(data=st.data())
def test_inference_parity_with_hmmlearn(kind, ct, data):
    _check_inference_parity(data.draw(problems(kind, ct)))


@pytest.mark.reference
@pytest.mark.parametrize("kind,ct", KINDS, ids=KIND_IDS)
@settings(max_examples=5)
@given(data=st.data())
def test_one_em_step_parity_with_hmmlearn(kind, ct, data):
    pb = data.draw(problems(kind, ct, transitions=True))
    implementation = data.draw(st.sampled_from(["numba", "xp"]), label="implementation")
    _check_em_parity(pb, n_iter=1, implementation=implementation)


def _priors(kind, ct, D):
    """Non-trivial priors, in hmmlearn's parametrisation."""
    priors = dict(startprob_prior=2.0, transmat_prior=1.5)
    if kind == "categorical":
        priors["emissionprob_prior"] = 1.7
    elif kind == "gaussian":
        priors.update(means_prior=0.5, means_weight=0.3, covars_prior=0.2,
                      covars_weight=3.0 if ct in ("diag", "spherical") else D + 2.0)
    elif kind == "gmm":
        priors.update(weights_prior=2.0, means_prior=0.5, means_weight=0.3)
        if ct in ("diag", "spherical"):
            priors.update(covars_prior=0.5, covars_weight=0.1)  # inverse-gamma alpha, beta
        else:
            priors.update(covars_prior=0.1, covars_weight=1.0)  # inverse-Wishart psi, nu
    elif kind == "poisson":
        priors.update(lambdas_prior=2.0, lambdas_weight=0.5)
    return priors


@pytest.mark.reference
@pytest.mark.parametrize("kind,ct", KINDS, ids=KIND_IDS)
@settings(max_examples=4)
@given(data=st.data())
def test_one_em_step_parity_with_priors(kind, ct, data):
    pb = data.draw(problems(kind, ct, transitions=True))
    _check_em_parity(pb, n_iter=1, **_priors(kind, ct, pb["D"]))


@pytest.mark.reference
@pytest.mark.parametrize("kind,ct", KINDS, ids=KIND_IDS)
def test_several_em_steps_parity(kind, ct):
    """Four EM steps with priors on a fixed problem: the history and the
    final parameters still agree (no state leaks between iterations)."""
    pb = _fixed_problem(kind, ct, seed=11, lengths=(6, 2, 9))
    _check_em_parity(pb, n_iter=4, **_priors(kind, ct, pb["D"]))


@pytest.mark.reference
@pytest.mark.parametrize("kind,ct,learn", [
    ("categorical", None, ("transmat", "emissionprob")),
    ("categorical", None, ("startprob",)),
    ("gaussian", "diag", ("startprob", "means")),
    ("gaussian", "full", ("transmat", "means")),  # (hmmlearn cannot learn covars without means)
    ("gaussian", "tied", ("startprob", "transmat")),
    ("gmm", "diag", ("weights", "covars")),
    ("gmm", "spherical", ("means",)),
    ("poisson", None, ("transmat", "lambdas")),
])
def test_learn_subset_parity(kind, ct, learn):
    """``learn`` names the parameters EM updates (hmmlearn's ``params`` letters);
    the others stay exactly as set (bit for bit: EM does not touch them)."""
    pb = _fixed_problem(kind, ct, seed=4)
    _check_em_parity(pb, n_iter=2, learn=learn)


@pytest.mark.reference
def test_array_priors_parity():
    """Dirichlet concentrations given per state / per transition, and a
    prior < 1 that clips some counts to zero: max(counts + prior - 1, 0)."""
    pb = _fixed_problem("categorical", None, seed=7, K=3, F=4, lengths=(12, 9))
    priors = dict(startprob_prior=np.array([1.0, 3.0, 0.5]),
                  transmat_prior=np.array([[2.0, 1.0, 0.6], [1.0, 1.0, 1.0], [0.8, 1.5, 4.0]]),
                  emissionprob_prior=0.9)
    _check_em_parity(pb, n_iter=1, **priors)
    pb = _fixed_problem("gaussian", "diag", seed=8, K=2, D=2, lengths=(10,))
    priors = dict(means_prior=np.array([[0.0, 1.0], [-1.0, 0.5]]), means_weight=0.7,
                  covars_prior=np.array([[0.1, 0.2], [0.3, 0.4]]), covars_weight=2.5)
    _check_em_parity(pb, n_iter=1, **priors)


@pytest.mark.reference
@pytest.mark.parametrize("ct", R.COVARIANCE_TYPES)
def test_gmm_array_priors_parity(ct):
    """GMMHMM priors given with hmmlearn's full shapes."""
    pb = _fixed_problem("gmm", ct, seed=9, K=2, D=2, M=2, lengths=(8, 5))
    K, M, D = 2, 2, 2
    priors = dict(weights_prior=np.array([[1.5, 2.0], [3.0, 1.0]]),
                  means_prior=np.linspace(-1, 1, K * M * D).reshape(K, M, D),
                  means_weight=np.array([[0.1, 0.2], [0.3, 0.4]]))
    if ct == "full":
        priors.update(covars_prior=np.broadcast_to(0.2 * np.eye(D), (K, M, D, D)).copy(),
                      covars_weight=np.array([[1.0, 2.0], [0.5, 1.5]]))
    elif ct == "tied":
        priors.update(covars_prior=np.broadcast_to(0.2 * np.eye(D), (K, D, D)).copy(),
                      covars_weight=np.array([1.0, 2.0]))
    elif ct == "diag":
        priors.update(covars_prior=np.full((K, M, D), 0.4), covars_weight=np.full((K, M, D), 0.2))
    else:
        priors.update(covars_prior=np.full((K, M), 0.4), covars_weight=np.full((K, M), 0.2))
    _check_em_parity(pb, n_iter=1, **priors)


@pytest.mark.reference
def test_long_sequences_parity():
    """Thousands of steps with a wide dynamic range of emission densities:
    the scaled recursions keep 1e-8 agreement with hmmlearn's log-space ones."""
    pb = _fixed_problem("gaussian", "diag", seed=17, K=4, D=3, lengths=(1500, 7, 1200))
    pb["X"] = pb["X"] * 3.0  # far tails: log-densities down to about -100
    _check_inference_parity(pb)
    _check_em_parity(pb, n_iter=2)


@pytest.mark.parametrize("kind,ct", [("categorical", None), ("gaussian", "tied"), ("gmm", "spherical"),
                                     ("poisson", None)])
def test_init_auto_keeps_parameters_set_by_hand(kind, ct):
    """``init="auto"`` initialises only the parameters that are not set: with
    all of them set, fitting is the same as with ``init=()``."""
    pb = _fixed_problem(kind, ct, seed=19)
    a = R.lvm_model(kind, pb["params"], pb["K"], n_iter=2, **pb["hyper"])
    a.set_params(init="auto", random_state=0)
    a.fit(pb["X"], pb["lengths"])
    b = R.lvm_model(kind, pb["params"], pb["K"], n_iter=2, **pb["hyper"]).fit(pb["X"], pb["lengths"])
    np.testing.assert_allclose(a.monitor_.history, b.monitor_.history, rtol=1e-13)
    for name in pb["params"]:
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), rtol=1e-13, atol=1e-15,
                                   err_msg=name)


@pytest.mark.parametrize("ct", R.COVARIANCE_TYPES)
def test_gmm_with_one_component_is_gaussian(ct):
    """GMMHMM(n_mix=1) and GaussianHMM with the same means and covariances are
    the same model: equal likelihoods, posteriors and Viterbi paths."""
    pb = _fixed_problem("gaussian", ct, seed=23, K=3, D=2, lengths=(6, 5))
    K, D = 3, 2
    g = R.lvm_model("gaussian", pb["params"], K, covariance_type=ct)
    cv = np.asarray(pb["params"]["covars_"])
    if ct == "tied":  # GaussianHMM: one (D, D) for all states; GMMHMM: one per state
        mix_covars = np.broadcast_to(cv, (K, D, D)).copy()
    else:  # (K, ...) -> (K, 1, ...)
        mix_covars = cv[:, None]
    mix = dict(startprob_=pb["params"]["startprob_"], transmat_=pb["params"]["transmat_"],
               weights_=np.ones((K, 1)), means_=pb["params"]["means_"][:, None, :], covars_=mix_covars)
    m = R.lvm_model("gmm", mix, K, covariance_type=ct, n_mix=1)
    X, lengths = pb["X"], pb["lengths"]
    np.testing.assert_allclose(m.score(X, lengths), g.score(X, lengths), rtol=1e-12)
    np.testing.assert_allclose(m.predict_proba(X, lengths), g.predict_proba(X, lengths),
                               rtol=1e-10, atol=1e-14)
    np.testing.assert_array_equal(m.predict(X, lengths), g.predict(X, lengths))
