"""The campaign service: a config's pool, featurized once (re-smoothed as its neighbour weight fades), and
the loop's decisions over its store.

Every driver of a long-running campaign (``sync`` from cron, ``serve`` from webhooks, ``status``,
``report``, ``predict``) goes through this module: :func:`load_campaign` reads and featurizes the
data, :func:`register` ties it to a state file, :func:`ingest` stores pulled annotations,
:func:`train_if_due` retrains when enough labels changed, :func:`select` records the next batch
as pending. The network stays in :mod:`labelloop.sync`; training and selection in
:class:`labelloop.learner.ActiveLearner`, which ``push`` and the notebook use too.

The campaign's inputs (:class:`Campaign`, :func:`load_campaign`) are in :mod:`labelloop.campaign_inputs`
and its registration in the state file (:func:`register`) in :mod:`labelloop.campaign_register`; both are
re-exported here, so drivers import the service from this one module.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence

import numpy as np

from .campaign_inputs import Campaign, config_encoder, load_campaign, text_hash
from .campaign_register import COLD_START_VERSION, check_features, register
from .config import Config
from .head import Classifier, Head
from .labels import split_labels
from .learner import ActiveLearner, Pick
from .review import Escalation, blind_answers, plan_overlap, prefill_threshold
from .stopping import Advice, agreement, audit_metrics, stop_advice
from .store import QueryRow, RoundRow, Store, StoreError

__all__ = [
    "Campaign",
    "load_campaign",
    "register",
    "check_features",
    "ingest",
    "training_labels",
    "train_if_due",
    "train_when_due",
    "select",
    "current_advice",
    "latest_head",
    "push_picks",
    "suspects_to_send",
    "prefill_cutoff",
    "COLD_START_VERSION",
    "text_hash",
    "config_encoder",
]


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


def _multilabel_metrics(head: Classifier, campaign: Campaign, X: np.ndarray, labels: Sequence[str]) -> dict:
    """Micro-F1 (the headline, with its bootstrap interval), macro-F1 and subset accuracy of the predicted
    sets against ``labels``."""
    from .multilabel import label_matrix, micro_f1_interval, multilabel_metrics

    d = campaign.config.label_delimiter
    Y = label_matrix([split_labels(lab, d) for lab in labels], campaign.classes).astype(bool)
    P = np.asarray(head.predict(X)).astype(bool)
    rng = np.random.default_rng(campaign.config.loop.seed)
    return {"n": len(labels), **multilabel_metrics(Y, P), "micro_f1_ci": list(micro_f1_interval(Y, P, rng))}


def _evaluate(head: Classifier, campaign: Campaign, labels: dict[str, str], seed: int) -> dict[str, object]:
    metrics: dict[str, object] = {}
    classes, rows = campaign.classes, campaign.index
    if campaign.config.multi_label:
        if labels:
            ids = sorted(labels)
            X = campaign.X[[rows[i] for i in ids]]
            metrics["audit"] = _multilabel_metrics(head, campaign, X, [labels[i] for i in ids])
        if campaign.test is not None and campaign.X_test is not None:
            test_labels = [lab or "" for lab in campaign.test.labels]
            metrics["test"] = _multilabel_metrics(head, campaign, campaign.X_test, test_labels)
        return metrics
    if labels:
        ids = sorted(labels)
        y = np.array([classes.index(labels[i]) for i in ids])
        metrics["audit"] = audit_metrics(y, head.predict(campaign.X[[rows[i] for i in ids]]), seed=seed)
    if campaign.test is not None and campaign.X_test is not None:
        y = np.array([classes.index(lab) for lab in campaign.test.labels])
        metrics["test"] = audit_metrics(y, head.predict(campaign.X_test), seed=seed)
    return metrics


def _asking_is_over(store: Store, campaign: Campaign) -> bool:
    """The budget is spent, every text was sent, or a stop rule ended the campaign: the last labels trickle
    in and no later round would take them, so each change retrains (the final model, which status, report
    and predict use)."""
    pushed = set(store.pushes())
    if len(pushed) >= campaign.config.loop.budget:
        return True
    if next((r.stopped for r in reversed(store.runs()) if r.finished_at), None):
        return True
    pool = campaign.pool
    return all(i in pushed for i, given in zip(pool.ids, pool.labels, strict=True) if given is None)


def train_if_due(store: Store, campaign: Campaign, run: int) -> RoundRow | None:
    """Train a new model if enough labels changed since the last one (``loop.retrain_every``; any change
    once the campaign asks nothing more); return its round (stored)."""
    return train_when_due(store, campaign, run)[0]


def train_when_due(store: Store, campaign: Campaign, run: int) -> tuple[RoundRow | None, bool]:
    """:func:`train_if_due`, and whether the retrain was a regular one (``retrain_every`` labels changed,
    or the first model) rather than a late label after the campaign stopped asking: only a regular one
    sends suspects back, or every re-check answered after the end would ask for more."""
    cfg = campaign.config
    labels = training_labels(store, campaign)
    last = store.last_round()
    assert last is not None, "register() first"
    changed = sum(labels.get(i) != last.train_labels.get(i) for i in set(labels) | set(last.train_labels))
    regular = changed >= cfg.loop.retrain_every or not last.has_model
    if not changed or (not regular and not _asking_is_over(store, campaign)):
        return None, False
    campaign = campaign.at_labels(len(labels))
    head = campaign.learner.fit(labels)
    if head is None:  # fewer than two classes labeled
        return None, False
    # The round is part of the version: labels can return to an earlier state (deleted annotations).
    version = campaign.learner.version(labels, f"round {last.round + 1}")
    metrics = _evaluate(head, campaign, audit_labels(store, campaign), cfg.loop.seed)
    rows = campaign.index
    stop_ids = [i for i in json.loads(store.get("stop_set") or "[]") if i in rows]
    stop_pred = head.predict(campaign.X[[rows[i] for i in stop_ids]]) if stop_ids else np.empty(0, np.int64)
    if cfg.multi_label:  # kappa over every (text, label) decision: the sets as yes/no per label
        stop_pred = stop_pred.astype(np.int64).ravel()
    previous = store.last_round(trained=True)
    before = store.stop_predictions(previous.round) if previous is not None else None
    if before is not None and len(before) == len(stop_pred):
        metrics["stop_set_kappa"] = agreement(before, stop_pred)
    with store.tx():
        store.add_round(
            last.round + 1, version, cfg.loop.strategy, labels, metrics, head.to_arrays(), stop_pred
        )
        store.update_run(run, trained=version)
    return store.last_round(), regular


def latest_head(store: Store) -> tuple[RoundRow, Classifier | None]:
    """The latest round and its head (None before the first model), reading one model's weights at most."""
    last = store.last_round()
    if last is None:
        raise StoreError(f"{store.path}: no rounds yet; run `labelloop sync` first")
    arrays = store.model(last.round) if last.has_model else None
    if arrays is None:
        return last, None
    if "multi_label" in arrays:
        from .multilabel import MultiLabelHead

        return last, MultiLabelHead.from_arrays(arrays)
    return last, Head.from_arrays(arrays)


