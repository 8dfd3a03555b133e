"""Fused E-step of an HMM whose log-emissions are affine in a feature vector
(numba, NumPy float64, CPU).

Reference: L. R. Rabiner, "A tutorial on hidden Markov models and selected
applications in speech recognition", Proc. IEEE 77(2), 1989, sec. III
(scaled forward-backward, eqs. 18-27, 37-40, 91-92); C. M. Bishop, Pattern
Recognition and Machine Learning, 2006, sec. 13.2.1 (emission statistics).

Emissions of the form (Z_t (P,) a feature vector of x_t, W (P, K), const (K,))

    log p(x_t | z_t = k) = Z_t W_{:, k} + const_k

cover the diagonal and spherical Gaussians (Z_t = [x_t - c, (x_t - c)^2],
:func:`lvm_core.families.gaussian.diag_natural_params`).  Their E-step needs,
besides log p(X), start_sum and xi_sum, only

    resp_sum_k = sum_t gamma_t(k),     gZ = sum_t gamma_t Z_t^T   (K, P),

so one pass per sequence computes everything without a (T, K) array of
log-emissions or posteriors: for blocks of BLOCK rows the log-emissions, the
row maxima m_t and b_t = exp(log p(x_t | .) - m_t) (the polynomial exp of
:mod:`lvm_core.kernels.hmm_numba`), interleaved with the scaled forward
recursion over those rows; then the scaled backward recursion, which adds
gamma_t to resp_sum and gamma_t Z_t^T to gZ (four steps per pass over the
accumulators) instead of storing gamma.  The recursions, the rescue step and
the -inf conventions are those of :mod:`lvm_core.kernels.hmm_numba` (see its
docstring); the result equals ``affine_rows`` + ``forward_backward`` +
``weighted_sums`` up to round-off (tests), and the array-API reference is
:func:`lvm_core.kernels.hmm_xp.forward_backward_affine`.

Sequences run in a numba ``prange`` over chunks of sequences with
thread-local sums (as in :mod:`lvm_core.kernels.hmm_numba`); when the
sequential kernel would leave threads idle (fewer sequences than threads, see
:func:`lvm_core.kernels.hmm_scan.choose_method`) the unfused kernels run
instead, with the parallel scan over time.  Work arrays: b, m, alpha, c
((T, K), (T,), (T, K), (T,)), reused between calls through ``work``.
"""
from __future__ import annotations

import numba
import numpy as np

from .._jit import njit
from .hmm_numba import (_LN2_HI, _LN2_LO, _LOG2E, _MAGIC, _MAGIC_BITS, _XI_BLOCK, FASTMATH,
                        _buffer, _pick, _sequence_bounds, _serial_twin)

__all__ = ["forward_backward_affine"]

BLOCK = 64  # rows of log-emissions computed ahead of the forward recursion


@njit(fastmath={"contract"})
def _emission_block(Z, W, const, t0, n, zt, lt, lane, m_buf, x_buf, y_buf, s_bits, frame,
                    shift):
    """For rows t = t0..t0+n-1 (n <= BLOCK): lt[lane, k, t - t0] = Z_t W_k + const_k,
    m_t = max_k (0 when all are -inf) and
    frame[t, k] = exp(lt - m_t) (below e^-708: 0), the exp of
    :func:`lvm_core.kernels.hmm_numba._shift_exp_rows`.  Loops run over the
    BLOCK columns (time) so that they vectorise; columns >= n are scratch.
    No reassociation: the magic-number rounding needs IEEE order."""
    P = Z.shape[1]
    K = W.shape[1]
    for tt in range(n):
        for p in range(P):
            zt[p, tt] = Z[t0 + tt, p]
    for k in range(K):
        ck = const[k]
        for tt in range(BLOCK):
            lt[lane, k, tt] = ck
        for p in range(P):
            w = W[p, k]
            for tt in range(BLOCK):
                lt[lane, k, tt] += zt[p, tt] * w
    for tt in range(BLOCK):
        m_buf[tt] = -np.inf
    for k in range(K):
        for tt in range(BLOCK):
            m_buf[tt] = max(m_buf[tt], lt[lane, k, tt])
    for tt in range(BLOCK):
        m = m_buf[tt]
        m_buf[tt] = m if m > -np.inf else 0.0
    for tt in range(n):
        shift[t0 + tt] = m_buf[tt]
    for k in range(K):
        for tt in range(BLOCK):
            x_buf[k * BLOCK + tt] = max(lt[lane, k, tt] - m_buf[tt], -745.0)
    N = K * BLOCK
    for j in range(N):
        y_buf[j] = x_buf[j] * _LOG2E + _MAGIC
    y_bits = y_buf.view(np.int64)
    for j in range(N):
        s_bits[j] = (y_bits[j] - _MAGIC_BITS + 1023) << 52
    s_buf = s_bits.view(np.float64)
    for j in range(N):
        x = x_buf[j]
        nn = y_buf[j] - _MAGIC
        r = (x - nn * _LN2_HI) - nn * _LN2_LO
        p = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (
            1 / 120 + r * (1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (
                1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (
                    1 / 479001600 + r * (1 / 6227020800)))))))))))))
        y_buf[j] = p * s_buf[j] if x > -708.0 else 0.0
    for tt in range(n):
        for k in range(K):
            frame[t0 + tt, k] = y_buf[k * BLOCK + tt]


