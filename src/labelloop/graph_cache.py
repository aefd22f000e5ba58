"""The pool's neighbour graph on disk, beside its embeddings: built once, loaded after, extended as it grows.

Building the graph is the one step whose cost grows faster than the pool (see :mod:`labelloop.index`),
so it is kept under ``<cache root>/<encoder identity>/graphs/``, keyed by the pool's text keys (in
order) and k. A second load of the same pool reads the file; a pool that gained texts (and lost
none) extends the newest stored graph it contains instead of rebuilding.

Like the embedding cache it is only a cache: files are written to a temporary name and renamed into
place, carry a SHA-256 checked on every read, and a damaged or foreign file is dropped with a
:class:`~labelloop.embeddings.CacheWarning` and rebuilt, never trusted and never fatal.
"""

from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Literal

import numpy as np

from .embeddings import CacheWarning
from .index import Method, extend_graph, neighbour_graph, resolve_method

__all__ = ["GraphCache", "Outcome"]

Outcome = Literal["loaded", "extended", "built"]
_KEY_CHARS = 32  # 128 bits of each text's SHA-256 hex: ample to tell a million texts apart
# Extend a stored graph only while the new rows' exact search (new rows × all rows) costs less than
# about a minute on one core; a pool that grew more than that (or more than doubled) is rebuilt.
_EXTEND_MAX_CELLS = 4_000_000_000


def _digest(keys: np.ndarray, k: int) -> str:
    h = hashlib.sha256(f"k={k}\n".encode())
    h.update(np.ascontiguousarray(keys).tobytes())
    return h.hexdigest()


def _checksum(graph: np.ndarray, keys: np.ndarray, method: str) -> np.ndarray:
    h = hashlib.sha256(f"{graph.dtype.str}{graph.shape}{keys.dtype.str}{keys.shape}{method}".encode())
    h.update(np.ascontiguousarray(graph).tobytes())
    h.update(np.ascontiguousarray(keys).tobytes())
    return np.array(h.hexdigest().encode("ascii"), dtype="S64")


