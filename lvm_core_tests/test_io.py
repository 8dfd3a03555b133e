"""Tests of lvm_core.io: bit-exact HDF5 round trips, atomic writes, clear errors.

The toy classes below live in this test module, outside ``lvm_core.models``;
they are made loadable with :func:`lvm_core.io.register_model_class` (or by
naming them in ``expected_type``), as the io module documents.
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import lvm_core
from lvm_core import io
from lvm_core.models.base import ParamsMixin


@io.register_model_class
class ToyGradModel(ParamsMixin):
    """A gradient-model stand-in: a params dict whose keys need escaping."""

    def __init__(self, n_features=3, hidden=(4, 2), dtype="float32", random_state=0):
        self.n_features = n_features
        self.hidden = hidden
        self.dtype = dtype
        self.random_state = random_state
        rng = np.random.default_rng(random_state)
        self.params = {
            "enc.W0": rng.standard_normal((n_features, hidden[0])).astype(dtype),
            "dec/b1": rng.standard_normal(hidden[1]).astype(dtype),
            "x%y ü": np.arange(3, dtype=np.int64),
        }


@io.register_model_class
class ToyEMModel(ParamsMixin):
    """An EM-model stand-in: hyper-parameters plus fitted ``_`` attributes."""

    def __init__(self, n_components=2, tol=1e-3, init_params="stmc", means_init=None,
                 random_state=None):
        self.n_components = n_components
        self.tol = tol
        self.init_params = init_params
        self.means_init = means_init
        self.random_state = random_state

    def fit(self, X):
        K = self.n_components
        self.weights_ = np.full(K, 1.0 / K)
        self.means_ = X[:K].copy()
        self.covariances_ = np.stack([np.eye(X.shape[1])] * K)
        self.labels_ = np.arange(X.shape[0]) % K
        self.n_iter_ = 7
        self.converged_ = True
        self.lower_bound_ = -12.5
        self.log_likelihood_ = np.float64(-3.25)
        self.stats_ = {"nk": np.ones(K), "sum_x": X[:K] * 2.0}
        self.history_ = [-20.0, -15.0, -12.5]
        self.monitor_ = object()  # not saveable: skipped and listed
        self._private_ = np.zeros(2)  # private: never saved
        return self


class UnregisteredModel(ParamsMixin):
    def __init__(self, k=1):
        self.k = k
        self.params = {"w": np.ones(k)}


def _bits_equal(a, b):
    """Same dtype, shape and bytes (NaN payloads included)."""
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def _fitted_em():
    X = np.random.default_rng(0).standard_normal((6, 3))
    return ToyEMModel(n_components=3, means_init=np.zeros((3, 3)), random_state=5).fit(X)


# ---------------------------------------------------------------------------
# round trips
# ---------------------------------------------------------------------------
_DTYPES = st.sampled_from([np.float32, np.float64, np.int32, np.int64, np.uint8, np.bool_])


@settings(max_examples=25)
@given(arrays=st.lists(
    hnp.arrays(dtype=_DTYPES, shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0,
                                                        max_side=4)),
    min_size=1, max_size=4))
def test_params_round_trip_is_bit_exact_for_any_dtype_and_shape(tmp_path_factory, arrays):
    path = tmp_path_factory.mktemp("io") / "m.h5"
    model = ToyGradModel()
    model.params = {f"layer.{i}/w": a for i, a in enumerate(arrays)}
    io.save(model, path)
    loaded = io.load(path, expected_type=ToyGradModel)
    assert list(loaded.params) == list(model.params)
    for key, a in model.params.items():
        assert _bits_equal(loaded.params[key], a), key


def test_float_params_with_nan_inf_and_extremes_round_trip_bit_exact(tmp_path):
    model = ToyGradModel()
    special = np.array([np.nan, -np.inf, np.inf, -0.0, np.finfo(np.float32).tiny,
                        np.finfo(np.float32).max, 1e-45], dtype=np.float32)
    model.params["special"] = special
    model.params["f64"] = np.array([np.pi, 1 / 3, 5e-324], dtype=np.float64)
    io.save(model, tmp_path / "m.h5")
    loaded = io.load(tmp_path / "m.h5")
    assert _bits_equal(loaded.params["special"], special)
    assert _bits_equal(loaded.params["f64"], model.params["f64"])


@settings(max_examples=30)
@given(key=st.text(min_size=0, max_size=12))
def test_escaped_keys_are_safe_hdf5_names_and_invert(key):
    name = io._escape_key(key)
    assert set(name) <= set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-%")
    assert name not in ("", ".", "..")
    assert io._unescape_key(name) == key


_leaves = (st.none() | st.booleans() | st.integers(min_value=-2**80, max_value=2**80)
           | st.floats(allow_nan=False) | st.text(max_size=5)
           | hnp.arrays(dtype=_DTYPES, shape=hnp.array_shapes(min_dims=0, max_dims=2,
                                                               max_side=3))
           | st.sampled_from([np.float32(0.5), np.int64(-3), np.bool_(True)]))
_nested = st.recursive(
    _leaves,
    lambda children: (st.lists(children, max_size=3)
                      | st.lists(children, max_size=3).map(tuple)
                      | st.dictionaries(st.text(max_size=4) | st.integers(-5, 5), children,
                                        max_size=3)),
    max_leaves=10,
)


def _same_tree(a, b):
    """Equal values with equal types all the way down (bits for arrays)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same_tree(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same_tree(x, y) for x, y in zip(a, b))
    if isinstance(a, (np.ndarray, np.generic)):
        return _bits_equal(a, b)
    return a == b and (not isinstance(a, float) or np.signbit(a) == np.signbit(b))


