"""What a campaign has done, from its state file: ``labelloop report`` (``status`` is :mod:`labelloop.status`).

:func:`write_report` embeds the audit or test texts (through the cache) to show where the
current model fails. The report is built once as a list of blocks and rendered as Markdown or
as a self-contained HTML page, so the two never drift apart and annotators' texts are escaped
for each format. Figures come from :mod:`labelloop.plots`, like the notebook's.

(Over 400 lines formatted: the block types, their two renderings and the model's sections; the people's
sections are in :mod:`labelloop.report_people`.)
"""

from __future__ import annotations

import html
import re
import warnings
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
from matplotlib.figure import Figure

from . import plots
from .campaign import Campaign, check_features, load_campaign
from .config import Config
from .copies import LabelConflictWarning
from .data import load_pool
from .errors import LabelloopError
from .head import Classifier, Head
from .labels import split_labels
from .labelstudio.annotations import AnnotationRecord, Resolution, live_annotations
from .multilabel import MultiLabelHead
from .outputs import atomic_write, check_output, check_output_dir, staging_dir
from .quality import agreement_report, label_set_agreement_report
from .report_people import agreement_section, guidelines_section, second_opinions_section
from .status import agreement_votes, coverage, prefill_note, summary, who
from .store import RoundRow, RunRow, Store

__all__ = ["summary", "write_report"]

MIN_EVAL = 10  # below this many labels, per-class F1 is noise
TEXT_CHARS = 80  # of each disagreed text shown
TOP_PAIRS = 10


# -- the ledger -------------------------------------------------------------------------------------


def _labels_per_day(records: Sequence[AnnotationRecord]) -> dict[str, Counter[str]]:
    """Live labels (skips excluded) per annotator per day they were made: ``{who: {"YYYY-MM-DD": n}}``."""
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    for rec in live_annotations(records):
        if not rec.skipped and rec.label is not None:
            per_day[who(rec)][(rec.created_at or "unknown")[:10]] += 1
    return dict(per_day)


# -- blocks, rendered as Markdown or HTML ------------------------------------------------------------


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Para:
    text: str  # ours, not the annotators': may use **bold**


@dataclass(frozen=True)
class Bullets:
    items: list[str]  # like Para


@dataclass(frozen=True)
class Table:
    header: list[str]
    rows: list[list[Any]]  # cells are escaped: they may hold anyone's text


@dataclass(frozen=True)
class Image:
    alt: str
    src: str  # relative to the report


Block = Heading | Para | Bullets | Table | Image

_MD_SPECIAL = re.compile(r"([\\`*_<|]|\](?=\())")  # what could format, break the table or make a link


def _md_cell(x: Any) -> str:
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(x).split()))


def to_markdown(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            lines.append("#" * b.level + " " + b.text)
        elif isinstance(b, Para):
            lines.append(b.text)
        elif isinstance(b, Bullets):
            lines += [f"- {item}" for item in b.items]
        elif isinstance(b, Table):
            lines += [
                "| " + " | ".join(map(_md_cell, b.header)) + " |",
                "|" + "---|" * len(b.header),
                *("| " + " | ".join(map(_md_cell, row)) + " |" for row in b.rows),
            ]
        else:
            lines.append(f"![{b.alt}]({quote(b.src)})")
        lines.append("")
    return "\n".join(lines)


def _inline(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", html.escape(text))


def to_html(blocks: Sequence[Block], title: str) -> str:
    body: list[str] = []
    for b in blocks:
        if isinstance(b, Heading):
            body.append(f"<h{b.level}>{html.escape(b.text)}</h{b.level}>")
        elif isinstance(b, Para):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in b.items) + "</ul>")
        elif isinstance(b, Table):
            cells = ["<tr>" + "".join(f"<th>{html.escape(str(c))}</th>" for c in b.header) + "</tr>"]
            cells += [
                "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in row) + "</tr>" for row in b.rows
            ]
            body.append("<table>" + "\n".join(cells) + "</table>")
        else:
            body.append(f'<p><img alt="{html.escape(b.alt)}" src="{html.escape(quote(b.src))}"></p>')
    style = (
        "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
        "table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem}"
        "img{max-width:100%}"
    )
    return (
        f"<!doctype html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


@dataclass(frozen=True)
class _FigureDir:
    """Where figures go: written into ``stage`` during the report, moved to the folder ``name`` at its end."""

    name: str
    stage: Path


def _figure(fig: Figure, figdir: _FigureDir, name: str, alt: str) -> Image:
    """Save ``fig`` as ``name.png`` in the staging folder (moved beside the report only if the report lands)."""
    plots.save(fig, figdir.stage / f"{name}.png")
    return Image(alt, f"{figdir.name}/{name}.png")


def _fmt(m: Mapping[str, Any] | None, key: str = "accuracy") -> str:
    """``0.812 [0.741, 0.866]``: an estimate with its 95 % interval, or – when there is none."""
    if not m or m.get(key) is None:
        return "–"
    ci = m.get(f"{key}_ci")
    return f"{m[key]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")


