"""Independent references for the HMM tests.

Nothing here calls lvm_core's HMM code: these are second opinions written from
the definitions, for problems small enough to check by brute force.

* :func:`brute_force` evaluates Rabiner (1989), eq. (17), literally:

      P(O | lambda) = sum over all K^T state paths q of
                      pi_{q_1} b_{q_1}(o_1) prod_{t>1} a_{q_{t-1} q_t} b_{q_t}(o_t),

  and reads the posteriors gamma_t(i) (eq. 27), the pair posteriors
  xi_t(i, j) (eq. 37), the Viterbi path (eq. 30-35: the single best path) and
  the partially labelled likelihood (the same sum restricted to the paths that
  agree with the known states) off the same table of path probabilities.
* Emission log-densities (categorical, Gaussian with the four covariance
  types, Gaussian mixture, Poisson) from their textbook formulas
  (Bishop, PRML, eqs. 2.43, 9.7; the Poisson pmf).
* Closed-form counting estimates from fully labelled state sequences
  (Rabiner 1989, eq. 40 with the expectations replaced by counts).
* Builders of hmmlearn 0.3 models with given parameters (hmmlearn is only a
  test-time reference; it is imported lazily by the callers).
"""
from __future__ import annotations

import itertools
import math

import numpy as np

__all__ = [
    "COVARIANCE_TYPES",
    "all_paths",
    "log_sum_exp",
    "brute_force",
    "brute_force_sequence",
    "path_log_joint",
    "categorical_log_frameprob",
    "gaussian_log_frameprob",
    "gmm_log_frameprob",
    "poisson_log_frameprob",
    "full_covars",
    "counting_estimates",
    "random_startprob",
    "random_transmat",
    "random_params",
    "random_X",
    "sample_hmm",
    "split_lengths",
    "best_permutation_accuracy",
    "hmmlearn_model",
    "lvm_model",
    "HMMLEARN_LETTERS",
    "clamped_hmmlearn",
    "hmmlearn_fit",
    "log_frameprob_of",
]

COVARIANCE_TYPES = ("diag", "full", "spherical", "tied")

#: our ``learn`` names -> hmmlearn's ``params`` letters
HMMLEARN_LETTERS = {
    "startprob": "s",
    "transmat": "t",
    "emissionprob": "e",
    "means": "m",
    "covars": "c",
    "weights": "w",
    "lambdas": "l",
}


# --------------------------------------------------------------------------
# brute force over all state paths
# --------------------------------------------------------------------------

def all_paths(K, T):
    """Every state path of length T over K states, shape (K**T, T), int64."""
    return np.array(list(itertools.product(range(K), repeat=T)), dtype=np.int64).reshape(-1, T)


def log_sum_exp(a, axis=None):
    """log(sum(exp(a))) along ``axis``; -inf when every term is -inf."""
    a = np.asarray(a, dtype=np.float64)
    m = np.max(a, axis=axis, keepdims=True)
    m_safe = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = np.log(np.sum(np.exp(a - m_safe), axis=axis, keepdims=True)) + m_safe
    return np.squeeze(out, axis=axis) if axis is not None else out.reshape(())[()]


def path_log_joint(log_startprob, log_transmat, log_frameprob, paths):
    """log p(x_1..T, q_1..T) for each row q of ``paths`` (P, T) -> (P,).

    log pi_{q_1} + sum_{t>1} log a_{q_{t-1} q_t} + sum_t log b_{q_t}(x_t).
    """
    paths = np.asarray(paths)
    T = paths.shape[1]
    out = np.asarray(log_startprob)[paths[:, 0]].astype(np.float64)
    for t in range(T):
        out = out + np.asarray(log_frameprob)[t, paths[:, t]]
        if t > 0:
            out = out + np.asarray(log_transmat)[paths[:, t - 1], paths[:, t]]
    return out


