"""Offline tests of what keeps a push from duplicating and a message from blaming the wrong thing.

The fake client (tests/unit/test_labelstudio_connector.py) mimics measured server behaviour; the
URL tests run a tiny real HTTP server on 127.0.0.1 that is not Label Studio.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
from test_labelstudio_connector import KEY, FakeLS, connector, items, record

from labelloop.cli.labelstudio import append_records, read_records
from labelloop.errors import DataError
from labelloop.labelstudio import Connector, LabelStudioInputError
from labelloop.labelstudio.payloads import duplicate_plan


class StallingLS(FakeLS):
    """``stall``: the import times out client-side, and the server commits it later, when the next import
    arrives (a paused server resuming): the case that duplicated tasks."""

    def __init__(self) -> None:
        super().__init__()
        self.stalled: list[Callable[[], None]] = []

    def _maybe_fail(self, commit) -> None:
        if self.fail and self.fail[0] == "stall":
            self.fail.pop(0)
            self.import_calls += 1
            self.stalled.append(commit)
            raise httpx.ReadTimeout("timed out")
        while self.stalled:
            self.stalled.pop(0)()
        super()._maybe_fail(commit)


def test_a_stalled_import_committed_late_leaves_one_task_per_id() -> None:
    fake = StallingLS()
    fake.fail = [None, "stall"]
    report = connector(fake).push(7, items(25), "m1", batch_size=10)
    assert fake.our_ids() == sorted(i.id for i in items(25))  # each id exactly once
    assert len(report.duplicates_removed) == 10 and report.duplicates_annotated == []
    assert sorted(report.task_ids.values()) == sorted(fake.tasks_by_id)  # the report names the kept tasks


def test_duplicates_are_removed_but_annotated_copies_are_kept_and_reported() -> None:
    fake = FakeLS()
    ls = connector(fake)
    ls.push(7, items(3), "m1")
    for t in list(fake.tasks_by_id.values()):  # someone imports everything twice
        fake.tasks_by_id[fake.next_id] = {**t, "id": fake.next_id, "predictions": list(t["predictions"])}
        fake.next_id += 1
    by_id = sorted(fake.tasks_by_id.values(), key=lambda t: t["id"])
    by_id[0]["annotations"] = [1]   # id000: first copy annotated
    by_id[4]["annotations"] = [2]   # id001: second copy annotated
    by_id[3]["annotations"] = [3]   # id000: both copies annotated
    report = ls.push(7, items(3), "m1")
    kept = sorted((t["data"]["labelloop_id"], t["id"]) for t in fake.tasks_by_id.values())
    assert kept == [("id000", 100), ("id000", 103), ("id001", 104), ("id002", 102)]
    assert report.duplicates_removed == [101, 105] and report.duplicates_annotated == ["id000"]


def test_duplicate_plan_keeps_the_annotated_or_the_oldest_task() -> None:
    def row(tid: int, our: str, ann: str = "") -> dict:
        return {"id": tid, "data": {"labelloop_id": our}, "annotations_ids": ann}
    plan = duplicate_plan([row(5, "a"), row(3, "a"), row(9, "b", "17"), row(4, "b"), row(6, "c"),
                           {"id": 8, "data": {"labelloop_id": "c"}},  # a row that does not say: annotated
                           row(10, "d", "1"), row(11, "d", "2"), row(12, "d"), row(13, "e")])
    assert plan.delete == [4, 5, 6, 12] and plan.annotated == ["d"]


def test_task_listing_never_asks_for_a_page_past_the_end() -> None:
    for n, pages in ((0, [1]), (20, [1, 2]), (25, [1, 2, 3])):
        fake = FakeLS()
        connector(fake).push(7, items(n), "m1") if n else None
        fake.pages_asked.clear()
        rows = connector(fake).list_tasks(7, "listing", page_size=10, include="id")
        assert len(rows) == n and fake.pages_asked == pages


# -- pull files -------------------------------------------------------------------------------------

@pytest.mark.parametrize("content", [
    b"id,text\n1,hello\n2,a row without its final newline",
    b"a single line that is not ours",
    b'{"event": "created"}\n{"event": "creat',  # a record-like start, but line 1 is not a record
])
def test_a_file_that_is_not_a_pull_file_is_refused_untouched(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "data.csv"
    path.write_bytes(content)
    with pytest.raises(DataError, match="not a labelloop pull record"):
        read_records(path, repair=True)
    assert path.read_bytes() == content


def test_a_torn_record_is_cut_only_after_the_file_is_verified(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    append_records(path, [record(1)])
    whole = path.read_bytes()
    path.write_bytes(whole + json.dumps(record(2).to_dict()).encode()[:30])
    assert read_records(path, repair=True) == [record(1)] and path.read_bytes() == whole


# -- a URL that is not Label Studio ------------------------------------------------------------------

@pytest.fixture
def http_server() -> Iterator[Callable[[Callable[[BaseHTTPRequestHandler], None]], str]]:
    servers: list[ThreadingHTTPServer] = []

    def start(answer: Callable[[BaseHTTPRequestHandler], None]) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                answer(self)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"
    yield start
    for s in servers:
        s.shutdown()
        s.server_close()


def send(h: BaseHTTPRequestHandler, status: int, body: bytes, ctype: str = "application/json",
         **headers: str) -> None:
    h.send_response(status)
    h.send_header("Content-Type", ctype)
    h.send_header("Content-Length", str(len(body)))
    for k, v in headers.items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)


LS_VERSION = json.dumps({"release": "1.23.2"}).encode()


def one_line_error(url: str, project: int | str = 1) -> str:
    with pytest.raises(LabelStudioInputError) as err:
        Connector(url, KEY, retries=0, timeout=5).project(project)
    msg = str(err.value)
    assert "\n" not in msg and KEY not in msg and err.value.exit_code == 2
    return msg


def test_a_server_answering_empty_json_is_not_called_invalid_xml(http_server) -> None:
    url = http_server(lambda h: send(h, 200, b"{}"))
    msg = one_line_error(url)
    assert "does not answer like a Label Studio server" in msg and "XML" not in msg
    assert "not answer like a Label Studio" in one_line_error(url, "by title")


def test_a_web_page_answering_200_is_not_a_failed_listing(http_server) -> None:
    # Red-team rerun: "failed while listing projects (200: <html>…)", exit 3, as if Label Studio had failed.
    url = http_server(lambda h: send(h, 200, b"<html>Welcome to nginx</html>", "text/html"))
    for project in (1, "by title"):
        msg = one_line_error(url, project)
        assert "does not answer like a Label Studio server" in msg and "failed while" not in msg, msg


def test_a_redirect_is_not_called_unreachable(http_server) -> None:
    url = http_server(lambda h: send(h, 302, b"", "text/html", Location="https://elsewhere.example/"))
    msg = one_line_error(url)
    assert "redirects (302) to https://elsewhere.example/" in msg and "cannot reach" not in msg


def test_a_url_with_a_wrong_path_is_not_a_missing_project(http_server) -> None:
    def answer(h: BaseHTTPRequestHandler) -> None:  # Label Studio serves a web page for unknown paths
        if h.path.endswith("/api/version"):
            send(h, 200, LS_VERSION)
        else:
            send(h, 404, b"<html>Page not found</html>", "text/html")
    msg = one_line_error(http_server(answer) + "/labelstudio")
    assert "answered 404 with a web page" in msg and "no Label Studio project" not in msg


def test_another_server_asking_for_auth_is_not_a_bad_key(http_server) -> None:
    url = http_server(lambda h: send(h, 401, b"<html>Login required</html>", "text/html"))
    msg = one_line_error(url)
    assert "does not answer like a Label Studio server" in msg and "API key" not in msg


def test_a_real_missing_project_is_still_a_missing_project(http_server) -> None:
    def answer(h: BaseHTTPRequestHandler) -> None:
        if h.path.endswith("/api/version"):
            send(h, 200, LS_VERSION)
        else:
            send(h, 404, json.dumps({"detail": "No Project matches the given query."}).encode())
    assert "no Label Studio project 1" in one_line_error(http_server(answer))


def test_a_project_found_by_title_lists_only_the_pages_that_exist() -> None:
    assert connector(FakeLS()).project("fake").id == 7  # the fake answers 404 past the last page
