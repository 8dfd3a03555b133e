"""lvm_core.ops on CuPy: every CuPy-fused kernel (lvm_core.ops._cupy) equal to the
array-API reference (lvm_core.ops.reference) run on the same CuPy arrays, float32
and float64, hypothesis-drawn shapes and values.  These run only where CuPy sees a
GPU and are skipped with a reason otherwise (also under LVM_CORE_REQUIRE_OPTIONAL:
CI has no GPU).  The tests after them run everywhere: NumPy and array-api-strict
arrays never take the CuPy branch, importing lvm_core.ops does not import CuPy,
and (where a C++ compiler is found) every kernel's CUDA C source, compiled for
the CPU, equals the reference on NumPy arrays.
"""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core import ops
from lvm_core.ops import _cupy
from lvm_core.ops import reference as ref

seeds = st.integers(min_value=0, max_value=2**32 - 1)
dims = st.integers(min_value=1, max_value=9)
dtypes = st.sampled_from(["float32", "float64"])
activations = st.sampled_from(list(ops.ACTIVATIONS))


def _cupy_or_skip():
    """CuPy with a GPU, or skip with one line (never a failure: CI has no GPU)."""
    cupy = pytest.importorskip("cupy", reason="CuPy is not installed")
    try:
        ok = cupy.is_available()
    except Exception:  # a driver or runtime error reads as "no GPU"
        ok = False
    if not ok:
        pytest.skip("CuPy finds no GPU")
    return cupy


@pytest.fixture(scope="module")  # module scope: hypothesis refuses function-scoped fixtures
def cp():
    return _cupy_or_skip()


def _close(a, b, dtype, scale=1.0):
    import cupy

    a = np.asarray(cupy.asnumpy(a), dtype=np.float64)
    b = np.asarray(cupy.asnumpy(b), dtype=np.float64)
    if dtype == "float32":
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-6 * scale)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13 * scale)


def _fused(name, dtype):
    """The kernel ran: it is in the per-dtype cache."""
    assert (name, np.dtype(dtype).char) in _cupy._CACHE


def _arr(cp, rng, shape, dtype, spread=3.0):
    return cp.asarray((spread * rng.standard_normal(shape)).astype(dtype))


@settings(max_examples=25)
@given(N=dims, H=dims, act=activations, dtype=dtypes, seed=seeds)
def test_cupy_bias_act_equals_reference(cp, N, H, act, dtype, seed):
    rng = np.random.default_rng(seed)
    a, b = _arr(cp, rng, (N, H), dtype), _arr(cp, rng, (H,), dtype, 1.0)
    a_copy = a.copy()
    y = ops.bias_act(a, b, act)
    _fused("fwd_" + act, dtype)
    assert isinstance(y, cp.ndarray) and y.dtype == a.dtype and y.shape == (N, H)
    _close(y, ref.bias_act(a, b, act), dtype, scale=10)
    assert bool(cp.all(a == a_copy))
    y2 = ops.bias_act(a, b, act, out=a)  # in place into the matmul buffer
    assert y2 is a
    _close(y2, y, dtype, scale=10)


@settings(max_examples=25)
@given(N=dims, H=dims, act=activations, dtype=dtypes, seed=seeds)
def test_cupy_bias_act_backward_equals_reference(cp, N, H, act, dtype, seed):
    rng = np.random.default_rng(seed)
    y = ref.bias_act(_arr(cp, rng, (N, H), dtype), cp.zeros(H, dtype=dtype), act)
    dy = _arr(cp, rng, (N, H), dtype, 1.0)
    da, db = ops.bias_act_backward(dy, y, act)
    da_r, db_r = ref.bias_act_backward(dy, y, act)
    assert da.dtype == db.dtype == dy.dtype and db.shape == (H,)
    _close(da, da_r, dtype)
    _close(db, db_r, dtype, scale=N)
    out, db_out = cp.empty_like(dy), cp.empty(H, dtype=dtype)
    da2, db2 = ops.bias_act_backward(dy, y, act, out=out, db_out=db_out)
    assert da2 is out and db2 is db_out
    _fused("bwd_" + act, dtype)
    _close(da2, da_r, dtype)
    _close(db2, db_r, dtype, scale=N)


@settings(max_examples=25)
@given(M=dims, D=dims, dtype=dtypes, seed=seeds, scale=st.sampled_from([1.0, -0.25]),
       continuous=st.booleans(), spread=st.sampled_from([0.3, 3.0, 30.0]))
