"""Gradient estimators for a VAE with 200 Bernoulli latents on Fashion-MNIST.

    python examples/estimator_variance.py                 # about 1-2 minutes
    python examples/estimator_variance.py --quick         # smoke test (seconds)
    python examples/estimator_variance.py --hidden 0      # the linear SBN

Model (Mnih & Gregor 2014): q(z|x) and p(x|z) sigmoid belief nets over L = 200
binary latents, one tanh hidden layer of 200 units each (``--hidden 0``:
linear), a factorised Bernoulli prior with learned logits, dynamically
binarised images.  Estimators (lvm_core.models.sbn): REINFORCE (Williams
1992), REINFORCE with a moving-average baseline, NVIL (input-dependent
baseline and variance normalisation, Mnih & Gregor 2014), leave-one-out over
k = 4 draws (Kool et al. 2019), VIMCO with k = 4 (the 4-sample bound with its
leave-one-out baseline, Mnih & Rezende 2016), and
for comparison the binary Concrete / Gumbel-softmax relaxation and its
straight-through variant (Maddison et al. 2017; Jang et al. 2017), temperature
0.5.

1. Gradient variance at a fixed parameter: the model after a short NVIL
   warm-up; one fixed batch of 128 binarised training images; ``--draws``
   gradient estimates per estimator with fresh draws and the running state
   held fixed.  Printed: the summed variance of the encoder gradient (the part
   the estimators differ in; NVIL's on the ELBO's scale, its variance
   normalisation undone), relative to plain REINFORCE, and the summed
   variance of the decoder gradient.  The relaxed estimators estimate the
   gradient of another (relaxed) objective, VIMCO that of the 4-sample bound:
   their variances are those of estimates of other gradients.
2. Training curves: every estimator from the same initial weights, same
   batches, Adam lr 1e-3; test -ELBO (one z per image, fixed seed) per epoch.

Figures in ``--out``: ``gradient_variance.png`` (bar chart, log scale) and
``training_curves.png``.  Data: the full Fashion-MNIST when found (the first
``--n-train`` training images and 2,000 test images), otherwise the embedded
10,000 test images (9,000 for training, 1,000 held out); the script says which.

Measured here (2026-11-30, shared 2-core machine, 1 BLAS thread, full data,
defaults: 10,000 training images, 5 epochs, 27 s): encoder-gradient variance
relative to REINFORCE: moving average 0.029, NVIL 0.028 (its baseline network
after one epoch; normalisation undone), REINFORCE k=4 0.25, leave-one-out k=4
1.1e-4, VIMCO k=4 1.9e-4, relaxed estimators ~1e-6; test -ELBO after 5
epochs: REINFORCE 354.5, moving average 331.5, NVIL 324.8, leave-one-out k=4
303.2, VIMCO k=4 310.4, Gumbel-softmax 300.3, straight-through 300.3 nats per
image.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    from _setup import limit_blas_threads

    limit_blas_threads()

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from data_tools.mnist import load_mnist_like  # noqa: E402
from lvm_core.models.sbn import SBNVAE  # noqa: E402

#: (label, estimator, draws per image)
ROWS = [("REINFORCE", "reinforce", 1), ("moving average", "moving_average", 1),
        ("NVIL", "nvil", 1), ("REINFORCE k=4", "reinforce", 4), ("leave-one-out k=4", "loo", 4),
        ("VIMCO k=4", "vimco", 4),
        ("Gumbel-softmax", "gumbel", 1), ("straight-through", "straight_through", 1)]
TRAINED = ["REINFORCE", "moving average", "NVIL", "leave-one-out k=4", "VIMCO k=4",
           "Gumbel-softmax", "straight-through"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=None, help="default 5 (1 with --quick)")
    p.add_argument("--n-train", type=int, default=10000, help="training images (default 10000)")
    p.add_argument("--latent", type=int, default=200)
    p.add_argument("--hidden", type=int, default=200, help="hidden units (0: linear SBN)")
    p.add_argument("--draws", type=int, default=None,
                   help="gradient estimates per estimator (default 200; 20 with --quick)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="outputs/estimator_variance")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1,000 training and 500 test images, 1 epoch, 20 draws")
    args = p.parse_args(argv)
    if args.quick:
        args.n_train = min(args.n_train, 1000)
    args.epochs = args.epochs if args.epochs is not None else (1 if args.quick else 5)
    args.draws = args.draws if args.draws is not None else (20 if args.quick else 200)
    return args


def load_data(args):
    X_train, _, src = load_mnist_like("fashion-mnist", "train", path=args.data_dir)
    X_test, _, _ = load_mnist_like("fashion-mnist", "test", path=args.data_dir)
    if src.startswith("embedded-fallback:"):
        X_train, X_test = X_test[:9000], X_test[9000:]
        what = "the EMBEDDED DEFAULT (no full Fashion-MNIST found): 9,000 train / 1,000 test"
    else:
        X_test = X_test[:2000]
        what = f"FULL Fashion-MNIST ({src})"
    n_test = 500 if args.quick else X_test.shape[0]
    X_train = np.ascontiguousarray(X_train[:args.n_train], dtype=np.float32)
    X_test = np.ascontiguousarray(X_test[:n_test], dtype=np.float32)
    return X_train, X_test, what


def make(args, estimator, R):
    hidden = (args.hidden,) if args.hidden > 0 else ()
    return SBNVAE(784, n_latent=args.latent, hidden=hidden, estimator=estimator, n_samples=R,
                  temperature=0.5, random_state=args.seed).initialize()


def gradient_variance(args, warm, X_batch):
    """{label: (encoder variance, decoder variance)} at warm's parameters."""
    out = {}
    for label, estimator, R in ROWS:
        model = make(args, estimator, R)
        for k in model.params:
            if k in warm.params:
                model.params[k] = warm.params[k].copy()
        if estimator in ("moving_average", "nvil"):
            model.baseline_state_ = None  # started from the batch, then held fixed
            model.loss_and_grads(X_batch, rng=args.seed + 1)
            if estimator == "nvil":
                model.baseline_state_ = dict(warm.baseline_state_)
        rng = np.random.default_rng(args.seed + 2)
        draws = {k: [] for k in model.params if k.startswith(("enc_", "dec_"))}
        for _ in range(args.draws):
            _, g = model.loss_and_grads(X_batch, rng=rng, update_baseline=False)
            for k in draws:
                draws[k].append(g[k].copy())
        var = {k: np.stack(v).astype(np.float64).var(axis=0, ddof=1).sum()
               for k, v in draws.items()}
        enc = sum(v for k, v in var.items() if k.startswith("enc_"))
        if estimator == "nvil":  # undo the normalisation 1 / max(1, sqrt v): the ELBO's scale
            factor = max(1.0, float(model.baseline_state_["var"]))
            print(f"  (NVIL's signal is divided by max(1, sqrt v) = {factor ** 0.5:.3g}; its "
                  "variance below is multiplied back by the square of that)")
            enc *= factor
        out[label] = (enc, sum(v for k, v in var.items() if k.startswith("dec_")))
    return out


