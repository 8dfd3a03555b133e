"""HDF5: atomic chunked writes, streamed block-shuffled minibatches, and the
``python -m data_tools.to_hdf5`` converter (HDF5 chunked storage, The HDF Group)."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_tools.hdf5 import HDF5Batches, read_hdf5, write_hdf5
from data_tools.idx import write_idx
from data_tools.to_hdf5 import main as to_hdf5_main

REPO = Path(__file__).resolve().parents[1]


def _file(tmp_path, n=1000, d=3, chunk_rows=64, name="data.h5"):
    X = np.arange(n * d, dtype=np.float32).reshape(n, d)  # row i holds i*d .. i*d + d-1
    y = np.arange(n, dtype=np.int64)
    path = tmp_path / name
    write_hdf5(path, {"X": X, "y": y}, chunk_rows=chunk_rows)
    return path, X, y


def test_write_read_round_trip_chunked_compressed(tmp_path):
    path, X, y = _file(tmp_path)
    with h5py.File(path, "r") as f:
        assert f["X"].chunks == (64, 3) and f["X"].compression == "gzip"
        assert f["y"].chunks == (64,)
    d = read_hdf5(path)
    np.testing.assert_array_equal(d["X"], X)
    np.testing.assert_array_equal(d["y"], y)
    assert d["X"].dtype == np.float32
    assert os.listdir(tmp_path) == ["data.h5"]  # no temporary left behind


def test_write_is_atomic_on_failure(tmp_path):
    path, X, _ = _file(tmp_path)
    with pytest.raises(TypeError, match=r"arrays\['bad'\].*numpy array"):
        write_hdf5(path, {"X": X[:5], "bad": [1, 2]})
    np.testing.assert_array_equal(read_hdf5(path, ["X"])["X"], X)  # old file intact
    assert os.listdir(tmp_path) == ["data.h5"]


def test_write_errors():
    with pytest.raises(TypeError, match="non-empty dict"):
        write_hdf5("x.h5", {})
    with pytest.raises(ValueError, match="compression must be one of"):
        write_hdf5("x.h5", {"X": np.zeros(2)}, compression="zip")
    with pytest.raises(ValueError, match="chunk_rows must be a positive int"):
        write_hdf5("x.h5", {"X": np.zeros(2)}, chunk_rows=0)


def test_shuffle_rows_keeps_arrays_aligned(tmp_path):
    X = np.arange(100, dtype=np.float64).reshape(50, 2)
    y = np.arange(50)
    write_hdf5(tmp_path / "s.h5", {"X": X, "y": y}, shuffle_rows=True, random_state=0)
    d = read_hdf5(tmp_path / "s.h5")
    assert not np.array_equal(d["y"], y)
    np.testing.assert_array_equal(d["X"], X[d["y"]])


def _epoch_rows(batches, epoch=None):
    it = batches if epoch is None else batches.iter_epoch(epoch)
    out = list(it)
    return out, np.concatenate([b[1] for b in out])


@settings(max_examples=15)
@given(
    n=st.integers(1, 300),
    chunk_rows=st.integers(1, 64),
    batch_size=st.integers(1, 50),
    buffer_blocks=st.integers(1, 3),
    shuffle=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_every_row_exactly_once_per_epoch(
    tmp_path_factory, n, chunk_rows, batch_size, buffer_blocks, shuffle, seed
):
    path, X, y = _file(tmp_path_factory.mktemp("h5"), n=n, chunk_rows=chunk_rows)
    batches = HDF5Batches(path, ("X", "y"), batch_size=batch_size, shuffle=shuffle,
                          random_state=seed, buffer_blocks=buffer_blocks)
    for _ in range(2):
        out, rows = _epoch_rows(batches)
        assert len(out) == len(batches) == -(-n // batch_size)
        assert all(len(b[1]) == batch_size for b in out[:-1])
        np.testing.assert_array_equal(np.sort(rows), y)  # each row once
        for xb, yb in out:
            np.testing.assert_array_equal(xb, X[yb])  # X and y stay aligned
        if not shuffle:
            np.testing.assert_array_equal(rows, y)  # file order


def test_shuffled_order_differs_between_epochs_and_is_reproducible(tmp_path):
    path, X, y = _file(tmp_path)
    a = HDF5Batches(path, ("X", "y"), batch_size=100, random_state=0)
    _, e0 = _epoch_rows(a)
    _, e1 = _epoch_rows(a)
    assert a.epoch == 2
    assert not np.array_equal(e0, e1)
    b = HDF5Batches(path, ("X", "y"), batch_size=100, random_state=0)
    _, f0 = _epoch_rows(b)
    np.testing.assert_array_equal(f0, e0)
    np.testing.assert_array_equal(_epoch_rows(b, epoch=1)[1], e1)
    np.testing.assert_array_equal(_epoch_rows(a, epoch=0)[1], e0)
    c = HDF5Batches(path, ("X", "y"), batch_size=100, random_state=1)
    assert not np.array_equal(_epoch_rows(c)[1], e0)


def test_file_bigger_than_buffer_streams_in_blocks(tmp_path):
    # 5,000 rows, buffer of 2 blocks of 100 rows: at most 200 (+ carry) rows in memory.
    path, X, y = _file(tmp_path, n=5000, chunk_rows=100)
    batches = HDF5Batches(path, "X", batch_size=64, random_state=0, buffer_blocks=2)
    assert batches.block_rows == 100
    out = list(batches)
    assert len(out) == len(batches) == 79
    rows = np.concatenate([b[:, 0] for b in out]).astype(np.int64) // 3
    np.testing.assert_array_equal(np.sort(rows), y)
    # The first batch comes from at most buffer_blocks blocks, which are not always the first ones.
    first_blocks = np.unique(rows[:64] // 100)
    assert len(first_blocks) <= 2
    starts = batches.block_order(0)
    assert sorted(starts) == list(range(0, 5000, 100)) and list(starts) != sorted(starts)


def test_buffer_covering_the_file_is_a_full_permutation(tmp_path):
    # With buffer >= N the order is a uniform permutation: row 0 lands anywhere, evenly.
    path, _, _ = _file(tmp_path, n=20, chunk_rows=5)
    b = HDF5Batches(path, ("X", "y"), batch_size=20, random_state=0, buffer_blocks=4)
    positions = [int(np.flatnonzero(_epoch_rows(b, e)[1] == 0)[0]) for e in range(300)]
    counts = np.bincount(positions, minlength=20)
    # Every position reached: a uniform permutation misses one with p <= 20 * 0.95**300 < 1e-5.
    assert counts.min() >= 1
    # Position frequencies are ~ Binomial(300, 1/20): mean 15, sd 3.8.
    assert counts.max() <= 15 + 5 * 3.8


def test_drop_last(tmp_path):
    path, _, y = _file(tmp_path, n=250)
    b = HDF5Batches(path, ("X", "y"), batch_size=100, drop_last=True, random_state=0)
    out, rows = _epoch_rows(b)
    assert len(b) == 2 == len(out) and len(rows) == 200 and len(np.unique(rows)) == 200


def test_batches_errors(tmp_path):
    path, _, _ = _file(tmp_path)
    with pytest.raises(ValueError, match="no dataset 'Z'.*'X', 'y'"):
        HDF5Batches(path, "Z")
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        HDF5Batches(path, "X", batch_size=0)
    write_hdf5(tmp_path / "mis.h5", {"X": np.zeros((3, 2)), "y": np.zeros(4)})
    with pytest.raises(ValueError, match="same number of rows"):
        HDF5Batches(tmp_path / "mis.h5", ("X", "y"))


def test_to_hdf5_command_on_small_idx_file(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, size=(30, 28, 28), dtype=np.uint8)
    labels = (np.arange(30) % 10).astype(np.uint8)
    write_idx(tmp_path / "imgs-idx3-ubyte.gz", images)
    write_idx(tmp_path / "labels-idx1-ubyte", labels)
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run(
        [sys.executable, "-m", "data_tools.to_hdf5",
         str(tmp_path / "imgs-idx3-ubyte.gz"), str(tmp_path / "labels-idx1-ubyte"),
         str(tmp_path / "out.h5"), "--dataset-name", "X", "--dataset-name", "y",
         "--chunk-rows", "8", "--flatten"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "out.h5:/X (30, 784) uint8" in proc.stdout
    with h5py.File(tmp_path / "out.h5", "r") as f:
        assert f["X"].chunks == (8, 784) and f["X"].compression == "gzip"
        np.testing.assert_array_equal(f["X"][()], images.reshape(30, 784))
        np.testing.assert_array_equal(f["y"][()], labels)


def test_to_hdf5_main_npy_normalize_and_errors(tmp_path, capsys):
    a = np.arange(12, dtype=np.uint8).reshape(3, 2, 2)
    np.save(tmp_path / "a.npy", a)
    assert to_hdf5_main([str(tmp_path / "a.npy"), str(tmp_path / "a.h5"),
                         "--normalize", "--compression", "none"]) == 0
    d = read_hdf5(tmp_path / "a.h5")
    np.testing.assert_allclose(d["X"], a / np.float32(255), rtol=1e-6)
    assert d["X"].dtype == np.float32
    assert to_hdf5_main([str(tmp_path / "missing.idx"), str(tmp_path / "b.h5")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert not (tmp_path / "b.h5").exists()
    with pytest.raises(SystemExit):
        to_hdf5_main([str(tmp_path / "a.npy"), str(tmp_path / "c.h5"),
                      "--dataset-name", "X", "--dataset-name", "y"])
