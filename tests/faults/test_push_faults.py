"""A push (and a pull) under faults, against the real Label Studio: exactly one task per id afterwards.

Each case runs real `labelloop` processes. The server is paused with SIGSTOP (the whole process
group the start script made) and always resumed in a ``finally``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from labelloop.data import demo_paths

pytestmark = [pytest.mark.labelstudio, pytest.mark.faults, pytest.mark.slow]

def pool_file(tmp_path: Path, known: int = 40) -> Path:
    frame = pd.read_csv(demo_paths()[0], dtype=str)
    frame.loc[frame.index[known:], "label"] = None
    path = tmp_path / "pool.csv"
    frame.to_csv(path, index=False)
    return path


def labelloop(server, tmp_path: Path, *args: str, timeout_s: float = 4.0) -> subprocess.Popen:
    env = {**os.environ, "LABEL_STUDIO_URL": server.url, "LABEL_STUDIO_API_KEY": server.api_key,
           "LABELLOOP_CACHE_DIR": str(tmp_path / "cache"), "LABELLOOP_LS_TIMEOUT": str(timeout_s)}
    return subprocess.Popen([sys.executable, "-m", "labelloop.cli", *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(proc: subprocess.Popen, limit: float = 600) -> tuple[int, str]:
    try:
        _, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"labelloop did not finish within {limit:.0f} s:\n{err[-2000:]}")
    return proc.returncode, err


def tasks_per_id(sdk, project_id: int) -> Counter[str]:
    rows = sdk.tasks.list(project=project_id, fields="all", include="id,data", page_size=1000)
    return Counter(t.data["labelloop_id"] for t in rows)


def server_pid(server) -> int:
    """The start script's process: the leader of Label Studio's process group."""
    from lsfixtures import LS_VENV

    return int(json.loads((LS_VENV / "run" / f"{server.port}.json").read_text())["pid"])


def test_a_server_paused_during_the_import_leaves_one_task_per_id(ls_server, sdk, connector, title,
                                                                  tmp_path) -> None:
    pool = pool_file(tmp_path)
    labels = sorted(pd.read_csv(pool, dtype=str)["label"].dropna().unique())
    info = connector.ensure_project(title, labels)
    push = labelloop(ls_server, tmp_path, "push", "--data", str(pool), "--id-column", "id", "--project",
                     str(info.id), "--n", "400", "--import-batch-size", "40")
    pid, paused = server_pid(ls_server), False
    try:
        deadline = time.monotonic() + 300
        while push.poll() is None and time.monotonic() < deadline:  # wait for the first batch to land
            if sum(tasks_per_id(sdk, info.id).values()) > 0:
                os.killpg(pid, signal.SIGSTOP)
                paused = True
                break
            time.sleep(0.05)
        assert paused, "the push ended before any task landed"
        time.sleep(4.0 + 4.0)  # past the client's 4 s timeout: the import in flight is now uncertain
    finally:
        os.killpg(pid, signal.SIGCONT)
    code, err = finish(push)
    assert code == 0, err[-2000:]
    assert "Created 400 task(s); 0 already there" in err
    counts = tasks_per_id(sdk, info.id)
    assert len(counts) == 400 and set(counts.values()) == {1}, Counter(counts.values())


def test_two_pushers_at_once_leave_one_task_per_id(ls_server, sdk, connector, title, tmp_path) -> None:
    pool = pool_file(tmp_path)
    labels = sorted(pd.read_csv(pool, dtype=str)["label"].dropna().unique())
    info = connector.ensure_project(title, labels)
    args = ("push", "--data", str(pool), "--id-column", "id", "--project", str(info.id), "--n", "300",
            "--import-batch-size", "30")
    from labelloop import Encoder, embed  # fill the embedding cache first, so both race on the import

    embed(pd.read_csv(pool, dtype=str)["text"].tolist(), Encoder(), tmp_path / "cache")
    first, second = labelloop(ls_server, tmp_path, *args), labelloop(ls_server, tmp_path, *args)
    (code1, err1), (code2, err2) = finish(first), finish(second)
    assert code1 == 0 and code2 == 0, err1[-1500:] + err2[-1500:]
    assert sorted(e.count("Created 300 task(s); 0 already there") for e in (err1, err2)) == [0, 1], (err1, err2)
    assert sorted(e.count("Created 0 task(s); 300 already there") for e in (err1, err2)) == [0, 1], (err1, err2)
    counts = tasks_per_id(sdk, info.id)
    assert len(counts) == 300 and set(counts.values()) == {1}, Counter(counts.values())


def test_two_pulls_at_once_into_one_file_write_each_record_once(ls_server, sdk, connector, title,
                                                                tmp_path) -> None:
    from lshelpers import annotate

    from labelloop.labelstudio import PushItem

    info = connector.ensure_project(title, ["billing", "bug", "other"])
    report = connector.push(info.id, [PushItem(f"d{i:03d}", f"text {i}") for i in range(120)])
    for _our_id, task_id in list(report.task_ids.items())[:60]:
        annotate(sdk, task_id, "bug")
    out = tmp_path / "labels.jsonl"
    pulls = [labelloop(ls_server, tmp_path, "pull", "--project", str(info.id), "--out", str(out))
             for _ in range(2)]
    results = [finish(p, 300) for p in pulls]
    assert [code for code, _ in results] == [0, 0], results
    annotations = Counter(json.loads(line)["annotation_id"] for line in out.read_text().splitlines())
    assert len(annotations) == 60 and set(annotations.values()) == {1}
