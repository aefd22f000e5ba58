"""Should the head weight each labeled text by its copies in the data? Measured on BANKING77 with synthetic copies.

A backlog with identical texts is loaded as one item per distinct text carrying its copy count. The head can
learn from the distinct texts (unweighted, what labelloop does) or weight each by its copies
(``sample_weight=copies``). BANKING77 has no exact duplicates, so copies are synthesized, two ways:

* ``iid``: each text gets 1 + Zipf(2) copies (capped at 50), independent of its text and intent;
* ``by-intent``: intents get a Zipf popularity; a text's copies are 1 + Poisson(popularity), so frequent
  intents are frequent in the backlog and, by assumption, in future traffic too.

For each scenario, seed and label count, the same random sample of distinct texts is labeled and two heads are
fitted (unweighted, weighted). Measured: accuracy on the BANKING77 test set as it is (distinct texts), accuracy
on the test set weighted like future traffic (``by-intent``: each test text weighted by its intent's
popularity; ``iid``: by fresh iid copies), and the share of *backlog rows* labeled right (labeled rows count
as right, the rest by the head's prediction, each row once).

    python benchmarks/duplicate_weighting.py                  # seeds 0-2, 300 and 1000 labels
    python benchmarks/duplicate_weighting.py --seeds 0 --labels 300
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
from _banking77 import RESULTS, banking77_paths

from labelloop.data import load_pool
from labelloop.embeddings import Encoder, default_cache_dir, embed
from labelloop.features import DEFAULT_SMOOTHING
from labelloop.head import Head


def synthetic_copies(kind: str, y: np.ndarray, n_classes: int, rng: np.random.Generator) -> tuple[np.ndarray,
                                                                                                  np.ndarray]:
    """(copies per pool text, traffic weight per class) for a scenario."""
    if kind == "iid":
        return 1 + np.minimum(rng.zipf(2.0, size=len(y)) - 1, 49), np.ones(n_classes)
    popularity = 1.0 / np.arange(1, n_classes + 1) ** 1.0
    popularity = rng.permutation(popularity / popularity.mean() * 2.0)  # mean 2 extra copies per text
    return 1 + rng.poisson(popularity[y]), popularity


def weighted_accuracy(pred: np.ndarray, y: np.ndarray, w: np.ndarray) -> float:
    return float(np.sum(w * (pred == y)) / np.sum(w))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--labels", default="300,1000")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [int(n) for n in args.labels.split(",")]

    train_path, test_path = banking77_paths()
    pool = load_pool(train_path, label_column="category", require_labels=True)
    test = load_pool(test_path, label_column="category", require_labels=True)
    classes = pool.label_set
    y, yt = pool.label_array(classes), test.label_array(classes)
    encoder = Encoder()
    X = embed(pool.texts, encoder, default_cache_dir())
    Xt = embed(test.texts, encoder, default_cache_dir())
    F, Ft = DEFAULT_SMOOTHING(X), DEFAULT_SMOOTHING(Xt, X)
    k = len(classes)

    cpu0 = time.process_time()
    rows = []
    for kind in ("iid", "by-intent"):
        for seed in seeds:
            rng = np.random.default_rng(seed)
            copies, popularity = synthetic_copies(kind, y, k, rng)
            traffic = popularity[yt] if kind == "by-intent" else synthetic_copies("iid", yt, k, rng)[0]
            for n in budgets:
                labeled = rng.choice(len(y), size=n, replace=False)
                rest = np.setdiff1d(np.arange(len(y)), labeled)
                for weighting in ("unweighted", "copies"):
                    w = copies[labeled].astype(float) if weighting == "copies" else None
                    head = Head(k, seed=seed).fit(F[labeled], y[labeled], sample_weight=w)
                    pred_test, pred_rest = head.predict(Ft), head.predict(F[rest])
                    backlog_right = copies[labeled].sum() + np.sum(copies[rest] * (pred_rest == y[rest]))
                    rows.append({
                        "scenario": kind, "seed": seed, "labels": n, "head": weighting,
                        "rows": int(copies.sum()), "labeled_rows": int(copies[labeled].sum()),
                        "test_accuracy": float(np.mean(pred_test == yt)),
                        "traffic_accuracy": weighted_accuracy(pred_test, yt, traffic),
                        "backlog_rows_right": float(backlog_right / copies.sum()),
                    })
    cpu = time.process_time() - cpu0

    metrics = ("test_accuracy", "traffic_accuracy", "backlog_rows_right")
    table = []
    for kind in ("iid", "by-intent"):
        for n in budgets:
            cell = {h: {m: float(np.mean([r[m] for r in rows if (r["scenario"], r["labels"], r["head"]) ==
                                           (kind, n, h)])) for m in metrics} for h in ("unweighted", "copies")}
            table.append({"scenario": kind, "labels": n, **{f"{h}_{m}": cell[h][m] for h in cell for m in metrics}})
    load = os.getloadavg()
    out = {"seeds": seeds, "labels": budgets, "rows": rows, "table": table, "cpu_seconds": cpu,
           "load_average": load, "features": str(DEFAULT_SMOOTHING), "encoder": encoder.identity}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "duplicate_weighting.json").write_text(json.dumps(out, indent=2) + "\n")
    lines = [
        "# Weighting the head by copies (BANKING77, synthetic copies)",
        "",
        f"Random labeled samples, seeds {', '.join(map(str, seeds))} (mean shown); features {DEFAULT_SMOOTHING}; "
        f"{cpu:.0f} CPU-seconds (load average {load[0]:.1f}, {load[1]:.1f}, {load[2]:.1f}). "
        "Generated by `benchmarks/duplicate_weighting.py`.",
        "",
        "| copies | labels | test acc. unweighted | weighted | traffic acc. unweighted | weighted | "
        "backlog rows right unweighted | weighted |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in table:
        lines.append(
            f"| {t['scenario']} | {t['labels']} | "
            + " | ".join(f"{t[f'{h}_{m}']:.3f}" for m in metrics for h in ("unweighted", "copies"))
            + " |"
        )
    (RESULTS / "duplicate_weighting.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
