"""CVAE (lvm_core.models.cvae) and the KL between two diagonal Gaussians
(lvm_core.ops.kl_normal): float64 central differences through the training
path, PyTorch autograd with identical weights and eps, the numba kernel
against its array-API reference, the backend matrix, and what the model
means (a y that carries no information gives a VAE; ELBO <= log p(x|y);
samples follow their class).

References: Sohn, Lee & Yan 2015; Kingma & Welling 2014 (appendix B);
Burda et al. 2016.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core import functional as F
from lvm_core import ops
from lvm_core.backend import to_numpy
from lvm_core.gradcheck import check_gradient, check_grads, check_grads_resolvable, \
    relative_error
from lvm_core.models.cvae import CVAE
from lvm_core.models.vae import VAE
from lvm_core.ops import reference as ref

from .conftest import require

seeds = st.integers(min_value=0, max_value=2**32 - 1)
DECODERS = [("bernoulli", "fixed"), ("continuous_bernoulli", "fixed"), ("gaussian", "fixed"),
            ("gaussian", "learned"), ("gaussian", "output")]
SMOOTH = ["tanh", "sigmoid", "softplus", "identity"]


def _data(rng, N, D, decoder):
    return rng.standard_normal((N, D)) if decoder == "gaussian" else rng.random((N, D))


def _fixed_eps_loss(model, X, y, eps):
    return lambda p: float(to_numpy(model.loss_and_grads(X, y=y, eps=eps, params=p)[0]))


# --------------------------------------------------------------------------
# ops.kl_normal
# --------------------------------------------------------------------------
def _kl_inputs(rng, N, L, dtype=np.float64):
    mu, lv, mu_p, lv_p = (rng.standard_normal((N, L)).astype(dtype) for _ in range(4))
    return mu, lv, np.exp(0.5 * lv).astype(dtype), mu_p, lv_p


@settings(max_examples=20)
@given(N=st.integers(1, 9), L=st.integers(1, 9), dtype=st.sampled_from([np.float32, np.float64]),
       given_grads=st.booleans(), seed=seeds)
def test_kl_normal_fused_equals_reference(N, L, dtype, given_grads, seed):
    rng = np.random.default_rng(seed)
    mu, lv, std, mu_p, lv_p = _kl_inputs(rng, N, L, dtype)
    dmu = rng.standard_normal((N, L)).astype(dtype) if given_grads else None
    dlv = rng.standard_normal((N, L)).astype(dtype) if given_grads else None
    expect = ref.kl_normal(mu, lv, std, mu_p, lv_p, 0.3, dmu, dlv)
    got = ops.kl_normal(mu, lv, std, mu_p, lv_p, 0.3,
                        None if dmu is None else dmu.copy(), None if dlv is None else dlv.copy(),
                        ws=ops.Workspace())
    tol = dict(rtol=2e-5, atol=2e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    for a, b in zip(got, expect):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, b, **tol)


def test_kl_normal_fused_path_takes_strided_views():
    """The prior's (mu_p, log_var_p) are column views of one head output."""
    rng = np.random.default_rng(1)
    mu, lv, std, _, _ = _kl_inputs(rng, 4, 3)
    head = rng.standard_normal((4, 6))
    got = ops.kl_normal(mu, lv, std, head[:, :3], head[:, 3:], 1.0, ws=ops.Workspace())
    expect = ref.kl_normal(mu, lv, std, head[:, :3].copy(), head[:, 3:].copy())
    for a, b in zip(got, expect):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13)


