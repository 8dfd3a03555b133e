"""VAE on Fashion-MNIST: lvm_core (handwritten gradients, NumPy + numba) vs PyTorch (CPU autograd).

Configuration (BENCHMARKS.md, "VAE vs PyTorch"): 60k train / 10k test,
pixels / 255 in float32; encoder 784-400-(20 mu, 20 log_var), decoder
20-400-784, ReLU; Bernoulli likelihood on the [0, 1] grey levels (BCE with
logits summed over pixels) + analytic KL (Kingma & Welling 2014); one z
sample; Adam lr 1e-3 with default betas/eps; batch 128 shuffled each epoch; 5
epochs.  Both sides start from the same weights, drawn once with PyTorch's
default nn.Linear scheme (U(+-1/sqrt(fan_in)) for W and b; lvm_core's
init="torch") and copied into the torch model.

The two libraries alternate epoch by epoch in this one process.  lvm_core trains
through its public API only: ``VAE.fit(X, epochs=e, checkpoint=path,
resume=True)`` continues the same run (params, Adam state, rng) one epoch
further each time; its seconds per epoch are ``history_.seconds_per_epoch``
(the training loop, as for torch), and the whole fit call (which also reloads
and saves the checkpoint) is printed too.

Threads: PyTorch ``torch.set_num_threads(2)``; NumPy's BLAS 2 threads
(OPENBLAS/OMP/MKL_NUM_THREADS=2, set before NumPy is imported); the numba
kernels are serial (never parallel kernels together with a threaded BLAS).

Same randomness on both sides: the torch loop draws its shuffles and eps from a
NumPy Generator with the same seed, in the order ``fit`` draws them, so both
see the same batches and noise; the runs then differ only by floating-point
round-off, and the test -ELBO difference measures the implementations.

Test -ELBO: one z per test image, with the same eps (fixed seed) on both sides.
IWAE bound: k = 100 importance samples per test image (Burda et al. 2016).

Usage::

    python benchmarks/vae_vs_torch.py            # full: 5 epochs on 60k images
    python benchmarks/vae_vs_torch.py --quick    # 1 epoch on 10k images

Ends with ``RESULT vae ratio=R nelbo_ours=X nelbo_torch=X nelbo_diff=X`` where
ratio = median torch s/epoch / median ours, diff = ours - torch.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "2"

import argparse  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_tools.mnist import load_mnist_like  # noqa: E402
from lvm_core.models.vae import VAE  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
D, H, L = 784, 400, 20


def load(quick):
    X_train, _, _ = load_mnist_like("fashion-mnist", "train", path=DATA, normalize=True,
                                    dtype="float32", verbose=False, download=False)
    X_test, _, _ = load_mnist_like("fashion-mnist", "test", path=DATA, normalize=True,
                                   dtype="float32", verbose=False, download=False)
    if quick:
        X_train = X_train[:10000]
    return np.ascontiguousarray(X_train), np.ascontiguousarray(X_test)


# ------------------------------------------------------------------ PyTorch
def make_torch(torch, params):
    nn = torch.nn

    class TorchVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(D, H)
            self.fc21 = nn.Linear(H, L)
            self.fc22 = nn.Linear(H, L)
            self.fc3 = nn.Linear(L, H)
            self.fc4 = nn.Linear(H, D)

        def encode(self, x):
            h = torch.relu(self.fc1(x))
            return self.fc21(h), self.fc22(h)

        def decode_logits(self, z):
            return self.fc4(torch.relu(self.fc3(z)))

        def terms(self, x, eps):
            """log p(x|z) (N,) with z = mu + exp(log_var/2) eps, and KL (N,)."""
            mu, log_var = self.encode(x)
            z = mu + torch.exp(0.5 * log_var) * eps
            logits = self.decode_logits(z)
            log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x, reduction="none").sum(1)
            kl = 0.5 * (log_var.exp() + mu * mu - 1.0 - log_var).sum(1)
            return log_px, kl, mu, log_var, z

    model = TorchVAE()
    names = {"fc1": ("enc_W0", "enc_b0"), "fc21": ("enc_W_mu", "enc_b_mu"),
             "fc22": ("enc_W_log_var", "enc_b_log_var"), "fc3": ("dec_W0", "dec_b0"),
             "fc4": ("dec_W_out", "dec_b_out")}
    with torch.no_grad():
        for layer, (w, b) in names.items():
            getattr(model, layer).weight.copy_(torch.from_numpy(params[w].T.copy()))
            getattr(model, layer).bias.copy_(torch.from_numpy(params[b].copy()))
    return model


def torch_epoch(torch, model, opt, X_t, rng, batch_size=128):
    """One training epoch; returns (seconds, mean training loss).

    The shuffle and the eps are drawn from the NumPy Generator ``rng`` in the
    order lvm_core.train.fit_minibatch draws them (a permutation per epoch, then
    eps (1, B, L) float32 per step), so with the same seed both libraries see the
    same batches and the same noise.
    """
    start = time.perf_counter()
    N = X_t.shape[0]
    perm = torch.from_numpy(rng.permutation(N))
    total = torch.zeros(())
    for s in range(0, N, batch_size):
        xb = X_t[perm[s:s + batch_size]]
        eps = torch.from_numpy(rng.standard_normal((1, xb.shape[0], L), dtype=np.float32)[0])
        log_px, kl, _, _, _ = model.terms(xb, eps)
        loss = (kl - log_px).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * xb.shape[0]
    mean_loss = float(total) / N
    return time.perf_counter() - start, mean_loss


def torch_nelbo(torch, model, X_t, eps_t):
    with torch.no_grad():
        log_px, kl, _, _, _ = model.terms(X_t, eps_t)
        return float((kl - log_px).mean())


def torch_iwae(torch, model, X_t, k, seed, batch=100):
    """mean over test images of logsumexp_i log w_i - log k, z_i ~ q(z|x)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for s in range(0, X_t.shape[0], batch):
            x = X_t[s:s + batch]
            n = x.shape[0]
            x_rep = x.unsqueeze(0).expand(k, n, D).reshape(k * n, D)
            eps = torch.randn(k * n, L, generator=gen)
            mu, log_var = model.encode(x)
            mu_r = mu.unsqueeze(0).expand(k, n, L).reshape(k * n, L)
            lv_r = log_var.unsqueeze(0).expand(k, n, L).reshape(k * n, L)
            z = mu_r + torch.exp(0.5 * lv_r) * eps
            logits = model.decode_logits(z)
            log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x_rep, reduction="none").sum(1)
            log_pz_minus_log_qz = -0.5 * (z * z - eps * eps - lv_r).sum(1)
            log_w = (log_px + log_pz_minus_log_qz).reshape(k, n)
            out.append(torch.logsumexp(log_w, 0) - math.log(k))
    return float(torch.cat(out).mean())


