"""Bad input to the HMMs raises clear errors; good input is never mutated.

Every error must be a ValueError / TypeError (``NotFittedError`` before fit)
whose message names the offending argument, so the checks below match on the
argument's name and, where the task states them, on the values received and
expected (e.g. hmmlearn's "Largest symbol is 7 but the model only emits
symbols up to 4").  The impossible-observation checks compare with the
brute-force reference (the sequence really has probability zero) before
asking for an error.
"""
from __future__ import annotations

import re

import numpy as np
import pytest

from lvm_core.validation import NotFittedError

from . import hmm_reference as R

KIND_HYPER = {
    "categorical": dict(n_features=4),
    "gaussian": dict(covariance_type="diag"),
    "gmm": dict(covariance_type="diag", n_mix=2),
    "poisson": dict(),
}
KINDS = list(KIND_HYPER)
CLASS_NAMES = {"categorical": "CategoricalHMM", "gaussian": "GaussianHMM",
               "gmm": "GMMHMM", "poisson": "PoissonHMM"}


def _cls(kind):
    from lvm_core.models import hmm

    return getattr(hmm, CLASS_NAMES[kind])


def _problem(kind, K=2, D=2, lengths=(4, 3), seed=0):
    rng = np.random.default_rng(seed)
    params = R.random_params(rng, kind, K, D=D, n_features=4, n_mix=2)
    X = R.random_X(rng, kind, sum(lengths), D=D, n_features=4)
    return params, X, np.array(lengths)


def _ready(kind, K=2, **extra):
    """A model of ``kind`` with parameters set by hand, and matching data."""
    params, X, lengths = _problem(kind, K=K)
    model = R.lvm_model(kind, params, K, **dict(KIND_HYPER[kind], **extra))
    return model, X, lengths


def _message(excinfo):
    return str(excinfo.value)


# --------------------------------------------------------------------------
# not fitted
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("method", ["score", "score_samples", "predict", "predict_proba",
                                    "decode", "aic", "bic"])
def test_not_fitted(kind, method):
    _, X, _ = _problem(kind)
    model = _cls(kind)(n_components=2, **KIND_HYPER[kind])
    with pytest.raises(NotFittedError, match=r"fit"):
        getattr(model, method)(X)


@pytest.mark.parametrize("kind", KINDS)
def test_sample_not_fitted(kind):
    model = _cls(kind)(n_components=2, **KIND_HYPER[kind])
    with pytest.raises(NotFittedError, match=r"fit"):
        model.sample(5, random_state=0)


# --------------------------------------------------------------------------
# X: empty, wrong shape, wrong dtype, NaN / inf
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
def test_empty_X(kind):
    _, X, _ = _problem(kind)
    empty = X[:0]
    with pytest.raises(ValueError, match=r"\bX\b"):
        _cls(kind)(n_components=2, random_state=0, **KIND_HYPER[kind]).fit(empty)
    model, _, _ = _ready(kind)
    with pytest.raises(ValueError, match=r"\bX\b"):
        model.score(empty)


@pytest.mark.parametrize("kind", ["gaussian", "gmm", "poisson"])
def test_X_wrong_number_of_features(kind):
    model, X, _ = _ready(kind)  # D = 2
    X3 = np.concatenate([X, X[:, :1]], axis=1)
    for method in ("score", "predict", "score_samples"):
        with pytest.raises(ValueError, match=r"\bX\b") as excinfo:
            getattr(model, method)(X3)
        msg = _message(excinfo)
        assert "2" in msg and "3" in msg, f"expected and received sizes not named: {msg}"


@pytest.mark.parametrize("kind", KINDS)
def test_X_three_dimensional(kind):
    model, X, _ = _ready(kind)
    with pytest.raises(ValueError, match=r"\bX\b"):
        model.score(X[:, :, None])
    with pytest.raises(ValueError, match=r"\bX\b"):
        _cls(kind)(n_components=2, random_state=0, **KIND_HYPER[kind]).fit(X[:, :, None])


def test_categorical_X_with_two_columns():
    model, X, _ = _ready("categorical")
    with pytest.raises(ValueError, match=r"\bX\b"):
        model.score(np.concatenate([X, X], axis=1))


