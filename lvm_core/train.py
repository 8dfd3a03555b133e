"""The minibatch training loop shared by the gradient models.

Stochastic optimisation of an expected loss (Robbins & Monro 1951): each
epoch draws a fresh permutation of the N samples, cuts it into minibatches
B_1, ..., B_S of at most ``batch_size`` rows and takes one optimizer step per
minibatch on the batch loss

    theta_{s} = update(theta_{s-1}, grad_theta L(theta_{s-1}; X[B_s]), state_s),

with ``update`` one of the optimizer functions of :mod:`lvm_core.nn` (Adam,
Kingma & Ba 2015; SGD with momentum, Polyak 1964 / Sutskever et al. 2013).
The epoch loss reported is the sample-weighted mean of the batch losses,
sum_s |B_s| L_s / N (batch losses are taken to be means over their rows).
Early stopping on a held-out loss follows Prechelt (1998, "Early stopping -
but when?"): stop after ``patience`` epochs without improvement and keep the
best parameters.

Model protocol (duck typing; nothing to inherit):

* ``model.params``: dict of arrays, owned by the loop while it runs (the
  optimizer updates them in place);
* ``model.loss_and_grads(X_batch, rng) -> (loss, grads)``: ``loss`` a float
  or 0-d array (mean over the batch), ``grads`` a dict with the keys and
  shapes of ``params``.  When the method accepts ``grads_out``, the loop
  passes the same dict of gradient buffers at every step (the model writes
  into them: no allocation per step); when it accepts ``check_input``, the
  loop passes ``check_input=False`` (the data were validated once, at the
  start of the fit: nothing reads the data back to the host per step);
* optional ``model.validation_loss(X) -> float``, needed for
  ``validation_data``.

One step is: take the batch, ``loss_and_grads``, optional clipping, one
in-place optimizer update of the trained parameters.  Parameter groups
(``param_groups``) train a subset of the parameters, each group with its own
learning rate if wanted; the others stay fixed (as in the alternating q-only
and p-only phases of variational EM).  Callbacks see every step and every
epoch.

Device work stays on the device: batches are taken with ``xp.take`` on the
data's namespace, batch losses are kept as device scalars and brought to the
host once per epoch (and at progress-bar refreshes, at most twice a second).

Non-finite values: a NaN or infinite batch loss, or parameters that are no
longer finite at the end of an epoch, raise :class:`NonFiniteLossError` (a
``FloatingPointError``) naming the epoch and the step.  The per-step run
pays for none of this (no device sync, no extra pass over the gradients): on
a failure the loop restores a snapshot taken at the start of the epoch and
replays the epoch's steps with checks of the loss, the gradients and the
updated parameters, up to the first step that fails one.  The model keeps
the parameters from just before that step.  (Steps are deterministic given
the generator state; should a replay not reproduce the failure, or the
generator's state be unreadable, the model keeps the parameters of the start
of the epoch and the message says so.)
"""
from __future__ import annotations

import inspect
import math
import numbers
import os
import sys
import time
from dataclasses import asdict, dataclass, field

import numpy as np

from . import io as lvm_io
from .backend import _is_array, get_namespace, item, to_numpy
from .random import as_generator, permutation
from .validation import check_array, check_positive_int

__all__ = ["History", "NonFiniteLossError", "StepInfo", "EpochInfo", "fit_minibatch"]

_CHECKPOINT_KIND = "lvm_core.train checkpoint"
_REFRESH_SECONDS = 0.5


@dataclass
class History:
    """What happened during :func:`fit_minibatch`.

    Attributes
    ----------
    train_loss : list of float
        Per epoch, the sample-weighted mean of the batch losses.
    val_loss : list of float
        Per epoch, ``model.validation_loss(validation_data)``; empty without
        validation data.
    seconds_per_epoch : list of float
        Wall time of each epoch's shuffle, optimizer steps and loss transfer
        (validation and checkpoint writing excluded).
    epochs_completed : int
        Epochs finished, counting those done before a resume.
    stopped_early : bool
        True when early stopping ended the run.
    stop_reason : str
        ``"max_epochs: ..."``, ``"early_stopping: ..."`` or
        ``"non_finite: ..."`` (then a :class:`NonFiniteLossError` was raised,
        carrying this history).
    best_epoch : int or None
        1-based epoch with the lowest validation loss (None without validation).
    best_val_loss : float or None
        That lowest validation loss.
    """

    train_loss: list = field(default_factory=list)
    val_loss: list = field(default_factory=list)
    seconds_per_epoch: list = field(default_factory=list)
    epochs_completed: int = 0
    stopped_early: bool = False
    stop_reason: str = ""
    best_epoch: int | None = None
    best_val_loss: float | None = None


class NonFiniteLossError(FloatingPointError):
    """A NaN or infinite loss, gradient or parameter stopped training.

    ``epoch`` and ``step`` (1-based, ``step`` within the epoch) locate the bad
    step; ``global_step`` counts optimizer steps since the start of training;
    ``history`` is the :class:`History` up to the last completed epoch.  The
    model holds the parameters from just before the bad step.
    """

    def __init__(self, message, epoch=None, step=None, global_step=None, history=None):
        super().__init__(message)
        self.epoch = epoch
        self.step = step
        self.global_step = global_step
        self.history = history


