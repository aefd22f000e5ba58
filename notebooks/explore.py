# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Exploring the active-learning loop
#
# Look at the loop instead of reading about it: how fast each strategy learns, where in the
# embedding space the model asks its questions, what it still gets wrong, and which texts it
# would ask about next.
#
# Everything runs offline on the bundled demo tickets in a minute or two. To use your own data,
# name your files in the next cell. Every figure comes from `labelloop.plots`, and the CLI uses
# the same functions, so this notebook stays thin.
#
# `notebooks/explore.py` is this notebook as a plain script (jupytext percent format), which
# keeps reviews readable. With jupytext installed, Jupyter saves both files together.

# %% tags=["parameters"]
# Data: None uses the bundled demo tickets. Paths are relative to this notebook's folder.
# For BANKING77 (10,000 texts, 77 intents: several minutes to embed the first time), use:
#   TRAIN, TEST = "../../shared/data/banking77/train.csv", "../../shared/data/banking77/test.csv"
#   LABEL_COLUMN, ID_COLUMN, INITIAL, BATCH, BUDGET = "category", None, 100, 100, 2000
TRAIN: str | None = None
TEST: str | None = None
TEXT_COLUMN, LABEL_COLUMN, ID_COLUMN = "text", "label", "id"

STRATEGY, BASELINE = "margin-kmeans", "random"  # see the README for every strategy
INITIAL, BATCH, BUDGET = 20, 20, 300  # cold-start seed size, texts per round, labels to spend
ROUNDS = 5  # rounds of the loop we replay by hand (the learning curves run to BUDGET)
PROJECTION = "tsne"  # "pca" is instant, "tsne" separates intents better
SEED = 0

# %%
# %matplotlib inline
import os
from pathlib import Path

import numpy as np
import pandas as pd

from labelloop import plots
from labelloop.data import check_test_labels, demo_paths, load_pool
from labelloop.embeddings import Encoder, default_cache_dir, embed
from labelloop.features import DEFAULT_SMOOTHING
from labelloop.featurize import features_by_labels, featurize_vectors
from labelloop.learner import evaluate, query, train
from labelloop.simulate import area_under_curve, full_pool, labels_to_reach, simulate
from labelloop.strategies import get_strategy

pd.set_option("display.max_colwidth", 120)

# %% [markdown]
# ## Data and embeddings
#
# Every text is embedded once with the bundled all-MiniLM-L6-v2 encoder. Nothing is downloaded,
# and the vectors are cached in `$LABELLOOP_CACHE_DIR`, or `~/.cache/labelloop` when that is not
# set, so a rerun embeds nothing.

# %%
if TRAIN is None:
    TRAIN, TEST = (str(p) for p in demo_paths())
pool = load_pool(TRAIN, TEXT_COLUMN, LABEL_COLUMN, ID_COLUMN, require_labels=True)
test = load_pool(TEST, TEXT_COLUMN, LABEL_COLUMN, ID_COLUMN, require_labels=True)
check_test_labels(pool, test)
classes = pool.label_set
y_pool, y_test = pool.label_array(classes), test.label_array(classes)

encoder = Encoder()
X_pool = embed(pool.texts, encoder, default_cache_dir(), progress=True)
X_test = embed(test.texts, encoder, default_cache_dir(), progress=True)
print(f"{len(pool)} pool texts, {len(test)} test texts, {len(classes)} classes, "
      f"{X_pool.shape[1]}-d embeddings from {encoder.name}")

# %% [markdown]
# The head does not see the raw embeddings. Each one is blended with the mean of its 6 nearest
# pool texts (`labelloop.features`), which pulls it toward its local cluster, so a few labels
# generalise along a cluster of paraphrases instead of around single points. It uses no labels,
# only the pool; test texts take their neighbours from the pool, never from each other.
# The neighbours stand in for labels a text does not have yet, so their weight shrinks as the
# pool gets labeled: `features_at(n)` gives the features of a head trained on `n` labels.

