"""RBMs, partition functions, DBN and DBM: identities with brute-force sums, exact
expectations of the CD estimator, Gibbs samples against the exact distribution,
AIS / reverse AIS error bars, mean-field fixed points, gradient checks, bad input,
backends, and the example's smoke run."""
from __future__ import annotations

import itertools
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from lvm_core.gradcheck import check_grads
from lvm_core.models.energy import (
    DBM,
    DBN,
    RBM,
    GaussianBernoulliRBM,
    ais_betas,
    exact_log_partition,
    exact_log_partition_gaussian,
)
from lvm_core.models.energy.partition import BinaryPath, ais_log_partition, reverse_ais_log_partition
from lvm_core.validation import NotFittedError
from lvm_core_tests.conftest import require


def states(K):
    """All 2^K binary vectors, (2^K, K) float64."""
    return np.array(list(itertools.product([0.0, 1.0], repeat=K)))


def random_rbm(rng, D, H, scale=1.0):
    W = scale * rng.normal(size=(D, H))
    b = 0.5 * rng.normal(size=D)
    c = 0.5 * rng.normal(size=H)
    return RBM.from_params(W, b, c)


def brute_log_z(W, b, c):
    """log sum over all (v, h) of exp(b.v + c.h + v W h)."""
    V, Hs = states(W.shape[0]), states(W.shape[1])
    neg_e = (V @ b)[:, None] + (Hs @ c)[None, :] + V @ W @ Hs.T
    m = neg_e.max()
    return m + math.log(np.exp(neg_e - m).sum())


def exact_visible_probs(model):
    """p(v) for every v (rows of states(D)), by enumeration."""
    V = states(model.n_features_in_)
    return V, np.exp(model.score_samples(V))


# --------------------------------------------------------------------------- log Z
@pytest.mark.parametrize("D,H", [(3, 5), (5, 3), (4, 4), (1, 6)])
def test_exact_log_z_equals_brute_force_over_both_layers(D, H):
    rng = np.random.default_rng(D * 10 + H)
    m = random_rbm(rng, D, H)
    p = m.params
    assert_allclose(exact_log_partition(p["W"], p["b"], p["c"]), brute_log_z(p["W"], p["b"], p["c"]),
                    rtol=1e-12)
    V, probs = exact_visible_probs(m)
    assert_allclose(probs.sum(), 1.0, rtol=1e-12)


def test_gaussian_exact_log_z_equals_quadrature():
    rng = np.random.default_rng(3)
    D, H = 2, 3
    W, b, c = rng.normal(size=(D, H)), rng.normal(size=D), rng.normal(size=H)
    log_var = np.log(np.array([0.5, 1.5]))
    var = np.exp(log_var)
    grid = np.linspace(-14.0, 14.0, 1401)
    step = grid[1] - grid[0]
    v1, v2 = np.meshgrid(grid, grid, indexing="ij")
    V = np.stack([v1.ravel(), v2.ravel()], axis=1)  # (G, 2)
    total = 0.0
    for h in states(H):
        neg_e = -np.sum((V - b) ** 2 / (2 * var), axis=1) + c @ h + (V / var) @ W @ h
        total += np.exp(neg_e).sum() * step * step
    assert_allclose(exact_log_partition_gaussian(W, b, c, log_var), math.log(total), rtol=1e-9)


def exact_samples(model, M, rng):
    V, probs = exact_visible_probs(model)
    idx = rng.choice(len(V), size=M, p=probs / probs.sum())
    return V[idx]


def test_ais_and_reverse_ais_agree_with_exact_log_z_within_error_bars():
    rng = np.random.default_rng(0)
    m = random_rbm(rng, D=10, H=12, scale=0.6)
    exact = m.log_partition("exact").log_z
    data = exact_samples(m, 500, rng)
    fwd = m.log_partition("ais", n_runs=200, n_betas=400, base_rate_data=data, random_state=1)
    rev = m.log_partition("reverse_ais", n_runs=200, n_betas=400, base_rate_data=data,
                          random_state=2, v_init=exact_samples(m, 200, rng))
    for est in (fwd, rev):
        assert est.log_z_std > 0
        assert abs(est.log_z - exact) <= 3.0 * est.log_z_std + 1e-3, (est[:4], exact)
        assert est.log_z_low <= exact <= est.log_z_high, (est[:4], exact)


