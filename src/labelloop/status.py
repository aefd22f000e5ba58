"""Where a campaign stands, from the state file alone (no network, no embedding): ``status`` is instant.

:func:`summary` gathers the numbers a lead looks at (queue, labels, skips, agreement, second
opinions, the model's audit accuracy, stop advice); :func:`next_steps` turns them into what to
do now. The report builds on the same numbers.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any

from .campaign import current_advice
from .config import Config
from .copies import conflicts_message
from .labelstudio.annotations import AnnotationRecord, Resolution, live_annotations
from .quality import agreement_report, label_set_agreement_report
from .review import (
    PREFILL_MIN_ANSWERS,
    abstained,
    blind_answers,
    prefill_threshold,
    second_opinion_outcomes,
)
from .store import EscalationRow, RoundRow, Store

__all__ = ["summary", "next_steps", "who", "votes_of", "agreement_votes", "coverage", "conflicts_note"]


def who(rec: AnnotationRecord) -> str:
    return rec.annotator_email or (f"user {rec.annotator}" if rec.annotator is not None else "unknown")


def votes_of(
    records: Sequence[AnnotationRecord], leave_out: Collection[str] = ()
) -> list[tuple[str, str, str]]:
    """(text id, annotator, label) of every live, non-skipped annotation, but those of ``leave_out`` texts."""
    return [
        (r.id, who(r), r.label)
        for r in live_annotations(records)
        if not r.skipped and r.label is not None and r.id not in leave_out
    ]


def agreement_votes(
    records: Sequence[AnnotationRecord], escalations: Iterable[EscalationRow]
) -> list[tuple[str, str, str]]:
    """The votes agreement is measured on: not those of texts sent back as suspected label errors. They were
    chosen because their label looked wrong, so people disagree on them far more than on texts at random
    (a QA campaign: 1 agreement in 19 re-asks against 23 in 23 blind double annotations)."""
    return votes_of(records, {e.item_id for e in escalations if e.reason == "suspect"})


def _waiting_for_more(
    wanted: Mapping[str, int], res: Mapping[str, Resolution], voters: Mapping[str, set[str]]
) -> tuple[int, int]:
    """Of the texts in ``wanted`` (our id → people asked), those answered but by fewer people than asked
    (as Label Studio counts answers: an empty submission fills a place; texts nobody answered yet are
    simply in the queue), and how many of them every annotator seen so far (``voters``: text → who
    answered it) has answered already: Label Studio serves those only to someone new."""
    everyone = set().union(*voters.values()) if voters else set()
    waiting = [i for i, n in wanted.items() if i in res and 0 < res[i].answers < n]
    return len(waiting), sum(bool(everyone) and voters.get(i, set()) >= everyone for i in waiting)


def _round_info(last: RoundRow | None) -> dict[str, Any]:
    if last is None:  # only a file whose first sync died before registering: print, do not crash
        return {"round": None, "model_version": None, "n_labeled": 0, "created_at": None}
    return {
        "round": last.round,
        "model_version": last.model_version,
        "n_labeled": last.n_labeled,
        "created_at": last.created_at,
    }


def _labels_per_class(
    config: Config, last: RoundRow | None, res: Mapping[str, Resolution], audit: Collection[str]
) -> dict[str, int]:
    """Labels per class the model learns from: the last round's, with agreed labels since (not the audit's);
    a label set counts for each member. Every class of the config is listed, those with none at 0."""
    from .labels import split_labels

    labels = dict(last.train_labels) if last is not None else {}
    labels.update({i: r.label for i, r in res.items() if r.label is not None and i not in audit})
    counts = dict.fromkeys(config.labels, 0)
    for label in labels.values():
        for member in split_labels(label, config.label_delimiter) if config.multi_label else [label]:
            if member in counts:
                counts[member] += 1
    return counts


def labels_per_class_note(s: Mapping[str, Any]) -> str:
    """One line: the classes with fewest labels, and those with none (rare intents hide in a backlog)."""
    counts = s["per_class"]
    fewest = sorted((n, c) for c, n in counts.items() if n)[:3]
    none = sorted(c for c, n in counts.items() if not n)
    line = "labels per class: fewest " + (", ".join(f"{c} {n}" for n, c in fewest) if fewest else "none yet")
    if none:
        shown = ", ".join(none[:8]) + (", …" if len(none) > 8 else "")
        line += f"; {len(none)} of {len(counts)} class(es) with no label yet: {shown}"
    return line


def _escalations(store: Store) -> dict[str, int]:
    out = {
        "ties_open": 0,
        "ties_settled": 0,
        "suspects_open": 0,
        "suspects_confirmed": 0,
        "suspects_changed": 0,
    }
    for reason, outcome in second_opinion_outcomes(store.escalations()).values():
        out[f"{reason}s_{outcome}"] += 1
    return out


def summary(config: Config) -> dict[str, Any]:
    """Status numbers from the ledger: runs, queue, labels, annotators, agreement, second opinions, metrics."""
    with Store.open_existing(config.state.path) as store:
        runs = store.runs()
        res = store.resolutions()
        last = store.last_round()
        records = store.records()
        annotators: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        voters: dict[str, set[str]] = defaultdict(set)  # text → who answered it
        live = live_annotations(records)
        for rec in live:
            annotators[who(rec)][1 if rec.skipped else 0] += 1
            voters[rec.id].add(who(rec))
        audit = set(store.ids_with_role("audit"))
        escalation_rows = store.escalations()
        votes = agreement_votes(records, escalation_rows)
        agreement = (
            label_set_agreement_report(votes, config.labels, config.label_delimiter)
            if config.multi_label
            else agreement_report(votes)
        )
        opinions: dict[str, int] = {}  # text → the most people an open escalation asks for
        for e in escalation_rows:
            if e.resolved_at is None:
                opinions[e.item_id] = max(e.overlap, opinions.get(e.item_id, 0))
        waiting, blocked = _waiting_for_more(opinions, res, voters)
        open_rows = [e for e in escalation_rows if e.resolved_at is None]
        left_empty = abstained(open_rows, res, records) if open_rows else []
        doubles = {
            q.item_id: q.overlap for q in store.queries() if q.overlap > 1 and q.item_id not in opinions
        }
        doubles_waiting, doubles_blocked = _waiting_for_more(doubles, res, voters)
        guidelines = store.guidelines()
        copies = store.copies()
        n_items, n_rows = store.row_counts()
        labeled = [i for i, r in res.items() if r.label is not None]
        conflicts = json.loads(store.get("data_conflicts") or '{"n": 0, "shown": []}')
        return {
            "runs": len(runs),
            "last_run": runs[-1].finished_at if runs else None,
            "stopped": runs[-1].stopped if runs else None,
            "sent": len(store.pushes()),
            "queue": runs[-1].queue_after if runs else 0,
            "labeled": len(labeled),
            # Identical texts are one item asked once: its label covers every copy in the data.
            "rows": {
                "items": n_items,
                "rows": n_rows,
                "labeled": len(labeled) + sum(copies.get(i, 1) - 1 for i in labeled),
            },
            "data_conflicts": conflicts,
            "skipped": sum(r.skipped > 0 and not r.votes for r in res.values()),
            "empty": sum(r.empty for r in live),
            "disagreements": sum(r.disagreement for r in res.values()),
            "ties": sum(r.label is None and bool(r.votes) for r in res.values()),
            # Ties, and second opinions whose extra answer was empty, with no place left (as sync names them).
            "stuck_at_cap": sum(
                r.label is None and bool(r.votes) and r.answers >= config.quality.max_annotators
                for r in res.values()
            )
            + sum(res[i].answers >= config.quality.max_annotators for i in left_empty),
            "opinions_waiting": waiting,
            "opinions_blocked": blocked,
            "doubles_waiting": doubles_waiting,
            "doubles_blocked": doubles_blocked,
            "audit": {
                "size": len(audit),
                "sent": sum(i in audit for i in store.pushes()),
                "labeled": sum(i in audit and r.label is not None for i, r in res.items()),
            },
            "agreement": agreement,
            "escalations": _escalations(store),
            "guidelines": guidelines[-1] if guidelines else None,
            "round": _round_info(last),
            "per_class": _labels_per_class(config, last, res, audit),
            "metrics": last.metrics if last else {},
            "annotators": {k: (v[0], v[1]) for k, v in annotators.items()},
            "advice": current_advice(store, config),
            "project_id": store.get("project_id"),
            "prefill": _prefill(store, config),
        }


def _prefill(store: Store, config: Config) -> dict[str, Any]:
    """How many active tasks were sent with the model's guess pre-selected, and the threshold's state."""
    sent = store.pushes()
    active = [q for q in store.queries() if q.kind == "active" and q.item_id in sent]
    conf, right = blind_answers(store)
    rule = config.quality.prefill_confidence
    cutoff = (
        prefill_threshold(conf, right, target=config.quality.prefill_precision)
        if rule == "auto"
        else float(rule)
    )
    return {
        "shown": sum(q.prefilled for q in active),
        "sent": len(active),
        "blind": len(conf),
        "right": sum(right),
        "cutoff": cutoff,
        "auto": rule == "auto",
    }


def prefill_note(s: Mapping[str, Any], config: Config) -> str:
    """One line: how often annotators saw the model's guess pre-selected, and why (not)."""
    p = s["prefill"]
    head = f"pre-selected guesses: {p['shown']} of {p['sent']} task(s) the model chose"
    if not p["auto"]:
        if p["cutoff"] > 1:
            return f"{head} (quality.prefill_confidence = {p['cutoff']}: never)"
        return f"{head} (quality.prefill_confidence = {p['cutoff']}: from that confidence up)"
    target = f"{config.quality.prefill_precision:.0%}"
    if p["cutoff"] is not None:
        return (
            f"{head}; shown from confidence {p['cutoff']:.2f} up, where {target} of the guesses people answered "
            f"without seeing them were right ({p['blind']} such answers)"
        )
    if p["blind"] < PREFILL_MIN_ANSWERS:
        return (
            f"{head}; none until {PREFILL_MIN_ANSWERS} answers given without the guess show where it is right "
            f"{target} of the time ({p['blind']} so far)"
        )
    share = f"{p['right'] / p['blind']:.0%}" if p["blind"] else "n/a"
    return (
        f"{head}; none: on {p['blind']} answers given without seeing it, the guess was right {share}, "
        f"below {target} at every confidence (quality.prefill_precision)"
    )


