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

The Gaussian maths (log-density, statistics, M-step, parameterisation) lives
in :mod:`lvm_core.families.gaussian`; the blocked full-covariance E-step in
:mod:`lvm_core.kernels.gaussian_numba`.  Statistics are taken about a fixed
reference point c (the data mean, computed once per fit) so that the raw
second moments lose no digits to an offset and the statistics of chunks add
up exactly: ``fit`` accepts, besides arrays, an ``h5py.Dataset`` or any
array-like with row slicing (streamed in blocks of ``chunk_size`` rows,
memory O(block)), a dask array or a dask ``client`` (E-steps on the
workers, see :mod:`lvm_core.em`); ``partial_fit`` runs online EM (Cappe &
Moulines 2009).  The default initialisation is scikit-learn's k-means
(greedy k-means++ seeding, Arthur & Vassilvitskii 2007; Lloyd 1982).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..backend import asarray, get_namespace, is_numpy_namespace, item, to_numpy
from ..em import (ConvergenceMonitor, SufficientStatistics, check_chunk_size, check_row_source,
                  default_client, is_in_memory_array, make_source, row_bounds, run_em,
                  step_size_schedule, stepwise_update, streamed_mean, take_rows)
from ..families import gaussian as gauss
from ..families._common import init_rows, kmeans_plusplus, logsumexp
from ..families.gaussian import (compute_precision_cholesky, covariances_from_cholesky,
                                 log_det_precision_cholesky, precision_cholesky_from_precisions,
                                 precisions_from_cholesky)
from ..random import as_generator, normal, uniform
from ..validation import (
    check_array,
    check_magnitude,
    check_choice,
    check_is_fitted,
    check_positive_int,
)
from .base import ClusterMixin, ParamsMixin, is_in_memory_input

__all__ = [
    "GaussianMixture",
    "e_step",
    "m_step",
    "estimate_log_gaussian_prob",
    "compute_precision_cholesky",
    "precision_cholesky_from_precisions",
    "log_det_precision_cholesky",
    "AbsoluteToleranceMonitor",
    "kmeans_labels",
    "precisions_from_cholesky",
    "covariances_from_cholesky",
]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
INIT_PARAMS = ("kmeans++", "k-means++", "random_from_data", "random", "kmeans")
INIT_MAX_ROWS = 100_000  # initialisations use at most this many (randomly chosen) rows


class AbsoluteToleranceMonitor(ConvergenceMonitor):
    """ConvergenceMonitor that stops on an *absolute* change, scikit-learn style.

    scikit-learn's mixtures stop when ``|L_t - L_{t-1}| < tol`` for the mean
    log-likelihood per sample L; its FactorAnalysis when the total
    log-likelihood rises by less than ``tol``.  The base monitor's relative
    test is switched off (``tol=0``); everything else (history, decrease
    warnings, NaN guard) is inherited.  ``abs_tol`` holds the tolerance.
    ``previous``: the objective before the first iteration (a warm start's last
    one, as scikit-learn compares with), or None.
    """

    def __init__(self, tol=1e-3, n_iter=100, verbose=False, previous=None, **kwargs):
        super().__init__(tol=0.0, n_iter=n_iter, verbose=verbose, **kwargs)
        if tol < 0:
            raise ValueError(f"tol must be >= 0; got {tol}.")
        self.abs_tol = float(tol)
        self.previous = previous

    def report(self, objective):
        super().report(objective)
        last = self.history[-2] if len(self.history) >= 2 else self.previous
        self.converged = last is not None and abs(self.history[-1] - last) < self.abs_tol
        return self.converged or self.iter >= self.n_iter


def estimate_log_gaussian_prob(X, means, precisions_cholesky, covariance_type):
    """log N(x_n | mu_k, Sigma_k), shape (N, K) (:func:`lvm_core.families.gaussian.log_prob`)."""
    return gauss.log_prob(X, means, precisions_cholesky, covariance_type)


def _statistics_from_resp(xp, X, resp, covariance_type, shift=None):
    """Additive statistics N_k, s_k, SS_k (about ``shift``) from responsibilities (N, K)."""
    stats = SufficientStatistics(gauss.statistics(X, resp, covariance_type, shift))
    stats["n_samples"] = xp.asarray(float(X.shape[0]), dtype=X.dtype, device=X.device)
    return stats


