"""Proximal-gradient Lasso solvers (ISTA / FISTA), row by row, in Gram form.

References: Beck & Teboulle (2009), "A fast iterative shrinkage-thresholding
algorithm for linear inverse problems", SIAM J. Imaging Sci. 2(1) (ISTA,
FISTA, backtracking); O'Donoghue & Candes (2015), "Adaptive restart for
accelerated gradient schemes", Found. Comput. Math. 15 (gradient restart).

Each row n of B (N, K) is its own problem, with G (K, K) symmetric PSD::

    F_n(c) = 1/2 c^T G c - b_n^T c + alpha ||c||_1      (+ const)
    (for sparse coding G = Dict Dict^T, b_n = Dict x_n)

and every row runs the same iteration with its own step 1/L_n, momentum t_n
and stopping test (h = G c is carried along so that G is applied once per
step, to the sparse new iterate only)::

    p   = S_{alpha/L}(y - (G y - b) / L)                       S_t: soft threshold
    backtracking: while (p - y)^T G (p - y) > L ||p - y||^2:  L <- eta L, recompute p
    FISTA: t+ = (1 + sqrt(1 + 4 t^2)) / 2, beta = (t - 1) / t+;  ISTA: beta = 0
    restart: if (y - p)^T (p - c) > 0:  beta = 0, t+ = 1
    y+  = p + beta (p - c),   G y+ = G p + beta (G p - G c)
    stop when ||p - c|| <= tol ||p||  (or after max_iter steps)

Support polish (``polish=True``; an active-set finish, cf. the homotopy /
LARS optimality conditions of Osborne, Presnell & Turlach 2000): once the
support S and signs s of p have not changed for ``POLISH_AFTER`` steps, solve
the Lasso restricted to them exactly::

    G_SS z = b_S - alpha s        (Cholesky)

If sign(z) = s, the point c = (z on S, 0 elsewhere) minimises F over the
face {supp c = S, sign c = s} that contains p, so F(c) <= F(p): p is replaced
by c.  If moreover |(G c - b)_j| <= alpha off S (the KKT conditions, with a
round-off slack), c is the minimiser and the row stops.  If some signs of z
differ from s, p moves towards z only up to the first coordinate that
reaches zero, which leaves the support (the feature-sign step of Lee, Battle,
Raina & Ng 2007; F decreases along the segment).  In both cases the iteration
goes on from the new point with its momentum reset (t = 1).

:func:`prox_gradient_lasso` runs a numba kernel (rows in parallel, each
product G p summed over the nonzeros of p only) for C-contiguous NumPy
float32/float64 arrays and the array-API reference
:func:`prox_gradient_lasso_reference` (all rows at once, finished rows
frozen) for everything else; both follow the recursion above step by step.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
import numpy as np  # noqa: E402

from .._jit import njit  # noqa: E402
from ..backend import get_namespace, is_numpy_namespace, item  # noqa: E402

__all__ = ["prox_gradient_lasso", "prox_gradient_lasso_reference", "lipschitz_constant"]

_SLACK_EPS = 64  # backtracking accepts L when num <= L den (1 + 64 eps): room for round-off
_PIVOT_EPS = 1e4  # a Cholesky pivot below 1e4 eps G_jj means G_SS is singular: no polish
POLISH_AFTER = 2  # steps with an unchanged support (and signs) before a polish is tried


def prox_gradient_lasso(G, B, alpha, C0, L0, max_iter, tol, accelerate=True, restart=True,
                        backtracking=False, eta=2.0, polish=False):
    """ISTA (``accelerate=False``) or FISTA on every row; see the module docstring.

    G (K, K), B (N, K), C0 (N, K) start, L0 > 0 initial (or fixed) Lipschitz
    estimate.  Returns ``(C (N, K), n_iter (N,) int64, L (N,))``; C0 is not
    modified.
    """
    xp = get_namespace(G, B, C0)
    fusable = (is_numpy_namespace(xp) and all(isinstance(a, np.ndarray) for a in (G, B, C0))
               and G.dtype == B.dtype == C0.dtype and G.dtype in (np.float32, np.float64))
    if not fusable:
        return prox_gradient_lasso_reference(G, B, alpha, C0, L0, max_iter, tol, accelerate,
                                             restart, backtracking, eta, polish)
    dt = G.dtype.type
    G = np.ascontiguousarray(G)
    B = np.ascontiguousarray(B)
    C = np.array(C0, dtype=G.dtype, order="C", copy=True)
    N = B.shape[0]
    n_iter = np.zeros(N, dtype=np.int64)
    L = np.full(N, L0, dtype=G.dtype)
    n_chunks = max(1, min(N, 8 * numba.get_num_threads()))
    slack = dt(1.0 + _SLACK_EPS * np.finfo(G.dtype).eps)
    kkt_slack = dt(_SLACK_EPS * np.finfo(G.dtype).eps)
    _lasso_rows(G, B, C, L, n_iter, dt(alpha), int(max_iter), dt(tol), bool(accelerate),
                bool(restart), bool(backtracking), dt(eta), slack, bool(polish), POLISH_AFTER,
                kkt_slack, dt(_PIVOT_EPS * np.finfo(G.dtype).eps), n_chunks)
    return C, n_iter, L


@njit(parallel=True, error_model="numpy",
            fastmath={"reassoc", "contract", "arcp", "nsz"})
def _lasso_rows(G, B, C, L, n_iter, alpha, max_iter, tol, accelerate, restart, backtracking, eta,
                slack, polish, polish_after, kkt_slack, pivot_tol, n_chunks):
    N, K = B.shape
    one = G.dtype.type(1.0)
    zero = G.dtype.type(0.0)
    two = G.dtype.type(2.0)
    four = G.dtype.type(4.0)
    for chunk in numba.prange(n_chunks):
        y = np.empty(K, dtype=G.dtype)
        h = np.empty(K, dtype=G.dtype)
        hy = np.empty(K, dtype=G.dtype)
        p = np.empty(K, dtype=G.dtype)
        hp = np.empty(K, dtype=G.dtype)
        support = np.empty(K, dtype=np.int64)
        A = np.empty((K, K), dtype=G.dtype)  # G_SS and its Cholesky factor
        z = np.empty(K, dtype=G.dtype)
        gz = np.empty(K, dtype=G.dtype)
        prev_support = np.empty(K, dtype=np.int64)
        start = chunk * N // n_chunks
        stop = (chunk + 1) * N // n_chunks
        for n in range(start, stop):
            c = C[n]
            b = B[n]
            # h = G c over the nonzeros of c
            h[:] = zero
            for j in range(K):
                cj = c[j]
                if cj != zero:
                    for i in range(K):
                        h[i] += cj * G[j, i]
            y[:] = c
            hy[:] = h
            t = one
            Ln = L[n]
            steps = 0
            stable = 0
            prev_nnz = 0
            for j in range(K):
                if c[j] != zero:
                    prev_support[prev_nnz] = j
                    prev_nnz += 1
            b_max = zero
            for j in range(K):
                b_max = max(b_max, abs(b[j]))
            kkt_bound = alpha + kkt_slack * (alpha + b_max)
            for _ in range(max_iter):
                jumped = False
                while True:
                    inv_L = one / Ln
                    thr = alpha * inv_L
                    # p = S_thr(v) = v - clip(v, -thr, thr), branch-free (vectorises)
                    for j in range(K):
                        v = y[j] - (hy[j] - b[j]) * inv_L
                        p[j] = v - min(max(v, -thr), thr)
                    nnz = 0
                    for j in range(K):
                        if p[j] != zero:
                            support[nnz] = j
                            nnz += 1
                    hp[:] = zero
                    for q in range(nnz):
                        j = support[q]
                        pj = p[j]
                        for i in range(K):
                            hp[i] += pj * G[j, i]
                    if not backtracking:
                        break
                    num = zero
                    den = zero
                    for j in range(K):
                        d = p[j] - y[j]
                        num += d * (hp[j] - hy[j])
                        den += d * d
                    if num <= Ln * den * slack:
                        break
                    Ln = Ln * eta
                if polish:
                    # same support and signs as c (whose support is prev_support[:prev_nnz])
                    same = nnz == prev_nnz
                    if same:
                        for q in range(nnz):
                            j = support[q]
                            if j != prev_support[q] or (p[j] > zero) != (c[j] > zero):
                                same = False
                                break
                    for q in range(nnz):
                        prev_support[q] = support[q]
                    prev_nnz = nnz
                    stable = stable + 1 if same else 0
                    if stable >= polish_after:
                        stable = 0
                        status = _polish_row(G, b, p, support, nnz, alpha, kkt_bound, A, z, gz,
                                             pivot_tol)
                        if status == 2:  # p is the minimiser
                            for j in range(K):
                                c[j] = p[j]
                            steps += 1
                            break
                        if status == 1:  # p moved (within its face, or to a smaller one)
                            jumped = True
                            prev_nnz = 0
                            for j in range(K):
                                hp[j] = gz[j]
                                if p[j] != zero:
                                    prev_support[prev_nnz] = j
                                    prev_nnz += 1
                t_new = one
                beta = zero
                if accelerate:
                    t_new = (one + np.sqrt(one + four * t * t)) / two
                    beta = (t - one) / t_new
                step2 = zero
                p2 = zero
                gap = zero
                for j in range(K):
                    s = p[j] - c[j]
                    step2 += s * s
                    p2 += p[j] * p[j]
                    gap += (y[j] - p[j]) * s
                if (accelerate and restart and gap > zero) or jumped:
                    beta = zero
                    t_new = one
                for j in range(K):
                    s = p[j] - c[j]
                    y[j] = p[j] + beta * s
                    hy[j] = hp[j] + beta * (hp[j] - h[j])
                    c[j] = p[j]
                    h[j] = hp[j]
                t = t_new
                steps += 1
                if step2 <= tol * tol * p2:
                    break
            L[n] = Ln
            n_iter[n] = steps


@njit(error_model="numpy")
def _polish_row(G, b, p, support, nnz, alpha, kkt_bound, A, z, gz, pivot_tol):
    """Solve G_SS z = b_S - alpha s by Cholesky.  Returns 0 (singular: nothing changed),
    1 (p moved to z, or towards z up to the first sign change; G p in gz; not optimal)
    or 2 (z is the minimiser, written into p)."""
    zero = G.dtype.type(0.0)
    K = G.shape[0]
    for a in range(nnz):
        ja = support[a]
        z[a] = b[ja] - alpha * np.sign(p[ja])
        for q in range(nnz):
            A[a, q] = G[ja, support[q]]
    # Cholesky A = R R^T in the lower triangle, then two triangular solves
    for a in range(nnz):
        d = A[a, a]
        for q in range(a):
            d -= A[a, q] * A[a, q]
        if not d > pivot_tol * G[support[a], support[a]]:
            return 0  # G_SS (numerically) singular: more atoms than dimensions
        d = np.sqrt(d)
        A[a, a] = d
        for r in range(a + 1, nnz):
            v = A[r, a]
            for q in range(a):
                v -= A[r, q] * A[a, q]
            A[r, a] = v / d
    for a in range(nnz):
        v = z[a]
        for q in range(a):
            v -= A[a, q] * z[q]
        z[a] = v / A[a, a]
    for a in range(nnz - 1, -1, -1):
        v = z[a]
        for q in range(a + 1, nnz):
            v -= A[q, a] * z[q]
        z[a] = v / A[a, a]
    # feature-sign step: if z leaves the orthant of p, go from p towards z up to the
    # first coordinate that reaches zero (F decreases along the way) and drop it
    gamma = G.dtype.type(1.0)
    a_min = -1
    for a in range(nnz):
        pa = p[support[a]]
        if np.sign(z[a]) != np.sign(pa):
            g_a = pa / (pa - z[a])
            if g_a < gamma or a_min < 0:
                gamma = g_a
                a_min = a
    if a_min >= 0:
        for a in range(nnz):
            ja = support[a]
            z[a] = p[ja] + gamma * (z[a] - p[ja])
        z[a_min] = zero
    # KKT off the support: |(G c - b)_j| <= alpha, with c = z on S
    for i in range(K):
        gz[i] = zero
    for a in range(nnz):
        za = z[a]
        ja = support[a]
        for i in range(K):
            gz[i] += za * G[ja, i]
    optimal = 2 if a_min < 0 else 1
    for i in range(K):
        if optimal == 2 and p[i] == zero and abs(gz[i] - b[i]) > kkt_bound:
            optimal = 1
    for a in range(nnz):
        p[support[a]] = z[a]
    return optimal


def prox_gradient_lasso_reference(G, B, alpha, C0, L0, max_iter, tol, accelerate=True,
                                  restart=True, backtracking=False, eta=2.0, polish=False):
    """The array-API reference of :func:`prox_gradient_lasso` (all rows at once).

    Rows that met their stopping test are frozen (``active`` mask), so every
    row follows exactly the recursion of the module docstring.
    """
    xp = get_namespace(G, B, C0)
    N, K = B.shape
    dtype = B.dtype
    C = xp.asarray(C0, copy=True)
    H = xp.matmul(C, G)  # (N, K) rows of G c (G symmetric)
    Y, HY = C, H
    t = xp.ones((N, 1), dtype=dtype, device=B.device)
    L = xp.full((N, 1), float(L0), dtype=dtype, device=B.device)
    active = xp.ones((N, 1), dtype=xp.bool, device=B.device)
    n_iter = xp.zeros((N,), dtype=xp.int64, device=B.device)
    zeros = xp.zeros_like(C)
    eps = xp.finfo(dtype).eps
    slack = 1.0 + _SLACK_EPS * eps
    stable = xp.zeros((N, 1), dtype=xp.int64, device=B.device)
    kkt_bound = alpha + _SLACK_EPS * eps * (alpha + xp.max(xp.abs(B), axis=1))  # (N,)
    arange_K = xp.arange(K, device=B.device)
    arange_N = xp.arange(N, device=B.device)
    for _ in range(int(max_iter)):
        if not bool(xp.any(active)):
            break
        while True:
            V = Y - (HY - B) / L
            thr = alpha / L
            P = xp.where(V > thr, V - thr, xp.where(V < -thr, V + thr, zeros))
            HP = xp.matmul(P, G)
            if not backtracking:
                break
            Dd = P - Y
            num = xp.sum(Dd * (HP - HY), axis=1, keepdims=True)
            den = xp.sum(Dd * Dd, axis=1, keepdims=True)
            ok = (num <= L * den * slack) | ~active
            if bool(xp.all(ok)):
                break
            L = xp.where(ok, L, L * eta)
        polished = xp.zeros((N, 1), dtype=xp.bool, device=B.device)
        jumped = xp.zeros((N, 1), dtype=xp.bool, device=B.device)
        if polish:
            same = xp.all(xp.sign(P) == xp.sign(C), axis=1, keepdims=True)
            stable = xp.where(same & active, stable + 1, xp.zeros_like(stable))
            trying = stable >= POLISH_AFTER
            stable = xp.where(trying, xp.zeros_like(stable), stable)
            for n in _true_rows(trying[:, 0]):
                found = _polish_row_reference(G, B[n, :], P[n, :], alpha, kkt_bound[n],
                                              arange_K)
                if found is not None:
                    z_row, optimal = found
                    row = xp.astype(arange_N == n, dtype)[:, None]  # (N, 1) one-hot
                    P = P + row * (z_row[None, :] - P)
                    HP = HP + row * (xp.matmul(z_row, G)[None, :] - HP)
                    if optimal:
                        polished = polished | (row > 0.0)
                    else:
                        jumped = jumped | (row > 0.0)
        S = P - C
        if accelerate:
            t_new = (1.0 + xp.sqrt(1.0 + 4.0 * t * t)) / 2.0
            beta = (t - 1.0) / t_new
            if restart:
                reset = xp.sum((Y - P) * S, axis=1, keepdims=True) > 0.0
            else:
                reset = xp.zeros_like(jumped)
            reset = reset | jumped
            if restart or polish:
                beta = xp.where(reset, xp.zeros_like(beta), beta)
                t_new = xp.where(reset, xp.ones_like(t_new), t_new)
        else:
            t_new = t
            beta = xp.zeros_like(t)
        done = xp.sum(S * S, axis=1, keepdims=True) <= tol * tol * xp.sum(P * P, axis=1,
                                                                         keepdims=True)
        done = done | polished
        Y = xp.where(active, P + beta * S, Y)
        HY = xp.where(active, HP + beta * (HP - H), HY)
        C = xp.where(active, P, C)
        H = xp.where(active, HP, H)
        t = xp.where(active, t_new, t)
        n_iter = n_iter + xp.astype(active[:, 0], xp.int64)
        active = active & ~done
    return C, n_iter, L[:, 0]


def _true_rows(mask):
    """Indices of the True entries of a 1-D boolean array (an explicit host copy)."""
    from ..backend import to_numpy

    return [int(i) for i in np.flatnonzero(to_numpy(mask))]


def _polish_row_reference(G, b, p, alpha, kkt_bound, arange_K):
    """Array-API version of the kernel's polish: None (singular, or the signs change),
    or ``(z (K,), optimal)``."""
    xp = get_namespace(G, b, p)
    mask = p != 0.0
    idx = xp.nonzero(mask)[0]
    K = G.shape[0]
    if idx.shape[0] > 0:
        s = xp.sign(xp.take(p, idx))
        G_SS = xp.take(xp.take(G, idx, axis=0), idx, axis=1)
        try:
            R = xp.linalg.cholesky(G_SS)
        except Exception:  # not positive definite (numpy raises LinAlgError)
            return None
        pivots = xp.linalg.diagonal(R) ** 2
        if not bool(xp.all(pivots > _PIVOT_EPS * xp.finfo(G.dtype).eps
                           * xp.linalg.diagonal(G_SS))):
            return None
        z_S = xp.linalg.solve(G_SS, xp.take(b, idx) - alpha * s)
        p_S = xp.take(p, idx)
        flips = xp.sign(z_S) != s
        if bool(xp.any(flips)):  # feature-sign step up to the first zero crossing
            ratio = xp.where(flips, p_S / (p_S - xp.where(flips, z_S, p_S - 1.0)),
                             xp.full_like(p_S, float("inf")))
            first = xp.argmin(ratio)
            gamma = ratio[first]
            z_S = p_S + gamma * (z_S - p_S)
            z_S = xp.where(xp.arange(idx.shape[0], device=G.device) == first,
                           xp.zeros_like(z_S), z_S)
        onehot = xp.astype(idx[:, None] == arange_K[None, :], G.dtype)  # (|S|, K)
        z = xp.matmul(z_S, onehot)
    else:
        z = xp.zeros((K,), dtype=G.dtype, device=G.device)
    g = xp.matmul(z, G) - b
    optimal = not bool(xp.any(xp.abs(xp.where(mask, xp.zeros_like(g), g)) > kkt_bound))
    if idx.shape[0] > 0 and bool(xp.any(flips)):
        optimal = False
    return z, optimal


def lipschitz_constant(G):
    """lambda_max(G) for symmetric PSD G (K, K): the Lipschitz constant of c -> G c - b."""
    xp = get_namespace(G)
    return item(xp.max(xp.linalg.eigvalsh(G)))
