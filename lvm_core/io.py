"""HDF5 save and load of any lvm_core model (and of training checkpoints).

One file holds one model: its class, its hyper-parameters, its parameter
dict ``model.params`` (gradient models), its fitted attributes ending in
``_`` (EM models), and optionally an optimizer state and ``extra`` data
(epoch counters, histories, random-generator states) for checkpoints.  The
container is HDF5 through h5py (The HDF Group, *HDF5 file format
specification*, version 3; Collette 2013, *Python and HDF5*).

Layout of a file (format version 2; version 1 files are still read)::

    /                      attrs: lvm_core_format = "lvm_core.model",
                                  format_version, lvm_core_version,
                                  class_module, class_qualname,
                                  hyper_params (tagged JSON),
                                  has_params, skipped_attributes (JSON list)
                           (text attributes as fixed-length UTF-8 bytes)
    /params/<escaped key>  one dataset per entry of model.params
                           (attr "key": the original key)
    /hyper_params_arrays/  arrays referenced from the hyper_params JSON
    /fitted/               fitted "_" attributes   } "json" dataset + arrays
    /optimizer_state/      (only when given)       } a0, a1, ... referenced
    /extra/                (only when given)       } from the JSON

Parameter keys may contain any character (``"encoder.W0"``, ``"dec/b1"``):
every character outside ``[A-Za-z0-9_-]`` is written as ``%XX`` (UTF-8 bytes)
in the dataset name, and the original key is kept in an attribute.

Nested data (optimizer states, ``extra``, hyper-parameters) is stored as JSON
with a few tags so that the round trip is exact: ``{"__tuple__": [...]}``,
``{"__dict__": [[key, value], ...]}`` for dicts whose keys are not plain
strings, ``{"__array__": "a3"}`` (an array dataset), ``{"__npscalar__":
"a4"}`` (a NumPy scalar such as ``np.float32(0.5)``) and
``{"__generator__": state}`` (a ``numpy.random.Generator``, rebuilt from its
bit-generator state) and ``{"__dataclass__": ["module:qualname", fields]}``
(an lvm_core dataclass such as :class:`lvm_core.train.History`; only classes
under ``lvm_core.`` are rebuilt).  Python floats go through JSON's shortest round-trip
repr; arrays keep their dtype and bits.

Integrity (format version 2).  Files are written with HDF5's newest object
formats (``libver="latest"``), whose superblock, object headers and B-trees
carry checksums; every non-empty dataset (parameters, arrays, and the JSON
text, stored as UTF-8 bytes) is written with the Fletcher-32 checksum filter
(0-d arrays are stored with shape (1,) and the attribute ``scalar``), and
text attributes are fixed-length, so they live inside the checksummed object
headers.  A flipped bit anywhere that :func:`load` reads is reported as a
ValueError naming the file, as are truncated and otherwise damaged files,
never a silently changed parameter.

Arrays on any backend are moved to the host explicitly with
:func:`lvm_core.backend.to_numpy` before writing; :func:`load` returns NumPy
arrays unless ``like=`` names an array whose namespace and device should
receive them (``load(path, like=x_on_gpu)``).

Writes are atomic: the file is written to a temporary file in the same
directory, flushed and fsync'ed, then moved over ``path`` with
:func:`os.replace` (and the directory fsync'ed where the OS allows).  A failure at any point leaves a previous file at
``path`` untouched and removes the temporary file.  A save killed outright
(SIGKILL, power loss) can leave its temporary file ``.<name>.<pid>.<random>.tmp``
behind; nothing reads it, and the next save to the same path removes it once
the process that wrote it is gone.

Only classes defined under ``lvm_core.models`` are rebuilt by :func:`load`
(a file names a class; importing arbitrary modules named in a file would run
arbitrary code).  Classes defined elsewhere (your own models, test models) are
allowed once decorated with :func:`register_model_class`, or when the caller
names the very class with ``load(path, expected_type=MyModel)``.
:func:`load_state` reads any lvm_core file without importing anything.
"""
from __future__ import annotations

