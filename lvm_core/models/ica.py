"""Independent component analysis by FastICA.

References: Hyvarinen (1999), "Fast and robust fixed-point algorithms for
independent component analysis", IEEE Trans. Neural Networks 10(3);
Hyvarinen & Oja (2000), "Independent component analysis: algorithms and
applications", Neural Networks 13 (sec. 6); Amari, Cichocki & Yang (1996),
"A new learning algorithm for blind signal separation" (the Amari index);
Goodfellow, Bengio & Courville, Deep Learning, sec. 13.2.

Model: x = A s + mu with L independent, non-Gaussian, unit-variance sources s.

Whitening (unit-variance sources).  With the sample covariance
Sigma = X_c^T X_c / N = U diag(lambda) U^T (eigendecomposition), or the thin
SVD X_c = P diag(sigma) U^T (lambda = sigma^2 / N), keep the L largest
eigenvalues and set::

    K = diag(lambda_L)^{-1/2} U_L^T        (L, D),    z = K (x - mu),  Cov[z] = I_L.

Fixed-point iteration on z (Hyvarinen 1999, eq. 20; one-unit form eq. 11)::

    w+ = E[z g(w^T z)] - E[g'(w^T z)] w                        (deflation: one row at a time,
                                                                  Gram-Schmidt against the rows found)
    W+ = E[g(W z) z^T] - diag(E[g'(W z)]) W,  W <- (W W^T)^{-1/2} W   (parallel, symmetric
                                                                  decorrelation)

with the contrasts G (g = G', Hyvarinen 1999 eqs. 7-9)::

    logcosh:  g(u) = tanh(a u),            g'(u) = a (1 - tanh^2(a u))
    exp:      g(u) = u exp(-u^2 / 2),      g'(u) = (1 - u^2) exp(-u^2 / 2)
    cube:     g(u) = u^3,                  g'(u) = 3 u^2

Convergence: max_l | |<w_l+, w_l>| - 1 | < tol (rows of unit norm).

Fitted model: ``components_ = W K`` (L, D) is the unmixing matrix, sources
s = components_ (x - mean_) have zero mean and identity covariance on the
training data, and ``mixing_ = U_L diag(lambda_L)^{1/2} W^T`` (D, L) is the
pseudo-inverse of ``components_`` (x_hat = mixing_ s + mean_).
"""
from __future__ import annotations

from ..backend import asarray, get_namespace, item
from ..random import as_generator, normal, permutation
from ..validation import check_array, check_choice, check_is_fitted, check_positive_int
from .base import ParamsMixin, TransformerMixin

__all__ = [
    "FastICA",
    "whiten",
    "contrast",
    "newton_statistics",
    "ica_parallel",
    "ica_deflation",
    "symmetric_decorrelation",
    "amari_index",
    "CONTRASTS",
]

CONTRASTS = ("logcosh", "exp", "cube")


def contrast(Y, fun="logcosh", alpha=1.0):
    """g(Y) (same shape) and the column means E[g'(Y)] of a contrast.

    ``Y`` is (N, L) (or (N,)); the means are over the N rows.
    logcosh: g = tanh(a y), g' = a (1 - g^2);  exp: g = y e^{-y^2/2},
    g' = (1 - y^2) e^{-y^2/2};  cube: g = y^3, g' = 3 y^2.
    """
    xp = get_namespace(Y)
    if fun == "logcosh":
        g = xp.tanh(Y if alpha == 1.0 else alpha * Y)
        g_prime_mean = alpha * (1.0 - xp.vecdot(g, g, axis=-Y.ndim) / float(Y.shape[0]))
    elif fun == "exp":
        Y2 = Y * Y
        e = xp.exp(-0.5 * Y2)
        g = Y * e
        g_prime_mean = xp.mean((1.0 - Y2) * e, axis=0)
    elif fun == "cube":
        Y2 = Y * Y
        g = Y2 * Y
        g_prime_mean = 3.0 * xp.mean(Y2, axis=0)
    else:
        raise ValueError(f"fun must be one of {', '.join(map(repr, CONTRASTS))}; got {fun!r}.")
    return g, g_prime_mean