def _snippet(text: str | None) -> str:
    if text is None:
        return "–"
    flat = " ".join(text.split())
    return flat[:TEXT_CHARS] + ("…" if len(flat) > TEXT_CHARS else "")


# -- the texts ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Data:
    campaign: Campaign | None  # embedded; only when there is a model to evaluate
    texts: dict[str, str]
    problem: str | None = None


def _load_data(config: Config, embed: bool) -> _Data:
    """The texts by id (and, with ``embed``, the embedded campaign). A data file that cannot be read
    any more costs the sections that need it a sentence, not the whole report."""
    try:
        if embed:
            campaign = load_campaign(config)
            return _Data(campaign, dict(zip(campaign.pool.ids, campaign.pool.texts, strict=True)))
        d = config.data
        with (
            warnings.catch_warnings()
        ):  # label conflicts in the data: the summary names them (from the store)
            warnings.simplefilter("ignore", LabelConflictWarning)
            pool = load_pool(d.path, d.text_column, d.label_column, d.id_column, skip_empty=d.skip_empty)
        return _Data(None, dict(zip(pool.ids, pool.texts, strict=True)))
    except LabelloopError as exc:
        return _Data(None, {}, str(exc))


def _eval_set(
    campaign: Campaign, res: Mapping[str, Resolution], audit_ids: set[str]
) -> tuple[np.ndarray, np.ndarray, str]:
    """Labels, embeddings and a name for what the model is judged on: the test file when there is one,
    else the audit sample's agreed labels (random and never trained on, so also unbiased)."""
    index = {c: k for k, c in enumerate(campaign.classes)}
    if campaign.test is not None and campaign.X_test is not None:
        y = np.array([index[lab] for lab in campaign.test.labels], dtype=np.int64)  # type: ignore[index]
        return y, campaign.X_test, f"the test file ({len(campaign.test)} texts)"
    rows = {i: r for r, i in enumerate(campaign.pool.ids)}
    ids = sorted(i for i in audit_ids if i in rows and i in res and res[i].label in index)
    y = np.array([index[res[i].label] for i in ids], dtype=np.int64)  # type: ignore[index]
    return y, campaign.X[[rows[i] for i in ids]], f"the audit sample ({len(ids)} labeled texts)"


# -- the sections ------------------------------------------------------------------------------------


