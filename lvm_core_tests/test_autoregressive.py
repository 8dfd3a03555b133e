"""FVSBN, NADE (Bernoulli and categorical) and RNADE: gradients, oracles, meaning.

* every backward against float64 central differences (hypothesis; relative
  error < 1e-6 scaled by max(|analytic|, |numeric|); keys filtered on the
  numeric gradient only, so a wrongly zero gradient fails) and against
  PyTorch autograd on the same weights;
* exact normalisation (all 2^D binary vectors, all K^D categorical ones;
  RNADE by quadrature in one and two dimensions);
* the autoregressive property for every ordering;
* the O(N D) running pre-activation equals a naive O(N D^2) evaluation;
* samples match exact probabilities (chi-square at a fixed seed);
* backends (NumPy, array-api-strict device1; float32, float64), save/load,
  input errors.
"""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core import io as lvm_io
from lvm_core.backend import to_numpy
from lvm_core.gradcheck import numerical_gradient, relative_error
from lvm_core.models.autoregressive import FVSBN, NADE, RNADE

from .conftest import require

KINDS = ["fvsbn", "nade", "nade_categorical", "rnade"]


# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------
def _make(kind, D, H=3, K=3, ordering=None, dtype="float64", seed=0, scale=0.5):
    """A model with perturbed parameters (so that no gradient is trivially small)."""
    if kind == "fvsbn":
        model = FVSBN(D, ordering=ordering, dtype=dtype, random_state=seed)
    elif kind == "nade":
        model = NADE(D, H, ordering=ordering, dtype=dtype, random_state=seed)
    elif kind == "nade_categorical":
        model = NADE(D, H, n_categories=K, ordering=ordering, dtype=dtype, random_state=seed)
    else:
        model = RNADE(D, H, n_components=K, ordering=ordering, dtype=dtype, random_state=seed)
    rng = np.random.default_rng(seed + 1)
    model.params = {k: (v + scale * rng.standard_normal(v.shape)).astype(dtype)
                    for k, v in model.params.items()}
    return model


def _data(kind, rng, N, D, K=3):
    if kind in ("fvsbn", "nade"):
        return rng.integers(0, 2, size=(N, D)).astype(np.float64)
    if kind == "nade_categorical":
        return rng.integers(0, K, size=(N, D))
    return rng.standard_normal((N, D))


def _loss_of(model, X):
    def f(params):
        saved = model.params
        model.params = params
        try:
            return model.loss_and_grads(X)[0]
        finally:
            model.params = saved
    return f


def _check_against_central_differences(model, X, h=1e-6, rtol=1e-6):
    """Every key: relative error < rtol, scaled by max(|analytic|, |numeric|).

    A key whose numeric gradient is below the finite differences' resolution
    (round-off ~1e-16 |f| / h) must have an analytic gradient of the same
    size: the filter looks at the numeric gradient only.
    """
    loss, grads = model.loss_and_grads(X)
    f = _loss_of(model, X)
    floor = 1e-7 * (1.0 + abs(float(to_numpy(loss))))
    errors = {}
    for key, value in model.params.items():
        def f_key(v, key=key):
            trial = dict(model.params)
            trial[key] = v
            return f(trial)

        numeric = numerical_gradient(f_key, value, h=h)
        analytic = np.asarray(to_numpy(grads[key]), dtype=np.float64)
        if numeric.size == 0:
            continue
        if float(np.max(np.abs(numeric))) < floor:
            assert float(np.max(np.abs(analytic))) < 10 * floor, (key, analytic, numeric)
            continue
        errors[key] = relative_error(analytic, numeric)
    assert errors, "no gradient was resolvable"
    for key, err in errors.items():
        assert err < rtol, (key, err, errors)
    return errors


# --------------------------------------------------------------------------
# gradients: central differences
# --------------------------------------------------------------------------
@settings(max_examples=25)
@given(kind=st.sampled_from(KINDS), D=st.integers(1, 5), H=st.integers(1, 4),
       K=st.integers(2, 3), N=st.integers(1, 4), seed=st.integers(0, 2**16))
