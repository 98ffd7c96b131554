"""Turn CASEWORK_DATABASE_URL into the eventsourcing library's persistence settings."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit


class DatabaseUrlError(ValueError):
    """Raised when CASEWORK_DATABASE_URL names no store casework can use."""


def eventsourcing_env(database_url: str, application: str = "casework") -> dict[str, str]:
    """Settings for one eventsourcing Application.

    PostgreSQL keeps each application in its own tables (named after it); SQLite keeps
    each in its own file beside the one named, since its recorder's table name is fixed.
    `memory:` keeps everything in the process (the demo and fast unit tests).
    """
    if database_url in ("memory:", "memory://"):
        return {"PERSISTENCE_MODULE": "eventsourcing.popo"}
    parts = urlsplit(database_url)
    if parts.scheme == "sqlite":
        # sqlite:///var/x.db is relative, sqlite:////srv/x.db absolute: drop one slash.
        path = unquote(parts.path)[1:]
        if not path:
            raise DatabaseUrlError(f"{database_url!r}: a SQLite URL names a file, e.g. sqlite:///var/casework.sqlite3")
        file = Path(path)
        if application != "casework":
            file = file.with_name(f"{file.stem}-{application}{file.suffix}")
        file.parent.mkdir(parents=True, exist_ok=True)
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
        }
    raise DatabaseUrlError(
        f"{database_url!r}: CASEWORK_DATABASE_URL must be sqlite:///PATH, postgresql://USER@HOST:PORT/DB or memory:"
    )
