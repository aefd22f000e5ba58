"""How much to trust the labels: agreement between annotators, and which labels look wrong.

Pure functions over plain data (votes as ``(item_id, annotator, label)`` tuples, or arrays);
no I/O, randomness only from an explicit seed. The sync job and the report call them on the
double-annotated tasks and on the labeled pool after each retrain; ``labelloop suspects``
runs the label-error ranking offline.

Agreement statistics that cannot be computed (one annotator, no shared items, every vote the
same single label so chance agreement is 1) are returned as ``None`` rather than ``nan`` or a
made-up 1.0, so a report has to say "undefined" instead of printing a number that means nothing.

The label-error ranking is in :mod:`labelloop.label_errors`, re-exported here.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .label_errors import (
    LABEL_ERROR_PASSES,
    LABEL_ERROR_RULE,
    Suspects,
    TooFewLabelsError,
    check_rankable,
    out_of_fold_probabilities,
    rank_label_errors,
    trusted_rows,
)
from .stopping import wilson_interval

__all__ = [
    "LABEL_ERROR_PASSES",
    "LABEL_ERROR_RULE",
    "AgreementReport",
    "AnnotatorQuality",
    "ClassAgreement",
    "PairAgreement",
    "Proportion",
    "Suspects",
    "TooFewLabelsError",
    "Vote",
    "agreement_report",
    "label_set_agreement_report",
    "annotator_quality",
    "check_rankable",
    "cohen_kappa",
    "krippendorff_alpha",
    "out_of_fold_probabilities",
    "pairwise_kappa",
    "per_class_agreement",
    "rank_label_errors",
    "trusted_rows",
]

Vote = tuple[Hashable, Hashable, str]
"""``(item_id, annotator, label)``: one live, non-skipped annotation."""


# -- agreement ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Proportion:
    """``correct`` of ``n`` with a 95 % Wilson interval; ``value`` is None when ``n`` is 0."""

    correct: int
    n: int
    value: float | None
    ci: tuple[float, float]

    @classmethod
    def of(cls, correct: int, n: int) -> Proportion:
        return cls(correct, n, correct / n if n else None, wilson_interval(correct, n))


@dataclass(frozen=True)
class PairAgreement:
    """Cohen's κ of two annotators on the items both labeled (``kappa`` None when undefined)."""

    a: Hashable
    b: Hashable
    n_items: int
    observed: float | None  # raw share of shared items with the same label
    kappa: float | None


@dataclass(frozen=True)
class ClassAgreement:
    """Agreement on one class among all pairable votes.

    ``specific``: of the votes for this class, the share whose paired vote (another annotator, same
    item) is the same class: positive specific agreement, 2a/(2a+b+c) for two annotators.
    ``alpha``: Krippendorff's α of "this class or not" (one-vs-rest), None when undefined.
    """

    label: str
    n_votes: int  # pairable votes for this class
    specific: float | None
    alpha: float | None


@dataclass(frozen=True)
class AnnotatorQuality:
    """An annotator's accuracy against the others' majority (leave-one-out) and against a reference.

    Consensus items where the other annotators tie, or where nobody else voted, are not counted.
    """

    annotator: Hashable
    n_votes: int
    vs_consensus: Proportion
    vs_reference: Proportion | None