# ----------------------------------------------------------------------------
# small helpers
# ----------------------------------------------------------------------------
def _copy_tree(obj):
    """Deep copy of nested dicts/lists/tuples of arrays (arrays copied on their device)."""
    if isinstance(obj, dict):
        return {k: _copy_tree(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_copy_tree(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_copy_tree(v) for v in obj)
    if _is_array(obj):
        xp = get_namespace(obj)
        return xp.asarray(obj, copy=True)
    return obj


def _assign_params(params, values):
    """Write ``values`` into the arrays of ``params`` in place (keeps any aliasing of them)."""
    for key, value in values.items():
        target = params.get(key)
        if (_is_array(target) and tuple(target.shape) == tuple(value.shape)
                and target.dtype == value.dtype):
            target[...] = value
        else:
            params[key] = value


def _to_host(values):
    """A list of device scalars (or floats) as a float64 NumPy vector: one transfer."""
    if not values:
        return np.zeros(0)
    if all(not _is_array(v) or isinstance(v, (np.ndarray, np.generic)) for v in values):
        return np.asarray([float(v) for v in values], dtype=np.float64)
    if all(_is_array(v) for v in values):
        xp = get_namespace(*values)
        stacked = xp.stack([xp.reshape(v, ()) for v in values])
        return to_numpy(stacked).astype(np.float64)
    return np.asarray([item(v) for v in values], dtype=np.float64)


def _rng_state(rng):
    """The generator's bit-generator state (a dict), or None when it has none (CuPy)."""
    try:
        return rng.bit_generator.state
    except AttributeError:  # pragma: no cover - generators without a readable state
        return None


class _Optimizer:
    """The update of one loop: hyper-parameters checked once, then one in-place
    update per step over the trained keys of every parameter group.

    "adam" / "sgd" run :func:`lvm_core.ops.adam_` / :func:`lvm_core.ops.sgd_`
    (the rules of :func:`lvm_core.nn.adam` / :func:`lvm_core.nn.sgd`, state in
    their format, one state shared by the groups: the step count advances once
    per loop step); a function ``opt(params, grads, state, lr=..., inplace=True,
    **kw)`` is called once per group with that group's gradients (its state is
    a list with one entry per group when there are several groups).
    """

    def __init__(self, optimizer, lr, optimizer_kwargs, groups):
        self.groups = groups  # list of (keys, lr, kwargs)
        self.checked = False  # the in-place updates check keys and shapes at the first step
        self.caches = [{} for _ in groups]  # adam_'s grouped arrays, reused step to step
        if callable(optimizer):
            self.fn = optimizer
            self.name = getattr(optimizer, "__name__", type(optimizer).__name__)
        elif optimizer in ("adam", "sgd"):
            self.fn = None
            self.name = optimizer
            from . import nn

            # the nn functions check every hyper-parameter: run them once, on nothing
            for _, group_lr, kwargs in groups:
                getattr(nn, optimizer)({}, {}, None, lr=group_lr, **kwargs)
        else:
            raise ValueError(
                f"optimizer must be 'adam', 'sgd' or a function "
                f"opt(params, grads, state, lr=..., inplace=..., **kwargs) -> (params, state); "
                f"got {optimizer!r}."
            )

    def step(self, params, grads, state):
        """One update of ``params`` in place; returns the new state."""
        from . import ops

        if self.fn is None:
            # keys and shapes are checked at the first step; later steps pass the same dicts
            for i, (keys, lr, kwargs) in enumerate(self.groups):
                if self.name == "adam":
                    state = ops.adam_(params, grads, state, lr, keys=keys, advance=i == 0,
                                      check=not self.checked, cache=self.caches[i], **kwargs)
                else:
                    state = ops.sgd_(params, grads, state, lr, keys=keys, advance=i == 0,
                                     check=not self.checked, **kwargs)
            self.checked = True
            return state
        states = state if len(self.groups) > 1 else [state]
        if states is None or states == [None] and len(self.groups) > 1:
            states = [None] * len(self.groups)
        new_states = []
        for (keys, lr, kwargs), st in zip(self.groups, states):
            new_params, st = self.fn(params, {k: grads[k] for k in keys}, st, lr=lr,
                                     inplace=True, **kwargs)
            if new_params is not params:
                params.update(new_params)
            new_states.append(st)
        return new_states if len(self.groups) > 1 else new_states[0]


def _resolve_groups(param_groups, params, lr, optimizer_kwargs):
    """[(keys, lr, kwargs)] from ``param_groups`` (None: every parameter, one group)."""
    if param_groups is None:
        return [(list(params), lr, dict(optimizer_kwargs))]
    if isinstance(param_groups, (str, bytes)) or not hasattr(param_groups, "__iter__"):
        raise TypeError(
            "param_groups must be a list of parameter names (one group) or a list of dicts "
            "{'params': [names], 'lr': ..., other optimizer keywords}; got "
            f"{type(param_groups).__name__}."
        )
    items = list(param_groups)
    if items and all(isinstance(k, str) for k in items):
        items = [{"params": items}]
    groups, seen = [], set()
    for g in items:
        if not isinstance(g, dict) or "params" not in g:
            raise TypeError(
                "each parameter group must be a dict with a 'params' list of parameter names "
                f"(and optionally 'lr' and optimizer keywords); got {g!r}."
            )
        keys = list(g["params"])
        unknown = [k for k in keys if k not in params]
        if unknown or not keys:
            raise ValueError(
                f"param_groups names parameters the model does not have: {unknown or '[]'} "
                f"(model.params has {sorted(params)}). List existing names, at least one per "
                "group."
            )
        twice = seen.intersection(keys)
        if twice:
            raise ValueError(f"parameters {sorted(twice)} appear in more than one group; "
                             "give each parameter to one group only.")
        seen.update(keys)
        group_lr = g.get("lr", lr)
        if isinstance(group_lr, bool) or not isinstance(group_lr, numbers.Real) \
                or not group_lr > 0 or not math.isfinite(group_lr):
            raise ValueError(f"lr must be a positive finite number; got {group_lr!r} in a group.")
        kwargs = dict(optimizer_kwargs)
        kwargs.update({k: v for k, v in g.items() if k not in ("params", "lr")})
        groups.append((keys, float(group_lr), kwargs))
    return groups


def _make_progress_bar(progress, total):
    """A tqdm bar on stderr when asked for, tqdm is installed and stderr is a terminal."""
    if not progress:
        return None
    isatty = getattr(sys.stderr, "isatty", None)
    if isatty is None or not isatty():
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        return None
    return tqdm(total=total, file=sys.stderr, unit="batch", dynamic_ncols=True)


def _check_model(model):
    params = getattr(model, "params", None)
    if not isinstance(params, dict) or not params:
        raise TypeError(
            f"model must have a non-empty dict of arrays `params`; {type(model).__name__} has "
            f"{type(params).__name__}. fit_minibatch trains gradient models "
            "(params + loss_and_grads); EM models have their own fit()."
        )
    if not callable(getattr(model, "loss_and_grads", None)):
        raise TypeError(
            f"model must have a method loss_and_grads(X_batch, rng) -> (loss, grads); "
            f"{type(model).__name__} has none. Implement it."
        )


def _accepts(fn, name):
    """True when ``fn`` takes a keyword argument ``name`` (or **kwargs)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False
    return any(p.name == name or p.kind is p.VAR_KEYWORD for p in sig.parameters.values())


# ----------------------------------------------------------------------------
# the loop
# ----------------------------------------------------------------------------
class _Loop:
    """State of one call of :func:`fit_minibatch` (private)."""

    def __init__(self, model, X, rng, batch_size, optimizer, clip_norm, transform_batch,
                 callbacks):
        self.model = model
        self.X = X
        self.xp = get_namespace(X)
        self.rng = rng
        self.n = X.shape[0]
        self.batch_size = min(batch_size, self.n)
        self.n_steps = -(-self.n // self.batch_size)
        self.optimizer = optimizer
        self.clip_norm = clip_norm
        self.transform_batch = transform_batch
        self.callbacks = callbacks
        self.opt_state = None
        self.global_step = 0
        self.checked_keys = False
        self.model_kwargs = {}
        if _accepts(model.loss_and_grads, "grads_out"):
            self.model_kwargs["grads_out"] = {k: _empty_like(v) for k, v in model.params.items()}
        if _accepts(model.loss_and_grads, "check_input"):
            self.model_kwargs["check_input"] = False
        self.batch_buffers = {}

    def batch(self, perm, s):
        """Rows perm[s B:(s + 1) B] of X (into a reused buffer for NumPy data;
        :func:`lvm_core.ops.take_rows` prefetches the rows ahead)."""
        from . import ops

        stop = min((s + 1) * self.batch_size, self.n)  # in-bounds slices (array API)
        idx = perm[s * self.batch_size:stop]
        if type(self.X) is np.ndarray and type(idx) is np.ndarray:
            shape = (idx.shape[0],) + self.X.shape[1:]
            out = self.batch_buffers.get(shape)
            if out is None:
                out = self.batch_buffers[shape] = np.empty(shape, dtype=self.X.dtype)
            return ops.take_rows(self.X, idx, out=out)
        return self.xp.take(self.X, idx, axis=0)

    def step(self, perm, s, check=False):
        """Optimizer step ``s`` (0-based) of the epoch; returns ``(loss, problem)``.

        ``loss`` stays on the device.  With ``check=True`` (used only when
        locating a failure) the loss and the gradients are tested before the
        update: when one is not finite the update is skipped and ``problem``
        says what; otherwise ``problem`` is None.
        """
        X_batch = self.batch(perm, s)
        if self.transform_batch is not None:
            X_batch = self.transform_batch(X_batch, self.rng)
        model = self.model
        loss, grads = model.loss_and_grads(X_batch, self.rng, **self.model_kwargs)
        if not self.checked_keys:
            self._check_grads(grads)
        if check and not math.isfinite(item(loss)):
            return loss, f"the loss became {item(loss)}"
        if check and not _all_finite(grads):
            return loss, "a gradient became NaN or infinite"
        if self.clip_norm is not None:
            from .nn import clip_grad_norm

            grads, _ = clip_grad_norm(grads, self.clip_norm)
        self.opt_state = self.optimizer.step(model.params, grads, self.opt_state)
        return loss, None

    def _check_grads(self, grads):
        params = self.model.params
        if not isinstance(grads, dict) or set(grads) != set(params):
            got = sorted(grads) if isinstance(grads, dict) else type(grads).__name__
            raise ValueError(
                f"{type(self.model).__name__}.loss_and_grads must return grads with the keys "
                f"of model.params ({sorted(params)}); got {got}. Return one gradient per "
                "parameter, with the parameter's shape."
            )
        for key, g in grads.items():
            if tuple(g.shape) != tuple(params[key].shape):
                raise ValueError(
                    f"gradient {key!r} has shape {tuple(g.shape)} but model.params[{key!r}] "
                    f"has shape {tuple(params[key].shape)}; loss_and_grads must return "
                    "gradients shaped like the parameters."
                )
        self.checked_keys = True

    def batch_sizes(self):
        sizes = np.full(self.n_steps, self.batch_size, dtype=np.float64)
        sizes[-1] = self.n - self.batch_size * (self.n_steps - 1)
        return sizes


def _empty_like(a):
    xp = get_namespace(a)
    return xp.zeros_like(a)


def _all_finite(arrays) -> bool:
    """True when every entry of every array in the dict is finite (one host sync)."""
    ok = True
    for a in arrays.values():
        xp = get_namespace(a)
        ok = ok & xp.all(xp.isfinite(a))
    return bool(ok)


def fit_minibatch(model, X, epochs=10, batch_size=128, optimizer="adam", lr=1e-3,
                  optimizer_kwargs=None, validation_data=None, random_state=None,
                  progress=True, checkpoint=None, checkpoint_every=1, resume=False,
                  early_stopping_patience=None, clip_norm=None, transform_batch=None,
                  param_groups=None, callbacks=None):
    """Train ``model`` on ``X`` (N, ...) by minibatch gradient descent; return a :class:`History`.

    Each epoch shuffles the rows with ``lvm_core.random.permutation(rng, N,
    like=X)`` and takes ceil(N / batch_size) optimizer steps (the last batch
    may be smaller); see the module docstring for the model protocol.

    Parameters
    ----------
    model : object
        Has ``params`` (dict of arrays) and ``loss_and_grads(X_batch, rng)``
        (optionally with ``grads_out=`` and ``check_input=``, see the module
        docstring); optionally ``validation_loss(X)``.
    X : array (N, ...)
        Training data on any backend; batches stay on its device.
    epochs : int
        Total number of epochs, *including* those already done when resuming.
    batch_size : int
        Rows per batch (capped at N).
    optimizer : {"adam", "sgd"} or callable
        :func:`lvm_core.nn.adam`, :func:`lvm_core.nn.sgd`, or a function with
        their signature ``opt(params, grads, state, lr=..., inplace=True, **kw)``.
    lr : float
        Learning rate.
    optimizer_kwargs : dict, optional
        Extra keyword arguments of the optimizer (``betas``, ``momentum``,
        ``weight_decay``, ...).
    validation_data : array (N_val, ...), optional
        Scored after each epoch with ``model.validation_loss``.
    random_state : None, int or Generator
        Drives shuffling and every draw of the model and ``transform_batch``;
        ``random_state=0`` is reproducible.
    progress : bool
        Show a tqdm bar with the running loss, only when tqdm is installed and
        stderr is a terminal; otherwise the loop is silent.
    checkpoint : str or path, optional
        File written (atomically, with :func:`lvm_core.io.save`) every
        ``checkpoint_every`` epochs and after the last epoch: the model, the
        optimizer state, the epoch, the history, the early-stopping state and
        the generator's bit-generator state.
    checkpoint_every : int
        Epochs between checkpoints.
    resume : bool
        Continue from ``checkpoint`` when that file exists (from scratch when
        it does not): parameters, optimizer state, history, early-stopping
        state and the generator's state (which replaces ``random_state``) come
        from the file.  With the same arguments, training E1 epochs, then
        resuming up to E2 epochs gives bit for bit the parameters of one run
        of E2 epochs.  The checkpoint must come from the same model class,
        optimizer, number of samples and batch size, and from the same
        architecture: parameter names, shapes and dtypes, and hyper-parameters
        (but those of the initialisation -- ``random_state``, names starting
        with "init" or ending in "_init" -- and verbosity); ValueError naming
        each difference otherwise.
    early_stopping_patience : int, optional
        With ``validation_data``: stop when the validation loss has not
        improved (strictly) for this many epochs.  Whenever it is set, the
        model ends with the parameters of the best validation epoch (whether
        the run stopped early or used all its epochs).
    clip_norm : float, optional
        Rescale the gradients to a global L2 norm of at most ``clip_norm``
        (:func:`lvm_core.nn.clip_grad_norm`).
    transform_batch : callable, optional
        ``transform_batch(X_batch, rng) -> X_batch`` applied to every batch
        (e.g. dynamic binarisation); must not modify its input.
    param_groups : list, optional
        The parameters to train; the others stay fixed.  Either a list of
        names of ``model.params`` (one group) or a list of dicts
        ``{"params": [names], "lr": ..., **optimizer keywords}`` (a missing
        ``lr`` or keyword takes the call's value).  None trains everything.
    callbacks : list, optional
        Objects with any of the methods ``on_step(info)`` (after every
        optimizer step; ``info`` has ``model``, ``epoch``, ``step``,
        ``global_step`` and ``loss``, a device scalar: reading it syncs) and
        ``on_epoch(info)`` (after each epoch and its validation, before the
        checkpoint; ``info`` has ``model``, ``epoch`` and ``history``).  A
        callback returning True stops training (``stop_reason`` "callback:
        ..."): ``on_step`` after that step (the epoch's loss is then the
        mean over its completed steps), ``on_epoch`` after that epoch.

    Returns
    -------
    History

    Raises
    ------
    NonFiniteLossError (a FloatingPointError)
        When a batch loss, a gradient, an updated parameter (or the
        validation loss) is NaN or infinite.  The message, ``err.epoch`` and
        ``err.step`` name the epoch and step; ``err.history`` holds the
        history of the completed epochs.  The model keeps the last good
        parameters: those from just before the bad step (for a bad
        validation loss, those from the end of the previous epoch).  Nothing
        is raised for a loss that is finite at every step.
    """
    epochs = check_positive_int(epochs, "epochs")
    batch_size = check_positive_int(batch_size, "batch_size")
    checkpoint_every = check_positive_int(checkpoint_every, "checkpoint_every")
    lr, optimizer_kwargs, early_stopping_patience = _check_settings(
        lr, optimizer_kwargs, clip_norm, transform_batch, resume, checkpoint,
        early_stopping_patience, validation_data)
    X, validation_data = _check_data(model, X, validation_data)
    _check_model(model)
    groups = _resolve_groups(param_groups, model.params, lr, optimizer_kwargs)
    optimizer = _Optimizer(optimizer, lr, optimizer_kwargs, groups)
    callbacks = _check_callbacks(callbacks)
    rng = as_generator(random_state)
    if checkpoint is not None:
        checkpoint = os.fspath(checkpoint)
        if _rng_state(rng) is None:
            raise TypeError(
                f"checkpoints store the random generator's state, but {type(rng).__name__} "
                "has no bit_generator.state. Use random_state=<int> or a "
                "numpy.random.Generator."
            )

    loop = _Loop(model, X, rng, batch_size, optimizer, clip_norm, transform_batch, callbacks)
    history = History()
    best = {"val": math.inf, "epoch": None, "wait": 0, "params": None}
    if resume and os.path.exists(checkpoint):
        _resume(loop, history, best, checkpoint, optimizer.name)

    bar = None
    if history.epochs_completed < epochs and not history.stopped_early:
        bar = _make_progress_bar(progress, (epochs - history.epochs_completed) * loop.n_steps)
    try:
        for epoch in range(history.epochs_completed + 1, epochs + 1):
            if history.stopped_early:
                break
            _train_one_epoch(loop, history, best, epoch, epochs, bar, validation_data,
                             early_stopping_patience, checkpoint, checkpoint_every)
    finally:
        if bar is not None:
            bar.close()

    if not history.stopped_early:
        history.stop_reason = f"max_epochs: completed {history.epochs_completed} of {epochs} epochs"
    if early_stopping_patience is not None and best["params"] is not None:
        _assign_params(model.params, best["params"])
    return history


def _check_settings(lr, optimizer_kwargs, clip_norm, transform_batch, resume, checkpoint,
                    early_stopping_patience, validation_data):
    """Validate the scalar settings once; returns (lr, optimizer_kwargs, patience)."""
    if early_stopping_patience is not None:
        early_stopping_patience = check_positive_int(early_stopping_patience,
                                                     "early_stopping_patience")
        if validation_data is None:
            raise ValueError(
                "early_stopping_patience needs validation_data (early stopping watches the "
                "validation loss); pass validation_data=X_val or leave the patience unset."
            )
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real) or not lr > 0 \
            or not math.isfinite(lr):
        raise ValueError(f"lr must be a positive finite number; got {lr!r}.")
    if clip_norm is not None and (isinstance(clip_norm, bool)
                                  or not isinstance(clip_norm, numbers.Real) or not clip_norm > 0):
        raise ValueError(f"clip_norm must be a positive number or None; got {clip_norm!r}.")
    if optimizer_kwargs is None:
        optimizer_kwargs = {}
    elif not isinstance(optimizer_kwargs, dict):
        raise TypeError(
            f"optimizer_kwargs must be a dict or None; got {type(optimizer_kwargs).__name__}, "
            "e.g. optimizer_kwargs={'betas': (0.9, 0.999)}."
        )
    if transform_batch is not None and not callable(transform_batch):
        raise TypeError(
            f"transform_batch must be a function (X_batch, rng) -> X_batch; got "
            f"{type(transform_batch).__name__}."
        )
    if resume and checkpoint is None:
        raise ValueError(
            "resume=True needs checkpoint=<path of the checkpoint file>; got checkpoint=None."
        )
    return float(lr), optimizer_kwargs, early_stopping_patience


def _check_data(model, X, validation_data):
    """Validate the data once per fit (the steps never read it back to the host)."""
    X = check_array(X, "X", ndim=None)
    if X.ndim < 1:
        raise ValueError("X must have at least 1 dimension (rows are samples); got a 0-d "
                         "array. Pass X with one row per sample.")
    if validation_data is not None:
        validation_data = check_array(validation_data, "validation_data")
        get_namespace(X, validation_data)  # same library and device, or TypeError
        if not callable(getattr(model, "validation_loss", None)):
            raise TypeError(
                f"validation_data was given but {type(model).__name__} has no method "
                "validation_loss(X) -> float. Implement it or drop validation_data."
            )
    return X, validation_data


def _check_callbacks(callbacks):
    if callbacks is None:
        return []
    callbacks = list(callbacks) if isinstance(callbacks, (list, tuple)) else [callbacks]
    for cb in callbacks:
        if not (callable(getattr(cb, "on_step", None)) or callable(getattr(cb, "on_epoch", None))):
            raise TypeError(
                f"each callback must have a method on_step(info) and/or on_epoch(info); got "
                f"{type(cb).__name__}."
            )
    return callbacks


@dataclass
class StepInfo:
    """What ``on_step`` callbacks see (``loss`` is a device scalar)."""

    model: object
    epoch: int
    step: int
    global_step: int
    loss: object


@dataclass
class EpochInfo:
    """What ``on_epoch`` callbacks see."""

    model: object
    epoch: int
    history: History


def _train_one_epoch(loop, history, best, epoch, epochs, bar, validation_data, patience,
                     checkpoint, checkpoint_every):
    """The epoch's steps, then validation, early stopping, checkpoint and callbacks."""
    snapshot = _run_epoch(loop, history, epoch, epochs, bar)
    if validation_data is not None:
        _validate(loop, history, best, epoch, validation_data, patience, snapshot)
    history.epochs_completed = epoch
    if patience is not None and best["wait"] >= patience and not history.stopped_early:
        history.stopped_early = True
        history.stop_reason = (
            f"early_stopping: validation loss did not improve for {patience} epoch(s) after "
            f"epoch {best['epoch']} (best {best['val']:.6g}); stopped after epoch {epoch}"
        )
    for cb in loop.callbacks:
        on_epoch = getattr(cb, "on_epoch", None)
        if callable(on_epoch) and on_epoch(EpochInfo(loop.model, epoch, history)) is True \
                and not history.stopped_early:
            history.stopped_early = True
            history.stop_reason = (f"callback: {type(cb).__name__}.on_epoch asked to stop "
                                   f"after epoch {epoch}")
    if checkpoint is not None and (epoch % checkpoint_every == 0 or epoch == epochs
                                   or history.stopped_early):
        _save_checkpoint(loop, history, best, checkpoint, loop.optimizer.name)
    if bar is not None:
        post = {"loss": f"{history.train_loss[-1]:.4g}"}
        if history.val_loss:
            post["val"] = f"{history.val_loss[-1]:.4g}"
        bar.set_postfix(post, refresh=True)


def _run_epoch(loop, history, epoch, epochs, bar):
    """One pass over the data; appends the epoch's loss and time to ``history``.

    Batch losses stay on the device and are brought to the host in one
    transfer at the end of the epoch (and at progress-bar refreshes); the
    parameters are checked for NaN/inf once, at the end of the epoch.  On a
    failure, :func:`_stop_non_finite` locates the bad step.

    Returns the snapshot (params, optimizer state, rng state, step count)
    taken at the start of the epoch, after the shuffle.
    """
    start = time.perf_counter()
    perm = permutation(loop.rng, loop.n, like=loop.X)
    snapshot = (
        _copy_tree(loop.model.params),
        _copy_tree(loop.opt_state),
        _rng_state(loop.rng),
        loop.global_step,
    )
    pending, host_loss = [], []
    last_sync = time.perf_counter()
    sizes = loop.batch_sizes()
    if bar is not None:
        bar.set_description(f"epoch {epoch}/{epochs}", refresh=False)

    def flush():
        host_loss.extend(_to_host(pending))
        pending.clear()
        bad = np.flatnonzero(~np.isfinite(np.asarray(host_loss)))
        if bad.size:
            _stop_non_finite(loop, history, epoch, epochs, perm, snapshot, int(bad[0]))

    step_callbacks = [cb.on_step for cb in loop.callbacks
                      if callable(getattr(cb, "on_step", None))]
    stop_after = None
    for s in range(loop.n_steps):
        loss, _ = loop.step(perm, s)
        loop.global_step += 1
        pending.append(loss)
        for on_step in step_callbacks:
            if on_step(StepInfo(loop.model, epoch, s + 1, loop.global_step, loss)) is True:
                stop_after = s + 1
        if stop_after is not None:
            break
        if bar is not None:
            bar.update(1)
            now = time.perf_counter()
            if now - last_sync > _REFRESH_SECONDS:
                flush()
                done = len(host_loss)
                running = float(np.dot(host_loss, sizes[:done]) / np.sum(sizes[:done]))
                bar.set_postfix({"loss": f"{running:.4g}"}, refresh=False)
                last_sync = now
    flush()
    if not _all_finite(loop.model.params):  # finite losses, yet a NaN/inf crept in
        _stop_non_finite(loop, history, epoch, epochs, perm, snapshot, loop.n_steps)
    done = len(host_loss)
    history.train_loss.append(float(np.dot(host_loss, sizes[:done]) / np.sum(sizes[:done])))
    history.seconds_per_epoch.append(time.perf_counter() - start)
    if stop_after is not None:
        history.stopped_early = True
        history.stop_reason = (f"callback: on_step asked to stop after step {stop_after}/"
                               f"{loop.n_steps} of epoch {epoch}")
    return snapshot


def _stop_non_finite(loop, history, epoch, epochs, perm, snapshot, bad):
    """Put back the last good parameters, name the bad step, raise NonFiniteLossError.

    ``bad`` (0-based) is the first step whose loss was not finite, or
    ``n_steps`` when only the end-of-epoch parameter check failed.  The
    epoch-start snapshot is restored and the steps before ``bad`` are
    replayed (same batches, same draws: the generator state is part of the
    snapshot) with checks that the per-step run skips: gradients before each
    update (``loss_and_grads`` path), the loss, and the parameters after
    each update.  The first step failing a check is the one reported, and the
    model keeps the parameters from just before it.  A generator whose state
    cannot be read (CuPy) cannot be replayed: the model then keeps the
    parameters of the start of the epoch.
    """
    params0, opt_state0, rng_state0, global_step0 = snapshot
    params = loop.model.params
    _assign_params(params, params0)
    loop.opt_state = _copy_tree(opt_state0)
    kept = "from just before that step"
    what = ("the loss became NaN or infinite" if bad < loop.n_steps
            else "the parameters became NaN or infinite")
    if rng_state0 is not None:
        loop.rng.bit_generator.state = rng_state0
        for s in range(loop.n_steps):
            before = (_copy_tree(params), _copy_tree(loop.opt_state))
            loss, problem = loop.step(perm, s, check=True)
            loss = item(loss)
            if problem is None and not math.isfinite(loss):
                problem = f"the loss became {loss}"
            if problem is None and not _all_finite(params):
                problem = "the parameters became NaN or infinite"
            if problem is not None or s == bad:
                _assign_params(params, before[0])
                loop.opt_state = before[1]
                what, bad = problem or what, s
                break
        else:  # pragma: no cover - the replay did not reproduce the failure
            _assign_params(params, params0)
            kept = f"from the start of epoch {epoch}"
    else:  # pragma: no cover - CuPy generators
        kept = f"from the start of epoch {epoch}"
    step = (f"step {bad + 1}/{loop.n_steps} (optimizer step {global_step0 + bad + 1})"
            if bad < loop.n_steps else "an unknown step")
    history.stop_reason = f"non_finite: {what} at epoch {epoch}/{epochs}, {step}"
    raise NonFiniteLossError(
        f"Training stopped: {history.stop_reason[len('non_finite: '):]}. The model keeps "
        f"the parameters {kept}. Try a smaller lr, gradient clipping "
        "(clip_norm=...), or check the data and the model's numerics (log-space terms).",
        epoch=epoch, step=bad + 1 if bad < loop.n_steps else None,
        global_step=global_step0 + bad + 1 if bad < loop.n_steps else None, history=history,
    )


def _validate(loop, history, best, epoch, validation_data, patience, snapshot):
    """Score the validation data; track the best epoch (and its params when patience is set).

    A non-finite validation loss puts back the parameters of the start of the
    epoch (``snapshot``) and raises NonFiniteLossError.
    """
    val = item(loop.model.validation_loss(validation_data))
    if not math.isfinite(val):
        _assign_params(loop.model.params, snapshot[0])
        history.train_loss.pop()
        history.seconds_per_epoch.pop()
        history.stop_reason = f"non_finite: the validation loss became {val} after epoch {epoch}"
        raise NonFiniteLossError(
            f"Training stopped: the validation loss became {val} after epoch {epoch}. The "
            "model keeps the parameters from the end of the previous epoch. Check "
            "validation_data (values the model cannot explain) and the model's numerics; "
            "try a smaller lr.",
            epoch=epoch, step=None, global_step=loop.global_step, history=history,
        )
    history.val_loss.append(val)
    if val < best["val"]:
        best["val"], best["epoch"], best["wait"] = val, epoch, 0
        if patience is not None:
            best["params"] = _copy_tree(loop.model.params)
    else:
        best["wait"] += 1
    history.best_epoch = best["epoch"]
    history.best_val_loss = best["val"]


def _save_checkpoint(loop, history, best, path, opt_name):
    extra = {
        "kind": _CHECKPOINT_KIND,
        "epoch": history.epochs_completed,
        "global_step": loop.global_step,
        "history": asdict(history),
        "rng_state": loop.rng.bit_generator.state,
        "early_stopping": {"best_val": best["val"], "best_epoch": best["epoch"],
                           "wait": best["wait"], "best_params": best["params"]},
        "config": {"optimizer": opt_name, "batch_size": loop.batch_size, "n_samples": loop.n,
                   "lr": loop.optimizer.groups[0][1]},
    }
    lvm_io.save(loop.model, path, optimizer_state=loop.opt_state, extra=extra)


#: hyper-parameters that do not change what a checkpoint's parameters mean: the seed and
#: scheme of the initialisation (which a resume replaces: also every name starting with
#: "init" or ending in "_init"), and verbosity
_RESUME_FREE_HYPER_PARAMS = ("random_state", "warm_start", "verbose", "progress")


def _resume_free(name):
    return name in _RESUME_FREE_HYPER_PARAMS or name.startswith("init") or name.endswith("_init")


def _dtype_name(array):
    """'float32', 'float64', ... for an array of any namespace."""
    return str(array.dtype).rsplit(".", 1)[-1]


def _same_hyper_param(a, b):
    if _is_array(a) or _is_array(b) or isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        try:
            return np.array_equal(to_numpy(a), to_numpy(b))
        except Exception:
            return False
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_hyper_param(x, y) for x, y in zip(a, b))
    try:
        return bool(a == b)
    except Exception:
        return False


def _check_architecture(path, state, model):
    """ValueError unless the checkpoint's parameters have the model's shapes and dtypes and
    its hyper-parameters equal the model's (but those of the initialisation and verbosity,
    see ``_resume_free``)."""
    problems = []
    for name in sorted(model.params):
        saved, current = state["params"][name], model.params[name]
        if tuple(saved.shape) != tuple(current.shape):
            problems.append(f"{name} has shape {tuple(saved.shape)} in the checkpoint but "
                            f"{tuple(current.shape)} in the model")
        elif _dtype_name(saved) != _dtype_name(current):
            problems.append(f"{name} has dtype {_dtype_name(saved)} in the checkpoint but "
                            f"{_dtype_name(current)} in the model")
    saved_hyper = state.get("hyper_params") or {}
    current_hyper = lvm_io._hyper_params(model)
    for name in sorted(set(saved_hyper) | set(current_hyper)):
        if _resume_free(name):
            continue
        if name not in saved_hyper or name not in current_hyper:
            problems.append(f"hyper-parameter {name!r} is only in the "
                            f"{'model' if name in current_hyper else 'checkpoint'}")
        elif not _same_hyper_param(saved_hyper[name], current_hyper[name]):
            problems.append(f"{name}={saved_hyper[name]!r} in the checkpoint but "
                            f"{name}={current_hyper[name]!r} in the model")
    if problems:
        raise ValueError(
            f"checkpoint {path!r} was written by a model of another architecture: "
            + "; ".join(problems) + ". Resume with the model (hyper-parameters, dtype) that "
            "wrote the checkpoint, or pass resume=False (or another checkpoint path) to start "
            "from scratch."
        )


def _resume(loop, history, best, path, opt_name):
    """Load a checkpoint written by :func:`_save_checkpoint` into the running loop."""
    state = lvm_io.load_state(path, like=loop.X)
    model = loop.model
    cls_key = f"{type(model).__module__}:{type(model).__qualname__}"
    extra = state["extra"]
    if not isinstance(extra, dict) or extra.get("kind") != _CHECKPOINT_KIND:
        raise ValueError(
            f"{path!r} is an lvm_core model file but not a training checkpoint written by "
            "fit_minibatch. Pass the checkpoint path used by fit_minibatch, or "
            "resume=False to start from scratch."
        )
    if state["class"] != cls_key:
        raise ValueError(
            f"checkpoint {path!r} holds a {state['class']} model, but the model to train is "
            f"a {cls_key}. Resume with the same kind of model, or use another checkpoint path."
        )
    config = extra["config"]
    if config["optimizer"] != opt_name:
        raise ValueError(
            f"checkpoint {path!r} was trained with optimizer {config['optimizer']!r}, not "
            f"{opt_name!r}; its optimizer state does not fit. Resume with "
            f"optimizer={config['optimizer']!r} or start without resume."
        )
    if config["batch_size"] != loop.batch_size or config["n_samples"] != loop.n:
        raise ValueError(
            f"checkpoint {path!r} was trained on {config['n_samples']} samples with "
            f"batch_size={config['batch_size']}; got {loop.n} samples and "
            f"batch_size={loop.batch_size}. Resume with the same data and batch_size, or "
            "start without resume."
        )
    if set(state["params"] or {}) != set(model.params):
        raise ValueError(
            f"checkpoint {path!r} has parameters {sorted(state['params'] or {})} but the model "
            f"has {sorted(model.params)}. Resume with a model of the same architecture."
        )
    _check_architecture(path, state, model)
    _assign_params(model.params, state["params"])
    for name, value in state["fitted"].items():
        setattr(model, name, value)
    loop.opt_state = state["optimizer_state"]
    loop.global_step = int(extra["global_step"])
    loop.rng.bit_generator.state = extra["rng_state"]
    for key, value in extra["history"].items():
        setattr(history, key, value)
    stopping = extra["early_stopping"]
    best.update(val=stopping["best_val"], epoch=stopping["best_epoch"],
                wait=stopping["wait"], params=stopping["best_params"])