BLOCK_ROWS = 8192  # rows per block: a block of Z (N, L) stays in cache, as do its products


def _blocks(N, block_rows=BLOCK_ROWS):
    """Row slices [start, stop) that cover range(N)."""
    return [slice(start, min(start + block_rows, N)) for start in range(0, N, block_rows)]


def whiten(X, n_components, solver="eigh", rank_rtol=1e-10):
    """Centre and whiten X (N, D) to unit variance.

    Returns ``(Z (N, L), mean (D,), K (L, D), lambda_L (L,), U_L (D, L))`` with
    z = K (x - mean), K = diag(lambda_L)^{-1/2} U_L^T and Cov[z] = I_L
    (1/N normalisation).  ``solver="eigh"`` decomposes the D x D covariance
    Sigma = sum_n (x_n - mean)(x_n - mean)^T / N (accumulated over row blocks;
    fast); ``"svd"`` the centred data itself (X_c = P diag(sigma) U^T,
    lambda = sigma^2 / N, Z = sqrt(N) P_L; slower, more accurate when the
    covariance is ill conditioned).  Raises ValueError when
    lambda_L <= rank_rtol * lambda_max (the data have rank < L).
    """
    xp = get_namespace(X)
    N, D = X.shape
    L = n_components
    mean = xp.mean(X, axis=0)
    if solver == "eigh":
        scatter = xp.zeros((D, D), dtype=X.dtype, device=X.device)
        for rows in _blocks(N):
            Xc = X[rows, :] - mean  # (B, D)
            scatter = scatter + xp.matmul(Xc.T, Xc)
        lam, U = xp.linalg.eigh(scatter / float(N))  # ascending
        lam = xp.flip(lam, axis=0)[:L]
        U = xp.flip(U, axis=1)[:, :L]  # (D, L)
    elif solver == "svd":
        P, sigma, Vt = xp.linalg.svd(X - mean, full_matrices=False)  # P (N, D), Vt (D, D)
        lam = sigma[:L] * sigma[:L] / float(N)
        U = Vt[:L, :].T  # (D, L)
    else:
        raise ValueError(f"whiten_solver must be 'eigh' or 'svd'; got {solver!r}.")
    lam_max = item(lam[0])
    lam_min = item(lam[L - 1])
    if not lam_min > rank_rtol * max(lam_max, 0.0) or lam_max <= 0.0:
        rank = int(item(xp.sum(xp.astype(lam > rank_rtol * lam_max, xp.int64))))
        raise ValueError(
            f"X is rank deficient: its covariance has only {rank} eigenvalue(s) above "
            f"{rank_rtol:g} x the largest ({lam_max:.3g}), fewer than n_components={L}. "
            "Use n_components <= the rank of X, or remove duplicated or constant columns.")
    K = U.T / xp.sqrt(lam)[:, None]  # (L, D)
    if solver == "svd":
        Z = P[:, :L] * (float(N) ** 0.5)
    else:
        Z = project(X, mean, K)
    return Z, mean, K, lam, U


def project(X, mean, M):
    """(x_n - mean) M^T for every row, shape (N, L) for M (L, D); by row blocks."""
    xp = get_namespace(X, M)
    M_T = M.T  # (D, L)
    blocks = []
    for rows in _blocks(X.shape[0]):
        X_b = X[rows, :] if mean is None else X[rows, :] - mean
        blocks.append(xp.matmul(X_b, M_T))
    return xp.concat(blocks, axis=0)


def newton_statistics(Z, W, fun="logcosh", alpha=1.0):
    """E[g(W z) z^T] (L', L) and E[g'(W z)] (L',) over the rows z_n of Z (N, L).

    W is (L', L).  Accumulated over row blocks, so that no (N, L') array of
    W z is held at once: sum_blocks g(Z_b W^T)^T Z_b / N.
    """
    xp = get_namespace(Z, W)
    N = Z.shape[0]
    W_T = W.T  # (L, L')
    g_z = xp.zeros((W.shape[0], Z.shape[1]), dtype=Z.dtype, device=Z.device)
    g_prime = xp.zeros((W.shape[0],), dtype=Z.dtype, device=Z.device)
    for rows in _blocks(N):
        Z_b = Z[rows, :]  # (B, L)
        g, g_prime_mean = contrast(xp.matmul(Z_b, W_T), fun, alpha)  # (B, L')
        g_z = g_z + xp.matmul(g.T, Z_b)
        g_prime = g_prime + g_prime_mean * float(Z_b.shape[0])
    return g_z / float(N), g_prime / float(N)


