"""Portable file locks (``filelock``) for whoever writes: to a Label Studio project, or to a pull file.

A lock is released by the OS when its process dies, however it dies, so a crash never leaves
a project locked. They serialise writers on one machine (or sharing one cache dir); the
duplicate reconcile in :meth:`~.client.Connector.push` covers writers elsewhere.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import LabelloopError
from .errors import LabelStudioError

__all__ = ["LOCK_TIMEOUT_SECONDS", "file_lock", "output_lock", "project_lock"]

LOCK_TIMEOUT_SECONDS = 600.0


def _lock_dir() -> Path:
    from ..embeddings import default_cache_dir

    for base in (default_cache_dir(), Path(tempfile.gettempdir()) / "labelloop"):
        try:
            (base / "locks").mkdir(parents=True, exist_ok=True)
            return base / "locks"
        except OSError:
            continue
    raise LabelloopError(f"cannot create a lock directory under {default_cache_dir()} or the temp dir")


@contextmanager
def file_lock(path: Path, busy: str, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[Path]:
    """Hold the lock file ``path``; after ``timeout`` seconds of waiting, fail with ``busy``."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path), timeout=timeout)
    try:
        lock.acquire()
    except Timeout:
        raise LabelStudioError(busy) from None
    except OSError as exc:
        raise LabelloopError(f"cannot create the lock file {path}: {exc.strerror or exc}") from None
    try:
        yield path
    finally:
        lock.release()


@contextmanager
def project_lock(url: str, project_id: int, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[Path]:
    """The writer lock of one project: ``<cache dir>/locks/<sha of url + project id>.lock``."""
    key = hashlib.sha256(f"{url.rstrip('/')}\n{project_id}".encode()).hexdigest()[:24]
    path = _lock_dir() / f"{key}.lock"
    busy = (
        f"another labelloop process has been writing to project {project_id} for {timeout:.0f} s "
        f"(lock {path}); try again when it is done"
    )
    with file_lock(path, busy, timeout):
        yield path


@contextmanager
def output_lock(path: Path, timeout: float = LOCK_TIMEOUT_SECONDS) -> Iterator[Path]:
    """The lock of one output file (e.g. ``pull --out``), kept in the cache's lock dir, not beside the file."""
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    lock = _lock_dir() / f"out-{key}.lock"
    busy = f"another labelloop process has been writing {path} for {timeout:.0f} s (lock {lock}); try again later"
    with file_lock(lock, busy, timeout):
        yield lock
