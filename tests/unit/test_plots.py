"""labelloop.plots: every figure renders to a real PNG, from plain data, and says what it shows."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image
import numpy as np
import pytest
from matplotlib.figure import Figure

from labelloop import plots
from labelloop.head import Head
from labelloop.simulate import simulate

# -- helpers -------------------------------------------------------------------------------------


def assert_rendered(fig: Figure, tmp_path: Path, name: str = "figure.png") -> np.ndarray:
    """Save ``fig`` as PNG and check it holds a drawing: a sizeable file, many colours, not all background."""
    assert isinstance(fig, Figure)
    path = plots.save(fig, tmp_path / name)
    assert path.stat().st_size > 10_000, f"{name} is suspiciously small ({path.stat().st_size} bytes)"
    image = matplotlib.image.imread(path)[..., :3]
    colours = np.unique(image.reshape(-1, 3), axis=0)
    assert len(colours) > 20, f"{name} has only {len(colours)} colours"
    background = (image == image[0, 0]).all(axis=-1).mean()
    assert background < 0.97, f"{name} is {background:.0%} background"
    return image


def texts_of(fig: Figure) -> str:
    """Every piece of text drawn in the figure (titles, labels, ticks, legends), joined."""
    from matplotlib.text import Text

    return "\n".join(t.get_text() for t in fig.findobj(Text))


def blobs(n_classes: int = 4, per_class: int = 30, dim: int = 8, seed: int = 0
          ) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors in ``n_classes`` well-separated clusters, and their class indices."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_classes, dim)) * 3
    y = np.repeat(np.arange(n_classes), per_class)
    X = centres[y] + rng.normal(size=(len(y), dim))
    return X / np.linalg.norm(X, axis=1, keepdims=True), y


NAMES = ["billing", "bug_report", "cancel", "shipping"]


# -- learning curves -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def results() -> list:
    X, y = blobs(per_class=40)
    Xt, yt = blobs(per_class=10, seed=1)
    return [simulate(X, y, Xt, yt, 4, strategy=s, initial=8, batch_size=8, budget=48, seed=seed)
            for s in ("margin-kmeans", "random") for seed in (0, 1)]


def test_learning_curves_draw_each_strategy_against_the_full_pool_ceiling(results, tmp_path):
    fig = plots.learning_curves(results)
    assert_rendered(fig, tmp_path)
    shown = texts_of(fig)
    assert "margin-kmeans (mean of 2 seeds)" in shown and "random (mean of 2 seeds)" in shown
    assert "full pool" in shown and "98 % of full pool" in shown
    assert "labels spent" in shown and "test accuracy" in shown


def test_learning_curves_need_results():
    with pytest.raises(ValueError, match="no results"):
        plots.learning_curves([])


# -- embedding map -------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_embedding_2d_gives_one_point_per_text(method):
    X, _ = blobs(per_class=15)
    coords = plots.embedding_2d(X, method)
    assert coords.shape == (len(X), 2) and np.isfinite(coords).all()


def test_embedding_2d_is_reproducible_and_rejects_unknown_methods():
    X, _ = blobs(per_class=15)
    assert np.allclose(plots.embedding_2d(X, "tsne", seed=3), plots.embedding_2d(X, "tsne", seed=3))
    with pytest.raises(ValueError, match="umap"):
        plots.embedding_2d(X, "umap")


def test_embedding_map_shows_the_classes_and_the_texts_queried_in_each_round(tmp_path):
    X, y = blobs()
    coords = plots.embedding_2d(X)
    queried = [np.array([0, 30, 60, 90]), np.array([5, 6]), np.array([70, 71, 72])]
    fig = plots.embedding_map(coords, y, NAMES, queried)
    assert_rendered(fig, tmp_path)
    shown = texts_of(fig)
    assert all(name in shown for name in NAMES), "a legend names every class"
    assert "9 texts in 3 rounds" in shown
    assert "cold-start seed" in shown, "the colour bar says round 0 is the seed"
    assert "PCA 1" in shown and "PCA 2" in shown


def test_embedding_map_with_many_classes_and_unknown_labels_drops_the_unreadable_legend(tmp_path):
    X, y = blobs(n_classes=40, per_class=5)
    y[::7] = -1  # unlabeled texts are drawn grey
    names = [f"intent_{i:02d}" for i in range(40)]
    fig = plots.embedding_map(plots.embedding_2d(X), y, names, [np.arange(10)], projection="tsne")
    assert_rendered(fig, tmp_path)
    shown = texts_of(fig)
    assert "intent_07" not in shown and "40 classes" in shown
    assert "t-SNE 1" in shown


def test_embedding_map_rejects_rows_that_are_not_points():
    X, y = blobs()
    with pytest.raises(ValueError, match="index the points"):
        plots.embedding_map(plots.embedding_2d(X), y, NAMES, [np.array([len(X)])])
    with pytest.raises(ValueError, match="labels"):
        plots.embedding_map(plots.embedding_2d(X), y[:-1], NAMES, [])


# -- errors --------------------------------------------------------------------------------------


def confused_predictions() -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Ten classes of 10 texts; 'cancel' and 'refund' are often swapped, 'bug' once taken for 'login'."""
    names = ["app", "bug", "cancel", "delivery", "email", "fee", "gift", "login", "refund", "stock"]
    y_true = np.repeat(np.arange(10), 10)
    y_pred = y_true.copy()
    y_pred[20:24] = 8  # cancel -> refund
    y_pred[80:83] = 2  # refund -> cancel
    y_pred[10] = 7  # bug -> login
    return y_true, y_pred, names


