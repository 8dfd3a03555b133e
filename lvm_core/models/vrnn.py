"""Variational recurrent neural network (VRNN).

References: Chung, Kastner, Dinh, Goel, Courville & Bengio 2015, "A recurrent
latent variable model for sequential data" (eqs. 5-11); Kingma & Welling 2014
(reparameterisation, AEVB); Cho et al. 2014 (GRU); Hochreiter & Schmidhuber
1997 (LSTM); Werbos 1990 (backpropagation through time); course notes seed
002 (the VRNN as a sequence of VAEs whose prior is conditioned on the past).

Model (N sequences, T steps, D features, L latent, H recurrent units), with
feature extractors phi_x, phi_z (MLPs) and h_0 = 0::

    prior      p(z_t | h_{t-1})      = N(mu_0,t, diag exp(log_var_0,t)),  [mu_0,t, log_var_0,t] = f_prior(h_{t-1})
    encoder    q(z_t | x_t, h_{t-1}) = N(mu_z,t, diag exp(log_var_z,t)),  [mu_z,t, log_var_z,t] = f_enc([phi_x(x_t), h_{t-1}])
    decoder    p(x_t | z_t, h_{t-1}) = Bernoulli(sigmoid(l_t))             emission="bernoulli"
                                     | N(mu_x,t, diag exp(log_var_x,t))    emission="gaussian",
               with l_t (or [mu_x,t, log_var_x,t]) = f_dec([phi_z(z_t), h_{t-1}])
    recurrence h_t = cell([phi_x(x_t), phi_z(z_t)], h_{t-1})                cell = GRU or LSTM

Reparameterised sample (always; eps_t ~ N(0, I) of shape (N, L))::

    z_t = mu_z,t + exp(log_var_z,t / 2) eps_t

Objective (Chung et al. 2015, eq. 11), the per-sequence ELBO with per-step
analytic KL between two diagonal Gaussians, over the first len_n steps of
sequence n (mask m_nt = 1[t < len_n])::

    ELBO_n = sum_t m_nt [ log p(x_t | z_t, h_{t-1}) - KL(q(z_t | x_t, h_{t-1}) || p(z_t | h_{t-1})) ]
    loss   = -1/N sum_n ELBO_n

Log-variance floor (every log-variance: encoder, prior, Gaussian emission):
the network's raw output a becomes

    log_var = m + softplus(a - m),      dlog_var/da = sigmoid(a - m),

with m = ``log_var_min`` (default -10, a standard deviation of 6.7e-3): a
smooth bound log_var > m, equal to a up to exp(-(a - m)) when a >> m, so
exp(-log_var) <= exp(-m) and the loss stays finite (no log(0), no zero
standard deviation).

Gradient (for the fixed eps, by hand): the prior and decoder terms of every
step depend on the sampled path only through h_{t-1} and z_t, so after the
forward recursion they are evaluated for all T N rows at once and give the
local gradients dh_{t-1} and dz_t.  Backpropagation through time then runs
t = T .. 1 with dh_t (from step t + 1) entering the cell's step backward,
whose input gradient splits into dphi_x(x_t) and dphi_z(z_t); through phi_z
and the reparameterisation (dmu_z = dz, dlog_var_z = 1/2 std dz eps plus the
KL's gradients) and the encoder to dh_{t-1}.  Weight gradients of the
per-step layers are summed over steps as one matmul over the stacked T N rows
after the loop.

One code path on every backend: :class:`lvm_core.nn.Dense`,
:class:`lvm_core.nn.GaussianHead`, :class:`lvm_core.nn.GRUCell` /
:class:`lvm_core.nn.LSTMCell` (their single-step forward/backward), and
:mod:`lvm_core.ops` (bias + activation kernels, log-likelihoods,
reparameterisation, :func:`lvm_core.ops.kl_normal`).  Training goes
through :func:`lvm_core.train.fit_minibatch`.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import functional as F
from .. import ops
from ..backend import asarray, device_of, get_namespace, item
from ..nn import (Dense, GaussianHead, GRUCell, LSTMCell, stack_backward, stack_forward,
                  store_grad)
from ..random import as_generator, normal, uniform
from ..validation import check_array, check_choice, check_positive_int
from .base import ParamsMixin, continues_fit

__all__ = ["VRNN", "lengths_to_mask"]

_ACTIVATIONS = ("relu", "tanh", "sigmoid", "softplus", "leaky_relu", "elu", "identity")


def lengths_to_mask(lengths, T, like=None):
    """m (T, N) of 0/1 in ``like``'s dtype (float64 NumPy without it): m_tn = 1[t < len_n]."""
    lengths = np.asarray(lengths)
    if lengths.ndim != 1 or lengths.dtype.kind not in "iu":
        raise ValueError(f"lengths must be a 1-D integer array (one length per sequence); got "
                         f"shape {lengths.shape}, dtype {lengths.dtype}.")
    if lengths.size and (int(lengths.min()) < 1 or int(lengths.max()) > T):
        raise ValueError(f"lengths must lie in 1 .. T = {T}; got values in "
                         f"[{int(lengths.min())}, {int(lengths.max())}]. Pad every sequence to "
                         "the longest one (T steps) and pass its true length.")
    m = (np.arange(T)[:, None] < lengths[None, :]).astype(np.float64)
    if like is None:
        return m
    return asarray(m, like=like, dtype=like.dtype)


