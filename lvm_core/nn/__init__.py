"""Neural-network building blocks: layers with handwritten backward passes,
weight initialisation (Glorot & Bengio 2010; He et al. 2015), the MLP (Bishop
PRML ch. 5) and optimizers as functions (Adam, Kingma & Ba 2015; AdamW,
Loshchilov & Hutter 2019; SGD with momentum, Sutskever et al. 2013).

Layer protocol
--------------
A layer keeps no parameters itself: they live in the model's flat ``params``
dict (``{"enc_W0": ..., "enc_b0": ...}``), under keys the layer names, so a
model holds many layers in one dict, saves it with :mod:`lvm_core.io` and
hands it to one optimizer.  Every layer provides::

    layer.param_names -> list[str]            # full keys, prefix included
    params_new = layer.init(rng, dtype="float32", like=None)
        # a dict of new arrays under the layer's keys, on like's namespace/device
    y, cache = layer.forward(params, x, ws=None)
        # params: the model's flat dict (may hold other keys)
    dx = layer.backward(params, dy, cache, grads, ws=None, need_dx=True)
        # writes d loss/d param into grads[key]: in place into the existing
        # buffer when grads already holds the key (so a training loop's
        # grads_out buffers are reused), else stores a new array; returns
        # d loss/d x (None when need_dx=False)

``ws`` is a :class:`lvm_core.ops.Workspace` or None (None: every output is a
fresh array).  With a workspace, NumPy outputs and caches live in its
buffers, valid until the same layer's next forward pass with that workspace:
a layer called twice in one step needs two layer objects (or the caller
copies).  ``dy`` is d loss/d y; a backward never modifies ``dy`` or the cache.
Layers: :class:`Dense`, :class:`MaskedDense`, :class:`GaussianHead` (its y and
dy are the pair (mu, log_var)); :class:`MLP` is a stack of Dense layers with
its own (x, params) call signature, and :func:`stack_forward` /
:func:`stack_backward` run any list of protocol layers.  :class:`Embedding`
(integer symbols to rows) and the recurrent :class:`GRUCell` and
:class:`LSTMCell` (single steps and a masked sequence unroll with
backpropagation through time) follow the same protocol.
"""
from .embedding import Embedding
from .init import INIT_SCHEMES, init_linear
from .layers import Dense, GaussianHead, MaskedDense, store_grad
from .mlp import ACTIVATIONS, MLP, MLPCache, get_activation, stack_backward, stack_forward
from .optim import adam, clip_grad_norm, sgd
from .recurrent import GRUCell, LSTMCell

__all__ = ["init_linear", "INIT_SCHEMES", "Dense", "MaskedDense", "GaussianHead", "store_grad",
           "MLP", "MLPCache", "ACTIVATIONS", "get_activation", "stack_forward", "stack_backward",
           "adam", "sgd", "clip_grad_norm", "Embedding", "GRUCell", "LSTMCell"]
