"""Restricted Boltzmann machines: binary (RBM) and Gaussian-Bernoulli visible units.

References: Smolensky (1986); Hinton (2002), "Training products of experts by
minimizing contrastive divergence"; Tieleman (2008), "Training restricted
Boltzmann machines using approximations to the likelihood gradient" (PCD);
Hinton (2010), "A practical guide to training RBMs" (momentum, weight decay,
base-rate visible biases); Besag (1975) (pseudo-likelihood); Cho, Raiko &
Ilin (2011), "Improved learning of Gaussian-Bernoulli RBMs"; Goodfellow,
Bengio & Courville, *Deep Learning* (2016), secs. 16.7.1, 18.2-18.3, 20.2, 20.5.

Binary RBM, v in {0,1}^D, h in {0,1}^H, weights W (D, H), biases b (D,), c (H,)::

    E(v, h) = -b.v - c.h - v^T W h,          p(v, h) = exp(-E(v, h)) / Z
    p(h_j = 1 | v) = sigmoid(c_j + (v W)_j),  p(v_i = 1 | h) = sigmoid(b_i + (W h)_i)
    F(v) = -log sum_h exp(-E(v, h)) = -b.v - sum_j softplus(c_j + (v W)_j)
    log p(v) = -F(v) - log Z.

Gradient of the log-likelihood (data average minus model average)::

    d log p(v) / dW = v sigmoid(a)^T - E_p[v sigmoid(a)^T],   a = c + v W
    d log p(v) / db = v - E_p[v],     d log p(v) / dc = sigmoid(a) - E_p[sigmoid(a)].

Contrastive divergence CD-k replaces the model average by states v^(k) after k
block Gibbs sweeps started at the data; persistent CD (PCD) keeps the chains
between updates.  Both are gradient steps on the free-energy gap

    L = mean_batch F(v) - mean_chains F(v^(k))       (v^(k) held fixed),

whose gradient is minus the estimate above; :meth:`RBM.loss_and_grads`
returns L and dL/dtheta, and :func:`lvm_core.train.fit_minibatch` runs SGD
with momentum on it (weight decay lambda adds lambda W to dL/dW).

Gaussian-Bernoulli RBM (Cho et al. 2011), sigma_i^2 = exp(log_var_i)::

    E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - c.h - (v / sigma^2)^T W h
    p(v | h) = N(b + W h, diag sigma^2),  p(h_j = 1 | v) = sigmoid(c_j + ((v / sigma^2) W)_j)
    F(v) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(a_j),  a = c + (v / sigma^2) W
    dF/dlog_var_i = -(v_i - b_i)^2 / (2 sigma_i^2) + (v_i / sigma_i^2) (W sigmoid(a))_i.

Pseudo-likelihood (Besag 1975) of a binary RBM:
PL(v) = sum_i log sigmoid(F(v with bit i flipped) - F(v)).
"""
from __future__ import annotations

import math

import numpy as np

from ... import ops
from ...backend import get_namespace, item, to_numpy
from ...functional.activations import log_sigmoid, softplus
from ...random import as_generator, normal
from ...validation import (
    all_binary,
    check_array,
    check_choice,
    check_is_fitted,
    check_positive_int,
)
from ..base import ParamsMixin, TransformerMixin
from . import partition as _pz
from .partition import _bernoulli, _sigmoid

__all__ = ["RBM", "GaussianBernoulliRBM", "check_binary"]


def check_binary(X, name="X"):
    """Raise ValueError unless every entry of X is 0 or 1."""
    xp = get_namespace(X)
    if not all_binary(X):
        bad = to_numpy(xp.reshape(X[~((X == 0) | (X == 1))], (-1,))[:3])
        raise ValueError(
            f"{name} must be binary (every entry 0 or 1) for a Bernoulli RBM; found values "
            f"such as {bad.tolist()}. Binarise it first (e.g. X = (X > 0.5) with "
            "data_tools.binarize), or use GaussianBernoulliRBM for real-valued data."
        )
    return X


