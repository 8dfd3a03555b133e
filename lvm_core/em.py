"""The EM driver shared by the exact-EM models (GMM, FA, PPCA, HMM).

EM maximises the evidence through the variational identity (Neal & Hinton
1998; Bishop, PRML sec. 9.4): for any distribution q over the latents,

    log p(X | theta) = L(q, theta) + KL(q || p(Z | X, theta)),
    L(q, theta) = E_q[log p(X, Z | theta)] + H(q)  <=  log p(X | theta).

* E-step: q <- p(Z | X, theta_old) makes the KL zero, so the bound is tight:
  L = log p(X | theta_old).  Models return it together with *additive*
  sufficient statistics of q, so that chunks of data (or workers) can be
  reduced by summation (:class:`SufficientStatistics`).
* M-step: theta <- argmax_theta E_q[log p(X, Z | theta)] (+ log prior for MAP),
  computed from the statistics alone.

Each iteration therefore cannot decrease log p(X | theta) (or the MAP
objective); :class:`ConvergenceMonitor` records the trajectory, stops on a
relative tolerance and flags a decrease beyond round-off.

Because the statistics are additive, the E-step can run where the data are:

* in memory (one block);
* out-of-core (:class:`ChunkedRows`): blocks of rows read one at a time from an
  ``h5py.Dataset`` or any array-like with row slicing, memory O(block);
* on a dask.distributed cluster (:class:`DaskRows`): blocks held by the
  workers, parameters broadcast once per iteration, statistics tree-summed;
* on a stream (online EM; O. Cappe and E. Moulines, "On-line
  expectation-maximization algorithm for latent data models", JRSS B 71(3),
  2009; P. Liang and D. Klein, "Online EM for unsupervised models", NAACL
  2009): running statistics s_t = (1 - rho_t) s_{t-1} + rho_t S(chunk_t)
  (:func:`stepwise_update`), each followed by the usual M-step.

All give the same statistics up to round-off (summation order).
"""
from __future__ import annotations

import math
import sys
import warnings

__all__ = ["SufficientStatistics", "ConvergenceMonitor", "run_em", "EMDecreaseWarning",
           "ChunkedRows", "DaskRows", "stepwise_update", "step_size_schedule", "add_results",
           "row_bounds", "sequence_bounds", "default_client"]


class EMDecreaseWarning(RuntimeWarning):
    """The EM objective decreased by more than round-off between iterations."""


class SufficientStatistics(dict):
    """A dict of additive statistics: ``stats_a + stats_b`` adds key by key.

    E-steps return one of these (plus the log-likelihood); summing the
    statistics of disjoint chunks of data gives the statistics of their union,
    so the M-step sees the same numbers however the data were split.
    """

    def __add__(self, other):
        if not isinstance(other, dict):
            return NotImplemented
        if set(self) != set(other):
            raise ValueError(
                f"cannot add sufficient statistics with different keys: {sorted(self)} vs {sorted(other)}."
            )
        return SufficientStatistics({k: self[k] + other[k] for k in self})

    def __radd__(self, other):
        if other == 0:  # so that sum([...]) works
            return SufficientStatistics(self)
        return self.__add__(other)


