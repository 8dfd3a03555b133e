"""Variational Bayesian HMMs: categorical and Gaussian emissions (four covariance types).

References: M. J. Beal, "Variational algorithms for approximate Bayesian
inference", PhD thesis, UCL, 2003, ch. 3 (VB-EM for HMMs); C. M. Bishop,
PRML, 2006, sec. 10.2 (Normal-Wishart posteriors, eqs. 10.60-10.64) and
B.79-B.81 (Wishart); hmmlearn 0.3's VariationalCategoricalHMM and
VariationalGaussianHMM, whose parameter names and conventions these follow
(``*_prior_`` / ``*_posterior_``; ``scale`` is the inverse Wishart scale
W^{-1}).

The posterior q(Z) q(pi) q(A) q(theta) is refined by coordinate ascent on
the evidence lower bound

    F = sum_s log Z~_s - KL(q(pi) || p(pi)) - sum_i KL(q(A_i) || p(A_i))
        - sum_k KL(q(theta_k) || p(theta_k)),

where log Z~_s is the forward-backward normaliser of sequence s with the
sub-normalised parameters pi~ = exp E[log pi], A~ = exp E[log A] and
frame terms E[log p(x_t | theta_k)] (Beal 2003, eqs. 3.68-3.72).  The VB
E-step (q(Z) given q(theta)) and M-step (q(theta) = prior + expected
statistics) each maximise F over one factor, so F never decreases (the fit
records F in ``monitor_.history``).

After fit the point parameters used by ``score`` / ``predict`` / ``sample``
are the posterior means: startprob_ = a / sum a, transmat_ rows alike,
emissionprob_ likewise (categorical); means_ = m_k and covars_ = W_k^{-1} / nu_k
(Gaussian), as in hmmlearn.
"""
from __future__ import annotations

import math

import numpy as np

from ...backend import asarray, to_numpy
from ...families import gaussian as gauss
from ...families._common import kmeans
from ...families.dirichlet import digamma, expected_log, kl_dirichlet, lgamma
from ...validation import check_choice
from ._vb import _host, _VariationalFit
from .categorical import CategoricalHMM
from .gaussian import GaussianHMM

__all__ = ["VariationalCategoricalHMM", "VariationalGaussianHMM"]


