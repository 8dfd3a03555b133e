"""Slow feature analysis (SFA), linear and quadratic.

References: Wiskott & Sejnowski (2002), "Slow feature analysis: unsupervised
learning of invariances", Neural Computation 14(4) (sec. 2-3; eta-values
eq. 8; the test signal of sec. 4.1); Berkes & Wiskott (2005) (quadratic
expansion); Goodfellow, Bengio & Courville, Deep Learning, sec. 13.3.

Problem: for an input time series x(t), t = 1..T, find y_l(t) = w_l^T (h(x(t)) - mu)
minimising the slowness Delta(y_l) = <ydot_l^2>_t subject to <y_l> = 0,
<y_l^2> = 1 and <y_l y_m> = 0 (m < l), with h the expansion::

    linear:     h(x) = x                                  (D features)
    quadratic:  h(x) = (x_1..x_D, x_i x_j for i <= j)      (D + D(D+1)/2 features)

Solution (W&S sec. 3):

1. centre: h_c = h(x) - mu, mu = <h(x)>_t;
2. whiten: <h_c h_c^T> = U diag(lambda) U^T; keep the r eigenvalues with
   lambda > rank_rtol * lambda_max and set S = U_r diag(lambda_r)^{-1/2}
   (M, r), z = S^T h_c.  Directions of (numerically) zero variance are
   dropped, not regularised: the kept eigenvalues are used unchanged;
3. slowness: zdot(t) = z(t+1) - z(t); <zdot zdot^T> = V diag(delta) V^T with
   delta ascending; W = S V_L (M, L), y = W^T h_c.

The outputs have zero mean, identity covariance (1/T normalisation) and
slowness Delta(y_l) = delta_l, increasing in l.  eta-values (W&S eq. 8):
eta_l = T / (2 pi) sqrt(Delta(y_l)); a pure sine with k periods over the T
samples has eta = k.  Signs: each output is flipped so that it rises over
the training series on average, sum_t (t - mean t) y_l(t) >= 0 (eigenvectors
have arbitrary signs; this makes the result the same on every backend).
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import asarray, get_namespace, item
from ..validation import check_choice, check_is_fitted, check_positive_int
from .base import ParamsMixin, TransformerMixin

__all__ = ["SFA", "quadratic_expansion"]


def quadratic_expansion(X):
    """h(x) = (x_1..x_D, x_i x_j for i <= j), shape (N, D + D (D + 1) / 2)."""
    xp = get_namespace(X)
    D = X.shape[1]
    i_idx, j_idx = np.triu_indices(D)
    i_idx = asarray(i_idx.astype(np.int64), like=X, dtype="int64")
    j_idx = asarray(j_idx.astype(np.int64), like=X, dtype="int64")
    products = xp.take(X, i_idx, axis=1) * xp.take(X, j_idx, axis=1)  # (N, D(D+1)/2)
    return xp.concat([X, products], axis=1)


class SFA(TransformerMixin, ParamsMixin):
    """Slow feature analysis (Wiskott & Sejnowski 2002).

    Parameters: ``n_components`` L (default: all r whitened directions),
    ``expansion`` ("linear" or "quadratic"), ``rank_rtol`` (eigenvalues of the
    expanded covariance at or below ``rank_rtol * lambda_max`` are dropped).

    ``fit(X)`` takes one time series X (T, D), rows in time order.  Fitted:
    ``mean_`` (M,), ``components_`` (L, M) = W^T, ``delta_`` (L,) slowness
    values ascending, ``eta_`` (L,), ``rank_`` r, ``n_features_in_``.
    ``transform(X)`` returns the slow features (N, L), slowest first.
    """

    _array_attributes = ("components_", "mean_", "delta_", "eta_")

    def __init__(self, n_components=None, *, expansion="linear", rank_rtol=1e-10,
                 dtype="float64"):
        self.n_components = n_components
        self.expansion = expansion
        self.rank_rtol = rank_rtol
        self.dtype = dtype

    def _expand(self, X):
        return quadratic_expansion(X) if self.expansion == "quadratic" else X

    def _validate_X(self, X, fitting):
        if fitting:
            X = self._validate_data(X, reset=True, ndim=2, dtype_kind="numeric", min_rows=1)
        else:
            X = self._validate_data(X, reset=False, ndim=2, dtype_kind="numeric",
                                    n_features=self.n_features_in_)
        xp = get_namespace(X)
        dtype = getattr(xp, self.dtype) if fitting else self.mean_.dtype
        if X.dtype != dtype:
            X = xp.astype(X, dtype)
        return xp, X

    def fit(self, X, y=None):
        """Solve the SFA eigenproblems on the time series X (T, D); returns ``self``."""
        check_choice(self.expansion, "expansion", ("linear", "quadratic"))
        check_choice(self.dtype, "dtype", ("float64", "float32"))
        if not isinstance(self.rank_rtol, (int, float)) or not 0 <= self.rank_rtol < 1:
            raise ValueError(f"rank_rtol must be a number in [0, 1); got {self.rank_rtol!r}.")
        xp, X = self._validate_X(X, fitting=True)
        T, D = X.shape
        if T < 3:
            raise ValueError(f"SFA needs a time series of at least 3 samples (a derivative "
                             f"and its covariance); got {T} sample(s). Pass a longer series.")
        H = self._expand(X)  # (T, M)
        mean = xp.mean(H, axis=0)
        Hc = H - mean
        lam, U = xp.linalg.eigh(xp.matmul(Hc.T, Hc) / float(T))  # ascending
        lam_max = item(lam[-1])
        if not lam_max > 0.0:
            raise ValueError("X is constant in time (zero covariance); SFA needs varying "
                             "input. Check the data.")
        keep = lam > self.rank_rtol * lam_max
        r = int(item(xp.sum(xp.astype(keep, xp.int64))))
        M = H.shape[1]
        L = r if self.n_components is None else check_positive_int(self.n_components,
                                                                  "n_components")
        if L > r:
            raise ValueError(
                f"n_components={L} exceeds the rank of the {self.expansion} expansion "
                f"({r} of {M} directions have variance above {self.rank_rtol:g} x the largest): "
                "the input is rank deficient (duplicated, constant or linearly dependent "
                f"features). Use n_components <= {r}, or remove the dependent features.")
        lam_r = lam[M - r:]  # the r largest, ascending
        S = U[:, M - r:] / xp.sqrt(lam_r)[None, :]  # (M, r) whitening, kept eigenvalues unchanged
        Z = xp.matmul(Hc, S)  # (T, r), identity covariance
        Zdot = Z[1:, :] - Z[:-1, :]  # (T-1, r)
        delta, V = xp.linalg.eigh(xp.matmul(Zdot.T, Zdot) / float(T - 1))  # ascending
        W = xp.matmul(S, V[:, :L])  # (M, L)
        # deterministic signs: each output rises over the training series on average,
        # sum_t (t - mean t) y_l(t) >= 0 (eigenvectors come with arbitrary signs)
        ramp = xp.arange(T, dtype=X.dtype, device=X.device) - 0.5 * (T - 1)  # (T,)
        trend = xp.matmul(ramp, xp.matmul(Z, V[:, :L]))  # (L,)
        signs = xp.where(trend < 0.0, -xp.ones_like(trend), xp.ones_like(trend))
        self.mean_ = mean
        self.components_ = (W * signs[None, :]).T  # (L, M)
        self.delta_ = delta[:L]
        self.eta_ = float(T) / (2.0 * math.pi) * xp.sqrt(xp.maximum(self.delta_,
                                                                     xp.zeros_like(self.delta_)))
        self.rank_ = r
        self.n_features_in_ = D
        return self

    def transform(self, X):
        """Slow features y = W^T (h(x) - mean_), shape (N, L), slowest first."""
        check_is_fitted(self, ["components_", "mean_"])
        self._check_parameter_shapes(("components_", 2), lambda L, M: {"mean_": (M,)})
        xp, X = self._validate_X(X, fitting=False)
        return xp.matmul(self._expand(X) - self.mean_, self.components_.T)

    def fit_transform(self, X, y=None):
        """Fit on X, then return its slow features."""
        return self.fit(X).transform(X)