@settings(max_examples=20)
@given(N=st.integers(1, 5), L=st.integers(1, 5), scale=st.sampled_from([1.0, 0.25]), seed=seeds)
def test_kl_normal_gradients_are_the_gradient(N, L, scale, seed):
    """Central differences of scale * sum_n KL_n through ops.kl_normal, for all four inputs."""
    rng = np.random.default_rng(seed)
    mu, lv, _, mu_p, lv_p = _kl_inputs(rng, N, L)

    def f(m, v, mp, vp):
        return scale * float(np.sum(ops.kl_normal(m, v, np.exp(0.5 * v), mp, vp)[0]))

    _, dmu, dlv, dmu_p, dlv_p = ops.kl_normal(mu, lv, np.exp(0.5 * lv), mu_p, lv_p, scale)
    assert check_gradient(lambda t: f(t, lv, mu_p, lv_p), mu, dmu, h=1e-6) < 1e-6
    assert check_gradient(lambda t: f(mu, t, mu_p, lv_p), lv, dlv, h=1e-6) < 1e-6
    assert check_gradient(lambda t: f(mu, lv, t, lv_p), mu_p, dmu_p, h=1e-6) < 1e-6
    assert check_gradient(lambda t: f(mu, lv, mu_p, t), lv_p, dlv_p, h=1e-6) < 1e-6


def test_kl_normal_meaning():
    """Zero for p = q; the functional KL; kl_std_normal for a zero-mean prior; Monte Carlo."""
    rng = np.random.default_rng(2)
    mu, lv, std, mu_p, lv_p = _kl_inputs(rng, 3, 4)
    kl, *_ = ops.kl_normal(mu, lv, std, mu, lv)
    np.testing.assert_allclose(kl, 0.0, atol=1e-14)
    got = ops.kl_normal(mu, lv, std, mu_p, lv_p)
    expect = F.kl_normal_normal(mu, lv, mu_p, lv_p)
    for a, b in zip(got, expect):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13)
    s2 = 0.3
    a = ops.kl_normal(mu, lv, std, np.zeros_like(mu), np.full_like(mu, math.log(s2)))
    b = ops.kl_std_normal(mu, lv, std, s2)
    for x, y in zip(a[:3], b):
        np.testing.assert_allclose(x, y, rtol=1e-12, atol=1e-13)
    # KL(q || p) = E_q[log q(z) - log p(z)], 400k draws, one row
    eps = rng.standard_normal((400000, 4))
    z = mu[0] + std[0] * eps
    log_q = -0.5 * np.sum(eps ** 2 + lv[0] + math.log(2 * math.pi), axis=1)
    log_p = -0.5 * np.sum((z - mu_p[0]) ** 2 * np.exp(-lv_p[0]) + lv_p[0] + math.log(2 * math.pi),
                          axis=1)
    d = log_q - log_p
    assert abs(d.mean() - got[0][0]) < 4 * d.std() / math.sqrt(d.size)


def test_kl_normal_matches_torch_autograd():
    torch = require("torch")
    rng = np.random.default_rng(3)
    mu, lv, std, mu_p, lv_p = _kl_inputs(rng, 5, 3)
    t = [torch.tensor(a, requires_grad=True) for a in (mu, lv, mu_p, lv_p)]
    D = torch.distributions
    kl_t = D.kl_divergence(D.Normal(t[0], torch.exp(0.5 * t[1])),
                           D.Normal(t[2], torch.exp(0.5 * t[3]))).sum(-1)
    (0.5 * kl_t.sum()).backward()
    kl, dmu, dlv, dmu_p, dlv_p = ops.kl_normal(mu, lv, std, mu_p, lv_p, 0.5, ws=ops.Workspace())
    assert relative_error(kl, kl_t.detach().numpy()) < 1e-12
    for g, tt in zip((dmu, dlv, dmu_p, dlv_p), t):
        assert relative_error(g, tt.grad.numpy()) < 1e-12


def test_kl_normal_on_every_backend(backend):
    rng = np.random.default_rng(4)
    host = _kl_inputs(rng, 3, 2)
    dev = [backend.asarray(a) for a in host]
    got = ops.kl_normal(*dev, 0.5)
    expect = ref.kl_normal(*host, 0.5)
    for a, b in zip(got, expect):
        assert a.dtype == backend.dtype
        np.testing.assert_allclose(to_numpy(a), b, rtol=backend.rtol * 10, atol=backend.rtol)


