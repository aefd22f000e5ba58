"""Fixtures of the fault suite: a small tmpfs (faulthelpers.py); the real Label Studio comes from
tests/conftest.py, shared with the integration suite (one server per session)."""

from __future__ import annotations

import sys
from pathlib import Path

from faulthelpers import tmpfs  # noqa: F401  (a fixture)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))  # lshelpers
