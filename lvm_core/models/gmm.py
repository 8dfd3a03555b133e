"""Gaussian mixture model fitted by exact EM (Bishop, PRML sec. 9.2; Dempster et al. 1977).

Model (PRML eq. 9.7)::

    p(x) = sum_k pi_k N(x | mu_k, Sigma_k),        k = 1..K.

E-step (PRML eq. 9.23), in log space::

    log r_nk = log pi_k + log N(x_n | mu_k, Sigma_k) - log p(x_n),
    log p(x_n) = logsumexp_k (log pi_k + log N(x_n | mu_k, Sigma_k)),

and the bound is tight there: the EM objective equals the log-likelihood
sum_n log p(x_n).  The E-step returns the *additive* sufficient statistics::

    N_k  = sum_n r_nk                       resp_sum  (K,)
    s_k  = sum_n r_nk x_n                   x_sum     (K, D)
    SS_k = sum_n r_nk x_n x_n^T             xx_sum    full (K, D, D); diag and
                                            spherical (K, D) (diagonal only);
                                            tied: sum_n x_n x_n^T (D, D)

so that statistics of chunks of data add up to those of the whole.

M-step (PRML eqs. 9.24-9.27) from the statistics alone::

    pi_k = N_k / N,   xbar_k = s_k / N_k,
    S_k  = SS_k / N_k - xbar_k xbar_k^T  (+ reg_covar I),

with the tied, diagonal and spherical variants of S_k.  As in scikit-learn,
N_k gets ``10 * eps`` added (an empty component keeps finite parameters) and
``reg_covar`` is added to the diagonal of every covariance.

Parameterisation (scikit-learn's, so that users can switch): each component
keeps the Cholesky factor U_k of its *precision*, an upper-triangular matrix
with Lambda_k = Sigma_k^{-1} = U_k U_k^T, so that::

    log N(x | mu_k, Sigma_k) = -D/2 log(2 pi) + log det U_k - 1/2 ||(x - mu_k) U_k||^2.

For ``diag`` U_k is the vector 1/sqrt(diag Sigma_k), for ``spherical`` the
scalar 1/sigma_k, for ``tied`` one (D, D) factor shared by all components.

Speed: for ``full`` covariances on NumPy the E-step works on blocks of rows:
one GEMM against the stacked factors [U_1 | ... | U_K] (D, K*D) gives all K
whitened residuals, a fused Numba kernel turns them into log N, the
log-sum-exp and r_nk, and SS_k comes from one more GEMM of the
responsibilities against the packed products x_a x_b (a <= b).  The generic
array-API path (any backend) loops over components; both are tested equal.
``fit`` runs EM on X minus the data mean (EM is translation-equivariant) so
that the raw second moments SS_k lose no digits to an offset of the data.
"""
from __future__ import annotations

import math
import warnings

import numba
import numpy as np

from ..backend import asarray, get_namespace, is_numpy_namespace, item, to_numpy
from ..em import ConvergenceMonitor, SufficientStatistics, run_em
from ..random import as_generator, categorical, normal, uniform
from ..validation import (
    check_array,
    check_choice,
    check_is_fitted,
    check_positive_int,
)
from .base import ParamsMixin

