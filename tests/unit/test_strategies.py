"""Query strategies on small synthetic arrays with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.strategies import (
    STRATEGIES,
    ClassBalanced,
    ColdStart,
    Context,
    DiverseUncertainty,
    RandomSampling,
    Uncertainty,
    class_quotas,
    entropy,
    get_strategy,
    least_confidence,
    margin,
    seed_strategy,
    typicality,
)


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def blobs(n_clusters: int, per_cluster: int, dim: int = 8, spread: float = 0.01, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Tight, well-separated clusters of unit vectors, and each point's cluster."""
    g = np.random.default_rng(seed)
    centers = np.eye(dim)[:n_clusters] if n_clusters <= dim else g.normal(size=(n_clusters, dim))
    points = np.repeat(centers, per_cluster, axis=0) + g.normal(scale=spread, size=(n_clusters * per_cluster, dim))
    points /= np.linalg.norm(points, axis=1, keepdims=True)
    return points, np.repeat(np.arange(n_clusters), per_cluster)


PROBS = np.array([
    [0.90, 0.05, 0.05],   # confident
    [0.50, 0.45, 0.05],   # close top-2 pair: smallest margin
    [0.40, 0.30, 0.30],   # flattest: highest entropy and least confidence
    [0.70, 0.20, 0.10],
])


class TestScores:
    def test_margin_is_highest_for_the_closest_top_two(self):
        assert np.argmax(margin(PROBS)) == 1

    def test_least_confidence_prefers_the_lowest_top_probability(self):
        assert np.argmax(least_confidence(PROBS)) == 2

    def test_entropy_prefers_the_flattest_distribution(self):
        assert np.argmax(entropy(PROBS)) == 2

    def test_scores_are_zero_uncertainty_for_one_hot(self):
        one_hot = np.eye(3)
        assert np.allclose(least_confidence(one_hot), 0)
        assert np.allclose(entropy(one_hot), 0)
        assert np.allclose(margin(one_hot), 0)


class TestUncertainty:
    def test_margin_picks_the_closest_pair_first(self):
        sel = Uncertainty("margin")(Context(PROBS, np.zeros((4, 2))), 2, rng())
        assert sel.indices.tolist() == [1, 2]
        assert np.all(np.diff(sel.scores) <= 0)

    def test_batch_is_capped_by_the_pool(self):
        sel = Uncertainty("entropy")(Context(PROBS, np.zeros((4, 2))), 10, rng())
        assert sorted(sel.indices.tolist()) == [0, 1, 2, 3]

    def test_ties_are_broken_at_random_not_by_position(self):
        tied = np.full((50, 2), 0.5)
        firsts = {int(Uncertainty("margin")(Context(tied, np.zeros((50, 2))), 1, rng(s)).indices[0]) for s in range(10)}
        assert len(firsts) > 1

    def test_unknown_score_is_refused(self):
        with pytest.raises(ValueError, match="unknown uncertainty score"):
            Uncertainty("confusion")