def test_categorical_symbol_out_of_range():
    model, X, _ = _ready("categorical")  # n_features = 4: symbols 0..3
    X = X.copy()
    X[2, 0] = 7
    for call in (lambda: model.score(X), lambda: model.predict(X),
                 lambda: model.fit(X)):
        with pytest.raises(ValueError, match=r"(?i)symbol") as excinfo:
            call()
        msg = _message(excinfo)
        assert re.search(r"\b7\b", msg) and re.search(r"\b3\b", msg), msg


def test_categorical_symbol_error_message_like_hmmlearn():
    """The task's example message: largest symbol vs the largest the model emits."""
    rng = np.random.default_rng(0)
    params = R.random_params(rng, "categorical", 2, n_features=5)
    model = R.lvm_model("categorical", params, 2, n_features=5)
    with pytest.raises(ValueError, match=r"Largest symbol is 7 but the model only emits symbols up to 4"):
        model.score(np.array([[0], [7], [1]]))


def test_categorical_negative_symbol():
    model, X, _ = _ready("categorical")
    X = X.copy()
    X[0, 0] = -1
    with pytest.raises(ValueError, match=r"(?i)symbol|\bX\b"):
        model.score(X)


@pytest.mark.parametrize("bad", [np.array([[0.5], [1.0], [2.0]]), np.array([[0.0], [1.2], [2.0]])])
def test_categorical_non_integer_symbols(bad):
    model, _, _ = _ready("categorical")
    with pytest.raises((TypeError, ValueError), match=r"(?i)integer") as excinfo:
        model.score(bad)
    assert re.search(r"(?i)\bX\b|symbol", _message(excinfo))
    with pytest.raises((TypeError, ValueError), match=r"(?i)integer"):
        _cls("categorical")(n_components=2, random_state=0).fit(bad)


def test_categorical_string_X():
    model, _, _ = _ready("categorical")
    with pytest.raises((TypeError, ValueError), match=r"\bX\b"):
        model.score(np.array([["a"], ["b"]]))


def test_categorical_inferred_n_features_then_larger_symbol():
    X = np.array([[0], [1], [2], [1], [0], [2]])
    model = _cls("categorical")(n_components=2, random_state=0, n_iter=2).fit(X)
    assert model.emissionprob_.shape == (2, 3)
    with pytest.raises(ValueError, match=r"(?i)symbol") as excinfo:
        model.score(np.array([[0], [5]]))
    assert "5" in _message(excinfo)


def test_poisson_negative_counts():
    model, X, _ = _ready("poisson")
    X = X.copy()
    X[3, 1] = -2
    for call in (lambda: model.score(X), lambda: model.fit(X),
                 lambda: _cls("poisson")(n_components=2, random_state=0).fit(X)):
        with pytest.raises(ValueError, match=r"(?i)negative") as excinfo:
            call()
        assert re.search(r"\bX\b", _message(excinfo)), _message(excinfo)


@pytest.mark.parametrize("kind", ["gaussian", "gmm"])
@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_nan_or_inf_without_allow_missing(kind, value):
    model, X, _ = _ready(kind)
    X = X.copy()
    X[1, :] = value
    word = "NaN" if np.isnan(value) else "inf"
    with pytest.raises(ValueError, match=rf"(?i){word}") as excinfo:
        model.score(X)
    assert re.search(r"\bX\b", _message(excinfo))
    with pytest.raises(ValueError, match=rf"(?i){word}"):
        _cls(kind)(n_components=2, random_state=0, **KIND_HYPER[kind]).fit(X)


def test_nan_message_mentions_allow_missing():
    model, X, _ = _ready("gaussian")
    X = X.copy()
    X[1, :] = np.nan
    with pytest.raises(ValueError, match=r"allow_missing"):
        model.score(X)


# --------------------------------------------------------------------------
# lengths
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad_lengths,words", [
    ([3, 3], [r"\b7\b", r"\b6\b"]),      # sums to 6, X has 7 rows
    ([4, 4], [r"\b7\b", r"\b8\b"]),      # sums to 8
    ([7, 0], [r"\b0\b"]),                # an empty sequence
    ([8, -1], [r"-1"]),                  # a negative length
])
def test_bad_lengths(kind, bad_lengths, words):
    model, X, _ = _ready(kind)
    assert len(X) == 7
    calls = {
        "score": lambda: model.score(X, bad_lengths),
        "predict": lambda: model.predict(X, bad_lengths),
        "fit": lambda: model.fit(X, bad_lengths),
    }
    for name, call in calls.items():
        with pytest.raises(ValueError, match=r"lengths") as excinfo:
            call()
        msg = _message(excinfo)
        for w in words:
            assert re.search(w, msg), f"{name}: {msg!r} does not mention {w}"


