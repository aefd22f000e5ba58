"""The campaign service: a config's pool, featurized once, and the loop's decisions over its store.

Every driver of a long-running campaign (``sync`` from cron, ``serve`` from webhooks, ``status``,
``report``, ``predict``) goes through this module: :func:`load_campaign` reads and featurizes the
data, :func:`register` ties it to a state file, :func:`ingest` stores pulled annotations,
:func:`train_if_due` retrains when enough labels changed, :func:`select` records the next batch
as pending. The network stays in :mod:`labelloop.sync`; training and selection in
:class:`labelloop.learner.ActiveLearner`, which ``push`` and the notebook use too.

(Over 400 lines formatted: the campaign's decisions over its store — register, train, select, second
opinions to send — stay together so one module answers "what does the loop do next".)
"""

from __future__ import annotations

import hashlib
import json
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from .config import Config
from .copies import LabelConflictWarning
from .data import Pool, load_pool
from .errors import DataError
from .head import Head
from .labels import LabelSet
from .learner import ActiveLearner, Pick
from .review import Escalation, plan_overlap, prefill_threshold
from .stopping import Advice, agreement, audit_metrics, stop_advice
from .store import QueryRow, RoundRow, Store, StoreError, now

if TYPE_CHECKING:
    from .embeddings import Encoder

__all__ = [
    "Campaign",
    "load_campaign",
    "register",
    "ingest",
    "training_labels",
    "train_if_due",
    "select",
    "current_advice",
    "latest_head",
    "push_picks",
    "suspects_to_send",
    "prefill_cutoff",
    "COLD_START_VERSION",
    "text_hash",
]

COLD_START_VERSION = "labelloop-cold-start"


Features = tuple[np.ndarray, "np.ndarray | None"]


@dataclass(frozen=True, eq=False)
class Campaign:
    """The inputs of a campaign, loaded and checked before anything is written.

    ``pool_features`` are the head's features of the pool (smoothed over it), or a function giving
    ``(pool features, test features)`` when first needed: a sync with nothing to train, score or send
    then reads no vector at all, so its cost follows what changed, not the pool.
    """

    config: Config
    pool: Pool
    pool_features: np.ndarray | Callable[[], Features]
    encoder_identity: str
    test: Pool | None = None
    test_features: np.ndarray | None = None

    @cached_property
    def _features(self) -> Features:
        if callable(self.pool_features):
            return self.pool_features()
        return self.pool_features, self.test_features

    @property
    def X(self) -> np.ndarray:
        """The head's features of the pool, computed (from the embedding cache) on first use."""
        return self._features[0]

    @property
    def X_test(self) -> np.ndarray | None:
        return self._features[1]

    @cached_property
    def keys(self) -> np.ndarray:
        """The pool texts' cache keys (:func:`~labelloop.vectors.text_keys`): each text hashed once a run."""
        from .vectors import text_keys

        return text_keys(self.pool.texts)

    @cached_property
    def classes(self) -> LabelSet:
        return LabelSet(self.config.labels)

    @property
    def features(self) -> str:
        return str(self.config.model.smoothing)

    @cached_property
    def learner(self) -> ActiveLearner:
        m, loop = self.config.model, self.config.loop
        return ActiveLearner(
            self.pool.ids,
            self.pool.texts,
            self.X,
            self.classes,
            strategy=loop.strategy,
            C=m.C,
            seed=loop.seed,
            encoder_identity=self.encoder_identity,
            features=self.features,
        )

    @cached_property
    def index(self) -> dict[str, int]:
        """Our id → pool row (the learner's own index, without building the learner and its features)."""
        return {i: r for r, i in enumerate(self.pool.ids)}


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _check_labels(pool: Pool, classes: Sequence[str], what: str) -> None:
    unknown = sorted(set(pool.label_set) - set(classes))
    if unknown:
        raise DataError(f"{pool.source}: {what} labels not in the config's label set: {unknown[:10]}")


def config_encoder(config: Config) -> Encoder:
    """The encoder the config's ``[model]`` names (model, backend, precision, threads): one rule for all."""
    from .embeddings import Encoder

    m = config.model
    return Encoder(m.encoder, threads=m.threads, backend=m.backend, precision=m.precision)


