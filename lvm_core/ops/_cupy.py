"""CuPy-fused forms of the primitives of :mod:`lvm_core.ops`, for CuPy arrays on a GPU.

Each primitive here is one ``cupy.ElementwiseKernel`` (plus, where the
primitive returns a sum, one CuPy reduction of the kernel's output) with the
formulas of :mod:`lvm_core.ops.reference` written in CUDA C, operation for
operation in the same order and in the same numerically safe forms:

    bias + activation    y = act(a + b)   (sigmoid via e = exp(-|v|), softplus as
                         max(v, 0) + log1p(exp(-|v|)), elu as alpha (exp(min(v, 0)) - 1))
    its backward         da = dy act'(a) written with y;  db = sum_n da
    Bernoulli            ll = sum_d [x l - softplus(l)],  dl = scale (x - sigmoid(l))
    cont. Bernoulli      ll = sum_d [log C(l) + x l - softplus(l)],
                         dl = scale (dlog C/dl + x - sigmoid(l)),  log C by its Taylor
                         series for |l| < 1/2 (evaluated only there), exact form elsewhere
                         (Loaiza-Ganem & Cunningham 2019)
    Gaussian             ll = -1/2 sum_d [log 2 pi + log_var + (x - mu)^2 exp(-log_var)]
    categorical          ll = l_y - logsumexp(l),  dl = scale (onehot(y) - softmax(l))
    reparameterisation   std = exp(log_var / 2),  z_r = mu + std eps_r  (Kingma & Welling 2014)
    Adam(W), SGD         in place, as :func:`lvm_core.ops.reference.adam_step` /
                         :func:`~lvm_core.ops.reference.sgd_step` (Kingma & Ba 2015)

Kernels use the type placeholder ``T`` (float32 or float64, the arrays' dtype),
every constant is cast to ``T`` and every Python scalar is passed in the arrays'
dtype, so float32 arrays are computed in float32 as the reference does; they
are compiled without fused multiply-adds (``--fmad=false``), so each operation
rounds like the reference's separate CuPy ufuncs.  Kernels are built on first
use and cached per (kernel, dtype) in ``_CACHE``.  CuPy is imported only
inside :func:`_kernel`, never when this module is imported (CuPy is optional).

:func:`applies` is the dispatch rule: every given array a CuPy array of one
float dtype (float32 or float64), decided per call from the arrays.
"""
from __future__ import annotations

import math

import numpy as np
from array_api_compat import is_cupy_array

from ..functional.likelihoods import _DLOG_C, _LOG_2, _LOG_C, _SERIES_CUTOFF
from .reference import ACTIVATIONS

__all__ = ["applies", "bias_act", "bias_act_backward", "bernoulli_loglik",
           "continuous_bernoulli_loglik", "gaussian_loglik", "categorical_loglik",
           "reparameterize", "adam_", "sgd_"]

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_LOG_2PI = math.log(2.0 * math.pi)
_OPTIONS = ("--fmad=false",)
_CACHE = {}  # (kernel name, dtype) -> compiled-on-demand cupy.ElementwiseKernel


def applies(*arrays):
    """True when every array (``None`` entries ignored) is a CuPy array of one
    float dtype, float32 or float64: the CuPy-fused kernels apply."""
    dt = None
    for a in arrays:
        if a is None:
            continue
        if not is_cupy_array(a) or getattr(a, "ndim", 0) == 0:
            return False
        if dt is None:
            dt = a.dtype
            if dt not in _FLOATS:
                return False
        elif a.dtype != dt:
            return False
    return dt is not None


def _lit(c):
    """A Python float as a CUDA C constant of type T (rounded like a NumPy cast)."""
    return f"((T){float(c)!r})"


# ---------------------------------------------------------------- kernel sources
_SIGMOID = ("T e_ = exp(-fabs(v));\n"
            "T inv_ = ((T)1) / (((T)1) + e_);\n"
            "T sig_ = v >= ((T)0) ? inv_ : e_ * inv_;\n")
