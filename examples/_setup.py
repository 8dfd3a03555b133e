"""What every example does before its real work: cap BLAS threads, check the backend.

* :func:`limit_blas_threads` sets OpenBLAS/MKL/OpenMP thread counts from
  ``--threads`` (default 1) before NumPy is imported; the user's own
  ``OPENBLAS_NUM_THREADS`` / ``OMP_NUM_THREADS`` / ``MKL_NUM_THREADS`` wins.
  On a 2-core machine a second BLAS thread saves little when the machine is
  idle, and on a busy machine spinning BLAS threads made an epoch several
  times slower; numba kernels and BLAS must not fight over the same cores.
* :func:`cupy_or_exit` returns the ``cupy`` module for ``--backend cupy``, or
  prints one line saying what is missing (CuPy, or a CUDA GPU) and exits
  with status 2, instead of a traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def limit_blas_threads(argv=None, default=1):
    """Set the BLAS thread count from ``--threads`` (call before importing NumPy)."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--threads", type=int, default=default)
    known, _ = pre.parse_known_args(argv)
    if known.threads > 0 and not any(os.environ.get(n) for n in THREAD_VARIABLES):
        for n in THREAD_VARIABLES:
            os.environ[n] = str(known.threads)


def blas_kernels():
    """Which OpenBLAS kernels NumPy runs (from threadpoolctl when it is installed),
    for a benchmark's report line.  ``OPENBLAS_CORETYPE`` in the environment
    overrides OpenBLAS's own choice; some machines set it (to older kernels)."""
    forced = os.environ.get("OPENBLAS_CORETYPE")
    note = f"OPENBLAS_CORETYPE={forced}" if forced else "detected"
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return f"OpenBLAS kernels not known (no threadpoolctl; {note})"
    archs = sorted({str(i.get("architecture")) for i in threadpool_info()
                    if i.get("internal_api") == "openblas"})
    return f"OpenBLAS {'/'.join(archs) or 'not loaded'} kernels ({note})"


def blas_threads():
    """The BLAS thread setting in force, for the example's report line."""
    for n in THREAD_VARIABLES:
        if os.environ.get(n):
            return os.environ[n]
    return "library default"


def cupy_or_exit(backend):
    """``cupy`` when ``backend == "cupy"`` and it can run; None for "numpy"; else exit(2)."""
    if backend != "cupy":
        return None
    try:
        import cupy
    except ImportError as exc:
        _exit(f"--backend cupy needs CuPy, which is not installed ({exc}). Install it "
              "with pip install '.[gpu]' on a machine with a CUDA GPU, or use --backend numpy.")
    try:
        available = bool(cupy.is_available())
    except Exception as exc:  # a broken CUDA install raises here
        available, why = False, f"{type(exc).__name__}: {exc}"
    else:
        why = "no CUDA GPU was found"
    if not available:
        _exit(f"--backend cupy needs a CUDA GPU, but {why}. Use --backend numpy.")
    return cupy


def _exit(message):
    print(message, file=sys.stderr, flush=True)
    raise SystemExit(2)
