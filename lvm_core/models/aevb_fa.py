"""Factor analysis fitted by auto-encoding variational Bayes (AEVB).

References: Kingma & Welling 2014 (AEVB, the reparameterised ELBO); Yang
Zhi-Han, "Training latent variable models with AEVB: a tutorial" (course
notes, seed 002, sec. 5.2: this exact model and its two experiments); Bishop,
PRML sec. 12.2.4 and Murphy 2012 sec. 12.1.2 (the FA evidence and posterior);
Neal & Hinton 1998 (EM as coordinate ascent on the ELBO).

Generative model p_theta, theta = (W, pre_sigma)::

    z ~ N(0, I_L),     x | z ~ N(W z, diag(sigma)^2),     sigma = softplus(pre_sigma)

with W (D, L) and pre_sigma (D,).  Amortised posterior q_phi, phi = (V, U)::

    q(z | x) = N(V x, Sigma),     Sigma = U^T U,

with V (L, D) and U (L, L) upper triangular (only triu(U) is used; the
gradient dU is upper triangular).  The exact posterior of FA has exactly this
form (mean linear in x, covariance shared by all x), so the family contains it
and the ELBO can be made tight: q-steps are an approximate E-step, p-steps an
approximate M-step.

Per-example ELBO and its reparameterised estimator (r = 1..R samples)::

    ELBO(x) = E_q[log p(x | z)] - KL(q(z | x) || p(z))
    z_r = V x + U^T eps_r,  eps_r ~ N(0, I_L)          (z = mu + eps U, row form)
    ELBO_hat(x) = 1/R sum_r log N(x; W z_r, diag sigma^2) - KL
    KL = 1/2 [tr Sigma + |V x|^2 - L - log det Sigma],   log det Sigma = 2 sum_i log|U_ii|

Closed forms used for noise-free curves and exact checks (Psi = diag sigma^2)::

    E_q[log p(x|z)] = -1/2 sum_d [log 2 pi + log sigma_d^2
                                  + ((x - W mu)_d^2 + (W Sigma W^T)_dd) / sigma_d^2]
    log p(x) = log N(x; 0, C),  C = W W^T + Psi                     (marginal)
    M = I_L + W^T Psi^-1 W,     p(z | x) = N(M^-1 W^T Psi^-1 x, M^-1)  (posterior)

log p(x) is evaluated with the Woodbury identity and the matrix determinant
lemma (C^-1 = Psi^-1 - Psi^-1 W M^-1 W^T Psi^-1, det C = det Psi det M):
cost O(N D L + D L^2 + L^3), never a D x D matrix.

Shapes: N samples, D features, L latent size, R Monte Carlo samples per
example (the ``n_samples`` hyper-parameter).

The two linear maps are bias-free :class:`lvm_core.nn.Dense` layers (V and W
stored transposed, under their own names) and the Gaussian log-density with
its gradients is :func:`lvm_core.ops.gaussian_loglik`; the public forward /
backward functions below are the one path that training and the gradient
checks use.
"""
from __future__ import annotations

import math

import numpy as np

from .. import ops
from ..backend import asarray, device_of, get_namespace, item, namespace_name
from ..functional import sigmoid, softplus
from ..nn import Dense, store_grad
from ..random import as_generator, normal
from ..validation import check_array, check_choice, check_magnitude, check_positive_int
from .base import ParamsMixin

__all__ = [
    "AEVBFactorAnalysis",
    "encoder_forward",
    "encoder_backward",
    "gaussian_decoder_forward",
    "gaussian_decoder_backward",
    "kl_q_prior",
    "expected_log_likelihood",
    "fa_log_evidence",
    "fa_posterior",
]

LOG_2PI = math.log(2.0 * math.pi)


# ----------------------------------------------------------------------------
# the two linear maps as layers: mu = X V^T (q), x_hat = z W^T (p)
# ----------------------------------------------------------------------------
def _q_mean_layer(V):
    """mu = x V^T: a bias-free Dense layer holding V (L, D) as a transposed weight."""
    L, D = V.shape
    return Dense(D, L, bias=False, transpose=True, W_key="V")


def _p_mean_layer(W):
    """x_hat = z W^T: a bias-free Dense layer holding W (D, L) as a transposed weight."""
    D, L = W.shape
    return Dense(L, D, bias=False, transpose=True, W_key="W")


