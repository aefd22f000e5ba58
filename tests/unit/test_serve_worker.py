"""`labelloop serve`'s parts that need no server: the secret check and the coalescing worker (with a fake
sync step; the real step through a real Label Studio is tests/integration/test_serve.py)."""

from __future__ import annotations

import base64
import threading
import time

import pytest

from labelloop import serve as serve_mod
from labelloop.serve import SECRET_ENV, ServeError, SyncWorker, authorized, read_secret
from labelloop.sync import SyncBusy, SyncReport

SECRET = "s3cret-" + "y" * 20


def test_secret_comes_from_the_environment_and_must_be_long() -> None:
    assert read_secret({SECRET_ENV: SECRET}) == SECRET
    for env in ({}, {SECRET_ENV: ""}, {SECRET_ENV: "short"}, {SECRET_ENV: f" {SECRET} "}):
        with pytest.raises(ServeError) as err:
            read_secret(env)
        assert SECRET not in str(err.value)


def test_the_secret_as_header_basic_password_or_bearer() -> None:
    basic = base64.b64encode(f"anyone:{SECRET}".encode()).decode()
    assert authorized({"x-labelloop-secret": SECRET}, SECRET)
    assert authorized({"authorization": f"Basic {basic}"}, SECRET)
    assert authorized({"authorization": f"Bearer {SECRET}"}, SECRET)
    wrong = base64.b64encode(b"labelloop:nope").decode()
    for headers in ({}, {"x-labelloop-secret": SECRET[:-1]}, {"authorization": f"Basic {wrong}"},
                    {"authorization": "Basic !!!"}, {"authorization": f"Token {SECRET}"},
                    {"x-labelloop-secret": "", "authorization": "Bearer wrong"}):
        assert not authorized(headers, SECRET), headers


class FakeHolder:
    class _Loaded:
        campaign = None

    def current(self) -> object:
        return self._Loaded()


@pytest.fixture
def steps(monkeypatch) -> dict:
    """A fake sync step: records each call, can be told to be slow, busy or failing."""
    state = {"calls": 0, "slow": 0.0, "raise": [], "started": threading.Event()}

    def fake_sync(config, *, campaign=None, hook=None, **_):
        state["calls"] += 1
        state["started"].set()
        if state["raise"]:
            raise state["raise"].pop(0)
        time.sleep(state["slow"])
        return SyncReport(run=state["calls"])

    import labelloop.sync

    monkeypatch.setattr(labelloop.sync, "sync", fake_sync)
    return state


def make_worker(**kw) -> SyncWorker:
    w = SyncWorker(None, FakeHolder(), **{"debounce": 0.2, "max_wait": 5.0, "busy_retry": 0.1, "backoff": 0.1,
                                          **kw})  # type: ignore[arg-type]
    w.start()
    return w


def settle(w: SyncWorker, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        s = w.snapshot()
        if not s["pending"] and not s["running"]:
            return s
        time.sleep(0.05)
    raise AssertionError("worker never settled")


def test_a_storm_of_events_is_one_step(steps) -> None:
    w = make_worker()
    try:
        for _ in range(100):
            w.notify()
            time.sleep(0.005)
        s = settle(w)
        assert steps["calls"] == 1 and s["steps"] == 1 and s["events"] == 100
    finally:
        w.stop()


def test_an_event_during_a_step_makes_exactly_one_more(steps) -> None:
    steps["slow"] = 0.6
    w = make_worker()
    try:
        w.notify(urgent=True)
        assert steps["started"].wait(10)
        for _ in range(5):
            w.notify()
        settle(w)
        assert steps["calls"] == 2
    finally:
        w.stop()


def test_busy_lock_and_label_studio_down_are_retried(steps) -> None:
    from labelloop.labelstudio.errors import LabelStudioError

    steps["raise"] = [SyncBusy("another labelloop sync is running"), LabelStudioError("cannot reach Label Studio"),
                      RuntimeError("a bug")]
    w = make_worker()
    try:
        w.notify(urgent=True)
        s = settle(w)
        assert steps["calls"] == 4 and s["steps"] == 1 and s["busy"] == 1
        assert s["failures"] == 0 and s["last_error"] is None  # reset by the step that went through
        assert s["failed_total"] == 2 and "RuntimeError: a bug" in s["last_failure"]  # the outage leaves a trace
    finally:
        w.stop()


def test_json_log_lines_never_carry_the_secret(capsys) -> None:
    import json
    import logging

    serve_mod.configure_logging(json_lines=True, secrets=[SECRET])
    try:
        logging.getLogger("labelloop.serve").warning("header was %s", SECRET, extra={"run": 3})
        line = capsys.readouterr().err.strip().splitlines()[-1]
        record = json.loads(line)
        assert record["msg"] == "header was ***" and record["run"] == 3 and record["level"] == "warning"
        assert SECRET not in line
    finally:
        logging.getLogger().handlers[:] = []


def test_predictions_see_the_neighbour_weight_of_the_models_labels(tmp_path, demo, demo_embedded,
                                                                   embedding_cache) -> None:
    """/predict scores pool texts and new texts on the features of the model's own label count: past half
    the pool the weight has faded, and new texts are smoothed over the pool with that weight."""
    import json

    import numpy as np

    from labelloop.config import load_config
    from labelloop.data import demo_paths
    from labelloop.features import NeighbourSmoothing
    from labelloop.serve import CampaignHolder, Predictor

    train, test = demo
    X, X_test = demo_embedded
    (tmp_path / "labelloop.toml").write_text(
        f'labels = {json.dumps(train.label_set)}\n[data]\npath = "{demo_paths()[0]}"\nid_column = "id"\n'
        f'[labelstudio]\nproject = "p"\n[model]\ncache_dir = "{embedding_cache}"\n[state]\npath = "s.db"\n')
    config = load_config(tmp_path / "labelloop.toml")
    predictor = Predictor(config, CampaignHolder(config))
    new = predictor.features(test.texts[:5], [None] * 5, labeled=700)  # 21 of 721 left: weight 0.05
    np.testing.assert_allclose(new, NeighbourSmoothing(6, 0.05)(X_test[:5], X), atol=1e-5)
    known = predictor.features(train.texts[:3], train.ids[:3], labeled=700)
    np.testing.assert_allclose(known, NeighbourSmoothing(6, 0.05)(X)[:3], atol=1e-5)
    early = predictor.features(test.texts[:5], [None] * 5, labeled=10)
    np.testing.assert_allclose(early, NeighbourSmoothing(6, 0.5)(X_test[:5], X), atol=1e-5)