# ------------------------------------------------------------------- main
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 epoch on 10k images")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    epochs = args.epochs if args.epochs is not None else (1 if args.quick else 5)

    import torch

    torch.set_num_threads(2)
    torch.manual_seed(args.seed)
    X_train, X_test = load(args.quick)
    n_iwae = 1000 if args.quick else X_test.shape[0]
    print(f"VAE {D}-{H}-({L} mu, {L} log_var) / {L}-{H}-{D}, ReLU, Bernoulli, Adam 1e-3, "
          f"batch 128, {epochs} epoch(s), {X_train.shape[0]} train / {X_test.shape[0]} test")
    print(f"threads: torch {torch.get_num_threads()} (torch {torch.__version__}); NumPy BLAS "
          f"OPENBLAS_NUM_THREADS={os.environ['OPENBLAS_NUM_THREADS']}; numba kernels serial")

    # warm-up (numba compilation / torch first-call costs), not timed
    VAE(D, L, (H,), random_state=1).fit(X_train[:1280], epochs=1, progress=False,
                                        random_state=1)
    warm = make_torch(torch, VAE(D, L, (H,), random_state=1).initialize().params)
    torch_epoch(torch, warm, torch.optim.Adam(warm.parameters(), lr=1e-3),
                torch.from_numpy(X_train[:1280]), np.random.default_rng(1))

    ours = VAE(D, n_latent=L, hidden=(H,), activation="relu", decoder="bernoulli",
               objective="elbo", n_samples=1, init="torch", dtype="float32",
               random_state=args.seed).initialize()
    theirs = make_torch(torch, ours.params)
    opt = torch.optim.Adam(theirs.parameters(), lr=1e-3)
    X_train_t, X_test_t = torch.from_numpy(X_train), torch.from_numpy(X_test)
    rng_torch = np.random.default_rng(args.seed)  # replays fit's draws (see torch_epoch)
    eps_test = np.random.default_rng(123).standard_normal((1, X_test.shape[0], L),
                                                         dtype=np.float32)
    eps_test_t = torch.from_numpy(eps_test[0].copy())

    print(f"{'epoch':>5} | {'ours s':>7} {'(fit call)':>10} {'torch s':>8} {'ratio':>6} | "
          f"{'ours train':>10} {'torch train':>11} | {'ours test -ELBO':>15} "
          f"{'torch test -ELBO':>16} {'diff':>6}")
    t_ours, t_torch = [], []
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "vae_ckpt.h5")
        for epoch in range(1, epochs + 1):
            start = time.perf_counter()
            ours.fit(X_train, epochs=epoch, batch_size=128, lr=1e-3, optimizer="adam",
                     random_state=args.seed, progress=False, checkpoint=ckpt, resume=True)
            call = time.perf_counter() - start
            t_ours.append(ours.history_.seconds_per_epoch[-1])
            sec, loss_torch = torch_epoch(torch, theirs, opt, X_train_t, rng_torch)
            t_torch.append(sec)
            nelbo_ours = -float(np.mean(ours.elbo(X_test, rng=123)))
            nelbo_torch = torch_nelbo(torch, theirs, X_test_t, eps_test_t)
            print(f"{epoch:>5} | {t_ours[-1]:7.3f} {call:10.3f} {t_torch[-1]:8.3f} "
                  f"{t_torch[-1] / t_ours[-1]:6.2f} | {ours.history_.train_loss[-1]:10.2f} "
                  f"{loss_torch:11.2f} | {nelbo_ours:15.2f} {nelbo_torch:16.2f} "
                  f"{nelbo_ours - nelbo_torch:6.2f}", flush=True)

    iwae_ours = float(np.mean(ours.log_marginal(X_test[:n_iwae], n_importance=100, rng=7)))
    iwae_torch = torch_iwae(torch, theirs, X_test_t[:n_iwae], 100, seed=7)
    med_ours, med_torch = float(np.median(t_ours)), float(np.median(t_torch))
    ratio = med_torch / med_ours
    ratio_epochs = float(np.median(np.asarray(t_torch) / np.asarray(t_ours)))
    print(f"median s/epoch: ours {med_ours:.3f}, torch {med_torch:.3f}; ratio {ratio:.2f} "
          f"(median of the per-epoch ratios {ratio_epochs:.2f})")
    print(f"IWAE k=100 bound on {n_iwae} test images (mean log p(x) >=): ours {iwae_ours:.2f}, "
          f"torch {iwae_torch:.2f}")
    print(f"RESULT vae ratio={ratio:.3f} nelbo_ours={nelbo_ours:.3f} "
          f"nelbo_torch={nelbo_torch:.3f} nelbo_diff={nelbo_ours - nelbo_torch:.3f} "
          f"ratio_per_epoch_median={ratio_epochs:.3f} "
          f"s_epoch_ours={med_ours:.3f} s_epoch_torch={med_torch:.3f} "
          f"iwae100_ours={iwae_ours:.3f} iwae100_torch={iwae_torch:.3f} epochs={epochs}")


if __name__ == "__main__":
    main()
