"""The ceiling and the last points (issue 17, parts 1-2): what the head is trained on, on several data shapes.

Feature variants, each measured by full-pool accuracy (the head on every pool label) and by a campaign of
labelloop's default strategy (margin-kmeans, cold-start seed) on the same seeds:

- ``raw``: the encoder's unit-norm embeddings;
- ``smooth``: today's default, ``normalise(x + 0.5 · mean of 6 nearest pool rows)``;
- ``both``: raw and smoothed side by side, each unit-norm (rows of norm √2; ``both/√2`` rescales to 1);
- ``smooth+self-train``: the default features, and each round the head is refit with class-balanced
  pseudo-labels (per class, as many of the unlabeled rows it predicts most confidently as the class has labels,
  confidence ≥ 0.5, weight 0.3 against 1 for a true label);
- ``blend-cv`` (part 1c): the neighbour weight chosen each round by 3-fold cross-validation on the labels in
  hand among 0.5, 0.25, 0 and 1 (ties keep the earlier, 0.5 first): the head is fit on
  ``normalise(x + w · mean of 6 nearest pool rows)``. The strategy sees ``[x | neighbour mean]`` (768-d)
  as its features, so ``blend-0.5`` (the same, with the weight fixed at today's 0.5) is its control;
- ``blend-shrink-W`` (part 1d): the weight shrinks as labels arrive, ``W × (1 − labeled / pool)``: the
  smoothing while most of the pool is unlabeled, the raw embeddings once all of it is labeled;
- ``shrink``: labelloop's default since then, through the library (:func:`labelloop.featurize.features_by_labels`;
  the strategy sees the smoothed features of the round, not ``[x | m]``): ``0.5 × min(1, 2 × unlabeled
  share)`` in tenths, i.e. full until half the pool is labeled (``ceiling_fade_default``). A first version
  shrank from the first label, ``0.5 × unlabeled share`` (``ceiling_shrink_default``). ``smooth`` is the
  weight fixed at 0.5; ``smooth2`` smooths the smoothed features once more (two hops, as SGC with K=2);
  ``smooth-kK`` takes K neighbours instead of 6;
- ``center-smooth``: the embeddings centred on the pool mean and re-normalised before smoothing (the
  "CL2N" step of few-shot nearest-neighbour work, which removes the direction every sentence shares);
- ``smooth+ncm``: the default features, and the head's probabilities averaged with a nearest-class-mean
  classifier's (softmax of cosine to each class's mean labeled row, temperature 0.1): prototypes are
  known to be strong with a handful of labels per class;
- ``smooth+chars``: a lexical view beside the default features: character 2-4-gram TF-IDF of the texts
  (fitted on the pool), reduced to 256 dimensions by truncated SVD, unit-norm, weight 0.5, the two views
  side by side and re-normalised (intents often hinge on one keyword, which a sentence encoder blurs);

Shapes (built from BANKING77 as the other benchmarks build them, plus the demo tickets):
``banking77`` (77 intents, 10k pool), ``demo`` (13 intents, 721 texts), ``imbalanced``
(:func:`rare_classes.imbalanced_rows`: 77 intents of 130 down to 13 texts), ``ten-classes``
(:func:`label_errors.ten_classes`: 10 intents, ~1.3k texts), ``tiny-noisy`` (300 demo tickets, 10 % of
their labels flipped to another intent; the test set stays clean).

Labels-to-98 % are counted against one target per shape: 98 % of the best full-pool accuracy among the
variants measured, so the rows of a shape compare at the same bar.

    python benchmarks/ceiling.py --shapes demo,tiny-noisy --seeds 0,1,2 --variants raw,smooth,both
    python benchmarks/ceiling.py --shapes banking77 --seeds 0,1,2,3,4 --name ceiling_banking77

Writes benchmarks/results/<name>.{json,md}. Reads BANKING77 from ../shared (never copied).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd
from _banking77 import RESULTS, banking77_paths
from label_errors import ten_classes
from rare_classes import imbalanced_rows

from labelloop.data import demo_paths
from labelloop.embeddings import Encoder, default_cache_dir, embed
from labelloop.features import DEFAULT_SMOOTHING, NeighbourSmoothing
from labelloop.featurize import features_by_labels, featurize_vectors
from labelloop.head import DEFAULT_C, Head
from labelloop.simulate import full_pool, labels_to_reach, simulate

simulate_module = importlib.import_module("labelloop.simulate")  # the module (the package exports a function of that name)

# Per shape: initial labels, batch, budget.
PLANS = {"banking77": (100, 100, 1500), "demo": (20, 20, 400), "imbalanced": (100, 100, 1000),
         "ten-classes": (50, 50, 600), "tiny-noisy": (20, 20, 280)}


@dataclass(frozen=True)
class Shape:
    name: str
    pool: list[str]
    y: np.ndarray
    test: list[str]
    yt: np.ndarray
    n_classes: int


def shapes(names: list[str]) -> list[Shape]:
    train_path, test_path = banking77_paths()
    b_train, b_test = pd.read_csv(train_path), pd.read_csv(test_path)
    b_classes = sorted(b_train["category"].unique())
    by, byt = (np.searchsorted(b_classes, f["category"].to_numpy()) for f in (b_train, b_test))
    d_train, d_test = (pd.read_csv(p) for p in demo_paths())
    d_classes = sorted(d_train["label"].unique())
    dy, dyt = (np.searchsorted(d_classes, f["label"].to_numpy()) for f in (d_train, d_test))
    bt, btt, dt, dtt = (list(f["text"]) for f in (b_train, b_test, d_train, d_test))
    out = []
    for name in names:
        if name == "banking77":
            out.append(Shape(name, bt, by, btt, byt, len(b_classes)))
        elif name == "demo":
            out.append(Shape(name, dt, dy, dtt, dyt, len(d_classes)))
        elif name == "imbalanced":
            rows, _ = imbalanced_rows(by, len(b_classes), np.random.default_rng(12345))
            out.append(Shape(name, [bt[i] for i in rows], by[rows], btt, byt, len(b_classes)))
        elif name == "ten-classes":
            ten = ten_classes(len(b_classes), np.random.default_rng(12345))
            rows, trows = np.flatnonzero(np.isin(by, ten)), np.flatnonzero(np.isin(byt, ten))
            out.append(Shape(name, [bt[i] for i in rows], np.searchsorted(ten, by[rows]),
                             [btt[i] for i in trows], np.searchsorted(ten, byt[trows]), len(ten)))
        elif name == "tiny-noisy":
            rng = np.random.default_rng(12345)
            rows = np.sort(rng.choice(len(dt), 300, replace=False))
            y = dy[rows].copy()
            flip = rng.choice(len(rows), 30, replace=False)
            y[flip] = (y[flip] + rng.integers(1, len(d_classes), size=len(flip))) % len(d_classes)
            out.append(Shape(name, [dt[i] for i in rows], y, dtt, dyt, len(d_classes)))
        else:
            raise SystemExit(f"unknown shape {name!r}")
    return out


def self_training_train(weight: float = 0.3, min_confidence: float = 0.5) -> Callable[..., Head]:
    """A drop-in for :func:`labelloop.learner.train` that adds class-balanced pseudo-labels (see the docstring)."""

    def train(X: np.ndarray, y: np.ndarray, labeled: np.ndarray, n_classes: int, *, C: float = DEFAULT_C,
              seed: int = 0) -> Head:
        head = Head(n_classes, C=C, seed=seed).fit(X[labeled], y[labeled])
        unlabeled = np.setdiff1d(np.arange(len(X)), labeled)
        if len(unlabeled) == 0 or len(np.unique(y[labeled])) < 2:
            return head
        p = head.predict_proba(X[unlabeled])
        pred, conf = p.argmax(axis=1), p.max(axis=1)
        counts = np.bincount(y[labeled], minlength=n_classes)
        picked = []
        for c in np.flatnonzero(counts):
            rows = np.flatnonzero((pred == c) & (conf >= min_confidence))
            picked.append(rows[np.argsort(-conf[rows])][: counts[c]])
        extra = unlabeled[np.concatenate(picked)] if picked else np.empty(0, dtype=np.int64)
        if len(extra) == 0:
            return head
        rows = np.concatenate([labeled, extra])
        targets = np.concatenate([y[labeled], pred[np.searchsorted(unlabeled, extra)]])
        w = np.concatenate([np.ones(len(labeled)), np.full(len(extra), weight)])
        return Head(n_classes, C=C, seed=seed).fit(X[rows], targets, sample_weight=w)

    return train


class MeanMixHead:
    """Logistic regression's probabilities averaged with a nearest-class-mean classifier's (``+ncm``)."""

    def __init__(self, head: Head, means: np.ndarray, present: np.ndarray, temperature: float, share: float) -> None:
        self.head, self.means, self.present = head, means, present
        self.temperature, self.share, self.n_classes = temperature, share, head.n_classes

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        scores = np.full((len(X), self.n_classes), -np.inf)
        scores[:, self.present] = (np.asarray(X) @ self.means.T) / self.temperature
        scores = np.exp(scores - scores.max(axis=1, keepdims=True))
        nearest_mean = scores / scores.sum(axis=1, keepdims=True)
        return (1 - self.share) * self.head.predict_proba(X) + self.share * nearest_mean

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.predict_proba(X).argmax(axis=1)


def mean_mix_train(temperature: float = 0.1, share: float = 0.5) -> Callable[..., MeanMixHead]:
    """A drop-in for :func:`labelloop.learner.train` that adds the nearest-class-mean vote (see the docstring)."""

    def train(X: np.ndarray, y: np.ndarray, labeled: np.ndarray, n_classes: int, *, C: float = DEFAULT_C,
              seed: int = 0) -> MeanMixHead:
        Xl, yl = X[labeled], y[labeled]
        present = np.unique(yl)
        means = np.stack([Xl[yl == c].mean(axis=0) for c in present])
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        return MeanMixHead(Head(n_classes, C=C, seed=seed).fit(Xl, yl), means, present, temperature, share)

    return train


BLEND_WEIGHTS = (0.5, 0.25, 0.0, 1.0)  # cross-validation ties keep the earlier: today's 0.5 first


def blend(Z: np.ndarray, w: float) -> np.ndarray:
    """``normalise(x + w · m)`` for rows ``[x | m]`` (embedding | mean of its pool neighbours)."""
    d = Z.shape[1] // 2
    F = Z[:, :d] + w * Z[:, d:]
    return F / np.linalg.norm(F, axis=1, keepdims=True)


class BlendHead:
    """A head on the blended features of rows ``[x | m]``: what ``simulate`` scores with."""

    def __init__(self, head: Head, w: float) -> None:
        self.head, self.w = head, w
        self.n_classes = head.n_classes

    def predict_proba(self, Z: np.ndarray) -> np.ndarray:
        return self.head.predict_proba(blend(np.asarray(Z), self.w))

    def predict(self, Z: np.ndarray) -> np.ndarray:
        return self.predict_proba(Z).argmax(axis=1)


def blend_train(fixed: float | None, chosen: list[float], folds: int = 3,
                shrink: bool = False) -> Callable[..., BlendHead]:
    """A drop-in for :func:`labelloop.learner.train` on ``[x | m]`` rows: the weight ``fixed``, or (None)
    chosen by ``folds``-fold cross-validated accuracy on the labels in hand; each choice is appended to
    ``chosen``. ``shrink`` scales ``fixed`` by the unlabeled share of the pool (0 on a fully labeled pool)."""

    def train(Z: np.ndarray, y: np.ndarray, labeled: np.ndarray, n_classes: int, *, C: float = DEFAULT_C,
              seed: int = 0) -> BlendHead:
        labeled = np.asarray(labeled)
        yl = y[labeled]
        w = 0.5 if fixed is None else fixed
        if shrink and fixed is not None:
            w = fixed * (1 - len(labeled) / len(Z))
        if fixed is None and len(labeled) >= 2 * folds and len(np.unique(yl)) >= 2:
            parts = np.array_split(np.random.default_rng(seed).permutation(len(labeled)), folds)
            best = -1
            for cand in BLEND_WEIGHTS:
                F, correct = blend(Z[labeled], cand), 0
                for i, held in enumerate(parts):
                    tr = np.concatenate([p for j, p in enumerate(parts) if j != i])
                    correct += int((Head(n_classes, C=C, seed=seed).fit(F[tr], yl[tr]).predict(F[held])
                                    == yl[held]).sum())
                if correct > best:
                    best, w = correct, cand
        chosen.append(w)
        return BlendHead(Head(n_classes, C=C, seed=seed).fit(blend(Z[labeled], w), yl), w)

    return train


def blend_variant(name: str, chosen: list[float]) -> Callable[..., BlendHead]:
    """``blend-cv``, ``blend-W`` (weight W) or ``blend-shrink-W`` (W times the unlabeled share of the pool)."""
    rest = name.removeprefix("blend-")
    if rest == "cv":
        return blend_train(None, chosen)
    if rest.startswith("shrink-"):
        return blend_train(float(rest.removeprefix("shrink-")), chosen, shrink=True)
    return blend_train(float(rest), chosen)


def neighbour_means(X: np.ndarray, Xt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's mean of its 6 nearest pool rows (itself first for pool rows), as the default smoothing uses."""
    from labelloop.index import nearest, neighbour_graph

    k = DEFAULT_SMOOTHING.k
    return X[neighbour_graph(X, k)].mean(axis=1), X[nearest(Xt, X, k)].mean(axis=1)