# --------------------------------------------------------------------------
# CVAE gradients: float64 central differences through loss_and_grads
# --------------------------------------------------------------------------
@settings(max_examples=15)
@given(depth=st.integers(0, 2), prior_depth=st.integers(0, 2), n_latent=st.integers(1, 3),
       n_classes=st.integers(1, 3), n_samples=st.integers(1, 3), dec=st.sampled_from(DECODERS),
       objective=st.sampled_from(["elbo", "iwae"]), activation=st.sampled_from(SMOOTH),
       one_hot=st.booleans(), seed=seeds)
def test_gradients_match_central_differences(depth, prior_depth, n_latent, n_classes, n_samples,
                                             dec, objective, activation, one_hot, seed):
    rng = np.random.default_rng(seed)
    N, D = 4, 3
    model = CVAE(D, n_classes, n_latent=n_latent, hidden=(5, 4)[:depth],
                 prior_hidden=(3, 2)[:prior_depth], activation=activation, decoder=dec[0],
                 decoder_var=dec[1], gaussian_var=0.7, objective=objective,
                 n_samples=n_samples, dtype="float64", random_state=seed).initialize()
    if dec[0] == "continuous_bernoulli":
        model.params["dec_b_out"] = rng.uniform(-0.6, 0.6, size=D)
    X = _data(rng, N, D, dec[0])
    y = rng.integers(0, n_classes, N) if one_hot else rng.standard_normal((N, n_classes))
    eps = rng.standard_normal((n_samples, N, n_latent))
    loss, grads = model.loss_and_grads(X, y=y, eps=eps)
    assert set(grads) == set(model.params)
    for k in grads:
        assert grads[k].shape == model.params[k].shape and grads[k].dtype == np.float64
    check_grads_resolvable(_fixed_eps_loss(model, X, y, eps), model.params, grads, float(loss),
                           h=1e-5, rtol=1e-6)


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_gradients_relu_benchmark_shape_packed_input(objective):
    """The training layout (packed [X | Y], workspace, grads_out), ReLU, sampled coordinates."""
    rng = np.random.default_rng(5)
    model = CVAE(30, 4, n_latent=3, hidden=(16,), objective=objective, n_samples=2,
                 dtype="float64", random_state=5).initialize()
    XY = model.pack(rng.random((8, 30)), rng.integers(0, 4, 8))
    eps = rng.standard_normal((2, 8, 3))
    grads_out = {k: np.full_like(v, np.nan) for k, v in model.params.items()}
    loss, grads = model.loss_and_grads(XY, eps=eps, grads_out=grads_out, check_input=False)
    assert grads is grads_out
    grads = {k: v.copy() for k, v in grads.items()}
    check_grads(lambda p: float(model.loss_and_grads(XY, eps=eps, params=p)[0]), model.params,
                grads, h=1e-5, rtol=1e-6, max_coords=20)


def test_gradients_on_every_backend(backend64):
    rng = np.random.default_rng(6)
    model = CVAE(5, 3, n_latent=2, hidden=(4,), prior_hidden=(3,), activation="tanh",
                 decoder="gaussian", decoder_var="output", objective="iwae", n_samples=2,
                 dtype="float64", random_state=6)
    X = backend64.asarray(rng.standard_normal((3, 5)))
    y = backend64.asarray(np.array([0, 2, 1]))
    eps = backend64.asarray(rng.standard_normal((2, 3, 2)))
    model.initialize(like=X)
    _, grads = model.loss_and_grads(X, y=y, eps=eps)
    check_grads(_fixed_eps_loss(model, X, y, eps), model.params, grads, h=1e-5, rtol=1e-6)


