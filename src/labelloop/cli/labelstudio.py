"""``labelloop project | push | pull``: the Label Studio loop from the shell.

Thin over :mod:`labelloop.labelstudio`. The server comes from ``LABEL_STUDIO_URL`` (or
``--url``) and the key from ``LABEL_STUDIO_API_KEY`` only: a key on the command line would
land in the shell history.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.progress import TextColumn as ProgressText

from ..campaign import push_picks
from ..errors import DataError, LabelloopError
from ..features import DEFAULT_SMOOTHING
from ..featurize import featurize
from ..labels import LabelSet
from ..labelstudio import ID_FIELD, ProjectInfo, PullCursor, PushItem, resolve
from ..labelstudio.locks import output_lock
from ..learner import ActiveLearner, Pick
from ..outputs import check_output
from ..review import prefill
from ..strategies import DEFAULT_STRATEGY, check_strategy
from . import app

if TYPE_CHECKING:
    from ..data import Pool
    from ..labelstudio import Connector
from ._common import (
    CacheDir,
    IdColumn,
    LabelColumn,
    ModelPath,
    Neighbours,
    SkipEmpty,
    StrategyOpt,
    TextColumn,
    known_labels,
    load_data,
)
from .pullfile import append_records, read_records, read_scan_mark, write_scan_mark

ProjectOpt = Annotated[str, typer.Option("--project", help="Label Studio project id, or title.")]
UrlOpt = Annotated[
    Optional[str],
    typer.Option(
        "--url",
        help="Label Studio URL (default: $LABEL_STUDIO_URL); the key comes from $LABEL_STUDIO_API_KEY.",
    ),
]
LabelsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--labels", help="Comma-separated label set (default: the project's choices, else the data's labels)."
    ),
]


def _connector(url: str | None) -> Connector:
    """The client, imported on use: ``simulate`` and the rest of the core run without the SDK installed."""
    from ..labelstudio import Connector

    return Connector(url)


def _labels(arg: str | None) -> list[str] | None:
    return None if arg is None else [s.strip() for s in arg.split(",") if s.strip()]


def _bar(console: Console) -> Progress:
    return Progress(
        ProgressText("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    )


@app.command("project")
def project_cmd(project: ProjectOpt, labels: LabelsOpt = None, url: UrlOpt = None) -> None:
    """Create the project (single-choice text classification) or check an existing one's label set."""
    # Multi-label projects are made by `sync` from a config with multi_label = true.
    info = _connector(url).ensure_project(project, _labels(labels), multiple=False)
    Console(stderr=True, soft_wrap=True).print(
        f"{'Created' if info.created else 'Found'} project {info.id} {info.title!r} with "
        f"{len(info.labels)} labels: {', '.join(info.labels)}"
    )
    typer.echo(info.id)


LabelsFileOpt = Annotated[
    Optional[Path],
    typer.Option(help="Labels pulled before (`labelloop pull --out`); they count as known labels."),
]
ModelVersionOpt = Annotated[
    Optional[str],
    typer.Option(help="Model version of the predictions (default: derived from the training labels)."),
]
ImportBatchOpt = Annotated[
    int,
    typer.Option(
        "--import-batch-size",
        help="Tasks per import request (network batching; not the --n texts chosen).",
    ),
]
PrefillOpt = Annotated[
    Optional[float],
    typer.Option(
        min=0.0,
        max=1.0,
        help="Pre-select the model's guess for annotators at or above this confidence (default: "
        "never; a fixed threshold does not carry across label sets, see "
        "benchmarks/results/prefill.md).",
    ),
]
PredictionClustersOpt = Annotated[
    bool,
    typer.Option(
        "--prediction-clusters",
        metavar="",
        help="Also write the cluster into each prediction's `cluster` field: one request per text (slow); "
        "it is always in the task's meta.",
    ),
]


PushEmbeddingColumnOpt = Annotated[
    Optional[str],
    typer.Option(
        help="Take each text's vector from this Parquet column of --data (a list of floats per row) instead "
        "of running the encoder.",
    ),
]


