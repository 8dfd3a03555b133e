"""Exact EM past one machine's memory (out-of-core) and past one process (dask).

Three measurements (issue "Exact-EM core", BENCHMARKS.md conventions):

1. out-of-core: ``GaussianMixture(n_components=16, covariance_type="full")``,
   D = 16, fitted on an HDF5 file of 20,000,000 rows (2.56 GB of float64)
   written by this script (under the system temp directory, deleted at the
   end), streamed in blocks of ``--chunk-rows`` rows, in a fresh subprocess
   whose peak resident memory (VmHWM) is reported; against the in-memory
   fit of the file's first 2,000,000 rows (another fresh subprocess).  Both
   start from the same parameters; seconds per EM iteration come from the
   times between successive iterations (so the one-off mean pass and start
   are excluded); ``cost_ratio`` = (out-of-core s/iter per row) / (in-memory
   s/iter per row).
2. dask: the same model on 2,000,000 in-memory rows, through a 2-worker
   ``LocalCluster`` (processes, one thread each, loopback) against in process
   (this process, BLAS with the machine's 2 cores): identical log-likelihood
   trajectory (``ll_rel_diff``), s/iter, ``ratio`` = in-process s/iter /
   dask s/iter and ``overhead_s`` = dask s/iter - in-process s/iter / 2
   (the time per iteration beyond a perfect 2-way split).
3. HMM configuration b of ``hmm_vs_hmmlearn.py`` (GaussianHMM diag, K=32,
   D=8, 10 x 10,000 steps) through the same cluster against in process.

Usage: python benchmarks/em_scale.py [--quick]
Ends with ``RESULT em_ooc ...``, ``RESULT em_dask ...``, ``RESULT hmm_dask ...``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

K, D = 16, 16


class IterationClock:
    """A stream for the EM monitor's verbose lines: records when each iteration
    reports (after its E-step), so s/iter excludes the one-off setup."""

    def __init__(self):
        self.times = []

    def write(self, text):
        if text.startswith("EM iter"):
            self.times.append(time.perf_counter())

    def flush(self):
        pass

    def seconds_per_iteration(self):
        t = np.asarray(self.times)
        return float(np.median(np.diff(t))) if len(t) > 1 else float("nan")


def timed_fit(model, *args, **kwargs):
    """Fit with per-iteration timestamps; returns (model, s/iter)."""
    clock = IterationClock()
    old = sys.stderr
    sys.stderr = clock
    try:
        model.verbose = 1
        model.fit(*args, **kwargs)
    finally:
        sys.stderr = old
    return model, clock.seconds_per_iteration()


def gmm_truth(seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(K, D)) * 4.0
    factors = rng.normal(size=(K, D, D)) * 0.3 + np.eye(D)
    return centers, factors


def gmm_block(n, block_seed, truth):
    centers, factors = truth
    rng = np.random.default_rng(1000 + block_seed)
    labels = rng.integers(0, K, size=n)
    X = rng.normal(size=(n, D))
    for k in range(K):  # x = c_k + eps F_k, one component at a time (no (n, D, D) temporary)
        rows = labels == k
        X[rows] = centers[k] + X[rows] @ factors[k]
    return X


def write_h5(path, n_rows, block):
    import h5py

    truth = gmm_truth()
    with h5py.File(path, "w") as f:
        ds = f.create_dataset("X", shape=(n_rows, D), dtype="f8")
        for i, start in enumerate(range(0, n_rows, block)):
            n = min(block, n_rows - start)
            ds[start:start + n] = gmm_block(n, i, truth)


def gmm_start(X):
    """The same starting parameters for every run: rows of X as means, the data
    covariance as every precision's inverse, equal weights."""
    rng = np.random.default_rng(5)
    means = X[rng.choice(len(X), K, replace=False)]
    precision = np.linalg.inv(np.cov(X.T) + 1e-3 * np.eye(D))
    return dict(weights_init=np.full(K, 1.0 / K), means_init=means,
                precisions_init=np.tile(precision, (K, 1, 1)))


