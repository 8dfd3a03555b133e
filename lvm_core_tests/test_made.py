"""MADE: finite differences through loss_and_grads (the training path), a PyTorch
autograd oracle with the same weights and masks, exact normalisation of every
mask and of the ensemble over all 2^D vectors, the autoregressive property for
every ordering and mask, samples against exact probabilities (chi-square), the
ensemble as logsumexp - log M (not averaged logits), the backend matrix,
save/load, errors and the example's --quick run.
"""
from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core import io as lvm_io
from lvm_core.backend import to_numpy
from lvm_core.gradcheck import GradientCheckError, check_grads_resolvable, relative_error
from lvm_core.models.made import MADE, made_degrees, made_masks

from .conftest import require

ROOT = Path(__file__).resolve().parents[1]


def all_binary(D):
    return np.array(list(itertools.product([0.0, 1.0], repeat=D)))  # (2^D, D)


def random_model(D, hidden, n_masks, ordering, seed, activation="relu", dtype="float64",
                 scale=1.0, direct=False):
    model = MADE(D, hidden=hidden, n_masks=n_masks, ordering=ordering, activation=activation,
                 direct=direct, dtype=dtype, random_state=seed)
    model.initialize()
    rng = np.random.default_rng(seed + 1)
    for k, v in model.params.items():  # larger weights than the init: sharper conditionals
        model.params[k] = (scale * rng.standard_normal(v.shape)).astype(v.dtype)
    return model


dims = st.integers(min_value=2, max_value=6)
hiddens = st.lists(st.integers(min_value=2, max_value=7), min_size=1, max_size=3).map(tuple)
seeds = st.integers(min_value=0, max_value=2**31 - 1)


# ---------------------------------------------------------------- finite differences
@settings(max_examples=15)
@given(D=dims, hidden=hiddens, n_masks=st.integers(1, 3), seed=seeds,
       ordering=st.sampled_from(["natural", "random"]),
       activation=st.sampled_from(["tanh", "sigmoid", "softplus", "elu"]),
       N=st.integers(1, 6), direct=st.booleans())
def test_grad_finite_differences(D, hidden, n_masks, seed, ordering, activation, N, direct):
    """Every parameter of loss_and_grads (the training path, fused NumPy ops, workspace),
    float64, each mask: relative error < 1e-6 scaled by max(|analytic|, |numeric|),
    filtered on the numeric gradient only."""
    model = random_model(D, hidden, n_masks, ordering, seed, activation, direct=direct)
    X = (np.random.default_rng(seed).random((N, D)) < 0.5).astype(np.float64)
    for m in range(n_masks):
        loss, grads = model.loss_and_grads(X, mask=m)
        grads = {k: np.array(v) for k, v in grads.items()}  # workspace-owned: copy

        def f(p, m=m):
            return float(model.loss_and_grads(X, params=p, mask=m)[0])

        check_grads_resolvable(f, dict(model.params), grads, float(loss))


def test_zeroed_gradient_is_reported():
    model = random_model(4, (6,), 1, "natural", 3, activation="tanh")
    X = (np.random.default_rng(0).random((5, 4)) < 0.5).astype(float)
    loss, grads = model.loss_and_grads(X)
    grads = {k: np.array(v) for k, v in grads.items()}
    grads["W0"][...] = 0.0
    with pytest.raises(GradientCheckError):
        check_grads_resolvable(lambda p: float(model.loss_and_grads(X, params=p)[0]),
                               dict(model.params), grads, float(loss))


# ---------------------------------------------------------------- PyTorch oracle
@pytest.mark.oracle
@settings(max_examples=8)
@given(D=dims, hidden=hiddens, seed=seeds, ordering=st.sampled_from(["natural", "random"]),
       N=st.integers(1, 6), direct=st.booleans())