@settings(max_examples=30)
@given(state=_nested)
def test_nested_optimizer_state_and_extra_round_trip_exactly(tmp_path_factory, state):
    path = tmp_path_factory.mktemp("io") / "c.h5"
    io.save(ToyGradModel(), path, optimizer_state={"s": state}, extra={"e": state})
    _, opt_state, extra = io.load_checkpoint(path)
    assert _same_tree(opt_state["s"], state)
    assert _same_tree(extra["e"], state)


def test_em_model_fitted_attributes_round_trip_with_types(tmp_path):
    model = _fitted_em()
    io.save(model, tmp_path / "em.h5")
    loaded = io.load(tmp_path / "em.h5", expected_type=ToyEMModel)
    assert loaded.get_params().keys() == model.get_params().keys()
    assert loaded.n_components == 3 and loaded.tol == 1e-3 and loaded.init_params == "stmc"
    assert _bits_equal(loaded.means_init, model.means_init)
    for name in ("weights_", "means_", "covariances_", "labels_"):
        assert _bits_equal(getattr(loaded, name), getattr(model, name)), name
    assert loaded.n_iter_ == 7 and type(loaded.n_iter_) is int
    assert loaded.converged_ is True
    assert loaded.lower_bound_ == -12.5 and type(loaded.lower_bound_) is float
    assert type(loaded.log_likelihood_) is np.float64 and loaded.log_likelihood_ == -3.25
    assert set(loaded.stats_) == {"nk", "sum_x"}
    assert _bits_equal(loaded.stats_["sum_x"], model.stats_["sum_x"])
    assert loaded.history_ == [-20.0, -15.0, -12.5]
    assert not hasattr(loaded, "monitor_") and not hasattr(loaded, "_private_")
    assert io.load_state(tmp_path / "em.h5")["skipped_attributes"] == ["monitor_"]


def test_hyper_parameters_keep_tuples_and_generators(tmp_path):
    gen = np.random.default_rng(11)
    gen.random(3)
    model = ToyGradModel(hidden=(5, 2), random_state=0)
    model.random_state = gen  # a Generator as random_state is saved through its state
    io.save(model, tmp_path / "m.h5")
    state = io.load_state(tmp_path / "m.h5")
    assert state["hyper_params"]["hidden"] == (5, 2)
    restored = state["hyper_params"]["random_state"]
    assert isinstance(restored, np.random.Generator)
    assert restored.random() == gen.random()


