"""Smoke test of ``benchmarks/vae_vs_torch.py``: both configurations run end to end on a
tiny budget (``--quick``: one epoch on 1280 images, one thread) and their twins agree.

What is checked is what the script's figures mean, not its timings (timing
tests never go in the suite): the twin checks before timing pass (same loss
and gradients on one batch, same 2-step ``fit`` as torch replaying its draws),
the ``RESULT`` line has its keys, and the test bounds of lvm_core and the
torch twin, trained on the same batches and eps, agree to float32 round-off.
The JAX peer is run only where jax is installed (it is not a dependency).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import require

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "vae_vs_torch.py"


def test_torch_cb_log_normalizer_is_finite_with_its_gradient_for_large_logits():
    """The torch twin's log C(l) = log(l / tanh(l/2)) and its autograd gradient match
    float64 closed forms from |l| = 1e-3 to 1e6 (a series overflowing in the branch that
    torch.where drops would give NaN gradients once decoder logits grow past ~500)."""
    torch = require("torch")
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import vae_peers
    finally:
        sys.path.remove(str(SCRIPT.parent))

    def value(l):
        return vae_peers.torch_cb_log_normalizer(torch, torch.from_numpy(l)).numpy()

    def grad(l):
        lt = torch.from_numpy(l).requires_grad_()
        vae_peers.torch_cb_log_normalizer(torch, lt).sum().backward()
        return lt.grad.numpy()

    err, gerr = vae_peers.check_cb_log_normalizer(value, grad)
    assert err < 1e-6 and gerr < 1e-6, (err, gerr)


def _run(tmp_path, *args):
    env = dict(os.environ, LVM_CORE_NO_DOWNLOAD="1", NUMBA_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--threads", "1", *args],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    log = f"--- stdout\n{proc.stdout[-4000:]}\n--- stderr\n{proc.stderr[-4000:]}"
    assert proc.returncode == 0, f"vae_vs_torch.py {args} exited with {proc.returncode}\n{log}"
    return proc.stdout, log


def _result(stdout, name):
    line = re.search(rf"^RESULT {name} (.*)$", stdout, re.M)
    assert line is not None, f"no RESULT {name} line"
    return {k: float(v) for k, v in re.findall(r"(\w+)=(-?[\d.]+)", line.group(1))}


def _twin_checks_pass(stdout, log, n_checks):
    checks = re.findall(r"^  \S.*\s(ok|MISMATCH)$", stdout, re.M)
    assert len(checks) == n_checks and all(flag == "ok" for flag in checks), log


@pytest.mark.slow
def test_config_a_quick(tmp_path):
    require("torch")
    stdout, log = _run(tmp_path, "--no-jax")
    _twin_checks_pass(stdout, log, 3)
    res = _result(stdout, "vae")
    assert {"ratio", "nelbo_ours", "nelbo_torch", "nelbo_diff"} <= set(res), log
    # an untrained Bernoulli VAE scores ~543 nats (784 log 2); one short epoch is below it
    assert 150.0 < res["nelbo_ours"] < 560.0, log
    assert abs(res["nelbo_diff"]) < 0.05, log  # same batches and eps: round-off only
    assert res["ratio"] > 0.0, log


@pytest.mark.slow
def test_config_b_quick(tmp_path):
    require("torch")
    stdout, log = _run(tmp_path, "--config", "b", "--no-jax")
    _twin_checks_pass(stdout, log, 5)  # + torch's log C(l) and its gradient
    res = _result(stdout, "vae_b")
    assert {"ratio", "bound_ours", "bound_torch", "bound_diff"} <= set(res), log
    # continuous Bernoulli densities on [0, 1] grey levels: the bound is positive
    assert res["bound_ours"] > 0.0, log
    assert abs(res["bound_diff"]) < 0.05 and abs(res["nelbo_diff"]) < 0.05, log
    # IWAE k = 5 is at least the ELBO on average (Burda et al. 2016, Theorem 1)
    assert res["bound_ours"] > -res["nelbo_ours"] - 1.0, log
    # the float64 twins (same start, batches, eps) end together after a short run, and
    # the nudged rerun reports how far a 1e-6 change moves our bound
    f64 = _result(stdout, "vae_b_float64")
    assert abs(f64["bound_diff"]) < 0.01 and f64["bound_ours"] > 0.0, log
    assert "bound_shift" in _result(stdout, "vae_b_sensitivity"), log


@pytest.mark.slow
def test_config_a_quick_with_jax(tmp_path):
    require("torch")
    pytest.importorskip("jax")  # a benchmark peer only, never required
    pytest.importorskip("optax")
    stdout, log = _run(tmp_path)
    _twin_checks_pass(stdout, log, 5)
    res = _result(stdout, "vae_jax")
    assert {"ratio_step", "ratio_scan", "nelbo_diff", "compile_step_s"} <= set(res), log
    assert abs(res["nelbo_diff"]) < 0.05 and abs(res["nelbo_diff_scan"]) < 0.05, log
