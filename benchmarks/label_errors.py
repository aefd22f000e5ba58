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
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from _banking77 import RESULTS, banking77_paths

from labelloop.data import demo_paths
from labelloop.featurize import featurize
from labelloop.quality import (
    LABEL_ERROR_PASSES,
    LABEL_ERROR_RULE,
    out_of_fold_probabilities,
    rank_label_errors,
)

NOISE = 0.10
FOLDS = 5
BAR = {"precision": 0.75, "recall": 0.70}
# Other confident-learning rules, scored on the same out-of-fold probabilities (not labelloop's default).
ALTERNATIVES = tuple(r for r in ("prune_by_noise_rate", "both", "confident_learning", "prune_by_class",
                                 "low_normalized_margin") if r != LABEL_ERROR_RULE)


# What was measured on the way to the default (same flips, seeds and features; one-off scripts, not this one).
NOTES = """
## How the default was chosen, and the demo tickets

One pass (5-fold out-of-fold probabilities + `low_normalized_margin`) met the bar on every BANKING77 shape but
not on the demo tickets: precision 0.693 (0.675) uniform, 0.631 (0.575) confusable. Levers tried, mean (min)
precision / mean recall over the same 3 seeds, demo tickets unless said:

| variant | uniform | confusable | adopted |
|---|---|---|---|
| one pass (before) | 0.693 (0.675) / 0.806 | 0.631 (0.575) / 0.722 | |
| 10 folds instead of 5 | 0.684 (0.675) / 0.773 | 0.643 (0.568) / 0.736 | no: no gain |
| raw (unsmoothed) embeddings | 0.686 (0.646) / 0.792 | 0.583 (0.526) / 0.685 | no: worse |
| mean of raw and smoothed probabilities | 0.679 (0.637) / 0.778 | 0.615 (0.558) / 0.713 | no |
| C = 1 (head default C = 10) | 0.790 (0.753) / 0.764 | 0.721 (0.682) / 0.657 | no: trades recall away |
| rank by self-confidence, cleanlab's count | 0.781 (0.759) / 0.907 | 0.598 (0.550) / 0.685 | no: fails confusable flips |
| two passes, count and rank by the second | 0.743 (0.738) / 0.815 | 0.705 (0.694) / 0.722 | no: BANKING77-imbalanced confusable recall 0.699 |
| **two passes, count by the first, rank by the second** | 0.729 (0.711) / 0.847 | 0.684 (0.662) / 0.782 | **yes** |
| the same with 10 folds | 0.742 (0.718) / 0.838 | 0.705 (0.691) / 0.806 | no: small gain, needs 10 labels per class |

- C was not moved: the held-out log-loss of the given labels prefers C = 10 on one demo seed and C = 3 on the
  other two, and C = 3 on the 10-intent subset where C = 10 finds more flips; nothing says "lower C" in general.
- The two-pass rule is chosen by a principle, not by the demo figures: wrong labels in training vouch for each
  other and pull the boundary between confusable classes toward themselves, so the rows to re-check are better
  ordered by fold models trained without the labels in doubt; how many there are is confident learning's estimate
  from a model fitted to all given labels, which is what its per-class thresholds assume. It lifted the ranking
  (precision@#flips) on every shape, most on confusable flips (BANKING77 0.671 → 0.776, imbalanced 0.643 → 0.744,
  demo 0.644 → 0.759).
- cleanlab's `frac_noise` / `num_to_remove_per_class` are not supported with `low_normalized_margin`; its
  calibrated count (`off_diagonal_calibrated`) flags more rows and drops BANKING77 confusable precision to 0.72–0.75.

**Clean doubts on the demo tickets** (rows flagged before any flip; 21 with the default): the bundled data has no
generator, the texts are hand-written (`src/labelloop/demo/DATA.md`). 12 of the 21 are in DATA.md's list of texts
written on purpose to touch two intents (about 10 % of the train set), e.g. t0462 "The vase arrived in pieces. I
don't want a replacement, just refund me." (refund_request; damaged_or_wrong_item recorded as the alternative). The
other 9 carry labels that fit DATA.md's definitions but that the model reads as a neighbouring intent, e.g. t0718
"Can you add an option to pause my subscription instead of cancelling?" (feature_request, read as
cancel_subscription), t0573 "I'd like to opt out of personalised advertising" (delete_account_privacy, which
covers marketing opt-outs, read as feature_request). None is plainly wrong, so the data was not changed; debatable
at most: t0188 "Tracking shows it's heading to my old apartment. Can you redirect it?" (order_status; the
alternative change_shipping_address is arguably the main ask) and t0542 "Wrong item sent … refund me"
(damaged_or_wrong_item) against t0462's refund_request. With ~10 % deliberately two-intent texts the demo set holds
about as many defensible doubts as planted flips, which is why its precision stays below 0.75; counted without
the clean doubts it is above the bar (table above).
"""


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
    return mass.argmax(axis=1), rank_label_errors(data.X, data.y, data.n_classes, folds=FOLDS, seed=0).flagged


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