# lvm_core.functional.sigmoid's form (the continuous Bernoulli's reference uses it)
_SIGMOID_F = ("T e_ = exp(-fabs(v));\n"
              "T sig_ = v >= ((T)0) ? ((T)1) / (((T)1) + e_) : e_ / (((T)1) + e_);\n")
_SOFTPLUS = "T sp_ = (v > ((T)0) ? v : ((T)0)) + log1p(exp(-fabs(v)));\n"

_ACT_FORWARD = {
    "identity": "y = a + b;",
    "relu": "T v = a + b; y = v > ((T)0) ? v : ((T)0);",
    "leaky_relu": "T v = a + b; y = v > ((T)0) ? v : p * v;",
    "tanh": "T v = a + b; y = tanh(v);",
    "sigmoid": "T v = a + b;\n" + _SIGMOID + "y = sig_;",
    "softplus": "T v = a + b;\n" + _SOFTPLUS + "y = sp_;",
    "elu": ("T v = a + b; T t = exp(v < ((T)0) ? v : ((T)0));\n"
            "y = v > ((T)0) ? v : p * (t - ((T)1));"),
}
_ACT_BACKWARD = {
    "identity": "da = dy;",
    "relu": "da = y > ((T)0) ? dy : ((T)0);",
    "leaky_relu": "da = y > ((T)0) ? dy : p * dy;",
    "tanh": "da = dy * (((T)1) - y * y);",
    "sigmoid": "da = dy * (y * (((T)1) - y));",
    "softplus": "da = (-dy) * expm1(-y);",
    "elu": "da = y > ((T)0) ? dy : dy * (y + p);",
}


def _horner(u, coefs):
    """C expression of sum_n coefs[n] u^n, in the reference's Horner order."""
    expr = _lit(coefs[-1])
    for c in reversed(coefs[:-1]):
        expr = f"(({expr}) * {u} + {_lit(c)})"
    return expr


_CB_LOG_C = f"""
T a_ = fabs(v);
T log_c, dlog_c;
if (a_ < {_lit(_SERIES_CUTOFF)}) {{
    T l2 = v * v;
    log_c = {_lit(_LOG_2)} + l2 * {_horner("l2", _LOG_C)};
    dlog_c = v * {_horner("l2", _DLOG_C)};
}} else {{
    T e2 = exp(-a_);
    T ome = -expm1(-a_);
    log_c = (log(a_) + log1p(e2)) - log(ome);
    T d_big = ((T)1) / a_ - (((T)2) * e2) / (ome * (((T)1) + e2));
    dlog_c = (v < ((T)0) ? ((T)-1) : ((T)1)) * d_big;
}}
"""