def test_ais_base_model_alone_is_exact():
    """With W = 0 and c = 0 the path is flat in v: every weight is Z_B / Z_A exactly."""
    rng = np.random.default_rng(1)
    D, H = 6, 4
    b = rng.normal(size=D)
    path = BinaryPath(np.zeros((D, H)), b, np.zeros(H), b)
    est = ais_log_partition(path, n_runs=10, n_betas=10, rng=0)
    assert_allclose(est.log_z, exact_log_partition(np.zeros((D, H)), b, np.zeros(H)), rtol=1e-12)
    assert est.log_z_std < 1e-12


def test_ais_schedule():
    betas = ais_betas(145)
    assert betas[0] == 0.0 and betas[-1] == 1.0 and len(betas) == 145
    assert np.all(np.diff(betas) > 0)
    # finer spacing near beta = 1, as in Salakhutdinov & Murray (2008)
    assert np.diff(betas)[-1] < np.diff(betas)[0]
    with pytest.raises(ValueError, match="betas"):
        reverse_ais_log_partition(BinaryPath(np.zeros((2, 2)), np.zeros(2), np.zeros(2),
                                             np.zeros(2)), np.zeros((3, 2)), betas=[0.0, 0.7, 0.5, 1.0])


def test_gaussian_ais_agrees_with_exact():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(200, 5))
    m = GaussianBernoulliRBM(n_components=8, n_iter=3, learning_rate=0.01, random_state=0).fit(X)
    exact = m.log_partition("exact").log_z
    est = m.log_partition("ais", n_runs=100, n_betas=300, random_state=0)
    assert abs(est.log_z - exact) <= 3.0 * est.log_z_std + 1e-3


# --------------------------------------------------------------------------- gradients
def test_exact_gradient_is_positive_minus_negative_phase():
    """d/dtheta mean_n log p(v_n) (central differences of the exact log-likelihood) equals
    the data average of -dF/dtheta minus its exact model average (sum over all v)."""
    rng = np.random.default_rng(4)
    D, H = 4, 3
    m = random_rbm(rng, D, H)
    X = (rng.random((7, D)) < 0.5).astype(float)

    def mean_log_lik(params):
        return float(np.mean(RBM.from_params(params["W"], params["b"], params["c"]).score_samples(X)))

    V, probs = exact_visible_probs(m)
    g_data, _ = m.free_energy_grads(X)  # sums over rows of dF/dtheta
    g_all, _ = m.free_energy_grads(V)
    # dF/dtheta for each v separately, weighted by p(v)
    per_v = [m.free_energy_grads(V[i:i + 1])[0] for i in range(len(V))]
    model_avg = {k: sum(probs[i] * per_v[i][k] for i in range(len(V))) for k in g_data}
    grads = {k: -(-g_data[k] / len(X) + model_avg[k]) for k in g_data}  # d(-mean log p)
    check_grads(lambda p: -mean_log_lik(p), dict(m.params), grads, rtol=1e-6)
    del g_all


def transition_matrix(model):
    """T[v, v'] = sum_h p(h | v) p(v' | h): one block Gibbs sweep on the visible states."""
    p = model.params
    V, Hs = states(p["W"].shape[0]), states(p["W"].shape[1])
    ph = 1 / (1 + np.exp(-(V @ p["W"] + p["c"])))  # (2^D, H)
    p_h_given_v = np.prod(np.where(Hs[None, :, :] == 1, ph[:, None, :], 1 - ph[:, None, :]), axis=2)
    pv = 1 / (1 + np.exp(-(Hs @ p["W"].T + p["b"])))  # (2^H, D)
    p_v_given_h = np.prod(np.where(V[None, :, :] == 1, pv[:, None, :], 1 - pv[:, None, :]), axis=2)
    return p_h_given_v @ p_v_given_h


