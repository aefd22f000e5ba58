"""One active-learning round, with no I/O: train the head, score the candidates, select a batch.

Every driver goes through :func:`train` and :func:`query`: ``simulate`` (oracle replay)
directly, ``push``, ``sync`` and the notebook through :class:`labelloop.campaign.Campaign`.
So the strategy measured in simulation is the one that runs in production.
"""

from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np

from .head import DEFAULT_C, Classifier, Head
from .labels import DEFAULT_DELIMITER, LabelSet, split_labels
from .scoring import SCORE_CHUNK, predict, predict_proba, rows_of, uncertain_rows
from .strategies import (
    DEFAULT_STRATEGY,
    Context,
    Selection,
    Strategy,
    StrategyName,
    get_strategy,
    seed_strategy,
)

__all__ = ["train", "query", "candidates", "Query", "evaluate", "ActiveLearner", "Pick", "model_version"]


def train(
    X: np.ndarray, y: np.ndarray, labeled: np.ndarray, n_classes: int, *, C: float = DEFAULT_C, seed: int = 0
) -> Head:
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


def query(
    head: Classifier | None,
    X: np.ndarray,
    unlabeled: np.ndarray,
    strategy: Strategy,
    n: int,
    rng: np.random.Generator,
    *,
    y: np.ndarray | None = None,
    labeled: np.ndarray | None = None,
    chunk: int = SCORE_CHUNK,
) -> Query:
    """Choose ``n`` rows among ``unlabeled`` (pool row indices); ``head=None`` means cold start (the
    strategy's seed rule, :func:`labelloop.strategies.seed_strategy`, on every candidate).

    ``y``/``labeled`` (label indices of the pool, labeled rows) give the strategy the labeled
    set too; strategies that only look at uncertainty ignore them. The candidates are scored
    ``chunk`` rows at a time and the strategy sees only the shortlist it declares (see
    :func:`candidates`), so a million-row pool costs one chunk of memory, not a copy of itself.
    """
    t0 = time.perf_counter()
    known_X = None if labeled is None else X[labeled]
    known_y = None if labeled is None or y is None else y[labeled]
    if head is None:
        ctx = Context.cold(rows_of(X, unlabeled))
        t1 = time.perf_counter()
        sel: Selection = seed_strategy(strategy)(ctx, n, rng)
    else:
        ctx = candidates(head, X, unlabeled, strategy, n, rng, chunk=chunk)
        ctx = replace(ctx, labeled_features=known_X, labels=known_y, head=head)
        t1 = time.perf_counter()
        sel = strategy(ctx, n, rng)
    t2 = time.perf_counter()
    positions = sel.indices if ctx.positions is None else ctx.positions[sel.indices]
    return Query(
        indices=unlabeled[positions],
        scores=sel.scores,
        clusters=sel.clusters,
        probs=None if ctx.probs is None else ctx.probs[sel.indices],
        seconds_score=t1 - t0,
        seconds_select=t2 - t1,
    )


def candidates(
    head: Classifier,
    X: np.ndarray,
    unlabeled: np.ndarray,
    strategy: Strategy,
    n: int,
    rng: np.random.Generator,
    *,
    chunk: int = SCORE_CHUNK,
) -> Context:
    """The strategy's view of the candidates ``X[unlabeled]``: only the rows it can pick from.

    - ``uncertain_shortlist(n) -> (score, size)``: the ``size`` most uncertain rows (ties included);
    - ``draw(m, n, rng)``: the rows it will draw, found with a copy of ``rng`` (``rng`` itself is untouched);
    - any other strategy: every candidate, with its probabilities (pool-sized; fine for small pools).

    Shortlists carry ``positions``/``n_candidates``, so the strategy draws the same random
    numbers and picks the same rows as it would from the full set.
    """
    m = len(unlabeled)
    shortlist = getattr(strategy, "uncertain_shortlist", None)
    draw = getattr(strategy, "draw", None)
    if shortlist is not None:
        score, size = shortlist(n)
        pos, probs = uncertain_rows(head, X, unlabeled, score, size, chunk)
    elif draw is not None:
        pos = np.sort(draw(m, n, copy.deepcopy(rng)))
        probs = predict_proba(head, X, unlabeled[pos], chunk)
    else:
        return Context(predict_proba(head, X, unlabeled, chunk), rows_of(X, unlabeled))
    return Context(probs, X[unlabeled[pos]], positions=pos, n_candidates=m)


def evaluate(head: Head, X: np.ndarray, y: np.ndarray, *, chunk: int = SCORE_CHUNK) -> dict[str, float]:
    """Accuracy and macro F1/precision/recall over the labels present in ``y`` (``X`` scored in chunks)."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support

    pred = predict(head, X, chunk)
    labels = np.unique(y)
    p, r, f, _ = precision_recall_fscore_support(y, pred, labels=labels, average="macro", zero_division=0)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f),
        "precision": float(p),
        "recall": float(r),
    }


def class_recall(
    head: Head, X: np.ndarray, y: np.ndarray, n_classes: int, *, chunk: int = SCORE_CHUNK
) -> list[float | None]:
    """Recall of each class on ``(X, y)`` (None for a class with no test row): a rare class the loop has
    not found yet shows as 0 here long before it moves the accuracy."""
    pred = predict(head, X, chunk)
    out: list[float | None] = []
    for c in range(n_classes):
        rows = y == c
        out.append(float((pred[rows] == c).mean()) if rows.any() else None)
    return out


def model_version(labels: Mapping[str, str], encoder_identity: str, recipe: str = "") -> str:
    """A model version derived from what the model is trained on: same labels and recipe, same version."""
    h = hashlib.sha256(f"{encoder_identity}\n{recipe}\n".encode())
    for our_id in sorted(labels):
        h.update(f"{our_id}\t{labels[our_id]}\n".encode())
    return f"labelloop-{len(labels)}-{h.hexdigest()[:10]}"


@dataclass(frozen=True)
class Pick:
    """A text chosen for labeling, with the model's guess (None at cold start) and why it was chosen."""

    row: int
    id: str
    text: str
    predicted: str | None
    confidence: float | None
    score: float
    cluster: int | None


