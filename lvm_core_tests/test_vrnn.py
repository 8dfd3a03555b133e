"""VRNN (lvm_core.models.vrnn) and the KL between two diagonal Gaussians
(lvm_core.ops.kl_normal, tested with the CVAE).

* gradients against float64 central differences through ``loss_and_grads``
  (the path training uses), GRU and LSTM, Bernoulli and Gaussian emissions,
  with and without masks (relative error < 1e-6 on every parameter whose
  numeric gradient is resolvable; the filter looks at the numeric gradient only);
* a PyTorch autograd twin with identical weights and eps (float64), written
  from the equations with torch.gru_cell / torch.lstm_cell and torch.distributions;
* meaning: a VRNN with T = 1 is a VAE with the same networks (lvm_core's VAE);
  padding does not change the ELBO of the shorter sequences; the
  reparameterised path z_t = mu + exp(log_var / 2) eps carries the
  reconstruction gradient to the encoder; the log-variance floor keeps the
  loss finite at extreme inputs and parameters;
* the backend matrix (NumPy and array-api-strict's device1, float32 / float64),
  training, sampling and argument errors.

References: Chung et al. 2015; Kingma & Welling 2014.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core import ops
from lvm_core.backend import to_numpy
from lvm_core.gradcheck import check_grads_resolvable, relative_error
from lvm_core.models.vae import VAE
from lvm_core.models.vrnn import VRNN, lengths_to_mask

from .conftest import require

seeds = st.integers(min_value=0, max_value=2**32 - 1)
SMOOTH = ["tanh", "softplus", "sigmoid", "elu"]


def _model(D=3, L=2, H=3, cell="gru", emission="bernoulli", activation="tanh", widths=(3, 2),
           seed=0, dtype="float64", log_var_min=-10.0):
    a, b = widths
    return VRNN(D, n_latent=L, n_hidden=H, cell=cell, phi_x=(a,), phi_z=(b,), encoder=(a,),
                decoder=(b,), prior=(a,), activation=activation, emission=emission,
                log_var_min=log_var_min, dtype=dtype, random_state=seed).initialize()


def _data(rng, N, T, D, emission):
    return rng.standard_normal((N, T, D)) if emission == "gaussian" else rng.random((N, T, D))


def _loss_fn(model, X, eps, lengths=None):
    return lambda p: float(to_numpy(model.loss_and_grads(X, eps=eps, lengths=lengths,
                                                         params=p)[0]))


# --------------------------------------------------------------------------
# VRNN gradients: float64 central differences through loss_and_grads
# --------------------------------------------------------------------------
@settings(max_examples=8)
@given(cell=st.sampled_from(["gru", "lstm"]), emission=st.sampled_from(["bernoulli", "gaussian"]),
       T=st.integers(1, 4), N=st.integers(1, 3), activation=st.sampled_from(SMOOTH),
       widths=st.tuples(st.integers(1, 3), st.integers(1, 3)), masked=st.booleans(), seed=seeds)
def test_gradients_match_central_differences(cell, emission, T, N, activation, widths, masked,
                                             seed):
    rng = np.random.default_rng(seed)
    model = _model(cell=cell, emission=emission, activation=activation, widths=widths, seed=seed,
                   L=2, H=2, D=2)
    X = _data(rng, N, T, 2, emission)
    eps = rng.standard_normal((T, N, 2))
    lengths = rng.integers(1, T + 1, size=N) if masked else None
    loss, grads = model.loss_and_grads(X, eps=eps, lengths=lengths)
    assert set(grads) == set(model.params)
    check_grads_resolvable(_loss_fn(model, X, eps, lengths), model.params, grads, float(loss),
                           h=1e-5, rtol=1e-6)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_gradients_relu_and_no_hidden_layers(cell):
    """ReLU (away from its kink at these draws) and empty feature extractors / trunks."""
    rng = np.random.default_rng(5)
    model = VRNN(3, n_latent=2, n_hidden=3, cell=cell, phi_x=(), phi_z=(), encoder=(),
                 decoder=(), prior=(), emission="gaussian", dtype="float64", random_state=5)
    X, eps = rng.standard_normal((2, 3, 3)), rng.standard_normal((3, 2, 2))
    loss, grads = model.loss_and_grads(X, eps=eps, lengths=[3, 2])
    check_grads_resolvable(_loss_fn(model, X, eps, [3, 2]), model.params, grads, float(loss),
                           h=1e-5, rtol=1e-6)
    model = _model(cell=cell, activation="relu", seed=6, widths=(4, 3))
    X, eps = rng.random((3, 3, 3)), rng.standard_normal((3, 3, 2))
    loss, grads = model.loss_and_grads(X, eps=eps)
    check_grads_resolvable(_loss_fn(model, X, eps), model.params, grads, float(loss), h=1e-6,
                           rtol=1e-6)


# --------------------------------------------------------------------------
# PyTorch autograd twin
# --------------------------------------------------------------------------
def _torch_loss(torch, model, p, X, eps, lengths):
    """-1/N sum_n ELBO_n written from the equations with torch ops (X (N, T, D))."""
    F = torch.nn.functional
    Dist = torch.distributions
    m = float(model.log_var_min)
    act = {"tanh": torch.tanh, "relu": torch.relu, "softplus": F.softplus,
           "sigmoid": torch.sigmoid, "elu": F.elu}[model.activation]

    def mlp(h, prefix, n):
        for i in range(n):
            h = act(h @ p[f"{prefix}W{i}"] + p[f"{prefix}b{i}"])
        return h

    def floor(a):
        return m + F.softplus(a - m)

    N, T, _ = X.shape
    H = model.n_hidden
    h = torch.zeros(N, H, dtype=X.dtype)
    c = torch.zeros(N, H, dtype=X.dtype)
    mask = torch.tensor(lengths_to_mask(np.asarray(lengths), T)) if lengths is not None \
        else torch.ones(T, N, dtype=X.dtype)
    total = 0.0
    for t in range(T):
        x = X[:, t, :]
        px = mlp(x, "phix_", len(model.phi_x))
        g = mlp(torch.cat([px, h], 1), "enc_", len(model.encoder))
        mu, lv = g @ p["enc_W_mu"] + p["enc_b_mu"], floor(g @ p["enc_W_log_var"] + p["enc_b_log_var"])
        z = mu + torch.exp(0.5 * lv) * eps[t]  # reparameterised (rsample with this eps)
        g = mlp(h, "prior_", len(model.prior))
        mu_p = g @ p["prior_W_mu"] + p["prior_b_mu"]
        lv_p = floor(g @ p["prior_W_log_var"] + p["prior_b_log_var"])
        kl = Dist.kl_divergence(Dist.Normal(mu, torch.exp(0.5 * lv)),
                                Dist.Normal(mu_p, torch.exp(0.5 * lv_p))).sum(1)
        pz = mlp(z, "phiz_", len(model.phi_z))
        g = mlp(torch.cat([pz, h], 1), "dec_", len(model.decoder))
        if model.emission == "bernoulli":
            logits = g @ p["dec_W_out"] + p["dec_b_out"]
            ll = Dist.Bernoulli(logits=logits, validate_args=False).log_prob(x).sum(1)
        else:
            mu_x = g @ p["dec_W_out"] + p["dec_b_out"]
            lv_x = floor(g @ p["dec_W_log_var"] + p["dec_b_log_var"])
            ll = Dist.Normal(mu_x, torch.exp(0.5 * lv_x)).log_prob(x).sum(1)
        total = total + (mask[t] * (ll - kl)).sum()
        inp = torch.cat([px, pz], 1)
        if model.cell == "gru":
            h = torch.gru_cell(inp, h, p["rnn_W_x"].T, p["rnn_W_h"].T, p["rnn_b_x"], p["rnn_b_h"])
        else:
            h, c = torch.lstm_cell(inp, (h, c), p["rnn_W_x"].T, p["rnn_W_h"].T, p["rnn_b_x"],
                                   p["rnn_b_h"])
    return -total / N


@pytest.mark.oracle
@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("emission,masked", [("bernoulli", False), ("gaussian", True),
                                             ("bernoulli", True)])
def test_matches_torch_autograd(cell, emission, masked):
    torch = require("torch")
    rng = np.random.default_rng(7)
    model = _model(D=4, L=3, H=5, cell=cell, emission=emission, activation="elu",
                   widths=(4, 3), seed=7)
    N, T = 4, 5
    X = _data(rng, N, T, 4, emission)
    eps = rng.standard_normal((T, N, 3))
    lengths = [5, 3, 1, 4] if masked else None
    loss, grads = model.loss_and_grads(X, eps=eps, lengths=lengths)
    p = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    loss_t = _torch_loss(torch, model, p, torch.tensor(X), torch.tensor(eps), lengths)
    loss_t.backward()
    loss_t = float(loss_t.detach())
    assert abs(float(loss) - loss_t) <= 1e-10 * abs(loss_t)
    for k, g in grads.items():
        assert relative_error(g, p[k].grad.numpy()) < 1e-9, k


# --------------------------------------------------------------------------
# meaning
# --------------------------------------------------------------------------
def test_t_equals_one_is_a_vae_with_the_same_networks():
    """T = 1, h_0 = 0: q(z|x) = enc([phi_x(x), 0]), p(x|z) = dec([phi_z(z), 0]); with the
    prior net giving N(0, I) the loss and gradients are those of lvm_core's VAE whose
    encoder is phi_x then enc (rows for phi_x) and whose decoder is phi_z then dec."""
    rng = np.random.default_rng(8)
    D, L, a, b = 5, 2, 4, 3
    model = VRNN(D, n_latent=L, n_hidden=3, phi_x=(a,), phi_z=(b,), encoder=(b,), decoder=(a,),
                 prior=(2,), activation="tanh", log_var_min=-60.0, dtype="float64",
                 random_state=8).initialize()
    p = model.params
    p["prior_W_mu"][...] = 0.0
    p["prior_b_mu"][...] = 0.0
    p["prior_W_log_var"][...] = 0.0
    p["prior_b_log_var"][...] = 0.0  # floored: -60 + softplus(60) = 0 to 1e-26
    vae = VAE(D, n_latent=L, hidden=(a, b), activation="tanh", dtype="float64").initialize()
    q = vae.params
    pairs = {"enc_W0": "phix_W0", "enc_b0": "phix_b0", "enc_b1": "enc_b0",
             "enc_W_mu": "enc_W_mu", "enc_b_mu": "enc_b_mu", "enc_W_log_var": "enc_W_log_var",
             "enc_b_log_var": "enc_b_log_var", "dec_W0": "phiz_W0", "dec_b0": "phiz_b0",
             "dec_b1": "dec_b0", "dec_W_out": "dec_W_out", "dec_b_out": "dec_b_out"}
    for k, v in pairs.items():
        q[k][...] = p[v]
    q["enc_W1"][...] = p["enc_W0"][:a]  # rows of phi_x(x); the rows of h_0 = 0 do nothing
    q["dec_W1"][...] = p["dec_W0"][:b]
    X = rng.random((6, D))
    eps = rng.standard_normal((1, 6, L))
    loss_v, g_v = vae.loss_and_grads(X, eps=eps)
    loss_r, g_r = model.loss_and_grads(X[:, None, :], eps=eps)
    assert float(loss_r) == pytest.approx(float(loss_v), rel=1e-12)
    for k, v in pairs.items():
        np.testing.assert_allclose(g_r[v], g_v[k], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g_r["enc_W0"][:a], g_v["enc_W1"], rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(g_r["dec_W0"][:b], g_v["dec_W1"], rtol=1e-9, atol=1e-12)
    for k in ("rnn_W_x", "rnn_W_h", "rnn_b_x", "rnn_b_h"):  # the cell never runs at T = 1
        assert not np.any(g_r[k])
    np.testing.assert_allclose(model.elbo(X[:, None, :], eps=eps), _vae_elbo(vae, X, eps),
                               rtol=1e-12)


def _vae_elbo(vae, X, eps):
    f = vae._forward(np, X, eps, vae.params)
    return f["log_px"][0] - vae._kl(f)


@pytest.mark.parametrize("cell", ["gru", "lstm"])
def test_padding_does_not_change_the_shorter_sequences(cell):
    """Each sequence of a padded batch (garbage after its end) has the ELBO it has alone,
    and the batch loss and gradients are the mean of the per-sequence ones."""
    rng = np.random.default_rng(9)
    model = _model(D=3, L=2, H=4, cell=cell, emission="gaussian", seed=9)
    lengths = [4, 2, 1]
    T, N = 4, 3
    X = 100.0 * rng.standard_normal((N, T, 3))  # padding values that would dominate the loss
    eps = rng.standard_normal((T, N, 2))
    elbo = model.elbo(X, eps=eps, lengths=lengths)
    loss, grads = model.loss_and_grads(X, eps=eps, lengths=lengths)
    mean_grads = {k: np.zeros_like(v) for k, v in grads.items()}
    total = 0.0
    for n, Tn in enumerate(lengths):
        x_n = X[n:n + 1, :Tn]
        e_n = eps[:Tn, n:n + 1]
        alone = model.elbo(x_n, eps=e_n)
        assert float(elbo[n]) == pytest.approx(float(alone[0]), rel=1e-12)
        loss_n, g_n = model.loss_and_grads(x_n, eps=e_n)
        total += float(loss_n) / N
        for k in g_n:
            mean_grads[k] += g_n[k] / N
    assert float(loss) == pytest.approx(total, rel=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k], mean_grads[k], rtol=1e-9, atol=1e-12)


def test_reparameterised_path_and_reconstruction_gradient_reach_the_encoder():
    """z_t = mu + exp(log_var / 2) eps_t exactly (not a draw detached from the encoder):
    the encoder's gradient changes when only the decoder changes."""
    rng = np.random.default_rng(10)
    model = _model(D=3, L=2, H=3, seed=10)
    X, eps = rng.random((4, 3, 3)), rng.standard_normal((3, 4, 2))
    lay = model._layers()
    f = model._forward(np, np.ascontiguousarray(X.transpose(1, 0, 2)), eps, model.params)
    np.testing.assert_allclose(f["Z"], f["MUQ"] + np.exp(0.5 * f["LVQ"]) * eps, rtol=1e-14)
    assert lay["Hx"] == 3
    _, g1 = model.loss_and_grads(X, eps=eps)
    g1 = {k: v.copy() for k, v in g1.items()}
    model.params["dec_W_out"] *= 3.0
    _, g2 = model.loss_and_grads(X, eps=eps)
    assert relative_error(g1["enc_W_mu"], g2["enc_W_mu"]) > 1e-3
    assert relative_error(g1["enc_W_log_var"], g2["enc_W_log_var"]) > 1e-3