__all__ = [
    "GaussianMixture",
    "e_step",
    "m_step",
    "estimate_log_gaussian_prob",
    "compute_precision_cholesky",
    "precision_cholesky_from_precisions",
    "log_det_precision_cholesky",
    "AbsoluteToleranceMonitor",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans++", "k-means++", "random_from_data", "random", "kmeans")
_CHUNK_ROWS = 2048  # rows per block of the NumPy full-covariance E-step


class AbsoluteToleranceMonitor(ConvergenceMonitor):
    """ConvergenceMonitor that stops on an *absolute* change, scikit-learn style.

    scikit-learn's mixtures stop when ``|L_t - L_{t-1}| < tol`` for the mean
    log-likelihood per sample L; its FactorAnalysis when the total
    log-likelihood rises by less than ``tol``.  The base monitor's relative
    test is switched off (``tol=0``); everything else (history, decrease
    warnings, NaN guard) is inherited.  ``abs_tol`` holds the tolerance.
    """

    def __init__(self, tol=1e-3, n_iter=100, verbose=False, **kwargs):
        super().__init__(tol=0.0, n_iter=n_iter, verbose=verbose, **kwargs)
        if tol < 0:
            raise ValueError(f"tol must be >= 0; got {tol}.")
        self.abs_tol = float(tol)

    def report(self, objective):
        super().report(objective)
        self.converged = (len(self.history) >= 2
                          and abs(self.history[-1] - self.history[-2]) < self.abs_tol)
        return self.converged or self.iter >= self.n_iter


# ---------------------------------------------------------------------------
# small array-API helpers
# ---------------------------------------------------------------------------

def _eye(xp, D, like):
    return xp.eye(D, dtype=like.dtype, device=like.device)


def _logsumexp_rows(xp, a):
    """log sum_k exp(a_nk) for a (N, K), max-shifted; returns (N,)."""
    a_max = xp.max(a, axis=1, keepdims=True)  # (N, 1)
    a_max = xp.where(xp.isfinite(a_max), a_max, xp.zeros_like(a_max))
    return xp.log(xp.sum(xp.exp(a - a_max), axis=1)) + a_max[:, 0]


def _inv_lower_triangular(xp, L):
    """L^{-1} for lower-triangular L (..., D, D), through a linear solve."""
    D = L.shape[-1]
    eye = _eye(xp, D, L)
    if L.ndim == 3:
        eye = xp.broadcast_to(eye, L.shape)
    return xp.linalg.solve(L, eye)


def _matrix_transpose(xp, A):
    return xp.permute_dims(A, (0, 2, 1)) if A.ndim == 3 else A.T


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


# ---------------------------------------------------------------------------
# parameterisation: precision Cholesky factors
# ---------------------------------------------------------------------------

def compute_precision_cholesky(covariances, covariance_type):
    """Upper-triangular U with Sigma^{-1} = U U^T, from the covariances.

    With Sigma = L L^T (Cholesky, L lower), Sigma^{-1} = L^{-T} L^{-1}, hence
    U = L^{-T}.  ``diag``: U = 1/sqrt(sigma^2) (K, D); ``spherical``: (K,).

    Shapes: full (K, D, D), tied (D, D), diag (K, D), spherical (K,).
    Raises ValueError when a covariance is not positive definite.
    """
    xp = get_namespace(covariances)
    if covariance_type in ("full", "tied"):
        L = _cholesky(xp, covariances, "A component covariance")
        return _matrix_transpose(xp, _inv_lower_triangular(xp, L))
    if bool(xp.any(covariances <= 0.0)):
        raise ValueError(
            "A component variance is not positive. Increase reg_covar or check the data "
            "(a collapsed component or a constant feature)."
        )
    return 1.0 / xp.sqrt(covariances)


def precision_cholesky_from_precisions(precisions, covariance_type):
    """Upper-triangular U with Lambda = U U^T, from precision matrices Lambda.

    With J the exchange matrix (reverses rows/columns), J Lambda J = C C^T
    (Cholesky, C lower) gives Lambda = (J C J)(J C J)^T and J C J is upper
    triangular: U = J C J.  ``diag``/``spherical``: U = sqrt(Lambda).
    """
    xp = get_namespace(precisions)
    if covariance_type in ("full", "tied"):
        flipped = xp.flip(precisions, axis=(-2, -1))
        C = _cholesky(xp, flipped, "A precision matrix (precisions_init)")
        return xp.flip(C, axis=(-2, -1))
    if bool(xp.any(precisions <= 0.0)):
        raise ValueError("precisions_init must be positive; got a value <= 0.")
    return xp.sqrt(precisions)


def precisions_from_cholesky(precisions_cholesky, covariance_type):
    """Lambda = U U^T (full/tied) or U^2 (diag/spherical)."""
    xp = get_namespace(precisions_cholesky)
    if covariance_type in ("full", "tied"):
        return xp.matmul(precisions_cholesky, _matrix_transpose(xp, precisions_cholesky))
    return precisions_cholesky * precisions_cholesky


def covariances_from_cholesky(precisions_cholesky, covariance_type):
    """Sigma = (U U^T)^{-1} = U^{-T} U^{-1} (full/tied) or 1/U^2."""
    xp = get_namespace(precisions_cholesky)
    if covariance_type in ("full", "tied"):
        U_inv_T = _inv_lower_triangular(xp, _matrix_transpose(xp, precisions_cholesky))  # U^{-T}
        return xp.matmul(U_inv_T, _matrix_transpose(xp, U_inv_T))
    return 1.0 / (precisions_cholesky * precisions_cholesky)


def log_det_precision_cholesky(precisions_cholesky, covariance_type, n_features):
    """log det U_k = 1/2 log det Lambda_k, shape (K,) (a scalar for ``tied``).

    full/tied: sum_d log U_dd; diag: sum_d log U_d; spherical: D log U.
    """
    xp = get_namespace(precisions_cholesky)
    if covariance_type in ("full", "tied"):
        diagonal = xp.linalg.diagonal(precisions_cholesky)  # (K, D) or (D,)
        return xp.sum(xp.log(diagonal), axis=-1)
    if covariance_type == "diag":
        return xp.sum(xp.log(precisions_cholesky), axis=1)
    return n_features * xp.log(precisions_cholesky)


# ---------------------------------------------------------------------------
# E-step
# ---------------------------------------------------------------------------

def estimate_log_gaussian_prob(X, means, precisions_cholesky, covariance_type):
    """log N(x_n | mu_k, Sigma_k), shape (N, K).

    log N = -D/2 log(2 pi) + log det U_k - 1/2 ||(x_n - mu_k) U_k||^2
    (generic array-API code, a loop over the K components for full/tied).
    """
    xp = get_namespace(X, means, precisions_cholesky)
    N, D = X.shape
    K = means.shape[0]
    log_det = log_det_precision_cholesky(precisions_cholesky, covariance_type, D)
    if covariance_type in ("full", "tied"):
        columns = []
        for k in range(K):
            U_k = precisions_cholesky[k, ...] if covariance_type == "full" else precisions_cholesky
            y = xp.matmul(X, U_k) - xp.matmul(means[k, :], U_k)  # (N, D)
            columns.append(xp.sum(y * y, axis=1))
        maha = xp.stack(columns, axis=1)  # (N, K)
    elif covariance_type == "diag":
        lam = precisions_cholesky * precisions_cholesky  # (K, D)
        maha = (xp.sum(means * means * lam, axis=1)[None, :]
                - 2.0 * xp.matmul(X, (means * lam).T)
                + xp.matmul(X * X, lam.T))  # (N, K)
    else:
        lam = precisions_cholesky * precisions_cholesky  # (K,)
        maha = ((xp.sum(means * means, axis=1) * lam)[None, :]
                - 2.0 * xp.matmul(X, means.T) * lam[None, :]
                + xp.sum(X * X, axis=1)[:, None] * lam[None, :])  # (N, K)
    return -0.5 * (D * math.log(2.0 * math.pi) + maha) + log_det


def _statistics_from_resp(xp, X, resp, covariance_type):
    """Additive statistics N_k, s_k, SS_k from responsibilities (N, K)."""
    resp_sum = xp.sum(resp, axis=0)  # (K,)
    x_sum = xp.matmul(resp.T, X)  # (K, D)
    if covariance_type == "full":
        K = resp.shape[1]
        xx_sum = xp.stack([xp.matmul((X * resp[:, k:k + 1]).T, X) for k in range(K)])  # (K, D, D)
    elif covariance_type == "tied":
        xx_sum = xp.matmul(X.T, X)  # (D, D)
    else:
        xx_sum = xp.matmul(resp.T, X * X)  # (K, D)
    return SufficientStatistics(
        resp_sum=resp_sum, x_sum=x_sum, xx_sum=xx_sum,
        n_samples=xp.asarray(float(X.shape[0]), dtype=X.dtype, device=X.device),
    )


def _e_step_generic(X, weights, means, precisions_cholesky, covariance_type):
    xp = get_namespace(X, weights, means, precisions_cholesky)
    weighted = estimate_log_gaussian_prob(X, means, precisions_cholesky, covariance_type) + xp.log(weights)
    log_p = _logsumexp_rows(xp, weighted)  # (N,)
    resp = xp.exp(weighted - log_p[:, None])  # (N, K)
    stats = _statistics_from_resp(xp, X, resp, covariance_type)
    return stats, xp.sum(log_p)


@numba.njit(cache=True, error_model="numpy", fastmath={"reassoc", "contract"})
def _full_block_resp(Y, mu_U, const, resp):  # pragma: no cover - compiled
    """Fused per-row kernel: maha, log-sum-exp, responsibilities; returns sum_n log p(x_n).

    Y (n, K*D) holds x_n [U_1 | ... | U_K]; with y_nk = Y[n, kD:(k+1)D] - mu_k U_k,
    w_nk = const_k - 1/2 ||y_nk||^2, log p(x_n) = logsumexp_k w_nk and
    resp[n, k] = exp(w_nk - log p(x_n)).
    """
    n, K = resp.shape
    D = Y.shape[1] // K
    total = 0.0
    for i in range(n):
        w_max = -np.inf
        for k in range(K):
            s = 0.0
            for d in range(D):
                v = Y[i, k * D + d] - mu_U[k * D + d]
                s += v * v
            w = const[k] - 0.5 * s
            resp[i, k] = w
            if w > w_max:
                w_max = w
        norm = 0.0
        for k in range(K):
            e = np.exp(resp[i, k] - w_max)
            resp[i, k] = e
            norm += e
        for k in range(K):
            resp[i, k] /= norm
        total += w_max + np.log(norm)
    return total


@numba.njit(cache=True, error_model="numpy")
def _packed_outer(X, out):  # pragma: no cover - compiled
    """out[n, :] = upper triangle of x_n x_n^T, row by row (x_a x_b for a <= b)."""
    n, D = X.shape
    for i in range(n):
        idx = 0
        for a in range(D):
            xa = X[i, a]
            for b in range(a, D):
                out[i, idx] = xa * X[i, b]
                idx += 1


def _e_step_full_numpy(X, weights, means, precisions_cholesky):
    """NumPy/Numba fast path of the full-covariance E-step (same math, blocked).

    For a block of rows, Y = X [U_1 | ... | U_K] (n, K*D) holds all whitened
    data from one GEMM; a fused kernel subtracts mu_k U_k, forms ||y_nk||^2,
    the log-sum-exp and r_nk.  SS_k = sum_n r_nk x_n x_n^T comes from one
    GEMM of the responsibilities against the packed products x_a x_b (a <= b),
    shape (n, D(D+1)/2), unpacked into symmetric (K, D, D) at the end.
    """
    N, D = X.shape
    K = means.shape[0]
    dtype = X.dtype
    X = np.ascontiguousarray(X)
    U_stack = np.ascontiguousarray(np.transpose(precisions_cholesky, (1, 0, 2)).reshape(D, K * D))  # (D, K*D)
    mu_U = np.einsum("kd,kde->ke", means, precisions_cholesky).reshape(K * D)  # (K*D,)
    log_det = np.sum(np.log(np.diagonal(precisions_cholesky, axis1=1, axis2=2)), axis=1)
    const = np.log(weights) + log_det - 0.5 * D * math.log(2.0 * math.pi)  # (K,)
    n_pairs = D * (D + 1) // 2
    resp_sum = np.zeros(K, dtype=dtype)
    x_sum = np.zeros((K, D), dtype=dtype)
    xx_packed = np.zeros((K, n_pairs), dtype=dtype)  # (K, D(D+1)/2)
    log_likelihood = 0.0
    n_block = max(1, min(N, _CHUNK_ROWS))
    Y_buf = np.empty((n_block, K * D), dtype=dtype)
    resp_buf = np.empty((n_block, K), dtype=dtype)
    XX_buf = np.empty((n_block, n_pairs), dtype=dtype)
    for start in range(0, N, n_block):
        Xb = X[start:start + n_block]  # (n, D)
        n = Xb.shape[0]
        Y, resp, XX = Y_buf[:n], resp_buf[:n], XX_buf[:n]
        np.matmul(Xb, U_stack, out=Y)  # (n, K*D)
        log_likelihood += _full_block_resp(Y, mu_U, const, resp)
        resp_sum += np.sum(resp, axis=0)
        x_sum += resp.T @ Xb
        _packed_outer(Xb, XX)
        xx_packed += resp.T @ XX  # (K, D(D+1)/2)
    rows, cols = np.triu_indices(D)
    xx_sum = np.empty((K, D, D), dtype=dtype)
    xx_sum[:, rows, cols] = xx_packed
    xx_sum[:, cols, rows] = xx_packed
    stats = SufficientStatistics(resp_sum=resp_sum, x_sum=x_sum, xx_sum=xx_sum,
                                 n_samples=np.asarray(float(N), dtype=dtype))
    return stats, np.asarray(log_likelihood, dtype=dtype)


def e_step(X, weights, means, precisions_cholesky, covariance_type, fast=True):
    """E-step: responsibilities r_nk and their additive statistics (PRML eq. 9.23).

    Parameters
    ----------
    X : (N, D) array
    weights : (K,) mixing proportions pi_k
    means : (K, D) component means mu_k
    precisions_cholesky : factors U_k (see :func:`compute_precision_cholesky`)
    covariance_type : {"full", "tied", "diag", "spherical"}
    fast : bool
        Use the blocked NumPy path for ``full`` on NumPy (same numbers).

    Returns
    -------
    stats : SufficientStatistics
        ``resp_sum`` N_k (K,), ``x_sum`` sum_n r_nk x_n (K, D), ``xx_sum``
        sum_n r_nk x_n x_n^T (full (K, D, D); diag/spherical (K, D) diagonal;
        tied sum_n x_n x_n^T (D, D)), ``n_samples`` N (0-d).
    log_likelihood : 0-d array
        sum_n log p(x_n), the EM bound at q = posterior.
    """
    check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    xp = get_namespace(X, weights, means, precisions_cholesky)
    if fast and covariance_type == "full" and is_numpy_namespace(xp):
        return _e_step_full_numpy(np.asarray(X), np.asarray(weights), np.asarray(means),
                                  np.asarray(precisions_cholesky))
    return _e_step_generic(X, weights, means, precisions_cholesky, covariance_type)


# ---------------------------------------------------------------------------
# M-step
# ---------------------------------------------------------------------------

def m_step(stats, covariance_type, reg_covar):
    """M-step from the statistics alone (PRML eqs. 9.24-9.27).

    N_k' = N_k + 10 eps;  pi_k = N_k' / sum_j N_j';  xbar_k = s_k / N_k';
    full:      S_k = SS_k / N_k' - xbar_k xbar_k^T + reg I          (K, D, D)
    tied:      S = (sum_n x x^T - sum_k N_k' xbar_k xbar_k^T) / sum_k N_k' + reg I   (D, D)
    diag:      s2_k = SS_k / N_k' - xbar_k^2 + reg                   (K, D)
    spherical: s2_k = mean_d(diag s2_k)                              (K,)

    Returns ``(weights, means, covariances)``.
    """
    check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    resp_sum = stats["resp_sum"]
    xp = get_namespace(resp_sum)
    N_k = resp_sum + 10.0 * _dtype_eps(resp_sum.dtype)  # (K,)
    weights = N_k / xp.sum(N_k)
    means = stats["x_sum"] / N_k[:, None]  # (K, D)
    D = means.shape[1]
    if covariance_type == "full":
        covariances = stats["xx_sum"] / N_k[:, None, None] - means[:, :, None] * means[:, None, :]
        covariances = covariances + reg_covar * _eye(xp, D, means)
        covariances = 0.5 * (covariances + _matrix_transpose(xp, covariances))
    elif covariance_type == "tied":
        mean_outer = xp.matmul((N_k[:, None] * means).T, means)  # (D, D)
        covariances = (stats["xx_sum"] - mean_outer) / xp.sum(N_k) + reg_covar * _eye(xp, D, means)
        covariances = 0.5 * (covariances + covariances.T)
    else:
        variances = stats["xx_sum"] / N_k[:, None] - means * means + reg_covar  # (K, D)
        covariances = variances if covariance_type == "diag" else xp.mean(variances, axis=1)
    return weights, means, covariances


def _dtype_eps(dtype):
    text = str(dtype)
    return float(np.finfo(np.float32).eps) if "float32" in text else float(np.finfo(np.float64).eps)


# ---------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------

class GaussianMixture(ParamsMixin):
    """Gaussian mixture fitted by exact EM, with scikit-learn's API and conventions.

    Parameters are those of ``sklearn.mixture.GaussianMixture`` (minus
    ``warm_start`` / ``verbose_interval``) plus ``dtype``.  ``init_params``
    accepts scikit-learn's ``"k-means++"`` spelling as well as ``"kmeans++"``.
    Initialisation follows scikit-learn: responsibilities from ``init_params``
    give weights/means/covariances by one M-step, then ``weights_init``,
    ``means_init`` and ``precisions_init`` (when given) replace the
    corresponding parameters.  EM stops when the mean log-likelihood per
    sample changes by less than ``tol`` (absolute), or after ``max_iter``
    iterations; the best of ``n_init`` runs is kept.  With ``reg_covar=0``
    each iteration cannot lower log p(X); a positive ``reg_covar`` (added
    after the maximisation, as in scikit-learn) can lower it by a small
    amount near the optimum.

    Fitted attributes: ``weights_`` (K,), ``means_`` (K, D), ``covariances_``,
    ``precisions_cholesky_``, ``precisions_``, ``converged_``, ``n_iter_``,
    ``lower_bound_`` (mean log-likelihood per sample of the last E-step),
    ``lower_bounds_`` (its history), ``monitor_``.
    """

    def __init__(self, n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans++", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, verbose=0,
                 dtype="float64"):
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.weights_init = weights_init
        self.means_init = means_init
        self.precisions_init = precisions_init
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype

    # -- checks ------------------------------------------------------------
    def _check_hyperparameters(self):
        check_positive_int(self.n_components, "n_components")
        check_choice(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        check_choice(self.init_params, "init_params", INIT_PARAMS)
        check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.n_init, "n_init")
        check_choice(self.dtype, "dtype", ("float64", "float32"))
        if not isinstance(self.tol, (int, float)) or self.tol < 0:
            raise ValueError(f"tol must be a number >= 0; got {self.tol!r}.")
        if not isinstance(self.reg_covar, (int, float)) or self.reg_covar < 0:
            raise ValueError(f"reg_covar must be a number >= 0; got {self.reg_covar!r}. "
                             "Use a small positive value such as 1e-6.")

    def _validate_X(self, X, fitting):
        X = check_array(X, "X", ndim=2, dtype_kind="numeric",
                        n_features=None if fitting else self.means_.shape[1])
        xp = get_namespace(X)
        dtype = getattr(xp, self.dtype) if fitting else self.means_.dtype
        if X.dtype != dtype:
            X = xp.astype(X, dtype)
        return xp, X

    def _check_initial(self, xp, X):
        K, D = self.n_components, X.shape[1]
        inits = {}
        if self.weights_init is not None:
            w = asarray(self.weights_init, like=X, dtype=X.dtype)
            if tuple(w.shape) != (K,):
                raise ValueError(f"weights_init must have shape ({K},) (n_components,); got "
                                 f"{tuple(w.shape)}.")
            if bool(xp.any(w < 0)) or bool(xp.any(w > 1)) or abs(item(xp.sum(w)) - 1.0) > 1e-6:
                raise ValueError("weights_init must be probabilities in [0, 1] summing to 1; got "
                                 f"sum {item(xp.sum(w)):.6g}. Normalise it first.")
            inits["weights"] = w
        if self.means_init is not None:
            m = asarray(self.means_init, like=X, dtype=X.dtype)
            if tuple(m.shape) != (K, D):
                raise ValueError(f"means_init must have shape ({K}, {D}) (n_components, n_features); "
                                 f"got {tuple(m.shape)}.")
            inits["means"] = m
        if self.precisions_init is not None:
            p = asarray(self.precisions_init, like=X, dtype=X.dtype)
            expected = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}[
                self.covariance_type]
            if tuple(p.shape) != expected:
                raise ValueError(f"precisions_init must have shape {expected} for covariance_type="
                                 f"{self.covariance_type!r}; got {tuple(p.shape)}.")
            if self.covariance_type in ("full", "tied"):
                asym = xp.max(xp.abs(p - _matrix_transpose(xp, p)))
                if item(asym) > 1e-8 * max(1.0, item(xp.max(xp.abs(p)))):
                    raise ValueError("precisions_init must be symmetric; symmetrise it, e.g. "
                                     "(P + P.T) / 2.")
            inits["precisions_cholesky"] = precision_cholesky_from_precisions(p, self.covariance_type)
        return inits

    # -- initialisation ----------------------------------------------------
    def _initial_resp(self, xp, X, rng):
        """Responsibilities (N, K) from ``init_params`` (scikit-learn's conventions)."""
        N = X.shape[0]
        K = self.n_components
        if self.init_params == "random":
            resp = uniform(rng, (N, K), like=X)
            return resp / xp.sum(resp, axis=1, keepdims=True)
        if self.init_params == "random_from_data":
            indices = rng.choice(N, size=K, replace=False)
        elif self.init_params in ("kmeans++", "k-means++"):
            indices = _kmeans_plusplus_indices(xp, X, K, rng)
        else:  # kmeans
            labels = _kmeans_labels(xp, X, K, rng)
            one_hot = labels[:, None] == xp.arange(K, device=X.device)[None, :]
            return xp.astype(one_hot, X.dtype)
        index = asarray(np.asarray(indices, dtype=np.int64), like=X, dtype="int64")
        rows = xp.arange(N, device=X.device)
        one_hot = rows[:, None] == index[None, :]  # (N, K): resp[index_k, k] = 1
        return xp.astype(one_hot, X.dtype)

    def _initialize(self, xp, X, rng, inits):
        """(weights, means, precisions_cholesky, covariances) of one EM start."""
        ctype = self.covariance_type
        weights = means = covariances = None
        if len(inits) < 3:
            resp = self._initial_resp(xp, X, rng)
            stats = _statistics_from_resp(xp, X, resp, ctype)
            weights, means, covariances = m_step(stats, ctype, self.reg_covar)
            # scikit-learn keeps N_k / N here (not renormalised)
            weights = (stats["resp_sum"] + 10.0 * _dtype_eps(X.dtype)) / X.shape[0]
        weights = inits.get("weights", weights)
        means = inits.get("means", means)
        if "precisions_cholesky" in inits:
            precisions_cholesky = inits["precisions_cholesky"]
            covariances = None
        else:
            precisions_cholesky = compute_precision_cholesky(covariances, ctype)
        return weights, means, precisions_cholesky, covariances

    # -- fit -----------------------------------------------------------------
    def fit(self, X, y=None):
        """Estimate the parameters by EM; returns ``self``."""
        self._check_hyperparameters()
        xp, X = self._validate_X(X, fitting=True)
        N, D = X.shape
        K = self.n_components
        if N < 2:
            raise ValueError(f"X must have at least 2 samples to fit a GaussianMixture; got {N}.")
        if N < K:
            raise ValueError(f"n_components={K} must be <= n_samples={N}: every component needs "
                             "data. Use fewer components or more samples.")
        inits = self._check_initial(xp, X)
        rng = as_generator(self.random_state)
        ctype = self.covariance_type
        reg = float(self.reg_covar)

        # EM is translation-equivariant: fit on X - c (c = data mean) so the
        # raw second moments SS_k lose no digits to a large offset.
        center = xp.mean(X, axis=0)  # (D,)
        Xc = X - center
        if "means" in inits:
            inits["means"] = inits["means"] - center

        def e_step_fn(params):
            weights, means, prec_chol, _ = params
            stats, log_likelihood = e_step(Xc, weights, means, prec_chol, ctype)
            return stats, item(log_likelihood) / N

        def m_step_fn(stats, params):
            weights, means, covariances = m_step(stats, ctype, reg)
            return weights, means, compute_precision_cholesky(covariances, ctype), covariances

        best = None
        for _ in range(self.n_init):
            start = self._initialize(xp, Xc, rng, inits)
            monitor = AbsoluteToleranceMonitor(tol=self.tol, n_iter=self.max_iter,
                                               verbose=bool(self.verbose))
            (weights, means, prec_chol, covariances), monitor = run_em(
                e_step_fn, m_step_fn, start, monitor)
            lower_bound = monitor.history[-1]
            if best is None or lower_bound > best[0]:
                best = (lower_bound, weights, means + center, covariances, prec_chol, monitor)
        (self.lower_bound_, self.weights_, self.means_, self.covariances_,
         self.precisions_cholesky_, self.monitor_) = best
        self.precisions_ = precisions_from_cholesky(self.precisions_cholesky_, ctype)
        self.converged_ = bool(self.monitor_.converged)
        self.n_iter_ = int(self.monitor_.iter)
        self.lower_bounds_ = list(self.monitor_.history)
        if not self.converged_:
            warnings.warn(f"GaussianMixture did not converge in max_iter={self.max_iter} "
                          "iterations; increase max_iter or tol.", RuntimeWarning, stacklevel=2)
        return self

    # -- inference -------------------------------------------------------------
    def _check_fitted(self):
        check_is_fitted(self, ["weights_", "means_", "precisions_cholesky_"])

    def _weighted_log_prob(self, X):
        xp, X = self._validate_X(X, fitting=False)
        log_prob = estimate_log_gaussian_prob(X, self.means_, self.precisions_cholesky_,
                                              self.covariance_type)
        return xp, log_prob + xp.log(self.weights_)  # (N, K)

    def score_samples(self, X):
        """log p(x_n) = logsumexp_k (log pi_k + log N(x_n | mu_k, Sigma_k)), shape (N,)."""
        self._check_fitted()
        xp, weighted = self._weighted_log_prob(X)
        return _logsumexp_rows(xp, weighted)

    def score(self, X, y=None):
        """Mean log-likelihood per sample, (1/N) sum_n log p(x_n) (a float)."""
        self._check_fitted()
        xp = get_namespace(self.means_)
        return item(xp.mean(self.score_samples(X)))

    def predict_proba(self, X):
        """Responsibilities r_nk = p(k | x_n), shape (N, K)."""
        self._check_fitted()
        xp, weighted = self._weighted_log_prob(X)
        return xp.exp(weighted - _logsumexp_rows(xp, weighted)[:, None])

    def predict(self, X):
        """argmax_k r_nk, shape (N,)."""
        self._check_fitted()
        xp, weighted = self._weighted_log_prob(X)
        return xp.argmax(weighted, axis=1)

    def sample(self, n_samples=1, random_state=None):
        """Draw ``(X, y)``: counts n_k ~ Mult(n, pi), x = mu_k + L_k eps, Sigma_k = L_k L_k^T.

        Components appear in blocks (y sorted), like scikit-learn.
        """
        self._check_fitted()
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = as_generator(random_state)
        xp = get_namespace(self.means_)
        K, D = self.means_.shape
        counts = rng.multinomial(n_samples, to_numpy(self.weights_).astype(np.float64) /
                                 float(np.sum(to_numpy(self.weights_))))
        covariances = covariances_from_cholesky(self.precisions_cholesky_, self.covariance_type)
        blocks, labels = [], []
        for k in range(K):
            n_k = int(counts[k])
            if n_k == 0:
                continue
            eps = normal(rng, (n_k, D), like=self.means_)  # (n_k, D)
            if self.covariance_type in ("full", "tied"):
                cov_k = covariances[k, ...] if self.covariance_type == "full" else covariances
                L_k = xp.linalg.cholesky(cov_k)
                x = self.means_[k, :] + xp.matmul(eps, L_k.T)
            elif self.covariance_type == "diag":
                x = self.means_[k, :] + eps * xp.sqrt(covariances[k, :])
            else:
                x = self.means_[k, :] + eps * xp.sqrt(covariances[k])
            blocks.append(x)
            labels.append(xp.full((n_k,), k, dtype=xp.int64, device=self.means_.device))
        return xp.concat(blocks, axis=0), xp.concat(labels, axis=0)

    def _n_parameters(self):
        K, D = self.means_.shape
        cov_params = {"full": K * D * (D + 1) / 2, "tied": D * (D + 1) / 2,
                      "diag": K * D, "spherical": K}[self.covariance_type]
        return int(cov_params + K * D + K - 1)

    def bic(self, X):
        """Bayesian information criterion, -2 log p(X) + n_params log N (lower is better)."""
        N = X.shape[0]
        return -2.0 * self.score(X) * N + self._n_parameters() * math.log(N)

    def aic(self, X):
        """Akaike information criterion, -2 log p(X) + 2 n_params (lower is better)."""
        return -2.0 * self.score(X) * X.shape[0] + 2.0 * self._n_parameters()


