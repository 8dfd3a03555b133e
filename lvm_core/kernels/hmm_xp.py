"""HMM inference in array-API code: any backend (NumPy, CuPy, array-api-strict).

Reference: L. R. Rabiner, "A tutorial on hidden Markov models and selected
applications in speech recognition", Proc. IEEE 77(2), 1989, sec. III.

The same computation as :mod:`lvm_core.kernels.hmm_numba` (see its docstring
for the recursions), written as a Python loop over time that is vectorised
over states and over a batch of sequences.  Sequences are padded to the
longest one, (S, T_max, K); padded steps are masked out:

    forward:   alpha_t = alpha_{t-1}                     where t >= T_s
               c_t = 1, and m_t contributes nothing
    backward:  beta_t = 1                                 where t + 1 >= T_s
               no contribution to xi_sum

Max-shifted emissions b_t = exp(log_frameprob_t - m_t) keep every step in
range (Rabiner eq. 91-92 scaling plus a per-frame shift), with the same
rescue step as the numba kernel when the shift belongs to an unreachable
state.  The memory is
O(S T_max K) for alpha (never a T x K x K array; one (S, K, K) temporary per
step in Viterbi).
"""
from __future__ import annotations


import numpy as np

from ..backend import asarray, device_of, get_namespace
from ..families._common import safe_log

__all__ = ["forward_backward", "forward_backward_affine", "forward_log_prob", "viterbi"]


