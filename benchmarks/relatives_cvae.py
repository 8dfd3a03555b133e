"""CVAE on Fashion-MNIST with the labels as y: lvm_core vs a PyTorch twin.

Configuration: 60k train / 10k test, pixels / 255 in float32, y the class
label one-hot (C = 10).  Encoder (784 + 10)-400-(20 mu, 20 log_var) on [x, y],
learned prior p(z|y) = N(mu_p(y), diag exp(log_var_p(y))) from one affine
GaussianHead on y (a Gaussian per class), decoder (20 + 10)-400-784 on [z, y];
ReLU; Bernoulli likelihood on the grey levels (BCE with logits summed over
pixels) + the analytic KL between the two Gaussians (Sohn et al. 2015;
Kingma & Welling 2014); one z sample; Adam lr 1e-3 (default betas/eps),
batch 128 shuffled each epoch; 3 epochs (``--quick``: 1 epoch on 1280
images, 500 test).

Both sides start from the same weights (lvm_core's ``init="torch"``, i.e.
nn.Linear's U(+-1/sqrt(fan_in)), copied into the twin) and read the same
packed float32 array [X | onehot(y)] (N, 794).  The twin draws its shuffles
and eps from a NumPy Generator with the same seed in the order
``CVAE.fit`` draws them (per epoch a permutation, then per step eps (1, B,
20) float32), so both see the same batches and noise.  Before timing: the
loss and every gradient of one batch against torch autograd, and the
training loss of a 2-step fit against the twin replaying it.

The two sides alternate in this one process every 25 optimizer steps (not
epoch by epoch: on a shared, busy machine the load changes within seconds, and
finer alternation exposes both sides to the same conditions).  Ours trains
through one ``CVAE.fit`` call; a fit callback (``on_step``) runs the twin's
next 25 steps after every 25 of ours, and each side's seconds per epoch are
the sums of its own blocks (ours: from each callback's return to the next
call, so the twin's time is never counted as ours).  Threads: BLAS 2 threads (set by the driver before NumPy is
imported), numba kernels serial, ``torch.set_num_threads(2)``.

Test bound: the ELBO of log p(x|y) averaged over the 10k test images with one
fixed eps per image, the same eps on both sides (higher is better); also
the IWAE k = 100 bound with each side's own draws.

Measured here (2026-11-30, 3 epochs, every other process paused, NumPy's
OpenBLAS choosing its kernels): ours 1.11-1.75 s/epoch, torch 3.47-3.67 s/epoch,
ratio 2.98 (per-epoch ratios 2.09-3.14); test ELBO ours -245.484, torch -245.459
(diff -0.025); IWAE k=100 -242.71 vs -242.68.  With OPENBLAS_CORETYPE=Haswell
the ratio was 1.91-2.24.  An earlier run alternating epoch by epoch
while the 2 cores carried a load average of 5-7 from other jobs gave a ratio
of 0.54 (ours 37-82 s/epoch, torch 20-63 s): OpenBLAS's threads suffer far
more than torch's from an oversubscribed machine, one reason for the
finer alternation.

Run through the driver::

    python benchmarks/vae_relatives_vs_torch.py --models cvae [--quick] [--epochs E]
"""
from __future__ import annotations

import math
import os
import time

import numpy as np

from data_tools.mnist import load_mnist_like
from lvm_core.models.cvae import CVAE

DATA = "/usr/share/datasets/fashion-mnist"
D, C, H, L = 784, 10, 400, 20
BATCH, LR = 128, 1e-3
QUICK_TRAIN, QUICK_TEST = 1280, 500
EPOCHS = 3


