"""GMVAE (lvm_core.models.gmvae): handwritten gradients against float64 central
differences and PyTorch autograd (exact, Gumbel-softmax and straight-through
estimators), and what the bounds mean: the exact bound equals a brute-force
sum over y (E_q[log p(y)] = -log K and the entropy of q(y|x) included), K = 1
equals a VAE, exact ELBO <= importance-sampled log p(x) -> the exact marginal
of a linear-Gaussian mixture, the Gumbel-softmax gradient tends to the exact
gradient as the temperature falls; backends; training and clustering.

References: Kingma et al. 2014 (M2); Shu 2016; Dilokthanakul et al. 2016;
Jang et al. 2017; Maddison et al. 2017; Burda et al. 2016.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core.backend import to_numpy
from lvm_core.gradcheck import check_grads, check_grads_resolvable, relative_error
from lvm_core.models.gmvae import GMVAE
from lvm_core.models.vae import VAE
from lvm_core.ops.gumbel import sample_gumbel

from .conftest import require

seeds = st.integers(min_value=0, max_value=2**32 - 1)
SMOOTH = ["tanh", "sigmoid", "softplus", "elu", "identity"]
DECODERS = ["bernoulli", "continuous_bernoulli", "gaussian"]


def _data(rng, N, D, decoder):
    return rng.standard_normal((N, D)) if decoder == "gaussian" else rng.random((N, D))


def _noise(rng, model, N, R=None):
    """Keyword noise for loss_and_grads: eps (and g for the relaxed objectives)."""
    R = model.n_samples if R is None else R
    K, L = model.n_components, model.n_latent
    if model.objective == "exact":
        return dict(eps=rng.standard_normal((R, N, K, L)))
    return dict(eps=rng.standard_normal((R, N, L)),
                g=sample_gumbel(rng, (R, N, K), like=np.zeros(1)))


def _model(seed, D, K, L, depth, width, activation, decoder, objective, R, tau=0.8):
    m = GMVAE(D, n_components=K, n_latent=L, hidden=tuple(width + i for i in range(depth)),
              activation=activation, decoder=decoder, gaussian_var=0.7, objective=objective,
              n_samples=R, temperature=tau, dtype="float64", random_state=seed)
    m.initialize()
    rng = np.random.default_rng(seed)
    m.params["prior_mu"] = rng.standard_normal((K, L))  # components well apart
    m.params["prior_log_var"] = rng.uniform(-0.5, 0.5, (K, L))
    if decoder == "continuous_bernoulli":  # logits on both sides of the Taylor threshold
        m.params["dec_b_out"] = rng.uniform(-0.6, 0.6, size=D)
    return m


# --------------------------------------------------------------------------
# gradients vs float64 central differences
# --------------------------------------------------------------------------
@settings(max_examples=20)
@given(depth=st.integers(0, 2), width=st.integers(1, 5), K=st.integers(1, 4),
       L=st.integers(1, 3), R=st.integers(1, 2), decoder=st.sampled_from(DECODERS),
       objective=st.sampled_from(["exact", "gumbel"]), activation=st.sampled_from(SMOOTH),
       seed=seeds)
def test_gradients_match_central_differences(depth, width, K, L, R, decoder, objective,
                                             activation, seed):
    rng = np.random.default_rng(seed)
    N, D = 3, 4
    m = _model(seed, D, K, L, depth, width, activation, decoder, objective, R)
    X = _data(rng, N, D, decoder)
    kw = _noise(rng, m, N)
    loss, grads = m.loss_and_grads(X, **kw)
    assert set(grads) == set(m.params)
    for k in grads:
        assert grads[k].shape == m.params[k].shape and grads[k].dtype == np.float64

    def f(p):
        return float(to_numpy(m.loss_and_grads(X, params=p, **kw)[0]))

    check_grads_resolvable(f, m.params, grads, float(loss), h=1e-5, rtol=1e-6)


def test_straight_through_gradients_of_the_forward_path():
    """Straight-through: every parameter that does not feed the logits of q(y|x) gets the
    exact gradient of the (hard-sample) forward loss; the logits get the surrogate
    (checked against torch below)."""
    rng = np.random.default_rng(1)
    m = _model(1, 5, 3, 2, 0, 1, "tanh", "bernoulli", "straight_through", 2)
    X = rng.random((4, 5))
    kw = _noise(rng, m, 4)
    loss, grads = m.loss_and_grads(X, **kw)
    keys = [k for k in m.params if k not in ("enc_W_y", "enc_b_y")]

    def f(p):
        return float(m.loss_and_grads(X, params={**m.params, **p}, **kw)[0])

    check_grads_resolvable(f, {k: m.params[k] for k in keys}, {k: grads[k] for k in keys},
                           float(loss), h=1e-5, rtol=1e-6)


def test_gradients_on_simulated_device(backend64):
    rng = np.random.default_rng(2)
    for objective in ("exact", "gumbel"):
        m = GMVAE(5, n_components=3, n_latent=2, hidden=(4,), activation="tanh",
                  objective=objective, n_samples=2, dtype="float64", random_state=2)
        X = backend64.asarray(rng.random((3, 5)))
        m.initialize(like=X)
        kw = {k: backend64.asarray(v) for k, v in _noise(rng, m, 3).items()}
        _, grads = m.loss_and_grads(X, **kw)
        check_grads(lambda p: float(to_numpy(m.loss_and_grads(X, params=p, **kw)[0])),
                    m.params, grads, h=1e-5, rtol=1e-6)


# --------------------------------------------------------------------------
# PyTorch autograd oracle (identical weights and noise)
# --------------------------------------------------------------------------
def _torch_loss(torch, m, p, X, eps, g=None, tau=None):
    """-mean objective written from the equations with torch ops / torch.distributions."""
    F = torch.nn.functional
    Dist = torch.distributions
    act = {"tanh": torch.tanh, "sigmoid": torch.sigmoid, "softplus": F.softplus,
           "elu": F.elu, "identity": lambda a: a, "relu": torch.relu}[m.activation]
    K = m.n_components
    h = X
    for i in range(len(m.hidden)):
        h = act(h @ p[f"enc_W{i}"] + p[f"enc_b{i}"])
    logits = h @ p["enc_W_y"] + p["enc_b_y"]
    log_pi = torch.log_softmax(logits, -1)
    pi = log_pi.exp()
    mu_h = h @ p["enc_W_mu"] + p["enc_b_mu"]
    lv_h = h @ p["enc_W_log_var"] + p["enc_b_log_var"]

    def log_px(z):
        hd = z
        for i in range(len(m.hidden)):
            hd = act(hd @ p[f"dec_W{i}"] + p[f"dec_b{i}"])
        out = hd @ p["dec_W_out"] + p["dec_b_out"]
        x = X.expand_as(out) if out.dim() == 2 else X[None, :, None, :].expand_as(out) \
            if out.dim() == 4 else X[None].expand_as(out)
        if m.decoder == "bernoulli":
            return -F.binary_cross_entropy_with_logits(out, x, reduction="none").sum(-1)
        if m.decoder == "continuous_bernoulli":
            return Dist.ContinuousBernoulli(logits=out, validate_args=False).log_prob(x).sum(-1)
        return Dist.Normal(out, math.sqrt(m.gaussian_var)).log_prob(x).sum(-1)

    if g is None:  # exact: sum over y
        mu = mu_h[:, None, :] + p["enc_C_mu"]
        lv = lv_h[:, None, :] + p["enc_C_log_var"]
        z = mu + torch.exp(0.5 * lv) * eps  # (R, N, K, L)
        q = Dist.Normal(mu, torch.exp(0.5 * lv))
        prior = Dist.Normal(p["prior_mu"], torch.exp(0.5 * p["prior_log_var"]))
        kl = Dist.kl_divergence(q, prior).sum(-1)  # (N, K)
        elbo = (pi * (log_px(z).mean(0) - kl + math.log(1.0 / K) - log_pi)).sum(-1)
        return -elbo.mean()
    y_soft = torch.softmax((logits + g) / tau, -1)  # (R, N, K)
    if m.objective == "straight_through":
        y_hard = torch.zeros_like(y_soft).scatter_(-1, y_soft.argmax(-1, keepdim=True), 1.0)
        y = y_hard - y_soft.detach() + y_soft
    else:
        y = y_soft
    mu = mu_h + y @ p["enc_C_mu"]
    lv = lv_h + y @ p["enc_C_log_var"]
    z = mu + torch.exp(0.5 * lv) * eps  # (R, N, L)
    q = Dist.Normal(mu, torch.exp(0.5 * lv))
    prior = Dist.Normal(y @ p["prior_mu"], torch.exp(0.5 * (y @ p["prior_log_var"])))
    kl = Dist.kl_divergence(q, prior).sum(-1)  # (R, N)
    kl_y = Dist.kl_divergence(Dist.Categorical(logits=logits),
                              Dist.Categorical(probs=torch.full_like(pi, 1.0 / K)))
    return -((log_px(z) - kl).mean(0) - kl_y).mean()


@pytest.mark.oracle
@settings(max_examples=15)
@given(depth=st.integers(0, 2), width=st.integers(1, 5), K=st.integers(1, 4),
       L=st.integers(1, 3), R=st.integers(1, 2), decoder=st.sampled_from(DECODERS),
       objective=st.sampled_from(["exact", "gumbel", "straight_through"]),
       activation=st.sampled_from(SMOOTH + ["relu"]), seed=seeds)
def test_loss_and_grads_match_torch_autograd(depth, width, K, L, R, decoder, objective,
                                             activation, seed):
    torch = require("torch")
    rng = np.random.default_rng(seed)
    N, D = 4, 5
    m = _model(seed, D, K, L, depth, width, activation, decoder, objective, R, tau=0.6)
    if decoder == "continuous_bernoulli":  # keep logits clear of torch's own Taylor window
        m.params["dec_b_out"] = rng.choice([-1.0, 1.0], size=D) * rng.uniform(0.5, 2.0, D)
        m.params["dec_W_out"] = m.params["dec_W_out"] * 0.01
    X = _data(rng, N, D, decoder)
    kw = _noise(rng, m, N)
    loss, grads = m.loss_and_grads(X, **kw)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in m.params.items()}
    tkw = {k: torch.tensor(v) for k, v in kw.items()}
    loss_t = _torch_loss(torch, m, p, torch.tensor(X), tkw["eps"], tkw.get("g"), 0.6)
    loss_t.backward()
    assert float(loss) == pytest.approx(loss_t.item(), rel=1e-10, abs=1e-12)
    for k, gk in grads.items():
        ref = p[k].grad.numpy() if p[k].grad is not None else np.zeros_like(gk)
        err = relative_error(gk, ref)
        assert err < 1e-6, f"{k}: relative error {err:.2e}"


# --------------------------------------------------------------------------
# meaning
# --------------------------------------------------------------------------
def _brute_force_elbo(m, X, eps, with_log_py=True):
    """The exact bound written out with loops over examples and components (NumPy)."""
    p = m.params
    K = m.n_components
    act = {"tanh": np.tanh, "identity": lambda a: a}[m.activation]
    out = []
    for n in range(X.shape[0]):
        h = X[n]
        for i in range(len(m.hidden)):
            h = act(h @ p[f"enc_W{i}"] + p[f"enc_b{i}"])
        a = h @ p["enc_W_y"] + p["enc_b_y"]
        pi = np.exp(a - a.max()) / np.exp(a - a.max()).sum()
        total = 0.0
        for k in range(K):
            onehot = np.eye(K)[k]
            hy = np.concatenate([h, onehot])  # q(z|x, y) is affine in [h, onehot(y)]
            W_mu = np.concatenate([p["enc_W_mu"], p["enc_C_mu"]])
            W_lv = np.concatenate([p["enc_W_log_var"], p["enc_C_log_var"]])
            mu = hy @ W_mu + p["enc_b_mu"]
            lv = hy @ W_lv + p["enc_b_log_var"]
            lpx = 0.0
            for r in range(eps.shape[0]):
                z = mu + np.exp(lv / 2) * eps[r, n, k]
                hd = z
                for i in range(len(m.hidden)):
                    hd = act(hd @ p[f"dec_W{i}"] + p[f"dec_b{i}"])
                logit = hd @ p["dec_W_out"] + p["dec_b_out"]
                lpx += np.sum(X[n] * logit - np.log1p(np.exp(logit))) / eps.shape[0]
            mp, lvp = p["prior_mu"][k], p["prior_log_var"][k]
            kl = 0.5 * np.sum(lvp - lv + (np.exp(lv) + (mu - mp) ** 2) / np.exp(lvp) - 1.0)
            log_py = math.log(1.0 / K) if with_log_py else 0.0
            total += pi[k] * (lpx - kl + log_py - math.log(pi[k]))
        out.append(total)
    return np.array(out)


def test_exact_bound_equals_brute_force_including_log_p_y():
    """The bound is sum_k pi_k [E log p(x|z) - KL_k + log(1/K) - log pi_k]: the
    E_q[log p(y)] = -log K term is there (a bound without it is log K too high)."""
    rng = np.random.default_rng(3)
    K = 10
    m = _model(3, 6, K, 2, 1, 4, "tanh", "bernoulli", "exact", 2)
    X = rng.random((5, 6))
    eps = rng.standard_normal((2, 5, K, 2))
    import array_api_compat.numpy as xp

    elbo = m._exact_forward(xp, X, eps, m.params)["elbo"]
    loss, _ = m.loss_and_grads(X, eps=eps)
    brute = _brute_force_elbo(m, X, eps)
    np.testing.assert_allclose(elbo, brute, rtol=1e-12)
    assert float(loss) == pytest.approx(-brute.mean(), rel=1e-12)
    without = _brute_force_elbo(m, X, eps, with_log_py=False)
    np.testing.assert_allclose(without - brute, math.log(K), rtol=1e-12)  # 2.30 nats
    np.testing.assert_allclose(m.elbo(X, rng=0, n_samples=1).shape, (5,))


@pytest.mark.parametrize("objective", ["exact", "gumbel", "straight_through"])
def test_reconstruction_gradient_reaches_the_encoder(objective):
    """z is reparameterised (z = mu + exp(log_var/2) eps), so log p(x|z) sends a gradient
    to the q(z|x, y) head: with the decoder's output weights zeroed (log p(x|z) no longer
    depends on z) the head's gradient is the KL's alone and differs from the full one."""
    rng = np.random.default_rng(15)
    m = _model(15, 6, 3, 2, 1, 4, "tanh", "bernoulli", objective, 1)
    X = rng.random((5, 6))
    kw = _noise(rng, m, 5)
    _, full = m.loss_and_grads(X, **kw)
    full = {k: v.copy() for k, v in full.items()}
    p = dict(m.params, dec_W_out=np.zeros_like(m.params["dec_W_out"]))
    _, kl_only = m.loss_and_grads(X, params=p, **kw)
    for key in ("enc_W_mu", "enc_b_mu", "enc_W_log_var", "enc_C_mu"):
        diff = np.max(np.abs(full[key] - kl_only[key]))
        assert diff > 1e-3 * np.max(np.abs(full[key])), key


@pytest.mark.parametrize("objective", ["exact", "gumbel", "straight_through"])
def test_one_component_equals_a_vae(objective):
    """K = 1, C = 0, p(z|y) = N(0, I): q(y|x) = 1, entropy 0, log p(y) = 0, and the
    loss and every shared gradient equal the VAE's; the logits get no gradient."""
    rng = np.random.default_rng(4)
    m = GMVAE(6, n_components=1, n_latent=2, hidden=(5,), activation="tanh",
              objective=objective, n_samples=2, dtype="float64", random_state=4).initialize()
    for k in ("enc_C_mu", "enc_C_log_var", "prior_mu", "prior_log_var"):
        m.params[k] = np.zeros_like(m.params[k])
    v = VAE(6, n_latent=2, hidden=(5,), activation="tanh", n_samples=2,
            dtype="float64").initialize()
    for k in v.params:
        v.params[k] = m.params[k].copy()
    X = rng.random((4, 6))
    e = rng.standard_normal((2, 4, 2))
    kw = dict(eps=e[:, :, None, :]) if objective == "exact" else \
        dict(eps=e, g=rng.standard_normal((2, 4, 1)))
    loss, grads = m.loss_and_grads(X, **kw)
    loss_v, grads_v = v.loss_and_grads(X, eps=e)
    assert float(loss) == pytest.approx(float(loss_v), rel=1e-12)
    for k in grads_v:
        np.testing.assert_allclose(grads[k], grads_v[k], rtol=1e-10, atol=1e-14)
    assert np.all(grads["enc_W_y"] == 0) and np.all(grads["enc_b_y"] == 0)


