"""Tests of lvm_core.train.fit_minibatch with small toy models defined here.

The toys implement the model protocol (``params``, ``loss_and_grads``,
optionally ``validation_loss``; optionally ``grads_out``) with hand-written gradients:
least-squares linear regression (whose minimiser is known in closed form), a
parameter that climbs at a known rate (hand-computed early stopping), a row
recorder (shuffling) and an MLP regressor built on :class:`lvm_core.nn.MLP`.
"""
from __future__ import annotations

import io as pyio
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lvm_core import io as lvm_io
from lvm_core.backend import get_namespace, item, to_numpy
from lvm_core.random import normal
from lvm_core.train import History, NonFiniteLossError, fit_minibatch

from .conftest import require


# ---------------------------------------------------------------------------
# toy models
# ---------------------------------------------------------------------------
class LinearRegression:
    """Data rows [x (D), y]; loss = 1/(2N) sum_n (x_n w + b - y_n)^2.

    dw = X^T r / N, db = sum(r) / N with r = X w + b - y.  With ``noise`` > 0
    the inputs are jittered x + noise * eps, eps ~ N(0, I) drawn from ``rng``
    (so the loop's generator matters).  ``record=True`` keeps a copy of the
    params seen by every call.

    ``fail_above=t`` adds a parameter "clock" with gradient -1 (so it grows by
    lr per step under SGD or Adam) and makes the model break, deterministically,
    once clock > t: its loss becomes NaN (``fail="loss"``) or its gradient of w
    becomes inf with a finite loss (``fail="grads"``).
    """

    def __init__(self, n_features=3, noise=0.0, init=0.1, like=None, dtype="float64",
                 fail_above=None, fail="loss", record=False):
        xp = get_namespace(like)
        dev = None if like is None else like.device
        dt = getattr(xp, dtype)
        self.params = {
            "w": xp.asarray(np.linspace(-init, init, n_features), dtype=dt, device=dev),
            "b": xp.asarray([init], dtype=dt, device=dev),
        }
        if fail_above is not None:
            self.params["clock"] = xp.zeros(1, dtype=dt, device=dev)
        self.noise = noise
        self.fail_above = fail_above
        self.fail = fail
        self.record = record
        self.calls = 0
        self.seen = []

    def _broken(self):
        return self.fail_above is not None and float(self.params["clock"][0]) > self.fail_above

    def _residual(self, X):
        xp = get_namespace(X)
        D = self.params["w"].shape[0]
        x, y = X[:, :D], X[:, D]
        return x, xp.matmul(x, self.params["w"]) + self.params["b"] - y  # (N,)

    def loss_and_grads(self, X, rng):
        xp = get_namespace(X)
        self.calls += 1
        if self.record:
            self.seen.append({k: np.array(to_numpy(v), copy=True) for k, v in self.params.items()})
        if self.noise:
            X = X + self.noise * normal(rng, tuple(X.shape), like=X)
        x, r = self._residual(X)
        N = X.shape[0]
        loss = xp.sum(r * r) / (2 * N)
        grads = {"w": xp.matmul(x.T, r) / N, "b": xp.reshape(xp.sum(r), (1,)) / N}
        if self.fail_above is not None:
            grads["clock"] = -xp.ones_like(self.params["clock"])
            if self._broken() and self.fail == "loss":
                loss = loss * float("nan")
                grads = {k: g * float("nan") for k, g in grads.items()}
            elif self._broken() and self.fail == "grads":
                grads["w"] = grads["w"] * float("inf")
            elif self._broken() and self.fail == "overflow":  # finite, but the step overflows
                grads["clock"] = -np.finfo(np.float64).max * xp.ones_like(self.params["clock"])
        return loss, grads

    def validation_loss(self, X):
        xp = get_namespace(X)
        _, r = self._residual(X)
        return item(xp.sum(r * r)) / (2 * X.shape[0])


