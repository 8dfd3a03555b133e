"""VRNN (Chung et al. 2015) on Fashion-MNIST rows: lvm_core vs a PyTorch twin.

Configuration: each image is a sequence of T = 28 rows of D = 28 pixels
(pixels / 255 in float32, 60k train / 10k test); a GRU VRNN with H = 128
recurrent units, L = 16 latents, ReLU feature extractors phi_x 28-64 and
phi_z 16-64, prior 128-64-(16 mu, 16 log_var), encoder (64 + 128)-64-(16, 16),
decoder (64 + 128)-64-28 Bernoulli logits on the grey levels (BCE with logits
summed over pixels), per-step analytic KL between the two diagonal Gaussians,
log-variance floor log_var = -10 + softplus(a + 10); one z path per image;
loss = mean over images of -sum_t [log p(x_t | z_t, h_{t-1}) - KL_t] (nats per
image); Adam lr 1e-3, batch 128 shuffled each epoch, 2 epochs (``--epochs``).

Both sides start from the same weights (lvm_core's ``init="torch"``: nn.Linear's
U(+-1/sqrt(fan_in)) for every Dense layer, U(+-1/sqrt(H)) for the GRU, as
nn.GRUCell), see the same batches and the same eps (the twin draws its
shuffles and eps (T, B, L) float32 from a NumPy Generator with the same seed
in the order ``VRNN.fit`` draws them) and alternate epoch by epoch in this one
process.  The twin (torch 2.13, eager, nn.Linear + nn.GRUCell, torch.optim.Adam)
follows the same schedule as lvm_core: phi_x of all rows at once, the
recursion (encoder, z_t, phi_z, GRU step) per step, then the prior and the
decoder over all T N rows, so the comparison is between the two libraries,
not between two algorithms.  Before timing: one batch's loss and gradients
against torch autograd, and a 2-step ``fit`` against the twin replaying its
draws (float32, relative tolerance 1e-4).

Test bound: the ELBO per test image with one fixed eps (T, 10000, L) given to
both sides.  Threads: 2 (BLAS, torch.set_num_threads).

Run through the driver::

    python benchmarks/vae_relatives_vs_torch.py --models vrnn [--quick]
"""
from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
import sys

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lvm_core.models.vrnn import VRNN  # noqa: E402

DATA = "/usr/share/datasets/fashion-mnist"
T, D = 28, 28
CFG = dict(n_latent=16, n_hidden=128, cell="gru", phi_x=(64,), phi_z=(64,), encoder=(64,),
           decoder=(64,), prior=(64,), activation="relu", emission="bernoulli",
           log_var_min=-10.0)
BATCH, LR = 128, 1e-3
QUICK_TRAIN, QUICK_TEST = 1280, 500


def load(quick):
    """(X_train, X_test) float32 (N, 28, 28) in [0, 1]."""
    from data_tools.mnist import load_mnist_like

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
    return (np.ascontiguousarray(X_train.reshape(-1, T, D)),
            np.ascontiguousarray(X_test.reshape(-1, T, D)))


def make_ours(seed, cfg=CFG, dtype="float32"):
    return VRNN(D, **cfg, init="torch", dtype=dtype, random_state=seed).initialize()


# ------------------------------------------------------------------ PyTorch twin
LINEARS = {"phix": ("phix_W0", "phix_b0"), "phiz": ("phiz_W0", "phiz_b0"),
           "prior": ("prior_W0", "prior_b0"), "prior_mu": ("prior_W_mu", "prior_b_mu"),
           "prior_lv": ("prior_W_log_var", "prior_b_log_var"), "enc": ("enc_W0", "enc_b0"),
           "enc_mu": ("enc_W_mu", "enc_b_mu"), "enc_lv": ("enc_W_log_var", "enc_b_log_var"),
           "dec": ("dec_W0", "dec_b0"), "dec_out": ("dec_W_out", "dec_b_out")}


