"""The reparameterised Gaussian latent of a VAE and its KL to the prior
(Kingma & Welling 2014, sec. 2.4 and appendix B).

    std = exp(log_var / 2),   z_r = mu + std eps_r          (R samples, eps_r ~ N(0, I))
    dmu = sum_r dz_r,         dlog_var = 1/2 std sum_r dz_r eps_r
    KL(N(mu, diag std^2) || N(0, s^2 I)) = 1/2 sum_l [(std^2 + mu^2)/s^2 - 1 - log_var + log s^2]
    dKL/dmu = mu / s^2,       dKL/dlog_var = 1/2 (std^2 / s^2 - 1)

Shapes: mu, log_var, std (N, L); eps, z, dz (R, N, L).
"""
from __future__ import annotations

import math

import numpy as np

from . import _cupy
from . import _kernels as K
from . import reference as ref
from ._dispatch import fusable, writable_out
from .workspace import scratch

__all__ = ["reparameterize", "reparameterize_backward", "kl_std_normal"]


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