def test_cupy_bernoulli_logliks_equal_reference(cp, M, D, dtype, seed, scale, continuous, spread):
    rng = np.random.default_rng(seed)
    logits = _arr(cp, rng, (M, D), dtype, spread)  # 0.3: mostly the Taylor branch
    x = cp.asarray(rng.uniform(size=(M, D)).astype(dtype))
    f, r = ((ops.continuous_bernoulli_loglik, ref.continuous_bernoulli_loglik) if continuous
            else (ops.bernoulli_loglik, ref.bernoulli_loglik))
    ll, dl = f(logits, x, scale)
    _fused("continuous_bernoulli" if continuous else "bernoulli", dtype)
    ll_r, dl_r = r(logits, x, scale)
    assert ll.shape == (M,) and dl.shape == (M, D) and dl.dtype == logits.dtype
    _close(ll, ll_r, dtype, scale=D * spread)
    _close(dl, dl_r, dtype)


@settings(max_examples=25)
@given(M=dims, D=dims, dtype=dtypes, seed=seeds, scale=st.sampled_from([1.0, -0.5]),
       fixed=st.booleans())
def test_cupy_gaussian_loglik_equals_reference(cp, M, D, dtype, seed, scale, fixed):
    rng = np.random.default_rng(seed)
    x, mu = _arr(cp, rng, (M, D), dtype, 1.0), _arr(cp, rng, (M, D), dtype, 1.0)
    log_var = -0.7 if fixed else _arr(cp, rng, (M, D), dtype, 1.0)
    ll, dmu, dlv = ops.gaussian_loglik(x, mu, log_var, scale)
    _fused("gaussian_fixed" if fixed else "gaussian", dtype)
    ll_r, dmu_r, dlv_r = ref.gaussian_loglik(x, mu, log_var, scale)
    _close(ll, ll_r, dtype, scale=10 * D)
    _close(dmu, dmu_r, dtype, scale=10)
    if fixed:
        assert dlv is None and dlv_r is None
    else:
        _close(dlv, dlv_r, dtype, scale=10)


@settings(max_examples=25)
@given(M=dims, K=st.integers(min_value=1, max_value=9), dtype=dtypes, seed=seeds,
       scale=st.sampled_from([1.0, -0.5]))
def test_cupy_categorical_loglik_equals_reference(cp, M, K, dtype, seed, scale):
    rng = np.random.default_rng(seed)
    logits = _arr(cp, rng, (M, K), dtype, 5.0)
    labels = cp.asarray(rng.integers(0, K, size=M))
    ll, dl = ops.categorical_loglik(logits, labels, scale)
    _fused("categorical_grad", dtype)
    ll_r, dl_r = ref.categorical_loglik(logits, labels, scale)
    assert ll.shape == (M,) and dl.shape == (M, K)
    _close(ll, ll_r, dtype, scale=10)
    _close(dl, dl_r, dtype)


@settings(max_examples=25)
@given(R=st.integers(min_value=1, max_value=3), N=dims, L=dims, dtype=dtypes, seed=seeds)
def test_cupy_reparameterize_equals_reference(cp, R, N, L, dtype, seed):
    rng = np.random.default_rng(seed)
    mu, log_var = _arr(cp, rng, (N, L), dtype, 1.0), _arr(cp, rng, (N, L), dtype, 1.0)
    eps = _arr(cp, rng, (R, N, L), dtype, 1.0)
    z, std = ops.reparameterize(mu, log_var, eps)
    _fused("reparameterize", dtype)
    z_r, std_r = ref.reparameterize(mu, log_var, eps)
    assert z.shape == (R, N, L) and std.shape == (N, L)
    _close(z, z_r, dtype, scale=10)
    _close(std, std_r, dtype, scale=10)


def _params(cp, rng, dtype):
    return {"W": _arr(cp, rng, (3, 4), dtype, 1.0), "b": _arr(cp, rng, (4,), dtype, 1.0)}


@settings(max_examples=15)
@given(dtype=dtypes, seed=seeds, weight_decay=st.sampled_from([0.0, 0.1]))
def test_cupy_adam_equals_reference(cp, dtype, seed, weight_decay):
    rng = np.random.default_rng(seed)
    params = _params(cp, rng, dtype)
    expect = {k: v.copy() for k, v in params.items()}
    m = {k: cp.zeros_like(v) for k, v in params.items()}
    v_ = {k: cp.zeros_like(v) for k, v in params.items()}
    state = None
    for t in (1, 2, 3):
        grads = {k: _arr(cp, rng, v.shape, dtype, 1.0) for k, v in params.items()}
        state = ops.adam_(params, grads, state, 1e-2, weight_decay=weight_decay)
        for k in params:
            expect[k], m[k], v_[k] = ref.adam_step(expect[k], grads[k], m[k], v_[k], 1e-2, 0.9,
                                                   0.999, 1e-8, weight_decay, t)
    _fused("adam", dtype)
    for k in params:
        _close(params[k], expect[k], dtype)
        _close(state["m"][k], m[k], dtype)
        _close(state["v"][k], v_[k], dtype)


