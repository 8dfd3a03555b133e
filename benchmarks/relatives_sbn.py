"""VAE with 200 Bernoulli latents (sigmoid belief net posterior and prior):
lvm_core vs a PyTorch twin on dynamically binarised Fashion-MNIST, trained with
the binary Gumbel-softmax relaxation and with NVIL.

Configuration (one module of ``benchmarks/vae_relatives_vs_torch.py``; also runs
on its own: ``python benchmarks/relatives_sbn.py [--quick] [--epochs E]
[--estimators gumbel,nvil,nvil64]``):

- data: Fashion-MNIST 60k train / 10k test, pixels / 255 in float32; every
  training batch is binarised afresh, x_b = 1[v < x] with v ~ U[0, 1) (dynamic
  binarisation); the test set is binarised once with a fixed seed (the same
  binary test images for both sides);
- model: ``SBNVAE(784, n_latent=200, hidden=(200,), activation="tanh")``:
  q(z|x) logits from 784-200-200 (tanh), p(x|z) logits from 200-200-784 (tanh),
  p(z) factorised Bernoulli with learned logits (Mnih & Gregor 2014's SBN
  with one deterministic hidden layer in each network);
- estimators, each trained from the same initial weights, one z per image:
  * ``gumbel`` (the RESULT line's main keys): the binary Concrete relaxation
    y = sigmoid((a + nu) / 0.5) in the decoder with the analytic Bernoulli KL
    (Maddison et al. 2017; Jang et al. 2017);
  * ``nvil`` (keys ``nvil_*``): the score-function estimator of Mnih & Gregor
    2014: learning signal f = log p(x, z) - log q(z|x), input-dependent
    baseline b(x) from a 784-100-1 tanh network trained by regression on
    f - c, running mean c and variance v of f - b(x) (decay 0.9), signal
    (f - c - b(x)) / max(1, sqrt v);
  * ``nvil64`` (keys ``nvil64_*``): the same NVIL run with both sides in float64
    (draws, data and arithmetic), then 9 further seeds (new weights, batches
    and draws; untimed): ``nvil64_seeds_diff_mean`` and ``_se`` are the mean
    difference of the test bounds (ours - twin) over the 10 seeds and its
    standard error;
- Adam lr 1e-3 (default betas/eps) on every parameter (NVIL's baseline network
  included), batch 128, shuffled each epoch, 3 epochs (``--quick``: 1 epoch on
  1280 images, 500 test images);
- initial weights drawn once with PyTorch's nn.Linear scheme (lvm_core's
  ``init="torch"``) and copied into the twin; prior logits start at 0;
- float32 on both sides (but ``nvil64``); threads: the driver's budget (2) for
  NumPy's BLAS (set before NumPy is imported) and ``torch.set_num_threads``.

Why three runs, and the floor.  A score-function run is chaotic: a hard sample
z = 1[a + nu > 0] flips when a moves by round-off next to the threshold, and
Adam's first step is lr * g / (|g| + eps), about +-lr for any gradient above
eps = 1e-8, so gradients that are zero in exact arithmetic (NVIL's baseline
bias at the first step, where c is the batch mean of f - b(x)) become +-lr steps
whose sign is the sign of the round-off.  Two correct implementations that sum
in different orders therefore part ways the way two seeds do.  In float64 the
twins agree to 1e-15 in the first batch's gradients and stay within 1e-7 in
every weight for about 100 steps; then a first flipped sample separates them
(seen by training both for 1 to 400 steps and comparing every weight).  Each
run measures this floor: a second twin starts from the weights multiplied by
(1 + d e), e ~ N(0, 1) (d = 1e-7 in float32, 1e-12 in float64), with the same
draws, and ``floor_diff`` is its bound minus the twin's.  The relaxed estimator
has a continuous forward pass, so round-off stays round-off and its bounds can
be compared to a fraction of a nat run by run.  For NVIL the question "does
our implementation train to the same bound as the twin" is answered by the
mean difference over seeds: a systematic difference would show there, the
chaotic one averages out.

Same randomness on both sides: the twin draws from a NumPy Generator with the
same seed, in the order ``SBNVAE.fit`` draws (per epoch a permutation of the
rows; per step the binarisation v (B, 784) then u (1, B, 200) float32), and
computes nu = log u - log(1 - u) with u clipped as lvm_core clips it.  Before
anything is timed, one batch's loss and gradients (NVIL at a fixed running
state c, v) are compared with torch autograd of the twin's surrogate, and a
2-step fit with the twin replaying the same draws.

lvm_core trains through its public API: ``fit(X, epochs=e, checkpoint=path,
resume=True, dynamic_binarization=True)`` continues the run one epoch further
each time (params, Adam state, generator and the running state c, v are in the
checkpoint); its seconds per epoch are ``history_.seconds_per_epoch``.  The
sides alternate epoch by epoch in this one process.

Test bounds of the discrete model (whatever the estimator), with the same fixed
draws on all sides: the ELBO with one z per test image (u from seed 123) and
the importance-weighted bound with k = 10 (u (10, rows, 200) per chunk of 1000
images from seed 456); ``bound_*`` is the k = 10 bound (mean nats per image;
higher is better); ``ratio`` is twin s/epoch over ours (medians).

Measured here (2026-11-30, 2 threads, every other process paused, NumPy's
OpenBLAS choosing its kernels, 3 epochs; ``python benchmarks/vae_relatives_vs_torch.py
--models sbn``): Gumbel-softmax 0.89 s/epoch ours, 1.50 s torch, ratio 1.68, test
IWAE-10 -264.504 both (diff +0.0002 nats); NVIL (float32) 0.90 s/epoch ours,
1.82 s torch, ratio 2.02, test IWAE-10 -288.55 ours, -287.39 torch (diff -1.16
nats, floor +1.89: a twin nudged by 1e-7 moves as far); NVIL in float64:
first-batch gradients equal to 1.5e-15, diff +0.27 nats after 3 epochs with a
floor of +1.91, and over 10 seeds a mean difference of -0.18 nats with standard
error 0.58: no systematic difference.  With OPENBLAS_CORETYPE=Haswell: ratios 1.33 and 1.48.
On a busy machine two BLAS threads per side made single epochs 5-20x slower on
both sides; the ratios of such runs mean nothing.
"""
from __future__ import annotations

