"""Deep belief networks and deep Boltzmann machines built from binary RBMs.

References: Hinton, Osindero & Teh (2006), "A fast learning algorithm for deep
belief nets"; Salakhutdinov & Hinton (2009), "Deep Boltzmann machines";
Salakhutdinov & Murray (2008) (AIS); Goodfellow, Bengio & Courville, *Deep
Learning* (2016), secs. 20.3-20.4.

DBN (Hinton et al. 2006): RBMs trained greedily, layer l on samples of
p(h_{l-1} | h_{l-2}) from the layers below.  The generative model is the top
RBM over (h_{L-1}, h_L) with directed sigmoid layers below it:
p(h_{l-1} = 1 | h_l) = sigmoid(b_l + W_l h_l).  ``transform`` is the up pass
of means mu_l = sigmoid(c_l + mu_{l-1} W_l) to every layer.

DBM with two hidden layers (Salakhutdinov & Hinton 2009)::

    E(v, h1, h2) = -b.v - c1.h1 - c2.h2 - v^T W1 h1 - h1^T W2 h2.

Mean-field posterior q(h1, h2 | v) = prod Bernoulli(mu1) Bernoulli(mu2), at a
fixed point of

    mu1 = sigmoid(c1 + v W1 + mu2 W2^T),      mu2 = sigmoid(c2 + mu1 W2),

started at the bottom-up pass mu1 = sigmoid(c1 + 2 v W1), mu2 = sigmoid(c2 + mu1 W2).
Variational lower bound on log p(v):

    log p(v) >= b.v + c1.mu1 + c2.mu2 + v W1 mu1 + mu1 W2 mu2 + H(mu1) + H(mu2) - log Z,
    H(mu) = -sum_j [mu_j log mu_j + (1 - mu_j) log(1 - mu_j)].

The DBM is bipartite between h1 and (v, h2): it is an RBM with "visible" layer
h1 (biases c1), "hidden" layer [v, h2] (biases [b, c2]) and weights
[W1^T | W2] (H1, D + H2), so log Z comes from the RBM routines (exact when
H1 <= 20 or D + H2 <= 20, else AIS).  Learning: gradient steps on

    L = mean_data E(v, mu1, mu2) - mean_chains E(v~, h1~, h2~),

with persistent Gibbs chains (h1 | v, h2, then v | h1 and h2 | h1 together).
Greedy pretraining with the doubled-input correction (S&H 2009, sec. 3.1):
the bottom RBM uses p(h1 | v) = sigmoid(c1 + 2 v W1) (two tied copies of v),
the top RBM p(h1 | h2) = sigmoid(b + 2 W2 h2) (two tied copies of h2), so that
each middle unit sees input from both neighbours in the composed DBM; the CD
update keeps its usual form <v h^T>_data - <v h^T>_model.
"""
from __future__ import annotations

from ...backend import get_namespace, item
from ...functional.activations import softplus
from ...functional.reductions import logsumexp
from ...random import as_generator, normal
from ...validation import check_array, check_is_fitted, check_positive_int
from ..base import ParamsMixin
from . import partition as _pz
from .partition import _bernoulli, _sigmoid
from .rbm import RBM, _check_float, check_binary

__all__ = ["DBN", "DBM"]


class _ScaledRBM(RBM):
    """RBM whose up input is ``up`` x v W and down input ``down`` x W h (pretraining only)."""

    def __init__(self, up=1.0, down=1.0, **kwargs):
        super().__init__(**kwargs)
        self.up = up
        self.down = down

    def _hidden_input(self, V):
        xp = get_namespace(V)
        return self.up * xp.matmul(V, self._params["W"]) + self._params["c"]

    def _visible_logits(self, Hs):
        xp = get_namespace(Hs)
        return self.down * xp.matmul(Hs, self._params["W"].T) + self._params["b"]


_RBM_HYPER = ("learning_rate", "batch_size", "n_iter", "method", "k", "momentum",
              "weight_decay", "init_scale")