def test_reparameterised_z_has_the_posterior_moments():
    """z = mu + exp(log_var/2) eps per component (no non-reparameterised draw)."""
    rng = np.random.default_rng(5)
    m = _model(5, 6, 3, 2, 1, 4, "tanh", "bernoulli", "exact", 1)
    X = rng.random((2, 6))
    eps = rng.standard_normal((20000, 2, 3, 2))
    import array_api_compat.numpy as xp

    f = m._exact_forward(xp, X, eps, m.params)
    z = f["z"].reshape(20000, 2, 3, 2)
    np.testing.assert_allclose(z.mean(axis=0), f["mu"], atol=5 * np.sqrt(np.exp(
        f["log_var"]).max() / 20000))
    np.testing.assert_allclose(z.var(axis=0), np.exp(f["log_var"]), rtol=0.05)


def test_exact_elbo_below_importance_sampled_log_marginal():
    rng = np.random.default_rng(6)
    m = _model(6, 12, 4, 3, 1, 8, "tanh", "bernoulli", "exact", 1)
    X = rng.random((40, 12))
    elbo = m.elbo(X, rng=0, n_samples=100)
    lm = [m.log_marginal(X, n_importance=S, rng=S) for S in (1, 20, 200)]
    assert elbo.shape == lm[0].shape == (40,)
    assert np.all(elbo < lm[2] + 0.05)
    means = [float(np.mean(x)) for x in lm]
    assert float(np.mean(elbo)) < means[0] < means[1] < means[2], (float(np.mean(elbo)), means)