def load(quick):
    """(X_train, y_train, X_test, y_test): grey levels in [0, 1] float32 and int labels."""
    if os.path.isdir(DATA):
        X_tr, y_tr, _ = load_mnist_like("fashion-mnist", "train", path=DATA, normalize=True,
                                        dtype="float32", verbose=False, download=False)
        X_te, y_te, _ = load_mnist_like("fashion-mnist", "test", path=DATA, normalize=True,
                                        dtype="float32", verbose=False, download=False)
    elif quick:
        X, y, _ = load_mnist_like("fashion-mnist", "test", normalize=True, dtype="float32",
                                  verbose=False, download=False)
        X_tr, y_tr, X_te, y_te = X[:QUICK_TRAIN], y[:QUICK_TRAIN], X[-QUICK_TEST:], y[-QUICK_TEST:]
    else:
        raise SystemExit(f"the full Fashion-MNIST is needed in {DATA} (or run with --quick)")
    if quick:
        X_tr, y_tr, X_te, y_te = X_tr[:QUICK_TRAIN], y_tr[:QUICK_TRAIN], X_te[:QUICK_TEST], \
            y_te[:QUICK_TEST]
    return (np.ascontiguousarray(X_tr), np.asarray(y_tr, np.int64),
            np.ascontiguousarray(X_te), np.asarray(y_te, np.int64))


def make_ours(seed):
    return CVAE(D, C, n_latent=L, hidden=(H,), prior_hidden=(), activation="relu",
                decoder="bernoulli", objective="elbo", n_samples=1, init="torch",
                dtype="float32", random_state=seed).initialize()


# ------------------------------------------------------------------ PyTorch twin
NAMES = {"fc1": ("enc_W0", "enc_b0"), "fc21": ("enc_W_mu", "enc_b_mu"),
         "fc22": ("enc_W_log_var", "enc_b_log_var"), "p_mu": ("prior_W_mu", "prior_b_mu"),
         "p_lv": ("prior_W_log_var", "prior_b_log_var"), "fc3": ("dec_W0", "dec_b0"),
         "fc4": ("dec_W_out", "dec_b_out")}


def make_torch(torch, params):
    nn = torch.nn

    class TorchCVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(D + C, H)
            self.fc21 = nn.Linear(H, L)
            self.fc22 = nn.Linear(H, L)
            self.p_mu = nn.Linear(C, L)
            self.p_lv = nn.Linear(C, L)
            self.fc3 = nn.Linear(L + C, H)
            self.fc4 = nn.Linear(H, D)

        def decode_logits(self, z, y):
            return self.fc4(torch.relu(self.fc3(torch.cat([z, y], 1))))

        def terms(self, xy, eps):
            """log p(x|z, y) (N,) with z = mu + exp(log_var/2) eps, and KL(q || p(z|y)) (N,)."""
            x, y = xy[:, :D], xy[:, D:]
            h = torch.relu(self.fc1(xy))
            mu, log_var = self.fc21(h), self.fc22(h)
            mu_p, log_var_p = self.p_mu(y), self.p_lv(y)
            z = mu + torch.exp(0.5 * log_var) * eps
            logits = self.decode_logits(z, y)
            log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x, reduction="none").sum(1)
            kl = 0.5 * (log_var_p - log_var + (log_var.exp() + (mu - mu_p) ** 2)
                        * torch.exp(-log_var_p) - 1.0).sum(1)
            return log_px, kl, mu, log_var, mu_p, log_var_p, z

    model = TorchCVAE()
    with torch.no_grad():
        for layer, (w, b) in NAMES.items():
            getattr(model, layer).weight.copy_(torch.from_numpy(params[w].T.copy()))
            getattr(model, layer).bias.copy_(torch.from_numpy(params[b].copy()))
    return model


def torch_epoch(torch, model, opt, XY_t, rng):
    """One epoch with fit's draw order; returns (seconds, mean training loss)."""
    start = time.perf_counter()
    N = XY_t.shape[0]
    perm = torch.from_numpy(rng.permutation(N))
    total = torch.zeros(())
    for s in range(0, N, BATCH):
        xy = XY_t[perm[s:s + BATCH]]
        eps = torch.from_numpy(rng.standard_normal((1, xy.shape[0], L), dtype=np.float32)[0])
        log_px, kl = model.terms(xy, eps)[:2]
        loss = (kl - log_px).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * xy.shape[0]
    return time.perf_counter() - start, float(total) / N