@pytest.mark.parametrize("k", [1, 3])
def test_cd_estimator_expectation_equals_exact_k_step_expectation(k):
    """E[CD-k gradient] = dF(v0) - sum_v' T^k[v0, v'] dF(v')  (Rao-Blackwellised over h)."""
    rng = np.random.default_rng(5)
    D, H = 3, 2
    m = random_rbm(rng, D, H)
    m.set_params(method="cd", k=k)
    V = states(D)
    v0_index = 5
    Tk = np.linalg.matrix_power(transition_matrix(m), k)[v0_index]  # (2^D,)
    per_v = [m.free_energy_grads(V[i:i + 1])[0] for i in range(len(V))]
    expected = {key: per_v[v0_index][key] - sum(Tk[i] * per_v[i][key] for i in range(len(V)))
                for key in per_v[0]}
    M = 40000
    X = np.repeat(V[v0_index:v0_index + 1], M, axis=0)
    _, grads = m.loss_and_grads(X, rng=np.random.default_rng(6))
    # the CD gradient is a mean over M independent chains: compare within 5 standard errors
    for key in expected:
        sd = max(1.0, float(np.max(np.abs(expected[key])))) / math.sqrt(M)
        assert_allclose(grads[key], expected[key], atol=5 * 3 * sd)


@settings(max_examples=10)
@given(seed=st.integers(0, 2 ** 31 - 1), D=st.integers(1, 5), H=st.integers(1, 4),
       N=st.integers(1, 4))
def test_grad_free_energy_binary(seed, D, H, N):
    rng = np.random.default_rng(seed)
    m = random_rbm(rng, D, H)
    X = (rng.random((N, D)) < 0.5).astype(float)
    grads, _ = m.free_energy_grads(X)

    def total_f(params):
        return float(np.sum(RBM.from_params(params["W"], params["b"], params["c"]).free_energy(X)))

    check_grads(total_f, dict(m.params), grads, rtol=1e-6)


@settings(max_examples=10)
@given(seed=st.integers(0, 2 ** 31 - 1), D=st.integers(1, 4), H=st.integers(1, 4),
       N=st.integers(1, 4))
def test_grad_free_energy_gaussian(seed, D, H, N):
    rng = np.random.default_rng(seed)
    m = GaussianBernoulliRBM(n_components=H, n_iter=1, random_state=seed).fit(
        rng.normal(size=(5, D)))
    params = {"W": rng.normal(size=(D, H)), "b": rng.normal(size=D), "c": rng.normal(size=H),
              "log_var": rng.normal(scale=0.5, size=D)}
    m._params = dict(params)
    X = rng.normal(size=(N, D))
    grads, _ = m.free_energy_grads(X)

    def total_f(p):
        m._params = dict(p)
        return float(np.sum(m.free_energy(X)))

    check_grads(total_f, params, grads, rtol=1e-6)
    m._params = params


@settings(max_examples=10)
@given(seed=st.integers(0, 2 ** 31 - 1), D=st.integers(1, 5), H=st.integers(1, 4),
       N=st.integers(2, 6), gaussian=st.booleans())