def test_log_variance_floor():
    """log_var = m + softplus(a - m): above m always, a itself when a >> m."""
    model = _model(log_var_min=-5.0)
    a = np.array([[-1e6, -5.0, 0.0, 3.0, 1e6]])
    lv, _ = model._floor(np, a)
    assert np.all(lv > -5.0 - 1e-12) and np.all(np.isfinite(lv))
    assert lv[0, 0] == pytest.approx(-5.0, abs=1e-12)
    assert lv[0, 1] == pytest.approx(-5.0 + math.log(2.0), rel=1e-12)
    assert lv[0, 3] == pytest.approx(3.0, abs=1e-3)
    assert lv[0, 4] == 1e6


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("emission", ["bernoulli", "gaussian"])
def test_loss_and_gradients_finite_at_extreme_inputs(dtype, emission):
    """log-variance heads driven to -1e4 (log(0) in an unfloored model), huge data and
    logits: the loss and every gradient stay finite."""
    rng = np.random.default_rng(11)
    model = _model(D=3, L=2, H=3, emission=emission, dtype=dtype, seed=11)
    for k in ("enc_b_log_var", "prior_b_log_var") + (("dec_b_log_var",)
                                                     if emission == "gaussian" else ()):
        model.params[k][...] = -1e4
    model.params["dec_b_out"][...] = 1e3
    X = (1e3 * rng.standard_normal((2, 4, 3)) if emission == "gaussian"
         else (rng.random((2, 4, 3)) > 0.5).astype(float))
    loss, grads = model.loss_and_grads(X, rng=0, lengths=[4, 2])
    assert np.isfinite(float(loss))
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    model.params["enc_b_log_var"][...] = 30.0  # a very wide posterior over a floored prior
    loss, grads = model.loss_and_grads(X, rng=0)
    assert np.isfinite(float(loss)) and all(np.all(np.isfinite(g)) for g in grads.values())


