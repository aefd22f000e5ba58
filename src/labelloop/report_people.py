"""The report's sections about people: agreement, each annotator, second opinions, guideline versions.

Kept apart from :mod:`labelloop.report` (the model's side and the rendering): plain data in, a
list of report blocks out, no I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .labelstudio.annotations import AnnotationRecord, live_annotations
from .quality import AgreementReport, Proportion
from .review import second_opinion_outcomes
from .store import EscalationRow

if TYPE_CHECKING:
    from .report import Block

__all__ = ["agreement_section", "second_opinions_section", "guidelines_section"]


def _num(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def _prop(p: Proportion | None) -> str:
    if p is None or not p.n:
        return "–"
    return f"{p.value:.3f} [{p.ci[0]:.3f}, {p.ci[1]:.3f}] (n = {p.n})"


def agreement_section(ag: AgreementReport, label_sets: bool = False) -> list[Block]:
    """Krippendorff's α and Cohen's κ on the texts several people labeled, per pair, per class, per annotator.
    ``label_sets``: the votes are label sets, the figures over yes/no decisions per text and label
    (:func:`labelloop.quality.label_set_agreement_report`)."""
    from .report import Heading, Para, Table

    blocks: list[Block] = [Heading("Annotators and agreement")]
    if not ag.n_items:
        return blocks + [Para("No labels yet.")]
    blocks.append(
        Para(
            f"{ag.n_multi} of the {ag.n_items} texts someone labeled were labeled by two or more of "
            f"{ag.n_annotators} annotators "
            f"(the double-annotated share is blind: nobody saw the model's guess; texts sent back as suspected "
            f"label errors are left out). Krippendorff's α "
            f"{_num(ag.alpha)}, mean pairwise Cohen's κ {_num(ag.mean_kappa)}"
            + (
                " over the yes/no decisions per text and label (a set is not one category: {a, b} and {a} "
                "agree on a)."
                if label_sets
                else "."
            )
        )
    )
    if ag.pairs:
        blocks.append(
            Table(
                [
                    "annotator",
                    "annotator",
                    "shared texts",
                    "same decision" if label_sets else "same label",
                    "Cohen's κ",
                ],
                [[p.a, p.b, p.n_items, _num(p.observed), _num(p.kappa)] for p in ag.pairs],
            )
        )
    if ag.classes:
        blocks.append(
            Para(
                "Per class: the share of votes for a class that another annotator matched (specific "
                "agreement), and α of that class against the rest. Low rows are where the guidelines "
                "need an example."
            )
        )
        rows = sorted(ag.classes, key=lambda c: (c.specific is None, c.specific or 0.0))
        blocks.append(
            Table(
                ["label", "paired votes", "specific agreement", "α (one vs rest)"],
                [[c.label, c.n_votes, _num(c.specific), _num(c.alpha)] for c in rows],
            )
        )
    if ag.annotators:
        blocks.append(
            Para(
                "Each annotator against the others' majority on the same texts (leave-one-out"
                + ("; the whole set must match)." if label_sets else ").")
            )
        )
        blocks.append(
            Table(
                ["annotator", "labels", "agrees with the others' majority"],
                [[a.annotator, a.n_votes, _prop(a.vs_consensus)] for a in ag.annotators],
            )
        )
    return blocks


def second_opinions_section(
    escalations: Sequence[EscalationRow], texts: Mapping[str, str], snippet: Any
) -> list[Block]:
    """Ties sent to one more person and suspected label errors sent back, with their outcomes."""
    from .report import Bullets, Heading, Para, Table

    blocks: list[Block] = [Heading("Second opinions")]
    if not escalations:
        return blocks + [Para("None yet: no tie and no suspected label error was sent back.")]
    outcomes = second_opinion_outcomes(escalations)  # per text: a contradicted suspect's tie is the suspect's
    n = Counter(outcomes.values())
    blocks.append(
        Bullets(
            [
                f"texts whose tie went to one more annotator: {n['tie', 'settled'] + n['tie', 'open']}; "
                f"settled {n['tie', 'settled']}, open {n['tie', 'open']}",
                f"suspected label errors sent back: {sum(r == 'suspect' for r, _ in outcomes.values())} "
                f"text(s); relabeled {n['suspect', 'changed']}, confirmed {n['suspect', 'confirmed']}, open "
                f"{n['suspect', 'open']}",
            ]
        )
    )
    sent_back: dict[str, EscalationRow] = {}  # each text's first suspect row: the label it was sent back with
    for e in sorted(escalations, key=lambda e: e.seq):
        if e.reason == "suspect":
            sent_back.setdefault(e.item_id, e)
    decided = {
        e.item_id: e for e in sorted(escalations, key=lambda e: (e.resolved_at or "", e.seq)) if e.resolved_at
    }
    changed = [(decided[i], sent_back[i]) for i, o in outcomes.items() if o == ("suspect", "changed")]
    if changed:
        blocks.append(
            Table(
                ["text", "label before", "after", "decided by", "suspicion"],
                [
                    [
                        snippet(texts.get(e.item_id)),
                        s.label_before,
                        e.label_after,
                        e.decided_by or "–",
                        _num(s.score, 2),
                    ]
                    for e, s in changed[:30]
                ],
            )
        )
    return blocks


def guidelines_section(
    versions: Sequence[tuple[str, str]], records: Sequence[AnnotationRecord]
) -> list[Block]:
    """Each guidelines version with the number of labels given under it (by the label's time)."""
    from .report import Heading, Para, Table

    blocks: list[Block] = [Heading("Guidelines")]
    if not versions:
        return blocks + [
            Para("No guidelines file: set [guidelines] path so annotators share one set of rules.")
        ]
    counts = [0] * len(versions)
    unknown = 0
    for rec in live_annotations(records):
        if rec.skipped or rec.label is None:
            continue
        at = rec.created_at or ""
        k = max((i for i, (_, applied) in enumerate(versions) if applied <= at), default=None)
        if k is None:
            unknown += 1
        else:
            counts[k] += 1
    rows = [[v, applied, n] for (v, applied), n in zip(versions, counts, strict=True)]
    blocks.append(Table(["version", "shown from", "labels given under it"], rows))
    if unknown:
        blocks.append(Para(f"{unknown} label(s) were given before the first guidelines reached the project."))
    return blocks
