"""benchmarks/gpu_check.sh: one skip line without a GPU; its dry run (tiny
sizes, array-api-strict's device1 standing in for CuPy) gets through every
step up to the CuPy calls and prints every RESULT line."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def _gpu_present():
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _run(*args, timeout):
    if shutil.which("bash") is None:
        pytest.skip("bash is not installed")
    env = dict(os.environ, PYTHON=sys.executable)
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.skipif(_gpu_present(), reason="a GPU is present: the script would run the check")
def test_without_gpu_one_line_and_exit_0(tmp_path):
    log_dir = tmp_path / "gpulog"
    proc = _run(str(log_dir), timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("gpu_check: no GPU here"), proc.stdout
    assert not log_dir.exists()  # nothing run, nothing written


def test_usage_error_without_log_dir():
    proc = _run(timeout=60)
    assert proc.returncode == 2 and "usage" in proc.stderr


@pytest.mark.slow
def test_dry_run_gets_through_every_step(tmp_path):
    log_dir = tmp_path / "logs"
    proc = _run(str(log_dir), "--dry-run", timeout=420)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "status=" not in out, out  # no step failed or timed out
    for name in ("gpu_tests", "gpu_vae", "gpu_hmm_b", "gpu_hmm_long", "gpu_gmm"):
        assert f"RESULT {name} " in out, out
    assert 'RESULT gpu_tests summary="1 passed' in out, out
    for line in out.splitlines():
        if line.startswith("RESULT gpu_hmm") or line.startswith("RESULT gpu_gmm"):
            fields = dict(kv.split("=", 1) for kv in line.split()[2:])
            for key in ("diff_scan", "diff_scan32", "diff_xp", "ll_rel_diff"):
                if key in fields:
                    assert float(fields[key]) < 1e-10, line
    for step in ("tests", "vae", "hmm", "gmm"):
        assert (log_dir / f"{step}.log").is_file()
