"""Mixture of multivariate Bernoulli distributions fitted by exact EM.

Reference: C. M. Bishop, Pattern Recognition and Machine Learning, 2006,
sec. 9.3.3 (eqs. 9.47-9.60), the classic latent-class / binary-data baseline.

Model (PRML eqs. 9.47-9.48)::

    p(x) = sum_k pi_k prod_d p_kd^x_d (1 - p_kd)^(1 - x_d),   x in {0, 1}^D.

E-step (PRML eq. 9.56): log r_nk = log pi_k + log p(x_n | p_k) - log p(x_n),
log p(x_n) = logsumexp_k(...); statistics N_k = sum_n r_nk, s_k = sum_n r_nk x_n
(additive over blocks of rows).  M-step (PRML eqs. 9.59-9.60, with a
Beta(a, b) prior on each p_kd for a MAP estimate; a = b = 1 is maximum
likelihood): pi_k = N_k / N, p_kd = (s_kd + a - 1) / (N_k + a + b - 2),
clipped to [min_prob, 1 - min_prob].  The family's functions are in
:mod:`lvm_core.families.bernoulli`; like :class:`~lvm_core.models.gmm.GaussianMixture`,
``fit`` streams h5py datasets in blocks and runs on dask clusters.
"""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..backend import asarray, get_namespace, item, to_numpy
from ..em import (SufficientStatistics, check_chunk_size, check_row_source,
                  default_client, make_source, row_bounds, run_em, take_rows)
from ..families import bernoulli as bern
from ..families._common import init_rows, kmeans, logsumexp
from ..random import as_generator
from ..validation import check_array, check_choice, check_is_fitted, check_positive_int
from .base import ClusterMixin, ParamsMixin, is_in_memory_input
from .gmm import AbsoluteToleranceMonitor

__all__ = ["BernoulliMixture", "e_step"]

INIT_MAX_ROWS = 100_000


def _check_binary(X, name="X"):
    xp = get_namespace(X)
    if bool(xp.any((X != 0) & (X != 1))):
        raise ValueError(f"{name} must hold binary values 0/1 for a BernoulliMixture; got other "
                         "values. Binarise the data first, e.g. (X > 0.5).astype(float).")
    return X


def e_step(X, weights, probs):
    """Responsibilities' statistics and sum_n log p(x_n) (PRML eq. 9.56).

    Returns (SufficientStatistics(resp_sum (K,), x_sum (K, D), n_samples), log-likelihood).
    """
    xp = get_namespace(X, weights, probs)
    weighted = bern.log_prob(X, probs) + xp.log(weights)[None, :]  # (N, K)
    log_p = logsumexp(weighted, axis=1)  # (N,)
    resp = xp.exp(weighted - log_p[:, None])
    stats = SufficientStatistics(bern.statistics(X, resp))
    stats["n_samples"] = xp.asarray(float(X.shape[0]), dtype=X.dtype, device=X.device)
    return stats, xp.sum(log_p)


def _e_step_chunk(chunk, extra, params, n_features, validate):
    if validate:
        chunk = check_array(np.asarray(chunk, dtype=np.float64), "X", ndim=2,
                            dtype_kind="numeric", n_features=n_features)
        _check_binary(chunk)
    stats, log_likelihood = e_step(chunk, *params)
    return stats, item(log_likelihood)