def _scale_rows(p, w, overwrite=False):
    """p_n * w_n for each row n of p (N, H); in place when ``overwrite``."""
    if overwrite:
        p *= w[:, None]
        return p
    return p * w[:, None]


def _check_float(value, name, low=0.0, high=None, low_inclusive=True):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise TypeError(f"{name} must be a real number; got {value!r}.")
    value = float(value)
    ok = (value >= low if low_inclusive else value > low) and (high is None or value < high)
    if not ok or not math.isfinite(value):
        rng = f"{'[' if low_inclusive else '('}{low}, {high if high is not None else 'inf'})"
        raise ValueError(f"{name} must lie in {rng}; got {value!r}.")
    return value


class _RBMBase(TransformerMixin, ParamsMixin):
    """Training loop glue, chains and partition functions shared by both RBMs."""

    _visible = "binary"

    # ------------------------------------------------------------------ checks
    def _check_hyper(self):
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.n_iter, "n_iter")
        check_positive_int(self.batch_size, "batch_size")
        check_positive_int(self.k, "k")
        check_choice(self.method, "method", ("cd", "pcd"))
        _check_float(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False)
        _check_float(self.momentum, "momentum", low=0.0, high=1.0)
        _check_float(self.weight_decay, "weight_decay", low=0.0)
        _check_float(self.init_scale, "init_scale", low=0.0, low_inclusive=False)
        if self.n_chains is not None:
            check_positive_int(self.n_chains, "n_chains")

    def _check_fitted(self):
        check_is_fitted(self, ["components_"])

    def _check_X(self, X, name="X", fitting=False):
        if name != "X":
            X = check_array(X, name, ndim=2, min_rows=2 if fitting else 1,
                            n_features=None if fitting else self.n_features_in_)
        elif fitting:
            X = self._validate_data(X, reset=True, ndim=2, min_rows=2)
        else:
            X = self._validate_data(X, reset=False, ndim=2, n_features=self.n_features_in_)
        xp = get_namespace(X)
        if not xp.isdtype(X.dtype, "real floating"):
            X = xp.astype(X, xp.float64)
        if self._visible == "binary":
            check_binary(X, name)
        return X

    @property
    def _n_features_out(self):
        """H, the number of hidden units (columns of ``transform``'s output)."""
        components = getattr(self, "components_", None)
        return None if components is None else int(components.shape[1])

    @property
    def params(self):
        """The parameters as a dict of arrays (shared with the fitted attributes)."""
        return self._params

    @params.setter
    def params(self, value):
        self._params = dict(value)
        self._publish()

    # ------------------------------------------------------------------ training
    def fit(self, X, y=None):
        """Fit by CD-k or PCD with SGD + momentum on minibatches; returns self.

        Starts afresh every call.  ``history_`` holds the training record of
        :func:`lvm_core.train.fit_minibatch` (the loss is the free-energy gap).
        """
        from ...train import fit_minibatch

        self._check_hyper()
        X = self._check_X(X, fitting=True)  # at least 2 rows
        rng = as_generator(self.random_state)
        self.n_features_in_ = int(X.shape[1])
        self._params = self._init_params(X, rng)
        self._chains = None
        self._publish()
        self.history_ = fit_minibatch(
            self, X, epochs=int(self.n_iter), batch_size=int(self.batch_size),
            optimizer="sgd", lr=float(self.learning_rate),
            optimizer_kwargs={"momentum": float(self.momentum)} if self.momentum else {},
            random_state=rng, progress=bool(self.verbose),
        )
        self._publish()
        self.log_partition_ = None
        return self

    def loss_and_grads(self, X, rng=None):
        """Free-energy gap L = mean F(v_data) - mean F(v_neg) and dL/dtheta.

        v_neg: k Gibbs sweeps from the data (CD-k) or from the persistent
        chains (PCD); L's gradient with v_neg fixed is minus the CD/PCD
        estimate of the log-likelihood gradient (module docstring).  Data and
        chain rows are stacked, V = [X; v_neg] with signed weights
        s = [1/N, ..., 1/N, -1/M, ..., -1/M], so that L = sum_n s_n F(V_n) and
        dL/dtheta = sum_n s_n dF(V_n)/dtheta take one matrix product each.
        """
        rng = as_generator(rng)
        xp = get_namespace(X)
        N, D = X.shape
        if getattr(self, "_ws", None) is None:
            self._ws = ops.Workspace()  # step-to-step buffers (NumPy; others allocate)
        ws = self._ws
        units_pos = None
        if self.method == "pcd":
            if self._chains is None:
                n_chains = int(self.n_chains or self.batch_size)
                self._chains = self._initial_chains(X, n_chains, rng)
            h = self._chains
        else:
            units_pos = self._hidden_units(X)  # (p (N, H), A (N,))
            h = ops.bernoulli_sample(units_pos[0], rng)
        M = h.shape[0]
        V = ops.scratch(ws, "rbm.V", (N + M, D), X)  # V = [X; v_neg]
        V[:N, :] = X
        V_neg = V[N:, :]
        v_neg = self._gibbs_from_hidden(h, int(self.k), rng, out=V_neg)  # (M, D)
        if v_neg is not V_neg:
            V[N:, :] = v_neg
        if units_pos is None:
            p, A = self._hidden_units(V, ws=ws)  # (N + M, H), (N + M,)
        else:
            p_neg, A_neg = self._hidden_units(v_neg)
            p = xp.concat([units_pos[0], p_neg], axis=0)
            A = xp.concat([units_pos[1], A_neg], axis=0)
        if self.method == "pcd":
            self._chains = ops.bernoulli_sample(p[N:, :], rng)
        s = xp.concat([xp.full((N,), 1.0 / N, dtype=X.dtype, device=X.device),
                       xp.full((M,), -1.0 / M, dtype=X.dtype, device=X.device)])
        grads, F = self._free_energy_grads_from_input(V, None, p=p, A=A, weights=s,
                                                      overwrite_p=True)
        if self.weight_decay:
            grads["W"] = grads["W"] + float(self.weight_decay) * self._params["W"]
        return xp.sum(s * F), grads

    def _gibbs_from_hidden(self, h, k, rng, out=None):
        """k sweeps h -> v (-> h -> v ...); returns the last visible states (written into
        ``out`` when the visible sampler can)."""
        for step in range(k):
            v = self._sample_visible_given_hidden(h, rng, out=out if step == k - 1 else None)
            if step < k - 1:
                h = ops.bernoulli_sample(self._hidden_units(v)[0], rng)
        return v

    def _hidden_units(self, V, ws=None):
        """(P(h = 1 | v) (N, H), A (N,)) with A_n = sum_j softplus(a_nj), a = c + (scaled) v W:
        the hidden units' means and log-normaliser (:func:`lvm_core.ops.bernoulli_units`)."""
        W = self._params["W"]
        out = None if ws is None else ops.scratch(ws, "rbm.a", (V.shape[0], W.shape[1]), V)
        a = ops.matmul(self._scaled_visible(V), W, out=out)
        return ops.bernoulli_units(a, self._params["c"], out=a, ws=ws)

    def _scaled_visible(self, V):
        """The visible rows as they enter the hidden units' inputs (v; v / sigma^2 when
        the visible units are Gaussian)."""
        return V

    def _initial_chains(self, X, n_chains, rng):
        """PCD chains start at hidden samples of random training rows."""
        xp = get_namespace(X)
        rows = rng.integers(0, X.shape[0], size=n_chains)
        idx = xp.asarray(rows, device=X.device)
        return _bernoulli(_sigmoid(self._hidden_input(xp.take(X, idx, axis=0))), rng)

    def _publish(self):
        p = self._params
        self.components_ = p["W"]
        self.intercept_visible_ = p["b"]
        self.intercept_hidden_ = p["c"]

    # ------------------------------------------------------------------ inference
    def free_energy(self, X):
        """F(v) for each row, shape (N,)."""
        self._check_fitted()
        X = self._check_X(X)
        return self._free_energy_grads_from_input(X, self._hidden_input(X), need_grads=False)[1]

    def energy(self, X, Hs):
        """E(v, h) for paired rows of X (N, D) and Hs (N, H), shape (N,).

        Binary: E = -b.v - c.h - v^T W h.  Gaussian-Bernoulli:
        E = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - c.h - (v / sigma^2)^T W h.
        """
        self._check_fitted()
        X = self._check_X(X)
        Hs = check_array(Hs, "Hs", ndim=2, n_features=int(self.components_.shape[1]), xp_like=X)
        if Hs.shape[0] != X.shape[0]:
            raise ValueError(f"X and Hs must have the same number of rows; got {X.shape[0]} "
                             f"and {Hs.shape[0]}.")
        xp = get_namespace(X, Hs)
        a = self._hidden_input(X)  # c + (scaled) v W
        return self._visible_energy(X) - xp.sum(a * Hs, axis=1)

    def visible_mean(self, Hs):
        """E[v | h] per row of Hs (N, H): sigmoid(b + W h) (binary) or b + W h (Gaussian)."""
        self._check_fitted()
        Hs = check_array(Hs, "Hs", ndim=2, n_features=int(self.components_.shape[1]))
        xp = get_namespace(Hs)
        mean = xp.matmul(Hs, self._params["W"].T) + self._params["b"]
        return _sigmoid(mean) if self._visible == "binary" else mean

    def transform(self, X):
        """P(h = 1 | v), shape (N, H)."""
        self._check_fitted()
        X = self._check_X(X)
        return _sigmoid(self._hidden_input(X))

    def gibbs(self, X, rng=None):
        """One block Gibbs sweep v -> h -> v' from the rows of X; returns v' (N, D)."""
        self._check_fitted()
        X = self._check_X(X)
        rng = as_generator(rng)
        h = _bernoulli(_sigmoid(self._hidden_input(X)), rng)
        return self._sample_visible_given_hidden(h, rng)

    def sample(self, n_samples=1, rng=None, n_steps=1000, init=None):
        """n_samples draws from the model by block Gibbs sampling, (n_samples, D).

        Chains start at ``init`` (an (n_samples, D) array) or at draws from
        the base-rate model (independent units with the visible biases), and
        run ``n_steps`` sweeps (the draws are approximate for finite n_steps).
        """
        self._check_fitted()
        n_samples = check_positive_int(n_samples, "n_samples")
        n_steps = check_positive_int(n_steps, "n_steps", minimum=0)
        rng = as_generator(rng)
        if init is None:
            v = self._path(None).sample_base(n_samples, rng)
        else:
            v = self._check_X(init, "init")
        for _ in range(n_steps):
            h = _bernoulli(_sigmoid(self._hidden_input(v)), rng)
            v = self._sample_visible_given_hidden(h, rng)
        return v

    # ------------------------------------------------------------------ partition function
    def log_partition(self, method="auto", n_runs=100, n_betas=1000, base_rate_data=None,
                      random_state=None, v_init=None):
        """log Z: exact (``"exact"``; smaller layer <= 20 units), AIS or reverse AIS.

        ``"auto"`` is exact when enumerable, else AIS.  ``base_rate_data``: binary
        data whose unit means m give the AIS base model's visible biases
        log(m / (1 - m)) (Salakhutdinov & Murray 2008); without it the base model
        is uniform (zero biases).  Ignored by the Gaussian-Bernoulli RBM, whose
        base model is N(b, sigma^2).  ``v_init``: the starting states of reverse
        AIS, ideally samples of the model (default: ``n_runs`` chains after 1,000
        Gibbs sweeps from the base model).  Returns a :class:`~lvm_core.models.energy.partition.PartitionEstimate`.
        """
        self._check_fitted()
        check_choice(method, "method", ("auto", "exact", "ais", "reverse_ais"))
        if method == "auto":
            method = "exact" if self._enumerable() else "ais"
        if method == "exact":
            value = self._exact_log_partition()
            return _pz.PartitionEstimate(value, 0.0, value, value, "exact", None)
        rng = as_generator(random_state)
        path = self._path(base_rate_data)
        if method == "ais":
            return _pz.ais_log_partition(path, n_runs=n_runs, n_betas=n_betas, rng=rng)
        if v_init is None:
            v_init = self.sample(n_runs, rng=rng, n_steps=1000)
        return _pz.reverse_ais_log_partition(path, v_init, n_betas=n_betas, rng=rng)

    def estimate_log_partition(self, **kwargs):
        """Run :meth:`log_partition` and keep the result in ``log_partition_`` (used by
        :meth:`score_samples` for models too large to enumerate); returns it."""
        self.log_partition_ = self.log_partition(**kwargs)
        return self.log_partition_

    def _enumerable(self):
        D, H = self.components_.shape
        return (min(D, H) if self._visible == "binary" else H) <= _pz.MAX_EXACT_UNITS

    def score_samples(self, X):
        """log p(v) = -F(v) - log Z per row, (N,).

        log Z is exact when the smaller layer has <= 20 units (hidden layer for
        the Gaussian-Bernoulli RBM); otherwise ``log_partition_`` from
        :meth:`estimate_log_partition` is used, or, when that is unset, an AIS
        estimate with the default settings and ``random_state`` is computed
        for this call (not stored).
        """
        self._check_fitted()
        X = self._check_X(X)
        F = self.free_energy(X)
        if self._enumerable():
            log_z = self._exact_log_partition()
        elif getattr(self, "log_partition_", None) is not None:
            log_z = self.log_partition_.log_z
        else:
            log_z = self.log_partition(method="ais", random_state=self.random_state).log_z
        return -F - log_z

    def score(self, X, y=None):
        """Mean log-likelihood per sample (a float)."""
        xp = get_namespace(self.components_)
        return item(xp.mean(self.score_samples(X)))


