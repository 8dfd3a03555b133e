"""Layers of binary stochastic units: their means, log-normalisers and samples.

A layer of H binary units h_j in {0, 1} with inputs x = a + b (a = v W from a
matmul, b the biases) has p(h | x) = prod_j sigmoid(x_j)^h_j (1 - sigmoid(x_j))^(1 - h_j),
whose mean and log-normaliser are

    E[h_j | x] = sigmoid(x_j),        A(x) = log sum_h exp(h . x) = sum_j softplus(x_j).

They are the conditionals and free energies of restricted and deep Boltzmann
machines (Hinton 2002; Salakhutdinov & Hinton 2009) -- F(v) = -b_v . v - A(c + v W)
-- and the units of sigmoid belief networks (Neal 1992).  :func:`bernoulli_units`
computes both in one pass; :func:`bernoulli_sample` draws h_j = 1[u_j < p_j],
u_j ~ U(0, 1), which is Bernoulli(p_j).

NumPy float32/float64 arrays go through numba kernels (one pass; the float32
exp/log are the polynomials of :func:`lvm_core.ops.bernoulli_loglik`, relative
error below 4e-8); every other array through :mod:`lvm_core.ops.reference`.
Uniforms: on the fused path u_j comes from a counter-based SplitMix64 stream
keyed by one 64-bit draw from ``rng`` (:mod:`lvm_core.ops._units_kernels`; float32:
24 random bits, float64: 53); elsewhere from :func:`lvm_core.random.uniform`.  The
two paths therefore draw different (equally distributed) samples from one seed.
"""
from __future__ import annotations

import numpy as np

from ..random import as_generator, uniform
from . import _units_kernels as U
from . import reference as ref
from ._dispatch import fusable, writable_out
from .workspace import scratch

__all__ = ["bernoulli_units", "bernoulli_sample"]


def bernoulli_units(a, b, out=None, ws=None, name="bernoulli_units"):
    """(p, A): p = sigmoid(a + b) (N, H) and A_n = sum_j softplus(a_nj + b_j) (N,).

    ``a`` (N, H), ``b`` (H,).  The fused path writes p into ``out`` (which may be
    ``a`` itself) and takes its scratch from ``ws``.  Always use the returned arrays.
    """
    if not fusable(a, b) or a.ndim != 2 or b.ndim != 1 or b.shape[0] != a.shape[1]:
        return ref.bernoulli_units(a, b)
    N, H = a.shape
    y = writable_out(out, a.shape, a.dtype)
    if y is None:
        y = np.empty_like(a)
    lse = scratch(ws, name + ".A", (N,), a)
    if a.dtype == np.float32:
        p2 = scratch(ws, name + ".p2", (H,), a)
        bits = scratch(ws, name + ".bits", (H,), a, dtype=np.int32)
        if y is a:  # one-array kernels: two arguments that are one array run scalar
            U.bernoulli_units_f32_(y, b, p2, bits, bits.view(np.float32), lse)
        else:
            U.bernoulli_units_f32(a, b, p2, bits, bits.view(np.float32), y, lse)
    elif y is a:
        U.bernoulli_units_f64_(y, b, lse)
    else:
        U.bernoulli_units_f64(a, b, y, lse)
    return y, lse


def bernoulli_sample(p, rng, out=None):
    """s = 1[u < p] elementwise, u ~ U(0, 1): Bernoulli(p) draws in p's dtype and shape.

    ``rng``: a NumPy Generator (or seed) -- the fused path takes one 64-bit key from
    it -- or, for arrays of other namespaces, whatever :func:`lvm_core.random.uniform`
    accepts.  The fused path writes into ``out`` when given (it may be ``p``).
    """
    if fusable(p) and p.ndim >= 1:
        gen = as_generator(rng)
        if isinstance(gen, np.random.Generator):
            s = writable_out(out, p.shape, p.dtype)
            if s is None:
                s = np.empty_like(p)
            key = np.uint64(gen.integers(0, 2 ** 64, dtype=np.uint64))
            f32 = p.dtype == np.float32
            if s is p:
                (U.bernoulli_sample_f32_ if f32 else U.bernoulli_sample_f64_)(s.reshape(-1), key)
            else:
                (U.bernoulli_sample_f32 if f32 else U.bernoulli_sample_f64)(
                    p.reshape(-1), key, s.reshape(-1))
            return s
    return ref.bernoulli_sample(p, uniform(rng, tuple(p.shape), like=p))
