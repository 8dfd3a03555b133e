"""Gradient tests of every backward in lvm_core.functional against float64
central differences (lvm_core.gradcheck), with shapes, values and seeds drawn
by hypothesis.  Threshold: max-norm relative error < 1e-6.

Every test here is named ``test_grad_*``; test_registry.py checks that each
``*_forward`` (and each loss with gradients) is referenced by one of them.
The largest error seen is printed at the end of the module (run with ``-s``).
"""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import lvm_core.functional as F
from lvm_core.gradcheck import check_gradient

RTOL = 1e-6
MAX_EXAMPLES = 15
_ERRORS = []


@pytest.fixture(scope="module", autouse=True)
def _report_largest_error():
    yield
    if _ERRORS:
        print(f"\n[test_functional_grad] {len(_ERRORS)} gradient checks, largest "
              f"relative error {max(_ERRORS):.3e}")


def check(f, x, grad, name, h=1e-6):
    """check_gradient with the project threshold, recording the error.

    Central differences resolve a gradient only down to ~eps |f| / h (float64
    rounding of f divided by the step), i.e. ~1e-10 (1 + |f|) here.  Examples
    whose whole gradient is below 1e-4 (1 + |f|) -- a saturated tanh or sigmoid,
    |grad| ~ 1e-6 -- cannot be checked to a relative error of 1e-6 and are not
    drawn (hypothesis ``assume``); their values are covered by the oracle and
    meaning tests.
    """
    f0 = float(np.asarray(f(x)))
    assume(float(np.max(np.abs(grad))) > 1e-4 * (1.0 + abs(f0)))
    err = check_gradient(f, x, grad, h=h, rtol=RTOL, name=name)
    _ERRORS.append(err)
    return err


def away_from_zero(x, margin=1e-3):
    """Move entries off kinks at 0 (relu, leaky_relu, elu) by at least ``margin``."""
    return np.where(np.abs(x) < margin, np.where(x < 0, -1.0, 1.0) * (margin + np.abs(x)) * 10, x)


# ------------------------------------------------------------------ strategies
dims = st.integers(min_value=1, max_value=4)
seeds = st.integers(min_value=0, max_value=2**32 - 1)
scales = st.sampled_from([0.1, 1.0, 3.0])