@dataclass(frozen=True)
class AgreementReport:
    n_items: int  # items with at least one vote
    n_multi: int  # items with votes from two or more annotators
    n_annotators: int
    alpha: float | None  # Krippendorff's α (nominal), every annotator and item
    mean_kappa: float | None  # Light's κ: mean of the defined pairwise κ
    pairs: list[PairAgreement] = field(default_factory=list)
    classes: list[ClassAgreement] = field(default_factory=list)
    annotators: list[AnnotatorQuality] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (annotator and item ids as given; tuples become lists)."""
        return asdict(self)


def _table(votes: Iterable[Vote]) -> dict[Hashable, dict[Hashable, str]]:
    """item → annotator → label; a later vote of the same annotator on the same item replaces the earlier."""
    table: dict[Hashable, dict[Hashable, str]] = defaultdict(dict)
    for item, annotator, label in votes:
        if label is None:
            raise ValueError(f"vote of {annotator!r} on {item!r} has no label; drop skips before")
        table[item][annotator] = label
    return dict(table)


def cohen_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """Cohen's κ of two label sequences over the same items.

    None when undefined: no items, or chance agreement is 1 (both used one and the same label
    throughout), where κ is 0/0 and "perfect" would hide that nothing was discriminated.
    """
    if len(a) != len(b):
        raise ValueError(f"sequences differ in length: {len(a)} and {len(b)}")
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    if expected >= 1.0 - 1e-12:
        return None
    return (observed - expected) / (1.0 - expected)


def pairwise_kappa(votes: Iterable[Vote]) -> list[PairAgreement]:
    """Cohen's κ for every pair of annotators, on the items both labeled (pairs sorted by name)."""
    table = _table(votes)
    annotators = sorted({a for row in table.values() for a in row}, key=str)
    out = []
    for i, a in enumerate(annotators):
        for b in annotators[i + 1 :]:
            shared = [(row[a], row[b]) for row in table.values() if a in row and b in row]
            la, lb = [x for x, _ in shared], [y for _, y in shared]
            observed = sum(x == y for x, y in shared) / len(shared) if shared else None
            out.append(PairAgreement(a, b, len(shared), observed, cohen_kappa(la, lb)))
    return out


def _coincidences(table: Mapping[Hashable, Mapping[Hashable, str]]) -> tuple[list[str], np.ndarray]:
    """Krippendorff's coincidence matrix over items with ≥ 2 votes: each ordered pair weighted 1/(m-1)."""
    labels = sorted({lab for row in table.values() for lab in row.values()})
    index = {lab: i for i, lab in enumerate(labels)}
    o = np.zeros((len(labels), len(labels)))
    for row in table.values():
        m = len(row)
        if m < 2:
            continue
        counts = np.zeros(len(labels))
        for lab in row.values():
            counts[index[lab]] += 1
        # ordered pairs of distinct votes: n_c·n_k off the diagonal, n_c·(n_c-1) on it
        o += (np.outer(counts, counts) - np.diag(counts)) / (m - 1)
    return labels, o


def _alpha_from(o: np.ndarray) -> float | None:
    n_c = o.sum(axis=1)
    n = n_c.sum()
    if n <= 1:
        return None
    expected_disagreement = n * (n - 1) - float((n_c * (n_c - 1)).sum())
    if expected_disagreement <= 1e-12:  # every pairable vote is the same label
        return None
    return float(((n - 1) * np.trace(o) - (n_c * (n_c - 1)).sum()) / expected_disagreement)


def krippendorff_alpha(votes: Iterable[Vote]) -> float | None:
    """Krippendorff's α for nominal labels: any number of annotators, missing votes allowed.

    Items with one vote carry no information on agreement and are left out. None when no item has
    two votes, or every pairable vote is the same label (expected disagreement 0).
    """
    _, o = _coincidences(_table(votes))
    return _alpha_from(o) if o.size else None


def per_class_agreement(votes: Iterable[Vote]) -> list[ClassAgreement]:
    """Specific agreement and one-vs-rest α per class, from the coincidence matrix (sorted by label)."""
    labels, o = _coincidences(_table(votes))
    n_c = o.sum(axis=1)
    n = n_c.sum()
    out = []
    for i, lab in enumerate(labels):
        same, total = o[i, i], n_c[i]
        binary = np.array([[same, total - same], [total - same, n - 2 * total + same]])
        out.append(
            ClassAgreement(lab, round(total), float(same / total) if total > 0 else None, _alpha_from(binary))
        )
    return out


def _majority(labels: Iterable[str]) -> str | None:
    ranked = Counter(labels).most_common()
    if not ranked or (len(ranked) > 1 and ranked[0][1] == ranked[1][1]):
        return None
    return ranked[0][0]


