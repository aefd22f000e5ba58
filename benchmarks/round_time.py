"""Seconds per active-learning round on BANKING77 at a given number of labels.

One round = train the head + score the unlabeled pool + select a batch (the loop's
own cost, without embedding), timed in a real campaign of the default strategy on the
rounds from ``--labels`` on. Writes ``results/round_time.{json,md}``.

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
from labelloop.features import DEFAULT_SMOOTHING
from labelloop.simulate import simulate
from labelloop.strategies import DEFAULT_STRATEGY


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--strategy", default=DEFAULT_STRATEGY)
    args = parser.parse_args()

    train_path, test_path = banking77_paths()
    pool = load_pool(train_path, label_column="category", require_labels=True)
    test = load_pool(test_path, label_column="category", require_labels=True)
    classes = pool.label_set
    y, yt = pool.label_array(classes), test.label_array(classes)
    encoder = Encoder()
    X = embed(pool.texts, encoder, default_cache_dir(), progress=True)
    Xt = embed(test.texts, encoder, default_cache_dir(), progress=True)
    # Once per pool, not per round: neighbour smoothing of pool and test features.
    t0 = time.perf_counter()
    X, Xt = DEFAULT_SMOOTHING(X), DEFAULT_SMOOTHING(Xt, X)
    smoothing_seconds = time.perf_counter() - t0
    # Rounds of a real campaign: the labels the strategy chose are harder to fit than random ones.
    res = simulate(X, y, Xt, yt, len(classes), strategy=args.strategy, initial=100, batch_size=args.batch_size,
                   budget=args.labels + args.repeats * args.batch_size, ceiling={"accuracy": 0.0, "macro_f1": 0.0})
    rows = [{"n_labeled": r["n_labeled"], "train": r["seconds_train"], "score": r["seconds_score"],
             "select": r["seconds_select"], "total": r["seconds"]}
            for r in res["rounds"] if args.labels <= r["n_labeled"] < args.labels + args.repeats * args.batch_size]
    med = {k: float(np.median([r[k] for r in rows])) for k in ("train", "score", "select", "total")}
    worst = float(max(r["total"] for r in rows))
    result = {"labels": args.labels, "pool": len(y), "classes": len(classes), "strategy": args.strategy,
              "features": str(DEFAULT_SMOOTHING), "smoothing_seconds_once": smoothing_seconds,
              "batch_size": args.batch_size, "rounds": rows, "median": med, "max_total": worst}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "round_time.json").write_text(json.dumps(result, indent=2) + "\n")
    table = "\n".join([
        f"One round on BANKING77 at {args.labels} labels ({len(y)} pool texts, {len(classes)} classes, "
        f"{args.strategy}, batch {args.batch_size}, labels chosen by the strategy); median of {len(rows)} rounds, "
        "seconds:",
        "",
        "| train | score | select | total | slowest total |",
        "|---:|---:|---:|---:|---:|",
        f"| {med['train']:.2f} | {med['score']:.3f} | {med['select']:.2f} | {med['total']:.2f} | {worst:.2f} |",
        "",
        f"Once per pool, before the first round: {DEFAULT_SMOOTHING} of pool and test features, "
        f"{smoothing_seconds:.1f} s.",
    ])
    (RESULTS / "round_time.md").write_text(table + "\n")
    print(table)


if __name__ == "__main__":
    main()