class VariationalCategoricalHMM(_VariationalFit, CategoricalHMM):
    """Categorical HMM with Dirichlet posteriors over pi, the rows of A and of B.

    Parameters
    ----------
    n_components : int
        Number of hidden states K.
    n_features : int, optional
        Number of symbols F (default: the largest symbol + 1).
    startprob_prior, transmat_prior : float, array or None
        Dirichlet concentrations of p(pi) and of each row of p(A) (None: 1/K).
    emissionprob_prior : float, (K, F) array or None
        Dirichlet concentration of each emission row (None: 1/F).
    algorithm, random_state, n_iter, tol, verbose, allow_missing, implementation
        As in :class:`CategoricalHMM` (``tol`` is relative to |F|).
    learn : tuple of str
        Posteriors updated ("startprob", "transmat", "emissionprob").
    warm_start : bool
        Start a new fit from the previous fit's posteriors.

    Fitted: ``startprob_posterior_``, ``transmat_posterior_``,
    ``emissionprob_posterior_`` (and ``*_prior_``), ``lower_bound_`` and the
    posterior-mean ``startprob_``, ``transmat_``, ``emissionprob_``.
    """

    _vb_emission = ("emissionprob",)

    def __init__(self, n_components=1, n_features=None, startprob_prior=None,
                 transmat_prior=None, emissionprob_prior=None, algorithm="viterbi",
                 random_state=None, n_iter=100, tol=1e-6, verbose=False,
                 learn=("startprob", "transmat", "emissionprob"), allow_missing=False,
                 implementation="auto", warm_start=False):
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
        self.allow_missing = allow_missing
        self.implementation = implementation
        self.warm_start = warm_start
        self.init = "auto"
        self.init_method = "random"

    def _n_symbols(self, fitting=False):
        if fitting:
            return None if self.n_features is None else int(self.n_features)
        return super()._n_symbols(fitting)

    def _vb_priors(self, data, ref):
        K = self.n_components
        F = int(self.n_features) if self.n_features is not None else ref["largest"] + 1
        self._check_alphabet(F, "the model would need ")
        sp = 1.0 / K if self.startprob_prior is None else self.startprob_prior
        tp = 1.0 / K if self.transmat_prior is None else self.transmat_prior
        ep = 1.0 / F if self.emissionprob_prior is None else self.emissionprob_prior
        return {"startprob": _host(sp, (K,), "startprob_prior"),
                "transmat": _host(tp, (K, K), "transmat_prior"),
                "emissionprob": _host(ep, (K, F), "emissionprob_prior")}

    def _vb_init(self, data, ref, rng):
        K = self.n_components
        a = self._vb_priors(data, ref)["emissionprob"][0]
        return {"emissionprob": rng.dirichlet(a, size=K) * data["T"] / K}

    def _vb_frame(self, data, post):
        """E[log B[k, x_t]] = psi(b_k x_t) - psi(sum_f b_kf), (T, K)."""
        xp = data["xp"]
        table = asarray(expected_log(post["emissionprob"]).T, like=data["like"])  # (F, K)
        return xp.take(table, data["symbols"], axis=0)

    def _vb_stats(self, data, post_z, post):
        """counts[k, f] = sum_{t: x_t = f} gamma_t(k) (K, F)."""
        stats = self._emission_stats(data, post_z, {"emissionprob": post["emissionprob"]}, None)
        return {"counts": to_numpy(stats["counts"])}

    def _vb_update(self, stats, post, priors, learn):
        if "emissionprob" not in learn:
            return {}
        return {"emissionprob": priors["emissionprob"] + stats["counts"]}

    def _vb_kl(self, post, priors):
        return kl_dirichlet(post["emissionprob"], priors["emissionprob"])

    def _vb_point(self, post, ref):
        B = post["emissionprob"]
        return {"emissionprob": B / B.sum(axis=1, keepdims=True)}