def annotator_quality(
    votes: Iterable[Vote], reference: Mapping[Hashable, str] | None = None
) -> list[AnnotatorQuality]:
    """Each annotator's accuracy against the majority of the *other* annotators and against ``reference``.

    Leaving the annotator out of the consensus keeps them from agreeing with themselves: with two
    annotators per item the consensus is simply the other person. ``reference`` (item → label: the
    audit's agreed labels, or a test truth) is scored on the items it has. Sorted by annotator.
    """
    table = _table(votes)
    annotators = sorted({a for row in table.values() for a in row}, key=str)
    out = []
    for a in annotators:
        mine = [
            (item, row[a], [lab for b, lab in row.items() if b != a])
            for item, row in table.items()
            if a in row
        ]
        cons = [(label, _majority(others)) for _, label, others in mine]
        cons = [(label, m) for label, m in cons if m is not None]
        ref = None
        if reference is not None:
            pairs = [(label, reference[item]) for item, label, _ in mine if item in reference]
            ref = Proportion.of(sum(x == y for x, y in pairs), len(pairs))
        out.append(
            AnnotatorQuality(a, len(mine), Proportion.of(sum(x == y for x, y in cons), len(cons)), ref)
        )
    return out


def agreement_report(
    votes: Iterable[Vote], reference: Mapping[Hashable, str] | None = None
) -> AgreementReport:
    """Every agreement figure of one round (or campaign) at once, from the same votes."""
    votes = list(votes)
    table = _table(votes)
    pairs = pairwise_kappa(votes)
    kappas = [p.kappa for p in pairs if p.kappa is not None]
    return AgreementReport(
        n_items=len(table),
        n_multi=sum(len(row) >= 2 for row in table.values()),
        n_annotators=len({a for row in table.values() for a in row}),
        alpha=krippendorff_alpha(votes),
        mean_kappa=float(np.mean(kappas)) if kappas else None,
        pairs=pairs,
        classes=per_class_agreement(votes),
        annotators=annotator_quality(votes, reference),
    )


def label_set_agreement_report(
    votes: Iterable[Vote],
    labels: Sequence[str],
    delimiter: str,
    reference: Mapping[Hashable, str] | None = None,
) -> AgreementReport:
    """Agreement when each vote is a label set (multi-label campaigns; ``"a|b"`` joined by ``delimiter``).

    A set is not one category: two people who tick {refund, bug} and {refund} agree on refund and
    on every label neither ticked. So α and the pairwise κ are computed over the yes/no decisions per
    (text, label), the usual multi-label reading; per label, α of its yes/no decisions and specific
    agreement on its "yes" votes. Each annotator is scored against the others' majority *set* (an
    exact match), as :func:`annotator_quality` does with single labels.
    """
    from .labels import split_labels

    votes = list(votes)
    decisions = [
        ((item, label), who, "yes" if label in split_labels(str(given), delimiter) else "no")
        for item, who, given in votes
        for label in labels
    ]
    table = _table(votes)
    pairs = [
        PairAgreement(p.a, p.b, p.n_items // max(len(labels), 1), p.observed, p.kappa)
        for p in pairwise_kappa(decisions)
    ]
    kappas = [p.kappa for p in pairs if p.kappa is not None]
    classes = []
    for label in labels:
        mine = [((item, label), who, d) for (item, lab), who, d in decisions if lab == label]
        yes = next((c for c in per_class_agreement(mine) if c.label == "yes"), None)
        classes.append(
            ClassAgreement(
                label, yes.n_votes if yes else 0, yes.specific if yes else None, krippendorff_alpha(mine)
            )
        )
    return AgreementReport(
        n_items=len(table),
        n_multi=sum(len(row) >= 2 for row in table.values()),
        n_annotators=len({a for row in table.values() for a in row}),
        alpha=krippendorff_alpha(decisions),
        mean_kappa=float(np.mean(kappas)) if kappas else None,
        pairs=pairs,
        classes=classes,
        annotators=annotator_quality(votes, reference),
    )