class RBM(_RBMBase):
    """Binary restricted Boltzmann machine trained by CD-k or persistent CD.

    Parameters
    ----------
    n_components : int
        Number of hidden units H.
    learning_rate : float
        SGD step size on the batch-mean gradient.
    batch_size : int
        Rows per minibatch.
    n_iter : int
        Epochs.
    method : {"pcd", "cd"}
        Persistent chains (Tieleman 2008) or chains restarted at the data (Hinton 2002).
    k : int
        Gibbs sweeps per update.
    n_chains : int or None
        Persistent chains (PCD); default ``batch_size``.
    momentum : float in [0, 1)
        Heavy-ball momentum of the SGD steps.
    weight_decay : float
        L2 penalty lambda/2 ||W||^2 on the weights (not the biases).
    init_scale : float
        W ~ N(0, init_scale^2).
    visible_bias_init : {"base_rate", "zeros"}
        b = log(m / (1 - m)) of the data's unit means m (clipped), Hinton (2010),
        or zeros (scikit-learn's choice).
    random_state : None, int or Generator
    verbose : bool
        Progress bar (needs tqdm).

    Attributes
    ----------
    components_ (D, H) = W, intercept_visible_ (D,) = b, intercept_hidden_ (H,) = c,
    n_features_in_, history_, log_partition_ (None until :meth:`estimate_log_partition`).
    """

    _visible = "binary"

    def __init__(self, n_components=256, learning_rate=0.05, batch_size=100, n_iter=10,
                 method="pcd", k=1, n_chains=None, momentum=0.0, weight_decay=0.0,
                 init_scale=0.01, visible_bias_init="base_rate", random_state=None,
                 verbose=False):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.method = method
        self.k = k
        self.n_chains = n_chains
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.init_scale = init_scale
        self.visible_bias_init = visible_bias_init
        self.random_state = random_state
        self.verbose = verbose

    @classmethod
    def from_params(cls, W, b, c, **hyper):
        """An RBM with given W (D, H), b (D,), c (H,) (e.g. for scoring other weights)."""
        W = check_array(W, "W", ndim=2, dtype_kind="real floating")
        xp = get_namespace(W)
        model = cls(n_components=int(W.shape[1]), **hyper)
        b = check_array(b, "b", ndim=1, xp_like=W)
        c = check_array(c, "c", ndim=1, xp_like=W)
        if b.shape[0] != W.shape[0] or c.shape[0] != W.shape[1]:
            raise ValueError(
                f"b must have D = {W.shape[0]} and c H = {W.shape[1]} entries; got "
                f"{b.shape[0]} and {c.shape[0]}."
            )
        model._params = {"W": W, "b": xp.astype(b, W.dtype), "c": xp.astype(c, W.dtype)}
        model.n_features_in_ = int(W.shape[0])
        model._chains = None
        model.log_partition_ = None
        model._publish()
        return model

    def _init_params(self, X, rng):
        check_choice(self.visible_bias_init, "visible_bias_init", ("base_rate", "zeros"))
        xp = get_namespace(X)
        D, H = X.shape[1], int(self.n_components)
        W = float(self.init_scale) * normal(rng, (D, H), like=X)
        if self.visible_bias_init == "base_rate":
            m = xp.clip(xp.mean(X, axis=0), 1e-3, 1.0 - 1e-3)
            b = xp.log(m) - xp.log1p(-m)
        else:
            b = xp.zeros((D,), dtype=X.dtype, device=X.device)
        c = xp.zeros((H,), dtype=X.dtype, device=X.device)
        return {"W": W, "b": b, "c": c}

    # -- conditionals
    def _hidden_input(self, V):
        """a = c + V W, (N, H)."""
        xp = get_namespace(V)
        return xp.matmul(V, self._params["W"]) + self._params["c"]

    def _visible_logits(self, Hs):
        """b + Hs W^T, (N, D)."""
        xp = get_namespace(Hs)
        return xp.matmul(Hs, self._params["W"].T) + self._params["b"]

    def _sample_visible_given_hidden(self, Hs, rng, out=None):
        logits = ops.matmul(Hs, self._params["W"].T, out=out)
        p, _ = ops.bernoulli_units(logits, self._params["b"], out=logits)
        return ops.bernoulli_sample(p, rng, out=p)

    def _visible_energy(self, V):
        """-b.v, (N,)."""
        xp = get_namespace(V)
        return -xp.matmul(V, self._params["b"])

    def _free_energy_grads_from_input(self, V, a, p=None, need_grads=True, weights=None,
                                      A=None, overwrite_p=False):
        """F (N,) and the weighted sums sum_n s_n dF(v_n)/dtheta (s_n = 1 by default):

        F(v) = -b.v - sum_j softplus(a_j),  a = c + v W;
        dF/dW = -v sigmoid(a)^T,  dF/db = -v,  dF/dc = -sigmoid(a).
        ``A`` (N,), when given with ``p``, is sum_j softplus(a_j) (then ``a`` is not used);
        ``overwrite_p=True``: ``p`` is scratch, its rows are scaled in place by -s_n.
        """
        xp = get_namespace(V)
        if A is None:
            A = xp.sum(softplus(a), axis=1)
        F = -xp.matmul(V, self._params["b"]) - A
        if not need_grads:
            return None, F
        if p is None:
            p = _sigmoid(a)
        if weights is None:
            grads = {"W": -xp.matmul(V.T, p), "b": -xp.sum(V, axis=0), "c": -xp.sum(p, axis=0)}
        else:
            neg_s = -weights
            sp = _scale_rows(p, neg_s, overwrite_p)  # (N, H): -s_n sigmoid(a_n)
            grads = {"W": ops.matmul(V.T, sp), "b": xp.matmul(neg_s, V), "c": xp.sum(sp, axis=0)}
        return grads, F

    def free_energy_grads(self, X):
        """(sum over rows of dF/dtheta as a dict W/b/c, F (N,)) for binary X."""
        self._check_fitted()
        X = self._check_X(X)
        return self._free_energy_grads_from_input(X, self._hidden_input(X))

    def pseudo_log_likelihood(self, X):
        """Besag's log PL(v) = sum_i log sigmoid(F(v^(i)) - F(v)), v^(i) = v with bit i flipped.

        Exact (all D flips, O(N D H)), (N,).
        """
        self._check_fitted()
        X = self._check_X(X)
        xp = get_namespace(X)
        W, b = self._params["W"], self._params["b"]
        a = self._hidden_input(X)  # (N, H)
        sp = xp.sum(softplus(a), axis=1)  # (N,)
        sign = 1.0 - 2.0 * X  # +1 where v_i = 0 (flip to 1), -1 where v_i = 1
        total = xp.zeros((X.shape[0],), dtype=X.dtype, device=X.device)
        for i in range(X.shape[1]):
            s = sign[:, i]
            a_i = a + s[:, None] * W[i, :][None, :]  # hidden input with bit i flipped
            dF = -s * b[i] - xp.sum(softplus(a_i), axis=1) + sp  # F(v^(i)) - F(v)
            total = total + log_sigmoid(dF)
        return total

    def _exact_log_partition(self):
        p = self._params
        return _pz.exact_log_partition(p["W"], p["b"], p["c"])

    def _path(self, base_rate_data):
        xp = get_namespace(self.components_)
        W = self._params["W"]
        if base_rate_data is None:
            b_base = xp.zeros((W.shape[0],), dtype=W.dtype, device=W.device)
        else:
            Xb = self._check_X(base_rate_data, "base_rate_data")
            m = xp.clip(xp.mean(xp.astype(Xb, W.dtype), axis=0), 1e-3, 1.0 - 1e-3)
            b_base = xp.log(m) - xp.log1p(-m)
        return _pz.BinaryPath(W, self._params["b"], self._params["c"], b_base)