@dataclass(frozen=True, eq=False)
class ActiveLearner:
    """The one place that decides what the head learns from and which texts people see next.

    It holds the pool's features and the recipe (label set, strategy, C, seed) and does no I/O:
    ``push``, ``sync`` and the notebook train and select through it, and ``simulate`` runs the
    same :func:`train` and :func:`query`, so simulation and production cannot drift.
    Labels are given by our ids (``{id: label}``); ids outside the pool are ignored.
    """

    ids: Sequence[str]
    texts: Sequence[str]
    X: np.ndarray
    classes: LabelSet
    strategy: StrategyName = DEFAULT_STRATEGY
    C: float = DEFAULT_C
    seed: int = 0
    encoder_identity: str = ""
    features: str = ""
    # Multi-label: a label is a set joined by ``delimiter`` (labels.join_labels); the head is one-vs-rest.
    multi_label: bool = False
    delimiter: str = DEFAULT_DELIMITER

    @cached_property
    def index(self) -> dict[str, int]:
        """Our id -> pool row."""
        return {i: r for r, i in enumerate(self.ids)}

    def _targets(self, labels: Mapping[str, str]) -> np.ndarray:
        y = np.full(len(self.ids), -1, dtype=np.int64)
        for i, lab in labels.items():
            row = self.index.get(i)
            if row is not None:
                y[row] = self.classes.index(lab)
        return y

    def _label_matrix(self, labels: Mapping[str, str]) -> tuple[np.ndarray, np.ndarray]:
        """Multi-label: the labeled pool rows and their ``(n, k)`` bool label matrix."""
        from .multilabel import label_matrix

        known = [
            (self.index[i], split_labels(lab, self.delimiter)) for i, lab in labels.items() if i in self.index
        ]
        known.sort(key=lambda rs: rs[0])
        rows = np.array([r for r, _ in known], dtype=np.int64)
        return rows, label_matrix([s for _, s in known], self.classes)

    def fit(self, labels: Mapping[str, str]) -> Classifier | None:
        """A fresh head on ``labels``; None while fewer than two classes are labeled (cold start)."""
        if self.multi_label:
            from .multilabel import MultiLabelHead

            rows, Y = self._label_matrix(labels)
            if Y.any(axis=0).sum() < 2:
                return None
            return MultiLabelHead(len(self.classes), C=self.C, seed=self.seed).fit(self.X[rows], Y)
        y = self._targets(labels)
        labeled = np.flatnonzero(y >= 0)
        if len(np.unique(y[labeled])) < 2:
            return None
        return train(self.X, y, labeled, len(self.classes), C=self.C, seed=self.seed)

    def version(self, labels: Mapping[str, str], tag: str = "") -> str:
        """The model version of a head fitted on ``labels`` with this recipe (``tag`` tells rounds apart)."""
        recipe = f"{self.strategy},{self.C},{self.features},{','.join(self.classes)}" + (
            f",{tag}" if tag else ""
        )
        if self.multi_label:
            recipe += ",multi-label"
        return model_version(labels, self.encoder_identity, recipe)

    def guess(self, p: np.ndarray) -> tuple[str, float]:
        """The model's guess for one text's probabilities and its confidence. Multi-label: the predicted set
        (labels at or above 0.5, at least the most likely) joined into one label, and the probability of its
        least likely member, so a pre-selection threshold holds for every label pre-selected."""
        if not self.multi_label:
            return self.classes[int(p.argmax())], float(p.max())
        from .multilabel import set_guess

        return set_guess(p, self.classes, self.delimiter)

    def select(
        self,
        head: Classifier | None,
        exclude: Collection[str],
        n: int,
        *,
        labels: Mapping[str, str],
        n_sent: int,
    ) -> list[Pick]:
        """The ``n`` texts worth labeling next among those not in ``exclude``, most uncertain first.

        The random generator is seeded from the recipe's seed, the number of labels and the number of
        texts already sent, so the same campaign state always gives the same batch (a rerun after a
        crash re-selects what the crashed run chose).
        """
        exclude = set(exclude)
        candidates = np.array([r for r, i in enumerate(self.ids) if i not in exclude], dtype=np.int64)
        n = min(n, len(candidates))
        if n <= 0:
            return []
        rng = np.random.default_rng([self.seed, len(labels), n_sent])
        if self.multi_label:
            from .multilabel import MULTILABEL_STRATEGIES

            labeled_rows = self._label_matrix(labels)[0]
            q = query(
                head, self.X, candidates, MULTILABEL_STRATEGIES[self.strategy], n, rng, labeled=labeled_rows
            )
        else:
            y = self._targets(labels)
            q = query(
                head,
                self.X,
                candidates,
                get_strategy(self.strategy),
                n,
                rng,
                y=y,
                labeled=np.flatnonzero(y >= 0),
            )
        picks = []
        for k, row in enumerate(q.indices):
            guess = None if q.probs is None else self.guess(q.probs[k])
            cluster = int(q.clusters[k])
            picks.append(
                Pick(
                    int(row),
                    self.ids[row],
                    self.texts[row],
                    None if guess is None else guess[0],
                    None if guess is None else guess[1],
                    float(q.scores[k]),
                    None if cluster < 0 else cluster,
                )
            )
        return picks