def _widths(value, name):
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a tuple of layer widths such as (64,); got {value!r}. "
                        "Use () for no hidden layer.")
    out = tuple(value)
    for w in out:
        check_positive_int(w, f"{name} (each width)")
    return tuple(int(w) for w in out)


class VRNN(ParamsMixin):
    """Variational RNN (Chung et al. 2015) with handwritten BPTT; see the module docstring.

    Parameters
    ----------
    n_features : int
        D, the size of x_t.
    n_latent : int
        L, the size of z_t.
    n_hidden : int
        H, the recurrent state size.
    cell : {"gru", "lstm"}
    phi_x, phi_z : tuple of int
        Hidden widths of the feature extractors (each layer with ``activation``);
        ``()`` feeds x_t (z_t) directly.
    encoder, decoder, prior : tuple of int
        Hidden widths of f_enc, f_dec, f_prior before their output layers.
    activation : str
        Activation of every hidden layer.
    emission : {"bernoulli", "gaussian"}
        p(x_t | z_t, h_{t-1}): Bernoulli with logits (targets in [0, 1]) or a
        diagonal Gaussian with mean and (floored) log-variance outputs.
    log_var_min : float
        m of the log-variance floor log_var = m + softplus(a - m).
    init : {"torch", "glorot", "he"}
        Scheme of the Dense layers (the cell is always U(+-1/sqrt(H)), as PyTorch).
    dtype : {"float32", "float64"}
    random_state : None, int or Generator
        Initial weights (phi_x, phi_z, prior, encoder, decoder, cell, in that order).
    warm_start : bool
        False (default): every :meth:`fit` starts again from the initialisation;
        True: a fit continues from the current parameters when they fit the
        architecture.

    Attributes
    ----------
    params : dict
        ``phix_W{i}, phix_b{i}``, ``phiz_W{i}, phiz_b{i}``, ``prior_W{i}, prior_b{i},
        prior_W_mu, prior_b_mu, prior_W_log_var, prior_b_log_var``, ``enc_W{i}, enc_b{i},
        enc_W_mu, ...``, ``dec_W{i}, dec_b{i}, dec_W_out, dec_b_out`` (and
        ``dec_W_log_var, dec_b_log_var`` for a Gaussian emission), ``rnn_W_x,
        rnn_W_h, rnn_b_x, rnn_b_h``.  The first layers of the encoder and
        decoder take [phi_x(x_t), h_{t-1}] and [phi_z(z_t), h_{t-1}] (rows in that
        order); the cell takes [phi_x(x_t), phi_z(z_t)].
    history_ : History
        Set by :meth:`fit`.
    """

    _estimator_type = "density_estimator"

    def __init__(self, n_features, n_latent=16, n_hidden=128, cell="gru", phi_x=(64,),
                 phi_z=(64,), encoder=(64,), decoder=(64,), prior=(64,), activation="relu",
                 emission="bernoulli", log_var_min=-10.0, init="torch", dtype="float32",
                 random_state=None, warm_start=False):
        self.n_features = n_features
        self.n_latent = n_latent
        self.n_hidden = n_hidden
        self.cell = cell
        self.phi_x = phi_x
        self.phi_z = phi_z
        self.encoder = encoder
        self.decoder = decoder
        self.prior = prior
        self.activation = activation
        self.emission = emission
        self.log_var_min = log_var_min
        self.init = init
        self.dtype = dtype
        self.random_state = random_state
        self.warm_start = warm_start
        self._validate_hyperparameters()
        self.params = None

    # ------------------------------------------------------------------ setup
    def _validate_hyperparameters(self):
        for name in ("n_features", "n_latent", "n_hidden"):
            check_positive_int(getattr(self, name), name)
        for name in ("phi_x", "phi_z", "encoder", "decoder", "prior"):
            _widths(getattr(self, name), name)
        check_choice(self.cell, "cell", ("gru", "lstm"))
        check_choice(self.activation, "activation", _ACTIVATIONS)
        check_choice(self.emission, "emission", ("bernoulli", "gaussian"))
        check_choice(self.init, "init", ("torch", "glorot", "he"))
        check_choice(self.dtype, "dtype", ("float32", "float64"))
        m = self.log_var_min
        if isinstance(m, bool) or not isinstance(m, numbers.Real) or not math.isfinite(m) \
                or not -100.0 <= m <= 10.0:
            raise ValueError(f"log_var_min must be a finite number in [-100, 10] (the floor of "
                             f"every log-variance); got {m!r}. The default is -10.0.")

    def _layers(self):
        key = tuple(repr(getattr(self, k)) for k in (
            "n_features", "n_latent", "n_hidden", "cell", "phi_x", "phi_z", "encoder", "decoder",
            "prior", "activation", "emission", "init"))
        cache = getattr(self, "_layer_cache", None)
        if cache is not None and cache[0] == key:
            return cache[1]
        D, L, H = int(self.n_features), int(self.n_latent), int(self.n_hidden)
        act, init = self.activation, self.init

        def trunk(sizes, prefix):
            return [Dense(sizes[i], sizes[i + 1], act, prefix=prefix, suffix=str(i), init=init)
                    for i in range(len(sizes) - 1)]

        phi_x = [D] + list(_widths(self.phi_x, "phi_x"))
        phi_z = [L] + list(_widths(self.phi_z, "phi_z"))
        Hx, Hz = phi_x[-1], phi_z[-1]
        prior = [H] + list(_widths(self.prior, "prior"))
        enc = [Hx + H] + list(_widths(self.encoder, "encoder"))
        dec = [Hz + H] + list(_widths(self.decoder, "decoder"))
        layers = dict(
            phi_x=trunk(phi_x, "phix_"), phi_z=trunk(phi_z, "phiz_"),
            prior=trunk(prior, "prior_"), prior_head=GaussianHead(prior[-1], L, prefix="prior_",
                                                                  init=init),
            enc=trunk(enc, "enc_"), enc_head=GaussianHead(enc[-1], L, prefix="enc_", init=init),
            dec=trunk(dec, "dec_"),
            dec_head=(GaussianHead(dec[-1], D, prefix="dec_", mu_name="out",
                                   log_var_name="log_var", init=init)
                      if self.emission == "gaussian"
                      else Dense(dec[-1], D, None, prefix="dec_", suffix="_out", init=init)),
            rnn=(GRUCell if self.cell == "gru" else LSTMCell)(Hx + Hz, H, prefix="rnn_"),
            Hx=Hx, Hz=Hz,
        )
        self._layer_cache = (key, layers)
        return layers

    def initialize(self, like=None, random_state=None):
        """(Re)create ``params`` on the device of ``like`` (NumPy when None), drawn in the
        order phi_x, phi_z, prior, encoder, decoder, cell."""
        self._validate_hyperparameters()
        rng = as_generator(self.random_state if random_state is None else random_state)
        layers = self._layers()
        params = {}
        for layer in [*layers["phi_x"], *layers["phi_z"], *layers["prior"], layers["prior_head"],
                      *layers["enc"], layers["enc_head"], *layers["dec"], layers["dec_head"],
                      layers["rnn"]]:
            params.update(layer.init(rng, dtype=self.dtype, like=like))
        self.params = params
        return self

    def _prepare(self, X, name="X", validate=True):
        """X (N, T, D) validated, in the model's dtype, on the params' device."""
        if validate:
            if hasattr(X, "ndim") and X.ndim != 3:
                raise ValueError(f"{name} must have shape (N, T, D) (sequences, steps, features); "
                                 f"got shape {tuple(X.shape)}. A single sequence is X[None], "
                                 "images of R rows are X.reshape(N, R, -1).")
            X = check_array(X, name, ndim=3)
            if X.shape[2] != int(self.n_features):
                raise ValueError(f"{name} must have shape (N, T, D) with D = n_features = "
                                 f"{self.n_features}; got {tuple(X.shape)}. Put the sequences "
                                 "along the first axis and time along the second.")
        if self.params is None:
            self.initialize(like=None if isinstance(X, np.ndarray) else X)
        W = self.params["rnn_W_h"]
        xp = get_namespace(X, W)
        if X.dtype != W.dtype:
            X = xp.astype(X, W.dtype)
        if validate and self.emission == "bernoulli":
            lo, hi = item(xp.min(X)), item(xp.max(X))
            if lo < 0.0 or hi > 1.0:
                raise ValueError(f"{name} must lie in [0, 1] for emission='bernoulli'; got values "
                                 f"in [{lo:g}, {hi:g}]. Scale the data (e.g. pixels / 255) or use "
                                 "emission='gaussian'.")
        return xp, X

    def _mask(self, xp, lengths, T, N, like):
        """(T, N) 0/1 mask and its (T N, 1) reshape in like's dtype, or (None, None)."""
        if lengths is None:
            return None, None
        host = np.asarray(lengths)
        if host.shape != (N,):
            raise ValueError(f"lengths must have shape (N,) = ({N},), one length per sequence "
                             f"(a host array or list); got shape {host.shape}.")
        m = lengths_to_mask(host, T, like=like)  # (T, N)
        return m, xp.reshape(m, (T * N, 1))

    # ------------------------------------------------------------ pieces
    def _floor(self, xp, raw):
        """log_var = m + softplus(raw - m) (rows, L); returns (log_var, s) with s = softplus(raw - m)."""
        m = float(self.log_var_min)
        shift = xp.full((raw.shape[1],), -m, dtype=raw.dtype, device=device_of(raw))
        s = ops.bias_act(raw, shift, "softplus")
        return s + m, s

    @staticmethod
    def _floor_backward(dlog_var, s):
        """draw = dlog_var sigmoid(raw - m), written with s = softplus(raw - m)."""
        draw, _ = ops.bias_act_backward(dlog_var, s, "softplus")
        return draw

    @staticmethod
    def _dense_dx(layer, params, dy, y, ws, out):
        """d loss/d x of one Dense step, da = dy act'(y), dx = da W^T (into ``out`` on NumPy);
        its weight gradient is taken later, over all steps at once."""
        da, _ = ops.bias_act_backward(dy, y, layer.activation,
                                      out=ops.scratch(ws, layer.W_key + ".step_da", dy.shape, dy)
                                      if ws is not None and type(dy) is np.ndarray else None)
        W = params[layer.W_key]
        return ops.matmul(da, get_namespace(da, W).permute_dims(W, (1, 0)), out=out)

    @staticmethod
    def _put(buf, t, value, row):
        """buf[t] = value unless ``value`` was written in place into ``row`` = buf[t]."""
        if value is not row:
            buf[t, ...] = value

    def _forward(self, xp, Xt, eps, params, ws=None):
        """The recursion over t for time-major Xt (T, N, D) and eps (T, N, L); then the prior
        and decoder over all T N rows.  Returns a dict of everything the backward needs.

        Per-step values live in (T, N, .) arrays (workspace buffers on NumPy, written
        in place step by step), so that the backward can take every per-step
        layer's weight gradient as one matmul over the T N rows.
        """
        lay = self._layers()
        T, N, D = Xt.shape
        L, H, Hx, Hz = int(self.n_latent), int(self.n_hidden), lay["Hx"], lay["Hz"]
        numpy = type(Xt) is np.ndarray

        def buf(name, width, rows=T):
            return ops.scratch(ws, "vrnn." + name, (rows, N, width), Xt)

        PX2, c_phix = stack_forward(lay["phi_x"], params, xp.reshape(Xt, (T * N, D)), ws)
        PX = xp.reshape(PX2, (T, N, Hx))  # phi_x(x_t) of every step
        # the cell's input projection [phi_x, phi_z] W_x + b_x: the phi_x rows for all steps
        # in one matmul, the phi_z rows per step
        W_x = params["rnn_W_x"]
        G = W_x.shape[1]
        W_xz = W_x[Hx:, :]  # (Hz, G)
        GXP = ops.matmul(PX2, W_x[:Hx, :], out=ops.scratch(ws, "vrnn.gxp", (T * N, G), PX2)
                         if numpy else None)
        GXP = xp.reshape(ops.bias_act(GXP, params["rnn_b_x"], "identity", out=GXP), (T, N, G))
        enc = [Hx + H] + [layer.d_out for layer in lay["enc"]]
        ENC = [buf(f"enc{i}", w) for i, w in enumerate(enc)]  # layer inputs / outputs
        ENC[0][:, :, :Hx] = PX
        Q = buf("q", 2 * L)  # [mu | raw log_var] of q(z_t | x_t, h_{t-1})
        LVQ, SQ, STD = buf("lvq", L), buf("sq", L), buf("std", L)
        phiz = [L] + [layer.d_out for layer in lay["phi_z"]]
        P = [buf(f"phiz{i}", w) for i, w in enumerate(phiz)]  # P[0] = z, P[-1] = phi_z(z)
        m = float(self.log_var_min)
        shift = xp.full((L,), -m, dtype=Xt.dtype, device=device_of(Xt))
        caches = [None] * (T - 1)
        h = xp.zeros((N, H), dtype=Xt.dtype, device=device_of(Xt))
        state = None
        for t in range(T):
            ENC[0][t, :, Hx:] = h  # h_{t-1}
            for i, layer in enumerate(lay["enc"]):
                row = ENC[i + 1][t, ...] if numpy else None
                y, _ = layer.forward(params, ENC[i][t, ...], out=row)
                self._put(ENC[i + 1], t, y, row)
            row = Q[t, ...] if numpy else None
            (mu, raw), _ = lay["enc_head"].forward(params, ENC[-1][t, ...], ws, out=row)
            self._put(Q, t, xp.concat([mu, raw], axis=1) if row is None else row, row)
            s = ops.bias_act(raw, shift, "softplus")  # log_var = m + softplus(raw - m)
            SQ[t, ...] = s
            LVQ[t, ...] = s + m
            z, std = ops.reparameterize(mu, LVQ[t, ...], eps[t:t + 1, ...], ws)  # (1, N, L)
            P[0][t, ...] = z[0, ...]
            STD[t, ...] = std
            for i, layer in enumerate(lay["phi_z"]):
                row = P[i + 1][t, ...] if numpy else None
                y, _ = layer.forward(params, P[i][t, ...], out=row)
                self._put(P[i + 1], t, y, row)
            if t < T - 1:  # h_T feeds nothing: the last step stops before the cell
                gx = GXP[t, ...] + xp.matmul(P[-1][t, ...], W_xz)  # (N, G)
                state, caches[t] = lay["rnn"].step_forward(params, None, state, gx=gx)
                h = state if self.cell == "gru" else state[0]
        # prior p(z_t | h_{t-1}) and decoder p(x_t | z_t, h_{t-1}) over all T N rows
        Hp2 = xp.reshape(ENC[0][:, :, Hx:], (T * N, H))
        g, c_prior = stack_forward(lay["prior"], params, Hp2, ws)
        (mu_p, raw_p), c_prior_head = lay["prior_head"].forward(params, g, ws)
        log_var_p, s_p = self._floor(xp, raw_p)
        x_dec = xp.reshape(xp.concat([P[-1], ENC[0][:, :, Hx:]], axis=2), (T * N, Hz + H))
        g, c_dec = stack_forward(lay["dec"], params, x_dec, ws)
        out, c_dec_head = lay["dec_head"].forward(params, g, ws)
        return dict(PX2=PX2, c_phix=c_phix, Hp2=Hp2, ENC=ENC, Q=Q, LVQ=LVQ, SQ=SQ, STD=STD,
                    P=P, caches=caches, mu_p=mu_p, log_var_p=log_var_p, s_p=s_p,
                    c_prior=c_prior, c_prior_head=c_prior_head, c_dec=c_dec, out=out,
                    c_dec_head=c_dec_head, MUQ=Q[:, :, :L], Z=P[0])

    def _terms(self, xp, f, X2, ll_scale=1.0, kl_scale=1.0, ws=None):
        """log p(x_t | z_t, h_{t-1}) and KL_t per row (T N,), with their scaled gradients."""
        L = int(self.n_latent)
        if self.emission == "bernoulli":
            ll, dout = ops.bernoulli_loglik(f["out"], X2, ll_scale, ws=ws, name="vrnn.ll")
            dlv_x = s_x = None
        else:
            mu_x, raw_x = f["out"]
            lv_x, s_x = self._floor(xp, raw_x)
            ll, dout, dlv_x = ops.gaussian_loglik(X2, mu_x, lv_x, ll_scale, ws=ws, name="vrnn.ll")
        Q2 = xp.reshape(f["Q"], (-1, 2 * L))
        LVQ2 = xp.reshape(f["LVQ"], (-1, L))
        STD2 = xp.reshape(f["STD"], (-1, L))
        kl, dmu_q, dlv_q, dmu_p, dlv_p = ops.kl_normal(Q2[:, :L], LVQ2, STD2, f["mu_p"],
                                                       f["log_var_p"], kl_scale, ws=ws,
                                                       name="vrnn.kl")
        return dict(ll=ll, kl=kl, dout=dout, dlv_x=dlv_x, s_x=s_x, dmu_q=dmu_q, dlv_q=dlv_q,
                    dmu_p=dmu_p, dlv_p=dlv_p)

    def _backward(self, xp, f, g, eps, params, grads, m2=None, ws=None):
        """Gradients of the loss into ``grads`` given the terms' gradients ``g`` (scaled and,
        with a mask m2 (T N, 1), zero on padded rows)."""
        lay = self._layers()
        T, N, L = eps.shape
        H, Hx, Hz = int(self.n_hidden), lay["Hx"], lay["Hz"]
        numpy = type(f["Q"]) is np.ndarray
        dout, dlv_x, dmu_q, dlv_q, dmu_p, dlv_p = (g[k] for k in ("dout", "dlv_x", "dmu_q",
                                                                  "dlv_q", "dmu_p", "dlv_p"))
        if m2 is not None:
            dout = dout * m2
            dlv_x = None if dlv_x is None else dlv_x * m2
            dmu_q, dlv_q, dmu_p, dlv_p = dmu_q * m2, dlv_q * m2, dmu_p * m2, dlv_p * m2
        # decoder and prior, all rows at once: local gradients of z_t (via phi_z) and h_{t-1}
        if self.emission == "gaussian":
            dy = lay["dec_head"].backward(params, (dout, self._floor_backward(dlv_x, g["s_x"])),
                                          f["c_dec_head"], grads, ws)
        else:
            dy = lay["dec_head"].backward(params, dout, f["c_dec_head"], grads, ws)
        dx_dec = stack_backward(lay["dec"], params, dy, f["c_dec"], grads, ws)  # (T N, Hz + H)
        dy = lay["prior_head"].backward(params, (dmu_p, self._floor_backward(dlv_p, f["s_p"])),
                                        f["c_prior_head"], grads, ws)
        dHp = stack_backward(lay["prior"], params, dy, f["c_prior"], grads, ws)  # (T N, H)
        dHp = xp.reshape(dHp + dx_dec[:, Hz:], (T, N, H))  # d/dh_{t-1} of the step-t terms
        dPZ_dec = xp.reshape(dx_dec[:, :Hz], (T, N, Hz))
        dmu_q = xp.reshape(dmu_q, (T, N, L))
        dlv_q = xp.reshape(dlv_q, (T, N, L))

        def buf(name, width, rows=T):
            return ops.scratch(ws, "vrnn.d" + name, (rows, N, width), f["Q"])

        ENC, P = f["ENC"], f["P"]
        dENC = [buf(f"enc{i}", ENC[i].shape[2]) for i in range(len(ENC))]
        dP = [buf(f"phiz{i}", P[i].shape[2]) for i in range(len(P))]
        dQ = buf("q", 2 * L)
        W_x = params["rnn_W_x"]
        G = W_x.shape[1]
        W_xz_T = xp.permute_dims(W_x[Hx:, :], (1, 0))  # (G, Hz)
        W_head = lay["enc_head"]._stacked(params, ws)[0]  # (H_enc, 2L): [W_mu | W_log_var]
        W_head_T = xp.permute_dims(W_head, (1, 0))
        DAX, DAH = buf("ax", G, T - 1), buf("ah", G, T - 1)
        dh_carry = dc_carry = dh_rnn = None
        for t in range(T - 1, -1, -1):
            dpz = dPZ_dec[t, ...]
            if t < T - 1:  # the cell of step t: its input [phi_x, phi_z] and h_{t-1}
                dh_t = dHp[t + 1, ...] + dh_carry
                dstate = dh_t if self.cell == "gru" else (dh_t, dc_carry)
                dA_x, dA_h, dprev = lay["rnn"].step_backward_gates(params, dstate,
                                                                   f["caches"][t])
                DAX[t, ...] = dA_x
                if self.cell == "gru":
                    DAH[t, ...] = dA_h
                    dh_rnn = dprev
                else:
                    dh_rnn, dc_carry = dprev
                dpz = dpz + xp.matmul(dA_x, W_xz_T)  # the phi_z rows of dx_t = dA_x W_x^T
            dP[-1][t, ...] = dpz
            for i in range(len(lay["phi_z"]) - 1, -1, -1):
                row = dP[i][t, ...] if numpy else None
                dx = self._dense_dx(lay["phi_z"][i], params, dP[i + 1][t, ...], P[i + 1][t, ...],
                                    ws, row)
                self._put(dP[i], t, dx, row)
            dmu, dlv = ops.reparameterize_backward(dP[0][t:t + 1, ...], eps[t:t + 1, ...],
                                                   f["STD"][t, ...], ws=ws)
            dQ[t, :, :L] = dmu + dmu_q[t, ...]
            dQ[t, :, L:] = self._floor_backward(dlv + dlv_q[t, ...], f["SQ"][t, ...])
            n = len(lay["enc"])
            row = dENC[n][t, ...] if numpy else None
            self._put(dENC[n], t, ops.matmul(dQ[t, ...], W_head_T, out=row), row)
            for i in range(n - 1, -1, -1):
                row = dENC[i][t, ...] if numpy else None
                dx = self._dense_dx(lay["enc"][i], params, dENC[i + 1][t, ...],
                                    ENC[i + 1][t, ...], ws, row)
                self._put(dENC[i], t, dx, row)
            dh_carry = dENC[0][t, :, Hx:] if t == T - 1 else dh_rnn + dENC[0][t, :, Hx:]
        # weight gradients of the per-step layers: one matmul over the stacked T N rows
        M = T * N

        def rows(a):
            return xp.reshape(a, (a.shape[0] * N, a.shape[2]))

        for i, layer in enumerate(lay["phi_z"]):
            layer.backward(params, rows(dP[i + 1]), (rows(P[i]), rows(P[i + 1])), grads, ws,
                           need_dx=False)
        dQ2 = rows(dQ)
        lay["enc_head"].backward(params, (dQ2[:, :L], dQ2[:, L:]), (rows(ENC[-1]), W_head),
                                 grads, ws, need_dx=False)
        for i, layer in enumerate(lay["enc"]):
            layer.backward(params, rows(dENC[i + 1]), (rows(ENC[i]), rows(ENC[i + 1])), grads,
                           ws, need_dx=False)
        dPX2 = xp.reshape(dENC[0][:, :, :Hx], (M, Hx))  # the encoder's part
        if T == 1:  # the cell never ran: its gradient is zero
            for k in lay["rnn"].param_names:
                store_grad(grads, k, xp.zeros_like(params[k]))
        else:  # the cell's weights over the stacked (T - 1) N rows; the phi_x rows of dx_t
            M1 = (T - 1) * N
            dA_x = rows(DAX)
            dA_h = dA_x if self.cell == "lstm" else rows(DAH)
            X_rnn = xp.concat([f["PX2"][:M1, :], rows(P[-1])[:M1, :]], axis=1)  # (M1, Hx + Hz)
            lay["rnn"].param_grads(grads, X_rnn, f["Hp2"][:M1, :], dA_x, dA_h)
            dpx_rnn = xp.matmul(dA_x, xp.permute_dims(W_x[:Hx, :], (1, 0)))  # (M1, Hx)
            dPX2 = xp.concat([dPX2[:M1, :] + dpx_rnn, dPX2[M1:, :]], axis=0)
        if lay["phi_x"]:
            stack_backward(lay["phi_x"], params, dPX2, f["c_phix"], grads, ws, need_dx=False)

    # ----------------------------------------------------------------- public
    def _time_major(self, xp, X):
        Xt = xp.permute_dims(X, (1, 0, 2))  # (T, N, D)
        if type(Xt) is np.ndarray:
            return np.ascontiguousarray(Xt)
        return Xt

    def _check_eps(self, xp, eps, T, N, like):
        eps = check_array(eps, "eps", ndim=3)
        if tuple(eps.shape) != (T, N, int(self.n_latent)):
            raise ValueError(f"eps must have shape (T, N, L) = ({T}, {N}, {self.n_latent}) "
                             f"(time first); got {tuple(eps.shape)}. Draw it as "
                             "normal(rng, (T, N, L)).")
        return xp.astype(eps, like.dtype) if eps.dtype != like.dtype else eps

    def _ws(self):
        if getattr(self, "_workspace", None) is None:
            self._workspace = ops.Workspace()
        return self._workspace

    def loss_and_grads(self, X, rng=None, eps=None, lengths=None, params=None, grads_out=None,
                       check_input=True):
        """Mean negative ELBO per sequence, -1/N sum_n ELBO_n, and its gradients.

        X : (N, T, D), sequences along the first axis, padded to T steps.
        rng : seed or Generator for eps ~ N(0, I) of shape (T, N, L) (time first);
        or pass ``eps`` (T, N, L) to fix the noise.  ``lengths`` (N,): the true
        length of each sequence (None: all T); padded steps contribute nothing.
        ``grads_out``: buffers shaped like params, written in place and returned.
        Returns (loss as a 0-d array, grads keyed like params).
        """
        xp, X = self._prepare(X, validate=check_input)
        N, T, _ = X.shape
        _, m2 = self._mask(xp, lengths, T, N, X)
        return self._loss_and_grads(xp, X, rng, eps, m2, params, grads_out)

    def _loss_and_grads(self, xp, X, rng, eps, m2, params, grads_out):
        """loss_and_grads for prepared X (N, T, D) and a mask m2 (T N, 1) on X's device (or
        None)."""
        params = self.params if params is None else params
        N, T, _ = X.shape
        ws = self._ws()
        Xt = self._time_major(xp, X)
        if eps is None:
            eps = normal(as_generator(rng), (T, N, int(self.n_latent)), like=X)
        else:
            eps = self._check_eps(xp, eps, T, N, X)
        f = self._forward(xp, Xt, eps, params, ws)
        X2 = xp.reshape(Xt, (T * N, int(self.n_features)))
        g = self._terms(xp, f, X2, ll_scale=-1.0 / N, kl_scale=1.0 / N, ws=ws)
        per_row = g["kl"] - g["ll"]  # (T N,)
        if m2 is not None:
            per_row = xp.where(m2[:, 0] > 0, per_row, xp.zeros_like(per_row))
        loss = xp.sum(per_row) / float(N)
        grads = {} if grads_out is None else grads_out
        self._backward(xp, f, g, eps, params, grads, m2, ws)
        if grads_out is None:
            return loss, {k: grads[k] for k in params}
        return loss, grads

    def elbo(self, X, rng=None, lengths=None, eps=None, batch_size=1000):
        """Per-sequence ELBO (N,) with one z path per sequence (eps drawn from ``rng``, time
        first, batch by batch; or the given eps (T, N, L))."""
        xp, X = self._prepare(X)
        N, T, _ = X.shape
        rng = as_generator(rng)
        parts = []
        for start in range(0, N, int(batch_size)):
            stop = min(start + int(batch_size), N)
            Xb = X[start:stop, ...]
            Xt = self._time_major(xp, Xb)
            n = stop - start
            e = normal(rng, (T, n, int(self.n_latent)), like=X) if eps is None else \
                self._check_eps(xp, eps, T, N, X)[:, start:stop, :]
            f = self._forward(xp, Xt, e, self.params)
            g = self._terms(xp, f, xp.reshape(Xt, (T * n, int(self.n_features))))
            per = xp.reshape(g["ll"] - g["kl"], (T, n))
            if lengths is not None:
                lb = np.asarray(lengths)[start:stop]
                m, _ = self._mask(xp, lb, T, n, X)
                per = xp.where(m > 0, per, xp.zeros_like(per))
            parts.append(xp.sum(per, axis=0))
        return xp.concat(parts) if len(parts) > 1 else parts[0]

    def log_marginal(self, X, n_importance=100, rng=None, lengths=None, batch_size=None):
        """Importance-sampled log p(x_1..x_T) (N,) with q as the proposal over whole paths
        (the IWAE-k bound of Burda et al. 2016, k = ``n_importance``)::

            log w_i = sum_t m_t [log p(x_t | z_t, h_{t-1}) + log p(z_t | h_{t-1}) - log q(z_t | x_t, h_{t-1})]
            log p(x) >= logsumexp_i log w_i - log k,

        each path i run through the recursion with its own eps (T, L), and
        log p(z_t | .) - log q(z_t | .) = -1/2 sum_l [(z - mu_0)^2 exp(-log_var_0)
        + log_var_0 - eps^2 - log_var_z].  Rows in chunks of ``batch_size``
        (default about 4096 / k) sequences; eps (T, k, n, L) per chunk.
        """
        xp, X = self._prepare(X)
        k = check_positive_int(n_importance, "n_importance")
        N, T, D = X.shape
        L = int(self.n_latent)
        batch_size = max(1, 4096 // k) if batch_size is None else \
            check_positive_int(batch_size, "batch_size")
        rng = as_generator(rng)
        parts = []
        for start in range(0, N, batch_size):
            stop = min(start + batch_size, N)
            n = stop - start
            Xt = self._time_major(xp, X[start:stop, ...])  # (T, n, D)
            Xk = xp.concat([Xt] * k, axis=1)  # (T, k n, D): row i n + j is sequence j
            eps = xp.reshape(normal(rng, (T, k, n, L), like=X), (T, k * n, L))
            f = self._forward(xp, Xk, eps, self.params)
            g = self._terms(xp, f, xp.reshape(Xk, (T * k * n, D)))
            z = xp.reshape(f["Z"], (-1, L))
            e = xp.reshape(eps, (-1, L))
            d = z - f["mu_p"]
            log_pz_qz = -0.5 * xp.sum(d * d * xp.exp(-f["log_var_p"]) + f["log_var_p"] - e * e
                                      - xp.reshape(f["LVQ"], (-1, L)), axis=1)
            log_w = xp.reshape(g["ll"] + log_pz_qz, (T, k, n))
            if lengths is not None:
                m, _ = self._mask(xp, np.asarray(lengths)[start:stop], T, n, X)
                log_w = xp.where(m[:, None, :] > 0, log_w, xp.zeros_like(log_w))
            parts.append(F.logsumexp(xp.sum(log_w, axis=0), axis=0) - math.log(k))  # (n,)
        return xp.concat(parts) if len(parts) > 1 else parts[0]

    def validation_loss(self, X, rng=0):
        """Mean negative ELBO per sequence over X (one z path each, fixed seed ``rng``)."""
        e = self.elbo(X, rng=rng)
        return -item(get_namespace(e).mean(e))

    def sample(self, n, T, rng=None, mean=True):
        """n sequences of T steps from the generative model, (n, T, D).

        z_t ~ p(z_t | h_{t-1}); x_t from p(x_t | z_t, h_{t-1}): its mean (``mean=True``:
        sigmoid(l_t) or mu_x) or a draw; the returned x_t is what the recurrence is fed.
        """
        check_positive_int(n, "n")
        check_positive_int(T, "T")
        if self.params is None:
            self.initialize()
        rng = as_generator(rng)
        lay = self._layers()
        params = self.params
        W = params["rnn_W_h"]
        xp = get_namespace(W)
        H, L = int(self.n_hidden), int(self.n_latent)
        h = xp.zeros((int(n), H), dtype=W.dtype, device=device_of(W))
        state = None
        xs = []
        for _ in range(int(T)):
            g, _ = stack_forward(lay["prior"], params, h)
            (mu_p, raw_p), _ = lay["prior_head"].forward(params, g)
            lv_p, _ = self._floor(xp, raw_p)
            z = mu_p + xp.exp(0.5 * lv_p) * normal(rng, (int(n), L), like=W)
            pz, _ = stack_forward(lay["phi_z"], params, z)
            g, _ = stack_forward(lay["dec"], params, xp.concat([pz, h], axis=1))
            out, _ = lay["dec_head"].forward(params, g)
            if self.emission == "bernoulli":
                p = F.sigmoid(out)
                x = p if mean else xp.astype(uniform(rng, tuple(p.shape), like=W) < p, W.dtype)
            else:
                mu_x, raw_x = out
                lv_x, _ = self._floor(xp, raw_x)
                x = mu_x if mean else mu_x + xp.exp(0.5 * lv_x) * normal(rng, tuple(mu_x.shape),
                                                                         like=W)
            xs.append(x)
            px, _ = stack_forward(lay["phi_x"], params, x)
            state, _ = lay["rnn"].step_forward(params, xp.concat([px, pz], axis=1), state)
            h = state if self.cell == "gru" else state[0]
        return xp.stack(xs, axis=1)

    # -------------------------------------------------------------- training
    def fit(self, X, lengths=None, epochs=10, batch_size=128, lr=1e-3, optimizer="adam",
            optimizer_kwargs=None, validation_data=None, random_state=None, progress=False,
            clip_norm=None, callbacks=None, **fit_kwargs):
        """Train with :func:`lvm_core.train.fit_minibatch` (one optimizer step per batch of
        sequences, eps (T, B, L) drawn per step after the epoch's shuffle).

        ``lengths`` (N,): true lengths of padded sequences (None: all of length T);
        ``validation_data`` is scored over all its T steps.  Returns self; the
        record is in ``history_``.
        """
        from ..train import fit_minibatch

        xp, X = self._prepare(X)
        if validation_data is not None:
            _, validation_data = self._prepare(validation_data, name="validation_data")
        if not continues_fit(self):  # a new fit starts again unless warm_start=True
            self.initialize(like=None if isinstance(X, np.ndarray) else X)
        target = self
        if lengths is not None:
            N, T, _ = X.shape
            if np.asarray(lengths).shape != (N,):
                raise ValueError(f"lengths must have shape (N,) = ({N},), one entry per "
                                 f"sequence; got shape {np.asarray(lengths).shape}.")
            m = lengths_to_mask(np.asarray(lengths), T, like=X)  # (T, N)
            # the loop slices rows of one array: carry the mask as an extra feature
            X = xp.concat([X, xp.permute_dims(m, (1, 0))[:, :, None]], axis=2)  # (N, T, D + 1)
            target = _MaskedRows(self)
        self.history_ = fit_minibatch(
            target, X, epochs=epochs, batch_size=batch_size, optimizer=optimizer, lr=lr,
            optimizer_kwargs=optimizer_kwargs, validation_data=validation_data,
            random_state=random_state, progress=progress, clip_norm=clip_norm,
            callbacks=callbacks, **fit_kwargs)
        return self


class _MaskedRows:
    """The VRNN seen by the training loop when sequences have lengths: rows of X carry
    their 0/1 step mask as a last feature, (N, T, D + 1), split off at each step."""

    def __init__(self, model):
        self.model = model

    @property
    def params(self):
        return self.model.params

    def loss_and_grads(self, X, rng=None, grads_out=None, check_input=True):
        """The model's loss and gradients for the packed rows X (N, T, D + 1); the mask
        stays on X's device (no host transfer)."""
        xp = get_namespace(X)
        N, T, D1 = X.shape
        D = D1 - 1
        m2 = xp.reshape(xp.permute_dims(X[:, :, D], (1, 0)), (T * N, 1))  # (T N, 1)
        X = X[:, :, :D]
        if type(X) is np.ndarray:
            X = np.ascontiguousarray(X)
        return self.model._loss_and_grads(xp, X, rng, None, m2, None, grads_out)

    def validation_loss(self, X):
        return self.model.validation_loss(X)