def load_campaign(config: Config, *, progress: bool = False, embed_texts: bool = True) -> Campaign:
    """Read the data (and test file) named by the config, embed them through the cache, smooth them."""
    from .featurize import featurize

    d = config.data
    with warnings.catch_warnings():  # the campaign reports them itself: in sync (once) and status
        warnings.simplefilter("ignore", LabelConflictWarning)
        pool = load_pool(d.path, d.text_column, d.label_column, d.id_column, skip_empty=d.skip_empty)
    _check_labels(pool, config.labels, "pool")
    test = None
    if d.test is not None:
        test = load_pool(
            d.test, d.text_column, d.test_label_column, None, require_labels=True, unique_ids=False
        )
        _check_labels(test, config.labels, "test")
    if d.embedding_column is not None:
        from .column_vectors import column_identity, read_vectors
        from .featurize import featurize_vectors

        if not embed_texts:
            return Campaign(config, pool, np.empty((0, 0)), column_identity(d.path, d.embedding_column), test)
        V, identity = read_vectors(d.path, d.embedding_column, pool.file_rows)
        others = []
        if test is not None:
            Vt, _ = read_vectors(test.source, d.embedding_column, test.file_rows)
            if Vt.shape[1] != V.shape[1]:
                raise DataError(
                    f"{test.source}: vectors in column {d.embedding_column!r} have {Vt.shape[1]} numbers, "
                    f"those of {d.path} {V.shape[1]}"
                )
            others.append(Vt)
        f = featurize_vectors(
            V, *others, identity=identity, smoothing=config.model.smoothing, progress=progress
        )
        return Campaign(config, pool, f.pool, f.encoder_identity, test, f.others[0] if test else None)
    encoder = config_encoder(config)
    if not embed_texts:
        return Campaign(config, pool, np.empty((0, 0)), encoder.identity, test)

    def features() -> Features:  # run when a step first needs the features (see Campaign)
        f = featurize(
            pool.texts,
            *([test.texts] if test else []),
            encoder=encoder,
            cache_dir=config.model.cache_dir,
            smoothing=config.model.smoothing,
            progress=progress,
            pool_keys=campaign.keys,
        )
        return f.pool, f.others[0] if test else None

    campaign = Campaign(config, pool, features, encoder.identity, test)
    return campaign


# -- the campaign's state in its store ------------------------------------------------------------


def _check_identity(store: Store, campaign: Campaign, project_id: int) -> None:
    """Refuse a state file made for another project, encoder, features or label set."""
    stored_project = store.get("project_id")
    if stored_project is not None and int(stored_project) != project_id:
        raise StoreError(
            f"{store.path} belongs to Label Studio project {stored_project}, not {project_id}; "
            f"use another state.path for another project"
        )
    stored_encoder = store.get("encoder")
    if stored_encoder is not None and stored_encoder != campaign.encoder_identity:
        raise StoreError(
            f"{store.path} was embedded with encoder {stored_encoder}, the config now gives "
            f"{campaign.encoder_identity}; its models cannot score the new vectors, so set [model] "
            f"encoder/backend/precision back (campaigns from before the ONNX default: backend = "
            f'"torch") or start a new campaign (new state.path)'
        )
    stored_features = store.get("features")
    if stored_features is not None and stored_features != campaign.features:
        raise StoreError(
            f"{store.path} was trained on features {stored_features}, the config now gives "
            f"{campaign.features} ([model] neighbours / neighbour_weight); its models cannot score "
            f"the new features, so set them back or start a new campaign (new state.path)"
        )
    stored_labels = store.get("labels")
    if stored_labels is not None and not campaign.classes == json.loads(stored_labels):
        raise StoreError(
            f"{store.path} was made for another label set ("
            f"{campaign.classes.difference(json.loads(stored_labels), 'the config', 'the state file')}"
            f"); a changed label set needs a new campaign (new state.path)"
        )


