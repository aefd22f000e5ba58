"""Which labels look wrong: confident learning over out-of-fold probabilities of labelloop's own head.

Confident learning (Northcutt, Jiang & Chuang 2021) through ``cleanlab`` (Apache-2.0, depends only on
numpy/scikit-learn/pandas/tqdm/termcolor): out-of-fold probabilities of labelloop's own head, then
cleanlab's ``low_normalized_margin`` rule, which sizes the flagged set from the estimated joint of given
and true labels and flags the rows whose given label trails another class the most; then once more, with
models trained without the rows the first pass flagged. Nothing is a fixed count or a threshold picked
for one dataset. Pure: arrays in, arrays out, randomness from an explicit
seed. The sync job sends the flagged labels for a second opinion; ``labelloop suspects`` ranks offline.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from .head import DEFAULT_C, Head

__all__ = [
    "LABEL_ERROR_PASSES",
    "LABEL_ERROR_RULE",
    "Suspects",
    "TooFewLabelsError",
    "check_rankable",
    "out_of_fold_probabilities",
    "rank_label_errors",
    "trusted_rows",
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
    ``flagged`` = confident learning's verdict (:data:`LABEL_ERROR_RULE`, after :data:`LABEL_ERROR_PASSES`
    passes): what to send back for a second opinion. It is a set sized by the estimated noise and chosen
    by the rule's own score (not ``score``), so a few flagged rows may score below unflagged ones.
    ``noise_rate`` is confident learning's estimate of the share of wrong labels (for the ranking rules,
    the default among them, from the first pass).
    ``score``, ``suggested`` and ``probabilities`` come from the last pass.
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
    X: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    *,
    folds: int = 5,
    seed: int = 0,
    C: float = DEFAULT_C,
    trusted: np.ndarray | None = None,
) -> np.ndarray:
    """Probabilities of labelloop's head for each row from a model that never saw that row.

    In-sample probabilities would be useless here: a weakly regularised head memorises a wrong
    label, and the row then looks confidently right. ``trusted`` (bool, per row) limits what each
    fold's model trains on; every row is still scored, by the model of the fold that held it out.
    """
    from sklearn.model_selection import StratifiedKFold

    X, y = np.asarray(X), np.asarray(y)
    if folds < 2:
        raise ValueError("folds must be ≥ 2")
    rare = check_rankable(y, folds)
    if rare:
        raise TooFewLabelsError(rare, folds)
    keep = np.ones(len(y), dtype=bool) if trusted is None else np.asarray(trusted, dtype=bool)
    if keep.shape != y.shape:
        raise ValueError(f"trusted has shape {keep.shape}, expected {y.shape}")
    out = np.zeros((len(y), n_classes))
    for train, held in StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y):
        train = train[keep[train]]
        out[held] = Head(n_classes, C=C, seed=seed).fit(X[train], y[train]).predict_proba(X[held])
    return out


def trusted_rows(y: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Rows to train the second pass on: every row not flagged, except in classes that would lose most of their labels.

    When confident learning flags more than half of a class, the class itself is in doubt (too few
    labels, or a label used for two intents), not its rows: dropping them would leave the class without
    a model and every one of its rows would look wrong. Such classes keep all their rows.
    """
    y, flagged = np.asarray(y), np.asarray(flagged, dtype=bool)
    keep = ~flagged
    for c in np.unique(y):
        rows = y == c
        if 2 * int(flagged[rows].sum()) > int(rows.sum()):
            keep[rows] = True
    return keep


