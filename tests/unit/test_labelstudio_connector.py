"""Offline tests of the connector's retry and error handling, against an in-memory fake of the SDK client.

The fake only mimics what the real server was measured to do (tests/integration proves it):
duplicate imports create duplicate tasks, and an import may commit and still lose its response.
"""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from label_studio_sdk.core.api_error import ApiError

from labelloop.cli.labelstudio import append_records, read_records, read_scan_mark, write_scan_mark
from labelloop.errors import DataError
from labelloop.labelstudio import (
    AnnotationRecord,
    Connector,
    LabelStudioError,
    LabelStudioInputError,
    ProjectNotFoundError,
    PushItem,
    labeling_config,
)

KEY = "0123456789abcdef-secret-key"


class FakeLS:
    """Projects, tasks and predictions in memory; ``fail`` lists what the next import calls do."""

    def __init__(self, labels=("neg", "pos")) -> None:
        self.project = SimpleNamespace(id=7, title="fake", label_config=labeling_config(list(labels)),
                                       model_version=None)
        self.tasks_by_id: dict[int, dict] = {}
        self.next_id = 100
        self.fail: list[str] = []  # "lost" = commit then lose the response; "down" = refuse the connection
        self.import_calls = 0
        self.projects = SimpleNamespace(get=self.get, list=self.list_projects, update=self.update,
                                        import_tasks=self.import_tasks,
                                        import_predictions=self.import_predictions)
        self.tasks = SimpleNamespace(list=self.list_tasks, get=self.get_task, delete=self.delete_task)
        self.users = SimpleNamespace(list=list)
        self.pages_asked: list[int] = []

    def get(self, pid: int):
        if pid != self.project.id:
            raise ApiError(status_code=404, body={"detail": "No Project matches the given query."})
        return self.project

    def list_projects(self, page: int = 1, page_size: int = 100):
        if page > 1:  # one project: any later page is past the end
            raise ApiError(status_code=404, body={"detail": "Invalid page."})
        return SimpleNamespace(items=[self.project], response=SimpleNamespace(count=1))

    def update(self, pid: int, model_version: str):
        self.project.model_version = model_version
        return self.project

    def _maybe_fail(self, commit) -> None:
        self.import_calls += 1
        mode = self.fail.pop(0) if self.fail else None
        if mode == "down":
            raise httpx.ConnectError("[Errno 111] Connection refused")
        commit()
        if mode == "lost":
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")

    def import_tasks(self, pid: int, request: list[dict]):
        def commit() -> None:
            for t in request:
                self.tasks_by_id[self.next_id] = {"id": self.next_id, "data": t["data"],
                                                  "meta": t.get("meta", {}),
                                                  "predictions": list(t.get("predictions", []))}
                self.next_id += 1
        self._maybe_fail(commit)

    def import_predictions(self, pid: int, request: list[dict]):
        def commit() -> None:
            for p in request:
                self.tasks_by_id[p["task"]]["predictions"].append(p)
        self._maybe_fail(commit)

    def list_tasks(self, project: int, fields: str, include: str, page_size: int, page: int = 1, query=None):
        """One page, like the SDK's raw call: a page past the end is a 404 (the server logs an error)."""
        self.pages_asked.append(page)
        rows = [{"id": t["id"], "data": t["data"], "meta": t["meta"],
                 "predictions_model_versions": ",".join(p["model_version"] for p in t["predictions"]),
                 "annotations_ids": ",".join(str(a) for a in t.get("annotations", []))}
                for t in sorted(self.tasks_by_id.values(), key=lambda t: t["id"])]
        if page > 1 and (page - 1) * page_size >= len(rows):
            raise ApiError(status_code=404, body={"detail": "Invalid page."})
        items = rows[(page - 1) * page_size : page * page_size]
        return SimpleNamespace(items=items, response=SimpleNamespace(total=len(rows)))

    def get_task(self, task_id: int):
        t = self.tasks_by_id[task_id]
        return {"id": task_id, "total_annotations": len(t.get("annotations", [])), "cancelled_annotations": 0}

    def delete_task(self, task_id: int) -> None:
        del self.tasks_by_id[task_id]

    def our_ids(self) -> list[str]:
        return sorted(t["data"]["labelloop_id"] for t in self.tasks_by_id.values())


