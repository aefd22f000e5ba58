"""How often is the model's guess right on the texts active learning sends? Chooses ``prefill_confidence``.

Annotators who accept a wrong pre-selected guess corrupt exactly the labels active learning
relies on, so the guess should be pre-selected only where it is usually right. This replays the
default loop (``ActiveLearner``, as ``sync`` runs it) with an oracle on BANKING77 and the demo
tickets, and records, for every text sent after the first model, the model's confidence and
whether its guess was right. For each threshold: the share of sent texts that would be
pre-selected, and how often those pre-selected guesses are right; then the adaptive rule labelloop
uses by default (``prefill_confidence = "auto"``): before each batch, the threshold is read off the
answers to earlier batches (:func:`labelloop.review.prefill_threshold`, target 90 %, at least 30
answers), and the batch's guesses above it are pre-selected.

    python benchmarks/prefill.py                 # both datasets, 3 seeds
    python benchmarks/prefill.py --seeds 0 --budget 1000
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from _banking77 import RESULTS, banking77_paths

from labelloop.data import demo_paths, load_pool
from labelloop.featurize import featurize
from labelloop.labels import LabelSet
from labelloop.learner import ActiveLearner
from labelloop.review import prefill_threshold

THRESHOLDS = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95]
TARGET = 0.9


def replay(X: np.ndarray, labels: list[str], classes: LabelSet, *, seed: int, batch: int, budget: int,
           initial: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(confidence, guess right?, batch number) of every text sent once a model exists."""
    ids = [str(i) for i in range(len(labels))]
    learner = ActiveLearner(ids, ids, X, classes, seed=seed)
    known: dict[str, str] = {}
    conf, right, batch_of = [], [], []
    round_ = 0
    while len(known) < budget:
        head = learner.fit(known)
        picks = learner.select(head, set(known), batch if known else initial, labels=known, n_sent=len(known))
        if not picks:
            break
        for p in picks:
            if p.confidence is not None:
                conf.append(p.confidence)
                right.append(p.predicted == labels[int(p.id)])
                batch_of.append(round_)
            known[p.id] = labels[int(p.id)]
        round_ += 1
    return np.array(conf), np.array(right, dtype=bool), np.array(batch_of)


def adaptive(conf: np.ndarray, right: np.ndarray, batch_of: np.ndarray, target: float = TARGET) -> dict:
    """The default rule, replayed: each batch's threshold from the answers to the batches before it."""
    shown = np.zeros(len(conf), dtype=bool)
    for b in np.unique(batch_of):
        before = batch_of < b
        cutoff = prefill_threshold(conf[before].tolist(), right[before].tolist(), target=target)
        if cutoff is not None:
            shown |= (batch_of == b) & (conf >= cutoff)
    return {"preselected_share": float(shown.mean()),
            "right_when_preselected": float(right[shown].mean()) if shown.any() else None,
            "preselected": int(shown.sum())}


def table(conf: np.ndarray, right: np.ndarray) -> list[dict]:
    rows = []
    for t in THRESHOLDS:
        shown = conf >= t
        rows.append({"threshold": t, "preselected_share": float(shown.mean()),
                     "right_when_preselected": float(right[shown].mean()) if shown.any() else None,
                     "right_overall": float(right.mean())})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", type=int, default=1500)
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    sets = {"banking77": (banking77_paths()[0], "category", 100, 100), "demo": (demo_paths()[0], "label", 20, 20)}
    out: dict[str, dict] = {}
    for name, (path, column, initial, batch) in sets.items():
        pool = load_pool(path, label_column=column, require_labels=True)
        classes = LabelSet(pool.label_set)
        X = featurize(pool.texts, progress=True).pool
        confs, rights, autos = [], [], []
        for seed in seeds:
            c, r, b = replay(X, pool.labels, classes, seed=seed, batch=batch, initial=initial,  # type: ignore[arg-type]
                             budget=min(args.budget, len(pool) // 2))
            confs.append(c)
            rights.append(r)
            autos.append(adaptive(c, r, b))
        shown = sum(a["preselected"] for a in autos)
        right_shown = sum((a["right_when_preselected"] or 0) * a["preselected"] for a in autos)
        out[name] = {"n_texts": int(sum(len(c) for c in confs)), "rows": table(np.concatenate(confs),
                                                                             np.concatenate(rights)),
                     "auto": {"per_seed": autos, "preselected_share": shown / max(1, sum(len(c) for c in confs)),
                              "right_when_preselected": right_shown / shown if shown else None}}
    ok = [t for t in THRESHOLDS if all((row := next(r for r in v["rows"] if r["threshold"] == t))
                                       ["right_when_preselected"] is not None and row["right_when_preselected"]
                                       >= TARGET for v in out.values())]
    result = {"target": TARGET, "chosen": min(ok) if ok else None, "seeds": seeds, "datasets": out}
    (RESULTS / "prefill.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Pre-selecting the model's guess (seeds {args.seeds}; texts sent after the first model)\n",
             "| dataset | threshold | pre-selected share | right when pre-selected | right overall |",
             "|---|---:|---:|---:|---:|"]
    for name, v in out.items():
        for r in v["rows"]:
            rw = "—" if r["right_when_preselected"] is None else f"{r['right_when_preselected']:.3f}"
            lines.append(f"| {name} | {r['threshold']} | {r['preselected_share']:.3f} | {rw} | "
                         f"{r['right_overall']:.3f} |")
    lines.append(f"\nLowest fixed threshold right ≥ {TARGET:.0%} of the time on every dataset: {result['chosen']} "
                 f"(None: no fixed threshold works everywhere, which is why the default is adaptive).\n")
    lines += ["| dataset | default rule (auto, target 90 %) | pre-selected share | right when pre-selected |",
              "|---|---|---:|---:|"]
    for name, v in out.items():
        a = v["auto"]
        rw = "—" if a["right_when_preselected"] is None else f"{a['right_when_preselected']:.3f}"
        lines.append(f"| {name} | threshold from earlier blind answers | {a['preselected_share']:.3f} | {rw} |")
    (RESULTS / "prefill.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