def test_gradients_match_central_differences(kind, D, H, K, N, seed):
    rng = np.random.default_rng(seed)
    ordering = rng.permutation(D)
    model = _make(kind, D, H, K, ordering=ordering, seed=seed)
    X = _data(kind, rng, N, D, K)
    _check_against_central_differences(model, X)


def test_gradient_check_catches_a_zeroed_gradient(monkeypatch):
    """The check above fails when one gradient is wrongly returned as zeros."""
    model = _make("nade", 4, 3, seed=1)
    X = _data("nade", np.random.default_rng(1), 3, 4)
    original = model._loss_and_grads_ordered

    def broken(X_o):
        loss, grads = original(X_o)
        grads["c"] = grads["c"] * 0.0
        return loss, grads

    monkeypatch.setattr(model, "_loss_and_grads_ordered", broken)
    with pytest.raises(AssertionError):
        _check_against_central_differences(model, X)


def test_gradients_at_benchmark_like_width_sampled():
    """A wider NADE (D = 20, H = 30): directional checks on every parameter."""
    from lvm_core.gradcheck import check_grads

    model = _make("nade", 20, 30, seed=2, scale=0.1)
    X = _data("nade", np.random.default_rng(2), 10, 20)
    _, grads = model.loss_and_grads(X)
    check_grads(_loss_of(model, X), model.params, grads, h=1e-6, rtol=1e-6, max_coords=15)


def test_grads_out_buffers_are_filled():
    model = _make("rnade", 3, 2, 2)
    X = _data("rnade", np.random.default_rng(0), 4, 3)
    loss, grads = model.loss_and_grads(X)
    buffers = {k: np.zeros_like(v) for k, v in model.params.items()}
    loss2, out = model.loss_and_grads(X, grads_out=buffers)
    assert out is buffers and float(loss2) == float(loss)
    for k in grads:
        np.testing.assert_array_equal(buffers[k], grads[k])


# --------------------------------------------------------------------------
# gradients: PyTorch autograd on the same weights
# --------------------------------------------------------------------------
def _torch_log_conditionals(torch, kind, p, X_o, K):
    """Naive O(N D^2) evaluation of log p(x_d | x_<d) in torch, model order, (N, D)."""
    N, D = X_o.shape
    cols = []
    for d in range(D):
        if kind == "fvsbn":
            a = X_o @ torch.tril(p["W"], -1).T + p["b"]
            cols.append(X_o[:, d] * a[:, d] - torch.nn.functional.softplus(a[:, d]))
            continue
        if kind == "nade_categorical":
            onehot = torch.nn.functional.one_hot(X_o[:, :d], K).to(p["W"].dtype)  # (N, d, K)
            a = p["c"] + torch.einsum("ndk,dkh->nh", onehot, p["W"][:d])
        else:
            a = p["c"] + X_o[:, :d] @ p["W"][:d]
        if kind == "rnade":
            a = p["rho"][d] * a  # the learned rescaling of Uria et al. 2013
        h = torch.sigmoid(a)
        if kind == "nade":
            logit = h @ p["V"][d] + p["b"][d]
            cols.append(X_o[:, d] * logit - torch.nn.functional.softplus(logit))
        elif kind == "nade_categorical":
            log_p = torch.log_softmax(h @ p["V"][d] + p["b"][d], dim=-1)
            cols.append(log_p.gather(1, X_o[:, d:d + 1])[:, 0])
        else:
            log_alpha = torch.log_softmax(h @ p["V_alpha"][d] + p["b_alpha"][d], dim=-1)
            mu = h @ p["V_mu"][d] + p["b_mu"][d]
            log_sigma = h @ p["V_log_sigma"][d] + p["b_log_sigma"][d]
            z = (X_o[:, d:d + 1] - mu) / torch.exp(log_sigma)
            terms = log_alpha - 0.5 * z * z - log_sigma - 0.5 * math.log(2 * math.pi)
            cols.append(torch.logsumexp(terms, dim=-1))
    return torch.stack(cols, dim=1)