class BufferedLinearRegression(LinearRegression):
    """The grads_out protocol: gradients written into the loop's buffers, data checks
    skipped (check_input=False); records the buffers it was given.  A leftover
    ``train_step`` must never be called by the loop (there is no side door)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.buffers = []
        self.check_input = []

    def loss_and_grads(self, X, rng, grads_out=None, check_input=True):
        loss, grads = super().loss_and_grads(X, rng)
        self.check_input.append(check_input)
        if grads_out is None:
            return loss, grads
        self.buffers.append({k: id(v) for k, v in grads_out.items()})
        for k, g in grads.items():
            grads_out[k][...] = g
        return loss, grads_out

    def train_step(self, *args, **kwargs):  # pragma: no cover - must not be reached
        raise AssertionError("fit_minibatch called train_step")


class Climber:
    """loss = -w, so dloss/dw = -1: plain SGD with lr=1 raises w by exactly 1 per step.

    The validation loss is (w - target)^2, minimised at the epoch closest to
    ``target``: early stopping can be checked by hand.
    """

    def __init__(self, target=2.4):
        self.params = {"w": np.zeros(1)}
        self.target = target

    def loss_and_grads(self, X, rng):
        return -float(self.params["w"][0]), {"w": -np.ones(1)}

    def validation_loss(self, X):
        return float((self.params["w"][0] - self.target) ** 2)


class RowRecorder:
    """Records the first column (row ids) of each batch it sees; learns nothing."""

    def __init__(self):
        self.params = {"w": np.zeros(1)}
        self.batches = []

    def loss_and_grads(self, X, rng):
        self.batches.append(np.array(X[:, 0]))
        return 0.0, {"w": np.zeros(1)}


class MLPRegressor:
    """y_hat = MLP(x) with squared loss 1/(2N) sum (y_hat - y)^2; dy_hat = r / N."""

    def __init__(self, n_features, hidden=8, random_state=0, dtype="float64"):
        from lvm_core.nn import MLP

        self.mlp = MLP([n_features, hidden, 1], activation="tanh", dtype=dtype,
                       random_state=random_state)
        self.params = self.mlp.params
        self.n_features = n_features

    def _forward(self, X):
        D = self.n_features
        y_hat, cache = self.mlp.forward(X[:, :D], self.params)  # (N, 1)
        return y_hat[:, 0] - X[:, D], cache

    def loss_and_grads(self, X, rng):
        r, cache = self._forward(X)
        N = X.shape[0]
        _, grads = self.mlp.backward(r[:, None] / N, cache)
        return float(r @ r) / (2 * N), grads

    def validation_loss(self, X):
        r, _ = self._forward(X)
        return float(r @ r) / (2 * X.shape[0])


def make_data(n=64, d=3, seed=0, dtype=np.float64):
    """Rows [x, y] with y = x w* + 0.3 + 0.1 noise."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, d))
    y = x @ np.array([1.5, -2.0, 0.5])[:d] + 0.3 + 0.1 * rng.standard_normal(n)
    return np.column_stack([x, y]).astype(dtype)


def jitter_targets(X_batch, rng):
    """A transform_batch that draws from the rng and does not touch its input."""
    noise = 0.01 * normal(rng, (X_batch.shape[0], 1), like=X_batch)
    return X_batch + get_namespace(X_batch).concat(
        [0 * X_batch[:, :-1], noise], axis=1)


def frozen(params, grads, state, lr, inplace=False):
    """An optimizer that changes nothing (to read losses at fixed parameters)."""
    return params, state


