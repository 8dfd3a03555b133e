"""HMM with independent Poisson emissions (the family of :mod:`lvm_core.families.poisson`).

References: hmmlearn 0.3's PoissonHMM (Gamma prior convention); Bishop, PRML,
sec. 13.2 (HMM EM).  Emission statistics resp_sum_k = sum_t gamma_t(k) and
x_sum_k = sum_t gamma_t(k) x_t (additive); the M-step is the Gamma MAP update.
"""
from __future__ import annotations


from ...backend import asarray, get_namespace
from ...families import poisson as pois
from .base import BaseHMM

__all__ = ["PoissonHMM"]


class PoissonHMM(BaseHMM):
    """HMM with independent Poisson emissions,
    p(x_t | z_t = k) = prod_d lambda_kd^x_td e^{-lambda_kd} / x_td!.

    Parameters
    ----------
    n_components : int
        Number of hidden states K.
    startprob_prior : float or (K,) array
        Dirichlet concentration of the start probabilities (1: no prior).
    transmat_prior : float or (K, K) array
        Dirichlet concentration of each transition row (1: no prior).
    lambdas_prior, lambdas_weight : float or array
        Gamma(alpha, beta) prior of the rates (hmmlearn 0.3; 0, 0: no prior).
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
        Parameters updated by the M-step ("startprob", "transmat", "lambdas").
    init : "auto" or tuple of str
        Parameters drawn afresh by every ``fit`` ("auto": all but those set by
        hand; a tuple: those names, the others start as they are).
    init_method : {"kmeans++", "random"}
        Rates start from k-means centres or random rows (mixed with the data mean).
    allow_missing : bool
        Marginalise rows of X that are entirely NaN.
    implementation : {"auto", "numba", "xp"}
        Forward-backward kernels: numba for NumPy, array-API otherwise.
    warm_start : bool
        After a first fit, start the next ``fit`` from the current parameters
        (drawing only the unset ones) instead of from the initialisation.

    X: (T, D) non-negative integer counts.  Fitted ``lambdas_`` (K, D).
    """

    _emission_names = ("lambdas",)

    def __init__(self, n_components=1, startprob_prior=1.0, transmat_prior=1.0,
                 lambdas_prior=0.0, lambdas_weight=0.0, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-6, verbose=False, learn=("startprob", "transmat", "lambdas"),
                 init="auto", init_method="kmeans++", allow_missing=False,
                 implementation="auto", warm_start=False):
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
        self.warm_start = warm_start

    @property
    def n_features(self):
        """D, from the rates (None before fit)."""
        return self._n_features_known()

    def _n_features_known(self, fitting=False):
        lam = self._current("lambdas", fitting)
        if lam is None:
            return None
        return int(lam.shape[1]) if hasattr(lam, "shape") else len(lam[0])

    def _validate(self, X, fitted=False):
        return self._validate_counts(X, self._n_features_known(fitting=not fitted), "PoissonHMM")

    def _summary(self, X, missing):
        return None

    def _reference(self, summaries):
        return None

    def _features(self, X, lengths, ref, missing=None):
        data = self._base_data(X, lengths)
        data.update(X=X, missing=missing, log_fact=pois.log_factorial(X))
        return data

    def _check_emission(self, values, like):
        lam = values["lambdas"]
        D = int(lam.shape[1]) if hasattr(lam, "shape") else len(lam[0])
        lam = self._param("lambdas_", lam, like, (self.n_components, D))
        if bool(get_namespace(like).any(lam <= 0)):
            raise ValueError("lambdas_ must be positive; got entries <= 0.")
        return {"lambdas": lam}

    def _init_emission(self, name, init, rng):
        X_host = init["rows"](rng)
        lam = pois.init_kmeans(X_host, self.n_components, rng,
                               kmeans_init=self.init_method == "kmeans++")
        return {"lambdas": asarray(lam, like=init["like"])}

    def _emission_log_prob(self, data, params):
        return pois.log_prob(data["X"], data["log_fact"], params["lambdas"]), None

    def _emission_stats(self, data, post, params, aux):
        return pois.statistics(data["X"], post)

    def _emission_m_step(self, stats, params, learn, ref):
        if "lambdas" not in learn:
            return {}
        return {"lambdas": pois.map_m_step(
            stats, params["lambdas"], self._prior(self.lambdas_prior, params["lambdas"]),
            self._prior(self.lambdas_weight, params["lambdas"]))}

    def _n_emission_scalars(self):
        return self.n_components * self.n_features

    def _sample_emission(self, params, states, rng):
        return pois.sample(rng, params["lambdas"], states)
