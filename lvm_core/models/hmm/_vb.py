"""The variational Bayes EM loop shared by the variational HMMs of
:mod:`lvm_core.models.hmm.variational` (Beal 2003, ch. 3; the equations are
in that module's docstring): prior checks and the coordinate ascent on the
evidence lower bound around the emission-specific expected statistics.
"""
from __future__ import annotations


import numpy as np

from ...backend import asarray, to_numpy
from ...em import ConvergenceMonitor, run_em
from ...families.dirichlet import expected_log, kl_dirichlet
from ...random import as_generator
from ...validation import check_lengths, check_not_sparse


def _host(value, shape, name):
    """A prior as a float64 NumPy array broadcast to ``shape`` (a copy)."""
    try:
        out = np.broadcast_to(np.asarray(to_numpy(value) if hasattr(value, "shape") else value,
                                         dtype=np.float64), shape).copy()
    except ValueError:
        raise ValueError(f"{name} must broadcast to shape {shape}; got "
                         f"{np.shape(value)}.") from None
    if not np.all(np.isfinite(out)) or np.any(out <= 0):
        raise ValueError(f"{name} must be finite and positive; got {out.ravel()[:4]}...")
    return out


class _VariationalFit:
    """VB-EM fit shared by the variational HMMs (a mixin before the EM model).

    Every fit starts from a fresh draw of the posteriors, except those set by
    hand (``model.transmat_posterior_ = ...``), which are kept, and all of
    them with ``warm_start=True`` after a fit.

    Subclasses provide ``_vb_priors(data, ref)``, ``_vb_init(data, ref, rng)``
    (emission posteriors), ``_vb_frame(data, post)`` (T, K) expected log
    emissions, ``_vb_stats(data, post_z)``, ``_vb_update(stats, post, priors)``,
    ``_vb_kl(post, priors)`` and ``_vb_point(post, ref)`` (point parameters).
    """

    _vb_chain = ("startprob", "transmat")

    def _vb_names(self):
        return self._vb_chain + self._vb_emission

    def fit(self, X, lengths=None):
        """Variational Bayes EM (see the module docstring).  Returns self."""
        self._check_hyper()
        check_not_sparse(X, "X")
        learn = self._check_names(self.learn, "learn")
        X_valid, missing = self._validate(X)
        T = X_valid.shape[0]
        lengths = check_lengths(lengths, T)
        ref = self._reference([self._summary(X_valid, missing)])
        data = self._features(X_valid, lengths, ref, missing=missing)
        rng = as_generator(self.random_state)
        priors = self._vb_priors(data, ref)
        X_data = data.get("X")
        self._vb_dim = int(X_data.shape[1]) if X_data is not None and X_data.ndim == 2 else 1
        K = self.n_components
        warm = self.warm_start and getattr(self, "_vb_fit", None) is not None
        if warm:
            post = {k: np.array(v, dtype=np.float64) for k, v in self._vb_fit.items()}
        else:
            S = len(lengths)
            post = {"startprob": rng.dirichlet(np.full(K, 1.0 / K)) * S,
                    "transmat": rng.dirichlet(np.full(K, 1.0 / K), size=K) * T / K}
            post.update(self._vb_init(data, ref, rng))
            fitted = getattr(self, "_vb_fit", None) or {}
            for name in self._vb_names():  # posteriors set by hand are kept
                value = getattr(self, name + "_posterior_", None)
                if value is not None and value is not fitted.get(name):
                    value = np.array(to_numpy(value) if hasattr(value, "shape") else value,
                                     dtype=np.float64)
                    if value.shape != np.shape(post[name]) or not np.all(np.isfinite(value)):
                        raise ValueError(
                            f"{name}_posterior_ set by hand must be finite with shape "
                            f"{np.shape(post[name])}; got shape {value.shape}.")
                    self._vb_check_posterior(name, value)
                    post[name] = value
        kernels = self._kernels(data["xp"])
        extra = {"method": "sequential"} if kernels.__name__.endswith("hmm_numba") else {}
        xp = data["xp"]

        def e_step(post):
            lfp = self._vb_frame(data, post)
            if missing is not None:
                lfp = xp.where(missing[:, None], xp.zeros_like(lfp), lfp)
            log_pi = asarray(expected_log(post["startprob"]), like=lfp)
            log_A = asarray(expected_log(post["transmat"]), like=lfp)
            log_prob, post_z, start_sum, xi_sum = kernels.forward_backward(
                log_pi, log_A, lfp, lengths, **extra)
            post_obs = post_z if missing is None else \
                xp.where(missing[:, None], xp.zeros_like(post_z), post_z)
            stats = {"start": to_numpy(start_sum), "trans": to_numpy(xi_sum)}
            stats.update(self._vb_stats(data, post_obs, post))
            elbo = (float(xp.sum(log_prob)) - kl_dirichlet(post["startprob"], priors["startprob"])
                    - kl_dirichlet(post["transmat"], priors["transmat"]) - self._vb_kl(post, priors))
            return stats, elbo

        def m_step(stats, post):
            new = dict(post)
            if "startprob" in learn:
                new["startprob"] = priors["startprob"] + stats["start"]
            if "transmat" in learn:
                new["transmat"] = priors["transmat"] + stats["trans"]
            new.update(self._vb_update(stats, post, priors, learn))
            return new

        monitor = ConvergenceMonitor(tol=self.tol, n_iter=self.n_iter, verbose=self.verbose)
        post, monitor = run_em(e_step, m_step, post, monitor)
        like = data["like"]
        for name, value in priors.items():
            setattr(self, name + "_prior_", value)
        for name, value in post.items():
            setattr(self, name + "_posterior_", value)
        point = {"startprob": post["startprob"] / post["startprob"].sum(),
                 "transmat": post["transmat"] / post["transmat"].sum(axis=1, keepdims=True)}
        point.update(self._vb_point(post, ref))
        self._set_params({k: asarray(v, like=like) for k, v in point.items()})
        self._vb_fit = post
        self.monitor_ = monitor
        self.lower_bound_ = monitor.history[-1]
        self.n_iter_ = monitor.iter
        self.converged_ = monitor.converged
        return self

    def _vb_check_posterior(self, name, value):
        """ValueError unless a hand-set posterior is a valid parameter of its family."""
        if name == "means":
            return
        ctype = getattr(self, "covariance_type", "full")
        if name == "scale" and ctype in ("diag", "spherical"):
            if np.any(value <= 0):
                raise ValueError(f"scale_posterior_ must be positive ({ctype}); got entries <= 0.")
            return
        if name == "scale":
            sym = np.allclose(value, np.swapaxes(value, -1, -2))
            if not sym or np.any(np.linalg.eigvalsh(value) <= 0):
                raise ValueError("scale_posterior_ must hold symmetric positive definite "
                                 "matrices (W^{-1}); got one that is not.")
            return
        if name == "dof":
            low = self._vb_dim - 1 if getattr(self, "covariance_type", "full") in ("full", "tied") \
                else 0
            if np.any(value <= low):
                raise ValueError(f"dof_posterior_ must be > {low}; got {value}.")
            return
        if np.any(value <= 0):
            raise ValueError(f"{name}_posterior_ must be positive (a concentration); got "
                             f"entries <= 0.")

    def partial_fit(self, *args, **kwargs):
        raise NotImplementedError(
            f"{type(self).__name__} has no online (partial_fit) variant; call fit on all data.")
