"""k-NN graph of a pool of unit vectors: exact for small pools, approximate for large ones.

Neighbour smoothing needs each pool text's k nearest pool texts. Brute force is quadratic
(1.6 CPU-s at 10k rows, about 5 CPU-hours at 1M), so above :data:`EXACT_MAX_ROWS` rows the
graph comes from an inverted-file index (:class:`ApproxIndex`, faiss IVF). The graph is built
once and *extended* when texts arrive (:func:`extend_graph`, exact and O(m·n·d)), never rebuilt.

Conventions every function keeps:

- rows of ``X`` are unit vectors, so the dot product is the cosine;
- a graph row lists neighbours by decreasing cosine, and a pool row is its own first
  neighbour (even when the pool holds duplicates), so ``graph[:, :j]`` is the j-NN graph;
- outside queries (:func:`nearest`) see pool rows only, never each other;
- randomness (k-means seeding, the training sample) comes from ``seed``.

Why inverted lists over the full vectors (benchmarks/results/neighbour_graph.md, CPU-seconds, 2 cores):
on BANKING77's 10k vectors faiss's IVF scan took 0.8 CPU-s for recall@6 0.993 (hnswlib 0.7 s / 0.999,
usearch f16 0.6 s / 0.999, faiss HNSW 1.6 s / 1.000); on a synthetic 100k pool shaped like BANKING77 the
same lists compared list by list took 8.8 CPU-s for recall 1.000 (faiss's scan 13.3) against 22-26 CPU-s
for the HNSW libraries (recall 0.95-0.99), and 350 CPU-s at 1M (faiss's scan 863, exact ~17,000).
Searching PCA-96 vectors with exact re-ranking cost as much at 100k and lost recall (0.94) where the
spectrum is flat; int8 HNSW (usearch) lost more. hnswlib ships no wheels (it needs a compiler).
faiss-cpu is a core dependency, so a pool's graph never depends on which extras are installed.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

import numpy as np

from .errors import LabelloopError

__all__ = [
    "EXACT_MAX_ROWS",
    "Method",
    "resolve_method",
    "neighbour_graph",
    "extend_graph",
    "nearest",
    "ApproxIndex",
]

Method = Literal["auto", "exact", "approx"]

# Pools up to this many rows get the exact graph. Brute force stops being the cheaper one around 10k rows
# (0.9 against 0.8 CPU-s on BANKING77's 10k), but at 20k it still costs seconds (5.0 CPU-s against 1.3 on a
# synthetic 20k pool), once per pool since the graph is stored: for that, the graph is exact.
EXACT_MAX_ROWS = 20_000
# Similarities computed at once by the exact paths: about 128 MB of float32.
_CHUNK_CELLS = 2**25
# The approximate index searches full vectors by default: PCA-96 cost about as much and lost recall on
# synthetic pools with a flat spectrum (benchmarks/results/neighbour_graph.md).
_PCA_DIMS: int | None = None
_RERANK = 4  # candidates per wanted neighbour when searching PCA-reduced vectors
# Inverted lists visited per query. 8 found 99.3 % of BANKING77's exact neighbours, yet the missed ones sit
# between clusters, where the strategy asks: forced onto that graph, margin-kmeans needed 1,163 labels to
# 98 % against 1,013 exact (8 seeds); with 16 (recall 99.7 %) it needed 1,025 (neighbour_graph.md).
_NPROBE = 16
_TRAIN_PER_LIST = 40  # k-means training sample: rows per inverted list (faiss asks for ≥ 39)
_LISTS_MIN_ROWS = 50_000  # from here the list-by-list join beats faiss's scan (9.5 vs 14.9 CPU-s at 100k)
_BLOCK = 2**18  # query rows searched at once (the list-by-list join reads each list once per block)


def resolve_method(n_cells: int, method: Method) -> Literal["exact", "approx"]:
    """``auto`` → exact while the brute-force work (query rows × pool rows) is at most a 20k-row pool's."""
    if method not in ("auto", "exact", "approx"):
        raise LabelloopError(f"unknown neighbour method {method!r}; use auto, exact or approx")
    if method != "auto":
        return method
    if n_cells <= EXACT_MAX_ROWS * EXACT_MAX_ROWS:
        return "exact"
    if not _has_faiss():
        warnings.warn(
            "faiss-cpu is not installed: computing the neighbour graph exactly (slow for large pools); "
            "`pip install faiss-cpu` for the approximate index",
            RuntimeWarning,
            stacklevel=3,
        )
        return "exact"
    return "approx"


def _has_faiss() -> bool:
    try:
        import faiss  # noqa: F401
    except ImportError:
        return False
    return True


def _as_rows(X: np.ndarray) -> np.ndarray:
    X = np.ascontiguousarray(X, dtype=np.float32)
    if X.ndim != 2:
        raise ValueError(f"expected a 2-d array of vectors, got shape {X.shape}")
    return X


