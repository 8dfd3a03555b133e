"""Dataset readers and writers, binarisation and synthetic generators (lvm_core never imports this package).

Modules: :mod:`~data_tools.idx` (IDX files of MNIST/Fashion-MNIST),
:mod:`~data_tools.mnist` (``load_mnist_like`` with its source search order and
the embedded Fashion-MNIST test split), :mod:`~data_tools.binarize`,
:mod:`~data_tools.hdf5` (atomic writes, streamed shuffled minibatches),
:mod:`~data_tools.to_hdf5` (``python -m data_tools.to_hdf5``),
:mod:`~data_tools.text` (text to symbol sequences for HMMs) and
:mod:`~data_tools.synthetic` (data with known parameters).
References are given in each module's docstring.
"""
from .binarize import binarize_stochastic, binarize_threshold, dynamic_binarizer
from .hdf5 import HDF5Batches, read_hdf5, write_hdf5
from .idx import read_idx, write_idx
from .mnist import load_mnist_like
from .synthetic import make_fa_data, make_gmm_data, make_hmm_data
from .text import Vocabulary, load_embedded_text, text_to_sequences

__all__ = [
    "read_idx",
    "write_idx",
    "load_mnist_like",
    "binarize_threshold",
    "binarize_stochastic",
    "dynamic_binarizer",
    "write_hdf5",
    "read_hdf5",
    "HDF5Batches",
    "Vocabulary",
    "text_to_sequences",
    "load_embedded_text",
    "make_gmm_data",
    "make_fa_data",
    "make_hmm_data",
]
