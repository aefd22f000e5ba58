"""Figures of the embedding space: where the pool lies in 2-D, and where the model asked (:mod:`labelloop.plots`,
which re-exports them, says how every figure is made)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import BoundaryNorm, ListedColormap
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from numpy.typing import ArrayLike

__all__ = ["embedding_2d", "embedding_map"]

_PROJECTION_NAMES = {"pca": "PCA", "tsne": "t-SNE"}


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
