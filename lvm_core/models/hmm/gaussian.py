"""HMM with Gaussian emissions N(x | mu_k, Sigma_k) in four covariance types.

References: C. M. Bishop, PRML, 2006, sec. 13.2.1 (M-step with Gaussian
emissions, eqs. 13.20-13.21); X. Huang, A. Acero, H.-W. Hon, Spoken Language
Processing, 2001, pp. 443-445 (MAP updates, hmmlearn 0.3's convention).  The
density, statistics and MAP M-step are those of
:mod:`lvm_core.families.gaussian`, about the fit's reference point c.
"""
from __future__ import annotations

import numpy as np

from ...backend import asarray, get_namespace, is_numpy_namespace
from ...families import gaussian as gauss
from ...families._common import kmeans
from ...validation import check_choice
from ._gaussian_data import GaussianData
from .base import BaseHMM

__all__ = ["GaussianHMM"]


class GaussianHMM(GaussianData, BaseHMM):
    """HMM with Gaussian emissions N(x | mu_k, Sigma_k).

    Parameters
    ----------
    n_components : int
        Number of hidden states K.
    covariance_type : {"diag", "spherical", "full", "tied"}
        Form of the covariances (``covars_`` shapes (K, D), (K,), (K, D, D), (D, D)).
    min_covar : float
        Floor of collapsed variances (a variance, or the smallest eigenvalue,
        below 1e-6 * min_covar is raised to min_covar); also added to the
        initial covariances.
    startprob_prior : float or (K,) array
        Dirichlet concentration of the start probabilities (1: no prior).
    transmat_prior : float or (K, K) array
        Dirichlet concentration of each transition row (1: no prior).
    means_prior, means_weight : float or array
        Normal prior on the means: mu_k ~ N(means_prior, Sigma_k / means_weight).
    covars_prior, covars_weight : float or array
        Inverse-gamma (diag/spherical) or inverse-Wishart (full/tied) prior of
        the covariances, hmmlearn 0.3's parameterisation.
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
        Parameters updated by the M-step ("startprob", "transmat", "means", "covars").
    init : "auto" or tuple of str
        Parameters drawn afresh by every ``fit`` ("auto": all but those set by
        hand; a tuple: those names, the others start as they are).
    init_method : {"kmeans++", "random"}
        Means start at k-means centres (k-means++ seeding) or at random rows.
    allow_missing : bool
        Marginalise rows of X that are entirely NaN.
    implementation : {"auto", "numba", "xp"}
        Forward-backward kernels: numba for NumPy, array-API otherwise.
    warm_start : bool
        After a first fit, start the next ``fit`` from the current parameters
        (drawing only the unset ones) instead of from the initialisation.

    ``covars_`` is compact (as in scikit-learn's GaussianMixture);
    ``full_covars_`` is (K, D, D).
    """

    _emission_names = ("means", "covars")

    def __init__(self, n_components=1, covariance_type="diag", min_covar=1e-3,
                 startprob_prior=1.0, transmat_prior=1.0, means_prior=0, means_weight=0,
                 covars_prior=1e-2, covars_weight=1, algorithm="viterbi", random_state=None,
                 n_iter=10, tol=1e-6, verbose=False,
                 learn=("startprob", "transmat", "means", "covars"), init="auto",
                 init_method="kmeans++", allow_missing=False, implementation="auto",
                 warm_start=False):
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
        self.warm_start = warm_start

    def _check_hyper(self):
        super()._check_hyper()
        check_choice(self.covariance_type, "covariance_type", gauss.COVARIANCE_TYPES)

    def _n_features_known(self, fitting=False):
        means = self._current("means", fitting)
        if means is None:
            return None
        return int(means.shape[1]) if hasattr(means, "shape") else len(means[0])

    @property
    def n_features(self):
        """D, from the fitted means (None before fit)."""
        return self._n_features_known()

    @property
    def full_covars_(self):
        """Covariances as (K, D, D) whatever the covariance_type."""
        self._is_fitted()
        like = self.means_ if hasattr(self.means_, "shape") else np.zeros(1)
        covars = self._fitted_params(like)["covars"]
        return gauss.full_covariances(covars, self.covariance_type, self.n_components,
                                      self._n_features_known())

    def _covars_shape(self, D):
        K = self.n_components
        return {"spherical": (K,), "diag": (K, D), "full": (K, D, D), "tied": (D, D)}[
            self.covariance_type]

    def _check_emission(self, values, like):
        check_choice(self.covariance_type, "covariance_type", gauss.COVARIANCE_TYPES)
        means = values["means"]
        D = int(means.shape[1]) if hasattr(means, "shape") else len(means[0])
        means = self._param("means_", means, like, (self.n_components, D))
        covars = self._param("covars_", values["covars"], like, self._covars_shape(D))
        xp = get_namespace(like)
        if self.covariance_type in ("spherical", "diag"):
            if bool(xp.any(covars <= 0)):
                raise ValueError("covars_ must be positive; got entries <= 0.")
        else:
            sym = xp.max(xp.abs(covars - xp.matrix_transpose(covars)))
            if float(sym) > 1e-8 * max(1.0, float(xp.max(xp.abs(covars)))) or \
                    float(xp.min(xp.linalg.eigvalsh(covars))) <= 0:
                raise ValueError(
                    "covars_ must be symmetric positive definite; got a matrix that is not. "
                    "Add a multiple of the identity or recompute it."
                )
        return {"means": means, "covars": covars}

    def _init_emission(self, name, init, rng):
        X_host = init["rows"](rng)
        K = self.n_components
        if name == "means":
            if self.init_method == "kmeans++":
                means = np.asarray(kmeans(X_host, K, rng, max_iter=10)[0])
            else:
                means = X_host[rng.choice(X_host.shape[0], K, replace=X_host.shape[0] < K)]
            return {"means": asarray(means, like=init["like"])}
        cov = gauss.initial_covariances(X_host, self.covariance_type, K, self.min_covar)
        return {"covars": asarray(cov, like=init["like"])}

    def _emission_log_prob(self, data, params):
        xp = data["xp"]
        mu_c = params["means"] - data["shift"][None, :]
        covars, ctype = params["covars"], self.covariance_type
        if ctype in ("diag", "spherical"):
            W, const = gauss.diag_natural_params(mu_c, covars)  # (2D, K), (K,)
            if is_numpy_namespace(xp):
                from ...kernels.hmm_numba import affine_rows

                return affine_rows(data["Z"], W, const, work=data.get("work")), None
            return xp.matmul(data["Z"], W) + const[None, :], None
        U = gauss.compute_precision_cholesky(covars, ctype)
        return gauss.log_prob(data["X_c"], mu_c, U, ctype), None

    def _emission_affine(self, data, params):
        """(Z, W, const) with log N(x_t | mu_k, Sigma_k) = Z_t W_k + const_k for
        diag/spherical covariances (None for full/tied)."""
        if self.covariance_type not in ("diag", "spherical"):
            return None
        W, const = gauss.diag_natural_params(params["means"] - data["shift"][None, :],
                                             params["covars"])
        return data["Z"], W, const

    def _affine_stats(self, data, resp_sum, gZ):
        D = data["X_c"].shape[1]
        return {"resp_sum": resp_sum, "x_sum": gZ[:, :D], "xx_sum": gZ[:, D:]}

    def _emission_stats(self, data, post, params, aux):
        xp = data["xp"]
        if self.covariance_type in ("diag", "spherical"):
            D = data["X_c"].shape[1]
            if is_numpy_namespace(xp):
                from ...kernels.hmm_numba import weighted_sums

                resp_sum, both = weighted_sums(post, data["Z"])  # (K,), (K, 2 D)
            else:
                resp_sum, both = xp.sum(post, axis=0), xp.matmul(post.T, data["Z"])
            return {"resp_sum": resp_sum, "x_sum": both[:, :D], "xx_sum": both[:, D:]}
        return gauss.statistics(data["X_c"], post, self.covariance_type)

    def _emission_m_step(self, stats, params, learn, ref):
        learn_means, learn_covars = "means" in learn, "covars" in learn
        if not (learn_means or learn_covars):
            return {}
        like = params["means"]
        mp = self._prior(self.means_prior, like)
        mu_c, covars = gauss.map_m_step(
            stats, params["means"] - ref[None, :], params["covars"], self.covariance_type,
            means_prior=mp - ref[None, :], means_weight=self._prior(self.means_weight, like),
            covars_prior=self._prior(self.covars_prior, like),
            covars_weight=self._prior(self.covars_weight, like),
            min_covar=self.min_covar, learn_means=learn_means, learn_covars=learn_covars)
        out = {"covars": covars}
        if learn_means:  # (no round trip through the reference point for fixed means)
            out["means"] = mu_c + ref[None, :]
        return out

    def _n_emission_scalars(self):
        K, D = self.n_components, self._n_features_known()
        return K * D + {"spherical": K, "diag": K * D, "full": K * D * (D + 1) // 2,
                        "tied": D * (D + 1) // 2}[self.covariance_type]

    def _sample_emission(self, params, states, rng):
        K, D = params["means"].shape
        full = gauss.full_covariances(params["covars"], self.covariance_type, K, D)
        return gauss.sample(rng, params["means"], np.asarray(full), states)
