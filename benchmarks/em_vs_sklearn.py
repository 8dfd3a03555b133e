"""Exact EM vs scikit-learn: GaussianMixture (full) and FactorAnalysis, side by side.

Configurations (BENCHMARKS.md, "Exact EM vs scikit-learn"):

* GMM: ``GaussianMixture(n_components=16, covariance_type="full")`` on 100,000 x 16
  synthetic data (16 clusters), 20 iterations, ``tol=0``; both sides start from the
  same ``weights_init`` / ``means_init`` / ``precisions_init``, so iteration t of
  one is iteration t of the other.  ratio = sklearn seconds / ours.  Per-iteration
  log-likelihoods: scikit-learn >= 1.6 records the mean log-likelihood of every
  E-step in ``lower_bounds_`` (ours: ``lower_bounds_`` too); ``ll_rel_diff`` is the
  largest relative difference over the 20 iterations.
* FA: 50,000 x 100 from a 10-factor model; scikit-learn's ``FactorAnalysis(10)``
  with its defaults (randomized-SVD updates, ``tol=1e-2``, psi = 1 start).  Ours
  starts from the same psi = 1 (and the W that maximises the likelihood for it,
  which is scikit-learn's first iterate: the first log-likelihoods agree).  The
  algorithms differ per iteration, so we first find the smallest number of our EM
  iterations whose log-likelihood reaches scikit-learn's final one, then time our
  ``fit`` with exactly that many iterations (``tol=0``).  ratio = sklearn wall
  time / ours; ``ll_rel_diff`` = the larger of the relative differences of the
  first log-likelihoods (same start) and of the final ones.

Both sides run in this process, alternating, on the same data, with the same
BLAS thread budget (``--threads``, through threadpoolctl); medians of
``--repeats`` (>= 3) runs.  The numba kernels are compiled before timing.

Usage: python benchmarks/em_vs_sklearn.py [--threads 2] [--repeats 3] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import time
import warnings

import numpy as np
from threadpoolctl import threadpool_limits


def make_gmm_data(N, D, K, seed=0):
    """K clusters with random means (scale 2) and random full covariances."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(K, D)) * 2.0
    factors = rng.normal(size=(K, D, D)) * 0.3 + np.eye(D)  # (K, D, D)
    labels = rng.integers(0, K, size=N)
    eps = rng.normal(size=(N, D))
    X = centers[labels] + np.einsum("nd,nde->ne", eps, factors[labels])
    return X


def gmm_start(X, K, seed=1):
    """Shared start: K random data points as means, equal weights, the data precision."""
    rng = np.random.default_rng(seed)
    means = X[rng.choice(X.shape[0], size=K, replace=False)]
    weights = np.full(K, 1.0 / K)
    precision = np.linalg.inv(np.cov(X, rowvar=False))
    precisions = np.repeat(precision[None], K, axis=0)  # (K, D, D)
    return weights, means, precisions


def make_fa_data(N, D, L, seed=2):
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(L, D))
    psi = rng.uniform(0.2, 2.0, size=D)
    Z = rng.normal(size=(N, L))
    return Z @ W + rng.normal(size=(N, D)) * np.sqrt(psi) + rng.normal(size=D)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def bench_gmm(args):
    from sklearn.mixture import GaussianMixture as SkGMM

    from lvm_core.models.gmm import GaussianMixture

    N, D, K, n_iter = (20_000, 16, 16, 20) if args.quick else (100_000, 16, 16, 20)
    X = make_gmm_data(N, D, K)
    w0, m0, p0 = gmm_start(X, K)
    common = dict(n_components=K, covariance_type="full", weights_init=w0, means_init=m0,
                  precisions_init=p0, max_iter=n_iter, tol=0.0)
    GaussianMixture(**{**common, "max_iter": 1}).fit(X[:2000])  # compile the numba kernels
    t_sk, t_us = [], []
    for _ in range(args.repeats):
        dt, sk = timed(lambda: SkGMM(**common).fit(X))
        t_sk.append(dt)
        dt, us = timed(lambda: GaussianMixture(**common).fit(X))
        t_us.append(dt)
    ll_sk = np.asarray(sk.lower_bounds_)
    ll_us = np.asarray(us.lower_bounds_)
    if ll_sk.shape != ll_us.shape:
        raise RuntimeError(f"iteration counts differ: sklearn {ll_sk.shape}, ours {ll_us.shape}")
    ll_rel = float(np.max(np.abs(ll_us - ll_sk) / np.abs(ll_sk)))
    par_rel = max(
        float(np.max(np.abs(us.means_ - sk.means_)) / np.max(np.abs(sk.means_))),
        float(np.max(np.abs(us.covariances_ - sk.covariances_)) / np.max(np.abs(sk.covariances_))),
        float(np.max(np.abs(us.weights_ - sk.weights_)) / np.max(sk.weights_)),
    )
    med_sk, med_us = statistics.median(t_sk), statistics.median(t_us)
    print(f"\nGMM full, N={N} D={D} K={K}, {n_iter} iterations, tol=0, {args.threads} BLAS thread(s)")
    print(f"{'':12s}{'median s':>10s}{'s/iter':>10s}   runs")
    print(f"{'sklearn':12s}{med_sk:10.3f}{med_sk / n_iter:10.4f}   " + " ".join(f"{t:.3f}" for t in t_sk))
    print(f"{'lvm_core':12s}{med_us:10.3f}{med_us / n_iter:10.4f}   " + " ".join(f"{t:.3f}" for t in t_us))
    print(f"mean log-likelihood per iteration (sklearn): first {ll_sk[0]:.10f}, last {ll_sk[-1]:.10f}")
    print(f"largest relative difference: log-likelihoods {ll_rel:.3e}, parameters {par_rel:.3e}")
    return med_sk / med_us, ll_rel


