"""Label Studio: push the model's picks as tasks, pull people's labels back.

    ls = Connector()                                   # LABEL_STUDIO_URL, LABEL_STUDIO_API_KEY
    project = ls.ensure_project("tickets", ["billing", "bug", "other"])
    ls.push(project.id, [PushItem("t1", "I was charged twice", "billing", 0.41, cluster=3)], "m-1")
    result = ls.pull(project.id, cursor=None)          # records + a cursor for the next pull
    labels = resolve(result.records)                   # majority label per id, disagreement flagged

Layout: :mod:`.errors`, :mod:`.annotations` (domain types, no I/O), :mod:`.labelconfig`,
:mod:`.payloads` (pure mapping) and :mod:`.client` (the only network code). Importing this
package imports neither httpx nor label-studio-sdk: the client names load on first use, so the
core of labelloop installs and runs without the ``labelstudio`` extra.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .annotations import (
    ID_FIELD,
    META_KEY,
    AnnotationRecord,
    PullCursor,
    PullResult,
    Resolution,
    live_annotations,
    model_version_for,
    resolve,
)
from .errors import (
    LabelSetMismatchError,
    LabelStudioError,
    LabelStudioInputError,
    ProjectNotFoundError,
    UnknownChoiceError,
)
from .labelconfig import ChoicesConfig, check_label_set, labeling_config, parse_config
from .payloads import (
    ExistingTask,
    ProjectInfo,
    PushItem,
    PushReport,
    diff_task,
    existing_from_tasks,
    task_payload,
    tasks_to_fetch,
)

if TYPE_CHECKING:
    from .client import Connector, project_lock

__all__ = [
    "ID_FIELD",
    "META_KEY",
    "AnnotationRecord",
    "ChoicesConfig",
    "Connector",
    "ExistingTask",
    "LabelSetMismatchError",
    "LabelStudioError",
    "LabelStudioInputError",
    "ProjectInfo",
    "ProjectNotFoundError",
    "PullCursor",
    "PullResult",
    "PushItem",
    "PushReport",
    "Resolution",
    "UnknownChoiceError",
    "check_label_set",
    "diff_task",
    "existing_from_tasks",
    "labeling_config",
    "live_annotations",
    "model_version_for",
    "parse_config",
    "project_lock",
    "resolve",
    "task_payload",
    "tasks_to_fetch",
]

_LAZY = {"Connector", "project_lock"}


def __getattr__(name: str) -> Any:
    """The client (httpx, label-studio-sdk) is imported only when first asked for."""
    if name in _LAZY:
        try:
            from . import client
        except ImportError as exc:  # the core install, without the extra
            from ..errors import LabelloopError

            raise LabelloopError(
                f"the Label Studio client needs {exc.name or 'a missing package'}: "
                f"pip install 'labelloop[labelstudio]'"
            ) from None
        return getattr(client, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
