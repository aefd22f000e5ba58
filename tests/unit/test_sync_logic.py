"""The sync job's bookkeeping without a server: what trains the model, when it retrains, what the store refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelloop.campaign import Campaign, register, train_if_due, training_labels
from labelloop.config import load_config
from labelloop.data import Pool
from labelloop.labelstudio import AnnotationRecord, Connector, LabelStudioError
from labelloop.store import Store, StoreError

LABELS = ["billing", "bug", "other"]


@pytest.fixture
def setup(tmp_path):
    path = tmp_path / "labelloop.toml"
    (tmp_path / "pool.csv").write_text("id,text\nx,y\n")
    path.write_text(f'labels = {json.dumps(LABELS)}\n[data]\npath = "pool.csv"\n[labelstudio]\nproject = "p"\n'
                    f'[loop]\nretrain_every = 2\nbudget = 40\naudit_fraction = 0.1\n[state]\npath = "s.db"\n')
    config = load_config(path)
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 8))
    ids = [f"t{i}" for i in range(30)]
    data_labels = [LABELS[i % 3] if i < 6 else None for i in range(30)]  # t0..t5 labeled in the file
    campaign = Campaign(config, Pool(ids, [f"text {i}" for i in ids], data_labels, "pool.csv"), X, "enc-A")
    store = Store.open(config.state.path)
    with store.tx():
        register(store, campaign, project_id=7)
    yield campaign, store
    store.close()


def label(store: Store, item: str, ann: int, lab: str | None, event: str = "created") -> None:
    with store.tx():
        store.add_records(1, [AnnotationRecord(event, item, 7, ann, ann, lab)], None)


def test_the_audit_sample_never_trains_even_with_labels_in_the_data(setup) -> None:
    campaign, store = setup
    audit = store.ids_with_role("audit")
    assert len(audit) == 3  # 10 % of what can be sent (24 unlabeled texts < budget 40), drawn among them
    pool = campaign.pool
    relabeled = Pool(pool.ids, pool.texts, [lab or ("bug" if i in audit else None)
                                            for i, lab in zip(pool.ids, pool.labels, strict=True)], pool.source)
    label(store, audit[0], 1, "other")
    training = training_labels(store, Campaign(campaign.config, relabeled, campaign.X, "enc-A"))
    assert not set(audit) & set(training) and set(training) == {f"t{i}" for i in range(6)}


def test_a_relabel_counts_once_and_labels_that_return_to_an_earlier_state_still_train(setup) -> None:
    campaign, store = setup
    first = train_if_due(store, campaign, run=1)  # the data's 6 labels: the first model
    assert first is not None and first.round == 1
    free = [i for i in campaign.pool.ids[6:] if i not in store.ids_with_role("audit")]
    label(store, free[0], 1, "bug")
    assert train_if_due(store, campaign, run=2) is None  # 1 change < retrain_every = 2
    label(store, free[0], 1, "other", event="updated")
    assert train_if_due(store, campaign, run=2) is None  # a relabel is still one changed text
    label(store, free[1], 2, "bug")
    second = train_if_due(store, campaign, run=2)
    assert second is not None and second.round == 2
    label(store, free[0], 1, None, event="deleted")
    label(store, free[1], 2, None, event="deleted")  # back to exactly the first model's labels
    third = train_if_due(store, campaign, run=3)
    assert third is not None and third.train_labels == first.train_labels
    assert third.model_version != first.model_version


def test_a_different_encoder_or_project_is_refused(setup) -> None:
    campaign, store = setup
    other = Campaign(campaign.config, campaign.pool, campaign.X, "enc-B")
    with pytest.raises(StoreError, match="encoder"), store.tx():
        register(store, other, project_id=7)
    with pytest.raises(StoreError, match="belongs to Label Studio project 7"), store.tx():
        register(store, campaign, project_id=8)


def test_changed_feature_settings_are_refused_because_stored_models_score_features(setup) -> None:
    campaign, store = setup
    assert store.get("features") == "knn-smooth(k=6, weight=0.5, shrinking)"
    config = campaign.config.model_copy(update={"model": campaign.config.model.model_copy(update={"neighbours": 0})})
    raw = Campaign(config, campaign.pool, campaign.X, "enc-A")
    with pytest.raises(StoreError, match=r"knn-smooth\(k=6, weight=0.5, shrinking\).*now gives none"), store.tx():
        register(store, raw, project_id=7)


def test_a_campaign_begun_with_one_neighbour_weight_is_told_how_to_keep_it(setup) -> None:
    campaign, store = setup
    with store.tx():
        store.set("features", "knn-smooth(k=6, weight=0.5)")  # as campaigns begun before the shrinking weight
    with pytest.raises(StoreError, match="neighbour_weight_shrinks = false"), store.tx():
        register(store, campaign, project_id=7)
    model = campaign.config.model.model_copy(update={"neighbour_weight_shrinks": False})
    kept = Campaign(campaign.config.model_copy(update={"model": model}), campaign.pool, campaign.X, "enc-A")
    with store.tx():
        register(store, kept, project_id=7)


def test_the_read_only_check_copes_with_odd_characters_in_the_path(tmp_path) -> None:
    folder = tmp_path / "camp#1 ?x"
    folder.mkdir()
    with Store.open(folder / "s.db") as store, store.tx():
        store.set("project_id", "5")
    assert Store.check(folder / "s.db") == "5"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["camp#1 ?x"]  # nothing created beside it


def test_a_password_in_the_url_never_reaches_a_message() -> None:
    ls = Connector("http://alice:hunter2@127.0.0.1:9", "the-api-key", retries=0)
    with pytest.raises(LabelStudioError) as err:
        ls.find_project("anything")
    assert "hunter2" not in str(err.value) and "the-api-key" not in str(err.value)
    assert "http://127.0.0.1:9" in str(err.value)
