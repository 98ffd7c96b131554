"""One relay per store publishes: a PostgreSQL advisory lock, or a lock on a file beside SQLite's."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
from pathlib import Path
from typing import IO, Any

import psycopg
from eventsourcing.application import Application

from shared.store import pg_connection_args

STORE_KEYS = ("PERSISTENCE_MODULE", "SQLITE_DBNAME", "POSTGRES_DBNAME", "POSTGRES_HOST", "POSTGRES_PORT",
              "POSTGRES_USER", "POSTGRES_PASSWORD")


def store_settings(app: Application[Any]) -> dict[str, str]:
    return {key: value for key in STORE_KEYS if (value := app.env.get(key)) is not None}


class RelayLock:
    """Only one relay per store publishes; the others wait to take over."""

    def __init__(self, env: dict[str, str], name: str) -> None:
        self.env = env
        # One advisory lock key per relay name, so intake's and rewards' relays lead independently.
        self.key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:7], "big")
        self.name = name
        self._pg: psycopg.Connection[Any] | None = None
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        module = self.env.get("PERSISTENCE_MODULE", "")
        if module.endswith("postgres"):
            return self._try_postgres()
        if module.endswith("sqlite"):
            return self._try_file(Path(f"{self.env['SQLITE_DBNAME']}.{self.name}.lock"))
        return True

    def still_held(self) -> bool:
        if self._pg is None:
            return True
        try:
            self._pg.execute("SELECT 1")
        except psycopg.Error:
            self.release()
            return False
        return True

    def _try_postgres(self) -> bool:
        if self._pg is None or self._pg.closed:
            self._pg = psycopg.connect(**pg_connection_args(self.env), autocommit=True)  # type: ignore[arg-type]
        row = self._pg.execute("SELECT pg_try_advisory_lock(%s)", (self.key,)).fetchone()
        return bool(row and row[0])

    def _try_file(self, path: Path) -> bool:
        if self._file is None:
            self._file = path.open("wb")
        try:
            fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        if self._pg is not None:
            with contextlib.suppress(psycopg.Error):
                self._pg.close()
            self._pg = None
        if self._file is not None:
            self._file.close()
            self._file = None