# ----------------------------------------------------------------------------
# q(z | x): reparameterised sample z = V x + U^T eps
# ----------------------------------------------------------------------------
def encoder_forward(X, V, U, eps):
    """Reparameterised draws from q(z | x) = N(V x, U^T U).

    mu = X V^T,  z_r = mu + eps_r triu(U)   (row form of z = V x + U^T eps)

    X: (N, D), V: (L, D), U: (L, L) (its lower triangle is ignored),
    eps: (R, N, L).  Returns ``z`` (R, N, L), ``mu`` (N, L) and a cache.
    """
    xp = get_namespace(X, V, U, eps)
    layer = _q_mean_layer(V)
    mu, mu_cache = layer.forward({"V": V}, X)  # (N, L)
    z = mu[None, :, :] + eps @ xp.triu(U)  # (R, N, L)
    cache = {"X": X, "eps": eps, "V": V, "layer": layer, "mu_cache": mu_cache}
    return z, mu, cache


def encoder_backward(dz, dmu, cache):
    """Gradients of z = mu + eps triu(U), mu = X V^T, w.r.t. V and U.

    dmu_total = dmu + sum_r dz_r,   dV = dmu_total^T X,   dU = triu(sum_r eps_r^T dz_r)

    dz: (R, N, L), dmu: (N, L) (the direct gradient, e.g. from the KL term).
    Returns dV (L, D), dU (L, L) upper triangular.
    """
    xp = get_namespace(dz, dmu)
    eps = cache["eps"]
    L = dz.shape[-1]
    dmu_total = dmu + xp.sum(dz, axis=0)  # (N, L)
    grads = {}
    cache["layer"].backward({"V": cache["V"]}, dmu_total, cache["mu_cache"], grads,
                            need_dx=False)
    dU = xp.reshape(eps, (-1, L)).T @ xp.reshape(dz, (-1, L))  # (L, L)
    return grads["V"], xp.triu(dU)


# ----------------------------------------------------------------------------
# p(x | z) = N(W z, diag sigma^2), sigma = softplus(pre_sigma)
# ----------------------------------------------------------------------------
def gaussian_decoder_forward(X, z, W, pre_sigma):
    """log p(x | z_r) = -1/2 sum_d [log 2 pi + 2 log sigma_d + (x_d - (W z_r)_d)^2 / sigma_d^2].

    X: (N, D), z: (R, N, L), W: (D, L), pre_sigma: (D,).
    Returns ``log_px_z`` (R, N) and a cache.  The Gaussian log-density and its
    gradients come from :func:`lvm_core.ops.gaussian_loglik` with
    log_var = 2 log sigma.
    """
    xp = get_namespace(X, z, W, pre_sigma)
    R, N, L = z.shape
    D = W.shape[0]
    layer = _p_mean_layer(W)
    sigma = softplus(pre_sigma)  # (D,)
    x_hat, mean_cache = layer.forward({"W": W}, xp.reshape(z, (R * N, L)))  # (R N, D)
    X_rep = xp.reshape(xp.broadcast_to(X[None, :, :], (R, N, D)), (R * N, D))
    log_var = xp.broadcast_to(2.0 * xp.log(sigma), (R * N, D))
    if type(x_hat) is np.ndarray:  # the fused op takes C-contiguous arrays
        X_rep, log_var = np.ascontiguousarray(X_rep), np.ascontiguousarray(log_var)
    ll, dll_dx_hat, dll_dlog_var = ops.gaussian_loglik(X_rep, x_hat, log_var)
    cache = {"z": z, "W": W, "pre_sigma": pre_sigma, "sigma": sigma, "layer": layer,
             "mean_cache": mean_cache, "dll_dx_hat": dll_dx_hat, "dll_dlog_var": dll_dlog_var}
    return xp.reshape(ll, (R, N)), cache


