"""Second-opinion rules with known answers: double annotation share, pre-selection, ties, settling."""

from __future__ import annotations

from labelloop.labelstudio.annotations import AnnotationRecord, PullCursor, Resolution
from labelloop.labelstudio.labelconfig import ChoicesConfig
from labelloop.labelstudio.payloads import PushItem, diff_task, prediction_payload
from labelloop.review import (
    abstained,
    blind_priority,
    plan_overlap,
    prefill,
    settled,
    ties_to_escalate,
    waiting_for_answers,
)
from labelloop.store import EscalationRow, QueryRow


def active(i: int, confidence: float) -> QueryRow:
    return QueryRow(f"t{i}", 1, "active", "margin-kmeans", "m-1", 0.5, None, "bug", confidence)


def test_the_double_annotated_share_follows_the_campaign_and_those_tasks_are_blind() -> None:
    batch = [active(i, 0.95) for i in range(10)] + [QueryRow("a1", 1, "audit", "random-audit", None)]
    planned = plan_overlap(batch, share=0.25, people=2, threshold=0.9, active_sent=30, double_sent=7)
    double = [q for q in planned if q.overlap == 2]
    assert len(double) == 3  # floor(0.25 × 40) − 7 already sent
    assert not any(q.prefilled for q in double)
    assert all(q.prefilled for q in planned if q.kind == "active" and q.overlap == 1)  # confident: pre-selected
    audit = next(q for q in planned if q.kind == "audit")
    assert audit.overlap == 1 and not audit.prefilled
    again = plan_overlap(batch, share=0.25, people=2, threshold=0.9, active_sent=30, double_sent=7)
    assert [q.item_id for q in again if q.overlap == 2] == [q.item_id for q in double]  # stable on a rerun


def test_only_confident_guesses_are_preselected() -> None:
    assert prefill(0.91, 0.9) and prefill(0.9, 0.9)
    assert not prefill(0.89, 0.9) and not prefill(None, 0.0)
    planned = plan_overlap([active(0, 0.4), active(1, 0.99)], share=0.0, people=2, threshold=0.9, active_sent=0,
                           double_sent=0)
    assert [q.prefilled for q in planned] == [False, True]


def test_a_blind_prediction_has_no_result_but_a_score_that_places_it_first() -> None:
    config = ChoicesConfig(("billing", "bug"))
    blind = prediction_payload(PushItem("t1", "x", "bug", 0.3, prefill=False), config, "m-1")
    shown = prediction_payload(PushItem("t1", "x", "bug", 0.95), config, "m-1")
    audit = prediction_payload(PushItem("a1", "x", None, blind_priority("audit", None), prefill=False), config, "m-1")
    assert blind["result"] == [] and blind["score"] == 0.3
    assert shown["result"][0]["value"]["choices"] == ["bug"]
    assert audit["result"] == [] and audit["score"] == 0.0


def res(label: str | None, votes: dict[str, int], empty: int = 0) -> Resolution:
    return Resolution("x", label, votes, empty, len(votes) > 1, empty)


def test_a_fully_answered_tie_gets_one_more_annotator_up_to_the_cap() -> None:
    resolutions = {"tie2": res(None, {"a": 1, "b": 1}), "tie3": res(None, {"a": 1, "b": 1, "c": 1}),
                   "half": res(None, {"a": 1}), "agreed": res("a", {"a": 2}), "open": res(None, {"a": 1, "b": 1})}
    tasks = {"tie2": (1, 2), "tie3": (2, 3), "half": (3, 2), "agreed": (4, 2), "open": (5, 2)}
    out, stuck = ties_to_escalate(resolutions, tasks, open_ids={"open"}, max_annotators=3)
    assert [(e.item_id, e.task_id, e.overlap, e.reason) for e in out] == [("tie2", 1, 3, "tie")]
    assert stuck == ["tie3"]  # at the cap: waits for a reviewer; "half" is still being labeled


def rec(item: str, ann: int, label: str | None, who: str, at: str) -> AnnotationRecord:
    return AnnotationRecord("created", item, 1, 10, ann, label, annotator_email=who, created_at=at)


