"""One active-learning round, with no I/O: train the head, score the candidates, select a batch.

Every driver goes through :func:`train` and :func:`query`: ``simulate`` (oracle replay)
directly, ``push``, ``sync`` and the notebook through :class:`labelloop.campaign.Campaign`.
So the strategy measured in simulation is the one that runs in production.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from .head import DEFAULT_C, Head
from .strategies import ColdStart, Context, Selection, Strategy

__all__ = ["train", "query", "Query", "evaluate"]


def train(X: np.ndarray, y: np.ndarray, labeled: np.ndarray, n_classes: int, *, C: float = DEFAULT_C,
          seed: int = 0) -> Head:
    """Fit a fresh head on the rows ``labeled`` of ``X`` with label indices ``y[labeled]``."""
    return Head(n_classes, C=C, seed=seed).fit(X[labeled], y[labeled])


@dataclass(frozen=True)
class Query:
    """A batch chosen from the pool: row indices into the pool, most uncertain first."""

    indices: np.ndarray
    scores: np.ndarray
    clusters: np.ndarray
    probs: np.ndarray | None  # the head's probabilities for the chosen rows (None at cold start)
    seconds_score: float
    seconds_select: float


def query(head: Head | None, X: np.ndarray, unlabeled: np.ndarray, strategy: Strategy, n: int,
          rng: np.random.Generator, *, y: np.ndarray | None = None,
          labeled: np.ndarray | None = None) -> Query:
    """Choose ``n`` rows among ``unlabeled`` (pool row indices); ``head=None`` means cold start.

    ``y``/``labeled`` (label indices of the pool, labeled rows) give the strategy the labeled
    set too; strategies that only look at uncertainty ignore them.
    """
    t0 = time.perf_counter()
    cand = X[unlabeled]
    probs = head.predict_proba(cand) if head is not None else None
    t1 = time.perf_counter()
    if head is None:
        sel: Selection = ColdStart()(Context.cold(cand), n, rng)
    else:
        known_X = None if labeled is None else X[labeled]
        known_y = None if labeled is None or y is None else y[labeled]
        sel = strategy(Context(probs, cand, known_X, known_y, head), n, rng)
    t2 = time.perf_counter()
    return Query(
        indices=unlabeled[sel.indices],
        scores=sel.scores,
        clusters=sel.clusters,
        probs=None if probs is None else probs[sel.indices],
        seconds_score=t1 - t0,
        seconds_select=t2 - t1,
    )


def evaluate(head: Head, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1/precision/recall over the labels present in ``y``."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    pred = head.predict(X)
    labels = np.unique(y)
    p, r, f, _ = precision_recall_fscore_support(y, pred, labels=labels, average="macro", zero_division=0)
    return {"accuracy": float(accuracy_score(y, pred)), "macro_f1": float(f), "precision": float(p),
            "recall": float(r)}
