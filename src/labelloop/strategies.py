"""Query strategies: which unlabeled texts to ask people about next.

Every strategy has one signature::

    strategy(context, n, rng) -> Selection

``context`` is a frozen :class:`Context`: the head's ``(m, k)`` probabilities for the m
unlabeled candidates (``None`` before any model exists), the candidates' ``(m, d)``
features, the labeled features and labels, and the head itself, so that strategies
which need more than uncertainty (core-set, class-balanced, label-error-aware) need no
change anywhere else. ``n`` is the batch size; the result indexes the m candidates.
Strategies are pure: no I/O, no state, all randomness from ``rng``.

Big pools: a context may hold only a *shortlist* of the candidates (``positions`` says where
each row sits among all ``n_candidates``), so that scoring a million texts never holds a
million rows of probabilities. A strategy says which shortlist it can work from:
``uncertain_shortlist(n) -> (score, size)`` (it only ever picks among the ``size`` most
uncertain candidates by ``score``) or ``draw(m, n, rng)`` (it picks positions without
looking at the data). Either way it draws the same random numbers as on the full set, so
its selection is the same row for row (:func:`labelloop.learner.query` builds the shortlist).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal, get_args

import numpy as np

from .head import one_blas_thread

if TYPE_CHECKING:
    from .head import Classifier

__all__ = [
    "Context",
    "Selection",
    "Strategy",
    "StrategyName",
    "least_confidence",
    "entropy",
    "margin",
    "binary_margin",
    "RandomSampling",
    "Uncertainty",
    "DiverseUncertainty",
    "ColdStart",
    "ClassBalanced",
    "typicality",
    "class_quotas",
    "seed_strategy",
    "STRATEGIES",
    "DEFAULT_STRATEGY",
    "get_strategy",
    "check_strategy",
]


@dataclass(frozen=True)
class Selection:
    """Chosen rows, most uncertain first, with their uncertainty and diversity cluster (-1: none)."""

    indices: np.ndarray
    scores: np.ndarray
    clusters: np.ndarray

    def __len__(self) -> int:
        return len(self.indices)


@dataclass(frozen=True)
class Context:
    """What a strategy may look at; built by :func:`labelloop.learner.query`, never changed by a strategy.

    ``probs`` and ``features`` describe the m candidates (row i of each is candidate i);
    ``labeled_features``/``labels`` the texts already labeled (label indices); ``head`` the
    model that produced ``probs`` (None at cold start, where ``probs`` is None too).
    """

    probs: np.ndarray | None
    features: np.ndarray
    labeled_features: np.ndarray | None = None
    labels: np.ndarray | None = None
    head: Classifier | None = None
    positions: np.ndarray | None = None  # a shortlist: each row's place among all n_candidates (sorted)
    n_candidates: int | None = None  # how many candidates the shortlist was taken from

    def __len__(self) -> int:
        return len(self.features)

    @property
    def total(self) -> int:
        """The number of candidates the selection is among (more than ``len(self)`` for a shortlist)."""
        return len(self) if self.n_candidates is None else self.n_candidates

    @classmethod
    def cold(cls, features: np.ndarray) -> Context:
        """No model yet: only the candidates' features."""
        return cls(None, features)


Strategy = Callable[[Context, int, np.random.Generator], Selection]
"""The one signature every strategy has."""

StrategyName = Literal[
    "random",
    "least-confidence",
    "entropy",
    "margin",
    "least-confidence-kmeans",
    "entropy-kmeans",
    "margin-kmeans",
    "margin-kmeans-typical",
    "class-balanced",
    "cold-start",
]
"""The names the CLI, the config and :func:`get_strategy` accept."""


# -- uncertainty scores: higher means the model is less sure --------------------------------------


def least_confidence(probs: np.ndarray) -> np.ndarray:
    """1 − p(top class)."""
    return 1.0 - probs.max(axis=1)