@pytest.mark.oracle
@pytest.mark.parametrize("kind", KINDS)
def test_loss_and_gradients_match_torch_autograd(kind):
    torch = require("torch")
    rng = np.random.default_rng(5)
    D, H, K, N = 5, 4, 3, 6
    ordering = rng.permutation(D)
    model = _make(kind, D, H, K, ordering=ordering, seed=5)
    X = _data(kind, rng, N, D, K)
    loss, grads = model.loss_and_grads(X)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in model.params.items()}
    X_o = torch.tensor(X[:, ordering])
    t_loss = -_torch_log_conditionals(torch, kind, tp, X_o, K).sum(dim=1).mean()
    t_loss.backward()
    np.testing.assert_allclose(float(loss), t_loss.item(), rtol=1e-12)
    for k in model.params:
        np.testing.assert_allclose(grads[k], tp[k].grad.numpy(), rtol=1e-9, atol=1e-12,
                                   err_msg=k)


# --------------------------------------------------------------------------
# meaning: normalisation, autoregressive property, naive evaluation
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind,D,K", [("fvsbn", 8, 2), ("nade", 10, 2), ("nade", 1, 2),
                                      ("nade_categorical", 4, 3),
                                      ("nade_categorical", 3, 4)])
def test_probabilities_of_all_vectors_sum_to_one(kind, D, K):
    rng = np.random.default_rng(D * 10 + K)
    for trial in range(2):
        model = _make(kind, D, 5, K, ordering=rng.permutation(D), seed=trial, scale=1.0)
        X = np.array(list(itertools.product(range(K), repeat=D)))
        if kind != "nade_categorical":
            X = X.astype(np.float64)
        total = float(np.sum(np.exp(model.score_samples(X))))
        assert abs(total - 1.0) < 1e-10, total


def test_probabilities_sum_to_one_on_every_backend(backend):
    model = _make("nade", 6, 4, seed=3, ordering=[5, 0, 3, 1, 4, 2],
                  dtype=backend.dtype_name)
    X = backend.asarray(np.array(list(itertools.product([0.0, 1.0], repeat=6))))
    model.to(X)
    lp = model.score_samples(X)
    assert lp.dtype == X.dtype and lp.device == X.device
    total = float(np.sum(np.exp(to_numpy(lp).astype(np.float64))))
    assert abs(total - 1.0) < (1e-5 if backend.dtype_name == "float32" else 1e-12)


def _mixture_grid_quadrature(model, lo=-12.0, hi=12.0, n=4001):
    grid = np.linspace(lo, hi, n)
    return grid, grid[1] - grid[0]


def test_rnade_density_integrates_to_one_in_one_dimension():
    model = _make("rnade", 1, 4, 3, seed=7, scale=0.5)
    grid, dx = _mixture_grid_quadrature(model)
    p = np.exp(model.score_samples(grid[:, None]))
    assert abs(np.trapezoid(p, dx=dx) - 1.0) < 1e-8


def test_rnade_density_integrates_to_one_in_two_dimensions():
    for ordering in ([0, 1], [1, 0]):
        model = _make("rnade", 2, 4, 3, ordering=ordering, seed=8, scale=0.4)
        grid = np.linspace(-60.0, 60.0, 1601)  # wide: rho and W spread the conditionals
        dx = grid[1] - grid[0]
        X = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
        p = np.exp(model.score_samples(X)).reshape(1601, 1601)
        total = np.trapezoid(np.trapezoid(p, dx=dx, axis=1), dx=dx)
        assert abs(total - 1.0) < 1e-6, (ordering, total)


