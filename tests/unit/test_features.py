"""Neighbour smoothing: each embedding blended with its nearest pool texts, using no labels."""

from __future__ import annotations

import numpy as np
import pytest

import labelloop.features as features
from labelloop.features import DEFAULT_SMOOTHING, NO_SMOOTHING, NeighbourSmoothing
from labelloop.head import Head


def unit(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float32)
    return a / np.linalg.norm(a, axis=-1, keepdims=True)


def test_a_point_moves_toward_its_own_cluster_not_the_other() -> None:
    rng = np.random.default_rng(0)
    a = unit(np.array([1.0, 0, 0]) + 0.1 * rng.normal(size=(10, 3)))
    b = unit(np.array([0, 1.0, 0]) + 0.1 * rng.normal(size=(10, 3)))
    pool = np.vstack([a, b])
    out = NeighbourSmoothing(k=5, weight=1.0)(pool)
    centre_a, centre_b = unit(a.mean(0)), unit(b.mean(0))
    # Cluster a tightens around its centre and its texts stay far from b's.
    assert (out[:10] @ centre_a).mean() > (pool[:10] @ centre_a).mean()
    assert (out[:10] @ centre_a).min() > (pool[:10] @ centre_a).min()
    assert (out[:10] @ centre_b).max() < 0.5


def test_output_rows_are_unit_norm() -> None:
    pool = unit(np.random.default_rng(1).normal(size=(50, 8)))
    out = DEFAULT_SMOOTHING(pool)
    np.testing.assert_allclose(np.linalg.norm(out, axis=1), 1.0, rtol=1e-5)


def test_a_pool_text_is_its_own_nearest_neighbour_so_new_and_pool_copies_agree() -> None:
    pool = unit(np.random.default_rng(2).normal(size=(40, 8)))
    smooth = NeighbourSmoothing(k=4, weight=0.5)
    in_pool = smooth(pool)
    arriving_later = smooth(pool[:5], pool)
    np.testing.assert_allclose(arriving_later, in_pool[:5], rtol=1e-5)


def test_known_answer_for_one_query() -> None:
    pool = unit(np.array([[1, 0], [0.9, 0.1], [0, 1], [0.1, 0.9]]))
    query = unit(np.array([[1.0, 0.05]]))
    out = NeighbourSmoothing(k=2, weight=0.5)(query, pool)
    expected = unit(query[0] + 0.5 * pool[:2].mean(0))
    np.testing.assert_allclose(out[0], expected, rtol=1e-5)


def test_test_texts_take_neighbours_from_the_reference_only() -> None:
    """A test set smoothed over the pool does not change when other test texts change."""
    rng = np.random.default_rng(3)
    pool = unit(rng.normal(size=(30, 6)))
    test = unit(rng.normal(size=(10, 6)))
    other = test.copy()
    other[5:] = unit(rng.normal(size=(5, 6)))
    np.testing.assert_allclose(DEFAULT_SMOOTHING(test, pool)[:5], DEFAULT_SMOOTHING(other, pool)[:5])


def test_off_is_the_identity() -> None:
    pool = unit(np.random.default_rng(4).normal(size=(20, 5)))
    np.testing.assert_array_equal(NO_SMOOTHING(pool), pool)
    np.testing.assert_array_equal(NeighbourSmoothing(k=6, weight=0.0)(pool), pool)
    assert str(NO_SMOOTHING) == "none" and str(DEFAULT_SMOOTHING) == "knn-smooth(k=6, weight=0.5, shrinking)"
    assert str(NeighbourSmoothing(k=6, weight=0.5)) == "knn-smooth(k=6, weight=0.5)"