def torch_elbo(torch, model, XY_t, eps_t):
    with torch.no_grad():
        log_px, kl = model.terms(XY_t, eps_t)[:2]
        return float((log_px - kl).mean())


def torch_iwae(torch, model, XY_t, k, seed, batch=100):
    """mean over rows of logsumexp_r log w_r - log k, z_r ~ q(z|x, y) (torch's own draws)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with torch.no_grad():
        for s in range(0, XY_t.shape[0], batch):
            xy = XY_t[s:s + batch]
            n = xy.shape[0]
            x, y = xy[:, :D], xy[:, D:]
            h = torch.relu(model.fc1(xy))
            mu, lv = model.fc21(h), model.fc22(h)
            mu_p, lv_p = model.p_mu(y), model.p_lv(y)
            eps = torch.randn(k, n, L, generator=gen)
            z = mu + torch.exp(0.5 * lv) * eps  # (k, n, L)
            logits = model.decode_logits(z.reshape(k * n, L), y.repeat(k, 1))
            log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x.repeat(k, 1), reduction="none").sum(1).reshape(k, n)
            log_pz_qz = -0.5 * ((z - mu_p) ** 2 * torch.exp(-lv_p) + lv_p - eps ** 2
                                - lv).sum(2)
            out.append(torch.logsumexp(log_px + log_pz_qz, 0) - math.log(k))
    return float(torch.cat(out).mean())


def check_twin(torch, ours, theirs, XY_train, seed, tol=1e-4):
    """One batch: loss and gradients vs torch autograd; a 2-step fit vs the twin replaying it."""
    xy = np.ascontiguousarray(XY_train[:BATCH])
    eps = np.random.default_rng(99).standard_normal((1, BATCH, L), dtype=np.float32)
    loss_o, g_o = ours.loss_and_grads(xy, eps=eps)
    theirs.zero_grad(set_to_none=True)
    log_px, kl = theirs.terms(torch.from_numpy(xy), torch.from_numpy(eps[0]))[:2]
    loss_t = (kl - log_px).mean()
    loss_t.backward()
    worst, where = 0.0, None
    for layer, (w, b) in NAMES.items():
        for key, grad in ((w, getattr(theirs, layer).weight.grad.numpy().T),
                          (b, getattr(theirs, layer).bias.grad.numpy())):
            d = float(np.max(np.abs(np.asarray(g_o[key]) - grad))) / (
                float(np.max(np.abs(grad))) or 1.0)
            if d > worst:
                worst, where = d, key
    theirs.zero_grad(set_to_none=True)
    rel_loss = abs(float(loss_o) - loss_t.item()) / abs(loss_t.item())
    n2 = min(2 * BATCH, XY_train.shape[0])
    probe = make_ours(seed)
    probe.fit(XY_train[:n2, :D], XY_train[:n2, D:], epochs=1, batch_size=BATCH, lr=LR,
              random_state=seed, progress=False)
    twin = make_torch(torch, make_ours(seed).params)
    _, loss_t2 = torch_epoch(torch, twin, torch.optim.Adam(twin.parameters(), lr=LR),
                             torch.from_numpy(np.ascontiguousarray(XY_train[:n2])),
                             np.random.default_rng(seed))
    rel_fit = abs(probe.history_.train_loss[0] - loss_t2) / abs(loss_t2)
    rows = [("first batch loss, ours vs torch", rel_loss, ""),
            ("first batch gradients, ours vs torch (worst parameter)", worst, where),
            (f"fit on {n2} rows (2 Adam steps), training loss", rel_fit, "")]
    print("twin checks (float32, relative differences):")
    for what, rel, at in rows:
        print(f"  {what:<58} {rel:9.2e} {at or '':>14} {'ok' if rel <= tol else 'MISMATCH'}")
    if any(rel > tol for _, rel, _ in rows):
        raise SystemExit("CVAE twin check failed: the twin does not compute the same thing")
    return rows


class TorchStepper:
    """The twin's training steps in fit's draw order (a permutation at each epoch start,
    then eps (1, B, L) float32 per step), run a few steps at a time."""

    def __init__(self, torch, model, opt, XY_t, rng):
        self.torch, self.model, self.opt, self.XY_t, self.rng = torch, model, opt, XY_t, rng
        self.N = XY_t.shape[0]
        self.n_steps = -(-self.N // BATCH)
        self.s = 0
        self.perm = None
        self.total = None
        self.epoch_losses = []

    def run(self, n):
        torch = self.torch
        for _ in range(n):
            if self.s == 0:
                self.perm = torch.from_numpy(self.rng.permutation(self.N))
                self.total = torch.zeros(())
            xy = self.XY_t[self.perm[self.s * BATCH:(self.s + 1) * BATCH]]
            eps = torch.from_numpy(self.rng.standard_normal((1, xy.shape[0], L),
                                                            dtype=np.float32)[0])
            log_px, kl = self.model.terms(xy, eps)[:2]
            loss = (kl - log_px).mean()
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            self.opt.step()
            self.total += loss.detach() * xy.shape[0]
            self.s += 1
            if self.s == self.n_steps:
                self.epoch_losses.append(float(self.total) / self.N)
                self.s = 0


class Interleave:
    """fit callback: after every ``block`` of our steps, the twin takes the same number of
    steps; each side's wall time is summed per epoch (ours: from each callback's return
    to the next call, so the twin's steps are never counted as ours)."""

    def __init__(self, stepper, block, on_epoch_end):
        self.stepper, self.block, self.on_epoch_end = stepper, block, on_epoch_end
        self.ours, self.theirs = [], []
        self.acc_ours = self.acc_theirs = 0.0
        self.pending = 0
        self.t_last = None

    def start(self):
        self.t_last = time.perf_counter()

    def _flush(self):
        t = time.perf_counter()
        self.stepper.run(self.pending)
        self.acc_theirs += time.perf_counter() - t
        self.pending = 0

    def on_step(self, info):
        self.acc_ours += time.perf_counter() - self.t_last
        self.pending += 1
        if self.pending >= self.block:
            self._flush()
        self.t_last = time.perf_counter()

    def on_epoch(self, info):
        self.acc_ours += time.perf_counter() - self.t_last
        self._flush()
        self.ours.append(self.acc_ours)
        self.theirs.append(self.acc_theirs)
        self.acc_ours = self.acc_theirs = 0.0
        self.on_epoch_end(info)
        self.t_last = time.perf_counter()


