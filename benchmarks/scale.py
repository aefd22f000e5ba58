"""One active-learning round on synthetic pools of 10k, 100k and 1M 384-d vectors: CPU-seconds, wall, peak RSS.

One round = train the head on 2,000 labels, score every unlabeled row, select 100 (the default
strategy); neighbour smoothing is off (it is quadratic in the pool; the neighbour index is
another piece of work). Each size runs in its own process, which builds the pool, notes its
resident memory, resets the peak (``/proc/self/clear_refs``) and reports the round's peak
(``VmHWM``) above that baseline. Writes ``results/scale.{json,md}``.

Synthetic pools shaped like real embeddings: 77 classes whose centres share one common direction
(real sentence embeddings are anisotropic), each row ``√w · centre + √(1−w) · noise`` with random
unit noise, so that the mean cosine of two rows of one class is ``w`` and of two classes ``b``;
``w`` and ``b`` are measured on the cached BANKING77 vectors of the default encoder (0.585 and
0.214 when written). The noise is isotropic where real noise is not, so the classes are easier
than BANKING77's: these pools measure time and memory, not label efficiency.

    python benchmarks/scale.py [--sizes 10000,100000,1000000]
    python benchmarks/scale.py --write-parquet DIR --rows 1000000   # pool.parquet + test.parquet for the CLI
    python benchmarks/scale.py --cli DIR      # `labelloop simulate --embedding-column emb` on them: scale_cli.{json,md}
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from _banking77 import RESULTS, banking77_paths

DIM, CLASSES, LABELS, BATCH = 384, 77, 2000, 100
GEN_CHUNK = 65_536


def banking77_cosines() -> tuple[float, float]:
    """Mean cosine of two BANKING77 train texts of one intent, and of two intents (cached vectors)."""
    from labelloop.data import load_pool
    from labelloop.embeddings import Encoder, default_cache_dir, embed

    train, _ = banking77_paths()
    pool = load_pool(train, label_column="category", require_labels=True)
    X = embed(pool.texts, Encoder(), default_cache_dir())
    return pair_cosines(X, pool.label_array(pool.label_set))


def pair_cosines(X: np.ndarray, y: np.ndarray, rows: int = 10_000) -> tuple[float, float]:
    """(within-class, between-class) mean cosine over every pair of the first ``rows`` rows."""
    X, y = X[:rows], y[:rows]
    S = X @ X.T
    same = y[:, None] == y[None, :]
    np.fill_diagonal(same, False)
    return float(S[same].mean()), float(S[y[:, None] != y[None, :]].mean())


def synthetic(
    n: int, within: float, between: float, seed: int, dim: int = DIM, k: int = CLASSES
) -> tuple[np.ndarray, np.ndarray]:
    """``(n, dim)`` unit float32 rows and their class, built in chunks (peak: the matrix plus a chunk)."""
    g = np.random.default_rng(seed)
    rho = between / within  # centres √ρ · common + √(1−ρ) · own: two centres have cosine ρ = b / w
    common = _unit(g.normal(size=(1, dim)))
    centres = _unit(math.sqrt(rho) * common + math.sqrt(1 - rho) * _unit(g.normal(size=(k, dim))))
    y = g.integers(k, size=n)
    X = np.empty((n, dim), dtype=np.float32)
    for s in range(0, n, GEN_CHUNK):
        part = y[s : s + GEN_CHUNK]
        noise = _unit(g.normal(size=(len(part), dim)).astype(np.float32))
        X[s : s + len(part)] = _unit(math.sqrt(within) * centres[part] + math.sqrt(1 - within) * noise)
    return X, y


def _unit(a: np.ndarray) -> np.ndarray:
    return a / np.linalg.norm(a, axis=1, keepdims=True)


def _status(key: str) -> int:
    """A ``/proc/self/status`` memory figure in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(key)


