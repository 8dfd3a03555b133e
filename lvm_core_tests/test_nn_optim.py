"""Optimizers: trajectories against torch.optim (Adam, AdamW, SGD with
momentum / Nesterov / weight decay), float32 kept end to end, no mutation of
the caller's arrays unless inplace=True, gradient clipping, backend matrix.
"""
from __future__ import annotations

import math

import numpy as np
import pytest

from lvm_core.backend import device_of, to_numpy
from lvm_core.gradcheck import relative_error
from lvm_core.nn import adam, clip_grad_norm, sgd

from .conftest import require

SHAPES = {"W0": (3, 4), "b0": (4,), "s": ()}


def _params(seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return {k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}


def _grad_sequence(n_steps, seed=1, dtype=np.float64):
    rng = np.random.default_rng(seed)
    return [{k: rng.standard_normal(s).astype(dtype) for k, s in SHAPES.items()}
            for _ in range(n_steps)]


def _torch_trajectory(torch, make_opt, params, grad_seq):
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in params.items()}
    opt = make_opt(list(tp.values()))
    out = []
    for g in grad_seq:
        for k in tp:
            tp[k].grad = torch.tensor(g[k])
        opt.step()
        out.append({k: v.detach().numpy().copy() for k, v in tp.items()})
    return out


ADAM_CONFIGS = [
    dict(lr=1e-2),
    dict(lr=3e-3, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=1e-2, weight_decay=0.1),
]


@pytest.mark.oracle
@pytest.mark.parametrize("config", ADAM_CONFIGS, ids=["adam", "adam-betas", "adamw"])
@pytest.mark.parametrize("inplace", [False, True])
def test_adam_matches_torch(config, inplace):
    torch = require("torch")
    params = _params()
    grad_seq = _grad_sequence(8)
    torch_cls = torch.optim.AdamW if config.get("weight_decay") else torch.optim.Adam
    expected = _torch_trajectory(torch, lambda ps: torch_cls(ps, **config), params, grad_seq)
    ours, state = {k: v.copy() for k, v in params.items()}, None
    for step, (g, exp) in enumerate(zip(grad_seq, expected)):
        ours, state = adam(ours, g, state, inplace=inplace, **config)
        assert state["step"] == step + 1
        for k in exp:
            assert relative_error(ours[k], exp[k]) < 1e-12, (step, k)


SGD_CONFIGS = [
    dict(lr=0.1),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.8, weight_decay=0.01, dampening=0.1),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.05),
]


@pytest.mark.oracle
@pytest.mark.parametrize("config", SGD_CONFIGS,
                         ids=["plain", "momentum", "nesterov", "wd-dampening", "nesterov-wd"])
@pytest.mark.parametrize("inplace", [False, True])
def test_sgd_matches_torch(config, inplace):
    torch = require("torch")
    params = _params()
    grad_seq = _grad_sequence(8)
    expected = _torch_trajectory(torch, lambda ps: torch.optim.SGD(ps, **config), params, grad_seq)
    ours, state = {k: v.copy() for k, v in params.items()}, None
    for step, (g, exp) in enumerate(zip(grad_seq, expected)):
        ours, state = sgd(ours, g, state, inplace=inplace, **config)
        for k in exp:
            assert relative_error(ours[k], exp[k]) < 1e-12, (step, k)


def test_adam_first_step_moves_each_coordinate_by_lr():
    """Bias correction: at t = 1, m_hat / sqrt(v_hat) = sign(g), so |step| = lr."""
    params = {"w": np.zeros(5)}
    g = {"w": np.array([1e-3, -2.0, 50.0, -1e-5, 3.0])}
    new, _ = adam(params, g, None, lr=0.1, eps=1e-12)
    np.testing.assert_allclose(new["w"], -0.1 * np.sign(g["w"]), rtol=1e-6)


def test_sgd_minimises_a_quadratic():
    params = {"x": np.array([3.0, -4.0])}
    state = None
    for _ in range(200):
        params, state = sgd(params, {"x": 2 * params["x"]}, state, lr=0.05, momentum=0.9,
                            nesterov=True)
    np.testing.assert_allclose(params["x"], 0.0, atol=1e-6)


