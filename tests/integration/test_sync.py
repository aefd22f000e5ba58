"""`labelloop sync` against a real Label Studio: a scripted multi-day campaign, kills at every step,
two syncs at once, and a server that is down."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from lshelpers import annotate, demo_campaign, relabel

from labelloop.config import load_config
from labelloop.labelstudio import resolve
from labelloop.labelstudio.client import as_dict as _as_dict
from labelloop.store import Store
from labelloop.sync import EXIT_BUSY, sync, sync_lock

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

QUEUE = 12
BUDGET = 70


@pytest.fixture
def campaign(tmp_path: Path, title: str, ls_server, embedding_cache, monkeypatch) -> tuple[Path, dict[str, str]]:
    """A config over 240 demo texts (labels hidden from labelloop) and the truth the scripted annotator knows."""
    config = demo_campaign(tmp_path, title, embedding_cache, 240, labelstudio={"batch_size": 5},
                           loop={"queue_target": QUEUE, "budget": BUDGET, "retrain_every": 6, "audit_fraction": 0.1})
    monkeypatch.setenv("LABEL_STUDIO_URL", ls_server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", ls_server.api_key)
    return config


def project_tasks(sdk, project_id: int) -> list[dict]:
    return [_as_dict(t) for t in sdk.tasks.list(project=project_id, fields="all", page_size=1000,
                                                include="id,data,annotations_ids,total_annotations,"
                                                        "cancelled_annotations,predictions_model_versions")]


def waiting(tasks: list[dict]) -> list[dict]:
    return [t for t in tasks if not t.get("total_annotations") and not t.get("cancelled_annotations")]


def assert_store_matches_label_studio(config_path: Path, connector, sdk) -> Store:
    """Every task is in the ledger once, every live annotation is in the store, and vice versa."""
    config = load_config(config_path)
    store = Store.open_existing(config.state.path)
    project_id = int(store.get("project_id"))
    tasks = project_tasks(sdk, project_id)
    ids = [t["data"]["labelloop_id"] for t in tasks]
    assert len(ids) == len(set(ids)), Counter(ids).most_common(3)  # no duplicate task
    assert store.pushes() == {t["data"]["labelloop_id"]: t["id"] for t in tasks}
    assert store.queries("pending") == []
    fresh = connector.pull(project_id)  # from scratch: what Label Studio holds now
    assert resolve(store.records()) == resolve(fresh.records)  # no label lost or invented
    assert set(store.resolutions()) == set(resolve(fresh.records))
    return store


def annotate_some(sdk, project_id: int, truth: dict[str, str], n: int, *, skip_every: int = 0) -> None:
    for k, task in enumerate(waiting(project_tasks(sdk, project_id))[:n]):
        our_id = task["data"]["labelloop_id"]
        annotate(sdk, task["id"], None if skip_every and k % skip_every == skip_every - 1 else truth[our_id])


def test_a_scripted_campaign_over_several_days(campaign, connector, sdk) -> None:
    config_path, truth = campaign
    config = load_config(config_path)
    suffix = config_path.parent.name[-6:]
    other = sdk.users.create(username=f"second-{suffix}", email=f"second-{suffix}@labelloop.test").id

    reports = []
    for day in range(7):
        reports.append(sync(config))
        store = Store.open_existing(config.state.path)
        project_id = int(store.get("project_id"))
        tasks = project_tasks(sdk, project_id)
        assert len(waiting(tasks)) <= QUEUE  # never flood the annotators
        if day == 2:  # a relabel and a disagreement on already labeled texts
            done = [t for t in tasks if t.get("total_annotations")]
            first = sdk.annotations.list(id=done[0]["id"])[0]
            wrong = next(lab for lab in config.labels if lab != truth[done[0]["data"]["labelloop_id"]])
            relabel(sdk, first.id, wrong)
            annotate(sdk, done[1]["id"], wrong, by=other)
        annotate_some(sdk, project_id, truth, 9, skip_every=5)

    final = sync(config)
    store = assert_store_matches_label_studio(config_path, connector, sdk)
    rounds = store.rounds()
    assert len(rounds) >= 3 and not rounds[0].has_model  # cold start, then models as labels came
    assert [r.round for r in rounds] == list(range(len(rounds)))
    assert len(store.pushes()) == BUDGET and final.pushed_active + final.pushed_audit > 0
    after = sync(config)  # the budget is spent: the next run says so and sends nothing
    assert after.stopped and after.stopped.startswith("budget") and after.pushed_active + after.pushed_audit == 0
    sent_audit = set(store.pushes()) & set(store.ids_with_role("audit"))
    assert len(sent_audit) == round(0.1 * BUDGET)
    assert not sent_audit & set(rounds[-1].train_labels)  # the audit sample never trains the model
    res = store.resolutions()
    assert sum(r.disagreement for r in res.values()) == 1
    assert sum(r.skipped > 0 and not r.votes for r in res.values()) >= 3
    # The project serves the newest model's predictions, and every waiting non-audit task has one.
    info = connector.project(int(store.get("project_id")))
    assert info.model_version == rounds[-1].model_version
    for task in waiting(project_tasks(sdk, info.id)):
        if task["data"]["labelloop_id"] not in sent_audit:
            assert rounds[-1].model_version in (task.get("predictions_model_versions") or [])
    queued = {q.item_id: q for q in store.queries()}
    assert set(queued) == set(store.pushes())  # every task traces back to the round that chose it
    assert all(q.strategy in ("cold-start", "random-audit", config.loop.strategy) for q in queued.values())
    runs = store.runs()
    assert len(runs) == 9 and all(r.queue_after <= QUEUE for r in runs)
    assert sum(r.pushed for r in runs) == len(store.pushes()) and not any(r.adopted for r in runs)
    assert sum(r.trained is not None for r in runs) == len(rounds) - 1

    annotate_some(sdk, info.id, truth, QUEUE)  # the last tasks: a retrain with nothing left waiting
    last = sync(config)
    assert last.trained and last.queue_after == 0 and last.stopped
    assert_store_matches_label_studio(config_path, connector, sdk)


KILLER = """
import os, sys
from labelloop.config import load_config
from labelloop.sync import sync
step = sys.argv[2]
def hook(s):
    if s == step:
        os._exit(137)
