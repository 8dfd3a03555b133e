"""What every fully observed autoregressive model shares.

The chain rule of probability factorises any joint density over D variables
taken in an ordering o = (o_1, ..., o_D) (a permutation of the columns):

    p(x) = prod_{d=1}^{D} p(x_{o_d} | x_{o_1}, ..., x_{o_{d-1}}),
    log p(x) = sum_d log p(x_{o_d} | x_{o_<d}).

A model chooses a parametric form for each conditional; ``log p(x)`` is then
exact (no latent variable to integrate out), training maximises it directly
and sampling is ancestral: x_{o_1} ~ p(x_{o_1}), then x_{o_2} ~ p(x_{o_2} |
x_{o_1}), and so on (lecture notes of seed 001, after Ermon & Grover; Frey
1998; Larochelle & Murray 2011).

Implementation: the data's columns are permuted into the model's order once
(``X_o = X[:, o]``), the model works in its own order d = 1..D, and samples
are permuted back.  Subclasses provide ``_log_conditionals_ordered``,
``_loss_and_grads_ordered`` and ``_sample_ordered``; this class adds the
ordering, device handling, validation, ``score_samples``, ``fit`` (through
:func:`lvm_core.train.fit_minibatch`, the one training loop) and the
``grads_out`` protocol.
"""
from __future__ import annotations

import inspect

import numpy as np

from ... import nn
from ...backend import asarray, get_namespace, item, namespace_name, to_numpy
from ...random import as_generator
from ...validation import check_array, check_choice, check_magnitude, check_positive_int
from ..base import ParamsMixin

__all__ = ["AutoregressiveModel"]


def _check_ordering(ordering, D):
    """``ordering`` as a NumPy int64 permutation of range(D) (None -> natural order)."""
    if ordering is None:
        return np.arange(D, dtype=np.int64)
    order = np.asarray(to_numpy(ordering) if hasattr(ordering, "shape") else ordering)
    if order.ndim != 1 or order.shape[0] != D or not np.issubdtype(order.dtype, np.integer) \
            or not np.array_equal(np.sort(order), np.arange(D)):
        raise ValueError(
            f"ordering must be a permutation of range(n_features) = range({D}) (the columns "
            f"in the order the chain rule takes them); got {ordering!r}. Use None for the "
            "natural order, or e.g. numpy.random.default_rng(0).permutation(n_features)."
        )
    return order.astype(np.int64)