def run(epochs=None, quick=False, seed=0, block=25):
    """Train both sides, interleaved in blocks of ``block`` steps; return the figures."""
    import torch

    epochs = (1 if quick else EPOCHS) if epochs is None else int(epochs)
    X_tr, y_tr, X_te, y_te = load(quick)
    print(f"CVAE: ({D}+{C})-{H}-({L} mu, {L} log_var) / prior {C}-({L}, {L}) / "
          f"({L}+{C})-{H}-{D}, relu, Bernoulli, ELBO, 1 sample, Adam {LR:g}, batch {BATCH}, "
          f"{epochs} epoch(s), {X_tr.shape[0]} train / {X_te.shape[0]} test; torch "
          f"{torch.__version__} {torch.get_num_threads()} threads; load average "
          f"{os.getloadavg()[0]:.1f}; the sides alternate every {block} steps")
    # warm-up (numba compilation, torch first calls), not timed
    warm = make_ours(1)
    XY_tr = warm.pack(X_tr, y_tr)
    XY_te = warm.pack(X_te, y_te)
    warm.fit(XY_tr[:1280, :D], y_tr[:1280], epochs=1, progress=False, random_state=1)
    tw = make_torch(torch, make_ours(1).params)
    torch_epoch(torch, tw, torch.optim.Adam(tw.parameters(), lr=LR),
                torch.from_numpy(np.ascontiguousarray(XY_tr[:1280])), np.random.default_rng(1))

    ours = make_ours(seed)
    theirs = make_torch(torch, ours.params)
    check_twin(torch, ours, theirs, XY_tr, seed)
    opt = torch.optim.Adam(theirs.parameters(), lr=LR)
    XY_te_t = torch.from_numpy(XY_te)
    stepper = TorchStepper(torch, theirs, opt, torch.from_numpy(XY_tr), np.random.default_rng(seed))
    eps_te = np.random.default_rng(123).standard_normal((1, X_te.shape[0], L), dtype=np.float32)
    eps_te_t = torch.from_numpy(eps_te[0].copy())
    bounds = {}
    print(f"{'epoch':>5} | {'ours s':>7} {'torch s':>8} {'ratio':>6} | train loss ours torch | "
          "test ELBO ours torch")

    def report(info):
        bounds["ours"] = _ours_elbo(ours, XY_te, eps_te)
        bounds["torch"] = torch_elbo(torch, theirs, XY_te_t, eps_te_t)
        e = info.epoch
        t_o, t_t = inter.ours[-1], inter.theirs[-1]
        print(f"{e:>5} | {t_o:7.3f} {t_t:8.3f} {t_t / t_o:6.2f} | "
              f"{info.history.train_loss[-1]:.3f} {stepper.epoch_losses[-1]:.3f} | "
              f"{bounds['ours']:.3f} {bounds['torch']:.3f}", flush=True)

    inter = Interleave(stepper, block, report)
    inter.start()
    ours.fit(X_tr, y_tr, epochs=epochs, batch_size=BATCH, lr=LR, random_state=seed,
             progress=False, callbacks=[inter])
    med_o, med_t = float(np.median(inter.ours)), float(np.median(inter.theirs))
    per_epoch = float(np.median(np.asarray(inter.theirs) / np.asarray(inter.ours)))
    n_iwae = min(500, X_te.shape[0]) if quick else X_te.shape[0]
    iwae_o = float(np.mean(ours.log_marginal(XY_te[:n_iwae], n_importance=100, rng=7)))
    iwae_t = torch_iwae(torch, theirs, XY_te_t[:n_iwae], 100, seed=7)
    print(f"median s/epoch: ours {med_o:.3f}, torch {med_t:.3f}, ratio {med_t / med_o:.2f} "
          f"(median of the per-epoch ratios {per_epoch:.2f}); IWAE k=100 on {n_iwae} test "
          f"images: ours {iwae_o:.2f}, torch {iwae_t:.2f}")
    return {"ratio": med_t / med_o, "bound_ours": bounds["ours"], "bound_torch": bounds["torch"],
            "bound_diff": bounds["ours"] - bounds["torch"], "ratio_per_epoch_median": per_epoch,
            "s_epoch_ours": med_o, "s_epoch_torch": med_t, "iwae100_ours": iwae_o,
            "iwae100_torch": iwae_t, "epochs": epochs, "block_steps": block}


def _ours_elbo(model, XY, eps, chunk=2000):
    """Mean test ELBO of log p(x|y) for the fixed eps (1, N, L), through loss_and_grads."""
    total = 0.0
    for s in range(0, XY.shape[0], chunk):
        n = min(chunk, XY.shape[0] - s)
        loss, _ = model.loss_and_grads(XY[s:s + n], eps=np.ascontiguousarray(eps[:, s:s + n]))
        total -= float(loss) * n
    return total / XY.shape[0]
