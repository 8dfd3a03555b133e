"""Pieces of gradient estimators for factorised Bernoulli latents.

References: Williams 1992, "Simple statistical gradient-following algorithms"
(REINFORCE, the score-function estimator); Mnih & Gregor 2014, "Neural
variational inference and learning in belief networks" (NVIL: learning signal,
input-dependent baseline, running mean and variance normalisation); Mnih &
Rezende 2016, "Variational inference for Monte Carlo objectives" (VIMCO) and
Kool, van Hoof & Welling 2019, "Buy 4 REINFORCE samples, get a baseline for
free!" (leave-one-out baselines over k samples); Maddison, Mnih & Teh 2017,
"The Concrete distribution" and Jang, Gu & Poole 2017, "Categorical
reparameterization with Gumbel-softmax" (the binary relaxation and its
straight-through variant); Bengio, Leonard & Courville 2013 (straight-through).
Course notes seed 001 (score function vs reparameterisation) and seed 004
(REINFORCE with a baseline).

For q(z|x) = prod_l Bernoulli(z_l; sigmoid(a_l)) with logits a (N, L) and R
draws per row (shapes (R, N, L)), with u ~ U(0, 1) the noise of every draw:

    logistic noise     nu = log u - log(1 - u)
    hard sample        z = 1[a + nu > 0]                          (z ~ q exactly)
    relaxed sample     y = sigmoid((a + nu) / tau)                 (binary Concrete)
                       dy/da = y (1 - y) / tau
    log q(z|x)         sum_l z_l a_l - softplus(a_l)
    score              d log q / da = z - sigmoid(a)
    score-function     grad_phi E_q[f(z)] = E_q[(f(z) - b) grad_phi log q(z|x)]
                       for any baseline b that does not depend on z
    leave-one-out      b_r = 1/(k - 1) sum_{j != r} f_j         (k = R >= 2 draws)
    VIMCO baseline     L_{-r} = log 1/k [sum_{j != r} exp f_j + exp(1/(k-1) sum_{j != r} f_j)]
                       (the bound L = log 1/k sum_j exp f_j with f_r replaced by the
                       mean of the others; Mnih & Rezende 2016, eq. 10)
    running moments    c <- alpha c + (1 - alpha) mean(f), v <- alpha v + (1 - alpha) var(f)
    regression         1/2 sum (f - b)^2, d/db = -(f - b)
    Bernoulli KL       KL(Ber(sigmoid(a)) || Ber(sigmoid(b))) = sum_l q (a - b) - softplus(a)
                       + softplus(b),   dKL/da = q (1 - q) (a - b),  dKL/db = sigmoid(b) - q

Every function is plain array-API code (elementwise work and reductions;
the matmuls of a model run in :mod:`lvm_core.nn`), so it runs unchanged on
NumPy, CuPy and array-api-strict; each returns new arrays and never writes into
its inputs.  Value functions return ``scale`` times the gradient of their
summed value, as in the rest of :mod:`lvm_core.ops`.
"""
from __future__ import annotations

import math

from ..backend import device_of, get_namespace
from ..functional.activations import sigmoid, softplus
from ..functional.reductions import logsumexp

__all__ = ["logistic_noise", "bernoulli_sample", "relaxed_bernoulli",
           "relaxed_bernoulli_backward", "bernoulli_log_prob", "score_function_backward",
           "leave_one_out_baseline", "vimco_baseline", "running_moments", "baseline_regression", "bernoulli_kl"]


def _check_same(name_a, a, name_b, b):
    if a.dtype != b.dtype:
        raise TypeError(
            f"{name_a} has dtype {a.dtype} but {name_b} has {b.dtype}; cast one of them "
            "(float32 models stay float32)."
        )


def _check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
            or not math.isfinite(temperature) or temperature <= 0:
        raise ValueError(
            f"temperature must be a positive finite number; got {temperature!r}. "
            "Pass e.g. 0.5 (smaller: closer to the discrete sample, noisier gradients)."
        )
    return float(temperature)


def _check_draws(name, u, logits):
    """u (R, N, L) for logits (N, L) (or u broadcastable to logits' shape)."""
    if u.ndim < logits.ndim or tuple(u.shape[u.ndim - logits.ndim:]) != tuple(logits.shape):
        raise ValueError(
            f"{name} must have shape (R,) + logits.shape = (R, {', '.join(map(str, logits.shape))})"
            f" or logits.shape; got {tuple(u.shape)}. Draw it as uniform(rng, (R, N, L))."
        )
    _check_same(name, u, "logits", logits)


