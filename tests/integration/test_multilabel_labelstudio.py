"""A multi-label campaign against a real Label Studio: `init --multi-label`, syncs, an annotator choosing several
labels through the project's queue, and the ledger, status and report reading label sets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomlkit
from lshelpers import Annotator, run_cli

from labelloop.cli import main
from labelloop.config import load_config
from labelloop.data import demo_paths
from labelloop.labels import join_labels, split_labels
from labelloop.labelstudio import LabelSetMismatchError
from labelloop.labelstudio.client import as_dict
from labelloop.multilabel import merge_texts
from labelloop.report import write_report
from labelloop.store import Store
from labelloop.sync import sync

pytestmark = [pytest.mark.labelstudio, pytest.mark.slow]

QUEUE = 12


def multilabel_data(folder: Path) -> tuple[list[str], dict[str, frozenset[str]]]:
    """A pool of demo tickets, 40 % of them merged in pairs of different intents (labels hidden), and a
    labeled test file merged apart; returns the label set and each pool text's true set."""
    frame = pd.read_csv(demo_paths()[0], dtype=str)
    rng = np.random.default_rng(0)
    pool_texts, pool_sets = merge_texts(frame["text"][:150].tolist(), frame["label"][:150].tolist(), 0.4, rng)
    test_texts, test_sets = merge_texts(frame["text"][150:230].tolist(), frame["label"][150:230].tolist(), 0.4, rng)
    ids = [f"m{k:03d}" for k in range(len(pool_texts))]
    pd.DataFrame({"id": ids, "text": pool_texts}).to_csv(folder / "pool.csv", index=False)
    pd.DataFrame({"text": test_texts, "labels": [join_labels(s) for s in test_sets]}).to_csv(
        folder / "test.csv", index=False)
    labels = sorted({lab for s in pool_sets + test_sets for lab in s})
    return labels, dict(zip(ids, pool_sets, strict=True))


def work(annotator: Annotator, project_id: int, truth: dict[str, frozenset[str]], n: int) -> list[str]:
    """Answer up to ``n`` tasks in the order the project's queue serves them, ticking every true label."""
    done = []
    for _ in range(n):
        r = annotator.client.get(f"/api/projects/{project_id}/next")
        if r.status_code != 200:
            break
        task = r.json()
        our_id = task["data"]["labelloop_id"]
        result = [{"from_name": "label", "to_name": "text", "type": "choices",
                   "value": {"choices": sorted(truth[our_id])}}]
        posted = annotator.client.post(f"/api/tasks/{task['id']}/annotations/",
                                       json={"result": result, "lead_time": 3.0})
        assert posted.status_code == 201, posted.text
        done.append(our_id)
    return done


def init_campaign(tmp_path: Path, title: str, ls_server, cache: Path, monkeypatch, capsys, *, loop: dict,
                  quality: dict) -> tuple[Path, tomlkit.TOMLDocument, list[str], dict[str, frozenset[str]]]:
    """`labelloop init --multi-label` on the merged pool as a lead would run it, then ``loop`` and ``quality``
    settings written into the file it made: (config path, the parsed file, labels, truth)."""
    labels, truth = multilabel_data(tmp_path)
    config_path = tmp_path / "labelloop.toml"
    code, err = run_cli(monkeypatch, capsys, ls_server.url, ls_server.api_key, "init", str(config_path),
                        "--data", "pool.csv", "--labels", ",".join(labels), "--project", title, "--multi-label")
    assert code == 0, err
    doc = tomlkit.parse(config_path.read_text())
    doc["loop"].update(loop)
    doc["model"]["cache_dir"] = str(cache)
    doc["quality"].update(quality)
    config_path.write_text(tomlkit.dumps(doc))
    return config_path, doc, labels, truth


def predictions_by_id(sdk, project_id: int, version: str) -> dict[str, list]:
    """Our id -> the result of its prediction of ``version``."""
    tasks = {t.id: t.data["labelloop_id"] for t in sdk.tasks.list(project=project_id, page_size=1000)}
    return {tasks[p.task]: [as_dict(r) for r in p.result or []]
            for p in sdk.predictions.list(project=project_id) if p.model_version == version and p.task in tasks}