@njit(fastmath=FASTMATH)
def _matvec_lane(M, v, l, out):
    """out[l] = M v[l] for a (K, K) C-ordered M, four rows at a time (as
    :func:`lvm_core.kernels.hmm_numba._matvec`, on row l of (2, K) arrays)."""
    K = M.shape[0]
    j = 0
    while j + 4 <= K:
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for i in range(K):
            x = v[l, i]
            a0 += M[j, i] * x
            a1 += M[j + 1, i] * x
            a2 += M[j + 2, i] * x
            a3 += M[j + 3, i] * x
        out[l, j] = a0
        out[l, j + 1] = a1
        out[l, j + 2] = a2
        out[l, j + 3] = a3
        j += 4
    while j < K:
        acc = 0.0
        for i in range(K):
            acc += M[j, i] * v[l, i]
        out[l, j] = acc
        j += 1


@njit(fastmath=FASTMATH)
def _forward_pair(pi, AT, Z, W, const, frame, shift, alpha, c, lo, hi, log_prob,
                  zt, lt, m_buf, x_buf, y_buf, s_bits):
    """Scaled forward passes of two sequences (rows lo[l]..hi[l]-1, l = 0, 1; an
    empty one idles) with their steps interleaved: two independent dependency
    chains keep the core busy.  Recursion and rescue step of
    :func:`lvm_core.kernels.hmm_numba._forward_scaled`; every BLOCK steps the
    next BLOCK rows of b_t and m_t are computed first (:func:`_emission_block`,
    log-emissions kept in ``lt[l]`` for the rescue).  Writes alpha_t, c_t, b_t,
    m_t and log_prob[l] = sum_t (log c_t + m_t) (-inf when impossible)."""
    K = pi.shape[0]
    prev = np.empty((2, K))
    pred = np.empty((2, K))
    cur = np.empty((2, K))
    lp = np.zeros(2)
    prod_c = np.ones(2)
    alive = np.ones(2, dtype=np.bool_)
    n0 = hi[0] - lo[0]
    n1 = hi[1] - lo[1]
    for u in range(max(n0, n1)):
        b_row = u % BLOCK
        for l in range(2):
            if not alive[l] or u >= hi[l] - lo[l]:
                continue
            t = lo[l] + u
            if b_row == 0:
                _emission_block(Z, W, const, t, min(BLOCK, hi[l] - t), zt, lt, l, m_buf, x_buf,
                                y_buf, s_bits, frame, shift)
            if u == 0:
                for k in range(K):
                    pred[l, k] = pi[k]
            else:
                _matvec_lane(AT, prev, l, pred)  # pred = A^T alpha_{t-1}
            s = 0.0
            for k in range(K):
                v = pred[l, k] * frame[t, k]
                cur[l, k] = v
                s += v
            if not (s > 0.0):  # rescue: re-shift on the reachable states
                m = -np.inf
                for k in range(K):
                    if pred[l, k] > 0.0:
                        m = max(m, np.log(pred[l, k]) + lt[l, k, b_row])
                if m > -np.inf:
                    s = 0.0
                    for k in range(K):
                        if pred[l, k] > 0.0:
                            frame[t, k] = np.exp(lt[l, k, b_row] - m)
                        else:
                            frame[t, k] = 0.0
                        cur[l, k] = pred[l, k] * frame[t, k]
                        s += cur[l, k]
                    shift[t] = m
            if not (s > 0.0):
                alive[l] = False
                continue
            inv_s = 1.0 / s
            for k in range(K):
                v = cur[l, k] * inv_s
                prev[l, k] = v
                alpha[t, k] = v
            c[t] = s
            lp[l] += shift[t]
            pc = prod_c[l] * s
            if not (1e-200 < pc < 1e200):
                lp[l] += np.log(pc)
                pc = 1.0
            prod_c[l] = pc
    for l in range(2):
        log_prob[l] = lp[l] + np.log(prod_c[l]) if alive[l] else -np.inf


