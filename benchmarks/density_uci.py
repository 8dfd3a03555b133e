"""Density estimation against published log-likelihoods: binary UCI sets and red wine.

    python benchmarks/density_uci.py              # everything (about 30 min on 2 cores; longer under load)
    python benchmarks/density_uci.py --quick      # smoke run (seconds; numbers meaningless)
    python benchmarks/density_uci.py --part uci --models nade --datasets nips

Binary UCI sets (dna, mushrooms, nips; Larochelle & Murray 2011 splits):
each model is fitted on ``train`` for every point of its small
hyper-parameter grid, with early stopping on ``valid``; the grid point with
the lowest validation NLL is kept (the test split is never looked at before
that) and its average test negative log-likelihood (nats) is printed as

    RESULT uci model=<name> dataset=<name> test_nll=... published=...

next to the figure of Germain et al. 2015 (MADE), Table 2.  The models live
in the registry ``MODELS`` (FVSBN, NADE, the mixture of Bernoullis ``mob``);
MADE with one mask and the MADE mask-sampling ensemble (``made``,
``made_ensemble``) come from ``benchmarks/uci_made.py``, one validation grid
for both.

Red wine (Uria, Murray & Larochelle 2013, Table 1): 10 folds; every
attribute is normalised by the mean and standard deviation of the training
folds; the figure is the average test log-likelihood per example, averaged
over the folds.  First the full-covariance Gaussian baseline (maximum
likelihood on the training folds; published -13.18), then RNADE-MoG
(published -9.36): its hyper-parameters are chosen on fold 1, holding out the
last of the nine training parts as validation data for early stopping and
model choice.  The order of the chain rule matters on these data (several
attributes take few distinct values): every fold trains one model per
candidate order (natural, reversed and six fixed random permutations,
:func:`red_wine_orderings`) on its first eight training parts with early
stopping on the ninth, keeps the order with the best validation
log-likelihood and its number of epochs, and refits on all nine parts for
that many epochs.  The test parts play no part in any choice.  Printed as

    RESULT red_wine gaussian_ll=... rnade_ll=...

Binary sets, measured 2026-11-30 with ``nice -n 19 env OPENBLAS_NUM_THREADS=1
OMP_NUM_THREADS=1 python benchmarks/density_uci.py --part uci`` (seed 0;
2213 s on the shared machine under load, of which NADE 1190 s and MADE 982 s;
579 s for FVSBN and NADE on a quieter machine before).  Test NLL in nats,
the choice made on the validation split::

    model          dataset    test NLL  published  chosen on valid
    fvsbn          dna          83.63     83.64    Adam lr 3e-3, L2 1e-3
    fvsbn          mushrooms    10.15     10.27    Adam lr 1e-2, L2 0
    fvsbn          nips        276.06    276.88    Adam lr 1e-2, L2 0.15
    nade           dna          83.15     84.81    H 500, lr 1e-3, L2 0
    nade           mushrooms    10.65      9.81    H 500, lr 1e-3, L2 0
    nade           nips        273.41    273.08    H 500, lr 1e-3, L2 1e-2
    made           dna          84.90     83.63    500, direct, L2 1e-2
    made           mushrooms     9.92      9.68    500, direct
    made           nips        278.78    280.25    500, direct, AdamW 1.0
    made_ensemble  dna          79.06     79.66    500, fresh mask per minibatch, direct, lr 3e-3 (*)
    made_ensemble  mushrooms     9.72      9.69    500, 4 random masks
    made_ensemble  nips        277.03    277.28    1000, 32 random masks, direct, L2 1e-3 / 1e-2
    mob            dna          98.05     98.19    K 8
    mob            mushrooms    14.88     14.46    K 128
    mob            nips        285.91    290.02    K 8

Every line is within 1.5 nats of the paper or better.  (*) The MADE rows
were measured again after per-step mask resampling entered the grid, with
``nice -n 19 env OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python
benchmarks/uci_made.py --threads 1`` (the same ``run`` this script calls; 9
min): the mask-sampling ensemble on dna went from 83.31 (a fixed set of 32
masks) to 79.06 (300 evaluation masks); nips 277.03 (277.12 before, from an earlier head; same
configuration); the other MADE rows are unchanged.  Details in
``benchmarks/uci_made.py``.

Red wine, measured 2026-11-30 with
``nice -n 19 env OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1 python
benchmarks/density_uci.py --part red_wine`` (1751 s on the shared machine
under a load of 4-6; about 100 fits of a few seconds each): full-covariance
Gaussian -13.18 (published -13.18, reproduced); RNADE-MoG -9.56 +- 0.11 over
the folds (published -9.36; chosen on fold 1: H 100, K 10, lr 1e-3, L2
1e-3; order chosen per fold: random1 in seven folds, reversed in three;
folds -9.62 -9.47 -9.74 -9.66 -9.11 -9.09 -9.52 -9.67 -9.42 -10.33).  With
the natural order only, the same protocol gave -9.72 +- 0.09: the order is
the difference (validation log-likelihood averaged over the ten folds'
held-out parts: natural -10.07, reversed -9.81, random1 -9.78).

Data: ``../shared/data/`` relative to the repository root (``--data-dir``,
``$LVM_CORE_BENCH_DATA``).
Training uses Adam (Kingma & Ba 2015) with an L2 penalty on the weight
matrices, batches of 100, early stopping (patience in the grids below).
BLAS runs on ``--threads`` threads (default 1), set before NumPy loads.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path


def _limit_blas_threads(argv=None):
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads", type=int, default=1)
    known, _ = pre.parse_known_args(argv)
    names = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
    if known.threads > 0 and not any(os.environ.get(n) for n in names):
        for n in names:
            os.environ[n] = str(known.threads)


_limit_blas_threads()

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lvm_core.models.autoregressive import FVSBN, NADE, RNADE  # noqa: E402
from lvm_core.models.bernoulli_mixture import BernoulliMixture  # noqa: E402

DATASETS = ("dna", "mushrooms", "nips")

#: Germain et al. 2015, Table 2: average test NLL in nats
PUBLISHED = {
    "mob": {"dna": 98.19, "mushrooms": 14.46, "nips": 290.02},
    "fvsbn": {"dna": 83.64, "mushrooms": 10.27, "nips": 276.88},
    "nade": {"dna": 84.81, "mushrooms": 9.81, "nips": 273.08},
    "made": {"dna": 83.63, "mushrooms": 9.68, "nips": 280.25},
    "made_ensemble": {"dna": 79.66, "mushrooms": 9.69, "nips": 277.28},
}
#: Uria, Murray & Larochelle 2013, Table 1: average test log-likelihood on red wine
PUBLISHED_RED_WINE = {"gaussian": -13.18, "rnade_mog": -9.36}


def _default_data_dir():
    """``../shared/data`` from the repository root; ``$LVM_CORE_BENCH_DATA`` wins, and a
    git worktree kept one level deeper (``<parent>/<wt>/<branch>``) finds it too."""
    if os.environ.get("LVM_CORE_BENCH_DATA"):
        return Path(os.environ["LVM_CORE_BENCH_DATA"])
    root = Path(__file__).resolve().parents[1]
    candidates = [root.parent / "shared" / "data", root.parent.parent / "shared" / "data"]
    for path in candidates:
        if path.is_dir():
            return path
    return candidates[0]


def _marginal_logits(X):
    """log(m / (1 - m)) of the smoothed column means: the biases of independent Bernoullis."""
    m = (X.sum(axis=0) + 1.0) / (X.shape[0] + 2.0)
    return np.log(m / (1.0 - m)).astype(np.float32)


# ----------------------------------------------------------------------------
# the binary models: one function each, returning (model, description of the choice)
# ----------------------------------------------------------------------------
def _select(candidates, build, X_train, X_valid, fit_kwargs, seed):
    """Fit ``build(**c)`` for every candidate c; keep the lowest validation NLL."""
    best = None
    for c in candidates:
        c = dict(c)
        train_kwargs = {k: c.pop(k) for k in ("lr", "weight_decay", "patience", "epochs")
                        if k in c}
        model = build(**c)
        if "b" in model.params and model.params["b"].ndim == 1:
            model.params["b"] = _marginal_logits(X_train)
        start = time.perf_counter()
        model.fit(X_train, batch_size=100, validation_data=X_valid, random_state=seed,
                  **{**fit_kwargs, **train_kwargs})
        val = model.validation_loss(X_valid)
        h = model.history_
        print(f"    {c | train_kwargs}: valid NLL {val:.3f} (best epoch {h.best_epoch} of "
              f"{h.epochs_completed}, {time.perf_counter() - start:.1f} s)", flush=True)
        if best is None or val < best[2]:
            best = (model, {**c, **train_kwargs}, val)
    return best


def fit_fvsbn(X_train, X_valid, quick, seed):
    D = X_train.shape[1]
    grid = [{"lr": lr, "weight_decay": wd} for lr in (1e-2, 3e-3)
            for wd in (0.0, 1e-3, 1e-2, 0.1, 0.15, 0.3)]
    fit_kwargs = {"epochs": 400, "patience": 20}
    if quick:
        grid, fit_kwargs = grid[:2], {"epochs": 3, "patience": 2}
    return _select(grid, lambda: FVSBN(D, random_state=seed), X_train, X_valid, fit_kwargs,
                   seed)


def fit_nade(X_train, X_valid, quick, seed):
    D = X_train.shape[1]
    grid = [{"n_hidden": 500, "lr": 1e-3, "weight_decay": wd} for wd in (0.0, 1e-2)]
    fit_kwargs = {"epochs": 80, "patience": 8}
    if quick:
        grid, fit_kwargs = [{"n_hidden": 20, "lr": 1e-3}], {"epochs": 2, "patience": 2}
    return _select(grid, lambda n_hidden: NADE(D, n_hidden, random_state=seed), X_train,
                   X_valid, fit_kwargs, seed)


class _NegativeScore:
    """An EM estimator seen through the gradient models' ``validation_loss``."""

    def __init__(self, model):
        self.model = model

    def validation_loss(self, X):
        return -self.model.score(X)