# --------------------------------------------------------------------------
# backends, training, sampling, errors
# --------------------------------------------------------------------------
def test_backends_match_numpy_float64(backend):
    rng = np.random.default_rng(12)
    X, eps = rng.random((3, 4, 3)), rng.standard_normal((4, 3, 2))
    ref_model = _model(D=3, L=2, H=3, cell="lstm", seed=12)
    loss_r, g_r = ref_model.loss_and_grads(X, eps=eps, lengths=[4, 1, 3])
    model = _model(D=3, L=2, H=3, cell="lstm", seed=12, dtype=backend.dtype_name)
    model.params = {k: backend.asarray(v) for k, v in ref_model.params.items()}
    loss, grads = model.loss_and_grads(backend.asarray(X), eps=backend.asarray(eps),
                                       lengths=[4, 1, 3])
    tol = 2e-4 if backend.dtype_name == "float32" else 1e-10
    assert float(to_numpy(loss)) == pytest.approx(float(loss_r), rel=tol)
    for k, g in grads.items():
        assert g.dtype == backend.dtype and type(g) is type(model.params[k])
        assert relative_error(to_numpy(g), g_r[k]) < 10 * tol, k
    Xb = backend.asarray(X)
    for got, want in ((model.elbo(Xb, rng=1, lengths=[4, 1, 3]),
                       ref_model.elbo(X, rng=1, lengths=[4, 1, 3])),
                      (model.log_marginal(Xb, 4, rng=1, lengths=[4, 1, 3]),
                       ref_model.log_marginal(X, 4, rng=1, lengths=[4, 1, 3]))):
        assert got.dtype == backend.dtype  # float32 draws differ from float64 ones:
        if backend.dtype_name == "float64":  # compare the values in float64 only
            np.testing.assert_allclose(to_numpy(got), want, rtol=10 * tol)
        assert np.all(np.isfinite(to_numpy(got)))
    S = model.sample(2, 3, rng=0)
    assert S.shape == (2, 3, 3) and S.dtype == backend.dtype