@njit(fastmath=FASTMATH)
def _flush(acc, a_buf, b_buf, l, n):
    """acc += sum_{q < n} a_buf[l, q] b_buf[l, q]^T, four outer products per pass
    over acc (I, J); rows q >= n of the buffers are zeroed first."""
    I, J = acc.shape
    for q in range(n, _XI_BLOCK):
        for i in range(I):
            a_buf[l, q, i] = 0.0
        for j in range(J):
            b_buf[l, q, j] = 0.0
    for i in range(I):
        a0 = a_buf[l, 0, i]
        a1 = a_buf[l, 1, i]
        a2 = a_buf[l, 2, i]
        a3 = a_buf[l, 3, i]
        for j in range(J):
            acc[i, j] += (a0 * b_buf[l, 0, j] + a1 * b_buf[l, 1, j]) + (
                a2 * b_buf[l, 2, j] + a3 * b_buf[l, 3, j])


@njit(fastmath=FASTMATH)
def _backward_pair(A, Z, frame, alpha, c, lo, hi, xi_acc, start_acc, resp, gzT):
    """Scaled backward passes of two sequences (as
    :func:`lvm_core.kernels.hmm_numba._backward_scaled`; rows lo[l]..hi[l]-1, an
    empty one idles), steps interleaved.  Adds gamma_lo to ``start_acc``,
    sum_t gamma_t to ``resp`` and, four steps at a time, sum_t Z_t gamma_t^T
    to ``gzT`` (P, K) and sum_t alpha_t w_{t+1}^T to ``xi_acc``; gamma is not
    stored."""
    K = A.shape[0]
    P = Z.shape[1]
    beta = np.empty((2, K))
    w = np.empty((2, K))
    a_buf = np.empty((2, _XI_BLOCK, K))
    w_buf = np.empty((2, _XI_BLOCK, K))
    g_buf = np.empty((2, _XI_BLOCK, K))
    z_buf = np.empty((2, _XI_BLOCK, P))
    q = np.zeros(2, dtype=np.int64)
    qg = np.ones(2, dtype=np.int64)
    for l in range(2):
        if hi[l] > lo[l]:
            last = hi[l] - 1
            for k in range(K):
                g = alpha[last, k]
                beta[l, k] = 1.0 if g > 0.0 else 0.0
                g_buf[l, 0, k] = g
                resp[k] += g
            for p in range(P):
                z_buf[l, 0, p] = Z[last, p]
    n0 = hi[0] - lo[0]
    n1 = hi[1] - lo[1]
    for u in range(max(n0, n1) - 1):
        for l in range(2):
            if u >= hi[l] - lo[l] - 1:
                continue
            t = hi[l] - 2 - u
            ql = q[l]
            qgl = qg[l]
            inv_c = 1.0 / c[t + 1]
            for j in range(K):
                v = frame[t + 1, j] * beta[l, j] * inv_c
                w[l, j] = v
                w_buf[l, ql, j] = v
                a_buf[l, ql, j] = alpha[t, j]
            _matvec_lane(A, w, l, beta)  # beta_t = A w_{t+1}
            total = 0.0
            for i in range(K):
                a = a_buf[l, ql, i]
                b_i = beta[l, i] if a > 0.0 else 0.0  # no path through state i at t
                beta[l, i] = b_i
                g = a * b_i
                g_buf[l, qgl, i] = g
                total += g
            inv_total = 1.0 / total
            for i in range(K):
                g = g_buf[l, qgl, i] * inv_total
                g_buf[l, qgl, i] = g
                resp[i] += g
            for p in range(P):
                z_buf[l, qgl, p] = Z[t, p]
            ql += 1
            if ql == _XI_BLOCK:
                _flush(xi_acc, a_buf, w_buf, l, ql)
                ql = 0
            qgl += 1
            if qgl == _XI_BLOCK:
                _flush(gzT, z_buf, g_buf, l, qgl)
                qgl = 0
            q[l] = ql
            qg[l] = qgl
    for l in range(2):
        if hi[l] == lo[l]:
            continue
        if q[l] > 0:
            _flush(xi_acc, a_buf, w_buf, l, q[l])
        if qg[l] > 0:
            _flush(gzT, z_buf, g_buf, l, qg[l])
        first = lo[l]
        if hi[l] - first == 1:
            for k in range(K):
                start_acc[k] += alpha[first, k]
        else:
            total = 0.0
            for k in range(K):
                total += alpha[first, k] * beta[l, k]
            inv_total = 1.0 / total
            for k in range(K):
                start_acc[k] += alpha[first, k] * beta[l, k] * inv_total