def brute_force_sequence(log_startprob, log_transmat, log_frameprob, states=None):
    """Everything about one sequence, by enumerating all K^T paths.

    Parameters
    ----------
    log_startprob : (K,)
    log_transmat : (K, K)
    log_frameprob : (T, K)
    states : (T,) int, optional
        Known states (-1 = unknown); only paths agreeing with them count.

    Returns
    -------
    dict with ``log_prob`` (float), ``posteriors`` (T, K), ``start`` (K,)
    (= posteriors[0]), ``xi_sum`` (K, K), ``viterbi_log_prob`` (float),
    ``viterbi_path`` (T,), ``map_path`` (T,).
    """
    log_frameprob = np.asarray(log_frameprob, dtype=np.float64)
    T, K = log_frameprob.shape
    if K ** T > 100_000:
        raise ValueError(f"brute force over {K}**{T} paths is too big; use it for tiny problems only.")
    paths = all_paths(K, T)  # (P, T)
    if states is not None:
        states = np.asarray(states)
        keep = np.all((states[None, :] < 0) | (paths == states[None, :]), axis=1)
        paths = paths[keep]
    log_joint = path_log_joint(log_startprob, log_transmat, log_frameprob, paths)  # (P,)
    log_prob = float(log_sum_exp(log_joint))
    with np.errstate(invalid="ignore"):
        weight = np.exp(log_joint - log_prob)  # (P,) posterior of each path
    posteriors = np.zeros((T, K))
    for t in range(T):
        np.add.at(posteriors[t], paths[:, t], weight)
    xi_sum = np.zeros((K, K))
    for t in range(1, T):
        np.add.at(xi_sum, (paths[:, t - 1], paths[:, t]), weight)
    best = int(np.argmax(log_joint))
    return {
        "log_prob": log_prob,
        "posteriors": posteriors,
        "start": posteriors[0].copy(),
        "xi_sum": xi_sum,
        "viterbi_log_prob": float(log_joint[best]),
        "viterbi_path": paths[best].copy(),
        "map_path": np.argmax(posteriors, axis=1),
        "paths": paths,
        "log_joint": log_joint,
    }


def split_lengths(lengths, T=None):
    """Start/stop row indices of each sequence: list of (start, stop)."""
    lengths = [T] if lengths is None else [int(n) for n in lengths]
    bounds = np.concatenate([[0], np.cumsum(lengths)])
    return [(int(bounds[i]), int(bounds[i + 1])) for i in range(len(lengths))]


def brute_force(log_startprob, log_transmat, log_frameprob, lengths=None, states=None):
    """:func:`brute_force_sequence` over several sequences, concatenated.

    Returns a dict with ``log_prob`` (S,), ``posteriors`` (T, K),
    ``start_sum`` (K,), ``xi_sum`` (K, K), ``viterbi_log_prob`` (S,),
    ``viterbi_path`` (T,), ``map_path`` (T,), ``map_score`` (float: hmmlearn's
    "map" decode score, the sum over t of max_k gamma_t(k)).
    """
    log_frameprob = np.asarray(log_frameprob, dtype=np.float64)
    T, K = log_frameprob.shape
    parts = []
    for start, stop in split_lengths(lengths, T):
        st = None if states is None else np.asarray(states)[start:stop]
        parts.append(brute_force_sequence(log_startprob, log_transmat,
                                          log_frameprob[start:stop], st))
    posteriors = np.concatenate([p["posteriors"] for p in parts])
    return {
        "log_prob": np.array([p["log_prob"] for p in parts]),
        "posteriors": posteriors,
        "start_sum": sum(p["start"] for p in parts),
        "xi_sum": sum(p["xi_sum"] for p in parts),
        "viterbi_log_prob": np.array([p["viterbi_log_prob"] for p in parts]),
        "viterbi_path": np.concatenate([p["viterbi_path"] for p in parts]),
        "map_path": np.argmax(posteriors, axis=1),
        "map_score": float(np.sum(np.max(posteriors, axis=1))),
        "sequences": parts,
    }


# --------------------------------------------------------------------------
# emission log-densities, from the formulas
# --------------------------------------------------------------------------

def categorical_log_frameprob(X, emissionprob):
    """log b_k(x_t) = log B[k, x_t]; X (T,) or (T, 1) ints -> (T, K)."""
    x = np.asarray(X).reshape(-1)
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(emissionprob, dtype=np.float64)[:, x].T)