class AutoregressiveModel(ParamsMixin):
    """Base class: ordering, validation, scoring, sampling and fitting.

    Subclasses set ``_data_kind`` to ``"binary"``, ``"categorical"`` or
    ``"real"`` and implement, on data already in the model's order (X_o,
    shape (N, D)):

    * ``_log_conditionals_ordered(X_o) -> (N, D)``: log p(x_{o_d} | x_{o_<d});
    * ``_loss_and_grads_ordered(X_o) -> (loss, grads)``: the mean negative
      log-likelihood and its gradients (keys of ``params``);
    * ``_sample_ordered(n, rng) -> (n, D)``: ancestral samples.
    """

    _data_kind = "binary"

    # -- construction helpers ---------------------------------------------
    def _setup(self, n_features, ordering, dtype, random_state):
        check_positive_int(n_features, "n_features")
        check_choice(dtype, "dtype", ("float32", "float64"))
        self._order = _check_ordering(ordering, int(n_features))
        self._inverse_order = np.argsort(self._order)
        self._order_cache = {}
        return as_generator(random_state)

    @property
    def D(self):
        return check_positive_int(self.n_features, "n_features")

    @property
    def _like(self):
        return next(iter(self.params.values()))

    # -- device handling ---------------------------------------------------
    def to(self, like):
        """Move every parameter to the namespace and device of array ``like`` (explicit)."""
        self.params = {k: asarray(v, like=like, dtype=self.dtype) for k, v in self.params.items()}
        self._order_cache = {}
        return self

    def _order_index(self, inverse=False):
        """The (inverse) ordering as an int64 array on the parameters' device (cached)."""
        like = self._like
        key = (namespace_name(get_namespace(like)), str(getattr(like, "device", "")), inverse)
        if key not in self._order_cache:
            order = self._inverse_order if inverse else self._order
            self._order_cache[key] = asarray(order, like=like, dtype="int64")
        return self._order_cache[key]

    def _to_model_order(self, X):
        """X_o = X[:, o]: the columns in the order of the chain rule."""
        xp = get_namespace(X)
        if np.array_equal(self._order, np.arange(self.D)):
            return X
        return xp.take(X, self._order_index(), axis=1)

    def _from_model_order(self, X_o):
        """X = X_o[:, o^-1]: back to the data's column order."""
        xp = get_namespace(X_o)
        if np.array_equal(self._order, np.arange(self.D)):
            return X_o
        return xp.take(X_o, self._order_index(inverse=True), axis=1)

    # -- validation --------------------------------------------------------
    def _check_X(self, X, name="X", check_values=True):
        """Shape, namespace and dtype of ``X`` (and, when asked, its values: one host sync).

        Binary and real data are cast to the parameters' dtype; categorical
        data stays integer (int64).
        """
        kind = "integral" if self._data_kind == "categorical" else "numeric"
        X = check_array(X, name, ndim=2, dtype_kind=kind, n_features=self.D)
        like = self._like
        try:
            xp = get_namespace(X, like)
        except TypeError as err:
            raise TypeError(
                f"{name} lives in {namespace_name(get_namespace(X))} but the model's "
                f"parameters live in {namespace_name(get_namespace(like))}. Move the model "
                f"explicitly with model.to({name}) (or move the data). Original error: {err}"
            ) from None
        if self._data_kind == "categorical":
            K = int(self.n_categories)
            if check_values and bool(xp.any((X < 0) | (X >= K))):
                raise ValueError(
                    f"{name} must hold category indices in [0, {K}) (n_categories={K}); got "
                    "values outside that range. Encode the symbols as 0..K-1 or raise "
                    "n_categories."
                )
            if X.dtype != xp.int64:
                X = xp.astype(X, xp.int64)
            return X, xp
        if check_values and self._data_kind == "real":
            check_magnitude(X, name, dtype=like.dtype)
        if check_values and self._data_kind == "binary" \
                and bool(xp.any((X != 0) & (X != 1))):
            raise ValueError(
                f"{name} must be binary (every entry 0 or 1) for {type(self).__name__}; got "
                "other values. Binarise the data first (e.g. X > 0.5, or draw "
                "Bernoulli(X) for grey levels)."
            )
        if X.dtype != like.dtype:
            X = xp.astype(X, like.dtype)
        return X, xp

    # -- the public API ----------------------------------------------------
    def log_conditionals(self, X):
        """log p(x_j | the variables before j in the ordering), shape (N, D), data column order.

        ``score_samples(X)`` is its sum over the columns (the chain rule).
        """
        X, _ = self._check_X(X)
        return self._from_model_order(self._log_conditionals_ordered(self._to_model_order(X)))

    def score_samples(self, X):
        """Exact log p(x) = sum_d log p(x_{o_d} | x_{o_<d}) per example, shape (N,)."""
        X, xp = self._check_X(X)
        return xp.sum(self._log_conditionals_ordered(self._to_model_order(X)), axis=1)

    def score(self, X):
        """Mean exact log-likelihood per example (nats), a float."""
        lp = self.score_samples(X)
        xp = get_namespace(lp)
        return item(xp.mean(lp))

    def validation_loss(self, X):
        """Mean negative log-likelihood of ``X`` (nats per example), a float."""
        return -self.score(X)

    def loss_and_grads(self, X, rng=None, grads_out=None):
        """Mean negative log-likelihood over the batch and its handwritten gradients.

        loss = -1/N sum_n log p(x_n); ``grads`` has the keys and shapes of
        :attr:`params`.  The gradient is exact (no sampling): ``rng`` is
        accepted for the training protocol and unused.  With ``grads_out``
        (a dict of arrays shaped like the parameters) the gradients are
        written into those buffers, which are returned.  Values are not
        checked here (the training loop validates the data once per fit).
        """
        X, _ = self._check_X(X, check_values=False)
        loss, grads = self._loss_and_grads_ordered(self._to_model_order(X))
        if grads_out is not None:
            for key, g in grads.items():
                grads_out[key][...] = g
            return loss, grads_out
        return loss, grads

    def sample(self, n, rng=None):
        """``n`` ancestral samples x_{o_1} ~ p(x_{o_1}), x_{o_d} ~ p(x_{o_d} | x_{o_<d}); (n, D).

        Binary data comes back as 0/1 in the parameters' dtype, categorical
        data as int64, real data in the parameters' dtype; on the
        parameters' device.
        """
        n = check_positive_int(n, "n")
        return self._from_model_order(self._sample_ordered(n, as_generator(rng)))

    #: parameters penalised by ``weight_decay`` in :meth:`fit` (weights, not biases)
    _decayed = ("W",)

    def fit(self, X, epochs=100, batch_size=100, lr=1e-3, validation_data=None, patience=10,
            weight_decay=0.0, optimizer="adam", random_state=None, progress=False,
            **fit_kwargs):
        """Maximise the log-likelihood by minibatch Adam (or SGD) from the current parameters.

        Drives :func:`lvm_core.train.fit_minibatch`; with ``validation_data``
        it stops after ``patience`` epochs without a lower validation NLL and
        keeps the best parameters (Prechelt 1998).  ``weight_decay`` = lambda
        adds an L2 penalty on the weight matrices (not the biases): the
        objective minimised is

            -1/N sum_n log p(x_n) + lambda/2 sum_{weights} ||W||^2,

        whose gradient lambda W is added to the weights' gradients before each
        optimizer step (``loss_and_grads`` itself stays the plain NLL).  The
        data are validated once here.  Stores the History as ``history_``;
        returns ``self``.
        """
        from ...train import fit_minibatch  # higher layer: imported on use

        X, xp = self._check_X(X)
        if self._data_kind == "real":
            check_magnitude(X, "X")
        if validation_data is not None:
            validation_data, _ = self._check_X(validation_data, "validation_data")
        kwargs = dict(fit_kwargs)
        if validation_data is not None and patience is not None:
            names = inspect.signature(fit_minibatch).parameters
            key = "early_stopping_patience" if "early_stopping_patience" in names else "patience"
            kwargs[key] = patience
        if weight_decay:
            if isinstance(optimizer, str):
                check_choice(optimizer, "optimizer", ("adam", "sgd"))
                optimizer = getattr(nn, optimizer)
            optimizer = _l2_penalised(optimizer, float(weight_decay),
                                      [k for k in self._decayed if k in self.params])
        self.history_ = fit_minibatch(
            self, X, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
            validation_data=validation_data, random_state=random_state, progress=progress,
            **kwargs,
        )
        return self


def _l2_penalised(step, lam, keys):
    """An optimizer step on the gradients of NLL + lam/2 sum_{k in keys} ||theta_k||^2."""
    def l2_penalised(params, grads, state, **kwargs):
        grads = dict(grads)
        for k in keys:
            grads[k] = grads[k] + lam * params[k]
        return step(params, grads, state, **kwargs)

    l2_penalised.__name__ = f"l2_penalised_{getattr(step, '__name__', 'step')}"
    return l2_penalised