def e_step(X, weights, means, precisions_cholesky, covariance_type, fast=True, shift=None):
    """E-step: responsibilities r_nk and their additive statistics (PRML eq. 9.23).

        log r_nk = log pi_k + log N(x_n | mu_k, Sigma_k) - log p(x_n)

    Parameters
    ----------
    X : (N, D) array
    weights : (K,) mixing proportions pi_k
    means : (K, D) component means mu_k, in the coordinates of ``X - shift``
    precisions_cholesky : factors U_k (see :func:`compute_precision_cholesky`)
    covariance_type : {"full", "tied", "diag", "spherical"}
    fast : bool
        Use the blocked NumPy kernel for ``full`` on NumPy (same numbers).
    shift : (D,) array or None
        The reference point c of the statistics (rows are taken as x - c).

    Returns
    -------
    stats : SufficientStatistics
        ``resp_sum`` N_k (K,), ``x_sum`` sum_n r_nk y_n (K, D), ``xx_sum``
        sum_n r_nk y_n y_n^T (full (K, D, D); diag/spherical (K, D) diagonal;
        tied sum_n y_n y_n^T (D, D)), ``n_samples`` N (0-d); y_n = x_n - c.
    log_likelihood : 0-d array
        sum_n log p(x_n), the EM bound at q = posterior.
    """
    check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    xp = get_namespace(X, weights, means, precisions_cholesky)
    if fast and covariance_type == "full" and is_numpy_namespace(xp):
        from ..kernels.gaussian_numba import full_e_step

        resp_sum, x_sum, xx_sum, ll = full_e_step(
            np.asarray(X), np.asarray(weights), np.asarray(means), np.asarray(precisions_cholesky),
            None if shift is None else np.asarray(shift))
        stats = SufficientStatistics(resp_sum=resp_sum, x_sum=x_sum, xx_sum=xx_sum,
                                     n_samples=np.asarray(float(X.shape[0]), dtype=X.dtype))
        return stats, np.asarray(ll, dtype=X.dtype)
    Y = X if shift is None else X - shift[None, :]
    weighted = gauss.log_prob(Y, means, precisions_cholesky, covariance_type) + xp.log(weights)
    log_p = logsumexp(weighted, axis=1)  # (N,)
    resp = xp.exp(weighted - log_p[:, None])  # (N, K)
    return _statistics_from_resp(xp, Y, resp, covariance_type), xp.sum(log_p)


# ---------------------------------------------------------------------------
# M-step
# ---------------------------------------------------------------------------

def m_step(stats, covariance_type, reg_covar):
    """M-step from the statistics alone (PRML eqs. 9.24-9.27); see
    :func:`lvm_core.families.gaussian.m_step`.  Returns ``(weights, means, covariances)``."""
    check_choice(covariance_type, "covariance_type", COVARIANCE_TYPES)
    return gauss.m_step(stats, covariance_type, reg_covar)


def _dtype_eps(dtype):
    return float(np.finfo(np.float32).eps) if "float32" in str(dtype) else float(np.finfo(np.float64).eps)


def _reference_point(mean):
    """The statistics' reference point c: the data mean rounded to float32
    precision, so that a mean summed in another order (by blocks, on workers)
    gives the same c and the fits agree to round-off."""
    xp = get_namespace(mean)
    return xp.astype(xp.astype(mean, xp.float32), mean.dtype)


def _e_step_chunk(chunk, extra, params, covariance_type, shift, dtype, n_features, validate):
    """E-step of one block of rows (run in process, per streamed block, or on a dask worker)."""
    if validate:
        if not hasattr(chunk, "dtype") or not is_in_memory_array(chunk):
            chunk = np.asarray(chunk)
        chunk = check_array(chunk, "X", ndim=2, dtype_kind="numeric", n_features=n_features)
    xp = get_namespace(chunk)
    if chunk.dtype != getattr(xp, dtype):
        chunk = xp.astype(chunk, getattr(xp, dtype))
    weights, means, prec_chol = params
    stats, log_likelihood = e_step(chunk, weights, means, prec_chol, covariance_type, shift=shift)
    return stats, item(log_likelihood)


# ---------------------------------------------------------------------------
# scikit-learn's k-means initialisation
# ---------------------------------------------------------------------------