def gaussian_decoder_backward(dlog_px_z, cache):
    """Backward of :func:`gaussian_decoder_forward` for an upstream ``dlog_px_z`` (R, N).

    dx_hat = g resid / sigma^2,   dz = dx_hat W,   dW = sum_{r,n} dx_hat^T z,
    dlog_var = g (-1/2)(1 - resid^2 / sigma^2),
    dpre_sigma = sum_{r,n} dlog_var * (2 / sigma) * sigmoid(pre_sigma)   (g = dlog_px_z)

    Returns dz (R, N, L), dW (D, L), dpre_sigma (D,).
    """
    xp = get_namespace(dlog_px_z)
    z, W, sigma = cache["z"], cache["W"], cache["sigma"]
    R, N, L = z.shape
    g = xp.reshape(dlog_px_z, (R * N, 1))
    grads = {}
    dz = cache["layer"].backward({"W": W}, g * cache["dll_dx_hat"], cache["mean_cache"], grads)
    dlog_var = xp.sum(g * cache["dll_dlog_var"], axis=0)  # (D,)
    dpre_sigma = dlog_var * (2.0 / sigma) * sigmoid(cache["pre_sigma"])
    return xp.reshape(dz, (R, N, L)), grads["W"], dpre_sigma


# ----------------------------------------------------------------------------
# KL(q(z | x) || p(z)) in closed form
# ----------------------------------------------------------------------------
def kl_q_prior(mu, U):
    """KL(N(mu, U^T U) || N(0, I_L)) per example, and its gradients.

    KL = 1/2 [tr Sigma + |mu|^2 - L - log det Sigma],
    tr Sigma = sum_ij triu(U)_ij^2,   log det Sigma = 2 sum_i log|U_ii|;
    dKL/dmu = mu,   dKL/dU = triu(U) - diag(1 / U_ii)   (the same for every example).

    mu: (N, L), U: (L, L) with a non-zero diagonal (a zero U_ii makes Sigma
    singular and the KL infinite).  Returns ``kl`` (N,), ``dmu`` (N, L) and
    ``dU`` (L, L) upper triangular, the gradient of a *single* example's KL.
    """
    xp = get_namespace(mu, U)
    L = U.shape[0]
    U_upper = xp.triu(U)
    U_diag = xp.linalg.diagonal(U_upper)  # (L,)
    trace_Sigma = xp.sum(U_upper * U_upper)
    log_det_Sigma = 2.0 * xp.sum(xp.log(xp.abs(U_diag)))
    kl = 0.5 * (trace_Sigma + xp.sum(mu * mu, axis=1) - float(L) - log_det_Sigma)
    eye = xp.eye(L, dtype=U.dtype, device=device_of(U))
    dU = U_upper - eye * (1.0 / U_diag)[None, :]
    return kl, mu, dU


# ----------------------------------------------------------------------------
# exact quantities: E_q[log p(x|z)], log p(x), p(z | x)
# ----------------------------------------------------------------------------
def expected_log_likelihood(X, mu, U, W, sigma):
    """E_{q(z|x)}[log p(x | z)] in closed form for q = N(mu, U^T U).

    E_q[log p(x|z)] = -1/2 sum_d [log 2 pi + log sigma_d^2
                                  + ((x - W mu)_d^2 + (W Sigma W^T)_dd) / sigma_d^2],
    (W Sigma W^T)_dd = sum_l (W triu(U)^T)_dl^2.

    X: (N, D), mu: (N, L), U: (L, L), W: (D, L), sigma: (D,).  Returns (N,).
    """
    xp = get_namespace(X, mu, U, W, sigma)
    B = W @ xp.triu(U).T  # (D, L)
    var = sigma * sigma
    resid = X - mu @ W.T  # (N, D)
    spread = xp.sum(B * B, axis=1)  # (D,) diagonal of W Sigma W^T
    return -0.5 * xp.sum(LOG_2PI + xp.log(var) + (resid * resid + spread) / var, axis=1)


def _woodbury_terms(W, sigma):
    """M = I_L + W^T Psi^-1 W (L, L) and Psi^-1 W (D, L), Psi = diag sigma^2."""
    xp = get_namespace(W, sigma)
    L = W.shape[1]
    Psi_inv_W = W / (sigma * sigma)[:, None]  # (D, L)
    M = xp.eye(L, dtype=W.dtype, device=device_of(W)) + W.T @ Psi_inv_W
    return M, Psi_inv_W


