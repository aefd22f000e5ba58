"""One safe step of a long-running campaign against Label Studio, for cron or a systemd timer.

Each :func:`sync` (1) checks the project is still the campaign's and refuses a mass deletion,
(2) pulls new and changed labels, (3) updates the guidelines, settles second opinions and sends
ties back for one more, (4) retrains when enough labels are new and sends suspected label errors
back, (5) tops the annotators' queue up to ``queue_target`` (never past it), (6) gives tasks still
waiting the new model's predictions, and (7) writes the run to the ledger, then exits.

It is safe to kill at any instant. Selections are written as *pending* before anything is
sent; the next run pushes pending selections again (Label Studio is checked by our id, so
nothing is duplicated) and adopts tasks it finds in the project but not in the ledger, so
store and Label Studio converge. A lock file keeps a second sync from running at the same time.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .campaign import Campaign, load_campaign, register
from .config import Config
from .errors import LabelloopError
from .guidelines import read_guidelines
from .labelstudio import Connector, ProjectInfo
from .store import Store, StoreError
from .sync_steps import CampaignGuardError, Hook, SyncReport, SyncStep

__all__ = ["sync", "SyncReport", "SyncStep", "SyncBusy", "CampaignGuardError", "sync_lock", "EXIT_BUSY"]

EXIT_BUSY = 4


class SyncBusy(LabelloopError):
    """Another sync holds the lock: not an error of this run, just nothing to do."""

    exit_code = EXIT_BUSY


@contextmanager
def sync_lock(state_path: Path) -> Iterator[None]:
    """An exclusive lock on STATE.lock (portable; the OS releases it when the process dies, however it dies)."""
    from filelock import FileLock, Timeout

    lock_path = state_path.with_name(state_path.name + ".lock")
    lock = FileLock(lock_path, timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise SyncBusy(
            f"another labelloop sync is running (lock {lock_path} is held); this run did nothing"
        ) from None
    except OSError as exc:
        raise StoreError(f"cannot create the lock file {lock_path}: {exc.strerror}") from None
    try:
        yield
    finally:
        lock.release()


# -- one sync ---------------------------------------------------------------------------------------


def sync(
    config: Config,
    *,
    campaign: Campaign | None = None,
    connector: Connector | None = None,
    progress: bool = False,
    hook: Hook | None = None,
) -> SyncReport:
    """Run one sync step (see the module docstring). ``hook(step)`` is called between steps (tests kill there)."""
    state = config.state.path
    if not state.parent.is_dir():
        raise StoreError(f"state.path {state}: folder {state.parent} does not exist")
    with sync_lock(state):
        stored_project = Store.check(state)
        ls = connector or Connector(config.labelstudio.url)  # a missing key fails before minutes of embedding
        ls.label_delimiter = config.label_delimiter  # how a multi-label answer becomes one stored label
        guidelines = read_guidelines(config.guidelines.path) if config.guidelines.path else None
        campaign = campaign or load_campaign(config, progress=progress)
        if stored_project is not None:  # never create a project for a campaign that has one
            found = ls.find_project(config.labelstudio.project)
            ours = (
                found
                if found is not None and found.id == int(stored_project)
                else ls.find_project(int(stored_project))
            )
            _check_same_project(found, ours, int(stored_project), state, config, ls.display_url)
        info = ls.ensure_project(
            config.labelstudio.project,
            config.labels,
            instructions=guidelines.html if guidelines else None,
            multiple=config.multi_label,
        )
        with Store.open(state) as store:
            _check_identity(store, info, state)
            with store.tx():
                register(store, campaign, info.id)
                if store.get("project_created_at") is None and info.created_at:
                    store.set("project_created_at", info.created_at)
            step = SyncStep(store, ls, info.id, campaign, hook or (lambda s: None))
            return step.run(info, guidelines)


def _check_same_project(
    found: ProjectInfo | None, ours: ProjectInfo | None, stored: int, state: Path, config: Config, url: str
) -> None:
    """The config's project must be the campaign's; if the campaign's project is gone, say so."""
    if ours is None:
        raise CampaignGuardError(
            f"{state} is the campaign of Label Studio project {stored} ({config.labelstudio.project!r}), which "
            f"{url} no longer has: was the server restarted with a new data directory? Restore its data; "
            f"nothing was written"
        )
    if found is None or found.id != stored:
        raise StoreError(
            f"{state} belongs to Label Studio project {stored}, not {config.labelstudio.project!r}; "
            f"use another state.path for another project"
        )


def _check_identity(store: Store, info: ProjectInfo, state: Path) -> None:
    """A project recreated under the same title (and maybe the same id) is not the campaign's project."""
    known = store.get("project_created_at")
    if known is not None and info.created_at is not None and known != info.created_at:
        raise CampaignGuardError(
            f"project {info.id} {info.title!r} was created at {info.created_at}, but this campaign's project was "
            f"created at {known}: it was replaced (a restarted server with a new data directory?). Its tasks "
            f"would all count as deleted, so nothing was written; restore the server's data, or start a new "
            f"campaign with another state.path"
        )
