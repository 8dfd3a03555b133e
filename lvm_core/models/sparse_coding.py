"""Sparse coding: Lasso codes by ISTA / FISTA and dictionary learning.

References: Beck & Teboulle (2009), "A fast iterative shrinkage-thresholding
algorithm for linear inverse problems", SIAM J. Imaging Sci. 2(1) (ISTA and
FISTA with backtracking, sec. 3-4); O'Donoghue & Candes (2015), "Adaptive
restart for accelerated gradient schemes", Found. Comput. Math. 15 (the
gradient restart test, eq. 12); Mairal, Bach, Ponce & Sapiro (2010), "Online
learning for matrix factorization and sparse coding", JMLR 11 (block
coordinate dictionary update, Algorithm 2; minibatch statistics, sec. 3.4);
Lee, Battle, Raina & Ng (2007), "Efficient sparse coding algorithms", NIPS
(the feature-sign step of the support polish); Olshausen & Field (1996);
Goodfellow, Bengio & Courville, Deep Learning, sec. 13.4.

Layout (scikit-learn's): data X (N, D), dictionary (K, D) with one atom per
row, codes C (N, K), reconstruction C @ dictionary.  The Lasso objective of
one sample and its smooth part::

    F(c) = f(c) + alpha ||c||_1,    f(c) = 1/2 ||x - c Dict||^2,
    grad f(c) = (c Dict - x) Dict^T = c G - x Dict^T,    G = Dict Dict^T (K, K).

The N problems are independent: each row is solved with its own step,
momentum and stopping test, in Gram form (G = Dict Dict^T, b = Dict x) by
:func:`lvm_core.ops.lasso.prox_gradient_lasso`.  Proximal gradient step with
step 1/L (the prox of the l1 norm is soft thresholding)::

    p_L(y) = S_{alpha/L}(y - grad f(y) / L),   S_t(v) = sign(v) max(|v| - t, 0)

ISTA: c_{k+1} = p_L(c_k).  FISTA: c_{k+1} = p_L(y_k),
t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2, y_{k+1} = c_{k+1} + ((t_k - 1) / t_{k+1}) (c_{k+1} - c_k),
with F(c_k) - F* <= 2 L ||c_0 - c*||^2 / (k + 1)^2 (Beck & Teboulle, thm 4.4).
Backtracking (their step "find the smallest L = eta^i L_{k-1}") accepts L when
F(p_L(y)) <= Q_L(p_L(y), y); for this quadratic f that reads
(p - y)^T G (p - y) <= L ||p - y||^2.  Without backtracking L is the
largest eigenvalue of G.

Support polish (``polish=True``, the default of :func:`sparse_encode`): once
a row's support and signs are stable, the Lasso restricted to them is solved
exactly (G_SS z = b_S - alpha s); the row stops when that point satisfies the
optimality conditions, and otherwise continues from it (or from the
feature-sign step towards it); see :mod:`lvm_core.ops.lasso`.

scikit-learn's ``sparse_encode`` divides alpha by D for ``lasso_cd`` and
``lasso_lars`` (its Lasso objective is F / D): our ``alpha`` equals its
``alpha`` for those solvers and the objectives differ by the factor D.
"""
from __future__ import annotations

import math

from ..backend import asarray, get_namespace, item
from ..ops.lasso import lipschitz_constant, prox_gradient_lasso
from ..random import as_generator, permutation
from ..validation import (check_array, check_choice, check_is_fitted, check_magnitude,
                          check_positive_int)
from .base import ParamsMixin, TransformerMixin

__all__ = [
    "lasso_objective",
    "soft_threshold",
    "ista",
    "fista",
    "sparse_encode",
    "update_dictionary",
    "DictionaryLearning",
]


