"""One long HMM sequence: the chunked scan kernel vs today's sequential kernel.

Configuration (issue "the same scan on the CPU"): one sequence of T = 10^6
steps from a Gaussian HMM with diagonal covariances, K = 32 states, D = 8
features (sticky transitions A = 0.8 I + 0.2 Dirichlet(1), means 3 N(0, 1),
variances U(0.5, 1.5)).  The E-step's inference is timed on the true
parameters: log p(x_t | z_t = k) is computed once, then

    sequential  lvm_core.kernels.hmm_numba.forward_backward(..., method="sequential")
    scan        lvm_core.kernels.hmm_scan.forward_backward (chunks in parallel)

alternate in this one process (each with its own reused work arrays, as in
EM), ``--repeats`` times; medians are compared.  Both get the same numba
thread budget (``--threads``, default 2): the sequential kernel uses it only
for its exp pass, one sequence being one thread.

``ll_rel_diff`` = |log p_scan - log p_seq| / |log p_seq|; ``post_rel_diff`` =
max over t, k of |gamma_scan - gamma_seq| / gamma_seq over the entries with
gamma_seq > 1e-300; ``xi_rel_diff`` the same for xi_sum.

Usage: python benchmarks/hmm_long_scan.py [--quick] [--repeats 3] [--threads 2]
Ends with ``RESULT hmm_long_scan ratio=R ll_rel_diff=X post_rel_diff=X ...``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def make_problem(T, K, D, seed):
    """(log pi, log A, log_frameprob (T, K)) of data drawn from a true Gaussian diag HMM."""
    rng = np.random.default_rng(seed)
    A = 0.8 * np.eye(K) + 0.2 * rng.dirichlet(np.ones(K), size=K)
    pi = rng.dirichlet(np.ones(K))
    mu = 3.0 * rng.normal(size=(K, D))
    var = rng.uniform(0.5, 1.5, size=(K, D))
    # states: inverse-CDF sampling of the chain in blocks of uniforms
    cum = np.cumsum(A, axis=1)
    u = rng.random(T)
    z = np.empty(T, dtype=np.int64)
    z[0] = np.searchsorted(np.cumsum(pi), u[0])
    for t in range(1, T):
        z[t] = min(np.searchsorted(cum[z[t - 1]], u[t]), K - 1)
    X = mu[z] + np.sqrt(var[z]) * rng.normal(size=(T, D))
    # log N(x | mu_k, diag var_k) = const_k + x^2 . (-1/(2 var_k)) + x . (mu_k / var_k)
    const = -0.5 * (D * np.log(2 * np.pi) + np.log(var).sum(1) + (mu ** 2 / var).sum(1))
    log_frameprob = (X ** 2) @ (-0.5 / var).T + X @ (mu / var).T + const  # (T, K)
    return np.log(pi), np.log(A), np.ascontiguousarray(log_frameprob)


def rel(got, want, floor=1e-300):
    got, want = np.asarray(got), np.asarray(want)
    mask = np.abs(want) > floor
    return float(np.max(np.abs(got[mask] - want[mask]) / np.abs(want[mask])))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="T = 10^5")
    parser.add_argument("--T", type=int, default=None)
    parser.add_argument("--K", type=int, default=32)
    parser.add_argument("--D", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    T = args.T or (100_000 if args.quick else 1_000_000)

    import numba

    from lvm_core.kernels import hmm_numba, hmm_scan

    numba.set_num_threads(min(args.threads, numba.config.NUMBA_NUM_THREADS))
    t0 = time.perf_counter()
    log_pi, log_A, lfp = make_problem(T, args.K, args.D, args.seed)
    print(f"one Gaussian-diag HMM sequence T={T}, K={args.K}, D={args.D} "
          f"(data {time.perf_counter() - t0:.1f} s); numba threads {numba.get_num_threads()}; "
          f"chunks {len(hmm_scan.chunk_bounds([T])[0])}")
    seq = lambda work: hmm_numba.forward_backward(  # noqa: E731
        log_pi, log_A, lfp, None, work, method="sequential")
    scan = lambda work: hmm_scan.forward_backward(log_pi, log_A, lfp, None, work)  # noqa: E731
    w_seq, w_scan = {}, {}
    seq(w_seq)  # compile / page in, untimed
    scan(w_scan)
    t_seq, t_scan = [], []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        out_seq = seq(w_seq)
        t_seq.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        out_scan = scan(w_scan)
        t_scan.append(time.perf_counter() - t0)
        print(f"repeat {r + 1}: sequential {t_seq[-1]:.3f} s, scan {t_scan[-1]:.3f} s, "
              f"ratio {t_seq[-1] / t_scan[-1]:.2f}", flush=True)
    ll_diff = rel(out_scan[0], out_seq[0])
    post_diff = rel(out_scan[1], out_seq[1])
    xi_diff = rel(out_scan[3], out_seq[3])
    start_diff = rel(out_scan[2], out_seq[2])
    med_seq, med_scan = float(np.median(t_seq)), float(np.median(t_scan))
    print(f"median: sequential {med_seq:.3f} s, scan {med_scan:.3f} s; ratio "
          f"{med_seq / med_scan:.2f}; log p {out_seq[0][0]:.6f}")
    print(f"RESULT hmm_long_scan ratio={med_seq / med_scan:.3f} ll_rel_diff={ll_diff:.2e} "
          f"post_rel_diff={post_diff:.2e} xi_rel_diff={xi_diff:.2e} "
          f"start_rel_diff={start_diff:.2e} s_sequential={med_seq:.3f} s_scan={med_scan:.3f} "
          f"T={T} K={args.K} D={args.D} threads={numba.get_num_threads()}")


if __name__ == "__main__":
    main()