@settings(max_examples=15)
@given(dtype=dtypes, seed=seeds, momentum=st.sampled_from([0.0, 0.9]),
       nesterov=st.booleans(), weight_decay=st.sampled_from([0.0, 0.1]),
       dampening=st.sampled_from([0.0, 0.2]))
def test_cupy_sgd_equals_reference(cp, dtype, seed, momentum, nesterov, weight_decay, dampening):
    rng = np.random.default_rng(seed)
    params = _params(cp, rng, dtype)
    expect = {k: v.copy() for k, v in params.items()}
    bufs = {k: None for k in params}
    state = None
    for _ in range(3):
        grads = {k: _arr(cp, rng, v.shape, dtype, 1.0) for k, v in params.items()}
        state = ops.sgd_(params, grads, state, 0.1, momentum=momentum, nesterov=nesterov,
                         weight_decay=weight_decay, dampening=dampening)
        for k in params:
            expect[k], bufs[k] = ref.sgd_step(expect[k], grads[k], bufs[k], 0.1, momentum,
                                              nesterov, weight_decay, dampening)
    _fused("sgd_momentum" if momentum else "sgd", dtype)
    for k in params:
        _close(params[k], expect[k], dtype)
        if momentum:
            _close(state["momentum_buffer"][k], bufs[k], dtype)


# --------------------------------------------------------------------------
# everywhere: the dispatch never takes the CuPy branch for other arrays
# --------------------------------------------------------------------------
def _no_cupy(*args, **kwargs):
    raise AssertionError("the CuPy branch was taken for non-CuPy arrays")


@pytest.mark.parametrize("backend_name", ["numpy", "strict-device1"])
def test_dispatch_never_selects_cupy_for_other_arrays(monkeypatch, backend_name):
    if backend_name == "numpy":
        asarray = np.asarray
    else:
        strict = pytest.importorskip("array_api_strict")

        def asarray(a):
            return strict.asarray(a, device=strict.Device("device1"))
    for name in _cupy.__all__:
        if name != "applies":
            monkeypatch.setattr(_cupy, name, _no_cupy)
    rng = np.random.default_rng(0)
    a = asarray(rng.standard_normal((3, 4)))
    b = asarray(rng.standard_normal(4))
    x = asarray(rng.uniform(size=(3, 4)))
    assert not _cupy.applies(a, b, x)
    for act in ops.ACTIVATIONS:
        y = ops.bias_act(a, b, act)
        ops.bias_act_backward(a, y, act)
    ops.bernoulli_loglik(a, x)
    ops.continuous_bernoulli_loglik(a, x)
    ops.gaussian_loglik(x, a, a)
    ops.gaussian_loglik(x, a, -0.5)
    ops.categorical_loglik(a, asarray(np.array([0, 3, 1])))
    ops.reparameterize(a, a, asarray(rng.standard_normal((2, 3, 4))))
    params = {"W": asarray(rng.standard_normal((3, 4)))}
    grads = {"W": asarray(rng.standard_normal((3, 4)))}
    ops.adam_(params, grads, None, 1e-3)
    ops.sgd_(params, grads, None, 1e-3, momentum=0.9)
    ops.sgd_(params, grads, None, 1e-3)


def test_applies_needs_cupy_float_arrays():
    assert not _cupy.applies()
    assert not _cupy.applies(None)
    assert not _cupy.applies(np.zeros((2, 2)), np.zeros(2))
    assert not _cupy.applies(np.zeros((2, 2), dtype=np.float32))