# ---------------------------------------------------------------------------
# k-means initialisation helpers (own implementation; Arthur & Vassilvitskii 2007)
# ---------------------------------------------------------------------------

def _squared_distances(xp, X, centers):
    """||x_n - c_k||^2, shape (N, K), clipped at 0."""
    d2 = (xp.sum(X * X, axis=1)[:, None] - 2.0 * xp.matmul(X, centers.T)
          + xp.sum(centers * centers, axis=1)[None, :])
    return xp.maximum(d2, xp.zeros_like(d2))


def _kmeans_plusplus_indices(xp, X, K, rng):
    """k-means++ seeding: each new center drawn with probability ~ D(x)^2."""
    N = X.shape[0]
    indices = [int(rng.integers(0, N))]
    min_d2 = _squared_distances(xp, X, X[indices[0]:indices[0] + 1, :])[:, 0]  # (N,)
    for _ in range(1, K):
        total = item(xp.sum(min_d2))
        if total <= 0.0:  # all remaining points coincide with centers
            remaining = np.setdiff1d(np.arange(N), np.asarray(indices))
            indices.append(int(rng.choice(remaining)))
        else:
            positive = min_d2 > 0.0
            log_p = xp.where(positive, xp.log(xp.where(positive, min_d2, xp.ones_like(min_d2))),
                             xp.full_like(min_d2, -math.inf))  # -inf where the distance is 0
            indices.append(int(item(categorical(rng, log_p))))
        d2 = _squared_distances(xp, X, X[indices[-1]:indices[-1] + 1, :])[:, 0]
        min_d2 = xp.minimum(min_d2, d2)
    return indices


def _kmeans_labels(xp, X, K, rng, max_iter=100):
    """Lloyd's k-means from a k-means++ start; returns labels (N,)."""
    index = asarray(np.asarray(_kmeans_plusplus_indices(xp, X, K, rng), dtype=np.int64),
                    like=X, dtype="int64")
    centers = xp.take(X, index, axis=0)  # (K, D)
    labels = None
    for _ in range(max_iter):
        new_labels = xp.argmin(_squared_distances(xp, X, centers), axis=1)
        if labels is not None and bool(xp.all(new_labels == labels)):
            break
        labels = new_labels
        one_hot = xp.astype(labels[:, None] == xp.arange(K, device=X.device)[None, :], X.dtype)
        counts = xp.sum(one_hot, axis=0)  # (K,)
        sums = xp.matmul(one_hot.T, X)  # (K, D)
        safe = xp.where(counts > 0, counts, xp.ones_like(counts))
        centers = xp.where(counts[:, None] > 0, sums / safe[:, None], centers)
    return labels