def test_optimizer_state_and_extra_round_trip(tmp_path):
    model = ToyGradModel()
    moments = {k: np.full(v.shape, 0.5, v.dtype) for k, v in model.params.items()}
    opt_state = {"step": 12, "m": moments, "betas": (0.9, 0.999)}
    rng = np.random.default_rng(3)
    rng.random(10)
    extra = {"epoch": 4, "history": {"loss": [1.5, 0.25, float("inf")]},
             "rng_state": rng.bit_generator.state, "note": "ok", "none": None,
             3: "int key", "__odd": np.float32(2.5)}
    io.save(model, tmp_path / "c.h5", optimizer_state=opt_state, extra=extra)
    loaded, opt_loaded, extra_loaded = io.load_checkpoint(tmp_path / "c.h5")
    assert opt_loaded["step"] == 12 and opt_loaded["betas"] == (0.9, 0.999)
    for k in model.params:
        assert _bits_equal(opt_loaded["m"][k], opt_state["m"][k])
    assert extra_loaded["history"] == extra["history"]
    assert extra_loaded[3] == "int key" and extra_loaded["none"] is None
    assert type(extra_loaded["__odd"]) is np.float32 and extra_loaded["__odd"] == 2.5
    fresh = np.random.default_rng()
    fresh.bit_generator.state = extra_loaded["rng_state"]
    assert np.array_equal(fresh.random(5), rng.random(5))


def test_load_checkpoint_without_optimizer_state_returns_none(tmp_path):
    io.save(ToyGradModel(), tmp_path / "m.h5")
    model, opt_state, extra = io.load_checkpoint(tmp_path / "m.h5")
    assert opt_state is None and extra is None
    assert isinstance(model, ToyGradModel)


def test_history_dataclass_is_saved_as_a_fitted_attribute(tmp_path):
    from lvm_core.train import History

    model = _fitted_em()
    model.fit_history_ = History(train_loss=[2.0, 1.0], epochs_completed=2, best_epoch=None)
    io.save(model, tmp_path / "em.h5")
    loaded = io.load(tmp_path / "em.h5")
    assert loaded.fit_history_ == model.fit_history_


def test_device_arrays_are_saved_and_loaded_onto_like(tmp_path, backend):
    model = ToyGradModel(dtype=backend.dtype_name)
    host = {k: np.array(v) for k, v in model.params.items()}
    model.params = {k: backend.asarray(v) for k, v in host.items()}
    io.save(model, tmp_path / "m.h5", optimizer_state={"m": dict(model.params), "step": 1})
    like = backend.asarray(np.zeros(1))
    loaded, opt_state, _ = io.load_checkpoint(tmp_path / "m.h5", like=like)
    xp = backend.xp
    for k, v in host.items():
        got = loaded.params[k]
        assert type(got) is type(like)
        if backend.device is not None:
            assert got.device == backend.device
        assert _bits_equal(backend.to_numpy(got), v)
        assert _bits_equal(backend.to_numpy(opt_state["m"][k]), v)
    assert loaded.params["x%y ü"].dtype == xp.int64
    plain = io.load(tmp_path / "m.h5")
    assert all(isinstance(v, np.ndarray) for v in plain.params.values())


def test_save_does_not_modify_the_model(tmp_path):
    model = _fitted_em()
    before = {k: np.array(v, copy=True) for k, v in model.stats_.items()}
    means = model.means_.copy()
    io.save(model, tmp_path / "em.h5", extra={"stats": model.stats_})
    assert np.array_equal(model.means_, means)
    assert all(np.array_equal(model.stats_[k], before[k]) for k in before)


def test_file_records_versions_and_class(tmp_path):
    io.save(ToyGradModel(), tmp_path / "m.h5")
    state = io.load_state(tmp_path / "m.h5")
    assert state["format_version"] == io.FORMAT_VERSION
    assert state["lvm_core_version"] == lvm_core.__version__
    assert state["class"] == f"{__name__}:ToyGradModel"