def test_importance_sampling_converges_to_the_exact_mixture_marginal():
    """Linear Gaussian decoder x = z W + b + noise, p(z|k) = N(mu_k, v I): p(x) = 1/K
    sum_k N(x; mu_k W + b, v W^T W + s^2 I).  With q(z|x, k) the exact posterior (diagonal
    because W W^T is) every importance weight is p(x|k) and the estimate is exact; with a
    shifted, wider proposal the estimator converges to it."""
    rng = np.random.default_rng(7)
    D, K, L, s2, v = 4, 3, 2, 0.5, 0.7
    m = GMVAE(D, n_components=K, n_latent=L, hidden=(), activation="identity",
              decoder="gaussian", gaussian_var=s2, dtype="float64", random_state=7).initialize()
    W = np.linalg.qr(rng.standard_normal((D, L)))[0].T * np.array([[1.5], [0.7]])  # (L, D)
    b = rng.standard_normal(D)
    mus = 2.0 * rng.standard_normal((K, L))
    X = rng.standard_normal((6, D)) + b
    C = v * W.T @ W + s2 * np.eye(D)
    _, logdet = np.linalg.slogdet(C)
    comps = []
    for k in range(K):
        r = X - (mus[k] @ W + b)
        comps.append(-0.5 * (D * math.log(2 * math.pi) + logdet
                             + np.sum(r @ np.linalg.inv(C) * r, axis=1)) - math.log(K))
    exact = np.logaddexp.reduce(np.stack(comps), axis=0)
    # exact posterior of component k: N(Sigma (mu_k / v + W (x - b) / s2), Sigma)
    Sigma = np.linalg.inv(np.eye(L) / v + W @ W.T / s2)
    assert np.allclose(Sigma, np.diag(np.diag(Sigma)))
    A = Sigma @ W / s2  # (L, D)
    # q(z|x, k): mu = x A^T + C_mu[k] (the y-columns of the head carry the component's part)
    m.params.update(dec_W_out=W, dec_b_out=b, prior_mu=mus,
                    prior_log_var=np.full((K, L), math.log(v)),
                    enc_W_mu=A.T.copy(), enc_b_mu=np.zeros(L), enc_W_log_var=np.zeros((D, L)),
                    enc_b_log_var=np.zeros(L), enc_C_mu=mus @ Sigma.T / v - b @ A.T,
                    enc_C_log_var=np.tile(np.log(np.diag(Sigma)), (K, 1)))
    np.testing.assert_allclose(m.log_marginal(X, n_importance=2, rng=0), exact, rtol=1e-10)
    m.params["enc_C_log_var"] = m.params["enc_C_log_var"] + math.log(2.0)
    m.params["enc_C_mu"] = m.params["enc_C_mu"] + 0.2
    est = m.log_marginal(X, n_importance=20000, rng=1, batch_size=2)
    np.testing.assert_allclose(est, exact, atol=0.05)


