"""Input checks that raise clear errors.

Every message names the argument, what was expected, what was received and
how to fix it.  These helpers never modify the caller's arrays and never use
``assert`` (which ``python -O`` removes).  They work on any array-API backend;
the NaN/inf checks reduce on the device and bring back one boolean.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from .backend import get_namespace, namespace_name

__all__ = [
    "NotFittedError",
    "check_not_sparse",
    "not_fitted_error",
    "check_array",
    "check_finite",
    "check_magnitude",
    "check_lengths",
    "check_is_fitted",
    "check_positive_int",
    "check_choice",
    "check_probability_vector",
]


class NotFittedError(ValueError, AttributeError):
    """Raised when a model is used before ``fit`` (or before parameters are set).

    When scikit-learn has been imported, the error raised is also an instance
    of ``sklearn.exceptions.NotFittedError`` (see :func:`not_fitted_error`), so
    that scikit-learn's tools recognise it; lvm_core never imports scikit-learn.
    """


_SKLEARN_NOT_FITTED: dict = {}


def not_fitted_error(message):
    """A :class:`NotFittedError` for ``message``; also scikit-learn's NotFittedError
    when scikit-learn is already imported in this process."""
    import sys

    sk_exceptions = sys.modules.get("sklearn.exceptions")
    sk_class = getattr(sk_exceptions, "NotFittedError", None)
    if sk_class is None:
        return NotFittedError(message)
    cls = _SKLEARN_NOT_FITTED.get(sk_class)
    if cls is None:
        cls = type("NotFittedError", (NotFittedError, sk_class), {"__module__": __name__})
        _SKLEARN_NOT_FITTED[sk_class] = cls
    return cls(message)


def _describe(x) -> str:
    shape = getattr(x, "shape", None)
    dtype = getattr(x, "dtype", None)
    if shape is not None:
        return f"{namespace_name(get_namespace(x))} array of shape {tuple(shape)} and dtype {dtype}"
    return f"{type(x).__name__}"


def check_array(x, name, ndim=None, dtype_kind=None, allow_nan=False,
                allow_inf=False, min_rows=1, n_features=None, xp_like=None):
    """Validate an array argument and return it as an array of its namespace.

    Parameters
    ----------
    x : array or nested sequence
        Lists and tuples are converted with NumPy (or with the namespace of
        ``xp_like`` when given).
    name : str
        Argument name used in error messages.
    ndim : int or tuple of int, optional
        Allowed numbers of dimensions.
    dtype_kind : {"real floating", "integral", "numeric"}, optional
        Required dtype kind (array API ``isdtype`` kinds).
    allow_nan, allow_inf : bool
        Whether NaN / infinite values are allowed (floating arrays only).
    min_rows : int
        Minimum length of the first axis (empty data is rejected by default).
    n_features : int, optional
        Required size of the last axis (for 2-D data).
    """
    check_not_sparse(x, name)
    if not hasattr(x, "shape") or not hasattr(x, "dtype"):
        if isinstance(x, (str, bytes)) or x is None:
            raise TypeError(
                f"{name} must be an array; got {type(x).__name__}. "
                f"Pass a numpy (or cupy) array."
            )
        if xp_like is not None:
            xp = get_namespace(xp_like)
            x = xp.asarray(np.asarray(x), device=getattr(xp_like, "device", None))
        else:
            try:
                x = np.asarray(x)
            except ValueError:
                x = np.asarray(x, dtype=object)
            if x.dtype == object:
                try:
                    x = x.astype(np.float64)
                except (TypeError, ValueError):
                    raise TypeError(
                        f"{name} could not be converted to a numeric array (got a ragged "
                        "or non-numeric sequence). Pass a rectangular numeric array."
                    ) from None
    x = _as_numeric(x, name)
    xp = get_namespace(x)
    if xp.isdtype(x.dtype, "complex floating"):
        raise ValueError(
            f"Complex data not supported: {name} must be real-valued; got {_describe(x)}. "
            "lvm_core does not drop "
            "imaginary parts silently: pass X.real (or stack X.real and X.imag as "
            "separate features) if that is what you mean."
        )
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if x.ndim not in allowed:
            hint = ""
            if 2 in allowed and x.ndim == 1:
                hint = (" Reshape your data: X.reshape(-1, 1) for a single feature, or "
                        "X.reshape(1, -1) for a single sample.")
            raise ValueError(
                f"{name} must have {' or '.join(map(str, allowed))} dimension(s); got "
                f"{_describe(x)}.{hint}"
            )
    if dtype_kind is not None and not xp.isdtype(x.dtype, dtype_kind):
        raise TypeError(
            f"{name} must have a {dtype_kind} dtype; got {_describe(x)}. "
            f"Convert it, e.g. with .astype(...)."
        )
    if x.ndim >= 1 and x.shape[0] < min_rows:
        raise ValueError(
            f"{name} must have at least {min_rows} row(s) (samples); got "
            f"n_samples={x.shape[0]} in {_describe(x)}. "
            "Pass non-empty data."
        )
    if x.ndim >= 2 and x.shape[-1] == 0:
        raise ValueError(
            f"{name} must have at least one feature (last axis): found 0 feature(s) "
            f"(shape={tuple(x.shape)}) while a minimum of 1 is required. Pass data with "
            "one or more columns."
        )
    if n_features is not None and x.ndim >= 2 and x.shape[-1] != n_features:
        raise ValueError(
            f"{name} must have {n_features} features (last axis) to match the model; "
            f"got {_describe(x)}. Use data with the same features the model was fitted on."
        )
    if xp.isdtype(x.dtype, "real floating"):
        check_finite(x, name, allow_nan=allow_nan, allow_inf=allow_inf)
    return x


def check_not_sparse(x, name):
    """TypeError for SciPy sparse matrices/arrays (and other formats with ``nnz``)."""
    module = type(x).__module__ or ""
    if module.startswith("scipy.sparse") or (hasattr(x, "nnz") and hasattr(x, "toarray")):
        shape = getattr(x, "shape", None)
        raise TypeError(
            f"{name} is a sparse matrix ({type(x).__name__} of shape {shape}); lvm_core "
            "models need dense arrays. Densify it with X.toarray() if it fits in memory, "
            "or reduce its dimension first (e.g. a truncated SVD)."
        )


def _as_numeric(x, name):
    """NumPy object arrays of numbers become float64 (as scikit-learn does); object
    arrays holding anything else, and string, bytes, void and datetime arrays, raise
    TypeError."""
    kind = getattr(getattr(x, "dtype", None), "kind", None)
    if not isinstance(x, np.ndarray):
        return x
    if kind == "O":
        try:
            return x.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"{name} must hold numbers; got a NumPy array of dtype object and shape "
                f"{x.shape} whose entries are not all numbers ({exc}). Convert it to a "
                "numeric dtype, or encode categories as integer codes."
            ) from None
    if kind in ("U", "S", "V", "M", "m"):
        raise TypeError(
            f"{name} must hold numbers; got a NumPy array of dtype {x.dtype} and shape "
            f"{x.shape}. Convert it to a numeric dtype (e.g. X.astype(np.float64)), or "
            "encode categories as integer codes."
        )
    return x


def _max_abs_bits(bits, mask):
    """max_i (bits_i & mask) over a flat integer view of float data: with ``mask``
    clearing the sign bit, the bit pattern of max |x_i| -- or one at or above the
    exponent mask when some x_i is inf or NaN (IEEE 754 orders |x| like its bits).
    An integer reduction, so LLVM vectorises it without any fast-math assumption."""
    m = bits[0] & mask
    for i in range(bits.size):
        v = bits[i] & mask
        m = v if v > m else m
    return m


_max_abs_bits_jit = None
_BIT_VIEWS = {np.dtype(np.float32): (np.int32, 0x7FFFFFFF, 0x7F800000),
              np.dtype(np.float64): (np.int64, 0x7FFFFFFFFFFFFFFF, 0x7FF0000000000000)}


def _numpy_max_abs(x):
    """(finite, max |x|) of a non-empty C-contiguous NumPy float32/float64 array in one
    pass over memory (:func:`_max_abs_bits`), or None for anything else."""
    global _max_abs_bits_jit
    view = _BIT_VIEWS.get(getattr(x, "dtype", None)) if type(x) is np.ndarray else None
    if view is None or x.size == 0 or not x.flags.c_contiguous:
        return None
    if _max_abs_bits_jit is None:
        from ._jit import njit

        _max_abs_bits_jit = njit(nogil=True)(_max_abs_bits)
    int_type, mask, exponent = view
    top = int(_max_abs_bits_jit(x.reshape(-1).view(int_type), int_type(mask)))
    if top >= exponent:
        return False, math.inf
    return True, float(np.array(top, dtype=int_type).view(x.dtype))


def _binary_defect(flat):
    """sum_i |v_i (1 - v_i)| over a flat float array: 0 exactly when every entry is 0
    or 1 (a sum of non-negative terms cannot cancel, NaN and inf make it NaN or inf,
    and the smallest defect, at a subnormal v or at v = 1 - eps, is still positive)."""
    if flat.size == 0:
        return 0.0
    acc = flat[0] - flat[0]  # 0 in the data's dtype (NaN when flat[0] is not finite)
    for i in range(flat.size):
        v = flat[i]
        acc += abs(v - v * v)  # |v (1 - v)|
    return acc


_binary_defect_jit = None


def all_binary(x):
    """True when every entry of the array ``x`` is 0 or 1 (NaN is not)."""
    global _binary_defect_jit
    if type(x) is np.ndarray and x.dtype in (np.float32, np.float64) and x.flags.c_contiguous:
        if _binary_defect_jit is None:
            from ._jit import njit

            # reassociation lets LLVM vectorise the sum; no other fast-math (NaN must stay)
            _binary_defect_jit = njit(nogil=True, fastmath={"reassoc"})(_binary_defect)
        return float(_binary_defect_jit(x.reshape(-1))) == 0.0
    xp = get_namespace(x)
    return bool(xp.all((x == 0) | (x == 1)))


def check_finite(x, name, allow_nan=False, allow_inf=False):
    """Raise ValueError if ``x`` holds NaN (unless allowed) or inf (unless allowed)."""
    if not (allow_nan or allow_inf):
        scan = _numpy_max_abs(x)
        if scan is not None and scan[0]:
            return x
    xp = get_namespace(x)
    if not allow_nan and bool(xp.any(xp.isnan(x))):
        raise ValueError(
            f"{name} contains NaN; got {_describe(x)}. Remove or impute missing "
            "values first (HMMs accept all-NaN rows with allow_missing=True)."
        )
    if not allow_inf and bool(xp.any(xp.isinf(x))):
        raise ValueError(
            f"{name} contains infinite values; got {_describe(x)}. Check the data "
            "for overflow or division by zero."
        )
    return x


def check_magnitude(x, name, dtype=None):
    """Raise ValueError when sums of squares of ``x`` (N, ...) could overflow its dtype:
    max |x_ij|^2 * N must stay below the largest finite number (about 1.8e308 in
    float64, 3.4e38 in float32), so that means, variances and second moments of the
    data are finite.  Integer and boolean data pass (they are converted to float64
    first, where their range is far inside the bound).  ``dtype`` (a dtype or its
    name): the floating type the data will be computed in, when not x's own."""
    xp = get_namespace(x)
    if not xp.isdtype(x.dtype, "real floating") or x.ndim == 0 or x.shape[0] == 0 \
            or 0 in tuple(x.shape):
        return x
    target = x.dtype if dtype is None else dtype
    largest = float(np.finfo(np.dtype(str(target).rsplit(".", 1)[-1])).max)
    scan = _numpy_max_abs(x)
    if scan is not None and not scan[0]:
        return x  # inf or NaN: check_finite's business, as before (max |x| is not > bound)
    biggest = float(xp.max(xp.abs(x))) if scan is None else scan[1]
    bound = (largest / max(int(x.shape[0]), 1)) ** 0.5
    if biggest > bound:
        raise ValueError(
            f"{name} has values too large for {str(target).rsplit('.', 1)[-1]} arithmetic: "
            f"max |{name}| = "
            f"{biggest:.3g}, while sums of squares over its {x.shape[0]} rows need max |{name}| "
            f"<= {bound:.3g}. Rescale the data first (e.g. divide by its standard deviation, "
            "or scikit-learn's StandardScaler)."
        )
    return x