def test_fit_learns_and_is_reproducible():
    rng = np.random.default_rng(13)
    t = np.arange(6)
    X = (0.5 + 0.4 * np.sin(t[None, :, None] + rng.random((64, 1, 1)) * 6)).repeat(2, 2)
    fits = []
    for _ in range(2):
        m = VRNN(2, n_latent=2, n_hidden=8, phi_x=(8,), phi_z=(8,), encoder=(8,), decoder=(8,),
                 prior=(8,), random_state=0)
        m.fit(X.astype(np.float32), epochs=6, batch_size=16, lr=1e-2, random_state=0)
        fits.append(m.history_.train_loss)
    assert fits[0] == fits[1]
    assert fits[0][-1] < fits[0][0]
    m.fit(X.astype(np.float32), lengths=rng.integers(1, 7, size=64), epochs=1, batch_size=16,
          random_state=0)
    assert np.isfinite(m.history_.train_loss[-1])
    S = m.sample(5, 7, rng=0)
    assert S.shape == (5, 7, 2) and S.dtype == np.float32
    assert np.all((S >= 0) & (S <= 1))
    B = m.sample(3, 2, rng=0, mean=False)
    assert set(np.unique(B)) <= {0.0, 1.0}


def test_fit_with_lengths_equals_loss_with_lengths():
    """fit's mask channel reaches loss_and_grads: one full-batch Adam step from the same
    start equals a hand step with the masked gradient."""
    from lvm_core.nn import adam

    rng = np.random.default_rng(14)
    X, lengths = rng.random((8, 3, 2)), rng.integers(1, 4, size=8)
    m = _model(D=2, L=2, H=3, seed=14)
    start = {k: v.copy() for k, v in m.params.items()}
    m.fit(X, lengths=lengths, epochs=1, batch_size=8, lr=1e-2, random_state=3)
    g_rng = np.random.default_rng(3)
    perm = g_rng.permutation(8)
    hand = _model(D=2, L=2, H=3, seed=14)
    hand.params = start
    loss, grads = hand.loss_and_grads(X[perm], rng=g_rng, lengths=lengths[perm])
    new, _ = adam(hand.params, grads, None, lr=1e-2)
    for k in new:
        np.testing.assert_allclose(m.params[k], new[k], rtol=1e-12, atol=1e-14)
    assert m.history_.train_loss[0] == pytest.approx(float(loss), rel=1e-12)