class LegacyRandomState:
    """The ``numpy.random.RandomState`` scikit-learn would draw from for ``random_state``,
    made on first use (``get()``) and then kept: a seed gives ``RandomState(seed)``, a
    RandomState is used as is, anything else (None, a Generator) seeds a new one from
    ``rng`` (one draw, taken only when an initialisation needs it)."""

    def __init__(self, random_state, rng):
        self.random_state, self.rng, self.state = random_state, rng, None

    def get(self):
        if self.state is None:
            seed = self.random_state
            if isinstance(seed, np.random.RandomState):
                self.state = seed
            elif isinstance(seed, (int, np.integer)) and not isinstance(seed, bool):
                self.state = np.random.RandomState(int(seed))
            else:
                self.state = np.random.RandomState(int(self.rng.integers(0, 2**32 - 1)))
        return self.state


def _squared_distances_to(C, X, x_sq):
    """||c_m - x_n||^2 = ||c_m||^2 - 2 c_m . x_n + ||x_n||^2, shape (M, N), clipped at 0."""
    d = -2.0 * (C @ X.T)
    d += np.einsum("md,md->m", C, C)[:, None]
    d += x_sq[None, :]
    return np.maximum(d, 0.0, out=d)


def kmeans_labels(X, K, random_state, max_iter=300, tol=1e-4):
    """Labels (N,) of k-means on the host rows X (N, D), as ``KMeans(n_clusters=K, n_init=1,
    random_state=random_state)`` of scikit-learn computes them (its GaussianMixture's
    default initialisation), drawing the same numbers from the RandomState.

    Seeding: greedy k-means++ (Arthur & Vassilvitskii 2007, sec. 5): the first centre
    is a uniformly drawn row; each next centre is the best of 2 + floor(ln K)
    candidates drawn with p(n) proportional to D(x_n)^2 (D the distance to the
    nearest centre so far), the best being the one that minimises the potential
    sum_n min(D(x_n)^2, ||x_n - candidate||^2).

    Lloyd iterations (Lloyd 1982) on the centred rows: l_n = argmin_k ||x_n - c_k||^2,
    c_k = mean of the rows with l_n = k; a cluster left empty takes the row farthest
    from its centre.  They stop when the labels repeat, or when
    sum_k ||c_k^new - c_k||^2 <= tol * mean_d var(x_d); in the latter case the labels
    are those of the final centres.
    """
    X = np.asarray(X)
    X = X - X.mean(axis=0)  # (N, D)
    N, D = X.shape
    x_sq = np.einsum("nd,nd->n", X, X)  # (N,)
    weight = np.ones(N, dtype=X.dtype)
    # seeding
    n_trials = 2 + int(np.log(K))
    centers = np.empty((K, D), dtype=X.dtype)
    first = random_state.choice(N, p=weight / weight.sum())
    centers[0] = X[first]
    closest = _squared_distances_to(X[first][None, :], X, x_sq)[0]  # (N,)
    potential = closest @ weight
    for c in range(1, K):
        draws = random_state.uniform(size=n_trials) * potential
        candidates = np.minimum(np.searchsorted(np.cumsum(weight * closest), draws), N - 1)
        d2 = np.minimum(closest, _squared_distances_to(X[candidates], X, x_sq))  # (trials, N)
        potentials = d2 @ weight
        best = int(np.argmin(potentials))
        potential, closest = potentials[best], d2[best]
        centers[c] = X[candidates[best]]
    # Lloyd
    tol = float(np.mean(np.var(X, axis=0))) * tol
    labels_old = np.full(N, -1)
    strict = False
    for _ in range(max_iter):
        labels = np.argmin(_squared_distances_to(centers, X, x_sq), axis=0)  # (N,)
        counts = np.bincount(labels, minlength=K).astype(X.dtype)  # (K,)
        sums = np.zeros((K, D), dtype=X.dtype)
        np.add.at(sums, labels, X)
        empty = np.flatnonzero(counts == 0)
        if empty.size:
            far = np.argsort(-np.einsum("nd,nd->n", X - centers[labels], X - centers[labels]),
                             kind="stable")[:empty.size]
            for k, n in zip(empty, far):
                sums[labels[n]] -= X[n]
                counts[labels[n]] -= 1.0
                sums[k], counts[k] = X[n], 1.0
        new_centers = sums / counts[:, None]
        shift = float(np.sum((new_centers - centers) ** 2))
        centers = new_centers
        if np.array_equal(labels, labels_old):
            strict = True
            break
        if shift <= tol:
            break
        labels_old = labels
    if not strict:
        labels = np.argmin(_squared_distances_to(centers, X, x_sq), axis=0)
    return labels


