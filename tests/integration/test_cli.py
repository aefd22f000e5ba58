"""The whole loop through the `labelloop` command: push, annotate, pull, push again with the pulled labels."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from lshelpers import annotate, run_cli

from labelloop.data import demo_paths

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]


def test_push_pull_push_through_the_cli(ls_server, sdk, connector, title, monkeypatch, capsys,
                                        tmp_path) -> None:
    frame = pd.read_csv(demo_paths()[0], dtype=str).head(60)
    frame.loc[frame.index[25:], "label"] = None  # 25 known labels, 35 texts to choose from
    pool = tmp_path / "pool.csv"
    frame.to_csv(pool, index=False)
    out = tmp_path / "labels.jsonl"
    def cli(*args: str) -> tuple[int, str]:
        return run_cli(monkeypatch, capsys, ls_server.url, ls_server.api_key, *args)
    push = ("push", "--data", str(pool), "--id-column", "id", "--project", title, "--n", "8",
            "--cache-dir", str(tmp_path / "cache"))

    code, err = cli(*push)
    assert code == 0, err
    info = connector.project(title)
    assert info.labels == sorted(frame["label"].dropna().unique())
    tasks = connector.existing(info.id)
    assert len(tasks) == 8 and set(tasks) <= set(frame["id"][25:])
    assert all(len(t.model_versions) == 1 for t in tasks.values())

    code, err = cli(*push)  # same labels, same model: the same 8 texts, nothing new
    assert code == 0 and "Created 0 task(s); 8 already there" in err
    assert connector.existing_ids(info.id) == {k: v.task_id for k, v in tasks.items()}

    truth = dict(zip(frame["id"], pd.read_csv(demo_paths()[0], dtype=str).head(60)["label"], strict=True))
    picked = sorted(tasks)
    for our_id in picked[:5]:
        label = truth[our_id] if truth[our_id] in info.labels else info.labels[0]
        annotate(sdk, tasks[our_id].task_id, label)
    annotate(sdk, tasks[picked[5]].task_id, None)

    code, err = cli("pull", "--project", title, "--out", str(out))
    assert code == 0 and "5 text(s) labeled, 1 only skipped" in err
    lines = out.read_text().splitlines()
    rows = [json.loads(x) for x in lines]
    assert [r["event"] for r in rows] == ["created"] * 6 and {r["id"] for r in rows} == set(picked[:6])
    code, err = cli("pull", "--project", str(info.id), "--out", str(out))
    assert code == 0 and "0 new record(s)" in err and out.read_text().splitlines() == lines

    code, err = cli(*push, "--labels-file", str(out))  # 30 labels now: a new model, 8 new texts
    assert code == 0 and "Created 8 task(s); 0 already there" in err
    after = connector.existing(info.id)
    assert len(after) == 16 and set(tasks) < set(after)
    for written in tmp_path.rglob("*"):
        assert not written.is_file() or ls_server.api_key.encode() not in written.read_bytes()


def test_push_takes_vectors_from_an_embedding_column(ls_server, connector, title, monkeypatch, capsys,
                                                    tmp_path) -> None:
    """Vectors made elsewhere: no encoder runs, the model version is tied to the column's identity."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    labels = ["billing", "bug"] * 15
    centres = {"billing": np.eye(8)[0], "bug": np.eye(8)[1]}
    vectors = [(centres[lab] + rng.normal(scale=0.2, size=8)).tolist() for lab in labels]
    known = [lab if i < 10 else None for i, lab in enumerate(labels)]
    pool = tmp_path / "pool.parquet"
    pq.write_table(pa.table({"id": [f"t{i}" for i in range(30)], "text": [f"ticket number {i}" for i in range(30)],
                             "label": known, "emb": vectors}), pool)

    code, err = run_cli(monkeypatch, capsys, ls_server.url, ls_server.api_key, "push", "--data", str(pool),
                        "--id-column", "id", "--project", title, "--n", "5", "--embedding-column", "emb",
                        "--cache-dir", str(tmp_path / "cache"))
    assert code == 0, err
    tasks = connector.existing(connector.project(title).id)
    assert len(tasks) == 5 and set(tasks) <= {f"t{i}" for i in range(10, 30)}
    assert all(len(t.model_versions) == 1 for t in tasks.values())
    assert not (tmp_path / "cache").exists()  # the encoder never ran

    code, err = run_cli(monkeypatch, capsys, ls_server.url, ls_server.api_key, "push", "--data", str(pool),
                        "--project", title, "--embedding-column", "emb", "--model", str(tmp_path))
    assert code == 2 and "not both" in err
