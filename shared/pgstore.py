"""A PostgreSQL recorder that inserts events with binary arrays instead of composite text."""

from __future__ import annotations

import contextlib
import os
import socket
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import IntegrityError, Notification, ProgrammingError, StoredEvent, Tracking
from eventsourcing.postgres import PostgresAggregateRecorder, PostgresApplicationRecorder, PostgresTrackingRecorder
from psycopg import Cursor
from psycopg.rows import DictRow
from psycopg.sql import SQL, Composable, Composed, Identifier, Literal

from shared.store import SCHEMA_LOCK, pg_connection_args


def events_table(recorder: PostgresApplicationRecorder) -> Identifier:
    """The recorder's events table, with its schema, for the statements built here."""
    return Identifier(recorder.datastore.schema or "public", recorder.events_table_name)


def select_streams_statement(recorder: PostgresApplicationRecorder) -> str:
    """Every stored event of the streams in one array parameter, by stream and version."""
    return SQL(
        "SELECT originator_id, originator_version, topic, state FROM {table} "
        "WHERE originator_id = ANY(%s) ORDER BY originator_id, originator_version"
    ).format(table=events_table(recorder)).as_string()


def insert_from_arrays(recorder: PostgresApplicationRecorder, arrays: str) -> str:
    """The insert of a batch given as four arrays (stream, version, topic, state), returning
    the notification ids; `arrays` names them, as parameters or as a function's arguments."""
    return SQL(
        "INSERT INTO {table} (originator_id, originator_version, topic, state) "
        "SELECT * FROM unnest({arrays}) RETURNING notification_id"
    ).format(table=events_table(recorder), arrays=SQL(arrays)).as_string()


def insert_arrays(stored_events: Sequence[StoredEvent]) -> tuple[list[Any], ...]:
    """The four column arrays `binary_insert_statement` takes."""
    return ([e.originator_id for e in stored_events], [e.originator_version for e in stored_events],
            [e.topic for e in stored_events], [e.state for e in stored_events])


def quiet_if_exists(statement: Composed) -> Composed:
    """A `CREATE TYPE` that does nothing, and logs nothing, when the type exists.

    PostgreSQL has no `CREATE TYPE IF NOT EXISTS`. The library runs the statement in a
    transaction of its own and ignores the error, which the server still writes to its log
    as an ERROR on every start of every service. Caught inside a block, it is not logged; a
    second process creating the type at the same moment fails on the catalogue's unique
    index instead, which is caught as well.
    """
    if "CREATE TYPE" not in statement.as_string():
        return statement
    return SQL("DO $casework$ BEGIN {}; EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; "
               "END $casework$").format(statement)


