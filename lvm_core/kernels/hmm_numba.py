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
backward pass (thread-local, per chunk of sequences) and A is applied once at
the end; gamma_t overwrites alpha_t in place.  Memory is O(T K): b and
alpha/gamma, two T x K arrays besides the input (an E-step of a Gaussian HMM
with K = 8 on T = 1e6 adds ~200 MiB peak RSS, 3.2 T x K float64 arrays, see
``benchmarks/hmm_vs_hmmlearn.py --memory``).  The EM loop passes a ``work``
dict so that these arrays are reused between iterations (fresh multi-MB
arrays cost page faults every time).

Emission statistics (gamma^T [x, x^2], symbol counts) are computed from the
posteriors after the kernel, in one parallel numba pass
(:func:`weighted_sums`, :func:`symbol_counts`): as fast as BLAS at these
small inner sizes, without switching thread pools, and the kernel stays
independent of the emission family.  Emissions whose log-density is affine
in features (diagonal/spherical Gaussians) have a fused E-step instead,
:func:`forward_backward_affine` (:mod:`lvm_core.kernels.hmm_affine`): one
pass per sequence, no (T, K) arrays of log-densities or posteriors.

Threading policy.  Sequences are independent, so the kernels run a numba
``prange`` over chunks of sequences, each chunk with thread-local partial
sums reduced after the loop.  On the NumPy path of the categorical and
diagonal/spherical Gaussian models the whole EM iteration (log-densities,
exponentials, forward-backward, statistics) runs in numba's pool only, so two
thread pools never alternate: BLAS is not called inside the loop (full/tied
covariances and GMM emissions still use BLAS products between kernel calls,
never during one).  numba's OpenMP workers wait passively
(``OMP_WAIT_POLICY=PASSIVE`` is set as a default at import unless the user
set it): spinning workers cost 2-5x on a loaded machine.  Restrict threads
with ``NUMBA_NUM_THREADS`` / ``numba.set_num_threads``.

