"""A VAE with Bernoulli latents (sigmoid belief net prior and posterior) trained
with score-function estimators, or with the binary Concrete relaxation.

References: Neal 1992, "Connectionist learning of belief networks" (sigmoid
belief nets); Williams 1992 (REINFORCE); Mnih & Gregor 2014, "Neural variational
inference and learning in belief networks" (NVIL, its SBN model and learning
signal, input-dependent baseline and variance normalisation); Mnih & Rezende
2016 (VIMCO) and Kool, van Hoof & Welling 2019 (leave-one-out baselines over k
samples); Maddison, Mnih & Teh 2017 and Jang, Gu & Poole 2017 (binary
Concrete / Gumbel-softmax relaxation and straight-through); Bengio, Leonard &
Courville 2013; course notes seeds 001 and 004.

Model (N examples, D pixels, L latents, H hidden units, R draws per example)::

    p(z)   = prod_l Bernoulli(z_l; sigmoid(b_l))                  (prior_logits b (L,))
    p(x|z) = prod_d Bernoulli(x_d; sigmoid(g(z)_d))               decoder g
    q(z|x) = prod_l Bernoulli(z_l; sigmoid(a(x)_l))               encoder a

with g, a linear maps (``hidden=()``, the "SBN" of Mnih & Gregor 2014) or
networks with hidden layers (``hidden=(H,)``: one hidden layer).

Every draw uses one uniform u ~ U(0, 1) per latent (see
:mod:`lvm_core.ops.score_function`): z = 1[a + nu > 0], nu = log u - log(1 - u).
Learning signal and objective::

    f(x, z)  = log p(x|z) + log p(z) - log q(z|x)
    ELBO(x)  = E_q[f(x, z)] ~ 1/R sum_r f(x, z_r)

Gradients for fixed draws (loss = -1/(R N) sum_{r,n} ...):

* decoder and prior (theta): 1/R sum_r grad_theta log p(x, z_r)   (exact for fixed z);
* encoder (phi), score function: 1/R sum_r A_r grad_phi log q(z_r|x), where
  E_q[grad_phi log q] = 0 makes every choice of A below unbiased:

  ================  =====================================================
  estimator         A_r
  ================  =====================================================
  reinforce         f_r
  moving_average    f_r - c,  c a running mean of f  (decay alpha)
  nvil              (f_r - c - b_psi(x)) / max(1, sqrt(v)); c, v the running
                    mean and variance of f - b_psi(x); b_psi a network trained
                    by regression: min_psi 1/2 E[(f - c - b_psi(x))^2]
  loo               f_r - 1/(R-1) sum_{j != r} f_j   (R = k >= 2 draws)
  ================  =====================================================

  c and v enter a step with their values from before it (so they do not
  depend on the step's own draws) and are then updated with the step's
  batch; the very first step starts them from its own batch (the one step
  whose baseline sees its draws).
* "vimco" (Mnih & Rezende 2016) maximises the multi-sample bound instead of the
  ELBO, with k = R draws per example and self-normalised weights
  w~_r = softmax_r(f_r)::

      L_k(x) = log 1/k sum_r exp f(x, z_r)                   (loss = -mean L_k)
      theta:  sum_r w~_r grad_theta log p(x, z_r)
      phi:    sum_r (L_k - L_{-r} - w~_r) grad_phi log q(z_r|x)
      L_{-r}  = L_k with f_r replaced by the mean of the other f_j (eq. 10)

* relaxations (``gumbel``, ``straight_through``), with the analytic KL of the
  factorised Bernoullis::

      objective = 1/R sum_r log p(x | y_r) - KL(q(z|x) || p(z))
      gumbel:            y = sigmoid((a + nu) / tau)  (binary Concrete), pathwise gradient
      straight_through:  y = z = 1[a + nu > 0] forward, dy/da = d sigmoid((a + nu)/tau)/da

  (biased estimators of the ELBO gradient; the bound reported is always the
  discrete one).

Evaluation always uses the discrete model: :meth:`elbo` (f averaged over
draws), :meth:`log_marginal` (the importance-weighted bound logsumexp_r f_r -
log k, Burda et al. 2016) and, for small L, :meth:`exact_log_marginal` and
:meth:`exact_elbo` by enumerating the 2^L configurations.

The model is a composition of :mod:`lvm_core.nn` Dense layers and
:mod:`lvm_core.ops` primitives (the fused Bernoulli log-likelihood of the
decoder, the estimator pieces of :mod:`lvm_core.ops.score_function`) and
trains with :func:`lvm_core.train.fit_minibatch`.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import ops
from ..backend import asarray, get_namespace, item
from ..nn import Dense, stack_backward, stack_forward, store_grad
from ..ops import score_function as sf
from ..random import as_generator, uniform
from ..validation import check_array, check_choice, check_is_fitted, check_positive_int
from .base import ParamsMixin, continues_fit

__all__ = ["SBNVAE", "ESTIMATORS"]

ESTIMATORS = ("reinforce", "moving_average", "nvil", "loo", "vimco", "gumbel",
              "straight_through")
_RELAXED = ("gumbel", "straight_through")
_ACTIVATIONS = ("tanh", "relu", "sigmoid", "softplus", "leaky_relu", "elu", "identity")
_MAX_ENUMERATE = 16


class SBNVAE(ParamsMixin):
    """VAE with L Bernoulli latents, trained with a score-function or relaxed estimator.

    Parameters
    ----------
    n_features : int
        D, the data dimension (binary or [0, 1] data).
    n_latent : int
        L, the number of binary latents (200 in Mnih & Gregor 2014).
    hidden : tuple of int
        Hidden widths of the encoder (D -> hidden -> L logits); the decoder
        mirrors them (L -> reversed(hidden) -> D).  ``()``: linear maps.
    activation : {"tanh", "relu", "sigmoid", "softplus", "leaky_relu", "elu", "identity"}
    estimator : {"reinforce", "moving_average", "nvil", "loo", "vimco", "gumbel", "straight_through"}
        How the encoder's gradient is estimated (module docstring).
    n_samples : int
        R draws per example (k for "loo" and "vimco", which need k >= 2).
    temperature : float
        tau of the binary Concrete relaxation ("gumbel", "straight_through").
    baseline_decay : float
        alpha of the running mean (and variance) of "moving_average" and "nvil".
    baseline_hidden : tuple of int
        Hidden widths of the NVIL baseline network b_psi (D -> hidden -> 1, tanh).
    init : {"torch", "glorot", "he"}
    dtype : {"float32", "float64"}
    random_state : None, int or Generator
        Used for the initial weights.
    warm_start : bool
        False (default): every :meth:`fit` starts again from the initialisation;
        True: a fit continues from the current parameters when they fit the
        architecture.

    Attributes
    ----------
    params : dict of arrays
        ``enc_W{i}, enc_b{i}, enc_W_out, enc_b_out`` (q logits), ``dec_W{i},
        dec_b{i}, dec_W_out, dec_b_out`` (p(x|z) logits), ``prior_logits`` (L,)
        and, for "nvil", ``bl_W{i}, bl_b{i}, bl_W_out, bl_b_out``.
    baseline_state_ : dict or None
        ``{"mean": c, "var": v}`` (0-d arrays) of "moving_average" / "nvil";
        None before the first training step.
    history_ : History
        Set by :meth:`fit`.
    """

    def __init__(self, n_features, n_latent=200, hidden=(), activation="tanh",
                 estimator="nvil", n_samples=1, temperature=0.5, baseline_decay=0.9,
                 baseline_hidden=(100,), init="torch", dtype="float32", random_state=None,
                 warm_start=False):
        self.n_features = n_features
        self.n_latent = n_latent
        self.hidden = hidden
        self.activation = activation
        self.estimator = estimator
        self.n_samples = n_samples
        self.temperature = temperature
        self.baseline_decay = baseline_decay
        self.baseline_hidden = baseline_hidden
        self.init = init
        self.dtype = dtype
        self.random_state = random_state
        self.warm_start = warm_start
        self._validate_hyperparameters()
        self.params = None
        self.baseline_state_ = None

    # ------------------------------------------------------------------ setup
    def _validate_hyperparameters(self):
        check_positive_int(self.n_features, "n_features")
        check_positive_int(self.n_latent, "n_latent")
        for name in ("hidden", "baseline_hidden"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise TypeError(
                    f"{name} must be a tuple of layer widths such as (200,); got {value!r}. "
                    "Use () for no hidden layer."
                )
            for h in value:
                check_positive_int(h, f"{name} (each width)")
        check_choice(self.activation, "activation", _ACTIVATIONS)
        check_choice(self.estimator, "estimator", ESTIMATORS)
        check_choice(self.init, "init", ("torch", "glorot", "he"))
        check_choice(self.dtype, "dtype", ("float32", "float64"))
        check_positive_int(self.n_samples, "n_samples")
        if self.estimator in ("loo", "vimco") and int(self.n_samples) < 2:
            raise ValueError(
                f"estimator={self.estimator!r} needs n_samples >= 2 (a leave-one-out baseline "
                f"over k draws); got n_samples={self.n_samples}. Pass e.g. n_samples=4."
            )
        t = self.temperature
        if isinstance(t, bool) or not isinstance(t, (int, float)) or not math.isfinite(t) \
                or t <= 0:
            raise ValueError(f"temperature must be a positive finite number; got {t!r}. "
                             "Pass e.g. 0.5.")
        d = self.baseline_decay
        if isinstance(d, bool) or not isinstance(d, (int, float)) or not 0 <= d < 1:
            raise ValueError(f"baseline_decay must be a number in [0, 1); got {d!r}. "
                             "Pass e.g. 0.9.")

    def _layers(self):
        """Dense stacks: enc (D -> ... -> L logits), dec (L -> ... -> D logits), bl (D -> ... -> 1)."""
        key = (int(self.n_features), int(self.n_latent), tuple(int(h) for h in self.hidden),
               self.activation, tuple(int(h) for h in self.baseline_hidden),
               self.estimator == "nvil", self.init)
        if getattr(self, "_layer_cache", None) is not None and self._layer_cache[0] == key:
            return self._layer_cache[1]
        D, L = int(self.n_features), int(self.n_latent)
        act, init = self.activation, self.init

        def stack(sizes, prefix, hidden_act):
            layers = [Dense(sizes[i], sizes[i + 1], hidden_act, prefix=prefix, suffix=str(i),
                            init=init) for i in range(len(sizes) - 2)]
            layers.append(Dense(sizes[-2], sizes[-1], None, prefix=prefix, suffix="_out",
                                init=init))
            return layers

        hidden = [int(h) for h in self.hidden]
        layers = dict(enc=stack([D] + hidden + [L], "enc_", act),
                      dec=stack([L] + hidden[::-1] + [D], "dec_", act))
        if self.estimator == "nvil":
            layers["bl"] = stack([D] + [int(h) for h in self.baseline_hidden] + [1], "bl_",
                                 "tanh")
        self._layer_cache = (key, layers)
        return layers

    def initialize(self, like=None, random_state=None):
        """(Re)create ``params`` on the device of ``like`` (NumPy when None).

        Each Dense layer y = x W + b gets W (d_in, d_out), b (d_out,) from
        :func:`lvm_core.nn.init_linear` (scheme ``init``), drawn in the order
        encoder, decoder, baseline network; ``prior_logits`` start at 0
        (p(z_l = 1) = 1/2).  Resets ``baseline_state_``.
        """
        self._validate_hyperparameters()
        rng = as_generator(self.random_state if random_state is None else random_state)
        layers = self._layers()
        params = {}
        for layer in [*layers["enc"], *layers["dec"], *layers.get("bl", [])]:
            params.update(layer.init(rng, dtype=self.dtype, like=like))
        params["prior_logits"] = asarray(np.zeros(int(self.n_latent)), like=like,
                                         dtype=self.dtype)
        self.params = params
        self.baseline_state_ = None
        return self

    def _prepare(self, X, name="X", validate=True):
        """Validated X in [0, 1], in the model's dtype, on the params' device."""
        if validate:
            X = check_array(X, name, ndim=2, n_features=int(self.n_features))
        if self.params is None:
            self.initialize(like=None if isinstance(X, np.ndarray) else X)
        xp = get_namespace(X, self.params["prior_logits"])
        dt = self.params["prior_logits"].dtype
        if X.dtype != dt:
            X = xp.astype(X, dt)
        if validate:
            lo, hi = item(xp.min(X)), item(xp.max(X))
            if lo < 0.0 or hi > 1.0:
                raise ValueError(
                    f"{name} must lie in [0, 1] (Bernoulli pixels); got values in "
                    f"[{lo:g}, {hi:g}]. Scale the data (e.g. pixels / 255)."
                )
        return xp, X

    def _draw_u(self, rng, R, N, like):
        """u ~ U[0, 1) of shape (R, N, L) in like's dtype (lvm_core.random.uniform's draws)."""
        return uniform(as_generator(rng), (R, N, int(self.n_latent)), like=like)

    def _check_u(self, xp, u, N, X, name="u"):
        u = check_array(u, name, ndim=(2, 3))
        if u.ndim == 2:
            u = xp.reshape(u, (1,) + tuple(u.shape))
        if u.shape[1] != N or u.shape[2] != int(self.n_latent):
            raise ValueError(
                f"{name} must have shape (R, N, L) = (R, {N}, {self.n_latent}) (or (N, L)); "
                f"got {tuple(u.shape)}."
            )
        return xp.astype(u, X.dtype) if u.dtype != X.dtype else u

    # ------------------------------------------------------ the networks
    def _encode(self, X, params, ws=None):
        """Logits a(x) (N, L) of q(z|x) and the layer caches."""
        return stack_forward(self._layers()["enc"], params, X, ws)

    def _decode(self, z2, params, ws=None):
        """Logits g(z) (M, D) of p(x|z) for z2 (M, L) and the layer caches."""
        return stack_forward(self._layers()["dec"], params, z2, ws)

    def _baseline(self, X, params, ws=None):
        """b_psi(x) (N, 1) and the layer caches (estimator "nvil")."""
        return stack_forward(self._layers()["bl"], params, X, ws)

    @staticmethod
    def _rep(xp, X, R, ws=None):
        """X (N, D) repeated R times: (R N, D), draw-major (row r N + n is x_n)."""
        if R == 1:
            return X
        N, D = X.shape
        if type(X) is np.ndarray and ws is not None:
            out = ws.empty("sbn.X_rep", (R * N, D), X)
            out.reshape(R, N, D)[...] = X
            return out
        return xp.reshape(xp.broadcast_to(X, (R, N, D)), (R * N, D))

    def _log_weights(self, xp, X, z, a, params, ws=None, scale=None):
        """f = log p(x|z) + log p(z) - log q(z|x) (R, N) for z (R, N, L) and q logits a.

        With ``scale``: also the decoder's output gradient scale * dlog p(x|z)/dlogits
        (the decoder caches are returned for its backward)."""
        R, N, L = z.shape
        out, dec_cache = self._decode(xp.reshape(z, (R * N, L)), params, ws)
        ll, dout = ops.bernoulli_loglik(out, self._rep(xp, X, R, ws),
                                        1.0 if scale is None else scale, ws=ws)
        log_px = xp.reshape(ll, (R, N))
        f = log_px + sf.bernoulli_log_prob(params["prior_logits"], z) \
            - sf.bernoulli_log_prob(a, z)
        return f, dout, dec_cache

    # --------------------------------------------------------- the gradient
    def _signal(self, xp, X, f, params, grads, ws, update):
        """The centred learning signal A (R, N) of the score-function estimators; for
        "nvil" also the baseline network's regression gradient (into grads)."""
        est = self.estimator
        R, N = f.shape
        if est == "reinforce":
            return f
        if est == "loo":
            return f - sf.leave_one_out_baseline(f)
        decay = float(self.baseline_decay)
        state = self.baseline_state_
        if est == "moving_average":
            if state is None:
                state = dict(zip(("mean", "var"), sf.running_moments(None, None, f, decay)))
                self.baseline_state_ = state if update else None
            elif update:
                m, v = sf.running_moments(state["mean"], state["var"], f, decay)
                self.baseline_state_ = {"mean": m, "var": v}
            return f - state["mean"]
        # nvil
        layers = self._layers()
        b, bl_cache = self._baseline(X, params, ws)
        b = xp.reshape(b, (N,))
        resid = f - b  # (R, N)
        if state is None:
            state = dict(zip(("mean", "var"), sf.running_moments(None, None, resid, decay)))
            self.baseline_state_ = state if update else None
        elif update:
            m, v = sf.running_moments(state["mean"], state["var"], resid, decay)
            self.baseline_state_ = {"mean": m, "var": v}
        c, v = state["mean"], state["var"]
        # regression of b(x) on f - c, mean over the R N draws
        _, db = sf.baseline_regression(f - c, b, scale=1.0 / (R * N))
        stack_backward(layers["bl"], params, xp.reshape(db, (N, 1)), bl_cache, grads, ws,
                       need_dx=False)
        return (resid - c) / xp.clip(xp.sqrt(v), min=1.0)

    def loss_and_grads(self, X, rng=None, u=None, params=None, grads_out=None,
                       check_input=True, update_baseline=True):
        """Mean negative objective over the batch and the estimator's gradients.

        X : (N, D) in [0, 1].  rng : seed or Generator for u ~ U(0, 1) of shape
        (R, N, L), R = ``n_samples``; or pass ``u`` (R, N, L) / (N, L) to fix
        the draws.  The loss is -1/(R N) sum f(x, z_r) (the ELBO estimate) for
        the score-function estimators, -mean L_k for "vimco", and the relaxed
        objective 1/(R N) sum -log p(x|y_r) + mean KL for "gumbel" /
        "straight_through".  Gradients:
        module docstring; for "nvil" the ``bl_*`` entries are the gradient of
        the baseline's regression loss.  ``update_baseline=False`` leaves
        ``baseline_state_`` as it is (for evaluating an estimator at a fixed
        state).  ``grads_out`` and ``check_input`` as in :meth:`lvm_core.models.vae.VAE.loss_and_grads`.
        Returns (loss as a 0-d array, grads with the keys, shapes and dtypes of params).
        """
        xp, X = self._prepare(X, validate=check_input)
        params = self.params if params is None else params
        N = X.shape[0]
        if getattr(self, "_ws", None) is None:
            self._ws = ops.Workspace()
        ws = self._ws
        if u is None:
            u = self._draw_u(rng, int(self.n_samples), N, X)
        else:
            u = self._check_u(xp, u, N, X)
        R = u.shape[0]
        if self.estimator in ("loo", "vimco") and R < 2:
            raise ValueError(f"estimator={self.estimator!r} needs u with R >= 2 draws; got "
                             f"{tuple(u.shape)}.")
        grads = {} if grads_out is None else grads_out
        layers = self._layers()
        a, enc_cache = self._encode(X, params, ws)  # (N, L)
        prior = params["prior_logits"]
        s = 1.0 / (R * N)
        if self.estimator in _RELAXED:
            tau = float(self.temperature)
            y, y_soft = sf.relaxed_bernoulli(a, u, tau, hard=self.estimator == "straight_through")
            Lz = y.shape[2]
            out, dec_cache = self._decode(xp.reshape(y, (R * N, Lz)), params, ws)
            ll, dout = ops.bernoulli_loglik(out, self._rep(xp, X, R, ws), -s, ws=ws)
            kl, dkl_da, dkl_db = sf.bernoulli_kl(a, prior)
            loss = xp.sum(kl) / float(N) - xp.sum(ll) * s
            dy = stack_backward(layers["dec"], params, dout, dec_cache, grads, ws)
            da = sf.relaxed_bernoulli_backward(xp.reshape(dy, (R, N, Lz)), y_soft, tau) \
                + dkl_da / float(N)
            store_grad(grads, "prior_logits", dkl_db / float(N))
        elif self.estimator == "vimco":
            z = sf.bernoulli_sample(a, u)
            f, dout, dec_cache = self._log_weights(xp, X, z, a, params, ws, scale=1.0)
            lse = F.logsumexp(f, axis=0)  # (N,)
            w = xp.exp(f - lse)  # (R, N), sums to 1 over the draws
            bound = lse - math.log(R)
            loss = -xp.sum(bound) / float(N)
            c = -w / float(N)  # d loss / d f_r through the pathwise term
            c_col = xp.reshape(c, (R * N, 1))
            if ws is not None and type(dout) is np.ndarray:  # a workspace buffer: in place
                np.multiply(dout, c_col, out=dout)
            else:
                dout = c_col * dout
            stack_backward(layers["dec"], params, dout, dec_cache, grads, ws, need_dx=False)
            score_prior = z - F.sigmoid(prior)  # (R, N, L)
            store_grad(grads, "prior_logits",
                       xp.sum(xp.reshape(c, (R, N, 1)) * score_prior, axis=(0, 1)))
            A = (bound - sf.vimco_baseline(f)) - w  # (R, N)
            da = sf.score_function_backward(A, z, a, scale=-1.0 / float(N))
        else:
            z = sf.bernoulli_sample(a, u)
            f, dout, dec_cache = self._log_weights(xp, X, z, a, params, ws, scale=-s)
            loss = -xp.sum(f) * s
            stack_backward(layers["dec"], params, dout, dec_cache, grads, ws, need_dx=False)
            # d/db of -s sum_{r,n} log p(z_rn) = -s sum_{r,n} (z_rn - sigmoid(b))
            store_grad(grads, "prior_logits",
                       -s * (xp.sum(z, axis=(0, 1)) - float(R * N) * F.sigmoid(prior)))
            A = self._signal(xp, X, f, params, grads, ws, update_baseline)
            da = sf.score_function_backward(A, z, a, scale=-s)
        stack_backward(layers["enc"], params, da, enc_cache, grads, ws, need_dx=False)
        if grads_out is None:
            return loss, {k: grads[k] for k in params}
        return loss, grads

    # ----------------------------------------------------------- evaluation
    def encode(self, X, params=None):
        """Logits a(x) (N, L) of q(z|x) (p(z_l = 1 | x) = sigmoid(a_l))."""
        xp, X = self._prepare(X)
        a, _ = self._encode(X, self.params if params is None else params)
        return a

    def baseline(self, X, params=None):
        """The NVIL baseline b_psi(x) (N,) (estimator "nvil" only)."""
        if self.estimator != "nvil":
            raise ValueError(f"baseline(X) exists for estimator='nvil' only; this model has "
                             f"estimator={self.estimator!r}.")
        xp, X = self._prepare(X)
        b, _ = self._baseline(X, self.params if params is None else params)
        return xp.reshape(b, (X.shape[0],))

    def log_weights(self, X, z=None, u=None, rng=None, n_samples=1, params=None):
        """f(x, z) = log p(x|z) + log p(z) - log q(z|x), (R, N).

        z (R, N, L) / (N, L) of 0/1 values, or draws z ~ q(z|x) from ``u`` (R, N, L)
        or from ``rng`` (R = ``n_samples``).
        """
        xp, X = self._prepare(X)
        params = self.params if params is None else params
        N = X.shape[0]
        a, _ = self._encode(X, params)
        if z is None:
            if u is None:
                check_positive_int(n_samples, "n_samples")
                u = self._draw_u(rng, int(n_samples), N, X)
            else:
                u = self._check_u(xp, u, N, X)
            z = sf.bernoulli_sample(a, u)
        else:
            z = self._check_u(xp, z, N, X, name="z")
        f, _, _ = self._log_weights(xp, X, z, a, params)
        return f

    def elbo(self, X, rng=None, n_samples=1, u=None):
        """Per-example ELBO estimate (N,): 1/R sum_r f(x, z_r), z_r ~ q(z|x)."""
        f = self.log_weights(X, u=u, rng=rng, n_samples=n_samples)
        return get_namespace(f).mean(f, axis=0)

    def log_marginal(self, X, n_importance=100, rng=None, batch_size=None, u=None):
        """Importance-weighted bound of log p(x) (N,): logsumexp_r f(x, z_r) - log k.

        z_r ~ q(z|x), k = n_importance (or u.shape[0] for given draws u (k, N, L),
        then in one chunk).  Rows in chunks of ``batch_size`` (default about
        2^14 / k rows) otherwise.
        """
        if u is not None:
            f = self.log_weights(X, u=u)
            return F.logsumexp(f, axis=0) - math.log(f.shape[0])
        xp, X = self._prepare(X)
        k = check_positive_int(n_importance, "n_importance")
        batch_size = max(1, 16384 // k) if batch_size is None else batch_size
        check_positive_int(batch_size, "batch_size")
        rng = as_generator(rng)
        parts = []
        for start in range(0, X.shape[0], int(batch_size)):
            f = self.log_weights(X[start:min(start + int(batch_size), X.shape[0]), :],
                                 rng=rng, n_samples=k)
            parts.append(F.logsumexp(f, axis=0) - math.log(k))
        return xp.concat(parts) if len(parts) > 1 else parts[0]

    def _configurations(self, like):
        L = int(self.n_latent)
        if L > _MAX_ENUMERATE:
            raise ValueError(
                f"exact enumeration needs n_latent <= {_MAX_ENUMERATE} (2^L configurations); "
                f"this model has n_latent={L}. Use log_marginal (importance sampling) instead."
            )
        bits = (np.arange(2 ** L)[:, None] >> np.arange(L)[None, :]) & 1  # (2^L, L)
        return asarray(bits.astype(np.float64), like=like, dtype=like.dtype)

    def _enumerated(self, X, params):
        """log q(z|x) and f(x, z) for all 2^L configurations, each (2^L, N)."""
        xp, X = self._prepare(X)
        params = self.params if params is None else params
        N = X.shape[0]
        a, _ = self._encode(X, params)
        C = self._configurations(X)  # (2^L, L)
        z = xp.broadcast_to(xp.reshape(C, (C.shape[0], 1, C.shape[1])),
                            (C.shape[0], N, C.shape[1]))
        f, _, _ = self._log_weights(xp, X, z, a, params)
        return xp, sf.bernoulli_log_prob(a, z), f

    def exact_log_marginal(self, X, params=None):
        """log p(x) = logsumexp_z [log p(x|z) + log p(z)] over all 2^L z (N,); small L only."""
        xp, log_q, f = self._enumerated(X, params)
        return F.logsumexp(f + log_q, axis=0)

    def exact_elbo(self, X, params=None):
        """ELBO(x) = sum_z q(z|x) f(x, z) over all 2^L z (N,); small L only."""
        xp, log_q, f = self._enumerated(X, params)
        return xp.sum(xp.exp(log_q) * f, axis=0)

    def validation_loss(self, X, rng=0):
        """Mean -ELBO over X with one z per example (fixed seed ``rng``)."""
        elbo = self.elbo(X, rng=rng, n_samples=1)
        return -item(get_namespace(elbo).mean(elbo))

    def decode(self, z):
        """Mean sigmoid(g(z)) (N, D) of p(x|z) for z (N, L)."""
        if self.params is None:
            check_is_fitted(self, ["history_"])
        z = check_array(z, "z", ndim=2, n_features=int(self.n_latent))
        W = self.params["prior_logits"]
        xp = get_namespace(z, W)
        if z.dtype != W.dtype:
            z = xp.astype(z, W.dtype)
        out, _ = self._decode(z, self.params)
        return F.sigmoid(out)

    def sample(self, n, rng=None, like=None, return_latent=False):
        """n draws x ~ p(x|z), z ~ p(z): (n, D) (and z (n, L) with ``return_latent``)."""
        check_positive_int(n, "n")
        if self.params is None:
            self.initialize(like=like)
        rng = as_generator(rng)
        b = self.params["prior_logits"]
        xp = get_namespace(b)
        u = uniform(rng, (1, int(n), int(self.n_latent)), like=b)
        prior = xp.broadcast_to(b, (int(n), int(self.n_latent)))
        z = sf.bernoulli_sample(prior, u)[0, ...]
        out, _ = self._decode(z, self.params)
        v = uniform(rng, tuple(out.shape), like=b)
        x = xp.astype(v < F.sigmoid(out), b.dtype)
        return (x, z) if return_latent else x

    # ------------------------------------------------------------- training
    def binarize(self, X_batch, rng):
        """Dynamic binarisation: x_b = 1[v < x], v ~ U[0, 1) elementwise."""
        xp = get_namespace(X_batch)
        v = uniform(rng, tuple(X_batch.shape), like=X_batch)
        return xp.astype(v < X_batch, X_batch.dtype)

    def fit(self, X, epochs=10, batch_size=128, lr=1e-3, optimizer="adam",
            optimizer_kwargs=None, validation_data=None, random_state=None, progress=True,
            checkpoint=None, resume=False, early_stopping_patience=None,
            dynamic_binarization=False, callbacks=None):
        """Train with :func:`lvm_core.train.fit_minibatch` (one optimizer for every
        parameter, the NVIL baseline network included).

        Draw order per step: the binarisation v (B, D) when
        ``dynamic_binarization``, then u (R, B, L).  Returns self.
        """
        from ..train import fit_minibatch

        xp, X = self._prepare(X)
        if validation_data is not None:
            _, validation_data = self._prepare(validation_data, name="validation_data")
        if not continues_fit(self):  # a new fit starts again unless warm_start=True
            self.initialize(like=None if isinstance(X, np.ndarray) else X)
            if not resume:
                self.baseline_state_ = None
        self.history_ = fit_minibatch(
            self, X, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
            optimizer_kwargs=optimizer_kwargs, validation_data=validation_data,
            random_state=random_state, progress=progress, checkpoint=checkpoint,
            resume=resume, early_stopping_patience=early_stopping_patience,
            transform_batch=self.binarize if dynamic_binarization else None,
            callbacks=callbacks,
        )
        return self