def symmetric_decorrelation(W):
    """W <- (W W^T)^{-1/2} W (rows orthonormal), via eigh of W W^T = E diag(d) E^T."""
    xp = get_namespace(W)
    d, E = xp.linalg.eigh(xp.matmul(W, W.T))
    tiny = xp.finfo(W.dtype).smallest_normal
    d = xp.maximum(d, xp.full_like(d, tiny))
    return xp.matmul(xp.matmul(E / xp.sqrt(d)[None, :], E.T), W)


def ica_parallel(Z, W_init, fun="logcosh", alpha=1.0, tol=1e-4, max_iter=200):
    """Parallel FastICA on whitened Z (N, L) from W_init (L, L).

    W+ = E[g(W z) z^T] - diag(E[g'(W z)]) W;  W <- (W+ W+^T)^{-1/2} W+ until
    max_l | |diag(W+ W^T)_l| - 1 | < tol.  Returns ``(W, n_iter, converged)``.
    """
    xp = get_namespace(Z, W_init)
    W = symmetric_decorrelation(W_init)
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        g_z, g_prime_mean = newton_statistics(Z, W, fun, alpha)
        W_new = g_z - g_prime_mean[:, None] * W  # (L, L)
        W_new = symmetric_decorrelation(W_new)
        lim = item(xp.max(xp.abs(xp.abs(xp.sum(W_new * W, axis=1)) - 1.0)))
        W = W_new
        if lim < tol:
            converged = True
            break
    return W, n_iter, converged


def ica_deflation(Z, W_init, fun="logcosh", alpha=1.0, tol=1e-4, max_iter=200):
    """Deflationary FastICA: one unit at a time (Hyvarinen 1999, eq. 11 + Gram-Schmidt).

    w+ = E[z g(w^T z)] - E[g'(w^T z)] w;  w+ <- w+ - sum_{j<l} (w+ . w_j) w_j;
    w+ <- w+ / ||w+||, until | |w+ . w| - 1 | < tol.  Returns ``(W, n_iter, converged)``
    with n_iter the largest number of iterations over the units.
    """
    xp = get_namespace(Z, W_init)
    L = Z.shape[1]
    rows = []
    n_iter_max = 0
    all_converged = True
    for l in range(L):
        w = W_init[l, :]
        if rows:
            Wp = xp.stack(rows, axis=0)  # (l, L)
            w = w - xp.matmul(xp.matmul(Wp, w), Wp)
        w = w / xp.linalg.vector_norm(w)
        converged = False
        n_iter = 0
        for n_iter in range(1, max_iter + 1):
            g_z, g_prime_mean = newton_statistics(Z, w[None, :], fun, alpha)
            w_new = g_z[0, :] - g_prime_mean[0] * w
            if rows:
                w_new = w_new - xp.matmul(xp.matmul(Wp, w_new), Wp)
            w_new = w_new / xp.linalg.vector_norm(w_new)
            lim = abs(abs(item(xp.sum(w_new * w))) - 1.0)
            w = w_new
            if lim < tol:
                converged = True
                break
        rows.append(w)
        n_iter_max = max(n_iter_max, n_iter)
        all_converged = all_converged and converged
    return xp.stack(rows, axis=0), n_iter_max, all_converged


