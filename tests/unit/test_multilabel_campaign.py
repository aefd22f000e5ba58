"""Multi-label campaigns: the config, the labeling config, answers as label sets, and the campaign service
training a one-vs-rest head and sending predicted sets (no server: Label Studio is faked at its payloads)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelloop.campaign import latest_head, register, select, train_if_due, training_labels
from labelloop.campaign_inputs import Campaign
from labelloop.config import ConfigError, example_config, load_config, parse_config
from labelloop.data import Pool
from labelloop.labels import join_labels, split_labels
from labelloop.labelstudio import AnnotationRecord, ChoicesConfig, LabelSetMismatchError, PushItem
from labelloop.labelstudio.errors import LabelStudioInputError, UnknownChoiceError
from labelloop.labelstudio.labelconfig import check_mode, labeling_config
from labelloop.labelstudio.labelconfig import parse_config as parse_xml
from labelloop.labelstudio.payloads import ProjectInfo, annotation_label, check_push, prediction_payload
from labelloop.learner import ActiveLearner
from labelloop.multilabel import MultiLabelHead, set_guess
from labelloop.store import QueryRow, Store, StoreError
from labelloop.sync_steps import SyncStep

LABELS = ["billing", "bug", "other", "refund"]


# -- config -------------------------------------------------------------------------------------------

def test_init_with_multi_label_writes_a_config_that_reads_as_multi_label() -> None:
    multi = parse_config(example_config(labels=LABELS, data="t.csv", project="p", multi_label=True), "x")
    single = parse_config(example_config(labels=LABELS, data="t.csv", project="p"), "x")
    assert multi.multi_label and multi.label_delimiter == "|"
    assert not single.multi_label


def test_a_label_holding_the_delimiter_is_refused_in_one_line() -> None:
    text = 'labels = ["a|b", "c"]\nmulti_label = true\n[data]\npath = "t.csv"\n[labelstudio]\nproject = "p"\n'
    with pytest.raises(ConfigError, match=r"contain the label delimiter '\|'") as err:
        parse_config(text, "x.toml")
    assert "\n" not in str(err.value)
    assert parse_config(text.replace("multi_label = true", 'multi_label = true\nlabel_delimiter = ";"'), "x")


def test_a_single_label_strategy_or_a_blank_delimiter_is_refused_for_multi_label() -> None:
    base = 'labels = ["a", "b"]\nmulti_label = true\n{extra}[data]\npath = "t.csv"\n[labelstudio]\nproject = "p"\n'
    with pytest.raises(ConfigError, match="single-label only"):
        parse_config(base.format(extra="") + '[loop]\nstrategy = "entropy"\n', "x")
    with pytest.raises(ConfigError, match="label delimiter must be"):
        parse_config(base.format(extra='label_delimiter = " "\n'), "x")
    assert parse_config(base.format(extra="") + '[loop]\nstrategy = "random"\n', "x").loop.strategy == "random"


# -- label sets as one stored label -------------------------------------------------------------------

def test_a_label_set_has_one_canonical_string_whatever_the_order() -> None:
    assert join_labels(["refund", "bug", "refund"]) == "bug|refund"
    assert join_labels(["b", "a"], ";") == "a;b"
    assert split_labels("refund|bug") == split_labels(" bug | refund |") == {"bug", "refund"}


# -- the labeling config ------------------------------------------------------------------------------

def test_a_multi_label_project_is_created_with_multiple_choice_and_read_back_as_such() -> None:
    xml = labeling_config(LABELS, multiple=True)
    assert 'choice="multiple"' in xml
    parsed = parse_xml(xml, delimiter=";")
    assert parsed.multiple and parsed.delimiter == ";" and parsed.labels == tuple(LABELS)
    assert not parse_xml(labeling_config(LABELS)).multiple


def test_a_project_of_the_other_mode_is_refused_naming_both() -> None:
    with pytest.raises(LabelSetMismatchError, match=r'multi-label \(choice="multiple"\) but the campaign is '
                                                    r'single-label'):
        check_mode(ChoicesConfig(tuple(LABELS), multiple=True), False, "project 3 'x'")
    check_mode(ChoicesConfig(tuple(LABELS), multiple=True), True, "project 3 'x'")


# -- answers and predictions ----------------------------------------------------------------------------

MULTI = ChoicesConfig(tuple(LABELS), multiple=True)


def _ann(*choices: str, cancelled: bool = False) -> dict:
    result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": list(choices)}}]
    return {"id": 5, "result": result if choices else [], "was_cancelled": cancelled}


def test_an_answer_with_several_choices_is_one_canonical_label_and_an_empty_one_none() -> None:
    task = {"id": 1, "data": {"labelloop_id": "t1"}}
    assert annotation_label(_ann("refund", "bug"), MULTI, task) == "bug|refund"
    assert annotation_label(_ann("other"), MULTI, task) == "other"
    assert annotation_label(_ann(), MULTI, task) is None
    assert annotation_label(_ann("bug", cancelled=True), MULTI, task) is None
    with pytest.raises(UnknownChoiceError, match="'nope', not in the label set"):
        annotation_label(_ann("bug", "nope"), MULTI, task)
    with pytest.raises(UnknownChoiceError, match="labelloop needs one"):  # single-choice: unchanged
        annotation_label(_ann("bug", "refund"), ChoicesConfig(tuple(LABELS)), task)


def test_a_predicted_set_is_pre_selected_as_several_choices() -> None:
    pred = prediction_payload(PushItem("t1", "text", "bug|refund", 0.7), MULTI, "m-1")
    assert pred["result"][0]["value"] == {"choices": ["bug", "refund"]}
    blind = prediction_payload(PushItem("t1", "text", "bug|refund", 0.7, prefill=False), MULTI, "m-1")
    assert blind["result"] == []
    info = ProjectInfo(3, "p", MULTI)
    check_push(info, [PushItem("t1", "text", "bug|refund", 0.7)], "m-1")
    with pytest.raises(LabelStudioInputError, match=r"\['nope'\]"):
        check_push(info, [PushItem("t1", "text", "bug|nope", 0.7)], "m-1")


def test_the_guess_is_every_label_at_half_or_more_or_the_top_one_with_its_least_sure_member() -> None:
    assert set_guess(np.array([0.9, 0.2, 0.6, 0.1]), LABELS, "|") == ("billing|other", 0.6)
    assert set_guess(np.array([0.1, 0.3, 0.2, 0.05]), LABELS, "|") == ("bug", 0.3)


# -- the head's arrays ------------------------------------------------------------------------------------

def test_a_stored_multi_label_head_gives_the_same_probabilities() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8))
    Y = np.zeros((40, 4), dtype=bool)
    Y[:, 0] = X[:, 0] > 0
    Y[:, 1] = X[:, 1] > 0.3
    Y[:, 2] = True  # every text: a constant label, no model
    head = MultiLabelHead(4).fit(X, Y)
    again = MultiLabelHead.from_arrays(head.to_arrays())
    np.testing.assert_allclose(again.predict_proba(X), head.predict_proba(X), rtol=1e-12)
    assert (again.predict_proba(X)[:, 2] == 1).all() and (again.predict_proba(X)[:, 3] == 0).all()


# -- the campaign service ---------------------------------------------------------------------------------

def make_campaign(tmp_path, multi: bool = True, n: int = 90, prefill: str = '"auto"') -> Campaign:
    path = tmp_path / "labelloop.toml"
    (tmp_path / "pool.csv").write_text("id,text\nx,y\n")
    path.write_text(f'labels = {json.dumps(LABELS)}\nmulti_label = {json.dumps(multi)}\n'
                    '[data]\npath = "pool.csv"\n[labelstudio]\nproject = "p"\n'
                    '[loop]\naudit_fraction = 0.1\nretrain_every = 1\nqueue_target = 10\nbudget = 500\n'
                    '[stop]\non = ["budget"]\nstop_set_size = 10\n[state]\npath = "s.db"\n'
                    f'[quality]\nprefill_confidence = {prefill}\n')
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 16))
    X = centres[np.arange(n) % 4] + centres[(np.arange(n) // 4) % 4] + 0.4 * rng.normal(size=(n, 16))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ids = [f"t{i:03d}" for i in range(n)]
    return Campaign(load_config(path), Pool(ids, [f"text {i}" for i in ids], [None] * n, "pool.csv"),
                    X.astype(np.float32), "enc-A")


def truth_of(campaign: Campaign) -> dict[str, str]:
    """Each text's set: the label of its centre, plus the second centre's when they differ."""
    return {i: join_labels({LABELS[r % 4], LABELS[(r // 4) % 4]}) for r, i in enumerate(campaign.pool.ids)}


def test_a_multi_label_campaign_trains_on_sets_and_sends_predicted_sets(tmp_path) -> None:
    campaign = make_campaign(tmp_path)
    truth = truth_of(campaign)
    with Store.open(campaign.config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
        audit = store.ids_with_role("audit")
        cold = select(store, campaign, None, store.last_round(), 30)
        answered = [q.item_id for q in cold] + audit
        with store.tx():
            store.add_records(1, [AnnotationRecord("created", i, 7, 100 + k, k, truth[i])
                                  for k, i in enumerate(answered)], None)
        model = train_if_due(store, campaign, run=1)
        assert model is not None and model.has_model
        assert training_labels(store, campaign) == {i: truth[i] for i in answered if i not in audit}
        assert any("|" in lab for lab in model.train_labels.values())  # sets, stored as one label each
        audit_m = model.metrics["audit"]
        assert audit_m["n"] == len(audit) and set(audit_m) >= {"micro_f1", "macro_f1", "subset_accuracy"}
        assert "accuracy" not in audit_m
        assert audit_m["micro_f1"] > 0.5  # well-separated sets: the head must have learnt something
        _, head = latest_head(store)
        assert isinstance(head, MultiLabelHead)
        np.testing.assert_allclose(head.predict_proba(campaign.X), campaign.learner.fit(model.train_labels)
                                   .predict_proba(campaign.X), rtol=1e-5)
        picks = select(store, campaign, head, model, 8)
    active = [q for q in picks if q.kind == "active"]
    assert len(picks) == 8 and len(active) >= 6 and all(q.strategy == "margin-kmeans" for q in active)
    assert all(q.predicted is None for q in picks if q.kind == "audit")  # the audit stays blind
    assert any("|" in q.predicted for q in active)  # some guesses are sets of several labels
    for q in active:
        members = split_labels(q.predicted)
        assert members and members <= set(LABELS)
        p = head.predict_proba(campaign.X[[campaign.index[q.item_id]]])[0]
        assert q.confidence == pytest.approx(min(p[LABELS.index(m)] for m in members))


def test_waiting_tasks_get_the_predicted_set_pre_selected_but_audit_and_double_tasks_stay_blind(tmp_path) -> None:
    campaign = make_campaign(tmp_path, prefill="0.0")  # every guess confident enough: what stays blind is policy
    truth = truth_of(campaign)
    with Store.open(campaign.config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
        audit = store.ids_with_role("audit")
        answered = [q.item_id for q in select(store, campaign, None, store.last_round(), 30)]
        with store.tx():
            store.add_records(1, [AnnotationRecord("created", i, 7, 100 + k, k, truth[i])
                                  for k, i in enumerate(answered)], None)
        model = train_if_due(store, campaign, run=1)
        assert model is not None
        free = [i for i in campaign.pool.ids if i not in answered and i not in audit][:2]
        with store.tx():
            store.add_queries([QueryRow(free[0], 1, "active", "margin-kmeans", model.model_version, overlap=2)])
        items = SyncStep(store, None, 7, campaign, lambda step: None)._refreshed([audit[0], *free])  # type: ignore[arg-type]
    blind_audit, double, single = items
    assert blind_audit.label is None and blind_audit.shown is None and blind_audit.score == 0.0
    assert double.label is not None and double.shown is None  # scored, never shown: agreement unanchored
    head = campaign.learner.fit(model.train_labels)
    assert head is not None
    p = head.predict_proba(campaign.X[[campaign.index[free[1]]]])[0]
    assert single.shown == set_guess(p, LABELS, "|")[0] and single.score == pytest.approx(set_guess(p, LABELS, "|")[1])


def test_a_campaign_keeps_its_mode_after_its_first_sync(tmp_path) -> None:
    multi = make_campaign(tmp_path)
    with Store.open(multi.config.state.path) as store:
        with store.tx():
            register(store, multi, project_id=7)
        single = make_campaign(tmp_path, multi=False)
        with pytest.raises(StoreError, match=r"is a multi-label \(label delimiter '\|'\) campaign but the config "
                                             r"makes it single-label"):
            register(store, single, project_id=7)


def test_a_single_label_state_file_refuses_to_become_multi_label(tmp_path) -> None:
    single = make_campaign(tmp_path, multi=False)
    with Store.open(single.config.state.path) as store:
        with store.tx():
            register(store, single, project_id=7)
        assert store.get("mode") is None  # single-label state files are written as before
        with pytest.raises(StoreError, match="is a single-label campaign but the config makes it multi-label"):
            register(store, make_campaign(tmp_path), project_id=7)


def test_the_learner_waits_for_two_labels_and_tells_its_versions_apart() -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(20, 4))
    ids = [f"t{i}" for i in range(20)]
    from labelloop.labels import LabelSet

    multi = ActiveLearner(ids, ids, X, LabelSet(LABELS), multi_label=True)
    single = ActiveLearner(ids, ids, X, LabelSet(LABELS))
    assert multi.fit({"t0": "bug", "t1": "bug"}) is None  # one label seen: still cold
    assert isinstance(multi.fit({"t0": "bug", "t1": "bug|refund"}), MultiLabelHead)
    labels = {"t0": "bug", "t1": "refund"}
    assert multi.version(labels) != single.version(labels)


def test_copies_whose_sets_are_written_in_another_order_carry_one_label_without_a_conflict(tmp_path) -> None:
    import warnings

    from labelloop.data import load_pool

    path = tmp_path / "pool.csv"
    path.write_text("text,labels\nrefund please,refund|bug\nrefund please,bug | refund\nwhere is it,other\n"
                    "new card,\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a LabelConflictWarning would fail here
        pool = load_pool(path, label_column="labels", label_delimiter="|")
    assert pool.labels == ["bug|refund", "other", None] and pool.n_rows == 4
    from labelloop.copies import LabelConflictWarning

    with pytest.warns(LabelConflictWarning):  # without the delimiter a cell is one label, as before
        single = load_pool(path, label_column="labels")
    assert "refund|bug" in single.labels
