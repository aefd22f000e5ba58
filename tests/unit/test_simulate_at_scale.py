"""Simulation on big pools: the ceiling on a stratified sample, vectors from a Parquet column."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from labelloop.cli import app
from labelloop.errors import DataError
from labelloop.simulate import full_pool, simulate, stratified_sample


def test_stratified_sample_keeps_each_class_share_and_every_class():
    y = np.repeat([0, 1, 2, 3], [700, 200, 95, 5])
    rows = stratified_sample(y, 100, np.random.default_rng(0))
    assert len(rows) == 100 and len(set(rows.tolist())) == 100
    assert np.all(np.diff(rows) > 0)
    assert np.bincount(y[rows]).tolist() == [70, 20, 9, 1]  # 9.5 and 0.5 round by largest remainder
    rare = stratified_sample(np.repeat([0, 1], [999, 1]), 10, np.random.default_rng(0))
    assert 999 in rare.tolist()  # a class of one row is never left out


def test_stratified_sample_is_everything_when_asked_for_as_many():
    y = np.array([0, 1, 1])
    assert stratified_sample(y, 3, np.random.default_rng(0)).tolist() == [0, 1, 2]


def blobs(n, k=4, d=8, seed=0, spread=0.6):
    g = np.random.default_rng(seed)
    centres = np.random.default_rng(99).normal(size=(k, d))  # the same classes in every file
    y = g.integers(k, size=n)
    X = (centres[y] + g.normal(scale=spread, size=(n, d))).astype(np.float32)
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


def test_the_ceiling_is_trained_on_at_most_max_rows_and_says_so():
    X, y = blobs(500)
    Xt, yt = blobs(200, seed=1)
    capped = full_pool(X, y, Xt, yt, 4, max_rows=120)
    assert capped["n"] == 120
    assert full_pool(X, y, Xt, yt, 4, max_rows=None)["n"] == 500
    res = simulate(X, y, Xt, yt, 4, initial=20, batch_size=20, budget=40, ceiling_max=150)
    assert res["full_pool"]["n"] == 150
    assert 0.5 < res["full_pool"]["accuracy"] <= 1


def write_parquet(path, X, y, ids=True):
    emb = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), X.shape[1])
    cols = {"text": [f"{path.stem} text {i}" for i in range(len(y))], "label": [f"c{c}" for c in y], "emb": emb}
    pq.write_table(pa.table(cols), path, row_group_size=128)
    return path


def test_cli_simulates_from_a_parquet_embedding_column_end_to_end(tmp_path):
    X, y = blobs(600)
    Xt, yt = blobs(200, seed=1)
    train, test = write_parquet(tmp_path / "pool.parquet", X * 3.0, y), write_parquet(tmp_path / "test.parquet", Xt, yt)
    out = tmp_path / "r.json"
    result = CliRunner().invoke(app, [
        "simulate", "--train", str(train), "--test", str(test), "--embedding-column", "emb", "--neighbours", "0",
        "--strategy", "margin-kmeans,random", "--initial", "20", "--batch-size", "20", "--budget", "80",
        "--ceiling-max", "300", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [d["strategy"] for d in data] == ["margin-kmeans", "random"]
    for d in data:
        assert d["model"].startswith("column:emb:8d:")
        assert d["features"] == "none"
        assert (d["n_pool"], d["full_pool"]["n"]) == (600, 300)
        assert [r["n_labeled"] for r in d["rounds"]] == [20, 40, 60, 80]
        assert d["rounds"][-1]["accuracy"] > 0.5  # the vectors reached the head, scaled to unit length
        assert all(r["cpu_seconds"] > 0 for r in d["rounds"])


def test_cli_refuses_bad_vectors_in_one_line(tmp_path):
    X, y = blobs(50)
    X[7] = 0
    train = write_parquet(tmp_path / "pool.parquet", X, y)
    test = write_parquet(tmp_path / "test.parquet", *blobs(20, seed=1))
    result = CliRunner().invoke(app, ["simulate", "--train", str(train), "--test", str(test),
                                      "--embedding-column", "emb", "--out", str(tmp_path / "r.json")])
    # A DataError is what `labelloop` prints as one line with exit code 2 (cli.main).
    assert isinstance(result.exception, DataError)
    assert "1 zero vector(s) in column 'emb' at data rows 8" in str(result.exception)
    result = CliRunner().invoke(app, ["simulate", "--train", str(train), "--test", str(test),
                                      "--embedding-column", "vector", "--out", str(tmp_path / "r.json")])
    assert isinstance(result.exception, DataError) and "no embedding column 'vector'" in str(result.exception)


@pytest.mark.parametrize("bad", [["--ceiling-max", "0"]])
def test_cli_rejects_a_ceiling_of_no_rows(tmp_path, bad):
    result = CliRunner().invoke(app, ["simulate", *bad, "--out", str(tmp_path / "r.json")])
    assert result.exit_code != 0
