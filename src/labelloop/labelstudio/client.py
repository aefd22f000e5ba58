"""The Label Studio client: the only network code of labelloop (label-studio-sdk 2.x, httpx).

Facts about Label Studio (1.23.2, checked against a real server) this module is shaped by:

* Importing the same task twice creates two tasks, so ``push`` looks up what exists (our id
  lives in ``data.labelloop_id``) before importing, and after any failed request.
* An import whose response is lost or times out may still commit, seconds later (a stalled
  server finishes it when it resumes). So an import is never blindly retried: ``push`` re-reads,
  waits for the uncertain batch to show up, sends only what is missing, and finally removes
  unannotated duplicate tasks of one id (:func:`~.payloads.duplicate_plan`), reporting them.
* Writers on one machine take a per-project file lock, so two pushes never interleave.
* The SDK retries POSTs on connection errors and 5xx: unsafe for imports, so its own retries
  are off; :meth:`Connector._call` retries reads only, through one tenacity policy.
* An import is not one transaction (tasks, then predictions): a task may lack its prediction,
  and ``push`` adds the missing prediction instead of a second task.
* Predictions count only when their ``model_version`` is the project's, which can only be set
  once a prediction with it exists: set after importing.
* The bulk imports drop a prediction's ``cluster``; only a request per prediction sets it.
* Every annotation change bumps the task's ``updated_at`` and the task list returns annotation
  ids cheaply: ``pull`` scans that light index and fetches in full only changed tasks.
* The SDK's task pager asks for one page past the end (the server logs an error for it), so
  tasks are listed page by page up to the ``total`` the server reports.
* Label Studio does not check that an annotation's choice is in the config, so ``pull`` does.

(Over 400 lines formatted: every request labelloop makes to Label Studio is here, so the facts above
are enforced in one place.)
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from email.utils import parsedate_to_datetime
from typing import Any

from ..labels import DEFAULT_DELIMITER, LabelSet
from .annotations import (
    ID_FIELD,
    AnnotationRecord,
    PullCursor,
    PullResult,
    to_iso,
    to_timestamp,
)
from .errors import LabelStudioError, LabelStudioInputError, ProjectNotFoundError
from .failures import diagnose
from .labelconfig import check_label_set, check_mode, labeling_config, parse_config
from .locks import project_lock
from .payloads import (
    ExistingTask,
    ProjectInfo,
    PushItem,
    PushReport,
    as_dict,
    check_push,
    chunks,
    deleted_records,
    diff_task,
    duplicate_plan,
    existing_from_tasks,
    prediction_payload,
    task_payload,
    tasks_to_fetch,
)
from .transport import Session

__all__ = ["Connector", "Progress", "project_lock", "PROJECT_DESCRIPTION"]

PROJECT_DESCRIPTION = "Created by labelloop: texts chosen by active learning."

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]


class Connector(Session):
    """A Label Studio server, through ``label-studio-sdk`` 2.x: projects, push, pull.

    ``url`` and ``api_key`` default to ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY``, ``timeout``
    to ``LABELLOOP_LS_TIMEOUT`` (seconds) or 60. Both kinds of key work: legacy tokens and personal
    access tokens. The key is never put in a message, log or file. Reads are retried ``retries``
    times with exponential backoff from ``backoff`` seconds; writes never blindly. After an
    uncertain import, ``push`` waits up to ``settle`` seconds for the batch to show up.
    ``label_delimiter`` joins a multi-label project's answers into one label (the campaign's
    ``label_delimiter``; ``sync`` sets it).
    """

    label_delimiter: str = DEFAULT_DELIMITER

    # -- projects -------------------------------------------------------------------------------

    def _info(self, p: Any, created: bool = False) -> ProjectInfo:
        if getattr(p, "id", None) is None or getattr(p, "label_config", None) is None:
            problem = diagnose(self.url, self.display_url, min(self.timeout, 10.0)) if self._probe else None
            raise LabelStudioInputError(
                problem
                or f"{self.display_url} answered without a Label Studio "
                f"project; is LABEL_STUDIO_URL a Label Studio server?"
            )
        where = f"project {p.id} {p.title!r}"
        config = parse_config(p.label_config or "", where, self.label_delimiter)
        created_at: Any = getattr(p, "created_at", None)
        if hasattr(created_at, "isoformat"):
            created_at = created_at.isoformat()
        return ProjectInfo(
            id=int(p.id),
            title=p.title or "",
            config=config,
            model_version=p.model_version or None,
            created=created,
            created_at=to_iso(created_at),
            instructions=getattr(p, "expert_instruction", None) or "",
        )

    def find_project(self, project: int | str) -> ProjectInfo | None:
        """The project with this id (int or digits) or exact title; None if there is none."""
        from label_studio_sdk.core.api_error import ApiError

        if isinstance(project, int) or str(project).isdigit():

            def get() -> Any:
                try:
                    return self._ls.projects.get(int(project))
                except ApiError as exc:
                    if exc.status_code == 404 and isinstance(exc.body, dict):
                        return None  # the API's own JSON 404: no such project (a web page means a wrong URL)
                    raise

            found = self._call(f"reading project {project}", get)
            return None if found is None else self._info(found)
        # The server ignores ?title= (1.23.2): filter here, on the exact title.
        everything = self.list_projects()
        matches = [p for p in everything if p.title == project]
        if len(matches) > 1:
            raise LabelStudioInputError(
                f"{len(matches)} projects are titled {project!r} (ids "
                f"{sorted(p.id for p in matches)}); pass the id instead"
            )
        if not matches:
            problem = diagnose(self.url, self.display_url, min(self.timeout, 10.0)) if self._probe else None
            if problem:  # "no such title" only from a server that is Label Studio
                raise LabelStudioInputError(problem)
            return None
        return self.project(int(matches[0].id))

    def project(self, project: int | str) -> ProjectInfo:
        """The project by id or title; :class:`ProjectNotFoundError` if there is none."""
        info = self.find_project(project)
        if info is None:
            raise ProjectNotFoundError(
                f"no Label Studio project {project!r} at {self.display_url}; check the id or "
                f"title (`labelloop project` creates one)"
            )
        return info

    def ensure_project(
        self,
        project: int | str,
        labels: Sequence[str] | None = None,
        instructions: str | None = None,
        *,
        multiple: bool | None = None,
    ) -> ProjectInfo:
        """Reuse the project (its choices must equal ``labels``) or create it with ``labels``.

        ``multiple``: the campaign is multi-label (``choice="multiple"``); an existing project of the other
        kind is refused. None: whatever the project is (created single-choice).

        Only titles can be created; a new project uses uncertainty sampling, so Label Studio
        serves the lowest-confidence prediction first, serves tasks with overlap first, refuses
        submissions without a choice, and shows ``instructions`` (HTML) before labeling.
        """
        label_set = None if labels is None else LabelSet(labels)
        info = self.find_project(project)
        if info is not None:
            if label_set is not None:
                check_label_set(info.config, label_set, f"project {info.id} {info.title!r}")
            if multiple is not None:
                check_mode(info.config, multiple, f"project {info.id} {info.title!r}")
            return info
        if isinstance(project, int) or str(project).isdigit():
            raise ProjectNotFoundError(f"no Label Studio project with id {project} at {self.display_url}")
        if label_set is None:
            raise ProjectNotFoundError(f"no project titled {project!r}; pass labels to create it")
        config = labeling_config(label_set, multiple=bool(multiple))
        p = self._call(
            f"creating project {project!r}",
            lambda: self._ls.projects.create(
                title=str(project),
                label_config=config,
                sampling="Uncertainty sampling",
                description=PROJECT_DESCRIPTION,
                show_instruction=bool(instructions),
                expert_instruction=instructions or "",
                maximum_annotations=1,
                show_overlap_first=True,
                enable_empty_annotation=False,
            ),
            retry=False,
        )
        return self._info(p, created=True)

    def set_instructions(self, project_id: int, html: str) -> None:
        """Show ``html`` to annotators before they label (idempotent)."""
        self._call(
            f"setting project {project_id}'s instructions",
            lambda: self._ls.projects.update(project_id, expert_instruction=html, show_instruction=True),
        )

    def set_model_version(self, project_id: int, model_version: str) -> None:
        """Make ``model_version``'s predictions the ones Label Studio shows and samples by (idempotent)."""
        self._call(
            f"setting project {project_id}'s model version",
            lambda: self._ls.projects.update(project_id, model_version=model_version),
        )

    def _task_rows(self, project_id: int) -> list[dict[str, Any]]:
        return self.list_tasks(
            project_id,
            f"listing tasks of project {project_id}",
            include="id,data,meta,predictions_model_versions,annotations_ids,overlap",
        )

    def existing(self, project_id: int) -> dict[str, ExistingTask]:
        """Every task of ours in the project: our id -> task id, prediction versions, push version."""
        return existing_from_tasks(self._task_rows(project_id))

    def existing_ids(self, project_id: int) -> dict[str, int]:
        return {k: v.task_id for k, v in self.existing(project_id).items()}

    # -- push -----------------------------------------------------------------------------------

    def push(
        self,
        project_id: int,
        items: Sequence[PushItem],
        model_version: str | None = None,
        *,
        batch_size: int = 250,
        progress: Progress | None = None,
        prediction_clusters: bool = False,
        create: bool = True,
    ) -> PushReport:
        """Make every item a task of the project, with its prediction if it has a label. Idempotent.

        Under the project's writer lock: items already in the project (by our id) are not imported
        again; if one lacks a prediction of ``model_version`` it gets one. After a transient failure
        the project is re-read (after an uncertain import: until the batch shows up or ``settle``
        passes) and only what is still missing is sent. Finally unannotated duplicate tasks of one
        id are removed (reported in :class:`PushReport`) and the project's model version is set.

        The cluster always goes into the task's ``meta``. ``prediction_clusters`` also writes it
        into each prediction's ``cluster`` field, one request per prediction, because the bulk
        import drops that field. ``create=False`` only adds predictions: items whose task is gone
        (deleted in Label Studio) are left out instead of being imported again.
        """
        info = self.project(project_id)
        check_push(info, items, model_version)
        with project_lock(self.display_url, project_id):
            removed, annotated = self.reconcile(project_id)
            before = self.existing(project_id)
            if not create:
                items = [it for it in items if it.id in before]
            ids = [it.id for it in items]
            uncertain = self._send(info, items, model_version, batch_size, progress)
            if uncertain:
                self._wait_for(project_id, uncertain)
            late_removed, annotated = self.reconcile(project_id)
            after = self.existing(project_id)
            missing = [i for i in ids if i not in after]
            if missing:  # the server said yes but the tasks are not there: never report success
                raise LabelStudioError(
                    f"{len(missing)} pushed tasks are not in project {project_id} afterwards"
                )
            self._raise_overlap(project_id, items, before, after)
            if model_version is not None and any(it.predicts for it in items):
                if prediction_clusters:
                    task_ids = {i: after[i].task_id for i in ids}
                    self._set_clusters(project_id, items, task_ids, model_version, progress)
                self.set_model_version(project_id, model_version)
        return _push_report(items, before, after, model_version, sorted(removed + late_removed), annotated)

    def _send(
        self,
        info: ProjectInfo,
        items: Sequence[PushItem],
        model_version: str | None,
        batch_size: int,
        progress: Progress | None,
    ) -> set[str]:
        """Import what is missing, re-reading after each transient failure; the ids whose import was uncertain."""
        uncertain: set[str] = set()

        def attempt() -> None:
            if uncertain:
                self._wait_for(info.id, uncertain)
            present = self.existing(info.id)
            new = [it for it in items if it.id not in present]
            unpredicted = [
                it
                for it in items
                if it.id in present and it.predicts and model_version not in present[it.id].model_versions
            ]
            total, done = len(new) + len(unpredicted), 0
            if progress:
                progress(0, total)
            for batch in chunks(new, batch_size):
                payload = [task_payload(it, info.config, model_version) for it in batch]
                try:
                    self._call(
                        f"importing {len(batch)} tasks into project {info.id}",
                        lambda p=payload: self._ls.projects.import_tasks(info.id, request=p),
                        retry=False,
                    )
                except LabelStudioError as err:
                    if err.uncertain:
                        uncertain.update(it.id for it in batch)
                    raise
                done += len(batch)
                if progress:
                    progress(done, total)
            for batch in chunks(unpredicted, batch_size):
                payload = [
                    prediction_payload(it, info.config, model_version, present[it.id].task_id) for it in batch
                ]
                self._call(
                    f"importing {len(batch)} predictions into project {info.id}",
                    lambda p=payload: self._ls.projects.import_predictions(info.id, request=p),
                    retry=False,
                )
                done += len(batch)
                if progress:
                    progress(done, total)

        self._retrying()(attempt)
        return uncertain

    def reopen(self, project_id: int, overlaps: dict[int, int], model_version: str) -> None:
        """Serve finished tasks (id -> people) to one more person, first in the queue and without the model's
        guess: their shown predictions of ``model_version`` are replaced by an empty one with score 0.
        Idempotent: a rerun sets the same overlap and leaves one empty prediction."""
        with project_lock(self.display_url, project_id):
            for task_id, n in sorted(overlaps.items()):
                preds = self._call(
                    f"listing task {task_id}'s predictions",
                    lambda t=task_id: list(self._ls.predictions.list(task=t)),
                )
                mine = [p for p in preds if p.model_version == model_version]
                for p in mine:
                    if p.result:
                        self._call(
                            f"removing prediction {p.id}", lambda i=p.id: self._ls.predictions.delete(i)
                        )
                if not any(not p.result for p in mine):
                    self._call(
                        f"adding a blind prediction to task {task_id}",
                        lambda t=task_id: self._ls.predictions.create(
                            task=t, result=[], score=0.0, model_version=model_version
                        ),
                    )
                self._call(
                    f"reopening task {task_id} for {n} people",
                    lambda t=task_id, k=n: self._ls.tasks.update(str(t), overlap=k, is_labeled=False),
                )

    def _raise_overlap(
        self,
        project_id: int,
        items: Sequence[PushItem],
        before: dict[str, ExistingTask],
        after: dict[str, ExistingTask],
    ) -> None:
        """Tasks that should be labeled by more people than they are set for (the import ignores ``overlap``).
        Only raised, never lowered."""
        want = {after[it.id].task_id: it.overlap for it in items if it.overlap > after[it.id].overlap}
        for task_id, n in sorted(want.items()):
            self._call(
                f"setting task {task_id}'s overlap to {n}",
                lambda t=task_id, k=n: self._ls.tasks.update(str(t), overlap=k),
            )

    def _wait_for(self, project_id: int, ids: set[str]) -> None:
        """After an uncertain import: give the server ``settle`` seconds to show the batch, if it committed it."""
        deadline = time.monotonic() + self.settle
        while True:
            present = self.existing(project_id)
            if ids <= present.keys() or time.monotonic() >= deadline:
                return
            time.sleep(min(1.0, max(self.settle / 10, 0.0)))

    def reconcile(self, project_id: int) -> tuple[list[int], list[str]]:
        """Delete unannotated extra tasks of one labelloop id; (task ids deleted, ids annotated twice).

        Each task is re-read right before its deletion so an annotation made meanwhile keeps it.
        Call it under :func:`project_lock`.
        """
        plan = duplicate_plan(self._task_rows(project_id))
        removed = []
        for task_id in plan.delete:
            task = self._call(f"reading task {task_id}", lambda t=task_id: self._ls.tasks.get(t))
            row = as_dict(task)
            if row.get("total_annotations") or row.get("cancelled_annotations") or row.get("annotations"):
                continue
            self._call(f"deleting duplicate task {task_id}", lambda t=task_id: self._ls.tasks.delete(t))
            removed.append(task_id)
        if removed:
            log.warning("removed %d duplicate task(s) from project %d", len(removed), project_id)
        return removed, plan.annotated

    def _set_clusters(
        self,
        project_id: int,
        items: Sequence[PushItem],
        task_ids: dict[str, int],
        model_version: str,
        progress: Progress | None,
    ) -> None:
        """Write each prediction's ``cluster`` (a PATCH: idempotent, safe to retry) unless already right."""
        want = {task_ids[it.id]: it.cluster for it in items if it.predicts and it.cluster is not None}
        preds = self._call(
            f"listing predictions of project {project_id}",
            lambda: list(self._ls.predictions.list(project=project_id)),
        )
        todo = [
            (p.id, want[p.task])
            for p in preds
            if p.task in want and p.model_version == model_version and p.cluster != want[p.task]
        ]
        for n, (pred_id, cluster) in enumerate(todo, 1):
            self._call(
                f"setting prediction {pred_id}'s cluster",
                lambda p=pred_id, c=cluster: self._ls.predictions.update(p, cluster=c),
            )
            if progress:
                progress(n, len(todo))

    # -- pull -----------------------------------------------------------------------------------

    def _emails(self) -> dict[int, str]:
        try:
            users = self._call("listing users", lambda: list(self._ls.users.list()))
        except LabelStudioError:  # annotators may not be allowed to list users: ids are enough
            return {}
        return {int(u.id): u.email for u in users if getattr(u, "email", None)}

    def pull(
        self,
        project_id: int,
        cursor: PullCursor | None = None,
        *,
        batch_size: int = 500,
        progress: Progress | None = None,
    ) -> PullResult:
        """Annotation changes since ``cursor`` (None: everything), and the cursor for next time.

        A light scan of all tasks (ids, ``updated_at``, annotation ids) finds what changed;
        only those tasks are fetched in full. Nothing is returned for a task whose choice is
        outside the label set: the whole pull fails with :class:`UnknownChoiceError`, so a
        caller never stores half a pull.
        """
        info = self.project(project_id)
        cursor = PullCursor() if cursor is None else PullCursor(dict(cursor.annotations), cursor.scanned_at)
        started = self._server_time(project_id)
        scan = self.list_tasks(
            project_id, f"scanning tasks of project {project_id}", include="id,updated_at,annotations_ids"
        )
        fetch, seen = tasks_to_fetch(scan, cursor, self.scan_margin)
        records: list[AnnotationRecord] = []
        emails = self._emails() if fetch else {}
        foreign = 0
        if progress:
            progress(0, len(fetch))
        for n, batch in enumerate(chunks(fetch, batch_size)):
            query = json.dumps({"selectedItems": {"all": False, "included": list(batch)}})
            tasks = self.list_tasks(
                project_id,
                f"fetching {len(batch)} tasks of project {project_id}",
                page_size=len(batch),
                max_rows=len(batch),
                query=query,
            )
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
        marks = [started] if started else [s for s in (to_iso(t.get("updated_at")) for t in scan) if s]
        if marks:
            cursor.scanned_at = max(
                [*marks, *([cursor.scanned_at] if cursor.scanned_at else [])], key=to_timestamp
            )
        return PullResult(records, cursor, len(scan), len(fetch), foreign)

    def _server_time(self, project_id: int) -> str | None:
        """The server's clock (its HTTP ``Date``), the clock Label Studio stamps ``updated_at`` with."""
        resp = self._call(
            f"reading project {project_id}", lambda: self._ls.projects.with_raw_response.get(project_id)
        )
        date = {k.lower(): v for k, v in resp.headers.items()}.get("date")
        try:
            return parsedate_to_datetime(date).isoformat() if date else None
        except (TypeError, ValueError):
            return None


def _push_report(
    items: Sequence[PushItem],
    before: Mapping[str, ExistingTask],
    after: Mapping[str, ExistingTask],
    model_version: str | None,
    duplicates_removed: list[int],
    duplicates_annotated: list[str],
) -> PushReport:
    """What a push did, from the project's tasks before and after it."""
    ids = [it.id for it in items]
    return PushReport(
        created=[i for i in ids if i not in before],
        existing=[i for i in ids if i in before],
        predictions_added=[
            it.id
            for it in items
            if it.id in before and it.predicts and model_version not in before[it.id].model_versions
        ],
        task_ids={i: after[i].task_id for i in ids},
        model_version=model_version,
        duplicates_removed=duplicates_removed,
        duplicates_annotated=duplicates_annotated,
    )