def test_matches_torch_autograd(D, hidden, seed, ordering, N, direct):
    """Loss and every gradient equal torch autograd of a masked MLP with the same weights."""
    torch = require("torch")
    model = random_model(D, hidden, 2, ordering, seed, activation="relu", direct=direct)
    X = (np.random.default_rng(seed).random((N, D)) < 0.5).astype(np.float64)
    for m in range(2):
        loss, grads = model.loss_and_grads(X, mask=m)
        masks = made_masks([d[m] for d in model.degrees_])
        names = [f"W{i}" for i in range(len(hidden))] + ["W_out"]
        tp = {k: torch.tensor(np.array(v), requires_grad=True) for k, v in model.params.items()}
        h = torch.tensor(X)
        for i, name in enumerate(names):
            a = h @ (tp[name] * torch.tensor(masks[i])) + tp[name.replace("W", "b")]
            h = torch.relu(a) if i < len(names) - 1 else a
        if direct:
            m0 = model.degrees_[0][m]
            M_d = torch.tensor((m0[:, None] < m0[None, :]).astype(float))
            h = h + torch.tensor(X) @ (tp["W_direct"] * M_d) + tp["b_direct"]
        t_loss = torch.nn.functional.binary_cross_entropy_with_logits(
            h, torch.tensor(X), reduction="sum") / N
        t_loss.backward()
        assert abs(float(loss) - t_loss.item()) < 1e-10 * (1 + abs(float(loss)))
        for k in model.params:
            assert relative_error(grads[k], tp[k].grad.numpy()) < 1e-10, k


# ---------------------------------------------------------------- meaning
@settings(max_examples=10)
@given(D=st.integers(1, 8), hidden=hiddens, n_masks=st.integers(1, 4), seed=seeds,
       ordering=st.sampled_from(["natural", "random"]), direct=st.booleans())
def test_exact_normalisation_every_mask_and_ensemble(D, hidden, n_masks, seed, ordering, direct):
    """sum over all 2^D binary vectors of p_m(x) is 1 for every mask m, and for the ensemble."""
    model = random_model(D, hidden, n_masks, ordering, seed, scale=2.0, direct=direct)
    X = all_binary(D)
    for m in range(n_masks):
        assert abs(np.exp(model.score_samples(X, mask=m)).sum() - 1.0) < 1e-10
    assert abs(np.exp(model.score_samples(X)).sum() - 1.0) < 1e-10


def test_exact_normalisation_d10():
    model = random_model(10, (16, 12), 3, "random", 5, scale=1.5, direct=True)
    X = all_binary(10)
    for m in (None, 0, 1, 2):
        assert abs(np.exp(model.score_samples(X, mask=m)).sum() - 1.0) < 1e-10


@settings(max_examples=10)
@given(D=st.integers(2, 7), hidden=hiddens, n_masks=st.integers(1, 3), seed=seeds,
       ordering=st.sampled_from(["natural", "random"]), direct=st.booleans())
def test_autoregressive_property(D, hidden, n_masks, seed, ordering, direct):
    """For every mask: p(x_d | x_<d) (in the mask's order) never changes when x_j with
    o(j) >= o(d) is flipped, and the logit's finite-difference derivative in x_j is 0."""
    model = random_model(D, hidden, n_masks, ordering, seed, activation="tanh", scale=2.0,
                         direct=direct)
    X = (np.random.default_rng(seed).random((4, D)) < 0.5).astype(float)
    for m in range(n_masks):
        deg = model.degrees_[0][m]
        base = model.log_conditionals(X, mask=m)
        for j in range(D):
            Xf = X.copy()
            Xf[:, j] = 1.0 - Xf[:, j]
            flipped = model.log_conditionals(Xf, mask=m)
            indep = deg <= deg[j]  # d with o(d) <= o(j): must not see x_j
            for d in np.flatnonzero(indep):
                # log p(x_d | .) depends on x_d itself only for d == j
                if d != j:
                    assert np.allclose(base[:, d], flipped[:, d], rtol=0, atol=0)
            logits = model._logits(X, model.params, m)[0]
            Xh = X.copy()
            Xh[:, j] += 1e-6
            dlog = (model._logits(Xh, model.params, m)[0] - logits) / 1e-6
            assert np.all(dlog[:, indep] == 0.0)
        # the first variable of the order has a constant conditional
        first = int(np.argmin(deg))
        assert np.ptp(model._logits(all_binary(D), model.params, m)[0][:, first]) == 0.0


