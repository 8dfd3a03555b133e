"""lvm_core.ops.score_function: every backward against float64 central differences,
what the pieces mean (draw frequencies, the relaxation's limit, leave-one-out
and running moments by hand, the Bernoulli KL by enumeration), PyTorch autograd
for the relaxed sample and the KL, the backend matrix and errors.

References: Williams 1992; Mnih & Gregor 2014; Kool et al. 2019; Maddison et al.
2017; Jang et al. 2017.
"""
from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core.gradcheck import check_grads_resolvable
from lvm_core.ops import score_function as sf

from .conftest import require

seeds = st.integers(min_value=0, max_value=2**32 - 1)


def check_gradient(f, x, grad, name="x", h=1e-6, rtol=1e-6):
    """Central differences, relative error < rtol scaled by max(|analytic|, |numeric|),
    on every argument whose numeric gradient is resolvable (the filter reads the numeric
    gradient only, so a wrongly zero analytic gradient fails)."""
    check_grads_resolvable(lambda p: f(p[name]), {name: x}, {name: grad}, f(x), h=h, rtol=rtol)


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


# --------------------------------------------------------------------------
# gradients vs float64 central differences
# --------------------------------------------------------------------------
@settings(max_examples=25)
@given(R=st.integers(1, 3), N=st.integers(1, 3), L=st.integers(1, 4),
       tau=st.sampled_from([0.1, 0.5, 1.0, 2.0]), seed=seeds)
def test_relaxed_bernoulli_backward_matches_central_differences(R, N, L, tau, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(scale=2.0, size=(N, L))
    u = rng.uniform(0.02, 0.98, size=(R, N, L))
    w = rng.standard_normal((R, N, L))

    def f(a_):
        return float(np.sum(w * sf.relaxed_bernoulli(a_, u, tau)[0]))

    _, y_soft = sf.relaxed_bernoulli(a, u, tau)
    da = sf.relaxed_bernoulli_backward(w, y_soft, tau)
    check_gradient(f, a, da, name="logits")


@settings(max_examples=25)
@given(R=st.integers(1, 3), N=st.integers(1, 3), L=st.integers(1, 4), seed=seeds)
def test_score_function_backward_is_the_gradient_of_the_weighted_log_prob(R, N, L, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(scale=2.0, size=(N, L))
    z = (rng.random((R, N, L)) < 0.5).astype(np.float64)
    A = rng.standard_normal((R, N))
    scale = -0.3

    def f(a_):
        return float(scale * np.sum(A * sf.bernoulli_log_prob(a_, z)))

    check_gradient(f, a, sf.score_function_backward(A, z, a, scale=scale))


@settings(max_examples=25)
@given(N=st.integers(1, 3), L=st.integers(1, 4), shared=st.booleans(), seed=seeds)
def test_bernoulli_kl_gradients_match_central_differences(N, L, shared, seed):
    rng = np.random.default_rng(seed)
    a = rng.normal(scale=2.0, size=(N, L))
    b = rng.normal(scale=2.0, size=(L,) if shared else (N, L))
    _, da, db = sf.bernoulli_kl(a, b)
    check_gradient(lambda a_: float(np.sum(sf.bernoulli_kl(a_, b)[0])), a, da)
    check_gradient(lambda b_: float(np.sum(sf.bernoulli_kl(a, b_)[0])), b, db, name="p_logits")


@settings(max_examples=25)
@given(R=st.integers(1, 3), N=st.integers(1, 4), seed=seeds)
def test_baseline_regression_gradient_matches_central_differences(R, N, seed):
    rng = np.random.default_rng(seed)
    target = rng.normal(scale=5.0, size=(R, N))
    b = rng.standard_normal(N)
    _, db = sf.baseline_regression(target, b, scale=0.25)
    check_gradient(lambda b_: float(sf.baseline_regression(target, b_, scale=0.25)[0]), b, db)


# --------------------------------------------------------------------------
# meaning
# --------------------------------------------------------------------------
def test_hard_and_relaxed_draws_have_the_bernoulli_frequencies():
    """z = 1[a + nu > 0] is Bernoulli(sigmoid(a)); P(y_soft > 1/2) is the same; the hard
    output of the relaxation is the same z."""
    rng = np.random.default_rng(0)
    a = np.array([[-2.0, -0.3, 0.0, 1.5]])
    u = rng.random((20000, 1, 4))
    z = sf.bernoulli_sample(a, u)
    p = _sigmoid(a[0])
    se = np.sqrt(p * (1 - p) / u.shape[0])
    assert np.all(np.abs(z.mean(axis=(0, 1)) - p) < 4 * se)
    y_hard, y_soft = sf.relaxed_bernoulli(a, u, 0.7, hard=True)
    np.testing.assert_array_equal(y_hard, z)
    np.testing.assert_array_equal(y_soft > 0.5, z > 0.5)


def test_relaxed_sample_tends_to_the_hard_sample_as_temperature_falls():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(3, 5))
    u = rng.uniform(0.01, 0.99, size=(200, 3, 5))
    z = sf.bernoulli_sample(a, u)
    gaps = [np.mean(np.abs(sf.relaxed_bernoulli(a, u, t)[0] - z)) for t in (1.0, 0.3, 0.1, 0.01)]
    assert all(g2 < g1 for g1, g2 in zip(gaps, gaps[1:]))
    assert gaps[-1] < 0.01


def test_logistic_noise_is_finite_at_the_ends_of_the_unit_interval():
    for dt in (np.float32, np.float64):
        nu = sf.logistic_noise(np.array([0.0, 0.5, np.nextafter(dt(1), dt(0))], dtype=dt))
        assert np.all(np.isfinite(nu)) and nu.dtype == dt and nu[1] == 0


def test_bernoulli_log_prob_and_kl_by_enumeration():
    """log q(z) against the product of probabilities; the KL as the sum over all z."""
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(1, 3)), rng.normal(size=3)
    q, p = _sigmoid(a[0]), _sigmoid(b)
    zs = np.array(list(itertools.product([0.0, 1.0], repeat=3)))  # (8, 3)
    log_q = sf.bernoulli_log_prob(a, zs[:, None, :])[:, 0]
    np.testing.assert_allclose(np.exp(log_q), np.prod(np.where(zs > 0, q, 1 - q), axis=1),
                               rtol=1e-12)
    log_p = sf.bernoulli_log_prob(b, zs)
    np.testing.assert_allclose(np.exp(log_p), np.prod(np.where(zs > 0, p, 1 - p), axis=1),
                               rtol=1e-12)
    kl_enum = np.sum(np.exp(log_q) * (log_q - log_p))
    np.testing.assert_allclose(sf.bernoulli_kl(a, b)[0], [kl_enum], rtol=1e-12)
    assert sf.bernoulli_kl(a, a[0])[0][0] == pytest.approx(0.0, abs=1e-15)


