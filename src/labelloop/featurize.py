"""Texts to the head's features, the one way every caller does it: embed through the cache, then smooth.

``simulate``, ``push``, ``sync``, ``predict``, the report, the benchmarks and the notebook all
call :func:`featurize`, so a pool and the texts scored against it always get features the
same way: each set is smoothed with neighbours taken from the pool, never from itself.

The pool's neighbour graph is stored beside its embeddings (:class:`labelloop.graph_cache.GraphCache`),
so a pool is searched once: later loads read the graph, and a pool that grew extends it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .embeddings import Encoder, default_cache_dir, embed
from .features import DEFAULT_SMOOTHING, NeighbourSmoothing
from .graph_cache import GraphCache
from .index import ApproxIndex, Method, nearest, neighbour_graph, resolve_method
from .vectors import text_keys

__all__ = ["Featurized", "featurize", "featurize_vectors", "features_by_labels"]


@dataclass(frozen=True)
class Featurized:
    """The pool's features, the other sets' features (neighbours from the pool), and how they were made.

    ``smoothing`` is what made these features; ``policy`` the caller's (a shrinking weight):
    :meth:`at` gives the features for a head trained on a given number of labels.
    """

    pool: np.ndarray
    others: list[np.ndarray]
    raw_pool: np.ndarray  # the pool's embeddings before smoothing (the reference set)
    encoder_identity: str
    smoothing: NeighbourSmoothing
    graph: np.ndarray | None = None  # each pool row's k nearest pool rows, itself first (None: not needed)
    graph_source: str | None = None  # "loaded", "extended" or "built" (from the graph cache) or "computed"
    policy: NeighbourSmoothing | None = None  # None: ``smoothing``
    raw_others: list[np.ndarray] = field(default_factory=list)  # the other sets before smoothing
    other_graphs: list[np.ndarray | None] = field(default_factory=list)  # their neighbours in the pool
    # The last other weight's features: the steps of one sync (train, select, refresh) and the rounds of
    # a simulation ask for the same weight in turn, and one copy of the pool is all that is kept.
    _last: dict[NeighbourSmoothing, Featurized] = field(
        default_factory=dict, init=False, compare=False, repr=False
    )

    def at(self, labeled: int) -> Featurized:
        """These features as a head trained on ``labeled`` pool labels sees them (the policy's weight for
        that many labels). Itself while the weight is the same, as it stays until half the pool is
        labeled; else the pool and the other sets smoothed again from the stored neighbours (the raw
        vectors themselves once the weight is 0), kept until another weight is asked for."""
        policy = self.policy or self.smoothing
        smoothing = policy.at(labeled, len(self.raw_pool))
        if smoothing == self.smoothing:
            return self
        if smoothing in self._last:
            return self._last[smoothing]
        if not smoothing.enabled:
            pool, others = (self.raw_pool if len(self.pool) else self.pool), list(self.raw_others)
        else:
            pool = smoothing(self.raw_pool, graph=self.graph) if len(self.pool) else self.pool
            others = [
                smoothing(Q, self.raw_pool, graph=g)
                for Q, g in zip(self.raw_others, self.other_graphs, strict=True)
            ]
        made = replace(self, pool=pool, others=others, smoothing=smoothing)
        self._last.clear()
        self._last[smoothing] = made
        return made


def features_by_labels(f: Featurized, other: int = 0) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
    """Labels in hand → the pool's and ``f.others[other]``'s features of a head trained on that many
    (:meth:`Featurized.at`): ``simulate``'s ``features_at``."""

    def at(labeled: int) -> tuple[np.ndarray, np.ndarray]:
        g = f.at(labeled)
        return g.pool, g.others[other]

    return at


