"""`labelloop serve` against a real local Label Studio on BANKING77 (10,003 texts): how fast is it live?

    .venv/bin/python benchmarks/serve_latency.py [--rounds 5] [--queue 50] [--port 18093]

Starts its own Label Studio with scripts/labelstudio.py and a real `labelloop serve` process,
registers it with `labelloop connect` (webhook + ML backend), then:

* webhook-to-refill: a scripted annotator labels the whole queue through the API, one task after
  another as a person would; the clock runs from the last annotation's answer until the project
  again has ``queue`` waiting tasks (webhook → debounce → pull, retrain, select, push);
* ``/predict`` for one task, as Label Studio sends it: a pool text (looked up by our id), and a
  text never seen before (embedded on demand, then smoothed over the pool's vectors).

Writes benchmarks/results/serve_latency.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pandas as pd
from _banking77 import RESULTS, banking77_paths

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "labelstudio.py"


def p95(xs: list[float]) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, round(0.95 * (len(xs) - 1)))]


def waiting(client: httpx.Client, project_id: int) -> list[dict]:
    r = client.get("/api/tasks", params={"project": project_id, "page_size": 1000, "fields": "all",
                                         "include": "id,data,total_annotations,cancelled_annotations"})
    return [t for t in r.json()["tasks"] if not t.get("total_annotations") and not t.get("cancelled_annotations")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--queue", type=int, default=50)
    parser.add_argument("--retrain-every", type=int, default=25)
    parser.add_argument("--predictions", type=int, default=40)
    parser.add_argument("--port", type=int, default=18093)
    args = parser.parse_args()

    train, _ = banking77_paths()
    work = Path(tempfile.mkdtemp(prefix="labelloop-serve-bench-"))
    frame = pd.read_csv(train)
    frame.insert(0, "id", [f"b{i:05d}" for i in range(len(frame))])
    frame[["id", "text"]].to_csv(work / "pool.csv", index=False)
    truth = dict(zip(frame["id"], frame["category"], strict=True))
    labels = sorted(frame["category"].unique())
    (work / "labelloop.toml").write_text(f"""