class TestDiversity:
    def test_batch_spans_clusters_where_plain_uncertainty_takes_near_duplicates(self):
        X, cluster = blobs(n_clusters=5, per_cluster=20)
        # Cluster 0 is the most uncertain everywhere: plain margin fills the batch from it alone.
        top = np.where(cluster == 0, 0.50, 0.60)
        probs = np.stack([top, 1 - top], axis=1) + rng(1).uniform(0, 1e-3, size=(100, 2))
        probs /= probs.sum(axis=1, keepdims=True)
        plain = Uncertainty("margin")(Context(probs, X), 5, rng())
        diverse = DiverseUncertainty("margin", candidate_factor=20)(Context(probs, X), 5, rng())
        assert set(cluster[plain.indices]) == {0}
        assert set(cluster[diverse.indices]) == {0, 1, 2, 3, 4}
        assert len(set(diverse.clusters.tolist())) == 5

    def test_candidates_are_restricted_to_the_uncertain_ones(self):
        X, cluster = blobs(n_clusters=4, per_cluster=25)
        probs = np.tile([0.99, 0.01], (100, 1))
        uncertain = np.flatnonzero(cluster < 2)
        probs[uncertain] = [0.5, 0.5]
        sel = DiverseUncertainty("margin", candidate_factor=25)(Context(probs, X), 2, rng())
        assert set(cluster[sel.indices]) == {0, 1}

    def test_centroid_pick_prefers_the_typical_text_uncertain_pick_the_most_uncertain(self):
        # One tight group of candidates plus an outlier that is the most uncertain of all.
        X = np.array([[1.0, 0.0], [0.99, 0.14], [0.99, -0.14], [0.6, 0.8]])
        X /= np.linalg.norm(X, axis=1, keepdims=True)
        probs = np.array([[0.7, 0.3], [0.75, 0.25], [0.75, 0.25], [0.51, 0.49]])
        typical = DiverseUncertainty(candidate_factor=4)(Context(probs[:3], X[:3]), 1, rng())
        assert typical.indices.tolist() == [0]  # the group's centre, not its most uncertain edge
        most = DiverseUncertainty(candidate_factor=4, pick="uncertain")(Context(probs, X), 1, rng())
        assert most.indices.tolist() == [3]

    def test_returns_exactly_n_distinct_rows_even_with_duplicate_points(self):
        X = np.tile(np.eye(4)[0], (40, 1))  # every point identical: k-means finds one cluster
        probs = rng().dirichlet(np.ones(3), size=40)
        sel = DiverseUncertainty()(Context(probs, X), 8, rng())
        assert len(sel) == 8 and len(set(sel.indices.tolist())) == 8

    @pytest.mark.parametrize("strategy", [DiverseUncertainty(), Uncertainty("entropy")], ids=lambda s: s.name)
    def test_without_a_model_it_falls_back_to_cold_start(self, strategy):
        X, _ = blobs(3, 10)
        sel = strategy(Context.cold(X), 3, rng(5))
        cold = ColdStart()(Context.cold(X), 3, rng(5))
        assert sel.indices.tolist() == cold.indices.tolist()
        assert sel.clusters.tolist() == cold.clusters.tolist()


class TestColdStart:
    def test_seed_set_covers_every_cluster(self):
        X, cluster = blobs(n_clusters=6, per_cluster=30, spread=0.05)
        sel = ColdStart()(Context.cold(X), 6, rng())
        assert sorted(cluster[sel.indices].tolist()) == [0, 1, 2, 3, 4, 5]

    def test_random_seed_of_the_same_size_usually_misses_a_cluster(self):
        """The reason cold start exists: the same test run on random picks fails most of the time."""
        X, cluster = blobs(n_clusters=6, per_cluster=30, spread=0.05)
        misses = sum(len(set(cluster[RandomSampling()(Context.cold(X), 6, rng(s)).indices])) < 6 for s in range(20))
        assert misses > 10

    def test_picks_are_the_points_nearest_each_centroid(self):
        X = np.array([[1.0, 0.0], [0.9, 0.1], [0.8, 0.2], [0.0, 1.0], [0.1, 0.9], [0.2, 0.8]])
        sel = ColdStart()(Context.cold(X), 2, rng())
        assert sorted(sel.indices.tolist()) == [1, 4]

    def test_a_pool_above_the_sample_size_is_clustered_on_a_sample_and_picks_pool_rows(self):
        X, cluster = blobs(n_clusters=5, per_cluster=400, spread=0.05)
        sel = ColdStart(sample=150)(Context.cold(X), 5, rng())
        assert sorted(cluster[sel.indices].tolist()) == [0, 1, 2, 3, 4]
        assert len(set(sel.indices.tolist())) == 5

    def test_asking_for_more_than_the_pool_returns_the_pool(self):
        X, _ = blobs(2, 3)
        assert sorted(ColdStart()(Context.cold(X), 10, rng()).indices.tolist()) == list(range(6))


