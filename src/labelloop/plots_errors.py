"""Figures of a model's errors: the classes it confuses, the texts it is least sure about, F1 per class
(:mod:`labelloop.plots`, which re-exports them, says how every figure is made)."""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from numpy.typing import ArrayLike

__all__ = ["confusion_top", "most_uncertain", "uncertain_texts", "per_class_f1"]


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
