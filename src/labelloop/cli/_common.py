"""Options and helpers the commands share."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer

from ..data import Pool
from ..embeddings import Encoder, default_cache_dir, embed

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