import os
import sys

if __name__ == "__main__":  # run on its own: cap BLAS threads before NumPy is imported
    for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(_var, "2")

import math  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_tools.mnist import load_mnist_like  # noqa: E402
from lvm_core.models.sbn import SBNVAE  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
D, L, H, H_BL = 784, 200, 200, 100
BATCH, LR, DECAY, EPOCHS, TAU = 128, 1e-3, 0.9, 3, 0.5
QUICK_TRAIN, QUICK_TEST = 1280, 500
K_IWAE, CHUNK = 10, 1000
#: the first is the RESULT line's estimator (see the module docstring for why)
ESTIMATORS_RUN = ("gumbel", "nvil", "nvil64")
N_SEEDS = 9  # further float64 NVIL seeds (untimed): the mean of its bound difference


def load(quick):
    """(X_train, X_test) float32 grey levels in [0, 1] (--quick: the first rows)."""
    if os.path.isdir(DATA):
        X_train, _, _ = load_mnist_like("fashion-mnist", "train", path=DATA, normalize=True,
                                        dtype="float32", verbose=False, download=False)
        X_test, _, _ = load_mnist_like("fashion-mnist", "test", path=DATA, normalize=True,
                                       dtype="float32", verbose=False, download=False)
    elif quick:
        X, _, _ = load_mnist_like("fashion-mnist", "test", normalize=True, dtype="float32",
                                  verbose=False, download=False)
        X_train, X_test = X[:QUICK_TRAIN], X[-QUICK_TEST:]
    else:
        raise SystemExit(f"the full Fashion-MNIST is needed in {DATA} (or run with --quick)")
    if quick:
        X_train, X_test = X_train[:QUICK_TRAIN], X_test[:QUICK_TEST]
    return np.ascontiguousarray(X_train), np.ascontiguousarray(X_test)


