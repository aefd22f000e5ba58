"""``labelloop serve | connect | disconnect``: the campaign live with Label Studio (webhooks, ML backend).

``serve`` needs the ``serve`` extra; all three need ``LABELLOOP_SERVE_SECRET`` (the shared secret) and
``connect`` / ``disconnect`` the Label Studio key, like ``sync``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from ..config import load_config
from ..errors import LabelloopError
from . import app

if TYPE_CHECKING:
    from ..labelstudio import Connector

ConfigOpt = Annotated[Path, typer.Option("--config", "-c", help="The campaign's labelloop.toml.")]
DEFAULT_PORT = 9090
UrlOpt = Annotated[
    str,
    typer.Option(
        "--url-for-label-studio",
        help="Where Label Studio reaches `labelloop serve` (as seen from its server).",
    ),
]


@app.command()
def serve(
    config: ConfigOpt = Path("labelloop.toml"),
    host: Annotated[
        str, typer.Option(help="Address to listen on; 0.0.0.0 exposes it beyond this machine.")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=1, max=65535)] = DEFAULT_PORT,
    json_logs: Annotated[
        bool, typer.Option("--json-logs", help="Log JSON lines (for journald, Loki, …).", metavar="")
    ] = False,
    debounce: Annotated[
        float, typer.Option(help="Seconds without a new annotation before a sync step runs.", min=0.0)
    ] = 2.0,
    max_wait: Annotated[
        float,
        typer.Option(help="Longest a stream of annotations may postpone the step, in seconds.", min=0.0),
    ] = 10.0,
) -> None:
    """Run the campaign live: sync steps on Label Studio's webhooks, and predictions as its ML backend.

    Webhooks are answered at once and coalesced into sync steps (the same step as `labelloop sync`,
    under the same lock, so cron can stay as a safety net). Every endpoint but /health requires
    LABELLOOP_SERVE_SECRET. Stop it with Ctrl-C or SIGTERM; killed any other way it loses nothing.
    """
    from ..serve import run_server

    cfg = load_config(config)
    run_server(cfg, host=host, port=port, json_logs=json_logs, debounce=debounce, max_wait=max_wait)


def _registration(config: Path) -> tuple[Connector, int, str]:
    from ..labelstudio import Connector
    from ..serve import read_secret
    from ..store import Store

    cfg = load_config(config)
    secret = read_secret()
    ls = Connector(cfg.labelstudio.url)
    stored = Store.check(cfg.state.path)
    if stored is not None:
        project_id = int(stored)
    else:
        found = ls.find_project(cfg.labelstudio.project)
        if found is None:
            raise LabelloopError(
                f"no Label Studio project {cfg.labelstudio.project!r} yet: start `labelloop "
                f"serve` (or run `labelloop sync`) once, then connect"
            )
        project_id = found.id
    return ls, project_id, secret


@app.command()
def connect(
    config: ConfigOpt = Path("labelloop.toml"),
    url_for_label_studio: UrlOpt = f"http://127.0.0.1:{DEFAULT_PORT}",
    webhook: Annotated[
        bool, typer.Option("--webhook/--no-webhook", help="Sync when annotations change.")
    ] = True,
    ml_backend: Annotated[
        bool,
        typer.Option(
            "--ml-backend/--no-ml-backend", help="Predictions for any task opened, and Start Training."
        ),
    ] = True,
) -> None:
    """Register `labelloop serve` on the campaign's project: its webhook and ML backend (idempotent).

    `serve` must be running (Label Studio checks an ML backend when it is added). A Label Studio on
    the same host must allow loopback URLs: SSRF_PROTECTION_ENABLED=false and ML_BLOCK_LOCAL_IP=false.
    """
    from ..labelstudio.hooks import connect as do_connect

    ls, project_id, secret = _registration(config)
    done = do_connect(
        ls,
        project_id,
        url_for_label_studio,
        secret,
        webhook=webhook,  # type: ignore[arg-type]
        ml_backend=ml_backend,
    )
    parts = [
        f"created {', '.join(done.created)}" if done.created else "",
        f"updated {', '.join(done.updated)}" if done.updated else "",
        f"removed {', '.join(done.removed)}" if done.removed else "",
    ]
    said = "; ".join(p for p in parts if p) or "nothing to do"
    Console(stderr=True, soft_wrap=True).print(
        f"project {project_id} → {url_for_label_studio}: {said}", highlight=False
    )


@app.command()
def disconnect(
    config: ConfigOpt = Path("labelloop.toml"),
    url_for_label_studio: UrlOpt = f"http://127.0.0.1:{DEFAULT_PORT}",
    webhook: Annotated[bool, typer.Option("--webhook/--no-webhook", help="Remove the webhook.")] = True,
    ml_backend: Annotated[
        bool, typer.Option("--ml-backend/--no-ml-backend", help="Remove the ML backend.")
    ] = True,
) -> None:
    """Remove what `labelloop connect` registered for this URL (cron's `labelloop sync` goes on working)."""
    from ..labelstudio.hooks import disconnect as do_disconnect

    ls, project_id, _ = _registration(config)
    done = do_disconnect(
        ls,
        project_id,
        url_for_label_studio,
        webhook=webhook,  # type: ignore[arg-type]
        ml_backend=ml_backend,
    )
    said = ", ".join(done.removed) if done.removed else "nothing"
    Console(stderr=True, soft_wrap=True).print(f"project {project_id}: removed {said}", highlight=False)
