"""Layers of lvm_core.nn (Dense, MaskedDense, GaussianHead) and their protocol.

Every backward against float64 central differences (relative error < 1e-6,
scaled by max(|analytic|, |numeric|), filtered on the numeric gradient only),
through the code path training uses (with and without a workspace, into
existing gradient buffers); PyTorch autograd as an oracle; the backend matrix
(NumPy, array-api-strict device1; float32, float64); what the layers mean
(masked weights are cut, one-matmul heads equal two Dense layers).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lvm_core import ops
from lvm_core.backend import to_numpy
from lvm_core.gradcheck import check_grads_resolvable
from lvm_core.nn import Dense, GaussianHead, MaskedDense

from .conftest import require

seeds = st.integers(min_value=0, max_value=2**32 - 1)
dims = st.integers(min_value=1, max_value=5)
activations = st.sampled_from(list(ops.ACTIVATIONS))


def _make(kind, d_in, d_out, act, rng, transpose=False, bias=True):
    if kind == "dense":
        return Dense(d_in, d_out, act, prefix="l_", suffix="0", transpose=transpose, bias=bias)
    if kind == "masked":
        mask = (rng.random((d_in, d_out)) < 0.6).astype(np.float64)
        return MaskedDense(d_in, d_out, mask, act, prefix="m_")
    return GaussianHead(d_in, d_out, prefix="q_")


def _forward_sum(layer, params, x, w, ws=None):
    y, _ = layer.forward(params, x, ws)
    if isinstance(y, tuple):
        return float(np.sum(w[0] * to_numpy(y[0])) + np.sum(w[1] * to_numpy(y[1])))
    return float(np.sum(w * to_numpy(y)))


def _upstream(layer, N, rng):
    if isinstance(layer, GaussianHead):
        return (rng.standard_normal((N, layer.d_out)), rng.standard_normal((N, layer.d_out)))
    return rng.standard_normal((N, layer.d_out))


def _away_from_kinks(layer, params, x, margin=1e-3):
    if isinstance(layer, GaussianHead) or layer.activation in ("identity", "tanh", "sigmoid",
                                                               "softplus"):
        return True
    W = layer._weight(params, None)
    a = x @ (W.T if layer.transpose else W)
    if layer.bias:
        a = a + params[layer.b_key]
    return bool(np.all(np.abs(a) > margin))


@settings(max_examples=30)
@given(kind=st.sampled_from(["dense", "masked", "head"]), d_in=dims, d_out=dims,
       N=st.integers(1, 4), act=activations, transpose=st.booleans(), bias=st.booleans(),
       use_ws=st.booleans(), buffers=st.booleans(), seed=seeds)
def test_layer_backward_matches_central_differences(kind, d_in, d_out, N, act, transpose, bias,
                                                    use_ws, buffers, seed):
    rng = np.random.default_rng(seed)
    layer = _make(kind, d_in, d_out, act, rng, transpose, bias)
    params = layer.init(rng, dtype="float64")
    assert sorted(params) == sorted(layer.param_names)
    x = rng.standard_normal((N, d_in))
    assume(_away_from_kinks(layer, params, x))
    w = _upstream(layer, N, rng)
    ws = ops.Workspace() if use_ws else None
    y, cache = layer.forward(params, x, ws)
    grads = {k: np.full_like(v, np.nan) for k, v in params.items()} if buffers else {}
    ids = {k: id(v) for k, v in grads.items()}
    dx = layer.backward(params, w, cache, grads, ws)
    assert set(grads) == set(params)
    if buffers:  # written in place into the caller's buffers
        assert {k: id(v) for k, v in grads.items()} == ids
    grads = {k: np.array(v, copy=True) for k, v in grads.items()}  # ws buffers get reused
    dx = np.array(dx, copy=True)
    f = lambda p: _forward_sum(layer, p, x, w)  # noqa: E731
    check_grads_resolvable(f, params, grads, f(params), h=1e-6)
    check_grads_resolvable(lambda p: _forward_sum(layer, params, p["x"], w), {"x": x},
                           {"x": dx}, f(params), h=1e-6)
    assert layer.backward(params, w, layer.forward(params, x)[1], {}, need_dx=False) is None


TORCH_ACT = {"identity": lambda t, a: a, "relu": lambda t, a: t.relu(a),
             "leaky_relu": lambda t, a: t.nn.functional.leaky_relu(a, 0.01),
             "tanh": lambda t, a: t.tanh(a), "sigmoid": lambda t, a: t.sigmoid(a),
             "softplus": lambda t, a: t.nn.functional.softplus(a),
             "elu": lambda t, a: t.nn.functional.elu(a)}


@pytest.mark.oracle
@pytest.mark.parametrize("act", list(ops.ACTIVATIONS))
@pytest.mark.parametrize("kind", ["dense", "transposed", "masked"])
def test_dense_layers_match_torch_autograd(act, kind):
    torch = require("torch")
    rng = np.random.default_rng(5)
    N, d_in, d_out = 4, 5, 3
    layer = _make("masked" if kind == "masked" else "dense", d_in, d_out, act, rng,
                  transpose=kind == "transposed")
    params = layer.init(rng, dtype="float64")
    x, w = rng.standard_normal((N, d_in)), rng.standard_normal((N, d_out))
    Wt = torch.tensor(params[layer.W_key], requires_grad=True)
    bt = torch.tensor(params[layer.b_key], requires_grad=True)
    xt = torch.tensor(x, requires_grad=True)
    W_eff = Wt.T if kind == "transposed" else Wt
    if kind == "masked":
        W_eff = W_eff * torch.tensor(layer.mask)
    yt = TORCH_ACT[act](torch, xt @ W_eff + bt)
    (torch.tensor(w) * yt).sum().backward()
    y, cache = layer.forward(params, x, ops.Workspace())
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    grads = {}
    dx = layer.backward(params, w, cache, grads)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[layer.W_key], Wt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[layer.b_key], bt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.oracle
def test_gaussian_head_matches_torch_autograd():
    torch = require("torch")
    rng = np.random.default_rng(6)
    head = GaussianHead(5, 3, prefix="enc_")
    params = head.init(rng, dtype="float64")
    x = rng.standard_normal((4, 5))
    wm, wv = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    t = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    xt = torch.tensor(x, requires_grad=True)
    mu_t = xt @ t["enc_W_mu"] + t["enc_b_mu"]
    lv_t = xt @ t["enc_W_log_var"] + t["enc_b_log_var"]
    ((torch.tensor(wm) * mu_t).sum() + (torch.tensor(wv) * lv_t).sum()).backward()
    (mu, lv), cache = head.forward(params, x)
    np.testing.assert_allclose(mu, mu_t.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(lv, lv_t.detach().numpy(), rtol=1e-12)
    grads = {}
    dx = head.backward(params, (wm, wv), cache, grads)
    np.testing.assert_allclose(dx, xt.grad.numpy(), rtol=1e-10, atol=1e-12)
    for k in params:
        np.testing.assert_allclose(grads[k], t[k].grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["dense", "masked", "head"])
def test_layers_on_every_backend(backend, kind):
    rng = np.random.default_rng(7)
    layer = _make(kind, 4, 3, "elu", rng)
    host = layer.init(np.random.default_rng(0), dtype="float64")
    x, w = rng.standard_normal((5, 4)), _upstream(layer, 5, rng)
    y_ref, c_ref = layer.forward(host, x)
    g_ref = {}
    dx_ref = layer.backward(host, w, c_ref, g_ref)
    params = {k: backend.asarray(v) for k, v in host.items()}
    dev_w = tuple(backend.asarray(v) for v in w) if isinstance(w, tuple) else backend.asarray(w)
    y, cache = layer.forward(params, backend.asarray(x), ops.Workspace())
    grads = {k: backend.asarray(np.zeros_like(v)) for k, v in host.items()}
    dx = layer.backward(params, dev_w, cache, grads, ops.Workspace())
    tol = dict(rtol=2e-4, atol=1e-5) if backend.dtype_name == "float32" else dict(rtol=1e-12,
                                                                                  atol=1e-12)
    ys, ys_ref = (y, y_ref) if isinstance(y, tuple) else ((y,), (y_ref,))
    for a, b in zip(ys, ys_ref):
        assert a.dtype == backend.dtype
        np.testing.assert_allclose(backend.to_numpy(a), b, **tol)
    assert dx.dtype == backend.dtype
    np.testing.assert_allclose(backend.to_numpy(dx), dx_ref, **tol)
    for k in host:
        assert grads[k].dtype == backend.dtype
        np.testing.assert_allclose(backend.to_numpy(grads[k]), g_ref[k], **tol)


def test_layer_init_on_a_device_and_names():
    strict = require("array_api_strict")
    like = strict.zeros(1, device=strict.Device("device1"))
    layer = Dense(3, 2, "relu", prefix="dec_", suffix="_out")
    assert layer.param_names == ["dec_W_out", "dec_b_out"]
    p = layer.init(0, dtype="float32", like=like)
    assert p["dec_W_out"].device == like.device and p["dec_W_out"].dtype == strict.float32
    assert Dense(3, 2, bias=False, transpose=True, W_key="V").param_names == ["V"]
    assert GaussianHead(3, 2, prefix="dec_", mu_name="out").param_names == [
        "dec_W_out", "dec_b_out", "dec_W_log_var", "dec_b_log_var"]


def test_masked_weights_are_cut_and_get_no_gradient():
    rng = np.random.default_rng(8)
    mask = np.array([[1, 0], [0, 1], [1, 1]])
    layer = MaskedDense(3, 2, mask, "tanh")
    params = layer.init(rng, dtype="float64")
    x = rng.standard_normal((4, 3))
    y, cache = layer.forward(params, x)
    changed = dict(params)
    changed["W"] = params["W"] + 100.0 * (1 - mask)  # only masked-out entries
    np.testing.assert_array_equal(layer.forward(changed, x)[0], y)
    grads = {}
    layer.backward(params, np.ones_like(y), cache, grads)
    assert np.all(grads["W"][mask == 0] == 0.0) and np.all(grads["W"][mask == 1] != 0.0)
    with pytest.raises(ValueError, match="only 0 and 1"):
        MaskedDense(3, 2, 2 * mask)
    with pytest.raises(ValueError, match="mask must have shape"):
        MaskedDense(3, 3, mask)


def test_gaussian_head_equals_two_dense_layers():
    rng = np.random.default_rng(9)
    head = GaussianHead(5, 3, prefix="enc_")
    params = head.init(np.random.default_rng(1), dtype="float64")
    # the same draws, in the same order, as two Dense layers
    mu_layer = Dense(5, 3, prefix="enc_", suffix="_mu")
    lv_layer = Dense(5, 3, prefix="enc_", suffix="_log_var")
    r = np.random.default_rng(1)
    two = {**mu_layer.init(r, dtype="float64"), **lv_layer.init(r, dtype="float64")}
    for k in params:
        np.testing.assert_array_equal(params[k], two[k])
    x = rng.standard_normal((4, 5))
    (mu, lv), _ = head.forward(params, x, ops.Workspace())
    np.testing.assert_allclose(mu, mu_layer.forward(params, x)[0], rtol=1e-13)
    np.testing.assert_allclose(lv, lv_layer.forward(params, x)[0], rtol=1e-13)


def test_workspace_outputs_are_reused_and_inputs_untouched():
    rng = np.random.default_rng(10)
    layer = Dense(4, 3, "relu")
    params = layer.init(rng)
    x = rng.standard_normal((5, 4)).astype(np.float32)
    x_copy = x.copy()
    ws = ops.Workspace()
    y1, c1 = layer.forward(params, x, ws)
    n = ws.n_allocations
    y2, c2 = layer.forward(params, x, ws)
    assert y1 is y2 and ws.n_allocations == n
    dy = np.ones_like(y2)
    layer.backward(params, dy, c2, {}, ws)
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(dy, np.ones_like(y2))
    assert layer.forward(params, x)[0] is not y2  # without a workspace: fresh arrays


def test_layer_errors_name_the_problem():
    layer = Dense(3, 2, prefix="enc_", suffix="0")
    params = layer.init(0)
    with pytest.raises(ValueError, match="D_in = 3"):
        layer.forward(params, np.zeros((2, 4), np.float32))
    with pytest.raises(TypeError, match="dtype"):
        layer.forward(params, np.zeros((2, 3), np.float64))
    with pytest.raises(KeyError, match="enc_W0"):
        layer.forward({}, np.zeros((2, 3), np.float32))
    with pytest.raises(ValueError, match="activation must be one of"):
        Dense(3, 2, "swish")