def test_masks_from_degrees():
    """Hidden masks are m^{l-1} <= m^l, the output mask is strict; hidden degrees lie in
    [min m^{l-1}, D - 1]; a random ordering is a permutation."""
    rng = np.random.default_rng(0)
    degrees = made_degrees(rng, 7, [20, 30], ordering="random")
    assert sorted(degrees[0]) == list(range(1, 8))
    for l in (1, 2):
        assert degrees[l].min() >= degrees[l - 1].min() and degrees[l].max() <= 6
    masks = made_masks(degrees)
    assert masks[0].shape == (7, 20) and masks[1].shape == (20, 30) and masks[2].shape == (30, 7)
    np.testing.assert_array_equal(masks[0], degrees[0][:, None] <= degrees[1][None, :])
    np.testing.assert_array_equal(masks[2], degrees[2][:, None] < degrees[0][None, :])
    # the variable of degree 1 gets no connection at all (its conditional is its bias)
    assert masks[2][:, int(np.argmin(degrees[0]))].sum() == 0


def test_ensemble_is_logsumexp_minus_log_m_not_averaged_logits():
    D, M = 5, 4
    model = random_model(D, (12,), M, "random", 11, scale=2.0)
    X = all_binary(D)
    per_mask = np.stack([model.score_samples(X, mask=m) for m in range(M)])  # (M, 2^D)
    expected = np.log(np.mean(np.exp(per_mask), axis=0))
    np.testing.assert_allclose(model.score_samples(X), expected, rtol=1e-12, atol=0)
    # the averaged-logits "ensemble" is a different function, and not even normalised
    logits = np.mean([model._logits(X, model.params, m)[0] for m in range(M)], axis=0)
    avg = np.sum(X * logits - np.logaddexp(0.0, logits), axis=1)
    assert np.max(np.abs(avg - model.score_samples(X))) > 1e-3
    assert abs(np.exp(avg).sum() - 1.0) > 1e-3


@pytest.mark.parametrize("mask", [0, None])
def test_samples_match_exact_probabilities(mask):
    """Chi-square test (fixed seed) of 20,000 ancestral samples of a D = 4 model against
    its exact probabilities (one mask, and the mixture of 3 masks)."""
    stats = require("scipy.stats")
    D = 4
    model = random_model(D, (10,), 3, "random", 2, scale=1.5)
    X = all_binary(D)
    p = np.exp(model.score_samples(X, mask=mask))
    n = 20000
    S = model.sample(n, rng=0, mask=mask)
    codes = (S @ (2 ** np.arange(D - 1, -1, -1))).astype(int)  # row index in all_binary
    counts = np.bincount(codes, minlength=2 ** D)
    _, pvalue = stats.chisquare(counts, n * p)
    assert pvalue > 1e-3, (counts, n * p)


def test_training_lowers_the_nll_and_early_stopping_keeps_the_best():
    rng = np.random.default_rng(0)
    # correlated binary data: x_{d+1} copies x_d with probability 0.9
    N, D = 600, 8
    X = np.zeros((N, D))
    X[:, 0] = rng.random(N) < 0.5
    for d in range(1, D):
        X[:, d] = np.where(rng.random(N) < 0.9, X[:, d - 1], 1 - X[:, d - 1])
    model = MADE(D, hidden=(32,), n_masks=2, random_state=0)
    model.initialize()
    before = -model.score(X[500:])
    model.fit(X[:500], epochs=15, batch_size=50, lr=1e-2, validation_data=X[500:],
              early_stopping_patience=3, random_state=0)
    after = -model.score(X[500:])
    assert after < before - 1.0
    assert abs(after - model.history_.best_val_loss) < 1e-4
    # the true model's entropy: log 2 + 7 H(0.9) = 2.97 nats
    assert after < 3.5


