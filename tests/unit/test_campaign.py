"""The campaign service: push and sync choose through one function, and a sync's store work follows changes."""

from __future__ import annotations

import json

import numpy as np
import pytest

from labelloop.campaign import (
    Campaign,
    push_picks,
    register,
    select,
    train_if_due,
    train_when_due,
    training_labels,
)
from labelloop.config import load_config
from labelloop.data import Pool
from labelloop.labelstudio import (
    AnnotationRecord,
    ChoicesConfig,
    ExistingTask,
    ProjectInfo,
    PullCursor,
    PullResult,
    PushReport,
)
from labelloop.store import Store
from labelloop.sync import SyncStep

LABELS = ["billing", "bug", "other"]


def make_campaign(tmp_path, n: int = 90, **loop: object) -> Campaign:
    path = tmp_path / "labelloop.toml"
    (tmp_path / "pool.csv").write_text("id,text\nx,y\n")
    settings = {"audit_fraction": 0.0, "retrain_every": 1, "queue_target": 10, "budget": 500, **loop}
    path.write_text(f'labels = {json.dumps(LABELS)}\n[data]\npath = "pool.csv"\n[labelstudio]\nproject = "p"\n'
                    "[loop]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in settings.items()) +
                    '[stop]\non = ["budget"]\nstop_set_size = 10\n[state]\npath = "s.db"\n')
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 16))
    X = centres[np.arange(n) % 3] + 0.6 * rng.normal(size=(n, 16))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    ids = [f"t{i:03d}" for i in range(n)]
    return Campaign(load_config(path), Pool(ids, [f"text {i}" for i in ids], [None] * n, "pool.csv"),
                    X.astype(np.float32), "enc-A")


def annotate(store: Store, run: int, labels: dict[str, str], start: int) -> None:
    with store.tx():
        store.add_records(run, [AnnotationRecord("created", i, 7, 100 + k, start + k, lab)
                                for k, (i, lab) in enumerate(labels.items())], None)


