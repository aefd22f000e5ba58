"""Label Studio connector: push the model's picks as tasks, pull people's labels back.

The only network code in the package. Plain data in and out (ids, texts, labels,
scores), so the CLI and the sync job sit on top of it::

    ls = Connector()                                   # LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY
    project = ls.ensure_project("tickets", ["billing", "bug", "other"])
    ls.push(project.id, [PushItem("t1", "I was charged twice", "billing", 0.41, cluster=3)], "m-1")
    result = ls.pull(project.id, cursor=None)          # records + a cursor for the next pull
    labels = resolve(result.records)                   # majority label per id, disagreement flagged

Facts about Label Studio (1.23.2, checked against a real server) this module is shaped by:

* Importing the same task twice creates two tasks, so ``push`` looks up what exists (our id
  lives in ``data.labelloop_id``) before importing, and after any failed request: a retry after
  a crash or a lost response never duplicates, it converges.
* An import is not one transaction (tasks, then their predictions), so a task may exist
  without its prediction; ``push`` adds the missing prediction instead of a second task.
* The SDK retries POSTs on connection errors and 5xx: unsafe for imports, so the SDK's own
  retries are off and this module retries reads only, writes only after re-reading.
* Predictions count only when their ``model_version`` is the project's, and the project's
  ``model_version`` can only be set once a prediction with it exists: set after importing.
* The bulk imports drop a prediction's ``cluster`` field; only a request per prediction sets
  it (≈ 0.1–0.2 s each). So the cluster goes into the task's ``meta``, and into the predictions
  only on request (``prediction_clusters=True``).
* Every annotation change (create, update, skip, delete) bumps the task's ``updated_at``, and
  the task list can return each task's annotation ids cheaply: ``pull`` scans that light index
  and fetches in full only the tasks that changed. (``only_annotated=True`` filters nothing,
  and ``projects.list(title=...)`` does not filter by title either.)
* Label Studio does not check that an annotation's choice is in the config, so ``pull`` does.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import quoteattr

import httpx

from .errors import LabelloopError

__all__ = [
    "Connector", "PushItem", "PushReport", "ProjectInfo", "ChoicesConfig", "ExistingTask", "AnnotationRecord",
    "PullCursor", "PullResult", "Resolution", "resolve", "live_annotations", "labeling_config", "parse_config", "check_label_set",
    "LabelStudioError", "LabelStudioInputError", "ProjectNotFoundError", "LabelSetMismatchError",
    "UnknownChoiceError", "ID_FIELD",
]

log = logging.getLogger(__name__)

ID_FIELD = "labelloop_id"
"""Key of our stable id in each task's ``data``."""
META_KEY = "labelloop"
"""Key in each task's ``meta``: ``{"model_version": ..., "cluster": ...}`` of the push that created it."""
Progress = Callable[[int, int], None]
SCAN_MARGIN_SECONDS = 10.0
"""Tasks changed this long before the last scan are fetched again: a write in flight during
the scan may carry an earlier ``updated_at`` than what the scan saw."""


# -- errors ----------------------------------------------------------------------------------------

