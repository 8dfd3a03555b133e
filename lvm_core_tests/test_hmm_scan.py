"""Chunked HMM scans: numba (hmm_scan) and array-API (hmm_xp_scan) kernels ==
the sequential kernels == brute force.

The scans cut each sequence into chunks; tests draw tiny chunks (down to one
step) so that every code path (guessed starts, fix-ups that agree at once,
fix-ups that never agree and recompute the chunk, rescue steps, impossible
observations) runs on problems small enough to enumerate.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core.kernels import hmm_numba, hmm_scan, hmm_xp, hmm_xp_scan
from lvm_core_tests.hmm_reference import brute_force
from lvm_core_tests.test_hmm_kernels import (_assert_fb_equal, hmm_problems,
                                             reference_forward_backward)


def _sequential(pb):
    return hmm_numba.forward_backward(*pb, method="sequential")


def _check(got, pb):
    """got == the sequential kernel to 1e-10 relative, and == the log-space
    reference to 1e-9.  Where the sequential kernels give NaN (a state that no
    path can reach whose scaled beta overflowed: see the hmm_scan docstring),
    only the reference is compared."""
    want = _sequential(pb)
    if not any(np.any(np.isnan(v)) for v in want):
        _assert_fb_equal(got, want, rtol=1e-10)
    log_pi, log_A, lfp, lengths = pb
    lengths = np.array([lfp.shape[0]]) if lengths is None else np.asarray(lengths)
    _assert_fb_equal(got, reference_forward_backward(log_pi, log_A, lfp, lengths), rtol=1e-9)


def _brute(pb):
    """Brute force over all paths; an impossible sequence gets zero posteriors
    and statistics (the kernels' convention) instead of 0/0."""
    out = brute_force(*pb)
    parts = out["sequences"]
    return (out["log_prob"], np.nan_to_num(out["posteriors"], nan=0.0),
            sum(np.nan_to_num(p["start"], nan=0.0) for p in parts),
            sum(np.nan_to_num(p["xi_sum"], nan=0.0) for p in parts))


def _log_problem(pi, A, lfp, lengths):
    with np.errstate(divide="ignore"):
        return np.log(pi), np.log(A), np.asarray(lfp, dtype=float), np.asarray(lengths)


def _random_problem(seed, K, lengths, scale=3.0, A=None):
    rng = np.random.default_rng(seed)
    pi = rng.dirichlet(np.ones(K))
    if A is None:
        A = 0.8 * np.eye(K) + 0.2 * rng.dirichlet(np.ones(K), size=K)
    lfp = scale * rng.normal(size=(int(np.sum(lengths)), K))
    return _log_problem(pi, A, lfp, lengths)


# ---------------------------------------------------------------- numba scan
@settings(max_examples=40)
@given(pb=hmm_problems(max_len=12), min_chunk=st.integers(1, 4), window=st.integers(1, 4))
def test_numba_scan_matches_sequential_kernel(pb, min_chunk, window):
    want = _sequential(pb)
    got = hmm_scan.forward_backward(*pb, min_chunk=min_chunk, window=window)
    _check(got, pb)
    lp = hmm_scan.forward_log_prob(*pb, min_chunk=min_chunk)
    np.testing.assert_array_equal(np.isfinite(lp), np.isfinite(want[0]))
    fin = np.isfinite(lp)
    np.testing.assert_allclose(lp[fin], want[0][fin], rtol=1e-10)


@settings(max_examples=15)
@given(pb=hmm_problems(max_K=3, max_len=6, max_seq=2), min_chunk=st.integers(1, 2))
def test_numba_scan_matches_brute_force(pb, min_chunk):
    got = hmm_scan.forward_backward(*pb, min_chunk=min_chunk, window=1)
    _assert_fb_equal(got, _brute(pb), rtol=1e-9)


@pytest.mark.parametrize("kind", ["sticky", "identity", "cycle"])
def test_numba_scan_on_chains_that_forget_slowly(kind):
    """A = I never forgets its start and a cyclic A forgets slowly: the fix-ups
    then run through whole chunks, and the result is still the sequential one."""
    K, lengths = 4, [300, 7, 250, 1]
    if kind == "sticky":
        A = None
    elif kind == "identity":
        A = np.eye(K)
    else:
        A = 0.999 * np.roll(np.eye(K), 1, axis=1) + 0.001 / K
    pb = _random_problem(1, K, lengths, A=A)
    want = _sequential(pb)
    for min_chunk, window in [(20, 256), (20, 1), (3, 2), (1, 1)]:
        got = hmm_scan.forward_backward(*pb, min_chunk=min_chunk, window=window)
        _assert_fb_equal(got, want, rtol=1e-10)
    log_pi, log_A, lfp, _ = pb
    ref = reference_forward_backward(log_pi, log_A, lfp, np.asarray(lengths))
    _assert_fb_equal(hmm_scan.forward_backward(*pb, min_chunk=20), ref, rtol=1e-9)


def test_numba_scan_length_one_and_more_chunks_than_steps():
    """T = 1 (no transitions) and sequences shorter than the chunk count."""
    log_pi = np.log(np.array([0.2, 0.8]))
    log_A = np.log(np.array([[0.5, 0.5], [0.1, 0.9]]))
    lfp = np.log(np.array([[0.3, 0.6], [0.9, 0.1]]))
    log_prob, post, start_sum, xi_sum = hmm_scan.forward_backward(log_pi, log_A, lfp, [1, 1],
                                                                  min_chunk=1)
    p = np.array([[0.2 * 0.3, 0.8 * 0.6], [0.2 * 0.9, 0.8 * 0.1]])
    np.testing.assert_allclose(log_prob, np.log(p.sum(axis=1)), rtol=1e-14)
    np.testing.assert_allclose(post, p / p.sum(axis=1, keepdims=True), rtol=1e-14)
    np.testing.assert_allclose(start_sum, (p / p.sum(axis=1, keepdims=True)).sum(0), rtol=1e-14)
    np.testing.assert_array_equal(xi_sum, np.zeros((2, 2)))
    lo, hi, first, seq_chunks = hmm_scan.chunk_bounds([3, 1, 5], min_chunk=1, max_chunks=64)
    assert np.all(hi > lo) and list(np.diff(seq_chunks)) == [3, 1, 5]
    assert list(first) == [True, False, False, True, True, False, False, False, False]
    pb = _random_problem(5, 3, [3, 1, 5])
    _assert_fb_equal(hmm_scan.forward_backward(*pb, min_chunk=1), _sequential(pb), rtol=1e-10)


def test_numba_scan_empty_sequences_as_sequential_kernel():
    """Zero-length sequences (accepted by the sequential kernel): log p = 0, no
    rows, nothing added to start_sum (the sequential kernel adds the row after
    an empty sequence to start_sum; compared with the reference for that)."""
    pb = _random_problem(6, 3, [4, 5])
    lengths = np.array([0, 4, 0, 5, 0])
    want = hmm_numba.forward_backward(*pb[:3], lengths, method="sequential")
    got = hmm_scan.forward_backward(*pb[:3], lengths, min_chunk=1)
    for g, w in zip(got[:2], want[:2]):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(got[3], want[3], rtol=1e-10, atol=1e-12)
    np.testing.assert_array_equal(got[0][[0, 2, 4]], 0.0)
    ref = reference_forward_backward(*pb[:3], np.array([4, 5]))
    np.testing.assert_allclose(got[2], ref[2], rtol=1e-10)


def test_numba_scan_impossible_sequence_as_sequential_kernel():
    """An impossible step in a middle chunk: log p = -inf, zero posteriors and
    no statistics from that sequence, the other sequences untouched."""
    log_pi, log_A, lfp, lengths = _random_problem(2, 3, [40, 60, 30])
    lfp[40 + 35] = -np.inf
    want = _sequential((log_pi, log_A, lfp, lengths))
    got = hmm_scan.forward_backward(log_pi, log_A, lfp, lengths, min_chunk=8)
    assert np.isneginf(got[0][1]) and np.all(np.isfinite(got[0][[0, 2]]))
    np.testing.assert_array_equal(got[1][40:100], 0.0)
    _assert_fb_equal(got, want, rtol=1e-10)


def test_numba_scan_long_sequence_does_not_underflow():
    """T = 50,000 with log-emissions of order -1e4, 16 chunks: finite log p
    equal to the sum of the one-step predictive log-probabilities."""
    rng = np.random.default_rng(0)
    K, T = 4, 50_000
    log_pi = np.log(np.full(K, 0.25))
    log_A = np.log(0.7 * np.eye(K) + 0.3 / K)
    lfp = -1e4 + 50.0 * rng.normal(size=(T, K))
    log_prob, post, start_sum, xi_sum = hmm_scan.forward_backward(log_pi, log_A, lfp,
                                                                  min_chunk=3000)
    assert len(hmm_scan.chunk_bounds([T], min_chunk=3000)[0]) == 16
    assert np.isfinite(log_prob[0]) and log_prob[0] < -1e8
    np.testing.assert_allclose(post.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(xi_sum.sum(), T - 1, rtol=1e-9)
    steps = hmm_numba.forward_log_scaling(log_pi, log_A, lfp)
    np.testing.assert_allclose(steps.sum(), log_prob[0], rtol=1e-10)
    _assert_fb_equal((log_prob, post, start_sum, xi_sum),
                     _sequential((log_pi, log_A, lfp, None)), rtol=1e-10)


def test_numba_scan_does_not_modify_inputs_and_reuses_work():
    pb = _random_problem(3, 3, [500, 200])
    copies = [np.copy(a) for a in pb]
    work = {}
    first = [np.copy(v) for v in hmm_scan.forward_backward(*pb, work=work, min_chunk=50)]
    again = hmm_scan.forward_backward(*pb, work=work, min_chunk=50)
    for a, b in zip(pb, copies):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert again[1] is work["gamma"]


def test_method_choice():
    pb = _random_problem(4, 3, [5000])
    want = _sequential(pb)
    for method in ("auto", "scan", "sequential"):
        _assert_fb_equal(hmm_numba.forward_backward(*pb, method=method), want, rtol=1e-10)
    assert hmm_scan.choose_method("scan", [10], 10) == "scan"
    assert hmm_scan.choose_method("sequential", [10 ** 6], 10 ** 6) == "sequential"
    assert hmm_scan.choose_method("auto", [10], 10) == "sequential"  # too short to cut
    many = [10 ** 6] * 64  # as many sequences as threads: one per thread already
    assert hmm_scan.choose_method("auto", many, sum(many)) == "sequential"
    with pytest.raises(ValueError, match="method must be"):
        hmm_numba.forward_backward(*pb, method="parallel")
    with pytest.raises(ValueError, match="rtol"):
        hmm_scan.forward_backward(*pb, rtol=-1.0)
    with pytest.raises(ValueError, match="window"):
        hmm_scan.forward_backward(*pb, window=0)
    with pytest.raises(ValueError, match="lengths"):
        hmm_scan.forward_backward(*pb[:3], [4000])


def test_auto_uses_the_scan_for_one_long_sequence_with_two_threads():
    numba = pytest.importorskip("numba")
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has a single thread here")
    old = numba.get_num_threads()
    numba.set_num_threads(2)
    try:
        assert hmm_scan.choose_method("auto", [5000], 5000) == "scan"
        assert hmm_scan.choose_method("auto", [5000, 5000], 10000) == "sequential"
    finally:
        numba.set_num_threads(old)


# ------------------------------------------------------------ array-API scan
@settings(max_examples=30)
@given(pb=hmm_problems(max_len=12), chunk_len=st.integers(1, 5))
def test_xp_scan_matches_sequential_kernel(pb, chunk_len):
    _check(hmm_xp_scan.forward_backward(*pb, chunk_len=chunk_len), pb)


@settings(max_examples=15)
@given(pb=hmm_problems(max_K=3, max_len=6, max_seq=2), chunk_len=st.integers(1, 3))
def test_xp_scan_matches_brute_force(pb, chunk_len):
    got = hmm_xp_scan.forward_backward(*pb, chunk_len=chunk_len)
    _assert_fb_equal(got, _brute(pb), rtol=1e-9)


@pytest.mark.parametrize("kind", ["sticky", "identity", "cycle"])
def test_xp_scan_exact_on_any_chain(kind):
    K, lengths = 4, [300, 7, 250, 1]
    A = {"sticky": None, "identity": np.eye(K),
         "cycle": 0.999 * np.roll(np.eye(K), 1, axis=1) + 0.001 / K}[kind]
    pb = _random_problem(1, K, lengths, A=A)
    want = _sequential(pb)
    for chunk_len in (None, 1, 3, 1000):
        _assert_fb_equal(hmm_xp_scan.forward_backward(*pb, chunk_len=chunk_len), want,
                         rtol=1e-10)


def test_xp_scan_long_sequence_with_extreme_emissions():
    """T = 30,000, log-emissions of order -1e4: the log row scales of long
    products stay relative (no precision lost to their size); gamma equal to
    the sequential kernel's to 1e-12 relative in every entry above 1e-300."""
    rng = np.random.default_rng(0)
    K, T = 4, 30_000
    log_pi = np.log(np.full(K, 0.25))
    log_A = np.log(0.7 * np.eye(K) + 0.3 / K)
    lfp = -1e4 + 50.0 * rng.normal(size=(T, K))
    want = _sequential((log_pi, log_A, lfp, None))
    for chunk_len in (None, 16, 1000):
        got = hmm_xp_scan.forward_backward(log_pi, log_A, lfp, chunk_len=chunk_len)
        big = want[1] > 1e-300
        np.testing.assert_allclose(got[1][big], want[1][big], rtol=1e-12)
        _assert_fb_equal(got, want, rtol=1e-12)


def test_xp_scan_on_strict_device(backend64):
    """The array-API scan runs on array-api-strict's device1 (no conversion to
    NumPy possible) and agrees with the numba kernels and the batched xp kernel."""
    b = backend64
    log_pi, log_A, lfp, lengths = _random_problem(3, 3, [1, 26, 9, 2], scale=40.0)
    want = _sequential((log_pi, log_A, lfp, lengths))
    args = (b.asarray(log_pi), b.asarray(log_A), b.asarray(lfp))
    for chunk_len in (None, 1, 4, 100):
        got = hmm_xp_scan.forward_backward(*args, lengths, chunk_len=chunk_len)
        assert type(got[1]) is type(args[2])
        _assert_fb_equal([b.to_numpy(v) for v in got], want, rtol=1e-10)
    batched = hmm_xp.forward_backward(*args, lengths)
    _assert_fb_equal([b.to_numpy(v) for v in batched], want, rtol=1e-10)
    # impossible observations: the exact path, as the batched kernel
    lfp_bad = lfp.copy()
    lfp_bad[10] = -np.inf
    got = hmm_xp_scan.forward_backward(args[0], args[1], b.asarray(lfp_bad), lengths, chunk_len=4)
    want = _sequential((log_pi, log_A, lfp_bad, lengths))
    _assert_fb_equal([b.to_numpy(v) for v in got], want, rtol=1e-10)


def test_numba_and_xp_scans_agree_with_each_other():
    pb = _random_problem(7, 5, [3000, 1, 1700], scale=5.0)
    a = hmm_scan.forward_backward(*pb, min_chunk=100)
    b = hmm_xp_scan.forward_backward(*pb, chunk_len=64)
    _assert_fb_equal(b, [np.asarray(v) for v in a], rtol=1e-10)


def test_unreachable_state_with_overflowing_beta():
    """State 1 is unreachable (pi_1 = 0, A_01 = 0) but explains the data
    e^130 times better than state 0 at every step: its scaled beta overflows.
    Brute force: the only path is 0 0 0 ..., gamma = (1, 0), xi_00 = T - 1."""
    lfp = np.stack([np.full(7, -130.0), np.zeros(7)], axis=1)
    pb = _log_problem(np.array([1.0, 0.0]), np.array([[1.0, 0.0], [0.05, 0.95]]), lfp, [1, 6])
    want_post = np.tile([1.0, 0.0], (7, 1))
    for got in (hmm_scan.forward_backward(*pb, min_chunk=1, window=1),
                hmm_scan.forward_backward(*pb, min_chunk=2),
                hmm_xp_scan.forward_backward(*pb, chunk_len=1),
                hmm_xp_scan.forward_backward(*pb, chunk_len=4)):
        np.testing.assert_allclose(got[0], [-130.0, -780.0], rtol=1e-14)
        np.testing.assert_array_equal(got[1], want_post)
        np.testing.assert_array_equal(got[3], [[5.0, 0.0], [0.0, 0.0]])


def test_xp_scan_layout_and_errors():
    lay = hmm_xp_scan.chunk_layout([5, 1, 3], 9, chunk_len=2)
    assert lay["valid"].shape == (3 + 1 + 2, 2)
    assert list(lay["first"]) == [True, False, False, True, True, False]
    assert list(lay["last"]) == [False, False, True, True, False, True]
    assert sorted(lay["scatter"]) == list(lay["scatter"]) or len(set(lay["scatter"])) == 9
    with pytest.raises(ValueError, match="lengths"):
        hmm_xp_scan.forward_backward(np.zeros(2), np.zeros((2, 2)), np.zeros((4, 2)), [1, 2])
    with pytest.raises(ValueError, match="chunk_len"):
        hmm_xp_scan.forward_backward(np.zeros(2), np.zeros((2, 2)), np.zeros((4, 2)), [4],
                                     chunk_len=0)
