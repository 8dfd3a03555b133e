"""Fused ops against the same math written plainly: NumPy (lvm_core.ops.reference) and PyTorch.

One process, the same float32 arrays for every side, alternating; each figure
is the median over repeats of the mean time of one call.  The shapes are the
VAE benchmark's (``vae_vs_torch.py``): config a's output layer (128 x 784),
config b's (640 x 784: 5 samples of 128 rows) and its widest hidden layer
(640 x 512), and a minibatch of 128 rows of 60,000 images.

* ``bernoulli``: log-likelihood per row and its gradient w.r.t. the logits
  (ours: ``ops.bernoulli_loglik``; torch: ``binary_cross_entropy_with_logits``
  and ``backward``);
* ``continuous_bernoulli``: the same for the continuous Bernoulli (torch: the
  VAE twin's formula, ``vae_peers.torch_cb_log_normalizer`` added to the
  Bernoulli term; ``torch.distributions.ContinuousBernoulli`` is 35x slower);
* ``elu``: y = ELU(a + b) in place (torch: ``add_`` and ``F.elu_``);
* ``take_rows``: a minibatch gather (NumPy: ``np.take``; torch: indexing with
  an index tensor, as its training loops do), with two matrix products between calls so
  that the data is not left in the caches, as in training.

Ratios are peer time / ours (bigger is better for us).  Threads: 2 for BLAS and
torch (our kernels are serial).  Ends with one ``RESULT ops_<name>`` line per op.

    python benchmarks/ops_vs_peers.py [--repeats 7]
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "2"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

import vae_peers  # noqa: E402  (this folder)
from lvm_core import ops  # noqa: E402
from lvm_core.ops import reference as ref  # noqa: E402


def timed(fn, calls, between=None):
    """Mean seconds of one call of ``fn`` over ``calls`` calls (``between`` run untimed
    before each)."""
    fn()
    total = 0.0
    for _ in range(calls):
        if between is not None:
            between()
        start = time.perf_counter()
        fn()
        total += time.perf_counter() - start
    return total / calls


def cases(torch, rng):
    """(name, shape text, {side: callable}, calls, between) per op."""
    out = []
    x_a = (rng.random((128, 784)) < 0.5).astype(np.float32)
    x_b = rng.random((128, 784), dtype=np.float32)
    for name, M, x, fused, reference, kind in (
            ("bernoulli", 128, x_a, ops.bernoulli_loglik, ref.bernoulli_loglik, "bce"),
            ("continuous_bernoulli", 640, x_b, ops.continuous_bernoulli_loglik,
             ref.continuous_bernoulli_loglik, "cb")):
        logits = (3 * rng.standard_normal((M, 784))).astype(np.float32)
        scale = np.full(M, -1.0 / M, np.float32)
        x_rows = np.tile(x, (M // x.shape[0], 1))  # the reference and torch take every row
        ws = ops.Workspace()
        sides = {"ours": lambda f=fused, l=logits, x=x, s=scale, w=ws: f(l, x, s, ws=w),
                 "numpy": lambda f=reference, l=logits, x=x_rows, s=scale: f(l, x, s[:, None])}
        if torch is not None:
            lt = torch.tensor(logits, requires_grad=True)
            xt, st = torch.tensor(x_rows), torch.tensor(scale)

            def run_torch(lt=lt, xt=xt, st=st, kind=kind):
                lt.grad = None
                ll = -torch.nn.functional.binary_cross_entropy_with_logits(
                    lt, xt, reduction="none").sum(1)
                if kind == "cb":  # the VAE twin's log C(l) (vae_peers), not torch.distributions
                    ll = ll + vae_peers.torch_cb_log_normalizer(torch, lt).sum(1)
                ll.backward(st)
                return ll, lt.grad
            sides["torch"] = run_torch
        out.append((name, f"{M} x 784, value and gradient", sides, 300, None))
    a0 = (2 * rng.standard_normal((640, 512))).astype(np.float32)
    b = rng.standard_normal(512).astype(np.float32)
    a = a0.copy()
    ws = ops.Workspace()
    sides = {"ours": lambda: ops.bias_act(a, b, "elu", out=a, ws=ws),
             "numpy": lambda: ref.bias_act(a0, b, "elu")}
    if torch is not None:
        at, bt = torch.tensor(a0), torch.tensor(b)
        sides["torch"] = lambda: torch.nn.functional.elu_(at.add_(bt))
    out.append(("elu", "640 x 512, y = ELU(a + b)", sides, 300, None))
    X = rng.random((60000, 784), dtype=np.float32)
    A, W = rng.random((128, 784), dtype=np.float32), rng.random((784, 400), dtype=np.float32)
    C = np.empty((128, 400), np.float32)
    buf = np.empty((128, 784), np.float32)
    idx = {"i": rng.permutation(60000)[:128]}

    def between():
        idx["i"] = rng.integers(0, 60000, 128)
        np.matmul(A, W, out=C)
        np.matmul(A, W, out=C)
    sides = {"ours": lambda: ops.take_rows(X, idx["i"], out=buf),
             "numpy": lambda: np.take(X, idx["i"], axis=0, out=buf)}
    betweens = {}
    if torch is not None:
        Xt, At, Wt = torch.from_numpy(X), torch.from_numpy(A), torch.from_numpy(W)
        Ct = torch.from_numpy(C)

        def between_torch():  # torch's own matmuls: two thread pools in turn would stall
            idx["i"] = rng.integers(0, 60000, 128)
            torch.mm(At, Wt, out=Ct)
            torch.mm(At, Wt, out=Ct)
        sides["torch"] = lambda: Xt[torch.from_numpy(idx["i"])]  # as a torch training loop does
        betweens["torch"] = between_torch
    out.append(("take_rows", "128 rows of 60000 x 784", sides, 400, (between, betweens)))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    try:
        import torch

        torch.set_num_threads(2)
    except ImportError:  # the NumPy comparison still runs
        torch = None
    rng = np.random.default_rng(0)
    for name, what, sides, calls, between in cases(torch, rng):
        times = {side: [] for side in sides}
        between, own = between if isinstance(between, tuple) else (between, {})
        for _ in range(args.repeats):
            for side, fn in sides.items():
                times[side].append(timed(fn, calls, own.get(side, between)))
        us = {side: 1e6 * float(np.median(t)) for side, t in times.items()}
        ratios = {side: us[side] / us["ours"] for side in us if side != "ours"}
        print(f"{name} ({what}): " + ", ".join(f"{side} {v:.1f} us" for side, v in us.items())
              + " | " + ", ".join(f"{side}/ours {r:.2f}" for side, r in ratios.items()))
        print(f"RESULT ops_{name} " + " ".join(f"ratio_{side}={r:.3f}" for side, r in
                                               ratios.items())
              + " " + " ".join(f"us_{side}={v:.1f}" for side, v in us.items()))


if __name__ == "__main__":
    main()