class ConvergenceMonitor:
    """Tracks the EM objective and decides when to stop.

    Stops when ``n_iter`` iterations are done or when the change of the
    objective between two iterations is below ``tol * max(1, |objective|)``
    (relative tolerance; ``tol=0`` runs all ``n_iter`` iterations).

    Attributes
    ----------
    history : list of float
        The objective after each E-step, in order.
    iter : int
        Number of reported iterations.
    converged : bool
        True once the relative change fell below ``tol``.
    n_decreases : int
        Iterations whose objective fell by more than ``decrease_atol +
        decrease_rtol * |objective|`` (should stay 0 for exact EM).
    """

    def __init__(self, tol=1e-4, n_iter=100, verbose=False, decrease_rtol=1e-10,
                 decrease_atol=1e-9, stream=None):
        if tol < 0:
            raise ValueError(f"tol must be >= 0; got {tol}.")
        if n_iter < 1:
            raise ValueError(f"n_iter must be >= 1; got {n_iter}.")
        self.tol = float(tol)
        self.n_iter = int(n_iter)
        self.verbose = bool(verbose)
        self.decrease_rtol = decrease_rtol
        self.decrease_atol = decrease_atol
        self.stream = stream
        self.history = []
        self.iter = 0
        self.converged = False
        self.n_decreases = 0

    def reset(self):
        self.history = []
        self.iter = 0
        self.converged = False
        self.n_decreases = 0

    def report(self, objective):
        """Record one iteration's objective; return True when EM should stop."""
        objective = float(objective)
        if math.isnan(objective):
            raise FloatingPointError(
                f"EM objective became NaN at iteration {self.iter + 1}; the data may "
                "contain values impossible under the model, or a parameter degenerated. "
                "Try a larger covariance floor (reg_covar / min_covar) or check the input."
            )
        previous = self.history[-1] if self.history else None
        self.history.append(objective)
        self.iter += 1
        if previous is not None:
            delta = objective - previous
            if delta < -(self.decrease_atol + self.decrease_rtol * abs(objective)):
                self.n_decreases += 1
                warnings.warn(
                    f"EM objective decreased at iteration {self.iter}: {previous:.10g} -> "
                    f"{objective:.10g} (change {delta:.3g}).",
                    EMDecreaseWarning,
                    stacklevel=2,
                )
            if abs(delta) <= self.tol * max(1.0, abs(objective)):
                self.converged = True
        if self.verbose:
            change = "" if previous is None else f"  change {objective - previous:+.6g}"
            print(f"EM iter {self.iter:4d}  objective {objective:.10g}{change}",
                  file=self.stream or sys.stderr)
        return self.converged or self.iter >= self.n_iter


def run_em(e_step, m_step, params, monitor):
    """Alternate ``e_step`` and ``m_step`` until ``monitor`` says stop.

    ``e_step(params) -> (stats, objective)`` where ``objective`` is the
    log-likelihood (plus log prior for MAP) *at* ``params``;
    ``m_step(stats, params) -> params``.  The final parameters come from one
    more M-step after the last E-step, like scikit-learn and hmmlearn; the
    objective of those final parameters is therefore not in the history.

    Returns ``(params, monitor)``.
    """
    while True:
        stats, objective = e_step(params)
        stop = monitor.report(objective)
        params = m_step(stats, params)
        if stop:
            return params, monitor


# ---------------------------------------------------------------------------
# Where the E-step runs: in memory, over chunks of rows streamed from an
# array-like (out-of-core), or on the workers of a dask.distributed cluster.
# Every source sums the per-chunk results of one module-level function
# ``e_step_chunk(chunk, extra, params, **options) -> (stats, objective)``.
# ---------------------------------------------------------------------------


def add_results(a, b):
    """(stats_a + stats_b, objective_a + objective_b): the reduction of E-step results."""
    return a[0] + b[0], a[1] + b[1]


def is_dask_collection(X):
    """True for dask collections (checked by duck typing, without importing dask)."""
    return hasattr(X, "__dask_graph__") and callable(getattr(X, "__dask_graph__", None))


def is_in_memory_array(X):
    """True for arrays the backends handle whole (NumPy, CuPy, array-api-strict...)."""
    if isinstance(X, (list, tuple)):
        return True
    if is_dask_collection(X):
        return False
    module = type(X).__module__.split(".")[0]
    return module in ("numpy", "cupy", "array_api_strict", "torch", "jax")


def check_chunk_size(chunk_size, name="chunk_size"):
    """None or a positive int."""
    if chunk_size is None:
        return None
    if isinstance(chunk_size, bool) or not hasattr(chunk_size, "__index__"):
        raise TypeError(f"{name} must be a positive int (rows per chunk) or None; got "
                        f"{chunk_size!r}.")
    if int(chunk_size) < 1:
        raise ValueError(f"{name} must be >= 1 (rows per chunk); got {chunk_size}.")
    return int(chunk_size)


