"""Per-datapoint SVI (lvm_core.models.svi): float64 central differences through
the loss the optimiser steps on, PyTorch autograd with identical weights and
eps, what it means (the SVI ELBO of every point >= its amortised ELBO; on a
linear-Gaussian decoder the optimum is the known mean-field solution and the
gaps are exact), backends and errors.

References: Cremer, Li & Duvenaud 2018; Kingma & Welling 2014; Hoffman et al. 2013.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core import ops
from lvm_core.backend import to_numpy
from lvm_core.gradcheck import check_grads, check_grads_resolvable, relative_error
from lvm_core.models.svi import fit_local, inference_gaps, local_elbo, svi_loss_and_grads
from lvm_core.models.vae import VAE

from .conftest import require

seeds = st.integers(min_value=0, max_value=2**32 - 1)
DECODERS = [("bernoulli", "fixed"), ("continuous_bernoulli", "fixed"), ("gaussian", "fixed"),
            ("gaussian", "learned"), ("gaussian", "output")]


def _data(rng, N, D, decoder):
    return rng.standard_normal((N, D)) if decoder == "gaussian" else rng.random((N, D))


@settings(max_examples=20)
@given(depth=st.integers(0, 2), n_latent=st.integers(1, 3), n_samples=st.integers(1, 3),
       dec=st.sampled_from(DECODERS), activation=st.sampled_from(["tanh", "softplus", "sigmoid"]),
       prior_var=st.sampled_from([1.0, 0.5]), seed=seeds)
def test_gradients_match_central_differences(depth, n_latent, n_samples, dec, activation,
                                             prior_var, seed):
    """d(-sum_i ELBO_i)/d(mu, log_var) for fixed eps, through the workspace path fit_local uses."""
    rng = np.random.default_rng(seed)
    N, D = 4, 5
    model = VAE(D, n_latent=n_latent, hidden=(6, 4)[:depth], activation=activation,
                decoder=dec[0], decoder_var=dec[1], gaussian_var=0.7, prior_var=prior_var,
                dtype="float64", random_state=seed).initialize()
    if dec[0] == "continuous_bernoulli":
        model.params["dec_b_out"] = rng.uniform(-0.6, 0.6, size=D)
    X = _data(rng, N, D, dec[0])
    params = {"mu": rng.standard_normal((N, n_latent)),
              "log_var": 0.5 * rng.standard_normal((N, n_latent))}
    eps = rng.standard_normal((n_samples, N, n_latent))
    ws = ops.Workspace()
    grads_out = {"mu": np.full((N, n_latent), np.nan), "log_var": np.full((N, n_latent), np.nan)}
    loss, grads, elbo = svi_loss_and_grads(model, X, params, eps, ws, grads_out)
    assert grads["mu"] is grads_out["mu"]
    grads = {k: v.copy() for k, v in grads.items()}
    assert float(loss) == pytest.approx(-float(np.sum(elbo)), rel=1e-12)

    def f(p):
        return float(svi_loss_and_grads(model, X, p, eps, ws)[0])

    check_grads_resolvable(f, params, grads, float(loss), h=1e-5, rtol=1e-6)


def test_gradients_relu_decoder_sampled_coordinates():
    rng = np.random.default_rng(1)
    model = VAE(30, n_latent=4, hidden=(16,), dtype="float64", random_state=1).initialize()
    X = rng.random((6, 30))
    params = {"mu": rng.standard_normal((6, 4)), "log_var": 0.3 * rng.standard_normal((6, 4))}
    eps = rng.standard_normal((2, 6, 4))
    _, grads, _ = svi_loss_and_grads(model, X, params, eps, ops.Workspace())
    grads = {k: v.copy() for k, v in grads.items()}
    check_grads(lambda p: float(svi_loss_and_grads(model, X, p, eps)[0]), params, grads,
                h=1e-5, rtol=1e-6)


@pytest.mark.oracle
@pytest.mark.parametrize("dec", [d for d in DECODERS if d[0] != "continuous_bernoulli"])
def test_matches_torch_autograd(dec):
    torch = require("torch")
    Fn, Dist = torch.nn.functional, torch.distributions
    rng = np.random.default_rng(2)
    N, D, L, R = 5, 6, 3, 2
    model = VAE(D, n_latent=L, hidden=(7,), activation="tanh", decoder=dec[0],
                decoder_var=dec[1], gaussian_var=0.6, prior_var=0.8, dtype="float64",
                random_state=2).initialize()
    X = _data(rng, N, D, dec[0])
    params = {"mu": rng.standard_normal((N, L)), "log_var": 0.5 * rng.standard_normal((N, L))}
    eps = rng.standard_normal((R, N, L))
    loss, grads, _ = svi_loss_and_grads(model, X, params, eps, ops.Workspace())
    p = {k: torch.tensor(v) for k, v in model.params.items()}
    mu = torch.tensor(params["mu"], requires_grad=True)
    log_var = torch.tensor(params["log_var"], requires_grad=True)
    z = mu + torch.exp(0.5 * log_var) * torch.tensor(eps)
    h = torch.tanh(z @ p["dec_W0"] + p["dec_b0"])
    out = h @ p["dec_W_out"] + p["dec_b_out"]
    Xt = torch.tensor(X)
    if dec[0] == "bernoulli":
        log_px = -Fn.binary_cross_entropy_with_logits(out, Xt.expand_as(out),
                                                      reduction="none").sum(-1)
    else:
        lv = {"fixed": lambda: torch.full_like(out, math.log(0.6)),
              "learned": lambda: p["dec_log_var"].expand_as(out),
              "output": lambda: h @ p["dec_W_log_var"] + p["dec_b_log_var"]}[dec[1]]()
        log_px = Dist.Normal(out, torch.exp(0.5 * lv)).log_prob(Xt).sum(-1)
    q = Dist.Normal(mu, torch.exp(0.5 * log_var))
    prior = Dist.Normal(torch.zeros_like(mu), torch.full_like(mu, math.sqrt(0.8)))
    loss_t = -(log_px.mean(0) - Dist.kl_divergence(q, prior).sum(-1)).sum()
    loss_t.backward()
    assert float(loss) == pytest.approx(loss_t.item(), rel=1e-12)
    assert relative_error(grads["mu"], mu.grad.numpy()) < 1e-10
    assert relative_error(grads["log_var"], log_var.grad.numpy()) < 1e-10


# --------------------------------------------------------------------------
# meaning
# --------------------------------------------------------------------------
def _linear_gaussian(seed, D=4, L=2, s2x=0.5, s2=1.0):
    rng = np.random.default_rng(seed)
    model = VAE(D, n_latent=L, hidden=(), decoder="gaussian", gaussian_var=s2x, prior_var=s2,
                dtype="float64", random_state=seed).initialize()
    W = rng.standard_normal((L, D))
    b = rng.standard_normal(D)
    model.params["dec_W_out"], model.params["dec_b_out"] = W, b
    X = b + rng.standard_normal((6, L)) @ W * math.sqrt(s2) + \
        math.sqrt(s2x) * rng.standard_normal((6, D))
    return model, X, W, b


def test_linear_gaussian_decoder_reaches_the_mean_field_optimum():
    """p(x|z) = N(z W + b, s2x I), p(z) = N(0, s2 I): the posterior is N(m, Lambda^-1) with
    Lambda = I/s2 + W W^T / s2x, m = Lambda^-1 W (x - b) / s2x; the best factorised q has
    mean m and variances 1 / diag(Lambda) (the mean-field fixed point), and its ELBO is
    log p(x) - KL(q* || posterior) with log p(x) = log N(x; b, s2x I + s2 W^T W)."""
    s2x, s2 = 0.5, 1.0
    model, X, W, b = _linear_gaussian(3, s2x=s2x, s2=s2)
    L, D = W.shape
    res = fit_local(model, X, n_steps=2000, lr=0.2, lr_final=1e-4, n_samples=4,
                    random_state=0)
    Lam = np.eye(L) / s2 + W @ W.T / s2x
    Sigma = np.linalg.inv(Lam)
    m = (X - b) @ W.T @ Sigma / s2x  # (N, L)
    np.testing.assert_allclose(res.mu, m, atol=0.02)
    np.testing.assert_allclose(res.log_var, np.broadcast_to(-np.log(np.diag(Lam)), m.shape),
                               atol=0.05)
    # exact gaps at the mean-field optimum
    C = s2x * np.eye(D) + s2 * W.T @ W
    diff = X - b
    log_px = -0.5 * (D * math.log(2 * math.pi) + np.linalg.slogdet(C)[1]
                     + np.einsum("nd,de,ne->n", diff, np.linalg.inv(C), diff))
    var_q = 1.0 / np.diag(Lam)
    kl_q_post = 0.5 * (np.trace(Lam @ np.diag(var_q)) - L - np.sum(np.log(var_q))
                       + np.linalg.slogdet(Sigma)[1])
    elbo = local_elbo(model, X, res.mu, res.log_var, n_samples=20000, rng=1)
    np.testing.assert_allclose(elbo, log_px - kl_q_post, atol=0.03)
    assert kl_q_post > 0  # the approximation gap of a factorised q (correlated posterior)


def test_svi_elbo_is_at_least_the_amortised_elbo_of_every_point():
    """A briefly trained VAE (amortised q suboptimal): after SVI from the encoder's q, every
    point's ELBO (2000 common eps) is at least its amortised ELBO, and the gaps add up."""
    rng = np.random.default_rng(4)
    protos = (rng.random((4, 24)) > 0.5).astype(np.float32)
    X = np.clip(protos[rng.integers(0, 4, 400)] + 0.1 * rng.standard_normal((400, 24)), 0, 1)
    X = X.astype(np.float32)
    model = VAE(24, n_latent=3, hidden=(16,), random_state=0)
    model.fit(X, epochs=2, batch_size=32, lr=1e-2, random_state=0, progress=False)
    gaps = inference_gaps(model, X[:25], n_steps=300, n_samples=2, n_eval=2000,
                          n_importance=500, random_state=0)
    assert np.all(gaps["elbo_svi"] >= gaps["elbo_amortised"]), \
        gaps["elbo_svi"] - gaps["elbo_amortised"]
    assert gaps["amortisation_gap"].mean() > 0.02  # the encoder is visibly suboptimal
    np.testing.assert_allclose(gaps["approximation_gap"] + gaps["amortisation_gap"],
                               gaps["inference_gap"], rtol=1e-12, atol=1e-9)
    assert gaps["approximation_gap"].mean() > 0  # ELBO[q*] <= log p(x)
    assert len(gaps["result"].loss_trace) == 300


