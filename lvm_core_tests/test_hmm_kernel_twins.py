"""The serial twins of the parallel HMM kernels (used for small inputs, so
that a first fit compiles only cheap kernels) compute the same values."""
from __future__ import annotations

import numpy as np
import pytest

from lvm_core.kernels import hmm_numba as H


def _problem(seed, K=4, lengths=(7, 1, 30, 12)):
    rng = np.random.default_rng(seed)
    T = int(sum(lengths))
    pi = rng.dirichlet(np.ones(K))
    A = rng.dirichlet(np.ones(K), size=K)
    lfp = 3.0 * rng.normal(size=(T, K))
    starts = np.cumsum(lengths) - np.asarray(lengths)
    ends = np.cumsum(lengths)
    return pi, A, lfp, starts.astype(np.int64), ends.astype(np.int64)


@pytest.mark.parametrize("seed", range(3))
def test_forward_backward_twin_matches_parallel_kernel(seed):
    pi, A, lfp, starts, ends = _problem(seed)
    frame, shift = np.empty_like(lfp), np.empty(lfp.shape[0])
    H._shift_exp_rows(lfp, 3, frame, shift)
    frame2, shift2 = np.empty_like(lfp), np.empty(lfp.shape[0])
    H._shift_exp_rows_serial(lfp, 3, frame2, shift2)
    np.testing.assert_array_equal(frame, frame2)
    np.testing.assert_array_equal(shift, shift2)
    out_p = H._forward_backward_chunks(pi, A, lfp, frame, shift, starts, ends, 3,
                                       np.empty_like(lfp), np.empty(lfp.shape[0]))
    out_s = H._forward_backward_chunks_serial(pi, A, lfp, frame, shift, starts, ends, 3,
                                              np.empty_like(lfp), np.empty(lfp.shape[0]))
    for a, b in zip(out_p, out_s):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-300)
    AT = np.ascontiguousarray(A.T)
    np.testing.assert_allclose(H._forward_chunks(pi, AT, lfp, frame, shift, starts, ends, 3),
                               H._forward_chunks_serial(pi, AT, lfp, frame, shift, starts, ends, 3),
                               rtol=1e-13)
    lp_p, path_p = H._viterbi_chunks(np.log(pi), np.log(A), lfp, starts, ends, 3)
    lp_s, path_s = H._viterbi_chunks_serial(np.log(pi), np.log(A), lfp, starts, ends, 3)
    np.testing.assert_allclose(lp_p, lp_s, rtol=1e-13)
    np.testing.assert_array_equal(path_p, path_s)


def test_row_kernel_twins_match():
    rng = np.random.default_rng(0)
    Z, W, const = rng.normal(size=(50, 6)), rng.normal(size=(6, 3)), rng.normal(size=3)
    np.testing.assert_allclose(H._affine_rows(Z, W, const, 4, np.empty((50, 3))),
                               H._affine_rows_serial(Z, W, const, 4, np.empty((50, 3))),
                               rtol=1e-13)
    gamma = rng.dirichlet(np.ones(3), size=50)
    for a, b in zip(H._weighted_sums(gamma, Z, 4), H._weighted_sums_serial(gamma, Z, 4)):
        np.testing.assert_allclose(a, b, rtol=1e-13)


def test_small_inputs_pick_the_serial_twin():
    """The rule: a single chunk or at most SERIAL_MAX_CELLS cells -> serial twin."""
    par, ser = H._forward_backward_chunks, H._forward_backward_chunks_serial
    assert H._pick(par, ser, 10, 1) is ser
    assert H._pick(par, ser, H.SERIAL_MAX_CELLS, 8) is ser
    assert H._pick(par, ser, H.SERIAL_MAX_CELLS + 1, 8) is par
    assert ser.py_func.__name__ == "_forward_backward_chunks_serial"