def entropy(probs: np.ndarray) -> np.ndarray:
    """Shannon entropy of the predicted distribution (nats)."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(probs * np.log(p)).sum(axis=1)


def margin(probs: np.ndarray) -> np.ndarray:
    """1 − (p(top) − p(second)): highest when the two best classes are tied."""
    if probs.shape[1] < 2:
        return np.zeros(len(probs))
    top2 = np.partition(probs, -2, axis=1)[:, -2:]
    return 1.0 - (top2[:, 1] - top2[:, 0])


def binary_margin(probs: np.ndarray) -> np.ndarray:
    """Multi-label: mean over labels of ``1 − |2p − 1|`` for independent per-label probabilities."""
    return 1.0 - np.abs(2.0 * probs - 1.0).mean(axis=1)


SCORES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "least-confidence": least_confidence,
    "entropy": entropy,
    "margin": margin,
    "binary-margin": binary_margin,  # multi-label heads only (labelloop.multilabel)
}


def _no_clusters(n: int) -> np.ndarray:
    return np.full(n, -1, dtype=np.int64)


def _most_uncertain(scores: np.ndarray, ctx: Context, n: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of ``ctx`` with the ``n`` highest scores, exact ties broken at random, not by file order.

    The tie-break is a random permutation of *all* candidates, also for a shortlist: the same
    random numbers rank a shortlisted row where it would rank in the full set, so a shortlist
    that holds the top ``n`` (boundary ties included) yields the same rows in the same order.
    """
    perm = rng.permutation(ctx.total)
    if ctx.positions is None:
        return perm[np.argsort(-scores[perm], kind="stable")[:n]]
    rank = np.empty(ctx.total, dtype=np.int64)
    rank[perm] = np.arange(ctx.total)
    return np.lexsort((rank[ctx.positions], -scores))[:n]


