"""load_mnist_like: the source search order, the mocked download with checksum
verification, and the embedded Fashion-MNIST test split (Xiao et al. 2017)."""
from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

import data_tools.mnist as mnist
from data_tools.idx import write_idx
from data_tools.mnist import load_mnist_like


def _write_split(folder: Path, split: str, n: int, fill: int, gz=True, dotted=False):
    """A tiny MNIST-like split whose pixels all equal ``fill`` (identifies the source)."""
    folder.mkdir(parents=True, exist_ok=True)
    prefix = {"train": "train", "test": "t10k"}[split]
    images = np.full((n, 28, 28), fill, dtype=np.uint8)
    labels = (np.arange(n) % 10).astype(np.uint8)
    sep = "." if dotted else "-"
    ext = ".gz" if gz else ""
    write_idx(folder / f"{prefix}-images{sep}idx3-ubyte{ext}", images, compress=gz)
    write_idx(folder / f"{prefix}-labels{sep}idx1-ubyte{ext}", labels, compress=gz)
    return images, labels


def _no_network(url, timeout):
    raise OSError(f"no network in tests ({url})")


@pytest.fixture
def isolated(tmp_path, monkeypatch):
    """Every source empty: env unset, cache and Debian folders in tmp_path, no network."""
    for var in ("LVM_CORE_DATA", "FASHION_MNIST_DIR", "MNIST_DIR", "LVM_CORE_NO_DOWNLOAD",
                "LVM_CORE_SYSTEM_DATA_DIRS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setattr(mnist, "_DEBIAN_ROOT", tmp_path / "debian")
    monkeypatch.setattr(mnist, "_fetch_url", _no_network)
    return tmp_path


def _fill(X):
    return int(round(float(X[0, 0]) * 255))


def test_search_order_each_source_wins_over_the_later_ones(isolated, monkeypatch):
    tmp = isolated
    # Populate every source with a distinct fill value, then remove them front to back.
    _write_split(tmp / "explicit", "train", 3, 1)
    _write_split(tmp / "root" / "fashion-mnist", "train", 3, 2)
    _write_split(tmp / "fmd", "train", 3, 3)
    _write_split(tmp / "xdg" / "lvm_core" / "fashion-mnist", "train", 3, 4)
    _write_split(tmp / "debian" / "fashion-mnist", "train", 3, 5)
    monkeypatch.setenv("LVM_CORE_DATA", str(tmp / "root"))
    monkeypatch.setenv("FASHION_MNIST_DIR", str(tmp / "fmd"))

    X, y, source = load_mnist_like(path=tmp / "explicit", verbose=False)
    assert _fill(X) == 1 and source.startswith("path:")
    X, y, source = load_mnist_like(verbose=False)
    assert _fill(X) == 2 and "LVM_CORE_DATA" in source
    monkeypatch.delenv("LVM_CORE_DATA")
    X, y, source = load_mnist_like(verbose=False)
    assert _fill(X) == 3 and "FASHION_MNIST_DIR" in source
    monkeypatch.delenv("FASHION_MNIST_DIR")
    X, y, source = load_mnist_like(verbose=False)
    assert _fill(X) == 4 and source.startswith("cache:")
    X, y, source = load_mnist_like(verbose=False, split="test")  # cache has no test split
    assert X.shape == (10000, 784) and source.startswith("embedded:")
    for p in (tmp / "xdg" / "lvm_core" / "fashion-mnist").iterdir():
        p.unlink()
    X, y, source = load_mnist_like(verbose=False)
    assert _fill(X) == 5 and source.startswith("debian:")
    np.testing.assert_array_equal(y, np.arange(3) % 10)
    assert y.dtype == np.int64 and X.dtype == np.float32 and X.shape == (3, 784)


def test_system_data_dirs_replace_or_hide_the_debian_root(isolated, monkeypatch):
    tmp = isolated
    _write_split(tmp / "debian" / "fashion-mnist", "test", 3, 5)
    _write_split(tmp / "sys2" / "fashion-mnist", "test", 3, 6)
    X, _, source = load_mnist_like(split="test", verbose=False)
    assert _fill(X) == 5 and source.startswith("debian:")
    # Empty: no system copy is seen (the fresh-install path on a machine with the package).
    monkeypatch.setenv("LVM_CORE_SYSTEM_DATA_DIRS", "")
    X, _, source = load_mnist_like(split="test", verbose=False, download=False)
    assert X.shape == (10000, 784) and source.startswith("embedded:")
    # A list of roots, searched in order; the first with the files wins.
    roots = os.pathsep.join([str(tmp / "nothing-here"), str(tmp / "sys2"), str(tmp / "debian")])
    monkeypatch.setenv("LVM_CORE_SYSTEM_DATA_DIRS", roots)
    assert mnist.system_data_roots() == [tmp / "nothing-here", tmp / "sys2", tmp / "debian"]
    X, _, source = load_mnist_like(split="test", verbose=False)
    assert _fill(X) == 6 and source.startswith("system:")


def test_lvm_core_data_root_itself_and_raw_dotted_names(isolated, monkeypatch):
    _write_split(isolated / "flat", "test", 4, 7, gz=False, dotted=True)
    monkeypatch.setenv("LVM_CORE_DATA", str(isolated / "flat"))
    X, y, source = load_mnist_like(split="test", verbose=False)
    assert _fill(X) == 7 and X.shape == (4, 784)
    # The root itself counts only for the default data set: these are not MNIST digits.
    with pytest.raises(FileNotFoundError, match="no copy of mnist"):
        load_mnist_like("mnist", split="test", verbose=False)
    _write_split(isolated / "flat" / "mnist", "test", 2, 8)
    X, y, source = load_mnist_like("mnist", split="test", verbose=False)
    folder = isolated / "flat" / "mnist"
    assert _fill(X) == 8 and source == f"env LVM_CORE_DATA:{folder / 't10k-images-idx3-ubyte.gz'}"


def test_cache_default_is_home_dot_cache(isolated, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(isolated / "home"))
    assert mnist.cache_dir("mnist") == isolated / "home" / ".cache" / "lvm_core" / "mnist"


def test_explicit_path_without_files_raises(isolated):
    (isolated / "empty").mkdir()
    with pytest.raises(ValueError, match="path=.*empty.*train-images-idx3-ubyte.gz"):
        load_mnist_like(path=isolated / "empty", verbose=False)


def test_normalize_and_dtype(isolated):
    _write_split(isolated / "d", "train", 2, 51)
    X, _, _ = load_mnist_like(path=isolated / "d", verbose=False)
    np.testing.assert_allclose(X, 51 / 255, rtol=1e-6)
    X, _, _ = load_mnist_like(path=isolated / "d", normalize=False, dtype=None, verbose=False)
    assert X.dtype == np.uint8 and int(X.max()) == 51
    X, _, _ = load_mnist_like(path=isolated / "d", dtype="float64", verbose=False)
    assert X.dtype == np.float64
    with pytest.raises(ValueError, match="floating dtype"):
        load_mnist_like(path=isolated / "d", dtype="uint8", verbose=False)


def test_bad_name_split_and_inconsistent_files(isolated):
    with pytest.raises(ValueError, match="name must be one of"):
        load_mnist_like("cifar", verbose=False)
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_mnist_like(split="valid", verbose=False)
    folder = isolated / "bad"
    _write_split(folder, "train", 3, 1)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="3 images but .* 4 labels"):
        load_mnist_like(path=folder, verbose=False)


