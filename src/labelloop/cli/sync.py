"""``labelloop init | sync | status | report | predict``: the scheduled campaign from the shell.

Exit codes (beside the common ones): 4 means another sync holds the lock, so this run did
nothing; cron may simply try again at the next tick.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ..config import Config, load_config
from ..errors import DataError, LabelloopError
from . import app

if TYPE_CHECKING:
    from ..data import DataPeek, Pool
    from ..features import NeighbourSmoothing
    from ..featurize import Featurized

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The campaign's labelloop.toml.")]


InitLabelsOpt = Annotated[
    Optional[str],
    typer.Option(
        help="Comma-separated label set (default: the data's labels when it has a label column, else "
        "billing,bug,other)."
    ),
]


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path("labelloop.toml"),
    data: Annotated[str, typer.Option(help="The texts to label (CSV, JSONL or Parquet).")] = "texts.csv",
    labels: InitLabelsOpt = None,
    project: Annotated[str, typer.Option(help="Label Studio project title or id.")] = "labelloop",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.", metavar="")] = False,
    multi_label: Annotated[
        bool,
        typer.Option(
            "--multi-label",
            help='Each text may carry several labels (Label Studio choice="multiple"); the data\'s label '
            'cells are sets written "a|b".',
            metavar="",
        ),
    ] = False,
) -> None:
    """Write a commented labelloop.toml to start a campaign from.

    When the data file exists, its id, text and label columns are detected and written. The
    file is validated before it is written, and written atomically: a refused init leaves nothing.
    """
    from ..config import example_config, parse_config
    from ..outputs import atomic_write

    console = Console(stderr=True, soft_wrap=True)
    path = _init_path(path, force)
    found = _inspect(console, path, data)
    names = [s.strip() for s in labels.split(",") if s.strip()] if labels is not None else []
    if labels is None:
        found_labels = found.labels if found is not None else []
        if multi_label:  # the data's cells are sets: "bug|refund" is two labels
            from ..labels import split_labels

            found_labels = sorted({lab for cell in found_labels for lab in split_labels(cell)})
        names = found_labels if 2 <= len(found_labels) <= 100 else ["billing", "bug", "other"]
    columns = found.columns if found is not None else {}
    guidelines = path.parent / "guidelines.md"
    text = example_config(
        labels=names,
        data=data,
        project=project,
        text_column=columns.get("text", "text"),
        id_column=columns.get("id"),
        label_column=columns.get("label"),
        guidelines=guidelines.name,
        multi_label=multi_label,
    )
    config = parse_config(text, path)  # validated before anything is written
    _warn_mismatches(console, path, data, found, config, given_labels=labels is not None)
    if not guidelines.exists():  # a starter for the team to fill in; never overwritten
        from ..guidelines import starter_guidelines

        with atomic_write(guidelines, option="guidelines") as fh:
            examples = found.examples if found is not None else None
            fh.write(starter_guidelines(config.labels, examples, multi_label=config.multi_label))
    with atomic_write(path, option="PATH") as fh:
        fh.write(text)
    detected = ", ".join(f"{role} column {name!r}" for role, name in columns.items())
    console.print(
        f"Wrote {path}{f' (detected {detected})' if detected else ''}. Set LABEL_STUDIO_URL and "
        f"LABEL_STUDIO_API_KEY, then run `labelloop sync --config {path}` (e.g. every 5 minutes "
        f"from cron).",
        highlight=False,
    )


def _init_path(path: Path, force: bool) -> Path:
    """Where ``init`` writes, refused before anything is read: a missing folder, or a file without --force."""
    from ..outputs import check_output

    path = path.expanduser()
    if not path.parent.is_dir():
        raise LabelloopError(f"{path}: folder {path.parent} does not exist; create it first")
    if path.exists() and not path.is_dir() and not force:
        raise LabelloopError(f"{path} exists; pass --force to overwrite it")
    check_output(path, "PATH")
    return path


def _inspect(console: Console, path: Path, data: str) -> DataPeek | None:
    """A look at ``--data`` (relative to the config's folder) for its columns and labels; warns when it is
    missing or unreadable, since data may come later but a typo should not wait for the first sync."""
    from ..data import inspect_data

    data_path = Path(data).expanduser()
    found = inspect_data(data_path if data_path.is_absolute() else path.parent / data_path) if data else None
    if found is not None and found.problem:
        console.print(f"[yellow]warning:[/] {found.problem}", highlight=False)
    elif data and found is None:
        console.print(f"[yellow]warning:[/] --data {data} does not exist yet; `labelloop sync` needs it")
    return found


def _warn_mismatches(
    console: Console, path: Path, data: str, found: DataPeek | None, config: Config, *, given_labels: bool
) -> None:
    """Warn where the config and the data already disagree: a budget above the texts, labels not in --labels."""
    if found is not None and found.rows is not None and config.loop.budget > found.rows:
        console.print(
            f"[yellow]warning:[/] loop.budget {config.loop.budget} exceeds the {found.rows} text(s) in "
            f"{data}; lower it in {path}",
            highlight=False,
        )
    if found is not None and found.labels and given_labels:
        from ..labels import split_labels

        seen = (
            {lab for cell in found.labels for lab in split_labels(cell, config.label_delimiter)}
            if config.multi_label
            else set(found.labels)
        )
        extra = sorted(seen - set(config.labels))
        if extra:
            console.print(
                f"[yellow]warning:[/] {data} has label(s) not in --labels: {', '.join(extra[:10])}"
                f"{' …' if len(extra) > 10 else ''}",
                highlight=False,
            )


@app.command("sync")
def sync_cmd(
    config: ConfigOpt = Path("labelloop.toml"),
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress bars (for cron).", metavar="")
    ] = False,
) -> None:
    """One safe step: pull labels, retrain if enough are new, top the queue up, record the round.

    Safe to kill at any moment and to run from cron: a second sync started while one runs
    exits with code 4 and does nothing; the next run finishes an interrupted one without
    duplicating a task or losing a label.
    """
    from ..sync import sync

    cfg = load_config(config)
    report = sync(cfg, progress=not quiet)
    console = Console(stderr=True, soft_wrap=True)
    console.print(f"run {report.run}: {report.message}")
    for warning in report.warnings:
        console.print(f"[yellow]warning:[/] {warning}", highlight=False)
    for advice in report.advice:
        if advice.fired:
            console.print(f"[yellow]stop advice: {advice.criterion}: {advice.reason}[/]")


@app.command()
def status(config: ConfigOpt = Path("labelloop.toml")) -> None:
    """Where the campaign stands and what to do next, from the state file (offline, instant).

    Queue, labels, skips and ties; agreement between annotators; second opinions; the model's
    audit accuracy; stop advice; then the next steps.
    """
    from ..status import conflicts_note, coverage, labels_per_class_note, next_steps, prefill_note, summary

    cfg = load_config(config)
    s = summary(cfg)
    console = Console(soft_wrap=True)
    empty = f" ({s['empty']} empty submission(s))" if s["empty"] else ""
    console.print(f"[bold]{cfg.state.path}[/]: {s['runs']} sync run(s), last {s['last_run'] or 'never'}")
    console.print(
        f"sent {s['sent']} of budget {cfg.loop.budget}; queue after the last sync: {s['queue']} "
        f"(target {cfg.loop.queue_target}); {s['labeled']} text(s) labeled, {s['skipped']} text(s) skipped"
        f"{empty}, "
        f"{s['disagreements']} with disagreement, {s['ties']} tied"
    )
    covered = coverage(s)
    if covered:
        console.print(covered, highlight=False)
    note = conflicts_note(s)
    if note:
        console.print(f"[yellow]warning:[/] {note}", highlight=False)
    a = s["audit"]
    console.print(f"audit sample: {a['labeled']} labeled of {a['sent']} sent ({a['size']} reserved)")
    console.print(prefill_note(s, cfg), highlight=False)
    console.print(labels_per_class_note(s), highlight=False)
    _print_agreement(console, s, cfg.multi_label)
    r = s["round"]
    console.print(
        f"round {r['round']}: model {r['model_version']} trained on {r['n_labeled']} labels "
        f"({r['created_at']})"
    )
    for name in ("audit", "test"):
        m = s["metrics"].get(name)
        if m and m.get("n") and "micro_f1" in m:  # multi-label: the predicted sets against the given ones
            ci = m.get("micro_f1_ci")  # rounds trained before the interval was stored have none
            console.print(
                f"{name}: micro-F1 {m['micro_f1']:.3f}"
                + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")
                + f", macro-F1 {m['macro_f1']:.3f}, subset accuracy {m['subset_accuracy']:.3f} on {m['n']} texts"
            )
        elif m and m.get("n"):
            console.print(
                f"{name}: accuracy {m['accuracy']:.3f} [{m['accuracy_ci'][0]:.3f}, "
                f"{m['accuracy_ci'][1]:.3f}], macro-F1 {m['macro_f1']:.3f} "
                f"[{m['macro_f1_ci'][0]:.3f}, {m['macro_f1_ci'][1]:.3f}] on {m['n']} texts"
            )
    if s["annotators"]:
        table = Table("annotator", "labels", "skips", title="annotators")
        for name, (n_labels, n_skips) in sorted(s["annotators"].items()):
            table.add_row(name, str(n_labels), str(n_skips))
        console.print(table)
    for advice in s["advice"]:
        mark = "[bold yellow]STOP[/]" if advice.fired else "go"
        console.print(f"{mark} {advice.criterion}: {advice.reason}")
    console.print("[bold]next:[/]")
    for step in next_steps(s, cfg):
        console.print(f"  • {step}", highlight=False)


def _print_agreement(console: Console, s: dict, multi_label: bool) -> None:
    ag, e = s["agreement"], s["escalations"]
    alpha = "n/a" if ag.alpha is None else f"{ag.alpha:.3f}"
    kappa = "n/a" if ag.mean_kappa is None else f"{ag.mean_kappa:.3f}"
    console.print(
        f"agreement on {ag.n_multi} text(s) labeled by several people"
        f"{' (yes/no per text and label)' if multi_label else ''}: Krippendorff's alpha {alpha}, "
        f"mean Cohen's kappa {kappa}; second "
        f"opinions: {e['ties_settled']} tie(s) settled, {e['ties_open']} open; {e['suspects_changed']} "
        f"suspect label(s) changed, {e['suspects_confirmed']} confirmed, {e['suspects_open']} open"
    )


@app.command()
def report(
    config: ConfigOpt = Path("labelloop.toml"),
    out: Annotated[
        Path, typer.Option(help="Report file: .md (Markdown) or .html; plots go beside it.")
    ] = Path("labelloop-report.md"),
) -> None:
    """Write a report: learning curve over rounds, per-class F1, most confused pairs, labels per class,
    disagreements, agreement, second opinions, throughput."""
    from ..outputs import check_output
    from ..report import write_report

    cfg = load_config(config)
    check_output(out, "--out")  # write_report checks again; here it fails before the state is even read
    path = write_report(cfg, out)
    Console(stderr=True, soft_wrap=True).print(f"Wrote {path}")


PredictIdColumn = Annotated[
    str | None,
    typer.Option(
        help="Column with ids (default: the campaign's data.id_column when the input has it, else derived from "
        "the text)."
    ),
]


@app.command()
def predict(
    input: Annotated[Path, typer.Option("--input", help="Texts to classify (CSV, JSONL or Parquet).")],
    out: Annotated[Path, typer.Option(help="CSV to write: id, label, confidence.")],
    config: ConfigOpt = Path("labelloop.toml"),
    text_column: Annotated[str, typer.Option(help="Column holding the texts.")] = "text",
    id_column: PredictIdColumn = None,
) -> None:
    """Apply the campaign's current model to a file of texts, for use downstream."""
    from ..campaign import check_features, latest_head, load_campaign
    from ..data import columns_of, load_pool
    from ..outputs import atomic_write, check_output
    from ..store import Store

    cfg = load_config(config)
    out = check_output(out, "--out")  # before the embedding work, not after
    with Store.open_existing(cfg.state.path) as store:
        check_features(store, cfg)  # its models score features made the way they were trained on
        last, head = latest_head(store)
    if head is None:
        raise LabelloopError(
            f"{cfg.state.path}: no model yet (it needs labels of two classes); run "
            f"`labelloop sync` after some labeling"
        )
    if id_column is None and cfg.data.id_column and cfg.data.id_column in columns_of(input):
        id_column = cfg.data.id_column
    pool = load_pool(input, text_column, None, id_column, unique_ids=False)
    # The model was trained on features smoothed over the campaign's pool: new texts take their neighbours
    # there. Only the pool's raw vectors are needed (from the cache), not the pool's own features.
    campaign = load_campaign(cfg, embed_texts=False)
    smoothing = cfg.model.smoothing.at(
        len(last.train_labels), len(campaign.pool)
    )  # the model's neighbour weight
    f = _input_features(cfg, campaign.pool, input, pool, smoothing)
    probs = head.predict_proba(f.others[0])
    with atomic_write(out, newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "label", "confidence", "model_version"])
        for i, p in zip(pool.ids, probs, strict=True):
            if cfg.multi_label:  # the predicted set, and its least likely member's probability
                from ..multilabel import set_guess

                label, conf = set_guess(p, cfg.labels, cfg.label_delimiter)
                w.writerow([i, label, f"{conf:.4f}", last.model_version])
                continue
            w.writerow([i, cfg.labels[int(np.argmax(p))], f"{float(np.max(p)):.4f}", last.model_version])
    Console(stderr=True, soft_wrap=True).print(
        f"Wrote {len(pool)} predictions of model {last.model_version} to {out}"
    )


def _input_features(
    cfg: Config, campaign_pool: Pool, input: Path, pool: Pool, smoothing: NeighbourSmoothing
) -> Featurized:
    """The input's features, smoothed over the campaign pool's raw vectors: from the campaign's embedding
    column when it has one (the input file needs the column too), else from the encoder through the cache."""
    from ..featurize import featurize, featurize_vectors

    if cfg.data.embedding_column is None:
        from ..campaign import config_encoder

        return featurize(
            campaign_pool.texts,
            pool.texts,
            encoder=config_encoder(cfg),
            cache_dir=cfg.model.cache_dir,
            smoothing=smoothing,
            smooth_pool=False,
            progress=True,
        )
    from ..column_vectors import read_vectors

    column = cfg.data.embedding_column
    V, identity = read_vectors(cfg.data.path, column, campaign_pool.file_rows)
    Vin, _ = read_vectors(input, column, pool.file_rows)
    if Vin.shape[1] != V.shape[1]:
        raise DataError(
            f"{input}: vectors in column {column!r} have {Vin.shape[1]} numbers, the campaign's {V.shape[1]}"
        )
    return featurize_vectors(V, Vin, identity=identity, smoothing=smoothing, smooth_pool=False)
