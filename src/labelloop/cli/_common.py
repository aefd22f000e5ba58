"""Options and helpers the commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from ..data import Pool
from ..embeddings import Encoder, default_cache_dir, embed
from ..features import NeighbourSmoothing

TextColumn = Annotated[str, typer.Option(help="Column holding the texts.")]
LabelColumn = Annotated[str, typer.Option(help="Column holding the labels.")]
IdColumn = Annotated[Optional[str], typer.Option(help="Column with stable ids (default: derived from the text).")]
ModelPath = Annotated[
    Optional[Path],
    typer.Option("--model", help="Local transformer model directory (default: bundled all-MiniLM-L6-v2)."),
]
CacheDir = Annotated[
    Optional[Path],
    typer.Option(help="Embedding cache directory (default: $LABELLOOP_CACHE_DIR or ~/.cache/labelloop)."),
]
Neighbours = Annotated[int, typer.Option(
    help="Blend each embedding with its K nearest pool texts before training (labelloop.features); 0 = off.",
    metavar="K", min=0)]
SkipEmpty = Annotated[bool, typer.Option("--skip-empty", help="Drop empty texts with a warning instead of failing.")]


def embed_pools(pools: list[Pool], model: Path | None, cache_dir: Path | None) -> tuple[Encoder, list[np.ndarray]]:
    """Embed several pools in one pass (one progress bar), through the cache."""
    encoder = Encoder(model)
    texts = [t for p in pools for t in p.texts]
    vectors = embed(texts, encoder, cache_dir or default_cache_dir(), progress=True)
    out, start = [], 0
    for p in pools:
        out.append(vectors[start : start + len(p)])
        start += len(p)
    return encoder, out


def pool_features(vectors: list[np.ndarray], neighbours: int) -> tuple[NeighbourSmoothing, list[np.ndarray]]:
    """The head's features for a pool (``vectors[0]``) and other sets, all with neighbours from the pool."""
    smoothing = NeighbourSmoothing(k=neighbours)
    return smoothing, [smoothing(v, vectors[0], progress=True) for v in vectors]
