"""Property-based fuzzing of the public entry points (the HMMs have test_fuzz_hmm.py).

Every public entry point -- the estimators' fit / predict / score / transform /
sample, parameters set by hand, hyper-parameters, ``train.fit_minibatch``,
``io.save`` / ``io.load`` and the likelihoods of ``lvm_core.functional`` -- is
driven with bad shapes, dtypes and containers, NaN/inf, extreme values and bad
settings.  The property is always the same: a clean ValueError/TypeError (with a
message), or a result without NaN (finite where the exact answer is
representable), and the caller's arrays are never modified.

The number of cases run is printed at the end of the module (``pytest -s``).
"""
from __future__ import annotations

import collections
import functools
import math
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from lvm_core import functional as F
from lvm_core import io
from lvm_core.models.aevb_fa import AEVBFactorAnalysis
from lvm_core.models.autoregressive.fvsbn import FVSBN
from lvm_core.models.autoregressive.nade import NADE
from lvm_core.models.autoregressive.rnade import RNADE
from lvm_core.models.bernoulli_mixture import BernoulliMixture
from lvm_core.models.energy.deep import DBM, DBN
from lvm_core.models.energy.rbm import RBM, GaussianBernoulliRBM
from lvm_core.models.factor_analysis import PPCA, FactorAnalysis
from lvm_core.models.gmm import GaussianMixture
from lvm_core.models.gmvae import GMVAE
from lvm_core.models.ica import FastICA
from lvm_core.models.made import MADE
from lvm_core.models.sbn import SBNVAE
from lvm_core.models.sfa import SFA
from lvm_core.models.sparse_coding import DictionaryLearning
from lvm_core.models.vae import VAE
from lvm_core.train import NonFiniteLossError, fit_minibatch

CLEAN = (ValueError, TypeError)
CASES: collections.Counter = collections.Counter()
FUZZ = settings(max_examples=25, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                       HealthCheck.function_scoped_fixture])

D = 4
_EPOCH = dict(epochs=1, batch_size=8, progress=False, random_state=0)

# name: (factory, data kind, fit keyword arguments, inference methods taking X)
ESTIMATORS = {
    "GaussianMixture": (lambda: GaussianMixture(2, random_state=0, max_iter=20), "real", {},
                        ["predict", "predict_proba", "score", "score_samples"]),
    "BernoulliMixture": (lambda: BernoulliMixture(2, random_state=0, max_iter=20), "binary", {},
                         ["predict", "predict_proba", "score", "score_samples"]),
    "FactorAnalysis": (lambda: FactorAnalysis(2, max_iter=50), "real", {},
                       ["transform", "score", "score_samples"]),
    "PPCA": (lambda: PPCA(1), "real", {}, ["transform", "score", "score_samples"]),
    "FastICA": (lambda: FastICA(2, random_state=0, max_iter=50), "real", {}, ["transform"]),
    "DictionaryLearning": (lambda: DictionaryLearning(2, max_iter=3, random_state=0), "real", {},
                           ["transform"]),
    "SFA": (lambda: SFA(1), "real", {}, ["transform"]),
    "RBM": (lambda: RBM(3, n_iter=1, batch_size=8, random_state=0), "binary", {},
            ["transform", "score_samples", "free_energy"]),
    "GaussianBernoulliRBM": (lambda: GaussianBernoulliRBM(3, n_iter=1, batch_size=8,
                                                          random_state=0), "real", {},
                             ["transform", "free_energy"]),
    "DBN": (lambda: DBN((3, 2), n_iter=1, batch_size=8, random_state=0), "binary", {},
            ["transform"]),
    "DBM": (lambda: DBM((3, 2), n_iter=1, batch_size=8, random_state=0), "binary", {}, []),
    "VAE": (lambda: VAE(D, n_latent=2, hidden=(3,), random_state=0), "binary", _EPOCH,
            ["elbo", "encode", "reconstruct", "validation_loss"]),
    "AEVBFactorAnalysis": (lambda: AEVBFactorAnalysis(D, 2, random_state=0), "real", _EPOCH,
                           ["score_samples", "elbo", "posterior", "log_evidence"]),
    "NADE": (lambda: NADE(D, n_hidden=3, random_state=0), "binary", _EPOCH,
             ["score_samples", "log_conditionals"]),
    "FVSBN": (lambda: FVSBN(D, random_state=0), "binary", _EPOCH, ["score_samples"]),
    "RNADE": (lambda: RNADE(D, n_hidden=3, n_components=2, random_state=0), "real", _EPOCH,
              ["score_samples"]),
    "MADE": (lambda: MADE(D, hidden=(5,), random_state=0), "binary", _EPOCH,
             ["score_samples", "log_conditionals"]),
    "GMVAE": (lambda: GMVAE(D, n_components=2, n_latent=2, hidden=(3,), random_state=0),
              "binary", _EPOCH, ["elbo", "predict_proba", "predict", "validation_loss"]),
    "SBNVAE": (lambda: SBNVAE(D, n_latent=3, baseline_hidden=(3,), random_state=0), "binary",
               _EPOCH, ["elbo", "encode", "validation_loss"]),
}


