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

import fcntl
import hashlib
import json
import math
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .config import Config
from .data import Pool, load_pool
from .errors import DataError, LabelloopError
from .head import Head
from .labelstudio import Connector, ExistingTask, PushItem, model_version_for
from .learner import query, train
from .stopping import Advice, agreement, audit_metrics, stop_advice
from .store import RoundRow, Store, StoreError, now
from .strategies import get_strategy

__all__ = ["sync", "SyncReport", "SyncBusy", "Campaign", "load_campaign", "current_advice", "EXIT_BUSY"]

EXIT_BUSY = 4
COLD_START_VERSION = "labelloop-cold-start"

Hook = Callable[[str], None]


class SyncBusy(LabelloopError):
    """Another sync holds the lock: not an error of this run, just nothing to do."""

    exit_code = EXIT_BUSY


@contextmanager
def sync_lock(state_path: Path) -> Iterator[None]:
    """An exclusive ``flock`` on STATE.lock; the OS releases it when the process dies, however it dies."""
    lock_path = state_path.with_name(state_path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create the lock file {lock_path}: {exc.strerror}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SyncBusy(f"another labelloop sync is running (lock {lock_path} is held); this run did "
                           f"nothing") from None
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Campaign:
    """The inputs of a sync, loaded and checked before anything is written."""

    config: Config
    pool: Pool
    X: np.ndarray                      # the head's features of the pool (smoothed over it)
    encoder_identity: str
    test: Pool | None = None
    X_test: np.ndarray | None = None

    @property
    def classes(self) -> list[str]:
        return list(self.config.labels)

    @property
    def features(self) -> str:
        return str(self.config.model.smoothing)


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _check_labels(pool: Pool, classes: list[str], what: str) -> None:
    unknown = sorted(set(pool.label_set) - set(classes))
    if unknown:
        raise DataError(f"{pool.source}: {what} labels not in the config's label set: {unknown[:10]}")


def load_campaign(config: Config, *, progress: bool = False, embed_texts: bool = True) -> Campaign:
    """Read the data (and test file) named by the config, embed them through the cache, smooth them."""
    from .embeddings import Encoder, default_cache_dir, embed

    d = config.data
    pool = load_pool(d.path, d.text_column, d.label_column, d.id_column, skip_empty=d.skip_empty)
    _check_labels(pool, config.labels, "pool")
    test = None
    if d.test is not None:
        test = load_pool(d.test, d.text_column, d.test_label_column, None, require_labels=True, unique_ids=False)
        _check_labels(test, config.labels, "test")
    encoder = Encoder(config.model.encoder)
    if not embed_texts:
        return Campaign(config, pool, np.empty((0, 0)), encoder.identity, test)
    texts = pool.texts + (test.texts if test else [])
    vectors = embed(texts, encoder, config.model.cache_dir or default_cache_dir(), progress=progress)
    raw = vectors[: len(pool)]
    smoothing = config.model.smoothing
    return Campaign(config, pool, smoothing(raw, progress=progress), encoder.identity, test,
                    smoothing(vectors[len(pool):], raw) if test else None)


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


# -- the state of a campaign, as the store sees it ------------------------------------------------

def _register(store: Store, campaign: Campaign, project_id: int) -> None:
    """First run: remember project and label set, draw the audit sample and stop set. Later runs:
    check the project, label set and texts still match and add new texts (inside a transaction)."""
    cfg = campaign.config
    pool = campaign.pool
    stored_project = store.get("project_id")
    if stored_project is not None and int(stored_project) != project_id:
        raise StoreError(f"{store.path} belongs to Label Studio project {stored_project}, not {project_id}; "
                         f"use another state.path for another project")
    stored_encoder = store.get("encoder")
    if stored_encoder is not None and stored_encoder != campaign.encoder_identity:
        raise StoreError(f"{store.path} was embedded with encoder {stored_encoder}, the config now gives "
                         f"{campaign.encoder_identity}; its models cannot score the new vectors, so a changed "
                         f"encoder needs a new campaign (new state.path)")
    stored_features = store.get("features")
    if stored_features is not None and stored_features != campaign.features:
        raise StoreError(f"{store.path} was trained on features {stored_features}, the config now gives "
                         f"{campaign.features} ([model] neighbours / neighbour_weight); its models cannot score "
                         f"the new features, so set them back or start a new campaign (new state.path)")
    if stored_features is None:
        store.set("features", campaign.features)
    stored_labels = store.get("labels")
    if stored_labels is not None and json.loads(stored_labels) != campaign.classes:
        raise StoreError(f"{store.path} was made for labels {json.loads(stored_labels)}, the config now says "
                         f"{campaign.classes}; a changed label set needs a new campaign (new state.path)")
    known = store.items()
    hashes = [text_hash(t) for t in pool.texts]
    changed = [i for i, h in zip(pool.ids, hashes, strict=True) if i in known and known[i][0] != h]
    if changed:
        raise DataError(f"{pool.source}: {len(changed)} text(s) changed under the same id since the last sync "
                        f"(e.g. {changed[:3]}); ids must keep their text, give edited texts new ids")
    new_rows = [r for r, i in enumerate(pool.ids) if i not in known]
    if stored_project is None:
        rng = np.random.default_rng(cfg.loop.seed)
        unlabeled = [r for r in new_rows if pool.labels[r] is None]
        n_audit = min(math.ceil(cfg.loop.audit_fraction * cfg.loop.budget), len(unlabeled) // 4)
        order = rng.permutation(len(unlabeled))
        audit = {pool.ids[unlabeled[k]] for k in order[:n_audit]}
        stop_set = [pool.ids[unlabeled[k]] for k in order[n_audit : n_audit + cfg.stop.stop_set_size]]
        store.set("project_id", str(project_id))
        store.set("labels", json.dumps(campaign.classes))
        store.set("encoder", campaign.encoder_identity)
        store.set("stop_set", json.dumps(stop_set))
        store.set("created_at", now())
        store.add_round(0, COLD_START_VERSION, "cold-start", {}, {}, None, None)
    else:
        audit = set()
    store.add_items([(pool.ids[r], hashes[r], pool.source, "audit" if pool.ids[r] in audit else "pool")
                     for r in new_rows])


def _training_labels(store: Store, campaign: Campaign) -> dict[str, str]:
    """Labels the model may learn from: agreed Label Studio labels of non-audit texts, plus labels in the data."""
    pool = campaign.pool
    in_pool = set(pool.ids)
    audit = set(store.ids_with_role("audit"))
    out = {i: lab for i, lab in zip(pool.ids, pool.labels, strict=True) if lab is not None and i not in audit}
    for item_id, res in store.resolutions().items():
        if res.label is not None and item_id in in_pool and item_id not in audit:
            out[item_id] = res.label
    return out


def _audit_labels(store: Store, campaign: Campaign) -> dict[str, str]:
    in_pool = set(campaign.pool.ids)
    res = store.resolutions()
    return {i: res[i].label for i in store.ids_with_role("audit") if i in res and res[i].label and i in in_pool}


def _evaluate(head: Head, campaign: Campaign, rows: dict[str, int], labels: dict[str, str],
              seed: int) -> dict[str, object]:
    index = {c: k for k, c in enumerate(campaign.classes)}
    metrics: dict[str, object] = {}
    if labels:
        ids = sorted(labels)
        y = np.array([index[labels[i]] for i in ids])
        metrics["audit"] = audit_metrics(y, head.predict(campaign.X[[rows[i] for i in ids]]), seed=seed)
    if campaign.test is not None and campaign.X_test is not None:
        y = np.array([index[lab] for lab in campaign.test.labels])  # type: ignore[index]
        metrics["test"] = audit_metrics(y, head.predict(campaign.X_test), seed=seed)
    return metrics


def _maybe_train(store: Store, campaign: Campaign, rows: dict[str, int], run: int) -> RoundRow | None:
    """Train a new model if enough labels changed since the last one; return its round (stored)."""
    cfg = campaign.config
    labels = _training_labels(store, campaign)
    last = store.last_round()
    assert last is not None
    if len(set(labels.values())) < 2:
        return None
    changed = sum(labels.get(i) != last.train_labels.get(i) for i in set(labels) | set(last.train_labels))
    first_model = last.model is None
    if not changed or (changed < cfg.loop.retrain_every and not first_model):
        return None
    index = {c: k for k, c in enumerate(campaign.classes)}
    ids = sorted(labels)
    y = np.full(len(campaign.pool), -1, dtype=np.int64)
    for i in ids:
        y[rows[i]] = index[labels[i]]
    head = train(campaign.X, y, np.flatnonzero(y >= 0), len(campaign.classes), C=cfg.model.C, seed=cfg.loop.seed)
    # The round is part of the version: labels can return to an earlier state (deleted annotations).
    version = model_version_for(labels, campaign.encoder_identity, f"{cfg.loop.strategy},{cfg.model.C},"
                                f"{campaign.features},{','.join(campaign.classes)},round {last.round + 1}")
    metrics = _evaluate(head, campaign, rows, _audit_labels(store, campaign), cfg.loop.seed)
    stop_ids = [i for i in json.loads(store.get("stop_set") or "[]") if i in rows]
    stop_pred = head.predict(campaign.X[[rows[i] for i in stop_ids]]) if stop_ids else np.empty(0, np.int64)
    if last.stop_predictions is not None and len(last.stop_predictions) == len(stop_pred):
        metrics["stop_set_kappa"] = agreement(last.stop_predictions, stop_pred)
    with store.tx():
        store.add_round(last.round + 1, version, cfg.loop.strategy, labels, metrics, head.to_arrays(), stop_pred)
        store.update_run(run, trained=version)
    return store.last_round()


def current_advice(store: Store, config: Config) -> list[Advice]:
    """The stopping criteria's verdicts from the ledger alone."""
    rounds = [r for r in store.rounds() if r.model is not None]
    audit = [r.metrics["audit"] for r in rounds if r.metrics.get("audit", {}).get("n")]
    return stop_advice(
        sent=len(store.pushes()), budget=config.loop.budget,
        kappas=[r.metrics["stop_set_kappa"] for r in rounds if "stop_set_kappa" in r.metrics],
        audit_accuracy=[a["accuracy"] for a in audit], audit_n=audit[-1]["n"] if audit else 0,
        stabilizing_kappa=config.stop.stabilizing_kappa, stabilizing_rounds=config.stop.stabilizing_rounds,
        plateau_rounds=config.stop.plateau_rounds, plateau_delta=config.stop.plateau_delta,
        min_audit=config.stop.min_audit)


# -- one sync ---------------------------------------------------------------------------------------

def _items_for(rows: list[dict], campaign: Campaign, index: dict[str, int]) -> list[PushItem]:
    return [PushItem(q["item_id"], campaign.pool.texts[index[q["item_id"]]], q["predicted"], q["confidence"],
                     q["cluster"]) for q in rows]


def _push_pending(store: Store, ls: Connector, project_id: int, campaign: Campaign, index: dict[str, int],
                  run: int, hook: Hook) -> tuple[int, int]:
    """Send every pending selection (idempotent) and record it; returns (active, audit) counts."""
    pending = [q for q in store.queries("pending") if q["item_id"] in index]
    if not pending:
        return 0, 0
    by_version: dict[str | None, list[dict]] = {}
    for q in pending:
        by_version.setdefault(q["model_version"] if q["predicted"] else None, []).append(q)
    done = 0
    for version, qs in by_version.items():
        def progress(n: int, total: int) -> None:
            if 0 < n < total:
                hook("mid-push")
        report = ls.push(project_id, _items_for(qs, campaign, index), version,
                         batch_size=campaign.config.labelstudio.batch_size, progress=progress)
        done += len(qs)
        hook("pushed")
        with store.tx():
            store.mark_pushed(report.task_ids)
            store.count_in_run(run, "pushed", len(report.task_ids))
    audit = sum(q["kind"] == "audit" for q in pending)
    return done - audit, audit


def sync(config: Config, *, campaign: Campaign | None = None, connector: Connector | None = None,
         progress: bool = False, hook: Hook | None = None) -> SyncReport:
    """Run one sync step (see the module docstring). ``hook(step)`` is called between steps (tests kill there)."""
    hook = hook or (lambda step: None)
    state = config.state.path
    if not state.parent.is_dir():
        raise StoreError(f"state.path {state}: folder {state.parent} does not exist")
    with sync_lock(state):
        stored_project = Store.check(state)
        campaign = campaign or load_campaign(config, progress=progress)
        ls = connector or Connector(config.labelstudio.url)
        if stored_project is not None:  # never create a project for a campaign that has one
            found = ls.find_project(config.labelstudio.project)
            if found is None or found.id != int(stored_project):
                raise StoreError(f"{state} belongs to Label Studio project {stored_project}, not "
                                 f"{config.labelstudio.project!r}; use another state.path for another project")
        info = ls.ensure_project(config.labelstudio.project, config.labels)
        with Store.open(state) as store:
            with store.tx():
                _register(store, campaign, info.id)
            return _sync_steps(store, ls, info.id, info.model_version, campaign, hook)


def _sync_steps(store: Store, ls: Connector, project_id: int, project_version: str | None, campaign: Campaign,
                hook: Hook) -> SyncReport:
    cfg = campaign.config
    index = {i: r for r, i in enumerate(campaign.pool.ids)}

    # (1) pull: the cursor is the stored records themselves, so a pull lands whole or not at all.
    # The run's ledger row is opened with it; a run killed later stays in the ledger, unfinished.
    result = ls.pull(project_id, store.cursor())
    with store.tx():
        report = SyncReport(run=store.start_run())
        store.add_records(report.run, result.records, result.cursor.scanned_at)
        store.update_run(report.run, pulled=len(result.records))
    report.pulled = len(result.records)
    hook("pulled")

    # Tasks in Label Studio that the ledger lacks: pushed by a run killed before it could record them.
    existing: dict[str, ExistingTask] = ls.existing(project_id)
    known = store.pushes()
    found = {i: t.task_id for i, t in existing.items() if i not in known}
    if found:
        with store.tx():
            pending = {q["item_id"] for q in store.queries("pending")}
            store.mark_pushed({i: t for i, t in found.items() if i in pending}, how="pushed")
            store.mark_pushed({i: t for i, t in found.items() if i not in pending}, how="adopted")
            store.update_run(report.run, adopted=len(found))
        report.adopted = len(found)

    # (2) retrain when enough labels changed.
    trained = _maybe_train(store, campaign, index, report.run)
    report.trained = trained.model_version if trained else None
    model = store.last_round()
    assert model is not None
    head = Head.from_arrays(model.model) if model.model is not None else None

    gone = set(store.pushes()) - set(existing)  # tasks deleted in Label Studio: never queued again

    def queue() -> list[str]:
        """Texts sent and still waiting: no label, no skip, task not deleted."""
        answered = store.resolutions()
        return [i for i in store.pushes() if i not in gone and i not in answered]

    def room() -> int:
        return max(0, min(cfg.loop.queue_target - len(queue()), cfg.loop.budget - len(store.pushes())))

    # (3) finish an interrupted push (no further than the queue has room for), then top the queue up.
    waiting_before = queue()
    pending = [q["item_id"] for q in store.queries("pending")]
    sendable = [i for i in pending if i in index]
    drop = [i for i in pending if i not in index] + sendable[room():]
    if drop:
        with store.tx():
            store.drop_pending(drop)
    report.queue_before = len(waiting_before)
    a, b = _push_pending(store, ls, project_id, campaign, index, report.run, hook)
    report.pushed_active, report.pushed_audit = a, b
    report.advice = current_advice(store, cfg)
    fired = [a for a in report.advice if a.fired and a.criterion in cfg.stop.on]
    if fired:
        report.stopped = "; ".join(f"{a.criterion} ({a.reason})" for a in fired)
    else:
        n = room()
        if n > 0 and _select(store, campaign, head, model, index, n):
            hook("selected")
            a, b = _push_pending(store, ls, project_id, campaign, index, report.run, hook)
            report.pushed_active += a
            report.pushed_audit += b
            report.advice = current_advice(store, cfg)

    # (4) the new model's guesses for tasks still waiting, and the project's model version.
    if head is not None:
        audit = set(store.ids_with_role("audit"))
        stale = [i for i in waiting_before if i in existing and i not in audit and i in index
                 and model.model_version not in existing[i].model_versions]
        if stale:
            probs = head.predict_proba(campaign.X[[index[i] for i in stale]])
            items = [PushItem(i, campaign.pool.texts[index[i]], campaign.classes[int(p.argmax())], float(p.max()))
                     for i, p in zip(stale, probs, strict=True)]
            # create=False: a task deleted since `existing` was read stays deleted.
            pushed = ls.push(project_id, items, model.model_version, batch_size=cfg.labelstudio.batch_size,
                             create=False)
            report.predictions_updated = len(pushed.predictions_added)
        elif project_version != model.model_version and any(
                model.model_version in t.model_versions for t in existing.values()):
            # Label Studio refuses a version without predictions; with none waiting, the next push sets it.
            ls.set_model_version(project_id, model.model_version)

    # (5) the ledger.
    report.queue_after = len(queue())
    hook("ledger")
    with store.tx():
        store.update_run(report.run, finished_at=now(), predictions_updated=report.predictions_updated,
                         queue_before=report.queue_before, queue_after=report.queue_after, stopped=report.stopped,
                         message=report.message)
    return report


def _select(store: Store, campaign: Campaign, head: Head | None, model: RoundRow, index: dict[str, int],
            n: int) -> bool:
    """Choose ``n`` texts (the audit sample's share first) and record them as pending."""
    cfg = campaign.config
    sent = store.pushes()
    queried = {q["item_id"] for q in store.queries()}
    labeled = set(_training_labels(store, campaign)) | set(store.resolutions())
    audit_all = store.ids_with_role("audit")
    audit_sent = sum(i in sent for i in audit_all)
    audit_left = [i for i in audit_all if i not in queried and i in index]
    quota = math.ceil(cfg.loop.audit_fraction * (len(sent) + n)) - audit_sent
    audit_pick = audit_left[: max(0, min(n, quota))]
    rows = [{"item_id": i, "round": model.round, "kind": "audit", "strategy": "random-audit",
             "model_version": None, "score": None, "cluster": None, "predicted": None, "confidence": None}
            for i in audit_pick]
    audit_set = set(audit_all)
    candidates = np.array([r for r, i in enumerate(campaign.pool.ids) if i not in queried and i not in labeled
                           and i not in audit_set and i not in sent], dtype=np.int64)
    n_active = min(n - len(audit_pick), len(candidates))
    if n_active > 0:
        strategy = cfg.loop.strategy if head is not None else "cold-start"
        rng = np.random.default_rng([cfg.loop.seed, model.round, len(sent)])
        picked = query(head, campaign.X, candidates, get_strategy(cfg.loop.strategy), n_active, rng)
        for k, row in enumerate(picked.indices):
            probs = None if picked.probs is None else picked.probs[k]
            cluster = int(picked.clusters[k])
            rows.append({
                "item_id": campaign.pool.ids[row], "round": model.round, "kind": "active", "strategy": strategy,
                "model_version": model.model_version if probs is not None else None,
                "score": float(picked.scores[k]), "cluster": None if cluster < 0 else cluster,
                "predicted": None if probs is None else campaign.classes[int(probs.argmax())],
                "confidence": None if probs is None else float(probs.max())})
    if not rows:
        return False
    with store.tx():
        store.add_queries(rows)
    return True
