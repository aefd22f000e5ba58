"""`status` and `report` read the ledger; counts respect relabels, deletions and skips."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from labelloop import plots, report
from labelloop.config import load_config
from labelloop.data import Pool
from labelloop.head import Head
from labelloop.labelstudio import AnnotationRecord
from labelloop.store import Store
from labelloop.sync import Campaign

LABELS = ["billing", "bug", "other"]


def rec(event, item, ann, label, who, day="2026-11-20", **kw) -> AnnotationRecord:
    return AnnotationRecord(event=event, id=item, project=1, task_id=100 + ann, annotation_id=ann, label=label,
                            annotator=who, annotator_email=f"user{who}@x.test", created_at=f"{day}T10:00:00+00:00",
                            **kw)


@pytest.fixture
def campaign_state(tmp_path):
    (tmp_path / "pool.csv").write_text("id,text\n" + "".join(f"t{i},text {i}\n" for i in range(40)))
    path = tmp_path / "labelloop.toml"
    path.write_text(f'labels = {json.dumps(LABELS)}\n[data]\npath = "pool.csv"\nid_column = "id"\n'
                    f'[labelstudio]\nproject = "tickets"\n[state]\npath = "state.db"\n')
    config = load_config(path)
    store = Store.open(config.state.path)
    with store.tx():
        store.set("project_id", "1")
        store.set("labels", json.dumps(LABELS))
        store.set("stop_set", "[]")
        store.add_items([(f"t{i}", "h", "pool.csv", "audit" if i >= 28 else "pool") for i in range(40)])
        store.add_round(0, "labelloop-cold-start", "cold-start", {}, {}, None, None)
        store.mark_pushed({f"t{i}": 100 + i for i in range(40)})
        store.add_records(1, [
            *[rec("created", f"t{i}", i, LABELS[i % 3], 1 + i % 2) for i in range(40) if i not in (5, 6)],
            rec("created", "t5", 5, None, 1, skipped=True),                        # a skip
            rec("created", "t6", 6, "bug", 1), rec("created", "t6", 46, "other", 2),  # a disagreement
            rec("updated", "t0", 0, "other", 1, previous_label="billing"),        # a relabel
            rec("deleted", "t1", 1, None, 2),                                      # a deletion
        ], None)
        store.add_run(run=1, started_at="s", finished_at="2026-11-20T10:00:00+00:00", pulled=42, trained=None,
                      pushed=40, predictions_updated=0, queue_before=0, queue_after=3, stopped=None, message="m")
    return config, store


def test_summary_counts_what_is_live_now(campaign_state) -> None:
    config, _ = campaign_state
    s = report.summary(config)
    assert s["runs"] == 1 and s["sent"] == 40 and s["queue"] == 3
    # 40 texts: t1's only annotation deleted, t5 skipped, t6 tied → 37 labeled
    assert s["labeled"] == 37 and s["skipped"] == 1 and s["disagreements"] == 1
    # user1: 19 even ids + t6, one skip; user2: 19 odd ids + t6, minus the deleted t1
    assert s["annotators"] == {"user1@x.test": (20, 1), "user2@x.test": (19, 0)}
    assert s["round"]["round"] == 0 and s["metrics"] == {}


def test_a_report_before_any_model_says_so(campaign_state, tmp_path) -> None:
    config, _ = campaign_state
    out = report.write_report(config, tmp_path / "r.md")
    text = out.read_text()
    assert "none yet" in text and "No model yet." in text and "| t6 |" in text


def test_a_report_has_every_section_and_its_figures(campaign_state, tmp_path, monkeypatch) -> None:
    config, store = campaign_state
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    y = np.arange(40) % 3
    with store.tx():
        for r in (1, 2):
            metrics = {"audit": {"n": 12, "accuracy": 0.5 + r / 10, "accuracy_ci": [0.3, 0.9], "macro_f1": 0.5,
                                 "macro_f1_ci": [0.3, 0.8]}, "stop_set_kappa": 0.9}
            store.add_round(r, f"m-{r}", "margin-kmeans", {"t2": "other"}, metrics, Head(3).fit(X, y).to_arrays(),
                            None)
    pool = Pool([f"t{i}" for i in range(40)], [f"text {i}" for i in range(40)], [None] * 40, "pool.csv")
    monkeypatch.setattr(report, "load_campaign", lambda cfg: Campaign(cfg, pool, X, "enc"))
    md = report.write_report(config, tmp_path / "out" / "r.md").read_text()
    for header in ("## Summary", "## Learning curve", "## Where the current model fails", "## Disagreements",
                   "## Throughput", "## Rounds", "## Runs"):
        assert header in md
    figures = [line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert len(figures) == 4
    for fig in figures:
        assert (tmp_path / "out" / fig).stat().st_size > 5000
    assert "the audit sample (12 labeled texts)" in md  # t28..t39, t6-style ties excluded
    page = report.write_report(config, tmp_path / "out" / "r.html").read_text()
    assert page.count("<img") == 4 and "<table>" in page


def test_status_prints_the_annotators(campaign_state) -> None:
    from labelloop.cli import app

    config, _ = campaign_state
    result = CliRunner().invoke(app, ["status", "--config", str(config.state.path.parent / "labelloop.toml")])
    assert result.exit_code == 0, result.output
    assert "user1@x.test" in result.output and "budget" in result.output


@pytest.mark.parametrize("fig", [
    lambda: plots.campaign_curve([{"n_labeled": 10, "audit": {"n": 5, "accuracy": 0.6, "accuracy_ci": [0.2, 0.9]},
                                   "test": None},
                                  {"n_labeled": 20, "audit": {"n": 8, "accuracy": 0.7, "accuracy_ci": [0.4, 0.9]},
                                   "test": {"n": 100, "accuracy": 0.65}}]),
    lambda: plots.throughput({"a@x": {"2026-11-20": 5, "2026-11-21": 7}, "b@x": {"2026-11-21": 3}}),
])
def test_campaign_figures_render(fig, tmp_path) -> None:
    path = plots.save(fig(), tmp_path / "f.png")
    assert path.stat().st_size > 5000