def gmm_model(start, n_iter):
    from lvm_core.models.gmm import GaussianMixture

    return GaussianMixture(n_components=K, covariance_type="full", max_iter=n_iter, tol=0.0,
                           **start)


def peak_rss_mb():
    """This process's peak resident memory: VmHWM (reset by exec, unlike
    ru_maxrss, which Linux carries over from the parent), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(args):
    """One measured fit in a fresh process: prints a JSON line."""
    import warnings

    import h5py

    warnings.simplefilter("ignore", RuntimeWarning)
    with h5py.File(args.path, "r") as f:
        ds = f["X"]
        start = gmm_start(ds[:100_000])
        gmm_model(start, 2).fit(ds[:5000])  # load / compile the kernels
        if args.child == "ooc":
            model, s_iter = timed_fit(gmm_model(start, args.n_iter), ds, chunk_size=args.chunk_rows)
            rows = ds.shape[0]
        else:
            X = ds[:args.mem_rows]
            model, s_iter = timed_fit(gmm_model(start, args.n_iter), X)
            rows = X.shape[0]
    rss_mb = peak_rss_mb()
    print("CHILD " + json.dumps(dict(s_iter=s_iter, rows=rows, peak_rss_mb=rss_mb,
                                     ll=list(model.lower_bounds_))), flush=True)


def run_child(kind, path, args):
    cmd = [sys.executable, os.path.abspath(__file__), "--child", kind, "--path", path,
           "--n-iter", str(args.n_iter), "--chunk-rows", str(args.chunk_rows),
           "--mem-rows", str(args.mem_rows)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=ROOT))
    if out.returncode != 0:
        raise RuntimeError(f"{kind} run failed:\n{out.stderr[-3000:]}")
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("CHILD ")][-1]
    return json.loads(line[6:])


def bench_ooc(args):
    tmp = tempfile.mkdtemp(prefix="em_scale_")
    path = os.path.join(tmp, "gmm.h5")
    try:
        t0 = time.perf_counter()
        write_h5(path, args.ooc_rows, 1_000_000)
        size_gb = os.path.getsize(path) / 1e9
        print(f"wrote {args.ooc_rows:,} x {D} float64 rows ({size_gb:.2f} GB) in "
              f"{time.perf_counter() - t0:.1f} s: {path}")
        mem = run_child("mem", path, args)
        ooc = run_child("ooc", path, args)
    finally:
        if os.path.exists(path):
            os.remove(path)
        os.rmdir(tmp)
    cost_ratio = (ooc["s_iter"] / ooc["rows"]) / (mem["s_iter"] / mem["rows"])
    print(f"\nGMM full K={K} D={D}, {args.n_iter} iterations from the same start")
    print(f"{'':14s}{'rows':>12s}{'s/iter':>10s}{'us/row':>10s}{'peak RSS MB':>13s}")
    for name, r in (("in-memory", mem), ("out-of-core", ooc)):
        print(f"{name:14s}{r['rows']:12,d}{r['s_iter']:10.3f}{1e6 * r['s_iter'] / r['rows']:10.4f}"
              f"{r['peak_rss_mb']:13.0f}")
    print(f"out-of-core chunk: {args.chunk_rows:,} rows; cost per row ratio {cost_ratio:.3f}")
    return ooc["peak_rss_mb"], cost_ratio


def bench_dask(args, client):
    import warnings

    warnings.simplefilter("ignore", RuntimeWarning)
    X = gmm_block(args.mem_rows, 0, gmm_truth())
    start = gmm_start(X[:100_000])
    gmm_model(start, 2).fit(X[:5000])
    gmm_model(start, 2).fit(X[:5000], client=client, chunk_size=2500)  # warm the workers
    local, s_local = timed_fit(gmm_model(start, args.n_iter), X)
    dist, s_dask = timed_fit(gmm_model(start, args.n_iter), X, client=client,
                             chunk_size=-(-args.mem_rows // 4))
    ll_rel = float(np.max(np.abs(np.subtract(dist.lower_bounds_, local.lower_bounds_))
                          / np.abs(local.lower_bounds_)))
    print(f"\nGMM full K={K} D={D} on {args.mem_rows:,} rows: in process {s_local:.3f} s/iter, "
          f"dask (2 workers x 1 thread, 4 blocks) {s_dask:.3f} s/iter; ll_rel_diff {ll_rel:.2e}")
    return ll_rel, s_local / s_dask, s_dask - s_local / 2.0


def bench_hmm_dask(args, client):
    import warnings

    from hmm_vs_hmmlearn import CONFIGS, ours, random_start, true_model_and_data

    warnings.simplefilter("ignore", RuntimeWarning)
    cfg = dict(CONFIGS["b"])
    if args.quick:
        cfg["T"] = 1000
    X, lengths = true_model_and_data(cfg, seed=0)
    p = random_start(cfg, X, seed=0)
    ours(cfg, p, 2).fit(X[:2000], [1000, 1000], client=client)  # warm the workers
    ours(cfg, p, 2).fit(X[:2000], [1000, 1000])
    local, s_local = timed_fit(ours(cfg, p, args.n_iter_hmm), X, lengths)
    dist, s_dask = timed_fit(ours(cfg, p, args.n_iter_hmm), X, lengths, client=client,
                             chunk_size=-(-len(X) // 2))
    ll_rel = float(np.max(np.abs(np.subtract(dist.monitor_.history, local.monitor_.history))
                          / np.abs(local.monitor_.history)))
    print(f"\nHMM config b ({cfg['n_seq']} x {cfg['T']:,} steps, K={cfg['K']}, D={cfg['D']}): in "
          f"process {s_local:.4f} s/iter, dask (2 workers, 2 blocks) {s_dask:.4f} s/iter; "
          f"ll_rel_diff {ll_rel:.2e}")
    return ll_rel, s_local / s_dask


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small smoke run")
    parser.add_argument("--n-iter", type=int, default=None)
    parser.add_argument("--n-iter-hmm", type=int, default=10)
    parser.add_argument("--chunk-rows", type=int, default=500_000)
    parser.add_argument("--mem-rows", type=int, default=None)
    parser.add_argument("--ooc-rows", type=int, default=None)
    parser.add_argument("--child", choices=("ooc", "mem"), help=argparse.SUPPRESS)
    parser.add_argument("--path", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.n_iter is None:
        args.n_iter = 3
    if args.mem_rows is None:
        args.mem_rows = 200_000 if args.quick else 2_000_000
    if args.ooc_rows is None:
        args.ooc_rows = 2_000_000 if args.quick else 20_000_000
    if args.quick:
        args.chunk_rows = min(args.chunk_rows, 100_000)
    if args.child:
        return child(args)

    peak_rss, cost_ratio = bench_ooc(args)
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, processes=True, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address=None, silence_logs=50) as cluster, Client(cluster) as client:
        em_ll, em_ratio, overhead = bench_dask(args, client)
        hmm_ll, hmm_ratio = bench_hmm_dask(args, client)
    print()
    print(f"RESULT em_ooc peak_rss_mb={peak_rss:.0f} cost_ratio={cost_ratio:.3f} "
          f"rows={args.ooc_rows} chunk_rows={args.chunk_rows}")
    print(f"RESULT em_dask ll_rel_diff={em_ll:.2e} ratio={em_ratio:.3f} overhead_s={overhead:.4f}")
    print(f"RESULT hmm_dask ll_rel_diff={hmm_ll:.2e} ratio={hmm_ratio:.3f}")


if __name__ == "__main__":
    main()
