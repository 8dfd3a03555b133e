"""MLP and weight initialisation: hypothesis gradient checks (float64 central
differences), PyTorch autograd oracle, backend matrix, initialisation
statistics and argument errors.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lvm_core.backend import device_of, to_numpy
from lvm_core.gradcheck import check_grads, relative_error
from lvm_core.gradcheck import grad_report
from lvm_core.nn import ACTIVATIONS, MLP, init_linear
from lvm_core.ops import reference

from .conftest import Backend, require

RTOL = 1e-6
# Step for central differences.  A deep net can have parameter gradients of
# ~5e-4 while the loss is O(1); float64 rounding in f then contributes
# ~eps |f| / h to the numeric gradient, i.e. a relative error of ~4e-7 at
# h = 1e-6 but ~4e-8 at h = 1e-5 (the O(h^2) truncation stays far smaller).
H = 1e-5
_ERRORS = []


@pytest.fixture(scope="module", autouse=True)
def _report_largest_error():
    yield
    if _ERRORS:
        print(f"\n[test_nn_mlp] {len(_ERRORS)} gradient checks, largest relative error "
              f"{max(_ERRORS):.3e}")
activations = st.sampled_from(sorted(ACTIVATIONS))
output_activations = st.sampled_from([None, "sigmoid", "tanh", "softplus"])
sizes_st = st.lists(st.integers(min_value=1, max_value=5), min_size=2, max_size=4)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def _away_from_kinks(mlp, x, params, margin=1e-3):
    """True when no pre-activation lies within ``margin`` of 0 (relu/elu kinks)."""
    h = x
    for i in range(mlp.n_layers):
        a = h @ params[f"{mlp.prefix}W{i}"] + params[f"{mlp.prefix}b{i}"]
        if np.any(np.abs(a) < margin):
            return False
        h = reference.bias_act(a, 0.0 * a[0], mlp.layers[i].activation)
    return True


@settings(max_examples=20)
@given(sizes=sizes_st, activation=activations, output_activation=output_activations,
       N=st.integers(min_value=1, max_value=4), seed=seeds, prefix=st.sampled_from(["", "enc_"]))
def test_grad_mlp(sizes, activation, output_activation, N, seed, prefix):
    rng = np.random.default_rng(seed)
    mlp = MLP(sizes, activation=activation, output_activation=output_activation,
              dtype="float64", random_state=seed, prefix=prefix)
    x = rng.standard_normal((N, sizes[0]))
    # a kink within h of a pre-activation would invalidate central differences
    assume(_away_from_kinks(mlp, x, mlp.params))
    w = rng.standard_normal((N, sizes[-1]))  # upstream gradient
    y, cache = mlp.forward(x)
    dx, grads = mlp.backward(w, cache)
    assert set(grads) == set(mlp.params)
    assert all(grads[k].shape == mlp.params[k].shape for k in grads)
    # Finite differences resolve a gradient only down to ~1e-11 (1 + |loss|)
    # (float64 rounding of the loss divided by h).  Nets whose gradient for some
    # array is below 1e-4 (1 + |loss|) -- e.g. leaky_relu(0.01) through width-1
    # layers gives ~1e-6 -- cannot be checked to 1e-6 relative error, so they are
    # not drawn; the torch oracle test below covers them analytically.
    # The filter looks at the numeric gradient only (never the analytic one), and
    # the error is scaled by max(|analytic|, |numeric|): a zeroed backward fails.
    scale = 1e-4 * (1.0 + float(np.sum(np.abs(w * y))))
    reports = grad_report(lambda p: np.sum(w * mlp.forward(x, p)[0]), mlp.params, grads, h=H)
    reports["x"] = grad_report(lambda p: np.sum(w * mlp.forward(p["x"])[0]), {"x": x},
                               {"x": dx}, h=H)["x"]
    assume(all(r.numeric_max > scale for r in reports.values()))
    errors = {k: r.error for k, r in reports.items()}
    _ERRORS.extend(errors.values())
    assert max(errors.values()) < RTOL


def test_mlp_shared_params_dict_with_prefixes():
    """Two MLPs in one flat dict: each reads and differentiates only its keys."""
    enc = MLP([3, 4, 2], prefix="enc_", random_state=0, dtype="float64")
    dec = MLP([2, 4, 3], prefix="dec_", random_state=1, dtype="float64")
    params = {**enc.params, **dec.params}
    x = np.random.default_rng(0).standard_normal((5, 3))
    z, c1 = enc.forward(x, params)
    y, c2 = dec.forward(z, params)
    dz, g_dec = dec.backward(np.ones_like(y), c2)
    dx, g_enc = enc.backward(dz, c1)
    assert sorted(g_enc) == ["enc_W0", "enc_W1", "enc_b0", "enc_b1"]
    assert sorted(g_dec) == ["dec_W0", "dec_W1", "dec_b0", "dec_b1"]
    grads = {**g_enc, **g_dec}
    errors = check_grads(lambda p: np.sum(dec.forward(enc.forward(x, p)[0], p)[0]), params, grads,
                         h=H, rtol=RTOL)
    _ERRORS.extend(errors.values())
    assert max(errors.values()) < RTOL
    with pytest.raises(KeyError, match="enc_W0"):
        enc.forward(x, dec.params)


def test_mlp_does_not_mutate_inputs_and_is_reproducible():
    a = MLP([3, 5, 2], random_state=0)
    b = MLP([3, 5, 2], random_state=0)
    c = MLP([3, 5, 2], random_state=1)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert not np.array_equal(a.params["W0"], c.params["W0"])
    x = np.linspace(-1, 1, 6, dtype=np.float32).reshape(2, 3)
    x_copy = x.copy()
    before = {k: v.copy() for k, v in a.params.items()}
    y, cache = a.forward(x)
    a.backward(np.ones_like(y), cache)
    np.testing.assert_array_equal(x, x_copy)
    for k in before:
        np.testing.assert_array_equal(a.params[k], before[k])


def test_mlp_argument_errors():
    with pytest.raises(ValueError, match="sizes"):
        MLP([3])
    with pytest.raises(ValueError, match="sizes"):
        MLP([3, 0, 2])
    with pytest.raises(ValueError, match="activation must be one of"):
        MLP([3, 2], activation="swish")
    with pytest.raises(ValueError, match="init must be one of"):
        MLP([3, 2], init="lecun")
    with pytest.raises(TypeError, match="bool"):
        MLP([3, 2], random_state=True)
    mlp = MLP([3, 2], random_state=0)
    with pytest.raises(ValueError, match="D_in"):
        mlp.forward(np.ones((2, 4), dtype=np.float32))
    assert "sizes=[3, 2]" in repr(mlp)


# ------------------------------------------------------------------ initialisation
@pytest.mark.parametrize("scheme", ["torch", "glorot", "he"])
def test_init_linear_statistics(scheme):
    d_in, d_out = 400, 300
    W, b = init_linear(0, d_in, d_out, scheme=scheme)
    assert W.shape == (d_in, d_out) and b.shape == (d_out,)
    assert W.dtype == np.float32 and b.dtype == np.float32
    if scheme == "torch":
        bound = 1 / math.sqrt(d_in)
        assert np.abs(W).max() <= bound and np.abs(b).max() <= bound
        assert W.var() == pytest.approx(bound**2 / 3, rel=0.02)  # U(-a, a): var a^2 / 3
        assert b.var() == pytest.approx(bound**2 / 3, rel=0.2)
    elif scheme == "glorot":
        bound = math.sqrt(6 / (d_in + d_out))
        assert np.abs(W).max() <= bound and np.all(b == 0)
        assert W.var() == pytest.approx(2 / (d_in + d_out), rel=0.02)
    else:
        assert np.all(b == 0)
        assert W.var() == pytest.approx(2 / d_in, rel=0.02)
        assert abs(W.mean()) < 5 * math.sqrt(2 / d_in / W.size)


def test_init_linear_errors_and_dtype():
    W, b = init_linear(0, 2, 3, dtype="float64")
    assert W.dtype == np.float64 and b.dtype == np.float64
    with pytest.raises(ValueError, match="scheme must be one of"):
        init_linear(0, 2, 3, scheme="xavier")
    with pytest.raises(ValueError, match="d_in must be a positive integer"):
        init_linear(0, 0, 3)
    with pytest.raises(ValueError, match="dtype must be"):
        init_linear(0, 2, 3, dtype="int32")


@pytest.mark.oracle
def test_init_torch_scheme_matches_torch_distribution():
    """torch's nn.Linear weights and ours have the same bound and variance."""
    torch = require("torch")
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 512)
    W, b = init_linear(0, 256, 512, scheme="torch")
    theirs = layer.weight.detach().numpy()
    assert np.abs(W).max() <= 1 / 16 and np.abs(theirs).max() <= 1 / 16
    assert W.var() == pytest.approx(float(theirs.var()), rel=0.03)
    assert b.var() == pytest.approx(float(layer.bias.detach().numpy().var()), rel=0.3)


