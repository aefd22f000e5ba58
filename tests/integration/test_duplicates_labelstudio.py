"""A CSV with identical texts and no id column, against a real Label Studio: each distinct text is one task,
and its one label counts for every copy."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import tomlkit
from lshelpers import annotate, run_cli

from labelloop.config import load_config
from labelloop.data import content_id, demo_paths
from labelloop.status import summary
from labelloop.sync import sync

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

DISTINCT = 30
COPIES = {k: 3 for k in range(5)} | {k: 2 for k in range(5, 10)}  # 10 texts repeated: 15 extra rows


def _backlog(folder: Path, with_labels: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The first 30 demo tickets as a backlog of 45 rows (shuffled), without ids; and the distinct texts."""
    demo = pd.read_csv(demo_paths()[0], dtype=str).head(DISTINCT)
    rows = demo.loc[[k for k in range(DISTINCT) for _ in range(COPIES.get(k, 1))]].sample(frac=1, random_state=0)
    rows[["text", "label"] if with_labels else ["text"]].to_csv(folder / "pool.csv", index=False)
    return rows, demo


def _tasks(sdk, project_id: int) -> list[dict]:
    return [{"id": t.id, "data": t.data} for t in sdk.tasks.list(project=project_id, fields="all", page_size=1000)]


def test_sync_sends_each_distinct_text_once_and_a_label_covers_every_copy(
    tmp_path, title, ls_server, embedding_cache, sdk, monkeypatch
) -> None:
    rows, demo = _backlog(tmp_path)
    config_path = tmp_path / "labelloop.toml"
    config_path.write_text(tomlkit.dumps({
        "labels": sorted(pd.read_csv(demo_paths()[0], dtype=str)["label"].unique()),
        "data": {"path": "pool.csv"},  # no id column: ids come from the texts
        "labelstudio": {"project": title},
        "loop": {"budget": 100, "queue_target": 100, "audit_fraction": 0},
        "stop": {"on": ["budget"]},
        "model": {"cache_dir": str(embedding_cache)},
        "state": {"path": "state.db"},
    }))
    monkeypatch.setenv("LABEL_STUDIO_URL", ls_server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", ls_server.api_key)
    config = load_config(config_path)

    first = sync(config)
    assert first.pushed_active == DISTINCT  # the queue takes the whole pool: 30 questions for 45 rows
    project_id = int(summary(config)["project_id"])
    tasks = _tasks(sdk, project_id)
    texts = Counter(t["data"]["text"] for t in tasks)
    assert len(tasks) == DISTINCT and set(texts) == set(demo["text"]) and max(texts.values()) == 1
    assert {t["data"]["labelloop_id"] for t in tasks} == {content_id(x) for x in demo["text"]}

    tripled = demo["text"][0]
    task = next(t for t in tasks if t["data"]["text"] == tripled)
    annotate(sdk, task["id"], demo["label"][0])
    single = next(t for t in tasks if t["data"]["text"] == demo["text"][20])
    annotate(sdk, single["id"], demo["label"][20])
    sync(config)
    s = summary(config)
    assert s["labeled"] == 2 and s["rows"] == {"items": DISTINCT, "rows": len(rows), "labeled": 4}
    assert len(_tasks(sdk, project_id)) == DISTINCT  # nothing sent twice


def test_push_and_pull_on_a_backlog_with_copies_and_conflicting_labels(
    tmp_path, title, ls_server, sdk, connector, monkeypatch, capsys
) -> None:
    rows, demo = _backlog(tmp_path, with_labels=True)
    frame = pd.read_csv(tmp_path / "pool.csv", dtype=str)
    known = set(demo["text"][:12])  # 12 texts labeled (copies included), 18 to ask
    frame.loc[~frame["text"].isin(known), "label"] = None
    conflicted = demo["text"][0]  # three copies: one of them now disagrees with the other two
    other = next(lab for lab in sorted(demo["label"].unique()) if lab != demo["label"][0])
    frame.loc[frame.index[frame["text"] == conflicted][0], "label"] = other
    frame.to_csv(tmp_path / "pool.csv", index=False)

    code, err = run_cli(monkeypatch, capsys, ls_server.url, ls_server.api_key, "push", "--data",
                        str(tmp_path / "pool.csv"), "--project", title, "--n", "50",
                        "--labels", ",".join(sorted(pd.read_csv(demo_paths()[0], dtype=str)["label"].unique())),
                        "--cache-dir", str(tmp_path / "cache"))
    said = " ".join(err.split())
    assert code == 0, err
    assert "1 text(s) appear several times with different labels" in said and "×2" in said  # reported, not fatal
    assert f"12 of {DISTINCT} texts labeled ({sum(COPIES.get(k, 1) for k in range(12))} of {len(rows)} data rows" in said
    info = connector.project(title)
    tasks = _tasks(sdk, info.id)
    assert len(tasks) == DISTINCT - 12  # every unlabeled distinct text, once
    assert Counter(t["data"]["text"] for t in tasks).most_common(1)[0][1] == 1
    assert {t["data"]["text"] for t in tasks} == set(demo["text"][12:])