@pytest.mark.parametrize("kwargs,word", [
    (dict(cell="rnn"), "cell"), (dict(emission="poisson"), "emission"),
    (dict(log_var_min=float("-inf")), "log_var_min"), (dict(phi_x=64), "phi_x"),
    (dict(n_latent=0), "n_latent"), (dict(activation="swish"), "activation")])
def test_bad_hyperparameters_are_named(kwargs, word):
    with pytest.raises((ValueError, TypeError), match=word):
        VRNN(3, **kwargs)


def test_bad_inputs_are_named():
    model = _model(D=3)
    rng = np.random.default_rng(15)
    with pytest.raises(ValueError, match="N, T, D"):
        model.loss_and_grads(rng.random((2, 3)), rng=0)
    with pytest.raises(ValueError, match="D = n_features"):
        model.loss_and_grads(rng.random((2, 3, 4)), rng=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.loss_and_grads(2.0 + rng.random((2, 3, 3)), rng=0)
    with pytest.raises(ValueError, match="lengths"):
        model.loss_and_grads(rng.random((2, 3, 3)), rng=0, lengths=[4, 1])
    with pytest.raises(ValueError, match="lengths"):
        model.loss_and_grads(rng.random((2, 3, 3)), rng=0, lengths=[1, 2, 3])
    with pytest.raises(ValueError, match="eps"):
        model.loss_and_grads(rng.random((2, 3, 3)), eps=rng.standard_normal((2, 3, 2)))


def test_does_not_mutate_inputs():
    rng = np.random.default_rng(16)
    model = _model(D=3)
    X, eps = rng.random((2, 3, 3)), rng.standard_normal((3, 2, 2))
    X0, eps0 = X.copy(), eps.copy()
    model.loss_and_grads(X, eps=eps, lengths=[3, 1])
    assert np.array_equal(X, X0) and np.array_equal(eps, eps0)


# --------------------------------------------------------------------------
# core additions the VRNN uses (lvm_core.nn, lvm_core.backend)
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["gru", "lstm"])
def test_cell_step_with_given_projection_and_gate_backward(kind, backend64):
    """step_forward(gx = x W_x + b_x) equals step_forward(x); step_backward_gates +
    dA_x W_x^T + param_grads over stacked steps equals step_backward step by step."""
    from lvm_core.nn import GRUCell, LSTMCell

    rng = np.random.default_rng(17)
    D, H, N, T = 3, 4, 2, 3
    cell = (GRUCell if kind == "gru" else LSTMCell)(D, H, prefix="c_")
    params = {k: backend64.asarray(v) for k, v in cell.init(17, dtype="float64").items()}
    X = [backend64.asarray(rng.standard_normal((N, D))) for _ in range(T)]
    dS = [backend64.asarray(rng.standard_normal((N, H))) for _ in range(T)]
    xp = backend64.xp
    states, caches, states_g, caches_g = [None], [], [None], []
    for t in range(T):
        s, c = cell.step_forward(params, X[t], states[-1])
        gx = xp.matmul(X[t], params["c_W_x"]) + params["c_b_x"]
        s_g, c_g = cell.step_forward(params, None, states_g[-1], gx=gx)
        states.append(s)
        caches.append(c)
        states_g.append(s_g)
        caches_g.append(c_g)
        for a, b in zip(s if kind == "lstm" else (s,), s_g if kind == "lstm" else (s_g,)):
            np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-13, atol=1e-14)
    grads, dA_x, dA_h, dX = {}, [], [], []
    d_next = None
    for t in range(T - 1, -1, -1):
        d = dS[t] if d_next is None else dS[t] + (d_next if kind == "gru" else d_next[0])
        dstate = d if kind == "gru" else (d, None if d_next is None else d_next[1])
        dx, d_prev = cell.step_backward(params, dstate, caches[t], grads, accumulate=t < T - 1)
        ax, ah, d_prev_g = cell.step_backward_gates(params, dstate, caches_g[t])
        dX.append(dx)
        dA_x.insert(0, ax)
        dA_h.insert(0, ah)
        np.testing.assert_allclose(to_numpy(xp.matmul(ax, xp.permute_dims(params["c_W_x"],
                                                                           (1, 0)))),
                                   to_numpy(dx), rtol=1e-12, atol=1e-14)
        for a, b in zip(d_prev if kind == "lstm" else (d_prev,),
                        d_prev_g if kind == "lstm" else (d_prev_g,)):
            np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-13, atol=1e-14)
        d_next = d_prev
    h_prev = [xp.zeros((N, H), dtype=xp.float64, device=backend64.device)]
    h_prev += [states[t] if kind == "gru" else states[t][0] for t in range(1, T)]
    stacked = {}
    cell.param_grads(stacked, xp.concat(X, axis=0), xp.concat(h_prev, axis=0),
                     xp.concat(dA_x, axis=0), xp.concat(dA_h, axis=0))
    for k in grads:
        np.testing.assert_allclose(to_numpy(stacked[k]), to_numpy(grads[k]), rtol=1e-12,
                                   atol=1e-13)
    with pytest.raises(ValueError, match="gx"):
        cell.step_forward(params, None, None, gx=xp.zeros((N, 2), dtype=xp.float64,
                                                           device=backend64.device))


