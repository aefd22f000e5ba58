"""Figures shared by the CLI, reports and notebooks.

Every function takes plain data (arrays of label indices, lists of texts, ``simulate``
results) and returns a matplotlib :class:`~matplotlib.figure.Figure`; nothing is shown
and nothing is written except by :func:`save`. Figures are built without pyplot, so
importing this module never switches the caller's backend (a notebook keeps its inline
display, a headless CI needs no display) and no figure lingers in pyplot's registry.

(Over 400 lines on purpose: one figure per function, each small, kept together so they
share one look — colours, sizes, titles — and one way of being saved.)
"""

from __future__ import annotations

import sys
import textwrap
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

from .simulate import SimulationResult, mean_curve

__all__ = [
    "learning_curves",
    "embedding_2d",
    "embedding_map",
    "confusion_top",
    "most_uncertain",
    "uncertain_texts",
    "per_class_f1",
    "campaign_curve",
    "throughput",
    "save",
]

_PROJECTION_NAMES = {"pca": "PCA", "tsne": "t-SNE"}


def learning_curves(
    results: Sequence[SimulationResult], metric: str = "accuracy", title: str | None = None
) -> Figure:
    """Test ``metric`` against labels spent, one line per strategy (mean over seeds, band = min..max),
    with the full-pool ceiling and its 98 % mark for reference."""
    if not results:
        raise ValueError("no results to plot")
    by_strategy: dict[str, list[SimulationResult]] = defaultdict(list)
    for res in results:
        by_strategy[res["strategy"]].append(res)
    fig = Figure(figsize=(7.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for name, runs in by_strategy.items():
        xs, ys = mean_curve(runs, metric)
        label = name if len(runs) == 1 else f"{name} (mean of {len(runs)} seeds)"
        (line,) = ax.plot(xs, ys, marker="o", markersize=3, label=label)
        if len(runs) > 1:
            curves = [
                np.interp(
                    xs,
                    [r["n_labeled"] for r in res["rounds"]],
                    [r[metric] for r in res["rounds"]],  # type: ignore[literal-required]
                )
                for res in runs
            ]
            ax.fill_between(
                xs, np.min(curves, axis=0), np.max(curves, axis=0), color=line.get_color(), alpha=0.15
            )
    ceiling = float(
        np.mean([r["full_pool"][metric] for r in results if metric in r["full_pool"]] or [np.nan])
    )
    if not np.isnan(ceiling):
        ax.axhline(ceiling, color="black", linestyle="--", linewidth=1, label=f"full pool ({ceiling:.3f})")
        ax.axhline(0.98 * ceiling, color="grey", linestyle=":", linewidth=1, label="98 % of full pool")
    ax.set_xlabel("labels spent")
    ax.set_ylabel(f"test {metric.replace('_', ' ')}")
    ax.set_title(
        title or f"Learning curves ({results[0]['n_pool']} texts, {results[0]['n_classes']} classes)"
    )
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


# -- embedding space -----------------------------------------------------------------------------


def embedding_2d(X: ArrayLike, method: str = "pca", seed: int = 0) -> np.ndarray:
    """``(n, 2)`` coordinates of the embeddings, for :func:`embedding_map`.

    ``"pca"`` is instant and keeps the global layout; ``"tsne"`` (after PCA to 50
    dimensions) pulls the intents apart far more clearly, at a few seconds per thousand
    texts on a laptop. Both come from scikit-learn, so no extra dependency is needed.
    """
    from sklearn.decomposition import PCA

    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2 or len(X) < 3:
        raise ValueError(f"need a 2-D array of at least 3 embeddings, got shape {X.shape}")
    if method == "pca":
        return PCA(n_components=2, random_state=seed).fit_transform(X)
    if method == "tsne":
        from sklearn.manifold import TSNE
        from threadpoolctl import threadpool_limits

        reduced = PCA(n_components=min(50, *X.shape), random_state=seed).fit_transform(X)
        perplexity = float(min(30.0, (len(X) - 1) / 3))
        tsne = TSNE(
            n_components=2, perplexity=perplexity, init="pca", learning_rate="auto", random_state=seed
        )
        # t-SNE syncs its OpenMP threads a few thousand times; on a busy machine every sync waits
        # for a descheduled thread (measured: 60 points took 44 s instead of 0.2 s). Small maps
        # gain nothing from threads, so they run on one.
        with threadpool_limits(limits=1 if len(X) < 2000 else None, user_api="openmp"):
            return tsne.fit_transform(reduced)
    raise ValueError(f"unknown projection {method!r}; use 'pca' or 'tsne'")


def _class_colors(n: int) -> list[tuple[float, float, float, float]]:
    """Distinct colours for ``n`` classes: the qualitative tables while they last, then a rainbow."""
    if n <= 10:
        return [colormaps["tab10"](i) for i in range(n)]
    if n <= 20:  # tab20's strong colours first, then their light partners: neighbours stay distinct
        return [colormaps["tab20"](i) for i in [*range(0, 20, 2), *range(1, 20, 2)][:n]]
    # Golden-ratio steps along a rainbow: classes next in the (alphabetical) order, often next in
    # meaning too, get far-apart colours.
    return [colormaps["turbo"](0.05 + 0.9 * ((i * 0.6180339887) % 1.0)) for i in range(n)]


def embedding_map(
    coords: ArrayLike,
    labels: ArrayLike,
    class_names: Sequence[str],
    queried: Sequence[ArrayLike],
    *,
    projection: str = "pca",
    title: str | None = None,
) -> Figure:
    """Where the model asks: the pool in 2-D coloured by class (left), and the queried texts
    coloured by round on the same map (right).

    ``labels`` are class indices (-1: unknown, drawn grey). ``queried[r]`` holds the pool
    rows asked in round ``r``, round 0 being the cold-start seed. Two panels rather than one
    because colour cannot encode both class and round at once.
    """
    coords, labels, rounds = _check_map(coords, labels, class_names, queried)
    axis = _PROJECTION_NAMES.get(projection, projection)
    n_classes = len(class_names)

    fig = Figure(figsize=(13, 6.2), layout="constrained")
    left, right = fig.subplots(1, 2, sharex=True, sharey=True)
    handles = _draw_classes(left, coords, labels, class_names)
    _draw_rounds(fig, right, coords, rounds)
    for ax in (left, right):
        ax.set_xlabel(f"{axis} 1")
        ax.set_ylabel(f"{axis} 2")
        ax.set_xticks([])
        ax.set_yticks([])
    if handles and n_classes <= 20:
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=min(7, len(handles)),
            fontsize=8,
            frameon=False,
            markerscale=1.2,
        )
    fig.suptitle(title or f"Embedding space ({axis} of {len(coords)} texts)")
    return fig


def _check_map(
    coords: ArrayLike, labels: ArrayLike, class_names: Sequence[str], queried: Sequence[ArrayLike]
) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
    """:func:`embedding_map`'s inputs as arrays, refused when the points, labels and rounds do not fit together."""
    coords = np.asarray(coords, dtype=float)
    labels = np.asarray(labels)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"coords must have shape (n, 2), got {coords.shape}")
    if len(labels) != len(coords):
        raise ValueError(f"{len(coords)} points but {len(labels)} labels")
    rounds = [np.asarray(q, dtype=np.int64).reshape(-1) for q in queried]
    if any(len(q) and (q.min() < 0 or q.max() >= len(coords)) for q in rounds):
        raise ValueError("queried rows must index the points")
    if len(labels) and labels.max() >= len(class_names):
        raise ValueError(f"labels hold class indices beyond the {len(class_names)} class names")
    return coords, labels, rounds