# --------------------------------------------------------------------------
# PyTorch autograd oracle
# --------------------------------------------------------------------------
def _torch_loss(torch, model, p, X, Y, eps):
    """-mean objective written from the equations with torch.distributions."""
    Fn = torch.nn.functional
    Dist = torch.distributions

    def act(a):
        return a if model.activation == "identity" else getattr(torch, model.activation)(a) \
            if model.activation == "tanh" else getattr(Fn, model.activation)(a)

    def trunk(h, prefix, n):
        for i in range(n):
            h = act(h @ p[f"{prefix}W{i}"] + p[f"{prefix}b{i}"])
        return h

    h = trunk(torch.cat([X, Y], 1), "enc_", len(model.hidden))
    mu, log_var = h @ p["enc_W_mu"] + p["enc_b_mu"], h @ p["enc_W_log_var"] + p["enc_b_log_var"]
    h = trunk(Y, "prior_", len(model.prior_hidden))
    mu_p = h @ p["prior_W_mu"] + p["prior_b_mu"]
    log_var_p = h @ p["prior_W_log_var"] + p["prior_b_log_var"]
    z = mu + torch.exp(0.5 * log_var) * eps  # (R, N, L)
    R = eps.shape[0]
    h = trunk(torch.cat([z, Y.expand(R, *Y.shape)], 2), "dec_", len(model.hidden))
    out = h @ p["dec_W_out"] + p["dec_b_out"]
    if model.decoder == "bernoulli":
        log_px = -Fn.binary_cross_entropy_with_logits(out, X.expand_as(out),
                                                      reduction="none").sum(-1)
    elif model.decoder == "continuous_bernoulli":
        log_px = Dist.ContinuousBernoulli(logits=out, validate_args=False).log_prob(X).sum(-1)
    else:
        if model.decoder_var == "fixed":
            lv = torch.full_like(out, math.log(model.gaussian_var))
        elif model.decoder_var == "learned":
            lv = p["dec_log_var"].expand_as(out)
        else:
            lv = h @ p["dec_W_log_var"] + p["dec_b_log_var"]
        log_px = Dist.Normal(out, torch.exp(0.5 * lv)).log_prob(X).sum(-1)
    q = Dist.Normal(mu, torch.exp(0.5 * log_var))
    prior = Dist.Normal(mu_p, torch.exp(0.5 * log_var_p))
    if model.objective == "elbo":
        return -(log_px.mean(0) - Dist.kl_divergence(q, prior).sum(-1)).mean()
    log_w = log_px + prior.log_prob(z).sum(-1) - q.log_prob(z).sum(-1)
    return -(torch.logsumexp(log_w, 0) - math.log(R)).mean()


@pytest.mark.oracle
@settings(max_examples=12)
@given(depth=st.integers(0, 2), prior_depth=st.integers(0, 1), n_samples=st.integers(1, 3),
       dec=st.sampled_from(DECODERS),
       objective=st.sampled_from(["elbo", "iwae"]), activation=st.sampled_from(
           ["relu", "tanh", "elu", "softplus"]), seed=seeds)
def test_loss_and_grads_match_torch_autograd(depth, prior_depth, n_samples, dec, objective,
                                             activation, seed):
    torch = require("torch")
    rng = np.random.default_rng(seed)
    N, D, C, L = 5, 6, 3, 2
    model = CVAE(D, C, n_latent=L, hidden=(5, 4)[:depth], prior_hidden=(3,)[:prior_depth],
                 activation=activation, decoder=dec[0], decoder_var=dec[1], gaussian_var=0.6,
                 objective=objective, n_samples=n_samples, dtype="float64",
                 random_state=seed).initialize()
    if dec[0] == "continuous_bernoulli":  # logits clear of torch's own Taylor window
        model.params["dec_b_out"] = rng.choice([-1.0, 1.0], size=D) * rng.uniform(0.5, 2.0, D)
        model.params["dec_W_out"] = model.params["dec_W_out"] * 0.01
    X = _data(rng, N, D, dec[0])
    y = rng.integers(0, C, N)
    eps = rng.standard_normal((n_samples, N, L))
    loss, grads = model.loss_and_grads(X, y=y, eps=eps)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    Y = torch.nn.functional.one_hot(torch.tensor(y), C).double()
    loss_t = _torch_loss(torch, model, p, torch.tensor(X), Y, torch.tensor(eps))
    loss_t.backward()
    assert float(loss) == pytest.approx(loss_t.item(), rel=1e-10)
    for k, g in grads.items():
        err = relative_error(g, p[k].grad.numpy())
        assert err < 1e-6, f"{k}: relative error {err:.2e}"


