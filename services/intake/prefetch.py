"""Load every stream a batch of commands names in one query, instead of one query per stream."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.sqlite import SQLiteApplicationRecorder

from shared.pgstore import select_streams_statement


def select_streams(app: Application[UUID], ids: Iterable[UUID]) -> dict[UUID, list[StoredEvent]]:
    """Stored events of many streams, in version order, by stream."""
    wanted = list(dict.fromkeys(ids))
    found: dict[UUID, list[StoredEvent]] = defaultdict(list)
    if not wanted:
        return found
    recorder: Any = app.recorder
    if isinstance(recorder, PostgresApplicationRecorder):
        with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(select_streams_statement(recorder), (wanted,))
            rows = cursor.fetchall()
        for row in rows:
            found[row["originator_id"]].append(StoredEvent(
                originator_id=row["originator_id"], originator_version=row["originator_version"],
                topic=row["topic"], state=bytes(row["state"])))
        return found
    if isinstance(recorder, SQLiteApplicationRecorder):
        marks = ",".join("?" * len(wanted))
        statement = (f"SELECT originator_id, originator_version, topic, state FROM {recorder.events_table_name} "  # noqa: S608
                     f"WHERE originator_id IN ({marks}) ORDER BY originator_id, originator_version")
        with recorder.datastore.transaction(commit=False) as cursor:
            cursor.execute(statement, [i.hex for i in wanted])
            rows = cursor.fetchall()
        for row in rows:
            stream = UUID(str(recorder.convert_originator_id(row["originator_id"])))
            found[stream].append(StoredEvent(originator_id=stream, originator_version=row["originator_version"],
                                             topic=row["topic"], state=row["state"]))
        return found
    for stream in wanted:  # the in-memory store: no query to save
        events = recorder.select_events(stream)
        if events:
            found[stream] = list(events)
    return found


def load_aggregates(app: Application[UUID], ids: Iterable[UUID]) -> dict[UUID, Any | None]:
    """The current state of each stream (None for a stream that does not exist)."""
    wanted = list(dict.fromkeys(ids))
    return aggregates_from(app, wanted, select_streams(app, wanted))


def aggregates_from(app: Application[UUID], wanted: Iterable[UUID],
                    streams: dict[UUID, list[StoredEvent]]) -> dict[UUID, Any | None]:
    """Each wanted stream's aggregate rebuilt from its stored events (None where it has none)."""
    loaded: dict[UUID, Any | None] = dict.fromkeys(wanted)
    for stream, stored in streams.items():
        aggregate = None
        for record in stored:
            event: Any = app.mapper.to_domain_event(record)
            aggregate = event.mutate(aggregate)
        loaded[stream] = aggregate
    return loaded
