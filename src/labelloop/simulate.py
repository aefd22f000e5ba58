"""Replay known labels as a simulated annotator, to compare strategies before paying people.

seed set → train → score → query → reveal → retrain, recording the test metrics of
every round. Works on arrays (the head's features and label indices); loading files,
embedding them and smoothing them over the pool (:mod:`labelloop.features`) is the
caller's job, done once per pool rather than once per run (see :func:`labelloop.cli.simulate`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any, TypedDict

import numpy as np

from .head import DEFAULT_C
from .learner import class_recall, evaluate, query, train
from .strategies import DEFAULT_STRATEGY, Context, RandomSampling, Strategy, get_strategy, seed_strategy

__all__ = [
    "simulate",
    "full_pool",
    "stratified_sample",
    "CEILING_MAX",
    "labels_to_reach",
    "area_under_curve",
    "accuracy_at",
    "RoundRecord",
    "SimulationResult",
    "INITIAL_STRATEGIES",
]

INITIAL_STRATEGIES = ("cold-start", "random")

FeaturesAt = Callable[[int], tuple[np.ndarray, np.ndarray]]
"""Labels in hand → (pool features, test features) of a head trained on that many labels."""

# The ceiling's head is trained on at most this many pool rows (a stratified sample above): a head
# fitted on a million rows would cost more than the simulated campaign it is the ceiling of. How much
# accuracy the sample gives up was not measured; raise --ceiling-max to check on your data.
CEILING_MAX = 50_000


class RoundRecord(TypedDict):
    round: int
    n_labeled: int
    accuracy: float
    macro_f1: float
    precision: float
    recall: float
    seconds: float  # train + score + select of this round (wall)
    cpu_seconds: float  # the same in CPU-seconds of this process (all threads): steadier on a busy machine
    seconds_train: float
    seconds_score: float
    seconds_select: float
    rows_covered: int  # data rows the n_labeled labels stand for (more when identical texts were collapsed)
    classes_seen: int  # classes with at least one label so far
    class_recall: list[float | None]  # test recall per class index (None: no test row of that class)


class SimulationResult(TypedDict):
    strategy: str
    seed: int
    model: str
    features: str  # how embeddings became features, e.g. "knn-smooth(k=6, weight=0.5)"
    n_pool: int  # distinct texts: what the budget counts
    n_pool_rows: int  # data rows they stand for
    n_classes: int
    full_pool: dict[str, float]  # accuracy, macro_f1 and n, the pool rows the ceiling was trained on
    rounds: list[RoundRecord]


def stratified_sample(y: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    """``size`` row indices of ``y`` (ascending) with every class in proportion, each class at least once.

    Counts are rounded by largest remainder, so they add up to ``size`` (or to the number of classes,
    if that is larger: no class is left out of the ceiling). All rows when ``size ≥ len(y)``.
    """
    if size >= len(y):
        return np.arange(len(y))
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = counts * (size / len(y))
    take = np.maximum(np.floor(quota).astype(np.int64), 1)
    short = size - int(take.sum())
    if short > 0:  # the largest remainders get one more (each has room: quota < count)
        take[np.argsort(-(quota - np.floor(quota)), kind="stable")[:short]] += 1
    rows = [
        rng.choice(np.flatnonzero(inverse == c), size=int(take[c]), replace=False)
        for c in range(len(classes))
    ]
    return np.sort(np.concatenate(rows))


def full_pool(
    X_pool: np.ndarray,
    y_pool: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    *,
    C: float = DEFAULT_C,
    max_rows: int | None = CEILING_MAX,
    seed: int = 0,
) -> dict[str, float]:
    """The ceiling: the same head trained on every pool label, or on a stratified sample of ``max_rows``.

    ``n`` in the result says how many pool rows it was trained on.
    """
    rows = np.arange(len(y_pool))
    if max_rows is not None:
        if max_rows < 1:
            raise ValueError("max_rows must be ≥ 1")
        rows = stratified_sample(y_pool, max_rows, np.random.default_rng(seed))
    head = train(X_pool, y_pool, rows, n_classes, C=C)
    m = evaluate(head, X_test, y_test)
    return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"], "n": len(rows)}


def simulate(
    X_pool: np.ndarray,
    y_pool: np.ndarray,
    X_test: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    *,
    strategy: str | Strategy = DEFAULT_STRATEGY,
    initial: int = 100,
    initial_strategy: str = "cold-start",
    batch_size: int = 100,
    budget: int = 2000,
    seed: int = 0,
    C: float = DEFAULT_C,
    model: str = "",
    features: str = "",
    ceiling: dict[str, float] | None = None,
    ceiling_max: int | None = CEILING_MAX,
    progress: Any = None,
    copies: np.ndarray | None = None,
    features_at: FeaturesAt | None = None,
) -> SimulationResult:
    """Run one simulated campaign and return its results (the ``results.json`` schema).

    ``X_pool``/``X_test`` are the head's features; ``model`` and ``features`` only label the result.
    ``strategy`` is a name or a strategy object (benchmarks measure unregistered variants; the result
    records its ``name``). ``initial=0`` starts cold: the first batch is chosen by the strategy's seed
    rule (:func:`labelloop.strategies.seed_strategy`), as is the initial set with ``initial_strategy="cold-start"``.
    ``progress`` may be a callable ``(n_labeled, budget)`` called after each round. Without a
    ``ceiling`` it is computed here, on at most ``ceiling_max`` pool rows (:func:`full_pool`).
    ``copies`` gives how many data rows each pool item stands for (identical texts collapsed by
    :func:`labelloop.data.load_pool`): the budget counts questions, i.e. items, and each round also
    records the rows its labels cover. The head stays unweighted (see the README on duplicates).
    ``features_at(n)`` gives the pool's and test set's features for a head trained on ``n`` labels
    (:meth:`labelloop.featurize.Featurized.at`: the neighbour weight fades once half the pool is labeled);
    without it ``X_pool`` and ``X_test`` serve every round.
    """
    _check_plan(initial, initial_strategy, batch_size, budget)
    strat = get_strategy(strategy) if isinstance(strategy, str) else strategy
    rng = np.random.default_rng(seed)
    n_pool = len(y_pool)
    budget = min(budget, n_pool)
    copies = np.ones(n_pool, dtype=np.int64) if copies is None else np.asarray(copies, dtype=np.int64)
    if copies.shape != (n_pool,):
        raise ValueError(f"copies has {len(copies)} entries for a pool of {n_pool}")
    labeled, seed_wall, seed_cpu = _seed_labels(
        X_pool,
        seed_strategy(strat) if (initial == 0 or initial_strategy == "cold-start") else None,
        min(initial or batch_size, budget),
        rng,
    )
    at = features_at or (lambda n: (X_pool, X_test))
    data = (at, y_pool, y_test, n_classes)
    rounds = _rounds(
        data, labeled, strat, rng, copies, batch_size, budget, C, seed, (seed_wall, seed_cpu), progress
    )
    if ceiling is None:
        P, T = at(n_pool if ceiling_max is None else min(n_pool, ceiling_max))  # the labels it is trained on
        ceiling = full_pool(P, y_pool, T, y_test, n_classes, C=C, max_rows=ceiling_max, seed=seed)
    return SimulationResult(
        strategy=strategy if isinstance(strategy, str) else str(getattr(strategy, "name", strategy)),
        seed=seed,
        model=model,
        features=features,
        n_pool=n_pool,
        n_pool_rows=int(copies.sum()),
        n_classes=n_classes,
        full_pool=ceiling,
        rounds=rounds,
    )


def _seed_labels(
    X_pool: np.ndarray, cold: Strategy | None, first: int, rng: np.random.Generator
) -> tuple[np.ndarray, float, float]:
    """The rows labeled before the first model (by the seed rule ``cold``, at random if None), as a mask,
    with the wall and CPU seconds choosing them took (charged to the first round, which trains on them)."""
    labeled = np.zeros(len(X_pool), dtype=bool)
    seeder = cold if cold is not None else RandomSampling()
    t0, c0 = time.perf_counter(), time.process_time()
    labeled[seeder(Context.cold(X_pool), first, rng).indices] = True
    return labeled, time.perf_counter() - t0, time.process_time() - c0


def _rounds(
    data: tuple[FeaturesAt, np.ndarray, np.ndarray, int],
    labeled: np.ndarray,
    strategy: Strategy,
    rng: np.random.Generator,
    copies: np.ndarray,
    batch_size: int,
    budget: int,
    C: float,
    seed: int,
    pending: tuple[float, float],
    progress: Any,
) -> list[RoundRecord]:
    """Train, score and reveal round after round until ``budget`` labels are spent; ``data`` is
    ``(features_at, y_pool, y_test, n_classes)`` and ``pending`` the seeding's wall and CPU seconds."""
    pending_select, pending_cpu = pending
    rounds: list[RoundRecord] = []
    while True:
        covered = int(copies[labeled].sum())  # before _round reveals the next batch
        n = min(batch_size, budget - int(labeled.sum()))
        record = _round(len(rounds), *data, labeled, strategy, n, rng, C=C, seed=seed)
        record["rows_covered"] = covered
        record["seconds"] += pending_select
        record["seconds_select"] += pending_select
        record["cpu_seconds"] += pending_cpu
        pending_select = pending_cpu = 0.0
        rounds.append(record)
        if progress is not None:
            progress(record["n_labeled"], budget)
        if record["n_labeled"] >= budget:
            return rounds


