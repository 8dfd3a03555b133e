"""Buffers reused from one training step to the next.

A :class:`Workspace` hands out arrays keyed by (name, shape, dtype): the first
request allocates, every later request with the same key returns the same
array.  Layers and models name their buffers after what they hold
(``"enc_W0.y"``, ``"loglik.e"``), so that a NumPy training step, once warm,
allocates no array at all.  A buffer's content is only valid until the next
request of the same key: a layer's output written into the workspace is
overwritten by that layer's next forward pass with the same workspace.

Arrays that are not NumPy arrays (CuPy, array-api-strict) are never cached:
their code paths are written without ``out=`` and allocate as the array API
does, so :meth:`Workspace.empty` returns a fresh array for them.
"""
from __future__ import annotations

import numpy as np

from ..backend import device_of, get_namespace

__all__ = ["Workspace"]


class Workspace:
    """Named, reusable buffers (see the module docstring).

    Attributes
    ----------
    n_allocations : int
        Number of arrays allocated so far (constant once a step is warm).
    """

    def __init__(self):
        self._buffers = {}
        self.n_allocations = 0

    def empty(self, name, shape, like, dtype=None):
        """An uninitialised array of ``shape`` and ``like``'s dtype (or ``dtype``).

        NumPy: the cached buffer for (name, shape, dtype), allocated on first use.
        Other namespaces: a fresh ``xp.empty`` on ``like``'s device.
        """
        if type(like) is not np.ndarray:
            xp = get_namespace(like)
            return xp.empty(tuple(int(s) for s in shape),
                            dtype=like.dtype if dtype is None else dtype, device=device_of(like))
        dt = like.dtype if dtype is None else np.dtype(dtype)
        key = (name, shape if type(shape) is tuple else tuple(shape), dt)
        buf = self._buffers.get(key)  # NumPy integers hash as the ints they equal
        if buf is None:
            buf = np.empty(tuple(int(s) for s in shape), dtype=dt)
            self._buffers[key] = buf
            self.n_allocations += 1
        return buf

    def clear(self):
        """Drop every buffer (the next step allocates again)."""
        self._buffers.clear()

    @property
    def nbytes(self):
        """Total size of the cached buffers in bytes."""
        return sum(b.nbytes for b in self._buffers.values())

    def __len__(self):
        return len(self._buffers)

    def __repr__(self):
        return f"Workspace({len(self)} buffers, {self.nbytes / 2**20:.1f} MiB)"


def scratch(ws, name, shape, like, dtype=None):
    """``ws.empty(...)``, or a fresh array when ``ws`` is None."""
    if ws is not None:
        return ws.empty(name, shape, like, dtype=dtype)
    if type(like) is np.ndarray:
        return np.empty(tuple(shape), dtype=like.dtype if dtype is None else dtype)
    xp = get_namespace(like)
    return xp.empty(tuple(shape), dtype=like.dtype if dtype is None else dtype,
                    device=device_of(like))
