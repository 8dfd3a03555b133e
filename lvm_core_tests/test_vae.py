"""VAE / IWAE (lvm_core.models.vae): handwritten gradients against float64
central differences, the meaning of the bounds (ELBO <= log p(x), IWAE rising
with k, exact marginal of a linear-Gaussian model), the decoders
terms through the model, backends, the NumPy path (numba kernels, workspace) against the
array-API reference path, and errors.

References: Kingma & Welling 2014; Burda et al. 2016; Loaiza-Ganem & Cunningham 2019.
"""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lvm_core.backend import to_numpy
from lvm_core.gradcheck import check_grads, check_grads_resolvable
from lvm_core.models.vae import VAE

seeds = st.integers(min_value=0, max_value=2**32 - 1)
DECODERS = [("bernoulli", "fixed"), ("continuous_bernoulli", "fixed"), ("gaussian", "fixed"),
            ("gaussian", "learned"), ("gaussian", "output")]
ACTIVATIONS = ["relu", "tanh", "sigmoid", "softplus", "leaky_relu", "elu", "identity"]


def _data(rng, N, D, decoder):
    if decoder == "gaussian":
        return rng.standard_normal((N, D))
    return rng.random((N, D))


def _fixed_eps_loss(model, X, eps):
    """loss(params) for fixed eps: a deterministic function for finite differences."""
    return lambda p: float(to_numpy(model.loss_and_grads(X, eps=eps, params=p)[0]))


# --------------------------------------------------------------------------
# gradients vs float64 central differences
# --------------------------------------------------------------------------
@settings(max_examples=20)
@given(depth=st.integers(min_value=0, max_value=3),
       widths=st.lists(st.integers(min_value=1, max_value=6), min_size=3, max_size=3),
       n_latent=st.integers(min_value=1, max_value=4),
       n_samples=st.integers(min_value=1, max_value=3),
       dec=st.sampled_from(DECODERS), objective=st.sampled_from(["elbo", "iwae"]),
       activation=st.sampled_from(ACTIVATIONS),
       prior_var=st.sampled_from([1.0, 0.5, 2.0]), seed=seeds)
def test_gradients_match_central_differences(depth, widths, n_latent, n_samples, dec,
                                             objective, activation, prior_var, seed):
    rng = np.random.default_rng(seed)
    N, D = 3, 4
    model = VAE(D, n_latent=n_latent, hidden=tuple(widths[:depth]), activation=activation,
                decoder=dec[0], decoder_var=dec[1], gaussian_var=0.7, prior_var=prior_var,
                objective=objective, n_samples=n_samples, dtype="float64", random_state=seed)
    model.initialize()
    if dec[0] == "continuous_bernoulli":  # logits on both sides of the Taylor threshold
        model.params["dec_b_out"] = rng.uniform(-0.6, 0.6, size=D)
    X = _data(rng, N, D, dec[0])
    eps = rng.standard_normal((n_samples, N, n_latent))
    assume(_kink_free(model, X, eps))
    loss, grads = model.loss_and_grads(X, eps=eps)
    assert set(grads) == set(model.params)
    for k in grads:
        assert grads[k].shape == model.params[k].shape and grads[k].dtype == np.float64
    # h = 1e-5: the O(h^2) truncation stays < 1e-10 and round-off below 1e-10
    _check_grads_resolvable(_fixed_eps_loss(model, X, eps), model.params, grads, float(loss))


def _kink_free(model, X, eps, margin=1e-4):
    """No hidden pre-activation within ``margin`` of a relu / leaky_relu / elu kink
    (central differences across a kink do not measure the derivative)."""
    if model.activation not in ("relu", "leaky_relu", "elu"):
        return True
    from lvm_core.ops import reference

    p = model.params

    def trunk(h, prefix):
        for i in range(len(model.hidden)):
            a = h @ p[f"{prefix}W{i}"] + p[f"{prefix}b{i}"]
            if np.any(np.abs(a) < margin):
                return None
            h = reference.bias_act(a, 0.0 * a[0], model.activation)
        return h

    h = trunk(X, "enc_")
    if h is None:
        return False
    mu = h @ p["enc_W_mu"] + p["enc_b_mu"]
    log_var = h @ p["enc_W_log_var"] + p["enc_b_log_var"]
    z = mu + np.exp(0.5 * log_var) * eps
    return trunk(z.reshape(-1, z.shape[-1]), "dec_") is not None