@pytest.fixture(scope="module", autouse=True)
def _report_cases():
    yield
    print(f"\nfuzz cases run: {sum(CASES.values())} "
          f"({', '.join(f'{k} {v}' for k, v in sorted(CASES.items()))})")


def _good(kind, n=24, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "binary":
        X = (rng.random((n, D)) > 0.5).astype(np.float64)
        X[0], X[1] = 0.0, 1.0  # both values in every column
        return X
    return rng.normal(size=(n, D)) @ np.diag([1.0, 2.0, 0.5, 1.5]) \
        + np.linspace(0.0, 1.0, n)[:, None]


@st.composite
def fuzzed(draw, kind, width=D):
    """(label, X): a bad or unusual version of good data of this kind."""
    X = _good(kind, n=draw(st.integers(8, 24)), seed=draw(st.integers(0, 3)))
    if width != D:
        X = X[:, :width] if width < D else np.hstack([X, X[:, :width - D]])
    how = draw(st.sampled_from([
        "good", "nan", "inf", "scale", "rows", "cols", "ndim", "dtype", "container"]))
    if how == "nan" or how == "inf":
        mask = draw(st.lists(st.booleans(), min_size=X.size, max_size=X.size))
        if not any(mask):
            how = "good"
        X = X.copy()
        X.reshape(-1)[np.asarray(mask)] = np.nan if how == "nan" else \
            draw(st.sampled_from([np.inf, -np.inf]))
    elif how == "scale":
        X = X * 10.0 ** draw(st.integers(-300, 300)) + draw(st.sampled_from([0.0, 1e300, -1e6]))
    elif how == "rows":
        X = X[:draw(st.integers(0, 2))]
        how = "rows" if X.shape[0] == 0 else "few rows"
    elif how == "cols":
        X = X[:, :draw(st.integers(0, X.shape[1] - 1))] if draw(st.booleans()) else \
            np.hstack([X, X[:, :1]])
    elif how == "ndim":
        X = draw(st.sampled_from([X[0], X[None], X.reshape(-1)]))
    elif how == "dtype":
        dtype = draw(st.sampled_from([np.complex128, np.float32, np.float16, np.int8, np.uint64,
                                      np.bool_, object, "U3", "datetime64[s]"]))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            X = np.abs(X).astype(dtype) if dtype in (np.uint64,) else X.astype(dtype)
    elif how == "container":
        container = draw(st.sampled_from(["list", "tuple", "sparse", "ragged", "none", "str",
                                          "dict", "scalar"]))
        if container == "sparse":
            sparse = pytest.importorskip("scipy.sparse")
            X = sparse.csr_matrix(X)
        else:
            X = {"list": X.tolist(), "tuple": tuple(map(tuple, X.tolist())),
                 "ragged": [list(X[0]), list(X[1, :-1])], "none": None, "str": "X",
                 "dict": {"X": X}, "scalar": 3.0}[container]
    return how, X


def _copy(X):
    if isinstance(X, np.ndarray):
        return X.copy()
    if hasattr(X, "copy"):
        return X.copy()
    return X


def _assert_unmodified(X, before):
    if isinstance(X, np.ndarray):
        np.testing.assert_array_equal(X, before)
        assert X.dtype == before.dtype
    elif hasattr(X, "toarray"):
        np.testing.assert_array_equal(X.toarray(), before.toarray())
    else:
        assert X == before


def _outputs(result):
    """Arrays in a method's result (a tuple of arrays, an array or a float)."""
    if isinstance(result, (tuple, list)):
        return [np.asarray(r, dtype=np.float64) for r in result]
    return [np.asarray(result, dtype=np.float64)]


def _max_abs(X):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            A = np.asarray(X, dtype=np.float64)
        return float(np.nanmax(np.abs(A))) if A.size else 0.0
    except Exception:
        return math.inf


def _check_clean(err):
    assert isinstance(err, CLEAN) and len(str(err)) > 20, repr(err)


# ---------------------------------------------------------------------------
# fit on fuzzed data
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@FUZZ
@given(data=st.data())
def test_fit_on_fuzzed_data_is_refused_cleanly_or_fits(name, data):
    make, kind, fit_kw, methods = ESTIMATORS[name]
    how, X = data.draw(fuzzed(kind), label="X")
    before = _copy(X)
    CASES["fit"] += 1
    model = make()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, **fit_kw)
    except NonFiniteLossError:  # the training loop's documented stop (a FloatingPointError)
        assert how in ("scale", "dtype"), how
    except CLEAN as err:
        _check_clean(err)
    else:
        assert how not in ("nan", "inf", "rows", "ndim"), how
        for method in methods[:1]:
            for out in _outputs(getattr(model, method)(X if not isinstance(X, tuple) else
                                                       np.asarray(X))):
                assert not np.any(np.isnan(out)), (name, how, method)
                if _max_abs(X) < 1e6 and _max_abs(X) > 1e-6:
                    assert np.all(np.isfinite(out)), (name, how, method)
    _assert_unmodified(X, before)