# ---------------------------------------------------------------- backends, io, errors


def _check_against_numpy(backend, model, ref, X, Xb, loss, grads, loss_ref, grads_ref):
    """The model on ``backend`` gives the NumPy float64 reference's loss, gradients
    (same dtype as the parameters) and scores, to the dtype's tolerance."""
    tol = 1e-4 if backend.dtype_name == "float32" else 1e-10
    assert abs(float(to_numpy(loss)) - float(loss_ref)) < tol * (1 + abs(float(loss_ref)))
    for k in grads_ref:
        assert grads[k].dtype == model.params[k].dtype
        assert relative_error(to_numpy(grads[k]), grads_ref[k]) < tol * 10, k
    s = model.score_samples(Xb)
    assert type(s) is type(Xb) and s.dtype == Xb.dtype
    assert relative_error(to_numpy(s), ref.score_samples(X)) < tol

def test_backends(backend):
    """loss, grads, scores and samples on every backend equal NumPy float64's."""
    ref = random_model(5, (8, 6), 2, "random", 4, dtype="float64")
    X = (np.random.default_rng(1).random((7, 5)) < 0.5).astype(np.float64)
    loss_ref, grads_ref = ref.loss_and_grads(X, mask=1)
    grads_ref = {k: np.array(v) for k, v in grads_ref.items()}
    model = MADE(5, hidden=(8, 6), n_masks=2, ordering="random", dtype=backend.dtype_name,
                 random_state=4)
    model.degrees_ = ref.degrees_
    model.params = {k: backend.asarray(v) for k, v in ref.params.items()}
    Xb = backend.asarray(X)
    loss, grads = model.loss_and_grads(Xb, mask=1)
    _check_against_numpy(backend, model, ref, X, Xb, loss, grads, loss_ref, grads_ref)
    S = model.sample(3, rng=0)
    assert type(S) is type(Xb) and tuple(S.shape) == (3, 5)


def test_save_load_roundtrip(tmp_path):
    model = random_model(6, (9,), 3, "random", 8)
    path = tmp_path / "made.h5"
    lvm_io.save(model, path)
    loaded = lvm_io.load(path, expected_type=MADE)
    X = all_binary(6)
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    for m in range(3):
        np.testing.assert_array_equal(loaded.score_samples(X, mask=m),
                                      model.score_samples(X, mask=m))


def test_errors():
    with pytest.raises(ValueError, match="ordering"):
        MADE(4, ordering="backwards")
    with pytest.raises(TypeError, match="hidden"):
        MADE(4, hidden=())
    model = MADE(4, hidden=(5,), n_masks=2, random_state=0)
    with pytest.raises(ValueError, match="X must have"):
        model.score_samples(np.zeros((3, 5)))
    with pytest.raises(ValueError, match="binary"):
        model.score_samples(np.full((3, 4), 2.0))
    with pytest.raises(ValueError, match="mask must be an integer"):
        model.score_samples(np.zeros((3, 4)), mask=2)
    X = np.zeros((3, 4))
    X0 = X.copy()
    model.loss_and_grads(X, rng=0)
    np.testing.assert_array_equal(X, X0)  # the caller's array is not modified


def test_rng_picks_one_mask_per_minibatch():
    model = random_model(5, (8,), 4, "random", 1)
    X = (np.random.default_rng(2).random((6, 5)) < 0.5).astype(float)
    per_mask = [float(model.loss_and_grads(X, mask=m)[0]) for m in range(4)]
    rng = np.random.default_rng(0)
    seen = {min(range(4), key=lambda m: abs(per_mask[m] - float(model.loss_and_grads(X, rng)[0])))
            for _ in range(30)}
    assert seen == {0, 1, 2, 3}


