"""How a failed request becomes one line that names the real cause.

SDK and network errors become :class:`LabelStudioError` (the server: exit 3) or
:class:`LabelStudioInputError` (what we asked: exit 2). A wrong ``LABEL_STUDIO_URL`` gets its own
message (a redirect, another kind of server, a path): :func:`diagnose` is asked only after a request
failed in a way a wrong ``LABEL_STUDIO_URL`` could explain (a 404 or 401,
an answer without a project), so a bad URL is not reported as a missing project or a bad key. It
sends no API key: ``/api/version`` is public on Label Studio.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from ..errors import LabelloopError
from .errors import LabelStudioError, LabelStudioInputError

__all__ = ["diagnose", "not_the_api", "redirected", "translate"]


def translate(
    exc: Exception, what: str, url: str, display_url: str, timeout: float, *, probe: bool = True
) -> LabelloopError:
    """The one-line error for ``exc`` (raised while doing ``what``); re-raises what is not SDK or network."""
    from label_studio_sdk.core.api_error import ApiError

    where = f"Label Studio at {display_url or 'the given client'}"
    if isinstance(exc, ApiError):
        return _status(exc.status_code, exc.body, exc.headers or {}, what, url, display_url, timeout, probe)
    if isinstance(exc, httpx.TimeoutException):
        return LabelStudioError(
            f"{where} timed out while {what}",
            transient=True,
            uncertain=not isinstance(exc, httpx.ConnectTimeout),
        )
    if isinstance(exc, httpx.TransportError):
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return LabelStudioError(
            f"cannot reach {where} while {what} ({reason}); is it running? check LABEL_STUDIO_URL",
            transient=True,
            uncertain=not isinstance(exc, httpx.ConnectError),
        )
    raise exc


def _status(
    status: int | None,
    body: Any,
    headers: dict[str, str],
    what: str,
    url: str,
    display_url: str,
    timeout: float,
    probe: bool,
) -> LabelloopError:
    where = f"Label Studio at {display_url or 'the given client'}"
    detail = _detail(body)
    if status is not None and 300 <= status < 400:
        location = {k.lower(): v for k, v in headers.items()}.get("location")
        return LabelStudioInputError(redirected(display_url, status, location))
    if status in (401, 404) and probe:
        problem = diagnose(url, display_url, timeout)
        if problem is None and not isinstance(body, dict):
            problem = not_the_api(display_url, what, status)
        if problem:
            return LabelStudioInputError(problem)
    if status == 401:
        return LabelStudioError(
            f"{where} refused the API key while {what} (401: {detail}); check LABEL_STUDIO_API_KEY",
            status=status,
        )
    if status == 403:
        return LabelStudioError(
            f"{where} refused the request while {what} (403: {detail}); the key's user lacks the permission",
            status=status,
        )
    if status == 404:
        return LabelStudioInputError(f"{where}: not found while {what} (404: {detail})")
    if status == 400:
        return LabelStudioInputError(f"{where} rejected the request while {what} (400: {detail})")
    if status is not None and 200 <= status < 300:  # "success" that is not the API's JSON: another server
        problem = diagnose(url, display_url, timeout) if probe else None
        return LabelStudioInputError(
            problem
            or f"{where} answered {status} without the API's JSON while {what}; check LABEL_STUDIO_URL"
        )
    transient = status is None or status >= 500 or status in (408, 409, 429)
    return LabelStudioError(
        f"{where} failed while {what} ({status}: {detail})",
        transient=transient,
        status=status,
        uncertain=transient,
    )


def _detail(body: Any) -> str:
    """The useful part of an error body, on one line."""
    if isinstance(body, dict):
        parts = [str(body.get("detail") or "")]
        if body.get("validation_errors"):
            parts.append(json.dumps(body["validation_errors"], ensure_ascii=False))
        text = " ".join(p for p in parts if p) or json.dumps(body, ensure_ascii=False)
    else:
        text = str(body or "no details")
    text = " ".join(text.split())
    return text[:300] + ("…" if len(text) > 300 else "")


def diagnose(url: str, display_url: str, timeout: float = 10.0) -> str | None:
    """A one-line reason why ``url`` is not a usable Label Studio API, or None if it looks like one."""
    try:
        resp = httpx.get(f"{url.rstrip('/')}/api/version", timeout=timeout, follow_redirects=False)
    except httpx.HTTPError:
        return None  # unreachable now: the original error says so better
    if resp.is_redirect:
        return redirected(display_url, resp.status_code, resp.headers.get("location"))
    try:
        body: Any = resp.json()
    except ValueError:
        body = None
    if resp.status_code == 200 and isinstance(body, dict) and "release" in body:
        return None
    shape = (
        "JSON without a Label Studio version"
        if isinstance(body, (dict, list))
        else (resp.headers.get("content-type", "no content type").split(";")[0])
    )
    return (
        f"{display_url} does not answer like a Label Studio server (GET /api/version: {resp.status_code}, "
        f"{shape}); check LABEL_STUDIO_URL (scheme, host, port)"
    )


def redirected(display_url: str, status: int, location: str | None) -> str:
    return (
        f"{display_url} redirects ({status}) to {location or 'another address'}; set LABEL_STUDIO_URL to "
        f"the address it redirects to (labelloop does not follow redirects: they can drop the API key)"
    )


def not_the_api(display_url: str, what: str, status: int) -> str:
    """A 404/401 answered with a web page instead of the API's JSON: the URL has a wrong path or port."""
    return (
        f"{display_url} answered {status} with a web page, not the Label Studio API, while {what}; "
        f"set LABEL_STUDIO_URL to the server's base address (scheme://host:port, no path)"
    )
