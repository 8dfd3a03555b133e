"""Binary-matrix products of lvm_core.ops.gibbs: the numba kernels equal the
array-API reference (NumPy, float32 and float64, strided operands, narrow and
wide outputs), and the public functions run the reference on other backends."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from lvm_core.ops.gibbs import (
    binary_matmul,
    binary_matmul_reference,
    binary_t_matmul,
    binary_t_matmul_reference,
)


@settings(max_examples=25)
@given(seed=st.integers(0, 2 ** 31 - 1), N=st.integers(1, 9), D=st.integers(1, 40),
       H=st.integers(1, 150), density=st.floats(0.0, 1.0),
       dtype=st.sampled_from(["float32", "float64"]), transposed=st.booleans())
def test_fused_binary_products_equal_reference(seed, N, D, H, density, dtype, transposed):
    rng = np.random.default_rng(seed)
    V = (rng.random((N, D)) < density).astype(dtype)
    W = rng.normal(size=(H, D)).T.astype(dtype) if transposed else rng.normal(size=(D, H)).astype(dtype)
    P = rng.random((N, H)).astype(dtype)
    tol = {"float32": 1e-5, "float64": 1e-12}[dtype]
    A = binary_matmul(V, W)
    assert A.dtype == W.dtype and A.shape == (N, H)
    assert_allclose(A, binary_matmul_reference(V, W), rtol=tol, atol=tol * D)
    G = binary_t_matmul(V, P)
    assert G.dtype == P.dtype and G.shape == (D, H)
    assert_allclose(G, binary_t_matmul_reference(V, P), rtol=tol, atol=tol * N)


def test_reference_path_on_every_backend(backend):
    rng = np.random.default_rng(0)
    Vh = (rng.random((5, 7)) < 0.4).astype(np.float64)
    Wh, Ph = rng.normal(size=(7, 3)), rng.random((5, 3))
    V, W, P = backend.asarray(Vh), backend.asarray(Wh), backend.asarray(Ph)
    A, G = binary_matmul(V, W), binary_t_matmul(V, P)
    assert type(A) is type(V) and A.dtype == W.dtype
    assert_allclose(backend.to_numpy(A), Vh @ Wh, rtol=backend.rtol * 10, atol=1e-5)
    assert_allclose(backend.to_numpy(G), Vh.T @ Ph, rtol=backend.rtol * 10, atol=1e-5)


def test_does_not_modify_inputs():
    rng = np.random.default_rng(1)
    V = (rng.random((4, 6)) < 0.5).astype(np.float32)
    W = rng.normal(size=(6, 70)).astype(np.float32)
    V0, W0 = V.copy(), W.copy()
    binary_matmul(V, W)
    binary_t_matmul(V, rng.random((4, 70)).astype(np.float32))
    assert np.array_equal(V, V0) and np.array_equal(W, W0)


@pytest.mark.parametrize("H", [1, 8, 63, 64, 65, 200])
def test_block_edges(H):
    rng = np.random.default_rng(H)
    V = (rng.random((3, 11)) < 0.5).astype(np.float64)
    W = rng.normal(size=(11, H))
    assert_allclose(binary_matmul(V, W), V @ W, rtol=1e-12, atol=1e-12)