class QuietAggregateRecorder(PostgresAggregateRecorder):
    """The library's aggregate recorder, its tables and type created without an ERROR in the server's log.

    Used as it is for audit's snapshots, and as the base of intake's events recorder.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sql_create_statements = [quiet_if_exists(statement) for statement in self.sql_create_statements]


class BinaryInsertRecorder(QuietAggregateRecorder, PostgresApplicationRecorder):
    """Same table, lock, NOTIFY and returned notification ids as the library's recorder.

    The library sends a batch as an array of a composite type, which psycopg renders as
    escaped text in Python (a regex substitution per event); four typed arrays in binary
    cost a fraction of that.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Rendered once: psycopg renders a composed statement again on every execute.
        self.binary_insert_statement = insert_from_arrays(self, "%b::uuid[], %b::bigint[], %b::text[], %b::bytea[]")
        self.rendered_lock_statements: list[str] = [
            statement.as_string() if isinstance(statement, Composable)
            else statement.decode() if isinstance(statement, bytes) else str(statement)
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
        curs.execute(self.binary_insert_statement, insert_arrays(stored_events), binary=True)


class QuietTrackingRecorder(PostgresTrackingRecorder):
    """The library's tracking recorder, without the failing probe on a fresh database.

    Before creating its table, the library reads the table's migration row, and takes the
    error that a missing table raises as "not there yet"; PostgreSQL logs that as an ERROR
    at every service's first start. Here the catalogue is asked first, and when the table
    is missing the probe is skipped, which is what its failure would have led to.
    """

    def create_table(self) -> None:
        if self.table_exists():
            super().create_table()
        else:
            super(PostgresTrackingRecorder, self).create_table()  # what follows the failed probe

    def table_exists(self) -> bool:
        with self.datastore.transaction(commit=False) as curs:
            curs.execute("SELECT to_regclass(%s) IS NOT NULL AS present",
                         (Identifier(self.datastore.schema or "public", self.tracking_table_name).as_string(),))
            row = curs.fetchone()
        return bool(row and row["present"])


class OwnAsyncConnection:
    """An asyncio connection of one's own, opened on first use and after any failure.

    On the event loop a round trip costs only its wait. In a thread, each one first had to
    win the interpreter back from the busy event loop.
    """

    def __init__(self, env: dict[str, str]) -> None:
        self.connect_args = pg_connection_args(env)
        self.connection: psycopg.AsyncConnection[Any] | None = None

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self.connection is None or self.connection.closed:
            self.connection = await psycopg.AsyncConnection.connect(
                **self.connect_args, autocommit=True)  # type: ignore[arg-type]
        return self.connection

    @contextlib.asynccontextmanager
    async def _using(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """The connection; dropped after any failure but a conflict, so the next call reconnects."""
        conn = await self._connect()
        try:
            yield conn
        except IntegrityError:  # a conflict leaves the connection as it was
            raise
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self.connection is not None:
            with contextlib.suppress(psycopg.Error):
                await self.connection.close()
            self.connection = None


def insert_function(recorder: BinaryInsertRecorder) -> tuple[str, str]:
    """A function that takes the recorder's table lock, notifies, and inserts a batch.

    Returns the statement that creates (or replaces) it and the statement that calls it.
    Called on an autocommitted connection, lock, NOTIFY, insert and commit are one round
    trip instead of three; the lock statements are the library's own, rendered.
    """
    name = Identifier(recorder.datastore.schema or "public", f"{recorder.events_table_name}_insert_batch")
    body = " ".join([
        "BEGIN",
        *(f"{statement};" for statement in recorder.rendered_lock_statements),
        SQL("PERFORM pg_notify({channel}, payload);").format(channel=Literal(recorder.channel_name)).as_string(),
        SQL("RETURN QUERY WITH inserted AS ({insert}) SELECT notification_id FROM inserted;").format(
            insert=SQL(insert_from_arrays(recorder, "ids, versions, topics, states"))).as_string(),
        "END",
    ])
    create = SQL(
        "CREATE OR REPLACE FUNCTION {name}(ids uuid[], versions bigint[], topics text[], states bytea[], "
        "payload text) RETURNS SETOF bigint LANGUAGE plpgsql AS {body}"
    ).format(name=name, body=Literal(body)).as_string()
    call = SQL("SELECT * FROM {name}(%b::uuid[], %b::bigint[], %b::text[], %b::bytea[], %b::text)").format(
        name=name).as_string()
    return create, call


class AsyncEventWriter(OwnAsyncConnection):
    """A recorder's reads of whole streams and its inserts, on an asyncio connection of their own.

    The same table lock, NOTIFY and insert returning the notification ids as
    `BinaryInsertRecorder`, so the two can be used side by side on one database; here they
    run in a function of the database (`insert_function`), created on first use.
    """

    def __init__(self, recorder: BinaryInsertRecorder, env: dict[str, str]) -> None:
        super().__init__(env)
        self.recorder = recorder
        self.select_statement = select_streams_statement(recorder)
        self.create_function_statement, self.insert_statement = insert_function(recorder)
        self.function_checked_on: psycopg.AsyncConnection[Any] | None = None

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        """The connection, with the insert function created or replaced once per connection."""
        conn = await super()._connect()
        if self.function_checked_on is not conn:
            async with conn.transaction():  # one creator at a time: concurrent replaces collide
                await conn.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                await conn.execute(self.create_function_statement)
            self.function_checked_on = conn
        return conn

    async def select_streams(self, ids: Sequence[UUID]) -> dict[UUID, list[StoredEvent]]:
        """Stored events of many streams, in version order, by stream."""
        found: dict[UUID, list[StoredEvent]] = defaultdict(list)
        if not ids:
            return found
        async with self._using() as conn:
            cursor = await conn.execute(self.select_statement, (list(ids),))
            rows = await cursor.fetchall()
        for originator_id, version, topic, state in rows:
            found[originator_id].append(StoredEvent(
                originator_id=originator_id, originator_version=version, topic=topic, state=bytes(state)))
        return found

    async def insert(self, stored_events: Sequence[StoredEvent]) -> list[int]:
        """Insert in one transaction under the recorder's table lock; returns the notification ids.

        A stream version that already exists raises the library's `IntegrityError`.
        """
        if not stored_events:
            return []
        async with self._using() as conn:
            try:
                cursor = await conn.execute(
                    self.insert_statement, (*insert_arrays(stored_events), self.recorder.notify_payload),
                    binary=True)
            except psycopg.errors.UniqueViolation as error:
                raise IntegrityError(error) from error
            ids = [row[0] for row in await cursor.fetchall()]
        if len(ids) != len(stored_events):
            raise ProgrammingError(f"inserted {len(stored_events)} events but got {len(ids)} notification ids")
        return ids


class AsyncPositionWriter(OwnAsyncConnection):
    """Saves a follower's position with the tracking recorder's own statement, on an asyncio connection.

    One autocommitted upsert that only ever raises the saved position, as the recorder's
    `insert_tracking` does in a transaction of its own (single-row tracking). It does not
    wait for the disk: a position the database loses in a crash was behind what it held, and
    a position behind means repeats, which the contract allows, never a gap. At 1,000
    commands/s that is a tenth fewer flushes for the commits of events to wait behind.
    """

    def __init__(self, recorder: PostgresTrackingRecorder, env: dict[str, str]) -> None:
        super().__init__(env)
        self.connect_args["options"] = "-c synchronous_commit=off"
        if not recorder.datastore.single_row_tracking:
            raise ProgrammingError("the asyncio position writer needs single-row tracking")
        self.statement = recorder.insert_tracking_statement.as_string()

    async def save(self, tracking: Tracking) -> None:
        """Raises the library's `IntegrityError` when the saved position is already at or past it."""
        async with self._using() as conn:
            cursor = await conn.execute(self.statement, {"application_name": tracking.application_name,
                                                         "notification_id": tracking.notification_id})
            if await cursor.fetchone() is None:
                raise IntegrityError(f"the saved position of {tracking.application_name} is already at or "
                                     f"past {tracking.notification_id}")


class AsyncNotificationReader(OwnAsyncConnection):
    """Reads a page of an application's notification log on the event loop.

    The same statement as the recorder's `select_notifications(start, limit)`: the rows from
    `start` on, in notification order. A relay in a process of its own reads every page it
    publishes; in a thread, each read cost a hand-over to the pool and back, and a fifth of
    that process's samples at 1,000 commands/s.
    """

    def __init__(self, recorder: PostgresApplicationRecorder, env: dict[str, str]) -> None:
        super().__init__(env)
        self.statement = SQL(
            "SELECT notification_id, originator_id, originator_version, topic, state FROM {table} "
            "WHERE notification_id>=%s ORDER BY notification_id LIMIT %s"
        ).format(table=events_table(recorder)).as_string()

    async def select(self, start: int, limit: int) -> list[Notification]:
        async with self._using() as conn:
            cursor = await conn.execute(self.statement, (start, limit), prepare=True)
            return [Notification(id=row[0], originator_id=row[1], originator_version=row[2], topic=row[3],
                                 state=bytes(row[4])) for row in await cursor.fetchall()]
