"""Variational autoencoder (AEVB) and the importance-weighted bound (IWAE).

References: Kingma & Welling 2014, "Auto-Encoding Variational Bayes"; Burda,
Grosse & Salakhutdinov 2016, "Importance Weighted Autoencoders"; Loaiza-Ganem &
Cunningham 2019, "The continuous Bernoulli"; course notes seeds/000-003 (AEVB
derived from EM, reparameterised ELBO with r samples and closed-form KL).

Model (N examples, D features, L latent, H hidden units, R samples per point)::

    p(z)   = N(z; 0, s^2 I)                                   (prior_var = s^2)
    p(x|z) = Bernoulli(sigmoid(f(z)))            decoder="bernoulli"
           | ContinuousBernoulli(sigmoid(f(z)))  decoder="continuous_bernoulli"
           | N(x; f(z), diag exp(log_var_x))     decoder="gaussian"
    q(z|x) = N(z; mu(x), diag exp(log_var(x)))   encoder MLP, two output heads

Reparameterisation (one sample per eps_i ~ N(0, I))::

    z_i = mu + exp(log_var / 2) * eps_i                        i = 1..R

ELBO (objective="elbo"), analytic KL::

    ELBO(x) ~ 1/R sum_i log p(x|z_i) - KL(q(z|x) || p(z))
    KL      = 1/2 sum_l [ (exp(log_var_l) + mu_l^2) / s^2 - 1 - log_var_l + log s^2 ]

IWAE (objective="iwae", k = n_samples)::

    log w_i = log p(x|z_i) + log p(z_i) - log q(z_i|x)
    L_k(x)  ~ logsumexp_i(log w_i) - log k
    grad L_k = sum_i w~_i grad log w_i,    w~ = softmax_i(log w_i)

The gradient is the exact gradient of the Monte Carlo estimate for fixed eps
(Kingma & Welling 2014, eq. 7; Burda et al. 2016, eq. 14); every backward pass
is written by hand below.  ``loss`` is the mean negative objective over the
batch.

Two code paths compute the same loss and gradients:

* a generic array-API path (NumPy, CuPy, array-api-strict, any dtype) built
  from the :mod:`lvm_core.functional` pairs (activations, likelihoods, KL,
  logsumexp), with the linear layers' matrix calculus written out here;
* a NumPy float32 fast path (ReLU, Bernoulli decoder, ELBO with one sample) with
  preallocated buffers, BLAS matmuls into ``out=`` and numba-fused elementwise
  kernels from :mod:`lvm_core.kernels.vae_numba`; ``train_step`` adds an
  in-place Adam update.  It is tested equal to the generic path.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import asarray, device_of, get_namespace, is_numpy_namespace, item
from .. import functional as F
from ..random import as_generator, normal, uniform
from ..validation import check_array, check_choice, check_is_fitted, check_positive_int
from .base import ParamsMixin

__all__ = ["VAE"]

_ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus", "leaky_relu", "elu", "identity")
_ACTIVATION_PAIRS = {
    "relu": (F.relu_forward, F.relu_backward),
    "tanh": (F.tanh_forward, F.tanh_backward),
    "sigmoid": (F.sigmoid_forward, F.sigmoid_backward),
    "softplus": (F.softplus_forward, F.softplus_backward),
    "leaky_relu": (F.leaky_relu_forward, F.leaky_relu_backward),  # slope 0.01
    "elu": (F.elu_forward, F.elu_backward),  # alpha 1
}


def _activation_forward(a, name):
    """h = act(a) (identity for "identity"); returns (h, cache)."""
    if name == "identity":
        return a, None
    return _ACTIVATION_PAIRS[name][0](a)


def _activation_backward(dh, cache, name):
    """da = dh * act'(a)."""
    if name == "identity":
        return dh
    return _ACTIVATION_PAIRS[name][1](dh, cache)


# --------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------

