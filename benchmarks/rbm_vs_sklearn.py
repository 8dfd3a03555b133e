"""lvm_core's PCD-1 RBM against scikit-learn's BernoulliRBM, and AIS against exact log Z.

    python benchmarks/rbm_vs_sklearn.py            # full configuration (a few minutes)
    python benchmarks/rbm_vs_sklearn.py --quick    # smoke run (seconds)

Configuration (both sides): binarised Fashion-MNIST (pixel/255 > 0.5; 60,000
training and 10,000 test images, float32), 256 hidden units, persistent CD
with one Gibbs sweep and as many chains as rows per batch, batches of 100,
learning rate 0.05 on the batch-mean gradient, no momentum or weight decay,
W ~ N(0, 0.01^2), zero biases, 5 epochs; BLAS and numba limited to
``--threads`` (default 2) threads each, set before NumPy loads.  (scikit-learn
draws its batches in a fixed order and samples with a legacy RandomState;
lvm_core shuffles every epoch.  The algorithms are otherwise the same.)

Timing: seconds per epoch.  The 5-epoch fits are timed (ours, then
scikit-learn's), then ``--repeats`` one-epoch fits alternate ours /
scikit-learn's; the figure is the median of the per-epoch times of each
side.  ratio = sklearn / ours (bigger is better for lvm_core).

Log-likelihood: both sets of learned weights are scored by the same
estimator, lvm_core's AIS (Salakhutdinov & Murray 2008: base-rate base
model from the training data, ``--n-betas`` inverse temperatures, 100 runs),
as the mean test log p(v) = -F(v) - log Z in nats per image, with the
AIS error bar of log Z; ``rll_*`` use reverse AIS (Burda et al. 2015) started
from 100 Gibbs chains after 1,000 sweeps instead (not exact samples, so not a
guaranteed bound): a large gap between the two flags an unreliable estimate.

rbm16: an RBM with 16 hidden units trained by CD-1 (learning rate 0.05, 5
epochs, as the models Salakhutdinov & Murray (2008) checked AIS on); its log Z
is computed exactly (2^16 hidden configurations) and by AIS; the test
log-likelihoods from both are printed and must agree within 0.5 nats.  The
same comparison for a PCD-trained 16-unit model is printed for information:
PCD models fit better but can hold a deep mode that no Gibbs chain reaches
from the base model (we saw one hidden configuration with 98.5% of the mass),
and then AIS over-estimates the log-likelihood by several nats.

GEMM floor: the three matrix products of one PCD-1 step at the benchmark's
shapes (100 x 256 by 256 x 784; 200 x 784 by 784 x 256; 784 x 200 by 200 x 256),
600 times: the time any dense implementation of the step spends in BLAS.

Measured here (2026-11-30, every other process paused, 2 threads, NumPy's
OpenBLAS choosing its kernels): sklearn 1.44 s/epoch, lvm_core 0.45 s/epoch,
ratio 3.20 (5-epoch fits 0.432 vs 1.435 s/epoch; a run while the shared machine
ran slower: 0.63 vs 1.77, ratio 2.80); the three products alone take 0.31-0.39
s/epoch, so lvm_core runs at 1.2-1.5x and scikit-learn at 3.7-4.7x the GEMM
floor.  What brought ours there: the hidden and visible units' sigmoid and
softplus in one pass (``ops.bernoulli_units``), Bernoulli draws from a
counter-based stream inside the same kind of kernel instead of ``rng.random``
(``ops.bernoulli_sample``), one-pass input validation.  With
OPENBLAS_CORETYPE=Haswell (set on this machine for old OpenBLAS builds) and
before those kernels: sklearn 1.99, lvm_core 1.11 s/epoch, ratio 1.79.  Test
log-likelihoods after 5 epochs (seed 0): -178.8 (ours) and -203.4
(scikit-learn's weights), reverse AIS -178.9 and -203.5; other seeds gave
-177.0 / -206.9 and -205.7 / -193.3 (AIS, 2,000 betas, before the sampler
changed), so the two implementations are within their seed-to-seed spread.
rbm16 (CD-1): exact -330.674, AIS -330.753; PCD-1: exact -288.977, AIS -272.673.
On the shared machine with other jobs running (not under the lock) the ratio
was 4-10: scikit-learn's 2-thread BLAS calls degrade more under contention.

Lines: ``RESULT rbm ratio=R ll_ours=X ll_sklearn=X ...`` and
``RESULT rbm16 exact_ll=X ais_ll=X diff=X``.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path


def _limit_threads(argv=None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads", type=int, default=2)
    known, _ = pre.parse_known_args(argv)
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS",
                 "NUMBA_NUM_THREADS"):
        os.environ[name] = str(known.threads)


if __name__ == "__main__":
    _limit_threads()

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_tools.mnist import load_mnist_like  # noqa: E402
from lvm_core.models.energy import RBM  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="6,000 images, 1 epoch, short AIS")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--epochs", type=int, default=None)
    p.add_argument("--repeats", type=int, default=2, help="extra one-epoch timings per side")
    p.add_argument("--n-betas", type=int, default=None)
    p.add_argument("--n-runs", type=int, default=100)
    p.add_argument("--seed", type=int, default=0)
    return p.parse_args(argv)


def load(quick):
    Xtr, _, src = load_mnist_like("fashion-mnist", "train")
    Xte, _, _ = load_mnist_like("fashion-mnist", "test")
    Xtr = (Xtr > 0.5).astype(np.float32)
    Xte = (Xte > 0.5).astype(np.float32)
    if quick:
        Xtr, Xte = Xtr[:6000], Xte[:1000]
    return Xtr, Xte, src


def ours(n_components, epochs, seed, method="pcd"):
    return RBM(n_components=n_components, learning_rate=0.05, batch_size=100, n_iter=epochs,
               method=method, k=1, momentum=0.0, weight_decay=0.0, init_scale=0.01,
               visible_bias_init="zeros", random_state=seed)


def theirs(n_components, epochs, seed):
    from sklearn.neural_network import BernoulliRBM

    return BernoulliRBM(n_components=n_components, learning_rate=0.05, batch_size=100,
                        n_iter=epochs, random_state=seed)


def timed_fit(model, X):
    t0 = time.perf_counter()
    model.fit(X)
    return time.perf_counter() - t0


def gemm_floor(n_steps, dtype=np.float32, repeats=3):
    """Seconds for the three dense products of n_steps PCD-1 steps (median of repeats)."""
    rng = np.random.default_rng(0)
    W = rng.normal(size=(784, 256)).astype(dtype)
    Hs = (rng.random((100, 256)) < 0.1).astype(dtype)
    V = (rng.random((200, 784)) < 0.3).astype(dtype)
    P = rng.random((200, 256)).astype(dtype)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(n_steps):
            Hs @ W.T
            V @ W
            V.T @ P
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def ais_ll(model, Xtr, Xte, n_runs, n_betas, seed, reverse=False):
    """Mean test log p(v) with log Z from AIS (or reverse AIS from the states of
    n_runs Gibbs chains after 1,000 sweeps), and the estimate of log Z."""
    if reverse:
        chains = model.sample(n_runs, rng=seed, n_steps=1000)
        est = model.log_partition("reverse_ais", n_runs=n_runs, n_betas=n_betas,
                                  base_rate_data=Xtr, random_state=seed, v_init=chains)
    else:
        est = model.log_partition("ais", n_runs=n_runs, n_betas=n_betas, base_rate_data=Xtr,
                                  random_state=seed)
    F = model.free_energy(Xte)
    return float(np.mean(-F)) - est.log_z, est


def main(argv=None):
    args = parse_args(argv)
    from threadpoolctl import threadpool_info

    epochs = args.epochs or (1 if args.quick else 5)
    n_betas = args.n_betas or (300 if args.quick else 10000)
    Xtr, Xte, src = load(args.quick)
    blas = ", ".join(f"{i['internal_api']} {i['num_threads']}" for i in threadpool_info())
    print(f"data: {Xtr.shape[0]} train / {Xte.shape[0]} test binarised images ({src})")
    print(f"threads: {args.threads} (pools: {blas}); epochs {epochs}; AIS {args.n_runs} runs x "
          f"{n_betas} betas")

    # warm-up (numba compilation) on a few batches
    ours(256, 1, args.seed).fit(Xtr[:300])

    t_ours = [timed_fit(m_ours := ours(256, epochs, args.seed), Xtr) / epochs]
    t_sk = [timed_fit(m_sk := theirs(256, epochs, args.seed), Xtr) / epochs]
    print(f"{epochs}-epoch fits: ours {t_ours[0]:.3f} s/epoch, sklearn {t_sk[0]:.3f} s/epoch")
    for r in range(args.repeats):
        t_ours.append(timed_fit(ours(256, 1, args.seed + 1 + r), Xtr))
        t_sk.append(timed_fit(theirs(256, 1, args.seed + 1 + r), Xtr))
        print(f"repeat {r + 1}: ours {t_ours[-1]:.3f} s/epoch, sklearn {t_sk[-1]:.3f} s/epoch")
    s_ours, s_sk = statistics.median(t_ours), statistics.median(t_sk)
    ratio = s_sk / s_ours

    sk_as_ours = RBM.from_params(np.ascontiguousarray(m_sk.components_.T, dtype=np.float32),
                                 m_sk.intercept_visible_.astype(np.float32),
                                 m_sk.intercept_hidden_.astype(np.float32))
    t0 = time.perf_counter()
    ll_ours, est_ours = ais_ll(m_ours, Xtr, Xte, args.n_runs, n_betas, args.seed)
    t_ais = time.perf_counter() - t0
    ll_sk, est_sk = ais_ll(sk_as_ours, Xtr, Xte, args.n_runs, n_betas, args.seed)
    rll_ours, _ = ais_ll(m_ours, Xtr, Xte, args.n_runs, n_betas, args.seed, reverse=True)
    rll_sk, _ = ais_ll(sk_as_ours, Xtr, Xte, args.n_runs, n_betas, args.seed, reverse=True)
    print(f"\n{'':10s} {'s/epoch':>9s} {'test log p(v)':>14s} {'log Z (AIS)':>12s} {'+-sd':>7s} "
          f"{'log p(v), reverse AIS':>22s}")
    print(f"{'lvm_core':10s} {s_ours:9.3f} {ll_ours:14.2f} {est_ours.log_z:12.2f} "
          f"{est_ours.log_z_std:7.3f} {rll_ours:22.2f}")
    print(f"{'sklearn':10s} {s_sk:9.3f} {ll_sk:14.2f} {est_sk.log_z:12.2f} {est_sk.log_z_std:7.3f} "
          f"{rll_sk:22.2f}")
    print(f"(AIS of one model: {t_ais:.1f} s)")

    floor = gemm_floor(Xtr.shape[0] // 100)
    print(f"GEMM floor of one epoch (3 products per step, same threads): {floor:.3f} s; "
          f"ours {s_ours / floor:.2f}x it, sklearn {s_sk / floor:.2f}x it")

    rbm16 = {}
    for method in ("cd", "pcd"):
        m16 = ours(16, epochs, args.seed, method=method).fit(Xtr)
        exact_ll = float(np.mean(m16.score_samples(Xte)))
        ais16_ll, est16 = ais_ll(m16, Xtr, Xte, args.n_runs, n_betas, args.seed)
        rbm16[method] = (exact_ll, ais16_ll)
        print(f"\nrbm16 ({method.upper()}-1): log Z exact {m16.log_partition('exact').log_z:.3f}, "
              f"AIS {est16.log_z:.3f} +- {est16.log_z_std:.3f}; test log p(v) exact "
              f"{exact_ll:.3f}, AIS {ais16_ll:.3f} (difference {ais16_ll - exact_ll:+.3f})")
    exact_ll, ais16_ll = rbm16["cd"]

    print(f"\nRESULT rbm ratio={ratio:.2f} ll_ours={ll_ours:.2f} ll_sklearn={ll_sk:.2f} "
          f"rll_ours={rll_ours:.2f} rll_sklearn={rll_sk:.2f} sec_per_epoch_ours={s_ours:.3f} sec_per_epoch_sklearn={s_sk:.3f} "
          f"threads={args.threads} epochs={epochs} n_train={Xtr.shape[0]} n_betas={n_betas} "
          f"gemm_floor_s={floor:.3f}")
    print(f"RESULT rbm16 exact_ll={exact_ll:.3f} ais_ll={ais16_ll:.3f} "
          f"diff={abs(exact_ll - ais16_ll):.3f} training=cd1 pcd_exact_ll={rbm16['pcd'][0]:.3f} "
          f"pcd_ais_ll={rbm16['pcd'][1]:.3f}")


if __name__ == "__main__":
    main()