# %%
smoothing = DEFAULT_SMOOTHING
f = featurize_vectors(X_pool, X_test, identity=encoder.identity, smoothing=smoothing)
features_at = features_by_labels(f)
F_pool, F_test = features_at(0)
print(f"features: {smoothing}")

# %% [markdown]
# ## The loop, by hand
#
# The simulation is the real loop with the known labels acting as the annotator. With no model
# yet, the **cold-start** seed is the text nearest each k-means centroid of the pool. After that,
# every round trains the head on the labels so far and asks for the next batch: with
# `margin-kmeans`, that is the most uncertain texts spread over k-means clusters. `simulate` runs
# exactly these `train` and `query` calls; here we keep which texts were asked in each round.

# %%
rng = np.random.default_rng(SEED)
strategy = get_strategy(STRATEGY)
labeled = np.zeros(len(pool), dtype=bool)

seed_batch = query(None, F_pool, np.arange(len(pool)), strategy, INITIAL, rng)  # no model: cold start
labeled[seed_batch.indices] = True
queried = [seed_batch.indices]
for _ in range(ROUNDS):
    F_pool, F_test = features_at(int(labeled.sum()))
    head = train(F_pool, y_pool, np.flatnonzero(labeled), len(classes), seed=SEED)
    batch = query(head, F_pool, np.flatnonzero(~labeled), strategy, BATCH, rng)
    labeled[batch.indices] = True  # the "annotator" reveals y_pool[batch.indices]
    queried.append(batch.indices)
F_pool, F_test = features_at(int(labeled.sum()))
head = train(F_pool, y_pool, np.flatnonzero(labeled), len(classes), seed=SEED)
print(f"{labeled.sum()} labels after the seed and {ROUNDS} rounds: "
      f"test accuracy {evaluate(head, F_test, y_test)['accuracy']:.3f}")

asked = pd.DataFrame([
    {"round": r, "text": pool.texts[i], "label": pool.labels[i]}
    for r, rows in enumerate(queried) for i in rows
])
asked.groupby("round").head(3)  # the first three texts asked in each round (round 0: cold-start seed)

# %% [markdown]
# ## Learning curves
#
# Both strategies spend the same budget from the same cold-start seed. The dashed line is the
# ceiling: the same head trained on every pool label.

# %%
F_all, F_test_all = features_at(len(pool))  # every text labeled
ceiling = full_pool(F_all, y_pool, F_test_all, y_test, len(classes))
F0, F0_test = features_at(0)
results = [
    simulate(F0, y_pool, F0_test, y_test, len(classes), strategy=name, initial=INITIAL, batch_size=BATCH,
             budget=BUDGET, seed=SEED, model=encoder.name, features=str(smoothing), ceiling=ceiling,
             features_at=features_at)
    for name in (STRATEGY, BASELINE)
]
plots.learning_curves(results)

# %%
pd.DataFrame([{
    "strategy": res["strategy"],
    "labels to 95 % of full pool": labels_to_reach(res, 0.95),
    "labels to 98 %": labels_to_reach(res, 0.98),
    "mean accuracy over the budget": round(area_under_curve(res), 3),
    "final accuracy": round(res["rounds"][-1]["accuracy"], 3),
} for res in results]).set_index("strategy")

# %% [markdown]
# ## Where the model asks
#
# Left: the pool in 2-D, coloured by class. Right: the same map, with the texts asked in each
# round. The cold-start seed (stars) covers the space. The later rounds go to the borders
# between classes, where the model hesitates.

# %%
coords = plots.embedding_2d(X_pool, PROJECTION, seed=SEED)
plots.embedding_map(coords, y_pool, classes, queried, projection=PROJECTION)

# %% [markdown]
# ## What it gets wrong
#
# The model after the rounds above, on the test set: the classes it confuses most, with each
# row's errors toward every other class summed in *other classes*.

# %%
pred = head.predict(F_test)
plots.confusion_top(y_test, pred, classes, k=8)

# %% [markdown]
# F1 per class, against two references: a head trained on as many *random* labels, and the full
# pool. The worst classes are at the top.

