"""One real Label Studio for the whole test session, started by scripts/labelstudio.py and always stopped.

Shared by the integration and fault suites through tests/conftest.py, so one session starts one server.

The first run installs Label Studio into .venv-ls (≈ 2–3 min); start-up then takes ≈ 40–110 s
cold (migrations), ≈ 10 s warm. A failed install or start fails the tests loudly; set
``LABELLOOP_SKIP_LABELSTUDIO=1`` to skip them on purpose. The port is 18090 (not the
script's default 18080, which a developer's own server may hold); override with
``LABELLOOP_TEST_LS_PORT``.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "labelstudio.py"
LS_VENV = Path(os.environ.get("LABELLOOP_LS_VENV", ROOT / ".venv-ls"))  # where the script keeps its state
SKIP = os.environ.get("LABELLOOP_SKIP_LABELSTUDIO") == "1"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if SKIP:
        mark = pytest.mark.skip(reason="LABELLOOP_SKIP_LABELSTUDIO=1")
        for item in items:
            if "labelstudio" in item.keywords:
                item.add_marker(mark)


class Server:
    """A Label Studio started by the project's script, with a known token, that tests may stop and restart."""

    def __init__(self, port: int, data_dir: Path) -> None:
        self.port = port
        self.data_dir = data_dir
        self.url = f"http://127.0.0.1:{port}"
        self.api_key = secrets.token_hex(20)
        self.password = secrets.token_urlsafe(12)
        self.start_seconds: list[float] = []

    def _script(self, command: str, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
        env = {**os.environ, "LABEL_STUDIO_API_KEY": self.api_key, "LABEL_STUDIO_PASSWORD": self.password}
        return subprocess.run([sys.executable, str(SCRIPT), command, "--port", str(self.port), *args],
                              capture_output=True, text=True, env=env, timeout=timeout, check=False)

    def start(self) -> None:
        done = self._script("start", "--data-dir", str(self.data_dir))
        if done.returncode != 0:  # stderr never holds the token (only stdout's export line does)
            pytest.fail(f"could not start Label Studio with {SCRIPT.name}:\n{done.stderr[-4000:]}",
                        pytrace=False)
        state = json.loads((LS_VENV / "run" / f"{self.port}.json").read_text())
        self.start_seconds.append(state["start_seconds"])

    def stop(self) -> None:
        done = self._script("stop", timeout=120)
        if done.returncode != 0:
            pytest.fail(f"could not stop Label Studio:\n{done.stderr[-2000:]}", pytrace=False)

    def running(self) -> bool:
        return self._script("status", timeout=60).returncode == 0


@pytest.fixture(scope="session")
def ls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    if SKIP:
        pytest.skip("LABELLOOP_SKIP_LABELSTUDIO=1")
    port = int(os.environ.get("LABELLOOP_TEST_LS_PORT", "18090"))
    server = Server(port, tmp_path_factory.mktemp("ls-data"))
    server.stop()  # a server left behind by a killed earlier session
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def sdk(ls_server: Server):
    """The raw SDK client, to act in Label Studio as a person would (annotate, skip, delete)."""
    from label_studio_sdk import LabelStudio

    return LabelStudio(base_url=ls_server.url, api_key=ls_server.api_key)


@pytest.fixture
def connector(ls_server: Server):
    from labelloop.labelstudio import Connector

    return Connector(ls_server.url, ls_server.api_key, retries=2, backoff=0.2)


@pytest.fixture
def title(request: pytest.FixtureRequest) -> str:
    """A fresh project title per test: tests share the server, never a project."""
    return f"{request.node.name[:40]}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def make_items() -> Callable[..., list]:
    from labelloop.labelstudio import PushItem

    def make(n: int, prefix: str = "doc", labels: tuple[str, ...] = ("billing", "bug", "other")
             ) -> list[PushItem]:
        return [PushItem(f"{prefix}-{i:04d}", f"Text number {i} about {labels[i % len(labels)]}.",
                         labels[(i * 7) % len(labels)], round(0.34 + (i * 37 % 60) / 100, 4), cluster=i % 5)
                for i in range(n)]
    return make