@pytest.mark.parametrize("opt", ["adam", "sgd"])
def test_no_mutation_without_inplace_and_mutation_with_it(opt):
    step = (lambda p, g, s, **kw: adam(p, g, s, lr=0.1, **kw)) if opt == "adam" else \
        (lambda p, g, s, **kw: sgd(p, g, s, lr=0.1, momentum=0.9, **kw))
    params = _params()
    before = {k: v.copy() for k, v in params.items()}
    grads = _grad_sequence(2)
    new, state = step(params, grads[0], None)
    state_copy = {k: ({kk: vv.copy() for kk, vv in v.items()} if isinstance(v, dict) else v)
                  for k, v in state.items()}
    new2, state2 = step(new, grads[1], state)
    for k in params:
        np.testing.assert_array_equal(params[k], before[k])  # caller's params untouched
        assert not np.array_equal(new[k], before[k])
    for k, v in state_copy.items():  # the state passed in is not modified either
        if isinstance(v, dict):
            for kk in v:
                np.testing.assert_array_equal(state[k][kk], v[kk])
        else:
            assert state[k] == v
    same, _ = step(params, grads[0], None, inplace=True)
    assert all(same[k] is params[k] for k in params)
    for k in params:
        np.testing.assert_array_equal(params[k], new[k])


def test_params_without_grads_are_left_alone_and_bad_keys_raise():
    params = _params()
    grads = {"W0": np.ones((3, 4))}
    new, state = adam(params, grads, None)
    assert new["b0"] is params["b0"] and not np.array_equal(new["W0"], params["W0"])
    with pytest.raises(ValueError, match="grads has keys that params lacks"):
        adam(params, {"nope": np.ones(2)}, None)
    with pytest.raises(ValueError, match="has shape"):
        sgd(params, {"W0": np.ones((4, 3))}, None, lr=0.1)
    with pytest.raises(TypeError, match="dtype"):
        sgd(params, {"W0": np.ones((3, 4), dtype=np.float32)}, None, lr=0.1)
    with pytest.raises(ValueError, match="nesterov"):
        sgd(params, grads, None, lr=0.1, nesterov=True)
    with pytest.raises(ValueError, match="betas"):
        adam(params, grads, None, betas=(1.0, 0.999))


def test_clip_grad_norm():
    grads = {"a": np.array([3.0, 0.0]), "b": np.array([[4.0]])}
    clipped, norm = clip_grad_norm(grads, max_norm=1.0)
    assert norm == pytest.approx(5.0, rel=1e-15) and isinstance(norm, float)
    total = math.sqrt(sum(float(np.sum(g**2)) for g in clipped.values()))
    assert total == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_allclose(clipped["a"], [0.6, 0.0], rtol=1e-6)
    np.testing.assert_array_equal(grads["a"], [3.0, 0.0])  # caller's arrays untouched
    same, norm = clip_grad_norm(grads, max_norm=10.0)
    assert norm == pytest.approx(5.0) and same["a"] is grads["a"]
    with pytest.raises(ValueError, match="max_norm"):
        clip_grad_norm(grads, max_norm=0.0)


@pytest.mark.oracle
def test_clip_grad_norm_matches_torch():
    torch = require("torch")
    grads = _grad_sequence(1, seed=4)[0]
    tp = [torch.zeros(s, dtype=torch.float64, requires_grad=True) for s in SHAPES.values()]
    for t, g in zip(tp, grads.values()):
        t.grad = torch.tensor(g)
    norm_t = torch.nn.utils.clip_grad_norm_(tp, max_norm=0.5)
    clipped, norm = clip_grad_norm(grads, max_norm=0.5)
    assert norm == pytest.approx(float(norm_t), rel=1e-14)
    for t, k in zip(tp, grads):
        assert relative_error(clipped[k], t.grad.numpy()) < 1e-12


@pytest.mark.parametrize("opt", ["adam", "adamw", "sgd-nesterov", "clip"])
def test_optimizers_on_backends_keep_dtype_and_device(backend, opt):
    """Every output, state array and temporary result stays in the param dtype
    (float32 stays float32) and on the param device, and equals NumPy float64."""
    host = _params(dtype=backend.dtype_name)
    host_grads = _grad_sequence(3, dtype=backend.dtype_name)
    params = {k: backend.asarray(v) for k, v in host.items()}
    ref = {k: v.astype(np.float64) for k, v in host.items()}
    state = ref_state = None
    expected_device = device_of(params["W0"])
    for g_host in host_grads:
        g = {k: backend.asarray(v) for k, v in g_host.items()}
        g_ref = {k: v.astype(np.float64) for k, v in g_host.items()}
        if opt == "clip":
            params, norm = clip_grad_norm(g, max_norm=0.3)
            ref, norm_ref = clip_grad_norm(g_ref, max_norm=0.3)
            assert norm == pytest.approx(norm_ref, rel=1e-5)
            arrays = list(params.values())
        else:
            if opt.startswith("adam"):
                kw = dict(lr=0.01, weight_decay=0.1 if opt == "adamw" else 0.0)
                params, state = adam(params, g, state, **kw)
                ref, ref_state = adam(ref, g_ref, ref_state, **kw)
                arrays = list(params.values()) + list(state["m"].values()) + list(state["v"].values())
            else:
                kw = dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)
                params, state = sgd(params, g, state, **kw)
                ref, ref_state = sgd(ref, g_ref, ref_state, **kw)
                arrays = list(params.values()) + list(state["momentum_buffer"].values())
        for a in arrays:
            assert a.dtype == backend.dtype and device_of(a) == expected_device
    tol = 1e-5 if backend.dtype_name == "float32" else 1e-12
    for k in ref:
        assert relative_error(to_numpy(params[k]), ref[k]) < tol, k


