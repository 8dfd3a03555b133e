"""The reparameterised Gaussian latent of a VAE and its KL to the prior
(Kingma & Welling 2014, sec. 2.4 and appendix B).

    std = exp(log_var / 2),   z_r = mu + std eps_r          (R samples, eps_r ~ N(0, I))
    dmu = sum_r dz_r,         dlog_var = 1/2 std sum_r dz_r eps_r
    KL(N(mu, diag std^2) || N(0, s^2 I)) = 1/2 sum_l [(std^2 + mu^2)/s^2 - 1 - log_var + log s^2]
    dKL/dmu = mu / s^2,       dKL/dlog_var = 1/2 (std^2 / s^2 - 1)

and to a general diagonal Gaussian p = N(mu_p, diag exp(log_var_p)) (a learned
conditional prior, Sohn et al. 2015; Kingma & Welling 2014, appendix B):

    KL = 1/2 sum_l [log_var_p - log_var + (std^2 + (mu - mu_p)^2) exp(-log_var_p) - 1]
    dKL/dmu = (mu - mu_p) exp(-log_var_p) = -dKL/dmu_p
    dKL/dlog_var = 1/2 (std^2 exp(-log_var_p) - 1)
    dKL/dlog_var_p = 1/2 (1 - (std^2 + (mu - mu_p)^2) exp(-log_var_p))

Shapes: mu, log_var, std, mu_p, log_var_p (N, L); eps, z, dz (R, N, L).
"""
from __future__ import annotations

import math

import numpy as np

from . import _cupy
from . import _kernels as K
from . import reference as ref
from ._dispatch import fusable, writable_out
from .workspace import scratch

__all__ = ["reparameterize", "reparameterize_backward", "kl_std_normal", "kl_normal"]


def reparameterize(mu, log_var, eps, ws=None, name="latent"):
    """z_r = mu + exp(log_var / 2) eps_r.  Returns (z (R, N, L), std (N, L))."""
    if _cupy.applies(mu, log_var, eps) and eps.ndim == 3 and mu.shape == log_var.shape:
        return _cupy.reparameterize(mu, log_var, eps)
    if not fusable(mu, log_var, eps, contiguous=False) or eps.ndim != 3:
        return ref.reparameterize(mu, log_var, eps)
    std = scratch(ws, name + ".std", mu.shape, mu)
    K.scale_copy(log_var, mu.dtype.type(0.5), std)
    np.exp(std, out=std)
    z = scratch(ws, name + ".z", eps.shape, mu)
    K.reparameterize(mu, std, eps, z)
    return z, std


def reparameterize_backward(dz, eps, std, dmu_out=None, dlog_var_out=None, ws=None,
                            name="latent"):
    """dmu = sum_r dz_r, dlog_var = 1/2 std sum_r dz_r eps_r.  Returns (dmu, dlog_var)."""
    if not fusable(dz, eps, std, contiguous=False) or dz.ndim != 3:
        return ref.reparameterize_backward(dz, eps, std)
    dmu = writable_out(dmu_out, std.shape, std.dtype, contiguous=False)
    if dmu is None:
        dmu = scratch(ws, name + ".dmu", std.shape, std)
    dlv = writable_out(dlog_var_out, std.shape, std.dtype, contiguous=False)
    if dlv is None:
        dlv = scratch(ws, name + ".dlog_var", std.shape, std)
    K.reparameterize_backward(dz, eps, std, dmu, dlv)
    return dmu, dlv


def kl_std_normal(mu, log_var, std, prior_var=1.0, scale=1.0, dmu=None, dlog_var=None,
                  ws=None, name="kl"):
    """KL per row (N,) and scale * its gradients, added to ``dmu`` / ``dlog_var`` when given.

    Returns (kl, dmu, dlog_var); on the fused path the given ``dmu``/``dlog_var``
    are updated in place and returned.
    """
    if not fusable(mu, log_var, std, dmu, dlog_var, contiguous=False) or mu.ndim != 2 \
            or (dmu is None) != (dlog_var is None):
        return ref.kl_std_normal(mu, log_var, std, prior_var, scale, dmu, dlog_var)
    dt = mu.dtype.type
    if dmu is None:
        dmu = scratch(ws, name + ".dmu", mu.shape, mu)
        dlog_var = scratch(ws, name + ".dlog_var", mu.shape, mu)
        dmu[...] = 0
        dlog_var[...] = 0
    kl = scratch(ws, name + ".kl", mu.shape[:1], mu)
    s2 = float(prior_var)
    K.kl_std_normal(mu, log_var, std, dt(1.0 / s2), dt(math.log(s2)), dt(scale), kl, dmu,
                    dlog_var)
    return kl, dmu, dlog_var


def kl_normal(mu, log_var, std, mu_p, log_var_p, scale=1.0, dmu=None, dlog_var=None, ws=None,
              name="kl_normal"):
    """KL(N(mu, diag std^2) || N(mu_p, diag exp(log_var_p))) per row (N,) and scale times
    its gradients (equations in the module docstring).

    ``std`` = exp(log_var / 2) as returned by :func:`reparameterize`.  The gradients
    w.r.t. mu and log_var are added to ``dmu`` / ``dlog_var`` when given (in place on
    the fused path); those w.r.t. the prior's mu_p and log_var_p are new arrays
    (workspace buffers).  Returns (kl, dmu, dlog_var, dmu_p, dlog_var_p).
    """
    if not fusable(mu, log_var, std, mu_p, log_var_p, dmu, dlog_var, contiguous=False) \
            or mu.ndim != 2 or (dmu is None) != (dlog_var is None) \
            or not (mu.shape == log_var.shape == std.shape == mu_p.shape == log_var_p.shape):
        return ref.kl_normal(mu, log_var, std, mu_p, log_var_p, scale, dmu, dlog_var)
    dt = mu.dtype.type
    if dmu is None:
        dmu = scratch(ws, name + ".dmu", mu.shape, mu)
        dlog_var = scratch(ws, name + ".dlog_var", mu.shape, mu)
        dmu[...] = 0
        dlog_var[...] = 0
    inv_var_p = scratch(ws, name + ".inv_var_p", mu.shape, mu)
    np.negative(log_var_p, out=inv_var_p)
    np.exp(inv_var_p, out=inv_var_p)
    dmu_p = scratch(ws, name + ".dmu_p", mu.shape, mu)
    dlog_var_p = scratch(ws, name + ".dlog_var_p", mu.shape, mu)
    kl = scratch(ws, name + ".kl", mu.shape[:1], mu)
    K.kl_normal(mu, log_var, std, mu_p, log_var_p, inv_var_p, dt(scale), kl, dmu, dlog_var,
                dmu_p, dlog_var_p)
    return kl, dmu, dlog_var, dmu_p, dlog_var_p
