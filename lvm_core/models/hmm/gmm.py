"""HMM whose emissions are Gaussian mixtures: p(x | z = k) = sum_m w_km N(x | mu_km, Sigma_km).

References: X. Huang, A. Acero, H.-W. Hon, Spoken Language Processing, 2001,
pp. 443-445 (MAP updates; hmmlearn 0.3's GMMHMM convention and defaults);
Bishop, PRML, sec. 9.2 (mixture responsibilities).

With r_tkm = gamma_t(k) p(m | x_t, z_t = k) and y_t = x_t - c (the fit's
reference point), the additive statistics are

    n_km = sum_t r_tkm  (K, M),   n_k = sum_t gamma_t(k)  (K,),
    s_km = sum_t r_tkm y_t  (K, M, D),
    SS_km = sum_t r_tkm y_t y_t^T  full (K, M, D, D); diagonal (K, M, D) for
            diag/spherical; tied: sum_t gamma_t(k) y_t y_t^T (K, D, D),

and the M-step forms hmmlearn's scatter about the previous means mu_km,
c_km = SS_km - s_km mu_km^T - mu_km s_km^T + n_km mu_km mu_km^T, from them.
"""
from __future__ import annotations

import numpy as np

from ...backend import asarray, get_namespace
from ...families import gaussian as gauss
from ...families._common import kmeans, logsumexp, safe_log
from ...validation import check_choice, check_positive_int
from ._gaussian_data import GaussianData
from .base import BaseHMM

__all__ = ["GMMHMM"]

MIN_COMPONENT_MASS = 1e-8  # expected observations below which a component keeps its parameters


def default_covars_prior(covariance_type, n_mix, n_features):
    """hmmlearn 0.3's defaults for GMMHMM (covars_prior, covars_weight) when None."""
    return {
        "full": (0.0, -(1.0 + n_features + 1.0)),
        "tied": (0.0, -(n_mix + n_features + 1.0)),
        "diag": (-1.5, 0.0),
        "spherical": (-(n_mix + 2.0) / 2.0, 0.0),
    }[covariance_type]


def log_weighted_densities(X_c, weights, mu_c, covars, covariance_type):
    """log w_km + log N(y_t | mu_km, Sigma_km), (T, K, M) (tied: Sigma_k shared by the M)."""
    xp = get_namespace(X_c, mu_c)
    K, M, D = mu_c.shape
    T = X_c.shape[0]
    if covariance_type == "tied":
        U = gauss.compute_precision_cholesky(covars, "full")  # (K, D, D)
        log_n = xp.stack([gauss.log_prob(X_c, mu_c[k, ...], U[k, ...], "tied") for k in range(K)],
                         axis=1)  # (T, K, M)
    else:
        flat_shape = {"spherical": (K * M,), "diag": (K * M, D), "full": (K * M, D, D)}
        flat_cov = xp.reshape(covars, flat_shape[covariance_type])
        U = gauss.compute_precision_cholesky(flat_cov, covariance_type)
        log_n = xp.reshape(gauss.log_prob(X_c, xp.reshape(mu_c, (K * M, D)), U, covariance_type),
                           (T, K, M))
    return log_n + safe_log(weights)[None, :, :]


