"""Synthetic data with known parameters, for tests and the seed experiments.

References: Bishop, *Pattern Recognition and Machine Learning* (2006),
section 9.2 (Gaussian mixture, ancestral sampling z ~ Cat(pi), x | z=k ~
N(mu_k, Sigma_k)) and section 12.2.4 (factor analysis x = W z + mu + eps,
z ~ N(0, I_L), eps ~ N(0, diag(psi)); PPCA when psi = sigma^2 1); Rabiner
(1989) section II and Bishop section 13.2 (HMM: z_1 ~ pi, z_t | z_{t-1} ~ A,
x_t | z_t ~ emission).

Every generator takes ``random_state`` (int, Generator or None; ``0`` is a
seed) and returns the data, the latent variables and a dict of the true
parameters, all NumPy float64 / int64:

* :func:`make_gmm_data` -> ``X (N, D), labels (N,), params``
* :func:`make_fa_data`  -> ``X (N, D), Z (N, L), params``
* :func:`make_hmm_data` -> ``X (T, D), lengths, states (T,), params``

Parameter names and shapes follow the scikit-learn / hmmlearn conventions
(``weights``, ``means``, ``covariances``, ``startprob``, ``transmat``,
``emissionprob``, ``lambdas``), so fitted estimators can be compared
directly.
"""
from __future__ import annotations

import numbers

import numpy as np

from lvm_core.random import as_generator

__all__ = ["make_gmm_data", "make_fa_data", "make_hmm_data", "random_spd"]

_COVARIANCE_TYPES = ("full", "diag", "spherical", "tied")
_EMISSIONS = ("gaussian", "categorical", "poisson")


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be a positive int; got {value!r}.")
    return int(value)


def _weights(weights, n_components, name):
    if weights is None:
        return np.full(n_components, 1.0 / n_components)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (n_components,) or np.any(w < 0) or not np.isclose(w.sum(), 1.0, rtol=0, atol=1e-8):
        raise ValueError(
            f"{name} must be {n_components} non-negative numbers summing to 1; got {weights!r}."
        )
    return w.copy()


def _override(params, given, shapes, name):
    """Replace entries of ``params`` by the caller's ``given`` ones, checking shapes.

    ``shapes``: key -> expected shape.  Unknown keys raise ValueError; the
    given arrays are copied (the caller's arrays are never kept or mutated).
    """
    if given is None:
        return params
    if not isinstance(given, dict):
        raise TypeError(f"{name}: params must be a dict or None; got {type(given).__name__}.")
    unknown = sorted(set(given) - set(shapes))
    if unknown:
        raise ValueError(
            f"{name}: unknown parameter(s) {unknown}; expected keys among {sorted(shapes)}."
        )
    for key, value in given.items():
        value = np.array(value, dtype=np.float64)  # a copy
        if value.shape != shapes[key]:
            raise ValueError(
                f"{name}: params[{key!r}] must have shape {shapes[key]}; got {value.shape}. "
                f"Check n_components / n_features."
            )
        if not np.all(np.isfinite(value)):
            raise ValueError(f"{name}: params[{key!r}] contains NaN or inf.")
        params[key] = value
    return params


def _check_stochastic(P, key, name):
    """Rows of P must be probability vectors."""
    P = np.atleast_2d(P)
    if np.any(P < 0) or not np.allclose(P.sum(axis=-1), 1.0, rtol=0, atol=1e-8):
        raise ValueError(
            f"{name}: params[{key!r}] must hold non-negative rows summing to 1; got row sums "
            f"{P.sum(axis=-1)}."
        )


def _check_positive(v, key, name):
    if np.any(np.asarray(v) <= 0):
        raise ValueError(f"{name}: params[{key!r}] must be positive; got minimum {np.min(v)}.")


def random_spd(rng, n_features, scale=1.0, min_eig=0.1):
    """A random symmetric positive-definite (D, D) matrix.

    Sigma = Q diag(lambda) Q^T with Q a random orthogonal matrix (QR of a
    Gaussian matrix) and eigenvalues lambda ~ scale * U[min_eig, 1].
    """
    rng = as_generator(rng)
    Q, R = np.linalg.qr(rng.standard_normal((n_features, n_features)))  # (D, D)
    Q = Q * np.sign(np.diag(R))  # Haar-distributed orthogonal matrix
    lam = scale * rng.uniform(min_eig, 1.0, size=n_features)  # (D,)
    sigma = (Q * lam) @ Q.T
    return 0.5 * (sigma + sigma.T)


