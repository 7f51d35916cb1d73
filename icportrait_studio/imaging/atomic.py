"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Every file the app writes (images, projects, exports, reports, settings) goes through ``atomic_write``:
a temp file in the target's folder, fsync, the permissions any saved file gets (or the mode the old
file had: the temp file starts private), a rename over the target, then an fsync of the folder so the
rename survives a power cut. An OS failure becomes an ``InputError`` worded for a person.
A temp file still being written when the process exits (the app quit while a background save ran
on, past the worker's shutdown wait) is removed at exit, so no hidden half-file is left beside the
user's results.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import stat
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from icportrait_studio.errors import InputError


def atomic_write(path: str | Path, write: Callable[[str], object], *, suffix: str | None = None) -> None:
    """Call ``write(temp_path)`` (what it returns is ignored), then move the temp file over ``path``.

    On any failure the temp file is removed and ``path`` is untouched."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix or path.suffix)
    except OSError as exc:
        raise InputError(f"Cannot save '{path}': {describe_os_error(exc)}") from exc
    os.close(fd)
    with _unfinished_lock:
        _unfinished.add(tmp)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, mode_for(path))
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise InputError(f"Cannot save '{path}': {describe_os_error(exc)}") from exc
        raise
    finally:
        with _unfinished_lock:
            _unfinished.discard(tmp)
    _fsync_directory(path.parent)


_unfinished: set[str] = set()  # temp files being written right now, by any thread
_unfinished_lock = threading.Lock()


@atexit.register
def remove_unfinished() -> None:
    """Delete the temp files of writes still running at exit (daemon threads stop mid-write then)."""
    with _unfinished_lock:
        paths = list(_unfinished)
        _unfinished.clear()
    for tmp in paths:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def describe_os_error(exc: OSError) -> str:
    if isinstance(exc, PermissionError):
        return "permission denied"
    return exc.strerror or str(exc) or type(exc).__name__


def mode_for(path: str | Path) -> int:
    """Keep an existing file's permissions; new files get the usual 0666 & ~umask."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return 0o666 & ~_umask()


@functools.cache
def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it; done once
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); best effort."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
