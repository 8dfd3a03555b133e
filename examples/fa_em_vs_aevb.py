"""Factor analysis by AEVB: the tutorial's two experiments (EM <-> AEVB bridge).

    python examples/fa_em_vs_aevb.py                    # full budget (2 x 4000 steps)
    python examples/fa_em_vs_aevb.py --quick            # a few seconds
    python examples/fa_em_vs_aevb.py --steps 1500 --out /tmp/fa

Reference: Yang Zhi-Han, "Training latent variable models with AEVB: a
tutorial" (course notes seed 002, sec. 5.2.4); Kingma & Welling 2014.

Data: a true factor-analysis model with D = 3, L = 2 (W, pre_sigma ~ N(0, 1)
entrywise, as the tutorial initialises its models) generates 1000 training
and 1000 test examples.  The fitted model is :class:`AEVBFactorAnalysis`
(q(z|x) = N(V x, U^T U), full covariance), trained with Adam (lr 1e-2) on
minibatches of 32, one reparameterised sample per example.

* Experiment 1 (joint AEVB): theta and phi updated together.  After every
  ``--eval-every`` steps we record on the test set the Monte Carlo ELBO
  estimate (one sample, as in the tutorial), the closed-form ELBO and the
  exact evidence log p(x); the true model's test evidence is the target.
  On the training set the learned evidence is compared with the maximum
  likelihood, which for D = 3, L = 2 is the zero-mean Gaussian one (this FA
  can represent any 3 x 3 covariance).
* Experiment 2 (approximate EM): ``--phase-steps`` steps updating only phi =
  (V, U) (approximate E-step: the evidence cannot move, the gap
  log p(x) - ELBO = KL(q || p(z|x)) shrinks towards 0), then the same number
  updating only theta = (W, pre_sigma) (approximate M-step: the ELBO rises,
  the evidence rises with it while the gap reopens), twice.  Each phase is
  one run of the library's training loop on a parameter group (a fresh Adam
  state per phase).

  What is guaranteed, and what the run shows: in a q-phase theta is fixed,
  so log p(x) is constant to the last bit.  In a p-phase the EM argument
  gives log p(x; theta_end) >= ELBO(theta_end) >= ELBO(theta_start) =
  log p(x; theta_start) - gap_start whenever the ELBO rose; so the evidence
  rises over the phase (up to the small gap left by the q-phase), as the
  tutorial says, but not necessarily at every step: the steps ascend the ELBO
  with a stale q, not log p(x), and the evidence can peak inside the phase
  and dip a little afterwards (seed 0: by 0.04 nats in the first p-phase).

Figures (PNG, in ``--out``): ``fa_learning_curve.png`` (experiment 1),
``fa_learning_curve_em.png`` (experiment 2, E-phases shaded) and
``fa_data.png`` (test data against samples of the fitted model).  The script
prints the final numbers and ``RESULT`` lines.
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
sys.path.insert(0, str(Path(__file__).resolve().parent))  # examples/_setup.py

from _setup import cupy_or_exit  # noqa: E402
from lvm_core.backend import asarray, get_namespace, item, to_numpy  # noqa: E402
from lvm_core.models.aevb_fa import AEVBFactorAnalysis  # noqa: E402
from lvm_core.train import fit_minibatch  # noqa: E402
from lvm_core.random import as_generator  # noqa: E402

D, L = 3, 2


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=None,
                   help="experiment 1 steps (default 4000; 1500 with --quick)")
    p.add_argument("--phase-steps", type=int, default=None,
                   help="experiment 2 steps per phase (default 1000 as in the tutorial; 300 with --quick)")
    p.add_argument("--eval-every", type=int, default=None,
                   help="evaluate on the test set every this many steps (default 1; 10 with --quick)")
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--n-train", type=int, default=1000)
    p.add_argument("--n-test", type=int, default=1000)
    p.add_argument("--threads", type=int, default=1,
                   help="BLAS threads (default 1; 0 leaves the library default)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", choices=["numpy", "cupy"], default="numpy")
    p.add_argument("--out", default="outputs/fa_em_vs_aevb", help="directory for the figures")
    p.add_argument("--quick", action="store_true", help="small budget for smoke tests")
    args = p.parse_args(argv)
    if args.steps is None:
        args.steps = 1500 if args.quick else 4000
    if args.phase_steps is None:
        args.phase_steps = 300 if args.quick else 1000
    if args.eval_every is None:
        args.eval_every = 10 if args.quick else 1
    return args


# ----------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------
def make_data(seed=0, n_train=1000, n_test=1000, like=None):
    """A true FA model (D = 3, L = 2) and train / test draws from it."""
    rng = as_generator(seed)
    true_model = AEVBFactorAnalysis(D, L, random_state=rng)
    X_train = to_numpy(true_model.sample(n_train, rng=rng))
    X_test = to_numpy(true_model.sample(n_test, rng=rng))
    if like is not None:
        true_model.to(like)
        X_train, X_test = asarray(X_train, like=like), asarray(X_test, like=like)
    return true_model, X_train, X_test


# ----------------------------------------------------------------------------
# training loops
# ----------------------------------------------------------------------------
def evaluate(model, X_test, rng):
    """Test-set means: MC ELBO (1 sample), closed-form ELBO, exact evidence."""
    xp = get_namespace(X_test)
    return {
        "elbo_mc": item(xp.mean(model.elbo(X_test, rng=rng, n_samples=1))),
        "elbo": item(xp.mean(model.exact_elbo(X_test))),
        "evidence": item(xp.mean(model.log_evidence(X_test))),
    }


class Curves:
    """A per-step callback of :func:`lvm_core.train.fit_minibatch`: records the
    test metrics every ``eval_every`` steps and stops training after ``steps`` steps."""

    def __init__(self, model, X_test, rng, steps, eval_every, curves, step0):
        self.model, self.X_test, self.rng = model, X_test, rng
        self.steps, self.eval_every, self.curves, self.step0 = steps, eval_every, curves, step0

    def on_step(self, info):
        s = info.global_step
        if s % self.eval_every == 0 or s == self.steps:
            self.curves["step"].append(self.step0 + s)
            for k, v in evaluate(self.model, self.X_test, self.rng).items():
                self.curves[k].append(v)
        return s >= self.steps


def train(model, X_train, X_test, steps, keys, rng, lr=1e-2, batch_size=32, eval_every=1,
          curves=None, step0=0):
    """``steps`` Adam steps on the parameters named in ``keys`` (the others stay fixed).

    The library's training loop with one parameter group (``param_groups=keys``)
    and a step callback for the curves.  Appends test-set metrics every
    ``eval_every`` steps to ``curves`` (a dict of lists, created when None) and
    returns it.
    """
    if curves is None:
        curves = {"step": [], "elbo_mc": [], "elbo": [], "evidence": []}
    steps_per_epoch = -(-X_train.shape[0] // batch_size)
    fit_minibatch(model, X_train, epochs=-(-steps // steps_per_epoch), batch_size=batch_size,
                  optimizer="adam", lr=lr, param_groups=list(keys), random_state=rng,
                  progress=False,
                  callbacks=[Curves(model, X_test, rng, steps, eval_every, curves, step0)])
    return curves


def run_experiment_1(model, X_train, X_test, steps, lr=1e-2, batch_size=32, rng=0,
                     eval_every=1):
    """Joint AEVB: theta and phi updated together for ``steps`` Adam steps."""
    rng = as_generator(rng)
    curves = {"step": [0], **{k: [v] for k, v in evaluate(model, X_test, rng).items()}}
    curves = train(model, X_train, X_test, steps, ("W", "pre_sigma", "V", "U"), rng, lr=lr,
                   batch_size=batch_size, eval_every=eval_every, curves=curves)
    return {k: np.asarray(v) for k, v in curves.items()}


def run_experiment_2(model, X_train, X_test, phase_steps, n_rounds=2, lr=1e-2,
                     batch_size=32, rng=0, eval_every=1):
    """Approximate EM: alternate ``phase_steps`` q-only and p-only Adam steps, ``n_rounds`` times.

    Each phase is one training run on a parameter group: phi = (V, U) for the
    q phases (E-like), theta = (W, pre_sigma) for the p phases (M-like).
    Returns the curves and ``phases``: a list of (kind, first_step, last_step).
    """
    rng = as_generator(rng)
    curves = {"step": [0], **{k: [v] for k, v in evaluate(model, X_test, rng).items()}}
    groups = {"q": model.inference_params, "p": model.generative_params}
    phases, step = [], 0
    for _ in range(n_rounds):
        for kind in ("q", "p"):
            curves = train(model, X_train, X_test, phase_steps, groups[kind], rng, lr=lr,
                           batch_size=batch_size, eval_every=eval_every, curves=curves,
                           step0=step)
            phases.append((kind, step, step + phase_steps))
            step += phase_steps
    out = {k: np.asarray(v) for k, v in curves.items()}
    out["phases"] = phases
    return out


def phase_summary(curves):
    """Per phase: evidence and gap (evidence - closed-form ELBO) at its start and end."""
    step, evidence, gap = curves["step"], curves["evidence"], curves["evidence"] - curves["elbo"]
    rows = []
    for kind, first, last in curves["phases"]:
        i0 = int(np.searchsorted(step, first))
        i1 = int(np.searchsorted(step, last))
        rows.append({"kind": kind, "first": first, "last": last,
                     "evidence_start": float(evidence[i0]), "evidence_end": float(evidence[i1]),
                     "gap_start": float(gap[i0]), "gap_end": float(gap[i1]),
                     "evidence_range": float(np.ptp(evidence[i0:i1 + 1]))})
    return rows


# ----------------------------------------------------------------------------
# figures
# ----------------------------------------------------------------------------
def plot_experiment_1(curves, true_evidence, path):
    """ELBO (MC and closed form) and exact evidence vs step; true evidence as a line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, start in zip(axes, (0, len(curves["step"]) // 4)):
        s = curves["step"][start:]
        ax.plot(s, curves["elbo_mc"][start:], color="tab:red", alpha=0.35, lw=0.8,
                label="test ELBO (1-sample estimate)")
        ax.plot(s, curves["elbo"][start:], color="tab:red", label="test ELBO (closed form)")
        ax.plot(s, curves["evidence"][start:], color="tab:green", label="test log p(x), learned model")
        ax.axhline(true_evidence, color="k", ls=":", label="test log p(x), true model")
        ax.set_xlabel("gradient step")
        ax.set_ylabel("nats per example")
    axes[0].set_title("Experiment 1: joint AEVB")
    axes[1].set_title("zoom (last 3/4 of training)")
    lo = min(np.min(curves["elbo"][len(curves["step"]) // 4:]), true_evidence) - 0.05
    axes[1].set_ylim(lo, true_evidence + 0.1)
    axes[0].legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_experiment_2(curves, true_evidence, path):
    """Evidence, ELBO and gap vs step; q-only (E-like) phases shaded."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, ax_gap) = plt.subplots(2, 1, figsize=(9, 6), sharex=True,
                                     gridspec_kw={"height_ratios": [2, 1]})
    step = curves["step"]
    for a in (ax, ax_gap):
        for kind, first, last in curves["phases"]:
            if kind == "q":
                a.axvspan(first, last, color="0.85", lw=0)
    ax.plot(step, curves["elbo_mc"], color="tab:red", alpha=0.35, lw=0.8, label="test ELBO (1-sample)")
    ax.plot(step, curves["elbo"], color="tab:red", label="test ELBO (closed form)")
    ax.plot(step, curves["evidence"], color="tab:green", label="test log p(x), learned model")
    ax.axhline(true_evidence, color="k", ls=":", label="test log p(x), true model")
    lo = np.percentile(curves["elbo"], 5)
    ax.set_ylim(lo - 0.2, max(np.max(curves["evidence"]), true_evidence) + 0.1)
    ax.set_ylabel("nats per example")
    ax.set_title("Experiment 2: q-only (grey, approximate E) / p-only (white, approximate M)")
    ax.legend(loc="lower right", fontsize=8)
    ax_gap.semilogy(step, np.maximum(curves["evidence"] - curves["elbo"], 1e-12), color="tab:purple")
    ax_gap.set_ylabel("gap = KL(q || p(z|x))")
    ax_gap.set_xlabel("gradient step")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_data(X_test, X_model, path):
    """Pairwise projections of test data (blue) and model samples (orange)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    for ax, (i, j) in zip(axes, ((0, 1), (0, 2), (1, 2))):
        ax.scatter(X_test[:, i], X_test[:, j], s=4, alpha=0.5, label="test data")
        ax.scatter(X_model[:, i], X_model[:, j], s=4, alpha=0.5, label="fitted model samples")
        ax.set_xlabel(f"x{i + 1}")
        ax.set_ylabel(f"x{j + 1}")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ----------------------------------------------------------------------------
def main(argv=None):
    args = parse_args(argv)
    like = None
    cupy = cupy_or_exit(args.backend)  # one line and exit 2 without CuPy or a GPU
    if cupy is not None:
        like = cupy.zeros(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    true_model, X_train, X_test = make_data(args.seed, args.n_train, args.n_test, like=like)
    xp = get_namespace(X_test)
    true_evidence = item(xp.mean(true_model.log_evidence(X_test)))
    print(f"true model: test log p(x) = {true_evidence:.4f} nats per example")

    # Experiment 1 ----------------------------------------------------------
    model = AEVBFactorAnalysis(D, L, random_state=args.seed + 1)
    if like is not None:
        model.to(like)
    t0 = time.perf_counter()
    c1 = run_experiment_1(model, X_train, X_test, args.steps, lr=args.lr,
                          batch_size=args.batch_size, rng=args.seed + 2, eval_every=args.eval_every)
    t1 = time.perf_counter() - t0
    gap1 = c1["evidence"][-1] - c1["elbo"][-1]
    print(f"experiment 1 ({args.steps} steps, {t1:.1f} s): test ELBO closed form {c1['elbo'][-1]:.4f}, "
          f"1-sample estimate {c1['elbo_mc'][-1]:.4f}, learned log p(x) {c1['evidence'][-1]:.4f}, "
          f"true log p(x) {true_evidence:.4f}; gap {gap1:.2e}")
    print(f"RESULT exp1_test_elbo={c1['elbo'][-1]:.4f} exp1_test_evidence={c1['evidence'][-1]:.4f} "
          f"true_test_evidence={true_evidence:.4f} exp1_elbo_minus_true={c1['elbo'][-1] - true_evidence:.4f}")
    # D = 3, L = 2 FA can represent any covariance: its training-set supremum is the
    # zero-mean Gaussian maximum likelihood -1/2 [D log 2 pi + log det S0 + D], S0 = X^T X / N
    X_np = to_numpy(X_train)
    S0 = X_np.T @ X_np / X_np.shape[0]
    ml_train = -0.5 * (D * np.log(2 * np.pi) + np.linalg.slogdet(S0)[1] + D)
    train_evidence = item(xp.mean(model.log_evidence(X_train)))
    print(f"experiment 1, training set: learned log p(x) {train_evidence:.4f}, "
          f"maximum likelihood {ml_train:.4f} (difference {train_evidence - ml_train:.2e})")
    print(f"RESULT exp1_train_evidence={train_evidence:.4f} train_max_likelihood={ml_train:.4f}")
    plot_experiment_1(c1, true_evidence, out / "fa_learning_curve.png")
    plot_data(to_numpy(X_test), to_numpy(model.sample(args.n_test, rng=args.seed + 3)), out / "fa_data.png")

    # Experiment 2 ----------------------------------------------------------
    model2 = AEVBFactorAnalysis(D, L, random_state=args.seed + 1)
    if like is not None:
        model2.to(like)
    t0 = time.perf_counter()
    c2 = run_experiment_2(model2, X_train, X_test, args.phase_steps, lr=args.lr,
                          batch_size=args.batch_size, rng=args.seed + 2, eval_every=args.eval_every)
    t2 = time.perf_counter() - t0
    print(f"experiment 2 ({4 * args.phase_steps} steps, {t2:.1f} s): per phase (test set)")
    for row in phase_summary(c2):
        print(f"  {row['kind']}-phase steps {row['first']:5d}-{row['last']:5d}: "
              f"log p(x) {row['evidence_start']:.4f} -> {row['evidence_end']:.4f} "
              f"(range {row['evidence_range']:.2e}); gap {row['gap_start']:.3e} -> {row['gap_end']:.3e}")
        print(f"RESULT exp2_{row['kind']}_{row['first']}_{row['last']} "
              f"evidence_start={row['evidence_start']:.4f} evidence_end={row['evidence_end']:.4f} "
              f"gap_start={row['gap_start']:.4e} gap_end={row['gap_end']:.4e}")
    plot_experiment_2(c2, true_evidence, out / "fa_learning_curve_em.png")
    print(f"figures written to {out}/: fa_learning_curve.png, fa_learning_curve_em.png, fa_data.png")
    return {"exp1": c1, "exp2": c2, "true_evidence": true_evidence}


if __name__ == "__main__":
    main()