def _draw_classes(
    ax: Axes, coords: np.ndarray, labels: np.ndarray, class_names: Sequence[str]
) -> list[Line2D]:
    """The pool coloured by class (unknown in grey); returns the legend's handles."""
    n_classes = len(class_names)
    colors = _class_colors(n_classes)
    handles = []
    unknown = labels < 0
    if unknown.any():
        ax.scatter(coords[unknown, 0], coords[unknown, 1], s=6, color="lightgrey", linewidths=0)
    for c, name in enumerate(class_names):
        rows = labels == c
        if rows.any():
            ax.scatter(coords[rows, 0], coords[rows, 1], s=8, color=colors[c], alpha=0.75, linewidths=0)
            handles.append(Line2D([], [], marker="o", linestyle="", color=colors[c], label=name))
    ax.set_title("Pool, coloured by class" + (f" ({n_classes} classes)" if n_classes > 20 else ""))
    return handles


def _draw_rounds(fig: Figure, ax: Axes, coords: np.ndarray, rounds: list[np.ndarray]) -> None:
    """The pool in grey and the queried texts over it, coloured by round (the cold-start seed as stars)."""
    ax.scatter(coords[:, 0], coords[:, 1], s=6, color="lightgrey", linewidths=0)
    n_rounds = len(rounds)
    if n_rounds:
        cmap = ListedColormap([colormaps["viridis"](x) for x in np.linspace(0, 0.92, n_rounds)])
        norm = BoundaryNorm(np.arange(n_rounds + 1) - 0.5, n_rounds)
        for r, rows in enumerate(rounds):
            if len(rows):
                seed = r == 0
                ax.scatter(
                    coords[rows, 0],
                    coords[rows, 1],
                    s=90 if seed else 34,
                    color=cmap(r),
                    marker="*" if seed else "o",
                    edgecolors="black",
                    linewidths=0.4,
                    zorder=3,
                )
        bar = fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, shrink=0.9)
        bar.set_label("query round (0 = cold-start seed, ★)")
        step = max(1, int(np.ceil(n_rounds / 12)))
        bar.set_ticks(range(0, n_rounds, step))
    total = sum(len(q) for q in rounds)
    ax.set_title(f"Queried texts by round ({total} texts in {n_rounds} rounds)")


