"""Figures shared by the CLI, reports and notebooks. Each returns a matplotlib Figure; nothing is shown."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg", force=False)  # headless by default; notebooks keep their inline backend
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from .simulate import SimulationResult, mean_curve  # noqa: E402

__all__ = ["learning_curves", "save"]


def learning_curves(results: Sequence[SimulationResult], metric: str = "accuracy", title: str | None = None) -> Figure:
    """Test ``metric`` against labels spent, one line per strategy (mean over seeds, band = min..max),
    with the full-pool ceiling and its 98 % mark for reference."""
    if not results:
        raise ValueError("no results to plot")
    by_strategy: dict[str, list[SimulationResult]] = defaultdict(list)
    for res in results:
        by_strategy[res["strategy"]].append(res)
    fig, ax = plt.subplots(figsize=(7.5, 4.5), layout="constrained")
    for name, runs in by_strategy.items():
        xs, ys = mean_curve(runs, metric)
        label = name if len(runs) == 1 else f"{name} (mean of {len(runs)} seeds)"
        (line,) = ax.plot(xs, ys, marker="o", markersize=3, label=label)
        if len(runs) > 1:
            curves = [np.interp(xs, [r["n_labeled"] for r in res["rounds"]],
                                [r[metric] for r in res["rounds"]]) for res in runs]  # type: ignore[literal-required]
            ax.fill_between(xs, np.min(curves, axis=0), np.max(curves, axis=0), color=line.get_color(), alpha=0.15)
    ceiling = float(np.mean([r["full_pool"][metric] for r in results if metric in r["full_pool"]] or [np.nan]))
    if not np.isnan(ceiling):
        ax.axhline(ceiling, color="black", linestyle="--", linewidth=1, label=f"full pool ({ceiling:.3f})")
        ax.axhline(0.98 * ceiling, color="grey", linestyle=":", linewidth=1, label="98 % of full pool")
    ax.set_xlabel("labels spent")
    ax.set_ylabel(f"test {metric.replace('_', ' ')}")
    ax.set_title(title or f"Learning curves ({results[0]['n_pool']} texts, {results[0]['n_classes']} classes)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    return fig


def save(fig: Figure, path: str | Path, dpi: int = 120) -> Path:
    """Write ``fig`` to ``path`` (format from the suffix) and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
