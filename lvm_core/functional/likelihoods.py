"""Log-likelihoods of decoders/classifiers with the gradients of their sum.

Each function returns the per-example log-likelihood ll (N,) -- the sum over
the last (feature) axis -- and the gradients of sum_n ll_n with respect to its
floating inputs.  Leading axes beyond N (e.g. a sample axis R) are kept: x of
shape (R, N, D) gives ll of shape (R, N).

Bernoulli (Bishop PRML sec. 4.3.2 / 2.1), with l the logits:

    log p(x | l) = sum_d [x log sigmoid(l) + (1 - x) log sigmoid(-l)]
                 = sum_d [x l - softplus(l)],     d/dl = x - sigmoid(l).

Continuous Bernoulli (Loaiza-Ganem & Cunningham 2019), lam = sigmoid(l):

    p(x | lam) = C(lam) lam^x (1 - lam)^(1 - x),  x in [0, 1],
    C(lam)     = 2 artanh(1 - 2 lam) / (1 - 2 lam),   C(1/2) = 2.

With 1 - 2 lam = -tanh(l/2) and 2 artanh(1 - 2 lam) = -l the normaliser is
written in the logit:

    log C(l) = log(l / tanh(l/2)) = log|l| + log1p(e) - log(-expm1(-|l|)),  e = exp(-|l|)
             = log 2 + l^2/12 - 7 l^4/1440 + 31 l^6/90720 - ...      (|l| < 1/2)
    d log C / dl = 1/l - 1/sinh(l) = l/6 - 7 l^3/360 + 31 l^5/15120 - ...
    E[x] = lam/(2 lam - 1) + 1/(2 artanh(1 - 2 lam)) = 1/(1 - exp(-l)) - 1/l
         = 1/2 + l/12 - l^3/720 + ...                               (|l| < 1/2)

(the series are the Bernoulli-number expansions of x coth x and x/(1-e^-x);
note the l^4 coefficient of log C is -7/1440, from log(x coth x) = x^2/3 -
7 x^4/90 + ... at x = l/2; eight terms are used, truncation < 1e-15 relative
for |l| < 1/2); for |l| large log C ~ log|l|.

Diagonal Gaussian (Bishop PRML eq. 2.43 with a diagonal covariance):

    log N(x | mu, diag exp(log_var))
        = -1/2 sum_d [log 2 pi + log_var_d + (x_d - mu_d)^2 exp(-log_var_d)].

Categorical with logits (Bishop PRML sec. 4.3.4):

    log p(y = k | l) = l_k - logsumexp(l),     d/dl = onehot(k) - softmax(l).
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import device_of, get_namespace
from ._common import (as_array_like, broadcast_shape, check_float, check_same_dtype,
                      sum_to_shape)
from .activations import sigmoid, softplus
from .reductions import log_softmax, softmax

__all__ = [
    "bernoulli_log_likelihood",
    "continuous_bernoulli_log_likelihood",
    "continuous_bernoulli_log_normalizer",
    "continuous_bernoulli_mean",
    "gaussian_log_likelihood",
    "categorical_log_likelihood",
]

_LOG_2PI = math.log(2.0 * math.pi)
_LOG_2 = math.log(2.0)
_SERIES_CUTOFF = 0.5  # |l| below this uses the Taylor series

# Taylor coefficients (Bernoulli numbers) in powers of l^2:
# log C(l) - log 2 = sum_n _LOG_C[n] l^(2n+2)
_LOG_C = (1 / 12, -7 / 1440, 31 / 90720, -127 / 4838400, 73 / 34214400,
          -1414477 / 7846046208000, 8191 / 523069747200,
          -16931177 / 12194997534720000)
# d log C / dl = sum_n _DLOG_C[n] l^(2n+1)
_DLOG_C = (1 / 6, -7 / 360, 31 / 15120, -127 / 604800, 73 / 3421440,
           -1414477 / 653837184000, 8191 / 37362124800,
           -16931177 / 762187345920000)
# E[x] - 1/2 = sum_n _MEAN[n] l^(2n+1)
_MEAN = (1 / 12, -1 / 720, 1 / 30240, -1 / 1209600, 1 / 47900160,
         -691 / 1307674368000, 1 / 74724249600)


def _poly(u, coefs):
    """sum_n coefs[n] u^n by Horner's rule (Python float coefficients)."""
    out = coefs[-1] + 0.0 * u
    for c in reversed(coefs[:-1]):
        out = out * u + c
    return out


