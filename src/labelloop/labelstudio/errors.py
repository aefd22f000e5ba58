"""What can go wrong with Label Studio, as one-line errors the CLI prints (exit 3: the server, exit 2: our input)."""

from __future__ import annotations

from ..errors import LabelloopError

__all__ = [
    "LabelSetMismatchError",
    "LabelStudioError",
    "LabelStudioInputError",
    "ProjectNotFoundError",
    "UnknownChoiceError",
]


class LabelStudioError(LabelloopError):
    """Label Studio is unreachable, refused the API key, or failed (exit 3).

    ``transient`` says whether the same request may succeed later (network, 5xx); ``uncertain``
    whether a write that failed so may still have been committed (timeout, lost response, 5xx),
    as opposed to never sent (connection refused).
    """

    exit_code = 3

    def __init__(
        self, message: str, *, transient: bool = False, status: int | None = None, uncertain: bool = False
    ) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status
        self.uncertain = uncertain


class LabelStudioInputError(LabelloopError):
    """What we asked Label Studio for is wrong: bad config, unknown project, bad label set (exit 2)."""


class ProjectNotFoundError(LabelStudioInputError):
    """No project with that id or title."""


class LabelSetMismatchError(LabelStudioInputError):
    """The project's choices are not our label set (we never relabel a project silently)."""


class UnknownChoiceError(LabelStudioInputError):
    """An annotation holds a choice outside the label set (Label Studio does not validate choices)."""
