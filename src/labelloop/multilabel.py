"""Multi-label text classification: a ticket about a refund *and* a bug carries both labels.

The head is one binary logistic regression per label (one-vs-rest) on the same features as the
single-label head, so a label's probability does not compete with the others'. Selection reuses the
single-label strategies on the per-label probabilities: by default ``margin-kmeans``, the texts whose two
most likely labels are closest (is it A, B, or both?), one per k-means cluster. The textbook score, the
mean over labels of ``1 − |2p − 1|`` (``binary-margin-kmeans``), is kept for comparison: it fell below
random on the 77-label set (benchmarks/results/multilabel.md).

A text with no label at or above 0.5 gets its single most likely label: every ticket is about
something. Metrics: micro and macro F1 over labels, subset accuracy (every label right).
Pure: arrays in, arrays out, randomness from an explicit generator.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, TypedDict

import numpy as np

if TYPE_CHECKING:  # scikit-learn loads on the first fit, not when the command line starts
    from sklearn.linear_model import LogisticRegression

from .head import DEFAULT_C, one_blas_thread
from .strategies import ColdStart, Context, DiverseUncertainty, RandomSampling, Strategy, binary_margin

__all__ = [
    "MultiLabelHead",
    "parse_label_sets",
    "label_matrix",
    "merge_texts",
    "binary_margin",
    "predict_sets",
    "set_guess",
    "multilabel_metrics",
    "micro_f1_interval",
    "MULTILABEL_STRATEGIES",
    "DEFAULT_MULTILABEL_STRATEGY",
    "simulate_multilabel",
]


def parse_label_sets(values: Iterable[object], delimiter: str) -> list[frozenset[str]]:
    """Each cell split on ``delimiter``, labels stripped, empty pieces dropped (None/NaN: no labels)."""
    if not delimiter:
        raise ValueError("the label delimiter must not be empty")
    out: list[frozenset[str]] = []
    for v in values:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            out.append(frozenset())
            continue
        out.append(frozenset(p.strip() for p in str(v).split(delimiter) if p.strip()))
    return out


def label_matrix(sets: Sequence[Iterable[str]], classes: Sequence[str]) -> np.ndarray:
    """``(n, k)`` bool: row i has label j. A label outside ``classes`` is a :class:`ValueError`."""
    index = {c: j for j, c in enumerate(classes)}
    Y = np.zeros((len(sets), len(classes)), dtype=bool)
    for i, labels in enumerate(sets):
        for lab in labels:
            if lab not in index:
                raise ValueError(f"label {lab!r} (row {i + 1}) is not in the label set")
            Y[i, index[lab]] = True
    return Y


def merge_texts(
    texts: Sequence[str], labels: Sequence[str], share: float, rng: np.random.Generator, joiner: str = " "
) -> tuple[list[str], list[frozenset[str]]]:
    """A multi-label set built from a single-label one, for simulation and tests.

    A ``share`` of the texts is joined with a random text of another label (``"A" + joiner + "B"``,
    labels {a, b}); the rest keep their one label. Each source text is used once, so the set has
    ``len(texts) − pairs`` rows and no text leaks between a pool and a test set built apart.
    """
    order = [int(i) for i in rng.permutation(len(texts))]
    n_pairs = round(share * len(texts) / 2)
    firsts, partners = order[:n_pairs], order[n_pairs:]
    out_texts: list[str] = []
    out_sets: list[frozenset[str]] = []
    used: set[int] = set()
    k = 0  # partners are taken in order; one of the same label is left for a later pair or a single
    for i in firsts:
        while k < len(partners) and (partners[k] in used or labels[partners[k]] == labels[i]):
            k += 1
        j = next((r for r in partners[k:] if r not in used and labels[r] != labels[i]), None)
        if j is None:
            break
        used.add(j)
        out_texts.append(f"{texts[i]}{joiner}{texts[j]}")
        out_sets.append(frozenset({labels[i], labels[j]}))
    paired = set(firsts[: len(out_texts)]) | used
    for i in order:
        if i not in paired:
            out_texts.append(texts[i])
            out_sets.append(frozenset({labels[i]}))
    return out_texts, out_sets


class MultiLabelHead:
    """One binary logistic regression per label; a label never seen positive (or never negative) in the
    labeled rows gets a constant probability of 0 (or 1) until it is."""

    def __init__(self, n_labels: int, C: float = DEFAULT_C, max_iter: int = 300, seed: int = 0) -> None:
        self.n_labels, self.C, self.max_iter, self.seed = n_labels, C, max_iter, seed
        self._models: list[LogisticRegression | float] = []

    @property
    def n_classes(self) -> int:
        """The label count (a column of probabilities per label, as :class:`~labelloop.head.Head`)."""
        return self.n_labels

    def fit(self, X: np.ndarray, Y: np.ndarray) -> MultiLabelHead:
        """Fit on rows ``X`` with the ``(n, n_labels)`` bool matrix ``Y``."""
        Y = np.asarray(Y, dtype=bool)
        if Y.shape != (len(X), self.n_labels):
            raise ValueError(f"Y has shape {Y.shape}, expected {(len(X), self.n_labels)}")
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        self._models = []
        with warnings.catch_warnings(), one_blas_thread():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for j in range(self.n_labels):
                y = Y[:, j]
                if y.all() or not y.any():
                    self._models.append(float(y.any()))
                    continue
                model = LogisticRegression(C=self.C, max_iter=self.max_iter, random_state=self.seed)
                self._models.append(model.fit(X, y))
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_labels)`` independent probabilities."""
        if not self._models:
            raise RuntimeError("the head is not fitted")
        P = np.empty((len(X), self.n_labels))
        for j, m in enumerate(self._models):
            P[:, j] = m if isinstance(m, float) else m.predict_proba(X)[:, 1]
        return P

    def predict(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_labels)`` bool: the predicted sets (:func:`predict_sets`)."""
        return predict_sets(self.predict_proba(X))

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted parameters as plain arrays (a campaign stores them without pickle): one row of
        ``coef``/``intercept`` per label, ``constant`` the fixed probability of a label fitted as one
        (NaN where a model was fitted)."""
        if not self._models:
            raise RuntimeError("the head is not fitted")
        fitted = [m for m in self._models if not isinstance(m, float)]
        dim = fitted[0].coef_.shape[1] if fitted else 0
        coef = np.zeros((self.n_labels, dim))
        intercept = np.zeros(self.n_labels)
        constant = np.full(self.n_labels, np.nan)
        for j, m in enumerate(self._models):
            if isinstance(m, float):
                constant[j] = m
            else:
                coef[j], intercept[j] = m.coef_[0], m.intercept_[0]
        return {"multi_label": np.array(True), "coef": coef, "intercept": intercept, "constant": constant}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> MultiLabelHead:
        """Rebuild a fitted head from :meth:`to_arrays`: same probabilities, no refit."""
        from sklearn.linear_model import LogisticRegression

        constant = np.asarray(arrays["constant"], dtype=np.float64)
        head = cls(len(constant))
        for j, c in enumerate(constant):
            if not np.isnan(c):
                head._models.append(float(c))
                continue
            model = LogisticRegression()
            model.coef_ = np.asarray(arrays["coef"][j : j + 1], dtype=np.float64)
            model.intercept_ = np.asarray(arrays["intercept"][j : j + 1], dtype=np.float64)
            model.classes_ = np.array([False, True])
            model.n_features_in_ = model.coef_.shape[1]
            head._models.append(model)
        return head


