"""A campaign tied to its state file: the identity it was made with (project, encoder, features, label set)
checked on every run, its texts registered, and on the first run the audit sample and stop set drawn.

Called by :func:`labelloop.campaign.register` (re-exported there) inside the sync's transaction.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import replace

import numpy as np

from .campaign_inputs import Campaign
from .config import Config
from .data import Pool
from .errors import DataError
from .store import Store, StoreError, now

__all__ = ["COLD_START_VERSION", "register", "check_features"]

COLD_START_VERSION = "labelloop-cold-start"


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
    check_features(store, campaign.config)
    _check_mode(store, campaign)
    stored_labels = store.get("labels")
    if stored_labels is not None and not campaign.classes == json.loads(stored_labels):
        raise StoreError(
            f"{store.path} was made for another label set ("
            f"{campaign.classes.difference(json.loads(stored_labels), 'the config', 'the state file')}"
            f"); a changed label set needs a new campaign (new state.path)"
        )


def _mode(multi_label: bool, delimiter: str) -> str:
    return f"multi-label {delimiter}" if multi_label else "single-label"


def _describe(mode: str) -> str:
    kind, _, delimiter = mode.partition(" ")
    return f"{kind} (label delimiter {delimiter!r})" if delimiter else kind


def _check_mode(store: Store, campaign: Campaign) -> None:
    """Single- or multi-label (and the delimiter label sets are stored with) is fixed at the first sync: the
    labels already given, the models and the project's labeling config all depend on it."""
    cfg = campaign.config
    if store.get("project_id") is None:
        return
    stored = store.get("mode") or "single-label"  # state files from before multi-label campaigns
    wanted = _mode(cfg.multi_label, cfg.label_delimiter)
    if stored != wanted:
        raise StoreError(
            f"{store.path} is a {_describe(stored)} campaign but the config makes it {_describe(wanted)}; a "
            f"campaign keeps its mode after its first sync: set multi_label / label_delimiter back or start a "
            f"new campaign (new state.path)"
        )


def check_features(store: Store, config: Config) -> None:
    """Refuse a config whose features differ from those the state file's models were trained on: every
    step that scores with a stored model (sync, predict, report, serve) calls it."""
    stored = store.get("features")
    wanted = str(config.model.smoothing)
    if stored is None or stored == wanted:
        return
    if stored == str(replace(config.model.smoothing, shrink=False)):
        raise StoreError(
            f"{store.path} was begun with one neighbour weight all along ({stored}); its models "
            f"were trained that way, so keep it: set neighbour_weight_shrinks = false under [model]"
        )
    raise StoreError(
        f"{store.path} was trained on features {stored}, the config now gives "
        f"{wanted} ([model] neighbours / neighbour_weight / neighbour_weight_shrinks); its "
        f"models cannot score the new features, so set them back or start a new campaign (new state.path)"
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
        if cfg.multi_label:  # absent: single-label, as every state file from before multi-label campaigns
            store.set("mode", _mode(True, cfg.label_delimiter))
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
