#!/usr/bin/env bash
# Download the wheels that benchmarks/gpu_check.sh installs on a GPU machine
# that has no network.  Run it on a machine WITH network, from the repository
# root, before the GPU run; the folder travels with the working tree (it is
# git-ignored, so name it among the paths carried to the GPU machine):
#
#   bash benchmarks/gpu_wheels.sh            # -> benchmarks/.gpu_wheels/*.whl
#
# The GPU machines provide Python 3.12 with CuPy (CUDA 13), PyTorch with CUDA,
# JAX, numba, h5py, pytest and hypothesis; everything else lvm_core and its
# tests import comes from here: array-api-compat (a run-time dependency) and
# array-api-strict (imported by the test modules).  Both are pure-Python
# wheels; the platform flags make pip choose what CPython 3.12 on
# manylinux x86_64 can install, whatever machine runs this script.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${1:-$here/.gpu_wheels}"
mkdir -p "$dest"
for spec in "array-api-compat==1.16.0" "array-api-strict==2.6.1"; do
    python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
        --implementation cp --platform manylinux_2_17_x86_64 -d "$dest" "$spec"
done
ls -l "$dest"