def _summary_section(config: Config, s: Mapping[str, Any], last: RoundRow | None) -> list[Block]:
    m = s["metrics"]
    model = (
        f"{last.model_version} (round {last.round}, trained on {last.n_labeled} labels at {last.created_at})"
        if last
        else "none yet (it needs labels of two classes)"
    )
    quality = f"audit accuracy {_fmt(m.get('audit'))}, macro-F1 {_fmt(m.get('audit'), 'macro_f1')}"
    if m.get("test"):
        quality += f"; test accuracy {_fmt(m['test'])}, macro-F1 {_fmt(m['test'], 'macro_f1')}"
    if config.multi_label:  # the predicted label sets: micro-F1 is the headline
        quality = "; ".join(
            f"{name} micro-F1 {_fmt(m.get(name), 'micro_f1')}, macro-F1 {_fmt(m.get(name), 'macro_f1')}, "
            f"subset accuracy {_fmt(m.get(name), 'subset_accuracy')}"
            for name in ("audit", "test")
            if name == "audit" or m.get("test")
        )
    blocks: list[Block] = [
        Heading("Summary"),
        Bullets(
            [
                f"{s['runs']} sync run(s), the last finished at {s['last_run'] or 'never'}",
                f"{s['sent']} of {config.loop.budget} texts sent; {s['queue']} waiting after the last sync "
                f"(target {config.loop.queue_target})",
                f"{s['labeled']} labeled, {s['skipped']} only skipped, {s['disagreements']} with disagreement",
                *([covered] if (covered := coverage(s)) else []),
                f"current model: {model}",
                quality,
                prefill_note(s, config),
            ]
        ),
    ]
    conflicts = s["data_conflicts"]
    if conflicts["n"]:  # the data's texts go in a table: cells are escaped, bullets are not
        blocks += [
            Para(
                f"{conflicts['n']} text(s) appear in the data with different labels; the majority label is "
                f"kept{' (the first ones):' if conflicts['n'] > len(conflicts['shown']) else ':'}"
            ),
            Table(["text (labels in the data; kept)"], [[d] for d in conflicts["shown"]]),
        ]
    if s["annotators"]:
        blocks.append(
            Table(
                ["annotator", "labels", "skips"],
                [[who, n, k] for who, (n, k) in sorted(s["annotators"].items())],
            )
        )
    blocks += [
        Para("Stop advice:"),
        Bullets(
            [
                f"**{'STOP' if a.fired else 'go'}** {a.criterion}: {a.reason}"
                + ("" if a.criterion in config.stop.on else " (advice only: not in stop.on)")
                for a in s["advice"]
            ]
        ),
    ]
    return blocks


def _curve_figure(trained: Sequence[RoundRow]) -> Figure:
    """plots.campaign_curve (audit accuracy with its Wilson band, test accuracy) plus macro-F1."""
    curve: list[dict[str, Any]] = [
        {"n_labeled": r.n_labeled, "audit": r.metrics.get("audit"), "test": r.metrics.get("test")}
        for r in trained
    ]
    fig = plots.campaign_curve(curve)
    ax = fig.axes[0]
    audit = [(c["n_labeled"], c["audit"]) for c in curve if (c["audit"] or {}).get("accuracy_ci")]
    if len({x for x, _ in audit}) == 1:  # a band needs two x values; one gets error bars instead
        ax.errorbar(
            [x for x, _ in audit],
            [a["accuracy"] for _, a in audit],
            yerr=[
                [a["accuracy"] - a["accuracy_ci"][0] for _, a in audit],
                [a["accuracy_ci"][1] - a["accuracy"] for _, a in audit],
            ],
            fmt="none",
            capsize=4,
        )
    for name, marker in (("audit", "^"), ("test", "v")):
        pts = [
            (c["n_labeled"], c[name]["macro_f1"])
            for c in curve
            if (c[name] or {}).get("macro_f1") is not None
        ]
        if pts:  # thin and behind: on small audits macro-F1 often equals accuracy and must not hide it
            ax.plot(
                *zip(*pts, strict=True),
                marker=marker,
                markersize=2,
                linestyle=":",
                linewidth=1,
                alpha=0.7,
                zorder=1,
                label=f"{name} macro-F1",
            )
    for x, a in audit:  # how many audit labels each point stands on
        ax.annotate(
            f"n={a['n']}",
            (x, a["accuracy"]),
            textcoords="offset points",
            xytext=(0, 6),
            fontsize=6,
            ha="center",
        )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    ax.set_ylabel("accuracy, macro-F1")
    ax.set_title("Accuracy and macro-F1 over the campaign's rounds", fontsize=10)
    return fig


