"""Smoke tests of the example scripts: each runs end to end on a tiny budget.

Every script in ``examples/`` is run with ``--quick --out <tmp_path>`` in a
fresh Python process, in the environment of a fresh install: no download
(``LVM_CORE_NO_DOWNLOAD=1``), no system data package
(``LVM_CORE_SYSTEM_DATA_DIRS=``) and an empty user cache, so the Fashion-MNIST
examples use the embedded default.  BLAS and numba run on one thread (the
suite runs under ``pytest -n 2``).  A test passes when the script exits 0,
writes its PNG figures (non-empty, valid PNG signature) and prints its
headline numbers; a few lines check that the numbers mean what they say.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import require

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: script -> (figures it must write, lines (regular expressions) its output must contain)
CASES = {
    "train_vae.py": (
        ["samples.png", "reconstructions.png", "latent_scatter.png", "learning_curve.png"],
        [r"EMBEDDED DEFAULT", r"test ELBO: -\d+\.\d+ nats per image",
         r"importance-sampled log p\(x\) \(k=10, first 500 test images\): -\d+\.\d+",
         r"RESULT train_vae full_data=0 epochs=2 "],
    ),
    "hmm_text.py": (
        ["emissions.png"],
        [r"Emission table P\(symbol \| state\)", r"vowels in the vowel state: 5/5",
         r"RESULT hmm_text vowels_ok=5 "],
    ),
    "semi_supervised_hmm.py": (
        ["states.png"],
        [r"unsupervised EM: +0\.\d+", r"partially labelled: +0\.\d+",
         r"RESULT semi_supervised_hmm accuracy_unsupervised="],
    ),
    "gmm_clusters.py": (
        ["cluster_means.png", "bic.png"],
        [r"PPCA with 10 factors", r"K = +5: BIC", r"K = +10: BIC", r"best by BIC: K = \d+",
         r"RESULT gmm_clusters best_k="],
    ),
    "fa_em_vs_aevb.py": (
        ["fa_learning_curve.png", "fa_learning_curve_em.png", "fa_data.png"],
        [r"RESULT exp1_test_elbo="],
    ),    "cvae_fashion.py": (
        ["samples_per_class.png", "same_noise_across_classes.png", "learning_curve.png"],
        [r"RESULT cvae_fashion "],
    ),
    "svi_gaps.py": (["gaps.png", "svi_trace.png"], [r"RESULT svi_gaps "]),
    "gmvae_fashion.py": (
        ["samples_per_component.png", "confusion_matrix.png"],
        [r"test clustering accuracy", r"RESULT gmvae_fashion "],
    ),
    "vrnn_fashion_rows.py": (
        ["vrnn_samples.png", "vrnn_rows.png", "vrnn_learning_curve.png"],
        [r"RESULT vrnn_fashion_rows "],
    ),
    "estimator_variance.py": (
        ["gradient_variance.png", "training_curves.png"],
        [r"EMBEDDED DEFAULT", r"RESULT estimator_variance var_reinforce="],
    ),
}


def _fresh_install_env(tmp_path):
    """The environment of a fresh clone without network, data package or cache; one thread."""
    env = dict(os.environ)
    for var in ("LVM_CORE_DATA", "FASHION_MNIST_DIR", "MNIST_DIR"):
        env.pop(var, None)
    env.update({
        "LVM_CORE_NO_DOWNLOAD": "1",
        "LVM_CORE_SYSTEM_DATA_DIRS": "",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "OPENBLAS_NUM_THREADS": "1",
        "OMP_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
        "NUMBA_NUM_THREADS": "1",
        "MPLBACKEND": "Agg",
        "MPLCONFIGDIR": str(tmp_path / "mpl"),
    })
    return env


def _run_example(script, tmp_path, *extra):
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--quick", "--out", str(out), *extra],
        cwd=str(tmp_path), env=_fresh_install_env(tmp_path), capture_output=True, text=True,
        timeout=600,
    )
    log = f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"{script} exited with {proc.returncode}\n{log}"
    return out, proc.stdout, log


def _check_train_vae(stdout, log):
    """The printed numbers are ordered as they must be."""
    elbo = float(re.search(r"test ELBO: (-?\d+\.\d+)", stdout).group(1))
    log_px = float(re.search(r"log p\(x\) .*?: (-?\d+\.\d+) nats", stdout).group(1))
    first_val = float(re.search(r"epoch +1: train -ELBO +\S+ +test -ELBO +(\S+)", stdout).group(1))
    # Bernoulli likelihood of 784 grey levels: an untrained VAE (logits near 0) scores
    # about -784 log 2 = -543 nats; two epochs on 2,000 images reach about -340.
    assert -450.0 < elbo < -150.0, log
    # The IWAE-10 bound is above the ELBO in expectation, here by about 10 nats
    # (many standard errors of the 500-image means).
    assert log_px > elbo, log
    assert -elbo < first_val, f"the test -ELBO did not fall after the first epoch\n{log}"


def _check_semi_supervised(stdout, log):
    """Accuracies are fractions; the true model does better than chance (1/4)."""
    acc = dict(re.findall(r"(accuracy_\w+)=(\d\.\d+)", stdout))
    assert set(acc) == {"accuracy_unsupervised", "accuracy_partially_labelled",
                        "accuracy_true_model"}, log
    assert all(0.0 <= float(v) <= 1.0 for v in acc.values()), log
    assert float(acc["accuracy_true_model"]) > 0.4, log


CHECKS = {"train_vae.py": _check_train_vae, "semi_supervised_hmm.py": _check_semi_supervised}
SCRIPTS = sorted(p.name for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))


def test_known_examples_exist():
    missing = sorted(set(CASES) - set(SCRIPTS))
    assert not missing, f"examples {missing} are listed in CASES but not in {EXAMPLES}"


@pytest.mark.slow
@pytest.mark.parametrize("script", SCRIPTS)
def test_example_runs_and_writes_its_figures(script, tmp_path):
    """Any example (also one added later, not yet in CASES) runs with --quick --out and
    writes PNGs; the listed ones write the listed figures and print the listed lines."""
    require("matplotlib")
    figures, patterns = CASES.get(script, ([], []))
    out, stdout, log = _run_example(script, tmp_path)
    written = sorted(p.name for p in out.glob("*.png"))
    assert written, f"{script} wrote no PNG under --out\n{log}"
    for name in figures:
        assert name in written, f"{script} did not write {name} (wrote {written})\n{log}"
    for name in written:
        data = (out / name).read_bytes()
        assert data[:8] == PNG_SIGNATURE and len(data) > 2000, f"{name} is not a real PNG"
    for pattern in patterns:
        assert re.search(pattern, stdout), f"{script}: no line matching {pattern!r}\n{log}"
    if script in CHECKS:
        CHECKS[script](stdout, log)


FAKE_CUPY = '''"""Stand-in for cupy: arrays on array-api-strict's device1, which refuses any
conversion to NumPy (like a GPU).  Each call is logged to $FAKE_CUPY_LOG."""
import os

import array_api_strict as _xp
import numpy as _np


class ndarray:  # no array is an instance: array-api-compat's is_cupy_array stays False
    pass


def is_available():  # the stand-in "GPU" is always there
    return True


def asarray(a, dtype=None):
    with open(os.environ["FAKE_CUPY_LOG"], "a") as f:
        f.write(f"asarray {getattr(a, 'shape', None)}\\n")
    return _xp.asarray(_np.asarray(a), dtype=dtype, device=_xp.Device("device1"))
'''

#: --backend cupy runs, with budgets small enough for the slow generic kernels
CUPY_CASES = {
    "train_vae.py": ["--epochs", "1", "--n-eval", "100"],
    "hmm_text.py": ["--n-chars", "2000", "--n-iter", "3"],
    "semi_supervised_hmm.py": ["--n-iter", "3", "--n-sequences", "2"],
    "gmm_clusters.py": [],
}


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(CUPY_CASES))
def test_cupy_option_is_array_api_clean(script, tmp_path, monkeypatch):
    """``--backend cupy`` with a stand-in cupy whose arrays live on array-api-strict's
    device1: the data go through cupy.asarray and nothing converts them to NumPy
    implicitly (host copies only through lvm_core.backend.to_numpy)."""
    require("matplotlib")
    require("array_api_strict")
    fake = tmp_path / "fake_cupy" / "cupy"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(FAKE_CUPY)
    calls = tmp_path / "cupy_calls.txt"
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(fake.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    monkeypatch.setenv("FAKE_CUPY_LOG", str(calls))
    out, stdout, log = _run_example(script, tmp_path, "--backend", "cupy", *CUPY_CASES[script])
    assert calls.is_file() and calls.read_text().count("asarray") >= 1, (
        f"{script} --backend cupy never called cupy.asarray\n{log}")
    for name in CASES[script][0]:
        assert (out / name).is_file(), f"{script} did not write {name}\n{log}"


@pytest.mark.parametrize("script", sorted(CUPY_CASES))
def test_cupy_option_without_cupy_says_so_in_one_line(script, tmp_path, monkeypatch):
    """``--backend cupy`` where CuPy cannot be imported: exit status 2 and one line that
    names what is missing and the fix, no traceback."""
    blocker = tmp_path / "no_cupy" / "cupy"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named cupy')\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(blocker.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script), "--quick", "--out", str(tmp_path / "out"),
         "--backend", "cupy", *CUPY_CASES[script]],
        cwd=str(tmp_path), env=_fresh_install_env(tmp_path), capture_output=True, text=True,
        timeout=300,
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "--backend cupy needs CuPy" in lines[0] \
        and "--backend numpy" in lines[0], proc.stderr


def test_cupy_option_without_a_gpu_says_so_in_one_line(tmp_path, monkeypatch):
    fake = tmp_path / "gpuless" / "cupy"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("def is_available():\n    return False\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
        [str(fake.parent)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "gmm_clusters.py"), "--quick", "--out",
         str(tmp_path / "out"), "--backend", "cupy"],
        cwd=str(tmp_path), env=_fresh_install_env(tmp_path), capture_output=True, text=True,
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0
    assert "needs a CUDA GPU, but no CUDA GPU was found" in proc.stderr


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_example_caps_blas_threads_before_importing_numpy(script):
    """Each example calls limit_blas_threads before NumPy is imported (the BLAS pools
    are sized when the library loads)."""
    text = (EXAMPLES / script).read_text()
    cap = text.find("limit_blas_threads()")
    assert cap >= 0, f"{script} does not cap its BLAS threads"
    numpy_import = text.find("\nimport numpy")
    assert 0 <= cap < numpy_import, f"{script} imports NumPy before capping BLAS threads"
    assert "--threads" in text
