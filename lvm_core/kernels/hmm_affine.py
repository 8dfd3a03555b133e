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
:mod:`lvm_core.kernels.hmm_numba`, vectorised over time), interleaved with the scaled forward
recursion over those rows; then the scaled backward recursion, which adds
gamma_t to resp_sum and gamma_t Z_t^T to gZ (four steps per pass over the
accumulators) instead of storing gamma.  The recursions, the rescue step and
the -inf conventions are those of :mod:`lvm_core.kernels.hmm_numba` (see its
docstring); the result equals ``affine_rows`` + ``forward_backward`` +
``weighted_sums`` up to round-off (tests), and the array-API reference is
:func:`lvm_core.kernels.hmm_xp.forward_backward_affine`.

Sequences run in a numba ``prange`` over chunks of sequences with
thread-local sums (as in :mod:`lvm_core.kernels.hmm_numba`).  Within a chunk
the forward recursions of two sequences run interleaved statement by
statement (the recursion is bound by its latency, a chain of dependent
multiply-adds per step: two independent chains fill the core), the backward
passes one at a time (bound by arithmetic: interleaving measured slower).
When the sequential kernel would leave threads idle (fewer sequences than
threads, see :func:`lvm_core.kernels.hmm_scan.choose_method`) the unfused
kernels run instead, with the parallel scan over time.  Work arrays: b, m,
alpha, c ((T, K), (T,), (T, K), (T,)), reused between calls through
``work``.  Results are deterministic: the same input gives the same bits.
"""
from __future__ import annotations

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core.extending import intrinsic

from .._jit import njit
from .hmm_numba import (_LN2_HI, _LN2_LO, _LOG2E, _MAGIC, _MAGIC_BITS, _XI_BLOCK, FASTMATH,
                        _buffer, _matvec, _pick, _sequence_bounds, _serial_twin)

__all__ = ["forward_backward_affine"]

BLOCK = 64  # rows of log-emissions computed ahead of the forward recursion
GAP = 64  # float64s between the scratch arrays of a thread (see _fb_affine_chunks)


@intrinsic
def _as_int64(typingctx, x):
    """The bits of a float64 as an int64 (a register move, no memory)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(64))
    return types.int64(types.float64), codegen


