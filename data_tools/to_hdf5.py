"""Convert IDX (MNIST format, gzipped or not) or .npy files to a chunked, compressed HDF5 file.

Usage::

    python -m data_tools.to_hdf5 SRC [SRC ...] DST [--dataset-name NAME ...]
                                 [--chunk-rows 1024] [--compression gzip]
                                 [--flatten] [--normalize] [--shuffle-rows --seed 0]

Examples::

    # one file -> dataset "X"
    python -m data_tools.to_hdf5 train-images-idx3-ubyte.gz train.h5 --flatten
    # images and labels -> datasets "X" and "y" of one file
    python -m data_tools.to_hdf5 train-images-idx3-ubyte.gz train-labels-idx1-ubyte.gz \\
        train.h5 --dataset-name X --dataset-name y --flatten --normalize

Uncompressed IDX and .npy sources are memory-mapped and copied chunk by
chunk, so they may be larger than memory (unless ``--normalize`` or
``--shuffle-rows``, which load them).  References: the IDX format of LeCun et
al. (1998); HDF5 chunked storage (The HDF Group, HDF5 User's Guide).
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np

from .hdf5 import write_hdf5
from .idx import read_idx

__all__ = ["main", "load_source"]


def load_source(path, flatten=False, normalize=False):
    """The array stored in ``path`` (.npy, or IDX detected from its content).

    ``flatten``: reshape (N, d_1, ..., d_k) to (N, d_1 * ... * d_k);
    ``normalize``: float32 grey levels x = pixel / 255 (for uint8 images).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"source file {str(path)!r} does not exist.")
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic == b"\x93NUMPY":
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    else:
        array = read_idx(path, mmap=True)
    if flatten and array.ndim > 2:
        array = array.reshape(array.shape[0], -1)  # (N, D)
    if normalize:
        if array.dtype != np.uint8:
            raise ValueError(
                f"--normalize divides uint8 pixels by 255; {str(path)!r} holds {array.dtype}. "
                f"Leave out --normalize for this file."
            )
        array = np.asarray(array, dtype=np.float32) / np.float32(255.0)
    return array


def _default_name(path: Path) -> str:
    """Dataset name from a file name: the stem without .gz/.npy, made HDF5-friendly."""
    name = path.name
    for suffix in (".gz", ".npy"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "data"


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m data_tools.to_hdf5",
        description="Convert IDX (gzipped or not) or .npy files into chunked, compressed "
        "HDF5 datasets (one dataset per source file).",
    )
    p.add_argument("paths", nargs="+", metavar="SRC ... DST",
                   help="one or more source files, then the destination .h5 file")
    p.add_argument("--dataset-name", action="append", default=None, metavar="NAME",
                   help="dataset name, once per source in order (default: 'X' for a single "
                   "source, else each file's name without extension)")
    p.add_argument("--chunk-rows", type=int, default=1024, help="rows per HDF5 chunk (1024)")
    p.add_argument("--compression", default="gzip", choices=["gzip", "lzf", "none"],
                   help="chunk compression (gzip)")
    p.add_argument("--flatten", action="store_true",
                   help="reshape (N, 28, 28) images to (N, 784)")
    p.add_argument("--normalize", action="store_true",
                   help="store uint8 pixels as float32 grey levels pixel / 255")
    p.add_argument("--shuffle-rows", action="store_true",
                   help="store the rows in one random order (same for every source)")
    p.add_argument("--seed", type=int, default=0, help="seed for --shuffle-rows (0)")
    return p


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status (0 success, 2 bad input)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if len(args.paths) < 2:
        parser.error("need at least one SRC and a DST (got only "
                     f"{args.paths[0]!r}); example: SRC.gz DST.h5")
    sources, dst = [Path(p) for p in args.paths[:-1]], Path(args.paths[-1])
    if args.dataset_name is None:
        names = ["X"] if len(sources) == 1 else [_default_name(s) for s in sources]
    else:
        names = args.dataset_name
        if len(names) != len(sources):
            parser.error(f"--dataset-name was given {len(names)} times for {len(sources)} "
                         f"source files; give it once per source, in order.")
    if len(set(names)) != len(names):
        parser.error(f"dataset names must be distinct; got {names}. Use --dataset-name.")
    if args.chunk_rows < 1:
        parser.error(f"--chunk-rows must be a positive integer; got {args.chunk_rows}.")
    try:
        arrays = {
            name: load_source(src, flatten=args.flatten, normalize=args.normalize)
            for name, src in zip(names, sources)
        }
        if args.shuffle_rows:
            arrays = {k: np.asarray(v) for k, v in arrays.items()}
        write_hdf5(
            dst,
            arrays,
            chunk_rows=args.chunk_rows,
            compression=None if args.compression == "none" else args.compression,
            shuffle_rows=args.shuffle_rows,
            random_state=args.seed,
        )
    except (OSError, ValueError, TypeError) as exc:
        print(f"to_hdf5: error: {exc}", file=sys.stderr)
        return 2
    for name, src in zip(names, sources):
        a = arrays[name]
        print(f"to_hdf5: {src} -> {dst}:/{name} {tuple(a.shape)} {a.dtype.newbyteorder('=').name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
