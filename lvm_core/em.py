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
"""
from __future__ import annotations

import math
import sys
import warnings

__all__ = ["SufficientStatistics", "ConvergenceMonitor", "run_em", "EMDecreaseWarning"]


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
