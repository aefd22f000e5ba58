"""The fault suite shares the integration suite's real Label Studio fixtures (one server per session).

Loaded from tests/integration/conftest.py rather than copied, so both suites start the server the
same way. Run both directories in one session and each gets its own server in turn (same port).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))  # lshelpers
_path = Path(__file__).resolve().parents[1] / "integration" / "conftest.py"
_spec = importlib.util.spec_from_file_location("labelloop_integration_conftest", _path)
assert _spec is not None and _spec.loader is not None
_shared = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _shared
_spec.loader.exec_module(_shared)

LS_VENV = _shared.LS_VENV
Server = _shared.Server
pytest_collection_modifyitems = _shared.pytest_collection_modifyitems
ls_server = _shared.ls_server
sdk = _shared.sdk
connector = _shared.connector
title = _shared.title