def _multilabel_curve_figure(trained: Sequence[RoundRow]) -> Figure:
    """Micro-F1 of the predicted label sets over the rounds, on the audit sample and the test file."""
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.subplots()
    for name, marker in (("audit", "o"), ("test", "s")):
        pts = [
            (r.n_labeled, r.metrics[name]["micro_f1"])
            for r in trained
            if (r.metrics.get(name) or {}).get("micro_f1") is not None
        ]
        if pts:
            ax.plot(*zip(*pts, strict=True), marker=marker, markersize=3, label=f"{name} micro-F1")
    audit = [
        (r.n_labeled, r.metrics["audit"])
        for r in trained
        if (r.metrics.get("audit") or {}).get("micro_f1_ci")
    ]
    if (
        audit
    ):  # how little a small audit knows: its bootstrap interval, and how many texts each point stands on
        xs = [x for x, _ in audit]
        lo, hi = [a["micro_f1_ci"][0] for _, a in audit], [a["micro_f1_ci"][1] for _, a in audit]
        if len(set(xs)) > 1:
            ax.fill_between(xs, lo, hi, alpha=0.2, label="audit 95 % interval")
        else:
            ax.errorbar(
                xs,
                [a["micro_f1"] for _, a in audit],
                yerr=[
                    [a["micro_f1"] - low for (_, a), low in zip(audit, lo, strict=True)],
                    [high - a["micro_f1"] for (_, a), high in zip(audit, hi, strict=True)],
                ],
                fmt="none",
                capsize=4,
            )
        for x, a in audit:
            ax.annotate(
                f"n={a['n']}",
                (x, a["micro_f1"]),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=7,
            )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("labels trained on")
    ax.set_ylabel("micro-F1")
    ax.set_title("Micro-F1 over the campaign's rounds (n = audit texts)", fontsize=10)
    return fig


def _curve_section(trained: Sequence[RoundRow], figdir: _FigureDir, multi_label: bool = False) -> list[Block]:
    blocks: list[Block] = [Heading("Learning curve")]
    if not trained:
        return blocks + [Para("No model yet: the curve starts with the first trained round.")]
    if multi_label:
        return blocks + [
            Para(
                f"One point per trained round ({len(trained)}): micro-F1 of the predicted label sets; the band "
                f"is the audit's 95 % bootstrap interval (over texts)."
            ),
            _figure(_multilabel_curve_figure(trained), figdir, "learning_curve", "learning curve"),
        ]
    return blocks + [
        Para(
            f"One point per trained round ({len(trained)}); the band is the audit accuracy's "
            f"95 % Wilson interval."
        ),
        _figure(_curve_figure(trained), figdir, "learning_curve", "learning curve"),
    ]


