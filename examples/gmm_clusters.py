"""Gaussian mixture clustering of Fashion-MNIST in a PPCA subspace.

    python examples/gmm_clusters.py                    # about 10 s of CPU
    python examples/gmm_clusters.py --k 10 20 --n-factors 20 --out /tmp/gmm
    python examples/gmm_clusters.py --quick            # smoke test

The 10,000 Fashion-MNIST test images (Xiao et al. 2017; always available:
the embedded default is this split) are reduced to the posterior means
E[z|x] of a probabilistic PCA with L = 10 factors (Tipping & Bishop 1999;
closed-form maximum likelihood, Bishop PRML sec. 12.2).  A full-covariance
Gaussian mixture (EM, Bishop PRML sec. 9.2) is fitted there for each K of
``--k`` (best of 2 starts) and K is chosen by BIC = -2 log p(X) + n_params
log N.  Labels are never used for fitting; the script reports how well the
clusters match them by purity (the fraction of images whose cluster's
majority class is their own class; it tends to grow with K) and normalised
mutual information (NMI, arithmetic-mean normalisation).  Seed 0: BIC is
lowest at K = 30 (purity 0.713, NMI 0.560).

Figures (PNG, in ``--out``): ``cluster_means.png``, the cluster means of the
chosen mixture mapped back to pixel space through PPCA's generative map
x = mu + W^T z (titled by majority class and weight), and ``bic.png``, BIC
and NMI against K.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __name__ == "__main__":
    from _setup import limit_blas_threads

    limit_blas_threads()  # before NumPy is imported (see examples/_setup.py)

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_setup.py

from data_tools.mnist import load_mnist_like  # noqa: E402
from _setup import cupy_or_exit  # noqa: E402
from lvm_core.backend import to_numpy  # noqa: E402
from lvm_core.models.factor_analysis import PPCA  # noqa: E402
from lvm_core.models.gmm import GaussianMixture  # noqa: E402

FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-factors", type=int, default=10, help="PPCA latent size L (default 10)")
    p.add_argument("--k", type=int, nargs="+", default=None,
                   help="numbers of mixture components to try (default 5 10 20 30 40; "
                        "5 10 with --quick)")
    p.add_argument("--n-init", type=int, default=None,
                   help="EM starts per K (default 2; 1 with --quick)")
    p.add_argument("--n-images", type=int, default=None,
                   help="test images used (default 10,000; 2,000 with --quick)")
    p.add_argument("--data-dir", default=None)
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1; 0 leaves the library default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/gmm_clusters", help="directory for the figures")
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy",
                   help="cupy: data and both models on the GPU")
    p.add_argument("--quick", action="store_true",
                   help="small budget for smoke tests (explicit options still win)")
    args = p.parse_args(argv)
    defaults = {"n_images": 2000, "k": [5, 10], "n_init": 1} if args.quick else \
        {"n_images": 10000, "k": [5, 10, 20, 30, 40], "n_init": 2}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    return args


def purity(labels_pred, labels_true):
    """Fraction of points whose cluster's majority label is their own label."""
    total = 0
    for k in np.unique(labels_pred):
        total += np.bincount(labels_true[labels_pred == k]).max()
    return total / len(labels_true)