def lasso_objective(X, dictionary, code, alpha):
    """F(c_n) = 1/2 ||x_n - c_n Dict||^2 + alpha ||c_n||_1 for every row, shape (N,)."""
    xp = get_namespace(X, dictionary, code)
    R = xp.matmul(code, dictionary) - X  # (N, D)
    return 0.5 * xp.sum(R * R, axis=1) + alpha * xp.sum(xp.abs(code), axis=1)


def soft_threshold(V, threshold):
    """S_t(v) = sign(v) max(|v| - t, 0), elementwise (the prox of t ||.||_1)."""
    xp = get_namespace(V)
    return xp.sign(V) * xp.maximum(xp.abs(V) - threshold, xp.zeros_like(V))


def _check_problem(X, dictionary, alpha, code_init):
    X = check_array(X, "X", ndim=2, dtype_kind="real floating")
    dictionary = check_array(dictionary, "dictionary", ndim=2, dtype_kind="real floating",
                             n_features=X.shape[1], xp_like=X)
    xp = get_namespace(X, dictionary)
    if dictionary.dtype != X.dtype:
        dictionary = xp.astype(dictionary, X.dtype)
    # G = Dict Dict^T and B = X Dict^T must be finite, and every atom's squared norm
    # positive, or the step-size search of the solver never ends
    check_magnitude(X, "X")
    check_magnitude(dictionary.T, "dictionary")
    sq_norms = xp.sum(dictionary * dictionary, axis=1)  # (K,)
    if not bool(xp.all(sq_norms > 0)):
        raise ValueError(
            "dictionary has an atom (row) whose squared norm is 0 (all zeros, or too small "
            "to square in its dtype). Remove it or rescale the dictionary (unit-norm atoms)."
        )
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0 \
            or math.isinf(alpha):
        raise ValueError(f"alpha must be a finite number >= 0; got {alpha!r}.")
    N, K = X.shape[0], dictionary.shape[0]
    if code_init is None:
        C = xp.zeros((N, K), dtype=X.dtype, device=X.device)
    else:
        C = check_array(code_init, "code_init", ndim=2, dtype_kind="real floating", xp_like=X)
        if tuple(C.shape) != (N, K):
            raise ValueError(f"code_init must have shape ({N}, {K}) (n_samples, n_atoms); got "
                             f"{tuple(C.shape)}.")
        C = xp.astype(C, X.dtype)
    return xp, X, dictionary, C


def _solve(X, dictionary, alpha, code_init, max_iter, tol, backtracking, lipschitz, eta,
           accelerate, restart, polish=False):
    xp, X, dictionary, C0 = _check_problem(X, dictionary, alpha, code_init)
    max_iter = check_positive_int(max_iter, "max_iter")
    if not isinstance(tol, (int, float)) or not tol >= 0:
        raise ValueError(f"tol must be a number >= 0; got {tol!r}.")
    if not isinstance(eta, (int, float)) or not eta > 1:
        raise ValueError(f"eta must be a number > 1; got {eta!r}.")
    D_T = xp.asarray(dictionary.T, copy=True)  # (D, K)
    G = xp.matmul(dictionary, D_T)  # (K, K) = Dict Dict^T
    B = xp.matmul(X, D_T)  # (N, K) = X Dict^T
    if lipschitz is not None:
        if not isinstance(lipschitz, (int, float)) or not lipschitz > 0:
            raise ValueError(f"lipschitz must be a number > 0; got {lipschitz!r}.")
        L0 = float(lipschitz)
    elif backtracking:
        # a lower bound of lambda_max(G) (the largest squared atom norm); backtracking raises it
        L0 = max(item(xp.max(xp.linalg.diagonal(G))), 1e-300)
    else:
        L0 = max(lipschitz_constant(G), 1e-300)
    C, n_iter, _ = prox_gradient_lasso(G, B, float(alpha), C0, L0, max_iter, float(tol),
                                       accelerate=accelerate, restart=restart,
                                       backtracking=backtracking, eta=float(eta), polish=polish)
    return C, int(item(xp.max(n_iter)))