Limitation shared by every scaled recursion (and hmmlearn's "scaling"):
within a step, states whose forward probability is below ~1e-308 times the
largest one are dropped.  This matters only when structural zeros in A later
make such a state the only way forward (with a full-support A the dropped
mass stays negligible); the rescue step below keeps the recursion going when
the per-frame maximum belongs to an unreachable state.

fastmath is restricted to ``{"reassoc", "contract", "arcp", "nsz"}``: no
``nnan``/``ninf``, so -inf (structural zeros, clamped states) keeps its
meaning.
"""
from __future__ import annotations

import os
import types

# numba's OpenMP workers wait passively between parallel regions unless the
# user chose otherwise: spinning workers steal the cores from the NumPy work
# that runs between kernel calls (and from other processes on a shared box).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numba  # noqa: E402
import numpy as np  # noqa: E402

from .._jit import njit  # noqa: E402

__all__ = ["forward_backward", "forward_log_prob", "viterbi", "forward_log_scaling", "symbol_counts",
           "affine_rows", "weighted_sums", "forward_backward_affine"]

FASTMATH = {"reassoc", "contract", "arcp", "nsz"}

# Inputs with at most this many T x K cells run the serial twin of each
# parallel kernel: a parallel pass over a few thousand cells saves nothing,
# and compiling a ``parallel=True`` kernel costs 2-3x the serial one, which a
# new user pays on the first fit (the twin keeps that first fit short).
SERIAL_MAX_CELLS = 1 << 16


def _serial_twin(kernel, fastmath=FASTMATH):
    """The same Python function compiled without ``parallel=True`` (``prange``
    is then ``range``), under its own name ``<name>_serial`` so that numba
    caches the two apart."""
    f = kernel.py_func
    name = f.__name__ + "_serial"
    code = f.__code__.replace(co_name=name, co_qualname=name)
    twin = types.FunctionType(code, f.__globals__, name, f.__defaults__, f.__closure__)
    twin.__qualname__ = name
    twin.__module__ = f.__module__
    twin.__doc__ = f.__doc__
    return njit(fastmath=fastmath)(twin)


def _pick(kernel, twin, cells, n_chunks):
    """``twin`` (serial) for small inputs or a single chunk, else ``kernel``."""
    return twin if (n_chunks <= 1 or cells <= SERIAL_MAX_CELLS) else kernel


def _sequence_bounds(lengths):
    lengths = np.ascontiguousarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    return starts, ends


def _n_chunks(n_sequences):
    return max(1, min(n_sequences, 4 * numba.get_num_threads()))


@njit(fastmath=FASTMATH)
def _matvec(M, v, out):
    """out = M v for a (K, K) C-ordered M, four rows at a time (each load of
    v[i] feeds four multiply-adds: ~1.3-1.6x a row-by-row dot at K = 16-32)."""
    K = v.shape[0]
    j = 0
    while j + 4 <= K:
        a0 = 0.0
        a1 = 0.0
        a2 = 0.0
        a3 = 0.0
        for i in range(K):
            x = v[i]
            a0 += M[j, i] * x
            a1 += M[j + 1, i] * x
            a2 += M[j + 2, i] * x
            a3 += M[j + 3, i] * x
        out[j] = a0
        out[j + 1] = a1
        out[j + 2] = a2
        out[j + 3] = a3
        j += 4
    while j < K:
        acc = 0.0
        for i in range(K):
            acc += M[j, i] * v[i]
        out[j] = acc
        j += 1


@njit(fastmath=FASTMATH)
def _forward_scaled(pi, AT, log_frameprob, frame, shift, alpha, c, start, end):
    """Scaled forward pass over rows start..end-1 of one sequence.

    ``AT`` is A transposed (so that sum_i alpha_{t-1}(i) A_ij is a contiguous
    dot product), ``frame`` holds b_t = exp(log_frameprob_t - m_t) and
    ``shift`` m_t.  Writes alpha_t into ``alpha`` (T, K) and c_t into ``c``
    (T,); returns log p(x) = sum_t (log c_t + m_t), or -inf when the sequence
    is impossible (then alpha = 0, b = 0 and c = 0 from that step on).

    Rescue step: when every reachable state's b_t underflows (the frame
    maximum m_t belongs to a state the chain cannot be in), the row is
    re-shifted by m_t = max_j [log (alpha_{t-1} A)_j + log_frameprob_tj] and
    b_t(j) is set to 0 for unreachable states (which changes no posterior).
    """
    K = pi.shape[0]
    prev = np.empty(K)
    pred = np.empty(K)
    cur = np.empty(K)
    log_prob = 0.0
    prod_c = 1.0  # product of recent c_t, folded into log_prob when it leaves [1e-200, 1e200]
    for t in range(start, end):
        if t == start:
            for k in range(K):
                pred[k] = pi[k]
        else:
            _matvec(AT, prev, pred)  # pred = A^T alpha_{t-1}
        s = 0.0
        for k in range(K):
            cur[k] = pred[k] * frame[t, k]
            s += cur[k]
        if not (s > 0.0):
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
            for t2 in range(t, end):
                c[t2] = 0.0
                for k in range(K):
                    alpha[t2, k] = 0.0
                    frame[t2, k] = 0.0
            return -np.inf
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
    return log_prob + np.log(prod_c)


# exp for x <= 0 in straight-line code that LLVM vectorises (numba's exp is a
# scalar libm call, and so is NumPy's float64 exp on CPUs without AVX-512:
# ~20 ns each; with AVX-512 NumPy's vectorised exp is used, see _scaled_frame):
# Cody-Waite reduction x = n ln 2 + r, |r| <= ln 2 / 2, with n = round(x / ln 2)
# by the 1.5 * 2^52 "magic number" trick; e^r by its Taylor polynomial of
# degree 13 (truncation error < 1e-17); 2^n by building the float's exponent
# bits.  Max error 1 ulp against NumPy; results below e^-708 are flushed to 0
# (they are relative to the row maximum, 1 after the shift).
_MAGIC = 6755399441055744.0
_MAGIC_BITS = int(np.array([_MAGIC]).view(np.int64)[0])
_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10


@njit(parallel=True, fastmath={"contract"})
def _shift_exp_rows(log_frameprob, n_chunks, frame, shift):
    """m_t = max_k log_frameprob[t, k] (0 for rows that are all -inf) and
    b_t = exp(log_frameprob_t - m_t), in one parallel pass: (T, K), (T,).
    No reassociation here: the magic-number rounding relies on exact IEEE
    order of operations."""
    T, K = log_frameprob.shape
    for chunk in numba.prange(n_chunks):
        lo = chunk * T // n_chunks
        hi = (chunk + 1) * T // n_chunks
        x_buf = np.empty(K)
        y_buf = np.empty(K)
        y_bits = y_buf.view(np.int64)
        s_bits = np.empty(K, dtype=np.int64)
        s_buf = s_bits.view(np.float64)
        for t in range(lo, hi):
            m = -np.inf
            for k in range(K):
                m = max(m, log_frameprob[t, k])
            if not m > -np.inf:
                m = 0.0
            shift[t] = m
            for k in range(K):
                x = max(log_frameprob[t, k] - m, -745.0)
                x_buf[k] = x
                y_buf[k] = x * _LOG2E + _MAGIC
            for k in range(K):
                s_bits[k] = (y_bits[k] - _MAGIC_BITS + 1023) << 52
            for k in range(K):
                x = x_buf[k]
                n = y_buf[k] - _MAGIC
                r = (x - n * _LN2_HI) - n * _LN2_LO
                p = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (
                    1 / 120 + r * (1 / 720 + r * (1 / 5040 + r * (1 / 40320 + r * (
                        1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (
                            1 / 479001600 + r * (1 / 6227020800)))))))))))))
                frame[t, k] = p * s_buf[k] if x > -708.0 else 0.0
    return frame, shift


_shift_exp_rows_serial = _serial_twin(_shift_exp_rows, {"contract"})


def _buffer(work, name, shape):
    """A float64 work array of ``shape`` reused across calls through the dict
    ``work`` (fresh multi-MB arrays cost page faults at every EM iteration)."""
    if work is None:
        return np.empty(shape)
    buf = work.get(name)
    if buf is None or buf.shape != shape:
        buf = np.empty(shape)
        work[name] = buf
    return buf


@njit(parallel=True, fastmath={"contract"})
def _shift_rows(log_frameprob, n_chunks, frame, shift):
    """m_t = max_k log_frameprob[t, k] (0 for rows that are all -inf) and
    frame[t, k] = log_frameprob[t, k] - m_t, or -inf where that is <= -708 (so
    that the exp which follows flushes it to 0, as :func:`_shift_exp_rows`)."""
    T, K = log_frameprob.shape
    for chunk in numba.prange(n_chunks):
        lo = chunk * T // n_chunks
        hi = (chunk + 1) * T // n_chunks
        for t in range(lo, hi):
            m = -np.inf
            for k in range(K):
                m = max(m, log_frameprob[t, k])
            if not m > -np.inf:
                m = 0.0
            shift[t] = m
            for k in range(K):
                x = log_frameprob[t, k] - m
                frame[t, k] = x if x > -708.0 else -np.inf
    return frame, shift


_shift_rows_serial = _serial_twin(_shift_rows, {"contract"})


def _numpy_exp_is_vectorised():
    """True when NumPy's float64 exp runs its SIMD loop on this CPU (AVX-512:
    about 0.6 ns per value, against ~20 ns for the scalar libm call that it
    falls back to elsewhere, where the polynomial of :func:`_shift_exp_rows`
    wins)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:  # pragma: no cover - NumPy < 2
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features
        except ImportError:
            return False
    return bool(features.get("AVX512F")) and bool(features.get("AVX512_SKX"))


