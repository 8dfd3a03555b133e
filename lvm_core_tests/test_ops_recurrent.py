"""lvm_core.ops.recurrent: the GRU and LSTM gate blocks.

* fused (numba + NumPy tanh) == array-API reference, float32 and float64;
* the backward of each block against float64 central differences (relative
  error < 1e-6), through the public functions the cells call;
* PyTorch autograd as an oracle;
* meaning: saturated gates copy the state;
* the backend matrix (NumPy and array-api-strict's device1).
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core import ops
from lvm_core.backend import to_numpy
from lvm_core.gradcheck import check_gradient
from lvm_core.ops import reference as ref

from .conftest import require

RTOL = 1e-6
seeds = st.integers(min_value=0, max_value=2**32 - 1)
dims = st.integers(min_value=1, max_value=7)
dtypes = st.sampled_from([np.float32, np.float64])


def _close(a, b, dtype):
    a = np.asarray(to_numpy(a), dtype=np.float64)
    b = np.asarray(to_numpy(b), dtype=np.float64)
    if dtype == np.float32:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)


def _gru_inputs(rng, N, H, dtype, scale=2.0):
    gx = (scale * rng.standard_normal((N, 3 * H))).astype(dtype)
    gh = (scale * rng.standard_normal((N, 3 * H))).astype(dtype)
    h = rng.standard_normal((N, H)).astype(dtype)
    return gx, gh, h


def _lstm_inputs(rng, N, H, dtype, scale=2.0):
    a = (scale * rng.standard_normal((N, 4 * H))).astype(dtype)
    c = rng.standard_normal((N, H)).astype(dtype)
    return a, c


# --------------------------------------------------------------------------- fused == reference
@settings(max_examples=25)
@given(N=dims, H=dims, dtype=dtypes, seed=seeds)
def test_gru_fused_equals_reference(N, H, dtype, seed):
    rng = np.random.default_rng(seed)
    gx, gh, h = _gru_inputs(rng, N, H, dtype)
    gates, h_new = ops.gru_gates(gx, gh, h)
    assert gates.dtype == h_new.dtype == dtype
    g_r, h_r = ref.gru_gates(gx, gh, h)
    _close(gates, g_r, dtype)
    _close(h_new, h_r, dtype)
    dh = rng.standard_normal((N, H)).astype(dtype)
    ghn = np.ascontiguousarray(gh[:, 2 * H:])
    for got, want in zip(ops.gru_gates_backward(dh, h, gates, ghn),
                         ref.gru_gates_backward(dh, h, g_r, ghn)):
        assert got.dtype == dtype
        _close(got, want, dtype)


@settings(max_examples=25)
@given(N=dims, H=dims, dtype=dtypes, seed=seeds)
def test_lstm_fused_equals_reference(N, H, dtype, seed):
    rng = np.random.default_rng(seed)
    a, c = _lstm_inputs(rng, N, H, dtype)
    got = ops.lstm_gates(a, c)
    want = ref.lstm_gates(a, c)
    for g, w in zip(got, want):
        assert g.dtype == dtype
        _close(g, w, dtype)
    dh = rng.standard_normal((N, H)).astype(dtype)
    dc = rng.standard_normal((N, H)).astype(dtype)
    for g, w in zip(ops.lstm_gates_backward(dh, dc, c, got[0], got[2]),
                    ref.lstm_gates_backward(dh, dc, c, want[0], want[2])):
        _close(g, w, dtype)


def test_results_are_written_into_given_buffers():
    rng = np.random.default_rng(0)
    N, H = 3, 4
    gx, gh, h = _gru_inputs(rng, N, H, np.float64)
    g_buf, h_buf = np.empty((N, 3 * H)), np.empty((N, H))
    g, hn = ops.gru_gates(gx, gh, h, gates=g_buf, h_new=h_buf)
    assert g is g_buf and hn is h_buf
    a, c = _lstm_inputs(rng, N, H, np.float64)
    bufs = (np.empty((N, 4 * H)), np.empty((N, H)), np.empty((N, H)), np.empty((N, H)))
    out = ops.lstm_gates(a, c, *bufs)
    assert all(o is b for o, b in zip(out, bufs))
    # inputs are never written
    a0 = a.copy()
    ops.lstm_gates(a, c)
    np.testing.assert_array_equal(a, a0)


# --------------------------------------------------------------------------- finite differences
@settings(max_examples=15)
@given(N=dims, H=dims, seed=seeds)
def test_gru_backward_is_the_gradient(N, H, seed):
    rng = np.random.default_rng(seed)
    gx, gh, h = _gru_inputs(rng, N, H, np.float64)
    w_h = rng.standard_normal((N, H))

    def loss(gx_, gh_, h_):
        return np.sum(w_h * ops.gru_gates(gx_, gh_, h_)[1])

    gates, _ = ops.gru_gates(gx, gh, h)
    dA_x, dA_h, dh_z = ops.gru_gates_backward(w_h, h, gates, np.ascontiguousarray(gh[:, 2 * H:]))
    assert check_gradient(lambda t: loss(t, gh, h), gx, dA_x, rtol=RTOL) < RTOL
    assert check_gradient(lambda t: loss(gx, t, h), gh, dA_h, rtol=RTOL) < RTOL
    # dL/dh_prev through the cell's elementwise part is dh * z
    assert check_gradient(lambda t: loss(gx, gh, t), h, dh_z, rtol=RTOL) < RTOL


@settings(max_examples=15)
@given(N=dims, H=dims, seed=seeds)
def test_lstm_backward_is_the_gradient(N, H, seed):
    rng = np.random.default_rng(seed)
    a, c = _lstm_inputs(rng, N, H, np.float64)
    w_h = rng.standard_normal((N, H))
    w_c = rng.standard_normal((N, H))

    def loss(a_, c_):
        _, c_new, _, h_new = ops.lstm_gates(a_, c_)
        return np.sum(w_h * h_new) + np.sum(w_c * c_new)

    gates, _, tanh_c, _ = ops.lstm_gates(a, c)
    dA, dc_prev = ops.lstm_gates_backward(w_h, w_c, c, gates, tanh_c)
    assert check_gradient(lambda t: loss(t, c), a, dA, rtol=RTOL) < RTOL
    assert check_gradient(lambda t: loss(a, t), c, dc_prev, rtol=RTOL) < RTOL


def test_gradients_are_not_zero():
    """The finite-difference tests above cannot pass with a wrongly zero backward."""
    rng = np.random.default_rng(1)
    gx, gh, h = _gru_inputs(rng, 3, 4, np.float64, scale=0.5)
    gates, _ = ops.gru_gates(gx, gh, h)
    out = ops.gru_gates_backward(np.ones((3, 4)), h, gates, np.ascontiguousarray(gh[:, 8:]))
    assert all(np.abs(o).max() > 1e-2 for o in out)
    a, c = _lstm_inputs(rng, 3, 4, np.float64, scale=0.5)
    gates, _, tanh_c, _ = ops.lstm_gates(a, c)
    out = ops.lstm_gates_backward(np.ones((3, 4)), np.ones((3, 4)), c, gates, tanh_c)
    assert all(np.abs(o).max() > 1e-2 for o in out)


# --------------------------------------------------------------------------- torch oracle
def test_gates_match_torch_autograd():
    torch = require("torch")
    rng = np.random.default_rng(2)
    N, H = 4, 5
    gx, gh, h = _gru_inputs(rng, N, H, np.float64)
    dh = rng.standard_normal((N, H))
    t_gx, t_gh, t_h = (torch.tensor(v, requires_grad=True) for v in (gx, gh, h))
    r = torch.sigmoid(t_gx[:, :H] + t_gh[:, :H])
    z = torch.sigmoid(t_gx[:, H:2 * H] + t_gh[:, H:2 * H])
    n = torch.tanh(t_gx[:, 2 * H:] + r * t_gh[:, 2 * H:])
    t_hn = (1 - z) * n + z * t_h
    t_hn.backward(torch.tensor(dh))
    gates, hn = ops.gru_gates(gx, gh, h)
    np.testing.assert_allclose(hn, t_hn.detach().numpy(), rtol=1e-12, atol=1e-14)
    dA_x, dA_h, dh_z = ops.gru_gates_backward(dh, h, gates, np.ascontiguousarray(gh[:, 2 * H:]))
    np.testing.assert_allclose(dA_x, t_gx.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dA_h, t_gh.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dh_z, t_h.grad.numpy(), rtol=1e-10, atol=1e-12)

    a, c = _lstm_inputs(rng, N, H, np.float64)
    dc = rng.standard_normal((N, H))
    t_a, t_c = (torch.tensor(v, requires_grad=True) for v in (a, c))
    i, f = torch.sigmoid(t_a[:, :H]), torch.sigmoid(t_a[:, H:2 * H])
    g, o = torch.tanh(t_a[:, 2 * H:3 * H]), torch.sigmoid(t_a[:, 3 * H:])
    t_cn = f * t_c + i * g
    t_hn = o * torch.tanh(t_cn)
    (torch.sum(t_hn * torch.tensor(dh)) + torch.sum(t_cn * torch.tensor(dc))).backward()
    gates, c_new, tanh_c, h_new = ops.lstm_gates(a, c)
    np.testing.assert_allclose(h_new, t_hn.detach().numpy(), rtol=1e-12, atol=1e-14)
    dA, dc_prev = ops.lstm_gates_backward(dh, dc, c, gates, tanh_c)
    np.testing.assert_allclose(dA, t_a.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dc_prev, t_c.grad.numpy(), rtol=1e-10, atol=1e-12)


# --------------------------------------------------------------------------- meaning
def test_saturated_gates_copy_the_state():
    """z = 1 copies h exactly (GRU); f = 1, i = 0 copies c exactly (LSTM)."""
    rng = np.random.default_rng(3)
    N, H = 3, 4
    for dt in (np.float32, np.float64):
        gx, gh, h = _gru_inputs(rng, N, H, dt)
        gx[:, H:2 * H] = 1e3
        _, hn = ops.gru_gates(gx, gh, h)
        np.testing.assert_array_equal(hn, h)
        a, c = _lstm_inputs(rng, N, H, dt)
        a[:, :H], a[:, H:2 * H] = -1e3, 1e3
        _, c_new, _, _ = ops.lstm_gates(a, c)
        np.testing.assert_array_equal(c_new, c)


# --------------------------------------------------------------------------- backends
def test_gates_on_every_backend(backend):
    rng = np.random.default_rng(4)
    dt = np.float32 if backend.dtype_name == "float32" else np.float64
    tol = dict(rtol=1e-5, atol=1e-6) if dt == np.float32 else dict(rtol=1e-12, atol=1e-13)
    N, H = 3, 4
    gx, gh, h = _gru_inputs(rng, N, H, np.float64)
    dh = rng.standard_normal((N, H))
    want = ref.gru_gates(gx, gh, h)
    got = ops.gru_gates(*(backend.asarray(v) for v in (gx, gh, h)))
    for g, w in zip(got, want):
        assert g.dtype == backend.dtype
        np.testing.assert_allclose(backend.to_numpy(g), w, **tol)
    ghn = np.ascontiguousarray(gh[:, 2 * H:])
    got_b = ops.gru_gates_backward(backend.asarray(dh), backend.asarray(h), got[0],
                                   backend.asarray(ghn))
    for g, w in zip(got_b, ref.gru_gates_backward(dh, h, want[0], ghn)):
        np.testing.assert_allclose(backend.to_numpy(g), w, **tol)
    a, c = _lstm_inputs(rng, N, H, np.float64)
    want = ref.lstm_gates(a, c)
    got = ops.lstm_gates(backend.asarray(a), backend.asarray(c))
    for g, w in zip(got, want):
        np.testing.assert_allclose(backend.to_numpy(g), w, **tol)
    got_b = ops.lstm_gates_backward(backend.asarray(dh), backend.asarray(dh), backend.asarray(c),
                                    got[0], got[2])
    for g, w in zip(got_b, ref.lstm_gates_backward(dh, dh, c, want[0], want[2])):
        np.testing.assert_allclose(backend.to_numpy(g), w, **tol)