# ---------------------------------------------------------------------------
# inference on fuzzed data: clean error or no NaN; never changes the model
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _fitted(name):
    make, kind, fit_kw, _ = ESTIMATORS[name]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return make().fit(_good(kind), **fit_kw)


def _state(model):
    out = {}
    for key, value in vars(model).items():
        if isinstance(value, dict):
            for k, v in value.items():
                if hasattr(v, "shape"):
                    out[(key, k)] = np.array(v, copy=True)
        elif hasattr(value, "shape"):
            out[key] = np.array(value, copy=True)
    return out


INFERENCE = [(name, method) for name in sorted(ESTIMATORS)
             for method in ESTIMATORS[name][3] + (["sample"] if hasattr(
                 ESTIMATORS[name][0](), "sample") else [])]


@pytest.mark.parametrize("name, method", INFERENCE)
@FUZZ
@given(data=st.data())
def test_inference_on_fuzzed_data_is_clean_and_never_changes_the_model(name, method, data):
    model = _fitted(name)
    kind = ESTIMATORS[name][1]
    state = _state(model)
    CASES["inference"] += 1
    if method == "sample":
        n = data.draw(st.one_of(st.integers(-2, 5), st.floats(allow_nan=True), st.none(),
                                st.text(max_size=2), st.booleans()), label="n")
        try:
            out = model.sample(n)
        except CLEAN as err:
            _check_clean(err)
        else:
            assert isinstance(n, int) and not isinstance(n, bool) and n >= 1
            for arr in _outputs(out):
                assert np.all(np.isfinite(arr))
    else:
        how, X = data.draw(fuzzed(kind), label="X")
        before = _copy(X)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out = getattr(model, method)(X)
        except CLEAN as err:
            _check_clean(err)
        else:
            assert how not in ("nan", "inf", "rows", "cols", "ndim"), how
            for arr in _outputs(out):
                assert not np.any(np.isnan(arr)), (how, method)
                if 1e-6 < _max_abs(X) < 1e6:
                    assert np.all(np.isfinite(arr)), (how, method)
        _assert_unmodified(X, before)
    after = _state(model)
    assert after.keys() == state.keys()
    for key in state:
        np.testing.assert_array_equal(after[key], state[key], err_msg=str(key))