def logistic_noise(u):
    """nu = log u - log(1 - u), the logistic draw of a uniform u.

    u is clipped into [tiny, 1 - eps/2] of its dtype first, so a draw of exactly
    0 (possible with U[0, 1) generators) gives a finite nu.
    """
    xp = get_namespace(u)
    fi = xp.finfo(u.dtype)
    u = xp.clip(u, min=float(fi.smallest_normal), max=1.0 - float(fi.eps) / 2)
    return xp.log(u) - xp.log1p(-u)


def bernoulli_sample(logits, u):
    """z = 1[a + nu > 0] with nu = logistic_noise(u): a draw of Bernoulli(sigmoid(a)).

    logits (N, L), u (R, N, L) -> z (R, N, L) of 0.0 / 1.0 in logits' dtype.
    (P(a + nu > 0) = P(nu > -a) = sigmoid(a).)
    """
    _check_draws("u", u, logits)
    xp = get_namespace(logits, u)
    return xp.astype((logits + logistic_noise(u)) > 0, logits.dtype)


def relaxed_bernoulli(logits, u, temperature, hard=False):
    """Binary Concrete draw y = sigmoid((a + nu) / tau), nu = logistic_noise(u).

    Maddison et al. 2017, eq. (17)-(18); Jang et al. 2017.  logits (N, L),
    u (R, N, L).  Returns (y, y_soft), each (R, N, L): y = y_soft, or with
    ``hard=True`` the discrete z = 1[a + nu > 0] of the same noise (the forward
    value of the straight-through estimator, whose backward is that of y_soft).
    As tau -> 0, y_soft -> z.
    """
    tau = _check_temperature(temperature)
    _check_draws("u", u, logits)
    xp = get_namespace(logits, u)
    s = logits + logistic_noise(u)
    y_soft = sigmoid(s / tau)
    if hard:
        return xp.astype(s > 0, logits.dtype), y_soft
    return y_soft, y_soft


def relaxed_bernoulli_backward(dy, y_soft, temperature, n_logits_dims=2):
    """dlogits = sum_r dy_r y_soft_r (1 - y_soft_r) / tau.

    dy, y_soft (R, N, L) -> dlogits (N, L) (the draws' axis summed; with
    ``dy`` of the logits' own shape nothing is summed).  The same backward
    serves the straight-through estimator (dy taken at the hard sample).
    """
    tau = _check_temperature(temperature)
    if tuple(dy.shape) != tuple(y_soft.shape):
        raise ValueError(
            f"dy must have the shape of y_soft {tuple(y_soft.shape)}; got {tuple(dy.shape)}."
        )
    _check_same("dy", dy, "y_soft", y_soft)
    xp = get_namespace(dy, y_soft)
    da = dy * (y_soft * (1.0 - y_soft)) / tau
    if da.ndim > n_logits_dims:
        da = xp.sum(da, axis=tuple(range(da.ndim - n_logits_dims)))
    return da


def bernoulli_log_prob(logits, z):
    """log q(z) = sum_l z_l a_l - softplus(a_l) over the last axis.

    logits (N, L), z (R, N, L) or (N, L) -> (R, N) or (N,).  Its gradient is the
    score z - sigmoid(a) (see :func:`score_function_backward`).
    """
    _check_draws("z", z, logits)
    xp = get_namespace(logits, z)
    return xp.sum(z * logits - softplus(logits), axis=-1)


def score_function_backward(signal, z, logits, scale=1.0):
    """d/da of scale sum_{r,n} signal_rn log q(z_rn | a_n) = scale sum_r signal_rn (z_rn - sigmoid(a_n)).

    signal (R, N) (held constant: the learning signal minus its baseline), z
    (R, N, L), logits (N, L) -> dlogits (N, L).  This is the score-function
    (REINFORCE) term of grad_phi E_q[f]; a caller minimising -E_q[f] passes
    ``scale = -1 / (R N)``.
    """
    _check_draws("z", z, logits)
    if z.ndim != 3 or tuple(signal.shape) != tuple(z.shape[:2]):
        raise ValueError(
            f"signal must have shape (R, N) = {tuple(z.shape[:2])} for z of shape "
            f"{tuple(z.shape)}; got {tuple(signal.shape)}."
        )
    xp = get_namespace(signal, z, logits)
    score = z - sigmoid(logits)  # (R, N, L)
    return scale * xp.sum(xp.expand_dims(signal, axis=2) * score, axis=0)


