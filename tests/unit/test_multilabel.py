"""Multi-label mode: label sets in, one binary head per label, binary-margin selection, F1 metrics."""

from __future__ import annotations

import numpy as np
import pytest

from labelloop.multilabel import (
    MultiLabelHead,
    label_matrix,
    merge_texts,
    multilabel_metrics,
    parse_label_sets,
    predict_sets,
    simulate_multilabel,
)
from labelloop.strategies import binary_margin


def test_label_sets_are_split_stripped_and_checked() -> None:
    sets = parse_label_sets(["refund | bug", "bug", None, "refund||"], "|")
    assert sets == [frozenset({"refund", "bug"}), frozenset({"bug"}), frozenset(), frozenset({"refund"})]
    Y = label_matrix(sets, ["bug", "refund"])
    assert Y.tolist() == [[True, True], [True, False], [False, False], [False, True]]
    with pytest.raises(ValueError, match=r"'login' .*row 1"):
        label_matrix([{"login"}], ["bug"])
    with pytest.raises(ValueError, match="delimiter"):
        parse_label_sets(["a"], "")


def _blobs(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Three labels, each a direction; a row's features are the sum of its labels' directions + noise."""
    dirs = np.eye(3, 8)
    Y = rng.random((n, 3)) < 0.4
    Y[~Y.any(axis=1), 0] = True
    X = Y.astype(float) @ dirs + 0.3 * rng.standard_normal((n, 8))
    return X, Y


def test_one_head_per_label_learns_each_label_on_its_own() -> None:
    rng = np.random.default_rng(0)
    X, Y = _blobs(400, rng)
    head = MultiLabelHead(3).fit(X, Y)
    P = head.predict_proba(X)
    assert P.shape == (400, 3)
    assert multilabel_metrics(Y, predict_sets(P))["micro_f1"] > 0.9
    # two labels can both be near 1: the probabilities are not a distribution over labels
    assert (P.sum(axis=1) > 1.5).any()


def test_a_label_never_seen_positive_is_predicted_never() -> None:
    X = np.random.default_rng(1).standard_normal((20, 4))
    Y = np.zeros((20, 3), dtype=bool)
    Y[:10, 0] = Y[10:, 1] = True
    P = MultiLabelHead(3).fit(X, Y).predict_proba(X)
    assert (P[:, 2] == 0).all()


def test_every_text_gets_at_least_its_most_likely_label() -> None:
    P = np.array([[0.2, 0.4, 0.1], [0.9, 0.6, 0.1]])
    assert predict_sets(P).tolist() == [[False, True, False], [True, True, False]]


def test_binary_margin_is_highest_when_unsure_about_most_labels() -> None:
    P = np.array([[0.5, 0.5], [0.5, 0.99], [0.01, 0.99]])
    s = binary_margin(P)
    assert s[0] > s[1] > s[2]
    assert s[0] == pytest.approx(1.0) and s[2] == pytest.approx(0.02)


def test_metrics_by_hand() -> None:
    Y = np.array([[1, 1, 0], [0, 1, 0]], dtype=bool)
    Yp = np.array([[1, 0, 0], [0, 1, 1]], dtype=bool)
    m = multilabel_metrics(Y, Yp)
    # tp=2, fp=1, fn=1 -> micro F1 = 2·2/(2·2+1+1)
    assert m["micro_f1"] == pytest.approx(4 / 6)
    assert m["subset_accuracy"] == 0.0
    # per label F1: 1.0, 2/3, 0.0
    assert m["macro_f1"] == pytest.approx((1 + 2 / 3 + 0) / 3)


def test_merged_texts_use_each_source_once_and_pair_two_labels() -> None:
    texts = [f"t{i}" for i in range(100)]
    labels = [f"c{i % 5}" for i in range(100)]
    out, sets = merge_texts(texts, labels, 0.4, np.random.default_rng(3))
    pairs = [t for t, s in zip(out, sets, strict=True) if len(s) == 2]
    assert len(pairs) == 20 and len(out) == 80
    pieces = [p for t in out for p in t.split(" ")]
    assert sorted(pieces) == sorted(texts)
    for t, s in zip(out, sets, strict=True):
        assert s == {labels[int(p[1:])] for p in t.split(" ")}


def test_simulation_spends_the_budget_in_batches_and_tracks_f1() -> None:
    rng = np.random.default_rng(0)
    X, Y = _blobs(600, rng)
    Xt, Yt = _blobs(200, rng)
    rounds = simulate_multilabel(X, Y, Xt, Yt, initial=20, batch_size=20, budget=100, seed=0)
    assert [r["n_labeled"] for r in rounds] == [20, 40, 60, 80, 100]
    assert rounds[-1]["micro_f1"] > 0.8
    with pytest.raises(ValueError, match="unknown multi-label strategy"):
        simulate_multilabel(X, Y, Xt, Yt, strategy="margin")


def test_simulate_cli_runs_a_multi_label_campaign_from_label_set_cells(tmp_path, demo) -> None:
    import json

    import pandas as pd
    from typer.testing import CliRunner

    from labelloop.cli import app

    for pool, name in zip(demo, ("train.csv", "test.csv"), strict=True):
        texts, sets = merge_texts(pool.texts[:200], pool.labels[:200], 0.4, np.random.default_rng(1))
        pd.DataFrame({"text": texts, "labels": [" | ".join(sorted(s)) for s in sets]}).to_csv(
            tmp_path / name, index=False)
    out = tmp_path / "ml.json"
    result = CliRunner().invoke(app, [
        "simulate", "--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"),
        "--label-column", "labels", "--multi-label", "--strategy", "margin-kmeans,random",
        "--initial", "20", "--batch-size", "20", "--budget", "60", "--neighbours", "0", "--out", str(out)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert data["mode"] == "multi-label" and set(data["strategies"]) == {"margin-kmeans", "random"}
    assert [r["n_labeled"] for r in data["strategies"]["random"]["rounds"]] == [20, 40, 60]
    assert " | " not in "".join(data["labels"]) and len(data["labels"]) > 5

    bad = CliRunner().invoke(app, [
        "simulate", "--train", str(tmp_path / "train.csv"), "--test", str(tmp_path / "test.csv"),
        "--label-column", "labels", "--multi-label", "--strategy", "entropy", "--out", str(out)])
    assert bad.exit_code != 0 and "unknown multi-label strategy 'entropy'" in str(bad.exception)


def test_the_micro_f1_interval_holds_the_estimate_and_narrows_with_more_texts() -> None:
    from labelloop.multilabel import micro_f1_interval

    rng = np.random.default_rng(0)
    Y = rng.random((400, 5)) < 0.3
    P = Y ^ (rng.random((400, 5)) < 0.1)  # a tenth of the decisions wrong
    f1 = multilabel_metrics(Y, P)["micro_f1"]
    lo, hi = micro_f1_interval(Y, P, np.random.default_rng(1))
    lo8, hi8 = micro_f1_interval(Y[:8], P[:8], np.random.default_rng(1))
    assert lo < f1 < hi and hi - lo < hi8 - lo8
    assert micro_f1_interval(Y, Y, np.random.default_rng(1)) == (1.0, 1.0)
