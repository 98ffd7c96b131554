"""Where the demo keeps its events, and the one stored record it alters behind intake's back."""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import psycopg
from psycopg import sql

from shared.store import DatabaseUrlError, eventsourcing_env, sqlite_file

# Tables the three services create; a store holding any of them is not the demo's to write in.
TABLES = ("casework_events", "rewards_events", "escalation_clocks")


class StoreUnusable(RuntimeError):
    """Raised when the demo cannot get a store of its own from the URL it was given."""


@dataclass(frozen=True)
class Store:
    """The store the story is played in, and what a newcomer should know about it."""

    url: str
    note: str
    scratch: Path | None = None


def scratch_store() -> Store:
    """Fresh SQLite files in a new temporary directory, kept so they can be looked at afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="casework-demo-"))
    return Store(f"sqlite:///{directory}/casework.sqlite3", f"SQLite files in {directory}", directory)


def given_store(database_url: str) -> Store:
    """The given store if it holds no casework data yet; otherwise a fresh one beside it."""
    stamp = datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        try:
            path = sqlite_file(database_url)
        except DatabaseUrlError as error:
            raise StoreUnusable(str(error)) from None
        if not path.exists():
            return Store(database_url, f"SQLite at {path}")
        beside = path.with_name(f"{path.stem}-demo-{stamp}{path.suffix}")
        return Store(f"sqlite:///{beside}", f"SQLite at {beside} ({path} already exists)")
    if parts.scheme not in ("postgresql", "postgres"):
        raise StoreUnusable(f"{database_url!r}: give a postgresql://USER@HOST:PORT/DB or sqlite:///PATH URL")
    name = parts.path.strip("/")
    try:
        with psycopg.connect(database_url, autocommit=True, connect_timeout=5) as conn:
            if not any(_exists(conn, table) for table in TABLES):
                return Store(database_url, f"PostgreSQL database {name} on {parts.hostname}")
            fresh = f"casework_demo_{stamp}"
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(fresh)))
    except psycopg.Error as error:
        raise StoreUnusable(f"PostgreSQL at {parts.hostname}: {error}".strip()) from error
    url = urlunsplit((parts.scheme, parts.netloc, "/" + fresh, parts.query, ""))
    return Store(url, f"PostgreSQL database {fresh} on {parts.hostname}, created for this run "
                      f"({name} already holds casework data; drop {fresh} when done)")


def _exists(conn: psycopg.Connection[Any], table: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()
    return bool(row and row[0])


@dataclass(frozen=True)
class Alteration:
    """One stored record changed in place: which, which field, from what to what."""

    stream_id: str
    version: int
    field: str
    before: str
    after: str


def alter_field(database_url: str, stream_id: str, version: int, field: str) -> Alteration:
    """Change the first digit of a string field in the stored JSON of one event: one byte, as a forger would."""
    marker = f'"{field}":"'.encode()
    env = eventsourcing_env(database_url, "casework", "")
    if env["PERSISTENCE_MODULE"].endswith("sqlite"):
        with contextlib.closing(sqlite3.connect(env["SQLITE_DBNAME"])) as db, db:
            key = (UUID(stream_id).hex, version)
            (state,) = db.execute("SELECT state FROM stored_events WHERE originator_id = ? AND originator_version = ?",
                                  key).fetchone()
            changed, alteration = _edit(bytes(state), marker, stream_id, version, field)
            db.execute("UPDATE stored_events SET state = ? WHERE originator_id = ? AND originator_version = ?",
                       (changed, *key))
        return alteration
    with psycopg.connect(database_url, autocommit=True) as conn:
        key2 = (UUID(stream_id), version)
        row = conn.execute("SELECT state FROM casework_events WHERE originator_id = %s AND originator_version = %s",
                           key2).fetchone()
        if row is None:
            raise StoreUnusable(f"no version {version} of stream {stream_id} in the store")
        changed, alteration = _edit(bytes(row[0]), marker, stream_id, version, field)
        conn.execute("UPDATE casework_events SET state = %s WHERE originator_id = %s AND originator_version = %s",
                     (changed, *key2))
    return alteration


def _edit(state: bytes, marker: bytes, stream_id: str, version: int, field: str) -> tuple[bytes, Alteration]:
    if marker not in state:  # encrypted at rest (CASEWORK_CIPHER_KEY): change one byte of ciphertext
        at = len(state) // 2
        changed = state[:at] + bytes([state[at] ^ 0x01]) + state[at + 1:]
        return changed, Alteration(stream_id, version, f"byte {at} of the encrypted record",
                                   f"{state[at]:02x}", f"{changed[at]:02x}")
    start = state.index(marker) + len(marker)
    end = state.index(b'"', start)
    before = state[start:end].decode()
    after = str((int(before[0]) + 7) % 10) + before[1:]
    return state[:start] + after.encode() + state[end:], Alteration(stream_id, version, field, before, after)