def check_lengths(lengths, n_samples, name="lengths"):
    """Validate sequence lengths; return them as a NumPy int64 array.

    ``lengths=None`` means one sequence of length ``n_samples``.  Lengths must
    be positive integers summing to ``n_samples``.
    """
    if lengths is None:
        return np.array([n_samples], dtype=np.int64)
    if hasattr(lengths, "shape") and not isinstance(lengths, np.ndarray):
        from .backend import to_numpy

        lengths = to_numpy(lengths)
    arr = np.asarray(lengths)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"{name} must be a non-empty 1-D sequence of sequence lengths; got shape "
            f"{arr.shape}. Pass e.g. lengths=[len(x1), len(x2)] for X = concat(x1, x2)."
        )
    if not np.issubdtype(arr.dtype, np.integer):
        if np.issubdtype(arr.dtype, np.floating) and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must contain integers; got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if np.any(arr <= 0):
        bad = int(np.flatnonzero(arr <= 0)[0])
        raise ValueError(
            f"{name} must contain positive lengths; {name}[{bad}] = {int(arr[bad])}. "
            "Drop empty sequences before fitting."
        )
    total = int(arr.sum())
    if total != n_samples:
        raise ValueError(
            f"{name} must sum to the number of samples in X ({n_samples}); they sum to "
            f"{total}. Check that X is the concatenation of the sequences."
        )
    return arr


