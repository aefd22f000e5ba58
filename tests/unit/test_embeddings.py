"""The real bundled encoder and its disk cache."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.embeddings import EmbeddingCache, Encoder, default_model_path, embed, text_key
from labelloop.errors import ModelError


class CountingEncoder(Encoder):
    """The real encoder, counting the texts it actually runs through the model."""

    encoded: int = 0

    def iter_encode(self, texts, **kw):
        self.encoded += len(texts)
        yield from super().iter_encode(texts, **kw)


@pytest.fixture
def counting(encoder):
    enc = CountingEncoder(encoder.path, batch_size=8)
    enc._loaded = encoder._load()  # share the loaded weights: tests stay fast
    return enc


TEXTS = ["my card was charged twice", "where is my parcel?", "I forgot my password",
         "please cancel my subscription, it is too expensive for me right now", "app crashes on start"]


def test_bundled_model_loads_offline_from_site_packages():
    path = default_model_path()
    assert "site-packages" in str(path) and (path / "model.safetensors").exists()


def test_vectors_are_unit_norm_and_similar_texts_are_closer(encoder):
    v = encoder.encode(["I was charged twice for one order", "double charge on my card", "where is my parcel?"])
    assert v.shape == (3, 384) and v.dtype == np.float32
    assert np.allclose(np.linalg.norm(v, axis=1), 1, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]


def test_length_sorted_batches_give_the_same_vectors_as_one_at_a_time(encoder):
    batched = Encoder(encoder.path, batch_size=4)
    batched._loaded = encoder._load()
    together = batched.encode(TEXTS)
    alone = np.stack([encoder.encode([t])[0] for t in TEXTS])
    assert np.allclose(together, alone, atol=1e-5)


def test_second_run_embeds_nothing(counting, tmp_path):
    first = embed(TEXTS, counting, tmp_path)
    assert counting.encoded == len(TEXTS)
    second = embed(TEXTS, counting, tmp_path)
    assert counting.encoded == len(TEXTS)
    assert np.array_equal(first, second)


def test_new_texts_are_the_only_ones_embedded(counting, tmp_path):
    embed(TEXTS, counting, tmp_path)
    counting.encoded = 0
    out = embed(TEXTS + ["brand new ticket", "another new one"], counting, tmp_path)
    assert counting.encoded == 2 and out.shape == (7, 384)


def test_duplicate_texts_are_embedded_once(counting, tmp_path):
    out = embed(["same", "same", "other"], counting, tmp_path)
    assert counting.encoded == 2 and np.array_equal(out[0], out[1])


def test_interrupted_run_keeps_finished_work_and_no_corrupt_cache(counting, tmp_path):
    class Boom(Exception):
        pass

    original = counting.iter_encode

    def dies_after_two_batches(texts, **kw):
        for i, batch in enumerate(original(texts, **kw)):
            if i == 2:
                raise Boom  # what Ctrl-C does mid-run
            yield batch

    counting.iter_encode = dies_after_two_batches
    texts = [f"ticket number {i} about a late parcel" for i in range(40)]
    with pytest.raises(Boom):
        embed(texts, counting, tmp_path, flush_every=8)
    cache = EmbeddingCache(tmp_path, counting.identity)
    assert len(cache) == 16  # two flushed batches of 8
    assert not list(cache.dir.glob(".tmp-*"))

    counting.iter_encode = original
    counting.encoded = 0
    embed(texts, counting, tmp_path)
    assert counting.encoded == 24


def test_unreadable_shard_is_recomputed_not_fatal(counting, tmp_path):
    embed(TEXTS, counting, tmp_path)
    for part in EmbeddingCache(tmp_path, counting.identity).dir.glob("seg-*/*"):
        part.write_bytes(b"garbage")
    counting.encoded = 0
    out = embed(TEXTS, counting, tmp_path)
    assert counting.encoded == len(TEXTS) and np.allclose(np.linalg.norm(out, axis=1), 1, atol=1e-5)


def test_many_shards_are_compacted_without_loss(tmp_path):
    cache = EmbeddingCache(tmp_path, "m")
    keys = [text_key(str(i)) for i in range(40)]
    vecs = np.random.default_rng(0).normal(size=(40, 4)).astype(np.float32)
    for i in range(40):
        cache.put(keys[i : i + 1], vecs[i : i + 1])
    cache.compact()
    assert len(list(cache.dir.glob("seg-*"))) == 1
    fresh = EmbeddingCache(tmp_path, "m").get(keys)
    assert np.array_equal(np.stack([fresh[k] for k in keys]), vecs)


def test_cache_is_keyed_by_model_identity(encoder):
    assert Encoder(encoder.path, max_length=32).identity != encoder.identity
    assert Encoder(encoder.path, backend=encoder.backend).identity == encoder.identity


def test_missing_model_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelError, match="model directory not found"):
        Encoder(tmp_path / "nope")
    with pytest.raises(ModelError, match=r"no config\.json"):
        Encoder(tmp_path)


def test_compaction_keeps_shards_written_meanwhile_by_another_process(tmp_path):
    ours, theirs = EmbeddingCache(tmp_path, "m"), EmbeddingCache(tmp_path, "m")
    vec = np.ones((1, 4), dtype=np.float32)
    for i in range(EmbeddingCache.MAX_SHARDS + 1):
        ours.put([text_key(f"ours {i}")], vec)
    theirs.put([text_key("theirs")], vec)  # written after ``ours`` loaded its index
    ours.compact()
    assert text_key("theirs") in EmbeddingCache(tmp_path, "m").get([text_key("theirs")])
    assert len(EmbeddingCache(tmp_path, "m")) == EmbeddingCache.MAX_SHARDS + 2


def test_home_in_cache_paths_is_expanded(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert EmbeddingCache("~/cache", "m").dir == tmp_path / "cache" / "m"
    monkeypatch.setenv("LABELLOOP_CACHE_DIR", "~/elsewhere")
    from labelloop.embeddings import default_cache_dir

    assert default_cache_dir() == tmp_path / "elsewhere"


def test_unwritable_cache_is_a_one_line_error(tmp_path):
    from labelloop.errors import LabelloopError

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(LabelloopError, match="cannot write the embedding cache"):
        EmbeddingCache(blocker, "m").put([text_key("x")], np.ones((1, 2), dtype=np.float32))
