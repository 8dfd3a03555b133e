"""Chunked two-level forward-backward for few long HMM sequences (numba, CPU).

References: L. R. Rabiner, "A tutorial on hidden Markov models and selected
applications in speech recognition", Proc. IEEE 77(2), 1989, sec. III
(scaled forward-backward, eqs. 18-27, 37-40, 91-92); S. Maleki, M. Musuvathi
and T. Mytkowicz, "Parallelizing dynamic programming through rank
convergence", PPoPP 2014 (chunks started from an arbitrary state, then fixed
up until they agree with the true recursion); G. Birkhoff, "Extensions of
Jentzsch's theorem", Trans. AMS 85, 1957 (a non-negative matrix never expands
the projective distance between positive vectors).

Same contract and the same scaled recursions as
:func:`lvm_core.kernels.hmm_numba.forward_backward` (see its docstring):

    alpha_t = alpha_{t-1} A diag(b_t) / c_t,      log p(x) = sum_t (log c_t + m_t),
    beta_t  = A diag(b_{t+1}) beta_{t+1} / c_{t+1},  beta_T = 1,
    gamma_t = alpha_t * beta_t,  xi_sum = A * sum_t alpha_t w_{t+1}^T,
    w_{t+1} = b_{t+1} * beta_{t+1} / c_{t+1}.

Each sequence is cut into chunks; each phase runs a numba ``prange`` over
chunks, so one sequence uses every core:

1. forward, in parallel: chunk 0 of a sequence starts from pi (exact); any
   other chunk starts from the uniform distribution as a stand-in for the
   unknown alpha_{lo-1} and stores its normalised alpha_t and c_t;
2. forward fix-up, per sequence over its chunks in order: from the true
   alpha_{lo-1} (the end of the previous, already fixed chunk) recompute
   alpha_t until it agrees with the stored value to ``rtol`` (every component,
   zeros included); the normalised recursion depends on its past only through
   alpha_{t-1}, so every later stored step is then the true one up to that
   tolerance (Birkhoff: the error never grows).  The chunk's sum of log c_t
   is corrected for the recomputed steps;
3. backward, in parallel: every chunk but the last starts from beta = 1 at its
   end.  Any start with alpha_{hi-1} . beta_{hi-1} = 1 keeps
   alpha_t . beta_t = 1 at every step (the identity that makes gamma sum to 1),
   so the guessed betas have the right scale and only their direction is
   guessed.  The first ``window`` steps of a chunk only store their betas;
   below them gamma_t (in place of alpha_t) and the sums of alpha_t w_{t+1}^T
   are computed on the fly, as in the sequential kernel;
4. backward fix-up, per sequence from its last chunk back: the window is
   recomputed from the true beta_hi until it is parallel to the stored betas
   (directions only: the scale of the scaled betas drifts by round-off, about
   1e-14 over 10^6 steps, so xi_sum may differ from the sequential kernel's
   by that drift).  A chunk whose window never agrees is recomputed whole
   (its alpha from the end of the previous chunk, then backward from the true
   beta_hi);
5. gamma and xi for the window rows, in parallel.

Chunk transfer matrices M_c = prod_t A diag(b_t) are never formed: each
costs K^3 per step (32 times the recursion's work at K = 32, more than two
cores can win back); the fix-up uses their rank-one limit instead (products
of positive matrices lose the memory of where they started).  Work is
O(T K^2) plus O(K^2) per fixed-up step, memory O(T K) (alpha/gamma and b, as
the sequential kernel; never a T x K x K array).  Chains that forget slowly
(near-periodic or near-reducible A) need long fix-ups: in the worst case the
fix-up recomputes every chunk, which is the sequential kernel again (exact,
not faster).  A chunk whose uniform start needed the rescue step of the
sequential kernel (every reachable state's b_t underflowed) or met an
impossible observation is recomputed completely from the true state.

One deliberate difference: beta_t(j) is set to 0 where alpha_t(j) = 0.
Such a state cannot be on any path through the data, so no posterior or
xi term changes, but its scaled beta is not bounded by 1 / alpha and can
overflow (b_{t+1}(j) / c_{t+1} ~ 1e60 per step when the only reachable state
explains the data 1e60 times worse); inf * 0 then gave NaN posteriors and
xi in the sequential kernels.

Results equal the sequential kernel to about ``rtol`` times the number of
chunks (relative), not bit for bit.  The chunk layout depends only on the
sequence lengths (not on the number of threads), so results do not change
with ``NUMBA_NUM_THREADS``.
"""
from __future__ import annotations