class GraphCache:
    """k-NN graphs of pools, one ``.npz`` per (pool keys, k), under ``root/identity/graphs``."""

    MAX_FILES = 4  # graphs kept per encoder identity (the newest); older ones are deleted

    def __init__(self, root: Path | str, identity: str) -> None:
        self.dir = Path(root).expanduser() / identity / "graphs"

    def graph(
        self,
        keys: Sequence[bytes] | np.ndarray,
        X: np.ndarray,
        k: int,
        *,
        method: Method = "auto",
        seed: int = 0,
        build: Callable[[np.ndarray, int], np.ndarray] | None = None,
    ) -> tuple[np.ndarray, Outcome]:
        """The k-NN graph of the pool ``X`` whose rows have text ``keys``, and how it was obtained.

        ``build(X, k)`` makes a graph from scratch (default :func:`labelloop.index.neighbour_graph`
        with ``method`` and ``seed``). A stored graph is used when it was made exactly or by the
        method this pool resolves to.
        """
        if len(keys) != len(X):
            raise ValueError(f"{len(keys)} keys for {len(X)} vectors")
        short = np.array([bytes(key[:_KEY_CHARS]) for key in keys], dtype=f"S{_KEY_CHARS}")
        wanted = resolve_method(len(X) * len(X), method)
        path = self.dir / f"graph-k{k}-{_digest(short, k)[:32]}.npz"
        stored = self._read(path, min(k, len(X)), wanted)
        if stored is not None and np.array_equal(stored[1], short):
            return stored[0], "loaded"
        extended = self._extend(short, X, k, wanted)
        if extended is not None:
            graph, base_method = extended
            self._write(path, graph, short, base_method)
            return graph, "extended"
        graph = (build or (lambda V, kk: neighbour_graph(V, kk, seed=seed, method=method)))(X, k)
        self._write(path, graph, short, wanted)
        return graph, "built"

    def _files(self, k: int) -> list[Path]:
        try:
            files = list(self.dir.glob(f"graph-k{k}-*.npz")) if self.dir.is_dir() else []
            return sorted(files, key=lambda f: f.stat().st_mtime, reverse=True)
        except OSError:
            return []

    def _read(self, path: Path, width: int, wanted: str) -> tuple[np.ndarray, np.ndarray, str] | None:
        """(graph, keys, method) of a sound stored graph usable for ``wanted``; drops a damaged one."""
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                graph, keys, method, checksum = z["graph"], z["keys"], str(z["method"]), z["checksum"]
            if checksum.tobytes().rstrip(b"\0") != _checksum(graph, keys, method).tobytes():
                raise ValueError("checksum mismatch (the file changed after it was written)")
            if graph.ndim != 2 or graph.dtype != np.int32 or len(graph) != len(keys):
                raise ValueError(
                    f"a graph of shape {graph.shape} and type {graph.dtype} for {len(keys)} keys"
                )
            if len(graph) and (graph.min() < 0 or graph.max() >= len(graph)):
                raise ValueError("neighbour indices out of range")
            if method not in ("exact", "approx"):
                raise ValueError(f"unknown method {method!r}")
        except Exception as exc:  # BadZipFile, EOFError, KeyError, OSError, ValueError...
            warnings.warn(
                f"neighbour graph cache: dropped the damaged file {path} ({type(exc).__name__}: {str(exc)[:80]});"
                " the graph will be rebuilt",
                CacheWarning,
                stacklevel=4,
            )
            try:
                path.unlink(missing_ok=True)
            except OSError:
                pass
            return None
        if graph.shape[1] != min(width, len(graph)) or (method != "exact" and method != wanted):
            return None
        return graph, keys, method

    def _extend(self, keys: np.ndarray, X: np.ndarray, k: int, wanted: str) -> tuple[np.ndarray, str] | None:
        """The newest stored graph of a pool this one contains, extended to it (rows remapped)."""
        n = len(keys)
        for path in self._files(k)[: self.MAX_FILES]:
            stored = self._read(path, min(k, n), wanted)
            if stored is None:
                continue
            graph, old_keys, method = stored
            m = n - len(old_keys)
            if m <= 0 or m > len(old_keys) or m * n > _EXTEND_MAX_CELLS:
                continue
            if np.array_equal(keys[: len(old_keys)], old_keys):  # appended rows: the common case
                return extend_graph(graph, X, k), method
            if len(np.unique(old_keys)) != len(old_keys) or len(np.unique(keys)) != n:
                continue  # duplicates make the remapping ambiguous
            sorter = np.argsort(keys)
            at = np.searchsorted(keys, old_keys, sorter=sorter)
            at = sorter[np.minimum(at, n - 1)]
            if not np.array_equal(keys[at], old_keys):
                continue  # the stored pool had texts this one lost
            order = np.concatenate([at, np.setdiff1d(np.arange(n), at)])  # stored rows first, then new ones
            moved = extend_graph(graph, X[order], k)
            out = np.empty_like(moved)
            out[order] = order[moved]
            return out.astype(np.int32), method
        return None

    def _write(self, path: Path, graph: np.ndarray, keys: np.ndarray, method: str) -> None:
        """Store atomically; a disk that refuses only costs a rebuild next time (one warning)."""
        graph = np.ascontiguousarray(graph, dtype=np.int32)
        tmp = path.with_name(f".tmp-{uuid.uuid4().hex}-{path.name}")
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with tmp.open("wb") as fh:
                np.savez(fh, graph=graph, keys=keys, method=np.array(method),
                         checksum=_checksum(graph, keys, method))  # fmt: skip
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            warnings.warn(
                f"neighbour graph cache: cannot write {path} ({exc.strerror or exc}); the graph was computed"
                " but not stored",
                CacheWarning,
                stacklevel=4,
            )
            return
        for old in self._files(int(path.name.split("-")[1][1:]))[self.MAX_FILES :]:
            try:
                old.unlink(missing_ok=True)
            except OSError:
                pass