# name -> (in_params, out_params, operation)
_SOURCES = {
    "bernoulli": ("T v, T x, T scale", "T term, T grad",
                  _SOFTPLUS + _SIGMOID + "term = x * v - sp_; grad = scale * (x - sig_);"),
    "continuous_bernoulli": (
        "T v, T x, T scale", "T term, T grad",
        _CB_LOG_C + _SOFTPLUS + _SIGMOID_F
        + "term = (log_c + x * v) - sp_; grad = scale * ((dlog_c + x) - sig_);"),
    "gaussian_fixed": ("T x, T mu, T prec, T scale", "T sq, T dmu",
                       "T diff = x - mu; sq = diff * diff * prec; dmu = scale * (diff * prec);"),
    "gaussian": ("T x, T mu, T lv, T scale, T half_scale", "T term, T dmu, T dlv",
                 "T diff = x - mu; T prec = exp(-lv); T sq = diff * diff * prec;\n"
                 f"term = ({_lit(_LOG_2PI)} + lv) + sq; dmu = scale * (diff * prec);\n"
                 "dlv = half_scale * (((T)1) - sq);"),
    "exp_shift": ("T v, T m", "T e", "e = exp(v - m);"),
    "categorical_grad": ("T e, T s, Y y, int64 K, T scale", "T grad",
                         "T p = s > ((T)0) ? e / s : ((T)0);\n"
                         "T hot = (i % K) == (long long)y ? ((T)1) : ((T)0);\n"
                         "grad = scale * (hot - p);"),
    "half_exp": ("T lv", "T std", "std = exp(((T)0.5) * lv);"),
    "reparameterize": ("T mu, T std, T eps", "T z", "z = mu + std * eps;"),
    "adam": ("T g, T decay, T b1, T c1, T b2, T c2, T sqrt_bc2, T eps, T step_size",
             "T theta, T m, T v",
             "theta = theta * decay;\n"
             "m = b1 * m + c1 * g;\n"
             "v = b2 * v + c2 * (g * g);\n"
             "theta = theta - step_size * (m / (sqrt(v) / sqrt_bc2 + eps));"),
    "sgd": ("T g, T wd, T lr, bool has_wd", "T theta",
            "T d = has_wd ? g + wd * theta : g; theta = theta - lr * d;"),
    "sgd_momentum": ("T g, T wd, T mom, T damp1, T lr, bool has_wd, bool has_buf, bool nesterov",
                     "T theta, T buf",
                     "T d = has_wd ? g + wd * theta : g;\n"
                     "T b_ = has_buf ? mom * buf + damp1 * d : d;\n"
                     "buf = b_;\n"
                     "d = nesterov ? d + mom * b_ : b_;\n"
                     "theta = theta - lr * d;"),
}
for _name, _code in _ACT_FORWARD.items():
    _SOURCES["fwd_" + _name] = ("T a, T b, T p", "T y", _code)
for _name, _code in _ACT_BACKWARD.items():
    _SOURCES["bwd_" + _name] = ("T dy, T y, T p", "T da", _code)


def _cp():
    """The cupy module, imported at the first use of a kernel (CuPy is optional)."""
    import cupy

    return cupy


def _kernel(name, dtype):
    """The ElementwiseKernel ``name`` for arrays of ``dtype``, built on first use."""
    key = (name, np.dtype(dtype).char)
    kern = _CACHE.get(key)
    if kern is None:
        cupy = _cp()
        in_params, out_params, operation = _SOURCES[name]
        kern = cupy.ElementwiseKernel(in_params, out_params, operation,
                                      f"lvm_core_{name}_{key[1]}", options=_OPTIONS)
        _CACHE[key] = kern
    return kern


def _out(out, shape, dtype):
    """``out`` when it is a CuPy array that can receive a result of ``shape``/``dtype``."""
    if out is not None and is_cupy_array(out) and tuple(out.shape) == tuple(shape) \
            and out.dtype == dtype:
        return out
    return None


def _param(activation):
    p = ACTIVATIONS[activation]
    return 0.0 if p is None else p


# ---------------------------------------------------------------- primitives
def bias_act(a, b, activation, out=None):
    """y = act(a + b); a (N, H), b (H,) -> y (N, H) (into ``out`` when it fits)."""
    dt = a.dtype.type
    y = _out(out, a.shape, a.dtype)
    args = (a, b, dt(_param(activation)))
    kern = _kernel("fwd_" + activation, a.dtype)
    return kern(*args) if y is None else kern(*args, y)


def bias_act_backward(dy, y, activation, out=None, db_out=None):
    """da = dy act'(a) (from y) and db = sum_n da.  Returns (da, db)."""
    dt = dy.dtype.type
    if activation == "identity" and out is None:
        da = dy
    else:
        da = _out(out, dy.shape, dy.dtype)
        args = (dy, y, dt(_param(activation)))
        kern = _kernel("bwd_" + activation, dy.dtype)
        da = kern(*args) if da is None else kern(*args, da)
    db = _out(db_out, dy.shape[1:], dy.dtype)
    return da, (da.sum(axis=0) if db is None else da.sum(axis=0, out=db))


def _loglik(name, logits, x, scale, grad_out):
    dt = logits.dtype.type
    kern = _kernel(name, logits.dtype)
    g = _out(grad_out, logits.shape, logits.dtype)
    if g is None:
        term, g = kern(logits, x, dt(scale))
    else:
        term = _cp().empty_like(logits)
        kern(logits, x, dt(scale), term, g)
    return term.sum(axis=-1), g