class TestTypicality:
    def test_known_answer_on_a_line(self):
        x = np.array([[0.0], [1.0], [2.0], [10.0]])
        # k=2: mean distances 1.5, 1, 1.5, 8.5 (the outlier's two nearest are 8 and 9 away).
        np.testing.assert_allclose(typicality(x, 2), [1 / 1.5, 1.0, 1 / 1.5, 1 / 8.5])

    def test_a_row_is_not_its_own_neighbour(self):
        np.testing.assert_allclose(typicality(np.array([[0.0], [3.0]]), 1), [1 / 3, 1 / 3])

    def test_chunks_give_the_same_answer(self, monkeypatch):
        import labelloop.strategies as s

        x = rng().normal(size=(50, 3))
        whole = typicality(x, 5)
        monkeypatch.setattr(s, "_TYPICALITY_CHUNK", 7)
        np.testing.assert_allclose(typicality(x, 5), whole)

    def test_k_must_leave_a_neighbour(self):
        with pytest.raises(ValueError, match="k must be between 1 and 2"):
            typicality(np.zeros((3, 2)), 3)


class TestTypicalPicks:
    # A cluster whose centroid is dragged towards a far outlier: the point nearest the centroid is not
    # the densest point. Rows 0-3 are packed near x=0, row 4 sits between, row 5 is far out at x=12.
    LINE = np.array([[0.0, 0.0], [0.1, 0.0], [0.2, 0.0], [0.3, 0.0], [2.0, 0.0], [12.0, 0.0]])

    def test_typical_cold_start_takes_the_densest_point_not_the_one_nearest_the_centroid(self):
        one = Context.cold(self.LINE)
        assert ColdStart()(one, 1, rng()).indices.tolist() == [4]  # centroid 2.43: row 4 is nearest
        assert ColdStart(pick="typical")(one, 1, rng()).indices.tolist() == [1]  # k=3: rows 1, 2 tie, first

    def test_typical_cold_start_still_covers_every_cluster(self):
        X, cluster = blobs(n_clusters=6, per_cluster=30, spread=0.05)
        sel = ColdStart(pick="typical")(Context.cold(X), 6, rng())
        assert sorted(cluster[sel.indices].tolist()) == [0, 1, 2, 3, 4, 5]

    def test_typical_pick_inside_an_uncertain_cluster(self):
        probs = np.tile([0.5, 0.5], (6, 1))
        typical = DiverseUncertainty(candidate_factor=6, pick="typical")(Context(probs, self.LINE), 1, rng())
        centroid = DiverseUncertainty(candidate_factor=6)(Context(probs, self.LINE), 1, rng())
        assert typical.indices.tolist() == [1]
        assert centroid.indices.tolist() == [4]

    def test_the_seed_rule_travels_with_the_strategy(self):
        assert seed_strategy(get_strategy("margin-kmeans-typical")) == ColdStart(pick="typical")
        assert seed_strategy(get_strategy("margin-kmeans")) == ColdStart()
        assert seed_strategy(get_strategy("random")) == ColdStart()
        cold = get_strategy("margin-kmeans-typical")(Context.cold(self.LINE), 1, rng())
        assert cold.indices.tolist() == [1]

    def test_unknown_pick_is_refused(self):
        with pytest.raises(ValueError, match="pick must be"):
            ColdStart(pick="median")


