"""The logistic-regression head."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.head import Head


def two_blobs(n=20, seed=0):
    g = np.random.default_rng(seed)
    X = np.vstack([g.normal([2, 0], 0.3, (n, 2)), g.normal([-2, 0], 0.3, (n, 2))])
    return X, np.repeat([0, 2], n)


def test_probabilities_span_the_full_label_set_with_zero_for_unseen_classes():
    X, y = two_blobs()
    p = Head(n_classes=4).fit(X, y).predict_proba(X)
    assert p.shape == (40, 4)
    assert np.allclose(p.sum(axis=1), 1)
    assert np.all(p[:, [1, 3]] == 0)
    assert (p.argmax(axis=1) == y).all()


def test_a_single_labeled_class_predicts_that_class():
    X, _ = two_blobs()
    p = Head(3).fit(X[:5], np.full(5, 1)).predict_proba(X)
    assert np.all(p[:, 1] == 1)


def test_refuses_out_of_range_labels_and_empty_training_sets():
    X, _ = two_blobs()
    with pytest.raises(ValueError):
        Head(2).fit(X[:2], np.array([0, 5]))
    with pytest.raises(ValueError):
        Head(2).fit(X[:0], np.array([], dtype=int))


def test_a_head_rebuilt_from_its_arrays_gives_the_same_probabilities():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 8))
    y = np.arange(60) % 3
    for labels in (y, np.zeros(60, dtype=int), y % 2):  # multinomial, one class, binary
        head = Head(4).fit(X, labels)
        again = Head.from_arrays(head.to_arrays())
        np.testing.assert_allclose(again.predict_proba(X), head.predict_proba(X))


def test_a_fit_runs_blas_on_one_thread_and_restores_it(monkeypatch):
    """Spin-waiting BLAS threads made fits 10-30x dearer on a busy machine (benchmarks/results/head_threads*.md)."""
    from sklearn.linear_model import LogisticRegression
    from threadpoolctl import threadpool_info

    def blas_threads() -> set[int]:
        return {lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"}

    seen: list[set[int]] = []
    fit = LogisticRegression.fit

    def spy(self, *args, **kwargs):
        seen.append(blas_threads())
        return fit(self, *args, **kwargs)

    before = blas_threads()
    monkeypatch.setattr(LogisticRegression, "fit", spy)
    X, y = two_blobs()
    Head(3).fit(X, y)
    assert seen == [{1}]
    assert blas_threads() == before