def _check_grads_resolvable(f, params, grads, f_value, h=1e-5):
    """:func:`lvm_core.gradcheck.check_grads_resolvable`: relative error < 1e-6 on
    every parameter whose *numeric* gradient central differences can resolve
    (max|g_num| >= 1e-4 (1 + |f|)).  Smaller ones (e.g. deep layers of width-1
    sigmoid nets, |g| ~ 1e-6) sit at the level of the differences' round-off
    (~1e-16 |f| / h): for those the absolute error must stay below 1e-9 (1 + |f|),
    which still catches any formula error.  A zeroed analytic gradient fails
    (see test_gradcheck.py)."""
    check_grads_resolvable(f, params, grads, f_value, h=h, rtol=1e-6)


@pytest.mark.parametrize("objective", ["elbo", "iwae"])
def test_gradients_benchmark_shape_sampled_coordinates(objective):
    """A wider net (the benchmark's shape, scaled down) with sampled coordinates."""
    rng = np.random.default_rng(3)
    model = VAE(30, n_latent=4, hidden=(16,), objective=objective, n_samples=2,
                dtype="float64", random_state=3)
    X = rng.random((8, 30))
    eps = rng.standard_normal((2, 8, 4))
    _, grads = model.loss_and_grads(X, eps=eps)
    check_grads(_fixed_eps_loss(model, X, eps), model.params, grads, h=1e-5, rtol=1e-6,
                max_coords=20)


def test_gradients_on_simulated_device(backend64):
    """The generic path on every backend (array-api-strict device1 included)."""
    rng = np.random.default_rng(4)
    model = VAE(5, n_latent=2, hidden=(4,), activation="tanh", decoder="gaussian",
                decoder_var="learned", objective="iwae", n_samples=2, dtype="float64",
                random_state=4)
    X = backend64.asarray(rng.standard_normal((3, 5)))
    eps = backend64.asarray(rng.standard_normal((2, 3, 2)))
    model.initialize(like=X)
    _, grads = model.loss_and_grads(X, eps=eps)
    check_grads(_fixed_eps_loss(model, X, eps), model.params, grads, h=1e-5, rtol=1e-6)


# --------------------------------------------------------------------------
# meaning
# --------------------------------------------------------------------------
def test_hand_computed_elbo_one_dimension():
    """D = L = 1, no hidden layer: every term written out by hand."""
    model = VAE(1, n_latent=1, hidden=(), decoder="bernoulli", dtype="float64")
    model.initialize()
    p = {"enc_W_mu": 0.5, "enc_b_mu": -0.2, "enc_W_log_var": -1.0, "enc_b_log_var": 0.3,
         "dec_W_out": 2.0, "dec_b_out": 0.1}
    for k, v in p.items():
        model.params[k] = np.full(model.params[k].shape, v)
    x, eps = 0.8, 0.7
    mu = 0.5 * x - 0.2
    log_var = -1.0 * x + 0.3
    z = mu + math.exp(log_var / 2) * eps
    logit = 2.0 * z + 0.1
    log_px = x * logit - math.log1p(math.exp(logit))
    kl = 0.5 * (math.exp(log_var) + mu ** 2 - 1.0 - log_var)
    loss, _ = model.loss_and_grads(np.array([[x]]), eps=np.array([[[eps]]]))
    assert float(loss) == pytest.approx(kl - log_px, rel=1e-12)
    # IWAE with k = 1 replaces the analytic KL by log q(z|x) - log p(z)
    model.set_params(objective="iwae")
    log_q = -0.5 * (math.log(2 * math.pi) + log_var + eps ** 2)
    log_p = -0.5 * (math.log(2 * math.pi) + z ** 2)
    loss, _ = model.loss_and_grads(np.array([[x]]), eps=np.array([[[eps]]]))
    assert float(loss) == pytest.approx(-(log_px + log_p - log_q), rel=1e-12)