def _failures_section(
    last: RoundRow | None,
    head: Head | None,
    data: _Data,
    res: Mapping[str, Resolution],
    audit_ids: set[str],
    figdir: _FigureDir,
) -> list[Block]:
    """Per-class F1 and the most confused pairs of the current model."""
    blocks: list[Block] = [Heading("Where the current model fails")]
    if last is None or head is None:
        return blocks + [Para("No model yet: it needs labels of at least two classes.")]
    if data.campaign is None:
        return blocks + [Para(f"Could not load the texts to evaluate the model: {data.problem}")]
    classes = data.campaign.classes
    y, X, where = _eval_set(data.campaign.at_labels(len(last.train_labels)), res, audit_ids)
    if len(y) < MIN_EVAL:
        return blocks + [Para(f"Too few labels in {where} to break accuracy down (need {MIN_EVAL}).")]
    pred = head.predict(X)
    wrong = int((y != pred).sum())
    f1 = plots.per_class_f1(y, {last.model_version: pred}, classes, title=f"F1 per class on {where}")
    f1.axes[0].set_xlabel("F1")
    confusion = plots.confusion_top(
        y,
        pred,
        classes,
        k=min(8, len(classes)),
        title=f"Most-confused classes ({wrong} of {len(y)} texts wrong)",
    )
    blocks += [
        Para(f"Measured on {where} with model {last.model_version}: accuracy {1 - wrong / len(y):.3f}."),
        _figure(f1, figdir, "per_class_f1", "per-class F1"),
        _figure(confusion, figdir, "confusion", "most confused classes"),
    ]
    pairs = Counter((classes[t], classes[p]) for t, p in zip(y, pred, strict=True) if t != p)
    if not pairs:
        return blocks + [Para("No mistakes on these texts.")]
    return blocks + [
        Para("Most confused pairs:"),
        Table(["true", "predicted", "texts"], [[t, p, n] for (t, p), n in pairs.most_common(TOP_PAIRS)]),
    ]


def _label_set_failures_section(
    last: RoundRow | None,
    head: Classifier | None,
    data: _Data,
    res: Mapping[str, Resolution],
    audit_ids: set[str],
    delimiter: str,
) -> list[Block]:
    """Multi-label: each label's precision, recall and F1 on the test file (else the audit sample), worst
    first. Low recall: the model leaves the label out of sets where it belongs; low precision: it adds it."""
    from sklearn.metrics import precision_recall_fscore_support

    from .multilabel import label_matrix

    blocks: list[Block] = [Heading("Where the current model fails")]
    if last is None or head is None:
        return blocks + [Para("No model yet: it needs labels of at least two classes.")]
    if data.campaign is None:
        return blocks + [Para(f"Could not load the texts to evaluate the model: {data.problem}")]
    campaign = data.campaign.at_labels(len(last.train_labels))
    classes = list(campaign.classes)
    if campaign.test is not None and campaign.X_test is not None:
        given, X, where = (
            list(campaign.test.labels),
            campaign.X_test,
            f"the test file ({len(campaign.test)} texts)",
        )
    else:
        rows = campaign.index
        ids = sorted(i for i in audit_ids if i in rows and i in res and res[i].label is not None)
        given, X = [res[i].label for i in ids], campaign.X[[rows[i] for i in ids]]
        where = f"the audit sample ({len(ids)} labeled texts)"
    if len(given) < MIN_EVAL:
        return blocks + [Para(f"Too few labels in {where} to break micro-F1 down (need {MIN_EVAL}).")]
    Y = label_matrix([split_labels(str(g), delimiter) for g in given], classes).astype(bool)
    P = np.asarray(head.predict(X)).astype(bool)
    precision, recall, f1, support = precision_recall_fscore_support(Y, P, zero_division=0)
    order = sorted(
        (k for k in range(len(classes)) if support[k] or P[:, k].any()), key=lambda k: (f1[k], -support[k])
    )
    blocks.append(
        Para(
            f"Measured on {where} with model {last.model_version}, per label, worst first: low recall means the "
            f"model leaves the label out of sets it belongs to, low precision that it adds it where it does not."
        )
    )
    return blocks + [
        Table(
            ["label", "texts with it", "predicted", "precision", "recall", "F1"],
            [
                [
                    classes[k],
                    int(support[k]),
                    int(P[:, k].sum()),
                    f"{precision[k]:.2f}",
                    f"{recall[k]:.2f}",
                    f"{f1[k]:.2f}",
                ]
                for k in order
            ],
        )
    ]


