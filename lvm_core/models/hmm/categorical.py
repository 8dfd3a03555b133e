"""HMM with categorical emissions B[k, f] = p(x_t = f | z_t = k).

References: L. R. Rabiner, "A tutorial on hidden Markov models ...", Proc.
IEEE 77(2), 1989, eq. 40c; the family's functions are in
:mod:`lvm_core.families.categorical`.

Emission statistics: counts[k, f] = sum_{t: x_t = f} gamma_t(k) (additive);
M-step: the Dirichlet(emissionprob_prior) MAP update of each row of B.
"""
from __future__ import annotations

import numpy as np

from ...backend import asarray, get_namespace, is_numpy_namespace
from ...families import categorical as cat
from ...families._common import safe_log
from ...validation import check_array, check_positive_int
from ._checks import describe
from .base import BaseHMM

__all__ = ["CategoricalHMM", "MAX_EMISSION_ENTRIES"]

MAX_EMISSION_ENTRIES = 2 ** 26  # K x F emission probabilities (512 MiB in float64)


class CategoricalHMM(BaseHMM):
    """HMM with categorical emissions B[k, f] = p(x_t = f | z_t = k).

    Parameters
    ----------
    n_components : int
        Number of hidden states K.
    n_features : int, optional
        Number of symbols F (default: the largest symbol in the data + 1).
    startprob_prior : float or (K,) array
        Dirichlet concentration a of the start probabilities (1: no prior).
    transmat_prior : float or (K, K) array
        Dirichlet concentration b of each transition row (1: no prior).
    emissionprob_prior : float or (K, F) array
        Dirichlet concentration of each emission row (1: no prior).
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
        Emission start (categorical emissions always start at random rows).
    allow_missing : bool
        Accept NaN symbols (a float X) as missing observations.
    implementation : {"auto", "numba", "xp"}
        Forward-backward kernels: numba for NumPy, array-API otherwise.
    warm_start : bool
        After a first fit, start the next ``fit`` from the current parameters
        (drawing only the unset ones) instead of from the initialisation.

    X: (T, 1) or (T,) integer symbols in 0..F-1.  Fitted: ``startprob_`` (K,),
    ``transmat_`` (K, K), ``emissionprob_`` (K, F).
    """

    _emission_names = ("emissionprob",)

    def __init__(self, n_components=1, n_features=None, startprob_prior=1.0, transmat_prior=1.0,
                 emissionprob_prior=1.0, algorithm="viterbi", random_state=None, n_iter=10,
                 tol=1e-6, verbose=False, learn=("startprob", "transmat", "emissionprob"),
                 init="auto", init_method="random", allow_missing=False, implementation="auto",
                 warm_start=False):
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
        self.warm_start = warm_start

    def _check_hyper(self):
        super()._check_hyper()
        if self.n_features is not None:
            check_positive_int(self.n_features, "n_features")
            self._check_alphabet(int(self.n_features), "n_features asks for ")

    def _n_symbols(self, fitting=False):
        em_p = self._current("emissionprob", fitting)
        if em_p is not None:
            return int(em_p.shape[1]) if hasattr(em_p, "shape") else len(em_p[0])
        if self.n_features is not None:
            return int(self.n_features)
        return None

    def _validate(self, X, fitted=False):
        X = check_array(X, "X", ndim=(1, 2), allow_nan=True, allow_inf=True)
        xp = get_namespace(X)
        if X.ndim == 2 and X.shape[1] == 1:
            X = xp.reshape(X, (X.shape[0],))
        elif X.ndim != 1:
            raise ValueError(
                f"X must hold one integer symbol per row, shape (T, 1) or (T,); got {describe(X)}."
            )
        if X.shape[0] == 0:
            raise ValueError("X is empty (0 rows); pass at least one observation.")
        missing = None
        if xp.isdtype(X.dtype, "real floating"):
            if not self.allow_missing:
                raise ValueError(
                    f"X must hold integer symbols; got {describe(X)}. Convert with "
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
            raise ValueError(f"X must hold integer symbols; got {describe(X)}.")
        if bool(xp.any(X < 0)):
            raise ValueError(f"X must hold non-negative symbols; got a minimum of {int(xp.min(X))}.")
        largest = int(xp.max(X))
        n_sym = self._n_symbols(fitting=not fitted)
        self._check_largest(largest, n_sym)
        if n_sym is None:
            self._check_alphabet(largest + 1, "X holds the symbol "
                                 f"{largest}, so the model would need ")
        return X, missing

    def _check_alphabet(self, F, what):
        """ValueError when K x F emission probabilities exceed MAX_EMISSION_ENTRIES."""
        K = int(self.n_components)
        if K * F > MAX_EMISSION_ENTRIES:
            raise ValueError(
                f"{what}{F} symbols: emissionprob_ would have {K} x {F} entries "
                f"({K * F * 8 / 2 ** 30:.1f} GiB), more than the {MAX_EMISSION_ENTRIES} "
                "this model allows. Encode the symbols as 0..F-1 with F the number of "
                "distinct symbols, e.g. codes = np.unique(X, return_inverse=True)[1]."
            )

    @staticmethod
    def _check_largest(largest, n_sym):
        if n_sym is not None and largest > n_sym - 1:
            raise ValueError(
                f"Largest symbol is {largest} but the model only emits symbols up to "
                f"{n_sym - 1}. Set n_features to at least {largest + 1} (or re-encode X)."
            )

    def _summary(self, X, missing):
        return int(get_namespace(X).max(X))

    def _reference(self, summaries):
        return {"largest": max(summaries)}

    def _features(self, X, lengths, ref, missing=None):
        xp = get_namespace(X)
        data = self._base_data(X, lengths)
        data.update(like=xp.astype(X, xp.float64), symbols=X, missing=missing,
                    largest=int(xp.max(X)))
        return data

    def _check_emission(self, values, like):
        B = values["emissionprob"]
        n_sym = int(B.shape[1]) if hasattr(B, "shape") else len(B[0])
        B = self._param("emissionprob_", B, like, (self.n_components, n_sym))
        self._check_stochastic("emissionprob_", B)
        return {"emissionprob": B}

    def _init_emission(self, name, init, rng):
        F = self.n_features if self.n_features is not None else init["ref"]["largest"] + 1
        return {"emissionprob": asarray(cat.init_random(self.n_components, F, rng),
                                        like=init["like"])}

    def _emission_log_prob(self, data, params):
        B = params["emissionprob"]
        self._check_largest(data["largest"], int(B.shape[1]))
        return cat.log_prob(data["symbols"], B), None

    def _emission_table(self, data, params):
        if not is_numpy_namespace(data["xp"]):
            return None
        return safe_log(params["emissionprob"]).T, data["symbols"]  # (F, K), (T,)

    def _emission_stats(self, data, post, params, aux):
        F = int(params["emissionprob"].shape[1])
        if is_numpy_namespace(data["xp"]):
            from ...kernels.hmm_numba import symbol_counts

            return {"counts": symbol_counts(np.asarray(data["symbols"]), np.asarray(post), F)}
        return cat.statistics(data["symbols"], post, F)

    def _emission_m_step(self, stats, params, learn, ref):
        if "emissionprob" not in learn:
            return {}
        return {"emissionprob": cat.map_m_step(stats["counts"],
                                               self._prior(self.emissionprob_prior, stats["counts"]),
                                               params["emissionprob"])}

    def _n_emission_scalars(self):
        return self.n_components * (self._n_symbols() - 1)

    def _sample_emission(self, params, states, rng):
        return cat.sample(rng, params["emissionprob"], states)[:, None]