def test_reparameterised_z_has_posterior_moments():
    """z = mu + exp(log_var/2) eps: sample mean mu and variance exp(log_var)
    (a std/var mix-up passes a gradient check but not this)."""
    rng = np.random.default_rng(5)
    model = VAE(6, n_latent=3, hidden=(5,), dtype="float64", random_state=5)
    X = rng.random((2, 6))
    model.initialize()
    model.params["enc_b_log_var"] = np.array([1.0, -1.0, 0.5])
    mu, log_var = model.encode(X)
    R = 20000
    eps = rng.standard_normal((R, 2, 3))
    import array_api_compat.numpy as xp

    f = model._forward(xp, X, eps, model.params)
    z = f["z"]
    var = np.exp(log_var)
    np.testing.assert_allclose(z.mean(axis=0), mu, atol=5 * np.sqrt(var.max() / R))
    np.testing.assert_allclose(z.var(axis=0), var, rtol=0.05)


def test_elbo_below_importance_sampled_log_marginal():
    rng = np.random.default_rng(6)
    model = VAE(12, n_latent=3, hidden=(8,), random_state=6, dtype="float64")
    X = rng.random((50, 12))
    elbo = model.elbo(X, rng=0, n_samples=200)
    log_px = model.log_marginal(X, n_importance=500, rng=1)
    assert elbo.shape == log_px.shape == (50,)
    assert np.mean(elbo) < np.mean(log_px)
    assert np.all(elbo < log_px + 0.05)  # per example, up to Monte Carlo error


def test_iwae_bound_rises_with_k():
    rng = np.random.default_rng(7)
    model = VAE(12, n_latent=3, hidden=(8,), decoder="gaussian", random_state=7,
                dtype="float64")
    X = rng.standard_normal((300, 12))
    bounds = [float(np.mean(model.log_marginal(X, n_importance=k, rng=k))) for k in (1, 5, 50)]
    assert bounds[0] < bounds[1] < bounds[2], bounds
    # k = 1 is the ELBO with a Monte Carlo KL: same expectation as the analytic-KL ELBO
    elbo = float(np.mean(model.elbo(X, rng=2, n_samples=50)))
    assert bounds[0] == pytest.approx(elbo, abs=0.5)


def _linear_gaussian(rng, D, L, sigma2, s2, orthogonal):
    """Linear decoder x = W z + b + noise and its exact marginal N(b, s^2 W W^T + sigma^2 I)."""
    W = rng.standard_normal((D, L))
    if orthogonal:
        W = np.linalg.qr(W)[0] * np.array([1.5, 0.7, 1.1][:L])  # W^T W diagonal
    b = rng.standard_normal(D)
    model = VAE(D, n_latent=L, hidden=(), activation="identity", decoder="gaussian",
                decoder_var="fixed", gaussian_var=sigma2, prior_var=s2, dtype="float64")
    model.initialize(random_state=0)
    model.params["dec_W_out"] = W.T.copy()
    model.params["dec_b_out"] = b
    C = s2 * W @ W.T + sigma2 * np.eye(D)
    return model, W, b, C


def _exact_log_marginal(X, b, C):
    D = X.shape[1]
    r = X - b
    _, logdet = np.linalg.slogdet(C)
    return -0.5 * (D * math.log(2 * math.pi) + logdet + np.sum(r @ np.linalg.inv(C) * r, axis=1))


