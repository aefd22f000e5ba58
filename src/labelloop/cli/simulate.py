"""``labelloop simulate``: replay known labels to compare query strategies."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.progress import TextColumn as ProgressText
from rich.table import Table

from ..data import Pool, check_test_labels, demo_paths
from ..embeddings import Encoder
from ..errors import DataError, LabelloopError
from ..features import DEFAULT_SMOOTHING, NeighbourSmoothing
from ..featurize import Featurized, features_by_labels, featurize, featurize_vectors
from ..multilabel import MULTILABEL_STRATEGIES
from ..outputs import atomic_path, atomic_write, check_output
from ..simulate import (
    CEILING_MAX,
    INITIAL_STRATEGIES,
    SimulationResult,
    full_pool,
)
from ..simulate import simulate as run_simulation
from ..strategies import DEFAULT_STRATEGY, STRATEGIES
from . import app
from ._common import CacheDir, IdColumn, LabelColumn, ModelPath, Neighbours, SkipEmpty, TextColumn, load_data
from .simulate_view import curve_table, per_round, summary_table, track

TrainOpt = Annotated[
    Optional[Path],
    typer.Option(help="Pool with known labels (CSV, JSONL or Parquet). Default: the bundled demo tickets."),
]
TestOpt = Annotated[Optional[Path], typer.Option(help="Held-out labeled file to score each round on.")]
StrategiesOpt = Annotated[
    str,
    typer.Option(
        help=f"Query strategy, or several comma-separated: {', '.join(s for s in STRATEGIES if s != 'cold-start')}."
    ),
]
EmbeddingColumnOpt = Annotated[
    Optional[str],
    typer.Option(
        help="Take each text's vector from this Parquet column (a list of floats per row) instead of "
        "running the encoder; both files need it.",
        metavar="NAME",
    ),
]
CeilingMaxOpt = Annotated[
    int,
    typer.Option(
        help="Train the full-pool ceiling on at most this many pool rows (a stratified sample above).",
        min=1,
    ),
]
MultiLabelOpt = Annotated[
    bool,
    typer.Option(
        "--multi-label",
        help="Each label cell holds a set of labels (split on --label-delimiter): one binary head per "
        "label, binary-margin selection, micro/macro F1. Strategies: "
        f"{', '.join(MULTILABEL_STRATEGIES)}.",
    ),
]


@app.command()
def simulate(
    train: TrainOpt = None,
    test: TestOpt = None,
    text_column: TextColumn = "text",
    label_column: LabelColumn = "label",
    id_column: IdColumn = None,
    strategy: StrategiesOpt = DEFAULT_STRATEGY,
    initial: Annotated[int, typer.Option(help="Labels before the first model; 0 = cold start.")] = 100,
    initial_strategy: Annotated[
        str, typer.Option(help="How the initial labels are chosen: cold-start (k-means coverage) or random.")
    ] = "cold-start",
    batch_size: Annotated[int, typer.Option(help="Texts queried per round.")] = 100,
    budget: Annotated[int, typer.Option(help="Total labels to spend (capped at the pool size).")] = 2000,
    seed: Annotated[int, typer.Option(help="Random seed (k-means, ties, random sampling).")] = 0,
    model: ModelPath = None,
    cache_dir: CacheDir = None,
    embedding_column: EmbeddingColumnOpt = None,
    ceiling_max: CeilingMaxOpt = CEILING_MAX,
    neighbours: Neighbours = DEFAULT_SMOOTHING.k,
    skip_empty: SkipEmpty = False,
    multi_label: MultiLabelOpt = False,
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
    _check_plan(initial_strategy, initial=initial, batch_size=batch_size, budget=budget)
    out = check_output(out, "--out")
    plot = _check_plot(plot)
    train, test = _data_paths(console, train, test)
    pool, held = _read_pools(
        console,
        train,
        test,
        text_column,
        label_column,
        id_column,
        skip_empty=skip_empty,
        multi_label=multi_label,
    )
    smoothing = replace(DEFAULT_SMOOTHING, k=neighbours)  # the weight fades as in a campaign
    f, model_name = _features(console, train, test, pool, held, smoothing, embedding_column, model, cache_dir)
    plan = {"initial": initial, "batch_size": batch_size, "budget": budget, "seed": seed}
    if multi_label:
        _multi_label(console, pool, held, f, strategies, label_delimiter, out, **plan)
        return
    results = _run_strategies(
        console,
        pool,
        held,
        f,
        strategies,
        initial_strategy=initial_strategy,
        model_name=model_name,
        ceiling_max=ceiling_max,
        **plan,
    )
    _write_results(console, results, out, plot)


def _check_plan(initial_strategy: str, *, initial: int, batch_size: int, budget: int) -> None:
    """Refuse a plan that cannot run, before any data is read."""
    if initial_strategy not in INITIAL_STRATEGIES:
        raise LabelloopError(f"--initial-strategy must be one of {', '.join(INITIAL_STRATEGIES)}")
    if batch_size < 1 or budget < 1 or initial < 0:
        raise LabelloopError("--batch-size and --budget must be ≥ 1 and --initial ≥ 0")
    if 0 < budget < initial:
        raise LabelloopError(f"--budget {budget} is smaller than --initial {initial}")


def _check_plot(plot: Path | None) -> Path | None:
    """``--plot`` checked as an output whose image type matplotlib can write, before hours of simulation."""
    if plot is None:
        return None
    plot = check_output(plot, "--plot")
    from matplotlib.backend_bases import FigureCanvasBase

    if plot.suffix.lstrip(".").lower() not in FigureCanvasBase.get_supported_filetypes():
        raise LabelloopError(f"--plot {plot}: unsupported image type {plot.suffix!r}; use .png, .svg or .pdf")
    return plot


def _data_paths(console: Console, train: Path | None, test: Path | None) -> tuple[Path, Path]:
    """``--train`` and ``--test``, or the bundled demo tickets when neither is given."""
    if (train is None) != (test is None):
        raise LabelloopError("give both --train and --test, or neither (to use the bundled demo data)")
    if train is None or test is None:
        train, test = demo_paths()
        console.print(f"No data given: using the bundled demo tickets ({train.parent}).")
    return train, test


def _read_pools(
    console: Console,
    train: Path,
    test: Path,
    text_column: str,
    label_column: str,
    id_column: str | None,
    *,
    skip_empty: bool,
    multi_label: bool,
) -> tuple[Pool, Pool]:
    """The labeled pool and the held-out set, summarised in one line."""
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
    repeated = (
        f" in {pool.n_rows} rows (identical texts are asked once; a label covers every copy)"
        if pool.n_rows != len(pool)
        else ""
    )
    kinds = "label sets" if multi_label else "classes"
    console.print(f"Pool {len(pool)} texts{repeated}, test {len(held)}, {len(pool.label_set)} {kinds}.")
    return pool, held


def _features(
    console: Console,
    train: Path,
    test: Path,
    pool: Pool,
    held: Pool,
    smoothing: NeighbourSmoothing,
    embedding_column: str | None,
    model: Path | None,
    cache_dir: Path | None,
) -> tuple[Featurized, str]:
    """Both sets' features and the name of what made the vectors: a Parquet column, or the encoder."""
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
        return f, f.encoder_identity
    encoder = Encoder(model)
    f = featurize(
        pool.texts, held.texts, encoder=encoder, cache_dir=cache_dir, smoothing=smoothing, progress=True
    )
    return f, encoder.name


