"""Multi-label active learning against random, on multi-label sets built from single-label data.

Neither BANKING77 nor the demo tickets are multi-label, so texts are merged: a share of each set's
texts (40 %) is joined with a random text of another intent ("A B", labels {a, b}), the rest keep
their one label (``labelloop.multilabel.merge_texts``; pool and test set merged apart, each source
text used once). The new texts are embedded by the default encoder (through the cache) and smoothed
like any pool. Strategies: ``margin-kmeans`` (labelloop's multi-label default) and ``random``,
same cold-start seed set; micro-F1 on the merged test set after every batch.

    python benchmarks/multilabel.py [--seeds 3] [--datasets demo-tickets] [--name multilabel]

Writes benchmarks/results/multilabel.{json,md,png}. Reads BANKING77 from ../shared (never copied).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np
from _banking77 import RESULTS, banking77_paths

from labelloop.data import demo_paths, load_pool
from labelloop.featurize import featurize
from labelloop.multilabel import label_matrix, merge_texts, simulate_multilabel

SHARE = 0.4
STRATEGIES = ("margin-kmeans", "random")
PLANS = {  # dataset -> (initial, batch, budget)
    "demo-tickets": (40, 40, 400),
    "banking77": (100, 100, 700),  # 77 binary heads a round: minutes per seed on 2 shared cores
}


def build(name: str, rng: np.random.Generator):
    paths = demo_paths() if name == "demo-tickets" else banking77_paths()
    kw = {"id_column": "id"} if name == "demo-tickets" else {"label_column": "category"}
    train, test = (load_pool(p, require_labels=True, unique_ids=False, **kw) for p in paths)
    pool_texts, pool_sets = merge_texts(train.texts, train.labels, SHARE, rng)
    test_texts, test_sets = merge_texts(test.texts, test.labels, SHARE, rng)
    classes = sorted(set(train.labels))
    f = featurize(pool_texts, test_texts, progress=True)
    return f.pool, label_matrix(pool_sets, classes), f.others[0], label_matrix(test_sets, classes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--datasets", default=",".join(PLANS), help="comma-separated, from: " + ", ".join(PLANS))
    ap.add_argument("--name", default="multilabel", help="results file stem")
    args = ap.parse_args()
    plans = {name: PLANS[name] for name in args.datasets.split(",")}
    result: dict = {"share_merged": SHARE, "seeds": args.seeds, "machine": platform.platform(), "datasets": {}}
    lines = ["# Multi-label: margin-kmeans against random (micro-F1 on the merged test set)", "",
             f"Built by merging {SHARE:.0%} of each set's texts in pairs of different intents "
             f"(`benchmarks/multilabel.py`); mean over {args.seeds} seeds (min margin over random in brackets).",
             ""]
    for name, (initial, batch, budget) in plans.items():
        X, Y, Xt, Yt = build(name, np.random.default_rng(0))
        runs: dict[str, list[list[dict]]] = {s: [] for s in STRATEGIES}
        t0 = time.perf_counter()
        for seed in range(args.seeds):
            for s in STRATEGIES:
                runs[s].append(simulate_multilabel(X, Y, Xt, Yt, strategy=s, initial=initial, batch_size=batch,
                                                   budget=budget, seed=seed))
        n = [r["n_labeled"] for r in runs[STRATEGIES[0]][0]]
        f1 = {s: np.array([[r["micro_f1"] for r in run] for run in runs[s]]) for s in STRATEGIES}
        diff = f1[STRATEGIES[0]] - f1["random"]
        beats = bool((diff.mean(axis=0)[1:] > 0).all())
        result["datasets"][name] = {
            "rows": len(X), "test_rows": len(Xt), "labels": int(Y.shape[1]),
            "mean_labels_per_text": float(Y.sum(axis=1).mean()), "n_labeled": n,
            "micro_f1": {s: f1[s].mean(axis=0).tolist() for s in STRATEGIES},
            "macro_f1": {s: np.mean([[r["macro_f1"] for r in run] for run in runs[s]], axis=0).tolist()
                         for s in STRATEGIES},
            "subset_accuracy": {s: np.mean([[r["subset_accuracy"] for r in run] for run in runs[s]],
                                           axis=0).tolist() for s in STRATEGIES},
            "min_margin_over_random_per_budget": diff.min(axis=0).tolist(),
            "beats_random_at_every_budget_after_the_seed": beats,
            "seconds": time.perf_counter() - t0,
            "max_round_seconds": max(r["seconds"] for s in STRATEGIES for run in runs[s] for r in run),
        }
        d = result["datasets"][name]
        lines += [f"## {name}: {d['rows']} pool texts ({d['mean_labels_per_text']:.2f} labels per text), "
                  f"{d['labels']} labels, {d['test_rows']} test texts", "",
                  "| labels | " + " | ".join(STRATEGIES) + " | margin (min over seeds) | standard error |",
                  "|---:|" + "---:|" * (len(STRATEGIES) + 2)]
        se = diff.std(axis=0, ddof=1) / np.sqrt(len(diff)) if len(diff) > 1 else np.zeros(len(n))
        for k, m in enumerate(n):
            lines.append(f"| {m} | " + " | ".join(f"{f1[s].mean(axis=0)[k]:.3f}" for s in STRATEGIES)
                         + f" | {diff.mean(axis=0)[k]:+.3f} ({diff.min(axis=0)[k]:+.3f}) | {se[k]:.3f} |")
        lines += ["", f"Beats random at every budget after the cold-start seed (mean over seeds): "
                  f"**{'yes' if beats else 'no'}**. Slowest round {d['max_round_seconds']:.1f} s.", ""]
        print("\n".join(lines[-len(n) - 6:]), flush=True)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(plans), figsize=(5 * len(plans), 3.6))
    for ax, (name, d) in zip(np.atleast_1d(axes), result["datasets"].items(), strict=True):
        for s in STRATEGIES:
            ax.plot(d["n_labeled"], d["micro_f1"][s], marker="o", ms=3, label=s)
        ax.set(title=name, xlabel="labels", ylabel="micro-F1")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / f"{args.name}.png", dpi=110)


if __name__ == "__main__":
    main()
