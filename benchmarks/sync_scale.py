"""Does a sync's cost follow what changed, not the pool? A 100k-text pool against a real local Label Studio.

    .venv/bin/python benchmarks/sync_scale.py [--n 100000] [--work /tmp/labelloop-scale] [--port 18091]
        [--repeats 3] [--skip-embed] [--skip-sync] [--profile]

The pool is BANKING77's training texts repeated and made distinct by a suffix (" (ref 12345)"), with ids.
Its vectors are not embedded here (that would be ~7 CPU-minutes of the encoder, no part of any timing):
each is the cached BANKING77 vector of its base text plus a little seeded noise, renormalised, written
once into a cache of its own under ``--work`` (reused by later runs) under the default encoder's identity.
The vectors are read through the real cache either way, which is what is measured.

1. ``embed()`` of the whole pool, fully cached: CPU seconds and peak RSS, in a fresh process each, for the
   store before segments (the main checkout's code on ``.npz`` shards; ``--before-src``) and for this tree.
2. ``labelloop sync`` (the CLI, a fresh process, as cron runs it) with neighbour smoothing off: the first
   sync (registers the pool, sends the first queue; not a bar), no-op syncs, and syncs after a scripted
   annotator labeled 100 tasks. Bars: a no-op under 3 s, 100 new labels under 15 s.

Writes benchmarks/results/sync_scale.{json,md}; ``--profile`` also prints a cProfile of each in-process
sync with new labels. Starts its own Label Studio with scripts/labelstudio.py (LABELLOOP_LS_VENV picks its venv).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
from _banking77 import RESULTS, banking77_paths

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "labelstudio.py"
BEFORE_SRC = ROOT.parent / "main" / "src"  # the checkout before segments (the main branch's worktree)

EMBED_CHILD = r"""
import json, sys, time
import pandas as pd
from labelloop.embeddings import Encoder, embed
texts = pd.read_csv(sys.argv[1])["text"].tolist()
enc = Encoder()
enc.dim
def status(field):  # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec (it would be the parent's)
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith(field)) * 1024
def rss():
    return status("VmRSS")