def items(n: int) -> list[PushItem]:
    return [PushItem(f"id{i:03d}", f"text {i}", "pos" if i % 2 else "neg", 0.5 + i / 1000, cluster=i % 3)
            for i in range(n)]


def connector(fake: FakeLS, retries: int = 2) -> Connector:
    return Connector("http://fake", KEY, client=fake, retries=retries, backoff=0, settle=0)


def test_push_after_a_lost_response_does_not_duplicate() -> None:
    fake = FakeLS()
    fake.fail = [None, "lost"]  # the second batch is stored but its response never arrives
    report = connector(fake).push(7, items(25), "m1", batch_size=10)
    assert fake.our_ids() == sorted(i.id for i in items(25))  # each id exactly once
    assert len(report.created) == 25 and report.existing == []
    assert fake.project.model_version == "m1"


def test_push_retries_a_refused_import_and_reports_existing_on_rerun() -> None:
    fake = FakeLS()
    fake.fail = ["down"]
    first = connector(fake).push(7, items(5), "m1")
    again = connector(fake).push(7, items(5), "m1")
    assert len(fake.tasks_by_id) == 5 and len(first.created) == 5
    assert again.created == [] and len(again.existing) == 5 and again.predictions_added == []
    assert fake.import_calls == 2  # the refused call and its retry; the rerun imports nothing


def test_push_completes_tasks_left_without_prediction() -> None:
    fake = FakeLS()
    connector(fake).push(7, [PushItem(i.id, i.text) for i in items(4)], "m0")  # as if predictions were lost
    report = connector(fake).push(7, items(4), "m1")
    assert len(fake.tasks_by_id) == 4 and report.created == []
    assert sorted(report.predictions_added) == [i.id for i in items(4)]
    assert all(len(t["predictions"]) == 1 for t in fake.tasks_by_id.values())


def test_push_gives_up_with_one_line_exit_3_when_the_server_stays_down() -> None:
    fake = FakeLS()
    fake.fail = ["down"] * 10
    with pytest.raises(LabelStudioError) as err:
        connector(fake, retries=2).push(7, items(3), "m1")
    assert err.value.exit_code == 3 and err.value.transient and "\n" not in str(err.value)
    assert "cannot reach" in str(err.value) and fake.import_calls == 3


def test_push_validates_before_sending() -> None:
    fake = FakeLS()
    ls = connector(fake)
    with pytest.raises(LabelStudioInputError, match="not choices"):
        ls.push(7, [PushItem("a", "x", "maybe", 0.5)], "m1")
    with pytest.raises(LabelStudioInputError, match="duplicate ids"):
        ls.push(7, [PushItem("a", "x"), PushItem("a", "y")], "m1")
    with pytest.raises(LabelStudioInputError, match="commas"):
        ls.push(7, [PushItem("a", "x", "pos", 0.5)], "m,1")
    with pytest.raises(ProjectNotFoundError):
        ls.push(8, [PushItem("a", "x")], "m1")
    assert fake.tasks_by_id == {}


class Failing:
    """A client whose every project read fails with ``exc``."""

    def __init__(self, exc: Exception) -> None:
        self.calls = 0

        def get(pid: int):
            self.calls += 1
            raise exc
        self.projects = SimpleNamespace(get=get)