def test_linear_gaussian_exact_posterior_gives_exact_marginal():
    """With q = p(z|x) (diagonal when W^T W is), every importance weight equals p(x)."""
    rng = np.random.default_rng(8)
    D, L, sigma2, s2 = 5, 2, 0.3, 1.7
    model, W, b, C = _linear_gaussian(rng, D, L, sigma2, s2, orthogonal=True)
    # posterior: Sigma = (I/s^2 + W^T W / sigma^2)^-1 (diagonal), mean = Sigma W^T (x - b) / sigma^2
    Sigma = np.linalg.inv(np.eye(L) / s2 + W.T @ W / sigma2)
    A = Sigma @ W.T / sigma2  # (L, D)
    model.params["enc_W_mu"] = A.T.copy()
    model.params["enc_b_mu"] = -A @ b
    model.params["enc_W_log_var"] = np.zeros((D, L))
    model.params["enc_b_log_var"] = np.log(np.diag(Sigma))
    X = rng.multivariate_normal(b, C, size=20)
    exact = _exact_log_marginal(X, b, C)
    np.testing.assert_allclose(model.log_marginal(X, n_importance=3, rng=0), exact, rtol=1e-10)


def test_linear_gaussian_importance_sampling_converges_to_exact_marginal():
    rng = np.random.default_rng(9)
    D, L, sigma2, s2 = 4, 2, 0.5, 1.0
    model, W, b, C = _linear_gaussian(rng, D, L, sigma2, s2, orthogonal=False)
    X = rng.multivariate_normal(b, C, size=10)
    exact = _exact_log_marginal(X, b, C)
    # proposal: the exact posterior mean shifted by 0.2, the diagonal of its
    # (full) covariance doubled -- close, not exact, with bounded weights
    Sigma = np.linalg.inv(np.eye(L) / s2 + W.T @ W / sigma2)
    A = Sigma @ W.T / sigma2  # (L, D)
    model.params["enc_W_mu"] = A.T.copy()
    model.params["enc_b_mu"] = -A @ b + 0.2
    model.params["enc_W_log_var"] = np.zeros((D, L))
    model.params["enc_b_log_var"] = np.log(2.0 * np.diag(Sigma))
    est_small = model.log_marginal(np.tile(X, (300, 1)), n_importance=2, rng=1)
    est = model.log_marginal(X, n_importance=20000, rng=2, batch_size=5)
    np.testing.assert_allclose(est, exact, atol=0.05)
    assert np.mean(exact - est) < np.mean(np.tile(exact, 300) - est_small)  # bias shrinks with k


def test_decode_reconstruct_and_sample():
    rng = np.random.default_rng(10)
    for dec, dv in DECODERS:
        model = VAE(6, n_latent=2, hidden=(5,), decoder=dec, decoder_var=dv, random_state=1)
        X = _data(rng, 4, 6, dec).astype(np.float32)
        mean = model.reconstruct(X)
        assert mean.shape == (4, 6) and mean.dtype == np.float32
        if dec != "gaussian":
            assert np.all((mean > 0) & (mean < 1))
        x = model.sample(5, rng=0)
        assert x.shape == (5, 6) and x.dtype == np.float32
        if dec == "bernoulli":
            assert set(np.unique(x)) <= {0.0, 1.0}
        if dec == "continuous_bernoulli":
            assert np.all((x >= 0) & (x <= 1))
    # Bernoulli decode = sigmoid(logits)
    model = VAE(3, n_latent=1, hidden=(), dtype="float64", random_state=0)
    model.initialize()
    z = np.array([[0.3], [-2.0]])
    logits = z @ model.params["dec_W_out"] + model.params["dec_b_out"]
    np.testing.assert_allclose(model.decode(z), 1 / (1 + np.exp(-logits)), rtol=1e-12)


def test_continuous_bernoulli_samples_have_the_decoded_mean():
    model = VAE(3, n_latent=1, hidden=(), decoder="continuous_bernoulli", prior_var=1e-12,
                dtype="float64")
    model.initialize()
    model.params["dec_b_out"] = np.array([-3.0, 0.0, 2.0])
    x = model.sample(40000, rng=3)
    mean = model.decode(np.zeros((1, 1)))[0]
    np.testing.assert_allclose(x.mean(axis=0), mean, atol=0.01)