def _cholesky_per_component(covariances, covariance_type, n_components, n_features):
    """Lower Cholesky factors (K, D, D) of the component covariances."""
    if covariance_type == "full":
        full = covariances
    elif covariance_type == "tied":
        full = np.broadcast_to(covariances, (n_components, n_features, n_features))
    elif covariance_type == "diag":
        full = np.stack([np.diag(c) for c in covariances])
    else:  # spherical
        full = covariances[:, None, None] * np.eye(n_features)
    return np.linalg.cholesky(full)


def make_gmm_data(
    n_samples,
    n_components,
    n_features,
    covariance_type="full",
    weights=None,
    separation=4.0,
    random_state=None,
    params=None,
):
    """Draws from a Gaussian mixture with random, known parameters (Bishop 9.2).

    Ancestral sampling: z_n ~ Cat(weights), x_n = mu_{z_n} + L_{z_n} eps_n with
    eps_n ~ N(0, I_D) and L_k L_k^T = Sigma_k.

    Parameters
    ----------
    n_samples, n_components, n_features : N, K, D
    covariance_type : "full" (K, D, D), "diag" (K, D), "spherical" (K,), "tied" (D, D)
    weights : (K,) mixing weights pi, default uniform
    separation : float
        Means are drawn as mu_k ~ N(0, separation^2 I_D); covariance
        eigenvalues lie in [0.1, 1], so a large separation gives
        well-separated clusters.
    random_state : int, Generator or None
    params : dict, optional
        Known parameters to use instead of random ones: any of "weights"
        (K,), "means" (K, D), "covariances" (shape by covariance_type).

    Returns
    -------
    X : (N, D) float64
    labels : (N,) int64, the component z_n of each row
    params : dict with "weights" (K,), "means" (K, D), "covariances" (shape by
        covariance_type), "covariance_type"
    """
    N = _positive_int(n_samples, "n_samples")
    K = _positive_int(n_components, "n_components")
    D = _positive_int(n_features, "n_features")
    if covariance_type not in _COVARIANCE_TYPES:
        raise ValueError(
            f"covariance_type must be one of {_COVARIANCE_TYPES}; got {covariance_type!r}."
        )
    rng = as_generator(random_state)
    pi = _weights(weights, K, "weights")
    means = float(separation) * rng.standard_normal((K, D))  # (K, D)
    if covariance_type == "full":
        covariances = np.stack([random_spd(rng, D) for _ in range(K)])  # (K, D, D)
    elif covariance_type == "tied":
        covariances = random_spd(rng, D)  # (D, D)
    elif covariance_type == "diag":
        covariances = rng.uniform(0.1, 1.0, size=(K, D))  # (K, D)
    else:
        covariances = rng.uniform(0.1, 1.0, size=K)  # (K,)
    cov_shape = {"full": (K, D, D), "tied": (D, D), "diag": (K, D), "spherical": (K,)}
    true = _override(
        {"weights": pi, "means": means, "covariances": covariances},
        params,
        {"weights": (K,), "means": (K, D), "covariances": cov_shape[covariance_type]},
        "make_gmm_data",
    )
    _check_stochastic(true["weights"], "weights", "make_gmm_data")
    if covariance_type in ("diag", "spherical"):
        _check_positive(true["covariances"], "covariances", "make_gmm_data")
    try:
        chol = _cholesky_per_component(true["covariances"], covariance_type, K, D)  # (K, D, D)
    except np.linalg.LinAlgError:
        raise ValueError(
            "make_gmm_data: params['covariances'] must be symmetric positive definite."
        ) from None
    labels = rng.choice(K, size=N, p=true["weights"]).astype(np.int64)  # (N,)
    eps = rng.standard_normal((N, D))
    X = true["means"][labels] + np.einsum("nij,nj->ni", chol[labels], eps)  # (N, D)
    true["covariance_type"] = covariance_type
    return X, labels, true


