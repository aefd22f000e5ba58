"""Bad configs and bad data stop `labelloop sync` with one clear line, exit code 2, and nothing written.

These fail before any server is contacted (the URL points at a port where nothing listens);
the server's own bad answers are in tests/integration/test_sync_inputs.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from labelloop.config import load_config
from labelloop.errors import LabelloopError

LABELS = '["billing", "bug", "other"]'
POOL = "id,text\na1,My invoice is wrong\na2,The app crashes\na3,Just saying hi\n"


def write_campaign(tmp: Path, *, config: str | None = None, pool: str | bytes = POOL,
                   edit: Callable[[str], str] = lambda s: s) -> Path:
    (tmp / "pool.csv").write_bytes(pool.encode() if isinstance(pool, str) else pool)
    text = config if config is not None else f"""
labels = {LABELS}
[data]
path = "pool.csv"
id_column = "id"
[labelstudio]
project = "inputs"
[state]
path = "state.db"
"""
    path = tmp / "labelloop.toml"
    path.write_text(edit(text), encoding="utf-8")
    return path


def run_sync(monkeypatch, capsys, config: Path, *, key: str | None = "secret-key-123") -> tuple[int, str]:
    from labelloop.cli import main

    monkeypatch.setenv("LABEL_STUDIO_URL", "http://127.0.0.1:9")
    if key is None:
        monkeypatch.delenv("LABEL_STUDIO_API_KEY", raising=False)
    else:
        monkeypatch.setenv("LABEL_STUDIO_API_KEY", key)
    monkeypatch.setattr(sys, "argv", ["labelloop", "sync", "-q", "--config", str(config)])
    with pytest.raises(SystemExit) as exit_:
        main()
    err = capsys.readouterr().err
    assert "secret-key-123" not in err
    return int(exit_.value.code or 0), " ".join(err.split())


def add(section: str, line: str) -> Callable[[str], str]:
    return lambda s: s.replace(f"[{section}]\n", f"[{section}]\n{line}\n", 1)


CONFIG_CASES = {
    "not valid TOML": lambda s: s + "\n[loop\n",
    "unknown setting (misspelt?)": add("labelstudio", "projct = 'x'"),
    "loop.queue_target: Input should be a valid integer": lambda s: s + "[loop]\nqueue_target = 'ten'\n",
    "loop.queue_target: Input should be greater than or equal to 1": lambda s: s + "[loop]\nqueue_target = 0\n",
    "loop.audit_fraction: Input should be less than or equal to 0.5": lambda s: s + "[loop]\naudit_fraction = 0.9\n",
    "loop.strategy: unknown strategy 'smart'": lambda s: s + "[loop]\nstrategy = 'smart'\n",
    "labels: duplicate labels: ['bug']": lambda s: s.replace(LABELS, '["billing", "bug", "bug"]'),
    "labels: a label set needs at least two labels": lambda s: s.replace(LABELS, '["billing"]'),
    "comes from the LABEL_STUDIO_API_KEY environment variable only": add("labelstudio", "api_key = 'abc'"),
    "labelstudio.project: required setting is missing": lambda s: s.replace('project = "inputs"', ""),
    "stop.on.0: Input should be 'budget', 'stabilizing' or 'plateau'": lambda s: s + "[stop]\non = ['bored']\n",
    "model.C: Input should be greater than 0": lambda s: s + "[model]\nC = -1\n",
}


@pytest.mark.parametrize("expected", list(CONFIG_CASES))
def test_a_bad_config_is_one_line_naming_the_setting(tmp_path, monkeypatch, capsys, expected) -> None:
    config = write_campaign(tmp_path, edit=CONFIG_CASES[expected])
    code, err = run_sync(monkeypatch, capsys, config)
    assert code == 2 and expected in err and str(config) in err
    assert err.count("error:") == 1
    assert not (tmp_path / "state.db").exists()


def test_a_missing_config_points_to_init(tmp_path, monkeypatch, capsys) -> None:
    code, err = run_sync(monkeypatch, capsys, tmp_path / "nope.toml")
    assert code == 2 and "config file not found" in err and "labelloop init" in err


DATA_CASES = {
    "file not found": ("id,text\n", lambda s: s.replace('path = "pool.csv"', 'path = "missing.csv"')),
    "no text column 'text'": ("id,body\na1,hello\n", None),
    "1 empty or missing text(s) in column 'text' at data rows 2": ("id,text\na1,hi\na2,  \na3,yo\n", None),
    "1 duplicate id(s) in column 'id'": ("id,text\na1,hi\na1,yo\n", None),
    "pool labels not in the config's label set: ['refund']": (
        "id,text,label\na1,hi,billing\na2,yo,refund\n", add("data", 'label_column = "label"')),
    "test labels not in the config's label set: ['refund']": (
        POOL, add("data", 'test = "test.csv"')),
    "not UTF-8": (b"id,text\na1,caf\xe9 au lait\n", None),
    "is a directory": (POOL, lambda s: s.replace('path = "pool.csv"', 'path = "."')),
}


@pytest.mark.parametrize("expected", list(DATA_CASES))
def test_bad_data_is_one_line_and_nothing_is_written(tmp_path, monkeypatch, capsys, expected) -> None:
    pool, edit = DATA_CASES[expected]
    (tmp_path / "test.csv").write_text("text,label\nhello,refund\n")
    config = write_campaign(tmp_path, pool=pool, edit=edit or (lambda s: s))
    code, err = run_sync(monkeypatch, capsys, config)
    assert code == 2 and expected in err, err
    assert not (tmp_path / "state.db").exists()


def test_a_missing_state_folder_is_named(tmp_path, monkeypatch, capsys) -> None:
    config = write_campaign(tmp_path, edit=lambda s: s.replace('path = "state.db"', 'path = "no/such/state.db"'))
    code, err = run_sync(monkeypatch, capsys, config)
    assert code == 2 and "folder" in err and "does not exist" in err


@pytest.mark.parametrize("content, expected", [
    (b"this is not a database, just text" * 100, "not a labelloop state file"),
    (None, "not a labelloop state file"),  # an SQLite file of something else
])
def test_a_state_file_that_is_not_ours_is_left_alone(tmp_path, monkeypatch, capsys, content, expected) -> None:
    import sqlite3

    state = tmp_path / "state.db"
    if content is None:
        with sqlite3.connect(state) as conn:
            conn.execute("CREATE TABLE invoices (id INTEGER)")
    else:
        state.write_bytes(content)
    before = state.read_bytes()
    code, err = run_sync(monkeypatch, capsys, write_campaign(tmp_path))
    assert code == 2 and expected in err
    assert state.read_bytes() == before


def test_a_missing_encoder_directory_is_named(tmp_path, monkeypatch, capsys) -> None:
    config = write_campaign(tmp_path, edit=lambda s: s + '[model]\nencoder = "no-such-model"\n')
    code, err = run_sync(monkeypatch, capsys, config)
    assert code == 2 and "no-such-model" in err
    assert not (tmp_path / "state.db").exists()


def test_without_an_api_key_it_says_which_variable(tmp_path, monkeypatch, capsys) -> None:
    config = write_campaign(tmp_path, edit=lambda s: s + f'[model]\ncache_dir = "{tmp_path / "cache"}"\n')
    code, err = run_sync(monkeypatch, capsys, config, key=None)
    assert code == 2 and "LABEL_STUDIO_API_KEY" in err
    assert not (tmp_path / "state.db").exists()
    assert not (tmp_path / "cache").exists()  # refused before any embedding work


def test_init_writes_an_example_that_validates(tmp_path, monkeypatch) -> None:
    from typer.testing import CliRunner

    from labelloop.cli import app

    path = tmp_path / "labelloop.toml"
    result = CliRunner().invoke(app, ["init", str(path), "--labels", "a,b,c", "--project", "tickets"])
    assert result.exit_code == 0, result.output
    config = load_config(path)
    assert config.labels == ["a", "b", "c"] and config.labelstudio.project == "tickets"
    assert config.state.path == tmp_path / "labelloop.db"  # relative to the file, not the working directory
    before = path.read_bytes()
    again = CliRunner().invoke(app, ["init", str(path)])
    assert isinstance(again.exception, LabelloopError) and "exists; pass --force" in str(again.exception)
    assert path.read_bytes() == before  # never overwrites without --force


@pytest.mark.parametrize("multi", [False, True])
def test_init_writes_guidance_that_matches_single_or_multi_label(tmp_path, multi) -> None:
    from typer.testing import CliRunner

    from labelloop.cli import app
    from labelloop.multilabel import MULTILABEL_STRATEGIES
    from labelloop.strategies import STRATEGIES

    path = tmp_path / "labelloop.toml"
    args = ["init", str(path), "--labels", "a,b", "--project", "p", *(["--multi-label"] if multi else [])]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    guide = (tmp_path / "guidelines.md").read_text()
    toml = path.read_text()
    strategy_line = next(line for line in toml.splitlines() if line.startswith("strategy = "))
    listed = [s.strip() for s in strategy_line.split("#", 1)[1].split(",")]
    suspects_line = next(line for line in toml.splitlines() if line.startswith("suspects_share"))
    if multi:  # every label that applies; only the strategies it accepts; suspects named as unused
        assert "Tick every label that applies" in guide and "one** label" not in guide
        assert set(listed) <= set(MULTILABEL_STRATEGIES) and "margin-kmeans" in listed
        assert "not used" in suspects_line
    else:
        assert "Pick the **one** label" in guide and "Tick every" not in guide
        assert listed == list(STRATEGIES)
        assert "not used" not in suspects_line
    assert load_config(path).multi_label is multi
    for strategy in listed:  # every strategy the comment offers is one the config accepts
        path.write_text(toml.replace(strategy_line, f'strategy = "{strategy}"'))
        assert load_config(path).loop.strategy == strategy
