"""Registering ``labelloop serve`` on a project: its webhook and its ML backend, idempotently.

Facts (Label Studio 1.23.2) this is shaped by:

* Creating an ML backend makes Label Studio add a webhook of its own to ``URL/webhook``, for all
  actions and without headers. ``serve`` takes webhooks at that same address, so that webhook is
  made ours (the secret header, only the actions a sync step needs) or, without ``--webhook``,
  removed: a webhook without the secret would only collect 401s.
* Label Studio authenticates to an ML backend with HTTP basic auth only; the secret is its password.
  It calls ``/health`` and ``/setup`` when the backend is added, so ``serve`` must be running then.
* By default Label Studio refuses loopback and private addresses for both (SSRF protection); an admin
  running ``serve`` beside it sets ``SSRF_PROTECTION_ENABLED=false`` and ``ML_BLOCK_LOCAL_IP=false``.

A webhook or backend is recognised as ours by its URL, so running ``connect`` twice leaves one of each.
The secret travels to Label Studio only inside these requests; it is never returned in a message.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .client import Connector

__all__ = ["WEBHOOK_ACTIONS", "BACKEND_TITLE", "Registration", "connect", "disconnect"]

WEBHOOK_ACTIONS = (
    "ANNOTATION_CREATED",
    "ANNOTATIONS_CREATED",
    "ANNOTATION_UPDATED",
    "ANNOTATIONS_DELETED",
    "TASKS_DELETED",
)
BACKEND_TITLE = "labelloop"


@dataclass
class Registration:
    """What ``connect`` / ``disconnect`` found and did (ids only: never the secret)."""

    webhook: int | None = None
    ml_backend: int | None = None
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)


def _base(url: str) -> str:
    return url.rstrip("/")


def _webhooks(ls: Connector, project_id: int, base: str) -> list[Any]:
    hooks = ls._call(
        f"listing webhooks of project {project_id}",
        lambda: list(ls._ls.webhooks.list(project=str(project_id))),
    )
    return sorted(
        (h for h in hooks if h.project == project_id and _base(h.url) == base + "/webhook"),
        key=lambda h: h.id,
    )


def _backends(ls: Connector, project_id: int, base: str) -> list[Any]:
    found = ls._call(
        f"listing ML backends of project {project_id}", lambda: list(ls._ls.ml.list(project=project_id))
    )
    return sorted((b for b in found if b.project == project_id and _base(b.url) == base), key=lambda b: b.id)


def _delete(ls: Connector, kind: str, item_id: int, out: Registration) -> None:
    api = ls._ls.ml if kind == "ML backend" else ls._ls.webhooks
    ls._call(f"removing {kind} {item_id}", lambda: api.delete(item_id))
    out.removed.append(f"{kind} {item_id}")


def connect(
    ls: Connector,
    project_id: int,
    url: str,
    secret: str,
    *,
    webhook: bool = True,
    ml_backend: bool = True,
    header: str = "X-Labelloop-Secret",
) -> Registration:
    """Make ``url`` (where Label Studio reaches ``serve``) the project's webhook and/or ML backend, once."""
    base, out = _base(url), Registration()
    ls._secrets.append(secret)  # redacted from any error message, like the API key
    if ml_backend:
        _connect_backend(ls, project_id, base, secret, out)
    hooks = _webhooks(ls, project_id, base)  # after the backend: its own webhook is there now
    if webhook:
        hooks = _connect_webhook(ls, project_id, base, {header: secret}, hooks, out)
    for extra in hooks:
        _delete(ls, "webhook", int(extra.id), out)
    return out


def _connect_backend(ls: Connector, project_id: int, base: str, secret: str, out: Registration) -> None:
    """The project's one ML backend at ``base``: the first one there updated (others removed), or a new one."""
    backends = _backends(ls, project_id, base)
    fields = {
        "title": BACKEND_TITLE,
        "auth_method": "BASIC_AUTH",
        "basic_auth_user": "labelloop",
        "basic_auth_pass": secret,
        "is_interactive": False,
        "auto_update": True,
        "description": "labelloop serve: the campaign's current model",
    }
    if backends:
        keep = backends[0]
        # The URL goes along: Label Studio 1.23.2 answers 500 to a PATCH without it (its health check).
        ls._call(
            f"updating ML backend {keep.id}",
            lambda: ls._ls.ml.update(keep.id, url=base, project=project_id, **fields),
            retry=False,
        )
        out.ml_backend = keep.id
        out.updated.append(f"ML backend {keep.id}")
        for extra in backends[1:]:
            _delete(ls, "ML backend", int(extra.id), out)
    else:
        made = ls._call(
            f"adding an ML backend to project {project_id}",
            lambda: ls._ls.ml.create(project=project_id, url=base, **fields),
            retry=False,
        )
        out.ml_backend = int(made.id)
        out.created.append(f"ML backend {made.id}")


def _connect_webhook(
    ls: Connector, project_id: int, base: str, headers: dict[str, str], hooks: list[Any], out: Registration
) -> list[Any]:
    """The project's webhook to ``base``: the first of ``hooks`` updated, or a new one; returns the
    others (to remove)."""
    fields = {
        "url": base + "/webhook",
        "actions": list(WEBHOOK_ACTIONS),
        "headers": headers,
        "send_payload": True,
        "send_for_all_actions": False,
        "is_active": True,
    }
    if hooks:
        keep = hooks[0]
        ls._call(
            f"updating webhook {keep.id}", lambda: ls._ls.webhooks.update(keep.id, **fields), retry=False
        )
        out.webhook = keep.id
        out.updated.append(f"webhook {keep.id}")
        return hooks[1:]
    made = ls._call(
        f"adding a webhook to project {project_id}",
        lambda: ls._ls.webhooks.create(project=project_id, **fields),
        retry=False,
    )
    out.webhook = int(made.id)
    out.created.append(f"webhook {made.id}")
    return hooks


def disconnect(
    ls: Connector, project_id: int, url: str, *, webhook: bool = True, ml_backend: bool = True
) -> Registration:
    """Remove the project's webhooks and/or ML backends that point at ``url`` (none there: nothing done)."""
    base, out = _base(url), Registration()
    if ml_backend:
        for b in _backends(ls, project_id, base):
            _delete(ls, "ML backend", int(b.id), out)
    if webhook:
        for h in _webhooks(ls, project_id, base):
            _delete(ls, "webhook", int(h.id), out)
    return out