def empty(item: str, ann: int, who: str, at: str) -> AnnotationRecord:
    """A submission without a choice: a skip to labelloop, an answer to Label Studio's overlap count."""
    return AnnotationRecord("created", item, 1, 10, ann, None, skipped=True, annotator_email=who, created_at=at,
                            empty=True)


def test_an_escalation_settles_when_its_extra_opinion_breaks_the_tie() -> None:
    esc = EscalationRow(1, "t", 10, "tie", 2, 3, "2026-11-29T10:00:00", None, None, None, None, None)
    records = [rec("t", 1, "a", "ann@x", "2026-11-29T09:00:00"), rec("t", 2, "b", "bob@x", "2026-11-29T09:10:00")]
    assert settled([esc], {"t": res(None, {"a": 1, "b": 1})}, records) == []
    records.append(rec("t", 3, "b", "ref@x", "2026-11-29T11:00:00"))
    assert settled([esc], {"t": res("b", {"a": 1, "b": 2})}, records) == [(1, "b", "ref@x")]


def test_a_submission_without_a_choice_counts_as_an_empty_skip() -> None:
    config = ChoicesConfig(("billing", "bug"))
    task = {"id": 7, "data": {"labelloop_id": "t7", "text": "x"},
            "annotations": [{"id": 1, "result": [], "was_cancelled": False, "completed_by": 3},
                            {"id": 2, "result": [], "was_cancelled": True, "completed_by": 4}]}
    empty, skip = diff_task(task, 1, config, PullCursor(), {})
    assert empty.skipped and empty.empty and empty.label is None
    assert skip.skipped and not skip.empty


def test_the_prefill_threshold_is_read_off_blind_answers() -> None:
    from labelloop.review import prefill_threshold

    conf = [0.95] * 20 + [0.8] * 20 + [0.6] * 20
    right = [True] * 20 + [True] * 17 + [False] * 3 + [True] * 10 + [False] * 10
    # top 40: 37 right (0.925 ≥ 0.9); top 60: 47 right (0.78): the cut is at 0.8
    assert prefill_threshold(conf, right, target=0.9, min_n=30) == 0.8
    assert prefill_threshold(conf[:20], right[:20], target=0.9, min_n=30) is None  # too few answers yet
    assert prefill_threshold(conf, [False] * 60, target=0.9, min_n=30) is None   # never right: never shown


def test_a_suspect_label_the_second_opinion_contradicts_is_a_tie_and_gets_a_third_person() -> None:
    """A re-asked suspect with both answers in and split 1-1 is no longer waiting: it escalates as a tie."""
    suspect = EscalationRow(1, "s", 10, "suspect", 2, 2, "2026-11-29T10:00:00", "a", 0.9, None, None, None)
    asked = EscalationRow(2, "w", 11, "suspect", 2, 2, "2026-11-29T10:00:00", "a", 0.8, None, None, None)
    resolutions = {"s": res(None, {"a": 1, "b": 1}), "w": res("a", {"a": 1})}
    waiting = waiting_for_answers([suspect, asked], resolutions)
    assert waiting == {"w"}  # "w" still waits for its second opinion
    out, stuck = ties_to_escalate(resolutions, {"s": (10, 2), "w": (11, 2)}, waiting, max_annotators=3)
    assert [(e.item_id, e.overlap, e.reason) for e in out] == [("s", 3, "tie")] and stuck == []


def test_audit_texts_go_to_as_many_people_as_the_config_asks_blind() -> None:
    batch = [active(i, 0.95) for i in range(4)] + [QueryRow("a1", 1, "audit", "random-audit", None)]
    one = plan_overlap(batch, share=0.0, people=2, threshold=0.9, active_sent=0, double_sent=0)
    two = plan_overlap(batch, share=0.0, people=2, threshold=0.9, active_sent=0, double_sent=0, audit_people=2)
    assert [q.overlap for q in one] == [1, 1, 1, 1, 1]
    assert [q.overlap for q in two] == [1, 1, 1, 1, 2] and not two[-1].prefilled


def test_more_people_per_audit_text_than_a_tie_may_reach_is_refused() -> None:
    import pytest

    from labelloop.config import QualitySection

    assert QualitySection(audit_annotators=2).audit_annotators == 2
    with pytest.raises(ValueError, match="audit_annotators"):
        QualitySection(audit_annotators=4, max_annotators=3)