def current_advice(store: Store, config: Config) -> list[Advice]:
    """The stopping criteria's verdicts from the ledger alone."""
    rounds = [r for r in store.rounds() if r.has_model]
    audit = [r.metrics["audit"] for r in rounds if r.metrics.get("audit", {}).get("n")]
    headline = "micro_f1" if config.multi_label else "accuracy"  # what the plateau rule watches
    return stop_advice(
        sent=len(store.pushes()),
        budget=config.loop.budget,
        kappas=[r.metrics["stop_set_kappa"] for r in rounds if "stop_set_kappa" in r.metrics],
        audit_accuracy=[a[headline] for a in audit],
        audit_n=audit[-1]["n"] if audit else 0,
        stabilizing_kappa=config.stop.stabilizing_kappa,
        stabilizing_rounds=config.stop.stabilizing_rounds,
        plateau_rounds=config.stop.plateau_rounds,
        plateau_delta=config.stop.plateau_delta,
        min_audit=config.stop.min_audit,
        metric="micro-F1" if config.multi_label else "accuracy",
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
    head: Classifier | None,
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
    cutoff = prefill_threshold(*blind_answers(store), target=q.prefill_precision)
    return 1.01 if cutoff is None else cutoff


def _plan_overlap(store: Store, campaign: Campaign, rows: list[QueryRow]) -> list[QueryRow]:
    q = campaign.config.quality
    before = [r for r in store.queries() if r.kind == "active"]
    return plan_overlap(
        rows,
        share=q.overlap_share,
        people=q.annotators_per_task,
        audit_people=q.audit_annotators,
        threshold=prefill_cutoff(store, campaign),
        active_sent=len(before),
        double_sent=sum(r.overlap > 1 for r in before),
    )


def select(
    store: Store, campaign: Campaign, head: Classifier | None, model: RoundRow, n: int
) -> list[QueryRow]:
    """Choose ``n`` texts (the audit sample's share first) and record them as pending; returns them."""
    sent = store.pushes()
    queried = {q.item_id for q in store.queries()}
    rows = _audit_picks(store, campaign, model.round, n, sent, queried)
    labels = training_labels(store, campaign)
    exclude = queried | set(labels) | set(store.resolutions()) | set(store.ids_with_role("audit")) | set(sent)
    strategy = campaign.config.loop.strategy if head is not None else "cold-start"
    learner = campaign.at_labels(len(model.train_labels)).learner  # the features ``head`` was trained on
    picks = learner.select(head, exclude, n - len(rows), labels=model.train_labels, n_sent=len(sent))
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

    from .label_errors import rank_label_errors

    if campaign.config.multi_label:  # confident learning ranks single labels; not yet for label sets
        return []
    labels = training_labels(store, campaign)
    counts = Counter(labels.values())
    ids = sorted(i for i, lab in labels.items() if counts[lab] >= folds)  # out-of-fold needs one per fold
    if len({labels[i] for i in ids}) < 2:
        return []
    classes, rows = campaign.classes, campaign.index
    y = np.array([classes.index(labels[i]) for i in ids])
    # The full neighbour weight (campaign.X, not at_labels): against wrong labels it measured best.
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
                max(tasks[i][1], r.answers) + 1,
                r.label,
                float(ranked.score[row]),
            )
        )
        if len(out) >= n:
            break
    return out
