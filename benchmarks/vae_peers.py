"""Benchmark peers of lvm_core's VAE: a PyTorch twin of any MLP configuration and a JAX twin.

Both twins take lvm_core's ``params`` dict (``enc_W{i}``, ``enc_b{i}``,
``enc_W_mu``, ..., ``dec_W_out``, ``dec_b_out``; W of shape (d_in, d_out), y =
x W + b) as their initial weights and compute the same bound for the same eps:

    mu, log_var = encoder(x);  z_i = mu + exp(log_var / 2) eps_i       (R, N, L)
    log p(x|z) : Bernoulli  sum_d [x l - softplus(l)]
                 continuous Bernoulli  sum_d [log C(l) + x l - softplus(l)]
                 (Loaiza-Ganem & Cunningham 2019), l = decoder(z)
    ELBO  = 1/R sum_i log p(x|z_i) - KL(q || N(0, I))     (Kingma & Welling 2014)
    IWAE  = logsumexp_i [log p(x|z_i) + log p(z_i) - log q(z_i|x)] - log R
            (Burda et al. 2016), log p(z) - log q(z|x) = -1/2 sum_l (z^2 - eps^2 - log_var)
    loss  = -mean_n bound

The continuous Bernoulli log normaliser log C(l) = log(l / tanh(l/2)) is
written here for torch and JAX: exp/log1p form for |l| >= 1/2, and for |l| <
1/2 its Taylor series in u = l^2, whose coefficients are derived below from
the Bernoulli numbers: (l/2) coth(l/2) = sum_n B_2n l^2n / (2n)!, so
log C = log 2 + log(sum_n B_2n u^n / (2n)!), and the log of a power series
f = 1 + sum a_k u^k is g = sum c_k u^k with k c_k = k a_k - sum_{j<k} j c_j a_{k-j}.

Peers only: nothing in lvm_core imports this module (torch and JAX are not
dependencies of lvm_core).
"""
from __future__ import annotations

import math
import time
from fractions import Fraction
from math import comb, factorial

import numpy as np

LOG_2 = math.log(2.0)
SERIES_CUTOFF = 0.5  # |l| below this: Taylor series of log C


def _bernoulli_numbers(n):
    """B_0..B_n (B_1 = -1/2) from sum_{j=0}^{m} C(m+1, j) B_j = 0."""
    B = [Fraction(1)]
    for m in range(1, n + 1):
        B.append(-sum(comb(m + 1, j) * B[j] for j in range(m)) / (m + 1))
    return B


def log_normalizer_series(n_terms=7):
    """Coefficients c_1..c_n of log C(l) - log 2 = sum_k c_k l^(2k) (exact fractions)."""
    B = _bernoulli_numbers(2 * n_terms)
    a = [Fraction(0)] + [B[2 * k] / factorial(2 * k) for k in range(1, n_terms + 1)]
    c = [Fraction(0)] * (n_terms + 1)
    for k in range(1, n_terms + 1):
        c[k] = a[k] - sum((j * c[j] * a[k - j] for j in range(1, k)), Fraction(0)) / k
    return c[1:]


_CB_COEFS = tuple(float(c) for c in log_normalizer_series())  # 1/12, -7/1440, 31/90720, ...


def _horner(u, coefs):
    out = coefs[-1]
    for c in reversed(coefs[:-1]):
        out = out * u + c
    return out


def layer_names(n_hidden):
    """[(W, b)] of the encoder hidden layers, heads, decoder hidden layers and output."""
    enc = [(f"enc_W{i}", f"enc_b{i}") for i in range(n_hidden)]
    dec = [(f"dec_W{i}", f"dec_b{i}") for i in range(n_hidden)]
    return enc, ("enc_W_mu", "enc_b_mu"), ("enc_W_log_var", "enc_b_log_var"), dec, \
        ("dec_W_out", "dec_b_out")


