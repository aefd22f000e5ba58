"""Offline tests of the Label Studio mapping logic, on payloads recorded from a real 1.23.2 server."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from labelloop.labels import LabelSetError
from labelloop.labelstudio import (
    ChoicesConfig,
    LabelSetMismatchError,
    LabelStudioInputError,
    PullCursor,
    PushItem,
    UnknownChoiceError,
    check_label_set,
    diff_task,
    existing_from_tasks,
    labeling_config,
    parse_config,
    resolve,
    task_payload,
    tasks_to_fetch,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "labelstudio"


def load(name: str):
    return json.loads((FIXTURES / name).read_text())


@pytest.fixture
def config() -> ChoicesConfig:
    return parse_config(load("project.json")["label_config"])


# -- labeling config ---------------------------------------------------------------------------------

def test_config_round_trips_labels_that_need_escaping() -> None:
    labels = ["R&D", "<script>", 'say "hi"', "it's", "a > b", "ünïcode ✓"]
    xml = labeling_config(labels)
    assert "<script>" not in xml and "R&D\"" not in xml
    cfg = parse_config(xml)
    assert cfg.labels == tuple(labels)
    assert (cfg.from_name, cfg.to_name, cfg.text_key) == ("label", "text", "text")
    assert 'choice="single"' in xml


def test_config_rejects_bad_label_sets_by_the_label_set_rules() -> None:
    with pytest.raises(LabelSetError, match="at least two labels"):
        labeling_config([])
    with pytest.raises(LabelSetError, match="at least two labels"):
        labeling_config(["only"])
    with pytest.raises(LabelSetError, match="duplicate"):
        labeling_config(["a", "b", "a"])
    with pytest.raises(LabelSetError, match="control characters"):
        labeling_config(["a", "b\tc"])
    assert parse_config(labeling_config(["a", " b "])).labels == ("a", "b")  # stripped, as LabelSet does


def test_recorded_project_config_is_read(config: ChoicesConfig) -> None:
    assert len(config.labels) == 13 and "app_bug" in config.labels
    assert config.text_key == "text"


def test_parse_config_uses_the_configs_own_names_and_aliases() -> None:
    xml = ('<View><Header value="x"/><HyperText name="body" value="$content"/>'
           '<Choices name="intent" toName="body"><Choice value="Billing" alias="billing"/>'
           '<Choice value="bug"/></Choices></View>')
    cfg = parse_config(xml)
    assert cfg == ChoicesConfig(labels=("billing", "bug"), from_name="intent", to_name="body",
                                text_key="content")


@pytest.mark.parametrize("xml, message", [
    ("<View><Text name='t' value='$text'/></View>", "0 <Choices>"),
    ("<View><Text name='t' value='$text'/><Choices name='a' toName='t'/>"
     "<Choices name='b' toName='t'/></View>", "2 <Choices>"),
    ("<View><Text name='t' value='$text'/><Choices name='a' toName='t' choice='perTask'/></View>", "single\" or"),
    ("<View><Choices name='a' toName='nowhere'><Choice value='x'/></Choices></View>", "does not point"),
    ("<View><Choices", "not valid XML"),
])
def test_parse_config_refuses_what_is_not_single_choice_text_classification(xml: str, message: str) -> None:
    with pytest.raises(LabelStudioInputError, match=message):
        parse_config(xml)


def test_label_set_mismatch_names_only_the_difference(config: ChoicesConfig) -> None:
    ours = [c for c in config.labels if c != "app_bug"] + ["shipping_delay"]
    with pytest.raises(LabelSetMismatchError) as err:
        check_label_set(config, ours, "project 3 'smoke'")
    msg = str(err.value)
    assert "only in Label Studio: ['app_bug']" in msg and "only in ours: ['shipping_delay']" in msg
    common = next(c for c in config.labels if c != "app_bug")
    assert repr(common) not in msg  # only what differs, never both whole lists
    assert "\n" not in msg and err.value.exit_code == 2
    check_label_set(config, list(reversed(config.labels)), "project 3")  # order does not matter


# -- push payloads -----------------------------------------------------------------------------------

def test_task_payload_carries_text_id_prediction_and_cluster() -> None:
    cfg = ChoicesConfig(labels=("a", "b"), from_name="intent", to_name="body", text_key="content")
    task = task_payload(PushItem("id-1", "hello", "b", 0.625, cluster=7), cfg, "m-3")
    assert task["data"] == {"content": "hello", "labelloop_id": "id-1"}
    assert task["meta"] == {"labelloop": {"model_version": "m-3", "cluster": 7}}
    (pred,) = task["predictions"]
    assert pred["model_version"] == "m-3" and pred["score"] == 0.625 and pred["cluster"] == 7
    assert pred["result"] == [{"from_name": "intent", "to_name": "body", "type": "choices",
                               "value": {"choices": ["b"]}}]
    assert "predictions" not in task_payload(PushItem("id-2", "cold"), cfg, "m-3")


def test_existing_tasks_from_recorded_rows() -> None:
    rows = load("existing_rows.json")
    rows.append({"id": 1, "data": {"text": "made by hand in Label Studio"}, "meta": {},
                 "predictions_model_versions": ""})
    rows.append({**copy.deepcopy(rows[0]), "id": 99999})  # same id imported twice by someone else
    found = existing_from_tasks(rows)
    assert set(found) == {"t0200", "t0130", "t0172", "t0178"}
    assert found["t0200"].task_id == 1004  # the oldest task represents a repeated id
    assert found["t0200"].model_versions == {"other-v2", "labelloop-40-37ec52081e"}
    assert found["t0130"].pushed_as == "labelloop-40-37ec52081e"


# -- pull --------------------------------------------------------------------------------------------

def pull_all(config: ChoicesConfig, tasks: list[dict], cursor: PullCursor | None = None):
    cursor = cursor or PullCursor()
    records = [r for t in tasks for r in diff_task(t, 3, config, cursor, {1: "admin@x", 2: "anno2@x"})]
    for r in records:
        cursor.apply(r)
    return records, cursor


def test_first_pull_maps_annotations_to_our_ids(config: ChoicesConfig) -> None:
    records, _ = pull_all(config, load("annotated_tasks.json"))
    by_ann = {r.annotation_id: r for r in records}
    assert {r.event for r in records} == {"created"}
    assert by_ann[5].id == "t0200" and by_ann[5].label == "app_bug" and by_ann[5].annotator == 1
    assert by_ann[9].label == "login_issue" and by_ann[9].annotator_email == "anno2@x"
    assert by_ann[8].skipped and by_ann[8].label is None and by_ann[8].id == "t0178"


def test_scan_selects_only_changed_tasks(config: ChoicesConfig) -> None:
    scan = load("scan_rows.json")
    fetch, seen = tasks_to_fetch(scan, PullCursor())
    assert fetch == [1004, 1005, 1006, 1007] and 1008 in seen  # unannotated tasks are not fetched
    _, cursor = pull_all(config, load("annotated_tasks.json"))
    assert tasks_to_fetch(scan, cursor)[0] == [1004, 1005, 1006, 1007]  # no scan mark: edits unknown
    cursor.scanned_at = "2026-11-24T14:29:22.470890+00:00"  # the newest updated_at of that scan
    fetch, _ = tasks_to_fetch(scan, cursor)
    # Only tasks changed within the safety margin before the last scan are fetched again.
    assert fetch == [1004]
    assert tasks_to_fetch(scan, cursor, margin=12)[0] == [1004, 1007]  # 1007 changed 11.9 s before
    touched = copy.deepcopy(scan)
    touched[2]["updated_at"] = "2026-11-24T15:00:00Z"  # e.g. an annotation of 1006 edited later
    touched[1]["annotations_ids"] = ""                  # 1005's annotation deleted
    fetch, _ = tasks_to_fetch(touched, cursor)
    assert fetch == [1004, 1005, 1006]


def test_repeated_pull_of_unchanged_tasks_records_nothing(config: ChoicesConfig) -> None:
    tasks = load("annotated_tasks.json")
    _, cursor = pull_all(config, tasks)
    again, _ = pull_all(config, tasks, cursor)
    assert again == []


def test_relabel_is_an_update_with_the_previous_label(config: ChoicesConfig) -> None:
    tasks = load("annotated_tasks.json")
    _, cursor = pull_all(config, tasks)
    ann = tasks[1]["annotations"][0]
    ann["result"][0]["value"]["choices"] = ["delete_account_privacy"]
    ann["updated_at"] = "2026-11-24T15:00:00.000001Z"
    records, cursor = pull_all(config, [tasks[1]], cursor)
    (rec,) = records
    assert (rec.event, rec.id, rec.label) == ("updated", "t0130", "delete_account_privacy")
    assert rec.previous_label == "app_bug"
    assert cursor.annotations[6].label == "delete_account_privacy"


def test_deleted_annotation_is_recorded_and_forgotten(config: ChoicesConfig) -> None:
    tasks = load("annotated_tasks.json")
    _, cursor = pull_all(config, tasks)
    tasks[0]["annotations"] = [a for a in tasks[0]["annotations"] if a["id"] != 9]
    records, cursor = pull_all(config, [tasks[0]], cursor)
    (rec,) = records
    assert (rec.event, rec.annotation_id, rec.id) == ("deleted", 9, "t0200")
    assert rec.previous_label == "login_issue"
    assert 9 not in cursor.annotations


def test_unknown_choice_names_the_task(config: ChoicesConfig) -> None:
    tasks = load("annotated_tasks.json")
    tasks[2]["annotations"][0]["result"][0]["value"]["choices"] = ["shipping_delay"]
    with pytest.raises(UnknownChoiceError, match=r"task 1006 \(id 't0172'\), annotation 7 has choice "
                                                 r"'shipping_delay'") as err:
        pull_all(config, tasks)
    assert err.value.exit_code == 2


def test_several_choices_in_one_annotation_are_refused(config: ChoicesConfig) -> None:
    tasks = load("annotated_tasks.json")
    tasks[1]["annotations"][0]["result"][0]["value"]["choices"] = ["app_bug", "change_plan"]
    with pytest.raises(UnknownChoiceError, match="2 choices"):
        pull_all(config, tasks)


def test_cursor_is_rebuilt_from_records_and_serialises(config: ChoicesConfig) -> None:
    records, cursor = pull_all(config, load("annotated_tasks.json"))
    rebuilt = PullCursor.from_records(records, "2026-11-24T14:29:22.470890+00:00")
    assert rebuilt.annotations == cursor.annotations
    again = PullCursor.from_dict(json.loads(json.dumps(rebuilt.to_dict())))
    assert again == rebuilt


# -- resolve -----------------------------------------------------------------------------------------

def test_resolve_majority_tie_skip_and_deletion(config: ChoicesConfig) -> None:
    tasks = load("annotated_tasks.json")
    records, cursor = pull_all(config, tasks)
    res = resolve(records)
    assert res["t0200"].label is None and res["t0200"].disagreement  # 1 vs 1: a tie is not a label
    assert res["t0200"].votes == {"app_bug": 1, "login_issue": 1}
    assert res["t0130"].label == "app_bug" and not res["t0130"].disagreement
    assert res["t0178"].label is None and res["t0178"].skipped == 1 and res["t0178"].votes == {}

    third = copy.deepcopy(tasks[0]["annotations"][1])
    third.update(id=10, completed_by=3, updated_at="2026-11-24T15:00:00Z")
    tasks[0]["annotations"].append(third)
    more, cursor = pull_all(config, [tasks[0]], cursor)
    res = resolve(records + more)
    assert res["t0200"].label == "login_issue" and res["t0200"].disagreement  # 2 vs 1, still flagged

    tasks[0]["annotations"] = [a for a in tasks[0]["annotations"] if a["id"] == 5]
    gone, _ = pull_all(config, [tasks[0]], cursor)
    res = resolve(records + more + gone)
    assert res["t0200"].label == "app_bug" and not res["t0200"].disagreement