def test_dense_and_gaussian_head_forward_into_a_buffer():
    from lvm_core.nn import Dense, GaussianHead

    rng = np.random.default_rng(18)
    x = rng.standard_normal((4, 3)).astype(np.float32)
    for layer, width in ((Dense(3, 5, "tanh", prefix="a_"), 5),
                         (GaussianHead(3, 2, prefix="g_"), 4)):
        params = layer.init(18)
        y_ref, _ = layer.forward(params, x)
        buf = np.full((2, 4, width), np.nan, dtype=np.float32)
        y, _ = layer.forward(params, x, ops.Workspace(), out=buf[1])
        if isinstance(y, tuple):  # GaussianHead: views of the buffer
            assert np.shares_memory(y[0], buf) and np.shares_memory(y[1], buf)
            y, y_ref = np.concatenate(y, axis=1), np.concatenate(y_ref, axis=1)
        else:
            assert np.shares_memory(y, buf)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(buf[1], y)
        assert np.all(np.isnan(buf[0]))


def test_get_namespace_numpy_fast_path():
    import array_api_compat

    from lvm_core.backend import get_namespace

    a = np.zeros(2)
    assert get_namespace(a, None, np.ones((1, 1), np.float32)) is \
        array_api_compat.array_namespace(a)
    strict = require("array_api_strict")
    with pytest.raises(TypeError, match="different array libraries"):
        get_namespace(a, strict.asarray([1.0]))
    with pytest.raises(TypeError, match="different array libraries"):
        get_namespace(strict.asarray([1.0]), a)


