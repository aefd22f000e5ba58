"""Rare classes: how soon does each strategy find a class that is 1 % of the pool, and how well does it learn it?

An imbalanced BANKING77 subsample: the 77 intents get pool sizes falling geometrically from 130 texts to 13
(the 10 smallest intents hold 1 % of the pool or less each; intents are assigned to sizes at random, seed 12345),
the test set stays BANKING77's balanced one (40 per intent), so every intent's recall counts alike. For each
strategy and seed: labels until every intent has one label, the recall of the 10 rarest intents and macro-F1
at each budget. Features are labelloop's default (neighbour-smoothed vectors of the default encoder).

    python benchmarks/rare_classes.py [--seeds 0,1,2] [--strategies margin-kmeans,random]

Writes benchmarks/results/rare_classes.{json,md}. Reads BANKING77 from ../shared (never copied).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from _banking77 import RESULTS, banking77_paths

from labelloop.data import load_pool
from labelloop.featurize import featurize
from labelloop.simulate import simulate

RARE = 10


def imbalanced_rows(y: np.ndarray, n_classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    sizes = np.round(np.geomspace(130, 13, n_classes)).astype(int)
    order = rng.permutation(n_classes)  # which intent gets which size
    rows = [rng.choice(np.flatnonzero(y == c), size=min(sizes[k], int((y == c).sum())), replace=False)
            for k, c in enumerate(order)]
    return np.sort(np.concatenate(rows)), order[-RARE:]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--strategies", default="margin-kmeans,random")
    ap.add_argument("--budget", type=int, default=1000)
    args = ap.parse_args()
    train_path, test_path = banking77_paths()
    train = load_pool(train_path, label_column="category", require_labels=True)
    test = load_pool(test_path, label_column="category", require_labels=True)
    classes = train.label_set
    y, yt = train.label_array(classes), test.label_array(classes)
    rows, rare = imbalanced_rows(y, len(classes), np.random.default_rng(12345))
    f = featurize([train.texts[i] for i in rows], test.texts, progress=True)
    X, Xt, yp = f.pool, f.others[0], y[rows]
    shares = np.bincount(yp, minlength=len(classes)) / len(yp)
    result: dict = {"pool": len(yp), "rare_classes": [classes[c] for c in rare],
                    "rare_share_max": float(shares[rare].max()), "strategies": {}}
    lines = ["# Rare classes: an imbalanced BANKING77 subsample (10 intents at ≤ 1 % of the pool)", "",
             f"Pool {len(yp)} texts, intents of 130 down to 13 texts (rarest 10 at ≤ {shares[rare].max():.1%} "
             f"each); balanced BANKING77 test set. Mean over seeds {args.seeds}.", "",
             "| strategy | every intent seen at (per seed) | rare-intent recall @300 | @500 | @1000 | "
             "macro-F1 @300 | @500 | @1000 |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for name in args.strategies.split(","):
        runs = [simulate(X, yp, Xt, yt, len(classes), strategy=name, initial=100, batch_size=100,
                         budget=args.budget, seed=int(s)) for s in args.seeds.split(",")]
        seen_at = [next((r["n_labeled"] for r in run["rounds"] if r["classes_seen"] >= len(classes)), None)
                   for run in runs]

        def at(n: int, key: str, runs=runs) -> float:
            vals = []
            for run in runs:
                r = next(r for r in run["rounds"] if r["n_labeled"] >= n)
                vals.append(np.mean([r["class_recall"][c] for c in rare]) if key == "rare" else r[key])
            return float(np.mean(vals))

        result["strategies"][name] = {
            "every_class_seen_at": seen_at,
            "rare_recall": {n: at(n, "rare") for n in (300, 500, 1000)},
            "macro_f1": {n: at(n, "macro_f1") for n in (300, 500, 1000)},
        }
        s = result["strategies"][name]
        lines.append(f"| {name} | {seen_at} | " + " | ".join(f"{s['rare_recall'][n]:.3f}" for n in (300, 500, 1000))
                     + " | " + " | ".join(f"{s['macro_f1'][n]:.3f}" for n in (300, 500, 1000)) + " |")
        print(lines[-1], flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "rare_classes.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "rare_classes.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