def predict_sets(P: np.ndarray) -> np.ndarray:
    """Labels at or above 0.5; a row with none gets its most likely label."""
    Y = P >= 0.5
    empty = ~Y.any(axis=1)
    Y[np.flatnonzero(empty), P[empty].argmax(axis=1)] = True
    return Y


def set_guess(p: np.ndarray, classes: Sequence[str], delimiter: str) -> tuple[str, float]:
    """One text's predicted set joined into one label (:func:`labelloop.labels.join_labels`), and the
    probability of its least likely member: a pre-selection threshold then holds for every label shown."""
    from .labels import join_labels

    chosen = np.flatnonzero(predict_sets(np.asarray(p)[None, :])[0])
    return join_labels([classes[int(j)] for j in chosen], delimiter), float(p[chosen].min())


def multilabel_metrics(Y_true: np.ndarray, Y_pred: np.ndarray) -> dict[str, float]:
    """Micro and macro F1 over labels (labels absent from both count as 0 in the macro mean's place: not
    counted) and subset accuracy."""
    from sklearn.metrics import f1_score

    present = Y_true.any(axis=0) | Y_pred.any(axis=0)
    return {
        "micro_f1": float(f1_score(Y_true, Y_pred, average="micro", zero_division=0)),
        "macro_f1": float(f1_score(Y_true[:, present], Y_pred[:, present], average="macro", zero_division=0)),
        "subset_accuracy": float((Y_true == Y_pred).all(axis=1).mean()),
    }


