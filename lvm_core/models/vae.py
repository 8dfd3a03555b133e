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

One code path computes the loss and its gradients, on every backend: the
model is a composition of :mod:`lvm_core.nn` layers (Dense trunks, a
GaussianHead for q(z|x), a Dense or GaussianHead decoder output) and
:mod:`lvm_core.ops` primitives (reparameterisation, KL, fused log-likelihood
value + gradient), which run numba kernels and BLAS into reused workspace
buffers for NumPy float arrays and array-API code otherwise.  The gradient
checks run through this same path.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .. import ops
from ..backend import asarray, get_namespace, item
from ..nn import Dense, GaussianHead, stack_backward, stack_forward, store_grad
from ..random import as_generator, normal, uniform
from ..validation import (check_array, check_choice, check_is_fitted, check_magnitude,
                          check_positive_int)
from .base import ParamsMixin, continues_fit

__all__ = ["VAE"]

_ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus", "leaky_relu", "elu", "identity")


# --------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------

class VAE(ParamsMixin):
    """Variational autoencoder with handwritten gradients; ELBO or IWAE objective.

    Parameters
    ----------
    n_features : int or None
        D, the data dimension; None takes it from the data at ``fit`` (recorded as
        ``n_features_in_``), so that a refit on data of another width works.
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
    warm_start : bool
        False (default): every ``fit`` starts again from the initialisation
        (:meth:`initialize` with ``random_state``), as scikit-learn's estimators do;
        True: a ``fit`` continues from the current ``params`` when they exist and
        match the architecture.

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
                 dtype="float32", random_state=None, warm_start=False):
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
        self.warm_start = warm_start
        self._validate_hyperparameters()
        self.params = None

    # ------------------------------------------------------------------ setup
    def _validate_hyperparameters(self):
        if self.n_features is not None:
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

    def _width(self):
        """D: ``n_features``, or the width of the data seen at ``fit`` when it is None."""
        if self.n_features is not None:
            return int(self.n_features)
        width = getattr(self, "n_features_in_", None)
        if width is None:
            from ..validation import not_fitted_error

            raise not_fitted_error(
                f"This {type(self).__name__} has n_features=None and has not seen data yet: "
                "call fit(X) first, or pass n_features=D."
            )
        return int(width)

    def _layer_sizes(self):
        """(encoder widths, decoder widths) without the output heads."""
        enc = [self._width()] + [int(h) for h in self.hidden]
        dec = [int(self.n_latent)] + [int(h) for h in reversed(list(self.hidden))]
        return enc, dec

    def _layers(self):
        """The layers (built once per architecture): encoder trunk, q head, decoder trunk,
        decoder output (a Dense for logits / means, a GaussianHead for decoder_var="output")."""
        key = (self._width(), int(self.n_latent), tuple(int(h) for h in self.hidden),
               self.activation, self.decoder, self.decoder_var, self.init)
        if getattr(self, "_layer_cache", None) is not None and self._layer_cache[0] == key:
            return self._layer_cache[1]
        enc, dec = self._layer_sizes()
        L, D = int(self.n_latent), self._width()
        act = self.activation
        layers = dict(
            enc=[Dense(enc[i], enc[i + 1], act, prefix="enc_", suffix=str(i), init=self.init)
                 for i in range(len(enc) - 1)],
            q=GaussianHead(enc[-1], L, prefix="enc_", init=self.init),
            dec=[Dense(dec[i], dec[i + 1], act, prefix="dec_", suffix=str(i), init=self.init)
                 for i in range(len(dec) - 1)],
        )
        if self.decoder == "gaussian" and self.decoder_var == "output":
            layers["out"] = GaussianHead(dec[-1], D, prefix="dec_", mu_name="out",
                                         log_var_name="log_var", init=self.init)
        else:
            layers["out"] = Dense(dec[-1], D, None, prefix="dec_", suffix="_out", init=self.init)
        self._layer_cache = (key, layers)
        return layers

    def initialize(self, like=None, random_state=None):
        """(Re)create ``params`` on the device of ``like`` (NumPy when None).

        Each layer y = x W + b gets W (d_in, d_out), b (d_out,) from
        :func:`lvm_core.nn.init_linear` with scheme ``init`` ("torch": nn.Linear's
        U(-1/sqrt(d_in), 1/sqrt(d_in)) for W and b), drawn in the order encoder
        layers, mu head, log_var head, decoder layers, output (log_var output).
        A learned Gaussian decoder log-variance starts at log(gaussian_var).
        Uses ``random_state``, or the model's ``random_state`` when None.
        """
        self._validate_hyperparameters()
        rng = as_generator(self.random_state if random_state is None else random_state)
        layers = self._layers()
        params = {}
        for layer in [*layers["enc"], layers["q"], *layers["dec"], layers["out"]]:
            params.update(layer.init(rng, dtype=self.dtype, like=like))
        if self.decoder == "gaussian" and self.decoder_var == "learned":
            params["dec_log_var"] = asarray(np.full(self._width(),
                                                    math.log(self.gaussian_var)),
                                            like=like, dtype=self.dtype)
        self.params = params
        return self

    def _prepare(self, X, name="X", validate=True):
        """Validated X in the model's dtype, on the params' device (params created if needed).

        ``validate=False`` (the training loop, which validated the data once) skips
        the checks that read the data (NaN, range): no device sync.
        """
        if validate:
            X = check_array(X, name, ndim=2, n_features=self._width())
        return self._on_params(X, name, validate)

    def _on_params(self, X, name, validate, D=None):
        """X on the parameters' namespace and dtype (initialising them on first use);
        with ``validate``, a Bernoulli-type decoder's targets X[:, :D] (all columns
        when D is None) must lie in [0, 1].  Returns (xp, X)."""
        if self.params is None:
            self.initialize(like=None if isinstance(X, np.ndarray) else X)
        xp = get_namespace(X, self.params["enc_W_mu"])
        dt = self.params["enc_W_mu"].dtype
        if X.dtype != dt:
            X = xp.astype(X, dt)
        if validate and self.decoder in ("bernoulli", "continuous_bernoulli"):
            V = X if D is None else X[:, :D]
            lo, hi = item(xp.min(V)), item(xp.max(V))
            if lo < 0.0 or hi > 1.0:
                raise ValueError(
                    f"{name} must lie in [0, 1] for decoder={self.decoder!r}; got values in "
                    f"[{lo:g}, {hi:g}]. Scale the data (e.g. pixels / 255) or use "
                    "decoder='gaussian'."
                )
        return xp, X

    # ------------------------------------------------------- encoder, decoder
    def _encode(self, X, params, ws=None):
        """h = trunk(X); (mu, log_var) = q head(h), each (N, L); returns (mu, log_var, cache)."""
        layers = self._layers()
        h, trunk = stack_forward(layers["enc"], params, X, ws)
        (mu, log_var), head = layers["q"].forward(params, h, ws)
        return mu, log_var, (trunk, head)

    def _decode(self, xp, z, params, ws=None):
        """out = output(trunk(z)) (logits or Gaussian mean) (M, D) and log_var_x:
        a float (fixed), the (D,) parameter (learned), (M, D) (output) or None."""
        layers = self._layers()
        h, trunk = stack_forward(layers["dec"], params, z, ws)
        out, head = layers["out"].forward(params, h, ws)
        log_var_x = None
        if self.decoder == "gaussian":
            if self.decoder_var == "output":
                out, log_var_x = out
            elif self.decoder_var == "learned":
                log_var_x = params["dec_log_var"]  # (D,)
            else:
                log_var_x = math.log(float(self.gaussian_var))
        return out, log_var_x, (trunk, head)

    def _log_px(self, xp, X_rep, out, log_var_x, scale, ws=None):
        """log p(x|z) per row (M,) and ``scale`` times its gradients w.r.t. the decoder
        outputs: (ll, dout (M, D), dlog_var_x ((M, D) or None))."""
        if self.decoder == "bernoulli":
            ll, dout = ops.bernoulli_loglik(out, X_rep, scale, ws=ws)
            return ll, dout, None
        if self.decoder == "continuous_bernoulli":
            ll, dout = ops.continuous_bernoulli_loglik(out, X_rep, scale, ws=ws)
            return ll, dout, None
        if log_var_x is not None and not isinstance(log_var_x, float) and log_var_x.ndim == 1:
            # per-row gradients are needed (IWAE weights rows differently): (D,) -> (M, D)
            buf = ops.scratch(ws, "vae.log_var_x", tuple(out.shape), out) \
                if type(out) is np.ndarray else None
            if buf is None:
                log_var_x = xp.broadcast_to(log_var_x, tuple(out.shape))
            else:
                buf[...] = log_var_x
                log_var_x = buf
        return ops.gaussian_loglik(X_rep, out, log_var_x, scale, ws=ws)

    # --------------------------------------------------------- forward pass
    def _forward(self, xp, X, eps, params, ws=None, scale=None):
        """All terms of the bounds for eps (R, N, L).

        z_i = mu + exp(log_var/2) eps_i; log p(x|z_i) (R, N); KL (N,);
        log p(z_i) - log q(z_i|x) (R, N).  ``scale``: the factor for the
        likelihood gradient (None: 1, i.e. the gradient of sum log p(x|z)).
        """
        R, N, L = eps.shape
        D = X.shape[1]
        mu, log_var, enc_cache = self._encode(X, params, ws)
        z, std = ops.reparameterize(mu, log_var, eps, ws)  # (R, N, L), (N, L)
        z2 = xp.reshape(z, (R * N, L))
        if R == 1:
            X_rep = X
        elif type(X) is np.ndarray and ws is not None:
            X_rep = ws.empty("vae.X_rep", (R * N, D), X)
            X_rep.reshape(R, N, D)[...] = X
        else:
            X_rep = xp.reshape(xp.broadcast_to(X, (R, N, D)), (R * N, D))
        out, log_var_x, dec_cache = self._decode(xp, z2, params, ws)
        ll, dll_dout, dll_dlog_var_x = self._log_px(xp, X_rep, out, log_var_x,
                                                    1.0 if scale is None else scale, ws)
        return dict(mu=mu, log_var=log_var, std=std, eps=eps, z=z, X_rep=X_rep,
                    log_px=xp.reshape(ll, (R, N)), dll_dout=dll_dout,
                    dll_dlog_var_x=dll_dlog_var_x, enc_cache=enc_cache, dec_cache=dec_cache)

    def _log_pz_minus_log_qz(self, xp, f):
        """log p(z_i) - log q(z_i|x) = -1/2 sum_l [z^2/s^2 + log s^2 - eps^2 - log_var]  (R, N)."""
        s2 = float(self.prior_var)
        z, eps = f["z"], f["eps"]
        return -0.5 * xp.sum(z * z / s2 + math.log(s2) - eps * eps - f["log_var"], axis=2)

    def _kl(self, f):
        kl, _, _ = ops.kl_std_normal(f["mu"], f["log_var"], f["std"], float(self.prior_var))
        return kl

    def _decoder_input_grad(self, xp, f, params, grads, ws, c):
        """d loss/d (decoder input) (R N, width): the decoder's backward from the
        log-likelihood gradients in ``f``, scaled per row by c (R, N) when given
        (IWAE); writes the decoder's parameter gradients into ``grads``."""
        R, N = f["eps"].shape[:2]
        layers = self._layers()
        dout, dlog_var_x = f["dll_dout"], f["dll_dlog_var_x"]
        if c is not None:
            c_col = xp.reshape(c, (R * N, 1))
            if ws is not None and type(dout) is np.ndarray:  # workspace buffers: scale in place
                np.multiply(dout, c_col, out=dout)
                if dlog_var_x is not None:
                    np.multiply(dlog_var_x, c_col, out=dlog_var_x)
            else:
                dout = c_col * dout
                dlog_var_x = None if dlog_var_x is None else c_col * dlog_var_x
        trunk, head = f["dec_cache"]
        if self.decoder == "gaussian" and self.decoder_var == "output":
            dh = layers["out"].backward(params, (dout, dlog_var_x), head, grads, ws)
        else:
            dh = layers["out"].backward(params, dout, head, grads, ws)
            if self.decoder == "gaussian" and self.decoder_var == "learned":
                store_grad(grads, "dec_log_var", xp.sum(dlog_var_x, axis=0))
        return stack_backward(layers["dec"], params, dh, trunk, grads, ws)

    def _backward(self, xp, f, params, grads, ws=None, c=None):
        """Gradients of loss = -mean objective, for fixed eps, into ``grads``; returns
        the KL per row (N,) for the ELBO (computed with its gradient), None for IWAE.

        ELBO (c None): the likelihood gradients already carry -1/(R N);
        dmu = sum_i dz_i + dKL/dmu / N; dlog_var = 1/2 std sum_i dz_i eps_i + dKL/dlog_var / N.
        IWAE (c = -w~/N, (R, N)): dout = c dll/dout; dz gains -c z / s^2 (from log p(z));
        dlog_var gains 1/2 sum_i c_i (from -log q).
        """
        R, N, L = f["eps"].shape
        layers = self._layers()
        dz = xp.reshape(self._decoder_input_grad(xp, f, params, grads, ws, c), (R, N, L))
        if c is not None:
            dz = dz - xp.reshape(c, (R, N, 1)) * f["z"] / float(self.prior_var)
        dmu, dlog_var = ops.reparameterize_backward(dz, f["eps"], f["std"], ws=ws)
        kl = None
        if c is None:
            kl, dmu, dlog_var = ops.kl_std_normal(f["mu"], f["log_var"], f["std"],
                                                 float(self.prior_var), scale=1.0 / N, dmu=dmu,
                                                 dlog_var=dlog_var, ws=ws)
        else:
            dlog_var = dlog_var + 0.5 * xp.reshape(xp.sum(c, axis=0), (N, 1))
        trunk, head = f["enc_cache"]
        dh = layers["q"].backward(params, (dmu, dlog_var), head, grads, ws,
                                  need_dx=bool(layers["enc"]))
        if layers["enc"]:
            stack_backward(layers["enc"], params, dh, trunk, grads, ws, need_dx=False)
        return kl

    # ----------------------------------------------------------------- public
    def _draw_eps(self, rng, R, N, like, ws=None):
        """eps ~ N(0, I) of shape (R, N, L) in like's dtype (into a workspace buffer for
        NumPy: the same draws as :func:`lvm_core.random.normal`)."""
        rng = as_generator(rng)
        shape = (R, N, int(self.n_latent))
        if ws is not None and type(like) is np.ndarray and isinstance(rng, np.random.Generator):
            return rng.standard_normal(dtype=like.dtype, out=ws.empty("vae.eps", shape, like))
        return normal(rng, shape, like=like)

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

    def loss_and_grads(self, X, rng=None, eps=None, params=None, grads_out=None,
                       check_input=True):
        """Mean negative objective over the batch and its gradients.

        X : (N, D).  rng : seed or Generator for eps ~ N(0, I) of shape (R, N, L),
        R = ``n_samples``; or pass ``eps`` (R, N, L) / (N, L) to fix the noise
        (then the loss is a deterministic function of the params, e.g. for
        gradient checks).  ``params`` defaults to ``self.params``.
        ``grads_out``: a dict of buffers shaped like params, written in place and
        returned (a training loop passes the same dict every step).
        ``check_input=False`` skips the data checks that read X (NaN, range):
        for a loop that validated the data once.
        Returns (loss as a 0-d array, grads with the keys, shapes and dtypes of params).
        """
        xp, X = self._prepare(X, validate=check_input)
        return self._prepared_loss_and_grads(xp, X, rng, eps, params, grads_out)

    def _prepared_loss_and_grads(self, xp, X, rng, eps, params, grads_out):
        """:meth:`loss_and_grads` for data already checked by :meth:`_prepare` (the
        rows :meth:`_forward` reads: X, or a CVAE's packed [X | Y])."""
        params = self.params if params is None else params
        N = X.shape[0]
        if getattr(self, "_ws", None) is None:
            self._ws = ops.Workspace()
        ws = self._ws
        if eps is None:
            eps = self._draw_eps(rng, int(self.n_samples), N, X, ws)
        else:
            eps = self._check_eps(xp, eps, N, X)
        R = eps.shape[0]
        grads = {} if grads_out is None else grads_out
        if self.objective == "elbo":
            f = self._forward(xp, X, eps, params, ws, scale=-1.0 / (R * N))
            kl = self._backward(xp, f, params, grads, ws)
            loss = (xp.sum(kl) - xp.sum(f["log_px"]) / float(R)) / float(N)
        else:
            f = self._forward(xp, X, eps, params, ws)
            log_w = f["log_px"] + self._log_pz_minus_log_qz(xp, f)  # (R, N)
            lse = F.logsumexp(log_w, axis=0)  # (N,)
            w_tilde = xp.exp(log_w - lse)  # (R, N), sums to 1 over R
            loss = -xp.mean(lse - math.log(R))
            self._backward(xp, f, params, grads, ws, c=-w_tilde / float(N))
        if grads_out is None:
            return loss, {k: grads[k] for k in params}
        return loss, grads

    def elbo(self, X, rng=None, n_samples=1):
        """Per-example ELBO (N,): 1/R sum_i log p(x|z_i) - KL(q(z|x) || p(z)), R = n_samples."""
        xp, X = self._prepare(X)
        return self._prepared_elbo(xp, X, rng, n_samples)

    def _prepared_elbo(self, xp, X, rng, n_samples):
        """:meth:`elbo` of rows already checked by :meth:`_prepare`."""
        check_positive_int(n_samples, "n_samples")
        eps = self._draw_eps(rng, int(n_samples), X.shape[0], X)
        f = self._forward(xp, X, eps, self.params)
        return xp.sum(f["log_px"], axis=0) / float(n_samples) - self._kl(f)

    def log_marginal(self, X, n_importance=100, rng=None, batch_size=None):
        """Importance-sampled log p(x) (N,) with q(z|x) as the proposal (= the IWAE-k bound).

        log p(x) ~ logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log k,
        z_i ~ q(z|x), k = n_importance.  Rows are processed in chunks of
        ``batch_size`` (default: about 2^14 / k rows) so memory stays O(batch_size k D).
        """
        xp, X = self._prepare(X)
        return self._prepared_log_marginal(xp, X, n_importance, rng, batch_size)

    def _prepared_log_marginal(self, xp, X, n_importance, rng, batch_size):
        """:meth:`log_marginal` of rows already checked by :meth:`_prepare`."""
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
            log_w = f["log_px"] + self._log_pz_minus_log_qz(xp, f)  # (k, n)
            parts.append(F.logsumexp(log_w, axis=0) - math.log(k))
        return xp.concat(parts) if len(parts) > 1 else parts[0]

    def validation_loss(self, X, rng=0):
        """Mean -ELBO over X with one z per example (fixed seed ``rng`` for comparability)."""
        elbo = self.elbo(X, rng=rng, n_samples=1)
        return -item(get_namespace(elbo).mean(elbo))

    def encode(self, X):
        """mu(x), log_var(x) of q(z|x), each (N, L)."""
        xp, X = self._prepare(X)
        mu, log_var, _ = self._encode(X, self.params)
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
        out, _, _ = self._decode(xp, z, self.params)
        return self._output_mean(out)

    def _output_mean(self, out):
        """The mean of p(x|z) from the decoder output: sigmoid(logits), the continuous
        Bernoulli mean, or the Gaussian mean itself."""
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
        out, log_var_x, _ = self._decode(xp, z, self.params)
        return self._draw_x(xp, out, log_var_x, rng, W)

    def _draw_x(self, xp, out, log_var_x, rng, like):
        """One draw x ~ p(x|z) per row of the decoder output ``out`` (see :meth:`sample`)."""
        u = uniform(rng, tuple(out.shape), like=like)
        if self.decoder == "bernoulli":
            return xp.astype(u < F.sigmoid(out), like.dtype)
        if self.decoder == "continuous_bernoulli":
            small = xp.abs(out) < 1e-3
            l_safe = xp.where(small, 1.0, out)
            x = xp.log1p(u * xp.expm1(l_safe)) / l_safe
            return xp.clip(xp.where(small, u, x), min=0.0, max=1.0)
        eps = normal(rng, tuple(out.shape), like=like)
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
            dynamic_binarization=False, callbacks=None):
        """Train with minibatch gradient steps (:func:`lvm_core.train.fit_minibatch`).

        ``dynamic_binarization=True`` resamples Bernoulli targets x_b ~ Bernoulli(x)
        from grey levels each time a batch is drawn; ``callbacks`` as in
        :func:`lvm_core.train.fit_minibatch`.  Returns self; the training record
        is in ``history_``.
        """

        self._validate_hyperparameters()
        X = check_array(X, "X", ndim=2)
        check_magnitude(X, "X")
        width = int(X.shape[1])
        if self.n_features is not None and width != int(self.n_features):
            raise ValueError(
                f"X has {width} features, but this {type(self).__name__} was built with "
                f"n_features={self.n_features}. Pass data with {self.n_features} columns, or "
                "set n_features=None (set_params(n_features=None)) to take the width from "
                "the data."
            )
        self.n_features_in_ = width
        if not continues_fit(self):  # a new fit starts again unless warm_start=True
            self.initialize(like=None if isinstance(X, np.ndarray) else X)
        xp, X = self._prepare(X)
        if validation_data is not None:
            _, validation_data = self._prepare(validation_data, name="validation_data")
        return self._train(X, validation_data, dynamic_binarization, epochs=epochs,
                           batch_size=batch_size, optimizer=optimizer, lr=lr,
                           optimizer_kwargs=optimizer_kwargs, random_state=random_state,
                           progress=progress, checkpoint=checkpoint, resume=resume,
                           early_stopping_patience=early_stopping_patience, callbacks=callbacks)

    def _train(self, data, validation_data, dynamic_binarization, **fit_kwargs):
        """:func:`lvm_core.train.fit_minibatch` on prepared rows (X, or a CVAE's packed
        [X | Y]), with dynamic binarisation of the targets when asked.  Returns self."""
        from ..train import fit_minibatch

        if dynamic_binarization and self.decoder != "bernoulli":
            raise ValueError(
                "dynamic_binarization=True needs decoder='bernoulli'; got "
                f"decoder={self.decoder!r}. "
                "Use decoder='bernoulli' or leave dynamic_binarization=False."
            )
        self.history_ = fit_minibatch(
            self, data, validation_data=validation_data,
            transform_batch=self.binarize if dynamic_binarization else None, **fit_kwargs)
        return self