def bernoulli_loglik(logits, x, scale=1.0, grad_out=None):
    """ll_n = sum_d [x l - softplus(l)],  dlogits = scale (x - sigmoid(l))."""
    return _loglik("bernoulli", logits, x, scale, grad_out)


def continuous_bernoulli_loglik(logits, x, scale=1.0, grad_out=None):
    """ll_n = sum_d [log C(l) + x l - softplus(l)],  dlogits = scale d ll / d l."""
    return _loglik("continuous_bernoulli", logits, x, scale, grad_out)


def gaussian_loglik(x, mu, log_var, scale=1.0):
    """ll_n = -1/2 sum_d [log 2 pi + log_var + (x - mu)^2 exp(-log_var)].

    Returns (ll, dmu, dlog_var); dlog_var None for a Python-float ``log_var``.
    """
    dt = mu.dtype.type
    if isinstance(log_var, float):
        sq, dmu = _kernel("gaussian_fixed", mu.dtype)(x, mu, dt(math.exp(-log_var)), dt(scale))
        ll = -0.5 * sq.sum(axis=-1) - 0.5 * x.shape[-1] * (_LOG_2PI + log_var)
        return ll, dmu, None
    term, dmu, dlv = _kernel("gaussian", mu.dtype)(x, mu, log_var, dt(scale), dt(-0.5 * scale))
    return -0.5 * term.sum(axis=-1), dmu, dlv


def categorical_loglik(logits, labels, scale=1.0):
    """ll_n = l_{n y_n} - logsumexp_k l_nk,  dlogits = scale (onehot(y) - softmax(l)).

    Labels are not range-checked (as on the NumPy fused path).
    """
    cupy = _cp()
    dt = logits.dtype.type
    m = logits.max(axis=-1, keepdims=True)
    m = cupy.where(cupy.isfinite(m), m, dt(0))
    e = _kernel("exp_shift", logits.dtype)(logits, m)
    s = e.sum(axis=-1, keepdims=True)
    lse = cupy.log(s) + m
    lse = cupy.where(cupy.isfinite(lse), lse, dt(0))
    y = labels[:, None]
    ll = (cupy.take_along_axis(logits, y, axis=-1) - lse)[:, 0]
    grad = _kernel("categorical_grad", logits.dtype)(e, s, y, np.int64(logits.shape[-1]),
                                                     dt(scale))
    return ll, grad


def reparameterize(mu, log_var, eps):
    """std = exp(log_var / 2), z_r = mu + std eps_r.  Returns (z (R, N, L), std (N, L))."""
    std = _kernel("half_exp", mu.dtype)(log_var)
    return _kernel("reparameterize", mu.dtype)(mu, std, eps), std


def adam_(theta, g, m, v, decay, beta1, beta2, sqrt_bc2, eps, step_size):
    """One Adam(W) step on theta, m, v in place (scalars as in :mod:`lvm_core.ops.optim`)."""
    dt = theta.dtype.type
    _kernel("adam", theta.dtype)(g, dt(decay), dt(beta1), dt(1.0 - beta1), dt(beta2),
                                 dt(1.0 - beta2), dt(sqrt_bc2), dt(eps), dt(step_size),
                                 theta, m, v)


def sgd_(theta, g, buf, lr, momentum, nesterov, weight_decay, dampening, has_buf):
    """One SGD step on theta (and the momentum buffer ``buf``) in place."""
    dt = theta.dtype.type
    has_wd = bool(weight_decay)
    if momentum:
        _kernel("sgd_momentum", theta.dtype)(g, dt(weight_decay), dt(momentum),
                                             dt(1.0 - dampening), dt(lr), has_wd,
                                             bool(has_buf), bool(nesterov), theta, buf)
    else:
        _kernel("sgd", theta.dtype)(g, dt(weight_decay), dt(lr), has_wd, theta)