# -- errors --------------------------------------------------------------------------------------


def _check_pair(y_true: ArrayLike, y_pred: ArrayLike, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    y_true, y_pred = np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise ValueError(
            f"y_true and y_pred must be 1-D of one length, got {y_true.shape} and {y_pred.shape}"
        )
    if len(y_true) == 0:
        raise ValueError("no labels to plot")
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.min() < 0 or y.max() >= n_classes:
            raise ValueError(f"{name} holds class indices outside 0..{n_classes - 1}")
    return y_true, y_pred


def _most_confused(cm: np.ndarray, k: int) -> list[int]:
    """Classes in the most frequent confusions, pair by pair, so confusable classes sit side by side."""
    mutual = cm + cm.T
    np.fill_diagonal(mutual, 0)
    rows, cols = np.triu_indices(len(cm), 1)
    counts = mutual[rows, cols]
    chosen: list[int] = []
    for p in np.argsort(-counts, kind="stable"):
        if counts[p] == 0 or len(chosen) >= k:
            break
        for c in (int(rows[p]), int(cols[p])):
            if c not in chosen and len(chosen) < k:
                chosen.append(c)
    errors = cm.sum(axis=1) - np.diag(cm)
    for c in np.argsort(-errors, kind="stable"):  # fill up with the classes that err most
        if len(chosen) >= k:
            break
        if int(c) not in chosen:
            chosen.append(int(c))
    return chosen


def confusion_top(
    y_true: ArrayLike, y_pred: ArrayLike, class_names: Sequence[str], k: int = 8, title: str | None = None
) -> Figure:
    """Confusion matrix of the ``k`` classes the model mixes up most (rows true, columns predicted).

    A full matrix of dozens of classes is an unreadable diagonal; what a reader needs is
    which classes blur together. Off-diagonal cells are shaded by count, the diagonal is
    grey (correct), and an ``other classes`` column keeps each row's total equal to its
    test support.
    """
    from sklearn.metrics import confusion_matrix

    n_classes = len(class_names)
    y_true, y_pred = _check_pair(y_true, y_pred, n_classes)
    if k < 2:
        raise ValueError("k must be ≥ 2")
    cm = confusion_matrix(y_true, y_pred, labels=np.arange(n_classes))
    chosen = _most_confused(cm, min(k, n_classes))
    sub = cm[np.ix_(chosen, chosen)]
    other = cm[chosen].sum(axis=1) - sub.sum(axis=1)
    has_other = len(chosen) < n_classes
    matrix = np.hstack([sub, other[:, None]]) if has_other else sub
    off = matrix.astype(float)
    off[np.arange(len(chosen)), np.arange(len(chosen))] = np.nan
    vmax = max(1.0, float(np.nanmax(off)) if np.isfinite(off).any() else 1.0)

    size = len(chosen)
    fig = Figure(figsize=(2.8 + 0.75 * (size + has_other), 2.0 + 0.6 * size), layout="constrained")
    ax = fig.subplots()
    cmap = colormaps["Reds"].with_extremes(bad="#e6e6e6")  # the diagonal: correct, not shaded
    image = ax.imshow(np.ma.masked_invalid(off), cmap=cmap, vmin=0, vmax=vmax, aspect="auto")
    _write_counts(ax, matrix, vmax)
    names = [class_names[c] for c in chosen]
    ax.set_xticks(
        range(matrix.shape[1]),
        [*names, "other classes"] if has_other else names,
        rotation=40,
        ha="right",
        rotation_mode="anchor",
        fontsize=8,
    )
    ax.set_yticks(range(size), names, fontsize=8)
    if has_other:
        ax.axvline(size - 0.5, color="black", linewidth=1)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    wrong = int((y_true != y_pred).sum())
    ax.set_title(title or f"Most-confused classes ({wrong} of {len(y_true)} test texts wrong)", fontsize=10)
    bar = fig.colorbar(image, ax=ax, shrink=0.8)
    bar.set_label("texts (off the diagonal)")
    bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    return fig


def _write_counts(ax: Axes, matrix: np.ndarray, vmax: float) -> None:
    """Each cell's count (a dot for an empty cell off the diagonal), white on the darkest shades."""
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            value = int(matrix[i, j])
            diagonal = i == j
            dark = not diagonal and value > 0.6 * vmax
            ax.text(
                j,
                i,
                str(value) if value or diagonal else "·",
                ha="center",
                va="center",
                fontsize=9,
                fontweight="bold" if diagonal else "normal",
                color="white" if dark else "black",
            )


def most_uncertain(
    texts: Sequence[str],
    probs: ArrayLike,
    class_names: Sequence[str],
    n: int = 10,
    y_true: ArrayLike | None = None,
) -> list[dict[str, Any]]:
    """The ``n`` texts whose two best labels are closest (smallest top-2 margin), most uncertain first.

    Each row has ``index`` (into ``texts``), ``text``, ``top1``, ``p1``, ``top2``, ``p2``,
    ``margin`` and, with ``y_true``, the ``true`` label. A table for people and the data
    behind :func:`uncertain_texts`.
    """
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape != (len(texts), len(class_names)):
        raise ValueError(f"probs must have shape ({len(texts)}, {len(class_names)}), got {probs.shape}")
    if len(class_names) < 2:
        raise ValueError("need at least two classes for a top-2 margin")
    truth = None if y_true is None else np.asarray(y_true, dtype=np.int64)
    if truth is not None and len(truth) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(truth)} true labels")
    top2 = np.argsort(-probs, axis=1, kind="stable")[:, :2]
    p = np.take_along_axis(probs, top2, axis=1)
    margins = p[:, 0] - p[:, 1]
    rows = []
    for i in np.argsort(margins, kind="stable")[:n]:
        row = {
            "index": int(i),
            "text": texts[i],
            "top1": class_names[top2[i, 0]],
            "p1": float(p[i, 0]),
            "top2": class_names[top2[i, 1]],
            "p2": float(p[i, 1]),
            "margin": float(margins[i]),
        }
        if truth is not None:
            row["true"] = class_names[truth[i]] if truth[i] >= 0 else None
        rows.append(row)
    return rows


