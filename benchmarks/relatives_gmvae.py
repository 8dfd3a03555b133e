"""GMVAE on Fashion-MNIST: lvm_core vs a PyTorch twin (module of vae_relatives_vs_torch.py).

Configuration: 60k train / 10k test, pixels / 255 in float32, Bernoulli
likelihood on the grey levels.  K = 10 components, L = 20; encoder trunk
784-400 (ReLU) -> q(y|x) logits (400 -> 10) and q(z|x, y) = one affine head
on [h, onehot(y)] (400 + 10 -> 20 mu, 20 log_var); p(z|y) learned means and
log-variances (10 x 20 each); decoder 20-400-784 (ReLU); p(y) = 1/10.  The
exact objective (Kingma et al. 2014, M2; Shu 2016): the sum over y with
weights q(y|x), E_q[log p(y)] and the entropy of q(y|x) included, analytic
Gaussian KL, one z per (x, component), so the decoder runs on 128 x 10 rows
per step on both sides.  Adam lr 1e-3 (default betas/eps), batch 128,
shuffled each epoch, 3 epochs by default.

Both sides start from the same weights (lvm_core's ``init="torch"``: nn.Linear's
U(+-1/sqrt(fan_in)), copied into the twin) and see the same batches and the
same eps: the twin draws from a NumPy Generator with the same seed in the
order ``GMVAE.fit`` draws (per epoch a permutation of the rows, per step eps
(1, B, K, L) float32).  The libraries alternate epoch by epoch in this one
process; torch 2 threads, NumPy's BLAS 2 threads (set by the driver).
Before timing: the loss and every gradient of one batch agree with torch
autograd, and a 2-step fit's training loss agrees with the twin replaying it.

Reported: seconds per epoch (medians; ratio = twin / ours; also the ratio of
the fastest epochs, and ``ratio_steps``: per-step times measured in
alternating blocks of 20 steps, which a busy shared machine disturbs less
than whole epochs of one side), the exact test
ELBO after training with one fixed eps per (image, component) given to both
sides (``bound_*``, nats, higher is better), our importance-sampled log p(x)
(S = 20 per component, summing over y exactly) on 1000 test images, and the
test clustering accuracy of argmax q(y|x) with the best one-to-one matching of
clusters to classes (Hungarian algorithm) for both sides.

Measured (2026-11-30, 2 threads per side, every other process on the machine
paused, NumPy's OpenBLAS choosing its kernels; ``python
benchmarks/vae_relatives_vs_torch.py --models gmvae``): ratio (median of 3
epochs) 1.91 (ours 4.39-4.49 s/epoch, torch 8.55-8.59), ratio_steps 2.30 (ours
9.6 ms/step, torch 22.0).  Test exact ELBO -246.69 ours, -246.73 torch (diff
+0.04 nats); clustering accuracy 0.457 vs 0.463.  With OPENBLAS_CORETYPE=Haswell
(which this machine sets for old OpenBLAS builds): ratio 1.23-1.26, ratio_steps
1.48-1.54, of our ~14 ms/step about 11.4 ms in the fourteen matrix products.
Single epochs of either side move by 10-15% from one to the next on this
machine.
"""
from __future__ import annotations

import math
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_tools.mnist import load_mnist_like  # noqa: E402
from lvm_core.metrics import clustering_accuracy  # noqa: E402
from lvm_core.models.gmvae import GMVAE  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
D, H, K, L = 784, 400, 10, 20
BATCH, LR, EPOCHS = 128, 1e-3, 3
QUICK_TRAIN, QUICK_TEST = 1280, 500


def load(quick):
    """(X_train, y_train, X_test, y_test); --quick: 1280 train / 500 test rows."""
    kw = dict(normalize=True, dtype="float32", verbose=False, download=False)
    if os.path.isdir(DATA):
        X_tr, y_tr, _ = load_mnist_like("fashion-mnist", "train", path=DATA, **kw)
        X_te, y_te, _ = load_mnist_like("fashion-mnist", "test", path=DATA, **kw)
    elif quick:
        X, y, _ = load_mnist_like("fashion-mnist", "test", **kw)
        X_tr, y_tr, X_te, y_te = X[:QUICK_TRAIN], y[:QUICK_TRAIN], X[-QUICK_TEST:], y[-QUICK_TEST:]
    else:
        raise SystemExit(f"the full Fashion-MNIST is needed in {DATA} (or run with --quick)")
    if quick:
        X_tr, y_tr, X_te, y_te = X_tr[:QUICK_TRAIN], y_tr[:QUICK_TRAIN], X_te[:QUICK_TEST], \
            y_te[:QUICK_TEST]
    return (np.ascontiguousarray(X_tr), np.asarray(y_tr), np.ascontiguousarray(X_te),
            np.asarray(y_te))