# ------------------------------------------------------------------ oracle
TORCH_ACTIVATIONS = {
    "relu": lambda torch: torch.nn.functional.relu,
    "leaky_relu": lambda torch: (lambda a: torch.nn.functional.leaky_relu(a, 0.01)),
    "tanh": lambda torch: torch.tanh,
    "sigmoid": lambda torch: torch.sigmoid,
    "softplus": lambda torch: torch.nn.functional.softplus,
    "elu": lambda torch: torch.nn.functional.elu,
    "identity": lambda torch: (lambda a: a),
}


@pytest.mark.oracle
@settings(max_examples=20)
@given(sizes=st.lists(st.integers(min_value=1, max_value=8), min_size=2, max_size=5),
       activation=activations, output_activation=output_activations,
       N=st.integers(min_value=1, max_value=6), seed=seeds)
def test_mlp_matches_torch_autograd(sizes, activation, output_activation, N, seed):
    torch = require("torch")
    mlp = MLP(sizes, activation=activation, output_activation=output_activation,
              dtype="float64", random_state=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, sizes[0]))
    w = rng.standard_normal((N, sizes[-1]))
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in mlp.params.items()}
    tx = torch.tensor(x, requires_grad=True)
    f = TORCH_ACTIVATIONS[activation](torch)
    g = TORCH_ACTIVATIONS["identity" if output_activation is None else output_activation](torch)
    h = tx
    for i in range(mlp.n_layers):
        a = h @ tp[f"W{i}"] + tp[f"b{i}"]
        h = g(a) if i == mlp.n_layers - 1 else f(a)
    (torch.tensor(w) * h).sum().backward()
    y, cache = mlp.forward(x)
    dx, grads = mlp.backward(w, cache)
    assert relative_error(y, h.detach().numpy()) < RTOL
    assert relative_error(dx, tx.grad.numpy()) < RTOL
    for k in grads:
        assert relative_error(grads[k], tp[k].grad.numpy()) < RTOL, k


