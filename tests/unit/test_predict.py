"""`labelloop predict`: the campaign's current model applied to a new file."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from labelloop.cli import app
from labelloop.data import demo_paths
from labelloop.errors import LabelloopError
from labelloop.features import DEFAULT_SMOOTHING
from labelloop.head import Head
from labelloop.store import Store


def test_predict_writes_the_current_models_labels(tmp_path, demo, demo_embedded, embedding_cache) -> None:
    train, test = demo
    X, X_test = demo_embedded
    classes = train.label_set
    # A campaign's model is trained on the pool's smoothed features.
    head = Head(len(classes)).fit(DEFAULT_SMOOTHING(X), train.label_array(classes))
    config = tmp_path / "labelloop.toml"
    config.write_text(f'labels = {json.dumps(classes)}\n[data]\npath = "{demo_paths()[0]}"\n'
                      f'[labelstudio]\nproject = "p"\n[model]\nbackend = "torch"\ncache_dir = "{embedding_cache}"\n'
                      f'[state]\npath = "state.db"\n')
    runner = CliRunner()
    args = ["predict", "--config", str(config), "--input", str(demo_paths()[1]), "--id-column", "id",
            "--out", str(tmp_path / "pred.csv")]
    with Store.open(tmp_path / "state.db") as store, store.tx():
        store.add_round(0, "labelloop-cold-start", "cold-start", {}, {}, None, None)
    no_model = runner.invoke(app, args)
    assert isinstance(no_model.exception, LabelloopError) and no_model.exception.exit_code == 2
    assert "no model yet" in str(no_model.exception) and "labelloop sync" in str(no_model.exception)
    assert not (tmp_path / "pred.csv").exists() and not list(tmp_path.glob("*.tmp"))

    with Store.open(tmp_path / "state.db") as store, store.tx():
        store.add_round(1, "m-1", "margin-kmeans", {}, {}, head.to_arrays(), None)
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "pred.csv", dtype=str)
    assert list(out.columns) == ["id", "label", "confidence", "model_version"]
    assert out["id"].tolist() == test.ids and set(out["label"]) <= set(classes)
    assert (out["model_version"] == "m-1").all()
    accuracy = float(np.mean(out["label"].to_numpy() == np.array(test.labels)))
    assert accuracy > 0.7  # the full demo head is right on most held-out tickets
    # New texts get the campaign's features: neighbours from its pool, the same smoothing.
    expected = [classes[k] for k in head.predict(DEFAULT_SMOOTHING(X_test, X))]
    assert out["label"].tolist() == expected


def test_predict_scores_with_the_neighbour_weight_of_the_models_labels_and_refuses_other_features(
    tmp_path, demo, demo_embedded, embedding_cache
) -> None:
    """A model trained on the whole pool saw the raw embeddings (the weight has faded to 0): new texts are
    scored on raw embeddings too. A state file begun with one weight all along is refused, with the fix."""
    train, _ = demo
    X, X_test = demo_embedded
    classes = train.label_set
    head = Head(len(classes)).fit(X, train.label_array(classes))  # every pool text labeled: weight 0
    config = tmp_path / "labelloop.toml"
    config.write_text(f'labels = {json.dumps(classes)}\n[data]\npath = "{demo_paths()[0]}"\nid_column = "id"\n'
                      f'[labelstudio]\nproject = "p"\n[model]\nbackend = "torch"\ncache_dir = "{embedding_cache}"\n'
                      f'[state]\npath = "state.db"\n')
    args = ["predict", "--config", str(config), "--input", str(demo_paths()[1]), "--id-column", "id",
            "--out", str(tmp_path / "pred.csv")]
    with Store.open(tmp_path / "state.db") as store, store.tx():
        store.set("features", str(DEFAULT_SMOOTHING))
        store.add_round(1, "m-all", "margin-kmeans", dict(zip(train.ids, train.labels, strict=True)), {},
                        head.to_arrays(), None)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    out = pd.read_csv(tmp_path / "pred.csv", dtype=str)
    assert out["label"].tolist() == [classes[k] for k in head.predict(X_test)]

    with Store.open(tmp_path / "state.db") as store, store.tx():
        store.set("features", "knn-smooth(k=6, weight=0.5)")  # a campaign begun before the weight faded
    refused = CliRunner().invoke(app, args)
    assert isinstance(refused.exception, LabelloopError)
    assert "neighbour_weight_shrinks = false" in str(refused.exception)
