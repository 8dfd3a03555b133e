"""Hidden Markov models trained by EM (Baum-Welch), with MAP priors: the
inference base shared by every emission family.

References: L. R. Rabiner, "A tutorial on hidden Markov models and selected
applications in speech recognition", Proc. IEEE 77(2), 1989; C. M. Bishop,
Pattern Recognition and Machine Learning, 2006, ch. 13.2; O. Cappe and
E. Moulines, "On-line expectation-maximization algorithm for latent data
models", JRSS B 71(3), 2009 (``partial_fit``).  The API and the prior
conventions follow hmmlearn 0.3 (same fitted values for the same priors and
starting parameters).

Model (K states, sequences concatenated with ``lengths``):

    p(X, Z) = pi_{z_1} prod_{t>1} A_{z_{t-1} z_t} prod_t p(x_t | z_t)

E-step (a pure function of the data and the parameters): forward-backward
(kernels in :mod:`lvm_core.kernels`) gives gamma_t(k) = p(z_t = k | X), the
expected transition counts xi_sum_ij = sum_t p(z_t = i, z_{t+1} = j | X)
and log p(X); it returns these as additive ``SufficientStatistics`` (plus the
emission family's statistics) and log p(X).  M-step (a pure function of the
statistics, the previous parameters and the priors; Rabiner eqs. 40a-b):

    pi_k  = max(start_k + a_k - 1, 0) / sum_j max(start_j + a_j - 1, 0)
    A_ij  = max(xi_sum_ij + b_ij - 1, 0) / sum_j' max(xi_sum_ij' + b_ij' - 1, 0)

and the emission family's M-step.  ``fit`` runs them with
:func:`lvm_core.em.run_em`; the E-step can run in memory, over blocks of
whole sequences streamed from an ``h5py.Dataset`` (``chunk_size``), or on a
dask cluster (``client``), with the same result up to round-off.

Conventions:

* entries of ``startprob_`` / ``transmat_`` that are exactly 0 stay 0
  (structural zeros, e.g. left-right models);
* a state (or a row of the transition matrix) with no posterior mass keeps
  its previous parameters instead of becoming NaN;
* partially labelled training: ``fit(X, states=s)`` with s_t in 0..K-1 for
  known states and -1 for unknown ones clamps the E-step
  (log p(x_t | z_t = k) = -inf for k != s_t);
* missing observations (``allow_missing=True``): rows of X that are all NaN
  have log p(x_t | z_t = k) = 0 and add nothing to the emission statistics.

Starting point: every ``fit`` starts from the initialisation (parameters in
``init`` drawn afresh, the others as they are; ``init="auto"`` draws all but
the parameters set by hand), so refitting, also on data of another width,
never depends on an earlier fit; ``warm_start=True`` continues from the
previous fit instead.  Inference (score, predict, decode, sample, ...) never
changes the estimator.

Convergence: EM stops after ``n_iter`` iterations or once an iteration
changes log p(X) by at most ``tol * |log p(X)|`` (relative).
"""
from __future__ import annotations

import math

import numpy as np

from ...backend import asarray, get_namespace, is_numpy_namespace, namespace_name, to_numpy
from ...em import (ConvergenceMonitor, check_chunk_size, default_client,
                   is_dask_bag, is_in_memory_array, make_source, run_em, sequence_bounds,
                   sequences_from_bag, step_size_schedule, stepwise_update, take_rows)
from ...families._common import init_rows, safe_log
from ...random import as_generator
from ...validation import check_choice, check_lengths, check_not_sparse, check_positive_int
from ..base import ParamsMixin
from ._estep import EStep
from ._checks import HMMChecks
from ._workers import _chunk_e_step, _chunk_summary

__all__ = ["BaseHMM"]

INIT_MAX_ROWS = 20000  # k-means and covariance starts use at most this many random rows