def train_all(args, X_train, X_test_bin):
    curves, seconds = {}, {}
    for label in TRAINED:
        _, estimator, R = next(r for r in ROWS if r[0] == label)
        model = make(args, estimator, R)
        model.fit(X_train, epochs=args.epochs, batch_size=128, lr=1e-3,
                  validation_data=X_test_bin, random_state=args.seed, progress=False,
                  dynamic_binarization=True)
        curves[label] = list(model.history_.val_loss)
        seconds[label] = float(np.median(model.history_.seconds_per_epoch))
        print(f"  {label:<20} test -ELBO per epoch: "
              + " ".join(f"{v:.2f}" for v in curves[label])
              + f"   ({seconds[label]:.2f} s/epoch)", flush=True)
    return curves, seconds


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_variance(variances, path):
    plt = _pyplot()
    labels = list(variances)
    enc = [variances[k][0] for k in labels]
    fig, ax = plt.subplots(figsize=(8, 4))
    colors = ["C0" if k not in ("Gumbel-softmax", "straight-through") else "C7" for k in labels]
    ax.bar(range(len(labels)), enc, color=colors)
    ax.set_yscale("log")
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=25, ha="right", fontsize=8)
    ax.set_ylabel("summed variance of the encoder gradient")
    ax.set_title("Gradient variance at a fixed parameter (grey: relaxed, biased)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curves(curves, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, vals in curves.items():
        ax.plot(range(1, len(vals) + 1), vals, marker="o", label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test -ELBO (nats per image)")
    ax.set_title("Training curves of the estimators (same start, same batches)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    X_train, X_test, what = load_data(args)
    print(f"data: {what}; using {X_train.shape[0]} training and {X_test.shape[0]} test images")
    rng = np.random.default_rng(args.seed)
    X_test_bin = (rng.random(X_test.shape, dtype=np.float32) < X_test).astype(np.float32)
    X_batch = (rng.random((128, 784), dtype=np.float32) < X_train[:128]).astype(np.float32)
    arch = f"784-{args.hidden}-{args.latent}" if args.hidden else f"784-{args.latent} (linear)"
    print(f"SBN VAE q: {arch}, {args.latent} Bernoulli latents; Adam 1e-3, batch 128")

    warm = make(args, "nvil", 1)
    warm.fit(X_train, epochs=1, random_state=args.seed, progress=False,
             dynamic_binarization=True)
    print(f"1. gradient variance at a fixed parameter (after 1 epoch of NVIL), batch of 128, "
          f"{args.draws} draws per estimator:")
    variances = gradient_variance(args, warm, X_batch)
    ref = variances["REINFORCE"][0]
    print(f"  {'estimator':<20} {'var(encoder grad)':>18} {'vs REINFORCE':>13} "
          f"{'var(decoder grad)':>18}")
    for label, (enc, dec) in variances.items():
        print(f"  {label:<20} {enc:18.4g} {enc / ref:13.4g} {dec:18.4g}")
    plot_variance(variances, out / "gradient_variance.png")

    print(f"2. training, {args.epochs} epoch(s) each:")
    curves, seconds = train_all(args, X_train, X_test_bin)
    plot_curves(curves, out / "training_curves.png")
    print(f"figures: {out / 'gradient_variance.png'}, {out / 'training_curves.png'}")
    key = {"REINFORCE": "reinforce", "moving average": "moving_average", "NVIL": "nvil",
           "REINFORCE k=4": "reinforce4", "leave-one-out k=4": "loo4", "VIMCO k=4": "vimco4",
           "Gumbel-softmax": "gumbel", "straight-through": "straight_through"}
    print("RESULT estimator_variance "
          + " ".join(f"var_{key[k]}={v[0]:.4g}" for k, v in variances.items()) + " "
          + " ".join(f"test_nelbo_{key[k]}={c[-1]:.2f}" for k, c in curves.items())
          + f" epochs={args.epochs} seconds={time.perf_counter() - start:.0f}")


if __name__ == "__main__":
    main()