def _kmeans(x: np.ndarray, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Cluster labels and centroids; mini-batch k-means on big inputs to stay within seconds."""
    # Imported here: a command that never clusters does not pay for scikit-learn's import.
    from sklearn.cluster import KMeans, MiniBatchKMeans

    seed = int(rng.integers(2**31 - 1))
    if len(x) > 20_000:
        km: KMeans | MiniBatchKMeans = MiniBatchKMeans(k, random_state=seed, n_init=3, batch_size=4096)
    else:
        km = KMeans(k, random_state=seed, n_init=1)
    # One BLAS thread: k-means++ seeding is many small distance products, on which a second thread
    # spin-waits (31 vs 6 CPU-s for 95 centroids of 50,000 float32 rows at load 9).
    with warnings.catch_warnings(), one_blas_thread():
        # Fewer distinct points than clusters (duplicates): k-means warns, result is still usable.
        warnings.simplefilter("ignore")
        labels = km.fit_predict(x)
    return labels, km.cluster_centers_


# -- strategies ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RandomSampling:
    """Uniform random batch: the baseline every other strategy must beat."""

    name: str = "random"

    def draw(self, m: int, n: int, rng: np.random.Generator) -> np.ndarray:
        """Positions among ``m`` candidates, chosen without looking at them."""
        return rng.choice(m, size=min(n, m), replace=False)

    def __call__(self, ctx: Context, n: int, rng: np.random.Generator) -> Selection:
        idx = pos = self.draw(ctx.total, n, rng)
        if ctx.positions is not None:  # a shortlist: it must hold the drawn rows (query draws them first)
            idx = np.minimum(np.searchsorted(ctx.positions, pos), len(ctx) - 1)
            if not np.array_equal(ctx.positions[idx], pos):
                raise ValueError("the shortlist lacks rows this random draw picked")
        probs = ctx.probs
        scores = np.zeros(len(idx)) if probs is None else margin(probs[idx])
        return Selection(idx, scores, _no_clusters(len(idx)))


@dataclass(frozen=True)
class Uncertainty:
    """The ``n`` candidates the model is least sure about."""

    score: str = "margin"
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"unknown uncertainty score {self.score!r}; choose from {', '.join(SCORES)}")
        object.__setattr__(self, "name", self.name or self.score)

    def uncertain_shortlist(self, n: int) -> tuple[str, int]:
        """It picks among the ``n`` most uncertain candidates only."""
        return self.score, n

    def __call__(self, ctx: Context, n: int, rng: np.random.Generator) -> Selection:
        probs = ctx.probs
        if probs is None:
            return ColdStart()(ctx, n, rng)
        scores = SCORES[self.score](probs)
        idx = _most_uncertain(scores, ctx, n, rng)
        return Selection(idx, scores[idx], _no_clusters(len(idx)))


@dataclass(frozen=True)
class DiverseUncertainty:
    """One text per k-means cluster of the ``candidate_factor × n`` most uncertain texts.

    Plain uncertainty sampling picks near-duplicates (ten rewordings of one confusing
    question). Clustering the uncertain candidates in embedding space spends each
    label on a different confusion. From each cluster we take, by default, the text
    nearest its centroid (``pick="centroid"``): a typical example of that confusion
    rather than its strangest outlier. On BANKING77 (raw embeddings) that reached 98 % of
    full-pool accuracy at 1,520 labels (mean of 5 seeds) against 1,633 for
    ``pick="uncertain"`` (3 seeds) and 1,760 for plain margin; with the default
    neighbour-smoothed features (:mod:`labelloop.features`), at 1,020 against 1,260.
    ``pick="typical"`` takes the member densest among its cluster (:func:`typicality`);
    with a typical seed too (``margin-kmeans-typical``) it needed fewer labels on tiny
    sets but more on BANKING77 (1,100) and three other shapes (benchmarks/results/levers.md).
    ``cold_start`` is the seed rule used before any model (:func:`seed_strategy`).
    """

    score: str = "margin"
    candidate_factor: int = 5
    pick: str = "centroid"
    cold_start: Strategy | None = None  # the seed rule with no model (None: ColdStart)
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"unknown uncertainty score {self.score!r}; choose from {', '.join(SCORES)}")
        if self.candidate_factor < 1:
            raise ValueError("candidate_factor must be ≥ 1")
        if self.pick not in ("centroid", "uncertain", "typical"):
            raise ValueError("pick must be 'centroid', 'uncertain' or 'typical'")
        object.__setattr__(self, "name", self.name or f"{self.score}-kmeans")

    def uncertain_shortlist(self, n: int) -> tuple[str, int]:
        """It clusters the ``candidate_factor × n`` most uncertain candidates only."""
        return self.score, n * self.candidate_factor

    def __call__(self, ctx: Context, n: int, rng: np.random.Generator) -> Selection:
        if ctx.probs is None:
            return seed_strategy(self)(ctx, n, rng)
        top = Uncertainty(self.score)(ctx, n * self.candidate_factor, rng)
        if len(top) <= n:
            return top
        cand = ctx.features[top.indices]
        labels, centers = _kmeans(cand, n, rng)
        chosen = []
        for c in range(n):
            members = np.flatnonzero(labels == c)
            if len(members) == 0:
                continue
            # ``top`` is sorted, so among equals the first member is the most uncertain.
            if self.pick == "centroid":
                d = ((cand[members] - centers[c]) ** 2).sum(axis=1)
                chosen.append(members[np.flatnonzero(d <= d.min() + 1e-6)[0]])  # ties: 2-member clusters
            elif self.pick == "typical":
                chosen.append(members[_most_typical(cand[members])])
            else:
                chosen.append(members[0])
        # Empty clusters (duplicate points) are filled with the next most uncertain candidates.
        taken = set(chosen)
        chosen += [i for i in range(len(top)) if i not in taken][: n - len(chosen)]
        order = np.array(sorted(chosen, key=lambda i: -top.scores[i]))
        return Selection(top.indices[order], top.scores[order], labels[order].astype(np.int64))


@dataclass(frozen=True)
class ColdStart:
    """Seed set with no model: one text per k-means cluster of the pool, ``n`` clusters.

    The seed decides how the whole loop goes: a random seed misses small intents and
    spends labels on the big ones, centroids cover the embedding space. From each cluster
    it takes the text nearest the centroid (``pick="centroid"``) or, as TypiClust does
    (Hacohen et al. 2022), the most *typical* one (``pick="typical"``: the densest, see
    :func:`typicality`). Pools above ``sample`` rows are clustered on a uniform sample of
    that many (a class holding 1 % of the pool has ~500 rows in it): k-means over a million
    rows cost 49 CPU-seconds before the first question.
    """

    name: str = "cold-start"
    sample: int = 50_000
    pick: str = "centroid"

    def __post_init__(self) -> None:
        if self.pick not in ("centroid", "typical"):
            raise ValueError("pick must be 'centroid' or 'typical'")

    def __call__(self, ctx: Context, n: int, rng: np.random.Generator) -> Selection:
        m = len(ctx.features)
        if n <= 0:
            return Selection(np.empty(0, dtype=np.int64), np.empty(0), _no_clusters(0))
        if n >= m:
            return Selection(np.arange(m), np.zeros(m), np.arange(m))
        rows = np.sort(rng.choice(m, size=self.sample, replace=False)) if m > max(self.sample, n) else None
        embeddings = np.asarray(ctx.features if rows is None else ctx.features[rows])
        chosen, clusters = _one_per_cluster(embeddings, n, rng, self.pick)
        if rows is not None:
            chosen = rows[chosen]
        return Selection(chosen, np.zeros(len(chosen)), clusters)


def _one_per_cluster(
    embeddings: np.ndarray, n: int, rng: np.random.Generator, pick: str = "centroid"
) -> tuple[np.ndarray, np.ndarray]:
    """One row per ``n`` k-means clusters (nearest the centroid or most typical; random rows fill
    empty clusters), and its cluster."""
    labels, centers = _kmeans(embeddings, n, rng)
    chosen, clusters = [], []
    for c in range(n):
        members = np.flatnonzero(labels == c)
        if len(members) == 0:
            continue
        if pick == "typical":
            chosen.append(members[_most_typical(embeddings[members])])
        else:
            d = ((embeddings[members] - centers[c]) ** 2).sum(axis=1)
            chosen.append(members[int(np.argmin(d))])
        clusters.append(c)
    missing = n - len(chosen)
    if missing:
        rest = np.setdiff1d(np.arange(len(embeddings)), chosen)
        extra = rng.choice(rest, size=missing, replace=False)
        chosen += extra.tolist()
        clusters += labels[extra].tolist()
    return np.array(chosen, dtype=np.int64), np.array(clusters, dtype=np.int64)


TYPICALITY_K = 20  # neighbours TypiClust averages over (fewer in small clusters, see _most_typical)
_TYPICALITY_CHUNK = 1024  # rows whose distances to all others are held at once


def typicality(x: np.ndarray, k: int) -> np.ndarray:
    """Inverse mean Euclidean distance of each row of ``x`` to its ``k`` nearest other rows.

    TypiClust's density score: a high value marks a text in the thick of its neighbourhood, a
    low one an outlier. Distances are computed ``_TYPICALITY_CHUNK`` rows at a time; a row whose
    ``k`` neighbours are all identical copies of it is infinitely typical.
    """
    x = np.asarray(x, dtype=np.float64)
    m = len(x)
    if not 1 <= k < m:
        raise ValueError(f"k must be between 1 and {m - 1} for {m} rows, got {k}")
    sq = (x**2).sum(axis=1)
    out = np.empty(m)
    for start in range(0, m, _TYPICALITY_CHUNK):
        block = slice(start, min(start + _TYPICALITY_CHUNK, m))
        d2 = sq[block, None] + sq[None, :] - 2.0 * x[block] @ x.T
        d2[np.arange(d2.shape[0]), np.arange(block.start, block.stop)] = np.inf  # not its own neighbour
        near = np.sqrt(np.maximum(np.partition(d2, k - 1, axis=1)[:, :k], 0.0))
        with np.errstate(divide="ignore"):
            out[block] = 1.0 / near.mean(axis=1)
    return out


def _most_typical(x: np.ndarray) -> int:
    """Row of ``x`` with the highest typicality over ``min(20, len/2)`` neighbours, as TypiClust's code
    does inside each cluster (the first such row on ties; row 0 of a single row)."""
    if len(x) < 2:
        return 0
    return int(np.argmax(typicality(x, min(TYPICALITY_K, max(1, len(x) // 2)))))


def seed_strategy(strategy: Strategy) -> Strategy:
    """The rule that picks the seed set for ``strategy`` before any model exists (its ``cold_start``, else
    :class:`ColdStart`)."""
    return getattr(strategy, "cold_start", None) or ColdStart()


def class_quotas(available: np.ndarray, labeled: np.ndarray, n: int) -> np.ndarray:
    """Per class, how many of ``n`` picks it gets: in proportion to ``1 / (1 + labels it has)``, at most
    the ``available`` candidates predicted as it (D'Hondt's divisor rule, so the counts are whole).

    A class the head has seen twice gets about four times the picks of one seen eleven times: the
    batch goes where the head knows least, not where the uncertain texts happen to pile up.
    """
    available = np.asarray(available, dtype=np.int64)
    weight = 1.0 / (1.0 + np.asarray(labeled, dtype=np.float64))
    quota = np.zeros(len(available), dtype=np.int64)
    for _ in range(min(n, int(available.sum()))):
        merit = np.where(quota < available, weight / (1.0 + quota), -np.inf)
        quota[int(np.argmax(merit))] += 1  # ties: the lower class index
    return quota


def _balanced_fill(
    order: np.ndarray, pred: np.ndarray, clusters: np.ndarray, quota: np.ndarray, n: int
) -> list[int]:
    """Up to ``n`` candidates: first one per cluster within the class quotas (in ``order``), then the
    quotas without the one-per-cluster rule, then any candidate, each pass most uncertain first."""
    quota = quota.copy()
    chosen: list[int] = []
    taken = np.zeros(len(pred), dtype=bool)
    used: set[int] = set()
    for i in order:  # pass 1: one per cluster, class quotas
        if len(chosen) < n and quota[pred[i]] > 0 and clusters[i] not in used:
            chosen.append(int(i))
            taken[i], quota[pred[i]] = True, quota[pred[i]] - 1
            used.add(int(clusters[i]))
    for i in range(len(pred)):  # pass 2: class quotas only (candidates are sorted most uncertain first)
        if len(chosen) < n and not taken[i] and quota[pred[i]] > 0:
            chosen.append(i)
            taken[i], quota[pred[i]] = True, quota[pred[i]] - 1
    chosen += [i for i in range(len(pred)) if not taken[i]][: n - len(chosen)]  # pass 3
    return chosen


@dataclass(frozen=True)
class ClassBalanced:
    """Margin-kmeans with the batch spread over predicted classes, favouring classes with few labels.

    small-text's ClassBalancer idea: the ``candidate_factor × n`` most uncertain texts are
    clustered into ``n`` k-means clusters (as :class:`DiverseUncertainty` does) and each
    predicted class gets a quota (:func:`class_quotas`). The batch takes one text per cluster,
    nearest-the-centroid texts first, as long as its predicted class has quota left; then fills
    the quotas by uncertainty, then anything by uncertainty. Needs ``ctx.labels`` for the
    counts (without them every class counts as unlabeled, i.e. equal quotas).
    """

    score: str = "margin"
    candidate_factor: int = 5
    name: str = "class-balanced"

    def __post_init__(self) -> None:
        if self.score not in SCORES:
            raise ValueError(f"unknown uncertainty score {self.score!r}; choose from {', '.join(SCORES)}")
        if self.candidate_factor < 1:
            raise ValueError("candidate_factor must be ≥ 1")

    def uncertain_shortlist(self, n: int) -> tuple[str, int]:
        """It works on the ``candidate_factor × n`` most uncertain candidates only."""
        return self.score, n * self.candidate_factor

    def __call__(self, ctx: Context, n: int, rng: np.random.Generator) -> Selection:
        probs = ctx.probs
        if probs is None:
            return ColdStart()(ctx, n, rng)
        top = Uncertainty(self.score)(ctx, n * self.candidate_factor, rng)
        if len(top) <= n:
            return top
        cand = ctx.features[top.indices]
        clusters, centers = _kmeans(cand, n, rng)
        k = probs.shape[1]
        pred = probs[top.indices].argmax(axis=1)
        labeled = np.zeros(k) if ctx.labels is None else np.bincount(ctx.labels, minlength=k)[:k]
        quota = class_quotas(np.bincount(pred, minlength=k), labeled, n)
        # Within each cluster, members by distance to its centroid; across clusters, most uncertain first.
        d = ((cand - centers[clusters]) ** 2).sum(axis=1)
        rank = np.empty(len(cand), dtype=np.int64)
        for c in np.unique(clusters):
            members = np.flatnonzero(clusters == c)
            rank[members[np.argsort(d[members], kind="stable")]] = np.arange(len(members))
        order = np.lexsort((np.arange(len(cand)), rank))
        chosen = np.array(
            sorted(_balanced_fill(order, pred, clusters, quota, n))
        )  # sorted = most uncertain first
        return Selection(top.indices[chosen], top.scores[chosen], clusters[chosen].astype(np.int64))


STRATEGIES: dict[StrategyName, Strategy] = {
    "random": RandomSampling(),
    "least-confidence": Uncertainty("least-confidence"),
    "entropy": Uncertainty("entropy"),
    "margin": Uncertainty("margin"),
    "least-confidence-kmeans": DiverseUncertainty("least-confidence"),
    "entropy-kmeans": DiverseUncertainty("entropy"),
    "margin-kmeans": DiverseUncertainty("margin"),
    "margin-kmeans-typical": DiverseUncertainty(
        "margin", pick="typical", cold_start=ColdStart(pick="typical"), name="margin-kmeans-typical"
    ),
    "class-balanced": ClassBalanced(),
    "cold-start": ColdStart(),
}
DEFAULT_STRATEGY: StrategyName = "margin-kmeans"
assert set(get_args(StrategyName)) == set(STRATEGIES), "StrategyName and STRATEGIES must list the same names"


def check_strategy(name: str) -> StrategyName:
    """``name`` if it is a strategy, else a :class:`ValueError` listing the choices (the one check)."""
    if name not in STRATEGIES:
        raise ValueError(f"unknown strategy {name!r}; choose from {', '.join(STRATEGIES)}")
    return name  # type: ignore[return-value]


def get_strategy(name: str) -> Strategy:
    """Look a strategy up by its CLI name."""
    return STRATEGIES[check_strategy(name)]