def test_push_and_sync_choose_the_same_texts_in_the_same_order_from_the_same_state(tmp_path) -> None:
    campaign = make_campaign(tmp_path)
    truth = {i: LABELS[r % 3] for r, i in enumerate(campaign.pool.ids)}
    with Store.open(campaign.config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
        cold = select(store, campaign, None, store.last_round(), 12)  # the cold-start batch, then labeled
        with store.tx():
            store.mark_pushed({q.item_id: k for k, q in enumerate(cold)})
        annotate(store, 1, {q.item_id: truth[q.item_id] for q in cold}, start=0)
        model = train_if_due(store, campaign, run=1)
        assert model is not None and model.has_model
        head = campaign.learner.fit(model.train_labels)
        known = training_labels(store, campaign)
        in_project = {i: "labelloop-cold-start" for i in store.pushes()}

        by_sync = [q.item_id for q in select(store, campaign, head, model, 10)]
        by_push = [p.id for p in push_picks(campaign.learner, head, known, in_project, 10, "a-push-version")]
    assert len(by_sync) == 10 and len(set(by_sync)) == 10
    assert by_push == by_sync
    assert not set(by_sync) & set(in_project)


class QuietLabelStudio:
    """Label Studio with nothing new: the project holds exactly the tasks the store sent."""

    def __init__(self, tasks: dict[str, int], version: str, overlaps: dict[str, int] | None = None) -> None:
        self.tasks = {i: ExistingTask(t, frozenset({version}), version, (overlaps or {}).get(i, 1))
                      for i, t in tasks.items()}
        self.pushed: list[list[str]] = []
        self.reopened: list[dict[int, int]] = []

    def pull(self, project_id: int, cursor: PullCursor | None = None) -> PullResult:
        return PullResult([], cursor or PullCursor(), len(self.tasks), 0, 0)

    def existing(self, project_id: int) -> dict[str, ExistingTask]:
        return dict(self.tasks)

    def push(self, project_id: int, items, model_version=None, **kw) -> PushReport:
        self.pushed.append([it.id for it in items])
        return PushReport([], [], [], {}, model_version)

    def set_model_version(self, project_id: int, version: str) -> None:
        pass

    def reopen(self, project_id: int, overlaps: dict[int, int], model_version: str) -> None:
        self.reopened.append(dict(overlaps))


def project(version: str) -> ProjectInfo:
    return ProjectInfo(7, "p", ChoicesConfig(tuple(LABELS)), model_version=version)


@pytest.mark.parametrize("rounds", [50])
def test_a_sync_with_nothing_new_reads_no_stored_model(tmp_path, rounds: int) -> None:
    campaign = make_campaign(tmp_path, queue_target=10)
    ids = campaign.pool.ids
    with Store.open(campaign.config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
        arrays = campaign.learner.fit({ids[0]: "billing", ids[1]: "bug"}).to_arrays()  # type: ignore[union-attr]
        with store.tx():
            for r in range(1, rounds + 1):
                store.add_round(r, f"m-{r}", "margin-kmeans", {ids[0]: "billing", ids[1]: "bug"}, {}, arrays,
                                np.zeros(10, dtype=np.int64))
            store.mark_pushed({i: k for k, i in enumerate(ids[2:12])})  # a full queue, nobody labeled yet
        ls = QuietLabelStudio(store.pushes(), f"m-{rounds}")
        report = SyncStep(store, ls, 7, campaign, lambda step: None).run(project(f"m-{rounds}"))
        assert report.pulled == 0 and report.trained is None and report.queue_after == 10
        assert ls.pushed == [] and ls.reopened == []
        assert store.blobs_loaded == 0

        # With room in the queue the latest model (and only it) is read, to choose the next texts.
        (tmp_path / "wider").mkdir()
        campaign2 = make_campaign(tmp_path / "wider", queue_target=12)
        report = SyncStep(store, ls, 7, campaign2, lambda step: None).run(project(f"m-{rounds}"))
        assert report.pushed_active == 2 and store.blobs_loaded == 1


def test_a_project_recreated_under_the_same_id_is_refused(tmp_path) -> None:
    from labelloop.sync import CampaignGuardError, _check_identity

    with Store.open(tmp_path / "s.db") as store:
        with store.tx():
            store.set("project_created_at", "2026-11-29T10:00:00+00:00")
        same = ProjectInfo(1, "tickets", ChoicesConfig(tuple(LABELS)), created_at="2026-11-29T10:00:00+00:00")
        _check_identity(store, same, tmp_path / "s.db")
        fresh = ProjectInfo(1, "tickets", ChoicesConfig(tuple(LABELS)), created_at="2026-11-30T08:00:00+00:00")
        with pytest.raises(CampaignGuardError, match="was replaced") as err:
            _check_identity(store, fresh, tmp_path / "s.db")
        assert err.value.exit_code == 2


def lazy(campaign: Campaign, calls: list[int]) -> Campaign:
    """The same campaign with features computed on first use (as load_campaign makes it), counting uses."""
    from labelloop.featurize import Featurized

    def features() -> Featurized:
        calls.append(1)
        return Featurized(campaign.X, [], campaign.X, campaign.encoder_identity, campaign.config.model.smoothing)
    return Campaign(campaign.config, campaign.pool, features, campaign.encoder_identity)


def test_a_sync_with_nothing_new_computes_no_features(tmp_path) -> None:
    eager = make_campaign(tmp_path, queue_target=10)
    ids = eager.pool.ids
    calls: list[int] = []
    campaign = lazy(eager, calls)
    with Store.open(campaign.config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
        arrays = eager.learner.fit({ids[0]: "billing", ids[1]: "bug"}).to_arrays()  # type: ignore[union-attr]
        with store.tx():  # a model of labels from elsewhere, so nothing here is due for training
            store.add_round(1, "m-1", "margin-kmeans", {}, {}, arrays, np.zeros(10, dtype=np.int64))
            store.mark_pushed({i: k for k, i in enumerate(ids[2:12])})  # a full queue, nobody labeled yet
        ls = QuietLabelStudio(store.pushes(), "m-1")
        report = SyncStep(store, ls, 7, campaign, lambda step: None).run(project("m-1"))
        assert report.queue_after == 10 and calls == []  # not one vector read

        wider = lazy(make_campaign(tmp_path, queue_target=12), calls)  # room for two: now they are needed
        report = SyncStep(store, ls, 7, wider, lambda step: None).run(project("m-1"))
        assert report.pushed_active == 2 and calls == [1]


def test_registering_the_same_pool_again_reads_no_item_and_a_changed_text_is_still_caught(
    tmp_path, monkeypatch
) -> None:
    from labelloop.errors import DataError

    campaign = make_campaign(tmp_path)
    with Store.open(campaign.config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
        real_items = store.items
        monkeypatch.setattr(store, "items", lambda: pytest.fail("read every item of an unchanged pool"))
        with store.tx():
            register(store, campaign, project_id=7)
        monkeypatch.setattr(store, "items", real_items)
        texts = list(campaign.pool.texts)
        texts[5] = "edited under the same id"
        edited = Campaign(campaign.config, Pool(campaign.pool.ids, texts, campaign.pool.labels, "pool.csv"),
                          campaign.X, "enc-A")
        with pytest.raises(DataError, match="1 text\\(s\\) changed under the same id"):
            with store.tx():
                register(store, edited, project_id=7)


def test_a_pool_whose_copies_changed_is_registered_again(tmp_path) -> None:
    """Same ids and texts, but a text now stands for two data rows: the fingerprint must see it."""
    campaign = make_campaign(tmp_path, n=6)
    pool = campaign.pool
    with Store.open(campaign.config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
        rows = ((1, 7), (2,), (3,), (4,), (5,), (6,))
        doubled = Campaign(campaign.config, Pool(pool.ids, pool.texts, pool.labels, "pool.csv", rows=rows),
                           campaign.X, "enc-A")
        with store.tx():
            register(store, doubled, project_id=7)
        assert store.copies() == {pool.ids[0]: 2}


def test_a_data_file_that_lost_most_of_the_campaign_is_refused_and_a_few_missing_are_recorded(tmp_path) -> None:
    """Red-team rerun: a file cut to its first 150 rows was accepted silently (570 texts and their labels gone)."""
    from labelloop.errors import DataError

    campaign = make_campaign(tmp_path)
    pool = campaign.pool

    def keep(rows: range) -> Campaign:
        sub = Pool([pool.ids[r] for r in rows], [pool.texts[r] for r in rows], [None] * len(rows), "pool.csv")
        return Campaign(campaign.config, sub, campaign.X[list(rows)], "enc-A")

    with Store.open(campaign.config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
        with pytest.raises(DataError, match=r"lacks 60 of the campaign's 90 texts .*state.path"):
            with store.tx():
                register(store, keep(range(30)), project_id=7)
        assert len(store.items()) == 90  # nothing was forgotten
        with store.tx():
            register(store, keep(range(80)), project_id=7)
        assert json.loads(store.get("pool_missing"))["n"] == 10

        from labelloop.sync_steps import SyncStep

        def said() -> list[str]:
            step = SyncStep(store, None, 7, keep(range(80)), lambda s: None)  # type: ignore[arg-type]
            step.data_missing()
            return step.report.warnings

        first = said()
        assert len(first) == 1 and "no longer has 10 of the campaign's texts" in first[0]
        assert said() == []  # said once, not at every cron tick


def test_a_model_is_trained_and_asks_with_the_neighbour_weight_of_its_labels(tmp_path) -> None:
    """Three quarters of the pool labeled: the head sees half the neighbour weight, and selection scores
    with that head on the same features (never the full-weight ones the campaign started with)."""
    from labelloop.featurize import featurize_vectors

    fixed = make_campaign(tmp_path, n=60)
    f = featurize_vectors(fixed.X, identity="enc-A", smoothing=fixed.config.model.smoothing)
    campaign = Campaign(fixed.config, fixed.pool, f, "enc-A")
    ids = campaign.pool.ids
    labels = {i: LABELS[r % 3] for r, i in enumerate(ids[:45])}
    half = campaign.at_labels(45)
    assert campaign.at_labels(30) is campaign and half is not campaign
    assert half.learner.features == "knn-smooth(k=6, weight=0.25)"
    with Store.open(campaign.config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
            store.mark_pushed({i: k for k, i in enumerate(ids[:45])})
        annotate(store, 1, labels, start=0)
        model = train_if_due(store, campaign, run=1)
        assert model is not None
        stored = store.model(model.round)
        expected = half.learner.fit(labels).to_arrays()  # type: ignore[union-attr]
        full = campaign.learner.fit(labels).to_arrays()  # type: ignore[union-attr]
        np.testing.assert_allclose(stored["coef"], expected["coef"])
        assert not np.allclose(stored["coef"], full["coef"])
        head = half.learner.fit(labels)
        by_sync = [q.item_id for q in select(store, campaign, head, model, 10)]
    assert by_sync == [p.id for p in half.learner.select(head, set(ids[:45]), 10, labels=labels, n_sent=45)]


@pytest.mark.parametrize("budget_spent", [False, True])
def test_once_the_budget_is_spent_every_late_label_reaches_the_final_model(tmp_path, budget_spent) -> None:
    """Below ``retrain_every`` new labels wait for the next round, unless no round will come: the budget
    is spent, so the last labels trickling in would never reach the model status, report and predict use."""
    campaign = make_campaign(tmp_path, retrain_every=20, budget=24 if budget_spent else 500)
    truth = {i: LABELS[r % 3] for r, i in enumerate(campaign.pool.ids)}
    with Store.open(campaign.config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
        first = campaign.pool.ids[:21]
        with store.tx():
            store.mark_pushed({i: k for k, i in enumerate(campaign.pool.ids[:24])})
        annotate(store, 1, {i: truth[i] for i in first}, start=0)
        assert train_if_due(store, campaign, run=1) is not None
        annotate(store, 2, {i: truth[i] for i in campaign.pool.ids[21:24]}, start=100)  # 3 late labels
        late, regular = train_when_due(store, campaign, run=2)
        assert (late is not None) is budget_spent
        if budget_spent:  # the final model, but not a regular round: it sends no suspects back
            assert late is not None and len(late.train_labels) == 24 and not regular


def test_a_stop_rule_that_ended_the_campaign_also_lets_late_labels_retrain(tmp_path) -> None:
    campaign = make_campaign(tmp_path, retrain_every=20)
    truth = {i: LABELS[r % 3] for r, i in enumerate(campaign.pool.ids)}
    with Store.open(campaign.config.state.path) as store:
        with store.tx():
            register(store, campaign, project_id=7)
            store.mark_pushed({i: k for k, i in enumerate(campaign.pool.ids[:24])})
        annotate(store, 1, {i: truth[i] for i in campaign.pool.ids[:21]}, start=0)
        assert train_if_due(store, campaign, run=1) is not None
        annotate(store, 2, {i: truth[i] for i in campaign.pool.ids[21:24]}, start=100)
        assert train_if_due(store, campaign, run=2) is None  # 3 changes: not due, the campaign goes on
        with store.tx():
            run = store.start_run()
            store.update_run(run, finished_at="2026-11-30T10:00:00+00:00", stopped="stabilizing (kappa 0.99)")
        assert train_if_due(store, campaign, run=3) is not None  # it stopped: they reach the final model


def a_model_and_a_full_queue(store: Store, campaign: Campaign, queries: list | None = None) -> None:
    """Registered, model m-1 (of two labels), and texts 2..11 waiting in Label Studio as tasks 100..109."""
    ids = campaign.pool.ids
    with store.tx():
        register(store, campaign, project_id=7)
    arrays = campaign.learner.fit({ids[0]: "billing", ids[1]: "bug"}).to_arrays()  # type: ignore[union-attr]
    with store.tx():
        store.add_round(1, "m-1", "margin-kmeans", {}, {}, arrays, np.zeros(10, dtype=np.int64))
        store.add_queries(queries or [])
        store.mark_pushed({i: 100 + k for k, i in enumerate(ids[2:12])})


def test_a_second_opinion_recorded_but_never_reopened_is_reopened_by_the_next_sync(tmp_path) -> None:
    """The ledger holds an escalation asking for 2 people, but Label Studio failed before the task's overlap
    was raised (it still says 1): the next sync raises it, once; with Label Studio caught up, nothing."""
    campaign = make_campaign(tmp_path, queue_target=10)
    ids = campaign.pool.ids
    with Store.open(campaign.config.state.path) as store:
        a_model_and_a_full_queue(store, campaign)
        with store.tx():
            store.add_escalation(ids[2], 100, "suspect", 1, 2, "billing", 0.9)
        ls = QuietLabelStudio(store.pushes(), "m-1")
        SyncStep(store, ls, 7, campaign, lambda step: None).run(project("m-1"))
        assert ls.reopened == [{100: 2}]
        caught_up = QuietLabelStudio(store.pushes(), "m-1", overlaps={ids[2]: 2})
        SyncStep(store, caught_up, 7, campaign, lambda step: None).run(project("m-1"))
        assert caught_up.reopened == []


def test_a_refreshed_guess_is_recorded_as_what_annotators_now_see(tmp_path) -> None:
    """Waiting tasks sent with an older model get the new model's guess; the ledger follows, so the blind
    answers the "auto" threshold reads are scored against the guess people could have seen."""
    from labelloop.store import QueryRow

    campaign = make_campaign(tmp_path, queue_target=10)
    ids = campaign.pool.ids
    with Store.open(campaign.config.state.path) as store:
        a_model_and_a_full_queue(store, campaign, [QueryRow(i, 0, "active", "cold-start", "m-0", 0.1, None, "other",
                                                            0.2) for i in ids[2:12]])
        ls = QuietLabelStudio(store.pushes(), "m-0")  # every waiting task holds the older model's guess
        SyncStep(store, ls, 7, campaign, lambda step: None).run(project("m-0"))
        rows = {q.item_id: q for q in store.queries()}
    head = campaign.learner.fit({ids[0]: "billing", ids[1]: "bug"})
    assert head is not None
    for i in ids[2:12]:
        label, confidence = campaign.learner.guess(head.predict_proba(campaign.X[[ids.index(i)]])[0])
        assert (rows[i].model_version, rows[i].predicted) == ("m-1", label)
        assert rows[i].confidence == pytest.approx(confidence) and not rows[i].prefilled
