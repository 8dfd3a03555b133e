"""PyTorch autograd as an oracle for the VAE / IWAE losses and gradients
(identical weights and eps, float64, max-norm relative error < 1e-6).

The torch side is written independently from the equations (Kingma & Welling
2014; Burda et al. 2016; Loaiza-Ganem & Cunningham 2019) with torch.distributions
where it has them.  torch is a test-time dependency only.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core.gradcheck import relative_error
from lvm_core.models.vae import VAE

from .conftest import require

pytestmark = pytest.mark.oracle
RTOL = 1e-6
DECODERS = [("bernoulli", "fixed"), ("continuous_bernoulli", "fixed"), ("gaussian", "fixed"),
            ("gaussian", "learned"), ("gaussian", "output")]
ACT = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "softplus": "softplus",
       "elu": "elu", "identity": None}


@pytest.fixture(scope="module")
def torch():
    return require("torch")


def _torch_loss(torch, model, p, X, eps):
    """-mean objective written with torch ops and torch.distributions."""
    F = torch.nn.functional
    D = torch.distributions

    def act(a):
        name = ACT[model.activation]
        return a if name is None else getattr(F, name)(a)

    h = X
    for i in range(len(model.hidden)):
        h = act(h @ p[f"enc_W{i}"] + p[f"enc_b{i}"])
    mu = h @ p["enc_W_mu"] + p["enc_b_mu"]
    log_var = h @ p["enc_W_log_var"] + p["enc_b_log_var"]
    std = torch.exp(0.5 * log_var)
    z = mu + std * eps  # (R, N, L)
    h = z
    for i in range(len(model.hidden)):
        h = act(h @ p[f"dec_W{i}"] + p[f"dec_b{i}"])
    out = h @ p["dec_W_out"] + p["dec_b_out"]  # (R, N, D)
    if model.decoder == "bernoulli":
        log_px = -F.binary_cross_entropy_with_logits(out, X.expand_as(out),
                                                     reduction="none").sum(-1)
    elif model.decoder == "continuous_bernoulli":
        # lims=(0.4999, 0.5001) would use torch's own Taylor cut; compare away from 0 only
        log_px = D.ContinuousBernoulli(logits=out, validate_args=False).log_prob(X).sum(-1)
    else:
        if model.decoder_var == "fixed":
            lv = torch.full_like(out, math.log(model.gaussian_var))
        elif model.decoder_var == "learned":
            lv = p["dec_log_var"].expand_as(out)
        else:
            lv = h @ p["dec_W_log_var"] + p["dec_b_log_var"]
        log_px = D.Normal(out, torch.exp(0.5 * lv)).log_prob(X).sum(-1)
    s = math.sqrt(model.prior_var)
    prior = D.Normal(torch.zeros_like(mu), torch.full_like(mu, s))
    q = D.Normal(mu, std)
    if model.objective == "elbo":
        kl = D.kl_divergence(q, prior).sum(-1)  # (N,)
        return -(log_px.mean(0) - kl).mean()
    log_w = log_px + prior.log_prob(z).sum(-1) - q.log_prob(z).sum(-1)  # (R, N)
    k = eps.shape[0]
    return -(torch.logsumexp(log_w, 0) - math.log(k)).mean()


@settings(max_examples=20)
@given(depth=st.integers(min_value=0, max_value=3),
       width=st.integers(min_value=1, max_value=7),
       n_latent=st.integers(min_value=1, max_value=4),
       n_samples=st.integers(min_value=1, max_value=4),
       dec=st.sampled_from(DECODERS), objective=st.sampled_from(["elbo", "iwae"]),
       activation=st.sampled_from(sorted(ACT)), prior_var=st.sampled_from([1.0, 0.4]),
       seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_loss_and_grads_match_torch_autograd(torch, depth, width, n_latent, n_samples, dec,
                                             objective, activation, prior_var, seed):
    rng = np.random.default_rng(seed)
    N, Dx = 5, 6
    model = VAE(Dx, n_latent=n_latent, hidden=tuple(width + i for i in range(depth)),
                activation=activation, decoder=dec[0], decoder_var=dec[1], gaussian_var=0.6,
                prior_var=prior_var, objective=objective, n_samples=n_samples,
                dtype="float64", random_state=seed)
    model.initialize()
    if dec[0] == "continuous_bernoulli":  # keep logits clear of torch's own Taylor window
        model.params["dec_b_out"] = rng.choice([-1.0, 1.0], size=Dx) * rng.uniform(0.5, 2.0, Dx)
        model.params["dec_W_out"] = model.params["dec_W_out"] * 0.01
    X = rng.standard_normal((N, Dx)) if dec[0] == "gaussian" else rng.random((N, Dx))
    eps = rng.standard_normal((n_samples, N, n_latent))
    loss, grads = model.loss_and_grads(X, eps=eps)

    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    loss_t = _torch_loss(torch, model, p, torch.tensor(X), torch.tensor(eps))
    loss_t.backward()
    assert float(loss) == pytest.approx(loss_t.item(), rel=1e-10)
    for k, g in grads.items():
        err = relative_error(g, p[k].grad.numpy())
        assert err < RTOL, f"{k}: relative error {err:.2e}"


def test_benchmark_architecture_matches_torch_in_float32(torch):
    """784-400-20 Bernoulli ELBO, float32 fast path vs torch float32 autograd."""
    rng = np.random.default_rng(0)
    model = VAE(784, n_latent=20, hidden=(400,), random_state=0)
    model.initialize()
    X = rng.random((64, 784)).astype(np.float32)
    eps = rng.standard_normal((1, 64, 20)).astype(np.float32)
    loss, grads = model.loss_and_grads(X, eps=eps)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    loss_t = _torch_loss(torch, model, p, torch.tensor(X), torch.tensor(eps))
    loss_t.backward()
    assert float(loss) == pytest.approx(loss_t.item(), rel=1e-5)
    for k, g in grads.items():
        assert relative_error(g, p[k].grad.numpy()) < 1e-4, k
