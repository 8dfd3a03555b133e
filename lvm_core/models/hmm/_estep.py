"""The HMM E-step (a pure function of the data and the parameters), with a
fused path for emissions whose log-density is affine in features of x_t,

    log p(x_t | z_t = k) = Z_t W_{:, k} + const_k

(diagonal and spherical Gaussians: Z_t = [x_t - c, (x_t - c)^2], Bishop, PRML
sec. 13.2.1 with :func:`lvm_core.families.gaussian.diag_natural_params`).  The
statistics such emissions need are resp_sum = sum_t gamma_t and
gZ = sum_t gamma_t Z_t^T, which the kernels' ``forward_backward_affine``
returns together with log p(X), start_sum and xi_sum (Rabiner 1989, eqs.
18-27, 37-40): on NumPy one fused numba pass without (T, K) arrays of
log-densities or posteriors, elsewhere the array-API reference.
"""
from __future__ import annotations

from ...em import SufficientStatistics
from ...families._common import safe_log

__all__ = ["EStep"]


class EStep:
    """``_e_step`` of the HMM base.  Generic: forward-backward on the (T, K)
    log-densities, then the family's ``_emission_stats`` from the posteriors.
    Fused: a family opts in by defining ``_emission_affine(data, params)`` ->
    (Z (T, P), W (P, K), const (K,)) or None, and
    ``_affine_stats(data, resp_sum, gZ)`` -> its statistics."""

    def _e_step(self, data, params, clamp=None):
        """(SufficientStatistics of q(Z) = p(Z | X), log p(X)) (Rabiner eqs. 18-27, 37-40)."""
        xp = data["xp"]
        fused = self._affine_e_step(data, params, clamp)
        if fused is not None:
            return fused
        log_prob, post, start_sum, xi_sum, aux = self._forward_backward(data, params, clamp)
        missing = data.get("missing")
        post_obs = post if missing is None else xp.where(missing[:, None], xp.zeros_like(post), post)
        stats = SufficientStatistics(start=start_sum, trans=xi_sum)
        stats.update(self._emission_stats(data, post_obs, params, aux))
        return stats, float(xp.sum(log_prob))

    def _emission_affine(self, data, params):
        return None

    def _affine_e_step(self, data, params, clamp):
        """(SufficientStatistics, log p(X)) from the fused kernel, or None when the
        emissions are not affine, rows are missing or clamped, or a sequence is
        impossible (the generic E-step then runs, and names the impossible step)."""
        if clamp is not None or data.get("missing") is not None:
            return None
        affine = self._emission_affine(data, params)
        if affine is None:
            return None
        xp = data["xp"]
        kernels = self._kernels(xp)
        extra = {} if data.get("work") is None or kernels.__name__.endswith("hmm_xp") else \
            {"work": data["work"]}  # fit reuses the numba work arrays between iterations
        log_prob, start_sum, xi_sum, resp_sum, gZ = kernels.forward_backward_affine(
            safe_log(params["startprob"]), safe_log(params["transmat"]), *affine,
            data["lengths"], **extra)
        if not bool(xp.all(xp.isfinite(log_prob))):
            return None
        stats = SufficientStatistics(start=start_sum, trans=xi_sum)
        stats.update(self._affine_stats(data, resp_sum, gZ))
        return stats, float(xp.sum(log_prob))
