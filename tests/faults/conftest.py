"""Fixtures of the fault suite (helpers live in faulthelpers.py)."""

from faulthelpers import tmpfs  # noqa: F401  (a fixture)