@pytest.mark.parametrize("kind", ["fvsbn", "nade", "nade_categorical"])
def test_flipping_later_variables_leaves_earlier_conditionals_unchanged(kind):
    """log p(x_{o_d} | x_{o_<d}) does not depend on x_{o_j}, j >= d (checked for j > d by
    changing x_{o_j}; for j = d the conditional's distribution over the values of
    x_{o_d} is compared), and does depend on some earlier variable."""
    D, K = 5, 3
    rng = np.random.default_rng(11)
    for trial in range(3):
        ordering = rng.permutation(D)
        model = _make(kind, D, 4, K, ordering=ordering, seed=trial, scale=1.0)
        X = _data(kind, rng, 4, D, K)
        values = range(2) if kind != "nade_categorical" else range(K)
        depends_on_earlier = False
        for d in range(D):
            col = ordering[d]
            # the conditional distribution of x_col, value by value
            base = []
            for v in values:
                Xv = X.copy()
                Xv[:, col] = v
                base.append(model.log_conditionals(Xv)[:, col])
            for j in range(D):
                Xj = X.copy()
                Xj[:, ordering[j]] = (X[:, ordering[j]] + 1) % len(values)
                after = []
                for v in values:
                    Xv = Xj.copy()
                    Xv[:, col] = v
                    after.append(model.log_conditionals(Xv)[:, col])
                same = all(np.array_equal(a, b) for a, b in zip(after, base))
                if j >= d:
                    assert same, (kind, ordering, d, j)
                elif not same:
                    depends_on_earlier = True
        assert depends_on_earlier


def test_rnade_conditionals_do_not_depend_on_later_variables():
    """Central differences d log p(x_{o_d} | x_{o_<d}) / d x_{o_j} = 0 for j > d, for
    every ordering of three variables; and != 0 for some j < d."""
    D = 3
    X = np.random.default_rng(12).standard_normal((2, D))
    for ordering in itertools.permutations(range(D)):
        model = _make("rnade", D, 4, 2, ordering=list(ordering), seed=3)
        for d in range(D):
            col = ordering[d]
            for j in range(D):
                def f(x, j=j, col=col):
                    Xp = X.copy()
                    Xp[:, ordering[j]] = x
                    return float(np.sum(model.log_conditionals(Xp)[:, col]))
                g = numerical_gradient(f, X[:, ordering[j]].copy(), h=1e-5)
                if j > d:
                    assert np.all(g == 0.0), (ordering, d, j, g)
                elif j < d:
                    assert np.max(np.abs(g)) > 1e-6, (ordering, d, j, g)


def _naive_nade_log_conditionals(model, X):
    """O(N D^2): a_d = c + sum_{j<d} (x_j W_j | W_{j, x_j}) recomputed from scratch."""
    p = {k: np.asarray(v) for k, v in model.params.items()}
    X_o = X[:, model._order]
    N, D = X_o.shape
    out = np.zeros((N, D))
    for d in range(D):
        if model.n_categories is None:
            a = p["c"] + X_o[:, :d] @ p["W"][:d]
        else:
            a = p["c"] + sum((p["W"][j][X_o[:, j]] for j in range(d)), np.zeros((N, 1)))
        h = 1.0 / (1.0 + np.exp(-a))
        if model.n_categories is None:
            logit = h @ p["V"][d] + p["b"][d]
            out[:, d] = X_o[:, d] * logit - np.logaddexp(0.0, logit)
        else:
            logits = h @ p["V"][d] + p["b"][d]
            log_p = logits - np.logaddexp.reduce(logits, axis=1, keepdims=True)
            out[:, d] = log_p[np.arange(N), X_o[:, d]]
    return out[:, model._inverse_order]


@pytest.mark.parametrize("kind", ["nade", "nade_categorical"])
def test_running_preactivation_equals_naive_evaluation(kind):
    rng = np.random.default_rng(13)
    D, K = 12, 4
    model = _make(kind, D, 7, K, ordering=rng.permutation(D), seed=13, scale=0.3)
    X = _data(kind, rng, 9, D, K)
    np.testing.assert_allclose(model.log_conditionals(X), _naive_nade_log_conditionals(model, X),
                               rtol=1e-12, atol=1e-12)


