"""What ``labelloop simulate`` shows while and after it runs: progress per round and the result tables."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from rich.console import Console
from rich.progress import Progress, TaskID
from rich.table import Table

from ..simulate import SimulationResult, area_under_curve, labels_to_reach


def track(names: list[str], console: Console) -> Iterator[str]:
    """Each strategy name, with a line saying which one runs (rounds take seconds each)."""
    for name in names:
        console.print(f"simulating {name}…")
        yield name


def per_round(bar: Progress, task: TaskID, name: str) -> Callable[[int, int], None]:
    """Advance ``task`` after each round and show the round's number and wall seconds."""
    rounds, last = [0], [time.perf_counter()]

    def update(n_labeled: int, total: int) -> None:
        now = time.perf_counter()
        bar.update(
            task,
            completed=n_labeled,
            description=f"simulating {name}, round {rounds[0]} ({now - last[0]:.1f} s)",
        )
        rounds[0] += 1
        last[0] = now

    return update


def curve_table(results: list[SimulationResult]) -> Table:
    """Accuracy per round, one column per strategy."""
    table = Table(
        title=f"Test accuracy by labels spent (full pool: {results[0]['full_pool']['accuracy']:.3f})"
    )
    table.add_column("labels", justify="right")
    for res in results:
        table.add_column(res["strategy"], justify="right")
    rows = sorted({r["n_labeled"] for res in results for r in res["rounds"]})
    for n in rows:
        cells = []
        for res in results:
            acc = {r["n_labeled"]: r["accuracy"] for r in res["rounds"]}.get(n)
            cells.append("" if acc is None else f"{acc:.3f}")
        table.add_row(str(n), *cells)
    return table


def summary_table(results: list[SimulationResult]) -> Table:
    """Label efficiency: labels to reach a share of the full-pool accuracy, and the mean over the curve."""
    table = Table(title="Label efficiency")
    table.add_column("strategy", no_wrap=True)
    for col in ("to 95 %", "to 98 %", "to 100 %", "all classes seen", "area under curve", "final acc."):
        table.add_column(col, justify="right")
    for res in results:
        reach = [labels_to_reach(res, f) for f in (0.95, 0.98, 1.0)]
        last = res["rounds"][-1]
        seen = next((r["n_labeled"] for r in res["rounds"] if r["classes_seen"] >= res["n_classes"]), None)
        table.add_row(
            res["strategy"],
            *["—" if r is None else str(r) for r in reach],
            "—" if seen is None else str(seen),
            f"{area_under_curve(res):.3f}",
            f"{last['accuracy']:.3f}",
        )
    return table