def _labels_per_class_section(
    last: RoundRow | None,
    head: Classifier | None,
    data: _Data,
    res: Mapping[str, Resolution],
    delimiter: str | None,
) -> list[Block]:
    """Per class: the labels the current model learnt from, and how many texts nobody labeled yet it puts
    there. Rare intents hide in a backlog; many predicted texts on few labels is where labels (and
    guideline examples) are short, and a class with no label is one the model cannot predict at all.
    ``delimiter``: a multi-label campaign's (labels are sets, each member counted)."""
    blocks: list[Block] = [Heading("Labels per class")]
    if last is None or head is None or data.campaign is None:
        return blocks + [Para("No model yet, or the texts could not be loaded: nothing to count.")]
    campaign = data.campaign.at_labels(len(last.train_labels))
    classes = list(campaign.classes)
    given: Counter[str] = Counter()
    for label in last.train_labels.values():
        given.update(split_labels(label, delimiter) if delimiter is not None else [label])
    labeled = set(last.train_labels) | {i for i, r in res.items() if r.label is not None}  # the audit's too
    unlabeled = [r for r, i in enumerate(campaign.pool.ids) if i not in labeled]
    predicted: np.ndarray = np.zeros(len(classes), dtype=np.int64)
    if unlabeled:
        guess = np.asarray(head.predict(campaign.X[unlabeled]))
        predicted = guess.sum(axis=0) if guess.ndim == 2 else np.bincount(guess, minlength=len(classes))
    rows = sorted(range(len(classes)), key=lambda k: (given[classes[k]], -predicted[k], classes[k]))
    none = [classes[k] for k in rows if not given[classes[k]]]
    blocks.append(
        Para(
            f"What model {last.model_version} learnt from, fewest labels first, beside the texts nobody has "
            f"labeled yet ({len(unlabeled)}) that it puts in each class. Many predicted texts on few labels: "
            f"the labels (and the guidelines' examples) are short there."
            + (f" No label yet for {len(none)} class(es): {', '.join(none[:10])}." if none else "")
        )
    )
    total = max(len(unlabeled), 1)
    return blocks + [
        Table(
            ["class", "labels", "unlabeled texts it predicts", "share"],
            [[classes[k], given[classes[k]], int(predicted[k]), f"{predicted[k] / total:.1%}"] for k in rows],
        )
    ]


def _disagreements_section(res: Mapping[str, Resolution], data: _Data) -> list[Block]:
    blocks: list[Block] = [Heading("Disagreements")]
    ids = sorted(k for k, r in res.items() if r.disagreement)
    if not ids:
        return blocks + [Para("No text has conflicting labels.")]
    blocks.append(
        Para(
            f"{len(ids)} text(s) got different labels from different annotators. The majority "
            f"label is trained on; a tie is not, until someone breaks it."
        )
    )
    if data.problem:
        blocks.append(Para(f"Texts not shown: {data.problem}"))
    return blocks + [
        Table(
            ["id", "votes", "agreed label", "text"],
            [
                [
                    k,
                    ", ".join(f"{lab} {n}" for lab, n in sorted(res[k].votes.items())),
                    res[k].label or "tie",
                    _snippet(data.texts.get(k)),
                ]
                for k in ids
            ],
        )
    ]


def _throughput_section(records: Sequence[AnnotationRecord], figdir: _FigureDir) -> list[Block]:
    blocks: list[Block] = [Heading("Throughput")]
    per_day = _labels_per_day(records)
    if not per_day:
        return blocks + [Para("No labels yet.")]
    people = sorted(per_day)
    days = sorted({d for counts in per_day.values() for d in counts})
    rows: list[list[Any]] = [
        [d, *(per_day[p][d] for p in people), sum(per_day[p][d] for p in people)] for d in days
    ]
    rows.append(
        [
            "all days",
            *(sum(per_day[p].values()) for p in people),
            sum(sum(c.values()) for c in per_day.values()),
        ]
    )
    return blocks + [
        Para("Labels standing now (relabels count once, deleted ones not at all) by the day they were made."),
        Table(["day", *people, "total"], rows),
        _figure(plots.throughput(per_day), figdir, "throughput", "labels per annotator per day"),
    ]


