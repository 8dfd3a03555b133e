"""Fused primitives chosen by the arrays' namespace and dtype: numba kernels for
NumPy, plain array-API code for every other backend (the reference each fused
kernel is tested against)."""