def coverage(s: Mapping[str, Any]) -> str | None:
    """ "N labels cover M rows" when identical texts were collapsed (else labels and rows are the same)."""
    r = s["rows"]
    if r["rows"] == r["items"]:
        return None
    return (
        f"{s['labeled']} label(s) cover {r['labeled']} data row(s); the data's {r['rows']} rows hold "
        f"{r['items']} distinct texts (identical texts are asked once, their label counts for every copy)"
    )


def conflicts_note(s: Mapping[str, Any]) -> str | None:
    """The data's own labels that disagree across copies of one text (the majority was kept)."""
    c = s["data_conflicts"]
    return conflicts_message(c["n"], c["shown"]) if c["n"] else None


def next_steps(s: Mapping[str, Any], config: Config) -> list[str]:
    """What to do now, in the order a lead would do it."""
    steps: list[str] = []
    fired = [a for a in s["advice"] if a.fired and a.criterion in config.stop.on]
    if not s["runs"]:
        return [f"run `labelloop sync --config …` (nothing has been synced into {config.state.path} yet)"]
    if s["stopped"] and "exhausted" in s["stopped"]:
        steps.append(
            "campaign complete: the pool is exhausted (every text is labeled or was sent); write the "
            "report with `labelloop report`"
        )
    elif fired:
        steps.append(
            f"stop: {', '.join(a.criterion for a in fired)} met; write the report (`labelloop report`), or "
            f"raise loop.budget / change stop.on to go on"
        )
    if s["stuck_at_cap"]:
        steps.append(
            f"{s['stuck_at_cap']} text(s) reached quality.max_annotators without a settled label (a tie, or a "
            f"second opinion answered empty): a reviewer should open them in Label Studio and answer (the next "
            f"sync settles them)"
        )
    served = s["opinions_waiting"] - s["opinions_blocked"]
    if s["opinions_blocked"]:
        steps.append(
            f"{s['opinions_blocked']} second opinion(s) need someone new: every annotator who has labeled "
            f"anything so far has labeled those texts, so Label Studio serves them only to a project member "
            f"who has not (a reviewer, or a new annotator): they get them first"
        )
    if served > 0:
        steps.append(
            f"{served} second opinion(s) wait for someone who has not labeled those texts yet (served first "
            f"in Label Studio)"
        )
    if s["doubles_waiting"] > s["doubles_blocked"]:
        steps.append(
            f"{s['doubles_waiting'] - s['doubles_blocked']} double-annotated text(s) wait for their second "
            f"annotator in Label Studio"
        )
    if s["doubles_blocked"]:
        steps.append(
            f"{s['doubles_blocked']} double-annotated text(s) wait for a second person, but every annotator who "
            f"has labeled anything so far has labeled them: another project member must (invite one if "
            f"nobody else labels; agreement is measured on these)"
        )
    none = sorted(c for c, n in s["per_class"].items() if not n)
    if none and s["round"]["round"]:  # a model exists, yet never saw these classes
        steps.append(
            f"{len(none)} class(es) have no label yet ({', '.join(none[:5])}{', …' if len(none) > 5 else ''}): "
            f"the model cannot predict them; if the backlog holds such texts, an example in the guidelines "
            f"(or a few labeled rows in the data) lets it start finding them"
        )
    if s["queue"]:
        steps.append(f"{s['queue']} task(s) wait for annotators in Label Studio project {s['project_id']}")
    elif not fired and not (s["stopped"] and "exhausted" in s["stopped"]):
        steps.append("the queue is empty: run `labelloop sync` to top it up (is cron running?)")
    if s["guidelines"] is None:
        steps.append(
            "no guidelines: set [guidelines] path in the config (`labelloop init` writes a starter) so "
            "annotators share one set of rules"
        )
    if s["data_conflicts"]["n"]:
        steps.append(
            f"{s['data_conflicts']['n']} text(s) carry different labels on their copies in the data "
            f"(the majority is kept): correct the label column"
        )
    if s["empty"]:
        steps.append(
            f"{s['empty']} submission(s) had no choice and count as skips: remind annotators to Skip instead"
        )
    return steps
