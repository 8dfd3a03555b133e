"""Multi-layer perceptron built from the functional pairs.

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
"""
from __future__ import annotations

import numbers
from typing import NamedTuple

from ..backend import get_namespace
from ..functional import activations as _act
from ..functional.linear import linear_backward, linear_forward
from ..random import as_generator
from .init import INIT_SCHEMES, init_linear

__all__ = ["MLP", "MLPCache", "ACTIVATIONS", "get_activation"]


def _identity_forward(x):
    return x, None


def _identity_backward(dy, cache):
    return dy


ACTIVATIONS = {
    "identity": (_identity_forward, _identity_backward),
    "relu": (_act.relu_forward, _act.relu_backward),
    "leaky_relu": (_act.leaky_relu_forward, _act.leaky_relu_backward),
    "tanh": (_act.tanh_forward, _act.tanh_backward),
    "sigmoid": (_act.sigmoid_forward, _act.sigmoid_backward),
    "softplus": (_act.softplus_forward, _act.softplus_backward),
    "elu": (_act.elu_forward, _act.elu_backward),
}


def get_activation(name):
    """(forward, backward) pair of an activation by name (None means identity)."""
    key = "identity" if name is None else name
    if key not in ACTIVATIONS:
        raise ValueError(
            f"activation must be one of {sorted(ACTIVATIONS)} or None; got {name!r}."
        )
    return ACTIVATIONS[key]


class MLPCache(NamedTuple):
    """What :meth:`MLP.backward` needs: one cache per layer, bottom to top."""

    linear: list  # LinearCache per layer
    activation: list  # activation cache per layer (None for identity)


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
        self._hidden = get_activation(activation)
        self._output = get_activation(output_activation)
        rng = as_generator(random_state)
        self.params = {}
        for i, (d_in, d_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            W, b = init_linear(rng, d_in, d_out, scheme=init, dtype=dtype, like=like)
            self.params[f"{prefix}W{i}"] = W
            self.params[f"{prefix}b{i}"] = b

    @property
    def n_layers(self):
        """Number of affine layers (len(sizes) - 1)."""
        return len(self.sizes) - 1

    @property
    def param_names(self):
        """The keys of this MLP's parameters, in layer order."""
        return [f"{self.prefix}{kind}{i}" for i in range(self.n_layers) for kind in "Wb"]

    def _get(self, params, key):
        if key not in params:
            raise KeyError(
                f"params has no entry {key!r}; this MLP (prefix={self.prefix!r}) needs "
                f"{self.param_names}. Pass a dict that contains them (e.g. mlp.params)."
            )
        return params[key]

    def forward(self, x, params=None):
        """y = MLP(x).  Shapes: x (N, D_in) -> y (N, D_out).  Returns ``(y, cache)``.

        ``params`` defaults to ``self.params``; it may be a larger flat dict that
        also holds other parameters (only this MLP's prefixed keys are read).
        """
        params = self.params if params is None else params
        h = x
        linear_caches, act_caches = [], []
        last = self.n_layers - 1
        for i in range(self.n_layers):
            W = self._get(params, f"{self.prefix}W{i}")
            b = self._get(params, f"{self.prefix}b{i}")
            a, lin_cache = linear_forward(h, W, b)  # (N, H_{i+1})
            forward_fn = self._output[0] if i == last else self._hidden[0]
            h, act_cache = forward_fn(a)
            linear_caches.append(lin_cache)
            act_caches.append(act_cache)
        return h, MLPCache(linear=linear_caches, activation=act_caches)

    def backward(self, dy, cache):
        """Backpropagate dy = dLoss/dy (N, D_out).

        Returns ``(dx, grads)``: dx (N, D_in) and grads with this MLP's keys,
        shapes and dtypes.
        """
        get_namespace(dy, cache.linear[0].W)  # mixed namespaces raise here
        grads = {}
        dh = dy
        last = self.n_layers - 1
        for i in range(last, -1, -1):
            backward_fn = self._output[1] if i == last else self._hidden[1]
            da = backward_fn(dh, cache.activation[i])  # (N, H_{i+1})
            dh, dW, db = linear_backward(da, cache.linear[i])
            grads[f"{self.prefix}W{i}"] = dW
            grads[f"{self.prefix}b{i}"] = db
        return dh, {k: grads[k] for k in self.param_names}

    def __repr__(self):
        return (f"MLP(sizes={list(self.sizes)!r}, activation={self.activation!r}, "
                f"output_activation={self.output_activation!r}, init={self.init!r}, "
                f"dtype={self.dtype!r}, prefix={self.prefix!r})")