def test_lengths_two_dimensional():
    model, X, _ = _ready("gaussian")
    with pytest.raises(ValueError, match=r"lengths"):
        model.score(X, np.array([[4, 3]]))


def test_lengths_non_integer():
    model, X, _ = _ready("gaussian")
    with pytest.raises((TypeError, ValueError), match=r"lengths"):
        model.score(X, np.array([3.5, 3.5]))


# --------------------------------------------------------------------------
# observations impossible under the model
# --------------------------------------------------------------------------

IMPOSSIBLE = dict(  # symbol 2 has probability zero in both states
    startprob_=np.array([0.5, 0.5]),
    transmat_=np.array([[0.8, 0.2], [0.3, 0.7]]),
    emissionprob_=np.array([[0.6, 0.4, 0.0], [0.1, 0.9, 0.0]]),
)
# sequence 0 = rows 0..2; sequence 1 = rows 3..5 with the impossible symbol at
# its time step 1 (row 4 of X)
IMPOSSIBLE_X = np.array([[0], [1], [0], [1], [2], [0]])
IMPOSSIBLE_LENGTHS = np.array([3, 3])


def _assert_names_sequence_and_time(msg, sequence, t_local, t_global):
    assert re.search(r"(?i)sequence", msg), msg
    assert re.search(rf"\b{sequence}\b", msg), f"sequence index {sequence} not named: {msg}"
    assert re.search(rf"\b({t_local}|{t_global})\b", msg), \
        f"time index ({t_local} in the sequence, row {t_global} of X) not named: {msg}"


def test_impossible_observation_is_really_impossible():
    lf = R.categorical_log_frameprob(IMPOSSIBLE_X, IMPOSSIBLE["emissionprob_"])
    bf = R.brute_force(np.log(IMPOSSIBLE["startprob_"]), np.log(IMPOSSIBLE["transmat_"]), lf,
                       IMPOSSIBLE_LENGTHS)
    assert np.isfinite(bf["log_prob"][0]) and bf["log_prob"][1] == -np.inf


@pytest.mark.parametrize("method", ["score", "score_samples", "predict", "predict_proba", "decode", "fit"])
def test_impossible_observation_raises_naming_sequence_and_time(method):
    model = R.lvm_model("categorical", IMPOSSIBLE, 2, n_features=3)
    with pytest.raises(ValueError) as excinfo:
        getattr(model, method)(IMPOSSIBLE_X, IMPOSSIBLE_LENGTHS)
    _assert_names_sequence_and_time(_message(excinfo), 1, 1, 4)


def test_impossible_by_transitions_raises():
    """Each symbol is possible, but not after the path the chain is forced on:
    state 0 -> 1 always, 1 -> 1 always; only state 0 emits symbol 0."""
    params = dict(startprob_=np.array([1.0, 0.0]),
                  transmat_=np.array([[0.0, 1.0], [0.0, 1.0]]),
                  emissionprob_=np.array([[1.0, 0.0], [0.0, 1.0]]))
    X = np.array([[0], [1], [0]])
    lf = R.categorical_log_frameprob(X, params["emissionprob_"])
    with np.errstate(divide="ignore"):
        bf = R.brute_force(np.log(params["startprob_"]), np.log(params["transmat_"]), lf)
    assert bf["log_prob"][0] == -np.inf
    model = R.lvm_model("categorical", params, 2, n_features=2)
    for method in ("score_samples", "fit"):
        with pytest.raises(ValueError, match=r"(?i)sequence") as excinfo:
            getattr(model, method)(X)
        assert re.search(r"\b0\b", _message(excinfo)), _message(excinfo)


# --------------------------------------------------------------------------
# states (partial labels)
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["categorical", "gaussian"])
def test_states_wrong_length(kind):
    model, X, lengths = _ready(kind)
    with pytest.raises(ValueError, match=r"states") as excinfo:
        model.fit(X, lengths, states=np.full(len(X) - 1, -1))
    msg = _message(excinfo)
    assert str(len(X)) in msg and str(len(X) - 1) in msg, msg