def fa_log_evidence(X, W, sigma):
    """Exact log p(x) = log N(x; 0, W W^T + diag sigma^2) per example, shape (N,).

    With M = I_L + W^T Psi^-1 W (Woodbury / determinant lemma):
    log det C = sum_d log sigma_d^2 + log det M,
    x^T C^-1 x = x^T Psi^-1 x - b^T M^-1 b,   b = W^T Psi^-1 x,
    log p(x) = -1/2 [D log 2 pi + log det C + x^T C^-1 x].
    Cost O(N D L + D L^2 + L^3); no D x D matrix is formed.
    """
    xp = get_namespace(X, W, sigma)
    D = W.shape[0]
    M, Psi_inv_W = _woodbury_terms(W, sigma)
    chol_M = xp.linalg.cholesky(M)  # (L, L) lower
    log_det_C = 2.0 * xp.sum(xp.log(sigma)) + 2.0 * xp.sum(xp.log(xp.linalg.diagonal(chol_M)))
    b = X @ Psi_inv_W  # (N, L)
    M_inv_b = xp.linalg.solve(M, b.T).T  # (N, L)
    quad = xp.sum(X * X / (sigma * sigma), axis=1) - xp.sum(b * M_inv_b, axis=1)
    return -0.5 * (float(D) * LOG_2PI + log_det_C + quad)


def fa_posterior(X, W, sigma):
    """Exact posterior p(z | x) = N(M^-1 W^T Psi^-1 x, M^-1) of factor analysis.

    Returns ``mean`` (N, L) and ``cov`` (L, L) (shared by all examples), and
    the matrix ``V_star`` (L, D) = M^-1 W^T Psi^-1 with mean = X V_star^T.
    """
    xp = get_namespace(X, W, sigma)
    M, Psi_inv_W = _woodbury_terms(W, sigma)
    V_star = xp.linalg.solve(M, Psi_inv_W.T)  # (L, D)
    cov = xp.linalg.inv(M)
    cov = 0.5 * (cov + cov.T)
    return X @ V_star.T, cov, V_star