def row_bounds(n_rows, chunk_size):
    """[(start, stop), ...] covering 0..n_rows in blocks of ``chunk_size`` rows."""
    step = n_rows if chunk_size is None else chunk_size
    return [(a, min(a + step, n_rows)) for a in range(0, n_rows, max(step, 1))]


def sequence_bounds(lengths, chunk_size):
    """Row blocks made of whole sequences: consecutive sequences are grouped
    until a block holds at least ``chunk_size`` rows (one block: None).
    Returns ([(start, stop), ...], [lengths of each block, ...])."""
    import numpy as np

    lengths = np.asarray(lengths, dtype=np.int64)
    ends = np.cumsum(lengths)
    if chunk_size is None:
        return [(0, int(ends[-1]))], [lengths]
    bounds, groups = [], []
    start, first = 0, 0
    for s, end in enumerate(ends):
        if end - start >= chunk_size or s == len(lengths) - 1:
            bounds.append((int(start), int(end)))
            groups.append(lengths[first:s + 1])
            start, first = int(end), s + 1
    return bounds, groups


class ChunkedRows:
    """Row blocks of ``X`` read one at a time (out-of-core EM).

    ``X`` is an in-memory array, an ``h5py.Dataset`` or any object with
    ``shape`` and row slicing ``X[a:b]``; ``bounds`` lists the (start, stop)
    row blocks and ``extras`` one per-block value (e.g. the sequence lengths
    of the block) passed to the E-step.  Only one block is in memory at a
    time: peak memory is O(block), not O(N).
    """

    def __init__(self, X, bounds, extras=None):
        self.X = X
        self.bounds = list(bounds)
        self.extras = list(extras) if extras is not None else [None] * len(self.bounds)

    def read(self, i):
        a, b = self.bounds[i]
        return self.X[a:b, ...]

    def map_gather(self, fn, params, **options):
        """[fn(block_i, extra_i, params, **options) for every block]."""
        return [fn(self.read(i), self.extras[i], params, **options)
                for i in range(len(self.bounds))]

    def map_reduce(self, fn, params, **options):
        """sum_i fn(block_i, extra_i, params, **options), as (stats, objective)."""
        total = None
        for i in range(len(self.bounds)):
            result = fn(self.read(i), self.extras[i], params, **options)
            total = result if total is None else add_results(total, result)
        return total

    def close(self):
        pass


class _Box:
    """One object around the parameters, so that dask scatters them as one piece
    (a dict or tuple would be split into several keys)."""

    def __init__(self, value):
        self.value = value


def _call_boxed(chunk, extra, fn, box, options):
    return fn(chunk, extra, box.value, **options)


def _tree_sum(client, futures):
    """Pairwise (tree) reduction of futures of E-step results on the cluster."""
    while len(futures) > 1:
        paired = [client.submit(add_results, futures[i], futures[i + 1], pure=False)
                  for i in range(0, len(futures) - 1, 2)]
        if len(futures) % 2:
            paired.append(futures[-1])
        futures = paired
    return futures[0]


