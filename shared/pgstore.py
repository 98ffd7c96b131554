"""A PostgreSQL recorder that inserts events with binary arrays instead of composite text."""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from typing import Any

from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Identifier


class BinaryInsertRecorder(PostgresApplicationRecorder):
    """Same table, lock, NOTIFY and returned notification ids as the library's recorder.

    The library sends a batch as an array of a composite type, which psycopg renders as
    escaped text in Python (a regex substitution per event); four typed arrays in binary
    cost a fraction of that.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Rendered once: psycopg renders a composed statement again on every execute.
        self.binary_insert_statement = SQL(
            "INSERT INTO {schema}.{table} (originator_id, originator_version, topic, state) "
            "SELECT * FROM unnest(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]) "
            "RETURNING notification_id"
        ).format(schema=Identifier(self.datastore.schema), table=Identifier(self.events_table_name)).as_string()
        self.rendered_lock_statements = [
            statement.as_string() if isinstance(statement, Composable) else statement
            for statement in self.lock_table_statements]
        # The payload names the writer, so a relay in the same process, which is handed the
        # events directly, can skip the wake-up its own commits cause.
        self.notify_payload = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.notify_statement = SQL("NOTIFY {0}, {1}").format(
            Identifier(self.channel_name), self.notify_payload).as_string()

    def _insert_stored_events(self, curs: Cursor[DictRow], stored_events: Sequence[StoredEvent], **_: Any) -> None:
        for statement in self.rendered_lock_statements:  # the library's _lock_table, pre-rendered
            curs.execute(statement, prepare=True)
        curs.execute(self.notify_statement)
        curs.execute(
            self.binary_insert_statement,
            (
                [e.originator_id for e in stored_events],
                [e.originator_version for e in stored_events],
                [e.topic for e in stored_events],
                [e.state for e in stored_events],
            ),
            binary=True,
        )