def test_gumbel_softmax_gradient_tends_to_the_exact_gradient_as_tau_falls():
    """K = 3, L = 1, one x: the exact gradient enumerates y; the mean Gumbel-softmax
    gradient over 40000 draws (same eps) approaches it as tau falls (bias O(tau))."""
    rng = np.random.default_rng(8)
    D, K, L, M = 4, 3, 1, 40000
    m = GMVAE(D, n_components=K, n_latent=L, hidden=(), objective="exact", dtype="float64",
              random_state=3).initialize()
    m.params["enc_b_y"] = np.array([0.5, -0.3, 0.1])
    m.params["prior_mu"] = rng.standard_normal((K, L))
    x = rng.random((1, D))
    e = rng.standard_normal(L)
    _, g_exact = m.loss_and_grads(x, eps=np.broadcast_to(e, (1, 1, K, L)).copy())
    g_exact = {k: v.copy() for k, v in g_exact.items()}

    def flat(g):
        return np.concatenate([g[k].ravel() for k in sorted(g)])

    m.set_params(objective="gumbel")
    g = sample_gumbel(np.random.default_rng(9), (1, M, K), like=x)
    errors = []
    for tau in (2.0, 0.5, 0.1, 0.03):
        _, g_gs = m.loss_and_grads(np.repeat(x, M, axis=0),
                                   eps=np.broadcast_to(e, (1, M, L)).copy(), g=g,
                                   temperature=tau)
        errors.append(relative_error(flat(g_gs), flat(g_exact)))
    assert errors == sorted(errors, reverse=True), errors
    assert errors[0] > 0.05 and errors[-1] < min(0.02, errors[0] / 10), errors