def split_name(estimator):
    """("nvil", "float64") for "nvil64": a trailing 64 runs both sides in float64."""
    if estimator.endswith("64"):
        return estimator[:-2], "float64"
    return estimator, "float32"


def make_ours(seed, estimator="nvil"):
    est, dtype = split_name(estimator)
    return SBNVAE(D, n_latent=L, hidden=(H,), activation="tanh", estimator=est,
                  n_samples=1, temperature=TAU, baseline_decay=DECAY, baseline_hidden=(H_BL,),
                  init="torch", dtype=dtype, random_state=seed).initialize()


# ------------------------------------------------------------------ PyTorch twin
def make_torch(torch, params, estimator="nvil"):
    nn = torch.nn
    estimator, dtype = split_name(estimator)

    class TorchSBN(nn.Module):
        """q(z|x), p(x|z), p(z) and the NVIL baseline b(x), written from the equations."""

        def __init__(self):
            super().__init__()
            self.enc0, self.enc_out = nn.Linear(D, H), nn.Linear(H, L)
            self.dec0, self.dec_out = nn.Linear(L, H), nn.Linear(H, D)
            if estimator == "nvil":
                self.bl0, self.bl_out = nn.Linear(D, H_BL), nn.Linear(H_BL, 1)
            self.prior_logits = nn.Parameter(torch.zeros(L))
            self.state = None  # running (c, v) of f - b(x)

        def q_logits(self, x):
            return self.enc_out(torch.tanh(self.enc0(x)))

        def log_weights(self, x, u):
            """f = log p(x|z) + log p(z) - log q(z|x) (R, N) with z = 1[a + nu > 0], and
            the pieces of the surrogate."""
            a = self.q_logits(x)  # (N, L)
            fi = torch.finfo(u.dtype)
            u = u.clamp(min=fi.smallest_normal, max=1.0 - fi.eps / 2)
            z = (a + (torch.log(u) - torch.log1p(-u)) > 0).to(x.dtype)  # (R, N, L)
            logits = self.dec_out(torch.tanh(self.dec0(z)))
            log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x.expand(z.shape[0], -1, -1), reduction="none").sum(-1)
            sp = torch.nn.functional.softplus
            b = self.prior_logits
            log_pz = (z * b - sp(b)).sum(-1)
            log_q = (z * a - sp(a)).sum(-1)
            return log_px + log_pz - log_q, log_px + log_pz, log_q

        def relaxed(self, x, u):
            """Gumbel-softmax: -mean log p(x|y) + mean KL(q || p), y = sigmoid((a + nu) / tau)."""
            a = self.q_logits(x)
            fi = torch.finfo(u.dtype)
            u = u.clamp(min=fi.smallest_normal, max=1.0 - fi.eps / 2)
            y = torch.sigmoid((a + torch.log(u) - torch.log1p(-u)) / TAU)
            logits = self.dec_out(torch.tanh(self.dec0(y)))
            log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                logits, x.expand(y.shape[0], -1, -1), reduction="none").sum(-1)
            sp = torch.nn.functional.softplus
            b = self.prior_logits
            kl = (torch.sigmoid(a) * (a - b) - sp(a) + sp(b)).sum(-1)
            loss = -log_px.mean() + kl.mean()
            return loss, loss.detach()

        def surrogate(self, x, u, update=True):
            """NVIL: -mean log p(x, z) - mean A log q(z|x) + 1/2 mean (f - c - b(x))^2.
            Returns (surrogate, the loss lvm_core reports)."""
            if estimator == "gumbel":
                return self.relaxed(x, u)
            f, log_pxz, log_q = self.log_weights(x, u)
            f = f.detach()
            bx = self.bl_out(torch.tanh(self.bl0(x)))[:, 0]
            resid = f - bx.detach()
            m, v = resid.mean(), resid.var(unbiased=False)
            if self.state is None:
                state = (m, v)
                new = state
            else:
                state = self.state
                new = (DECAY * state[0] + (1 - DECAY) * m, DECAY * state[1] + (1 - DECAY) * v)
            if update:
                self.state = new
            c, var = state
            A = (resid - c) / torch.clamp(torch.sqrt(var), min=1.0)
            loss = -log_pxz.mean() - (A * log_q).mean() + 0.5 * ((f - c - bx) ** 2).mean()
            return loss, -f.mean()

    model = TorchSBN()
    if dtype == "float64":
        model = model.double()  # before the copy: the weights must not pass through float32
    with torch.no_grad():
        for name, key in TORCH_KEYS.items():
            if not hasattr(model, name):
                continue
            layer = getattr(model, name)
            layer.weight.copy_(torch.from_numpy(params[key.format("W")].T.copy()))
            layer.bias.copy_(torch.from_numpy(params[key.format("b")].copy()))
        model.prior_logits.copy_(torch.from_numpy(params["prior_logits"].copy()))
    return model