def test_confusion_top_puts_the_most_confused_pair_first_and_keeps_row_totals(tmp_path):
    y_true, y_pred, names = confused_predictions()
    fig = plots.confusion_top(y_true, y_pred, names, k=4)
    assert_rendered(fig, tmp_path)
    ax = fig.axes[0]
    rows = [t.get_text() for t in ax.get_yticklabels()]
    columns = [t.get_text() for t in ax.get_xticklabels()]
    assert rows[:2] == ["cancel", "refund"] and set(rows[2:]) == {"bug", "login"}
    assert columns == [*rows, "other classes"]
    shown = texts_of(fig)
    assert "8 of 100 test texts wrong" in shown
    assert "predicted" in shown and "true" in shown


def test_confusion_top_without_errors_still_draws_a_diagonal(tmp_path):
    y = np.repeat(np.arange(4), 5)
    fig = plots.confusion_top(y, y, NAMES, k=8)
    assert_rendered(fig, tmp_path)
    assert "other classes" not in texts_of(fig), "all classes fit: nothing else to sum"
    assert "0 of 20 test texts wrong" in texts_of(fig)


def test_confusion_top_rejects_mismatched_or_out_of_range_labels():
    with pytest.raises(ValueError, match="one length"):
        plots.confusion_top([0, 1], [0], NAMES)
    with pytest.raises(ValueError, match="outside"):
        plots.confusion_top([0, 9], [0, 1], NAMES)


def test_most_uncertain_lists_the_closest_top_two_first():
    texts = ["sure", "torn", "fairly torn"]
    probs = np.array([[0.9, 0.05, 0.05], [0.4, 0.39, 0.21], [0.5, 0.1, 0.4]])
    rows = plots.most_uncertain(texts, probs, ["a", "b", "c"], n=2, y_true=[0, 1, 2])
    assert [r["text"] for r in rows] == ["torn", "fairly torn"]
    assert rows[0] == {"index": 1, "text": "torn", "top1": "a", "p1": 0.4, "top2": "b", "p2": 0.39,
                       "margin": pytest.approx(0.01), "true": "b"}
    assert (rows[1]["top1"], rows[1]["top2"]) == ("a", "c")


def test_most_uncertain_checks_the_shapes():
    with pytest.raises(ValueError, match="shape"):
        plots.most_uncertain(["one"], np.ones((2, 3)) / 3, ["a", "b", "c"])