# ------------------------------------------------------------------ backend matrix
REFERENCE = Backend("numpy", "float64")


@pytest.mark.parametrize("activation", ["relu", "tanh", "elu", "softplus"])
def test_mlp_backend_matches_numpy_float64(backend, activation):
    rng = np.random.default_rng(5)
    host_x = rng.standard_normal((4, 3)).astype(backend.dtype_name).astype(np.float64)
    host_dy = rng.standard_normal((4, 2)).astype(backend.dtype_name).astype(np.float64)
    like = backend.asarray(np.zeros(1))
    mlp = MLP([3, 6, 5, 2], activation=activation, output_activation="sigmoid",
              dtype=backend.dtype_name, random_state=3, like=like)
    ref = MLP([3, 6, 5, 2], activation=activation, output_activation="sigmoid",
              dtype="float64", random_state=3)
    ref.params = {k: to_numpy(v).astype(np.float64) for k, v in mlp.params.items()}
    for v in mlp.params.values():
        assert v.dtype == backend.dtype and device_of(v) == device_of(like)
    y, cache = mlp.forward(backend.asarray(host_x))
    dx, grads = mlp.backward(backend.asarray(host_dy), cache)
    y_ref, cache_ref = ref.forward(host_x)
    dx_ref, grads_ref = ref.backward(host_dy, cache_ref)
    tol = 1e-5 if backend.dtype_name == "float32" else 1e-12
    outs = [(y, y_ref), (dx, dx_ref)] + [(grads[k], grads_ref[k]) for k in grads_ref]
    for ours, theirs in outs:
        assert ours.dtype == backend.dtype and device_of(ours) == device_of(like)
        assert relative_error(to_numpy(ours), theirs) < tol
