"""Gaussian-mixture VAE (GMVAE): a categorical latent y and a Gaussian latent z.

References: Kingma, Rezende, Mohamed & Welling 2014, "Semi-supervised learning
with deep generative models" (the M2 factorisation q(y|x) q(z|x, y) and the
sum over y); Dilokthanakul et al. 2016, "Deep unsupervised clustering with
Gaussian mixture variational autoencoders"; Rui Shu 2016, "Gaussian mixture
VAE: lessons in variational inference" (p(z|y) learned per component, exact
marginalisation of y); Jang, Gu & Poole 2017 and Maddison, Mnih & Teh 2017
(Gumbel-softmax / concrete relaxation); Bengio et al. 2013 (straight-through);
Burda et al. 2016 (importance-sampled log p(x)); course notes seed 002.

Model (N examples, D features, K components, L latent, H hidden units)::

    p(y)     = 1/K                                   (uniform, fixed)
    p(z|y)   = N(z; mu_p[y], diag exp(log_var_p[y]))  mu_p, log_var_p (K, L) learned
    p(x|z)   = Bernoulli(sigmoid(f(z))) | ContinuousBernoulli | N(f(z), s^2 I)
    q(y|x)   = Categorical(pi(x)),   pi = softmax(h W_y + b_y)          h = trunk(x)
    q(z|x,y) = N(z; mu(x, y), diag exp(log_var(x, y)))
    [mu | log_var](x, y) = [h, onehot(y)] W_z + b_z = h W_h + C[y] + b_z

q(z|x, y) is one affine head on the concatenation [h, onehot(y)]: its y-part
is the table C (K, 2L) (``enc_C_mu``, ``enc_C_log_var``), so the trunk and the
h-part run once per x and the K components are a broadcast add.

Exact objective (objective="exact"): the sum over y is done exactly,

    ELBO(x) = sum_k pi_k [ E_q(z|x,k) log p(x|z) - KL(q(z|x,k) || p(z|k)) ]
              + sum_k pi_k log p(y=k)  -  sum_k pi_k log pi_k
            = sum_k pi_k f_k,   f_k = E log p(x|z_k) - KL_k + log p(k) - log pi_k,

with the Gaussian KL analytic and E log p(x|z_k) estimated from R
reparameterised draws z_kr = mu_k + exp(log_var_k / 2) eps_kr per component
(the decoder runs on the R N K rows at once).  E_q[log p(y)] = -log K is part
of the bound.  Gradients (loss = -mean_n ELBO):

    dELBO/dlogits_k = pi_k (f_k - sum_j pi_j f_j)
    dELBO/d(mu_k, log_var_k) = pi_k d(E log p(x|z_k) - KL_k)/d(mu_k, log_var_k)

Gumbel-softmax estimator (objective="gumbel"; Jang et al. 2017): a relaxed
sample y~ = softmax((logits + g) / tau) replaces the sum over y,

    ELBO~(x) = log p(x|z) - KL(q(z|x, y~) || p(z|y~)) - KL(q(y|x) || p(y)),
    z = mu(x, y~) + exp(log_var(x, y~) / 2) eps,
    [mu | log_var](x, y~) = h W_h + y~ C + b_z,   [mu_p | log_var_p](y~) = y~ [mu_p | log_var_p],

with KL(q(y|x) || p(y)) = sum_k pi_k (log pi_k + log K) exact.  objective =
"straight_through" uses y = onehot(argmax y~) in the forward pass and the
Gumbel-softmax gradient in the backward pass.  The temperature tau is
annealed during ``fit`` (tau_t = max(tau_min, tau0 exp(-r t))).  Whatever the
training estimator, :meth:`elbo` and :meth:`log_marginal` evaluate the exact
bound and an importance-sampled log p(x) that sums over y exactly:

    log p(x) ~ logsumexp_k [ log p(k) + logsumexp_i log w_ki - log S ],
    w_ki = p(x|z_ki) p(z_ki|k) / q(z_ki|x, k),   z_ki ~ q(z|x, k),  i = 1..S.

Every backward pass is written by hand below and runs through the core's
layers and fused ops (:mod:`lvm_core.nn`, :mod:`lvm_core.ops`).
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import ops
from ..backend import asarray, device_of, get_namespace, item, to_numpy
from ..metrics import clustering_accuracy
from ..nn import Dense, GaussianHead, stack_backward, stack_forward, store_grad
from ..ops.gumbel import annealed_temperature, gumbel_softmax, gumbel_softmax_backward
from ..ops.gumbel import sample_gumbel
from ..random import as_generator, normal, uniform
from ..validation import check_array, check_choice, check_is_fitted, check_positive_int
from .base import ParamsMixin, continues_fit

__all__ = ["GMVAE", "TemperatureAnnealing"]

_ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus", "leaky_relu", "elu", "identity")
_OBJECTIVES = ("exact", "gumbel", "straight_through")


class TemperatureAnnealing:
    """Training callback: model.temperature_ = max(tau_min, tau0 exp(-rate t)) after step t."""

    def __init__(self, tau0=1.0, tau_min=0.5, rate=3e-5):
        annealed_temperature(0, tau0, tau_min, rate)  # validates
        self.tau0, self.tau_min, self.rate = float(tau0), float(tau_min), float(rate)

    def __call__(self, step):
        return annealed_temperature(step, self.tau0, self.tau_min, self.rate)

    def on_step(self, info):
        info.model.temperature_ = self(info.global_step)


class GMVAE(ParamsMixin):
    """Gaussian-mixture VAE with handwritten gradients (see the module docstring).

    Parameters
    ----------
    n_features : int
        D.
    n_components : int
        K, the number of values of y.
    n_latent : int
        L.
    hidden : tuple of int
        Encoder trunk widths (D -> hidden); the decoder mirrors them (L -> reversed -> D).
    activation : str
    decoder : {"bernoulli", "continuous_bernoulli", "gaussian"}
        The Gaussian decoder has the fixed variance ``gaussian_var``.
    gaussian_var : float
    objective : {"exact", "gumbel", "straight_through"}
        Training estimator; evaluation is always exact.
    n_samples : int
        R: z draws per (x, component) (exact) or Gumbel/z draws per x (relaxed).
    temperature, temperature_min, anneal_rate : float
        tau0, tau_min, r of the annealed Gumbel-softmax temperature.
    init : {"torch", "glorot", "he"}
    dtype : {"float32", "float64"}
    random_state : None, int or Generator
    warm_start : bool
        False (default): every :meth:`fit` starts again from the initialisation;
        True: a fit continues from the current parameters when they fit the
        architecture.

    Attributes
    ----------
    params : dict of arrays
        ``enc_W{i}, enc_b{i}`` (trunk), ``enc_W_y, enc_b_y`` (q(y|x) logits),
        ``enc_W_mu, enc_b_mu, enc_W_log_var, enc_b_log_var, enc_C_mu, enc_C_log_var``
        (q(z|x,y)), ``prior_mu, prior_log_var`` (K, L), ``dec_W{i}, dec_b{i}``,
        ``dec_W_out, dec_b_out``.
    temperature_ : float
        The current (annealed) temperature.
    history_ : History
    """

    _estimator_type = "clusterer"

    def __init__(self, n_features, n_components=10, n_latent=20, hidden=(400,),
                 activation="relu", decoder="bernoulli", gaussian_var=1.0, objective="exact",
                 n_samples=1, temperature=1.0, temperature_min=0.5, anneal_rate=3e-5,
                 init="torch", dtype="float32", random_state=None, warm_start=False):
        self.n_features = n_features
        self.n_components = n_components
        self.n_latent = n_latent
        self.hidden = hidden
        self.activation = activation
        self.decoder = decoder
        self.gaussian_var = gaussian_var
        self.objective = objective
        self.n_samples = n_samples
        self.temperature = temperature
        self.temperature_min = temperature_min
        self.anneal_rate = anneal_rate
        self.init = init
        self.dtype = dtype
        self.random_state = random_state
        self.warm_start = warm_start
        self._validate_hyperparameters()
        self.params = None
        self.temperature_ = float(temperature)

    # ------------------------------------------------------------------ setup
    def _validate_hyperparameters(self):
        check_positive_int(self.n_features, "n_features")
        check_positive_int(self.n_components, "n_components")
        check_positive_int(self.n_latent, "n_latent")
        if isinstance(self.hidden, (str, bytes)) or not hasattr(self.hidden, "__iter__"):
            raise TypeError(f"hidden must be a tuple of layer widths such as (400,); got "
                            f"{self.hidden!r}. Use () for no hidden layer.")
        for h in self.hidden:
            check_positive_int(h, "hidden (each width)")
        check_choice(self.activation, "activation", _ACTIVATIONS)
        check_choice(self.decoder, "decoder", ("bernoulli", "continuous_bernoulli", "gaussian"))
        check_choice(self.objective, "objective", _OBJECTIVES)
        check_choice(self.init, "init", ("torch", "glorot", "he"))
        check_choice(self.dtype, "dtype", ("float32", "float64"))
        check_positive_int(self.n_samples, "n_samples")
        TemperatureAnnealing(self.temperature, self.temperature_min, self.anneal_rate)
        value = self.gaussian_var
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 \
                or not math.isfinite(value):
            raise ValueError(f"gaussian_var must be a positive finite number (a variance); "
                             f"got {value!r}. Pass e.g. 1.0.")

    def _layers(self):
        key = (int(self.n_features), int(self.n_components), int(self.n_latent),
               tuple(int(h) for h in self.hidden), self.activation, self.init)
        if getattr(self, "_layer_cache", None) is not None and self._layer_cache[0] == key:
            return self._layer_cache[1]
        D, K, L = int(self.n_features), int(self.n_components), int(self.n_latent)
        enc = [D] + [int(h) for h in self.hidden]
        dec = [L] + [int(h) for h in reversed(list(self.hidden))]
        act = self.activation
        layers = dict(
            enc=[Dense(enc[i], enc[i + 1], act, prefix="enc_", suffix=str(i), init=self.init)
                 for i in range(len(enc) - 1)],
            y=Dense(enc[-1], K, None, prefix="enc_", suffix="_y", init=self.init),
            q=GaussianHead(enc[-1], L, prefix="enc_", init=self.init),
            dec=[Dense(dec[i], dec[i + 1], act, prefix="dec_", suffix=str(i), init=self.init)
                 for i in range(len(dec) - 1)],
            out=Dense(dec[-1], D, None, prefix="dec_", suffix="_out", init=self.init),
        )
        self._layer_cache = (key, layers)
        return layers

    def initialize(self, like=None, random_state=None):
        """(Re)create ``params`` on the device of ``like`` (NumPy when None).

        Drawn in the order: trunk, q(y|x) logits, q(z|x,y) head (W_mu, b_mu,
        W_log_var, b_log_var, as nn.Linear on h), C_mu and C_log_var (the y-columns
        of that head, U(+-1/sqrt(H + K)) as nn.Linear on [h, onehot(y)]), prior means
        mu_p ~ N(0, 0.1^2 I) (K, L) (log_var_p = 0), decoder layers, output.  The prior
        means start close together: drawn from N(0, I) in 20 dimensions, the component
        whose mean lies nearest the encoder's output wins every x in the first steps and
        the others are never used (component collapse; seen on Fashion-MNIST).
        """
        self._validate_hyperparameters()
        rng = as_generator(self.random_state if random_state is None else random_state)
        layers = self._layers()
        K, L = int(self.n_components), int(self.n_latent)
        H = layers["q"].d_in
        params = {}
        for layer in [*layers["enc"], layers["y"], layers["q"]]:
            params.update(layer.init(rng, dtype=self.dtype, like=like))
        bound = 1.0 / math.sqrt(H + K)
        for name in ("enc_C_mu", "enc_C_log_var"):
            params[name] = asarray(rng.uniform(-bound, bound, (K, L)), like=like,
                                   dtype=self.dtype)
        params["prior_mu"] = asarray(0.1 * rng.standard_normal((K, L)), like=like,
                                     dtype=self.dtype)
        params["prior_log_var"] = asarray(np.zeros((K, L)), like=like, dtype=self.dtype)
        for layer in [*layers["dec"], layers["out"]]:
            params.update(layer.init(rng, dtype=self.dtype, like=like))
        self.params = params
        return self

    def _prepare(self, X, name="X", validate=True):
        if validate:
            X = check_array(X, name, ndim=2, n_features=int(self.n_features))
        if self.params is None:
            self.initialize(like=None if isinstance(X, np.ndarray) else X)
        xp = get_namespace(X, self.params["enc_W_mu"])
        dt = self.params["enc_W_mu"].dtype
        if X.dtype != dt:
            X = xp.astype(X, dt)
        if validate and self.decoder in ("bernoulli", "continuous_bernoulli"):
            lo, hi = item(xp.min(X)), item(xp.max(X))
            if lo < 0.0 or hi > 1.0:
                raise ValueError(
                    f"{name} must lie in [0, 1] for decoder={self.decoder!r}; got values in "
                    f"[{lo:g}, {hi:g}]. Scale the data (e.g. pixels / 255) or use "
                    "decoder='gaussian'.")
        return xp, X

    def _ws(self):
        if getattr(self, "_workspace", None) is None:
            self._workspace = ops.Workspace()
        return self._workspace

    # ------------------------------------------------------- building blocks
    def _encode(self, X, params, ws=None):
        """h = trunk(X); logits (N, K); the h-part (mu_h, log_var_h) (N, L) of q(z|x, y)."""
        layers = self._layers()
        h, trunk = stack_forward(layers["enc"], params, X, ws)
        logits, y_cache = layers["y"].forward(params, h, ws)
        (mu_h, log_var_h), q_cache = layers["q"].forward(params, h, ws)
        return logits, mu_h, log_var_h, (trunk, y_cache, q_cache)

    def _encoder_backward(self, params, dlogits, dmu_h, dlog_var_h, cache, grads, ws=None):
        layers = self._layers()
        trunk, y_cache, q_cache = cache
        need = bool(layers["enc"])
        dh_y = layers["y"].backward(params, dlogits, y_cache, grads, ws, need_dx=need)
        dh_q = layers["q"].backward(params, (dmu_h, dlog_var_h), q_cache, grads, ws,
                                    need_dx=need)
        if need:
            stack_backward(layers["enc"], params, dh_y + dh_q, trunk, grads, ws, need_dx=False)

    def _decode(self, z, params, ws=None):
        layers = self._layers()
        h, trunk = stack_forward(layers["dec"], params, z, ws)
        out, head = layers["out"].forward(params, h, ws)
        return out, (trunk, head)

    def _decoder_backward(self, params, dout, cache, grads, ws=None):
        layers = self._layers()
        trunk, head = cache
        dh = layers["out"].backward(params, dout, head, grads, ws)
        return stack_backward(layers["dec"], params, dh, trunk, grads, ws)

    def _log_px(self, xp, X, out, scale, repeat, ws=None):
        """log p(x|z) per row (M,) and scale * dll/dout (M, D); row m of ``out`` pairs
        with X_((m // repeat) % N); ``scale`` a number or one factor per row (M,)."""
        if self.decoder == "bernoulli":
            return ops.bernoulli_loglik(out, X, scale, ws=ws, repeat=repeat)
        if self.decoder == "continuous_bernoulli":
            return ops.continuous_bernoulli_loglik(out, X, scale, ws=ws, repeat=repeat)
        M, N = out.shape[0], X.shape[0]
        X_rep = X if M == N else xp.take(
            X, (xp.arange(M, device=device_of(X)) // repeat) % N, axis=0)
        per_row = getattr(scale, "ndim", 0) != 0
        ll, dout, _ = ops.gaussian_loglik(X_rep, out, math.log(float(self.gaussian_var)),
                                          1.0 if per_row else scale, ws=ws)
        if per_row:
            dout = xp.reshape(scale, (M, 1)) * dout
        return ll, dout

    # ---------------------------------------------------------- exact bound
    def _exact_forward(self, xp, X, eps, params, ws=None):
        """All terms of the exact bound for eps (R, N, K, L)."""
        R, N, K, L = eps.shape
        logits, mu_h, log_var_h, enc_cache = self._encode(X, params, ws)
        log_pi = F.log_softmax(logits, axis=1)  # (N, K)
        pi = xp.exp(log_pi)
        mu = xp.reshape(mu_h, (N, 1, L)) + params["enc_C_mu"]  # (N, K, L)
        log_var = xp.reshape(log_var_h, (N, 1, L)) + params["enc_C_log_var"]
        mu2, log_var2 = xp.reshape(mu, (N * K, L)), xp.reshape(log_var, (N * K, L))
        z, std = ops.reparameterize(mu2, log_var2, xp.reshape(eps, (R, N * K, L)), ws,
                                    name="gmvae.z")  # (R, N K, L), (N K, L)
        out, dec_cache = self._decode(xp.reshape(z, (R * N * K, L)), params, ws)
        # rows (r, n, k) of out pair with x_n; the loss -mean_n sum_k pi_nk mean_r log p(x_n|z)
        # gives row (r, n, k) the gradient factor -pi_nk / (R N)
        c = xp.reshape(pi, (N * K,)) * (-1.0 / float(R * N))
        if R > 1:
            c = xp.reshape(xp.broadcast_to(xp.reshape(c, (1, N * K)), (R, N * K)), (R * N * K,))
        ll, dout = self._log_px(xp, X, out, c, K, ws)
        log_px = xp.mean(xp.reshape(ll, (R, N, K)), axis=0)  # (N, K)
        # KL(q(z|x,y=k) || p(z|y=k)) per (n, k): rows n K + k, the prior's row k repeated
        mu_p = xp.reshape(xp.broadcast_to(params["prior_mu"], (N, K, L)), (N * K, L))
        log_var_p = xp.reshape(xp.broadcast_to(params["prior_log_var"], (N, K, L)), (N * K, L))
        kl, dkl_dmu, dkl_dlog_var, dkl_dmu_p, dkl_dlog_var_p = (
            xp.reshape(a, (N, K) + tuple(a.shape[1:])) for a in ops.kl_normal(
                mu2, log_var2, std, mu_p, log_var_p, ws=ws, name="gmvae.kl"))
        log_py = -math.log(K)
        f = log_px - kl + log_py - log_pi  # (N, K)
        elbo = xp.sum(pi * f, axis=1)  # (N,)
        return dict(logits=logits, log_pi=log_pi, pi=pi, f=f, elbo=elbo, log_px=log_px, ll=ll,
                    kl=kl, std=std, eps=eps, z=z, mu=mu, log_var=log_var, dout=dout,
                    dkl=(dkl_dmu, dkl_dlog_var, dkl_dmu_p, dkl_dlog_var_p),
                    enc_cache=enc_cache, dec_cache=dec_cache)

    def _exact_backward(self, xp, f, params, grads, ws=None):
        """Gradients of loss = -mean_n ELBO(x_n) into ``grads``."""
        R, N, K, L = f["eps"].shape
        pi = f["pi"]
        # decoder: d loss/d out_(r,n,k) = -pi_nk / (R N) dll/dout, scaled in the forward pass
        dout = f["dout"]
        dz = self._decoder_backward(params, dout, f["dec_cache"], grads, ws)
        dmu, dlog_var = ops.reparameterize_backward(xp.reshape(dz, (R, N * K, L)),
                                                    xp.reshape(f["eps"], (R, N * K, L)),
                                                    f["std"], ws=ws, name="gmvae.z")
        w = xp.reshape(pi / float(N), (N, K, 1))  # KL enters the loss with +pi/N
        dkl_dmu, dkl_dlog_var, dkl_dmu_p, dkl_dlog_var_p = f["dkl"]
        dmu = xp.reshape(dmu, (N, K, L)) + w * dkl_dmu
        dlog_var = xp.reshape(dlog_var, (N, K, L)) + w * dkl_dlog_var
        store_grad(grads, "prior_mu", xp.sum(w * dkl_dmu_p, axis=0))
        store_grad(grads, "prior_log_var", xp.sum(w * dkl_dlog_var_p, axis=0))
        store_grad(grads, "enc_C_mu", xp.sum(dmu, axis=0))
        store_grad(grads, "enc_C_log_var", xp.sum(dlog_var, axis=0))
        ff = f["f"]
        dlogits = -pi * (ff - xp.sum(pi * ff, axis=1, keepdims=True)) / float(N)
        self._encoder_backward(params, dlogits, xp.sum(dmu, axis=1), xp.sum(dlog_var, axis=1),
                               f["enc_cache"], grads, ws)

    # -------------------------------------------------- relaxed estimators
    def _relaxed_forward(self, xp, X, eps, g, params, temperature, ws=None):
        """One relaxed (or straight-through) y and one z per (r, n): eps (R, N, L), g (R, N, K)."""
        R, N, L = eps.shape
        K = int(self.n_components)
        logits, mu_h, log_var_h, enc_cache = self._encode(X, params, ws)
        log_pi = F.log_softmax(logits, axis=1)
        pi = xp.exp(log_pi)
        y, gs_cache = gumbel_softmax(xp.reshape(logits, (1, N, K)), g, temperature,
                                     hard=self.objective == "straight_through")  # (R, N, K)
        y2 = xp.reshape(y, (R * N, K))
        mu = xp.reshape(xp.reshape(mu_h, (1, N, L)) + xp.reshape(y2 @ params["enc_C_mu"],
                                                                (R, N, L)), (R * N, L))
        log_var = xp.reshape(xp.reshape(log_var_h, (1, N, L))
                             + xp.reshape(y2 @ params["enc_C_log_var"], (R, N, L)), (R * N, L))
        mu_p = y2 @ params["prior_mu"]  # (R N, L)
        log_var_p = y2 @ params["prior_log_var"]
        z, std = ops.reparameterize(mu, log_var, xp.reshape(eps, (1, R * N, L)), ws,
                                    name="gmvae.zr")
        out, dec_cache = self._decode(xp.reshape(z, (R * N, L)), params, ws)
        ll, dll_dout = self._log_px(xp, X, out, -1.0 / (R * N), 1, ws)  # row (r, n): x_n
        kl, dkl_dmu, dkl_dlog_var, dkl_dmu_p, dkl_dlog_var_p = F.kl_normal_normal(
            mu, log_var, mu_p, log_var_p)  # (R N,)
        kl_y = xp.sum(pi * (log_pi + math.log(K)), axis=1)  # (N,) KL(q(y|x) || p(y))
        value = xp.reshape(ll - kl, (R, N))
        elbo = xp.mean(value, axis=0) - kl_y
        return dict(y=y2, gs_cache=gs_cache, pi=pi, log_pi=log_pi, elbo=elbo, std=std,
                    eps=xp.reshape(eps, (1, R * N, L)), dll_dout=dll_dout, R=R,
                    dkl=(dkl_dmu, dkl_dlog_var, dkl_dmu_p, dkl_dlog_var_p),
                    enc_cache=enc_cache, dec_cache=dec_cache)

    def _relaxed_backward(self, xp, f, params, grads, ws=None):
        R = f["R"]
        RN, L = f["std"].shape
        N = RN // R
        K = int(self.n_components)
        dz = self._decoder_backward(params, f["dll_dout"], f["dec_cache"], grads, ws)
        dmu, dlog_var = ops.reparameterize_backward(xp.reshape(dz, (1, RN, L)), f["eps"],
                                                    f["std"], ws=ws, name="gmvae.zr")
        s = 1.0 / float(R * N)
        dkl_dmu, dkl_dlog_var, dkl_dmu_p, dkl_dlog_var_p = f["dkl"]
        dmu = dmu + s * dkl_dmu  # (R N, L)
        dlog_var = dlog_var + s * dkl_dlog_var
        dmu_p, dlog_var_p = s * dkl_dmu_p, s * dkl_dlog_var_p
        y = f["y"]  # (R N, K)
        store_grad(grads, "enc_C_mu", y.T @ dmu)
        store_grad(grads, "enc_C_log_var", y.T @ dlog_var)
        store_grad(grads, "prior_mu", y.T @ dmu_p)
        store_grad(grads, "prior_log_var", y.T @ dlog_var_p)
        dy = (dmu @ params["enc_C_mu"].T + dlog_var @ params["enc_C_log_var"].T
              + dmu_p @ params["prior_mu"].T + dlog_var_p @ params["prior_log_var"].T)
        dlogits = xp.sum(gumbel_softmax_backward(xp.reshape(dy, (R, N, K)), f["gs_cache"]),
                         axis=0)  # (N, K)
        pi, log_pi = f["pi"], f["log_pi"]
        a = log_pi + math.log(K)  # dKL_y/dlogits = pi (a - sum_j pi_j a_j), enters with +1/N
        dlogits = dlogits + pi * (a - xp.sum(pi * a, axis=1, keepdims=True)) / float(N)
        self._encoder_backward(params, dlogits, xp.sum(xp.reshape(dmu, (R, N, L)), axis=0),
                               xp.sum(xp.reshape(dlog_var, (R, N, L)), axis=0),
                               f["enc_cache"], grads, ws)

    # ----------------------------------------------------------------- noise
    def _draw(self, rng, shape, like):
        rng = as_generator(rng)
        return normal(rng, shape, like=like)

    def _check_noise(self, xp, value, name, shape, X):
        value = check_array(value, name, ndim=len(shape))
        if tuple(value.shape[1:]) != tuple(shape[1:]):
            raise ValueError(f"{name} must have shape {('R',) + tuple(shape[1:])}; got "
                             f"{tuple(value.shape)}. Draw it with lvm_core.random.")
        return xp.astype(value, X.dtype) if value.dtype != X.dtype else value

    def loss_and_grads(self, X, rng=None, eps=None, g=None, params=None, grads_out=None,
                       check_input=True, temperature=None):
        """Mean negative training objective over the batch and its gradients.

        X (N, D).  Noise from ``rng`` (eps first, then g), or given:
        objective="exact": eps (R, N, K, L); relaxed objectives: eps (R, N, L) and
        Gumbel noise g (R, N, K).  ``temperature`` defaults to ``temperature_``
        (annealed during fit).  Returns (loss 0-d array, grads like params).
        """
        xp, X = self._prepare(X, validate=check_input)
        params = self.params if params is None else params
        N = X.shape[0]
        K, L, R = int(self.n_components), int(self.n_latent), int(self.n_samples)
        ws = self._ws()
        grads = {} if grads_out is None else grads_out
        if self.objective == "exact":
            eps = self._draw(rng, (R, N, K, L), X) if eps is None else \
                self._check_noise(xp, eps, "eps", (R, N, K, L), X)
            f = self._exact_forward(xp, X, eps, params, ws)
            self._exact_backward(xp, f, params, grads, ws)
        else:
            if eps is None or g is None:
                rng = as_generator(rng)
            eps = self._draw(rng, (R, N, L), X) if eps is None else \
                self._check_noise(xp, eps, "eps", (R, N, L), X)
            g = sample_gumbel(rng, (eps.shape[0], N, K), X) if g is None else \
                self._check_noise(xp, g, "g", (eps.shape[0], N, K), X)
            tau = self.temperature_ if temperature is None else temperature
            f = self._relaxed_forward(xp, X, eps, g, params, float(tau), ws)
            self._relaxed_backward(xp, f, params, grads, ws)
        loss = -xp.mean(f["elbo"])
        if grads_out is None:
            return loss, {k: grads[k] for k in params}
        return loss, grads

    # ------------------------------------------------------------ evaluation
    def elbo(self, X, rng=None, n_samples=1, batch_size=1000):
        """Exact ELBO per example (N,), summing over y; R = n_samples z draws per component."""
        xp, X = self._prepare(X)
        check_positive_int(n_samples, "n_samples")
        check_positive_int(batch_size, "batch_size")
        rng = as_generator(rng)
        K, L = int(self.n_components), int(self.n_latent)
        parts = []
        for s in range(0, X.shape[0], int(batch_size)):
            Xb = X[s:min(s + int(batch_size), X.shape[0]), :]
            eps = self._draw(rng, (int(n_samples), Xb.shape[0], K, L), Xb)
            parts.append(self._exact_forward(xp, Xb, eps, self.params)["elbo"])
        return xp.concat(parts) if len(parts) > 1 else parts[0]

    def log_marginal(self, X, n_importance=100, rng=None, batch_size=None):
        """Importance-sampled log p(x) (N,), summing over y exactly (module docstring).

        S = n_importance draws z ~ q(z|x, k) for every component k.
        """
        xp, X = self._prepare(X)
        check_positive_int(n_importance, "n_importance")
        K, L, S = int(self.n_components), int(self.n_latent), int(n_importance)
        if batch_size is None:
            batch_size = max(1, 16384 // (S * K))
        check_positive_int(batch_size, "batch_size")
        rng = as_generator(rng)
        parts = []
        for s in range(0, X.shape[0], int(batch_size)):
            Xb = X[s:min(s + int(batch_size), X.shape[0]), :]
            n = Xb.shape[0]
            eps = self._draw(rng, (S, n, K, L), Xb)
            f = self._exact_forward(xp, Xb, eps, self.params)
            ll = xp.reshape(f["ll"], (S, n, K))
            z = xp.reshape(f["z"], (S, n, K, L))
            mu_p, lv_p = self.params["prior_mu"], self.params["prior_log_var"]
            log_pz = -0.5 * xp.sum(lv_p + (z - mu_p) ** 2 * xp.exp(-lv_p), axis=3)
            log_qz = -0.5 * xp.sum(f["log_var"] + eps * eps, axis=3)  # 2 pi terms cancel
            lse = F.logsumexp(ll + log_pz - log_qz, axis=0) - math.log(S)  # (n, K)
            parts.append(F.logsumexp(lse - math.log(K), axis=1))
        return xp.concat(parts) if len(parts) > 1 else parts[0]

    def validation_loss(self, X, rng=0):
        """Mean negative exact ELBO over X with one z per (example, component)."""
        e = self.elbo(X, rng=rng, n_samples=1)
        return -item(get_namespace(e).mean(e))

    def predict_proba(self, X):
        """q(y|x) = softmax(logits(x)), (N, K)."""
        xp, X = self._prepare(X)
        logits, _, _, _ = self._encode(X, self.params)
        return F.softmax(logits, axis=1)

    def predict(self, X):
        """The cluster argmax_k q(y = k|x), (N,) integers."""
        xp, X = self._prepare(X)
        logits, _, _, _ = self._encode(X, self.params)
        return xp.argmax(logits, axis=1)

    def score_clustering(self, X, labels):
        """Clustering accuracy of :meth:`predict` against ``labels`` with the best
        one-to-one matching of clusters to labels (:func:`lvm_core.metrics.clustering_accuracy`)."""
        return clustering_accuracy(labels, self.predict(X))

    def decode(self, z):
        """Mean of p(x|z) (N, D) for z (N, L)."""
        if self.params is None:
            check_is_fitted(self, ["history_"])
        z = check_array(z, "z", ndim=2, n_features=int(self.n_latent))
        xp = get_namespace(z, self.params["enc_W_mu"])
        dt = self.params["enc_W_mu"].dtype
        if z.dtype != dt:
            z = xp.astype(z, dt)
        out, _ = self._decode(z, self.params)
        if self.decoder == "bernoulli":
            return F.sigmoid(out)
        if self.decoder == "continuous_bernoulli":
            return F.continuous_bernoulli_mean(out)
        return out

    def sample(self, n, rng=None, y=None, mean=False):
        """n draws: y ~ p(y) (or the given components ``y`` (n,)), z ~ p(z|y), x ~ p(x|z).

        Returns (x (n, D), y (n,)); ``mean=True`` returns the decoded means instead of x.
        """
        check_positive_int(n, "n")
        if self.params is None:
            self.initialize()
        rng = as_generator(rng)
        W = self.params["prior_mu"]
        xp = get_namespace(W)
        K, L = int(self.n_components), int(self.n_latent)
        if y is None:
            y_host = rng.integers(0, K, int(n))
        else:
            y_host = np.broadcast_to(np.asarray(to_numpy(y), dtype=np.int64), (int(n),)).copy()
            if y_host.size and (y_host.min() < 0 or y_host.max() >= K):
                raise ValueError(f"y must hold components in [0, {K}); got values in "
                                 f"[{y_host.min()}, {y_host.max()}].")
        y = asarray(y_host.astype(np.int64), like=W)
        onehot = xp.astype(xp.reshape(y, (-1, 1)) == xp.arange(K, device=getattr(W, "device",
                                                                                   None)), W.dtype)
        mu_p = onehot @ W
        std_p = xp.exp(0.5 * (onehot @ self.params["prior_log_var"]))
        z = mu_p + std_p * normal(rng, (int(n), L), like=W)
        means = self.decode(z)
        if mean:
            return means, y
        u = uniform(rng, tuple(means.shape), like=W)
        if self.decoder == "bernoulli":
            return xp.astype(u < means, W.dtype), y
        if self.decoder == "continuous_bernoulli":
            out, _ = self._decode(z, self.params)
            small = xp.abs(out) < 1e-3
            l_safe = xp.where(small, 1.0, out)
            x = xp.log1p(u * xp.expm1(l_safe)) / l_safe
            return xp.clip(xp.where(small, u, x), min=0.0, max=1.0), y
        return means + math.sqrt(float(self.gaussian_var)) * normal(rng, tuple(means.shape),
                                                                     like=W), y

    # ------------------------------------------------------------- training
    def binarize(self, X_batch, rng):
        """Dynamic binarisation x_b ~ Bernoulli(x)."""
        xp = get_namespace(X_batch)
        u = uniform(rng, tuple(X_batch.shape), like=X_batch)
        return xp.astype(u < X_batch, X_batch.dtype)

    def fit(self, X, epochs=10, batch_size=128, lr=1e-3, optimizer="adam",
            optimizer_kwargs=None, validation_data=None, random_state=None, progress=True,
            checkpoint=None, resume=False, early_stopping_patience=None,
            dynamic_binarization=False, callbacks=None):
        """Train with :func:`lvm_core.train.fit_minibatch`; the relaxed objectives anneal
        the temperature (``temperature_``) after every step.  Returns self."""
        from ..train import fit_minibatch

        xp, X = self._prepare(X)
        if validation_data is not None:
            _, validation_data = self._prepare(validation_data, name="validation_data")
        if dynamic_binarization and self.decoder != "bernoulli":
            raise ValueError("dynamic_binarization=True needs decoder='bernoulli'; got "
                             f"decoder={self.decoder!r}.")
        if not continues_fit(self):  # a new fit starts again unless warm_start=True
            self.initialize(like=None if isinstance(X, np.ndarray) else X)
        callbacks = list(callbacks or [])
        if self.objective != "exact":
            schedule = TemperatureAnnealing(self.temperature, self.temperature_min,
                                            self.anneal_rate)
            done = getattr(self, "history_", None)
            self.temperature_ = schedule(0) if not resume or done is None else self.temperature_
            callbacks.append(schedule)
        self.history_ = fit_minibatch(
            self, X, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
            optimizer_kwargs=optimizer_kwargs, validation_data=validation_data,
            random_state=random_state, progress=progress, checkpoint=checkpoint,
            resume=resume, early_stopping_patience=early_stopping_patience,
            transform_batch=self.binarize if dynamic_binarization else None,
            callbacks=callbacks or None)
        return self