def test_uncertain_texts_show_both_labels_and_mark_wrong_guesses_in_red(tmp_path):
    texts = [f"ticket number {i} " + "with quite a long body " * (i % 4) for i in range(12)]
    probs = np.random.default_rng(0).dirichlet(np.ones(4), size=12)
    truth = probs.argmin(axis=1)  # never the top guess: every row is wrong
    fig = plots.uncertain_texts(texts, probs, NAMES, n=6, y_true=truth)
    assert_rendered(fig, tmp_path)
    side = fig.axes[1].get_yticklabels()
    assert len(side) == 6 and all(" vs " in t.get_text() and "(true: " in t.get_text() for t in side)
    assert {t.get_color() for t in side} == {"#c0392b"}
    shown = texts_of(fig)
    assert "best label" in shown and "second label" in shown and "predicted probability" in shown
    assert all(len(line) <= 60 for t in fig.axes[0].get_yticklabels() for line in t.get_text().splitlines())


def test_per_class_f1_compares_models_class_by_class_worst_first(tmp_path):
    y_true, y_pred, names = confused_predictions()
    fig = plots.per_class_f1(y_true, {"active": y_pred, "perfect": y_true}, names)
    assert_rendered(fig, tmp_path)
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert rows[0].startswith("cancel") and rows[0].endswith("(n=10)"), "the worst class is on top"
    assert len(rows) == 10
    shown = texts_of(fig)
    assert "perfect (macro F1 1.000)" in shown and "active (macro F1" in shown


def test_per_class_f1_takes_a_single_model_and_skips_classes_absent_from_the_test_set(tmp_path):
    y_true = np.array([0, 0, 1, 1, 3, 3])
    fig = plots.per_class_f1(y_true, np.array([0, 1, 1, 1, 3, 0]), NAMES)
    assert_rendered(fig, tmp_path)
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    assert len(rows) == 3 and not any(r.startswith("cancel") for r in rows)


# -- on the demo data, end to end ------------------------------------------------------------


def test_every_figure_renders_from_a_model_on_the_demo_tickets(demo, demo_embedded, tmp_path):
    (train, test), (X_pool, X_test) = demo, demo_embedded
    classes = train.label_set
    y_pool, y_test = train.label_array(classes), test.label_array(classes)
    rows = np.random.default_rng(0).choice(len(y_pool), 150, replace=False)
    head = Head(len(classes)).fit(X_pool[rows], y_pool[rows])
    rest = np.setdiff1d(np.arange(len(y_pool)), rows)
    figures = {
        "map": plots.embedding_map(plots.embedding_2d(X_pool), y_pool, classes, [rows[:50], rows[50:]]),
        "confusion": plots.confusion_top(y_test, head.predict(X_test), classes),
        "uncertain": plots.uncertain_texts([train.texts[i] for i in rest], head.predict_proba(X_pool[rest]),
                                           classes, y_true=y_pool[rest]),
        "f1": plots.per_class_f1(y_test, head.predict(X_test), classes),
    }
    for name, fig in figures.items():
        assert_rendered(fig, tmp_path, f"{name}.png")


# -- how figures are made ------------------------------------------------------------------------


def test_figures_are_made_without_pyplot_so_the_callers_backend_and_figure_list_stay_untouched():
    import matplotlib
    import matplotlib.pyplot as plt

    backend, before = matplotlib.get_backend(), plt.get_fignums()
    X, y = blobs()
    plots.per_class_f1(y, y, NAMES)
    plots.embedding_map(plots.embedding_2d(X), y, NAMES, [])
    assert matplotlib.get_backend() == backend and plt.get_fignums() == before


def test_save_writes_the_format_of_the_suffix_and_closes_pyplot_figures(tmp_path):
    import matplotlib.pyplot as plt

    fig = plt.figure()
    fig.gca().plot([0, 1], [1, 0])
    path = plots.save(fig, tmp_path / "nested" / "line.svg")
    assert path.read_text().lstrip().startswith("<?xml") and fig.number not in plt.get_fignums()
