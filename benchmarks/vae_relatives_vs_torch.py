"""VAE relatives on Fashion-MNIST: lvm_core vs a PyTorch twin, model by model.

One driver for four benchmarks, each in its own module next to this file:

- ``relatives_cvae.py``: CVAE (Sohn et al. 2015), the labels as y;
- ``relatives_gmvae.py``: GMVAE with K = 10 components, exact objective
  (summing over y), clustering accuracy on the test set for both sides;
- ``relatives_vrnn.py``: VRNN (Chung et al. 2015), 28 rows of 28 pixels as a
  sequence of length 28;
- ``relatives_sbn.py``: a VAE with 200 Bernoulli latents (sigmoid belief net
  prior and posterior) trained with a score-function estimator, dynamically
  binarised images.

Each module defines ``run(epochs, quick, seed) -> dict`` that trains our model
and a PyTorch twin starting from the same weights, on the same batches with the
same noise, alternating epoch by epoch in this one process, and returns at
least ``ratio`` (twin seconds per epoch over ours, medians), ``bound_ours``,
``bound_torch`` and ``bound_diff`` (ours - twin, test bound in nats, higher is
better for a bound) plus model-specific figures; the module prints its own
table.  Its module docstring states the configuration.

Threads: a 2-core budget for both sides (BLAS and ``torch.set_num_threads``).

Usage::

    python benchmarks/vae_relatives_vs_torch.py                   # all four
    python benchmarks/vae_relatives_vs_torch.py --models cvae,vrnn
    python benchmarks/vae_relatives_vs_torch.py --quick           # smoke run on a small subset

Ends with one line per model::

    RESULT cvae ratio=R bound_ours=X bound_torch=X bound_diff=X ...
"""
from __future__ import annotations

import os
import sys

THREADS = 2
for _i, _arg in enumerate(sys.argv[:-1]):
    if _arg == "--threads":
        THREADS = int(sys.argv[_i + 1])
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = str(THREADS)

import argparse  # noqa: E402
import importlib  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

MODELS = ("cvae", "gmvae", "vrnn", "sbn")


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--models", default=",".join(MODELS),
                        help="comma-separated subset of " + ",".join(MODELS))
    parser.add_argument("--epochs", type=int, default=None,
                        help="epochs per model (default: each module's own)")
    parser.add_argument("--quick", action="store_true", help="smoke run on a small subset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=THREADS,
                        help="thread budget of both sides (read before NumPy is imported)")
    args = parser.parse_args(argv)
    names = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"--models: unknown {unknown}; choose from {list(MODELS)}")
    import torch
    torch.set_num_threads(args.threads)
    results = {}
    for name in names:
        module = importlib.import_module(f"relatives_{name}")
        print(f"== {name} ==", flush=True)
        results[name] = module.run(epochs=args.epochs, quick=args.quick, seed=args.seed)
    for name, res in results.items():
        keys = ["ratio", "bound_ours", "bound_torch", "bound_diff"]
        keys += [k for k in res if k not in keys]
        print(f"RESULT {name} " + " ".join(f"{k}={_fmt(res[k])}" for k in keys if k in res),
              flush=True)


if __name__ == "__main__":
    main()