def test_real_library_model_loads_without_registration(tmp_path):
    from lvm_core.models.vae import VAE

    model = VAE(6, n_latent=2, hidden=(3,), random_state=0)
    model.initialize()
    io.save(model, tmp_path / "vae.h5")
    loaded = io.load(tmp_path / "vae.h5", expected_type=VAE)
    assert loaded.hidden == (3,) and loaded.n_latent == 2
    assert set(loaded.params) == set(model.params)
    assert all(_bits_equal(loaded.params[k], model.params[k]) for k in model.params)


def test_class_under_lvm_core_models_loads_without_registration(tmp_path, monkeypatch):
    import lvm_core.models.base as base

    class LibraryModel(ParamsMixin):
        def __init__(self, k=2):
            self.k = k
            self.params = {"w": np.zeros(k)}

    LibraryModel.__module__ = "lvm_core.models.base"
    LibraryModel.__qualname__ = "LibraryModelForIOTest"
    monkeypatch.setattr(base, "LibraryModelForIOTest", LibraryModel, raising=False)
    model = LibraryModel(k=3)
    model.params["w"] = np.arange(3.0)
    io.save(model, tmp_path / "m.h5")
    loaded = io.load(tmp_path / "m.h5")  # no registration, no expected_type
    assert type(loaded) is LibraryModel and loaded.k == 3
    assert _bits_equal(loaded.params["w"], np.arange(3.0))


def test_damaged_generator_state_is_refused(tmp_path):
    import h5py

    path = tmp_path / "m.h5"
    io.save(ToyGradModel(), path, extra={"gen": np.random.default_rng(0)})
    with h5py.File(path, "r+") as f:  # an edit that keeps the checksums valid
        text = io._read_text_dataset(f["extra/json"]).replace('"PCG64"', '"seed"')
        del f["extra/json"]
        io._write_text_dataset(f["extra"], "json", text)
    with pytest.raises(ValueError, match="'seed' as a bit generator"):
        io.load_checkpoint(path)


# ---------------------------------------------------------------------------
# atomic writes
# ---------------------------------------------------------------------------
def _files(directory):
    return sorted(os.listdir(directory))


def test_failed_save_with_unserialisable_hyper_parameter_keeps_previous_file(tmp_path):
    path = tmp_path / "m.h5"
    io.save(ToyGradModel(), path)
    before = path.read_bytes()
    bad = ToyGradModel()
    bad.dtype = lambda: None  # a hyper-parameter that cannot be written
    with pytest.raises(TypeError, match="hyper-parameter 'dtype'.*function"):
        io.save(bad, path)
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["m.h5"]
    assert io.load(path).dtype == "float32"


def test_exception_midway_through_writing_keeps_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "m.h5"
    io.save(ToyGradModel(), path)
    before = path.read_bytes()
    written = []

    def failing_section(parent, name, *args, **kwargs):
        written.append(name)
        raise RuntimeError("disk full (injected)")

    monkeypatch.setattr(io, "_write_section", failing_section)
    with pytest.raises(RuntimeError, match="injected"):
        io.save(ToyGradModel(random_state=1), path)
    assert written == ["fitted"]  # params were already written to the temporary file
    assert path.read_bytes() == before
    assert _files(tmp_path) == ["m.h5"]