class GaussianBernoulliRBM(_RBMBase):
    """RBM with Gaussian visible units N(b + W h, sigma^2) for real-valued data.

    Parameters as :class:`RBM`, plus ``learn_variance`` (learn log_var by the
    same CD/PCD gradient, else keep ``log_var`` at ``log(init_var)``) and
    ``init_var`` (default 1: standardise the data first, Hinton 2010).
    Attributes add ``log_var_`` (D,).  The learning rate is usually much
    smaller than for binary units (1e-3).
    """

    _visible = "gaussian"

    def __init__(self, n_components=64, learning_rate=1e-3, batch_size=100, n_iter=10,
                 method="pcd", k=1, n_chains=None, momentum=0.0, weight_decay=0.0,
                 init_scale=0.01, learn_variance=True, init_var=1.0, random_state=None,
                 verbose=False):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.method = method
        self.k = k
        self.n_chains = n_chains
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.init_scale = init_scale
        self.learn_variance = learn_variance
        self.init_var = init_var
        self.random_state = random_state
        self.verbose = verbose

    def _init_params(self, X, rng):
        _check_float(self.init_var, "init_var", low=0.0, low_inclusive=False)
        xp = get_namespace(X)
        D, H = X.shape[1], int(self.n_components)
        params = {
            "W": float(self.init_scale) * normal(rng, (D, H), like=X),
            "b": xp.mean(X, axis=0),
            "c": xp.zeros((H,), dtype=X.dtype, device=X.device),
        }
        log_var = xp.full((D,), math.log(float(self.init_var)), dtype=X.dtype, device=X.device)
        if self.learn_variance:
            params["log_var"] = log_var
        else:
            self.log_var_ = log_var  # fixed: a fitted attribute, not a parameter
        return params

    def _publish(self):
        super()._publish()
        if "log_var" in self._params:
            self.log_var_ = self._params["log_var"]

    def _log_var(self):
        return self._params["log_var"] if "log_var" in self._params else self.log_var_

    def _hidden_input(self, V):
        """a = c + (V / sigma^2) W, (N, H)."""
        xp = get_namespace(V)
        return xp.matmul(V * xp.exp(-self._log_var()), self._params["W"]) + self._params["c"]

    def _sample_visible_given_hidden(self, Hs, rng, out=None):
        """v ~ N(b + W h, sigma^2) (a new array; ``out`` is not used)."""
        xp = get_namespace(Hs)
        mean = xp.matmul(Hs, self._params["W"].T) + self._params["b"]
        return mean + xp.exp(0.5 * self._log_var()) * normal(rng, tuple(mean.shape), like=mean)

    def _visible_energy(self, V):
        """sum_i (v_i - b_i)^2 / (2 sigma_i^2), (N,)."""
        xp = get_namespace(V)
        r = V - self._params["b"]
        return 0.5 * xp.sum(r * r * xp.exp(-self._log_var()), axis=1)

    def _scaled_visible(self, V):
        return V * get_namespace(V).exp(-self._log_var())

    def _free_energy_grads_from_input(self, V, a, p=None, need_grads=True, weights=None,
                                      A=None, overwrite_p=False):
        """F(v) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - sum_j softplus(a_j), and the weighted
        sums over rows (weights s_n, default 1) of

        dF/dW = -(v / sigma^2) sigmoid(a)^T,  dF/db = -(v - b) / sigma^2,  dF/dc = -sigmoid(a),
        dF/dlog_var_i = -(v_i - b_i)^2 / (2 sigma_i^2) + (v_i / sigma_i^2) (W sigmoid(a))_i.
        """
        xp = get_namespace(V)
        inv_var = xp.exp(-self._log_var())
        r = V - self._params["b"]
        if A is None:  # A_n = sum_j softplus(a_nj), when the caller has it (then a is unused)
            A = xp.sum(softplus(a), axis=1)
        F = 0.5 * xp.sum(r * r * inv_var, axis=1) - A
        if not need_grads:
            return None, F
        if p is None:
            p = _sigmoid(a)
        if weights is None:
            weights = xp.ones((V.shape[0],), dtype=V.dtype, device=V.device)
        Vs = V * inv_var  # (N, D)
        sp = _scale_rows(p, weights, overwrite_p)  # (N, H)
        grads = {"W": -xp.matmul(Vs.T, sp), "b": -xp.matmul(weights, r) * inv_var,
                 "c": -xp.sum(sp, axis=0)}
        if "log_var" in self._params:
            grads["log_var"] = (-0.5 * xp.matmul(weights, r * r) * inv_var
                                + xp.sum(Vs * xp.matmul(sp, self._params["W"].T), axis=0))
        return grads, F

    def free_energy_grads(self, X):
        """(sum over rows of dF/dtheta as a dict, F (N,))."""
        self._check_fitted()
        X = self._check_X(X)
        return self._free_energy_grads_from_input(X, self._hidden_input(X))

    def _exact_log_partition(self):
        p = self._params
        return _pz.exact_log_partition_gaussian(p["W"], p["b"], p["c"], self._log_var())

    def _path(self, base_rate_data):
        p = self._params
        return _pz.GaussianPath(p["W"], p["b"], p["c"], self._log_var())