@pytest.mark.parametrize("exc, kind, code, transient", [
    (ApiError(status_code=401, body={"detail": f"Invalid token {KEY}."}), LabelStudioError, 3, False),
    (ApiError(status_code=403, body={"detail": "You do not have permission."}), LabelStudioError, 3, False),
    (ApiError(status_code=400, body={"detail": "Validation error", "validation_errors": {"x": ["bad"]}}),
     LabelStudioInputError, 2, False),
    (ApiError(status_code=502, body="<html>Bad gateway</html>"), LabelStudioError, 3, True),
    (httpx.ConnectError("[Errno 111] Connection refused"), LabelStudioError, 3, True),
    (httpx.ReadTimeout("timed out"), LabelStudioError, 3, True),
])
def test_errors_become_one_clean_line(exc: Exception, kind: type, code: int, transient: bool) -> None:
    client = Failing(exc)
    with pytest.raises(kind) as err:
        Connector("http://fake", KEY, client=client, retries=2, backoff=0).project(3)
    msg = str(err.value)
    assert err.value.exit_code == code and "\n" not in msg and KEY not in msg
    assert client.calls == (3 if transient else 1)  # reads are retried only when it may help


def test_missing_project_is_an_input_error() -> None:
    with pytest.raises(ProjectNotFoundError, match="no Label Studio project 3") as err:
        connector(FakeLS()).project(3)
    assert err.value.exit_code == 2


def test_missing_configuration_is_an_input_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LABEL_STUDIO_URL", raising=False)
    monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    with pytest.raises(LabelStudioInputError, match="LABEL_STUDIO_URL"):
        Connector()
    with pytest.raises(LabelStudioInputError, match="LABEL_STUDIO_API_KEY"):
        Connector("http://127.0.0.1:1")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_through_the_real_sdk_and_cli(monkeypatch: pytest.MonkeyPatch, capsys,
                                                  tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(LabelStudioError, match="cannot reach Label Studio at") as err:
        Connector(url, KEY, retries=1, backoff=0).project(1)
    assert err.value.transient and KEY not in str(err.value)

    from labelloop.cli import main

    monkeypatch.setenv("LABEL_STUDIO_URL", url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", KEY)
    argv = ["labelloop", "pull", "--project", "1", "--out", str(tmp_path / "l.jsonl")]
    monkeypatch.setattr(sys, "argv", argv)
    with pytest.raises(SystemExit) as exit_:
        main()
    out = capsys.readouterr()
    assert exit_.value.code == 3
    assert out.err.strip().startswith("error: cannot reach Label Studio")
    assert len(out.err.strip().splitlines()) == 1
    assert KEY not in out.err + out.out and not (tmp_path / "l.jsonl").exists()


def record(ann: int, label: str | None = "pos", event: str = "created") -> AnnotationRecord:
    return AnnotationRecord(event=event, id=f"id{ann}", project=7, task_id=ann, annotation_id=ann,
                            label=label, updated_at=f"2026-11-24T10:00:{ann:02d}+00:00")


def test_records_file_round_trip_and_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    append_records(path, [record(1), record(2, None)])
    append_records(path, [])
    assert read_records(path) == [record(1), record(2, None)]
    with open(path, "a") as fh:  # a crash in the middle of writing the next pull
        fh.write(json.dumps(record(3).to_dict())[:25])
    assert read_records(path) == [record(1), record(2, None)]
    read_records(path, repair=True)
    assert path.read_text().endswith("\n") and len(path.read_text().splitlines()) == 2
    append_records(path, [record(3)])
    assert [r.annotation_id for r in read_records(path)] == [1, 2, 3]
    path.write_text(path.read_text() + '{"no": "record"}\n')
    with pytest.raises(DataError, match=r"labels.jsonl:4: not a labelloop pull record"):
        read_records(path)


def test_scan_mark_is_per_project_and_optional(tmp_path: Path) -> None:
    out = tmp_path / "labels.jsonl"
    assert read_scan_mark(out, 7) is None
    write_scan_mark(out, 7, "2026-11-24T10:02:00+00:00")
    assert read_scan_mark(out, 7) == "2026-11-24T10:02:00+00:00"
    assert read_scan_mark(out, 8) is None  # another project's mark is no mark
    (tmp_path / "labels.jsonl.scan.json").write_text("{torn")
    assert read_scan_mark(out, 7) is None
