"""Second opinions, decided without I/O: who labels what twice, which answers go back to people, what is pre-selected.

Active learning spends every label where the model is least sure, so one wrong label costs more
than in random sampling. These rules keep the labels honest, and :mod:`labelloop.sync` carries
them out in Label Studio:

* a share of the model's picks is labeled by several people, blind (no pre-selected guess), so
  agreement is measured without anchoring;
* the model's guess is pre-selected only when it is confident;
* a tie is never a dead end: the task gets one more annotator, up to a cap, then waits for a
  reviewer (anyone who opens it in Label Studio and answers);
* labels the retrained model suspects are wrong go back for another opinion, a few per sync.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from .labelstudio.annotations import AnnotationRecord, Resolution, live_annotations
from .store import EscalationRow, QueryRow, Store

__all__ = [
    "plan_overlap",
    "prefill",
    "prefill_threshold",
    "PREFILL_MIN_ANSWERS",
    "blind_answers",
    "Escalation",
    "ties_to_escalate",
    "waiting_for_answers",
    "second_opinion_outcomes",
    "settled",
    "abstained",
    "blind_priority",
]


def _rank(item_id: str) -> str:
    return hashlib.sha256(item_id.encode("utf-8")).hexdigest()


def prefill(confidence: float | None, threshold: float) -> bool:
    """Whether the model's guess is pre-selected: only when it is at least ``threshold`` sure."""
    return confidence is not None and confidence >= threshold


PREFILL_MIN_ANSWERS = 30  # blind answers before the "auto" threshold is trusted


def prefill_threshold(
    confidence: Sequence[float],
    right: Sequence[bool],
    *,
    target: float = 0.9,
    min_n: int = PREFILL_MIN_ANSWERS,
) -> float | None:
    """The lowest confidence above which the model's guesses were right at least ``target`` of the time,
    on at least ``min_n`` guesses people answered without seeing them; None: pre-select nothing yet.

    A fixed threshold does not carry across datasets (a 77-class head is rarely 50 % sure of a right
    guess, a 13-class head often 90 %), so it is read off the campaign's own blind answers.
    """
    pairs = sorted(zip(confidence, right, strict=True), key=lambda p: -p[0])
    best, hits = None, 0
    for n, (conf, ok) in enumerate(pairs, 1):
        hits += bool(ok)
        last_of_its_value = n == len(pairs) or pairs[n][0] < conf  # "≥ conf" takes every tie
        if last_of_its_value and n >= min_n and hits / n >= target:
            best = conf
    return best


def blind_answers(store: Store) -> tuple[list[float], list[bool]]:
    """The model's confidence in its guess and whether people gave that label, for every active text answered
    without the guess shown: what the ``"auto"`` pre-selection threshold is read off."""
    res = store.resolutions()
    conf, right = [], []
    for row in store.queries():
        answer = res.get(row.item_id)
        if (
            row.kind == "active"
            and row.predicted is not None
            and row.confidence is not None
            and not row.prefilled
            and answer is not None
            and answer.label is not None
        ):
            conf.append(row.confidence)
            right.append(row.predicted == answer.label)
    return conf, right


def plan_overlap(
    rows: Sequence[QueryRow],
    *,
    share: float,
    people: int,
    threshold: float,
    active_sent: int,
    double_sent: int,
    audit_people: int = 1,
) -> list[QueryRow]:
    """Mark the batch's double-annotated tasks and pre-selection.

    Across the campaign, ``share`` of the active picks go to ``people`` annotators: this batch
    takes what keeps the running share on target (``active_sent``/``double_sent`` so far), chosen
    by a hash of the id (stable on a rerun, unrelated to uncertainty). Those tasks and audit
    tasks are blind; other active picks are pre-selected when confident enough. Audit tasks go to
    ``audit_people`` annotators.
    """
    active = [q for q in rows if q.kind == "active"]
    quota = max(0, math.floor(share * (active_sent + len(active)) + 1e-9) - double_sent)
    double = {q.item_id for q in sorted(active, key=lambda q: _rank(q.item_id))[:quota]}
    out = []
    for q in rows:
        if q.item_id in double:
            out.append(replace(q, overlap=people, prefilled=False))
        elif q.kind == "active":
            out.append(replace(q, prefilled=prefill(q.confidence, threshold)))
        else:
            out.append(replace(q, overlap=max(q.overlap, audit_people), prefilled=False))
    return out


def blind_priority(kind: str, confidence: float | None) -> float:
    """Label Studio's uncertainty sampling serves the lowest score first: audit texts and second opinions
    first (a prediction with no result and score 0), other blind tasks where their uncertainty puts them."""
    if kind in ("audit", "tie", "suspect") or confidence is None:
        return 0.0
    return float(confidence)


@dataclass(frozen=True)
class Escalation:
    """A task to serve to one more person."""

    item_id: str
    task_id: int
    reason: str  # "tie" or "suspect"
    overlap: int  # people it should have after this
    label_before: str | None
    score: float | None = None


