"""Texts to the head's features, the one way every caller does it: embed through the cache, then smooth.

``simulate``, ``push``, ``sync``, ``predict``, the report, the benchmarks and the notebook all
call :func:`featurize`, so a pool and the texts scored against it always get features the
same way: each set is smoothed with neighbours taken from the pool, never from itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .embeddings import Encoder, default_cache_dir, embed
from .features import DEFAULT_SMOOTHING, NeighbourSmoothing
from .vectors import text_keys

__all__ = ["Featurized", "featurize", "featurize_vectors"]


@dataclass(frozen=True)
class Featurized:
    """The pool's features, the other sets' features (neighbours from the pool), and how they were made."""

    pool: np.ndarray
    others: list[np.ndarray]
    raw_pool: np.ndarray  # the pool's embeddings before smoothing (the reference set)
    encoder_identity: str
    smoothing: NeighbourSmoothing


def featurize(
    pool_texts: Sequence[str],
    *others: Sequence[str],
    encoder: Encoder | None = None,
    model: Path | str | None = None,
    cache_dir: Path | str | None = None,
    smoothing: NeighbourSmoothing = DEFAULT_SMOOTHING,
    smooth_pool: bool = True,
    progress: bool = False,
    pool_keys: np.ndarray | None = None,
) -> Featurized:
    """Embed the pool and ``others`` in one pass through the cache, then smooth each over the pool.

    ``encoder`` (or a ``model`` directory; default the bundled encoder) decides the vectors;
    ``cache_dir`` defaults to ``$LABELLOOP_CACHE_DIR`` or ``~/.cache/labelloop``.
    ``smooth_pool=False`` skips the pool's own smoothing when only ``others`` are needed
    (``predict``): the pool then serves only as the neighbours' reference. ``pool_keys`` are the
    pool texts' :func:`~labelloop.vectors.text_keys` if the caller has them already.
    """
    encoder = encoder or Encoder(model)
    texts = [*pool_texts, *(t for o in others for t in o)]
    keys = None
    if pool_keys is not None:
        keys = np.concatenate([pool_keys, text_keys([t for o in others for t in o])])
    vectors = embed(texts, encoder, cache_dir or default_cache_dir(), progress=progress, keys=keys)
    sizes = np.cumsum([len(pool_texts), *map(len, others)])
    parts = np.split(vectors, sizes[:-1])
    return featurize_vectors(
        parts[0],
        *parts[1:],
        identity=encoder.identity,
        smoothing=smoothing,
        smooth_pool=smooth_pool,
        progress=progress,
    )


def featurize_vectors(
    pool: np.ndarray,
    *others: np.ndarray,
    identity: str,
    smoothing: NeighbourSmoothing = DEFAULT_SMOOTHING,
    smooth_pool: bool = True,
    progress: bool = False,
) -> Featurized:
    """Unit-length vectors made elsewhere (an embedding column, :mod:`labelloop.column_vectors`) to features.

    ``identity`` names where they came from. With smoothing off the vectors are the features
    as they are: no copy of a pool that may be a million rows.
    """
    if not smoothing.enabled:
        return Featurized(pool if smooth_pool else pool[:0], list(others), pool, identity, smoothing)
    out = [smoothing(o, pool, progress=progress) for o in others]
    features = smoothing(pool, progress=progress) if smooth_pool else pool[:0]
    return Featurized(features, out, pool, identity, smoothing)