def make_torch(torch, params, cfg=CFG):
    """The twin module with lvm_core's weights (W (d_in, d_out) -> nn.Linear.weight = W^T)."""
    nn = torch.nn
    F = torch.nn.functional
    L, H, m = cfg["n_latent"], cfg["n_hidden"], float(cfg["log_var_min"])

    class TorchVRNN(nn.Module):
        def __init__(self):
            super().__init__()
            for name, (w, _) in LINEARS.items():
                d_in, d_out = params[w].shape
                setattr(self, name, nn.Linear(d_in, d_out))
            self.rnn = nn.GRUCell(params["rnn_W_x"].shape[0], H)

        def floor(self, a):
            return m + F.softplus(a - m)

        def terms(self, x, eps):
            """x (T, N, D), eps (T, N, L) -> (log p(x_t|.) (T N,), KL_t (T N,))."""
            Tn, N, _ = x.shape
            px = torch.relu(self.phix(x))  # (T, N, Hx), all steps at once
            h = x.new_zeros((N, H))
            hs, mus, lvs, pzs = [], [], [], []
            for t in range(Tn):
                hs.append(h)
                g = torch.relu(self.enc(torch.cat([px[t], h], 1)))
                mu, lv = self.enc_mu(g), self.floor(self.enc_lv(g))
                z = mu + torch.exp(0.5 * lv) * eps[t]
                pz = torch.relu(self.phiz(z))
                mus.append(mu)
                lvs.append(lv)
                pzs.append(pz)
                if t < Tn - 1:
                    h = self.rnn(torch.cat([px[t], pz], 1), h)
            Hp = torch.stack(hs).reshape(Tn * N, H)
            mu_q, lv_q = torch.stack(mus).reshape(-1, L), torch.stack(lvs).reshape(-1, L)
            g = torch.relu(self.prior(Hp))
            mu_p, lv_p = self.prior_mu(g), self.floor(self.prior_lv(g))
            g = torch.relu(self.dec(torch.cat([torch.stack(pzs).reshape(Tn * N, -1), Hp], 1)))
            logits = self.dec_out(g)
            ll = -F.binary_cross_entropy_with_logits(logits, x.reshape(Tn * N, -1),
                                                     reduction="none").sum(1)
            kl = 0.5 * (lv_p - lv_q + torch.exp(lv_q - lv_p)
                        + (mu_q - mu_p) ** 2 * torch.exp(-lv_p) - 1.0).sum(1)
            return ll, kl

        def loss(self, x, eps):
            ll, kl = self.terms(x, eps)
            return (kl - ll).sum() / x.shape[1]

    model = TorchVRNN()
    with torch.no_grad():
        for name, (w, b) in LINEARS.items():
            getattr(model, name).weight.copy_(torch.from_numpy(np.asarray(params[w]).T.copy()))
            getattr(model, name).bias.copy_(torch.from_numpy(np.asarray(params[b]).copy()))
        model.rnn.weight_ih.copy_(torch.from_numpy(np.asarray(params["rnn_W_x"]).T.copy()))
        model.rnn.weight_hh.copy_(torch.from_numpy(np.asarray(params["rnn_W_h"]).T.copy()))
        model.rnn.bias_ih.copy_(torch.from_numpy(np.asarray(params["rnn_b_x"]).copy()))
        model.rnn.bias_hh.copy_(torch.from_numpy(np.asarray(params["rnn_b_h"]).copy()))
    return model


def torch_grads(model):
    """The twin's .grad in lvm_core's names and layout."""
    out = {}
    for name, (w, b) in LINEARS.items():
        out[w] = getattr(model, name).weight.grad.numpy().T.copy()
        out[b] = getattr(model, name).bias.grad.numpy().copy()
    out["rnn_W_x"] = model.rnn.weight_ih.grad.numpy().T.copy()
    out["rnn_W_h"] = model.rnn.weight_hh.grad.numpy().T.copy()
    out["rnn_b_x"] = model.rnn.bias_ih.grad.numpy().copy()
    out["rnn_b_h"] = model.rnn.bias_hh.grad.numpy().copy()
    return out


