"""Output files: checked before the work, written atomically next to the target.

A command that will write a file checks the path first (:func:`check_output`), so a typo or a
read-only folder costs a one-line error before minutes of embedding, not a traceback after. The
write itself goes to a temporary file in the target's folder and is renamed over the target
(:func:`atomic_write`, :func:`atomic_path`): a reader sees the old file or the new one, never half
of one, and the temporary file is removed on every failure, so nothing stray is left behind.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

from .errors import LabelloopError

__all__ = ["OutputError", "check_output", "check_output_dir", "atomic_write", "atomic_path", "staging_dir"]


class OutputError(LabelloopError):
    """An output path cannot be written (a folder, a read-only place, a missing parent that is a file)."""


def _why(exc: OSError) -> str:
    if exc.errno == errno.EROFS:
        return "read-only file system"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied"
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    return exc.strerror or type(exc).__name__


def _nearest_existing(path: Path) -> Path:
    for p in (path, *path.parents):
        if os.path.lexists(p):
            return p
    return Path(".")


def _probe_folder(folder: Path, what: str) -> None:
    """Create and remove a temporary file in ``folder``: the only check that sees read-only mounts and ACLs."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".labelloop-check-")
    except OSError as exc:
        raise OutputError(f"{what}: cannot write in {folder} ({_why(exc)})") from None
    os.close(fd)
    os.unlink(probe)


def _check_parent(path: Path, what: str) -> None:
    parent = path.parent
    existing = _nearest_existing(parent)
    if not existing.is_dir():
        raise OutputError(f"{what}: {existing} is not a folder")
    if existing == parent:
        _probe_folder(parent, what)
    elif not os.access(existing, os.W_OK | os.X_OK):  # folders to create: nothing made before the work
        raise OutputError(f"{what}: cannot create folders in {existing} (permission denied)")


def check_output(path: str | Path, option: str = "--out") -> Path:
    """Fail now, writing nothing, if ``path`` cannot take a file; return it (``~`` expanded).

    Refused: an existing folder, a file that is read-only, a parent that is a file, a folder that
    cannot be written (read-only mount, no permission). Missing parent folders are created only
    when the output is written.
    """
    path = Path(path).expanduser()
    what = f"{option} {path}"
    if path.is_dir():
        raise OutputError(f"{what} is a directory; give a file name")
    if os.path.lexists(path) and not path.exists():
        raise OutputError(f"{what}: a broken or looping symbolic link")
    if path.exists() and not path.is_file():  # a device: /dev/full never ends, /dev/null would be replaced
        raise OutputError(f"{what} is not a regular file")
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{what} is read-only; refusing to replace it")
    _check_parent(path, what)
    return path


def check_output_dir(path: str | Path, option: str) -> Path:
    """Like :func:`check_output` for a folder of outputs (created when written): refuse a file in its place."""
    path = Path(path).expanduser()
    what = f"{option} {path}"
    if os.path.lexists(path) and not path.is_dir():
        raise OutputError(f"{what} exists and is not a folder")
    if path.is_dir():
        _probe_folder(path, what)
    else:
        _check_parent(path, what)
    return path


def _temp_in(folder: Path, name: str, suffix: str = "") -> Path:
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=f".tmp{suffix}")
    os.close(fd)
    return Path(tmp)


def _mkdir(folder: Path, what: str) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{what}: cannot create {folder} ({_why(exc)})") from None


@contextmanager
def atomic_path(path: str | Path, option: str = "--out") -> Iterator[Path]:
    """A temporary path next to ``path`` (same suffix, so writers can infer a format) that becomes ``path``.

    The temporary file is renamed over ``path`` when the block ends without error and deleted
    otherwise; OS errors become one :class:`OutputError` line.
    """
    path = Path(path).expanduser()
    what = f"{option} {path}"
    _mkdir(path.parent, what)
    try:
        tmp = _temp_in(path.parent, path.name, path.suffix)
    except OSError as exc:
        raise OutputError(f"{what}: cannot write in {path.parent} ({_why(exc)})") from None
    try:
        yield tmp
        if path.exists():  # keep the target's permission bits (mkstemp makes 0600)
            os.chmod(tmp, path.stat().st_mode & 0o7777)
        else:
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{what}: cannot write ({_why(exc)})") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", option: str = "--out", **open_kw: object) -> Iterator[IO]:
    """Open a temporary file next to ``path`` for writing; on success it is fsynced and renamed to ``path``."""
    if "b" not in mode:
        open_kw.setdefault("encoding", "utf-8")
    with atomic_path(path, option) as tmp:
        try:
            with open(tmp, mode, **open_kw) as fh:  # type: ignore[call-overload]
                yield fh
                fh.flush()
                os.fsync(fh.fileno())
        except OSError as exc:
            raise OutputError(f"{option} {path}: cannot write ({_why(exc)})") from None


@contextmanager
def staging_dir(folder: str | Path, option: str = "--out") -> Iterator[Path]:
    """A temporary folder next to ``folder`` whose files move into ``folder`` when the block succeeds.

    Used for a report's figures: a failed report leaves neither half its figures nor a new folder.
    """
    folder = Path(folder).expanduser()
    what = f"{option} {folder}"
    _mkdir(folder.parent, what)
    try:
        stage = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=".tmp"))
    except OSError as exc:
        raise OutputError(f"{what}: cannot write in {folder.parent} ({_why(exc)})") from None
    try:
        yield stage
        moved = sorted(stage.iterdir())
        if moved:
            _mkdir(folder, what)
            for f in moved:
                os.replace(f, folder / f.name)
    except OSError as exc:
        raise OutputError(f"{what}: cannot write ({_why(exc)})") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