def _check_plan(initial: int, initial_strategy: str, batch_size: int, budget: int) -> None:
    if batch_size < 1:
        raise ValueError("batch size must be ≥ 1")
    if initial < 0 or budget < 1:
        raise ValueError("initial must be ≥ 0 and budget ≥ 1")
    if initial_strategy not in INITIAL_STRATEGIES:
        raise ValueError(f"initial strategy must be one of {', '.join(INITIAL_STRATEGIES)}")


def _round(
    number: int,
    features_at: FeaturesAt,
    y_pool: np.ndarray,
    y_test: np.ndarray,
    n_classes: int,
    labeled: np.ndarray,
    strategy: Strategy,
    n: int,
    rng: np.random.Generator,
    *,
    C: float,
    seed: int,
) -> RoundRecord:
    """Train on the labeled rows, score the test set, then reveal the next ``n`` chosen rows (``labeled``
    is updated in place); ``n = 0`` ends the campaign."""
    t0, c0 = time.perf_counter(), time.process_time()
    idx = np.flatnonzero(labeled)
    X_pool, X_test = features_at(len(idx))
    head = train(X_pool, y_pool, idx, n_classes, C=C, seed=seed)
    t_train, c_train = time.perf_counter() - t0, time.process_time() - c0
    metrics = evaluate(head, X_test, y_test)
    recall = class_recall(head, X_test, y_test, n_classes)
    seen = len(np.unique(y_pool[idx]))
    t_score = t_select = 0.0
    c1 = time.process_time()
    if n > 0:
        q = query(head, X_pool, np.flatnonzero(~labeled), strategy, n, rng, y=y_pool, labeled=idx)
        labeled[q.indices] = True
        t_score, t_select = q.seconds_score, q.seconds_select
    c_query = time.process_time() - c1
    return RoundRecord(
        round=number,
        n_labeled=len(idx),
        accuracy=metrics["accuracy"],
        macro_f1=metrics["macro_f1"],
        precision=metrics["precision"],
        recall=metrics["recall"],
        seconds=t_train + t_score + t_select,
        cpu_seconds=c_train + c_query,
        seconds_train=t_train,
        seconds_score=t_score,
        seconds_select=t_select,
        rows_covered=len(idx),  # the caller sets it from the copies
        classes_seen=seen,
        class_recall=recall,
    )