def run(datasets: list[Dataset], seeds: int, dump: Path | None = None) -> list[dict]:
    from cleanlab.filter import find_label_issues

    out = []
    for data in datasets:
        partner, doubted = clean_run(data)
        for kind in ("uniform", "confusable"):
            for seed in range(seeds):
                noisy, truth = flip(data.y, data.n_classes, kind, partner, seed)
                t, cpu = time.perf_counter(), time.process_time()
                s = rank_label_errors(data.X, noisy, data.n_classes, folds=FOLDS, seed=seed)
                seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
                if dump is not None:  # for analysing other flagging rules without refitting
                    np.savez_compressed(dump / f"{data.name}-{kind}-{seed}.npz", p=s.probabilities, noisy=noisy,
                                        clean=data.y, truth=truth, doubted=doubted)
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
                       "seconds": seconds, "cpu_seconds": cpu,
                       "load_average": os.getloadavg()[0], "alternatives": alt}
                out.append(row)
                print(f"{data.name:22s} {kind:10s} seed {seed}: P {row['precision']:.3f} R {row['recall']:.3f} "
                      f"({row['flagged']} flagged, est. noise {s.noise_rate:.3f}) {seconds:.1f}s, {cpu:.1f} CPU-s", flush=True)
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
                  "seconds", "cpu_seconds", "load_average"):
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
        f"`{LABEL_ERROR_RULE}` (labelloop's default), {LABEL_ERROR_PASSES} pass(es): the second scores every row "
        "again with fold models trained without the rows the first pass flagged. "
        f"Mean over {seeds} seeds (min in brackets); bar: precision ≥ {BAR['precision']} and recall ≥ "
        f"{BAR['recall']} on every seed. CPU-s = CPU seconds of the ranking only (embeddings cached), on a shared 2-core machine; load = 1-minute "
        "load average at the end of each run (mean)."),
        "",
        ("precision@#flips: share of flipped rows among the top-scored as many rows as were flipped. Clean "
        "doubts: rows flagged on the clean labels (before any flip); the next column is the precision when "
        "those are not counted as false alarms."),
        "",
        ("| dataset | rows | classes | flips | precision | recall | precision@#flips | clean doubts | "
         "precision excl. clean doubts | est. noise | CPU-s | load | bar |"),
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in summary:
        lines.append(
            f"| {r['dataset']} | {r['rows']} | {r['classes']} | {r['kind']} | {r['precision']:.3f} "
            f"({r['precision_min']:.3f}) | {r['recall']:.3f} ({r['recall_min']:.3f}) | "
            f"{r['precision_at_flipped']:.3f} | {r['clean_flagged']} | {r['precision_excl_clean_doubts']:.3f} "
            f"({r['precision_excl_clean_doubts_min']:.3f}) | "
            f"{r['noise_estimate']:.3f} | {r['cpu_seconds']:.1f} | {r['load_average']:.1f} | "
            f"{'met' if r['meets_bar'] else '**not met**'} |")
    lines += ["", ("Other cleanlab rules on the same (last pass's) probabilities (mean precision / recall):"), "",
              "| dataset | flips | " + " | ".join(ALTERNATIVES) + " |", "|---|---|" + "---:|" * len(ALTERNATIVES)]
    for r in summary:
        cells = [f"{r['alternatives'][a]['precision']:.3f} / {r['alternatives'][a]['recall']:.3f}"
                 for a in ALTERNATIVES]
        lines.append(f"| {r['dataset']} | {r['kind']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n" + NOTES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--cache-dir", default=None)
    ap.add_argument("--only", default=None, help="comma-separated dataset names (for a quick look)")
    ap.add_argument("--dump", type=Path, default=None, help="directory for each run's out-of-fold probabilities")
    args = ap.parse_args()
    datasets = load(args.cache_dir)
    if args.only:
        datasets = [d for d in datasets if d.name in args.only.split(",")]
    t = time.perf_counter()
    if args.dump is not None:
        args.dump.mkdir(parents=True, exist_ok=True)
    runs = run(datasets, args.seeds, args.dump)
    summary = summarise(runs)
    result = {"noise": NOISE, "folds": FOLDS, "bar": BAR, "rule": LABEL_ERROR_RULE, "passes": LABEL_ERROR_PASSES,
              "seeds": args.seeds,
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
