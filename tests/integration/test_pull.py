"""Pull against a real Label Studio: people annotate, skip, relabel, disagree and delete through the API."""

from __future__ import annotations

import time
import uuid

import pytest
from lshelpers import LABELS, annotate, relabel

from labelloop.labelstudio import Connector, PullCursor, UnknownChoiceError, resolve

pytestmark = pytest.mark.labelstudio


@pytest.fixture
def pushed(connector, title, make_items):
    """A project with 12 pushed tasks: (project id, our id -> task id)."""
    info = connector.ensure_project(title, LABELS)
    report = connector.push(info.id, make_items(12), "m-1")
    return info.id, report.task_ids


def test_round_trip_and_nothing_new_on_rerun(connector, sdk, pushed, ls_server) -> None:
    pid, tasks = pushed
    given = {our_id: LABELS[n % 3] for n, our_id in enumerate(sorted(tasks)[:8])}
    for our_id, label in given.items():
        annotate(sdk, tasks[our_id], label)
    first = connector.pull(pid)
    assert {r.id: r.label for r in first.records} == given
    assert all(r.event == "created" and not r.skipped and r.annotator is not None for r in first.records)
    assert {r.task_id for r in first.records} == {tasks[i] for i in given}
    assert {k: r.label for k, r in resolve(first.records).items()} == given

    again = connector.pull(pid, first.cursor)
    assert again.records == [] and again.tasks_scanned == 12
    # The cursor rebuilt from the records alone (what `labelloop pull --out` keeps) is as good.
    assert connector.pull(pid, PullCursor.from_records(first.records)).records == []


def test_pull_fetches_only_changed_tasks(connector, sdk, pushed, ls_server) -> None:
    """Without the safety margin for in-flight writes, a pull fetches exactly the tasks changed since
    the previous scan started. The scan mark is the server's clock in whole seconds, hence the pause."""
    pid, tasks = pushed
    ann = annotate(sdk, tasks["doc-0000"], "bug")
    annotate(sdk, tasks["doc-0001"], "bug")
    time.sleep(1.1)
    exact = Connector(connector.url, ls_server.api_key, scan_margin=0)
    first = exact.pull(pid)
    assert first.tasks_fetched == 2 and len(first.records) == 2
    quiet = exact.pull(pid, first.cursor)
    assert quiet.records == [] and quiet.tasks_fetched == 0 and quiet.tasks_scanned == 12
    relabel(sdk, ann, "other")
    annotate(sdk, tasks["doc-0009"], "billing")
    third = exact.pull(pid, quiet.cursor)
    assert third.tasks_fetched == 2
    assert sorted((r.id, r.event, r.label) for r in third.records) == [
        ("doc-0000", "updated", "other"), ("doc-0009", "created", "billing")]


def test_skip_is_not_a_label(connector, sdk, pushed) -> None:
    pid, tasks = pushed
    annotate(sdk, tasks["doc-0001"], None)
    (rec,) = connector.pull(pid).records
    assert rec.skipped and rec.label is None and rec.id == "doc-0001"
    res = resolve([rec])["doc-0001"]
    assert res.label is None and res.skipped == 1 and res.votes == {}


def test_relabel_latest_wins_and_change_is_recorded(connector, sdk, pushed) -> None:
    pid, tasks = pushed
    ann = annotate(sdk, tasks["doc-0002"], "billing")
    first = connector.pull(pid)
    relabel(sdk, ann, "other")
    second = connector.pull(pid, first.cursor)
    (rec,) = second.records
    assert (rec.event, rec.annotation_id, rec.label) == ("updated", ann, "other")
    assert rec.previous_label == "billing"
    assert resolve(first.records + second.records)["doc-0002"].label == "other"


def test_two_annotators_disagree_then_a_third_decides(connector, sdk, pushed) -> None:
    """Other annotators are real users created through the API; their annotations are submitted with
    ``completed_by`` (Label Studio's API accepts it), so no second login is needed."""
    pid, tasks = pushed
    suffix = uuid.uuid4().hex[:6]
    ann2 = sdk.users.create(username=f"ann2-{suffix}", email=f"ann2-{suffix}@labelloop.test").id
    ann3 = sdk.users.create(username=f"ann3-{suffix}", email=f"ann3-{suffix}@labelloop.test").id
    annotate(sdk, tasks["doc-0003"], "bug")
    annotate(sdk, tasks["doc-0003"], "billing", by=ann2)
    first = connector.pull(pid)
    me = sdk.users.whoami()
    assert {(r.annotator, r.annotator_email) for r in first.records} == {
        (me.id, me.email), (ann2, f"ann2-{suffix}@labelloop.test")}
    res = resolve(first.records)["doc-0003"]
    assert res.disagreement and res.label is None and res.votes == {"bug": 1, "billing": 1}

    annotate(sdk, tasks["doc-0003"], "billing", by=ann3)
    second = connector.pull(pid, first.cursor)
    assert [r.annotator for r in second.records] == [ann3]
    res = resolve(first.records + second.records)["doc-0003"]
    assert res.label == "billing" and res.disagreement and res.votes == {"billing": 2, "bug": 1}


def test_deleted_annotation_and_deleted_task(connector, sdk, pushed) -> None:
    pid, tasks = pushed
    ann = annotate(sdk, tasks["doc-0004"], "bug")
    annotate(sdk, tasks["doc-0005"], "other")
    first = connector.pull(pid)
    sdk.annotations.delete(ann)
    sdk.tasks.delete(str(tasks["doc-0005"]))
    second = connector.pull(pid, first.cursor)
    gone = {(r.id, r.event, r.task_deleted) for r in second.records}
    assert gone == {("doc-0004", "deleted", False), ("doc-0005", "deleted", True)}
    assert resolve(first.records + second.records) == {}
    assert connector.pull(pid, second.cursor).records == []


def test_choice_outside_the_label_set_fails_the_whole_pull(connector, sdk, pushed) -> None:
    pid, tasks = pushed
    annotate(sdk, tasks["doc-0006"], "billing")
    bad = annotate(sdk, tasks["doc-0007"], "refund")  # Label Studio accepts it
    with pytest.raises(UnknownChoiceError) as err:
        connector.pull(pid)
    assert f"task {tasks['doc-0007']} (id 'doc-0007')" in str(err.value) and "'refund'" in str(err.value)
    assert err.value.exit_code == 2
    relabel(sdk, bad, "other")
    fixed = {r.id: r.label for r in connector.pull(pid).records}
    assert fixed == {"doc-0006": "billing", "doc-0007": "other"}
