"""Plain array-API versions of every primitive of :mod:`lvm_core.ops`.

These run on any namespace (NumPy, CuPy, array-api-strict) and allocate
their results; the public functions of :mod:`lvm_core.ops` call them for every
array that is not a C-contiguous NumPy float32/float64 array, and the tests
hold every numba kernel equal to them.  Signatures and equations are those of
the public functions (without ``out=`` / ``ws=``).
"""
from __future__ import annotations

import math

from ..backend import get_namespace
from ..functional.likelihoods import (categorical_log_likelihood,
                                      continuous_bernoulli_log_likelihood)

__all__ = ["ACTIVATIONS", "matmul", "bias_act", "bias_act_backward", "bernoulli_loglik",
           "continuous_bernoulli_loglik", "gaussian_loglik", "categorical_loglik",
           "reparameterize", "reparameterize_backward", "kl_std_normal", "kl_normal", "adam_step",
           "sgd_step", "gru_gates", "gru_gates_backward", "lstm_gates", "lstm_gates_backward"]

# name -> parameter (leaky_relu slope, elu alpha)
ACTIVATIONS = {"identity": None, "relu": None, "leaky_relu": 0.01, "tanh": None,
               "sigmoid": None, "softplus": None, "elu": 1.0}
_LOG_2PI = math.log(2.0 * math.pi)


def matmul(a, b):
    """a @ b."""
    return get_namespace(a, b).matmul(a, b)


def _sigmoid(xp, a):
    e = xp.exp(-xp.abs(a))
    inv = 1.0 / (1.0 + e)
    return xp.where(a >= 0, inv, e * inv)


def bias_act(a, b, activation):
    """y = act(a + b)."""
    xp = get_namespace(a, b)
    v = a + b
    if activation == "identity":
        return v
    if activation == "relu":
        return xp.where(v > 0, v, xp.zeros_like(v))
    if activation == "leaky_relu":
        return xp.where(v > 0, v, ACTIVATIONS["leaky_relu"] * v)
    if activation == "tanh":
        return xp.tanh(v)
    if activation == "sigmoid":
        return _sigmoid(xp, v)
    if activation == "softplus":
        return xp.where(v > 0, v, xp.zeros_like(v)) + xp.log1p(xp.exp(-xp.abs(v)))
    if activation == "elu":
        t = xp.exp(xp.where(v < 0, v, xp.zeros_like(v)))
        return xp.where(v > 0, v, ACTIVATIONS["elu"] * (t - 1.0))
    raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}.")


def bias_act_backward(dy, y, activation):
    """da = dy act'(a) written with y = act(a); db = sum_n da.  Returns (da, db)."""
    xp = get_namespace(dy, y)
    if activation == "identity":
        da = dy
    elif activation == "relu":
        da = xp.where(y > 0, dy, xp.zeros_like(dy))
    elif activation == "leaky_relu":
        da = xp.where(y > 0, dy, ACTIVATIONS["leaky_relu"] * dy)
    elif activation == "tanh":
        da = dy * (1.0 - y * y)
    elif activation == "sigmoid":
        da = dy * (y * (1.0 - y))
    elif activation == "softplus":
        da = -dy * xp.expm1(-y)
    elif activation == "elu":
        da = xp.where(y > 0, dy, dy * (y + ACTIVATIONS["elu"]))
    else:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}.")
    return da, xp.sum(da, axis=0)


def bernoulli_units(a, b):
    """(sigmoid(a + b), sum_j softplus(a_nj + b_j)) for a (N, H), b (H,)."""
    xp = get_namespace(a, b)
    x = a + b
    softplus = xp.where(x > 0, x, 0.0 * x) + xp.log1p(xp.exp(-xp.abs(x)))
    return _sigmoid(xp, x), xp.sum(softplus, axis=1)


def bernoulli_sample(p, u):
    """1[u < p] in p's dtype (u uniform on [0, 1), shaped like p)."""
    xp = get_namespace(p, u)
    return xp.astype(u < p, p.dtype)


def bernoulli_loglik(logits, x, scale=1.0):
    """ll_n = sum_d [x l - softplus(l)];  dlogits = scale (x - sigmoid(l))."""
    xp = get_namespace(logits, x)
    sp = xp.where(logits > 0, logits, xp.zeros_like(logits)) + xp.log1p(xp.exp(-xp.abs(logits)))
    ll = xp.sum(x * logits - sp, axis=-1)
    return ll, scale * (x - _sigmoid(xp, logits))


