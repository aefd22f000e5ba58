"""`labelloop serve` as a real process beside a real Label Studio: webhooks from people annotating through
``/next`` drive the sync steps (no cron), Label Studio asks it for predictions, `connect` registers it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from lshelpers import Annotator, demo_campaign
from test_sync import assert_store_matches_label_studio, project_tasks, waiting

from labelloop.config import load_config
from labelloop.store import Store

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

SECRET = "serve-test-secret-" + "x" * 12
QUEUE = 12


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_campaign(tmp_path: Path, title: str, cache: Path, *, n: int = 240, queue: int = QUEUE,
                   budget: int = 200, retrain_every: int = 6) -> tuple[Path, dict[str, str]]:
    return demo_campaign(
        tmp_path, title, cache, n,
        loop={"queue_target": queue, "budget": budget, "retrain_every": retrain_every, "audit_fraction": 0.1},
        quality={"prefill_confidence": 0.0},  # show every guess: these tests check what /predict answers
    )


def wait_for(what: str, check: Callable[[], object], timeout: float = 180.0, every: float = 0.3) -> object:
    """Poll until ``check()`` is truthy (a generous deadline that only catches a hang, never a speed)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(every)


@dataclass
class Served:
    config: Path
    url: str
    proc: subprocess.Popen
    log: Path
    env: dict[str, str]

    def status(self) -> dict:
        return httpx.get(f"{self.url}/status", headers={"X-Labelloop-Secret": SECRET}, timeout=30).json()

    def idle(self) -> dict | None:
        s = self.status()
        return s if not s["pending"] and not s["running"] else None

    def store(self) -> Store:
        return Store.open_existing(load_config(self.config).state.path)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "labelloop.cli", *args, "--config", str(self.config)],
                              env=self.env, capture_output=True, text=True, timeout=300, check=False)


def start_serve(config: Path, env: dict[str, str], port: int, *extra: str, launcher: str | None = None
                ) -> Served:
    log = config.parent / f"serve-{port}.log"
    cmd = ([sys.executable, "-c", launcher, str(config), str(port)] if launcher else
           [sys.executable, "-m", "labelloop.cli", "serve", "--config", str(config), "--port", str(port), *extra])
    with open(log, "ab") as fh:
        proc = subprocess.Popen(cmd, env=env, stdout=fh, stderr=subprocess.STDOUT)
    served = Served(config, f"http://127.0.0.1:{port}", proc, log, env)

    def up() -> bool:
        assert proc.poll() is None, log.read_text()[-3000:]
        try:
            return httpx.get(f"{served.url}/health", timeout=2).json() == {"status": "UP"}
        except httpx.HTTPError:
            return False
    wait_for("serve to answer /health", up)
    return served


def stop_serve(served: Served) -> None:
    if served.proc.poll() is None:
        served.proc.send_signal(signal.SIGTERM)
        try:
            served.proc.wait(60)
        except subprocess.TimeoutExpired:
            served.proc.kill()
            served.proc.wait(30)


@pytest.fixture
def serve_env(ls_server, monkeypatch) -> dict[str, str]:
    env = {**os.environ, "LABEL_STUDIO_URL": ls_server.url, "LABEL_STUDIO_API_KEY": ls_server.api_key,
           "LABELLOOP_SERVE_SECRET": SECRET}
    for k in ("LABEL_STUDIO_URL", "LABEL_STUDIO_API_KEY"):
        monkeypatch.setenv(k, env[k])
    return env


@pytest.fixture
def served(tmp_path, title, serve_env, embedding_cache) -> Iterator[tuple[Served, dict[str, str]]]:
    config, truth = write_campaign(tmp_path, title, embedding_cache)
    s = start_serve(config, serve_env, free_port(), "--debounce", "1", "--max-wait", "8")
    try:
        wait_for("the first step (catch-up at start)", lambda: s.status()["steps"] >= 1 and s.idle())
        yield s, truth
    finally:
        stop_serve(s)
        assert SECRET not in s.log.read_text()  # never logged
        assert os.environ.get("LABEL_STUDIO_API_KEY", "\0") not in s.log.read_text()


def webhooks_and_backends(sdk, project_id: int) -> tuple[list, list]:
    return list(sdk.webhooks.list(project=str(project_id))), list(sdk.ml.list(project=project_id))


