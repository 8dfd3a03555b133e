"""lvm_core.ops: every fused primitive against its array-API reference, float64
central differences, PyTorch autograd, and the backend matrix.

* fused == reference: one hypothesis test per primitive, NumPy float32 and
  float64 (the numba kernels against :mod:`lvm_core.ops.reference`);
* finite differences (float64, relative error < 1e-6 scaled by the larger
  gradient) through the public functions, i.e. the code path training uses;
* torch autograd as an oracle (a test-time dependency only);
* the backend matrix: NumPy and array-api-strict's device1, float32 and float64.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core import ops
from lvm_core.backend import to_numpy
from lvm_core.gradcheck import check_gradient
from lvm_core.ops import reference as ref

from .conftest import require

RTOL = 1e-6
H = 1e-6
seeds = st.integers(min_value=0, max_value=2**32 - 1)
dims = st.integers(min_value=1, max_value=9)
dtypes = st.sampled_from([np.float32, np.float64])
activations = st.sampled_from(list(ops.ACTIVATIONS))


def _close(a, b, dtype, scale=1.0):
    a = np.asarray(to_numpy(a), dtype=np.float64)
    b = np.asarray(to_numpy(b), dtype=np.float64)
    if dtype == np.float32:
        np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-6 * scale)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13 * scale)


def _away_from_zero(a, margin=1e-3):
    """Keep pre-activations off the kinks of relu / leaky_relu / elu."""
    return np.where(np.abs(a) < margin, margin, a)


# --------------------------------------------------------------------------
# fused == reference (one hypothesis test per primitive)
# --------------------------------------------------------------------------
@settings(max_examples=25)
@given(N=dims, Hd=dims, act=activations, dtype=dtypes, seed=seeds)
def test_bias_act_fused_equals_reference(N, Hd, act, dtype, seed):
    rng = np.random.default_rng(seed)
    a = (3 * rng.standard_normal((N, Hd))).astype(dtype)
    b = rng.standard_normal(Hd).astype(dtype)
    y = ops.bias_act(a, b, act)
    assert y.dtype == dtype
    _close(y, ref.bias_act(a, b, act), dtype, scale=10)
    # in place into the matmul buffer, and into a workspace
    a2 = a.copy()
    y2 = ops.bias_act(a2, b, act, out=a2, ws=ops.Workspace())
    assert y2 is a2
    _close(y2, y, dtype, scale=10)


@settings(max_examples=25)
@given(N=dims, Hd=dims, act=activations, dtype=dtypes, seed=seeds)
def test_bias_act_backward_fused_equals_reference(N, Hd, act, dtype, seed):
    rng = np.random.default_rng(seed)
    y = ops.bias_act((3 * rng.standard_normal((N, Hd))).astype(dtype),
                     np.zeros(Hd, dtype), act)
    dy = rng.standard_normal((N, Hd)).astype(dtype)
    dy_copy = dy.copy()
    da, db = ops.bias_act_backward(dy, y, act)
    da_r, db_r = ref.bias_act_backward(dy, y, act)
    assert da.dtype == db.dtype == dtype and db.shape == (Hd,)
    _close(da, da_r, dtype)
    _close(db, db_r, dtype, scale=N)
    np.testing.assert_array_equal(dy, dy_copy)  # the caller's dy is not modified


@settings(max_examples=25)
@given(M=dims, D=dims, dtype=dtypes, scale=st.sampled_from([1.0, -0.25]), seed=seeds,
       kind=st.sampled_from(["bernoulli", "continuous_bernoulli"]))
def test_bernoulli_likelihoods_fused_equal_reference(M, D, dtype, scale, seed, kind):
    rng = np.random.default_rng(seed)
    logits = (4 * rng.standard_normal((M, D))).astype(dtype)
    logits.flat[:3] = np.array([0.3, -0.49, 0.51])[:logits.size]  # both sides of the series cutoff
    x = rng.random((M, D)).astype(dtype)
    fused = getattr(ops, kind + "_loglik")
    ll, dl = fused(logits, x, scale, ws=ops.Workspace())
    ll_r, dl_r = getattr(ref, kind + "_loglik")(logits, x, scale)
    assert ll.dtype == dl.dtype == dtype and ll.shape == (M,)
    _close(ll, ll_r, dtype, scale=10 * D)
    _close(dl, dl_r, dtype)


@settings(max_examples=25)
@given(M=dims, D=dims, dtype=dtypes, fixed=st.booleans(), scale=st.sampled_from([1.0, 0.5]),
       seed=seeds)
def test_gaussian_loglik_fused_equals_reference(M, D, dtype, fixed, scale, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((M, D)).astype(dtype)
    mu = rng.standard_normal((M, D)).astype(dtype)
    log_var = -0.3 if fixed else rng.standard_normal((M, D)).astype(dtype)
    ll, dmu, dlv = ops.gaussian_loglik(x, mu, log_var, scale)
    ll_r, dmu_r, dlv_r = ref.gaussian_loglik(x, mu, log_var, scale)
    assert ll.dtype == dtype
    _close(ll, ll_r, dtype, scale=10 * D)
    _close(dmu, dmu_r, dtype, scale=10)
    assert (dlv is None) == fixed == (dlv_r is None)
    if not fixed:
        _close(dlv, dlv_r, dtype, scale=10)


@settings(max_examples=25)
@given(M=dims, K=st.integers(2, 9), dtype=dtypes, seed=seeds)
def test_categorical_loglik_fused_equals_reference(M, K, dtype, seed):
    rng = np.random.default_rng(seed)
    logits = (3 * rng.standard_normal((M, K))).astype(dtype)
    labels = rng.integers(0, K, M)
    ll, dl = ops.categorical_loglik(logits, labels, -0.5)
    ll_r, dl_r = ref.categorical_loglik(logits, labels, -0.5)
    _close(ll, ll_r, dtype, scale=10)
    _close(dl, dl_r, dtype)


@settings(max_examples=25)
@given(R=st.integers(1, 3), N=dims, L=dims, dtype=dtypes, prior_var=st.sampled_from([1.0, 0.3]),
       seed=seeds)
def test_latent_ops_fused_equal_reference(R, N, L, dtype, prior_var, seed):
    rng = np.random.default_rng(seed)
    heads = rng.standard_normal((N, 2 * L)).astype(dtype)
    mu, log_var = heads[:, :L], heads[:, L:]  # strided views, as a GaussianHead gives
    eps = rng.standard_normal((R, N, L)).astype(dtype)
    z, std = ops.reparameterize(mu, log_var, eps, ws=ops.Workspace())
    z_r, std_r = ref.reparameterize(mu, log_var, eps)
    _close(z, z_r, dtype, scale=10)
    dz = rng.standard_normal((R, N, L)).astype(dtype)
    dmu, dlv = ops.reparameterize_backward(dz, eps, std)
    dmu_r, dlv_r = ref.reparameterize_backward(dz, eps, std_r)
    _close(dmu, dmu_r, dtype, scale=10)
    _close(dlv, dlv_r, dtype, scale=10)
    kl, dmu2, dlv2 = ops.kl_std_normal(mu, log_var, std, prior_var, 0.5, dmu.copy(), dlv.copy())
    kl_r, dmu2_r, dlv2_r = ref.kl_std_normal(mu, log_var, std_r, prior_var, 0.5, dmu_r, dlv_r)
    _close(kl, kl_r, dtype, scale=10 * L)
    _close(dmu2, dmu2_r, dtype, scale=10)
    _close(dlv2, dlv2_r, dtype, scale=10)


@settings(max_examples=20)
@given(shape=st.sampled_from([(3,), (2, 4), (1,)]), dtype=dtypes, wd=st.sampled_from([0.0, 0.1]),
       momentum=st.sampled_from([0.0, 0.9]), nesterov=st.booleans(), seed=seeds)
def test_optimizers_fused_equal_reference(shape, dtype, wd, momentum, nesterov, seed):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal(shape).astype(dtype)
    params, params_r = {"a": theta.copy()}, {"a": theta.copy()}
    state = None
    m = v = np.zeros_like(theta)
    for t in range(1, 4):
        g = rng.standard_normal(shape).astype(dtype)
        state = ops.adam_(params, {"a": g}, state, lr=0.01, weight_decay=wd)
        params_r["a"], m, v = ref.adam_step(params_r["a"], g, m, v, 0.01, 0.9, 0.999, 1e-8, wd, t)
        assert state["step"] == t
        _close(params["a"], params_r["a"], dtype)
    nesterov = nesterov and momentum > 0
    params, params_r, state, buf = {"a": theta.copy()}, {"a": theta.copy()}, None, None
    for _ in range(3):
        g = rng.standard_normal(shape).astype(dtype)
        state = ops.sgd_(params, {"a": g}, state, lr=0.1, momentum=momentum, nesterov=nesterov,
                         weight_decay=wd)
        params_r["a"], buf = ref.sgd_step(params_r["a"], g, buf, 0.1, momentum, nesterov, wd)
        _close(params["a"], params_r["a"], dtype)


def test_in_place_optimizers_equal_the_nn_functions_bit_for_bit():
    from lvm_core.nn import adam, sgd

    rng = np.random.default_rng(0)
    for dtype in (np.float32, np.float64):
        params = {"W": rng.standard_normal((3, 4)).astype(dtype), "b": np.zeros(4, dtype)}
        a, b = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in params.items()}
        sa = sb = None
        for _ in range(3):
            grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
            sa = ops.adam_(a, grads, sa, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.01)
            b, sb = adam(b, grads, sb, lr=1e-2, betas=(0.8, 0.99), weight_decay=0.01)
        for k in params:
            np.testing.assert_array_equal(a[k], b[k])
        a, b = {k: v.copy() for k, v in params.items()}, {k: v.copy() for k, v in params.items()}
        sa = sb = None
        for _ in range(3):
            grads = {k: rng.standard_normal(v.shape).astype(dtype) for k, v in params.items()}
            sa = ops.sgd_(a, grads, sa, lr=0.1, momentum=0.9)
            b, sb = sgd(b, grads, sb, lr=0.1, momentum=0.9)
        for k in params:
            np.testing.assert_array_equal(a[k], b[k])


@settings(max_examples=10)
@given(n_params=st.integers(1, 19), seed=seeds)
def test_adam_in_groups_equals_the_nn_function_for_every_parameter(n_params, seed):
    """ops.adam_ updates GROUP arrays per numba call: with more parameters than one
    group, float32 and float64 ones mixed, an empty one and a non-contiguous one
    (the generic path), every parameter ends bit for bit where nn.adam puts it."""
    from lvm_core.nn import adam
    from lvm_core.ops._optim_numba import GROUP

    rng = np.random.default_rng(seed)
    params = {}
    for i in range(n_params):
        dtype = np.float32 if i % 3 else np.float64
        params[f"p{i}"] = rng.standard_normal((int(rng.integers(0, 4)), 3)).astype(dtype)
    params["strided"] = rng.standard_normal((4, 3))
    a = {k: v.copy() for k, v in params.items()}
    a["strided"] = np.empty((4, 6))[:, ::2]  # not C-contiguous: the generic path
    a["strided"][...] = params["strided"]
    b = {k: v.copy() for k, v in params.items()}
    sa = sb = None
    for step in range(3):
        grads = {k: rng.standard_normal(v.shape).astype(v.dtype) for k, v in params.items()}
        sa = ops.adam_(a, grads, sa, lr=1e-2, weight_decay=0.01, check=step == 0)
        b, sb = adam(b, grads, sb, lr=1e-2, weight_decay=0.01)
    assert not a["strided"].flags.c_contiguous
    assert GROUP < 19  # the drawn sizes include models that need several groups
    for k in params:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        assert a[k].dtype == params[k].dtype


@settings(max_examples=10)
@given(n_params=st.integers(1, 12), seed=seeds)
def test_adam_cache_follows_replaced_arrays(n_params, seed):
    """With a ``cache`` kept between calls, adam_ reuses its groups only while params,
    grads and state hold the same arrays: replacing a parameter, a gradient buffer or
    the whole state (a restored snapshot) between steps is honoured, and every step
    ends bit for bit where the uncached call puts it."""
    rng = np.random.default_rng(seed)
    params = {f"p{i}": rng.standard_normal((int(rng.integers(1, 4)), 3)).astype(
        np.float32 if i % 2 else np.float64) for i in range(n_params)}
    a = {k: v.copy() for k, v in params.items()}
    b = {k: v.copy() for k, v in params.items()}
    grads = {k: np.empty_like(v) for k, v in params.items()}  # one dict of buffers, as a loop
    cache, sa, sb = {}, None, None
    first = next(iter(params))
    for step in range(6):
        for k, g in grads.items():
            g[...] = rng.standard_normal(g.shape)
        if step == 2:  # a parameter array replaced (same shape): the cache must not write the old
            a[first] = a[first].copy()
        if step == 3:  # a new gradient buffer
            grads[first] = grads[first].copy()
        if step == 4:  # the state restored from a copy
            sa = {"step": sa["step"], "m": {k: v.copy() for k, v in sa["m"].items()},
                  "v": {k: v.copy() for k, v in sa["v"].items()}}
        sa = ops.adam_(a, grads, sa, lr=1e-2, weight_decay=0.01, check=step == 0, cache=cache)
        sb = ops.adam_(b, grads, sb, lr=1e-2, weight_decay=0.01)
        assert cache["arrays"][0] is a[first]  # the groups were built from the current arrays
        for k in params:
            np.testing.assert_array_equal(a[k], b[k], err_msg=f"{k} at step {step}")
            np.testing.assert_array_equal(sa["m"][k], sb["m"][k])
            np.testing.assert_array_equal(sa["v"][k], sb["v"][k])


def test_adam_check_false_still_checks_the_first_step():
    params = {"a": np.ones(3, np.float32)}
    with pytest.raises(ValueError, match="shape"):
        ops.adam_(params, {"a": np.ones(2, np.float32)}, None, lr=0.1, check=False)


def test_optimizer_keys_update_only_their_parameters():
    params = {"a": np.ones(2), "b": np.ones(2)}
    grads = {"a": np.ones(2), "b": np.ones(2)}
    state = ops.adam_(params, grads, None, lr=0.1, keys=["a"])
    assert params["b"].tolist() == [1.0, 1.0] and params["a"][0] < 1.0
    state = ops.adam_(params, grads, state, lr=0.1, keys=["b"], advance=False)
    assert state["step"] == 1 and params["b"][0] == params["a"][0]


# --------------------------------------------------------------------------
# finite differences (float64), through the public functions
# --------------------------------------------------------------------------
@settings(max_examples=25)
@given(N=dims, Hd=dims, act=activations, seed=seeds)
def test_bias_act_backward_is_the_gradient(N, Hd, act, seed):
    rng = np.random.default_rng(seed)
    a = _away_from_zero(rng.standard_normal((N, Hd)) * 2)
    b = np.zeros(Hd)
    w = rng.standard_normal((N, Hd))
    y = ops.bias_act(a, b, act)
    da, db = ops.bias_act_backward(w, y, act)
    assert check_gradient(lambda t: np.sum(w * ops.bias_act(t, b, act)), a, da, h=H) < RTOL
    assert check_gradient(lambda t: np.sum(w * ops.bias_act(a, t, act)), b, db, h=H) < RTOL


def test_bernoulli_loglik_float32_kernel_over_the_whole_range():
    """The float32 kernel's polynomial exp(-|l|) and log(1 + e) against float64 NumPy,
    from |l| = 0 through the cap of the exponent (|l| > 87) to 1e30, both signs."""
    a = np.concatenate([[0.0, 1e-30, 1e-7, 0.5, 0.6931, 1.0, 10.0, 16.6, 50.0, 87.0, 87.5,
                         88.7, 104.0, 200.0, 1e6, 1e30], np.linspace(0, 30, 301)])
    logits = np.concatenate([a, -a])[None, :].repeat(3, axis=0)
    x = np.random.default_rng(0).random(logits.shape)
    x[0], x[1] = 0.0, 1.0
    ll, dl = ops.bernoulli_loglik(logits.astype(np.float32), x.astype(np.float32), -0.5)
    ll_r, dl_r = ref.bernoulli_loglik(logits.astype(np.float32).astype(np.float64),
                                      x.astype(np.float32).astype(np.float64), -0.5)
    np.testing.assert_allclose(dl, dl_r, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ll, ll_r, rtol=1e-6)
    # elementwise: one column at a time, so every value is checked on its own
    for j in range(logits.shape[1]):
        l1 = logits[:, j:j + 1].astype(np.float32)
        ll1, _ = ops.bernoulli_loglik(l1, x[:, j:j + 1].astype(np.float32))
        ll1_r, _ = ref.bernoulli_loglik(l1.astype(np.float64), x[:, j:j + 1].astype(np.float32)
                                        .astype(np.float64))
        # x l - max(l, 0) rounds in float32 to a few units of |l| 6e-8
        assert np.all(np.abs(ll1 - ll1_r) <= 3e-7 * (1.0 + np.abs(l1[:, 0]))), (j, ll1, ll1_r)


def test_elu_float32_kernel_over_the_whole_range():
    """The one-pass float32 ELU (polynomial exp) against float64, in place and not:
    exp(v) - 1 within float32's absolute resolution near 0, relative 1e-6 elsewhere,
    -1 far below 0 (through the exponent cap), +inf kept, NaN propagated."""
    v = np.concatenate([[-1e30, -200.0, -88.0, -87.0, -20.0, -1e-3, -1e-8, 0.0, 1e-8, 5.0,
                         1e30, np.inf, -np.inf], np.linspace(-30, 30, 601)]).astype(np.float32)
    a = v[None, :].repeat(2, axis=0)
    b = np.zeros(a.shape[1], np.float32)
    want = ref.bias_act(a.astype(np.float64), b.astype(np.float64), "elu")
    for inplace in (False, True):
        x = a.copy()
        y = ops.bias_act(x, b, "elu", out=x if inplace else None)
        assert (y is x) == inplace and y.dtype == np.float32
        np.testing.assert_allclose(y, want, rtol=1e-6, atol=1.2e-7)
    nan = ops.bias_act(np.array([[np.nan, -1.0]], np.float32), np.zeros(2, np.float32), "elu")
    assert np.isnan(nan[0, 0]) and nan[0, 1] == pytest.approx(np.expm1(-1.0), rel=1e-6)


def test_continuous_bernoulli_float32_kernel_over_the_whole_range():
    """The float32 kernel (polynomial exp, log1p and log, the series below |l| = 0.5,
    both branches computed and one selected) against float64 NumPy, entry by entry:
    |l| from 0 through both sides of the cutoff and the exponent cap to 1e30."""
    from lvm_core.ops._kernels import log_f32

    a = np.concatenate([[0.0, 1e-30, 1e-7, 0.01, 0.4999, 0.5, 0.5001, 0.6931, 1.0, 10.0,
                         16.6, 50.0, 87.5, 88.7, 104.0, 1e6, 1e30], np.linspace(0, 30, 301)])
    logits = np.concatenate([a, -a])[None, :].repeat(3, axis=0).astype(np.float32)
    x = np.random.default_rng(0).random(logits.shape).astype(np.float32)
    x[0], x[1] = 0.0, 1.0
    ll, dl = ops.continuous_bernoulli_loglik(logits, x, -0.5)
    with np.errstate(over="ignore", invalid="ignore"):  # the reference's unused series at 1e30
        ll_r, dl_r = ref.continuous_bernoulli_loglik(logits.astype(np.float64),
                                                     x.astype(np.float64), -0.5)
    np.testing.assert_allclose(dl, dl_r, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(ll, ll_r, rtol=2e-6)
    for j in range(logits.shape[1]):  # one column at a time: every value on its own
        l1, x1 = np.ascontiguousarray(logits[:, j:j + 1]), np.ascontiguousarray(x[:, j:j + 1])
        ll1, _ = ops.continuous_bernoulli_loglik(l1, x1)
        with np.errstate(over="ignore", invalid="ignore"):
            ll1_r, _ = ref.continuous_bernoulli_loglik(l1.astype(np.float64),
                                                       x1.astype(np.float64))
        assert np.all(np.abs(ll1 - ll1_r) <= 5e-7 * (1.0 + np.abs(l1[:, 0]))), (j, ll1, ll1_r)
    q = np.float32(np.geomspace(1.2e-38, 3e38, 20001))
    got = np.array([log_f32(v) for v in q[::50]])
    np.testing.assert_allclose(got, np.log(q[::50].astype(np.float64)), rtol=2e-7, atol=2e-7)


@settings(max_examples=25)
@given(N=dims, D=dims, R=st.integers(1, 3), repeat=st.integers(1, 3), dtype=dtypes, seed=seeds,
       per_row=st.booleans(), kind=st.sampled_from(["bernoulli", "continuous_bernoulli"]))
def test_bernoulli_likelihoods_row_map_equal_repeated_rows(N, D, R, repeat, dtype, seed, per_row,
                                                           kind):
    """x (N, D) paired with logits row m as x_((m // repeat) % N), and per-row scales:
    the same values as the reference on the materialised copy of x and scale."""
    rng = np.random.default_rng(seed)
    M = R * N * repeat
    logits = (4 * rng.standard_normal((M, D))).astype(dtype)
    x = rng.random((N, D)).astype(dtype)
    x_copy = x.copy()
    scale = (rng.standard_normal(M).astype(dtype) if per_row else -0.5)
    rows = (np.arange(M) // repeat) % N
    fused = getattr(ops, kind + "_loglik")
    ll, dl = fused(logits, x, scale, ws=ops.Workspace(), repeat=repeat)
    ll_r, dl_r = getattr(ref, kind + "_loglik")(
        logits, x[rows], scale[:, None] if per_row else scale)
    assert ll.dtype == dl.dtype == dtype and ll.shape == (M,) and dl.shape == (M, D)
    _close(ll, ll_r, dtype, scale=10 * D)
    _close(dl, dl_r, dtype, scale=10)
    np.testing.assert_array_equal(x, x_copy)


@settings(max_examples=25)
@given(N=dims, D=dims, repeat=st.integers(1, 3), seed=seeds,
       kind=st.sampled_from(["bernoulli", "continuous_bernoulli"]))
def test_likelihood_row_map_gradient_is_the_gradient(N, D, repeat, seed, kind):
    """dl = d/dl sum_m scale_m ll_m with per-row scales and repeated rows of x."""
    rng = np.random.default_rng(seed)
    M = 2 * N * repeat
    logits = 3 * rng.standard_normal((M, D))
    x = rng.random((N, D))
    c = rng.standard_normal(M)
    fn = getattr(ops, kind + "_loglik")
    _, dl = fn(logits, x, c, repeat=repeat)
    assert np.max(np.abs(dl)) > 0
    assert check_gradient(lambda t: np.sum(c * fn(t, x, repeat=repeat)[0]), logits, dl,
                          h=H) < RTOL


def test_likelihood_row_map_on_every_backend(backend):
    rng = np.random.default_rng(3)
    dt = np.float32 if backend.dtype_name == "float32" else np.float64
    logits, x = (3 * rng.standard_normal((12, 5))).astype(dt), rng.random((2, 5)).astype(dt)
    c = rng.standard_normal(12).astype(dt)
    rows = (np.arange(12) // 3) % 2
    tol = dict(rtol=2e-5, atol=1e-5) if dt == np.float32 else dict(rtol=1e-10, atol=1e-12)
    for kind in ("bernoulli", "continuous_bernoulli"):
        ll, dl = getattr(ops, kind + "_loglik")(backend.asarray(logits), backend.asarray(x),
                                                 backend.asarray(c), repeat=3)
        ll_r, dl_r = getattr(ref, kind + "_loglik")(logits, x[rows], c[:, None])
        assert ll.dtype == backend.dtype
        np.testing.assert_allclose(backend.to_numpy(ll), ll_r, **tol)
        np.testing.assert_allclose(backend.to_numpy(dl), dl_r, **tol)


def test_likelihood_row_map_bad_input():
    logits, x = np.zeros((6, 4)), np.zeros((4, 4))
    with pytest.raises(ValueError, match="x must have shape"):
        ops.bernoulli_loglik(logits, x)  # 6 rows are not a multiple of 4
    with pytest.raises(ValueError, match="x must have shape"):
        ops.bernoulli_loglik(logits, np.zeros((2, 3)), repeat=3)  # wrong D
    with pytest.raises(ValueError, match="scale must be"):
        ops.continuous_bernoulli_loglik(logits, np.zeros((2, 4)), np.ones(5), repeat=3)


@settings(max_examples=25)
@given(M=dims, D=dims, seed=seeds, kind=st.sampled_from(["bernoulli", "continuous_bernoulli"]))
def test_likelihood_gradients_are_the_gradient(M, D, seed, kind):
    rng = np.random.default_rng(seed)
    logits = 3 * rng.standard_normal((M, D))
    x = rng.random((M, D))
    fn = getattr(ops, kind + "_loglik")
    _, dl = fn(logits, x, -0.5)
    assert check_gradient(lambda t: -0.5 * np.sum(fn(t, x)[0]), logits, dl, h=H) < RTOL


@settings(max_examples=25)
@given(M=dims, D=dims, seed=seeds)
def test_gaussian_and_categorical_gradients_are_the_gradient(M, D, seed):
    rng = np.random.default_rng(seed)
    x, mu, lv = (rng.standard_normal((M, D)) for _ in range(3))
    _, dmu, dlv = ops.gaussian_loglik(x, mu, lv, 2.0)
    assert check_gradient(lambda t: 2.0 * np.sum(ops.gaussian_loglik(x, t, lv)[0]), mu, dmu,
                          h=H) < RTOL
    assert check_gradient(lambda t: 2.0 * np.sum(ops.gaussian_loglik(x, mu, t)[0]), lv, dlv,
                          h=H) < RTOL
    labels = rng.integers(0, D, M)
    _, dl = ops.categorical_loglik(mu, labels, 1.0)
    if D > 1:
        assert check_gradient(lambda t: np.sum(ops.categorical_loglik(t, labels)[0]), mu, dl,
                              h=H) < RTOL


@settings(max_examples=25)
@given(R=st.integers(1, 3), N=dims, L=dims, prior_var=st.sampled_from([1.0, 0.3]), seed=seeds)
def test_latent_gradients_are_the_gradient(R, N, L, prior_var, seed):
    rng = np.random.default_rng(seed)
    mu, lv = rng.standard_normal((N, L)), rng.standard_normal((N, L))
    eps, w = rng.standard_normal((R, N, L)), rng.standard_normal((R, N, L))

    def loss(m, v):
        z, std = ops.reparameterize(m, v, eps)
        kl, _, _ = ops.kl_std_normal(m, v, std, prior_var)
        return np.sum(w * z) + 0.5 * np.sum(kl)

    z, std = ops.reparameterize(mu, lv, eps)
    dmu, dlv = ops.reparameterize_backward(w, eps, std)
    _, dmu, dlv = ops.kl_std_normal(mu, lv, std, prior_var, 0.5, dmu, dlv)
    assert check_gradient(lambda t: loss(t, lv), mu, dmu, h=H) < RTOL
    assert check_gradient(lambda t: loss(mu, t), lv, dlv, h=H) < RTOL


def test_meaning_of_the_values():
    """Hand-computed values: the likelihoods, the KL and the reparameterised moments."""
    l, x = np.array([[0.7, -2.0]]), np.array([[1.0, 0.25]])
    ll, _ = ops.bernoulli_loglik(l, x)
    sig = 1 / (1 + np.exp(-l))
    assert ll[0] == pytest.approx(np.sum(x * np.log(sig) + (1 - x) * np.log(1 - sig)), rel=1e-12)
    ll, _ = ops.continuous_bernoulli_loglik(l, x)
    lam = sig
    C = 2 * np.arctanh(1 - 2 * lam) / (1 - 2 * lam)
    assert ll[0] == pytest.approx(np.sum(np.log(C) + x * np.log(lam) + (1 - x) * np.log1p(-lam)),
                                  rel=1e-12)
    ll, _, _ = ops.gaussian_loglik(np.array([[1.0]]), np.array([[0.5]]), math.log(4.0))
    assert ll[0] == pytest.approx(-0.5 * math.log(2 * math.pi * 4.0) - 0.25 ** 2 / 2 / 1.0,
                                  rel=1e-12)
    mu, lv = np.array([[0.5, -1.0]]), np.array([[0.2, -0.4]])
    z, std = ops.reparameterize(mu, lv, np.random.default_rng(0).standard_normal((40000, 1, 2)))
    np.testing.assert_allclose(z.var(axis=0), np.exp(lv), rtol=0.03)
    kl, _, _ = ops.kl_std_normal(mu, lv, std, 2.0)
    var = np.exp(lv)
    assert kl[0] == pytest.approx(0.5 * np.sum(var / 2 + mu ** 2 / 2 - 1 - lv + math.log(2)),
                                  rel=1e-12)


# --------------------------------------------------------------------------
# torch autograd oracle
# --------------------------------------------------------------------------
TORCH_ACT = {"identity": lambda t, a: a, "relu": lambda t, a: t.relu(a),
             "leaky_relu": lambda t, a: t.nn.functional.leaky_relu(a, 0.01),
             "tanh": lambda t, a: t.tanh(a), "sigmoid": lambda t, a: t.sigmoid(a),
             "softplus": lambda t, a: t.nn.functional.softplus(a),
             "elu": lambda t, a: t.nn.functional.elu(a)}


@pytest.mark.oracle
@pytest.mark.parametrize("act", list(ops.ACTIVATIONS))
def test_bias_act_matches_torch_autograd(act):
    torch = require("torch")
    rng = np.random.default_rng(1)
    a, b, w = rng.standard_normal((4, 5)), rng.standard_normal(5), rng.standard_normal((4, 5))
    at = torch.tensor(a, requires_grad=True)
    bt = torch.tensor(b, requires_grad=True)
    yt = TORCH_ACT[act](torch, at + bt)
    (torch.tensor(w) * yt).sum().backward()
    y = ops.bias_act(a, b, act)
    da, db = ops.bias_act_backward(w, y, act)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(da, at.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(db, bt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.oracle
def test_likelihoods_and_latent_match_torch_autograd():
    torch = require("torch")
    rng = np.random.default_rng(2)
    M, D = 4, 6
    l, x = 3 * rng.standard_normal((M, D)), rng.random((M, D))
    l[0, :2] = [0.2, -0.4]
    lt = torch.tensor(l, requires_grad=True)
    ll_t = -torch.nn.functional.binary_cross_entropy_with_logits(lt, torch.tensor(x),
                                                                  reduction="none").sum(1)
    ll_t.sum().backward()
    ll, dl = ops.bernoulli_loglik(l, x)
    np.testing.assert_allclose(ll, ll_t.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dl, lt.grad.numpy(), rtol=1e-10, atol=1e-12)
    lt = torch.tensor(l, requires_grad=True)
    cb = torch.distributions.ContinuousBernoulli(logits=lt, lims=(0.499, 0.501))  # exact formula
    ll_t = cb.log_prob(torch.tensor(x)).sum(1)
    ll_t.sum().backward()
    ll, dl = ops.continuous_bernoulli_loglik(l, x)
    np.testing.assert_allclose(ll, ll_t.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(dl, lt.grad.numpy(), rtol=1e-5, atol=1e-6)
    mu, lv = rng.standard_normal((M, D)), rng.standard_normal((M, D))
    mt, vt = torch.tensor(mu, requires_grad=True), torch.tensor(lv, requires_grad=True)
    ll_t = torch.distributions.Normal(mt, torch.exp(0.5 * vt)).log_prob(torch.tensor(x)).sum(1)
    ll_t.sum().backward()
    ll, dmu, dlv = ops.gaussian_loglik(x, mu, lv)
    np.testing.assert_allclose(ll, ll_t.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dmu, mt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dlv, vt.grad.numpy(), rtol=1e-10, atol=1e-12)
    labels = rng.integers(0, D, M)
    lt = torch.tensor(l, requires_grad=True)
    ll_t = -torch.nn.functional.cross_entropy(lt, torch.tensor(labels), reduction="none")
    ll_t.sum().backward()
    ll, dl = ops.categorical_loglik(l, labels)
    np.testing.assert_allclose(ll, ll_t.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(dl, lt.grad.numpy(), rtol=1e-10, atol=1e-12)
    # reparameterised latent + KL to N(0, s^2 I)
    R, L, s2 = 2, 3, 0.5
    mu, lv = rng.standard_normal((M, L)), rng.standard_normal((M, L))
    eps, w = rng.standard_normal((R, M, L)), rng.standard_normal((R, M, L))
    mt, vt = torch.tensor(mu, requires_grad=True), torch.tensor(lv, requires_grad=True)
    zt = mt + torch.exp(0.5 * vt) * torch.tensor(eps)
    klt = torch.distributions.kl_divergence(
        torch.distributions.Normal(mt, torch.exp(0.5 * vt)),
        torch.distributions.Normal(torch.zeros_like(mt), math.sqrt(s2) * torch.ones_like(mt)),
    ).sum(1)
    ((torch.tensor(w) * zt).sum() + 0.25 * klt.sum()).backward()
    z, std = ops.reparameterize(mu, lv, eps)
    dmu, dlv = ops.reparameterize_backward(w, eps, std)
    kl, dmu, dlv = ops.kl_std_normal(mu, lv, std, s2, 0.25, dmu, dlv)
    np.testing.assert_allclose(z, zt.detach().numpy(), rtol=1e-12)
    np.testing.assert_allclose(kl, klt.detach().numpy(), rtol=1e-10)
    np.testing.assert_allclose(dmu, mt.grad.numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dlv, vt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.oracle
def test_adam_matches_torch():
    torch = require("torch")
    rng = np.random.default_rng(3)
    theta = rng.standard_normal((3, 2))
    params = {"a": theta.copy()}
    pt = torch.tensor(theta.copy(), requires_grad=True)
    opt = torch.optim.AdamW([pt], lr=0.01, weight_decay=0.1)
    state = None
    for _ in range(4):
        g = rng.standard_normal((3, 2))
        state = ops.adam_(params, {"a": g}, state, lr=0.01, weight_decay=0.1)
        pt.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(params["a"], pt.detach().numpy(), rtol=1e-12, atol=1e-14)


# --------------------------------------------------------------------------
# the backend matrix: NumPy and array-api-strict device1, float32 and float64
# --------------------------------------------------------------------------
def test_every_primitive_on_every_backend(backend):
    rng = np.random.default_rng(4)
    dt = np.float32 if backend.dtype_name == "float32" else np.float64
    tol = dict(rtol=1e-4, atol=1e-5) if dt == np.float32 else dict(rtol=1e-12, atol=1e-12)
    host = {"a": 2 * rng.standard_normal((5, 4)), "b": rng.standard_normal(4),
            "dy": rng.standard_normal((5, 4)), "x": rng.random((5, 4)),
            "mu": rng.standard_normal((5, 3)), "lv": rng.standard_normal((5, 3)),
            "eps": rng.standard_normal((2, 5, 3)), "dz": rng.standard_normal((2, 5, 3))}
    dev = {k: backend.asarray(v) for k, v in host.items()}
    h64 = {k: v.astype(np.float64) for k, v in host.items()}

    def check(got, want):
        assert got.dtype == backend.dtype
        np.testing.assert_allclose(backend.to_numpy(got), want, **tol)

    for act in ops.ACTIVATIONS:
        y = ops.bias_act(dev["a"], dev["b"], act, ws=ops.Workspace())
        check(y, ref.bias_act(h64["a"], h64["b"], act))
        da, db = ops.bias_act_backward(dev["dy"], y, act)
        da_r, db_r = ref.bias_act_backward(h64["dy"], ref.bias_act(h64["a"], h64["b"], act), act)
        check(da, da_r)
        check(db, db_r)
    check(ops.matmul(dev["a"], dev["a"].T), h64["a"] @ h64["a"].T)
    for kind in ("bernoulli", "continuous_bernoulli"):
        ll, dl = getattr(ops, kind + "_loglik")(dev["a"], dev["x"], -0.5)
        ll_r, dl_r = getattr(ref, kind + "_loglik")(h64["a"], h64["x"], -0.5)
        check(ll, ll_r)
        check(dl, dl_r)
    ll, dmu, dlv = ops.gaussian_loglik(dev["x"], dev["a"], dev["dy"])
    for got, want in zip((ll, dmu, dlv), ref.gaussian_loglik(h64["x"], h64["a"], h64["dy"])):
        check(got, want)
    z, std = ops.reparameterize(dev["mu"], dev["lv"], dev["eps"])
    z_r, std_r = ref.reparameterize(h64["mu"], h64["lv"], h64["eps"])
    check(z, z_r)
    dmu, dlv = ops.reparameterize_backward(dev["dz"], dev["eps"], std)
    for got, want in zip((dmu, dlv), ref.reparameterize_backward(h64["dz"], h64["eps"], std_r)):
        check(got, want)
    kl, _, _ = ops.kl_std_normal(dev["mu"], dev["lv"], std, 0.5)
    check(kl, ref.kl_std_normal(h64["mu"], h64["lv"], std_r, 0.5)[0])
    params = {"w": backend.asarray(host["b"].copy())}
    w_id = id(params["w"])
    state = ops.adam_(params, {"w": backend.asarray(host["b"].copy())}, None, lr=0.1)
    assert id(params["w"]) == w_id and params["w"].dtype == backend.dtype  # in place
    check(params["w"], h64["b"] - 0.1 * h64["b"] / (np.abs(h64["b"]) + 1e-8))
    ops.sgd_(params, {"w": backend.asarray(host["b"].copy())}, None, lr=0.5, momentum=0.9)
    assert state["step"] == 1


# --------------------------------------------------------------------------
# the workspace
# --------------------------------------------------------------------------
def test_workspace_reuses_buffers_by_name_shape_and_dtype():
    ws = ops.Workspace()
    like32, like64 = np.zeros(1, np.float32), np.zeros(1)
    a = ws.empty("h", (3, 4), like32)
    assert ws.empty("h", (3, 4), like32) is a and ws.n_allocations == 1
    assert ws.empty("h", (2, 4), like32) is not a
    assert ws.empty("h", (3, 4), like64).dtype == np.float64
    assert ws.empty("g", (3, 4), like32) is not a
    assert ws.n_allocations == 4 and len(ws) == 4 and ws.nbytes == 4 * (12 + 8 + 12) + 8 * 12
    ws.clear()
    assert len(ws) == 0
    strict = require("array_api_strict")
    dev = strict.zeros(1, device=strict.Device("device1"))
    b = ws.empty("h", (2,), dev)
    assert b.device == dev.device and len(ws) == 0  # never cached off NumPy