def featurize(
    pool_texts: Sequence[str],
    *others: Sequence[str],
    encoder: Encoder | None = None,
    model: Path | str | None = None,
    cache_dir: Path | str | None = None,
    smoothing: NeighbourSmoothing = DEFAULT_SMOOTHING,
    smooth_pool: bool = True,
    progress: bool = False,
    neighbour_method: Method = "auto",
    seed: int = 0,
    pool_keys: np.ndarray | None = None,
) -> Featurized:
    """Embed the pool and ``others`` in one pass through the cache, then smooth each over the pool.

    ``encoder`` (or a ``model`` directory; default the bundled encoder) decides the vectors;
    ``cache_dir`` defaults to ``$LABELLOOP_CACHE_DIR`` or ``~/.cache/labelloop``.
    ``smooth_pool=False`` skips the pool's own smoothing when only ``others`` are needed
    (``predict``): the pool then serves only as the neighbours' reference.
    ``neighbour_method`` (``auto``: exact up to 20k pool rows, approximate above) and ``seed`` decide
    how neighbours are found (:mod:`labelloop.index`); the pool's graph is cached beside the vectors.
    ``pool_keys`` are the pool texts' :func:`~labelloop.vectors.text_keys` if the caller has them already.
    """
    encoder = encoder or Encoder(model)
    root = cache_dir or default_cache_dir()
    texts = [*pool_texts, *(t for o in others for t in o)]
    keys = text_keys(pool_texts) if pool_keys is None else pool_keys
    all_keys = np.concatenate([keys, text_keys([t for o in others for t in o])])
    vectors = embed(texts, encoder, root, progress=progress, keys=all_keys)
    sizes = np.cumsum([len(pool_texts), *map(len, others)])
    parts = np.split(vectors, sizes[:-1])
    return featurize_vectors(
        parts[0],
        *parts[1:],
        identity=encoder.identity,
        smoothing=smoothing,
        smooth_pool=smooth_pool,
        progress=progress,
        neighbour_method=neighbour_method,
        seed=seed,
        graph_cache=(GraphCache(root, encoder.identity), keys),
    )


def featurize_vectors(
    raw: np.ndarray,
    *others: np.ndarray,
    identity: str,
    smoothing: NeighbourSmoothing = DEFAULT_SMOOTHING,
    smooth_pool: bool = True,
    progress: bool = False,
    neighbour_method: Method = "auto",
    seed: int = 0,
    graph_cache: tuple[GraphCache, Sequence[bytes] | np.ndarray] | None = None,
) -> Featurized:
    """Unit-length vectors (the pool's, then other sets') to features: what :func:`featurize` does after
    embedding, and all an embedding column (:mod:`labelloop.column_vectors`) needs.

    ``identity`` names where the vectors came from. With smoothing off they are the features as they
    are: no copy of a pool that may be a million rows. ``graph_cache`` (the cache and the pool's keys)
    stores the pool's neighbour graph; without it the graph is computed each time.
    """
    policy, smoothing = smoothing, smoothing.at(0, len(raw))
    if not smoothing.enabled:
        return Featurized(
            raw if smooth_pool else raw[:0], list(others), raw, identity, smoothing, policy=policy
        )
    k = min(smoothing.k, len(raw))
    index: list[ApproxIndex] = []  # built at most once, shared by the pool's graph and the other sets

    def approx_index() -> ApproxIndex:
        if not index:
            index.append(ApproxIndex(raw, seed=seed))
        return index[0]

    def search(Q: np.ndarray | None) -> np.ndarray:
        cells = len(raw) * (len(raw) if Q is None else len(Q))
        shared = approx_index() if resolve_method(cells, neighbour_method) == "approx" else None
        if Q is None:
            return neighbour_graph(raw, k, seed=seed, method=neighbour_method, index=shared)
        return nearest(Q, raw, k, seed=seed, method=neighbour_method, index=shared)

    graph: np.ndarray | None = None
    source: str | None = None
    if smooth_pool and 0 < k < len(raw):
        if graph_cache is None:
            graph, source = search(None), "computed"
        else:
            try:
                graph, source = graph_cache[0].graph(
                    graph_cache[1], raw, k, method=neighbour_method, seed=seed,
                    build=lambda X, kk: search(None),
                )  # fmt: skip
            except OSError:  # an unreadable cache folder: compute it, store nothing
                graph, source = search(None), "computed"
    out, other_graphs = [], []
    for Q in others:
        neighbours = search(Q) if 0 < k < len(raw) and len(Q) else None
        out.append(smoothing(Q, raw, graph=neighbours, progress=progress))
        other_graphs.append(neighbours)
    pool = (
        smoothing(raw, graph=graph, progress=progress)
        if smooth_pool
        else np.empty((0, raw.shape[1]), dtype=np.float32)
    )
    return Featurized(pool, out, raw, identity, smoothing, graph, source, policy, list(others), other_graphs)