class DaskRows:
    """Row blocks held by the workers of a dask.distributed cluster.

    Each block lives on a worker (as a future); an E-step sends the
    parameters once to every worker (``client.scatter(..., broadcast=True)``),
    maps ``fn`` over the blocks there, sums the results by a tree reduction
    on the cluster and gathers only the summed statistics.  Needs the
    ``distributed`` extra (``pip install "lvm_core[distributed]"``).
    """

    def __init__(self, client, X, bounds, extras=None):
        self.client = client
        self.bounds = list(bounds)
        self.extras = list(extras) if extras is not None else [None] * len(self.bounds)
        if is_dask_collection(X):
            chunks = tuple(b - a for a, b in self.bounds)
            X = X.rechunk({0: chunks, **{ax: -1 for ax in range(1, X.ndim)}})
            blocks = list(X.to_delayed().ravel())
            self.parts = client.compute(blocks)
        else:
            self.parts = client.scatter([X[a:b, ...] for a, b in self.bounds], hash=False)
        self.extra_parts = client.scatter(self.extras, hash=False) if any(
            e is not None for e in self.extras) else self.extras

    def map_gather(self, fn, params, **options):
        """[fn(block_i, extra_i, params, **options) for every block], run on the workers."""
        futures = self.client.map(_call_boxed, self.parts, self.extra_parts, fn=fn,
                                  box=_Box(params), options=options, pure=False)
        return self.client.gather(futures)

    def map_reduce(self, fn, params, **options):
        """sum_i fn(block_i, ...) on the workers: parameters broadcast once, tree-summed."""
        client = self.client
        box = client.scatter(_Box(params), broadcast=True, hash=False)  # one future
        results = client.map(_call_boxed, self.parts, self.extra_parts, fn=fn, box=box,
                             options=options, pure=False)
        total = _tree_sum(client, results).result()
        client.cancel([box])
        return total

    def close(self):
        futures = list(self.parts) + [e for e in self.extra_parts if hasattr(e, "key")]
        self.client.cancel(futures)


def is_dask_bag(X):
    """True for a ``dask.bag.Bag`` (checked without importing dask)."""
    return type(X).__name__ == "Bag" and type(X).__module__.startswith("dask.bag")


def _concat_sequences(part):
    import numpy as np

    part = [np.asarray(x) for x in part]
    return np.concatenate(part, axis=0) if part else None


def sequences_from_bag(bag, name="X"):
    """A dask Bag of sequences (each a (T_i, ...) array) as the dask array of all of
    them concatenated, one block per partition, and the lengths (T_1, ..., T_S) in
    bag order: the form the HMMs' dask fit takes.  Computes the lengths (one pass
    on the cluster); the sequences themselves stay on the workers."""
    import dask
    import dask.array as da
    import numpy as np

    parts = bag.map_partitions(lambda seqs: [[len(s) for s in seqs]]).compute()
    lengths_per_part = [list(p) for p in parts]
    lengths = np.asarray([t for p in lengths_per_part for t in p], dtype=np.int64)
    if lengths.size == 0 or np.any(lengths < 1):
        raise ValueError(f"{name}: a dask Bag of sequences must hold at least one sequence, "
                         "each with at least one step; got lengths "
                         f"{lengths[:8].tolist()}{'...' if lengths.size > 8 else ''}.")
    first = np.asarray(bag.take(1, npartitions=-1)[0])
    tail, dtype = first.shape[1:], first.dtype
    blocks = []
    for delayed_part, part_lengths in zip(bag.to_delayed(), lengths_per_part):
        if not part_lengths:
            continue
        block = dask.delayed(_concat_sequences)(delayed_part)
        blocks.append(da.from_delayed(block, shape=(int(sum(part_lengths)), *tail),
                                      dtype=dtype))
    return da.concatenate(blocks, axis=0), lengths


def default_client(client, X):
    """The dask client to use: ``client`` if given, else the current one for a
    dask collection ``X``, else None (no cluster)."""
    if client is not None:
        return client
    if is_dask_collection(X):
        try:
            from distributed import default_client as _default
        except ImportError:  # pragma: no cover - depends on the install
            raise ImportError(
                "X is a dask collection but dask.distributed is not installed; install the "
                "extra: pip install \"lvm_core[distributed]\" (or compute X into memory)."
            ) from None
        try:
            return _default()
        except ValueError:
            raise ValueError(
                "X is a dask collection but no dask.distributed Client is running; create one "
                "(client = distributed.Client(...)) or pass client=..., or compute X first."
            ) from None
    return None


