"""The on-disk embedding store: memory-mapped segments, binary-search lookups, lazy checks, old shards, kills."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

from labelloop import vectors as store
from labelloop.vectors import CacheWarning, EmbeddingCache, merge_plan, text_key, text_keys

SRC = Path(store.__file__).resolve().parents[1]


def _data(n: int, dim: int = 8, seed: int = 0, prefix: str = "t") -> tuple[np.ndarray, np.ndarray]:
    keys = text_keys([f"{prefix} {i}" for i in range(n)])
    vectors = np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)
    return keys, vectors


@pytest.fixture
def small_blocks(monkeypatch):
    """Blocks of 4 rows, so a few dozen vectors span many checksummed blocks."""
    monkeypatch.setattr(store, "BLOCK_ROWS", 4)


def test_text_keys_are_text_key_in_one_array() -> None:
    texts = ["a", "b", "é"]
    assert text_keys(texts).dtype == np.dtype("S64")
    assert text_keys(texts).tolist() == [text_key(t) for t in texts]


def test_put_then_lookup_returns_each_vector_at_its_row_and_leaves_misses_alone(tmp_path, small_blocks) -> None:
    cache = EmbeddingCache(tmp_path, "m")
    keys, vectors = _data(30)
    cache.put(keys[:20], vectors[:20])
    cache.put(keys[20:], vectors[20:])
    query = np.concatenate([keys[::-1], text_keys(["never stored"])])
    out = np.full((len(query), 8), 7.0, dtype=np.float32)
    fresh = EmbeddingCache(tmp_path, "m")
    found, got = fresh.lookup(query, out)
    assert got is out
    assert found.tolist() == [True] * 30 + [False]
    assert np.array_equal(out[:30], vectors[::-1]) and np.all(out[30] == 7.0)
    assert len(fresh) == 30


def test_a_key_stored_twice_counts_once(tmp_path) -> None:
    cache = EmbeddingCache(tmp_path, "m")
    keys, vectors = _data(5)
    cache.put(keys, vectors)
    cache.put(keys[:2], vectors[:2])
    assert len(EmbeddingCache(tmp_path, "m")) == 5


def test_lookup_reads_only_what_it_returns(tmp_path) -> None:
    """No pool-sized dict and no whole matrix in memory: the segment is memory-mapped and opened once."""
    keys, vectors = _data(50_000, dim=64)
    EmbeddingCache(tmp_path, "m").put(keys, vectors)  # 12.8 MB of vectors, 3.2 MB of keys
    cache = EmbeddingCache(tmp_path, "m")
    tracemalloc.start()
    try:
        for start in (0, 20_000, 40_000):
            found, out = cache.lookup(keys[start : start + 10])
            assert found.all() and np.array_equal(out, vectors[start : start + 10])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2_000_000, f"a lookup of 10 keys allocated {peak:,} bytes"
    assert cache.opened == 1
    assert not [v for v in vars(cache).values() if isinstance(v, dict)]


def test_a_damaged_block_is_found_when_first_read_and_drops_its_segment(tmp_path, small_blocks) -> None:
    """The checks' trade-off: vectors are verified per block when a lookup first touches them."""
    keys, vectors = _data(40)
    EmbeddingCache(tmp_path, "m").put(keys, vectors)
    (segment,) = (tmp_path / "m").glob("seg-*")
    sorted_rows = np.argsort(keys)
    raw = bytearray((segment / "vectors.npy").read_bytes())
    raw[-5] ^= 0x10  # inside the last block (rows 36-39 in key order)
    (segment / "vectors.npy").write_bytes(bytes(raw))
    cache = EmbeddingCache(tmp_path, "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        found, out = cache.lookup(keys[sorted_rows[:8]])  # the first two blocks: untouched, no warning
    assert found.all() and np.array_equal(out, vectors[sorted_rows[:8]])
    with pytest.warns(CacheWarning, match="checksum mismatch in rows from 36"):
        found, _ = cache.lookup(keys[sorted_rows[36:]])
    assert not found.any() and not segment.exists()
    assert not cache.lookup(keys[sorted_rows[:8]])[0].any()  # the whole segment went: its texts are re-embedded


def test_old_npz_shards_are_read_then_moved_into_a_segment_at_the_first_write(tmp_path) -> None:
    keys, vectors = _data(10)
    folder = tmp_path / "m"
    folder.mkdir()
    h = hashlib.sha256(f"{keys.dtype.str}{keys.shape}{vectors.dtype.str}{vectors.shape}".encode())
    h.update(keys.tobytes() + vectors.tobytes())
    np.savez(folder / "shard-old.npz", keys=keys, vectors=vectors, checksum=np.array(h.hexdigest().encode()))
    cache = EmbeddingCache(tmp_path, "m")
    found, out = cache.lookup(keys)
    assert found.all() and np.array_equal(out, vectors)
    assert not list(folder.glob("seg-*"))  # reading writes nothing
    new_keys, new_vectors = _data(3, prefix="new")
    cache.put(new_keys, new_vectors)
    assert not list(folder.glob("*.npz")) and len(list(folder.glob("seg-*"))) == 1
    found, out = EmbeddingCache(tmp_path, "m").lookup(np.concatenate([keys, new_keys]))
    assert found.all() and np.array_equal(out, np.concatenate([vectors, new_vectors]))


KILLED_MID_WRITE = """
import os, signal, sys
import numpy as np
from labelloop import vectors
from labelloop.vectors import EmbeddingCache, text_keys
cache = EmbeddingCache(sys.argv[1], "m")
rng = np.random.default_rng(0)
cache.put(text_keys(["first", "second"]), rng.normal(size=(2, 8)).astype(np.float32))
vectors._fsync = lambda path: os.kill(os.getpid(), signal.SIGKILL)  # dies with the arrays written, uncommitted
cache.put(text_keys(["third"]), rng.normal(size=(1, 8)).astype(np.float32))
"""


def test_a_process_killed_mid_write_leaves_a_temp_folder_that_is_ignored(tmp_path) -> None:
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.run([sys.executable, "-c", KILLED_MID_WRITE, str(tmp_path)], env=env, timeout=120)
    assert proc.returncode == -9
    folder = tmp_path / "m"
    assert len(list(folder.glob(".tmp-*"))) == 1 and len(list(folder.glob("seg-*"))) == 1
    cache = EmbeddingCache(tmp_path, "m")
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        found, _ = cache.lookup(text_keys(["first", "second", "third"]))
    assert found.tolist() == [True, True, False]
    cache.put(text_keys(["third"]), np.ones((1, 8), dtype=np.float32))
    assert EmbeddingCache(tmp_path, "m").lookup(text_keys(["third"]))[0].all()


def test_merge_keeps_every_vector_and_checks_each_block_it_copies(tmp_path, small_blocks, monkeypatch) -> None:
    monkeypatch.setattr(EmbeddingCache, "MAX_SEGMENTS", 3)
    cache = EmbeddingCache(tmp_path, "m")
    keys, vectors = _data(37)
    for start in range(0, 37, 9):
        cache.put(keys[start : start + 9], vectors[start : start + 9])
    assert len(list((tmp_path / "m").glob("seg-*"))) == 5
    cache.compact()
    assert len(list((tmp_path / "m").glob("seg-*"))) == 1
    found, out = EmbeddingCache(tmp_path, "m").lookup(keys)
    assert found.all() and np.array_equal(out, vectors)


def test_merge_drops_a_damaged_segment_instead_of_blessing_it(tmp_path, small_blocks, monkeypatch) -> None:
    monkeypatch.setattr(EmbeddingCache, "MAX_SEGMENTS", 2)
    keys, vectors = _data(24)
    writer = EmbeddingCache(tmp_path, "m")
    for start in range(0, 24, 8):
        writer.put(keys[start : start + 8], vectors[start : start + 8])
    damaged = sorted((tmp_path / "m").glob("seg-*"), key=lambda p: p.stat().st_mtime_ns)[0]
    raw = bytearray((damaged / "vectors.npy").read_bytes())
    raw[-1] ^= 0x01
    (damaged / "vectors.npy").write_bytes(bytes(raw))
    cache = EmbeddingCache(tmp_path, "m")
    with pytest.warns(CacheWarning, match="checksum mismatch"):
        cache.compact()
    found, out = EmbeddingCache(tmp_path, "m").lookup(keys)
    assert found.sum() == 16 and np.array_equal(out[found], vectors[found])


@pytest.mark.parametrize(
    ("sizes", "merged"),
    [
        ([1] * 5, [0, 1, 2, 3, 4]),  # alike: all into one
        ([100, 2, 3, 4], [1, 2, 3]),  # one large segment is left alone
        ([100, 40, 2, 3], [2, 3]),  # 40 outweighs what is merged (5): it stays
        ([100, 60, 50], [0, 1, 2]),  # 100 is no larger than 60 + 50: everything merges
        ([8, 4, 2, 1], [2, 3]),  # always the two smallest at least, so the count drops
    ],
)
def test_merge_plan_rewrites_small_segments_and_leaves_dominant_ones(sizes, merged) -> None:
    assert merge_plan(sizes) == merged


class RecordingEncoder:
    """Records the texts it is asked to embed; vectors from each text's hash."""

    name, identity, dim = "recording", "rec", 4

    def __init__(self) -> None:
        self.seen: list[str] = []

    def iter_encode(self, texts, *, progress=False, desc=""):
        self.seen += list(texts)
        v = np.stack([np.frombuffer(hashlib.sha256(t.encode()).digest()[:16], dtype=np.float32) for t in texts])
        yield np.arange(len(texts)), np.nan_to_num(v)


def test_embed_sends_each_missing_text_once_in_the_order_it_first_appears(tmp_path) -> None:
    """Batches (length-sorted, then padded) must not depend on hash order: vectors keep their last bits."""
    from labelloop.embeddings import embed

    enc = RecordingEncoder()
    embed(["b", "c"], enc, tmp_path)
    enc.seen = []
    new = [f"new text {i}" for i in range(12)]  # 12! orders: hash order is not this one by chance
    texts = [new[0], "b", *new[1:6], new[0], *new[6:], "c", new[3]]
    out = embed(texts, enc, tmp_path)
    assert enc.seen == new
    assert np.array_equal(out[0], out[7]) and np.array_equal(out[4], out[-1])
    assert np.array_equal(out, embed(texts, enc, None))