def test_fvsbn_conditionals_are_logistic_regressions():
    """p(x_{o_d} = 1 | x_{o_<d}) = sigmoid(b_d + sum_{j<d} W_dj x_{o_j}), by hand."""
    model = _make("fvsbn", 3, ordering=[2, 0, 1], seed=4)
    W, b = model.params["W"], model.params["b"]
    x = np.array([[1.0, 0.0, 1.0]])  # x_{o_1} = x_2 = 1, x_{o_2} = x_0 = 1, x_{o_3} = x_1 = 0
    a = [b[0], b[1] + W[1, 0] * 1.0, b[2] + W[2, 0] * 1.0 + W[2, 1] * 1.0]
    expected = math.log(1 / (1 + math.exp(-a[0]))) + math.log(1 / (1 + math.exp(-a[1]))) \
        + math.log(1 - 1 / (1 + math.exp(-a[2])))
    assert abs(float(model.score_samples(x)[0]) - expected) < 1e-12


# --------------------------------------------------------------------------
# samples
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind,D,K", [("fvsbn", 3, 2), ("nade", 3, 2),
                                      ("nade_categorical", 2, 3)])
def test_sample_frequencies_match_exact_probabilities(kind, D, K):
    stats = require("scipy.stats")
    model = _make(kind, D, 4, K, ordering=list(range(D))[::-1], seed=21, scale=1.0)
    X = np.array(list(itertools.product(range(K), repeat=D)))
    probs = np.exp(model.score_samples(X if kind == "nade_categorical" else X * 1.0))
    n = 20000
    S = np.asarray(model.sample(n, rng=0)).astype(np.int64)
    codes = S @ (K ** np.arange(D)[::-1])
    counts = np.bincount(codes, minlength=K ** D)
    result = stats.chisquare(counts, probs * n)
    assert result.pvalue > 1e-3, (counts, probs * n)


def test_rnade_samples_match_the_density():
    """Chi-square on a 6 x 6 grid of cells, probabilities by quadrature."""
    stats = require("scipy.stats")
    model = _make("rnade", 2, 3, 2, ordering=[1, 0], seed=22, scale=0.4)
    n = 20000
    S = np.asarray(model.sample(n, rng=0))
    edges = np.concatenate([[-np.inf], np.quantile(S[:, 0], [1/6, 2/6, 3/6, 4/6, 5/6]), [np.inf]])
    edges_y = np.concatenate([[-np.inf], np.quantile(S[:, 1], [1/6, 2/6, 3/6, 4/6, 5/6]),
                              [np.inf]])
    counts, _, _ = np.histogram2d(S[:, 0], S[:, 1], bins=[edges, edges_y])
    grid = np.linspace(-14.0, 14.0, 1401)
    dx = grid[1] - grid[0]
    G = np.stack(np.meshgrid(grid, grid, indexing="ij"), axis=-1).reshape(-1, 2)
    p = np.exp(model.score_samples(G)) * dx * dx
    cell_x = np.searchsorted(edges, G[:, 0]) - 1
    cell_y = np.searchsorted(edges_y, G[:, 1]) - 1
    expected = np.zeros((6, 6))
    np.add.at(expected, (cell_x, cell_y), p)
    expected *= n / expected.sum()
    result = stats.chisquare(counts.ravel(), expected.ravel(), ddof=10)
    assert result.pvalue > 1e-3, (counts, expected)


