"""The neighbour graph (labelloop.index) and its on-disk cache (labelloop.graph_cache, via featurize)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import labelloop.featurize as featurize_module
import labelloop.index as index
from labelloop.embeddings import CacheWarning
from labelloop.errors import LabelloopError
from labelloop.features import DEFAULT_SMOOTHING
from labelloop.featurize import featurize
from labelloop.graph_cache import GraphCache
from labelloop.index import ApproxIndex, extend_graph, nearest, neighbour_graph


def unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def clustered(n: int, d: int = 32, clusters: int = 40, noise: float = 1.0, seed: int = 0) -> np.ndarray:
    """Points around 40 centres; noise=1 puts as much norm in noise as in the centre (hard enough for IVF)."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(clusters, d)))
    return unit(centres[rng.integers(0, clusters, n)] + noise * rng.normal(size=(n, d)) / np.sqrt(d))


def brute_force(Q: np.ndarray, X: np.ndarray, k: int, self_rows: bool) -> np.ndarray:
    sims = Q @ X.T
    if self_rows:
        np.fill_diagonal(sims, np.inf)
    return np.argsort(-sims, axis=1, kind="stable")[:, :k]


def recall(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(got, want)]))


# --- the graph ---------------------------------------------------------------------------------------------


def test_exact_graph_is_brute_force_nearest_first_itself_first() -> None:
    X = unit(np.random.default_rng(0).normal(size=(300, 16)))
    G = neighbour_graph(X, 6, method="exact")
    assert G.dtype == np.int32 and G.shape == (300, 6)
    np.testing.assert_array_equal(G, brute_force(X, X, 6, self_rows=True))
    np.testing.assert_array_equal(G[:, :3], neighbour_graph(X, 3, method="exact"))  # a prefix is the 3-NN graph


def test_a_row_is_first_in_its_own_list_even_beside_its_duplicate() -> None:
    X = unit(np.random.default_rng(1).normal(size=(50, 8)))
    X[7] = X[3]
    G = neighbour_graph(X, 4, method="exact")
    assert (G[:, 0] == np.arange(50)).all()
    assert G[3, 1] == 7 and G[7, 1] == 3


def test_chunked_exact_graph_agrees(monkeypatch) -> None:
    X = clustered(400)
    whole = neighbour_graph(X, 6, method="exact")
    monkeypatch.setattr(index, "_CHUNK_CELLS", 400 * 7)  # 7 rows at a time
    np.testing.assert_array_equal(neighbour_graph(X, 6, method="exact"), whole)


def test_fewer_rows_than_k_lists_every_row() -> None:
    X = unit(np.random.default_rng(2).normal(size=(4, 3)))
    G = neighbour_graph(X, 6)
    assert G.shape == (4, 4) and (G[:, 0] == np.arange(4)).all()
    assert all(sorted(row) == [0, 1, 2, 3] for row in G.tolist())


def test_approximate_graph_recall_on_clustered_vectors() -> None:
    X = clustered(6000)
    exact = neighbour_graph(X, 6, method="exact")
    approx = neighbour_graph(X, 6, method="approx", seed=0)
    assert (approx[:, 0] == np.arange(len(X))).all()
    # The 5 real neighbours, not the trivial self: 0.996 measured (visiting one list instead of 8: 0.61).
    assert recall(approx[:, 1:], exact[:, 1:]) >= 0.98


def test_the_list_by_list_join_finds_what_the_faiss_scan_finds() -> None:
    """Same lists, same probes: comparing list by list (large pools) must not change the candidates."""
    X = clustered(5000, seed=15)
    Q = clustered(5300, seed=15)[5000:]
    lists, scan = ApproxIndex(X, join="lists"), ApproxIndex(X, join="faiss")
    assert (lists.join, scan.join, ApproxIndex(X).join) == ("lists", "faiss", "faiss")  # auto: faiss below 50k
    np.testing.assert_array_equal(lists.search(X, 6, self_offset=0), scan.search(X, 6, self_offset=0))
    np.testing.assert_array_equal(lists.search(Q, 6), scan.search(Q, 6))


def test_auto_is_exact_up_to_the_crossover_and_approximate_above(monkeypatch) -> None:
    built: list[int] = []
    real = index.ApproxIndex.__init__

    def counting(self, X, **kw):
        built.append(len(X))
        real(self, X, **kw)

    monkeypatch.setattr(index.ApproxIndex, "__init__", counting)
    X = clustered(3000)
    neighbour_graph(X, 6)
    assert built == []
    monkeypatch.setattr(index, "EXACT_MAX_ROWS", 1000)
    neighbour_graph(X, 6)
    assert built == [3000]


def test_an_unknown_method_is_refused_in_one_sentence() -> None:
    with pytest.raises(LabelloopError, match="unknown neighbour method 'annoy'"):
        neighbour_graph(clustered(10), 3, method="annoy")  # type: ignore[arg-type]