def _check_x(logits, x, name="x"):
    """Validate ``x`` against ``logits`` and cast it to the logits' dtype."""
    check_float(logits, "logits")
    xp = get_namespace(logits, x)
    if not hasattr(x, "shape"):
        raise TypeError(f"{name} must be an array; got {type(x).__name__}.")
    try:
        shape = tuple(np.broadcast_shapes(tuple(x.shape), tuple(logits.shape)))
    except ValueError:
        shape = None
    if shape != tuple(logits.shape) or logits.ndim < 1:
        raise ValueError(
            f"{name} must have the shape of logits (N, D), or broadcast to it (x (N, D) "
            f"with logits (R, N, D)); got {name} {tuple(x.shape)} and logits "
            f"{tuple(logits.shape)}. Reshape the decoder output to the data's shape."
        )
    if x.dtype != logits.dtype:
        x = xp.astype(x, logits.dtype)
    return xp, x


def bernoulli_log_likelihood(logits, x):
    """Bernoulli log-likelihood with logits: ll_n = sum_d [x l - softplus(l)].

    Shapes: logits (N, D), x (N, D) with values in [0, 1] (grey levels allowed,
    integer/bool data is cast to the logits' dtype); returns ll (N,) and
    dlogits = x - sigmoid(logits) (N, D), the gradient of sum_n ll_n.  With
    R decoder samples, logits (R, N, D) and x (N, D) give ll (R, N).
    Finite for any finite logits (e.g. +-1e4).
    """
    xp, x = _check_x(logits, x)
    ll = xp.sum(x * logits - softplus(logits), axis=-1)
    dlogits = x - sigmoid(logits)
    return ll, dlogits


def continuous_bernoulli_log_normalizer(logits):
    """log C(l) = log(l / tanh(l/2)) and its derivative 1/l - 1/sinh(l).

    Elementwise on logits of any shape.  Stable everywhere: Taylor series for
    |l| < 1/2 (limit log 2 and slope 0 at l = 0), exact exp/log1p forms
    otherwise (log C -> log|l| for |l| large).  Returns ``(log_C, dlog_C_dlogits)``.
    """
    check_float(logits, "logits")
    xp = get_namespace(logits)
    a = xp.abs(logits)
    small = a < _SERIES_CUTOFF
    a_safe = xp.where(small, xp.ones_like(a), a)  # keeps the unused branch finite
    e = xp.exp(-a_safe)
    one_minus_e = -xp.expm1(-a_safe)  # 1 - exp(-|l|) > 0
    log_C_big = xp.log(a_safe) + xp.log1p(e) - xp.log(one_minus_e)
    # 1/sinh(|l|) = 2 e / (1 - e^2); the derivative is odd in l
    d_big = 1.0 / a_safe - 2.0 * e / (one_minus_e * (1.0 + e))
    l2 = logits * logits
    log_C_small = _LOG_2 + l2 * _poly(l2, _LOG_C)
    d_small = logits * _poly(l2, _DLOG_C)
    sign = xp.where(logits < 0, -xp.ones_like(logits), xp.ones_like(logits))
    log_C = xp.where(small, log_C_small, log_C_big)
    dlog_C = xp.where(small, d_small, sign * d_big)
    return log_C, dlog_C


def continuous_bernoulli_log_likelihood(logits, x):
    """Continuous-Bernoulli log-likelihood (Loaiza-Ganem & Cunningham 2019).

    ll_n = sum_d [log C(l) + x l - softplus(l)],
    dlogits = dlog C/dl + x - sigmoid(l).

    Shapes: logits (N, D), x (N, D) in [0, 1]; returns ll (N,), dlogits (N, D)
    (logits (R, N, D) with x (N, D) give ll (R, N), as for the Bernoulli).
    """
    xp, x = _check_x(logits, x)
    log_C, dlog_C = continuous_bernoulli_log_normalizer(logits)
    ll = xp.sum(log_C + x * logits - softplus(logits), axis=-1)
    dlogits = dlog_C + x - sigmoid(logits)
    return ll, dlogits