def normal(seed, shape, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------ linear
@settings(max_examples=MAX_EXAMPLES)
@given(N=dims, D_in=dims, D_out=dims, seed=seeds, bias=st.booleans(), scale=scales)
def test_grad_linear(N, D_in, D_out, seed, bias, scale):
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal((N, D_in))
    W = rng.standard_normal((D_in, D_out))
    b = rng.standard_normal(D_out) if bias else None
    w = rng.standard_normal((N, D_out))  # upstream gradient dLoss/dy
    y, cache = F.linear_forward(x, W, b)
    dx, dW, db = F.linear_backward(w, cache)
    check(lambda x_: np.sum(w * F.linear_forward(x_, W, b)[0]), x, dx, "x")
    check(lambda W_: np.sum(w * F.linear_forward(x, W_, b)[0]), W, dW, "W")
    if bias:
        check(lambda b_: np.sum(w * F.linear_forward(x, W, b_)[0]), b, db, "b")
    else:
        assert db is None


# ------------------------------------------------------------------ activations
ACTIVATION_PAIRS = {
    "relu": (F.relu_forward, F.relu_backward, {}),
    "leaky_relu": (F.leaky_relu_forward, F.leaky_relu_backward, {"negative_slope": 0.2}),
    "tanh": (F.tanh_forward, F.tanh_backward, {}),
    "sigmoid": (F.sigmoid_forward, F.sigmoid_backward, {}),
    "softplus": (F.softplus_forward, F.softplus_backward, {}),
    "elu": (F.elu_forward, F.elu_backward, {"alpha": 0.7}),
}


@pytest.mark.parametrize("name", sorted(ACTIVATION_PAIRS))
@settings(max_examples=MAX_EXAMPLES)
@given(N=dims, D=dims, seed=seeds, scale=scales)
def test_grad_activation(name, N, D, seed, scale):
    forward, backward, kwargs = ACTIVATION_PAIRS[name]
    rng = np.random.default_rng(seed)
    x = away_from_zero(scale * rng.standard_normal((N, D)))
    w = rng.standard_normal((N, D))
    y, cache = forward(x, **kwargs)
    dx = backward(w, cache)
    check(lambda x_: np.sum(w * forward(x_, **kwargs)[0]), x, dx, name)


def test_grad_activation_pairs_listed():
    """Every activation pair the module exports is in ACTIVATION_PAIRS above
    (relu_forward, leaky_relu_forward, tanh_forward, sigmoid_forward,
    softplus_forward, elu_forward are all checked by test_grad_activation)."""
    exported = {n[: -len("_forward")] for n in F.activations.__all__ if n.endswith("_forward")}
    assert exported == set(ACTIVATION_PAIRS)


# ------------------------------------------------------------------ likelihoods
@settings(max_examples=MAX_EXAMPLES)
@given(N=dims, D=dims, R=st.sampled_from([None, 2]), seed=seeds,
       scale=st.sampled_from([0.3, 2.0, 8.0]))
def test_grad_bernoulli_log_likelihood(N, D, R, seed, scale):
    """R: an optional leading axis of decoder samples, logits (R, N, D), x (N, D)."""
    rng = np.random.default_rng(seed)
    lead = () if R is None else (R,)
    logits = scale * rng.standard_normal((*lead, N, D))
    x = rng.uniform(size=(N, D))  # grey levels in [0, 1]
    ll, dlogits = F.bernoulli_log_likelihood(logits, x)
    assert ll.shape == (*lead, N)
    check(lambda l_: np.sum(F.bernoulli_log_likelihood(l_, x)[0]), logits, dlogits, "logits")


@settings(max_examples=MAX_EXAMPLES)
@given(N=dims, D=dims, R=st.sampled_from([None, 2]), seed=seeds,
       scale=st.sampled_from([1e-3, 0.2, 0.6, 3.0, 20.0]))
def test_grad_continuous_bernoulli_log_likelihood(N, D, R, seed, scale):
    """Scales cover the Taylor branch (|l| < 1/2), the switch and large |l|."""
    rng = np.random.default_rng(seed)
    lead = () if R is None else (R,)
    logits = scale * rng.standard_normal((*lead, N, D))
    x = rng.uniform(size=(N, D))
    ll, dlogits = F.continuous_bernoulli_log_likelihood(logits, x)
    assert ll.shape == (*lead, N)
    check(lambda l_: np.sum(F.continuous_bernoulli_log_likelihood(l_, x)[0]), logits,
          dlogits, "logits")


@settings(max_examples=MAX_EXAMPLES)
@given(n=st.integers(min_value=1, max_value=8), seed=seeds,
       scale=st.sampled_from([0.3, 0.6, 3.0, 20.0]))
def test_grad_continuous_bernoulli_log_normalizer(n, seed, scale):
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal(n)
    logits[0] = np.sign(logits[0] + 1e-300) * max(abs(logits[0]), 0.3)  # gradient not ~0
    w = rng.standard_normal(n)
    log_C, dlog_C = F.continuous_bernoulli_log_normalizer(logits)
    check(lambda l_: np.sum(w * F.continuous_bernoulli_log_normalizer(l_)[0]), logits,
          w * dlog_C, "logits")


LOG_VAR_SHAPES = st.sampled_from(["full", "row", "scalar"])


def _shape(kind, N, D):
    return {"full": (N, D), "row": (D,), "scalar": ()}[kind]


@settings(max_examples=MAX_EXAMPLES)
@given(N=dims, D=dims, seed=seeds, mu_kind=LOG_VAR_SHAPES, lv_kind=LOG_VAR_SHAPES)
def test_grad_gaussian_log_likelihood(N, D, seed, mu_kind, lv_kind):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((N, D))
    mu = rng.standard_normal(_shape(mu_kind, N, D))
    log_var = 0.5 * rng.standard_normal(_shape(lv_kind, N, D))
    ll, dx, dmu, dlog_var = F.gaussian_log_likelihood(x, mu, log_var)
    assert ll.shape == (N,)
    assert dmu.shape == mu.shape and dlog_var.shape == log_var.shape and dx.shape == x.shape
    f = F.gaussian_log_likelihood
    check(lambda a: np.sum(f(a, mu, log_var)[0]), x, dx, "x")
    check(lambda a: np.sum(f(x, a, log_var)[0]), mu, dmu, "mu")
    check(lambda a: np.sum(f(x, mu, a)[0]), log_var, dlog_var, "log_var")


@settings(max_examples=MAX_EXAMPLES)
@given(N=dims, K=st.integers(min_value=2, max_value=5), seed=seeds, scale=scales)
def test_grad_categorical_log_likelihood(N, K, seed, scale):
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((N, K))
    labels = rng.integers(0, K, size=N)
    ll, dlogits = F.categorical_log_likelihood(logits, labels)
    check(lambda a: np.sum(F.categorical_log_likelihood(a, labels)[0]), logits, dlogits,
          "logits")


# ------------------------------------------------------------------ KL
@settings(max_examples=MAX_EXAMPLES)
@given(N=dims, L=dims, seed=seeds, prior_var=st.sampled_from([1.0, 0.25, 4.0]))
def test_grad_kl_normal_std_normal(N, L, seed, prior_var):
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((N, L))
    log_var = rng.standard_normal((N, L))
    kl, dmu, dlog_var = F.kl_normal_std_normal(mu, log_var, prior_var)
    f = F.kl_normal_std_normal
    check(lambda a: np.sum(f(a, log_var, prior_var)[0]), mu, dmu, "mu")
    check(lambda a: np.sum(f(mu, a, prior_var)[0]), log_var, dlog_var, "log_var")


@settings(max_examples=MAX_EXAMPLES)
@given(N=dims, L=dims, seed=seeds, p_kind=LOG_VAR_SHAPES, lvp_kind=LOG_VAR_SHAPES)
def test_grad_kl_normal_normal(N, L, seed, p_kind, lvp_kind):
    rng = np.random.default_rng(seed)
    mu_q = rng.standard_normal((N, L))
    log_var_q = rng.standard_normal((N, L))
    mu_p = rng.standard_normal(_shape(p_kind, N, L))
    log_var_p = 0.5 * rng.standard_normal(_shape(lvp_kind, N, L))
    out = F.kl_normal_normal(mu_q, log_var_q, mu_p, log_var_p)
    args = [mu_q, log_var_q, mu_p, log_var_p]
    for i, name in enumerate(["mu_q", "log_var_q", "mu_p", "log_var_p"]):
        def f(a, i=i):
            trial = list(args)
            trial[i] = a
            return np.sum(F.kl_normal_normal(*trial)[0])

        assert out[i + 1].shape == args[i].shape
        check(f, args[i], out[i + 1], name)


# ------------------------------------------------------------------ sampling
@settings(max_examples=MAX_EXAMPLES)
@given(N=dims, L=dims, R=st.sampled_from([None, 1, 3]), seed=seeds)
def test_grad_reparameterize(N, L, R, seed):
    rng = np.random.default_rng(seed)
    mu = rng.standard_normal((N, L))
    log_var = rng.standard_normal((N, L))
    eps = rng.standard_normal((N, L) if R is None else (R, N, L))
    w = rng.standard_normal(eps.shape)
    z, cache = F.reparameterize_forward(mu, log_var, eps)
    assert z.shape == eps.shape
    dmu, dlog_var = F.reparameterize_backward(w, cache)
    check(lambda a: np.sum(w * F.reparameterize_forward(a, log_var, eps)[0]), mu, dmu, "mu")
    check(lambda a: np.sum(w * F.reparameterize_forward(mu, a, eps)[0]), log_var, dlog_var,
          "log_var")


@settings(max_examples=MAX_EXAMPLES)
@given(N=dims, K=st.integers(min_value=2, max_value=5), R=st.sampled_from([None, 2]),
       seed=seeds, temperature=st.sampled_from([0.5, 1.0, 2.5]))
def test_grad_gumbel_softmax(N, K, R, seed, temperature):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((N, K))
    g = -np.log(-np.log(rng.uniform(0.05, 0.95, size=(N, K) if R is None else (R, N, K))))
    w = rng.standard_normal(g.shape)
    y, cache = F.gumbel_softmax_forward(logits, g, temperature)
    dlogits = F.gumbel_softmax_backward(w, cache)
    check(lambda a: np.sum(w * F.gumbel_softmax_forward(a, g, temperature)[0]), logits,
          dlogits, "logits")


# ------------------------------------------------------------------ reductions
@settings(max_examples=MAX_EXAMPLES)
@given(N=dims, K=dims, axis=st.sampled_from([-1, 0, 1]), seed=seeds, scale=scales)
def test_grad_logsumexp(N, K, axis, seed, scale):
    rng = np.random.default_rng(seed)
    x = scale * rng.standard_normal((N, K))
    y, cache = F.logsumexp_forward(x, axis=axis)
    w = rng.standard_normal(y.shape)
    dx = F.logsumexp_backward(w, cache)
    check(lambda a: np.sum(w * F.logsumexp_forward(a, axis=axis)[0]), x, dx, "x")