before = rss()
c0, t0 = time.process_time(), time.perf_counter()
x = embed(texts, enc, sys.argv[2])
cpu, wall = time.process_time() - c0, time.perf_counter() - t0
peak = status("VmHWM")
print(json.dumps({"cpu_s": cpu, "wall_s": wall, "rss_before": before, "peak_rss": peak, "shape": list(x.shape),
                  "checksum": float(x[:: max(1, len(x) // 1000)].sum())}))
"""


def load() -> str:
    return open("/proc/loadavg").read().split()[0]


def prepare(work: Path, n: int) -> tuple[pd.DataFrame, str]:
    """The pool CSV and its cache of vectors (new format, and the old .npz format for the 'before' run)."""
    from labelloop.embeddings import Encoder, default_cache_dir
    from labelloop.vectors import EmbeddingCache, text_keys

    train, _ = banking77_paths()
    base = pd.read_csv(train)
    reps = -(-n // len(base))
    frame = pd.DataFrame(
        {
            "id": [f"s{i:07d}" for i in range(n)],
            "text": [f"{base.text[i % len(base)]} (ref {i:05d})" for i in range(n)],
            "category": [base.category[i % len(base)] for i in range(n)],
        }
    )
    identity = Encoder().identity
    work.mkdir(parents=True, exist_ok=True)
    if (work / "pool.csv").exists() and (work / "cache" / identity).is_dir():
        return pd.read_csv(work / "pool.csv"), identity
    base_cache = EmbeddingCache(default_cache_dir(), identity)  # BANKING77's own vectors: read, never written
    found, base_vectors = base_cache.lookup(text_keys(base.text.tolist()))
    if not found.all():
        sys.exit(f"{(~found).sum()} BANKING77 texts are not in {base_cache.dir}: embed them first")
    rng = np.random.default_rng(0)
    vectors = np.tile(base_vectors, (reps, 1))[:n] + rng.normal(scale=0.02, size=(n, base_vectors.shape[1]))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    keys = text_keys(frame.text.tolist())
    shutil.rmtree(work / "cache", ignore_errors=True)
    cache = EmbeddingCache(work / "cache", identity)
    for start in range(0, n, 2048):  # as embed() writes them: a segment per flush, then merged
        cache.put(keys[start : start + 2048], vectors[start : start + 2048])
    cache.compact()
    old = work / "cache-npz" / identity  # the format before segments: one compacted shard, as embed() left it
    old.mkdir(parents=True, exist_ok=True)
    import hashlib

    h = hashlib.sha256(f"{keys.dtype.str}{keys.shape}{vectors.dtype.str}{vectors.shape}".encode())
    h.update(keys.tobytes())
    h.update(vectors.tobytes())
    with (old / "shard-0.npz").open("wb") as fh:
        np.savez(fh, keys=keys, vectors=vectors, checksum=np.array(h.hexdigest().encode(), dtype="S64"))
    frame[["id", "text"]].to_csv(work / "pool.csv", index=False)
    frame.to_csv(work / "truth.csv", index=False)
    return pd.read_csv(work / "pool.csv"), identity


def embed_child(src: Path, pool: Path, cache: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(src)}
    done = subprocess.run([sys.executable, "-c", EMBED_CHILD, str(pool), str(cache)], env=env,
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def measure_embed(work: Path, before_src: Path, repeats: int) -> dict:
    out: dict[str, list[dict]] = {"before (npz shards, main's code)": [], "after (segments)": [],
                                  "after, reading the old npz shards": []}
    for _ in range(repeats):
        if before_src.is_dir():
            out["before (npz shards, main's code)"].append(
                embed_child(before_src, work / "pool.csv", work / "cache-npz") | {"load": load()})
        out["after (segments)"].append(embed_child(ROOT / "src", work / "pool.csv", work / "cache") | {"load": load()})
        copy = work / "cache-npz-copy"  # reading only: nothing is written, but keep the original pristine
        shutil.rmtree(copy, ignore_errors=True)
        shutil.copytree(work / "cache-npz", copy)
        out["after, reading the old npz shards"].append(
            embed_child(ROOT / "src", work / "pool.csv", copy) | {"load": load()})
        shutil.rmtree(copy, ignore_errors=True)
    return {k: v for k, v in out.items() if v}


def write_config(work: Path, labels: list[str], cache: Path, project: str) -> Path:
    path = work / "labelloop.toml"
    path.write_text(f"""
labels = {json.dumps(labels)}
[data]
path = "pool.csv"
id_column = "id"
[model]
cache_dir = "{cache}"
neighbours = 0
[labelstudio]
project = "{project}"
[loop]
queue_target = 100
budget = 5000
retrain_every = 50
audit_fraction = 0.05
[stop]
on = ["budget"]
[state]
path = "state.db"
""")
    return path


def cli_sync(config: Path) -> dict:
    """One `labelloop sync` as cron runs it: a fresh process, timed whole (wall and its CPU seconds)."""
    before = os.times()
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "labelloop.cli", "sync", "--config", str(config)],
                          env={**os.environ, "PYTHONPATH": str(ROOT / "src")}, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - t0
    after = os.times()
    if done.returncode != 0:
        sys.exit(f"labelloop sync failed ({done.returncode}):\n{done.stderr[-3000:]}")
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "load": load(),
            "message": (done.stdout + done.stderr).strip().splitlines()[-1][:300]}


def in_process(sync, cfg, profile: bool = False) -> dict:
    """One sync in this process: what a sync costs beyond starting Python and importing its libraries.
    ``profile`` prints where its time went (cProfile, by own time)."""
    import cProfile
    import pstats

    prof = cProfile.Profile()
    before, t0 = os.times(), time.perf_counter()
    if profile:
        prof.enable()
    report = sync(cfg)
    prof.disable()
    after = os.times()
    if profile:
        pstats.Stats(prof).sort_stats("tottime").print_stats(25)
    cpu = (after.user - before.user) + (after.system - before.system)
    return {"wall_s": round(time.perf_counter() - t0, 2), "cpu_s": round(cpu, 2), "load": load(),
            "message": report.message[:300]}


def import_cost(repeats: int) -> list[dict]:
    """CPU seconds of a fresh Python importing what `labelloop sync` imports: the floor of any CLI sync."""
    code = ("import os, labelloop.cli, labelloop.sync, labelloop.cli.sync, label_studio_sdk.client; "
            "t = os.times(); print(t.user + t.system)")
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return [{"cpu_s": round(float(subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                                 text=True, check=True).stdout), 2), "load": load()}
            for _ in range(repeats)]


def label_waiting(sdk, project_id: int, truth: dict[str, str], limit: int) -> int:
    n = 0
    for t in sdk.tasks.list(project=project_id, fields="all", page_size=1000,
                            include="id,data,total_annotations,cancelled_annotations"):
        task = t if isinstance(t, dict) else t.model_dump()
        if task.get("total_annotations") or task.get("cancelled_annotations"):
            continue
        sdk.annotations.create(id=task["id"], result=[{
            "from_name": "label", "to_name": "text", "type": "choices",
            "value": {"choices": [truth[task["data"]["labelloop_id"]]]}}])
        n += 1
        if n >= limit:
            break
    return n


def measure_sync(work: Path, port: int, repeats: int, profile: bool, use_env: bool) -> dict:
    from labelloop.config import load_config
    from labelloop.store import Store

    truth_frame = pd.read_csv(work / "truth.csv")
    truth = dict(zip(truth_frame["id"], truth_frame["category"], strict=True))
    run = work / f"run-{secrets.token_hex(3)}"
    run.mkdir()
    (run / "pool.csv").symlink_to(work / "pool.csv")
    config = write_config(run, sorted(set(truth.values())), work / "cache", f"scale-{run.name}")
    env = dict(os.environ)
    if not use_env:
        env.update(LABEL_STUDIO_API_KEY=secrets.token_hex(20), LABEL_STUDIO_PASSWORD=secrets.token_urlsafe(12))
        done = subprocess.run([sys.executable, str(SCRIPT), "start", "--port", str(port)], env=env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            sys.exit(f"could not start Label Studio:\n{done.stderr[-3000:]}")
        os.environ.update(LABEL_STUDIO_URL=f"http://127.0.0.1:{port}",
                          LABEL_STUDIO_API_KEY=env["LABEL_STUDIO_API_KEY"])
    from label_studio_sdk import LabelStudio

    sdk = LabelStudio(base_url=os.environ["LABEL_STUDIO_URL"], api_key=os.environ["LABEL_STUDIO_API_KEY"])
    import labelloop.head

    one = hasattr(labelloop.head, "one_blas_thread")
    result: dict = {"first": None, "noop": [], "labels_100": [], "head_blas_threads": "1" if one else "default"}
    try:
        result["first"] = cli_sync(config)
        print("first sync", result["first"], flush=True)
        with Store.open_existing(run / "state.db") as store:
            project_id = int(store.get("project_id"))
        for _ in range(repeats):
            result["noop"].append(cli_sync(config))
            print("no-op sync", result["noop"][-1], flush=True)
        for _ in range(repeats):
            labeled = label_waiting(sdk, project_id, truth, 100)
            result["labels_100"].append(cli_sync(config) | {"labeled": labeled})
            print("after 100 labels", result["labels_100"][-1], flush=True)
            result["noop"].append(cli_sync(config))
            print("no-op sync", result["noop"][-1], flush=True)
        from labelloop.sync import sync

        cfg = load_config(config)
        for kind in ["noop"] * repeats + ["labels_100"] * repeats:  # the same, imports excluded
            labeled = label_waiting(sdk, project_id, truth, 100) if kind == "labels_100" else 0
            timed = in_process(sync, cfg, profile=profile and kind == "labels_100")
            result[f"{kind}_in_process"] = result.get(f"{kind}_in_process", []) + [timed]
            print(kind, "in process", result[f"{kind}_in_process"][-1], labeled, flush=True)
    finally:
        if not use_env:
            subprocess.run([sys.executable, str(SCRIPT), "stop", "--port", str(port)], env=env,
                           capture_output=True, check=False)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--work", type=Path, default=Path("/tmp/labelloop-scale"))
    parser.add_argument("--port", type=int, default=18091)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--before-src", type=Path, default=BEFORE_SRC)
    parser.add_argument("--skip-embed", action="store_true")
    parser.add_argument("--skip-sync", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--use-env", action="store_true", help="use the server in $LABEL_STUDIO_URL")
    parser.add_argument("--markdown-only", action="store_true", help="rewrite the .md from the .json")
    args = parser.parse_args()

    if args.markdown_only:
        r = json.loads((RESULTS / "sync_scale.json").read_text())
        (RESULTS / "sync_scale.md").write_text(markdown(r) + "\n")
        print(markdown(r))
        return
    work = args.work / str(args.n)
    t0 = time.process_time()
    frame, identity = prepare(work, args.n)
    print(f"pool of {len(frame):,} texts and its cache ready under {work} ({time.process_time() - t0:.1f} CPU s)")
    out_json = RESULTS / "sync_scale.json"
    result = json.loads(out_json.read_text()) if out_json.exists() else {}
    result |= {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "pool": len(frame),
               "encoder_identity": identity}
    if not args.skip_embed:
        result["embed_fully_cached"] = measure_embed(work, args.before_src, args.repeats)
        print(json.dumps(result["embed_fully_cached"], indent=1))
    if not args.skip_sync:
        result["imports"] = import_cost(args.repeats)
        result["sync"] = measure_sync(work, args.port, args.repeats, args.profile, args.use_env)
    RESULTS.mkdir(exist_ok=True)
    out_json.write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "sync_scale.md").write_text(markdown(result) + "\n")
    print(markdown(result))


def markdown(r: dict) -> str:
    def med(rows: list[dict], key: str) -> float:
        return statistics.median(x[key] for x in rows)

    lines = [f"Pool of {r['pool']:,} texts ({r['machine']}); medians, load average (1 min) beside each."]
    if "embed_fully_cached" in r:
        lines += ["", "`embed()` of the whole pool, every vector cached (a fresh process each):", "",
                  "| store | CPU s | wall s | peak RSS MB | RSS before MB | load |", "|---|---:|---:|---:|---:|---|"]
        for name, rows in r["embed_fully_cached"].items():
            lines.append(f"| {name} | {med(rows, 'cpu_s'):.2f} | {med(rows, 'wall_s'):.2f} | "
                         f"{med(rows, 'peak_rss') / 1e6:.0f} | {med(rows, 'rss_before') / 1e6:.0f} | "
                         f"{', '.join(x['load'] for x in rows)} |")
    if "sync" in r:
        s = r["sync"]
        lines += ["", "`labelloop sync` (the CLI in a fresh process, imports included), smoothing off:", "",
                  "| sync | runs | wall s (median, max) | CPU s (median) | bar | load |", "|---|---:|---|---:|---|---|"]
        rows = [("first (registers the pool, sends 100)", [s["first"]], None),
                ("no-op", s["noop"], 3.0), ("after 100 new labels (retrain, select, send 100)", s["labels_100"], 15.0),
                ("no-op, in process (imports excluded)", s.get("noop_in_process", []), 3.0),
                ("after 100 new labels, in process", s.get("labels_100_in_process", []), 15.0)]
        for name, runs, bar in rows:
            if not runs:
                continue
            walls = [x["wall_s"] for x in runs]
            verdict = "–" if bar is None else (
                f"< {bar:g} s: median {'met' if statistics.median(walls) < bar else 'NOT met'}, "
                f"every run {'met' if max(walls) < bar else 'NOT met'}")
            lines.append(f"| {name} | {len(runs)} | {statistics.median(walls):.2f}, {max(walls):.2f} | "
                         f"{med(runs, 'cpu_s'):.2f} | {verdict} | {', '.join(x['load'] for x in runs)} |")
    if "imports" in r:
        lines += ["", f"Of a CLI sync's CPU, a fresh Python importing labelloop's CLI, its sync and the Label Studio "
                  f"SDK takes {med(r['imports'], 'cpu_s'):.2f} CPU s (median of {len(r['imports'])}; load "
                  f"{', '.join(x['load'] for x in r['imports'])}) before any work: mostly the SDK and pandas "
                  f"(scikit-learn loads only when a head is fitted)."]
    if "before_sync" in r:
        b = r["before_sync"]
        lines += ["", f"Before (the main checkout's code, same pool, same server, its .npz cache): first sync "
                  f"{b[0]['wall_s']:.1f} s wall, {b[0]['cpu_s']:.1f} CPU s; no-op CLI syncs "
                  f"{statistics.median(x['wall_s'] for x in b[1:]):.2f} s wall, "
                  f"{statistics.median(x['cpu_s'] for x in b[1:]):.2f} CPU s (median of {len(b) - 1}; load "
                  f"{', '.join(x['load'] for x in b[1:])})."]
    lines += ["", "Where a sync's time goes (cProfile of in-process syncs). A no-op now reads the data file "
              "(pandas' CSV parser), hashes each text once (SHA-256, for the cache keys and the pool fingerprint), "
              "and asks Label Studio what changed: no vector is read, the items table is not read, the texts "
              "are not hashed a second time. A sync with new labels also reads the pool's vectors (memory-mapped, "
              "≈0.3 CPU s), fits the head, scores the whole pool and clusters candidates (learner/strategies), "
              "and, every other round, fits 5 more heads for the suspected label errors. The fits dominated under "
              "load (20 of 51 s in lbfgs at load 6): OpenBLAS's 2 threads spin-wait at every lbfgs step when the "
              "cores are busy; head fits now run on one BLAS thread (benchmarks/results/head_threads*.md; "
              f"this run's fits: {r.get('sync', {}).get('head_blas_threads', 'default')} thread(s)). The in-process rows "
              "with new labels ran after the CLI ones, later in the campaign (more labels to fit, suspects sent "
              "each time), hence their larger cost. The embed() table comes from an earlier run of this script "
              "(embed() did not change since)."]
    lines += ["", "Method: the pool is BANKING77's training texts made distinct by a suffix; its vectors are each "
              "base text's cached vector plus seeded noise (no encoder run, none of it timed), written into a "
              "cache of their own. Wall times on this shared 2-core machine follow the load average more than the "
              "code; CPU seconds are the steadier figure. Label Studio is a local server on the same cores."]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
