"""A scheduled campaign on BANKING77 against a real local Label Studio: how long does each sync take?

    .venv/bin/python benchmarks/sync_campaign.py [--days 8] [--queue 100] [--port 18095]

Starts its own server with scripts/labelstudio.py (or uses $LABEL_STUDIO_URL/$LABEL_STUDIO_API_KEY
with ``--use-env``). The pool is BANKING77's 10,003 training texts, labels hidden; a scripted
annotator labels every waiting task between syncs with the true intent. Each sync is timed
whole (pull + retrain + select + push + ledger; the embeddings come from the cache after the
first). Also compares the audit sample's accuracy estimate with the held-out test accuracy.
Writes benchmarks/results/sync_campaign.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
from _banking77 import RESULTS, banking77_paths

from labelloop.config import load_config
from labelloop.labelstudio.payloads import as_dict as _as_dict
from labelloop.store import Store
from labelloop.sync import sync

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "labelstudio.py"


def waiting(sdk, project_id: int) -> list[dict]:
    tasks = [_as_dict(t) for t in sdk.tasks.list(project=project_id, fields="all", page_size=1000,
                                                 include="id,data,total_annotations,cancelled_annotations")]
    return [t for t in tasks if not t.get("total_annotations") and not t.get("cancelled_annotations")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=8)
    parser.add_argument("--queue", type=int, default=100)
    parser.add_argument("--retrain-every", type=int, default=50)
    parser.add_argument("--port", type=int, default=18095)
    parser.add_argument("--use-env", action="store_true", help="use the server in $LABEL_STUDIO_URL")
    args = parser.parse_args()

    train, test = banking77_paths()
    work = Path(tempfile.mkdtemp(prefix="labelloop-sync-bench-"))
    frame = pd.read_csv(train)
    frame.insert(0, "id", [f"b{i:05d}" for i in range(len(frame))])
    frame[["id", "text"]].to_csv(work / "pool.csv", index=False)
    truth = dict(zip(frame["id"], frame["category"], strict=True))
    labels = sorted(frame["category"].unique())
    budget = args.queue * args.days
    (work / "labelloop.toml").write_text(f"""
labels = {json.dumps(labels)}
[data]
path = "pool.csv"
id_column = "id"
test = "{test}"
test_label_column = "category"
[labelstudio]
project = "bench-sync-{secrets.token_hex(3)}"
[loop]
queue_target = {args.queue}
budget = {budget}
retrain_every = {args.retrain_every}
audit_fraction = 0.05
[stop]
on = ["budget"]
[state]
path = "state.db"
""")
    env = dict(os.environ)
    started_here = not args.use_env
    if started_here:
        env.update(LABEL_STUDIO_API_KEY=secrets.token_hex(20), LABEL_STUDIO_PASSWORD=secrets.token_urlsafe(12))
        done = subprocess.run([sys.executable, str(SCRIPT), "start", "--port", str(args.port)], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"could not start Label Studio:\n{done.stderr[-3000:]}")
        os.environ.update(LABEL_STUDIO_URL=f"http://127.0.0.1:{args.port}",
                          LABEL_STUDIO_API_KEY=env["LABEL_STUDIO_API_KEY"])
    from label_studio_sdk import LabelStudio

    sdk = LabelStudio(base_url=os.environ["LABEL_STUDIO_URL"], api_key=os.environ["LABEL_STUDIO_API_KEY"])
    config = load_config(work / "labelloop.toml")
    runs = []
    try:
        for day in range(args.days + 1):
            t0 = time.perf_counter()
            report = sync(config)
            seconds = time.perf_counter() - t0
            runs.append({"run": report.run, "seconds": round(seconds, 2), "pulled": report.pulled,
                         "trained": report.trained, "sent": report.pushed_active + report.pushed_audit,
                         "queue_after": report.queue_after})
            print(f"sync {report.run}: {seconds:.1f} s; {report.message}", flush=True)
            with Store.open_existing(config.state.path) as store:
                project_id = int(store.get("project_id"))
            if day < args.days:
                for task in waiting(sdk, project_id):
                    sdk.annotations.create(id=task["id"], result=[{
                        "from_name": "label", "to_name": "text", "type": "choices",
                        "value": {"choices": [truth[task["data"]["labelloop_id"]]]}}])
    finally:
        if started_here:
            subprocess.run([sys.executable, str(SCRIPT), "stop", "--port", str(args.port)], env=env,
                           capture_output=True, check=False)

    with Store.open_existing(config.state.path) as store:
        rounds = [{"round": r.round, "n_labeled": r.n_labeled, "audit": r.metrics.get("audit"),
                   "test_accuracy": r.metrics.get("test", {}).get("accuracy"),
                   "stop_set_kappa": r.metrics.get("stop_set_kappa")} for r in store.rounds() if r.has_model]
    steady = [r["seconds"] for r in runs[1:]]
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "pool": len(frame),
              "queue_target": args.queue, "retrain_every": args.retrain_every, "budget": budget, "runs": runs,
              "rounds": rounds, "median_sync_seconds": statistics.median(steady), "max_sync_seconds": max(steady)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "sync_campaign.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"BANKING77 pool of {len(frame)} texts, queue target {args.queue}, retrain every "
             f"{args.retrain_every} labels, a scripted annotator labels the whole queue between syncs. "
             f"First sync (embeds, or reads the cache, and creates the project): {runs[0]['seconds']:.1f} s; "
             f"later syncs: median {result['median_sync_seconds']:.1f} s, max {result['max_sync_seconds']:.1f} s.",
             "", "| round | labels | audit n | audit accuracy (95 % CI) | test accuracy | κ vs previous |",
             "|---:|---:|---:|---|---:|---:|"]
    for r in rounds:
        a = r["audit"] or {}
        acc = (f"{a['accuracy']:.3f} [{a['accuracy_ci'][0]:.3f}, {a['accuracy_ci'][1]:.3f}]" if a.get("n")
               else "–")
        kappa = f"{r['stop_set_kappa']:.3f}" if r["stop_set_kappa"] is not None else "–"
        lines.append(f"| {r['round']} | {r['n_labeled']} | {a.get('n', 0)} | {acc} | "
                     f"{r['test_accuracy']:.3f} | {kappa} |")
    (RESULTS / "sync_campaign.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