def make_fa_data(
    n_samples,
    n_features,
    n_latent,
    noise="diag",
    noise_range=(0.1, 0.5),
    mean_scale=1.0,
    random_state=None,
    params=None,
):
    """Draws from a factor-analysis model with random, known parameters (Bishop 12.2.4).

    x_n = W z_n + mu + eps_n,  z_n ~ N(0, I_L),  eps_n ~ N(0, diag(psi)),
    so that x_n ~ N(mu, W W^T + diag(psi)).

    Parameters
    ----------
    n_samples, n_features, n_latent : N, D, L (L <= D)
    noise : "diag" (factor analysis, psi_d ~ U[noise_range]) or
        "isotropic" (probabilistic PCA: psi_d = sigma^2 ~ U[noise_range])
    noise_range : (low, high) of the noise variances
    mean_scale : mu ~ N(0, mean_scale^2 I_D)
    random_state : int, Generator or None
    params : dict, optional
        Known parameters to use instead of random ones: any of "W" (D, L),
        "noise_var" (D,) (positive), "mean" (D,).

    Returns
    -------
    X : (N, D) float64
    Z : (N, L) float64, the latent factors
    params : dict with "W" (D, L) with W_dl ~ N(0, 1), "noise_var" psi (D,),
        "mean" mu (D,), "covariance" W W^T + diag(psi) (D, D)
    """
    N = _positive_int(n_samples, "n_samples")
    D = _positive_int(n_features, "n_features")
    L = _positive_int(n_latent, "n_latent")
    if L > D:
        raise ValueError(f"n_latent (L={L}) must not exceed n_features (D={D}).")
    if noise not in ("diag", "isotropic"):
        raise ValueError(f"noise must be 'diag' or 'isotropic'; got {noise!r}.")
    low, high = (float(v) for v in noise_range)
    if not 0.0 < low <= high:
        raise ValueError(f"noise_range must be (low, high) with 0 < low <= high; got {noise_range!r}.")
    rng = as_generator(random_state)
    W = rng.standard_normal((D, L))  # (D, L)
    mu = float(mean_scale) * rng.standard_normal(D)  # (D,)
    if noise == "diag":
        noise_var = rng.uniform(low, high, size=D)  # (D,)
    else:
        noise_var = np.full(D, rng.uniform(low, high))
    true = _override(
        {"W": W, "noise_var": noise_var, "mean": mu},
        params,
        {"W": (D, L), "noise_var": (D,), "mean": (D,)},
        "make_fa_data",
    )
    _check_positive(true["noise_var"], "noise_var", "make_fa_data")
    W, noise_var, mu = true["W"], true["noise_var"], true["mean"]
    Z = rng.standard_normal((N, L))  # (N, L)
    eps = rng.standard_normal((N, D)) * np.sqrt(noise_var)  # (N, D)
    X = Z @ W.T + mu + eps
    true["covariance"] = W @ W.T + np.diag(noise_var)
    return X, Z, true


def _lengths(n_sequences, length):
    """(n_sequences,) int64 lengths from an int or a sequence of ints."""
    if isinstance(length, numbers.Integral) and not isinstance(length, bool):
        lengths = np.full(n_sequences, int(length), dtype=np.int64)
    else:
        lengths = np.asarray(length, dtype=np.int64).reshape(-1)
        if lengths.shape[0] != n_sequences:
            raise ValueError(
                f"length must be an int or {n_sequences} ints (one per sequence); got "
                f"{lengths.shape[0]} values."
            )
    if np.any(lengths < 1):
        raise ValueError(f"every sequence length must be >= 1; got {lengths.min()}.")
    return lengths


def _draw_categorical_rows(rng, P, prev):
    """z_n ~ Cat(P[prev_n]) for every n by inverse CDF: (n,) int64."""
    cdf = np.cumsum(P[prev], axis=1)  # (n, K)
    u = rng.random(prev.shape[0])[:, None] * cdf[:, -1:]
    return np.minimum((cdf <= u).sum(axis=1), P.shape[1] - 1).astype(np.int64)


