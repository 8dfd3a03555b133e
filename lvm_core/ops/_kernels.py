"""numba kernels behind :mod:`lvm_core.ops` (NumPy float32/float64, C-contiguous).

Each kernel is one serial pass over its arrays (BLAS owns the cores: never
parallel kernels next to a threaded BLAS).  ``error_model="numpy"`` lets LLVM
vectorise divisions; exp/log/expm1 stay in NumPy's vectorised ufuncs between
two kernels (numba has no vector math library here).  Constants are written
as ``np.float32`` values that are exact (0, 1, 1/2, 2), so float32 inputs stay
in float32 arithmetic and float64 inputs in float64; inexact scalars arrive
as arguments already cast to the arrays' dtype.  The equations are in the
docstrings of the public functions in :mod:`lvm_core.ops`.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit

_jit = njit(error_model="numpy", nogil=True)
# row reductions (sum over the inner axis) vectorise only when the sum may be reassociated
_jit_rows = njit(error_model="numpy", nogil=True, fastmath={"reassoc"})
# float32 polynomial kernels: also fuse a * b + c into one FMA (fewer instructions)
_jit_poly = njit(error_model="numpy", nogil=True, fastmath={"reassoc", "contract"})

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_TWO = np.float32(2.0)


# --------------------------------------------------------------------------
# bias + activation, forward:  y = act(a + b)      a, y (N, H), b (H,)
# --------------------------------------------------------------------------
@_jit
def bias_identity(a, b, y):
    N, H = a.shape
    for n in range(N):
        for j in range(H):
            y[n, j] = a[n, j] + b[j]


@_jit
def bias_relu(a, b, y):
    N, H = a.shape
    for n in range(N):
        for j in range(H):
            v = a[n, j] + b[j]
            y[n, j] = v if v > _ZERO else _ZERO


@_jit
def bias_leaky_relu(a, b, slope, y):
    N, H = a.shape
    for n in range(N):
        for j in range(H):
            v = a[n, j] + b[j]
            y[n, j] = v if v > _ZERO else slope * v


@_jit
def bias_min0(a, b, y, t):
    """y = a + b, t = min(y, 0) (ELU: t then goes through np.exp)."""
    N, H = a.shape
    for n in range(N):
        for j in range(H):
            v = a[n, j] + b[j]
            y[n, j] = v
            t[n, j] = v if v < _ZERO else _ZERO


# In place (y is a): the same maps with one array argument.  With a and y passed as two
# arguments that are one array, LLVM's run-time overlap check sends the loop to its
# scalar version (about 3x slower on 1280 x 400 float32).
@_jit
def bias_identity_(y, b):
    N, H = y.shape
    for n in range(N):
        for j in range(H):
            y[n, j] = y[n, j] + b[j]


@_jit
def bias_relu_(y, b):
    N, H = y.shape
    for n in range(N):
        for j in range(H):
            v = y[n, j] + b[j]
            y[n, j] = v if v > _ZERO else _ZERO


@_jit
def bias_leaky_relu_(y, b, slope):
    N, H = y.shape
    for n in range(N):
        for j in range(H):
            v = y[n, j] + b[j]
            y[n, j] = v if v > _ZERO else slope * v


@_jit
def bias_min0_(y, b, t):
    N, H = y.shape
    for n in range(N):
        for j in range(H):
            v = y[n, j] + b[j]
            y[n, j] = v
            t[n, j] = v if v < _ZERO else _ZERO


@_jit
def bias_neg_abs_(y, b, t):
    N, H = y.shape
    for n in range(N):
        for j in range(H):
            v = y[n, j] + b[j]
            y[n, j] = v
            t[n, j] = -abs(v)


@_jit
def elu_finish(y, t, alpha):
    """y = y (y > 0) or alpha (t - 1) with t = exp(min(y, 0))."""
    N, H = y.shape
    for n in range(N):
        for j in range(H):
            v = y[n, j]
            y[n, j] = v if v > _ZERO else alpha * (t[n, j] - _ONE)


@_jit
def bias_neg_abs(a, b, y, t):
    """y = a + b, t = -|y| (sigmoid / softplus: t then goes through np.exp)."""
    N, H = a.shape
    for n in range(N):
        for j in range(H):
            v = a[n, j] + b[j]
            y[n, j] = v
            t[n, j] = -abs(v)


@_jit
def sigmoid_finish(y, e):
    """y = 1/(1+e) (y >= 0) or e/(1+e) with e = exp(-|y|)."""
    N, H = y.shape
    for n in range(N):
        for j in range(H):
            inv = _ONE / (_ONE + e[n, j])
            y[n, j] = inv if y[n, j] >= _ZERO else e[n, j] * inv


@_jit
def softplus_finish(y, lg):
    """y = max(y, 0) + lg with lg = log1p(exp(-|y|))."""
    N, H = y.shape
    for n in range(N):
        for j in range(H):
            v = y[n, j]
            y[n, j] = (v if v > _ZERO else _ZERO) + lg[n, j]


# --------------------------------------------------------------------------
# bias + activation, backward from y:  da = dy act'(y), db = sum_n da
# --------------------------------------------------------------------------
@_jit
def identity_backward_bias(dy, da, db):
    N, H = dy.shape
    for j in range(H):
        db[j] = _ZERO
    for n in range(N):
        for j in range(H):
            v = dy[n, j]
            da[n, j] = v
            db[j] += v


@_jit
def relu_backward_bias(dy, y, da, db):
    N, H = dy.shape
    for j in range(H):
        db[j] = _ZERO
    for n in range(N):
        for j in range(H):
            v = dy[n, j] if y[n, j] > _ZERO else _ZERO
            da[n, j] = v
            db[j] += v


@_jit
def leaky_relu_backward_bias(dy, y, slope, da, db):
    N, H = dy.shape
    for j in range(H):
        db[j] = _ZERO
    for n in range(N):
        for j in range(H):
            v = dy[n, j] if y[n, j] > _ZERO else slope * dy[n, j]
            da[n, j] = v
            db[j] += v


@_jit
def elu_backward_bias(dy, y, alpha, da, db):
    N, H = dy.shape
    for j in range(H):
        db[j] = _ZERO
    for n in range(N):
        for j in range(H):
            yv = y[n, j]
            v = dy[n, j] if yv > _ZERO else dy[n, j] * (yv + alpha)
            da[n, j] = v
            db[j] += v


@_jit
def tanh_backward_bias(dy, y, da, db):
    N, H = dy.shape
    for j in range(H):
        db[j] = _ZERO
    for n in range(N):
        for j in range(H):
            yv = y[n, j]
            v = dy[n, j] * (_ONE - yv * yv)
            da[n, j] = v
            db[j] += v


@_jit
def sigmoid_backward_bias(dy, y, da, db):
    N, H = dy.shape
    for j in range(H):
        db[j] = _ZERO
    for n in range(N):
        for j in range(H):
            yv = y[n, j]
            v = dy[n, j] * (yv * (_ONE - yv))
            da[n, j] = v
            db[j] += v


@_jit
def softplus_backward_bias(dy, m, da, db):
    """da = -dy m with m = expm1(-y) (so -m = 1 - exp(-y) = sigmoid(a))."""
    N, H = dy.shape
    for j in range(H):
        db[j] = _ZERO
    for n in range(N):
        for j in range(H):
            v = -dy[n, j] * m[n, j]
            da[n, j] = v
            db[j] += v


# --------------------------------------------------------------------------
# likelihoods: value per row and scaled gradient
# --------------------------------------------------------------------------
@_jit
def neg_abs(l, t):
    M, D = l.shape
    for n in range(M):
        for j in range(D):
            t[n, j] = -abs(l[n, j])


@_jit_rows
def bernoulli_grad(l, x, e, scale, repeat, dl, ll):
    """dl_m = scale_m (x_i - sigmoid(l_m)); ll_m = sum_d [x_i l_m - max(l_m, 0)]; e <- 1 + e.

    Row m of l pairs with row i = (m // repeat) % N of x (N, D) and with the factor
    scale[m] (``scale`` has M entries, or one for all rows).  e = exp(-|l|) on entry;
    log(1 + e) (the rest of softplus) is subtracted by the caller.
    """
    M, D = l.shape
    N = x.shape[0]
    step = 1 if scale.shape[0] == M else 0
    for n in range(M):
        i = (n // repeat) % N
        sc = scale[n * step]
        acc = 0.0
        for j in range(D):
            lv = l[n, j]
            ev = e[n, j]
            xv = x[i, j]
            inv = _ONE / (_ONE + ev)
            s = inv if lv >= _ZERO else ev * inv
            dl[n, j] = sc * (xv - s)
            acc += xv * lv - (lv if lv > _ZERO else _ZERO)
            e[n, j] = _ONE + ev
        ll[n] = acc


# float32 exp(-|l|) and log(1 + e) as polynomials LLVM vectorises (numba calls scalar
# libm for exp/log): exp(-a) = 2^-y, y = a log2(e) = k + f, k integer, f in [0, 1);
# 2^-k is built in the exponent bits, 2^-f = P(f) (degree 6, relative error 2.6e-9 on
# [0, 1]); log(1 + e) = e Q(e) for e in [0, 1] (degree 8, relative error 3.1e-8).  The
# coefficients are least-squares Chebyshev fits (4000 nodes, float64), both far below
# float32's resolution (6e-8).  y is capped at 125.99 so that 2^-k stays a normal
# number: exp(-|l|) >= 6e-39 there, which changes nothing in 1 + e or in the gradient.
_LOG2E_32 = np.float32(1.4426950408889634)
_YMAX_32 = np.float32(125.99)
_P0, _P1, _P2, _P3, _P4, _P5, _P6 = (np.float32(v) for v in (
    9.9999999865e-01, -6.9314704730e-01, 2.4022435547e-01, -5.5491035284e-02,
    9.5800584539e-03, -1.2757162172e-03, 1.0938752391e-04))
_Q0, _Q1, _Q2, _Q3, _Q4, _Q5, _Q6, _Q7, _Q8 = (np.float32(v) for v in (
    9.9999997054e-01, -4.9999501517e-01, 3.3319271343e-01, -2.4844369893e-01,
    1.9111431081e-01, -1.3674769706e-01, 7.8361668019e-02, -2.9588507393e-02,
    5.2534577968e-03))


@_jit
def exp_neg_parts(a):
    """exp(-a) for a >= 0 as (2^-f, the float32 bits of 2^-k), a log2(e) = k + f
    (capped as above); the caller multiplies 2^-f by the bits viewed as float32."""
    y = min(a * _LOG2E_32, _YMAX_32)
    k = np.int32(y)
    f = y - np.float32(k)
    p = _P6
    p = p * f + _P5
    p = p * f + _P4
    p = p * f + _P3
    p = p * f + _P2
    p = p * f + _P1
    p = p * f + _P0
    return p, (np.int32(127) - k) << 23


@_jit
def log1p_unit(e):
    """log(1 + e) = e Q(e) for e in [0, 1] (the degree-8 polynomial above)."""
    q = _Q8
    q = q * e + _Q7
    q = q * e + _Q6
    q = q * e + _Q5
    q = q * e + _Q4
    q = q * e + _Q3
    q = q * e + _Q2
    q = q * e + _Q1
    q = q * e + _Q0
    return e * q


@_jit
def exp_neg_row(l, n, p2, bits):
    """exp(-|l[n, j]|) for a row of float32 logits as parts (:func:`exp_neg_parts`):
    2^-f into p2[j], the bits of 2^-k into bits[j] (their product is the value)."""
    for j in range(l.shape[1]):
        p2[j], bits[j] = exp_neg_parts(abs(l[n, j]))


@_jit
def sigmoid_from_exp(lv, ev):
    """(1 / (1 + e), sigmoid(l)) from l and e = exp(-|l|), without overflow."""
    inv = _ONE / (_ONE + ev)
    return inv, (inv if lv >= _ZERO else ev * inv)


@_jit
def elu_f32(v, alpha):
    """ELU of one float32: v (v > 0) or alpha (exp(v) - 1), exp(v) = exp(-|v|) from
    :func:`exp_neg_parts` (its relative error 2.6e-9 sits below float32's, as NumPy's
    exp does; exp(v) - 1 is what the two-pass path computes too)."""
    p, k_bits = exp_neg_parts(-v if v < _ZERO else _ZERO)
    e = p * np.int32(k_bits).view(np.float32)
    return alpha * (e - _ONE) if v <= _ZERO else v  # (a NaN stays NaN)


@_jit
def bias_elu_f32(a, b, alpha, y):
    """y = ELU(a + b), float32, one pass (a and y distinct arrays)."""
    N, H = a.shape
    for n in range(N):
        for j in range(H):
            y[n, j] = elu_f32(a[n, j] + b[j], alpha)


@_jit
def bias_elu_f32_(y, b, alpha):
    """y <- ELU(y + b) in place, float32, one pass."""
    N, H = y.shape
    for n in range(N):
        for j in range(H):
            y[n, j] = elu_f32(y[n, j] + b[j], alpha)


@_jit_rows
def bernoulli_loglik_f32(l, x, scale, repeat, p2, bits, fbits, dl, ll):
    """float32 Bernoulli value and gradient in one kernel (no NumPy exp/log passes):
    e = exp(-|l|) by the polynomials above, dl_m = scale_m (x_i - sigmoid(l_m)),
    ll_m = sum_d [x_i l - max(l, 0) - log(1 + e)].  Rows of x and scale as in
    :func:`bernoulli_grad`; scratch ``p2`` (D,) float32, ``bits`` (D,) int32 and ``fbits``
    its float32 view (dl may share memory with l).  The row sum runs in float32
    vector lanes (reassociated; a float64 accumulator costs a conversion per term
    and 30% of the kernel's time).
    """
    M, D = l.shape
    N = x.shape[0]
    step = 1 if scale.shape[0] == M else 0
    for n in range(M):
        i = (n // repeat) % N
        sc = scale[n * step]
        exp_neg_row(l, n, p2, bits)
        acc = _ZERO
        for j in range(D):
            lv = l[n, j]
            ev = p2[j] * fbits[j]
            xv = x[i, j]
            inv, s = sigmoid_from_exp(lv, ev)
            dl[n, j] = sc * (xv - s)
            acc += xv * lv - (lv if lv > _ZERO else _ZERO) - log1p_unit(ev)
        ll[n] = acc


# Taylor coefficients of log C(l) - log 2 (powers l^(2k+2)) and d log C/dl
# (powers l^(2k+1)); the same as lvm_core.functional.likelihoods.
_C0, _C1, _C2, _C3 = 1 / 12, -7 / 1440, 31 / 90720, -127 / 4838400
_C4, _C5, _C6, _C7 = 73 / 34214400, -1414477 / 7846046208000, 8191 / 523069747200, \
    -16931177 / 12194997534720000
_G0, _G1, _G2, _G3 = 1 / 6, -7 / 360, 31 / 15120, -127 / 604800
_G4, _G5, _G6, _G7 = 73 / 3421440, -1414477 / 653837184000, 8191 / 37362124800, \
    -16931177 / 762187345920000
_LOG2 = 0.6931471805599453
_C64 = (_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7)
_G64 = (_G0, _G1, _G2, _G3, _G4, _G5, _G6, _G7)


@_jit
def cb_series(u, c, g):
    """(P(u), G(u)) by Horner for u = l^2, coefficients lowest power first: log C(l) =
    log 2 + u P(u) and d log C/dl = l G(u) below the cutoff."""
    p = c[7]
    p = p * u + c[6]
    p = p * u + c[5]
    p = p * u + c[4]
    p = p * u + c[3]
    p = p * u + c[2]
    p = p * u + c[1]
    p = p * u + c[0]
    q = g[7]
    q = q * u + g[6]
    q = q * u + g[5]
    q = q * u + g[4]
    q = q * u + g[3]
    q = q * u + g[2]
    q = q * u + g[1]
    q = q * u + g[0]
    return p, q


@_jit_rows
def continuous_bernoulli_grad(l, x, e, scale, repeat, cutoff, dl, ll):
    """Continuous Bernoulli (Loaiza-Ganem & Cunningham 2019) with e = exp(-|l|) on entry.

    ll_nd = x l - softplus(l) + log C(l) is split as  r + log q:
      |l| >= cutoff:  r = x l - max(l, 0),                 q = |l| / (1 - e)
      |l| <  cutoff:  r = x l - max(l, 0) + log 2 + P(l^2), q = 1 / (1 + e)
    (log C = log|l| + log(1+e) - log(1-e), or log 2 + P(l^2) by its series);
    r summed per row into ll, e <- q (its log is added by the caller).
    dl = scale (x - sigmoid(l) + dlogC(l)), dlogC = 1/l - sign(l) 2e/(1 - e^2) or its series.
    Rows of x and entries of scale as in :func:`bernoulli_grad`.
    """
    M, D = l.shape
    N = x.shape[0]
    step = 1 if scale.shape[0] == M else 0
    for n in range(M):
        i = (n // repeat) % N
        sc = scale[n * step]
        acc = 0.0
        for j in range(D):
            lv = l[n, j]
            ev = e[n, j]
            xv = x[i, j]
            inv = _ONE / (_ONE + ev)
            s = inv if lv >= _ZERO else ev * inv
            r = xv * lv - (lv if lv > _ZERO else _ZERO)
            a = abs(lv)
            if a < cutoff:
                u = lv * lv
                p, g = cb_series(u, _C64, _G64)
                r += _LOG2 + u * p
                dlogc = lv * g
                e[n, j] = inv
            else:
                om = _ONE - ev
                d_big = _ONE / a - _TWO * ev / (om * (_ONE + ev))
                dlogc = d_big if lv >= _ZERO else -d_big
                e[n, j] = a / om
            dl[n, j] = sc * (xv - s + dlogc)
            acc += r
        ll[n] = acc


# float32 copies of the series coefficients (for the float32 kernel below)
_C32 = tuple(np.float32(c) for c in _C64)
_G32 = tuple(np.float32(c) for c in _G64)
_LOG2_32 = np.float32(_LOG2)
_SQRT2_32 = np.float32(1.4142135623730951)
_FLT_MAX = np.float32(np.finfo(np.float32).max)
# log(1 + t) = t - t^2/2 + t^3 R(t) for t in [sqrt(1/2) - 1, sqrt(2) - 1]: R of degree 7,
# a least-squares fit of the relative error (4000 Chebyshev nodes, float64); evaluated
# in float32 the result is within 1.3e-7 relative of log1p
_R32 = tuple(np.float32(c) for c in (
    0.33333354047, -0.25000851944, 0.19999826573, -0.1662136991, 0.14227114036,
    -0.13202104209, 0.12620327489, -0.073628678715))


@_jit
def log_f32(q):
    """log(q) for a positive normal float32 q (inf and NaN returned as they are)
    without a division, vectorisable:
    q = m 2^k with m in [sqrt(1/2), sqrt(2)) from the bits, t = m - 1,
    log q = k log 2 + t - t^2/2 + t^3 R(t)."""
    b = np.float32(q).view(np.int32)
    k = ((b >> 23) & 0xFF) - 127
    m = np.int32((b & 0x7FFFFF) | 0x3F800000).view(np.float32)  # in [1, 2)
    big = m > _SQRT2_32
    m = m * _HALF if big else m
    k = k + 1 if big else k
    t = m - _ONE
    r0, r1, r2, r3, r4, r5, r6, r7 = _R32
    r = r7
    r = r * t + r6
    r = r * t + r5
    r = r * t + r4
    r = r * t + r3
    r = r * t + r2
    r = r * t + r1
    r = r * t + r0
    t2 = t * t
    out = np.float32(k) * _LOG2_32 + (t - _HALF * t2 + t2 * t * r)
    return out if q <= _FLT_MAX else q  # inf and NaN pass through


@_jit_poly
def continuous_bernoulli_f32(l, x, scale, repeat, cutoff, p2, bits, fbits, dl, ll):
    """float32 continuous Bernoulli value and gradient in one kernel (no NumPy passes):
    the terms of :func:`continuous_bernoulli_grad` with e = exp(-|l|) from the
    polynomials of :func:`exp_neg_parts`, log q from :func:`log1p_unit` (|l| < cutoff,
    q = 1 / (1 + e)) or :func:`log_f32` (q = |l| / (1 - e)), the series in float32 and
    two divisions per entry.
    Both branches are computed and one selected, so LLVM vectorises the row; its sum
    runs in float32 lanes.  Scratch as in :func:`bernoulli_loglik_f32`.
    """
    M, D = l.shape
    N = x.shape[0]
    step = 1 if scale.shape[0] == M else 0
    for n in range(M):
        i = (n // repeat) % N
        sc = scale[n * step]
        exp_neg_row(l, n, p2, bits)
        acc = _ZERO
        for j in range(D):
            lv = l[n, j]
            ev = p2[j] * fbits[j]
            xv = x[i, j]
            a = abs(lv)
            inv, s = sigmoid_from_exp(lv, ev)
            r = xv * lv - (lv if lv > _ZERO else _ZERO)
            # |l| < cutoff: log C = log 2 + u P(u), dlogC = l G(u), u = l^2
            u = lv * lv
            p, g = cb_series(u, _C32, _G32)
            small_r = _LOG2_32 + u * p - log1p_unit(ev)
            # |l| >= cutoff: log C - log(1 + e) = log|l| - log(1 - e) = log q, q = |l| / (1 - e);
            # dlogC = 1/|l| - 2e / ((1 - e)(1 + e)), with one division for 1/|l| and 1/(1 - e)
            om = _ONE - ev
            rr = _ONE / (a * om)
            rom = a * rr
            d_big = om * rr - _TWO * ev * inv * rom
            big_r = log_f32(a * rom if a >= cutoff else _ONE)  # (1: the unused log stays finite)
            small = a < cutoff
            dlogc = lv * g if small else (d_big if lv >= _ZERO else -d_big)
            dl[n, j] = sc * (xv - s + dlogc)
            acc += r + (small_r if small else big_r)
        ll[n] = acc


@_jit_rows
def gaussian_fixed_grad(x, mu, precision, scale, dmu, ll):
    """Fixed variance: ll_n = sum_d -1/2 (x - mu)^2 precision (constants added by the
    caller); dmu = scale (x - mu) precision."""
    M, D = x.shape
    for n in range(M):
        acc = 0.0
        for j in range(D):
            d = x[n, j] - mu[n, j]
            dp = d * precision
            dmu[n, j] = scale * dp
            acc -= _HALF * (d * dp)
        ll[n] = acc


@_jit_rows
def gaussian_grad(x, mu, log_var, precision, scale, dmu, dlog_var, ll):
    """Per-element log_var (M, D) with precision = exp(-log_var):
    ll_n = -1/2 sum_d [log_var + (x - mu)^2 precision] (log 2 pi added by the caller);
    dmu = scale (x - mu) precision; dlog_var = scale (-1/2)(1 - (x - mu)^2 precision)."""
    M, D = x.shape
    for n in range(M):
        acc = 0.0
        for j in range(D):
            d = x[n, j] - mu[n, j]
            dp = d * precision[n, j]
            sq = d * dp
            dmu[n, j] = scale * dp
            dlog_var[n, j] = -scale * _HALF * (_ONE - sq)
            acc -= _HALF * (log_var[n, j] + sq)
        ll[n] = acc


@_jit
def row_max_shift(l, t, m):
    """m_n = max_k l_nk; t = l - m (then exp'd by the caller)."""
    M, K = l.shape
    for n in range(M):
        mx = l[n, 0]
        for k in range(1, K):
            if l[n, k] > mx:
                mx = l[n, k]
        m[n] = mx
        for k in range(K):
            t[n, k] = l[n, k] - mx


@_jit
def categorical_grad(l, labels, p, m, scale, dl, ll):
    """p = exp(l - m) on entry.  ll_n = l_{n y} - m_n - log sum_k p_nk (the log is
    taken by the caller on the returned row sums, left in ll as the sum);
    dl = scale (onehot - p / sum_k p).  On exit ll_n = sum_k p_nk and m_n = l_{n y} - m_n."""
    M, K = l.shape
    for n in range(M):
        s = _ZERO
        for k in range(K):
            s += p[n, k]
        inv = _ONE / s
        y = labels[n]
        for k in range(K):
            dl[n, k] = -scale * (p[n, k] * inv)
        dl[n, y] += scale
        m[n] = l[n, y] - m[n]
        ll[n] = s


# --------------------------------------------------------------------------
# reparameterised Gaussian latent and its KL to N(0, s^2 I) or to N(mu_p, diag var_p)
# --------------------------------------------------------------------------
@_jit
def reparameterize(mu, std, eps, z):
    """z_r = mu + std eps_r.  mu, std (N, L); eps, z (R, N, L)."""
    R, N, L = eps.shape
    for r in range(R):
        for n in range(N):
            for j in range(L):
                z[r, n, j] = mu[n, j] + std[n, j] * eps[r, n, j]


@_jit
def reparameterize_backward(dz, eps, std, dmu, dlog_var):
    """dmu = sum_r dz_r; dlog_var = 1/2 std sum_r dz_r eps_r."""
    R, N, L = dz.shape
    for n in range(N):
        for j in range(L):
            a = _ZERO
            c = _ZERO
            for r in range(R):
                a += dz[r, n, j]
                c += dz[r, n, j] * eps[r, n, j]
            dmu[n, j] = a
            dlog_var[n, j] = _HALF * std[n, j] * c


@_jit_rows
def kl_std_normal(mu, log_var, std, inv_s2, log_s2, scale, kl, dmu, dlog_var):
    """kl_n = 1/2 sum_l [(std^2 + mu^2)/s^2 - 1 - log_var + log s^2];
    dmu += scale mu / s^2; dlog_var += scale 1/2 (std^2 / s^2 - 1)."""
    N, L = mu.shape
    for n in range(N):
        acc = 0.0
        for j in range(L):
            m = mu[n, j]
            lv = log_var[n, j]
            var = std[n, j] * std[n, j]
            acc += (var + m * m) * inv_s2 - _ONE - lv + log_s2
            dmu[n, j] += scale * (m * inv_s2)
            dlog_var[n, j] += scale * (_HALF * (var * inv_s2 - _ONE))
        kl[n] = _HALF * acc


@_jit_rows
def kl_normal(mu, log_var, std, mu_p, log_var_p, inv_var_p, scale, kl, dmu, dlog_var, dmu_p,
              dlog_var_p):
    """KL(N(mu, std^2) || N(mu_p, exp(log_var_p))) with inv_var_p = exp(-log_var_p):
    kl_n = 1/2 sum_l [log_var_p - log_var + (std^2 + (mu - mu_p)^2) inv_var_p - 1];
    dmu += scale (mu - mu_p) inv_var_p; dlog_var += scale 1/2 (std^2 inv_var_p - 1);
    dmu_p = -scale (mu - mu_p) inv_var_p;
    dlog_var_p = scale 1/2 (1 - (std^2 + (mu - mu_p)^2) inv_var_p)."""
    N, L = mu.shape
    for n in range(N):
        acc = 0.0
        for j in range(L):
            d = mu[n, j] - mu_p[n, j]
            ip = inv_var_p[n, j]
            r = std[n, j] * std[n, j] * ip
            sq = d * d * ip
            acc += log_var_p[n, j] - log_var[n, j] + r + sq - _ONE
            g = scale * (d * ip)
            dmu[n, j] += g
            dmu_p[n, j] = -g
            dlog_var[n, j] += scale * (_HALF * (r - _ONE))
            dlog_var_p[n, j] = scale * (_HALF * (_ONE - r - sq))
        kl[n] = _HALF * acc


# --------------------------------------------------------------------------
# reductions without NumPy's ufunc buffers
# --------------------------------------------------------------------------
@_jit
def col_sum(a, out):
    """out_j = sum_n a_nj.  a (N, H), out (H,)."""
    N, H = a.shape
    for j in range(H):
        out[j] = _ZERO
    for n in range(N):
        for j in range(H):
            out[j] += a[n, j]


@_jit_rows
def row_sum_into(a, out, sign):
    """out_n += sign sum_j a_nj.  a (M, D), out (M,)."""
    M, D = a.shape
    for n in range(M):
        acc = 0.0
        for j in range(D):
            acc += a[n, j]
        out[n] += sign * acc


@_jit
def scale_copy(a, c, out):
    """out = c a (a may be a strided view; out contiguous)."""
    N, L = a.shape
    for n in range(N):
        for j in range(L):
            out[n, j] = c * a[n, j]