@njit(parallel=True, fastmath=FASTMATH)
def _fb_affine_chunks(pi, A, Z, W, const, starts, ends, n_chunks, frame, shift, alpha, c):
    """Per-sequence fused E-step, prange over chunks of sequences with
    thread-local sums; within a chunk, sequences run two at a time
    (:func:`_forward_pair`, :func:`_backward_pair`).  Returns log_prob (S,),
    start_sum (K,), sum_t alpha_t w_{t+1}^T (K, K), resp_sum (K,) and
    gZ^T (P, K)."""
    K = pi.shape[0]
    P = Z.shape[1]
    S = starts.shape[0]
    AT = np.ascontiguousarray(A.T)
    log_prob = np.empty(S)
    start_part = np.zeros((n_chunks, K))
    xi_part = np.zeros((n_chunks, K, K))
    resp_part = np.zeros((n_chunks, K))
    gz_part = np.zeros((n_chunks, P, K))
    for chunk in numba.prange(n_chunks):
        s_lo = chunk * S // n_chunks
        s_hi = (chunk + 1) * S // n_chunks
        zt = np.zeros((P, BLOCK))
        lt = np.empty((2, K, BLOCK))
        m_buf = np.empty(BLOCK)
        x_buf = np.empty(K * BLOCK)
        y_buf = np.empty(K * BLOCK)
        s_bits = np.empty(K * BLOCK, dtype=np.int64)
        lo = np.empty(2, dtype=np.int64)
        hi = np.empty(2, dtype=np.int64)
        lp = np.empty(2)
        for s1 in range(s_lo, s_hi, 2):
            pair = s1 + 1 < s_hi
            lo[0] = starts[s1]
            hi[0] = ends[s1]
            lo[1] = starts[s1 + 1] if pair else 0
            hi[1] = ends[s1 + 1] if pair else 0  # an odd sequence out: lane 1 idles
            _forward_pair(pi, AT, Z, W, const, frame, shift, alpha, c, lo, hi, lp,
                          zt, lt, m_buf, x_buf, y_buf, s_bits)
            for l in range(2):
                if hi[l] == lo[l]:  # an empty sequence: p = 1, no rows, no statistics
                    lp[l] = 0.0
                elif not lp[l] > -np.inf:  # impossible: no statistics
                    hi[l] = lo[l]
            log_prob[s1] = lp[0]
            if pair:
                log_prob[s1 + 1] = lp[1]
            _backward_pair(A, Z, frame, alpha, c, lo, hi, xi_part[chunk], start_part[chunk],
                           resp_part[chunk], gz_part[chunk])
    start_sum = np.zeros(K)
    xi_acc = np.zeros((K, K))
    resp_sum = np.zeros(K)
    gzT = np.zeros((P, K))
    for chunk in range(n_chunks):
        for i in range(K):
            start_sum[i] += start_part[chunk, i]
            resp_sum[i] += resp_part[chunk, i]
            for j in range(K):
                xi_acc[i, j] += xi_part[chunk, i, j]
        for p in range(P):
            for i in range(K):
                gzT[p, i] += gz_part[chunk, p, i]
    return log_prob, start_sum, xi_acc, resp_sum, gzT