class VariationalGaussianHMM(_VariationalFit, GaussianHMM):
    """Gaussian HMM with Normal-Wishart (full) or Normal-Gamma (diag) posteriors
    per state and Dirichlet posteriors over pi and the rows of A.

    Parameters
    ----------
    n_components : int
        Number of hidden states K.
    covariance_type : {"full", "tied", "diag", "spherical"}
        "full": Lambda_k ~ Wishart(W_k, nu_k) (hmmlearn's "full", same numbers);
        "tied": one Lambda ~ Wishart(W, nu) shared by the states;
        "diag": independent lambda_kd ~ Gamma(nu_k / 2, rate s_kd / 2) per
        dimension; "spherical": one lambda_k ~ Gamma(nu_k / 2, rate s_k / 2)
        per state (mean-field Normal-Gamma posteriors; hmmlearn's "diag" and
        "spherical" keep a Wishart with a restricted scale instead, whose
        update is not a coordinate-ascent step, so those two differ).
    startprob_prior, transmat_prior : float, array or None
        Dirichlet concentrations (None: 1/K).
    means_prior : (K, D) array, (D,) or None
        m0 (None: the data mean).
    beta_prior : float, (K,) or None
        beta0, the precision scale of the mean prior (None: 1).
    dof_prior : float, (K,) or None
        nu0 > D - 1, the Wishart degrees of freedom (None: D).
    scale_prior : array or None
        W0^{-1}, the inverse Wishart scale (full (K, D, D), tied (D, D)), or
        twice the Gamma rates (diag (K, D), spherical (K,)); None: 1e-3 (I).
    algorithm, random_state, n_iter, tol, verbose, allow_missing, implementation
        As in :class:`GaussianHMM`.
    learn : tuple of str
        Posteriors updated ("startprob", "transmat", "means", "covars").
    warm_start : bool
        Start a new fit from the previous fit's posteriors.

    Start: k-means (K clusters) gives n_k rows per state; m_k = centre,
    beta_k = n_k + beta0, nu_k = n_k + nu0 and W_k^{-1} = nu_k (cov(X) + 1e-3 I)
    (hmmlearn's start with the prior added, so that no state starts degenerate).

    Fitted: ``means_posterior_``, ``beta_posterior_``, ``dof_posterior_``,
    ``scale_posterior_``, the Dirichlet posteriors, their priors,
    ``lower_bound_`` and the posterior-mean ``means_`` and ``covars_``.
    """

    _vb_emission = ("means", "beta", "dof", "scale")

    def __init__(self, n_components=1, covariance_type="full", startprob_prior=None,
                 transmat_prior=None, means_prior=None, beta_prior=None, dof_prior=None,
                 scale_prior=None, algorithm="viterbi", random_state=None, n_iter=100, tol=1e-6,
                 verbose=False, learn=("startprob", "transmat", "means", "covars"),
                 allow_missing=False, implementation="auto", warm_start=False):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.startprob_prior = startprob_prior
        self.transmat_prior = transmat_prior
        self.means_prior = means_prior
        self.beta_prior = beta_prior
        self.dof_prior = dof_prior
        self.scale_prior = scale_prior
        self.algorithm = algorithm
        self.random_state = random_state
        self.n_iter = n_iter
        self.tol = tol
        self.verbose = verbose
        self.learn = learn
        self.allow_missing = allow_missing
        self.implementation = implementation
        self.warm_start = warm_start
        self.init = "auto"
        self.init_method = "kmeans++"
        self.min_covar = 1e-3

    def _check_hyper(self):
        super()._check_hyper()
        check_choice(self.covariance_type, "covariance_type", gauss.COVARIANCE_TYPES)

    def _vb_priors(self, data, ref):
        K = self.n_components
        D = int(data["X"].shape[1])
        sp = 1.0 / K if self.startprob_prior is None else self.startprob_prior
        tp = 1.0 / K if self.transmat_prior is None else self.transmat_prior
        m0 = to_numpy(ref) if self.means_prior is None else self.means_prior
        m0 = np.broadcast_to(np.asarray(to_numpy(m0) if hasattr(m0, "shape") else m0,
                                        dtype=np.float64), (K, D)).copy()
        if not np.all(np.isfinite(m0)):
            raise ValueError("means_prior must be finite.")
        ctype = self.covariance_type
        dof = _host(float(D) if self.dof_prior is None else self.dof_prior,
                    () if ctype == "tied" else (K,), "dof_prior")
        low = D - 1 if ctype in ("full", "tied") else 0
        if np.any(dof <= low):
            raise ValueError(f"dof_prior must be > {low} (a proper Wishart / Gamma); got {dof}.")
        matrix = ctype in ("full", "tied")
        default = {"full": np.eye(D), "tied": np.eye(D), "diag": np.ones(D), "spherical": 1.0}
        sc = 1e-3 * default[ctype] if self.scale_prior is None else self.scale_prior
        shape = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[ctype]
        scale = np.broadcast_to(np.asarray(to_numpy(sc) if hasattr(sc, "shape") else sc,
                                           dtype=np.float64), shape).copy()
        if not np.all(np.isfinite(scale)) or np.any(
                (np.linalg.eigvalsh(scale) if matrix else scale) <= 0):
            raise ValueError("scale_prior must be positive (diag, spherical) or symmetric "
                             "positive definite (full, tied).")
        return {"startprob": _host(sp, (K,), "startprob_prior"),
                "transmat": _host(tp, (K, K), "transmat_prior"),
                "means": m0,
                "beta": _host(1.0 if self.beta_prior is None else self.beta_prior, (K,),
                              "beta_prior"),
                "dof": dof, "scale": scale}

    def _vb_init(self, data, ref, rng):
        K = self.n_components
        X_host = self._init_sample(self._observed_host(data), rng)
        D = X_host.shape[1]
        pri = self._vb_priors(data, ref)
        if X_host.shape[0] >= K:
            centres, labels = kmeans(X_host, K, rng, max_iter=10)
            centres, labels = np.asarray(centres), np.asarray(labels)
        else:
            centres, labels = X_host[rng.integers(0, X_host.shape[0], K)], np.zeros(0, int)
        counts = np.bincount(labels, minlength=K).astype(np.float64)
        cv = (np.cov(X_host.T).reshape(D, D) if X_host.shape[0] > 1 else np.eye(D)) \
            + 1e-3 * np.eye(D)
        ctype = self.covariance_type
        if ctype == "tied":
            dof = counts.sum() + pri["dof"]
            scale = cv * dof
        elif ctype == "spherical":  # nu counts D observations per row
            dof = D * counts + pri["dof"]
            scale = np.mean(np.diag(cv)) * dof
        else:
            dof = counts + pri["dof"]
            scale = cv[None, :, :] * dof[:, None, None]
            if ctype == "diag":
                scale = np.diagonal(scale, axis1=1, axis2=2).copy()
        return {"means": centres, "beta": counts + pri["beta"], "dof": dof, "scale": scale}

    @staticmethod
    def _expected_log_det(dof, scale):
        """E[log |Lambda|] = sum_i psi((nu + 1 - i) / 2) + D log 2 - log |W^{-1}| (Bishop B.81)."""
        D = scale.shape[-1]
        i = np.arange(1, D + 1)
        return (np.sum(digamma((dof[:, None] + 1.0 - i[None, :]) / 2.0), axis=1) + D * math.log(2.0)
                - np.linalg.slogdet(scale)[1])

    def _vb_frame(self, data, post):
        """E[log N(x | mu_k, Lambda_k^{-1})] = log N(x | m_k, (nu_k W_k)^{-1}) - D / (2 beta_k)
        + (E[log |Lambda_k|] - log |nu_k W_k|) / 2 (Bishop eq. 10.64)."""
        if self.covariance_type in ("diag", "spherical"):
            return self._vb_frame_diag(data, post)
        post = self._as_full(post)
        D = post["scale"].shape[-1]
        like = data["like"]
        cov = post["scale"] / post["dof"][:, None, None]  # (nu W)^{-1}
        m_c = asarray(post["means"], like=like) - data["shift"][None, :]
        U = gauss.compute_precision_cholesky(asarray(cov, like=like), "full")
        log_n = gauss.log_prob(data["X_c"], m_c, U, "full")  # (T, K)
        log_det_nuW = D * np.log(post["dof"]) - np.linalg.slogdet(post["scale"])[1]
        corr = -D / (2.0 * post["beta"]) + 0.5 * (self._expected_log_det(post["dof"], post["scale"])
                                                   - log_det_nuW)
        return log_n + asarray(corr, like=like)[None, :]

    def _vb_stats(self, data, post_z, post):
        stats = gauss.statistics(data["X_c"], post_z, self.covariance_type)
        out = {k: to_numpy(v) for k, v in stats.items()}
        out["shift"] = to_numpy(data["shift"])
        return out

    def _vb_update(self, stats, post, priors, learn):
        """beta = beta0 + N, m = (beta0 m0 + N xbar) / beta, nu = nu0 + N,
        W^{-1} = W0^{-1} + N S + beta0 N / (beta0 + N) (xbar - m0)(xbar - m0)^T
        (Bishop eqs. 10.60-10.63; the statistics are about the reference c)."""
        lm, lc = "means" in learn, "covars" in learn
        if not (lm or lc):
            return {}
        c = stats["shift"]
        N = stats["resp_sum"]  # (K,)
        safe = np.where(N > 0, N, 1.0)
        xbar_c = stats["x_sum"] / safe[:, None]  # (K, D), about c
        ctype = self.covariance_type
        diag = ctype in ("diag", "spherical")
        if diag:
            S = stats["xx_sum"] / safe[:, None] - xbar_c * xbar_c
        elif ctype == "full":
            S = stats["xx_sum"] / safe[:, None, None] - xbar_c[:, :, None] * xbar_c[:, None, :]
        m0_c = priors["means"] - c[None, :]
        b0 = priors["beta"]
        new = {}
        if lm:
            beta = b0 + N
            new["beta"] = beta
            new["means"] = (b0[:, None] * m0_c + N[:, None] * xbar_c) / beta[:, None] + c[None, :]
        if lc:
            d = xbar_c - m0_c
            if diag:  # the diagonal of the full update, one Gamma per dimension
                inc = N[:, None] * S + (b0 * N / (b0 + N))[:, None] * d * d  # (K, D)
                if ctype == "spherical":  # one Gamma per state: D observations per row
                    new["scale"] = priors["scale"] + np.sum(inc, axis=1)
                    new["dof"] = priors["dof"] + N * S.shape[1]
                    return new
                new["scale"] = priors["scale"] + inc
            elif ctype == "tied":  # one Wishart: the scatter of every state about its mean
                dd = (b0 * N / (b0 + N))[:, None, None] * d[:, :, None] * d[:, None, :]
                scale = (priors["scale"] + stats["xx_sum"]
                         - np.einsum("k,ki,kj->ij", N, xbar_c, xbar_c) + np.sum(dd, axis=0))
                new["scale"] = 0.5 * (scale + scale.T)
                new["dof"] = priors["dof"] + np.sum(N)
                return new
            else:
                scale = priors["scale"] + N[:, None, None] * S + \
                    (b0 * N / (b0 + N))[:, None, None] * d[:, :, None] * d[:, None, :]
                new["scale"] = 0.5 * (scale + np.swapaxes(scale, 1, 2))
            new["dof"] = priors["dof"] + N
        return new

    def _vb_kl(self, post, priors):
        """sum_k KL(NW(m, beta, W, nu) || NW(m0, beta0, W0, nu0))."""
        if self.covariance_type in ("diag", "spherical"):
            return self._vb_kl_diag(post, priors)
        tied = self.covariance_type == "tied"
        post, priors = self._as_full(post), self._as_full(priors)
        D = post["scale"].shape[-1]
        b, b0, nu, nu0 = post["beta"], priors["beta"], post["dof"], priors["dof"]
        S, S0 = post["scale"], priors["scale"]
        W = np.linalg.inv(S)
        d = post["means"] - priors["means"]
        gauss_kl = 0.5 * (D * b0 / b - D + D * np.log(b / b0)
                          + b0 * nu * np.einsum("ki,kij,kj->k", d, W, d))

        def log_b(scale, dof):  # log B(W, nu) with W^{-1} = scale (Bishop B.79)
            j = np.arange(1, D + 1)
            log_gamma_d = D * (D - 1) / 4.0 * math.log(math.pi) + np.sum(
                lgamma(dof[:, None] / 2.0 + (1.0 - j[None, :]) / 2.0), axis=1)
            return 0.5 * dof * np.linalg.slogdet(scale)[1] - 0.5 * dof * D * math.log(2.0) \
                - log_gamma_d

        e_log_det = self._expected_log_det(nu, S)
        wishart_kl = (log_b(S, nu) - log_b(S0, nu0) + 0.5 * (nu - nu0) * e_log_det
                      - 0.5 * nu * D + 0.5 * nu * np.einsum("kij,kji->k", S0, W))
        if tied:  # one Wishart, shared by the states
            return float(np.sum(gauss_kl) + wishart_kl[0])
        return float(np.sum(gauss_kl + wishart_kl))

    def _as_full(self, post):
        """Tied posteriors broadcast to one Wishart per state (the same for all)."""
        if self.covariance_type != "tied":
            return post
        K = post["means"].shape[0]
        out = dict(post)
        out["scale"] = np.broadcast_to(post["scale"], (K,) + post["scale"].shape[-2:])
        out["dof"] = np.broadcast_to(post["dof"], (K,))
        return out

    def _vb_point(self, post, ref):
        dof = {"diag": lambda v: v[:, None], "full": lambda v: v[:, None, None],
               "spherical": lambda v: v, "tied": lambda v: v}[self.covariance_type](post["dof"])
        return {"means": post["means"], "covars": post["scale"] / dof}

    # diagonal: a Normal-Gamma per state and dimension,
    #   lambda_kd ~ Gamma(nu_k / 2, s_kd / 2) (rate), mu_kd | lambda_kd ~ N(m_kd, 1 / (beta_k lambda_kd));
    # spherical: one lambda_k ~ Gamma(nu_k / 2, s_k / 2) shared by the D dimensions

    def _per_dim_scale(self, scale, D):
        """s_kd: the diagonal scales, or the spherical s_k repeated over the D dimensions."""
        return scale if scale.ndim == 2 else np.repeat(scale[:, None], D, axis=1)

    def _vb_frame_diag(self, data, post):
        """sum_d [ (psi(nu/2) - log(s_d/2) - log 2 pi) / 2 - 1/(2 beta) - nu (x_d - m_d)^2 / (2 s_d) ]."""
        xp = data["xp"]
        like = data["like"]
        nu, beta = post["dof"], post["beta"]
        D = post["means"].shape[1]
        s = self._per_dim_scale(post["scale"], D)
        m_c = asarray(post["means"], like=like) - data["shift"][None, :]  # (K, D)
        prec = asarray(nu[:, None] / s, like=like)  # E[lambda] (K, D)
        quad = (xp.matmul(data["X_c2"], prec.T) - 2.0 * xp.matmul(data["X_c"], (prec * m_c).T)
                + xp.sum(prec * m_c * m_c, axis=1)[None, :])  # (T, K)
        const = 0.5 * np.sum(digamma(nu / 2.0)[:, None] - np.log(s / 2.0), axis=1) \
            - 0.5 * D * math.log(2.0 * math.pi) - D / (2.0 * beta)
        return asarray(const, like=like)[None, :] - 0.5 * quad

    def _vb_kl_diag(self, post, priors):
        """sum_kd KL(N(m, 1/(beta lambda)) Gamma(a, b) || N(m0, 1/(beta0 lambda)) Gamma(a0, b0)),
        a = nu/2, b = s/2: the normal part 1/2 [beta0/beta - 1 + log(beta/beta0)
        + beta0 E[lambda] (m - m0)^2], the Gamma part (a - a0) psi(a) - log G(a) + log G(a0)
        + a0 (log b - log b0) + a (b0 - b) / b."""
        b, b0 = post["beta"][:, None], priors["beta"][:, None]
        a, a0 = post["dof"][:, None] / 2.0, priors["dof"][:, None] / 2.0
        r, r0 = post["scale"] / 2.0, priors["scale"] / 2.0  # (K, D) diag, (K,) spherical
        if r.ndim == 1:
            r, r0 = r[:, None], r0[:, None]
        d = post["means"] - priors["means"]
        normal = 0.5 * (b0 / b - 1.0 + np.log(b / b0) + b0 * (a / r) * d * d)  # (K, D)
        # one Gamma per state and dimension (diag) or per state (spherical)
        gamma = ((a - a0) * digamma(a) - lgamma(a) + lgamma(a0) + a0 * (np.log(r) - np.log(r0))
                 + a * (r0 - r) / r)
        return float(np.sum(normal) + np.sum(np.broadcast_to(gamma, r.shape)))
