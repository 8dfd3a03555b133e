"""Property-based fuzzing of every public HMM entry point.

Each example drives one estimator (GaussianHMM, GMMHMM, CategoricalHMM,
PoissonHMM, MultinomialHMM and the two variational HMMs) through fit /
score / score_samples / predict / predict_proba / decode / sample / aic /
bic / get_stationary_distribution / partial_fit with data of random shapes,
dtypes and values (NaN, inf, huge, negative, non-integer), bad lengths, bad
hyper-parameters and hand-set parameters.  Every call must either raise a
clean ValueError / TypeError (NotFittedError is a ValueError), or return
finite numbers; no call may change the caller's arrays.

The number of examples run is counted and printed at the end of the module
(``-s`` shows it).
"""
from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lvm_core.models.hmm import (GMMHMM, CategoricalHMM, GaussianHMM, MultinomialHMM,
                                 PoissonHMM, VariationalCategoricalHMM, VariationalGaussianHMM)

CLASSES = {
    "gaussian": GaussianHMM, "gmm": GMMHMM, "categorical": CategoricalHMM,
    "poisson": PoissonHMM, "multinomial": MultinomialHMM,
    "vcategorical": VariationalCategoricalHMM, "vgaussian": VariationalGaussianHMM,
}
COUNTS = {"cases": 0, "clean_errors": 0, "finite_results": 0}

FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

SPECIAL = [np.nan, np.inf, -np.inf, 1e300, -1e300, 1e-300, -1.0, 0.0, 0.5, 2.0, 1e9, 7.0]


@st.composite
def data_arrays(draw):
    """Arrays of random rank, dtype, shape and values (mostly small and valid)."""
    kind = draw(st.sampled_from(["float64", "float32", "int64", "int8", "bool", "complex",
                                 "object", "list"]))
    ndim = draw(st.sampled_from([2, 2, 2, 1, 0, 3]))
    T = draw(st.integers(0, 12))
    D = draw(st.integers(0, 3))
    shape = {0: (), 1: (T,), 2: (T, D), 3: (T, D, 2)}[ndim]
    rng = np.random.default_rng(draw(st.integers(0, 2 ** 16)))
    base = rng.integers(0, 4, size=shape).astype(np.float64)
    if draw(st.booleans()) and base.size:
        idx = tuple(rng.integers(0, s) for s in shape)
        base[idx] = draw(st.sampled_from(SPECIAL))
    if kind == "complex":
        return base + 1j
    if kind == "object":
        return base.astype(object)
    if kind == "list":
        return base.tolist()
    if kind in ("int64", "int8", "bool"):
        return np.nan_to_num(base, nan=0, posinf=3, neginf=-1).clip(-100, 100).astype(kind)
    return base.astype(kind)


def _lengths(draw, T):
    choice = draw(st.sampled_from(["none", "none", "split", "bad_sum", "zero", "negative",
                                   "float", "2d"]))
    if choice == "none" or T == 0:
        return None
    if choice == "split":
        cut = draw(st.integers(1, max(1, T - 1)))
        return [cut, T - cut] if T - cut > 0 else [T]
    return {"bad_sum": [T + 1], "zero": [0, T], "negative": [-1, T + 1],
            "float": [T / 2.0, T / 2.0], "2d": [[T]]}[choice]


def _hyper(draw, name):
    h = {"n_iter": 2, "random_state": 0}
    h["n_components"] = draw(st.sampled_from([1, 2, 2, 2, 3, 0, -1, 2.5, "2"]))
    if draw(st.integers(0, 4)) == 0:
        h["tol"] = draw(st.sampled_from([-1.0, np.nan, 0.0]))
    if name in ("gaussian", "gmm", "vgaussian") and draw(st.booleans()):
        h["covariance_type"] = draw(st.sampled_from(["full", "tied", "spherical", "diag", "bad"]))
    if name == "gmm":
        h["n_mix"] = draw(st.sampled_from([1, 2, 0]))
    if name in ("gaussian", "gmm", "categorical", "poisson", "multinomial") and \
            draw(st.integers(0, 4)) == 0:
        h["learn"] = draw(st.sampled_from([("startprob",), "st", ("bogus",), ()]))
    if name == "multinomial" and draw(st.booleans()):
        h["n_trials"] = draw(st.sampled_from([3, 0, -2]))
    if name in ("gaussian", "categorical", "poisson") and draw(st.integers(0, 3)) == 0:
        h["allow_missing"] = True
    return h


def _snapshot(x):
    return copy.deepcopy(x)


