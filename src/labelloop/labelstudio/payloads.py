"""Mapping between labelloop's data and Label Studio's JSON: pure functions, unit-tested on recorded payloads.

Nothing here talks to a server; :mod:`labelloop.labelstudio.client` sends what these build and
feeds them what it reads.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..labels import join_labels, split_labels
from .annotations import (
    ID_FIELD,
    META_KEY,
    SCAN_MARGIN_SECONDS,
    AnnotationRecord,
    KnownAnnotation,
    PullCursor,
    to_iso,
    to_timestamp,
)
from .errors import LabelStudioInputError, UnknownChoiceError
from .labelconfig import ChoicesConfig

__all__ = [
    "DuplicatePlan",
    "ExistingTask",
    "ProjectInfo",
    "PushItem",
    "PushReport",
    "annotation_label",
    "deleted_records",
    "diff_task",
    "duplicate_plan",
    "existing_from_tasks",
    "prediction_payload",
    "task_payload",
    "tasks_to_fetch",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProjectInfo:
    id: int
    title: str
    config: ChoicesConfig
    model_version: str | None = None
    created: bool = False
    created_at: str | None = None  # with the id, the project's identity: a recreated project differs
    instructions: str = ""  # the HTML shown to annotators (``expert_instruction``)

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)


@dataclass(frozen=True)
class PushItem:
    """A text to label, with what annotators see and in which order they get it.

    ``label`` is the model's guess (in a multi-label project, the set joined into one string, see
    :func:`labelloop.labels.join_labels`) and ``score`` the confidence Label Studio's uncertainty
    sampling orders by (lowest first). The guess is pre-selected only with ``prefill``; without
    it (or with only a ``score``) the task still gets a prediction, with an empty result, so it
    keeps its place in the queue without anchoring anyone. ``overlap`` is how many people label
    it; ``cluster`` is the diversity cluster (None: none).
    """

    id: str
    text: str
    label: str | None = None
    score: float | None = None
    cluster: int | None = None
    prefill: bool = True
    overlap: int = 1

    @property
    def predicts(self) -> bool:
        """Whether the task gets a prediction (shown or blind)."""
        return self.label is not None or self.score is not None

    @property
    def shown(self) -> str | None:
        """The label pre-selected for annotators, if any."""
        return self.label if self.prefill else None


@dataclass(frozen=True)
class PushReport:
    created: list[str]  # our ids that became tasks in this push
    existing: list[str]  # our ids that were already tasks (not imported again)
    predictions_added: list[str]  # existing tasks that lacked a prediction of this model version
    task_ids: dict[str, int]  # our id -> task id, for every item
    model_version: str | None
    duplicates_removed: list[int] = field(default_factory=list)  # extra unannotated task ids deleted
    duplicates_annotated: list[str] = field(default_factory=list)  # our ids annotated on several tasks: kept


@dataclass(frozen=True)
class ExistingTask:
    task_id: int
    model_versions: frozenset[str]  # of its predictions
    pushed_as: str | None  # model version of the push that created it (task meta)
    overlap: int = 1  # people who should label it


@dataclass(frozen=True)
class DuplicatePlan:
    """What to do about labelloop ids that have more than one task."""

    delete: list[int]  # unannotated extra tasks: safe to delete
    annotated: list[str]  # our ids with annotations on more than one task: reported, never deleted


def task_payload(item: PushItem, config: ChoicesConfig, model_version: str | None) -> dict[str, Any]:
    """One task for the import API: ``data`` = text + our id, optional inline prediction."""
    task: dict[str, Any] = {
        "data": {config.text_key: item.text, ID_FIELD: item.id},
        "meta": {META_KEY: {"model_version": model_version, "cluster": item.cluster}},
    }
    if item.predicts:
        task["predictions"] = [prediction_payload(item, config, model_version)]
    return task


def prediction_payload(
    item: PushItem, config: ChoicesConfig, model_version: str | None, task_id: int | None = None
) -> dict[str, Any]:
    pred: dict[str, Any] = {
        "model_version": model_version,
        "score": None if item.score is None else float(item.score),
        # Dropped by the bulk import of 1.23.2, kept in case a later version honours it.
        "cluster": item.cluster,
        "result": []
        if item.shown is None
        else [
            {
                "from_name": config.from_name,
                "to_name": config.to_name,
                "type": "choices",
                "value": {"choices": choices_of(item.shown, config)},
            }
        ],
    }
    if task_id is not None:
        pred["task"] = task_id
    return pred


def choices_of(label: str, config: ChoicesConfig) -> list[str]:
    """The choices a stored label stands for: itself, or in a multi-label project the set it joins."""
    return sorted(split_labels(label, config.delimiter)) if config.multiple else [label]


def existing_from_tasks(tasks: Iterable[dict[str, Any]]) -> dict[str, ExistingTask]:
    """Our id -> task, from task-list rows with ``id``, ``data``, ``meta``, ``predictions_model_versions``.

    Tasks without our id (added in Label Studio by hand) are left out; if one id has several
    tasks, the oldest represents it (``push`` then removes the unannotated extras).
    """
    out: dict[str, ExistingTask] = {}
    for t in sorted(tasks, key=lambda t: t["id"]):
        our_id = (t.get("data") or {}).get(ID_FIELD)
        if our_id is None or str(our_id) in out:
            continue
        listed = (t.get("predictions_model_versions") or "").split(",")
        versions = frozenset(v.strip() for v in listed if v.strip())
        meta = (t.get("meta") or {}).get(META_KEY) or {}
        out[str(our_id)] = ExistingTask(
            int(t["id"]), versions, meta.get("model_version"), int(t.get("overlap") or 1)
        )
    return out


def has_annotations(task: dict[str, Any]) -> bool:
    """Whether a task row shows any annotation (skips count); a row that does not say is taken as annotated."""
    keys = ("annotations_ids", "annotations", "total_annotations", "cancelled_annotations")
    if not any(k in task for k in keys):
        return True
    ids = str(task.get("annotations_ids") or "").strip(", ")
    return bool(
        ids or task.get("annotations") or task.get("total_annotations") or task.get("cancelled_annotations")
    )


def duplicate_plan(tasks: Iterable[dict[str, Any]]) -> DuplicatePlan:
    """Which tasks to delete so each labelloop id keeps one task.

    Per id with several tasks: keep the annotated one if exactly one is annotated, else the lowest
    task id; delete only extras without annotations. Ids annotated on several tasks keep those tasks
    and are reported: someone's work is never deleted.
    """
    by_id: dict[str, list[dict[str, Any]]] = {}
    for t in tasks:
        our_id = (t.get("data") or {}).get(ID_FIELD)
        if our_id is not None:
            by_id.setdefault(str(our_id), []).append(t)
    delete: list[int] = []
    annotated: list[str] = []
    for our_id, group in sorted(by_id.items()):
        if len(group) < 2:
            continue
        group = sorted(group, key=lambda t: int(t["id"]))
        done = [t for t in group if has_annotations(t)]
        keep = done[0] if done else group[0]
        if len(done) > 1:
            annotated.append(our_id)
        delete += [int(t["id"]) for t in group if t is not keep and not has_annotations(t)]
    return DuplicatePlan(sorted(delete), annotated)


def annotation_label(ann: dict[str, Any], config: ChoicesConfig, task: dict[str, Any]) -> str | None:
    """The one choice of an annotation (None: empty or skipped); a choice outside the set is an error.
    In a multi-label project, the chosen set joined into one label (:func:`labelloop.labels.join_labels`)."""
    if ann.get("was_cancelled"):
        return None
    chosen = [
        c
        for r in ann.get("result") or []
        if r.get("from_name") == config.from_name and r.get("type") == "choices"
        for c in (r.get("value") or {}).get("choices") or []
    ]
    our_id = (task.get("data") or {}).get(ID_FIELD)
    where = f"task {task.get('id')} (id {our_id!r}), annotation {ann.get('id')}"
    if len(chosen) > 1 and not config.multiple:
        raise UnknownChoiceError(f"{where} has {len(chosen)} choices {chosen}; labelloop needs one")
    outside = [c for c in chosen if c not in config.labels]
    if outside:
        more = f", … ({len(config.labels)} in all)" if len(config.labels) > 8 else ""
        shown = ", ".join(config.labels[:8]) + more
        raise UnknownChoiceError(
            f"{where} has choice {outside[0]!r}, not in the label set ({shown}); "
            f"fix the annotation in Label Studio or the project's labels"
        )
    if config.multiple:
        return join_labels(chosen, config.delimiter) if chosen else None
    return chosen[0] if chosen else None


def diff_task(
    task: dict[str, Any], project: int, config: ChoicesConfig, cursor: PullCursor, emails: dict[int, str]
) -> list[AnnotationRecord]:
    """Records for one fully fetched task: new and changed annotations, and known ones now gone."""
    our_id = str(task["data"][ID_FIELD])
    now: dict[int, dict[str, Any]] = {int(a["id"]): a for a in task.get("annotations") or []}
    out = []
    for ann_id, ann in sorted(now.items()):
        label = annotation_label(ann, config, task)
        updated = to_iso(ann.get("updated_at"))
        known = cursor.annotations.get(ann_id)
        if known is not None and known.updated_at == updated:
            continue
        by = ann.get("completed_by")
        by = by.get("id") if isinstance(by, dict) else by
        out.append(
            AnnotationRecord(
                event="created" if known is None else "updated",
                id=our_id,
                project=project,
                task_id=int(task["id"]),
                annotation_id=ann_id,
                label=label,
                skipped=bool(ann.get("was_cancelled")) or label is None,
                annotator=by,
                empty=label is None and not ann.get("was_cancelled"),
                annotator_email=emails.get(by) if by is not None else None,
                created_at=to_iso(ann.get("created_at")),
                updated_at=updated,
                previous_label=None if known is None else known.label,
            )
        )
    out += deleted_records(
        {a: k for a, k in cursor.annotations.items() if k.task_id == int(task["id"]) and a not in now},
        project,
        task_deleted=False,
    )
    return out


def deleted_records(
    gone: dict[int, KnownAnnotation], project: int, task_deleted: bool
) -> list[AnnotationRecord]:
    return [
        AnnotationRecord(
            event="deleted",
            id=k.id,
            project=project,
            task_id=k.task_id,
            annotation_id=a,
            label=None,
            previous_label=k.label,
            task_deleted=task_deleted,
        )
        for a, k in sorted(gone.items())
    ]


def tasks_to_fetch(
    scan: Iterable[dict[str, Any]], cursor: PullCursor, margin: float = SCAN_MARGIN_SECONDS
) -> tuple[list[int], set[int]]:
    """Tasks to fetch in full and all task ids, from the scan (``id``, ``updated_at``, ``annotations_ids``).

    A task is fetched when its annotation ids differ from what the cursor knows (new or
    deleted annotations), or when it has annotations and changed since the last scan (edits).
    """
    since = None if cursor.scanned_at is None else to_timestamp(cursor.scanned_at) - margin
    known_by_task: dict[int, set[int]] = {}
    for a, k in cursor.annotations.items():
        known_by_task.setdefault(k.task_id, set()).add(a)
    fetch, seen = [], set()
    for t in scan:
        tid = int(t["id"])
        seen.add(tid)
        ids = {int(x) for x in str(t.get("annotations_ids") or "").split(",") if x.strip()}
        changed = since is None or to_timestamp(to_iso(t.get("updated_at"))) >= since
        if ids != known_by_task.get(tid, set()) or (ids and changed):
            fetch.append(tid)
    return fetch, seen


def chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    return obj.model_dump(mode="json") if hasattr(obj, "model_dump") else dict(obj)


def check_push(info: ProjectInfo, items: Sequence[PushItem], model_version: str | None) -> None:
    """Refuse a push that cannot be right before anything is sent."""
    dups = sorted(i for i, n in Counter(it.id for it in items).items() if n > 1)
    if dups:
        raise LabelStudioInputError(f"duplicate ids in the push: {dups[:10]}")
    bad = [it.id for it in items if not it.text or not it.text.strip()]
    if bad:
        raise LabelStudioInputError(f"empty texts for ids {bad[:10]}")
    guessed = {c for it in items if it.label is not None for c in choices_of(it.label, info.config)}
    unknown = sorted(guessed - set(info.config.labels))
    if unknown:
        raise LabelStudioInputError(f"predicted labels {unknown} are not choices of project {info.id}")
    if model_version is None and any(it.predicts for it in items):
        raise LabelStudioInputError("predictions need a model_version")
    bad_overlap = [it.id for it in items if it.overlap < 1]
    if bad_overlap:
        raise LabelStudioInputError(f"overlap must be ≥ 1 for ids {bad_overlap[:10]}")
    if model_version is not None and ("," in model_version or not model_version.strip()):
        # Label Studio lists a task's prediction versions comma-separated.
        raise LabelStudioInputError(f"model_version {model_version!r} must be non-empty without commas")