import numba
import numpy as np

from .._jit import njit
from .hmm_numba import _XI_BLOCK, FASTMATH, _buffer, _check_inputs, _matvec, _scaled_frame, _xi_flush

__all__ = ["forward_backward", "forward_log_prob", "chunk_bounds", "choose_method", "MIN_CHUNK",
           "MAX_CHUNKS", "WINDOW"]

#: shortest chunk: a fix-up of a few dozen steps must stay a small share of it
MIN_CHUNK = 2048
#: most chunks per sequence (enough for 64 threads; the layout is thread-independent)
MAX_CHUNKS = 64
#: steps at the end of each chunk whose betas wait for the backward fix-up
WINDOW = 256


def chunk_bounds(lengths, min_chunk=MIN_CHUNK, max_chunks=MAX_CHUNKS):
    """Chunks of every sequence: ``(lo, hi, first, seq_chunks)``.

    A sequence of length L gets n = clip(L // min_chunk, 1, max_chunks) chunks
    of nearly equal length; ``lo``/``hi`` (G,) are row bounds in the
    concatenated (T, K) input, ``first`` (G,) marks the first chunk of its
    sequence and ``seq_chunks`` (S + 1,) indexes the chunks of sequence s as
    ``seq_chunks[s]:seq_chunks[s + 1]``.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = np.clip(lengths // int(min_chunk), 1, int(max_chunks))
    seq_chunks = np.concatenate([[0], np.cumsum(n)]).astype(np.int64)
    starts = np.cumsum(lengths) - lengths
    lo, hi, first = [], [], []
    for s, (start, L, n_s) in enumerate(zip(starts, lengths, n)):
        cuts = start + (np.arange(n_s + 1) * L) // n_s
        lo.extend(cuts[:-1])
        hi.extend(cuts[1:])
        first.extend([True] + [False] * (n_s - 1))
    return (np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64),
            np.asarray(first, dtype=np.bool_), seq_chunks)


def choose_method(method, lengths, T):
    """``"scan"`` or ``"sequential"`` for ``method`` in {"auto", "scan", "sequential"}.

    "auto" picks the scan when numba has more than one thread, there are fewer
    sequences than threads (the sequential kernel already runs one sequence
    per thread) and the longest sequence is at least 2 * MIN_CHUNK steps.
    """
    if method not in ("auto", "scan", "sequential"):
        raise ValueError(
            f"method must be 'auto', 'sequential' or 'scan'; got {method!r}. Use 'auto' to let "
            "the kernel choose by the number of threads and the sequence lengths."
        )
    if method != "auto":
        return method
    threads = numba.get_num_threads()
    lengths = np.asarray([T] if lengths is None else lengths)
    if threads > 1 and 0 < lengths.size < threads and lengths.max() >= 2 * MIN_CHUNK:
        return "scan"
    return "sequential"


@njit(fastmath=FASTMATH)
def _close(new, old, rtol):
    """True when every component agrees to rtol relative (so zeros must be exact zeros)."""
    for k in range(new.shape[0]):
        a = new[k]
        b = old[k]
        if not (abs(a - b) <= rtol * max(a, b)):
            return False
    return True


@njit(fastmath=FASTMATH)
def _close_direction(new, old, rtol):
    """True when new and old are parallel to rtol: |new_k - r old_k| <= rtol new_k
    with r = sum(new) / sum(old).  Scaled betas carry a round-off drift of
    their scale (alpha_t . beta_t = 1 only up to it), so only directions are
    compared; the stored (guessed) betas keep the exact scale of their start."""
    s_new = 0.0
    s_old = 0.0
    for k in range(new.shape[0]):
        s_new += new[k]
        s_old += old[k]
    if not (s_old > 0.0):
        return False
    r = s_new / s_old
    for k in range(new.shape[0]):
        a = new[k]
        b = r * old[k]
        if not (abs(a - b) <= rtol * max(a, b)):
            return False
    return True


@njit(fastmath=FASTMATH, inline="always")
def _forward_step(pi, AT, prev, first, log_frameprob, frame, shift, t, pred, cur, exact):
    """One scaled forward step at row t: cur = pred * b_t with pred = pi (first
    step) or A^T prev; returns c_t = sum(cur) (cur is left unnormalised).

    With ``exact`` (prev is the true alpha_{t-1}) the rescue step of
    :func:`lvm_core.kernels.hmm_numba._forward_scaled` may rewrite frame[t] and
    shift[t]; otherwise a step that would need it returns -1 (and 0 stays 0:
    impossible)."""
    K = pred.shape[0]
    if first:
        for k in range(K):
            pred[k] = pi[k]
    else:
        _matvec(AT, prev, pred)
    s = 0.0
    for k in range(K):
        cur[k] = pred[k] * frame[t, k]
        s += cur[k]
    if not (s > 0.0):
        if not exact:
            return -1.0
        m = -np.inf
        for k in range(K):
            if pred[k] > 0.0:
                m = max(m, np.log(pred[k]) + log_frameprob[t, k])
        if m > -np.inf:
            s = 0.0
            for k in range(K):
                if pred[k] > 0.0:
                    frame[t, k] = np.exp(log_frameprob[t, k] - m)
                else:
                    frame[t, k] = 0.0
                cur[k] = pred[k] * frame[t, k]
                s += cur[k]
            shift[t] = m
    if not (s > 0.0):
        return 0.0
    return s


@njit(parallel=True, fastmath=FASTMATH)
def _forward_phase(pi, AT, log_frameprob, frame, shift, lo, hi, first, alpha, c):
    """Phase 1: every chunk in parallel; returns (sum of log c_t + m_t per chunk,
    status per chunk: 0 done, 1 stopped (guessed start needed a rescue),
    2 impossible (exact start))."""
    K = pi.shape[0]
    G = lo.shape[0]
    chunk_ll = np.zeros(G)
    status = np.zeros(G, dtype=np.int64)
    for g in numba.prange(G):
        prev = np.full(K, 1.0 / K)
        pred = np.empty(K)
        cur = np.empty(K)
        log_prob = 0.0
        prod_c = 1.0
        exact = first[g]
        for t in range(lo[g], hi[g]):
            s = _forward_step(pi, AT, prev, exact and t == lo[g], log_frameprob, frame, shift,
                              t, pred, cur, exact)
            if not (s > 0.0):
                status[g] = 1 if s < 0.0 else 2
                break
            inv_s = 1.0 / s
            for k in range(K):
                v = cur[k] * inv_s
                prev[k] = v
                alpha[t, k] = v
            c[t] = s
            log_prob += shift[t]
            if s < 1e-100:  # folded at once: prod_c (>= 1e-200) times s could underflow
                log_prob += np.log(s)
            else:
                prod_c *= s
            if not (1e-200 < prod_c < 1e200):
                log_prob += np.log(prod_c)
                prod_c = 1.0
        chunk_ll[g] = log_prob + np.log(prod_c)
    return chunk_ll, status


@njit(parallel=True, fastmath=FASTMATH)
def _forward_fixup(pi, AT, log_frameprob, frame, shift, lo, hi, seq_chunks, chunk_ll, status,
                   alpha, c, rtol):
    """Phase 2: per sequence, each chunk after the first recomputed from the true
    alpha_{lo-1} until it agrees with phase 1.  Returns log p(x^(s)) (S,)."""
    K = pi.shape[0]
    S = seq_chunks.shape[0] - 1
    log_prob = np.empty(S)
    for s in numba.prange(S):
        prev = np.empty(K)
        pred = np.empty(K)
        cur = np.empty(K)
        g0 = seq_chunks[s]
        total = chunk_ll[g0]
        possible = status[g0] == 0
        for g in range(g0 + 1, seq_chunks[s + 1]):
            if not possible:
                break
            for k in range(K):
                prev[k] = alpha[lo[g] - 1, k]
            reuse = status[g] == 0
            part = chunk_ll[g] if reuse else 0.0
            for t in range(lo[g], hi[g]):
                old_lc = np.log(c[t]) + shift[t] if reuse else 0.0
                step = _forward_step(pi, AT, prev, False, log_frameprob, frame, shift, t, pred,
                                     cur, True)
                if not (step > 0.0):
                    possible = False
                    break
                inv_s = 1.0 / step
                for k in range(K):
                    cur[k] *= inv_s
                done = reuse and _close(cur, alpha[t], rtol)
                for k in range(K):
                    alpha[t, k] = cur[k]
                    prev[k] = cur[k]
                c[t] = step
                part += np.log(step) + shift[t] - old_lc
                if done:
                    break
            total += part
        log_prob[s] = total if possible else -np.inf
    return log_prob


@njit(fastmath=FASTMATH)
def _backward_rows(A, frame, alpha, c, t_hi, t_lo, beta_io, gamma, xi_acc):
    """The sequential kernel's backward step for rows t_hi down to t_lo:
    on entry ``beta_io`` holds beta_{t_hi + 1}; each step sets beta_t = A w_{t+1},
    gamma_t = alpha_t beta_t / sum_k alpha_t(k) beta_t(k) (``gamma`` may be
    ``alpha``) and adds alpha_t w_{t+1}^T to xi_acc; on exit ``beta_io`` holds
    beta_{t_lo}.  The work arrays are local (no aliasing with the inputs)."""
    K = A.shape[0]
    beta = np.empty(K)
    for k in range(K):
        beta[k] = beta_io[k]
    w = np.empty(K)
    a_buf = np.empty((_XI_BLOCK, K))
    w_buf = np.empty((_XI_BLOCK, K))
    q = 0
    for t in range(t_hi, t_lo - 1, -1):
        inv_c = 1.0 / c[t + 1]
        for j in range(K):
            w[j] = frame[t + 1, j] * beta[j] * inv_c
            w_buf[q, j] = w[j]
            a_buf[q, j] = alpha[t, j]
        _matvec(A, w, beta)
        total = 0.0
        for i in range(K):
            a = a_buf[q, i]
            b_i = beta[i] if a > 0.0 else 0.0  # no path through state i at t: beta_t(i) = 0
            beta[i] = b_i
            g = a * b_i
            gamma[t, i] = g
            total += g
        inv_total = 1.0 / total
        for i in range(K):
            gamma[t, i] *= inv_total
        q += 1
        if q == _XI_BLOCK:
            _xi_flush(xi_acc, a_buf, w_buf, q)
            q = 0
    if q > 0:
        _xi_flush(xi_acc, a_buf, w_buf, q)
    for k in range(K):
        beta_io[k] = beta[k]


@njit(parallel=True, fastmath=FASTMATH)
def _backward_phase(A, frame, alpha, c, lo, hi, last, chunk_ok, window, gamma, beta_win,
                    beta_lo, xi_part):
    """Phase 3: every chunk in parallel from beta_{hi-1} = 1.  The first
    ``window`` steps of a chunk that is not its sequence's last only store their
    betas (in ``beta_win[g, j]`` for row hi-1-j: they wait for the fix-up); the
    rows below get gamma and xi as in the sequential kernel.  beta at row lo
    goes to ``beta_lo[g]``."""
    K = A.shape[0]
    G = lo.shape[0]
    for g in numba.prange(G):
        if not chunk_ok[g]:
            for t in range(lo[g], hi[g]):
                for k in range(K):
                    gamma[t, k] = 0.0
            continue
        if hi[g] == lo[g]:
            continue  # an empty sequence: no rows
        beta = np.ones(K)
        w = np.empty(K)
        top = hi[g] - 1
        if last[g]:
            for k in range(K):
                gamma[top, k] = alpha[top, k]
            n_win = 0
        else:
            n_win = min(window, hi[g] - lo[g])
            for k in range(K):
                beta[k] = 1.0 if alpha[top, k] > 0.0 else 0.0
                beta_win[g, 0, k] = beta[k]
            for j in range(1, n_win):
                t = top - j
                inv_c = 1.0 / c[t + 1]
                for k in range(K):
                    w[k] = frame[t + 1, k] * beta[k] * inv_c
                _matvec(A, w, beta)
                for k in range(K):
                    if not alpha[t, k] > 0.0:
                        beta[k] = 0.0
                    beta_win[g, j, k] = beta[k]
        # rows top - n_win .. lo (for the last chunk: top - 1 .. lo)
        start = top - max(n_win, 1)
        if start >= lo[g]:
            _backward_rows(A, frame, alpha, c, start, lo[g], beta, gamma, xi_part[g])
        for k in range(K):
            beta_lo[g, k] = beta[k]


@njit(parallel=True, fastmath=FASTMATH)
def _backward_fixup(pi, AT, log_frameprob, shift, first, A, frame, alpha, c, lo, hi, seq_chunks,
                    seq_ok, window, gamma, beta_win, beta_lo, xi_part, rtol):
    """Phase 4: per sequence, from its last chunk back, each chunk's window is
    recomputed from the true beta_{hi} (``beta_lo`` of the next chunk) until it
    is parallel to the stored betas.  A chunk whose window never agrees is
    recomputed completely from the true beta: its alpha rows again from
    alpha_{lo-1} (``gamma`` may be ``alpha``: phase 3 overwrote the rows below
    the window; alpha_{lo-1} lies in the previous chunk's window, untouched
    until phase 5), then gamma, xi and beta_lo.  Returns ``redone`` (G,):
    chunks that no longer need phase 5."""
    K = A.shape[0]
    S = seq_chunks.shape[0] - 1
    G = lo.shape[0]
    redone = np.zeros(G, dtype=np.bool_)
    for s in numba.prange(S):
        if not seq_ok[s]:
            continue
        beta = np.empty(K)
        new = np.empty(K)
        w = np.empty(K)
        prev = np.empty(K)
        pred = np.empty(K)
        for g in range(seq_chunks[s + 1] - 2, seq_chunks[s] - 1, -1):
            for k in range(K):
                beta[k] = beta_lo[g + 1, k]
            n_win = min(window, hi[g] - lo[g])
            agreed = False
            for j in range(n_win):
                t = hi[g] - 1 - j
                inv_c = 1.0 / c[t + 1]
                for k in range(K):
                    w[k] = frame[t + 1, k] * beta[k] * inv_c
                _matvec(A, w, new)
                for k in range(K):
                    if not alpha[t, k] > 0.0:
                        new[k] = 0.0
                if _close_direction(new, beta_win[g, j], rtol):
                    agreed = True
                    break
                for k in range(K):
                    beta_win[g, j, k] = new[k]
                    beta[k] = new[k]
            if not agreed:
                # never agreed: the whole chunk again, sequentially, from the true beta_hi
                if not first[g]:
                    for k in range(K):
                        prev[k] = alpha[lo[g] - 1, k]
                for t in range(lo[g], hi[g]):
                    step = _forward_step(pi, AT, prev, first[g] and t == lo[g], log_frameprob,
                                         frame, shift, t, pred, new, True)
                    inv_s = 1.0 / step  # > 0: the sequence is possible
                    for k in range(K):
                        prev[k] = new[k] * inv_s
                        alpha[t, k] = prev[k]
                    c[t] = step
                for k in range(K):
                    beta[k] = beta_lo[g + 1, k]
                for i in range(K):
                    for j in range(K):
                        xi_part[g, i, j] = 0.0
                _backward_rows(A, frame, alpha, c, hi[g] - 1, lo[g], beta, gamma, xi_part[g])
                for k in range(K):
                    beta_lo[g, k] = beta[k]
                redone[g] = True
    return redone


@njit(parallel=True, fastmath=FASTMATH)
def _window_phase(frame, alpha, c, lo, hi, last, chunk_ok, redone, window, gamma, beta_win,
                  beta_lo, xi_part):
    """Phase 5: gamma and xi for the window rows hi-1 .. hi-n_win of every chunk
    (their betas are now the true ones); the transition hi-1 -> hi uses the
    next chunk's beta_lo."""
    K = frame.shape[1]
    G = lo.shape[0]
    for g in numba.prange(G):
        if last[g] or redone[g] or not chunk_ok[g]:
            continue
        a_buf = np.empty((_XI_BLOCK, K))
        w_buf = np.empty((_XI_BLOCK, K))
        q = 0
        n_win = min(window, hi[g] - lo[g])
        for j in range(n_win):
            t = hi[g] - 1 - j
            inv_c = 1.0 / c[t + 1]
            for k in range(K):
                b_next = beta_lo[g + 1, k] if j == 0 else beta_win[g, j - 1, k]
                w_buf[q, k] = frame[t + 1, k] * b_next * inv_c
                a_buf[q, k] = alpha[t, k]
            total = 0.0
            for k in range(K):
                v = a_buf[q, k] * beta_win[g, j, k]
                gamma[t, k] = v
                total += v
            inv_total = 1.0 / total
            for k in range(K):
                gamma[t, k] *= inv_total
            q += 1
            if q == _XI_BLOCK:
                _xi_flush(xi_part[g], a_buf, w_buf, q)
                q = 0
        if q > 0:
            _xi_flush(xi_part[g], a_buf, w_buf, q)