@pytest.mark.parametrize("bad", [2, 5, -2])
def test_states_out_of_range(bad):
    model, X, lengths = _ready("gaussian")  # K = 2: states in {-1, 0, 1}
    states = np.full(len(X), -1)
    states[3] = bad
    with pytest.raises(ValueError, match=r"states") as excinfo:
        model.fit(X, lengths, states=states)
    assert str(bad) in _message(excinfo), _message(excinfo)


def test_states_non_integer():
    model, X, lengths = _ready("gaussian")
    states = np.full(len(X), -1.0)
    states[0] = 0.5
    with pytest.raises((TypeError, ValueError), match=r"states"):
        model.fit(X, lengths, states=states)


def test_states_contradicting_observation():
    """A label that puts a symbol in a state that never emits it: impossible."""
    model = R.lvm_model("categorical", dict(
        startprob_=np.array([0.5, 0.5]),
        transmat_=np.array([[0.8, 0.2], [0.3, 0.7]]),
        emissionprob_=np.array([[0.6, 0.4, 0.0], [0.1, 0.3, 0.6]])), 2, n_features=3)
    X = np.array([[0], [2], [1], [1]])
    states = np.array([-1, 0, -1, -1])  # state 0 cannot emit symbol 2
    with pytest.raises(ValueError, match=r"(?i)sequence") as excinfo:
        model.fit(X, states=states)
    assert re.search(r"\b1\b", _message(excinfo)), _message(excinfo)


# --------------------------------------------------------------------------
# hyper-parameters and hand-set parameters
# --------------------------------------------------------------------------

@pytest.mark.parametrize("kind,kwargs,word", [
    ("gaussian", dict(covariance_type="bogus"), "covariance_type"),
    ("gmm", dict(covariance_type="bogus"), "covariance_type"),
    ("gaussian", dict(n_components=0), "n_components"),
    ("categorical", dict(n_components=1.5), "n_components"),
    ("gaussian", dict(learn=("startprob", "bogus")), "learn"),
    ("gaussian", dict(init_method="bogus"), "init_method"),
    ("categorical", dict(algorithm="bogus"), "algorithm"),
    ("poisson", dict(implementation="bogus"), "implementation"),
    ("gaussian", dict(n_iter=0), "n_iter"),
    ("gaussian", dict(tol=-1.0), "tol"),
    ("gmm", dict(n_mix=0), "n_mix"),
])
def test_bad_hyper_parameters(kind, kwargs, word):
    """Rejected at construction or at fit (``algorithm`` possibly only when decoding)."""
    _, X, _ = _problem(kind)
    with pytest.raises((ValueError, TypeError), match=word):
        hyper = dict(KIND_HYPER[kind], n_components=2, random_state=0)
        hyper.update(kwargs)
        model = _cls(kind)(**hyper).fit(X)
        model.predict(X)


def test_decode_bad_algorithm():
    model, X, _ = _ready("categorical")
    with pytest.raises(ValueError, match=r"algorithm") as excinfo:
        model.decode(X, algorithm="forward")
    msg = _message(excinfo)
    assert "viterbi" in msg and "map" in msg and "forward" in msg, msg


@pytest.mark.parametrize("name,value", [
    ("startprob_", np.array([0.5, 0.6])),          # does not sum to 1
    ("startprob_", np.array([0.2, 0.3, 0.5])),     # wrong length
    ("transmat_", np.array([[0.5, 0.5], [0.2, 0.2]])),
    ("transmat_", np.array([[1.0]])),
    ("emissionprob_", np.array([[0.5, 0.5, 0.0, 0.0]])),        # one row for two states
    ("emissionprob_", np.array([[0.5, 0.5, 0.5, -0.5], [0.25, 0.25, 0.25, 0.25]])),
])
def test_bad_hand_set_parameters_categorical(name, value):
    model, X, _ = _ready("categorical")
    setattr(model, name, value)
    with pytest.raises(ValueError, match=re.escape(name.rstrip("_"))):
        model.score(X)


@pytest.mark.parametrize("ct,value", [
    ("diag", np.array([[1.0, -1.0], [1.0, 1.0]])),
    ("spherical", np.array([1.0, 0.0])),
    ("full", np.array([[[1.0, 2.0], [2.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]]])),  # indefinite
    ("tied", np.array([[1.0, 0.5], [0.4, 1.0]])),                          # not symmetric
    ("diag", np.ones((3, 2))),                                               # wrong shape
])
def test_bad_hand_set_covariances(ct, value):
    rng = np.random.default_rng(0)
    params = R.random_params(rng, "gaussian", 2, D=2, covariance_type=ct)
    _, X, _ = _problem("gaussian")
    model = R.lvm_model("gaussian", params, 2, covariance_type=ct)
    model.covars_ = value
    with pytest.raises(ValueError, match=r"covars"):
        model.score(X)


