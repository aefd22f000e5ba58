"""``labelloop embed`` as a real subprocess: output columns, unit vectors, a warm rerun, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from labelloop.data import demo_paths

pytestmark = pytest.mark.slow


def run(*args: str, cache) -> subprocess.CompletedProcess:
    env = {**os.environ, "LABELLOOP_CACHE_DIR": str(cache)}
    return subprocess.run([sys.executable, "-m", "labelloop.cli", "embed", *args], capture_output=True,
                          text=True, env=env, timeout=600)


def test_embed_writes_every_input_column_plus_unit_vectors_and_a_rerun_embeds_nothing(tmp_path):
    frame = pd.read_csv(demo_paths()[1]).head(120)
    frame["extra"] = range(len(frame))
    data = tmp_path / "tickets.csv"
    frame.to_csv(data, index=False)
    out = tmp_path / "out.parquet"
    first = run("--data", str(data), "--id-column", "id", "--out", str(out), cache=tmp_path / "cache")
    assert first.returncode == 0, first.stderr
    assert "embedded 120 new text(s), 0 from the cache" in first.stderr and "texts/s" in first.stderr
    table = pq.read_table(out)
    assert table.column_names == [*frame.columns, "embedding"]
    kind = table.schema.field("embedding").type
    assert pa.types.is_fixed_size_list(kind) and kind.list_size == 384 and kind.value_type == pa.float32()
    vectors = np.stack(table.column("embedding").to_numpy(zero_copy_only=False))
    assert vectors.dtype == np.float32 and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert table.column("id").to_pylist() == frame["id"].tolist()
    assert list((tmp_path / "cache" / "onnx").glob("*/model.onnx"))  # the graph sits beside the vectors

    again = run("--data", str(data), "--id-column", "id", "--out", str(out), cache=tmp_path / "cache")
    assert again.returncode == 0, again.stderr
    assert "embedded 0 new text(s), 120 from the cache" in again.stderr
    rerun = np.stack(pq.read_table(out).column("embedding").to_numpy(zero_copy_only=False))
    assert np.array_equal(rerun, vectors)
    assert not list(tmp_path.glob(".tmp-*"))


def test_embed_with_a_missing_column_is_exit_2_and_one_line(tmp_path):
    data = tmp_path / "t.csv"
    data.write_text("body\nhello\n")
    result = run("--data", str(data), "--out", str(tmp_path / "o.parquet"), cache=tmp_path / "cache")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "text" in lines[0] and "column" in lines[0], result.stderr
    assert not (tmp_path / "o.parquet").exists()