# %%
random_rows = np.random.default_rng(SEED).choice(len(pool), int(labeled.sum()), replace=False)
random_head = train(F_pool, y_pool, random_rows, len(classes), seed=SEED)
full_head = train(F_all, y_pool, np.arange(len(pool)), len(classes), seed=SEED)
plots.per_class_f1(y_test, {
    f"{STRATEGY}, {labeled.sum()} labels": pred,
    f"random, {labeled.sum()} labels": random_head.predict(F_test),
    f"full pool, {len(pool)} labels": full_head.predict(F_test_all),
}, classes)

# %% [markdown]
# ## What it would ask next
#
# The unlabeled texts whose two best labels are closest. Red marks a wrong best guess; the true
# label is known here because this is a simulation.

# %%
unlabeled = np.flatnonzero(~labeled)
unlabeled_texts = [pool.texts[i] for i in unlabeled]
probs = head.predict_proba(F_pool[unlabeled])
plots.uncertain_texts(unlabeled_texts, probs, classes, n=10, y_true=y_pool[unlabeled])

# %%
pd.DataFrame(plots.most_uncertain(unlabeled_texts, probs, classes, n=10, y_true=y_pool[unlabeled])).drop(
    columns="index").round(3)

# %% [markdown]
# ## Label Studio round trip (optional)
#
# With `LABEL_STUDIO_URL` and `LABEL_STUDIO_API_KEY` set, for example by
# `eval "$(python3 scripts/labelstudio.py start)"`, this section pushes the next batch to a
# project, with the model's guess as a pre-annotation. It then pulls back whatever people have
# labeled and retrains. Without `LABEL_STUDIO_URL`, it skips.

# %%
LS_PROJECT = f"labelloop-explore-{Path(TRAIN).stem}"
LS_BATCH = 10

ls = None
if not os.environ.get("LABEL_STUDIO_URL"):
    print("LABEL_STUDIO_URL is not set: skipping the Label Studio round trip.")
else:
    from labelloop.labelstudio import Connector, PushItem, model_version_for, resolve

    ls = Connector()  # LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY
    project = ls.ensure_project(LS_PROJECT, classes)
    known = {pool.ids[i]: pool.labels[i] for i in np.flatnonzero(labeled)}
    version = model_version_for(known, encoder.identity, STRATEGY)
    # Texts already in the project are not candidates, so rerunning this cell sends new ones.
    in_project = ls.existing_ids(project.id)
    candidates = np.array([i for i in np.flatnonzero(~labeled) if pool.ids[i] not in in_project],
                          dtype=np.int64)
    picked = query(head, F_pool, candidates, strategy, LS_BATCH, np.random.default_rng(SEED))
    items = [
        PushItem(pool.ids[row], pool.texts[row], label=classes[int(p.argmax())], score=float(p.max()),
                 cluster=int(c) if c >= 0 else None)
        for row, p, c in zip(picked.indices, picked.probs, picked.clusters)
    ]
    report = ls.push(project.id, items, version)
    print(f"Project {project.id} {project.title!r}: {len(report.created)} task(s) created, "
          f"{len(report.existing)} already there. Label them at {ls.url}/projects/{project.id}, "
          f"then run the next cell.")

# %%
if ls is not None:
    pulled = ls.pull(project.id)
    people = {k: r.label for k, r in resolve(pulled.records).items() if r.label is not None}
    row_of = {id_: r for r, id_ in enumerate(pool.ids)}
    y_known = np.where(labeled, y_pool, -1)
    for id_, label in people.items():
        if id_ in row_of:
            y_known[row_of[id_]] = classes.index(label)
    F_known, F_known_test = features_at(int((y_known >= 0).sum()))
    retrained = train(F_known, y_known, np.flatnonzero(y_known >= 0), len(classes), seed=SEED)
    print(f"Pulled {len(people)} label(s) from Label Studio. Test accuracy "
          f"{evaluate(head, F_test, y_test)['accuracy']:.3f} with {labeled.sum()} labels, "
          f"{evaluate(retrained, F_known_test, y_test)['accuracy']:.3f} with {(y_known >= 0).sum()}.")
