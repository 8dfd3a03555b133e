"""Per-datapoint stochastic variational inference (SVI) for a trained VAE decoder,
and the inference-gap decomposition of Cremer, Li & Duvenaud 2018.

References: Hoffman, Blei, Wang & Paisley 2013, "Stochastic Variational
Inference" (local variational parameters); Kingma & Welling 2014 (the
reparameterised ELBO and the Gaussian KL); Kingma & Ba 2015 (Adam); Burda,
Grosse & Salakhutdinov 2016 (importance-weighted estimate of log p(x));
Cremer, Li & Duvenaud 2018, "Inference Suboptimality in Variational
Autoencoders" (approximation and amortisation gaps); course notes seed 001
(per-datapoint inference before amortisation).

Before amortisation every data point x_i has its own variational parameters
lambda_i = (mu_i, log_var_i), q_i(z) = N(z; mu_i, diag exp(log_var_i)), and the
decoder p(x|z) of a trained VAE stays fixed.  With eps_ir ~ N(0, I),

    z_ir = mu_i + exp(log_var_i / 2) eps_ir                           r = 1..R
    ELBO_i(lambda_i) ~ 1/R sum_r log p(x_i | z_ir) - KL(q_i || N(0, s^2 I))
    loss = -sum_i ELBO_i
    dloss/dmu_i      = -1/R sum_r g_ir + mu_i / s^2
    dloss/dlog_var_i = -1/2 exp(log_var_i / 2) 1/R sum_r g_ir eps_ir
                       + 1/2 (exp(log_var_i) / s^2 - 1),
    g_ir = d log p(x_i | z) / dz at z_ir (backpropagation through the decoder).

The points are independent (loss is a sum), so one Adam run on the stacked
(N, L) arrays optimises every point at once; it starts from the amortised
encoder's q(z|x_i) and lowers its step size geometrically from ``lr`` to
``lr_final`` (so the stochastic iterates settle at the optimum).

Gap decomposition (Cremer et al. 2018, sec. 3), q* the SVI optimum in the
factorised Gaussian family and q_phi the amortised encoder:

    log p(x) - ELBO[q_phi] = (log p(x) - ELBO[q*]) + (ELBO[q*] - ELBO[q_phi])
                             approximation gap       amortisation gap

log p(x) is estimated by the VAE's importance-weighted estimate with k
samples from q_phi (:meth:`VAE.log_marginal`, k = ``n_importance``), the
ELBOs with the same ``n_eval`` eps per point for both q (common random numbers).

The loss and its gradients run through the VAE's own decoder layers and the
:mod:`lvm_core.ops` primitives (reparameterisation, KL, fused likelihoods),
the same code path the VAE trains with; the gradient checks run through
:func:`svi_loss_and_grads`, which :func:`fit_local` calls at every step.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .. import ops
from ..backend import get_namespace, item, to_numpy
from ..nn import adam, stack_backward, store_grad
from ..random import as_generator
from ..validation import check_array, check_positive_int
from .vae import VAE

__all__ = ["svi_loss_and_grads", "fit_local", "local_elbo", "inference_gaps", "SVIResult"]


def _check_model(model):
    if not isinstance(model, VAE) or hasattr(model, "n_classes"):
        raise TypeError(
            f"model must be a trained lvm_core VAE (models.vae.VAE); got {type(model).__name__}. "
            "Per-datapoint SVI here optimises q(z) for the decoder p(x|z) of a VAE."
        )
    if model.params is None:
        raise ValueError("model has no parameters yet; fit it (or call initialize()) first.")


def _check_local(model, X, mu, log_var):
    N, L = X.shape[0], int(model.n_latent)
    xp = get_namespace(X)
    out = []
    for name, a in (("mu", mu), ("log_var", log_var)):
        a = check_array(a, name, ndim=2)
        if tuple(a.shape) != (N, L):
            raise ValueError(
                f"{name} must have shape (N, L) = ({N}, {L}), one row per data point; got "
                f"{tuple(a.shape)}. Start from model.encode(X)."
            )
        out.append(xp.astype(a, X.dtype) if a.dtype != X.dtype else a)
    return out


def svi_loss_and_grads(model, X, params, eps, ws=None, grads_out=None):
    """loss = -sum_i ELBO_i(mu_i, log_var_i) for fixed eps, its gradients, and ELBO_i.

    X (N, D) (validated, in the model's dtype); params {"mu": (N, L), "log_var": (N, L)};
    eps (R, N, L).  The decoder's parameters are fixed (their gradients are computed
    into scratch buffers by the layers and dropped).  ``grads_out``: a dict of (N, L)
    buffers "mu" and "log_var" written in place (the decoder's scratch gradients are kept
    in it under "_decoder", so a loop that passes the same dict allocates them once).
    Returns (loss as a 0-d array, grads {"mu", "log_var"},
    elbo (N,) the per-point Monte Carlo ELBO with the analytic KL).
    """
    xp = get_namespace(X, eps)
    mu, log_var = params["mu"], params["log_var"]
    R, N, L = eps.shape
    D = X.shape[1]
    z, std = ops.reparameterize(mu, log_var, eps, ws, name="svi")  # (R, N, L), (N, L)
    if R == 1:
        X_rep = X
    elif type(X) is np.ndarray and ws is not None:
        X_rep = ws.empty("svi.X_rep", (R * N, D), X)
        X_rep.reshape(R, N, D)[...] = X
    else:
        X_rep = xp.reshape(xp.broadcast_to(X, (R, N, D)), (R * N, D))
    out, log_var_x, (trunk, head) = model._decode(xp, xp.reshape(z, (R * N, L)), model.params,
                                                  ws)
    ll, dout, dlog_var_x = model._log_px(xp, X_rep, out, log_var_x, -1.0 / R, ws)
    layers = model._layers()
    if grads_out is None:
        grads_out = {}
    dec = grads_out.setdefault("_decoder", {})  # the decoder's gradients: scratch
    if model.decoder == "gaussian" and model.decoder_var == "output":
        dh = layers["out"].backward(model.params, (dout, dlog_var_x), head, dec, ws)
    else:
        dh = layers["out"].backward(model.params, dout, head, dec, ws)
    dz = stack_backward(layers["dec"], model.params, dh, trunk, dec, ws)
    dmu, dlog_var = ops.reparameterize_backward(xp.reshape(dz, (R, N, L)), eps, std, ws=ws,
                                                name="svi")
    kl, dmu, dlog_var = ops.kl_std_normal(mu, log_var, std, float(model.prior_var), scale=1.0,
                                          dmu=dmu, dlog_var=dlog_var, ws=ws, name="svi.kl")
    elbo = xp.sum(xp.reshape(ll, (R, N)), axis=0) / float(R) - kl
    store_grad(grads_out, "mu", dmu)
    store_grad(grads_out, "log_var", dlog_var)
    return -xp.sum(elbo), {"mu": grads_out["mu"], "log_var": grads_out["log_var"]}, elbo


class SVIResult:
    """What :func:`fit_local` returns.

    Attributes
    ----------
    mu, log_var : arrays (N, L)
        The optimised local variational parameters.
    loss_trace : list of float
        -mean_i ELBO_i (the Monte Carlo estimate of the step) after each step.
    n_steps, n_samples : int
    """

    def __init__(self, mu, log_var, loss_trace, n_steps, n_samples):
        self.mu = mu
        self.log_var = log_var
        self.loss_trace = loss_trace
        self.n_steps = n_steps
        self.n_samples = n_samples

    def __repr__(self):
        return (f"SVIResult(N={self.mu.shape[0]}, L={self.mu.shape[1]}, n_steps={self.n_steps}, "
                f"final loss {self.loss_trace[-1] if self.loss_trace else float('nan'):.4f})")


def _check_rate(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not value > 0 \
            or not math.isfinite(value):
        raise ValueError(f"{name} must be a positive finite number; got {value!r}.")
    return float(value)


def fit_local(model, X, mu=None, log_var=None, n_steps=500, lr=0.05, lr_final=5e-4,
              n_samples=1, random_state=None):
    """Optimise each point's own q_i = N(mu_i, diag exp(log_var_i)) for the fixed decoder.

    Adam (Kingma & Ba 2015, :func:`lvm_core.nn.adam`) on loss = -sum_i ELBO_i with
    ``n_samples`` fresh eps per point and step; step size lr_t = lr (lr_final /
    lr)^(t / (n_steps - 1)).  Starts from ``mu``/``log_var`` (default: the amortised
    encoder's output, model.encode(X)).  Returns an :class:`SVIResult`.
    """
    _check_model(model)
    xp, X = model._prepare(X)
    check_positive_int(n_steps, "n_steps")
    check_positive_int(n_samples, "n_samples")
    lr, lr_final = _check_rate(lr, "lr"), _check_rate(lr_final, "lr_final")
    if mu is None or log_var is None:
        mu0, lv0, _ = model._encode(X, model.params)
        mu = mu0 if mu is None else mu
        log_var = lv0 if log_var is None else log_var
    mu, log_var = _check_local(model, X, mu, log_var)
    params = {"mu": xp.asarray(mu, copy=True), "log_var": xp.asarray(log_var, copy=True)}
    rng = as_generator(random_state)
    ws = ops.Workspace()
    grads_out = {"mu": xp.zeros_like(params["mu"]), "log_var": xp.zeros_like(params["mu"])}
    state, losses = None, []
    N, R = X.shape[0], int(n_samples)
    T = int(n_steps)
    for t in range(T):
        eps = model._draw_eps(rng, R, N, X, ws)
        loss, grads, _ = svi_loss_and_grads(model, X, params, eps, ws, grads_out)
        rate = lr * (lr_final / lr) ** (t / max(T - 1, 1))
        new, state = adam(params, grads, state, lr=rate, inplace=True)
        if new is not params:
            params.update(new)
        losses.append(loss)
    trace = [item(v) / N for v in losses]
    if not all(math.isfinite(v) for v in trace):
        bad = next(i for i, v in enumerate(trace) if not math.isfinite(v))
        raise FloatingPointError(
            f"per-datapoint SVI: the loss became {trace[bad]} at step {bad + 1}; lower lr "
            "(or check the decoder for non-finite outputs)."
        )
    return SVIResult(params["mu"], params["log_var"], trace, T, R)


def local_elbo(model, X, mu, log_var, n_samples=100, rng=None, batch_size=None):
    """ELBO_i for the given q_i = N(mu_i, diag exp(log_var_i)) (N,): the Monte Carlo
    mean of log p(x_i|z) over ``n_samples`` draws minus the analytic KL to the prior.

    Rows in chunks of ``batch_size`` (default about 2^14 / n_samples); the eps of a
    chunk are drawn after those of the previous chunk, so the same ``rng`` seed gives
    the same eps for two calls on the same rows (common random numbers).
    """
    _check_model(model)
    xp, X = model._prepare(X)
    check_positive_int(n_samples, "n_samples")
    mu, log_var = _check_local(model, X, mu, log_var)
    R = int(n_samples)
    batch_size = max(1, 16384 // R) if batch_size is None else check_positive_int(
        batch_size, "batch_size")
    rng = as_generator(rng)
    ws = ops.Workspace()
    parts = []
    for start in range(0, X.shape[0], batch_size):
        stop = min(start + batch_size, X.shape[0])
        eps = model._draw_eps(rng, R, stop - start, X)
        _, _, elbo = svi_loss_and_grads(model, X[start:stop, :], {
            "mu": mu[start:stop, :], "log_var": log_var[start:stop, :]}, eps, ws)
        parts.append(xp.asarray(elbo, copy=True))
    return xp.concat(parts) if len(parts) > 1 else parts[0]


def inference_gaps(model, X, n_steps=500, lr=0.05, lr_final=5e-4, n_samples=1, n_eval=100,
                   n_importance=1000, random_state=None):
    """The inference-gap decomposition of Cremer et al. 2018 for the rows of X.

    Runs :func:`fit_local` from the amortised q, then with one generator: ELBO of the
    amortised q and of the SVI q with the same ``n_eval`` eps per point, and log p(x)
    by :meth:`VAE.log_marginal` with k = ``n_importance`` samples from the amortised
    q.  Returns a dict of host float64 arrays (N,): ``log_px``, ``elbo_svi``,
    ``elbo_amortised``, ``approximation_gap`` = log_px - elbo_svi,
    ``amortisation_gap`` = elbo_svi - elbo_amortised, ``inference_gap`` = their sum;
    plus ``result`` (the :class:`SVIResult`) and the settings.
    """
    _check_model(model)
    xp, X = model._prepare(X)
    rng = as_generator(random_state)
    result = fit_local(model, X, n_steps=n_steps, lr=lr, lr_final=lr_final,
                       n_samples=n_samples, random_state=rng)
    mu_a, lv_a, _ = model._encode(X, model.params)
    seed = int(rng.integers(2**63 - 1))
    elbo_a = local_elbo(model, X, mu_a, lv_a, n_samples=n_eval, rng=seed)
    elbo_s = local_elbo(model, X, result.mu, result.log_var, n_samples=n_eval, rng=seed)
    log_px = model.log_marginal(X, n_importance=n_importance, rng=rng)
    host = {k: np.asarray(to_numpy(v), dtype=np.float64)
            for k, v in (("log_px", log_px), ("elbo_svi", elbo_s), ("elbo_amortised", elbo_a))}
    return dict(**host,
                approximation_gap=host["log_px"] - host["elbo_svi"],
                amortisation_gap=host["elbo_svi"] - host["elbo_amortised"],
                inference_gap=host["log_px"] - host["elbo_amortised"],
                result=result, n_importance=int(n_importance), n_eval=int(n_eval),
                n_steps=int(n_steps))