def test_save_load_round_trip(tmp_path):
    from lvm_core import io

    rng = np.random.default_rng(19)
    model = _model(D=3, L=2, H=3, cell="lstm", emission="gaussian", seed=19)
    X, eps = rng.standard_normal((2, 3, 3)), rng.standard_normal((3, 2, 2))
    io.save(model, tmp_path / "vrnn.h5")
    back = io.load(tmp_path / "vrnn.h5", expected_type=VRNN)
    assert back.get_params() == model.get_params()
    assert float(back.loss_and_grads(X, eps=eps)[0]) == float(model.loss_and_grads(X, eps=eps)[0])


def test_fit_with_lengths_on_every_backend(backend64):
    """The mask rides with the rows through the training loop on the data's device."""
    rng = np.random.default_rng(20)
    X, lengths = rng.random((6, 3, 2)), rng.integers(1, 4, size=6)
    ref_model = _model(D=2, L=2, H=3, cell="lstm", seed=20)
    ref_model.fit(X, lengths=lengths, epochs=2, batch_size=4, lr=1e-2, random_state=1)
    model = _model(D=2, L=2, H=3, cell="lstm", seed=20)
    model.params = {k: backend64.asarray(v) for k, v in model.params.items()}
    model.fit(backend64.asarray(X), lengths=lengths, epochs=2, batch_size=4, lr=1e-2,
              random_state=1)
    np.testing.assert_allclose(model.history_.train_loss, ref_model.history_.train_loss,
                               rtol=1e-10)
    for k, v in model.params.items():
        np.testing.assert_allclose(to_numpy(v), ref_model.params[k], rtol=1e-9, atol=1e-12)