def test_poisson_bad_lambdas():
    model, X, _ = _ready("poisson")
    model.lambdas_ = np.array([[1.0, -2.0], [1.0, 1.0]])
    with pytest.raises(ValueError, match=r"lambdas"):
        model.score(X)


# --------------------------------------------------------------------------
# the caller's arrays are never mutated
# --------------------------------------------------------------------------

def _frozen(a):
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


@pytest.mark.parametrize("kind", KINDS)
def test_caller_arrays_not_mutated(kind):
    """fit / score / predict / decode / score_samples / predict_proba leave X,
    lengths, states and hand-set parameter arrays as they were: the arrays are
    passed read-only (an in-place write would raise) and compared afterwards."""
    params, X, lengths = _problem(kind, K=2)
    originals = {name: np.array(v, copy=True) for name, v in params.items()}
    given = {name: _frozen(v) for name, v in params.items()}
    X_ro, lengths_ro = _frozen(X), _frozen(lengths)
    states = _frozen(np.array([-1, 0, -1, -1, 1, -1, -1]))
    from lvm_core.models import hmm

    model = getattr(hmm, CLASS_NAMES[kind])(n_components=2, n_iter=3, init=(), **KIND_HYPER[kind])
    for name, v in given.items():
        setattr(model, name, v)
    model.score(X_ro, lengths_ro)
    model.score_samples(X_ro, lengths_ro)
    model.fit(X_ro, lengths_ro, states=states)
    model.predict(X_ro, lengths_ro)
    model.predict_proba(X_ro, lengths_ro)
    model.decode(X_ro, lengths_ro, algorithm="map")
    model.fit(X_ro, lengths_ro)
    np.testing.assert_array_equal(X_ro, X)
    np.testing.assert_array_equal(lengths_ro, lengths)
    np.testing.assert_array_equal(states, [-1, 0, -1, -1, 1, -1, -1])
    for name, v in given.items():
        np.testing.assert_array_equal(v, originals[name], err_msg=name)

    # writable arrays too (no hidden in-place normalisation of hand-set parameters)
    params2 = {name: np.array(v, copy=True) for name, v in params.items()}
    X2 = np.array(X, copy=True)
    model = getattr(hmm, CLASS_NAMES[kind])(n_components=2, n_iter=3, init=(), **KIND_HYPER[kind])
    for name, v in params2.items():
        setattr(model, name, v)
    model.fit(X2, lengths)
    model.predict(X2, lengths)
    np.testing.assert_array_equal(X2, X)
    for name, v in params2.items():
        np.testing.assert_array_equal(v, originals[name], err_msg=name)


def test_missing_rows_not_mutated():
    params, X, lengths = _problem("gaussian")
    X = X.copy()
    X[2, :] = np.nan
    X_before = X.copy()
    model = R.lvm_model("gaussian", params, 2, covariance_type="diag", allow_missing=True, n_iter=2)
    model.score(X, lengths)
    model.fit(X, lengths)
    model.predict(X, lengths)
    np.testing.assert_array_equal(X, X_before)  # NaN == NaN for assert_array_equal


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_user_set_means_rejected(value):
    from lvm_core.models.hmm import GaussianHMM

    X = np.random.default_rng(0).standard_normal((20, 1))
    model = GaussianHMM(n_components=2, random_state=0, init=())
    model.startprob_ = np.array([0.5, 0.5])
    model.transmat_ = np.array([[0.9, 0.1], [0.2, 0.8]])
    model.means_ = np.array([[value], [1.0]])
    model.covars_ = np.ones((2, 1))
    with pytest.raises(ValueError, match="means_ must be finite"):
        model.fit(X)
    with pytest.raises(ValueError, match="means_ must be finite"):
        model.score(X)


def test_default_tol_is_relative_and_tight():
    """Defaults stop on a relative change of 1e-6, not hmmlearn's absolute 1e-2."""
    from lvm_core.models.hmm import CategoricalHMM, GaussianHMM, GMMHMM, PoissonHMM

    for cls in (CategoricalHMM, GaussianHMM, GMMHMM, PoissonHMM):
        assert cls().tol == 1e-6