def ista(X, dictionary, alpha, code_init=None, max_iter=1000, tol=1e-6, backtracking=True,
         lipschitz=None, eta=2.0):
    """ISTA (Beck & Teboulle 2009, sec. 3): c_{k+1} = p_L(c_k) for every row.

    Each row stops when ||c_{k+1} - c_k|| <= tol ||c_{k+1}|| or after
    ``max_iter`` steps; F(c_k) - F* <= L ||c_0 - c*||^2 / (2 k).  With
    ``backtracking`` each row finds its L from the largest squared atom norm
    upwards by factors ``eta``; otherwise L = ``lipschitz`` or lambda_max(G).
    Returns ``(code (N, K), n_iter)`` (n_iter: the most steps any row took).
    """
    return _solve(X, dictionary, alpha, code_init, max_iter, tol, backtracking, lipschitz, eta,
                  accelerate=False, restart=False)


def fista(X, dictionary, alpha, code_init=None, max_iter=1000, tol=1e-6, backtracking=True,
          lipschitz=None, eta=2.0, restart=True, polish=False):
    """FISTA (Beck & Teboulle 2009, sec. 4) for every row, with optional adaptive restart.

    c_{k+1} = p_L(y_k); t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2;
    y_{k+1} = c_{k+1} + ((t_k - 1) / t_{k+1}) (c_{k+1} - c_k).
    ``restart=True`` applies O'Donoghue & Candes's gradient test: where
    <y_k - c_{k+1}, c_{k+1} - c_k> > 0 the momentum of that row is reset
    (t = 1).  ``restart=False`` is plain FISTA with
    F(c_k) - F* <= 2 L ||c_0 - c*||^2 / (k + 1)^2.  Stopping and L as in
    :func:`ista`.  ``polish=True`` adds the support polish of
    :mod:`lvm_core.ops.lasso`: once a row's support and signs are stable, the
    Lasso restricted to them is solved exactly, and the row stops when that
    point satisfies the optimality (KKT) conditions.  Returns
    ``(code (N, K), n_iter)``.
    """
    return _solve(X, dictionary, alpha, code_init, max_iter, tol, backtracking, lipschitz, eta,
                  accelerate=True, restart=restart, polish=polish)


def sparse_encode(X, dictionary, alpha=1.0, algorithm="fista", code_init=None, max_iter=1000,
                  tol=1e-6, backtracking=True, restart=True, polish=True):
    """Lasso codes argmin_c 1/2 ||x - c Dict||^2 + alpha ||c||_1 of every row of X.

    X (N, D), dictionary (K, D) -> code (N, K).  ``algorithm`` "fista"
    (default; with ``restart`` and ``polish``) or "ista"; see :func:`fista`,
    :func:`ista`.
    scikit-learn's ``sparse_encode(..., algorithm="lasso_cd", alpha=a)``
    minimises the same objective divided by D, so ``alpha=a`` matches it.
    """
    check_choice(algorithm, "algorithm", ("fista", "ista"))
    if algorithm == "ista":
        return ista(X, dictionary, alpha, code_init=code_init, max_iter=max_iter, tol=tol,
                    backtracking=backtracking)[0]
    return fista(X, dictionary, alpha, code_init=code_init, max_iter=max_iter, tol=tol,
                 backtracking=backtracking, restart=restart, polish=polish)[0]