def torch_epoch(torch, model, opt, X, rng, batch_size=BATCH):
    """One epoch on X (N, T, D) with fit's draws (permutation, then eps (T, B, L) per step);
    returns (seconds, mean training loss)."""
    start = time.perf_counter()
    N = X.shape[0]
    L = CFG["n_latent"]
    perm = rng.permutation(N)
    Xt = torch.from_numpy(X)
    total = torch.zeros(())
    for s in range(0, N, batch_size):
        idx = torch.from_numpy(perm[s:s + batch_size])
        xb = Xt[idx].transpose(0, 1)  # (T, B, D)
        eps = torch.from_numpy(rng.standard_normal((T, xb.shape[1], L), dtype=np.float32))
        loss = model.loss(xb, eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.detach() * xb.shape[1]
    return time.perf_counter() - start, float(total) / N


def torch_elbo(torch, model, X, eps, chunk=2000):
    """Mean per-image ELBO with the given eps (T, N, L)."""
    total = 0.0
    with torch.no_grad():
        for s in range(0, X.shape[0], chunk):
            xb = torch.from_numpy(np.ascontiguousarray(X[s:s + chunk].transpose(1, 0, 2)))
            e = torch.from_numpy(np.ascontiguousarray(eps[:, s:s + chunk]))
            ll, kl = model.terms(xb, e)
            total += float((ll - kl).sum())
    return total / X.shape[0]


def max_rel_diff(ours, peer):
    worst, where = 0.0, None
    for k, ref in peer.items():
        ref = np.asarray(ref, np.float64)
        scale = float(np.max(np.abs(ref))) or 1.0
        d = float(np.max(np.abs(np.asarray(ours[k], np.float64) - ref))) / scale
        if d > worst:
            worst, where = d, k
    return worst, where


def check_twins(torch, ours, theirs, X_train, seed, tol=1e-4):
    """Same loss and gradients on one batch; same 2-step fit as the twin replaying it."""
    xb = np.ascontiguousarray(X_train[:BATCH])
    eps = np.random.default_rng(99).standard_normal((T, BATCH, CFG["n_latent"]),
                                                    dtype=np.float32)
    loss_o, g_o = ours.loss_and_grads(xb, eps=eps)
    theirs.zero_grad(set_to_none=True)
    loss_t = theirs.loss(torch.from_numpy(np.ascontiguousarray(xb.transpose(1, 0, 2))),
                         torch.from_numpy(eps))
    loss_t.backward()
    loss_t = loss_t.item()
    g_t = torch_grads(theirs)
    theirs.zero_grad(set_to_none=True)
    rows = [("first batch loss", abs(float(loss_o) - loss_t) / abs(loss_t), ""),
            ("first batch gradients",) + max_rel_diff(g_o, g_t)]
    n2 = min(2 * BATCH, X_train.shape[0])
    probe = make_ours(seed)
    probe.fit(X_train[:n2], epochs=1, batch_size=BATCH, lr=LR, random_state=seed)
    twin = make_torch(torch, make_ours(seed).params)
    _, loss_t2 = torch_epoch(torch, twin, torch.optim.Adam(twin.parameters(), lr=LR),
                             X_train[:n2], np.random.default_rng(seed))
    loss_f = probe.history_.train_loss[0]
    rows.append((f"fit on {n2} rows (2 Adam steps), training loss",
                 abs(loss_f - loss_t2) / abs(loss_t2), ""))
    print("twin checks (float32, |ours - torch| / |torch|; gradients max|diff| / max|torch| "
          "per parameter, worst shown):")
    bad = False
    for what, rel, where in rows:
        bad |= rel > tol
        print(f"  {what:<50} {rel:9.2e} {where or '':>16} {'ok' if rel <= tol else 'MISMATCH'}")
    print(f"  first batch loss: ours {float(loss_o):.6f}, torch {loss_t:.6f}; 2-step fit "
          f"training loss: ours {loss_f:.6f}, torch {loss_t2:.6f}")
    if bad:
        raise SystemExit("twin check failed: the twin does not compute what lvm_core does")


def run(epochs=None, quick=False, seed=0):
    import torch

    epochs = epochs if epochs is not None else (1 if quick else 2)
    X_train, X_test = load(quick)
    print(f"VRNN: T={T} rows x D={D}, GRU H={CFG['n_hidden']}, L={CFG['n_latent']}, phi_x/phi_z/"
          f"prior/encoder/decoder hidden 64, ReLU, Bernoulli, Adam {LR:g}, batch {BATCH}, "
          f"{epochs} epoch(s), {X_train.shape[0]} train / {X_test.shape[0]} test; torch "
          f"{torch.__version__} threads {torch.get_num_threads()}, BLAS "
          f"{os.environ.get('OPENBLAS_NUM_THREADS', 'default')}; load {os.getloadavg()[0]:.1f}")
    # warm-up (numba compilation, torch first calls), not timed
    make_ours(1).fit(X_train[:512], epochs=1, random_state=1)
    warm = make_torch(torch, make_ours(1).params)
    torch_epoch(torch, warm, torch.optim.Adam(warm.parameters(), lr=LR), X_train[:512],
                np.random.default_rng(1))
    ours = make_ours(seed)
    theirs = make_torch(torch, ours.params)
    check_twins(torch, ours, theirs, X_train, seed)
    opt = torch.optim.Adam(theirs.parameters(), lr=LR)
    rng_t = np.random.default_rng(seed)
    eps_test = np.random.default_rng(123).standard_normal((T, X_test.shape[0], CFG["n_latent"]),
                                                          dtype=np.float32)
    times = {"ours": [], "torch": []}
    print(f"{'epoch':>5} | {'ours s':>8} {'torch s':>8} {'ratio':>6} | train loss ours torch | "
          "test ELBO ours torch")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = os.path.join(tmp, "vrnn.h5")
        for epoch in range(1, epochs + 1):
            ours.fit(X_train, epochs=epoch, batch_size=BATCH, lr=LR, random_state=seed,
                     checkpoint=ckpt, resume=True)
            times["ours"].append(ours.history_.seconds_per_epoch[-1])
            sec, loss_t = torch_epoch(torch, theirs, opt, X_train, rng_t)
            times["torch"].append(sec)
            b_o = float(np.mean(ours.elbo(X_test, eps=eps_test)))
            b_t = torch_elbo(torch, theirs, X_test, eps_test)
            print(f"{epoch:>5} | {times['ours'][-1]:8.3f} {sec:8.3f} "
                  f"{sec / times['ours'][-1]:6.2f} | {ours.history_.train_loss[-1]:.3f} "
                  f"{loss_t:.3f} | {b_o:.3f} {b_t:.3f}", flush=True)
    med_o, med_t = float(np.median(times["ours"])), float(np.median(times["torch"]))
    return dict(ratio=med_t / med_o, bound_ours=b_o, bound_torch=b_t, bound_diff=b_o - b_t,
                s_epoch_ours=med_o, s_epoch_torch=med_t, epochs=epochs)


if __name__ == "__main__":
    import subprocess

    raise SystemExit(subprocess.call([sys.executable, str(Path(__file__).with_name(
        "vae_relatives_vs_torch.py")), "--models", "vrnn"] + sys.argv[1:]))
