"""Hidden Markov models trained by EM (Baum-Welch), with MAP priors.

References: L. R. Rabiner, "A tutorial on hidden Markov models and selected
applications in speech recognition", Proc. IEEE 77(2), 1989; C. M. Bishop,
Pattern Recognition and Machine Learning, 2006, ch. 13.2.  The API and the
prior conventions follow hmmlearn 0.3 (same fitted values for the same
priors and starting parameters).

Model (K states, sequences concatenated with ``lengths``):

    p(X, Z) = pi_{z_1} prod_{t>1} A_{z_{t-1} z_t} prod_t p(x_t | z_t)

E-step: forward-backward (kernels in :mod:`lvm_core.kernels`) gives
gamma_t(k) = p(z_t = k | X), the expected transition counts
xi_sum_ij = sum_t p(z_t = i, z_{t+1} = j | X), and log p(X).
M-step (MAP with Dirichlet priors; Rabiner eqs. 40a-b):

    pi_k  = max(start_k + a_k - 1, 0) / sum_j max(start_j + a_j - 1, 0)
    A_ij  = max(xi_sum_ij + b_ij - 1, 0) / sum_j' max(xi_sum_ij' + b_ij' - 1, 0)

and the emission M-steps of :mod:`lvm_core.models.hmm_emissions`.

Conventions:

* entries of ``startprob_`` / ``transmat_`` that are exactly 0 stay 0
  (structural zeros, e.g. left-right models);
* a state (or a row of the transition matrix) with no posterior mass keeps
  its previous parameters instead of becoming NaN;
* partially labelled training (the course notes' "supervision over a subset
  of the variables"): ``fit(X, states=s)`` with s_t in 0..K-1 for known
  states and -1 for unknown ones clamps the E-step
  (log p(x_t | z_t = k) = -inf for k != s_t), so EM maximises
  log p(X, {z_t = s_t : s_t known});
* missing observations (``allow_missing=True``): rows of X that are all NaN
  have log p(x_t | z_t = k) = 0 (marginalised) and add nothing to the
  emission statistics.

Convergence: EM stops after ``n_iter`` iterations (default 10, as in
hmmlearn) or once an iteration changes log p(X) by at most
``tol * |log p(X)|`` (``tol`` is relative, default 1e-6: hmmlearn's absolute
default of 1e-2 would be far too loose as a relative tolerance).

Kernels: ``implementation="auto"`` uses the numba kernels for NumPy inputs
and the array-API kernels otherwise ("numba" or "xp" forces one).
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import (asarray, device_of, get_namespace, is_numpy_namespace, namespace_name,
                       to_numpy)
from ..em import ConvergenceMonitor
from ..random import as_generator
from ..validation import NotFittedError, check_choice, check_lengths, check_positive_int
from . import hmm_emissions as em
from .base import ParamsMixin

__all__ = ["BaseHMM", "CategoricalHMM", "GaussianHMM", "GMMHMM", "PoissonHMM"]

_LEARN_HELP = "a tuple of parameter names such as ('startprob', 'transmat')"


def _safe_log(xp, p):
    """log p with log 0 = -inf and no warning."""
    pos = p > 0
    return xp.where(pos, xp.log(xp.where(pos, p, xp.ones_like(p))), xp.full_like(p, -math.inf))


def _describe(x):
    return f"shape {tuple(x.shape)} and dtype {x.dtype}"


class BaseHMM(ParamsMixin):
    """Shared EM loop, inference and sampling; subclasses define the emissions.

    Subclasses implement ``_emission_names`` (parameter names),
    ``_prepare(X, fit)`` (validated data dict), ``_log_emission(data)``
    (T, K), ``_emission_stats(data, posteriors)``, ``_emission_m_step(stats)``,
    ``_init_emission(name, data, rng)``, ``_check_emission()``,
    ``_n_emission_scalars()`` and ``_sample_emission(states, rng)``.
    """

    _emission_names = ()

    # ------------------------------------------------------------ parameters

    @property
    def _param_names_all(self):
        return ("startprob", "transmat") + tuple(self._emission_names)

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

    def _kernels(self, xp):
        impl = self.implementation
        if impl == "auto":
            impl = "numba" if is_numpy_namespace(xp) else "xp"
        if impl == "numba":
            if not is_numpy_namespace(xp):
                raise TypeError(
                    f"implementation='numba' needs NumPy arrays; got {namespace_name(xp)} "
                    "arrays. Use implementation='xp' (or 'auto') for other backends."
                )
            from ..kernels import hmm_numba as kernels
        else:
            from ..kernels import hmm_xp as kernels
        return kernels

    def _param(self, name, value, like, shape):
        """A parameter as a float64 array of ``like``'s namespace and device, of
        ``shape`` (a copy: the caller's array is never modified)."""
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

    def _check_parameters(self, like):
        K = self.n_components
        self.startprob_ = self._param("startprob_", self.startprob_, like, (K,))
        self.transmat_ = self._param("transmat_", self.transmat_, like, (K, K))
        self._check_stochastic("startprob_", self.startprob_)
        self._check_stochastic("transmat_", self.transmat_)
        self._check_emission(like)

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
                f"X contains NaN; got an array of {_describe(X)}. Pass allow_missing=True to "
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
        if not hasattr(X, "shape"):
            if X is None or isinstance(X, (str, bytes)):
                raise TypeError(f"{name} must be an array; got {type(X).__name__}.")
            X = np.asarray(X)
        xp = get_namespace(X)
        if X.ndim == 1:
            raise ValueError(
                f"{name} must be 2-D (T, D); got {_describe(X)}. Reshape a single feature "
                f"with X.reshape(-1, 1)."
            )
        if X.ndim != 2:
            raise ValueError(f"{name} must be 2-D (T, D); got {_describe(X)}.")
        if X.shape[0] == 0:
            raise ValueError(f"{name} is empty (0 rows); pass at least one observation.")
        if not (xp.isdtype(X.dtype, "real floating") or xp.isdtype(X.dtype, "integral")
                or X.dtype == xp.bool):
            raise TypeError(f"{name} must be numeric; got {_describe(X)}.")
        return xp.astype(X, xp.float64)

    def _check_states(self, states, T, like):
        """(T, K) bool mask of allowed states, or None (no labels)."""
        if states is None:
            return None
        xp = get_namespace(like)
        if not hasattr(states, "shape"):
            states = asarray(np.asarray(states), like=like)
        get_namespace(states, like)
        if states.ndim != 1 or states.shape[0] != T:
            raise ValueError(
                f"states must be a 1-D integer array aligned with X ({T} rows); got "
                f"{_describe(states)}. Use -1 for unknown states."
            )
        if not xp.isdtype(states.dtype, "integral"):
            raise TypeError(f"states must hold integers (-1 = unknown); got {_describe(states)}.")
        K = self.n_components
        if bool(xp.any(states < -1)) or bool(xp.any(states >= K)):
            raise ValueError(
                f"states must be in -1..{K - 1} (-1 = unknown); got values from "
                f"{int(xp.min(states))} to {int(xp.max(states))}."
            )
        ks = xp.arange(K, device=device_of(like))
        return (states[:, None] == -1) | (states[:, None] == ks[None, :])  # (T, K)

    # ------------------------------------------------------------- inference

    def _log_frameprob(self, data, clamp=None):
        """log p(x_t | z_t = k) (T, K) with missing rows 0 and clamped states -inf."""
        xp = data["xp"]
        lfp = self._log_emission(data)
        missing = data.get("missing")
        if missing is not None:
            lfp = xp.where(missing[:, None], xp.zeros_like(lfp), lfp)
        if clamp is not None:
            lfp = xp.where(clamp, lfp, xp.full_like(lfp, -math.inf))
        return lfp

    def _raise_impossible(self, log_prob, lfp, lengths, xp, clamp):
        """ValueError naming the first impossible sequence and its time index
        (located on the host with the per-step predictive log-probabilities;
        an error path only)."""
        lp = to_numpy(log_prob)
        bad = int(np.flatnonzero(~np.isfinite(lp))[0])
        starts = np.cumsum(lengths) - lengths
        lo, hi = int(starts[bad]), int(starts[bad] + lengths[bad])
        from ..kernels.hmm_numba import forward_log_scaling

        seq_lfp = to_numpy(lfp[lo:hi, ...])
        steps = forward_log_scaling(to_numpy(_safe_log(xp, self.startprob_)),
                                    to_numpy(_safe_log(xp, self.transmat_)), seq_lfp)
        t = int(np.flatnonzero(~np.isfinite(steps))[0])
        every = not np.any(np.isfinite(seq_lfp[t]))
        why = ("the observation has zero probability under every state"
               + (" allowed by `states`" if clamp is not None else "")) if every else \
            ("no state that can emit it is reachable from the previous step (structural "
             "zeros in startprob_/transmat_" + (" or the labels in `states`" if clamp is not None
                                                 else "") + ")")
        raise ValueError(
            f"X is impossible under the model: sequence {bad} (rows {lo}..{hi - 1} of X) has "
            f"zero probability at time index {t} (row {lo + t} of X): {why}. Check the data "
            "or the parameters (e.g. emissionprob_ rows with zeros, or a prior that allows "
            "every symbol)."
        )

    def _forward_backward(self, data, clamp=None):
        xp = data["xp"]
        kernels = self._kernels(xp)
        lfp = self._log_frameprob(data, clamp)
        extra = {} if data.get("work") is None or kernels.__name__.endswith("hmm_xp") else \
            {"work": data["work"]}  # fit reuses the numba work arrays between iterations
        log_prob, post, start_sum, xi_sum = kernels.forward_backward(
            _safe_log(xp, self.startprob_), _safe_log(xp, self.transmat_), lfp, data["lengths"],
            **extra)
        if not bool(xp.all(xp.isfinite(log_prob))):
            self._raise_impossible(log_prob, lfp, data["lengths"], xp, clamp)
        return log_prob, post, start_sum, xi_sum

    def _e_step(self, data, clamp=None):
        """Statistics of q(Z) = p(Z | X) and log p(X) (Rabiner eqs. 18-27, 37-40)."""
        xp = data["xp"]
        log_prob, post, start_sum, xi_sum = self._forward_backward(data, clamp)
        missing = data.get("missing")
        post_obs = post if missing is None else xp.where(missing[:, None], xp.zeros_like(post), post)
        stats = {"start": start_sum, "trans": xi_sum}
        stats.update(self._emission_stats(data, post_obs))
        return stats, float(xp.sum(log_prob))

    def _m_step(self, stats, learn):
        xp = get_namespace(self.startprob_)
        if "startprob" in learn:
            counts = xp.maximum(stats["start"] + (self.startprob_prior - 1.0),
                                xp.zeros_like(self.startprob_))
            counts = xp.where(self.startprob_ == 0, xp.zeros_like(counts), counts)
            total = xp.sum(counts)
            if float(total) > 0:
                self.startprob_ = counts / total
        if "transmat" in learn:
            counts = xp.maximum(stats["trans"] + (self.transmat_prior - 1.0),
                                xp.zeros_like(self.transmat_))
            counts = xp.where(self.transmat_ == 0, xp.zeros_like(counts), counts)
            total = xp.sum(counts, axis=1, keepdims=True)
            ok = total > 0
            self.transmat_ = xp.where(ok, counts / xp.where(ok, total, xp.ones_like(total)),
                                      self.transmat_)
        self._emission_m_step(stats, learn)

    # ------------------------------------------------------------------ init

    def _init_names(self):
        if isinstance(self.init, str) and self.init == "auto":
            return tuple(n for n in self._param_names_all if getattr(self, n + "_", None) is None)
        return self._check_names(self.init, "init")

    def _initialize(self, data, rng):
        names = self._init_names()
        K = self.n_components
        like = data["like"]
        if "startprob" in names:
            self.startprob_ = asarray(np.full(K, 1.0 / K), like=like)
        if "transmat" in names:
            self.transmat_ = asarray(rng.dirichlet(np.ones(K), size=K), like=like)
        for name in self._emission_names:
            if name in names:
                self._init_emission(name, data, rng)

    # ------------------------------------------------------------------- API

    def fit(self, X, lengths=None, states=None):
        """Estimate the parameters by EM (MAP with the priors).

        X: (T, ...) observations of all sequences concatenated; lengths: (S,)
        sequence lengths (None: one sequence); states: (T,) int, the known
        state at each step or -1 where unknown (partially labelled training).
        Returns self.
        """
        self._check_hyper()
        data = self._prepare(X, lengths, fit=True)
        data["work"] = {}  # numba work arrays, reused by every E-step of this fit
        T = data["T"]
        clamp = self._check_states(states, T, data["like"])
        rng = as_generator(self.random_state)
        self._initialize(data, rng)
        self._check_parameters(data["like"])
        learn = self._check_names(self.learn, "learn")
        monitor = ConvergenceMonitor(tol=self.tol, n_iter=self.n_iter, verbose=self.verbose)
        while True:
            stats, log_prob = self._e_step(data, clamp)
            stop = monitor.report(log_prob)
            self._m_step(stats, learn)
            if stop:
                break
        self.monitor_ = monitor
        self.n_iter_ = monitor.iter
        self.converged_ = monitor.converged
        return self

    def _prepare_fitted(self, X, lengths):
        self._is_fitted()
        data = self._prepare(X, lengths, fit=False)
        self._check_parameters(data["like"])
        return data

    def score_samples(self, X, lengths=None):
        """(log p(X) summed over sequences, posteriors gamma (T, K))."""
        data = self._prepare_fitted(X, lengths)
        log_prob, post, _, _ = self._forward_backward(data)
        return float(data["xp"].sum(log_prob)), post

    def score(self, X, lengths=None):
        """log p(X) = sum over sequences of log p(x^(s)) (forward pass only)."""
        data = self._prepare_fitted(X, lengths)
        xp = data["xp"]
        kernels = self._kernels(xp)
        lfp = self._log_frameprob(data)
        log_prob = kernels.forward_log_prob(_safe_log(xp, self.startprob_),
                                            _safe_log(xp, self.transmat_), lfp, data["lengths"])
        if not bool(xp.all(xp.isfinite(log_prob))):
            self._raise_impossible(log_prob, lfp, data["lengths"], xp, None)
        return float(xp.sum(log_prob))

    def predict_proba(self, X, lengths=None):
        """Posterior state probabilities gamma_t(k) (T, K)."""
        return self.score_samples(X, lengths)[1]

    def decode(self, X, lengths=None, algorithm=None):
        """Most likely states.

        "viterbi": (sum over sequences of max_z log p(x, z), argmax path);
        "map": (sum_t max_k gamma_t(k) as in hmmlearn, argmax_k gamma_t(k)).
        """
        algorithm = self.algorithm if algorithm is None else algorithm
        check_choice(algorithm, "algorithm", ("viterbi", "map"))
        if algorithm == "map":
            data = self._prepare_fitted(X, lengths)
            xp = data["xp"]
            _, post = self.score_samples(X, lengths)
            return float(xp.sum(xp.max(post, axis=1))), xp.astype(xp.argmax(post, axis=1), xp.int64)
        data = self._prepare_fitted(X, lengths)
        xp = data["xp"]
        lfp = self._log_frameprob(data)
        log_prob, path = self._kernels(xp).viterbi(
            _safe_log(xp, self.startprob_), _safe_log(xp, self.transmat_), lfp, data["lengths"])
        if not bool(xp.all(xp.isfinite(log_prob))):
            self._raise_impossible(log_prob, lfp, data["lengths"], xp, None)
        return float(xp.sum(log_prob)), path

    def predict(self, X, lengths=None):
        """Most likely state at each step (T,) with ``self.algorithm``."""
        return self.decode(X, lengths)[1]

    def sample(self, n_samples=1, random_state=None, currstate=None):
        """Draw ``(X, states)`` from the model: z_1 ~ pi (or ``currstate``),
        z_t ~ A[z_{t-1}], x_t ~ p(x | z_t).  ``random_state=None`` uses the
        model's ``random_state``.  The chain is drawn on the host and the result
        placed on the parameters' device."""
        self._is_fitted()
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = as_generator(self.random_state if random_state is None else random_state)
        pi = to_numpy(self.startprob_)
        A = to_numpy(self.transmat_)
        cdf_A = np.cumsum(A, axis=1)
        u = rng.random(n_samples)
        states = np.empty(n_samples, dtype=np.int64)
        if currstate is None:
            states[0] = min(int(np.searchsorted(np.cumsum(pi), u[0], side="right")), len(pi) - 1)
        else:
            states[0] = int(currstate)
        for t in range(1, n_samples):
            row = cdf_A[states[t - 1]]
            states[t] = min(int(np.searchsorted(row, u[t] * row[-1], side="right")), len(pi) - 1)
        X = self._sample_emission(states, rng)
        like = self.startprob_
        return asarray(X, like=like), asarray(states, like=like, dtype="int64")

    def _n_fit_scalars(self):
        K = self.n_components
        return K - 1 + K * (K - 1) + self._n_emission_scalars()

    def aic(self, X, lengths=None):
        """AIC = -2 log p(X) + 2 n_params (hmmlearn's parameter count)."""
        return -2.0 * self.score(X, lengths) + 2.0 * self._n_fit_scalars()

    def bic(self, X, lengths=None):
        """BIC = -2 log p(X) + n_params log T (hmmlearn's parameter count)."""
        T = X.shape[0] if hasattr(X, "shape") else len(X)
        return -2.0 * self.score(X, lengths) + self._n_fit_scalars() * math.log(T)

    # helper for subclasses
    def _base_data(self, X, lengths):
        xp = get_namespace(X)
        T = X.shape[0]
        return {"xp": xp, "T": T, "like": X, "lengths": check_lengths(lengths, T)}


# ------------------------------------------------------------------ categorical


class CategoricalHMM(BaseHMM):
    """HMM with categorical emissions B[k, f] = p(x_t = f | z_t = k).

    X: (T, 1) or (T,) integer symbols in 0..n_features-1 (with
    ``allow_missing=True`` a float array whose missing entries are NaN).
    Fitted: ``startprob_`` (K,), ``transmat_`` (K, K), ``emissionprob_`` (K, F).
    The emission prior is a Dirichlet(emissionprob_prior) on each row of B.
    """

    _emission_names = ("emissionprob",)

    def __init__(self, n_components=1, n_features=None, startprob_prior=1.0, transmat_prior=1.0,
                 emissionprob_prior=1.0, algorithm="viterbi", random_state=None, n_iter=10,
                 tol=1e-6, verbose=False, learn=("startprob", "transmat", "emissionprob"),
                 init="auto", init_method="random", allow_missing=False, implementation="auto"):
        self.n_components = n_components
        self.n_features = n_features
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.emissionprob_prior = emissionprob_prior
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.learn = learn
        self.init = init
        self.init_method = init_method
        self.allow_missing = allow_missing
        self.implementation = implementation

    def _n_symbols(self):
        em_p = getattr(self, "emissionprob_", None)
        if em_p is not None:
            return int(em_p.shape[1])
        if self.n_features is not None:
            return int(self.n_features)
        return None

    def _prepare(self, X, lengths, fit):
        if not hasattr(X, "shape"):
            if X is None or isinstance(X, (str, bytes)):
                raise TypeError(f"X must be an array of integer symbols; got {type(X).__name__}.")
            X = np.asarray(X)
        xp = get_namespace(X)
        if X.ndim == 2 and X.shape[1] == 1:
            X = xp.reshape(X, (X.shape[0],))
        elif X.ndim != 1:
            raise ValueError(
                f"X must hold one integer symbol per row, shape (T, 1) or (T,); got {_describe(X)}."
            )
        if X.shape[0] == 0:
            raise ValueError("X is empty (0 rows); pass at least one observation.")
        missing = None
        if xp.isdtype(X.dtype, "real floating"):
            if not self.allow_missing:
                raise ValueError(
                    f"X must hold integer symbols; got {_describe(X)}. Convert with "
                    "X.astype(int) (float arrays are accepted only with allow_missing=True, "
                    "NaN marking a missing symbol)."
                )
            nan = xp.isnan(X)
            missing = nan if bool(xp.any(nan)) else None
            filled = xp.where(nan, xp.zeros_like(X), X)
            if bool(xp.any(filled != xp.round(filled))) or bool(xp.any(xp.isinf(filled))):
                raise ValueError("X must hold integer symbols (or NaN for missing ones); got "
                                 "non-integer values. Round or encode the symbols as integers.")
            X = xp.astype(filled, xp.int64)
        elif xp.isdtype(X.dtype, "integral"):
            X = xp.astype(X, xp.int64)
        else:
            raise ValueError(f"X must hold integer symbols; got {_describe(X)}.")
        if bool(xp.any(X < 0)):
            raise ValueError(f"X must hold non-negative symbols; got a minimum of {int(xp.min(X))}.")
        largest = int(xp.max(X))
        n_sym = self._n_symbols()
        if n_sym is not None and largest > n_sym - 1:
            raise ValueError(
                f"Largest symbol is {largest} but the model only emits symbols up to "
                f"{n_sym - 1}. Set n_features to at least {largest + 1} (or re-encode X)."
            )
        data = self._base_data(X, lengths)
        data["like"] = xp.astype(X, xp.float64)
        data["symbols"] = X
        data["missing"] = missing
        data["largest"] = largest
        return data

    def _check_emission(self, like):
        B = self.emissionprob_
        n_sym = int(B.shape[1]) if hasattr(B, "shape") else len(B[0])
        self.emissionprob_ = self._param("emissionprob_", B, like, (self.n_components, n_sym))
        self._check_stochastic("emissionprob_", self.emissionprob_)

    def _init_emission(self, name, data, rng):
        F = self.n_features if self.n_features is not None else data["largest"] + 1
        B = rng.random((self.n_components, int(F)))
        self.emissionprob_ = asarray(B / B.sum(axis=1, keepdims=True), like=data["like"])

    def _log_emission(self, data):
        log_B = _safe_log(data["xp"], self.emissionprob_)  # (K, F)
        return em.categorical_log_frameprob(data["symbols"], log_B)

    def _emission_stats(self, data, post):
        return {"obs": em.categorical_stats(data["symbols"], post, self.emissionprob_.shape[1])}

    def _emission_m_step(self, stats, learn):
        if "emissionprob" in learn:
            self.emissionprob_ = em.categorical_m_step(stats["obs"], self.emissionprob_prior,
                                                       self.emissionprob_)

    def _n_emission_scalars(self):
        return self.n_components * (int(self.emissionprob_.shape[1]) - 1)

    def _sample_emission(self, states, rng):
        B = to_numpy(self.emissionprob_)
        cdf = np.cumsum(B, axis=1)[states]  # (T, F)
        u = rng.random(len(states))[:, None]
        return np.minimum((cdf <= u * cdf[:, -1:]).sum(axis=1), B.shape[1] - 1)[:, None]


# --------------------------------------------------------------------- gaussian


def _kmeans_pp(X, n_clusters, rng, n_lloyd=10):
    """k-means++ seeding (Arthur & Vassilvitskii 2007) then Lloyd iterations,
    on host data X (N, D) float64.  Returns (n_clusters, D) centres."""
    N = X.shape[0]
    centres = np.empty((n_clusters, X.shape[1]))
    centres[0] = X[rng.integers(N)]
    d2 = np.sum((X - centres[0]) ** 2, axis=1)
    for j in range(1, n_clusters):
        total = d2.sum()
        idx = rng.integers(N) if total <= 0 else int(rng.choice(N, p=d2 / total))
        centres[j] = X[idx]
        d2 = np.minimum(d2, np.sum((X - centres[j]) ** 2, axis=1))
    for _ in range(n_lloyd):
        dist = (np.sum(X * X, axis=1)[:, None] - 2 * X @ centres.T
                + np.sum(centres * centres, axis=1)[None, :])  # (N, C)
        label = np.argmin(dist, axis=1)
        for j in range(n_clusters):
            members = X[label == j]
            if len(members):
                centres[j] = members.mean(axis=0)
    return centres


def _init_sample(X_host, rng, max_rows=20000):
    """A random subset of rows for initialisation (keeps k-means++ cheap)."""
    if X_host.shape[0] > max_rows:
        return X_host[rng.choice(X_host.shape[0], max_rows, replace=False)]
    return X_host


class _GaussianData:
    """Shared data preparation for Gaussian-family emissions."""

    def _prepare(self, X, lengths, fit):
        X = self._as_2d_float(X)
        xp = get_namespace(X)
        missing = self._missing_rows(X)
        if missing is not None:
            X = xp.where(missing[:, None], xp.zeros_like(X), X)
        else:
            X_inf = xp.isinf(X)
            if bool(xp.any(X_inf)):
                raise ValueError("X contains infinite values; pass finite observations.")
        n_feat = self._n_features_known()
        if n_feat is not None and X.shape[1] != n_feat:
            raise ValueError(
                f"X must have {n_feat} features (columns) to match the model; got {_describe(X)}."
            )
        data = self._base_data(X, lengths)
        if missing is not None:
            n_obs = X.shape[0] - int(xp.sum(xp.astype(missing, xp.int64)))
            shift = xp.sum(X, axis=0) / max(n_obs, 1)
        else:
            shift = xp.mean(X, axis=0)
        X_c = X - shift[None, :]
        if missing is not None:
            X_c = xp.where(missing[:, None], xp.zeros_like(X_c), X_c)
        X_c2 = X_c * X_c
        data.update(X=X, X_c=X_c, X_c2=X_c2, shift=shift, missing=missing,
                    Z=xp.concat([X_c, X_c2], axis=1))  # (T, 2 D)
        return data

    def _observed_host(self, data):
        X = to_numpy(data["X"])
        if data["missing"] is not None:
            X = X[~to_numpy(data["missing"])]
        return X


class GaussianHMM(_GaussianData, BaseHMM):
    """HMM with Gaussian emissions N(x | mu_k, Sigma_k).

    ``covars_`` is compact like scikit-learn's GaussianMixture: spherical (K,),
    diag (K, D), full (K, D, D), tied (D, D); ``full_covars_`` is (K, D, D).
    Priors (hmmlearn 0.3): means ~ N(means_prior, Sigma / means_weight);
    covariances with an inverse-Gamma/Wishart-like prior (covars_prior,
    covars_weight); see :func:`lvm_core.models.hmm_emissions.gaussian_m_step`.
    """

    _emission_names = ("means", "covars")

    def __init__(self, n_components=1, covariance_type="diag", min_covar=1e-3,
                 startprob_prior=1.0, transmat_prior=1.0, means_prior=0, means_weight=0,
                 covars_prior=1e-2, covars_weight=1, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-6, verbose=False,
                 learn=("startprob", "transmat", "means", "covars"), init="auto",
                 init_method="kmeans++", allow_missing=False, implementation="auto"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.learn = learn
        self.init = init
        self.init_method = init_method
        self.allow_missing = allow_missing
        self.implementation = implementation

    def _check_hyper(self):
        super()._check_hyper()
        check_choice(self.covariance_type, "covariance_type", em.COVARIANCE_TYPES)

    def _n_features_known(self):
        means = getattr(self, "means_", None)
        return None if means is None else int(means.shape[1])

    @property
    def n_features(self):
        """D, from the fitted means (None before fit)."""
        return self._n_features_known()

    @property
    def full_covars_(self):
        """Covariances as (K, D, D) whatever the covariance_type."""
        self._is_fitted()
        return em.full_covariances(self.covars_, self.covariance_type, self.n_components,
                                   int(self.means_.shape[1]))

    def _covars_shape(self, D):
        K = self.n_components
        return {"spherical": (K,), "diag": (K, D), "full": (K, D, D), "tied": (D, D)}[
            self.covariance_type]

    def _check_emission(self, like):
        check_choice(self.covariance_type, "covariance_type", em.COVARIANCE_TYPES)
        means = self.means_
        D = int(means.shape[1]) if hasattr(means, "shape") else len(means[0])
        self.means_ = self._param("means_", means, like, (self.n_components, D))
        self.covars_ = self._param("covars_", self.covars_, like, self._covars_shape(D))
        xp = get_namespace(like)
        if self.covariance_type in ("spherical", "diag"):
            if bool(xp.any(self.covars_ <= 0)):
                raise ValueError("covars_ must be positive; got entries <= 0.")
        else:
            cov = self.covars_
            sym = xp.max(xp.abs(cov - xp.matrix_transpose(cov)))
            if float(sym) > 1e-8 * max(1.0, float(xp.max(xp.abs(cov)))) or \
                    float(xp.min(xp.linalg.eigvalsh(cov))) <= 0:
                raise ValueError(
                    "covars_ must be symmetric positive definite; got a matrix that is not. "
                    "Add a multiple of the identity or recompute it."
                )

    def _init_emission(self, name, data, rng):
        X_host = _init_sample(self._observed_host(data), rng)
        K = self.n_components
        D = X_host.shape[1]
        like = data["like"]
        if name == "means":
            if self.init_method == "kmeans++":
                means = _kmeans_pp(X_host, K, rng)
            else:
                means = X_host[rng.choice(X_host.shape[0], K, replace=X_host.shape[0] < K)]
            self.means_ = asarray(means, like=like)
        else:
            cv = np.cov(X_host.T).reshape(D, D) if X_host.shape[0] > 1 else np.eye(D)
            cv = cv + self.min_covar * np.eye(D)
            ctype = self.covariance_type
            if ctype == "spherical":
                cov = np.full(K, np.mean(np.diag(cv)))
            elif ctype == "diag":
                cov = np.tile(np.diag(cv), (K, 1))
            elif ctype == "full":
                cov = np.tile(cv, (K, 1, 1))
            else:
                cov = cv
            self.covars_ = asarray(cov, like=like)

    def _log_emission(self, data):
        mu_c = self.means_ - data["shift"][None, :]
        return em.gaussian_log_frameprob(data["X_c"], data["X_c2"], mu_c, self.covars_,
                                         self.covariance_type, Z=data["Z"], work=data.get("work"))

    def _emission_stats(self, data, post):
        return em.gaussian_stats(data["X_c"], data["X_c2"], post, self.covariance_type,
                                 Z=data["Z"])

    def _emission_m_step(self, stats, learn):
        learn_means = "means" in learn
        learn_covars = "covars" in learn
        if not (learn_means or learn_covars):
            return
        shift = self._shift
        mp = self.means_prior
        if hasattr(mp, "shape"):
            get_namespace(mp, self.means_)
        mu_c, covars = em.gaussian_m_step(
            stats, self.means_ - shift[None, :], self.covars_, self.covariance_type,
            means_prior_c=mp - shift[None, :], means_weight=self.means_weight,
            covars_prior=self.covars_prior, covars_weight=self.covars_weight,
            min_covar=self.min_covar, learn_means=learn_means, learn_covars=learn_covars)
        if learn_means:  # (no round trip through the shift for fixed means)
            self.means_ = mu_c + shift[None, :]
        self.covars_ = covars

    def _e_step(self, data, clamp=None):
        self._shift = data["shift"]
        return super()._e_step(data, clamp)

    def _n_emission_scalars(self):
        K = self.n_components
        D = int(self.means_.shape[1])
        return K * D + {"spherical": K, "diag": K * D, "full": K * D * (D + 1) // 2,
                        "tied": D * (D + 1) // 2}[self.covariance_type]

    def _sample_emission(self, states, rng):
        means = to_numpy(self.means_)
        cov = to_numpy(self.full_covars_)
        L = np.linalg.cholesky(cov)  # (K, D, D)
        eps = rng.standard_normal((len(states), means.shape[1]))
        return means[states] + np.einsum("tij,tj->ti", L[states], eps)


# ------------------------------------------------------------------------ GMM


class GMMHMM(_GaussianData, BaseHMM):
    """HMM whose emissions are Gaussian mixtures:
    p(x | z = k) = sum_m w_km N(x | mu_km, Sigma_km).

    Fitted ``weights_`` (K, M), ``means_`` (K, M, D), ``covars_`` compact per
    component: diag (K, M, D), full (K, M, D, D), spherical (K, M), tied
    (K, D, D) (shared by the components of a state), as in hmmlearn 0.3,
    whose priors and defaults (covars_prior/covars_weight None) are used.
    """

    _emission_names = ("weights", "means", "covars")

    def __init__(self, n_components=1, n_mix=1, covariance_type="diag", min_covar=1e-3,
                 startprob_prior=1.0, transmat_prior=1.0, weights_prior=1.0, means_prior=0.0,
                 means_weight=0.0, covars_prior=None, covars_weight=None, algorithm="viterbi",
                 random_state=None, n_iter=10, tol=1e-6, verbose=False,
                 learn=("startprob", "transmat", "weights", "means", "covars"), init="auto",
                 init_method="kmeans++", allow_missing=False, implementation="auto"):
        self.n_components = n_components
        self.n_mix = n_mix
        self.covariance_type = covariance_type
        self.min_covar = min_covar
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.weights_prior = weights_prior
        self.means_prior = means_prior
        self.means_weight = means_weight
        self.covars_prior = covars_prior
        self.covars_weight = covars_weight
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.learn = learn
        self.init = init
        self.init_method = init_method
        self.allow_missing = allow_missing
        self.implementation = implementation

    def _check_hyper(self):
        super()._check_hyper()
        check_positive_int(self.n_mix, "n_mix")
        check_choice(self.covariance_type, "covariance_type", em.COVARIANCE_TYPES)

    def _n_features_known(self):
        means = getattr(self, "means_", None)
        return None if means is None else int(means.shape[2])

    @property
    def n_features(self):
        """D, from the fitted means (None before fit)."""
        return self._n_features_known()

    def _covars_shape(self, D):
        K, M = self.n_components, self.n_mix
        return {"spherical": (K, M), "diag": (K, M, D), "full": (K, M, D, D),
                "tied": (K, D, D)}[self.covariance_type]

    def _check_emission(self, like):
        K, M = self.n_components, self.n_mix
        means = self.means_
        D = int(means.shape[2]) if hasattr(means, "shape") else len(means[0][0])
        self.weights_ = self._param("weights_", self.weights_, like, (K, M))
        self._check_stochastic("weights_", self.weights_)
        self.means_ = self._param("means_", means, like, (K, M, D))
        self.covars_ = self._param("covars_", self.covars_, like, self._covars_shape(D))
        xp = get_namespace(like)
        if self.covariance_type in ("spherical", "diag"):
            if bool(xp.any(self.covars_ <= 0)):
                raise ValueError("covars_ must be positive; got entries <= 0.")
        elif float(xp.min(xp.linalg.eigvalsh(self.covars_))) <= 0:
            raise ValueError("covars_ must be positive definite; got a matrix that is not.")

    def _priors(self, like):
        """Priors broadcast to hmmlearn 0.3's shapes (defaults when None)."""
        xp = get_namespace(like)
        K, M = self.n_components, self.n_mix
        D = int(self.means_.shape[2])
        cp_default, cw_default = em.gmm_default_covars_prior(self.covariance_type, M, D)
        cp = cp_default if self.covars_prior is None else self.covars_prior
        cw = cw_default if self.covars_weight is None else self.covars_weight

        def b(v, shape):
            v = v if hasattr(v, "shape") else asarray(np.asarray(v, dtype=np.float64), like=like)
            return xp.broadcast_to(xp.astype(v, xp.float64), shape)

        ctype = self.covariance_type
        cp_shape = {"full": (K, M, D, D), "tied": (K, D, D), "diag": (K, M, D),
                    "spherical": (K, M)}[ctype]
        cw_shape = {"full": (K, M), "tied": (K,), "diag": (K, M, D), "spherical": (K, M)}[ctype]
        return dict(weights_prior=b(self.weights_prior, (K, M)),
                    means_prior=b(self.means_prior, (K, M, D)),
                    means_weight=b(self.means_weight, (K, M)),
                    covars_prior=b(cp, cp_shape), covars_weight=b(cw, cw_shape))

    def _init_emission(self, name, data, rng):
        X_host = _init_sample(self._observed_host(data), rng)
        K, M = self.n_components, self.n_mix
        D = X_host.shape[1]
        like = data["like"]
        if name == "weights":
            self.weights_ = asarray(np.full((K, M), 1.0 / M), like=like)
        elif name == "means":
            if self.init_method == "kmeans++":
                centres = _kmeans_pp(X_host, K * M, rng)
            else:
                centres = X_host[rng.choice(X_host.shape[0], K * M, replace=X_host.shape[0] < K * M)]
            self.means_ = asarray(centres.reshape(K, M, D), like=like)
        else:
            cv = np.cov(X_host.T).reshape(D, D) if X_host.shape[0] > 1 else np.eye(D)
            cv = cv + self.min_covar * np.eye(D)
            ctype = self.covariance_type
            if ctype == "spherical":
                cov = np.full((K, M), np.mean(np.diag(cv)))
            elif ctype == "diag":
                cov = np.tile(np.diag(cv), (K, M, 1))
            elif ctype == "full":
                cov = np.tile(cv, (K, M, 1, 1))
            else:
                cov = np.tile(cv, (K, 1, 1))
            self.covars_ = asarray(cov, like=like)

    def _log_weighted(self, data):
        mu_c = self.means_ - data["shift"][None, None, :]
        return em.gmm_log_weighted_densities(data["X_c"], data["X_c2"], self.weights_, mu_c,
                                             self.covars_, self.covariance_type)

    def _log_emission(self, data):
        xp = data["xp"]
        lw = self._log_weighted(data)  # (T, K, M)
        data["_log_weighted"] = lw
        m = xp.max(lw, axis=2)
        m_safe = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
        return m_safe + xp.log(xp.sum(xp.exp(lw - m_safe[:, :, None]), axis=2))

    def _emission_stats(self, data, post):
        lw = data.pop("_log_weighted", None)
        if lw is None:
            lw = self._log_weighted(data)
        self._shift = data["shift"]
        mu_c = self.means_ - data["shift"][None, None, :]
        return em.gmm_stats(data["X_c"], data["X_c2"], post, lw, mu_c, self.covariance_type)

    def _emission_m_step(self, stats, learn):
        lw_ = "weights" in learn
        lm = "means" in learn
        lc = "covars" in learn
        if not (lw_ or lm or lc):
            return
        shift = self._shift
        pri = self._priors(self.means_)
        weights, mu_c, covars = em.gmm_m_step(
            stats, self.weights_, self.means_ - shift[None, None, :], self.covars_,
            self.covariance_type, weights_prior=pri["weights_prior"],
            means_prior_c=pri["means_prior"] - shift[None, None, :],
            means_weight=pri["means_weight"], covars_prior=pri["covars_prior"],
            covars_weight=pri["covars_weight"], min_covar=self.min_covar,
            learn_weights=lw_, learn_means=lm, learn_covars=lc)
        self.weights_ = weights
        if lm:  # (no round trip through the shift for fixed means)
            self.means_ = mu_c + shift[None, None, :]
        self.covars_ = covars

    def _n_emission_scalars(self):
        K, M = self.n_components, self.n_mix
        D = int(self.means_.shape[2])
        return K * M * D + {"spherical": K * M, "diag": K * M * D, "full": K * M * D * (D + 1) // 2,
                            "tied": K * D * (D + 1) // 2}[self.covariance_type] + (M - 1)

    def _sample_emission(self, states, rng):
        K, M = self.n_components, self.n_mix
        w = to_numpy(self.weights_)
        means = to_numpy(self.means_)
        D = means.shape[2]
        cov = to_numpy(self.covars_)
        ctype = self.covariance_type
        if ctype == "spherical":
            full = cov[:, :, None, None] * np.eye(D)
        elif ctype == "diag":
            full = cov[:, :, :, None] * np.eye(D)
        elif ctype == "tied":
            full = np.broadcast_to(cov[:, None], (K, M, D, D))
        else:
            full = cov
        cdf = np.cumsum(w, axis=1)[states]  # (T, M)
        u = rng.random(len(states))[:, None]
        mix = np.minimum((cdf <= u * cdf[:, -1:]).sum(axis=1), M - 1)
        L = np.linalg.cholesky(full)  # (K, M, D, D)
        eps = rng.standard_normal((len(states), D))
        return means[states, mix] + np.einsum("tij,tj->ti", L[states, mix], eps)


# --------------------------------------------------------------------- poisson


class PoissonHMM(BaseHMM):
    """HMM with independent Poisson emissions: p(x_t | z_t = k) =
    prod_d lambda_kd^x_td e^{-lambda_kd} / x_td!.

    X: (T, D) non-negative integer counts.  Fitted ``lambdas_`` (K, D).  Prior
    Gamma(lambdas_prior, lambdas_weight) as in hmmlearn 0.3.
    """

    _emission_names = ("lambdas",)

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0,
                 lambdas_prior=0.0, lambdas_weight=0.0, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-6, verbose=False, learn=("startprob", "transmat", "lambdas"),
                 init="auto", init_method="kmeans++", allow_missing=False,
                 implementation="auto"):
        self.n_components = n_components
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.lambdas_prior = lambdas_prior
        self.lambdas_weight = lambdas_weight
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.learn = learn
        self.init = init
        self.init_method = init_method
        self.allow_missing = allow_missing
        self.implementation = implementation

    @property
    def n_features(self):
        lam = getattr(self, "lambdas_", None)
        return None if lam is None else int(lam.shape[1])

    def _prepare(self, X, lengths, fit):
        X = self._as_2d_float(X)
        xp = get_namespace(X)
        missing = self._missing_rows(X)
        X0 = X if missing is None else xp.where(missing[:, None], xp.zeros_like(X), X)
        if bool(xp.any(xp.isinf(X0))):
            raise ValueError("X contains infinite values; pass finite counts.")
        if bool(xp.any(X0 < 0)):
            raise ValueError(
                f"X must hold non-negative counts for a PoissonHMM; got a minimum of "
                f"{float(xp.min(X0)):g}."
            )
        if bool(xp.any(X0 != xp.round(X0))):
            raise ValueError("X must hold integer counts for a PoissonHMM; got non-integer values.")
        D = self.n_features
        if D is not None and X.shape[1] != D:
            raise ValueError(
                f"X must have {D} features (columns) to match the model; got {_describe(X)}.")
        data = self._base_data(X0, lengths)
        data.update(X=X0, missing=missing, log_fact=em.log_factorial(X0))
        return data

    def _check_emission(self, like):
        lam = self.lambdas_
        D = int(lam.shape[1]) if hasattr(lam, "shape") else len(lam[0])
        self.lambdas_ = self._param("lambdas_", lam, like, (self.n_components, D))
        xp = get_namespace(like)
        if bool(xp.any(self.lambdas_ <= 0)):
            raise ValueError("lambdas_ must be positive; got entries <= 0.")

    def _init_emission(self, name, data, rng):
        X_host = to_numpy(data["X"])
        if data["missing"] is not None:
            X_host = X_host[~to_numpy(data["missing"])]
        X_host = _init_sample(X_host, rng)
        K = self.n_components
        if self.init_method == "kmeans++":
            lam = _kmeans_pp(X_host, K, rng)
        else:
            lam = X_host[rng.choice(X_host.shape[0], K, replace=X_host.shape[0] < K)]
        lam = 0.5 * lam + 0.5 * X_host.mean(axis=0) + 1e-3
        self.lambdas_ = asarray(lam, like=data["like"])

    def _log_emission(self, data):
        return em.poisson_log_frameprob(data["X"], data["log_fact"], self.lambdas_)

    def _emission_stats(self, data, post):
        return em.poisson_stats(data["X"], post)

    def _emission_m_step(self, stats, learn):
        if "lambdas" in learn:
            self.lambdas_ = em.poisson_m_step(stats, self.lambdas_, self.lambdas_prior,
                                              self.lambdas_weight)

    def _n_emission_scalars(self):
        return self.n_components * int(self.lambdas_.shape[1])

    def _sample_emission(self, states, rng):
        return rng.poisson(to_numpy(self.lambdas_)[states]).astype(np.int64)