# --------------------------------------------------------------------------
# meaning
# --------------------------------------------------------------------------
def _vae_as_cvae(vae, cvae, rng):
    """CVAE weights for C = 1 (y = 1 for every row) that make it the VAE: the y rows of
    the first encoder and decoder layers are random and folded out of the biases;
    the prior head has zero weights, zero mean bias and log_var bias log s^2."""
    p = {k: v.copy() for k, v in vae.params.items()}
    L = vae.n_latent
    for name in ("enc_", "dec_"):
        first = f"{name}W0" if vae.hidden else None
        keys = [first] if first else ([f"{name}W_mu", f"{name}W_log_var"] if name == "enc_"
                                       else [k for k in ("dec_W_out", "dec_W_log_var") if k in p])
        for W_key in keys:
            b_key = W_key.replace("W", "b", 1)
            row = rng.standard_normal((1, p[W_key].shape[1]))
            p[W_key] = np.concatenate([p[W_key], row], axis=0)
            p[b_key] = p[b_key] - row[0]
    p["prior_W_mu"] = np.zeros((1, L))
    p["prior_b_mu"] = np.zeros(L)
    p["prior_W_log_var"] = np.zeros((1, L))
    p["prior_b_log_var"] = np.zeros(L)
    assert set(p) == set(cvae.params)
    return p


