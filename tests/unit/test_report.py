"""`status` and `report` read the ledger; counts respect relabels, deletions and skips."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from labelloop import plots, report
from labelloop.campaign import Campaign
from labelloop.config import load_config
from labelloop.data import Pool, load_pool
from labelloop.head import Head
from labelloop.labelstudio import AnnotationRecord
from labelloop.status import next_steps
from labelloop.store import Store

LABELS = ["billing", "bug", "other"]
LONG = "text 6 | <b>six</b> *stars* " + "and on " * 20  # user text: escaped, cut at 80 characters
SECTIONS = ("## Summary", "## Learning curve", "## Where the current model fails", "## Labels per class",
            "## Disagreements",
            "## Annotators and agreement", "## Second opinions", "## Guidelines", "## Throughput", "## Rounds",
            "## Runs")


def rec(event, item, ann, label, who, day="2026-11-20", **kw) -> AnnotationRecord:
    return AnnotationRecord(event=event, id=item, project=1, task_id=100 + ann, annotation_id=ann, label=label,
                            annotator=who, annotator_email=f"user{who}@x.test", created_at=f"{day}T10:00:00+00:00",
                            **kw)


@pytest.fixture
def campaign_state(tmp_path):
    """40 texts (t28..t39 audit), labeled over two days by two people; round 0 only, no model."""
    texts = [LONG if i == 6 else f"text {i}" for i in range(40)]
    (tmp_path / "pool.csv").write_text("id,text\n" + "".join(f"t{i},{t}\n" for i, t in enumerate(texts)))
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
            *[rec("created", f"t{i}", i, LABELS[i % 3], 1 + i % 2,
                  day="2026-11-20" if i < 20 else "2026-11-21") for i in range(40) if i not in (5, 6)],
            rec("created", "t5", 5, None, 1, skipped=True),                           # a skip
            rec("created", "t6", 6, "bug", 1), rec("created", "t6", 46, "other", 2),  # a disagreement (tie)
            rec("updated", "t0", 0, "other", 1, previous_label="billing"),            # a relabel
            rec("updated", "t2", 2, None, 1, skipped=True, previous_label="other"),   # a label turned skip
            rec("deleted", "t1", 1, None, 2),                                         # a deletion
        ], None)
        run = store.start_run()
        store.update_run(run, finished_at="2026-11-21T10:00:00+00:00", pulled=43, pushed=40, queue_before=0,
                         queue_after=3, message="m")
    yield config, store
    store.close()


def _train(store: Store, X: np.ndarray) -> None:
    """Rounds 1 and 2, with models and audit metrics, as sync records them."""
    y = np.arange(len(X)) % 3
    with store.tx():
        for r in (1, 2):
            metrics = {"audit": {"n": 12, "accuracy": 0.5 + r / 10, "accuracy_ci": [0.3, 0.9],
                                 "macro_f1": 0.5, "macro_f1_ci": [0.3, 0.8]}, "stop_set_kappa": 0.9}
            store.add_round(r, f"m-{r}", "margin-kmeans", {f"t{i}": LABELS[i % 3] for i in range(10 * r)}, metrics,
                            Head(3).fit(X, y).to_arrays(), None)


@pytest.fixture
def trained(campaign_state, monkeypatch):
    """Two trained rounds; load_campaign returns random unit vectors instead of running the encoder."""
    config, store = campaign_state
    X = np.random.default_rng(0).normal(size=(40, 8))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    _train(store, X)
    pool = load_pool(config.data.path, label_column=None, id_column="id")
    campaign = Campaign(config, pool, X, "enc")
    monkeypatch.setattr(report, "load_campaign", lambda cfg: campaign)
    return config, store, campaign


def _figures(md: str, folder: Path) -> list[Path]:
    return [folder / line.split("](")[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]


def test_summary_counts_what_is_live_now(campaign_state) -> None:
    config, _ = campaign_state
    s = report.summary(config)
    assert s["runs"] == 1 and s["last_run"] == "2026-11-21T10:00:00+00:00"
    assert s["sent"] == 40 and s["queue"] == 3
    # 40 texts: t1's only annotation deleted, t2 and t5 skipped, t6 tied → 36 labeled
    assert s["labeled"] == 36 and s["skipped"] == 2 and s["disagreements"] == 1
    # user1: 20 even ids - t6 + t6's vote - t2 (now a skip) = 19, skips t2 and t5;
    # user2: 20 odd ids - t5 - t1 (deleted) + t6's vote = 19
    assert s["annotators"] == {"user1@x.test": (19, 2), "user2@x.test": (19, 0)}
    assert s["round"] == {"round": 0, "model_version": "labelloop-cold-start", "n_labeled": 0,
                          "created_at": s["round"]["created_at"]} and s["metrics"] == {}
    assert [a.criterion for a in s["advice"]] == ["budget", "stabilizing", "plateau"]


def test_a_report_before_any_model_says_so(campaign_state, tmp_path, monkeypatch) -> None:
    config, _ = campaign_state
    monkeypatch.setattr(report, "load_campaign", lambda cfg: pytest.fail("no model: nothing to embed"))
    md = report.write_report(config, tmp_path / "r.md").read_text()
    for header in SECTIONS:
        assert header in md
    assert "none yet" in md and "No model yet" in md
    assert md.count("No model yet") == 3  # the curve, the failures, the labels per class
    assert _figures(md, tmp_path) == [tmp_path / "r_files" / "throughput.png"]
    row = next(line for line in md.splitlines() if line.startswith("| t6 |"))
    assert "bug 1, other 1 | tie |" in row and "text 6 \\| \\<b>six\\</b> \\*stars\\*" in row
    assert row.endswith("… |")


def test_a_report_has_every_section_and_its_figures(trained, tmp_path) -> None:
    config, _, _ = trained
    out = report.write_report(config, tmp_path / "out" / "r.md")
    assert out == tmp_path / "out" / "r.md"
    md = out.read_text()
    for header in SECTIONS:
        assert header in md
    figures = _figures(md, out.parent)
    assert [f.name for f in figures] == ["learning_curve.png", "per_class_f1.png", "confusion.png",
                                         "throughput.png"]
    for fig in figures:
        assert fig.stat().st_size > 5000
    assert "the audit sample (12 labeled texts)" in md  # t28..t39: all audit texts have an agreed label
    assert "current model: m-2 (round 2, trained on 20 labels" in md
    assert "| 2 | m-2 | margin-kmeans | 20 | 12 | 0.700 [0.300, 0.900] | – | 0.900 |" in md  # with the audit n
    assert "| 2026-11-20 | 9 | 9 | 18 |" in md and "| 2026-11-21 | 10 | 10 | 20 |" in md
    assert "| all days | 19 | 19 | 38 |" in md
    assert "| 1 | 2026-11-21T10:00:00+00:00 | 43 | – | 40 | 0 → 3 |  |" in md
    assert not list(out.parent.glob(".*tmp*")) and not list((out.parent / "r_files").glob(".*"))


def test_the_html_report_shows_the_same_figures(trained, tmp_path) -> None:
    config, _, _ = trained
    page = report.write_report(config, tmp_path / "r.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("<img") == 4 and "<table>" in page
    for src in ("r_files/learning_curve.png", "r_files/per_class_f1.png", "r_files/confusion.png",
                "r_files/throughput.png"):
        assert f'src="{src}"' in page and (tmp_path / src).stat().st_size > 5000
    assert "&lt;b&gt;six&lt;/b&gt;" in page and "<b>six" not in page  # annotators' text is escaped
    assert "<strong>go</strong>" in page and "**" not in page


def test_the_test_file_is_preferred_to_the_audit_sample(trained, tmp_path, monkeypatch) -> None:
    config, _, campaign = trained
    rng = np.random.default_rng(1)
    test = Pool([f"x{i}" for i in range(15)], [f"test {i}" for i in range(15)],
                [LABELS[i % 3] for i in range(15)])
    monkeypatch.setattr(report, "load_campaign", lambda cfg: Campaign(
        config, campaign.pool, campaign.X, "enc", test, rng.normal(size=(15, 8))))
    md = report.write_report(config, tmp_path / "r.md").read_text()
    assert "Measured on the test file (15 texts) with model m-2" in md


def test_too_few_evaluation_labels_skip_the_breakdown(trained, tmp_path, monkeypatch) -> None:
    config, _, campaign = trained
    small = Pool(campaign.pool.ids[:30], campaign.pool.texts[:30], campaign.pool.labels[:30])
    monkeypatch.setattr(report, "load_campaign", lambda cfg: Campaign(config, small, campaign.X[:30], "enc"))
    md = report.write_report(config, tmp_path / "r.md").read_text()
    assert "Too few labels in the audit sample (2 labeled texts)" in md  # only t28 and t29 are left
    assert [f.name for f in _figures(md, tmp_path)] == ["learning_curve.png", "throughput.png"]


def test_status_prints_the_annotators(campaign_state) -> None:
    from labelloop.cli import app

    config, _ = campaign_state
    result = CliRunner().invoke(app, ["status", "--config", str(config.state.path.parent / "labelloop.toml")])
    assert result.exit_code == 0, result.output
    assert "user1@x.test" in result.output and "user2@x.test" in result.output and "budget" in result.output



def test_status_says_that_skips_count_texts_and_empties_count_submissions(campaign_state) -> None:
    from labelloop.cli import app

    config, store = campaign_state
    with store.tx():  # two empty submissions on one text: one text skipped, two empty submissions
        store.add_records(1, [rec("created", "t7", 47, None, 1, skipped=True, empty=True),
                              rec("created", "t7", 7, None, 2, skipped=True, empty=True)], None)
    result = CliRunner().invoke(app, ["status", "--config", str(config.state.path.parent / "labelloop.toml")])
    assert result.exit_code == 0, result.output
    assert "3 text(s) skipped (2 empty submission(s))" in " ".join(result.output.split())


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


def test_the_people_sections_show_agreement_second_opinions_and_guideline_versions(trained, tmp_path) -> None:
    config, store, _ = trained
    with store.tx():
        store.add_guidelines("g-one", "guidelines.md", "# v1", applied_at="2026-11-19T00:00:00+00:00")
        store.add_guidelines("g-two", "guidelines.md", "# v2", applied_at="2026-11-21T00:00:00+00:00")
        store.add_escalation("t6", 106, "tie", 1, 3, None)
        store.add_escalation("t3", 103, "suspect", 1, 2, "billing", 0.93)
        seq = store.escalations()[-1].seq
        store.resolve_escalation(seq, "bug", "user2@x.test")
    md = report.write_report(config, tmp_path / "people.md").read_text()
    assert "| g-one | 2026-11-19T00:00:00+00:00 | 18 |" in md and "| g-two | 2026-11-21T00:00:00+00:00 | 20 |" in md
    assert "pre-selected guesses: 0 of 0 task(s) the model chose; none until 30 answers" in md
    assert "texts whose tie went to one more annotator: 1; settled 0, open 1" in md
    assert "suspected label errors sent back: 1 text(s); relabeled 1, confirmed 0, open 0" in md
    assert "| text 3 | billing | bug | user2@x.test | 0.93 |" in md
    assert "Krippendorff's α" in md and "| user1@x.test | user2@x.test | 1 | 0.000 |" in md


def test_agreement_leaves_out_suspect_reasks_and_status_says_who_can_answer_a_second_opinion(campaign_state) -> None:
    """t6's two answers disagree. As a blind double annotation they count in agreement; as a suspect re-ask
    (chosen because its label looked wrong) they do not. Once every annotator has answered a text that
    needs one more opinion, status says a reviewer must, not that it waits for annotators."""
    config, store = campaign_state
    assert report.summary(config)["agreement"].n_multi == 1
    with store.tx():
        store.add_escalation("t6", 106, "suspect", 0, 2, "bug", 0.9)
    s = report.summary(config)
    assert s["agreement"].n_multi == 0
    assert s["opinions_waiting"] == 0 and s["stuck_at_cap"] == 0  # answered 1-1: the next sync escalates it
    with store.tx():
        store.add_escalation("t6", 106, "tie", 0, 3, None)
    s = report.summary(config)
    assert (s["opinions_waiting"], s["opinions_blocked"]) == (1, 1)
    steps = next_steps(s, config)
    assert any("need someone new" in step and "reviewer" in step for step in steps)
    assert not any("wait for someone who has not labeled" in step for step in steps)
    assert (s["escalations"]["ties_open"], s["escalations"]["suspects_open"]) == (0, 1)  # one text, counted once


def test_status_names_double_annotated_texts_still_short_of_their_second_person(campaign_state) -> None:
    """t10 (one answer) and t6 (both annotators answered, three asked) were double-annotated: t10 waits for
    its second annotator in the queue; nobody is left to answer t6, so another annotator is needed."""
    from labelloop.store import QueryRow

    config, store = campaign_state
    with store.tx():
        store.add_queries([QueryRow("t10", 0, "active", "margin-kmeans", None, overlap=2),
                           QueryRow("t6", 0, "active", "margin-kmeans", None, overlap=3),
                           QueryRow("t12", 0, "active", "margin-kmeans", None, overlap=1)])
    s = report.summary(config)
    assert (s["doubles_waiting"], s["doubles_blocked"]) == (2, 1)
    steps = next_steps(s, config)
    assert any(step.startswith("1 double-annotated text(s) wait for their second annotator") for step in steps)
    assert any("another project member must" in step for step in steps)


def test_an_empty_submission_fills_a_double_annotated_place_as_label_studio_counts_it(campaign_state) -> None:
    """t10 was asked of two people: one labeled it, the other submitted no choice. Label Studio counts the
    empty answer toward the overlap and serves the task to nobody, so status must not say it waits."""
    from labelloop.store import QueryRow

    config, store = campaign_state
    with store.tx():
        store.add_queries([QueryRow("t10", 0, "active", "margin-kmeans", None, overlap=2)])
    assert report.summary(config)["doubles_waiting"] == 1
    with store.tx():
        store.add_records(2, [rec("created", "t10", 60, None, 2, skipped=True, empty=True)], None)
    s = report.summary(config)
    assert s["doubles_waiting"] == 0 and s["empty"] == 1
    assert not any("double-annotated" in step for step in next_steps(s, config))


def test_status_says_whether_annotators_see_the_models_guess_and_why(campaign_state) -> None:
    """With "auto", the guess is pre-selected only once 30 answers given without it show a confidence from
    which it is right 90 % of the time; status says which state the campaign is in, and counts what it read."""
    from labelloop.status import prefill_note
    from labelloop.store import QueryRow

    config, store = campaign_state
    truth = {f"t{i}": LABELS[i % 3] for i in range(28)}
    answered = sorted(i for i, r in store.resolutions().items() if r.label == truth.get(i))
    with store.tx():
        store.add_queries([QueryRow(i, 1, "active", "margin-kmeans", "m-1", 0.5, None, truth[i], 0.9)
                           for i in answered[:10]])
        store.add_queries([QueryRow(i, 1, "active", "margin-kmeans", "m-1", 0.5, None, "other", 0.9,
                                    prefilled=True) for i in answered[10:12]])  # shown: not a blind answer
    s = report.summary(config)
    assert s["prefill"] == {"shown": 2, "sent": 12, "blind": 10, "right": 10, "cutoff": None, "auto": True}
    assert prefill_note(s, config) == (
        "pre-selected guesses: 2 of 12 task(s) the model chose; none until 30 answers given without the guess "
        "show where it is right 90% of the time (10 so far)")

    def note(**p) -> str:
        return prefill_note({"prefill": {"shown": 0, "sent": 50, "auto": True, **p}}, config)

    assert "shown from confidence 0.83 up" in note(blind=40, right=38, cutoff=0.83)
    assert "none: on 40 answers given without seeing it, the guess was right 50%, below 90%" in note(
        blind=40, right=20, cutoff=None)
    path = config.state.path.parent / "fixed.toml"
    path.write_text((config.state.path.parent / "labelloop.toml").read_text()
                    + "[quality]\nprefill_confidence = 0.85\n")
    fixed = load_config(path)
    assert "prefill_confidence = 0.85: from that confidence up" in prefill_note(report.summary(fixed), fixed)


def test_a_second_opinion_answered_empty_at_the_cap_is_named_for_a_reviewer(campaign_state) -> None:
    """t3 was sent back as a suspect to a third person, who submitted no choice: Label Studio serves it to
    nobody now. It has a label, but not the opinion asked for, and no place is left: status names it for a
    reviewer (as sync warns), instead of leaving it open and unmentioned."""
    config, store = campaign_state
    with store.tx():
        store.add_records(2, [rec("created", "t3", 73, LABELS[0], 2),
                              rec("created", "t3", 74, None, 3, day="2026-11-22", skipped=True, empty=True)], None)
        store.add_escalation("t3", 103, "suspect", 1, 3, LABELS[0], 0.9)
    s = report.summary(config)
    assert s["stuck_at_cap"] == 1 and s["opinions_waiting"] == 0
    assert any(step.startswith("1 text(s) reached quality.max_annotators") for step in next_steps(s, config))
    assert s["escalations"]["suspects_open"] == 1


def test_the_report_counts_each_class_labels_beside_what_the_model_predicts_for_the_rest(trained, tmp_path) -> None:
    """Round 2 learnt from t0..t19 (billing 7, bug 7, other 6): the fewest-labeled class comes first. Every
    other text has an agreed label (the audit's too) but t22..t25, whose annotations were deleted: the
    model's guesses for those 4 are counted, and nothing labeled is counted as unlabeled."""
    config, store, _ = trained
    with store.tx():
        store.add_records(2, [rec("deleted", f"t{i}", i, None, 1 + i % 2) for i in range(22, 26)], None)
    md = report.write_report(config, tmp_path / "r.md").read_text()
    section = md.split("## Labels per class")[1].split("\n## ")[0]
    rows = [line.strip("| ").split(" | ") for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    header, body = rows[0], rows[1:]
    assert header == ["class", "labels", "unlabeled texts it predicts", "share"]
    assert body[0][:2] == ["other", "6"] and sorted(r[:2] for r in body[1:]) == [["billing", "7"], ["bug", "7"]]
    assert sum(int(r[2]) for r in body) == 4
    assert "texts nobody has labeled yet (4)" in section


def test_status_names_the_classes_with_fewest_labels_and_those_with_none(campaign_state) -> None:
    """The agreed labels outside the audit (t0..t27 less a deletion, two skips and a tie; t0 relabeled) per
    class, and a class of the config nobody has labeled yet is named."""
    from labelloop.status import labels_per_class_note

    config, _ = campaign_state
    counts = report.summary(config)["per_class"]
    assert counts == {"billing": 8, "bug": 8, "other": 8}
    path = config.state.path.parent / "more.toml"
    path.write_text((config.state.path.parent / "labelloop.toml").read_text().replace(
        json.dumps(LABELS), json.dumps([*LABELS, "refund"])))
    more = load_config(path)
    s = report.summary(more)
    assert s["per_class"]["refund"] == 0
    assert labels_per_class_note(s) == "labels per class: fewest billing 8, bug 8, other 8; 1 of 4 class(es) with " \
                                       "no label yet: refund"
    assert not any("no label yet" in step for step in next_steps(s, more))  # round 0: no model to miss it
    _train(store := Store.open_existing(more.state.path), np.eye(40, 8))
    store.close()
    s = report.summary(more)
    assert any(step.startswith("1 class(es) have no label yet (refund)") for step in next_steps(s, more))
