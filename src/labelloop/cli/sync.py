"""``labelloop init | sync | status | report | predict``: the scheduled campaign from the shell.

Exit codes (beside the common ones): 4 means another sync holds the lock, so this run did
nothing; cron may simply try again at the next tick.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from ..config import EXAMPLE, load_config
from ..errors import LabelloopError
from ..strategies import DEFAULT_STRATEGY, STRATEGIES
from . import app

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The campaign's labelloop.toml.")]


@app.command()
def init(
    path: Annotated[Path, typer.Argument(help="Where to write the example config.")] = Path("labelloop.toml"),
    data: Annotated[str, typer.Option(help="The texts to label (CSV, JSONL or Parquet).")] = "texts.csv",
    labels: Annotated[str, typer.Option(help="Comma-separated label set.")] = "billing,bug,other",
    project: Annotated[str, typer.Option(help="Label Studio project title or id.")] = "labelloop",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
) -> None:
    """Write a commented labelloop.toml to start a campaign from."""
    if path.exists() and not force:
        raise LabelloopError(f"{path} exists; pass --force to overwrite it")
    names = [s.strip() for s in labels.split(",") if s.strip()]
    path.write_text(EXAMPLE.format(labels=json.dumps(names), data=data, project=project,
                                   strategy=DEFAULT_STRATEGY, strategies=", ".join(STRATEGIES)), encoding="utf-8")
    load_config(path)  # the example must itself be valid
    Console(stderr=True).print(f"Wrote {path}. Set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY, then run "
                               f"`labelloop sync --config {path}` (e.g. every 5 minutes from cron).")


@app.command("sync")
def sync_cmd(config: ConfigOpt = Path("labelloop.toml"),
             quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars (for cron).")] = False
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
    for advice in report.advice:
        if advice.fired:
            console.print(f"[yellow]stop advice: {advice.criterion}: {advice.reason}[/]")


@app.command()
def status(config: ConfigOpt = Path("labelloop.toml")) -> None:
    """Queue, labels per annotator, last round, audit metrics and stop advice, from the state file (offline)."""
    from ..report import summary

    cfg = load_config(config)
    s = summary(cfg)
    console = Console(soft_wrap=True)
    console.print(f"[bold]{cfg.state.path}[/]: {s['runs']} sync run(s), last {s['last_run'] or 'never'}")
    console.print(f"sent {s['sent']} of budget {cfg.loop.budget}; queue after the last sync: {s['queue']} "
                  f"(target {cfg.loop.queue_target}); {s['labeled']} text(s) labeled, {s['skipped']} skipped, "
                  f"{s['disagreements']} with disagreement")
    r = s["round"]
    console.print(f"round {r['round']}: model {r['model_version']} trained on {r['n_labeled']} labels "
                  f"({r['created_at']})")
    for name in ("audit", "test"):
        m = s["metrics"].get(name)
        if m and m.get("n"):
            console.print(f"{name}: accuracy {m['accuracy']:.3f} [{m['accuracy_ci'][0]:.3f}, "
                          f"{m['accuracy_ci'][1]:.3f}], macro-F1 {m['macro_f1']:.3f} "
                          f"[{m['macro_f1_ci'][0]:.3f}, {m['macro_f1_ci'][1]:.3f}] on {m['n']} texts")
    if s["annotators"]:
        table = Table("annotator", "labels", "skips", title="annotators")
        for who, (n_labels, n_skips) in sorted(s["annotators"].items()):
            table.add_row(who, str(n_labels), str(n_skips))
        console.print(table)
    for advice in s["advice"]:
        mark = "[bold yellow]STOP[/]" if advice.fired else "go"
        console.print(f"{mark} {advice.criterion}: {advice.reason}")


@app.command()
def report(
    config: ConfigOpt = Path("labelloop.toml"),
    out: Annotated[Path, typer.Option(help="Report file: .md (Markdown) or .html; plots go beside it.")
                   ] = Path("labelloop-report.md"),
) -> None:
    """Write a report: learning curve over rounds, per-class F1, most confused pairs, disagreements, throughput."""
    from ..report import write_report

    cfg = load_config(config)
    path = write_report(cfg, out)
    Console(stderr=True).print(f"Wrote {path}")


@app.command()
def predict(
    input: Annotated[Path, typer.Option("--input", help="Texts to classify (CSV, JSONL or Parquet).")],
    out: Annotated[Path, typer.Option(help="CSV to write: id, label, confidence.")],
    config: ConfigOpt = Path("labelloop.toml"),
    text_column: Annotated[str, typer.Option(help="Column holding the texts.")] = "text",
    id_column: Annotated[str | None, typer.Option(help="Column with ids (default: derived from the text).")
                         ] = None,
) -> None:
    """Apply the campaign's current model to a file of texts, for use downstream."""
    from ..campaign import config_encoder, latest_head, load_campaign
    from ..data import load_pool
    from ..featurize import featurize
    from ..store import Store

    cfg = load_config(config)
    with Store.open_existing(cfg.state.path) as store:
        last, head = latest_head(store)
    if head is None:
        raise LabelloopError(f"{cfg.state.path}: no model yet (it needs labels of two classes); run "
                             f"`labelloop sync` after some labeling")
    pool = load_pool(input, text_column, None, id_column, unique_ids=False)
    # The model was trained on features smoothed over the campaign's pool: new texts take their neighbours
    # there. Only the pool's raw vectors are needed (from the cache), not the pool's own features.
    campaign = load_campaign(cfg, embed_texts=False)
    f = featurize(campaign.pool.texts, pool.texts, encoder=config_encoder(cfg), cache_dir=cfg.model.cache_dir,
                  smoothing=cfg.model.smoothing, smooth_pool=False, progress=True)
    probs = head.predict_proba(f.others[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["id", "label", "confidence", "model_version"])
        for i, p in zip(pool.ids, probs, strict=True):
            w.writerow([i, cfg.labels[int(np.argmax(p))], f"{float(np.max(p)):.4f}", last.model_version])
    tmp.replace(out)
    Console(stderr=True).print(f"Wrote {len(pool)} predictions of model {last.model_version} to {out}")
