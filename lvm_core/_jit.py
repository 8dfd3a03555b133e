"""numba for lvm_core: a disk cache that works in any install, and a word when compiling.

Every numba kernel in lvm_core is declared with :func:`njit` from this module
instead of ``numba.njit``.  It adds two things:

* **A cache directory that works.**  numba caches compiled kernels next to the
  source (``__pycache__``) or in the user's cache directory; in a read-only
  install without a writable home neither exists, and ``cache=True`` fails at
  import with "no locator available".  :func:`cache_dir` picks, once per
  process, the first writable one of: ``$NUMBA_CACHE_DIR`` (the user's choice
  always wins), the package's own ``__pycache__``, ``$XDG_CACHE_HOME`` or
  ``~/.cache`` + ``lvm_core/numba``, and the system temporary directory +
  ``lvm_core-numba-<user>``.  If none is writable, kernels are compiled
  without a disk cache (every process compiles again) and one warning says so.
* **One line per compiled kernel.**  The first call of a kernel for new input
  types compiles it (seconds, once: later processes load it from the cache).
  A listener on numba's ``numba:compile`` event prints, to stderr,
  ``lvm_core: compiled <kernel> in 2.4 s (once; cached in <dir>)`` for each
  lvm_core kernel that numba actually compiles; loads from the cache print
  nothing.  Set ``LVM_CORE_QUIET_COMPILE=1`` to silence it.
"""
from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import warnings

import numba

__all__ = ["njit", "cache_dir"]

_LOCK = threading.Lock()
_STATE: dict = {}


def _writable(directory) -> bool:
    """True when a file can be created in ``directory`` (created if missing)."""
    try:
        os.makedirs(directory, exist_ok=True)
        tempfile.TemporaryFile(dir=directory).close()
    except OSError:
        return False
    return True


def _user_name() -> str:
    try:
        return str(os.getuid())
    except AttributeError:  # pragma: no cover - Windows
        return os.environ.get("USERNAME", "user")


def _candidates():
    """Where a cache may go, in order of preference: (label, directory or None)."""
    package = os.path.dirname(os.path.abspath(__file__))
    yield "package", os.path.join(package, "__pycache__")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    yield "user", os.path.join(base, "lvm_core", "numba")
    yield "temporary", os.path.join(tempfile.gettempdir(), f"lvm_core-numba-{_user_name()}")


def cache_dir():
    """The directory numba caches lvm_core's kernels in, or None when none is writable.

    Decided once per process (see the module docstring).  When the choice is
    not numba's own default (the package's ``__pycache__``), numba's
    ``config.CACHE_DIR`` is pointed at it.
    """
    with _LOCK:
        if "dir" in _STATE:
            return _STATE["dir"]
        chosen = None
        user_dir = os.environ.get("NUMBA_CACHE_DIR") or numba.config.CACHE_DIR
        if user_dir:
            chosen = user_dir
        else:
            for label, directory in _candidates():
                if _writable(directory):
                    chosen = directory
                    if label != "package":
                        numba.config.CACHE_DIR = directory
                    break
        if chosen is None:
            warnings.warn(
                "lvm_core: no writable directory for numba's kernel cache (the install is "
                "read-only and neither ~/.cache nor the temporary directory is writable); "
                "kernels are compiled in every process. Set NUMBA_CACHE_DIR to a writable "
                "directory to cache them.",
                RuntimeWarning,
                stacklevel=3,
            )
        _STATE["dir"] = chosen
        return chosen


class _CompileReporter(numba.core.event.Listener):
    """Prints one line for each lvm_core kernel that numba compiles (not for cache loads)."""

    def __init__(self):
        self._local = threading.local()

    def _stack(self):
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def on_start(self, event):
        self._stack().append(time.perf_counter())

    def on_end(self, event):
        stack = self._stack()
        started = stack.pop() if stack else time.perf_counter()
        if stack:  # a kernel compiled while compiling another: report the outer one only
            return
        dispatcher = (event.data or {}).get("dispatcher")
        py_func = getattr(dispatcher, "py_func", None)
        module = getattr(py_func, "__module__", "") or ""
        if not module.startswith(_STATE.get("report_prefix", "lvm_core")):
            return
        if os.environ.get("LVM_CORE_QUIET_COMPILE") == "1":
            return
        where = _STATE.get("dir")
        cached = f"cached in {where}" if where else "not cached: no writable cache directory"
        print(
            f"lvm_core: compiled {module}.{py_func.__name__} in "
            f"{time.perf_counter() - started:.1f} s (once; {cached})",
            file=sys.stderr,
            flush=True,
        )


def _install_reporter():
    with _LOCK:
        if "reporter" not in _STATE:
            _STATE["reporter"] = _CompileReporter()
            numba.core.event.register("numba:compile", _STATE["reporter"])


def njit(*args, **options):
    """``numba.njit`` with ``cache=True`` where a cache directory is available.

    Used exactly like ``numba.njit`` (``@njit``, ``@njit(...)``, or
    ``njit(signature, ...)``).  ``cache=False`` may be passed explicitly.
    """
    _install_reporter()
    want_cache = options.pop("cache", True)
    options["cache"] = bool(want_cache) and cache_dir() is not None
    if len(args) == 1 and callable(args[0]):
        return numba.njit(**options)(args[0])
    return numba.njit(*args, **options)