@pytest.mark.parametrize("lengths", [[5, 0, 5], [0, 10], [10, 0], [0, 3, 0, 7, 0]])
def test_zero_length_sequences_add_nothing(lengths):
    """A zero-length sequence has log p = 0 and adds nothing: the numba kernels
    used to read the next sequence's first row as its start (start_sum off) and
    Viterbi wrote the previous sequence's last state; now the results equal
    those without the empty sequences."""
    rng = np.random.default_rng(0)
    lpi, lA = np.log([0.3, 0.7]), np.log([[0.9, 0.1], [0.2, 0.8]])
    lfp = rng.normal(size=(10, 2))
    lengths = np.array(lengths)
    kept = lengths[lengths > 0]
    empty = lengths == 0
    for method in ("sequential",):
        got = H.forward_backward(lpi, lA, lfp, lengths, method=method)
        want = H.forward_backward(lpi, lA, lfp, kept, method=method)
        np.testing.assert_array_equal(got[0][empty], 0.0)
        np.testing.assert_allclose(got[0][~empty], want[0], rtol=1e-13)
        for g, w in zip(got[1:], want[1:]):
            np.testing.assert_allclose(g, w, rtol=1e-13, atol=1e-300)
    lp = H.forward_log_prob(lpi, lA, lfp, lengths)
    np.testing.assert_allclose(lp[~empty], H.forward_log_prob(lpi, lA, lfp, kept), rtol=1e-13)
    v_lp, path = H.viterbi(lpi, lA, lfp, lengths)
    w_lp, w_path = H.viterbi(lpi, lA, lfp, kept)
    np.testing.assert_allclose(v_lp[~empty], w_lp, rtol=1e-13)
    np.testing.assert_array_equal(path, w_path)


def test_unreachable_state_that_fits_far_better_gives_no_nan():
    """A state with start and incoming probabilities 0 whose emissions are far
    more likely than the reachable states' (b = 1 after the max shift, c tiny)
    made w = b / c overflow and 0 * inf = NaN in the posteriors; beta is now 0
    wherever alpha is 0, in the numba and the array-API kernels."""
    from lvm_core.kernels import hmm_xp

    rng = np.random.default_rng(0)
    seen = 0
    for _ in range(300):
        K, T = 3, 8
        A = rng.dirichlet(np.ones(K), size=K)
        A[:, 2] = 0.0
        A /= A.sum(axis=1, keepdims=True)  # state 2 unreachable
        pi = np.array([0.5, 0.5, 0.0])
        lfp = rng.normal(size=(T, K)) * rng.choice([1, 100, 400, 800])
        lfp[:, 2] = lfp[:, :2].max(axis=1) + rng.choice([10, 300, 700, 750, 800, 1000])
        with np.errstate(divide="ignore"):
            lpi, lA = np.log(pi), np.log(A)
        got = H.forward_backward(lpi, lA, lfp, method="sequential")
        with np.errstate(over="ignore", invalid="ignore"):
            ref = hmm_xp.forward_backward(lpi, lA, lfp)
        if not np.isfinite(got[0][0]):
            continue
        seen += 1
        for g, r in zip(got, ref):
            assert np.all(np.isfinite(g)) and np.all(np.isfinite(r))
        np.testing.assert_allclose(got[0], ref[0], rtol=1e-9, atol=1e-5)
        np.testing.assert_allclose(got[1].sum(axis=1), 1.0, rtol=1e-12)
        np.testing.assert_array_equal(got[1][:, 2], 0.0)
        # (the posteriors themselves are not compared: at this dynamic range the
        # scaled recursions drop states below ~1e-308 times the best one, the
        # documented limitation, and the two kernels drop slightly different ones)
    assert seen > 250


def test_both_exp_paths_of_the_scaled_frame_agree():
    """The NumPy-exp path (vectorised exp on AVX-512) and the polynomial pass give
    the same b_t = exp(l_t - m_t) to 1e-15 relative, 0 below e^-708, and the same m_t
    (all--inf rows included), whichever this CPU uses."""
    from lvm_core.kernels import hmm_numba

    rng = np.random.default_rng(0)
    L = rng.normal(size=(3000, 5)) * 30.0
    L[5] = -np.inf
    L[7, 2] = -np.inf
    L[9, :] = [0.0, -800.0, -706.5, -709.0, 1.0]  # shifted: -707.5 kept, -710 flushed
    got, shift_a = hmm_numba._scaled_frame(L, numpy_exp=True)
    got = got.copy()
    want, shift_b = hmm_numba._scaled_frame(L, numpy_exp=False)
    np.testing.assert_array_equal(shift_a, shift_b)
    np.testing.assert_allclose(got, want, rtol=1e-15, atol=0.0)
    assert np.all((got == 0) == (want == 0))
    np.testing.assert_array_equal(got[5], 0.0)
    m = L.max(axis=1, where=np.isfinite(L), initial=-np.inf)
    ref = np.exp(L - np.where(np.isfinite(m), m, 0.0)[:, None])
    ref[ref < np.exp(-708.0)] = 0.0
    np.testing.assert_allclose(got, ref, rtol=1e-15, atol=0.0)
