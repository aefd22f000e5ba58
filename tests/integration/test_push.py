"""Push against a real Label Studio: tasks, predictions, model version, idempotence."""

from __future__ import annotations

import httpx
import pytest
from lshelpers import LABELS, annotate

from labelloop.labelstudio import PushItem, parse_config

pytestmark = pytest.mark.labelstudio


def all_tasks(sdk, project_id: int) -> list[dict]:
    tasks = sdk.tasks.list(project=project_id, fields="all", page_size=1000)
    return [t.model_dump(mode="json") for t in tasks]


def test_push_creates_tasks_with_predictions_the_sampler_uses(connector, sdk, ls_server, title,
                                                              make_items) -> None:
    info = connector.ensure_project(title, LABELS)
    assert info.created and info.labels == LABELS
    items = make_items(40)
    report = connector.push(info.id, items, "m-1", batch_size=15)
    assert sorted(report.created) == sorted(i.id for i in items) and report.existing == []

    tasks = {t["data"]["labelloop_id"]: t for t in all_tasks(sdk, info.id)}
    assert len(tasks) == 40 == len(all_tasks(sdk, info.id))
    for item in items:
        task = tasks[item.id]
        assert task["data"] == {"text": item.text, "labelloop_id": item.id}
        assert task["meta"] == {"labelloop": {"model_version": "m-1", "cluster": item.cluster}}
        (pred,) = task["predictions"]
        assert pred["model_version"] == "m-1" and pred["score"] == pytest.approx(item.score)
        assert pred["result"][0]["value"]["choices"] == [item.label]
        assert report.task_ids[item.id] == task["id"]
    project = sdk.projects.get(info.id)
    assert project.model_version == "m-1" and project.sampling == "Uncertainty sampling"

    # Label Studio serves the lowest score (least confident) first.
    next_task = httpx.get(f"{ls_server.url}/api/projects/{info.id}/next",
                          headers={"Authorization": f"Token {ls_server.api_key}"}, timeout=30).json()
    assert next_task["data"]["labelloop_id"] == min(items, key=lambda i: i.score).id


def test_push_again_creates_nothing_and_a_new_model_adds_predictions(connector, sdk, title,
                                                                      make_items) -> None:
    info = connector.ensure_project(title, LABELS)
    items = make_items(30)
    connector.push(info.id, items, "m-1")
    again = connector.push(info.id, items, "m-1")
    assert again.created == [] and len(again.existing) == 30 and again.predictions_added == []
    assert len(all_tasks(sdk, info.id)) == 30

    annotate(sdk, again.task_ids[items[0].id], "bug")
    newer = [PushItem(i.id, i.text, "other", 0.5, i.cluster) for i in items]
    report = connector.push(info.id, newer, "m-2")
    assert report.created == [] and len(report.predictions_added) == 30
    tasks = all_tasks(sdk, info.id)
    assert len(tasks) == 30 and all(len(t["predictions"]) == 2 for t in tasks)
    assert sdk.projects.get(info.id).model_version == "m-2"
    assert len(tasks[0]["annotations"]) + sum(len(t["annotations"]) for t in tasks[1:]) == 1  # untouched


def test_prediction_clusters_on_request(connector, sdk, title, make_items) -> None:
    info = connector.ensure_project(title, LABELS)
    items = make_items(6)
    connector.push(info.id, items, "m-1")
    assert {p.cluster for p in sdk.predictions.list(project=info.id)} == {None}  # the bulk import drops it
    connector.push(info.id, items, "m-1", prediction_clusters=True)
    clusters = {p.task: p.cluster for p in sdk.predictions.list(project=info.id)}
    tasks = connector.existing_ids(info.id)
    assert {i.id: clusters[tasks[i.id]] for i in items} == {i.id: i.cluster for i in items}


def test_cold_start_push_has_no_predictions(connector, sdk, title, make_items) -> None:
    info = connector.ensure_project(title, LABELS)
    items = [PushItem(i.id, i.text, cluster=i.cluster) for i in make_items(5)]
    report = connector.push(info.id, items, "cold-1")
    assert len(report.created) == 5
    assert all(t["predictions"] == [] for t in all_tasks(sdk, info.id))
    assert not sdk.projects.get(info.id).model_version  # nothing to point the sampler at yet
    assert {t.pushed_as for t in connector.existing(info.id).values()} == {"cold-1"}


def test_labels_that_need_xml_escaping(connector, sdk, title) -> None:
    labels = ["R&D", "<urgent>", 'say "hi"', "it's"]
    info = connector.ensure_project(title, labels)
    assert parse_config(sdk.projects.get(info.id).label_config).labels == tuple(labels)
    assert connector.ensure_project(title, list(reversed(labels))).id == info.id  # reused, order is free
    report = connector.push(info.id, [PushItem("x1", "Research budget", "R&D", 0.4)], "m-1")
    annotate(sdk, report.task_ids["x1"], "<urgent>")
    (rec,) = connector.pull(info.id).records
    assert rec.label == "<urgent>" and rec.id == "x1"
