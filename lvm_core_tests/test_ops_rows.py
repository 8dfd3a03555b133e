"""ops.take_rows: the prefetching row gather equals take(X, idx, axis=0) for every input."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core import ops
from lvm_core.backend import to_numpy

seeds = st.integers(min_value=0, max_value=2**32 - 1)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n_rows=st.integers(1, 300), n=st.integers(0, 400),
       tail=st.sampled_from([(1,), (7,), (784,), (3, 5), (2, 3, 4)]),
       dtype=st.sampled_from([np.float32, np.float64, np.int64, np.uint8, np.bool_,
                              np.complex64]))
def test_take_rows_equals_numpy_take(seed, n_rows, n, tail, dtype):
    """Any numeric dtype, row shape and index pattern (repeats included): the same
    array as np.take; the caller's arrays are unchanged; ``out`` is filled and returned."""
    rng = np.random.default_rng(seed)
    X = (rng.standard_normal((n_rows,) + tail) * 50).astype(dtype)
    idx = rng.integers(0, n_rows, size=n)
    X0, idx0 = X.copy(), idx.copy()
    expected = np.take(X, idx, axis=0)
    got = ops.take_rows(X, idx)
    np.testing.assert_array_equal(got, expected)
    assert got.dtype == X.dtype and got.shape == expected.shape
    out = np.full_like(expected, 1)
    assert ops.take_rows(X, idx, out=out) is out
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(X, X0)
    np.testing.assert_array_equal(idx, idx0)


def test_take_rows_fused_path_is_taken_and_copies_the_rows():
    """A 60,000-row image array: the kernel (not the fallback) copies the rows, a
    permutation's batch comes out row for row, and an int32 index works too."""
    from lvm_core.ops import _rows_kernels as R

    rng = np.random.default_rng(0)
    X = rng.random((6000, 784), dtype=np.float32)
    idx = rng.permutation(6000)[:128]
    out = np.empty((128, 784), np.float32)
    assert R.take_rows_bytes(X.view(np.uint8), idx, out.view(np.uint8), 7)
    for r in (0, 64, 127):
        np.testing.assert_array_equal(out[r], X[idx[r]])
    np.testing.assert_array_equal(ops.take_rows(X, idx.astype(np.int32)), X[idx])


def test_take_rows_out_of_range_and_negative_indices_follow_numpy():
    """Indices outside [0, N) take NumPy's path: negative ones count from the end,
    too large ones raise IndexError (nothing half-written in a fresh result)."""
    X = np.arange(12.0).reshape(4, 3)
    np.testing.assert_array_equal(ops.take_rows(X, np.array([-1, 0])), X[[-1, 0]])
    with pytest.raises(IndexError):
        ops.take_rows(X, np.array([0, 4]))


def test_take_rows_other_layouts_and_unusable_out():
    """Strided X, 1-d X, a list of indices and an ``out`` of the wrong shape or dtype:
    still X[idx] (a fresh array where ``out`` does not fit)."""
    X = np.arange(40.0).reshape(8, 5)
    idx = np.array([3, 1, 3])
    np.testing.assert_array_equal(ops.take_rows(X[:, ::2], idx), X[:, ::2][idx])
    np.testing.assert_array_equal(ops.take_rows(X[:, 0], idx), X[idx, 0])
    wrong = np.empty((3, 5), np.float32)
    got = ops.take_rows(X, idx, out=wrong)
    assert got is not wrong and got.dtype == X.dtype
    np.testing.assert_array_equal(got, X[idx])
    np.testing.assert_array_equal(ops.take_rows(X, np.array([], dtype=np.int64)), X[:0])
    Y = X.copy()
    got = ops.take_rows(Y, idx, out=Y[:3])  # an ``out`` inside X: not written over X
    assert not np.shares_memory(got, Y)
    np.testing.assert_array_equal(got, X[idx])
    np.testing.assert_array_equal(Y, X)


def test_take_rows_on_every_backend(backend):
    """Every backend and float dtype: NumPy's kernel, the namespace's own take for
    the others (array-api-strict on its device, CuPy)."""
    rng = np.random.default_rng(1)
    X = backend.asarray(rng.standard_normal((20, 6)))
    idx = rng.integers(0, 20, size=9)
    got = ops.take_rows(X, backend.asarray(idx))
    assert got.dtype == X.dtype
    np.testing.assert_array_equal(to_numpy(got), to_numpy(X)[idx])