def fit_mob(X_train, X_valid, quick, seed):
    """Mixture of Bernoullis by EM; the number of components chosen on the validation split."""
    best = None
    for K in ((2, 4) if quick else (8, 16, 32, 64, 128)):
        start = time.perf_counter()
        model = BernoulliMixture(n_components=K, max_iter=10 if quick else 200, tol=1e-6,
                                 random_state=seed).fit(X_train)
        val = -model.score(X_valid)
        print(f"    {{'n_components': {K}}}: valid NLL {val:.3f} ({model.n_iter_} EM "
              f"iterations, {time.perf_counter() - start:.1f} s)", flush=True)
        if best is None or val < best[2]:
            best = (_NegativeScore(model), {"n_components": K}, val)
    return best


#: model name -> fit function (X_train, X_valid, quick, seed) -> (model, choice, valid NLL).
MODELS = {"fvsbn": fit_fvsbn, "nade": fit_nade, "mob": fit_mob}
#: MADE (one mask, and the mask-sampling ensemble) from benchmarks/uci_made.py: one
#: validation grid gives both lines.
MADE_MODELS = ("made", "made_ensemble")


def run_uci(args):
    for dataset in args.datasets:
        data = np.load(Path(args.data_dir) / f"{dataset}_binary.npz")
        X_train, X_valid, X_test = (data[k].astype(np.float32) for k in ("train", "valid", "test"))
        if args.quick:
            X_train, X_valid, X_test = X_train[:200], X_valid[:100], X_test[:200]
        print(f"{dataset}: D = {X_train.shape[1]}, train/valid/test = {len(X_train)}/"
              f"{len(X_valid)}/{len(X_test)}", flush=True)
        if any(name in MADE_MODELS for name in args.models):
            import uci_made  # benchmarks/uci_made.py, beside this script

            start = time.perf_counter()
            res = uci_made.run(dataset, X_train, X_valid, X_test, quick=args.quick)
            print(f"  made: chosen on valid {res['hyper_params']}; "
                  f"{time.perf_counter() - start:.0f} s", flush=True)
            for name, key in (("made", "test_nll_one_mask"),
                              ("made_ensemble", "test_nll_ensemble")):
                if name in args.models:
                    print(f"RESULT uci model={name} dataset={dataset} test_nll={res[key]:.2f} "
                          f"published={PUBLISHED[name][dataset]:.2f}", flush=True)
        for name in (n for n in args.models if n in MODELS):
            start = time.perf_counter()
            model, choice, val = MODELS[name](X_train, X_valid, args.quick, args.seed)
            test_nll = model.validation_loss(X_test)
            print(f"  {name}: chosen on valid {choice} (valid NLL {val:.3f}); test NLL "
                  f"{test_nll:.3f}; {time.perf_counter() - start:.0f} s", flush=True)
            print(f"RESULT uci model={name} dataset={dataset} test_nll={test_nll:.2f} "
                  f"published={PUBLISHED[name][dataset]:.2f}", flush=True)


