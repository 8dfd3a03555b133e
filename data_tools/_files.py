"""File helpers shared by the writers: atomic replacement (write to a temporary
file in the destination folder, then ``os.replace``), so that an interrupted
write never leaves a partial file under the final name.

Reference: POSIX.1-2017, rename(2): "If the link named by the new argument
exists, it shall be removed and old renamed to new ... a link named new shall
remain visible to other threads throughout the renaming operation" (the
replacement is atomic within one file system, hence the temporary file is
created in the destination folder)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_path"]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception the temporary file is removed and the exception re-raised;
    an existing file at ``path`` is left untouched.  The new file gets the
    usual permissions (0o644), not mkstemp's 0o600.
    """
    path = Path(os.fspath(path))
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise FileNotFoundError(
            f"cannot write {str(path)!r}: its folder {str(parent)!r} does not exist. "
            f"Create it first (os.makedirs)."
        )
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