def test_inplace_on_strict_device():
    from .conftest import Backend

    B = Backend("strict-device1", "float32")
    params = {k: B.asarray(v) for k, v in _params(dtype=np.float32).items()}
    grads = {k: B.asarray(v) for k, v in _grad_sequence(1, dtype=np.float32)[0].items()}
    expected, _ = adam(dict(params), grads, None, lr=0.1)
    out, state = adam(params, grads, None, lr=0.1, inplace=True)
    for k in params:
        assert out[k] is params[k]
        assert relative_error(to_numpy(params[k]), to_numpy(expected[k])) == 0.0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
def test_fused_numpy_adam_equals_array_api_path(monkeypatch, dtype, inplace, weight_decay):
    """The numba fast path (C-contiguous NumPy arrays) gives the same numbers,
    bit for bit, as the generic array-API code, and keeps the dtype."""
    import lvm_core.nn.optim as optim

    grad_seq = _grad_sequence(4, dtype=dtype)
    results = []
    for fused in (True, False):
        monkeypatch.setattr(optim, "_FUSED", fused)
        params, state = {k: v.copy() for k, v in _params(dtype=dtype).items()}, None
        for g in grad_seq:
            params, state = adam(params, g, state, lr=0.01, weight_decay=weight_decay,
                                 inplace=inplace)
        results.append((params, state))
    (p_fused, s_fused), (p_generic, s_generic) = results
    for k in p_fused:
        for a, b in ((p_fused[k], p_generic[k]), (s_fused["m"][k], s_generic["m"][k]),
                     (s_fused["v"][k], s_generic["v"][k])):
            assert a.dtype == dtype and b.dtype == dtype
            np.testing.assert_array_equal(a, b)


def test_adam_non_contiguous_params_use_the_generic_path():
    """Views (here a transposed array) are updated correctly, in place too."""
    base = np.random.default_rng(0).standard_normal((4, 3))
    params = {"W": base.T}  # not C-contiguous
    grads = {"W": np.ones((3, 4))}
    expected, _ = adam({"W": base.T.copy()}, grads, None, lr=0.1)
    out, _ = adam(params, grads, None, lr=0.1, inplace=True)
    assert out["W"] is params["W"]
    np.testing.assert_array_equal(base.T, expected["W"])  # the view wrote through to base


SGD_FUSED_CONFIGS = [dict(lr=0.1), dict(lr=0.05, momentum=0.9, weight_decay=0.01),
                     dict(lr=0.05, momentum=0.9, nesterov=True),
                     dict(lr=0.05, momentum=0.8, dampening=0.2, weight_decay=0.05)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("inplace", [False, True])
@pytest.mark.parametrize("config", SGD_FUSED_CONFIGS,
                         ids=["plain", "momentum-wd", "nesterov", "dampening-wd"])
def test_fused_numpy_sgd_equals_array_api_path(monkeypatch, dtype, inplace, config):
    import lvm_core.nn.optim as optim

    grad_seq = _grad_sequence(4, dtype=dtype)
    results = []
    for fused in (True, False):
        monkeypatch.setattr(optim, "_FUSED", fused)
        params, state = {k: v.copy() for k, v in _params(dtype=dtype).items()}, None
        for g in grad_seq:
            params, state = sgd(params, g, state, inplace=inplace, **config)
        results.append((params, state))
    (p_fused, s_fused), (p_generic, s_generic) = results
    assert sorted(s_fused["momentum_buffer"]) == sorted(s_generic["momentum_buffer"])
    for k in p_fused:
        assert p_fused[k].dtype == dtype
        np.testing.assert_array_equal(p_fused[k], p_generic[k])
        if k in s_fused["momentum_buffer"]:
            np.testing.assert_array_equal(s_fused["momentum_buffer"][k],
                                          s_generic["momentum_buffer"][k])
