"""Embedding: hypothesis finite-difference check of the scatter-add backward
(float64, filtered on the numeric gradient only), torch.nn.Embedding oracle,
meaning (rows of W; the one-hot product; repeated symbols accumulate),
backend matrix, in-place gradient buffers and symbol validation.
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lvm_core.backend import device_of, to_numpy
from lvm_core.gradcheck import numerical_gradient, relative_error
from lvm_core.nn import Embedding

from .conftest import require

RTOL = 1e-6
_ERRORS = []


@pytest.fixture(scope="module", autouse=True)
def _report_largest_error():
    yield
    if _ERRORS:
        print(f"\n[test_nn_embedding] {len(_ERRORS)} gradient checks, largest relative "
              f"error {max(_ERRORS):.3e}")


symbol_shapes = st.sampled_from([(1,), (5,), (2, 3), (4, 1), (3, 4)])


@settings(max_examples=15)
@given(K=st.integers(min_value=1, max_value=6), H=st.integers(min_value=1, max_value=4),
       shape=symbol_shapes, seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_grad_embedding(K, H, shape, seed):
    rng = np.random.default_rng(seed)
    emb = Embedding(K, H, prefix="emb_")
    params = emb.init(seed, dtype="float64")
    x = rng.integers(0, K, size=shape)  # repeats are likely: they must accumulate
    w = rng.standard_normal(shape + (H,))  # dL/dy

    def loss(W):
        return float(np.sum(w * emb.forward({"emb_W": W}, x)[0]))

    y, cache = emb.forward(params, x)
    grads = {}
    assert emb.backward(params, w, cache, grads) is None  # symbols have no gradient
    num = numerical_gradient(loss, params["emb_W"], h=1e-5)
    # filter on the numeric gradient only: an analytic zero must fail
    assume(np.abs(num).max() > 1e-4 * (1.0 + abs(loss(params["emb_W"]))))
    err = relative_error(grads["emb_W"], num)
    _ERRORS.append(err)
    assert err < RTOL


@pytest.mark.oracle
@settings(max_examples=10)
@given(K=st.integers(min_value=1, max_value=8), H=st.integers(min_value=1, max_value=5),
       shape=symbol_shapes, seed=st.integers(min_value=0, max_value=2**32 - 1))
def test_embedding_matches_torch(K, H, shape, seed):
    torch = require("torch")
    rng = np.random.default_rng(seed)
    emb = Embedding(K, H)
    params = emb.init(seed, dtype="float64")
    x = rng.integers(0, K, size=shape)
    w = rng.standard_normal(shape + (H,))
    layer = torch.nn.Embedding(K, H).double()
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(params["W"]))
    out = layer(torch.tensor(x))
    (torch.tensor(w) * out).sum().backward()
    y, cache = emb.forward(params, x)
    grads = {}
    emb.backward(params, w, cache, grads)
    assert relative_error(y, out.detach().numpy()) < 1e-12
    assert relative_error(grads["W"], layer.weight.grad.numpy()) < 1e-12


def test_embedding_meaning():
    """y[t, n] is row x[t, n] of W (the one-hot product, without computing it);
    dW[k] sums dy over the positions holding k; absent symbols get zero rows."""
    K, H = 6, 3
    emb = Embedding(K, H)
    params = emb.init(0, dtype="float64")
    W = params["W"]
    x = np.array([[0, 2, 2], [5, 2, 0]])  # (T, N); symbols 1, 3, 4 absent
    y, cache = emb.forward(params, x)
    assert y.shape == (2, 3, H)
    for t in range(2):
        for n in range(3):
            np.testing.assert_array_equal(y[t, n], W[x[t, n]])
    one_hot = np.eye(K)[x]  # (T, N, K)
    np.testing.assert_allclose(y, one_hot @ W, rtol=1e-15)
    dy = np.random.default_rng(0).standard_normal((2, 3, H))
    grads = {}
    emb.backward(params, dy, cache, grads)
    np.testing.assert_allclose(grads["W"], np.einsum("tnk,tnh->kh", one_hot, dy), rtol=1e-14)
    np.testing.assert_allclose(grads["W"][2], dy[0, 1] + dy[0, 2] + dy[1, 1], rtol=1e-14)
    assert np.all(grads["W"][[1, 3, 4]] == 0)


def test_embedding_init_statistics_and_reproducibility():
    emb = Embedding(300, 200, prefix="e_")
    a, b, c = emb.init(0), emb.init(0), emb.init(1)
    assert emb.param_names == ["e_W"] and list(a) == ["e_W"]
    W = a["e_W"]
    assert W.shape == (300, 200) and W.dtype == np.float32
    np.testing.assert_array_equal(W, b["e_W"])
    assert not np.array_equal(W, c["e_W"])
    assert abs(float(W.mean())) < 0.01 and float(W.var()) == pytest.approx(1.0, rel=0.02)  # N(0, 1)
    assert emb.init(0, dtype="float64")["e_W"].dtype == np.float64


def test_embedding_backend_matches_numpy_float64(backend):
    """Every backend and dtype: values, dtype and device, and gradients written in
    place into an existing buffer (overwritten, or summed with accumulate=True)."""
    K, H = 7, 3
    emb = Embedding(K, H)
    like = backend.asarray(np.zeros(1))
    params = emb.init(0, dtype=backend.dtype_name, like=like)
    assert params["W"].dtype == backend.dtype and device_of(params["W"]) == device_of(like)
    ref = {"W": to_numpy(params["W"]).astype(np.float64)}
    rng = np.random.default_rng(1)
    x = rng.integers(0, K, size=(4, 5))
    dy = rng.standard_normal((4, 5, H)).astype(backend.dtype_name).astype(np.float64)
    y_ref, c_ref = emb.forward(ref, x)
    g_ref = {}
    emb.backward(ref, dy, c_ref, g_ref)

    y, cache = emb.forward(params, backend.asarray(x))
    assert y.dtype == backend.dtype and device_of(y) == device_of(like)
    assert relative_error(to_numpy(y), y_ref) < backend.rtol
    buf = backend.asarray(np.full((K, H), 3.0))
    grads = {"W": buf}
    emb.backward(params, backend.asarray(dy), cache, grads)
    assert grads["W"] is buf  # in place
    assert grads["W"].dtype == backend.dtype and device_of(grads["W"]) == device_of(like)
    tol = 1e-5 if backend.dtype_name == "float32" else 1e-12
    assert relative_error(to_numpy(grads["W"]), g_ref["W"]) < tol
    emb.backward(params, backend.asarray(dy), cache, grads, accumulate=True)
    assert grads["W"] is buf
    assert relative_error(to_numpy(grads["W"]), 2 * g_ref["W"]) < tol
    fresh = {}
    emb.backward(params, backend.asarray(dy), cache, fresh)
    assert relative_error(to_numpy(fresh["W"]), g_ref["W"]) < tol


def test_embedding_rejects_bad_symbols(backend):
    emb = Embedding(4, 2)
    params = emb.init(0, dtype=backend.dtype_name, like=backend.asarray(np.zeros(1)))
    with pytest.raises(ValueError, match=r"symbol 4, but this Embedding has n_symbols=4"):
        emb.forward(params, backend.asarray(np.array([0, 4, 1])))
    with pytest.raises(ValueError, match=r"symbol -1"):
        emb.forward(params, backend.asarray(np.array([[0, -1]])))
    with pytest.raises(ValueError, match="integer symbols"):
        emb.forward(params, backend.asarray(np.array([0.0, 1.0])))
    with pytest.raises(ValueError, match="integer symbols"):
        emb.forward(params, backend.asarray(np.array([True, False])))
    with pytest.raises(ValueError, match=r"1-D \(N,\) or 2-D \(T, N\)"):
        emb.forward(params, backend.asarray(np.zeros((2, 2, 2), dtype=np.int64)))
    # check=False skips only the range check (no device -> host sync); the dtype is
    # still checked
    with pytest.raises(ValueError, match="integer symbols"):
        emb.forward(params, backend.asarray(np.array([0.5])), check=False)
    y, _ = emb.forward(params, backend.asarray(np.array([3, 0])), check=False)
    assert y.shape == (2, 2)


def test_embedding_argument_errors():
    with pytest.raises(ValueError, match="n_symbols must be a positive integer"):
        Embedding(0, 3)
    with pytest.raises(ValueError, match="H must be a positive integer"):
        Embedding(3, 2.5)
    emb = Embedding(3, 2)
    params = emb.init(0, dtype="float64")
    with pytest.raises(KeyError, match="'W'"):
        emb.forward({}, np.array([0]))
    with pytest.raises(ValueError, match=r"shape \(3, 2\)"):
        emb.forward({"W": np.zeros((4, 2))}, np.array([0]))
    y, cache = emb.forward(params, np.array([0, 1]))
    with pytest.raises(ValueError, match="dy must have shape"):
        emb.backward(params, np.zeros((3, 2)), cache, {})
    with pytest.raises(ValueError, match="grads"):
        emb.backward(params, np.zeros((2, 2)), cache, {"W": np.zeros((2, 2))})
    with pytest.raises(TypeError, match="Arrays from different array libraries"):
        import array_api_strict as xps
        emb.forward(params, xps.asarray([0, 1]))
    x = np.array([0, 1, 1])
    x_copy = x.copy()
    W_copy = params["W"].copy()
    y, cache = emb.forward(params, x)
    y[...] = 0  # the output is not a view of W
    emb.backward(params, np.ones((3, 2)), cache, {})
    np.testing.assert_array_equal(x, x_copy)
    np.testing.assert_array_equal(params["W"], W_copy)
    assert repr(emb) == "Embedding(n_symbols=3, H=2, prefix='')"
