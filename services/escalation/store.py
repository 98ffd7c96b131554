"""The clock store: one row per case, indexed by its next due time; SQLite embedded, PostgreSQL in production."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg_pool import ConnectionPool

from shared.store import DatabaseUrlError, StoreUnreachable, require_store, sqlite_file

SCHEMA_LOCK = 0x6573636C61746531  # "esclate1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS escalation_clocks (
        case_id TEXT PRIMARY KEY, rev BIGINT NOT NULL, version BIGINT NOT NULL,
        due_us BIGINT, branch_id TEXT NOT NULL, state TEXT NOT NULL)""",
    # Partial: closed and idle cases never enter the index the scheduler reads.
    """CREATE INDEX IF NOT EXISTS escalation_clocks_due ON escalation_clocks (due_us)
        WHERE due_us IS NOT NULL""",
    """CREATE TABLE IF NOT EXISTS escalation_policies (
        since_us BIGINT NOT NULL, version TEXT NOT NULL, document TEXT NOT NULL,
        PRIMARY KEY (since_us, version))""",
)


def to_us(moment: datetime) -> int:
    return (moment - _EPOCH) // _US


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


@dataclass(frozen=True)
class Row:
    """A stored clock: its revision guards concurrent writers."""

    case_id: str
    rev: int
    state: str


@dataclass(frozen=True)
class Change:
    """A clock to write if the row is still at `rev` (0: the row must not exist yet)."""

    case_id: str
    rev: int
    version: int
    due: datetime | None
    branch_id: str
    state: str