def _same(a, b):
    if isinstance(a, np.ndarray):
        if not (isinstance(b, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape):
            return False
        if a.dtype.kind == "O":
            return all(x == y or (x != x and y != y) for x, y in zip(a.ravel(), b.ravel()))
        return np.array_equal(a, b, equal_nan=a.dtype.kind in "fc")
    return a == b or (a != a and b != b)


def _finite(result):
    if isinstance(result, tuple):
        return all(_finite(r) for r in result)
    if hasattr(result, "fit"):  # fit / partial_fit return the estimator
        return True
    arr = np.asarray(result)
    return arr.dtype.kind not in "fc" or bool(np.all(np.isfinite(arr)))


def _call(fn, *args, **kwargs):
    """A clean ValueError/TypeError, or a finite result; anything else fails."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            out = fn(*args, **kwargs)
        except (ValueError, TypeError) as exc:
            assert str(exc), "an error without a message"
            COUNTS["clean_errors"] += 1
            return None
        except NotImplementedError:
            COUNTS["clean_errors"] += 1
            return None
    assert _finite(out), f"non-finite result from {getattr(fn, '__name__', fn)}"
    COUNTS["finite_results"] += 1
    return out


def _exercise(model, X, lengths):
    X_before, L_before = _snapshot(X), _snapshot(lengths)
    fitted = _call(model.fit, X, lengths) is not None
    for method in ("score", "score_samples", "predict", "predict_proba", "decode", "aic", "bic"):
        _call(getattr(model, method), X, lengths)
    _call(model.sample, 3)
    _call(model.get_stationary_distribution)
    if not isinstance(model, (VariationalCategoricalHMM, VariationalGaussianHMM)):
        _call(model.partial_fit, X, lengths)
    assert _same(X_before, X) if not isinstance(X, np.ndarray) else _same(X, X_before), \
        "X was modified"
    assert L_before == lengths, "lengths were modified"
    return fitted


@pytest.mark.parametrize("name", sorted(CLASSES))
@FUZZ
@given(data=st.data())
def test_fuzz_random_data_and_hyper_parameters(name, data):
    COUNTS["cases"] += 1
    X = data.draw(data_arrays())
    T = len(X) if isinstance(X, list) else (X.shape[0] if getattr(X, "ndim", 0) else 0)
    lengths = _lengths(data.draw, T)
    hyper = _hyper(data.draw, name)
    model = CLASSES[name]
    try:
        est = model(**hyper)
    except (ValueError, TypeError):
        COUNTS["clean_errors"] += 1
        return
    _exercise(est, X, lengths)


def _valid_fit(name):
    rng = np.random.default_rng(0)
    if name in ("categorical", "vcategorical"):
        X = rng.integers(0, 3, (30, 1))
    elif name == "poisson":
        X = rng.poisson(2.0, (30, 2))
    elif name == "multinomial":
        X = np.stack([rng.multinomial(4, [0.2, 0.3, 0.5]) for _ in range(30)])
    else:
        X = rng.normal(size=(30, 2))
    kw = {"n_mix": 2} if name == "gmm" else {}
    return CLASSES[name](2, random_state=0, n_iter=3, **kw).fit(X), X


@st.composite
def bad_values(draw, shape):
    """A parameter value: wrong shape, NaN/inf/negative/huge entries, lists, ints."""
    how = draw(st.sampled_from(["shape", "nan", "inf", "negative", "huge", "zeros", "list",
                                "int", "float32", "scalar", "string"]))
    base = np.full(shape, 0.5) if shape else np.array(0.5)
    if how == "shape":
        return np.ones(tuple(s + 1 for s in shape) or (2,))
    if how in ("nan", "inf", "negative", "huge", "zeros"):
        v = base.copy()
        v.flat[0] = {"nan": np.nan, "inf": np.inf, "negative": -0.5, "huge": 1e300,
                     "zeros": 0.0}[how]
        if how == "zeros":
            v[...] = 0.0
        return v
    if how == "list":
        return base.tolist()
    if how == "int":
        return np.ones(shape, dtype=np.int64)
    if how == "float32":
        return base.astype(np.float32)
    if how == "scalar":
        return 0.5
    return "0.5"


@pytest.mark.parametrize("name", sorted(CLASSES))
@FUZZ
@given(data=st.data())
def test_fuzz_hand_set_parameters(name, data):
    """A fitted model with one parameter replaced by a bad or unusual value:
    inference and a refit from it raise cleanly or return finite numbers."""
    COUNTS["cases"] += 1
    model, X = _valid_fit(name)
    names = [n for n in vars(model) if n.endswith("_") and not n.startswith("_")
             and isinstance(getattr(model, n), np.ndarray)]
    target = data.draw(st.sampled_from(sorted(names)))
    value = data.draw(bad_values(np.shape(getattr(model, target))))
    before = _snapshot(value)
    setattr(model, target, value)
    model.set_params(**({"init": ()} if "init" in model.get_params() else {}))
    _exercise(model, X, None)
    assert _same(value, before) if isinstance(value, np.ndarray) else value == before


@pytest.mark.parametrize("name", ["gaussian", "gmm", "poisson"])
@FUZZ
@given(scale=st.sampled_from([1e-150, 1e-8, 1.0, 1e8, 1e150]),
       shift=st.sampled_from([0.0, -1e12, 1e12]))
def test_fuzz_extreme_but_valid_data(name, scale, shift):
    """Valid data at extreme scales or offsets: a fit either succeeds with a
    finite log-likelihood or says clearly why not (never NaN)."""
    COUNTS["cases"] += 1
    rng = np.random.default_rng(1)
    if name == "poisson":
        X = np.round(rng.poisson(3.0, (40, 2)) * min(scale, 1e12))
    else:
        X = rng.normal(size=(40, 2)) * scale + shift
    kw = {"n_mix": 2} if name == "gmm" else {}
    _exercise(CLASSES[name](2, random_state=0, n_iter=3, **kw), X, None)


def test_zz_report_fuzz_counts():
    """Prints how many fuzz cases and calls ran (runs last in this module)."""
    print(f"\nHMM fuzz: {COUNTS['cases']} cases, {COUNTS['clean_errors']} clean errors, "
          f"{COUNTS['finite_results']} finite results")
    assert COUNTS["cases"] > 0
