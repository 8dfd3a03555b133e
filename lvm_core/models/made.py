"""Masked autoencoder for distribution estimation (MADE).

References: Germain, Gregor, Murray & Larochelle 2015, "MADE: Masked
Autoencoder for Distribution Estimation" (ICML); Larochelle & Murray 2011
(the autoregressive factorisation of binary data); course notes seed 001
(autoregressive models: the chain rule and masked autoencoders).

Model (N examples, D binary features, hidden widths H_1 .. H_L).  An
ordering o assigns input d the degree m^0(d) = o(d) in {1, .., D}; hidden
unit k of layer l gets a degree m^l(k) drawn uniformly from
{min_k' m^{l-1}(k'), .., D - 1}.  The masks

    M^l[k', k] = 1[m^{l-1}(k') <= m^l(k)]         (hidden layers, eq. 12)
    M^V[k, d]  = 1[m^L(k) < m^0(d)]                (output layer, eq. 13)

make output d depend on the inputs of lower degree only, so

    h^l = act(h^{l-1} (W^l * M^l) + b^l),   h^0 = x,
    logit_d = h^L (V * M^V)[:, d] + c_d,
    log p(x) = sum_d [x_d logit_d - softplus(logit_d)]
             = sum_d log p(x_d | x_{o < o(d)})

is an exactly normalised autoregressive model for every mask.  The loss is
the mean negative log-likelihood; its gradient is the backward of the masked
layers (dW = (h^T da) * M).

Connectivity- (and order-) agnostic training (sec. 4), two ways:

* ``mask_resampling="fixed"``: the model keeps a fixed set of M masks
  (``n_masks``), drawn once; every minibatch uses one of them, drawn uniformly;
* ``mask_resampling="per_step"``: every minibatch draws a fresh mask (degrees
  m^0 .. m^L as above, from the training generator), so training sees an
  unbounded number of masks, as Germain et al. ran their best dna result; the
  M stored masks are then used for evaluation only.

At test time the M stored masks form an ensemble, a uniform mixture of M
normalised models:

    log p(x) = logsumexp_m log p_m(x) - log M,

never the average of the masks' logits (which is not a likelihood).

One code path: the model is a composition of :class:`lvm_core.nn.MaskedDense`
layers (one stack per mask, all reading the same parameters; with per-step
resampling the stack of a fresh or stored mask is built from its degrees on use) and
:func:`lvm_core.ops.bernoulli_loglik`; training runs through
:func:`lvm_core.train.fit_minibatch`.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import ops
from ..backend import device_of, get_namespace, item, to_numpy
from ..nn import MaskedDense, stack_backward, stack_forward
from ..random import as_generator, integers, permutation, uniform
from ..validation import check_array, check_choice, check_is_fitted, check_positive_int
from .base import ParamsMixin

__all__ = ["MADE", "made_degrees", "made_masks"]

_ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus", "leaky_relu", "elu")


def made_degrees(rng, D, hidden, ordering="natural"):
    """Connectivity degrees of one MADE mask (Germain et al. 2015, sec. 4.2).

    m^0 = o + 1 (o the natural order 0..D-1 or a random permutation of it);
    m^l(k) ~ U{min m^{l-1}, .., D - 1} for each hidden layer l.  Returns the
    list [m^0 (D,), m^1 (H_1,), .., m^L (H_L,)] of int64 host arrays.
    """
    rng = as_generator(rng)
    order = np.arange(D) if ordering == "natural" else rng.permutation(D)
    degrees = [order.astype(np.int64) + 1]
    for H in hidden:
        low = int(degrees[-1].min())
        high = max(D - 1, low)  # D = 1: no connection is possible; keep the range valid
        degrees.append(rng.integers(low, high + 1, size=int(H)).astype(np.int64))
    return degrees


def made_masks(degrees):
    """Masks from degrees: hidden M^l = m^{l-1}[:, None] <= m^l[None, :] (H_{l-1}, H_l),
    output M^V = m^L[:, None] < m^0[None, :] (H_L, D).  Returns float64 0/1 arrays."""
    masks = [(degrees[i][:, None] <= degrees[i + 1][None, :]).astype(np.float64)
             for i in range(len(degrees) - 1)]
    masks.append((degrees[-1][:, None] < degrees[0][None, :]).astype(np.float64))
    return masks


class MADE(ParamsMixin):
    """Masked autoencoder for binary data with one or an ensemble of masks.

    Parameters
    ----------
    n_features : int
        D, the number of binary variables.
    hidden : tuple of int
        Widths of the hidden MaskedDense layers (at least one).
    activation : {"relu", "tanh", "sigmoid", "softplus", "leaky_relu", "elu"}
    n_masks : int
        M, the size of the fixed set of masks used for connectivity-agnostic
        training and for the test-time ensemble (1 = a single mask).
    ordering : {"natural", "random"}
        Natural order x_1, .., x_D for every mask, or a random order per mask
        (order-agnostic training).
    direct : bool
        Add a masked direct connection x -> logits (M^D[j, d] = 1[m^0(j) < m^0(d)]).
    init : {"torch", "glorot", "he"}
    dtype : {"float32", "float64"}
    random_state : None, int or Generator
        Draws the masks, then the initial weights.
    mask_resampling : {"fixed", "per_step"}
        "fixed": training draws one of the M stored masks per minibatch.
        "per_step": training draws a fresh mask (ordering as ``ordering`` says,
        and connectivity) per minibatch from the generator ``fit`` passes; the M
        stored masks serve evaluation (score_samples, score, sample).
    n_valid_masks : None or int
        :meth:`validation_loss` (early stopping) scores the ensemble of the first
        ``n_valid_masks`` stored masks (a cheaper estimate when M is large);
        None: all M.  Must not exceed ``n_masks``.

    Attributes
    ----------
    params : dict
        ``W{l}, b{l}`` for hidden layer l, ``W_out, b_out`` for the logits.
    degrees_ : list of (M, H_l) int64 arrays
        degrees_[0][m] is m^0 for mask m (the ordering plus one), degrees_[l][m]
        the hidden degrees of layer l.  Set by :meth:`initialize`.
    history_ : History
        Set by :meth:`fit`.
    """

    _estimator_type = "density_estimator"

    def __init__(self, n_features, hidden=(500,), activation="relu", n_masks=1,
                 ordering="natural", direct=False, init="torch", dtype="float32",
                 random_state=None, mask_resampling="fixed", n_valid_masks=None):
        self.n_features = n_features
        self.hidden = hidden
        self.activation = activation
        self.n_masks = n_masks
        self.ordering = ordering
        self.direct = direct
        self.init = init
        self.dtype = dtype
        self.random_state = random_state
        self.mask_resampling = mask_resampling
        self.n_valid_masks = n_valid_masks
        self._validate_hyperparameters()
        self.params = None

    # ------------------------------------------------------------------ setup
    def _validate_hyperparameters(self):
        check_positive_int(self.n_features, "n_features")
        if isinstance(self.hidden, (str, bytes)) or not hasattr(self.hidden, "__iter__") \
                or len(tuple(self.hidden)) == 0:
            raise TypeError(
                f"hidden must be a non-empty tuple of layer widths such as (500,); got "
                f"{self.hidden!r}. MADE needs at least one hidden layer."
            )
        for h in self.hidden:
            check_positive_int(h, "hidden (each width)")
        check_choice(self.activation, "activation", _ACTIVATIONS)
        check_positive_int(self.n_masks, "n_masks")
        check_choice(self.ordering, "ordering", ("natural", "random"))
        if not isinstance(self.direct, (bool, np.bool_)):
            raise TypeError(f"direct must be True or False; got {self.direct!r}.")
        check_choice(self.init, "init", ("torch", "glorot", "he"))
        check_choice(self.dtype, "dtype", ("float32", "float64"))
        check_choice(self.mask_resampling, "mask_resampling", ("fixed", "per_step"))
        if self.n_valid_masks is not None:
            check_positive_int(self.n_valid_masks, "n_valid_masks")
            if int(self.n_valid_masks) > int(self.n_masks):
                raise ValueError(
                    f"n_valid_masks must be at most n_masks={int(self.n_masks)} (validation "
                    f"uses the first n_valid_masks stored masks); got {self.n_valid_masks!r}. "
                    "Lower n_valid_masks, raise n_masks, or pass None to use all masks."
                )

    def initialize(self, like=None, random_state=None):
        """Draw the M masks' degrees (:func:`made_degrees`), then the weights
        (:func:`lvm_core.nn.init_linear` per layer), on the device of ``like``."""
        self._validate_hyperparameters()
        rng = as_generator(self.random_state if random_state is None else random_state)
        D, hidden = int(self.n_features), [int(h) for h in self.hidden]
        per_mask = [made_degrees(rng, D, hidden, self.ordering) for _ in range(int(self.n_masks))]
        self.degrees_ = [np.stack([d[l] for d in per_mask]) for l in range(len(hidden) + 1)]
        params = {}
        layers, direct = self._stack(0)
        for layer in layers + ([direct] if direct is not None else []):
            params.update(layer.init(rng, dtype=self.dtype, like=like))
        self.params = params
        return self

    def _layers(self, m):
        """The MaskedDense stack of mask m (hidden layers, then the output layer)."""
        return self._stack(m)[0]

    def _stack(self, m):
        """(MaskedDense stack, direct layer or None) of stored mask m; the stacks of all
        masks read the same parameter keys.  With fixed masks each stack is built once;
        with per-step resampling (M evaluation masks, possibly hundreds) it is built from
        the stored degrees on every use."""
        check_is_fitted(self, ["degrees_"])
        if self.mask_resampling == "per_step":
            return self._stack_from_degrees(
                [to_numpy(d)[m].astype(np.int64) for d in self.degrees_])
        key = (self.activation, self.init, tuple(int(h) for h in self.hidden), bool(self.direct))
        cache = getattr(self, "_stacks", None)
        if cache is None or cache[0] is not self.degrees_ or cache[1] != key:
            cache = self._stacks = (self.degrees_, key, {})
        stacks = cache[2]
        if m not in stacks:
            stacks[m] = self._stack_from_degrees(
                [to_numpy(d)[m].astype(np.int64) for d in self.degrees_])
        return stacks[m]

    def _stack_from_degrees(self, degrees):
        """(MaskedDense stack, direct layer or None) of the mask with degrees
        [m^0, m^1, .., m^L] (:func:`made_masks`)."""
        masks = made_masks(degrees)
        sizes = [int(self.n_features)] + [int(h) for h in self.hidden]
        layers = [MaskedDense(sizes[i], sizes[i + 1], masks[i], activation=self.activation,
                              suffix=str(i), init=self.init) for i in range(len(sizes) - 1)]
        layers.append(MaskedDense(sizes[-1], sizes[0], masks[-1], activation=None,
                                  suffix="_out", init=self.init))
        direct = None
        if self.direct:  # x -> logits, M^D[j, d] = 1[m^0(j) < m^0(d)]
            m0 = degrees[0]
            direct = MaskedDense(sizes[0], sizes[0],
                                 (m0[:, None] < m0[None, :]).astype(np.float64),
                                 activation=None, suffix="_direct", init=self.init)
        return layers, direct

    def _check_mask(self, mask):
        M = int(self.n_masks)
        if isinstance(mask, bool) or not isinstance(mask, (int, np.integer)) \
                or not 0 <= int(mask) < M:
            raise ValueError(
                f"mask must be an integer in [0, {M - 1}] (n_masks={M}); got {mask!r}. "
                "Use mask=None for the ensemble of all masks."
            )
        return int(mask)

    def _prepare(self, X, name="X", validate=True):
        """X (N, D) in the model's dtype on the params' device (params created if needed)."""
        if validate:
            X = check_array(X, name, ndim=2,
                            n_features=check_positive_int(self.n_features, "n_features"))
        if self.params is None:
            self.initialize(like=None if isinstance(X, np.ndarray) else X)
        W = self.params["W_out"]
        xp = get_namespace(X, W)
        if X.dtype != W.dtype:
            X = xp.astype(X, W.dtype)
        if validate:
            lo, hi = item(xp.min(X)), item(xp.max(X))
            if lo < 0.0 or hi > 1.0:
                raise ValueError(
                    f"{name} must hold binary values (0/1; probabilities in [0, 1] are "
                    f"accepted as soft targets for training); got values in [{lo:g}, {hi:g}]. "
                    "Binarise the data first (e.g. X > 0.5)."
                )
        return xp, X

    # ---------------------------------------------------------------- forward
    def _logits(self, X, params, m, ws=None):
        """logit (N, D) of p(x_d = 1 | x_<d) under mask m, and the layer caches (with
        ``direct``: logit = out(h^L) + x (U * M^D) + u).  ``m``: the index of a stored
        mask, or the (layers, direct) stack of any mask (:meth:`_stack_from_degrees`)."""
        layers, direct = m if isinstance(m, tuple) else self._stack(m)
        logits, caches = stack_forward(layers, params, X, ws)
        if direct is None:
            return logits, (caches, None)
        lin, c_direct = direct.forward(params, X, ws)
        if ws is not None and type(logits) is np.ndarray:
            out = ws.empty("made.logits", tuple(logits.shape), logits)
            return np.add(logits, lin, out=out), (caches, c_direct)
        return logits + lin, (caches, c_direct)

    def loss_and_grads(self, X, rng=None, params=None, grads_out=None, check_input=True,
                       mask=None):
        """Mean negative log-likelihood -1/N sum_n log p_m(x_n) and its gradients.

        The mask is stored mask ``mask`` when given; else, with fixed masks, stored
        mask m drawn uniformly from {0, .., M-1} with ``rng``, and with per-step
        resampling a fresh mask drawn with ``rng`` (:func:`made_degrees`)
        (connectivity-agnostic training: one mask per minibatch).  Gradient: dlogit = -(x - sigmoid(logit)) / N through the
        masked layers.  Returns (loss as a 0-d array, grads keyed like params).
        """
        xp, X = self._prepare(X, validate=check_input)
        params = self.params if params is None else params
        if mask is not None:
            stack = self._stack(self._check_mask(mask))
        elif self.mask_resampling == "per_step":
            check_is_fitted(self, ["degrees_"])
            stack = self._stack_from_degrees(made_degrees(
                as_generator(rng), int(self.n_features), [int(h) for h in self.hidden],
                self.ordering))
        else:
            M = int(self.n_masks)
            stack = self._stack(0 if M == 1 else int(as_generator(rng).integers(M)))
        if getattr(self, "_ws", None) is None:
            self._ws = ops.Workspace()
        ws = self._ws
        N = X.shape[0]
        layers, direct = stack
        logits, (caches, c_direct) = self._logits(X, params, stack, ws)
        ll, dlogits = ops.bernoulli_loglik(logits, X, -1.0 / N, ws=ws, name="made")
        loss = -xp.sum(ll) / float(N)
        grads = {} if grads_out is None else grads_out
        stack_backward(layers, params, dlogits, caches, grads, ws, need_dx=False)
        if direct is not None:
            direct.backward(params, dlogits, c_direct, grads, ws, need_dx=False)
        if grads_out is None:
            return loss, {k: grads[k] for k in params}
        return loss, grads

    def log_conditionals(self, X, mask=0):
        """log p(x_d | x_{o < o(d)}) for every d under mask m: (N, D), row sums = log p_m(x)."""
        xp, X = self._prepare(X)
        logits, _ = self._logits(X, self.params, self._stack(self._check_mask(mask)))
        return X * logits - F.softplus(logits)

    def _log_prob_mask(self, X, m):
        logits, _ = self._logits(X, self.params, self._stack(m))
        ll, _ = ops.bernoulli_loglik(logits, X)
        return ll

    def score_samples(self, X, mask=None):
        """log p(x) per example (N,).

        ``mask=None``: the ensemble of the M masks, logsumexp_m log p_m(x) - log M
        (with M = 1, the single mask); ``mask=m``: log p_m(x) under mask m alone.
        """
        xp, X = self._prepare(X)
        if mask is not None:
            return self._log_prob_mask(X, self._check_mask(mask))
        return self._log_prob_ensemble(xp, X, int(self.n_masks))

    def _log_prob_ensemble(self, xp, X, M):
        """logsumexp_m log p_m(x) - log M over the first M stored masks (N,)."""
        if M == 1:
            return self._log_prob_mask(X, 0)
        log_p = xp.stack([self._log_prob_mask(X, m) for m in range(M)])  # (M, N)
        return F.logsumexp(log_p, axis=0) - math.log(M)

    def score(self, X, mask=None):
        """Mean log-likelihood per example (ensemble unless ``mask`` is given)."""
        s = self.score_samples(X, mask=mask)
        return item(get_namespace(s).mean(s))

    def validation_loss(self, X):
        """Mean negative log-likelihood of the ensemble of the first ``n_valid_masks``
        stored masks (all M when None; the single mask when M = 1)."""
        xp, X = self._prepare(X)
        M = int(self.n_masks) if self.n_valid_masks is None else int(self.n_valid_masks)
        s = self._log_prob_ensemble(xp, X, M)
        return -item(xp.mean(s))

    def sample(self, n, rng=None, mask=None, like=None):
        """n draws x (n, D) by ancestral sampling: D passes, x_{o^-1(i)} ~
        Bernoulli(sigmoid(logit)) in the order of the mask.

        ``mask=None`` samples the ensemble, a uniform mixture of the M masks
        (each draw picks its mask uniformly); ``mask=m`` samples mask m.
        """
        check_positive_int(n, "n")
        if self.params is None:
            self.initialize(like=like)
        rng = as_generator(rng)
        W = self.params["W_out"]
        xp = get_namespace(W)
        n, M = int(n), int(self.n_masks)
        if mask is not None:
            return self._sample_mask(xp, W, n, self._check_mask(mask), rng)
        if M == 1:
            return self._sample_mask(xp, W, n, 0, rng)
        which = np.asarray(integers(rng, 0, M, (n,)))  # mask of each draw (host)
        parts = [self._sample_mask(xp, W, int(c), m, rng)
                 for m in range(M) for c in [int(np.sum(which == m))] if c > 0]
        X = xp.concat(parts, axis=0)
        return xp.take(X, permutation(rng, n, like=W), axis=0)

    def _sample_mask(self, xp, W, n, m, rng):
        D = int(self.n_features)
        order = np.argsort(to_numpy(self.degrees_[0])[m])  # variables in the order of mask m
        stack = self._stack(m)
        X = xp.zeros((n, D), dtype=W.dtype, device=device_of(W))
        for d in order:
            logits, _ = self._logits(X, self.params, stack)
            p = F.sigmoid(logits[:, int(d)])
            u = uniform(rng, (n,), like=W)
            X[:, int(d)] = xp.astype(u < p, W.dtype)
        return X

    # -------------------------------------------------------------- training
    def fit(self, X, epochs=100, batch_size=100, lr=1e-3, optimizer="adam",
            optimizer_kwargs=None, validation_data=None, early_stopping_patience=None,
            random_state=None, progress=False, callbacks=None, **fit_kwargs):
        """Train with :func:`lvm_core.train.fit_minibatch` (Adam by default); the loss is the
        mean negative log-likelihood of one mask per minibatch (a stored mask, or a fresh
        one with ``mask_resampling="per_step"``, drawn with the generator of
        ``random_state``).  With ``validation_data`` and ``early_stopping_patience`` the
        parameters of the best validation epoch (:meth:`validation_loss`, the ensemble's
        mean NLL) are kept.  Returns self."""
        from ..train import fit_minibatch

        _, X = self._prepare(X)
        if validation_data is not None:
            _, validation_data = self._prepare(validation_data, name="validation_data")
        self.history_ = fit_minibatch(
            self, X, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
            optimizer_kwargs=optimizer_kwargs, validation_data=validation_data,
            early_stopping_patience=early_stopping_patience, random_state=random_state,
            progress=progress, callbacks=callbacks, **fit_kwargs)
        return self