def leave_one_out_baseline(f):
    """b_r = 1/(k - 1) sum_{j != r} f_j over the first axis (k = f.shape[0] >= 2).

    f (k, N) -> b (k, N).  b_r does not depend on draw r, so f_r - b_r is an
    unbiased signal; f_r - b_r = k/(k - 1) (f_r - mean_j f_j).
    """
    if f.ndim < 1 or f.shape[0] < 2:
        raise ValueError(
            "the leave-one-out baseline needs k >= 2 draws along the first axis; got shape "
            f"{tuple(f.shape)}. Use n_samples >= 2."
        )
    xp = get_namespace(f)
    k = f.shape[0]
    return (xp.sum(f, axis=0, keepdims=True) - f) / float(k - 1)


def vimco_baseline(f):
    """L_{-r} = log 1/k [sum_{j != r} exp f_j + exp(mean_{j != r} f_j)] over the first axis.

    f (k, N) log-weights (k >= 2) -> (k, N).  L_{-r} does not depend on draw r,
    so L - L_{-r} (L = logsumexp_j f_j - log k) is an unbiased learning signal
    for draw r (Mnih & Rezende 2016, eq. 10).
    """
    m = leave_one_out_baseline(f)  # (k, N): mean of the others
    xp = get_namespace(f)
    k, N = f.shape[0], f.shape[1]
    eye = xp.eye(k, dtype=f.dtype, device=device_of(f)) > 0.5  # (k, k): row r replaces f_r
    F = xp.where(xp.reshape(eye, (k, k, 1)), xp.reshape(m, (k, 1, N)),
                 xp.reshape(f, (1, k, N)))  # (k, k, N)
    return logsumexp(F, axis=1) - math.log(k)


def running_moments(mean, var, values, decay):
    """Exponential moving mean and variance: (alpha c + (1 - alpha) mean(values),
    alpha v + (1 - alpha) var(values)), alpha = ``decay``.

    ``mean``/``var``: 0-d arrays, or None (not started: the batch's moments
    are returned).  ``values``: any shape, all entries pooled.
    """
    if isinstance(decay, bool) or not isinstance(decay, (int, float)) or not 0 <= decay < 1:
        raise ValueError(f"decay must be a number in [0, 1); got {decay!r}. Pass e.g. 0.9.")
    xp = get_namespace(values)
    m = xp.mean(values)
    v = xp.mean((values - m) ** 2)
    if mean is None or var is None:
        return m, v
    return decay * mean + (1.0 - decay) * m, decay * var + (1.0 - decay) * v


def baseline_regression(target, b, scale=1.0):
    """Squared-error regression of a baseline b on its target (held constant).

    value = scale * 1/2 sum (target - b)^2,  db = -scale (target - b).
    target and b broadcast together; db has b's shape (broadcast axes summed).
    Returns (value as a 0-d array, db).
    """
    xp = get_namespace(target, b)
    e = target - b
    value = 0.5 * scale * xp.sum(e * e)
    db = -scale * e
    while db.ndim > b.ndim:
        db = xp.sum(db, axis=0)
    return value, db


def bernoulli_kl(q_logits, p_logits):
    """KL(prod Ber(sigmoid(a)) || prod Ber(sigmoid(b))) per row and its gradients.

    KL = sum_l q_l (a_l - b_l) - softplus(a_l) + softplus(b_l), q = sigmoid(a);
    dKL/da = q (1 - q) (a - b); dKL/db = sigmoid(b) - q.
    q_logits a (N, L), p_logits b (N, L) or (L,).  Returns (kl (N,), dkl_da (N, L),
    dkl_db (b's shape, rows summed for a shared (L,) prior)).
    """
    _check_same("p_logits", p_logits, "q_logits", q_logits)
    if tuple(p_logits.shape) not in (tuple(q_logits.shape), tuple(q_logits.shape[-1:])):
        raise ValueError(
            f"p_logits must have shape {tuple(q_logits.shape)} or {tuple(q_logits.shape[-1:])} "
            f"(a shared prior); got {tuple(p_logits.shape)}."
        )
    xp = get_namespace(q_logits, p_logits)
    q = sigmoid(q_logits)
    diff = q_logits - p_logits
    kl = xp.sum(q * diff - softplus(q_logits) + softplus(p_logits), axis=-1)
    dkl_da = q * (1.0 - q) * diff
    dkl_db = sigmoid(p_logits) - q
    if p_logits.ndim < q_logits.ndim:
        dkl_db = xp.sum(dkl_db, axis=0)
    return kl, dkl_da, dkl_db