class TestClassBalanced:
    def test_quotas_favour_the_classes_with_fewest_labels(self):
        # Weights 1/2, 1/11, 1: six picks by D'Hondt go 2 → 2 → 0 → 2 → 2 → 0.
        assert class_quotas(np.array([10, 10, 10]), np.array([1, 10, 0]), 6).tolist() == [2, 0, 4]

    def test_quotas_are_capped_by_the_candidates_predicted_as_each_class(self):
        # Class 2 is full after one pick; class 0's fifth pick (1/2 ÷ 5 = 0.1) still beats class 1's first (1/11).
        assert class_quotas(np.array([5, 5, 1]), np.array([1, 10, 0]), 6).tolist() == [5, 0, 1]
        assert class_quotas(np.array([5, 5, 1]), np.array([1, 10, 0]), 7).tolist() == [5, 1, 1]
        assert class_quotas(np.array([1, 0, 2]), np.array([0, 0, 0]), 10).tolist() == [1, 0, 2]

    def test_batch_goes_to_the_class_with_few_labels_where_margin_kmeans_follows_the_uncertainty(self):
        # Four tight blobs. Blobs 0-2 are predicted class 0 (100 labels) and a bit more uncertain; blob 3 is
        # predicted class 1, which has 1 label. Margin-kmeans spreads the batch over clusters; the balanced
        # batch goes to class 1: quotas 1/2, 1/4, 1/6 all beat class 0's 1/101.
        X, blob = blobs(n_clusters=4, per_cluster=5)
        p0 = np.where(blob < 3, 0.55, 1 - 0.58)
        probs = np.stack([p0, 1 - p0], axis=1)
        ctx = Context(probs, X, labels=np.array([0] * 100 + [1]))
        plain = DiverseUncertainty(candidate_factor=7)(ctx, 3, rng())
        balanced = ClassBalanced(candidate_factor=7)(ctx, 3, rng())
        assert blob[plain.indices].tolist().count(3) <= 1
        assert blob[balanced.indices].tolist() == [3, 3, 3]
        assert len(set(balanced.indices.tolist())) == 3

    def test_one_pick_per_cluster_while_the_quotas_allow(self):
        X, blob = blobs(n_clusters=5, per_cluster=4)
        probs = np.tile([0.5, 0.5], (20, 1)) + rng(1).uniform(0, 1e-3, size=(20, 2))
        sel = ClassBalanced(candidate_factor=4)(Context(probs / probs.sum(axis=1, keepdims=True), X), 5, rng())
        assert sorted(blob[sel.indices].tolist()) == [0, 1, 2, 3, 4]

    def test_without_a_model_it_falls_back_to_cold_start(self):
        X, _ = blobs(3, 10)
        a = ClassBalanced()(Context.cold(X), 3, rng(5)).indices
        assert a.tolist() == ColdStart()(Context.cold(X), 3, rng(5)).indices.tolist()


class TestRegistry:
    @pytest.mark.parametrize("name", sorted(STRATEGIES))
    def test_every_strategy_has_the_one_signature(self, name):
        X, _ = blobs(4, 10)
        probs = rng().dirichlet(np.ones(4), size=len(X))
        sel = get_strategy(name)(Context(probs, X), 5, rng())
        assert len(sel) == 5 == len(set(sel.indices.tolist())) == len(sel.scores) == len(sel.clusters)
        assert sel.indices.min() >= 0 and sel.indices.max() < len(X)

    def test_same_seed_same_batch(self):
        X, _ = blobs(4, 25)
        probs = rng(3).dirichlet(np.ones(4), size=len(X))
        a = get_strategy("margin-kmeans")(Context(probs, X), 6, rng(7)).indices
        b = get_strategy("margin-kmeans")(Context(probs, X), 6, rng(7)).indices
        assert a.tolist() == b.tolist()

    def test_unknown_name_lists_the_choices(self):
        with pytest.raises(ValueError, match="margin-kmeans"):
            get_strategy("smartest")


def test_an_empty_batch_is_an_empty_selection():
    X, _ = blobs(3, 5)
    assert len(ColdStart()(Context.cold(X), 0, rng())) == 0


def test_k_means_runs_blas_on_one_thread(monkeypatch):
    """k-means++ seeding spin-waits on a second BLAS thread when the cores are busy (see ``_kmeans``)."""
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_info

    seen: list[set[int]] = []
    fit_predict = KMeans.fit_predict

    def spy(self, *args, **kwargs):
        seen.append({lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})
        return fit_predict(self, *args, **kwargs)

    monkeypatch.setattr(KMeans, "fit_predict", spy)
    X, _ = blobs(3, 10)
    ColdStart()(Context.cold(X), 3, rng())
    assert seen == [{1}]