# ----------------------------------------------------------------------------
# red wine
# ----------------------------------------------------------------------------
def _red_wine_folds(path):
    import h5py

    with h5py.File(path, "r") as f:
        folds = []
        for F in range(1, 11):
            parts = [np.asarray(f[f"folds/{F}/training/{i}/data"], dtype=np.float64)
                     for i in range(1, 10)]
            test = np.asarray(f[f"folds/{F}/tests/1/data"], dtype=np.float64)
            folds.append((parts, test))
    return folds


def gaussian_test_ll(X_train, X_test):
    """Mean log N(x; m, S) over the test rows, m and S the training ML estimates."""
    m = X_train.mean(axis=0)
    S = np.cov(X_train, rowvar=False, bias=True)
    L = np.linalg.cholesky(S)
    z = np.linalg.solve(L, (X_test - m).T)
    D = X_train.shape[1]
    log_det = 2.0 * np.sum(np.log(np.diag(L)))
    return float(np.mean(-0.5 * (D * np.log(2 * np.pi) + log_det + np.sum(z * z, axis=0))))


def _fit_rnade(X_train, X_valid, config, quick, seed, epochs=None, ordering=None):
    """RNADE-MoG fitted by Adam; early stopping on ``X_valid`` unless ``epochs`` is fixed."""
    model = RNADE(X_train.shape[1], n_hidden=config["n_hidden"],
                  n_components=config["n_components"], ordering=ordering, dtype="float64",
                  random_state=seed)
    if epochs is None:
        model.fit(X_train, epochs=3 if quick else config["epochs"], batch_size=100,
                  lr=config["lr"], weight_decay=config["weight_decay"],
                  validation_data=X_valid, patience=config["patience"], random_state=seed)
    else:
        model.fit(X_train, epochs=epochs, batch_size=100, lr=config["lr"],
                  weight_decay=config["weight_decay"], random_state=seed)
    return model