def _run_forward(log_startprob, log_transmat, log_frameprob, lengths, work, min_chunk, rtol):
    log_startprob, log_transmat, log_frameprob, starts, ends = _check_inputs(
        log_startprob, log_transmat, log_frameprob, lengths)
    if not (rtol >= 0.0):
        raise ValueError(f"rtol must be >= 0; got {rtol!r}. Use a small value such as 1e-14.")
    if int(min_chunk) < 1:
        raise ValueError(f"min_chunk must be a positive integer; got {min_chunk!r}.")
    lo, hi, first, seq_chunks = chunk_bounds(ends - starts, min_chunk=min_chunk)
    pi = np.exp(log_startprob)
    A = np.exp(log_transmat)
    AT = np.ascontiguousarray(A.T)
    T, K = log_frameprob.shape
    frame, shift = _scaled_frame(log_frameprob, work)  # (T, K), (T,)
    alpha = _buffer(work, "gamma", (T, K))
    c = _buffer(work, "c", (T,))
    chunk_ll, status = _forward_phase(pi, AT, log_frameprob, frame, shift, lo, hi, first, alpha, c)
    log_prob = _forward_fixup(pi, AT, log_frameprob, frame, shift, lo, hi, seq_chunks, chunk_ll,
                              status, alpha, c, float(rtol))
    return log_prob, (pi, A, AT, log_frameprob, frame, shift), alpha, c, (lo, hi, first,
                                                                         seq_chunks)


