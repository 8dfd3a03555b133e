"""Data handling shared by the Gaussian-family HMMs (GaussianHMM, GMMHMM).

Statistics of Gaussian emissions are taken about one reference point c per
fit (Bishop, PRML sec. 9.2 / 13.2.1 statistics, shifted): the mean of the
observed rows, rounded to float32 precision so that a mean summed in another
order (blocks, dask workers) gives the same c.  Every block is then featurised
as y_t = x_t - c, y_t * y_t and Z_t = [y_t, y_t * y_t] (T, 2 D), so that the
diagonal log-densities and statistics are single matrix products.
"""
from __future__ import annotations

from ...backend import get_namespace
from ._checks import describe

__all__ = ["GaussianData"]


class GaussianData:
    """Validation, reference point and features of real-valued (T, D) data."""

    def _validate(self, X, fitted=False):
        X = self._as_2d_float(X)
        xp = get_namespace(X)
        missing = self._missing_rows(X)
        if missing is not None:
            X = xp.where(missing[:, None], xp.zeros_like(X), X)
        elif bool(xp.any(xp.isinf(X))):
            raise ValueError("X contains infinite values; pass finite observations.")
        n_feat = self._n_features_known(fitting=not fitted)
        if n_feat is not None and X.shape[1] != n_feat:
            raise ValueError(
                f"X must have {n_feat} features (columns) to match the model; got {describe(X)}."
            )
        return X, missing

    def _summary(self, X, missing):
        """(sum of the observed rows (D,), number of observed rows)."""
        xp = get_namespace(X)
        n_obs = X.shape[0] - (0 if missing is None else int(xp.sum(xp.astype(missing, xp.int64))))
        return xp.sum(X, axis=0), n_obs

    def _reference(self, summaries):
        """c = (sum of the observed rows) / (their number), rounded to float32."""
        total = summaries[0][0]
        for s, _ in summaries[1:]:
            total = total + s
        n_obs = sum(n for _, n in summaries)
        xp = get_namespace(total)
        mean = total / max(n_obs, 1)
        return xp.astype(xp.astype(mean, xp.float32), xp.float64)

    def _features(self, X, lengths, ref, missing=None):
        xp = get_namespace(X)
        data = self._base_data(X, lengths)
        if ref is None:  # inference: any reference point will do
            ref = self._reference([self._summary(X, missing)])
        X_c = X - ref[None, :]
        if missing is not None:
            X_c = xp.where(missing[:, None], xp.zeros_like(X_c), X_c)
        X_c2 = X_c * X_c
        data.update(X=X, X_c=X_c, X_c2=X_c2, shift=ref, missing=missing,
                    Z=xp.concat([X_c, X_c2], axis=1))  # (T, 2 D)
        return data