def uncertain_texts(
    texts: Sequence[str],
    probs: ArrayLike,
    class_names: Sequence[str],
    n: int = 10,
    y_true: ArrayLike | None = None,
    width: int = 60,
) -> Figure:
    """The texts the model is least sure about, with its two best labels and their probabilities.

    These are what margin sampling would ask next; reading them shows whether the model is
    torn between genuinely close intents or simply has not seen a kind of text yet. With
    ``y_true``, a wrong top guess is marked in red with the true label.
    """
    rows = most_uncertain(texts, probs, class_names, n, y_true)
    if not rows:
        raise ValueError("no texts to plot")
    fig = Figure(figsize=(12, 1.3 + 0.55 * len(rows)), layout="constrained")
    ax = fig.subplots()
    pos = np.arange(len(rows))
    p1 = np.array([r["p1"] for r in rows])
    p2 = np.array([r["p2"] for r in rows])
    # Side by side, not stacked: the point is how close the two bars are.
    ax.barh(pos - 0.19, p1, height=0.36, color="#4c72b0", label="best label")
    ax.barh(pos + 0.19, p2, height=0.36, color="#dd8452", label="second label")
    ax.set_yticks(pos, [_wrap(r["text"], width) for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)  # most uncertain on top
    ax.set_xlim(0, 1)
    ax.set_xlabel("predicted probability")
    ax.grid(axis="x", alpha=0.3)

    side = ax.twinx()
    side.set_ylim(ax.get_ylim())
    guesses = []
    for r in rows:
        guess = f"{r['top1']} {r['p1']:.2f}  vs  {r['top2']} {r['p2']:.2f}"
        if r.get("true") is not None and r["true"] != r["top1"]:
            guess += f"\n(true: {r['true']})"
        guesses.append(guess)
    side.set_yticks(pos, guesses, fontsize=8)
    for tick, r in zip(side.get_yticklabels(), rows, strict=True):
        if r.get("true") is not None and r["true"] != r["top1"]:
            tick.set_color("#c0392b")
    ax.legend(
        loc="upper center",
        bbox_to_anchor=(0.5, -0.09 if len(rows) > 4 else -0.2),
        ncols=2,
        fontsize=8,
        frameon=False,
    )
    ax.set_title(
        f"The {len(rows)} most uncertain texts (smallest gap between the two best labels)", fontsize=10
    )
    return fig


def _wrap(text: str, width: int, lines: int = 2) -> str:
    """At most ``lines`` lines of ``width`` characters, ending in … when cut."""
    flat = " ".join(text.split())
    return "\n".join(textwrap.wrap(flat, width, max_lines=lines, placeholder=" …")) or "(empty)"


def per_class_f1(
    y_true: ArrayLike,
    predictions: Mapping[str, ArrayLike] | ArrayLike,
    class_names: Sequence[str],
    title: str | None = None,
) -> Figure:
    """F1 of every class, one marker per model, worst classes (of the first model) on top.

    A macro average hides the intents a model never gets right; this shows them, and
    with several models (e.g. active learning vs random at the same budget, and the full
    pool) where the labels went. Classes absent from ``y_true`` have no F1 and are left out.
    """
    from sklearn.metrics import precision_recall_fscore_support

    preds = dict(predictions) if isinstance(predictions, Mapping) else {"model": predictions}
    if not preds:
        raise ValueError("no predictions to plot")
    n_classes = len(class_names)
    y_true = np.asarray(y_true, dtype=np.int64)
    scores: dict[str, np.ndarray] = {}
    support = None
    for name, pred in preds.items():
        y, p = _check_pair(y_true, pred, n_classes)
        _, _, f1, support = precision_recall_fscore_support(
            y, p, labels=np.arange(n_classes), zero_division=0
        )
        scores[name] = f1
    assert support is not None
    present = np.flatnonzero(support > 0)
    first = next(iter(scores.values()))
    order = present[np.argsort(first[present], kind="stable")]

    fig = Figure(figsize=(8, 1.8 + 0.26 * len(order)), layout="constrained")
    ax = fig.subplots()
    pos = np.arange(len(order))
    lows = np.min([s[order] for s in scores.values()], axis=0)
    highs = np.max([s[order] for s in scores.values()], axis=0)
    ax.hlines(pos, lows, highs, color="lightgrey", linewidth=2, zorder=1)
    markers = "oDs^v<>p"
    for k, (name, f1) in enumerate(scores.items()):
        ax.scatter(
            f1[order],
            pos,
            marker=markers[k % len(markers)],
            s=28,
            zorder=2 + k,
            label=f"{name} (macro F1 {f1[present].mean():.3f})",
        )
    ax.set_yticks(pos, [f"{class_names[c]} (n={support[c]})" for c in order], fontsize=8)
    ax.set_ylim(len(order) - 0.5, -0.5)  # worst on top
    ax.set_xlim(-0.02, 1.02)
    ax.set_xlabel("F1 on the test set")
    ax.grid(axis="x", alpha=0.3)
    if len(order) > 25:  # a tall figure: repeat the scale on top
        ax.tick_params(labeltop=True, top=True)
    fig.legend(loc="outside upper center", fontsize=8, ncols=min(3, len(scores)), frameon=False)
    ax.set_title(title or f"F1 per class ({len(order)} classes, worst first)", fontsize=10)
    return fig


def campaign_curve(rounds: Sequence[Mapping[str, Any]]) -> Figure:
    """Accuracy over the rounds of a real campaign: the audit sample's estimate with its 95 % interval
    (a band, because audit samples are small) and, when there is one, the held-out test accuracy.

    ``rounds``: ``{"n_labeled": int, "audit": {...} | None, "test": {...} | None}`` as ``sync`` records them.
    """
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    audit = [(r["n_labeled"], r["audit"]) for r in rounds if (r.get("audit") or {}).get("n")]
    if audit:
        xs = [x for x, _ in audit]
        ax.fill_between(
            xs,
            [a["accuracy_ci"][0] for _, a in audit],
            [a["accuracy_ci"][1] for _, a in audit],
            alpha=0.2,
            label="audit 95 % interval",
        )
        ax.plot(
            xs,
            [a["accuracy"] for _, a in audit],
            marker="o",
            markersize=3,
            label=f"audit accuracy (n = {audit[-1][1]['n']} at the end)",
        )
    test = [(r["n_labeled"], r["test"]) for r in rounds if (r.get("test") or {}).get("n")]
    if test:
        ax.plot(
            [x for x, _ in test],
            [t["accuracy"] for _, t in test],
            marker="s",
            markersize=3,
            label="test accuracy",
        )
    if not audit and not test:
        ax.text(0.5, 0.5, "no audit or test labels yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("labels the model was trained on")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    if audit or test:
        ax.legend(fontsize=8, loc="lower right")
    ax.set_title("Accuracy over the campaign's rounds", fontsize=10)
    return fig


def throughput(per_day: Mapping[str, Mapping[str, int]]) -> Figure:
    """Labels per annotator per day (``{annotator: {"YYYY-MM-DD": n}}``), stacked bars."""
    days = sorted({d for counts in per_day.values() for d in counts})
    fig = Figure(figsize=(7.5, 3.6), layout="constrained")
    ax = fig.subplots()
    bottom = np.zeros(len(days))
    for who, counts in sorted(per_day.items()):
        vals = np.array([counts.get(d, 0) for d in days], dtype=float)
        ax.bar(days, vals, bottom=bottom, label=who)
        bottom += vals
    if not days:
        ax.text(0.5, 0.5, "no labels yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_ylabel("labels")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(axis="x", labelrotation=45, labelsize=8)
    if per_day:
        ax.legend(fontsize=8)
    ax.set_title("Labels per annotator per day", fontsize=10)
    return fig


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    pyplot = sys.modules.get("matplotlib.pyplot")
    if pyplot is not None:  # a figure a caller made with pyplot stays registered until closed
        pyplot.close(fig)
    return path
