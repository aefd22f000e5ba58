"""``labelloop simulate``: replay known labels to compare query strategies."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TimeElapsedColumn
from rich.progress import TextColumn as ProgressText
from rich.table import Table

from ..data import Pool, check_test_labels, demo_paths
from ..embeddings import Encoder
from ..errors import DataError, LabelloopError
from ..features import DEFAULT_SMOOTHING, NeighbourSmoothing
from ..featurize import Featurized, featurize, featurize_vectors
from ..multilabel import MULTILABEL_STRATEGIES
from ..outputs import atomic_path, atomic_write, check_output
from ..simulate import (
    CEILING_MAX,
    INITIAL_STRATEGIES,
    SimulationResult,
    area_under_curve,
    full_pool,
    labels_to_reach,
)
from ..simulate import simulate as run_simulation
from ..strategies import DEFAULT_STRATEGY, STRATEGIES
from . import app
from ._common import CacheDir, IdColumn, LabelColumn, ModelPath, Neighbours, SkipEmpty, TextColumn, load_data


@app.command()
def simulate(
    train: Annotated[
        Optional[Path],
        typer.Option(
            help="Pool with known labels (CSV, JSONL or Parquet). Default: the bundled demo tickets."
        ),
    ] = None,
    test: Annotated[
        Optional[Path], typer.Option(help="Held-out labeled file to score each round on.")
    ] = None,
    text_column: TextColumn = "text",
    label_column: LabelColumn = "label",
    id_column: IdColumn = None,
    strategy: Annotated[
        str,
        typer.Option(
            help=f"Query strategy, or several comma-separated: {', '.join(s for s in STRATEGIES if s != 'cold-start')}."
        ),
    ] = DEFAULT_STRATEGY,
    initial: Annotated[int, typer.Option(help="Labels before the first model; 0 = cold start.")] = 100,
    initial_strategy: Annotated[
        str, typer.Option(help="How the initial labels are chosen: cold-start (k-means coverage) or random.")
    ] = "cold-start",
    batch_size: Annotated[int, typer.Option(help="Texts queried per round.")] = 100,
    budget: Annotated[int, typer.Option(help="Total labels to spend (capped at the pool size).")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (k-means, ties, random sampling).")] = 0,
    model: ModelPath = None,
    cache_dir: CacheDir = None,
    embedding_column: Annotated[
        Optional[str],
        typer.Option(
            help="Take each text's vector from this Parquet column (a list of floats per row) instead of "
            "running the encoder; both files need it.",
            metavar="NAME",
        ),
    ] = None,
    ceiling_max: Annotated[
        int,
        typer.Option(
            help="Train the full-pool ceiling on at most this many pool rows (a stratified sample above).",
            min=1,
        ),
    ] = CEILING_MAX,
    neighbours: Neighbours = DEFAULT_SMOOTHING.k,
    skip_empty: SkipEmpty = False,
    multi_label: Annotated[
        bool,
        typer.Option(
            "--multi-label",
            help="Each label cell holds a set of labels (split on --label-delimiter): one binary head per "
            "label, binary-margin selection, micro/macro F1. Strategies: "
            f"{', '.join(MULTILABEL_STRATEGIES)}.",
        ),
    ] = False,
    label_delimiter: Annotated[
        str, typer.Option(help="Separator of labels in a cell (--multi-label).")
    ] = "|",
    out: Annotated[Path, typer.Option(help="Where to write the results JSON.")] = Path("results.json"),
    plot: Annotated[Optional[Path], typer.Option(help="Write a learning-curve PNG here.")] = None,
) -> None:
    """Simulate an annotation campaign with a known-label pool: seed → train → query → reveal → retrain.

    Prints the learning curve per strategy and writes RESULTS JSON (one object for a single
    strategy, a list for several). With no --train/--test it runs on the bundled demo tickets.
    """
    console = Console(stderr=True)
    strategies = _strategies(strategy, multi_label)
    if initial_strategy not in INITIAL_STRATEGIES:
        raise LabelloopError(f"--initial-strategy must be one of {', '.join(INITIAL_STRATEGIES)}")
    if batch_size < 1 or budget < 1 or initial < 0:
        raise LabelloopError("--batch-size and --budget must be ≥ 1 and --initial ≥ 0")
    if 0 < budget < initial:
        raise LabelloopError(f"--budget {budget} is smaller than --initial {initial}")
    out = check_output(out, "--out")
    if plot is not None:
        plot = check_output(plot, "--plot")
        from matplotlib.backend_bases import FigureCanvasBase

        if plot.suffix.lstrip(".").lower() not in FigureCanvasBase.get_supported_filetypes():
            raise LabelloopError(
                f"--plot {plot}: unsupported image type {plot.suffix!r}; use .png, .svg or .pdf"
            )
    if (train is None) != (test is None):
        raise LabelloopError("give both --train and --test, or neither (to use the bundled demo data)")
    if train is None:
        train, test = demo_paths()
        console.print(f"No data given: using the bundled demo tickets ({train.parent}).")
    assert test is not None
    pool = load_data(
        console, train, text_column, label_column, id_column, skip_empty=skip_empty, require_labels=True
    )
    held = load_data(
        console,
        test,
        text_column,
        label_column,
        None,
        skip_empty=skip_empty,
        require_labels=True,
        unique_ids=False,
    )
    if not multi_label:  # label sets are checked label by label (_multi_label)
        check_test_labels(pool, held)
    classes = pool.label_set
    repeated = (
        f" in {pool.n_rows} rows (identical texts are asked once; a label covers every copy)"
        if pool.n_rows != len(pool)
        else ""
    )
    kinds = "label sets" if multi_label else "classes"
    console.print(f"Pool {len(pool)} texts{repeated}, test {len(held)}, {len(classes)} {kinds}.")
    smoothing = NeighbourSmoothing(k=neighbours)
    if smoothing.enabled and len(pool) > 100_000:
        console.print(
            f"Neighbour smoothing compares each of the {len(pool)} pool texts with every other: this takes "
            f"long at this size; --neighbours 0 turns it off."
        )
    if embedding_column is not None:
        if model is not None:
            raise LabelloopError(
                "give --model or --embedding-column, not both: the vectors come from one of them"
            )
        f = _column_features(train, test, embedding_column, pool.file_rows, held.file_rows, smoothing)
        model_name = f.encoder_identity
    else:
        encoder = Encoder(model)
        f = featurize(
            pool.texts, held.texts, encoder=encoder, cache_dir=cache_dir, smoothing=smoothing, progress=True
        )
        model_name = encoder.name
    X_pool, X_test = f.pool, f.others[0]
    if multi_label:
        _multi_label(
            console,
            pool,
            held,
            X_pool,
            X_test,
            strategies,
            label_delimiter,
            out,
            initial=initial,
            batch_size=batch_size,
            budget=budget,
            seed=seed,
        )
        return
    y_pool, y_test = pool.label_array(classes), held.label_array(classes)
    ceiling = full_pool(X_pool, y_pool, X_test, y_test, len(classes), max_rows=ceiling_max, seed=seed)
    if ceiling["n"] < len(pool):
        console.print(f"Full-pool ceiling trained on a stratified sample of {ceiling['n']:.0f} pool texts.")

    results: list[SimulationResult] = []
    with Progress(
        ProgressText("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        ProgressText("labels"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        for name in strategies:
            task = bar.add_task(f"simulating {name}", total=min(budget, len(pool)))
            results.append(
                run_simulation(
                    X_pool,
                    y_pool,
                    X_test,
                    y_test,
                    len(classes),
                    strategy=name,
                    initial=initial,
                    initial_strategy=initial_strategy,
                    batch_size=batch_size,
                    budget=budget,
                    seed=seed,
                    model=model_name,
                    features=str(smoothing),
                    ceiling=ceiling,
                    copies=pool.copies,
                    progress=_per_round(bar, task, name),
                )
            )

    with atomic_write(out) as fh:
        fh.write(json.dumps(results[0] if len(results) == 1 else results, indent=2) + "\n")
    Console().print(curve_table(results))
    Console().print(summary_table(results))
    console.print(f"Wrote {out}")
    if plot is not None:
        from ..plots import learning_curves, save

        with atomic_path(plot, "--plot") as tmp:
            save(learning_curves(results), tmp)
        console.print(f"Wrote {plot}")


def _strategies(strategy: str, multi_label: bool) -> list[str]:
    """The comma-separated ``--strategy`` names, checked against the mode's strategies."""
    names = list(dict.fromkeys(s.strip() for s in strategy.split(",") if s.strip()))
    known: Sequence[str] = list(MULTILABEL_STRATEGIES) if multi_label else list(STRATEGIES)
    if not names:
        raise LabelloopError(f"--strategy is empty; choose from {', '.join(known)}")
    for name in names:
        if name not in known:
            mode = "multi-label " if multi_label else ""
            raise LabelloopError(f"unknown {mode}strategy {name!r}; choose from {', '.join(known)}")
    return names


