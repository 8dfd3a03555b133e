"""Conditional variational autoencoder (CVAE) with a learned conditional prior.

References: Sohn, Lee & Yan 2015, "Learning Structured Output Representation
using Deep Conditional Generative Models" (the CVAE, its conditional prior
network and its bounds); Kingma & Welling 2014 (AEVB, reparameterisation,
the Gaussian KL of appendix B); Burda, Grosse & Salakhutdinov 2016 (IWAE);
Loaiza-Ganem & Cunningham 2019 (continuous Bernoulli); course notes seed 002
(the CVAE as AEVB with every density conditioned on y).

Model (N examples, D features, C conditioning columns, L latent, R samples)::

    y      : a one-hot class label (C classes), or any conditioning vector (N, C)
    p(z|y) = N(z; mu_p(y), diag exp(log_var_p(y)))        prior network + GaussianHead
    q(z|x, y) = N(z; mu(x, y), diag exp(log_var(x, y)))   encoder on [x, y]
    p(x|z, y) = Bernoulli(sigmoid(f(z, y)))                decoder on [z, y]
              | ContinuousBernoulli(sigmoid(f(z, y)))
              | N(x; f(z, y), diag exp(log_var_x))         (fixed / learned / output)

Reparameterisation z_r = mu + exp(log_var / 2) eps_r, eps_r ~ N(0, I).

ELBO of log p(x|y) (objective="elbo"), KL between two diagonal Gaussians::

    ELBO(x|y) ~ 1/R sum_r log p(x|z_r, y) - KL(q(z|x, y) || p(z|y))
    KL = 1/2 sum_l [log_var_p - log_var + (exp(log_var) + (mu - mu_p)^2) exp(-log_var_p) - 1]

IWAE bound of log p(x|y) (objective="iwae", k = n_samples)::

    log w_r = log p(x|z_r, y) + log p(z_r|y) - log q(z_r|x, y)
    log p(z|y) - log q(z|x, y) = -1/2 sum_l [(z - mu_p)^2 exp(-log_var_p) + log_var_p
                                             - eps^2 - log_var]
    L_k = logsumexp_r(log w_r) - log k,   grad L_k = sum_r w~_r grad log w_r

Inputs are concatenations: the encoder reads [x, y] (N, D + C), the decoder
[z, y] (R N, L + C); the prior network reads y.  Training data are stored in
that layout, ``XY = [X | Y]`` (:meth:`CVAE.pack`), so a training step feeds
its batch to the encoder without a copy.  With a y that carries no
information (C = 1, y = 1 for every row) the CVAE is a VAE (the y columns
are extra biases; a prior head with zero weights gives p(z) = N(0, I)); the
tests hold the two equal.

Everything is composed of :mod:`lvm_core.nn` layers and :mod:`lvm_core.ops`
primitives (:func:`lvm_core.ops.kl_normal` for the KL), as the VAE it
extends: one code path on every backend; the gradient checks run through it.
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..backend import asarray, device_of, get_namespace, item
from ..nn import Dense, GaussianHead, stack_backward, stack_forward
from ..random import as_generator, normal, uniform
from ..validation import check_array, check_choice, check_is_fitted, check_positive_int
from .base import continues_fit
from .vae import _ACTIVATIONS, VAE

__all__ = ["CVAE"]


class CVAE(VAE):
    """Conditional VAE (Sohn et al. 2015): q(z|x, y), learned p(z|y), p(x|z, y).

    Parameters
    ----------
    n_features : int
        D, the data dimension.
    n_classes : int
        C, the number of classes (one-hot y) or the width of a conditioning vector y.
    n_latent : int
        L.
    hidden : tuple of int
        Encoder widths ((D + C) -> hidden -> 2 heads of size L); the decoder mirrors
        them ((L + C) -> reversed(hidden) -> D).
    prior_hidden : tuple of int
        Widths of the prior network (C -> prior_hidden -> 2 heads of size L).  ``()``
        (default) makes (mu_p, log_var_p) an affine function of y: for one-hot y, a
        learned Gaussian per class.
    activation, decoder, decoder_var, gaussian_var, objective, n_samples, init, dtype,
    random_state
        As in :class:`lvm_core.models.vae.VAE`.
    warm_start : bool
        False (default): every :meth:`fit` starts again from the initialisation;
        True: a fit continues from the current parameters when they fit the
        architecture.

    Attributes
    ----------
    params : dict of arrays
        The VAE's keys (``enc_*`` on [x, y], ``dec_*`` on [z, y]) plus the prior
        network's ``prior_W{i}, prior_b{i}, prior_W_mu, prior_b_mu, prior_W_log_var,
        prior_b_log_var``.
    history_ : History
        Set by :meth:`fit`.

    Methods taking data accept ``(X, y)``: X (N, D) and y (N,) integer labels in
    [0, C) or an (N, C) float array; with ``y=None``, X is the packed (N, D + C)
    array ``[X | Y]`` of :meth:`pack` (the layout :meth:`fit` trains on).
    """

    def __init__(self, n_features, n_classes, n_latent=20, hidden=(400,), prior_hidden=(),
                 activation="relu", decoder="bernoulli", decoder_var="fixed", gaussian_var=1.0,
                 objective="elbo", n_samples=1, init="torch", dtype="float32",
                 random_state=None, warm_start=False):
        self.n_features = n_features
        self.n_classes = n_classes
        self.n_latent = n_latent
        self.hidden = hidden
        self.prior_hidden = prior_hidden
        self.activation = activation
        self.decoder = decoder
        self.decoder_var = decoder_var
        self.gaussian_var = gaussian_var
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
        check_positive_int(self.n_features, "n_features")
        check_positive_int(self.n_classes, "n_classes")
        check_positive_int(self.n_latent, "n_latent")
        for name in ("hidden", "prior_hidden"):
            value = getattr(self, name)
            if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
                raise TypeError(
                    f"{name} must be a tuple of layer widths such as (400,); got {value!r}. "
                    "Use () for no hidden layer."
                )
            for h in value:
                check_positive_int(h, f"{name} (each width)")
        check_choice(self.activation, "activation", _ACTIVATIONS)
        check_choice(self.decoder, "decoder", ("bernoulli", "continuous_bernoulli", "gaussian"))
        check_choice(self.decoder_var, "decoder_var", ("fixed", "learned", "output"))
        check_choice(self.objective, "objective", ("elbo", "iwae"))
        check_choice(self.init, "init", ("torch", "glorot", "he"))
        check_choice(self.dtype, "dtype", ("float32", "float64"))
        check_positive_int(self.n_samples, "n_samples")
        value = self.gaussian_var
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0 \
                or not math.isfinite(value):
            raise ValueError(
                f"gaussian_var must be a positive finite number (a variance); got {value!r}. "
                "Pass e.g. 1.0."
            )

    def _layers(self):
        """Encoder trunk on [x, y], q head, prior trunk on y, prior head, decoder trunk on
        [z, y], decoder output (built once per architecture)."""
        D, C, L = int(self.n_features), int(self.n_classes), int(self.n_latent)
        hidden = tuple(int(h) for h in self.hidden)
        prior_hidden = tuple(int(h) for h in self.prior_hidden)
        key = (D, C, L, hidden, prior_hidden, self.activation, self.decoder, self.decoder_var,
               self.init)
        if getattr(self, "_layer_cache", None) is not None and self._layer_cache[0] == key:
            return self._layer_cache[1]
        enc = [D + C, *hidden]
        dec = [L + C, *reversed(hidden)]
        pri = [C, *prior_hidden]
        act, init = self.activation, self.init
        layers = dict(
            enc=[Dense(enc[i], enc[i + 1], act, prefix="enc_", suffix=str(i), init=init)
                 for i in range(len(enc) - 1)],
            q=GaussianHead(enc[-1], L, prefix="enc_", init=init),
            prior=[Dense(pri[i], pri[i + 1], act, prefix="prior_", suffix=str(i), init=init)
                   for i in range(len(pri) - 1)],
            p=GaussianHead(pri[-1], L, prefix="prior_", init=init),
            dec=[Dense(dec[i], dec[i + 1], act, prefix="dec_", suffix=str(i), init=init)
                 for i in range(len(dec) - 1)],
        )
        if self.decoder == "gaussian" and self.decoder_var == "output":
            layers["out"] = GaussianHead(dec[-1], D, prefix="dec_", mu_name="out",
                                         log_var_name="log_var", init=init)
        else:
            layers["out"] = Dense(dec[-1], D, None, prefix="dec_", suffix="_out", init=init)
        self._layer_cache = (key, layers)
        return layers

    def initialize(self, like=None, random_state=None):
        """(Re)create ``params`` on the device of ``like`` (NumPy when None).

        Weights from :func:`lvm_core.nn.init_linear` with scheme ``init``, drawn in the
        order encoder layers, q head (mu, log_var), prior layers, prior head, decoder
        layers, output; a learned Gaussian decoder log-variance starts at
        log(gaussian_var).
        """
        self._validate_hyperparameters()
        rng = as_generator(self.random_state if random_state is None else random_state)
        layers = self._layers()
        params = {}
        for layer in [*layers["enc"], layers["q"], *layers["prior"], layers["p"],
                      *layers["dec"], layers["out"]]:
            params.update(layer.init(rng, dtype=self.dtype, like=like))
        if self.decoder == "gaussian" and self.decoder_var == "learned":
            params["dec_log_var"] = asarray(np.full(int(self.n_features),
                                                    math.log(self.gaussian_var)),
                                            like=like, dtype=self.dtype)
        self.params = params
        return self

    # ------------------------------------------------------------------ data
    def _one_hot(self, y, n, like, name="y"):
        """Y (n, C) in like's dtype from labels (n,) in [0, C) or an (n, C) float array."""
        C = int(self.n_classes)
        xp = get_namespace(like)
        if not hasattr(y, "shape") or not hasattr(y, "dtype"):
            y = asarray(np.asarray(y), like=like)
        else:
            get_namespace(y, like)  # the same library and device, or TypeError
        if y.ndim == 1:
            if not xp.isdtype(y.dtype, "integral"):
                raise TypeError(
                    f"{name} must be integer class labels (N,) in [0, {C}) or an (N, {C}) "
                    f"float array; got a 1-D array of dtype {y.dtype}. Convert the labels "
                    "with astype(int)."
                )
            if y.shape[0] != n:
                raise ValueError(f"{name} must have one label per row of X ({n}); got "
                                 f"{y.shape[0]}.")
            if n:
                lo, hi = int(item(xp.min(y))), int(item(xp.max(y)))
                if lo < 0 or hi >= C:
                    raise ValueError(
                        f"{name} holds the label {lo if lo < 0 else hi}, but the model has "
                        f"n_classes={C} (labels 0 .. {C - 1}). Build the model with "
                        "n_classes larger than the largest label, or re-map the labels."
                    )
            classes = xp.arange(C, device=device_of(like))
            return xp.astype(xp.reshape(y, (n, 1)) == xp.reshape(classes, (1, C)), like.dtype)
        y = check_array(y, name, ndim=2, n_features=C)
        if y.shape[0] != n:
            raise ValueError(f"{name} must have one row per row of X ({n}); got {y.shape[0]}.")
        return xp.astype(y, like.dtype) if y.dtype != like.dtype else y

    def pack(self, X, y):
        """The training layout [X | Y] (N, D + C) in the model's dtype, Y one-hot for labels."""
        X = check_array(X, "X", ndim=2, n_features=int(self.n_features))
        xp = get_namespace(X)
        dt = getattr(xp, self.dtype) if self.params is None else self.params["enc_W_mu"].dtype
        if X.dtype != dt:
            X = xp.astype(X, dt)
        Y = self._one_hot(y, X.shape[0], X)
        return xp.concat([X, Y], axis=1)

    def _prepare(self, X, y=None, name="X", validate=True):
        """Validated packed XY (N, D + C) in the model's dtype on the params' device."""
        D, C = int(self.n_features), int(self.n_classes)
        if y is not None:
            XY = self.pack(X, y)
        elif validate:
            XY = check_array(X, name, ndim=2)
            if XY.shape[1] != D + C:
                raise ValueError(
                    f"{name} must be the packed (N, D + C) = (N, {D + C}) array [X | Y] when y "
                    f"is not given; got shape {tuple(XY.shape)}. Pass y (labels) as well, or "
                    "build the array with model.pack(X, y)."
                )
        else:
            XY = X
        return self._on_params(XY, name, validate, D)

    # ------------------------------------------------------- the networks
    def _prior(self, Y, params, ws=None):
        """(mu_p, log_var_p) of p(z|y), each (N, L), and the cache."""
        layers = self._layers()
        h, trunk = stack_forward(layers["prior"], params, Y, ws)
        (mu_p, log_var_p), head = layers["p"].forward(params, h, ws)
        return mu_p, log_var_p, (trunk, head)

    def _forward(self, xp, XY, eps, params, ws=None, scale=None):
        """All terms of the bounds for eps (R, N, L): q and prior moments, z (R, N, L),
        log p(x|z_r, y) (R, N) and ``scale`` times its gradient w.r.t. the decoder outputs."""
        R, N, L = eps.shape
        D, C = int(self.n_features), int(self.n_classes)
        fused = type(XY) is np.ndarray and ws is not None
        X, Y = XY[:, :D], XY[:, D:]
        mu, log_var, enc_cache = self._encode(XY, params, ws)
        mu_p, log_var_p, prior_cache = self._prior(Y, params, ws)
        z, std = ops.reparameterize(mu, log_var, eps, ws)  # (R, N, L), (N, L)
        if fused:
            ZY = ws.empty("cvae.zy", (R * N, L + C), XY)  # (R N, L + C)
            ZY3 = ZY.reshape(R, N, L + C)
            ZY3[:, :, :L] = z
            ZY3[:, :, L:] = Y
            X_rep = ws.empty("cvae.X_rep", (R * N, D), XY)  # contiguous for the fused likelihood
            X_rep.reshape(R, N, D)[...] = X
        else:
            ZY = xp.concat([xp.reshape(z, (R * N, L)),
                            xp.reshape(xp.broadcast_to(Y, (R, N, C)), (R * N, C))], axis=1)
            X_rep = X if R == 1 else xp.reshape(xp.broadcast_to(X, (R, N, D)), (R * N, D))
        out, log_var_x, dec_cache = self._decode(xp, ZY, params, ws)
        ll, dll_dout, dll_dlog_var_x = self._log_px(xp, X_rep, out, log_var_x,
                                                    1.0 if scale is None else scale, ws)
        return dict(mu=mu, log_var=log_var, std=std, mu_p=mu_p, log_var_p=log_var_p, eps=eps,
                    z=z, log_px=xp.reshape(ll, (R, N)), dll_dout=dll_dout,
                    dll_dlog_var_x=dll_dlog_var_x, enc_cache=enc_cache,
                    prior_cache=prior_cache, dec_cache=dec_cache)

    def _log_pz_minus_log_qz(self, xp, f):
        """log p(z_r|y) - log q(z_r|x, y)
        = -1/2 sum_l [(z - mu_p)^2 exp(-log_var_p) + log_var_p - eps^2 - log_var]  (R, N)."""
        d = f["z"] - f["mu_p"]
        return -0.5 * xp.sum(d * d * xp.exp(-f["log_var_p"]) + f["log_var_p"]
                             - f["eps"] * f["eps"] - f["log_var"], axis=2)

    def _kl(self, f):
        kl, _, _, _, _ = ops.kl_normal(f["mu"], f["log_var"], f["std"], f["mu_p"],
                                       f["log_var_p"])
        return kl

    def _backward(self, xp, f, params, grads, ws=None, c=None):
        """Gradients of loss = -mean objective for fixed eps into ``grads``; returns the
        KL per row (N,) for the ELBO, None for IWAE.

        ELBO (c None): the likelihood gradients carry -1/(R N); dmu = sum_r dz_r +
        dKL/dmu / N, dlog_var = 1/2 std sum_r dz_r eps_r + dKL/dlog_var / N,
        dmu_p = dKL/dmu_p / N, dlog_var_p = dKL/dlog_var_p / N.
        IWAE (c = -w~/N, (R, N)): dout = c dll/dout; with u = (z - mu_p) exp(-log_var_p),
        dz gains -c u, dmu_p = sum_r c u, dlog_var_p = sum_r c (u (z - mu_p) - 1) / 2,
        dlog_var gains 1/2 sum_r c (from -log q).
        """
        R, N, L = f["eps"].shape
        layers = self._layers()
        dzy = self._decoder_input_grad(xp, f, params, grads, ws, c)  # (R N, L + C)
        dz = xp.reshape(dzy[:, :L], (R, N, L))
        kl = None
        if c is None:
            dmu, dlog_var = ops.reparameterize_backward(dz, f["eps"], f["std"], ws=ws)
            kl, dmu, dlog_var, dmu_p, dlog_var_p = ops.kl_normal(
                f["mu"], f["log_var"], f["std"], f["mu_p"], f["log_var_p"], scale=1.0 / N,
                dmu=dmu, dlog_var=dlog_var, ws=ws)
        else:
            c3 = xp.reshape(c, (R, N, 1))
            d = f["z"] - f["mu_p"]  # (R, N, L)
            u = d * xp.exp(-f["log_var_p"])
            cu = c3 * u
            dz = dz - cu
            dmu, dlog_var = ops.reparameterize_backward(dz, f["eps"], f["std"], ws=ws)
            dlog_var = dlog_var + 0.5 * xp.reshape(xp.sum(c, axis=0), (N, 1))
            dmu_p = xp.sum(cu, axis=0)
            dlog_var_p = 0.5 * xp.sum(cu * d - c3, axis=0)
        trunk, head = f["prior_cache"]
        dh = layers["p"].backward(params, (dmu_p, dlog_var_p), head, grads, ws,
                                  need_dx=bool(layers["prior"]))
        if layers["prior"]:
            stack_backward(layers["prior"], params, dh, trunk, grads, ws, need_dx=False)
        trunk, head = f["enc_cache"]
        dh = layers["q"].backward(params, (dmu, dlog_var), head, grads, ws,
                                  need_dx=bool(layers["enc"]))
        if layers["enc"]:
            stack_backward(layers["enc"], params, dh, trunk, grads, ws, need_dx=False)
        return kl

    # ----------------------------------------------------------------- public
    def loss_and_grads(self, X, rng=None, y=None, eps=None, params=None, grads_out=None,
                       check_input=True):
        """Mean negative objective (ELBO or IWAE bound of log p(x|y)) and its gradients.

        X : (N, D) with ``y`` given, or the packed (N, D + C) [X | Y] (the training
        layout).  rng : seed or Generator for eps ~ N(0, I) (R, N, L), R = n_samples;
        or ``eps`` (R, N, L) / (N, L) fixed.  ``params``, ``grads_out`` and
        ``check_input`` as in :meth:`VAE.loss_and_grads`.
        Returns (loss as a 0-d array, grads with the keys, shapes and dtypes of params).
        """
        xp, XY = self._prepare(X, y, validate=check_input)
        return self._prepared_loss_and_grads(xp, XY, rng, eps, params, grads_out)

    def elbo(self, X, y=None, rng=None, n_samples=1):
        """Per-example ELBO of log p(x|y) (N,): 1/R sum_r log p(x|z_r, y) - KL(q || p(z|y))."""
        xp, XY = self._prepare(X, y)
        return self._prepared_elbo(xp, XY, rng, n_samples)

    def log_marginal(self, X, y=None, n_importance=100, rng=None, batch_size=None):
        """Importance-sampled log p(x|y) (N,) with q(z|x, y) as the proposal (the IWAE-k bound).

        log p(x|y) ~ logsumexp_r [log p(x|z_r, y) + log p(z_r|y) - log q(z_r|x, y)] - log k,
        k = n_importance; rows in chunks of ``batch_size`` (default about 2^14 / k).
        """
        xp, XY = self._prepare(X, y)
        return self._prepared_log_marginal(xp, XY, n_importance, rng, batch_size)

    def validation_loss(self, X, y=None, rng=0):
        """Mean -ELBO with one z per example (fixed seed ``rng``)."""
        elbo = self.elbo(X, y, rng=rng, n_samples=1)
        return -item(get_namespace(elbo).mean(elbo))

    def encode(self, X, y=None):
        """mu(x, y), log_var(x, y) of q(z|x, y), each (N, L)."""
        xp, XY = self._prepare(X, y)
        mu, log_var, _ = self._encode(XY, self.params)
        return mu, log_var

    def prior(self, y, like=None):
        """mu_p(y), log_var_p(y) of p(z|y), each (N, L); y labels (N,) or (N, C)."""
        if self.params is None:
            self.initialize(like=like)
        W = self.params["enc_W_mu"]
        n = int(np.shape(y)[0]) if not hasattr(y, "shape") else int(y.shape[0])
        Y = self._one_hot(y, n, W)
        mu_p, log_var_p, _ = self._prior(Y, self.params)
        return mu_p, log_var_p

    def decode(self, z, y):
        """Mean of p(x|z, y) (N, D) for z (N, L) and y labels (N,) or (N, C)."""
        if self.params is None:
            check_is_fitted(self, ["history_"])
        z = check_array(z, "z", ndim=2, n_features=int(self.n_latent))
        W = self.params["enc_W_mu"]
        xp = get_namespace(z, W)
        if z.dtype != W.dtype:
            z = xp.astype(z, W.dtype)
        Y = self._one_hot(y, z.shape[0], z)
        out, _, _ = self._decode(xp, xp.concat([z, Y], axis=1), self.params)
        return self._output_mean(out)

    def reconstruct(self, X, y=None):
        """decode(mu(x, y), y): the mean of p(x|z, y) at the posterior mean, (N, D)."""
        xp, XY = self._prepare(X, y)
        mu, _, _ = self._encode(XY, self.params)
        return self.decode(mu, XY[:, int(self.n_features):])

    def sample(self, y, rng=None, like=None, mean=False):
        """One draw x ~ p(x|z, y), z ~ p(z|y) per entry of y; (n, D).

        y : labels (n,) in [0, C) or an (n, C) array.  ``mean=True`` returns the mean
        of p(x|z, y) instead of a draw of x (z is still drawn from the prior).
        Bernoulli: x = 1[u < sigmoid(l)]; continuous Bernoulli: inverse CDF
        x = log(1 + u (e^l - 1)) / l; Gaussian: mean + exp(log_var/2) eps.
        """
        if self.params is None:
            self.initialize(like=like)
        rng = as_generator(rng)
        W = self.params["enc_W_mu"]
        xp = get_namespace(W)
        n = int(y.shape[0]) if hasattr(y, "shape") else len(y)
        check_positive_int(n, "len(y)")
        Y = self._one_hot(y, n, W)
        mu_p, log_var_p, _ = self._prior(Y, self.params)
        z = mu_p + xp.exp(0.5 * log_var_p) * normal(rng, (n, int(self.n_latent)), like=W)
        out, log_var_x, _ = self._decode(xp, xp.concat([z, Y], axis=1), self.params)
        if mean:
            return self._output_mean(out)
        return self._draw_x(xp, out, log_var_x, rng, W)

    # ------------------------------------------------------------- training
    def binarize(self, XY_batch, rng):
        """Dynamic binarisation of the x columns of a packed batch: x_b ~ Bernoulli(x)."""
        xp = get_namespace(XY_batch)
        D = int(self.n_features)
        X = XY_batch[:, :D]
        u = uniform(rng, tuple(X.shape), like=XY_batch)
        return xp.concat([xp.astype(u < X, XY_batch.dtype), XY_batch[:, D:]], axis=1)

    def fit(self, X, y, epochs=10, batch_size=128, lr=1e-3, optimizer="adam",
            optimizer_kwargs=None, validation_data=None, random_state=None, progress=True,
            checkpoint=None, resume=False, early_stopping_patience=None,
            dynamic_binarization=False, callbacks=None):
        """Train on (X, y) with :func:`lvm_core.train.fit_minibatch` on the packed [X | Y].

        ``validation_data``: a pair (X_val, y_val).  ``callbacks``: as in
        :func:`lvm_core.train.fit_minibatch`.  Other arguments as in
        :meth:`VAE.fit`.  Returns self; the record is in ``history_``.
        """

        _, XY = self._prepare(X, y)
        if not continues_fit(self):  # a new fit starts again unless warm_start=True
            self.initialize(like=None if isinstance(XY, np.ndarray) else XY)
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                raise TypeError(
                    "validation_data must be a pair (X_val, y_val) for a CVAE; got "
                    f"{type(validation_data).__name__}."
                )
            _, validation_data = self._prepare(validation_data[0], validation_data[1],
                                               name="validation_data")
        return self._train(XY, validation_data, dynamic_binarization, epochs=epochs,
                           batch_size=batch_size, optimizer=optimizer, lr=lr,
                           optimizer_kwargs=optimizer_kwargs, random_state=random_state,
                           progress=progress, checkpoint=checkpoint, resume=resume,
                           early_stopping_patience=early_stopping_patience, callbacks=callbacks)
