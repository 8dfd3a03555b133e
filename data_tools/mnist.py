"""Load MNIST-like image sets (Fashion-MNIST, MNIST) from the first place that has them.

References: LeCun, Cortes & Burges, "The MNIST database of handwritten digits"
(1998); Xiao, Rasul & Vollgraf, "Fashion-MNIST: a novel image dataset for
benchmarking machine learning algorithms" (2017, arXiv:1708.07747).

Search order of :func:`load_mnist_like` (the first source that has both files
of the split wins):

1. ``path=`` given explicitly (a folder with the IDX files): used or an error
   is raised; nothing else is tried;
2. the environment: ``$LVM_CORE_DATA/<name>/`` (for fashion-mnist, the
   default, also ``$LVM_CORE_DATA/`` itself), then ``$FASHION_MNIST_DIR``
   (fashion-mnist) or ``$MNIST_DIR`` (mnist);
3. the user cache ``$XDG_CACHE_HOME/lvm_core/<name>/`` (default
   ``~/.cache/lvm_core/<name>/``);
4. Debian's data package: ``/usr/share/datasets/<name>/``
   (``apt-get install dataset-fashion-mnist``).  ``$LVM_CORE_SYSTEM_DATA_DIRS``
   replaces ``/usr/share/datasets`` by its list of roots (separated by
   ``os.pathsep``; source kind ``system``); set to the empty string it hides
   the system copies, e.g. to try the fresh-install path on a machine that
   has the package;
5. a download from the official source into the user cache, each file
   verified against its published SHA-256 checksum (short timeout; written
   to a temporary file and renamed only once verified, so a failed or
   corrupted download never leaves a partial file); skipped when
   ``download=False`` or ``LVM_CORE_NO_DOWNLOAD=1``;
6. the embedded default (Fashion-MNIST only): the 10,000 *test* images
   shipped in ``data_tools/embedded/``.  For ``split="train"`` these test
   images are returned as a clearly reported fallback.

The source used is returned as a string and printed when ``verbose``.
File names recognised in a folder: ``train-images-idx3-ubyte.gz``,
``train-images-idx3-ubyte``, ``train-images.idx3-ubyte`` (and the same for
labels and ``t10k``); the files are read by :func:`data_tools.idx.read_idx`,
which detects gzip from the content.
"""
from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

import numpy as np

from ._files import atomic_path
from .idx import read_idx

__all__ = ["load_mnist_like", "DATASETS", "cache_dir", "system_data_roots", "EMBEDDED_DIR"]

EMBEDDED_DIR = Path(__file__).resolve().parent / "embedded"

