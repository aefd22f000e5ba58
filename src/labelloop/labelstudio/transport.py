"""The request layer under :class:`~.client.Connector`: the SDK client, one retry policy, clean errors.

Reads go through :meth:`Session._call` with retries (tenacity: transient errors only, exponential
backoff); writes call it with ``retry=False`` and the caller decides what is safe to send again.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from ..errors import LabelloopError
from .annotations import SCAN_MARGIN_SECONDS
from .errors import LabelStudioInputError
from .failures import translate
from .payloads import as_dict

__all__ = ["PAGE_SIZE", "Session"]

log = logging.getLogger(__name__)
PAGE_SIZE = 1000


class Session:
    """The connection: SDK client, the one retry policy, one-line token-free errors, task pages.

    ``url`` and ``api_key`` default to ``LABEL_STUDIO_URL`` and ``LABEL_STUDIO_API_KEY``, ``timeout``
    to ``LABELLOOP_LS_TIMEOUT`` (seconds) or 60. Both kinds of key work: legacy tokens and personal
    access tokens. The key is never put in a message, log or file. Reads are retried ``retries``
    times with exponential backoff from ``backoff`` seconds; writes never blindly. After an
    uncertain import, ``push`` waits up to ``settle`` seconds for the batch to show up.
    """

    def __init__(
        self,
        url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float | None = None,
        retries: int = 3,
        backoff: float = 0.5,
        scan_margin: float = SCAN_MARGIN_SECONDS,
        settle: float = 15.0,
        client: Any = None,
    ) -> None:
        self.url = (url or os.environ.get("LABEL_STUDIO_URL") or "").rstrip("/")
        key = api_key if api_key is not None else os.environ.get("LABEL_STUDIO_API_KEY", "")
        if client is None and not self.url:
            raise LabelStudioInputError(
                "no Label Studio URL: set LABEL_STUDIO_URL (e.g. http://127.0.0.1:18080)"
            )
        if client is None and not key:
            raise LabelStudioInputError("no API key: set LABEL_STUDIO_API_KEY (from Account & Settings)")
        parts = urlsplit(self.url)
        # What messages show: the URL without any user:password@ part.
        self.display_url = (
            urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2])) if self.url else ""
        )
        self._secrets = [s for s in (key, parts.password) if s]
        self.timeout = timeout if timeout is not None else _env_timeout()
        self.retries = retries
        self.backoff = backoff
        self.scan_margin = scan_margin
        self.settle = settle
        self._probe = client is None  # a fake client has no server to probe
        if client is None:
            from label_studio_sdk import LabelStudio

            # max_retries=0: the SDK would also retry imports, which duplicates tasks. No redirects:
            # a redirect is a wrong URL to report, and following one may drop the key or change scheme.
            client = self._call(
                "connecting",
                lambda: LabelStudio(
                    base_url=self.url,
                    api_key=key,
                    timeout=self.timeout,
                    max_retries=0,
                    follow_redirects=False,
                ),
                retry=False,
            )
        self._ls = client

    # -- error handling -------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        tokens = list(self._secrets)
        try:  # a JWT key's current access token, if the SDK fetched one
            access = self._ls._client_wrapper._tokens_client._access_token
            if access:
                tokens.append(access)
        except AttributeError:
            pass
        for secret in tokens:
            text = text.replace(secret, "***")
        return text

    def _translate(self, exc: Exception, what: str) -> LabelloopError:
        return translate(exc, what, self.url, self.display_url, min(self.timeout, 10.0), probe=self._probe)

    def _once(self, what: str, fn: Callable[[], Any]) -> Any:
        try:
            return fn()
        except LabelloopError:
            raise
        except Exception as exc:
            err = self._translate(exc, what)
        err.args = (self._redact(str(err)),)
        raise err from None

    def _retrying(self, attempts: int | None = None) -> Retrying:
        """The one retry policy: transient Label Studio errors, exponential backoff capped at 8 s."""

        def note(state: Any) -> None:
            log.info("retrying in %.1f s: %s", state.next_action.sleep, state.outcome.exception())

        return Retrying(
            stop=stop_after_attempt(attempts or self.retries + 1),
            reraise=True,
            wait=wait_exponential(multiplier=self.backoff, max=8.0),
            retry=retry_if_exception(lambda e: getattr(e, "transient", False)),
            before_sleep=note,
        )

    def _call(self, what: str, fn: Callable[[], Any], *, retry: bool = True) -> Any:
        """Run one SDK call; retry transient failures if ``retry`` (reads); one-line, token-free errors."""
        return self._retrying(None if retry else 1)(self._once, what, fn)

    # -- task listing ---------------------------------------------------------------------------

    def pages(
        self, what: str, fetch: Callable[[int], Any], *, page_size: int, max_rows: int | None = None
    ) -> list[Any]:
        """Every item of a paged listing, never asking for a page past the end.

        The SDK's pager asks for one more page after the last (the server answers 404 and logs an
        ERROR traceback for it), so pages are walked here, up to the ``total`` / ``count`` the
        server reports, a short page, or ``max_rows``.
        """
        out: list[Any] = []
        page = 1
        while True:
            got = self._call(f"{what} (page {page})", lambda n=page: fetch(n))
            items = list(got.items or [])
            out += items
            total = getattr(got.response, "total", None)
            total = getattr(got.response, "count", None) if total is None else total
            if (
                not items
                or len(items) < page_size
                or (total is not None and len(out) >= total)
                or (max_rows is not None and len(out) >= max_rows)
            ):
                return out
            page += 1

    def list_tasks(
        self,
        project_id: int,
        what: str,
        *,
        page_size: int = PAGE_SIZE,
        max_rows: int | None = None,
        **params: Any,
    ) -> list[dict[str, Any]]:
        """Every task row of the project (or of ``query``), as dicts."""

        def fetch(n: int) -> Any:
            return self._ls.tasks.list(
                project=project_id, fields="all", page=n, page_size=page_size, **params
            )

        return [as_dict(t) for t in self.pages(what, fetch, page_size=page_size, max_rows=max_rows)]

    def list_projects(self, page_size: int = 100) -> list[Any]:
        """Every project the key can see."""
        return self.pages(
            "listing projects",
            lambda n: self._ls.projects.list(page=n, page_size=page_size),
            page_size=page_size,
        )


def _env_timeout() -> float:
    raw = os.environ.get("LABELLOOP_LS_TIMEOUT", "").strip()
    if not raw:
        return 60.0
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise LabelStudioInputError(f"LABELLOOP_LS_TIMEOUT={raw!r} is not a positive number of seconds")
    return value