class DBN(ParamsMixin):
    """Deep belief network: binary RBMs stacked by greedy layer-wise training.

    ``n_components``: hidden sizes (H_1, ..., H_L); the other parameters are
    those of :class:`RBM`, shared by every layer.  Attributes: ``rbms_`` (the
    fitted layers, bottom first), ``n_features_in_``.
    """

    def __init__(self, n_components=(256, 256), learning_rate=0.05, batch_size=100,
                 n_iter=10, method="pcd", k=1, momentum=0.0, weight_decay=0.0,
                 init_scale=0.01, random_state=None):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.method = method
        self.k = k
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.init_scale = init_scale
        self.random_state = random_state

    def fit(self, X, y=None):
        """Greedy training: RBM l is fitted to binary samples of p(h_{l-1} | ...) ; returns self."""
        sizes = _check_sizes(self.n_components, "n_components", min_layers=1)
        rng = as_generator(self.random_state)
        X = check_array(X, "X", ndim=2, min_rows=2)
        check_binary(X)
        self.n_features_in_ = int(X.shape[1])
        hyper = {name: getattr(self, name) for name in _RBM_HYPER}
        self.rbms_ = []
        data = X
        for H in sizes:
            rbm = RBM(n_components=H, random_state=rng, **hyper).fit(data)
            self.rbms_.append(rbm)
            data = _bernoulli(rbm.transform(data), rng)
        return self

    def transform(self, X):
        """Up pass of means [mu_1, ..., mu_L], mu_l = sigmoid(c_l + mu_{l-1} W_l), mu_0 = v."""
        check_is_fitted(self, ["rbms_"])
        X = check_array(X, "X", ndim=2, n_features=self.n_features_in_)
        xp = get_namespace(X)
        out, mu = [], X
        for rbm in self.rbms_:
            p = rbm._params
            mu = _sigmoid(xp.matmul(mu, p["W"]) + p["c"])
            out.append(mu)
        return out

    def sample(self, n_samples=1, rng=None, n_steps=1000):
        """Gibbs sampling in the top RBM, then a down pass of Bernoulli draws; (n, D)."""
        check_is_fitted(self, ["rbms_"])
        rng = as_generator(rng)
        h = self.rbms_[-1].sample(n_samples, rng=rng, n_steps=n_steps)
        for rbm in reversed(self.rbms_[:-1]):
            h = _bernoulli(_sigmoid(rbm._visible_logits(h)), rng)
        return h


