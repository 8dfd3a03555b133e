"""HDF5 data files: atomic chunked writes and shuffled minibatch streaming.

Reference: The HDF Group, "HDF5 User's Guide", chapter "Chunking in HDF5"
(a chunked dataset is stored and read chunk by chunk, so contiguous row
ranges aligned with chunks are the cheap reads); h5py documentation,
"Chunked storage".  The block-then-buffer shuffle is the scheme of
TensorFlow's ``shuffle`` buffer and of WebDataset's shard shuffling.

:func:`write_hdf5` writes arrays as row-chunked, compressed datasets through a
temporary file renamed into place.  :class:`HDF5Batches` streams minibatches
from a file larger than memory: it holds only a buffer of a few blocks.

Shuffling quality of :class:`HDF5Batches` (``shuffle=True``)
------------------------------------------------------------
Rows are grouped in blocks of ``block_rows`` consecutive rows (aligned with
the HDF5 chunks).  Each epoch

1. the order of the blocks is a uniform random permutation;
2. the blocks are read ``buffer_blocks`` at a time into a buffer of
   B = buffer_blocks * block_rows rows, and the rows in the buffer (plus the
   fewer than ``batch_size`` rows left over from the previous buffer) are
   uniformly permuted and cut into batches.

Every row appears exactly once per epoch.  The order is *not* a uniform
permutation of all N rows: a batch draws its rows from at most
``buffer_blocks + 1`` blocks, so rows that are close in the file tend to be
close in the stream.  If the file is sorted (e.g. by class), batches are
biased towards few classes.  Remedies: write the file in a random row order
once (``write_hdf5(..., shuffle_rows=True, random_state=0)``), or raise
``buffer_blocks`` (memory B rows) or lower ``block_rows`` (more, smaller
reads).  With ``buffer_blocks * block_rows >= N`` the order is a uniform
random permutation.
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import h5py
import numpy as np

from lvm_core.random import as_generator

from ._files import atomic_path

__all__ = ["write_hdf5", "read_hdf5", "HDF5Batches"]

_COMPRESSIONS = (None, "gzip", "lzf")


def write_hdf5(
    path,
    arrays,
    chunk_rows=1024,
    compression="gzip",
    compression_opts=None,
    shuffle_rows=False,
    random_state=None,
):
    """Write ``{name: array}`` to a new HDF5 file as row-chunked, compressed datasets.

    Parameters
    ----------
    path : destination file (replaced atomically: temporary file + rename)
    arrays : dict of name -> array with ndim >= 1 (NumPy arrays, or
        ``numpy.memmap`` for data larger than memory: rows are copied
        ``chunk_rows`` at a time); all arrays must have the same number of
        rows N when ``shuffle_rows``.
    chunk_rows : int, rows per HDF5 chunk (chunk shape (chunk_rows, *shape[1:]))
    compression : "gzip", "lzf" or None
    compression_opts : gzip level 0..9 (default h5py's 4)
    shuffle_rows : bool
        Store the rows in one random order (the same permutation for every
        array, so X and y stay aligned); improves :class:`HDF5Batches`'s
        shuffling of sorted data.  Needs the arrays in memory.
    random_state : seed for ``shuffle_rows``.

    Returns the path written.
    """
    if not isinstance(arrays, dict) or not arrays:
        raise TypeError(
            f"write_hdf5: arrays must be a non-empty dict name -> array; got "
            f"{type(arrays).__name__}{'' if arrays else ' (empty)'}. "
            f"Example: write_hdf5(path, {{'X': X, 'y': y}})."
        )
    if compression not in _COMPRESSIONS:
        raise ValueError(
            f"write_hdf5: compression must be one of {_COMPRESSIONS}; got {compression!r}."
        )
    if not isinstance(chunk_rows, (int, np.integer)) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise ValueError(f"write_hdf5: chunk_rows must be a positive int; got {chunk_rows!r}.")
    checked = {}
    for name, array in arrays.items():
        if not isinstance(name, str) or not name:
            raise TypeError(f"write_hdf5: dataset names must be non-empty str; got {name!r}.")
        if not isinstance(array, np.ndarray):
            raise TypeError(
                f"write_hdf5: arrays[{name!r}] must be a numpy array; got "
                f"{type(array).__name__}. Convert device arrays with to_numpy first."
            )
        if array.ndim < 1:
            raise ValueError(
                f"write_hdf5: arrays[{name!r}] must have at least one dimension (rows); "
                f"got a scalar. Use array.reshape(1)."
            )
        checked[name] = array
    perm = None
    if shuffle_rows:
        n_rows = {a.shape[0] for a in checked.values()}
        if len(n_rows) != 1:
            raise ValueError(
                f"write_hdf5: shuffle_rows=True needs arrays with the same number of rows; "
                f"got {{{', '.join(f'{k}: {a.shape[0]}' for k, a in checked.items())}}}."
            )
        perm = as_generator(random_state).permutation(n_rows.pop())
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for name, array in checked.items():
                n = array.shape[0]
                rows = int(min(chunk_rows, max(n, 1)))
                ds = f.create_dataset(
                    name,
                    shape=array.shape,
                    dtype=array.dtype.newbyteorder("="),
                    chunks=(rows,) + tuple(max(s, 1) for s in array.shape[1:]) if n else None,
                    compression=compression if n else None,
                    compression_opts=compression_opts if (n and compression == "gzip") else None,
                )
                for start in range(0, n, rows):
                    stop = min(start + rows, n)
                    if perm is None:
                        ds[start:stop] = array[start:stop]
                    else:
                        ds[start:stop] = array[perm[start:stop]]
    return Path(os.fspath(path))


def read_hdf5(path, names=None):
    """Read datasets of an HDF5 file into memory as ``{name: numpy array}``.

    ``names`` : list of dataset names (default: every top-level dataset).
    """
    with h5py.File(path, "r") as f:
        available = [k for k in f.keys() if isinstance(f[k], h5py.Dataset)]
        if names is None:
            names = available
        missing = [n for n in names if n not in available]
        if missing:
            raise ValueError(
                f"read_hdf5: {str(path)!r} has no dataset {missing[0]!r}; it holds {available}."
            )
        return {n: f[n][()] for n in names}


class HDF5Batches:
    """Shuffled minibatches streamed from HDF5 datasets larger than memory.

    Parameters
    ----------
    path : HDF5 file
    dataset : str or sequence of str
        One name (each batch is an array) or several names of datasets with
        the same number of rows N (each batch is a tuple, rows aligned, e.g.
        ``("X", "y")``).
    batch_size : int
    shuffle : bool
        If False, batches are the rows in file order.
    random_state : int, Generator or None
        Seeds the per-epoch orders: epoch e uses a generator seeded by
        (seed, e), so each epoch's order is reproducible on its own
        (:meth:`iter_epoch`) and successive epochs differ.
    block_rows : int, default the dataset's chunk rows (1024 if not chunked)
        Rows per contiguous read; keep it a multiple of the chunk rows.
    buffer_blocks : int, default 4
        Blocks held in memory and shuffled together (memory:
        buffer_blocks * block_rows rows).  See the module docstring for the
        shuffling quality this gives.
    drop_last : bool
        Drop the last, smaller batch of each epoch.

    ``len(batches)`` is the number of batches per epoch; ``iter(batches)``
    runs the next epoch (``batches.epoch`` counts them).
    """

    def __init__(
        self,
        path,
        dataset="X",
        batch_size=128,
        shuffle=True,
        random_state=None,
        block_rows=None,
        buffer_blocks=4,
        drop_last=False,
    ):
        self.path = os.fspath(path)
        self.names = (dataset,) if isinstance(dataset, str) else tuple(dataset)
        self._single = isinstance(dataset, str)
        for value, label in ((batch_size, "batch_size"), (buffer_blocks, "buffer_blocks")):
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ValueError(f"HDF5Batches: {label} must be a positive int; got {value!r}.")
        if not self.names:
            raise ValueError("HDF5Batches: dataset must name at least one dataset; got none.")
        with h5py.File(self.path, "r") as f:
            available = [k for k in f.keys() if isinstance(f[k], h5py.Dataset)]
            n_rows = {}
            for name in self.names:
                if name not in available:
                    raise ValueError(
                        f"HDF5Batches: {self.path!r} has no dataset {name!r}; it holds "
                        f"{available}. Pass dataset= one of those."
                    )
                n_rows[name] = f[name].shape[0] if f[name].ndim else 0
            chunks = f[self.names[0]].chunks
        if len(set(n_rows.values())) != 1:
            raise ValueError(
                f"HDF5Batches: the datasets must have the same number of rows; got {n_rows}."
            )
        self.n_rows = int(n_rows[self.names[0]])
        if block_rows is None:
            block_rows = int(chunks[0]) if chunks else 1024
        if not isinstance(block_rows, (int, np.integer)) or isinstance(block_rows, bool) or block_rows < 1:
            raise ValueError(f"HDF5Batches: block_rows must be a positive int; got {block_rows!r}.")
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.block_rows = int(block_rows)
        self.buffer_blocks = int(buffer_blocks)
        self.drop_last = bool(drop_last)
        self.random_state = random_state
        rng = as_generator(random_state)  # validates random_state
        if isinstance(random_state, (int, np.integer)) and not isinstance(random_state, bool):
            self._seed = int(random_state)
        else:  # None or a Generator: one base seed drawn now; epochs derive from it
            self._seed = int(rng.integers(2**63))
        self.epoch = 0

    def __len__(self):
        """Number of batches per epoch: ceil(N / batch_size) (floor with drop_last)."""
        if self.drop_last:
            return self.n_rows // self.batch_size
        return math.ceil(self.n_rows / self.batch_size)

    def __iter__(self):
        """The batches of the next epoch (then ``self.epoch`` is incremented)."""
        epoch = self.epoch
        self.epoch += 1
        return self.iter_epoch(epoch)

    def block_order(self, epoch):
        """Start rows of the blocks in the order epoch ``epoch`` reads them."""
        starts = np.arange(0, self.n_rows, self.block_rows)
        if not self.shuffle:
            return starts
        rng = np.random.default_rng([self._seed, int(epoch)])
        return starts[rng.permutation(starts.shape[0])]

    def iter_epoch(self, epoch):
        """Generator of the batches of epoch ``epoch`` (reproducible given random_state)."""
        starts = self.block_order(epoch)
        rng = np.random.default_rng([self._seed, int(epoch), 1])
        k = len(self.names)
        with h5py.File(self.path, "r") as f:
            datasets = [f[name] for name in self.names]
            carry = [None] * k
            for g in range(0, starts.shape[0], self.buffer_blocks):
                parts = [[] if c is None else [c] for c in carry]
                for start in starts[g : g + self.buffer_blocks]:
                    stop = min(int(start) + self.block_rows, self.n_rows)
                    for j, ds in enumerate(datasets):
                        parts[j].append(ds[int(start) : stop])  # contiguous, chunk-aligned
                buffer = [np.concatenate(p, axis=0) for p in parts]
                if self.shuffle:
                    perm = rng.permutation(buffer[0].shape[0])
                    buffer = [b[perm] for b in buffer]
                n_full = (buffer[0].shape[0] // self.batch_size) * self.batch_size
                for s in range(0, n_full, self.batch_size):
                    yield self._pack([b[s : s + self.batch_size] for b in buffer])
                carry = [b[n_full:] for b in buffer]
            if carry[0] is not None and carry[0].shape[0] and not self.drop_last:
                yield self._pack(carry)

    def _pack(self, batch):
        return batch[0] if self._single else tuple(batch)

    def __repr__(self):
        return (
            f"HDF5Batches({self.path!r}, dataset={self.names[0] if self._single else self.names!r}, "
            f"batch_size={self.batch_size}, shuffle={self.shuffle}, "
            f"random_state={self.random_state!r}, block_rows={self.block_rows}, "
            f"buffer_blocks={self.buffer_blocks}, drop_last={self.drop_last})"
        )