class ClockStore:
    """Shared SQL; subclasses bring the connection and the placeholder style."""

    placeholder = "?"

    def _sql(self, text: str) -> str:
        return text.replace("?", self.placeholder)

    def _run(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        raise NotImplementedError

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        """Run statements in one transaction; return each one's row count."""
        raise NotImplementedError

    def load(self, case_ids: Sequence[str]) -> dict[str, Row]:
        rows: dict[str, Row] = {}
        for start in range(0, len(case_ids), 500):
            chunk = case_ids[start:start + 500]
            marks = ",".join("?" for _ in chunk)
            for case_id, rev, state in self._run(
                    # Only placeholders are interpolated; the ids travel as parameters.
                    f"SELECT case_id, rev, state FROM escalation_clocks WHERE case_id IN ({marks})",  # noqa: S608
                    chunk):
                rows[case_id] = Row(case_id, rev, state)
        return rows

    def save(self, changes: Sequence[Change]) -> list[str]:
        """Write every change whose row is unchanged since read; return the case ids that were not."""
        if not changes:
            return []
        statements: list[tuple[str, Sequence[Any]]] = []
        for c in changes:
            due = to_us(c.due) if c.due is not None else None
            if c.rev == 0:
                statements.append((
                    "INSERT INTO escalation_clocks (case_id, rev, version, due_us, branch_id, state) "
                    "VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT (case_id) DO NOTHING",
                    (c.case_id, c.version, due, c.branch_id, c.state)))
            else:
                statements.append((
                    "UPDATE escalation_clocks SET rev = rev + 1, version = ?, due_us = ?, branch_id = ?, "
                    "state = ? WHERE case_id = ? AND rev = ?",
                    (c.version, due, c.branch_id, c.state, c.case_id, c.rev)))
        counts = self._write(statements)
        return [c.case_id for c, count in zip(changes, counts, strict=True) if count != 1]

    def due(self, until: datetime, limit: int) -> list[Row]:
        """The earliest clocks due by `until`: an index range, never a scan of the open cases."""
        return [Row(*r) for r in self._run(
            "SELECT case_id, rev, state FROM escalation_clocks WHERE due_us IS NOT NULL AND due_us <= ? "
            "ORDER BY due_us LIMIT ?", (to_us(until), limit))]

    def next_due(self) -> datetime | None:
        rows = self._run("SELECT due_us FROM escalation_clocks WHERE due_us IS NOT NULL ORDER BY due_us LIMIT 1")
        return from_us(rows[0][0]) if rows else None

    def rows(self, page: int = 1000) -> Iterator[Row]:
        after = ""
        while True:
            batch = self._run("SELECT case_id, rev, state FROM escalation_clocks WHERE case_id > ? "
                              "ORDER BY case_id LIMIT ?", (after, page))
            if not batch:
                return
            yield from (Row(*r) for r in batch)
            after = batch[-1][0]

    def replace_all(self, changes: Sequence[Change]) -> None:
        """Swap every clock for the given ones in one transaction (a rebuild)."""
        self._write([("DELETE FROM escalation_clocks", ()), *(
            ("INSERT INTO escalation_clocks (case_id, rev, version, due_us, branch_id, state) "
             "VALUES (?, 1, ?, ?, ?, ?)",
             (c.case_id, c.version, to_us(c.due) if c.due else None, c.branch_id, c.state)) for c in changes)])

    def counts(self) -> tuple[int, int]:
        """(clocks, clocks with something due)."""
        [(total, due)] = self._run("SELECT count(*), count(due_us) FROM escalation_clocks")
        return int(total), int(due)

    def policies(self) -> list[tuple[datetime, str, str]]:
        return [(from_us(since), version, document) for since, version, document in self._run(
            "SELECT since_us, version, document FROM escalation_policies ORDER BY since_us")]

    def record_policy(self, since: datetime, version: str, document: str) -> None:
        self._write([("INSERT INTO escalation_policies (since_us, version, document) VALUES (?, ?, ?) "
                      "ON CONFLICT (since_us, version) DO NOTHING", (to_us(since), version, document))])

    def close(self) -> None:
        """Release connections."""


class SqliteClockStore(ClockStore):
    """One connection behind a lock: SQLite serialises writers anyway."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._write([(statement, ()) for statement in SCHEMA])

    def _run(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(text, tuple(params)).fetchall()

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                counts = [self._db.execute(text, tuple(params)).rowcount for text, params in statements]
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return counts

    def close(self) -> None:
        with self._lock:
            self._db.close()


class PostgresClockStore(ClockStore):
    """A small pool; each call is one short transaction."""

    placeholder = "%s"

    def __init__(self, url: str, max_size: int = 4) -> None:
        try:
            # The first connection is made here, so that an unreachable database says why at once.
            psycopg.connect(url, connect_timeout=5).close()
        except psycopg.OperationalError as error:
            parts = urlsplit(url)
            raise StoreUnreachable(f"the clock store, PostgreSQL database {parts.path.strip('/')} at "
                                   f"{parts.hostname}:{parts.port or 5432}: {error}") from None
        self.pool = ConnectionPool(url, min_size=1, max_size=max_size, open=True, timeout=10,
                                   check=ConnectionPool.check_connection, kwargs={"connect_timeout": 5})
        # Concurrent CREATE … IF NOT EXISTS can still collide in PostgreSQL's catalogue: serialise it.
        self._write([("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,)),
                     *((statement, ()) for statement in SCHEMA)])

    def _run(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self.pool.connection() as conn:
            return conn.execute(self._sql(text), tuple(params)).fetchall()

    def _write(self, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[int]:
        with self.pool.connection() as conn, conn.transaction():
            return [conn.execute(self._sql(text), tuple(params)).rowcount for text, params in statements]

    def copy_in(self, changes: Sequence[Change]) -> None:
        """Bulk-load new clocks (benchmarks and large rebuilds)."""
        with self.pool.connection() as conn, conn.cursor() as cursor, cursor.copy(
                "COPY escalation_clocks (case_id, rev, version, due_us, branch_id, state) FROM STDIN") as copy:
            for c in changes:
                copy.write_row((c.case_id, 1, c.version, to_us(c.due) if c.due else None, c.branch_id, c.state))

    def close(self) -> None:
        self.pool.close()


def store_location(database_url: str) -> str:
    """The clock store beside intake's: the same PostgreSQL database, or `<stem>-escalation.sqlite3`."""
    if database_url in ("memory:", "memory://"):
        return "sqlite://:memory:"
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        path = sqlite_file(database_url)
        return f"sqlite:///{path.with_name(f'{path.stem}-escalation{path.suffix}')}"
    if parts.scheme in ("postgresql", "postgres"):
        return database_url
    raise DatabaseUrlError(f"{database_url!r}: expected sqlite:///PATH, postgresql://USER@HOST:PORT/DB or memory:")


def require_clock_store(location: str) -> None:
    """Refuse a clock store that was never created (see `shared.store.require_store`)."""
    if location != "sqlite://:memory:":
        require_store(location, table="escalation_clocks")


def open_store(location: str) -> ClockStore:
    """A store for `sqlite:///PATH`, `sqlite://:memory:` or `postgresql://…`."""
    if location == "sqlite://:memory:":
        return SqliteClockStore(":memory:")
    parts = urlsplit(location)
    if parts.scheme == "sqlite":
        path = sqlite_file(location)
        path.parent.mkdir(parents=True, exist_ok=True)
        return SqliteClockStore(str(path))
    if parts.scheme in ("postgresql", "postgres"):
        return PostgresClockStore(location)
    raise DatabaseUrlError(f"{location!r}: the clock store is sqlite:///PATH or postgresql://…")
