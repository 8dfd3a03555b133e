"""Gaussian observations in four covariance types: log-density, additive
statistics, M-steps (maximum likelihood and MAP), initialisation, sampling.

References: C. M. Bishop, Pattern Recognition and Machine Learning, 2006,
sec. 2.3 (eq. 2.43, the density), sec. 9.2 (eqs. 9.24-9.27, mixture M-step),
sec. 13.2.1 (HMM emissions); X. Huang, A. Acero, H.-W. Hon, Spoken Language
Processing, 2001, pp. 443-445 (MAP updates with conjugate priors, the
convention hmmlearn 0.3 uses).

Covariance types (compact shapes, K components, D features):

    full (K, D, D)    tied (D, D) shared    diag (K, D)    spherical (K,)

Parameterisation of the density: U_k, the upper-triangular Cholesky factor
of the precision (Lambda_k = Sigma_k^{-1} = U_k U_k^T; for diag the vector
1/sigma_k, for spherical the scalar), so that

    log N(x | mu_k, Sigma_k) = -D/2 log 2 pi + log det U_k - 1/2 ||(x - mu_k) U_k||^2.

Statistics are taken about an explicit reference point ``shift`` (c): with
y_n = x_n - c and weights r_nk,

    resp_sum_k = sum_n r_nk                          (K,)
    x_sum_k    = sum_n r_nk y_n                      (K, D)
    xx_sum_k   = sum_n r_nk y_n y_n^T                full (K, D, D)
               = sum_n r_nk y_n * y_n                diag, spherical (K, D)
               = sum_n (sum_k r_nk) y_n y_n^T        tied (D, D)

They are sums over rows, so the statistics of disjoint chunks add up to those
of the whole data exactly (up to round-off), whatever the chunk sizes or
order: c is fixed for a whole fit (the data mean, so that the second moments
lose no digits to an offset), never recomputed per chunk.  Statistics are
plain dicts of arrays; the models wrap them in
:class:`lvm_core.em.SufficientStatistics` (a higher layer) to add them.  The M-steps return
means in the same shifted coordinates.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import get_namespace

__all__ = [
    "COVARIANCE_TYPES", "LOG_2PI",
    "compute_precision_cholesky", "precision_cholesky_from_precisions",
    "precisions_from_cholesky", "covariances_from_cholesky", "log_det_precision_cholesky",
    "full_covariances", "diag_natural_params", "log_prob", "statistics", "m_step",
    "map_m_step", "floor_variances", "floor_covariances", "initial_covariances", "sample",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
LOG_2PI = math.log(2.0 * math.pi)
COLLAPSE = 1e-6  # a variance below COLLAPSE * min_covar has collapsed


def _eye(xp, D, like):
    return xp.eye(D, dtype=like.dtype, device=like.device)


def _transpose(xp, A):
    return xp.matrix_transpose(A)


def _inv_lower_triangular(xp, L):
    """L^{-1} for lower-triangular L (..., D, D), through a linear solve."""
    eye = _eye(xp, L.shape[-1], L)
    if L.ndim == 3:
        eye = xp.broadcast_to(eye, L.shape)
    return xp.linalg.solve(L, eye)


def _cholesky(xp, A, what):
    try:
        L = xp.linalg.cholesky(A)
    except Exception as exc:  # numpy LinAlgError, or a backend's own error
        raise ValueError(
            f"{what} is not symmetric positive definite ({exc}). Check the initial "
            "precisions, or increase reg_covar / rescale the data (degenerate data, "
            "too many components, or collapsed samples)."
        ) from None
    if not bool(xp.all(xp.isfinite(L))):
        raise ValueError(
            f"{what} is not symmetric positive definite (its Cholesky factor is not "
            "finite). Increase reg_covar or check the data."
        )
    return L


# --------------------------------------------------------------- parameterisation

def compute_precision_cholesky(covariances, covariance_type):
    """U with Sigma^{-1} = U U^T: Sigma = L L^T gives U = L^{-T}; diag/spherical 1/sqrt(sigma^2)."""
    xp = get_namespace(covariances)
    if covariance_type in ("full", "tied"):
        L = _cholesky(xp, covariances, "A component covariance")
        return _transpose(xp, _inv_lower_triangular(xp, L))
    if bool(xp.any(covariances <= 0.0)):
        raise ValueError(
            "A component variance is not positive. Increase reg_covar or check the data "
            "(a collapsed component or a constant feature)."
        )
    return 1.0 / xp.sqrt(covariances)


def precision_cholesky_from_precisions(precisions, covariance_type):
    """U with Lambda = U U^T from Lambda: with J the exchange matrix,
    J Lambda J = C C^T (C lower) gives U = J C J (upper); diag/spherical sqrt(Lambda)."""
    xp = get_namespace(precisions)
    if covariance_type in ("full", "tied"):
        C = _cholesky(xp, xp.flip(precisions, axis=(-2, -1)),
                      "A precision matrix (precisions_init)")
        return xp.flip(C, axis=(-2, -1))
    if bool(xp.any(precisions <= 0.0)):
        raise ValueError("precisions_init must be positive; got a value <= 0.")
    return xp.sqrt(precisions)


def precisions_from_cholesky(precisions_cholesky, covariance_type):
    """Lambda = U U^T (full/tied) or U^2 (diag/spherical)."""
    xp = get_namespace(precisions_cholesky)
    if covariance_type in ("full", "tied"):
        return xp.matmul(precisions_cholesky, _transpose(xp, precisions_cholesky))
    return precisions_cholesky * precisions_cholesky


def covariances_from_cholesky(precisions_cholesky, covariance_type):
    """Sigma = U^{-T} U^{-1} (full/tied) or 1/U^2."""
    xp = get_namespace(precisions_cholesky)
    if covariance_type in ("full", "tied"):
        U_inv_T = _inv_lower_triangular(xp, _transpose(xp, precisions_cholesky))  # U^{-T}
        return xp.matmul(U_inv_T, _transpose(xp, U_inv_T))
    return 1.0 / (precisions_cholesky * precisions_cholesky)


def log_det_precision_cholesky(precisions_cholesky, covariance_type, n_features):
    """log det U_k = 1/2 log det Lambda_k, (K,) (a scalar for tied): full/tied
    sum_d log U_dd; diag sum_d log U_d; spherical D log U."""
    xp = get_namespace(precisions_cholesky)
    if covariance_type in ("full", "tied"):
        return xp.sum(xp.log(xp.linalg.diagonal(precisions_cholesky)), axis=-1)
    if covariance_type == "diag":
        return xp.sum(xp.log(precisions_cholesky), axis=1)
    return n_features * xp.log(precisions_cholesky)


def full_covariances(covars, covariance_type, n_components, n_features):
    """Compact covariances -> (K, D, D)."""
    xp = get_namespace(covars)
    eye = _eye(xp, n_features, covars)
    if covariance_type == "spherical":
        return covars[:, None, None] * eye[None, :, :]
    if covariance_type == "diag":
        return covars[:, :, None] * eye[None, :, :]
    if covariance_type == "tied":
        return xp.broadcast_to(covars[None, :, :], (n_components, n_features, n_features))
    return covars


# ------------------------------------------------------------------- log-density

def diag_natural_params(means, variances):
    """W (2D, K) and const (K,) with log N(x | mu_k, diag sigma2_k) = [x, x*x] W + const:

        W = [mu_k / sigma2_k ; -1/(2 sigma2_k)],
        const_k = -1/2 [D log 2 pi + sum_d log sigma2_kd + sum_d mu_kd^2 / sigma2_kd].

    ``variances`` (K, D), or (K,) for spherical (broadcast over D).
    """
    xp = get_namespace(means, variances)
    K, D = means.shape
    sigma2 = xp.broadcast_to(variances[:, None] if variances.ndim == 1 else variances, (K, D))
    inv = 1.0 / sigma2  # (K, D)
    const = -0.5 * (D * LOG_2PI + xp.sum(xp.log(sigma2), axis=1)
                    + xp.sum(means * means * inv, axis=1))  # (K,)
    W = xp.concat([means * inv, -0.5 * inv], axis=1).T  # (2D, K)
    return W, const


def log_prob(X, means, precisions_cholesky, covariance_type):
    """log N(x_n | mu_k, Sigma_k), (N, K) (Bishop eq. 2.43).

    full/tied: -D/2 log 2 pi + log det U_k - 1/2 ||x_n U_k - mu_k U_k||^2 (a loop
    over the K components); diag/spherical: [x, x*x] W + const
    (:func:`diag_natural_params`).
    """
    xp = get_namespace(X, means, precisions_cholesky)
    D = X.shape[1]
    K = means.shape[0]
    if covariance_type in ("diag", "spherical"):
        W, const = diag_natural_params(means, 1.0 / (precisions_cholesky * precisions_cholesky))
        return xp.matmul(X, W[:D, :]) + xp.matmul(X * X, W[D:, :]) + const[None, :]
    log_det = log_det_precision_cholesky(precisions_cholesky, covariance_type, D)
    columns = []
    for k in range(K):
        U_k = precisions_cholesky[k, ...] if covariance_type == "full" else precisions_cholesky
        y = xp.matmul(X, U_k) - xp.matmul(means[k, :], U_k)  # (N, D)
        columns.append(xp.sum(y * y, axis=1))
    maha = xp.stack(columns, axis=1)  # (N, K)
    return -0.5 * (D * LOG_2PI + maha) + log_det


# -------------------------------------------------------------------- statistics

def statistics(X, resp, covariance_type, shift=None):
    """Additive statistics resp_sum (K,), x_sum (K, D), xx_sum of y = X - shift
    (see the module docstring for the shapes); ``shift=None`` means c = 0."""
    xp = get_namespace(X, resp)
    Y = X if shift is None else X - shift[None, :]
    resp_sum = xp.sum(resp, axis=0)  # (K,)
    x_sum = xp.matmul(resp.T, Y)  # (K, D)
    if covariance_type == "full":
        K = resp.shape[1]
        xx_sum = xp.stack([xp.matmul((Y * resp[:, k:k + 1]).T, Y) for k in range(K)])  # (K, D, D)
    elif covariance_type == "tied":
        w = xp.sum(resp, axis=1)  # (N,) 1 per observed row
        xx_sum = xp.matmul((Y * w[:, None]).T, Y)  # (D, D)
    else:
        xx_sum = xp.matmul(resp.T, Y * Y)  # (K, D)
    return {"resp_sum": resp_sum, "x_sum": x_sum, "xx_sum": xx_sum}


def _dtype_eps(dtype):
    return 1.1920928955078125e-07 if "float32" in str(dtype) else 2.220446049250313e-16


def m_step(stats, covariance_type, reg_covar):
    """Maximum-likelihood M-step of a mixture (PRML eqs. 9.24-9.27, scikit-learn's floors).

    N_k' = N_k + 10 eps;  pi_k = N_k' / sum_j N_j';  mu_k = s_k / N_k';
    full:      Sigma_k = SS_k / N_k' - mu_k mu_k^T + reg I
    tied:      Sigma = (SS - sum_k N_k' mu_k mu_k^T) / sum_k N_k' + reg I
    diag:      sigma2_k = SS_k / N_k' - mu_k^2 + reg
    spherical: sigma2_k = mean_d(diag sigma2_k)

    Returns ``(weights, means, covariances)`` (means about the statistics' shift).
    """
    resp_sum = stats["resp_sum"]
    xp = get_namespace(resp_sum)
    N_k = resp_sum + 10.0 * _dtype_eps(resp_sum.dtype)  # (K,)
    weights = N_k / xp.sum(N_k)
    means = stats["x_sum"] / N_k[:, None]  # (K, D)
    D = means.shape[1]
    if covariance_type == "full":
        cov = stats["xx_sum"] / N_k[:, None, None] - means[:, :, None] * means[:, None, :]
        cov = cov + reg_covar * _eye(xp, D, means)
        return weights, means, 0.5 * (cov + _transpose(xp, cov))
    if covariance_type == "tied":
        mean_outer = xp.matmul((N_k[:, None] * means).T, means)  # (D, D)
        cov = (stats["xx_sum"] - mean_outer) / xp.sum(N_k) + reg_covar * _eye(xp, D, means)
        return weights, means, 0.5 * (cov + cov.T)
    variances = stats["xx_sum"] / N_k[:, None] - means * means + reg_covar  # (K, D)
    return weights, means, variances if covariance_type == "diag" else xp.mean(variances, axis=1)


def floor_variances(var, min_covar):
    """Variances that collapsed (below 1e-6 min_covar) are reset to min_covar."""
    xp = get_namespace(var)
    return xp.where(var < COLLAPSE * min_covar, xp.full_like(var, min_covar), var)


def floor_covariances(cov, min_covar):
    """Matrices (..., D, D) whose smallest eigenvalue lambda collapsed (below
    1e-6 min_covar) get (min_covar - lambda) I added."""
    xp = get_namespace(cov)
    lam_min = xp.min(xp.linalg.eigvalsh(cov), axis=-1)  # (...,)
    add = xp.where(lam_min < COLLAPSE * min_covar, min_covar - lam_min, xp.zeros_like(lam_min))
    return cov + add[..., None, None] * _eye(xp, cov.shape[-1], cov)


def map_m_step(stats, means, covars, covariance_type, *, means_prior, means_weight,
               covars_prior, covars_weight, min_covar, learn_means, learn_covars):
    """MAP M-step with conjugate priors (Huang et al. 2001, pp. 443-445; hmmlearn 0.3):

        mu_k = (w m0_k + s_k) / (w + N_k)
        diag:  sigma2_k = (psi + w (mu_k - m0_k)^2 + SS_k - 2 mu_k s_k + N_k mu_k^2)
                          / max(max(nu - 1, 0) + N_k, 1e-5)
        spherical: the mean over features of the diag value
        full:  Sigma_k = (Psi + w d_k d_k^T + S_k) / (max(nu - D, 0) + N_k),
               S_k = SS_k - s_k mu_k^T - mu_k s_k^T + N_k mu_k mu_k^T
        tied:  Sigma = (Psi + sum_k (w d_k d_k^T + S_k)) / (max(nu - D, 0) + sum_k N_k)

    with d_k = mu_k - m0_k (m0 = means_prior, w = means_weight, psi/Psi =
    covars_prior, nu = covars_weight); everything in the statistics' shifted
    coordinates (pass ``means`` and ``means_prior`` shifted).  Collapsed
    covariances are floored at ``min_covar`` (:func:`floor_variances`); a
    component without mass keeps its previous mean and covariance.
    Returns ``(means, covars)``.
    """
    xp = get_namespace(means, covars)
    post, obs = stats["resp_sum"], stats["x_sum"]
    D = means.shape[1]
    has_mass = post > 0  # (K,)
    if learn_means:
        den = means_weight + post[:, None]  # (K, 1)
        den = xp.where(has_mass[:, None], den, xp.ones_like(den))
        means = xp.where(has_mass[:, None], (means_weight * means_prior + obs) / den, means)
    if not learn_covars:
        return means, covars
    diff = means - means_prior  # (K, D)
    if covariance_type in ("diag", "spherical"):
        c_n = (means_weight * diff * diff + stats["xx_sum"] - 2.0 * means * obs
               + means * means * post[:, None])
        if getattr(covars_weight, "ndim", 0) == 0:
            c_d = max(float(covars_weight) - 1.0, 0.0)
        else:
            c_d = xp.maximum(covars_weight - 1.0, xp.zeros_like(covars_weight))
        c_d = xp.maximum(c_d + post[:, None], xp.full_like(c_n, 1e-5))
        new = (covars_prior + c_n) / c_d  # (K, D)
        if covariance_type == "spherical":
            new = floor_variances(xp.mean(new, axis=1), min_covar)
            return means, xp.where(has_mass, new, covars)
        return means, xp.where(has_mass[:, None], floor_variances(new, min_covar), covars)
    w = means_weight if getattr(means_weight, "ndim", 0) == 0 else means_weight[:, None, None]
    cross = (obs[:, :, None] * means[:, None, :] + means[:, :, None] * obs[:, None, :]
             - post[:, None, None] * means[:, :, None] * means[:, None, :])  # (K, D, D)
    nu = max(float(covars_weight) - D, 0.0)
    if covariance_type == "tied":
        c_n = xp.sum(w * diff[:, :, None] * diff[:, None, :] - cross, axis=0) + stats["xx_sum"]
        new = (covars_prior + c_n) / (nu + xp.sum(post))
        return means, floor_covariances(0.5 * (new + new.T), min_covar)
    c_n = w * diff[:, :, None] * diff[:, None, :] + stats["xx_sum"] - cross  # (K, D, D)
    den = nu + post[:, None, None]
    new = (covars_prior + c_n) / xp.where(has_mass[:, None, None], den, xp.ones_like(den))
    new = floor_covariances(0.5 * (new + _transpose(xp, new)), min_covar)
    return means, xp.where(has_mass[:, None, None], new, covars)


# ---------------------------------------------------------------- init, sampling

def initial_covariances(X, covariance_type, n_components, min_covar, leading=()):
    """Every component starts at the data covariance + min_covar I (hmmlearn's
    start), in compact form; ``leading`` extra leading axes (e.g. (M,) for the
    mixture components of each HMM state).  X (N, D) NumPy rows."""

    D = X.shape[1]
    cv = np.cov(X.T).reshape(D, D) if X.shape[0] > 1 else np.eye(D)
    cv = cv + min_covar * np.eye(D)
    K = n_components
    lead = tuple(leading)
    if covariance_type == "spherical":
        return np.full((K,) + lead, np.mean(np.diag(cv)))
    if covariance_type == "diag":
        return np.tile(np.diag(cv), (K,) + lead + (1,))
    if covariance_type == "full":
        return np.tile(cv, (K,) + lead + (1, 1))
    return cv if not lead else np.tile(cv, (K, 1, 1))


def sample(rng, means, full_covars, labels):
    """x_n = mu_{l_n} + L_{l_n} eps_n, eps_n ~ N(0, I), Sigma = L L^T (NumPy, host).

    means (K, D), full_covars (K, D, D), labels (N,) int.  Returns (N, D).
    """

    L = np.linalg.cholesky(full_covars)  # (K, D, D)
    eps = rng.standard_normal((len(labels), means.shape[1]))
    return means[labels] + np.einsum("tij,tj->ti", L[labels], eps)