# ----------------------------------------------------------------------------
# the model
# ----------------------------------------------------------------------------
class AEVBFactorAnalysis(ParamsMixin):
    """Factor analysis p(x, z) with an amortised Gaussian q(z | x), trained by AEVB.

    Parameters
    ----------
    n_features : int
        D, the data dimension.
    n_latent : int
        L, the latent dimension.
    n_samples : int, default 1
        R, reparameterised samples per example in :meth:`loss_and_grads` and
        the default of :meth:`elbo`.
    dtype : {"float64", "float32"}, default "float64"
        Dtype of the parameters; data is cast to it (float32 stays float32).
    random_state : None, int or Generator
        Seeds the initialisation, as in the tutorial: W, pre_sigma, V ~ N(0, 1)
        entrywise and U = I_L.

    Attributes
    ----------
    params : dict
        ``{"W": (D, L), "pre_sigma": (D,), "V": (L, D), "U": (L, L)}``; theta =
        (W, pre_sigma) is the generative part, phi = (V, U) the inference part.
        Replace it by assignment to load or move parameters.

    Parameters live on the device of the data: build on the host, then
    ``model.to(X)`` moves them next to ``X`` (explicitly) before training.
    """

    generative_params = ("W", "pre_sigma")
    inference_params = ("V", "U")

    def __init__(self, n_features, n_latent, n_samples=1, dtype="float64", random_state=None):
        self.n_features = n_features
        self.n_latent = n_latent
        self.n_samples = n_samples
        self.dtype = dtype
        self.random_state = random_state
        check_positive_int(n_features, "n_features")
        check_positive_int(n_latent, "n_latent")
        check_positive_int(n_samples, "n_samples")
        check_choice(dtype, "dtype", ("float64", "float32"))
        rng = as_generator(random_state)
        D, L = int(n_features), int(n_latent)
        self.params = {
            "W": rng.standard_normal((D, L)).astype(dtype),
            "pre_sigma": rng.standard_normal(D).astype(dtype),
            "V": rng.standard_normal((L, D)).astype(dtype),
            "U": np.eye(L, dtype=dtype),
        }

    def _check_hyper(self):
        """The hyper-parameters (again: ``set_params`` may have changed them)."""
        check_positive_int(self.n_features, "n_features")
        check_positive_int(self.n_latent, "n_latent")
        check_positive_int(self.n_samples, "n_samples")
        check_choice(self.dtype, "dtype", ("float64", "float32"))
        D, L = int(self.n_features), int(self.n_latent)
        if tuple(self.params["W"].shape) != (D, L):
            raise ValueError(
                f"n_features={D}, n_latent={L} do not match the parameters (W has shape "
                f"{tuple(self.params['W'].shape)}): the parameters are made by the "
                f"constructor. Build a new {type(self).__name__}(n_features, n_latent) instead "
                "of changing these with set_params."
            )

    # -- device handling ---------------------------------------------------
    def to(self, like):
        """Move every parameter to the namespace and device of array ``like`` (explicit)."""
        self.params = {k: asarray(v, like=like, dtype=self.dtype) for k, v in self.params.items()}
        return self

    def _check_X(self, X, name="X"):
        self._check_hyper()
        X = check_array(X, name, ndim=2, dtype_kind="numeric", n_features=int(self.n_features))
        check_magnitude(X, name)
        W = self.params["W"]
        try:
            xp = get_namespace(X, W)
        except TypeError as err:
            raise TypeError(
                f"{name} lives in {namespace_name(get_namespace(X))} but the model's parameters "
                f"live in {namespace_name(get_namespace(W))}. Move the model explicitly with "
                f"model.to({name}) (or move the data). Original error: {err}"
            ) from None
        if X.dtype != W.dtype:
            X = xp.astype(X, W.dtype)
        return X, xp

    @property
    def sigma(self):
        """Noise standard deviations sigma = softplus(pre_sigma), shape (D,)."""
        return softplus(self.params["pre_sigma"])

    def _draw_eps(self, rng, R, N):
        W = self.params["W"]
        return normal(rng, (R, N, int(self.n_latent)), like=W, dtype=W.dtype)

    def _check_eps(self, eps, X, xp):
        N, L = X.shape[0], int(self.n_latent)
        if eps.ndim == 2:
            eps = eps[None, :, :]
        if eps.ndim != 3 or tuple(eps.shape[1:]) != (N, L):
            raise ValueError(
                f"eps must have shape (N, L) = ({N}, {L}) or (R, N, L) = (R, {N}, {L}); "
                f"got {tuple(eps.shape)}. Draw it as standard normal noise of that shape."
            )
        if eps.dtype != X.dtype:
            eps = xp.astype(eps, X.dtype)
        return eps

    # -- training objective ------------------------------------------------
    def loss_and_grads(self, X, rng=None, eps=None, grads_out=None, check_input=True):
        """Mean negative ELBO estimate over the batch and its hand-written gradients.

        loss = -1/N sum_n [1/R sum_r log p(x_n | z_rn) - KL(q(z|x_n) || p(z))],
        z_rn = V x_n + U^T eps_rn.  ``eps`` (N, L) or (R, N, L) fixes the noise
        (for gradient checks); otherwise R = ``n_samples`` draws come from ``rng``.

        Returns ``loss`` (0-d array of the parameter dtype) and ``grads`` with
        the keys and shapes of :attr:`params` (dU upper triangular), written
        into the arrays of ``grads_out`` when given.  ``check_input=False``
        skips the checks that read X (for a loop that validated it once).
        """
        if check_input:
            X, xp = self._check_X(X)
        else:
            xp = get_namespace(X, self.params["W"])
            if X.dtype != self.params["W"].dtype:
                X = xp.astype(X, self.params["W"].dtype)
        p = self.params
        N = X.shape[0]
        if eps is None:
            eps = self._draw_eps(rng, int(self.n_samples), N)
        else:
            eps = self._check_eps(eps, X, xp)
        R = eps.shape[0]
        z, mu, enc_cache = encoder_forward(X, p["V"], p["U"], eps)
        log_px_z, dec_cache = gaussian_decoder_forward(X, z, p["W"], p["pre_sigma"])
        kl, dkl_dmu, dkl_dU = kl_q_prior(mu, p["U"])
        loss = -xp.sum(log_px_z) / float(R * N) + xp.sum(kl) / float(N)
        # backward: dloss/dlog_px_z = -1/(R N), dloss/dkl_n = 1/N
        dlog_px_z = xp.full(log_px_z.shape, -1.0 / float(R * N), dtype=X.dtype, device=device_of(X))
        dz, dW, dpre_sigma = gaussian_decoder_backward(dlog_px_z, dec_cache)
        dV, dU = encoder_backward(dz, dkl_dmu / float(N), enc_cache)
        dU = dU + dkl_dU  # mean over n of the per-example (identical) KL gradient
        grads = {"W": dW, "pre_sigma": dpre_sigma, "V": dV, "U": dU}
        if grads_out is None:
            return loss, grads
        for k, g in grads.items():
            store_grad(grads_out, k, g)
        return loss, grads_out

    def validation_loss(self, X):
        """-mean_n ELBO(x_n) with the ELBO in closed form (no Monte Carlo noise), a float."""
        return -item(self._mean(self.exact_elbo(X)))

    @staticmethod
    def _mean(v):
        xp = get_namespace(v)
        return xp.mean(v)

    # -- evaluation --------------------------------------------------------
    def elbo(self, X, rng=None, n_samples=None):
        """Monte Carlo ELBO estimate per example (N,), averaged over ``n_samples`` draws.

        ELBO_hat(x) = 1/R sum_r log p(x | z_r) - KL(q(z|x) || p(z)), z_r ~ q(z | x).
        """
        X, xp = self._check_X(X)
        R = int(self.n_samples) if n_samples is None else check_positive_int(n_samples, "n_samples")
        p = self.params
        eps = self._draw_eps(rng, R, X.shape[0])
        z, mu, _ = encoder_forward(X, p["V"], p["U"], eps)
        log_px_z, _ = gaussian_decoder_forward(X, z, p["W"], p["pre_sigma"])
        kl, _, _ = kl_q_prior(mu, p["U"])
        return xp.mean(log_px_z, axis=0) - kl

    def exact_elbo(self, X):
        """ELBO(x) = E_q[log p(x|z)] - KL(q(z|x) || p(z)) in closed form, per example (N,)."""
        X, xp = self._check_X(X)
        p = self.params
        mu = X @ p["V"].T  # (N, L)
        kl, _, _ = kl_q_prior(mu, p["U"])
        return expected_log_likelihood(X, mu, p["U"], p["W"], self.sigma) - kl

    def log_evidence(self, X):
        """Exact log p(x) = log N(x; 0, W W^T + diag sigma^2) per example (N,).

        Woodbury identity and determinant lemma: O(N D L + D L^2 + L^3).
        """
        X, xp = self._check_X(X)
        return fa_log_evidence(X, self.params["W"], self.sigma)

    def score_samples(self, X):
        """Alias of :meth:`log_evidence` (scikit-learn naming)."""
        return self.log_evidence(X)

    def score(self, X):
        """Mean exact log-evidence per example, a float."""
        return item(self._mean(self.log_evidence(X)))

    def posterior(self, X):
        """Exact posterior p(z | x) = N(mean, cov) of the generative model.

        Returns ``mean`` (N, L) and ``cov`` (L, L), shared by all examples.
        The gap log p(x) - ELBO(x) equals KL(q(z|x) || p(z|x)).
        """
        X, xp = self._check_X(X)
        mean, cov, _ = fa_posterior(X, self.params["W"], self.sigma)
        return mean, cov

    def exact_q_params(self):
        """Inference parameters {V, U} making q(z|x) the exact posterior (an exact E-step).

        V* = M^-1 W^T Psi^-1,  U* = upper Cholesky factor of M^-1 (U*^T U* = M^-1).
        """
        W = self.params["W"]
        xp = get_namespace(W)
        empty = xp.zeros((1, W.shape[0]), dtype=W.dtype, device=device_of(W))
        _, cov, V_star = fa_posterior(empty, W, self.sigma)
        return {"V": V_star, "U": xp.linalg.cholesky(cov, upper=True)}

    def sample(self, n, rng=None):
        """Draw ``n`` examples x = W z + sigma * e, z ~ N(0, I_L), e ~ N(0, I_D); (n, D)."""
        n = check_positive_int(n, "n")
        rng = as_generator(rng)
        W = self.params["W"]
        z = normal(rng, (n, int(self.n_latent)), like=W, dtype=W.dtype)
        e = normal(rng, (n, int(self.n_features)), like=W, dtype=W.dtype)
        return z @ W.T + e * self.sigma[None, :]

    # -- training ----------------------------------------------------------
    def fit(self, X, epochs=10, batch_size=32, lr=1e-2, validation_data=None,
            random_state=None, progress=False, **fit_kwargs):
        """Maximise the ELBO with Adam through :func:`lvm_core.train.fit_minibatch`.

        Extra keyword arguments go to ``fit_minibatch``.  Stores its History
        as ``history_`` and returns ``self``.
        """
        from ..train import fit_minibatch  # higher layer: imported on use

        X, _ = self._check_X(X)
        self.history_ = fit_minibatch(
            self, X, epochs=epochs, batch_size=batch_size, optimizer="adam", lr=lr,
            validation_data=validation_data, random_state=random_state,
            progress=progress, **fit_kwargs,
        )
        return self
