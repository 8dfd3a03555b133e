"""Shared estimator conveniences (scikit-learn conventions by duck typing).

Hyper-parameters are the arguments of ``__init__`` and are stored unchanged
under the same names; fitted attributes end in ``_``.  ``get_params`` /
``set_params`` follow scikit-learn so that lvm_core estimators work with its
model-selection tools without importing it.

scikit-learn (>= 1.6) asks every estimator for its tags with
``__sklearn_tags__``; :class:`ParamsMixin` answers with scikit-learn's own
``Tags``, taken from the already loaded scikit-learn (never imported by
lvm_core, never a dependency), built
from the class attribute ``_estimator_type`` ("density_estimator",
"clusterer", "transformer" or None).  ``__sklearn_is_fitted__`` tells
scikit-learn's ``check_is_fitted`` whether ``fit`` has run.

Input features follow scikit-learn's conventions: ``fit`` records
``n_features_in_`` (and ``feature_names_in_`` for a DataFrame whose column
names are all strings) and inference methods compare with them, both through
:meth:`ParamsMixin._validate_data` (called on the caller's ``X``, before it is
converted to an array).
Fitted parameters named in a class's ``_array_attributes`` may be set by hand:
lists, tuples, numbers and integer arrays become float64 arrays on assignment,
anything non-numeric raises TypeError there; :meth:`ParamsMixin._check_parameter_shapes`
checks, before inference, that parameters set by hand agree in shape.
:class:`ClusterMixin` adds ``fit_predict``; :class:`TransformerMixin` adds
``fit_transform``, ``get_feature_names_out`` and ``set_output`` (pandas or
polars containers for ``transform`` output).
"""
from __future__ import annotations

import functools
import inspect
import sys

import numpy as np

__all__ = ["ParamsMixin", "ClusterMixin", "TransformerMixin", "is_in_memory_input",
           "continues_fit"]


