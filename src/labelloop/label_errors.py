"""Which labels look wrong: confident learning over out-of-fold probabilities of labelloop's own head.

Confident learning (Northcutt, Jiang & Chuang 2021) through ``cleanlab`` (Apache-2.0, depends only on
numpy/scikit-learn/pandas/tqdm/termcolor): out-of-fold probabilities of labelloop's own head, then
cleanlab's ``low_normalized_margin`` rule, which sizes the flagged set from the estimated joint of given
and true labels and flags the rows whose given label trails another class the most. Nothing is a fixed
count or a threshold picked for one dataset. Pure: arrays in, arrays out, randomness from an explicit
seed. The sync job sends the flagged labels for a second opinion; ``labelloop suspects`` ranks offline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .head import DEFAULT_C, Head

__all__ = [
    "LABEL_ERROR_RULE",
    "Suspects",
    "TooFewLabelsError",
    "check_rankable",
    "out_of_fold_probabilities",
    "rank_label_errors",
]


class TooFewLabelsError(ValueError):
    """Some classes have fewer labels than folds: each fold must hold one out to score it honestly."""

    def __init__(self, counts: Mapping[int, int], folds: int) -> None:
        self.counts = dict(counts)
        self.folds = folds
        shown = ", ".join(f"{k}: {v}" for k, v in list(self.counts.items())[:10])
        super().__init__(
            f"{len(self.counts)} class(es) have fewer than {folds} labels ({shown}); "
            f"out-of-fold scoring needs at least one per fold"
        )


@dataclass(frozen=True)
class Suspects:
    """Per labeled row: how suspicious its label is, the model's suggestion, and whether to re-check it.

    ``score`` = 1 − out-of-fold probability of the given label (higher = more suspicious).
    ``flagged`` = confident learning's verdict (:data:`LABEL_ERROR_RULE`): what to send back for a
    second opinion. It is a set sized by the estimated noise, so a few flagged rows may score
    below unflagged ones. ``noise_rate`` is confident learning's estimate of the share of wrong labels.
    """

    score: np.ndarray  # (n,) float
    suggested: np.ndarray  # (n,) int, argmax of the out-of-fold probabilities
    flagged: np.ndarray  # (n,) bool
    probabilities: np.ndarray  # (n, n_classes) out-of-fold
    noise_rate: float

    @property
    def order(self) -> np.ndarray:
        """Row indices, most suspicious first (ties by row order)."""
        return np.argsort(-self.score, kind="stable")

    def to_send(self, limit: int | None = None) -> np.ndarray:
        """Flagged rows, most suspicious first, at most ``limit``: what the sync job sends back."""
        rows = self.order[self.flagged[self.order]]
        return rows if limit is None else rows[: max(0, limit)]


def check_rankable(y: np.ndarray, folds: int = 5) -> dict[int, int]:
    """Classes (present in ``y``) with fewer than ``folds`` labels, and their counts; empty = rankable."""
    counts = Counter(np.asarray(y).tolist())
    return {int(k): int(v) for k, v in sorted(counts.items()) if v < folds}


def out_of_fold_probabilities(
    X: np.ndarray, y: np.ndarray, n_classes: int, *, folds: int = 5, seed: int = 0, C: float = DEFAULT_C
) -> np.ndarray:
    """Probabilities of labelloop's head for each row from a model that never saw that row.

    In-sample probabilities would be useless here: a weakly regularised head memorises a wrong
    label, and the row then looks confidently right.
    """
    from sklearn.model_selection import StratifiedKFold

    X, y = np.asarray(X), np.asarray(y)
    if folds < 2:
        raise ValueError("folds must be ≥ 2")
    rare = check_rankable(y, folds)
    if rare:
        raise TooFewLabelsError(rare, folds)
    out = np.zeros((len(y), n_classes))
    for train, held in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y):
        out[held] = Head(n_classes, C=C, seed=seed).fit(X[train], y[train]).predict_proba(X[held])
    return out


# cleanlab's filter_by rule for flagging (see rank_label_errors).
LABEL_ERROR_RULE = "low_normalized_margin"


def rank_label_errors(
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    folds: int = 5,
    seed: int = 0,
    C: float = DEFAULT_C,
    probabilities: np.ndarray | None = None,
    rule: str = LABEL_ERROR_RULE,
) -> Suspects:
    """Rank labeled rows ``X`` (features) with label indices ``y`` by how likely the label is wrong.

    ``probabilities`` may be given (out-of-fold, ``(n, n_classes)``) to skip the cross-validation.
    ``rule`` is cleanlab's ``filter_by``: which rows to flag. The default, ``low_normalized_margin``
    (flag as many rows as the confident joint estimates are wrong, those whose given label trails the
    best other class most), had the best precision of cleanlab's rules on every data shape measured,
    at a recall within a few points of the best (benchmarks/results/label_errors.md).
    Raises :class:`TooFewLabelsError` if a present class has fewer than ``folds`` labels and
    ``ValueError`` with fewer than two classes.
    """
    from cleanlab.count import calibrate_confident_joint, compute_confident_joint
    from cleanlab.filter import find_label_issues

    y = np.asarray(y, dtype=np.int64)
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError("label index out of range")
    present = np.unique(y)
    if len(present) < 2:
        raise ValueError(f"need labels of at least two classes, got {len(present)}")
    if probabilities is None:
        probabilities = out_of_fold_probabilities(X, y, n_classes, folds=folds, seed=seed, C=C)
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if probabilities.shape != (len(y), n_classes):
        raise ValueError(f"probabilities have shape {probabilities.shape}, expected {(len(y), n_classes)}")
    # cleanlab wants every column to be a class with labels: work on the present classes only.
    local = np.searchsorted(present, y)
    p = probabilities[:, present]
    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
    joint = compute_confident_joint(local, p)
    flagged = find_label_issues(local, p, filter_by=rule, confident_joint=joint, n_jobs=1)
    calibrated = calibrate_confident_joint(joint, local)
    noise = float(1.0 - np.trace(calibrated) / max(calibrated.sum(), 1e-12))
    score = 1.0 - p[np.arange(len(y)), local]
    suggested = present[p.argmax(axis=1)]
    return Suspects(
        score=score,
        suggested=suggested,
        flagged=np.asarray(flagged, dtype=bool),
        probabilities=probabilities,
        noise_rate=noise,
    )