def test_keyboard_interrupt_during_save_leaves_no_temporary_file(tmp_path, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(io, "_write_model", interrupted)
    with pytest.raises(KeyboardInterrupt):
        io.save(ToyGradModel(), tmp_path / "m.h5")
    assert _files(tmp_path) == []


def test_save_overwrites_an_existing_file(tmp_path):
    path = tmp_path / "m.h5"
    io.save(ToyGradModel(random_state=0), path)
    second = ToyGradModel(random_state=1)
    io.save(second, path)
    loaded = io.load(path)
    assert loaded.random_state == 1
    assert _bits_equal(loaded.params["enc.W0"], second.params["enc.W0"])
    assert _files(tmp_path) == ["m.h5"]


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------
def test_missing_file_raises_file_not_found_naming_the_path(tmp_path):
    path = tmp_path / "nope.h5"
    with pytest.raises(FileNotFoundError, match="nope.h5.*io.save"):
        io.load(path)


def test_non_hdf5_file_raises_value_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    with pytest.raises(ValueError, match="notes.txt.*not an HDF5 file"):
        io.load(path)


def test_foreign_hdf5_file_raises_value_error(tmp_path):
    import h5py

    path = tmp_path / "other.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(3)
    with pytest.raises(ValueError, match="other.h5.*not an lvm_core model file.*None"):
        io.load_checkpoint(path)


def test_newer_format_version_raises_value_error(tmp_path):
    import h5py

    path = tmp_path / "m.h5"
    io.save(ToyGradModel(), path)
    with h5py.File(path, "r+") as f:
        f.attrs["format_version"] = io.FORMAT_VERSION + 1
    with pytest.raises(ValueError, match=f"format version {io.FORMAT_VERSION + 1}.*Upgrade"):
        io.load(path)


def test_expected_type_mismatch_raises_type_error(tmp_path):
    path = tmp_path / "m.h5"
    io.save(ToyGradModel(), path)
    with pytest.raises(TypeError, match="ToyGradModel.*expected_type=.*ToyEMModel"):
        io.load(path, expected_type=ToyEMModel)
    with pytest.raises(TypeError, match="expected_type must be a class"):
        io.load(path, expected_type="ToyGradModel")


def test_expected_type_accepts_a_registered_subclass(tmp_path):
    @io.register_model_class
    class Child(ToyGradModel):
        pass

    io.save(Child(), tmp_path / "m.h5")
    assert type(io.load(tmp_path / "m.h5", expected_type=ToyGradModel)) is Child


def test_unregistered_class_is_refused_unless_named(tmp_path):
    path = tmp_path / "m.h5"
    io.save(UnregisteredModel(k=2), path)
    with pytest.raises(ValueError, match="UnregisteredModel.*register_model_class"):
        io.load(path)
    loaded = io.load(path, expected_type=UnregisteredModel)
    assert loaded.k == 2 and np.array_equal(loaded.params["w"], np.ones(2))
    assert io.load_state(path)["params"]["w"].shape == (2,)


def test_unknown_library_class_raises_value_error(tmp_path):
    import h5py

    path = tmp_path / "m.h5"
    io.save(ToyGradModel(), path)
    with h5py.File(path, "r+") as f:
        f.attrs["class_module"] = "lvm_core.models.no_such_module"
    with pytest.raises(ValueError, match="no_such_module.*does not have"):
        io.load(path)


def test_unbuildable_hyper_parameters_raise_type_error(tmp_path):
    path = tmp_path / "m.h5"
    io.save(ToyGradModel(), path)
    import h5py

    with h5py.File(path, "r+") as f:
        doc = json.loads(f.attrs["hyper_params"])
        doc["renamed_argument"] = 1
        f.attrs["hyper_params"] = json.dumps(doc)
    with pytest.raises(TypeError, match="could not rebuild.*renamed_argument"):
        io.load(path)


def test_save_into_missing_directory_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist.*makedirs"):
        io.save(ToyGradModel(), tmp_path / "missing" / "m.h5")


@pytest.mark.parametrize("params, message", [
    ({1: np.zeros(2)}, "keys must be strings"),
    ({"w": [1.0, 2.0]}, r"params\['w'\] must be an array"),
    ({"w": np.array(["a", "b"])}, r"params\['w'\] is an array of dtype <U1"),
])
def test_bad_params_raise_type_error(tmp_path, params, message):
    model = ToyGradModel()
    model.params = params
    with pytest.raises(TypeError, match=message):
        io.save(model, tmp_path / "m.h5")
    assert _files(tmp_path) == []


def test_unsaveable_extra_raises_type_error_naming_the_entry(tmp_path):
    with pytest.raises(TypeError, match=r"extra\['callback'\] has type function"):
        io.save(ToyGradModel(), tmp_path / "m.h5", extra={"callback": lambda: 0})


def test_register_model_class_rejects_non_classes():
    with pytest.raises(TypeError, match="expects a class"):
        io.register_model_class(ToyGradModel())
