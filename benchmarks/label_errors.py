"""Suspected label errors: are the flagged rows the wrong labels? (precision and recall against planted flips)

10 % of the labels are flipped, either uniformly to another class or to the class the clean model
confuses each class with most (the mistakes a tired annotator makes), and ``rank_label_errors``
(out-of-fold head probabilities + a confident-learning rule, labelloop's default) must find them.
Several data shapes so that the rule is not fitted to one: BANKING77 train (77 intents), a
10-intent BANKING77 subset, an imbalanced BANKING77 subsample (largest class ~10× the smallest), and
the bundled demo tickets. Other cleanlab rules are scored on the same probabilities for comparison.

    python benchmarks/label_errors.py [--seeds 3] [--cache-dir DIR]

Writes benchmarks/results/label_errors.{json,md}. Reads BANKING77 from ../shared (never copied).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
from _banking77 import RESULTS, banking77_paths

from labelloop.data import demo_paths
from labelloop.featurize import featurize
from labelloop.quality import LABEL_ERROR_RULE, out_of_fold_probabilities, rank_label_errors

NOISE = 0.10
FOLDS = 5
BAR = {"precision": 0.75, "recall": 0.70}
# Other confident-learning rules, scored on the same out-of-fold probabilities (not labelloop's default).
ALTERNATIVES = tuple(r for r in ("prune_by_noise_rate", "both", "confident_learning", "prune_by_class",
                                 "low_normalized_margin") if r != LABEL_ERROR_RULE)


@dataclass(frozen=True)
class Dataset:
    name: str
    X: np.ndarray
    y: np.ndarray
    n_classes: int


def load(cache_dir: str | None) -> list[Dataset]:
    """Features once per source (the default featurize path), then the subsets taken from them."""
    train, _ = banking77_paths()
    b77 = pd.read_csv(train)
    demo = pd.read_csv(demo_paths()[0])
    out = []
    for name, frame, col in (("banking77", b77, "category"), ("demo-tickets", demo, "label")):
        classes = sorted(frame[col].unique())
        X = featurize(list(frame["text"]), cache_dir=cache_dir, progress=True).pool
        out.append(Dataset(name, X, np.searchsorted(classes, frame[col].to_numpy()), len(classes)))
    full = out[0]
    rng = np.random.default_rng(12345)  # fixed subsets: the seeds vary the flips, not the data
    ten = ten_classes(full.n_classes, rng)
    rows = np.flatnonzero(np.isin(full.y, ten))
    out.insert(1, Dataset("banking77-10-classes", full.X[rows], np.searchsorted(ten, full.y[rows]), 10))
    # Imbalanced: class k keeps a share falling geometrically from 100 % to 10 % (random class order).
    order = rng.permutation(full.n_classes)
    share = np.geomspace(1.0, 0.1, full.n_classes)
    keep = []
    for rank, c in enumerate(order):
        members = np.flatnonzero(full.y == c)
        keep.append(rng.choice(members, max(FOLDS * 3, round(share[rank] * len(members))), replace=False))
    rows = np.sort(np.concatenate(keep))
    out.insert(2, Dataset("banking77-imbalanced", full.X[rows], full.y[rows], full.n_classes))
    return out


def ten_classes(n_classes: int, rng: np.random.Generator) -> np.ndarray:
    """The 10-intent subset: 10 class indices drawn at random (sorted)."""
    return np.sort(rng.choice(n_classes, 10, replace=False))


def clean_run(data: Dataset) -> tuple[np.ndarray, np.ndarray]:
    """On the clean labels: per class, the other class the model puts most probability on (the confusable
    partner), and the rows flagged before any flip (texts the model already doubts: ambiguous or mislabeled
    in the source)."""
    p = out_of_fold_probabilities(data.X, data.y, data.n_classes, folds=FOLDS, seed=0)
    mass = np.zeros((data.n_classes, data.n_classes))
    np.add.at(mass, data.y, p)
    np.fill_diagonal(mass, -1.0)
    return mass.argmax(axis=1), rank_label_errors(data.X, data.y, data.n_classes, probabilities=p).flagged


def flip(y: np.ndarray, n_classes: int, kind: str, partner: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(y), round(NOISE * len(y)), replace=False)
    noisy = y.copy()
    if kind == "uniform":
        noisy[rows] = (y[rows] + rng.integers(1, n_classes, len(rows))) % n_classes
    else:
        noisy[rows] = partner[y[rows]]
    truth = np.zeros(len(y), dtype=bool)
    truth[rows] = True
    return noisy, truth


def score(flagged: np.ndarray, truth: np.ndarray) -> dict[str, float | int]:
    hit = int((flagged & truth).sum())
    return {"flagged": int(flagged.sum()), "precision": hit / max(int(flagged.sum()), 1),
            "recall": hit / int(truth.sum())}


def run(datasets: list[Dataset], seeds: int) -> list[dict]:
    from cleanlab.filter import find_label_issues

    out = []
    for data in datasets:
        partner, doubted = clean_run(data)
        for kind in ("uniform", "confusable"):
            for seed in range(seeds):
                noisy, truth = flip(data.y, data.n_classes, kind, partner, seed)
                t = time.perf_counter()
                s = rank_label_errors(data.X, noisy, data.n_classes, folds=FOLDS, seed=seed)
                seconds = time.perf_counter() - t
                present = np.unique(noisy)
                local, p = np.searchsorted(present, noisy), s.probabilities[:, present]
                alt = {rule: score(find_label_issues(local, p, filter_by=rule, n_jobs=1), truth)
                       for rule in ALTERNATIVES}
                top = s.order[: int(truth.sum())]
                # Flags on rows the clean data already doubts are not caused by the flips: precision without them.
                excused = s.flagged & doubted & ~truth
                row = {"dataset": data.name, "rows": len(noisy), "classes": data.n_classes, "kind": kind,
                       "seed": seed, "flipped": int(truth.sum()), **score(s.flagged, truth),
                       "precision_at_flipped": float(truth[top].mean()),
                       "clean_flagged": int(doubted.sum()),
                       "precision_excl_clean_doubts": int((s.flagged & truth).sum())
                       / max(int(s.flagged.sum() - excused.sum()), 1), "noise_estimate": s.noise_rate,
                       "oof_accuracy_vs_truth": float((s.probabilities.argmax(1) == data.y).mean()),
                       "seconds": seconds, "alternatives": alt}
                out.append(row)
                print(f"{data.name:22s} {kind:10s} seed {seed}: P {row['precision']:.3f} R {row['recall']:.3f} "
                      f"({row['flagged']} flagged, est. noise {s.noise_rate:.3f}) {seconds:.1f}s", flush=True)
    return out


def summarise(runs: list[dict]) -> list[dict]:
    keys = sorted({(r["dataset"], r["kind"]) for r in runs}, key=lambda k: ([r["dataset"] for r in runs].index(k[0]),
                                                                           k[1] != "uniform"))
    out = []
    for name, kind in keys:
        rs = [r for r in runs if r["dataset"] == name and r["kind"] == kind]
        row = {"dataset": name, "kind": kind, "rows": rs[0]["rows"], "classes": rs[0]["classes"], "seeds": len(rs)}
        row["clean_flagged"] = rs[0]["clean_flagged"]
        for m in ("precision", "recall", "precision_at_flipped", "precision_excl_clean_doubts", "noise_estimate",
                  "seconds"):
            v = np.array([r[m] for r in rs])
            row[m], row[f"{m}_min"] = float(v.mean()), float(v.min())
        row["meets_bar"] = bool(row["precision_min"] >= BAR["precision"] and row["recall_min"] >= BAR["recall"])
        row["alternatives"] = {rule: {m: float(np.mean([r["alternatives"][rule][m] for r in rs]))
                                      for m in ("precision", "recall")} for rule in ALTERNATIVES}
        out.append(row)
    return out


def markdown(summary: list[dict], seeds: int) -> str:
    lines = [
        "# Suspected label errors: flagged rows against planted flips",
        "",
        (f"{NOISE:.0%} of labels flipped (uniformly to another class, or to the class the clean out-of-fold "
        f"model confuses each class with most); `rank_label_errors` = {FOLDS}-fold out-of-fold probabilities of "
        "the labelloop head (LR, C=10, neighbour-smoothed MiniLM features) + cleanlab "
        f"`{LABEL_ERROR_RULE}` (labelloop's default). "
        f"Mean over {seeds} seeds (min in brackets); bar: precision ≥ {BAR['precision']} and recall ≥ "
        f"{BAR['recall']} on every seed. Seconds = ranking only (embeddings cached), on a shared 2-core machine."),
        "",
        ("precision@#flips: share of flipped rows among the top-scored as many rows as were flipped. Clean "
        "doubts: rows flagged on the clean labels (before any flip); the next column is the precision when "
        "those are not counted as false alarms."),
        "",
        ("| dataset | rows | classes | flips | precision | recall | precision@#flips | clean doubts | "
         "precision excl. clean doubts | est. noise | seconds | bar |"),
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in summary:
        lines.append(
            f"| {r['dataset']} | {r['rows']} | {r['classes']} | {r['kind']} | {r['precision']:.3f} "
            f"({r['precision_min']:.3f}) | {r['recall']:.3f} ({r['recall_min']:.3f}) | "
            f"{r['precision_at_flipped']:.3f} | {r['clean_flagged']} | {r['precision_excl_clean_doubts']:.3f} | "
            f"{r['noise_estimate']:.3f} | {r['seconds']:.0f} | "
            f"{'met' if r['meets_bar'] else '**not met**'} |")
    lines += ["", "Other cleanlab rules on the same probabilities (mean precision / recall):", "",
              "| dataset | flips | " + " | ".join(ALTERNATIVES) + " |", "|---|---|" + "---:|" * len(ALTERNATIVES)]
    for r in summary:
        cells = [f"{r['alternatives'][a]['precision']:.3f} / {r['alternatives'][a]['recall']:.3f}"
                 for a in ALTERNATIVES]
        lines.append(f"| {r['dataset']} | {r['kind']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--only", default=None, help="comma-separated dataset names (for a quick look)")
    args = ap.parse_args()
    datasets = load(args.cache_dir)
    if args.only:
        datasets = [d for d in datasets if d.name in args.only.split(",")]
    t = time.perf_counter()
    runs = run(datasets, args.seeds)
    summary = summarise(runs)
    result = {"noise": NOISE, "folds": FOLDS, "bar": BAR, "rule": LABEL_ERROR_RULE, "seeds": args.seeds,
              "total_seconds": time.perf_counter() - t, "machine": platform.platform(), "summary": summary,
              "runs": runs}
    if args.only:
        print(markdown(summary, args.seeds))
        return
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "label_errors.json").write_text(json.dumps(result, indent=2) + "\n")
    (RESULTS / "label_errors.md").write_text(markdown(summary, args.seeds))
    print(markdown(summary, args.seeds))


if __name__ == "__main__":
    main()
