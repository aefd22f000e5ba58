"""A head fit with BLAS on one thread vs the library default (one thread per core), side by side.

A fit is hundreds of small lbfgs steps on a (labels × 384) matrix and 77 classes. The question is
what a second BLAS thread buys there, on an idle machine and on a busy one (a sync on a shared
server): labelloop fits with one (``labelloop.head.one_blas_thread``). Real vectors: BANKING77
training texts (cached default-encoder vectors, neighbour-smoothed), the first N rows of a seeded
permutation; the two settings alternate within each repeat so that both see the same load.

    python benchmarks/head_threads.py [--labels 300,2000] [--repeats 3] [--name head_threads]

Writes benchmarks/results/<name>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import numpy as np
from _banking77 import RESULTS, banking77_paths
from threadpoolctl import threadpool_info, threadpool_limits

from labelloop.data import load_pool
from labelloop.embeddings import Encoder, default_cache_dir, embed
from labelloop.features import DEFAULT_SMOOTHING
from labelloop.head import Head


def fit_once(X: np.ndarray, y: np.ndarray, k: int, one_thread: bool) -> dict:
    load = os.getloadavg()[0]
    wall, cpu = time.perf_counter(), time.process_time()
    if one_thread:
        Head(k).fit(X, y)  # labelloop's own setting
    else:
        _fit_unlimited(X, y, k)
    return {"wall_s": time.perf_counter() - wall, "cpu_s": time.process_time() - cpu, "load": round(load, 2)}


def _fit_unlimited(X: np.ndarray, y: np.ndarray, k: int) -> None:
    """Head.fit with its one-thread limit swapped for no limit (the library default)."""
    import labelloop.head as head_module

    saved = head_module.one_blas_thread
    head_module.one_blas_thread = lambda: threadpool_limits(limits=None, user_api="blas")  # type: ignore[assignment]
    try:
        Head(k).fit(X, y)
    finally:
        head_module.one_blas_thread = saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", default="300,2000")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--name", default="head_threads")
    args = parser.parse_args()
    train, _ = banking77_paths()
    pool = load_pool(train, label_column="category", require_labels=True)
    F = DEFAULT_SMOOTHING(embed(pool.texts, Encoder(), default_cache_dir()))
    y, k = pool.label_array(pool.label_set), len(pool.label_set)
    order = np.random.default_rng(0).permutation(len(F))
    default_threads = max(lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas")
    runs: dict[str, dict[str, list[dict]]] = {}
    for n in [int(v) for v in args.labels.split(",")]:
        rows = order[:n]
        runs[str(n)] = {"default": [], "one": []}
        for _ in range(args.repeats):
            runs[str(n)]["default"].append(fit_once(F[rows], y[rows], k, one_thread=False))
            runs[str(n)]["one"].append(fit_once(F[rows], y[rows], k, one_thread=True))
        print(n, {s: [round(r["wall_s"], 2) for r in v] for s, v in runs[str(n)].items()}, flush=True)
    report = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs", "default_blas_threads": default_threads,
              "runs": runs}
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=1))
    (RESULTS / f"{args.name}.md").write_text(markdown(report))
    print(markdown(report))


def markdown(r: dict) -> str:
    lines = [f"# Head fit: BLAS on one thread vs the default ({r['default_blas_threads']} threads)", "",
             f"{r['machine']}; BANKING77 smoothed vectors, 77 classes, LR C=10; medians of the repeats (the two "
             "settings alternate within each repeat). Load average (1 min) at each fit's start in the last column.",
             "", "| labels | BLAS threads | wall s (median) | CPU s (median) | loads |", "|---:|---|---:|---:|---|"]
    for n, sides in r["runs"].items():
        for side, runs in sides.items():
            threads = "1" if side == "one" else f"{r['default_blas_threads']} (default)"
            lines.append(f"| {int(n):,} | {threads} | {statistics.median(x['wall_s'] for x in runs):.2f} | "
                         f"{statistics.median(x['cpu_s'] for x in runs):.2f} | "
                         f"{', '.join(str(x['load']) for x in runs)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