@intrinsic
def _as_float64(typingctx, x):
    """The bits of an int64 as a float64."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())
    return types.float64(types.int64), codegen


@njit(fastmath={"contract"})
def _emission_block(Z, W, const, t0, n, zt, lt, lane, m_buf, e_buf, frame, shift):
    """For rows t = t0..t0+n-1 (n <= BLOCK): lt[lane, k, t - t0] = Z_t W_k + const_k,
    m_t = max_k (0 when all are -inf) and frame[t, k] = exp(lt - m_t) (below
    e^-708: 0), the exp of :func:`lvm_core.kernels.hmm_numba._shift_exp_rows`
    (Cody-Waite reduction, degree-13 polynomial, 2^n from the exponent bits)
    in one loop that stays in registers, via ``e_buf`` (K, BLOCK).  Loops run
    over the BLOCK columns (time) so that they vectorise, four features per
    pass over lt; columns >= n are scratch.  No reassociation: the magic-number rounding needs IEEE
    order."""
    P = Z.shape[1]
    K = W.shape[1]
    for tt in range(n):
        for p in range(P):
            zt[p, tt] = Z[t0 + tt, p]
    for k in range(K):
        ck = const[k]
        for tt in range(BLOCK):
            lt[lane, k, tt] = ck
        p = 0
        while p + 4 <= P:
            w0 = W[p, k]
            w1 = W[p + 1, k]
            w2 = W[p + 2, k]
            w3 = W[p + 3, k]
            for tt in range(BLOCK):
                lt[lane, k, tt] += (zt[p, tt] * w0 + zt[p + 1, tt] * w1) + (
                    zt[p + 2, tt] * w2 + zt[p + 3, tt] * w3)
            p += 4
        while p < P:
            w = W[p, k]
            for tt in range(BLOCK):
                lt[lane, k, tt] += zt[p, tt] * w
            p += 1
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
            x = max(lt[lane, k, tt] - m_buf[tt], -745.0)
            y = x * _LOG2E + _MAGIC
            nn = y - _MAGIC  # round(x / ln 2)
            scale = _as_float64((_as_int64(y) - _MAGIC_BITS + 1023) << 52)  # 2^nn
            r = (x - nn * _LN2_HI) - nn * _LN2_LO
            p = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (
                1 / 120 + r * (1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (
                    1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (
                        1 / 479001600 + r * (1 / 6227020800)))))))))))))
            e_buf[k, tt] = p * scale if x > -708.0 else 0.0
    for tt in range(n):
        for k in range(K):
            frame[t0 + tt, k] = e_buf[k, tt]


@njit(fastmath=FASTMATH)
def _rescue(t, row, pred, cur, frame, shift, lt, l):
    """Rescue step of the forward pass (see
    :func:`lvm_core.kernels.hmm_numba._forward_scaled`): every reachable state's
    b_t underflowed, so row t is re-shifted by m_t = max_j [log pred_j +
    log p(x_t | j)] and b_t(j) = 0 for unreachable j.  Returns the new
    c_t = sum_j pred_j b_t(j) (0: the sequence is impossible)."""
    K = pred.shape[0]
    m = -np.inf
    for k in range(K):
        if pred[k] > 0.0:
            m = max(m, np.log(pred[k]) + lt[l, k, row])
    if not m > -np.inf:
        return 0.0
    s = 0.0
    for k in range(K):
        if pred[k] > 0.0:
            frame[t, k] = np.exp(lt[l, k, row] - m)
        else:
            frame[t, k] = 0.0
        cur[k] = pred[k] * frame[t, k]
        s += cur[k]
    shift[t] = m
    return s


@njit(fastmath=FASTMATH)
def _forward_seq(u0, lo, hi, pi, AT, Z, W, const, frame, shift, alpha, c, prev, pred, cur,
                 zt, lt, l, m_buf, e_buf, fs):
    """Steps u0.. of the scaled forward pass of one sequence (rows lo..hi-1),
    continuing from alpha_{lo+u0-1} in ``prev`` and the sums in ``fs`` =
    [sum of m_t and of the logs of folded c_t, product of the recent c_t,
    1 while possible / 0 once impossible].  Every BLOCK steps the next BLOCK
    rows of b_t and m_t come first (:func:`_emission_block`, log-emissions in
    ``lt[l]`` for the rescue).  Writes alpha_t, c_t, b_t and m_t."""
    K = pi.shape[0]
    lp = fs[0]
    prod_c = fs[1]
    for u in range(u0, hi - lo):
        t = lo + u
        row = u % BLOCK
        if row == 0:
            _emission_block(Z, W, const, t, min(BLOCK, hi - t), zt, lt, l, m_buf, e_buf,
                            frame, shift)
        if u == 0:
            for k in range(K):
                pred[k] = pi[k]
        else:
            _matvec(AT, prev, pred)  # pred = A^T alpha_{t-1}
        s = 0.0
        for k in range(K):
            v = pred[k] * frame[t, k]
            cur[k] = v
            s += v
        if not (s > 0.0):
            s = _rescue(t, row, pred, cur, frame, shift, lt, l)
            if not (s > 0.0):
                fs[2] = 0.0
                return
        inv_s = 1.0 / s
        for k in range(K):
            v = cur[k] * inv_s
            prev[k] = v
            alpha[t, k] = v
        c[t] = s
        lp += shift[t]
        if s < 1e-100:  # folded at once: prod_c (>= 1e-200) times s could underflow
            lp += np.log(s)
        else:
            prod_c *= s
        if not (1e-200 < prod_c < 1e200):
            lp += np.log(prod_c)
            prod_c = 1.0
    fs[0] = lp
    fs[1] = prod_c


@njit(fastmath=FASTMATH)
def _forward_two(lo0, hi0, lo1, hi1, pi, AT, Z, W, const, frame, shift, alpha, c,
                 prev0, pred0, cur0, prev1, pred1, cur1, fs0, fs1, zt, lt, m_buf, e_buf):
    """Scaled forward passes of two sequences, their steps interleaved statement
    by statement while both run (two independent dependency chains: the
    recursion is latency-bound), then each one's remaining steps alone
    (:func:`_forward_seq`, also for a step that needs the rescue)."""
    K = pi.shape[0]
    common = min(hi0 - lo0, hi1 - lo1)
    lp0 = 0.0
    lp1 = 0.0
    pc0 = 1.0
    pc1 = 1.0
    u = 0
    while u < common:
        t0 = lo0 + u
        t1 = lo1 + u
        if u % BLOCK == 0:
            _emission_block(Z, W, const, t0, min(BLOCK, hi0 - t0), zt, lt, 0, m_buf, e_buf,
                            frame, shift)
            _emission_block(Z, W, const, t1, min(BLOCK, hi1 - t1), zt, lt, 1, m_buf, e_buf,
                            frame, shift)
        if u == 0:
            for k in range(K):
                pred0[k] = pi[k]
                pred1[k] = pi[k]
        else:
            _matvec(AT, prev0, pred0)
            _matvec(AT, prev1, pred1)
        s0 = 0.0
        s1 = 0.0
        for k in range(K):
            v0 = pred0[k] * frame[t0, k]
            v1 = pred1[k] * frame[t1, k]
            cur0[k] = v0
            cur1[k] = v1
            s0 += v0
            s1 += v1
        if not (s0 > 0.0 and s1 > 0.0):
            break  # a rescue step: both continue alone from step u
        inv0 = 1.0 / s0
        inv1 = 1.0 / s1
        for k in range(K):
            v0 = cur0[k] * inv0
            v1 = cur1[k] * inv1
            prev0[k] = v0
            prev1[k] = v1
            alpha[t0, k] = v0
            alpha[t1, k] = v1
        c[t0] = s0
        c[t1] = s1
        lp0 += shift[t0]
        lp1 += shift[t1]
        pc0 *= s0
        pc1 *= s1
        if not (1e-200 < pc0 < 1e200):
            lp0 += np.log(pc0)
            pc0 = 1.0
        if not (1e-200 < pc1 < 1e200):
            lp1 += np.log(pc1)
            pc1 = 1.0
        u += 1
    fs0[0] = lp0
    fs0[1] = pc0
    fs0[2] = 1.0
    fs1[0] = lp1
    fs1[1] = pc1
    fs1[2] = 1.0
    _forward_seq(u, lo0, hi0, pi, AT, Z, W, const, frame, shift, alpha, c, prev0, pred0, cur0,
                 zt, lt, 0, m_buf, e_buf, fs0)
    _forward_seq(u, lo1, hi1, pi, AT, Z, W, const, frame, shift, alpha, c, prev1, pred1, cur1,
                 zt, lt, 1, m_buf, e_buf, fs1)


@njit(fastmath=FASTMATH)
def _outer_flush(acc, a_buf, b_buf, n):
    """acc += sum_{q < n} a_buf[q] b_buf[q]^T, four outer products per pass over
    acc (I, J); rows q >= n of the buffers are zeroed first."""
    I, J = acc.shape
    for q in range(n, _XI_BLOCK):
        for i in range(I):
            a_buf[q, i] = 0.0
        for j in range(J):
            b_buf[q, j] = 0.0
    for i in range(I):
        a0 = a_buf[0, i]
        a1 = a_buf[1, i]
        a2 = a_buf[2, i]
        a3 = a_buf[3, i]
        for j in range(J):
            acc[i, j] += (a0 * b_buf[0, j] + a1 * b_buf[1, j]) + (a2 * b_buf[2, j]
                                                                  + a3 * b_buf[3, j])


@njit(fastmath=FASTMATH)
def _backward_init(end, Z, alpha, beta, g_buf, z_buf, resp, qs):
    """Last row of a backward pass: beta_T = 1 (0 for states no path reaches),
    gamma_T = alpha_T into the buffers and ``resp``; qs = [xi fill, gamma fill]."""
    K = beta.shape[0]
    last = end - 1
    for k in range(K):
        g = alpha[last, k]
        beta[k] = 1.0 if g > 0.0 else 0.0
        g_buf[0, k] = g
        resp[k] += g
    for p in range(Z.shape[1]):
        z_buf[0, p] = Z[last, p]
    qs[0] = 0
    qs[1] = 1


@njit(fastmath=FASTMATH)
def _backward_run(t_hi, t_lo, A, Z, frame, alpha, c, beta, w, a_buf, w_buf, g_buf, z_buf, qs,
                  xi_acc, resp, gzT):
    """Steps t = t_hi, t_hi - 1, ..., t_lo of the scaled backward pass of one
    sequence (as :func:`lvm_core.kernels.hmm_numba._backward_scaled`):
    beta_t = A w_{t+1} with w_{t+1} = b_{t+1} beta_{t+1} / c_{t+1}, gamma_t =
    alpha_t beta_t (renormalised) added to ``resp`` and, four steps at a time,
    Z_t gamma_t^T to ``gzT`` (P, K) and alpha_t w_{t+1}^T to ``xi_acc``."""
    K = A.shape[0]
    P = Z.shape[1]
    q = qs[0]
    qg = qs[1]
    for t in range(t_hi, t_lo - 1, -1):
        inv_c = 1.0 / c[t + 1]
        for j in range(K):
            v = frame[t + 1, j] * beta[j] * inv_c
            w[j] = v
            w_buf[q, j] = v
            a_buf[q, j] = alpha[t, j]
        _matvec(A, w, beta)  # beta_t = A w_{t+1}
        total = 0.0
        for i in range(K):
            a = a_buf[q, i]
            b_i = beta[i] if a > 0.0 else 0.0  # no path through state i at t: beta_t(i) = 0
            beta[i] = b_i
            g = a * b_i
            g_buf[qg, i] = g
            total += g
        inv_total = 1.0 / total
        for i in range(K):
            g = g_buf[qg, i] * inv_total
            g_buf[qg, i] = g
            resp[i] += g
        for p in range(P):
            z_buf[qg, p] = Z[t, p]
        q += 1
        if q == _XI_BLOCK:
            _outer_flush(xi_acc, a_buf, w_buf, q)
            q = 0
        qg += 1
        if qg == _XI_BLOCK:
            _outer_flush(gzT, z_buf, g_buf, qg)
            qg = 0
    qs[0] = q
    qs[1] = qg


@njit(fastmath=FASTMATH)
def _backward_end(start, end, alpha, beta, a_buf, w_buf, g_buf, z_buf, qs, xi_acc, start_acc,
                  gzT):
    """Flush the partly filled buffers and add gamma_start to ``start_acc``."""
    K = beta.shape[0]
    if qs[0] > 0:
        _outer_flush(xi_acc, a_buf, w_buf, qs[0])
    if qs[1] > 0:
        _outer_flush(gzT, z_buf, g_buf, qs[1])
    if end - start == 1:
        for k in range(K):
            start_acc[k] += alpha[start, k]
    else:
        total = 0.0
        for k in range(K):
            total += alpha[start, k] * beta[k]
        inv_total = 1.0 / total
        for k in range(K):
            start_acc[k] += alpha[start, k] * beta[k] * inv_total


@njit(fastmath=FASTMATH)
def _backward_stats(lo, hi, A, Z, frame, alpha, c, beta, w, a_buf, w_buf, g_buf, z_buf, qs,
                    xi_acc, start_acc, resp, gzT):
    """The backward pass of rows lo..hi-1 with its statistics (an empty range:
    nothing).  Unlike the forward pass it runs one sequence at a time: it is
    bound by arithmetic, not by the latency of its recursion (interleaving two
    sequences measured slower)."""
    if hi > lo:
        _backward_init(hi, Z, alpha, beta, g_buf, z_buf, resp, qs)
        _backward_run(hi - 2, lo, A, Z, frame, alpha, c, beta, w, a_buf, w_buf, g_buf, z_buf, qs,
                      xi_acc, resp, gzT)
        _backward_end(lo, hi, alpha, beta, a_buf, w_buf, g_buf, z_buf, qs, xi_acc, start_acc,
                      gzT)


@njit(parallel=True, fastmath=FASTMATH)
def _fb_affine_chunks(pi, A, Z, W, const, starts, ends, n_chunks, frame, shift, alpha, c):
    """Per-sequence fused E-step, prange over chunks of sequences with
    thread-local sums; within a chunk, sequences run two at a time through
    the forward pass (:func:`_forward_two`), then one at a time through the
    backward pass (:func:`_backward_stats`).  Returns log_prob (S,), start_sum (K,),
    sum_t alpha_t w_{t+1}^T (K, K), resp_sum (K,) and gZ^T (P, K)."""
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
        # Scratch arrays carved from one block at fixed offsets, GAP apart:
        # LLVM's vectorised loops choose their path by pointer distances, so
        # separate small allocations (distances that vary from call to call)
        # would make the round-off of a sum vary from call to call.
        sizes = (P * BLOCK, 2 * K * BLOCK, BLOCK, K * BLOCK, K, K, K, K, K, K, 3, 3, K, K,
                 _XI_BLOCK * K, _XI_BLOCK * K, _XI_BLOCK * K, _XI_BLOCK * P)
        offsets = np.zeros(len(sizes) + 1, dtype=np.int64)
        for i in range(len(sizes)):
            offsets[i + 1] = offsets[i] + sizes[i] + GAP
        block = np.zeros(offsets[len(sizes)])
        zt = block[offsets[0]:offsets[0] + sizes[0]].reshape((P, BLOCK))
        lt = block[offsets[1]:offsets[1] + sizes[1]].reshape((2, K, BLOCK))
        m_buf = block[offsets[2]:offsets[2] + sizes[2]]
        e_buf = block[offsets[3]:offsets[3] + sizes[3]].reshape((K, BLOCK))
        prev0 = block[offsets[4]:offsets[4] + K]
        pred0 = block[offsets[5]:offsets[5] + K]
        cur0 = block[offsets[6]:offsets[6] + K]
        prev1 = block[offsets[7]:offsets[7] + K]
        pred1 = block[offsets[8]:offsets[8] + K]
        cur1 = block[offsets[9]:offsets[9] + K]
        fs0 = block[offsets[10]:offsets[10] + 3]
        fs1 = block[offsets[11]:offsets[11] + 3]
        beta = block[offsets[12]:offsets[12] + K]
        w = block[offsets[13]:offsets[13] + K]
        a_buf = block[offsets[14]:offsets[14] + sizes[14]].reshape((_XI_BLOCK, K))
        w_buf = block[offsets[15]:offsets[15] + sizes[15]].reshape((_XI_BLOCK, K))
        g_buf = block[offsets[16]:offsets[16] + sizes[16]].reshape((_XI_BLOCK, K))
        z_buf = block[offsets[17]:offsets[17] + sizes[17]].reshape((_XI_BLOCK, P))
        qs = np.zeros(2, dtype=np.int64)
        for s0 in range(s_lo, s_hi, 2):
            s1 = min(s0 + 1, s_hi - 1)
            lo0 = starts[s0]
            hi0 = ends[s0]
            lo1 = starts[s1]
            hi1 = ends[s1] if s1 > s0 else lo1  # an odd sequence out: no partner
            _forward_two(lo0, hi0, lo1, hi1, pi, AT, Z, W, const, frame, shift, alpha, c,
                         prev0, pred0, cur0, prev1, pred1, cur1, fs0, fs1, zt, lt, m_buf,
                         e_buf)
            lp0 = fs0[0] + np.log(fs0[1]) if fs0[2] == 1.0 else -np.inf
            lp1 = fs1[0] + np.log(fs1[1]) if fs1[2] == 1.0 else -np.inf
            log_prob[s0] = lp0 if hi0 > lo0 else 0.0  # an empty sequence: p = 1, no rows
            if s1 > s0:
                log_prob[s1] = lp1 if hi1 > lo1 else 0.0
            # an impossible sequence adds no statistics
            _backward_stats(lo0, hi0 if lp0 > -np.inf else lo0, A, Z, frame, alpha, c, beta, w,
                            a_buf, w_buf, g_buf, z_buf, qs, xi_part[chunk], start_part[chunk],
                            resp_part[chunk], gz_part[chunk])
            _backward_stats(lo1, hi1 if lp1 > -np.inf else lo1, A, Z, frame, alpha, c, beta, w,
                            a_buf, w_buf, g_buf, z_buf, qs, xi_part[chunk], start_part[chunk],
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
    """Chunks of the prange: a multiple of the thread count (at most four per
    thread) with at least two sequences per chunk where there are enough (pairs
    of sequences run interleaved)."""
    threads = numba.get_num_threads()
    return max(1, threads * min(4, n_sequences // (2 * threads)), min(n_sequences, threads))


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