# --------------------------------------------------------------------------
# backends, training, save/load, errors
# --------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
def test_loss_and_grads_on_every_backend(kind, backend):
    rng = np.random.default_rng(31)
    D, K = 4, 3
    ordering = rng.permutation(D)
    reference = _make(kind, D, 3, K, ordering=ordering, seed=31)
    X_host = _data(kind, rng, 5, D, K)
    loss64, grads64 = reference.loss_and_grads(X_host)
    model = _make(kind, D, 3, K, ordering=ordering, seed=31, dtype=backend.dtype_name)
    X = backend.asarray(X_host)
    model.to(X)
    loss, grads = model.loss_and_grads(X)
    tol = 2e-5 if backend.dtype_name == "float32" else 1e-12
    assert abs(float(to_numpy(loss)) - float(loss64)) <= tol * (1 + abs(float(loss64)))
    for k, g in grads.items():
        assert g.dtype == model.params[k].dtype and g.device == model.params[k].device
        np.testing.assert_allclose(to_numpy(g), grads64[k], rtol=tol * 50, atol=tol * 50,
                                   err_msg=k)
    samples = model.sample(3, rng=0)
    assert tuple(samples.shape) == (3, D) and samples.device == model.params["W"].device
    lp = model.score_samples(samples)
    assert tuple(lp.shape) == (3,)


@pytest.mark.parametrize("kind", KINDS)
def test_fit_lowers_the_validation_loss_and_stops_early(kind):
    rng = np.random.default_rng(41)
    D, K = 6, 3
    teacher = _make(kind, D, 4, K, seed=41, scale=1.5)
    X = np.asarray(teacher.sample(600, rng=1))
    X_val = np.asarray(teacher.sample(200, rng=2))
    model = _make(kind, D, 4, K, seed=42, scale=0.0, dtype="float32")
    before = model.validation_loss(X_val)
    model.fit(X, epochs=60, batch_size=50, lr=2e-2, validation_data=X_val, patience=3,
              random_state=0)
    assert model.validation_loss(X_val) < before - 0.05
    assert model.history_.best_val_loss == pytest.approx(model.validation_loss(X_val),
                                                         rel=1e-5)
    del rng


def test_fit_with_weight_decay_shrinks_weights_only():
    X = np.random.default_rng(0).integers(0, 2, size=(200, 5)).astype(np.float32)
    plain = FVSBN(5, random_state=0).fit(X, epochs=30, lr=0.05, random_state=0)
    decayed = FVSBN(5, random_state=0).fit(X, epochs=30, lr=0.05, weight_decay=1.0,
                                           random_state=0)
    assert np.sum(decayed.params["W"] ** 2) < np.sum(plain.params["W"] ** 2)


def test_fit_on_simulated_device_float32():
    xp = require("array_api_strict")
    X_host = np.random.default_rng(0).integers(0, 2, size=(60, 4)).astype(np.float32)
    X = xp.asarray(X_host, device=xp.Device("device1"))
    model = NADE(4, 3, random_state=0).to(X)
    model.fit(X, epochs=2, batch_size=20, validation_data=X, random_state=0)
    assert model.params["W"].device == X.device


@pytest.mark.parametrize("kind", KINDS)
def test_save_and_load_round_trip(kind, tmp_path):
    rng = np.random.default_rng(51)
    model = _make(kind, 4, 3, 3, ordering=[3, 1, 0, 2], seed=51)
    X = _data(kind, rng, 5, 4, 3)
    path = tmp_path / "model.h5"
    lvm_io.save(model, path)
    loaded = lvm_io.load(path)
    assert type(loaded) is type(model)
    np.testing.assert_array_equal(loaded.score_samples(X), model.score_samples(X))
    np.testing.assert_array_equal(loaded.sample(4, rng=0), model.sample(4, rng=0))


def test_random_state_zero_is_reproducible():
    a = NADE(5, 3, random_state=0)
    b = NADE(5, 3, random_state=0)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    np.testing.assert_array_equal(a.sample(4, rng=0), b.sample(4, rng=0))