import dataclasses
import importlib
import inspect
import json
import os
import tempfile

import numpy as np

from . import __version__
from .backend import _is_array, asarray, to_numpy

__all__ = [
    "FORMAT_VERSION",
    "save",
    "load",
    "load_checkpoint",
    "load_state",
    "register_model_class",
]

FORMAT_NAME = "lvm_core.model"
FORMAT_VERSION = 2
_ALLOWED_PACKAGE = "lvm_core.models"
_REGISTRY: dict = {}
_SAFE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def _h5py():
    import h5py  # a run-time dependency of lvm_core, imported where used

    return h5py


# ----------------------------------------------------------------------------
# class registry
# ----------------------------------------------------------------------------
def _class_key(cls) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def register_model_class(cls):
    """Allow :func:`load` to rebuild ``cls`` although it lives outside ``lvm_core.models``.

    Use as a class decorator::

        @lvm_core.io.register_model_class
        class MyModel(ParamsMixin): ...

    Returns ``cls`` unchanged.  Classes under ``lvm_core.models`` need no
    registration.
    """
    if not inspect.isclass(cls):
        raise TypeError(
            f"register_model_class expects a class; got {type(cls).__name__}. "
            "Use it as a decorator on the class definition."
        )
    _REGISTRY[_class_key(cls)] = cls
    return cls


def _resolve_class(module: str, qualname: str, path):
    key = f"{module}:{qualname}"
    if key in _REGISTRY:
        return _REGISTRY[key]
    if module != _ALLOWED_PACKAGE and not module.startswith(_ALLOWED_PACKAGE + "."):
        raise ValueError(
            f"{os.fspath(path)!r} holds a model of class {key}, which is neither under "
            f"{_ALLOWED_PACKAGE} nor registered; lvm_core only rebuilds classes it knows "
            "(a file must not make it import arbitrary modules). If you trust the file, "
            "import that class and decorate it with lvm_core.io.register_model_class, "
            "or read the raw contents with lvm_core.io.load_state(path)."
        )
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise ValueError(
            f"{os.fspath(path)!r} holds a model of class {key}, which this version of "
            f"lvm_core ({__version__}) does not have ({exc}). Install the lvm_core version "
            "that wrote the file, or read the raw contents with lvm_core.io.load_state(path)."
        ) from None
    if not inspect.isclass(obj):
        raise ValueError(f"{os.fspath(path)!r}: {key} is not a class.")
    return obj


# ----------------------------------------------------------------------------
# key escaping and tagged JSON
# ----------------------------------------------------------------------------
def _escape_key(key: str) -> str:
    """Dataset name for ``key``: bytes outside [A-Za-z0-9_-] become %XX."""
    out = []
    for ch in key:
        if ch in _SAFE_CHARS:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out) or "%"  # "%" alone: the empty key


def _unescape_key(name: str) -> str:
    if name == "%":
        return ""
    data = bytearray()
    i = 0
    while i < len(name):
        if name[i] == "%":
            data.append(int(name[i + 1:i + 3], 16))
            i += 3
        else:
            data.extend(name[i].encode("utf-8"))
            i += 1
    return data.decode("utf-8")


def _check_array_dtype(arr: np.ndarray, where: str):
    if arr.dtype.kind not in "biufc":
        raise TypeError(
            f"{where} is an array of dtype {arr.dtype}; only boolean and numeric arrays "
            "can be saved. Convert it (e.g. strings to integer codes) or leave it out."
        )