# --------------------------------------------------------------------------
# NumPy fused path == array-API reference; backends
# --------------------------------------------------------------------------
@settings(max_examples=10)
@given(K=st.integers(1, 5), L=st.integers(1, 4), N=st.integers(1, 12), R=st.integers(1, 2),
       objective=st.sampled_from(["exact", "gumbel", "straight_through"]),
       decoder=st.sampled_from(DECODERS), seed=seeds)
def test_numpy_float32_path_equals_reference_path(K, L, N, R, objective, decoder, seed):
    strict = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(seed)
    D = 11
    kw = dict(n_components=K, n_latent=L, hidden=(9,), activation="relu", decoder=decoder,
              objective=objective, n_samples=R)
    m = GMVAE(D, random_state=seed, **kw).initialize()
    X = _data(rng, N, D, decoder).astype(np.float32)
    noise = {k: v.astype(np.float32) for k, v in _noise(rng, m, N).items()}
    grads_out = {k: np.full_like(v, np.nan) for k, v in m.params.items()}
    loss_f, grads_f = m.loss_and_grads(X, grads_out=grads_out, **noise)
    assert grads_f is grads_out
    ref = GMVAE(D, **kw)
    ref.params = {k: strict.asarray(v) for k, v in m.params.items()}
    loss_r, grads_r = ref.loss_and_grads(strict.asarray(X),
                                         **{k: strict.asarray(v) for k, v in noise.items()})
    assert float(loss_f) == pytest.approx(float(to_numpy(loss_r)), rel=1e-5, abs=1e-4)
    scale = max(float(np.max(np.abs(to_numpy(g)))) for g in grads_r.values())
    for k in grads_r:
        assert grads_f[k].dtype == np.float32
        diff = float(np.max(np.abs(grads_f[k] - to_numpy(grads_r[k]))))
        assert diff <= 1e-4 * scale, (k, diff, scale)