def _same_bits(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return a.dtype == b.dtype and a.tobytes() == b.tobytes()


# ---------------------------------------------------------------------------
# the loop's meaning
# ---------------------------------------------------------------------------
def test_history_fields_after_a_plain_run():
    X, X_val = make_data(), make_data(n=20, seed=1)
    model = LinearRegression()
    history = fit_minibatch(model, X, epochs=3, batch_size=16, lr=0.05, validation_data=X_val,
                            random_state=0, progress=False)
    assert isinstance(history, History)
    assert len(history.train_loss) == len(history.val_loss) == len(history.seconds_per_epoch) == 3
    assert history.epochs_completed == 3 and not history.stopped_early
    assert history.stop_reason.startswith("max_epochs: completed 3 of 3")
    assert all(s > 0 for s in history.seconds_per_epoch)
    assert history.best_epoch == 1 + int(np.argmin(history.val_loss))
    assert history.best_val_loss == min(history.val_loss)
    assert history.val_loss[-1] == model.validation_loss(X_val)
    assert history.train_loss[-1] < history.train_loss[0]


def test_epoch_loss_is_the_sample_weighted_mean_of_batch_losses():
    X = make_data(n=23)  # batches of 10, 10 and 3 rows
    model = LinearRegression()
    history = fit_minibatch(model, X, epochs=2, batch_size=10, optimizer=frozen,
                            random_state=0, progress=False)
    full = model.validation_loss(X)  # the loss over all rows at the (fixed) params
    np.testing.assert_allclose(history.train_loss, [full, full], rtol=1e-12)


def test_full_batch_gradient_descent_reaches_least_squares_solution():
    X = make_data(n=40)
    design = np.column_stack([X[:, :3], np.ones(40)])
    coef = np.linalg.lstsq(design, X[:, 3], rcond=None)[0]
    model = LinearRegression()
    history = fit_minibatch(model, X, epochs=300, batch_size=40, optimizer="sgd", lr=0.5,
                            random_state=0, progress=False)
    np.testing.assert_allclose(model.params["w"], coef[:3], rtol=0, atol=1e-9)
    np.testing.assert_allclose(model.params["b"], coef[3:], rtol=0, atol=1e-9)
    assert history.train_loss[-1] <= history.train_loss[0]


def test_each_epoch_is_a_permutation_drawn_from_random_state():
    n = 13
    X = np.column_stack([np.arange(n, dtype=np.float64), np.zeros(n)])
    runs = []
    for seed in (0, 0, 1):
        model = RowRecorder()
        fit_minibatch(model, X, epochs=3, batch_size=5, optimizer="sgd", random_state=seed,
                      progress=False)
        assert [len(b) for b in model.batches] == [5, 5, 3] * 3
        epochs = [np.concatenate(model.batches[3 * e:3 * e + 3]) for e in range(3)]
        for order in epochs:
            assert sorted(order.astype(int)) == list(range(n))
        assert not np.array_equal(epochs[0], epochs[1])
        runs.append(epochs)
    assert all(np.array_equal(a, b) for a, b in zip(runs[0], runs[1]))
    assert not np.array_equal(runs[0][0], runs[2][0])
    # the documented shuffle: lvm_core.random.permutation(rng, N) from random_state
    np.testing.assert_array_equal(runs[0][0], np.random.default_rng(0).permutation(n))


@settings(max_examples=20)
@given(n=st.integers(1, 40), batch_size=st.integers(1, 50), seed=st.integers(0, 2**32 - 1))
def test_every_epoch_visits_each_row_once_in_batches_of_batch_size(n, batch_size, seed):
    X = np.column_stack([np.arange(n, dtype=np.float64), np.zeros(n)])
    model = RowRecorder()
    fit_minibatch(model, X, epochs=2, batch_size=batch_size, optimizer="sgd",
                  random_state=seed, progress=False)
    b = min(batch_size, n)
    steps = -(-n // b)
    assert [len(x) for x in model.batches] == ([b] * (steps - 1) + [n - b * (steps - 1)]) * 2
    for e in range(2):
        rows = np.concatenate(model.batches[e * steps:(e + 1) * steps]).astype(int)
        assert sorted(rows) == list(range(n))


@settings(max_examples=15)
@given(n=st.integers(2, 30), batch_size=st.integers(1, 12), seed=st.integers(0, 1000))
def test_epoch_loss_equals_full_data_loss_at_fixed_params(n, batch_size, seed):
    X = make_data(n=n, seed=seed)
    model = LinearRegression(init=0.5)
    history = fit_minibatch(model, X, epochs=1, batch_size=batch_size, optimizer=frozen,
                            random_state=seed, progress=False)
    np.testing.assert_allclose(history.train_loss[0], model.validation_loss(X), rtol=1e-12)


def test_same_random_state_gives_identical_training_with_model_noise():
    X = make_data()
    results = []
    for seed in (0, 0, 7):
        model = LinearRegression(noise=0.5)
        history = fit_minibatch(model, X, epochs=2, batch_size=16, random_state=seed,
                                transform_batch=jitter_targets, progress=False)
        results.append((model.params["w"].copy(), history.train_loss))
    assert _same_bits(results[0][0], results[1][0]) and results[0][1] == results[1][1]
    assert not np.array_equal(results[0][0], results[2][0])


def test_transform_batch_does_not_modify_the_data():
    X = make_data()
    before = X.copy()
    fit_minibatch(LinearRegression(noise=0.1), X, epochs=1, batch_size=8, random_state=0,
                  transform_batch=jitter_targets, progress=False)
    assert np.array_equal(X, before)


def test_named_optimizers_are_the_nn_functions():
    from lvm_core.nn import adam, sgd

    X = make_data(n=16)
    for name, fn, kwargs in (("adam", adam, {"betas": (0.8, 0.99)}),
                             ("sgd", sgd, {"momentum": 0.9})):
        by_name, by_function = LinearRegression(), LinearRegression()
        fit_minibatch(by_name, X, epochs=2, batch_size=4, optimizer=name, lr=0.01,
                      optimizer_kwargs=kwargs, random_state=3, progress=False)
        fit_minibatch(by_function, X, epochs=2, batch_size=4, optimizer=fn, lr=0.01,
                      optimizer_kwargs=kwargs, random_state=3, progress=False)
        for k in by_name.params:
            assert _same_bits(by_name.params[k], by_function.params[k]), (name, k)


def test_clip_norm_bounds_each_sgd_step():
    X = make_data(n=8) * 1000.0  # huge gradients
    model = LinearRegression()
    w0 = {k: v.copy() for k, v in model.params.items()}
    fit_minibatch(model, X, epochs=1, batch_size=8, optimizer="sgd", lr=0.1, clip_norm=1.0,
                  random_state=0, progress=False)
    step = np.sqrt(sum(np.sum((model.params[k] - w0[k]) ** 2) for k in w0))
    np.testing.assert_allclose(step, 0.1 * 1.0, rtol=1e-5)


def test_grads_out_buffers_are_reused_and_match_the_plain_protocol():
    X = make_data()
    buffered, plain = BufferedLinearRegression(noise=0.2), LinearRegression(noise=0.2)
    h_buf = fit_minibatch(buffered, X, epochs=2, batch_size=16, random_state=0, progress=False)
    h_plain = fit_minibatch(plain, X, epochs=2, batch_size=16, random_state=0, progress=False)
    assert len(buffered.buffers) == 8 and all(b == buffered.buffers[0] for b in buffered.buffers)
    assert buffered.check_input == [False] * 8  # the data were validated once, per fit
    assert h_buf.train_loss == h_plain.train_loss
    assert all(_same_bits(buffered.params[k], plain.params[k]) for k in plain.params)


def test_param_groups_train_only_their_parameters_with_their_own_lr():
    X = make_data()
    model = LinearRegression()
    w0, b0 = model.params["w"].copy(), model.params["b"].copy()
    fit_minibatch(model, X, epochs=2, batch_size=16, optimizer="sgd", lr=0.1,
                  param_groups=["w"], random_state=0, progress=False)
    assert not np.array_equal(model.params["w"], w0)
    assert np.array_equal(model.params["b"], b0)  # frozen
    # two groups, one with lr 0: equivalent to training w alone
    a, b = LinearRegression(), LinearRegression()
    fit_minibatch(a, X, epochs=2, batch_size=16, optimizer="adam", lr=0.05,
                  param_groups=["w"], random_state=0, progress=False)
    fit_minibatch(b, X, epochs=2, batch_size=16, optimizer="adam", lr=0.05,
                  param_groups=[{"params": ["w"]}, {"params": ["b"], "lr": 1e-300}],
                  random_state=0, progress=False)
    assert _same_bits(a.params["w"], b.params["w"])
    np.testing.assert_allclose(b.params["b"], b0, rtol=0, atol=1e-290)
    with pytest.raises(ValueError, match="does not have"):
        fit_minibatch(LinearRegression(), X, param_groups=["v"], progress=False)
    with pytest.raises(ValueError, match="more than one group"):
        fit_minibatch(LinearRegression(), X, param_groups=[{"params": ["w"]},
                                                           {"params": ["w", "b"]}],
                      progress=False)


def test_callbacks_see_every_step_and_epoch_and_can_stop():
    X = make_data()

    class Recorder:
        def __init__(self):
            self.steps, self.epochs = [], []

        def on_step(self, info):
            self.steps.append((info.epoch, info.step, info.global_step, float(info.loss)))

        def on_epoch(self, info):
            self.epochs.append((info.epoch, len(info.history.train_loss)))
            return info.epoch == 2

    rec = Recorder()
    history = fit_minibatch(LinearRegression(), X, epochs=5, batch_size=16, random_state=0,
                            progress=False, callbacks=[rec])
    assert [s[:3] for s in rec.steps] == [(e, s, 4 * (e - 1) + s) for e in (1, 2)
                                          for s in range(1, 5)]
    assert rec.epochs == [(1, 1), (2, 2)]
    assert history.stopped_early and history.stop_reason.startswith("callback:")
    with pytest.raises(TypeError, match="on_step"):
        fit_minibatch(LinearRegression(), X, callbacks=[object()], progress=False)


def test_mlp_regressor_trains_and_resumes_exactly(tmp_path):
    X = make_data(n=48)
    model = MLPRegressor(3)
    history = fit_minibatch(model, X, epochs=6, batch_size=12, lr=0.02, random_state=0,
                            progress=False)
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert model.params is model.mlp.params  # updated in place, aliasing kept
    split = MLPRegressor(3)
    fit_minibatch(split, X, epochs=3, batch_size=12, lr=0.02, random_state=0, progress=False,
                  checkpoint=tmp_path / "ck.h5")
    resumed = MLPRegressor(3, random_state=99)
    h2 = fit_minibatch(resumed, X, epochs=6, batch_size=12, lr=0.02, random_state=5,
                       progress=False, checkpoint=tmp_path / "ck.h5", resume=True)
    assert h2.train_loss == history.train_loss
    assert all(_same_bits(resumed.params[k], model.params[k]) for k in model.params)


# ---------------------------------------------------------------------------
# checkpoints and exact resume
# ---------------------------------------------------------------------------
def _resume_run(path, epochs, resume=False, **kwargs):
    X, X_val = make_data(), make_data(n=20, seed=1)
    model = LinearRegression(noise=0.3, init=0.2 if not resume else 0.9)
    history = fit_minibatch(model, X, epochs=epochs, batch_size=10, lr=0.05,
                            validation_data=X_val, early_stopping_patience=50,
                            random_state=0, transform_batch=jitter_targets, progress=False,
                            checkpoint=path, resume=resume, **kwargs)
    return model, history


def test_two_plus_two_epochs_with_resume_equals_four_bit_for_bit(tmp_path):
    full_model, full = _resume_run(tmp_path / "full.h5", 4)
    _resume_run(tmp_path / "split.h5", 2)
    # a fresh model with other initial weights: everything comes from the checkpoint
    resumed_model, resumed = _resume_run(tmp_path / "split.h5", 4, resume=True)
    for k in full_model.params:
        assert _same_bits(resumed_model.params[k], full_model.params[k]), k
    assert resumed.train_loss == full.train_loss and resumed.val_loss == full.val_loss
    assert resumed.epochs_completed == 4 and resumed.best_epoch == full.best_epoch
    assert len(resumed.seconds_per_epoch) == 4
    a = lvm_io.load_state(tmp_path / "full.h5")
    b = lvm_io.load_state(tmp_path / "split.h5")
    for k in a["params"]:  # the training params (not the restored best ones)
        assert _same_bits(a["params"][k], b["params"][k])
        assert _same_bits(a["optimizer_state"]["m"][k], b["optimizer_state"]["m"][k])
        assert _same_bits(a["optimizer_state"]["v"][k], b["optimizer_state"]["v"][k])
    assert a["optimizer_state"]["step"] == b["optimizer_state"]["step"] == 28
    assert a["extra"]["rng_state"] == b["extra"]["rng_state"]


def test_checkpoint_holds_model_optimizer_state_epoch_history_and_rng(tmp_path):
    path = tmp_path / "ck.h5"
    model, history = _resume_run(path, 3, checkpoint_every=2)
    state = lvm_io.load_state(path)
    extra = state["extra"]
    assert extra["epoch"] == 3  # the last epoch is always written
    assert extra["global_step"] == 21
    assert extra["history"]["train_loss"] == history.train_loss
    assert extra["config"]["optimizer"] == "adam" and extra["config"]["batch_size"] == 10
    assert set(state["optimizer_state"]) == {"step", "m", "v"}
    assert set(state["optimizer_state"]["m"]) == set(model.params)
    assert extra["rng_state"]["bit_generator"] == "PCG64"
    assert set(extra["early_stopping"]["best_params"]) == set(model.params)


def test_checkpoint_every_writes_on_schedule(tmp_path, monkeypatch):
    saved_epochs = []
    real_save = lvm_io.save

    def spy(model, path, optimizer_state=None, extra=None):
        saved_epochs.append(extra["epoch"])
        return real_save(model, path, optimizer_state=optimizer_state, extra=extra)

    monkeypatch.setattr(lvm_io, "save", spy)
    _resume_run(tmp_path / "ck.h5", 7, checkpoint_every=3)
    assert saved_epochs == [3, 6, 7]


def test_resume_without_a_checkpoint_file_starts_from_scratch(tmp_path):
    a, ha = _resume_run(tmp_path / "new.h5", 2, resume=True)
    b, hb = _resume_run(tmp_path / "other.h5", 2)
    assert ha.epochs_completed == 2
    assert ha.train_loss != hb.train_loss  # different initial weights (init=0.9 vs 0.2)


def test_resume_of_a_finished_run_trains_no_more(tmp_path):
    model, history = _resume_run(tmp_path / "ck.h5", 2)
    again, h2 = _resume_run(tmp_path / "ck.h5", 2, resume=True)
    assert h2.train_loss == history.train_loss
    assert all(_same_bits(again.params[k], model.params[k]) for k in model.params)


def test_resume_refuses_mismatched_checkpoints(tmp_path):
    X = make_data()
    path = tmp_path / "ck.h5"
    fit_minibatch(LinearRegression(), X, epochs=1, batch_size=10, random_state=0,
                  progress=False, checkpoint=path)
    with pytest.raises(ValueError, match="batch_size=10.*batch_size=8"):
        fit_minibatch(LinearRegression(), X, epochs=2, batch_size=8, checkpoint=path,
                      resume=True, progress=False)
    with pytest.raises(ValueError, match="optimizer 'adam', not 'sgd'"):
        fit_minibatch(LinearRegression(), X, epochs=2, batch_size=10, optimizer="sgd",
                      checkpoint=path, resume=True, progress=False)
    with pytest.raises(ValueError, match="holds a .*LinearRegression.*Climber"):
        fit_minibatch(Climber(), X, epochs=2, batch_size=10, checkpoint=path, resume=True,
                      progress=False)
    plain = tmp_path / "model.h5"
    lvm_io.save(LinearRegression(), plain)
    with pytest.raises(ValueError, match="not a training checkpoint"):
        fit_minibatch(LinearRegression(), X, epochs=2, batch_size=10, checkpoint=plain,
                      resume=True, progress=False)


# ---------------------------------------------------------------------------
# NaN / inf guard
# ---------------------------------------------------------------------------
# The clock grows by lr = 0.05 per step (exactly 0.05 * steps for SGD, to
# within 1e-7 relative for Adam on a constant gradient): with fail_above=0.425
# the params seen by call 10 (clock = 9 * 0.05) are the first to break.
_FAIL_ABOVE = 0.425


def test_nan_loss_raises_naming_epoch_and_step_and_keeps_last_good_params():
    X = make_data()  # 64 rows, batch 10: 7 steps per epoch
    model = LinearRegression(noise=0.2, fail_above=_FAIL_ABOVE, record=True)
    with pytest.raises(FloatingPointError,
                       match=r"epoch 2/3, step 3/7 \(optimizer step 10\)") as info:
        fit_minibatch(model, X, epochs=3, batch_size=10, lr=0.05, random_state=0,
                      progress=False)
    err = info.value
    assert isinstance(err, NonFiniteLossError)
    assert (err.epoch, err.step, err.global_step) == (2, 3, 10)
    assert model.seen[8]["clock"][0] <= _FAIL_ABOVE < model.seen[9]["clock"][0]
    before_bad_step = model.seen[9]  # the (finite) params the 10th call saw: its loss is NaN
    for k in model.params:
        assert _same_bits(model.params[k], before_bad_step[k]), k
    assert err.history.epochs_completed == 1 and len(err.history.train_loss) == 1
    assert err.history.stop_reason.startswith("non_finite: the loss became nan at epoch 2/3")


def test_nan_guard_on_every_backend(backend32):
    X = backend32.asarray(make_data(dtype=np.float32))
    model = LinearRegression(noise=0.2, like=X, dtype="float32", fail_above=_FAIL_ABOVE,
                             record=True)
    with pytest.raises(NonFiniteLossError, match=r"epoch 2/3, step 3/7 \(optimizer step 10\)"):
        fit_minibatch(model, X, epochs=3, batch_size=10, lr=0.05, random_state=0,
                      progress=False)
    for k, v in model.params.items():
        assert type(v) is type(X) and v.dtype == backend32.xp.float32
        assert _same_bits(to_numpy(v), model.seen[9][k]), k


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
def test_non_finite_gradient_with_finite_loss_is_caught_at_its_step():
    X = make_data()
    model = LinearRegression(fail_above=_FAIL_ABOVE, fail="grads", record=True)
    with pytest.raises(NonFiniteLossError,
                       match=r"a gradient became NaN or infinite at epoch 2/2, step 3/7"):
        fit_minibatch(model, X, epochs=2, batch_size=10, optimizer="sgd", lr=0.05,
                      random_state=0, progress=False)
    assert all(_same_bits(model.params[k], model.seen[9][k]) for k in model.params)


def test_nan_with_grads_out_buffers_restores_params_from_before_the_step():
    X = make_data()
    model = BufferedLinearRegression(fail_above=_FAIL_ABOVE, record=True)
    with pytest.raises(NonFiniteLossError, match="epoch 2/2, step 3/7") as info:
        fit_minibatch(model, X, epochs=2, batch_size=10, lr=0.05, random_state=0,
                      progress=False)
    assert info.value.global_step == 10
    assert all(np.isfinite(v).all() for v in model.params.values())
    assert all(_same_bits(model.params[k], model.seen[9][k]) for k in model.params)


def test_nan_parameters_with_finite_losses_are_caught_at_the_end_of_the_epoch():
    X = make_data()

    class Unused(LinearRegression):
        """Once broken, the gradient of a parameter that the loss ignores is NaN."""

        def loss_and_grads(self, X, rng):
            loss, grads = super().loss_and_grads(X, rng)
            grads["unused"] = np.full(1, np.nan if self._broken() else 0.0)
            return loss, grads

    model = Unused(fail_above=_FAIL_ABOVE, fail="unused", record=True)
    model.params["unused"] = np.zeros(1)
    with pytest.raises(NonFiniteLossError,
                       match="a gradient became NaN or infinite at epoch 2/2, step 3/7"):
        fit_minibatch(model, X, epochs=2, batch_size=10, optimizer="sgd", lr=0.05,
                      random_state=0, progress=False)
    assert all(_same_bits(model.params[k], model.seen[9][k]) for k in model.params)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
def test_overflowing_update_with_finite_loss_and_gradients_is_located():
    X = 0.01 * make_data()  # small curvature: lr = 2 is stable for w and b
    model = LinearRegression(fail_above=2.0 * 8.5, fail="overflow", record=True)
    with pytest.raises(NonFiniteLossError,
                       match="the parameters became NaN or infinite at epoch 2/2, step 3/7"):
        fit_minibatch(model, X, epochs=2, batch_size=10, optimizer="sgd", lr=2.0,
                      random_state=0, progress=False)
    assert all(_same_bits(model.params[k], model.seen[9][k]) for k in model.params)


def test_non_finite_validation_loss_keeps_previous_epoch_params():
    X = make_data()
    model = LinearRegression()
    history = fit_minibatch(model, X, epochs=1, batch_size=10, random_state=0, progress=False)
    after_epoch_1 = {k: v.copy() for k, v in model.params.items()}
    X_val = make_data(n=5, seed=3)
    model.validation_loss = lambda X: float("inf") if history.epochs_completed else 0.0
    with pytest.raises(NonFiniteLossError, match="validation loss became inf after epoch 1"):
        fit_minibatch(model, X, epochs=1, batch_size=10, random_state=0, progress=False,
                      validation_data=X_val)
    assert all(_same_bits(model.params[k], after_epoch_1[k]) for k in model.params)


# ---------------------------------------------------------------------------
# early stopping (hand-computed)
# ---------------------------------------------------------------------------
def test_early_stopping_restores_best_params_hand_computed():
    # one SGD step of size 1 per epoch: w = epoch; val = (w - 2.4)^2
    X = np.zeros((4, 1))
    model = Climber(target=2.4)
    w_array = model.params["w"]
    history = fit_minibatch(model, X, epochs=10, batch_size=4, optimizer="sgd", lr=1.0,
                            validation_data=X, early_stopping_patience=2, progress=False)
    assert model.params["w"] is w_array  # restored in place: references stay valid
    np.testing.assert_allclose(history.val_loss, [1.96, 0.16, 0.36, 2.56], rtol=1e-12)
    assert history.stopped_early and history.epochs_completed == 4
    assert history.best_epoch == 2
    assert history.stop_reason.startswith("early_stopping: validation loss did not improve "
                                          "for 2 epoch(s) after epoch 2")
    assert model.params["w"][0] == 2.0  # the best epoch's parameters


def test_without_patience_training_runs_all_epochs_and_keeps_last_params():
    X = np.zeros((4, 1))
    model = Climber(target=2.4)
    history = fit_minibatch(model, X, epochs=5, batch_size=4, optimizer="sgd", lr=1.0,
                            validation_data=X, progress=False)
    assert not history.stopped_early and history.best_epoch == 2
    assert model.params["w"][0] == 5.0


def test_patience_resets_on_improvement_and_best_params_kept_at_max_epochs():
    X = np.zeros((4, 1))
    model = Climber(target=4.0)  # improves every epoch up to 4
    history = fit_minibatch(model, X, epochs=5, batch_size=4, optimizer="sgd", lr=1.0,
                            validation_data=X, early_stopping_patience=2, progress=False)
    assert not history.stopped_early and history.epochs_completed == 5
    assert history.best_epoch == 4 and model.params["w"][0] == 4.0


# ---------------------------------------------------------------------------
# progress output
# ---------------------------------------------------------------------------
def test_progress_is_quiet_when_stderr_is_not_a_terminal(capfd):
    fit_minibatch(LinearRegression(), make_data(), epochs=2, batch_size=16, random_state=0,
                  progress=True)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_progress_bar_on_a_terminal_shows_the_loss(monkeypatch):
    require("tqdm")

    class Terminal(pyio.StringIO):
        def isatty(self):
            return True

    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    history = fit_minibatch(LinearRegression(), make_data(), epochs=2, batch_size=16,
                            random_state=0, progress=True)
    text = screen.getvalue()
    assert "epoch 2/2" in text and f"loss={history.train_loss[-1]:.4g}" in text
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    fit_minibatch(LinearRegression(), make_data(), epochs=1, random_state=0, progress=False)
    assert screen.getvalue() == ""


# ---------------------------------------------------------------------------
# backends
# ---------------------------------------------------------------------------
def test_runs_on_every_backend_and_keeps_dtype_and_device(backend32, tmp_path):
    b = backend32
    X_host = make_data(dtype=np.float32)
    X, X_val = b.asarray(X_host), b.asarray(make_data(n=20, seed=1, dtype=np.float32))
    model = LinearRegression(noise=0.1, like=X, dtype="float32")
    history = fit_minibatch(model, X, epochs=4, batch_size=12, lr=0.05, validation_data=X_val,
                            random_state=0, progress=False, transform_batch=jitter_targets,
                            checkpoint=tmp_path / "ck.h5", checkpoint_every=2)
    for v in model.params.values():
        assert v.dtype == b.xp.float32 and type(v) is type(X)
        if b.device is not None:
            assert v.device == b.device
    assert np.all(np.isfinite(history.train_loss))
    assert history.train_loss[-1] < history.train_loss[0]
    reference = LinearRegression(noise=0.1, dtype="float32")  # NumPy run of the same
    h_ref = fit_minibatch(reference, X_host, epochs=4, batch_size=12, lr=0.05,
                          random_state=0, progress=False, transform_batch=jitter_targets)
    np.testing.assert_allclose(history.train_loss, h_ref.train_loss, rtol=1e-5)
    # exact resume on this backend too: 2 epochs, then resume up to 4
    fit_minibatch(LinearRegression(noise=0.1, like=X, dtype="float32"), X, epochs=2,
                  batch_size=12, lr=0.05, validation_data=X_val, random_state=0,
                  progress=False, transform_batch=jitter_targets, checkpoint=tmp_path / "s.h5")
    resumed = LinearRegression(noise=0.1, like=X, dtype="float32", init=0.7)
    fit_minibatch(resumed, X, epochs=4, batch_size=12, lr=0.05, validation_data=X_val,
                  random_state=0, progress=False, transform_batch=jitter_targets,
                  checkpoint=tmp_path / "s.h5", resume=True)
    for k in model.params:
        assert type(resumed.params[k]) is type(X)
        assert _same_bits(to_numpy(resumed.params[k]), to_numpy(model.params[k]))


# ---------------------------------------------------------------------------
# argument errors
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("kwargs, error, message", [
    ({"lr": 0.0}, ValueError, "lr must be a positive finite number"),
    ({"lr": float("nan")}, ValueError, "lr must be a positive finite number"),
    ({"epochs": 0}, ValueError, "epochs must be an integer >= 1"),
    ({"batch_size": 2.5}, TypeError, "batch_size must be an integer"),
    ({"optimizer": "rmsprop"}, ValueError, "optimizer must be 'adam', 'sgd' or a function"),
    ({"resume": True}, ValueError, "resume=True needs checkpoint"),
    ({"early_stopping_patience": 2}, ValueError, "needs validation_data"),
    ({"clip_norm": -1.0}, ValueError, "clip_norm must be a positive number"),
    ({"optimizer_kwargs": [0.9]}, TypeError, "optimizer_kwargs must be a dict"),
    ({"transform_batch": 3}, TypeError, "transform_batch must be a function"),
])
def test_bad_arguments_raise_clear_errors(kwargs, error, message):
    with pytest.raises(error, match=message):
        fit_minibatch(LinearRegression(), make_data(n=8), progress=False, **kwargs)


def test_bad_models_and_data_raise_clear_errors():
    X = make_data(n=8)
    with pytest.raises(TypeError, match="non-empty dict of arrays `params`"):
        fit_minibatch(object(), X, progress=False)
    with pytest.raises(TypeError, match="has no method validation_loss"):
        fit_minibatch(RowRecorder(), X, validation_data=X, progress=False)
    with pytest.raises(ValueError, match="X contains NaN"):
        fit_minibatch(LinearRegression(), np.full((4, 4), np.nan), progress=False)

    class MissingGrad(LinearRegression):
        def loss_and_grads(self, X, rng):
            loss, grads = super().loss_and_grads(X, rng)
            return loss, {"w": grads["w"]}

    with pytest.raises(ValueError, match=r"grads with the keys of model.params \(\['b', 'w'\]\)"):
        fit_minibatch(MissingGrad(), X, progress=False)


def test_mixed_namespaces_for_validation_data_raise_type_error():
    xp = require("array_api_strict")
    X = make_data(n=8)
    X_val = xp.asarray(X, device=xp.Device("device1"))
    with pytest.raises(TypeError, match="different"):
        fit_minibatch(LinearRegression(), X, validation_data=X_val, progress=False)
