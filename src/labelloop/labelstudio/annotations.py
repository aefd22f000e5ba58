"""Annotations as labelloop sees them: records of changes, the pull cursor, and the vote per text.

Pure domain types (no I/O, no HTTP, no SDK): the store and the report build on these, so they
must import without the Label Studio client.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ID_FIELD",
    "META_KEY",
    "SCAN_MARGIN_SECONDS",
    "AnnotationRecord",
    "KnownAnnotation",
    "PullCursor",
    "PullResult",
    "Resolution",
    "live_annotations",
    "model_version_for",
    "resolve",
]

ID_FIELD = "labelloop_id"
"""Key of our stable id in each task's ``data``."""
META_KEY = "labelloop"
"""Key in each task's ``meta``: ``{"model_version": ..., "cluster": ...}`` of the push that created it."""
SCAN_MARGIN_SECONDS = 10.0
"""Tasks changed this long before the last scan are fetched again: a write in flight during
the scan may carry an earlier ``updated_at`` than what the scan saw."""


@dataclass(frozen=True)
class AnnotationRecord:
    """One change to one annotation, as seen by a pull.

    ``event`` is ``created``, ``updated`` (latest wins; ``previous_label`` keeps what it
    was) or ``deleted`` (the annotation or, with ``task_deleted``, its whole task).
    ``skipped`` means the annotator pressed Skip, or submitted without a choice (then ``empty``
    is set too): either way not a label, and counted as a skip.
    """

    event: str
    id: str
    project: int
    task_id: int
    annotation_id: int
    label: str | None
    skipped: bool = False
    annotator: int | None = None
    annotator_email: str | None = None
    created_at: str | None = None
    updated_at: str | None = None
    previous_label: str | None = None
    task_deleted: bool = False
    empty: bool = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnnotationRecord:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class KnownAnnotation:
    """What the cursor remembers of one live annotation."""

    task_id: int
    id: str
    updated_at: str | None
    label: str | None


@dataclass
class PullCursor:
    """What the previous pulls saw: every live annotation's task, our id, ``updated_at`` and label,
    and ``scanned_at``, the server's clock when the last scan started.

    New and deleted annotations are found from the annotation ids alone; only edits of an
    existing annotation need ``scanned_at``: tasks changed since then (minus a safety margin
    for writes still in flight during the scan) are fetched again. The annotations can be
    rebuilt from the records themselves (:meth:`from_records`).
    """

    annotations: dict[int, KnownAnnotation] = field(default_factory=dict)
    scanned_at: str | None = None

    def apply(self, rec: AnnotationRecord) -> None:
        if rec.event == "deleted":
            self.annotations.pop(rec.annotation_id, None)
        else:
            self.annotations[rec.annotation_id] = KnownAnnotation(
                rec.task_id, rec.id, rec.updated_at, None if rec.skipped else rec.label
            )

    @classmethod
    def from_records(cls, records: Iterable[AnnotationRecord], scanned_at: str | None = None) -> PullCursor:
        cursor = cls(scanned_at=scanned_at)
        for rec in records:
            cursor.apply(rec)
        return cursor

    def to_dict(self) -> dict[str, Any]:
        return {
            "scanned_at": self.scanned_at,
            "annotations": {str(a): asdict(k) for a, k in self.annotations.items()},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PullCursor:
        return cls({int(a): KnownAnnotation(**k) for a, k in d["annotations"].items()}, d.get("scanned_at"))


@dataclass(frozen=True)
class PullResult:
    records: list[AnnotationRecord]  # changes since the cursor, in task order
    cursor: PullCursor  # pass to the next pull
    tasks_scanned: int
    tasks_fetched: int
    foreign_tasks: int  # annotated tasks without our id (made in Label Studio by hand)


@dataclass(frozen=True)
class Resolution:
    """The agreed label of one text: majority of its live, non-skipped annotations.

    ``label`` is None when nobody labeled it yet or the vote is tied; ``disagreement``
    is set as soon as two annotators gave different labels. ``empty`` counts, of the ``skipped``,
    the submissions without a choice: not opinions, but Label Studio counts them toward a task's
    overlap (:attr:`answers`), unlike a press of Skip.
    """

    id: str
    label: str | None
    votes: dict[str, int]
    skipped: int
    disagreement: bool
    empty: int = 0

    @property
    def answers(self) -> int:
        """What Label Studio counts toward the task's overlap: labels and empty submissions."""
        return sum(self.votes.values()) + self.empty


def live_annotations(records: Iterable[AnnotationRecord]) -> list[AnnotationRecord]:
    """The current state of every annotation: later records win, deleted ones are gone."""
    live: dict[int, AnnotationRecord] = {}
    for rec in records:
        if rec.event == "deleted":
            live.pop(rec.annotation_id, None)
        else:
            live[rec.annotation_id] = rec
    return list(live.values())


def resolve(records: Iterable[AnnotationRecord]) -> dict[str, Resolution]:
    """Replay records (later ones win, deletions remove) and vote per our id."""
    votes: dict[str, Counter[str]] = {}
    skips: Counter[str] = Counter()
    empty: Counter[str] = Counter()
    for rec in live_annotations(records):
        votes.setdefault(rec.id, Counter())
        if rec.skipped:
            skips[rec.id] += 1
            empty[rec.id] += rec.empty
        elif rec.label is not None:
            votes[rec.id][rec.label] += 1
    out = {}
    for our_id, count in votes.items():
        ranked = count.most_common()
        tied = len(ranked) > 1 and ranked[0][1] == ranked[1][1]
        label = ranked[0][0] if ranked and not tied else None
        out[our_id] = Resolution(our_id, label, dict(count), skips[our_id], len(count) > 1, empty[our_id])
    return out


def model_version_for(labels: dict[str, str], encoder_identity: str, extra: str = "") -> str:
    """A model version derived from what the model is trained on: :func:`labelloop.learner.model_version`
    (kept under this name for the notebook and callers of the Label Studio package)."""
    from ..learner import model_version

    return model_version(labels, encoder_identity, extra)


def to_iso(value: Any) -> str | None:
    """A server timestamp (string or datetime) as ISO 8601, so cursors compare what they store."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return datetime.fromisoformat(str(value)).isoformat()


def to_timestamp(iso: str | None) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else float("-inf")