@pytest.mark.parametrize("objective", ["exact", "straight_through"])
def test_loss_grads_and_evaluation_keep_dtype_and_device(backend, objective):
    rng = np.random.default_rng(10)
    m = GMVAE(6, n_components=3, n_latent=2, hidden=(5,), objective=objective, n_samples=2,
              dtype=backend.dtype_name, random_state=0)
    X = backend.asarray(rng.random((4, 6)))
    loss, grads = m.loss_and_grads(X, rng=0)
    assert loss.dtype == backend.dtype
    for k, g in grads.items():
        assert g.dtype == backend.dtype and g.shape == m.params[k].shape
    noise = _noise(rng, m, 4)
    loss, _ = m.loss_and_grads(X, **{k: backend.asarray(v) for k, v in noise.items()})
    ref = GMVAE(6, n_components=3, n_latent=2, hidden=(5,), objective=objective, n_samples=2,
                dtype="float64")
    ref.params = {k: to_numpy(v).astype(np.float64) for k, v in m.params.items()}
    ref_loss, _ = ref.loss_and_grads(to_numpy(X).astype(np.float64), **noise)
    assert float(to_numpy(loss)) == pytest.approx(float(ref_loss), rel=backend.rtol * 10)
    assert m.elbo(X, rng=0).shape == (4,) and m.elbo(X, rng=0).dtype == backend.dtype
    lm = m.log_marginal(X, n_importance=3, rng=0, batch_size=3)
    assert lm.shape == (4,) and lm.dtype == backend.dtype
    assert m.predict(X).shape == (4,)
    x, y = m.sample(5, rng=0)
    assert x.shape == (5, 6) and x.dtype == backend.dtype and y.shape == (5,)