RED_WINE_GRID = [{"n_hidden": H, "n_components": K, "lr": 1e-3, "weight_decay": wd,
                  "epochs": 400, "patience": 30}
                 for H in (50, 100) for K in (10, 20) for wd in (1e-4, 1e-3, 1e-2)]


def red_wine_orderings(D, n_random=6):
    """The candidate orders of the chain rule: natural, reversed, and ``n_random`` random
    permutations (seeds 1..n_random); {name: ordering or None}."""
    out = {"natural": None, "reversed": np.arange(D)[::-1].copy()}
    for s in range(1, n_random + 1):
        out[f"random{s}"] = np.random.default_rng(s).permutation(D)
    return out


def run_red_wine(args):
    """Gaussian baseline and RNADE-MoG over the 10 folds (see the module docstring).

    RNADE: the configuration with the best validation log-likelihood on fold 1
    (training parts 1-8, validation part 9) is used for every fold; in each
    fold the number of epochs is found by early stopping on part 9, then the
    model is refitted on all nine training parts for that many epochs.
    """
    folds = _red_wine_folds(Path(args.data_dir) / "red_wine.hdf5")
    grid = RED_WINE_GRID
    orderings = red_wine_orderings(folds[0][1].shape[1])
    if args.quick:
        folds, grid = folds[:2], grid[:1]
        orderings = dict(list(orderings.items())[:2])
    gauss, rnade = [], []
    chosen = None
    for F, (parts, test) in enumerate(folds, start=1):
        train_all = np.concatenate(parts)
        mean, std = train_all.mean(axis=0), train_all.std(axis=0)
        norm = [(p - mean) / std for p in parts]
        X_test = (test - mean) / std
        gauss.append(gaussian_test_ll(np.concatenate(norm), X_test))
        X_train, X_valid = np.concatenate(norm[:8]), norm[8]
        if chosen is None:  # hyper-parameters from fold 1's validation part only
            scores = []
            for config in grid:
                model = _fit_rnade(X_train, X_valid, config, args.quick, args.seed)
                scores.append(model.score(X_valid))
                print(f"  fold 1 {config}: valid ll {scores[-1]:.3f}", flush=True)
            chosen = grid[int(np.argmax(scores))]
            print(f"  chosen on fold 1's validation part: {chosen}", flush=True)
        # the order of the chain rule, chosen on this fold's validation part
        best = None
        for name, ordering in orderings.items():
            model = _fit_rnade(X_train, X_valid, chosen, args.quick, args.seed,
                               ordering=ordering)
            val = model.score(X_valid)
            if best is None or val > best[1]:
                best = (name, val, model.history_.best_epoch)
        name, val, best_epoch = best
        model = _fit_rnade(np.concatenate(norm), None, chosen, args.quick, args.seed,
                           epochs=best_epoch, ordering=orderings[name])
        rnade.append(model.score(X_test))
        print(f"  fold {F}: gaussian {gauss[-1]:.3f}, rnade {rnade[-1]:.3f} (order {name}, "
              f"valid ll {val:.3f}, {best_epoch} epochs)", flush=True)
    print(f"red wine: gaussian {np.mean(gauss):.3f} (published "
          f"{PUBLISHED_RED_WINE['gaussian']}), RNADE-MoG {np.mean(rnade):.3f} +- "
          f"{np.std(rnade) / np.sqrt(len(rnade)):.3f} (published "
          f"{PUBLISHED_RED_WINE['rnade_mog']})", flush=True)
    print(f"RESULT red_wine gaussian_ll={np.mean(gauss):.2f} rnade_ll={np.mean(rnade):.2f}",
          flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run on tiny budgets")
    parser.add_argument("--part", choices=("all", "uci", "red_wine"), default="all")
    parser.add_argument("--models", nargs="+", choices=sorted([*MODELS, *MADE_MODELS]),
                        default=[*MODELS, *MADE_MODELS])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--data-dir", default=str(_default_data_dir()))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS threads (0: leave as is)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    if args.quick:
        print("QUICK RUN: tiny budgets, the numbers are not comparable with the papers")
    if args.part in ("all", "uci"):
        run_uci(args)
    if args.part in ("all", "red_wine"):
        run_red_wine(args)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