@pytest.mark.parametrize("build,X,word", [
    (lambda: NADE(3, 2), np.array([[0.0, 0.5, 1.0]]), "binary"),
    (lambda: FVSBN(3), np.array([[0.0, 1.0]]), "3 features"),
    (lambda: NADE(3, 2, n_categories=3), np.array([[0, 3, 1]]), "[0, 3)"),
    (lambda: NADE(3, 2, n_categories=3), np.array([[0.0, 1.0, 1.0]]), "integral"),
    (lambda: RNADE(2), np.array([[0.0, np.nan]]), "NaN"),
])
def test_bad_data_is_named(build, X, word):
    with pytest.raises((ValueError, TypeError), match=None) as info:
        build().score_samples(X)
    assert word in str(info.value)


@pytest.mark.parametrize("kwargs,word", [
    ({"ordering": [0, 0, 1]}, "permutation"),
    ({"ordering": [0, 1]}, "permutation"),
    ({"n_hidden": 0}, "n_hidden"),
    ({"n_categories": 1}, "n_categories"),
    ({"dtype": "float16"}, "dtype"),
])
def test_bad_hyperparameters_are_named(kwargs, word):
    with pytest.raises((ValueError, TypeError)) as info:
        NADE(3, **{"n_hidden": 2, **kwargs})
    assert word in str(info.value)


def test_caller_arrays_are_not_modified():
    X = np.random.default_rng(0).integers(0, 2, size=(5, 4)).astype(np.float64)
    X_copy = X.copy()
    model = _make("nade", 4, 3, ordering=[3, 2, 1, 0])
    model.loss_and_grads(X)
    model.score_samples(X)
    np.testing.assert_array_equal(X, X_copy)


# --------------------------------------------------------------------------
# the mixture-of-Gaussians output on its own (including d/dx)
# --------------------------------------------------------------------------
@settings(max_examples=20)
@given(K=st.integers(1, 4), N=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_grad_mog_log_likelihood_matches_central_differences(K, N, seed):
    from lvm_core.models.autoregressive import mog_log_likelihood

    rng = np.random.default_rng(seed)
    inputs = {"x": rng.standard_normal(N), "logits_alpha": rng.standard_normal((N, K)),
              "mu": rng.standard_normal((N, K)), "log_sigma": 0.5 * rng.standard_normal((N, K))}
    weights = rng.standard_normal(N)  # a generic upstream gradient
    ll, d_alpha, d_mu, d_log_sigma, dx = mog_log_likelihood(**inputs)
    analytic = {"x": dx * weights, "logits_alpha": d_alpha * weights[:, None],
                "mu": d_mu * weights[:, None], "log_sigma": d_log_sigma * weights[:, None]}
    for name, value in inputs.items():
        def f(v, name=name):
            return float(np.sum(weights * mog_log_likelihood(**{**inputs, name: v})[0]))
        numeric = numerical_gradient(f, value, h=1e-6)
        assert relative_error(analytic[name], numeric) < 1e-6, name


@pytest.mark.oracle
def test_mog_log_likelihood_matches_torch():
    torch = require("torch")
    from lvm_core.models.autoregressive import mog_log_likelihood

    rng = np.random.default_rng(3)
    x, la, mu, ls = (rng.standard_normal(6), rng.standard_normal((6, 3)),
                     rng.standard_normal((6, 3)), 0.3 * rng.standard_normal((6, 3)))
    ll, d_alpha, d_mu, d_log_sigma, dx = mog_log_likelihood(x, la, mu, ls)
    t = [torch.tensor(a, requires_grad=True) for a in (x, la, mu, ls)]
    mix = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=t[1]),
        torch.distributions.Normal(t[2], torch.exp(t[3])))
    t_ll = mix.log_prob(t[0])
    t_ll.sum().backward()
    np.testing.assert_allclose(ll, t_ll.detach().numpy(), rtol=1e-12)
    for ours, theirs in zip((dx, d_alpha, d_mu, d_log_sigma), t):
        np.testing.assert_allclose(ours, theirs.grad.numpy(), rtol=1e-9, atol=1e-12)