class ParamsMixin:
    """``get_params`` / ``set_params`` / ``__repr__`` from the ``__init__`` signature,
    scikit-learn tags, and the input-feature bookkeeping of fitted estimators."""

    _estimator_type = None
    #: fitted parameters that may be set by hand: a list, tuple, Python number or integer
    #: array assigned to one of these becomes a float64 NumPy array (see ``__setattr__``)
    _array_attributes: tuple = ()

    def __setattr__(self, name, value):
        if value is not None and name in type(self)._array_attributes:
            value = _as_parameter_array(value, name, type(self).__name__)
        object.__setattr__(self, name, value)

    @classmethod
    def _param_names(cls):
        sig = inspect.signature(cls.__init__)
        return [
            p.name
            for p in sig.parameters.values()
            if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        ]

    def get_params(self, deep=True):
        """Hyper-parameters as a dict (``deep`` accepted for scikit-learn compatibility)."""
        return {name: getattr(self, name) for name in self._param_names()}

    def set_params(self, **params):
        """Set hyper-parameters by name; unknown names raise ValueError."""
        valid = set(self._param_names())
        for name, value in params.items():
            if name not in valid:
                raise ValueError(
                    f"Invalid parameter {name!r} for {type(self).__name__}; valid parameters: "
                    f"{', '.join(sorted(valid))}."
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        sig = inspect.signature(type(self).__init__)
        parts = []
        for name in self._param_names():
            value = getattr(self, name, None)
            default = sig.parameters[name].default
            try:
                same = value is default or value == default
                same = bool(same)
            except Exception:
                same = False
            if not same:
                parts.append(f"{name}={value!r}")
        return f"{type(self).__name__}({', '.join(parts)})"

    # ------------------------------------------------------------------
    # scikit-learn protocol (no import of scikit-learn unless it is installed)
    # ------------------------------------------------------------------
    def __sklearn_tags__(self):
        """scikit-learn's ``Tags`` for this estimator (scikit-learn >= 1.6).

        scikit-learn calls this, so it is loaded already: its classes are taken
        from ``sys.modules`` and lvm_core never imports scikit-learn itself.
        """
        sk_utils = sys.modules.get("sklearn.utils")
        if sk_utils is None or not hasattr(sk_utils, "Tags"):
            raise ImportError(
                "__sklearn_tags__ is scikit-learn's protocol and needs scikit-learn >= 1.6 "
                "loaded (import sklearn first); lvm_core does not import it."
            )
        kind = self._estimator_type
        return sk_utils.Tags(
            estimator_type=kind,
            target_tags=sk_utils.TargetTags(required=False),
            transformer_tags=sk_utils.TransformerTags() if kind == "transformer" else None,
            input_tags=sk_utils.InputTags(two_d_array=True),
        )

    def _check_parameter_shapes(self, reference, expected):
        """ValueError naming the attribute when parameters (set by hand) disagree in shape.

        ``reference`` = (attribute, number of dimensions) whose shape defines the
        sizes; ``expected`` maps other attributes to a shape or a tuple of allowed
        shapes, computed from it by a function of that shape."""
        name, ndim = reference
        owner = type(self).__name__
        shape = tuple(getattr(getattr(self, name), "shape", ()))
        if len(shape) != ndim:
            raise ValueError(
                f"{owner}.{name} must have {ndim} dimension(s); got shape {shape}. Set it to "
                "an array of the documented shape (or refit)."
            )
        for other, allowed in expected(*shape).items():
            value = getattr(self, other, None)
            if value is None:
                continue
            allowed = [allowed] if not allowed or not isinstance(allowed[0], tuple) else allowed
            got = tuple(getattr(value, "shape", ()))
            if got not in [tuple(a) for a in allowed]:
                raise ValueError(
                    f"{owner}.{other} has shape {got}, but {name} of shape {shape} needs "
                    f"{' or '.join(str(tuple(a)) for a in allowed)}. Set parameters of "
                    "matching shapes (or refit)."
                )

    def __sklearn_is_fitted__(self):
        """True once ``fit`` has set a public attribute ending in ``_``."""
        return any(name.endswith("_") and not name.startswith("_") and value is not None
                   for name, value in vars(self).items())

    def _validate_data(self, X, reset, name="X", **check_kwargs):
        """``check_array(X, name, **check_kwargs)``, recording (``reset=True``, at fit)
        or checking (``reset=False``) the input features: their number from the
        checked array, their names from the caller's ``X`` (a DataFrame).

        With ``reset=False`` an ``n_features`` keyword (the width of the fitted
        parameters) is checked instead of ``n_features_in_``, with scikit-learn's
        message ("X has ... features, but ... is expecting ...")."""
        from ..validation import check_array

        names = _column_names(X)
        # the width the fitted parameters need (``n_features``, from the caller) takes
        # precedence over the recorded ``n_features_in_`` (parameters set by hand)
        expected = check_kwargs.pop("n_features", None)
        X = check_array(X, name, **check_kwargs)
        n = int(X.shape[1]) if X.ndim > 1 else 1
        if reset:
            from ..validation import check_magnitude

            dtype = getattr(self, "dtype", None)
            check_magnitude(X, name, dtype=dtype if dtype in ("float32", "float64") else None)
            self.n_features_in_ = n
            if names is not None:
                self.feature_names_in_ = names
            elif hasattr(self, "feature_names_in_"):
                del self.feature_names_in_
            return X
        if expected is None:
            expected = getattr(self, "n_features_in_", None)
        if expected is not None and n != expected:
            raise ValueError(
                f"X has {n} features, but {type(self).__name__} is expecting {expected} "
                "features as input. Pass data with the columns the model was fitted on."
            )
        fitted_names = getattr(self, "feature_names_in_", None)
        if fitted_names is not None and names is not None \
                and not np.array_equal(names, fitted_names):
            raise ValueError(
                f"The feature names of X differ from those seen at fit by "
                f"{type(self).__name__}: got {list(names)}, expected {list(fitted_names)}. "
                "Select and order the columns as at fit."
            )
        return X


def _as_parameter_array(value, name, owner):
    """A hand-set parameter as an array: lists, tuples and numbers become float64 NumPy
    arrays, integer and boolean NumPy arrays float64; arrays of any backend with a real
    floating dtype are kept.  Anything else raises TypeError naming the attribute."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "biuO":
            try:
                return value.astype(np.float64)
            except (TypeError, ValueError):
                pass
        elif value.dtype.kind == "f":
            return value
    elif hasattr(value, "shape") and hasattr(value, "dtype"):
        return value  # an array of another backend: its namespace checks it when used
    elif isinstance(value, (list, tuple, int, float, np.number)) and not isinstance(value, bool):
        try:
            return np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            pass
    raise TypeError(
        f"{owner}.{name} must be a real-valued array (a list, tuple or NumPy array of "
        f"numbers); got {type(value).__name__}"
        + (f" of dtype {value.dtype}" if hasattr(value, "dtype") else "")
        + ". Set it to e.g. numpy.asarray(values, dtype=float)."
    )


def continues_fit(model):
    """True when ``fit`` should continue from ``model.params`` rather than start again
    from the initialisation: ``model.warm_start`` is set and the current parameters
    have the names and shapes a fresh ``model.initialize()`` gives (so a refit
    after changing the architecture starts again).  Gradient models call this at the
    top of ``fit``, as scikit-learn's estimators treat ``warm_start``.
    """
    params = getattr(model, "params", None)
    if not getattr(model, "warm_start", False) or params is None:
        return False
    saved = params
    try:
        model.initialize()
        fresh = {k: tuple(v.shape) for k, v in model.params.items()}
    finally:
        model.params = saved
    return fresh == {k: tuple(v.shape) for k, v in saved.items()}


def is_in_memory_input(X):
    """True when ``fit`` should take ``X`` whole (converted by ``check_array``): arrays of
    the backends, lists, pandas/polars frames and other objects with ``__array__`` but
    no ``shape``; False for row sources streamed by blocks (``h5py.Dataset``, dask)."""
    from ..em import is_dask_collection, is_in_memory_array

    if is_in_memory_array(X):
        return True
    if is_dask_collection(X):
        return False
    if type(X).__module__.split(".")[0] in ("pandas", "polars"):
        return True
    return hasattr(X, "__array__") and not hasattr(X, "shape")


def _column_names(X):
    """Column names of a DataFrame-like X when they are all strings, else None."""
    columns = getattr(X, "columns", None)
    if columns is None or isinstance(X, np.ndarray):
        return None
    names = [c for c in columns]
    if not names or not all(isinstance(c, str) for c in names):
        return None
    return np.asarray(names, dtype=object)


class ClusterMixin:
    """``fit_predict(X)``: fit, then the most probable component of each row."""

    _estimator_type = "clusterer"

    def fit_predict(self, X, y=None, **fit_params):
        """``self.fit(X, **fit_params).predict(X)``; ``y`` is ignored."""
        return self.fit(X, **fit_params).predict(X)


class TransformerMixin:
    """``fit_transform``, ``get_feature_names_out`` and ``set_output`` for transformers.

    ``set_output(transform="pandas")`` (or "polars") makes ``transform`` and
    ``fit_transform`` return a DataFrame with columns
    ``get_feature_names_out()``; ``"default"`` returns arrays again.  Like
    scikit-learn, a subclass's ``transform`` is wrapped once, when the class is
    defined; ``fit_transform`` goes through it.
    """

    _estimator_type = "transformer"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        for name in ("transform", "fit_transform"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_lvm_wraps_output", False):
                setattr(cls, name, _wrap_output(method))

    def fit_transform(self, X, y=None, **fit_params):
        """``self.fit(X, **fit_params).transform(X)``; ``y`` is ignored (the output
        follows ``set_output`` through ``transform``)."""
        return self.fit(X, **fit_params).transform(X)

    def get_feature_names_out(self, input_features=None):
        """``["<classname>0", "<classname>1", ...]``, one per output column."""
        n_out = getattr(self, "_n_features_out", None)
        if n_out is None:
            components = getattr(self, "components_", None)
            if components is None:
                from ..validation import not_fitted_error

                raise not_fitted_error(
                    f"This {type(self).__name__} instance is not fitted yet. Call fit(X) first."
                )
            n_out = int(np.shape(components)[0])
        prefix = type(self).__name__.lower()
        return np.asarray([f"{prefix}{i}" for i in range(n_out)], dtype=object)

    def set_output(self, *, transform=None):
        """Choose the container of ``transform``'s output: "default", "pandas" or "polars"."""
        if transform is None:
            return self
        if transform not in ("default", "pandas", "polars"):
            raise ValueError(
                f"set_output(transform=...) must be 'default', 'pandas' or 'polars'; got "
                f"{transform!r}."
            )
        # scikit-learn's clone() copies this attribute, so the choice survives cloning
        self._sklearn_output_config = {"transform": transform}
        return self


def _wrap_output(method):
    """Wrap a transform method so that its output follows ``set_output``."""

    @functools.wraps(method)
    def wrapped(self, X, *args, **kwargs):
        out = method(self, X, *args, **kwargs)
        container = getattr(self, "_sklearn_output_config", {}).get("transform", "default")
        if container == "default":
            return out
        columns = list(self.get_feature_names_out())
        index = getattr(X, "index", None) if container == "pandas" else None
        from ..backend import to_numpy

        data = to_numpy(out)
        if container == "pandas":
            import pandas as pd

            return pd.DataFrame(data, columns=columns, index=index)
        import polars as pl

        return pl.DataFrame(data, schema=columns)

    wrapped._lvm_wraps_output = True
    return wrapped