def continuous_bernoulli_loglik(logits, x, scale=1.0):
    """ll_n = sum_d [log C(l) + x l - softplus(l)];  dlogits = scale d ll / d l."""
    ll, dlogits = continuous_bernoulli_log_likelihood(logits, x)
    return ll, scale * dlogits


def gaussian_loglik(x, mu, log_var, scale=1.0):
    """ll_n = -1/2 sum_d [log 2 pi + log_var + (x - mu)^2 exp(-log_var)].

    ``log_var`` a Python float (fixed variance) or an array shaped like ``mu``.
    Returns (ll, dmu, dlog_var): scale times the gradients of sum_n ll_n; dlog_var
    is None for a float log_var.
    """
    xp = get_namespace(x, mu)
    diff = x - mu
    if isinstance(log_var, float):
        precision = math.exp(-log_var)
        sq = diff * diff * precision
        ll = -0.5 * xp.sum(sq, axis=-1) - 0.5 * x.shape[-1] * (_LOG_2PI + log_var)
        return ll, scale * (diff * precision), None
    precision = xp.exp(-log_var)
    sq = diff * diff * precision
    ll = -0.5 * xp.sum(_LOG_2PI + log_var + sq, axis=-1)
    return ll, scale * (diff * precision), (-0.5 * scale) * (1.0 - sq)


def categorical_loglik(logits, labels, scale=1.0):
    """ll_n = l_{n y_n} - logsumexp_k l_nk;  dlogits = scale (onehot(y) - softmax(l))."""
    ll, dlogits = categorical_log_likelihood(logits, labels)
    return ll, scale * dlogits


def reparameterize(mu, log_var, eps):
    """std = exp(log_var / 2), z_r = mu + std eps_r.  Returns (z (R, N, L), std (N, L))."""
    xp = get_namespace(mu, log_var, eps)
    std = xp.exp(0.5 * log_var)
    return mu + std * eps, std


def reparameterize_backward(dz, eps, std):
    """dmu = sum_r dz_r;  dlog_var = 1/2 std sum_r dz_r eps_r."""
    xp = get_namespace(dz, eps, std)
    return xp.sum(dz, axis=0), 0.5 * std * xp.sum(dz * eps, axis=0)


def kl_std_normal(mu, log_var, std, prior_var=1.0, scale=1.0, dmu=None, dlog_var=None):
    """kl_n = 1/2 sum_l [(std^2 + mu^2)/s^2 - 1 - log_var + log s^2] and
    dmu (+)= scale mu / s^2, dlog_var (+)= scale (std^2 / s^2 - 1) / 2."""
    xp = get_namespace(mu, log_var, std)
    s2 = float(prior_var)
    var = std * std
    kl = 0.5 * xp.sum((var + mu * mu) / s2 - 1.0 - log_var + math.log(s2), axis=-1)
    g_mu = scale * (mu / s2)
    g_lv = scale * (0.5 * (var / s2 - 1.0))
    return kl, (g_mu if dmu is None else dmu + g_mu), (g_lv if dlog_var is None else
                                                      dlog_var + g_lv)


def kl_normal(mu, log_var, std, mu_p, log_var_p, scale=1.0, dmu=None, dlog_var=None):
    """kl_n = 1/2 sum_l [log_var_p - log_var + (std^2 + (mu - mu_p)^2) exp(-log_var_p) - 1];
    dmu (+)= scale (mu - mu_p) exp(-log_var_p), dlog_var (+)= scale (std^2 exp(-log_var_p) - 1)/2,
    dmu_p = -scale (mu - mu_p) exp(-log_var_p),
    dlog_var_p = scale (1 - (std^2 + (mu - mu_p)^2) exp(-log_var_p)) / 2.
    Returns (kl, dmu, dlog_var, dmu_p, dlog_var_p)."""
    xp = get_namespace(mu, log_var, std, mu_p, log_var_p)
    inv_var_p = xp.exp(-log_var_p)
    diff = mu - mu_p
    r = std * std * inv_var_p
    sq = diff * diff * inv_var_p
    kl = 0.5 * xp.sum(log_var_p - log_var + r + sq - 1.0, axis=-1)
    g_mu = scale * (diff * inv_var_p)
    g_lv = scale * (0.5 * (r - 1.0))
    return (kl, (g_mu if dmu is None else dmu + g_mu),
            (g_lv if dlog_var is None else dlog_var + g_lv), -g_mu,
            scale * (0.5 * (1.0 - r - sq)))


