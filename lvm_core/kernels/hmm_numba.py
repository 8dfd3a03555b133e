"""Numba kernels for HMM inference on NumPy float64 arrays (CPU).

Reference: L. R. Rabiner, "A tutorial on hidden Markov models and selected
applications in speech recognition", Proc. IEEE 77(2), 1989, sec. III
(forward-backward with scaling, eqs. 18-27, 37-40, 91-92; Viterbi eqs. 30-35).

Notation (per sequence of length T; K states):

    pi_k = p(z_1 = k),  A_ij = p(z_{t+1} = j | z_t = i),
    log_frameprob[t, k] = log p(x_t | z_t = k).

Max-shifted, scaled forward recursion.  With m_t = max_k log_frameprob[t, k]
and b_t(k) = exp(log_frameprob[t, k] - m_t) (so max_k b_t(k) = 1: no
underflow however extreme the emissions are),

    a_1(k)   = pi_k b_1(k),                 c_1 = sum_k a_1(k),  alpha_1 = a_1 / c_1
    a_t(j)   = sum_i alpha_{t-1}(i) A_ij b_t(j), c_t = sum_j a_t(j), alpha_t = a_t / c_t
    log p(x_{1:T}) = sum_t (log c_t + m_t).

Scaled backward recursion and posteriors (no T x K x K array is built):

    beta_T = 1,   w_{t+1}(j) = b_{t+1}(j) beta_{t+1}(j) / c_{t+1}
    beta_t(i) = sum_j A_ij w_{t+1}(j)
    gamma_t(k) = alpha_t(k) beta_t(k)                      (sums to 1)
    xi_sum_ij = sum_t xi_t(i, j) = A_ij * sum_t alpha_t(i) w_{t+1}(j)

The sum over t of the outer products alpha_t w_{t+1}^T is accumulated in the
backward pass; A is applied once at the end.  Memory is O(T K).

Threading policy.  Sequences are independent, so the kernels run a numba
``prange`` over chunks of sequences, each chunk with thread-local partial
sums reduced after the loop.  The numba parallel region is the only parallel
code inside a kernel call; the BLAS calls of the models (log-densities,
emission statistics) run before and after it, never at the same time, so the
two thread pools never compete (both use up to the number of cores; set
``NUMBA_NUM_THREADS`` / ``OPENBLAS_NUM_THREADS`` to restrict either).

fastmath is restricted to ``{"reassoc", "contract", "arcp", "nsz"}``: no
``nnan``/``ninf``, so -inf (structural zeros, clamped states) keeps its
meaning.
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["forward_backward", "forward_log_prob", "viterbi", "forward_log_scaling", "symbol_counts"]

FASTMATH = {"reassoc", "contract", "arcp", "nsz"}


def _sequence_bounds(lengths):
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    return starts, ends


def _n_chunks(n_sequences):
    return max(1, min(n_sequences, 4 * numba.get_num_threads()))


@numba.njit(cache=True, fastmath=FASTMATH)
def _forward_scaled(pi, A, frame, shift, alpha, c, start, end):
    """Scaled forward pass over rows start..end-1 of one sequence.

    ``frame`` holds b_t = exp(log_frameprob_t - m_t) and ``shift`` m_t.
    Writes alpha_t into ``alpha`` (T, K) and c_t into ``c`` (T,); returns
    log p(x) = sum_t (log c_t + m_t), or -inf when the sequence is impossible
    (then alpha = 0, b = 0 and c = 0 from that step on).
    """
    K = pi.shape[0]
    tmp = np.empty(K)
    log_prob = 0.0
    for t in range(start, end):
        if t == start:
            for k in range(K):
                tmp[k] = pi[k] * frame[t, k]
        else:
            for k in range(K):
                tmp[k] = 0.0
            for i in range(K):
                a_prev = alpha[t - 1, i]
                for j in range(K):
                    tmp[j] += a_prev * A[i, j]
            for k in range(K):
                tmp[k] *= frame[t, k]
        s = 0.0
        for k in range(K):
            s += tmp[k]
        if not (s > 0.0):
            for t2 in range(t, end):
                c[t2] = 0.0
                for k in range(K):
                    alpha[t2, k] = 0.0
                    frame[t2, k] = 0.0
            return -np.inf
        inv_s = 1.0 / s
        for k in range(K):
            alpha[t, k] = tmp[k] * inv_s
        c[t] = s
        log_prob += np.log(s) + shift[t]
    return log_prob


@numba.njit(cache=True, parallel=True)
def _row_max(log_frameprob):
    """m_t = max_k log_frameprob[t, k], with 0 for rows that are all -inf (T,)."""
    T, K = log_frameprob.shape
    m = np.empty(T)
    for t in numba.prange(T):
        best = -np.inf
        for k in range(K):
            if log_frameprob[t, k] > best:
                best = log_frameprob[t, k]
        m[t] = best if best > -np.inf else 0.0
    return m


def _scaled_frame(log_frameprob):
    """b_t = exp(log_frameprob_t - m_t) (T, K) and m_t (T,), the exponentials
    taken by NumPy's vectorised exp (numba's scalar exp is several times slower)."""
    shift = _row_max(log_frameprob)
    frame = np.subtract(log_frameprob, shift[:, None])
    np.exp(frame, out=frame)
    return frame, shift


@numba.njit(cache=True, fastmath=FASTMATH)
def _backward_scaled(A, frame, alpha_gamma, c, start, end, xi_acc):
    """Scaled backward pass of one sequence (rows start..end-1).

    Overwrites alpha_t by gamma_t = alpha_t beta_t (renormalised against
    round-off) and adds sum_t alpha_t w_{t+1}^T to ``xi_acc`` (K, K), with
    w_{t+1} = b_{t+1} beta_{t+1} / c_{t+1}.
    """
    K = A.shape[0]
    beta = np.ones(K)
    w = np.empty(K)
    for t in range(end - 2, start - 1, -1):
        inv_c = 1.0 / c[t + 1]
        for j in range(K):
            w[j] = frame[t + 1, j] * beta[j] * inv_c
        for i in range(K):
            a = alpha_gamma[t, i]
            for j in range(K):
                xi_acc[i, j] += a * w[j]
        for i in range(K):
            s = 0.0
            for j in range(K):
                s += A[i, j] * w[j]
            beta[i] = s
        total = 0.0
        for i in range(K):
            g = alpha_gamma[t, i] * beta[i]
            alpha_gamma[t, i] = g
            total += g
        inv_total = 1.0 / total
        for i in range(K):
            alpha_gamma[t, i] *= inv_total


@numba.njit(cache=True, parallel=True, fastmath=FASTMATH)
def _forward_backward_chunks(pi, A, frame, shift, starts, ends, n_chunks):
    T, K = frame.shape
    S = starts.shape[0]
    posteriors = np.empty((T, K))
    c = np.empty(T)
    log_prob = np.empty(S)
    start_part = np.zeros((n_chunks, K))
    xi_part = np.zeros((n_chunks, K, K))
    for chunk in numba.prange(n_chunks):
        s_lo = chunk * S // n_chunks
        s_hi = (chunk + 1) * S // n_chunks
        for s in range(s_lo, s_hi):
            lo = starts[s]
            hi = ends[s]
            lp = _forward_scaled(pi, A, frame, shift, posteriors, c, lo, hi)
            log_prob[s] = lp
            if lp > -np.inf:
                _backward_scaled(A, frame, posteriors, c, lo, hi, xi_part[chunk])
                for k in range(K):
                    start_part[chunk, k] += posteriors[lo, k]
            else:
                for t in range(lo, hi):
                    for k in range(K):
                        posteriors[t, k] = 0.0
    start_sum = np.zeros(K)
    xi_sum = np.zeros((K, K))
    for chunk in range(n_chunks):
        for i in range(K):
            start_sum[i] += start_part[chunk, i]
            for j in range(K):
                xi_sum[i, j] += xi_part[chunk, i, j]
    for i in range(K):
        for j in range(K):
            xi_sum[i, j] *= A[i, j]
    return log_prob, posteriors, start_sum, xi_sum


@numba.njit(cache=True, parallel=True, fastmath=FASTMATH)
def _forward_chunks(pi, A, frame, shift, starts, ends, n_chunks):
    T, K = frame.shape
    S = starts.shape[0]
    log_prob = np.empty(S)
    for chunk in numba.prange(n_chunks):
        s_lo = chunk * S // n_chunks
        s_hi = (chunk + 1) * S // n_chunks
        for s in range(s_lo, s_hi):
            lo = starts[s]
            hi = ends[s]
            n = hi - lo
            alpha = np.empty((n, K))
            c = np.empty(n)
            log_prob[s] = _forward_scaled(pi, A, frame[lo:hi], shift[lo:hi], alpha, c, 0, n)
    return log_prob


@numba.njit(cache=True, parallel=True, fastmath=FASTMATH)
def _viterbi_chunks(log_pi, log_A, log_frameprob, starts, ends, n_chunks):
    T, K = log_frameprob.shape
    S = starts.shape[0]
    log_prob = np.empty(S)
    path = np.empty(T, dtype=np.int64)
    back = np.empty((T, K), dtype=np.int32)
    for chunk in numba.prange(n_chunks):
        s_lo = chunk * S // n_chunks
        s_hi = (chunk + 1) * S // n_chunks
        delta = np.empty(K)
        new = np.empty(K)
        for s in range(s_lo, s_hi):
            lo = starts[s]
            hi = ends[s]
            for k in range(K):
                delta[k] = log_pi[k] + log_frameprob[lo, k]
            for t in range(lo + 1, hi):
                for j in range(K):
                    best = -np.inf
                    arg = 0
                    for i in range(K):
                        v = delta[i] + log_A[i, j]
                        if v > best:
                            best = v
                            arg = i
                    new[j] = best + log_frameprob[t, j]
                    back[t, j] = arg
                for j in range(K):
                    delta[j] = new[j]
            best = -np.inf
            arg = 0
            for k in range(K):
                if delta[k] > best:
                    best = delta[k]
                    arg = k
            log_prob[s] = best
            path[hi - 1] = arg
            for t in range(hi - 1, lo, -1):
                arg = back[t, arg]
                path[t - 1] = arg
    return log_prob, path


def _check_inputs(log_startprob, log_transmat, log_frameprob, lengths):
    log_startprob = np.ascontiguousarray(log_startprob, dtype=np.float64)
    log_transmat = np.ascontiguousarray(log_transmat, dtype=np.float64)
    log_frameprob = np.ascontiguousarray(log_frameprob, dtype=np.float64)
    if lengths is None:
        lengths = np.array([log_frameprob.shape[0]], dtype=np.int64)
    starts, ends = _sequence_bounds(lengths)
    K = log_startprob.shape[0]
    if log_transmat.shape != (K, K) or log_frameprob.ndim != 2 or log_frameprob.shape[1] != K:
        raise ValueError(
            "log_startprob (K,), log_transmat (K, K) and log_frameprob (T, K) must agree "
            f"on K; got shapes {log_startprob.shape}, {log_transmat.shape} and "
            f"{log_frameprob.shape}."
        )
    if ends.size and ends[-1] != log_frameprob.shape[0]:
        raise ValueError(
            f"lengths must sum to T = {log_frameprob.shape[0]} (rows of log_frameprob); "
            f"they sum to {int(ends[-1])}."
        )
    return log_startprob, log_transmat, log_frameprob, starts, ends


def forward_backward(log_startprob, log_transmat, log_frameprob, lengths=None):
    """Posteriors and expected counts of an HMM (Rabiner 1989, eqs. 18-27, 37-40).

    Parameters
    ----------
    log_startprob : (K,) log pi.
    log_transmat : (K, K) log A.
    log_frameprob : (T, K) log p(x_t | z_t = k), sequences concatenated.
    lengths : (S,) int64 sequence lengths summing to T (None: one sequence).

    Returns
    -------
    log_prob : (S,) log p(x^(s)) per sequence (-inf for an impossible one, whose
        posteriors are then 0 and which adds nothing to the sums).
    posteriors : (T, K) gamma_t(k) = p(z_t = k | x).
    start_sum : (K,) sum_s gamma^(s)_1.
    xi_sum : (K, K) sum_s sum_t p(z_t = i, z_{t+1} = j | x).
    """
    log_startprob, log_transmat, log_frameprob, starts, ends = _check_inputs(
        log_startprob, log_transmat, log_frameprob, lengths)
    pi = np.exp(log_startprob)
    A = np.exp(log_transmat)
    frame, shift = _scaled_frame(log_frameprob)  # (T, K), (T,)
    return _forward_backward_chunks(pi, A, frame, shift, starts, ends,
                                    _n_chunks(starts.shape[0]))


def forward_log_prob(log_startprob, log_transmat, log_frameprob, lengths=None):
    """log p(x^(s)) per sequence, (S,), by the scaled forward pass alone:
    log p(x) = sum_t (log c_t + m_t) (Rabiner 1989, eq. 103)."""
    log_startprob, log_transmat, log_frameprob, starts, ends = _check_inputs(
        log_startprob, log_transmat, log_frameprob, lengths)
    frame, shift = _scaled_frame(log_frameprob)  # (T, K), (T,)
    return _forward_chunks(np.exp(log_startprob), np.exp(log_transmat), frame, shift,
                           starts, ends, _n_chunks(starts.shape[0]))


def forward_log_scaling(log_startprob, log_transmat, log_frameprob):
    """log c_t + m_t for one sequence, (T,): the log of the one-step predictive
    p(x_t | x_{1:t-1}); -inf from the first step that is impossible on.
    Used to locate the time index of an impossible observation."""
    log_startprob, log_transmat, log_frameprob, _, _ = _check_inputs(
        log_startprob, log_transmat, log_frameprob, None)
    T, K = log_frameprob.shape
    frame, shift = _scaled_frame(log_frameprob)  # (T, K), (T,)
    alpha = np.empty((T, K))
    c = np.empty(T)
    _forward_scaled(np.exp(log_startprob), np.exp(log_transmat), frame, shift,
                    alpha, c, 0, T)
    with np.errstate(divide="ignore"):
        return np.log(c) + shift


def viterbi(log_startprob, log_transmat, log_frameprob, lengths=None):
    """Most probable state paths (Rabiner 1989, eqs. 30-35), in log space:

        delta_1(k) = log pi_k + log b_1(k)
        delta_t(j) = max_i (delta_{t-1}(i) + log A_ij) + log b_t(j)
        log_prob = max_k delta_T(k);  path by back-tracking the argmaxes.

    Returns ``(log_prob (S,), path (T,) int64)``.
    """
    log_startprob, log_transmat, log_frameprob, starts, ends = _check_inputs(
        log_startprob, log_transmat, log_frameprob, lengths)
    return _viterbi_chunks(log_startprob, log_transmat, log_frameprob, starts, ends,
                           _n_chunks(starts.shape[0]))


@numba.njit(cache=True)
def _symbol_counts(symbols, posteriors, n_symbols):
    T, K = posteriors.shape
    obs_t = np.zeros((n_symbols, K))
    for t in range(T):
        f = symbols[t]
        for k in range(K):
            obs_t[f, k] += posteriors[t, k]
    return obs_t.T.copy()


def symbol_counts(symbols, posteriors, n_symbols):
    """obs[k, f] = sum_{t: x_t = f} gamma_t(k) (K, F) in one pass over T
    (Rabiner 1989, eq. 40c numerator); symbols (T,) int in 0..F-1."""
    return _symbol_counts(np.ascontiguousarray(symbols, dtype=np.int64),
                          np.ascontiguousarray(posteriors, dtype=np.float64), int(n_symbols))