def continuous_bernoulli_mean(logits):
    """E[x] = lam/(2 lam - 1) + 1/(2 artanh(1 - 2 lam)) = 1/(1 - e^{-l}) - 1/l.

    Elementwise, in (0, 1), equal to 1/2 at l = 0 (Taylor series near 0).
    """
    check_float(logits, "logits")
    xp = get_namespace(logits)
    a = xp.abs(logits)
    small = a < _SERIES_CUTOFF
    l_safe = xp.where(small, xp.ones_like(logits), logits)
    a_safe = xp.abs(l_safe)
    em1 = xp.expm1(-a_safe)  # exp(-|l|) - 1 < 0
    # 1/(1 - e^{-l}) = -1/expm1(-|l|) for l > 0, exp(-|l|)/expm1(-|l|) for l < 0
    first = xp.where(l_safe > 0, -1.0 / em1, xp.exp(-a_safe) / em1)
    mean_big = first - 1.0 / l_safe
    mean_small = 0.5 + logits * _poly(logits * logits, _MEAN)
    return xp.where(small, mean_small, mean_big)


def gaussian_log_likelihood(x, mu, log_var):
    """Diagonal Gaussian log-density and its gradients.

    ll_n = -1/2 sum_d [log 2 pi + log_var + (x - mu)^2 exp(-log_var)]

    dx = -(x - mu) exp(-log_var),  dmu = (x - mu) exp(-log_var),
    dlog_var = -1/2 [1 - (x - mu)^2 exp(-log_var)].

    Shapes: x (N, D); mu and log_var broadcastable against x, e.g. (N, D),
    (D,) or () (a Python float is taken as a 0-d array of x's dtype).
    Returns ll (N,) and dx, dmu, dlog_var, each with the shape of its input
    (summed over broadcast axes), as gradients of sum_n ll_n.
    """
    check_float(x, "x")
    mu = check_float(as_array_like(mu, x, "mu"), "mu")
    log_var = check_float(as_array_like(log_var, x, "log_var"), "log_var")
    check_same_dtype("x", x, "mu", mu)
    check_same_dtype("x", x, "log_var", log_var)
    shape = broadcast_shape((x, "x"), (mu, "mu"), (log_var, "log_var"))
    if len(shape) < 1:
        raise ValueError("x must have at least one (feature) axis; got a 0-d array.")
    xp = get_namespace(x, mu, log_var)
    diff = x - mu
    scale = xp.exp(-0.5 * log_var)  # 1/sigma
    # z = (x - mu)/sigma, exactly 0 where x = mu even when 1/sigma overflows (no 0 * inf)
    exact = diff == 0
    zero = xp.zeros_like(diff)
    z = xp.where(exact, zero, diff * scale)
    sq = z * z  # (N, D)
    ll = -0.5 * xp.sum(_LOG_2PI + log_var + sq, axis=-1)
    dmu_full = xp.where(exact, zero, z * scale)
    dlog_var_full = -0.5 * (1.0 - sq)
    dx = sum_to_shape(-dmu_full, x.shape)
    dmu = sum_to_shape(dmu_full, mu.shape)
    dlog_var = sum_to_shape(dlog_var_full, log_var.shape)
    return ll, dx, dmu, dlog_var


def categorical_log_likelihood(logits, labels):
    """Categorical log-likelihood with logits: ll_n = log softmax(l_n)[y_n].

    Shapes: logits (N, K), labels (N,) integers in [0, K); returns ll (N,) and
    dlogits = onehot(y) - softmax(logits) (N, K).
    """
    check_float(logits, "logits")
    xp = get_namespace(logits, labels)
    if not hasattr(labels, "dtype") or not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(
            f"labels must be an integer array of class indices; got "
            f"{getattr(labels, 'dtype', type(labels).__name__)}. Convert with "
            "xp.astype(labels, xp.int64)."
        )
    if tuple(labels.shape) != tuple(logits.shape[:-1]):
        raise ValueError(
            f"labels must have shape {tuple(logits.shape[:-1])} (logits without the "
            f"class axis); got {tuple(labels.shape)}."
        )
    K = logits.shape[-1]
    if labels.size and bool(xp.any((labels < 0) | (labels >= K))):
        raise ValueError(
            f"labels must lie in [0, {K}) for logits with K = {K} classes; got values "
            f"outside that range. Check the label encoding (0-based)."
        )
    classes = xp.arange(K, device=device_of(logits))
    onehot = xp.expand_dims(labels, axis=-1) == classes  # (N, K) bool
    log_p = log_softmax(logits, axis=-1)
    ll = xp.sum(xp.where(onehot, log_p, xp.zeros_like(log_p)), axis=-1)
    dlogits = xp.astype(onehot, logits.dtype) - softmax(logits, axis=-1)
    return ll, dlogits
