"""The GPU check's measurements: lvm_core on CuPy vs its CPU paths and peers.

Run by ``benchmarks/gpu_check.sh`` (one part per process, each with its own
time limit), or by hand from the repository root:

    python benchmarks/gpu_check.py vae|hmm|gmm [--dry-run]

Parts (configurations of BENCHMARKS.md):

* ``vae``  one training epoch of the benchmark VAE (784-400-(20, 20) /
  20-400-784, ReLU, Bernoulli, Adam 1e-3, batch 128, float32, 60k
  Fashion-MNIST images, or uniform [0, 1] pixels of the same shape when the
  data set is not installed): lvm_core on the device vs lvm_core on NumPy
  (numba kernels) vs PyTorch on CUDA (when torch sees a GPU);
  ``RESULT gpu_vae ratio_vs_numpy=R ratio_vs_torch=R ...`` (ratio = other
  side's seconds / ours on the device);
* ``hmm``  E-step inference of HMM configuration b (Gaussian diag, K = 32,
  D = 8, 10 sequences x 10,000 steps) and of one sequence of 10^6 steps
  (K = 32): the numba kernels vs the array-API kernels on the device (batched
  over sequences, ``hmm_xp``; chunked two-level scan, ``hmm_xp_scan``, with
  its default chunk length ceil(sqrt(T)) and with 32);
  ``RESULT gpu_hmm_b ...`` and ``RESULT gpu_hmm_long ...``;
* ``gmm``  GaussianMixture(n_components=16, covariance_type="full") on
  10^6 x 16, the same start on both sides, fixed iterations: device vs NumPy;
  ``RESULT gpu_gmm ratio=R ll_rel_diff=X``.

``--dry-run``: the same code on tiny sizes with array-api-strict's simulated
device ("device1", which like a GPU refuses any conversion to NumPy) standing
in for CuPy and PyTorch on the CPU, so that everything up to the CuPy calls is
known to work on a machine without a GPU.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))


class Device:
    """The array namespace under test: CuPy, or array-api-strict's device1 (dry run)."""

    def __init__(self, dry_run):
        self.dry_run = dry_run
        if dry_run:
            import array_api_strict

            self.xp = array_api_strict
            self.device = array_api_strict.Device("device1")
            self.name = "array-api-strict device1 (dry run)"
        else:
            import cupy

            self.xp = cupy
            self.device = None
            props = cupy.cuda.runtime.getDeviceProperties(cupy.cuda.Device().id)
            name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
            self.name = f"cupy {cupy.__version__} on {name}"

    def put(self, a, dtype=None):
        """Host array -> device (explicit transfer)."""
        a = np.asarray(a, dtype=dtype)
        if self.dry_run:
            return self.xp.asarray(a, device=self.device)
        return self.xp.asarray(a)

    def get(self, a):
        from lvm_core.backend import to_numpy

        return np.asarray(to_numpy(a))

    def sync(self):
        if not self.dry_run:
            self.xp.cuda.Device().synchronize()

    def timed(self, fn):
        self.sync()
        t0 = time.perf_counter()
        out = fn()
        self.sync()
        return time.perf_counter() - t0, out


def rel_diff(got, want):
    got, want = np.asarray(got, dtype=float), np.asarray(want, dtype=float)
    return float(np.max(np.abs(got - want) / np.maximum(np.abs(want), 1e-300)))


def fmt(x):
    return "nan" if x is None or not np.isfinite(x) else f"{x:.4g}"


# ---------------------------------------------------------------------- VAE
D_X, H, L = 784, 400, 20


def vae_data(n, dry_run):
    if not dry_run:
        try:
            from data_tools.mnist import load_mnist_like

            X, _, _ = load_mnist_like("fashion-mnist", "train", normalize=True, dtype="float32",
                                      verbose=False, download=False)
            return np.ascontiguousarray(X[:n]), "fashion-mnist"
        except Exception as exc:  # noqa: BLE001 - any failure means: use the stand-in
            print(f"Fashion-MNIST not available ({type(exc).__name__}); uniform pixels instead")
    rng = np.random.default_rng(0)
    return rng.random((n, D_X), dtype=np.float32), "uniform"


