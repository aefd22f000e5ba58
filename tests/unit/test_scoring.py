"""Chunked scoring and shortlists choose exactly what scoring every candidate at once chose."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.head import Head
from labelloop.learner import candidates, evaluate, query
from labelloop.scoring import predict, predict_proba, rows_of, uncertain_rows
from labelloop.strategies import STRATEGIES, Context, margin


@pytest.fixture(scope="module")
def pool():
    """400 rows in 6 overlapping classes, with exact duplicates so that uncertainty scores tie."""
    g = np.random.default_rng(0)
    centres = g.normal(size=(6, 12))
    y = g.integers(6, size=300)
    X = centres[y] + g.normal(scale=1.2, size=(300, 12))
    X = np.concatenate([X, X[:100]])  # 100 duplicated rows: tied scores everywhere in the ranking
    y = np.concatenate([y, y[:100]])
    X = (X / np.linalg.norm(X, axis=1, keepdims=True)).astype(np.float32)
    labeled = np.arange(0, 400, 9)
    head = Head(6).fit(X[labeled], y[labeled])
    unlabeled = np.setdiff1d(np.arange(400), labeled)
    return X, y, labeled, unlabeled, head


def unchunked(name, X, y, labeled, unlabeled, head, n, rng):
    """What query did before chunks and shortlists: every candidate's probabilities and features."""
    cand = X[unlabeled]
    ctx = Context(head.predict_proba(cand), cand, X[labeled], y[labeled], head)
    sel = STRATEGIES[name](ctx, n, rng)
    return unlabeled[sel.indices], sel.scores, sel.clusters


@pytest.mark.parametrize("name", [s for s in STRATEGIES if s != "cold-start"] + ["cold-start"])
@pytest.mark.parametrize("chunk", [7, 10**6])
def test_chunked_query_selects_what_scoring_everything_selected(pool, name, chunk):
    X, y, labeled, unlabeled, head = pool
    rng_old, rng_new = np.random.default_rng(3), np.random.default_rng(3)
    rows, scores, clusters = unchunked(name, X, y, labeled, unlabeled, head, 8, rng_old)
    q = query(head, X, unlabeled, STRATEGIES[name], 8, rng_new, y=y, labeled=labeled, chunk=chunk)
    assert q.indices.tolist() == rows.tolist()
    assert q.clusters.tolist() == clusters.tolist()
    np.testing.assert_allclose(q.scores, scores, atol=1e-12)
    np.testing.assert_allclose(q.probs, head.predict_proba(X[rows]), rtol=1e-5)  # to rounding: see below
    # The next round draws the same random numbers too: whole simulations stay the same.
    assert rng_old.integers(2**62) == rng_new.integers(2**62)


class RowwiseHead(Head):
    """Probabilities from each row alone (no BLAS): equal rows get exactly equal scores."""

    def predict_proba(self, X):
        e = np.exp(np.asarray(X[:, : self.n_classes], dtype=np.float64) * 4)
        return e / e.sum(axis=1, keepdims=True)


def test_uncertain_rows_keep_the_top_scores_and_every_tie_at_the_boundary():
    X = np.random.default_rng(1).normal(size=(50, 3)).astype(np.float32)
    X[40:45] = X[7]  # five copies of row 7: six rows with one score
    head, rows = RowwiseHead(3), np.arange(50)
    all_scores = margin(head.predict_proba(X))
    rank_of_7 = int((all_scores > all_scores[7]).sum())  # rows strictly more uncertain than row 7
    for size in (rank_of_7 + 1, rank_of_7 + 6, 3, 49):
        pos, probs = uncertain_rows(head, X, rows, "margin", size, chunk=4)
        cut = np.sort(all_scores)[::-1][size - 1]
        assert pos.tolist() == np.flatnonzero(all_scores >= cut).tolist(), size
        np.testing.assert_array_equal(probs, head.predict_proba(X[pos]))
    pos, _ = uncertain_rows(head, X, rows, "margin", rank_of_7 + 1, chunk=4)
    assert {7, 40, 41, 42, 43, 44} <= set(pos.tolist())  # size says one of them; all six are kept
    assert len(pos) == rank_of_7 + 6


def test_a_shortlisting_strategy_sees_only_its_shortlist(pool):
    X, _, _, unlabeled, head = pool
    ctx = candidates(head, X, unlabeled, STRATEGIES["margin-kmeans"], 4, np.random.default_rng(0), chunk=16)
    assert 20 <= len(ctx) < 40  # 5 x 4 most uncertain (and their ties), not all 355 candidates
    assert ctx.n_candidates == len(unlabeled)
    ctx = candidates(head, X, unlabeled, STRATEGIES["random"], 4, np.random.default_rng(0), chunk=16)
    assert len(ctx) == 4


def test_a_random_draw_is_not_consumed_by_looking_ahead(pool):
    X, _, _, unlabeled, head = pool
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    candidates(head, X, unlabeled, STRATEGIES["random"], 4, rng)
    assert rng.bit_generator.state == before


def test_predictions_in_chunks_equal_one_call(pool):
    """Equal to rounding: BLAS may sum a row in another order inside a block of another size."""
    X, y, _, _, head = pool
    np.testing.assert_allclose(predict_proba(head, X, chunk=13), head.predict_proba(X), rtol=1e-5)
    np.testing.assert_array_equal(predict(head, X, chunk=13), head.predict(X))
    rows = np.array([5, 1, 300])
    np.testing.assert_allclose(predict_proba(head, X, rows, chunk=2), head.predict_proba(X[rows]), rtol=1e-5)
    assert evaluate(head, X, y, chunk=11) == evaluate(head, X, y, chunk=10**6)


def test_every_row_in_order_is_the_matrix_itself_not_a_copy(pool):
    X = pool[0]
    assert rows_of(X, np.arange(len(X))) is X
    assert rows_of(X, np.arange(1, len(X))).base is not X
    assert rows_of(X, np.arange(len(X))[::-1]) is not X
