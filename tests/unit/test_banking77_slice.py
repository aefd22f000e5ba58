"""The loop on a slice of a real 77-class dataset (BANKING77 from ../shared, never copied here)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from labelloop.data import check_test_labels, load_pool
from labelloop.embeddings import embed
from labelloop.features import DEFAULT_SMOOTHING
from labelloop.simulate import area_under_curve, simulate

BANKING77 = Path(__file__).resolve().parents[3] / "shared" / "data" / "banking77"

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (BANKING77 / "train.csv").exists(), reason="BANKING77 not at ../shared/data/banking77"),
]


def test_active_learning_beats_random_and_smoothing_beats_raw_on_a_banking77_slice(encoder, embedding_cache):
    train = load_pool(BANKING77 / "train.csv", label_column="category", require_labels=True)
    test = load_pool(BANKING77 / "test.csv", label_column="category", require_labels=True)
    check_test_labels(train, test)
    rows = np.random.default_rng(0).permutation(len(train))[:2500]
    pool, held = train.subset(rows), test.subset(np.arange(0, len(test), 4))  # 770 test texts, 10 per class
    classes = train.label_set
    X, Xt = embed(pool.texts, encoder, embedding_cache), embed(held.texts, encoder, embedding_cache)
    y, yt = pool.label_array(classes), held.label_array(classes)

    F, Ft = DEFAULT_SMOOTHING(X), DEFAULT_SMOOTHING(Xt, X)  # the default features, neighbours from the pool

    kw = dict(initial=100, batch_size=100, budget=700)
    runs = {("margin-kmeans", "smooth"): (F, Ft), ("random", "smooth"): (F, Ft), ("margin-kmeans", "raw"): (X, Xt)}
    aulc = {key: np.mean([area_under_curve(simulate(P, y, Pt, yt, len(classes), strategy=key[0], seed=seed, **kw))
                          for seed in (0, 1)]) for key, (P, Pt) in runs.items()}
    # A loop that ignored the model's uncertainty would tie with random; features that ignored the pool's
    # structure would tie with raw embeddings.
    assert aulc["margin-kmeans", "smooth"] > aulc["random", "smooth"], aulc
    assert aulc["margin-kmeans", "smooth"] > aulc["margin-kmeans", "raw"], aulc
