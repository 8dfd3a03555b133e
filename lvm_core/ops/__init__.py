"""Fused primitives chosen from the arrays at each call: numba kernels for NumPy
arrays, plain array-API code (the reference the kernels are tested against)
for every other backend.
"""