sync(load_config(sys.argv[1]), hook=hook)
"""


def run_killed(config_path: Path, step: str) -> int:
    done = subprocess.run([sys.executable, "-c", KILLER, str(config_path), step], env=os.environ.copy(),
                          capture_output=True, text=True, timeout=300, check=False)
    return done.returncode


@pytest.mark.parametrize("step", ["pulled", "selected", "mid-push", "pushed", "ledger"])
def test_killed_at_each_step_then_rerun_converges(campaign, connector, sdk, step) -> None:
    config_path, truth = campaign
    config = load_config(config_path)
    sync(config)
    project_id = int(Store.open_existing(config.state.path).get("project_id"))
    annotate_some(sdk, project_id, truth, 8, skip_every=4)

    assert run_killed(config_path, step) == 137
    sync(config)
    store = assert_store_matches_label_studio(config_path, connector, sdk)
    assert len(waiting(project_tasks(sdk, project_id))) == QUEUE
    assert len(store.pushes()) == QUEUE + 8  # refilled exactly once, whatever the kill interrupted
    runs = store.runs()
    assert [r.finished_at is None for r in runs] == [False, True, False]  # the killed run stays visible
    assert sum(r.pushed + r.adopted for r in runs) == len(store.pushes())  # every task accounted for
    sync(config)  # and a further run changes nothing
    assert len(Store.open_existing(config.state.path).pushes()) == QUEUE + 8


def test_a_second_sync_exits_with_the_busy_code_and_does_nothing(campaign) -> None:
    config_path, _ = campaign
    config = load_config(config_path)
    with sync_lock(config.state.path):
        done = subprocess.run([sys.executable, "-m", "labelloop.cli", "sync", "-q", "--config", str(config_path)],
                              env=os.environ.copy(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == EXIT_BUSY, done.stderr
    assert "another labelloop sync is running" in done.stderr
    assert not config.state.path.exists()


def test_two_syncs_started_together_one_runs(campaign, sdk) -> None:
    config_path, _ = campaign
    cmd = [sys.executable, "-m", "labelloop.cli", "sync", "-q", "--config", str(config_path)]
    procs = [subprocess.Popen(cmd, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    codes = sorted(p.wait(timeout=300) for p in procs)
    assert codes == [0, EXIT_BUSY], [p.stderr.read() for p in procs]
    store = Store.open_existing(load_config(config_path).state.path)
    assert len(store.runs()) == 1 and len(project_tasks(sdk, int(store.get("project_id")))) == QUEUE


def test_label_studio_down_is_one_clear_line_and_writes_nothing(campaign, monkeypatch) -> None:
    config_path, _ = campaign
    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")  # nothing listens on the discard port
    done = subprocess.run([sys.executable, "-m", "labelloop.cli", "sync", "-q", "--config", str(config_path)],
                          env=os.environ.copy(), capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 3
    lines = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "cannot reach Label Studio" in lines[0]
    assert os.environ["LABEL_STUDIO_API_KEY"] not in done.stderr
    assert not load_config(config_path).state.path.exists()


# -- bad answers from the server: one line, a non-zero exit, nothing written ----------------------

def cli_sync(config_path: Path, **env: str) -> tuple[int, str]:
    done = subprocess.run([sys.executable, "-m", "labelloop.cli", "sync", "-q", "--config", str(config_path)],
                          env={**os.environ, **env}, capture_output=True, text=True, timeout=300, check=False)
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == (done.returncode != 0), done.stderr
    assert os.environ["LABEL_STUDIO_API_KEY"] not in done.stderr
    return done.returncode, " ".join(" ".join(errors).split())


def test_a_wrong_token_writes_nothing(campaign) -> None:
    config_path, _ = campaign
    code, err = cli_sync(config_path, LABEL_STUDIO_API_KEY="0123456789abcdef0123456789abcdef01234567")
    assert code == 3 and "refused the API key" in err
    assert not load_config(config_path).state.path.exists()


def test_a_project_with_other_labels_is_refused(campaign, connector) -> None:
    config_path, _ = campaign
    config = load_config(config_path)
    connector.ensure_project(config.labelstudio.project, ["billing", "bug", "other"])
    code, err = cli_sync(config_path)
    assert code == 2 and "billing" in err and "app_bug" in err
    assert not config.state.path.exists()


def test_a_missing_project_id_is_refused(campaign) -> None:
    config_path, _ = campaign
    config_path.write_text(config_path.read_text().replace(f'project = "{load_config(config_path).labelstudio.project}"',
                                                           "project = 987654"))
    code, err = cli_sync(config_path)
    assert code == 2 and "no Label Studio project with id 987654" in err
    assert not load_config(config_path).state.path.exists()


def test_a_choice_outside_the_label_set_fails_the_pull_and_keeps_the_store(campaign, sdk) -> None:
    config_path, _ = campaign
    config = load_config(config_path)
    sync(config)
    store = Store.open_existing(config.state.path)
    task = waiting(project_tasks(sdk, int(store.get("project_id"))))[0]
    store.close()
    result = [{"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": ["pizza"]}}]
    sdk.annotations.create(id=task["id"], result=result)
    before = config.state.path.read_bytes()
    code, err = cli_sync(config_path)
    assert code == 2 and "pizza" in err and str(task["id"]) in err
    assert config.state.path.read_bytes() == before


def test_a_state_file_of_another_project_is_refused(campaign, connector, tmp_path) -> None:
    config_path, _ = campaign
    config = load_config(config_path)
    sync(config)
    before = config.state.path.read_bytes()
    other = f"other-{tmp_path.name[-6:]}"
    config_path.write_text(config_path.read_text().replace(f'project = "{config.labelstudio.project}"',
                                                           f'project = "{other}"'))
    code, err = cli_sync(config_path)
    assert code == 2 and "belongs to Label Studio project" in err
    assert config.state.path.read_bytes() == before
    assert connector.find_project(other) is None  # and no project was created for it


def test_a_text_changed_under_its_id_is_refused(campaign) -> None:
    config_path, _ = campaign
    config = load_config(config_path)
    sync(config)
    before = config.state.path.read_bytes()
    frame = pd.read_csv(config.data.path, dtype=str)
    frame.loc[3, "text"] = "Entirely different words now."
    frame.to_csv(config.data.path, index=False)
    code, err = cli_sync(config_path)
    assert code == 2 and "changed under the same id" in err and frame.loc[3, "id"] in err
    assert config.state.path.read_bytes() == before


def test_a_small_pool_labeled_to_the_end_fades_the_neighbour_weight_and_predicts_on_raw_vectors(
        tmp_path, title, ls_server, embedding_cache, monkeypatch, sdk) -> None:
    """40 texts labeled to the last one through the real loop: past half the pool the models' features fade,
    and the last model (every non-audit text labeled but the audit's) is trained, asked and evaluated on the
    weight of its own labels; predict scores new texts with that weight too."""
    from typer.testing import CliRunner

    from labelloop.campaign import latest_head, load_campaign
    from labelloop.cli import app
    from labelloop.data import demo_paths

    config_path, truth = demo_campaign(tmp_path, title, embedding_cache, 40,
                                       loop={"queue_target": 10, "budget": 40, "retrain_every": 1,
                                             "audit_fraction": 0.1})
    monkeypatch.setenv("LABEL_STUDIO_URL", ls_server.url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", ls_server.api_key)
    config = load_config(config_path)
    for _ in range(8):
        sync(config)
        project_id = int(Store.open_existing(config.state.path).get("project_id"))
        annotate_some(sdk, project_id, truth, 10)
    sync(config)
    store = Store.open_existing(config.state.path)
    last, head = latest_head(store)
    n = len(last.train_labels)
    assert head is not None and n > 30  # past half the pool: the weight has faded
    campaign = load_campaign(config)
    faded = campaign.at_labels(n)
    assert faded is not campaign and str(config.model.smoothing.at(n, 40)) != str(config.model.smoothing)
    # The stored model is the one fitted on the faded features (not on the full-weight ones).
    np.testing.assert_allclose(store.model(last.round)["coef"], faded.learner.fit(last.train_labels).to_arrays()["coef"])
    out = tmp_path / "pred.csv"
    result = CliRunner().invoke(app, ["predict", "--config", str(config_path), "--input", str(demo_paths()[1]),
                                      "--id-column", "id", "--out", str(out)])
    assert result.exit_code == 0, result.output
    from labelloop.campaign import config_encoder
    from labelloop.featurize import featurize

    new = pd.read_csv(demo_paths()[1], dtype=str)
    f = featurize(campaign.pool.texts, list(new["text"]), encoder=config_encoder(config),
                  cache_dir=config.model.cache_dir, smoothing=config.model.smoothing.at(n, 40), smooth_pool=False)
    expected = [config.labels[k] for k in head.predict(f.others[0])]  # new texts at the model's own weight
    assert pd.read_csv(out, dtype=str)["label"].tolist() == expected
