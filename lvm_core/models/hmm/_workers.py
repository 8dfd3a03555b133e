"""The per-block functions of an HMM fit, at module level so that dask can send
them to its workers: the E-step of a block of whole sequences, and the summary a
model needs of a block before EM.  Used in process and for streamed data too.
"""
from __future__ import annotations

import numpy as np

from ...em import is_in_memory_array


def _chunk_e_step(chunk, extra, params, model, ref):
    """E-step of one block of whole sequences (in process, streamed, or on a dask worker)."""
    lengths, states = extra
    if not is_in_memory_array(chunk):
        chunk = np.asarray(chunk)
    X, missing = model._validate(chunk)
    data = model._features(X, lengths, ref, missing=missing)
    clamp = model._check_states(states, data["T"], data["like"])
    return model._e_step(data, params, clamp)


def _chunk_summary(chunk, extra, params, model):
    """What the model needs to know about a block before EM (e.g. sums for the mean)."""
    if not is_in_memory_array(chunk):
        chunk = np.asarray(chunk)
    return model._summary(*model._validate(chunk))
