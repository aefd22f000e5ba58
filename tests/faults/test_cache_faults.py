"""Damaged and read-only embedding caches (issue 12, items 7 and 8): verified reads, healing, no crash, no NaN.

A tiny fake encoder with the real interface keeps these fast; one case uses the real bundled encoder."""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from labelloop.embeddings import CacheWarning, EmbeddingCache, embed, text_key

pytestmark = pytest.mark.faults

TEXTS = [f"text number {i}" for i in range(12)]


class FakeEncoder:
    """Deterministic unit vectors from the text's hash; counts what it embeds."""

    name, identity, dim = "fake", "fake-identity", 8

    def __init__(self) -> None:
        self.encoded = 0

    def vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=self.dim).astype(np.float32)
        return v / np.linalg.norm(v)

    def iter_encode(self, texts, *, progress=False, desc=""):
        self.encoded += len(texts)
        rows = np.arange(len(texts))
        yield rows, np.stack([self.vector(t) for t in texts])


def _expected(enc: FakeEncoder, texts: list[str]) -> np.ndarray:
    return np.stack([enc.vector(t) for t in texts])


def _segments(root: Path) -> list[Path]:
    return sorted((root / FakeEncoder.identity).glob("seg-*"))


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2])


def _flip(p: Path) -> None:
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))


def _hand_made(**arrays) -> object:
    def write(p: Path) -> None:
        with p.open("wb") as fh:
            np.savez(fh, **arrays)
    return write


def _keys(texts) -> np.ndarray:
    return np.array([text_key(t) for t in texts], dtype="S64")


def _old_shard(folder: Path, keys: np.ndarray, vectors: np.ndarray) -> Path:
    """A shard as labelloop wrote them before segments (an .npz with a SHA-256 over both arrays)."""
    h = hashlib.sha256(f"{keys.dtype.str}{keys.shape}{vectors.dtype.str}{vectors.shape}".encode())
    h.update(keys.tobytes())
    h.update(vectors.tobytes())
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"shard-{h.hexdigest()[:12]}.npz"
    _hand_made(keys=keys, vectors=vectors, checksum=np.array(h.hexdigest().encode(), dtype="S64"))(path)
    return path


def _hand_made_segment(folder: Path, keys: np.ndarray, vectors: np.ndarray) -> Path:
    """A segment whose manifest and checksums are right for whatever arrays it is given."""
    seg = folder / "seg-hand-made"
    seg.mkdir(parents=True)
    np.save(seg / "keys.npy", keys)
    np.save(seg / "vectors.npy", vectors)
    sha = lambda a: hashlib.sha256(np.ascontiguousarray(a).data).hexdigest()  # noqa: E731
    (seg / "manifest.json").write_text(json.dumps({
        "format": 1, "n": len(keys), "dim": vectors.shape[1], "block_rows": 4096,
        "keys_sha256": sha(keys), "blocks_sha256": [sha(vectors)]}))
    return seg


def _assert_healed(tmp_path: Path, enc: FakeEncoder, damaged: Path) -> None:
    """One warning, exactly the damaged texts embedded again, the damage gone, the next run quiet."""
    enc.encoded = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = embed(TEXTS, enc, tmp_path)
    assert np.array_equal(out, _expected(enc, TEXTS)) and np.isfinite(out).all()
    assert enc.encoded == len(TEXTS)  # exactly the damaged texts, once
    messages = [str(w.message) for w in caught if issubclass(w.category, CacheWarning)]
    assert len(messages) == 1 and "dropped the damaged" in messages[0], messages
    assert not damaged.exists()  # healed: the next run reads a good segment and embeds nothing
    enc.encoded = 0
    with warnings.catch_warnings():
        warnings.simplefilter("error", CacheWarning)
        assert np.array_equal(embed(TEXTS, enc, tmp_path), out)
    assert enc.encoded == 0
    assert not list((tmp_path / FakeEncoder.identity).glob(".tmp-*"))


