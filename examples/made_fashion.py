"""MADE on binarised Fashion-MNIST: exact log-likelihoods and ancestral samples.

    python examples/made_fashion.py                 # full data if installed, else embedded
    python examples/made_fashion.py --masks 8       # connectivity-agnostic training, ensemble
    python examples/made_fashion.py --quick         # smoke test (seconds)

Model (Germain et al. 2015): a masked autoencoder 784-H-784 (ReLU), images
binarised at grey level 0.5, pixels in raster order (or ``--ordering
random``), Adam (lr 1e-3, batches of 100), early stopping on a validation
split (the last 10% of the training images).  With ``--masks M > 1`` each
minibatch uses one of M fixed masks and the test score is the ensemble
log p(x) = logsumexp_m log p_m(x) - log M.

Data: the full Fashion-MNIST (60,000 / 10,000) when
:func:`data_tools.load_mnist_like` finds it, otherwise the embedded 10,000
test images (9,000 for training, 1,000 held out); the script says which.

Prints the exact test negative log-likelihood (nats per image) and writes
``made_samples.png`` (64 images drawn by ancestral sampling, 784 passes) and
``made_learning_curve.png`` (train and validation NLL per epoch) to ``--out``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

if __name__ == "__main__":
    from _setup import limit_blas_threads

    limit_blas_threads()

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_tools.mnist import load_mnist_like  # noqa: E402
from lvm_core.models.made import MADE  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=None,
                   help="most training epochs (default 30; 2 with --quick)")
    p.add_argument("--hidden", type=int, default=500, help="hidden units H (default 500)")
    p.add_argument("--masks", type=int, default=1, help="number of masks M (default 1)")
    p.add_argument("--ordering", choices=["natural", "random"], default="natural")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--patience", type=int, default=5, help="early-stopping patience (epochs)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="outputs/made_fashion", help="directory for figures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1; 0 leaves the library default)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 2,000 training and 500 test images, 2 epochs, H = 100")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 2 if args.quick else 30
    if args.quick:
        args.hidden = min(args.hidden, 100)
    return args


def load_data(data_dir=None):
    X, _, src = load_mnist_like("fashion-mnist", "train", path=data_dir)
    Xt, _, _ = load_mnist_like("fashion-mnist", "test", path=data_dir)
    if src.startswith("embedded-fallback:"):
        X, Xt = Xt[:9000], Xt[9000:]
        what = "the EMBEDDED DEFAULT (9,000 training images, 1,000 held out)"
    else:
        what = f"FULL Fashion-MNIST ({X.shape[0]:,} training, {Xt.shape[0]:,} test images)"
    return (X > 0.5).astype(np.float32), (Xt > 0.5).astype(np.float32), what


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_samples(samples, path, title):
    plt = _pyplot()
    side = int(np.ceil(np.sqrt(samples.shape[0])))
    fig, axes = plt.subplots(side, side, figsize=(6, 6.3),
                             gridspec_kw={"wspace": 0.05, "hspace": 0.05})
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img in zip(axes.ravel(), samples):
        ax.imshow(img.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.93)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curve(history, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(history.train_loss) + 1)
    ax.plot(epochs, history.train_loss, label="train (one mask per batch)")
    if history.val_loss:
        ax.plot(epochs, history.val_loss, label="validation (ensemble)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL (nats per image)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    X, Xt, what = load_data(args.data_dir)
    if args.quick:
        X, Xt = X[:2000], Xt[:500]
    n_val = max(1, X.shape[0] // 10)
    X_train, X_val = X[:-n_val], X[-n_val:]
    print(f"Data: {what}; binarised at 0.5; {X_train.shape[0]} train / {n_val} validation / "
          f"{Xt.shape[0]} test")
    model = MADE(784, hidden=(args.hidden,), n_masks=args.masks, ordering=args.ordering,
                 random_state=args.seed)
    start = time.perf_counter()
    model.fit(X_train, epochs=args.epochs, batch_size=100, lr=args.lr, validation_data=X_val,
              early_stopping_patience=args.patience, random_state=args.seed)
    h = model.history_
    for e, (tr, va) in enumerate(zip(h.train_loss, h.val_loss), 1):
        print(f"epoch {e:3d}: train NLL {tr:8.3f}   validation NLL {va:8.3f}")
    print(f"training: {time.perf_counter() - start:.1f} s, best epoch {h.best_epoch}")
    nll = -model.score(Xt)
    print(f"test NLL: {nll:.3f} nats per image "
          f"({'ensemble of %d masks' % args.masks if args.masks > 1 else 'one mask'})")
    if args.masks > 1:
        one = -model.score(Xt, mask=0)
        print(f"test NLL with mask 0 alone: {one:.3f} nats per image")
    os.makedirs(args.out, exist_ok=True)
    samples = np.asarray(model.sample(64 if not args.quick else 16, rng=args.seed))
    plot_samples(samples, os.path.join(args.out, "made_samples.png"),
                 f"MADE samples (ancestral, 784 passes); test NLL {nll:.1f} nats")
    plot_curve(h, os.path.join(args.out, "made_learning_curve.png"))
    print(f"figures written to {args.out}")
    print(f"RESULT made_fashion test_nll={nll:.3f} epochs={len(h.train_loss)} "
          f"masks={args.masks}")


if __name__ == "__main__":
    main()