# ---------------------------------------------------------------------------
# models whose data are not one (N, D) array: CVAE (X with labels y), VRNN
# (sequences (N, T, D))
# ---------------------------------------------------------------------------

def _cvae():
    from lvm_core.models.cvae import CVAE

    return CVAE(D, 3, n_latent=2, hidden=(3,), random_state=0)


def _vrnn():
    from lvm_core.models.vrnn import VRNN

    return VRNN(D, n_latent=2, n_hidden=3, phi_x=(3,), phi_z=(3,), encoder=(3,), decoder=(3,),
                prior=(3,), random_state=0)


def _as_sequences(X):
    """A fuzzed (N, D) array as N sequences of one step (other inputs as they are)."""
    return X[:, None, :] if isinstance(X, np.ndarray) and X.ndim == 2 else X


@pytest.mark.parametrize("name", ["CVAE", "VRNN"])
@FUZZ
@given(data=st.data())
def test_cvae_and_vrnn_fit_and_inference_on_fuzzed_data(name, data):
    how, X = data.draw(fuzzed("binary"), label="X")
    if name == "VRNN":
        X = _as_sequences(X)
    before = _copy(X)
    shape = getattr(X, "shape", None)
    n = shape[0] if shape else len(X) if isinstance(X, (list, tuple)) else 1
    labels = np.arange(n) % 3
    fit_args = (X, labels) if name == "CVAE" else (X,)
    CASES["fit"] += 1
    model = _cvae() if name == "CVAE" else _vrnn()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(*fit_args, **_EPOCH)
    except NonFiniteLossError:
        assert how in ("scale", "dtype"), how
    except CLEAN as err:
        _check_clean(err)
    else:
        assert how not in ("nan", "inf", "rows"), how
    _assert_unmodified(X, before)
    # inference of a model fitted on good data
    good = _good("binary")
    fitted = _cvae().fit(good, np.arange(len(good)) % 3, **_EPOCH) if name == "CVAE" \
        else _vrnn().fit(good[:, None, :], **_EPOCH)
    state = _state(fitted)
    CASES["inference"] += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = fitted.elbo(*fit_args)
    except CLEAN as err:
        _check_clean(err)
    else:
        assert how not in ("nan", "inf", "rows", "cols"), how
        for arr in _outputs(out):
            assert not np.any(np.isnan(arr)), (how, name)
    _assert_unmodified(X, before)
    after = _state(fitted)
    for key in state:
        np.testing.assert_array_equal(after[key], state[key], err_msg=str(key))


# ---------------------------------------------------------------------------
# parameters set by hand
# ---------------------------------------------------------------------------

HAND_SET = {
    "GaussianMixture": ["weights_", "means_", "precisions_cholesky_"],
    "BernoulliMixture": ["weights_", "probs_"],
    "FactorAnalysis": ["components_", "noise_variance_", "mean_"],
    "PPCA": ["components_", "noise_variance_", "mean_"],
    "FastICA": ["components_", "mean_"],
    "DictionaryLearning": ["components_"],
    "SFA": ["components_", "mean_"],
}


