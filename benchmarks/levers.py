"""Label-efficiency levers (issue 17 parts 2-3): typicality cold start, class-balanced selection, candidate factor.

Every variant runs against today's default (``margin-kmeans``: cold-start seed at k-means centroids, then one
text nearest the centroid of each k-means cluster of the 5×n most uncertain) and ``random`` on the same seeds,
on the five shapes of :mod:`ceiling` (banking77, demo, imbalanced, ten-classes, tiny-noisy) with its per-shape
plans, on labelloop's default features (neighbour-smoothed vectors of the default encoder):

- ``typical-seed``: the seed set takes the most *typical* text of each k-means cluster of the pool (TypiClust:
  inverse mean distance to its min(20, size/2) nearest cluster members) instead of the one nearest the centroid;
  the rounds after are the default's;
- ``typical-pick``: the default's seed, then the most typical member of each uncertain cluster in every round;
- ``margin-kmeans-typical``: both (the typical seed and the typical pick);
- ``class-balanced``: :class:`labelloop.strategies.ClassBalanced` (per-predicted-class quotas ∝ 1/(1+labels),
  one text per k-means cluster within them);
- ``margin-kmeans×3`` / ``×10``: the default with 3× or 10× n uncertain candidates instead of 5× (own idea: the
  factor sets how much diversity may overrule uncertainty and was never measured on smoothed features).

Labels-to-98 % are against 98 % of the shape's full-pool accuracy on the same features. A variant is adopted
as the default only if its mean labels-to-98 % is ≤ the default's on every shape (not reached counts as more
than the budget) and its mean accuracy is ≥ random's at every round from the third batch on, on every shape.

    python benchmarks/levers.py --seeds 0,1,2,3,4,5,6,7,8,9
    python benchmarks/levers.py --render levers      # rewrite levers.md from levers.json
    python benchmarks/levers.py --shapes demo --variants margin-kmeans,class-balanced --seeds 0,1 --name levers_try

Writes benchmarks/results/<name>.{json,md}. Reads BANKING77 from ../shared (never copied).
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np
import pandas as pd
from _banking77 import RESULTS, banking77_paths
from ceiling import PLANS, shapes
from rare_classes import imbalanced_rows

from labelloop.embeddings import Encoder, default_cache_dir, embed
from labelloop.features import DEFAULT_SMOOTHING
from labelloop.simulate import full_pool, labels_to_reach, simulate
from labelloop.strategies import ColdStart, DiverseUncertainty, Strategy, get_strategy

DEFAULT = "margin-kmeans"
VARIANTS: dict[str, Strategy] = {
    "margin-kmeans": get_strategy("margin-kmeans"),
    "random": get_strategy("random"),
    "typical-seed": DiverseUncertainty(cold_start=ColdStart(pick="typical"), name="typical-seed"),
    "typical-pick": DiverseUncertainty(pick="typical", name="typical-pick"),
    "margin-kmeans-typical": get_strategy("margin-kmeans-typical"),
    "class-balanced": get_strategy("class-balanced"),
    "margin-kmeans×3": DiverseUncertainty(candidate_factor=3, name="margin-kmeans×3"),
    "margin-kmeans×10": DiverseUncertainty(candidate_factor=10, name="margin-kmeans×10"),
}
RARE_BUDGETS = (300, 500, 1000)


def rare_classes() -> np.ndarray:
    """The 10 rarest intents of the ``imbalanced`` shape, as :mod:`ceiling` builds it (same rows, same seed)."""
    train = pd.read_csv(banking77_paths()[0])
    y = np.searchsorted(sorted(train["category"].unique()), train["category"].to_numpy())
    return imbalanced_rows(y, int(y.max()) + 1, np.random.default_rng(12345))[1]


def at(run: dict, n: int) -> dict:
    """The first round with at least ``n`` labels."""
    return next(r for r in run["rounds"] if r["n_labeled"] >= n)


def summarise(runs: list[dict], budget: int, batch: int, random_curve: list[float] | None, rare: np.ndarray | None):
    reach = [labels_to_reach(run, 0.98) for run in runs]
    curve = np.mean([[r["accuracy"] for r in run["rounds"]] for run in runs], axis=0)
    ns = [r["n_labeled"] for r in runs[0]["rounds"]]
    out: dict = {
        "labels_to_98": reach,
        "mean_labels_to_98": float(np.mean(reach)) if all(r is not None for r in reach) else None,
        # For comparing: a seed that never got there counts as one batch past the budget.
        "mean_labels_to_98_or_more": float(np.mean([budget + batch if r is None else r for r in reach])),
        "mean_curve": list(zip(ns, curve.tolist(), strict=True)),
        "per_seed_accuracy": [[r["accuracy"] for r in run["rounds"]] for run in runs],
    }
    if random_curve is not None:
        from3 = [i for i, n in enumerate(ns) if n >= 3 * batch]
        gaps = curve[from3] - np.asarray(random_curve)[from3]
        out["worst_gap_to_random_from_3_batches"] = float(gaps.min())
        out["at_worst_gap"] = ns[from3[int(np.argmin(gaps))]]
    if rare is not None:
        out["every_class_seen_at"] = [
            next((r["n_labeled"] for r in run["rounds"] if r["classes_seen"] >= run["n_classes"]), None)
            for run in runs
        ]
        out["rare_recall"] = {
            n: float(np.mean([np.mean([at(run, n)["class_recall"][c] for c in rare]) for run in runs]))
            for n in RARE_BUDGETS
        }
        out["macro_f1"] = {n: float(np.mean([at(run, n)["macro_f1"] for run in runs])) for n in RARE_BUDGETS}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="demo,tiny-noisy,ten-classes,imbalanced,banking77")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--name", default="levers")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    names = [v for v in args.variants.split(",") if v]
    for must in ("random", DEFAULT):  # the verdict needs both on the same seeds
        if must not in names:
            names.insert(0, must)
    names.sort(key=lambda v: (v != "random", v != DEFAULT))
    encoder = Encoder()
    report: dict = {"seeds": seeds, "model": encoder.name, "smoothing": str(DEFAULT_SMOOTHING),
                    "load_average_start": os.getloadavg(), "shapes": {}}
    rare = rare_classes()
    for shape in shapes(args.shapes.split(",")):
        X = embed(shape.pool, encoder, default_cache_dir())
        Xt = embed(shape.test, encoder, default_cache_dir())
        F, Ft = DEFAULT_SMOOTHING(X), DEFAULT_SMOOTHING(Xt, X)
        initial, batch, budget = PLANS[shape.name]
        top = full_pool(F, shape.y, Ft, shape.yt, shape.n_classes)
        entry: dict = {"n_pool": len(shape.y), "n_classes": shape.n_classes, "full_pool_accuracy": top["accuracy"],
                       "plan": {"initial": initial, "batch": batch, "budget": budget}, "variants": {}}
        random_curve = None
        for v in names:
            cpu0 = time.process_time()
            runs = [simulate(F, shape.y, Ft, shape.yt, shape.n_classes, strategy=VARIANTS[v], initial=initial,
                             batch_size=batch, budget=budget, seed=seed, ceiling=top) for seed in seeds]
            e = summarise(runs, budget, batch, random_curve, rare if shape.name == "imbalanced" else None)
            e["cpu_seconds"] = time.process_time() - cpu0
            e["load_average"] = os.getloadavg()[0]
            if v == "random":
                random_curve = [a for _, a in e["mean_curve"]]
                e.pop("worst_gap_to_random_from_3_batches", None)
            entry["variants"][v] = e
            print(f"{shape.name:12s} {v:22s} to-98% {e['labels_to_98']} final {e['mean_curve'][-1][1]:.3f} "
                  f"gap {e.get('worst_gap_to_random_from_3_batches', 0):+.3f} cpu {e['cpu_seconds']:.0f}s "
                  f"load {e['load_average']:.2f}", flush=True)
        report["shapes"][shape.name] = entry
        report["load_average_end"] = os.getloadavg()
        RESULTS.mkdir(exist_ok=True)  # after each shape: a stopped run keeps what it measured
        (RESULTS / f"{args.name}.json").write_text(json.dumps(verdicts(report), indent=1) + "\n")
    report = verdicts(report)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(render(report))
    print(render(report))


def verdicts(report: dict) -> dict:
    """Per variant: fewer-or-equal labels than the default on every shape, and never below random."""
    out = {}
    shapes_ = report["shapes"]
    names = {v for entry in shapes_.values() for v in entry["variants"]} - {"random", DEFAULT}
    for v in sorted(names):
        worse = [s for s, e in shapes_.items() if v in e["variants"] and e["variants"][v]["mean_labels_to_98_or_more"]
                 > e["variants"][DEFAULT]["mean_labels_to_98_or_more"]]
        below = [s for s, e in shapes_.items() if v in e["variants"]
                 and e["variants"][v]["worst_gap_to_random_from_3_batches"] < 0]
        out[v] = {"more_labels_than_default_on": worse, "below_random_on": below,
                  "adopt": not worse and not below and len(shapes_) == 5}
    default_below = [s for s, e in shapes_.items() if e["variants"][DEFAULT]["worst_gap_to_random_from_3_batches"] < 0]
    return {**report, "verdicts": out, "default_below_random_on": default_below}


def render(report: dict) -> str:
    seeds = report["seeds"]
    adopted = [v for v, d in report.get("verdicts", {}).items() if d["adopt"]]
    lines = [f"# Label-efficiency levers (issue 17 parts 2-3): {len(seeds)} seeds, 5 shapes", "",
             f"Verdict: {', '.join(adopted)} meets the bar on every shape." if adopted else
             "Verdict: no variant needs as few labels as the default on every shape; the default is unchanged and "
             "the registered variants (`margin-kmeans-typical`, `class-balanced`) stay opt-in.", "",
             "Labels to 98 % of the shape's full-pool accuracy (default features; — = not reached within the "
             "budget; the mean counts it as budget + one batch, marked ≥). Accuracy: mean over seeds at the third "
             "batch, half the budget and the budget. Gap: the worst difference to random's mean accuracy at any "
             "round from the third batch on. CPU-s: all seeds of the row (2 shared cores).", "",
             "| shape | variant | labels to 98 % (mean; per seed) | acc. @3 batches | @½ budget | @budget | "
             "worst gap to random | CPU-s |", "|---|---|---|---:|---:|---:|---:|---:|"]
    for name, entry in report["shapes"].items():
        plan = entry["plan"]
        for v, e in entry["variants"].items():
            reach = e["labels_to_98"]
            mean = (f"{e['mean_labels_to_98']:.0f}" if e["mean_labels_to_98"] is not None
                    else f"≥ {e['mean_labels_to_98_or_more']:.0f}")
            curve = dict(e["mean_curve"])
            ns = sorted(curve)
            pick = [next(n for n in ns if n >= b) for b in (3 * plan["batch"], plan["budget"] // 2, plan["budget"])]
            gap = e.get("worst_gap_to_random_from_3_batches")
            gap_s = "—" if gap is None else f"{gap:+.3f} @ {e['at_worst_gap']}"
            lines.append(f"| {name} | {v} | {mean}; {', '.join('—' if r is None else str(r) for r in reach)} | "
                         + " | ".join(f"{curve[n]:.3f}" for n in pick) + f" | {gap_s} | {e['cpu_seconds']:.0f} |")
    imb = report["shapes"].get("imbalanced")
    if imb:
        lines += ["", "Rare classes on `imbalanced` (the 10 rarest intents, ≤ 0.4 % of the pool each; "
                  "benchmarks/rare_classes.py's metric): mean recall of those intents and macro-F1.", "",
                  "| variant | every intent seen at (per seed) | rare recall @300 | @500 | @1000 | macro-F1 @300 | "
                  "@500 | @1000 |", "|---|---|---:|---:|---:|---:|---:|---:|"]
        for v, e in imb["variants"].items():
            rr, mf = e["rare_recall"], e["macro_f1"]
            lines.append(f"| {v} | {e['every_class_seen_at']} | "
                         + " | ".join(f"{rr[k]:.3f}" for k in rr) + " | "
                         + " | ".join(f"{mf[k]:.3f}" for k in mf) + " |")
    lines += ["", "Verdicts (adopt = labels-to-98 % ≤ the default's on every shape and ≥ random everywhere):", ""]
    for v, d in report.get("verdicts", {}).items():
        lines.append(f"- `{v}`: {'ADOPT' if d['adopt'] else 'not adopted'}; more labels than the default on "
                     f"{', '.join(d['more_labels_than_default_on']) or 'no shape'}; below random on "
                     f"{', '.join(d['below_random_on']) or 'no shape'}.")
    if "default_below_random_on" in report:
        lines.append(f"- the default `{DEFAULT}` itself: below random on "
                     f"{', '.join(report['default_below_random_on']) or 'no shape'}.")
    lines += ["", f"Seeds {seeds}, {report['model']}, features {report['smoothing']}; load average "
              f"{report['load_average_start'][0]:.1f} at start, {report['load_average_end'][0]:.1f} at end."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    if len(sys.argv) == 3 and sys.argv[1] == "--render":  # --render NAME: rewrite NAME.md from NAME.json
        saved = verdicts(json.loads((RESULTS / f"{sys.argv[2]}.json").read_text()))
        (RESULTS / f"{sys.argv[2]}.json").write_text(json.dumps(saved, indent=1) + "\n")
        (RESULTS / f"{sys.argv[2]}.md").write_text(render(saved))
    else:
        main()