DAMAGE = {
    "truncated": _truncate,
    "one flipped byte": _flip,
    "mismatched lengths": _hand_made(keys=_keys(TEXTS), vectors=np.ones((3, 8), np.float32)),
    "another dimension": _hand_made(keys=_keys(TEXTS), vectors=np.ones((len(TEXTS), 5), np.float32)),
    "NaN vectors": _hand_made(keys=_keys(TEXTS), vectors=np.full((len(TEXTS), 8), np.nan, np.float32)),
    "float64 vectors": _hand_made(keys=_keys(TEXTS), vectors=np.ones((len(TEXTS), 8))),
    "object keys": _hand_made(keys=np.array([1, 2]), vectors=np.ones((2, 8), np.float32)),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_old_shard_is_dropped_with_a_warning_and_re_embedded(tmp_path, damage) -> None:
    enc = FakeEncoder()
    shard = _old_shard(tmp_path / FakeEncoder.identity, _keys(TEXTS), _expected(enc, TEXTS))
    DAMAGE[damage](shard)
    _assert_healed(tmp_path, enc, shard)


@pytest.mark.parametrize("damage", ["truncated", "one flipped byte"])
@pytest.mark.parametrize("part", ["keys.npy", "vectors.npy", "manifest.json"])
def test_a_damaged_segment_is_dropped_with_a_warning_and_re_embedded(tmp_path, damage, part) -> None:
    enc = FakeEncoder()
    embed(TEXTS, enc, tmp_path)
    (segment,) = _segments(tmp_path)
    DAMAGE[damage](segment / part)
    _assert_healed(tmp_path, enc, segment)


HAND_MADE_SEGMENTS = {  # right checksums, wrong contents
    "NaN vectors": (_keys(TEXTS), np.full((len(TEXTS), 8), np.nan, np.float32)),
    "float64 vectors": (_keys(TEXTS), np.ones((len(TEXTS), 8))),
    "mismatched lengths": (_keys(TEXTS), np.ones((3, 8), np.float32)),
    "hex keys too short": (_keys(TEXTS).astype("S32"), np.ones((len(TEXTS), 8), np.float32)),
}


@pytest.mark.parametrize("case", list(HAND_MADE_SEGMENTS))
def test_a_hand_made_segment_with_right_checksums_but_bad_contents_is_dropped(tmp_path, case) -> None:
    keys, vectors = HAND_MADE_SEGMENTS[case]  # every row alike: the keys' order does not matter
    segment = _hand_made_segment(tmp_path / FakeEncoder.identity, np.sort(keys), vectors)
    _assert_healed(tmp_path, FakeEncoder(), segment)


@pytest.mark.parametrize("kind", ["old shard", "segment"])
def test_a_shard_of_another_dimension_beside_good_ones_never_reaches_the_result(tmp_path, kind) -> None:
    enc = FakeEncoder()
    embed(TEXTS[:6], enc, tmp_path)
    if kind == "old shard":
        _hand_made(keys=_keys(TEXTS[6:]), vectors=np.ones((6, 5), np.float32))(
            tmp_path / FakeEncoder.identity / "shard-zz-hand-made.npz")
    else:
        _hand_made_segment(tmp_path / FakeEncoder.identity, np.sort(_keys(TEXTS[6:])), np.ones((6, 5), np.float32))
    enc.encoded = 0
    with pytest.warns(CacheWarning, match="dimension 5"):
        out = embed(TEXTS, enc, tmp_path)
    assert out.shape == (len(TEXTS), 8) and enc.encoded == 6
    assert np.array_equal(out, _expected(enc, TEXTS))


def test_only_good_shards_of_another_dimension_are_re_embedded(tmp_path) -> None:
    """All the cache agrees on a dimension the encoder does not give (hand-made): the encoder wins."""
    _hand_made(keys=_keys(TEXTS), vectors=np.ones((len(TEXTS), 5), np.float32))(
        (tmp_path / FakeEncoder.identity).mkdir(parents=True) or tmp_path / FakeEncoder.identity / "shard-x.npz")
    enc = FakeEncoder()
    with pytest.warns(CacheWarning, match="vectors of dimension 5, the cache holds 8"):
        out = embed(TEXTS, enc, tmp_path)
    assert np.array_equal(out, _expected(enc, TEXTS)) and enc.encoded == len(TEXTS)


def test_a_read_only_cache_still_embeds_and_warns(tmp_path, tmpfs) -> None:
    mnt = tmpfs("2m")
    enc = FakeEncoder()
    embed(TEXTS[:4], enc, mnt.path)  # the model folder exists, with one good shard
    before = sorted(p.name for p in (mnt.path / FakeEncoder.identity).iterdir())
    mnt.read_only()
    enc.encoded = 0
    with pytest.warns(CacheWarning, match="computed but not cached"):
        out = embed(TEXTS, enc, mnt.path, flush_every=2)
    assert np.array_equal(out, _expected(enc, TEXTS)) and enc.encoded == len(TEXTS) - 4
    assert sorted(p.name for p in (mnt.path / FakeEncoder.identity).iterdir()) == before


def test_a_read_only_damaged_shard_is_skipped_not_fatal(tmp_path, tmpfs) -> None:
    mnt = tmpfs("2m")
    enc = FakeEncoder()
    embed(TEXTS, enc, mnt.path)
    _flip(_segments(mnt.path)[0] / "vectors.npy")
    mnt.read_only()
    with pytest.warns(CacheWarning):
        out = embed(TEXTS, enc, mnt.path)
    assert np.array_equal(out, _expected(enc, TEXTS))


def test_the_real_encoder_heals_a_truncated_shard(tmp_path, encoder) -> None:
    texts = ["my card was charged twice", "where is my parcel?", "app crashes on start"]
    first = embed(texts, encoder, tmp_path)
    (segment,) = sorted(EmbeddingCache(tmp_path, encoder.identity).dir.glob("seg-*"))
    _truncate(segment / "vectors.npy")
    with pytest.warns(CacheWarning, match="dropped the damaged segment"):
        again = embed(texts, encoder, tmp_path)
    assert np.allclose(again, first, atol=1e-5)