def adam_step(theta, g, m, v, lr, beta1, beta2, eps, weight_decay, step):
    """One Adam(W) step (Kingma & Ba 2015; Loshchilov & Hutter 2019); returns new (theta, m, v).

    theta <- theta (1 - lr wd); m <- b1 m + (1 - b1) g; v <- b2 v + (1 - b2) g^2;
    theta <- theta - lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps).
    """
    xp = get_namespace(theta, g, m, v)
    step_size = lr / (1.0 - beta1 ** step)
    sqrt_bc2 = math.sqrt(1.0 - beta2 ** step)
    if weight_decay:
        theta = theta * (1.0 - lr * weight_decay)
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * (g * g)
    return theta - step_size * (m / (xp.sqrt(v) / sqrt_bc2 + eps)), m, v


def sgd_step(theta, g, buf, lr, momentum=0.0, nesterov=False, weight_decay=0.0, dampening=0.0):
    """One SGD step as torch.optim.SGD; ``buf`` None before the first momentum step.

    d = g + wd theta; buf = d (first) or mu buf + (1 - tau) d; d = d + mu buf
    (Nesterov) or buf; theta <- theta - lr d.  Returns new (theta, buf).
    """
    d = g + weight_decay * theta if weight_decay else g
    if momentum:
        buf = d if buf is None else momentum * buf + (1.0 - dampening) * d
        d = d + momentum * buf if nesterov else buf
    return theta - lr * d, buf


# --------------------------------------------------------------------------- recurrent gates
def gru_gates(gx, gh, h_prev):
    """GRU gate block (:func:`lvm_core.ops.recurrent.gru_gates`): (gates [r, z, n], h_new)."""
    xp = get_namespace(gx, gh, h_prev)
    H = h_prev.shape[1]
    rz = _sigmoid(xp, gx[:, :2 * H] + gh[:, :2 * H])
    r, z = rz[:, :H], rz[:, H:]
    n = xp.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    h_new = (1.0 - z) * n + z * h_prev  # exactly h_prev where z = 1
    return xp.concat([rz, n], axis=1), h_new


def gru_gates_backward(dh, h_prev, gates, ghn):
    """Backward of :func:`gru_gates`: (dA_x, dA_h, dh z)."""
    xp = get_namespace(dh, gates)
    H = dh.shape[1]
    r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
    da_n = dh * (1.0 - z) * (1.0 - n * n)
    da_z = dh * (h_prev - n) * z * (1.0 - z)
    da_r = da_n * ghn * r * (1.0 - r)
    return (xp.concat([da_r, da_z, da_n], axis=1), xp.concat([da_r, da_z, r * da_n], axis=1),
            dh * z)


def lstm_gates(a, c_prev):
    """LSTM gate block (:func:`lvm_core.ops.recurrent.lstm_gates`): (gates, c_new, tanh_c, h_new)."""
    xp = get_namespace(a, c_prev)
    H = c_prev.shape[1]
    s_if = _sigmoid(xp, a[:, :2 * H])
    g = xp.tanh(a[:, 2 * H:3 * H])
    o = _sigmoid(xp, a[:, 3 * H:])
    i, f = s_if[:, :H], s_if[:, H:]
    c_new = f * c_prev + i * g  # exactly c_prev where f = 1 and i = 0
    tanh_c = xp.tanh(c_new)
    return xp.concat([s_if, g, o], axis=1), c_new, tanh_c, o * tanh_c


def lstm_gates_backward(dh, dc, c_prev, gates, tanh_c):
    """Backward of :func:`lstm_gates`: (dA, dL/dc_prev)."""
    xp = get_namespace(dh, gates)
    H = dh.shape[1]
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    dc_total = dc + dh * o * (1.0 - tanh_c * tanh_c)
    da_i = dc_total * g * i * (1.0 - i)
    da_f = dc_total * c_prev * f * (1.0 - f)
    da_g = dc_total * i * (1.0 - g * g)
    da_o = dh * tanh_c * o * (1.0 - o)
    return xp.concat([da_i, da_f, da_g, da_o], axis=1), dc_total * f
