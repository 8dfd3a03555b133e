"""lvm_core.backend: namespaces, explicit transfers, dtypes, scatter-add."""
from __future__ import annotations

import array_api_strict
import numpy as np
import pytest

from lvm_core.backend import (asarray, device_of, float_dtype, get_namespace, is_numpy_namespace,
                              item, namespace_name, scatter_add_rows, to_numpy)

DEVICE1 = array_api_strict.Device("device1")


def _strict(a, dtype=None):
    return array_api_strict.asarray(np.asarray(a), dtype=dtype, device=DEVICE1)


def test_mixing_numpy_and_strict_raises_type_error_naming_both():
    with pytest.raises(TypeError) as info:
        get_namespace(np.ones(3), _strict([1.0, 2.0]))
    message = str(info.value)
    assert "numpy" in message and "array_api_strict" in message and "asarray" in message


def test_mixing_devices_raises():
    a = _strict([1.0])
    b = array_api_strict.asarray([1.0], device=array_api_strict.Device("CPU_DEVICE"))
    with pytest.raises(TypeError, match="different devices"):
        get_namespace(a, b)


def test_namespace_of_inputs_and_defaults():
    assert is_numpy_namespace(get_namespace(np.ones(2), None, 3.0))
    assert is_numpy_namespace(get_namespace())
    assert namespace_name(get_namespace(_strict([1.0]))) == "array_api_strict"
    assert not is_numpy_namespace(get_namespace(_strict([1.0])))


def test_device1_refuses_implicit_conversion_but_to_numpy_works():
    a = _strict([[1.0, 2.0], [3.0, 4.0]], dtype=array_api_strict.float32)
    with pytest.raises((RuntimeError, TypeError, ValueError)):
        np.asarray(a)
    host = to_numpy(a)
    assert isinstance(host, np.ndarray) and host.dtype == np.float32
    np.testing.assert_array_equal(host, [[1.0, 2.0], [3.0, 4.0]])


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_asarray_like_round_trip(dtype):
    host = np.arange(6, dtype=dtype).reshape(2, 3)
    like = _strict([0.0])
    dev = asarray(host, like=like)
    assert device_of(dev) == DEVICE1
    assert dev.dtype == getattr(array_api_strict, dtype)
    np.testing.assert_array_equal(to_numpy(dev), host)
    as32 = asarray(host, like=like, dtype="float32")
    assert as32.dtype == array_api_strict.float32
    x = np.ones(3)
    assert to_numpy(x) is x  # no copy for NumPy


def test_float_dtype_and_item():
    assert float_dtype(np.ones(2, dtype=np.float32), np.arange(2)) == np.float32
    assert float_dtype(np.arange(2)) == np.float64
    assert float_dtype(np.ones(1, dtype=np.float32), np.ones(1)) == np.float64
    assert item(_strict(2.5)) == 2.5 and isinstance(item(np.float32(1.5)), float)


@pytest.mark.parametrize("on_strict", [False, True])
def test_scatter_add_rows_accumulates_repeated_indices(on_strict):
    target = np.zeros((3, 2))
    index = np.array([0, 2, 0, 0])
    values = np.arange(8, dtype=np.float64).reshape(4, 2)
    expected = np.array([[0 + 4 + 6, 1 + 5 + 7], [0, 0], [2, 3]], dtype=np.float64)
    if on_strict:
        out = scatter_add_rows(_strict(target), _strict(index), _strict(values))
        assert device_of(out) == DEVICE1
        out = to_numpy(out)
    else:
        out = scatter_add_rows(target, index, values)
        np.testing.assert_array_equal(target, 0.0)  # caller's array untouched
    np.testing.assert_array_equal(out, expected)