def update_dictionary(dictionary, A, B, X=None, rng=None, n_passes=1):
    """Block-coordinate descent on the atoms with unit norm (Mairal et al. 2010, Alg. 2).

    With A = C^T C (K, K) and B = C^T X (K, D), for j = 1..K::

        u_j = d_j + (b_j - a_j Dict) / A_jj,     d_j = u_j / ||u_j||

    (the minimiser of 1/2 ||X - C Dict||^2 over d_j, projected onto the unit
    sphere).  An atom no code uses (A_jj = 0) or whose update vanishes is
    replaced by a random row of ``X`` (drawn with ``rng``), normalised.
    Returns a new (K, D) array; ``dictionary`` is not modified.
    """
    xp = get_namespace(dictionary, A, B)
    K = dictionary.shape[0]
    Dict = xp.asarray(dictionary, copy=True)  # (K, D), updated atom by atom
    if X is not None:
        rng = as_generator(rng)
    a_floor = 1e-12 * max(item(xp.max(xp.linalg.diagonal(A))), 1e-300)
    for _ in range(n_passes):
        for j in range(K):
            a_jj = item(A[j, j])
            norm = 0.0
            if a_jj > a_floor:
                u = Dict[j, :] + (B[j, :] - xp.matmul(A[j, :], Dict)) / a_jj  # (D,)
                norm = item(xp.linalg.vector_norm(u))
            if norm <= 1e-12:
                if X is None:
                    continue
                u = X[int(rng.integers(X.shape[0])), :]
                norm = max(item(xp.linalg.vector_norm(u)), 1e-300)
            Dict[j, :] = u / norm
    return Dict