def _encode(obj, arrays: list, where: str):
    """``obj`` as tagged JSON; arrays are appended to ``arrays`` and referenced by name."""
    if isinstance(obj, np.generic):  # before float: np.float64 subclasses float
        arr = np.asarray(obj)
        _check_array_dtype(arr, where)
        arrays.append(arr)
        return {"__npscalar__": f"a{len(arrays) - 1}"}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    if isinstance(obj, np.random.Generator):
        return {"__generator__": _encode(obj.bit_generator.state, arrays, where)}
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type) \
            and type(obj).__module__.startswith("lvm_core."):
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return {"__dataclass__": [_class_key(type(obj)), _encode(fields, arrays, where)]}
    if _is_array(obj):
        arr = to_numpy(obj)
        _check_array_dtype(arr, where)
        arrays.append(arr)
        return {"__array__": f"a{len(arrays) - 1}"}
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [_encode(v, arrays, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, dict):
        plain = all(isinstance(k, str) and not k.startswith("__") for k in obj)
        if plain:
            return {k: _encode(v, arrays, f"{where}[{k!r}]") for k, v in obj.items()}
        return {"__dict__": [[_encode(k, arrays, f"{where} key {k!r}"),
                              _encode(v, arrays, f"{where}[{k!r}]")] for k, v in obj.items()]}
    raise TypeError(
        f"{where} has type {type(obj).__name__}, which cannot be saved; expected arrays, "
        "numbers, bools, strings, None, lists/tuples/dicts of those, NumPy Generators "
        "and lvm_core dataclasses (such as History). Convert it, or "
        "leave it out of what is saved."
    )


def _decode(obj, arrays: dict, like):
    if isinstance(obj, list):
        return [_decode(v, arrays, like) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1:
        (tag, value), = obj.items()
        if tag == "__tuple__":
            return tuple(_decode(v, arrays, like) for v in value)
        if tag == "__dict__":
            return {_decode(k, arrays, like): _decode(v, arrays, like) for k, v in value}
        if tag == "__array__":
            return _to_like(arrays[value], like)
        if tag == "__npscalar__":
            return arrays[value][()]
        if tag == "__generator__":
            state = _decode(value, arrays, None)
            cls = getattr(np.random, str(state["bit_generator"]), None)
            if not (inspect.isclass(cls) and issubclass(cls, np.random.BitGenerator)):
                raise ValueError(
                    f"the file names {state['bit_generator']!r} as a bit generator; expected "
                    "one of numpy.random's (PCG64, Philox, ...). The file is damaged."
                )
            bit_generator = cls()
            bit_generator.state = state
            return np.random.Generator(bit_generator)
        if tag == "__dataclass__":
            return _decode_dataclass(value[0], _decode(value[1], arrays, like))
    return {k: _decode(v, arrays, like) for k, v in obj.items()}


def _decode_dataclass(key: str, fields: dict):
    """An lvm_core dataclass instance (e.g. :class:`lvm_core.train.History`)."""
    module, qualname = key.split(":", 1)
    if not module.startswith("lvm_core."):
        raise ValueError(
            f"the file holds a dataclass {key}; only lvm_core dataclasses are rebuilt. "
            "Read the file with a trusted lvm_core version."
        )
    cls = importlib.import_module(module)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    if not dataclasses.is_dataclass(cls):
        raise ValueError(f"the file names {key} as a dataclass, but it is not one.")
    return cls(**fields)


def _to_like(arr: np.ndarray, like):
    if like is None:
        return arr
    return asarray(arr, like=like)


# ----------------------------------------------------------------------------
# sections: tagged JSON + array datasets in one HDF5 group
# ----------------------------------------------------------------------------
def _write_section(parent, name: str, obj, where: str, encoded=None):
    """Group ``name``: dataset "json" (tagged JSON of ``obj``) and arrays a0, a1, ...

    ``encoded=(doc, arrays)`` writes an already encoded object.
    """
    if encoded is None:
        arrays: list = []
        doc = _encode(obj, arrays, where)
    else:
        doc, arrays = encoded
    text = json.dumps(doc)
    group = parent.create_group(name)
    _write_text_dataset(group, "json", text)
    for i, arr in enumerate(arrays):
        _write_array(group, f"a{i}", arr)


def _read_section(group, like):
    text = _read_text_dataset(group["json"])
    arrays = {name: _read_array(group[name]) for name in group if name != "json"}
    return _decode(json.loads(text), arrays, like)


# ----------------------------------------------------------------------------
# checksummed datasets and attributes
# ----------------------------------------------------------------------------
def _write_array(group, name, arr):
    """Dataset ``name`` holding ``arr`` with the Fletcher-32 checksum filter.

    HDF5 filters need chunked storage, which a scalar dataspace cannot have, so
    a 0-d array is stored with shape (1,) and the attribute ``scalar``.  An
    empty array holds no data to protect and is stored plainly.
    """
    arr = np.asarray(arr)
    if arr.size == 0:
        return group.create_dataset(name, data=arr)
    if arr.ndim == 0:
        dataset = group.create_dataset(name, data=arr.reshape(1), fletcher32=True)
        dataset.attrs["scalar"] = True
        return dataset
    return group.create_dataset(name, data=arr, fletcher32=True)


def _read_array(dataset) -> np.ndarray:
    """The array written by :func:`_write_array` (or a plain version-1 dataset)."""
    arr = np.asarray(dataset[()])
    if bool(dataset.attrs.get("scalar", False)):
        arr = arr.reshape(())
    return arr


def _write_text_dataset(group, name, text):
    """UTF-8 bytes of ``text`` as a checksummed uint8 dataset (a variable-length
    string would live in HDF5's global heap, which has no checksum)."""
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    _write_array(group, name, data)


def _read_text_dataset(dataset) -> str:
    if dataset.dtype == np.uint8:
        return _read_array(dataset).tobytes().decode("utf-8")
    return dataset.asstr()[()]  # format version 1: a variable-length string


def _set_text_attr(obj, name, text):
    """A fixed-length UTF-8 attribute: stored inside the (checksummed) object header."""
    obj.attrs[name] = np.bytes_(text.encode("utf-8"))


def _get_text_attr(obj, name, default=None):
    value = obj.attrs.get(name, default)
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value).decode("utf-8")
    return value


# ----------------------------------------------------------------------------
# what a model holds
# ----------------------------------------------------------------------------
def _hyper_params(model) -> dict:
    """``model.get_params()`` or, without it, the ``__init__`` arguments stored on the model."""
    get_params = getattr(model, "get_params", None)
    if callable(get_params):
        try:
            return dict(get_params(deep=False))
        except TypeError:
            return dict(get_params())
    try:
        sig = inspect.signature(type(model).__init__)
    except (TypeError, ValueError):  # pragma: no cover - builtin __init__
        return {}
    return {
        p.name: getattr(model, p.name)
        for p in sig.parameters.values()
        if p.name != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
        and hasattr(model, p.name)
    }


def _encode_fitted(model, arrays: list):
    """Tagged JSON of the fitted attributes (public names ending in ``_``), and the names skipped.

    Attributes that cannot be encoded (e.g. a convergence-monitor object) are
    skipped; their names are returned so that the file can list them.
    """
    doc, skipped = {}, []
    for name, value in vars(model).items():
        if not name.endswith("_") or name.startswith("_"):
            continue
        n_before = len(arrays)
        try:
            doc[name] = _encode(value, arrays, f"fitted attribute {name!r}")
        except TypeError:
            del arrays[n_before:]
            skipped.append(name)
    return doc, sorted(skipped)


# ----------------------------------------------------------------------------
# save
# ----------------------------------------------------------------------------
def save(model, path, optimizer_state=None, extra=None):
    """Write ``model`` (and optionally an optimizer state and extra data) to HDF5 at ``path``.

    Saved: the class (module + qualname), the hyper-parameters
    (``model.get_params()``, or the ``__init__`` arguments stored on the model),
    ``model.params`` when it is a dict of arrays, every public fitted attribute
    ending in ``_`` that is an array, a number, a bool, a string or None, or a
    list/tuple/dict of those (others, such as a convergence-monitor object, are
    skipped and their names listed in the file's ``skipped_attributes``), then
    ``optimizer_state`` and ``extra`` (nested dicts/lists of arrays, numbers,
    strings; NumPy Generators are saved through their bit-generator state).

    Arrays of any backend are copied to the host with
    :func:`lvm_core.backend.to_numpy`; dtypes and bits are preserved.

    The write is atomic (temporary file in the same directory, flushed,
    fsync'ed, then :func:`os.replace`): if anything fails, a previous file at
    ``path`` is left intact and no temporary file remains.

    Raises TypeError naming the offending entry when a hyper-parameter, a
    parameter, the optimizer state or ``extra`` holds something that cannot
    be saved.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"cannot save to {path!r}: the directory {directory!r} does not exist. "
            "Create it first (os.makedirs(directory, exist_ok=True))."
        )
    _remove_stale_temporaries(directory, os.path.basename(path))
    fd, tmp_path = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.{os.getpid()}.", suffix=".tmp", dir=directory
    )
    os.close(fd)
    try:
        with _h5py().File(tmp_path, "w", libver="latest") as f:
            _write_model(f, model, optimizer_state, extra)
            f.flush()
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    _fsync_directory(directory)


def _remove_stale_temporaries(directory, basename):
    """Delete ``.<basename>.<pid>.<random>.tmp`` files left by saves that were killed.

    Only files whose writing process no longer exists are removed, so a save
    running concurrently in another process keeps its temporary file.
    """
    prefix = f".{basename}."
    try:
        names = os.listdir(directory)
    except OSError:  # pragma: no cover - unreadable directory: nothing to tidy
        return
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".tmp")):
            continue
        pid_text = name[len(prefix):-len(".tmp")].split(".", 1)[0]
        if not pid_text.isdigit() or _process_alive(int(pid_text)):
            continue
        try:
            os.remove(os.path.join(directory, name))
        except OSError:  # pragma: no cover - removed by someone else meanwhile
            pass


def _process_alive(pid) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but belongs to someone else, or cannot tell: keep it
    return True


def _fsync_directory(directory):
    """Make the rename durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # pragma: no cover - e.g. Windows
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover - file systems without directory fsync
        pass
    finally:
        os.close(fd)


def _write_model(f, model, optimizer_state, extra):
    """The body of :func:`save`: everything written into the open HDF5 file ``f``."""
    cls = type(model)
    _set_text_attr(f, "lvm_core_format", FORMAT_NAME)
    f.attrs["format_version"] = FORMAT_VERSION
    _set_text_attr(f, "lvm_core_version", __version__)
    _set_text_attr(f, "class_module", cls.__module__)
    _set_text_attr(f, "class_qualname", cls.__qualname__)

    hyper_arrays: list = []
    hyper_doc = {
        name: _encode(value, hyper_arrays, f"hyper-parameter {name!r} of {cls.__name__}")
        for name, value in _hyper_params(model).items()
    }
    _set_text_attr(f, "hyper_params", json.dumps(hyper_doc))
    group = f.create_group("hyper_params_arrays")
    for i, arr in enumerate(hyper_arrays):
        _write_array(group, f"a{i}", arr)

    params = getattr(model, "params", None)
    f.attrs["has_params"] = isinstance(params, dict)
    if isinstance(params, dict):
        group = f.create_group("params")
        for key, value in params.items():
            if not isinstance(key, str):
                raise TypeError(
                    f"model.params keys must be strings; got {key!r} "
                    f"({type(key).__name__}). Name parameters with strings such as 'W0'."
                )
            if not _is_array(value):
                raise TypeError(
                    f"model.params[{key!r}] must be an array; got {type(value).__name__}. "
                    "Store parameters as arrays (0-d arrays for scalars)."
                )
            arr = to_numpy(value)
            _check_array_dtype(arr, f"model.params[{key!r}]")
            dataset = _write_array(group, _escape_key(key), arr)
            _set_text_attr(dataset, "key", key)

    fitted_arrays: list = []
    fitted_doc, skipped = _encode_fitted(model, fitted_arrays)
    _set_text_attr(f, "skipped_attributes", json.dumps(skipped))
    _write_section(f, "fitted", None, "fitted attributes", encoded=(fitted_doc, fitted_arrays))
    if optimizer_state is not None:
        _write_section(f, "optimizer_state", optimizer_state, "optimizer_state")
    if extra is not None:
        _write_section(f, "extra", extra, "extra")


# ----------------------------------------------------------------------------
# load
# ----------------------------------------------------------------------------
def _damaged(path, what, exc=None):
    """The ValueError for a file whose contents cannot be trusted."""
    cause = f" ({type(exc).__name__}: {exc})" if exc is not None else ""
    return ValueError(
        f"{os.fspath(path)!r} is damaged or truncated: {what}{cause}. The file cannot be "
        "trusted; restore it from a backup or save the model again."
    )


def _open(path):
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"no lvm_core model file at {path!r}. Check the path (the current directory "
            f"is {os.getcwd()!r}), or create the file with lvm_core.io.save(model, path)."
        )
    h5py = _h5py()
    if not h5py.is_hdf5(path):
        raise ValueError(
            f"{path!r} is not an HDF5 file, so it was not written by lvm_core.io.save. "
            "Pass the path of a file written by lvm_core.io.save."
        )
    try:
        f = h5py.File(path, "r")
    except Exception as exc:  # h5py raises OSError, RuntimeError, ... for broken files
        raise _damaged(path, "HDF5 could not open it", exc) from None
    try:
        found = _get_text_attr(f, "lvm_core_format", None)
        raw_version = f.attrs.get("format_version", -1)
    except Exception as exc:
        f.close()
        raise _damaged(path, "its header attributes cannot be read", exc) from None
    if found != FORMAT_NAME:
        f.close()
        raise ValueError(
            f"{path!r} is an HDF5 file but not an lvm_core model file (attribute "
            f"'lvm_core_format' is {found!r}, expected {FORMAT_NAME!r}). Pass a file "
            "written by lvm_core.io.save; for other HDF5 data use h5py directly."
        )
    try:
        version = int(raw_version)
    except (TypeError, ValueError):
        f.close()
        raise _damaged(path, f"its format_version {raw_version!r} is not an integer") from None
    if version > FORMAT_VERSION or version < 1:
        writer = _get_text_attr(f, "lvm_core_version", "unknown")
        f.close()
        raise ValueError(
            f"{path!r} has lvm_core file format version {version} (written by lvm_core "
            f"{writer}); this lvm_core ({__version__}) reads format versions 1 to "
            f"{FORMAT_VERSION}. Upgrade lvm_core to read it."
        )
    return f