labels = {json.dumps(labels)}
[data]
path = "pool.csv"
id_column = "id"
[labelstudio]
project = "bench-serve-{secrets.token_hex(3)}"
[loop]
queue_target = {args.queue}
budget = {args.queue * (args.rounds + 2)}
retrain_every = {args.retrain_every}
audit_fraction = 0.05
[stop]
on = ["budget"]
[state]
path = "state.db"
""")
    secret = secrets.token_hex(24)
    env = dict(os.environ, LABEL_STUDIO_API_KEY=secrets.token_hex(20), LABEL_STUDIO_PASSWORD=secrets.token_urlsafe(12),
               LABELLOOP_SERVE_SECRET=secret, LABEL_STUDIO_URL=f"http://127.0.0.1:{args.port}")
    done = subprocess.run([sys.executable, str(SCRIPT), "start", "--port", str(args.port)], env=env,
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.exit(f"could not start Label Studio:\n{done.stderr[-3000:]}")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    log = open(work / "serve.log", "wb")
    serve = subprocess.Popen([sys.executable, "-m", "labelloop.cli", "serve", "--config", str(work / "labelloop.toml"),
                              "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT)
    auth = {"X-Labelloop-Secret": secret}
    ls = httpx.Client(base_url=env["LABEL_STUDIO_URL"], headers={"Authorization": f"Token {env['LABEL_STUDIO_API_KEY']}"},
                      timeout=120)
    try:
        t0 = time.perf_counter()
        while True:
            assert serve.poll() is None, (work / "serve.log").read_text()[-3000:]
            try:
                status = httpx.get(f"{url}/status", headers=auth, timeout=5).json()
                if status["steps"] >= 1 and not status["pending"] and not status["running"]:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        start_seconds = time.perf_counter() - t0
        done = subprocess.run([sys.executable, "-m", "labelloop.cli", "connect", "--config", str(work / "labelloop.toml"),
                               "--url-for-label-studio", url], env=env, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        project_id = next(p["id"] for p in ls.get("/api/projects", params={"page_size": 1000}).json()["results"]
                          if p["title"].startswith("bench-serve-"))
        refill = []
        for k in range(args.rounds):
            tasks = waiting(ls, project_id)
            for task in tasks:
                ls.post(f"/api/tasks/{task['id']}/annotations/", json={"result": [{
                    "from_name": "label", "to_name": "text", "type": "choices",
                    "value": {"choices": [truth[task["data"]["labelloop_id"]]]}}], "lead_time": 3.0})
            last = time.perf_counter()
            # Refilled: the step the last label asked for has finished (the queue holds what labelloop sends
            # now; second opinions it reopened count toward queue_target, so not always `queue` fresh tasks).
            events = httpx.get(f"{url}/status", headers=auth, timeout=30).json()["events"]
            while True:
                s = httpx.get(f"{url}/status", headers=auth, timeout=30).json()
                if s["events"] >= events and not s["pending"] and not s["running"]:
                    break
                time.sleep(0.2)
            refill.append(time.perf_counter() - last)
            assert len(waiting(ls, project_id)) >= args.queue * 0.8
            print(f"round {k + 1}: labeled {len(tasks)}, queue refilled {refill[-1]:.1f} s after the last label",
                  flush=True)
        version = httpx.get(f"{url}/status", headers=auth, timeout=30).json()["model_version"]
        known, unseen = [], []
        rows = frame.sample(args.predictions, random_state=0)
        with httpx.Client(base_url=url, headers=auth, timeout=120) as client:
            for n, (our_id, text) in enumerate(zip(rows["id"], rows["text"], strict=True)):
                t = time.perf_counter()
                r = client.post("/predict", json={"tasks": [{"id": n, "data": {"text": text, "labelloop_id": our_id}}]})
                known.append(time.perf_counter() - t)
                assert r.status_code == 200 and r.json()["results"][0]["model_version"] == version
                t = time.perf_counter()
                r = client.post("/predict", json={"tasks": [{"id": n, "data": {
                    "text": f"{text} (asked again, variant {secrets.token_hex(4)})"}}]})
                unseen.append(time.perf_counter() - t)
                assert r.status_code == 200 and r.json()["results"][0]["result"]
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(60)
        subprocess.run([sys.executable, str(SCRIPT), "stop", "--port", str(args.port)], env=env,
                       capture_output=True, check=False)

    ms = lambda xs: round(1000 * xs, 1)  # noqa: E731
    result = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)", "pool": len(frame),
              "queue_target": args.queue, "retrain_every": args.retrain_every, "debounce_seconds": 2.0,
              "serve_start_seconds": round(start_seconds, 1),
              "refill_seconds": [round(x, 2) for x in refill],
              "median_refill_seconds": round(statistics.median(refill), 2),
              "predict_known_ms": {"median": ms(statistics.median(known)), "p95": ms(p95(known)), "n": len(known)},
              "predict_unseen_ms": {"median": ms(statistics.median(unseen)), "p95": ms(p95(unseen)),
                                    "n": len(unseen)}}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "serve_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [f"`labelloop serve` on BANKING77 ({len(frame)} texts), queue target {args.queue}, retrain every "
          f"{args.retrain_every} labels, default debounce (2 s quiet, 10 s at most), on {result['machine']}.",
          "",
          f"- webhook to refilled queue: median **{result['median_refill_seconds']:.1f} s** from the last "
          f"annotation until the step it asked for has topped the queue up to {args.queue} again ({', '.join(f'{x:.1f}' for x in refill)} s over "
          f"{args.rounds} rounds; includes the 2 s quiet spell, the pull, the retrain and the push)",
          f"- `/predict`, one pool task: median {result['predict_known_ms']['median']} ms, "
          f"p95 {result['predict_known_ms']['p95']} ms",
          f"- `/predict`, one text never seen (embedded on demand): median "
          f"{result['predict_unseen_ms']['median']} ms, p95 {result['predict_unseen_ms']['p95']} ms",
          f"- start-up to the first finished step (load + embed from the cache + first push): "
          f"{result['serve_start_seconds']} s"]
    (RESULTS / "serve_latency.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
