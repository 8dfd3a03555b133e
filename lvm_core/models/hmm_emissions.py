"""HMM emission models as pure functions: log-densities, statistics, M-steps.

References: L. R. Rabiner, "A tutorial on hidden Markov models ...", Proc.
IEEE 77(2), 1989 (re-estimation formulas, eqs. 40, 52-54); C. M. Bishop,
Pattern Recognition and Machine Learning, 2006, sec. 13.2.1 (M-step of HMMs
with Gaussian emissions) and sec. 9.2 (Gaussian mixtures); X. Huang, A. Acero,
H.-W. Hon, Spoken Language Processing, 2001, pp. 443-445 (MAP updates with
conjugate priors).  Prior conventions follow hmmlearn 0.3 so that models with
identical priors give identical fits.

Every function is written in array-API code and works on any backend.  The
statistics are sums over time of posterior-weighted data, so they are
additive over chunks of data:

    post_k   = sum_t gamma_t(k)                      (K,)
    obs_k    = sum_t gamma_t(k) x_t                  (K, D)
    obs2_k   = sum_t gamma_t(k) x_t * x_t            (K, D)     diag, spherical
    outer_k  = sum_t gamma_t(k) x_t x_t^T            (K, D, D)  full, tied

Gaussian statistics are taken on data centred by a global shift (the data
mean): the M-step subtracts means from second moments, and a global centring
removes most of the cancellation of that subtraction.  All Gaussian functions
below take centred data ``X_c = X - shift`` and centred means ``mu_c``.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import device_of, get_namespace, is_numpy_namespace

__all__ = [
    "COVARIANCE_TYPES",
    "categorical_log_frameprob",
    "categorical_stats",
    "categorical_m_step",
    "gaussian_log_frameprob",
    "gaussian_stats",
    "gaussian_m_step",
    "full_covariances",
    "poisson_log_frameprob",
    "log_factorial",
    "poisson_stats",
    "poisson_m_step",
    "gmm_log_weighted_densities",
    "gmm_stats",
    "gmm_m_step",
    "gmm_default_covars_prior",
]

COVARIANCE_TYPES = ("spherical", "diag", "full", "tied")
LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------- categorical


def categorical_log_frameprob(symbols, log_emissionprob):
    """log p(x_t | z_t = k) = log B[k, x_t].

    symbols: (T,) int64 in 0..F-1 (missing rows may hold any valid symbol);
    log_emissionprob: (K, F).  Returns (T, K).
    """
    xp = get_namespace(log_emissionprob)
    return xp.take(log_emissionprob.T, symbols, axis=0)  # (T, K)


def categorical_stats(symbols, posteriors, n_features):
    """obs[k, f] = sum_{t: x_t = f} gamma_t(k)  (K, F) (Rabiner eq. 40c numerator).

    symbols: (T,) int64; posteriors: (T, K) (zero rows for missing data).
    """
    xp = get_namespace(posteriors)
    if is_numpy_namespace(xp):
        from ..kernels.hmm_numba import symbol_counts

        return symbol_counts(np.asarray(symbols), np.asarray(posteriors), int(n_features))
    one_hot = xp.astype(
        symbols[:, None] == xp.arange(n_features, device=device_of(posteriors))[None, :],
        posteriors.dtype,
    )  # (T, F)
    return xp.matmul(posteriors.T, one_hot)  # (K, F)


def categorical_m_step(obs, emissionprob_prior, emissionprob):
    """MAP update with a Dirichlet(prior) on each row of B:

        B[k, f] = max(obs[k, f] + prior - 1, 0) / sum_f' max(obs[k, f'] + prior - 1, 0).

    A row with nothing to normalise (a state without posterior mass and
    prior <= 1) keeps its previous value ``emissionprob``.
    """
    xp = get_namespace(obs)
    counts = xp.maximum(obs + (emissionprob_prior - 1.0), xp.zeros_like(obs))  # keeps tiny counts exact
    total = xp.sum(counts, axis=1, keepdims=True)
    ok = total > 0
    return xp.where(ok, counts / xp.where(ok, total, xp.ones_like(total)), emissionprob)


# -------------------------------------------------------------------- gaussian


def full_covariances(covars, covariance_type, n_components, n_features):
    """Compact covariances -> (K, D, D): spherical (K,), diag (K, D),
    full (K, D, D), tied (D, D)."""
    xp = get_namespace(covars)
    eye = xp.eye(n_features, dtype=covars.dtype, device=device_of(covars))
    if covariance_type == "spherical":
        return covars[:, None, None] * eye[None, :, :]
    if covariance_type == "diag":
        return covars[:, :, None] * eye[None, :, :]
    if covariance_type == "tied":
        return xp.broadcast_to(covars[None, :, :], (n_components, n_features, n_features))
    return covars


def _precision_cholesky(cov):
    """(..., D, D) covariances -> inverse Cholesky factors L^{-1} and
    log|Sigma| = 2 sum log diag(L)."""
    xp = get_namespace(cov)
    L = xp.linalg.cholesky(cov)
    D = cov.shape[-1]
    diag = xp.stack([L[..., d, d] for d in range(D)], axis=-1)  # (..., D)
    log_det = 2.0 * xp.sum(xp.log(diag), axis=-1)
    return xp.linalg.inv(L), log_det


def gaussian_log_frameprob(X_c, X_c2, mu_c, covars, covariance_type, Z=None, work=None):
    """log N(x_t | mu_k, Sigma_k) (T, K) (Bishop eq. 2.43).

    diag/spherical (sigma2 = covars, broadcast over D), by two matrix products:

        log N = -1/2 [D log 2 pi + sum_d log sigma2_kd
                      + sum_d (x_d^2 - 2 x_d mu_kd + mu_kd^2) / sigma2_kd]

    full/tied: with Sigma = L L^T, y = L^{-1}(x - mu),
    log N = -1/2 [D log 2 pi + log|Sigma| + ||y||^2].

    X_c: (T, D) centred data; X_c2: (T, D) its squares (diag/spherical only,
    else None); mu_c: (K, D) centred means; Z: optional (T, 2 D) = [X_c, X_c2]
    (then diag/spherical take one matrix product instead of two); work: optional
    dict of reusable NumPy output arrays (the EM loop's).
    """
    xp = get_namespace(X_c, mu_c, covars)
    T, D = X_c.shape
    K = mu_c.shape[0]
    if covariance_type in ("diag", "spherical"):
        sigma2 = covars[:, None] if covariance_type == "spherical" else covars  # (K, 1|D)
        sigma2 = xp.broadcast_to(sigma2, (K, D))
        inv = 1.0 / sigma2  # (K, D)
        const = -0.5 * (D * LOG_2PI + xp.sum(xp.log(sigma2), axis=1)
                        + xp.sum(mu_c * mu_c * inv, axis=1))  # (K,)
        if Z is not None:
            W = xp.concat([mu_c * inv, -0.5 * inv], axis=1).T  # (2 D, K)
            if is_numpy_namespace(xp):
                from ..kernels.hmm_numba import affine_rows

                return affine_rows(Z, W, const, work=work)  # (T, K)
            return xp.matmul(Z, W) + const[None, :]  # (T, K)
        return (xp.matmul(X_c, (mu_c * inv).T) - 0.5 * xp.matmul(X_c2, inv.T)
                + const[None, :])  # (T, K)
    if covariance_type == "tied":
        L_inv, log_det = _precision_cholesky(covars)  # (D, D), ()
        y = xp.matmul(X_c, L_inv.T)  # (T, D)
        mu_y = xp.matmul(mu_c, L_inv.T)  # (K, D)
        sq = (xp.sum(y * y, axis=1)[:, None] - 2.0 * xp.matmul(y, mu_y.T)
              + xp.sum(mu_y * mu_y, axis=1)[None, :])  # (T, K)
        return -0.5 * (D * LOG_2PI + log_det + sq)
    L_inv, log_det = _precision_cholesky(covars)  # (K, D, D), (K,)
    cols = []
    for k in range(K):
        y = xp.matmul(X_c - mu_c[k, :][None, :], L_inv[k, ...].T)  # (T, D)
        cols.append(-0.5 * (D * LOG_2PI + log_det[k] + xp.sum(y * y, axis=1)))
    return xp.stack(cols, axis=1)  # (T, K)


def gaussian_stats(X_c, X_c2, posteriors, covariance_type, Z=None):
    """post (K,), obs (K, D) and obs2 (K, D) or outer (K, D, D), from centred
    data, by matrix products (Bishop eqs. 13.20-13.21 numerators); with
    Z = [X_c, X_c2] (T, 2 D), obs and obs2 come from one product gamma^T Z."""
    xp = get_namespace(X_c, posteriors)
    if Z is not None and covariance_type in ("diag", "spherical"):
        D = X_c.shape[1]
        if is_numpy_namespace(xp):
            from ..kernels.hmm_numba import weighted_sums

            post, both = weighted_sums(posteriors, Z)  # (K,), (K, 2 D)
        else:
            post = xp.sum(posteriors, axis=0)  # (K,)
            both = xp.matmul(posteriors.T, Z)  # (K, 2 D)
        return {"post": post, "obs": both[:, :D], "obs2": both[:, D:]}
    post = xp.sum(posteriors, axis=0)  # (K,)
    obs = xp.matmul(posteriors.T, X_c)  # (K, D)
    stats = {"post": post, "obs": obs}
    if covariance_type in ("diag", "spherical"):
        stats["obs2"] = xp.matmul(posteriors.T, X_c2)  # (K, D)
    else:
        K = posteriors.shape[1]
        stats["outer"] = xp.stack(
            [xp.matmul((X_c * posteriors[:, k][:, None]).T, X_c) for k in range(K)], axis=0
        )  # (K, D, D)
    return stats


COLLAPSE = 1e-6  # a variance below COLLAPSE * min_covar has collapsed


def _floor_variances(var, min_covar):
    """Variances that collapsed (below COLLAPSE * min_covar) are reset to min_covar."""
    xp = get_namespace(var)
    return xp.where(var < COLLAPSE * min_covar, xp.full_like(var, min_covar), var)


def _floor_covariances(cov, min_covar):
    """Matrices (..., D, D) whose smallest eigenvalue collapsed (below
    COLLAPSE * min_covar) get (min_covar - lambda_min) I added."""
    xp = get_namespace(cov)
    D = cov.shape[-1]
    lam_min = xp.min(xp.linalg.eigvalsh(cov), axis=-1)  # (...,)
    add = xp.where(lam_min < COLLAPSE * min_covar, min_covar - lam_min, xp.zeros_like(lam_min))
    eye = xp.eye(D, dtype=cov.dtype, device=device_of(cov))
    return cov + add[..., None, None] * eye


def gaussian_m_step(stats, mu_c, covars, covariance_type, *, means_prior_c, means_weight,
                    covars_prior, covars_weight, min_covar, learn_means, learn_covars):
    """MAP M-step of Gaussian emissions (Huang et al. 2001, pp. 443-445):

        mu_k = (w m0_k + obs_k) / (w + post_k)
        diag:  sigma2_k = (psi + w (mu_k - m0_k)^2 + obs2_k - 2 mu_k obs_k + mu_k^2 post_k)
                          / max(max(nu - 1, 0) + post_k, 1e-5)
        spherical: the mean over features of the diag value
        full:  Sigma_k = (Psi + w d_k d_k^T + S_k) / (max(nu - D, 0) + post_k),
               S_k = outer_k - obs_k mu_k^T - mu_k obs_k^T + post_k mu_k mu_k^T
        tied:  Sigma = (Psi + sum_k (w d_k d_k^T + S_k)) / (max(nu - D, 0) + sum_k post_k)

    with d_k = mu_k - m0_k (m0 = means_prior, w = means_weight, psi/Psi =
    covars_prior, nu = covars_weight).  Covariances are then floored at
    ``min_covar`` where they collapsed: a variance (or the smallest eigenvalue)
    below 1e-6 * min_covar is raised to min_covar; above that the MAP estimate
    is kept exactly (hmmlearn applies no floor, and the covars_prior already
    keeps well-posed estimates away from 0).  A state whose posterior mass is
    zero keeps its previous mean and covariance.
    Returns (mu_c, covars) in centred coordinates.
    """
    xp = get_namespace(mu_c, covars)
    post = stats["post"]
    K, D = mu_c.shape
    has_mass = post > 0  # (K,)
    if learn_means:
        den = means_weight + post[:, None]  # (K, 1)
        den = xp.where(has_mass[:, None], den, xp.ones_like(den))
        new_mu = (means_weight * means_prior_c + stats["obs"]) / den
        mu_c = xp.where(has_mass[:, None], new_mu, mu_c)
    if not learn_covars:
        return mu_c, covars
    obs = stats["obs"]
    diff = mu_c - means_prior_c  # (K, D)
    if covariance_type in ("diag", "spherical"):
        c_n = (means_weight * diff * diff + stats["obs2"] - 2.0 * mu_c * obs
               + mu_c * mu_c * post[:, None])
        c_d = max(float(covars_weight) - 1.0, 0.0) if np.ndim(covars_weight) == 0 else \
            xp.maximum(covars_weight - 1.0, xp.zeros_like(covars_weight))
        c_d = xp.maximum(c_d + post[:, None], xp.full_like(c_n, 1e-5))
        new = (covars_prior + c_n) / c_d  # (K, D)
        if covariance_type == "spherical":
            new = xp.mean(new, axis=1)
            new = _floor_variances(new, min_covar)
            return mu_c, xp.where(has_mass, new, covars)
        new = _floor_variances(new, min_covar)
        return mu_c, xp.where(has_mass[:, None], new, covars)
    S = (stats["outer"] - obs[:, :, None] * mu_c[:, None, :] - mu_c[:, :, None] * obs[:, None, :]
         + post[:, None, None] * mu_c[:, :, None] * mu_c[:, None, :])  # (K, D, D)
    w = means_weight if np.ndim(means_weight) == 0 else means_weight[:, None, None]
    c_n = w * diff[:, :, None] * diff[:, None, :] + S  # (K, D, D)
    nu = max(float(covars_weight) - D, 0.0)
    if covariance_type == "tied":
        new = (covars_prior + xp.sum(c_n, axis=0)) / (nu + xp.sum(post))
        new = _floor_covariances(0.5 * (new + new.T), min_covar)
        return mu_c, new
    den = nu + post[:, None, None]
    new = (covars_prior + c_n) / xp.where(has_mass[:, None, None], den, xp.ones_like(den))
    new = _floor_covariances(0.5 * (new + xp.permute_dims(new, (0, 2, 1))), min_covar)
    return mu_c, xp.where(has_mass[:, None, None], new, covars)


# --------------------------------------------------------------------- poisson


def log_factorial(X):
    """sum_d log(x_td!) (T,) from a table of cumulative sums of log i
    (log n! = sum_{i=1}^n log i), computed on X's device."""
    xp = get_namespace(X)
    n_max = int(xp.max(X)) if X.shape[0] else 0
    i = xp.arange(1, n_max + 1, dtype=xp.float64, device=device_of(X))
    table = xp.concat([xp.zeros((1,), dtype=xp.float64, device=device_of(X)),
                       xp.cumulative_sum(xp.log(i))]) if n_max > 0 else \
        xp.zeros((1,), dtype=xp.float64, device=device_of(X))
    idx = xp.reshape(xp.astype(X, xp.int64), (-1,))
    vals = xp.reshape(xp.take(table, idx), X.shape)  # (T, D)
    return xp.sum(vals, axis=1)


def poisson_log_frameprob(X, log_factorial_X, lambdas):
    """log p(x_t | z_t = k) = sum_d [x_td log lambda_kd - lambda_kd - log x_td!]
    (T, K); X: (T, D) float counts, lambdas: (K, D)."""
    xp = get_namespace(X, lambdas)
    log_lam = xp.log(lambdas)
    return (xp.matmul(X, log_lam.T) - xp.sum(lambdas, axis=1)[None, :]
            - log_factorial_X[:, None])


def poisson_stats(X, posteriors):
    """post (K,) and obs (K, D) = gamma^T X."""
    xp = get_namespace(X, posteriors)
    return {"post": xp.sum(posteriors, axis=0), "obs": xp.matmul(posteriors.T, X)}


def poisson_m_step(stats, lambdas, lambdas_prior, lambdas_weight):
    """MAP update with a Gamma(alpha, beta) prior (hmmlearn 0.3 convention):

        lambda_k = (alpha + n ybar_k) / (beta + n),  ybar_k = obs_k / post_k,
        n = sum_k post_k  (hmmlearn uses the total count n for every state).

    With alpha = beta = 0 this is the ML update lambda_k = obs_k / post_k.
    A state without posterior mass keeps its previous rates.
    """
    xp = get_namespace(lambdas)
    post = stats["post"]
    has_mass = post > 0
    safe = xp.where(has_mass, post, xp.ones_like(post))
    n = xp.sum(post)
    y_bar = stats["obs"] / safe[:, None]
    new = (lambdas_prior + n * y_bar) / (lambdas_weight + n)
    return xp.where(has_mass[:, None], new, lambdas)


# ------------------------------------------------------------------------ GMM


def gmm_default_covars_prior(covariance_type, n_mix, n_features):
    """hmmlearn 0.3's defaults for GMMHMM (covars_prior, covars_weight) when None."""
    return {
        "full": (0.0, -(1.0 + n_features + 1.0)),
        "tied": (0.0, -(n_mix + n_features + 1.0)),
        "diag": (-1.5, 0.0),
        "spherical": (-(n_mix + 2.0) / 2.0, 0.0),
    }[covariance_type]


def gmm_log_weighted_densities(X_c, X_c2, weights, mu_c, covars, covariance_type):
    """log w_km + log N(x_t | mu_km, Sigma_km), (T, K, M).

    mu_c: (K, M, D) centred means; covars compact per component (diag (K, M, D),
    spherical (K, M), full (K, M, D, D), tied (K, D, D): shared by the M
    components of a state).
    """
    xp = get_namespace(X_c, mu_c)
    K, M, D = mu_c.shape
    T = X_c.shape[0]
    flat_mu = xp.reshape(mu_c, (K * M, D))
    if covariance_type == "tied":
        cols = [gaussian_log_frameprob(X_c, X_c2, mu_c[k, ...], covars[k, ...], "tied")
                for k in range(K)]  # each (T, M)
        log_n = xp.stack(cols, axis=1)  # (T, K, M)
    else:
        ctype = covariance_type
        if ctype == "spherical":
            flat_cov = xp.reshape(covars, (K * M,))
        elif ctype == "diag":
            flat_cov = xp.reshape(covars, (K * M, D))
        else:
            flat_cov = xp.reshape(covars, (K * M, D, D))
        log_n = xp.reshape(gaussian_log_frameprob(X_c, X_c2, flat_mu, flat_cov, ctype),
                           (T, K, M))
    log_w = xp.where(weights > 0, xp.log(xp.where(weights > 0, weights, xp.ones_like(weights))),
                     xp.full_like(weights, -math.inf))
    return log_n + log_w[None, :, :]


def gmm_stats(X_c, X_c2, posteriors, log_weighted, mu_c, covariance_type):
    """Statistics of the GMM-HMM M-step (hmmlearn 0.3 convention).

    r_tkm = gamma_t(k) p(m | x_t, z_t = k) (responsibilities of the
    components inside state k).  Returns post_mix_sum (K, M) = sum_t r_tkm,
    post_sum (K,) = sum_t gamma_t(k), m_n (K, M, D) = sum_t r_tkm x_t and
    c_n, the scatter about the *current* means mu_km:
    diag (K, M, D) sum_t r (x - mu)^2, spherical (K, M) sum_t r ||x - mu||^2,
    full (K, M, D, D) and tied (K, D, D, summed over m) sum_t r (x - mu)(x - mu)^T.
    """
    xp = get_namespace(X_c, posteriors)
    T, K, M = log_weighted.shape
    D = X_c.shape[1]
    m_max = xp.max(log_weighted, axis=2, keepdims=True)
    m_max = xp.where(xp.isfinite(m_max), m_max, xp.zeros_like(m_max))
    e = xp.exp(log_weighted - m_max)
    resp = e / xp.sum(e, axis=2, keepdims=True)  # (T, K, M)
    r = xp.reshape(posteriors[:, :, None] * resp, (T, K * M))  # (T, K M)
    pms = xp.sum(r, axis=0)  # (K M,)
    s1 = xp.matmul(r.T, X_c)  # (K M, D)
    mu = xp.reshape(mu_c, (K * M, D))
    stats = {
        "post_mix_sum": xp.reshape(pms, (K, M)),
        "post_sum": xp.sum(posteriors, axis=0),
        "m_n": xp.reshape(s1, (K, M, D)),
    }
    if covariance_type in ("diag", "spherical"):
        s2 = xp.matmul(r.T, X_c2)  # (K M, D)
        c = s2 - 2.0 * mu * s1 + mu * mu * pms[:, None]
        if covariance_type == "diag":
            stats["c_n"] = xp.reshape(c, (K, M, D))
        else:
            stats["c_n"] = xp.reshape(xp.sum(c, axis=1), (K, M))
        return stats
    outer = xp.stack([xp.matmul((X_c * r[:, j][:, None]).T, X_c) for j in range(K * M)],
                     axis=0)  # (K M, D, D)
    c = (outer - s1[:, :, None] * mu[:, None, :] - mu[:, :, None] * s1[:, None, :]
         + pms[:, None, None] * mu[:, :, None] * mu[:, None, :])
    c = xp.reshape(c, (K, M, D, D))
    stats["c_n"] = c if covariance_type == "full" else xp.sum(c, axis=1)
    return stats


def gmm_m_step(stats, weights, mu_c, covars, covariance_type, *, weights_prior, means_prior_c,
               means_weight, covars_prior, covars_weight, min_covar, learn_weights, learn_means,
               learn_covars):
    """MAP M-step of GMM emissions (hmmlearn 0.3 convention; Huang et al. 2001):

        w_km  = (n_km + a_km - 1) / (n_k + sum_m (a_km - 1))
        mu_km = (lambda_km m0_km + sum_t r_tkm x_t) / (n_km + lambda_km)
        diag:      sigma2_km = (lambda (mu - m0)^2 + 2 beta + c_n) / (n_km + 1 + 2 (alpha + 1))
        spherical: sigma2_km = (lambda ||mu - m0||^2 + 2 beta + c_n) / (D (n_km + 1) + 2 (alpha + 1))
        full:      Sigma_km = (Psi^T + lambda d d^T + c_n) / (n_km + 1 + nu + D + 1)
        tied:      Sigma_k = (Psi^T + sum_m lambda d d^T + c_n) / (n_k + M + nu + D + 1)

    (n_km = post_mix_sum, n_k = post_sum; alpha/Psi = covars_prior, beta/nu =
    covars_weight; c_n is the scatter about the previous means, as in
    hmmlearn).  A state without posterior mass keeps its previous parameters;
    collapsed covariances are floored at ``min_covar`` (see gaussian_m_step).
    """
    xp = get_namespace(mu_c, covars)
    K, M, D = mu_c.shape
    n_km = stats["post_mix_sum"]
    n_k = stats["post_sum"]
    has_mass = n_k > 0  # (K,)
    if learn_weights:
        a1 = weights_prior - 1.0
        w_n = n_km + a1
        w_d = (n_k + xp.sum(a1, axis=1))[:, None]
        new_w = w_n / xp.where(w_d != 0, w_d, xp.ones_like(w_d))
        weights = xp.where(has_mass[:, None], new_w, weights)
    if learn_means:
        m_d = n_km + means_weight
        m_d = xp.where(m_d != 0, m_d, xp.ones_like(m_d))
        new_mu = (means_weight[:, :, None] * means_prior_c + stats["m_n"]) / m_d[:, :, None]
        mu_c = xp.where(has_mass[:, None, None], new_mu, mu_c)
    if not learn_covars:
        return weights, mu_c, covars
    diff = mu_c - means_prior_c  # (K, M, D)
    c_n = stats["c_n"]
    if covariance_type == "diag":
        num = means_weight[:, :, None] * diff * diff + 2.0 * covars_weight + c_n
        den = n_km[:, :, None] + 1.0 + 2.0 * (covars_prior + 1.0)
        new = _floor_variances(num / den, min_covar)
        return weights, mu_c, xp.where(has_mass[:, None, None], new, covars)
    if covariance_type == "spherical":
        num = means_weight * xp.sum(diff * diff, axis=2) + 2.0 * covars_weight + c_n
        den = D * (n_km + 1.0) + 2.0 * (covars_prior + 1.0)
        new = _floor_variances(num / den, min_covar)
        return weights, mu_c, xp.where(has_mass[:, None], new, covars)
    dd = diff[..., :, None] * diff[..., None, :]  # (K, M, D, D)
    if covariance_type == "full":
        psi_t = xp.permute_dims(covars_prior, (0, 1, 3, 2))
        num = psi_t + means_weight[:, :, None, None] * dd + c_n
        den = (n_km + 1.0 + covars_weight + D + 1.0)[:, :, None, None]
        new = num / den
        new = _floor_covariances(0.5 * (new + xp.permute_dims(new, (0, 1, 3, 2))), min_covar)
        return weights, mu_c, xp.where(has_mass[:, None, None, None], new, covars)
    psi_t = xp.permute_dims(covars_prior, (0, 2, 1))
    num = xp.sum(means_weight[:, :, None, None] * dd, axis=1) + psi_t + c_n
    den = (n_k + M + covars_weight + D + 1.0)[:, None, None]
    new = num / den
    new = _floor_covariances(0.5 * (new + xp.permute_dims(new, (0, 2, 1))), min_covar)
    return weights, mu_c, xp.where(has_mass[:, None, None], new, covars)