def load_state(path, like=None) -> dict:
    """The raw contents of a file written by :func:`save`, without rebuilding the model.

    Returns a dict with keys ``"class"`` (``"module:qualname"``),
    ``"hyper_params"``, ``"params"`` (dict of arrays, or None when the model
    had none), ``"fitted"`` (dict), ``"optimizer_state"`` and ``"extra"``
    (None when not saved), ``"format_version"``, ``"lvm_core_version"`` and
    ``"skipped_attributes"``.  Arrays are NumPy, or on the namespace/device of
    ``like`` when given.  No class is imported, so any lvm_core file can be
    inspected (training loops use it to resume into an existing model).

    Raises ValueError naming the file when it is damaged: a checksum that
    does not match (a flipped bit), a truncated file, missing or unreadable
    parts.
    """
    with _open(path) as f:
        try:
            state = _read_state(f, like)
        except ValueError as exc:
            if "bit generator" in str(exc) or "dataclass" in str(exc):
                raise  # a readable file whose content names something unusable
            raise _damaged(path, "a part of it cannot be decoded", exc) from None
        except Exception as exc:  # OSError (checksum, truncation), KeyError, ...
            raise _damaged(path, "a part of it cannot be read", exc) from None
    return state


def _read_state(f, like) -> dict:
    """Everything in an open lvm_core file (arrays on ``like``'s device when given)."""
    hyper_arrays = {name: _read_array(ds) for name, ds in f["hyper_params_arrays"].items()}
    state = {
        "class": f"{_get_text_attr(f, 'class_module')}:{_get_text_attr(f, 'class_qualname')}",
        "format_version": int(f.attrs["format_version"]),
        "lvm_core_version": str(_get_text_attr(f, "lvm_core_version")),
        "hyper_params": _decode(json.loads(_get_text_attr(f, "hyper_params")), hyper_arrays,
                                like),
        "skipped_attributes": json.loads(_get_text_attr(f, "skipped_attributes")),
        "params": None,
        "fitted": _read_section(f["fitted"], like),
        "optimizer_state": None,
        "extra": None,
    }
    if bool(f.attrs["has_params"]):
        state["params"] = {
            str(_get_text_attr(ds, "key")): _to_like(_read_array(ds), like)
            for ds in f["params"].values()
        }
    for name in ("optimizer_state", "extra"):
        if name in f:
            state[name] = _read_section(f[name], like)
    return state