@st.composite
def hand_set_value(draw, value):
    value = np.asarray(value, dtype=np.float64)
    how = draw(st.sampled_from(["list", "tuple", "int", "float32", "shape", "nan", "negative",
                                "scale", "string", "none-like", "scalar"]))
    if how == "list":
        return how, value.tolist()
    if how == "tuple":
        return how, tuple(np.atleast_1d(value).tolist())
    if how == "int":
        return how, np.round(value).astype(np.int64)
    if how == "float32":
        return how, value.astype(np.float32)
    if how == "shape":
        return how, np.ones(tuple(s + draw(st.integers(-1, 1)) for s in value.shape) or (2,))
    if how == "nan":
        return how, np.full_like(value, np.nan)
    if how == "negative":
        return how, -np.abs(value) - 1.0
    if how == "scale":
        return how, value * 10.0 ** draw(st.integers(-200, 200))
    if how == "string":
        return how, np.full(value.shape, "a", dtype=object)
    if how == "none-like":
        return how, draw(st.sampled_from([[], {}, "x", b"x"]))
    return how, float(value.reshape(-1)[0]) if value.size else 1.0


@pytest.mark.parametrize("name", sorted(HAND_SET))
@FUZZ
@given(data=st.data())
def test_parameters_set_by_hand_are_used_or_refused_cleanly(name, data):
    make, kind, fit_kw, methods = ESTIMATORS[name]
    X = _good(kind)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = make().fit(X, **fit_kw)
    attr = data.draw(st.sampled_from(HAND_SET[name]), label="attribute")
    how, value = data.draw(hand_set_value(getattr(model, attr)), label="value")
    CASES["hand-set"] += 1
    try:
        setattr(model, attr, value)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            outs = [_outputs(getattr(model, method)(X)) for method in methods]
    except CLEAN as err:
        _check_clean(err)
        return
    for group in outs:
        for arr in group:
            if how in ("list", "tuple", "int", "float32"):
                assert np.all(np.isfinite(arr)), (attr, how)
            elif how != "nan":
                assert not np.any(np.isnan(arr)), (attr, how)


# ---------------------------------------------------------------------------
# hyper-parameters
# ---------------------------------------------------------------------------

WEIRD = st.one_of(st.integers(-3, 4), st.sampled_from([0.0, -1e-3, 0.5, 1e-300, 1e300]),
                  st.floats(allow_nan=True, allow_infinity=True), st.none(), st.booleans(),
                  st.text(max_size=3), st.lists(st.integers(-1, 3), max_size=2))
_SKIP_HYPER = {"random_state", "verbose", "dtype", "n_jobs", "warm_start"}


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
@FUZZ
@given(data=st.data())
def test_bad_hyper_parameters_are_refused_cleanly_or_fit(name, data):
    make, kind, fit_kw, methods = ESTIMATORS[name]
    model = make()
    names = sorted(set(model.get_params()) - _SKIP_HYPER)
    param = data.draw(st.sampled_from(names), label="hyper-parameter")
    value = data.draw(WEIRD, label="value")
    X = _good(kind)
    CASES["hyper-parameters"] += 1
    try:
        model.set_params(**{param: value})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, **fit_kw)
            outs = [_outputs(getattr(model, m)(X)) for m in methods[:1]]
    except NonFiniteLossError:
        return  # a training loop stopped by a diverging setting: documented, names the fix
    except CLEAN as err:
        _check_clean(err)
        return
    for group in outs:
        for arr in group:
            assert not np.any(np.isnan(arr)), (param, value)
    np.testing.assert_array_equal(X, _good(kind))


# ---------------------------------------------------------------------------
# train.fit_minibatch
# ---------------------------------------------------------------------------

SETTINGS = {
    "epochs": st.one_of(st.integers(-1, 2), st.floats(), st.none(), st.text(max_size=2)),
    "batch_size": st.one_of(st.integers(-1, 40), st.floats(), st.none()),
    "lr": st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-1, 1),
                    st.none(), st.text(max_size=2)),
    "optimizer": st.one_of(st.sampled_from(["adam", "sgd", "rmsprop", "", None]), st.integers()),
    "optimizer_kwargs": st.one_of(st.none(), st.dictionaries(
        st.sampled_from(["betas", "eps", "momentum", "nesterov", "bogus"]),
        st.one_of(st.floats(), st.tuples(st.floats(), st.floats()), st.booleans()), max_size=2)),
    "clip_norm": st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
    "checkpoint_every": st.one_of(st.integers(-1, 3), st.floats(), st.none()),
    "early_stopping_patience": st.one_of(st.none(), st.integers(-1, 2), st.floats()),
}


