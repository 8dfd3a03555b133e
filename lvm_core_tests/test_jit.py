"""The numba set-up of lvm_core: a cache directory in any install, a line per compile."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np

ROOT = Path(__file__).parents[1]


def _run(script, **env):
    full_env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR",)}
    full_env.update(PYTHONPATH=str(ROOT), **env)
    return subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=full_env,
                          capture_output=True, text=True, timeout=120)


def test_first_compile_prints_one_line_and_a_cache_load_prints_none(tmp_path):
    kernel = tmp_path / "lvm_core_probe_kernel.py"
    kernel.write_text(textwrap.dedent("""
        from lvm_core._jit import njit, _STATE
        _STATE["report_prefix"] = "lvm_core_probe"

        @njit
        def twice(x):
            return 2.0 * x
    """))
    script = """
        import sys
        sys.path.insert(0, %r)
        import lvm_core_probe_kernel as k
        print(k.twice(1.5))
    """ % str(tmp_path)
    first = _run(script, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "3.0"
    lines = [ln for ln in first.stderr.splitlines() if ln.startswith("lvm_core: compiled")]
    assert len(lines) == 1 and "lvm_core_probe_kernel.twice" in lines[0]
    assert "once; cached in" in lines[0] and " s (" in lines[0]
    second = _run(script, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    assert second.returncode == 0
    assert "lvm_core: compiled" not in second.stderr
    quiet = _run(script, NUMBA_CACHE_DIR=str(tmp_path / "cache2"), LVM_CORE_QUIET_COMPILE="1")
    assert quiet.returncode == 0 and "lvm_core: compiled" not in quiet.stderr


def test_read_only_install_falls_back_to_a_writable_cache(monkeypatch, tmp_path):
    from lvm_core import _jit

    writable_home = tmp_path / "xdg"
    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(writable_home))
    monkeypatch.setattr(_jit.numba.config, "CACHE_DIR", "")
    monkeypatch.setattr(_jit, "_STATE", {})
    real = _jit._writable
    monkeypatch.setattr(_jit, "_writable",
                        lambda d: False if "__pycache__" in str(d) else real(d))
    chosen = _jit.cache_dir()
    assert chosen == str(writable_home / "lvm_core" / "numba")
    assert _jit.numba.config.CACHE_DIR == chosen


def test_nothing_writable_compiles_uncached_with_one_warning(monkeypatch):
    import pytest

    from lvm_core import _jit

    monkeypatch.delenv("NUMBA_CACHE_DIR", raising=False)
    monkeypatch.setattr(_jit.numba.config, "CACHE_DIR", "")
    monkeypatch.setattr(_jit, "_STATE", {})
    monkeypatch.setattr(_jit, "_writable", lambda d: False)
    with pytest.warns(RuntimeWarning, match="no writable directory.*NUMBA_CACHE_DIR"):
        assert _jit.cache_dir() is None

    @_jit.njit
    def add_one(x):
        return x + 1.0

    assert add_one(np.float64(1.0)) == 2.0
    assert add_one._cache.__class__.__name__ == "NullCache"


def test_user_cache_dir_wins(monkeypatch, tmp_path):
    from lvm_core import _jit

    monkeypatch.setenv("NUMBA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(_jit, "_STATE", {})
    assert _jit.cache_dir() == str(tmp_path)