@app.command()
def push(
    data: Annotated[Path, typer.Option(help="Pool of texts (CSV, JSONL or Parquet); labels where known.")],
    project: ProjectOpt,
    text_column: TextColumn = "text",
    label_column: LabelColumn = "label",
    id_column: IdColumn = None,
    labels: LabelsOpt = None,
    labels_file: LabelsFileOpt = None,
    n: Annotated[int, typer.Option("--n", help="Texts to send.")] = 100,
    strategy: StrategyOpt = DEFAULT_STRATEGY,
    model_version: ModelVersionOpt = None,
    seed: Annotated[int, typer.Option(help="Random seed (k-means, ties).")] = 0,
    import_batch_size: ImportBatchOpt = 250,
    prefill_confidence: PrefillOpt = None,
    prediction_clusters: PredictionClustersOpt = False,
    model: ModelPath = None,
    embedding_column: PushEmbeddingColumnOpt = None,
    cache_dir: CacheDir = None,
    neighbours: Neighbours = DEFAULT_SMOOTHING.k,
    skip_empty: SkipEmpty = False,
    url: UrlOpt = None,
) -> None:
    """Train on the known labels, pick the N texts worth labeling, send them with the model's guess.

    Texts already in the project are not sent again, except that a rerun with the same
    labels (same model version) re-selects the same texts: a push cut short by a crash is
    completed by running it again, never duplicated. With fewer than two labeled classes
    it cold-starts (k-means coverage, no predictions).
    """
    console = Console(stderr=True, soft_wrap=True)
    if n < 1 or import_batch_size < 1:
        raise LabelloopError("--n and --import-batch-size must be ≥ 1")
    if embedding_column is not None and model is not None:
        raise LabelloopError(
            "give --model or --embedding-column, not both: the vectors come from one of them"
        )
    pool = load_data(console, data, text_column, label_column, id_column, skip_empty=skip_empty)
    known = known_labels(pool, labels_file, console)
    ls = _connector(url)
    info = _project_for(ls, project, labels, known, data)
    if info.config.multiple:
        raise LabelloopError(
            f'project {info.id} {info.title!r} is multi-label (choice="multiple"); `labelloop push` is '
            f"single-label only: run the campaign with multi_label = true and `labelloop sync`"
        )
    classes = _project_labels(console, info, pool, known)
    vectors = (data, embedding_column) if embedding_column is not None else None
    learner = _learner(pool, classes, strategy, seed, model, cache_dir, neighbours, len(known), vectors)
    head = learner.fit(known)
    version = model_version or learner.version(known, f"push,{seed}" + ("" if head else ",cold"))
    existing = ls.existing(info.id)
    picks = push_picks(learner, head, known, {i: t.pushed_as for i, t in existing.items()}, n, version)
    if not picks:
        console.print("Nothing to send: every unlabeled text is already in the project.")
        return
    console.print(
        f"{f'Model {version}' if head else 'Cold start'}: sending {len(picks)} texts "
        f"({strategy if head else 'k-means coverage'})."
    )
    items = _push_items(picks, prefill_confidence)
    _send(console, ls, info.id, items, version, batch_size=import_batch_size, clusters=prediction_clusters)


def _project_labels(console: Console, info: ProjectInfo, pool: Pool, known: dict[str, str]) -> LabelSet:
    """The project's label set, refused when a known label is outside it; says what ``push`` starts from."""
    classes = LabelSet(info.labels)
    outside = classes.unknown(known.values())
    if outside:
        raise DataError(f"labels not in project {info.id}'s label set {list(classes)}: {outside[:10]}")
    console.print(
        f"{'Created' if info.created else 'Using'} project {info.id} {info.title!r} "
        f"({len(classes)} labels); {len(known)} of {len(pool)} texts labeled"
        + (
            f" ({pool.rows_covered(set(known))} of {pool.n_rows} data rows: identical texts are one task)."
            if pool.n_rows != len(pool)
            else "."
        )
    )
    return classes


def _push_items(picks: list[Pick], prefill_confidence: float | None) -> list[PushItem]:
    """The picks as tasks to send, the model's guess pre-selected at or above ``prefill_confidence``."""
    threshold = 1.01 if prefill_confidence is None else prefill_confidence  # > 1: never pre-select
    return [
        PushItem(
            p.id,
            p.text,
            p.predicted,
            p.confidence or 0.0,
            p.cluster,
            prefill=prefill(p.confidence, threshold),
        )
        for p in picks
    ]


