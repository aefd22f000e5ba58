"""The embedding store: vectors in memory-mapped on-disk matrices, looked up without loading the pool.

One directory per model identity holds immutable *segments*::

    seg-<uuid>/keys.npy       (n,) S64, sorted and unique: the SHA-256 (hex) of each text
    seg-<uuid>/vectors.npy    (n, dim) float32: row i is the vector of keys[i]
    seg-<uuid>/manifest.json  n, dim, the keys' SHA-256 and one SHA-256 per block of rows
    shard-*.npz               the format before segments: read, and migrated at the first write

A lookup is one :func:`numpy.searchsorted` per segment over its memory-mapped keys, then a gather of the
rows it found: the pool is never held as Python objects, and a segment's vectors are read only where asked.
Hex keys (64 bytes, not 32-byte digests) keep :func:`text_key` and the old shards' keys as they were, for 8 %
more disk than a 384-d float32 row needs. float16 vectors would halve the disk but change every score a
little; not measured, so not done.

A segment is written into ``.tmp-<uuid>/`` and renamed into place whole: a reader sees all of it or none of
it, and a process killed mid-write leaves only a ``.tmp-`` folder, which readers ignore. New vectors become
new segments; now and then small segments are merged into one (:meth:`EmbeddingCache.compact`).

Checksums, and what they cost. Each segment's checksums are computed from the arrays as they are written. On
opening, a segment is checked cheaply and whole: the manifest parses, the ``.npy`` headers agree with it (shape,
dtype, and the file sizes, as memory-mapping a short file fails), and the keys' SHA-256 matches (64 bytes per
text). Its vectors are checked lazily, one block of rows at a time, the first time a lookup touches that block
(SHA-256 and finite values): a lookup hashes what it reads (about 2 GB/s here), never the whole store, and a
damaged block is caught before any of its vectors is used. The trade-off: damage in rows nobody reads goes
unnoticed until they are read (or merged, which checks every block it copies). A damaged segment is dropped
whole with a :class:`CacheWarning` and its texts are embedded again.

(Over 400 lines formatted: one on-disk format — segment writer, reader, lazy checks, the old shards'
migration and merging — whose parts must agree byte for byte, so they are read and changed together.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import LabelloopError, LabelloopWarning

__all__ = [
    "EmbeddingCache",
    "CacheWarning",
    "CacheWriteError",
    "text_key",
    "text_keys",
    "merge_plan",
    "BLOCK_ROWS",
]

KEY_DTYPE = np.dtype("S64")
BLOCK_ROWS = 4096  # rows per checksummed block: 6 MB of 384-d float32, hashed in about 3 ms
_FORMAT = 1


class CacheWarning(LabelloopWarning):
    """The embedding cache was damaged or could not be written; the results are still right."""


class CacheWriteError(LabelloopError):
    """A segment could not be written (read-only or full disk); :func:`~labelloop.embeddings.embed` goes on
    without caching."""


def text_key(text: str) -> bytes:
    """Cache key of a text: its SHA-256, hex (ASCII, so numpy 'S' arrays keep it intact)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest().encode("ascii")


def text_keys(texts: Sequence[str]) -> np.ndarray:
    """The cache keys of ``texts`` as one ``(n,)`` S64 array (each text hashed once, no list of bytes kept)."""
    sha = hashlib.sha256
    return np.fromiter(
        (sha(t.encode("utf-8")).hexdigest().encode("ascii") for t in texts), dtype=KEY_DTYPE, count=len(texts)
    )


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).data).hexdigest()


def merge_plan(sizes: Sequence[int]) -> list[int]:
    """Which segments (indices into ``sizes``) to merge into one so their number stays small.

    The two smallest, then each next smallest while it is no larger than those chosen together: large
    segments are left alone, so a row is rewritten about log2(n) times over the store's life, not at every
    merge (merging everything each time would rewrite the whole store every ``MAX_SEGMENTS`` writes).
    """
    order = sorted(range(len(sizes)), key=lambda i: (sizes[i], i))
    chosen = order[:2]
    total = sum(sizes[i] for i in chosen)
    for i in order[2:]:
        if sizes[i] > total:
            break
        chosen.append(i)
        total += sizes[i]
    return sorted(chosen)