def amari_index(W, A):
    """Amari index of P = W A (L, L): 0 iff P is a scaled permutation, at most 1.

    d(P) = 1 / (2 L (L - 1)) [ sum_i (sum_j |p_ij| / max_k |p_ik| - 1)
                              + sum_j (sum_i |p_ij| / max_k |p_kj| - 1) ]
    (Amari, Cichocki & Yang 1996, normalised to [0, 1]).  ``W`` (L, D) is an
    unmixing matrix, ``A`` (D, L) the true mixing matrix.
    """
    xp = get_namespace(W, A)
    P = xp.abs(xp.matmul(W, A))  # (L, L)
    L = P.shape[0]
    if L < 2:
        return 0.0
    rows = xp.sum(xp.sum(P, axis=1) / xp.max(P, axis=1) - 1.0)
    cols = xp.sum(xp.sum(P, axis=0) / xp.max(P, axis=0) - 1.0)
    return item(rows + cols) / (2.0 * L * (L - 1))


class FastICA(TransformerMixin, ParamsMixin):
    """FastICA (Hyvarinen 1999) with unit-variance whitening.

    Parameters follow ``sklearn.decomposition.FastICA``: ``n_components``
    (default D), ``algorithm`` ("parallel" or "deflation"), ``fun``
    ("logcosh", "exp", "cube"), ``fun_args`` ({"alpha": a} for logcosh,
    1 <= a <= 2), ``max_iter``, ``tol``, ``w_init`` ((L, L) start; default
    standard normal from ``random_state``), ``whiten_solver`` ("eigh" or
    "svd").  Only ``whiten="unit-variance"`` exists: the sources have zero
    mean and identity covariance on the training data.

    ``n_subsample`` (an lvm_core addition): the fixed-point iteration is
    first run to ``tol`` on M random whitened rows (drawn with
    ``random_state``), and its result starts the iteration on all N rows,
    which then runs to the same ``tol`` as always -- the result passes the
    usual convergence test on all the data, usually after one or two
    full-data iterations instead of all of them.  ``"auto"``:
    M = max(10,000, 40 L^2), used when N >= 2 M; an int: M itself; ``None``:
    off.  The whitening always uses all rows.

    Fitted attributes: ``components_`` (L, D) unmixing matrix, ``mixing_``
    (D, L) its pseudo-inverse, ``mean_`` (D,), ``whitening_`` (L, D) = K,
    ``n_iter_`` (iterations on all rows), ``n_iter_subsample_`` (on the
    subsample; 0 when none), ``converged_``, ``n_features_in_``.
    """

    _array_attributes = ("components_", "mixing_", "mean_", "whitening_")

    def __init__(self, n_components=None, *, algorithm="parallel", whiten="unit-variance",
                 fun="logcosh", fun_args=None, max_iter=200, tol=1e-4, w_init=None,
                 whiten_solver="eigh", n_subsample="auto", random_state=None,
                 dtype="float64"):
        self.n_components = n_components
        self.algorithm = algorithm
        self.whiten = whiten
        self.fun = fun
        self.fun_args = fun_args
        self.max_iter = max_iter
        self.tol = tol
        self.w_init = w_init
        self.whiten_solver = whiten_solver
        self.n_subsample = n_subsample
        self.random_state = random_state
        self.dtype = dtype

    def _validate_X(self, X, fitting):
        if fitting:
            X = self._validate_data(X, reset=True, ndim=2, dtype_kind="numeric", min_rows=2)
        else:
            X = self._validate_data(X, reset=False, ndim=2, dtype_kind="numeric",
                                    n_features=self.mean_.shape[0])
        xp = get_namespace(X)
        dtype = getattr(xp, self.dtype) if fitting else self.mean_.dtype
        if X.dtype != dtype:
            X = xp.astype(X, dtype)
        return xp, X

    def _alpha(self):
        args = {} if self.fun_args is None else dict(self.fun_args)
        unknown = set(args) - {"alpha"}
        if unknown:
            raise ValueError(f"fun_args accepts only 'alpha'; got {sorted(unknown)}.")
        alpha = float(args.get("alpha", 1.0))
        if self.fun == "logcosh" and not 1.0 <= alpha <= 2.0:
            raise ValueError(f"fun_args['alpha'] must be in [1, 2] for logcosh; got {alpha}.")
        return alpha

    def _subsample_size(self, N, L):
        """M rows for the first stage, or None (see the class docstring)."""
        if self.n_subsample is None:
            return None
        if self.n_subsample == "auto":
            M = max(10000, 40 * L * L)
            return M if N >= 2 * M else None
        M = check_positive_int(self.n_subsample, "n_subsample", minimum=2)
        if M <= L:
            raise ValueError(f"n_subsample={M} must exceed n_components={L} (or be 'auto' "
                             "or None).")
        return M if M < N else None

    def fit(self, X, y=None):
        """Whiten X (N, D), then run the fixed-point iteration; returns ``self``."""
        self._fit(X)
        return self

    def fit_transform(self, X, y=None):
        """Fit and return the training sources W z_n, shape (N, L) (from the whitened data)."""
        Z, W = self._fit(X)
        return project(Z, None, W)

    def _fit(self, X):
        check_choice(self.algorithm, "algorithm", ("parallel", "deflation"))
        check_choice(self.whiten, "whiten", ("unit-variance",))
        check_choice(self.fun, "fun", CONTRASTS)
        check_choice(self.whiten_solver, "whiten_solver", ("eigh", "svd"))
        check_choice(self.dtype, "dtype", ("float64", "float32"))
        check_positive_int(self.max_iter, "max_iter")
        if not isinstance(self.tol, (int, float)) or not self.tol > 0:
            raise ValueError(f"tol must be a number > 0; got {self.tol!r}.")
        alpha = self._alpha()
        xp, X = self._validate_X(X, fitting=True)
        N, D = X.shape
        L = D if self.n_components is None else check_positive_int(self.n_components, "n_components")
        if L > D:
            raise ValueError(f"n_components={L} must be <= n_features={D}. Use at most {D} "
                             "components.")
        if N <= L:
            raise ValueError(f"FastICA needs more samples than components to whiten; got "
                             f"n_samples={N}, n_components={L}. Pass more data or fewer "
                             "components.")
        M = self._subsample_size(N, L)
        Z, mean, K, lam, U = whiten(X, L, solver=self.whiten_solver)
        rng = as_generator(self.random_state)
        if self.w_init is None:
            W0 = normal(rng, (L, L), like=X)
        else:
            W0 = asarray(self.w_init, like=X, dtype=X.dtype)
            if tuple(W0.shape) != (L, L):
                raise ValueError(f"w_init must have shape ({L}, {L}) (n_components, "
                                 f"n_components); got {tuple(W0.shape)}.")
        solve = ica_parallel if self.algorithm == "parallel" else ica_deflation
        n_iter_sub = 0
        if M is not None:
            rows = permutation(rng, N, like=X)[:M]
            W0, n_iter_sub, _ = solve(xp.take(Z, rows, axis=0), W0, fun=self.fun, alpha=alpha,
                                      tol=float(self.tol), max_iter=self.max_iter)
        W, n_iter, converged = solve(Z, W0, fun=self.fun, alpha=alpha, tol=float(self.tol),
                                     max_iter=self.max_iter)
        self.n_iter_subsample_ = n_iter_sub
        self.mean_ = mean
        self.whitening_ = K
        self.components_ = xp.matmul(W, K)  # (L, D)
        self.mixing_ = xp.matmul(U * xp.sqrt(lam)[None, :], W.T)  # (D, L)
        self.n_iter_ = n_iter
        self.converged_ = converged
        return Z, W

    def transform(self, X):
        """Sources s = components_ (x - mean_), shape (N, L)."""
        check_is_fitted(self, ["components_", "mean_"])
        self._check_parameter_shapes(("components_", 2), lambda L, D: {"mean_": (D,)})
        _, X = self._validate_X(X, fitting=False)
        return project(X, self.mean_, self.components_)

    def inverse_transform(self, S):
        """x_hat = mixing_ s + mean_, shape (N, D); S is (N, L)."""
        check_is_fitted(self, ["mixing_", "mean_"])
        S = check_array(S, "S", ndim=2, dtype_kind="numeric", n_features=self.mixing_.shape[1])
        xp = get_namespace(S, self.mixing_)
        if S.dtype != self.mixing_.dtype:
            S = xp.astype(S, self.mixing_.dtype)
        return xp.matmul(S, self.mixing_.T) + self.mean_