@pytest.mark.slow
def test_example_quick(tmp_path):
    require("matplotlib")
    env = dict(os.environ, LVM_CORE_NO_DOWNLOAD="1", LVM_CORE_SYSTEM_DATA_DIRS="",
               XDG_CACHE_HOME=str(tmp_path / "cache"), MPLBACKEND="Agg",
               MPLCONFIGDIR=str(tmp_path / "mpl"), OPENBLAS_NUM_THREADS="1")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / "made_fashion.py"), "--quick",
                           "--out", str(out)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert (out / "made_samples.png").stat().st_size > 2000
    assert "RESULT made_fashion" in proc.stdout
    nll = float(proc.stdout.split("test_nll=")[1].split()[0])
    assert 0 < nll < 784 * math.log(2)


# ---------------------------------------------------------------- per-step mask resampling
def fresh_model(D, hidden, n_masks, ordering, seed, activation="tanh", scale=1.0,
                direct=False, n_valid_masks=None):
    """A float64 model with mask_resampling="per_step" and random weights."""
    model = MADE(D, hidden=hidden, n_masks=n_masks, ordering=ordering, activation=activation,
                 direct=direct, dtype="float64", random_state=seed,
                 mask_resampling="per_step", n_valid_masks=n_valid_masks)
    model.initialize()
    rng = np.random.default_rng(seed + 1)
    for k, v in model.params.items():
        model.params[k] = (scale * rng.standard_normal(v.shape)).astype(v.dtype)
    return model


def fresh_stack(model, seed):
    """The stack of the fresh mask that loss_and_grads(X, rng=seed) trains on."""
    degrees = made_degrees(np.random.default_rng(seed), model.n_features,
                           list(model.hidden), model.ordering)
    return degrees, model._stack_from_degrees(degrees)


def log_p_of_stack(model, X, stack):
    logits = model._logits(X, model.params, stack)[0]
    return np.sum(X * logits - np.logaddexp(0.0, logits), axis=1)


@settings(max_examples=12)
@given(D=dims, hidden=hiddens, seed=seeds, ordering=st.sampled_from(["natural", "random"]),
       activation=st.sampled_from(["tanh", "sigmoid", "softplus", "elu"]),
       N=st.integers(1, 6), direct=st.booleans())
def test_fresh_mask_grad_finite_differences(D, hidden, seed, ordering, activation, N, direct):
    """Every parameter of loss_and_grads with a fresh mask (the per-step training path:
    the mask drawn from ``rng``), float64: relative error < 1e-6 scaled by
    max(|analytic|, |numeric|), filtered on the numeric gradient only."""
    model = fresh_model(D, hidden, 2, ordering, seed, activation, direct=direct)
    X = (np.random.default_rng(seed).random((N, D)) < 0.5).astype(np.float64)
    draw = seed % 1000 + 7  # the same fresh mask at every evaluation
    loss, grads = model.loss_and_grads(X, rng=draw)
    grads = {k: np.array(v) for k, v in grads.items()}

    def f(p):
        return float(model.loss_and_grads(X, rng=draw, params=p)[0])

    check_grads_resolvable(f, dict(model.params), grads, float(loss))


@settings(max_examples=10)
@given(D=st.integers(2, 7), hidden=hiddens, seed=seeds,
       ordering=st.sampled_from(["natural", "random"]), direct=st.booleans())
def test_fresh_mask_normalised_and_autoregressive(D, hidden, seed, ordering, direct):
    """A fresh mask (as training draws it): the training loss is -mean log p under it,
    the probabilities of all 2^D vectors sum to 1, and logit_d does not move when x_j
    with o(j) >= o(d) moves (finite differences)."""
    model = fresh_model(D, hidden, 3, ordering, seed, scale=2.0, direct=direct)
    X = all_binary(D)
    draw = seed % 1000
    degrees, stack = fresh_stack(model, draw)
    log_p = log_p_of_stack(model, X, stack)
    assert abs(np.exp(log_p).sum() - 1.0) < 1e-10
    loss = float(model.loss_and_grads(X, rng=draw)[0])
    assert abs(loss + log_p.mean()) < 1e-10 * (1 + abs(loss))
    deg = degrees[0]
    logits = model._logits(X, model.params, stack)[0]
    for j in range(D):
        Xh = X.copy()
        Xh[:, j] += 1e-6
        dlog = (model._logits(Xh, model.params, stack)[0] - logits) / 1e-6
        assert np.all(dlog[:, deg <= deg[j]] == 0.0)
    # the stored evaluation masks and their ensemble are normalised as well
    for m in (None, 0, 1, 2):
        assert abs(np.exp(model.score_samples(X, mask=m)).sum() - 1.0) < 1e-10


