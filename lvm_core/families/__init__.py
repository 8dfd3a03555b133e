"""Observation families shared by every mixture and HMM: one module per distribution.

Each module holds pure functions: log-probability per component, additive
sufficient statistics from responsibilities, the (MAP) M-step with its priors
and floors, initialisation and sampling.

* :mod:`.gaussian`: full, tied, diagonal and spherical covariances;
* :mod:`.categorical`, :mod:`.poisson`, :mod:`.multinomial`, :mod:`.bernoulli`;
* :mod:`._common`: the one safe log, log-sum-exp and k-means of the library.
"""
from . import bernoulli, categorical, gaussian, multinomial, poisson
from ._common import kmeans, kmeans_plusplus, logsumexp, safe_log

__all__ = ["gaussian", "categorical", "poisson", "multinomial", "bernoulli", "safe_log", "logsumexp",
           "kmeans", "kmeans_plusplus"]
