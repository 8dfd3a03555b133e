"""--quick smoke runs of the autoregressive examples and of benchmarks/density_uci.py.

Each script runs in a fresh process with the environment of a fresh install
(no Fashion-MNIST download, embedded default data; one BLAS thread), writes
its figures and prints its headline line.  The benchmark's quick run needs
the benchmark data (``../shared/data``); it is skipped where that is absent.
"""
from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import require
from .test_examples import PNG_SIGNATURE, _fresh_install_env

ROOT = Path(__file__).resolve().parents[1]


def _run(args, tmp_path):
    proc = subprocess.run([sys.executable, *args], cwd=str(tmp_path),
                          env=_fresh_install_env(tmp_path), capture_output=True, text=True,
                          timeout=600)
    log = f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, log
    return proc.stdout, log


@pytest.mark.slow
@pytest.mark.parametrize("script,figures,pattern", [
    ("nade_fashion.py", ["samples.png", "conditionals.png", "learning_curve.png"],
     r"RESULT nade_fashion test_nll=(\d+\.\d+)"),
    ("rnade_red_wine.py", ["conditionals.png", "samples.png"],
     r"RESULT rnade_red_wine rnade_ll=(-?\d+\.\d+) gaussian_ll=(-?\d+\.\d+)"),
])
def test_example_quick_run(script, figures, pattern, tmp_path):
    require("matplotlib")
    out = tmp_path / "out"
    stdout, log = _run([str(ROOT / "examples" / script), "--quick", "--out", str(out)], tmp_path)
    for name in figures:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 2000, (name, log)
    match = re.search(pattern, stdout)
    assert match, log
    if script == "nade_fashion.py":
        # 784 Bernoulli pixels: below the 784 log 2 = 543 nats of a uniform model
        assert 100.0 < float(match.group(1)) < 543.0, log


def _benchmark_data():
    for base in (ROOT.parent, ROOT.parent.parent):
        path = base / "shared" / "data"
        if (path / "dna_binary.npz").is_file() and (path / "red_wine.hdf5").is_file():
            return path
    return None


@pytest.mark.slow
def test_density_benchmark_quick_run(tmp_path):
    data = _benchmark_data()
    if data is None:
        pytest.skip("benchmark data (../shared/data) not present")
    require("h5py")
    stdout, log = _run([str(ROOT / "benchmarks" / "density_uci.py"), "--quick",
                        "--data-dir", str(data)], tmp_path)
    for model in ("fvsbn", "nade"):
        for dataset in ("dna", "mushrooms", "nips"):
            assert re.search(rf"RESULT uci model={model} dataset={dataset} "
                             rf"test_nll=\d+\.\d+ published=\d+\.\d+", stdout), log
    gauss = re.search(r"RESULT red_wine gaussian_ll=(-?\d+\.\d+) rnade_ll=(-?\d+\.\d+)", stdout)
    assert gauss, log
