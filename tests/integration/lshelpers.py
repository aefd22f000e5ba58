"""Acting in Label Studio as a person would, through its API (shared by the integration tests)."""

from __future__ import annotations

import sys

import pytest

LABELS = ["billing", "bug", "other"]


def annotate(sdk, task_id: int, label: str | None, *, by: int | None = None, from_name: str = "label",
             to_name: str = "text") -> int:
    """Submit (or, with ``label=None``, skip) a task through the API, the way the labeling UI does."""
    extra = {} if by is None else {"completed_by": by}
    if label is None:
        ann = sdk.annotations.create(id=task_id, result=[], was_cancelled=True, lead_time=1.5, **extra)
    else:
        result = [{"from_name": from_name, "to_name": to_name, "type": "choices",
                   "value": {"choices": [label]}}]
        ann = sdk.annotations.create(id=task_id, lead_time=4.2, result=result, **extra)
    return int(ann.id)


def relabel(sdk, annotation_id: int, label: str) -> None:
    sdk.annotations.update(annotation_id, result=[
        {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}])


def run_cli(monkeypatch: pytest.MonkeyPatch, capsys, url: str, key: str, *args: str) -> tuple[int, str]:
    """Run `labelloop ARGS` in-process like the console script: (exit code, stderr); the key must stay out."""
    from labelloop.cli import main

    monkeypatch.setenv("LABEL_STUDIO_URL", url)
    monkeypatch.setenv("LABEL_STUDIO_API_KEY", key)
    monkeypatch.setattr(sys, "argv", ["labelloop", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    assert key not in out.out + out.err
    return code, out.err.strip()


class Annotator:
    """A person with their own Label Studio account, working through the project's queue (``/next``).

    Signed up through the organisation's invite link, like a colleague would be; ``accuracy`` is
    the chance of giving the true label (otherwise another label, chosen by the script's own rng).
    Every label given is kept in ``given`` so tests can compare what labelloop measured with truth.
    """

    def __init__(self, server, email: str, accuracy: float = 1.0, seed: int = 0) -> None:
        import random

        import httpx

        admin = httpx.Client(base_url=server.url, headers={"Authorization": f"Token {server.api_key}"}, timeout=60)
        link = admin.get("/api/invite").json()["invite_url"]
        session = httpx.Client(base_url=server.url, follow_redirects=True, timeout=60)
        session.get(link)
        session.post(link, data={"email": email, "password": "not-a-real-secret-1",
                                 "csrfmiddlewaretoken": session.cookies.get("csrftoken")},
                     headers={"Referer": server.url + link})
        token = session.get("/api/current-user/token").json()["token"]
        self.email = email
        self.client = httpx.Client(base_url=server.url, headers={"Authorization": f"Token {token}"}, timeout=60)
        self.id = int(self.client.get("/api/current-user/whoami").json()["id"])
        self.accuracy = accuracy
        self.rng = random.Random(seed)
        self.given: dict[str, str] = {}  # our id -> label this annotator gave

    def work(self, project_id: int, truth: dict[str, str], labels: list[str], n: int,
             wrong: dict[str, str] | None = None) -> list[str]:
        """Label up to ``n`` tasks the queue serves; ``wrong`` forces a label for given ids (injected errors)."""
        done = []
        for _ in range(n):
            task = self.next_task(project_id)
            if task is None:
                break
            our_id = task["data"]["labelloop_id"]
            true = truth[our_id]
            label = (wrong or {}).get(our_id) or (true if self.rng.random() < self.accuracy
                                                  else self.rng.choice([x for x in labels if x != true]))
            self.answer(task, label)
            done.append(our_id)
        return done

    def next_task(self, project_id: int) -> dict | None:
        """The task Label Studio's queue serves this person next (None: nothing left for them)."""
        r = self.client.get(f"/api/projects/{project_id}/next")
        return r.json() if r.status_code == 200 else None

    def answer(self, task: dict, label: str | None) -> None:
        """Submit ``label``, or (None) a submission with no choice, as the editor allows."""
        choice = [] if label is None else [
            {"from_name": "label", "to_name": "text", "type": "choices", "value": {"choices": [label]}}]
        r = self.client.post(f"/api/tasks/{task['id']}/annotations/", json={"result": choice, "lead_time": 3.0})
        r.raise_for_status()
        if label is not None:
            self.given[task["data"]["labelloop_id"]] = label


def demo_campaign(folder, title: str, cache, n: int = 240, **sections: dict) -> tuple:
    """A ``labelloop.toml`` over the first ``n`` demo tickets (labels hidden from labelloop) and the truth the
    scripted annotators know. ``sections`` update the config's tables, e.g. ``loop={"budget": 70}``."""
    from pathlib import Path

    import pandas as pd
    import tomlkit

    from labelloop.data import demo_paths

    folder = Path(folder)
    frame = pd.read_csv(demo_paths()[0], dtype=str).head(n)
    frame[["id", "text"]].to_csv(folder / "pool.csv", index=False)
    config: dict = {
        "labels": sorted(frame["label"].unique()),
        "data": {"path": "pool.csv", "id_column": "id"},
        "labelstudio": {"project": title},
        "stop": {"on": ["budget"]},
        "model": {"cache_dir": str(cache)},
        "state": {"path": "state.db"},
    }
    for table, values in sections.items():
        config.setdefault(table, {}).update(values)
    (folder / "labelloop.toml").write_text(tomlkit.dumps(config))
    return folder / "labelloop.toml", dict(zip(frame["id"], frame["label"], strict=True))
