"""A conditional VAE on Fashion-MNIST: samples of every class, drawn from p(z|y) p(x|z, y).

    python examples/cvae_fashion.py                 # full data if installed, else embedded
    python examples/cvae_fashion.py --epochs 20 --out /tmp/cvae
    python examples/cvae_fashion.py --quick         # smoke test (a few seconds)

Model (Sohn et al. 2015): y the one-hot class label (10 classes); encoder
q(z|x, y) on [x, y] (784 + 10)-400-(L mu, L log_var); learned conditional
prior p(z|y) = N(mu_p(y), diag exp(log_var_p(y))), one Gaussian per class;
decoder p(x|z, y) on [z, y] (L + 10)-400-784 with a Bernoulli likelihood on
grey levels; analytic KL between the two Gaussians; one reparameterised
sample per image; Adam (lr 1e-3, batches of 128).

Data: full Fashion-MNIST (Xiao et al. 2017) when
:func:`data_tools.load_mnist_like` finds it, otherwise the 10,000 embedded
test images (9,000 for training, the last 1,000 held out); the script says
which.  Defaults: 8 epochs on the full data, 30 on the embedded default.
Measured on the full data (shared 2-core machine, seed 0, 24 s in all): test
ELBO of log p(x|y) -240.2 nats per image with the true labels, -267.6 with
wrong labels; log p(x|y) >= -237.5 (k = 100, 1,000 images); generative
classifier accuracy 0.866.

It prints the test ELBO of log p(x|y) with the true labels and with wrong
labels (y + 1 mod 10), an importance-sampled log p(x|y) (IWAE bound, k =
``--n-importance``), and the accuracy of the generative classifier
argmax_y ELBO(x|y) (uniform p(y)) on the first ``--n-eval`` test images, and
writes:

* ``samples_per_class.png``: one row per class, means of p(x|z, y) for
  z ~ p(z|y) (``--n-per-class`` columns);
* ``same_noise_across_classes.png``: one column per noise draw eps, one row
  per class, z = mu_p(y) + exp(log_var_p(y)/2) eps (the same "style"
  rendered as every class);
* ``learning_curve.png``: train and test -ELBO per epoch.

BLAS threads: ``--threads`` (default 1), see examples/_setup.py.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_setup.py

from data_tools.mnist import load_mnist_like  # noqa: E402
from lvm_core.backend import to_numpy  # noqa: E402
from lvm_core.models.cvae import CVAE  # noqa: E402

FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=None,
                   help="training epochs (default: 8 on full data, 30 embedded, 2 with --quick)")
    p.add_argument("--latent", type=int, default=20, help="latent size L (default 20)")
    p.add_argument("--hidden", type=int, default=400, help="hidden units H (default 400)")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--n-per-class", type=int, default=10, help="samples per class in the figure")
    p.add_argument("--n-eval", type=int, default=1000,
                   help="test images for log p(x|y) and the classifier (default 1000)")
    p.add_argument("--n-importance", type=int, default=100, help="k of the IWAE bound")
    p.add_argument("--data-dir", default=None, help="directory with Fashion-MNIST IDX files")
    p.add_argument("--out", default="outputs/cvae_fashion", help="directory for figures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--quick", action="store_true", help="smoke test on 2,000 images, 2 epochs")
    return p.parse_args(argv)


def load_data(data_dir=None):
    """(X_train, y_train, X_test, y_test, description), grey levels in [0, 1] float32."""
    X_train, y_train, src_train = load_mnist_like("fashion-mnist", "train", path=data_dir)
    X_test, y_test, _ = load_mnist_like("fashion-mnist", "test", path=data_dir)
    if src_train.startswith("embedded-fallback:"):
        X_train, y_train = X_test[:9000], y_test[:9000]
        X_test, y_test = X_test[9000:], y_test[9000:]
        what = ("the EMBEDDED DEFAULT (no full Fashion-MNIST found): 9,000 of the 10,000 "
                "test images for training, the other 1,000 held out")
    else:
        what = (f"FULL Fashion-MNIST: {X_train.shape[0]:,} training images "
                f"({src_train}), {X_test.shape[0]:,} test images")
    return X_train, y_train, X_test, y_test, what


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _grid(images, rows, cols, row_labels, title, path):
    plt = _pyplot()
    fig, axes = plt.subplots(rows, cols, figsize=(0.75 * cols + 1.4, 0.75 * rows + 0.6),
                             gridspec_kw={"wspace": 0.05, "hspace": 0.05})
    axes = np.asarray(axes).reshape(rows, cols)
    for r in range(rows):
        for c in range(cols):
            ax = axes[r, c]
            ax.imshow(images[r * cols + c].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[r, 0].set_ylabel(row_labels[r], rotation=0, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.16, right=0.99, bottom=0.01, top=0.93)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_samples_per_class(model, n_per_class, seed, path):
    """Row y: means of p(x|z, y) for n_per_class draws z ~ p(z|y)."""
    y = np.repeat(np.arange(10), n_per_class)
    x = to_numpy(model.sample(y, rng=seed, mean=True))  # (10 n, D)
    _grid(x, 10, n_per_class, FASHION_LABELS,
          "CVAE samples per class: mean of p(x|z, y), z ~ p(z|y)", path)


def plot_same_noise(model, n_cols, seed, path):
    """Column j: one eps_j; row y: decode(mu_p(y) + exp(log_var_p(y)/2) eps_j, y)."""
    eps = np.random.default_rng(seed).standard_normal((n_cols, int(model.n_latent)))
    y = np.repeat(np.arange(10), n_cols)
    mu_p, log_var_p = (to_numpy(a) for a in model.prior(y))
    z = (mu_p + np.exp(0.5 * log_var_p) * np.tile(eps, (10, 1))).astype(np.float32)
    x = to_numpy(model.decode(z, y))
    _grid(x, 10, n_cols, FASHION_LABELS,
          "The same noise eps (columns) rendered as every class (rows)", path)


def plot_learning_curve(history, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    epochs = np.arange(1, len(history.train_loss) + 1)
    ax.plot(epochs, history.train_loss, "o-", label="train -ELBO")
    ax.plot(epochs, history.val_loss, "s-", label="test -ELBO (one z)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per image")
    ax.set_title("CVAE on Fashion-MNIST: -ELBO of log p(x|y)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    X_train, y_train, X_test, y_test, what = load_data(args.data_dir)
    full = what.startswith("FULL")
    print(f"Data: {what}.")
    if args.quick:
        X_train, y_train, X_test, y_test = X_train[:2000], y_train[:2000], X_test[:500], \
            y_test[:500]
    epochs = args.epochs or (2 if args.quick else (8 if full else 30))
    print(f"Training on {X_train.shape[0]} images, testing on {X_test.shape[0]}; {epochs} epochs, "
          f"latent size {args.latent}, hidden {args.hidden}.")
    model = CVAE(X_train.shape[1], 10, n_latent=args.latent, hidden=(args.hidden,),
                 decoder="bernoulli", random_state=args.seed)
    t0 = time.perf_counter()
    model.fit(X_train, y_train, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
              validation_data=(X_test, y_test), random_state=args.seed,
              progress=sys.stderr.isatty())
    t_train = time.perf_counter() - t0
    history = model.history_
    for e in sorted({0, len(history.train_loss) // 2, len(history.train_loss) - 1}):
        print(f"  epoch {e + 1:3d}: train -ELBO {history.train_loss[e]:8.2f}   "
              f"test -ELBO {history.val_loss[e]:8.2f}")

    t0 = time.perf_counter()
    rng = np.random.default_rng(args.seed + 1)
    seed = int(rng.integers(2**31))
    elbo = float(np.mean(to_numpy(model.elbo(X_test, y_test, rng=seed))))
    elbo_wrong = float(np.mean(to_numpy(model.elbo(X_test, (y_test + 1) % 10, rng=seed))))
    n_eval = min(args.n_eval, X_test.shape[0])
    Xe, ye = X_test[:n_eval], y_test[:n_eval]
    log_px = float(np.mean(to_numpy(model.log_marginal(Xe, ye, n_importance=args.n_importance,
                                                       rng=rng))))
    # generative classifier: argmax_y ELBO(x|y) (10 samples, the same eps for every y)
    scores = np.stack([to_numpy(model.elbo(Xe, np.full(n_eval, c), rng=seed, n_samples=10))
                       for c in range(10)], axis=1)  # (n, 10)
    accuracy = float(np.mean(np.argmax(scores, axis=1) == ye))
    t_eval = time.perf_counter() - t0
    print(f"test ELBO of log p(x|y): {elbo:.2f} nats per image with the true labels, "
          f"{elbo_wrong:.2f} with wrong labels (y + 1 mod 10)")
    print(f"importance-sampled log p(x|y) (k={args.n_importance}, first {n_eval} test images): "
          f"{log_px:.2f} nats per image")
    print(f"generative classifier argmax_y ELBO(x|y) on {n_eval} test images: accuracy "
          f"{accuracy:.3f}")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "samples_per_class.png", out / "same_noise_across_classes.png",
             out / "learning_curve.png"]
    plot_samples_per_class(model, args.n_per_class, args.seed + 2, paths[0])
    plot_same_noise(model, args.n_per_class, args.seed + 3, paths[1])
    plot_learning_curve(history, paths[2])
    for path in paths:
        print(f"wrote {path}")
    total = time.perf_counter() - t_start
    print(f"time: training {t_train:.1f} s, evaluation {t_eval:.1f} s, total {total:.1f} s")
    print(f"RESULT cvae_fashion full_data={int(full)} epochs={epochs} test_elbo={elbo:.3f} "
          f"test_elbo_wrong_label={elbo_wrong:.3f} log_px_given_y={log_px:.3f} "
          f"n_importance={args.n_importance} classifier_accuracy={accuracy:.3f} "
          f"total_s={total:.1f}")
    return {"test_elbo": elbo, "test_elbo_wrong_label": elbo_wrong, "log_px": log_px,
            "accuracy": accuracy, "figures": [str(p) for p in paths]}


if __name__ == "__main__":
    main()