class GMMHMM(GaussianData, BaseHMM):
    """HMM whose emissions are Gaussian mixtures.

    Parameters
    ----------
    n_components : int
        Number of hidden states K.
    n_mix : int
        Number of mixture components M per state.
    covariance_type : {"diag", "spherical", "full", "tied"}
        Form of the covariances: diag (K, M, D), spherical (K, M), full
        (K, M, D, D), tied (K, D, D) (shared by the components of a state).
    min_covar : float
        Floor of collapsed variances; also added to the initial covariances.
    startprob_prior : float or (K,) array
        Dirichlet concentration of the start probabilities (1: no prior).
    transmat_prior : float or (K, K) array
        Dirichlet concentration of each transition row (1: no prior).
    weights_prior : float or (K, M) array
        Dirichlet concentration of each state's mixture weights (1: no prior).
    means_prior, means_weight : float or array
        Normal prior on the component means (hmmlearn 0.3).
    covars_prior, covars_weight : float, array or None
        Prior of the covariances (None: hmmlearn 0.3's defaults for the type).
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
        Parameters updated by the M-step ("startprob", "transmat", "weights",
        "means", "covars").
    init : "auto" or tuple of str
        Parameters drawn afresh by every ``fit`` ("auto": all but those set by
        hand; a tuple: those names, the others start as they are).
    init_method : {"kmeans++", "random"}
        The K * M means start at k-means centres or at random rows.
    allow_missing : bool
        Marginalise rows of X that are entirely NaN.
    implementation : {"auto", "numba", "xp"}
        Forward-backward kernels: numba for NumPy, array-API otherwise.
    warm_start : bool
        After a first fit, start the next ``fit`` from the current parameters
        (drawing only the unset ones) instead of from the initialisation.

    Fitted ``weights_`` (K, M), ``means_`` (K, M, D), ``covars_`` (compact).
    """

    _emission_names = ("weights", "means", "covars")

    def __init__(self, n_components=1, n_mix=1, covariance_type="diag", min_covar=1e-3,
                 startprob_prior=1.0, transmat_prior=1.0, weights_prior=1.0, means_prior=0.0,
                 means_weight=0.0, covars_prior=None, covars_weight=None, algorithm="viterbi",
                 random_state=None, n_iter=10, tol=1e-6, verbose=False,
                 learn=("startprob", "transmat", "weights", "means", "covars"), init="auto",
                 init_method="kmeans++", allow_missing=False, implementation="auto",
                 warm_start=False):
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
        self.warm_start = warm_start

    def _check_hyper(self):
        super()._check_hyper()
        check_positive_int(self.n_mix, "n_mix")
        check_choice(self.covariance_type, "covariance_type", gauss.COVARIANCE_TYPES)

    def _n_features_known(self, fitting=False):
        means = self._current("means", fitting)
        if means is None:
            return None
        return int(means.shape[2]) if hasattr(means, "shape") else len(means[0][0])

    @property
    def n_features(self):
        """D, from the fitted means (None before fit)."""
        return self._n_features_known()

    def _covars_shape(self, D):
        K, M = self.n_components, self.n_mix
        return {"spherical": (K, M), "diag": (K, M, D), "full": (K, M, D, D),
                "tied": (K, D, D)}[self.covariance_type]

    def _check_emission(self, values, like):
        K, M = self.n_components, self.n_mix
        means = values["means"]
        D = int(means.shape[2]) if hasattr(means, "shape") else len(means[0][0])
        weights = self._param("weights_", values["weights"], like, (K, M))
        self._check_stochastic("weights_", weights)
        means = self._param("means_", means, like, (K, M, D))
        covars = self._param("covars_", values["covars"], like, self._covars_shape(D))
        xp = get_namespace(like)
        if self.covariance_type in ("spherical", "diag"):
            if bool(xp.any(covars <= 0)):
                raise ValueError("covars_ must be positive; got entries <= 0.")
        elif float(xp.min(xp.linalg.eigvalsh(covars))) <= 0:
            raise ValueError("covars_ must be positive definite; got a matrix that is not.")
        return {"weights": weights, "means": means, "covars": covars}

    def _priors(self, like, D):
        """Priors broadcast to hmmlearn 0.3's shapes (defaults when None)."""
        xp = get_namespace(like)
        K, M = self.n_components, self.n_mix
        cp_default, cw_default = default_covars_prior(self.covariance_type, M, D)
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

    def _state_partition(self, init, rng):
        """Rows of the initialisation sample split among the K states: k-means
        with K clusters on the rows (cached in ``init`` so that means and
        covariances start from the same split)."""
        if "state_rows" not in init:
            X_host = init["rows"](rng)
            K = self.n_components
            if self.init_method == "kmeans++" and X_host.shape[0] >= K:
                labels = np.asarray(kmeans(X_host, K, rng, max_iter=10)[1])
            else:
                labels = rng.integers(0, K, X_host.shape[0])
            init["state_rows"] = (X_host, [X_host[labels == k] for k in range(K)])
        return init["state_rows"]

    def _state_means(self, X_host, rows, rng):
        """M starting means of one state from that state's rows: k-means centres
        (k-means++ seeding) or random rows; a state with fewer than M rows
        completes them with the rows of all data nearest to its centre."""
        M = self.n_mix
        if rows.shape[0] < M:
            centre = rows.mean(axis=0) if rows.shape[0] else X_host[rng.integers(X_host.shape[0])]
            order = np.argsort(np.sum((X_host - centre) ** 2, axis=1), kind="stable")
            rows = np.concatenate([rows, X_host[order[:M - rows.shape[0]]]])
        if self.init_method == "kmeans++":
            return np.asarray(kmeans(rows, M, rng, max_iter=10)[0])
        return rows[rng.choice(rows.shape[0], M, replace=False)]

    def _init_emission(self, name, init, rng):
        """Each state's mixture starts from that state's data (the rows k-means
        assigns to it): uniform weights, k-means centres of its rows as means,
        its rows' covariance + min_covar I (all data's when it has < 2 rows)."""
        K, M = self.n_components, self.n_mix
        like = init["like"]
        if name == "weights":
            return {"weights": asarray(np.full((K, M), 1.0 / M), like=like)}
        X_host, state_rows = self._state_partition(init, rng)
        if name == "means":
            means = np.stack([self._state_means(X_host, rows, rng) for rows in state_rows])
            return {"means": asarray(means, like=like)}
        cov = np.concatenate([
            gauss.initial_covariances(rows if rows.shape[0] > 1 else X_host, self.covariance_type,
                                      1, self.min_covar, leading=(M,))
            if self.covariance_type != "tied" else
            gauss.initial_covariances(rows if rows.shape[0] > 1 else X_host, "full", 1,
                                      self.min_covar)
            for rows in state_rows])
        return {"covars": asarray(cov, like=like)}

    def _emission_log_prob(self, data, params):
        mu_c = params["means"] - data["shift"][None, None, :]
        lw = log_weighted_densities(data["X_c"], params["weights"], mu_c, params["covars"],
                                    self.covariance_type)  # (T, K, M)
        return logsumexp(lw, axis=2), lw  # the family's per-component terms feed the statistics

    def _emission_stats(self, data, post, params, lw):
        xp = data["xp"]
        X_c = data["X_c"]
        T, K, M = lw.shape
        resp = xp.exp(lw - logsumexp(lw, axis=2, keepdims=True))  # (T, K, M) p(m | x_t, k)
        r = xp.reshape(post[:, :, None] * resp, (T, K * M))  # (T, K M)
        D = X_c.shape[1]
        stats = {"post_mix_sum": xp.reshape(xp.sum(r, axis=0), (K, M)),
                 "post_sum": xp.sum(post, axis=0),
                 "m_n": xp.reshape(xp.matmul(r.T, X_c), (K, M, D))}
        ctype = self.covariance_type
        if ctype in ("diag", "spherical"):
            stats["xx_sum"] = xp.reshape(xp.matmul(r.T, data["X_c2"]), (K, M, D))
        elif ctype == "full":
            stats["xx_sum"] = xp.reshape(
                xp.stack([xp.matmul((X_c * r[:, j][:, None]).T, X_c) for j in range(K * M)]),
                (K, M, D, D))
        else:
            stats["xx_sum"] = xp.stack([xp.matmul((X_c * post[:, k][:, None]).T, X_c)
                                        for k in range(K)])  # (K, D, D)
        return stats

    def _scatter(self, stats, mu):
        """hmmlearn's c_n: scatter about the previous (shifted) means mu (K, M, D)."""
        xp = get_namespace(mu)
        n_km, s1, ss = stats["post_mix_sum"], stats["m_n"], stats["xx_sum"]
        ctype = self.covariance_type
        if ctype in ("diag", "spherical"):
            c = ss - 2.0 * mu * s1 + mu * mu * n_km[:, :, None]
            return c if ctype == "diag" else xp.sum(c, axis=2)
        cross = (s1[..., :, None] * mu[..., None, :] + mu[..., :, None] * s1[..., None, :]
                 - n_km[:, :, None, None] * mu[..., :, None] * mu[..., None, :])  # (K, M, D, D)
        return ss - cross if ctype == "full" else ss - xp.sum(cross, axis=1)

    def _emission_m_step(self, stats, params, learn, ref):
        """MAP M-step (hmmlearn 0.3 convention; Huang et al. 2001):

            w_km  = (n_km + a_km - 1) / (n_k + sum_m (a_km - 1))
            mu_km = (lambda_km m0_km + s_km) / (n_km + lambda_km)
            diag:  sigma2_km = (lambda (mu - m0)^2 + 2 beta + c_km) / (n_km + 1 + 2 (alpha + 1))
            spherical: (lambda ||mu - m0||^2 + 2 beta + c_km) / (D (n_km + 1) + 2 (alpha + 1))
            full:  Sigma_km = (Psi^T + lambda d d^T + c_km) / (n_km + 1 + nu + D + 1)
            tied:  Sigma_k = (Psi^T + sum_m lambda d d^T + c_k) / (n_k + M + nu + D + 1)

        (alpha/Psi = covars_prior, beta/nu = covars_weight, d = mu - m0).  A
        state without posterior mass keeps its parameters, and so do the mean
        and covariance of a component whose mass n_km fell to at most
        MIN_COMPONENT_MASS (its weight goes to ~0: it never becomes NaN);
        collapsed covariances are floored at min_covar.
        """
        lw_, lm, lc = "weights" in learn, "means" in learn, "covars" in learn
        if not (lw_ or lm or lc):
            return {}
        weights, covars = params["weights"], params["covars"]
        xp = get_namespace(covars)
        K, M, D = params["means"].shape
        mu_old = params["means"] - ref[None, None, :]
        pri = self._priors(covars, D)
        m0 = pri["means_prior"] - ref[None, None, :]
        lam = pri["means_weight"]
        n_km, n_k = stats["post_mix_sum"], stats["post_sum"]
        has_mass = n_k > 0  # (K,)
        alive = n_km > MIN_COMPONENT_MASS  # (K, M): components that keep posterior mass
        if lw_:
            a1 = pri["weights_prior"] - 1.0
            w_d = (n_k + xp.sum(a1, axis=1))[:, None]
            new_w = (n_km + a1) / xp.where(w_d != 0, w_d, xp.ones_like(w_d))
            weights = xp.where(has_mass[:, None], new_w, weights)
        mu = mu_old
        if lm:
            m_d = n_km + lam
            m_d = xp.where(m_d != 0, m_d, xp.ones_like(m_d))
            new_mu = (lam[:, :, None] * m0 + stats["m_n"]) / m_d[:, :, None]
            mu = xp.where(alive[:, :, None], new_mu, mu_old)
        out = {"weights": weights}
        if lm:
            out["means"] = mu + ref[None, None, :]
        if not lc:
            return out
        c_n = self._scatter(stats, mu_old)

        def keep(den, mask):  # denominators of entries that keep their values: 1 (no 0/0)
            return xp.where(mask, den, xp.ones_like(den))

        diff = mu - m0
        cp, cw, ctype = pri["covars_prior"], pri["covars_weight"], self.covariance_type
        if ctype == "diag":
            new = (lam[:, :, None] * diff * diff + 2.0 * cw + c_n) / \
                keep(n_km[:, :, None] + 1.0 + 2.0 * (cp + 1.0), alive[:, :, None])
            new = xp.where(alive[:, :, None], gauss.floor_variances(new, self.min_covar), covars)
        elif ctype == "spherical":
            new = (lam * xp.sum(diff * diff, axis=2) + 2.0 * cw + c_n) / \
                keep(D * (n_km + 1.0) + 2.0 * (cp + 1.0), alive)
            new = xp.where(alive, gauss.floor_variances(new, self.min_covar), covars)
        elif ctype == "full":
            dd = diff[..., :, None] * diff[..., None, :]  # (K, M, D, D)
            new = (xp.matrix_transpose(cp) + lam[:, :, None, None] * dd + c_n) / \
                keep(n_km + 1.0 + cw + D + 1.0, alive)[:, :, None, None]
            new = xp.where(alive[:, :, None, None], new, covars)  # (no NaN reaches the floor)
            new = gauss.floor_covariances(0.5 * (new + xp.matrix_transpose(new)), self.min_covar)
        else:
            dd = diff[..., :, None] * diff[..., None, :]
            new = (xp.sum(lam[:, :, None, None] * dd, axis=1) + xp.matrix_transpose(cp) + c_n) / \
                keep(n_k + M + cw + D + 1.0, has_mass)[:, None, None]
            new = xp.where(has_mass[:, None, None], new, covars)
            new = gauss.floor_covariances(0.5 * (new + xp.matrix_transpose(new)), self.min_covar)
        out["covars"] = new
        return out

    def _n_emission_scalars(self):
        K, M, D = self.n_components, self.n_mix, self._n_features_known()
        return K * M * D + {"spherical": K * M, "diag": K * M * D, "full": K * M * D * (D + 1) // 2,
                            "tied": K * D * (D + 1) // 2}[self.covariance_type] + (M - 1)

    def _sample_emission(self, params, states, rng):
        w, means, cov = params["weights"], params["means"], params["covars"]
        K, M, D = means.shape
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
        flat = np.reshape(full, (K * M, D, D))
        return gauss.sample(rng, np.reshape(means, (K * M, D)), flat, states * M + mix)