def test_leave_one_out_baseline_by_hand():
    f = np.array([[1.0, -4.0], [2.0, 0.0], [6.0, 1.0]])  # k = 3 draws, N = 2
    b = sf.leave_one_out_baseline(f)
    np.testing.assert_allclose(b, [[4.0, 0.5], [3.5, -1.5], [1.5, -2.0]])
    np.testing.assert_allclose(f - b, 1.5 * (f - f.mean(axis=0)))


def test_vimco_baseline_by_hand():
    """k = 2: L_{-1} = log (exp f_2 + exp f_2) / 2 = f_2; and the general case by a loop."""
    f = np.array([[1.0, -3.0], [4.0, 0.5]])
    np.testing.assert_allclose(sf.vimco_baseline(f), f[::-1], rtol=1e-12)
    f = np.random.default_rng(7).normal(scale=3.0, size=(4, 3))
    ref = np.empty_like(f)
    for r in range(4):
        g = f.copy()
        g[r] = np.delete(f, r, axis=0).mean(axis=0)
        ref[r] = np.log(np.mean(np.exp(g), axis=0))
    np.testing.assert_allclose(sf.vimco_baseline(f), ref, rtol=1e-12)


def test_running_moments_by_hand():
    m, v = sf.running_moments(None, None, np.array([1.0, 3.0]), 0.9)
    assert (float(m), float(v)) == (2.0, 1.0)
    m, v = sf.running_moments(m, v, np.array([[5.0], [5.0]]), 0.9)
    assert float(m) == pytest.approx(0.9 * 2 + 0.1 * 5) and float(v) == pytest.approx(0.9)


def test_score_function_estimate_of_a_one_latent_gradient():
    """d/da E_q[f(z)] = sigmoid'(a) (f(1) - f(0)): the score-function mean with and
    without a baseline, with the baseline's smaller variance."""
    a = np.array([[0.4]])
    f1, f0 = 8.0, 6.0  # a signal far from 0: the baseline 7 helps
    exact = _sigmoid(0.4) * (1 - _sigmoid(0.4)) * (f1 - f0)
    u = np.random.default_rng(3).random((40000, 1, 1))
    z = sf.bernoulli_sample(a, u)
    f = np.where(z[:, :, 0] > 0, f1, f0)  # (M, 1)
    per_draw = {name: np.array([sf.score_function_backward(A[i:i + 1], z[i:i + 1], a)[0, 0]
                                for i in range(2000)])
                for name, A in (("plain", f), ("baseline", f - 7.0))}
    full = sf.score_function_backward(f, z, a, scale=1.0 / len(f))[0, 0]
    se = np.std(f[:, 0] * (z[:, 0, 0] - _sigmoid(0.4))) / np.sqrt(len(f))
    assert abs(full - exact) < 4 * se
    assert per_draw["baseline"].var() < 0.5 * per_draw["plain"].var()