def test_fresh_mask_ensemble_normalised_d10():
    """The ensemble of the stored evaluation masks of a per-step model, D = 10."""
    model = fresh_model(10, (16, 12), 5, "random", 3, scale=1.5, direct=True)
    X = all_binary(10)
    assert abs(np.exp(model.score_samples(X)).sum() - 1.0) < 1e-10
    _, stack = fresh_stack(model, 4)
    assert abs(np.exp(log_p_of_stack(model, X, stack)).sum() - 1.0) < 1e-10


@pytest.mark.oracle
def test_fresh_mask_matches_torch_autograd():
    """Loss and gradients of a fresh mask equal torch autograd of the masked MLP."""
    torch = require("torch")
    D, N = 6, 5
    model = fresh_model(D, (7, 5), 2, "random", 12, activation="relu", direct=True)
    X = (np.random.default_rng(0).random((N, D)) < 0.5).astype(np.float64)
    loss, grads = model.loss_and_grads(X, rng=21)
    degrees, _ = fresh_stack(model, 21)
    masks = made_masks(degrees)
    tp = {k: torch.tensor(np.array(v), requires_grad=True) for k, v in model.params.items()}
    h = torch.tensor(X)
    for i, name in enumerate(["W0", "W1", "W_out"]):
        a = h @ (tp[name] * torch.tensor(masks[i])) + tp[name.replace("W", "b")]
        h = torch.relu(a) if i < 2 else a
    m0 = degrees[0]
    h = h + torch.tensor(X) @ (tp["W_direct"] * torch.tensor(
        (m0[:, None] < m0[None, :]).astype(float))) + tp["b_direct"]
    t_loss = torch.nn.functional.binary_cross_entropy_with_logits(
        h, torch.tensor(X), reduction="sum") / N
    t_loss.backward()
    assert abs(float(loss) - t_loss.item()) < 1e-10 * (1 + abs(float(loss)))
    for k in model.params:
        assert relative_error(np.array(grads[k]), tp[k].grad.numpy()) < 1e-10, k


def test_per_step_draws_a_new_mask_every_minibatch():
    """With fixed masks the losses take at most M values; per step, (almost) every call
    trains on another mask."""
    model = fresh_model(6, (10,), 2, "random", 1, direct=True)
    X = (np.random.default_rng(2).random((8, 6)) < 0.5).astype(float)
    rng = np.random.default_rng(0)
    losses = {round(float(model.loss_and_grads(X, rng)[0]), 12) for _ in range(20)}
    assert len(losses) > 10
    model.mask_resampling = "fixed"
    losses = {round(float(model.loss_and_grads(X, rng)[0]), 12) for _ in range(20)}
    assert len(losses) <= 2