def test_a_multi_label_campaign_end_to_end(tmp_path, title, ls_server, sdk, connector, embedding_cache,
                                           monkeypatch, capsys) -> None:
    config_path, doc, labels, truth = init_campaign(
        tmp_path, title, ls_server, embedding_cache, monkeypatch, capsys,
        loop={"queue_target": QUEUE, "budget": 60, "retrain_every": 6, "audit_fraction": 0.1},
        quality={"overlap_share": 0.0, "prefill_confidence": 0.0})  # every guess shown: checkable
    assert doc["multi_label"] is True and doc["data"]["id_column"] == "id"
    doc["data"].update({"test": "test.csv", "test_label_column": "labels"})
    doc["stop"]["on"] = ["budget"]
    config_path.write_text(tomlkit.dumps(doc))
    config = load_config(config_path)

    first = sync(config)  # cold start
    assert first.pushed_active + first.pushed_audit == QUEUE and not first.trained
    assert any("multi-label campaign" in w for w in first.warnings)  # what is not done yet, said once
    store = Store.open_existing(config.state.path)
    project_id = int(store.get("project_id"))
    assert connector.project(project_id).config.multiple  # Label Studio offers several choices

    annotator = Annotator(ls_server, f"ml-{title[-6:]}@labelloop.test")
    answered = work(annotator, project_id, truth, QUEUE)
    assert len(answered) == QUEUE

    second = sync(config)
    assert second.pulled == QUEUE and second.trained
    answered += work(annotator, project_id, truth, QUEUE)
    third = sync(config)
    assert third.trained and third.pushed_active > 0

    store = Store.open_existing(config.state.path)
    res = store.resolutions()
    # The ledger holds each answer as its set, whatever order the choices were ticked in.
    assert {i: res[i].label for i in answered} == {i: join_labels(truth[i]) for i in answered}
    assert sum(len(truth[i]) > 1 for i in answered) >= 3
    last = store.last_round()
    assert last is not None and last.has_model
    for name in ("audit", "test"):
        m = last.metrics[name]
        assert m["n"] > 0 and 0 <= m["subset_accuracy"] <= m["micro_f1"] <= 1
    assert last.metrics["test"]["micro_f1"] > 0.3  # 13 intents from ~20 labels: learnt, not chance

    # Pre-annotations: the predicted set as several choices; audit tasks blind.
    audit = set(store.ids_with_role("audit"))
    shown = predictions_by_id(sdk, project_id, last.model_version)
    waiting_active = [q for q in store.queries() if q.item_id not in res and q.item_id not in audit
                      and q.model_version == last.model_version]
    assert waiting_active
    for q in waiting_active:
        assert shown[q.item_id][0]["value"]["choices"] == sorted(split_labels(q.predicted))
    assert all(shown[i] == [] for i in audit if i in shown and i not in res)

    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["labelloop", "status", "--config", str(config_path)])
    try:  # status prints to stdout, offline
        main()
    except SystemExit as exc:
        assert not exc.code
    out = capsys.readouterr().out
    assert f"{len(answered)} text(s) labeled" in " ".join(out.split())
    assert "test: micro-F1" in out and "agreement on 0 text(s) labeled by several people (yes/no per" in out
    assert "4 rounds with audit micro-F1" in out  # the plateau rule watches micro-F1

    code, err = run_cli(monkeypatch, capsys, ls_server.url, ls_server.api_key, "predict", "--config",
                        str(config_path), "--input", str(tmp_path / "test.csv"), "--out", str(tmp_path / "p.csv"))
    assert code == 0, err
    predicted = pd.read_csv(tmp_path / "p.csv", dtype=str)
    assert len(predicted) == len(pd.read_csv(tmp_path / "test.csv"))
    assert all(split_labels(cell) and split_labels(cell) <= set(labels) for cell in predicted["label"])

    report = write_report(config, tmp_path / "report.md").read_text()
    assert "micro-F1" in report and "## Annotators and agreement" in report and "## Labels per class" in report
    failures = report.split("## Where the current model fails")[1].split("\n## ")[0]
    rows = [line.replace("\\_", "_").split(" | ") for line in failures.splitlines() if line.startswith("| ")]
    per_label = [row for row in rows if row[0].lstrip("| ") in labels]  # (Markdown escapes the _ of names)
    assert per_label and all(len(row) == 6 for row in per_label)  # label, texts, predicted, P, R, F1
    f1s = [float(row[5].rstrip(" |")) for row in per_label]
    assert f1s == sorted(f1s) and all(0 <= f <= 1 for f in f1s)  # worst first

    # The mode cannot change: the same project and state file, read single-label, are refused in one line.
    doc["multi_label"] = False
    del doc["data"]["test"]  # (its cells are sets: refused as labels of a single-label campaign first)
    config_path.write_text(tomlkit.dumps(doc))
    with pytest.raises(LabelSetMismatchError, match=r"multi-label .* but the campaign is single-label"):
        sync(load_config(config_path))