# --------------------------------------------------------------------------
# training, clustering, sampling, io, errors
# --------------------------------------------------------------------------
def _clusters(rng, n):
    protos = (rng.random((3, 24)) > 0.5).astype(np.float32)
    labels = rng.integers(0, 3, n)
    flips = rng.random((n, 24)) < 0.05
    return np.abs(protos[labels] - flips).astype(np.float32), labels


def test_fit_exact_learns_the_clusters():
    rng = np.random.default_rng(11)
    X, labels = _clusters(rng, 600)
    m = GMVAE(24, n_components=3, n_latent=2, hidden=(16,), random_state=0)
    m.fit(X, epochs=15, batch_size=32, lr=5e-3, random_state=0, progress=False)
    assert m.history_.train_loss[-1] < m.history_.train_loss[0]
    assert m.score_clustering(X, labels) > 0.9
    proba = m.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(np.argmax(proba, axis=1), m.predict(X))


def test_fit_relaxed_anneals_the_temperature_and_learns():
    rng = np.random.default_rng(12)
    X, _ = _clusters(rng, 256)
    m = GMVAE(24, n_components=3, n_latent=2, hidden=(16,), objective="gumbel",
              temperature=1.0, temperature_min=0.5, anneal_rate=0.02, random_state=0)
    m.fit(X, epochs=4, batch_size=32, lr=5e-3, random_state=0, progress=False)
    assert m.temperature_ == pytest.approx(max(0.5, math.exp(-0.02 * 32)))
    assert m.history_.train_loss[-1] < m.history_.train_loss[0]
    # evaluation is exact whatever the training estimator
    loss_exact = m.validation_loss(X)
    assert loss_exact == pytest.approx(-float(np.mean(m.elbo(X, rng=0))))


