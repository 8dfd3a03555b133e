"""A binary RBM on binarised Fashion-MNIST: filters, samples and an AIS log-likelihood.

    python examples/rbm_fashion.py                 # full data if installed, else embedded
    python examples/rbm_fashion.py --epochs 20 --hidden 500 --out /tmp/rbm
    python examples/rbm_fashion.py --quick         # smoke test (seconds)

Model (Smolensky 1986; Hinton 2002): E(v, h) = -b.v - c.h - v^T W h with 784
binary visible units (pixel / 255 > 0.5) and ``--hidden`` binary hidden
units, trained by persistent contrastive divergence (Tieleman 2008) with
learning rate 0.02, momentum 0.5 and weight decay 1e-4 (Hinton 2010), batches
of 100.  Measured on the full data with the defaults (seed 0, one thread, a
shared 2-core machine): 15 s of training, 24 s for AIS and reverse AIS; log Z
1307.83 +- 0.11 (AIS) and 1307.94 +- 0.14 (reverse AIS); test log-likelihood
-209.5 nats per image (-209.6 with reverse AIS); pseudo-log-likelihood -122.8.
With learning rate 0.05 and the same momentum the chains and the weights
oscillated and the test log-likelihood was -353.9.

Evaluation: the test log-likelihood log p(v) = -F(v) - log Z needs the
partition function Z, a sum over 2^784 visible (or 2^H hidden) states.  It is
estimated by annealed importance sampling (Neal 2001; Salakhutdinov & Murray
2008: base-rate initial model, ``--n-betas`` inverse temperatures, 100
parallel runs), which tends to under-estimate log Z (so to over-estimate the
log-likelihood), and by reverse AIS (Burda, Grosse & Salakhutdinov 2015) from
model samples, which tends to over-estimate it; the two bracket the truth
when both have converged.  The pseudo-log-likelihood (Besag 1975) of the
test images is printed as well.

Data: the full Fashion-MNIST (60,000 / 10,000 images) when
:func:`data_tools.load_mnist_like` finds it, else the 10,000 embedded test
images (9,000 for training, the last 1,000 held out); the script says which.

Figures written to ``--out``: ``filters.png`` (the weights of 100 hidden
units as 28 x 28 images) and ``samples.png`` (100 model samples after
``--gibbs-steps`` block Gibbs sweeps, shown as the probabilities p(v = 1 | h)
of the last sweep).

BLAS threads: ``--threads`` (default 1) caps OpenBLAS/MKL/OpenMP threads unless
``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` is set.
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

from data_tools.mnist import load_mnist_like  # noqa: E402
from lvm_core.models.energy import RBM  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny budget (smoke test)")
    p.add_argument("--epochs", type=int, default=None, help="default 10 (1 with --quick)")
    p.add_argument("--hidden", type=int, default=None, help="default 256 (64 with --quick)")
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--n-betas", type=int, default=None,
                   help="AIS inverse temperatures (default 10,000; 200 with --quick)")
    p.add_argument("--n-runs", type=int, default=100)
    p.add_argument("--gibbs-steps", type=int, default=None,
                   help="sweeps for the samples figure and reverse AIS (default 1,000)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="outputs/rbm_fashion", help="directory for figures")
    return p.parse_args(argv)


def load(quick):
    Xtr, _, src_train = load_mnist_like("fashion-mnist", "train")
    if src_train.startswith("embedded-fallback:"):
        # Only the embedded 10,000 test images exist here: train on 9,000, hold out 1,000.
        Xtr, Xte, full = Xtr[:9000], Xtr[9000:], False
    else:
        Xte, _, _ = load_mnist_like("fashion-mnist", "test")
        full = True
    if quick:
        Xtr, Xte = Xtr[:2000], Xte[:500]
    return (Xtr > 0.5).astype(np.float32), (Xte > 0.5).astype(np.float32), full


def image_grid(images, rows, cols):
    """(rows * cols, 784) -> one (rows * 29 - 1, cols * 29 - 1) image with 1-pixel gaps."""
    out = np.full((rows * 29 - 1, cols * 29 - 1), np.nan)
    for k, img in enumerate(images[: rows * cols]):
        r, c = divmod(k, cols)
        out[r * 29:r * 29 + 28, c * 29:c * 29 + 28] = img.reshape(28, 28)
    return out


def save_figures(model, samples, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    W = np.asarray(model.components_, dtype=np.float64)  # (784, H)
    filters = W[:, :100].T
    filters = filters / (np.abs(filters).max(axis=1, keepdims=True) + 1e-12)
    side = int(np.ceil(np.sqrt(min(100, W.shape[1]))))
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(image_grid(filters, side, side), cmap="RdBu_r", vmin=-1, vmax=1)
    ax.set_title("RBM filters W[:, j] (each scaled to [-1, 1])")
    ax.axis("off")
    fig.savefig(out / "filters.png", dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(8, 8))
    ax.imshow(image_grid(samples, 10, 10), cmap="gray", vmin=0, vmax=1)
    ax.set_title("samples: p(v = 1 | h) after block Gibbs sampling")
    ax.axis("off")
    fig.savefig(out / "samples.png", dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    epochs = args.epochs or (1 if args.quick else 10)
    hidden = args.hidden or (64 if args.quick else 256)
    n_betas = args.n_betas or (200 if args.quick else 10000)
    gibbs_steps = args.gibbs_steps or (50 if args.quick else 1000)
    Xtr, Xte, full = load(args.quick)
    print(("FULL DATA" if full else "EMBEDDED DEFAULT") + f": {Xtr.shape[0]} training and "
          f"{Xte.shape[0]} test images, binarised at 0.5")

    t0 = time.perf_counter()
    model = RBM(n_components=hidden, learning_rate=args.lr, batch_size=100, n_iter=epochs,
                method="pcd", k=1, momentum=0.5, weight_decay=1e-4,
                random_state=args.seed).fit(Xtr)
    t_fit = time.perf_counter() - t0
    print(f"trained {hidden} hidden units for {epochs} epochs in {t_fit:.1f} s "
          f"(free-energy gap per epoch: "
          f"{', '.join(f'{v:.2f}' for v in model.history_.train_loss)})")

    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    fwd = model.log_partition("ais", n_runs=args.n_runs, n_betas=n_betas, base_rate_data=Xtr,
                              random_state=rng)
    chains = model.sample(args.n_runs, rng=rng, n_steps=gibbs_steps)
    rev = model.log_partition("reverse_ais", n_runs=args.n_runs, n_betas=n_betas,
                              base_rate_data=Xtr, random_state=rng, v_init=chains)
    t_ais = time.perf_counter() - t0
    neg_F = -float(np.mean(model.free_energy(Xte)))
    ll_fwd, ll_rev = neg_F - fwd.log_z, neg_F - rev.log_z
    pll = float(np.mean(model.pseudo_log_likelihood(Xte[:500])))
    print(f"log Z: AIS {fwd.log_z:.2f} +- {fwd.log_z_std:.2f}, reverse AIS {rev.log_z:.2f} +- "
          f"{rev.log_z_std:.2f} ({args.n_runs} runs x {n_betas} betas, {t_ais:.1f} s)")
    print(f"test log-likelihood (AIS): {ll_fwd:.2f} nats per image")
    print(f"test log-likelihood (reverse AIS): {ll_rev:.2f} nats per image")
    print(f"test pseudo-log-likelihood (first 500 images): {pll:.2f} nats per image")

    p_h = model.transform(chains[:100])
    means = model.visible_mean((rng.random(p_h.shape) < p_h).astype(p_h.dtype))
    save_figures(model, means, Path(args.out))
    print(f"figures written to {args.out}: filters.png, samples.png")
    print(f"RESULT rbm_fashion full_data={int(full)} epochs={epochs} hidden={hidden} "
          f"log_z={fwd.log_z:.2f} log_z_std={fwd.log_z_std:.3f} ais_ll={ll_fwd:.2f} "
          f"reverse_ais_ll={ll_rev:.2f} pll={pll:.2f}")


if __name__ == "__main__":
    main()
