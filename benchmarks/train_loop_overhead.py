"""Overhead of lvm_core.train.fit_minibatch against a bare hand-written loop.

Both sides train the same VAE (784-400-20, ReLU, Bernoulli; Kingma & Welling
2014) with Adam (Kingma & Ba 2015) on the same float32 data, batch 128, in
this one process, alternating repeat by repeat.  The bare loop is the least a
training loop can do: draw a permutation, gather each batch, call the model.
fit_minibatch adds argument and data checks, the NaN/inf guard (device-side
finiteness flags, one host transfer per epoch), the epoch-start snapshot used
to restore the last good parameters, and the history.

Two paths (and the same two on a model whose step costs almost nothing, to
isolate the loop's own cost per step):

* ``fast``: ``optimizer="adam"``: ``loss_and_grads`` into reused gradient
  buffers (``grads_out``) and the in-place :func:`lvm_core.ops.adam_`;
* ``generic``: ``optimizer=lvm_core.nn.adam`` (a function, ``inplace=True``),
  with fresh gradient dicts where the model allocates them.

Threads: BLAS 2 threads (set before NumPy is imported).

A third part measures the batch gather on its own: :func:`lvm_core.ops.take_rows`
(which prefetches the rows ahead) against ``np.take``, once on the batches of
an epoch with two matrix products between batches (so that the data is not
left in the caches, as in training), once as whole ``fit_minibatch`` epochs
with the loop's gather swapped for ``np.take``.

Usage::

    python benchmarks/train_loop_overhead.py [--n 12800] [--repeats 5]

Ends with ``RESULT train_loop fast_ratio=R generic_ratio=R tiny_...=us`` where
ratio = bare seconds / fit_minibatch seconds (1.0 = no overhead; bigger is
better) and the tiny figures are microseconds per step, and ``RESULT take_rows
gather_ratio=R epoch_ratio=R ...`` (np.take time over ours).
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "2"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from lvm_core.models.vae import VAE  # noqa: E402
from lvm_core import ops  # noqa: E402
from lvm_core.nn import adam  # noqa: E402
from lvm_core.random import as_generator, permutation  # noqa: E402
from lvm_core.train import fit_minibatch  # noqa: E402


def bare_epoch(model, X, rng, opt_state, batch_size, fast):
    """One epoch of the simplest loop; returns (seconds, opt_state, mean batch loss)."""
    start = time.perf_counter()
    perm = permutation(rng, X.shape[0], like=X)
    losses = []
    grads_out = {k: np.empty_like(v) for k, v in model.params.items()}
    for s in range(0, X.shape[0], batch_size):
        X_batch = np.take(X, perm[s:s + batch_size], axis=0)
        if fast:
            try:
                loss, grads = model.loss_and_grads(X_batch, rng, grads_out=grads_out,
                                                   check_input=False)
            except TypeError:  # a model without the grads_out protocol
                loss, grads = model.loss_and_grads(X_batch, rng)
            opt_state = ops.adam_(model.params, grads, opt_state, 1e-3)
        else:
            loss, grads = model.loss_and_grads(X_batch, rng)
            _, opt_state = adam(model.params, grads, opt_state, lr=1e-3, inplace=True)
        losses.append(loss)
    mean = float(np.mean([float(v) for v in losses]))
    return time.perf_counter() - start, opt_state, mean


class TinyModel:
    """A model whose step costs almost nothing (loss = mean(x) w, dw = mean(x)):
    timing it isolates the per-step cost of the loop itself."""

    def __init__(self):
        self.params = {"w": np.zeros(1, dtype=np.float32)}

    def loss_and_grads(self, X_batch, rng):
        m = np.mean(X_batch[:, 0])
        return m * self.params["w"][0], {"w": np.reshape(m, (1,)).astype(np.float32)}


def tiny_overhead(repeats):
    """Microseconds per step of fit_minibatch and of the bare loop on TinyModel."""
    X = np.random.default_rng(0).random((128 * 2000, 4), dtype=np.float32)
    n_steps = X.shape[0] // 128
    out = {}
    for path in ("fast", "generic"):
        fast = path == "fast"
        optimizer = "adam" if fast else adam
        t_ours, t_bare = [], []
        bare_rng, bare_state = as_generator(0), None
        ours, bare = TinyModel(), TinyModel()
        for r in range(repeats):
            start = time.perf_counter()
            fit_minibatch(ours, X, epochs=1, batch_size=128, optimizer=optimizer,
                          random_state=r, progress=False)
            t_ours.append(time.perf_counter() - start)
            sec, bare_state, _ = bare_epoch(bare, X, bare_rng, bare_state, 128, fast)
            t_bare.append(sec)
        us_ours = 1e6 * float(np.median(t_ours)) / n_steps
        us_bare = 1e6 * float(np.median(t_bare)) / n_steps
        out[path] = (us_ours, us_bare)
        print(f"tiny {path:>8}: fit_minibatch {us_ours:.1f} us/step, bare {us_bare:.1f} us/step, "
              f"difference {us_ours - us_bare:.1f} us/step ({n_steps} steps, median of {repeats})")
    return out


def gather_comparison(repeats, n_rows=60000, batch=128, D=784, H=400):
    """take_rows against np.take: the batches of an epoch (two matmuls between batches)
    and whole fit_minibatch epochs with the loop's gather swapped.  Returns a dict."""
    import lvm_core.ops as lvm_ops

    rng = np.random.default_rng(0)
    X = rng.random((n_rows, D), dtype=np.float32)
    A, W = rng.random((batch, D), dtype=np.float32), rng.random((D, H), dtype=np.float32)
    C = np.empty((batch, H), np.float32)
    out = np.empty((batch, D), np.float32)
    ops.take_rows(X, np.arange(4), out=out[:4].copy())  # compile

    def one_epoch(take):
        perm, total = rng.permutation(n_rows), 0.0
        for s in range(0, n_rows - batch + 1, batch):
            start = time.perf_counter()
            take(perm[s:s + batch])
            total += time.perf_counter() - start
            np.matmul(A, W, out=C)
            np.matmul(A, W, out=C)
        return 1e6 * total / (n_rows // batch)

    def ours(idx):
        return ops.take_rows(X, idx, out=out)

    def numpy_take(idx):
        return np.take(X, idx, axis=0, out=out)

    us = {"ours": [], "numpy": []}
    for _ in range(repeats):
        us["ours"].append(one_epoch(ours))
        us["numpy"].append(one_epoch(numpy_take))
    real = lvm_ops.take_rows
    epoch = {"ours": [], "numpy": []}
    Xf = X[:12800]
    try:
        for r in range(repeats):
            for side in ("ours", "numpy"):
                lvm_ops.take_rows = real if side == "ours" else (
                    lambda X_, idx, out=None: np.take(X_, idx, axis=0, out=out))
                model = VAE(D, 20, (H,), random_state=0).initialize()
                hist = fit_minibatch(model, Xf, epochs=1, batch_size=batch, random_state=r,
                                     progress=False)
                epoch[side].append(hist.seconds_per_epoch[-1])
    finally:
        lvm_ops.take_rows = real
    res = {k: float(np.median(v)) for k, v in us.items()}
    res.update({"epoch_" + k: float(np.median(v)) for k, v in epoch.items()})
    print(f"gather of {batch} rows of {D} float32 from {n_rows}: take_rows {res['ours']:.1f} us, "
          f"np.take {res['numpy']:.1f} us (median of {repeats} epochs of batches); "
          f"fit_minibatch epoch on {Xf.shape[0]} rows: {res['epoch_ours']:.3f} s with take_rows, "
          f"{res['epoch_numpy']:.3f} s with np.take")
    return res


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=12800)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    D, H, L, B = 784, 400, 20, 128
    X = np.random.default_rng(0).random((args.n, D), dtype=np.float32)
    print(f"VAE {D}-{H}-{L}, Adam, batch {B}, {args.n} rows, {args.repeats} repeats; "
          f"BLAS threads {os.environ['OPENBLAS_NUM_THREADS']}")
    results = {}
    for path in ("fast", "generic"):
        fast = path == "fast"
        optimizer = "adam" if fast else adam  # a function: called with fresh grads
        ours = VAE(D, L, (H,), random_state=0).initialize()
        bare = VAE(D, L, (H,), random_state=0).initialize()
        # warm-up (numba compilation), not timed
        fit_minibatch(VAE(D, L, (H,), random_state=1).initialize(), X[:1280], epochs=1,
                      batch_size=B, optimizer=optimizer, random_state=1, progress=False)
        bare_rng, bare_state = as_generator(0), None
        t_ours, t_bare = [], []
        for r in range(args.repeats):
            start = time.perf_counter()
            history = fit_minibatch(ours, X, epochs=1, batch_size=B, optimizer=optimizer,
                                    random_state=r, progress=False)
            t_ours.append(time.perf_counter() - start)
            sec, bare_state, loss = bare_epoch(bare, X, bare_rng, bare_state, B, fast)
            t_bare.append(sec)
            print(f"{path:>8} repeat {r}: fit_minibatch {t_ours[-1]:.3f} s (epoch "
                  f"{history.seconds_per_epoch[-1]:.3f} s, loss {history.train_loss[-1]:.2f}) "
                  f"| bare {sec:.3f} s (loss {loss:.2f}) | ratio {sec / t_ours[-1]:.3f}",
                  flush=True)
        ratios = np.asarray(t_bare) / np.asarray(t_ours)
        results[path] = float(np.median(ratios))
        print(f"{path:>8}: median fit_minibatch {np.median(t_ours):.3f} s, bare "
              f"{np.median(t_bare):.3f} s, median ratio {results[path]:.3f}")
    tiny = tiny_overhead(args.repeats)
    print(f"RESULT train_loop fast_ratio={results['fast']:.3f} "
          f"generic_ratio={results['generic']:.3f} "
          f"tiny_fast_us_per_step_ours={tiny['fast'][0]:.1f} "
          f"tiny_fast_us_per_step_bare={tiny['fast'][1]:.1f} "
          f"tiny_generic_us_per_step_ours={tiny['generic'][0]:.1f} "
          f"tiny_generic_us_per_step_bare={tiny['generic'][1]:.1f} "
          f"n={args.n} repeats={args.repeats}")
    g = gather_comparison(args.repeats)
    print(f"RESULT take_rows gather_ratio={g['numpy'] / g['ours']:.3f} "
          f"epoch_ratio={g['epoch_numpy'] / g['epoch_ours']:.3f} us_ours={g['ours']:.1f} "
          f"us_numpy={g['numpy']:.1f} s_epoch_ours={g['epoch_ours']:.3f} "
          f"s_epoch_numpy={g['epoch_numpy']:.3f}")


if __name__ == "__main__":
    main()