class DBM(ParamsMixin):
    """Deep Boltzmann machine with two hidden layers (Salakhutdinov & Hinton 2009).

    Parameters
    ----------
    n_components : (H1, H2)
    learning_rate, batch_size, n_iter, momentum, weight_decay, init_scale :
        as for :class:`RBM` (joint training by SGD on the persistent-chain gradient).
    n_chains : int or None
        Persistent chains (default ``batch_size``).
    k : int
        Gibbs sweeps of the chains per update.
    mean_field_iter, mean_field_tol : int, float
        Fixed-point iterations (at most) and the stopping change max |mu_new - mu|.
    pretrain : bool
        Greedy pretraining with the doubled-input correction before joint training.
    pretrain_iter : int or None
        Epochs of each pretraining RBM (default ``n_iter``).
    random_state : None, int or Generator

    Attributes: ``W1_`` (D, H1), ``W2_`` (H1, H2), ``b_`` (D,), ``c1_`` (H1,),
    ``c2_`` (H2,), ``history_``, ``log_partition_`` (None until
    :meth:`estimate_log_partition`).
    """

    def __init__(self, n_components=(64, 32), learning_rate=0.01, batch_size=100, n_iter=10,
                 n_chains=None, k=1, momentum=0.0, weight_decay=0.0, init_scale=0.01,
                 mean_field_iter=30, mean_field_tol=1e-6, pretrain=True, pretrain_iter=None,
                 random_state=None):
        self.n_components = n_components
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.n_iter = n_iter
        self.n_chains = n_chains
        self.k = k
        self.momentum = momentum
        self.weight_decay = weight_decay
        self.init_scale = init_scale
        self.mean_field_iter = mean_field_iter
        self.mean_field_tol = mean_field_tol
        self.pretrain = pretrain
        self.pretrain_iter = pretrain_iter
        self.random_state = random_state

    # ------------------------------------------------------------------ parameters
    @property
    def params(self):
        """The parameters as a dict of arrays W1, W2, b, c1, c2."""
        return self._params

    @params.setter
    def params(self, value):
        self._params = dict(value)
        self._publish()

    def _publish(self):
        p = self._params
        self.W1_, self.W2_, self.b_, self.c1_, self.c2_ = p["W1"], p["W2"], p["b"], p["c1"], p["c2"]

    @classmethod
    def from_params(cls, W1, W2, b, c1, c2, **hyper):
        """A DBM with the given parameters (no training)."""
        W1 = check_array(W1, "W1", ndim=2, dtype_kind="real floating")
        W2 = check_array(W2, "W2", ndim=2, dtype_kind="real floating")
        if W2.shape[0] != W1.shape[1]:
            raise ValueError(f"W2 must have H1 = {W1.shape[1]} rows; got shape {tuple(W2.shape)}.")
        model = cls(n_components=(int(W1.shape[1]), int(W2.shape[1])), **hyper)
        model._params = {"W1": W1, "W2": W2, "b": b, "c1": c1, "c2": c2}
        model.n_features_in_ = int(W1.shape[0])
        model._chains = None
        model.log_partition_ = None
        model._publish()
        return model

    # ------------------------------------------------------------------ inference
    def mean_field(self, X, n_iter=None, tol=None):
        """Fixed point (mu1, mu2) of the mean-field equations (module docstring) for binary X."""
        check_is_fitted(self, ["W1_"])
        X = self._check_X(X)
        return self._mean_field(X, n_iter, tol)

    def _mean_field(self, X, n_iter=None, tol=None):
        xp = get_namespace(X)
        p = self._params
        n_iter = int(self.mean_field_iter if n_iter is None else n_iter)
        tol = float(self.mean_field_tol if tol is None else tol)
        vW1 = xp.matmul(X, p["W1"])  # (N, H1)
        mu1 = _sigmoid(2.0 * vW1 + p["c1"])
        mu2 = _sigmoid(xp.matmul(mu1, p["W2"]) + p["c2"])
        for _ in range(n_iter):
            mu1_new = _sigmoid(vW1 + xp.matmul(mu2, p["W2"].T) + p["c1"])
            mu2_new = _sigmoid(xp.matmul(mu1_new, p["W2"]) + p["c2"])
            change = max(item(xp.max(xp.abs(mu1_new - mu1))), item(xp.max(xp.abs(mu2_new - mu2))))
            mu1, mu2 = mu1_new, mu2_new
            if change < tol:
                break
        return mu1, mu2

    def transform(self, X):
        """Mean-field posterior means [mu1 (N, H1), mu2 (N, H2)]."""
        return list(self.mean_field(X))

    def _neg_energy(self, V, H1, H2):
        """-E(v, h1, h2) per row (N,), for binary states or mean-field means."""
        xp = get_namespace(V, H1, H2)
        p = self._params
        return (xp.matmul(V, p["b"]) + xp.matmul(H1, p["c1"]) + xp.matmul(H2, p["c2"])
                + xp.sum(xp.matmul(V, p["W1"]) * H1, axis=1)
                + xp.sum(xp.matmul(H1, p["W2"]) * H2, axis=1))

    def _as_rbm(self):
        """(W, b, c) of the equivalent RBM: visible h1, hidden [v, h2]."""
        xp = get_namespace(self._params["W1"])
        p = self._params
        W = xp.concat([p["W1"].T, p["W2"]], axis=1)  # (H1, D + H2)
        return W, p["c1"], xp.concat([p["b"], p["c2"]])

    def log_partition(self, method="auto", n_runs=100, n_betas=1000, random_state=None,
                      base_rate_data=None):
        """log Z of the DBM through its RBM form: exact (a layer of <= 20 units) or AIS.

        ``base_rate_data``: binary data whose mean-field mu1 defines the AIS base rates.
        """
        check_is_fitted(self, ["W1_"])
        W, b, c = self._as_rbm()
        xp = get_namespace(W)
        if method == "auto":
            method = "exact" if min(W.shape) <= _pz.MAX_EXACT_UNITS else "ais"
        if method == "exact":
            value = _pz.exact_log_partition(W, b, c)
            return _pz.PartitionEstimate(value, 0.0, value, value, "exact", None)
        if method != "ais":
            raise ValueError(f"method must be 'auto', 'exact' or 'ais'; got {method!r}.")
        if base_rate_data is None:
            b_base = xp.zeros_like(b)
        else:
            mu1, _ = self.mean_field(base_rate_data)
            m = xp.clip(xp.mean(mu1, axis=0), 1e-3, 1.0 - 1e-3)
            b_base = xp.log(m) - xp.log1p(-m)
        path = _pz.BinaryPath(W, b, c, b_base)
        return _pz.ais_log_partition(path, n_runs=n_runs, n_betas=n_betas,
                                     rng=as_generator(random_state))

    def estimate_log_partition(self, **kwargs):
        """Run :meth:`log_partition` and keep it in ``log_partition_``; returns it."""
        self.log_partition_ = self.log_partition(**kwargs)
        return self.log_partition_

    def lower_bound(self, X, log_z=None):
        """Variational lower bound on log p(v) per row (module docstring), (N,).

        ``log_z``: a value to use; default ``log_partition_`` when set, else
        exact/AIS through :meth:`log_partition`.
        """
        check_is_fitted(self, ["W1_"])
        X = self._check_X(X)
        mu1, mu2 = self._mean_field(X)
        if log_z is None:
            est = getattr(self, "log_partition_", None)
            log_z = (est if est is not None else self.log_partition(
                random_state=self.random_state)).log_z
        return self._neg_energy(X, mu1, mu2) + _entropy(mu1) + _entropy(mu2) - log_z

    def score_samples(self, X):
        """The variational lower bound on log p(v) (:meth:`lower_bound`), (N,)."""
        return self.lower_bound(X)

    def score(self, X, y=None):
        """Mean lower bound per sample (a float)."""
        xp = get_namespace(self.W1_)
        return item(xp.mean(self.score_samples(X)))

    def unnormalised_log_prob(self, X):
        """log p*(v) = b.v + logsumexp_h1 [c1.h1 + v W1 h1 + sum_k softplus(c2_k + (h1 W2)_k)]
        by enumerating h1 (H1 <= 20); log p(v) = log p*(v) - log Z.  (N,)."""
        check_is_fitted(self, ["W1_"])
        X = self._check_X(X)
        p = self._params
        xp = get_namespace(X)
        H1 = p["W1"].shape[1]
        if H1 > _pz.MAX_EXACT_UNITS:
            raise ValueError(f"exact log p*(v) enumerates h1; H1 = {H1} > {_pz.MAX_EXACT_UNITS}.")
        h1 = _pz.all_binary_states(H1, p["W1"])  # (R, H1)
        log_f = (xp.matmul(xp.matmul(X, p["W1"]), h1.T)  # (N, R)
                 + (xp.matmul(h1, p["c1"]) + xp.sum(softplus(xp.matmul(h1, p["W2"]) + p["c2"]),
                                                    axis=1))[None, :])
        return xp.matmul(X, p["b"]) + logsumexp(log_f, axis=1)

    def sample(self, n_samples=1, rng=None, n_steps=1000):
        """Visible states after ``n_steps`` block Gibbs sweeps from random states, (n, D)."""
        check_is_fitted(self, ["W1_"])
        n_samples = check_positive_int(n_samples, "n_samples")
        rng = as_generator(rng)
        p = self._params
        xp = get_namespace(p["W1"])
        half = xp.full((n_samples, p["W2"].shape[1]), 0.5, dtype=p["W1"].dtype,
                       device=p["W1"].device)
        chains = (_bernoulli(xp.full((n_samples, p["W1"].shape[0]), 0.5, dtype=half.dtype,
                                     device=half.device), rng), _bernoulli(half, rng))
        for _ in range(check_positive_int(n_steps, "n_steps", minimum=0)):
            chains = self._gibbs(chains[:2], rng)
        return chains[0]

    def _gibbs(self, chains, rng):
        """h1 ~ p(h1 | v, h2); then v ~ p(v | h1) and h2 ~ p(h2 | h1)."""
        p = self._params
        V, H2 = chains
        xp = get_namespace(V)
        a1 = xp.matmul(V, p["W1"]) + xp.matmul(H2, p["W2"].T) + p["c1"]
        H1 = _bernoulli(_sigmoid(a1), rng)
        V = _bernoulli(_sigmoid(xp.matmul(H1, p["W1"].T) + p["b"]), rng)
        H2 = _bernoulli(_sigmoid(xp.matmul(H1, p["W2"]) + p["c2"]), rng)
        return V, H2, H1

    # ------------------------------------------------------------------ training
    def _check_X(self, X, name="X", fitting=False):
        X = check_array(X, name, ndim=2, min_rows=2 if fitting else 1,
                        n_features=None if fitting else self.n_features_in_)
        xp = get_namespace(X)
        if not xp.isdtype(X.dtype, "real floating"):
            X = xp.astype(X, xp.float64)
        return check_binary(X, name)

    def fit(self, X, y=None):
        """Greedy pretraining (optional), then joint training with persistent chains; self."""
        from ...train import fit_minibatch

        H1, H2 = _check_sizes(self.n_components, "n_components", min_layers=2, max_layers=2)
        _check_float(self.learning_rate, "learning_rate", low=0.0, low_inclusive=False)
        _check_float(self.momentum, "momentum", low=0.0, high=1.0)
        _check_float(self.weight_decay, "weight_decay", low=0.0)
        check_positive_int(self.k, "k")
        check_positive_int(self.n_iter, "n_iter")
        check_positive_int(self.mean_field_iter, "mean_field_iter")
        if self.n_chains is not None:
            check_positive_int(self.n_chains, "n_chains")
        if self.pretrain_iter is not None:
            check_positive_int(self.pretrain_iter, "pretrain_iter")
        _check_float(self.init_scale, "init_scale", low=0.0)
        X = self._check_X(X, fitting=True)
        xp = get_namespace(X)
        rng = as_generator(self.random_state)
        D = int(X.shape[1])
        self.n_features_in_ = D
        if self.pretrain:
            hyper = {name: getattr(self, name) for name in _RBM_HYPER if name != "method"}
            hyper["n_iter"] = int(self.pretrain_iter or self.n_iter)
            hyper["learning_rate"] = max(float(self.learning_rate), 0.05)
            bottom = _ScaledRBM(up=2.0, down=1.0, n_components=H1, random_state=rng,
                                **hyper).fit(X)
            h1 = _bernoulli(_sigmoid(bottom._hidden_input(X)), rng)
            top = _ScaledRBM(up=1.0, down=2.0, n_components=H2, random_state=rng,
                             **hyper).fit(h1)
            self._params = {"W1": bottom.components_, "W2": top.components_,
                            "b": bottom.intercept_visible_,
                            "c1": 0.5 * (bottom.intercept_hidden_ + top.intercept_visible_),
                            "c2": top.intercept_hidden_}
        else:
            s = float(self.init_scale)
            m = xp.clip(xp.mean(X, axis=0), 1e-3, 1.0 - 1e-3)
            self._params = {"W1": s * normal(rng, (D, H1), like=X),
                            "W2": s * normal(rng, (H1, H2), like=X),
                            "b": xp.log(m) - xp.log1p(-m),
                            "c1": xp.zeros((H1,), dtype=X.dtype, device=X.device),
                            "c2": xp.zeros((H2,), dtype=X.dtype, device=X.device)}
        self._chains = None
        self._publish()
        self.history_ = fit_minibatch(
            self, X, epochs=check_positive_int(self.n_iter, "n_iter"),
            batch_size=check_positive_int(self.batch_size, "batch_size"), optimizer="sgd",
            lr=float(self.learning_rate),
            optimizer_kwargs={"momentum": float(self.momentum)} if self.momentum else {},
            random_state=rng, progress=False)
        self._publish()
        self.log_partition_ = None
        return self

    def loss_and_grads(self, X, rng=None):
        """L = mean_data E(v, mu1, mu2) - mean_chains E(v~, h1~, h2~) and dL/dtheta.

        At the mean-field fixed point the data term's gradient is minus the gradient
        of the variational bound (its mu-derivative vanishes there), so SGD on L
        follows the bound's gradient with the model term from persistent chains.
        """
        rng = as_generator(rng)
        xp = get_namespace(X)
        if self._chains is None:
            M = int(self.n_chains or self.batch_size)
            rows = xp.asarray(rng.integers(0, X.shape[0], size=M), device=X.device)
            V0 = xp.take(X, rows, axis=0)
            mu1, mu2 = self._mean_field(V0)
            self._chains = (V0, _bernoulli(mu2, rng))
        mu1, mu2 = self._mean_field(X)
        chains = self._chains
        for _ in range(int(self.k)):
            chains = self._gibbs(chains[:2], rng)
        Vn, H2n, H1n = chains
        self._chains = (Vn, H2n)
        N, M = X.shape[0], Vn.shape[0]
        s = xp.concat([xp.full((N,), 1.0 / N, dtype=X.dtype, device=X.device),
                       xp.full((M,), -1.0 / M, dtype=X.dtype, device=X.device)])
        V = xp.concat([X, Vn], axis=0)
        H1 = xp.concat([mu1, H1n], axis=0)
        H2 = xp.concat([mu2, H2n], axis=0)
        grads = self._energy_grads(V, H1, H2, s)
        if self.weight_decay:
            wd = float(self.weight_decay)
            grads["W1"] = grads["W1"] + wd * self._params["W1"]
            grads["W2"] = grads["W2"] + wd * self._params["W2"]
        return -xp.sum(s * self._neg_energy(V, H1, H2)), grads

    def _energy_grads(self, V, H1, H2, weights):
        """sum_n s_n dE(v_n, h1_n, h2_n)/dtheta: dE/dW1 = -v h1^T, dE/dW2 = -h1 h2^T,
        dE/db = -v, dE/dc1 = -h1, dE/dc2 = -h2 (rows: data with mean-field means and
        chain states, weights s_n = 1/N and -1/M)."""
        xp = get_namespace(V, H1, H2)
        sH1 = H1 * weights[:, None]
        sH2 = H2 * weights[:, None]
        return {"W1": -xp.matmul(V.T, sH1), "W2": -xp.matmul(H1.T, sH2),
                "b": -xp.matmul(weights, V), "c1": -xp.sum(sH1, axis=0),
                "c2": -xp.sum(sH2, axis=0)}


def _entropy(mu):
    """H(mu) = -sum_j [mu_j log mu_j + (1 - mu_j) log(1 - mu_j)] per row, with 0 log 0 = 0."""
    xp = get_namespace(mu)
    tiny = 1e-30
    return -xp.sum(mu * xp.log(xp.maximum(mu, tiny)) + (1.0 - mu) * xp.log(xp.maximum(1.0 - mu, tiny)),
                   axis=1)


def _check_sizes(sizes, name, min_layers=1, max_layers=None):
    if isinstance(sizes, int):
        sizes = (sizes,)
    try:
        sizes = tuple(check_positive_int(s, name) for s in sizes)
    except TypeError:
        raise TypeError(f"{name} must be a sequence of positive integers; got {sizes!r}.") from None
    if len(sizes) < min_layers or (max_layers is not None and len(sizes) > max_layers):
        want = f"exactly {min_layers}" if max_layers == min_layers else f"at least {min_layers}"
        raise ValueError(f"{name} must list {want} layer size(s); got {sizes!r}.")
    return sizes

