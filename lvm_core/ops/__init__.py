"""Fused primitives for gradient models, chosen from the arrays at each call.

Every primitive has up to three implementations behind one function:

* NumPy float32/float64 (C-contiguous) arrays: numba kernels, each one serial
  pass over memory, with exp/log left to NumPy's vectorised ufuncs and BLAS
  matmuls written into preallocated ``out=`` buffers;
* CuPy float32/float64 arrays: CuPy-fused kernels (:mod:`lvm_core.ops._cupy`,
  ``cupy.ElementwiseKernel``, built on first use; CuPy is imported only then);
* every other array (array-api-strict, other dtypes): the plain
  array-API code of :mod:`lvm_core.ops.reference`, which is also the oracle
  the kernels are tested against.

The choice is made from the arguments' namespace, dtype and layout at the
call (:func:`lvm_core.ops._dispatch.fusable`), never from global state.
Scratch and output buffers come from a :class:`Workspace` (``ws=``), keyed by
name, shape and dtype, so a warm NumPy training step allocates nothing.
Results may be written into given buffers: always use the returned arrays.

Gradient rule (as in :mod:`lvm_core.functional`): a value function returns
its value and ``scale`` times the gradient of its summed value; a backward
takes d loss/d output and returns d loss/d input.

Primitives: :func:`matmul`; :func:`bias_act` / :func:`bias_act_backward`
(Bishop PRML sec. 5.3); log-likelihood value + gradient for the Bernoulli,
continuous Bernoulli (Loaiza-Ganem & Cunningham 2019), Gaussian and
categorical; the reparameterised Gaussian latent and its KL to a standard or
a general diagonal Gaussian prior (Kingma & Welling 2014; Sohn et al. 2015);
in-place Adam (Kingma & Ba 2015) and SGD; the gate blocks of GRU and LSTM
steps and their backward (:mod:`lvm_core.ops.recurrent`); the means,
log-normalisers and samples of layers of binary stochastic units
(:mod:`lvm_core.ops.units`, for Boltzmann machines and belief nets); the
minibatch row gather :func:`take_rows`, which prefetches the rows ahead.
:mod:`lvm_core.ops.lasso` holds the ISTA/FISTA Lasso solvers behind sparse
coding (Beck & Teboulle 2009).
"""
from . import reference
from .dense import ACTIVATIONS, bias_act, bias_act_backward, check_activation, matmul
from .latent import kl_normal, kl_std_normal, reparameterize, reparameterize_backward
from .likelihood import (bernoulli_loglik, categorical_loglik, continuous_bernoulli_loglik,
                         gaussian_loglik)
from .optim import adam_, sgd_
from . import gumbel, score_function
from .recurrent import gru_gates, gru_gates_backward, lstm_gates, lstm_gates_backward
from .rows import take_rows
from .units import bernoulli_sample, bernoulli_units
from .workspace import Workspace, scratch

__all__ = ["Workspace", "scratch", "reference", "ACTIVATIONS", "check_activation", "matmul",
           "bias_act", "bias_act_backward", "bernoulli_loglik", "continuous_bernoulli_loglik",
           "gaussian_loglik", "categorical_loglik", "reparameterize", "reparameterize_backward",
           "kl_std_normal", "kl_normal", "adam_", "sgd_", "gru_gates", "gru_gates_backward",
           "lstm_gates", "lstm_gates_backward", "gumbel", "score_function", "bernoulli_units",
           "bernoulli_sample", "take_rows"]