def test_annotators_drive_retraining_and_refill_without_cron(served, sdk, ls_server, connector) -> None:
    s, truth = served
    project_id = int(s.store().get("project_id"))
    for _ in range(2):  # idempotent: twice leaves one of each
        done = s.cli("connect", "--url-for-label-studio", s.url)
        assert done.returncode == 0, done.stderr
        assert SECRET not in done.stdout + done.stderr
    hooks, backends = webhooks_and_backends(sdk, project_id)
    assert len(hooks) == 1 and len(backends) == 1, (hooks, backends)
    assert hooks[0].url == s.url + "/webhook" and hooks[0].headers == {"X-Labelloop-Secret": SECRET}
    assert set(hooks[0].actions) >= {"ANNOTATION_CREATED", "ANNOTATION_UPDATED", "TASKS_DELETED"}

    before = s.store()
    first_runs = len(before.runs())
    assert len(waiting(project_tasks(sdk, project_id))) == QUEUE
    assert before.last_round().has_model is False
    person = Annotator(ls_server, f"live-{project_id}@example.org", seed=4)
    labels = list(load_config(s.config).labels)
    for _ in range(2):  # two rounds: each time the queue is emptied, the server refills it
        done = person.work(project_id, truth, labels, QUEUE + 5)
        assert len(done) >= QUEUE - 2  # the queue ran (almost) dry before the server topped it up

        def refilled() -> bool:
            return bool(s.idle()) and len(waiting(project_tasks(sdk, project_id))) == QUEUE
        wait_for("the queue to be topped up by webhooks", refilled)
    store = s.store()
    assert len(store.runs()) > first_runs
    last = store.last_round()
    assert last.has_model
    assert sdk.projects.get(project_id).model_version == last.model_version  # the new model is the project's
    assert_store_matches_label_studio(s.config, connector, sdk)  # no duplicate task, no label lost

    # A task someone else imported, never pushed by labelloop: opening it asks the ML backend.
    foreign_text = "I was charged twice for my subscription this month, please refund the second payment"
    sdk.projects.import_tasks(project_id, request=[{"text": foreign_text}])
    task = next(t for t in project_tasks(sdk, project_id) if "labelloop_id" not in t["data"])
    r = person.client.get(f"/api/tasks/{task['id']}")
    assert r.status_code == 200
    preds = list(sdk.predictions.list(task=task["id"]))
    assert len(preds) == 1 and preds[0].model_version == last.model_version
    assert preds[0].result[0]["value"]["choices"][0] in labels and 0 < preds[0].score <= 1
    # The same answer straight from the server: the current model's guess.
    direct = httpx.post(f"{s.url}/predict", headers={"X-Labelloop-Secret": SECRET}, timeout=60,
                        json={"tasks": [{"id": task["id"], "data": {"text": foreign_text}}]}).json()
    assert direct["results"][0]["result"] == preds[0].result
    assert direct["results"][0]["model_version"] == last.model_version

    done = s.cli("disconnect", "--url-for-label-studio", s.url)
    assert done.returncode == 0, done.stderr
    assert webhooks_and_backends(sdk, project_id) == ([], [])


def test_requests_without_the_secret_are_refused_and_do_nothing(served) -> None:
    s, _ = served
    before = s.status()
    runs = len(s.store().runs())
    event = {"action": "ANNOTATION_CREATED", "annotation": {"id": 1}}
    for headers in ({}, {"X-Labelloop-Secret": "wrong-" + SECRET}, {"Authorization": "Basic bGFiZWxsb29wOm5vcGU="}):
        for path, body in (("/webhook", event), ("/predict", {"tasks": []}), ("/setup", {}), ("/train", {})):
            r = httpx.post(s.url + path, json=body, headers=headers, timeout=30)
            assert r.status_code == 401, (path, headers, r.text)
        assert httpx.get(s.url + "/status", headers=headers, timeout=30).status_code == 401
    # Label Studio's own way in: basic auth with the secret as password.
    r = httpx.post(s.url + "/setup", json={"project": "1.0"}, auth=("labelloop", SECRET), timeout=30)
    assert r.status_code == 200 and r.json()["model_version"]
    # Bad payloads: 400 with a one-line reason, nothing queued.
    for raw in (b"not json", b"[1, 2]", b'{"no": "action"}'):
        r = httpx.post(s.url + "/webhook", content=raw, headers={"X-Labelloop-Secret": SECRET}, timeout=30)
        assert r.status_code == 400 and "\n" not in r.json()["error"], r.text
    r = httpx.post(s.url + "/predict", json={"tasks": [{"data": {}}]}, headers={"X-Labelloop-Secret": SECRET})
    assert r.status_code == 400 and "no text" in r.json()["error"]
    time.sleep(2)  # a queued step would have started by now (debounce 1 s)
    after = s.status()
    assert after["events"] == before["events"] and after["steps"] == before["steps"]
    assert len(s.store().runs()) == runs
    assert "401 POST /webhook" in s.log.read_text()


