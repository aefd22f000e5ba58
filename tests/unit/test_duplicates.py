"""Exact duplicate texts without an id column: one item, asked once, its label counted for every copy."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from labelloop import report
from labelloop.campaign import Campaign, register, select, training_labels
from labelloop.cli import app
from labelloop.config import load_config
from labelloop.data import LabelConflictWarning, content_id, load_pool
from labelloop.labelstudio import AnnotationRecord
from labelloop.status import coverage, summary
from labelloop.store import Store

LABELS = ["billing", "bug", "other"]
REFUND = "refund please"


def _write(tmp_path, rows: list[str]) -> object:
    (tmp_path / "pool.csv").write_text("text,label\n" + "".join(r + "\n" for r in rows))
    path = tmp_path / "labelloop.toml"
    path.write_text(f'labels = {json.dumps(LABELS)}\n[data]\npath = "pool.csv"\n[labelstudio]\nproject = "p"\n'
                    f'[loop]\nbudget = 40\naudit_fraction = 0\n[state]\npath = "s.db"\n')
    return load_config(path)


def _campaign(config) -> Campaign:
    pool = load_pool(config.data.path, label_column="label")
    X = np.random.default_rng(0).normal(size=(len(pool), 8))
    return Campaign(config, pool, X, "enc")


def _label(store: Store, item: str, ann: int, label: str) -> None:
    with store.tx():
        store.add_records(1, [AnnotationRecord("created", item, 7, ann, ann, label)], None)


@pytest.fixture
def dup_campaign(tmp_path):
    """20 distinct texts in 24 rows: 'refund please' four times, 'card lost' twice, none labeled."""
    rows = [REFUND + ",", *[f"text {i}," for i in range(10)], REFUND + ",", "card lost,", REFUND + ",",
            *[f"more {i}," for i in range(8)], "card lost,", REFUND + ","]
    config = _write(tmp_path, rows)
    campaign = _campaign(config)
    store = Store.open(config.state.path)
    with store.tx():
        register(store, campaign, project_id=7)
    yield config, campaign, store
    store.close()


def test_each_distinct_text_is_selected_once_however_many_copies(dup_campaign) -> None:
    _, campaign, store = dup_campaign
    assert len(campaign.pool) == 20 and campaign.pool.n_rows == 24
    model = store.last_round()
    picked = [q.item_id for q in select(store, campaign, None, model, 40)]
    assert len(picked) == len(set(picked)) == 20  # the whole pool, one task per distinct text
    assert picked.count(content_id(REFUND)) == 1


def test_status_counts_the_label_once_and_says_how_many_rows_it_covers(dup_campaign) -> None:
    config, _, store = dup_campaign
    _label(store, content_id(REFUND), 1, "billing")
    _label(store, content_id("text 0"), 2, "bug")
    s = summary(config)
    assert s["labeled"] == 2  # questions answered
    assert s["rows"] == {"items": 20, "rows": 24, "labeled": 5}  # 4 copies + 1
    assert coverage(s) is not None and coverage(s).startswith("2 label(s) cover 5 data row(s)")
    result = CliRunner().invoke(app, ["status", "--config", str(config.state.path.parent / "labelloop.toml")])
    assert result.exit_code == 0, result.output
    assert "2 label(s) cover 5 data row(s)" in " ".join(result.output.split())


def test_a_pool_without_copies_says_nothing_about_rows(tmp_path) -> None:
    config = _write(tmp_path, ["a,", "b,", "c,"])
    with Store.open(config.state.path) as store, store.tx():
        register(store, _campaign(config), project_id=7)
    s = summary(config)
    assert s["rows"] == {"items": 3, "rows": 3, "labeled": 0} and coverage(s) is None


def test_copy_counts_follow_the_data_file_between_syncs(dup_campaign, tmp_path) -> None:
    config, _, store = dup_campaign
    assert store.copies() == {content_id(REFUND): 4, content_id("card lost"): 2}
    lines = (tmp_path / "pool.csv").read_text().splitlines()
    (tmp_path / "pool.csv").write_text("\n".join([ln for ln in lines if ln != "card lost,"] + ["card lost,",
                                                                                            REFUND + ","]) + "\n")
    with store.tx():
        register(store, _campaign(config), project_id=7)
    assert store.copies() == {content_id(REFUND): 5}  # 'card lost' now stands for one row again
    assert store.row_counts() == (20, 24)


def test_conflicting_labels_in_the_data_are_reported_in_status_and_the_majority_trains(tmp_path) -> None:
    config = _write(tmp_path, [f"{REFUND},billing", f"{REFUND},bug", f"{REFUND},billing", "a,other", "b,"])
    with pytest.warns(LabelConflictWarning, match=r"'refund please' \(billing ×2, bug ×1; kept billing\)"):
        campaign = _campaign(config)
    with Store.open(config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
            store.update_run(store.start_run(), finished_at="2026-11-29T10:00:00+00:00", queue_after=0)
        assert training_labels(store, campaign)[content_id(REFUND)] == "billing"
    s = summary(config)
    assert s["data_conflicts"]["n"] == 1
    result = CliRunner().invoke(app, ["status", "--config", str(config.state.path.parent / "labelloop.toml")])
    out = " ".join(result.output.split())
    assert result.exit_code == 0, result.output
    assert "1 text(s) appear several times with different labels" in out and "kept billing" in out
    assert "correct the label column" in out  # and a next step says what to do


def test_the_report_summary_states_the_rows_covered_and_escapes_conflicting_texts(tmp_path, monkeypatch) -> None:
    config = _write(tmp_path, ["<b>x</b>,billing", "<b>x</b>,bug", "<b>x</b>,bug", "y,", "y,"])
    with pytest.warns(LabelConflictWarning):
        campaign = _campaign(config)
    with Store.open(config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
        _label(store, content_id("y"), 1, "other")
    monkeypatch.setattr(report, "load_campaign", lambda cfg: campaign)
    html = report.write_report(config, tmp_path / "r.html").read_text()
    assert "1 label(s) cover 2 data row(s)" in html
    assert "&lt;b&gt;x&lt;/b&gt;" in html and "<b>x</b>" not in html


def test_simulate_on_a_csv_with_copies_and_no_id_column_spends_its_budget_on_distinct_texts(
    tmp_path, monkeypatch, demo, embedding_cache, demo_embedded
) -> None:
    import pandas as pd

    train, test = demo
    texts, labels = list(train.texts), list(train.labels)
    copies = {k: 1 + k % 3 for k in range(30)}  # the first 30 texts appear 2 or 3 times
    rows = [(t, lab) for k, (t, lab) in enumerate(zip(texts, labels, strict=True)) for _ in range(copies.get(k, 1))]
    rows.append((texts[1], next(lab for lab in train.label_set if lab != labels[1])))  # one conflicting copy
    order = np.random.default_rng(0).permutation(len(rows))
    pd.DataFrame([rows[i] for i in order], columns=["text", "label"]).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"text": test.texts, "label": test.labels}).to_csv(tmp_path / "test.csv", index=False)
    monkeypatch.setenv("LABELLOOP_CACHE_DIR", str(embedding_cache))
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, ["simulate", "--train", str(tmp_path / "train.csv"), "--test",
                                      str(tmp_path / "test.csv"), "--strategy", "random", "--initial", "100",
                                      "--batch-size", "200", "--budget", "100000", "--out", str(out)])
    assert result.exit_code == 0, result.output
    res = json.loads(out.read_text())
    assert res["n_pool"] == len(texts) and res["n_pool_rows"] == len(rows)  # 30 texts collapse, copies kept
    last = res["rounds"][-1]
    assert last["n_labeled"] == len(texts)  # the budget is capped at the distinct texts: each asked once
    assert last["rows_covered"] == len(rows)
    assert all(r["n_labeled"] <= r["rows_covered"] for r in res["rounds"])
    said = " ".join(result.output.split())
    assert f"Pool {len(texts)} texts in {len(rows)} rows" in said
    assert "warning: " in said and "1 text(s) appear several times with different labels" in said
    assert "×2" in said and "×1; kept" in said


def test_predict_writes_a_row_for_every_copy(tmp_path, demo, demo_embedded, embedding_cache) -> None:
    import pandas as pd

    from labelloop.data import demo_paths
    from labelloop.features import DEFAULT_SMOOTHING
    from labelloop.head import Head

    train, test = demo
    classes = train.label_set
    head = Head(len(classes)).fit(DEFAULT_SMOOTHING(demo_embedded[0]), train.label_array(classes))
    config = tmp_path / "labelloop.toml"
    config.write_text(f'labels = {json.dumps(classes)}\n[data]\npath = "{demo_paths()[0]}"\nid_column = "id"\n'
                      f'[labelstudio]\nproject = "p"\n[model]\ncache_dir = "{embedding_cache}"\n'
                      f'[state]\npath = "state.db"\n')
    with Store.open(tmp_path / "state.db") as store, store.tx():
        store.add_round(1, "m-1", "margin-kmeans", {}, {}, head.to_arrays(), None)
    texts = [test.texts[k] for k in (0, 1, 0, 2, 0, 1)]
    pd.DataFrame({"text": texts}).to_csv(tmp_path / "new.csv", index=False)
    result = CliRunner().invoke(app, ["predict", "--config", str(config), "--input", str(tmp_path / "new.csv"),
                                      "--out", str(tmp_path / "pred.csv")])
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "pred.csv", dtype=str)
    assert out["id"].tolist() == [content_id(t) for t in texts]  # one row per input row, copies included
    assert out.groupby("id")["label"].nunique().max() == 1  # every copy gets its text's label


def test_a_state_file_from_before_copies_is_migrated_and_each_item_stands_for_one_row(tmp_path) -> None:
    import sqlite3

    from labelloop.store import MIGRATIONS

    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for script in MIGRATIONS[:3]:
        conn.executescript(script)
    conn.execute("INSERT INTO items VALUES ('a', 'h', 'pool.csv', 'pool', '2026-11-01T00:00:00+00:00')")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    with Store.open(path) as store:
        assert store.copies() == {} and store.row_counts() == (1, 1)
        with store.tx():
            store.set_copies({"a": 3})
        assert store.copies() == {"a": 3} and store.row_counts() == (1, 3)


def test_sync_warns_about_conflicting_copies_when_they_first_appear_or_change_not_every_run(tmp_path) -> None:
    from labelloop.sync_steps import SyncStep

    config = _write(tmp_path, [f"{REFUND},billing", f"{REFUND},bug", f"{REFUND},billing", "a,other"])
    with pytest.warns(LabelConflictWarning):
        campaign = _campaign(config)

    def warnings_of_a_run(store: Store, campaign: Campaign) -> list[str]:
        with store.tx():
            register(store, campaign, project_id=7)
        step = SyncStep(store, None, 7, campaign, lambda s: None)  # type: ignore[arg-type]  # no network here
        step.data_conflicts()
        return step.report.warnings

    with Store.open(config.state.path) as store:
        first = warnings_of_a_run(store, campaign)
        assert len(first) == 1 and "'refund please' (billing ×2, bug ×1; kept billing)" in first[0]
        assert warnings_of_a_run(store, campaign) == []  # the same conflicts: said once (status keeps them)
        (tmp_path / "pool.csv").write_text("text,label\n" + f"{REFUND},bug\n" * 2 + f"{REFUND},billing\n")
        with pytest.warns(LabelConflictWarning):
            changed = _campaign(config)
        assert "kept bug" in warnings_of_a_run(store, changed)[0]
