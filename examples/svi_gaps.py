"""Inference gaps of a VAE on Fashion-MNIST: per-datapoint SVI against the amortised encoder.

    python examples/svi_gaps.py                     # full data if installed, else embedded
    python examples/svi_gaps.py --n-steps 1000 --n-importance 5000
    python examples/svi_gaps.py --quick             # smoke test

Cremer, Li & Duvenaud 2018 split the gap between log p(x) and the ELBO of
the amortised encoder q_phi(z|x) into two parts:

    log p(x) - ELBO[q_phi] = (log p(x) - ELBO[q*])   approximation gap
                           + (ELBO[q*] - ELBO[q_phi])  amortisation gap,

q* the best factorised Gaussian for each image alone.  The script trains a
VAE (Kingma & Welling 2014; 784-400-(L mu, L log_var), L-400-784, Bernoulli
likelihood on grey levels, Adam lr 1e-3, batches of 128), then, for
``--n-test`` test images (default 1,000) with the decoder fixed, optimises
each image's own (mu_i, log_var_i) with Adam from the encoder's output
(:func:`lvm_core.models.svi.fit_local`, ``--n-steps`` steps, step size
decaying geometrically from ``--lr`` to ``--lr-final``, ``--n-samples`` eps
per image and step).  Both ELBOs use the same ``--n-eval`` eps per image;
log p(x) is the VAE's importance-weighted estimate with k = ``--n-importance``
samples from q_phi (default k = 1,000; an IWAE-k bound, so the approximation
gap printed is an upper bound of the true one up to Monte Carlo error, and
it shrinks as k grows).  The rows of the table are means over the images.
Measured with the defaults on the full data (5 VAE epochs, 1,000 test
images, 500 SVI steps, k = 1,000; 44 s on a shared 2-core machine): log p(x)
-243.57, ELBO[q*] -244.63, ELBO[q_phi] -246.70; approximation gap 1.06 (std
err 0.02), amortisation gap 2.07 (0.05) nats per image; the SVI ELBO is at
least the amortised one for every image.

Figures (``--out``): ``gaps.png``, histograms of the two gaps per image;
``svi_trace.png``, the SVI objective (-mean ELBO) over the steps.

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
from lvm_core.models.svi import inference_gaps  # noqa: E402
from lvm_core.models.vae import VAE  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--epochs", type=int, default=None,
                   help="VAE training epochs (default: 5 on full data, 20 embedded, 1 --quick)")
    p.add_argument("--latent", type=int, default=20)
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--n-test", type=int, default=1000, help="test images (default 1000)")
    p.add_argument("--n-steps", type=int, default=500, help="Adam steps of SVI (default 500)")
    p.add_argument("--lr", type=float, default=0.05, help="initial SVI step size")
    p.add_argument("--lr-final", type=float, default=5e-4, help="final SVI step size")
    p.add_argument("--n-samples", type=int, default=1, help="eps per image and SVI step")
    p.add_argument("--n-eval", type=int, default=100, help="eps per image for the ELBOs")
    p.add_argument("--n-importance", type=int, default=1000, help="k of the log p(x) estimate")
    p.add_argument("--data-dir", default=None, help="directory with Fashion-MNIST IDX files")
    p.add_argument("--out", default="outputs/svi_gaps", help="directory for figures")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: 2,000 training images, 1 epoch, 100 test images, "
                        "100 steps, k = 100")
    return p.parse_args(argv)


def load_data(data_dir=None):
    X_train, _, src_train = load_mnist_like("fashion-mnist", "train", path=data_dir)
    X_test, _, _ = load_mnist_like("fashion-mnist", "test", path=data_dir)
    if src_train.startswith("embedded-fallback:"):
        X_train, X_test = X_test[:9000], X_test[9000:]
        what = ("the EMBEDDED DEFAULT (no full Fashion-MNIST found): 9,000 of the 10,000 "
                "test images for training, the other 1,000 held out")
    else:
        what = (f"FULL Fashion-MNIST: {X_train.shape[0]:,} training images ({src_train}), "
                f"{X_test.shape[0]:,} test images")
    return X_train, X_test, what


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_gaps(gaps, path):
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title in ((axes[0], "approximation_gap", "approximation gap log p(x) - ELBO[q*]"),
                           (axes[1], "amortisation_gap", "amortisation gap ELBO[q*] - ELBO[q_phi]")):
        v = gaps[key]
        ax.hist(v, bins=40, color="tab:blue" if key.startswith("approx") else "tab:orange")
        ax.axvline(v.mean(), color="k", lw=1)
        ax.set_title(f"{title}\nmean {v.mean():.2f} nats", fontsize=9)
        ax.set_xlabel("nats per image")
    axes[0].set_ylabel("test images")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_trace(trace, elbo_amortised, path):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(np.arange(1, len(trace) + 1), trace, lw=1, label="SVI step estimate (-mean ELBO)")
    ax.axhline(-elbo_amortised, color="tab:orange", ls="--", label="amortised q (-mean ELBO)")
    ax.set_xlabel("Adam step")
    ax.set_ylabel("nats per image")
    ax.set_title("Per-datapoint SVI from the encoder's q")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    X_train, X_test, what = load_data(args.data_dir)
    full = what.startswith("FULL")
    print(f"Data: {what}.")
    if args.quick:
        X_train = X_train[:2000]
        args.n_test, args.n_steps, args.n_importance, args.n_eval = 100, 100, 100, 20
    epochs = args.epochs or (1 if args.quick else (5 if full else 20))
    X_eval = X_test[:args.n_test]
    vae = VAE(X_train.shape[1], n_latent=args.latent, hidden=(args.hidden,), random_state=args.seed)
    t0 = time.perf_counter()
    vae.fit(X_train, epochs=epochs, random_state=args.seed, progress=sys.stderr.isatty())
    t_train = time.perf_counter() - t0
    print(f"VAE: {epochs} epochs on {X_train.shape[0]} images in {t_train:.1f} s; final train "
          f"-ELBO {vae.history_.train_loss[-1]:.2f}")
    t0 = time.perf_counter()
    gaps = inference_gaps(vae, X_eval, n_steps=args.n_steps, lr=args.lr, lr_final=args.lr_final,
                          n_samples=args.n_samples, n_eval=args.n_eval,
                          n_importance=args.n_importance, random_state=args.seed + 1)
    t_svi = time.perf_counter() - t0
    n = X_eval.shape[0]

    def row(name, v):
        print(f"  {name:<44} {v.mean():9.2f}  (std err {v.std(ddof=1) / np.sqrt(n):.2f})")

    print(f"Inference gaps on {n} test images (nats per image; SVI: {args.n_steps} Adam steps, "
          f"{args.n_samples} eps per step; ELBOs with {args.n_eval} common eps; log p(x) by "
          f"IWAE with k={args.n_importance}):")
    row("log p(x) (IWAE estimate)", gaps["log_px"])
    row("ELBO, SVI q* (per-datapoint)", gaps["elbo_svi"])
    row("ELBO, amortised q_phi (encoder)", gaps["elbo_amortised"])
    row("approximation gap  log p(x) - ELBO[q*]", gaps["approximation_gap"])
    row("amortisation gap   ELBO[q*] - ELBO[q_phi]", gaps["amortisation_gap"])
    row("inference gap      log p(x) - ELBO[q_phi]", gaps["inference_gap"])
    better = float(np.mean(gaps["elbo_svi"] >= gaps["elbo_amortised"]))
    print(f"  images whose SVI ELBO >= amortised ELBO: {better:.1%}; SVI + evaluation "
          f"{t_svi:.1f} s")

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / "gaps.png", out / "svi_trace.png"]
    plot_gaps(gaps, paths[0])
    plot_trace(gaps["result"].loss_trace, float(gaps["elbo_amortised"].mean()), paths[1])
    for path in paths:
        print(f"wrote {path}")
    total = time.perf_counter() - t_start
    print(f"RESULT svi_gaps full_data={int(full)} epochs={epochs} n_test={n} "
          f"log_px={gaps['log_px'].mean():.3f} elbo_svi={gaps['elbo_svi'].mean():.3f} "
          f"elbo_amortised={gaps['elbo_amortised'].mean():.3f} "
          f"approximation_gap={gaps['approximation_gap'].mean():.3f} "
          f"amortisation_gap={gaps['amortisation_gap'].mean():.3f} "
          f"n_importance={args.n_importance} n_steps={args.n_steps} "
          f"svi_better_fraction={better:.4f} total_s={total:.1f}")
    return gaps


if __name__ == "__main__":
    main()
