"""labelloop: active learning for text classification, wired to Label Studio.

The Python API in five steps::

    from labelloop import load_pool, Encoder, embed, NeighbourSmoothing, Head, get_strategy
    pool = load_pool("tickets.csv")                     # ids, texts, labels
    E = embed(pool.texts, Encoder(), cache="~/.cache/labelloop")
    X = NeighbourSmoothing()(E)                         # each text blended with its pool neighbours
    head = Head(n_classes).fit(X[labeled], y[labeled])  # seconds
    pick = get_strategy("margin-kmeans")(head.predict_proba(X[unlabeled]), X[unlabeled], 50, rng)
"""

from .data import Pool, demo_paths, load_pool
from .embeddings import EmbeddingCache, Encoder, embed
from .errors import DataError, LabelloopError, ModelError
from .features import NeighbourSmoothing
from .head import Head
from .index import extend_graph, nearest, neighbour_graph
from .simulate import simulate
from .strategies import DEFAULT_STRATEGY, STRATEGIES, Selection, get_strategy

__all__ = [
    "Pool",
    "load_pool",
    "demo_paths",
    "Encoder",
    "EmbeddingCache",
    "embed",
    "NeighbourSmoothing",
    "neighbour_graph",
    "extend_graph",
    "nearest",
    "Head",
    "simulate",
    "Selection",
    "get_strategy",
    "STRATEGIES",
    "DEFAULT_STRATEGY",
    "LabelloopError",
    "DataError",
    "ModelError",
]
__version__ = "0.1.0"