# ----------------------------------------------------------------------- torch
def torch_cb_log_normalizer(torch, logits):
    """log C(l) = log(l / tanh(l/2)), safe near l = 0 (series) and for large |l|."""
    a = logits.abs()
    small = a < SERIES_CUTOFF
    # each branch sees only inputs where it is finite, so that where's backward never
    # multiplies 0 by an infinite derivative (the series overflows for |l| > ~500)
    a_safe = torch.where(small, torch.ones_like(a), a)
    l_small = torch.where(small, logits, torch.zeros_like(logits))
    big = torch.log(a_safe) + torch.log1p(torch.exp(-a_safe)) - torch.log(-torch.expm1(-a_safe))
    u = l_small * l_small
    series = LOG_2 + u * _horner(u, _CB_COEFS)
    return torch.where(small, series, big)


def make_torch_vae(torch, params, n_hidden, activation, decoder, objective):
    """An nn.Module twin with lvm_core's weights copied in; ``loss(x, eps)``, ``bound(x, eps)``."""
    nn = torch.nn
    act = {"relu": torch.relu, "elu": torch.nn.functional.elu, "tanh": torch.tanh}[activation]
    bce = torch.nn.functional.binary_cross_entropy_with_logits
    enc_names, mu_names, lv_names, dec_names, out_names = layer_names(n_hidden)

    def linear(names):
        W = params[names[0]]
        layer = nn.Linear(W.shape[0], W.shape[1], dtype=torch.from_numpy(W[:0]).dtype)
        with torch.no_grad():
            layer.weight.copy_(torch.from_numpy(np.ascontiguousarray(W.T)))
            layer.bias.copy_(torch.from_numpy(np.array(params[names[1]])))
        return layer

    class TorchVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.ModuleList([linear(n) for n in enc_names])
            self.fc_mu, self.fc_log_var = linear(mu_names), linear(lv_names)
            self.dec = nn.ModuleList([linear(n) for n in dec_names])
            self.fc_out = linear(out_names)

        def encode(self, x):
            h = x
            for layer in self.enc:
                h = act(layer(h))
            return self.fc_mu(h), self.fc_log_var(h)

        def decode_logits(self, z):
            h = z
            for layer in self.dec:
                h = act(layer(h))
            return self.fc_out(h)

        def terms(self, x, eps):
            """log p(x|z_i) (R, N), log p(z_i) - log q(z_i|x) (R, N), KL (N,)."""
            R, N, L = eps.shape
            mu, log_var = self.encode(x)
            z = mu + torch.exp(0.5 * log_var) * eps  # (R, N, L)
            logits = self.decode_logits(z.reshape(R * N, L)).reshape(R, N, -1)
            x_rep = x.expand(R, N, x.shape[1])
            log_px = -bce(logits, x_rep, reduction="none").sum(-1)
            if decoder == "continuous_bernoulli":
                log_px = log_px + torch_cb_log_normalizer(torch, logits).sum(-1)
            log_pz_qz = -0.5 * (z * z - eps * eps - log_var).sum(-1)
            kl = 0.5 * (log_var.exp() + mu * mu - 1.0 - log_var).sum(-1)
            return log_px, log_pz_qz, kl

        def bounds(self, x, eps):
            """(ELBO (N,), IWAE (N,)) for eps (R, N, L)."""
            log_px, log_pz_qz, kl = self.terms(x, eps)
            R = eps.shape[0]
            elbo = log_px.mean(0) - kl
            iwae = torch.logsumexp(log_px + log_pz_qz, 0) - math.log(R)
            return elbo, iwae

        def loss(self, x, eps):
            log_px, log_pz_qz, kl = self.terms(x, eps)
            if objective == "iwae":
                bound = torch.logsumexp(log_px + log_pz_qz, 0) - math.log(eps.shape[0])
            else:
                bound = log_px.mean(0) - kl
            return -bound.mean()

    return TorchVAE()


def torch_grads(torch, model, n_hidden):
    """The model's .grad as a dict with lvm_core's names and layout (W (d_in, d_out))."""
    enc_names, mu_names, lv_names, dec_names, out_names = layer_names(n_hidden)
    layers = list(zip(enc_names, model.enc)) + [(mu_names, model.fc_mu),
                                                (lv_names, model.fc_log_var)] \
        + list(zip(dec_names, model.dec)) + [(out_names, model.fc_out)]
    out = {}
    for (w, b), layer in layers:
        out[w] = layer.weight.grad.detach().numpy().T
        out[b] = layer.bias.grad.detach().numpy()
    return out