def _build_model(state, path, expected_type):
    module, qualname = state["class"].split(":", 1)
    if expected_type is not None and not inspect.isclass(expected_type):
        raise TypeError(
            f"expected_type must be a class or None; got {type(expected_type).__name__}."
        )
    mismatch = TypeError(
        f"{os.fspath(path)!r} holds a {state['class']} model, but expected_type="
        f"{None if expected_type is None else _class_key(expected_type)}. Load it with "
        "the matching expected_type (or expected_type=None), or pick the right file."
    )
    if expected_type is not None and state["class"] == _class_key(expected_type):
        cls = expected_type  # the caller names the class: trusted like a registered one
    elif expected_type is not None:
        try:
            cls = _resolve_class(module, qualname, path)
        except ValueError:
            raise mismatch from None
        if not issubclass(cls, expected_type):
            raise mismatch
    else:
        cls = _resolve_class(module, qualname, path)
    try:
        model = cls(**state["hyper_params"])
    except Exception as exc:
        raise TypeError(
            f"could not rebuild {state['class']} from the hyper-parameters saved in "
            f"{os.fspath(path)!r} ({type(exc).__name__}: {exc}). The class may have "
            "changed since the file was written; use the lvm_core version that wrote it "
            "or read the raw contents with lvm_core.io.load_state(path)."
        ) from exc
    if state["params"] is not None:
        model.params = state["params"]
    for name, value in state["fitted"].items():
        setattr(model, name, value)
    return model