def test_a_burst_of_100_annotations_gives_at_most_3_steps(tmp_path, title, serve_env, embedding_cache, sdk,
                                                          ls_server) -> None:
    """Four people submit 100 labels at once. On this shared test box Label Studio takes up to ~0.5 s per
    submission, so the storm may last longer than 10 s: the cap on how long a storm may postpone its
    step is raised to cover it (one storm), the quiet spell stays at its default."""
    from concurrent.futures import ThreadPoolExecutor

    config, truth = write_campaign(tmp_path, title, embedding_cache, n=400, queue=110, budget=300,
                                   retrain_every=20)
    s = start_serve(config, serve_env, free_port(), "--max-wait", "90")
    try:
        wait_for("the first step", lambda: s.status()["steps"] >= 1 and s.idle(), timeout=300)
        project_id = int(s.store().get("project_id"))
        assert s.cli("connect", "--url-for-label-studio", s.url, "--no-ml-backend").returncode == 0
        runs_before = len(s.store().runs())
        people = [Annotator(ls_server, f"burst{k}-{project_id}@example.org", seed=k) for k in range(4)]
        tasks = waiting(project_tasks(sdk, project_id))[:100]

        def label(k: int) -> int:  # person k submits every 4th task (concurrent /next hands out doubles)
            for t in tasks[k::4]:
                result = [{"from_name": "label", "to_name": "text", "type": "choices",
                           "value": {"choices": [truth[t["data"]["labelloop_id"]]]}}]
                r = people[k].client.post(f"/api/tasks/{t['id']}/annotations/", json={"result": result})
                assert r.status_code == 201, r.text
            return len(tasks[k::4])
        with ThreadPoolExecutor(len(people)) as pool:
            assert sum(pool.map(label, range(4))) == 100
        wait_for("the burst to be synced", lambda: s.idle() and len(s.store().resolutions()) == 100,
                 timeout=300)
        runs = s.store().runs()[runs_before:]
        assert 1 <= len(runs) <= 3, [r.message for r in runs]
        assert sum(r.pulled for r in runs) == 100
        assert all(r.finished_at for r in runs)
    finally:
        stop_serve(s)


KILLABLE = """
import os, sys, time
from pathlib import Path
from labelloop.config import load_config
from labelloop.serve import run_server
marker = Path(sys.argv[1]).with_name("killed-here")
def hook(step):
    if step == "mid-push" and not marker.exists():
        marker.write_text(step)
        time.sleep(600)  # the test kills the process here, mid-push
run_server(load_config(sys.argv[1]), port=int(sys.argv[2]), hook=hook)
"""


def test_sigkill_mid_step_then_restart_converges(tmp_path, title, serve_env, embedding_cache, sdk,
                                                 connector) -> None:
    config, _ = write_campaign(tmp_path, title, embedding_cache)
    config.write_text(config.read_text().replace("[labelstudio]\n", "[labelstudio]\nbatch_size = 4\n"))
    s = start_serve(config, serve_env, free_port(), launcher=KILLABLE)
    marker = tmp_path / "killed-here"
    wait_for("the first step to reach mid-push", marker.exists)
    s.proc.send_signal(signal.SIGKILL)
    s.proc.wait(30)
    project_id = int(Store.open_existing(load_config(config).state.path).get("project_id"))
    partial = project_tasks(sdk, project_id)
    assert 0 < len(partial) < QUEUE  # killed in the middle of the push

    again = start_serve(config, serve_env, free_port())
    try:
        wait_for("the catch-up step", lambda: again.status()["steps"] >= 1 and again.idle())
        store = assert_store_matches_label_studio(config, connector, sdk)
        assert len(waiting(project_tasks(sdk, project_id))) == QUEUE
        assert len(store.pushes()) == QUEUE
        runs = store.runs()
        assert [r.finished_at is None for r in runs] == [True, False]  # the killed step stays visible
    finally:
        stop_serve(again)
