"""Damaged files: flipped bits, truncation, killed saves, and the version-1 format.

A file written by :func:`lvm_core.io.save` is checksummed (HDF5's checksummed
metadata plus the Fletcher-32 filter on every dataset), so a damaged file is
reported as a ValueError naming the file, never loaded with a changed value.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from lvm_core import io
from lvm_core.models.gmm import GaussianMixture
from lvm_core.models.vae import VAE

DATA = Path(__file__).parent / "data"


def _vae_checkpoint(path):
    model = VAE(n_features=6, n_latent=2, hidden=(4,), random_state=0).initialize()
    io.save(model, path, optimizer_state={"step": 3, "m": {"a": np.arange(3.0)}},
            extra={"epoch": 2, "rng": np.random.default_rng(5), "lr": np.float32(0.5)})
    return model


def _same(a, b):
    """Bit-for-bit equality of decoded file contents (arrays, scalars, generators, containers)."""
    if isinstance(a, np.random.Generator) or isinstance(b, np.random.Generator):
        return (isinstance(a, np.random.Generator) and isinstance(b, np.random.Generator)
                and _same(a.bit_generator.state, b.bit_generator.state))
    if isinstance(a, (np.ndarray, np.generic)) or isinstance(b, (np.ndarray, np.generic)):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(map(_same, a, b))
    return type(a) is type(b) and a == b


def _contents(state):
    return {k: v for k, v in state.items() if k != "lvm_core_version"}


def test_new_files_use_the_checksum_filter_on_every_non_empty_dataset(tmp_path):
    import h5py

    path = tmp_path / "m.h5"
    _vae_checkpoint(path)
    seen = []

    def visit(name, obj):
        if isinstance(obj, h5py.Dataset) and obj.size > 0:
            seen.append(name)
            assert obj.fletcher32, f"dataset {name} has no checksum"

    with h5py.File(path, "r") as f:
        f.visititems(visit)
        assert int(f.attrs["format_version"]) == io.FORMAT_VERSION == 2
    assert any(name.startswith("params/") for name in seen)
    assert any(name.endswith("json") for name in seen)


def test_flipped_bit_in_a_parameter_is_reported(tmp_path):
    path = tmp_path / "m.h5"
    model = _vae_checkpoint(path)
    raw = bytearray(path.read_bytes())
    needle = model.params["enc_W0"].tobytes()
    at = raw.find(needle)
    assert at >= 0, "the parameter's bytes are stored as written"
    raw[at + 5] ^= 0x10
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match=r"m\.h5.*damaged or truncated"):
        io.load(path)


@pytest.mark.parametrize("seed", range(3))
def test_a_flipped_bit_anywhere_is_reported_or_harmless(tmp_path, seed):
    """Flip one bit at many random positions: load raises ValueError or returns
    exactly what was saved (bits in unused space change nothing)."""
    path = tmp_path / "m.h5"
    _vae_checkpoint(path)
    original = path.read_bytes()
    reference = _contents(io.load_state(path))
    rng = np.random.default_rng(seed)
    reported = harmless = 0
    for position in rng.integers(0, len(original), size=60):
        raw = bytearray(original)
        raw[int(position)] ^= 1 << int(rng.integers(0, 8))
        path.write_bytes(bytes(raw))
        try:
            state = io.load_state(path)
        except ValueError as exc:
            assert "m.h5" in str(exc)
            reported += 1
            continue
        assert _same(_contents(state), reference), f"silent change from byte {position}"
        harmless += 1
    assert reported > 0


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_file_raises_value_error_naming_it(tmp_path, fraction):
    path = tmp_path / "m.h5"
    _vae_checkpoint(path)
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * fraction)])
    with pytest.raises(ValueError, match=r"m\.h5"):
        io.load_checkpoint(path)


def test_random_bytes_after_an_hdf5_signature_raise_value_error(tmp_path):
    path = tmp_path / "junk.h5"
    signature = b"\x89HDF\r\n\x1a\n"
    path.write_bytes(signature + np.random.default_rng(0).bytes(4000))
    with pytest.raises(ValueError, match=r"junk\.h5"):
        io.load(path)


def test_killed_save_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    path = tmp_path / "m.h5"
    first = _vae_checkpoint(path)
    script = textwrap.dedent(f"""
        import os
        from lvm_core import io
        from lvm_core.models.vae import VAE

        def die(*args, **kwargs):
            os._exit(9)  # the process is killed in the middle of the write

        io._write_section = die
        model = VAE(n_features=6, n_latent=2, hidden=(4,), random_state=1).initialize()
        io.save(model, {str(path)!r})
    """)
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path)
    assert done.returncode == 9
    strays = [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]
    assert len(strays) == 1 and strays[0].startswith(".m.h5.")
    # the previous file is untouched and loads; the stray file is never read
    loaded = io.load(path)
    assert _same(loaded.params, first.params)
    second = VAE(n_features=6, n_latent=2, hidden=(4,), random_state=2).initialize()
    io.save(second, path)
    assert sorted(os.listdir(tmp_path)) == ["m.h5"]
    assert _same(io.load(path).params, second.params)


def test_a_live_writers_temporary_file_is_kept(tmp_path):
    """Only temporaries of processes that are gone are removed."""
    path = tmp_path / "m.h5"
    live = tmp_path / f".m.h5.{os.getppid()}.abc.tmp"
    live.write_bytes(b"being written")
    _vae_checkpoint(path)
    assert live.exists()


@pytest.mark.parametrize("name", ["gmm_format_v1.h5", "vae_format_v1.h5"])
def test_format_version_1_files_still_load(tmp_path, name):
    import h5py

    state = io.load_state(DATA / name)
    assert state["format_version"] == 1
    model = io.load(DATA / name)
    with h5py.File(DATA / name, "r") as f:  # the values are those stored in the file
        if "params" in f:
            for ds in f["params"].values():
                assert _same(model.params[ds.attrs["key"]], ds[()])
    if name.startswith("gmm"):
        assert isinstance(model, GaussianMixture)
        X = np.random.default_rng(0).standard_normal((60, 3))
        assert np.all(np.isfinite(model.score_samples(X)))
    else:
        _, opt_state, extra = io.load_checkpoint(DATA / name)
        assert opt_state["step"] == 3 and extra["epoch"] == 2
        assert isinstance(extra["rng"], np.random.Generator)
    # re-saving writes the current, checksummed format
    io.save(model, tmp_path / "again.h5")
    assert io.load_state(tmp_path / "again.h5")["format_version"] == io.FORMAT_VERSION
