"""Turn CASEWORK_DATABASE_URL into the eventsourcing library's persistence settings."""

from __future__ import annotations

import binascii
import contextlib
import fcntl
import os
import sqlite3
from base64 import b64decode
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from eventsourcing.application import Application, ProcessingEvent

CIPHER_TOPIC = "eventsourcing.cipher:AESCipher"


class CipherKeyError(ValueError):
    """Raised when a cipher key is not base64 of 16, 24 or 32 bytes (an AES key)."""


def check_cipher_key(key: str) -> str:
    try:
        raw = b64decode(key.encode(), validate=True)
    except (binascii.Error, ValueError) as error:
        raise CipherKeyError("CASEWORK_CIPHER_KEY is not base64") from error
    if len(raw) not in (16, 24, 32):
        raise CipherKeyError(f"CASEWORK_CIPHER_KEY holds {len(raw)} bytes; an AES key has 16, 24 or 32")
    return key


def cipher_env(cipher_key: str | None, application: str = "casework") -> dict[str, str]:
    """eventsourcing settings that make an Application encrypt what it stores, or not at all."""
    # eventsourcing reads "<APP>_CIPHER_KEY" before "CIPHER_KEY", from os.environ too: only
    # the prefixed names override what the process environment holds (CASEWORK_CIPHER_KEY
    # *is* that prefixed name for the application called "casework").
    prefix = application.upper() + "_"
    if not cipher_key:
        return {f"{prefix}CIPHER_TOPIC": "", f"{prefix}CIPHER_KEY": ""}
    check_cipher_key(cipher_key)
    return {f"{prefix}CIPHER_TOPIC": CIPHER_TOPIC, f"{prefix}CIPHER_KEY": cipher_key}


class DatabaseUrlError(ValueError):
    """Raised when CASEWORK_DATABASE_URL names no store casework can use."""


def sqlite_file(database_url: str) -> Path:
    """The file of `sqlite:///PATH` (relative to the current directory) or `sqlite:////PATH` (absolute).

    Anything else after `sqlite:` is refused: `sqlite:var/x.db` would lose its first
    character to the slash dropped here, and `sqlite://var/x.db` names a host, `var`.
    """
    _, _, rest = database_url.partition(":")
    path = unquote(urlsplit(database_url).path)[1:]
    if not rest.startswith("///") or not path:
        raise DatabaseUrlError(f"{database_url!r}: a SQLite URL is sqlite:///PATH (relative to the current "
                               "directory) or sqlite:////PATH (absolute), e.g. sqlite:///var/casework.sqlite3")
    return Path(path)


def eventsourcing_env(
    database_url: str, application: str = "casework", cipher_key: str | None = None
) -> dict[str, str]:
    """Settings for one eventsourcing Application, encrypted at rest when a cipher key is set.

    `cipher_key` None means CASEWORK_CIPHER_KEY from the environment, so every writer and
    reader of a store agrees without being told; "" means no encryption.

    PostgreSQL keeps each application in its own tables (named after it); SQLite keeps
    each in its own file beside the one named, since its recorder's table name is fixed.
    `memory:` keeps everything in the process (the demo and fast unit tests).
    """
    key = os.environ.get("CASEWORK_CIPHER_KEY") if cipher_key is None else cipher_key
    persistence = _persistence(database_url, application)
    if "SQLITE_DBNAME" in persistence:
        Path(persistence["SQLITE_DBNAME"]).parent.mkdir(parents=True, exist_ok=True)
    return {**persistence, **cipher_env(key, application)}


class StoreNotFound(LookupError):
    """Raised when a command that only reads is pointed at a store that does not exist (it creates none)."""


class StoreUnreachable(ConnectionError):
    """Raised when the PostgreSQL server or database of CASEWORK_DATABASE_URL does not answer."""


def _postgres(env: dict[str, str]) -> str:
    return f"PostgreSQL database {env['POSTGRES_DBNAME']} at {env['POSTGRES_HOST']}:{env['POSTGRES_PORT']}"