# --------------------------------------------------------------------------
# PyTorch oracle
# --------------------------------------------------------------------------
@pytest.mark.oracle
def test_relaxed_sample_and_kl_match_torch_autograd():
    torch = require("torch")
    rng = np.random.default_rng(4)
    a = rng.normal(size=(3, 4))
    b = rng.normal(size=4)
    u = rng.uniform(0.01, 0.99, size=(2, 3, 4))
    w = rng.standard_normal((2, 3, 4))
    at = torch.tensor(a, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    nu = torch.log(torch.tensor(u)) - torch.log1p(-torch.tensor(u))
    y = torch.sigmoid((at + nu) / 0.6)
    q = torch.sigmoid(at)
    p = torch.sigmoid(bt)
    kl = (q * torch.log(q / p) + (1 - q) * torch.log((1 - q) / (1 - p))).sum()
    ((torch.tensor(w) * y).sum() + kl).backward()
    y_ours, y_soft = sf.relaxed_bernoulli(a, u, 0.6)
    kl_ours, dkl_da, dkl_db = sf.bernoulli_kl(a, b)
    np.testing.assert_allclose(y_ours, y.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(kl_ours.sum(), float(kl.detach()), rtol=1e-12)
    da = sf.relaxed_bernoulli_backward(w, y_soft, 0.6) + dkl_da
    np.testing.assert_allclose(da, at.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dkl_db, bt.grad.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------
# backends and errors
# --------------------------------------------------------------------------
def test_every_piece_runs_on_every_backend_and_keeps_dtype(backend):
    rng = np.random.default_rng(5)
    a_h, u_h = rng.normal(size=(3, 4)), rng.random((2, 3, 4))
    a, u = backend.asarray(a_h), backend.asarray(u_h)
    z = sf.bernoulli_sample(a, u)
    y, y_soft = sf.relaxed_bernoulli(a, u, 0.5, hard=True)
    da = sf.relaxed_bernoulli_backward(y_soft, y_soft, 0.5)
    lp = sf.bernoulli_log_prob(a, z)
    A = lp - sf.leave_one_out_baseline(lp) + sf.vimco_baseline(lp)
    g = sf.score_function_backward(A, z, a, scale=-0.5)
    m, v = sf.running_moments(None, None, lp, 0.9)
    m, v = sf.running_moments(m, v, lp, 0.9)
    val, db = sf.baseline_regression(lp, lp[0, ...])
    kl, dka, dkb = sf.bernoulli_kl(a, a[0, ...])
    for out, shape in ((z, (2, 3, 4)), (y, (2, 3, 4)), (da, (3, 4)), (lp, (2, 3)), (g, (3, 4)),
                       (m, ()), (v, ()), (val, ()), (db, (3,)), (kl, (3,)), (dka, (3, 4)),
                       (dkb, (4,))):
        assert out.dtype == a.dtype and tuple(out.shape) == shape
    z_h = backend.to_numpy(z).astype(np.float64)
    np.testing.assert_array_equal(z_h, sf.bernoulli_sample(a_h, u_h))
    lp_h = sf.bernoulli_log_prob(a_h, z_h)
    A_h = lp_h - sf.leave_one_out_baseline(lp_h) + sf.vimco_baseline(lp_h)
    g_h = sf.score_function_backward(A_h, z_h, a_h, scale=-0.5)
    np.testing.assert_allclose(backend.to_numpy(g), g_h, rtol=backend.rtol * 100,
                               atol=backend.rtol * 100)


def test_inputs_are_not_modified():
    rng = np.random.default_rng(6)
    a, u = rng.normal(size=(3, 4)), rng.random((2, 3, 4))
    a0, u0 = a.copy(), u.copy()
    y, y_soft = sf.relaxed_bernoulli(a, u, 0.5)
    sf.relaxed_bernoulli_backward(y, y_soft, 0.5)
    sf.bernoulli_kl(a, a[0])
    np.testing.assert_array_equal(a, a0)
    np.testing.assert_array_equal(u, u0)


def test_errors_name_the_argument():
    a = np.zeros((3, 4))
    with pytest.raises(ValueError, match="temperature"):
        sf.relaxed_bernoulli(a, np.full((1, 3, 4), 0.5), 0.0)
    with pytest.raises(ValueError, match="u must have shape"):
        sf.bernoulli_sample(a, np.full((1, 3, 5), 0.5))
    with pytest.raises(TypeError, match="dtype"):
        sf.bernoulli_sample(a, np.full((1, 3, 4), 0.5, dtype=np.float32))
    with pytest.raises(ValueError, match="k >= 2"):
        sf.leave_one_out_baseline(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="decay"):
        sf.running_moments(None, None, np.zeros(3), 1.0)
    with pytest.raises(ValueError, match="signal must have shape"):
        sf.score_function_backward(np.zeros((2, 2)), np.zeros((2, 3, 4)), a)
    with pytest.raises(ValueError, match="p_logits"):
        sf.bernoulli_kl(a, np.zeros(5))