def test_importing_ops_does_not_import_cupy():
    code = ("import sys; import lvm_core.ops, lvm_core.ops._cupy; "
            "sys.exit(1 if 'cupy' in sys.modules else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr or "importing lvm_core.ops imported cupy"


def test_cupy_kernel_sources_cover_every_primitive():
    """Every activation has a forward and a backward kernel; the continuous
    Bernoulli's Taylor branch uses the reference's cutoff (no GPU needed)."""
    for act in ops.ACTIVATIONS:
        assert "fwd_" + act in _cupy._SOURCES and "bwd_" + act in _cupy._SOURCES
    assert f"((T){0.5!r})" in _cupy._SOURCES["continuous_bernoulli"][2]
    assert math.isclose(_cupy._LOG_2PI, math.log(2 * math.pi))


# --------------------------------------------------------------------------
# everywhere with a C++ compiler: the kernels' CUDA C sources, compiled for the
# CPU (one loop over the broadcast elements, as ElementwiseKernel runs them),
# equal the reference on NumPy arrays.  This checks the formulas, the types and
# the syntax of every kernel without a GPU; the GPU tests above check the rest.
# --------------------------------------------------------------------------
_CTYPES_OF = {"T": None, "Y": np.int64, "int64": np.int64, "bool": np.bool_}


def _params(spec):
    return [tuple(p.split()) for p in spec.split(",")]


def _cpu_source(dtype):
    lines = ["#include <cmath>", "using namespace std;",
             f"typedef {'float' if dtype == 'float32' else 'double'} T;"]
    for name, (ins, outs, op) in _cupy._SOURCES.items():
        sig, body = ["long long n"], []
        for typ, nm in _params(ins):
            ctype = {"T": "T", "Y": "long long", "int64": "long long", "bool": "bool"}[typ]
            sig.append(f"const {ctype}* {nm}_p")
            body.append(f"const {ctype} {nm} = {nm}_p[i];")
        for _, nm in _params(outs):
            sig.append(f"T* {nm}_p")
            body.append(f"T& {nm} = {nm}_p[i];")
        lines.append(f'extern "C" void lvm_{name}({", ".join(sig)}) {{\n'
                     f"  for (long long i = 0; i < n; ++i) {{\n    {' '.join(body)}\n"
                     f"    {op}\n  }}\n}}")
    return "\n".join(lines) + "\n"


class _CpuKernel:
    """ElementwiseKernel's call on NumPy arrays: broadcast inputs, fresh or given outputs."""

    def __init__(self, lib, name, dtype):
        ins, outs, _ = _cupy._SOURCES[name]
        self.fn = getattr(lib, "lvm_" + name)
        self.ins, self.outs, self.dtype = _params(ins), _params(outs), np.dtype(dtype)

    def __call__(self, *args):
        import ctypes

        inputs, given = args[:len(self.ins)], args[len(self.ins):]
        arrays = [np.asarray(a) for a in inputs]
        shape = np.broadcast_shapes(*[a.shape for a in arrays], *[g.shape for g in given])
        keep = []
        for (typ, _), a in zip(self.ins, arrays):
            t = _CTYPES_OF[typ] or self.dtype
            keep.append(np.ascontiguousarray(np.broadcast_to(a.astype(t), shape)))
        outs = [np.ascontiguousarray(g).copy() for g in given] or \
            [np.zeros(shape, self.dtype) for _ in self.outs]
        self.fn(ctypes.c_longlong(int(np.prod(shape))),
                *[b.ctypes.data_as(ctypes.c_void_p) for b in keep + outs])
        for g, b in zip(given, outs):
            g[...] = b
        res = list(given) or outs
        return res[0] if len(res) == 1 else tuple(res)


@pytest.fixture(scope="module")
def cpu_kernels(tmp_path_factory):
    import ctypes
    import shutil

    cxx = shutil.which("g++") or shutil.which("c++") or shutil.which("clang++")
    if cxx is None:
        pytest.skip("no C++ compiler to build the kernel sources for the CPU")
    libs = {}
    for dtype in ("float32", "float64"):
        d = tmp_path_factory.mktemp("cupy_src_" + dtype)
        (d / "k.cpp").write_text(_cpu_source(dtype))
        # -ffp-contract=off: no fused multiply-adds, as the kernels are built (--fmad=false)
        done = subprocess.run([cxx, "-O1", "-ffp-contract=off", "-shared", "-fPIC",
                               str(d / "k.cpp"), "-o", str(d / "k.so")],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        libs[dtype] = ctypes.CDLL(str(d / "k.so"))
    return libs


class _HostNamespace:
    """The few cupy functions the fused primitives call, from NumPy."""

    where, isfinite, log = np.where, np.isfinite, np.log
    take_along_axis, empty_like = np.take_along_axis, np.empty_like


def _close_np(a, b, dtype, scale=1.0):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if dtype == "float32":
        np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-6 * scale)
    else:
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-13 * scale)