def test_bernoulli_samples_have_the_decoded_mean():
    model = VAE(3, n_latent=1, hidden=(), prior_var=1e-12, dtype="float64")
    model.initialize()
    model.params["dec_b_out"] = np.array([-2.0, 0.0, 1.0])
    x = model.sample(40000, rng=4)
    np.testing.assert_allclose(x.mean(axis=0), 1 / (1 + np.exp(-np.array([-2.0, 0.0, 1.0]))),
                               atol=0.01)


def test_binarize_draws_bernoulli_of_grey_levels():
    model = VAE(4)
    X = np.tile(np.array([[0.0, 0.25, 0.9, 1.0]], dtype=np.float32), (20000, 1))
    Xb = model.binarize(X, np.random.default_rng(0))
    assert Xb.dtype == np.float32 and set(np.unique(Xb)) <= {0.0, 1.0}
    np.testing.assert_allclose(Xb.mean(axis=0), [0.0, 0.25, 0.9, 1.0], atol=0.01)
    assert X[0, 1] == np.float32(0.25)  # the caller's array is untouched


# --------------------------------------------------------------------------
# NumPy (numba kernels + workspace) == array-API reference, one code path
# --------------------------------------------------------------------------
@settings(max_examples=15)
@given(depth=st.integers(min_value=0, max_value=2), width=st.integers(min_value=1, max_value=40),
       n_latent=st.integers(min_value=1, max_value=6), N=st.integers(min_value=1, max_value=20),
       activation=st.sampled_from(["relu", "elu"]), dec=st.sampled_from(DECODERS),
       objective=st.sampled_from(["elbo", "iwae"]), n_samples=st.integers(1, 3),
       prior_var=st.sampled_from([1.0, 0.3]), seed=seeds)
def test_numpy_float32_path_equals_reference_path(depth, width, n_latent, N, activation, dec,
                                                  objective, n_samples, prior_var, seed):
    """The NumPy float32 run (fused kernels, workspace buffers, grads_out) and the
    array-API run of the same model (array-api-strict on the CPU device: the
    reference code of every op) give the same loss and gradients."""
    strict = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(seed)
    D = 17
    model = VAE(D, n_latent=n_latent, hidden=(width, width + 3)[:depth], activation=activation,
                decoder=dec[0], decoder_var=dec[1], objective=objective, n_samples=n_samples,
                prior_var=prior_var, random_state=seed)
    X = _data(rng, N, D, dec[0]).astype(np.float32)
    if dec[0] != "gaussian":
        X[:, 0] = 0.0
        X[:, 1] = 1.0
    model.initialize()
    eps = rng.standard_normal((n_samples, N, n_latent)).astype(np.float32)
    grads_out = {k: np.full_like(v, np.nan) for k, v in model.params.items()}
    loss_f, grads_f = model.loss_and_grads(X, eps=eps, grads_out=grads_out)
    assert grads_f is grads_out
    ref = VAE(D, n_latent=n_latent, hidden=(width, width + 3)[:depth], activation=activation,
              decoder=dec[0], decoder_var=dec[1], objective=objective, n_samples=n_samples,
              prior_var=prior_var)
    ref.params = {k: strict.asarray(v) for k, v in model.params.items()}
    loss_r, grads_r = ref.loss_and_grads(strict.asarray(X), eps=strict.asarray(eps))
    assert loss_f.dtype == np.float32
    assert float(loss_f) == pytest.approx(float(to_numpy(loss_r)), rel=1e-5, abs=1e-5)
    # float32 with different operation orders (fused kernels, merged heads):
    # agreement to float32 round-off accumulated through the layers, measured
    # against the model's gradient scale (a parameter whose gradient is 1e-4 of
    # the largest one carries the same absolute round-off as the others).
    scale = max(float(np.max(np.abs(to_numpy(g)))) for g in grads_r.values())
    for k in grads_r:
        assert grads_f[k].dtype == np.float32
        diff = float(np.max(np.abs(grads_f[k] - to_numpy(grads_r[k]))))
        assert diff <= 1e-4 * scale, (k, diff, scale)