_fb_affine_chunks_serial = _serial_twin(_fb_affine_chunks)


def _pair_chunks(n_sequences):
    """Chunks of the prange: about two sequences per chunk (a pair runs
    interleaved), at most four chunks per thread."""
    return max(1, min(n_sequences, 4 * numba.get_num_threads()))


def forward_backward_affine(log_startprob, log_transmat, Z, W, const, lengths=None, work=None,
                            method="auto"):
    """E-step statistics of an HMM with log p(x_t | z_t = k) = Z_t W_{:, k} + const_k.

    Parameters
    ----------
    log_startprob : (K,) log pi.
    log_transmat : (K, K) log A.
    Z : (T, P) features of the observations, sequences concatenated.
    W : (P, K), const : (K,) the affine map to the log-emissions.
    lengths : (S,) int sequence lengths summing to T (None: one sequence).
    work : optional dict of work arrays reused between calls.
    method : "auto", "sequential" or "scan" (as
        :func:`lvm_core.kernels.hmm_numba.forward_backward`; "scan" runs the
        unfused kernels).

    Returns
    -------
    log_prob : (S,) log p(x^(s)) (-inf for an impossible sequence, which adds
        nothing to the sums).
    start_sum : (K,) sum_s gamma^(s)_1.
    xi_sum : (K, K) sum_s sum_t p(z_t = i, z_{t+1} = j | x).
    resp_sum : (K,) sum_t gamma_t(k).
    gZ : (K, P) sum_t gamma_t(k) Z_t.
    """
    from . import hmm_numba, hmm_scan

    Z = np.ascontiguousarray(Z, dtype=np.float64)
    W = np.ascontiguousarray(W, dtype=np.float64)
    const = np.ascontiguousarray(const, dtype=np.float64)
    T, P = Z.shape
    K = W.shape[1]
    if W.shape[0] != P or const.shape != (K,):
        raise ValueError(
            f"Z (T, P), W (P, K) and const (K,) must agree; got shapes {Z.shape}, {W.shape} "
            f"and {const.shape}."
        )
    if hmm_scan.choose_method(method, lengths, T) == "scan":
        lfp = hmm_numba.affine_rows(Z, W, const, work=work)
        log_prob, post, start_sum, xi_sum = hmm_numba.forward_backward(
            log_startprob, log_transmat, lfp, lengths, work=work, method="scan")
        resp_sum, gz = hmm_numba.weighted_sums(post, Z)
        return log_prob, start_sum, xi_sum, resp_sum, gz
    pi = np.exp(np.ascontiguousarray(log_startprob, dtype=np.float64))
    A = np.exp(np.ascontiguousarray(log_transmat, dtype=np.float64))
    if pi.shape != (K,) or A.shape != (K, K):
        raise ValueError(
            "log_startprob (K,), log_transmat (K, K) and W (P, K) must agree on K; got "
            f"shapes {pi.shape}, {A.shape} and {W.shape}."
        )
    starts, ends = _sequence_bounds(np.array([T]) if lengths is None else lengths)
    if ends.size and ends[-1] != T:
        raise ValueError(f"lengths must sum to T = {T} (rows of Z); they sum to {int(ends[-1])}.")
    frame = _buffer(work, "frame", (T, K))
    shift = _buffer(work, "shift", (T,))
    alpha = _buffer(work, "gamma", (T, K))
    c = _buffer(work, "c", (T,))
    n_chunks = _pair_chunks(starts.shape[0])
    kernel = _pick(_fb_affine_chunks, _fb_affine_chunks_serial, T * K, n_chunks)
    log_prob, start_sum, xi_acc, resp_sum, gzT = kernel(
        pi, A, Z, W, const, starts, ends, n_chunks, frame, shift, alpha, c)
    return log_prob, start_sum, A * xi_acc, resp_sum, np.ascontiguousarray(gzT.T)
