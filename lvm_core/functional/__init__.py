"""Stateless forward/backward pairs with handwritten gradients.

Gradient rule (the one convention of the gradient code, also followed by
:mod:`lvm_core.ops` and the layers of :mod:`lvm_core.nn`):

* a **value function** (log-likelihoods, KL terms, log-normalisers) returns
  its value and the gradient *of its own summed value* with respect to its
  inputs: ``ll, dll_dlogits = bernoulli_log_likelihood(logits, x)`` gives
  d(sum_n ll_n)/d logits.  It knows nothing of the loss: the caller chains it
  with the sign and weight its loss needs (a mean negative log-likelihood
  uses -dll_dlogits / N);
* a **backward** takes d loss/d output and returns d loss/d input (and
  d loss/d parameters): ``dx, dW, db = linear_backward(dy, cache)``.

Names say which: ``dll_d<input>`` / ``dkl_d<input>`` for the gradient of a
value, ``d<name>`` for d loss/d name.

Every operation is a pair ``y, cache = f_forward(...)`` / ``d... = f_backward(dy,
cache)`` with a named cache, or a loss-like function returning its value and
its input gradients (log-likelihoods, KL terms).  Each function takes its
array namespace from its inputs (NumPy, CuPy, array-api-strict, ...), keeps
the input dtype (float32 stays float32) and is written in a numerically
stable form.  References are given in each module: Kingma & Welling 2014
(reparameterization, Gaussian KL), Loaiza-Ganem & Cunningham 2019 (continuous
Bernoulli), Jang et al. 2017 / Maddison et al. 2017 (Gumbel-softmax), Bishop
PRML (likelihoods, log-sum-exp).
"""
from .activations import *  # noqa: F401,F403
from .activations import __all__ as _activations_all
from .kl import *  # noqa: F401,F403
from .kl import __all__ as _kl_all
from .likelihoods import *  # noqa: F401,F403
from .likelihoods import __all__ as _likelihoods_all
from .linear import *  # noqa: F401,F403
from .linear import __all__ as _linear_all
from .reductions import *  # noqa: F401,F403
from .reductions import __all__ as _reductions_all
from .sampling import *  # noqa: F401,F403
from .sampling import __all__ as _sampling_all

__all__ = (_linear_all + _activations_all + _likelihoods_all + _kl_all
           + _sampling_all + _reductions_all)
