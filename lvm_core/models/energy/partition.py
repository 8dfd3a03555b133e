"""Partition functions of restricted Boltzmann machines: exact sums, AIS and reverse AIS.

References: Neal (2001), "Annealed importance sampling"; Salakhutdinov &
Murray (2008), "On the quantitative analysis of deep belief networks";
Burda, Grosse & Salakhutdinov (2015), "Accurate and conservative estimates of
MRF log-likelihood using reverse annealing"; Goodfellow, Bengio & Courville,
*Deep Learning* (2016), sec. 18.7.

Binary RBM, v in {0,1}^D, h in {0,1}^H, E(v, h) = -b.v - c.h - v^T W h::

    log Z = logsumexp_v [b.v + sum_j softplus(c_j + (v W)_j)]          (sum over 2^D)
          = logsumexp_h [c.h + sum_i softplus(b_i + (W h)_i)]          (sum over 2^H)

Gaussian-Bernoulli RBM (Cho, Raiko & Ilin 2011), sigma_i^2 = exp(log_var_i),
E(v, h) = sum_i (v_i - b_i)^2 / (2 sigma_i^2) - c.h - (v / sigma^2)^T W h::

    log Z = D/2 log 2 pi + 1/2 sum_i log_var_i
            + logsumexp_h [c.h + sum_i ((b_i + (W h)_i)^2 - b_i^2) / (2 sigma_i^2)].

Annealed importance sampling between a base model p_0 with a known Z_0 and
the target p_K = p through p_k(v) = f_k(v) / Z_k, k = 0..K, with inverse
temperatures 0 = beta_0 < ... < beta_K = 1.  The paths (hidden units summed out):

    binary    f_beta(v) = (1 - beta) b_A.v + beta b.v + sum_j softplus(beta (c_j + (v W)_j)),
              log Z_0 = sum_i softplus(b_A,i) + H log 2,
    Gaussian  f_beta(v) = -sum_i (v_i - b_i)^2 / (2 sigma_i^2)
                          + sum_j softplus(beta (c_j + (v / sigma^2) W)_j),
              log Z_0 = D/2 log 2 pi + 1/2 sum_i log_var_i + H log 2,

where b_A holds the base rates log(m / (1 - m)) of the data (Salakhutdinov &
Murray's choice; zeros without data).  A run draws v_0 ~ p_0, then
v_k ~ T_k(. | v_{k-1}) (one block Gibbs sweep leaving p_k invariant) and

    log w = sum_{k=1}^{K} [log f_k(v_{k-1}) - log f_{k-1}(v_{k-1})],   E[w] = Z_K / Z_0.

With M runs, log Z ~ log Z_0 + log mean_m w_m; the standard error of the mean
weight gives the error bar (delta method: sd(log Z) ~ sd(w) / (sqrt(M) mean(w)))
and the interval log(mean(w) -/+ 3 sd(w)/sqrt(M)).  By Jensen's inequality the
estimate is a stochastic *lower* bound on log Z (E[log Z_hat] <= log Z), so
log-likelihoods computed with it tend to be too high.

Reverse AIS (Burda et al. 2015) runs the same chain backwards from samples of
the target p_K: v_K ~ p_K, v_{k-1} ~ T_{k-1}(. | v_k) and

    log w_rev = sum_{k=1}^{K} [log f_{k-1}(v_k) - log f_k(v_k)],   E[w_rev] = Z_0 / Z_K,

so log Z ~ log Z_0 - log mean w_rev is a stochastic *upper* bound on log Z when
the starting states are exact samples: the bound from the other side.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ... import ops
from ...backend import get_namespace, item
from ...functional.activations import softplus
from ...functional.reductions import logsumexp
from ...random import as_generator, normal
from ...validation import check_positive_int

__all__ = [
    "PartitionEstimate",
    "ais_betas",
    "all_binary_states",
    "exact_log_partition",
    "exact_log_partition_gaussian",
    "BinaryPath",
    "GaussianPath",
    "ais_log_partition",
    "reverse_ais_log_partition",
]

MAX_EXACT_UNITS = 20  # 2^20 configurations: about a second per 100 units of the other layer
_ENUM_CHUNK = 4096  # configurations per block of the exact sums


class PartitionEstimate(NamedTuple):
    """log Z with its uncertainty.

    ``log_z``: the estimate; ``log_z_std``: its standard error (0 when exact);
    ``log_z_low`` / ``log_z_high``: log(mean w -/+ 3 sd(w)/sqrt(M)) mapped to log Z
    (``-inf`` when the lower end of the interval of the mean weight is <= 0);
    ``method``: ``"exact"``, ``"ais"`` or ``"reverse_ais"``; ``log_weights``: the
    M log importance weights (None when exact).
    """

    log_z: float
    log_z_std: float
    log_z_low: float
    log_z_high: float
    method: str
    log_weights: object = None


# --------------------------------------------------------------------------- exact sums
def all_binary_states(K, like, start=0, stop=None):
    """Rows start..stop-1 of the 2^K binary configurations, (stop - start, K).

    Row r is the binary expansion of r (unit k = bit k), on the device and in
    the dtype of ``like``.
    """
    xp = get_namespace(like)
    stop = 2 ** K if stop is None else stop
    codes = np.arange(start, stop, dtype=np.int64)[:, None]  # (R, 1)
    bits = ((codes >> np.arange(K, dtype=np.int64)[None, :]) & 1).astype(np.float64)  # (R, K)
    return xp.asarray(bits, dtype=like.dtype, device=like.device)


def _check_enumerable(K, what):
    if K > MAX_EXACT_UNITS:
        raise ValueError(
            f"exact log Z sums over 2^{K} configurations of the {what}; at most "
            f"2^{MAX_EXACT_UNITS} are enumerated. Use ais_log_partition (or an RBM with "
            f"at most {MAX_EXACT_UNITS} units in one layer)."
        )


def exact_log_partition(W, b, c):
    """log Z of a binary RBM by enumerating the smaller layer (<= 20 units).

    Over h (H <= D): log Z = logsumexp_h [c.h + sum_i softplus(b_i + (W h)_i)];
    over v (D < H):  log Z = logsumexp_v [b.v + sum_j softplus(c_j + (v W)_j)].
    W (D, H), b (D,), c (H,).  Returns a Python float.
    """
    D, H = W.shape
    if H > D:
        W, b, c = W.T, c, b  # enumerate the visible layer: the same sum with roles swapped
        D, H = H, D
    _check_enumerable(H, "smaller layer")
    xp = get_namespace(W, b, c)
    blocks = []
    for start in range(0, 2 ** H, _ENUM_CHUNK):
        h = all_binary_states(H, W, start, min(start + _ENUM_CHUNK, 2 ** H))  # (R, H)
        a = xp.matmul(h, W.T) + b  # (R, D)
        log_f = xp.matmul(h, c) + xp.sum(softplus(a), axis=1)  # (R,)
        blocks.append(logsumexp(log_f, axis=0))
    return item(logsumexp(xp.stack(blocks), axis=0))


def exact_log_partition_gaussian(W, b, c, log_var):
    """log Z of a Gaussian-Bernoulli RBM by enumerating the hidden layer (H <= 20).

    log Z = D/2 log 2 pi + 1/2 sum_i log_var_i
            + logsumexp_h [c.h + sum_i ((b_i + (W h)_i)^2 - b_i^2) / (2 sigma_i^2)].
    """
    D, H = W.shape
    _check_enumerable(H, "hidden layer")
    xp = get_namespace(W, b, c, log_var)
    inv_var = xp.exp(-log_var)  # (D,)
    blocks = []
    for start in range(0, 2 ** H, _ENUM_CHUNK):
        h = all_binary_states(H, W, start, min(start + _ENUM_CHUNK, 2 ** H))  # (R, H)
        m = xp.matmul(h, W.T) + b  # (R, D): mean of p(v | h)
        log_f = xp.matmul(h, c) + 0.5 * xp.sum((m * m - b * b) * inv_var, axis=1)
        blocks.append(logsumexp(log_f, axis=0))
    const = 0.5 * D * math.log(2.0 * math.pi) + 0.5 * item(xp.sum(log_var))
    return const + item(logsumexp(xp.stack(blocks), axis=0))


# --------------------------------------------------------------------------- AIS paths
def ais_betas(n_betas):
    """Inverse temperatures 0 = beta_0 < ... < beta_K = 1, K = ``n_betas`` - 1.

    Salakhutdinov & Murray (2008) used 500 steps on [0, 0.5), 4,000 on [0.5, 0.9)
    and 10,000 on [0.9, 1]: finer where the distributions change fastest.  The
    same proportions are kept for any ``n_betas`` >= 4 (a NumPy float64 array).
    """
    n_betas = check_positive_int(n_betas, "n_betas", minimum=4)
    n1 = max(1, round(n_betas * 500 / 14500))
    n2 = max(1, round(n_betas * 4000 / 14500))
    n3 = n_betas - n1 - n2
    return np.concatenate([
        np.linspace(0.0, 0.5, n1, endpoint=False),
        np.linspace(0.5, 0.9, n2, endpoint=False),
        np.linspace(0.9, 1.0, n3),
    ])


class BinaryPath:
    """The tempered family of a binary RBM with a base-rate base model (see module doc).

    W (D, H), b (D,), c (H,), b_base (D,) the base model's visible biases.
    Visible states are binary, so the products with W use
    :func:`lvm_core.ops.gibbs.binary_matmul`.
    """

    def __init__(self, W, b, c, b_base):
        self.W, self.b, self.c, self.b_base = W, b, c, b_base
        self.xp = get_namespace(W, b, c, b_base)

    def log_z_base(self):
        """log Z_0 = sum_i softplus(b_A,i) + H log 2."""
        return item(self.xp.sum(softplus(self.b_base))) + self.W.shape[1] * math.log(2.0)

    def sample_base(self, M, rng):
        """M draws v ~ p_0: independent Bernoulli(sigmoid(b_A)), (M, D)."""
        p = self.xp.broadcast_to(_sigmoid(self.b_base), (M, self.W.shape[0]))
        return _bernoulli(p, rng)

    def hidden_input(self, v):
        """a = c + v W, (M, H)."""
        return self.xp.matmul(v, self.W) + self.c

    def log_f(self, v, a, beta):
        """log f_beta(v) = (1 - beta) b_A.v + beta b.v + sum_j softplus(beta a_j), (M,)."""
        xp = self.xp
        bias = (1.0 - beta) * self.b_base + beta * self.b  # (D,)
        return xp.matmul(v, bias) + xp.sum(softplus(beta * a), axis=1)

    def gibbs(self, a, beta, rng):
        """One sweep of T_beta given a = c + v W: h ~ p_beta(h | v), then v ~ p_beta(v | h)."""
        xp = self.xp
        h = _bernoulli(_sigmoid(beta * a), rng)  # (M, H)
        logits = xp.matmul(h, self.W.T) * beta + (beta * self.b + (1.0 - beta) * self.b_base)
        return _bernoulli(_sigmoid(logits), rng)  # (M, D)


class GaussianPath:
    """The tempered family of a Gaussian-Bernoulli RBM: the coupling and hidden biases
    are scaled by beta, the visible Gaussian N(b, sigma^2) is shared (see module doc)."""

    def __init__(self, W, b, c, log_var):
        self.W, self.b, self.c, self.log_var = W, b, c, log_var
        self.xp = get_namespace(W, b, c, log_var)
        self.inv_var = self.xp.exp(-log_var)
        self.sd = self.xp.exp(0.5 * log_var)

    def log_z_base(self):
        """log Z_0 = D/2 log 2 pi + 1/2 sum_i log_var_i + H log 2."""
        D, H = self.W.shape
        return (0.5 * D * math.log(2.0 * math.pi) + 0.5 * item(self.xp.sum(self.log_var))
                + H * math.log(2.0))

    def sample_base(self, M, rng):
        """M draws v ~ N(b, sigma^2), (M, D)."""
        return self.b + self.sd * normal(rng, (M, self.W.shape[0]), like=self.W)

    def hidden_input(self, v):
        """a = c + (v / sigma^2) W, (M, H)."""
        return self.xp.matmul(v * self.inv_var, self.W) + self.c

    def log_f(self, v, a, beta):
        """log f_beta(v) = -sum_i (v_i - b_i)^2 / (2 sigma_i^2) + sum_j softplus(beta a_j)."""
        xp = self.xp
        r = v - self.b
        return -0.5 * xp.sum(r * r * self.inv_var, axis=1) + xp.sum(softplus(beta * a), axis=1)

    def gibbs(self, a, beta, rng):
        """h ~ Bernoulli(sigmoid(beta a)), then v ~ N(b + beta W h, sigma^2)."""
        xp = self.xp
        h = _bernoulli(_sigmoid(beta * a), rng)
        mean = self.b + beta * xp.matmul(h, self.W.T)
        return mean + self.sd * normal(rng, tuple(mean.shape), like=mean)


# --------------------------------------------------------------------------- estimators
def _summarise(log_w, log_z_base, sign, method):
    """log Z = log Z_0 + sign * log mean(w), with the delta-method error bar."""
    lw = np.asarray(log_w, dtype=np.float64)
    M = lw.size
    shift = float(np.max(lw))
    w = np.exp(lw - shift)
    mean = float(np.mean(w))
    se = float(np.std(w, ddof=1)) / math.sqrt(M) if M > 1 else math.inf
    log_mean = shift + math.log(mean)
    std = se / mean
    hi_w = shift + math.log(mean + 3.0 * se) if math.isfinite(se) else math.inf
    lo_w = shift + math.log(mean - 3.0 * se) if mean - 3.0 * se > 0 else -math.inf
    if sign > 0:
        return PartitionEstimate(log_z_base + log_mean, std, log_z_base + lo_w,
                                 log_z_base + hi_w, method, lw)
    return PartitionEstimate(log_z_base - log_mean, std, log_z_base - hi_w,
                             log_z_base - lo_w, method, lw)


def ais_log_partition(path, n_runs=100, n_betas=1000, rng=None, betas=None):
    """Annealed importance sampling estimate of log Z (Neal 2001; Salakhutdinov & Murray 2008).

    ``path``: a :class:`BinaryPath` or :class:`GaussianPath`; ``n_runs`` M parallel
    runs; ``betas``: an increasing schedule from 0 to 1 (default
    :func:`ais_betas` (``n_betas``)).  Returns a :class:`PartitionEstimate` with
    log Z = log Z_0 + log mean_m w_m and
    log w_m = sum_k [log f_{beta_k}(v_{k-1}) - log f_{beta_{k-1}}(v_{k-1})].
    """
    n_runs = check_positive_int(n_runs, "n_runs", minimum=2)
    betas = _check_betas(ais_betas(n_betas) if betas is None else betas)
    rng = as_generator(rng)
    v = path.sample_base(n_runs, rng)
    log_w = 0.0
    for k in range(1, len(betas)):
        a = path.hidden_input(v)  # (M, H)
        log_w = log_w + path.log_f(v, a, betas[k]) - path.log_f(v, a, betas[k - 1])
        if k < len(betas) - 1:
            v = path.gibbs(a, betas[k], rng)
    from ...backend import to_numpy

    return _summarise(to_numpy(log_w), path.log_z_base(), +1, "ais")


def reverse_ais_log_partition(path, v_init, n_betas=1000, rng=None, betas=None):
    """Reverse AIS estimate of log Z from samples ``v_init`` (M, D) of the target
    (Burda, Grosse & Salakhutdinov 2015).

    log w_rev = sum_{k=1}^{K} [log f_{k-1}(v_k) - log f_k(v_k)], v_K = v_init,
    v_{k-1} ~ T_{k-1}(. | v_k); log Z = log Z_0 - log mean_m w_rev,m.  With exact
    samples this is a stochastic upper bound on log Z.  Start from states of
    long Gibbs chains (e.g. a PCD model's chains) when exact samples are not
    available.
    """
    betas = _check_betas(ais_betas(n_betas) if betas is None else betas)
    if v_init.ndim != 2 or v_init.shape[0] < 2 or v_init.shape[1] != path.W.shape[0]:
        raise ValueError(
            f"v_init must be a (M, D) array of M >= 2 samples of the model with D = "
            f"{path.W.shape[0]}; got shape {tuple(v_init.shape)}."
        )
    rng = as_generator(rng)
    v = v_init
    log_w = 0.0
    for k in range(len(betas) - 1, 0, -1):
        a = path.hidden_input(v)
        log_w = log_w + path.log_f(v, a, betas[k - 1]) - path.log_f(v, a, betas[k])
        if k > 1:
            v = path.gibbs(a, betas[k - 1], rng)
    from ...backend import to_numpy

    return _summarise(to_numpy(log_w), path.log_z_base(), -1, "reverse_ais")


def _sigmoid(x):
    """sigmoid(x) = 1 / (1 + exp(-x)) = (1 + tanh(x / 2)) / 2: no overflow, three
    elementwise passes (the Gibbs conditionals; absolute error ~ eps of the dtype)."""
    xp = get_namespace(x)
    return 0.5 * xp.tanh(0.5 * x) + 0.5


def _bernoulli(p, rng):
    """Binary draws 1[u < p] in p's dtype, u ~ U(0, 1) (:func:`lvm_core.ops.bernoulli_sample`)."""
    return ops.bernoulli_sample(p, rng)


def _check_betas(betas):
    betas = np.asarray(betas, dtype=np.float64)
    if betas.ndim != 1 or betas.size < 2 or betas[0] != 0.0 or betas[-1] != 1.0 \
            or np.any(np.diff(betas) <= 0):
        raise ValueError(
            "betas must be an increasing 1-D schedule from 0 to 1 with at least 2 entries; "
            f"got {betas!r:.80}. Use lvm_core.models.energy.ais_betas(n)."
        )
    return [float(x) for x in betas]
