"""Figures shared by the CLI, reports and notebooks.

Every function takes plain data (arrays of label indices, lists of texts, ``simulate``
results) and returns a matplotlib :class:`~matplotlib.figure.Figure`; nothing is shown
and nothing is written except by :func:`save`. Figures are built without pyplot, so
importing this module never switches the caller's backend (a notebook keeps its inline
display, a headless CI needs no display) and no figure lingers in pyplot's registry.

Learning curves, the campaign's figures and :func:`save` are here; the embedding-space figures are in
:mod:`labelloop.plots_embedding` and those of a model's errors in :mod:`labelloop.plots_errors`, all
re-exported here so callers import every figure from this one module.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .plots_embedding import embedding_2d, embedding_map
from .plots_errors import confusion_top, most_uncertain, per_class_f1, uncertain_texts
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