def test_warm_numpy_training_step_allocates_no_array():
    """Once warm, a NumPy step (loss_and_grads into grads_out + in-place Adam) creates
    no workspace buffer and allocates no batch-sized array (only 0-d loss scalars)."""
    import tracemalloc

    from lvm_core import ops

    rng = np.random.default_rng(11)
    model = VAE(100, n_latent=64, hidden=(64,), random_state=0).initialize()
    X = rng.random((256, 100)).astype(np.float32)
    grads = {k: np.empty_like(v) for k, v in model.params.items()}
    state = None
    for _ in range(2):
        model.loss_and_grads(X, rng, grads_out=grads, check_input=False)
        state = ops.adam_(model.params, grads, state, lr=1e-3)
    n_buffers = model._ws.n_allocations
    tracemalloc.start()
    for _ in range(3):
        loss, _ = model.loss_and_grads(X, rng, grads_out=grads, check_input=False)
        state = ops.adam_(model.params, grads, state, lr=1e-3)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert model._ws.n_allocations == n_buffers
    smallest_array = 256 * 64 * 4  # the smallest (N, L) float32 array of the step: 64 KiB
    assert peak < smallest_array // 2, peak  # a few KiB of Python objects, no array
    assert np.isfinite(float(loss))


def test_fit_equals_a_hand_written_adam_loop():
    """fit (the one loop, in-place Adam) == loss_and_grads + lvm_core.nn.adam by hand,
    with the same draws (a permutation per epoch, then eps per step)."""
    from lvm_core.nn import adam

    rng = np.random.default_rng(11)
    X = rng.random((32, 20)).astype(np.float32)
    fitted = VAE(20, n_latent=3, hidden=(10,), random_state=0).initialize()
    by_hand = VAE(20, n_latent=3, hidden=(10,), random_state=0).initialize()
    fitted.fit(X, epochs=2, batch_size=16, lr=1e-2, random_state=5, progress=False)
    draws, state = np.random.default_rng(5), None
    for _ in range(2):
        perm = draws.permutation(32)
        for s in range(2):
            _, grads = by_hand.loss_and_grads(X[perm[16 * s:16 * (s + 1)]], draws)
            by_hand.params, state = adam(by_hand.params, grads, state, lr=1e-2)
    for k in fitted.params:
        assert fitted.params[k].dtype == np.float32
        np.testing.assert_allclose(fitted.params[k], by_hand.params[k], rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------
# backends, dtypes, training
# --------------------------------------------------------------------------
def test_loss_and_grads_keep_dtype_and_device(backend):
    rng = np.random.default_rng(12)
    model = VAE(6, n_latent=2, hidden=(5,), objective="iwae", n_samples=3,
                dtype=backend.dtype_name, random_state=0)
    X = backend.asarray(rng.random((4, 6)))
    loss, grads = model.loss_and_grads(X, rng=0)
    assert loss.dtype == backend.dtype
    for k, g in grads.items():
        assert g.dtype == backend.dtype and g.shape == model.params[k].shape
    eps = rng.standard_normal((3, 4, 2))
    loss, _ = model.loss_and_grads(X, eps=backend.asarray(eps))
    ref = VAE(6, n_latent=2, hidden=(5,), objective="iwae", n_samples=3, dtype="float64")
    ref.params = {k: to_numpy(v).astype(np.float64) for k, v in model.params.items()}
    ref_loss, _ = ref.loss_and_grads(to_numpy(X).astype(np.float64), eps=eps)
    assert float(to_numpy(loss)) == pytest.approx(float(ref_loss), rel=backend.rtol * 10)
    elbo = model.elbo(X, rng=0)
    assert elbo.shape == (4,) and elbo.dtype == backend.dtype
    lm = model.log_marginal(X, n_importance=7, rng=0, batch_size=3)
    assert lm.shape == (4,) and lm.dtype == backend.dtype


def test_fit_on_simulated_device_float32():
    strict = pytest.importorskip("array_api_strict")
    rng = np.random.default_rng(13)
    X = strict.asarray(rng.random((64, 10)), dtype=strict.float32,
                       device=strict.Device("device1"))
    model = VAE(10, n_latent=2, hidden=(8,), random_state=0)
    model.fit(X, epochs=3, batch_size=16, lr=1e-2, random_state=0, progress=False,
              validation_data=X, dynamic_binarization=True)
    assert model.params["enc_W0"].dtype == strict.float32
    assert len(model.history_.train_loss) == 3 and len(model.history_.val_loss) == 3
    assert all(math.isfinite(v) for v in model.history_.train_loss)


def test_fit_numpy_fast_path_learns():
    rng = np.random.default_rng(14)
    protos = (rng.random((3, 20)) > 0.5).astype(np.float32)
    X = protos[rng.integers(0, 3, 600)]
    model = VAE(20, n_latent=2, hidden=(16,), random_state=0).initialize()
    before = model.validation_loss(X)
    model.fit(X, epochs=8, batch_size=32, lr=1e-2, random_state=0, progress=False)
    after = model.validation_loss(X)
    assert model.params["enc_W0"].dtype == np.float32
    assert model.history_.train_loss[-1] < model.history_.train_loss[0]
    # 3 binary patterns: -ELBO can approach log 3 + small KL; it starts near 20 log 2
    assert after < 0.5 * before, (before, after)


def test_fit_is_reproducible_with_random_state_zero():
    rng = np.random.default_rng(15)
    X = rng.random((64, 8)).astype(np.float32)
    a = VAE(8, n_latent=2, hidden=(4,), random_state=0).fit(X, epochs=2, batch_size=16,
                                                            random_state=0, progress=False)
    b = VAE(8, n_latent=2, hidden=(4,), random_state=0).fit(X, epochs=2, batch_size=16,
                                                            random_state=0, progress=False)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])


