"""Hidden Markov models trained by EM: the inference base and one module per
emission family (Rabiner 1989; Bishop, PRML ch. 13.2).

* :mod:`.base`: forward-backward E-step, pure M-step, fit (in memory,
  out-of-core, dask), partial_fit (online EM), decoding, sampling;
* :mod:`.categorical`, :mod:`.gaussian`, :mod:`.gmm`, :mod:`.poisson`, :mod:`.multinomial`;
* :mod:`.variational`: variational Bayesian categorical and Gaussian HMMs (Beal 2003).
"""
from .base import BaseHMM
from .categorical import CategoricalHMM
from .gaussian import GaussianHMM
from .gmm import GMMHMM
from .multinomial import MultinomialHMM
from .poisson import PoissonHMM
from .variational import VariationalCategoricalHMM, VariationalGaussianHMM

__all__ = ["BaseHMM", "CategoricalHMM", "GaussianHMM", "GMMHMM", "MultinomialHMM", "PoissonHMM",
           "VariationalCategoricalHMM", "VariationalGaussianHMM"]
