"""Adam / SGD step time: lvm_core.nn.optim against torch.optim, side by side.

Parameters of the VAE benchmark's MLPs (encoder 784-400-(20+20), decoder
20-400-784; about 0.95 M float32 numbers), random float32 gradients.  Both
sides run in this process, alternating, on the same arrays, torch with the
same thread budget; each figure is the median over repeats of the time of
``n_steps`` optimizer steps.  Ratios are torch_time / our_time (bigger is
better for us).  Ends with ``RESULT`` lines.

    python benchmarks/optim_vs_torch.py [--threads 2] [--repeats 5] [--steps 50]
"""
from __future__ import annotations

import argparse
import os
import time

import numpy as np

from lvm_core.nn import adam, sgd

SHAPES = {"enc_W0": (784, 400), "enc_b0": (400,), "enc_W1": (400, 40), "enc_b1": (40,),
          "dec_W0": (20, 400), "dec_b0": (400,), "dec_W1": (400, 784), "dec_b1": (784,)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    params0 = {k: (0.05 * rng.standard_normal(s)).astype(np.float32) for k, s in SHAPES.items()}
    grads = [{k: rng.standard_normal(s).astype(np.float32) for k, s in SHAPES.items()}
             for _ in range(4)]

    def ours(kind, inplace):
        params = {k: v.copy() for k, v in params0.items()}
        state = None
        t0 = time.perf_counter()
        for i in range(args.steps):
            g = grads[i % len(grads)]
            if kind == "adam":
                params, state = adam(params, g, state, lr=1e-3, inplace=inplace)
            else:
                params, state = sgd(params, g, state, lr=1e-2, momentum=0.9, inplace=inplace)
        return time.perf_counter() - t0, params

    def theirs(kind):
        tp = [torch.tensor(v.copy()) for v in params0.values()]
        tg = [[torch.from_numpy(g[k]) for k in SHAPES] for g in grads]
        opt = torch.optim.Adam(tp, lr=1e-3) if kind == "adam" else \
            torch.optim.SGD(tp, lr=1e-2, momentum=0.9)
        t0 = time.perf_counter()
        for i in range(args.steps):
            for p, g in zip(tp, tg[i % len(tg)]):
                p.grad = g
            opt.step()
        return time.perf_counter() - t0, {k: p.numpy() for k, p in zip(SHAPES, tp)}

    print(f"threads={args.threads} repeats={args.repeats} steps={args.steps} "
          f"n_params={sum(int(np.prod(s)) for s in SHAPES.values())} float32, torch {torch.__version__}")
    print(f"{'optimizer':<8} {'ours copy s':>12} {'ours inplace s':>15} {'torch s':>9} "
          f"{'ratio copy':>11} {'ratio inplace':>14} {'max rel diff':>13}")
    results = {}
    for kind in ("adam", "sgd"):
        t_copy, t_inplace, t_torch = [], [], []
        for _ in range(args.repeats):  # alternate the three
            t, p_ours = ours(kind, False)
            t_copy.append(t)
            t, _ = ours(kind, True)
            t_inplace.append(t)
            t, p_torch = theirs(kind)
            t_torch.append(t)
        diff = max(float(np.max(np.abs(p_ours[k] - p_torch[k])) / np.max(np.abs(p_torch[k])))
                   for k in SHAPES)
        m_copy, m_in, m_t = (float(np.median(x)) for x in (t_copy, t_inplace, t_torch))
        results[kind] = (m_copy, m_in, m_t, diff)
        print(f"{kind:<8} {m_copy:12.4f} {m_in:15.4f} {m_t:9.4f} {m_t / m_copy:11.2f} "
              f"{m_t / m_in:14.2f} {diff:13.2e}")
    for kind, (m_copy, m_in, m_t, diff) in results.items():
        print(f"RESULT optim_{kind} ratio={m_t / m_in:.3f} ratio_copy={m_t / m_copy:.3f} "
              f"ours_inplace_s={m_in:.4f} ours_copy_s={m_copy:.4f} torch_s={m_t:.4f} "
              f"max_rel_diff={diff:.2e} threads={args.threads} steps={args.steps}")


if __name__ == "__main__":
    main()
