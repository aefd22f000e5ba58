"""The simulated-oracle loop end to end on the bundled demo data with the real encoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelloop.cli import app
from labelloop.simulate import accuracy_at, area_under_curve, labels_to_reach, simulate


@pytest.fixture(scope="module")
def arrays(demo, demo_embedded):
    train, test = demo
    classes = train.label_set
    X, Xt = demo_embedded
    return X, train.label_array(classes), Xt, test.label_array(classes), len(classes)


def run(arrays, **kw):
    X, y, Xt, yt, k = arrays
    return simulate(X, y, Xt, yt, k, **{"initial": 20, "batch_size": 20, "budget": 100, **kw})


def test_result_follows_the_results_json_schema(arrays):
    res = run(arrays, strategy="margin", seed=3, model="m", features="f")
    assert res["features"] == "f"
    assert {"strategy", "seed", "model", "features", "n_pool", "n_classes", "full_pool", "rounds"} <= res.keys()
    assert (res["strategy"], res["seed"], res["model"], res["n_pool"]) == ("margin", 3, "m", len(arrays[0]))
    assert set(res["full_pool"]) == {"accuracy", "macro_f1", "n"}
    assert res["full_pool"]["n"] == len(arrays[0])  # a small pool: the ceiling saw every row
    for r in res["rounds"]:
        assert {"round", "n_labeled", "accuracy", "macro_f1", "precision", "recall", "seconds", "cpu_seconds"} <= r.keys()
        assert all(0 <= r[m] <= 1 for m in ("accuracy", "macro_f1", "precision", "recall"))
    json.dumps(res)  # plain data only


def test_each_round_trains_and_scores_on_the_features_of_its_label_count(arrays):
    """``features_at(n)`` is asked for every round's labels and for the ceiling's (every pool label)."""
    X, _, Xt, _, _ = arrays
    asked: list[int] = []

    def features_at(n: int) -> tuple[np.ndarray, np.ndarray]:
        asked.append(n)
        return X, Xt

    res = run(arrays, features_at=features_at)
    assert asked == [r["n_labeled"] for r in res["rounds"]] + [len(X)]
    assert res["rounds"] == [{**r, **{t: res["rounds"][i][t] for t in TIMES}} for i, r in enumerate(run(arrays)["rounds"])]


TIMES = ("seconds", "cpu_seconds", "seconds_train", "seconds_score", "seconds_select")


def test_rounds_report_classes_seen_and_each_classes_recall(arrays):
    k = arrays[4]
    res = run(arrays, strategy="random", seed=1)
    for r in res["rounds"]:
        assert len(r["class_recall"]) == k
        assert 1 <= r["classes_seen"] <= k
    seen = [r["classes_seen"] for r in res["rounds"]]
    assert seen == sorted(seen)  # labels are only ever added
    # a class nobody has labeled yet is never predicted: its recall is 0 while it is unseen
    first = res["rounds"][0]
    if first["classes_seen"] < k:
        assert min(v for v in first["class_recall"] if v is not None) == 0.0
    # the mean of the per-class recalls is the macro recall over the test classes
    last = res["rounds"][-1]
    present = [v for v in last["class_recall"] if v is not None]
    assert np.mean(present) == pytest.approx(last["recall"])


def test_rounds_add_one_batch_each_until_the_budget(arrays):
    res = run(arrays, budget=90)
    assert [r["n_labeled"] for r in res["rounds"]] == [20, 40, 60, 80, 90]
    assert [r["round"] for r in res["rounds"]] == [0, 1, 2, 3, 4]


def test_initial_zero_starts_cold_with_one_batch(arrays):
    res = run(arrays, initial=0, batch_size=13, budget=39)
    assert [r["n_labeled"] for r in res["rounds"]] == [13, 26, 39]


def test_learning_is_real_accuracy_rises_toward_the_ceiling(arrays):
    res = run(arrays, budget=200)
    first, last = res["rounds"][0]["accuracy"], res["rounds"][-1]["accuracy"]
    assert last > first
    assert last > 0.6 * res["full_pool"]["accuracy"]


def test_same_seed_same_curve(arrays):
    a, b = run(arrays, seed=5), run(arrays, seed=5)
    assert [r["accuracy"] for r in a["rounds"]] == [r["accuracy"] for r in b["rounds"]]


def test_the_seed_set_is_chosen_by_the_strategys_own_seed_rule():
    """A strategy object may carry its cold start (``typical-seed``); simulate and query both use it."""
    from labelloop.learner import query
    from labelloop.strategies import ColdStart, Context, DiverseUncertainty

    g = np.random.default_rng(0)
    X = g.normal(size=(60, 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.arange(60) % 3
    calls: list[int] = []

    def seed_rule(ctx, n, rng):
        calls.append(n)
        return ColdStart(pick="typical")(ctx, n, rng)

    strategy = DiverseUncertainty(cold_start=seed_rule, name="spy")
    res = simulate(X, y, X, y, 3, strategy=strategy, initial=12, batch_size=10, budget=32, seed=4)
    assert calls == [12] and res["strategy"] == "spy"
    rows = np.arange(5, 60)
    q = query(None, X, rows, strategy, 6, np.random.default_rng(1))
    typical = ColdStart(pick="typical")(Context.cold(X[rows]), 6, np.random.default_rng(1))
    assert q.indices.tolist() == rows[typical.indices].tolist() and calls == [12, 6]


def test_curve_summaries():
    res = {"full_pool": {"accuracy": 0.8}, "rounds": [
        {"n_labeled": 10, "accuracy": 0.5}, {"n_labeled": 20, "accuracy": 0.79}, {"n_labeled": 30, "accuracy": 0.8}]}
    assert labels_to_reach(res, 0.98) == 20
    assert labels_to_reach(res, 1.0) == 30
    assert labels_to_reach(res, 1.1) is None
    assert accuracy_at(res, 15) == pytest.approx(0.645)
    assert area_under_curve(res) == pytest.approx((0.645 * 10 + 0.795 * 10) / 20)


def test_cli_runs_on_the_bundled_demo_and_writes_json_and_plot(tmp_path, monkeypatch, embedding_cache,
                                                                demo_embedded):
    from typer.testing import CliRunner

    monkeypatch.setenv("LABELLOOP_CACHE_DIR", str(embedding_cache))
    out, png = tmp_path / "r.json", tmp_path / "c.png"
    result = CliRunner().invoke(app, ["simulate", "--strategy", "margin-kmeans,random", "--initial", "20",
                                      "--batch-size", "20", "--budget", "60", "--out", str(out), "--plot", str(png)])
    assert result.exit_code == 0, result.output
    data = json.loads(out.read_text())
    assert [d["strategy"] for d in data] == ["margin-kmeans", "random"]
    assert data[0]["features"] == "knn-smooth(k=6, weight=0.5, shrinking)"
    assert [r["n_labeled"] for r in data[0]["rounds"]] == [20, 40, 60]
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    assert "Label efficiency" in result.output


@pytest.mark.parametrize("args, message", [
    (["--strategy", "clever"], "unknown strategy 'clever'"),
    (["--train", "x.csv"], "give both --train and --test"),
    (["--initial-strategy", "best"], "--initial-strategy must be one of"),
    (["--train", "missing.csv", "--test", "missing.csv"], "file not found"),
    (["--budget", "10", "--initial", "20"], "smaller than --initial"),
    (["--out", "."], "is a directory"),
    (["--plot", "curve.docx"], "unsupported image type"),
    (["--neighbours", "-1"], "Invalid value for '--neighbours'"),
    (["--budget", "lots"], "Invalid value for '--budget'"),
])
def test_cli_bad_input_is_one_line_and_exit_code_2(args, message, tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.chdir(tmp_path)
    proc = subprocess.run([sys.executable, "-c", "from labelloop.cli import main; main()", "simulate", *args],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr


def test_ctrl_c_exits_130_with_a_message(monkeypatch, capsys):
    import labelloop.cli.simulate as cli_simulate
    from labelloop.cli import main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_simulate, "load_data", interrupted)
    monkeypatch.setattr("sys.argv", ["labelloop", "simulate"])
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 130
    assert "interrupted" in capsys.readouterr().err