@FUZZ
@given(data=st.data())
def test_fit_minibatch_settings_are_refused_cleanly_or_train(data):
    X = _good("binary")
    model = VAE(D, n_latent=2, hidden=(3,), random_state=0).initialize()
    params = {k: v.copy() for k, v in model.params.items()}
    chosen = data.draw(st.lists(st.sampled_from(sorted(SETTINGS)), min_size=1, max_size=2,
                                unique=True), label="settings")
    kwargs = dict(epochs=1, batch_size=8, lr=1e-2, progress=False, random_state=0)
    kwargs.update({k: data.draw(SETTINGS[k], label=k) for k in chosen})
    if kwargs.get("early_stopping_patience") is not None:
        kwargs["validation_data"] = X
    X_before = X.copy()
    CASES["fit_minibatch"] += 1
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            history = fit_minibatch(model, X, **kwargs)
    except NonFiniteLossError:
        pass
    except CLEAN as err:
        _check_clean(err)
        for k, v in params.items():  # a refused call leaves the parameters as they were
            np.testing.assert_array_equal(model.params[k], v)
    else:
        assert all(math.isfinite(v) for v in history.train_loss)
    np.testing.assert_array_equal(X, X_before)


# ---------------------------------------------------------------------------
# io.save / io.load
# ---------------------------------------------------------------------------

@functools.lru_cache(maxsize=None)
def _saved_bytes():
    import tempfile

    model = GaussianMixture(2, random_state=0).fit(_good("real"))
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/m.h5"
        io.save(model, path)
        with open(path, "rb") as f:
            return f.read(), model


@FUZZ
@given(data=st.data())
def test_damaged_model_files_raise_value_error_or_load_unchanged(data, tmp_path_factory):
    raw, model = _saved_bytes()
    how = data.draw(st.sampled_from(["flip", "truncate", "random", "empty", "text"]), label="how")
    blob = bytearray(raw)
    if how == "flip":
        pos = data.draw(st.integers(0, len(blob) - 1), label="byte")
        blob[pos] ^= 1 << data.draw(st.integers(0, 7), label="bit")
    elif how == "truncate":
        blob = blob[:data.draw(st.integers(0, len(blob) - 1), label="length")]
    elif how == "random":
        blob = bytearray(data.draw(st.binary(min_size=1, max_size=4096), label="bytes"))
    elif how == "empty":
        blob = bytearray()
    else:
        blob = bytearray(b'{"class": "GaussianMixture"}')
    path = tmp_path_factory.mktemp("fuzz") / "damaged.h5"
    path.write_bytes(bytes(blob))
    CASES["io.load"] += 1
    try:
        loaded = io.load(path)
    except ValueError as err:
        assert str(path) in str(err) or path.name in str(err), str(err)
        return
    assert how == "flip"  # only a flip of an unused byte may load, and then unchanged
    for attr in ("weights_", "means_", "precisions_cholesky_", "covariances_"):
        np.testing.assert_array_equal(getattr(loaded, attr), getattr(model, attr))


@FUZZ
@given(target=st.one_of(st.none(), st.integers(), st.just(""), st.text(max_size=3),
                        st.just("/nonexistent-dir/x/y.h5")),
       obj=st.sampled_from(["model", "unfitted", "object", "array"]))