def test_runs_on_the_simulated_device_in_float32():
    strict = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(5)
    model = VAE(6, n_latent=2, hidden=(5,), random_state=0)
    X = strict.asarray(rng.random((4, 6)), dtype=strict.float32,
                       device=strict.Device("device1"))
    model.initialize(like=X)
    res = fit_local(model, X, n_steps=20, random_state=0)
    assert res.mu.dtype == strict.float32 and res.mu.device == X.device
    elbo = local_elbo(model, X, res.mu, res.log_var, n_samples=7, rng=0, batch_size=3)
    assert elbo.shape == (4,) and np.all(np.isfinite(to_numpy(elbo)))


def test_bad_input_is_named():
    from lvm_core.models.cvae import CVAE

    model = VAE(5, n_latent=2, hidden=(3,), random_state=0).initialize()
    X = np.zeros((3, 5), np.float32)
    with pytest.raises(ValueError, match=r"mu must have shape \(N, L\) = \(3, 2\)"):
        fit_local(model, X, mu=np.zeros((3, 3)), log_var=np.zeros((3, 2)))
    with pytest.raises(ValueError, match="n_steps"):
        fit_local(model, X, n_steps=0)
    with pytest.raises(ValueError, match="lr"):
        fit_local(model, X, lr=-1.0)
    with pytest.raises(TypeError, match="VAE"):
        fit_local(CVAE(5, 2).initialize(), X)
    with pytest.raises(ValueError, match="fit it"):
        fit_local(VAE(5), X)