def test_params_are_json_serialisable_and_save_load_round_trip(tmp_path):
    from lvm_core import io

    model = VAE(7, n_latent=2, hidden=[5, 4], decoder="gaussian", decoder_var="learned",
                objective="iwae", n_samples=2, random_state=0)
    json.dumps(model.get_params())
    X = np.random.default_rng(16).standard_normal((5, 7)).astype(np.float32)
    loss, _ = model.loss_and_grads(X, rng=0)
    io.save(model, tmp_path / "vae.h5")
    loaded = io.load(tmp_path / "vae.h5", expected_type=VAE)
    assert loaded.get_params() == model.get_params()
    loss2, _ = loaded.loss_and_grads(X, rng=0)
    assert float(loss2) == float(loss)


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, word", [
    (dict(decoder="poisson"), "decoder"), (dict(objective="elbo2"), "objective"),
    (dict(n_samples=0), "n_samples"), (dict(prior_var=-1.0), "prior_var"),
    (dict(gaussian_var=0.0), "gaussian_var"), (dict(hidden="400"), "hidden"),
    (dict(activation="gelu"), "activation"), (dict(dtype="float16"), "dtype"),
])
def test_bad_hyperparameters_are_named(kwargs, word):
    with pytest.raises((ValueError, TypeError), match=word):
        VAE(5, **kwargs)


def test_bad_data_is_named():
    model = VAE(5, n_latent=2, hidden=(3,))
    with pytest.raises(ValueError, match="X must have 5 features"):
        model.loss_and_grads(np.zeros((2, 4), np.float32), rng=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        model.loss_and_grads(np.full((2, 5), 2.0, np.float32), rng=0)
    with pytest.raises(ValueError, match="eps must have shape"):
        model.loss_and_grads(np.zeros((2, 5), np.float32), eps=np.zeros((1, 3, 2), np.float32))
    X = np.zeros((2, 5), np.float32)
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="X"):
        model.elbo(X)
    with pytest.raises(ValueError, match="dynamic_binarization"):
        VAE(5, decoder="gaussian").fit(np.zeros((4, 5)), dynamic_binarization=True,
                                       progress=False)