def torch_epoch_seconds(X, batch_size, dry_run):
    """One epoch of the same VAE in PyTorch on CUDA (CPU in a dry run); None
    when torch (or, outside a dry run, its CUDA) is missing."""
    try:
        import torch
    except ImportError:
        return None, "torch missing"
    if dry_run:
        dev = torch.device("cpu")
    elif torch.cuda.is_available():
        dev = torch.device("cuda")
    else:
        return None, "torch without CUDA"
    nn = torch.nn
    torch.manual_seed(0)
    enc, mu_l, lv_l = nn.Linear(D_X, H).to(dev), nn.Linear(H, L).to(dev), nn.Linear(H, L).to(dev)
    dec1, dec2 = nn.Linear(L, H).to(dev), nn.Linear(H, D_X).to(dev)
    params = [p for m in (enc, mu_l, lv_l, dec1, dec2) for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    X_t = torch.from_numpy(X).to(dev)
    N = X_t.shape[0]

    def epoch(n_steps=None):
        perm = torch.randperm(N, device=dev)
        for i, s in enumerate(range(0, N, batch_size)):
            if n_steps is not None and i >= n_steps:
                break
            x = X_t[perm[s:s + batch_size]]
            h = torch.relu(enc(x))
            mu, log_var = mu_l(h), lv_l(h)
            z = mu + torch.exp(0.5 * log_var) * torch.randn_like(mu)
            logits = dec2(torch.relu(dec1(z)))
            log_px = -nn.functional.binary_cross_entropy_with_logits(
                logits, x, reduction="none").sum(1)
            kl = 0.5 * (log_var.exp() + mu * mu - 1.0 - log_var).sum(1)
            loss = (kl - log_px).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    epoch(n_steps=5)  # warm-up
    sync()
    t0 = time.perf_counter()
    epoch()
    sync()
    return time.perf_counter() - t0, f"torch {torch.__version__} on {dev.type}"


def part_vae(dev, dry_run):
    from lvm_core.models.vae import VAE

    n = 512 if dry_run else 60_000
    X, source = vae_data(n, dry_run)
    batch = 128
    print(f"VAE {D_X}-{H}-({L}, {L}) / {L}-{H}-{D_X}, ReLU, Bernoulli, Adam 1e-3, batch {batch}, "
          f"float32, one epoch of {n} images ({source}); device: {dev.name}")

    def make():
        return VAE(D_X, n_latent=L, hidden=(H,), activation="relu", decoder="bernoulli",
                   objective="elbo", n_samples=1, init="torch", dtype="float32", random_state=0)

    def fit(X_in):
        model = make()
        start = time.perf_counter()
        model.fit(X_in, epochs=1, batch_size=batch, lr=1e-3, optimizer="adam", random_state=0,
                  progress=False)
        dev.sync()
        return time.perf_counter() - start, model

    # warm-up on a few batches: numba compilation, CuPy kernel compilation
    fit(X[:4 * batch])
    X_dev = dev.put(X)
    fit(X_dev[:4 * batch, ...])
    t_np, m_np = fit(X)
    t_dev, m_dev = fit(X_dev)
    loss_np = float(m_np.history_.train_loss[-1])
    loss_dev = float(m_dev.history_.train_loss[-1])
    t_torch, torch_name = torch_epoch_seconds(X, batch, dry_run)
    print(f"seconds per epoch: device {t_dev:.3f}, NumPy {t_np:.3f}, {torch_name} "
          f"{fmt(t_torch)}; training loss device {loss_dev:.3f}, NumPy {loss_np:.3f}")
    ratio_np = t_np / t_dev
    ratio_torch = (t_torch / t_dev) if t_torch else float("nan")
    print(f"RESULT gpu_vae ratio_vs_numpy={fmt(ratio_np)} ratio_vs_torch={fmt(ratio_torch)} "
          f"s_epoch_device={t_dev:.4f} s_epoch_numpy={t_np:.4f} s_epoch_torch={fmt(t_torch)} "
          f"loss_device={loss_dev:.4f} loss_numpy={loss_np:.4f} data={source} n={n} "
          f"dry_run={int(dry_run)}")


# ---------------------------------------------------------------------- HMM
def hmm_problem(lengths, K, D, seed):
    """log pi, log A and log p(x_t | z_t = k) of data from a Gaussian diag HMM."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from hmm_long_scan import make_problem

    log_pi, log_A, lfp = make_problem(int(np.sum(lengths)), K, D, seed)  # one chain, cut
    return log_pi, log_A, lfp, np.asarray(lengths)


def _fb_diff(got, want):
    return max(rel_diff(got[0], want[0]), float(np.max(np.abs(got[1] - want[1]))),
               rel_diff(got[3], want[3]))


def part_hmm(dev, dry_run):
    from lvm_core.kernels import hmm_numba, hmm_xp, hmm_xp_scan

    # configuration b, then one long sequence
    cfg_b = dict(lengths=[200] * 3, K=4, D=2) if dry_run else dict(lengths=[10_000] * 10, K=32, D=8)
    long = dict(lengths=[5_000], K=4, D=2) if dry_run else dict(lengths=[1_000_000], K=32, D=8)
    for name, cfg, run_batched in (("gpu_hmm_b", cfg_b, True), ("gpu_hmm_long", long, False)):
        log_pi, log_A, lfp, lengths = hmm_problem(cfg["lengths"], cfg["K"], cfg["D"], seed=0)
        args_dev = (dev.put(log_pi), dev.put(log_A), dev.put(lfp))
        import numba

        print(f"\n{name}: {len(lengths)} sequence(s) x {lengths[0]} steps, K={cfg['K']}, "
              f"D={cfg['D']} (E-step inference on given log-densities); numba threads "
              f"{numba.get_num_threads()}; device: {dev.name}")
        hmm_numba.forward_backward(log_pi, log_A, lfp, lengths)  # compile
        t_numba = []
        for _ in range(3):
            t, want = dev.timed(lambda: hmm_numba.forward_backward(log_pi, log_A, lfp, lengths))
            t_numba.append(t)
        t_nb = float(np.median(t_numba))
        t_seq = None
        if not run_batched:
            t_seq, _ = dev.timed(lambda: hmm_numba.forward_backward(log_pi, log_A, lfp, lengths,
                                                                    method="sequential"))
        results = {}
        # warm-up (CuPy kernel compilation) on the first 64 steps of every sequence
        n_w = min(64, int(min(lengths)))
        rows = np.concatenate([np.arange(lo, lo + n_w) for lo in np.cumsum(lengths) - lengths])
        warm = (args_dev[0], args_dev[1], dev.put(lfp[rows]))
        warm_lengths = np.full(len(lengths), n_w)
        kernels = [("xp_scan", hmm_xp_scan.forward_backward, 3),
                   ("xp_scan32", lambda *a: hmm_xp_scan.forward_backward(*a, chunk_len=32), 3)]
        if run_batched:  # one time step per launch: slow on long sequences, timed once
            kernels.append(("xp", hmm_xp.forward_backward, 1))
        for label, kernel, repeats in kernels:
            kernel(*warm, warm_lengths)
            times = []
            for _ in range(repeats):
                t, out = dev.timed(lambda: kernel(*args_dev, lengths))
                times.append(t)
            out = [dev.get(v) for v in out]
            results[label] = (float(np.median(times)), _fb_diff(out, want))
            print(f"  {label:8s} on the device: {results[label][0]:.4f} s (numba {t_nb:.4f} s, "
                  f"ratio {t_nb / results[label][0]:.2f}); largest difference {results[label][1]:.2e}")
        line = (f"RESULT {name} ratio_scan={fmt(t_nb / results['xp_scan'][0])} "
                f"s_numba={t_nb:.4f} s_xp_scan={results['xp_scan'][0]:.4f} "
                f"diff_scan={results['xp_scan'][1]:.2e} "
                f"ratio_scan32={fmt(t_nb / results['xp_scan32'][0])} "
                f"s_xp_scan32={results['xp_scan32'][0]:.4f} diff_scan32={results['xp_scan32'][1]:.2e}")
        if run_batched:
            line += (f" ratio_xp={fmt(t_nb / results['xp'][0])} s_xp={results['xp'][0]:.4f} "
                     f"diff_xp={results['xp'][1]:.2e}")
        if t_seq is not None:
            line += f" s_numba_sequential={t_seq:.4f}"
        print(line + f" dry_run={int(dry_run)}")


# ---------------------------------------------------------------------- GMM
def part_gmm(dev, dry_run):
    import warnings

    warnings.filterwarnings("ignore", message=".*did not converge.*")
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from em_vs_sklearn import gmm_start, make_gmm_data

    from lvm_core.models.gmm import GaussianMixture

    N, D, K, n_iter = (2_000, 16, 16, 3) if dry_run else (1_000_000, 16, 16, 10)
    X = make_gmm_data(N, D, K)
    w0, m0, p0 = gmm_start(X, K)
    common = dict(n_components=K, covariance_type="full", weights_init=w0, means_init=m0,
                  precisions_init=p0, max_iter=n_iter, tol=0.0)
    print(f"\nGaussianMixture full, N={N} D={D} K={K}, {n_iter} iterations, tol=0; "
          f"device: {dev.name}")
    X_dev = dev.put(X)
    GaussianMixture(**{**common, "max_iter": 1}).fit(X[:2000])  # compile / warm up
    GaussianMixture(**{**common, "max_iter": 1}).fit(X_dev[:2000, ...])
    t_np, g_np = dev.timed(lambda: GaussianMixture(**common).fit(X))
    t_dev, g_dev = dev.timed(lambda: GaussianMixture(**common).fit(X_dev))
    ll_rel = rel_diff(np.asarray(g_dev.lower_bounds_, dtype=float),
                      np.asarray(g_np.lower_bounds_, dtype=float))
    print(f"seconds: device {t_dev:.3f}, NumPy {t_np:.3f}; ratio {t_np / t_dev:.2f}; "
          f"log-likelihoods differ by {ll_rel:.2e} (relative)")
    print(f"RESULT gpu_gmm ratio={fmt(t_np / t_dev)} ll_rel_diff={ll_rel:.2e} "
          f"s_device={t_dev:.4f} s_numpy={t_np:.4f} N={N} iterations={n_iter} "
          f"dry_run={int(dry_run)}")


PARTS = {"vae": part_vae, "hmm": part_hmm, "gmm": part_gmm}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("part", choices=sorted(PARTS) + ["all"])
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny sizes, array-api-strict device1 instead of CuPy")
    args = parser.parse_args(argv)
    dev = Device(args.dry_run)
    for name in (sorted(PARTS) if args.part == "all" else [args.part]):
        PARTS[name](dev, args.dry_run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
