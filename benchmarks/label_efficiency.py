"""Label efficiency on BANKING77 (or the demo tickets): query strategies vs random sampling over seeds.

For each strategy: labels needed to reach 95 / 98 / 100 % of the full-pool accuracy,
area under the learning curve, accuracy at 770 labels (10 per class), and the
slowest round near 2,000 labels. Writes ``results/label_efficiency.{json,md,png}``.

    python benchmarks/label_efficiency.py                      # default vs margin vs random, 3 seeds
    python benchmarks/label_efficiency.py --strategies margin-kmeans,random --seeds 0,1,2,3,4
    python benchmarks/label_efficiency.py --dataset demo --initial 20 --batch-size 20 --budget 400
    python benchmarks/label_efficiency.py --raw margin-kmeans   # also run it without neighbour smoothing
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
from _banking77 import RESULTS, banking77_paths
from tqdm import tqdm

from labelloop.data import check_test_labels, demo_paths, load_pool
from labelloop.embeddings import Encoder, default_cache_dir, embed
from labelloop.features import DEFAULT_SMOOTHING, NO_SMOOTHING, NeighbourSmoothing
from labelloop.featurize import features_by_labels, featurize_vectors
from labelloop.plots import learning_curves, save
from labelloop.simulate import accuracy_at, area_under_curve, full_pool, labels_to_reach, mean_curve, simulate
from labelloop.strategies import DEFAULT_STRATEGY


def summarize(runs: list[dict], budget: int) -> dict:
    def reach(frac: float) -> dict:
        values = [labels_to_reach(r, frac) for r in runs]
        hit = [v for v in values if v is not None]
        return {"per_seed": values, "mean": float(np.mean(hit)) if len(hit) == len(values) else None,
                "reached": f"{len(hit)}/{len(values)}"}

    near_2000 = [max(r["seconds"] for r in run["rounds"] if 1900 <= r["n_labeled"] <= 2100) for run in runs
                 if any(1900 <= r["n_labeled"] <= 2100 for r in run["rounds"])]
    return {
        "labels_to_95": reach(0.95), "labels_to_98": reach(0.98), "labels_to_100": reach(1.0),
        "auc": float(np.mean([area_under_curve(r) for r in runs])),
        "accuracy_at_770": float(np.mean([accuracy_at(r, 770) for r in runs])) if budget >= 770 else None,
        "final_accuracy": float(np.mean([r["rounds"][-1]["accuracy"] for r in runs])),
        "max_round_seconds_near_2000": max(near_2000) if near_2000 else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--strategies", default=f"{DEFAULT_STRATEGY},margin,random")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--initial", type=int, default=100)
    parser.add_argument("--initial-strategy", default="cold-start")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--budget", type=int, default=2500)
    parser.add_argument("--dataset", choices=["banking77", "demo"], default="banking77",
                        help="banking77 (77 intents, ../shared) or the bundled demo tickets (13 intents)")
    parser.add_argument("--neighbours", type=int, default=DEFAULT_SMOOTHING.k,
                        help="neighbour smoothing of the features (labelloop.features); 0 = raw embeddings")
    parser.add_argument("--fixed-weight", action="store_true",
                        help="keep the neighbour weight fixed (what labelloop did before it shrank with the labels)")
    parser.add_argument("--raw", default="", help="strategies to run on raw embeddings too (comma-separated)")
    parser.add_argument("--backend", default=None, choices=["torch", "onnx"],
                        help="encoder backend (default: labelloop's); the vectors are cached per backend")
    parser.add_argument("--name", default=None, help="output file stem under results/ (default from the dataset)")
    args = parser.parse_args()
    strategies = args.strategies.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]

    if args.dataset == "banking77":
        (train_path, test_path), label_column = banking77_paths(), "category"
    else:
        (train_path, test_path), label_column = demo_paths(), "label"
    stem = args.name or ("label_efficiency" if args.dataset == "banking77" else f"label_efficiency_{args.dataset}")
    title = "BANKING77" if args.dataset == "banking77" else "Demo tickets"
    pool = load_pool(train_path, label_column=label_column, require_labels=True)
    test = load_pool(test_path, label_column=label_column, require_labels=True)
    check_test_labels(pool, test)
    classes = pool.label_set
    y, yt = pool.label_array(classes), test.label_array(classes)
    encoder = Encoder(backend=args.backend) if args.backend else Encoder()
    X = embed(pool.texts, encoder, default_cache_dir(), progress=True)
    Xt = embed(test.texts, encoder, default_cache_dir(), progress=True)
    smoothing = NeighbourSmoothing(k=args.neighbours, shrink=not args.fixed_weight)
    t0 = time.perf_counter()
    f = featurize_vectors(X, Xt, identity=encoder.identity, smoothing=smoothing)
    smoothing_seconds = time.perf_counter() - t0
    at = features_by_labels(f)  # the neighbour weight of a head trained on so many labels
    # Each set of features has its own ceiling: the same head trained on every pool label.
    F_all, Ft_all = at(len(y))
    features = {str(smoothing): (at, full_pool(F_all, y, Ft_all, yt, len(classes)))}
    raw = [s for s in args.raw.split(",") if s]
    if raw and str(NO_SMOOTHING) not in features:
        features[str(NO_SMOOTHING)] = (lambda n: (X, Xt), full_pool(X, y, Xt, yt, len(classes)))
    ceiling = features[str(smoothing)][1]

    # (label, strategy, features): the raw runs are labelled apart so the table and plot can compare.
    plan = [(name, name, str(smoothing)) for name in strategies]
    plan += [(f"{name} (raw embeddings)", name, str(NO_SMOOTHING)) for name in raw]
    results: dict[str, list[dict]] = {label: [] for label, _, _ in plan}
    started = time.perf_counter()
    with tqdm(total=len(plan) * len(seeds), desc="simulations") as bar:
        for label, name, feats in plan:
            at_labels, top = features[feats]
            P, Pt = at_labels(0)
            for seed in seeds:
                run = simulate(P, y, Pt, yt, len(classes), strategy=name, initial=args.initial,
                               initial_strategy=args.initial_strategy, batch_size=args.batch_size,
                               budget=args.budget, seed=seed, model=encoder.name, features=feats, ceiling=top,
                               features_at=at_labels)
                run["strategy"] = label
                results[label].append(run)
                bar.update()

    summary = {name: summarize(runs, args.budget) for name, runs in results.items()}
    comparison = {}
    if "random" in results:
        for name in strategies:
            if name == "random":
                continue
            xs, ys = mean_curve(results[name])
            ok = xs >= 300
            gap = ys[ok] - np.interp(xs[ok], *mean_curve(results["random"]))
            comparison[name] = {"min_gap_vs_random_from_300": float(gap.min()),
                                "never_below_random_from_300": bool((gap >= 0).all())}
    report = {
        "dataset": title, "n_pool": len(pool), "n_test": len(test), "n_classes": len(classes),
        "model": encoder.name, "features": str(smoothing), "full_pool": ceiling,
        "full_pool_by_features": {k: v[1] for k, v in features.items()},
        "smoothing_seconds": smoothing_seconds, "seeds": seeds, "initial": args.initial,
        "initial_strategy": args.initial_strategy, "batch_size": args.batch_size, "budget": args.budget,
        "summary": summary, "vs_random": comparison, "wall_seconds": time.perf_counter() - started,
        "runs": [r for runs in results.values() for r in runs],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{stem}.json").write_text(json.dumps(report, indent=1) + "\n")
    save(learning_curves(report["runs"], title=f"{title}: {len(seeds)} seeds, batches of {args.batch_size}"),
         RESULTS / f"{stem}.png")

    def fmt(r: dict) -> str:
        if r["mean"] is not None:
            return f"{r['mean']:.0f}"
        hit, total = map(int, r["reached"].split("/"))
        return f"> {args.budget} on {total - hit}/{total} seeds"

    lines = [
        f"{title} ({len(pool)} pool / {len(test)} test texts, {len(classes)} classes), {encoder.name} + "
        f"logistic regression (C=10) on features {smoothing} ({smoothing_seconds:.1f} s for pool and test). "
        f"Full-pool accuracy **{ceiling['accuracy']:.3f}** (98 %: {0.98 * ceiling['accuracy']:.3f})"
        + "".join(f"; on {k}: {v[2]['accuracy']:.3f}" for k, v in features.items() if k != str(smoothing))
        + ". Labels-to-x % use each row's own features' full-pool accuracy. "
        f"Seeds {args.seeds}; {args.initial} initial labels by "
        f"{args.initial_strategy}, batches of {args.batch_size}, budget {args.budget}. Means over seeds.",
        "",
        "| strategy | labels to 95 % | labels to 98 % | labels to 100 % | AULC | acc. @ 770 | final acc. "
        "| slowest round near 2,000 labels (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in summary.items():
        at770 = f"{s['accuracy_at_770']:.3f}" if s["accuracy_at_770"] is not None else "—"
        secs = f"{s['max_round_seconds_near_2000']:.2f}" if s["max_round_seconds_near_2000"] else "—"
        lines.append(f"| {name} | {fmt(s['labels_to_95'])} | {fmt(s['labels_to_98'])} | {fmt(s['labels_to_100'])} "
                     f"| {s['auc']:.3f} | {at770} | {s['final_accuracy']:.3f} | {secs} |")
    for name, c in comparison.items():
        lines.append("")
        lines.append(f"{name} vs random, mean curves from 300 labels: smallest gap {c['min_gap_vs_random_from_300']:+.3f}"
                     f" ({'never below random' if c['never_below_random_from_300'] else 'BELOW random somewhere'}).")
    (RESULTS / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