def stepwise_update(running, new, step_size):
    """Online EM statistics (Cappe & Moulines 2009, eq. 6; stepwise EM):

        s_t = (1 - rho_t) s_{t-1} + rho_t S(chunk_t),

    with rho_t in (0, 1]; ``running=None`` (the first step) gives S(chunk_t).
    """
    if running is None or step_size == 1.0:
        return SufficientStatistics(new)
    return SufficientStatistics({k: (1.0 - step_size) * running[k] + step_size * new[k]
                                 for k in new})


def step_size_schedule(t, decay=0.6, offset=1.0):
    """rho_t = (t + offset)^(-decay), t = 0, 1, ... (decay in (0.5, 1] makes
    sum rho_t diverge and sum rho_t^2 converge, Cappe & Moulines 2009)."""
    if not 0.5 < decay <= 1.0:
        raise ValueError(f"decay must be in (0.5, 1] for stepwise EM to converge; got {decay}.")
    return float((t + offset) ** (-decay))


def make_source(X, bounds, extras=None, client=None):
    """A :class:`DaskRows` when a client is given (or X is a dask collection
    with a running client), else a :class:`ChunkedRows`."""
    client = default_client(client, X)
    if client is not None:
        return DaskRows(client, X, bounds, extras)
    return ChunkedRows(X, bounds, extras)


def check_row_source(X, name="X"):
    """Validate an array-like for streaming: it needs ``shape`` (N, D) and row
    slicing ``X[a:b]`` (h5py.Dataset, numpy.memmap, zarr array, dask array...)."""
    from .validation import check_not_sparse

    check_not_sparse(X, name)  # a sparse matrix has shape and slicing, but no dense rows
    shape = getattr(X, "shape", None)
    if shape is None or not hasattr(X, "__getitem__"):
        raise TypeError(
            f"{name} must be an array or an array-like with `shape` and row slicing "
            f"(e.g. an h5py.Dataset); got {type(X).__name__}."
        )
    if len(shape) != 2:
        raise ValueError(f"{name} must be 2-D (N, D); got shape {tuple(shape)}. Reshape a "
                         "single feature to (N, 1).")
    if shape[0] < 1 or shape[1] < 1:
        raise ValueError(f"{name} must have at least one row and one column; got shape "
                         f"{tuple(shape)}.")
    return int(shape[0]), int(shape[1])


def _row_sums_chunk(chunk, extra, params, dtype="float64"):
    """(sum of the rows, number of rows) of one block, for a streamed mean."""
    import numpy as np

    block = np.asarray(chunk, dtype=dtype)
    return SufficientStatistics(sum=np.sum(block, axis=0)), float(block.shape[0])


def streamed_mean(source, dtype="float64"):
    """Column means of all rows of a source, sum of block sums / N (one pass)."""
    stats, n = source.map_reduce(_row_sums_chunk, None, dtype=dtype)
    return stats["sum"] / n


def take_rows(X, rows, bounds, dtype="float64"):
    """Rows ``rows`` of X (in that order) read block by block (NumPy); all rows when None."""
    import numpy as np

    if is_dask_collection(X):
        if rows is None:
            return np.asarray(X.compute(), dtype=dtype)
        order = np.argsort(rows)
        picked = np.asarray(X[np.asarray(rows)[order]].compute(), dtype=dtype)
        out = np.empty_like(picked)
        out[order] = picked
        return out
    if rows is None:
        return np.concatenate([np.asarray(X[a:b], dtype=dtype) for a, b in bounds], axis=0)
    rows = np.asarray(rows, dtype=np.int64)
    order = np.argsort(rows)
    sorted_rows = rows[order]
    parts = []
    for a, b in bounds:
        lo, hi = np.searchsorted(sorted_rows, [a, b])
        if hi > lo:
            parts.append(np.asarray(X[a:b], dtype=dtype)[sorted_rows[lo:hi] - a])
    picked = np.concatenate(parts, axis=0)
    out = np.empty_like(picked)
    out[order] = picked
    return out
