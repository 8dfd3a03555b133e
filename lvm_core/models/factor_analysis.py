"""Factor analysis and probabilistic PCA fitted by exact EM.

References: Rubin & Thayer (1982), "EM algorithms for ML factor analysis";
Tipping & Bishop (1999), "Probabilistic principal component analysis";
Bishop, PRML sec. 12.2 (eqs. 12.31-12.36, 12.53-12.57, 12.64-12.70).

Model (scikit-learn's layout: ``components_`` W is (L, D))::

    z ~ N(0, I_L),   x | z ~ N(mu + W^T z, Psi),   so   x ~ N(mu, C),  C = W^T W + Psi,

with Psi = diag(psi) (factor analysis) or sigma^2 I (PPCA).

Evidence without any D x D inverse or determinant (Woodbury identity and
matrix determinant lemma), with the L x L matrix M = I_L + W Psi^{-1} W^T::

    C^{-1}   = Psi^{-1} - Psi^{-1} W^T M^{-1} W Psi^{-1}
    log|C|   = sum_d log psi_d + log|M|
    log p(x) = -1/2 [D log 2 pi + log|C| + x_c^T Psi^{-1} x_c - b^T M^{-1} b],
               x_c = x - mu,  b = W Psi^{-1} x_c                 -- O(D L + L^2) per sample.

E-step (PRML 12.66-12.67, with G = M^{-1}): posterior z | x ~ N(G b, G), so
E[z] = G W Psi^{-1} x_c and E[z z^T] = G + E[z] E[z]^T.  The additive
statistics are::

    n_samples  N
    x_ez_sum   sum_n x_c E[z_n]^T          (D, L)
    ezz_sum    sum_n E[z_n z_n^T]          (L, L)
    xx_diag    sum_n x_c * x_c             (D,)

M-step (PRML 12.69-12.70; Rubin & Thayer 1982)::

    W^T  = x_ez_sum ezz_sum^{-1}
    psi  = (xx_diag - rowsum(W^T * x_ez_sum)) / N     (FA)
    sigma^2 = mean_d psi_d                               (PPCA, Tipping & Bishop eq. 28)

Every statistic is linear in the scatter matrix S = sum_n x_c x_c^T, so ``fit``
computes S once (O(N D^2)) and each EM iteration costs O(D^2 L), independent
of N (:func:`e_step_from_scatter`); :func:`e_step` computes the same numbers
from the data (O(N D L)) for chunked or streaming use.  The mean and S are
sums over rows, so ``fit`` also accepts an ``h5py.Dataset`` or any array-like
with row slicing (read in blocks of ``chunk_size`` rows, memory O(block)) and
dask arrays or a dask ``client`` (the block sums run on the workers and are
tree-summed; see :mod:`lvm_core.em`).

PPCA also has a closed form (Tipping & Bishop 1999, eqs. 7-8): with the
eigen-decomposition of the sample covariance S/N = U diag(lambda) U^T (sorted
descending), sigma^2 = mean(lambda_{L+1..D}) and W^T = U_L (Lambda_L - sigma^2 I)^{1/2}.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import asarray, get_namespace, item
from ..em import (SufficientStatistics, check_chunk_size, check_row_source, default_client,
                  make_source, row_bounds, run_em, streamed_mean)
from ..random import as_generator, normal
from ..validation import (check_array, check_choice, check_is_fitted, check_magnitude,
                          check_positive_int)
from .base import ParamsMixin, TransformerMixin, is_in_memory_input
from .gmm import AbsoluteToleranceMonitor

__all__ = [
    "FactorAnalysis",
    "PPCA",
    "posterior_precision",
    "log_evidence",
    "e_step",
    "e_step_from_scatter",
    "m_step",
    "ppca_closed_form",
]

SMALL = 1e-12  # floor of the noise variances (as in scikit-learn)


def _noise_vector(xp, noise_variance, D):
    """psi as a (D,) vector (PPCA stores a 0-d sigma^2)."""
    if noise_variance.ndim == 0:
        return noise_variance * xp.ones((D,), dtype=noise_variance.dtype,
                                        device=noise_variance.device)
    return noise_variance


def posterior_precision(components, noise_variance):
    """M = I_L + W Psi^{-1} W^T (L, L), the precision of z | x (PRML eq. 12.68)."""
    xp = get_namespace(components, noise_variance)
    L, D = components.shape
    psi = _noise_vector(xp, noise_variance, D)
    W_psi = components / psi  # (L, D) = W Psi^{-1}
    return xp.eye(L, dtype=components.dtype, device=components.device) + xp.matmul(W_psi, components.T)


def _cholesky_M(xp, M):
    try:
        return xp.linalg.cholesky(M)
    except Exception as exc:
        raise ValueError(
            f"I + W Psi^-1 W^T is not positive definite ({exc}); the noise variances "
            "must be positive and finite. Check noise_variance_ / components_."
        ) from None


def log_evidence(X, mean, components, noise_variance):
    """log N(x_n | mu, W^T W + Psi) for every row, shape (N,), via Woodbury.

    log p(x) = -1/2 [D log 2pi + sum log psi + log|M| + x_c^T Psi^{-1} x_c
    - ||L_M^{-1} b||^2], b = W Psi^{-1} x_c, M = L_M L_M^T.  O(N D L + N L^2).
    """
    xp = get_namespace(X, mean, components, noise_variance)
    D = X.shape[1]
    psi = _noise_vector(xp, noise_variance, D)
    Xc = X - mean  # (N, D)
    M = posterior_precision(components, noise_variance)  # (L, L)
    L_M = _cholesky_M(xp, M)
    b = xp.matmul(Xc, (components / psi).T)  # (N, L)
    c = xp.linalg.solve(L_M, b.T)  # (L, N) = L_M^{-1} b
    log_det_C = xp.sum(xp.log(psi)) + 2.0 * xp.sum(xp.log(xp.linalg.diagonal(L_M)))
    quad = xp.sum(Xc * Xc / psi, axis=1) - xp.sum(c * c, axis=0)  # (N,)
    return -0.5 * (D * math.log(2.0 * math.pi) + log_det_C + quad)


def e_step(X, mean, components, noise_variance):
    """E-step from data: statistics of q(z_n) = p(z_n | x_n) and sum_n log p(x_n).

    E[z_n] = G W Psi^{-1} x_c (G = M^{-1}); returns ``(stats, log_likelihood)``
    with ``n_samples``, ``x_ez_sum`` (D, L), ``ezz_sum`` (L, L), ``xx_diag`` (D,).
    """
    xp = get_namespace(X, mean, components, noise_variance)
    D = X.shape[1]
    psi = _noise_vector(xp, noise_variance, D)
    Xc = X - mean  # (N, D)
    G = xp.linalg.inv(posterior_precision(components, noise_variance))  # (L, L)
    beta = xp.matmul(G, components / psi)  # (L, D): E[z] = beta x_c
    Ez = xp.matmul(Xc, beta.T)  # (N, L)
    N = X.shape[0]
    stats = SufficientStatistics(
        n_samples=xp.asarray(float(N), dtype=X.dtype, device=X.device),
        x_ez_sum=xp.matmul(Xc.T, Ez),
        ezz_sum=N * G + xp.matmul(Ez.T, Ez),
        xx_diag=xp.sum(Xc * Xc, axis=0),
    )
    return stats, xp.sum(log_evidence(X, mean, components, noise_variance))


def e_step_from_scatter(scatter, n_samples, components, noise_variance):
    """The same E-step from the scatter S = sum_n x_c x_c^T (D, D): O(D^2 L).

    With beta = G W Psi^{-1} (L, D):
    x_ez_sum = S beta^T,  ezz_sum = N G + beta S beta^T,  xx_diag = diag S,
    log-likelihood = -1/2 [N (D log 2pi + log|C|) + tr(C^{-1} S)],
    tr(C^{-1} S) = sum_d S_dd / psi_d - tr(beta S Psi^{-1} W^T).
    """
    xp = get_namespace(scatter, components, noise_variance)
    D = scatter.shape[0]
    N = float(n_samples)
    psi = _noise_vector(xp, noise_variance, D)
    M = posterior_precision(components, noise_variance)
    L_M = _cholesky_M(xp, M)
    G = xp.linalg.inv(M)  # (L, L)
    W_psi = components / psi  # (L, D)
    beta = xp.matmul(G, W_psi)  # (L, D)
    S_beta = xp.matmul(scatter, beta.T)  # (D, L)
    S_diag = xp.linalg.diagonal(scatter)
    stats = SufficientStatistics(
        n_samples=xp.asarray(N, dtype=scatter.dtype, device=scatter.device),
        x_ez_sum=S_beta,
        ezz_sum=N * G + xp.matmul(beta, S_beta),
        xx_diag=S_diag,
    )
    log_det_C = xp.sum(xp.log(psi)) + 2.0 * xp.sum(xp.log(xp.linalg.diagonal(L_M)))
    trace_term = xp.sum(S_diag / psi) - xp.sum(W_psi.T * S_beta)  # tr(C^{-1} S)
    log_likelihood = -0.5 * (N * (D * math.log(2.0 * math.pi) + log_det_C) + trace_term)
    return stats, log_likelihood


def m_step(stats, isotropic=False, min_noise=SMALL):
    """M-step (PRML 12.69-12.70): W^T = x_ez_sum ezz_sum^{-1}; psi from the diagonal.

    psi_d = (xx_diag_d - sum_l W^T_dl x_ez_sum_dl) / N, floored at ``min_noise``;
    ``isotropic=True`` (PPCA) replaces psi by its mean sigma^2 (returned 0-d).
    Returns ``(components (L, D), noise_variance)``.
    """
    xp = get_namespace(stats["x_ez_sum"])
    x_ez = stats["x_ez_sum"]  # (D, L)
    components = xp.linalg.solve(stats["ezz_sum"], x_ez.T)  # (L, D) = ezz^{-1} x_ez^T
    psi = (stats["xx_diag"] - xp.sum(components.T * x_ez, axis=1)) / stats["n_samples"]
    if isotropic:
        psi = xp.mean(psi)
    floor = xp.full_like(psi, min_noise)
    return components, xp.maximum(psi, floor)


def ppca_closed_form(scatter, n_samples, n_components):
    """ML PPCA from the scatter (Tipping & Bishop 1999, eqs. 7-8).

    S/N = U diag(lambda) U^T, lambda descending; sigma^2 = mean(lambda_{L+1..D});
    W^T = U_L (Lambda_L - sigma^2 I)^{1/2}.  Returns ``(components (L, D), sigma^2 0-d)``.
    """
    xp = get_namespace(scatter)
    L = n_components
    lam, U = xp.linalg.eigh(scatter / float(n_samples))  # ascending
    lam = xp.flip(lam, axis=0)
    U = xp.flip(U, axis=1)
    sigma2 = xp.mean(lam[L:])
    scale = xp.sqrt(xp.maximum(lam[:L] - sigma2, xp.zeros_like(lam[:L])))  # (L,)
    # sign convention: the largest |entry| of each eigenvector is positive
    U_L = U[:, :L]  # (D, L)
    abs_U = xp.abs(U_L)
    largest = xp.astype(abs_U == xp.max(abs_U, axis=0, keepdims=True), U_L.dtype)  # (D, L)
    signs = xp.sign(xp.sum(U_L * largest, axis=0))  # (L,)
    components = (U[:, :L] * (scale * signs)[None, :]).T  # (L, D)
    return components, xp.maximum(sigma2, xp.asarray(SMALL, dtype=sigma2.dtype, device=sigma2.device))


def _scatter_chunk(chunk, extra, params, dtype):
    """(S_block = sum_n (x_n - mean)(x_n - mean)^T, 0) for one block of rows."""
    block = np.asarray(chunk, dtype=dtype)
    mean = params
    block = check_array(block, "X", ndim=2, dtype_kind="numeric", n_features=mean.shape[0])
    Xc = block - mean
    return SufficientStatistics(scatter=Xc.T @ Xc), 0.0


class _LinearGaussian(TransformerMixin, ParamsMixin):
    """Shared inference for FA and PPCA (x ~ N(mu, W^T W + Psi))."""

    _isotropic = False
    _array_attributes = ("components_", "noise_variance_", "mean_")

    def _mean_and_scatter(self, X, chunk_size, client):
        """(xp, like, N, D, mean (D,), S = sum_n x_c x_c^T (D, D)), in memory or by blocks."""
        chunk_size = check_chunk_size(chunk_size)
        client = default_client(client, X)
        if client is None and chunk_size is None and is_in_memory_input(X):
            xp, X = self._validate_X(X, fitting=True)
            mean = xp.mean(X, axis=0)
            Xc = X - mean
            return xp, X, X.shape[0], X.shape[1], mean, xp.matmul(Xc.T, Xc)
        if is_in_memory_input(X):
            X = check_array(X, "X", ndim=2, dtype_kind="numeric", min_rows=2)
        N, D = check_row_source(X)
        self.n_features_in_ = D
        if N < 2:
            raise ValueError(f"X must have at least 2 row(s); got shape {(N, D)}. Pass non-empty data.")
        step = chunk_size if chunk_size is not None else -(-N // 4)
        source = make_source(X, row_bounds(N, step), client=client)
        try:
            mean = streamed_mean(source, self.dtype)
            stats, _ = source.map_reduce(_scatter_chunk, mean, dtype=self.dtype)
        finally:
            source.close()
        like = np.zeros((1, D), dtype=self.dtype)
        return get_namespace(like), like, N, D, mean.astype(self.dtype), stats["scatter"]

    def _check_fitted(self):
        check_is_fitted(self, ["components_", "noise_variance_", "mean_"])
        self._check_parameter_shapes(("components_", 2), lambda L, D: {
            "mean_": (D,), "noise_variance_": ((), (D,))})
        check_magnitude(self.components_.T, "components_")  # W^T W must be finite
        xp = get_namespace(self.noise_variance_)
        if not bool(xp.all(self.noise_variance_ > 0)):
            raise ValueError(
                f"{type(self).__name__}.noise_variance_ must be positive (a variance); got "
                f"{self.noise_variance_!r}. Set positive values or refit."
            )

    def _validate_X(self, X, fitting):
        if fitting:
            X = self._validate_data(X, reset=True, ndim=2, dtype_kind="numeric", min_rows=2)
        else:
            X = self._validate_data(X, reset=False, ndim=2, dtype_kind="numeric",
                                    n_features=self.mean_.shape[0])
            # the Woodbury quadratic form of x - mean_ would be inf - inf
            check_magnitude(X, "X", dtype=self.mean_.dtype)
            check_magnitude(X - self.mean_, "X - mean_", dtype=self.mean_.dtype)
        xp = get_namespace(X)
        dtype = getattr(xp, self.dtype) if fitting else self.mean_.dtype
        if X.dtype != dtype:
            X = xp.astype(X, dtype)
        return xp, X

    def _check_n_components(self, D):
        L = D if self.n_components is None else check_positive_int(self.n_components, "n_components")
        if L > D:
            raise ValueError(f"n_components={L} must be <= n_features={D}. Use at most "
                             f"{D} factors.")
        return L

    def _fit_em(self, components, noise_variance, scatter, N):
        monitor = AbsoluteToleranceMonitor(tol=self.tol, n_iter=self.max_iter)

        def e_step_fn(params):
            stats, log_likelihood = e_step_from_scatter(scatter, N, *params)
            return stats, item(log_likelihood)

        def m_step_fn(stats, params):
            return m_step(stats, isotropic=self._isotropic)

        (self.components_, self.noise_variance_), monitor = run_em(
            e_step_fn, m_step_fn, (components, noise_variance), monitor)
        self.monitor_ = monitor
        self.loglike_ = list(monitor.history)
        self.n_iter_ = monitor.iter
        self.converged_ = monitor.converged

    # -- inference ------------------------------------------------------------
    def score_samples(self, X):
        """log p(x_n) under N(mu, W^T W + Psi), shape (N,) (Woodbury, O(N D L))."""
        self._check_fitted()
        _, X = self._validate_X(X, fitting=False)
        return log_evidence(X, self.mean_, self.components_, self.noise_variance_)

    def score(self, X, y=None):
        """Mean log-likelihood per sample (a float)."""
        xp = get_namespace(self.mean_)
        return item(xp.mean(self.score_samples(X)))

    def transform(self, X):
        """Posterior means E[z | x] = M^{-1} W Psi^{-1} (x - mu), shape (N, L)."""
        self._check_fitted()
        xp, X = self._validate_X(X, fitting=False)
        psi = _noise_vector(xp, self.noise_variance_, X.shape[1])
        M = posterior_precision(self.components_, self.noise_variance_)
        b = xp.matmul(X - self.mean_, (self.components_ / psi).T)  # (N, L)
        return xp.linalg.solve(M, b.T).T

    def get_covariance(self):
        """C = W^T W + Psi (D, D)."""
        self._check_fitted()
        xp = get_namespace(self.components_)
        D = self.components_.shape[1]
        psi = _noise_vector(xp, self.noise_variance_, D)
        return xp.matmul(self.components_.T, self.components_) + xp.eye(
            D, dtype=psi.dtype, device=psi.device) * psi[None, :]

    def get_precision(self):
        """C^{-1} = Psi^{-1} - Psi^{-1} W^T M^{-1} W Psi^{-1} (Woodbury; only an L x L solve)."""
        self._check_fitted()
        xp = get_namespace(self.components_)
        D = self.components_.shape[1]
        psi = _noise_vector(xp, self.noise_variance_, D)
        W_psi = self.components_ / psi  # (L, D)
        M = posterior_precision(self.components_, self.noise_variance_)
        inner = xp.matmul(W_psi.T, xp.linalg.solve(M, W_psi))  # (D, D)
        return xp.eye(D, dtype=psi.dtype, device=psi.device) / psi[None, :] - inner

    def sample(self, n_samples=1, random_state=None):
        """Draw x = mu + W^T z + Psi^{1/2} eps, z, eps ~ N(0, I); shape (n_samples, D)."""
        self._check_fitted()
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = as_generator(random_state)
        xp = get_namespace(self.components_)
        L, D = self.components_.shape
        psi = _noise_vector(xp, self.noise_variance_, D)
        z = normal(rng, (n_samples, L), like=self.components_)
        eps = normal(rng, (n_samples, D), like=self.components_)
        return self.mean_ + xp.matmul(z, self.components_) + eps * xp.sqrt(psi)


class FactorAnalysis(_LinearGaussian):
    """Factor analysis fitted by EM (Rubin & Thayer 1982; PRML 12.2.4).

    Same parameters and fitted attributes as ``sklearn.decomposition.FactorAnalysis``
    where they overlap: ``components_`` (L, D), ``noise_variance_`` (D,),
    ``mean_`` (D,), ``loglike_`` (total log-likelihood after each E-step),
    ``n_iter_``.  EM stops when the total log-likelihood changes by less than
    ``tol`` (scikit-learn's rule) or after ``max_iter`` iterations.

    Start: psi = ``noise_variance_init`` (default ones) and W the maximiser
    of the likelihood for that psi -- the leading eigenvectors of
    Psi^{-1/2} (S/N) Psi^{-1/2} = V diag(lambda) V^T give
    W^T = Psi^{1/2} V_L (Lambda_L - I)_+^{1/2} -- which is scikit-learn's first
    iterate, so both start from the same log-likelihood.  Columns with
    lambda <= 1 (which EM could never leave) get a tiny positive scale.
    ``random_state`` is kept for API compatibility; the fit is deterministic.
    """

    def __init__(self, n_components=None, tol=1e-2, max_iter=1000, noise_variance_init=None,
                 random_state=0, method="em", dtype="float64"):
        self.n_components = n_components
        self.tol = tol
        self.max_iter = max_iter
        self.noise_variance_init = noise_variance_init
        self.random_state = random_state
        self.method = method
        self.dtype = dtype

    def fit(self, X, y=None, chunk_size=None, client=None):
        """Fit by EM on the scatter matrix (computed once); returns ``self``.

        ``X`` may be an array, an ``h5py.Dataset`` (or any array-like with row
        slicing, read in blocks of ``chunk_size`` rows) or a dask array; with
        a dask ``client`` the block sums run on its workers.
        """
        check_choice(self.method, "method", ("em",))
        check_choice(self.dtype, "dtype", ("float64", "float32"))
        check_positive_int(self.max_iter, "max_iter")
        if not isinstance(self.tol, (int, float)) or self.tol < 0:
            raise ValueError(f"tol must be a number >= 0; got {self.tol!r}.")
        xp, X, N, D, self.mean_, scatter = self._mean_and_scatter(X, chunk_size, client)  # (D, D)
        L = self._check_n_components(D)
        if self.noise_variance_init is None:
            psi = xp.ones((D,), dtype=X.dtype, device=X.device)
        else:
            psi = asarray(self.noise_variance_init, like=X, dtype=X.dtype)
            if tuple(psi.shape) != (D,):
                raise ValueError(f"noise_variance_init must have shape ({D},) (n_features,); "
                                 f"got {tuple(psi.shape)}.")
            if bool(xp.any(~(psi > 0))) or bool(xp.any(xp.isinf(psi))):
                raise ValueError("noise_variance_init must be positive and finite.")
        components = self._initial_components(xp, scatter, N, psi, L)
        self._fit_em(components, psi, scatter, N)
        return self

    @staticmethod
    def _initial_components(xp, scatter, N, psi, L):
        """W maximising the likelihood at fixed psi (see the class docstring)."""
        sqrt_psi = xp.sqrt(psi)
        whitened = scatter / float(N) / (sqrt_psi[:, None] * sqrt_psi[None, :])  # (D, D)
        lam, V = xp.linalg.eigh(whitened)
        lam = xp.flip(lam, axis=0)[:L]
        V = xp.flip(V, axis=1)[:, :L]
        floor = xp.full_like(lam, 1e-6)
        scale = xp.sqrt(xp.maximum(lam - 1.0, floor))  # (L,)
        return (V * scale[None, :]).T * sqrt_psi[None, :]  # (L, D)


class PPCA(_LinearGaussian):
    """Probabilistic PCA (Tipping & Bishop 1999; PRML 12.2.1-12.2.2).

    ``method="closed_form"``: eigen-decomposition of the ML sample covariance
    S/N; ``method="em"``: EM from a random start (``random_state``) converging
    to the same maximum (up to a rotation of W).  ``noise_variance_`` is the
    0-d sigma^2.  Note scikit-learn's PCA divides by N - 1, not N: its
    ``get_covariance()`` is ours times N / (N - 1).
    """

    _isotropic = True

    def __init__(self, n_components=1, method="closed_form", tol=1e-6, max_iter=1000,
                 random_state=0, dtype="float64"):
        self.n_components = n_components
        self.method = method
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.dtype = dtype

    def fit(self, X, y=None, chunk_size=None, client=None):
        """Fit by the closed form or by EM; returns ``self``.

        ``X`` may be an array, an ``h5py.Dataset`` (or any array-like with row
        slicing, read in blocks of ``chunk_size`` rows) or a dask array; with
        a dask ``client`` the block sums run on its workers.
        """
        check_choice(self.method, "method", ("closed_form", "em"))
        check_choice(self.dtype, "dtype", ("float64", "float32"))
        check_positive_int(self.max_iter, "max_iter")
        if not isinstance(self.tol, (int, float)) or self.tol < 0:
            raise ValueError(f"tol must be a number >= 0; got {self.tol!r}.")
        xp, X, N, D, self.mean_, scatter = self._mean_and_scatter(X, chunk_size, client)  # (D, D)
        L = self._check_n_components(D)
        if L >= D:
            raise ValueError(f"PPCA needs n_components < n_features (sigma^2 is the mean of "
                             f"the discarded eigenvalues); got n_components={L}, n_features={D}.")
        if self.method == "closed_form":
            self.components_, self.noise_variance_ = ppca_closed_form(scatter, N, L)
            log_likelihood = e_step_from_scatter(scatter, N, self.components_,
                                                 self.noise_variance_)[1]
            self.loglike_ = [item(log_likelihood)]
            self.n_iter_ = 0
            self.converged_ = True
            return self
        rng = as_generator(self.random_state)
        total_var = xp.sum(xp.linalg.diagonal(scatter)) / float(N * D)
        components = normal(rng, (L, D), like=X) * xp.sqrt(total_var)
        sigma2 = total_var
        self._fit_em(components, sigma2, scatter, N)
        return self