def make_ours(seed):
    return GMVAE(D, n_components=K, n_latent=L, hidden=(H,), objective="exact", init="torch",
                 dtype="float32", random_state=seed).initialize()


# ------------------------------------------------------------------ PyTorch
def make_torch(torch, params):
    nn = torch.nn

    class TorchGMVAE(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = nn.Linear(D, H)
            self.fc_y = nn.Linear(H, K)
            self.fc_mu = nn.Linear(H, L)
            self.fc_lv = nn.Linear(H, L)
            self.C_mu = nn.Parameter(torch.zeros(K, L))
            self.C_lv = nn.Parameter(torch.zeros(K, L))
            self.prior_mu = nn.Parameter(torch.zeros(K, L))
            self.prior_lv = nn.Parameter(torch.zeros(K, L))
            self.fc3 = nn.Linear(L, H)
            self.fc4 = nn.Linear(H, D)

        def encode(self, x):
            h = torch.relu(self.fc1(x))
            return self.fc_y(h), self.fc_mu(h), self.fc_lv(h)

        def elbo(self, x, eps):
            """Exact ELBO per row (N,): sum_k pi_k [log p(x|z_k) - KL_k - log K - log pi_k]."""
            logits, mu_h, lv_h = self.encode(x)
            log_pi = torch.log_softmax(logits, 1)
            pi = log_pi.exp()
            mu = mu_h[:, None, :] + self.C_mu  # (N, K, L)
            lv = lv_h[:, None, :] + self.C_lv
            z = mu + torch.exp(0.5 * lv) * eps  # (R, N, K, L)
            out = self.fc4(torch.relu(self.fc3(z)))  # (R, N, K, D)
            target = x[None, :, None, :].expand_as(out)
            log_px = -torch.nn.functional.binary_cross_entropy_with_logits(
                out, target, reduction="none").sum(-1).mean(0)  # (N, K)
            kl = 0.5 * (self.prior_lv - lv + torch.exp(lv - self.prior_lv)
                        + (mu - self.prior_mu) ** 2 * torch.exp(-self.prior_lv) - 1.0).sum(-1)
            return (pi * (log_px - kl - math.log(K) - log_pi)).sum(1)

    model = TorchGMVAE()
    names = {"fc1": ("enc_W0", "enc_b0"), "fc_y": ("enc_W_y", "enc_b_y"),
             "fc_mu": ("enc_W_mu", "enc_b_mu"), "fc_lv": ("enc_W_log_var", "enc_b_log_var"),
             "fc3": ("dec_W0", "dec_b0"), "fc4": ("dec_W_out", "dec_b_out")}
    tables = {"C_mu": "enc_C_mu", "C_lv": "enc_C_log_var", "prior_mu": "prior_mu",
              "prior_lv": "prior_log_var"}
    with torch.no_grad():
        for layer, (w, b) in names.items():
            getattr(model, layer).weight.copy_(torch.from_numpy(params[w].T.copy()))
            getattr(model, layer).bias.copy_(torch.from_numpy(params[b].copy()))
        for attr, key in tables.items():
            getattr(model, attr).copy_(torch.from_numpy(params[key].copy()))
    model._names, model._tables = names, tables
    return model


def torch_grads(model):
    grads = {}
    for layer, (w, b) in model._names.items():
        grads[w] = getattr(model, layer).weight.grad.numpy().T.copy()
        grads[b] = getattr(model, layer).bias.grad.numpy().copy()
    for attr, key in model._tables.items():
        grads[key] = getattr(model, attr).grad.numpy().copy()
    return grads


def torch_epoch(torch, model, opt, X_t, rng):
    """One epoch with fit's draw order; returns (seconds, mean training loss)."""
    start = time.perf_counter()
    N = X_t.shape[0]
    perm = torch.from_numpy(rng.permutation(N))
    total = torch.zeros(())
    for s in range(0, N, BATCH):
        xb = X_t[perm[s:s + BATCH]]
        eps = torch.from_numpy(rng.standard_normal((1, xb.shape[0], K, L), dtype=np.float32))
        loss = -model.elbo(xb, eps).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * xb.shape[0]
    return time.perf_counter() - start, float(total) / N


def torch_test(torch, model, X, seed, chunk=1000):
    """(mean exact ELBO with the eps that ours ``elbo(X, rng=seed)`` draws, predictions)."""
    rng = np.random.default_rng(seed)
    total, preds = 0.0, []
    with torch.no_grad():
        for s in range(0, X.shape[0], chunk):
            xb = torch.from_numpy(X[s:s + chunk])
            eps = torch.from_numpy(rng.standard_normal((1, xb.shape[0], K, L),
                                                       dtype=np.float32))
            total += float(model.elbo(xb, eps).sum())
            preds.append(model.encode(xb)[0].argmax(1).numpy())
    return total / X.shape[0], np.concatenate(preds)


def max_rel_diff(ours, theirs):
    worst, where = 0.0, ""
    for k, g in ours.items():
        scale = max(float(np.max(np.abs(theirs[k]))), 1e-30)
        rel = float(np.max(np.abs(np.asarray(g) - theirs[k]))) / scale
        if rel > worst:
            worst, where = rel, k
    return worst, where


def check_twin(torch, ours, theirs, X_train, seed, tol=1e-4):
    """Loss and gradients of one batch, and a 2-step fit, against the twin."""
    xb = np.ascontiguousarray(X_train[:BATCH])
    eps = np.random.default_rng(99).standard_normal((1, BATCH, K, L), dtype=np.float32)
    loss_o, g_o = ours.loss_and_grads(xb, eps=eps)
    theirs.zero_grad(set_to_none=True)
    loss_t = -theirs.elbo(torch.from_numpy(xb), torch.from_numpy(eps)).mean()
    loss_t.backward()
    g_t = torch_grads(theirs)
    theirs.zero_grad(set_to_none=True)
    loss_t = float(loss_t.detach())
    rows = [("first batch loss", abs(float(loss_o) - loss_t) / abs(loss_t), ""),
            ("first batch gradients (max|diff| / max|torch| per parameter)",)
            + max_rel_diff(g_o, g_t)]
    n2 = min(2 * BATCH, X_train.shape[0])
    probe = make_ours(seed)
    probe.fit(X_train[:n2], epochs=1, batch_size=BATCH, lr=LR, random_state=seed,
              progress=False)
    twin = make_torch(torch, make_ours(seed).params)
    _, loss_t2 = torch_epoch(torch, twin, torch.optim.Adam(twin.parameters(), lr=LR),
                             torch.from_numpy(X_train[:n2]), np.random.default_rng(seed))
    loss_f = probe.history_.train_loss[0]
    rows.append((f"2-step fit training loss on {n2} rows", abs(loss_f - loss_t2) / abs(loss_t2),
                 ""))
    print("twin checks (float32):")
    bad = False
    for what, rel, where in rows:
        bad |= rel > tol
        print(f"  {what:<64} {rel:9.2e} {where:>14} {'ok' if rel <= tol else 'MISMATCH'}")
    if bad:
        raise SystemExit(f"twin check failed (tolerance {tol:g}); no timing is meaningful")


def step_timing(torch, X_train, seed, blocks=5, steps=20):
    """Seconds per training step of each side, timed in alternating blocks of ``steps``
    steps (fresh models, the same batches and eps): a figure that a busy, shared machine
    disturbs less than whole epochs.  Returns (ours list, torch list)."""
    from lvm_core import ops

    rng = np.random.default_rng(seed)
    ours = make_ours(seed + 1)
    theirs = make_torch(torch, ours.params)
    opt = torch.optim.Adam(theirs.parameters(), lr=LR)
    grads = {k: np.zeros_like(v) for k, v in ours.params.items()}
    state = [None]
    starts = [(i * BATCH) % (X_train.shape[0] - BATCH + 1) for i in range(steps)]
    batches = [np.ascontiguousarray(X_train[s:s + BATCH]) for s in starts]
    eps = [rng.standard_normal((1, BATCH, K, L), dtype=np.float32) for _ in range(steps)]

    def step_ours(i):  # the body of one fit step: loss_and_grads into buffers + in-place Adam
        ours.loss_and_grads(batches[i], eps=eps[i], grads_out=grads, check_input=False)
        state[0] = ops.adam_(ours.params, grads, state[0], lr=LR)

    def step_torch(i):
        loss = -theirs.elbo(torch.from_numpy(batches[i]), torch.from_numpy(eps[i])).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    times = {"ours": [], "torch": []}
    for block in range(blocks + 1):
        for name, fn in (("ours", step_ours), ("torch", step_torch)):
            start = time.perf_counter()
            for i in range(steps):
                fn(i)
            if block:  # block 0 warms up
                times[name].append((time.perf_counter() - start) / steps)
    return times["ours"], times["torch"]


def run(epochs=None, quick=False, seed=0):
    import torch

    epochs = epochs if epochs is not None else (1 if quick else EPOCHS)
    X_train, y_train, X_test, y_test = load(quick)
    print(f"GMVAE K={K}, L={L}: {D}-{H} trunk, q(y|x) {H}->{K}, q(z|x,y) [{H}+{K}]->({L}, {L}), "
          f"p(z|y) learned, decoder {L}-{H}-{D}; exact objective, Bernoulli, Adam {LR:g}, "
          f"batch {BATCH}, {epochs} epoch(s), {X_train.shape[0]} train / {X_test.shape[0]} test; "
          f"torch {torch.__version__} {torch.get_num_threads()} threads; "
          f"load average {os.getloadavg()[0]:.1f}")
    # warm-up (numba compilation, torch first calls), not timed
    make_ours(1).fit(X_train[:512], epochs=1, progress=False, random_state=1)
    warm = make_torch(torch, make_ours(1).params)
    torch_epoch(torch, warm, torch.optim.Adam(warm.parameters(), lr=LR),
                torch.from_numpy(X_train[:512]), np.random.default_rng(1))

    ours = make_ours(seed)
    theirs = make_torch(torch, ours.params)
    check_twin(torch, ours, theirs, X_train, seed)
    opt = torch.optim.Adam(theirs.parameters(), lr=LR)
    rng_t = np.random.default_rng(seed)
    X_train_t = torch.from_numpy(X_train)
    times = {"ours": [], "torch": []}
    print(f"{'epoch':>5} | {'ours s':>8} {'torch s':>8} {'ratio':>6} | train loss ours torch | "
          "test -ELBO ours torch")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "gmvae.h5")
        for epoch in range(1, epochs + 1):
            ours.fit(X_train, epochs=epoch, batch_size=BATCH, lr=LR, random_state=seed,
                     progress=False, checkpoint=ckpt, resume=True)
            times["ours"].append(ours.history_.seconds_per_epoch[-1])
            sec, loss_t = torch_epoch(torch, theirs, opt, X_train_t, rng_t)
            times["torch"].append(sec)
            bound_o = float(np.mean(ours.elbo(X_test, rng=123)))
            bound_t, pred_t = torch_test(torch, theirs, X_test, 123)
            print(f"{epoch:>5} | {times['ours'][-1]:8.3f} {sec:8.3f} "
                  f"{sec / times['ours'][-1]:6.2f} | {ours.history_.train_loss[-1]:.3f} "
                  f"{loss_t:.3f} | {-bound_o:.3f} {-bound_t:.3f}", flush=True)
    med_o, med_t = float(np.median(times["ours"])), float(np.median(times["torch"]))
    fastest = min(times["torch"]) / min(times["ours"])
    st_o, st_t = step_timing(torch, X_train, seed)
    ratio_steps = float(np.median(st_t)) / float(np.median(st_o))
    print(f"alternating blocks of 20 steps: ours {1e3 * np.median(st_o):.1f} ms/step, torch "
          f"{1e3 * np.median(st_t):.1f} ms/step, ratio {ratio_steps:.2f} "
          f"(blocks: ours {[round(1e3 * t, 1) for t in st_o]}, torch "
          f"{[round(1e3 * t, 1) for t in st_t]})")
    acc_o = clustering_accuracy(y_test, ours.predict(X_test))
    acc_t = clustering_accuracy(y_test, pred_t)
    n_is = min(1000, X_test.shape[0])
    log_px = float(np.mean(ours.log_marginal(X_test[:n_is], n_importance=20, rng=7)))
    elbo_sub = float(np.mean(ours.elbo(X_test[:n_is], rng=123)))
    print(f"median s/epoch: ours {med_o:.3f}, torch {med_t:.3f}, ratio {med_t / med_o:.2f} "
          f"(fastest epochs: {fastest:.2f})")
    print(f"test exact ELBO: ours {bound_o:.3f}, torch {bound_t:.3f}, diff {bound_o - bound_t:+.3f}")
    print(f"ours on {n_is} test images: exact ELBO {elbo_sub:.3f} <= importance-sampled log p(x) "
          f"(S=20 per component, sum over y) {log_px:.3f}")
    print(f"test clustering accuracy (best one-to-one matching): ours {acc_o:.4f}, "
          f"torch {acc_t:.4f}")
    return dict(ratio=med_t / med_o, bound_ours=bound_o, bound_torch=bound_t,
                bound_diff=bound_o - bound_t, accuracy_ours=acc_o, accuracy_torch=acc_t,
                log_px_ours=log_px, s_epoch_ours=med_o, s_epoch_torch=med_t,
                ratio_fastest=fastest, ratio_steps=ratio_steps, epochs=epochs,
                load_average=os.getloadavg()[0])