# --- extending it ------------------------------------------------------------------------------------------


def test_extending_an_exact_graph_equals_rebuilding_it() -> None:
    X = unit(np.random.default_rng(3).normal(size=(500, 16)))
    extended = extend_graph(neighbour_graph(X[:470], 6, method="exact"), X)
    np.testing.assert_array_equal(extended, neighbour_graph(X, 6, method="exact"))


def test_extending_updates_old_rows_that_a_new_row_is_nearer_to() -> None:
    X = unit(np.random.default_rng(4).normal(size=(200, 16)))
    newcomer = unit(X[10] + 0.01 * np.random.default_rng(5).normal(size=16))[None, :]
    old = neighbour_graph(X, 6, method="exact")
    extended = extend_graph(old, np.vstack([X, newcomer]))
    assert extended[10, 1] == 200 and extended[200, :2].tolist() == [200, 10]
    untouched = np.flatnonzero((extended[:200] == old).all(axis=1))
    assert len(untouched) > 150  # only rows near the newcomer changed


def test_a_tiny_graph_grows_to_k_columns() -> None:
    X = unit(np.random.default_rng(6).normal(size=(30, 8)))
    small = neighbour_graph(X[:3], 6)
    np.testing.assert_array_equal(extend_graph(small, X, 6), neighbour_graph(X, 6, method="exact"))


def test_extending_an_approximate_graph_finds_the_new_rows_exactly() -> None:
    X = clustered(5100, seed=7)
    approx = neighbour_graph(X[:5000], 6, method="approx")
    extended = extend_graph(approx, X)
    exact = neighbour_graph(X, 6, method="exact")
    np.testing.assert_array_equal(extended[5000:], exact[5000:])
    assert recall(extended[:5000, 1:], exact[:5000, 1:]) >= recall(approx[:, 1:], exact[:5000, 1:]) - 1e-9


# --- outside queries ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["exact", "approx"])
def test_queries_see_the_pool_only_never_each_other(method) -> None:
    everything = clustered(3300, seed=8)
    X, Q, replacements = everything[:3000], everything[3000:3200], everything[3200:]
    got = nearest(Q, X, 6, method=method)
    assert got.shape == (200, 6) and got.max() < len(X)
    other = Q.copy()
    other[100:] = replacements
    np.testing.assert_array_equal(nearest(other, X, 6, method=method)[:100], got[:100])
    if method == "approx":
        assert recall(got, brute_force(Q, X, 6, self_rows=False)) >= 0.95


def test_a_pool_text_asked_about_again_finds_itself_first() -> None:
    X = clustered(4000, seed=11)
    idx = ApproxIndex(X, seed=0)
    rows = np.arange(0, 4000, 97)
    assert (nearest(X[rows], X, 6, index=idx)[:, 0] == rows).all()
    assert (nearest(X[rows], X, 6, method="exact")[:, 0] == rows).all()


def test_smoothing_from_a_graph_equals_brute_force_smoothing() -> None:
    X = clustered(700, seed=12)
    Q = clustered(50, seed=13)
    np.testing.assert_allclose(DEFAULT_SMOOTHING(X, graph=neighbour_graph(X, 6)), DEFAULT_SMOOTHING(X), atol=1e-6)
    np.testing.assert_allclose(DEFAULT_SMOOTHING(Q, X, graph=nearest(Q, X, 6)), DEFAULT_SMOOTHING(Q, X), atol=1e-6)
    with pytest.raises(ValueError, match="graph of shape"):
        DEFAULT_SMOOTHING(X, graph=neighbour_graph(X, 3))


# --- the stored graph --------------------------------------------------------------------------------------


class FakeEncoder:
    """Deterministic unit vectors from the text's hash (no model)."""

    name, identity, dim = "fake", "fake-identity", 8

    def vector(self, text: str) -> np.ndarray:
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        return unit(np.random.default_rng(seed).normal(size=self.dim))

    def iter_encode(self, texts, *, progress=False, desc=""):
        yield np.arange(len(texts)), np.stack([self.vector(t) for t in texts])


@pytest.fixture
def builds(monkeypatch) -> list[int]:
    """Counts graphs built from scratch by featurize."""
    counted: list[int] = []
    real = featurize_module.neighbour_graph

    def counting(X, k, **kw):
        counted.append(len(X))
        return real(X, k, **kw)

    monkeypatch.setattr(featurize_module, "neighbour_graph", counting)
    return counted


TEXTS = [f"ticket {i}" for i in range(120)]


