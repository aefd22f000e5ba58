"""The server goes away in the middle of a push; after a restart the same push completes it exactly.

Runs last (file order), as it stops and restarts the shared server.
"""

from __future__ import annotations

from collections import Counter

import pytest
from lshelpers import LABELS, annotate

from labelloop.labelstudio import LabelStudioError, resolve

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


def test_server_stopped_mid_push_then_rerun(ls_server, connector, sdk, title, make_items) -> None:
    info = connector.ensure_project(title, LABELS)
    items = make_items(600)
    first = connector.push(info.id, items[:200], "m-1")
    labeled = {i.id: LABELS[n % 3] for n, i in enumerate(items[:6])}
    for our_id, label in labeled.items():
        annotate(sdk, first.task_ids[our_id], label)
    before = connector.pull(info.id)
    assert len(before.records) == 6

    batches: list[int] = []

    def stop_after_two_batches(done: int, total: int) -> None:
        batches.append(done)
        if len(batches) == 3:  # progress(0) then two batches of 100 imported
            ls_server.stop()

    try:
        with pytest.raises(LabelStudioError) as err:
            connector.push(info.id, items, "m-1", batch_size=100, progress=stop_after_two_batches)
        assert err.value.exit_code == 3 and err.value.transient and "cannot reach" in str(err.value)
    finally:
        if not ls_server.running():
            ls_server.start()  # same data dir, port and token

    tasks = [t.data["labelloop_id"] for t in sdk.tasks.list(project=info.id, fields="all", include="id,data",
                                                            page_size=1000)]
    assert len(tasks) == 400 and len(set(tasks)) == 400  # 200 + the two batches sent before the stop

    report = connector.push(info.id, items, "m-1", batch_size=100)
    assert len(report.created) == 200 and len(report.existing) == 400
    tasks = [t.data["labelloop_id"] for t in sdk.tasks.list(project=info.id, fields="all", include="id,data",
                                                            page_size=1000)]
    assert len(tasks) == 600 and Counter(tasks).most_common(1)[0][1] == 1
    assert set(tasks) == {i.id for i in items}

    after = connector.pull(info.id, before.cursor)
    assert after.records == []  # nothing lost, nothing new
    assert {k: r.label for k, r in resolve(before.records).items()} == labeled
    annotate(sdk, report.task_ids[items[-1].id], "bug")
    (rec,) = connector.pull(info.id, before.cursor).records
    assert rec.id == items[-1].id and rec.label == "bug"