def test_the_weight_fades_over_the_second_half_of_the_pool_in_tenths() -> None:
    """Full weight until half the pool is labeled, none on a fully labeled pool; at most ten changes."""
    s = NeighbourSmoothing(k=6, weight=0.5, shrink=True)
    assert s.at(0, 1000) == NeighbourSmoothing(k=6, weight=0.5)
    assert s.at(500, 1000) == NeighbourSmoothing(k=6, weight=0.5)
    assert s.at(600, 1000) == NeighbourSmoothing(k=6, weight=0.4)
    assert s.at(900, 1000) == NeighbourSmoothing(k=6, weight=0.1)
    assert not s.at(1000, 1000).enabled and not s.at(5000, 1000).enabled
    assert len({s.at(n, 1000) for n in range(1001)}) == 11
    fixed = NeighbourSmoothing(k=6, weight=0.5)
    assert fixed.at(1000, 1000) is fixed  # without shrink the weight is the weight
    assert NeighbourSmoothing(k=0, shrink=True).at(900, 1000) == NeighbourSmoothing(k=0)


def test_featurized_at_labels_resmooths_pool_and_other_sets_from_the_stored_neighbours() -> None:
    from labelloop.featurize import features_by_labels, featurize_vectors

    rng = np.random.default_rng(8)
    pool, test = unit(rng.normal(size=(60, 8))), unit(rng.normal(size=(9, 8)))
    f = featurize_vectors(
        pool, test, identity="x", smoothing=NeighbourSmoothing(k=4, weight=0.5, shrink=True)
    )
    assert f.at(30) is f  # half the pool labeled: the same features
    np.testing.assert_allclose(f.pool, NeighbourSmoothing(k=4, weight=0.5)(pool), rtol=1e-5, atol=1e-6)
    half = f.at(45)
    assert half.smoothing == NeighbourSmoothing(k=4, weight=0.25)
    np.testing.assert_allclose(half.pool, NeighbourSmoothing(k=4, weight=0.25)(pool), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        half.others[0], NeighbourSmoothing(k=4, weight=0.25)(test, pool), rtol=1e-5, atol=1e-6
    )
    done = f.at(60)
    np.testing.assert_array_equal(done.pool, pool)  # every text labeled: the raw embeddings
    np.testing.assert_array_equal(done.others[0], test)
    at = features_by_labels(f)
    assert at(45)[0] is at(44)[0]  # one weight, computed once


def test_tiny_pool_with_fewer_texts_than_k_averages_them_all() -> None:
    pool = unit(np.array([[1.0, 0], [0, 1.0]]))
    out = NeighbourSmoothing(k=6, weight=1.0)(pool)
    np.testing.assert_allclose(out, unit(pool + pool.mean(0)), rtol=1e-5)


def test_chunked_and_unchunked_agree(monkeypatch) -> None:
    rng = np.random.default_rng(5)
    pool = unit(rng.normal(size=(97, 8)))
    whole = DEFAULT_SMOOTHING(pool)
    monkeypatch.setattr(features, "_CHUNK_CELLS", 97 * 7)  # 7 rows at a time
    np.testing.assert_allclose(DEFAULT_SMOOTHING(pool), whole, rtol=1e-6)


def test_bad_parameters_and_shapes_are_refused() -> None:
    with pytest.raises(ValueError, match="≥ 0"):
        NeighbourSmoothing(k=-1)
    with pytest.raises(ValueError, match="dimensions"):
        DEFAULT_SMOOTHING(np.ones((2, 3), np.float32), np.ones((4, 5), np.float32))


def test_smoothing_helps_a_few_labels_generalise_on_noisy_clusters() -> None:
    """Ten labels on five noisy clusters: the head on smoothed features beats the raw one."""
    rng = np.random.default_rng(6)
    centres = unit(rng.normal(size=(5, 32)))
    y = np.repeat(np.arange(5), 60)
    X = unit(centres[y] + 0.35 * rng.normal(size=(len(y), 32)))
    labeled = np.concatenate([np.flatnonzero(y == c)[:2] for c in range(5)])
    rest = np.setdiff1d(np.arange(len(y)), labeled)
    acc = {}
    for name, feats in (("raw", X), ("smooth", DEFAULT_SMOOTHING(X))):
        head = Head(5).fit(feats[labeled], y[labeled])
        acc[name] = float((head.predict(feats[rest]) == y[rest]).mean())
    assert acc["smooth"] > acc["raw"], acc
