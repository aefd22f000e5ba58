"""Encoder backends: ONNX matches PyTorch, exports are cached, checked and redone, threads untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from labelloop import encoders
from labelloop.campaign import Campaign, register
from labelloop.config import load_config
from labelloop.data import Pool
from labelloop.embeddings import Encoder, embed
from labelloop.errors import ModelError
from labelloop.store import Store, StoreError

# Documented bounds (benchmarks/results/embedding_speed.md): fp32 is the same function; int8 per-channel
# weights with per-batch activation scales drift a little (mean ≈ 0.993, worst ≈ 0.98 on BANKING77).
FP32_MIN_COSINE = 0.999
INT8_MEAN_COSINE, INT8_MIN_COSINE = 0.985, 0.95


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-exports")


@pytest.fixture(scope="module")
def demo_texts(demo) -> list[str]:
    train, test = demo
    return (train.texts + test.texts)[:300]


@pytest.fixture(scope="module")
def reference(encoder, demo_texts) -> np.ndarray:
    return encoder.encode(demo_texts)


def test_identity_differs_by_backend_and_precision_and_torch_keeps_the_model_identity(encoder):
    ids = {(b, p): Encoder(encoder.path, backend=b, precision=p).identity  # type: ignore[arg-type]
           for b, p in [("torch", "fp32"), ("onnx", "fp32"), ("onnx", "int8"), ("onnx", "int8-per-tensor")]}
    assert len(set(ids.values())) == 4
    assert ids["torch", "fp32"] == encoder.model_identity  # caches made before backends existed stay valid
    assert Encoder(encoder.path).identity == ids[encoders.DEFAULT_BACKEND, encoders.DEFAULT_PRECISION]


def test_bad_backend_or_precision_is_one_line(encoder):
    with pytest.raises(ModelError, match="unknown encoder backend 'tf'"):
        Encoder(encoder.path, backend="tf")  # type: ignore[arg-type]
    with pytest.raises(ModelError, match="torch backend runs fp32 only"):
        Encoder(encoder.path, backend="torch", precision="int8")


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_onnx_vectors_match_torch_fp32(encoder, export_dir, demo_texts, reference, precision):
    onnx = Encoder(encoder.path, backend="onnx", precision=precision, export_dir=export_dir)
    vectors = onnx.encode(demo_texts)
    assert vectors.dtype == np.float32 and vectors.shape == reference.shape
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    cos = np.sum(vectors * reference, axis=1)
    if precision == "fp32":
        assert cos.min() >= FP32_MIN_COSINE
    else:
        assert cos.mean() >= INT8_MEAN_COSINE and cos.min() >= INT8_MIN_COSINE, (cos.mean(), cos.min())


@pytest.mark.slow
def test_batches_run_at_once_come_back_in_the_texts_order(encoder, export_dir, demo_texts):
    one = Encoder(encoder.path, backend="onnx", threads=1, batch_size=8, export_dir=export_dir)
    three = Encoder(encoder.path, backend="onnx", threads=3, batch_size=8, export_dir=export_dir)
    assert three._load()[1].concurrent_batches == 3
    a, b = one.encode(demo_texts[:100]), three.encode(demo_texts[:100])
    assert np.sum(a * b, axis=1).min() >= 0.99999


@pytest.mark.slow
def test_export_is_cached_and_reused(encoder, export_dir, demo_texts):
    first = Encoder(encoder.path, backend="onnx", precision="int8", export_dir=export_dir)
    first.encode(demo_texts[:4])
    graph = first._load()[1].path  # type: ignore[attr-defined]
    assert graph.parent.parent == export_dir and graph.name == "model.onnx"
    mtime, exports = graph.stat().st_mtime_ns, encoders.EXPORT_COUNT
    second = Encoder(encoder.path, backend="onnx", precision="int8", export_dir=export_dir)
    second.encode(demo_texts[:4])
    assert encoders.EXPORT_COUNT == exports and graph.stat().st_mtime_ns == mtime
    assert not list(export_dir.glob("**/.tmp-*"))


@pytest.mark.slow
def test_half_written_or_corrupt_export_is_detected_and_redone(encoder, tmp_path, demo_texts, reference):
    make = lambda: Encoder(encoder.path, backend="onnx", precision="fp32", export_dir=tmp_path)  # noqa: E731
    make().encode(demo_texts[:2])
    (graph,) = tmp_path.glob("*/model.onnx")
    whole = graph.read_bytes()
    graph.write_bytes(whole[: len(whole) // 2])  # as if killed mid-write without the atomic rename
    exports = encoders.EXPORT_COUNT
    assert np.allclose(make().encode(demo_texts[:8]), reference[:8], atol=1e-4)
    assert encoders.EXPORT_COUNT == exports + 1 and graph.read_bytes() == whole
    graph.with_name("model.sha256").unlink()  # killed between the graph and its checksum
    make().encode(demo_texts[:2])
    assert encoders.EXPORT_COUNT == exports + 2


@pytest.mark.slow
def test_a_cache_written_by_one_backend_is_never_read_as_another(encoder, export_dir, tmp_path, demo_texts):
    torch_vectors = embed(demo_texts[:20], Encoder(encoder.path, backend="torch"), tmp_path)
    onnx = Encoder(encoder.path, backend="onnx", precision="int8", export_dir=export_dir)
    onnx_vectors = embed(demo_texts[:20], onnx, tmp_path)
    assert not np.array_equal(torch_vectors, onnx_vectors)  # recomputed, not read from the torch shards
    assert {p.name for p in tmp_path.iterdir() if p.name != "onnx"} == {encoder.identity, onnx.identity}


@pytest.mark.slow
def test_embed_exports_next_to_the_cache(encoder, tmp_path, demo_texts):
    onnx = Encoder(encoder.path, backend="onnx", precision="fp32")
    embed(demo_texts[:2], onnx, tmp_path / "cache")
    assert list((tmp_path / "cache" / "onnx").glob("*/model.onnx"))


@pytest.mark.parametrize("backend", ["torch", "onnx"])
def test_encoding_never_changes_torchs_global_thread_count(encoder, export_dir, demo_texts, backend):
    before = torch.get_num_threads()
    other = 1 if before != 1 else 2
    torch.set_num_threads(other)
    try:
        Encoder(encoder.path, backend=backend, threads=3, export_dir=export_dir).encode(demo_texts[:40])
        assert torch.get_num_threads() == other
    finally:
        torch.set_num_threads(before)


def test_sync_refuses_a_campaign_embedded_by_another_backend(tmp_path, encoder):
    (tmp_path / "pool.csv").write_text("id,text\nx,y\n")
    (tmp_path / "labelloop.toml").write_text(
        'labels = ["a", "b"]\n[data]\npath = "pool.csv"\n[labelstudio]\nproject = "p"\n'
        '[state]\npath = "s.db"\n')
    config = load_config(tmp_path / "labelloop.toml")
    pool = Pool(["t1", "t2"], ["one", "two"], [None, None], "pool.csv")
    X = np.eye(2, 4, dtype=np.float32)
    first = Campaign(config, pool, X, Encoder(encoder.path, backend="torch").identity)
    then = Campaign(config, pool, X, Encoder(encoder.path, backend="onnx", precision="int8").identity)
    with Store.open(tmp_path / "s.db") as store:
        with store.tx():
            register(store, first, 1)
        with pytest.raises(StoreError, match=r"was embedded with encoder.*backend = \"torch\""), store.tx():
            register(store, then, 1)


def test_config_backend_reaches_the_campaigns_encoder(tmp_path):
    from labelloop.campaign import config_encoder

    (tmp_path / "c.toml").write_text(
        'labels = ["a", "b"]\n[data]\npath = "p.csv"\n[labelstudio]\nproject = "p"\n'
        '[model]\nbackend = "torch"\nthreads = 1\n')
    enc = config_encoder(load_config(tmp_path / "c.toml"))
    assert (enc.backend, enc.precision, enc.threads) == ("torch", "fp32", 1)
    (tmp_path / "d.toml").write_text('labels = ["a", "b"]\n[data]\npath = "p.csv"\n'
                                     '[labelstudio]\nproject = "p"\n')
    assert config_encoder(load_config(tmp_path / "d.toml")).precision == encoders.DEFAULT_PRECISION