class VAE(ParamsMixin):
    """Variational autoencoder with handwritten gradients; ELBO or IWAE objective.

    Parameters
    ----------
    n_features : int
        D, the data dimension.
    n_latent : int
        L, the latent dimension.
    hidden : tuple of int
        Hidden widths of the encoder (D -> hidden -> 2 heads of size L); the
        decoder mirrors them (L -> reversed(hidden) -> D).  ``()`` gives linear maps.
    activation : {"relu", "tanh", "sigmoid", "softplus", "leaky_relu", "elu", "identity"}
    decoder : {"bernoulli", "continuous_bernoulli", "gaussian"}
    decoder_var : {"fixed", "learned", "output"}
        Gaussian decoder only: fixed variance ``gaussian_var``, a learned
        per-dimension ``dec_log_var`` (D,), or a second output head giving log_var (N, D).
    gaussian_var : float
        The fixed decoder variance (``decoder_var="fixed"``).
    prior_var : float
        s^2 of the prior N(0, s^2 I).
    objective : {"elbo", "iwae"}
    n_samples : int
        r samples per point for the ELBO, k for the IWAE bound.
    init : {"torch", "glorot", "he"}
        Weight initialisation ("torch" is nn.Linear's U(+-1/sqrt(fan_in)) for W and b).
    dtype : {"float32", "float64"}
    random_state : None, int or Generator
        Used for the initial weights.

    Attributes
    ----------
    params : dict of arrays
        ``enc_W{i}, enc_b{i}``, ``enc_W_mu, enc_b_mu, enc_W_log_var, enc_b_log_var``,
        ``dec_W{i}, dec_b{i}``, ``dec_W_out, dec_b_out`` and, for Gaussian
        decoders, ``dec_W_log_var, dec_b_log_var`` ("output") or ``dec_log_var`` ("learned").
        ``None`` until :meth:`initialize` (called on first use with data).
    history_ : History
        Set by :meth:`fit`.
    """

    def __init__(self, n_features, n_latent=20, hidden=(400,), activation="relu",
                 decoder="bernoulli", decoder_var="fixed", gaussian_var=1.0,
                 prior_var=1.0, objective="elbo", n_samples=1, init="torch",
                 dtype="float32", random_state=None):
        self.n_features = n_features
        self.n_latent = n_latent
        self.hidden = hidden
        self.activation = activation
        self.decoder = decoder
        self.decoder_var = decoder_var
        self.gaussian_var = gaussian_var
        self.prior_var = prior_var
        self.objective = objective
        self.n_samples = n_samples
        self.init = init
        self.dtype = dtype
        self.random_state = random_state
        self._validate_hyperparameters()
        self.params = None
        self._fast = None

    # ------------------------------------------------------------------ setup
    def _validate_hyperparameters(self):
        check_positive_int(self.n_features, "n_features")
        check_positive_int(self.n_latent, "n_latent")
        if isinstance(self.hidden, (str, bytes)) or not hasattr(self.hidden, "__iter__"):
            raise TypeError(
                f"hidden must be a tuple of layer widths such as (400,); got {self.hidden!r}. "
                "Use () for no hidden layer."
            )
        for h in self.hidden:
            check_positive_int(h, "hidden (each width)")
        check_choice(self.activation, "activation", _ACTIVATIONS)
        check_choice(self.decoder, "decoder", ("bernoulli", "continuous_bernoulli", "gaussian"))
        check_choice(self.decoder_var, "decoder_var", ("fixed", "learned", "output"))
        check_choice(self.objective, "objective", ("elbo", "iwae"))
        check_choice(self.init, "init", ("torch", "glorot", "he"))
        check_choice(self.dtype, "dtype", ("float32", "float64"))
        check_positive_int(self.n_samples, "n_samples")
        for name in ("gaussian_var", "prior_var"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 \
                    or not math.isfinite(value):
                raise ValueError(
                    f"{name} must be a positive finite number (a variance); got {value!r}. "
                    "Pass e.g. 1.0."
                )

    def _layer_sizes(self):
        """(encoder widths, decoder widths) without the output heads."""
        enc = [int(self.n_features)] + [int(h) for h in self.hidden]
        dec = [int(self.n_latent)] + [int(h) for h in reversed(list(self.hidden))]
        return enc, dec

    def initialize(self, like=None, random_state=None):
        """(Re)create ``params`` on the device of ``like`` (NumPy when None).

        Each layer y = x W + b gets W (d_in, d_out), b (d_out,) from
        :func:`lvm_core.nn.init_linear` with scheme ``init`` ("torch": nn.Linear's
        U(-1/sqrt(d_in), 1/sqrt(d_in)) for W and b).  A learned Gaussian decoder
        log-variance starts at log(gaussian_var).  Uses ``random_state``, or the
        model's ``random_state`` when None.
        """
        from ..nn import init_linear

        self._validate_hyperparameters()
        rng = as_generator(self.random_state if random_state is None else random_state)
        enc, dec = self._layer_sizes()
        L, D = int(self.n_latent), int(self.n_features)
        params = {}

        def layer(W_name, b_name, d_in, d_out):
            params[W_name], params[b_name] = init_linear(rng, d_in, d_out, scheme=self.init,
                                                         dtype=self.dtype, like=like)

        for i in range(len(enc) - 1):
            layer(f"enc_W{i}", f"enc_b{i}", enc[i], enc[i + 1])
        layer("enc_W_mu", "enc_b_mu", enc[-1], L)
        layer("enc_W_log_var", "enc_b_log_var", enc[-1], L)
        for i in range(len(dec) - 1):
            layer(f"dec_W{i}", f"dec_b{i}", dec[i], dec[i + 1])
        layer("dec_W_out", "dec_b_out", dec[-1], D)
        if self.decoder == "gaussian" and self.decoder_var == "output":
            layer("dec_W_log_var", "dec_b_log_var", dec[-1], D)
        if self.decoder == "gaussian" and self.decoder_var == "learned":
            params["dec_log_var"] = asarray(np.full(D, math.log(self.gaussian_var)), like=like,
                                            dtype=self.dtype)
        self.params = params
        self._fast = None
        return self

    def _prepare(self, X, name="X", validate=True):
        """Validated X in the model's dtype, on the params' device (params created if needed)."""
        if validate:
            X = check_array(X, name, ndim=2, n_features=int(self.n_features))
        if self.params is None:
            self.initialize(like=None if isinstance(X, np.ndarray) else X)
        xp = get_namespace(X, self.params["enc_W_mu"])
        dt = self.params["enc_W_mu"].dtype
        if not xp.isdtype(X.dtype, "real floating") or X.dtype != dt:
            X = xp.astype(X, dt)
        if validate and self.decoder in ("bernoulli", "continuous_bernoulli"):
            lo, hi = item(xp.min(X)), item(xp.max(X))
            if lo < 0.0 or hi > 1.0:
                raise ValueError(
                    f"{name} must lie in [0, 1] for decoder={self.decoder!r}; got values in "
                    f"[{lo:g}, {hi:g}]. Scale the data (e.g. pixels / 255) or use "
                    "decoder='gaussian'."
                )
        return xp, X

    # ---------------------------------------------------------------- encoder
    def _encoder_forward(self, xp, X, params):
        """h_0 = X, h_{i+1} = act(h_i W_i + b_i); mu = h W_mu + b_mu, log_var = h W_lv + b_lv.

        X (N, D) -> mu, log_var (N, L) and the cache of (h_in, activation cache) per layer.
        """
        h = X
        layers = []
        for i in range(len(self.hidden)):
            a = xp.matmul(h, params[f"enc_W{i}"]) + params[f"enc_b{i}"]  # (N, H_i)
            h_out, act_cache = _activation_forward(a, self.activation)
            layers.append((h, act_cache))
            h = h_out
        mu = xp.matmul(h, params["enc_W_mu"]) + params["enc_b_mu"]  # (N, L)
        log_var = xp.matmul(h, params["enc_W_log_var"]) + params["enc_b_log_var"]  # (N, L)
        return mu, log_var, (layers, h)

    def _encoder_backward(self, xp, dmu, dlog_var, cache, params, grads):
        """Backward of :meth:`_encoder_forward`: dW = h^T da, db = sum_n da, dh = da W^T."""
        layers, h = cache
        grads["enc_W_mu"] = xp.matmul(h.T, dmu)
        grads["enc_b_mu"] = xp.sum(dmu, axis=0)
        grads["enc_W_log_var"] = xp.matmul(h.T, dlog_var)
        grads["enc_b_log_var"] = xp.sum(dlog_var, axis=0)
        if not layers:
            return
        dh = xp.matmul(dmu, params["enc_W_mu"].T) + xp.matmul(dlog_var, params["enc_W_log_var"].T)
        for i in range(len(layers) - 1, -1, -1):
            h_in, act_cache = layers[i]
            da = _activation_backward(dh, act_cache, self.activation)
            grads[f"enc_W{i}"] = xp.matmul(h_in.T, da)
            grads[f"enc_b{i}"] = xp.sum(da, axis=0)
            if i > 0:  # (no dX for the data)
                dh = xp.matmul(da, params[f"enc_W{i}"].T)

    # ---------------------------------------------------------------- decoder
    def _decoder_forward(self, xp, z, params):
        """h_0 = z, h_{i+1} = act(h_i W_i + b_i); out = h W_out + b_out (logits or mean).

        z (M, L) -> out (M, D), log_var_x ((M, D), (D,), float or None), cache.
        """
        h = z
        layers = []
        for i in range(len(self.hidden)):
            a = xp.matmul(h, params[f"dec_W{i}"]) + params[f"dec_b{i}"]  # (M, H_i)
            h_out, act_cache = _activation_forward(a, self.activation)
            layers.append((h, act_cache))
            h = h_out
        out = xp.matmul(h, params["dec_W_out"]) + params["dec_b_out"]  # (M, D)
        log_var_x = None
        if self.decoder == "gaussian":
            if self.decoder_var == "fixed":
                log_var_x = math.log(float(self.gaussian_var))
            elif self.decoder_var == "learned":
                log_var_x = params["dec_log_var"]  # (D,)
            else:
                log_var_x = xp.matmul(h, params["dec_W_log_var"]) + params["dec_b_log_var"]
        return out, log_var_x, (layers, h)

    def _decoder_backward(self, xp, dout, dlog_var_x, cache, params, grads):
        """Backward of :meth:`_decoder_forward`; returns dz (M, L)."""
        layers, h = cache
        grads["dec_W_out"] = xp.matmul(h.T, dout)
        grads["dec_b_out"] = xp.sum(dout, axis=0)
        dh = xp.matmul(dout, params["dec_W_out"].T)
        if self.decoder == "gaussian" and self.decoder_var == "output":
            grads["dec_W_log_var"] = xp.matmul(h.T, dlog_var_x)
            grads["dec_b_log_var"] = xp.sum(dlog_var_x, axis=0)
            dh = dh + xp.matmul(dlog_var_x, params["dec_W_log_var"].T)
        elif self.decoder == "gaussian" and self.decoder_var == "learned":
            grads["dec_log_var"] = xp.sum(dlog_var_x, axis=0)
        for i in range(len(layers) - 1, -1, -1):
            h_in, act_cache = layers[i]
            da = _activation_backward(dh, act_cache, self.activation)
            grads[f"dec_W{i}"] = xp.matmul(h_in.T, da)
            grads[f"dec_b{i}"] = xp.sum(da, axis=0)
            dh = xp.matmul(da, params[f"dec_W{i}"].T)
        return dh

    def _log_px(self, xp, X_rep, out, log_var_x):
        """log p(x|z) per row and its gradients w.r.t. the decoder outputs.

        Returns ll (M,), dll/dout (M, D), dll/dlog_var_x ((M, D) or None).
        """
        if self.decoder == "bernoulli":
            ll, dout = F.bernoulli_log_likelihood(out, X_rep)
            return ll, dout, None
        if self.decoder == "continuous_bernoulli":
            ll, dout = F.continuous_bernoulli_log_likelihood(out, X_rep)
            return ll, dout, None
        if not isinstance(log_var_x, float):
            # per-row gradients are needed (IWAE weights rows differently): (D,) -> (M, D)
            log_var_x = xp.broadcast_to(log_var_x, tuple(out.shape))
        ll, _, dmean, dlog_var_x = F.gaussian_log_likelihood(X_rep, out, log_var_x)
        return ll, dmean, (None if isinstance(log_var_x, float) else dlog_var_x)

    # --------------------------------------------------------- forward pass
    def _forward(self, xp, X, eps, params):
        """All terms of the bounds for eps (R, N, L).

        z_i = mu + exp(log_var/2) eps_i; log p(x|z_i) (R, N); KL (N,);
        log p(z_i) - log q(z_i|x) (R, N).
        """
        R, N, L = eps.shape
        D = X.shape[1]
        mu, log_var, enc_cache = self._encoder_forward(xp, X, params)
        std = xp.exp(0.5 * log_var)  # (N, L)
        z = mu + std * eps  # (R, N, L)
        z2 = xp.reshape(z, (R * N, L))
        X_rep = X if R == 1 else xp.reshape(xp.broadcast_to(X, (R, N, D)), (R * N, D))
        out, log_var_x, dec_cache = self._decoder_forward(xp, z2, params)
        ll, dll_dout, dll_dlog_var_x = self._log_px(xp, X_rep, out, log_var_x)
        s2 = float(self.prior_var)
        # log p(z) - log q(z|x) = -1/2 sum_l [z^2/s^2 + log s^2 - eps^2 - log_var]
        log_pz_minus_log_qz = -0.5 * xp.sum(
            z * z / s2 + math.log(s2) - eps * eps - log_var, axis=2)  # (R, N)
        kl, dkl_dmu, dkl_dlog_var = F.kl_normal_std_normal(mu, log_var, prior_var=s2)
        return dict(mu=mu, log_var=log_var, std=std, eps=eps, z=z, X_rep=X_rep,
                    log_px=xp.reshape(ll, (R, N)), dll_dout=dll_dout,
                    dll_dlog_var_x=dll_dlog_var_x, log_pz_minus_log_qz=log_pz_minus_log_qz,
                    kl=kl, dkl_dmu=dkl_dmu, dkl_dlog_var=dkl_dlog_var,
                    enc_cache=enc_cache, dec_cache=dec_cache)

    def _objective(self, xp, f):
        """Per-example objective (N,) and c = d loss / d log p(x|z_i) (R, N) for the mean loss.

        ELBO: 1/R sum_i log p(x|z_i) - KL, c = -1/(R N).
        IWAE: logsumexp_i log w_i - log R, c = -w~_i / N.
        """
        R, N = f["log_px"].shape
        if self.objective == "elbo":
            obj = xp.sum(f["log_px"], axis=0) / float(R) - f["kl"]
            c = xp.full((R, N), -1.0 / (R * N), dtype=obj.dtype, device=device_of(obj))
            return obj, c
        log_w = f["log_px"] + f["log_pz_minus_log_qz"]  # (R, N)
        lse = F.logsumexp(log_w, axis=0)  # (N,)
        w_tilde = xp.exp(log_w - lse)  # (R, N), sums to 1 over R
        return lse - math.log(R), -w_tilde / float(N)

    def _backward(self, xp, f, c, params):
        """Gradients of loss = -mean objective, for fixed eps.

        dlogits = c dll/dlogits; dz from the decoder (plus, for IWAE, c d/dz log p(z)
        = -c z / s^2); dmu = sum_i dz_i (+ dKL/dmu / N); dlog_var = sum_i dz_i eps_i
        std / 2 (+ dKL/dlog_var / N for the ELBO, + 1/2 sum_i c_i for IWAE's -log q).
        """
        R, N = c.shape
        L = f["mu"].shape[1]
        grads = {}
        c_col = xp.reshape(c, (R * N, 1))
        dout = c_col * f["dll_dout"]  # (R N, D)
        dlog_var_x = None if f["dll_dlog_var_x"] is None else c_col * f["dll_dlog_var_x"]
        dz = self._decoder_backward(xp, dout, dlog_var_x, f["dec_cache"], params, grads)
        dz = xp.reshape(dz, (R, N, L))
        if self.objective == "iwae":
            c3 = xp.reshape(c, (R, N, 1))
            dz = dz - c3 * f["z"] / float(self.prior_var)
            dmu = xp.sum(dz, axis=0)
            dlog_var = xp.sum(dz * f["eps"], axis=0) * (0.5 * f["std"]) \
                + 0.5 * xp.reshape(xp.sum(c, axis=0), (N, 1))
        else:
            dmu = xp.sum(dz, axis=0) + f["dkl_dmu"] / float(N)
            dlog_var = xp.sum(dz * f["eps"], axis=0) * (0.5 * f["std"]) \
                + f["dkl_dlog_var"] / float(N)
        self._encoder_backward(xp, dmu, dlog_var, f["enc_cache"], params, grads)
        return {k: grads[k] for k in params}

    # ----------------------------------------------------------------- public
    def _draw_eps(self, rng, R, N, like):
        return normal(as_generator(rng), (R, N, int(self.n_latent)), like=like)

    def _check_eps(self, xp, eps, N, X):
        eps = check_array(eps, "eps", ndim=(2, 3))
        if eps.ndim == 2:
            eps = xp.reshape(eps, (1,) + tuple(eps.shape))
        if eps.shape[1] != N or eps.shape[2] != int(self.n_latent):
            raise ValueError(
                f"eps must have shape (R, N, L) = (R, {N}, {self.n_latent}) (or (N, L)); got "
                f"{tuple(eps.shape)}. Draw it as normal(rng, (R, N, L))."
            )
        return xp.astype(eps, X.dtype) if eps.dtype != X.dtype else eps

    def loss_and_grads(self, X, rng=None, eps=None, params=None):
        """Mean negative objective over the batch and its gradients.

        X : (N, D).  rng : seed or Generator for eps ~ N(0, I) of shape (R, N, L),
        R = ``n_samples``; or pass ``eps`` (R, N, L) / (N, L) to fix the noise
        (then the loss is a deterministic function of the params, e.g. for
        gradient checks).  ``params`` defaults to ``self.params``.
        Returns (loss as a 0-d array, grads with the keys, shapes and dtypes of params).
        """
        xp, X = self._prepare(X)
        params = self.params if params is None else params
        N = X.shape[0]
        if eps is None:
            eps = self._draw_eps(rng, int(self.n_samples), N, X)
        else:
            eps = self._check_eps(xp, eps, N, X)
        if self._fast_eligible(xp, X, eps) and params is self.params:
            loss, grads = self._fast_loss_and_grads(X, eps[0])
            return loss, {k: g.copy() for k, g in grads.items()}  # not the reused buffers
        return self._loss_and_grads_generic(xp, X, eps, params)

    def _loss_and_grads_generic(self, xp, X, eps, params):
        f = self._forward(xp, X, eps, params)
        obj, c = self._objective(xp, f)
        loss = -xp.mean(obj)
        return loss, self._backward(xp, f, c, params)

    def elbo(self, X, rng=None, n_samples=1):
        """Per-example ELBO (N,): 1/R sum_i log p(x|z_i) - KL(q(z|x) || p(z)), R = n_samples."""
        xp, X = self._prepare(X)
        check_positive_int(n_samples, "n_samples")
        eps = self._draw_eps(rng, int(n_samples), X.shape[0], X)
        f = self._forward(xp, X, eps, self.params)
        return xp.sum(f["log_px"], axis=0) / float(n_samples) - f["kl"]

    def log_marginal(self, X, n_importance=100, rng=None, batch_size=None):
        """Importance-sampled log p(x) (N,) with q(z|x) as the proposal (= the IWAE-k bound).

        log p(x) ~ logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k,
        z_i ~ q(z|x), k = n_importance.  Rows are processed in chunks of
        ``batch_size`` (default: about 2^14 / k rows) so memory stays O(batch_size k D).
        """
        xp, X = self._prepare(X)
        check_positive_int(n_importance, "n_importance")
        k = int(n_importance)
        if batch_size is None:
            batch_size = max(1, 16384 // k)
        check_positive_int(batch_size, "batch_size")
        rng = as_generator(rng)
        parts = []
        for start in range(0, X.shape[0], int(batch_size)):
            Xb = X[start:min(start + int(batch_size), X.shape[0]), :]
            eps = self._draw_eps(rng, k, Xb.shape[0], Xb)
            f = self._forward(xp, Xb, eps, self.params)
            log_w = f["log_px"] + f["log_pz_minus_log_qz"]  # (k, n)
            parts.append(F.logsumexp(log_w, axis=0) - math.log(k))
        return xp.concat(parts) if len(parts) > 1 else parts[0]

    def validation_loss(self, X, rng=0):
        """Mean -ELBO over X with one z per example (fixed seed ``rng`` for comparability)."""
        elbo = self.elbo(X, rng=rng, n_samples=1)
        return -item(get_namespace(elbo).mean(elbo))

    def encode(self, X):
        """mu(x), log_var(x) of q(z|x), each (N, L)."""
        xp, X = self._prepare(X)
        mu, log_var, _ = self._encoder_forward(xp, X, self.params)
        return mu, log_var

    def decode(self, z):
        """Mean of p(x|z) (N, D) for z (N, L).

        sigmoid(logits) (Bernoulli), 1/(1 - e^{-l}) - 1/l (continuous Bernoulli) or
        the Gaussian mean.
        """
        if self.params is None:
            check_is_fitted(self, ["history_"])
        z = check_array(z, "z", ndim=2, n_features=int(self.n_latent))
        xp = get_namespace(z, self.params["enc_W_mu"])
        dt = self.params["enc_W_mu"].dtype
        if z.dtype != dt:
            z = xp.astype(z, dt)
        out, _, _ = self._decoder_forward(xp, z, self.params)
        if self.decoder == "bernoulli":
            return F.sigmoid(out)
        if self.decoder == "continuous_bernoulli":
            return F.continuous_bernoulli_mean(out)
        return out

    def reconstruct(self, X):
        """decode(mu(x)): the mean of p(x|z) at the posterior mean, (N, D)."""
        mu, _ = self.encode(X)
        return self.decode(mu)

    def sample(self, n, rng=None, like=None):
        """n draws x ~ p(x|z), z ~ N(0, s^2 I); (n, D) on the device of ``like`` / the params.

        Bernoulli: x = 1[u < sigmoid(l)]; continuous Bernoulli: inverse CDF
        x = log(1 + u (e^l - 1)) / l; Gaussian: mean + exp(log_var/2) eps.
        """
        check_positive_int(n, "n")
        if self.params is None:
            self.initialize(like=like)
        rng = as_generator(rng)
        W = self.params["enc_W_mu"]
        xp = get_namespace(W)
        z = normal(rng, (int(n), int(self.n_latent)), like=W) * math.sqrt(float(self.prior_var))
        out, log_var_x, _ = self._decoder_forward(xp, z, self.params)
        u = uniform(rng, tuple(out.shape), like=W)
        if self.decoder == "bernoulli":
            return xp.astype(u < F.sigmoid(out), W.dtype)
        if self.decoder == "continuous_bernoulli":
            small = xp.abs(out) < 1e-3
            l_safe = xp.where(small, 1.0, out)
            x = xp.log1p(u * xp.expm1(l_safe)) / l_safe
            return xp.clip(xp.where(small, u, x), min=0.0, max=1.0)
        eps = normal(rng, tuple(out.shape), like=W)
        if isinstance(log_var_x, float):
            return out + math.exp(0.5 * log_var_x) * eps
        return out + xp.exp(0.5 * log_var_x) * eps

    # ------------------------------------------------------------- training
    def binarize(self, X_batch, rng):
        """Dynamic binarisation: x_b ~ Bernoulli(x) elementwise (grey levels as probabilities)."""
        xp = get_namespace(X_batch)
        u = uniform(rng, tuple(X_batch.shape), like=X_batch)
        return xp.astype(u < X_batch, X_batch.dtype)

    def fit(self, X, epochs=10, batch_size=128, lr=1e-3, optimizer="adam",
            optimizer_kwargs=None, validation_data=None, random_state=None, progress=True,
            checkpoint=None, resume=False, early_stopping_patience=None,
            dynamic_binarization=False):
        """Train with minibatch gradient steps (:func:`lvm_core.train.fit_minibatch`).

        ``dynamic_binarization=True`` resamples Bernoulli targets x_b ~ Bernoulli(x)
        from grey levels each time a batch is drawn.  Returns self; the
        training record is in ``history_``.
        """
        from ..train import fit_minibatch

        xp, X = self._prepare(X)
        if validation_data is not None:
            _, validation_data = self._prepare(validation_data, name="validation_data")
        if dynamic_binarization and self.decoder != "bernoulli":
            raise ValueError(
                "dynamic_binarization=True needs decoder='bernoulli'; got "
                f"decoder={self.decoder!r}. "
                "Use decoder='bernoulli' or leave dynamic_binarization=False."
            )
        self.history_ = fit_minibatch(
            self, X, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
            optimizer_kwargs=optimizer_kwargs, validation_data=validation_data,
            random_state=random_state, progress=progress, checkpoint=checkpoint,
            resume=resume, early_stopping_patience=early_stopping_patience,
            transform_batch=self.binarize if dynamic_binarization else None,
        )
        return self

    # -------------------------------------------------------- NumPy fast path
    def _fast_eligible(self, xp, X, eps):
        """The fused float32 path: NumPy, ReLU, Bernoulli decoder, ELBO, one sample."""
        return (is_numpy_namespace(xp) and X.dtype == np.float32 and self.activation == "relu"
                and self.decoder == "bernoulli" and self.objective == "elbo"
                and eps.shape[0] == 1 and isinstance(X, np.ndarray)
                and all(isinstance(v, np.ndarray) and v.dtype == np.float32
                        and v.flags.c_contiguous for v in self.params.values()))

    def _fast_state(self, N):
        """Buffers for a batch of N rows (re-made when N or the params change)."""
        st = self._fast
        if st is not None and st["N"] == N and st["params"] is self.params \
                and all(st["ids"][k] is v for k, v in self.params.items()):
            return st
        f32 = np.float32
        enc, dec = self._layer_sizes()
        L, D = int(self.n_latent), int(self.n_features)
        if st is None or st["params"] is not self.params or \
                any(st["ids"][k] is not v for k, v in self.params.items()):
            grads = {k: np.empty_like(v) for k, v in self.params.items()}
        else:
            grads = st["grads"]
        st = dict(
            N=N, params=self.params, ids=dict(self.params), grads=grads,
            enc_h=[np.empty((N, h), f32) for h in enc[1:]],
            dec_h=[np.empty((N, h), f32) for h in dec[1:]],
            heads=np.empty((N, 2 * L), f32), dheads=np.empty((N, 2 * L), f32),  # [mu | log_var]
            W_heads=np.empty((enc[-1], 2 * L), f32), gW_heads=np.empty((enc[-1], 2 * L), f32),
            b_heads=np.empty(2 * L, f32), gb_heads=np.empty(2 * L, f32),
            std=np.empty((N, L), f32), z=np.empty((N, L), f32),
            dz=np.empty((N, L), f32),
            logits=np.empty((N, D), f32), e=np.empty((N, D), f32), dlogits=np.empty((N, D), f32),
            enc_dh=[np.empty((N, h), f32) for h in enc[1:]],
            dec_dh=[np.empty((N, h), f32) for h in dec[1:]],
            acc=np.empty(D, np.float64),
        )
        self._fast = st
        return st

    def _fast_loss_and_grads(self, X, eps):
        """Same loss and gradients as the generic path (ReLU, Bernoulli, ELBO, R = 1)
        with preallocated buffers, ``out=`` matmuls and fused numba kernels.

        X (N, D) float32 C-contiguous or not, eps (N, L) float32.  Returns
        (loss as a 0-d float32 array, grads dict of the model's buffers: copy them
        before the next call if you keep them).
        """
        from ..kernels import vae_numba as kn

        N = X.shape[0]
        st = self._fast_state(N)
        p, g = self.params, st["grads"]
        n_hidden = len(self.hidden)
        inv_N = np.float32(1.0 / N)
        # encoder: h_{i+1} = relu(h_i W_i + b_i)
        h = X
        for i in range(n_hidden):
            out = st["enc_h"][i]
            np.matmul(h, p[f"enc_W{i}"], out=out)
            kn.bias_relu(out, p[f"enc_b{i}"])
            h = out
        # both heads in one matmul: [mu | log_var] = h [W_mu | W_log_var] + [b_mu | b_log_var]
        L = int(self.n_latent)
        W_heads, b_heads, heads = st["W_heads"], st["b_heads"], st["heads"]
        W_heads[:, :L] = p["enc_W_mu"]
        W_heads[:, L:] = p["enc_W_log_var"]
        b_heads[:L] = p["enc_b_mu"]
        b_heads[L:] = p["enc_b_log_var"]
        np.matmul(h, W_heads, out=heads)
        heads += b_heads
        mu, log_var = heads[:, :L], heads[:, L:]  # (N, L) views
        # z = mu + exp(log_var / 2) eps
        std, z = st["std"], st["z"]
        np.multiply(log_var, np.float32(0.5), out=std)
        np.exp(std, out=std)
        np.multiply(std, eps, out=z)
        z += mu
        # decoder
        h = z
        for i in range(n_hidden):
            out = st["dec_h"][i]
            np.matmul(h, p[f"dec_W{i}"], out=out)
            kn.bias_relu(out, p[f"dec_b{i}"])
            h = out
        logits, e, dlogits = st["logits"], st["e"], st["dlogits"]
        np.matmul(h, p["dec_W_out"], out=logits)
        kn.bias_neg_abs(logits, p["dec_b_out"], e)  # logits += b; e = -|logits|
        np.exp(e, out=e)
        acc = st["acc"]
        # dlogits = (sigmoid(l) - x) / N, db = sum_n dlogits, acc = sum_n max(l,0) - x l, e <- 1 + e
        kn.bernoulli_nll_backward(logits, X, e, dlogits, g["dec_b_out"], acc, inv_N)
        np.log(e, out=e)
        nll_sum = float(np.sum(acc)) + float(np.sum(e, dtype=np.float64))
        # KL and its gradient (small (N, L) arrays)
        s2 = float(self.prior_var)
        var = std * std
        kl_sum = 0.5 * float(np.sum((var + mu * mu) * np.float32(1.0 / s2) - np.float32(1.0)
                                    - log_var, dtype=np.float64)) + 0.5 * N * L * math.log(s2)
        loss = np.float32((nll_sum + kl_sum) / N)
        # decoder backward
        dh = dlogits
        W_prev = p["dec_W_out"]
        np.matmul(h.T, dlogits, out=g["dec_W_out"])
        for i in range(n_hidden - 1, -1, -1):
            dh_i = st["dec_dh"][i]
            np.matmul(dh, W_prev.T, out=dh_i)
            kn.relu_backward_bias(dh_i, st["dec_h"][i], g[f"dec_b{i}"])
            h_in = z if i == 0 else st["dec_h"][i - 1]
            np.matmul(h_in.T, dh_i, out=g[f"dec_W{i}"])
            dh, W_prev = dh_i, p[f"dec_W{i}"]
        dz = st["dz"]
        np.matmul(dh, W_prev.T, out=dz)
        # dmu = dz + mu / (s^2 N); dlog_var = dz eps std / 2 + (var / s^2 - 1) / (2 N)
        dheads = st["dheads"]
        dmu, dlog_var = dheads[:, :L], dheads[:, L:]  # (N, L) views
        np.multiply(mu, np.float32(1.0 / (s2 * N)), out=dmu)
        dmu += dz
        np.multiply(dz, eps, out=dlog_var)
        dlog_var *= std
        dlog_var *= np.float32(0.5)
        dlog_var += var * np.float32(0.5 / (s2 * N))
        dlog_var -= np.float32(0.5 / N)
        # encoder backward
        h = st["enc_h"][-1] if n_hidden else X
        np.matmul(h.T, dheads, out=st["gW_heads"])
        np.sum(dheads, axis=0, out=st["gb_heads"])
        g["enc_W_mu"][...] = st["gW_heads"][:, :L]
        g["enc_W_log_var"][...] = st["gW_heads"][:, L:]
        g["enc_b_mu"][...] = st["gb_heads"][:L]
        g["enc_b_log_var"][...] = st["gb_heads"][L:]
        if n_hidden:
            dh = st["enc_dh"][-1]
            np.matmul(dheads, W_heads.T, out=dh)
            for i in range(n_hidden - 1, -1, -1):
                kn.relu_backward_bias(dh, st["enc_h"][i], g[f"enc_b{i}"])
                h_in = X if i == 0 else st["enc_h"][i - 1]
                np.matmul(h_in.T, dh, out=g[f"enc_W{i}"])
                if i > 0:
                    dh_prev = st["enc_dh"][i - 1]
                    np.matmul(dh, p[f"enc_W{i}"].T, out=dh_prev)
                    dh = dh_prev
        return np.asarray(loss), g

    def train_step(self, X_batch, rng, opt_state, lr, betas=(0.9, 0.999), eps=1e-8,
                   weight_decay=0.0):
        """One Adam step (forward, backward and in-place update) -> (loss, opt_state).

        Used by :func:`lvm_core.train.fit_minibatch` for optimizer="adam".  On the
        fast path the update is a fused in-place kernel; otherwise the generic
        loss_and_grads followed by :func:`lvm_core.nn.adam`.  Adam (Kingma & Ba
        2015, as torch.optim.Adam): m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
        p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
        On the fast path a non-finite loss leaves the parameters untouched (the
        training loop reports it); the generic path never syncs with the device here.
        """
        xp, X_batch = self._prepare(X_batch, name="X_batch", validate=False)
        N = X_batch.shape[0]
        eps_z = self._draw_eps(rng, int(self.n_samples), N, X_batch)
        if not (self._fast_eligible(xp, X_batch, eps_z) and weight_decay == 0.0):
            from ..nn import adam

            loss, grads = self._loss_and_grads_generic(xp, X_batch, eps_z, self.params)
            new_params, opt_state = adam(self.params, grads, opt_state, lr=lr, betas=betas,
                                         eps=eps, weight_decay=weight_decay)
            self.params.update(new_params)  # the same dict: callers' references stay valid
            return loss, opt_state
        from ..nn._optim_numba import adam_inplace_kernel

        loss, grads = self._fast_loss_and_grads(X_batch, eps_z[0])
        if not math.isfinite(float(loss)):
            return loss, opt_state
        opt_state = _adam_state(self.params, opt_state)
        t = int(opt_state["step"]) + 1
        opt_state["step"] = t
        f32 = np.float32
        b1, b2 = float(betas[0]), float(betas[1])
        step_size = f32(lr / (1.0 - b1 ** t))
        bc2_sqrt = f32(math.sqrt(1.0 - b2 ** t))
        for k, p in self.params.items():  # the nn.adam kernel, decay 1 (no weight decay here)
            adam_inplace_kernel(p.reshape(-1), grads[k].reshape(-1), opt_state["m"][k].reshape(-1),
                                opt_state["v"][k].reshape(-1), f32(1.0), f32(b1), f32(1.0 - b1),
                                f32(b2), f32(1.0 - b2), bc2_sqrt, f32(eps), step_size)
        return loss, opt_state
        opt_state = _adam_state(self.params, opt_state)
        t = int(opt_state["step"]) + 1
        opt_state["step"] = t
        b1, b2 = float(betas[0]), float(betas[1])
        step_size = np.float32(lr / (1.0 - b1 ** t))
        bc2_sqrt = np.float32(math.sqrt(1.0 - b2 ** t))
        for k, p in self.params.items():
            kn.adam_update(p.reshape(-1), grads[k].reshape(-1), opt_state["m"][k].reshape(-1),
                           opt_state["v"][k].reshape(-1), np.float32(b1), np.float32(b2),
                           step_size, bc2_sqrt, np.float32(eps))
        return loss, opt_state


def _adam_state(params, state):
    """Adam state {"step", "m", "v"} (the format of :func:`lvm_core.nn.adam`) whose
    moments are C-contiguous arrays shaped and typed like ``params`` (zeros when
    ``state`` is None or a key is missing), so the fused kernel can update them in place."""
    if state is None:
        state = {"step": 0, "m": {}, "v": {}}
    for name in ("m", "v"):
        moments = state.setdefault(name, {})
        for k, p in params.items():
            cur = moments.get(k)
            if not (isinstance(cur, np.ndarray) and cur.dtype == p.dtype and cur.shape == p.shape
                    and cur.flags.c_contiguous and cur.flags.writeable):
                moments[k] = np.zeros_like(p) if cur is None else np.array(cur, dtype=p.dtype)
    return state