def _padding(lengths, T):
    """Host index arrays for padding: ``gather`` (S*T_max,) rows of the (T, K)
    input for each padded slot (the last row of the sequence is repeated),
    ``scatter`` (T,) padded slot of each input row, and ``valid`` (S, T_max)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1 or lengths.size == 0 or np.any(lengths <= 0) or lengths.sum() != T:
        raise ValueError(
            f"lengths must be positive and sum to T = {T} (rows of log_frameprob); "
            f"got {lengths.tolist()}."
        )
    S = lengths.shape[0]
    T_max = int(lengths.max())
    starts = np.cumsum(lengths) - lengths
    t_idx = np.arange(T_max)[None, :]  # (1, T_max)
    valid = t_idx < lengths[:, None]  # (S, T_max)
    gather = starts[:, None] + np.minimum(t_idx, lengths[:, None] - 1)  # (S, T_max)
    scatter = (np.arange(S)[:, None] * T_max + t_idx)[valid]  # (T,)
    return S, T_max, gather.reshape(-1), scatter, valid


def _pad(log_frameprob, lengths):
    xp = get_namespace(log_frameprob)
    T, K = log_frameprob.shape
    if lengths is None:
        lengths = [T]
    S, T_max, gather, scatter, valid = _padding(lengths, T)
    gather = asarray(gather, like=log_frameprob, dtype="int64")
    padded = xp.reshape(xp.take(log_frameprob, gather, axis=0), (S, T_max, K))
    valid_x = asarray(valid, like=log_frameprob, dtype="bool")
    return xp, padded, valid_x, scatter, (S, T_max, K)


def _scaled_frames(xp, padded):
    """b (S, T_max, K) = exp(log_frameprob - m) and m (S, T_max)."""
    m = xp.max(padded, axis=2)
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    b = xp.exp(padded - m[:, :, None])
    return b, m


def _forward(xp, pi, A, b, m, padded, valid):
    """Scaled forward pass.  Returns the lists of alpha_t (S, K), log c_t (S,),
    b_t (S, K) and m_t (S,) (b_t and m_t re-shifted where the rescue step of
    :func:`lvm_core.kernels.hmm_numba._forward_scaled` applies: every
    reachable state's b_t underflowed)."""
    S, T_max, K = b.shape
    alphas, log_c, b_rows, m_rows = [], [], [], []
    ones = xp.ones((S,), dtype=b.dtype, device=device_of(b))
    alpha = None
    for t in range(T_max):
        if t == 0:
            pred = xp.broadcast_to(pi[None, :], (S, K))
        else:
            pred = xp.matmul(alpha, A)  # (S, K)
        b_t = b[:, t, :]
        m_t = m[:, t]
        a = pred * b_t
        c = xp.sum(a, axis=1)  # (S,)
        rescue = ~(c > 0)
        if bool(xp.any(rescue)):
            reach = pred > 0
            log_cur = safe_log(pred) + padded[:, t, :]  # -inf where unreachable
            m_new = xp.max(log_cur, axis=1)  # (S,)
            ok = rescue & xp.isfinite(m_new)
            m_safe = xp.where(ok, m_new, xp.zeros_like(m_new))
            diff = xp.where(reach, padded[:, t, :] - m_safe[:, None], xp.zeros_like(b_t))
            b_new = xp.where(reach, xp.exp(diff), xp.zeros_like(b_t))
            b_t = xp.where(ok[:, None], b_new, b_t)
            m_t = xp.where(ok, m_new, m_t)
            a = pred * b_t
            c = xp.sum(a, axis=1)
        v = valid[:, t]
        c = xp.where(v, c, ones)
        safe_c = xp.where(c > 0, c, ones)
        a_new = a / safe_c[:, None]
        alpha = a_new if t == 0 else xp.where(v[:, None], a_new, alpha)
        alphas.append(alpha)
        log_c.append(safe_log(c))
        b_rows.append(b_t)
        m_rows.append(m_t)
    return alphas, log_c, b_rows, m_rows


def forward_backward(log_startprob, log_transmat, log_frameprob, lengths=None):
    """Posteriors and expected counts (same contract as
    :func:`lvm_core.kernels.hmm_numba.forward_backward`).

    Returns ``(log_prob (S,), posteriors (T, K), start_sum (K,), xi_sum (K, K))``
    on the device of the inputs; an impossible sequence has log_prob -inf and
    zero posteriors.
    """
    xp, padded, valid, scatter, (S, T_max, K) = _pad(log_frameprob, lengths)
    get_namespace(log_startprob, log_transmat, log_frameprob)
    pi = xp.exp(log_startprob)
    A = xp.exp(log_transmat)
    b, m = _scaled_frames(xp, padded)
    alphas, log_c, b_rows, m_rows = _forward(xp, pi, A, b, m, padded, valid)
    log_c_all = xp.stack(log_c, axis=1)  # (S, T_max)
    m = xp.stack(m_rows, axis=1)  # (S, T_max)
    log_prob = xp.sum(xp.where(valid, log_c_all + m, xp.zeros_like(m)), axis=1)  # (S,)
    possible = xp.isfinite(log_prob)  # (S,)
    c_all = xp.exp(log_c_all)
    beta = xp.ones((S, K), dtype=b.dtype, device=device_of(b))  # beta_T = 1
    gammas = [None] * T_max
    xi_acc = xp.zeros((K, K), dtype=b.dtype, device=device_of(b))
    for t in range(T_max - 1, -1, -1):
        if t < T_max - 1:
            v = valid[:, t + 1]  # transition t -> t+1 exists
            c_next = xp.where(c_all[:, t + 1] > 0, c_all[:, t + 1], xp.ones_like(c_all[:, t + 1]))
            w = b_rows[t + 1] * beta / c_next[:, None]  # (S, K)
            w = xp.where((v & possible)[:, None], w, xp.zeros_like(w))
            xi_acc = xi_acc + xp.matmul(alphas[t].T, w)
            beta = xp.where(v[:, None], xp.matmul(w, A.T), xp.ones_like(beta))
        else:
            beta = xp.ones_like(beta)
        # beta_t(i) = 0 where no path reaches state i (alpha_t(i) = 0): an unreachable
        # state whose emission dwarfs the reachable ones would otherwise give inf * 0
        beta = xp.where(alphas[t] > 0, beta, xp.zeros_like(beta))
        g = alphas[t] * beta
        total = xp.sum(g, axis=1)
        total = xp.where(total > 0, total, xp.ones_like(total))
        gammas[t] = g / total[:, None]
    gamma_pad = xp.stack(gammas, axis=1)  # (S, T_max, K)
    gamma_pad = xp.where(possible[:, None, None], gamma_pad, xp.zeros_like(gamma_pad))
    posteriors = xp.take(xp.reshape(gamma_pad, (S * T_max, K)),
                         asarray(scatter, like=log_frameprob, dtype="int64"), axis=0)  # (T, K)
    start_sum = xp.sum(gamma_pad[:, 0, :], axis=0)
    xi_sum = A * xi_acc
    return log_prob, posteriors, start_sum, xi_sum


def forward_backward_affine(log_startprob, log_transmat, Z, W, const, lengths=None):
    """E-step statistics of an HMM with affine log-emissions
    log p(x_t | z_t = k) = Z_t W_{:, k} + const_k (same contract as
    :func:`lvm_core.kernels.hmm_affine.forward_backward_affine`, of which this
    is the reference): log p(X) = Z W + const into :func:`forward_backward`,
    then resp_sum = sum_t gamma_t and gZ = gamma^T Z.

    Returns ``(log_prob (S,), start_sum (K,), xi_sum (K, K), resp_sum (K,), gZ (K, P))``.
    """
    xp = get_namespace(Z, W, const)
    log_frameprob = xp.matmul(Z, W) + const[None, :]
    log_prob, post, start_sum, xi_sum = forward_backward(log_startprob, log_transmat,
                                                         log_frameprob, lengths)
    return log_prob, start_sum, xi_sum, xp.sum(post, axis=0), xp.matmul(post.T, Z)


def forward_log_prob(log_startprob, log_transmat, log_frameprob, lengths=None):
    """log p(x^(s)) per sequence (S,) by the scaled forward pass:
    log p(x) = sum_t (log c_t + m_t)."""
    xp, padded, valid, _, _ = _pad(log_frameprob, lengths)
    get_namespace(log_startprob, log_transmat, log_frameprob)
    b, m = _scaled_frames(xp, padded)
    _, log_c, _, m_rows = _forward(xp, xp.exp(log_startprob), xp.exp(log_transmat), b, m,
                                   padded, valid)
    log_c_all = xp.stack(log_c, axis=1)  # (S, T_max)
    m = xp.stack(m_rows, axis=1)  # (S, T_max)
    return xp.sum(xp.where(valid, log_c_all + m, xp.zeros_like(m)), axis=1)


def viterbi(log_startprob, log_transmat, log_frameprob, lengths=None):
    """Most probable paths in log space (Rabiner 1989, eqs. 30-35):

        delta_1 = log pi + log b_1,
        delta_t(j) = max_i (delta_{t-1}(i) + log A_ij) + log b_t(j).

    Returns ``(log_prob (S,), path (T,) int64)``.  Ties are broken towards
    the smaller state index (as the numba kernel does).
    """
    xp, padded, valid, scatter, (S, T_max, K) = _pad(log_frameprob, lengths)
    get_namespace(log_startprob, log_transmat, log_frameprob)
    delta = log_startprob[None, :] + padded[:, 0, :]  # (S, K)
    backs = []
    for t in range(1, T_max):
        scores = delta[:, :, None] + log_transmat[None, :, :]  # (S, K, K)
        arg = xp.argmax(scores, axis=1)  # (S, K)
        best = xp.max(scores, axis=1)  # (S, K)
        v = valid[:, t][:, None]
        delta = xp.where(v, best + padded[:, t, :], delta)
        backs.append(arg)
    log_prob = xp.max(delta, axis=1)  # (S,)
    state = xp.argmax(delta, axis=1)  # (S,)
    states_k = xp.arange(K, device=device_of(delta))
    path_rev = [state]
    for t in range(T_max - 1, 0, -1):
        v = valid[:, t]
        one_hot = states_k[None, :] == state[:, None]  # (S, K)
        prev = xp.sum(xp.where(one_hot, backs[t - 1], xp.zeros_like(backs[t - 1])), axis=1)
        state = xp.where(v, prev, state)
        path_rev.append(state)
    path_pad = xp.stack(path_rev[::-1], axis=1)  # (S, T_max)
    path = xp.take(xp.reshape(path_pad, (S * T_max,)),
                   asarray(scatter, like=log_frameprob, dtype="int64"), axis=0)
    return log_prob, xp.astype(path, xp.int64)