def _multi_label(
    console: Console,
    pool: Pool,
    held: Pool,
    X_pool: np.ndarray,
    X_test: np.ndarray,
    strategies: list[str],
    delimiter: str,
    out: Path,
    **plan: int,
) -> None:
    """The ``--multi-label`` run: label sets from the label cells, one curve of micro-F1 per strategy."""
    from ..multilabel import label_matrix, parse_label_sets, simulate_multilabel

    sets, test_sets = parse_label_sets(pool.labels, delimiter), parse_label_sets(held.labels, delimiter)
    labels = sorted(set().union(*sets))
    unseen = sorted(set().union(*test_sets) - set(labels))
    if unseen:
        raise DataError(f"test labels never seen in the pool: {unseen[:10]}")
    Y, Y_test = label_matrix(sets, labels), label_matrix(test_sets, labels)
    console.print(f"Multi-label: {len(labels)} labels, {Y.sum(axis=1).mean():.2f} per pool text.")
    runs = {
        name: simulate_multilabel(X_pool, Y, X_test, Y_test, strategy=name, **plan)  # type: ignore[arg-type]
        for name in track(strategies, console)
    }
    result = {
        "mode": "multi-label",
        "labels": labels,
        "seed": plan["seed"],
        "n_pool": len(X_pool),
        "strategies": {name: {"rounds": rounds} for name, rounds in runs.items()},
    }
    with atomic_write(out) as fh:
        fh.write(json.dumps(result, indent=2) + "\n")
    table = Table(title="Test micro-F1 by labels spent")
    table.add_column("labels", justify="right")
    for name in runs:
        table.add_column(name, justify="right")
    first = next(iter(runs.values()))
    for k, r in enumerate(first):
        table.add_row(str(r["n_labeled"]), *(f"{rounds[k]['micro_f1']:.3f}" for rounds in runs.values()))
    Console().print(table)
    console.print(f"Wrote {out}")


def track(names: list[str], console: Console):
    """Each strategy name, with a line saying which one runs (rounds take seconds each)."""
    for name in names:
        console.print(f"simulating {name}…")
        yield name


def _column_features(
    train: Path,
    test: Path,
    column: str,
    train_rows: Sequence[int] | None,
    test_rows: Sequence[int] | None,
    smoothing: NeighbourSmoothing,
) -> Featurized:
    """Features from the vectors of ``column`` in both files (:mod:`labelloop.column_vectors`)."""
    from ..column_vectors import read_vectors

    V, identity = read_vectors(train, column, train_rows)
    Vt, _ = read_vectors(test, column, test_rows)
    if V.shape[1] != Vt.shape[1]:
        raise DataError(
            f"{test}: vectors in column {column!r} have {Vt.shape[1]} numbers, those of {train} {V.shape[1]}"
        )
    return featurize_vectors(V, Vt, identity=identity, smoothing=smoothing, progress=True)


def _per_round(bar: Progress, task: TaskID, name: str) -> Callable[[int, int], None]:
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