NUMPY_EXP_VECTORISED = _numpy_exp_is_vectorised()


def _scaled_frame(log_frameprob, work=None, numpy_exp=None):
    """b_t = exp(log_frameprob_t - m_t) (T, K) and m_t (T,).

    With a vectorised NumPy exp (``numpy_exp``, default: this CPU's
    :data:`NUMPY_EXP_VECTORISED`) one numba pass shifts the rows and NumPy
    takes the exp; otherwise the single pass of :func:`_shift_exp_rows`.  Both
    give the same values to 1 ulp (values below e^-708 are 0 in both)."""
    T, K = log_frameprob.shape
    n_chunks = max(1, min(T // 256, 4 * numba.get_num_threads()))
    frame = _buffer(work, "frame", (T, K))
    shift = _buffer(work, "shift", (T,))
    if NUMPY_EXP_VECTORISED if numpy_exp is None else numpy_exp:
        _pick(_shift_rows, _shift_rows_serial, T * K, n_chunks)(
            log_frameprob, n_chunks, frame, shift)
        np.exp(frame, out=frame)
        return frame, shift
    _pick(_shift_exp_rows, _shift_exp_rows_serial, T * K, n_chunks)(
        log_frameprob, n_chunks, frame, shift)
    return frame, shift


_XI_BLOCK = 4  # time steps per register-blocked update of xi_acc


@njit(fastmath=FASTMATH)
def _xi_flush(xi_acc, a_buf, w_buf, n):
    """xi_acc += sum_{q < n} a_buf[q] w_buf[q]^T, four outer products per pass
    over xi_acc (one load/store of xi_acc[i, j] per 4 multiply-adds)."""
    K = xi_acc.shape[0]
    for q in range(n, _XI_BLOCK):
        for k in range(K):
            a_buf[q, k] = 0.0
            w_buf[q, k] = 0.0
    for i in range(K):
        a0 = a_buf[0, i]
        a1 = a_buf[1, i]
        a2 = a_buf[2, i]
        a3 = a_buf[3, i]
        for j in range(K):
            xi_acc[i, j] += (a0 * w_buf[0, j] + a1 * w_buf[1, j]) + (a2 * w_buf[2, j]
                                                                       + a3 * w_buf[3, j])


@njit(fastmath=FASTMATH)
def _backward_scaled(A, frame, alpha, gamma, c, start, end, xi_acc):
    """Scaled backward pass of one sequence (rows start..end-1).

    Writes gamma_t = alpha_t beta_t (renormalised against round-off) into
    ``gamma`` (``alpha`` may be the same array) and adds
    sum_t alpha_t w_{t+1}^T to ``xi_acc`` (K, K), with
    w_{t+1} = b_{t+1} beta_{t+1} / c_{t+1}.
    """
    K = A.shape[0]
    beta = np.empty(K)
    w = np.empty(K)
    a_buf = np.empty((_XI_BLOCK, K))
    w_buf = np.empty((_XI_BLOCK, K))
    q = 0
    for k in range(K):
        gamma[end - 1, k] = alpha[end - 1, k]
        # beta_T = 1, and 0 for states no path reaches (alpha = 0): an unreachable
        # state whose emission dwarfs the reachable ones would give w = b / c = inf
        beta[k] = 1.0 if alpha[end - 1, k] > 0.0 else 0.0
    for t in range(end - 2, start - 1, -1):
        inv_c = 1.0 / c[t + 1]
        for j in range(K):
            w[j] = frame[t + 1, j] * beta[j] * inv_c
            w_buf[q, j] = w[j]
            a_buf[q, j] = alpha[t, j]
        _matvec(A, w, beta)  # beta_t = A w_{t+1}
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


@njit(parallel=True, fastmath=FASTMATH)
def _forward_backward_chunks(pi, A, log_frameprob, frame, shift, starts, ends, n_chunks,
                             gamma, c):
    """Per-sequence forward-backward, prange over chunks of sequences with
    thread-local partial sums.  Returns log_prob (S,), gamma (T, K),
    start_sum (K,) and sum_t alpha_t w_{t+1}^T (K, K)."""
    T, K = frame.shape
    S = starts.shape[0]
    AT = np.ascontiguousarray(A.T)
    log_prob = np.empty(S)
    start_part = np.zeros((n_chunks, K))
    xi_part = np.zeros((n_chunks, K, K))
    for chunk in numba.prange(n_chunks):
        s_lo = chunk * S // n_chunks
        s_hi = (chunk + 1) * S // n_chunks
        for s in range(s_lo, s_hi):
            lo = starts[s]
            hi = ends[s]
            if hi == lo:  # an empty sequence: p = 1, no rows, no statistics
                log_prob[s] = 0.0
                continue
            lp = _forward_scaled(pi, AT, log_frameprob, frame, shift, gamma, c, lo, hi)
            log_prob[s] = lp
            if lp > -np.inf:
                _backward_scaled(A, frame, gamma, gamma, c, lo, hi, xi_part[chunk])
                for k in range(K):
                    start_part[chunk, k] += gamma[lo, k]
            else:
                for t in range(lo, hi):
                    for k in range(K):
                        gamma[t, k] = 0.0
    start_sum = np.zeros(K)
    xi_acc = np.zeros((K, K))
    for chunk in range(n_chunks):
        for i in range(K):
            start_sum[i] += start_part[chunk, i]
            for j in range(K):
                xi_acc[i, j] += xi_part[chunk, i, j]
    return log_prob, gamma, start_sum, xi_acc


_forward_backward_chunks_serial = _serial_twin(_forward_backward_chunks)


@njit(parallel=True, fastmath=FASTMATH)
def _forward_chunks(pi, AT, log_frameprob, frame, shift, starts, ends, n_chunks):
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
            if n == 0:
                log_prob[s] = 0.0
                continue
            alpha = np.empty((n, K))
            c = np.empty(n)
            log_prob[s] = _forward_scaled(pi, AT, log_frameprob[lo:hi], frame[lo:hi], shift[lo:hi],
                                          alpha, c, 0, n)
    return log_prob


_forward_chunks_serial = _serial_twin(_forward_chunks)


@njit(parallel=True, fastmath=FASTMATH)
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
            if hi == lo:
                log_prob[s] = 0.0
                continue
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


_viterbi_chunks_serial = _serial_twin(_viterbi_chunks)


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


def scaled_frame_table(log_table, symbols, work=None):
    """(b_t, m_t) of :func:`_scaled_frame` for emissions given by a table of symbols:
    log_frameprob_t = log_table[x_t] with log_table (F, K) and symbols x (T,) in
    [0, F).  The F rows of the table are shifted and exponentiated once, then
    gathered: b (T, K), m (T,), the same values as _scaled_frame(log_table[x])."""
    table = np.ascontiguousarray(log_table, dtype=np.float64)
    frame_table, shift_table = _scaled_frame(table)
    T, K = symbols.shape[0], table.shape[1]
    frame = np.take(frame_table, symbols, axis=0, out=_buffer(work, "frame", (T, K)))
    shift = np.take(shift_table, symbols, out=_buffer(work, "shift", (T,)))
    return frame, shift


def forward_backward(log_startprob, log_transmat, log_frameprob, lengths=None, work=None,
                     method="auto", frame_shift=None):
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

    ``work``: optional dict of work arrays reused between calls (the EM loop
    passes one); the returned posteriors then live in it and are overwritten
    by the next call with the same ``work``.

    ``method``: ``"sequential"`` (one thread per sequence, this module),
    ``"scan"`` (chunks of each sequence in parallel,
    :func:`lvm_core.kernels.hmm_scan.forward_backward`; equal to the
    sequential result to ~1e-13 relative) or ``"auto"``: the scan when more
    than one numba thread is available for fewer sequences than threads, one
    of them long enough to cut (see :func:`lvm_core.kernels.hmm_scan.choose_method`).

    ``frame_shift``: optional (b, m) = (exp(log_frameprob_t - m_t), m_t) when the
    caller has them already (:func:`scaled_frame_table`); used by the sequential
    method.
    """
    from . import hmm_scan

    if hmm_scan.choose_method(method, lengths, np.shape(log_frameprob)[0]) == "scan":
        return hmm_scan.forward_backward(log_startprob, log_transmat, log_frameprob, lengths,
                                         work)
    return _forward_backward_sequential(log_startprob, log_transmat, log_frameprob, lengths,
                                        work, frame_shift)


def _forward_backward_sequential(log_startprob, log_transmat, log_frameprob, lengths=None,
                                 work=None, frame_shift=None):
    """:func:`forward_backward` with ``method="sequential"``."""
    log_startprob, log_transmat, log_frameprob, starts, ends = _check_inputs(
        log_startprob, log_transmat, log_frameprob, lengths)
    pi = np.exp(log_startprob)
    A = np.exp(log_transmat)
    T, K = log_frameprob.shape
    if frame_shift is None:
        frame, shift = _scaled_frame(log_frameprob, work)  # (T, K), (T,)
    else:
        frame, shift = frame_shift
    gamma = _buffer(work, "gamma", (T, K))
    c = _buffer(work, "c", (T,))
    n_chunks = _n_chunks(starts.shape[0])
    kernel = _pick(_forward_backward_chunks, _forward_backward_chunks_serial, T * K, n_chunks)
    log_prob, posteriors, start_sum, xi_acc = kernel(
        pi, A, log_frameprob, frame, shift, starts, ends, n_chunks, gamma, c)
    return log_prob, posteriors, start_sum, A * xi_acc


def forward_log_prob(log_startprob, log_transmat, log_frameprob, lengths=None):
    """log p(x^(s)) per sequence, (S,), by the scaled forward pass alone:
    log p(x) = sum_t (log c_t + m_t) (Rabiner 1989, eq. 103)."""
    log_startprob, log_transmat, log_frameprob, starts, ends = _check_inputs(
        log_startprob, log_transmat, log_frameprob, lengths)
    frame, shift = _scaled_frame(log_frameprob)  # (T, K), (T,)
    n_chunks = _n_chunks(starts.shape[0])
    kernel = _pick(_forward_chunks, _forward_chunks_serial, log_frameprob.size, n_chunks)
    return kernel(np.exp(log_startprob), np.ascontiguousarray(np.exp(log_transmat).T),
                  log_frameprob, frame, shift, starts, ends, n_chunks)


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
    _forward_scaled(np.exp(log_startprob), np.ascontiguousarray(np.exp(log_transmat).T),
                    log_frameprob, frame, shift, alpha, c, 0, T)
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
    n_chunks = _n_chunks(starts.shape[0])
    kernel = _pick(_viterbi_chunks, _viterbi_chunks_serial, log_frameprob.size, n_chunks)
    return kernel(log_startprob, log_transmat, log_frameprob, starts, ends, n_chunks)


@njit
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


def _row_chunks(T):
    return max(1, min(T // 256, 4 * numba.get_num_threads()))


@njit(parallel=True, fastmath=FASTMATH)
def _affine_rows(Z, W, const, n_chunks, out):
    T, P = Z.shape
    K = W.shape[1]
    for chunk in numba.prange(n_chunks):
        lo = chunk * T // n_chunks
        hi = (chunk + 1) * T // n_chunks
        acc = np.empty(K)
        for t in range(lo, hi):
            for k in range(K):
                acc[k] = const[k]
            for p in range(P):
                z = Z[t, p]
                for k in range(K):
                    acc[k] += z * W[p, k]
            for k in range(K):
                out[t, k] = acc[k]
    return out


_affine_rows_serial = _serial_twin(_affine_rows)


def affine_rows(Z, W, const, work=None):
    """out = Z W + const (T, K) for Z (T, P), W (P, K), const (K,): a product
    with a small inner size P, in the numba thread pool (no BLAS threads, so
    the EM loop never alternates two spinning thread pools)."""
    Z = np.ascontiguousarray(Z, dtype=np.float64)
    out = _buffer(work, "affine", (Z.shape[0], W.shape[1]))
    n_chunks = _row_chunks(Z.shape[0])
    kernel = _pick(_affine_rows, _affine_rows_serial, out.size, n_chunks)
    return kernel(Z, np.ascontiguousarray(W, dtype=np.float64),
                  np.ascontiguousarray(const, dtype=np.float64), n_chunks, out)


@njit(parallel=True, fastmath=FASTMATH)
def _weighted_sums(gamma, Z, n_chunks):
    T, K = gamma.shape
    P = Z.shape[1]
    part = np.zeros((n_chunks, K, P))
    post_part = np.zeros((n_chunks, K))
    for chunk in numba.prange(n_chunks):
        lo = chunk * T // n_chunks
        hi = (chunk + 1) * T // n_chunks
        acc = part[chunk]
        pacc = post_part[chunk]
        for t in range(lo, hi):
            for k in range(K):
                g = gamma[t, k]
                pacc[k] += g
                for p in range(P):
                    acc[k, p] += g * Z[t, p]
    out = np.zeros((K, P))
    post = np.zeros(K)
    for chunk in range(n_chunks):
        for k in range(K):
            post[k] += post_part[chunk, k]
            for p in range(P):
                out[k, p] += part[chunk, k, p]
    return post, out


_weighted_sums_serial = _serial_twin(_weighted_sums)


def weighted_sums(gamma, Z):
    """(sum_t gamma_t (K,), gamma^T Z (K, P)) in one parallel pass over T
    (the Gaussian statistics post, obs and obs2 with Z = [X_c, X_c^2])."""
    gamma = np.ascontiguousarray(gamma, dtype=np.float64)
    n_chunks = _row_chunks(gamma.shape[0])
    kernel = _pick(_weighted_sums, _weighted_sums_serial, gamma.size, n_chunks)
    return kernel(gamma, np.ascontiguousarray(Z, dtype=np.float64), n_chunks)


def forward_backward_affine(log_startprob, log_transmat, Z, W, const, lengths=None, work=None,
                            method="auto"):
    """E-step statistics of an HMM with affine log-emissions in one fused pass:
    :func:`lvm_core.kernels.hmm_affine.forward_backward_affine`."""
    from .hmm_affine import forward_backward_affine as fused

    return fused(log_startprob, log_transmat, Z, W, const, lengths, work=work, method=method)