def test_per_step_fit_is_deterministic_and_validation_uses_n_valid_masks():
    rng = np.random.default_rng(0)
    X = (rng.random((120, 7)) < 0.3).astype(np.float64)
    fits = []
    for _ in range(2):
        model = MADE(7, hidden=(12,), n_masks=6, ordering="random", direct=True,
                     mask_resampling="per_step", n_valid_masks=3, random_state=0)
        model.fit(X[:100], epochs=3, batch_size=20, lr=1e-2, validation_data=X[100:],
                  random_state=5)
        fits.append(model)
    for k in fits[0].params:
        np.testing.assert_array_equal(fits[0].params[k], fits[1].params[k])
    model = fits[0]
    # validation: the ensemble of the first 3 stored masks; score: all 6
    per_mask = np.stack([model.score_samples(X[100:], mask=m) for m in range(6)])
    ens3 = np.log(np.mean(np.exp(per_mask[:3]), axis=0))
    assert abs(model.validation_loss(X[100:]) + ens3.mean()) < 1e-4
    assert abs(model.history_.val_loss[-1] + ens3.mean()) < 1e-4
    ens6 = np.log(np.mean(np.exp(per_mask), axis=0))
    assert abs(model.score(X[100:]) - ens6.mean()) < 1e-4
    other = MADE(7, hidden=(12,), n_masks=6, ordering="random", direct=True,
                 mask_resampling="per_step", n_valid_masks=3, random_state=0)
    other.fit(X[:100], epochs=3, batch_size=20, lr=1e-2, random_state=6)
    assert not np.array_equal(other.params["W0"], model.params["W0"])


def test_per_step_save_load_roundtrip(tmp_path):
    model = fresh_model(6, (9,), 4, "random", 8, direct=True, n_valid_masks=2)
    path = tmp_path / "made_per_step.h5"
    lvm_io.save(model, path)
    loaded = lvm_io.load(path, expected_type=MADE)
    assert loaded.mask_resampling == "per_step" and loaded.n_valid_masks == 2
    X = all_binary(6)
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    assert loaded.validation_loss(X) == model.validation_loss(X)
    np.testing.assert_array_equal(to_numpy(loaded.loss_and_grads(X, rng=3)[0]),
                                  to_numpy(model.loss_and_grads(X, rng=3)[0]))


def test_per_step_errors():
    with pytest.raises(ValueError, match="mask_resampling"):
        MADE(4, mask_resampling="sometimes")
    with pytest.raises(ValueError, match="n_valid_masks"):
        MADE(4, n_masks=3, n_valid_masks=4)
    with pytest.raises(ValueError, match="n_valid_masks"):
        MADE(4, n_masks=3, n_valid_masks=0)
    model = MADE(4, hidden=(5,), n_masks=2, random_state=0, mask_resampling="per_step")
    with pytest.raises(ValueError, match="mask must be an integer"):
        model.score_samples(np.zeros((3, 4)), mask=2)


def test_per_step_backends(backend):
    """A fresh mask's loss and grads, and the stored masks' scores, on every backend
    equal NumPy float64's."""
    ref = fresh_model(5, (8, 6), 3, "random", 4, direct=True)
    X = (np.random.default_rng(1).random((7, 5)) < 0.5).astype(np.float64)
    loss_ref, grads_ref = ref.loss_and_grads(X, rng=9)
    grads_ref = {k: np.array(v) for k, v in grads_ref.items()}
    model = MADE(5, hidden=(8, 6), n_masks=3, ordering="random", direct=True,
                 activation="tanh", dtype=backend.dtype_name, mask_resampling="per_step",
                 random_state=4)
    model.degrees_ = ref.degrees_
    model.params = {k: backend.asarray(v) for k, v in ref.params.items()}
    Xb = backend.asarray(X)
    loss, grads = model.loss_and_grads(Xb, rng=9)
    _check_against_numpy(backend, model, ref, X, Xb, loss, grads, loss_ref, grads_ref)


def test_per_step_samples_match_exact_probabilities():
    """Ancestral samples of the stored-mask ensemble of a per-step model (D = 4, 3 masks)
    against its exact probabilities: chi-square at a fixed seed."""
    stats = require("scipy.stats")
    D = 4
    model = fresh_model(D, (10,), 3, "random", 2, scale=1.5, direct=True)
    p = np.exp(model.score_samples(all_binary(D)))
    n = 20000
    S = model.sample(n, rng=0)
    codes = (S @ (2 ** np.arange(D - 1, -1, -1))).astype(int)
    counts = np.bincount(codes, minlength=2 ** D)
    _, pvalue = stats.chisquare(counts, n * p)
    assert pvalue > 1e-3, (counts, n * p)