def test_log_marginal_is_the_vae_one_at_t_equals_one_and_above_the_elbo():
    """T = 1 with the VAE's networks and N(0, I) prior: the importance-sampled log p(x)
    equals lvm_core's VAE.log_marginal for the same draws; for T > 1 its mean lies above
    the mean ELBO (Burda et al. 2016), and full lengths change nothing."""
    rng = np.random.default_rng(21)
    D, L, a, b = 4, 2, 3, 3
    model = VRNN(D, n_latent=L, n_hidden=3, phi_x=(a,), phi_z=(b,), encoder=(b,), decoder=(a,),
                 prior=(2,), activation="tanh", log_var_min=-60.0, dtype="float64",
                 random_state=21).initialize()
    p = model.params
    for k in ("prior_W_mu", "prior_b_mu", "prior_W_log_var", "prior_b_log_var"):
        p[k][...] = 0.0
    vae = VAE(D, n_latent=L, hidden=(a, b), activation="tanh", dtype="float64").initialize()
    q = vae.params
    for k, v in {"enc_W0": "phix_W0", "enc_b0": "phix_b0", "enc_b1": "enc_b0",
                 "enc_W_mu": "enc_W_mu", "enc_b_mu": "enc_b_mu", "enc_W_log_var": "enc_W_log_var",
                 "enc_b_log_var": "enc_b_log_var", "dec_W0": "phiz_W0", "dec_b0": "phiz_b0",
                 "dec_b1": "dec_b0", "dec_W_out": "dec_W_out", "dec_b_out": "dec_b_out"}.items():
        q[k][...] = p[v]
    q["enc_W1"][...] = p["enc_W0"][:a]
    q["dec_W1"][...] = p["dec_W0"][:b]
    X = rng.random((5, D))
    np.testing.assert_allclose(model.log_marginal(X[:, None, :], 7, rng=3, batch_size=2),
                               vae.log_marginal(X, 7, rng=3, batch_size=2), rtol=1e-10)
    model = _model(D=3, L=2, H=3, seed=21)
    X = rng.random((40, 4, 3))
    lm = model.log_marginal(X, 30, rng=0)
    assert np.mean(lm) > np.mean(model.elbo(X, rng=1)) and np.all(np.isfinite(lm))
    np.testing.assert_allclose(model.log_marginal(X[:6], 5, rng=2, lengths=[4] * 6),
                               model.log_marginal(X[:6], 5, rng=2), rtol=1e-12)
    short = model.log_marginal(X[:6], 5, rng=2, lengths=[1, 2, 3, 4, 1, 2])
    assert np.all(np.isfinite(short))