def _ledger_section(
    rounds: Sequence[RoundRow], runs: Sequence[RunRow], multi_label: bool = False
) -> list[Block]:
    key, metric = ("micro_f1", "micro-F1") if multi_label else ("accuracy", "accuracy")

    def kappa(r: RoundRow) -> str:
        k = r.metrics.get("stop_set_kappa")
        return "–" if k is None else f"{k:.3f}"

    return [
        Heading("Rounds"),
        Table(
            [
                "round",
                "model version",
                "strategy",
                "labels",
                "audit labels",
                f"audit {metric}",
                f"test {metric}",
                "κ vs previous",
                "created at",
            ],
            [
                [
                    r.round,
                    r.model_version,
                    r.strategy,
                    r.n_labeled,
                    (r.metrics.get("audit") or {}).get("n", 0),
                    _fmt(r.metrics.get("audit"), key),
                    _fmt(r.metrics.get("test"), key),
                    kappa(r),
                    r.created_at,
                ]
                for r in rounds
            ],
        )
        if rounds
        else Para("No rounds yet."),
        Heading("Runs"),
        Table(
            ["run", "finished at", "pulled", "trained", "sent", "queue before → after", "stopped"],
            [
                [
                    r.run,
                    r.finished_at,
                    r.pulled,
                    r.trained or "–",
                    r.pushed,
                    f"{r.queue_before} → {r.queue_after}",
                    r.stopped or "",
                ]
                for r in runs
            ],
        )
        if runs
        else Para("No sync has finished yet."),
    ]


# -- the report --------------------------------------------------------------------------------------


def write_report(config: Config, out: str | Path) -> Path:
    """Write a Markdown (or, for ``.html``, HTML) report to ``out``, its figures in ``<stem>_files/``."""
    out = check_output(out)
    figures = check_output_dir(out.with_name(out.stem + "_files"), "--out (figures)")
    s = summary(config)
    with Store.open_existing(config.state.path) as store:
        check_features(store, config)  # the report scores the latest model on the config's features
        rounds = store.rounds()
        runs = store.runs()
        records = store.records()
        res = store.resolutions()
        audit_ids = set(store.ids_with_role("audit"))
        escalations = store.escalations()
        guidelines = store.guidelines()
        trained = [r for r in rounds if r.has_model]
        last = trained[-1] if trained else None
        arrays = store.model(last.round) if last is not None else None
    multi = config.multi_label
    head = None if arrays is None or multi else Head.from_arrays(arrays)
    set_head = MultiLabelHead.from_arrays(arrays) if arrays is not None and multi else None
    data = _load_data(config, embed=last is not None)
    title = f"labelloop campaign report: {config.labelstudio.project}"
    # Figures are staged and the text written atomically: a failed report leaves no half-written files.
    with staging_dir(figures, "--out (figures)") as stage:
        figdir = _FigureDir(figures.name, stage)
        blocks: list[Block] = [
            Heading(title, 1),
            *_summary_section(config, s, last),
            *_curve_section(trained, figdir, multi),
            *(
                _label_set_failures_section(last, set_head, data, res, audit_ids, config.label_delimiter)
                if multi
                else _failures_section(last, head, data, res, audit_ids, figdir)
            ),
            *_labels_per_class_section(
                last, set_head if multi else head, data, res, config.label_delimiter if multi else None
            ),
            *_disagreements_section(res, data),
            *agreement_section(
                label_set_agreement_report(
                    agreement_votes(records, escalations), config.labels, config.label_delimiter
                )
                if multi
                else agreement_report(agreement_votes(records, escalations)),
                label_sets=multi,
            ),
            *second_opinions_section(escalations, data.texts, _snippet),
            *guidelines_section(guidelines, records),
            *_throughput_section(records, figdir),
            *_ledger_section(rounds, runs, multi),
        ]
        text = to_html(blocks, title) if out.suffix.lower() in (".html", ".htm") else to_markdown(blocks)
        with atomic_write(out) as fh:
            fh.write(text)
    return out