def make_hmm_data(
    n_sequences,
    length,
    n_components,
    emission="gaussian",
    n_features=2,
    self_transition=0.8,
    separation=3.0,
    random_state=None,
    params=None,
):
    """Sequences from an HMM with random, known parameters (Rabiner 1989; Bishop 13.2).

    z_1 ~ Cat(pi), z_t | z_{t-1} ~ Cat(A[z_{t-1}]), x_t | z_t ~ p(x | theta_{z_t}).

    Parameters
    ----------
    n_sequences : number of independent sequences
    length : int (all sequences) or sequence of n_sequences ints
    n_components : K hidden states
    emission : "gaussian" (diagonal covariances), "categorical" or "poisson"
    n_features : D for "gaussian"/"poisson"; the number of symbols M for
        "categorical" (then X has one column of symbol ids)
    self_transition : expected A_kk; rows of A are
        self_transition * e_k + (1 - self_transition) * Dirichlet(1)
    separation : gaussian means mu_k ~ N(0, separation^2 I_D); poisson rates
        lambda_kd ~ U[0.5, 0.5 + separation * 2]
    random_state : int, Generator or None
    params : dict, optional
        Known parameters to use instead of random ones (same keys and
        shapes as the returned ``params``); missing keys are drawn at random.

    Returns
    -------
    X : (T, D) float64 (gaussian), (T, D) int64 counts (poisson) or (T, 1)
        int64 symbols (categorical), sequences concatenated
    lengths : (n_sequences,) int64, sum(lengths) == T
    states : (T,) int64 hidden states z_t
    params : dict with "startprob" (K,), "transmat" (K, K) and
        gaussian: "means" (K, D), "covars" (K, D) diagonal variances;
        categorical: "emissionprob" (K, M); poisson: "lambdas" (K, D)
    """
    n_seq = _positive_int(n_sequences, "n_sequences")
    K = _positive_int(n_components, "n_components")
    D = _positive_int(n_features, "n_features")
    if emission not in _EMISSIONS:
        raise ValueError(f"emission must be one of {_EMISSIONS}; got {emission!r}.")
    if not 0.0 <= float(self_transition) < 1.0:
        raise ValueError(f"self_transition must be in [0, 1); got {self_transition!r}.")
    lengths = _lengths(n_seq, length)
    rng = as_generator(random_state)
    a = float(self_transition)
    startprob = rng.dirichlet(np.ones(K))  # (K,)
    transmat = a * np.eye(K) + (1.0 - a) * rng.dirichlet(np.ones(K), size=K)  # (K, K)
    true = {"startprob": startprob, "transmat": transmat}
    shapes = {"startprob": (K,), "transmat": (K, K)}
    if emission == "gaussian":
        true["means"] = float(separation) * rng.standard_normal((K, D))
        true["covars"] = rng.uniform(0.2, 1.0, size=(K, D))
        shapes.update(means=(K, D), covars=(K, D))
    elif emission == "categorical":
        true["emissionprob"] = rng.dirichlet(np.full(D, 0.5), size=K)  # (K, M)
        shapes.update(emissionprob=(K, D))
    else:
        true["lambdas"] = rng.uniform(0.5, 0.5 + 2.0 * float(separation), size=(K, D))
        shapes.update(lambdas=(K, D))
    params = _override(true, params, shapes, "make_hmm_data")
    for key in ("startprob", "transmat", "emissionprob"):
        if key in params:
            _check_stochastic(params[key], key, "make_hmm_data")
    for key in ("covars", "lambdas"):
        if key in params:
            _check_positive(params[key], key, "make_hmm_data")
    startprob, transmat = params["startprob"], params["transmat"]

    # States: all sequences advance together, one time step at a time.
    T_max = int(lengths.max())
    Z = np.empty((n_seq, T_max), dtype=np.int64)  # (n_sequences, T_max)
    Z[:, 0] = _draw_categorical_rows(rng, startprob[None, :], np.zeros(n_seq, dtype=np.int64))
    for t in range(1, T_max):
        Z[:, t] = _draw_categorical_rows(rng, transmat, Z[:, t - 1])
    mask = np.arange(T_max)[None, :] < lengths[:, None]  # (n_sequences, T_max)
    states = Z[mask]  # (T,) row-major: sequence by sequence
    T = states.shape[0]

    if emission == "gaussian":
        eps = rng.standard_normal((T, D))
        X = params["means"][states] + np.sqrt(params["covars"][states]) * eps  # (T, D)
    elif emission == "categorical":
        X = _draw_categorical_rows(rng, params["emissionprob"], states).reshape(-1, 1)  # (T, 1)
    else:
        X = rng.poisson(params["lambdas"][states]).astype(np.int64)  # (T, D)
    return X, lengths, states, params
