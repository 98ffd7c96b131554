"""Look straight into the intake event store, to count what was really recorded."""

from __future__ import annotations

import contextlib
import sqlite3
from collections import Counter
from typing import Any
from uuid import UUID

import psycopg

from shared.store import eventsourcing_env


def _rows(database_url: str, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    """One read of the intake's events table: `{t}` names it, `?` marks a parameter.

    PostgreSQL keeps intake's events in casework_events; SQLite in stored_events, in the
    file the URL names (with originator ids as hex text). Before intake has made the table,
    the store holds nothing.
    """
    if database_url.startswith("sqlite:"):
        path = eventsourcing_env(database_url, cipher_key="")["SQLITE_DBNAME"]
        with contextlib.closing(sqlite3.connect(path, timeout=30)) as conn:
            try:
                return conn.execute(statement.format(t="stored_events"), params).fetchall()
            except sqlite3.OperationalError as error:
                if "no such table" in str(error):
                    return []
                raise
    with psycopg.connect(database_url) as conn:
        try:
            return conn.execute(statement.format(t="casework_events").replace("?", "%s"), params).fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def event_counts(database_url: str) -> Counter[str]:
    """Recorded events by type name (e.g. 'Complaint.Received'), from the database itself."""
    rows = _rows(database_url, "SELECT topic, count(*) FROM {t} GROUP BY topic")
    return Counter({topic.split(":")[-1]: count for topic, count in rows})


def stream_event_counts(database_url: str) -> Counter[tuple[UUID, str]]:
    """Recorded events by stream and type name: how often each stream holds each kind of event."""
    rows = _rows(database_url, "SELECT originator_id, topic, count(*) FROM {t} GROUP BY originator_id, topic")
    return Counter({(UUID(str(stream)), topic.split(":")[-1]): count for stream, topic, count in rows})


def received_streams(database_url: str) -> int:
    rows = _rows(database_url, "SELECT count(DISTINCT originator_id) FROM {t} WHERE topic LIKE ?",
                 "%Complaint.Received")
    return int(rows[0][0]) if rows else 0


def event_ids(database_url: str) -> set[str]:
    """The message id the relay gives each recorded event (`<stream_id>:<version>`): what a tap must hold."""
    rows = _rows(database_url, "SELECT originator_id, originator_version FROM {t}")
    return {f"{UUID(str(stream))}:{version}" for stream, version in rows}


def inserts_waiting(database_url: str, table: str = "casework_events") -> int:
    """Sessions waiting for a lock on an events table (intake's by default): a batch's insert held mid-commit."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = %s::regclass",
                           (table,)).fetchone()
    return int(row[0]) if row else 0