def np_dtype(model):
    """The NumPy dtype of the twin's parameters (the draws and data are made in it)."""
    return np.float64 if str(model.prior_logits.dtype) == "torch.float64" else np.float32


TORCH_KEYS = {"enc0": "enc_{}0", "enc_out": "enc_{}_out", "dec0": "dec_{}0",
              "dec_out": "dec_{}_out", "bl0": "bl_{}0", "bl_out": "bl_{}_out"}


def torch_grads(model):
    """The twin's gradients under lvm_core's names and layouts."""
    g = {"prior_logits": model.prior_logits.grad.numpy().copy()}
    for name, key in TORCH_KEYS.items():
        if not hasattr(model, name):
            continue
        layer = getattr(model, name)
        g[key.format("W")] = layer.weight.grad.numpy().T.copy()
        g[key.format("b")] = layer.bias.grad.numpy().copy()
    return g


def torch_epoch(torch, model, opt, X, rng, batch_size=BATCH):
    """One epoch with fit's draws from ``rng``; returns (seconds, mean training -ELBO)."""
    start = time.perf_counter()
    N = X.shape[0]
    dt = np_dtype(model)
    perm = rng.permutation(N)
    total = 0.0
    for s in range(0, N, batch_size):
        xb = X[perm[s:s + batch_size]].astype(dt, copy=False)
        v = rng.random(xb.shape, dtype=dt)
        xb_t = torch.from_numpy((v < xb).astype(dt))
        u = torch.from_numpy(rng.random((1, xb.shape[0], L), dtype=dt))
        loss, nelbo = model.surrogate(xb_t, u)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += float(nelbo) * xb.shape[0]
    return time.perf_counter() - start, total / N


def bounds_torch(torch, model, X_bin, u_elbo, iwae_draws):
    dt = np_dtype(model)
    with torch.no_grad():
        x = torch.from_numpy(X_bin.astype(dt))
        elbo = float(model.log_weights(x, torch.from_numpy(u_elbo.astype(dt)))[0].mean())
        parts = []
        for s, u in iwae_draws:
            f = model.log_weights(x[s:s + u.shape[1]], torch.from_numpy(u.astype(dt)))[0]
            parts.append(torch.logsumexp(f, 0) - math.log(u.shape[0]))
        return elbo, float(torch.cat(parts).mean())


def bounds_ours(model, X_bin, u_elbo, iwae_draws):
    elbo = float(np.mean(model.elbo(X_bin, u=u_elbo)))
    parts = [model.log_marginal(X_bin[s:s + u.shape[1]], u=u) for s, u in iwae_draws]
    return elbo, float(np.mean(np.concatenate(parts)))


def max_rel_diff(ours, peer):
    """max over keys of max|ours - peer| / max|peer|, and the key."""
    worst, where = 0.0, None
    for k, ref in peer.items():
        ref = np.asarray(ref, np.float64)
        scale = float(np.max(np.abs(ref))) or 1.0
        d = float(np.max(np.abs(np.asarray(ours[k], np.float64) - ref))) / scale
        if d > worst:
            worst, where = d, k
    return worst, where


