"""Validation shared by the HMMs: hyper-parameters, parameters, data, labels.

Parameters set by hand (``model.transmat_ = ...``) are validated when fit or
inference reads them, and copied into float64 arrays of the data's namespace
and device: the caller's arrays are never modified and the estimator's
attributes are not rebound by inference.
"""
from __future__ import annotations

import numpy as np

from ...backend import asarray, device_of, get_namespace, is_numpy_namespace, namespace_name, to_numpy
from ...validation import NotFittedError, check_array, check_choice, check_positive_int

_LEARN_HELP = "a tuple of parameter names such as ('startprob', 'transmat')"


def describe(x):
    return f"shape {tuple(x.shape)} and dtype {x.dtype}"


class HMMChecks:
    """Checks used by :class:`lvm_core.models.hmm.base.BaseHMM` (a mixin)."""

    _emission_names = ()

    @property
    def _param_names_all(self):
        return ("startprob", "transmat") + tuple(self._emission_names)

    def _current(self, name, fitting=False):
        """The value of parameter ``name`` (without '_') that fit or inference will
        use: None when unset, or, with ``fitting``, when fit draws it afresh."""
        value = getattr(self, name + "_", None)
        if fitting and value is not None and name in self._init_names():
            return None
        return value

    def _set_by_hand(self, name):
        """True when ``name_`` holds a value that no fit of this estimator produced.

        ``fit`` / ``partial_fit`` remember the objects they assign; assigning
        a new object (``model.means_ = ...``) makes the parameter "set by hand"
        again.  (A fitted array changed in place still counts as fitted.)
        """
        value = getattr(self, name + "_", None)
        if value is None:
            return False
        return value is not getattr(self, "_fit_objects", {}).get(name)

    def _init_names(self, warm=None):
        """Names drawn afresh by the next fit.

        * ``warm`` (default: ``warm_start`` after a fit): only the unset ones;
        * ``init="auto"``: every parameter not set by hand;
        * ``init=(names...)``: those names (the others start as they are).
        """
        if warm is None:
            warm = bool(getattr(self, "warm_start", False)) and bool(getattr(self, "_fit_objects", None))
        if warm:
            return tuple(n for n in self._param_names_all if getattr(self, n + "_", None) is None)
        if isinstance(self.init, str) and self.init == "auto":
            return tuple(n for n in self._param_names_all if not self._set_by_hand(n))
        return self._check_names(self.init, "init")

    def _check_names(self, names, arg):
        if isinstance(names, str):
            raise TypeError(
                f"{arg} must be {_LEARN_HELP}; got the string {names!r}. Wrap it in a "
                f"tuple, e.g. {arg}=({names!r},)."
            )
        names = tuple(names)
        bad = [n for n in names if n not in self._param_names_all]
        if bad:
            raise ValueError(
                f"{arg} contains unknown parameter name(s) {bad}; valid names for "
                f"{type(self).__name__} are {list(self._param_names_all)}."
            )
        return names

    def _check_hyper(self):
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.n_iter, "n_iter")
        if not (self.tol >= 0):
            raise ValueError(f"tol must be >= 0; got {self.tol!r}.")
        check_choice(self.algorithm, "algorithm", ("viterbi", "map"))
        check_choice(self.implementation, "implementation", ("auto", "numba", "xp"))
        check_choice(self.init_method, "init_method", ("kmeans++", "random"))
        self._check_names(self.learn, "learn")
        if not (isinstance(self.init, str) and self.init == "auto"):
            self._check_names(self.init, "init")

    def _param(self, name, value, like, shape):
        """A parameter as a float64 copy in ``like``'s namespace and device, of ``shape``."""
        xp = get_namespace(like)
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            if isinstance(value, np.ndarray) and not is_numpy_namespace(xp):
                raise TypeError(
                    f"{name} is a NumPy array but X lives on {namespace_name(xp)}; move it "
                    f"explicitly, e.g. lvm_core.backend.asarray({name}, like=X)."
                )
            get_namespace(value, like)
            value = xp.astype(value, xp.float64, copy=True)
        else:
            value = asarray(np.asarray(value, dtype=np.float64), like=like)
        if tuple(value.shape) != tuple(shape):
            raise ValueError(
                f"{name} must have shape {tuple(shape)}; got {tuple(value.shape)}. "
                "Set it consistently with n_components (and the number of features)."
            )
        if not bool(xp.all(xp.isfinite(value))):
            raise ValueError(
                f"{name} must be finite; got NaN or infinite entries. Set it to finite "
                "values, or leave it as None so that fit() initialises it from the data."
            )
        return value

    @staticmethod
    def _prior(value, like):
        """A prior hyper-parameter (number, list or array of any real dtype) as a
        float64 value of ``like``'s namespace (numbers stay Python floats)."""
        if isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
            return float(value)
        xp = get_namespace(like)
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            get_namespace(value, like)
            return xp.astype(value, xp.float64)
        return asarray(np.asarray(value, dtype=np.float64), like=like)

    def _check_stochastic(self, name, p):
        xp = get_namespace(p)
        if bool(xp.any(p < 0)) or bool(xp.any(xp.isnan(p))):
            raise ValueError(f"{name} must hold non-negative probabilities; got negative or NaN entries.")
        s = xp.sum(p, axis=-1)
        if bool(xp.any(xp.abs(s - 1.0) > 1e-6)):
            raise ValueError(
                f"{name} rows must sum to 1; got sums between {float(xp.min(s)):.6g} and "
                f"{float(xp.max(s)):.6g}. Normalise it, e.g. p / p.sum(axis=-1, keepdims=True)."
            )

    def _checked_params(self, values, like):
        """Validated copies of a dict of parameters (name without '_' -> value)."""
        K = self.n_components
        out = dict(values)
        out["startprob"] = self._param("startprob_", values["startprob"], like, (K,))
        out["transmat"] = self._param("transmat_", values["transmat"], like, (K, K))
        self._check_stochastic("startprob_", out["startprob"])
        self._check_stochastic("transmat_", out["transmat"])
        out.update(self._check_emission(values, like))
        return out

    def _checked_transmat(self, like):
        A = self._param("transmat_", self.transmat_, like, (self.n_components, self.n_components))
        self._check_stochastic("transmat_", A)
        return A

    def _fitted_params(self, like):
        """The estimator's parameters, validated (NotFittedError when missing)."""
        self._is_fitted()
        return self._checked_params({n: getattr(self, n + "_") for n in self._param_names_all},
                                    like)

    def _is_fitted(self):
        names = ["startprob_", "transmat_"] + [n + "_" for n in self._emission_names]
        missing = [n for n in names if getattr(self, n, None) is None]
        if missing:
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet (missing "
                f"{', '.join(missing)}). Call fit(X) first, or set the parameters yourself."
            )

    # ------------------------------------------------------------------ data

    def _missing_rows(self, X):
        """(T,) bool of all-NaN rows (allow_missing) after checking NaN use."""
        xp = get_namespace(X)
        nan = xp.isnan(X)
        if not bool(xp.any(nan)):
            return None
        if not self.allow_missing:
            raise ValueError(
                f"X contains NaN; got an array of {describe(X)}. Pass allow_missing=True to "
                "marginalise rows that are entirely NaN, or impute the values."
            )
        all_nan = xp.all(nan, axis=1)
        partial = xp.any(nan, axis=1) & ~all_nan
        if bool(xp.any(partial)):
            rows = to_numpy(xp.nonzero(partial)[0])
            raise ValueError(
                f"X has rows that are only partly NaN (row {int(rows[0])}"
                f"{' and others' if rows.size > 1 else ''}); with allow_missing=True a row must "
                "be entirely NaN (a missing observation) or entirely observed. Impute the "
                "partly observed rows."
            )
        return all_nan

    def _as_2d_float(self, X, name="X"):
        """X as (T, D) float64 after :func:`lvm_core.validation.check_array` (which
        refuses sparse, complex, object/string, 0-row and 0-feature data with
        messages naming the fix); NaN/inf are checked by the caller."""
        X = check_array(X, name, ndim=2, allow_nan=True, allow_inf=True)
        xp = get_namespace(X)
        if not (xp.isdtype(X.dtype, "real floating") or xp.isdtype(X.dtype, "integral")
                or X.dtype == xp.bool):
            raise TypeError(f"{name} must be numeric; got {describe(X)}.")
        return xp.astype(X, xp.float64)

    def _validate_counts(self, X, n_known, what):
        """(T, D) non-negative integer counts as float64 (all-NaN rows zeroed and
        flagged with allow_missing), bounded by 2**53 (exact in float64)."""
        X = self._as_2d_float(X)
        xp = get_namespace(X)
        missing = self._missing_rows(X)
        X0 = X if missing is None else xp.where(missing[:, None], xp.zeros_like(X), X)
        if bool(xp.any(xp.isinf(X0))):
            raise ValueError("X contains infinite values; pass finite counts.")
        if bool(xp.any(X0 < 0)):
            raise ValueError(
                f"X must hold non-negative counts for a {what}; got a minimum of "
                f"{float(xp.min(X0)):g}."
            )
        if bool(xp.any(X0 != xp.round(X0))):
            raise ValueError(f"X must hold integer counts for a {what}; got non-integer values. "
                             "Round them or use a model for real-valued data.")
        if bool(xp.any(X0 > 2.0 ** 53)):
            raise ValueError(
                f"X holds counts up to {float(xp.max(X0)):g}, above 2**53 where float64 no "
                "longer represents every integer; rescale or cap the counts."
            )
        if n_known is not None and X.shape[1] != n_known:
            raise ValueError(
                f"X must have {n_known} features (columns) to match the model; got {describe(X)}.")
        return X0, missing

    def _check_states(self, states, T, like):
        """(T, K) bool mask of allowed states, or None (no labels, or all -1)."""
        if states is None:
            return None
        xp = get_namespace(like)
        if not hasattr(states, "shape"):
            states = asarray(np.asarray(states), like=like)
        get_namespace(states, like)
        if states.ndim != 1 or states.shape[0] != T:
            raise ValueError(
                f"states must be a 1-D integer array aligned with X ({T} rows); got "
                f"{describe(states)}. Use -1 for unknown states."
            )
        if not xp.isdtype(states.dtype, "integral"):
            raise TypeError(f"states must hold integers (-1 = unknown); got {describe(states)}.")
        K = self.n_components
        if bool(xp.any(states < -1)) or bool(xp.any(states >= K)):
            raise ValueError(
                f"states must be in -1..{K - 1} (-1 = unknown); got values from "
                f"{int(xp.min(states))} to {int(xp.max(states))}."
            )
        if bool(xp.all(states == -1)):  # no state known: no clamp (the same E-step)
            return None
        ks = xp.arange(K, device=device_of(like))
        return (states[:, None] == -1) | (states[:, None] == ks[None, :])  # (T, K)