def test_fit_is_reproducible_with_random_state_zero():
    X = np.random.default_rng(13).random((64, 8)).astype(np.float32)
    a = GMVAE(8, 3, 2, (4,), random_state=0).fit(X, epochs=2, batch_size=16, random_state=0,
                                                 progress=False)
    b = GMVAE(8, 3, 2, (4,), random_state=0).fit(X, epochs=2, batch_size=16, random_state=0,
                                                 progress=False)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_sample_per_component_follows_its_prior():
    m = GMVAE(3, n_components=2, n_latent=1, hidden=(), activation="identity",
              decoder="gaussian", gaussian_var=1e-12, dtype="float64", random_state=0)
    m.initialize()
    m.params["dec_W_out"] = np.ones((1, 3))
    m.params["dec_b_out"] = np.zeros(3)
    m.params["prior_mu"] = np.array([[-3.0], [2.0]])
    m.params["prior_log_var"] = np.log(np.array([[0.25], [1.0]]))
    for k, (mean, var) in enumerate([(-3.0, 0.25), (2.0, 1.0)]):
        x, y = m.sample(20000, rng=k, y=k)
        assert np.all(y == k)
        assert float(x[:, 0].mean()) == pytest.approx(mean, abs=0.03)
        assert float(x[:, 0].var()) == pytest.approx(var, rel=0.05)
    x, y = m.sample(4000, rng=5)
    assert abs(float(np.mean(y)) - 0.5) < 0.05  # p(y) uniform


def test_save_load_round_trip(tmp_path):
    from lvm_core import io

    m = GMVAE(7, n_components=3, n_latent=2, hidden=[5], objective="gumbel", random_state=0)
    X = np.random.default_rng(14).random((5, 7)).astype(np.float32)
    loss, _ = m.loss_and_grads(X, rng=0)
    io.save(m, tmp_path / "gmvae.h5")
    loaded = io.load(tmp_path / "gmvae.h5", expected_type=GMVAE)
    assert loaded.get_params() == m.get_params()
    assert float(loaded.loss_and_grads(X, rng=0)[0]) == float(loss)


@pytest.mark.parametrize("kwargs, word", [
    (dict(n_components=0), "n_components"), (dict(objective="reinforce"), "objective"),
    (dict(temperature=0.0), "tau0"), (dict(temperature_min=-1.0), "tau_min"),
    (dict(anneal_rate=-1.0), "rate"), (dict(decoder="poisson"), "decoder"),
    (dict(hidden="400"), "hidden"), (dict(gaussian_var=0.0), "gaussian_var"),
])
def test_bad_hyperparameters_are_named(kwargs, word):
    with pytest.raises((ValueError, TypeError), match=word):
        GMVAE(5, **kwargs)


def test_bad_data_and_noise_are_named():
    m = GMVAE(5, n_components=3, n_latent=2, hidden=(3,))
    with pytest.raises(ValueError, match="X must have 5 features"):
        m.loss_and_grads(np.zeros((2, 4), np.float32), rng=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.loss_and_grads(np.full((2, 5), 2.0, np.float32), rng=0)
    with pytest.raises(ValueError, match="eps must have shape"):
        m.loss_and_grads(np.zeros((2, 5), np.float32), eps=np.zeros((1, 2, 2, 2), np.float32))
    with pytest.raises(ValueError, match="y must hold components"):
        m.sample(3, rng=0, y=3)
