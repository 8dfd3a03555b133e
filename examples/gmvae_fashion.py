"""Unsupervised clusters of Fashion-MNIST with a Gaussian-mixture VAE (GMVAE).

    python examples/gmvae_fashion.py                    # full data if installed, else embedded
    python examples/gmvae_fashion.py --epochs 10 --out /tmp/gmvae
    python examples/gmvae_fashion.py --objective gumbel # train with the Gumbel-softmax estimator
    python examples/gmvae_fashion.py --quick            # smoke test (a few seconds)

Model (Kingma et al. 2014, M2 factorisation; Shu 2016; Dilokthanakul et al.
2016): q(y|x) categorical over K = 10 components, q(z|x, y) Gaussian (an
affine head on [h(x), onehot(y)]), p(z|y) a learned Gaussian per component,
p(y) = 1/K, decoder L-400-784 with a Bernoulli likelihood on grey levels.
Training maximises the exact bound (the sum over y, with the entropy of q(y|x)
and E_q[log p(y)]), or a Gumbel-softmax / straight-through estimate of it
(``--objective``, Jang et al. 2017, temperature annealed from 1 to 0.5).
Evaluation is always exact: the test ELBO sums over y, and log p(x) is
importance-sampled with the sum over y done exactly.

Data: full Fashion-MNIST when :func:`data_tools.load_mnist_like` finds it,
otherwise the 10,000 embedded test images (9,000 for training, 1,000 held
out); the script says which.  Defaults: 3 epochs on the full data, 15 on the
embedded default, 2 with ``--quick`` (2,000 training images).

It prints the test ELBO, the importance-sampled log p(x) on 500 test images,
and the test clustering accuracy of argmax q(y|x) with the best one-to-one
matching of clusters to classes (Hungarian algorithm, lvm_core.metrics), and
writes to ``--out``:

* ``samples_per_component.png``: one row per component k, means of p(x|z)
  for z ~ p(z|k), rows in the order of the matched classes;
* ``confusion_matrix.png``: test classes against clusters (columns ordered by
  the matching), counts per cell.
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
from lvm_core.metrics import best_matching, clustering_accuracy, confusion_matrix  # noqa: E402
from lvm_core.models.gmvae import GMVAE  # noqa: E402

FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs (default 3 on full data, 15 embedded, 2 with --quick)")
    p.add_argument("--components", type=int, default=10, help="K (default 10)")
    p.add_argument("--latent", type=int, default=20, help="L (default 20)")
    p.add_argument("--hidden", type=int, default=400, help="H (default 400)")
    p.add_argument("--objective", choices=["exact", "gumbel", "straight_through"],
                   default="exact")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--data-dir", default=None)
    p.add_argument("--out", default="outputs/gmvae_fashion", help="directory for figures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1; 0 leaves the library default)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 2,000 training and 500 test images, 2 epochs")
    return p.parse_args(argv)


def load_data(data_dir=None):
    X_train, y_train, src = load_mnist_like("fashion-mnist", "train", path=data_dir)
    X_test, y_test, _ = load_mnist_like("fashion-mnist", "test", path=data_dir)
    if src.startswith("embedded-fallback:"):
        X_train, y_train = X_test[:9000], y_test[:9000]
        X_test, y_test = X_test[9000:], y_test[9000:]
        what = "the EMBEDDED DEFAULT: 9,000 of the 10,000 test images for training, 1,000 held out"
        full = False
    else:
        what = f"FULL Fashion-MNIST: {X_train.shape[0]:,} training, {X_test.shape[0]:,} test"
        full = True
    return X_train, np.asarray(y_train), X_test, np.asarray(y_test), what, full


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_samples_per_component(model, order, class_of, path, n=10, seed=0):
    """Row r: n means of p(x|z), z ~ p(z|k) for the component k = order[r]."""
    plt = _pyplot()
    K = len(order)
    fig, axes = plt.subplots(K, n, figsize=(n * 0.8, K * 0.85),
                             gridspec_kw={"wspace": 0.05, "hspace": 0.1})
    axes = np.atleast_2d(axes)
    for r, k in enumerate(order):
        x, _ = model.sample(n, rng=seed + r, y=k, mean=True)
        x = to_numpy(x)
        for c in range(n):
            axes[r, c].imshow(x[c].reshape(28, 28), cmap="gray", vmin=0, vmax=1)
            axes[r, c].axis("off")
        label = FASHION_LABELS[class_of[k]] if k in class_of else "(unmatched)"
        axes[r, 0].text(-4, 14, f"k={k}: {label}", ha="right", va="center", fontsize=7)
    fig.suptitle("GMVAE: means of p(x|z), z ~ p(z|k), one row per component", fontsize=9)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def plot_confusion(counts, order, path, acc):
    plt = _pyplot()
    M = counts[:, order]
    fig, ax = plt.subplots(figsize=(7, 6))
    im = ax.imshow(M, cmap="Blues")
    for i in range(M.shape[0]):
        for j in range(M.shape[1]):
            ax.text(j, i, str(M[i, j]), ha="center", va="center", fontsize=6,
                    color="white" if M[i, j] > M.max() / 2 else "black")
    ax.set_xticks(range(len(order)), [str(k) for k in order])
    ax.set_yticks(range(M.shape[0]), FASHION_LABELS[:M.shape[0]], fontsize=7)
    ax.set_xlabel("cluster argmax q(y|x) (ordered by the best one-to-one matching)")
    ax.set_ylabel("true class")
    ax.set_title(f"test confusion matrix, clustering accuracy {acc:.3f}")
    fig.colorbar(im, ax=ax, shrink=0.8)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    X_train, y_train, X_test, y_test, what, full = load_data(args.data_dir)
    if args.quick:
        X_train, y_train, X_test, y_test = X_train[:2000], y_train[:2000], X_test[:500], \
            y_test[:500]
    epochs = args.epochs or (2 if args.quick else 3 if full else 15)
    print(f"data: {what}; using {X_train.shape[0]} train / {X_test.shape[0]} test images")
    model = GMVAE(784, n_components=args.components, n_latent=args.latent,
                  hidden=(args.hidden,), objective=args.objective, random_state=args.seed,
                  anneal_rate=3e-5)
    print(f"GMVAE K={args.components}, L={args.latent}, H={args.hidden}, objective "
          f"{args.objective}, {epochs} epochs, Adam {args.lr:g}, batch {args.batch_size}")
    start = time.perf_counter()
    model.fit(X_train, epochs=epochs, batch_size=args.batch_size, lr=args.lr,
              random_state=args.seed, progress=False, validation_data=X_test)
    for e, (tr, va) in enumerate(zip(model.history_.train_loss, model.history_.val_loss), 1):
        print(f"epoch {e:3d}: train loss {tr:.2f}   test -ELBO (exact) {va:.2f}")
    print(f"training took {time.perf_counter() - start:.1f} s")
    elbo = float(np.mean(to_numpy(model.elbo(X_test, rng=1))))
    n_is = min(500, X_test.shape[0])
    log_px = float(np.mean(to_numpy(model.log_marginal(X_test[:n_is], n_importance=10, rng=2))))
    pred = to_numpy(model.predict(X_test))
    acc = clustering_accuracy(y_test, pred)
    K = args.components
    counts = confusion_matrix(y_test, pred, n_classes=10, n_clusters=K)
    class_of = best_matching(y_test, pred)
    order = sorted(range(K), key=lambda k: (class_of.get(k, 10 + k)))
    print(f"test ELBO (exact, sum over y): {elbo:.2f} nats per image")
    print(f"importance-sampled log p(x) (10 per component, first {n_is} test images): "
          f"{log_px:.2f} nats")
    print(f"test clustering accuracy (best one-to-one matching): {acc:.4f}")
    plot_samples_per_component(model, order, class_of, out / "samples_per_component.png")
    plot_confusion(counts, order, out / "confusion_matrix.png", acc)
    print(f"figures written to {out}/ (samples_per_component.png, confusion_matrix.png)")
    print(f"RESULT gmvae_fashion full_data={int(full)} epochs={epochs} accuracy={acc:.4f} "
          f"test_elbo={elbo:.3f} log_px={log_px:.3f}")


if __name__ == "__main__":
    main()
