"""``labelloop serve``: the campaign live with Label Studio, through its webhooks and as its ML backend.

One process, one campaign. Label Studio's webhooks (sent synchronously, with a ~1 s timeout) are
answered at once; a background :class:`SyncWorker` coalesces them (a quiet spell, or a cap on how
long a storm may postpone the step) and runs exactly :func:`labelloop.sync.sync`, under the same
lock as cron's ``labelloop sync``: cron stays a safety net, webhooks bring speed. An event that
arrives while a step runs makes one more step afterwards; a busy lock or a Label Studio that is down
is retried (with backoff), never dropped. The store is the truth: ``serve`` killed at any moment
catches up with the step it runs at start.

As an ML backend (``/health``, ``/setup``, ``/predict``, ``/webhook``, ``/train``, the protocol of
``label_studio_ml/api.py``) it answers with the campaign's current model: tasks of the pool by our id
or by their text, any other text embedded on demand (through the embedding cache) and smoothed over
the pool's raw vectors, as ``predict`` does.

Every endpoint but ``/health`` wants the shared secret from ``LABELLOOP_SERVE_SECRET``: as the
``X-Labelloop-Secret`` header (webhooks carry it in their headers) or as the password of HTTP basic
auth (how Label Studio authenticates to an ML backend). Neither the secret nor Label Studio's key is
ever logged.

(Over 400 lines formatted: the worker, the predictor and the ASGI routes of one process; the routes are
closures over them, which is why ``create_app`` is long.)
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .campaign import (
    COLD_START_VERSION,
    Campaign,
    check_features,
    latest_head,
    load_campaign,
    prefill_cutoff,
    text_hash,
)
from .config import Config
from .errors import LabelloopError
from .head import Classifier
from .store import Store

__all__ = [
    "SECRET_ENV",
    "SECRET_HEADER",
    "SYNC_ACTIONS",
    "TRAIN_ACTIONS",
    "ServeError",
    "SyncWorker",
    "Predictor",
    "read_secret",
    "create_app",
    "run_server",
    "configure_logging",
]

log = logging.getLogger("labelloop.serve")

SECRET_ENV = "LABELLOOP_SERVE_SECRET"
SECRET_HEADER = "X-Labelloop-Secret"
MIN_SECRET_LENGTH = 16
# Annotation changes a sync step must pull; deleted tasks it must account for.
SYNC_ACTIONS = frozenset(
    {
        "ANNOTATION_CREATED",
        "ANNOTATIONS_CREATED",
        "ANNOTATION_UPDATED",
        "ANNOTATIONS_DELETED",
        "TASKS_DELETED",
    }
)
# "Start training" in Label Studio: a step now, without waiting for the storm to settle.
TRAIN_ACTIONS = frozenset({"START_TRAINING"})

Hook = Callable[[str], None]


class ServeError(LabelloopError):
    """``serve`` cannot start as asked (no secret, a missing extra)."""


def read_secret(env: Mapping[str, str] | None = None) -> str:
    """The shared secret, from the environment only (never a file, never a flag: both end up in logs)."""
    value = (env if env is not None else os.environ).get(SECRET_ENV, "")
    if not value:
        raise ServeError(
            f"set {SECRET_ENV} to a shared secret (e.g. `openssl rand -hex 24`): every endpoint "
            f"but /health requires it, and `labelloop connect` gives it to Label Studio"
        )
    if len(value) < MIN_SECRET_LENGTH or value != value.strip():
        raise ServeError(
            f"{SECRET_ENV} must be at least {MIN_SECRET_LENGTH} characters without surrounding spaces"
        )
    return value


def authorized(headers: Mapping[str, str], secret: str) -> bool:
    """The secret as our header, or as basic auth's password (Label Studio's ML backend auth)."""
    given = headers.get(SECRET_HEADER.lower()) or headers.get(SECRET_HEADER)
    if given is not None:
        return hmac.compare_digest(given.encode(), secret.encode())
    auth = headers.get("authorization") or headers.get("Authorization") or ""
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "basic":
        try:
            _, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(password.encode(), secret.encode())
    if scheme.lower() == "bearer":
        return hmac.compare_digest(value.strip().encode(), secret.encode())
    return False


# -- the campaign, loaded once ------------------------------------------------------------------------


def _signature(config: Config) -> tuple[tuple[str, int, int], ...]:
    """What identifies the data files' content cheaply: path, mtime and size."""
    out = []
    for path in (config.data.path, config.data.test):
        if path is not None:
            try:
                st = Path(path).stat()
                out.append((str(path), st.st_mtime_ns, st.st_size))
            except OSError:
                out.append((str(path), -1, -1))
    return tuple(out)


