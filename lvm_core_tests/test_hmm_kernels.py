"""HMM kernels: numba == array-API == a naive log-space reference.

The reference is the textbook log-space forward-backward (Rabiner 1989,
eqs. 18-27 with logsumexp instead of scaling) and brute-force enumeration of
all paths for Viterbi; the kernels use max-shifted scaling.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core.kernels import hmm_numba, hmm_xp


def _logsumexp(a, axis):
    m = np.max(a, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def reference_forward_backward(log_pi, log_A, log_frameprob, lengths):
    """Log-space forward-backward, one sequence at a time."""
    K = log_pi.shape[0]
    log_probs, posts = [], []
    start_sum = np.zeros(K)
    xi_sum = np.zeros((K, K))
    lo = 0
    for L in lengths:
        f = log_frameprob[lo:lo + L]
        lo += L
        log_alpha = np.empty((L, K))
        log_beta = np.zeros((L, K))
        log_alpha[0] = log_pi + f[0]
        for t in range(1, L):
            log_alpha[t] = _logsumexp(log_alpha[t - 1][:, None] + log_A, axis=0) + f[t]
        for t in range(L - 2, -1, -1):
            log_beta[t] = _logsumexp(log_A + f[t + 1] + log_beta[t + 1], axis=1)
        lp = _logsumexp(log_alpha[-1], axis=0)
        log_probs.append(lp)
        if not np.isfinite(lp):
            posts.append(np.zeros((L, K)))
            continue
        gamma = np.exp(log_alpha + log_beta - lp)
        posts.append(gamma)
        start_sum += gamma[0]
        for t in range(L - 1):
            xi_sum += np.exp(log_alpha[t][:, None] + log_A + f[t + 1] + log_beta[t + 1] - lp)
    return np.array(log_probs), np.concatenate(posts), start_sum, xi_sum


def brute_force_viterbi(log_pi, log_A, log_frameprob):
    """max over all K^T paths of log p(x, z) (one sequence)."""
    T, K = log_frameprob.shape
    best, best_path = -np.inf, None
    for path in itertools.product(range(K), repeat=T):
        v = log_pi[path[0]] + log_frameprob[0, path[0]]
        for t in range(1, T):
            v += log_A[path[t - 1], path[t]] + log_frameprob[t, path[t]]
        if v > best:
            best, best_path = v, path
    return best, np.array(best_path)


def path_log_prob(log_pi, log_A, log_frameprob, path):
    v = log_pi[path[0]] + log_frameprob[0, path[0]]
    for t in range(1, len(path)):
        v += log_A[path[t - 1], path[t]] + log_frameprob[t, path[t]]
    return v


@st.composite
def hmm_problems(draw, max_K=4, max_len=7, max_seq=3):
    """A random HMM and log-emissions: extreme scales and -inf entries included."""
    K = draw(st.integers(1, max_K), label="K")
    lengths = np.array(draw(st.lists(st.integers(1, max_len), min_size=1, max_size=max_seq)),
                       dtype=np.int64)
    seed = draw(st.integers(0, 2**32 - 1), label="seed")
    zeros = draw(st.booleans(), label="structural zeros")
    # Scaled recursions resolve ratios between states down to ~1e-308 per step;
    # with zeros in A a state that negligible can later become the only way
    # forward, so extreme scales are drawn only with a full-support A.
    scales = [1.0, 30.0] if zeros else [1.0, 30.0, 800.0]
    scale = draw(st.sampled_from(scales), label="emission scale")
    rng = np.random.default_rng(seed)
    T = int(lengths.sum())
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K), size=K)
    log_frameprob = scale * rng.normal(size=(T, K)) - 5.0 * scale
    if zeros and K > 1:
        A[0, 1] = 0.0  # structural zero in the transitions
        A /= A.sum(axis=1, keepdims=True)
        pi[-1] = 0.0
        pi /= pi.sum()
        log_frameprob[rng.uniform(size=(T, K)) < 0.2] = -np.inf  # impossible emissions
        log_frameprob[np.arange(T), rng.integers(0, K, size=T)] = rng.normal(size=T)
    with np.errstate(divide="ignore"):
        return np.log(pi), np.log(A), log_frameprob, lengths


def _assert_fb_equal(got, want, rtol):
    lp_g, post_g, start_g, xi_g = (np.asarray(v) for v in got)
    lp_w, post_w, start_w, xi_w = want
    np.testing.assert_array_equal(np.isfinite(lp_g), np.isfinite(lp_w))
    fin = np.isfinite(lp_w)
    np.testing.assert_allclose(lp_g[fin], lp_w[fin], rtol=rtol, atol=1e-9)
    np.testing.assert_allclose(post_g, post_w, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(start_g, start_w, rtol=rtol, atol=1e-12)
    np.testing.assert_allclose(xi_g, xi_w, rtol=rtol, atol=1e-10)


@settings(max_examples=30)
@given(pb=hmm_problems())
def test_numba_forward_backward_matches_log_space_reference(pb):
    want = reference_forward_backward(*pb)
    got = hmm_numba.forward_backward(*pb)
    _assert_fb_equal(got, want, rtol=1e-9)
    lp = hmm_numba.forward_log_prob(*pb)
    np.testing.assert_array_equal(np.isfinite(lp), np.isfinite(want[0]))
    np.testing.assert_allclose(lp[np.isfinite(lp)], want[0][np.isfinite(lp)], rtol=1e-10)


@settings(max_examples=25)
@given(pb=hmm_problems())
def test_xp_kernel_matches_numba_on_numpy(pb):
    want = hmm_numba.forward_backward(*pb)
    got = hmm_xp.forward_backward(*pb)
    _assert_fb_equal(got, want, rtol=1e-10)
    lp_n = hmm_numba.forward_log_prob(*pb)
    lp_x = hmm_xp.forward_log_prob(*pb)
    np.testing.assert_array_equal(np.isfinite(lp_x), np.isfinite(lp_n))
    fin = np.isfinite(lp_n)
    np.testing.assert_allclose(np.asarray(lp_x)[fin], lp_n[fin], rtol=1e-10)
    v_n, path_n = hmm_numba.viterbi(*pb)
    v_x, path_x = hmm_xp.viterbi(*pb)
    np.testing.assert_allclose(v_x, v_n, rtol=1e-12)
    log_pi, log_A, lfp, lengths = pb
    lo = 0
    for s, L in enumerate(lengths):  # paths may differ only between exact ties
        if np.isfinite(v_n[s]):
            p_x = path_log_prob(log_pi, log_A, lfp[lo:lo + L], np.asarray(path_x)[lo:lo + L])
            np.testing.assert_allclose(p_x, v_n[s], rtol=1e-12)
        lo += L


@settings(max_examples=20)
@given(pb=hmm_problems(max_K=3, max_len=5, max_seq=2))
def test_viterbi_matches_brute_force(pb):
    log_pi, log_A, lfp, lengths = pb
    log_prob, path = hmm_numba.viterbi(*pb)
    assert path.dtype == np.int64 and path.shape == (lfp.shape[0],)
    lo = 0
    for s, L in enumerate(lengths):
        best, _ = brute_force_viterbi(log_pi, log_A, lfp[lo:lo + L])
        if np.isfinite(best):
            np.testing.assert_allclose(log_prob[s], best, rtol=1e-12)
            got = path_log_prob(log_pi, log_A, lfp[lo:lo + L], path[lo:lo + L])
            np.testing.assert_allclose(got, best, rtol=1e-12)
        else:
            assert log_prob[s] == -np.inf
        lo += L


def test_kernels_on_strict_device(backend64):
    """The array-API kernel runs on array-api-strict's device1 (no NumPy
    conversion possible) and agrees with the numba kernel to 1e-10."""
    rng = np.random.default_rng(3)
    K = 3
    lengths = np.array([1, 6, 4])
    log_pi = np.log(rng.dirichlet(np.ones(K)))
    log_A = np.log(rng.dirichlet(np.ones(K), size=K))
    lfp = 40.0 * rng.normal(size=(int(lengths.sum()), K))
    want = hmm_numba.forward_backward(log_pi, log_A, lfp, lengths)
    b = backend64
    got = hmm_xp.forward_backward(b.asarray(log_pi), b.asarray(log_A), b.asarray(lfp), lengths)
    assert type(got[1]) is type(b.asarray(lfp))
    _assert_fb_equal([b.to_numpy(v) for v in got], want, rtol=1e-10)
    lp = hmm_xp.forward_log_prob(b.asarray(log_pi), b.asarray(log_A), b.asarray(lfp), lengths)
    np.testing.assert_allclose(b.to_numpy(lp), want[0], rtol=1e-10)
    v_n, path_n = hmm_numba.viterbi(log_pi, log_A, lfp, lengths)
    v_x, path_x = hmm_xp.viterbi(b.asarray(log_pi), b.asarray(log_A), b.asarray(lfp), lengths)
    np.testing.assert_allclose(b.to_numpy(v_x), v_n, rtol=1e-12)
    np.testing.assert_array_equal(b.to_numpy(path_x), path_n)


def test_length_one_sequences():
    """T = 1: gamma_1 is the posterior pi_k b_1(k) / sum_j pi_j b_1(j), no transitions."""
    log_pi = np.log(np.array([0.2, 0.8]))
    log_A = np.log(np.array([[0.5, 0.5], [0.1, 0.9]]))
    lfp = np.log(np.array([[0.3, 0.6], [0.9, 0.1]]))
    for kernels in (hmm_numba, hmm_xp):
        log_prob, post, start_sum, xi_sum = kernels.forward_backward(log_pi, log_A, lfp, [1, 1])
        p = np.array([[0.2 * 0.3, 0.8 * 0.6], [0.2 * 0.9, 0.8 * 0.1]])
        np.testing.assert_allclose(log_prob, np.log(p.sum(axis=1)), rtol=1e-14)
        np.testing.assert_allclose(post, p / p.sum(axis=1, keepdims=True), rtol=1e-14)
        np.testing.assert_allclose(start_sum, (p / p.sum(axis=1, keepdims=True)).sum(0), rtol=1e-14)
        np.testing.assert_array_equal(xi_sum, np.zeros((2, 2)))


def test_impossible_sequence_gives_minus_inf_and_no_statistics():
    log_pi = np.log(np.array([0.5, 0.5]))
    log_A = np.log(np.array([[0.5, 0.5], [0.5, 0.5]]))
    lfp = np.zeros((5, 2))
    lfp[3] = -np.inf  # row 3 (sequence 1, t = 1) impossible under every state
    for kernels in (hmm_numba, hmm_xp):
        log_prob, post, start_sum, xi_sum = kernels.forward_backward(log_pi, log_A, lfp, [2, 3])
        lp = np.asarray(log_prob)
        assert np.isfinite(lp[0]) and lp[1] == -np.inf
        np.testing.assert_array_equal(np.asarray(post)[2:], 0.0)
        np.testing.assert_allclose(start_sum, [0.5, 0.5], rtol=1e-14)
        np.testing.assert_allclose(xi_sum, np.full((2, 2), 0.25), rtol=1e-14)
    steps = hmm_numba.forward_log_scaling(log_pi, log_A, lfp[2:])
    assert np.isfinite(steps[0]) and np.all(steps[1:] == -np.inf)


def test_long_sequence_with_extreme_emissions_does_not_underflow():
    """T = 200,000 with log-emissions of order -1e4: scaling with the per-frame
    maximum keeps every step in range; log p is finite and gamma sums to 1."""
    rng = np.random.default_rng(0)
    K, T = 4, 200_000
    log_pi = np.log(np.full(K, 0.25))
    log_A = np.log(0.7 * np.eye(K) + 0.3 / K)
    lfp = -1e4 + 50.0 * rng.normal(size=(T, K))
    log_prob, post, start_sum, xi_sum = hmm_numba.forward_backward(log_pi, log_A, lfp, [T])
    assert np.isfinite(log_prob[0]) and log_prob[0] < -1e9
    np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(xi_sum.sum(), T - 1, rtol=1e-9)
    # log p equals the sum of the per-step predictive log-probabilities
    steps = hmm_numba.forward_log_scaling(log_pi, log_A, lfp)
    np.testing.assert_allclose(steps.sum(), log_prob[0], rtol=1e-10)  # 2e5 terms


def test_xi_sum_identities():
    """sum_j xi_sum_ij = sum over non-final steps of gamma_t(i), and
    sum_i xi_sum_ij = sum over non-first steps of gamma_t(j) (Rabiner eq. 38)."""
    rng = np.random.default_rng(1)
    K, lengths = 5, np.array([30, 1, 12])
    log_pi = np.log(rng.dirichlet(np.ones(K)))
    log_A = np.log(rng.dirichlet(np.ones(K), size=K))
    lfp = 3.0 * rng.normal(size=(int(lengths.sum()), K))
    _, post, start_sum, xi_sum = hmm_numba.forward_backward(log_pi, log_A, lfp, lengths)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    not_last = np.ones(len(post), bool)
    not_last[ends - 1] = False
    not_first = np.ones(len(post), bool)
    not_first[starts] = False
    np.testing.assert_allclose(xi_sum.sum(axis=1), post[not_last].sum(0), rtol=1e-11)
    np.testing.assert_allclose(xi_sum.sum(axis=0), post[not_first].sum(0), rtol=1e-11)
    np.testing.assert_allclose(start_sum, post[starts].sum(0), rtol=1e-12)


def test_vectorised_exp_is_accurate():
    """b_t = exp(log_frameprob_t - m_t) from the numba exp: within 2 ulp of NumPy."""
    rng = np.random.default_rng(2)
    lfp = 200.0 * rng.normal(size=(3000, 7))
    lfp[5, 2] = -np.inf
    lfp[9] = -np.inf
    frame, shift = hmm_numba._scaled_frame(lfp)
    m = lfp.max(axis=1)
    m = np.where(np.isfinite(m), m, 0.0)
    np.testing.assert_array_equal(shift, m)
    want = np.exp(lfp - m[:, None])
    big = want > 1e-300
    np.testing.assert_allclose(frame[big], want[big], rtol=5e-16)
    assert np.all(frame[~big] <= 1e-300) and frame[5, 2] == 0.0 and np.all(frame[9] == 0.0)


def test_small_product_helpers_match_numpy():
    rng = np.random.default_rng(4)
    Z = rng.normal(size=(1000, 6))
    W = rng.normal(size=(6, 5))
    const = rng.normal(size=5)
    np.testing.assert_allclose(hmm_numba.affine_rows(Z, W, const), Z @ W + const, rtol=1e-12,
                               atol=1e-12)
    gamma = rng.dirichlet(np.ones(5), size=1000)
    post, sums = hmm_numba.weighted_sums(gamma, Z)
    np.testing.assert_allclose(post, gamma.sum(0), rtol=1e-12)
    np.testing.assert_allclose(sums, gamma.T @ Z, rtol=1e-11, atol=1e-12)
    symbols = rng.integers(0, 4, size=1000)
    counts = hmm_numba.symbol_counts(symbols, gamma, 4)
    np.testing.assert_allclose(counts, gamma.T @ np.eye(4)[symbols], rtol=1e-12)


def test_kernel_input_errors():
    with pytest.raises(ValueError, match="lengths"):
        hmm_numba.forward_backward(np.zeros(2), np.zeros((2, 2)), np.zeros((4, 2)), [1, 2])
    with pytest.raises(ValueError, match="agree"):
        hmm_numba.forward_backward(np.zeros(2), np.zeros((3, 3)), np.zeros((4, 2)), [4])
    with pytest.raises(ValueError, match="lengths"):
        hmm_xp.forward_backward(np.zeros(2), np.zeros((2, 2)), np.zeros((4, 2)), [0, 4])


@settings(max_examples=25, deadline=None)
@given(F=st.integers(1, 6), K=st.integers(1, 5), T=st.integers(1, 40),
       seed=st.integers(0, 2**32 - 1), zeros=st.booleans())
def test_scaled_frame_table_equals_the_frame_of_the_gathered_rows(F, K, T, seed, zeros):
    """Emissions from a table of symbols: shifting and exponentiating the F rows and then
    gathering gives exactly the frames of the gathered (T, K) log-densities, -inf
    entries and all -inf rows included; the forward-backward results are the same."""
    rng = np.random.default_rng(seed)
    log_table = np.log(rng.dirichlet(np.ones(F), size=K).T * 3.0)  # (F, K)
    if zeros:
        log_table[rng.random((F, K)) < 0.3] = -np.inf
        log_table[0] = -np.inf  # a symbol no state emits
    symbols = rng.integers(0, F, T)
    frame, shift = hmm_numba.scaled_frame_table(log_table, symbols)
    frame_r, shift_r = hmm_numba._scaled_frame(log_table[symbols])
    np.testing.assert_array_equal(frame, frame_r)
    np.testing.assert_array_equal(shift, shift_r)
    log_pi, log_A = np.log(rng.dirichlet(np.ones(K))), np.log(rng.dirichlet(np.ones(K), size=K))
    lengths = np.array([T // 2, T - T // 2])
    got = hmm_numba.forward_backward(log_pi, log_A, log_table[symbols], lengths,
                                     method="sequential", frame_shift=(frame, shift))
    want = hmm_numba.forward_backward(log_pi, log_A, log_table[symbols], lengths,
                                      method="sequential")
    for g, w in zip(got, want):  # 1 ulp apart at most: the vectorised paths the kernels
        np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-300)  # take depend on addresses


def test_categorical_hmm_fit_with_table_frames_equals_the_generic_path(monkeypatch):
    """CategoricalHMM's E-step through the gathered table frames gives the same fit as the
    generic path (frames shifted and exponentiated per time step)."""
    from lvm_core.models.hmm import CategoricalHMM

    rng = np.random.default_rng(0)
    X = rng.integers(0, 7, (600, 1))
    lengths = [200, 250, 150]
    calls = []
    table_frames = hmm_numba.scaled_frame_table
    monkeypatch.setattr(hmm_numba, "scaled_frame_table",
                        lambda *a, **k: calls.append(1) or table_frames(*a, **k))
    fast = CategoricalHMM(3, n_iter=5, tol=0.0, random_state=0).fit(X, lengths)
    assert len(calls) >= 5  # the fit took the table path
    monkeypatch.setattr(CategoricalHMM, "_emission_table", lambda self, data, params: None)
    slow = CategoricalHMM(3, n_iter=5, tol=0.0, random_state=0).fit(X, lengths)
    np.testing.assert_allclose(fast.emissionprob_, slow.emissionprob_, rtol=1e-12)
    np.testing.assert_allclose(fast.transmat_, slow.transmat_, rtol=1e-12)
    np.testing.assert_allclose(fast.score(X, lengths), slow.score(X, lengths), rtol=1e-12)


@pytest.mark.parametrize("T", [2, 5, 40])
def test_scaling_constants_far_below_float_range_are_not_lost(T):
    """Every step's scaling constant c_t = e^-400 (the frame's maximum belongs to a state
    the chain cannot reach): prod_t c_t underflows any float, yet log p(x) = -400 T is
    finite; the kernels fold such c_t into the log at once instead of returning -inf."""
    lfp = np.tile(np.array([-400.0, 0.0]), (T, 1))
    with np.errstate(divide="ignore"):
        log_pi, log_A = np.log([1.0, 0.0]), np.log(np.eye(2))
    want, post_want, _, _ = reference_forward_backward(log_pi, log_A, lfp, [T])
    np.testing.assert_allclose(want, [-400.0 * T], rtol=1e-12)
    for method in ("sequential", "scan"):
        got, post, _, _ = hmm_numba.forward_backward(log_pi, log_A, lfp, method=method)
        np.testing.assert_allclose(got, want, rtol=1e-12)
        np.testing.assert_allclose(post, post_want, atol=1e-12)
    np.testing.assert_allclose(hmm_numba.forward_log_prob(log_pi, log_A, lfp), want, rtol=1e-12)
    np.testing.assert_allclose(hmm_xp.forward_backward(log_pi, log_A, lfp)[0], want, rtol=1e-12)