def check_twins(torch, X_train, seed, estimator, tol=1e-4):
    """One batch's loss and gradients (NVIL at a fixed (c, v)), and a 2-step fit, ours vs torch."""
    ours = make_ours(seed, estimator)
    twin = make_torch(torch, ours.params, estimator)
    dt = np_dtype(twin)
    rng = np.random.default_rng(99)
    xb = (rng.random((BATCH, D), dtype=dt) < X_train[:BATCH]).astype(dt)
    u = rng.random((1, BATCH, L), dtype=dt)
    c, v = dt(-400.0), dt(900.0)
    ours.baseline_state_ = {"mean": c, "var": v}
    loss_o, g_o = ours.loss_and_grads(xb, u=u, update_baseline=False)
    twin.state = (torch.tensor(c), torch.tensor(v))
    surrogate, loss_t = twin.surrogate(torch.from_numpy(xb), torch.from_numpy(u), update=False)
    surrogate.backward()
    g_t = torch_grads(twin)
    rows = [("first batch loss, ours vs torch", abs(float(loss_o) - float(loss_t))
             / abs(float(loss_t)), ""),
            ("first batch gradients, ours vs torch",) + max_rel_diff(g_o, g_t)]
    n2 = min(2 * BATCH, X_train.shape[0])
    probe = make_ours(seed, estimator)
    probe.fit(X_train[:n2], epochs=1, batch_size=BATCH, lr=LR, random_state=seed,
              progress=False, dynamic_binarization=True)
    twin = make_torch(torch, make_ours(seed, estimator).params, estimator)
    _, loss_t2 = torch_epoch(torch, twin, torch.optim.Adam(twin.parameters(), lr=LR),
                             X_train[:n2], np.random.default_rng(seed))
    loss_f = probe.history_.train_loss[0]
    rows.append((f"fit on {n2} rows (2 Adam steps), training loss, ours vs torch",
                 abs(loss_f - loss_t2) / abs(loss_t2), ""))
    print(f"twin checks, {estimator} ({dt.__name__}; relative differences, gradients max|diff| / "
          "max|torch| per parameter, worst shown):")
    bad = False
    for what, rel, where in rows:
        bad |= rel > tol
        print(f"  {what:<62} {rel:9.2e} {where or '':>12} {'ok' if rel <= tol else 'MISMATCH'}")
    if bad:
        raise SystemExit(f"twin check failed (tolerance {tol:g}): the twin does not compute "
                         "the same thing as lvm_core; no timing is meaningful")
    return rows


#: the relative size of the floor's nudge: about one unit of round-off in float32; in
#: float64 a nudge of one unit (2e-16) leaves most weights unchanged and the twin replays
#: its own round-off exactly, so the floor there is 1e-12 (still far below any weight
#: difference that could matter, as a trajectory that stays put would show)
NUDGE = {"float32": 1e-7, "float64": 1e-12}


def perturbed(params, seed):
    """params with every entry multiplied by (1 + rel e), e ~ N(0, 1): a round-off-sized nudge."""
    rng = np.random.default_rng(seed + 1000)
    return {k: (v * (1.0 + NUDGE[v.dtype.name] * rng.standard_normal(v.shape))).astype(v.dtype)
            for k, v in params.items()}


