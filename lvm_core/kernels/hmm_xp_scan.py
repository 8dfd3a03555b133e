"""Chunked two-level HMM forward-backward in array-API code (GPU-friendly).

References: L. R. Rabiner, "A tutorial on hidden Markov models and selected
applications in speech recognition", Proc. IEEE 77(2), 1989, sec. III
(scaled forward-backward, eqs. 18-27, 37-40, 91-92); W. D. Hillis and
G. L. Steele, "Data parallel algorithms", CACM 29(12), 1986 (the inclusive
scan in log2 steps); S. Sarkka and A. F. Garcia-Fernandez, "Temporal
parallelization of Bayesian smoothers", IEEE TAC 66(1), 2021 (forward and
backward HMM passes as associative scans).

Every sequence is cut into chunks of ``chunk_len`` steps; the chunks of all
sequences form one batch (G, chunk_len, K), so each step of a loop below is
one batched operation for every chunk of every sequence:

1. chunk transfer matrices, all chunks in lock step (chunk_len steps):

       M_g = F_g diag(b_lo) A diag(b_{lo+1}) ... A diag(b_{hi-1}),
       F_g = I for the first chunk of a sequence, A otherwise,

   kept as diag(exp(r_g)) Mhat_g with every row of Mhat_g scaled to maximum 1
   (log row scales r_g, relative to their maximum: only directions matter),
   so nothing underflows however long the chunk is;
2. associative scans over the chunks of each sequence (Hillis-Steele,
   ceil(log2 n) batched compositions):  prefix P_g = M_0 ... M_g gives the
   forward state at the end of chunk g, alpha_{hi-1} ~ pi^T P_g, and suffix
   Q_g = M_{g+1} ... M_{n-1} gives the backward direction there,
   beta_{hi-1} ~ Q_g 1;
3. the scaled forward-backward of the sequential kernels inside every chunk,
   in lock step, started from the true alpha_{lo-1} and ended at the true
   beta_{hi-1} (scaled so that alpha_{hi-1} . beta_{hi-1} = 1, the
   sequential kernels' convention); the transitions between chunks add
   alpha_{hi-1} w_{lo'}^T to xi.

Only the directions of the scanned vectors matter (each chunk rescales by its
own c_t), so log p(x) = sum_t (log c_t + m_t) is that of the sequential
recursion.  Memory: O(T K) for the padded chunks and O(G K^2) for the
transfer matrices; never a T x K x K array.  Work: O(T K^3) for the transfer
matrices (batched matrix products, cheap on a GPU), O(T K^2) for step 3 and
O(G K^3 log G) for the scans; depth O(chunk_len + log G) batched steps
instead of T.  With the default chunk_len ~ sqrt(T_max) a sequence of 10^6
steps takes ~2000 lock steps.

Where a transfer matrix loses a state that the true recursion keeps (a row
that underflowed in every entry, which the sequential kernels' rescue step
would handle) or a sequence is impossible, the call falls back to one chunk
per sequence (step 3 alone: the sequential recursion, batched over
sequences, one step per time index).  As in :mod:`lvm_core.kernels.hmm_scan`,
beta_t(j) = 0 where alpha_t(j) = 0 (no path through that state; its scaled
beta could otherwise overflow into NaN posteriors).
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import asarray, device_of, get_namespace

__all__ = ["forward_backward", "chunk_layout"]


def chunk_layout(lengths, T, chunk_len=None):
    """Host index arrays of the chunk batch.

    Returns a dict: ``chunk_len``; ``gather`` (G * chunk_len,) input row of
    every padded slot (the chunk's last row repeated); ``scatter`` (T,) padded
    slot of every input row; ``valid`` (G, chunk_len); ``first`` and ``last``
    (G,) chunk starts / ends a sequence; ``seq_of`` (G,); ``grid`` (S, n_max)
    chunk index of the n-th chunk of sequence s (G, an empty slot, where the
    sequence has fewer chunks); ``next_chunk`` (G,) the following chunk of the
    same sequence (G where none).
    """
    lengths = np.asarray([T] if lengths is None else lengths, dtype=np.int64)
    if lengths.ndim != 1 or lengths.size == 0 or np.any(lengths <= 0) or lengths.sum() != T:
        raise ValueError(
            f"lengths must be positive and sum to T = {T} (rows of log_frameprob); "
            f"got {lengths.tolist()}."
        )
    if chunk_len is None:
        chunk_len = max(16, int(math.ceil(math.sqrt(int(lengths.max())))))
    chunk_len = int(chunk_len)
    if chunk_len < 1:
        raise ValueError(f"chunk_len must be a positive integer; got {chunk_len!r}.")
    n = -(-lengths // chunk_len)  # chunks per sequence
    starts = np.cumsum(lengths) - lengths
    G = int(n.sum())
    seq_of = np.repeat(np.arange(lengths.size), n)
    rank = np.arange(G) - np.repeat(np.cumsum(n) - n, n)  # position of the chunk in its sequence
    lo = starts[seq_of] + rank * chunk_len
    size = np.minimum(chunk_len, starts[seq_of] + lengths[seq_of] - lo)
    j = np.arange(chunk_len)[None, :]
    valid = j < size[:, None]  # (G, chunk_len)
    gather = lo[:, None] + np.minimum(j, size[:, None] - 1)  # (G, chunk_len)
    scatter = (np.arange(G)[:, None] * chunk_len + j)[valid]  # (T,)
    grid = np.full((lengths.size, int(n.max())), G, dtype=np.int64)
    grid[seq_of, rank] = np.arange(G)
    first = rank == 0
    last = rank == n[seq_of] - 1
    next_chunk = np.where(last, G, np.arange(G) + 1)
    return dict(chunk_len=chunk_len, gather=gather.reshape(-1), scatter=scatter, valid=valid,
                first=first, last=last, seq_of=seq_of, grid=grid, next_chunk=next_chunk)


def _safe_log(xp, x):
    """log x with log 0 = -inf and no warning."""
    pos = x > 0
    return xp.where(pos, xp.log(xp.where(pos, x, xp.ones_like(x))), xp.full_like(x, -math.inf))


def _compose(xp, rx, X, ry, Y):
    """(diag(e^rx) X)(diag(e^ry) Y) = diag(e^r) Z with rows of Z scaled to max 1.

    rx, ry (..., K); X, Y (..., K, K).  Each row i is shifted by its own
    largest term s_i = max_k (log X_ik + ry_k), so that no path through an
    intermediate state is lost to a scale set by another row:
    Z ~ (X * e^{ry - s}) Y, r = rx + s + log rowmax."""
    log_w = _safe_log(xp, X) + ry[..., None, :]  # (..., K, K)
    s = xp.max(log_w, axis=-1)  # (..., K)
    s_fin = xp.where(xp.isfinite(s), s, xp.zeros_like(s))
    Z = xp.matmul(xp.exp(log_w - s_fin[..., None]), Y)  # (..., K, K)
    q = xp.max(Z, axis=-1)  # (..., K)
    q_safe = xp.where(q > 0, q, xp.ones_like(q))
    r = xp.where(xp.isfinite(s), rx + s_fin + _safe_log(xp, q), xp.full_like(rx, -math.inf))
    return _relative(xp, r), Z / q_safe[..., None]


def _relative(xp, r):
    """r - max_k r_k (0 where every r_k = -inf): a factor common to all rows
    changes no direction, and small numbers keep log-scale differences exact
    (|r| ~ 1e6 after a long product would leave only ~1e-10 of them)."""
    r_max = xp.max(r, axis=-1)
    r_max = xp.where(xp.isfinite(r_max), r_max, xp.zeros_like(r_max))
    return r - r_max[..., None]


def _scan(xp, r, M, reverse):
    """Inclusive scan along axis 1 of (S, n, K) / (S, n, K, K) row-scaled
    matrices: prefix products M_0 ... M_g, or suffix products M_g ... M_{n-1}
    with ``reverse`` (Hillis & Steele 1986)."""
    n = M.shape[1]
    d = 1
    while d < n:
        if not reverse:  # new[g] = old[g - d] old[g] for g >= d
            r_new, M_new = _compose(xp, r[:, :-d, ...], M[:, :-d, ...], r[:, d:, ...], M[:, d:, ...])
            r = xp.concat([r[:, :d, ...], r_new], axis=1)
            M = xp.concat([M[:, :d, ...], M_new], axis=1)
        else:  # new[g] = old[g] old[g + d] for g + d < n
            r_new, M_new = _compose(xp, r[:, :-d, ...], M[:, :-d, ...], r[:, d:, ...], M[:, d:, ...])
            r = xp.concat([r_new, r[:, n - d:, ...]], axis=1)
            M = xp.concat([M_new, M[:, n - d:, ...]], axis=1)
        d *= 2
    return r, M


def _normalize(xp, v):
    total = xp.sum(v, axis=-1)
    return v / xp.where(total > 0, total, xp.ones_like(total))[..., None], total


def forward_backward(log_startprob, log_transmat, log_frameprob, lengths=None, chunk_len=None):
    """Posteriors and expected counts by the chunked two-level scan (module
    docstring); the contract of :func:`lvm_core.kernels.hmm_xp.forward_backward`.

    Returns ``(log_prob (S,), posteriors (T, K), start_sum (K,), xi_sum (K, K))``
    on the device of the inputs, with xi_sum_ij = A_ij sum_t alpha_t(i) w_{t+1}(j)
    and w_{t+1} = b_{t+1} beta_{t+1} / c_{t+1}.  ``chunk_len``: steps per chunk
    (default ceil(sqrt(longest sequence)), at least 16).
    """
    return _forward_backward(log_startprob, log_transmat, log_frameprob, lengths, chunk_len,
                             scan=True)


def _forward_backward(log_startprob, log_transmat, log_frameprob, lengths, chunk_len, scan):
    """:func:`forward_backward`; ``scan=False``: one chunk per sequence (the
    sequential recursion batched over sequences, used when the scan fails)."""
    xp = get_namespace(log_startprob, log_transmat, log_frameprob)
    T, K = log_frameprob.shape
    if not scan:
        chunk_len = int(np.max([T] if lengths is None else lengths))
    lay = chunk_layout(lengths, T, chunk_len)
    L = lay["chunk_len"]
    G = lay["valid"].shape[0]
    S, n_max = lay["grid"].shape
    dev = device_of(log_frameprob)
    dtype = log_frameprob.dtype

    def host(a, kind):
        return asarray(a, like=log_frameprob, dtype=kind)

    padded = xp.reshape(xp.take(log_frameprob, host(lay["gather"], "int64"), axis=0), (G, L, K))
    valid = host(lay["valid"], "bool")  # (G, L)
    first = host(lay["first"], "bool")  # (G,)
    pi = xp.exp(log_startprob)
    A = xp.exp(log_transmat)
    m = xp.max(padded, axis=2)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))  # (G, L)
    b = xp.exp(padded - m[:, :, None])  # (G, L, K)

    grid = host(lay["grid"].reshape(-1), "int64")  # (S * n_max,) chunk of each slot, G if none
    if scan:
        # 1. transfer matrices diag(e^r) M of every chunk, in lock step
        eye = xp.eye(K, dtype=dtype, device=dev)
        M = xp.where(first[:, None, None], eye[None, :, :], A[None, :, :]) * b[:, 0, None, :]
        q = xp.max(M, axis=2)  # (G, K)
        r = _safe_log(xp, q)
        M = M / xp.where(q > 0, q, xp.ones_like(q))[:, :, None]
        for j in range(1, L):
            M_new = xp.matmul(M, A) * b[:, j, None, :]  # (G, K, K)
            q = xp.max(M_new, axis=2)
            v = valid[:, j]
            M = xp.where(v[:, None, None], M_new / xp.where(q > 0, q, xp.ones_like(q))[:, :, None], M)
            r = xp.where(v[:, None], _relative(xp, r + _safe_log(xp, q)), r)

        # 2. prefix and suffix scans over the chunks of each sequence (empty slot G = identity)
        r_all = xp.concat([r, xp.zeros((1, K), dtype=dtype, device=dev)], axis=0)
        M_all = xp.concat([M, eye[None, :, :]], axis=0)
        r_grid = xp.reshape(xp.take(r_all, grid, axis=0), (S, n_max, K))
        M_grid = xp.reshape(xp.take(M_all, grid, axis=0), (S, n_max, K, K))
        r_pre, M_pre = _scan(xp, r_grid, M_grid, reverse=False)
        r_suf, M_suf = _scan(xp, r_grid, M_grid, reverse=True)
        # alpha at the end of chunk (s, n): pi^T diag(e^r) M, normalised
        u = _safe_log(xp, pi)[None, None, :] + r_pre  # (S, n_max, K)
        u_max = xp.max(u, axis=2)
        u_max = xp.where(xp.isfinite(u_max), u_max, xp.zeros_like(u_max))
        alpha_end, a_total = _normalize(xp, xp.matmul(xp.exp(u - u_max[..., None])[:, :, None, :],
                                                      M_pre)[:, :, 0, :])
        # beta direction at the end of chunk (s, n): Q 1 with Q the suffix from chunk n + 1
        r_next = xp.concat([r_suf[:, 1:, ...], xp.zeros((S, 1, K), dtype=dtype, device=dev)], axis=1)
        M_next = xp.concat([M_suf[:, 1:, ...], xp.broadcast_to(eye, (S, 1, K, K))], axis=1)
        log_beta_dir = r_next + _safe_log(xp, xp.sum(M_next, axis=3))  # (S, n_max, K)
        ok = bool(xp.all(a_total > 0)) and bool(xp.all(xp.isfinite(a_total)))
        if not ok:  # a row lost to underflow, or an impossible sequence: one chunk each
            return _forward_backward(log_startprob, log_transmat, log_frameprob, lengths,
                                     None, scan=False)
        # back to chunk order: (G, K); the start of chunk g is the end of the previous one
        seq_rank = host(np.flatnonzero(lay["grid"].reshape(-1) < G), "int64")  # grid slots in g order
        alpha_end = xp.take(xp.reshape(alpha_end, (S * n_max, K)), seq_rank, axis=0)  # (G, K)
        log_beta_dir = xp.take(xp.reshape(log_beta_dir, (S * n_max, K)), seq_rank, axis=0)  # (G, K)
        prev = np.maximum(np.arange(G) - 1, 0)
        alpha_start = xp.take(alpha_end, host(prev, "int64"), axis=0)  # (G, K), unused for first
    else:  # one chunk per sequence: the sequential recursion, nothing to scan
        alpha_start = xp.zeros((G, K), dtype=dtype, device=dev)  # unused: every chunk is first
        log_beta_dir = xp.zeros((G, K), dtype=dtype, device=dev)

    # 3. forward inside every chunk from the true alpha_{lo-1} (rescue step as in hmm_xp)
    pred0 = xp.where(first[:, None], xp.broadcast_to(pi[None, :], (G, K)),
                     xp.matmul(alpha_start, A))
    alphas, log_c, b_rows, cs = [], [], [], []
    ones = xp.ones((G,), dtype=dtype, device=dev)
    alpha = None
    for j in range(L):
        pred = pred0 if j == 0 else xp.matmul(alpha, A)  # (G, K)
        b_j = b[:, j, :]
        m_j = m[:, j]
        a = pred * b_j
        c = xp.sum(a, axis=1)
        rescue = ~(c > 0)
        if bool(xp.any(rescue)):
            reach = pred > 0
            log_cur = xp.where(reach, _safe_log(xp, pred) + padded[:, j, :],
                               xp.full_like(pred, -math.inf))
            m_new = xp.max(log_cur, axis=1)
            fix = rescue & xp.isfinite(m_new)
            m_safe = xp.where(fix, m_new, xp.zeros_like(m_new))
            diff = xp.where(reach, padded[:, j, :] - m_safe[:, None], xp.zeros_like(b_j))
            b_new = xp.where(reach, xp.exp(diff), xp.zeros_like(b_j))
            b_j = xp.where(fix[:, None], b_new, b_j)
            m_j = xp.where(fix, m_new, m_j)
            a = pred * b_j
            c = xp.sum(a, axis=1)
        v = valid[:, j]
        c = xp.where(v, c, ones)
        safe_c = xp.where(c > 0, c, ones)
        a_new = a / safe_c[:, None]
        alpha = a_new if j == 0 else xp.where(v[:, None], a_new, alpha)
        alphas.append(alpha)
        log_c.append(xp.where(v, _safe_log(xp, c) + m_j, xp.zeros_like(c)))
        b_rows.append(b_j)
        cs.append(safe_c)
    chunk_ll = xp.sum(xp.stack(log_c, axis=1), axis=1)  # (G,)
    ll_all = xp.concat([chunk_ll, xp.zeros((1,), dtype=dtype, device=dev)])
    log_prob = xp.sum(xp.reshape(xp.take(ll_all, grid, axis=0), (S, n_max)), axis=1)  # (S,)
    possible = xp.isfinite(log_prob)
    chunk_possible = xp.take(possible, host(lay["seq_of"], "int64"), axis=0)  # (G,)
    # backward inside every chunk, from beta_{hi-1} = d / (alpha_{hi-1} . d)
    alpha_last = alpha  # padded steps keep alpha: this is alpha at the last valid step
    # log beta_init = log_beta_dir - z with z = log sum_k alpha_k exp(log_beta_dir_k);
    # 0 where alpha = 0 (such a state's beta is unbounded and meets no path)
    v = _safe_log(xp, alpha_last) + log_beta_dir
    v_max = xp.max(v, axis=1)
    v_fin = xp.where(xp.isfinite(v_max), v_max, xp.zeros_like(v_max))
    z = v_fin + _safe_log(xp, xp.sum(xp.exp(v - v_fin[:, None]), axis=1))  # (G,)
    if scan and not bool(xp.all(xp.isfinite(z) | ~chunk_possible)):
        return _forward_backward(log_startprob, log_transmat, log_frameprob, lengths, None,
                                 scan=False)
    z = xp.where(xp.isfinite(z), z, xp.zeros_like(z))
    log_init = xp.where(alpha_last > 0, log_beta_dir - z[:, None], xp.zeros_like(alpha_last))
    log_init = xp.minimum(log_init, xp.full_like(log_init, 700.0))
    beta_init = xp.where(alpha_last > 0, xp.exp(log_init), xp.zeros_like(alpha_last))
    beta = beta_init
    gammas = [None] * L
    xi_acc = xp.zeros((K, K), dtype=dtype, device=dev)
    for j in range(L - 1, -1, -1):
        if j < L - 1:
            v = valid[:, j + 1]
            w = b_rows[j + 1] * beta / cs[j + 1][:, None]  # (G, K)
            keep = (v & chunk_possible)[:, None] & (alphas[j + 1] > 0)
            w = xp.where(keep, w, xp.zeros_like(w))
            xi_acc = xi_acc + xp.matmul(alphas[j].T, w)
            beta = xp.where(v[:, None], xp.matmul(w, A.T), beta_init)
        g = alphas[j] * beta
        total = xp.sum(g, axis=1)
        gammas[j] = g / xp.where(total > 0, total, ones)[:, None]
    # transitions between consecutive chunks: alpha_{hi-1} (chunk g) w_lo (chunk g + 1)
    w_first = b_rows[0] * beta / cs[0][:, None]  # (G, K): beta now holds beta at row lo
    w_first = xp.where(chunk_possible[:, None] & (alphas[0] > 0), w_first,
                       xp.zeros_like(w_first))
    w_all = xp.concat([w_first, xp.zeros((1, K), dtype=dtype, device=dev)], axis=0)
    w_next = xp.take(w_all, host(lay["next_chunk"], "int64"), axis=0)  # (G, K)
    xi_acc = xi_acc + xp.matmul(alpha_last.T, w_next)
    gamma_pad = xp.stack(gammas, axis=1)  # (G, L, K)
    gamma_pad = xp.where(chunk_possible[:, None, None], gamma_pad, xp.zeros_like(gamma_pad))
    posteriors = xp.take(xp.reshape(gamma_pad, (G * L, K)), host(lay["scatter"], "int64"),
                         axis=0)  # (T, K)
    start_sum = xp.sum(xp.where(first[:, None], gamma_pad[:, 0, :], xp.zeros_like(beta)), axis=0)
    return log_prob, posteriors, start_sum, A * xi_acc
