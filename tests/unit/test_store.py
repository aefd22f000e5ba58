"""The state file: atomic steps, schema versioning, models stored without pickle."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from labelloop.head import Head
from labelloop.labelstudio import AnnotationRecord
from labelloop.store import SCHEMA_VERSION, QueryRow, Store, StoreError


def rec(event: str, item: str, ann: int, label: str | None, **kw) -> AnnotationRecord:
    return AnnotationRecord(event=event, id=item, project=1, task_id=ann * 10, annotation_id=ann, label=label, **kw)


def test_a_new_file_gets_the_current_schema(tmp_path) -> None:
    with Store.open(tmp_path / "s.db") as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    Store.open(tmp_path / "s.db").close()  # reopening migrates nothing and keeps it


def test_a_step_that_fails_midway_leaves_nothing_behind(tmp_path) -> None:
    store = Store.open(tmp_path / "s.db")
    with store.tx():
        store.add_items([("a", "h1", "pool.csv", "pool")])
    with pytest.raises(RuntimeError), store.tx():
        store.add_items([("b", "h2", "pool.csv", "pool")])
        store.add_records(1, [rec("created", "b", 1, "bug")], "2026-11-24T10:00:00+00:00")
        raise RuntimeError("killed")
    assert set(store.items()) == {"a"} and store.records() == [] and store.get("scanned_at") is None


def test_resolved_labels_follow_updates_deletions_and_votes(tmp_path) -> None:
    store = Store.open(tmp_path / "s.db")
    with store.tx():
        store.add_records(1, [rec("created", "a", 1, "bug"), rec("created", "b", 2, None, skipped=True),
                              rec("created", "c", 3, "bug", annotator=1), rec("created", "c", 4, "billing",
                                                                              annotator=2)], None)
    with store.tx():
        store.add_records(2, [rec("updated", "a", 1, "billing", previous_label="bug"),
                              rec("deleted", "c", 4, None)], "2026-11-24T10:00:00+00:00")
    res = store.resolutions()
    assert res["a"].label == "billing" and not res["a"].disagreement
    assert res["b"].label is None and res["b"].skipped == 1
    assert res["c"].label == "bug" and res["c"].votes == {"bug": 1}
    assert set(store.cursor().annotations) == {1, 2, 3}  # the cursor is rebuilt from the records
    assert store.cursor().scanned_at == "2026-11-24T10:00:00+00:00"


def test_a_model_round_trips_as_arrays(tmp_path) -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 6)), np.arange(40) % 4
    head = Head(5).fit(X, y)
    with Store.open(tmp_path / "s.db") as store:
        with store.tx():
            store.add_round(1, "m-1", "margin-kmeans", {"a": "bug"}, {"audit": {"n": 0}}, head.to_arrays(),
                            np.array([1, 2, 3]))
        row = store.last_round()
        assert row is not None and row.train_labels == {"a": "bug"} and row.has_model
        assert store.stop_predictions(row.round).tolist() == [1, 2, 3]
        np.testing.assert_allclose(Head.from_arrays(store.model(row.round)).predict_proba(X), head.predict_proba(X))


def test_pending_queries_become_pushes_once(tmp_path) -> None:
    store = Store.open(tmp_path / "s.db")
    with store.tx():
        store.add_queries([QueryRow(i, 0, "active", "cold-start", None, 0.5, 2) for i in "ab"])
    with store.tx():
        store.mark_pushed({"a": 11})
    assert [q.item_id for q in store.queries("pending")] == ["b"]
    with store.tx():
        store.mark_pushed({"a": 11, "b": 12})
    assert store.pushes() == {"a": 11, "b": 12} and store.queries("pending") == []


def test_files_that_are_not_our_state_are_refused_untouched(tmp_path) -> None:
    newer = tmp_path / "newer.db"
    with sqlite3.connect(newer) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer labelloop"):
        Store.open(newer)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    before = other.read_bytes()
    with pytest.raises(StoreError, match="not a labelloop state file"):
        Store.check(other)
    assert other.read_bytes() == before
    with pytest.raises(StoreError, match="no state yet"):
        Store.open_existing(tmp_path / "missing.db")


def test_a_file_from_before_empty_counts_gets_them_from_its_live_annotations(tmp_path) -> None:
    """Schema 5 keeps per text how many submissions had no choice (Label Studio counts them toward overlap).
    A file written before learns them from its own events: a later choice or a deletion undoes one."""
    path = tmp_path / "s.db"
    with Store.open(path) as store, store.tx():
        store.add_records(1, [rec("created", "a", 1, "bug"), rec("created", "a", 2, None, skipped=True, empty=True),
                              rec("created", "b", 3, None, skipped=True, empty=True),
                              rec("updated", "b", 3, "bug"),  # the empty answer got its choice later
                              rec("created", "c", 4, None, skipped=True, empty=True),
                              rec("deleted", "c", 4, None),
                              rec("created", "d", 5, None, skipped=True)], None)  # a plain skip
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE labels DROP COLUMN empty")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        res = store.resolutions()
    assert {i: r.empty for i, r in res.items()} == {"a": 1, "b": 0, "d": 0}
    assert res["a"].answers == 2 and res["b"].answers == 1
