"""A VRNN on Fashion-MNIST read row by row: each image is a sequence of 28 rows of 28 pixels.

    python examples/vrnn_fashion_rows.py                 # 30,000 training images, 3 epochs
    python examples/vrnn_fashion_rows.py --cell lstm --epochs 10
    python examples/vrnn_fashion_rows.py --quick         # smoke test (seconds)

Model (Chung et al. 2015): x_t is row t of an image (28 grey levels in [0, 1],
Bernoulli likelihood on them as in the VAE examples); a GRU (or LSTM) state
h_t of 128 units summarises rows 1..t and the latent z_t (16 dimensions);
prior p(z_t | h_{t-1}), encoder q(z_t | x_t, h_{t-1}), decoder p(x_t | z_t,
h_{t-1}), feature extractors phi_x, phi_z with 64 ReLU units; trained on
the per-image ELBO (sum over the 28 rows of log-likelihood minus the KL
between q and the learned prior) with Adam (lr 1e-3, batches of 128).

Data: the full Fashion-MNIST when :func:`data_tools.load_mnist_like` finds it
(the first ``--n-train`` training images), otherwise the embedded 10,000 test
images (9,000 for training, 1,000 held out); the script says which.

Prints the test ELBO (nats per image, one z path per image) and the
importance-sampled log p(x) (k = 50 paths per image, IWAE bound, on the first
500 test images), and writes to
``--out``: ``vrnn_samples.png`` (64 images generated row by row: z_t from the
prior, the row's mean sigmoid(l_t) fed back into the recurrence),
``vrnn_rows.png`` (six of them as they grow, after 4, 8, ..., 28 rows) and
``vrnn_learning_curve.png``.
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
from lvm_core.models.vrnn import VRNN  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=None, help="epochs (default 3; 1 with --quick)")
    p.add_argument("--n-train", type=int, default=30000,
                   help="training images taken from the full data (default 30000)")
    p.add_argument("--cell", choices=["gru", "lstm"], default="gru")
    p.add_argument("--hidden", type=int, default=128, help="recurrent units H (default 128)")
    p.add_argument("--latent", type=int, default=16, help="latent size L (default 16)")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="outputs/vrnn_fashion_rows", help="directory for figures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1; 0 leaves the library default)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 1,000 training and 200 test images, 1 epoch, H = 32")
    args = p.parse_args(argv)
    if args.epochs is None:
        args.epochs = 1 if args.quick else 3
    if args.quick:
        args.hidden = min(args.hidden, 32)
    return args


def load_data(data_dir=None, n_train=30000):
    """(X_train, X_test) as (N, 28, 28) float32 in [0, 1] and a description."""
    X, _, src = load_mnist_like("fashion-mnist", "train", path=data_dir, normalize=True,
                                dtype="float32")
    Xt, _, _ = load_mnist_like("fashion-mnist", "test", path=data_dir, normalize=True,
                               dtype="float32")
    if src.startswith("embedded-fallback:"):
        X, Xt = Xt[:9000], Xt[9000:]
        what = "the EMBEDDED DEFAULT (9,000 training images, 1,000 held out)"
    else:
        X = X[:n_train]
        what = f"FULL Fashion-MNIST (first {X.shape[0]:,} training, {Xt.shape[0]:,} test images)"
    return (np.ascontiguousarray(X.reshape(-1, 28, 28)),
            np.ascontiguousarray(Xt.reshape(-1, 28, 28)), what)


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
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, img in zip(np.ravel(axes), samples):
        ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    fig.suptitle(title, fontsize=9)
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.93)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_rows(samples, path):
    """Each sample (a row of the figure) after 4, 8, ..., 28 generated rows."""
    plt = _pyplot()
    cmap = plt.get_cmap("gray").copy()
    cmap.set_bad("#c8d4e6")  # rows not generated yet
    stops = list(range(4, 29, 4))
    fig, axes = plt.subplots(samples.shape[0], len(stops), figsize=(1.2 * len(stops),
                                                                     1.25 * samples.shape[0]),
                             squeeze=False, gridspec_kw={"wspace": 0.05, "hspace": 0.1})
    for i, img in enumerate(samples):
        for j, k in enumerate(stops):
            partial = np.full((28, 28), np.nan)
            partial[:k] = img[:k]
            axes[i, j].imshow(np.ma.masked_invalid(partial), cmap=cmap, vmin=0, vmax=1)
            axes[i, j].axis("off")
            if i == 0:
                axes[i, j].set_title(f"{k} rows", fontsize=8)
    fig.suptitle("VRNN samples generated row by row", fontsize=9)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_curve(history, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = np.arange(1, len(history.train_loss) + 1)
    ax.plot(epochs, history.train_loss, "o-", label="train -ELBO")
    if history.val_loss:
        ax.plot(epochs, history.val_loss, "s-", label="test -ELBO")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per image")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    X, Xt, what = load_data(args.data_dir, args.n_train)
    if args.quick:
        X, Xt = X[:1000], Xt[:200]
    print(f"Data: {what}; {X.shape[0]} train / {Xt.shape[0]} test sequences of 28 rows x 28 "
          "pixels")
    width = 64 if not args.quick else 16
    model = VRNN(28, n_latent=args.latent, n_hidden=args.hidden, cell=args.cell,
                 phi_x=(width,), phi_z=(width,), encoder=(width,), decoder=(width,),
                 prior=(width,), emission="bernoulli", random_state=args.seed)
    start = time.perf_counter()
    model.fit(X, epochs=args.epochs, batch_size=128, lr=args.lr, validation_data=Xt,
              random_state=args.seed)
    h = model.history_
    for e, (tr, va) in enumerate(zip(h.train_loss, h.val_loss), 1):
        print(f"epoch {e:3d}: train -ELBO {tr:8.3f}   test -ELBO {va:8.3f}   "
              f"({h.seconds_per_epoch[e - 1]:.1f} s)")
    print(f"training: {time.perf_counter() - start:.1f} s ({args.cell.upper()}, H = "
          f"{args.hidden}, L = {args.latent})")
    elbo = float(np.mean(model.elbo(Xt, rng=args.seed)))
    print(f"test ELBO: {elbo:.3f} nats per image (one z path per image)")
    n_eval = min(500, Xt.shape[0]) if not args.quick else 50
    log_px = float(np.mean(model.log_marginal(Xt[:n_eval], n_importance=50, rng=args.seed)))
    print(f"importance-sampled log p(x) (k=50 paths, first {n_eval} test images): "
          f"{log_px:.3f} nats per image")
    os.makedirs(args.out, exist_ok=True)
    samples = np.asarray(model.sample(64 if not args.quick else 16, 28, rng=args.seed))
    plot_samples(samples, os.path.join(args.out, "vrnn_samples.png"),
                 f"VRNN samples, generated row by row; test ELBO {elbo:.1f} nats")
    plot_rows(samples[:6], os.path.join(args.out, "vrnn_rows.png"))
    plot_curve(h, os.path.join(args.out, "vrnn_learning_curve.png"))
    print(f"figures written to {args.out}")
    print(f"RESULT vrnn_fashion_rows test_elbo={elbo:.3f} log_px_k50={log_px:.3f} "
          f"epochs={len(h.train_loss)} cell={args.cell}")


if __name__ == "__main__":
    main()
