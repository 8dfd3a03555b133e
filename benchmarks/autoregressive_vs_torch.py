"""Fully observed autoregressive models: lvm_core (handwritten gradients) vs PyTorch twins.

Each model is trained twice in this one process, alternating epoch by epoch:
lvm_core through its public API (``fit(..., checkpoint=path, resume=True)``
continues the same run one epoch further each time: parameters, Adam state
and generator state; its seconds per epoch are ``history_.seconds_per_epoch``,
the training loop only, as for torch) and a PyTorch twin that starts from the
same initial weights and sees the same batches (its shuffles are drawn from a
NumPy Generator with the same seed, in the order the library's loop draws
them).  Adam with PyTorch's defaults on both sides.  The runs then differ by
floating-point round-off only, so the held-out difference measures the
implementations, and the time ratio (twin s/epoch over ours, medians) their speed.

Models (a registry, ``MODELS``: another model's twin is added with
:func:`register`):

* ``made``: MADE (Germain et al. 2015) on Fashion-MNIST binarised at 0.5
  (60k train / 10k test; ``--quick``: 10k / 2k), one hidden layer of 500
  ReLU units, one mask (natural order), batch 100, lr 1e-3, 3 epochs (1
  with --quick).  The twin: ``x @ (W * M) + b`` layers in torch with the
  same masks, BCE-with-logits summed over pixels.  Test NLL in nats per image.
  Target: |nll_diff| <= 0.5 and ratio >= 1.2.
* ``nade``: NADE (Larochelle & Murray 2011) on the same data, 200 hidden units,
  natural order, batch 100, lr 1e-3, 1 epoch (an epoch of the twin takes
  2-3 minutes).  Ours: the running pre-activation, O(N D H), with the
  handwritten backward.  The twin: the form PyTorch code usually takes, all D
  pre-activations at once as an exclusive cumulative sum of x_j W_j over an
  (N, D, H) tensor, sigmoid, a per-dimension dot product with V, autograd.
  Target: |nll_diff| <= 0.5 and ratio >= 1.2.
* ``char_rnn``: a GRU char-RNN (embedding 32, 128 hidden units) on The
  Devil's Dictionary (data_tools' embedded text; first 90% of the characters
  for training, the last 10% held out), windows of 64 + 1 symbols, batch 64,
  lr 2e-3, gradient norm clipped at 5, 3 epochs (1 with --quick).  The twin:
  nn.Embedding + nn.GRU + nn.Linear with the same weights.  Held-out nats per
  character with the state carried through 32 parallel streams (the same
  evaluation on both sides).  Target: |diff| <= 0.02 and ratio >= 1.0.

Threads: ``torch.set_num_threads(2)``; NumPy's BLAS 2 threads (set before
NumPy is imported); the numba kernels are serial.

Usage::

    python benchmarks/autoregressive_vs_torch.py                 # all models, full
    python benchmarks/autoregressive_vs_torch.py --quick
    python benchmarks/autoregressive_vs_torch.py --models made

Measured here (2026-11-30, ``python benchmarks/autoregressive_vs_torch.py``, every
other process paused, NumPy's OpenBLAS choosing its kernels, 4.6 min): made
ratio 2.37 (ours 1.05 s/epoch, torch 2.48 s), test NLL 136.458 vs 136.446 (diff
+0.012); nade ratio 3.46 (44.2 vs 153.1 s/epoch), test NLL 164.4477 on both
sides (diff 0.0000); char_rnn ratio 2.01 (1.02 vs 2.06 s/epoch), held-out
1.9482 nats per character on both sides (diff 0.0000).  With
OPENBLAS_CORETYPE=Haswell: made 1.52, char_rnn 1.00.

Ends with ``RESULT made ratio=R nll_ours=X nll_torch=X nll_diff=X``, the same for
``nade``, and
``RESULT char_rnn ratio=R nats_per_char_ours=X nats_per_char_torch=X
nats_per_char_diff=X`` (diff = ours - torch).
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
from data_tools.text import Vocabulary, load_embedded_text  # noqa: E402
from lvm_core.models.char_rnn import CharRNN, make_windows  # noqa: E402
from lvm_core.models.autoregressive.nade import NADE  # noqa: E402
from lvm_core.models.made import MADE, made_masks  # noqa: E402

SEED = 0
MODELS = {}


def register(name):
    """Decorator: add ``fn(torch, args, tmp) -> dict`` (the dict ends up in a RESULT line
    ``RESULT <name> key=value ...``) to the models this script can run."""
    def deco(fn):
        MODELS[name] = fn
        return fn
    return deco


def _median_ratio(t_ours, t_torch):
    return float(np.median(t_torch) / np.median(t_ours))


# ------------------------------------------------------------------------ MADE
def _fashion_binary(quick):
    X, _, src = load_mnist_like("fashion-mnist", "train", verbose=False)
    Xt, _, _ = load_mnist_like("fashion-mnist", "test", verbose=False)
    X = (X > 0.5).astype(np.float32)
    Xt = (Xt > 0.5).astype(np.float32)
    if quick:
        X, Xt = X[:10000], Xt[:2000]
    return X, Xt, src


@register("made")
def run_made(torch, args, tmp):
    X, Xt, src = _fashion_binary(args.quick)
    N, D = X.shape
    epochs = args.epochs or (1 if args.quick else 3)
    H, batch, lr = 500, 100, 1e-3
    print(f"[made] data: {src}; train {X.shape}, test {Xt.shape}; 784-{H}-784, batch {batch}, "
          f"{epochs} epoch(s)")
    ours = MADE(D, hidden=(H,), n_masks=1, random_state=SEED)
    ours.initialize()
    masks = made_masks([d[0] for d in ours.degrees_])
    names = ["W0", "W_out"]

    class Twin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.W = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.tensor(np.array(ours.params[k]))) for k in names])
            self.b = torch.nn.ParameterList(
                [torch.nn.Parameter(torch.tensor(np.array(ours.params[k.replace("W", "b")])))
                 for k in names])
            for i, m in enumerate(masks):
                self.register_buffer(f"M{i}", torch.tensor(m, dtype=torch.float32))

        def forward(self, x):
            h = torch.relu(x @ (self.W[0] * self.M0) + self.b[0])
            return h @ (self.W[1] * self.M1) + self.b[1]

    twin = Twin()
    opt = torch.optim.Adam(twin.parameters(), lr=lr)
    X_t, Xt_t = torch.from_numpy(X), torch.from_numpy(Xt)
    # warm-up outside the timings (numba compilation; torch's first dispatch), no update
    ours.loss_and_grads(X[:batch], 0)
    torch.nn.functional.binary_cross_entropy_with_logits(twin(X_t[:batch]), X_t[:batch]).backward()
    opt.zero_grad(set_to_none=False)
    return _side_by_side(torch, "made", ours, twin, opt, X_t, Xt_t, batch, lr, epochs, tmp)


def _side_by_side(torch, name, ours, twin, opt, X_t, Xt_t, batch, lr, epochs, tmp,
                  eval_chunk=10000):
    """Train ours (``fit`` resumed one epoch further each time) and the binary twin
    (Bernoulli logits, mean summed BCE, the same shuffles) epoch by epoch; test NLLs."""
    N = X_t.shape[0]
    X, Xt = X_t.numpy(), Xt_t.numpy()
    rng = np.random.default_rng(SEED)
    ck = os.path.join(tmp, f"{name}.h5")
    t_ours, t_torch = [], []
    for e in range(1, epochs + 1):
        ours.fit(X, epochs=e, batch_size=batch, lr=lr, random_state=SEED, checkpoint=ck,
                 resume=True)
        t_ours.append(ours.history_.seconds_per_epoch[-1])
        perm = torch.from_numpy(rng.permutation(N))
        start = time.perf_counter()
        for s in range(0, N, batch):
            xb = X_t[perm[s:s + batch]]
            loss = torch.nn.functional.binary_cross_entropy_with_logits(
                twin(xb), xb, reduction="sum") / xb.shape[0]
            opt.zero_grad(set_to_none=False)
            loss.backward()
            opt.step()
        t_torch.append(time.perf_counter() - start)
        print(f"[{name}] epoch {e}: ours {t_ours[-1]:.2f} s (train NLL "
              f"{ours.history_.train_loss[-1]:.3f}), torch {t_torch[-1]:.2f} s")
    nll_ours = -ours.score(Xt)
    total = 0.0
    with torch.no_grad():
        for s in range(0, Xt.shape[0], eval_chunk):
            xb = Xt_t[s:s + eval_chunk]
            total += torch.nn.functional.binary_cross_entropy_with_logits(
                twin(xb), xb, reduction="sum").item()
    nll_torch = total / Xt.shape[0]
    return dict(ratio=_median_ratio(t_ours, t_torch), s_per_epoch_ours=float(np.median(t_ours)),
                s_per_epoch_torch=float(np.median(t_torch)), nll_ours=nll_ours,
                nll_torch=nll_torch, nll_diff=nll_ours - nll_torch)


# ------------------------------------------------------------------------ NADE
@register("nade")
def run_nade(torch, args, tmp):
    X, Xt, src = _fashion_binary(args.quick)
    N, D = X.shape
    epochs = args.epochs or 1
    H, batch, lr = 200, 100, 1e-3
    print(f"[nade] data: {src}; train {X.shape}, test {Xt.shape}; H = {H}, batch {batch}, "
          f"{epochs} epoch(s)")
    ours = NADE(D, n_hidden=H, random_state=SEED)

    class Twin(torch.nn.Module):
        """The same model in PyTorch's usual vectorised form: the pre-activations
        a_d = c + sum_{j<d} x_j W_j of all conditionals at once, as an exclusive
        cumulative sum over d of x_j W_j (an (N, D, H) tensor); autograd does the rest."""

        def __init__(self):
            super().__init__()
            for k in ("W", "c", "V", "b"):
                setattr(self, k, torch.nn.Parameter(torch.tensor(np.array(ours.params[k]))))

        def forward(self, x):
            xw = x[:, :, None] * self.W[None]  # (N, D, H)
            h = torch.sigmoid(torch.cumsum(xw, dim=1) - xw + self.c)
            return torch.einsum("ndh,dh->nd", h, self.V) + self.b  # (N, D) logits

    twin = Twin()
    opt = torch.optim.Adam(twin.parameters(), lr=lr)
    X_t, Xt_t = torch.from_numpy(X), torch.from_numpy(Xt)
    ours.loss_and_grads(X[:batch], 0)  # warm-up outside the timings, no update
    torch.nn.functional.binary_cross_entropy_with_logits(twin(X_t[:batch]), X_t[:batch]).backward()
    opt.zero_grad(set_to_none=False)
    # evaluated in chunks: the (N, D, H) tensor of all 10,000 test images is 6 GB
    return _side_by_side(torch, "nade", ours, twin, opt, X_t, Xt_t, batch, lr, epochs, tmp,
                         eval_chunk=500)


# ------------------------------------------------------------------------ char-RNN
def _torch_nats_per_char(torch, emb, rnn, lin, ids, n_streams, chunk):
    L = ids.shape[0] // n_streams
    streams = torch.from_numpy(ids[:n_streams * L].reshape(n_streams, L).T.copy())  # (L, S)
    total, count, state = 0.0, 0, None
    with torch.no_grad():
        for start in range(0, L - 1, chunk):
            stop = min(start + chunk, L - 1)
            out, state = rnn(emb(streams[start:stop]), state)
            logits = lin(out)
            tgt = streams[start + 1:stop + 1]
            total += -torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), tgt.reshape(-1), reduction="sum").item()
            count += tgt.numel()
    return -total / count


@register("char_rnn")
def run_char_rnn(torch, args, tmp):
    text = load_embedded_text()
    vocab = Vocabulary.build(text)
    ids = vocab.encode(text)
    cut = int(0.9 * ids.shape[0])
    train_ids, test_ids = ids[:cut], ids[cut:]
    if args.quick:
        train_ids, test_ids = train_ids[:60000], test_ids[:10000]
    K, E, H, T, batch, lr, clip = vocab.size, 32, 128, 64, 64, 2e-3, 5.0
    epochs = args.epochs or (1 if args.quick else 3)
    W = make_windows(train_ids, T)
    N = W.shape[0]
    print(f"[char_rnn] Devil's Dictionary: {train_ids.shape[0]} training / {test_ids.shape[0]} "
          f"held-out characters, K={K}; GRU E={E} H={H}, windows {T}+1, batch {batch}, "
          f"{epochs} epoch(s)")
    ours = CharRNN(K, n_embed=E, n_hidden=H, cell="gru", seq_len=T, random_state=SEED)
    ours.initialize()
    p = {k: np.array(v) for k, v in ours.params.items()}
    emb = torch.nn.Embedding(K, E)
    rnn = torch.nn.GRU(E, H)
    lin = torch.nn.Linear(H, K)
    with torch.no_grad():
        emb.weight.copy_(torch.tensor(p["emb_W"]))
        rnn.weight_ih_l0.copy_(torch.tensor(p["rnn_W_x"].T))
        rnn.weight_hh_l0.copy_(torch.tensor(p["rnn_W_h"].T))
        rnn.bias_ih_l0.copy_(torch.tensor(p["rnn_b_x"]))
        rnn.bias_hh_l0.copy_(torch.tensor(p["rnn_b_h"]))
        lin.weight.copy_(torch.tensor(p["out_W"].T))
        lin.bias.copy_(torch.tensor(p["out_b"]))
    params = list(emb.parameters()) + list(rnn.parameters()) + list(lin.parameters())
    opt = torch.optim.Adam(params, lr=lr)
    W_t = torch.from_numpy(W)
    ours.loss_and_grads(W[:batch])  # warm-up outside the timings (no update)
    xb = W_t[:batch].T
    torch.nn.functional.cross_entropy(lin(rnn(emb(xb[:-1]))[0]).reshape(-1, K),
                                      xb[1:].reshape(-1)).backward()
    opt.zero_grad(set_to_none=False)
    rng = np.random.default_rng(SEED)
    ck = os.path.join(tmp, "char_rnn.h5")
    t_ours, t_torch = [], []
    for e in range(1, epochs + 1):
        ours.fit(W, epochs=e, batch_size=batch, lr=lr, clip_norm=clip, random_state=SEED,
                 checkpoint=ck, resume=True)
        t_ours.append(ours.history_.seconds_per_epoch[-1])
        perm = torch.from_numpy(rng.permutation(N))
        start = time.perf_counter()
        for s in range(0, N, batch):
            xb = W_t[perm[s:s + batch]].T  # (T + 1, n)
            out, _ = rnn(emb(xb[:-1]))
            logits = lin(out)
            loss = torch.nn.functional.cross_entropy(logits.reshape(-1, K), xb[1:].reshape(-1))
            opt.zero_grad(set_to_none=False)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, clip)
            opt.step()
        t_torch.append(time.perf_counter() - start)
        print(f"[char_rnn] epoch {e}: ours {t_ours[-1]:.2f} s (train "
              f"{ours.history_.train_loss[-1]:.4f} nats/char), torch {t_torch[-1]:.2f} s")
    n_ours = ours.nats_per_char(test_ids, n_streams=32, chunk=T)
    n_torch = _torch_nats_per_char(torch, emb, rnn, lin, test_ids, 32, T)
    rng_s = np.random.default_rng(1)
    sample = vocab.decode(ours.sample(120, rng=rng_s, temperature=0.7, prime=vocab.encode("the ")))
    print(f"[char_rnn] sample (temperature 0.7): {sample!r}")
    return dict(ratio=_median_ratio(t_ours, t_torch), s_per_epoch_ours=float(np.median(t_ours)),
                s_per_epoch_torch=float(np.median(t_torch)), nats_per_char_ours=n_ours,
                nats_per_char_torch=n_torch, nats_per_char_diff=n_ours - n_torch)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="small data, one epoch")
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--models", default=",".join(MODELS),
                    help=f"comma-separated subset of {sorted(MODELS)}")
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    torch.manual_seed(SEED)
    names = [n for n in args.models.split(",") if n]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        ap.error(f"unknown models {unknown}; choose from {sorted(MODELS)}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results[name] = MODELS[name](torch, args, tmp)
    for name, res in results.items():
        print(f"RESULT {name} " + " ".join(
            f"{k}={v:.4f}" if isinstance(v, float) and math.isfinite(v) else f"{k}={v}"
            for k, v in res.items()))


if __name__ == "__main__":
    main()
