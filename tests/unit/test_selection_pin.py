"""The strategies' selections on a BANKING77 slice, pinned before the strategy context existed.

``tests/fixtures/banking77_selections.json`` was written by the old ``strategy(probs, embeddings,
n, rng)`` signature; the same inputs through :class:`labelloop.strategies.Context` must choose
the same rows in the same order, and short simulations must reproduce the same curve.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from labelloop.data import load_pool
from labelloop.embeddings import embed
from labelloop.features import DEFAULT_SMOOTHING
from labelloop.head import Head
from labelloop.simulate import simulate
from labelloop.strategies import STRATEGIES, Context, Selection

ROOT = Path(__file__).resolve().parents[2]
BANKING77 = ROOT.parent / "shared" / "data" / "banking77"
PIN = json.loads((ROOT / "tests" / "fixtures" / "banking77_selections.json").read_text())

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (BANKING77 / "train.csv").exists(), reason="BANKING77 not at ../shared/data/banking77"),
]


@pytest.fixture(scope="module")
def sliced(encoder, embedding_cache):
    train = load_pool(BANKING77 / "train.csv", label_column="category", require_labels=True)
    test = load_pool(BANKING77 / "test.csv", label_column="category", require_labels=True)
    pool, held = train.subset(slice_rows(len(train))), test.subset(np.arange(0, len(test), 4))
    classes = train.label_set
    X, Xt = embed(pool.texts, encoder, embedding_cache), embed(held.texts, encoder, embedding_cache)
    return (DEFAULT_SMOOTHING(X), DEFAULT_SMOOTHING(Xt, X), pool.label_array(classes), held.label_array(classes),
            len(classes))


def slice_rows(n_train: int) -> np.ndarray:
    """The pinned slice: 2,500 rows of BANKING77 train."""
    return np.random.default_rng(0).permutation(n_train)[:2500]


def select_all(F: np.ndarray, y: np.ndarray, k: int) -> dict[str, Selection]:
    """Every strategy's 60 picks among rows 300.. of the slice, the head fit on rows ..299 (what is pinned)."""
    head = Head(k, seed=0).fit(F[:300], y[:300])
    cand = F[300:]
    probs = head.predict_proba(cand)
    return {
        name: strategy(
            Context.cold(cand) if name == "cold-start" else Context(probs, cand, F[:300], y[:300], head),
            60,
            np.random.default_rng(7),
        )
        for name, strategy in STRATEGIES.items()
    }


def test_every_strategy_selects_the_pinned_rows(sliced):
    F, _, y, _, k = sliced
    for name, sel in select_all(F, y, k).items():
        pinned = PIN["selections"][name]
        assert sel.indices.tolist() == pinned["indices"], name
        assert sel.clusters.tolist() == pinned["clusters"], name
        # Scores come from an lbfgs fit, meaningful to its tolerance: one BLAS thread instead of two moves
        # them by ~2e-6.
        np.testing.assert_allclose(sel.scores, pinned["scores"], atol=1e-5, err_msg=name)


@pytest.mark.parametrize("strategy", ["margin-kmeans", "random", "entropy"])
def test_simulated_curves_are_unchanged(sliced, strategy):
    F, Ft, y, yt, k = sliced
    result = simulate(F, y, Ft, yt, k, strategy=strategy, seed=3, initial=100, batch_size=100, budget=500)
    np.testing.assert_allclose([r["accuracy"] for r in result["rounds"]], PIN["simulate_accuracy"][strategy],
                               atol=1e-9)


def repin() -> None:
    """Rewrite the fixture's selections from today's code (``python tests/unit/test_selection_pin.py``).

    Only after a deliberate numerical change, said in the commit: re-pinned once when head fits moved
    to one BLAS thread (probabilities moved ~2e-6; margin-kmeans's k-means then splits its candidates
    differently: 44 of its 60 picks kept; every other strategy kept all 60 picks in order).
    """
    import tempfile

    from labelloop.embeddings import Encoder

    train = load_pool(BANKING77 / "train.csv", label_column="category", require_labels=True)
    pool = train.subset(slice_rows(len(train)))
    with tempfile.TemporaryDirectory() as cache:  # embedded afresh, as the test's session cache does
        F = DEFAULT_SMOOTHING(embed(pool.texts, Encoder(backend="torch"), cache))
    for name, sel in select_all(F, pool.label_array(train.label_set), len(train.label_set)).items():
        PIN["selections"][name] = {"indices": sel.indices.tolist(), "clusters": sel.clusters.tolist(),
                                   "scores": sel.scores.tolist()}
    (ROOT / "tests" / "fixtures" / "banking77_selections.json").write_text(json.dumps(PIN, separators=(",", ":")))


if __name__ == "__main__":
    repin()
