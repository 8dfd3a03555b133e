"""Embedding layer: integer symbols to rows of a weight matrix.

For a vocabulary of K symbols and H features, W has shape (K, H) and a symbol
x in {0, ..., K-1} is mapped to its row (Bengio et al. 2003, a neural
probabilistic language model):

    y = W[x] = onehot(x) W,

computed by row indexing, never by the one-hot matrix product.  The gradient
of the product form gives the backward as a scatter-add of the upstream rows
(repeated symbols accumulate):

    dW = onehot(x)^T dy,   i.e.  dW[k] = sum_{n: x_n = k} dy_n.

Integer inputs have no gradient.  Initialisation W ~ N(0, 1), as
``torch.nn.Embedding``.
"""
from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from ..backend import (
    _dtype_name,
    asarray,
    get_namespace,
    is_numpy_namespace,
    scatter_add_rows,
)
from ..random import as_generator, normal
from ._grads import check_param, store_grad

__all__ = ["Embedding", "EmbeddingCache", "check_symbols"]


class EmbeddingCache(NamedTuple):
    """What :meth:`Embedding.backward` needs."""

    index: object  # (M,) flattened symbols, M = prod(x.shape)
    shape: tuple  # x.shape


def check_symbols(x, n_symbols, name="x", check_range=True):
    """Raise ValueError unless ``x`` holds integers in {0, ..., n_symbols - 1}.

    The range check reduces on the device and brings back two integers (the
    smallest and the largest symbol); ``check_range=False`` checks the dtype only.
    """
    xp = get_namespace(x)
    if not xp.isdtype(x.dtype, "integral"):
        raise ValueError(
            f"{name} must hold integer symbols in [0, {n_symbols - 1}]; got dtype "
            f"{x.dtype}. Convert the symbols with xp.astype({name}, xp.int64) (or map "
            "characters to integers first)."
        )
    size = int(np.prod(tuple(x.shape)))
    if size == 0 or not check_range:
        return x
    low, high = int(xp.min(x)), int(xp.max(x))
    if low < 0 or high >= n_symbols:
        bad = low if low < 0 else high
        raise ValueError(
            f"{name} holds the symbol {bad}, but this Embedding has n_symbols={n_symbols} "
            f"(symbols 0 .. {n_symbols - 1}). Build the Embedding with n_symbols larger "
            "than the largest symbol, or re-map the symbols."
        )
    return x


class Embedding:
    """Lookup table y = W[x] with W of shape (n_symbols, H).

    Parameters
    ----------
    n_symbols : int
        Vocabulary size K; inputs are integers in [0, K).
    H : int
        Embedding width.
    prefix : str
        Prepended to the parameter name: ``prefix + "W"``.
    """

    def __init__(self, n_symbols, H, prefix=""):
        for name, value in (("n_symbols", n_symbols), ("H", H)):
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}.")
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str; got {type(prefix).__name__}.")
        self.n_symbols = int(n_symbols)
        self.H = int(H)
        self.prefix = prefix

    @property
    def param_names(self):
        """[prefix + "W"]."""
        return [self.prefix + "W"]

    def init(self, rng, dtype="float32", like=None):
        """{prefix + "W": (n_symbols, H)} drawn from N(0, 1) (as torch.nn.Embedding)."""
        dt = _dtype_name(dtype)
        if dt not in ("float32", "float64"):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype!r}.")
        W = normal(as_generator(rng), (self.n_symbols, self.H), like=like, dtype=dt)
        return {self.prefix + "W": W}

    def forward(self, params, x, ws=None, check=True):
        """y = W[x].  Shapes: x (N,) or (T, N) integers -> y (N, H) or (T, N, H).

        ``check=False`` skips the range check of the symbols (one device -> host
        sync); use it only on data validated once before training.
        ``ws`` (a workspace) is accepted for the layer protocol and unused.
        Returns ``(y, cache)``.
        """
        W = check_param(params, self.prefix + "W", (self.n_symbols, self.H), repr(self))
        if not hasattr(x, "shape") or not hasattr(x, "dtype"):
            x = asarray(x, like=W)
        get_namespace(x, W)  # symbols must live where W lives
        xp = get_namespace(W)
        if x.ndim not in (1, 2):
            raise ValueError(
                f"x must be 1-D (N,) or 2-D (T, N) integer symbols; got shape "
                f"{tuple(x.shape)}."
            )
        check_symbols(x, self.n_symbols, check_range=check)
        index = xp.reshape(x, (-1,))  # (M,)
        y = xp.reshape(xp.take(W, index, axis=0), tuple(x.shape) + (self.H,))
        return y, EmbeddingCache(index=index, shape=tuple(x.shape))

    def backward(self, params, dy, cache, grads, ws=None, need_dx=True, accumulate=False):
        """dW[k] = sum over positions with x = k of dy; written into grads[prefix+"W"].

        Shapes: dy (N, H) or (T, N, H) like y.  ``accumulate=True`` adds to an
        existing grads buffer (weight sharing) instead of overwriting it.
        Returns None: integer symbols have no gradient (``need_dx`` is accepted
        for the layer protocol).
        """
        key = self.prefix + "W"
        W = check_param(params, key, (self.n_symbols, self.H), repr(self))
        xp = get_namespace(dy, W)
        if tuple(dy.shape) != cache.shape + (self.H,):
            raise ValueError(
                f"dy must have shape {cache.shape + (self.H,)} (the shape of y); got "
                f"{tuple(dy.shape)}."
            )
        dy2 = xp.reshape(dy, (-1, self.H))  # (M, H)
        buf = grads.get(key)
        if is_numpy_namespace(xp) and buf is not None and isinstance(buf, np.ndarray) \
                and tuple(buf.shape) == tuple(W.shape) and buf.dtype == dy2.dtype:
            if not accumulate:
                buf[...] = 0
            np.add.at(buf, np.asarray(cache.index), dy2)  # in place, no new (K, H) array
            return None
        dW = scatter_add_rows(xp.zeros_like(W), cache.index, dy2)
        store_grad(grads, key, dW, accumulate=accumulate)
        return None

    def __repr__(self):
        return f"Embedding(n_symbols={self.n_symbols}, H={self.H}, prefix={self.prefix!r})"
