"""The named steps of one sync over an open store (see :mod:`labelloop.sync`, which opens it under the lock).

Each step is a transaction or an idempotent request, so a kill between any two of them leaves the
store and Label Studio in states the next run converges from.

(Over 400 lines formatted: one class whose methods are the steps of one sync in the order
:meth:`SyncStep.run` calls them, so a reader follows a sync top to bottom in one file.)
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING

from .campaign import Campaign, current_advice, ingest, latest_head, prefill_cutoff, select, train_when_due
from .copies import conflicts_message
from .errors import LabelloopError
from .guidelines import Guidelines
from .head import Classifier
from .labelstudio import Connector, ExistingTask, ProjectInfo, PushItem
from .review import Escalation, abstained, blind_priority, settled, ties_to_escalate, waiting_for_answers
from .stopping import Advice
from .store import QueryRow, RoundRow, Store, now

if TYPE_CHECKING:
    import numpy as np

__all__ = ["SyncStep", "SyncReport", "CampaignGuardError", "Hook"]

Hook = Callable[[str], None]


class CampaignGuardError(LabelloopError):
    """What Label Studio shows would destroy much of the campaign (a replaced project, a mass deletion):
    refused, nothing written (exit 2)."""


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
    opinions_after: int = 0  # texts sent back for another opinion, still short of answers (not in the queue)
    escalated: int = 0  # ties sent to one more annotator
    suspects_sent: int = 0  # suspected label errors sent back for another opinion
    settled: int = 0  # second opinions that came back with a label
    stopped: str | None = None
    rebuilt: bool = False  # the ledger had no run before this one
    advice: list[Advice] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def message(self) -> str:
        parts = [f"pulled {self.pulled} change(s)"]
        parts.append(f"trained {self.trained}" if self.trained else "model unchanged")
        parts.append(
            f"sent {self.pushed_active} + {self.pushed_audit} audit"
            if not self.stopped
            else f"stopped: {self.stopped}"
        )
        if self.adopted and self.rebuilt:
            parts.append(
                f"found {self.adopted} task(s) already in the project (a new or rebuilt state file): adopted"
            )
        elif self.adopted:
            parts.append(f"recovered {self.adopted} task(s) of an interrupted run")
        if self.escalated or self.suspects_sent or self.settled:
            parts.append(
                f"second opinions: {self.escalated} tie(s) and {self.suspects_sent} suspect label(s) sent, "
                f"{self.settled} settled"
            )
        if self.predictions_updated:
            parts.append(f"new predictions on {self.predictions_updated} open task(s)")
        parts.append(
            f"queue {self.queue_before} → {self.queue_after}"
            + (f" (+ {self.opinions_after} second opinion(s) open)" if self.opinions_after else "")
        )
        return "; ".join(parts)


@dataclass
class SyncStep:
    """The named steps of one sync over an open store."""

    store: Store
    ls: Connector
    project_id: int
    campaign: Campaign
    hook: Hook
    existing: dict[str, ExistingTask] = field(default_factory=dict)
    report: SyncReport = field(default_factory=lambda: SyncReport(run=0))

    def run(self, info: ProjectInfo, guidelines: Guidelines | None = None) -> SyncReport:
        self.guard_deletions()
        self.pull()
        self.adopt()
        self.check_plan()
        self.data_conflicts()
        self.data_missing()
        if guidelines is not None:
            self.apply_guidelines(info, guidelines)
        model = self.store.last_round()
        assert model is not None, "register() first"
        self.second_opinions(model)
        trained, regular = train_when_due(self.store, self.campaign, self.report.run)
        self.report.trained = trained.model_version if trained else None
        model = self.store.last_round()
        assert model is not None
        if trained is not None and regular:  # late labels after the end retrain, but ask for no re-checks
            self.send_back_suspects(model)
        waiting_before = self.queue()
        self.report.queue_before = len(waiting_before)
        self.top_up(model)
        self.refresh_predictions(model, waiting_before + self.open_ids(), info.model_version)
        self.finish()
        return self.report

    @cached_property
    def _latest(self) -> tuple[RoundRow, Classifier | None]:
        return latest_head(self.store)

    @property
    def head(self) -> Classifier | None:
        """The latest model, read from the store only when a step needs it (a no-op sync reads none)."""
        return self._latest[1]

    @property
    def head_features(self) -> np.ndarray:
        """The pool's features as the latest model was trained on them (the neighbour weight of its labels)."""
        return self.campaign.at_labels(len(self._latest[0].train_labels)).X

    def guard_deletions(self) -> None:
        """(1) Refuse, before anything is written, when most of the campaign's tasks are gone from the project."""
        self.existing = self.ls.existing(self.project_id)
        known = self.store.pushes()
        gone = [i for i in known if i not in self.existing]
        share = self.campaign.config.quality.max_delete_share
        if len(gone) > 2 and len(gone) > share * len(known):
            raise CampaignGuardError(
                f"{len(gone)} of the campaign's {len(known)} tasks are gone from project {self.project_id} "
                f"(more than quality.max_delete_share = {share:g}); refusing to record them as deleted, nothing "
                f"was written. Restore them in Label Studio, or raise max_delete_share if this was intended"
            )

    def pull(self) -> None:
        """(2) The cursor is the stored records, so a pull lands whole or not at all; the run's ledger row
        is opened with it (a run killed later stays in the ledger, unfinished)."""
        result = self.ls.pull(self.project_id, self.store.cursor())
        with self.store.tx():
            self.report = SyncReport(run=self.store.start_run(), pulled=len(result.records))
            self.report.rebuilt = self.report.run == 1
            ingest(self.store, self.report.run, result.records, result.cursor.scanned_at)
            self.store.update_run(self.report.run, pulled=len(result.records))
        self.hook("pulled")

    def check_plan(self) -> None:
        """Say at the first run what the config promises but the data cannot give."""
        if not self.report.rebuilt:
            return
        cfg = self.campaign.config
        unlabeled = sum(lab is None for lab in self.campaign.pool.labels)
        if cfg.loop.budget > unlabeled:
            self.report.warnings.append(
                f"loop.budget {cfg.loop.budget} exceeds the {unlabeled} unlabeled text(s) in "
                f"the pool: the campaign ends when the pool runs out"
            )
        if cfg.multi_label:
            self.report.warnings.append(
                "multi-label campaign: suspected label errors are not sent back for a second opinion (on "
                "label sets they measured too imprecise); ties between different label sets are"
            )
        audit = len(self.store.ids_with_role("audit"))
        if "plateau" in cfg.stop.on and audit < cfg.stop.min_audit:
            self.report.warnings.append(
                f"stop.plateau can never fire: the audit sample holds {audit} text(s), fewer "
                f"than stop.min_audit = {cfg.stop.min_audit}"
            )

    def data_conflicts(self) -> None:
        """Say when the data's labels disagree across copies of one text (``status`` always shows it)."""
        source = self.campaign.pool.source
        self._say_once("data_conflicts", lambda c: f"{source}: {conflicts_message(c['n'], c['shown'])}")

    def data_missing(self) -> None:
        """Say when texts the campaign knows are gone from the data file."""
        source = self.campaign.pool.source
        self._say_once(
            "pool_missing",
            lambda m: (
                f"{source} no longer has {m['n']} of the campaign's texts (e.g. {', '.join(m['shown'])}): "
                f"they are not trained on, sent or scored until it has them again"
            ),
        )

    def _say_once(self, key: str, message: Callable[[dict], str]) -> None:
        """Warn about the store's ``key`` (``{"n": ..., "shown": [...]}``, written by register) at the first
        run, then each time it changes: not at every cron tick."""
        current = self.store.get(key)
        if current is None or current == self.store.get(f"{key}_reported"):
            return
        found = json.loads(current)
        if found["n"]:
            self.report.warnings.append(message(found))
        with self.store.tx():
            self.store.set(f"{key}_reported", current)

    def adopt(self) -> None:
        """Tasks in Label Studio that the ledger lacks: pushed by a run killed before it could record them."""
        known = self.store.pushes()
        found = {i: t.task_id for i, t in self.existing.items() if i not in known}
        if found:
            with self.store.tx():
                pending = {q.item_id for q in self.store.queries("pending")}
                self.store.mark_pushed({i: t for i, t in found.items() if i in pending}, how="pushed")
                self.store.mark_pushed({i: t for i, t in found.items() if i not in pending}, how="adopted")
                self.store.update_run(self.report.run, adopted=len(found))
            self.report.adopted = len(found)

    def apply_guidelines(self, info: ProjectInfo, guidelines: Guidelines) -> None:
        """(3) The guidelines file, rendered to the project's instructions when it changed; each version is
        kept in the ledger."""
        known = [v for v, _ in self.store.guidelines()]
        if known and known[-1] == guidelines.version and info.instructions:
            return
        self.ls.set_instructions(self.project_id, guidelines.html)
        with self.store.tx():
            if not known or known[-1] != guidelines.version:
                self.store.add_guidelines(guidelines.version, guidelines.source, guidelines.markdown)

    def open_ids(self) -> list[str]:
        return [e.item_id for e in self.store.escalations(open_only=True) if e.item_id in self.existing]

    def queue(self) -> list[str]:
        """Texts sent and still waiting: no label, no skip, task not deleted."""
        answered = self.store.resolutions()
        return [i for i in self.store.pushes() if i in self.existing and i not in answered]

    def room(self) -> int:
        loop = self.campaign.config.loop
        waiting = len(self.queue()) + len(self.open_ids())
        return max(0, min(loop.queue_target - waiting, loop.budget - len(self.store.pushes())))

    def second_opinions(self, model: RoundRow) -> None:
        """(3) Settle escalations whose extra opinions are in; send fully answered ties to one more person."""
        res = self.store.resolutions()
        opened = self.store.escalations(open_only=True)
        done = settled(opened, res, self.store.records([e.item_id for e in opened])) if opened else []
        if done:
            with self.store.tx():
                for seq, label, who in done:
                    self.store.resolve_escalation(seq, label, who)
            item = {e.seq: e.item_id for e in opened}
            self.report.settled = len({item[seq] for seq, _, _ in done})  # texts (a suspect and its tie: one)
        tasks = {i: (t.task_id, t.overlap) for i, t in self.existing.items()}
        cap = self.campaign.config.quality.max_annotators
        open_now = self.store.escalations(open_only=True)
        # Recorded but never reopened (Label Studio failed after the ledger was written): reopen again.
        lagging: dict[int, int] = {}
        for e in open_now:
            if e.item_id in tasks and tasks[e.item_id][1] < e.overlap:
                lagging[tasks[e.item_id][0]] = max(e.overlap, lagging.get(tasks[e.item_id][0], 0))
        if lagging:
            self.ls.reopen(self.project_id, lagging, model.model_version)
        still_open = waiting_for_answers(open_now, res)
        ties, stuck = ties_to_escalate(res, tasks, still_open, cap)
        # An empty answer filled the place of the opinion asked for: one more person (a tie's goes on as a tie).
        empty_answered = abstained(open_now, res, self.store.records([e.item_id for e in open_now]))
        reason = {e.item_id: e.reason for e in open_now}
        for i in empty_answered:
            if i not in tasks:
                continue
            if res[i].answers >= cap:
                stuck.append(i)
                continue
            ties.append(Escalation(i, tasks[i][0], reason[i], res[i].answers + 1, res[i].label))
        if stuck:
            self.report.warnings.append(
                f"{len(stuck)} text(s) reached quality.max_annotators without a settled label and wait "
                f"for a reviewer to answer them in Label Studio (e.g. {', '.join(stuck[:3])})"
            )
        self.escalate(ties, model)
        self.report.escalated = len(ties)

    def escalate(self, escalations: list[Escalation], model: RoundRow) -> None:
        """Record, then reopen in Label Studio (a crash in between is redone: reopen is idempotent)."""
        if not escalations:
            return
        with self.store.tx():
            for e in escalations:
                self.store.add_escalation(
                    e.item_id, e.task_id, e.reason, model.round, e.overlap, e.label_before, e.score
                )
        self.ls.reopen(self.project_id, {e.task_id: e.overlap for e in escalations}, model.model_version)
        self.hook("escalated")

    def send_back_suspects(self, model: RoundRow) -> None:
        """(4) After a retrain, the labels the model finds most doubtful go back for another opinion."""
        from .campaign import suspects_to_send

        q = self.campaign.config.quality
        n = int(q.suspects_share * self.campaign.config.loop.queue_target + 0.5)
        if n <= 0:
            return
        tasks = {i: (t.task_id, t.overlap) for i, t in self.existing.items()}
        picks = suspects_to_send(self.store, self.campaign, tasks, n)
        self.escalate(picks, model)
        self.report.suspects_sent = len(picks)

    def top_up(self, model: RoundRow) -> None:
        """(5) Finish an interrupted push (no further than the queue has room for), then fill the queue."""
        cfg, index = self.campaign.config, self.campaign.index
        pending = [q.item_id for q in self.store.queries("pending")]
        sendable = [i for i in pending if i in index]
        drop = [i for i in pending if i not in index] + sendable[self.room() :]
        if drop:
            with self.store.tx():
                self.store.drop_pending(drop)
        self.push_pending(model)
        self.report.advice = current_advice(self.store, cfg)
        fired = [a for a in self.report.advice if a.fired and a.criterion in cfg.stop.on]
        if fired:
            self.report.stopped = "; ".join(f"{a.criterion} ({a.reason})" for a in fired)
            return
        n = self.room()
        chosen = select(self.store, self.campaign, self.head, model, n) if n > 0 else []
        if chosen:
            self.hook("selected")
            self.push_pending(model)
            self.report.advice = current_advice(self.store, cfg)
        if len(chosen) < n and not self.queue() and not self.open_ids():
            self.report.stopped = "pool exhausted — campaign complete: every text is labeled or was sent"

    def _item(self, q: QueryRow) -> PushItem:
        text = self.campaign.pool.texts[self.campaign.index[q.item_id]]
        score = q.confidence if q.predicted is not None else blind_priority(q.kind, q.confidence)
        return PushItem(
            q.item_id, text, q.predicted, score, q.cluster, prefill=q.prefilled, overlap=q.overlap
        )

    def push_pending(self, model: RoundRow) -> None:
        """Send every pending selection (idempotent: Label Studio is checked by our id) and record it.

        Every task gets a prediction of a model version (the guess, or a blind one with only a score), so
        Label Studio's uncertainty sampling places it in the queue: audit texts first, never last."""
        pending = [q for q in self.store.queries("pending") if q.item_id in self.campaign.index]
        by_version: dict[str, list[QueryRow]] = {}
        for q in pending:
            by_version.setdefault(
                q.model_version if q.predicted and q.model_version else model.model_version, []
            ).append(q)
        for version, qs in by_version.items():

            def progress(n: int, total: int) -> None:
                if 0 < n < total:
                    self.hook("mid-push")

            pushed = self.ls.push(
                self.project_id,
                [self._item(q) for q in qs],
                version,
                batch_size=self.campaign.config.labelstudio.batch_size,
                progress=progress,
            )
            self.hook("pushed")
            with self.store.tx():
                self.store.mark_pushed(pushed.task_ids)
                self.store.count_in_run(self.report.run, "pushed", len(pushed.task_ids))
            overlap = {q.item_id: q.overlap for q in qs}
            self.existing.update(
                {
                    i: ExistingTask(t, frozenset({version}), version, overlap.get(i, 1))
                    for i, t in pushed.task_ids.items()
                }
            )
        audit = sum(q.kind == "audit" for q in pending)
        self.report.pushed_active += len(pending) - audit
        self.report.pushed_audit += audit

    def refresh_predictions(self, model: RoundRow, waiting: list[str], project_version: str | None) -> None:
        """(6) The new model's predictions for tasks still waiting (blind where a guess would anchor), and
        the project's model version."""
        index = self.campaign.index
        stale = [
            i
            for i in dict.fromkeys(waiting)
            if i in self.existing
            and i in index
            and model.model_version not in self.existing[i].model_versions
        ]
        items = self._refreshed(stale) if stale else []
        if items:
            # Recorded first: a push cut short is redone by the next sync (the version is still missing), so
            # the ledger never lags what annotators may see (the "auto" threshold reads it).
            with self.store.tx():
                self.store.update_shown(
                    [
                        (it.id, model.model_version, it.label, float(it.score or 0.0), it.prefill)
                        for it in items
                        if it.label is not None
                    ]
                )
            # create=False: a task deleted since `existing` was read stays deleted.
            pushed = self.ls.push(
                self.project_id,
                items,
                model.model_version,
                batch_size=self.campaign.config.labelstudio.batch_size,
                create=False,
            )
            self.report.predictions_updated = len(pushed.predictions_added)
        elif project_version != model.model_version and any(
            model.model_version in t.model_versions for t in self.existing.values()
        ):
            # Label Studio refuses a version without predictions; with none waiting, the next push sets it.
            self.ls.set_model_version(self.project_id, model.model_version)

    def _refreshed(self, ids: list[str]) -> list[PushItem]:
        """Audit texts and second opinions stay blind and first; double-annotated tasks blind at their place;
        the rest get the new guess, pre-selected when confident."""
        audit = set(self.store.ids_with_role("audit"))
        opened = set(self.open_ids())
        double = {q.item_id for q in self.store.queries() if q.overlap > 1}
        threshold = prefill_cutoff(self.store, self.campaign)
        index, texts = self.campaign.index, self.campaign.pool.texts
        probs = (
            self.head.predict_proba(self.head_features[[index[i] for i in ids]])
            if self.head is not None
            else [None] * len(ids)
        )
        items = []
        for i, p in zip(ids, probs, strict=True):
            if i in audit or i in opened:
                items.append(PushItem(i, texts[index[i]], None, 0.0, prefill=False))
            elif p is not None:
                label, conf = self.campaign.learner.guess(p)  # multi-label: the set, its least sure member
                items.append(
                    PushItem(
                        i,
                        texts[index[i]],
                        label,
                        conf,
                        prefill=i not in double and conf >= threshold,
                    )
                )
        return items

    def finish(self) -> None:
        """(5) The ledger."""
        r = self.report
        r.queue_after = len(self.queue())
        r.opinions_after = len(
            waiting_for_answers(self.store.escalations(open_only=True), self.store.resolutions())
        )
        self.hook("ledger")
        with self.store.tx():
            self.store.update_run(
                r.run,
                finished_at=now(),
                predictions_updated=r.predictions_updated,
                queue_before=r.queue_before,
                queue_after=r.queue_after,
                stopped=r.stopped,
                message=r.message,
            )
