"""Installation script for lvm_core.

Run-time requirements are deliberately small: numpy, numba, h5py and
array-api-compat.  Everything else is an extra:

* ``gpu``: CuPy (choose the wheel matching your CUDA, e.g. ``cupy-cuda12x``);
* ``examples``: matplotlib and tqdm for the example scripts;
* ``distributed``: dask.distributed, for EM whose E-steps run on a cluster;
* ``dev``: the test suite and its reference implementations.
"""
import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"',
    (HERE / "lvm_core" / "__init__.py").read_text(),
    re.M,
).group(1)

EXAMPLES = ["matplotlib>=3.5", "tqdm>=4.60"]
DISTRIBUTED = ["dask[distributed]>=2024.1"]
DEV = EXAMPLES + DISTRIBUTED + [
    "pytest>=7",
    "pytest-xdist>=3",
    "hypothesis>=6.80",
    "array-api-strict>=2.2",
    "scikit-learn>=1.3",
    "hmmlearn>=0.3.2,<0.4",
    "pandas>=1.5",
    "ruff>=0.4",
]

setup(
    name="lvm_core",
    version=VERSION,
    description=(
        "Latent-variable models with handwritten gradients on NumPy/CuPy: "
        "EM for HMMs, mixtures and factor analysis; VAEs and relatives."
    ),
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10",
    packages=find_packages(include=["lvm_core", "lvm_core.*", "data_tools", "data_tools.*"]),
    package_data={"data_tools": ["embedded/*"]},
    include_package_data=True,
    install_requires=[
        "numpy>=1.24",
        "numba>=0.58",
        "h5py>=3.8",
        "array-api-compat>=1.6",
    ],
    extras_require={
        "gpu": ["cupy-cuda12x>=13"],
        "examples": EXAMPLES,
        "distributed": DISTRIBUTED,
        "dev": DEV,
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