def _check_some_density(xp, weighted, owner):
    """ValueError when a row has log pi_k + log p(x | k) = -inf for every k (or NaN): its
    responsibilities r_nk = p(k | x_n) are 0/0, undefined."""
    best = xp.max(weighted, axis=1)  # (N,)
    bad = ~(best > -math.inf)
    if bool(xp.any(bad)):
        rows = np.flatnonzero(to_numpy(bad))[:5].tolist()
        raise ValueError(
            f"X has rows with zero density under every component of the {owner} (log p = "
            f"-inf in floating point), e.g. rows {rows}: their posterior p(k | x) is "
            "undefined. Check the scale of X and of the (hand-set) parameters; score_samples "
            "gives their log-density (-inf)."
        )


# ---------------------------------------------------------------------------
# the estimator
# ---------------------------------------------------------------------------

class GaussianMixture(ClusterMixin, ParamsMixin):
    """Gaussian mixture fitted by exact EM, with scikit-learn's API and conventions.

    Parameters are those of ``sklearn.mixture.GaussianMixture`` (minus
    ``verbose_interval``) plus ``dtype``.  ``init_params``
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

    Parameters
    ----------
    n_components : int
        Number of components K.
    covariance_type : {"full", "tied", "diag", "spherical"}
        Form of the covariances.
    tol : float
        Stop when the mean log-likelihood per sample changes by less than this.
    reg_covar : float
        Added to the diagonal of every covariance after each M-step.
    max_iter : int
        Maximum number of EM iterations per start.
    n_init : int
        Number of starts; the best final log-likelihood is kept.
    init_params : {"kmeans", "kmeans++", "k-means++", "random", "random_from_data"}
        How the starting responsibilities are drawn (initialisations see at
        most 100,000 randomly chosen rows).  The default ``"kmeans"`` is
        scikit-learn's default: the labels of its ``KMeans(n_init=1)`` run
        (:func:`kmeans_labels`), drawn from the ``RandomState`` scikit-learn
        makes of ``random_state``, so that the same data and seed give the same
        fit as ``sklearn.mixture.GaussianMixture``.
    weights_init, means_init, precisions_init : arrays, optional
        Starting parameters replacing those from ``init_params``.
    random_state : int, numpy Generator or None
        Seed of the initialisation.
    verbose : int
        Print the objective of every iteration when > 0.
    dtype : {"float64", "float32"}
        Floating type of the fit.
    warm_start : bool
        False (default): every ``fit`` starts from ``init_params``.  True: a
        ``fit`` of a fitted model (same K and D) starts from its current
        parameters, with one start (``n_init`` is ignored), as scikit-learn's.

    ``fit`` also takes an ``h5py.Dataset`` (streamed by ``chunk_size`` rows),
    a dask array or a dask ``client``; ``partial_fit`` runs online EM.

    Fitted attributes: ``weights_`` (K,), ``means_`` (K, D), ``covariances_``,
    ``precisions_cholesky_``, ``precisions_``, ``converged_``, ``n_iter_``,
    ``lower_bound_`` (mean log-likelihood per sample of the last E-step),
    ``lower_bounds_`` (its history), ``monitor_``, ``n_features_in_`` (and
    ``feature_names_in_`` for a DataFrame).  ``fit_predict(X)`` fits, then labels X.
    """

    _estimator_type = "density_estimator"  # scikit-learn's mixtures are density estimators
    _array_attributes = ("weights_", "means_", "covariances_", "precisions_cholesky_",
                         "precisions_")

    def __init__(self, n_components=1, covariance_type="full", tol=1e-3, reg_covar=1e-6,
                 max_iter=100, n_init=1, init_params="kmeans", weights_init=None,
                 means_init=None, precisions_init=None, random_state=None, verbose=0,
                 dtype="float64", warm_start=False):
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
        self.warm_start = warm_start

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
        if fitting:
            X = self._validate_data(X, reset=True, ndim=2, dtype_kind="numeric")
        else:
            X = self._validate_data(X, reset=False, ndim=2, dtype_kind="numeric",
                                    n_features=self.means_.shape[1])
            # beyond this every log-density is -inf and the responsibilities 0/0
            check_magnitude(X, "X", dtype=self.means_.dtype)
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
                asym = xp.max(xp.abs(p - xp.matrix_transpose(p)))
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
            indices = kmeans_plusplus(X, K, rng)
        else:  # kmeans: scikit-learn's labels, drawn from its RandomState
            labels = kmeans_labels(to_numpy(X), K, self._legacy_random_state.get())
            labels = asarray(labels.astype(np.int64), like=X, dtype="int64")
            one_hot = labels[:, None] == xp.arange(K, device=X.device)[None, :]
            return xp.astype(one_hot, X.dtype)
        index = asarray(np.asarray(indices, dtype=np.int64), like=X, dtype="int64")
        rows = xp.arange(N, device=X.device)
        one_hot = rows[:, None] == index[None, :]  # (N, K): resp[index_k, k] = 1
        return xp.astype(one_hot, X.dtype)

    def _initialize(self, xp, X, rng, inits):
        """(weights, means, precisions_cholesky, covariances) of one EM start; X (n, D) are the
        (shifted) rows the initialisation sees."""
        ctype = self.covariance_type
        weights = means = covariances = None
        if len(inits) < 3:
            if X.shape[0] < self.n_components:
                raise ValueError(f"n_components={self.n_components} must be <= n_samples="
                                 f"{X.shape[0]}: every component needs data. Use fewer "
                                 "components or more samples.")
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

    # -- data ----------------------------------------------------------------
    def _source(self, X, chunk_size, client):
        """(xp, source of row blocks, N, D, in_memory X or None)."""
        chunk_size = check_chunk_size(chunk_size)
        client = default_client(client, X)
        if client is None and chunk_size is None and is_in_memory_input(X):
            xp, X = self._validate_X(X, fitting=True)
            N, D = X.shape
            return xp, make_source(X, [(0, N)]), N, D, X
        if is_in_memory_input(X):
            xp, X = self._validate_X(X, fitting=True)
        N, D = check_row_source(X)
        self.n_features_in_ = D
        bounds = row_bounds(N, chunk_size if chunk_size is not None else
                            (N if client is None else -(-N // 8)))
        return np, make_source(X, bounds, client=client), N, D, X

    def _fit_options(self, D, shift, in_memory):
        return dict(covariance_type=self.covariance_type, shift=shift, dtype=self.dtype,
                    n_features=D, validate=not in_memory)

    def _finish(self, weights, means, prec_chol, covariances, shift):
        ctype = self.covariance_type
        self.weights_ = weights
        self.means_ = means + shift
        self.precisions_cholesky_ = prec_chol
        self.covariances_ = (covariances if covariances is not None
                             else covariances_from_cholesky(prec_chol, ctype))
        self.precisions_ = precisions_from_cholesky(prec_chol, ctype)

    # -- fit -----------------------------------------------------------------
    def fit(self, X, y=None, chunk_size=None, client=None):
        """Estimate the parameters by EM; returns ``self``.

        Parameters
        ----------
        X : (N, D) array, array-like with ``shape`` and row slicing, or dask array
            The data.  An ``h5py.Dataset`` (or any such array-like) is streamed
            in blocks of ``chunk_size`` rows, never loaded whole.
        y : ignored
        chunk_size : int, optional
            Rows per block of the E-step (out-of-core, or per dask task).
        client : dask.distributed.Client, optional
            Run the E-steps on this cluster's workers (the default client is
            used for a dask array).  The result equals the in-process fit up
            to round-off.
        """
        self._check_hyperparameters()
        xp, source, N, D, X_mem = self._source(X, chunk_size, client)
        K = self.n_components
        if N < 2:
            raise ValueError(f"X must have at least 2 samples to fit a GaussianMixture; got "
                             f"n_samples={N}. Pass more data.")
        if N < K:
            raise ValueError(f"n_components={K} must be <= n_samples={N}: every component needs "
                             "data. Use fewer components or more samples.")
        in_memory = X_mem is not None and len(getattr(source, "bounds", ())) == 1 \
            and not hasattr(source, "client")
        like = X_mem if X_mem is not None and is_in_memory_array(X_mem) else \
            np.zeros((1, D), dtype=self.dtype)
        inits = self._check_initial(xp, like)
        rng = as_generator(self.random_state)
        ctype = self.covariance_type
        reg = float(self.reg_covar)

        # EM is translation-equivariant: statistics about c = the data mean, so
        # the raw second moments SS_k lose no digits to a large offset.
        center = _reference_point(xp.mean(X_mem, axis=0) if in_memory else
                                  asarray(streamed_mean(source, self.dtype), like=like))  # (D,)
        if "means" in inits:
            inits["means"] = inits["means"] - center
        options = self._fit_options(D, center if in_memory else to_numpy(center), in_memory)

        def e_step_fn(params):
            weights, means, prec_chol, _ = params
            stats, log_likelihood = source.map_reduce(_e_step_chunk, (weights, means, prec_chol),
                                                      **options)
            return stats, float(log_likelihood) / N

        def m_step_fn(stats, params):
            weights, means, covariances = m_step(stats, ctype, reg)
            return weights, means, compute_precision_cholesky(covariances, ctype), covariances

        warm = self._warm_start_params(like, K, D, center)
        best = None
        self._legacy_random_state = LegacyRandomState(self.random_state, rng)
        try:
            for _ in range(1 if warm is not None else self.n_init):
                if warm is not None:
                    start = warm
                else:
                    X_init = self._init_rows(xp, X, X_mem, in_memory, source, N, rng, center) \
                        if len(inits) < 3 else None
                    start = self._initialize(xp, X_init, rng, inits)
                monitor = AbsoluteToleranceMonitor(
                    tol=self.tol, n_iter=self.max_iter, verbose=bool(self.verbose),
                    previous=getattr(self, "lower_bound_", None) if warm is not None else None)
                params, monitor = run_em(e_step_fn, m_step_fn, start, monitor)
                if best is None or monitor.history[-1] > best[0]:
                    best = (monitor.history[-1], params, monitor)
        finally:
            source.close()
            del self._legacy_random_state
        self.lower_bound_, params, self.monitor_ = best
        self._finish(*params, shift=center)
        self.converged_ = bool(self.monitor_.converged)
        self.n_iter_ = int(self.monitor_.iter)
        self.lower_bounds_ = list(self.monitor_.history)
        if not self.converged_:
            warnings.warn(f"GaussianMixture did not converge in max_iter={self.max_iter} "
                          "iterations; increase max_iter or tol.", RuntimeWarning, stacklevel=2)
        return self

    def _warm_start_params(self, like, K, D, center):
        """The start (weights, means - c, precisions_cholesky, covariances) of a warm start,
        or None (``warm_start`` off, not fitted, or fitted with another K or D)."""
        means = getattr(self, "means_", None)
        if not self.warm_start or means is None or tuple(means.shape) != (K, D) \
                or getattr(self, "precisions_cholesky_", None) is None:
            return None
        dtype = str(getattr(like, "dtype", self.dtype)).rsplit(".", 1)[-1]

        def on_data(a):
            return asarray(to_numpy(a), like=like, dtype=dtype)

        covariances = getattr(self, "covariances_", None)
        return (on_data(self.weights_), on_data(means) - center,
                on_data(self.precisions_cholesky_),
                None if covariances is None else on_data(covariances))

    def _init_rows(self, xp, X, X_mem, in_memory, source, N, rng, center):
        """The shifted rows an initialisation sees: all rows, or INIT_MAX_ROWS random ones."""
        rows = init_rows(N, INIT_MAX_ROWS, rng)
        if in_memory:
            X_init = X_mem if rows is None else xp.take(
                X_mem, asarray(np.asarray(rows, dtype=np.int64), like=X_mem, dtype="int64"), axis=0)
        else:
            X_init = take_rows(X, rows, getattr(source, "bounds", row_bounds(N, 65536)),
                               dtype=self.dtype)
            X_init = check_array(X_init, "X", ndim=2, dtype_kind="numeric")
        return X_init - center

    def partial_fit(self, X, y=None, step_size=None, decay=0.6):
        """One step of online EM on a chunk of data (Cappe & Moulines 2009).

        s_t = (1 - rho_t) s_{t-1} + rho_t S(X_t), then the M-step from s_t, with
        rho_t = ``step_size`` or (t + 1)^(-decay) (t = 0, 1, ... counts the calls;
        the first call uses rho = 1).  With ``step_size=1`` one call is exactly
        one EM iteration from the current parameters.  The first call
        initialises the model from its chunk (as ``fit`` does) unless it is
        fitted; the statistics' reference point is the first chunk's mean.
        Returns ``self``.
        """
        self._check_hyperparameters()
        ctype = self.covariance_type
        if getattr(self, "online_shift_", None) is None:
            xp, X = self._validate_X(X, fitting=getattr(self, "means_", None) is None)
            self.online_shift_ = _reference_point(xp.mean(X, axis=0))
            self.online_stats_ = None
            self.online_steps_ = 0
            if getattr(self, "means_", None) is None:
                inits = self._check_initial(xp, X)
                if "means" in inits:
                    inits["means"] = inits["means"] - self.online_shift_
                rng = as_generator(self.random_state)
                self._legacy_random_state = LegacyRandomState(self.random_state, rng)
                try:
                    params = self._initialize(xp, X - self.online_shift_, rng, inits)
                finally:
                    del self._legacy_random_state
                self._finish(*params, shift=self.online_shift_)
        else:
            xp, X = self._validate_X(X, fitting=False)
        shift = self.online_shift_
        stats, log_likelihood = e_step(X, self.weights_, self.means_ - shift,
                                       self.precisions_cholesky_, ctype, shift=shift)
        rho = step_size_schedule(self.online_steps_, decay) if step_size is None else float(step_size)
        if not 0.0 < rho <= 1.0:
            raise ValueError(f"step_size must be in (0, 1]; got {step_size}.")
        self.online_stats_ = stepwise_update(self.online_stats_, stats, rho)
        weights, means, covariances = m_step(self.online_stats_, ctype, float(self.reg_covar))
        self._finish(weights, means, compute_precision_cholesky(covariances, ctype), covariances,
                     shift=shift)
        self.online_steps_ += 1
        self.lower_bound_ = item(log_likelihood) / X.shape[0]
        return self

    # -- inference -------------------------------------------------------------
    def _check_fitted(self):
        check_is_fitted(self, ["weights_", "means_", "precisions_cholesky_"])
        prec = {"full": lambda K, D: (K, D, D), "tied": lambda K, D: (D, D),
                "diag": lambda K, D: (K, D), "spherical": lambda K, D: (K,)}
        ctype = check_choice(self.covariance_type, "covariance_type", COVARIANCE_TYPES)
        self._check_parameter_shapes(("means_", 2), lambda K, D: {
            "weights_": (K,), "precisions_cholesky_": prec[ctype](K, D)})
        xp = get_namespace(self.weights_)
        U = self.precisions_cholesky_
        diag = U if ctype in ("diag", "spherical") else xp.linalg.diagonal(U)
        if not (bool(xp.all(self.weights_ >= 0)) and bool(xp.any(self.weights_ > 0))
                and bool(xp.all(diag > 0))):
            raise ValueError(
                "GaussianMixture.weights_ must be non-negative (not all 0) and the diagonal "
                "of precisions_cholesky_ positive (Cholesky factors of precisions); got "
                "other values. Set valid parameters (or refit)."
            )

    def _weighted_log_prob(self, X, posterior=False):
        xp, X = self._validate_X(X, fitting=False)
        log_prob = estimate_log_gaussian_prob(X, self.means_, self.precisions_cholesky_,
                                              self.covariance_type)
        weighted = log_prob + xp.log(self.weights_)  # (N, K)
        if posterior:
            _check_some_density(xp, weighted, type(self).__name__)
        return xp, weighted

    def score_samples(self, X):
        """log p(x_n) = logsumexp_k (log pi_k + log N(x_n | mu_k, Sigma_k)), shape (N,)."""
        self._check_fitted()
        xp, weighted = self._weighted_log_prob(X)
        return logsumexp(weighted, axis=1)

    def score(self, X, y=None):
        """Mean log-likelihood per sample, (1/N) sum_n log p(x_n) (a float)."""
        self._check_fitted()
        xp = get_namespace(self.means_)
        return item(xp.mean(self.score_samples(X)))

    def predict_proba(self, X):
        """Responsibilities r_nk = p(k | x_n), shape (N, K)."""
        self._check_fitted()
        xp, weighted = self._weighted_log_prob(X, posterior=True)
        return xp.exp(weighted - logsumexp(weighted, axis=1)[:, None])

    def predict(self, X):
        """argmax_k r_nk, shape (N,)."""
        self._check_fitted()
        xp, weighted = self._weighted_log_prob(X, posterior=True)
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