def torch_params(model, n_hidden):
    """The model's parameters with lvm_core's names and layout (NumPy copies)."""
    enc_names, mu_names, lv_names, dec_names, out_names = layer_names(n_hidden)
    layers = list(zip(enc_names, model.enc)) + [(mu_names, model.fc_mu),
                                                (lv_names, model.fc_log_var)] \
        + list(zip(dec_names, model.dec)) + [(out_names, model.fc_out)]
    out = {}
    for (w, b), layer in layers:
        out[w] = layer.weight.detach().numpy().T.copy()
        out[b] = layer.bias.detach().numpy().copy()
    return out


def torch_train_epoch(torch, model, opt, X_t, rng, R, L, batch_size=128, dtype=np.float32):
    """One epoch; draws from ``rng`` in fit's order (a permutation, then eps (R, B, L) in
    ``dtype`` per step); returns (seconds, mean training loss)."""
    start = time.perf_counter()
    N = X_t.shape[0]
    perm = torch.from_numpy(rng.permutation(N))
    total = torch.zeros(())
    for s in range(0, N, batch_size):
        xb = X_t[perm[s:s + batch_size]]
        eps = torch.from_numpy(rng.standard_normal((R, xb.shape[0], L), dtype=dtype))
        loss = model.loss(xb, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * xb.shape[0]
    return time.perf_counter() - start, float(total) / N


def torch_eval(torch, model, X, eps, chunk=1000):
    """Mean ELBO and mean IWAE bound over X for the given eps (R, N, L)."""
    elbo, iwae = 0.0, 0.0
    with torch.no_grad():
        for s in range(0, X.shape[0], chunk):
            e, i = model.bounds(torch.from_numpy(X[s:s + chunk]),
                                torch.from_numpy(np.ascontiguousarray(eps[:, s:s + chunk])))
            elbo += float(e.sum())
            iwae += float(i.sum())
    return elbo / X.shape[0], iwae / X.shape[0]


# ------------------------------------------------------------------------- JAX
class JaxTwin:
    """JAX/optax twin: ``jax.jit`` of one step ("step") or of ``lax.scan`` over an epoch ("scan").

    float32, optax.adam(1e-3); the data lives on the device once; each step
    gathers its batch inside the compiled function.  The epoch draws its
    permutation and eps from a NumPy Generator in fit's order (host work,
    timed like ours).  Compilation is done ahead of time (``lower().compile()``)
    by :meth:`compile` and reported separately.
    """

    def __init__(self, params, n_hidden, activation, decoder, objective, R, X, batch_size,
                 mode, lr=1e-3):
        import jax
        import jax.numpy as jnp
        import optax

        self.jax, self.jnp = jax, jnp
        self.mode, self.R, self.B = mode, R, batch_size
        self.N = X.shape[0]
        self.L = params["enc_W_mu"].shape[1]
        self.n_full = self.N // batch_size
        self.tail = self.N - self.n_full * batch_size
        self.X = jax.device_put(X)
        self.params = {k: jnp.asarray(v) for k, v in params.items()}
        self.opt = optax.adam(lr)
        self.opt_state = self.opt.init(self.params)
        self.loss_fn = make_jax_loss(jax, n_hidden, activation, decoder, objective)
        self.bounds_fn = jax.jit(make_jax_bounds(jax, n_hidden, activation, decoder))
        opt = self.opt
        loss_fn = self.loss_fn

        def step(p, o, X_all, idx, eps):
            loss, g = jax.value_and_grad(loss_fn)(p, jnp.take(X_all, idx, axis=0), eps)
            updates, o = opt.update(g, o, p)
            return optax.apply_updates(p, updates), o, loss

        def epoch(p, o, X_all, idx, eps):
            def body(carry, inp):
                p, o, loss = step(carry[0], carry[1], X_all, inp[0], inp[1])
                return (p, o), loss
            (p, o), losses = jax.lax.scan(body, (p, o), (idx, eps))
            return p, o, losses

        self._step = jax.jit(step, donate_argnums=(0, 1))
        self._epoch = jax.jit(epoch, donate_argnums=(0, 1))
        self.compiled = {}
        self.compile_seconds = 0.0

    def compile(self):
        """Compile the functions one epoch calls (ahead of time); returns the seconds spent."""
        jnp, R, L, B = self.jnp, self.R, self.L, self.B
        start = time.perf_counter()
        shapes = [B] + ([self.tail] if self.tail else [])
        for b in shapes:
            if b == B and self.mode == "scan":
                continue
            args = (self.params, self.opt_state, self.X, jnp.zeros(b, jnp.int32),
                    jnp.zeros((R, b, L), jnp.float32))
            self.compiled[b] = self._step.lower(*args).compile()
        if self.mode == "scan" and self.n_full:
            args = (self.params, self.opt_state, self.X,
                    jnp.zeros((self.n_full, B), jnp.int32),
                    jnp.zeros((self.n_full, R, B, L), jnp.float32))
            self.compiled["epoch"] = self._epoch.lower(*args).compile()
        self.compile_seconds = time.perf_counter() - start
        return self.compile_seconds

    def first_step(self, xb, eps):
        """(loss, grads as NumPy) for one batch and eps, without updating."""
        loss, g = self.jax.value_and_grad(self.loss_fn)(self.params, self.jnp.asarray(xb),
                                                         self.jnp.asarray(eps))
        return float(loss), {k: np.asarray(v) for k, v in g.items()}

    def train_epoch(self, rng):
        """One epoch with fit's draws from ``rng``; returns (seconds, mean training loss)."""
        start = time.perf_counter()
        R, L, B, N = self.R, self.L, self.B, self.N
        perm = rng.permutation(N).astype(np.int32)
        losses = []
        if self.mode == "scan" and self.n_full:
            eps = np.empty((self.n_full, R, B, L), np.float32)
            for s in range(self.n_full):
                eps[s] = rng.standard_normal((R, B, L), dtype=np.float32)
            idx = perm[:self.n_full * B].reshape(self.n_full, B)
            self.params, self.opt_state, full = self.compiled["epoch"](
                self.params, self.opt_state, self.X, idx, eps)
            losses.append(full.sum())
        else:
            step = self.compiled.get(B)
            for s in range(self.n_full):
                eps = rng.standard_normal((R, B, L), dtype=np.float32)
                self.params, self.opt_state, loss = step(
                    self.params, self.opt_state, self.X, perm[s * B:(s + 1) * B], eps)
                losses.append(loss)
        if self.tail:
            eps = rng.standard_normal((R, self.tail, L), dtype=np.float32)
            self.params, self.opt_state, loss = self.compiled[self.tail](
                self.params, self.opt_state, self.X, perm[self.n_full * B:], eps)
            tail_loss = loss
        host = np.asarray(self.jnp.stack(losses), np.float64)  # one transfer; waits for the device
        total = float(host.sum()) * B + (float(tail_loss) * self.tail if self.tail else 0.0)
        return time.perf_counter() - start, total / N

    def evaluate(self, X, eps, chunk=1000):
        """Mean ELBO and mean IWAE bound over X for eps (R, N, L)."""
        elbo, iwae = 0.0, 0.0
        for s in range(0, X.shape[0], chunk):
            e, i = self.bounds_fn(self.params, self.jnp.asarray(X[s:s + chunk]),
                                  self.jnp.asarray(eps[:, s:s + chunk]))
            elbo += float(e.sum())
            iwae += float(i.sum())
        return elbo / X.shape[0], iwae / X.shape[0]


def jax_cb_log_normalizer(jnp, logits):
    """log C(l) = log(l / tanh(l/2)) in JAX, as :func:`torch_cb_log_normalizer`."""
    a = jnp.abs(logits)
    small = a < SERIES_CUTOFF
    a_safe = jnp.where(small, 1.0, a)  # finite inputs for each branch (see torch's)
    l_small = jnp.where(small, logits, 0.0)
    big = jnp.log(a_safe) + jnp.log1p(jnp.exp(-a_safe)) - jnp.log(-jnp.expm1(-a_safe))
    u = l_small * l_small
    return jnp.where(small, LOG_2 + u * _horner(u, _CB_COEFS), big)


def _jax_terms(jax, n_hidden, activation, decoder):
    jnp = jax.numpy
    act = {"relu": jax.nn.relu, "elu": jax.nn.elu, "tanh": jnp.tanh}[activation]
    enc_names, mu_names, lv_names, dec_names, out_names = layer_names(n_hidden)

    def terms(p, x, eps):
        R, N, L = eps.shape
        h = x
        for w, b in enc_names:
            h = act(h @ p[w] + p[b])
        mu = h @ p[mu_names[0]] + p[mu_names[1]]
        log_var = h @ p[lv_names[0]] + p[lv_names[1]]
        z = mu + jnp.exp(0.5 * log_var) * eps
        h = z.reshape(R * N, L)
        for w, b in dec_names:
            h = act(h @ p[w] + p[b])
        logits = (h @ p[out_names[0]] + p[out_names[1]]).reshape(R, N, -1)
        ll = x * logits - jax.nn.softplus(logits)
        if decoder == "continuous_bernoulli":
            ll = ll + jax_cb_log_normalizer(jnp, logits)
        log_px = ll.sum(-1)
        log_pz_qz = -0.5 * (z * z - eps * eps - log_var).sum(-1)
        kl = 0.5 * (jnp.exp(log_var) + mu * mu - 1.0 - log_var).sum(-1)
        return log_px, log_pz_qz, kl

    return terms


def make_jax_loss(jax, n_hidden, activation, decoder, objective):
    terms = _jax_terms(jax, n_hidden, activation, decoder)

    def loss(p, x, eps):
        log_px, log_pz_qz, kl = terms(p, x, eps)
        if objective == "iwae":
            bound = jax.nn.logsumexp(log_px + log_pz_qz, axis=0) - math.log(eps.shape[0])
        else:
            bound = log_px.mean(0) - kl
        return -bound.mean()

    return loss


def make_jax_bounds(jax, n_hidden, activation, decoder):
    terms = _jax_terms(jax, n_hidden, activation, decoder)

    def bounds(p, x, eps):
        log_px, log_pz_qz, kl = terms(p, x, eps)
        iwae = jax.nn.logsumexp(log_px + log_pz_qz, axis=0) - math.log(eps.shape[0])
        return log_px.mean(0) - kl, iwae

    return bounds


# ---------------------------------------------------------------- comparisons
def check_cb_log_normalizer(fn, grad_fn):
    """Largest errors of a log C(l) implementation and of its gradient, float32 in, against
    float64 closed forms log(l / tanh(l/2)) and 1/l - 1/sinh(l) on |l| in [1e-3, 1e6]
    (log 2 and 0 at l = 0), including the series/closed-form seam at |l| = 1/2.

    ``fn`` and ``grad_fn`` map a float32 NumPy vector to NumPy vectors.
    Returns (max relative value error, max absolute gradient error).
    """
    a = np.concatenate([np.geomspace(1e-3, 1e6, 400), [0.4999, 0.5, 0.5001, 600.0]])
    l = np.concatenate([-a, [0.0], a]).astype(np.float32)
    l64 = l.astype(np.float64)
    with np.errstate(over="ignore", divide="ignore", invalid="ignore"):
        ref = np.where(l64 == 0, LOG_2, np.log(np.abs(l64) / np.abs(np.tanh(l64 / 2))))
        dref = np.where(l64 == 0, 0.0, 1.0 / l64 - 1.0 / np.sinh(l64))
    v, g = np.asarray(fn(l), np.float64), np.asarray(grad_fn(l), np.float64)
    if not (np.all(np.isfinite(v)) and np.all(np.isfinite(g))):
        return math.inf, math.inf
    return float(np.max(np.abs(v - ref) / np.abs(ref))), float(np.max(np.abs(g - dref)))


def max_rel_diff(ours, peer):
    """max over keys of max|ours - peer| / max|peer| (each gradient scaled by its own size)."""
    worst, where = 0.0, None
    for k, ref in peer.items():
        ref = np.asarray(ref, np.float64)
        scale = float(np.max(np.abs(ref))) or 1.0
        d = float(np.max(np.abs(np.asarray(ours[k], np.float64) - ref))) / scale
        if d > worst:
            worst, where = d, k
    return worst, where
