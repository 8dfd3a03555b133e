"""Slow feature analysis on the test signal of Wiskott & Sejnowski (2002).

    python examples/sfa_slow_signal.py               # 5,000 samples, figure in outputs/
    python examples/sfa_slow_signal.py --quick       # smoke test

Input (W&S sec. 4.1): x1(t) = sin(t) + cos^2(11 t), x2(t) = cos(11 t), t in
[0, 2 pi].  Both components vary quickly; the slow signal sin(t) = x1 - x2^2
is hidden in a quadratic combination.  Quadratic SFA (expansion to
x1, x2, x1^2, x1 x2, x2^2) finds it as its slowest output; linear SFA cannot.

Writes ``sfa_slow_signal.png`` (the inputs, the input trajectory, the three
slowest quadratic-SFA outputs with their eta-values) to ``--out`` and prints
``RESULT sfa_slow_signal corr=...`` (|correlation| of the slowest output with
sin t).  BLAS threads: ``--threads`` (default 1).
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

from lvm_core.models.sfa import SFA  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-samples", type=int, default=5000)
    p.add_argument("--out", default="outputs/sfa_slow_signal", help="directory for the figure")
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (0: library default)")
    p.add_argument("--quick", action="store_true", help="1,000 samples (smoke test)")
    args = p.parse_args(argv)
    if args.quick:
        args.n_samples = 1000
    return args


def ws_signal(n_samples):
    """t and X (N, 2) of Wiskott & Sejnowski's test: x1 = sin t + cos^2 11t, x2 = cos 11t."""
    t = np.linspace(0.0, 2.0 * np.pi, n_samples)
    return t, np.column_stack([np.sin(t) + np.cos(11 * t) ** 2, np.cos(11 * t)])


def main(argv=None):
    args = parse_args(argv)
    t, X = ws_signal(args.n_samples)
    quad = SFA(n_components=3, expansion="quadratic").fit(X)
    Y = quad.transform(X)
    lin = SFA(n_components=1).fit(X)
    corr = abs(np.corrcoef(Y[:, 0], np.sin(t))[0, 1])
    corr_lin = abs(np.corrcoef(lin.transform(X)[:, 0], np.sin(t))[0, 1])
    print(f"quadratic SFA on {args.n_samples} samples: eta-values of the 3 slowest outputs "
          + ", ".join(f"{e:.2f}" for e in quad.eta_))
    print(f"|corr(slowest output, sin t)|: quadratic {corr:.6f}, linear {corr_lin:.4f}")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(2, 3, figsize=(12, 6))
    axes[0, 0].plot(t, X[:, 0], lw=0.6)
    axes[0, 0].set_title("input x1 = sin t + cos^2 11t")
    axes[0, 1].plot(t, X[:, 1], lw=0.6, color="tab:orange")
    axes[0, 1].set_title("input x2 = cos 11t")
    axes[0, 2].plot(X[:, 0], X[:, 1], lw=0.3, color="gray")
    axes[0, 2].set_title("input trajectory (x1, x2)")
    for j in range(3):
        ax = axes[1, j]
        ax.plot(t, Y[:, j], lw=0.8, color="tab:green")
        ax.set_title(f"SFA output {j + 1} (eta = {quad.eta_[j]:.2f})")
        ax.set_xlabel("t")
    sign = np.sign(np.corrcoef(Y[:, 0], np.sin(t))[0, 1])
    axes[1, 0].plot(t, sign * np.sqrt(2) * np.sin(t), "k--", lw=0.8, label="sqrt(2) sin t")
    axes[1, 0].legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(out / "sfa_slow_signal.png", dpi=100)
    plt.close(fig)
    print(f"figure written to {out / 'sfa_slow_signal.png'}")
    print(f"RESULT sfa_slow_signal corr={corr:.6f} corr_linear={corr_lin:.4f} "
          f"eta1={quad.eta_[0]:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