def _top_sorted(sims: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's k largest values, largest first (ties by column)."""
    if k < sims.shape[1]:
        part = np.argpartition(sims, sims.shape[1] - k, axis=1)[:, -k:]
    else:
        part = np.broadcast_to(np.arange(sims.shape[1]), sims.shape).copy()
    order = np.lexsort(
        (part, -np.take_along_axis(sims, part, axis=1)), axis=1
    )  # equal cosines: lower row first
    return np.take_along_axis(part, order, axis=1)


def _exact(Q: np.ndarray, X: np.ndarray, k: int, self_offset: int | None) -> np.ndarray:
    """Brute force, chunked; ``self_offset`` = the pool row of ``Q[0]`` when ``Q`` are pool rows."""
    out = np.empty((len(Q), k), dtype=np.int32)
    rows = max(1, _CHUNK_CELLS // max(1, len(X)))
    for s in range(0, len(Q), rows):
        sims = Q[s : s + rows] @ X.T
        if self_offset is not None:
            r = np.arange(len(sims))
            sims[r, self_offset + s + r] = np.inf  # itself first, even beside an identical duplicate
        out[s : s + rows] = _top_sorted(sims, k)
    return out


def _pair_sims(Q: np.ndarray, X: np.ndarray, cand: np.ndarray) -> np.ndarray:
    """cos(Q[i], X[cand[i, j]]), chunked so the gathered block stays small; -inf where cand < 0."""
    sims = np.empty(cand.shape, dtype=np.float32)
    rows = max(1, _CHUNK_CELLS // max(1, cand.shape[1] * X.shape[1]))
    for s in range(0, len(cand), rows):
        c = cand[s : s + rows]
        sims[s : s + rows] = np.einsum("nd,nkd->nk", Q[s : s + rows], X[np.maximum(c, 0)])
    sims[cand < 0] = -np.inf
    return sims


class ApproxIndex:
    """An inverted-file index over ``X`` (k-means lists by faiss); :meth:`search` ranks by exact cosine.

    Built once per pool and used both for the pool's own graph and for outside queries, so both
    see the pool through the same index. Each query row is compared with the rows of its ``nprobe``
    nearest lists. ``nlist`` ≈ 2·√n lists balance the two costs (assigning every row to its lists,
    n·nlist·d, against comparing it with nprobe lists, n·nprobe·n/nlist·d); k-means is trained on a
    sample of ``_TRAIN_PER_LIST`` rows per list.

    ``join="lists"`` does the comparisons list by list, as one matrix product of all the queries that
    probe a list against its rows, so each list is read from memory once instead of once per query:
    the same candidates as faiss's own IVF scan (``join="faiss"``), 350 against 863 CPU-s for a 1M
    self-join, but slower on small pools (Python steps per list: 3.2 against 1.3 CPU-s at 20k).
    ``auto`` takes the lists from :data:`_LISTS_MIN_ROWS` rows on. ``dims`` reduces vectors
    by PCA first and re-ranks the candidates in the full space (cheaper, but it loses recall where
    the spectrum is flat).
    """

    def __init__(
        self,
        X: np.ndarray,
        *,
        seed: int = 0,
        dims: int | None = _PCA_DIMS,
        nprobe: int = _NPROBE,
        join: Literal["auto", "lists", "faiss"] = "auto",
    ) -> None:
        try:
            import faiss
        except ImportError:
            raise LabelloopError(
                "the approximate neighbour index needs faiss-cpu; `pip install faiss-cpu` or use method='exact'"
            ) from None
        self.X = _as_rows(X)
        n, d = self.X.shape
        self.join = join if join != "auto" else ("lists" if n >= _LISTS_MIN_ROWS else "faiss")
        rng = np.random.default_rng(seed)
        self.nlist = max(1, min(int(2 * np.sqrt(n)), n // _TRAIN_PER_LIST))
        sample = self.X[np.sort(rng.choice(n, min(n, self.nlist * _TRAIN_PER_LIST), replace=False))]
        self.pca = None
        if dims is not None and dims < d:
            self.pca = faiss.PCAMatrix(d, dims)
            self.pca.train(sample)
            sample = self.pca.apply(sample)
        dz = sample.shape[1]
        self.index: Any = faiss.IndexIVFFlat(  # the swig wrappers' own stubs do not match their Python API
            faiss.IndexFlatIP(dz), dz, self.nlist, faiss.METRIC_INNER_PRODUCT
        )
        self.index.cp.seed = int(rng.integers(2**31))
        self.index.cp.niter = 10
        self.index.cp.max_points_per_centroid = _TRAIN_PER_LIST
        self.index.train(sample)
        self.nprobe = min(nprobe, self.nlist)
        self.index.nprobe = self.nprobe
        # Each pool row's nearest lists, computed once: used to file it and again to search its neighbours.
        self.Z = self.X if self.pca is None else np.empty((n, dz), dtype=np.float32)
        self._assign = np.empty((n, self.nprobe), dtype=np.int64)
        self._assign_d = np.empty((n, self.nprobe), dtype=np.float32)
        for s in range(0, n, _BLOCK):
            z = self._reduce(self.X[s : s + _BLOCK])
            if self.pca is not None:
                self.Z[s : s + len(z)] = z
            self._assign_d[s : s + len(z)], self._assign[s : s + len(z)] = self.index.quantizer.search(
                z, self.nprobe
            )
            if self.join == "faiss":
                first = np.ascontiguousarray(self._assign[s : s + len(z), 0])
                self.index.add_core(len(z), faiss.swig_ptr(z), None, faiss.swig_ptr(first))
        order = np.argsort(self._assign[:, 0], kind="stable")
        bounds = np.searchsorted(self._assign[order, 0], np.arange(self.nlist + 1))
        self._members = [order[bounds[c] : bounds[c + 1]] for c in range(self.nlist)]

    def _reduce(self, Q: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(self.pca.apply(Q) if self.pca is not None else Q, dtype=np.float32)

    def _candidates(self, Q: np.ndarray, start: int | None, kk: int) -> np.ndarray:
        """Up to ``kk`` candidate rows per query (-1 where fewer), from its nprobe nearest lists."""
        z = self._reduce(Q)
        if start is None:
            dist, assign = self.index.quantizer.search(z, self.nprobe)
        else:
            rows = slice(start, start + len(Q))
            dist, assign = self._assign_d[rows], self._assign[rows]
        if self.join == "faiss":
            return self.index.search_preassigned(z, kk, assign, dist)[1]
        m, P = assign.shape
        cand = np.full((m, P * kk), -1, dtype=np.int64)
        sims = np.full((m, P * kk), -np.inf, dtype=np.float32)
        flat = assign.ravel()
        order = np.argsort(flat, kind="stable")
        bounds = np.searchsorted(flat[order], np.arange(self.nlist + 1))
        for c in range(self.nlist):
            members = self._members[c]
            if bounds[c] == bounds[c + 1] or not len(members):
                continue
            M = self.Z[members]
            t = min(kk, len(members))
            pairs = order[bounds[c] : bounds[c + 1]]
            step = max(1, _CHUNK_CELLS // len(members))
            for s in range(0, len(pairs), step):
                p = pairs[s : s + step]
                rows_, slot = p // P, p % P
                S = z[rows_] @ M.T
                top = np.argpartition(S, len(members) - t, axis=1)[:, -t:] if t < len(members) else None
                cols = slot[:, None] * kk + np.arange(t)
                cand[rows_[:, None], cols] = members[top] if top is not None else members
                sims[rows_[:, None], cols] = np.take_along_axis(S, top, axis=1) if top is not None else S
        if P > 1:
            keep = np.argpartition(sims, P * kk - kk, axis=1)[:, -kk:]
            cand = np.take_along_axis(cand, keep, axis=1)
        return cand

    def search(self, Q: np.ndarray, k: int, *, self_offset: int | None = None) -> np.ndarray:
        """Each row of ``Q``'s ``k`` nearest rows of ``X`` by exact cosine among the index's candidates.

        ``self_offset``: ``Q`` are rows ``self_offset…`` of ``X``, each to be listed first in its own row.
        Rows whose candidates fall short of ``k`` are answered by brute force.
        """
        Q = _as_rows(Q)
        k = min(k, len(self.X))
        out = np.empty((len(Q), k), dtype=np.int32)
        for s in range(0, len(Q), _BLOCK):
            q = Q[s : s + _BLOCK]
            wanted = k * _RERANK if self.pca is not None else k + 1  # exact scores need no re-ranking margin
            cand = self._candidates(
                q, None if self_offset is None else self_offset + s, min(len(self.X), wanted)
            )
            if (
                self_offset is not None
            ):  # itself as an extra candidate, ranked first; its other copies dropped
                own = np.arange(self_offset + s, self_offset + s + len(q))[:, None]
                cand = np.where(cand == own, -1, cand)
                cand = np.hstack([own, cand])
            sims = _pair_sims(q, self.X, cand)
            if self_offset is not None:
                sims[:, 0] = np.inf
            top = _top_sorted(sims, k)
            out[s : s + len(q)] = np.take_along_axis(cand, top, axis=1)
            short = np.flatnonzero(~np.isfinite(np.take_along_axis(sims, top, axis=1)[:, -1]))
            for r in short:  # too few candidates (tiny inverted lists): brute force for those rows
                out[s + r] = self._exact_row(q[r], None if self_offset is None else self_offset + s + r, k)
        return out

    def _exact_row(self, q: np.ndarray, row: int | None, k: int) -> np.ndarray:
        sims = self.X @ q
        if row is not None:
            sims[row] = np.inf
        return _top_sorted(sims[None, :], k)[0].astype(np.int32)


def neighbour_graph(
    X: np.ndarray, k: int, *, seed: int = 0, method: Method = "auto", index: ApproxIndex | None = None
) -> np.ndarray:
    """Each row's ``min(k, n)`` nearest rows of ``X`` (itself first), as an ``(n, k)`` int32 array.

    ``method="auto"`` is exact up to :data:`EXACT_MAX_ROWS` rows and approximate above; an
    ``index`` already built on ``X`` is reused instead of building one.
    """
    X = _as_rows(X)
    if k < 1:
        raise ValueError("k must be ≥ 1")
    k = min(k, len(X))
    if len(X) == 0:
        return np.empty((0, 0), dtype=np.int32)
    if index is None and resolve_method(len(X) * len(X), method) == "exact":
        return _exact(X, X, k, self_offset=0)
    return (index or ApproxIndex(X, seed=seed)).search(X, k, self_offset=0)


def nearest(
    Q: np.ndarray,
    X: np.ndarray,
    k: int,
    *,
    seed: int = 0,
    method: Method = "auto",
    index: ApproxIndex | None = None,
) -> np.ndarray:
    """Each row of ``Q``'s ``min(k, len(X))`` nearest rows of ``X``, nearest first (``Q`` never sees itself).

    A query equal to a pool text finds that text first, so a pool text arriving again gets the
    neighbours it has in the graph. Exact while ``len(Q) · len(X)`` is small, else through ``index``
    (built on ``X`` if not given).
    """
    Q, X = _as_rows(Q), _as_rows(X)
    if Q.shape[1] != X.shape[1]:
        raise ValueError(f"queries have {Q.shape[1]} dimensions, the pool {X.shape[1]}")
    k = min(k, len(X))
    if len(Q) == 0 or k == 0:
        return np.empty((len(Q), k), dtype=np.int32)
    if index is None and resolve_method(len(Q) * len(X), method) == "exact":
        return _exact(Q, X, k, self_offset=None)
    return (index or ApproxIndex(X, seed=seed)).search(Q, k)


def extend_graph(graph: np.ndarray, X: np.ndarray, k: int | None = None) -> np.ndarray:
    """The graph of ``X`` from the ``graph`` of its first ``len(graph)`` rows, without rebuilding.

    New rows get their exact neighbours among all rows; an old row's list changes only where a
    new row is nearer than its current k-th neighbour. Cost O(m·n·d) for m new rows, so 100 texts
    joining a 100k pool take about a second. An exact graph extended equals the exact graph of
    ``X`` (up to ties); an approximate one stays as good as it was.
    """
    X = _as_rows(X)
    graph = np.asarray(graph, dtype=np.int32)
    n_old, n = len(graph), len(X)
    k = min(graph.shape[1] if k is None else k, n)
    if n_old > n:
        raise ValueError(f"the graph has {n_old} rows but X only {n}")
    if n_old == n and graph.shape[1] >= k:
        return graph[:, :k].copy()
    new = X[n_old:]
    out = np.empty((n, k), dtype=np.int32)
    if n_old:
        # The old rows' current lists and their cosines; rows whose k-th neighbour a new row beats merge.
        width = min(graph.shape[1], k)
        old = graph[:, :width]
        old_sims = _pair_sims(X[:n_old], X, old)
        old_sims[:, 0] = np.inf  # itself stays first
        kth = old_sims[:, -1] if width == k else np.full(n_old, -np.inf, dtype=np.float32)
        best = np.full(n_old, -np.inf, dtype=np.float32)
        cols = max(1, _CHUNK_CELLS // max(1, n_old))
        for s in range(0, len(new), cols):
            best = np.maximum(best, (X[:n_old] @ new[s : s + cols].T).max(axis=1))
        out[:n_old, :width] = old
        rows = np.flatnonzero((best > kth) | (width < k))
        for s in range(0, len(rows), max(1, _CHUNK_CELLS // max(1, len(new) + width))):
            r = rows[s : s + max(1, _CHUNK_CELLS // max(1, len(new) + width))]
            cand = np.hstack(
                [old[r], np.broadcast_to(np.arange(n_old, n, dtype=np.int32), (len(r), len(new)))]
            )
            sims = np.hstack([old_sims[r], X[r] @ new.T])
            out[r] = np.take_along_axis(cand, _top_sorted(sims, k), axis=1)
    out[n_old:] = _exact(new, X, k, self_offset=n_old)
    return out