def _run_strategies(
    console: Console,
    pool: Pool,
    held: Pool,
    f: Featurized,
    strategies: list[str],
    *,
    initial_strategy: str,
    model_name: str,
    ceiling_max: int,
    initial: int,
    batch_size: int,
    budget: int,
    seed: int,
) -> list[SimulationResult]:
    """One simulation per strategy against one full-pool ceiling, with a progress bar per strategy."""
    classes = pool.label_set
    X_pool, X_test = f.pool, f.others[0]
    features_at = features_by_labels(f)
    y_pool, y_test = pool.label_array(classes), held.label_array(classes)
    P, T = features_at(min(len(pool), ceiling_max))  # the ceiling's head: every label, or its sample
    ceiling = full_pool(P, y_pool, T, y_test, len(classes), max_rows=ceiling_max, seed=seed)
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
                    features=str(f.policy or f.smoothing),
                    ceiling=ceiling,
                    copies=pool.copies,
                    progress=per_round(bar, task, name),
                    features_at=features_at,
                )
            )
    return results


def _write_results(console: Console, results: list[SimulationResult], out: Path, plot: Path | None) -> None:
    """The results JSON, the two tables on stdout, and the learning-curve figure when asked."""
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
    f: Featurized,
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
        name: simulate_multilabel(
            f.pool,
            Y,
            f.others[0],
            Y_test,
            strategy=name,
            features_at=features_by_labels(f),
            **plan,  # type: ignore[arg-type]
        )
        for name in track(strategies, console)
    }
    result = {
        "mode": "multi-label",
        "labels": labels,
        "seed": plan["seed"],
        "n_pool": len(f.pool),
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
