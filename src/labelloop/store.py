"""The sync job's memory: one SQLite file, the only state kept between runs.

Every write happens inside one transaction (``with store.tx():``), so a process killed at
any instant leaves the file as it was before that step or after it, never in between.
Models are stored as plain arrays (``numpy.save`` without pickle). The schema carries its
version in ``PRAGMA user_version``; :data:`MIGRATIONS` brings an older file forward.
"""

from __future__ import annotations

import io
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from .errors import LabelloopError
from .labelstudio.annotations import AnnotationRecord, PullCursor, Resolution, resolve

__all__ = ["Store", "StoreError", "RoundRow", "SCHEMA_VERSION", "now"]

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
]
SCHEMA_VERSION = len(MIGRATIONS)


class StoreError(LabelloopError):
    """The state file cannot be used (not ours, newer than this labelloop, or another campaign's)."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _pack(arrays: dict[str, np.ndarray]) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)  # arrays only: loaded back with allow_pickle=False
    return buf.getvalue()


def _unpack(blob: bytes) -> dict[str, np.ndarray]:
    with np.load(io.BytesIO(blob), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


@dataclass(frozen=True)
class RoundRow:
    round: int
    model_version: str
    strategy: str
    n_labeled: int
    created_at: str
    train_labels: dict[str, str]
    metrics: dict[str, Any]
    model: dict[str, np.ndarray] | None
    stop_predictions: np.ndarray | None


class Store:
    """An open state file. Use :meth:`open` (creates or migrates) or :meth:`open_existing` (read-only use)."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self.conn = conn
        self.path = path

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
            return store.get("project_id") if store.conn.execute("PRAGMA user_version").fetchone()[0] else None

    @classmethod
    def _connect(cls, path: Path, create: bool, readonly: bool = False) -> Store:
        try:
            target = path.resolve().as_uri() + "?mode=ro" if readonly else str(path)
            conn = sqlite3.connect(target, isolation_level=None, timeout=30, uri=readonly)
            conn.row_factory = sqlite3.Row
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{path}: not a labelloop state file ({exc})") from None
        if version > SCHEMA_VERSION:
            raise StoreError(f"{path}: written by a newer labelloop (schema {version} > {SCHEMA_VERSION}); "
                             f"upgrade labelloop")
        if version == 0 and tables:
            raise StoreError(f"{path}: an SQLite file that is not a labelloop state file; choose another "
                             f"state.path")
        store = cls(conn, path)
        if not readonly:
            try:  # readers (status, report) never block a sync's commit
                conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.Error as exc:
                raise StoreError(f"{path}: cannot write the state file ({exc})") from None
        if version < SCHEMA_VERSION and not readonly:
            if not create:
                raise StoreError(f"{path}: schema {version} is older than {SCHEMA_VERSION}; run "
                                 f"`labelloop sync` to migrate it")
            with store.tx():
                for script in MIGRATIONS[version:]:
                    for statement in filter(str.strip, script.split(";")):
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        return store

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def tx(self) -> Iterator[sqlite3.Connection]:
        """One atomic step: everything inside lands together or not at all.

        SQLite's own failures (disk full, file not writable, locked too long) become one
        :class:`StoreError` line; the step is rolled back.
        """
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot write the state file ({exc})") from None
        try:
            yield self.conn
        except sqlite3.Error as exc:
            self.conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: cannot write the state file ({exc})") from None
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        try:
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.conn.execute("ROLLBACK")
            raise StoreError(f"{self.path}: cannot write the state file ({exc})") from None

    # -- meta -----------------------------------------------------------------------------------

    def get(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set(self, key: str, value: str) -> None:
        self.conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET "
                          "value = excluded.value", (key, value))

    # -- items ----------------------------------------------------------------------------------

    def items(self) -> dict[str, tuple[str, str]]:
        """our id -> (text hash, role)."""
        return {r["id"]: (r["text_hash"], r["role"]) for r in self.conn.execute(
            "SELECT id, text_hash, role FROM items")}

    def add_items(self, rows: Sequence[tuple[str, str, str, str]]) -> None:
        """Insert (id, text hash, source, role) rows."""
        at = now()
        self.conn.executemany("INSERT INTO items (id, text_hash, source, role, added_at) VALUES (?, ?, ?, ?, ?)",
                              [(*r, at) for r in rows])

    def ids_with_role(self, role: str) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT id FROM items WHERE role = ? ORDER BY rowid", (role,))]

    # -- annotations ----------------------------------------------------------------------------

    def records(self) -> list[AnnotationRecord]:
        rows = self.conn.execute("SELECT * FROM annotation_events ORDER BY seq").fetchall()
        return [AnnotationRecord(
            event=r["event"], id=r["item_id"], project=0, task_id=r["task_id"], annotation_id=r["annotation_id"],
            label=r["label"], skipped=bool(r["skipped"]), annotator=r["annotator"],
            annotator_email=r["annotator_email"], created_at=r["created_at"], updated_at=r["updated_at"],
            previous_label=r["previous_label"], task_deleted=bool(r["task_deleted"])) for r in rows]

    def cursor(self) -> PullCursor:
        return PullCursor.from_records(self.records(), self.get("scanned_at"))

    def add_records(self, run: int, records: Sequence[AnnotationRecord], scanned_at: str | None) -> None:
        """Append a pull and refresh the resolved labels (call inside :meth:`tx`)."""
        at = now()
        self.conn.executemany(
            "INSERT INTO annotation_events (run, event, item_id, task_id, annotation_id, label, skipped, annotator, "
            "annotator_email, created_at, updated_at, previous_label, task_deleted, pulled_at) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(run, r.event, r.id, r.task_id, r.annotation_id, r.label, int(r.skipped), r.annotator,
              r.annotator_email, r.created_at, r.updated_at, r.previous_label, int(r.task_deleted), at)
             for r in records])
        if scanned_at:
            self.set("scanned_at", scanned_at)
        if records:
            self.conn.execute("DELETE FROM labels")
            self.conn.executemany(
                "INSERT INTO labels (item_id, label, votes, skipped, disagreement, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(k, r.label, json.dumps(r.votes, sort_keys=True), r.skipped, int(r.disagreement), at)
                 for k, r in resolve(self.records()).items()])

    def resolutions(self) -> dict[str, Resolution]:
        """Every text with at least one live annotation (a label, a skip, or a tied vote)."""
        return {r["item_id"]: Resolution(r["item_id"], r["label"], json.loads(r["votes"]), r["skipped"],
                                         bool(r["disagreement"]))
                for r in self.conn.execute("SELECT * FROM labels")}

    # -- rounds ---------------------------------------------------------------------------------

    def add_round(self, round_: int, model_version: str, strategy: str, train_labels: dict[str, str],
                  metrics: dict[str, Any], model: dict[str, np.ndarray] | None,
                  stop_predictions: np.ndarray | None) -> None:
        self.conn.execute(
            "INSERT INTO rounds (round, model_version, strategy, n_labeled, created_at, train_labels, metrics, "
            "model, stop_predictions) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (round_, model_version, strategy, len(train_labels), now(), json.dumps(train_labels, sort_keys=True),
             json.dumps(metrics, sort_keys=True), None if model is None else _pack(model),
             None if stop_predictions is None else _pack({"p": stop_predictions})))

    def rounds(self) -> list[RoundRow]:
        return [RoundRow(
            r["round"], r["model_version"], r["strategy"], r["n_labeled"], r["created_at"],
            json.loads(r["train_labels"]), json.loads(r["metrics"]),
            None if r["model"] is None else _unpack(r["model"]),
            None if r["stop_predictions"] is None else _unpack(r["stop_predictions"])["p"])
            for r in self.conn.execute("SELECT * FROM rounds ORDER BY round")]

    def last_round(self) -> RoundRow | None:
        rows = self.rounds()
        return rows[-1] if rows else None

    # -- queries and pushes ---------------------------------------------------------------------

    def add_queries(self, rows: Sequence[dict[str, Any]]) -> None:
        at = now()
        self.conn.executemany(
            "INSERT INTO queries (item_id, round, kind, strategy, model_version, score, cluster, predicted, "
            "confidence, queried_at, status) VALUES (:item_id, :round, :kind, :strategy, :model_version, :score, "
            ":cluster, :predicted, :confidence, :queried_at, 'pending')",
            [{**r, "queried_at": at} for r in rows])

    def queries(self, status: str | None = None) -> list[dict[str, Any]]:
        sql = "SELECT * FROM queries" + (" WHERE status = ?" if status else "") + " ORDER BY rowid"
        return [dict(r) for r in self.conn.execute(sql, (status,) if status else ())]

    def mark_pushed(self, task_ids: dict[str, int], how: str = "pushed") -> None:
        """Record tasks that exist in Label Studio; their queries stop being pending."""
        at = now()
        for item_id, task_id in task_ids.items():
            q = self.conn.execute("SELECT round, model_version FROM queries WHERE item_id = ?", (item_id,)).fetchone()
            self.conn.execute(
                "INSERT INTO pushes (item_id, task_id, round, model_version, pushed_at, how) VALUES (?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (item_id) DO NOTHING",
                (item_id, task_id, None if q is None else q[0], None if q is None else q[1], at, how))
            self.conn.execute("UPDATE queries SET status = 'pushed' WHERE item_id = ?", (item_id,))

    def drop_pending(self, item_ids: Sequence[str]) -> None:
        """Forget selections that were never sent (the queue filled up meanwhile, or the text is gone)."""
        self.conn.executemany("DELETE FROM queries WHERE item_id = ? AND status = 'pending'",
                              [(i,) for i in item_ids])

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

    def runs(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.conn.execute("SELECT * FROM runs ORDER BY run")]