def normalized_mutual_information(labels_pred, labels_true):
    """NMI = I(C; Y) / ((H(C) + H(Y)) / 2) from the contingency table (natural logs)."""
    _, c = np.unique(labels_pred, return_inverse=True)
    _, y = np.unique(labels_true, return_inverse=True)
    joint = np.zeros((c.max() + 1, y.max() + 1))
    np.add.at(joint, (c, y), 1.0)
    joint /= joint.sum()
    pc, py = joint.sum(axis=1), joint.sum(axis=0)
    nz = joint > 0
    mi = float(np.sum(joint[nz] * np.log(joint[nz] / np.outer(pc, py)[nz])))
    h_c = -float(np.sum(pc[pc > 0] * np.log(pc[pc > 0])))
    h_y = -float(np.sum(py[py > 0] * np.log(py[py > 0])))
    return 2.0 * mi / (h_c + h_y) if h_c + h_y > 0 else 0.0


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_cluster_means(centers, weights, majority, path):
    """Cluster means in pixel space (K, 784), ordered by weight, titled by majority class."""
    plt = _pyplot()
    K = centers.shape[0]
    cols = min(K, 10)
    rows = int(np.ceil(K / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(1.25 * cols, 1.45 * rows + 0.5), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for ax, k in zip(axes.ravel(), np.argsort(-weights)):
        ax.imshow(np.clip(centers[k], 0, 1).reshape(28, 28), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{FASHION_LABELS[majority[k]]}\n{weights[k]:.3f}", fontsize=6)
    fig.suptitle(f"GMM cluster means (K = {K}) in pixel space: majority class and weight")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_bic(ks, bics, nmis, best_k, path):
    """BIC (left axis) and NMI (right axis) against K."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(ks, bics, "o-", color="tab:blue", label="BIC")
    ax.axvline(best_k, color="tab:blue", ls=":", lw=1)
    ax.set_xlabel("number of components K")
    ax.set_ylabel("BIC (lower is better)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(ks, nmis, "s--", color="tab:orange")
    ax2.set_ylabel("NMI with the true classes", color="tab:orange")
    ax.set_title(f"Choosing K by BIC (chosen: K = {best_k})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    X, y, source = load_mnist_like("fashion-mnist", "test", path=args.data_dir)
    X, y = X[: args.n_images].astype(np.float64), y[: args.n_images]
    cupy = cupy_or_exit(args.backend)  # one line and exit 2 without CuPy or a GPU
    if args.backend == "cupy":
        X = cupy.asarray(X)
    ppca = PPCA(n_components=args.n_factors).fit(X)
    Z = ppca.transform(X)  # (N, L) posterior means E[z|x]
    print(f"{X.shape[0]} images from {source}")
    print(f"PPCA with {args.n_factors} factors: noise variance sigma^2 = "
          f"{float(to_numpy(ppca.noise_variance_)):.4f}, mean log-likelihood "
          f"{ppca.score(X):.1f} nats per image")

    fits = []
    for K in args.k:
        gmm = GaussianMixture(n_components=K, covariance_type="full", n_init=args.n_init,
                              random_state=args.seed, max_iter=200).fit(Z)
        bic = gmm.bic(Z)
        pred = to_numpy(gmm.predict(Z))
        pur, nmi = purity(pred, y), normalized_mutual_information(pred, y)
        fits.append({"K": K, "bic": bic, "gmm": gmm, "pred": pred, "purity": pur, "nmi": nmi})
        print(f"K = {K:3d}: BIC {bic:11.1f}  mean log-likelihood {gmm.score(Z):7.3f}  "
              f"purity {pur:.3f}  NMI {nmi:.3f}  (converged: {gmm.converged_}, "
              f"{gmm.n_iter_} iterations)")
    best = min(fits, key=lambda f: f["bic"])
    K, gmm = best["K"], best["gmm"]
    print(f"best by BIC: K = {K} (purity {best['purity']:.3f}, NMI {best['nmi']:.3f})")
    if K == max(args.k):
        print("  (the largest K tried: BIC may fall further; try larger values with --k)")
    print(f"RESULT gmm_clusters best_k={K} purity={best['purity']:.4f} nmi={best['nmi']:.4f}")

    # Cluster means back in pixel space: x = mu + W^T z (PPCA's generative map).
    W = to_numpy(ppca.components_)  # (L, D)
    centers = to_numpy(ppca.mean_) + to_numpy(gmm.means_) @ W  # (K, D)
    majority = np.array([np.bincount(y[best["pred"] == k], minlength=10).argmax()
                         if np.any(best["pred"] == k) else 0 for k in range(K)])
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "cluster_means.png", out / "bic.png"]
    plot_cluster_means(centers, to_numpy(gmm.weights_), majority, paths[0])
    plot_bic([f["K"] for f in fits], [f["bic"] for f in fits], [f["nmi"] for f in fits], K,
             paths[1])
    for path in paths:
        print(f"wrote {path}")
    return {"best_k": K, "purity": best["purity"], "nmi": best["nmi"],
            "figures": [str(p) for p in paths]}


if __name__ == "__main__":
    main()