class DictionaryLearning(TransformerMixin, ParamsMixin):
    """Dictionary learning: FISTA codes alternating with block-coordinate atom updates.

    minimise over Dict (unit-norm rows) and C:
    sum_n 1/2 ||x_n - c_n Dict||^2 + alpha ||c_n||_1.

    ``batch_size=None``: batch alternation (codes of all N rows, warm-started
    from the previous ones, then one pass of :func:`update_dictionary` with
    A = C^T C, B = C^T X), until the objective changes by less than ``tol``
    (relative) or ``max_iter`` alternations.  ``batch_size=b``: Mairal et
    al.'s minibatch statistics: for minibatch t of b rows,
    A <- beta_t A + C_t^T C_t / b, B <- beta_t B + C_t^T X_t / b with
    beta_t = (1 - 1/t)^rho, then an atom pass; ``max_iter`` epochs.

    Fitted: ``components_`` (K, D) unit-norm atoms, ``objective_`` (the
    per-sample mean objective after each iteration / epoch), ``n_iter_``.
    """

    _array_attributes = ("components_",)

    def __init__(self, n_components=64, *, alpha=1.0, max_iter=100, tol=1e-6, batch_size=None,
                 forget_rho=1.0, code_max_iter=200, code_tol=1e-4, dict_init=None,
                 random_state=None, dtype="float64"):
        self.n_components = n_components
        self.alpha = alpha
        self.max_iter = max_iter
        self.tol = tol
        self.batch_size = batch_size
        self.forget_rho = forget_rho
        self.code_max_iter = code_max_iter
        self.code_tol = code_tol
        self.dict_init = dict_init
        self.random_state = random_state
        self.dtype = dtype

    def _validate_X(self, X, fitting):
        if fitting:
            X = self._validate_data(X, reset=True, ndim=2, dtype_kind="numeric")
        else:
            X = self._validate_data(X, reset=False, ndim=2, dtype_kind="numeric",
                                    n_features=self.components_.shape[1])
        xp = get_namespace(X)
        dtype = getattr(xp, self.dtype) if fitting else self.components_.dtype
        if X.dtype != dtype:
            X = xp.astype(X, dtype)
        return xp, X

    def _initial_dictionary(self, xp, X, K, rng):
        N, D = X.shape
        if self.dict_init is not None:
            Dict = asarray(self.dict_init, like=X, dtype=X.dtype)
            if tuple(Dict.shape) != (K, D):
                raise ValueError(f"dict_init must have shape ({K}, {D}) (n_components, "
                                 f"n_features); got {tuple(Dict.shape)}.")
        else:
            if N < K:
                raise ValueError(f"DictionaryLearning starts from {K} distinct data rows and "
                                 f"needs n_samples >= n_components; got n_samples={N}. Pass "
                                 "more data, fewer components, or dict_init.")
            idx = permutation(rng, N, like=X)[:K]
            Dict = xp.take(X, idx, axis=0)
        norms = xp.linalg.vector_norm(Dict, axis=1, keepdims=True)
        if bool(xp.any(norms <= 0.0)):
            raise ValueError("The initial dictionary has an all-zero atom; remove all-zero "
                             "rows from X or pass dict_init with nonzero rows.")
        return Dict / norms

    def _encode(self, X, Dict, code_init=None):
        return fista(X, Dict, float(self.alpha), code_init=code_init,
                     max_iter=self.code_max_iter, tol=self.code_tol, polish=True)[0]

    def fit(self, X, y=None):
        """Learn the dictionary from X (N, D); returns ``self``."""
        check_choice(self.dtype, "dtype", ("float64", "float32"))
        K = check_positive_int(self.n_components, "n_components")
        check_positive_int(self.max_iter, "max_iter")
        if not isinstance(self.alpha, (int, float)) or not self.alpha >= 0:
            raise ValueError(f"alpha must be a number >= 0; got {self.alpha!r}.")
        xp, X = self._validate_X(X, fitting=True)
        rng = as_generator(self.random_state)  # one generator for the whole fit
        Dict = self._initial_dictionary(xp, X, K, rng)
        N = X.shape[0]
        history = []
        if self.batch_size is None:
            C = None
            for it in range(1, self.max_iter + 1):
                C = self._encode(X, Dict, C)
                Dict = update_dictionary(Dict, xp.matmul(C.T, C), xp.matmul(C.T, X), X=X, rng=rng)
                history.append(item(xp.mean(lasso_objective(X, Dict, C, float(self.alpha)))))
                if it > 1 and abs(history[-2] - history[-1]) <= self.tol * abs(history[-2]):
                    break
        else:
            b = check_positive_int(self.batch_size, "batch_size")
            A = xp.zeros((K, K), dtype=X.dtype, device=X.device)
            B = xp.zeros((K, X.shape[1]), dtype=X.dtype, device=X.device)
            t = 0
            for it in range(1, self.max_iter + 1):
                order = permutation(rng, N, like=X)
                total = 0.0
                for start in range(0, N, b):
                    X_b = xp.take(X, order[start:start + b], axis=0)  # (b, D)
                    C_b = self._encode(X_b, Dict)
                    t += 1
                    beta = (1.0 - 1.0 / t) ** float(self.forget_rho)
                    A = beta * A + xp.matmul(C_b.T, C_b) / float(X_b.shape[0])
                    B = beta * B + xp.matmul(C_b.T, X_b) / float(X_b.shape[0])
                    Dict = update_dictionary(Dict, A, B, X=X_b, rng=rng)
                    total += item(xp.sum(lasso_objective(X_b, Dict, C_b, float(self.alpha))))
                history.append(total / N)
                if it > 1 and abs(history[-2] - history[-1]) <= self.tol * abs(history[-2]):
                    break
        self.components_ = Dict
        self.objective_ = history
        self.n_iter_ = len(history)
        self.n_features_in_ = X.shape[1]
        return self

    def transform(self, X):
        """Lasso codes of X (N, D) under ``components_``, shape (N, K) (FISTA)."""
        check_is_fitted(self, ["components_"])
        self._check_parameter_shapes(("components_", 2), lambda K, D: {})
        _, X = self._validate_X(X, fitting=False)
        return sparse_encode(X, self.components_, float(self.alpha), tol=self.code_tol,
                             max_iter=max(self.code_max_iter, 1000))

    def fit_transform(self, X, y=None):
        """Fit, then return the codes of X."""
        return self.fit(X).transform(X)

    def inverse_transform(self, code):
        """Reconstruction code @ components_, shape (N, D)."""
        check_is_fitted(self, ["components_"])
        code = check_array(code, "code", ndim=2, dtype_kind="numeric",
                           n_features=self.components_.shape[0])
        xp = get_namespace(code, self.components_)
        return xp.matmul(xp.astype(code, self.components_.dtype), self.components_)