def test_grad_weighted_free_energy_training_path(seed, D, H, N, gaussian):
    """The stacked, signed-weight statistics the training step uses: sum_n s_n dF(v_n)/dtheta."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=N)
    if gaussian:
        m = GaussianBernoulliRBM(n_components=H, n_iter=1, random_state=0).fit(rng.normal(size=(4, D)))
        params = {"W": rng.normal(size=(D, H)), "b": rng.normal(size=D), "c": rng.normal(size=H),
                  "log_var": rng.normal(scale=0.5, size=D)}
        V = rng.normal(size=(N, D))
    else:
        m = random_rbm(rng, D, H)
        params = {k: np.array(v) for k, v in m.params.items()}
        V = (rng.random((N, D)) < 0.5).astype(float)
    m._params = dict(params)
    grads, _ = m._free_energy_grads_from_input(V, m._hidden_input(V), weights=s)

    def weighted_f(p):
        m._params = dict(p)
        return float(np.sum(s * m._free_energy_grads_from_input(V, m._hidden_input(V),
                                                                need_grads=False)[1]))

    check_grads(weighted_f, params, grads, rtol=1e-6)


@pytest.mark.parametrize("method", ["cd", "pcd"])
def test_grad_cd_loss_through_loss_and_grads(method):
    """loss_and_grads returns the gradient of its loss with the negative samples fixed
    (same seed: a 1e-6 change of theta flips no Bernoulli draw here)."""
    rng = np.random.default_rng(19)
    m = random_rbm(rng, 5, 4)
    m.set_params(method=method, k=2, batch_size=6)
    X = (rng.random((6, 5)) < 0.5).astype(float)
    chains = (rng.random((6, 4)) < 0.5).astype(float)

    def run(params):
        m._params = dict(params)
        m._chains = chains.copy() if method == "pcd" else None
        return m.loss_and_grads(X, rng=np.random.default_rng(3))

    params = {k: np.array(v) for k, v in m.params.items()}
    _, grads = run(params)
    check_grads(lambda p: float(run(p)[0]), params, grads, rtol=1e-6)


@pytest.mark.oracle
def test_free_energy_gradient_matches_torch_autograd():
    torch = require("torch")
    rng = np.random.default_rng(7)
    m = random_rbm(rng, 6, 4)
    X = (rng.random((5, 6)) < 0.5).astype(float)
    grads, F = m.free_energy_grads(X)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    Xt = torch.tensor(X)
    Ft = -Xt @ p["b"] - torch.nn.functional.softplus(Xt @ p["W"] + p["c"]).sum(1)
    Ft.sum().backward()
    assert_allclose(F, Ft.detach().numpy(), rtol=1e-12)
    for k in grads:
        assert_allclose(grads[k], p[k].grad.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- sampling
def test_gibbs_samples_match_exact_distribution_chi_square():
    rng = np.random.default_rng(8)
    m = random_rbm(rng, 3, 2)
    V, probs = exact_visible_probs(m)
    n = 20000
    draws = m.sample(n, rng=9, n_steps=30)
    codes = (draws @ (2 ** np.arange(3)[::-1])).astype(int)  # row index in states(3)
    counts = np.bincount(codes, minlength=8)
    expected = n * probs
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    # 7 degrees of freedom: the 0.999 quantile is 24.32
    assert chi2 < 24.32, (chi2, counts, expected)


# --------------------------------------------------------------------------- estimator
def test_energy_sums_to_free_energy_and_conditionals():
    """F(v) = -log sum_h exp(-E(v, h)); E[v | h] and P(h | v) from the joint table."""
    rng = np.random.default_rng(22)
    m = random_rbm(rng, 3, 4)
    V, Hs = states(3), states(4)
    E = np.stack([m.energy(V, np.repeat(h[None, :], len(V), axis=0)) for h in Hs], axis=1)
    assert_allclose(m.free_energy(V), -np.log(np.exp(-E).sum(axis=1)), rtol=1e-12)
    joint = np.exp(-E)  # (2^D, 2^H) unnormalised
    p_h_given_v = joint / joint.sum(axis=1, keepdims=True)
    assert_allclose(m.transform(V), p_h_given_v @ Hs, rtol=1e-10)
    p_v_given_h = joint / joint.sum(axis=0, keepdims=True)
    assert_allclose(m.visible_mean(Hs), p_v_given_h.T @ V, rtol=1e-10)


def test_gaussian_rbm_fixed_variance_and_energy():
    rng = np.random.default_rng(23)
    X = rng.normal(size=(80, 3)) * 2.0
    m = GaussianBernoulliRBM(n_components=2, n_iter=2, learn_variance=False, init_var=4.0,
                             random_state=0).fit(X)
    assert "log_var" not in m.params
    assert_allclose(m.log_var_, np.full(3, math.log(4.0)))
    # F(v) = -log sum_h exp(-E(v, h))
    Hs = states(2)
    E = np.stack([m.energy(X[:5], np.repeat(h[None, :], 5, axis=0)) for h in Hs], axis=1)
    assert_allclose(m.free_energy(X[:5]), -np.log(np.exp(-E).sum(axis=1)), rtol=1e-10)
    learned = GaussianBernoulliRBM(n_components=2, n_iter=2, random_state=0).fit(X)
    assert not np.allclose(learned.log_var_, 0.0)


def test_pseudo_likelihood_equals_definition():
    rng = np.random.default_rng(10)
    m = random_rbm(rng, 5, 3)
    X = (rng.random((4, 5)) < 0.5).astype(float)
    F = m.free_energy(X)
    expected = np.zeros(4)
    for i in range(5):
        Xf = X.copy()
        Xf[:, i] = 1 - Xf[:, i]
        expected += -np.log1p(np.exp(-(m.free_energy(Xf) - F)))
    assert_allclose(m.pseudo_log_likelihood(X), expected, rtol=1e-12)


@pytest.mark.parametrize("method", ["pcd", "cd"])
def test_training_raises_exact_log_likelihood(method):
    rng = np.random.default_rng(11)
    proto = (rng.random((3, 8)) < 0.5).astype(float)
    X = np.abs(proto[rng.integers(0, 3, 600)] - (rng.random((600, 8)) < 0.05))
    m0 = RBM(n_components=6, n_iter=1, learning_rate=1e-9, random_state=0).fit(X)
    m = RBM(n_components=6, n_iter=40, learning_rate=0.03, batch_size=20, momentum=0.5,
            method=method, k=1, weight_decay=1e-4, random_state=0).fit(X)
    # base-rate model about -5.2 nats; the 3-prototype source has entropy 2.7 nats
    assert m.score(X) > m0.score(X) + 1.0
    assert m.transform(X).shape == (600, 6)
    assert np.all((m.transform(X) > 0) & (m.transform(X) < 1))


def test_fit_starts_afresh_and_params_api():
    rng = np.random.default_rng(12)
    X = (rng.random((100, 6)) < 0.4).astype(float)
    m = RBM(n_components=4, n_iter=2, random_state=0)
    a = m.fit(X).components_.copy()
    b = m.fit(X).components_.copy()
    assert_allclose(a, b, rtol=0, atol=0)
    assert m.get_params()["n_components"] == 4
    m.set_params(n_components=3)
    assert m.fit(X).components_.shape == (6, 3)
    with pytest.raises(ValueError, match="Invalid parameter"):
        m.set_params(nonsense=1)


def test_save_load_round_trip(tmp_path):
    from lvm_core import io

    rng = np.random.default_rng(24)
    X = (rng.random((60, 6)) < 0.5).astype(float)
    models = [RBM(n_components=3, n_iter=1, random_state=0).fit(X),
              GaussianBernoulliRBM(n_components=2, n_iter=1, learn_variance=False,
                                   init_var=2.0, random_state=0).fit(X),
              DBM(n_components=(3, 2), n_iter=1, random_state=0).fit(X)]
    for i, m in enumerate(models):
        path = tmp_path / f"m{i}.h5"
        io.save(m, path)
        loaded = io.load(path)
        assert type(loaded) is type(m)
        assert_allclose(loaded.score_samples(X), m.score_samples(X), rtol=1e-12)


def test_bad_input_gives_clear_errors():
    X = np.array([[0.0, 1.0], [0.5, 1.0], [1.0, 0.0]])
    with pytest.raises(ValueError, match="binary"):
        RBM(n_components=2).fit(X)
    with pytest.raises(ValueError, match="at least 2"):
        RBM(n_components=2).fit(np.array([[0.0, 1.0]]))
    with pytest.raises(ValueError, match="2 dimension"):
        RBM(n_components=2).fit(np.array([0.0, 1.0, 1.0]))
    with pytest.raises(ValueError, match="method"):
        RBM(n_components=2, method="pt").fit(np.eye(3))
    with pytest.raises(NotFittedError):
        RBM().transform(np.eye(3))
    m = RBM(n_components=2, n_iter=1, random_state=0).fit(np.eye(3))
    with pytest.raises(ValueError, match="3 features"):
        m.score_samples(np.eye(4))
    with pytest.raises(ValueError, match="binary"):
        DBM(n_components=(2, 2)).fit(X)
    with pytest.raises(ValueError, match="exactly 2"):
        DBM(n_components=(2, 2, 2)).fit(np.eye(3))


def test_rbm_runs_on_every_backend(backend):
    rng = np.random.default_rng(13)
    Xh = (rng.random((40, 5)) < 0.4).astype(np.float64)
    X = backend.asarray(Xh)
    m = RBM(n_components=3, n_iter=2, batch_size=10, momentum=0.5, random_state=0).fit(X)
    s = m.score_samples(X)
    assert s.dtype == X.dtype and tuple(s.shape) == (40,)
    p = backend.to_numpy(m.transform(X))
    assert p.shape == (40, 3)
    # the device result equals the NumPy result from the same parameters
    ref = RBM.from_params(*(backend.to_numpy(a).astype(np.float64) for a in
                            (m.components_, m.intercept_visible_, m.intercept_hidden_)))
    assert_allclose(backend.to_numpy(s), ref.score_samples(Xh), rtol=1e-4 if
                    backend.dtype_name == "float32" else 1e-10)
    est = m.log_partition("ais", n_runs=10, n_betas=20, random_state=0)
    assert np.isfinite(est.log_z)
    assert tuple(m.sample(4, rng=0, n_steps=3).shape) == (4, 5)


def test_gaussian_rbm_on_every_backend(backend64):
    rng = np.random.default_rng(14)
    X = backend64.asarray(rng.normal(size=(50, 4)))
    m = GaussianBernoulliRBM(n_components=3, n_iter=2, batch_size=10, random_state=0).fit(X)
    assert np.all(np.isfinite(backend64.to_numpy(m.score_samples(X))))
    assert tuple(m.log_var_.shape) == (4,)


# --------------------------------------------------------------------------- DBN / DBM
def random_dbm(rng, D, H1, H2, scale=1.5):
    return DBM.from_params(scale * rng.normal(size=(D, H1)), scale * rng.normal(size=(H1, H2)),
                           rng.normal(size=D), rng.normal(size=H1), rng.normal(size=H2),
                           mean_field_iter=500, mean_field_tol=1e-12)


def test_dbm_mean_field_fixed_point_satisfies_its_equations():
    rng = np.random.default_rng(15)
    m = random_dbm(rng, 6, 5, 4, scale=0.7)
    X = (rng.random((9, 6)) < 0.5).astype(float)
    mu1, mu2 = m.mean_field(X)
    p = m.params
    sig = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    assert_allclose(mu1, sig(X @ p["W1"] + mu2 @ p["W2"].T + p["c1"]), atol=1e-10)
    assert_allclose(mu2, sig(mu1 @ p["W2"] + p["c2"]), atol=1e-10)


def test_dbm_bound_below_exact_log_likelihood():
    rng = np.random.default_rng(16)
    m = random_dbm(rng, 5, 4, 3)
    p = m.params
    X = states(5)
    log_z = m.log_partition("exact").log_z
    # brute force over (v, h1, h2)
    H1s, H2s = states(4), states(3)
    neg_e = ((X @ p["b"])[:, None, None] + (H1s @ p["c1"])[None, :, None]
             + (H2s @ p["c2"])[None, None, :] + np.einsum("nd,dh,kh->nk", X, p["W1"], H1s)[:, :, None]
             + (H1s @ p["W2"] @ H2s.T)[None, :, :])
    brute_z = np.log(np.exp(neg_e).sum())
    assert_allclose(log_z, brute_z, rtol=1e-12)
    log_p = np.log(np.exp(neg_e).sum(axis=(1, 2))) - brute_z
    assert_allclose(m.unnormalised_log_prob(X) - log_z, log_p, rtol=1e-10)
    bound = m.lower_bound(X, log_z=log_z)
    assert np.all(bound <= log_p + 1e-10)
    assert np.mean(log_p - bound) > 1e-3  # a real gap with these weights
    assert_allclose(np.exp(log_p).sum(), 1.0, rtol=1e-10)


def test_dbm_ais_and_training():
    rng = np.random.default_rng(17)
    proto = (rng.random((3, 10)) < 0.5).astype(float)
    X = np.abs(proto[rng.integers(0, 3, 300)] - (rng.random((300, 10)) < 0.05))
    m = DBM(n_components=(8, 4), n_iter=5, pretrain_iter=5, batch_size=20, learning_rate=0.02,
            random_state=0).fit(X)
    exact = m.log_partition("exact").log_z
    est = m.log_partition("ais", n_runs=100, n_betas=300, random_state=0, base_rate_data=X)
    assert abs(est.log_z - exact) <= 3 * est.log_z_std + 1e-3
    log_p = m.unnormalised_log_prob(X) - exact
    assert np.all(m.lower_bound(X, log_z=exact) <= log_p + 1e-9)
    assert m.score(X) > -10 * math.log(2)  # better than uniform over 2^10 patterns
    assert [t.shape for t in m.transform(X)] == [(300, 8), (300, 4)]
    assert m.sample(3, rng=0, n_steps=5).shape == (3, 10)


def test_grad_dbm_energy_statistics_and_envelope():
    """dE-statistics of the training step pass a gradient check, and at the mean-field
    fixed point the data term is minus the gradient of the bound (envelope theorem)."""
    rng = np.random.default_rng(20)
    m = random_dbm(rng, 5, 4, 3, scale=0.5)
    m.set_params(mean_field_iter=2000, mean_field_tol=1e-14)
    X = (rng.random((6, 5)) < 0.5).astype(float)
    H1 = rng.random((6, 4))
    H2 = rng.random((6, 3))
    s = rng.normal(size=6)
    params = {k: np.array(v) for k, v in m.params.items()}
    grads = m._energy_grads(X, H1, H2, s)

    def weighted_energy(p):
        m._params = dict(p)
        return -float(np.sum(s * m._neg_energy(X, H1, H2)))

    check_grads(weighted_energy, params, grads, rtol=1e-6)

    m._params = dict(params)
    mu1, mu2 = m.mean_field(X)
    pos = m._energy_grads(X, mu1, mu2, np.full(6, 1.0 / 6))

    def mean_bound(p):
        m._params = dict(p)
        return float(np.mean(m.lower_bound(X, log_z=0.0)))

    # d(mean bound)/dtheta = -(positive-phase dE statistics)
    check_grads(mean_bound, params, {k: -v for k, v in pos.items()}, rtol=1e-6)
    m._params = params


def test_dbm_on_every_backend(backend):
    rng = np.random.default_rng(21)
    X = backend.asarray((rng.random((30, 6)) < 0.4).astype(np.float64))
    m = DBM(n_components=(4, 3), n_iter=2, pretrain_iter=1, batch_size=10, random_state=0).fit(X)
    lb = m.lower_bound(X)
    assert lb.dtype == X.dtype and tuple(lb.shape) == (30,)
    assert np.all(np.isfinite(backend.to_numpy(lb)))
    assert np.isfinite(m.log_partition("ais", n_runs=5, n_betas=10, random_state=0).log_z)


def test_dbn_layers_and_sampling():
    rng = np.random.default_rng(18)
    X = (rng.random((200, 12)) < 0.3).astype(float)
    d = DBN(n_components=(6, 4), n_iter=2, batch_size=20, random_state=0).fit(X)
    mus = d.transform(X)
    assert [m.shape for m in mus] == [(200, 6), (200, 4)]
    # the up pass is the composition of the layers' transforms on means
    assert_allclose(mus[0], d.rbms_[0].transform(X))
    s = d.sample(5, rng=0, n_steps=10)
    assert s.shape == (5, 12) and set(np.unique(s)) <= {0.0, 1.0}


# --------------------------------------------------------------------------- example
@pytest.mark.slow
def test_rbm_example_quick(tmp_path):
    require("matplotlib")
    script = Path(__file__).resolve().parents[1] / "examples" / "rbm_fashion.py"
    env = dict(os.environ, LVM_CORE_NO_DOWNLOAD="1", LVM_CORE_SYSTEM_DATA_DIRS="",
               XDG_CACHE_HOME=str(tmp_path / "cache"), MPLBACKEND="Agg",
               MPLCONFIGDIR=str(tmp_path / "mpl"), NUMBA_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    for var in ("LVM_CORE_DATA", "FASHION_MNIST_DIR", "MNIST_DIR"):
        env.pop(var, None)
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(script), "--quick", "--out", str(out)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    for name in ("filters.png", "samples.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    match = re.search(r"RESULT rbm_fashion .*ais_ll=(-?\d+\.\d+)", proc.stdout)
    assert match, proc.stdout[-3000:]
    assert -784 * math.log(2) < float(match.group(1)) < 0