@dataclass(eq=False)
class _Segment:
    """One segment's memory-mapped arrays (or the old shards, read into memory: ``path`` None)."""

    path: Path | None
    keys: np.ndarray
    vectors: np.ndarray
    block_rows: int = BLOCK_ROWS
    block_sums: list[str] | None = None  # None: verified whole when read
    verified: set[int] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def verify(self, rows: np.ndarray) -> None:
        """ValueError if a block holding one of ``rows`` is damaged; each block is checked once per process."""
        if self.block_sums is None:
            return
        for b in np.unique(np.asarray(rows) // self.block_rows).tolist():
            if b in self.verified:
                continue
            block = self.vectors[b * self.block_rows : (b + 1) * self.block_rows]
            if _sha256(block) != self.block_sums[b]:
                raise ValueError(
                    f"checksum mismatch in rows from {b * self.block_rows} (changed after writing)"
                )
            if not np.isfinite(block).all():
                raise ValueError("non-finite values (NaN or infinity) in its vectors")
            self.verified.add(b)

    def find(self, keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(hit, rows)``: which of ``keys`` this segment holds, and at which of its rows."""
        pos = np.searchsorted(self.keys, keys)
        np.minimum(pos, len(self) - 1, out=pos)
        hit = self.keys[pos] == keys
        return hit, pos[hit]


def _open_segment(path: Path) -> _Segment:
    """The segment at ``path``, checked cheaply (see the module docstring), or ValueError saying what is wrong."""
    try:
        manifest = json.loads((path / "manifest.json").read_text(encoding="utf-8"))
        n, dim, block_rows = int(manifest["n"]), int(manifest["dim"]), int(manifest["block_rows"])
        keys_sum, block_sums = str(manifest["keys_sha256"]), [str(s) for s in manifest["blocks_sha256"]]
        keys = np.load(path / "keys.npy", mmap_mode="r", allow_pickle=False)
        vectors = np.load(path / "vectors.npy", mmap_mode="r", allow_pickle=False)
    except Exception as exc:  # OSError, ValueError (bad JSON, short file), KeyError, TypeError...
        raise ValueError(f"unreadable ({type(exc).__name__}: {str(exc)[:80]})") from None
    if keys.shape != (n,) or keys.dtype != KEY_DTYPE:
        raise ValueError(f"keys of shape {keys.shape} and type {keys.dtype}, the manifest says ({n},) S64")
    if vectors.shape != (n, dim) or vectors.dtype != np.float32 or dim == 0:
        raise ValueError(
            f"vectors of shape {vectors.shape} and type {vectors.dtype}, the manifest says ({n}, {dim}) float32"
        )
    if block_rows < 1 or len(block_sums) != -(-n // block_rows):
        raise ValueError(f"{len(block_sums)} block checksums for {n} rows in blocks of {block_rows}")
    if _sha256(keys) != keys_sum:
        raise ValueError("checksum mismatch in its keys (changed after writing)")
    return _Segment(path, keys, vectors, block_rows, block_sums)


def _legacy_checksum(keys: np.ndarray, vectors: np.ndarray) -> bytes:
    h = hashlib.sha256()
    h.update(f"{keys.dtype.str}{keys.shape}{vectors.dtype.str}{vectors.shape}".encode())
    h.update(np.ascontiguousarray(keys).tobytes())
    h.update(np.ascontiguousarray(vectors).tobytes())
    return h.hexdigest().encode("ascii")


def _read_shard(shard: Path) -> tuple[np.ndarray, np.ndarray]:
    """An old ``.npz`` shard's keys and vectors, checked whole, or ValueError saying what is wrong with it."""
    try:
        with np.load(shard, allow_pickle=False) as z:
            keys, vectors = z["keys"], z["vectors"]
            checksum = z["checksum"] if "checksum" in z.files else None
    except Exception as exc:  # BadZipFile, EOFError, zlib.error, KeyError, OSError, ValueError...
        raise ValueError(f"unreadable ({type(exc).__name__}: {str(exc)[:80]})") from None
    if keys.ndim != 1 or keys.dtype.kind != "S" or keys.dtype.itemsize != 64:
        raise ValueError(f"keys of shape {keys.shape} and type {keys.dtype}, expected SHA-256 hex keys")
    if vectors.ndim != 2 or vectors.dtype != np.float32 or vectors.shape[1] == 0:
        raise ValueError(
            f"vectors of shape {vectors.shape} and type {vectors.dtype}, expected (n, dim) float32"
        )
    if len(keys) != len(vectors):
        raise ValueError(f"{len(keys)} keys for {len(vectors)} vectors")
    if checksum is not None and checksum.tobytes().rstrip(b"\0") != _legacy_checksum(keys, vectors):
        raise ValueError("checksum mismatch (the file changed after it was written)")
    if not np.isfinite(vectors).all():
        raise ValueError("non-finite values (NaN or infinity) in its vectors")
    return keys, vectors


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_segment(folder: Path, keys: np.ndarray, dim: int, blocks: Iterable[np.ndarray]) -> _Segment:
    """Write sorted unique ``keys`` and their vectors, given as consecutive blocks of ``BLOCK_ROWS`` rows
    (the last may be shorter), as one new segment; renamed into place only once complete and on disk.

    Plain writes, not a writable memory map: a full disk is then an OSError, never a SIGBUS."""
    name = uuid.uuid4().hex
    tmp, final = folder / f".tmp-{name}", folder / f"seg-{name}"
    n = len(keys)
    try:
        tmp.mkdir()
        np.save(tmp / "keys.npy", keys, allow_pickle=False)
        sums, written = [], 0
        with (tmp / "vectors.npy").open("wb") as fh:
            header = {"descr": np.dtype(np.float32).str, "fortran_order": False, "shape": (n, dim)}
            np.lib.format.write_array_header_1_0(fh, header)
            for block in blocks:
                block = np.ascontiguousarray(block, dtype=np.float32)
                sums.append(_sha256(block))
                fh.write(block.data)
                written += len(block)
            fh.flush()
            os.fsync(fh.fileno())
        if written != n:
            raise AssertionError(f"wrote {written} vectors for {n} keys")
        manifest = {
            "format": _FORMAT,
            "n": n,
            "dim": dim,
            "block_rows": BLOCK_ROWS,
            "keys_sha256": _sha256(keys),
            "blocks_sha256": sums,
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
        _fsync(tmp / "keys.npy")
        _fsync(tmp / "manifest.json")
        os.replace(tmp, final)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise CacheWriteError(
            f"cannot write the embedding cache at {folder}: {exc.strerror or exc}; "
            f"pass --cache-dir or set LABELLOOP_CACHE_DIR"
        ) from None
    except BaseException:  # Ctrl-C mid-write: leave nothing half-made behind
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    segment = _open_segment(final)
    segment.verified.update(range(len(sums)))  # checksums just computed from these very arrays
    return segment


def _blocks(vectors: np.ndarray) -> Iterator[np.ndarray]:
    for start in range(0, len(vectors), BLOCK_ROWS):
        yield vectors[start : start + BLOCK_ROWS]


def _gather(source: np.ndarray, rows: np.ndarray, out: np.ndarray, where: np.ndarray) -> None:
    """``out[where] = source[rows]`` without a temporary copy of the whole selection (a pool-sized one
    for a pool): straight into ``out`` when every row of it is wanted, else a block at a time."""
    if len(where) == len(out):  # ``where`` is sorted and unique, so it is every row of ``out`` in order
        np.take(source, rows, axis=0, out=out, mode="clip")  # "raise" would buffer a copy of out
        return
    for start in range(0, len(rows), BLOCK_ROWS):
        out[where[start : start + BLOCK_ROWS]] = source[rows[start : start + BLOCK_ROWS]]


class EmbeddingCache:
    """Vectors on disk, one directory per model identity, as memory-mapped immutable segments.

    See :mod:`labelloop.vectors` for the layout and the checks. A damaged segment or old shard is dropped
    with a :class:`CacheWarning` and its texts are embedded again, so a bad disk or a hand-made file never
    crashes a run and never feeds NaN to the head. Segments written by another process after this one
    opened the store are not seen by it (a miss: embedded again, harmless) and survive its merges.
    """

    MAX_SEGMENTS = 32
    MAX_SHARDS = MAX_SEGMENTS  # the name from before segments

    def __init__(self, root: Path | str, model_identity: str) -> None:
        self.dir = Path(root).expanduser() / model_identity
        self._segments: list[_Segment] | None = None
        self._shards: list[Path] = []  # old .npz shards read into the in-memory segment (migrated on write)
        self._forgotten = np.empty(0, dtype=KEY_DTYPE)
        self.dim: int | None = None  # the vectors' dimension; None: the one most cached vectors have
        self.opened = 0  # times this object read the folder: once, however many lookups follow

    # -- reading -------------------------------------------------------------------------------------

    def _list(self, pattern: str) -> list[Path]:
        try:
            return sorted(self.dir.glob(pattern)) if self.dir.is_dir() else []
        except OSError:  # an unreadable cache folder is an empty cache
            return []

    def _drop(self, path: Path, why: str, what: str = "segment") -> None:
        warnings.warn(
            f"embedding cache: dropped the damaged {what} {path} ({why}); its texts will be embedded again",
            CacheWarning,
            stacklevel=4,
        )
        try:
            if path.is_dir():
                (path / "manifest.json").unlink(missing_ok=True)  # uncommitted first: never half a segment
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        except OSError:  # a read-only cache: skipping it is enough
            pass

    def _open(self) -> list[_Segment]:
        if self._segments is not None:
            return self._segments
        self.opened += 1
        found: list[tuple[Path, _Segment]] = []
        for path in self._list("seg-*"):
            try:
                found.append((path, _open_segment(path)))
            except ValueError as exc:
                if (path / "manifest.json").exists():  # else being removed by a merge: not damage
                    self._drop(path, str(exc))
        shards: list[tuple[Path, _Segment]] = []
        for shard in self._list("shard-*.npz"):
            try:
                keys, vectors = _read_shard(shard)
            except ValueError as exc:
                self._drop(shard, str(exc), "shard")
                continue
            shards.append((shard, _Segment(None, keys, vectors)))
        dims = Counter[int]()
        for _, s in found + shards:
            dims[s.dim] += len(s)
        self.dim = self.dim or (dims.most_common(1)[0][0] if dims else None)
        segments: list[_Segment] = []
        for path, s in found:
            if s.dim != self.dim:
                self._drop(path, f"vectors of dimension {s.dim}, the cache holds {self.dim}")
            else:
                segments.append(s)
        old: list[_Segment] = []
        for path, s in shards:
            if s.dim != self.dim:
                self._drop(path, f"vectors of dimension {s.dim}, the cache holds {self.dim}", "shard")
            else:
                old.append(s)
                self._shards.append(path)
        if old:  # the old shards, as one sorted in-memory segment (already checked whole)
            keys = np.concatenate([s.keys for s in old]).astype(KEY_DTYPE)
            keys, first = np.unique(keys, return_index=True)
            segments.append(_Segment(None, keys, np.concatenate([s.vectors for s in old])[first]))
        self._segments = segments
        return segments

    def lookup(
        self, keys: Sequence[bytes] | np.ndarray, out: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(found, out)``: which of ``keys`` are cached, their vectors written into the rows of ``out``
        (an ``(n, dim)`` float32 array, made if not given; rows not found are left as they were).

        No per-key Python object is made: a binary search per segment and a gather of the rows found.
        """
        q = np.asarray(keys, dtype=KEY_DTYPE)
        segments = self._open()
        if out is None:
            out = np.zeros((len(q), self.dim or 0), dtype=np.float32)
        elif out.shape != (len(q), self.dim or 0):
            raise ValueError(f"out of shape {out.shape} for {len(q)} keys of dimension {self.dim}")
        found = np.zeros(len(q), dtype=bool)
        for seg in list(segments):
            todo = np.flatnonzero(~found)
            if not len(todo):
                break
            hit, rows = seg.find(q[todo])
            if not len(rows):
                continue
            try:
                seg.verify(rows)
            except ValueError as exc:
                segments.remove(seg)
                assert seg.path is not None  # old shards were checked whole when read
                self._drop(seg.path, str(exc))
                continue
            where = todo[hit]
            _gather(seg.vectors, rows, out, where)
            found[where] = True
        if len(self._forgotten):
            found &= ~np.isin(q, self._forgotten)
        return found, out

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``keys``, as a dict (for a few keys; :meth:`lookup` for a pool)."""
        found, out = self.lookup(keys)
        return {keys[i]: out[i] for i in np.flatnonzero(found).tolist()}

    def __len__(self) -> int:
        """How many distinct texts are cached (reads every segment's keys, not its vectors)."""
        segments = self._open()
        if not segments:
            return 0
        keys = np.unique(np.concatenate([np.asarray(s.keys) for s in segments]))
        return int(len(keys) - np.isin(self._forgotten, keys).sum())

    def forget(self, keys: Sequence[bytes]) -> None:
        """Ignore ``keys`` in this process's lookups (vectors found unusable)."""
        self._forgotten = np.union1d(self._forgotten, np.asarray(keys, dtype=KEY_DTYPE))

    # -- writing -------------------------------------------------------------------------------------

    def _mkdir(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheWriteError(
                f"cannot write the embedding cache at {self.dir}: {exc.strerror}; "
                f"pass --cache-dir or set LABELLOOP_CACHE_DIR"
            ) from None

    def put(self, keys: Sequence[bytes] | np.ndarray, vectors: np.ndarray) -> None:
        """Persist one segment atomically; :class:`CacheWriteError` if the disk refuses (nothing left behind).

        The first write also moves the old ``.npz`` shards' vectors into the new segment and removes them."""
        if len(keys) == 0:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys) or not np.isfinite(vectors).all():
            raise ValueError(
                f"refusing to cache {vectors.shape} vectors for {len(keys)} keys (or non-finite)"
            )
        self._mkdir()
        segments = self._open()
        self.dim = self.dim or vectors.shape[1]
        if vectors.shape[1] != self.dim:
            raise ValueError(f"refusing to cache vectors of dimension {vectors.shape[1]} beside {self.dim}")
        k = np.asarray(keys, dtype=KEY_DTYPE)
        old = [s for s in segments if s.path is None]
        if old:  # migrate: the old shards' vectors join this segment
            k = np.concatenate([k, old[0].keys])
            vectors = np.concatenate([vectors, old[0].vectors])
        k, first = np.unique(k, return_index=True)
        vectors = vectors[first]
        segment = _write_segment(self.dir, k, self.dim, _blocks(vectors))
        self._segments = [segment, *(s for s in segments if s.path is not None)]
        for shard in self._shards:
            try:
                shard.unlink(missing_ok=True)
            except OSError:
                pass
        self._shards = []

    def compact(self) -> None:
        """Merge segments once there are more than :attr:`MAX_SEGMENTS` (see :func:`merge_plan`).

        Only segments this process has open are merged and removed, so segments another process wrote
        meanwhile survive; every block copied is checked first; a crash midway leaves duplicates, never a loss.
        The merge streams block by block: memory holds the keys, not the vectors.
        """
        if len(self._list("seg-*")) + len(self._list("shard-*.npz")) <= self.MAX_SEGMENTS:
            return
        for path in self._list("seg-*"):  # a merge killed while removing its sources left these
            if not (path / "manifest.json").exists():
                shutil.rmtree(path, ignore_errors=True)
        segments = self._open()
        ours = [s for s in segments if s.path is not None]
        chosen = [ours[i] for i in merge_plan([len(s) for s in ours])]
        for seg in list(chosen):
            try:
                seg.verify(np.arange(len(seg)))
            except ValueError as exc:
                chosen.remove(seg)
                segments.remove(seg)
                assert seg.path is not None
                self._drop(seg.path, str(exc))
        if len(chosen) < 2 or self.dim is None:
            return
        sizes = np.array([len(s) for s in chosen])
        keys, first = np.unique(np.concatenate([np.asarray(s.keys) for s in chosen]), return_index=True)
        source = np.repeat(np.arange(len(chosen)), sizes)[first]
        row = first - (np.cumsum(sizes) - sizes)[source]

        def blocks() -> Iterator[np.ndarray]:
            for start in range(0, len(keys), BLOCK_ROWS):
                src, rows = source[start : start + BLOCK_ROWS], row[start : start + BLOCK_ROWS]
                block = np.empty((len(src), self.dim or 0), dtype=np.float32)
                for s in np.unique(src).tolist():
                    mask = src == s
                    block[mask] = chosen[s].vectors[rows[mask]]
                yield block

        merged = _write_segment(self.dir, keys, self.dim, blocks())
        self._segments = [merged, *(s for s in segments if s not in chosen)]
        for seg in chosen:
            assert seg.path is not None
            (seg.path / "manifest.json").unlink(missing_ok=True)
            shutil.rmtree(seg.path, ignore_errors=True)