def run_estimator(torch, estimator, X_train, X_eval, epochs, seed):
    """Train ours, the twin and the twin from round-off-perturbed weights (the floor)."""
    X_test_bin, u_elbo, iwae_draws = X_eval
    check_twins(torch, X_train, seed, estimator)
    ours = make_ours(seed, estimator)
    sides = {"torch": make_torch(torch, ours.params, estimator),
             "floor": make_torch(torch, perturbed(ours.params, seed), estimator)}
    opts = {k: torch.optim.Adam(m.parameters(), lr=LR) for k, m in sides.items()}
    rngs = {k: np.random.default_rng(seed) for k in sides}
    times = {"ours": [], "torch": []}
    print(f"{estimator}: {'epoch':>5} | {'ours s':>7} {'torch s':>8} {'ratio':>6} | train loss "
          f"ours torch | test ELBO ours torch floor | test IWAE-{K_IWAE} ours torch floor")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "sbn_ckpt.h5")
        for epoch in range(1, epochs + 1):
            ours.fit(X_train, epochs=epoch, batch_size=BATCH, lr=LR, random_state=seed,
                     progress=False, checkpoint=ckpt, resume=True, dynamic_binarization=True)
            times["ours"].append(ours.history_.seconds_per_epoch[-1])
            train = {}
            for k, m in sides.items():
                sec, train[k] = torch_epoch(torch, m, opts[k], X_train, rngs[k])
                if k == "torch":
                    times["torch"].append(sec)
            b = {"ours": bounds_ours(ours, X_test_bin, u_elbo, iwae_draws)}
            for k, m in sides.items():
                b[k] = bounds_torch(torch, m, X_test_bin, u_elbo, iwae_draws)
            print(f"{'':>{len(estimator) + 1}} {epoch:>5} | {times['ours'][-1]:7.3f} "
                  f"{times['torch'][-1]:8.3f} {times['torch'][-1] / times['ours'][-1]:6.2f} | "
                  f"{ours.history_.train_loss[-1]:8.3f} {train['torch']:8.3f} | "
                  + " ".join(f"{b[k][0]:8.3f}" for k in ("ours", "torch", "floor")) + " | "
                  + " ".join(f"{b[k][1]:8.3f}" for k in ("ours", "torch", "floor")),
                  flush=True)
    med = {k: float(np.median(v)) for k, v in times.items()}
    out = dict(ratio=med["torch"] / med["ours"], bound_ours=b["ours"][1],
               bound_torch=b["torch"][1], bound_diff=b["ours"][1] - b["torch"][1],
               floor_diff=b["floor"][1] - b["torch"][1], elbo_ours=b["ours"][0],
               elbo_torch=b["torch"][0], elbo_diff=b["ours"][0] - b["torch"][0],
               s_epoch_ours=med["ours"], s_epoch_torch=med["torch"])
    print(f"{estimator}: median s/epoch ours {med['ours']:.3f}, torch {med['torch']:.3f}, ratio "
          f"{out['ratio']:.2f}; test IWAE-{K_IWAE} ours {out['bound_ours']:.3f}, torch "
          f"{out['bound_torch']:.3f}: diff {out['bound_diff']:+.3f} nats; torch from weights "
          f"nudged by {NUDGE[split_name(estimator)[1]]:g} vs torch: {out['floor_diff']:+.3f} nats")
    return out


def seed_spread(torch, estimator, X_train, X_eval, epochs, seeds):
    """IWAE-10 bound differences ours - twin over further seeds (new weights, batches and
    draws per seed; untimed): is a difference systematic or the run-to-run spread?"""
    X_test_bin, u_elbo, iwae_draws = X_eval
    diffs = []
    for sd in seeds:
        ours = make_ours(sd, estimator)
        twin = make_torch(torch, ours.params, estimator)
        opt, rng = torch.optim.Adam(twin.parameters(), lr=LR), np.random.default_rng(sd)
        ours.fit(X_train, epochs=epochs, batch_size=BATCH, lr=LR, random_state=sd,
                 progress=False, dynamic_binarization=True)
        for _ in range(epochs):
            torch_epoch(torch, twin, opt, X_train, rng)
        b_o = bounds_ours(ours, X_test_bin, u_elbo, iwae_draws)[1]
        b_t = bounds_torch(torch, twin, X_test_bin, u_elbo, iwae_draws)[1]
        diffs.append(b_o - b_t)
        print(f"{estimator}: seed {sd}: test IWAE-{K_IWAE} ours {b_o:.3f}, torch {b_t:.3f}, "
              f"diff {b_o - b_t:+.3f}", flush=True)
    return diffs