class BaseHMM(EStep, HMMChecks, ParamsMixin):
    """Shared EM loop, inference and sampling; subclasses define the emissions.

    Subclasses implement ``_emission_names``, ``_validate(X, fitted)`` (checked
    data array and missing-row mask), ``_features(X, lengths, ref, missing)``
    (the data dict of one block), ``_summary(X, missing)`` / ``_reference(summaries)`` (what EM needs
    from all data before it starts, e.g. the reference point of Gaussian
    statistics), ``_emission_log_prob(data, params)`` -> ((T, K), aux),
    ``_emission_stats(data, post, params, aux)``,
    ``_emission_m_step(stats, params, learn, ref)``,
    ``_init_emission(name, init, rng)``, ``_check_emission(values, like)``,
    ``_n_emission_scalars(params)`` and ``_sample_emission(params, states, rng)``;
    optionally ``_emission_affine`` / ``_affine_stats`` (E-step: :class:`EStep`).
    """

    _emission_names = ()

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
            from ...kernels import hmm_numba as kernels
        else:
            from ...kernels import hmm_xp as kernels
        return kernels

    # ------------------------------------------------------------- inference

    def _log_frameprob(self, data, params, clamp=None):
        """log p(x_t | z_t = k) (T, K) with missing rows 0 and clamped states -inf, and
        the family's auxiliary values for its statistics."""
        xp = data["xp"]
        lfp, aux = self._emission_log_prob(data, params)
        missing = data.get("missing")
        if missing is not None:
            lfp = xp.where(missing[:, None], xp.zeros_like(lfp), lfp)
        if clamp is not None:
            lfp = xp.where(clamp, lfp, xp.full_like(lfp, -math.inf))
        return lfp, aux

    def _emission_table(self, data, params):
        """(log_table (F, K), symbols (T,)) if log p(x_t | z_t=k) = log_table[x_t, k]."""
        return None

    def _raise_impossible(self, log_prob, lfp, lengths, params, clamp):
        """ValueError naming the first impossible sequence and its time index."""
        lp = to_numpy(log_prob)
        bad = int(np.flatnonzero(~np.isfinite(lp))[0])
        starts = np.cumsum(lengths) - lengths
        lo, hi = int(starts[bad]), int(starts[bad] + lengths[bad])
        from ...kernels.hmm_numba import forward_log_scaling

        seq_lfp = to_numpy(lfp[lo:hi, ...])
        steps = forward_log_scaling(to_numpy(safe_log(params["startprob"])),
                                    to_numpy(safe_log(params["transmat"])), seq_lfp)
        t = int(np.flatnonzero(~np.isfinite(steps))[0])
        every = not np.any(np.isfinite(seq_lfp[t]))
        labels = clamp is not None
        why = ("the observation has zero probability under every state"
               + (" allowed by `states`" if labels else "")) if every else \
            ("no state that can emit it is reachable from the previous step (structural "
             "zeros in startprob_/transmat_" + (" or the labels in `states`" if labels else "")
             + ")")
        raise ValueError(
            f"X is impossible under the model: sequence {bad} (rows {lo}..{hi - 1} of X) has "
            f"zero probability at time index {t} (row {lo + t} of X): {why}. Check the data "
            "or the parameters (e.g. emissionprob_ rows with zeros, or a prior that allows "
            "every symbol)."
        )

    def _forward_backward(self, data, params, clamp=None):
        xp = data["xp"]
        kernels = self._kernels(xp)
        lfp, aux = self._log_frameprob(data, params, clamp)
        extra = {} if data.get("work") is None or kernels.__name__.endswith("hmm_xp") else \
            {"work": data["work"]}  # fit reuses the numba work arrays between iterations
        table = self._emission_table(data, params)
        if table is not None and clamp is None and data.get("missing") is None \
                and kernels.__name__.endswith("hmm_numba"):  # shift/exp F rows, then gather
            extra["frame_shift"] = kernels.scaled_frame_table(*table, work=extra.get("work"))
        log_prob, post, start_sum, xi_sum = kernels.forward_backward(
            safe_log(params["startprob"]), safe_log(params["transmat"]), lfp, data["lengths"],
            **extra)
        if not bool(xp.all(xp.isfinite(log_prob))):
            self._raise_impossible(log_prob, lfp, data["lengths"], params, clamp)
        return log_prob, post, start_sum, xi_sum, aux

    def _m_step(self, stats, params, learn, ref):
        """New parameters from the statistics, the previous parameters and the priors."""
        xp = get_namespace(params["startprob"])
        new = dict(params)
        if "startprob" in learn:
            pi = params["startprob"]
            counts = xp.maximum(stats["start"] + (self._prior(self.startprob_prior, pi) - 1.0), xp.zeros_like(pi))
            counts = xp.where(pi == 0, xp.zeros_like(counts), counts)
            total = xp.sum(counts)
            if float(total) > 0:
                new["startprob"] = counts / total
        if "transmat" in learn:
            A = params["transmat"]
            counts = xp.maximum(stats["trans"] + (self._prior(self.transmat_prior, A) - 1.0), xp.zeros_like(A))
            counts = xp.where(A == 0, xp.zeros_like(counts), counts)
            total = xp.sum(counts, axis=1, keepdims=True)
            ok = total > 0
            new["transmat"] = xp.where(ok, counts / xp.where(ok, total, xp.ones_like(total)), A)
        new.update(self._emission_m_step(stats, params, learn, ref))
        return new

    # ------------------------------------------------------------------ init

    def _initial_params(self, init, rng, warm=None):
        """Starting parameters: the names in ``init`` drawn afresh, the others as set.

        ``init`` holds ``like`` (an array of the data's namespace), ``summary``
        (:meth:`_reference` of all data) and ``rows(rng)`` (a random subset of
        at most INIT_MAX_ROWS observed rows, host NumPy).
        """
        names = self._init_names(warm)
        K = self.n_components
        like = init["like"]
        values = {n: getattr(self, n + "_", None) for n in self._param_names_all}
        if "startprob" in names:
            values["startprob"] = asarray(np.full(K, 1.0 / K), like=like)
        if "transmat" in names:
            values["transmat"] = asarray(rng.dirichlet(np.ones(K), size=K), like=like)
        for name in self._emission_names:
            if name in names:
                values.update(self._init_emission(name, init, rng))
        return self._checked_params(values, like)

    def _set_params(self, params):
        """Store fitted parameters and remember them as the fit's (not set by hand)."""
        for name, value in params.items():
            setattr(self, name + "_", value)
        self._fit_objects = dict(params)

    # ------------------------------------------------------------------- fit

    def fit(self, X, lengths=None, states=None, chunk_size=None, client=None):
        """Estimate the parameters by EM (MAP with the priors).

        Parameters
        ----------
        X : array (T, ...), array-like with ``shape`` and row slicing, dask array,
            or dask Bag of sequences
            Observations of all sequences concatenated.  An ``h5py.Dataset``
            (or any such array-like) is streamed in blocks of whole sequences; a
            Bag of sequences ((T_i, ...) arrays) runs on its cluster, lengths
            taken from the Bag.
        lengths : (S,) ints, optional
            Sequence lengths (None: one sequence).
        states : (T,) ints, optional
            The known state at each step, -1 where unknown (partial labels).
        chunk_size : int, optional
            Rows per block: consecutive whole sequences are grouped until a
            block holds at least this many rows (out-of-core, or per dask task).
        client : dask.distributed.Client, optional
            Run the E-steps on this cluster's workers (the default client for
            a dask array).  Same result as in process up to round-off.

        Starts from the initialisation every time (see the module docstring;
        ``warm_start=True``: from the previous fit).  Returns self.
        """
        self._check_hyper()
        check_not_sparse(X, "X")
        if is_dask_bag(X):  # a dask collection of sequences
            if lengths is not None:
                raise ValueError("lengths must be None when X is a dask Bag of sequences (the "
                                 "lengths are those of its elements); got lengths as well.")
            X, lengths = sequences_from_bag(X)
        learn = self._check_names(self.learn, "learn")
        chunk_size = check_chunk_size(chunk_size)
        client = default_client(client, X)
        rng = as_generator(self.random_state)
        if client is None and chunk_size is None and is_in_memory_array(X):
            X_valid, missing = self._validate(X)
            T = X_valid.shape[0]
            lengths = check_lengths(lengths, T)
            ref = self._reference([self._summary(X_valid, missing)])
            data = self._features(X_valid, lengths, ref, missing=missing)
            data["work"] = {}  # numba work arrays, reused by every E-step of this fit
            clamp = self._check_states(states, T, data["like"])
            init = dict(like=data["like"], ref=ref,
                        rows=lambda r: self._init_sample(self._observed_host(data), r))
            params = self._initial_params(init, rng)
            source = None

            def e_step_fn(params):
                return self._e_step(data, params, clamp)
        else:
            source, T, init, ref = self._streamed(X, lengths, states, chunk_size, client)
            params = self._initial_params(init, rng)
            model = type(self)(**self.get_params())  # hyper-parameters only, sent to workers

            def e_step_fn(params):
                host = {k: to_numpy(v) for k, v in params.items()}
                return source.map_reduce(_chunk_e_step, host, model=model, ref=ref)

        def m_step_fn(stats, params):
            return self._m_step(stats, params, learn, ref)

        monitor = ConvergenceMonitor(tol=self.tol, n_iter=self.n_iter, verbose=self.verbose)
        try:
            params, monitor = run_em(e_step_fn, m_step_fn, params, monitor)
        finally:
            if source is not None:
                source.close()
        self._set_params(params)
        self.monitor_ = monitor
        self.n_iter_ = monitor.iter
        self.converged_ = monitor.converged
        return self

    def _streamed(self, X, lengths, states, chunk_size, client):
        """(source of blocks of whole sequences, T, init dict, reference point)."""
        if is_in_memory_array(X):
            X, _ = self._validate(X)
        shape = getattr(X, "shape", None)
        if shape is None or not hasattr(X, "__getitem__") or len(shape) not in (1, 2):
            raise TypeError(
                "X must be an array or an array-like with `shape` (T, D) and row slicing "
                f"(e.g. an h5py.Dataset); got {type(X).__name__}.")
        if self.allow_missing:
            raise ValueError("allow_missing=True needs X in memory (the missing rows change "
                             "which rows initialise the model); pass X as an array.")
        T = int(shape[0])
        lengths = check_lengths(lengths, T)
        if chunk_size is None:  # dask without a block size: about 4 blocks
            chunk_size = -(-T // 4)
        bounds, groups = sequence_bounds(lengths, chunk_size)
        if states is not None:
            states = to_numpy(states) if hasattr(states, "shape") else np.asarray(states)
            self._check_states(states, T, np.zeros(1))
        extras = [(g, None if states is None else states[a:b]) for (a, b), g in zip(bounds, groups)]
        source = make_source(X, bounds, extras, client=client)
        summaries = source.map_gather(_chunk_summary, None, model=type(self)(**self.get_params()))
        ref = self._reference(summaries)
        like = np.zeros(1)

        def rows(r):
            picked = init_rows(T, INIT_MAX_ROWS, r)
            return self._sorted_rows(to_numpy(self._validate(take_rows(X, picked, bounds))[0]))

        return source, T, dict(like=like, ref=ref, rows=rows), ref

    @staticmethod
    def _init_sample(X_host, rng, max_rows=INIT_MAX_ROWS):
        """The rows an initialisation sees: all rows in lexicographic order, or
        ``max_rows`` of them drawn at random from that order (keeping k-means++
        cheap), so that the start (and hence the fit, up to round-off) does not
        depend on the order of the sequences."""
        rows = BaseHMM._sorted_rows(X_host)
        picked = init_rows(rows.shape[0], max_rows, rng)
        return rows if picked is None else rows[np.sort(picked)]

    @staticmethod
    def _sorted_rows(rows):
        """Rows in lexicographic order (2-D host arrays; others unchanged)."""
        rows = np.asarray(rows)
        if rows.ndim == 2 and rows.shape[0] > 1:
            rows = rows[np.lexsort(rows.T[::-1])]
        return rows

    def _observed_host(self, data):
        X = to_numpy(data["X"])
        if data.get("missing") is not None:
            X = X[~to_numpy(data["missing"])]
        return X

    def partial_fit(self, X, lengths=None, states=None, step_size=None, decay=0.6):
        """One step of online EM on a chunk of whole sequences (Cappe & Moulines 2009).

        s_t = (1 - rho_t) s_{t-1} + rho_t S(X_t), then the M-step from s_t, with
        rho_t = ``step_size`` or (t + 1)^(-decay) (t counts the calls; the first
        uses rho = 1).  With ``step_size=1`` one call is exactly one EM
        iteration from the current parameters.  The first call initialises the
        parameters not yet set (as ``fit`` does) and fixes the statistics'
        reference point from its chunk.  Returns self.
        """
        self._check_hyper()
        learn = self._check_names(self.learn, "learn")
        first = getattr(self, "online_steps_", None) is None
        X_valid, missing = self._validate(X, fitted=True)
        T = X_valid.shape[0]
        lengths = check_lengths(lengths, T)
        ref = self._reference([self._summary(X_valid, missing)]) if first else self.online_ref_
        data = self._features(X_valid, lengths, ref, missing=missing)
        clamp = self._check_states(states, T, data["like"])
        if first:
            init = dict(like=data["like"], ref=ref,
                        rows=lambda r: self._init_sample(self._observed_host(data), r))
            params = self._initial_params(init, as_generator(self.random_state), warm=True)
            self.online_ref_, self.online_stats_, self.online_steps_ = ref, None, 0
        else:
            params = self._fitted_params(data["like"])
        stats, log_prob = self._e_step(data, params, clamp)
        rho = step_size_schedule(self.online_steps_, decay) if step_size is None else float(step_size)
        if not 0.0 < rho <= 1.0:
            raise ValueError(f"step_size must be in (0, 1]; got {step_size}.")
        self.online_stats_ = stepwise_update(self.online_stats_, stats, rho)
        self._set_params(self._m_step(self.online_stats_, params, learn, ref))
        self.online_steps_ += 1
        self.last_log_prob_ = log_prob
        return self

    # ------------------------------------------------------------------- API

    def _prepare_fitted(self, X, lengths):
        X_valid, missing = self._validate(X, fitted=True)
        lengths = check_lengths(lengths, X_valid.shape[0])
        data = self._features(X_valid, lengths, None, missing=missing)
        return data, self._fitted_params(data["like"])

    def score_samples(self, X, lengths=None):
        """(log p(X) summed over sequences, posteriors gamma (T, K))."""
        data, params = self._prepare_fitted(X, lengths)
        log_prob, post, _, _, _ = self._forward_backward(data, params)
        return float(data["xp"].sum(log_prob)), post

    def score(self, X, lengths=None):
        """log p(X) = sum over sequences of log p(x^(s)) (forward pass only)."""
        data, params = self._prepare_fitted(X, lengths)
        xp = data["xp"]
        lfp, _ = self._log_frameprob(data, params)
        log_prob = self._kernels(xp).forward_log_prob(
            safe_log(params["startprob"]), safe_log(params["transmat"]), lfp, data["lengths"])
        if not bool(xp.all(xp.isfinite(log_prob))):
            self._raise_impossible(log_prob, lfp, data["lengths"], params, None)
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
        data, params = self._prepare_fitted(X, lengths)
        xp = data["xp"]
        if algorithm == "map":
            _, post = self.score_samples(X, lengths)
            return float(xp.sum(xp.max(post, axis=1))), xp.astype(xp.argmax(post, axis=1), xp.int64)
        lfp, _ = self._log_frameprob(data, params)
        log_prob, path = self._kernels(xp).viterbi(
            safe_log(params["startprob"]), safe_log(params["transmat"]), lfp, data["lengths"])
        if not bool(xp.all(xp.isfinite(log_prob))):
            self._raise_impossible(log_prob, lfp, data["lengths"], params, None)
        return float(xp.sum(log_prob)), path

    def predict(self, X, lengths=None):
        """Most likely state at each step (T,) with ``self.algorithm``."""
        return self.decode(X, lengths)[1]

    def sample(self, n_samples=1, random_state=None, currstate=None):
        """Draw ``(X, states)``: z_1 ~ pi (or ``currstate``), z_t ~ A[z_{t-1}],
        x_t ~ p(x | z_t).  ``random_state=None`` uses the model's ``random_state``.
        The chain is drawn on the host and placed on the parameters' device."""
        self._is_fitted()
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = as_generator(self.random_state if random_state is None else random_state)
        like = self.startprob_ if hasattr(self.startprob_, "shape") else np.zeros(1)
        host = {n: to_numpy(v) if hasattr(v, "shape") else np.asarray(v, dtype=np.float64)
                for n, v in self._fitted_params(like).items()}
        pi, A = host["startprob"], host["transmat"]
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
        X = self._sample_emission(host, states, rng)
        return asarray(X, like=like), asarray(states, like=like, dtype="int64")

    def get_stationary_distribution(self):
        """The stationary distribution pi_inf of the chain: pi_inf A = pi_inf,
        sum_k pi_inf_k = 1 (the left eigenvector of A for eigenvalue 1).

        Solved as the least-squares system [A^T - I; 1^T] pi = [0; 1] on the
        host (for a reducible chain, whose stationary distributions form a
        set, this is the one of least norm); returned as (K,) float64 in the
        namespace of ``transmat_`` (NumPy when it was set as a list).
        """
        self._is_fitted()
        A_set = self.transmat_
        like = A_set if hasattr(A_set, "shape") and hasattr(A_set, "dtype") else np.zeros(1)
        A = to_numpy(self._checked_transmat(like))
        K = A.shape[0]
        system = np.vstack([A.T - np.eye(K), np.ones((1, K))])
        rhs = np.zeros(K + 1)
        rhs[-1] = 1.0
        pi = np.linalg.lstsq(system, rhs, rcond=None)[0]
        pi = np.maximum(pi, 0.0)
        return asarray(pi / pi.sum(), like=like)

    def _n_fit_scalars(self):
        K = self.n_components
        return K - 1 + K * (K - 1) + self._n_emission_scalars()

    def aic(self, X, lengths=None):
        """AIC = -2 log p(X) + 2 n_params (hmmlearn's parameter count)."""
        return -2.0 * self.score(X, lengths) + 2.0 * self._n_fit_scalars()

    def bic(self, X, lengths=None):
        """BIC = -2 log p(X) + n_params log T (hmmlearn's parameter count)."""
        log_p = self.score(X, lengths)  # validates X first
        T = X.shape[0] if hasattr(X, "shape") else len(X)
        return -2.0 * log_p + self._n_fit_scalars() * math.log(T)

    def _base_data(self, X, lengths):
        return {"xp": get_namespace(X), "T": X.shape[0], "like": X, "lengths": lengths}
