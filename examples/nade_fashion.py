"""NADE on binarised Fashion-MNIST: exact log-likelihoods and ancestral samples.

    python examples/nade_fashion.py                  # 10,000 training images, about 5 min
    python examples/nade_fashion.py --quick          # smoke test (seconds)
    python examples/nade_fashion.py --n-train 60000 --hidden 500 --epochs 20

Model (Larochelle & Murray 2011): p(x) = prod_d p(x_d | x_<d) over the 784
pixels in raster order, each conditional a one-hidden-layer network with
tied input weights (the running pre-activation makes log p(x) O(D H)), H
hidden units (``--hidden``, default 200).  Pixels are binarised by one
Bernoulli draw of their grey level at a fixed seed (stochastic binarisation,
Salakhutdinov & Murray 2008).  Adam (lr 1e-3, batches of 100) with early
stopping on 1,000 held-out training images.

Data: the first ``--n-train`` images of full Fashion-MNIST when
:func:`data_tools.load_mnist_like` finds it, otherwise the embedded 10,000
test images (9,000 for training, 1,000 held out); the script says which.
It prints the test NLL in nats per image (exact: no bound) and writes

* ``samples.png``: 64 ancestral samples x_1 ~ p(x_1), x_d ~ p(x_d | x_<d);
* ``conditionals.png``: test images and p(x_d = 1 | x_<d) for every pixel
  (what the model predicts for each pixel from the pixels above and left);
* ``learning_curve.png``: training and validation NLL per epoch.

Measured on the shared 2-core machine (defaults, full Fashion-MNIST found,
seed 0): 249 s of training, test NLL 246.56 nats per image on the 10,000
test images (stochastically binarised), still falling after 20 epochs.

BLAS threads: ``--threads`` (default 1) caps OpenBLAS/MKL/OpenMP threads
unless already set in the environment (see examples/train_vae.py).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


if __name__ == "__main__":
    from _setup import limit_blas_threads

    limit_blas_threads()  # before NumPy is imported (see examples/_setup.py)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from data_tools.binarize import binarize_stochastic  # noqa: E402
from data_tools.mnist import load_mnist_like  # noqa: E402
from lvm_core.backend import to_numpy  # noqa: E402
from lvm_core.models.autoregressive import NADE  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=None, help="max epochs (default 20; 2 quick)")
    p.add_argument("--hidden", type=int, default=None, help="hidden units H (default 200)")
    p.add_argument("--n-train", type=int, default=10000, help="training images (default 10,000)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="outputs/nade_fashion", help="directory for figures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (0: library default)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1,000 training and 200 test images, H = 20, 2 epochs")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 2 if args.quick else 20
    if args.hidden is None:
        args.hidden = 20 if args.quick else 200
    return args


def load_data(args):
    X_train, _, src = load_mnist_like("fashion-mnist", "train", path=args.data_dir)
    X_test, _, _ = load_mnist_like("fashion-mnist", "test", path=args.data_dir)
    if src.startswith("embedded-fallback:"):
        X_train, X_test = X_test[:9000], X_test[9000:]
        what = "the EMBEDDED DEFAULT (no full Fashion-MNIST found): 9,000 test images to train"
    else:
        what = f"FULL Fashion-MNIST ({src})"
    n_train = 1000 if args.quick else args.n_train
    X_train = X_train[:n_train + 1000]
    X_test = X_test[:200] if args.quick else X_test
    X_train = np.asarray(binarize_stochastic(np.asarray(X_train, dtype=np.float32), args.seed))
    X_test = np.asarray(binarize_stochastic(np.asarray(X_test, dtype=np.float32), args.seed + 1))
    X_train, X_valid = X_train[:-1000], X_train[-1000:]
    return X_train.astype(np.float32), X_valid.astype(np.float32), X_test.astype(np.float32), what


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_grid(images, path, title, side=8):
    plt = _pyplot()
    fig, axes = plt.subplots(side, side, figsize=(6, 6.3),
                             gridspec_kw={"wspace": 0.05, "hspace": 0.05})
    for ax in axes.ravel():
        ax.axis("off")
    for ax, img in zip(axes.ravel(), images):
        ax.imshow(img.reshape(28, 28), cmap="gray", vmin=0, vmax=1)
    fig.suptitle(title)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.93)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_conditionals(model, X, path, n=8):
    """Top: binarised test images; bottom: p(x_d = 1 | x_<d) = exp(log p(x_d=1 | x_<d))."""
    plt = _pyplot()
    X = X[:n]
    # log_conditionals gives log p(x_d | x_<d) at the observed x_d; for x_d = 0 the
    # probability of a one is its complement
    log_cond = to_numpy(model.log_conditionals(X))
    p_observed = np.exp(log_cond)
    p_one = np.where(X == 1, p_observed, 1.0 - p_observed)
    fig, axes = plt.subplots(2, n, figsize=(1.05 * n, 2.5), squeeze=False,
                             gridspec_kw={"wspace": 0.05, "hspace": 0.05})
    for j in range(n):
        axes[0, j].imshow(X[j].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        axes[1, j].imshow(p_one[j].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        axes[0, j].axis("off")
        axes[1, j].axis("off")
    fig.suptitle("Test images (top) and p(x_d = 1 | x_<d) (bottom)", fontsize=9)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=0.86)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_learning_curve(history, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    epochs = np.arange(1, len(history.train_loss) + 1)
    ax.plot(epochs, history.train_loss, label="train NLL")
    if history.val_loss:
        ax.plot(epochs, history.val_loss, label="validation NLL")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per image")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    X_train, X_valid, X_test, what = load_data(args)
    print(f"Data: {what}; binarised by Bernoulli draws; train/valid/test = "
          f"{len(X_train)}/{len(X_valid)}/{len(X_test)}")
    D = X_train.shape[1]
    model = NADE(D, n_hidden=args.hidden, random_state=args.seed)
    m = (X_train.sum(axis=0) + 1.0) / (X_train.shape[0] + 2.0)
    model.params["b"] = np.log(m / (1.0 - m)).astype(np.float32)  # start at the marginals
    start = time.perf_counter()
    model.fit(X_train, epochs=args.epochs, batch_size=100, lr=args.lr, validation_data=X_valid,
              patience=3, random_state=args.seed)
    seconds = time.perf_counter() - start
    h = model.history_
    for e, (tr, va) in enumerate(zip(h.train_loss, h.val_loss), start=1):
        print(f"epoch {e:3d}: train NLL {tr:8.3f}   validation NLL {va:8.3f}")
    test_nll = model.validation_loss(X_test)
    print(f"NADE (H = {args.hidden}): test NLL {test_nll:.2f} nats per image "
          f"(exact), best epoch {h.best_epoch}, {seconds:.0f} s of training")
    samples = to_numpy(model.sample(64, rng=args.seed))
    plot_grid(samples, out / "samples.png", "NADE samples (ancestral, raster order)")
    plot_conditionals(model, X_test, out / "conditionals.png")
    plot_learning_curve(h, out / "learning_curve.png")
    print(f"figures written to {out}")
    print(f"RESULT nade_fashion test_nll={test_nll:.2f} hidden={args.hidden} "
          f"epochs={h.epochs_completed}")


if __name__ == "__main__":
    main()