@dataclass
class Loaded:
    """The campaign with what ``/predict`` needs beside it: the pool's raw vectors and a text lookup."""

    campaign: Campaign
    raw_pool: np.ndarray
    by_hash: dict[str, int]
    signature: tuple[tuple[str, int, int], ...]


class CampaignHolder:
    """Loads the campaign once and again only when the data file changes (a sync step needs the new texts)."""

    def __init__(self, config: Config, *, progress: bool = False) -> None:
        from .campaign import config_encoder
        from .embeddings import EmbeddingCache, default_cache_dir

        self.config = config
        self.encoder = config_encoder(config)  # the campaign's encoder: backend and precision included
        self.cache = EmbeddingCache(config.model.cache_dir or default_cache_dir(), self.encoder.identity)
        self._lock = threading.Lock()
        self.loaded = self._load(progress)

    def _load(self, progress: bool = False) -> Loaded:
        from .embeddings import embed

        signature = _signature(self.config)
        t0 = time.monotonic()
        campaign = load_campaign(self.config, progress=progress)
        raw = embed(campaign.pool.texts, self.encoder, self.cache)  # all cached by now: a read
        by_hash: dict[str, int] = {}
        for row, text in enumerate(campaign.pool.texts):
            by_hash.setdefault(text_hash(text), row)
        log.info("campaign loaded: %d texts in %.1f s", len(campaign.pool.texts), time.monotonic() - t0)
        return Loaded(campaign, raw, by_hash, signature)

    def current(self) -> Loaded:
        """The loaded campaign, reloaded first if the data file changed since."""
        with self._lock:
            if _signature(self.config) != self.loaded.signature:
                log.info("data file changed: reloading the campaign")
                self.loaded = self._load()
            return self.loaded


# -- the sync steps ---------------------------------------------------------------------------------


@dataclass
class WorkerState:
    steps: int = 0  # finished sync steps
    busy: int = 0  # attempts that found cron's sync holding the lock
    failures: int = 0  # consecutive failed attempts (reset by a finished step)
    failed_total: int = 0  # every failed attempt since the server started (an outage leaves a trace)
    events: int = 0  # events received
    last_report: dict[str, Any] | None = None
    last_error: str | None = None  # of the current run of failures (None once a step finished)
    last_failure: str | None = None  # the latest failure ever, with its time: kept after recovery
    model_version: str | None = None