class LabelStudioError(LabelloopError):
    """Label Studio is unreachable, refused the API key, or failed (exit 3).

    ``transient`` says whether the same request may succeed later (network, 5xx).
    """

    exit_code = 3

    def __init__(self, message: str, *, transient: bool = False, status: int | None = None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


class LabelStudioInputError(LabelloopError):
    """What we asked Label Studio for is wrong: bad config, unknown project, bad label set (exit 2)."""


class ProjectNotFoundError(LabelStudioInputError):
    """No project with that id or title."""


class LabelSetMismatchError(LabelStudioInputError):
    """The project's choices are not our label set (we never relabel a project silently)."""


class UnknownChoiceError(LabelStudioInputError):
    """An annotation holds a choice outside the label set (Label Studio does not validate choices)."""


# -- labeling config -------------------------------------------------------------------------------

@dataclass(frozen=True)
class ChoicesConfig:
    """What we need from a text-classification labeling config."""

    labels: tuple[str, ...]
    from_name: str = "label"
    to_name: str = "text"
    text_key: str = "text"


def _check_labels(labels: Sequence[str]) -> list[str]:
    labels = list(labels)
    if not labels:
        raise LabelStudioInputError("the label set is empty; give the labels (e.g. --labels a,b,c)")
    bad = [lab for lab in labels if not isinstance(lab, str) or not lab.strip() or lab != lab.strip()]
    if bad:
        raise LabelStudioInputError(f"labels must be non-empty without surrounding spaces: {bad!r}")
    dups = sorted(lab for lab, n in Counter(labels).items() if n > 1)
    if dups:
        raise LabelStudioInputError(f"duplicate labels in the label set: {dups!r}")
    return labels


def labeling_config(labels: Sequence[str], *, from_name: str = "label", to_name: str = "text",
                    text_key: str = "text") -> str:
    """A single-choice text-classification config; every label is XML-escaped."""
    choices = "\n".join(f"    <Choice value={quoteattr(lab)}/>" for lab in _check_labels(labels))
    return (f'<View>\n  <Text name={quoteattr(to_name)} value={quoteattr("$" + text_key)}/>\n'
            f'  <Choices name={quoteattr(from_name)} toName={quoteattr(to_name)} choice="single" '
            f'showInline="false">\n{choices}\n  </Choices>\n</View>\n')


def parse_config(xml: str, where: str = "the labeling config") -> ChoicesConfig:
    """Read the one ``<Choices>`` tag and the text it labels; anything else is an input error."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise LabelStudioInputError(f"{where} is not valid XML: {exc}") from None
    tags = list(root.iter("Choices"))
    if len(tags) != 1:
        raise LabelStudioInputError(f"{where} has {len(tags)} <Choices> tags; labelloop needs exactly one "
                                    f"(single-choice text classification)")
    tag = tags[0]
    if tag.get("choice", "single") != "single":
        raise LabelStudioInputError(f"{where}: <Choices choice={tag.get('choice')!r}>; labelloop needs "
                                    f'choice="single"')
    to_name = tag.get("toName", "")
    target = next((el for el in root.iter() if el.get("name") == to_name and el is not tag), None)
    value = target.get("value", "") if target is not None else ""
    if not value.startswith("$"):
        raise LabelStudioInputError(f"{where}: <Choices toName={to_name!r}> does not point at a tag with "
                                    f'value="$field"')
    labels = tuple(c.get("alias") or c.get("value") or "" for c in tag.iter("Choice"))
    return ChoicesConfig(labels=labels, from_name=tag.get("name", ""), to_name=to_name, text_key=value[1:])


def check_label_set(config: ChoicesConfig, labels: Sequence[str], where: str) -> None:
    """Fail listing the difference when the project's choices are not exactly ``labels`` (order is free)."""
    ours, theirs = set(labels), set(config.labels)
    if ours != theirs:
        only_ls, only_ours = sorted(theirs - ours), sorted(ours - theirs)
        raise LabelSetMismatchError(
            f"{where} has a different label set: only in Label Studio {only_ls}, only in ours {only_ours}; "
            f"fix the labels or use another project (labelloop never relabels a project)")


# -- plain data ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ProjectInfo:
    id: int
    title: str
    config: ChoicesConfig
    model_version: str | None = None
    created: bool = False

    @property
    def labels(self) -> list[str]:
        return list(self.config.labels)


@dataclass(frozen=True)
class PushItem:
    """A text to label. With ``label``, it carries the model's pre-annotation.

    ``score`` is the model's confidence in ``label`` (Label Studio's uncertainty sampling
    serves the lowest first); ``cluster`` is the diversity cluster (None: none).
    """

    id: str
    text: str
    label: str | None = None
    score: float | None = None
    cluster: int | None = None


@dataclass(frozen=True)
class PushReport:
    created: list[str]            # our ids that became tasks in this push
    existing: list[str]           # our ids that were already tasks (not imported again)
    predictions_added: list[str]  # existing tasks that lacked a prediction of this model version
    task_ids: dict[str, int]      # our id -> task id, for every item
    model_version: str | None


@dataclass(frozen=True)
class ExistingTask:
    task_id: int
    model_versions: frozenset[str]  # of its predictions
    pushed_as: str | None           # model version of the push that created it (task meta)


@dataclass(frozen=True)
class AnnotationRecord:
    """One change to one annotation, as seen by a pull.

    ``event`` is ``created``, ``updated`` (latest wins; ``previous_label`` keeps what it
    was) or ``deleted`` (the annotation or, with ``task_deleted``, its whole task).
    ``skipped`` means the annotator pressed Skip: not a label.
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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AnnotationRecord:
        names = cls.__dataclass_fields__
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass(frozen=True)
class _Known:
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

    annotations: dict[int, _Known] = field(default_factory=dict)
    scanned_at: str | None = None

    def apply(self, rec: AnnotationRecord) -> None:
        if rec.event == "deleted":
            self.annotations.pop(rec.annotation_id, None)
        else:
            self.annotations[rec.annotation_id] = _Known(rec.task_id, rec.id, rec.updated_at,
                                                         None if rec.skipped else rec.label)

    @classmethod
    def from_records(cls, records: Iterable[AnnotationRecord], scanned_at: str | None = None) -> PullCursor:
        cursor = cls(scanned_at=scanned_at)
        for rec in records:
            cursor.apply(rec)
        return cursor

    def to_dict(self) -> dict[str, Any]:
        return {"scanned_at": self.scanned_at,
                "annotations": {str(a): asdict(k) for a, k in self.annotations.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PullCursor:
        return cls({int(a): _Known(**k) for a, k in d["annotations"].items()}, d.get("scanned_at"))


@dataclass(frozen=True)
class PullResult:
    records: list[AnnotationRecord]  # changes since the cursor, in task order
    cursor: PullCursor               # pass to the next pull
    tasks_scanned: int
    tasks_fetched: int
    foreign_tasks: int               # annotated tasks without our id (made in Label Studio by hand)


@dataclass(frozen=True)
class Resolution:
    """The agreed label of one text: majority of its live, non-skipped annotations.

    ``label`` is None when nobody labeled it yet or the vote is tied; ``disagreement``
    is set as soon as two annotators gave different labels.
    """

    id: str
    label: str | None
    votes: dict[str, int]
    skipped: int
    disagreement: bool


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
    for rec in live_annotations(records):
        votes.setdefault(rec.id, Counter())
        if rec.skipped:
            skips[rec.id] += 1
        elif rec.label is not None:
            votes[rec.id][rec.label] += 1
    out = {}
    for our_id, count in votes.items():
        ranked = count.most_common()
        tied = len(ranked) > 1 and ranked[0][1] == ranked[1][1]
        label = ranked[0][0] if ranked and not tied else None
        out[our_id] = Resolution(our_id, label, dict(count), skips[our_id], len(count) > 1)
    return out


# -- mapping between our data and Label Studio's payloads (pure, unit-tested) ----------------------

def task_payload(item: PushItem, config: ChoicesConfig, model_version: str | None) -> dict[str, Any]:
    """One task for the import API: ``data`` = text + our id, optional inline prediction."""
    task: dict[str, Any] = {
        "data": {config.text_key: item.text, ID_FIELD: item.id},
        "meta": {META_KEY: {"model_version": model_version, "cluster": item.cluster}},
    }
    if item.label is not None:
        task["predictions"] = [prediction_payload(item, config, model_version)]
    return task


def prediction_payload(item: PushItem, config: ChoicesConfig, model_version: str | None,
                       task_id: int | None = None) -> dict[str, Any]:
    pred: dict[str, Any] = {
        "model_version": model_version,
        "score": None if item.score is None else float(item.score),
        # Dropped by the bulk import of 1.23.2, kept in case a later version honours it.
        "cluster": item.cluster,
        "result": [{"from_name": config.from_name, "to_name": config.to_name, "type": "choices",
                    "value": {"choices": [item.label]}}],
    }
    if task_id is not None:
        pred["task"] = task_id
    return pred


def existing_from_tasks(tasks: Iterable[dict[str, Any]]) -> dict[str, ExistingTask]:
    """Our id -> task, from task-list rows with ``id``, ``data``, ``meta``, ``predictions_model_versions``.

    Tasks without our id (added in Label Studio by hand) are left out; if one id has
    several tasks (imported twice by someone else), the oldest task represents it.
    """
    out: dict[str, ExistingTask] = {}
    dups = 0
    for t in sorted(tasks, key=lambda t: t["id"]):
        our_id = (t.get("data") or {}).get(ID_FIELD)
        if our_id is None:
            continue
        if str(our_id) in out:
            dups += 1
            continue
        listed = (t.get("predictions_model_versions") or "").split(",")
        versions = frozenset(v.strip() for v in listed if v.strip())
        meta = (t.get("meta") or {}).get(META_KEY) or {}
        out[str(our_id)] = ExistingTask(int(t["id"]), versions, meta.get("model_version"))
    if dups:
        log.warning("%d task(s) repeat an id already in the project (imported twice outside labelloop)", dups)
    return out


def annotation_label(ann: dict[str, Any], config: ChoicesConfig, task: dict[str, Any]) -> str | None:
    """The one choice of an annotation (None: empty or skipped); a choice outside the set is an error."""
    if ann.get("was_cancelled"):
        return None
    chosen = [c for r in ann.get("result") or [] if r.get("from_name") == config.from_name
              and r.get("type") == "choices" for c in (r.get("value") or {}).get("choices") or []]
    our_id = (task.get("data") or {}).get(ID_FIELD)
    where = f"task {task.get('id')} (id {our_id!r}), annotation {ann.get('id')}"
    if len(chosen) > 1:
        raise UnknownChoiceError(f"{where} has {len(chosen)} choices {chosen}; labelloop needs one")
    if chosen and chosen[0] not in config.labels:
        more = f", … ({len(config.labels)} in all)" if len(config.labels) > 8 else ""
        shown = ", ".join(config.labels[:8]) + more
        raise UnknownChoiceError(f"{where} has choice {chosen[0]!r}, not in the label set ({shown}); "
                                 f"fix the annotation in Label Studio or the project's labels")
    return chosen[0] if chosen else None


def diff_task(task: dict[str, Any], project: int, config: ChoicesConfig, cursor: PullCursor,
              emails: dict[int, str]) -> list[AnnotationRecord]:
    """Records for one fully fetched task: new and changed annotations, and known ones now gone."""
    our_id = str(task["data"][ID_FIELD])
    now: dict[int, dict[str, Any]] = {int(a["id"]): a for a in task.get("annotations") or []}
    out = []
    for ann_id, ann in sorted(now.items()):
        label = annotation_label(ann, config, task)
        updated = _iso(ann.get("updated_at"))
        known = cursor.annotations.get(ann_id)
        if known is not None and known.updated_at == updated:
            continue
        by = ann.get("completed_by")
        by = by.get("id") if isinstance(by, dict) else by
        out.append(AnnotationRecord(
            event="created" if known is None else "updated", id=our_id, project=project,
            task_id=int(task["id"]), annotation_id=ann_id, label=label,
            skipped=bool(ann.get("was_cancelled")), annotator=by,
            annotator_email=emails.get(by) if by is not None else None,
            created_at=_iso(ann.get("created_at")), updated_at=updated,
            previous_label=None if known is None else known.label))
    out += deleted_records({a: k for a, k in cursor.annotations.items()
                            if k.task_id == int(task["id"]) and a not in now}, project, task_deleted=False)
    return out


def deleted_records(gone: dict[int, _Known], project: int, task_deleted: bool) -> list[AnnotationRecord]:
    return [AnnotationRecord(event="deleted", id=k.id, project=project, task_id=k.task_id, annotation_id=a,
                             label=None, previous_label=k.label, task_deleted=task_deleted)
            for a, k in sorted(gone.items())]


def tasks_to_fetch(scan: Iterable[dict[str, Any]], cursor: PullCursor,
                   margin: float = SCAN_MARGIN_SECONDS) -> tuple[list[int], set[int]]:
    """Tasks to fetch in full and all task ids, from the scan (``id``, ``updated_at``, ``annotations_ids``).

    A task is fetched when its annotation ids differ from what the cursor knows (new or
    deleted annotations), or when it has annotations and changed since the last scan (edits).
    """
    since = None if cursor.scanned_at is None else _ts(cursor.scanned_at) - margin
    known_by_task: dict[int, set[int]] = {}
    for a, k in cursor.annotations.items():
        known_by_task.setdefault(k.task_id, set()).add(a)
    fetch, seen = [], set()
    for t in scan:
        tid = int(t["id"])
        seen.add(tid)
        ids = {int(x) for x in str(t.get("annotations_ids") or "").split(",") if x.strip()}
        changed = since is None or _ts(_iso(t.get("updated_at"))) >= since
        if ids != known_by_task.get(tid, set()) or (ids and changed):
            fetch.append(tid)
    return fetch, seen


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return datetime.fromisoformat(str(value)).isoformat()


def _ts(iso: str | None) -> float:
    return datetime.fromisoformat(iso).timestamp() if iso else float("-inf")


def _as_dict(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    return obj.model_dump(mode="json") if hasattr(obj, "model_dump") else dict(obj)


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# -- the connector ---------------------------------------------------------------------------------

class Connector:
    """A Label Studio server, through ``label-studio-sdk`` 2.x.

    ``url`` and ``api_key`` default to ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY``.
    Both kinds of key work: legacy tokens and personal access tokens (JWT refresh tokens,
    which the SDK exchanges for short-lived access tokens and renews itself). The key is
    never put in a message, log or file. Reads are retried ``retries`` times with
    exponential backoff from ``backoff`` seconds; writes never blindly.
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 60.0,
                 retries: int = 3, backoff: float = 0.5, scan_margin: float = SCAN_MARGIN_SECONDS,
                 client: Any = None) -> None:
        self.url = (url or os.environ.get("LABEL_STUDIO_URL") or "").rstrip("/")
        key = api_key if api_key is not None else os.environ.get("LABEL_STUDIO_API_KEY", "")
        if client is None and not self.url:
            raise LabelStudioInputError("no Label Studio URL: set LABEL_STUDIO_URL (e.g. http://127.0.0.1:18080)")
        if client is None and not key:
            raise LabelStudioInputError("no API key: set LABEL_STUDIO_API_KEY (from Account & Settings)")
        parts = urlsplit(self.url)
        # What messages show: the URL without any user:password@ part.
        self.display_url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])) if self.url else ""
        self._secrets = [s for s in (key, parts.password) if s]
        self.retries = retries
        self.backoff = backoff
        self.scan_margin = scan_margin
        if client is None:
            from label_studio_sdk import LabelStudio

            # max_retries=0: the SDK would also retry imports, which duplicates tasks.
            client = self._call("connecting", lambda: LabelStudio(
                base_url=self.url, api_key=key, timeout=timeout, max_retries=0), retry=False)
        self._ls = client

    # -- error handling -------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        tokens = list(self._secrets)
        try:  # a JWT key's current access token, if the SDK fetched one
            access = self._ls._client_wrapper._tokens_client._access_token
            if access:
                tokens.append(access)
        except AttributeError:
            pass
        for secret in tokens:
            text = text.replace(secret, "***")
        return text

    def _translate(self, exc: Exception, what: str) -> LabelloopError:
        from label_studio_sdk.core.api_error import ApiError

        where = f"Label Studio at {self.display_url or 'the given client'}"
        if isinstance(exc, ApiError):
            status = exc.status_code
            detail = _detail(exc.body)
            if status == 401:
                return LabelStudioError(f"{where} refused the API key while {what} (401: {detail}); "
                                        f"check LABEL_STUDIO_API_KEY", status=status)
            if status == 403:
                return LabelStudioError(f"{where} refused the request while {what} (403: {detail}); "
                                        f"the key's user lacks the permission", status=status)
            if status == 404:
                return LabelStudioInputError(f"{where}: not found while {what} (404: {detail})")
            if status == 400:
                return LabelStudioInputError(f"{where} rejected the request while {what} (400: {detail})")
            transient = status is None or status >= 500 or status in (408, 409, 429)
            return LabelStudioError(f"{where} failed while {what} ({status}: {detail})", transient=transient,
                                    status=status)
        if isinstance(exc, httpx.TimeoutException):
            return LabelStudioError(f"{where} timed out while {what}", transient=True)
        if isinstance(exc, httpx.TransportError):
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return LabelStudioError(f"cannot reach {where} while {what} ({reason}); is it running? "
                                    f"check LABEL_STUDIO_URL", transient=True)
        raise exc

    def _call(self, what: str, fn: Callable[[], Any], *, retry: bool = True) -> Any:
        """Run one SDK call; retry transient failures if ``retry`` (reads); one-line, token-free errors."""
        attempts = self.retries + 1 if retry else 1
        for attempt in range(attempts):
            try:
                return fn()
            except LabelloopError:
                raise
            except Exception as exc:  # translated, or re-raised if not an SDK or network error
                err = self._translate(exc, what)
            err.args = (self._redact(str(err)),)
            if not (getattr(err, "transient", False) and attempt + 1 < attempts):
                raise err from None
            delay = min(self.backoff * 2**attempt, 8.0)
            log.info("retrying %s in %.1f s: %s", what, delay, err)
            time.sleep(delay)
        raise AssertionError("unreachable")

    # -- projects -------------------------------------------------------------------------------

    def _info(self, p: Any, created: bool = False) -> ProjectInfo:
        where = f"project {p.id} {p.title!r}"
        config = parse_config(p.label_config or "", where)
        return ProjectInfo(id=int(p.id), title=p.title or "", config=config,
                           model_version=p.model_version or None, created=created)

    def find_project(self, project: int | str) -> ProjectInfo | None:
        """The project with this id (int or digits) or exact title; None if there is none."""
        from label_studio_sdk.core.api_error import ApiError

        if isinstance(project, int) or str(project).isdigit():
            def get() -> Any:
                try:
                    return self._ls.projects.get(int(project))
                except ApiError as exc:
                    if exc.status_code == 404:
                        return None
                    raise
            found = self._call(f"reading project {project}", get)
            return None if found is None else self._info(found)
        # The server ignores ?title= (1.23.2): filter here, on the exact title.
        everything = self._call("listing projects", lambda: list(self._ls.projects.list(page_size=100)))
        matches = [p for p in everything if p.title == project]
        if len(matches) > 1:
            raise LabelStudioInputError(f"{len(matches)} projects are titled {project!r} (ids "
                                        f"{sorted(p.id for p in matches)}); pass the id instead")
        if not matches:
            return None
        return self.project(int(matches[0].id))

    def project(self, project: int | str) -> ProjectInfo:
        """The project by id or title; :class:`ProjectNotFoundError` if there is none."""
        info = self.find_project(project)
        if info is None:
            raise ProjectNotFoundError(f"no Label Studio project {project!r} at {self.display_url}; check the id or "
                                       f"title (`labelloop project` creates one)")
        return info

    def ensure_project(self, project: int | str, labels: Sequence[str] | None = None) -> ProjectInfo:
        """Reuse the project (its choices must equal ``labels``) or create it with ``labels``.

        Only titles can be created; a new project uses uncertainty sampling, so Label Studio
        serves the lowest-confidence prediction first.
        """
        info = self.find_project(project)
        if info is not None:
            if labels is not None:
                check_label_set(info.config, _check_labels(labels), f"project {info.id} {info.title!r}")
            return info
        if isinstance(project, int) or str(project).isdigit():
            raise ProjectNotFoundError(f"no Label Studio project with id {project} at {self.display_url}")
        if labels is None:
            raise ProjectNotFoundError(f"no project titled {project!r}; pass labels to create it")
        config = labeling_config(labels)
        p = self._call(f"creating project {project!r}", lambda: self._ls.projects.create(
            title=str(project), label_config=config, sampling="Uncertainty sampling",
            description="Created by labelloop: texts chosen by active learning."), retry=False)
        return self._info(p, created=True)

    def set_model_version(self, project_id: int, model_version: str) -> None:
        """Make ``model_version``'s predictions the ones Label Studio shows and samples by (idempotent)."""
        self._call(f"setting project {project_id}'s model version",
                   lambda: self._ls.projects.update(project_id, model_version=model_version))

    # -- push -----------------------------------------------------------------------------------

    def existing(self, project_id: int) -> dict[str, ExistingTask]:
        """Every task of ours in the project: our id -> task id, prediction versions, push version."""
        def rows() -> list[dict[str, Any]]:
            include = "id,data,meta,predictions_model_versions"
            return [_as_dict(t) for t in self._ls.tasks.list(
                project=project_id, fields="all", include=include, page_size=1000)]
        return existing_from_tasks(self._call(f"listing tasks of project {project_id}", rows))

    def existing_ids(self, project_id: int) -> dict[str, int]:
        return {k: v.task_id for k, v in self.existing(project_id).items()}

    def push(self, project_id: int, items: Sequence[PushItem], model_version: str | None = None, *,
             batch_size: int = 250, progress: Progress | None = None, prediction_clusters: bool = False,
             create: bool = True) -> PushReport:
        """Make every item a task of the project, with its prediction if it has a label. Idempotent.

        Items already in the project (by our id) are not imported again; if one lacks a
        prediction of ``model_version`` it gets one. After a transient failure the project is
        re-read and only what is still missing is sent, so retries (here or a rerun after a
        crash) converge to exactly one task per id. Finally the project's model version is set.

        The cluster always goes into the task's ``meta``. ``prediction_clusters`` also writes
        it into each prediction's ``cluster`` field, one request per prediction (≈ 0.1–0.2 s
        each on a local server), because the bulk import drops that field.

        ``create=False`` only adds predictions: items whose task is gone (deleted in Label
        Studio) are left out of the push and the report instead of being imported again.
        """
        info = self.project(project_id)
        ids = [it.id for it in items]
        dups = sorted(i for i, n in Counter(ids).items() if n > 1)
        if dups:
            raise LabelStudioInputError(f"duplicate ids in the push: {dups[:10]}")
        bad = [it.id for it in items if not it.text or not it.text.strip()]
        if bad:
            raise LabelStudioInputError(f"empty texts for ids {bad[:10]}")
        unknown = sorted({it.label for it in items if it.label is not None} - set(info.config.labels))
        if unknown:
            raise LabelStudioInputError(f"predicted labels {unknown} are not choices of project {project_id}")
        if model_version is None and any(it.label is not None for it in items):
            raise LabelStudioInputError("predictions need a model_version")
        if model_version is not None and ("," in model_version or not model_version.strip()):
            # Label Studio lists a task's prediction versions comma-separated.
            raise LabelStudioInputError(f"model_version {model_version!r} must be non-empty without commas")

        before: dict[str, ExistingTask] | None = None
        for attempt in range(self.retries + 1):
            present = self.existing(project_id)
            if before is None:
                before = present
                if not create:
                    items = [it for it in items if it.id in present]
                    ids = [it.id for it in items]
            new = [it for it in items if it.id not in present]
            unpredicted = [it for it in items if it.id in present and it.label is not None
                           and model_version not in present[it.id].model_versions]
            total, done = len(new) + len(unpredicted), 0
            if progress:
                progress(0, total)
            try:
                for batch in _chunks(new, batch_size):
                    payload = [task_payload(it, info.config, model_version) for it in batch]
                    self._call(f"importing {len(batch)} tasks into project {project_id}",
                               lambda p=payload: self._ls.projects.import_tasks(project_id, request=p),
                               retry=False)
                    done += len(batch)
                    if progress:
                        progress(done, total)
                for batch in _chunks(unpredicted, batch_size):
                    payload = [prediction_payload(it, info.config, model_version, present[it.id].task_id)
                               for it in batch]
                    self._call(f"importing {len(batch)} predictions into project {project_id}",
                               lambda p=payload: self._ls.projects.import_predictions(project_id, request=p),
                               retry=False)
                    done += len(batch)
                    if progress:
                        progress(done, total)
                break
            except LabelStudioError as err:
                if not err.transient or attempt == self.retries:
                    raise
                delay = min(self.backoff * 2**attempt, 8.0)
                log.info("push interrupted (%s); re-reading the project in %.1f s", err, delay)
                time.sleep(delay)
        after = self.existing(project_id)
        missing = [i for i in ids if i not in after]
        if missing:  # the server said yes but the tasks are not there: never report success
            raise LabelStudioError(f"{len(missing)} pushed tasks are not in project {project_id} afterwards")
        if model_version is not None and any(it.label is not None for it in items):
            if prediction_clusters:
                task_ids = {i: after[i].task_id for i in ids}
                self._set_clusters(project_id, items, task_ids, model_version, progress)
            self.set_model_version(project_id, model_version)
        assert before is not None
        return PushReport(
            created=[i for i in ids if i not in before], existing=[i for i in ids if i in before],
            predictions_added=[it.id for it in items if it.id in before and it.label is not None
                               and model_version not in before[it.id].model_versions],
            task_ids={i: after[i].task_id for i in ids}, model_version=model_version)

    def _set_clusters(self, project_id: int, items: Sequence[PushItem], task_ids: dict[str, int],
                      model_version: str, progress: Progress | None) -> None:
        """Write each prediction's ``cluster`` (a PATCH: idempotent, safe to retry) unless already right."""
        want = {task_ids[it.id]: it.cluster for it in items
                if it.label is not None and it.cluster is not None}
        preds = self._call(f"listing predictions of project {project_id}",
                           lambda: list(self._ls.predictions.list(project=project_id)))
        todo = [(p.id, want[p.task]) for p in preds
                if p.task in want and p.model_version == model_version and p.cluster != want[p.task]]
        for n, (pred_id, cluster) in enumerate(todo, 1):
            self._call(f"setting prediction {pred_id}'s cluster",
                       lambda p=pred_id, c=cluster: self._ls.predictions.update(p, cluster=c))
            if progress:
                progress(n, len(todo))

    # -- pull -----------------------------------------------------------------------------------

    def _emails(self) -> dict[int, str]:
        try:
            users = self._call("listing users", lambda: list(self._ls.users.list()))
        except LabelStudioError:  # annotators may not be allowed to list users: ids are enough
            return {}
        return {int(u.id): u.email for u in users if getattr(u, "email", None)}

    def pull(self, project_id: int, cursor: PullCursor | None = None, *, batch_size: int = 500,
             progress: Progress | None = None) -> PullResult:
        """Annotation changes since ``cursor`` (None: everything), and the cursor for next time.

        A light scan of all tasks (ids, ``updated_at``, annotation ids) finds what changed;
        only those tasks are fetched in full. Nothing is returned for a task whose choice is
        outside the label set: the whole pull fails with :class:`UnknownChoiceError`, so a
        caller never stores half a pull.
        """
        info = self.project(project_id)
        cursor = PullCursor() if cursor is None else PullCursor(dict(cursor.annotations), cursor.scanned_at)
        started = self._server_time(project_id)
        def light() -> list[dict[str, Any]]:
            return [_as_dict(t) for t in self._ls.tasks.list(
                project=project_id, fields="all", include="id,updated_at,annotations_ids", page_size=1000)]
        scan = self._call(f"scanning tasks of project {project_id}", light)
        fetch, seen = tasks_to_fetch(scan, cursor, self.scan_margin)
        records: list[AnnotationRecord] = []
        emails = self._emails() if fetch else {}
        foreign = 0
        if progress:
            progress(0, len(fetch))
        for n, batch in enumerate(_chunks(fetch, batch_size)):
            query = json.dumps({"selectedItems": {"all": False, "included": list(batch)}})
            def full(q: str = query, size: int = len(batch)) -> list[dict[str, Any]]:
                return [_as_dict(t) for t in self._ls.tasks.list(project=project_id, fields="all", query=q,
                                                                 page_size=size)]
            tasks = self._call(f"fetching {len(batch)} tasks of project {project_id}", full)
            for task in sorted(tasks, key=lambda t: t["id"]):
                if ID_FIELD not in (task.get("data") or {}):
                    foreign += bool(task.get("annotations"))
                    continue
                records += diff_task(task, project_id, info.config, cursor, emails)
            if progress:
                progress(min((n + 1) * batch_size, len(fetch)), len(fetch))
        gone = {a: k for a, k in cursor.annotations.items() if k.task_id not in seen}
        records += deleted_records(gone, project_id, task_deleted=True)
        for rec in records:
            cursor.apply(rec)
        # Without a server clock, the newest change seen is the next best mark.
        marks = [started] if started else [s for s in (_iso(t.get("updated_at")) for t in scan) if s]
        if marks:
            cursor.scanned_at = max([*marks, *([cursor.scanned_at] if cursor.scanned_at else [])], key=_ts)
        return PullResult(records, cursor, len(scan), len(fetch), foreign)

    def _server_time(self, project_id: int) -> str | None:
        """The server's clock (its HTTP ``Date``), the clock Label Studio stamps ``updated_at`` with."""
        resp = self._call(f"reading project {project_id}",
                          lambda: self._ls.projects.with_raw_response.get(project_id))
        date = {k.lower(): v for k, v in resp.headers.items()}.get("date")
        try:
            return parsedate_to_datetime(date).isoformat() if date else None
        except (TypeError, ValueError):
            return None


def _detail(body: Any) -> str:
    """The useful part of an error body, on one line."""
    if isinstance(body, dict):
        parts = [str(body.get("detail") or "")]
        if body.get("validation_errors"):
            parts.append(json.dumps(body["validation_errors"], ensure_ascii=False))
        text = " ".join(p for p in parts if p) or json.dumps(body, ensure_ascii=False)
    else:
        text = str(body or "no details")
    text = " ".join(text.split())
    return text[:300] + ("…" if len(text) > 300 else "")


def model_version_for(labels: dict[str, str], encoder_identity: str, extra: str = "") -> str:
    """A model version derived from what the model is trained on: same labels, same version."""
    h = hashlib.sha256(f"{encoder_identity}\n{extra}\n".encode())
    for our_id in sorted(labels):
        h.update(f"{our_id}\t{labels[our_id]}\n".encode())
    return f"labelloop-{len(labels)}-{h.hexdigest()[:10]}"