DEFAULT_FIXED = NeighbourSmoothing(DEFAULT_SMOOTHING.k, DEFAULT_SMOOTHING.weight)


def shrinking(X: np.ndarray, Xt: np.ndarray) -> Callable[[int], tuple[np.ndarray, np.ndarray]]:
    """The default's features per number of labels (the neighbour weight shrinks with the labeled share)."""
    f = featurize_vectors(X, Xt, identity="ceiling", smoothing=replace(DEFAULT_SMOOTHING, shrink=True))
    return features_by_labels(f)


def char_view(pool: list[str], test: list[str], dims: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Character 2-4-gram TF-IDF fitted on the pool, reduced by truncated SVD, unit-norm rows."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    tfidf = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True, min_df=2)
    A, B = tfidf.fit_transform(pool), tfidf.transform(test)
    svd = TruncatedSVD(min(dims, A.shape[1] - 1), random_state=0).fit(A)
    L, Lt = svd.transform(A), svd.transform(B)
    return ((L / np.maximum(np.linalg.norm(L, axis=1, keepdims=True), 1e-12)).astype(np.float32),
            (Lt / np.maximum(np.linalg.norm(Lt, axis=1, keepdims=True), 1e-12)).astype(np.float32))


def variant_features(name: str, X: np.ndarray, Xt: np.ndarray, F: np.ndarray, Ft: np.ndarray,
                     texts: tuple[list[str], list[str]] = ([], [])):
    if name == "shrink":
        return F, Ft
    if name == "smooth2":  # two hops: the smoothed features smoothed again over the smoothed pool
        return DEFAULT_FIXED(F), DEFAULT_FIXED(Ft, F)
    if name.startswith("smooth-k"):  # more neighbours, the same weight
        s = NeighbourSmoothing(int(name.removeprefix("smooth-k")), DEFAULT_SMOOTHING.weight)
        return s(X), s(Xt, X)
    if name.startswith("blend-"):
        M, Mt = neighbour_means(X, Xt)
        return np.hstack([X, M]), np.hstack([Xt, Mt])
    if name == "raw":
        return X, Xt
    if name == "smooth":
        return F, Ft
    if name == "both":
        return np.hstack([X, F]), np.hstack([Xt, Ft])
    if name == "both/√2":
        s = np.float32(1 / np.sqrt(2))
        return np.hstack([X, F]) * s, np.hstack([Xt, Ft]) * s
    if name == "smooth+chars":
        L, Lt = char_view(texts[0], texts[1])
        both, both_t = np.hstack([F, 0.5 * L]), np.hstack([Ft, 0.5 * Lt])
        return (both / np.linalg.norm(both, axis=1, keepdims=True),
                both_t / np.linalg.norm(both_t, axis=1, keepdims=True))
    if name == "center-smooth":
        mean = X.mean(axis=0)
        C, Ct = X - mean, Xt - mean
        C, Ct = C / np.linalg.norm(C, axis=1, keepdims=True), Ct / np.linalg.norm(Ct, axis=1, keepdims=True)
        return DEFAULT_FIXED(C), DEFAULT_FIXED(Ct, C)
    if name.endswith(("+self-train", "+ncm")):
        return variant_features(name.rsplit("+", 1)[0], X, Xt, F, Ft, texts)
    raise SystemExit(f"unknown variant {name!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shapes", default="demo,tiny-noisy,ten-classes,imbalanced,banking77")
    ap.add_argument("--variants", default="raw,smooth,both")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--full-pool-only", default="", help="variants measured by full-pool accuracy only (no campaign)")
    ap.add_argument("--strategy", default="margin-kmeans")
    ap.add_argument("--budget-banking77", type=int, default=None, help="override the BANKING77 budget")
    ap.add_argument("--C", type=float, default=DEFAULT_C, help="the head's inverse regularisation")
    ap.add_argument("--name", default="ceiling")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    only_ceiling = [v for v in args.full_pool_only.split(",") if v]
    encoder = Encoder()
    report: dict = {"strategy": args.strategy, "C": args.C, "seeds": seeds, "model": encoder.name, "smoothing": str(DEFAULT_SMOOTHING),
                    "load_average_start": os.getloadavg(), "shapes": {}}
    plain_train = simulate_module.train
    for shape in shapes(args.shapes.split(",")):
        X = embed(shape.pool, encoder, default_cache_dir())
        Xt = embed(shape.test, encoder, default_cache_dir())
        fixed = NeighbourSmoothing(DEFAULT_SMOOTHING.k, DEFAULT_SMOOTHING.weight)  # "smooth": one weight all along
        F, Ft = fixed(X), fixed(Xt, X)
        initial, batch, budget = PLANS[shape.name]
        if shape.name == "banking77" and args.budget_banking77:
            budget = args.budget_banking77
        tops: dict[str, dict] = {}
        for v in [*variants, *only_ceiling]:  # self-training leaves the full pool as it is: nothing is left unlabeled
            base = v if v == "smooth+chars" else v.split("+")[0]
            if base not in tops:
                P, Pt = variant_features(base, X, Xt, F, Ft, (shape.pool, shape.test))
                if base.startswith("blend-"):  # the full pool through the same blended head
                    simulate_module.train = blend_variant(base, [])
                if base == "shrink":
                    P, Pt = shrinking(X, Xt)(len(shape.y))
                try:
                    tops[base] = full_pool(P, shape.y, Pt, shape.yt, shape.n_classes, C=args.C)
                finally:
                    simulate_module.train = plain_train
            tops[v] = tops[base]
            if v.endswith("+ncm"):  # the prototypes' vote stays in the full-pool head too
                simulate_module.train = mean_mix_train()
                try:
                    P, Pt = variant_features(base, X, Xt, F, Ft, (shape.pool, shape.test))
                    tops[v] = full_pool(P, shape.y, Pt, shape.yt, shape.n_classes, C=args.C)
                finally:
                    simulate_module.train = plain_train
        target = {"accuracy": max(t["accuracy"] for t in tops.values()), "macro_f1": 1.0, "n": len(shape.y)}
        entry: dict = {"n_pool": len(shape.y), "n_test": len(shape.yt), "n_classes": shape.n_classes,
                       "plan": {"initial": initial, "batch": batch, "budget": budget},
                       "full_pool": {v: t["accuracy"] for v, t in tops.items()}, "target_accuracy": target["accuracy"],
                       "variants": {}}
        for v in variants:
            P, Pt = variant_features(v, X, Xt, F, Ft, (shape.pool, shape.test))
            chosen: list[float] = []
            if v.endswith("self-train"):
                simulate_module.train = self_training_train()
            elif v.endswith("+ncm"):
                simulate_module.train = mean_mix_train()
            elif v.startswith("blend-"):
                simulate_module.train = blend_variant(v, chosen)
            else:
                simulate_module.train = plain_train
            at = shrinking(X, Xt) if v == "shrink" else None
            runs, cpu0 = [], time.process_time()
            try:
                for seed in seeds:
                    runs.append(simulate(P, shape.y, Pt, shape.yt, shape.n_classes, strategy=args.strategy,
                                         initial=initial, batch_size=batch, budget=budget, seed=seed,
                                         ceiling=target, features_at=at, C=args.C))
            finally:
                simulate_module.train = plain_train
            curves = [[(r["n_labeled"], r["accuracy"]) for r in run["rounds"]] for run in runs]
            reach = [labels_to_reach(run, 0.98) for run in runs]
            entry["variants"][v] = {
                "labels_to_98": reach,
                "mean_labels_to_98": float(np.mean(reach)) if all(r is not None for r in reach) else None,
                "final_accuracy": float(np.mean([c[-1][1] for c in curves])),
                "mean_curve": [(n, float(np.mean([c[i][1] for c in curves]))) for i, (n, _) in enumerate(curves[0])],
                "curves": curves, "cpu_seconds": time.process_time() - cpu0,
                **({"weights_chosen": chosen} if chosen else {}),
            }
            e = entry["variants"][v]
            print(f"{shape.name:12s} {v:18s} full-pool {tops[v]['accuracy']:.3f}  to-98% {reach} "
                  f"final {e['final_accuracy']:.3f}  cpu {e['cpu_seconds']:.0f}s  load {os.getloadavg()[0]:.2f}",
                  flush=True)
        report["shapes"][shape.name] = entry
        report["load_average_end"] = os.getloadavg()
        RESULTS.mkdir(exist_ok=True)  # written after each shape: a long run that is stopped keeps what it measured
        (RESULTS / f"{args.name}.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / f"{args.name}.md").write_text(render([report]))
    print(render([report]))


def render(reports: list[dict]) -> str:
    """One markdown table for one or more result files (e.g. BANKING77 run apart from the smaller shapes)."""
    lines = ["| shape | variant | full-pool acc. | labels to 98 % (mean; per seed) | to 98 % of own full pool "
             "| accuracy at budget | CPU-s |", "|---|---|---:|---|---:|---:|---:|"]

    def own(curves: list, ceiling: float) -> str:
        hits = [next((n for n, a in c if a >= 0.98 * ceiling - 1e-12), None) for c in curves]
        return f"{np.mean(hits):.0f}" if all(h is not None for h in hits) else "not on all seeds"

    notes = []
    shown: set[tuple[str, str]] = set()
    for report in reports:
        notes.append(f"{', '.join(report['shapes'])}: {report['strategy']}, seeds {report['seeds']}, load average "
                     f"{report['load_average_start'][0]:.1f} at start, {report['load_average_end'][0]:.1f} at end.")
        for name, entry in report["shapes"].items():
            for v, acc in entry["full_pool"].items():
                if (name, v) in shown:  # a later file's full-pool-only row for a variant already listed
                    continue
                shown.add((name, v))
                e = entry["variants"].get(v)
                if e is None:
                    lines.append(f"| {name} | {v} | {acc:.3f} | (full pool only) | | | |")
                    continue
                mean = f"{e['mean_labels_to_98']:.0f}" if e["mean_labels_to_98"] is not None else "not on all seeds"
                per_seed = ", ".join("—" if r is None else str(r) for r in e["labels_to_98"])
                lines.append(f"| {name} | {v} | {acc:.3f} | {mean}; {per_seed} | {own(e['curves'], acc)} | "
                             f"{e['final_accuracy']:.3f} @ {entry['plan']['budget']} | {e['cpu_seconds']:.0f} |")
    head = ["Labels to 98 % of the shape's best full-pool accuracy among its variants (one target per shape; "
            "— = not reached within the budget). CPU-s: all seeds of the row, this process (2 shared cores).", ""]
    return "\n".join([*head, *lines, "", *notes]) + "\n"


if __name__ == "__main__":
    import sys

    if len(sys.argv) > 2 and sys.argv[1] == "--render":  # --render OUT.md A.json B.json ...
        out = sys.argv[2]
        (RESULTS / out).write_text(render([json.loads((RESULTS / f).read_text()) for f in sys.argv[3:]]))
    else:
        main()