def _send(
    console: Console,
    ls: Connector,
    project: int,
    items: list[PushItem],
    version: str,
    *,
    batch_size: int,
    clusters: bool,
) -> None:
    """Import the tasks with a progress bar, then say what was created and what was there already."""
    with _bar(console) as bar:
        task = bar.add_task("pushing", total=len(items))
        report = ls.push(
            project,
            items,
            version,
            batch_size=batch_size,
            prediction_clusters=clusters,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    n_added = len(report.predictions_added)
    added = f" ({n_added} given this model's prediction)" if n_added else ""
    console.print(
        f"Created {len(report.created)} task(s); {len(report.existing)} already there{added}. "
        f"Project: {ls.display_url}/projects/{project}"
    )


def _learner(
    pool: Pool,
    classes: LabelSet,
    strategy: str,
    seed: int,
    model: Path | None,
    cache_dir: Path | None,
    neighbours: int,
    labeled: int,
    vectors: tuple[Path, str] | None = None,
) -> ActiveLearner:
    """The pool's features (through the cache, or from ``vectors`` = (file, column)) for a head trained on
    ``labeled`` labels, and the recipe ``push`` trains and selects with."""
    smoothing = replace(DEFAULT_SMOOTHING, k=neighbours).at(labeled, len(pool))
    if vectors is None:
        f = featurize(pool.texts, model=model, cache_dir=cache_dir, smoothing=smoothing, progress=True)
    else:
        from ..column_vectors import read_vectors
        from ..featurize import featurize_vectors

        V, identity = read_vectors(vectors[0], vectors[1], pool.file_rows)
        f = featurize_vectors(V, identity=identity, smoothing=smoothing, progress=True)
    return ActiveLearner(
        pool.ids,
        pool.texts,
        f.pool,
        classes,
        strategy=check_strategy(strategy),
        seed=seed,
        encoder_identity=f.encoder_identity,
        features=str(f.smoothing),
    )


def _project_for(
    ls: Connector, project: str, labels: str | None, known: dict[str, str], data: Path
) -> ProjectInfo:
    """The project, created with ``--labels`` (or the data's labels) when it does not exist yet."""
    wanted = _labels(labels)
    if wanted is None and ls.find_project(project) is None:
        wanted = sorted(set(known.values())) or None
        if wanted is None:
            raise LabelloopError(f"no project {project!r} yet and {data} has no labels; pass --labels")
    return ls.ensure_project(project, wanted)


@app.command()
def pull(
    project: ProjectOpt,
    out: Annotated[Path, typer.Option(help="JSONL of annotation records, appended to; also the cursor.")],
    url: UrlOpt = None,
) -> None:
    """Append the annotations that changed since the last pull to OUT, then summarise.

    Each record is one created, updated or deleted annotation, with our id, the label (none
    if skipped), annotator and time; OUT is its own cursor, so rerunning pulls nothing new.
    OUT.scan.json beside it only lets the next pull skip unchanged tasks. A choice outside
    the label set fails the pull without writing anything.
    """
    console = Console(stderr=True, soft_wrap=True)
    out = check_output(out)  # a folder, a link loop or a read-only place: one line, before the network
    ls = _connector(url)
    info = ls.project(project)
    if info.config.multiple:  # records hold each answer's set as one label joined by the delimiter
        console.print(
            f"warning: project {info.id} is multi-label: each record's label is its set, joined by "
            f"{ls.label_delimiter!r}"
        )
    # One puller per file at a time: the file is the cursor, so two at once would append every record twice.
    with output_lock(out):
        before = read_records(out, repair=True)  # verifies every line before cutting a torn one
        other = {r.project for r in before} - {info.id}
        if other:
            raise DataError(
                f"{out} holds records of project(s) {sorted(other)}, not {info.id}; use a new --out"
            )
        with _bar(console) as bar:
            task = bar.add_task("pulling", total=None)
            result = ls.pull(
                info.id,
                PullCursor.from_records(before, read_scan_mark(out, info.id)),
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        append_records(out, result.records)
        write_scan_mark(out, info.id, result.cursor.scanned_at)
    events = Counter(r.event for r in result.records)
    resolved = resolve(before + result.records)
    labeled = sum(r.label is not None for r in resolved.values())
    disagree = sorted(k for k, r in resolved.items() if r.disagreement)
    skipped = sum(1 for r in resolved.values() if r.skipped and not r.votes)
    console.print(
        f"{len(result.records)} new record(s) ({events['created']} created, {events['updated']} "
        f"updated, {events['deleted']} deleted); fetched {result.tasks_fetched} of "
        f"{result.tasks_scanned} tasks."
    )
    which = f" ({', '.join(disagree[:5])}{', …' if len(disagree) > 5 else ''})" if disagree else ""
    console.print(
        f"{out}: {labeled} text(s) labeled, {skipped} only skipped, {len(disagree)} with disagreement{which}."
    )
    if result.foreign_tasks:
        console.print(
            f"[yellow]{result.foreign_tasks} annotated task(s) have no {ID_FIELD!r}: made outside "
            f"labelloop, ignored[/]"
        )