def child(n: int, within: float, between: float, strategy: str, seed: int) -> dict[str, object]:
    """One round on an n-row pool, in this process; memory figures relative to the built pool."""
    from labelloop.learner import query, train
    from labelloop.simulate import stratified_sample
    from labelloop.strategies import get_strategy

    X, y = synthetic(n, within, between, seed)
    labeled = stratified_sample(y, LABELS, np.random.default_rng(seed))
    unlabeled = np.setdiff1d(np.arange(n), labeled)
    strat = get_strategy(strategy)
    baseline = _status("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS := current RSS
    c0, w0 = time.process_time(), time.perf_counter()
    head = train(X, y, labeled, CLASSES, seed=seed)
    c1, w1 = time.process_time(), time.perf_counter()
    q = query(head, X, unlabeled, strat, BATCH, np.random.default_rng(seed), y=y, labeled=labeled)
    c2, w2 = time.process_time(), time.perf_counter()
    peak = _status("VmHWM")
    return {
        "n": n,
        "matrix_bytes": X.nbytes,
        "cpu": {"train": c1 - c0, "query": c2 - c1, "round": c2 - c0},
        "wall": {"train": w1 - w0, "score": q.seconds_score, "select": q.seconds_select, "round": w2 - w0},
        "rss_baseline_bytes": baseline,
        "rss_peak_bytes": peak,
        "rss_round_extra_bytes": peak - baseline,
        "selected": len(q.indices),
        "synthetic_cosines": pair_cosines(X, y, 4000),
    }


def growth(rows: list[dict], path: tuple[str, ...]) -> list[float]:
    """log(value ratio) / log(size ratio) between consecutive sizes: 1 is linear in the pool."""

    def get(r: dict) -> float:
        v: object = r
        for p in path:
            v = v[p]  # type: ignore[index]
        return float(v)  # type: ignore[arg-type]

    return [
        round(math.log(max(get(b), 1e-9) / max(get(a), 1e-9)) / math.log(b["n"] / a["n"]), 2)
        for a, b in itertools.pairwise(rows)
    ]


def write_parquet(folder: Path, rows: int, test_rows: int, within: float, between: float) -> None:
    """pool.parquet and test.parquet (text, label, emb) for ``labelloop simulate --embedding-column emb``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    X, y = synthetic(rows + test_rows, within, between, seed=0)
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("pool", slice(0, rows)), ("test", slice(rows, rows + test_rows))):
        Xp, yp = X[part], y[part]
        emb = pa.FixedSizeListArray.from_arrays(pa.array(Xp.ravel()), DIM)
        table = pa.table({"text": [f"{name} text {i}" for i in range(len(yp))], "label": [f"intent {c}" for c in yp],
                          "emb": emb})
        pq.write_table(table, folder / f"{name}.parquet")
        print(f"wrote {folder / f'{name}.parquet'} ({len(yp)} rows)")


def cli_check(folder: Path, budget: int) -> None:
    """Run ``labelloop simulate`` on ``folder``'s Parquet files in a child; write its rounds to scale_cli.{json,md}."""
    args = ["simulate", "--train", str(folder / "pool.parquet"), "--test", str(folder / "test.parquet"),
            "--embedding-column", "emb", "--neighbours", "0", "--initial", "100", "--batch-size", "100",
            "--budget", str(budget), "--initial-strategy", "random", "--out", str(folder / "results.json")]
    load = os.getloadavg()
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "from labelloop.cli import main; main()", *args], check=True,
                   env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    res = json.loads((folder / "results.json").read_text())
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    keys = ("round", "n_labeled", "seconds", "cpu_seconds", "seconds_train", "seconds_score", "seconds_select")
    out = {"command": "labelloop " + " ".join(args), "n_pool": res["n_pool"], "model": res["model"],
           "full_pool": res["full_pool"], "rounds": [{k: r[k] for k in keys} for r in res["rounds"]],
           "run_wall_seconds": wall, "max_rss_bytes": peak, "load_average_before": load,
           "load_average_after": load_after, "cpus": os.cpu_count()}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale_cli.json").write_text(json.dumps(out, indent=2) + "\n")
    md = [f"`labelloop simulate --embedding-column emb` on a {res['n_pool']:,}-row Parquet pool of synthetic "
          f"{DIM}-d vectors (`benchmarks/scale.py --write-parquet`; smoothing off, random initial 100, batches of "
          f"100). Whole run {wall:.0f} s wall (reading, ceiling on {res['full_pool']['n']:,} rows, rounds), peak RSS "
          f"{peak / 2**30:.2f} GB; {os.cpu_count()} CPUs, load average {load[0]:.2f} before, {load_after[0]:.2f} "
          "after. Per round (train + score + select):", "",
          "| round | labels | seconds (wall) | CPU-seconds | train | score | select |", "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in out["rounds"]:
        md.append(f"| {r['round']} | {r['n_labeled']} | {r['seconds']:.2f} | {r['cpu_seconds']:.2f} | "
                  f"{r['seconds_train']:.2f} | {r['seconds_score']:.2f} | {r['seconds_select']:.2f} |")
    (RESULTS / "scale_cli.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--strategy", default="margin-kmeans")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write-parquet", type=Path, help="write pool.parquet/test.parquet here and stop")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--test-rows", type=int, default=10_000)
    parser.add_argument("--cli", type=Path, help="run labelloop simulate on DIR/pool.parquet and DIR/test.parquet")
    parser.add_argument("--budget", type=int, default=500)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cosines", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        within, between = map(float, args.cosines.split(","))
        print(json.dumps(child(args.child, within, between, args.strategy, args.seed)))
        return
    if args.cli:
        cli_check(args.cli, args.budget)
        return
    within, between = banking77_cosines()
    print(f"BANKING77 cosines: within {within:.3f}, between {between:.3f}")
    if args.write_parquet:
        write_parquet(args.write_parquet, args.rows, args.test_rows, within, between)
        return
    load = os.getloadavg()
    rows = []
    for n in map(int, args.sizes.split(",")):
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(n), "--cosines", f"{within},{between}",
             "--strategy", args.strategy, "--seed", str(args.seed)],
            check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{n:>9} rows: round {r['cpu']['round']:.2f} CPU-s, {r['wall']['round']:.2f} s wall, "
              f"peak +{r['rss_round_extra_bytes'] / 2**20:.0f} MB over the {r['matrix_bytes'] / 2**20:.0f} MB matrix")
    load_after = os.getloadavg()
    result = {
        "what": f"one round: train on {LABELS} labels, score every unlabeled row, select {BATCH} ({args.strategy})",
        "dim": DIM, "classes": CLASSES, "features": "none (neighbour smoothing off)",
        "banking77_cosines": {"within": within, "between": between},
        "load_average_before": load, "load_average_after": load_after, "cpus": os.cpu_count(),
        "max_rss_children_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
        "rows": rows,
        "growth_exponent": {
            "cpu_train": growth(rows, ("cpu", "train")), "cpu_query": growth(rows, ("cpu", "query")),
            "cpu_round": growth(rows, ("cpu", "round")), "wall_score": growth(rows, ("wall", "score")),
            "wall_select": growth(rows, ("wall", "select")), "rss_round_extra": growth(rows, ("rss_round_extra_bytes",)),
        },
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "scale.json").write_text(json.dumps(result, indent=2) + "\n")
    md = [
        f"One round on synthetic {DIM}-d pools ({CLASSES} classes shaped like BANKING77: mean cosine within a class "
        f"{within:.3f}, between classes {between:.3f}): train on {LABELS} labels, score every unlabeled row, select "
        f"{BATCH} ({args.strategy}, smoothing off). {os.cpu_count()} CPUs, load average "
        f"{load[0]:.2f} before and {load_after[0]:.2f} after (shared machine: wall times are noisy, CPU-seconds less).",
        "",
        "| pool | CPU-s train | CPU-s score+select | CPU-s round | wall round | wall score | wall select "
        "| matrix | round peak above it | peak / matrix |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        md.append(
            f"| {r['n']:,} | {r['cpu']['train']:.2f} | {r['cpu']['query']:.2f} | {r['cpu']['round']:.2f} "
            f"| {r['wall']['round']:.2f} | {r['wall']['score']:.2f} | {r['wall']['select']:.2f} "
            f"| {r['matrix_bytes'] / 2**20:.0f} MB | {r['rss_round_extra_bytes'] / 2**20:.0f} MB "
            f"| {r['rss_peak_bytes'] / r['matrix_bytes']:.2f} |"
        )
    g = result["growth_exponent"]
    md += ["", "Growth exponent between consecutive sizes (1 = linear in the pool): "
           + "; ".join(f"{k} {', '.join(map(str, v))}" for k, v in g.items()) + "."]
    (RESULTS / "scale.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