#: Per data set: download mirrors (tried in order), the published SHA-256 of
#: each official .gz file, the environment variable naming a folder and
#: whether an embedded copy exists.  Checksums as published with the
#: official files (the TensorFlow Datasets checksum tables list the same
#: values); Debian's recompressed copies differ and are not checked.
DATASETS = {
    "fashion-mnist": {
        "urls": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
        "sha256": {
            "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        },
        "env": "FASHION_MNIST_DIR",
        "embedded": True,
    },
    "mnist": {
        "urls": [
            "https://yann.lecun.com/exdb/mnist/",
            "https://storage.googleapis.com/cvdf-datasets/mnist/",
        ],
        "sha256": {
            "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        },
        "env": "MNIST_DIR",
        "embedded": False,
    },
}
_PREFIX = {"train": "train", "test": "t10k"}
_DEBIAN_ROOT = Path("/usr/share/datasets")
DOWNLOAD_TIMEOUT = 10.0  # seconds per connection attempt


def system_data_roots():
    """Roots searched at step 4: ``[/usr/share/datasets]``, or the folders listed in
    ``$LVM_CORE_SYSTEM_DATA_DIRS`` (``os.pathsep``-separated; empty: none)."""
    value = os.environ.get("LVM_CORE_SYSTEM_DATA_DIRS")
    if value is None:
        return [_DEBIAN_ROOT]
    return [Path(p) for p in value.split(os.pathsep) if p]


def cache_dir(name: str) -> Path:
    """The user cache folder for data set ``name``: ``$XDG_CACHE_HOME/lvm_core/<name>``
    (``~/.cache/lvm_core/<name>`` when XDG_CACHE_HOME is unset)."""
    root = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(root) / "lvm_core" / name


def _file_names(split: str):
    """Official .gz names of the image and label files of ``split``."""
    prefix = _PREFIX[split]
    return f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"


def _find_file(folder: Path, gz_name: str):
    """The first existing variant of ``gz_name`` in ``folder`` (gz, raw, dotted raw)."""
    raw = gz_name[: -len(".gz")]
    dotted = raw.replace("-idx", ".idx", 1)
    for candidate in (gz_name, raw, dotted, dotted + ".gz"):
        p = folder / candidate
        if p.is_file():
            return p
    return None


def _find_pair(folder, split):
    """(images_path, labels_path) in ``folder``, or None when either is missing."""
    if folder is None:
        return None
    folder = Path(folder)
    if not folder.is_dir():
        return None
    images_name, labels_name = _file_names(split)
    images, labels = _find_file(folder, images_name), _find_file(folder, labels_name)
    if images is None or labels is None:
        return None
    return images, labels


def _fetch_url(url: str, timeout: float) -> bytes:
    """The body of ``url`` (one HTTP GET).  Tests replace this function."""
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - fixed URLs
        return response.read()


def _download_file(urls, file_name, sha256, dest_folder: Path, timeout: float):
    """Download ``file_name`` from the first mirror that serves it with the right checksum.

    The bytes are verified against ``sha256`` before anything is written
    under the final name (temporary file + rename).  Returns (path, url).
    Raises OSError (with every mirror's failure) when no mirror succeeds.
    """
    dest = dest_folder / file_name
    if dest.is_file() and hashlib.sha256(dest.read_bytes()).hexdigest() == sha256:
        return dest, "earlier download"  # verified then (the other file of the split failed)
    errors = []
    for base in urls:
        url = base + file_name
        try:
            data = _fetch_url(url, timeout)
        except Exception as exc:  # network errors of any kind: try the next mirror
            errors.append(f"{url}: {type(exc).__name__}: {exc}")
            continue
        digest = hashlib.sha256(data).hexdigest()
        if digest != sha256:
            errors.append(
                f"{url}: SHA-256 mismatch (expected {sha256}, got {digest}); file discarded"
            )
            continue
        dest_folder.mkdir(parents=True, exist_ok=True)
        with atomic_path(dest) as tmp:
            tmp.write_bytes(data)
        return dest, url
    raise OSError("; ".join(errors))


def _check_pair(images, labels, images_path, labels_path):
    """MNIST-like shape checks: images (N, 28, 28) ubyte, labels (N,) ubyte in 0..9."""
    if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
        raise ValueError(
            f"{str(images_path)!r} is not an MNIST-like image file: expected (N, 28, 28) "
            f"uint8, found {images.shape} {images.dtype}."
        )
    if labels.ndim != 1 or labels.dtype != np.uint8:
        raise ValueError(
            f"{str(labels_path)!r} is not an MNIST-like label file: expected (N,) uint8, "
            f"found {labels.shape} {labels.dtype}."
        )
    if labels.shape[0] != images.shape[0]:
        raise ValueError(
            f"{str(images_path)!r} holds {images.shape[0]} images but {str(labels_path)!r} "
            f"holds {labels.shape[0]} labels; the two files must come from the same split."
        )
    if labels.size and int(labels.max()) > 9:
        raise ValueError(
            f"{str(labels_path)!r} holds label {int(labels.max())}; MNIST-like labels are 0..9."
        )


def _candidates(name, path):
    """(kind, folder) pairs in search order, before download and the embedded copy."""
    spec = DATASETS[name]
    if path is not None:
        return [("path", Path(os.fspath(path)))]
    out = []
    root = os.environ.get("LVM_CORE_DATA")
    if root:
        out.append(("env LVM_CORE_DATA", Path(root) / name))
        if name == "fashion-mnist":  # the default data set may sit in the root itself
            out.append(("env LVM_CORE_DATA", Path(root)))
    specific = os.environ.get(spec["env"])
    if specific:
        out.append((f"env {spec['env']}", Path(specific)))
    out.append(("cache", cache_dir(name)))
    for root in system_data_roots():
        out.append(("debian" if root == _DEBIAN_ROOT else "system", root / name))
    return out


def _finish(images, labels, normalize, dtype):
    """(X (N, 784), y (N,) int64) from raw (N, 28, 28) uint8 images and labels."""
    X = images.reshape(images.shape[0], -1)  # (N, D) with D = 784
    if dtype is not None:
        X = X.astype(dtype)
    if normalize:
        if X.dtype.kind != "f":
            raise ValueError(
                f"load_mnist_like: normalize=True needs a floating dtype; got dtype={dtype!r}. "
                f"Use dtype='float32' or normalize=False."
            )
        X /= X.dtype.type(255.0)
    return X, labels.astype(np.int64)


def load_mnist_like(
    name="fashion-mnist",
    split="train",
    path=None,
    normalize=True,
    dtype="float32",
    verbose=True,
    download=True,
):
    """Load an MNIST-like split as ``(X, y, source)``.

    Parameters
    ----------
    name : {"fashion-mnist", "mnist"}
    split : {"train", "test"}
    path : folder holding the IDX files, optional (then only it is used)
    normalize : bool
        Divide the grey levels by 255, so that X lies in [0, 1].
    dtype : NumPy dtype name or None
        dtype of X; ``None`` keeps uint8 (only with ``normalize=False``).
    verbose : bool
        Print one line saying which source was used (and why others were not).
    download : bool
        Allow step 5 (also disabled by the environment variable
        ``LVM_CORE_NO_DOWNLOAD=1``).

    Returns
    -------
    X : (N, 784) array, grey levels x = pixel / 255 when ``normalize``
    y : (N,) int64 labels in 0..9
    source : str
        ``"<kind>:<images file>"`` with kind one of ``path``, ``env
        LVM_CORE_DATA``, ``env FASHION_MNIST_DIR``, ``env MNIST_DIR``,
        ``cache``, ``debian``, ``system`` (a root of
        ``$LVM_CORE_SYSTEM_DATA_DIRS``), ``download`` (``"download:<url> -> <file>"``),
        ``embedded`` and ``embedded-fallback``.  The string starts with
        ``"embedded-fallback:"`` exactly when ``split="train"`` was answered
        with the embedded *test* images; test for that prefix (the two splits
        of one folder have different strings, since they name the file).

    Raises
    ------
    ValueError for a bad ``name``/``split``, or a ``path`` without the files;
    FileNotFoundError when nothing is found (MNIST has no embedded copy).
    """
    if name not in DATASETS:
        raise ValueError(
            f"load_mnist_like: name must be one of {sorted(DATASETS)}; got {name!r}."
        )
    if split not in _PREFIX:
        raise ValueError(
            f"load_mnist_like: split must be 'train' or 'test'; got {split!r}."
        )
    spec = DATASETS[name]
    tried = []

    def report(source, X):
        if verbose:
            print(f"load_mnist_like: {name} {split}: {X.shape[0]} images from {source}")

    for kind, folder in _candidates(name, path):
        pair = _find_pair(folder, split)
        if pair is None:
            if kind == "path":
                want = " and ".join(_file_names(split))
                raise ValueError(
                    f"load_mnist_like: path={str(folder)!r} does not hold the {split} files "
                    f"of {name} (expected {want}, gzipped or not). Point path at the folder "
                    f"that contains them, or leave path=None to search the usual places."
                )
            tried.append(f"{kind} {folder}: not found")
            continue
        images, labels = read_idx(pair[0]), read_idx(pair[1])
        _check_pair(images, labels, *pair)
        X, y = _finish(images, labels, normalize, dtype)
        source = f"{kind}:{pair[0]}"
        report(source, X)
        return X, y, source

    no_download = os.environ.get("LVM_CORE_NO_DOWNLOAD", "") not in ("", "0")
    if download and not no_download:
        dest = cache_dir(name)
        try:
            (images_path, url), (labels_path, _) = [
                _download_file(spec["urls"], f, spec["sha256"][f], dest, DOWNLOAD_TIMEOUT)
                for f in _file_names(split)
            ]
        except OSError as exc:
            tried.append(f"download: failed ({exc})")
            if verbose:
                print(f"load_mnist_like: download of {name} {split} failed, moving on: {exc}")
        else:
            images, labels = read_idx(images_path), read_idx(labels_path)
            _check_pair(images, labels, images_path, labels_path)
            X, y = _finish(images, labels, normalize, dtype)
            source = f"download:{url} -> {images_path}"
            report(source, X)
            return X, y, source
    else:
        tried.append("download: disabled")

    if spec["embedded"]:
        images_path = EMBEDDED_DIR / "t10k-images-idx3-ubyte.gz"
        labels_path = EMBEDDED_DIR / "t10k-labels-idx1-ubyte.gz"
        images, labels = read_idx(images_path), read_idx(labels_path)
        _check_pair(images, labels, images_path, labels_path)
        X, y = _finish(images, labels, normalize, dtype)
        source = f"embedded:{images_path} ({name} test split, 10,000 images)"
        if split == "train":
            source = (
                f"embedded-fallback:{images_path} -- the 10,000 {name} TEST images stand in "
                f"for the training set because no training set was found"
            )
            if verbose:
                print("load_mnist_like: " + "; ".join(tried))
        report(source, X)
        return X, y, source

    raise FileNotFoundError(
        f"load_mnist_like: no copy of {name} ({split}) was found and {name} has no embedded "
        f"default (only fashion-mnist ships one). Looked in: " + "; ".join(tried) + ". "
        f"Put the IDX files in {cache_dir(name)} (or set LVM_CORE_DATA / {spec['env']}), "
        f"or allow the download."
    )
