"""HMM with multinomial emissions: each step is a vector of counts of n trials.

References: Bishop, PRML, sec. 2.2 and 13.2; hmmlearn 0.3's MultinomialHMM,
whose semantics this follows (the same likelihood, statistics and M-step, so
the same fitted values from the same start).  The family's functions are in
:mod:`lvm_core.families.multinomial`.

    p(x_t | z_t = k) = n_t! / prod_f x_tf! prod_f B[k, f]^x_tf,   n_t = sum_f x_tf

Emission statistics counts[k, f] = sum_t gamma_t(k) x_tf (additive); M-step:
the Dirichlet(emissionprob_prior) MAP update of each row of B (prior 1: the
maximum-likelihood counts / sum, hmmlearn's update).  With n_t = 1 this is the
CategoricalHMM on one-hot symbols.
"""
from __future__ import annotations

import numpy as np

from ...backend import asarray, get_namespace
from ...families import categorical as cat
from ...families import multinomial as mult
from ...validation import check_positive_int
from .base import BaseHMM
from .categorical import MAX_EMISSION_ENTRIES

__all__ = ["MultinomialHMM"]


class MultinomialHMM(BaseHMM):
    """HMM with multinomial emissions (counts of n trials over F symbols).

    Parameters
    ----------
    n_components : int
        Number of hidden states K.
    n_trials : int, (T,) ints or None
        Trials per step n_t: every row of X must sum to it.  None: any row
        sums are accepted (each row is a multinomial of its own total), as
        hmmlearn does when n_trials is not given; ``sample`` then needs it.
    startprob_prior : float or (K,) array
        Dirichlet concentration of the start probabilities (1: no prior).
    transmat_prior : float or (K, K) array
        Dirichlet concentration of each transition row (1: no prior).
    emissionprob_prior : float or (K, F) array
        Dirichlet concentration of each emission row (1: no prior, hmmlearn's update).
    algorithm : {"viterbi", "map"}
        Decoder used by ``predict``.
    random_state : int, numpy Generator or None
        Seed of the initialisation and of ``sample``.
    n_iter : int
        Maximum number of EM iterations.
    tol : float
        Stop when log p(X) changes by at most ``tol * |log p(X)|``.
    verbose : bool
        Print the log-likelihood of every iteration.
    learn : tuple of str
        Parameters updated by the M-step ("startprob", "transmat", "emissionprob").
    init : "auto" or tuple of str
        Parameters drawn afresh by every ``fit`` ("auto": all but those set by
        hand; a tuple: those names, the others start as they are).
    init_method : {"random", "kmeans++"}
        Emission start (multinomial emissions always start at random rows).
    allow_missing : bool
        Marginalise rows of X that are entirely NaN.
    implementation : {"auto", "numba", "xp"}
        Forward-backward kernels: numba for NumPy, array-API otherwise.
    warm_start : bool
        After a first fit, start the next ``fit`` from the current parameters
        (drawing only the unset ones) instead of from the initialisation.

    X: (T, F) non-negative integer counts.  Fitted ``emissionprob_`` (K, F).
    """

    _emission_names = ("emissionprob",)

    def __init__(self, n_components=1, n_trials=None, startprob_prior=1.0, transmat_prior=1.0,
                 emissionprob_prior=1.0, algorithm="viterbi", random_state=None, n_iter=10,
                 tol=1e-6, verbose=False, learn=("startprob", "transmat", "emissionprob"),
                 init="auto", init_method="random", allow_missing=False, implementation="auto",
                 warm_start=False):
        self.n_components = n_components
        self.n_trials = n_trials
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
        self.warm_start = warm_start

    @property
    def n_features(self):
        """F, from the emission probabilities (None before fit)."""
        return self._n_features_known()

    def _n_features_known(self, fitting=False):
        B = self._current("emissionprob", fitting)
        if B is None:
            return None
        return int(B.shape[1]) if hasattr(B, "shape") else len(B[0])

    def _validate(self, X, fitted=False):
        X, missing = self._validate_counts(X, self._n_features_known(fitting=not fitted),
                                           "MultinomialHMM")
        K, F = int(self.n_components), int(X.shape[1])
        if K * F > MAX_EMISSION_ENTRIES:
            raise ValueError(
                f"X has {F} symbols (columns): emissionprob_ would have {K} x {F} entries, "
                f"more than the {MAX_EMISSION_ENTRIES} this model allows. Merge rare symbols.")
        if self.n_trials is not None:
            xp = get_namespace(X)
            n = xp.sum(X, axis=1)
            want = self._prior(self.n_trials, n)
            bad = n != want
            if missing is not None:
                bad = bad & ~missing
            if bool(xp.any(bad)):
                raise ValueError(
                    "Each row of X must sum to n_trials (the number of trials per step); got "
                    f"row sums from {float(xp.min(n)):g} to {float(xp.max(n)):g}. Pass "
                    "n_trials=None to accept any totals, or the right n_trials."
                )
        return X, missing

    def _check_hyper(self):
        super()._check_hyper()
        nt = self.n_trials
        if nt is not None and not hasattr(nt, "shape") and not isinstance(nt, (list, tuple)):
            check_positive_int(nt, "n_trials", minimum=0)

    def _summary(self, X, missing):
        return int(X.shape[1])

    def _reference(self, summaries):
        return {"n_features": summaries[0]}

    def _features(self, X, lengths, ref, missing=None):
        data = self._base_data(X, lengths)
        data.update(X=X, missing=missing, log_coef=mult.log_coefficient(X))
        return data

    def _check_emission(self, values, like):
        B = values["emissionprob"]
        F = int(B.shape[1]) if hasattr(B, "shape") else len(B[0])
        B = self._param("emissionprob_", B, like, (self.n_components, F))
        self._check_stochastic("emissionprob_", B)
        return {"emissionprob": B}

    def _init_emission(self, name, init, rng):
        return {"emissionprob": asarray(
            cat.init_random(self.n_components, init["ref"]["n_features"], rng), like=init["like"])}

    def _emission_log_prob(self, data, params):
        return mult.log_prob(data["X"], data["log_coef"], params["emissionprob"]), None

    def _emission_stats(self, data, post, params, aux):
        return mult.statistics(data["X"], post)

    def _emission_m_step(self, stats, params, learn, ref):
        if "emissionprob" not in learn:
            return {}
        return {"emissionprob": cat.map_m_step(
            stats["counts"], self._prior(self.emissionprob_prior, stats["counts"]),
            params["emissionprob"])}

    def _n_emission_scalars(self):
        return self.n_components * (self.n_features - 1)

    def _sample_emission(self, params, states, rng):
        nt = self.n_trials
        values = np.unique(np.asarray(nt)) if nt is not None else np.array([])
        if values.size != 1:
            raise ValueError(
                "sample needs a single number of trials: set n_trials to an int (got "
                f"{nt!r})."
            )
        return mult.sample(rng, params["emissionprob"], states, int(values[0]))