# -- summaries of a learning curve -------------------------------------------------------------


def labels_to_reach(result: SimulationResult, fraction: float, metric: str = "accuracy") -> int | None:
    """Fewest labels at which ``metric`` reached ``fraction`` of the full-pool value (None: never)."""
    target = fraction * result["full_pool"][metric]
    for r in result["rounds"]:
        if r[metric] >= target - 1e-12:  # type: ignore[literal-required]
            return r["n_labeled"]
    return None


def accuracy_at(result: SimulationResult, n_labeled: int) -> float:
    """Accuracy at ``n_labeled`` labels, linearly interpolated between rounds."""
    xs = [r["n_labeled"] for r in result["rounds"]]
    ys = [r["accuracy"] for r in result["rounds"]]
    if not xs[0] <= n_labeled <= xs[-1]:
        raise ValueError(f"{n_labeled} labels is outside the curve ({xs[0]}..{xs[-1]})")
    return float(np.interp(n_labeled, xs, ys))


def area_under_curve(result: SimulationResult, metric: str = "accuracy") -> float:
    """Mean ``metric`` over the labeling budget (trapezoid area / label range): one number per curve."""
    xs = np.asarray([r["n_labeled"] for r in result["rounds"]], dtype=np.float64)
    ys = np.asarray([r[metric] for r in result["rounds"]], dtype=np.float64)  # type: ignore[literal-required]
    if len(xs) < 2:
        return float(ys[0])
    return float(np.trapezoid(ys, xs) / (xs[-1] - xs[0]))


def mean_curve(
    results: Sequence[SimulationResult], metric: str = "accuracy"
) -> tuple[np.ndarray, np.ndarray]:
    """Mean of several seeds' curves on the first seed's label counts."""
    xs = np.array([r["n_labeled"] for r in results[0]["rounds"]], dtype=float)
    ys = np.mean(
        [
            np.interp(
                xs,
                [r["n_labeled"] for r in res["rounds"]],
                [r[metric] for r in res["rounds"]],  # type: ignore[literal-required]
            )
            for res in results
        ],
        axis=0,
    )
    return xs, ys
