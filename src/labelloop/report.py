"""What a campaign has done, from its state file: ``labelloop status`` and ``labelloop report``.

:func:`summary` reads the store only (no network, no embedding) so ``status`` is instant;
:func:`write_report` also embeds the audit or test texts (through the cache) to show where the
current model fails. Figures come from :mod:`labelloop.plots`, like the notebook's.
"""

from __future__ import annotations

import html
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from . import plots
from .config import Config
from .head import Head
from .labelstudio import AnnotationRecord
from .store import Store
from .sync import current_advice, load_campaign

__all__ = ["summary", "write_report", "live_annotations"]

MIN_EVAL = 10


def live_annotations(records: list[AnnotationRecord]) -> list[AnnotationRecord]:
    """The current state of every annotation: later records win, deleted ones are gone."""
    live: dict[int, AnnotationRecord] = {}
    for rec in records:
        if rec.event == "deleted":
            live.pop(rec.annotation_id, None)
        else:
            live[rec.annotation_id] = rec
    return list(live.values())


def _who(rec: AnnotationRecord) -> str:
    return rec.annotator_email or (f"user {rec.annotator}" if rec.annotator is not None else "unknown")


def summary(config: Config) -> dict[str, Any]:
    """Status numbers from the ledger: runs, queue, labels, annotators, last round, metrics, stop advice."""
    with Store.open_existing(config.state.path) as store:
        runs = store.runs()
        res = store.resolutions()
        last = store.last_round()
        annotators: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for rec in live_annotations(store.records()):
            annotators[_who(rec)][1 if rec.skipped else 0] += 1
        out = {
            "runs": len(runs), "last_run": runs[-1]["finished_at"] if runs else None,
            "sent": len(store.pushes()), "queue": runs[-1]["queue_after"] if runs else 0,
            "labeled": sum(r.label is not None for r in res.values()),
            "skipped": sum(r.skipped > 0 and not r.votes for r in res.values()),
            "disagreements": sum(r.disagreement for r in res.values()),
            "round": {"round": last.round, "model_version": last.model_version, "n_labeled": last.n_labeled,
                      "created_at": last.created_at} if last else {},
            "metrics": last.metrics if last else {},
            "annotators": {k: tuple(v) for k, v in annotators.items()},
            "advice": current_advice(store, config),
        }
    return out


def _table(header: list[str], rows: list[list[Any]]) -> list[str]:
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|").replace("\n", " ")
    return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header),
            *["| " + " | ".join(cell(x) for x in row) + " |" for row in rows], ""]


def _fmt(m: dict[str, Any] | None, key: str = "accuracy") -> str:
    if not m or not m.get("n"):
        return "–"
    lo, hi = m[f"{key}_ci"]
    return f"{m[key]:.3f} [{lo:.3f}, {hi:.3f}]"


def write_report(config: Config, out: str | Path) -> Path:
    """Write a Markdown (or, for ``.html``, HTML) report with its figures in ``<stem>_files/``."""
    out = Path(out)
    figdir = out.with_name(out.stem + "_files")
    figdir.mkdir(parents=True, exist_ok=True)
    s = summary(config)
    with Store.open_existing(config.state.path) as store:
        rounds = [r for r in store.rounds() if r.model is not None]
        runs = store.runs()
        records = store.records()
        res = store.resolutions()
        audit_ids = set(store.ids_with_role("audit"))
    last = rounds[-1] if rounds else None
    md: list[str] = [f"# labelloop campaign report: {config.labelstudio.project}", ""]

    md += ["## Summary", "",
           f"- {s['runs']} sync run(s), the last at {s['last_run'] or 'never'}",
           f"- {s['sent']} of {config.loop.budget} texts sent; {s['queue']} waiting after the last sync "
           f"(target {config.loop.queue_target})",
           f"- {s['labeled']} labeled, {s['skipped']} only skipped, {s['disagreements']} with disagreement",
           f"- current model: {last.model_version + f' (round {last.round}, {last.n_labeled} labels)' if last else 'none yet (it needs labels of two classes)'}",
           f"- audit accuracy: {_fmt(s['metrics'].get('audit'))}; macro-F1 "
           f"{_fmt(s['metrics'].get('audit'), 'macro_f1')}", ""]
    md += ["Stop advice:", ""] + [f"- **{'STOP' if a.fired else 'go'}** {a.criterion}: {a.reason}"
                                  for a in s["advice"]] + [""]

    md += ["## Learning curve", ""]
    curve = [{"n_labeled": r.n_labeled, "audit": r.metrics.get("audit"), "test": r.metrics.get("test")}
             for r in rounds]
    plots.save(plots.campaign_curve(curve), figdir / "learning_curve.png")
    md += [f"![learning curve]({figdir.name}/learning_curve.png)", ""]

    md += ["## Where the current model fails", ""]
    md += _failures(config, last, res, audit_ids, figdir)

    md += ["## Disagreements", ""]
    disagreed = sorted(k for k, r in res.items() if r.disagreement)
    if disagreed:
        md += _table(["id", "votes", "agreed label"],
                     [[k, json.dumps(res[k].votes), res[k].label or "tie"] for k in disagreed])
    else:
        md += ["No text has conflicting labels.", ""]

    md += ["## Throughput", ""]
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    for rec in live_annotations(records):
        if not rec.skipped:
            per_day[_who(rec)][(rec.created_at or "unknown")[:10]] += 1
    plots.save(plots.throughput(per_day), figdir / "throughput.png")
    md += [f"![throughput]({figdir.name}/throughput.png)", ""]
    md += _table(["annotator", "labels", "skips"],
                 [[who, n, k] for who, (n, k) in sorted(s["annotators"].items())])

    md += ["## Rounds", ""]
    md += _table(["round", "model version", "strategy", "labels", "audit accuracy", "test accuracy",
                  "κ vs previous", "trained at"],
                 [[r.round, r.model_version, r.strategy, r.n_labeled, _fmt(r.metrics.get("audit")),
                   _fmt(r.metrics.get("test")),
                   f"{r.metrics['stop_set_kappa']:.3f}" if "stop_set_kappa" in r.metrics else "–", r.created_at]
                  for r in rounds])
    md += ["## Runs", ""]
    md += _table(["run", "finished", "pulled", "trained", "sent", "queue", "stopped"],
                 [[r["run"], r["finished_at"], r["pulled"], r["trained"] or "–", r["pushed"],
                   f"{r['queue_before']} → {r['queue_after']}", r["stopped"] or ""] for r in runs])

    text = "\n".join(md)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(_html(text) if out.suffix.lower() in (".html", ".htm") else text, encoding="utf-8")
    tmp.replace(out)
    return out


