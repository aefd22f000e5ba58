"""The human side against a real Label Studio: scripted annotators with known error rates work through the
project's own queue (``/next``) between syncs, as people would."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from lshelpers import Annotator, demo_campaign

from labelloop.config import load_config
from labelloop.quality import agreement_report, cohen_kappa
from labelloop.status import next_steps, summary, votes_of
from labelloop.store import Store
from labelloop.sync import sync

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

GUIDELINES = "# Ticket guidelines\n\n## billing\n\nMoney questions.\n"


def write_campaign(tmp_path: Path, title: str, cache: Path, n: int, budget: int = 120,
                   **quality: object) -> tuple[Path, dict]:
    (tmp_path / "guidelines.md").write_text(GUIDELINES)
    q = {"overlap_share": 0.25, "suspects_share": 0.125, "max_annotators": 3, **quality}
    return demo_campaign(tmp_path, title, cache, n, guidelines={"path": "guidelines.md"}, quality=q,
                         loop={"queue_target": 16, "budget": budget, "retrain_every": 8, "audit_fraction": 0.15})


@pytest.fixture
def env(ls_server, monkeypatch) -> None:
    monkeypatch.setenv("LABEL_STUDIO_URL", ls_server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", ls_server.api_key)


def test_two_annotators_through_the_queue(tmp_path, title, ls_server, env, sdk, embedding_cache) -> None:
    config_path, truth = write_campaign(tmp_path, title, embedding_cache, 240)
    config = load_config(config_path)
    labels = list(config.labels)
    careful = Annotator(ls_server, f"careful-{title[-6:]}@example.org", accuracy=0.95, seed=1)
    hasty = Annotator(ls_server, f"hasty-{title[-6:]}@example.org", accuracy=0.7, seed=2)
    referee = Annotator(ls_server, f"referee-{title[-6:]}@example.org", accuracy=1.0, seed=3)

    first = sync(config)
    store = Store.open_existing(config.state.path)
    project_id = int(store.get("project_id"))
    project = sdk.projects.get(project_id)
    assert "Ticket guidelines" in project.expert_instruction and project.show_instruction
    audit = set(store.ids_with_role("audit"))
    audit_labeled_per_sync = []
    for round_ in range(7):
        # Never emptying the queue: 6 + 6 of 16 waiting tasks per round. The referee takes 5: ties (a
        # suspect label the second opinion contradicts is one too) can only go to the person who has not
        # answered them, and they share the front of the queue with the audit.
        careful.work(project_id, truth, labels, 6)
        hasty.work(project_id, truth, labels, 6)
        referee.work(project_id, truth, labels, 5)
        if round_ == 3:
            (tmp_path / "guidelines.md").write_text(GUIDELINES + "\n## Edge cases\n\nAsk the lead.\n")
        report = sync(config)
        res = store.resolutions()
        audit_labeled_per_sync.append(sum(i in audit and r.label is not None for i, r in res.items()))
    assert first.pushed_audit > 0 and report.pulled > 0

    # The audit is served first (a blind prediction with score 0): it keeps up with its share.
    sent = store.pushes()
    audit_sent = [i for i in sent if i in audit]
    assert len(audit_sent) >= 0.1 * len(sent)
    assert audit_labeled_per_sync == sorted(audit_labeled_per_sync) and audit_labeled_per_sync[-1] >= 0.7 * len(
        audit_sent)

    # Double annotation: a share of tasks went to two people, blind; agreement is measured on them.
    doubles = [q for q in store.queries() if q.overlap > 1]
    assert doubles and not any(q.prefilled for q in doubles)
    votes = votes_of(store.records())
    ag = agreement_report(votes, reference=truth)
    shared = sorted(set(careful.given) & set(hasty.given))
    direct = cohen_kappa([careful.given[i] for i in shared], [hasty.given[i] for i in shared])
    pair = next(p for p in ag.pairs if {p.a, p.b} == {careful.email, hasty.email})
    assert pair.n_items == len(shared) and pair.kappa == pytest.approx(direct)
    quality = {a.annotator: a for a in ag.annotators}
    for person in (careful, hasty):
        got = quality[person.email].vs_reference
        assert got is not None and got.n >= 15
        assert got.ci[0] - 0.05 <= person.accuracy <= got.ci[1] + 0.05, (person.email, got)

    # Every tie was sent to one more person; those raised before the last sync were settled.
    escalations = store.escalations()
    last_round = store.last_round().round
    ties = [e for e in escalations if e.reason == "tie"]
    assert ties, "a 0.7-accurate annotator must have tied with someone"
    assert all(e.resolved_at is not None for e in ties if e.round < last_round - 1)
    assert all(e.decided_by is not None for e in ties if e.resolved_at)
    suspects = [e for e in escalations if e.reason == "suspect"]
    assert suspects and sum(truth[e.item_id] != e.label_before for e in suspects) >= 0.5 * len(suspects)

    # Two guideline versions in the ledger; the project shows the latest.
    assert len(store.guidelines()) == 2 and "Edge cases" in sdk.projects.get(project_id).expert_instruction
    s = summary(config)
    assert s["agreement"].n_multi > 0 and next_steps(s, config)


def cli_sync(config_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "labelloop.cli", "sync", "-q", "--config", str(config_path)],
                          env=os.environ.copy(), capture_output=True, text=True, timeout=600, check=False)


def test_a_replaced_project_and_a_mass_deletion_are_refused_with_nothing_written(
        tmp_path, title, ls_server, env, sdk, embedding_cache) -> None:
    config_path, _ = write_campaign(tmp_path, title, embedding_cache, 120)
    config = load_config(config_path)
    sync(config)
    state = config.state.path
    store = Store.open_existing(state)
    project_id = int(store.get("project_id"))
    tasks = [t for t in sdk.tasks.list(project=project_id, fields="all")]
    for t in tasks[: int(len(tasks) * 0.6)]:
        sdk.tasks.delete(str(t.id))
    before = state.read_bytes()
    done = cli_sync(config_path)
    assert done.returncode == 2, done.stderr
    assert "are gone from project" in done.stderr and "nothing was written" in done.stderr
    assert len(store.runs()) == 1 and len(store.pushes()) == 16

    sdk.projects.delete(project_id)
    sdk.projects.create(title=title, label_config=_config(config.labels))  # same title, maybe the same id
    done = cli_sync(config_path)
    assert done.returncode == 2, done.stderr
    assert "no longer has" in done.stderr and "nothing was written" in done.stderr  # a new id: the old is gone
    assert len(Store.open_existing(state).runs()) == 1
    assert state.read_bytes()[:100] == before[:100]


def _config(labels: list[str]) -> str:
    from labelloop.labelstudio.labelconfig import labeling_config

    return labeling_config(labels)


def test_a_pool_that_runs_out_ends_the_campaign_with_a_clear_message(
        tmp_path, title, ls_server, env, embedding_cache) -> None:
    config_path, truth = write_campaign(tmp_path, title, embedding_cache, 24, overlap_share=0.0,
                                        suspects_share=0.0)
    config = load_config(config_path)
    worker = Annotator(ls_server, f"solo-{title[-6:]}@example.org", accuracy=1.0)
    report = sync(config)
    project_id = int(Store.open_existing(config.state.path).get("project_id"))
    for _ in range(6):
        worker.work(project_id, truth, list(config.labels), 30)
        report = sync(config)
        if report.stopped:
            break
    assert report.stopped and "pool exhausted" in report.stopped
    assert len(worker.given) == 24
    s = summary(config)
    assert any("campaign complete" in step for step in next_steps(s, config))


def test_an_empty_answer_fills_a_place_in_label_studio_and_labelloop_counts_it(
        tmp_path, title, ls_server, env, sdk, embedding_cache) -> None:
    """Label Studio counts a submission without a choice toward a task's overlap and then serves the task to
    nobody. labelloop must count it the same way: a double-annotated text answered once and left empty once
    does not "wait for its second annotator", and a tie whose extra person answered empty is not waited for
    but sent on (here: at the cap, to a reviewer)."""
    config_path, truth = demo_campaign(
        tmp_path, title, embedding_cache, 40, quality={"overlap_share": 1.0, "suspects_share": 0.0,
                                                       "max_annotators": 3},
        loop={"queue_target": 8, "budget": 8, "retrain_every": 100, "audit_fraction": 0.0})
    config = load_config(config_path)
    labels = list(config.labels)
    first = Annotator(ls_server, f"first-{title[-6:]}@example.org", accuracy=1.0, seed=1)
    second = Annotator(ls_server, f"second-{title[-6:]}@example.org", accuracy=1.0, seed=2)
    referee = Annotator(ls_server, f"ref-{title[-6:]}@example.org", accuracy=1.0, seed=3)
    sync(config)
    store = Store.open_existing(config.state.path)
    project_id = int(store.get("project_id"))
    assert all(q.overlap == 2 for q in store.queries())
    first.work(project_id, truth, labels, 8)
    empty_id = tie_id = None
    while (task := second.next_task(project_id)) is not None:
        our_id = task["data"]["labelloop_id"]
        if empty_id is None:
            empty_id = our_id
            second.answer(task, None)
        elif tie_id is None:
            tie_id = our_id
            second.answer(task, next(x for x in labels if x != first.given[our_id]))
        else:
            second.answer(task, truth[our_id])
    assert empty_id and tie_id

    report = sync(config)
    task_of = {i: t for i, t in store.pushes().items()}
    assert sdk.tasks.get(task_of[empty_id]).is_labeled  # Label Studio: two answers, done
    res = store.resolutions()
    assert res[empty_id].answers == 2 and res[empty_id].label == first.given[empty_id]
    s = summary(config)
    assert s["doubles_waiting"] == 0 and s["empty"] == 1
    assert [e.item_id for e in store.escalations()] == [tie_id] and report.escalated == 1

    served = referee.next_task(project_id)
    assert served is not None and served["data"]["labelloop_id"] == tie_id  # the tie comes first
    referee.answer(served, None)
    report = sync(config)
    assert sdk.tasks.get(task_of[tie_id]).is_labeled  # three answers: Label Studio serves it to nobody
    assert any("max_annotators" in w and tie_id in w for w in report.warnings)
    s = summary(config)
    assert s["opinions_waiting"] == 0 and s["stuck_at_cap"] == 1
    assert any("reviewer should open them" in step for step in next_steps(s, config))
