"""Fully observed autoregressive models: FVSBN, NADE (Bernoulli and categorical), RNADE.

Each factorises p(x) by the chain rule in a chosen ordering of the variables
and models every conditional with a small network, so that log p(x) is exact
and sampling is ancestral (lecture notes, seed 001; Frey 1998; Larochelle &
Murray 2011; Uria, Murray & Larochelle 2013).  See the modules for the
equations: :mod:`._base` (chain rule, orderings, fitting), :mod:`.fvsbn`,
:mod:`.nade` (the running pre-activation and its backward), :mod:`.rnade`.
"""
from ._base import AutoregressiveModel
from .fvsbn import FVSBN, fvsbn_logits_backward, fvsbn_logits_forward
from .nade import (NADE, nade_hidden_backward, nade_hidden_forward,
                   nade_preactivation_backward, nade_preactivation_forward,
                   per_dimension_linear_backward, per_dimension_linear_forward)
from .rnade import RNADE, mog_log_likelihood

__all__ = [
    "AutoregressiveModel",
    "FVSBN",
    "NADE",
    "RNADE",
    "fvsbn_logits_forward",
    "fvsbn_logits_backward",
    "nade_hidden_forward",
    "nade_hidden_backward",
    "nade_preactivation_forward",
    "nade_preactivation_backward",
    "per_dimension_linear_forward",
    "per_dimension_linear_backward",
    "mog_log_likelihood",
]