@pytest.mark.parametrize("dec", DECODERS)
@pytest.mark.parametrize("objective", ["elbo", "iwae"])
@pytest.mark.parametrize("hidden", [(), (5,)])
def test_uninformative_y_gives_the_vae(dec, objective, hidden):
    """C = 1 and y = 1 everywhere: the CVAE's loss, gradients, bounds and samples are the VAE's."""
    rng = np.random.default_rng(7)
    N, D, L, R = 6, 4, 2, 3
    kw = dict(n_latent=L, hidden=hidden, activation="tanh", decoder=dec[0], decoder_var=dec[1],
              gaussian_var=0.8, objective=objective, n_samples=R, dtype="float64",
              random_state=7)
    vae = VAE(D, **kw).initialize()
    cvae = CVAE(D, 1, **kw).initialize()
    cvae.params = _vae_as_cvae(vae, cvae, rng)
    X = _data(rng, N, D, dec[0])
    y = np.zeros(N, dtype=np.int64)
    eps = rng.standard_normal((R, N, L))
    loss_v, g_v = vae.loss_and_grads(X, eps=eps)
    loss_c, g_c = cvae.loss_and_grads(X, y=y, eps=eps)
    assert float(loss_c) == pytest.approx(float(loss_v), rel=1e-12)
    for k, g in g_v.items():
        np.testing.assert_allclose(g_c[k][:g.shape[0]], g, rtol=1e-10, atol=1e-12)
    # y = 1: each prior weight's gradient is its bias's
    np.testing.assert_allclose(g_c["prior_W_mu"][0], g_c["prior_b_mu"], rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(cvae.elbo(X, y, rng=3, n_samples=4), vae.elbo(X, rng=3, n_samples=4),
                               rtol=1e-12)
    np.testing.assert_allclose(cvae.log_marginal(X, y, n_importance=9, rng=4),
                               vae.log_marginal(X, n_importance=9, rng=4), rtol=1e-12)
    np.testing.assert_allclose(cvae.encode(X, y)[0], vae.encode(X)[0], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(cvae.sample(y, rng=5, mean=True),
                               vae.decode(np.random.default_rng(5).standard_normal((N, L))),
                               rtol=1e-12, atol=1e-14)


def test_elbo_below_importance_sampled_log_marginal():
    rng = np.random.default_rng(8)
    model = CVAE(6, 3, n_latent=2, hidden=(8,), prior_hidden=(4,), dtype="float64",
                 random_state=8).initialize()
    X, y = rng.random((5, 6)), rng.integers(0, 3, 5)
    elbo = model.elbo(X, y, rng=0, n_samples=4000)
    lm = model.log_marginal(X, y, n_importance=4000, rng=1)
    assert np.all(elbo < lm), (elbo, lm)


def test_importance_weights_average_to_minus_the_analytic_kl():
    """E_q[log p(z|y) - log q(z|x, y)] = -KL(q || p(z|y)): the IWAE terms agree with the KL."""
    rng = np.random.default_rng(9)
    model = CVAE(6, 3, n_latent=2, hidden=(5,), prior_hidden=(4,), dtype="float64",
                 random_state=9).initialize()
    X, y = rng.random((4, 6)), rng.integers(0, 3, 4)
    eps = rng.standard_normal((100000, 4, 2))
    f = model._forward(np, model.pack(X, y), eps, model.params)
    terms = model._log_pz_minus_log_qz(np, f)  # (R, N)
    kl = model._kl(f)
    err = 4 * terms.std(axis=0) / math.sqrt(eps.shape[0])
    assert np.all(np.abs(terms.mean(axis=0) + kl) < err), (terms.mean(axis=0), kl)


def test_training_learns_class_conditional_samples():
    """Two classes with opposite binary prototypes: a trained CVAE's samples of class c
    look like prototype c, and the class-conditional bound beats the wrong label."""
    rng = np.random.default_rng(10)
    protos = np.stack([np.tile([1.0, 0.0], 8), np.tile([0.0, 1.0], 8)])  # (2, 16)
    y = rng.integers(0, 2, 800)
    X = np.clip(protos[y] + 0.05 * rng.standard_normal((800, 16)), 0, 1).astype(np.float32)
    model = CVAE(16, 2, n_latent=2, hidden=(16,), random_state=0)
    model.fit(X, y, epochs=6, batch_size=32, lr=1e-2, random_state=0, progress=False,
              validation_data=(X[:100], y[:100]))
    assert model.history_.train_loss[-1] < model.history_.train_loss[0]
    for c in (0, 1):
        means = to_numpy(model.sample(np.full(200, c), rng=c, mean=True)).mean(axis=0)
        assert np.abs(means - protos[c]).max() < 0.25, (c, means)
    right = model.elbo(X[:50], y[:50], rng=0, n_samples=10)
    wrong = model.elbo(X[:50], 1 - y[:50], rng=0, n_samples=10)
    assert np.all(right > wrong)


# --------------------------------------------------------------------------
# backends, the fused path, training, io, errors
# --------------------------------------------------------------------------
@settings(max_examples=10)
@given(depth=st.integers(0, 2), N=st.integers(1, 12), dec=st.sampled_from(DECODERS),
       objective=st.sampled_from(["elbo", "iwae"]), n_samples=st.integers(1, 3), seed=seeds)
def test_numpy_float32_path_equals_reference_path(depth, N, dec, objective, n_samples, seed):
    """NumPy float32 (numba kernels, workspace, grads_out) vs the array-API reference path."""
    strict = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(seed)
    D, C, L = 13, 4, 3
    kw = dict(n_latent=L, hidden=(9, 7)[:depth], prior_hidden=(5,), activation="elu",
              decoder=dec[0], decoder_var=dec[1], objective=objective, n_samples=n_samples)
    model = CVAE(D, C, random_state=seed, **kw).initialize()
    X = _data(rng, N, D, dec[0]).astype(np.float32)
    y = rng.integers(0, C, N)
    eps = rng.standard_normal((n_samples, N, L)).astype(np.float32)
    grads_out = {k: np.full_like(v, np.nan) for k, v in model.params.items()}
    loss_f, grads_f = model.loss_and_grads(X, y=y, eps=eps, grads_out=grads_out)
    other = CVAE(D, C, **kw)
    other.params = {k: strict.asarray(v) for k, v in model.params.items()}
    loss_r, grads_r = other.loss_and_grads(strict.asarray(X), y=strict.asarray(y),
                                           eps=strict.asarray(eps))
    assert loss_f.dtype == np.float32
    assert float(loss_f) == pytest.approx(float(to_numpy(loss_r)), rel=1e-5, abs=1e-5)
    scale = max(float(np.max(np.abs(to_numpy(g)))) for g in grads_r.values())
    for k in grads_r:
        assert grads_f[k].dtype == np.float32
        assert float(np.max(np.abs(grads_f[k] - to_numpy(grads_r[k])))) <= 1e-4 * scale, k


def test_loss_and_grads_keep_dtype_and_device(backend):
    rng = np.random.default_rng(12)
    model = CVAE(6, 3, n_latent=2, hidden=(5,), objective="iwae", n_samples=3,
                 dtype=backend.dtype_name, random_state=0)
    X = backend.asarray(rng.random((4, 6)))
    y = backend.asarray(np.array([0, 1, 2, 1]))
    loss, grads = model.loss_and_grads(X, rng=0, y=y)
    assert loss.dtype == backend.dtype
    for k, g in grads.items():
        assert g.dtype == backend.dtype and g.shape == model.params[k].shape
    assert model.elbo(X, y, rng=0).dtype == backend.dtype
    assert model.log_marginal(X, y, n_importance=5, rng=0, batch_size=3).shape == (4,)
    s = model.sample(y, rng=0)
    assert s.shape == (4, 6) and s.dtype == backend.dtype
    mu_p, _ = model.prior(y)
    assert mu_p.shape == (4, 2)


def test_fit_on_simulated_device_float32():
    strict = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(13)
    dev = strict.Device("device1")
    X = strict.asarray(rng.random((48, 10)), dtype=strict.float32, device=dev)
    y = strict.asarray(rng.integers(0, 3, 48), device=dev)
    model = CVAE(10, 3, n_latent=2, hidden=(8,), random_state=0)
    model.fit(X, y, epochs=2, batch_size=16, lr=1e-2, random_state=0, progress=False,
              dynamic_binarization=True)
    assert model.params["enc_W0"].dtype == strict.float32
    assert all(math.isfinite(v) for v in model.history_.train_loss)


def test_fit_is_reproducible_and_saves(tmp_path):
    from lvm_core import io

    rng = np.random.default_rng(15)
    X, y = rng.random((64, 8)).astype(np.float32), rng.integers(0, 3, 64)
    a = CVAE(8, 3, n_latent=2, hidden=(4,), random_state=0).fit(X, y, epochs=2, batch_size=16,
                                                                random_state=0, progress=False)
    b = CVAE(8, 3, n_latent=2, hidden=(4,), random_state=0).fit(X, y, epochs=2, batch_size=16,
                                                                random_state=0, progress=False)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    io.save(a, tmp_path / "cvae.h5")
    loaded = io.load(tmp_path / "cvae.h5", expected_type=CVAE)
    assert loaded.get_params() == a.get_params()
    np.testing.assert_array_equal(loaded.elbo(X, y, rng=0), a.elbo(X, y, rng=0))


def test_bad_input_is_named():
    model = CVAE(5, 3, n_latent=2, hidden=(3,))
    X = np.zeros((2, 5), np.float32)
    with pytest.raises(ValueError, match="n_classes=3"):
        model.loss_and_grads(X, rng=0, y=np.array([0, 3]))
    with pytest.raises(ValueError, match="packed"):
        model.loss_and_grads(X, rng=0)
    with pytest.raises(TypeError, match="integer class labels"):
        model.elbo(X, np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match="one label per row"):
        model.elbo(X, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.elbo(np.full((2, 5), 2.0), np.array([0, 1]))
    with pytest.raises(TypeError, match="pair"):
        model.fit(X, np.array([0, 1]), validation_data=X, progress=False)
    with pytest.raises((ValueError, TypeError), match="n_classes"):
        CVAE(5, 0)
    with pytest.raises((ValueError, TypeError), match="prior_hidden"):
        CVAE(5, 2, prior_hidden="3")