class SyncWorker:
    """Runs sync steps in one background thread, coalescing the events that ask for them.

    After an event, the step waits until ``debounce`` seconds pass without another one, but never
    more than ``max_wait`` seconds after the first: a storm of 100 annotations gives one or two steps.
    ``urgent`` events (Start Training) skip the wait. An event during a step leaves the worker
    pending, so one more step follows. A busy lock is retried after ``busy_retry`` seconds; any other
    failure (Label Studio down, a guard refusing) after an exponential backoff capped at ``max_backoff``.
    """

    def __init__(
        self,
        config: Config,
        holder: CampaignHolder,
        *,
        debounce: float = 2.0,
        max_wait: float = 10.0,
        busy_retry: float = 2.0,
        backoff: float = 1.0,
        max_backoff: float = 60.0,
        hook: Hook | None = None,
        on_step: Callable[[], object] | None = None,
    ) -> None:
        self.config = config
        self.holder = holder
        self.debounce, self.max_wait = debounce, max_wait
        self.busy_retry, self.backoff, self.max_backoff = busy_retry, backoff, max_backoff
        self.hook = hook
        self.on_step = on_step
        self.state = WorkerState()
        self._cond = threading.Condition()
        self._pending = False
        self._urgent = False
        self._first = self._last = 0.0
        self._not_before = 0.0
        self._running = False
        self._stop = False
        self._thread = threading.Thread(target=self._loop, name="labelloop-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop after the running step (steps are kill-safe: a timeout leaves it to the next start)."""
        with self._cond:
            self._stop = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def notify(self, *, urgent: bool = False) -> None:
        """Ask for a step (never lost: a step already running is followed by another)."""
        with self._cond:
            now = time.monotonic()
            self.state.events += 1
            if not self._pending:
                self._pending, self._first = True, now
            self._last = now
            self._urgent = self._urgent or urgent
            self._cond.notify_all()

    def snapshot(self) -> dict[str, Any]:
        with self._cond:
            s = self.state
            return {
                "steps": s.steps,
                "busy": s.busy,
                "failures": s.failures,
                "failed_total": s.failed_total,
                "last_failure": s.last_failure,
                "events": s.events,
                "pending": self._pending,
                "running": self._running,
                "last_error": s.last_error,
                "last_report": s.last_report,
                "model_version": s.model_version,
            }

    def _due(self) -> float:
        due = self._last if self._urgent else min(self._last + self.debounce, self._first + self.max_wait)
        return max(due, self._not_before)

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._stop and not self._pending:
                    self._cond.wait()
                if self._stop:
                    return
                wait = self._due() - time.monotonic()
                if wait > 0:
                    self._cond.wait(wait)
                    continue
                self._pending = self._urgent = False
                self._running = True
            try:
                self._step()
            finally:
                with self._cond:
                    self._running = False
                    self._cond.notify_all()

    def _retry(self, delay: float) -> None:
        with self._cond:
            now = time.monotonic()
            if not self._pending:
                self._pending, self._first, self._last = True, now, now
            self._not_before = now + delay

    def _step(self) -> None:
        from .sync import SyncBusy, sync

        t0 = time.monotonic()
        try:
            campaign = self.holder.current().campaign
            report = sync(self.config, campaign=campaign, hook=self.hook)
        except SyncBusy:
            with self._cond:
                self.state.busy += 1
            log.info("another sync holds the lock; retrying in %.0f s", self.busy_retry)
            self._retry(self.busy_retry)
            return
        except Exception as exc:  # the server keeps running; the step is retried
            with self._cond:
                self.state.failures += 1
                self.state.failed_total += 1
                n = self.state.failures
                self.state.last_error = f"{type(exc).__name__}: {exc}"
                self.state.last_failure = f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {self.state.last_error}"
            delay = min(self.max_backoff, self.backoff * 2 ** (n - 1))
            if isinstance(exc, LabelloopError):
                log.error("sync step failed (%s); retrying in %.0f s", exc, delay)
            else:
                log.exception("sync step failed unexpectedly; retrying in %.0f s", delay)
            self._retry(delay)
            return
        with self._cond:
            self.state.steps += 1
            self.state.failures = 0
            self.state.last_error = None
            self._not_before = 0.0
            self.state.last_report = {
                "run": report.run,
                "pulled": report.pulled,
                "trained": report.trained,
                "pushed": report.pushed_active + report.pushed_audit,
                "queue_before": report.queue_before,
                "queue_after": report.queue_after,
                "stopped": report.stopped,
            }
        log.info(
            "run %d in %.1f s: %s",
            report.run,
            time.monotonic() - t0,
            report.message,
            extra={"run": report.run, "trained": report.trained, "queue_after": report.queue_after},
        )
        for warning in report.warnings:
            log.warning(warning)
        if self.on_step is not None:
            self.on_step()


# -- predictions --------------------------------------------------------------------------------------


@dataclass
class _Model:
    round: int = -1
    version: str = COLD_START_VERSION
    head: Classifier | None = None
    checked: float = 0.0
    prefill: float = (
        1.01  # the guess is pre-selected from this confidence (campaign.prefill_cutoff; > 1: never)
    )
    labeled: int = 0  # the labels it was trained on: they decide its features' neighbour weight


@dataclass
class Predictor:
    """The current model's label and score for any task: pool texts by id or text, others embedded now."""

    config: Config
    holder: CampaignHolder
    recheck: float = 1.0  # seconds between looks at the store for a newer model (cron may train one)
    _model: _Model = field(default_factory=_Model)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _encode_lock: threading.Lock = field(default_factory=threading.Lock)

    def model(self, *, force: bool = False) -> _Model:
        """The latest stored model, re-read when the store has a newer round."""
        with self._lock:
            now = time.monotonic()
            if not force and now - self._model.checked < self.recheck:
                return self._model
            self._model.checked = now
            path = self.config.state.path
            if not path.exists():
                return self._model
            with Store.open_existing(path) as store:
                last = store.last_round()
                if last is not None and last.round != self._model.round:
                    last, head = latest_head(store)
                    cutoff = prefill_cutoff(store, self.holder.loaded.campaign)
                    self._model = _Model(
                        last.round, last.model_version, head, now, cutoff, labeled=len(last.train_labels)
                    )
            return self._model

    def features(self, texts: Sequence[str], ids: Sequence[str | None], labeled: int = 0) -> np.ndarray:
        """Features of each text for a head trained on ``labeled`` labels: the pool's own row when known
        (by id, then text), else embedded now and smoothed over the pool."""
        from .embeddings import embed

        loaded = self.holder.loaded
        campaign = loaded.campaign.at_labels(labeled)  # the pool re-smoothed once per weight, not per request
        rows: list[int | None] = []
        for text, our_id in zip(texts, ids, strict=True):
            row = campaign.index.get(our_id) if our_id is not None else None
            if row is None:
                row = loaded.by_hash.get(text_hash(text))
            rows.append(row)
        out = np.empty((len(texts), campaign.X.shape[1]), dtype=np.float32)
        known = [k for k, r in enumerate(rows) if r is not None]
        if known:
            out[known] = campaign.X[[int(rows[k]) for k in known]]  # type: ignore[arg-type]
        new = [k for k, r in enumerate(rows) if r is None]
        if new:
            with self._encode_lock:  # one encoder, one cache
                vectors = embed([texts[k] for k in new], self.holder.encoder, self.holder.cache)
            out[new] = self.config.model.smoothing.at(labeled, len(loaded.raw_pool))(vectors, loaded.raw_pool)
        return out

    def predict(self, tasks: Sequence[Mapping[str, Any]], label_config: str | None) -> list[dict[str, Any]]:
        """One ``{result, score, model_version}`` per task, in order (Label Studio matches by position)."""
        from .labelstudio.annotations import ID_FIELD

        target = _choices(label_config, self.holder.loaded.campaign)
        model = self.model()
        texts, ids = [], []
        for k, task in enumerate(tasks):
            data = task.get("data") if isinstance(task, Mapping) else None
            if not isinstance(data, Mapping):
                raise BadRequest(f"task {k} has no data object")
            text = data.get(target.text_key)
            if not isinstance(text, str) or not text.strip():
                raise BadRequest(f"task {k} has no text in data.{target.text_key}")
            texts.append(text)
            our_id = data.get(ID_FIELD)
            ids.append(str(our_id) if our_id is not None else None)
        if model.head is None:  # before the first model: a blind prediction, so Label Studio has something
            return [{"result": [], "score": 0.0, "model_version": model.version} for _ in tasks]
        from .labelstudio.payloads import choices_of

        probs = model.head.predict_proba(self.features(texts, ids, model.labeled))
        learner = self.holder.loaded.campaign.learner
        out = []
        for p in probs:
            # Multi-label: the predicted set, its confidence that of its least likely member (learner.guess).
            label, confidence = learner.guess(p)
            choices = choices_of(label, target)
            # Below the campaign's pre-selection cutoff the guess would anchor annotators: score only.
            shown = all(c in target.labels for c in choices) and confidence >= model.prefill
            result = (
                [
                    {
                        "from_name": target.from_name,
                        "to_name": target.to_name,
                        "type": "choices",
                        "value": {"choices": choices},
                    }
                ]
                if shown
                else []
            )
            out.append({"result": result, "score": confidence, "model_version": model.version})
        return out


class BadRequest(ValueError):
    """A request Label Studio (or anyone) sent that cannot be right: answered 400 with this one line."""


_CONFIGS: dict[tuple[str, str], Any] = {}


def _choices(label_config: str | None, campaign: Campaign) -> Any:
    """The request's labeling config (from_name, to_name, text key, single or multiple choice), or the one
    labelloop creates for the campaign."""
    from .labelstudio.labelconfig import ChoicesConfig, parse_config

    delimiter = campaign.config.label_delimiter
    if not label_config:
        return ChoicesConfig(
            tuple(campaign.classes), multiple=campaign.config.multi_label, delimiter=delimiter
        )
    key = (label_config, delimiter)
    if key not in _CONFIGS:
        try:
            _CONFIGS[key] = parse_config(label_config, "the request's label_config", delimiter)
        except LabelloopError as exc:
            raise BadRequest(str(exc)) from None
    return _CONFIGS[key]


# -- the HTTP face ----------------------------------------------------------------------------------------


async def _json_object(request: Any) -> dict[str, Any]:
    """The request's body as a JSON object, or :class:`BadRequest`."""
    raw = await request.body()
    try:
        data = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the body is not JSON") from None
    if not isinstance(data, dict):
        raise BadRequest("the body is not a JSON object")
    return data


def _guarded(secret: str, handler: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``handler`` behind the secret (401 without it), its :class:`BadRequest` answered 400."""
    from starlette.responses import JSONResponse

    async def endpoint(request: Any) -> Any:
        if not authorized(request.headers, secret):
            client = request.client.host if request.client else "?"
            log.warning(
                "401 %s %s from %s: missing or wrong secret", request.method, request.url.path, client
            )
            return JSONResponse(
                {"error": "unauthorized"},
                status_code=401,
                headers={"WWW-Authenticate": 'Basic realm="labelloop"'},
            )
        try:
            return await handler(request)
        except BadRequest as exc:
            log.warning("400: %s", exc)
            return JSONResponse({"error": str(exc)}, status_code=400)

    return endpoint


@dataclass(frozen=True)
class _Endpoints:
    """What Label Studio calls: the ML backend protocol, webhooks and ``/status`` (all thin over the worker)."""

    worker: SyncWorker
    predictor: Predictor
    project_id: Callable[[], int | None]

    async def health(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({"status": "UP"})

    async def setup(self, request: Any) -> Any:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        await _json_object(request)  # holds Label Studio's access token: read, never logged or kept
        model = await run_in_threadpool(self.predictor.model, force=True)
        return JSONResponse({"model_version": model.version})

    async def predict(self, request: Any) -> Any:
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse

        data = await _json_object(request)
        tasks = data.get("tasks")
        if not isinstance(tasks, list):
            raise BadRequest("'tasks' must be a list of tasks")
        label_config = data.get("label_config")
        if label_config is not None and not isinstance(label_config, str):
            raise BadRequest("'label_config' must be a string")
        results = await run_in_threadpool(self.predictor.predict, tasks, label_config)
        version = results[0]["model_version"] if results else self.predictor.model().version
        shown = sum(bool(r["result"]) for r in results)
        log.info(
            "predict: %d task(s), model %s, %d with the guess pre-selected", len(results), version, shown
        )
        return JSONResponse({"results": results, "model_version": version})

    async def webhook(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        data = await _json_object(request)
        action = data.get("action")
        if not isinstance(action, str) or not action:
            raise BadRequest("no 'action' in the webhook payload")
        if action not in SYNC_ACTIONS | TRAIN_ACTIONS:
            return JSONResponse({"status": "ignored", "action": action})
        project = data.get("project")
        theirs = project.get("id") if isinstance(project, dict) else None
        ours = self.project_id()
        if theirs is not None and ours is not None and theirs != ours:
            return JSONResponse({"status": "ignored", "reason": f"project {theirs} is not the campaign's"})
        self.worker.notify(urgent=action in TRAIN_ACTIONS)
        log.info("webhook %s: sync step queued", action)
        return JSONResponse({"status": "queued", "action": action}, status_code=201)

    async def train(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        await _json_object(
            request
        )  # the legacy training call: the annotations it carries are pulled by the step
        self.worker.notify(urgent=True)
        return JSONResponse({}, status_code=201)

    async def status(self, request: Any) -> Any:
        from starlette.responses import JSONResponse

        return JSONResponse({**self.worker.snapshot(), "model_version": self.predictor.model().version})


def create_app(
    config: Config,
    *,
    secret: str,
    worker: SyncWorker,
    predictor: Predictor,
    project_id: Callable[[], int | None],
) -> Any:
    """The Starlette app: webhooks, the ML backend protocol, ``/status``; the worker starts with the app."""
    from contextlib import asynccontextmanager

    from starlette.applications import Starlette
    from starlette.concurrency import run_in_threadpool
    from starlette.routing import Route

    @asynccontextmanager
    async def lifespan(app: Any) -> Any:
        worker.start()
        worker.notify(urgent=True)  # catch up with whatever happened while we were not running
        try:
            yield
        finally:
            await run_in_threadpool(worker.stop)

    e = _Endpoints(worker, predictor, project_id)
    routes = [
        Route("/health", e.health, methods=["GET"]),
        Route("/", e.health, methods=["GET"]),
        Route("/setup", _guarded(secret, e.setup), methods=["POST"]),
        Route("/predict", _guarded(secret, e.predict), methods=["POST"]),
        Route("/webhook", _guarded(secret, e.webhook), methods=["POST"]),
        Route("/train", _guarded(secret, e.train), methods=["POST"]),
        Route("/status", _guarded(secret, e.status), methods=["GET"]),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


# -- logging --------------------------------------------------------------------------------------------


class _Redact(logging.Filter):
    """Belt and braces: whatever a message holds, the secrets never leave the process."""

    def __init__(self, secrets: Sequence[str]) -> None:
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        if any(s in msg for s in self.secrets):
            for s in self.secrets:
                msg = msg.replace(s, "***")
            record.msg, record.args = msg, None
        return True


class _JsonLines(logging.Formatter):
    _SKIP = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "color_message"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(
            {k: v for k, v in record.__dict__.items() if k not in self._SKIP and not k.startswith("_")}
        )
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(*, json_lines: bool, secrets: Sequence[str], level: int = logging.INFO) -> None:
    """One handler on stderr for labelloop and uvicorn (plain or JSON lines), redacting the secrets."""
    import sys

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        _JsonLines() if json_lines else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    handler.addFilter(_Redact(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
    for noisy in ("httpx", "httpcore"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def run_server(
    config: Config,
    *,
    host: str = "127.0.0.1",
    port: int = 9090,
    json_logs: bool = False,
    debounce: float = 2.0,
    max_wait: float = 10.0,
    hook: Hook | None = None,
) -> None:
    """Load the campaign, then serve until SIGTERM / Ctrl-C (``hook`` goes to each sync step: tests)."""
    try:
        import uvicorn
    except ImportError as exc:
        raise ServeError(f"`labelloop serve` needs {exc.name}: pip install 'labelloop[serve]'") from None
    secret = read_secret()
    if config.state.path.exists():  # predictions score stored models: on the features they were trained on
        with Store.open_existing(config.state.path) as store:
            check_features(store, config)
    configure_logging(json_lines=json_logs, secrets=[secret, os.environ.get("LABEL_STUDIO_API_KEY", "")])
    holder = CampaignHolder(config)
    predictor = Predictor(config, holder)
    worker = SyncWorker(
        config,
        holder,
        debounce=debounce,
        max_wait=max_wait,
        hook=hook,
        on_step=lambda: predictor.model(force=True),
    )
    app = create_app(
        config,
        secret=secret,
        worker=worker,
        predictor=predictor,
        project_id=lambda: _project_id(config.state.path),
    )
    # Warm the encoder now, not when the first person opens a task that needs it.
    holder.encoder.encode(["warm-up"])
    log.info("serving campaign %s on http://%s:%d", config.state.path, host, port)
    uvicorn.run(app, host=host, port=port, log_config=None, access_log=False, lifespan="on")


def _project_id(state: Path, _known: dict[Path, int] = {}) -> int | None:  # noqa: B006 (a cache on purpose)
    """The campaign's project id from the state file (fixed once known), None before the first step."""
    if state not in _known:
        try:
            project = Store.check(state)
        except LabelloopError:
            return None
        if project is None:
            return None
        _known[state] = int(project)
    return _known[state]
