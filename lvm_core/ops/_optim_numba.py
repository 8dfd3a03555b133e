"""Fused Adam / AdamW and SGD updates for NumPy arrays (numba), one pass per array.

The same update as the array-API code in :mod:`lvm_core.nn.optim` (Kingma &
Ba 2015; decoupled weight decay, Loshchilov & Hutter 2019), element by
element, with every scalar cast to the array's dtype so that float32 stays
float32 and the arithmetic follows the generic path operation by operation
(the results are bitwise equal in the tests):

    theta <- theta * decay                       (decay = 1 - lr wd)
    m <- beta1 m + (1 - beta1) g
    v <- beta2 v + (1 - beta2) g^2
    theta <- theta - step_size * (m / (sqrt(v) / sqrt_bc2 + eps))

SGD (torch.optim.SGD semantics, see :func:`lvm_core.nn.optim.sgd`):

    d <- g + wd theta;  buf <- d (first step) or mu buf + (1 - tau) d;
    d <- d + mu buf (Nesterov) or buf;  theta <- theta - lr d

Two kernels per rule: an in-place one and one writing fresh outputs.  A
single kernel with outputs that may alias its inputs (7 arrays) is not
vectorised by LLVM and runs ~7x slower, hence the split.  Only used for
C-contiguous NumPy arrays of one float dtype.
"""
from __future__ import annotations

import numpy as np

from .._jit import njit


@njit(error_model="numpy")
def adam_inplace_kernel(theta, g, m, v, decay, beta1, one_minus_beta1, beta2, one_minus_beta2,
                        sqrt_bc2, eps, step_size):
    """One Adam step on flat arrays, updating theta, m and v in place."""
    for i in range(theta.size):
        gi = g[i]
        t = theta[i] * decay
        mi = beta1 * m[i] + one_minus_beta1 * gi
        vi = beta2 * v[i] + one_minus_beta2 * (gi * gi)
        denom = np.sqrt(vi) / sqrt_bc2 + eps
        theta[i] = t - step_size * (mi / denom)
        m[i] = mi
        v[i] = vi


#: arrays per call of :func:`adam_inplace_group` (shorter groups are padded with
#: empty arrays, so one compiled kernel serves every model)
GROUP = 8


@njit(error_model="numpy")
def adam_inplace_group(thetas, gs, ms, vs, decay, beta1, one_minus_beta1, beta2,
                       one_minus_beta2, sqrt_bc2, eps, step_size):
    """:func:`adam_inplace_kernel` on each of GROUP flat arrays (tuples of equal
    length): one call instead of GROUP for a model's parameters."""
    for j in range(len(thetas)):
        adam_inplace_kernel(thetas[j], gs[j], ms[j], vs[j], decay, beta1, one_minus_beta1,
                            beta2, one_minus_beta2, sqrt_bc2, eps, step_size)


@njit(error_model="numpy")
def adam_copy_kernel(theta, g, m, v, theta_out, m_out, v_out, decay, beta1, one_minus_beta1,
                     beta2, one_minus_beta2, sqrt_bc2, eps, step_size):
    """One Adam step on flat arrays, writing into fresh theta_out, m_out, v_out."""
    for i in range(theta.size):
        gi = g[i]
        t = theta[i] * decay
        mi = beta1 * m[i] + one_minus_beta1 * gi
        vi = beta2 * v[i] + one_minus_beta2 * (gi * gi)
        denom = np.sqrt(vi) / sqrt_bc2 + eps
        theta_out[i] = t - step_size * (mi / denom)
        m_out[i] = mi
        v_out[i] = vi


def adam_update(theta, g, m, v, inplace, lr, beta1, beta2, eps, weight_decay, step_size,
                sqrt_bc2):
    """Fused step; returns (theta, m, v) -- the same arrays when ``inplace``."""
    dt = theta.dtype.type
    scalars = (dt(1.0 - lr * weight_decay), dt(beta1), dt(1.0 - beta1), dt(beta2),
               dt(1.0 - beta2), dt(sqrt_bc2), dt(eps), dt(step_size))
    flat = (theta.reshape(-1), g.reshape(-1), m.reshape(-1), v.reshape(-1))
    if inplace:
        adam_inplace_kernel(*flat, *scalars)
        return theta, m, v
    theta_out, m_out, v_out = np.empty_like(theta), np.empty_like(m), np.empty_like(v)
    adam_copy_kernel(*flat, theta_out.reshape(-1), m_out.reshape(-1), v_out.reshape(-1),
                     *scalars)
    return theta_out, m_out, v_out


@njit(error_model="numpy")
def sgd_inplace_kernel(theta, g, buf, weight_decay, momentum, one_minus_dampening, lr,
                       has_buf, nesterov):
    """One SGD step on flat arrays, updating theta and buf in place (buf unused
    when momentum == 0)."""
    use_momentum = momentum != 0
    use_decay = weight_decay != 0
    for i in range(theta.size):
        d = g[i] + weight_decay * theta[i] if use_decay else g[i]
        if use_momentum:
            b = momentum * buf[i] + one_minus_dampening * d if has_buf else d
            buf[i] = b
            d = d + momentum * b if nesterov else b
        theta[i] = theta[i] - lr * d


@njit(error_model="numpy")
def sgd_copy_kernel(theta, g, buf, theta_out, buf_out, weight_decay, momentum,
                    one_minus_dampening, lr, has_buf, nesterov):
    """One SGD step on flat arrays, writing into fresh theta_out and buf_out."""
    use_momentum = momentum != 0
    use_decay = weight_decay != 0
    for i in range(theta.size):
        d = g[i] + weight_decay * theta[i] if use_decay else g[i]
        if use_momentum:
            b = momentum * buf[i] + one_minus_dampening * d if has_buf else d
            buf_out[i] = b
            d = d + momentum * b if nesterov else b
        theta_out[i] = theta[i] - lr * d


def sgd_update(theta, g, buf, inplace, lr, momentum, nesterov, weight_decay, dampening):
    """Fused SGD step; ``buf`` None before the first momentum step.  Returns
    (theta, buf) -- buf None when momentum == 0; the same arrays when ``inplace``
    (a new buffer is allocated at the first momentum step)."""
    dt = theta.dtype.type
    has_buf = buf is not None
    if momentum and not has_buf:
        buf = np.empty_like(theta)
        buf_in = buf
    else:
        buf_in = buf if has_buf else theta  # placeholder, never read without momentum
    scalars = (dt(weight_decay), dt(momentum), dt(1.0 - dampening), dt(lr))
    if inplace:
        sgd_inplace_kernel(theta.reshape(-1), g.reshape(-1), buf_in.reshape(-1), *scalars,
                           has_buf, nesterov)
        return theta, (buf if momentum else None)
    theta_out = np.empty_like(theta)
    buf_out = (buf if not has_buf else np.empty_like(theta)) if momentum else theta_out
    sgd_copy_kernel(theta.reshape(-1), g.reshape(-1), buf_in.reshape(-1), theta_out.reshape(-1),
                    buf_out.reshape(-1), *scalars, has_buf, nesterov)
    return theta_out, (buf_out if momentum else None)