def check_is_fitted(model, attributes):
    """Raise NotFittedError unless every attribute in ``attributes`` is set."""
    if isinstance(attributes, str):
        attributes = [attributes]
    missing = [a for a in attributes if getattr(model, a, None) is None]
    if missing:
        raise not_fitted_error(
            f"This {type(model).__name__} instance is not fitted yet (missing "
            f"{', '.join(missing)}). Call fit(X) first, or set the parameters yourself."
        )


def check_positive_int(value, name, minimum=1):
    """``value`` as an int >= ``minimum``; bools and non-integers rejected."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    if int(value) < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {int(value)}.")
    return int(value)


def check_choice(value, name, choices):
    """``value`` if it is one of ``choices``, else ValueError listing them."""
    if value not in choices:
        raise ValueError(
            f"{name} must be one of {', '.join(repr(c) for c in choices)}; got {value!r}."
        )
    return value


def check_probability_vector(p, name, axis=-1, atol=1e-6):
    """Raise ValueError unless ``p`` is non-negative and sums to 1 along ``axis``."""
    xp = get_namespace(p)
    if bool(xp.any(p < 0)) or bool(xp.any(xp.isnan(p))):
        raise ValueError(f"{name} must be non-negative probabilities; got negative or NaN entries.")
    total = xp.sum(p, axis=axis)
    if bool(xp.any(xp.abs(total - 1.0) > atol)):
        raise ValueError(
            f"{name} must sum to 1 along axis {axis}; got sums between "
            f"{float(xp.min(total)):.6g} and {float(xp.max(total)):.6g}. Normalise it first."
        )
    return p
