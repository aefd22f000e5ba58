"""The Ray path's pure parts and its wiring into `labelloop embed`, without a cluster (tests/integration has one)."""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelloop import ray_embed
from labelloop.errors import LabelloopError
from labelloop.ray_embed import _in_order, block_rows, worker_error


def test_blocks_give_each_actor_about_four_within_bounds():
    assert block_rows(10_000, 2) == 1250  # 8 blocks for 2 actors
    assert block_rows(100, 2) == 64  # never tiny: each block is a round-trip
    assert block_rows(10_000_000, 4) == 2048  # never huge: the last block must not hold everyone up
    with pytest.raises(ValueError):
        block_rows(0, 2)


def test_a_workers_labelloop_error_is_the_one_line_shown():
    wrapped = ("The actor died because of an error raised in its creation task, ray::MapWorker.__init__()\n"
               '  File "ray_embed.py", line 60, in __init__\n    raise ModelError(\n'
               "labelloop.errors.ModelError: the encoder on this Ray node is not the driver's\n")
    assert worker_error(wrapped) == "the encoder on this Ray node is not the driver's"
    assert worker_error("Traceback ...\n  File x\nMemoryError: out of memory\n") == "MemoryError: out of memory"


def batch(rows: list[int], dim: int = 3) -> pa.Table:
    flat = pa.array(np.arange(len(rows) * dim, dtype=np.float32), pa.float32())
    return pa.table({"row": pa.array(rows, pa.int64()), "embedding": pa.FixedSizeListArray.from_arrays(flat, dim),
                     "cpu_seconds": pa.array([0.25] * len(rows), pa.float64())})


def test_batches_come_back_as_row_offsets_and_vectors_and_gaps_are_refused():
    got = list(_in_order([batch([0, 1]), batch([]), batch([2, 3, 4])], total=5))
    assert [start for start, _, _ in got] == [0, 2]
    assert [cpu for _, _, cpu in got] == [0.5, 0.75]  # each row carries its share of its block's CPU time
    assert got[1][1].shape == (3, 3) and got[1][1].dtype == np.float32
    assert np.array_equal(got[1][1][1], [3, 4, 5])
    with pytest.raises(LabelloopError, match="out of order"):
        list(_in_order([batch([0, 1]), batch([3, 4])], total=5))
    with pytest.raises(LabelloopError, match="returned 2 of 5 rows"):
        list(_in_order([batch([0, 1])], total=5))


@pytest.mark.parametrize(("args", "address"), [(["--ray"], "local"), (["--ray", "auto"], "auto"),
                                                (["--ray", "10.0.0.5:6379"], "10.0.0.5:6379")])
def test_embed_streams_what_ray_returns_beside_the_input_columns(tmp_path, monkeypatch, capsys, args, address):
    frame = pd.DataFrame({"id": ["007", "8", "9", "10", "11"], "text": ["a b", "c", "d e f", "g", "h i"],
                          "note": ["x", None, "y", None, "z"]})
    frame.to_csv(tmp_path / "in.csv", index=False)
    calls = []

    def fake_embed_on_ray(texts, encoder, where, *, env, progress):
        calls.append((list(texts), where, env))
        vectors = np.eye(len(texts), 4, dtype=np.float32)
        yield ray_embed.Returned(0, vectors[:2], 0.5)  # two row groups: the file is written as Ray returns them
        yield ray_embed.Returned(2, vectors[2:], 1.0)

    monkeypatch.setattr(ray_embed, "embed_on_ray", fake_embed_on_ray)
    monkeypatch.delenv("LABELLOOP_CACHE_DIR", raising=False)
    out = tmp_path / "out.parquet"
    from labelloop.cli import main

    monkeypatch.setattr(sys, "argv", ["labelloop", "embed", "--data", str(tmp_path / "in.csv"), "--id-column", "id",
                                      "--out", str(out), *args])
    with pytest.raises(SystemExit) as code:
        main()
    err = capsys.readouterr().err
    assert code.value.code == 0, err
    assert "embedded 5 text(s) on Ray" in err and "workers 300.00 CPU ms/text" in err, err
    assert calls == [(frame["text"].tolist(), address, {})]
    table = pq.read_table(out)
    assert table.column_names == ["id", "text", "note", "embedding"]
    assert table.column("id").to_pylist() == ["007", "8", "9", "10", "11"]  # read as text, as the local path does
    assert table.column("note").to_pylist() == ["x", None, "y", None, "z"]
    assert np.array_equal(np.stack(table.column("embedding").to_numpy(zero_copy_only=False)), np.eye(5, 4))
    assert pq.ParquetFile(out).metadata.num_row_groups == 2
    assert not list(tmp_path.glob(".tmp-*"))


def test_ray_without_a_value_means_the_local_ray_wherever_it_stands():
    from labelloop.cli.embed import optional_ray_address

    assert optional_ray_address(["embed", "--ray", "--out", "o.parquet"]) == ["embed", "--ray=local", "--out", "o.parquet"]
    assert optional_ray_address(["embed", "--ray"]) == ["embed", "--ray=local"]
    assert optional_ray_address(["embed", "--ray", "h:6379"]) == ["embed", "--ray", "h:6379"]
    assert optional_ray_address(["embed", "--text-column", "--ray"]) == ["embed", "--text-column", "--ray=local"]