def test_two_people_on_label_sets_agree_per_label_and_a_differing_set_is_a_tie(
        tmp_path, title, ls_server, embedding_cache, monkeypatch, capsys) -> None:
    """Every task goes to two people. One ticks the true set; the other drops a label from every pair. Status
    measures agreement over the yes/no decisions per label (the pairs agree on all but one label), and each
    differing set is a tie sent to a third person, as with single labels."""
    config_path, _, labels, truth = init_campaign(
        tmp_path, title, ls_server, embedding_cache, monkeypatch, capsys,
        loop={"queue_target": 8, "budget": 8, "retrain_every": 100, "audit_fraction": 0.0},
        quality={"overlap_share": 1.0, "max_annotators": 3})
    config = load_config(config_path)
    sync(config)
    project_id = int(Store.open_existing(config.state.path).get("project_id"))
    careful = Annotator(ls_server, f"mlc-{title[-6:]}@labelloop.test")
    sloppy = Annotator(ls_server, f"mls-{title[-6:]}@labelloop.test")
    answered = work(careful, project_id, truth, 8)
    dropped = {i: frozenset(sorted(s)[:1]) for i, s in truth.items()}  # pairs lose their second label
    assert sorted(work(sloppy, project_id, dropped, 8)) == sorted(answered)
    pairs = [i for i in answered if len(truth[i]) > 1]
    assert pairs and len(pairs) < len(answered)

    report = sync(config)
    assert report.escalated == len(pairs)  # each differing set: a tie, to one more person
    from labelloop.status import summary

    ag = summary(config)["agreement"]
    (pair,) = ag.pairs
    assert ag.n_multi == len(answered) and pair.n_items == len(answered)
    assert pair.observed == pytest.approx(1 - len(pairs) / (len(answered) * len(labels)))
    assert 0 < pair.kappa < 1


def test_serve_drives_a_multi_label_campaign_and_answers_with_label_sets(
        tmp_path, title, ls_server, sdk, embedding_cache, monkeypatch, capsys) -> None:
    """`labelloop serve` as a real process on a multi-label campaign: webhooks from an annotator ticking sets
    retrain and refill the queue without cron, and Label Studio's /predict calls get the model's predicted
    set as several choices, the same set sync sends as the task's pre-annotation."""
    import httpx
    from test_serve import SECRET, free_port, start_serve, stop_serve, wait_for
    from test_sync import project_tasks, waiting

    config_path, _, labels, truth = init_campaign(
        tmp_path, title, ls_server, embedding_cache, monkeypatch, capsys,
        loop={"queue_target": QUEUE, "budget": 60, "retrain_every": 6, "audit_fraction": 0.0},
        quality={"overlap_share": 0.0, "prefill_confidence": 0.0})  # every guess shown: checkable
    env = {**os.environ, "LABEL_STUDIO_URL": ls_server.url, "LABEL_STUDIO_API_KEY": ls_server.api_key,
           "LABELLOOP_SERVE_SECRET": SECRET}
    served = start_serve(config_path, env, free_port(), "--debounce", "1", "--max-wait", "8")
    try:
        wait_for("the first step", lambda: served.status()["steps"] >= 1 and served.idle())
        done = served.cli("connect", "--url-for-label-studio", served.url)
        assert done.returncode == 0, done.stderr
        project_id = int(served.store().get("project_id"))
        person = Annotator(ls_server, f"mlserve-{title[-6:]}@labelloop.test")
        assert len(work(person, project_id, truth, QUEUE)) == QUEUE

        def trained_and_refilled() -> bool:
            last = served.store().last_round()
            return bool(served.idle()) and last.has_model and len(waiting(project_tasks(sdk, project_id))) == QUEUE
        wait_for("webhooks to retrain and refill", trained_and_refilled)
        version = served.store().last_round().model_version

        # The tasks the queue holds: /predict answers with the sets sync sent as their pre-annotations.
        wait_for("pre-annotations of the new model", lambda: predictions_by_id(sdk, project_id, version))
        sent = predictions_by_id(sdk, project_id, version)
        tasks = [t for t in waiting(project_tasks(sdk, project_id)) if t["data"]["labelloop_id"] in sent]
        assert tasks
        direct = httpx.post(f"{served.url}/predict", headers={"X-Labelloop-Secret": SECRET}, timeout=60,
                            json={"tasks": [{"id": t["id"], "data": t["data"]} for t in tasks]}).json()["results"]
        assert [d["result"] for d in direct] == [sent[t["data"]["labelloop_id"]] for t in tasks]
        for d in direct:
            choices = d["result"][0]["value"]["choices"]
            assert d["model_version"] == version and 0 < d["score"] <= 1
            assert choices == sorted(choices) and set(choices) <= set(labels)
        # A ticket about two things, imported by hand: Label Studio asks the backend when it is opened.
        sdk.projects.import_tasks(project_id, request=[{"text": "I was charged twice for my subscription. "
                                                                "Also the app crashes when I open settings."}])
        foreign = next(t for t in project_tasks(sdk, project_id) if "labelloop_id" not in t["data"])
        assert person.client.get(f"/api/tasks/{foreign['id']}").status_code == 200
        preds = list(sdk.predictions.list(task=foreign["id"]))
        assert len(preds) == 1 and preds[0].model_version == version
        assert set(preds[0].result[0]["value"]["choices"]) <= set(labels)
    finally:
        stop_serve(served)
    assert SECRET not in served.log.read_text()
