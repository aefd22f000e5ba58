"""Seconds per active-learning round on BANKING77 at a given number of labels.

One round = train the head + score the unlabeled pool + select a batch (the loop's
own cost, without embedding). Labeled rows are a random sample; the strategy is the
default. Writes ``results/round_time.{json,md}``.

    python benchmarks/round_time.py [--labels 2000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from _banking77 import RESULTS, banking77_paths
from labelloop.data import load_pool
from labelloop.embeddings import Encoder, default_cache_dir, embed
from labelloop.learner import query, train
from labelloop.strategies import DEFAULT_STRATEGY, get_strategy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--strategy", default=DEFAULT_STRATEGY)
    args = parser.parse_args()

    train_path, _ = banking77_paths()
    pool = load_pool(train_path, label_column="category", require_labels=True)
    classes = pool.label_set
    y = pool.label_array(classes)
    X = embed(pool.texts, Encoder(), default_cache_dir(), progress=True)
    strategy = get_strategy(args.strategy)

    rows = []
    for rep in range(args.repeats):
        rng = np.random.default_rng(rep)
        labeled = rng.choice(len(y), size=args.labels, replace=False)
        unlabeled = np.setdiff1d(np.arange(len(y)), labeled)
        t0 = time.perf_counter()
        head = train(X, y, labeled, len(classes), seed=rep)
        t_train = time.perf_counter() - t0
        q = query(head, X, unlabeled, strategy, args.batch_size, rng)
        rows.append({"train": t_train, "score": q.seconds_score, "select": q.seconds_select,
                     "total": t_train + q.seconds_score + q.seconds_select})
    med = {k: float(np.median([r[k] for r in rows])) for k in rows[0]}
    worst = float(max(r["total"] for r in rows))
    result = {"labels": args.labels, "pool": len(y), "classes": len(classes), "strategy": args.strategy,
              "batch_size": args.batch_size, "repeats": rows, "median": med, "max_total": worst}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "round_time.json").write_text(json.dumps(result, indent=2) + "\n")
    table = "\n".join([
        f"One round on BANKING77 at {args.labels} labels ({len(y)} pool texts, {len(classes)} classes, "
        f"{args.strategy}, batch {args.batch_size}); median of {args.repeats}, seconds:",
        "",
        "| train | score | select | total | slowest total |",
        "|---:|---:|---:|---:|---:|",
        f"| {med['train']:.2f} | {med['score']:.3f} | {med['select']:.2f} | {med['total']:.2f} | {worst:.2f} |",
    ])
    (RESULTS / "round_time.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