def test_an_empty_answer_to_a_second_opinion_is_no_opinion_and_goes_to_one_more_person() -> None:
    """Suspect "s" was re-asked of a second person, who submitted no choice. Label Studio counts that
    answer and serves the task to nobody; labelloop must neither wait for it forever nor settle it as
    confirmed: it goes to one more person. A tie whose third answer is empty is still a tie: escalated
    again, its empty answer counted as Label Studio counts it."""
    suspect = EscalationRow(1, "s", 10, "suspect", 2, 2, "2026-11-29T10:00:00", "a", 0.9, None, None, None)
    tie = EscalationRow(2, "t", 11, "tie", 2, 3, "2026-11-29T10:00:00", None, None, None, None, None)
    resolutions = {"s": res("a", {"a": 1}, empty=1), "t": res(None, {"a": 1, "b": 1}, empty=1)}
    records = [rec("s", 1, "a", "ann@x", "2026-11-29T09:00:00"), empty("s", 2, "bob@x", "2026-11-29T11:00:00"),
               rec("t", 3, "a", "ann@x", "2026-11-29T09:00:00"), rec("t", 4, "b", "bob@x", "2026-11-29T09:10:00"),
               empty("t", 5, "ref@x", "2026-11-29T11:00:00")]
    assert waiting_for_answers([suspect, tie], resolutions) == set()  # Label Studio has every answer it asked for
    assert settled([suspect, tie], resolutions, records) == []
    assert abstained([suspect, tie], resolutions, records) == ["s"]
    raised = EscalationRow(3, "s", 10, "suspect", 2, 3, "2026-11-29T11:30:00", "a", None, None, None, None)
    assert abstained([suspect, raised, tie], resolutions, records) == []  # sent on once, not at every sync
    out, stuck = ties_to_escalate(resolutions, {"s": (10, 2), "t": (11, 3)}, set(), max_annotators=5)
    assert [(e.item_id, e.overlap) for e in out] == [("t", 4)] and stuck == []  # 3 answers in: a 4th person

    # The third person's real opinion settles the suspect, decided by them.
    records.append(rec("s", 6, "b", "ref@x", "2026-11-29T12:00:00"))
    again = EscalationRow(3, "s", 10, "suspect", 2, 3, "2026-11-29T11:30:00", "a", None, None, None, None)
    resolved = {"s": res(None, {"a": 1, "b": 1}, empty=1)}
    assert settled([suspect, again], resolved, records) == []  # 1-1: a tie now, not settled
    records.append(rec("s", 7, "b", "sue@x", "2026-11-29T13:00:00"))
    resolved = {"s": res("b", {"a": 1, "b": 2}, empty=1)}
    assert settled([suspect, again], resolved, records) == [(1, "b", "sue@x"), (3, "b", "sue@x")]


def test_second_opinions_are_counted_per_text_whatever_rows_they_took() -> None:
    """A suspect raised again after an empty answer is one open text, not two; a suspect whose re-check tied
    and was settled by a third person counts once, as a suspect, by its last decision."""
    from labelloop.review import second_opinion_outcomes

    def row(seq, item, reason, overlap, before, resolved=None, after=None):
        return EscalationRow(seq, item, 10, reason, 1, overlap, f"2026-11-29T10:0{seq}:00", before, 0.9,
                             resolved, after, None)

    rows = [row(1, "s", "suspect", 2, "a"), row(2, "s", "suspect", 3, "a"),          # raised again: open
            row(3, "c", "suspect", 2, "a", "2026-11-29T12:00", "b"),                 # its re-check tied...
            row(4, "c", "tie", 3, None, "2026-11-29T12:00", "b"),                    # ...and a third said b
            row(5, "t", "tie", 3, None, "2026-11-29T11:00", "x"), row(6, "u", "tie", 3, None)]
    assert second_opinion_outcomes(rows) == {"s": ("suspect", "open"), "c": ("suspect", "changed"),
                                             "t": ("tie", "settled"), "u": ("tie", "open")}