def second_opinion_outcomes(escalations: Sequence[EscalationRow]) -> dict[str, tuple[str, str]]:
    """Per text sent for another opinion: ``(reason, outcome)``, counted once per text.

    A text sent back as a suspect is a suspect, even if its re-check tied and went on (that tie is part of
    its second opinion); several rows of one text (raised again after a tie or an empty answer) are one
    text. Outcome: ``"open"`` while any row is; else a tie is ``"settled"``, and a suspect ``"changed"``
    or ``"confirmed"``: its last decision against the label it was sent back with.
    """
    by_text: dict[str, list[EscalationRow]] = {}
    for e in sorted(escalations, key=lambda e: e.seq):
        by_text.setdefault(e.item_id, []).append(e)
    out: dict[str, tuple[str, str]] = {}
    for item, rows in by_text.items():
        suspect = next((e for e in rows if e.reason == "suspect"), None)
        reason = "tie" if suspect is None else "suspect"
        if any(e.resolved_at is None for e in rows):
            out[item] = (reason, "open")
        elif suspect is None:
            out[item] = (reason, "settled")
        else:
            last = max(rows, key=lambda e: (e.resolved_at or "", e.seq))
            out[item] = (reason, "changed" if last.label_after != suspect.label_before else "confirmed")
    return out


def waiting_for_answers(
    escalations: Iterable[EscalationRow], resolutions: Mapping[str, Resolution]
) -> set[str]:
    """Texts whose open escalation still lacks answers. One whose answers are all in but tie (a suspect
    label the second opinion contradicted, 1-1) is not waiting: it is a tie like any other."""
    return {
        e.item_id
        for e in escalations
        if e.resolved_at is None
        and (e.item_id not in resolutions or resolutions[e.item_id].answers < e.overlap)
    }


def ties_to_escalate(
    resolutions: Mapping[str, Resolution],
    tasks: Mapping[str, tuple[int, int]],
    open_ids: set[str],
    max_annotators: int,
) -> tuple[list[Escalation], list[str]]:
    """Ties whose every assigned annotator has answered: one more person each, up to ``max_annotators``.

    ``tasks`` maps our id to (task id, overlap). Returns the escalations and the ids stuck at the
    cap (they wait for a reviewer).
    """
    out, stuck = [], []
    for item_id, res in sorted(resolutions.items()):
        if res.label is not None or not res.votes or item_id not in tasks or item_id in open_ids:
            continue
        task_id, overlap = tasks[item_id]
        given = res.answers  # as Label Studio counts: an empty submission fills a place too
        if given < overlap:
            continue  # still being labeled
        if given >= max_annotators:
            stuck.append(item_id)
            continue
        out.append(Escalation(item_id, task_id, "tie", given + 1, None))
    return out, stuck


def settled(
    escalations: Iterable[EscalationRow],
    resolutions: Mapping[str, Resolution],
    records: Sequence[AnnotationRecord],
) -> list[tuple[int, str, str | None]]:
    """Open escalations whose extra opinions are in and agree on a label: (seq, label, who decided).

    The decider is whoever gave the latest live annotation of the text: the opinion that broke
    the tie or confirmed (or overturned) the suspect label. One whose latest answer is an empty
    submission is not settled (nobody gave the opinion asked for): see :func:`abstained`.
    """
    latest_label, latest_answer = _latest(records)
    out = []
    for e, label in _answered(escalations, resolutions):
        if latest_answer[e.item_id].empty:
            continue
        who = latest_label.get(e.item_id)
        out.append((e.seq, label, None if who is None else (who.annotator_email or str(who.annotator))))
    return out


def abstained(
    escalations: Iterable[EscalationRow],
    resolutions: Mapping[str, Resolution],
    records: Sequence[AnnotationRecord],
) -> list[str]:
    """Texts of open escalations whose places are all filled but whose latest answer is an empty
    submission: Label Studio serves them to nobody now (it counts the empty answer), yet the opinion
    asked for never came, so they must go to one more person. (A tie's empty answer leaves a tie,
    which :func:`ties_to_escalate` sends on by itself.)"""
    escalations = list(escalations)
    sent_on = waiting_for_answers(escalations, resolutions)  # already raised again: one more person asked
    _, latest_answer = _latest(records)
    out: list[str] = []
    for e, _label in _answered(escalations, resolutions):
        if latest_answer[e.item_id].empty and e.item_id not in out and e.item_id not in sent_on:
            out.append(e.item_id)
    return out


def _answered(
    escalations: Iterable[EscalationRow], resolutions: Mapping[str, Resolution]
) -> Iterator[tuple[EscalationRow, str]]:
    """Open escalations with every place Label Studio was asked for filled and a majority label."""
    for e in escalations:
        res = resolutions.get(e.item_id)
        if e.resolved_at is None and res is not None and res.label is not None and res.answers >= e.overlap:
            yield e, res.label


def _latest(
    records: Sequence[AnnotationRecord],
) -> tuple[dict[str, AnnotationRecord], dict[str, AnnotationRecord]]:
    """Per text, its latest live label and its latest live answer (a label or an empty submission)."""
    latest_label: dict[str, AnnotationRecord] = {}
    latest_answer: dict[str, AnnotationRecord] = {}
    for rec in live_annotations(records):
        for latest, counts in (
            (latest_label, not rec.skipped),
            (latest_answer, not rec.skipped or rec.empty),
        ):
            if counts and (
                rec.id not in latest or (rec.created_at or "") >= (latest[rec.id].created_at or "")
            ):
                latest[rec.id] = rec
    return latest_label, latest_answer
