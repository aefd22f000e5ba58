"""Errors a user can act on.

Every failure that comes from the user's input, files or server is raised as a
:class:`LabelloopError` whose message is one line saying what is wrong and what to
do; the CLI prints it and exits with :attr:`LabelloopError.exit_code`.
"""

from __future__ import annotations


class LabelloopError(Exception):
    """A problem with input, configuration or an external service (not a bug)."""

    exit_code: int = 2


class LabelloopWarning(UserWarning):
    """Something the user should know that does not stop the run (the CLI prints it as one line)."""


class DataError(LabelloopError):
    """The pool or test file cannot be used as given."""


class ModelError(LabelloopError):
    """The encoder directory is missing or not a usable transformer model."""
