"""Dictionary learning on natural image patches (Olshausen & Field 1996).

    python examples/dictionary_patches.py            # 20,000 8x8 patches, 100 atoms
    python examples/dictionary_patches.py --quick    # smoke test

Data: the two photographs scikit-learn ships (``sklearn.datasets.
load_sample_images``: "china.jpg" and "flower.jpg", 427 x 640; reading them
needs pillow), converted to grey levels.  Random 8 x 8 patches have their
mean (DC) removed and are scaled by the overall standard deviation.

Model: minimise sum_n 1/2 ||x_n - c_n Dict||^2 + alpha ||c_n||_1 over
unit-norm atoms and sparse codes (:class:`lvm_core.models.sparse_coding.
DictionaryLearning`): FISTA codes (Beck & Teboulle 2009) alternating with
block-coordinate atom updates on minibatch statistics (Mairal et al. 2010).
The learned atoms are localised, oriented edge and grating filters, as in
Olshausen & Field's experiment.

Writes ``dictionary_atoms.png`` (the atoms, sorted by use) and
``dictionary_objective.png`` to ``--out``; prints the objective per epoch,
the mean number of nonzero coefficients per patch and
``RESULT dictionary_patches objective_first=... objective_last=...``.
BLAS threads: ``--threads`` (default 1).
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

from lvm_core.models.sparse_coding import DictionaryLearning  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-patches", type=int, default=20000)
    p.add_argument("--patch-size", type=int, default=8)
    p.add_argument("--n-atoms", type=int, default=100)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/dictionary_patches", help="directory for figures")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (0: library default)")
    p.add_argument("--quick", action="store_true",
                   help="2,000 patches, 36 atoms, 2 epochs (smoke test)")
    args = p.parse_args(argv)
    if args.quick:
        args.n_patches, args.n_atoms, args.epochs = 2000, 36, 2
    return args


def image_patches(n_patches, size, rng):
    """(n_patches, size*size) grey-level patches of scikit-learn's sample images,
    DC removed, scaled to unit overall standard deviation."""
    try:
        from sklearn.datasets import load_sample_images
        images = load_sample_images().images
    except ImportError as exc:
        raise SystemExit(f"This example reads scikit-learn's sample images, which needs "
                         f"scikit-learn and pillow ({exc}). pip install scikit-learn pillow")
    per_image = [n_patches // len(images) + (i < n_patches % len(images))
                 for i in range(len(images))]
    patches = []
    for img, n in zip(images, per_image):
        grey = img.astype(np.float64).mean(axis=2) / 255.0  # (H, W)
        windows = np.lib.stride_tricks.sliding_window_view(grey, (size, size))
        rows = rng.integers(0, windows.shape[0], n)
        cols = rng.integers(0, windows.shape[1], n)
        patches.append(windows[rows, cols].reshape(n, size * size))
    X = np.concatenate(patches, axis=0)
    X = X - X.mean(axis=1, keepdims=True)
    return X / X.std()


def main(argv=None):
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    X = image_patches(args.n_patches, args.patch_size, rng)
    print(f"{X.shape[0]} patches of {args.patch_size}x{args.patch_size} from scikit-learn's "
          f"sample images; {args.n_atoms} atoms, alpha={args.alpha}, "
          f"minibatches of {args.batch_size}")
    start = time.perf_counter()
    model = DictionaryLearning(args.n_atoms, alpha=args.alpha, max_iter=args.epochs,
                               batch_size=args.batch_size, tol=0.0,
                               random_state=args.seed).fit(X)
    seconds = time.perf_counter() - start
    for epoch, value in enumerate(model.objective_, 1):
        print(f"epoch {epoch:2d}: mean objective 1/2||x - c D||^2 + alpha||c||_1 = {value:.4f}")
    codes = model.transform(X)
    nnz = float((codes != 0).sum(axis=1).mean())
    rel = float(np.linalg.norm(model.inverse_transform(codes) - X) / np.linalg.norm(X))
    print(f"{seconds:.1f} s; nonzero coefficients per patch: {nnz:.2f}; "
          f"relative reconstruction error: {rel:.3f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    order = np.argsort(-(codes != 0).sum(axis=0))
    atoms = model.components_[order]
    n_cols = int(np.ceil(np.sqrt(len(atoms))))
    n_rows = int(np.ceil(len(atoms) / n_cols))
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(n_cols * 0.8, n_rows * 0.8))
    for ax in np.ravel(axes):
        ax.axis("off")
    for ax, atom in zip(np.ravel(axes), atoms):
        lim = np.abs(atom).max()
        ax.imshow(atom.reshape(args.patch_size, args.patch_size), cmap="gray",
                  vmin=-lim, vmax=lim, interpolation="nearest")
    fig.suptitle(f"{len(atoms)} atoms learned from {X.shape[0]} image patches (most used first)")
    fig.savefig(out / "dictionary_atoms.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(np.arange(1, len(model.objective_) + 1), model.objective_, "o-")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean Lasso objective per patch")
    fig.tight_layout()
    fig.savefig(out / "dictionary_objective.png", dpi=100)
    plt.close(fig)
    print(f"figures written to {out}")
    print(f"RESULT dictionary_patches objective_first={model.objective_[0]:.5f} "
          f"objective_last={model.objective_[-1]:.5f} nnz_per_patch={nnz:.3f} "
          f"rel_error={rel:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
