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