def _failures(config: Config, last: Any, res: dict, audit_ids: set[str], figdir: Path) -> list[str]:
    """Per-class F1 and the most confused classes, on the test file if there is one, else the audit labels."""
    if last is None:
        return ["No model yet.", ""]
    campaign = load_campaign(config)
    index = {c: k for k, c in enumerate(campaign.classes)}
    head = Head.from_arrays(last.model)
    if campaign.test is not None and campaign.X_test is not None:
        where = f"the test file ({len(campaign.test)} texts)"
        y = np.array([index[lab] for lab in campaign.test.labels])
        X = campaign.X_test
    else:
        rows = {i: r for r, i in enumerate(campaign.pool.ids)}
        ids = sorted(i for i in audit_ids if i in rows and i in res and res[i].label)
        where = f"the audit sample ({len(ids)} labeled texts)"
        y = np.array([index[res[i].label] for i in ids], dtype=np.int64)
        X = campaign.X[[rows[i] for i in ids]] if ids else np.empty((0, campaign.X.shape[1]))
    if len(y) < MIN_EVAL:
        return [f"Too few labels in {where} to break accuracy down (need {MIN_EVAL}).", ""]
    pred = head.predict(X)
    plots.save(plots.per_class_f1(y, {last.model_version: pred}, campaign.classes), figdir / "per_class_f1.png")
    plots.save(plots.confusion_top(y, pred, campaign.classes, k=min(8, len(campaign.classes))),
               figdir / "confusion.png")
    pairs = Counter((campaign.classes[t], campaign.classes[p]) for t, p in zip(y, pred, strict=True) if t != p)
    lines = [f"Measured on {where} with model {last.model_version}.", "",
             f"![per-class F1]({figdir.name}/per_class_f1.png)", "",
             f"![most confused classes]({figdir.name}/confusion.png)", ""]
    if pairs:
        lines += ["Most confused pairs:", ""]
        lines += _table(["true", "predicted", "count"], [[t, p, n] for (t, p), n in pairs.most_common(10)])
    return lines


def _html(markdown: str) -> str:
    """The same report as a self-contained HTML page (headings, lists, tables, images; nothing else is used)."""
    body: list[str] = []
    table: list[list[str]] = []

    def flush_table() -> None:
        if table:
            head, *rest = table
            body.append("<table><tr>" + "".join(f"<th>{c}</th>" for c in head) + "</tr>" +
                        "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rest) +
                        "</table>")
            table.clear()

    for line in markdown.splitlines():
        if line.startswith("|"):
            if not line.startswith("|---"):
                table.append([html.escape(c.strip().replace("\\|", "|")) for c in line.strip("|").split(" | ")])
            continue
        flush_table()
        if line.startswith("!["):
            alt, src = line[2:].split("](", 1)
            body.append(f'<p><img alt="{html.escape(alt)}" src="{html.escape(src.rstrip(")"))}"></p>')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line[level:].strip())}</h{level}>")
        elif line.startswith("- "):
            body.append(f"<li>{html.escape(line[2:]).replace('**', '')}</li>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush_table()
    style = ("body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2rem .5rem}img{max-width:100%}")
    return f"<!doctype html><meta charset='utf-8'><title>labelloop report</title><style>{style}</style>\n" + \
        "\n".join(body) + "\n"
