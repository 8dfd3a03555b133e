"""IDX files: the array format of MNIST and Fashion-MNIST.

Reference: LeCun, Cortes & Burges, "The MNIST database of handwritten digits"
(1998), section "File formats for the MNIST database"; the same format is used
by Fashion-MNIST (Xiao, Rasul & Vollgraf 2017).

Layout (all integers big-endian)::

    bytes 0-1   0x00 0x00
    byte  2     type code: 0x08 ubyte, 0x09 byte, 0x0B short (int16),
                0x0C int (int32), 0x0D float (float32), 0x0E double (float64)
    byte  3     ndim, the number of dimensions
    4 * ndim    the size of each dimension, uint32
    payload     prod(sizes) items of the type, big-endian, C order

A file may be gzip-compressed; compression is detected from the gzip magic
bytes 0x1f 0x8b, never from the file name.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

from ._files import atomic_path

__all__ = ["read_idx", "write_idx", "IDX_TYPE_CODES"]

#: type code -> big-endian NumPy dtype
IDX_TYPE_CODES = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_CODE_OF_KIND = {(dt.kind, dt.itemsize): code for code, dt in IDX_TYPE_CODES.items()}
_GZIP_MAGIC = b"\x1f\x8b"


def _is_gzip(path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def _read_bytes(path) -> bytes:
    """The whole (decompressed) content of ``path``; a bad gzip stream raises ValueError."""
    if not _is_gzip(path):
        with open(path, "rb") as f:
            return f.read()
    try:
        with gzip.open(path, "rb") as f:
            return f.read()
    except EOFError as exc:
        raise ValueError(
            f"IDX file {str(path)!r} is a truncated gzip stream: expected a complete "
            f"gzip member ending with its end-of-stream marker, found the end of the file "
            f"first ({exc}). The download or copy was cut short; fetch the file again."
        ) from None
    except (gzip.BadGzipFile, zlib.error, OSError) as exc:
        raise ValueError(
            f"IDX file {str(path)!r} starts with the gzip magic bytes 0x1f 0x8b but is not "
            f"a valid gzip stream ({exc}). The file is corrupt; fetch it again."
        ) from None


def _parse_header(data: bytes, path):
    """(dtype, shape, header_size) from the first bytes of an IDX file."""
    if len(data) < 4:
        raise ValueError(
            f"IDX file {str(path)!r} is too short: expected at least a 4-byte magic number "
            f"(0x00 0x00 type ndim), found {len(data)} bytes. The file is truncated or empty."
        )
    zero0, zero1, code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise ValueError(
            f"IDX file {str(path)!r} has a bad magic number: expected the first two bytes "
            f"to be 0x00 0x00, found 0x{zero0:02x} 0x{zero1:02x}. This is not an IDX file "
            f"(or it is compressed with something other than gzip)."
        )
    if code not in IDX_TYPE_CODES:
        known = ", ".join(f"0x{c:02X} {dt.name}" for c, dt in IDX_TYPE_CODES.items())
        raise ValueError(
            f"IDX file {str(path)!r} has an unknown type code 0x{code:02X} in byte 2: "
            f"expected one of {known}. The file is corrupt or not an IDX file."
        )
    header_size = 4 + 4 * ndim
    if len(data) < header_size:
        raise ValueError(
            f"IDX file {str(path)!r} is truncated in its header: ndim={ndim} needs "
            f"{header_size} header bytes, found {len(data)}. Fetch the file again."
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_size])
    return IDX_TYPE_CODES[code], tuple(int(s) for s in shape), header_size


def _check_payload(path, dtype, shape, n_payload):
    expected = math.prod(shape) * dtype.itemsize  # Python ints: no overflow on corrupt headers
    if n_payload < expected:
        raise ValueError(
            f"IDX file {str(path)!r} is truncated: its header announces shape {shape} of "
            f"{dtype.name} ({expected} payload bytes), but only {n_payload} payload bytes "
            f"follow. Fetch the file again."
        )
    if n_payload > expected:
        raise ValueError(
            f"IDX file {str(path)!r} is corrupt: its header announces shape {shape} of "
            f"{dtype.name} ({expected} payload bytes), but {n_payload} payload bytes follow "
            f"({n_payload - expected} extra). The header does not match the data."
        )


def read_idx(path, mmap=False) -> np.ndarray:
    """Read an IDX file (gzipped or not) into a native-endian NumPy array.

    Parameters
    ----------
    path : str or os.PathLike
    mmap : bool
        If True and the file is not compressed, return a read-only
        ``numpy.memmap`` (in the file's big-endian dtype) instead of reading
        the payload, for files larger than memory.  Ignored for gzip files
        (they are decompressed in memory).

    Returns
    -------
    array of shape ``(d_1, ..., d_ndim)`` from the header, dtype one of
    uint8, int8, int16, int32, float32, float64.  A fresh, writable array
    (unless ``mmap``).

    Raises
    ------
    ValueError naming the path, what was expected and what was found, for a
    bad magic number, an unknown type code, a truncated header or payload,
    trailing bytes or a truncated/corrupt gzip stream.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"IDX file {path!r} does not exist (or is not a file).")
    if mmap and not _is_gzip(path):
        with open(path, "rb") as f:
            head = f.read(4 + 4 * 255)
        dtype, shape, header_size = _parse_header(head, path)
        _check_payload(path, dtype, shape, os.path.getsize(path) - header_size)
        if math.prod(shape) == 0:
            return np.zeros(shape, dtype=dtype.newbyteorder("="))
        return np.memmap(path, dtype=dtype, mode="r", offset=header_size, shape=shape)
    data = _read_bytes(path)
    dtype, shape, header_size = _parse_header(data, path)
    _check_payload(path, dtype, shape, len(data) - header_size)
    array = np.frombuffer(data, dtype=dtype, offset=header_size).reshape(shape)
    return array.astype(dtype.newbyteorder("="))  # native byte order, a writable copy