def bench_fa(args):
    from sklearn.decomposition import FactorAnalysis as SkFA

    from lvm_core.models.factor_analysis import FactorAnalysis

    N, D, L = (10_000, 100, 10) if args.quick else (50_000, 100, 10)
    X = make_fa_data(N, D, L)
    # 1) scikit-learn's run (defaults) and its final log-likelihood
    sk = SkFA(n_components=L).fit(X)
    target = float(sk.loglike_[-1])
    # 2) how many of our EM iterations reach it
    probe = FactorAnalysis(n_components=L, tol=0.0, max_iter=20_000)
    probe_fit = probe.fit(X)
    history = np.asarray(probe_fit.loglike_)
    reached = np.flatnonzero(history >= target)
    if reached.size == 0:
        raise RuntimeError(f"our EM never reached sklearn's final log-likelihood {target:.6f} "
                           f"(best {history.max():.6f})")
    n_iter = int(reached[0]) + 1
    t_sk, t_us = [], []
    for _ in range(args.repeats):
        dt, sk = timed(lambda: SkFA(n_components=L).fit(X))
        t_sk.append(dt)
        dt, us = timed(lambda: FactorAnalysis(n_components=L, tol=0.0, max_iter=n_iter).fit(X))
        t_us.append(dt)
    ll_first_rel = abs(us.loglike_[0] - sk.loglike_[0]) / abs(sk.loglike_[0])
    ll_final_rel = abs(us.loglike_[-1] - sk.loglike_[-1]) / abs(sk.loglike_[-1])
    ll_rel = max(ll_first_rel, ll_final_rel)
    med_sk, med_us = statistics.median(t_sk), statistics.median(t_us)
    print(f"\nFactor analysis, N={N} D={D} L={L}, {args.threads} BLAS thread(s)")
    print(f"sklearn: {sk.n_iter_} iterations (default tol), final log-likelihood {target:.6f}")
    print(f"lvm_core EM: reaches it after {n_iter} E-steps (log-likelihood {us.loglike_[-1]:.6f})")
    print(f"{'':12s}{'median s':>10s}   runs")
    print(f"{'sklearn':12s}{med_sk:10.3f}   " + " ".join(f"{t:.3f}" for t in t_sk))
    print(f"{'lvm_core':12s}{med_us:10.3f}   " + " ".join(f"{t:.3f}" for t in t_us))
    print(f"relative difference of log-likelihoods: first (same start) {ll_first_rel:.3e}, "
          f"final {ll_final_rel:.3e}")
    return med_sk / med_us, ll_rel


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="BLAS threads for both sides")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per side (>= 3)")
    parser.add_argument("--quick", action="store_true", help="smaller data (a smoke test)")
    args = parser.parse_args()
    warnings.simplefilter("ignore")  # sklearn's ConvergenceWarning at tol=0 / max_iter
    with threadpool_limits(limits=args.threads):
        gmm_ratio, gmm_ll = bench_gmm(args)
        fa_ratio, fa_ll = bench_fa(args)
    print()
    print(f"RESULT gmm ratio={gmm_ratio:.3f} ll_rel_diff={gmm_ll:.3e}")
    print(f"RESULT fa ratio={fa_ratio:.3f} ll_rel_diff={fa_ll:.3e}")


if __name__ == "__main__":
    main()