def micro_f1_interval(
    Y_true: np.ndarray, Y_pred: np.ndarray, rng: np.random.Generator, n_boot: int = 500
) -> tuple[float, float]:
    """95 % percentile bootstrap interval of micro-F1 over texts: an audit of a few texts must say how little
    it knows (micro-F1 pools every label decision, so it is resampled by text, not by decision)."""
    n = len(Y_true)
    if n == 0:
        return (0.0, 1.0)
    idx = rng.integers(0, n, size=(n_boot, n))
    tp = (Y_true[idx] & Y_pred[idx]).sum(axis=(1, 2))
    fp = (~Y_true[idx] & Y_pred[idx]).sum(axis=(1, 2))
    fn = (Y_true[idx] & ~Y_pred[idx]).sum(axis=(1, 2))
    f1 = np.where(2 * tp + fp + fn > 0, 2 * tp / np.maximum(2 * tp + fp + fn, 1), 0.0)
    return float(np.percentile(f1, 2.5)), float(np.percentile(f1, 97.5))


DEFAULT_MULTILABEL_STRATEGY = "margin-kmeans"
# "margin-kmeans" is the single-label default applied to the per-label probabilities: the gap between the two
# most likely labels. It beat random on both merged sets of benchmarks/results/multilabel.md, where the mean
# binary margin (the textbook multi-label score) fell far below random on 77 labels: with few labels per class
# every probability is small, and the mean favours texts that look a little like many intents.
MULTILABEL_STRATEGIES: dict[str, Strategy] = {
    "margin-kmeans": DiverseUncertainty("margin"),
    "binary-margin-kmeans": DiverseUncertainty("binary-margin"),
    "random": RandomSampling(),
}


class MultiLabelRound(TypedDict):
    round: int
    n_labeled: int
    micro_f1: float
    macro_f1: float
    subset_accuracy: float
    seconds: float


def simulate_multilabel(
    X_pool: np.ndarray,
    Y_pool: np.ndarray,
    X_test: np.ndarray,
    Y_test: np.ndarray,
    *,
    strategy: str = DEFAULT_MULTILABEL_STRATEGY,
    initial: int = 100,
    batch_size: int = 100,
    budget: int = 1000,
    seed: int = 0,
    C: float = DEFAULT_C,
    features_at: Callable[[int], tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[MultiLabelRound]:
    """Replay a multi-label campaign with the pool's label sets as the oracle; one record per round.

    ``features_at(n)`` gives the pool's and test set's features for a head trained on ``n`` labels
    (the neighbour weight fades once half the pool is labeled, as in :func:`labelloop.simulate.simulate`)."""
    if strategy not in MULTILABEL_STRATEGIES:
        raise ValueError(
            f"unknown multi-label strategy {strategy!r}; choose from {', '.join(MULTILABEL_STRATEGIES)}"
        )
    if batch_size < 1 or budget < 1 or initial < 0:
        raise ValueError("batch size and budget must be ≥ 1, initial ≥ 0")
    strat = MULTILABEL_STRATEGIES[strategy]
    rng = np.random.default_rng(seed)
    budget = min(budget, len(X_pool))
    labeled = np.zeros(len(X_pool), dtype=bool)
    labeled[ColdStart()(Context.cold(X_pool), min(initial or batch_size, budget), rng).indices] = True
    rounds: list[MultiLabelRound] = []
    while True:
        t0 = time.perf_counter()
        idx = np.flatnonzero(labeled)
        if features_at is not None:
            X_pool, X_test = features_at(len(idx))
        head = MultiLabelHead(Y_pool.shape[1], C=C, seed=seed).fit(X_pool[idx], Y_pool[idx])
        metrics = multilabel_metrics(Y_test, predict_sets(head.predict_proba(X_test)))
        n = min(batch_size, budget - len(idx))
        if n > 0:
            candidates = np.flatnonzero(~labeled)
            ctx = Context(head.predict_proba(X_pool[candidates]), X_pool[candidates])
            labeled[candidates[strat(ctx, n, rng).indices]] = True
        rounds.append(
            MultiLabelRound(
                round=len(rounds),
                n_labeled=len(idx),
                micro_f1=metrics["micro_f1"],
                macro_f1=metrics["macro_f1"],
                subset_accuracy=metrics["subset_accuracy"],
                seconds=time.perf_counter() - t0,
            )
        )
        if n <= 0:
            return rounds
