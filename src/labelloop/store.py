"""The sync job's memory: one SQLite file, the only state kept between runs.

Every write happens inside one transaction (``with store.tx():``), so a process killed at
any instant leaves the file as it was before that step or after it, never in between.
Models are stored as plain arrays (``numpy.save`` without pickle). The schema carries its
version in ``PRAGMA user_version``; :data:`MIGRATIONS` brings an older file forward.

(Over 400 lines on purpose: every SQL statement of the state file lives here and nowhere
else, so the schema and the queries that rely on it are read and migrated together.)
"""

from __future__ import annotations

import io
import json
import os
import shutil
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LabelloopError
from .labelstudio.annotations import AnnotationRecord, PullCursor, Resolution, resolve

__all__ = ["Store", "StoreError", "RoundRow", "QueryRow", "RunRow", "EscalationRow", "SCHEMA_VERSION", "now"]

MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE items (
        id TEXT PRIMARY KEY, text_hash TEXT NOT NULL, source TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('pool', 'audit')), added_at TEXT NOT NULL);
    CREATE TABLE annotation_events (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, run INTEGER NOT NULL, event TEXT NOT NULL,
        item_id TEXT NOT NULL, task_id INTEGER NOT NULL, annotation_id INTEGER NOT NULL, label TEXT,
        skipped INTEGER NOT NULL, annotator INTEGER, annotator_email TEXT, created_at TEXT,
        updated_at TEXT, previous_label TEXT, task_deleted INTEGER NOT NULL, pulled_at TEXT NOT NULL);
    CREATE INDEX annotation_events_item ON annotation_events (item_id);
    CREATE TABLE labels (
        item_id TEXT PRIMARY KEY, label TEXT, votes TEXT NOT NULL, skipped INTEGER NOT NULL,
        disagreement INTEGER NOT NULL, updated_at TEXT NOT NULL);
    CREATE TABLE rounds (
        round INTEGER PRIMARY KEY, model_version TEXT NOT NULL UNIQUE, strategy TEXT NOT NULL,
        n_labeled INTEGER NOT NULL, created_at TEXT NOT NULL, train_labels TEXT NOT NULL,
        metrics TEXT NOT NULL, model BLOB, stop_predictions BLOB);
    CREATE TABLE queries (
        item_id TEXT PRIMARY KEY, round INTEGER NOT NULL, kind TEXT NOT NULL CHECK (kind IN ('active', 'audit')),
        strategy TEXT NOT NULL, model_version TEXT, score REAL, cluster INTEGER, predicted TEXT,
        confidence REAL, queried_at TEXT NOT NULL, status TEXT NOT NULL CHECK (status IN ('pending', 'pushed')));
    CREATE TABLE pushes (
        item_id TEXT PRIMARY KEY, task_id INTEGER NOT NULL, round INTEGER, model_version TEXT,
        pushed_at TEXT NOT NULL, how TEXT NOT NULL CHECK (how IN ('pushed', 'adopted')));
    CREATE TABLE runs (
        run INTEGER PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT,
        pulled INTEGER NOT NULL DEFAULT 0, trained TEXT, pushed INTEGER NOT NULL DEFAULT 0,
        adopted INTEGER NOT NULL DEFAULT 0, predictions_updated INTEGER NOT NULL DEFAULT 0,
        queue_before INTEGER, queue_after INTEGER, stopped TEXT, message TEXT);
    """,
    # 2: the pull cursor (each annotation's latest event) by index, not by replaying every event
    """
    CREATE INDEX annotation_events_annotation ON annotation_events (annotation_id, seq);
    """,
    # 3: the human side: empty submissions, overlap and pre-annotation per query, guideline versions,
    # escalations (ties and suspected label errors sent back for another opinion)
    """
    ALTER TABLE annotation_events ADD COLUMN empty INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE queries ADD COLUMN overlap INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE queries ADD COLUMN prefilled INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE guidelines (
        version TEXT PRIMARY KEY, applied_at TEXT NOT NULL, source TEXT NOT NULL, text TEXT NOT NULL);
    CREATE TABLE escalations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, item_id TEXT NOT NULL, task_id INTEGER NOT NULL,
        reason TEXT NOT NULL CHECK (reason IN ('tie', 'suspect')), round INTEGER NOT NULL,
        overlap INTEGER NOT NULL, raised_at TEXT NOT NULL, label_before TEXT, score REAL,
        resolved_at TEXT, label_after TEXT, decided_by TEXT);
    CREATE INDEX escalations_item ON escalations (item_id);
    """,
    # 4: exact duplicates: how many data rows each item stands for (identical texts without an id column)
    """
    ALTER TABLE items ADD COLUMN copies INTEGER NOT NULL DEFAULT 1;
    """,
    # 5: empty submissions per text (Label Studio counts them toward overlap), filled from the live annotations
    """
    ALTER TABLE labels ADD COLUMN empty INTEGER NOT NULL DEFAULT 0;
    UPDATE labels SET empty = (
        SELECT COUNT(*) FROM annotation_events e
        WHERE e.item_id = labels.item_id AND e.empty = 1 AND e.event != 'deleted'
          AND e.seq = (SELECT MAX(seq) FROM annotation_events l WHERE l.annotation_id = e.annotation_id));
    """,
]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(LabelloopError):
    """The state file cannot be used (not ours, newer than this labelloop, or another campaign's)."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _pack(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # type: ignore[arg-type]  # arrays only: loaded back with allow_pickle=False
    return buf.getvalue()


def _unpack(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _writable(path: Path) -> bool:
    """Whether this process may write the file and its folder (SQLite needs both: journal, WAL index)."""
    return (
        os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK) and not _read_only_mount(path)
    )


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _open(path: Path, readonly: bool) -> sqlite3.Connection:
    if not readonly:
        conn = sqlite3.connect(str(path), isolation_level=None, timeout=30, factory=_Connection)
    else:
        uri = path.resolve().as_uri() + "?mode=ro"
        if not _writable(path) and not Path(str(path) + "-wal").exists():
            # A WAL file in a folder we cannot write: nobody can be writing it, and SQLite could not create
            # the index it wants for reading. ``immutable`` reads the pages as they are.
            uri += "&immutable=1"
        conn = sqlite3.connect(uri, isolation_level=None, timeout=30, uri=True, factory=_Connection)
    conn.row_factory = sqlite3.Row
    conn.path = path  # type: ignore[attr-defined]
    return conn


def _disk_full(path: Path) -> bool:
    try:
        return shutil.disk_usage(path.parent).free < 256 * 1024
    except OSError:
        return False


def _damaged(path: Path, detail: str) -> str:
    """One line: SQLite's own report of damage spans lines (the tree, the page, the cell), keep its start."""
    detail = " ".join(detail.replace("*** in database main ***", "").split())
    if len(detail) > 100:
        detail = detail[:99] + "…"
    return (
        f"{path}: damaged state file ({detail}); restore a backup of it, or start a new campaign state "
        f"with another state.path"
    )


# SQLite's primary result codes (the low byte of an extended code).
_SQLITE_PERM, _SQLITE_BUSY, _SQLITE_READONLY, _SQLITE_IOERR, _SQLITE_CORRUPT, _SQLITE_FULL = (
    3,
    5,
    8,
    10,
    11,
    13,
)
_SQLITE_CANTOPEN, _SQLITE_NOTADB = 14, 26


def _store_error(path: Path, exc: sqlite3.Error, doing: str) -> StoreError:
    """One line for what SQLite said, naming the cause a user can act on."""
    code = (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF
    said = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if code == _SQLITE_CORRUPT or "malformed" in said:
        return StoreError(_damaged(path, said))
    if code == _SQLITE_NOTADB:
        return StoreError(f"{path}: not a labelloop state file ({said})")
    if code == _SQLITE_FULL or (code == _SQLITE_IOERR and _disk_full(path)):
        return StoreError(
            f"{path}: cannot write the state file: the disk is full ({said}); free some space, "
            f"then run again (the last step was not recorded)"
        )
    if code in (_SQLITE_READONLY, _SQLITE_PERM, _SQLITE_CANTOPEN):
        return StoreError(
            f"{path}: cannot {doing} the state file ({said}); check the permissions of the file "
            f"and its folder"
        )
    if code == _SQLITE_BUSY:
        return StoreError(f"{path}: the state file is locked by another process ({said}); try again")
    if doing == "open":  # no code: an older SQLite or Python; the historical wording
        return StoreError(f"{path}: not a labelloop state file ({said})")
    return StoreError(f"{path}: cannot {doing} the state file ({said})")


class _Cursor(sqlite3.Cursor):
    """A cursor whose I/O failures (damaged pages, disk errors) are :class:`StoreError` lines, not tracebacks.

    Programming errors (constraint violations, bad SQL) stay as they are: they are bugs to see.
    """

    path: Path = Path("?")
    doing: str = "read"

    def _wrap(self, call, *args):  # type: ignore[no-untyped-def]
        try:
            return call(*args)
        except (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError):
            raise
        except sqlite3.DatabaseError as exc:
            raise _store_error(self.path, exc, self.doing) from None

    def execute(self, sql, parameters=(), /):  # type: ignore[no-untyped-def,override]
        self.doing = "read" if sql.lstrip()[:6].upper() in ("SELECT", "PRAGMA") else "write"
        self._wrap(super().execute, sql, parameters)
        return self

    def executemany(self, sql, seq, /):  # type: ignore[no-untyped-def,override]
        self.doing = "write"
        self._wrap(super().executemany, sql, seq)
        return self

    def fetchone(self):  # type: ignore[no-untyped-def]
        return self._wrap(super().fetchone)

    def fetchall(self):  # type: ignore[no-untyped-def]
        return self._wrap(super().fetchall)

    def fetchmany(self, size=None):  # type: ignore[no-untyped-def]
        return self._wrap(super().fetchmany, *(() if size is None else (size,)))

    def __next__(self):  # type: ignore[no-untyped-def]
        return self._wrap(super().__next__)


class _Connection(sqlite3.Connection):
    """Routes ``conn.execute`` through :class:`_Cursor`, so every read of the store is wrapped."""

    path: Path = Path("?")

    def cursor(self, factory=_Cursor):  # type: ignore[no-untyped-def,override]
        cur = super().cursor(factory)
        cur.path = self.path
        return cur

    def execute(self, sql, parameters=(), /):  # type: ignore[no-untyped-def,override]
        return self.cursor().execute(sql, parameters)

    def executemany(self, sql, seq, /):  # type: ignore[no-untyped-def,override]
        return self.cursor().executemany(sql, seq)


@dataclass(frozen=True)
class RoundRow:
    """A trained (or cold-start) round; its weights are read only on request (:meth:`Store.model`)."""

    round: int
    model_version: str
    strategy: str
    n_labeled: int
    created_at: str
    train_labels: dict[str, str]
    metrics: dict[str, Any]
    has_model: bool


@dataclass(frozen=True)
class QueryRow:
    """A text chosen to be labeled: pending until it is a task in Label Studio, then pushed."""

    item_id: str
    round: int
    kind: str  # "active" or "audit"
    strategy: str
    model_version: str | None  # of the prediction sent with it (None: sent without one)
    score: float | None = None
    cluster: int | None = None
    predicted: str | None = None
    confidence: float | None = None
    status: str = "pending"
    overlap: int = 1  # people asked to label it
    prefilled: bool = False  # the model's guess was pre-selected


@dataclass(frozen=True)
class EscalationRow:
    """A text sent back for one more opinion: a tie, or a label the model suspects is wrong."""

    seq: int
    item_id: str
    task_id: int
    reason: str  # "tie" or "suspect"
    round: int
    overlap: int  # people asked to label it after the escalation
    raised_at: str
    label_before: str | None
    score: float | None
    resolved_at: str | None
    label_after: str | None
    decided_by: str | None


@dataclass(frozen=True)
class RunRow:
    """One sync run in the ledger (unfinished when the run was killed)."""

    run: int
    started_at: str
    finished_at: str | None
    pulled: int
    trained: str | None
    pushed: int
    adopted: int
    predictions_updated: int
    queue_before: int | None
    queue_after: int | None
    stopped: str | None
    message: str | None


_ROUND_COLUMNS = (
    "round, model_version, strategy, n_labeled, created_at, train_labels, metrics, "
    "model IS NOT NULL AS has_model"
)


def _open_checked(path: Path, readonly: bool, existed: bool) -> tuple[sqlite3.Connection, int]:
    """The connection and its schema version, refused in one line when the file is not ours, is newer than
    this labelloop, or is damaged anywhere (``PRAGMA quick_check``)."""
    raw = sqlite3.Connection.execute  # unwrapped: errors here are about opening, named below
    try:
        conn = _open(path, readonly)
        version = raw(conn, "PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in raw(conn, "SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise _store_error(path, exc, "open") from None
    if version > SCHEMA_VERSION:
        conn.close()
        raise StoreError(
            f"{path}: written by a newer labelloop (schema {version} > {SCHEMA_VERSION}); upgrade labelloop"
        )
    if version == 0 and tables:
        conn.close()
        raise StoreError(
            f"{path}: an SQLite file that is not a labelloop state file; choose another state.path"
        )
    if existed and version > 0:
        try:
            problems = [r[0] for r in raw(conn, "PRAGMA quick_check(3)")]
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise _store_error(path, exc, "check") from None
        if problems != ["ok"]:
            conn.close()
            raise StoreError(_damaged(path, problems[0]))
    return conn, version


class Store:
    """An open state file. Use :meth:`open` (creates or migrates) or :meth:`open_existing` (read-only use)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path
        self.blobs_loaded = 0  # model and stop-prediction blobs read: a sync reads only what it uses

    # -- opening --------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path) -> Store:
        """Open ``path``, creating it (and migrating an older schema) as needed."""
        path = Path(path)
        if not path.parent.is_dir():
            raise StoreError(f"{path}: folder {path.parent} does not exist")
        return cls._connect(path, create=True)

    @classmethod
    def open_existing(cls, path: str | Path) -> Store:
        """Open a state file that must exist already (``status``, ``report``, ``predict``)."""
        path = Path(path)
        if not path.exists():
            raise StoreError(f"{path}: no state yet; run `labelloop sync` first")
        return cls._connect(path, create=False)

    @classmethod
    def check(cls, path: str | Path) -> str | None:
        """Fail early, writing nothing, if ``path`` exists but is not a usable state file; its project id."""
        path = Path(path)
        if not path.exists():
            return None
        with cls._connect(path, create=False, readonly=True) as store:
            return (
                store.get("project_id") if store.conn.execute("PRAGMA user_version").fetchone()[0] else None
            )

    @classmethod
    def _connect(cls, path: Path, create: bool, readonly: bool = False) -> Store:
        """Open ``path``; anything SQLite says about it becomes one :class:`StoreError` line naming the cause.

        An existing file is checked page by page (``PRAGMA quick_check``) before it is used, so damage
        anywhere in it is reported here, before a sync writes on top of it, not as a traceback later.
        """
        existed = path.exists()
        if not readonly and existed and not _writable(path):
            if create:  # a sync: say so before SQLite's "unable to open database file"
                why = "read-only file system" if _read_only_mount(path) else "permission denied"
                raise StoreError(
                    f"{path}: cannot write the state file ({why}); check the permissions of the "
                    f"file and its folder"
                )
            readonly = True  # status, report, predict only read: a read-only file or folder is fine for them
        conn, version = _open_checked(path, readonly, existed)
        store = cls(conn, path)
        if not readonly:
            try:  # readers (status, report) never block a sync's commit
                sqlite3.Connection.execute(conn, "PRAGMA journal_mode = WAL")
            except sqlite3.DatabaseError as exc:
                conn.close()
                raise _store_error(path, exc, "write") from None
        if version < SCHEMA_VERSION and not readonly:
            store._migrate(version, create)
        return store

    def _migrate(self, version: int, create: bool) -> None:
        """Bring a file of schema ``version`` forward in one transaction; only a sync (``create``) may."""
        if not create:
            self.conn.close()
            if version == 0:  # created, then killed before its first transaction committed
                raise StoreError(f"{self.path}: an empty state file (no campaign yet); run `labelloop sync`")
            raise StoreError(
                f"{self.path}: schema {version} is older than {SCHEMA_VERSION}; run `labelloop sync` to migrate it"
            )
        with self.tx():
            for script in MIGRATIONS[version:]:
                for statement in filter(str.strip, script.split(";")):
                    self.conn.execute(statement)
            self.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _rollback(self) -> None:
        """Undo the open step, if SQLite has not undone it already (it does on disk full, I/O errors)."""
        if self.conn.in_transaction:
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass  # nothing more to undo: the step did not land either way

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One atomic step: everything inside lands together or not at all.

        SQLite's own failures (disk full, file not writable, locked too long, damaged pages) become
        one :class:`StoreError` line; the step is rolled back.
        """
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise _store_error(self.path, exc, "write") from None
        try:
            yield self.conn
        except sqlite3.Error as exc:
            self._rollback()
            raise _store_error(self.path, exc, "write") from None
        except BaseException:
            self._rollback()
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise _store_error(self.path, exc, "write") from None

    # -- meta -----------------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set(self, key: str, value: str) -> None:
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
            "value = excluded.value",
            (key, value),
        )

    # -- items ----------------------------------------------------------------------------------

    def items(self) -> dict[str, tuple[str, str]]:
        """our id -> (text hash, role)."""
        return {
            r["id"]: (r["text_hash"], r["role"])
            for r in self.conn.execute("SELECT id, text_hash, role FROM items")
        }

    def add_items(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """Insert (id, text hash, source, role) rows."""
        at = now()
        self.conn.executemany(
            "INSERT INTO items (id, text_hash, source, role, added_at) VALUES (?, ?, ?, ?, ?)",
            [(*r, at) for r in rows],
        )

    def copies(self) -> dict[str, int]:
        """our id -> data rows it stands for, for items standing for more than one (the rest stand for one)."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT id, copies FROM items WHERE copies != 1")}

    def row_counts(self) -> tuple[int, int]:
        """(items, data rows they stand for): the two differ when identical texts were collapsed."""
        n, rows = self.conn.execute("SELECT COUNT(*), COALESCE(SUM(copies), 0) FROM items").fetchone()
        return int(n), int(rows)

    def set_copies(self, copies: Mapping[str, int]) -> None:
        """Record how many data rows each item stands for (identical texts collapsed by the loader)."""
        self.conn.executemany("UPDATE items SET copies = ? WHERE id = ?", [(n, i) for i, n in copies.items()])

    def ids_with_role(self, role: str) -> list[str]:
        return [
            r[0] for r in self.conn.execute("SELECT id FROM items WHERE role = ? ORDER BY rowid", (role,))
        ]

    # -- annotations ----------------------------------------------------------------------------

    @staticmethod
    def _record(r: sqlite3.Row) -> AnnotationRecord:
        return AnnotationRecord(
            event=r["event"],
            id=r["item_id"],
            project=0,
            task_id=r["task_id"],
            annotation_id=r["annotation_id"],
            label=r["label"],
            skipped=bool(r["skipped"]),
            annotator=r["annotator"],
            annotator_email=r["annotator_email"],
            created_at=r["created_at"],
            updated_at=r["updated_at"],
            previous_label=r["previous_label"],
            task_deleted=bool(r["task_deleted"]),
            empty=bool(r["empty"]),
        )

    def records(self, item_ids: Sequence[str] | None = None) -> list[AnnotationRecord]:
        """Every pulled record in order, or only those of ``item_ids``."""
        if item_ids is None:
            rows = self.conn.execute("SELECT * FROM annotation_events ORDER BY seq").fetchall()
        else:
            rows = []
            for chunk in _chunks(list(item_ids), 500):
                rows += self.conn.execute(
                    f"SELECT * FROM annotation_events WHERE item_id IN ({','.join('?' * len(chunk))})", chunk
                ).fetchall()
            rows.sort(key=lambda r: r["seq"])
        return [self._record(r) for r in rows]

    def cursor(self) -> PullCursor:
        """The pull cursor: each live annotation's latest record (by index, not by replaying history)."""
        rows = self.conn.execute(
            "SELECT e.* FROM annotation_events e JOIN (SELECT annotation_id, MAX(seq) AS seq FROM annotation_events "
            "GROUP BY annotation_id) last ON e.seq = last.seq WHERE e.event != 'deleted' ORDER BY e.seq"
        ).fetchall()
        return PullCursor.from_records([self._record(r) for r in rows], self.get("scanned_at"))

    def add_records(self, run: int, records: Sequence[AnnotationRecord], scanned_at: str | None) -> None:
        """Append a pull and refresh the resolved labels of the texts it touched (call inside :meth:`tx`)."""
        at = now()
        self.conn.executemany(
            "INSERT INTO annotation_events (run, event, item_id, task_id, annotation_id, label, skipped, annotator, "
            "annotator_email, created_at, updated_at, previous_label, task_deleted, pulled_at, empty) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    run,
                    r.event,
                    r.id,
                    r.task_id,
                    r.annotation_id,
                    r.label,
                    int(r.skipped),
                    r.annotator,
                    r.annotator_email,
                    r.created_at,
                    r.updated_at,
                    r.previous_label,
                    int(r.task_deleted),
                    at,
                    int(r.empty),
                )
                for r in records
            ],
        )
        if scanned_at:
            self.set("scanned_at", scanned_at)
        touched = sorted({r.id for r in records})
        if not touched:
            return
        self.conn.executemany("DELETE FROM labels WHERE item_id = ?", [(i,) for i in touched])
        self.conn.executemany(
            "INSERT INTO labels (item_id, label, votes, skipped, disagreement, updated_at, empty) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (k, r.label, json.dumps(r.votes, sort_keys=True), r.skipped, int(r.disagreement), at, r.empty)
                for k, r in resolve(self.records(touched)).items()
            ],
        )

    def resolutions(self) -> dict[str, Resolution]:
        """Every text with at least one live annotation (a label, a skip, or a tied vote)."""
        return {
            r["item_id"]: Resolution(
                r["item_id"],
                r["label"],
                json.loads(r["votes"]),
                r["skipped"],
                bool(r["disagreement"]),
                r["empty"],
            )
            for r in self.conn.execute("SELECT * FROM labels")
        }

    # -- rounds ---------------------------------------------------------------------------------

    def add_round(
        self,
        round_: int,
        model_version: str,
        strategy: str,
        train_labels: dict[str, str],
        metrics: dict[str, Any],
        model: dict[str, np.ndarray] | None,
        stop_predictions: np.ndarray | None,
    ) -> None:
        self.conn.execute(
            "INSERT INTO rounds (round, model_version, strategy, n_labeled, created_at, train_labels, metrics, "
            "model, stop_predictions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                round_,
                model_version,
                strategy,
                len(train_labels),
                now(),
                json.dumps(train_labels, sort_keys=True),
                json.dumps(metrics, sort_keys=True),
                None if model is None else _pack(model),
                None if stop_predictions is None else _pack({"p": stop_predictions}),
            ),
        )

    @staticmethod
    def _round(r: sqlite3.Row) -> RoundRow:
        return RoundRow(
            r["round"],
            r["model_version"],
            r["strategy"],
            r["n_labeled"],
            r["created_at"],
            json.loads(r["train_labels"]),
            json.loads(r["metrics"]),
            bool(r["has_model"]),
        )

    def rounds(self) -> list[RoundRow]:
        """Every round, oldest first, without weights."""
        return [
            self._round(r) for r in self.conn.execute(f"SELECT {_ROUND_COLUMNS} FROM rounds ORDER BY round")
        ]

    def last_round(self, *, trained: bool = False) -> RoundRow | None:
        """The latest round (``trained``: the latest with a model), without weights."""
        where = "WHERE model IS NOT NULL " if trained else ""
        row = self.conn.execute(
            f"SELECT {_ROUND_COLUMNS} FROM rounds {where}ORDER BY round DESC LIMIT 1"
        ).fetchone()
        return None if row is None else self._round(row)

    def _blob(self, column: str, round_: int) -> dict[str, np.ndarray] | None:
        row = self.conn.execute(f"SELECT {column} FROM rounds WHERE round = ?", (round_,)).fetchone()
        if row is None or row[0] is None:
            return None
        self.blobs_loaded += 1
        return _unpack(row[0])

    def model(self, round_: int) -> dict[str, np.ndarray] | None:
        """The head's arrays of ``round_`` (None: a round without a model)."""
        return self._blob("model", round_)

    def stop_predictions(self, round_: int) -> np.ndarray | None:
        """The stop set's predicted classes of ``round_``."""
        blob = self._blob("stop_predictions", round_)
        return None if blob is None else blob["p"]

    # -- queries and pushes ---------------------------------------------------------------------

    def update_shown(self, rows: Sequence[tuple[str, str, str, float, bool]]) -> None:
        """A waiting task's newer prediction: ``(item_id, model_version, predicted, confidence, prefilled)``.
        What annotators see changes when a new model refreshes it; the blind-answer statistics must follow."""
        self.conn.executemany(
            "UPDATE queries SET model_version = ?, predicted = ?, confidence = ?, prefilled = ? WHERE item_id = ?",
            [(v, p, c, int(f), i) for i, v, p, c, f in rows],
        )

    def add_queries(self, rows: Sequence[QueryRow]) -> None:
        at = now()
        self.conn.executemany(
            "INSERT INTO queries (item_id, round, kind, strategy, model_version, score, cluster, predicted, "
            "confidence, queried_at, status, overlap, prefilled) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?)",
            [
                (
                    q.item_id,
                    q.round,
                    q.kind,
                    q.strategy,
                    q.model_version,
                    q.score,
                    q.cluster,
                    q.predicted,
                    q.confidence,
                    at,
                    q.overlap,
                    int(q.prefilled),
                )
                for q in rows
            ],
        )

    def queries(self, status: str | None = None) -> list[QueryRow]:
        sql = (
            "SELECT item_id, round, kind, strategy, model_version, score, cluster, predicted, confidence, status, "
            "overlap, prefilled FROM queries" + (" WHERE status = ?" if status else "") + " ORDER BY rowid"
        )
        return [
            QueryRow(
                r["item_id"],
                r["round"],
                r["kind"],
                r["strategy"],
                r["model_version"],
                r["score"],
                r["cluster"],
                r["predicted"],
                r["confidence"],
                r["status"],
                r["overlap"],
                bool(r["prefilled"]),
            )
            for r in self.conn.execute(sql, (status,) if status else ())
        ]

    # -- guidelines and escalations ---------------------------------------------------------------

    def add_guidelines(self, version: str, source: str, text: str, applied_at: str | None = None) -> None:
        self.conn.execute(
            "INSERT INTO guidelines (version, applied_at, source, text) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (version) DO NOTHING",
            (version, applied_at or now(), source, text),
        )

    def guidelines(self) -> list[tuple[str, str]]:
        """(version, applied_at) of every guidelines text the project was given, oldest first."""
        return [
            (r[0], r[1])
            for r in self.conn.execute(
                "SELECT version, applied_at FROM guidelines ORDER BY applied_at, rowid"
            )
        ]

    def add_escalation(
        self,
        item_id: str,
        task_id: int,
        reason: str,
        round_: int,
        overlap: int,
        label_before: str | None,
        score: float | None = None,
    ) -> None:
        self.conn.execute(
            "INSERT INTO escalations (item_id, task_id, reason, round, overlap, raised_at, label_before, score) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (item_id, task_id, reason, round_, overlap, now(), label_before, score),
        )

    def resolve_escalation(self, seq: int, label_after: str | None, decided_by: str | None) -> None:
        self.conn.execute(
            "UPDATE escalations SET resolved_at = ?, label_after = ?, decided_by = ? WHERE seq = ?",
            (now(), label_after, decided_by, seq),
        )

    def escalations(self, *, open_only: bool = False) -> list[EscalationRow]:
        sql = (
            "SELECT * FROM escalations"
            + (" WHERE resolved_at IS NULL" if open_only else "")
            + " ORDER BY seq"
        )
        return [EscalationRow(*r) for r in self.conn.execute(sql)]

    def mark_pushed(self, task_ids: dict[str, int], how: str = "pushed") -> None:
        """Record tasks that exist in Label Studio; their queries stop being pending."""
        at = now()
        for item_id, task_id in task_ids.items():
            q = self.conn.execute(
                "SELECT round, model_version FROM queries WHERE item_id = ?", (item_id,)
            ).fetchone()
            self.conn.execute(
                "INSERT INTO pushes (item_id, task_id, round, model_version, pushed_at, how) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (item_id) DO NOTHING",
                (item_id, task_id, None if q is None else q[0], None if q is None else q[1], at, how),
            )
            self.conn.execute("UPDATE queries SET status = 'pushed' WHERE item_id = ?", (item_id,))

    def drop_pending(self, item_ids: Sequence[str]) -> None:
        """Forget selections that were never sent (the queue filled up meanwhile, or the text is gone)."""
        self.conn.executemany(
            "DELETE FROM queries WHERE item_id = ? AND status = 'pending'", [(i,) for i in item_ids]
        )

    def pushes(self) -> dict[str, int]:
        """our id -> task id, for every text ever sent (or found) in Label Studio."""
        return {r[0]: r[1] for r in self.conn.execute("SELECT item_id, task_id FROM pushes")}

    # -- runs -----------------------------------------------------------------------------------

    def start_run(self) -> int:
        """Open a ledger row for this run (a run killed midway keeps it, unfinished); its number."""
        run = int(self.conn.execute("SELECT COALESCE(MAX(run), 0) + 1 FROM runs").fetchone()[0])
        self.conn.execute("INSERT INTO runs (run, started_at) VALUES (?, ?)", (run, now()))
        return run

    def update_run(self, run: int, **fields: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in fields)
        self.conn.execute(f"UPDATE runs SET {sets} WHERE run = ?", (*fields.values(), run))

    def count_in_run(self, run: int, column: str, n: int) -> None:
        self.conn.execute(f"UPDATE runs SET {column} = {column} + ? WHERE run = ?", (n, run))

    def runs(self) -> list[RunRow]:
        return [
            RunRow(*r)
            for r in self.conn.execute(
                "SELECT run, started_at, finished_at, pulled, trained, pushed, adopted, predictions_updated, "
                "queue_before, queue_after, stopped, message FROM runs ORDER BY run"
            )
        ]

    def last_run(self) -> RunRow | None:
        rows = self.conn.execute(
            "SELECT run, started_at, finished_at, pulled, trained, pushed, adopted, predictions_updated, "
            "queue_before, queue_after, stopped, message FROM runs ORDER BY run DESC LIMIT 1"
        ).fetchall()
        return RunRow(*rows[0]) if rows else None


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