def full_covars(covars, covariance_type, K, D):
    """Compact covariances (GaussianMixture layout) -> (K, D, D)."""
    covars = np.asarray(covars, dtype=np.float64)
    if covariance_type == "full":
        return covars.reshape(K, D, D).copy()
    if covariance_type == "diag":
        return np.stack([np.diag(c) for c in covars.reshape(K, D)])
    if covariance_type == "spherical":
        return covars.reshape(K)[:, None, None] * np.eye(D)[None]
    if covariance_type == "tied":
        return np.broadcast_to(covars.reshape(D, D), (K, D, D)).copy()
    raise ValueError(covariance_type)


def _gaussian_log_density(X, mu, sigma):
    """log N(x | mu, Sigma) for each row of X (T, D) -> (T,) (PRML eq. 2.43)."""
    D = X.shape[1]
    diff = X - mu  # (T, D)
    sign, logdet = np.linalg.slogdet(sigma)
    if sign <= 0:
        raise ValueError("covariance not positive definite")
    maha = np.sum(diff * np.linalg.solve(sigma, diff.T).T, axis=1)
    return -0.5 * (D * math.log(2.0 * math.pi) + logdet + maha)


def gaussian_log_frameprob(X, means, covars, covariance_type):
    """log N(x_t | mu_k, Sigma_k), X (T, D) -> (T, K)."""
    X = np.asarray(X, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    K, D = means.shape
    sigmas = full_covars(covars, covariance_type, K, D)
    return np.stack([_gaussian_log_density(X, means[k], sigmas[k]) for k in range(K)], axis=1)


def gmm_log_frameprob(X, weights, means, covars, covariance_type):
    """log sum_m w_km N(x_t | mu_km, Sigma_km) (PRML eq. 9.7), -> (T, K).

    Compact covariances as hmmlearn's GMMHMM: diag (K, M, D), full
    (K, M, D, D), spherical (K, M), tied (K, D, D) (one matrix per state,
    shared by its M components).
    """
    X = np.asarray(X, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    means = np.asarray(means, dtype=np.float64)
    covars = np.asarray(covars, dtype=np.float64)
    K, M, D = means.shape
    out = np.empty((X.shape[0], K))
    for k in range(K):
        if covariance_type == "tied":
            sig = np.broadcast_to(covars[k], (M, D, D))
        else:
            sig = full_covars(covars[k], covariance_type, M, D)
        with np.errstate(divide="ignore"):
            terms = np.stack([np.log(weights[k, m]) + _gaussian_log_density(X, means[k, m], sig[m])
                              for m in range(M)], axis=1)  # (T, M)
        out[:, k] = log_sum_exp(terms, axis=1)
    return out


def poisson_log_frameprob(X, lambdas):
    """sum_d [x_d log lambda_kd - lambda_kd - log x_d!], X (T, D) -> (T, K)."""
    X = np.asarray(X, dtype=np.float64)
    lambdas = np.asarray(lambdas, dtype=np.float64)
    log_fact = np.vectorize(lambda v: math.lgamma(v + 1.0))(X) if X.size else X
    return (X @ np.log(lambdas).T - np.sum(lambdas, axis=1)[None, :]
            - np.sum(log_fact, axis=1, keepdims=True))


# --------------------------------------------------------------------------
# closed-form estimates and scores
# --------------------------------------------------------------------------

def counting_estimates(states, lengths, K):
    """startprob (K,) and transmat (K, K) from fully known state paths.

    pi_i = #(sequences starting in i) / S;  a_ij = #(i -> j) / #(i -> .).
    """
    states = np.asarray(states)
    start = np.zeros(K)
    trans = np.zeros((K, K))
    for lo, hi in split_lengths(lengths, len(states)):
        start[states[lo]] += 1
        for t in range(lo + 1, hi):
            trans[states[t - 1], states[t]] += 1
    return start / start.sum(), trans / trans.sum(axis=1, keepdims=True)


def best_permutation_accuracy(true_states, pred_states, K):
    """Fraction of time steps right, under the best relabelling of pred."""
    true_states = np.asarray(true_states)
    pred_states = np.asarray(pred_states)
    best = 0.0
    for perm in itertools.permutations(range(K)):
        acc = float(np.mean(np.asarray(perm)[pred_states] == true_states))
        best = max(best, acc)
    return best


# --------------------------------------------------------------------------
# random problems
# --------------------------------------------------------------------------

def random_startprob(rng, K):
    return rng.dirichlet(np.full(K, 2.0))


def random_transmat(rng, K):
    return rng.dirichlet(np.full(K, 2.0), size=K)


def random_params(rng, kind, K, D=2, n_features=4, n_mix=2, covariance_type="diag"):
    """A dict of well-conditioned random parameters for one model kind.

    ``kind`` is one of "categorical", "gaussian", "gmm", "poisson".
    Gaussian / GMM covariances come in the compact layout of ``covariance_type``.
    """
    p = {"startprob_": random_startprob(rng, K), "transmat_": random_transmat(rng, K)}
    if kind == "categorical":
        p["emissionprob_"] = rng.dirichlet(np.full(n_features, 2.0), size=K)
    elif kind == "gaussian":
        p["means_"] = rng.normal(scale=2.0, size=(K, D))
        if covariance_type == "diag":
            p["covars_"] = rng.uniform(0.5, 2.0, size=(K, D))
        elif covariance_type == "spherical":
            p["covars_"] = rng.uniform(0.5, 2.0, size=K)
        elif covariance_type == "full":
            A = rng.normal(size=(K, D, D))
            p["covars_"] = A @ np.swapaxes(A, 1, 2) / D + 0.5 * np.eye(D)
        elif covariance_type == "tied":
            A = rng.normal(size=(D, D))
            p["covars_"] = A @ A.T / D + 0.5 * np.eye(D)
    elif kind == "gmm":
        p["weights_"] = rng.dirichlet(np.full(n_mix, 2.0), size=K)
        p["means_"] = rng.normal(scale=2.0, size=(K, n_mix, D))
        if covariance_type == "diag":
            p["covars_"] = rng.uniform(0.5, 2.0, size=(K, n_mix, D))
        elif covariance_type == "spherical":
            p["covars_"] = rng.uniform(0.5, 2.0, size=(K, n_mix))
        elif covariance_type == "full":
            A = rng.normal(size=(K, n_mix, D, D))
            p["covars_"] = A @ np.swapaxes(A, -1, -2) / D + 0.5 * np.eye(D)
        elif covariance_type == "tied":
            A = rng.normal(size=(K, D, D))
            p["covars_"] = A @ np.swapaxes(A, -1, -2) / D + 0.5 * np.eye(D)
    elif kind == "poisson":
        p["lambdas_"] = rng.uniform(0.5, 6.0, size=(K, D))
    else:
        raise ValueError(kind)
    return p


def random_X(rng, kind, T, D=2, n_features=4):
    """Observations of the right kind (not from the model: any data will do)."""
    if kind == "categorical":
        return rng.integers(0, n_features, size=(T, 1))
    if kind == "poisson":
        return rng.poisson(3.0, size=(T, D))
    return rng.normal(scale=2.0, size=(T, D))


def log_frameprob_of(kind, X, params, covariance_type="diag"):
    """Reference (T, K) emission log-densities for ``params`` of ``kind``."""
    if kind == "categorical":
        return categorical_log_frameprob(X, params["emissionprob_"])
    if kind == "gaussian":
        return gaussian_log_frameprob(X, params["means_"], params["covars_"], covariance_type)
    if kind == "gmm":
        return gmm_log_frameprob(X, params["weights_"], params["means_"], params["covars_"],
                                 covariance_type)
    if kind == "poisson":
        return poisson_log_frameprob(X, params["lambdas_"])
    raise ValueError(kind)


def sample_hmm(rng, startprob, transmat, emit, lengths):
    """Draw state paths by the Markov chain and observations by ``emit(k, rng)``.

    Returns ``(X, states)`` with X stacked over time.
    """
    K = len(startprob)
    xs, zs = [], []
    for n in lengths:
        z = rng.choice(K, p=startprob)
        for t in range(n):
            if t > 0:
                z = rng.choice(K, p=transmat[z])
            zs.append(z)
            xs.append(emit(z, rng))
    return np.asarray(xs), np.asarray(zs, dtype=np.int64)


# --------------------------------------------------------------------------
# model builders (same parameters on both sides)
# --------------------------------------------------------------------------

_KIND_TO_CLASS = {
    "categorical": "CategoricalHMM",
    "gaussian": "GaussianHMM",
    "gmm": "GMMHMM",
    "poisson": "PoissonHMM",
}


def _set_params(model, params):
    """Assign copies of ``params`` (NumPy arrays are copied; arrays of other
    namespaces are assigned as they are)."""
    for name, value in params.items():
        if isinstance(value, np.ndarray) or np.isscalar(value):
            value = np.array(value, copy=True)
        setattr(model, name, value)
    return model


def hmmlearn_model(kind, params, K, n_iter=1, learn=None, **hyper):
    """An hmmlearn model with ``params`` set and no initialisation at fit.

    ``learn``: our parameter names (default: all), translated to hmmlearn's
    ``params`` letters.  ``hyper``: constructor arguments shared by both
    libraries (priors, covariance_type, n_features, n_mix, ...).
    """
    from hmmlearn import hmm

    cls = getattr(hmm, _KIND_TO_CLASS[kind])
    if learn is None:
        letters = None
    else:
        letters = "".join(HMMLEARN_LETTERS[name] for name in learn)
    kwargs = dict(n_components=K, n_iter=n_iter, tol=-np.inf if n_iter > 1 else 1e-2,
                  init_params="", implementation="log", **hyper)
    if letters is not None:
        kwargs["params"] = letters
    model = cls(**kwargs)
    return _set_params(model, params)


def lvm_model(kind, params, K, n_iter=1, learn=None, tol=0.0, **hyper):
    """Our model with ``params`` set and ``init=()`` (nothing re-initialised)."""
    from lvm_core.models import hmm as lvm_hmm

    cls = getattr(lvm_hmm, _KIND_TO_CLASS[kind])
    kwargs = dict(n_components=K, n_iter=n_iter, tol=tol, init=(), **hyper)
    if learn is not None:
        kwargs["learn"] = tuple(learn)
    model = cls(**kwargs)
    return _set_params(model, params)


def clamped_hmmlearn(model, label_chunks):
    """Turn an hmmlearn model into a partially-labelled one, for reference.

    ``label_chunks``: one int array per sequence (-1 = unknown).  During each
    E-step, sequence s gets log b_k(x_t) = -inf for k != states[t] wherever
    states[t] >= 0 (the clamping of the task's ``fit(..., states=...)``);
    hmmlearn's own forward-backward and M-step do the rest.  Works by
    swapping the instance's class for a subclass; ``score`` etc. stay
    unclamped.
    """
    base = type(model)

    class Clamped(base):
        def _estep_begin(self):
            super()._estep_begin()
            self._label_iter = iter(label_chunks)

        def _fit_log(self, X):
            self._labels = next(self._label_iter)
            try:
                return super()._fit_log(X)
            finally:
                self._labels = None

        def _compute_log_likelihood(self, X):
            log_frameprob = super()._compute_log_likelihood(X)
            labels = getattr(self, "_labels", None)
            if labels is not None:
                known = labels >= 0
                mask = np.zeros_like(log_frameprob, dtype=bool)
                mask[known] = True
                mask[np.flatnonzero(known), labels[known]] = False
                log_frameprob = np.where(mask, -np.inf, log_frameprob)
            return log_frameprob

    Clamped.__name__ = "Clamped" + base.__name__
    model.__class__ = Clamped
    return model


def hmmlearn_fit(model, X, lengths):
    """hmmlearn's ``fit``, for our purpose: EM from the parameters already set.

    For GMMHMM, hmmlearn's ``_init`` runs k-means even with ``init_params=""``
    (slow, and failing on fewer samples than states), so its fit loop is
    replayed without ``_init``: ``_check`` (which also fills in the prior
    defaults and shapes), then ``_do_estep`` / ``_do_mstep`` and the monitor,
    in the order of ``BaseHMM.fit``.  Other models use ``fit`` itself.
    """
    from hmmlearn.hmm import GMMHMM

    if not isinstance(model, GMMHMM):
        return model.fit(X, lengths)
    model._check()
    model.monitor_._reset()
    for _ in range(model.n_iter):
        stats, log_prob = model._do_estep(X, lengths)
        model._do_mstep(stats)
        model.monitor_.report(log_prob)
        if model.monitor_.converged:
            break
    return model
