"""Multi-layer perceptron: a stack of :class:`lvm_core.nn.Dense` layers.

For sizes [D_in, H_1, ..., D_out] and layers i = 0 .. n-1 (Bishop PRML
sec. 5.1; backpropagation, sec. 5.3):

    a_i = h_i W_i + b_i,   h_0 = x,
    h_{i+1} = f(a_i)  for i < n - 1,     y = g(a_{n-1}),

with f the hidden activation and g the output activation (identity by
default).  The backward pass applies the chain rule layer by layer, from the
top:  da_i = f'(a_i) * dh_{i+1},  dW_i = h_i^T da_i,  db_i = sum_n da_i,
dh_i = da_i W_i^T.

Parameters live in one flat dict ``{prefix + "W0": (D_in, H_1), prefix + "b0":
(H_1,), ...}`` so that a model can keep several MLPs (encoder, decoder) in a
single params dict under different prefixes and pass it to ``forward``.
:func:`stack_forward` / :func:`stack_backward` run any list of layers that
follow the layer protocol (see :mod:`lvm_core.nn`).
"""
from __future__ import annotations

import numbers
from typing import NamedTuple

from .. import ops
from ..backend import get_namespace
from ..random import as_generator
from .init import INIT_SCHEMES
from .layers import Dense

__all__ = ["MLP", "MLPCache", "ACTIVATIONS", "get_activation", "stack_forward",
           "stack_backward"]

ACTIVATIONS = ops.ACTIVATIONS


def get_activation(name):
    """The canonical activation name (None means "identity"), or a ValueError."""
    return ops.check_activation(name)


def stack_forward(layers, params, x, ws=None):
    """h_0 = x, h_{i+1} = layer_i(h_i); returns (h_n, [cache_0, ..., cache_{n-1}])."""
    caches = []
    h = x
    for layer in layers:
        h, cache = layer.forward(params, h, ws)
        caches.append(cache)
    return h, caches


def stack_backward(layers, params, dy, caches, grads, ws=None, need_dx=True):
    """Backward of :func:`stack_forward` from the top; returns dx (None when not needed)."""
    dh = dy
    for i in range(len(layers) - 1, -1, -1):
        dh = layers[i].backward(params, dh, caches[i], grads, ws, need_dx=need_dx or i > 0)
    return dh


class MLPCache(NamedTuple):
    """What :meth:`MLP.backward` needs: one layer cache per layer, bottom to top."""

    layers: list


class MLP:
    """Fully connected network y = g(f(... f(x W_0 + b_0) ...) W_{n-1} + b_{n-1}).

    Parameters
    ----------
    sizes : sequence of int
        [D_in, H_1, ..., D_out]; at least two entries.
    activation : str
        Hidden activation: relu, leaky_relu, tanh, sigmoid, softplus, elu,
        identity (or None).
    output_activation : str or None
        Activation after the last layer (None = identity, e.g. for logits).
    init : {"torch", "glorot", "he"}
        Initialisation scheme (see :func:`lvm_core.nn.init.init_linear`).
    dtype : str
        "float32" (default) or "float64".
    random_state : None, int or Generator
        Source of the initial weights; ``0`` is a valid seed.
    like : array, optional
        The parameters are created on this array's namespace and device.
    prefix : str
        Prepended to every parameter name ("enc_" gives "enc_W0", ...).

    Attributes
    ----------
    params : dict[str, array]
        ``{prefix+"W{i}": (sizes[i], sizes[i+1]), prefix+"b{i}": (sizes[i+1],)}``.
    layers : list of Dense
        The layers (they follow the layer protocol of :mod:`lvm_core.nn`).
    """

    def __init__(self, sizes, activation="relu", output_activation=None, init="torch",
                 dtype="float32", random_state=None, like=None, prefix=""):
        self.sizes = sizes
        self.activation = activation
        self.output_activation = output_activation
        self.init = init
        self.dtype = dtype
        self.random_state = random_state
        self.like = like
        self.prefix = prefix
        sizes = list(sizes)
        if len(sizes) < 2 or any(isinstance(s, bool) or not isinstance(s, numbers.Integral)
                                 or s < 1 for s in sizes):
            raise ValueError(
                "sizes must list at least two positive integers [D_in, ..., D_out]; "
                f"got {self.sizes!r}."
            )
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str; got {type(prefix).__name__}.")
        if init not in INIT_SCHEMES:
            raise ValueError(f"init must be one of {INIT_SCHEMES}; got {init!r}.")
        hidden = get_activation(activation)
        output = get_activation(output_activation)
        n = len(sizes) - 1
        self.layers = [Dense(sizes[i], sizes[i + 1], activation=output if i == n - 1 else hidden,
                             prefix=prefix, suffix=str(i), init=init) for i in range(n)]
        rng = as_generator(random_state)
        self.params = {}
        for layer in self.layers:
            self.params.update(layer.init(rng, dtype=dtype, like=like))

    @property
    def n_layers(self):
        """Number of affine layers (len(sizes) - 1)."""
        return len(self.layers)

    @property
    def param_names(self):
        """The keys of this MLP's parameters, in layer order."""
        return [k for layer in self.layers for k in layer.param_names]

    def forward(self, x, params=None, ws=None):
        """y = MLP(x).  Shapes: x (N, D_in) -> y (N, D_out).  Returns ``(y, cache)``.

        ``params`` defaults to ``self.params``; it may be a larger flat dict that
        also holds other parameters (only this MLP's prefixed keys are read).
        With a :class:`lvm_core.ops.Workspace` ``ws`` the outputs live in its
        buffers (valid until the next forward with the same workspace).
        """
        params = self.params if params is None else params
        for key in self.param_names:
            if key not in params:
                raise KeyError(
                    f"params has no entry {key!r}; this MLP (prefix={self.prefix!r}) needs "
                    f"{self.param_names}. Pass a dict that contains them (e.g. mlp.params)."
                )
        W0 = params[self.layers[0].W_key]
        if x.ndim != 2 or x.shape[1] != W0.shape[0]:
            raise ValueError(
                f"x must have shape (N, D_in) with D_in = {W0.shape[0]}; got "
                f"{tuple(x.shape)}. Check the layer sizes."
            )
        y, caches = stack_forward(self.layers, params, x, ws)
        return y, MLPCache(layers=caches)

    def backward(self, dy, cache, params=None, grads=None, ws=None, need_dx=True):
        """Backpropagate dy = dLoss/dy (N, D_out).

        Returns ``(dx, grads)``: dx (N, D_in) (None when ``need_dx=False``) and
        grads with this MLP's keys, shapes and dtypes (written into the arrays
        of ``grads`` when given).
        """
        params = self.params if params is None else params
        get_namespace(dy, cache.layers[0][0])  # mixed namespaces raise here
        grads = {} if grads is None else grads
        dx = stack_backward(self.layers, params, dy, cache.layers, grads, ws, need_dx=need_dx)
        return dx, {k: grads[k] for k in self.param_names}

    def __repr__(self):
        return (f"MLP(sizes={list(self.sizes)!r}, activation={self.activation!r}, "
                f"output_activation={self.output_activation!r}, init={self.init!r}, "
                f"dtype={self.dtype!r}, prefix={self.prefix!r})")
