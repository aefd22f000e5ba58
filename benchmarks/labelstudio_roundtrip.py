"""Round trip against a real local Label Studio: push 1,000 tasks with predictions, twice; pull 1,000 labels.

    .venv/bin/python benchmarks/labelstudio_roundtrip.py [--repeats 3] [--port 18095]

Starts its own server with scripts/labelstudio.py (cold start on a fresh data dir, then a warm
restart, both timed), runs ``--repeats`` rounds, each on a fresh project, and stops the server.
The 1,000 annotations are made by Label Studio's own "predictions → annotations" action (one
request), then 20 are relabeled one by one, as a person would. Writes
benchmarks/results/labelstudio_roundtrip.{json,md}. Bars (from the issue): push < 30 s,
re-push leaves exactly 1,000 tasks, pull < 30 s.
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
from importlib.metadata import version
from pathlib import Path

import numpy as np

from labelloop.data import demo_paths, load_pool
from labelloop.labelstudio import Connector, PushItem, resolve
from labelloop.labelstudio.annotations import SCAN_MARGIN_SECONDS

ROOT = Path(__file__).resolve().parents[1]

SCRIPT = ROOT / "scripts" / "labelstudio.py"
LS_VENV = Path(os.environ.get("LABELLOOP_LS_VENV", ROOT / ".venv-ls"))  # where the script keeps its state
N = 1000


def script(command: str, port: int, env: dict[str, str], *args: str) -> None:
    done = subprocess.run([sys.executable, str(SCRIPT), command, "--port", str(port), *args], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"{command} failed:\n{done.stderr[-3000:]}")


def start_seconds(port: int) -> float:
    return json.loads((LS_VENV / "run" / f"{port}.json").read_text())["start_seconds"]


def items(seed: int) -> tuple[list[PushItem], list[str]]:
    """1,000 distinct ticket texts with a model-like guess, confidence and cluster."""
    train, test = demo_paths()
    pools = [load_pool(train, id_column="id"), load_pool(test, id_column="id")]
    texts = [t for p in pools for t in p.texts]
    labels = sorted({lab for p in pools for lab in p.labels if lab})
    rng = np.random.default_rng(seed)
    out = []
    for i in range(N):
        text = texts[i % len(texts)] + ("" if i < len(texts) else f" (again, #{i})")
        out.append(PushItem(f"bench-{i:05d}", text, labels[int(rng.integers(len(labels)))],
                            float(rng.uniform(0.05, 0.95)), int(rng.integers(50))))
    return out, labels


def timed(fn):
    t0 = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - t0


def one_round(ls: Connector, sdk, r: int) -> dict:
    batch, labels = items(r)
    info = ls.ensure_project(f"benchmark-roundtrip-{r}-{secrets.token_hex(3)}", labels)
    push, t_push = timed(lambda: ls.push(info.id, batch, "bench-m1"))
    again, t_again = timed(lambda: ls.push(info.id, batch, "bench-m1"))
    n_tasks = len(ls.existing_ids(info.id))
    _, t_annotate = timed(lambda: sdk.actions.create(id="predictions_to_annotations", project=info.id,
                                                     selected_items={"all": True, "excluded": []}))
    pulled, t_pull = timed(lambda: ls.pull(info.id))
    time.sleep(SCAN_MARGIN_SECONDS + 1)
    # The first pull started within the safety margin of the burst, so the next one fetches it again;
    # from then on, a pull fetches only what changed.
    repull, t_repull = timed(lambda: ls.pull(info.id, pulled.cursor))
    idle, t_idle = timed(lambda: ls.pull(info.id, repull.cursor))
    changed = sorted({rec.annotation_id for rec in pulled.records})[:20]
    for k, ann in enumerate(changed):
        sdk.annotations.update(ann, result=[{"from_name": "label", "to_name": "text", "type": "choices",
                                             "value": {"choices": [labels[k % len(labels)]]}}])
    incr, t_incr = timed(lambda: ls.pull(info.id, idle.cursor))
    truth = {i.id: i.label for i in batch}
    resolved = resolve(pulled.records)
    return {
        "project": info.id,
        "push_seconds": round(t_push, 2), "push_created": len(push.created),
        "repush_seconds": round(t_again, 2), "repush_created": len(again.created),
        "tasks_after_repush": n_tasks,
        "annotate_action_seconds": round(t_annotate, 2),
        "pull_seconds": round(t_pull, 2), "pulled_records": len(pulled.records),
        "pulled_labels_match_predictions": sum(resolved[k].label == v for k, v in truth.items()
                                               if k in resolved),
        "repull_seconds": round(t_repull, 2), "repull_records": len(repull.records),
        "repull_tasks_fetched": repull.tasks_fetched,
        "idle_pull_seconds": round(t_idle, 2), "idle_pull_records": len(idle.records),
        "idle_pull_tasks_fetched": idle.tasks_fetched,
        "incremental_pull_seconds": round(t_incr, 2), "incremental_records": len(incr.records),
        "incremental_tasks_fetched": incr.tasks_fetched,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--port", type=int, default=18095)
    args = parser.parse_args()
    from label_studio_sdk import LabelStudio

    key = secrets.token_hex(20)
    env = {**os.environ, "LABEL_STUDIO_API_KEY": key}
    data_dir = Path(tempfile.mkdtemp(prefix="labelloop-bench-ls-"))
    load_before = os.getloadavg()
    script("stop", args.port, env)
    try:
        script("start", args.port, env, "--data-dir", str(data_dir))
        cold = start_seconds(args.port)
        script("stop", args.port, env)
        script("start", args.port, env, "--data-dir", str(data_dir))
        warm = start_seconds(args.port)
        url = f"http://127.0.0.1:{args.port}"
        ls, sdk = Connector(url, key), LabelStudio(base_url=url, api_key=key)
        rounds = [one_round(ls, sdk, r) for r in range(args.repeats)]
    finally:
        script("stop", args.port, env)
        subprocess.run(["rm", "-rf", str(data_dir)], check=False)

    def med(key: str) -> float:
        return statistics.median(r[key] for r in rounds)

    bars = {
        "push_1000_under_30s": all(r["push_seconds"] < 30 and r["push_created"] == N for r in rounds),
        "repush_keeps_1000_tasks": all(r["tasks_after_repush"] == N and r["repush_created"] == 0
                                       for r in rounds),
        "pull_1000_under_30s": all(r["pull_seconds"] < 30 and r["pulled_records"] == N for r in rounds),
    }
    steps = ("push_seconds", "repush_seconds", "pull_seconds", "repull_seconds", "idle_pull_seconds",
             "incremental_pull_seconds", "annotate_action_seconds")
    result = {
        "benchmark": "labelstudio_roundtrip", "n_tasks": N, "repeats": args.repeats,
        "label_studio": "1.23.2", "label_studio_sdk": version("label-studio-sdk"),
        "python": platform.python_version(), "cpus": os.cpu_count(),
        "loadavg_before": [round(x, 2) for x in load_before],
        "server_cold_start_seconds": cold, "server_warm_start_seconds": warm,
        "median": {k: med(k) for k in steps}, "bars": bars, "rounds": rounds,
    }
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "labelstudio_roundtrip.json").write_text(json.dumps(result, indent=2) + "\n")

    def row(step: str, key: str, outcome: str, bar: str = "") -> str:
        runs = ", ".join(str(r[key]) for r in rounds)
        return f"| {step} | {med(key)} | {runs} | {outcome} | {bar} |"

    def verdict(name: str) -> str:
        return "pass" if bars[name] else "FAIL"

    first = rounds[0]
    lines = [
        "# Label Studio round trip (1,000 tasks)", "",
        (f"Label Studio 1.23.2 (local, SQLite, Django dev server), label-studio-sdk "
         f"{result['label_studio_sdk']}, {result['cpus']} CPUs, load average {result['loadavg_before'][0]} "
         f"before the run; median of {args.repeats} rounds, each on a fresh project. "
         f"Produced by `benchmarks/labelstudio_roundtrip.py`."), "",
        "| step | median s | all rounds (s) | result | bar |", "|---|---:|---|---|---|",
        row("push 1,000 tasks with predictions", "push_seconds", f"{first['push_created']} created",
            f"< 30 s: {verdict('push_1000_under_30s')}"),
        row("push the same 1,000 again", "repush_seconds",
            f"{first['tasks_after_repush']} tasks, {first['repush_created']} created",
            f"1,000 tasks: {verdict('repush_keeps_1000_tasks')}"),
        row("pull 1,000 annotations", "pull_seconds", f"{first['pulled_records']} records",
            f"< 30 s: {verdict('pull_1000_under_30s')}"),
        row("pull again (the burst was < 10 s before the last scan: refetched once)", "repull_seconds",
            f"{first['repull_records']} records, {first['repull_tasks_fetched']} tasks fetched"),
        row("pull again, nothing changed", "idle_pull_seconds",
            f"{first['idle_pull_records']} records, {first['idle_pull_tasks_fetched']} tasks fetched"),
        row("pull after 20 relabels", "incremental_pull_seconds",
            f"{first['incremental_records']} records, {first['incremental_tasks_fetched']} tasks fetched"),
        row("(setup) annotate all 1,000: predictions → annotations action", "annotate_action_seconds", ""),
        f"| server cold start (migrations) / warm restart | {cold} / {warm} | | | |", "",
    ]
    (out / "labelstudio_roundtrip.md").write_text("\n".join(lines))
    print("\n".join(lines))

if __name__ == "__main__":
    main()
