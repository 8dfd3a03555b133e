"""IDX reader/writer: round trips for every type code, gzipped or not, and clear
errors for corrupt files (format of LeCun et al. 1998)."""
from __future__ import annotations

import gzip
import os
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_tools.idx import IDX_TYPE_CODES, read_idx, write_idx

DTYPES = {
    0x08: np.uint8,
    0x09: np.int8,
    0x0B: np.int16,
    0x0C: np.int32,
    0x0D: np.float32,
    0x0E: np.float64,
}


def _random_array(rng, dtype, shape):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.standard_normal(shape).astype(dtype) * 1e3
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, size=shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize("compress", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize("code", sorted(DTYPES), ids=lambda c: f"0x{c:02X}")
def test_round_trip_every_type_code(tmp_path, code, compress):
    rng = np.random.default_rng(code)
    a = _random_array(rng, DTYPES[code], (3, 4, 5))
    path = tmp_path / "a.idx"
    write_idx(path, a, compress=compress)
    raw = path.read_bytes()
    assert (raw[:2] == b"\x1f\x8b") == compress
    header = gzip.decompress(raw)[:4] if compress else raw[:4]
    assert header == bytes([0, 0, code, 3])
    b = read_idx(path)
    assert b.dtype == np.dtype(DTYPES[code])
    assert b.dtype.isnative
    np.testing.assert_array_equal(b, a)
    b[0] = 0  # a fresh writable array
    assert set(IDX_TYPE_CODES) == set(DTYPES)


@settings(max_examples=25)
@given(
    code=st.sampled_from(sorted(DTYPES)),
    shape=st.lists(st.integers(0, 4), min_size=1, max_size=4),
    compress=st.booleans(),
    seed=st.integers(0, 2**31),
)
def test_round_trip_property(tmp_path_factory, code, shape, compress, seed):
    a = _random_array(np.random.default_rng(seed), DTYPES[code], tuple(shape))
    path = tmp_path_factory.mktemp("idx") / "x"
    write_idx(path, a, compress=compress)
    b = read_idx(path)
    assert b.shape == a.shape and b.dtype == a.dtype
    np.testing.assert_array_equal(b, a)


def test_hand_written_file_big_endian(tmp_path):
    # 2 x 2 int16 values 1, -2, 256, 3 written by hand in big-endian order.
    data = bytes([0, 0, 0x0B, 2]) + struct.pack(">II", 2, 2) + struct.pack(">4h", 1, -2, 256, 3)
    path = tmp_path / "h.idx"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_idx(path), np.array([[1, -2], [256, 3]], dtype=np.int16))


def test_compression_detected_by_content_not_name(tmp_path):
    a = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_named_raw = tmp_path / "raw-content.gz"
    write_idx(gz_named_raw, a, compress=False)
    raw_named_gz = tmp_path / "gz-content.idx"
    write_idx(raw_named_gz, a, compress=True)
    assert gz_named_raw.read_bytes()[:2] == b"\x00\x00"
    assert raw_named_gz.read_bytes()[:2] == b"\x1f\x8b"
    np.testing.assert_array_equal(read_idx(gz_named_raw), a)
    np.testing.assert_array_equal(read_idx(raw_named_gz), a)


def test_compress_none_follows_suffix_and_output_is_deterministic(tmp_path):
    a = np.arange(6, dtype=np.float32)
    write_idx(tmp_path / "a.gz", a)
    write_idx(tmp_path / "a.idx", a)
    assert (tmp_path / "a.gz").read_bytes()[:2] == b"\x1f\x8b"
    assert (tmp_path / "a.idx").read_bytes()[:2] == b"\x00\x00"
    write_idx(tmp_path / "b.gz", a)
    assert (tmp_path / "a.gz").read_bytes() == (tmp_path / "b.gz").read_bytes()


def test_mmap_read_matches_and_is_lazy(tmp_path):
    a = np.arange(24, dtype=np.int32).reshape(2, 3, 4)
    path = tmp_path / "m.idx"
    write_idx(path, a)
    m = read_idx(path, mmap=True)
    assert isinstance(m, np.memmap)
    np.testing.assert_array_equal(m, a)


def _valid_bytes():
    return bytes([0, 0, 0x08, 2]) + struct.pack(">II", 2, 3) + bytes(range(6))


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gz"])
@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda b: b"\x01" + b[1:], "bad magic number.*0x00 0x00.*found 0x01 0x00"),
        (lambda b: b[:2] + b"\x0a" + b[3:], "unknown type code 0x0A"),
        (lambda b: b[:-1], r"truncated.*shape \(2, 3\).*6 payload bytes.*only 5"),
        (lambda b: b + b"\x00", r"corrupt.*6 payload bytes.*7 payload bytes"),
        (lambda b: b[:6], "truncated in its header"),
        (lambda b: b[:3], "too short"),
    ],
    ids=["magic", "type-code", "truncated-payload", "trailing-bytes", "truncated-header", "short"],
)
def test_corrupt_files_rejected_with_path_expected_found(tmp_path, mutate, match, gz):
    data = mutate(_valid_bytes())
    path = tmp_path / "bad-file.idx"
    path.write_bytes(gzip.compress(data) if gz else data)
    with pytest.raises(ValueError, match=match) as info:
        read_idx(path)
    assert "bad-file.idx" in str(info.value)


def test_valid_bytes_fixture_reads(tmp_path):
    path = tmp_path / "ok.idx"
    path.write_bytes(_valid_bytes())
    np.testing.assert_array_equal(read_idx(path), np.arange(6, dtype=np.uint8).reshape(2, 3))


def test_truncated_gzip_stream_rejected(tmp_path):
    a = np.arange(1000, dtype=np.float64)
    good = tmp_path / "good.gz"
    write_idx(good, a)
    cut = tmp_path / "cut.gz"
    cut.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(ValueError, match="cut.gz.*truncated gzip stream"):
        read_idx(cut)


def test_corrupt_gzip_stream_rejected(tmp_path):
    good = gzip.compress(_valid_bytes())
    bad = tmp_path / "bad.gz"
    bad.write_bytes(good[:10] + bytes(b ^ 0xFF for b in good[10:]))
    with pytest.raises(ValueError, match="bad.gz.*not a valid gzip stream|bad.gz.*truncated"):
        read_idx(bad)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        read_idx(tmp_path / "nope.idx")


def test_write_rejects_unsupported_dtype_and_shapes(tmp_path):
    with pytest.raises(TypeError, match="int64.*astype\\(np.int32\\)"):
        write_idx(tmp_path / "a.idx", np.arange(3, dtype=np.int64))
    with pytest.raises(TypeError, match="numpy.ndarray.*list"):
        write_idx(tmp_path / "a.idx", [1, 2, 3])
    with pytest.raises(ValueError, match="ndim=0"):
        write_idx(tmp_path / "a.idx", np.array(3, dtype=np.uint8))
    assert os.listdir(tmp_path) == []  # nothing written, no temporary left


def test_write_does_not_mutate_and_leaves_no_temporary(tmp_path):
    a = np.arange(10, dtype=np.int16)[::2]  # non-contiguous view
    before = a.copy()
    write_idx(tmp_path / "v.idx", a)
    np.testing.assert_array_equal(a, before)
    assert os.listdir(tmp_path) == ["v.idx"]
    np.testing.assert_array_equal(read_idx(tmp_path / "v.idx"), before)
