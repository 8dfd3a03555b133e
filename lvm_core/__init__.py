"""lvm_core: latent-variable models with every gradient written by hand.

Layers (lower never import higher): ``backend``, ``random``, ``validation``,
``gradcheck`` -> ``functional`` -> ``nn`` -> ``kernels`` -> ``models``,
``em``, ``train``, ``io``.  See the README for an overview.
"""
__version__ = "0.1.0"
