"""`labelloop embed --ray` on a real local Ray cluster (2 CPUs): the local path's vectors and columns."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from rayfixtures import ray_cluster

pytest.importorskip("ray.data", reason="needs labelloop[ray]")

BANKING77 = Path(__file__).resolve().parents[3] / "shared" / "data" / "banking77"

pytestmark = [
    pytest.mark.ray,
    pytest.mark.slow,
    pytest.mark.skipif(not (BANKING77 / "train.csv").exists(), reason="BANKING77 not at ../shared/data/banking77"),
]


@pytest.fixture(scope="module")
def cluster():
    yield from ray_cluster(num_cpus=2)


def run_embed(*args: str, cache: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "LABELLOOP_CACHE_DIR": str(cache), **(env or {})}
    return subprocess.run([sys.executable, "-m", "labelloop.cli", "embed", *args], capture_output=True,
                          text=True, env=env, timeout=900)


def vectors_of(table) -> np.ndarray:
    return np.stack(table.column("embedding").to_numpy(zero_copy_only=False))


def test_embedding_on_ray_gives_the_local_vectors_beside_the_input_columns(cluster, tmp_path):
    frame = pd.read_csv(BANKING77 / "train.csv", dtype=str, keep_default_na=False).head(3000)
    frame.insert(0, "id", [f"b{i:05d}" for i in range(len(frame))])
    frame["n"] = [str(i * 7) for i in range(len(frame))]
    data = tmp_path / "b77.csv"
    frame.to_csv(data, index=False)
    cache = tmp_path / "cache"
    local = run_embed("--data", str(data), "--id-column", "id", "--out", str(tmp_path / "local.parquet"), cache=cache)
    assert local.returncode == 0, local.stderr

    start = time.perf_counter()
    remote = run_embed("--data", str(data), "--id-column", "id", "--out", str(tmp_path / "ray.parquet"),
                       "--ray", cluster.address, cache=cache, env=cluster.env)
    print(f"embed --ray on {len(frame)} texts: {time.perf_counter() - start:.1f} s wall", file=sys.stderr)
    assert remote.returncode == 0, remote.stderr
    print(remote.stderr.strip().splitlines()[-1], file=sys.stderr)  # its own summary: texts/s, CPU ms/text
    assert f"embedded {len(frame):,} text(s) on Ray ({cluster.address})" in remote.stderr, remote.stderr

    ours, theirs = pq.read_table(tmp_path / "local.parquet"), pq.read_table(tmp_path / "ray.parquet")
    assert theirs.schema.equals(ours.schema, check_metadata=True)  # same columns, types and pandas metadata
    assert theirs.drop_columns(["embedding"]).equals(ours.drop_columns(["embedding"]))
    assert theirs.column_names == [*frame.columns, "embedding"]
    for column in frame.columns:  # the input's rows, in the input's order
        assert theirs.column(column).to_pylist() == frame[column].tolist(), column
    a, b = vectors_of(ours), vectors_of(theirs)
    assert b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1, atol=1e-5)
    cosine = np.sum(a * b, axis=1)
    assert cosine.min() >= 0.9999, (cosine.argmin(), cosine.min())
    assert not list(tmp_path.glob(".tmp-*"))


MISMATCH = """
import sys
from labelloop.embeddings import Encoder
from labelloop.errors import LabelloopError
from labelloop.ray_embed import embed_on_ray

encoder = Encoder()
encoder.__dict__["identity"] = "another-model"  # what a node with other weights would disagree with
try:
    list(embed_on_ray(["card declined", "refund please"], encoder, sys.argv[1]))
except LabelloopError as exc:
    print("caught:", exc)  # Ray may print the worker's traceback on stdout too
"""


def test_a_node_whose_encoder_differs_from_the_drivers_stops_the_job_with_one_line(cluster, tmp_path):
    # A driver process of its own, like the CLI: Ray reads its connection settings once per process.
    done = subprocess.run([sys.executable, "-c", MISMATCH, cluster.address], capture_output=True, text=True,
                          env={**os.environ, **cluster.env}, timeout=600)
    caught = [line for line in done.stdout.splitlines() if line.startswith("caught: ")]
    assert len(caught) == 1, done.stdout + done.stderr
    message = caught[0].removeprefix("caught: ")
    assert re.fullmatch(r"--ray \S+: the embedding job failed: the encoder on this Ray node \(all-MiniLM-L6-v2, "
                        r"identity \w+\) is not the driver's \(another-model\); install the same labelloop and "
                        r"model on every node", message), message
