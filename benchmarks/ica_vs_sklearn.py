"""Linear factor models vs scikit-learn: FastICA and Lasso sparse coding, side by side;
plus the SFA check on the Wiskott-Sejnowski signal.

* FastICA: 100,000 x 16 mixed sources (Laplace, uniform, and signed square roots of
  exponentials, mixed by a random 16 x 16 matrix).  Both sides: parallel algorithm,
  logcosh contrast, ``whiten="unit-variance"``, ``tol=1e-4``, ``max_iter=200`` and
  the same ``w_init``.  Ours whitens by eigendecomposition of the covariance and
  starts the iteration from a 10,000-row subsample (its defaults,
  ``n_subsample="auto"``; the iteration then runs on all rows to the same
  tolerance); ``ratio_no_subsample`` times ``n_subsample=None``.  scikit-learn
  runs with both of its whitening solvers ("svd", its default, and "eigh") and the
  ratio uses the faster of the two: ratio = min(sklearn svd, sklearn eigh) seconds
  / ours.  ``amari_*`` is the Amari
  index of the fitted unmixing matrix times the true mixing matrix (0 = perfect).
* Sparse coding: 10,000 random 8 x 8 grey-level patches (DC removed, unit overall
  standard deviation) of scikit-learn's sample images, a 256-atom dictionary learned
  beforehand (our DictionaryLearning, one minibatch epoch on 20,000 other patches;
  not timed), alpha = ``--alpha`` (default 1).  scikit-learn:
  ``sparse_encode(X, dictionary, algorithm="lasso_cd", alpha=alpha)`` with its
  defaults (it divides alpha by the 64 features and minimises the objective / 64:
  the same minimiser).  Ours: ``sparse_encode(..., algorithm="fista", tol=...)``
  with its defaults: per-row FISTA with backtracking, adaptive restart and the
  support polish (an exact solve on a stable support, accepted when it satisfies
  the Lasso optimality conditions).  Plain FISTA (``polish=False``, restart and
  backtracking kept) is timed too (``ratio_no_polish``).  Both objectives are
  evaluated by the same function, sum_n 1/2 ||x_n - c_n D||^2 + alpha ||c_n||_1;
  ``objective_rel_diff`` = (ours - sklearn) / sklearn (<= 0: ours is at least as
  low).  The tolerance of each of our variants is the loosest of 1e-4 ... 1e-7 whose
  objective reaches scikit-learn's (relative difference <= 0; searched once before
  timing, stated in the output); ``--fista-tol`` fixes it instead.
* SFA: quadratic SFA on Wiskott & Sejnowski's test signal (5,000 samples):
  |corr(slowest output, sin t)|.

Threads: BLAS capped at ``--threads`` (default 2) on both sides with threadpoolctl,
numba kernels at the same count.  scikit-learn's coordinate descent is
single-threaded whatever the budget (its Cython loop over the patches).  Both
sides run in this process, alternating, on the same data; medians of
``--repeats`` runs.

Usage: python benchmarks/ica_vs_sklearn.py [--threads 2] [--repeats 3] [--quick]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lvm_core.models.ica import FastICA, amari_index  # noqa: E402
from lvm_core.models.sfa import SFA  # noqa: E402
from lvm_core.models.sparse_coding import (DictionaryLearning, lasso_objective,  # noqa: E402
                                           sparse_encode)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def make_ica_data(N, D, seed=0):
    rng = np.random.default_rng(seed)
    kinds = [lambda: rng.laplace(size=N), lambda: rng.uniform(-1, 1, size=N),
             lambda: np.sign(rng.normal(size=N)) * np.sqrt(rng.exponential(size=N))]
    S = np.column_stack([kinds[i % 3]() for i in range(D)])
    A = rng.normal(size=(D, D))
    return S @ A.T, A, rng.normal(size=(D, D))


def bench_fastica(args):
    from sklearn.decomposition import FastICA as SkFastICA

    N = 20000 if args.quick else 100000
    D = 16
    X, A, w_init = make_ica_data(N, D)
    common = dict(algorithm="parallel", fun="logcosh", tol=1e-4, max_iter=200, w_init=w_init)
    times = {"ours": [], "ours_full": [], "sk_svd": [], "sk_eigh": []}
    fits = {}
    for _ in range(args.repeats):
        t, fits["ours"] = timed(lambda: FastICA(**common, random_state=0).fit(X))
        times["ours"].append(t)
        t, fits["ours_full"] = timed(lambda: FastICA(**common, n_subsample=None).fit(X))
        times["ours_full"].append(t)
        for solver in ("svd", "eigh"):
            t, fits[f"sk_{solver}"] = timed(lambda: SkFastICA(
                whiten="unit-variance", whiten_solver=solver, **common).fit(X))
            times[f"sk_{solver}"].append(t)
    med = {k: statistics.median(v) for k, v in times.items()}
    amari = {k: amari_index(m.components_, A) for k, m in fits.items()}
    print(f"FastICA, {N:,} x {D}, parallel, logcosh, tol 1e-4, same w_init "
          f"(median of {args.repeats}):")
    for k, label in (("ours", "lvm_core (subsample start)"),
                     ("ours_full", "lvm_core (n_subsample=None)"),
                     ("sk_svd", "sklearn, svd whitening"), ("sk_eigh", "sklearn, eigh whitening")):
        print(f"  {label:28s} {med[k]:7.3f} s  n_iter {fits[k].n_iter_:3d}  "
              f"Amari {amari[k]:.5f}  (runs: {', '.join(f'{t:.3f}' for t in times[k])})")
    sk_best = "sk_svd" if med["sk_svd"] <= med["sk_eigh"] else "sk_eigh"
    ratio = med[sk_best] / med["ours"]
    ratio_full = med[sk_best] / med["ours_full"]
    print(f"  ratio (fastest sklearn = {sk_best}) / ours: {ratio:.2f}; same solver (eigh): "
          f"{med['sk_eigh'] / med['ours']:.2f}; without the subsample start: {ratio_full:.2f}")
    return (f"RESULT fastica ratio={ratio:.3f} amari_ours={amari['ours']:.5f} "
            f"amari_sklearn={amari[sk_best]:.5f} ratio_same_solver={med['sk_eigh'] / med['ours']:.3f} "
            f"ratio_no_subsample={ratio_full:.3f} amari_no_subsample={amari['ours_full']:.5f}")


def image_patches(n_patches, size, rng):
    from sklearn.datasets import load_sample_images

    images = load_sample_images().images
    patches = []
    for img in images:
        grey = img.astype(np.float64).mean(axis=2) / 255.0
        windows = np.lib.stride_tricks.sliding_window_view(grey, (size, size))
        n = n_patches // len(images)
        rows = rng.integers(0, windows.shape[0], n)
        cols = rng.integers(0, windows.shape[1], n)
        patches.append(windows[rows, cols].reshape(n, size * size))
    X = np.concatenate(patches, axis=0)
    X = X - X.mean(axis=1, keepdims=True)
    return X / X.std()


def bench_sparse_coding(args):
    from sklearn.decomposition import sparse_encode as sk_sparse_encode
    from sklearn.exceptions import ConvergenceWarning

    rng = np.random.default_rng(1)
    n_code = 2000 if args.quick else 10000
    P = image_patches(n_code + 20000, 8, rng)
    P = P[rng.permutation(len(P))]
    X, train = P[:n_code], P[n_code:]
    K = 256
    dictionary = DictionaryLearning(K, alpha=args.alpha, max_iter=1, batch_size=256,
                                    random_state=0).fit(train).components_
    alpha = args.alpha

    def sklearn_codes():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return sk_sparse_encode(X, dictionary, algorithm="lasso_cd", alpha=alpha)

    sparse_encode(X[:50], dictionary, alpha=alpha)  # compile the numba kernel
    C_sk = sklearn_codes()
    F_sk = float(lasso_objective(X, dictionary, C_sk, alpha).sum())

    def loosest_tol(polish):
        if args.fista_tol is not None:
            return args.fista_tol
        for tol in (1e-4, 1e-5, 1e-6, 1e-7):
            C = sparse_encode(X, dictionary, alpha=alpha, tol=tol, polish=polish)
            if float(lasso_objective(X, dictionary, C, alpha).sum()) <= F_sk:
                break
        return tol

    tol, tol_plain = loosest_tol(True), loosest_tol(False)
    t_sk, t_ours, t_plain = [], [], []
    for _ in range(args.repeats):
        t, C_sk = timed(sklearn_codes)
        t_sk.append(t)
        t, C_ours = timed(lambda: sparse_encode(X, dictionary, alpha=alpha, tol=tol))
        t_ours.append(t)
        t, C_plain = timed(lambda: sparse_encode(X, dictionary, alpha=alpha, tol=tol_plain,
                                                 polish=False))
        t_plain.append(t)
    F_sk = float(lasso_objective(X, dictionary, C_sk, alpha).sum())
    F_ours = float(lasso_objective(X, dictionary, C_ours, alpha).sum())
    F_plain = float(lasso_objective(X, dictionary, C_plain, alpha).sum())
    rel = (F_ours - F_sk) / abs(F_sk)
    rel_plain = (F_plain - F_sk) / abs(F_sk)
    m_sk, m_ours, m_plain = (statistics.median(t) for t in (t_sk, t_ours, t_plain))

    def runs(ts):
        return ", ".join(f"{t:.3f}" for t in ts)

    print(f"Sparse coding, {n_code:,} patches (64 features), {K} atoms, alpha {alpha} "
          f"(median of {args.repeats}):")
    print(f"  sklearn lasso_cd          {m_sk:7.3f} s  objective {F_sk:.10e}  nonzeros/patch "
          f"{(C_sk != 0).sum(axis=1).mean():.2f}  (runs: {runs(t_sk)})")
    print(f"  lvm_core FISTA + polish   {m_ours:7.3f} s  objective {F_ours:.10e}  nonzeros/patch "
          f"{(C_ours != 0).sum(axis=1).mean():.2f}  tol {tol:g}  (runs: {runs(t_ours)})")
    print(f"  lvm_core FISTA, no polish {m_plain:7.3f} s  objective {F_plain:.10e}  tol "
          f"{tol_plain:g}  (runs: {runs(t_plain)})")
    print(f"  ratio sklearn / ours: {m_sk / m_ours:.2f} (no polish {m_sk / m_plain:.2f}); "
          f"objective_rel_diff {rel:.3e} (no polish {rel_plain:.3e})")
    return (f"RESULT sparse_coding ratio={m_sk / m_ours:.3f} objective_rel_diff={rel:.3e} "
            f"tol={tol:g} ratio_no_polish={m_sk / m_plain:.3f} "
            f"objective_rel_diff_no_polish={rel_plain:.3e}")


def bench_sfa(args):
    t = np.linspace(0.0, 2.0 * np.pi, 5000)
    X = np.column_stack([np.sin(t) + np.cos(11 * t) ** 2, np.cos(11 * t)])
    y = SFA(n_components=1, expansion="quadratic").fit_transform(X)[:, 0]
    corr = abs(np.corrcoef(y, np.sin(t))[0, 1])
    print(f"SFA (quadratic) on the Wiskott-Sejnowski signal: |corr(y1, sin t)| = {corr:.6f}")
    return f"RESULT sfa corr={corr:.6f}"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--fista-tol", type=float, default=None)
    p.add_argument("--quick", action="store_true", help="small sizes, 1 repeat (smoke test)")
    args = p.parse_args(argv)
    if args.quick:
        args.repeats = 1
    import numba

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    print(f"threads: BLAS {args.threads} (threadpoolctl), numba {numba.get_num_threads()}")
    with threadpool_limits(limits=args.threads):
        lines = [bench_fastica(args), bench_sparse_coding(args), bench_sfa(args)]
    for line in lines:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
