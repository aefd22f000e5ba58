"""scripts/labelstudio.py keeps its server log private and its request lines (invite tokens) out of it."""

from __future__ import annotations

import importlib.util
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "labelstudio.py"


@pytest.fixture(scope="module")
def script():
    spec = importlib.util.spec_from_file_location("labelstudio_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # defines only: nothing runs before main()
    return module


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_log_is_readable_by_its_owner_only(script, tmp_path) -> None:
    log = tmp_path / "18096.log"
    os.close(script.open_log(log))
    assert _mode(log) == 0o600


def test_an_older_world_readable_log_is_made_private_and_appended_to(script, tmp_path) -> None:
    log = tmp_path / "18096.log"
    log.write_bytes(b"earlier session\n")
    log.chmod(0o644)
    with os.fdopen(script.open_log(log), "ab") as fh:
        fh.write(b"this session\n")
    assert _mode(log) == 0o600
    assert log.read_bytes() == b"earlier session\nthis session\n"


def test_the_server_starts_with_warning_logs_and_django_request_lines_quiet(script, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(script, "QUIET_DIR", tmp_path / "quiet")
    script.write_quiet()
    env = script.clean_env(tmp_path, "a@x.test", "pw", "tok")
    assert env["LOG_LEVEL"] == "WARNING" and env["PYTHONPATH"] == str(tmp_path / "quiet")
    # A stand-in Django whose default keeps the "django" logger at INFO, as Django's does: LOG_LEVEL never
    # reaches it, so the sitecustomize on the server's PYTHONPATH must lower it when Python starts.
    fake = tmp_path / "fake" / "django" / "utils"
    fake.mkdir(parents=True)
    (fake.parent / "__init__.py").write_text("")
    (fake / "__init__.py").write_text("")
    (fake / "log.py").write_text('DEFAULT_LOGGING = {"loggers": {"django": {"level": "INFO"}}}\n')
    show = "import django.utils.log as l; print(l.DEFAULT_LOGGING['loggers']['django']['level'])"
    path = os.pathsep.join([env["PYTHONPATH"], str(tmp_path / "fake")])
    done = subprocess.run([sys.executable, "-c", show], env={**os.environ, "PYTHONPATH": path},
                          capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "WARNING"