def test_a_second_featurize_loads_the_stored_graph(tmp_path, builds) -> None:
    first = featurize(TEXTS, encoder=FakeEncoder(), cache_dir=tmp_path)
    second = featurize(TEXTS, encoder=FakeEncoder(), cache_dir=tmp_path)
    assert (first.graph_source, second.graph_source) == ("built", "loaded") and builds == [120]
    np.testing.assert_array_equal(first.graph, second.graph)
    np.testing.assert_array_equal(second.pool, first.pool)
    np.testing.assert_allclose(second.pool, DEFAULT_SMOOTHING(second.raw_pool), atol=1e-6)
    assert list((tmp_path / "fake-identity" / "graphs").glob("graph-k6-*.npz"))


def test_a_grown_pool_extends_the_stored_graph(tmp_path, builds) -> None:
    featurize(TEXTS[:100], encoder=FakeEncoder(), cache_dir=tmp_path)
    grown = featurize(TEXTS, encoder=FakeEncoder(), cache_dir=tmp_path)  # 20 texts appended
    shuffled = [TEXTS[i] for i in np.random.default_rng(0).permutation(120)] + ["one more", "and another"]
    moved = featurize(shuffled, encoder=FakeEncoder(), cache_dir=tmp_path)  # reordered and grown
    assert (grown.graph_source, moved.graph_source) == ("extended", "extended") and builds == [100]
    np.testing.assert_array_equal(grown.graph, neighbour_graph(grown.raw_pool, 6, method="exact"))
    np.testing.assert_array_equal(moved.graph, neighbour_graph(moved.raw_pool, 6, method="exact"))


def test_a_pool_that_lost_texts_is_rebuilt(tmp_path, builds) -> None:
    featurize(TEXTS, encoder=FakeEncoder(), cache_dir=tmp_path)
    assert featurize(TEXTS[5:], encoder=FakeEncoder(), cache_dir=tmp_path).graph_source == "built"
    assert builds == [120, 115]


@pytest.mark.parametrize("damage", ["truncate", "flip a graph byte"])
def test_a_damaged_graph_file_is_rebuilt_with_a_warning(tmp_path, builds, damage) -> None:
    first = featurize(TEXTS, encoder=FakeEncoder(), cache_dir=tmp_path)
    (path,) = (tmp_path / "fake-identity" / "graphs").glob("graph-*.npz")
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:200])
    else:
        with np.load(path) as z:
            arrays = dict(z)
        arrays["graph"][3, 2] = (arrays["graph"][3, 2] + 1) % 120  # a valid index, wrong neighbour
        with path.open("wb") as fh:
            np.savez(fh, **arrays)
    with pytest.warns(CacheWarning, match="damaged"):
        again = featurize(TEXTS, encoder=FakeEncoder(), cache_dir=tmp_path)
    assert again.graph_source == "built" and builds == [120, 120]
    np.testing.assert_array_equal(again.graph, first.graph)


def test_an_approximate_graph_is_not_served_to_a_pool_asking_for_exact(tmp_path) -> None:
    X = clustered(2000, seed=14)
    keys = [hashlib.sha256(str(i).encode()).hexdigest().encode() for i in range(len(X))]
    cache = GraphCache(tmp_path, "id")
    _, how = cache.graph(keys, X, 6, method="approx")
    assert how == "built"
    assert cache.graph(keys, X, 6, method="approx")[1] == "loaded"
    graph, how = cache.graph(keys, X, 6, method="exact")
    assert how == "built"
    np.testing.assert_array_equal(graph, neighbour_graph(X, 6, method="exact"))
    assert cache.graph(keys, X, 6, method="approx")[1] == "loaded"  # an exact graph serves anyone


def test_outside_sets_are_smoothed_over_the_pool_only(tmp_path) -> None:
    test_a = [f"query {i}" for i in range(30)]
    test_b = test_a[:15] + [f"other {i}" for i in range(15)]
    a = featurize(TEXTS, test_a, encoder=FakeEncoder(), cache_dir=tmp_path)
    b = featurize(TEXTS, test_b, encoder=FakeEncoder(), cache_dir=tmp_path)
    np.testing.assert_array_equal(a.others[0][:15], b.others[0][:15])
    alone = np.stack([FakeEncoder().vector(t) for t in test_a])
    np.testing.assert_allclose(a.others[0], DEFAULT_SMOOTHING(alone, a.raw_pool), atol=1e-6)


def test_a_cache_that_cannot_be_written_only_costs_a_warning(tmp_path, builds) -> None:
    graphs = tmp_path / "fake-identity" / "graphs"
    graphs.parent.mkdir()
    graphs.write_text("a file where the folder should be")
    with pytest.warns(CacheWarning, match="cannot write"):
        f = featurize(TEXTS, encoder=FakeEncoder(), cache_dir=tmp_path)
    assert f.graph_source == "built"
    np.testing.assert_array_equal(f.graph, neighbour_graph(f.raw_pool, 6, method="exact"))