def _fake_official(monkeypatch, split="train", n=5, fill=9):
    """Serve gz bytes for the split's files and register their SHA-256 as official."""
    folder = Path(os.environ["XDG_CACHE_HOME"]).parent / "served"
    _write_split(folder, split, n, fill)
    served = {p.name: p.read_bytes() for p in folder.iterdir()}
    checksums = dict(mnist.DATASETS["fashion-mnist"]["sha256"])
    for name, data in served.items():
        checksums[name] = hashlib.sha256(data).hexdigest()
    monkeypatch.setitem(mnist.DATASETS["fashion-mnist"], "sha256", checksums)
    calls = []

    def fetch(url, timeout):
        calls.append((url, timeout))
        return served[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(mnist, "_fetch_url", fetch)
    return served, calls


def test_download_verified_into_cache_then_cache_is_used(isolated, monkeypatch, capsys):
    served, calls = _fake_official(monkeypatch)
    X, y, source = load_mnist_like(verbose=True)
    assert _fill(X) == 9 and source.startswith("download:")
    assert "download:" in capsys.readouterr().out
    cache = isolated / "xdg" / "lvm_core" / "fashion-mnist"
    assert sorted(p.name for p in cache.iterdir()) == sorted(served)
    for name, data in served.items():
        assert (cache / name).read_bytes() == data
    assert all(t <= mnist.DOWNLOAD_TIMEOUT for _, t in calls)
    n_calls = len(calls)
    X, y, source = load_mnist_like(verbose=False)  # second call: from the cache
    assert source.startswith("cache:") and len(calls) == n_calls


def test_checksum_mismatch_rejected_no_partial_file(isolated, monkeypatch, capsys):
    served, calls = _fake_official(monkeypatch, split="test")
    tampered = {k: v[:-1] + bytes([v[-1] ^ 1]) for k, v in served.items()}
    monkeypatch.setattr(mnist, "_fetch_url", lambda url, timeout: tampered[url.rsplit("/", 1)[1]])
    X, y, source = load_mnist_like(split="test", verbose=True)
    out = capsys.readouterr().out
    assert "SHA-256 mismatch" in out and "moving on" in out
    assert source.startswith("embedded:")  # it moved on to the embedded default
    cache = isolated / "xdg" / "lvm_core" / "fashion-mnist"
    assert not cache.exists() or list(cache.iterdir()) == []


def test_download_failure_mid_way_leaves_no_file(isolated, monkeypatch):
    served, _ = _fake_official(monkeypatch, split="test")

    def flaky(url, timeout):
        if "labels" in url:
            raise TimeoutError("timed out")
        return served[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(mnist, "_fetch_url", flaky)
    X, y, source = load_mnist_like(split="test", verbose=False)
    assert source.startswith("embedded:")
    cache = isolated / "xdg" / "lvm_core" / "fashion-mnist"
    # The verified images file stays (it is complete); no temporary file is left.
    assert [p.name for p in cache.iterdir()] == ["t10k-images-idx3-ubyte.gz"]
    assert all(not p.name.startswith(".") for p in cache.iterdir())
    for p in cache.iterdir():
        assert p.read_bytes() == served[p.name]
    # Next time the verified images file is reused; only the labels are fetched.
    fetched = []

    def recording(url, timeout):
        fetched.append(url.rsplit("/", 1)[1])
        return served[fetched[-1]]

    monkeypatch.setattr(mnist, "_fetch_url", recording)
    X, y, source = load_mnist_like(split="test", verbose=False)
    assert source.startswith("download:") and fetched == ["t10k-labels-idx1-ubyte.gz"]


def test_download_disabled(isolated, monkeypatch):
    def must_not_fetch(url, timeout):
        raise AssertionError("download attempted although disabled")

    monkeypatch.setattr(mnist, "_fetch_url", must_not_fetch)
    _, _, source = load_mnist_like(split="test", download=False, verbose=False)
    assert source.startswith("embedded:")
    monkeypatch.setenv("LVM_CORE_NO_DOWNLOAD", "1")
    _, _, source = load_mnist_like(split="test", verbose=False)
    assert source.startswith("embedded:")


def test_train_fallback_says_it_is_the_test_set(isolated, capsys):
    X, y, source = load_mnist_like(split="train", verbose=True)
    out = capsys.readouterr().out
    assert X.shape == (10000, 784)
    assert source.startswith("embedded-fallback:") and "TEST images" in source
    assert "t10k-images-idx3-ubyte.gz" in source
    assert "TEST images" in out and "download: failed" in out


def test_mnist_has_no_embedded_default(isolated):
    with pytest.raises(FileNotFoundError, match="no embedded default"):
        load_mnist_like("mnist", split="test", verbose=False)


def test_embedded_default_content(isolated):
    X, y, source = load_mnist_like(split="test", verbose=False)
    assert source.startswith("embedded:")
    assert X.shape == (10000, 784) and X.dtype == np.float32
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0
    assert y.shape == (10000,) and y.dtype == np.int64
    # Fashion-MNIST's test split is balanced: 1,000 images of each of the 10 classes.
    np.testing.assert_array_equal(np.bincount(y, minlength=10), np.full(10, 1000))
    # First labels of the official t10k file: ankle boot, pullover, trouser, trouser, shirt.
    np.testing.assert_array_equal(y[:5], [9, 2, 1, 1, 6])
    # The decompressed payload is the upstream one (SHA-256 in embedded/README.md).
    raw = gzip.decompress((mnist.EMBEDDED_DIR / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert hashlib.sha256(raw).hexdigest() == (
        "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"
    )


def test_embedded_files_and_size_budget():
    names = {p.name for p in mnist.EMBEDDED_DIR.iterdir()}
    assert {
        "t10k-images-idx3-ubyte.gz",
        "t10k-labels-idx1-ubyte.gz",
        "LICENSE-fashion-mnist.txt",
        "README.md",
        "devils-dictionary.txt.gz",
    } <= names
    total = sum(p.stat().st_size for p in mnist.EMBEDDED_DIR.iterdir())
    assert total <= 5 * 1024 * 1024
    licence = (mnist.EMBEDDED_DIR / "LICENSE-fashion-mnist.txt").read_text()
    assert "Zalando SE" in licence and "Permission is hereby granted" in licence


@pytest.mark.skipif(
    not Path("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_embedded_equals_debian_copy(isolated):
    X_emb, y_emb, _ = load_mnist_like(split="test", verbose=False)
    X_deb, y_deb, source = load_mnist_like(
        split="test", path="/usr/share/datasets/fashion-mnist", verbose=False
    )
    np.testing.assert_array_equal(X_emb, X_deb)
    np.testing.assert_array_equal(y_emb, y_deb)


def test_second_mirror_used_when_first_fails(isolated, monkeypatch):
    served, _ = _fake_official(monkeypatch, split="test")
    monkeypatch.setitem(mnist.DATASETS["fashion-mnist"], "urls",
                        ["http://mirror-a.invalid/", "http://mirror-b.invalid/"])

    def fetch(url, timeout):
        if "mirror-a" in url:
            raise ConnectionError("refused")
        return served[url.rsplit("/", 1)[1]]

    monkeypatch.setattr(mnist, "_fetch_url", fetch)
    X, y, source = load_mnist_like(split="test", verbose=False)
    cache = isolated / "xdg" / "lvm_core" / "fashion-mnist"
    assert source == (
        f"download:http://mirror-b.invalid/t10k-images-idx3-ubyte.gz -> "
        f"{cache / 't10k-images-idx3-ubyte.gz'}"
    )
    assert _fill(X) == 9