def _type_code(array: np.ndarray) -> int:
    dt = array.dtype
    code = _CODE_OF_KIND.get((dt.kind, dt.itemsize))
    if code is None:
        raise TypeError(
            f"write_idx: array dtype {dt} has no IDX type code; expected one of uint8, "
            f"int8, int16, int32, float32, float64. Convert first, e.g. "
            f"array.astype(np.int32) for int64 labels or array.astype(np.uint8) for bools."
        )
    return code


def write_idx(path, array, compress=None) -> Path:
    """Write ``array`` to ``path`` in IDX format (the inverse of :func:`read_idx`).

    Parameters
    ----------
    path : str or os.PathLike
    array : numpy array (uint8, int8, int16, int32, float32 or float64), ndim 1..255
    compress : bool or None
        gzip the file; ``None`` means "if the file name ends in ``.gz``".

    The file is written to a temporary file in the same folder and renamed
    into place, so a crash never leaves a partial IDX file.  The gzip header
    carries no timestamp, so equal arrays give byte-identical files.
    Returns the path written.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(
            f"write_idx: array must be a numpy.ndarray; got {type(array).__name__}. "
            f"Convert with numpy.asarray (or to_numpy for device arrays) first."
        )
    if not 1 <= array.ndim <= 255:
        raise ValueError(
            f"write_idx: array must have 1 to 255 dimensions (IDX stores ndim in one byte "
            f"and MNIST readers expect at least one); got ndim={array.ndim}. "
            f"Use array.reshape(1) for a scalar."
        )
    if any(s >= 2**32 for s in array.shape):
        raise ValueError(
            f"write_idx: every dimension must be < 2**32 (stored as uint32); got shape "
            f"{array.shape}."
        )
    code = _type_code(array)
    path = Path(os.fspath(path))
    if compress is None:
        compress = path.name.endswith(".gz")
    header = struct.pack(">BBBB", 0, 0, code, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    payload = np.ascontiguousarray(array, dtype=IDX_TYPE_CODES[code]).tobytes()
    with atomic_path(path) as tmp, open(tmp, "wb") as raw:
        if compress:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                gz.write(header)
                gz.write(payload)
        else:
            raw.write(header)
            raw.write(payload)
    return path