def require_store(database_url: str, application: str = "casework", table: str | None = None) -> None:
    """Refuse a store that is not there, rather than create an empty one and report on nothing.

    The store is there when its file or database holds `table`: the application's events
    table by default (`stored_events` in SQLite, `<application>_events` in PostgreSQL).
    """
    env = _persistence(database_url, application)
    if "SQLITE_DBNAME" in env:
        file = Path(env["SQLITE_DBNAME"])
        where = "" if file.is_absolute() else f" (a relative path is taken from the current directory, {Path.cwd()})"
        if not file.is_file():
            raise StoreNotFound(f"no store at {database_url}: {file} does not exist{where}")
        with contextlib.closing(sqlite3.connect(f"{file.resolve().as_uri()}?mode=ro", uri=True)) as db:
            found = db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?",
                               (table or "stored_events",)).fetchone()
        if not found:
            raise StoreNotFound(f"no store at {database_url}: {file} holds no table {table or 'stored_events'}{where}")
    elif "POSTGRES_DBNAME" in env:
        wanted = table or f"{application}_events"
        try:
            with psycopg.connect(**pg_connection_args(env)) as conn:  # type: ignore[arg-type]
                [(found,)] = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (wanted,)).fetchall()
        except psycopg.OperationalError as error:
            raise StoreUnreachable(f"{_postgres(env)}: {error}") from None
        if not found:
            raise StoreNotFound(f"no store at {database_url}: {_postgres(env)} has no table {wanted} "
                                "(casework creates it when its services first run)")


def pg_connection_args(env: dict[str, str]) -> dict[str, object]:
    """psycopg's connection arguments for a store's settings (see `eventsourcing_env`)."""
    return {"dbname": env["POSTGRES_DBNAME"], "host": env["POSTGRES_HOST"], "port": env["POSTGRES_PORT"],
            "user": env["POSTGRES_USER"], "password": env.get("POSTGRES_PASSWORD", ""), "connect_timeout": 10}


SCHEMA_LOCK = 0x6361736573636865  # one advisory lock for every casework process creating tables


@contextlib.contextmanager
def creating_tables(env: dict[str, str]) -> Iterator[None]:
    """While inside, no other casework process creates tables in the same store.

    Processes starting together on a fresh store (two intake replicas, or intake and its
    relay) race: on PostgreSQL on `CREATE TABLE IF NOT EXISTS` and on the types and
    functions it creates, on SQLite on the first record of the library's tracking table,
    which only one of them can insert. An advisory lock, or a lock on a file beside
    SQLite's, makes them take turns.
    """
    module = env.get("PERSISTENCE_MODULE")
    if module == "eventsourcing.postgres":
        try:
            conn = psycopg.connect(**pg_connection_args(env), autocommit=True)  # type: ignore[arg-type]
        except psycopg.OperationalError as error:
            raise StoreUnreachable(f"{_postgres(env)}: {error}") from None
        with conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            try:
                yield
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
    elif module == "eventsourcing.sqlite":
        with Path(f"{env['SQLITE_DBNAME']}.tables.lock").open("wb") as file:
            fcntl.flock(file, fcntl.LOCK_EX)  # released when the file is closed
            yield
    else:
        yield


def open_application(init: Callable[[], None], env: dict[str, str]) -> None:
    """Run an Application's `__init__`, which creates its tables, one process at a time."""
    with creating_tables(env):
        init()


def save_aggregates(app: Application[Any], aggregates: Iterable[Any]) -> None:
    """`Application.save` for aggregates only: the library's own checks each object against
    runtime protocols, which cost more than the rest of collecting their events."""
    processing: ProcessingEvent[Any] = ProcessingEvent()
    for aggregate in aggregates:
        processing.events.extend(aggregate.collect_events())
        processing.aggregates[aggregate.id] = aggregate
    recordings = app._record(processing)
    app._take_snapshots(processing)
    app._notify(recordings)


def _persistence(database_url: str, application: str) -> dict[str, str]:
    if database_url in ("memory:", "memory://"):
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        file = sqlite_file(database_url)
        if application != "casework":
            file = file.with_name(f"{file.stem}-{application}{file.suffix}")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.sqlite",
            "SQLITE_DBNAME": str(file),
            "SQLITE_LOCK_TIMEOUT": "30",
        }
    if parts.scheme in ("postgresql", "postgres"):
        if not parts.hostname or not parts.path.strip("/"):
            raise DatabaseUrlError(f"{database_url!r}: expected postgresql://USER@HOST:PORT/DB")
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": unquote(parts.path.strip("/")),
            "POSTGRES_HOST": parts.hostname,
            "POSTGRES_PORT": str(parts.port or 5432),
            "POSTGRES_USER": unquote(parts.username or "postgres"),
            "POSTGRES_PASSWORD": unquote(parts.password or ""),
            "POSTGRES_CONNECT_TIMEOUT": "5",
            "POSTGRES_POOL_SIZE": "4",
            "POSTGRES_MAX_OVERFLOW": "4",
            "POSTGRES_LOCK_TIMEOUT": "10",
            "APPLICATION_RECORDER_TOPIC": "shared.pgstore:BinaryInsertRecorder",
            "TRACKING_RECORDER_TOPIC": "shared.pgstore:QuietTrackingRecorder",
        }
    raise DatabaseUrlError(
        f"{database_url!r}: CASEWORK_DATABASE_URL must be sqlite:///PATH, postgresql://USER@HOST:PORT/DB or memory:"
    )