# cleanlab's filter_by rule for flagging (see rank_label_errors).
LABEL_ERROR_RULE = "low_normalized_margin"
# Score twice, the second time with models trained without the first pass's flagged rows (see rank_label_errors).
LABEL_ERROR_PASSES = 2


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
    passes: int = LABEL_ERROR_PASSES,
) -> Suspects:
    """Rank labeled rows ``X`` (features) with label indices ``y`` by how likely the label is wrong.

    ``rule`` is cleanlab's ``filter_by``: which rows to flag. The default, ``low_normalized_margin``
    (flag as many rows as the confident joint estimates are wrong, those whose given label trails the
    best other class most), had the best precision of cleanlab's rules on every data shape measured
    (benchmarks/results/label_errors.md).

    ``passes=2`` (the default) scores twice: the rows the first pass flags are left out of the
    second pass's training folds (:func:`trusted_rows`), and every row is scored again by models that
    learned from the labels not in doubt. Wrong labels in training pull the boundary between two
    confusable classes toward themselves, which hides exactly the flips to the confusable class; a
    model trained without them sees those flips. (Confident learning's own recipe is to prune and
    retrain; here the retrained model is used to look again.) For the ranking rules
    (``low_normalized_margin``, ``low_self_confidence``) the second pass flags as many rows as the
    first, those it ranks lowest: *how many* labels are wrong is confident learning's estimate from a
    model fitted to all the given labels (its per-class thresholds assume exactly that model), while
    *which* ones is better judged by the model the wrong labels did not shape. Other rules are simply
    applied again to the second pass's probabilities.

    ``probabilities`` may be given (out-of-fold, ``(n, n_classes)``) to skip the cross-validation;
    there is then one pass, on those probabilities.
    Raises :class:`TooFewLabelsError` if a present class has fewer than ``folds`` labels and
    ``ValueError`` with fewer than two classes.
    """
    y = np.asarray(y, dtype=np.int64)
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise ValueError("label index out of range")
    present = np.unique(y)
    if len(present) < 2:
        raise ValueError(f"need labels of at least two classes, got {len(present)}")
    if passes not in (1, 2):
        raise ValueError(f"passes must be 1 or 2, got {passes}")
    if probabilities is not None:
        return _flag(y, np.asarray(probabilities, dtype=np.float64), n_classes, present, rule)
    first = _flag(
        y, out_of_fold_probabilities(X, y, n_classes, folds=folds, seed=seed, C=C), n_classes, present, rule
    )
    if passes == 1:
        return first
    trusted = trusted_rows(y, first.flagged)
    again = out_of_fold_probabilities(X, y, n_classes, folds=folds, seed=seed, C=C, trusted=trusted)
    second = _flag(y, again, n_classes, present, rule)
    if rule not in _RANKING_RULES:
        return second
    # Count with the first pass, order with the second (see the docstring).
    worst = np.argsort(_quality(y, again, present, rule), kind="stable")[: int(first.flagged.sum())]
    flagged = np.zeros(len(y), dtype=bool)
    flagged[worst] = True
    return replace(second, flagged=flagged, noise_rate=first.noise_rate)


# cleanlab rules that flag the lowest-scored rows, as many as the confident joint counts as wrong.
_RANKING_RULES = ("low_normalized_margin", "low_self_confidence")


def _quality(y: np.ndarray, probabilities: np.ndarray, present: np.ndarray, rule: str) -> np.ndarray:
    """cleanlab's label-quality score of each row under a ranking rule (lower = more likely wrong)."""
    from cleanlab.rank import get_label_quality_scores

    p = probabilities[:, present]
    p = p / np.maximum(p.sum(axis=1, keepdims=True), 1e-12)
    scores = get_label_quality_scores(
        np.searchsorted(present, y), p, method=rule.removeprefix("low_"), adjust_pred_probs=False
    )
    return np.asarray(scores, dtype=np.float64)


def _flag(
    y: np.ndarray, probabilities: np.ndarray, n_classes: int, present: np.ndarray, rule: str
) -> Suspects:
    """Confident learning on out-of-fold probabilities: scores, suggestions, flags and the noise estimate."""
    from cleanlab.count import calibrate_confident_joint, compute_confident_joint
    from cleanlab.filter import find_label_issues

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