def register(store: Store, campaign: Campaign, project_id: int) -> None:
    """First run: remember project and label set, draw the audit sample and stop set. Later runs:
    check the project, label set and texts still match and add new texts (call inside a transaction)."""
    cfg, pool = campaign.config, campaign.pool
    _check_identity(store, campaign, project_id)
    if store.get("features") is None:
        store.set("features", campaign.features)
    first = store.get("project_id") is None
    fingerprint = _pool_fingerprint(campaign)
    if not first and store.get("pool_fingerprint") == fingerprint:
        return  # the very ids and texts registered last time: nothing to check or add
    known = store.items()
    hashes = campaign.keys.astype("S16").astype(str).tolist()  # = text_hash of each text, hashed once
    changed = [i for i, h in zip(pool.ids, hashes, strict=True) if i in known and known[i][0] != h]
    if changed:
        raise DataError(
            f"{pool.source}: {len(changed)} text(s) changed under the same id since the last sync "
            f"(e.g. {changed[:3]}); ids must keep their text, give edited texts new ids"
        )
    _check_vanished(store, pool, known)
    new_rows = [r for r, i in enumerate(pool.ids) if i not in known]
    audit: set[str] = set()
    if first:
        rng = np.random.default_rng(cfg.loop.seed)
        unlabeled = [r for r in new_rows if pool.labels[r] is None]
        # Sized from what can be sent: a budget larger than the pool must not reserve texts never sent.
        sendable = min(cfg.loop.budget, len(unlabeled))
        n_audit = min(math.ceil(cfg.loop.audit_fraction * sendable), len(unlabeled) // 4)
        order = rng.permutation(len(unlabeled))
        audit = {pool.ids[unlabeled[k]] for k in order[:n_audit]}
        stop_set = [pool.ids[unlabeled[k]] for k in order[n_audit : n_audit + cfg.stop.stop_set_size]]
        store.set("project_id", str(project_id))
        store.set("labels", json.dumps(list(campaign.classes)))
        store.set("encoder", campaign.encoder_identity)
        store.set("stop_set", json.dumps(stop_set))
        store.set("created_at", now())
        store.add_round(0, COLD_START_VERSION, "cold-start", {}, {}, None, None)
    store.add_items(
        [(pool.ids[r], hashes[r], pool.source, "audit" if pool.ids[r] in audit else "pool") for r in new_rows]
    )
    _record_copies(store, pool)
    store.set("pool_fingerprint", fingerprint)


def _check_vanished(store: Store, pool: Pool, known: Mapping[str, object]) -> None:
    """Texts of the campaign that the data no longer has: refused when most are gone (a truncated or another
    file: its labels and tasks would stop counting without a word), else recorded for ``sync`` to say."""
    in_pool = set(pool.ids)
    gone = [i for i in known if i not in in_pool]
    if gone and 2 * len(gone) > len(known):
        raise DataError(
            f"{pool.source} lacks {len(gone)} of the campaign's {len(known)} texts (e.g. {gone[:3]}): a "
            f"truncated or different data file? Restore data.path; to start over with this file, give "
            f"state.path a new name"
        )
    store.set("pool_missing", json.dumps({"n": len(gone), "shown": gone[:3]}))


def _pool_fingerprint(campaign: Campaign) -> str:
    """One hash of what register stores about the pool (ids, texts, copies, the data's labels), in order:
    unchanged, the next register has nothing to check or write."""
    pool = campaign.pool
    h = hashlib.sha256(json.dumps([pool.ids, pool.labels]).encode("utf-8"))
    h.update(campaign.keys.tobytes())
    h.update(pool.copies.tobytes())
    h.update(json.dumps([c.describe() for c in pool.conflicts]).encode("utf-8"))
    return h.hexdigest()


def _record_copies(store: Store, pool: Pool) -> None:
    """Keep each item's copy count (and the data's label conflicts) in the store, so ``status`` can say how
    many rows the labels cover without reading the data; only counts that changed are written."""
    stored = store.copies()
    copies = dict(zip(pool.ids, pool.copies.tolist(), strict=True)) if pool.rows is not None else {}
    changed = {i: n for i, n in copies.items() if stored.get(i, 1) != n}
    if stored:  # texts no longer repeated in the data stand for one row again
        in_pool = set(pool.ids)
        changed.update({i: 1 for i in stored if i not in copies and i in in_pool})
    if changed:
        store.set_copies(changed)
    if pool.conflicts or store.get("data_conflicts") is not None:
        shown = [c.describe() for c in pool.conflicts[:CONFLICTS_SHOWN]]
        store.set("data_conflicts", json.dumps({"n": len(pool.conflicts), "shown": shown}))


CONFLICTS_SHOWN = 5
"""Label conflicts of the data named in the store (and so in ``status``); the count is always given."""


def ingest(store: Store, run: int, records: Sequence, scanned_at: str | None) -> None:
    """Store a pull's annotation records and refresh the labels they touch (call inside a transaction)."""
    store.add_records(run, records, scanned_at)


def training_labels(store: Store, campaign: Campaign) -> dict[str, str]:
    """Labels the model may learn from: agreed Label Studio labels of non-audit texts, plus labels in the data."""
    pool = campaign.pool
    index = campaign.index
    audit = set(store.ids_with_role("audit"))
    out = {i: lab for i, lab in zip(pool.ids, pool.labels, strict=True) if lab is not None and i not in audit}
    for item_id, res in store.resolutions().items():
        if res.label is not None and item_id in index and item_id not in audit:
            out[item_id] = res.label
    return out


def audit_labels(store: Store, campaign: Campaign) -> dict[str, str]:
    index = campaign.index
    res = store.resolutions()
    out: dict[str, str] = {}
    for i in store.ids_with_role("audit"):
        label = res[i].label if i in res else None
        if label is not None and i in index:
            out[i] = label
    return out


def _evaluate(head: Head, campaign: Campaign, labels: dict[str, str], seed: int) -> dict[str, object]:
    metrics: dict[str, object] = {}
    classes, rows = campaign.classes, campaign.index
    if labels:
        ids = sorted(labels)
        y = np.array([classes.index(labels[i]) for i in ids])
        metrics["audit"] = audit_metrics(y, head.predict(campaign.X[[rows[i] for i in ids]]), seed=seed)
    if campaign.test is not None and campaign.X_test is not None:
        y = np.array([classes.index(lab) for lab in campaign.test.labels])
        metrics["test"] = audit_metrics(y, head.predict(campaign.X_test), seed=seed)
    return metrics


def train_if_due(store: Store, campaign: Campaign, run: int) -> RoundRow | None:
    """Train a new model if enough labels changed since the last one; return its round (stored)."""
    cfg = campaign.config
    labels = training_labels(store, campaign)
    last = store.last_round()
    assert last is not None, "register() first"
    changed = sum(labels.get(i) != last.train_labels.get(i) for i in set(labels) | set(last.train_labels))
    if not changed or (changed < cfg.loop.retrain_every and last.has_model):
        return None
    head = campaign.learner.fit(labels)
    if head is None:  # fewer than two classes labeled
        return None
    # The round is part of the version: labels can return to an earlier state (deleted annotations).
    version = campaign.learner.version(labels, f"round {last.round + 1}")
    metrics = _evaluate(head, campaign, audit_labels(store, campaign), cfg.loop.seed)
    rows = campaign.index
    stop_ids = [i for i in json.loads(store.get("stop_set") or "[]") if i in rows]
    stop_pred = head.predict(campaign.X[[rows[i] for i in stop_ids]]) if stop_ids else np.empty(0, np.int64)
    previous = store.last_round(trained=True)
    before = store.stop_predictions(previous.round) if previous is not None else None
    if before is not None and len(before) == len(stop_pred):
        metrics["stop_set_kappa"] = agreement(before, stop_pred)
    with store.tx():
        store.add_round(
            last.round + 1, version, cfg.loop.strategy, labels, metrics, head.to_arrays(), stop_pred
        )
        store.update_run(run, trained=version)
    return store.last_round()


def latest_head(store: Store) -> tuple[RoundRow, Head | None]:
    """The latest round and its head (None before the first model), reading one model's weights at most."""
    last = store.last_round()
    if last is None:
        raise StoreError(f"{store.path}: no rounds yet; run `labelloop sync` first")
    arrays = store.model(last.round) if last.has_model else None
    return last, None if arrays is None else Head.from_arrays(arrays)


def current_advice(store: Store, config: Config) -> list[Advice]:
    """The stopping criteria's verdicts from the ledger alone."""
    rounds = [r for r in store.rounds() if r.has_model]
    audit = [r.metrics["audit"] for r in rounds if r.metrics.get("audit", {}).get("n")]
    return stop_advice(
        sent=len(store.pushes()),
        budget=config.loop.budget,
        kappas=[r.metrics["stop_set_kappa"] for r in rounds if "stop_set_kappa" in r.metrics],
        audit_accuracy=[a["accuracy"] for a in audit],
        audit_n=audit[-1]["n"] if audit else 0,
        stabilizing_kappa=config.stop.stabilizing_kappa,
        stabilizing_rounds=config.stop.stabilizing_rounds,
        plateau_rounds=config.stop.plateau_rounds,
        plateau_delta=config.stop.plateau_delta,
        min_audit=config.stop.min_audit,
    )


def _audit_picks(
    store: Store, campaign: Campaign, round_: int, n: int, sent: dict[str, int], queried: set[str]
) -> list[QueryRow]:
    """The audit sample's share of the next ``n`` texts: random, sent without a prediction."""
    audit_all = store.ids_with_role("audit")
    audit_sent = sum(i in sent for i in audit_all)
    audit_left = [i for i in audit_all if i not in queried and i not in sent and i in campaign.index]
    quota = math.ceil(campaign.config.loop.audit_fraction * (len(sent) + n)) - audit_sent
    return [QueryRow(i, round_, "audit", "random-audit", None) for i in audit_left[: max(0, min(n, quota))]]


def _query_row(p: Pick, round_: int, strategy: str, version: str | None) -> QueryRow:
    return QueryRow(
        p.id,
        round_,
        "active",
        strategy,
        version if p.predicted is not None else None,
        p.score,
        p.cluster,
        p.predicted,
        p.confidence,
    )


def push_picks(
    learner: ActiveLearner,
    head: Head | None,
    known: Mapping[str, str],
    pushed_as: Mapping[str, str | None],
    n: int,
    version: str,
) -> list[Pick]:
    """``labelloop push``'s batch: the same :meth:`ActiveLearner.select` as :func:`select`, over the texts
    neither labeled nor in the project. Tasks an earlier push of this same ``version`` created stay
    candidates, so a push cut short by a crash re-selects the same texts when run again."""
    earlier = {i for i, v in pushed_as.items() if v != version}
    return learner.select(head, set(known) | earlier, n, labels=known, n_sent=len(earlier))


def prefill_cutoff(store: Store, campaign: Campaign) -> float:
    """The confidence from which the model's guess is pre-selected (above 1: nothing is). With ``"auto"``, read
    off the answers people gave without seeing the guess (pre-selected ones would flatter it)."""
    q = campaign.config.quality
    if q.prefill_confidence != "auto":
        return float(q.prefill_confidence)
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
    cutoff = prefill_threshold(conf, right, target=q.prefill_precision)
    return 1.01 if cutoff is None else cutoff


def _plan_overlap(store: Store, campaign: Campaign, rows: list[QueryRow]) -> list[QueryRow]:
    q = campaign.config.quality
    before = [r for r in store.queries() if r.kind == "active"]
    return plan_overlap(
        rows,
        share=q.overlap_share,
        people=q.annotators_per_task,
        threshold=prefill_cutoff(store, campaign),
        active_sent=len(before),
        double_sent=sum(r.overlap > 1 for r in before),
    )


def select(store: Store, campaign: Campaign, head: Head | None, model: RoundRow, n: int) -> list[QueryRow]:
    """Choose ``n`` texts (the audit sample's share first) and record them as pending; returns them."""
    sent = store.pushes()
    queried = {q.item_id for q in store.queries()}
    rows = _audit_picks(store, campaign, model.round, n, sent, queried)
    labels = training_labels(store, campaign)
    exclude = queried | set(labels) | set(store.resolutions()) | set(store.ids_with_role("audit")) | set(sent)
    strategy = campaign.config.loop.strategy if head is not None else "cold-start"
    picks = campaign.learner.select(head, exclude, n - len(rows), labels=model.train_labels, n_sent=len(sent))
    rows += [_query_row(p, model.round, strategy, model.model_version) for p in picks]
    rows = _plan_overlap(store, campaign, rows)
    if rows:
        with store.tx():
            store.add_queries(rows)
    return rows


def suspects_to_send(
    store: Store, campaign: Campaign, tasks: Mapping[str, tuple[int, int]], n: int, folds: int = 5
) -> list[Escalation]:
    """Up to ``n`` labels given in Label Studio that confident learning flags as probably wrong (out-of-fold
    probabilities of the head over every training label), most suspicious first; each text at most once.
    ``tasks`` maps our id to (task id, overlap)."""
    from collections import Counter

    from .quality import rank_label_errors

    labels = training_labels(store, campaign)
    counts = Counter(labels.values())
    ids = sorted(i for i, lab in labels.items() if counts[lab] >= folds)  # out-of-fold needs one per fold
    if len({labels[i] for i in ids}) < 2:
        return []
    classes, rows = campaign.classes, campaign.index
    y = np.array([classes.index(labels[i]) for i in ids])
    ranked = rank_label_errors(
        campaign.X[[rows[i] for i in ids]],
        y,
        len(classes),
        folds=folds,
        seed=campaign.config.loop.seed,
        C=campaign.config.model.C,
    )
    res = store.resolutions()
    seen = {e.item_id for e in store.escalations()}
    out = []
    for row in ranked.to_send():
        i = ids[row]
        r = res.get(i)
        if i in seen or i not in tasks or r is None or r.label is None:
            continue  # labels from the data file, or already re-checked
        out.append(
            Escalation(
                i,
                tasks[i][0],
                "suspect",
                max(tasks[i][1], sum(r.votes.values())) + 1,
                r.label,
                float(ranked.score[row]),
            )
        )
        if len(out) >= n:
            break
    return out