def test_save_and_load_refuse_bad_paths_and_objects_cleanly(target, obj):
    CASES["io.save"] += 1
    thing = {"model": _saved_bytes()[1], "unfitted": GaussianMixture(),
             "object": object(), "array": np.zeros(3)}[obj]
    if isinstance(target, str) and target and not target.startswith("/"):
        target = None  # never write into the working directory
    for call in (lambda: io.save(thing, target), lambda: io.load(target)):
        try:
            call()
        except (ValueError, TypeError, OSError) as err:
            assert len(str(err)) > 10
        else:
            pytest.fail("accepted a bad path or object")


# ---------------------------------------------------------------------------
# functional likelihoods at extreme but valid parameters
# ---------------------------------------------------------------------------

def _finite(*arrays):
    return all(np.all(np.isfinite(np.asarray(a, dtype=np.float64))) for a in arrays)


def _no_nan(*arrays):
    return not any(np.any(np.isnan(np.asarray(a, dtype=np.float64))) for a in arrays)


bounded = st.floats(-1e6, 1e6, allow_nan=False)
any_real = st.floats(allow_nan=False, allow_infinity=False)
log_var_bounded = st.floats(-50.0, 50.0)


@FUZZ
@given(logits=st.lists(any_real, min_size=1, max_size=6), seed=st.integers(0, 9),
       dtype=st.sampled_from([np.float32, np.float64]))
def test_bernoulli_and_categorical_likelihoods_are_finite_for_finite_logits(logits, seed, dtype):
    CASES["functional"] += 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        z = np.asarray(logits, dtype=dtype)[None, :]
    assume(np.all(np.isfinite(z)))  # finite in the dtype
    x = (np.random.default_rng(seed).random(z.shape) > 0.5).astype(dtype)
    ll, grad = F.bernoulli_log_likelihood(z, x)
    assert _no_nan(ll, grad)
    if np.all(np.abs(z) < 1e6):
        assert _finite(ll, grad)
    label = np.asarray([seed % z.shape[1]])
    out = F.categorical_log_likelihood(z, label)
    assert _no_nan(*out)
    if np.all(np.abs(z) < 1e6):
        assert _finite(*out)


@FUZZ
@given(logits=st.lists(any_real, min_size=1, max_size=6), u=st.floats(0.0, 1.0))
def test_continuous_bernoulli_is_finite_for_finite_logits(logits, u):
    CASES["functional"] += 1
    z = np.asarray(logits)[None, :]
    x = np.full_like(z, u)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = F.continuous_bernoulli_log_likelihood(z, x)
    assert _no_nan(*out)
    if np.all(np.abs(z) < 1e6):  # beyond, the exact sum can exceed the float range
        assert _finite(*out)
    mean = F.continuous_bernoulli_mean(z)
    assert _finite(mean) and np.all((mean >= 0) & (mean <= 1))


@FUZZ
@given(x=bounded, mu=bounded, log_var=log_var_bounded, wide=any_real)
def test_gaussian_likelihood_and_kl_are_finite_at_extreme_valid_parameters(x, mu, log_var, wide):
    CASES["functional"] += 1
    a = np.asarray([[x]])
    m = np.asarray([[mu]])
    lv = np.asarray([[log_var]])
    assert _finite(*F.gaussian_log_likelihood(a, m, lv))
    assert _finite(*F.kl_normal_std_normal(m, lv))
    assert _finite(*F.kl_normal_normal(a, lv, m, -lv))
    with warnings.catch_warnings():  # unrepresentable exact values: +-inf, never NaN
        warnings.simplefilter("ignore")
        assert _no_nan(*F.gaussian_log_likelihood(a, m, np.asarray([[wide]]))[:1])
        assert _no_nan(*F.kl_normal_std_normal(m, np.asarray([[wide]]))[:1])


def test_the_fuzz_suite_covers_every_estimator_module():
    """A new estimator in these modules must be added to ESTIMATORS."""
    import lvm_core.models.energy.rbm as rbm_module

    assert {"RBM", "GaussianBernoulliRBM"} <= set(ESTIMATORS)
    assert set(rbm_module.__all__) & {"RBM", "GaussianBernoulliRBM"} <= set(ESTIMATORS)
