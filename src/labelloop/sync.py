"""One safe step of a long-running campaign against Label Studio, for cron or a systemd timer.

Each :func:`sync` (1) pulls new and changed labels, (2) retrains when enough labels are new,
(3) tops the annotators' queue up to ``queue_target`` (never past it), (4) gives tasks still
waiting the new model's predictions, and (5) writes the run to the ledger, then exits.

It is safe to kill at any instant. Selections are written as *pending* before anything is
sent; the next run pushes pending selections again (Label Studio is checked by our id, so
nothing is duplicated) and adopts tasks it finds in the project but not in the ledger, so
store and Label Studio converge. A lock file keeps a second sync from running at the same time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from .campaign import (Campaign, current_advice, ingest, latest_head, load_campaign, register, select,
                       train_if_due)
from .config import Config
from .errors import LabelloopError
from .head import Head
from .labelstudio import Connector, ExistingTask, PushItem
from .stopping import Advice
from .store import QueryRow, RoundRow, Store, StoreError, now

__all__ = ["sync", "SyncReport", "SyncBusy", "sync_lock", "EXIT_BUSY"]

EXIT_BUSY = 4

Hook = Callable[[str], None]


class SyncBusy(LabelloopError):
    """Another sync holds the lock: not an error of this run, just nothing to do."""

    exit_code = EXIT_BUSY


@contextmanager
def sync_lock(state_path: Path) -> Iterator[None]:
    """An exclusive lock on STATE.lock (portable; the OS releases it when the process dies, however it dies)."""
    from filelock import FileLock, Timeout

    lock_path = state_path.with_name(state_path.name + ".lock")
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SyncBusy(f"another labelloop sync is running (lock {lock_path} is held); this run did "
                       f"nothing") from None
    except OSError as exc:
        raise StoreError(f"cannot create the lock file {lock_path}: {exc.strerror}") from None
    try:
        yield
    finally:
        lock.release()


@dataclass
class SyncReport:
    run: int
    pulled: int = 0
    trained: str | None = None
    pushed_active: int = 0
    pushed_audit: int = 0
    adopted: int = 0
    predictions_updated: int = 0
    queue_before: int = 0
    queue_after: int = 0
    stopped: str | None = None
    advice: list[Advice] = field(default_factory=list)

    @property
    def message(self) -> str:
        parts = [f"pulled {self.pulled} change(s)"]
        parts.append(f"trained {self.trained}" if self.trained else "model unchanged")
        parts.append(f"sent {self.pushed_active} + {self.pushed_audit} audit" if not self.stopped
                     else f"stopped: {self.stopped}")
        if self.adopted:
            parts.append(f"recovered {self.adopted} task(s) of an interrupted run")
        if self.predictions_updated:
            parts.append(f"new predictions on {self.predictions_updated} waiting task(s)")
        parts.append(f"queue {self.queue_before} → {self.queue_after}")
        return "; ".join(parts)


# -- one sync ---------------------------------------------------------------------------------------

def _push_items(rows: list[QueryRow], campaign: Campaign) -> list[PushItem]:
    index, texts = campaign.index, campaign.pool.texts
    return [PushItem(q.item_id, texts[index[q.item_id]], q.predicted, q.confidence, q.cluster) for q in rows]


def sync(config: Config, *, campaign: Campaign | None = None, connector: Connector | None = None,
         progress: bool = False, hook: Hook | None = None) -> SyncReport:
    """Run one sync step (see the module docstring). ``hook(step)`` is called between steps (tests kill there)."""
    state = config.state.path
    if not state.parent.is_dir():
        raise StoreError(f"state.path {state}: folder {state.parent} does not exist")
    with sync_lock(state):
        stored_project = Store.check(state)
        ls = connector or Connector(config.labelstudio.url)  # a missing key fails before minutes of embedding
        campaign = campaign or load_campaign(config, progress=progress)
        if stored_project is not None:  # never create a project for a campaign that has one
            found = ls.find_project(config.labelstudio.project)
            if found is None or found.id != int(stored_project):
                raise StoreError(f"{state} belongs to Label Studio project {stored_project}, not "
                                 f"{config.labelstudio.project!r}; use another state.path for another project")
        info = ls.ensure_project(config.labelstudio.project, config.labels)
        with Store.open(state) as store:
            with store.tx():
                register(store, campaign, info.id)
            return SyncStep(store, ls, info.id, campaign, hook or (lambda step: None)).run(info.model_version)


@dataclass
class SyncStep:
    """The named steps of one sync over an open store: pull, adopt, train, push, refresh, ledger."""

    store: Store
    ls: Connector
    project_id: int
    campaign: Campaign
    hook: Hook
    existing: dict[str, ExistingTask] = field(default_factory=dict)
    report: SyncReport = field(default_factory=lambda: SyncReport(run=0))

    def run(self, project_version: str | None) -> SyncReport:
        self.pull()
        self.adopt()
        trained = train_if_due(self.store, self.campaign, self.report.run)
        self.report.trained = trained.model_version if trained else None
        model = self.store.last_round()
        assert model is not None, "register() first"
        waiting_before = self.queue()
        self.report.queue_before = len(waiting_before)
        self.top_up(model)
        self.refresh_predictions(model, waiting_before, project_version)
        self.finish()
        return self.report

    @cached_property
    def head(self) -> Head | None:
        """The latest model, read from the store only when a step needs it (a no-op sync reads none)."""
        return latest_head(self.store)[1]

    def pull(self) -> None:
        """(1) The cursor is the stored records, so a pull lands whole or not at all; the run's ledger row
        is opened with it (a run killed later stays in the ledger, unfinished)."""
        result = self.ls.pull(self.project_id, self.store.cursor())
        with self.store.tx():
            self.report = SyncReport(run=self.store.start_run(), pulled=len(result.records))
            ingest(self.store, self.report.run, result.records, result.cursor.scanned_at)
            self.store.update_run(self.report.run, pulled=len(result.records))
        self.hook("pulled")

    def adopt(self) -> None:
        """Tasks in Label Studio that the ledger lacks: pushed by a run killed before it could record them."""
        self.existing = self.ls.existing(self.project_id)
        known = self.store.pushes()
        found = {i: t.task_id for i, t in self.existing.items() if i not in known}
        if found:
            with self.store.tx():
                pending = {q.item_id for q in self.store.queries("pending")}
                self.store.mark_pushed({i: t for i, t in found.items() if i in pending}, how="pushed")
                self.store.mark_pushed({i: t for i, t in found.items() if i not in pending}, how="adopted")
                self.store.update_run(self.report.run, adopted=len(found))
            self.report.adopted = len(found)

    def queue(self) -> list[str]:
        """Texts sent and still waiting: no label, no skip, task not deleted."""
        answered = self.store.resolutions()
        return [i for i in self.store.pushes() if i in self.existing and i not in answered]

    def room(self) -> int:
        loop = self.campaign.config.loop
        return max(0, min(loop.queue_target - len(self.queue()), loop.budget - len(self.store.pushes())))

    def top_up(self, model: RoundRow) -> None:
        """(3) Finish an interrupted push (no further than the queue has room for), then fill the queue."""
        cfg, index = self.campaign.config, self.campaign.index
        pending = [q.item_id for q in self.store.queries("pending")]
        sendable = [i for i in pending if i in index]
        drop = [i for i in pending if i not in index] + sendable[self.room():]
        if drop:
            with self.store.tx():
                self.store.drop_pending(drop)
        self.push_pending()
        self.report.advice = current_advice(self.store, cfg)
        fired = [a for a in self.report.advice if a.fired and a.criterion in cfg.stop.on]
        if fired:
            self.report.stopped = "; ".join(f"{a.criterion} ({a.reason})" for a in fired)
            return
        n = self.room()
        if n > 0 and select(self.store, self.campaign, self.head, model, n):
            self.hook("selected")
            self.push_pending()
            self.report.advice = current_advice(self.store, cfg)

    def push_pending(self) -> None:
        """Send every pending selection (idempotent: Label Studio is checked by our id) and record it."""
        pending = [q for q in self.store.queries("pending") if q.item_id in self.campaign.index]
        by_version: dict[str | None, list[QueryRow]] = {}
        for q in pending:
            by_version.setdefault(q.model_version if q.predicted else None, []).append(q)
        for version, qs in by_version.items():
            def progress(n: int, total: int) -> None:
                if 0 < n < total:
                    self.hook("mid-push")
            pushed = self.ls.push(self.project_id, _push_items(qs, self.campaign), version,
                                  batch_size=self.campaign.config.labelstudio.batch_size, progress=progress)
            self.hook("pushed")
            with self.store.tx():
                self.store.mark_pushed(pushed.task_ids)
                self.store.count_in_run(self.report.run, "pushed", len(pushed.task_ids))
            self.existing.update({i: ExistingTask(t, frozenset({version} if version else ()), version)
                                  for i, t in pushed.task_ids.items()})
        audit = sum(q.kind == "audit" for q in pending)
        self.report.pushed_active += len(pending) - audit
        self.report.pushed_audit += audit

    def refresh_predictions(self, model: RoundRow, waiting: list[str], project_version: str | None) -> None:
        """(4) The new model's guesses for tasks still waiting, and the project's model version."""
        if not model.has_model:
            return
        index, classes = self.campaign.index, self.campaign.classes
        audit = set(self.store.ids_with_role("audit"))
        stale = [i for i in waiting if i in self.existing and i not in audit and i in index
                 and model.model_version not in self.existing[i].model_versions]
        if stale and self.head is not None:
            probs = self.head.predict_proba(self.campaign.X[[index[i] for i in stale]])
            items = [PushItem(i, self.campaign.pool.texts[index[i]], classes[int(p.argmax())], float(p.max()))
                     for i, p in zip(stale, probs, strict=True)]
            # create=False: a task deleted since `existing` was read stays deleted.
            pushed = self.ls.push(self.project_id, items, model.model_version,
                                  batch_size=self.campaign.config.labelstudio.batch_size, create=False)
            self.report.predictions_updated = len(pushed.predictions_added)
        elif project_version != model.model_version and any(
                model.model_version in t.model_versions for t in self.existing.values()):
            # Label Studio refuses a version without predictions; with none waiting, the next push sets it.
            self.ls.set_model_version(self.project_id, model.model_version)

    def finish(self) -> None:
        """(5) The ledger."""
        r = self.report
        r.queue_after = len(self.queue())
        self.hook("ledger")
        with self.store.tx():
            self.store.update_run(r.run, finished_at=now(), predictions_updated=r.predictions_updated,
                                  queue_before=r.queue_before, queue_after=r.queue_after, stopped=r.stopped,
                                  message=r.message)