def run(epochs=None, quick=False, seed=0, estimators=ESTIMATORS_RUN, n_seeds=None):
    import torch

    epochs = (1 if quick else EPOCHS) if epochs is None else int(epochs)
    X_train, X_test = load(quick)
    N_test = X_test.shape[0]
    print(f"SBN VAE, {L} Bernoulli latents, q: {D}-{H}-{L} tanh, p: {L}-{H}-{D} tanh, "
          f"factorised Bernoulli prior; estimators {', '.join(estimators)} (NVIL: baseline "
          f"{D}-{H_BL}-1 tanh, decay {DECAY}; Gumbel-softmax: temperature {TAU}), 1 z per "
          f"image; Adam {LR:g}, batch {BATCH}, {epochs} epoch(s), dynamic binarisation; "
          f"{X_train.shape[0]} train / {N_test} test")
    print(f"threads: torch {torch.get_num_threads()} (torch {torch.__version__}); "
          f"OPENBLAS_NUM_THREADS={os.environ.get('OPENBLAS_NUM_THREADS')}; load average "
          f"{os.getloadavg()[0]:.1f}")
    # warm-up (numba compilation, torch first calls), not timed
    for est in estimators:
        make_ours(1, est).fit(X_train[:512], epochs=1, progress=False, random_state=1,
                              dynamic_binarization=True)
        warm = make_torch(torch, make_ours(1, est).params, est)
        torch_epoch(torch, warm, torch.optim.Adam(warm.parameters(), lr=LR), X_train[:512],
                    np.random.default_rng(1))
    rng_bin = np.random.default_rng(321)
    X_test_bin = (rng_bin.random(X_test.shape, dtype=np.float32) < X_test).astype(np.float32)
    u_elbo = np.random.default_rng(123).random((1, N_test, L), dtype=np.float32)
    rng_iw = np.random.default_rng(456)
    iwae_draws = [(s, rng_iw.random((K_IWAE, min(CHUNK, N_test - s), L), dtype=np.float32))
                  for s in range(0, N_test, CHUNK)]
    X_eval = (X_test_bin, u_elbo, iwae_draws)
    res = {est: run_estimator(torch, est, X_train, X_eval, epochs, seed) for est in estimators}
    main = res[estimators[0]]
    out = dict(main, estimator=estimators[0], epochs=epochs)
    for est in estimators[1:]:
        out.update({f"{est}_{k}": v for k, v in res[est].items()
                    if k in ("ratio", "bound_ours", "bound_torch", "bound_diff", "floor_diff",
                             "elbo_diff")})
    n_seeds = (1 if quick else N_SEEDS) if n_seeds is None else int(n_seeds)
    for est in estimators if n_seeds > 0 else ():
        if split_name(est) != ("nvil", "float64"):
            continue
        diffs = [res[est]["bound_diff"]] + seed_spread(
            torch, est, X_train, X_eval, epochs, range(seed + 1, seed + 1 + n_seeds))
        mean = float(np.mean(diffs))
        se = float(np.std(diffs, ddof=1) / math.sqrt(len(diffs)))
        print(f"{est}: ours - torch test IWAE-{K_IWAE} over {len(diffs)} seeds: mean {mean:+.3f} "
              f"nats, standard error {se:.3f}, per seed " + " ".join(f"{d:+.2f}" for d in diffs))
        out.update({f"{est}_seeds": len(diffs), f"{est}_seeds_diff_mean": mean,
                    f"{est}_seeds_diff_se": se})
    return out


if __name__ == "__main__":
    import argparse

    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--estimators", default=",".join(ESTIMATORS_RUN),
                        help="comma-separated, the first one on the RESULT line's main keys")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OPENBLAS_NUM_THREADS", "2")))
    res = run(epochs=args.epochs, quick=args.quick, seed=args.seed,
              estimators=tuple(e.strip() for e in args.estimators.split(",") if e.strip()))
    print("RESULT sbn " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                   for k, v in res.items()), flush=True)
