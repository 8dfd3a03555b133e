"""Inference loops written as kernels: the HMM forward-backward and Viterbi
recursions (``hmm_numba`` on the CPU, ``hmm_xp`` on any array-API backend).
The fused primitives of the gradient models live in :mod:`lvm_core.ops`."""
