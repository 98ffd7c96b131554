"""Key rotation for customer data at rest: re-encrypt every stored record under a new key."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from eventsourcing.cipher import AESCipher
from eventsourcing.utils import Environment

from casework.audit import check_cipher_key
from shared.store import eventsourcing_env, pg_connection_args

PAGE = 500


def _cipher(key: str | None) -> AESCipher | None:
    return AESCipher(Environment("", {"CIPHER_KEY": check_cipher_key(key)})) if key else None


@contextmanager
def _tables(database_url: str) -> Iterator[tuple[Any, list[str], str]]:
    """A connection in one transaction, the tables holding records, and its parameter mark."""
    env = eventsourcing_env(database_url, "casework")
    if env["PERSISTENCE_MODULE"] == "eventsourcing.sqlite":
        lite = sqlite3.connect(env["SQLITE_DBNAME"], timeout=30)
        try:
            yield lite, ["stored_events"], "?"
            lite.commit()
        finally:
            lite.close()
        return
    if env["PERSISTENCE_MODULE"] != "eventsourcing.postgres":
        raise ValueError("an in-memory store has nothing at rest to re-encrypt")
    import psycopg

    with psycopg.connect(**pg_connection_args(env)) as connection:  # type: ignore[arg-type]
        tables = [t for (t,) in connection.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename IN ('casework_events', 'casework_audit_snapshots')")]
        for table in tables:
            # Writers wait until the whole store is under one key.
            connection.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        yield connection, sorted(tables), "%s"


def _reencrypt(connection: Any, table: str, mark: str, old: AESCipher | None,
               new: AESCipher | None) -> int:
    rows = connection.execute(f"SELECT originator_id, originator_version, state FROM {table}").fetchall()  # noqa: S608
    count = 0
    for start in range(0, len(rows), PAGE):
        batch = rows[start:start + PAGE]
        updates = []
        for stream, version, state in batch:
            plain = old.decrypt(bytes(state)) if old else bytes(state)
            updates.append((new.encrypt(plain) if new else plain, stream, version))
        cursor = connection.cursor()
        cursor.executemany(f"UPDATE {table} SET state = {mark} WHERE originator_id = {mark} "  # noqa: S608
                           f"AND originator_version = {mark}", updates)
        count += len(updates)
    return count


def rekey(database_url: str, old_key: str | None, new_key: str | None) -> dict[str, int]:
    """Re-encrypt events and audit snapshots from old_key to new_key (None: plaintext), atomically.

    Hashes cover the plaintext, so the chains and signed checkpoints stay valid.
    """
    old, new = _cipher(old_key), _cipher(new_key)
    counts: dict[str, int] = {}
    with _tables(database_url) as (connection, tables, mark):
        for table in tables:
            counts[table] = _reencrypt(connection, table, mark, old, new)
    snapshots = eventsourcing_env(database_url, "casework_audit").get("SQLITE_DBNAME")
    if snapshots and Path(snapshots).exists():
        connection = sqlite3.connect(snapshots, timeout=30)
        try:
            exists = connection.execute("SELECT name FROM sqlite_master WHERE name = "
                                        "'stored_snapshots'").fetchone()
            if exists:
                counts["snapshots"] = _reencrypt(connection, "stored_snapshots", "?", old, new)
            connection.commit()
        finally:
            connection.close()
    return counts