def load(path, expected_type=None, like=None):
    """Rebuild the model saved at ``path`` by :func:`save`.

    The class is constructed from the saved hyper-parameters, then
    ``model.params`` and the fitted ``_`` attributes are set from the file
    (bit-exact, dtypes preserved).  Arrays come back as NumPy arrays; pass
    ``like=some_array`` to put them on that array's namespace and device
    (e.g. a CuPy array to load onto the GPU).

    Raises FileNotFoundError for a missing file; ValueError for a file that is
    not HDF5, not an lvm_core file, of a newer format version, or of a class
    that is neither under ``lvm_core.models``, nor registered with
    :func:`register_model_class`, nor ``expected_type`` itself; TypeError when
    ``expected_type`` is given and the file holds a class that is not it or a
    subclass of it.
    """
    state = load_state(path, like=like)
    return _build_model(state, path, expected_type)


def load_checkpoint(path, like=None, expected_type=None):
    """``(model, optimizer_state, extra)`` from a file written by ``save(model, path, ...)``.

    ``optimizer_state`` and ``extra`` are None when they were not saved.  See
    :func:`load` for ``like``, ``expected_type`` and the errors raised.
    """
    state = load_state(path, like=like)
    model = _build_model(state, path, expected_type)
    return model, state["optimizer_state"], state["extra"]
