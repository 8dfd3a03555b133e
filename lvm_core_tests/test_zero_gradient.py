"""The gradient checks can fail: a backward that wrongly returns zeros is reported.

The whole-model and layer checks (:func:`lvm_core.gradcheck.check_grads_resolvable`)
scale the error by max(|analytic|, |numeric|) and decide which gradients are
large enough to check by the *numeric* gradient only.  A filter on the analytic
gradient would classify a zeroed gradient as "too small to resolve" and let it
pass; these tests zero gradients on purpose and require a failure.
"""
from __future__ import annotations

import numpy as np
import pytest

from lvm_core import nn
from lvm_core.backend import to_numpy
from lvm_core.gradcheck import GradientCheckError, check_grads_resolvable, grad_report
from lvm_core.models.vae import VAE


def _vae_case(seed=0):
    rng = np.random.default_rng(seed)
    model = VAE(5, n_latent=2, hidden=(4,), activation="tanh", dtype="float64",
                random_state=seed).initialize()
    X = rng.random((3, 5))
    eps = rng.standard_normal((1, 3, 2))
    loss, grads = model.loss_and_grads(X, eps=eps)

    def f(p):
        return float(to_numpy(model.loss_and_grads(X, eps=eps, params=p)[0]))

    return model, f, grads, float(loss)


def test_right_vae_gradients_pass():
    model, f, grads, loss = _vae_case()
    reports = check_grads_resolvable(f, model.params, grads, loss)
    assert max(r.error for r in reports.values()) < 1e-6


@pytest.mark.parametrize("key", ["enc_W0", "enc_b_log_var", "dec_W_out"])
def test_a_zeroed_vae_gradient_is_reported(key):
    model, f, grads, loss = _vae_case()
    grads = dict(grads)
    grads[key] = np.zeros_like(grads[key])
    with pytest.raises(GradientCheckError, match=key):
        check_grads_resolvable(f, model.params, grads, loss)
    report = grad_report(f, model.params, grads, h=1e-5)[key]
    assert report.error == pytest.approx(1.0) and report.analytic_max == 0.0
    # what a filter on the analytic gradient would have done: skip the zero
    floor = 1e-4 * (1.0 + abs(loss))
    assert report.analytic_max < floor <= report.numeric_max


def test_a_deliberately_zeroed_layer_backward_is_reported(monkeypatch):
    """Replace Dense.backward by one that writes zero gradients: the model check fails."""
    model, _, _, _ = _vae_case(1)
    right = nn.Dense.backward

    def zeroed(self, params, dy, cache, grads, ws=None, need_dx=True):
        dx = right(self, params, dy, cache, grads, ws, need_dx)
        for k in self.param_names:
            grads[k] = grads[k] * 0.0
        return dx

    monkeypatch.setattr(nn.Dense, "backward", zeroed)
    X = np.random.default_rng(1).random((3, 5))
    eps = np.random.default_rng(2).standard_normal((1, 3, 2))

    def g(p):
        return float(to_numpy(model.loss_and_grads(X, eps=eps, params=p)[0]))

    _, grads = model.loss_and_grads(X, eps=eps)
    assert all(float(np.max(np.abs(grads[k]))) == 0.0 for k in ("enc_W0", "dec_W_out"))
    with pytest.raises(GradientCheckError, match="enc_W0"):
        check_grads_resolvable(g, model.params, grads, g(model.params))


def test_a_zeroed_layer_gradient_is_reported():
    rng = np.random.default_rng(3)
    layer = nn.Dense(4, 3, "elu", prefix="l_")
    params = layer.init(rng, dtype="float64")
    x = rng.standard_normal((5, 4))
    w = rng.standard_normal((5, 3))
    y, cache = layer.forward(params, x)
    grads = {}
    layer.backward(params, w, cache, grads)

    def f(p):
        return float(np.sum(w * layer.forward(p, x)[0]))

    check_grads_resolvable(f, params, grads, f(params))
    grads["l_b"] = np.zeros_like(grads["l_b"])
    with pytest.raises(GradientCheckError, match="l_b"):
        check_grads_resolvable(f, params, grads, f(params))