def forward_backward(log_startprob, log_transmat, log_frameprob, lengths=None, work=None,
                     min_chunk=MIN_CHUNK, rtol=1e-14, window=WINDOW):
    """Posteriors and expected counts by the chunked scan (Rabiner 1989, eqs.
    18-27, 37-40; chunking after Maleki et al. 2014): the contract of
    :func:`lvm_core.kernels.hmm_numba.forward_backward`.

    Returns ``(log_prob (S,), posteriors (T, K), start_sum (K,), xi_sum (K, K))``
    with xi_sum_ij = A_ij sum_t alpha_t(i) w_{t+1}(j).  ``min_chunk``: shortest
    chunk (sequences shorter than 2 * min_chunk are one chunk, i.e. the
    sequential recursion); ``rtol``: agreement that ends a fix-up;
    ``window``: steps at the end of a chunk kept for the backward fix-up (a
    chunk whose fix-up needs more is recomputed whole).  ``work``: optional
    dict of reused work arrays (the same as the sequential kernel's).
    """
    if int(window) < 1:
        raise ValueError(f"window must be a positive integer; got {window!r}.")
    window = int(window)
    log_prob, arrays, alpha, c, bounds = _run_forward(
        log_startprob, log_transmat, log_frameprob, lengths, work, min_chunk, rtol)
    pi, A, AT, log_frameprob, frame, shift = arrays
    lo, hi, first, seq_chunks = bounds
    T, K = frame.shape
    G = lo.shape[0]
    seq_ok = np.isfinite(log_prob)
    chunk_ok = np.repeat(seq_ok, np.diff(seq_chunks))
    last = np.zeros(G, dtype=np.bool_)
    last[seq_chunks[1:] - 1] = True
    gamma = alpha  # in place: gamma_t overwrites alpha_t
    beta_win = np.empty((G, min(window, int(np.max(hi - lo))), K))
    beta_lo = np.empty((G, K))
    xi_part = np.zeros((G, K, K))
    _backward_phase(A, frame, alpha, c, lo, hi, last, chunk_ok, window, gamma, beta_win, beta_lo,
                    xi_part)
    redone = _backward_fixup(pi, AT, log_frameprob, shift, first, A, frame, alpha, c, lo, hi,
                             seq_chunks, seq_ok, window, gamma, beta_win, beta_lo, xi_part,
                             float(rtol))
    _window_phase(frame, alpha, c, lo, hi, last, chunk_ok, redone, window, gamma, beta_win,
                  beta_lo, xi_part)
    start_sum = np.sum(gamma[lo[first & (hi > lo)]], axis=0)
    return log_prob, gamma, start_sum, A * np.sum(xi_part, axis=0)


def forward_log_prob(log_startprob, log_transmat, log_frameprob, lengths=None,
                     min_chunk=MIN_CHUNK, rtol=1e-14):
    """log p(x^(s)) per sequence (S,) = sum_t (log c_t + m_t) by the chunked
    forward pass and its fix-up (phases 1-2 of the module docstring)."""
    return _run_forward(log_startprob, log_transmat, log_frameprob, lengths, None, min_chunk,
                        rtol)[0]