@settings(max_examples=15)
@given(N=dims, H=dims, dtype=dtypes, seed=seeds, spread=st.sampled_from([0.3, 3.0, 30.0]),
       scale=st.sampled_from([1.0, -0.25]))
def test_cupy_kernel_sources_on_cpu_equal_reference(cpu_kernels, N, H, dtype, seed, spread,
                                                    scale):
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(_cupy, "_kernel", lambda name, dt: _CpuKernel(cpu_kernels[dtype], name, dt))
        mp.setattr(_cupy, "_cp", lambda: _HostNamespace)
        mp.setattr(_cupy, "is_cupy_array", lambda x: isinstance(x, np.ndarray))
        _check_on_cpu(N, H, dtype, seed, spread, scale)


def _check_on_cpu(N, H, dtype, seed, spread, scale):
    rng = np.random.default_rng(seed)
    a = (spread * rng.standard_normal((N, H))).astype(dtype)
    b = rng.standard_normal(H).astype(dtype)
    dy = rng.standard_normal((N, H)).astype(dtype)
    x = rng.uniform(size=(N, H)).astype(dtype)
    for act in ops.ACTIVATIONS:
        y = _cupy.bias_act(a, b, act)
        assert y.dtype == a.dtype
        _close_np(y, ref.bias_act(a, b, act), dtype, 10 * spread)
        y_ref = ref.bias_act(a, b, act)
        da_r, db_r = ref.bias_act_backward(dy, y_ref, act)
        out, db_out = np.empty_like(dy), np.empty(H, dtype)
        da, db = _cupy.bias_act_backward(dy, y_ref, act, out=out, db_out=db_out)
        assert da is out and db is db_out
        _close_np(da, da_r, dtype)
        _close_np(db, db_r, dtype, N)
    for f, r in ((_cupy.bernoulli_loglik, ref.bernoulli_loglik),
                 (_cupy.continuous_bernoulli_loglik, ref.continuous_bernoulli_loglik)):
        ll, dl = f(a, x, scale)
        ll_r, dl_r = r(a, x, scale)
        _close_np(ll, ll_r, dtype, H * spread)
        _close_np(dl, dl_r, dtype)
    mu, log_var = (rng.standard_normal((N, H)).astype(dtype) for _ in range(2))
    for lv in (-0.7, log_var):
        got, want = _cupy.gaussian_loglik(x, mu, lv, scale), ref.gaussian_loglik(x, mu, lv, scale)
        for g, w in zip(got, want):
            if w is None:
                assert g is None
            else:
                _close_np(g, w, dtype, 10 * H)
    labels = rng.integers(0, H, size=N)
    for g, w in zip(_cupy.categorical_loglik(a, labels, scale),
                    ref.categorical_loglik(a, labels, scale)):
        _close_np(g, w, dtype, 10)
    eps = rng.standard_normal((2, N, H)).astype(dtype)
    for g, w in zip(_cupy.reparameterize(mu, log_var, eps), ref.reparameterize(mu, log_var, eps)):
        _close_np(g, w, dtype, 10)
    for wd in (0.0, 0.1):
        theta = rng.standard_normal((N, H)).astype(dtype)
        m, v = np.zeros_like(theta), np.zeros_like(theta)
        expect = (theta.copy(), m.copy(), v.copy())
        for t in (1, 2, 3):
            g = rng.standard_normal((N, H)).astype(dtype)
            _cupy.adam_(theta, g, m, v, 1.0 - 1e-2 * wd, 0.9, 0.999, math.sqrt(1 - 0.999 ** t),
                        1e-8, 1e-2 / (1 - 0.9 ** t))
            expect = ref.adam_step(*expect[:1], g, *expect[1:], 1e-2, 0.9, 0.999, 1e-8, wd, t)
        for got, want in zip((theta, m, v), expect):
            _close_np(got, want, dtype)
        for momentum, nesterov, dampening in ((0.0, False, 0.0), (0.9, False, 0.2),
                                              (0.9, True, 0.0)):
            theta = rng.standard_normal((N, H)).astype(dtype)
            buf = np.zeros_like(theta) if momentum else None
            theta_r, buf_r = theta.copy(), None
            for step in range(3):
                g = rng.standard_normal((N, H)).astype(dtype)
                _cupy.sgd_(theta, g, buf, 0.1, momentum, nesterov, wd, dampening, step > 0)
                theta_r, buf_r = ref.sgd_step(theta_r, g, buf_r, 0.1, momentum, nesterov, wd,
                                              dampening)
            _close_np(theta, theta_r, dtype)
            if momentum:
                _close_np(buf, buf_r, dtype)
