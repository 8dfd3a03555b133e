"""The fused E-step kernel for affine log-emissions (kernels/hmm_affine.py) ==
its array-API reference (hmm_xp.forward_backward_affine) == the unfused numba
path (affine_rows + forward_backward + weighted_sums), float64; and the HMM
E-step that uses it == the generic E-step.

The problems reuse the structural zeros of ``hmm_problems`` (zeros in pi and
A: rescue steps and impossible sequences) with emissions
log p(x_t | k) = Z_t W_k + const_k; with a full-support A also at extreme
scales and with a 0/1 feature of a huge negative weight for some states
(emissions that underflow next to the row maximum).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core.kernels import hmm_affine, hmm_numba, hmm_xp
from lvm_core.models.hmm import GaussianHMM
from lvm_core.models.hmm import _estep
from lvm_core_tests.test_hmm_kernels import hmm_problems


@st.composite
def affine_problems(draw, max_P=3):
    log_pi, log_A, _, lengths = draw(hmm_problems(max_K=5, max_len=9, max_seq=4))
    K = log_pi.shape[0]
    T = int(lengths.sum())
    P = draw(st.integers(1, max_P), label="P")
    seed = draw(st.integers(0, 2**32 - 1), label="feature seed")
    # extreme scales only with a full-support A (as in hmm_problems: the scaled
    # recursions drop states below ~1e-308 of the best one at a step)
    zeros = bool(np.any(np.isinf(log_A)) or np.any(np.isinf(log_pi)))
    scale = draw(st.sampled_from([1.0, 30.0] if zeros else [1.0, 30.0, 800.0]),
                 label="weight scale")
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(T, P))
    W = scale * rng.normal(size=(P, K))
    const = scale * rng.normal(size=K)
    if not zeros and draw(st.booleans(), label="penalty feature"):
        Z = np.concatenate([Z, (rng.uniform(size=(T, 1)) < 0.3).astype(float)], axis=1)
        W = np.concatenate([W, np.where(rng.uniform(size=(1, K)) < 0.5, -5000.0, 0.0)])
    return log_pi, log_A, Z, W, const, lengths


def _unfused(log_pi, log_A, Z, W, const, lengths):
    lfp = hmm_numba.affine_rows(Z, W, const)
    log_prob, post, start_sum, xi_sum = hmm_numba.forward_backward(log_pi, log_A, lfp, lengths,
                                                                   method="sequential")
    resp_sum, gZ = hmm_numba.weighted_sums(post, Z)
    return log_prob, start_sum, xi_sum, resp_sum, gZ


def _assert_stats_equal(got, want, rtol):
    lp_g, *rest_g = (np.asarray(v) for v in got)
    lp_w, *rest_w = (np.asarray(v) for v in want)
    np.testing.assert_array_equal(np.isfinite(lp_g), np.isfinite(lp_w))
    fin = np.isfinite(lp_w)
    np.testing.assert_allclose(lp_g[fin], lp_w[fin], rtol=rtol, atol=1e-9)
    for g, w in zip(rest_g, rest_w):
        np.testing.assert_allclose(g, w, rtol=rtol, atol=1e-10 * max(1.0, np.max(np.abs(w))))


@settings(max_examples=40)
@given(pb=affine_problems())
def test_fused_kernel_matches_reference_and_unfused_path(pb):
    got = hmm_affine.forward_backward_affine(*pb, method="sequential")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        want = hmm_xp.forward_backward_affine(*pb)
    if not any(np.any(np.isnan(np.asarray(v))) for v in want):
        _assert_stats_equal(got, want, rtol=1e-9)
    _assert_stats_equal(got, _unfused(*pb), rtol=1e-10)


@settings(max_examples=15)
@given(pb=affine_problems())
def test_scan_method_runs_the_unfused_kernels(pb):
    got = hmm_affine.forward_backward_affine(*pb, method="scan")
    want = hmm_affine.forward_backward_affine(*pb, method="sequential")
    _assert_stats_equal(got, want, rtol=1e-9)


def _long_problem(seed, K=5, P=4, lengths=(300, 1, 257, 64, 65, 500, 7)):
    rng = np.random.default_rng(seed)
    lengths = np.asarray(lengths)
    Z = rng.normal(size=(int(lengths.sum()), P))
    W, const = 3.0 * rng.normal(size=(P, K)), rng.normal(size=K)
    log_pi = np.log(rng.dirichlet(np.ones(K)))
    log_A = np.log(rng.dirichlet(np.ones(K), size=K))
    return log_pi, log_A, Z, W, const, lengths


@pytest.mark.parametrize("seed", range(2))
def test_blocks_pairs_and_odd_sequences(seed):
    """Sequences longer than a block, of unequal lengths (pairs run interleaved,
    an odd one alone), in any order: == the unfused path."""
    pb = _long_problem(seed)
    _assert_stats_equal(hmm_affine.forward_backward_affine(*pb, method="sequential"),
                        _unfused(*pb), rtol=1e-10)
    order = np.random.default_rng(seed).permutation(len(pb[-1]))
    starts = np.cumsum(pb[-1]) - pb[-1]
    Z = np.concatenate([pb[2][starts[i]:starts[i] + pb[-1][i]] for i in order])
    got = hmm_affine.forward_backward_affine(pb[0], pb[1], Z, pb[3], pb[4], pb[-1][order],
                                             method="sequential")
    want = hmm_affine.forward_backward_affine(*pb, method="sequential")
    np.testing.assert_allclose(got[0], want[0][order], rtol=1e-12)
    for g, w in zip(got[1:], want[1:]):
        np.testing.assert_allclose(g, w, rtol=1e-11, atol=1e-12)


def test_serial_twin_matches_parallel_kernel():
    log_pi, log_A, Z, W, const, lengths = _long_problem(0)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    T, K = Z.shape[0], W.shape[1]
    pi, A = np.exp(log_pi), np.exp(log_A)
    outs = [kernel(pi, A, Z, W, const, starts, ends, 3, np.empty((T, K)), np.empty(T),
                   np.empty((T, K)), np.empty(T))
            for kernel in (hmm_affine._fb_affine_chunks, hmm_affine._fb_affine_chunks_serial)]
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-300)


def test_work_arrays_are_reused():
    pb = _long_problem(1)
    work = {}
    first = hmm_affine.forward_backward_affine(*pb, work=work)
    frame = work["frame"]
    second = hmm_affine.forward_backward_affine(*pb, work=work)
    assert work["frame"] is frame
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_shapes_must_agree():
    log_pi, log_A, Z, W, const, lengths = _long_problem(0)
    with pytest.raises(ValueError, match="W"):
        hmm_affine.forward_backward_affine(log_pi, log_A, Z, W[:-1], const, lengths)
    with pytest.raises(ValueError, match="agree on K"):
        hmm_affine.forward_backward_affine(log_pi[:-1], log_A, Z, W, const, lengths)
    with pytest.raises(ValueError, match="lengths must sum"):
        hmm_affine.forward_backward_affine(log_pi, log_A, Z, W, const, lengths[:-1])


@pytest.mark.parametrize("covariance_type", ["diag", "spherical"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fused_e_step_equals_generic_e_step(covariance_type, dtype, monkeypatch):
    """The HMM E-step through the fused kernel == through forward-backward on
    the (T, K) log-densities plus the family's statistics (what the fused
    kernel means), and the fits agree."""
    rng = np.random.default_rng(4)
    X = np.concatenate([rng.normal(size=(150, 3)), rng.normal(3.0, 0.5, size=(130, 3))])
    X = X.astype(dtype)
    lengths = np.array([100, 50, 130])

    def fit():
        return GaussianHMM(3, covariance_type=covariance_type, n_iter=5, tol=0.0,
                           random_state=0).fit(X, lengths)

    calls = []
    fused = _estep.EStep._affine_e_step

    def counting(self, data, params, clamp):
        out = fused(self, data, params, clamp)
        calls.append(out is not None)
        return out

    monkeypatch.setattr(_estep.EStep, "_affine_e_step", counting)
    a = fit()
    assert calls and all(calls)
    monkeypatch.setattr(_estep.EStep, "_affine_e_step", lambda self, d, p, c: None)
    b = fit()
    np.testing.assert_allclose(a.monitor_.history, b.monitor_.history, rtol=1e-12)
    np.testing.assert_allclose(a.means_, b.means_, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(a.covars_, b.covars_, rtol=1e-10, atol=1e-12)


def test_rescue_step_when_the_row_maximum_is_unreachable():
    """State 1 can never be entered but dwarfs state 0's emission by e^1000:
    every reachable b_t underflows after the row shift, the rescue re-shifts
    on the reachable states, and the result is the reference's (state 0 only)."""
    with np.errstate(divide="ignore"):
        log_pi = np.log(np.array([1.0, 0.0]))
        log_A = np.log(np.array([[1.0, 0.0], [0.5, 0.5]]))
    rng = np.random.default_rng(0)
    lengths = np.array([70, 3])
    Z = np.concatenate([np.ones((73, 1)), rng.normal(size=(73, 1))], axis=1)
    W = np.array([[0.0, 1000.0], [1.0, -1.0]])
    const = np.array([-2.0, 0.0])
    got = hmm_affine.forward_backward_affine(log_pi, log_A, Z, W, const, lengths,
                                             method="sequential")
    log_p0 = np.array([np.sum(Z[:70, 1] - 2.0), np.sum(Z[70:, 1] - 2.0)])  # p(x | z = 0 always)
    np.testing.assert_allclose(got[0], log_p0, rtol=1e-12)
    np.testing.assert_allclose(got[3], [73.0, 0.0], atol=1e-12)  # gamma = (1, 0) throughout
    _assert_stats_equal(got, hmm_xp.forward_backward_affine(log_pi, log_A, Z, W, const, lengths),
                        rtol=1e-10)
