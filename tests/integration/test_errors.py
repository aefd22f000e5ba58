"""What a real Label Studio refuses becomes one clear line, the right exit code, and never the key."""

from __future__ import annotations

import pytest
from lshelpers import LABELS, run_cli

from labelloop.labelstudio import (
    Connector,
    LabelSetMismatchError,
    LabelStudioError,
    LabelStudioInputError,
    ProjectNotFoundError,
)

pytestmark = pytest.mark.labelstudio


def test_wrong_token(ls_server, monkeypatch, capsys, tmp_path) -> None:
    wrong = "f" * 40
    with pytest.raises(LabelStudioError) as err:
        Connector(ls_server.url, wrong, retries=2, backoff=0).project(1)
    assert err.value.status == 401 and not err.value.transient and err.value.exit_code == 3
    assert wrong not in str(err.value) and "refused the API key" in str(err.value)
    code, stderr = run_cli(monkeypatch, capsys, ls_server.url, wrong, "pull", "--project", "1",
                           "--out", str(tmp_path / "x.jsonl"))
    assert code == 3 and len(stderr.splitlines()) == 1 and "401" in stderr


def test_personal_access_token_works(ls_server, sdk, title) -> None:
    """Personal access tokens are JWT refresh tokens; the SDK trades them for access tokens itself."""
    pat = sdk.tokens.create().token
    ls = Connector(ls_server.url, pat)
    info = ls.ensure_project(title, LABELS)
    assert ls.project(info.id).title == title
    with pytest.raises(ProjectNotFoundError) as err:
        ls.project(987654)
    assert pat not in str(err.value)


def test_label_set_mismatch_on_reuse(connector, monkeypatch, capsys, ls_server, title) -> None:
    info = connector.ensure_project(title, LABELS)
    mismatch = r"only in Label Studio: \['bug'\]; only in ours: \['defect'\]"
    with pytest.raises(LabelSetMismatchError, match=mismatch):
        connector.ensure_project(title, ["billing", "defect", "other"])
    code, stderr = run_cli(monkeypatch, capsys, ls_server.url, ls_server.api_key, "project", "--project",
                           str(info.id), "--labels", "billing,defect,other")
    assert code == 2 and "different label set" in stderr and len(stderr.splitlines()) == 1


def test_missing_project(connector, monkeypatch, capsys, ls_server, tmp_path) -> None:
    with pytest.raises(ProjectNotFoundError):
        connector.project(987654)
    with pytest.raises(ProjectNotFoundError):
        connector.project("no project has this title")
    code, stderr = run_cli(monkeypatch, capsys, ls_server.url, ls_server.api_key, "pull", "--project",
                           "987654", "--out", str(tmp_path / "x.jsonl"))
    assert code == 2 and "no Label Studio project '987654'" in stderr


def test_request_label_studio_rejects(connector, title) -> None:
    """A 400: the project's model version can only name predictions that exist."""
    info = connector.ensure_project(title, LABELS)
    with pytest.raises(LabelStudioInputError, match=r"rejected the request .*400: Validation error") as err:
        connector.set_model_version(info.id, "no-such-model")
    assert err.value.exit_code == 2 and "\n" not in str(err.value)


def test_duplicate_titles_need_an_id(connector, sdk, title) -> None:
    connector.ensure_project(title, LABELS)
    sdk.projects.create(title=title, label_config=sdk.projects.get(connector.project(title).id).label_config)
    with pytest.raises(LabelStudioInputError, match="2 projects are titled"):
        connector.project(title)