class BernoulliMixture(ClusterMixin, ParamsMixin):
    """Mixture of Bernoulli distributions (latent class model) fitted by EM.

    Parameters
    ----------
    n_components : int
        Number of components K.
    tol : float
        Stop when the mean log-likelihood per sample changes by less than
        ``tol`` (absolute, as scikit-learn's mixtures).
    max_iter : int
        Maximum number of EM iterations.
    n_init : int
        Number of starts; the best final log-likelihood is kept.
    init_params : {"random", "kmeans"}
        Start: p_kd ~ Uniform(0.25, 0.75) (Bishop's suggestion), or
        p_k = (k-means centre + data mean) / 2.
    alpha, beta : float
        Beta(alpha, beta) prior on each p_kd (1, 1: maximum likelihood).
    min_prob : float
        p_kd is clipped to [min_prob, 1 - min_prob] (keeps log p finite).
    random_state : int, numpy Generator or None
        Seed of the initialisation.
    verbose : int
        Print the objective of every iteration when > 0.

    Fitted attributes: ``weights_`` (K,), ``probs_`` (K, D), ``lower_bound_``
    (mean log-likelihood per sample of the last E-step), ``lower_bounds_``,
    ``n_iter_``, ``converged_``, ``n_features_in_`` (and ``feature_names_in_`` for a
    DataFrame).  ``fit_predict(X)`` fits, then labels X.
    """

    _estimator_type = "density_estimator"  # as scikit-learn's mixtures
    _array_attributes = ("weights_", "probs_")

    def __init__(self, n_components=1, tol=1e-3, max_iter=100, n_init=1, init_params="random",
                 alpha=1.0, beta=1.0, min_prob=1e-10, random_state=None, verbose=0):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.n_init = n_init
        self.init_params = init_params
        self.alpha = alpha
        self.beta = beta
        self.min_prob = min_prob
        self.random_state = random_state
        self.verbose = verbose

    def _check_hyperparameters(self):
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.n_init, "n_init")
        check_choice(self.init_params, "init_params", ("random", "kmeans"))
        for name in ("alpha", "beta"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 1 <= v < math.inf:
                raise ValueError(f"{name} must be a number >= 1 (a Beta prior with a mode); "
                                 f"got {v!r}. Use 1 for maximum likelihood.")
        if not isinstance(self.tol, (int, float)) or self.tol < 0:
            raise ValueError(f"tol must be a number >= 0; got {self.tol!r}.")
        if not isinstance(self.min_prob, (int, float)) or not 0 < self.min_prob < 0.5:
            raise ValueError(f"min_prob must be in (0, 0.5); got {self.min_prob!r}.")

    def _validate_X(self, X, n_features=None):
        if n_features is None:
            X = self._validate_data(X, reset=True, ndim=2, dtype_kind="numeric")
        else:
            X = self._validate_data(X, reset=False, ndim=2, dtype_kind="numeric",
                                    n_features=n_features)
        xp = get_namespace(X)
        if X.dtype != xp.float64:
            X = xp.astype(X, xp.float64)
        return xp, _check_binary(X)

    def _m_step(self, stats):
        return bern.map_m_step(stats, self.alpha, self.beta, self.min_prob)

    def _initialize(self, X_init, rng, like):
        K, D = self.n_components, X_init.shape[1]
        if self.init_params == "random":
            probs = bern.init_random(K, D, rng)
        else:
            host = to_numpy(X_init)
            if host.shape[0] < K:
                raise ValueError(f"n_components={K} must be <= n_samples={host.shape[0]}.")
            centres = np.asarray(kmeans(host, K, rng, max_iter=20)[0])
            probs = np.clip(0.5 * centres + 0.5 * host.mean(axis=0), self.min_prob,
                            1.0 - self.min_prob)
        return asarray(np.full(K, 1.0 / K), like=like), asarray(probs, like=like)

    def fit(self, X, y=None, chunk_size=None, client=None):
        """Estimate the parameters by EM; returns ``self``.

        ``X`` (N, D) binary: an array, an ``h5py.Dataset`` or any array-like
        with row slicing (streamed in blocks of ``chunk_size`` rows), or a
        dask array / a dask ``client`` (E-steps on the workers).
        """
        self._check_hyperparameters()
        chunk_size = check_chunk_size(chunk_size)
        client = default_client(client, X)
        rng = as_generator(self.random_state)
        if client is None and chunk_size is None and is_in_memory_input(X):
            xp, X = self._validate_X(X)
            N, D = X.shape
            source, like, validate = make_source(X, [(0, N)]), X, False
        else:
            if is_in_memory_input(X):
                X = self._validate_X(X)[1]
            N, D = check_row_source(X)
            self.n_features_in_ = D
            bounds = row_bounds(N, chunk_size if chunk_size is not None else -(-N // 4))
            source, validate = make_source(X, bounds, client=client), True
            like = np.zeros((1, D))

        def e_step_fn(params):
            host = params if not validate else tuple(to_numpy(p) for p in params)
            stats, ll = source.map_reduce(_e_step_chunk, host, n_features=D, validate=validate)
            return stats, float(ll) / N

        def m_step_fn(stats, params):
            return self._m_step(stats)

        best = None
        try:
            for _ in range(self.n_init):
                X_init = X if self.init_params == "random" or not validate else \
                    take_rows(X, init_rows(N, INIT_MAX_ROWS, rng), source.bounds if hasattr(
                        source, "read") else row_bounds(N, 65536))
                start = self._initialize(X_init, rng, like)
                monitor = AbsoluteToleranceMonitor(tol=self.tol, n_iter=self.max_iter,
                                                   verbose=bool(self.verbose))
                params, monitor = run_em(e_step_fn, m_step_fn, start, monitor)
                if best is None or monitor.history[-1] > best[0]:
                    best = (monitor.history[-1], params, monitor)
        finally:
            source.close()
        self.lower_bound_, (self.weights_, self.probs_), self.monitor_ = best
        self.lower_bounds_ = list(self.monitor_.history)
        self.n_iter_ = int(self.monitor_.iter)
        self.converged_ = bool(self.monitor_.converged)
        if not self.converged_:
            warnings.warn(f"BernoulliMixture did not converge in max_iter={self.max_iter} "
                          "iterations; increase max_iter or tol.", RuntimeWarning, stacklevel=2)
        return self

    # -- inference -------------------------------------------------------------
    def _weighted(self, X):
        check_is_fitted(self, ["weights_", "probs_"])
        self._check_parameter_shapes(("probs_", 2), lambda K, D: {"weights_": (K,)})
        xp, X = self._validate_X(X, n_features=self.probs_.shape[1])
        probs, weights = self.probs_, self.weights_
        if not (bool(xp.all((probs >= 0) & (probs <= 1))) and bool(xp.all(weights >= 0))
                and bool(xp.any(weights > 0))):
            raise ValueError(
                "BernoulliMixture.probs_ must hold probabilities in [0, 1] and weights_ "
                "non-negative weights (not all 0); got values outside. Set valid "
                "parameters (or refit)."
            )
        # as in fit, p_kd in [min_prob, 1 - min_prob] keeps log p(x) finite
        probs = xp.clip(probs, float(self.min_prob), 1.0 - float(self.min_prob))
        return xp, bern.log_prob(X, probs) + xp.log(weights)[None, :]  # (N, K)

    def score_samples(self, X):
        """log p(x_n) = logsumexp_k (log pi_k + log p(x_n | p_k)), shape (N,)."""
        return logsumexp(self._weighted(X)[1], axis=1)

    def score(self, X, y=None):
        """Mean log-likelihood per sample (a float)."""
        xp = get_namespace(self.probs_)
        return item(xp.mean(self.score_samples(X)))

    def predict_proba(self, X):
        """Responsibilities r_nk = p(k | x_n), shape (N, K)."""
        xp, weighted = self._weighted(X)
        return xp.exp(weighted - logsumexp(weighted, axis=1, keepdims=True))

    def predict(self, X):
        """argmax_k r_nk, shape (N,)."""
        xp, weighted = self._weighted(X)
        return xp.argmax(weighted, axis=1)

    def sample(self, n_samples=1, random_state=None):
        """Draw ``(X, y)``: y_n ~ Categorical(pi), x_nd ~ Bernoulli(p_{y_n d})."""
        check_is_fitted(self, ["weights_", "probs_"])
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = as_generator(random_state)
        w = to_numpy(self.weights_)
        labels = rng.choice(len(w), size=n_samples, p=w / w.sum())
        X = bern.sample(rng, to_numpy(self.probs_), labels)
        return asarray(X, like=self.probs_), asarray(labels.astype(np.int64), like=self.probs_,
                                                       dtype="int64")

    def _n_parameters(self):
        K, D = self.probs_.shape
        return int(K * D + K - 1)

    def bic(self, X):
        """-2 log p(X) + n_params log N (lower is better)."""
        N = X.shape[0]
        return -2.0 * self.score(X) * N + self._n_parameters() * math.log(N)

    def aic(self, X):
        """-2 log p(X) + 2 n_params (lower is better)."""
        return -2.0 * self.score(X) * X.shape[0] + 2.0 * self._n_parameters()
