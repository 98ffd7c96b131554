"""Intake's commits and the relay's position on PostgreSQL from the event loop: a race, outages."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any
from uuid import UUID

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, Tracking
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresTrackingRecorder

from services.intake.application import IntakeApplication
from shared.events import Outcome
from shared.pgstore import AsyncNotificationReader, AsyncPositionWriter, QuietTrackingRecorder
from shared.policy import load_policy
from shared.relay_lock import store_settings
from tests.unit.commands import submission

pytestmark = pytest.mark.integration

POLICY = load_policy()


def complaint(case_ref: str, message_id: str) -> Any:
    return submission("complaint.receive", {
        "branch_id": "GZ01", "case_ref": case_ref, "waybill_no": "WB1", "category": "shortage",
        "customer": {"name": "王先生", "phone": "13900000000"}, "description": "two cartons short",
    }, user="branch-GZ01", message_id=message_id)


async def test_two_writers_racing_for_one_case_make_one_stream(database_url: str) -> None:
    """Both read the case as new before either commits: the second commit conflicts, and its
    batch is decided again against what the first recorded."""
    first, second = IntakeApplication(POLICY, database_url), IntakeApplication(POLICY, database_url)
    both_read = asyncio.Barrier(2)
    for app in (first, second):
        assert app.writer is not None
        select = app.writer.select_streams

        async def select_then_wait(ids: Sequence[UUID], select: Any = select) -> Any:
            found = await select(ids)
            await both_read.wait()
            return found

        app.writer.select_streams = select_then_wait  # type: ignore[method-assign]
    try:
        outcomes: list[list[Outcome]] = await asyncio.gather(
            first.submit_async([complaint("RACE", "race-a"), complaint("OWN-A", "own-a")]),
            second.submit_async([complaint("RACE", "race-b"), complaint("OWN-B", "own-b")]))
    finally:
        for app in (first, second):
            await app.aclose()
    race = sorted((o[0].status, o[0].error.code if o[0].error else None) for o in outcomes)
    assert race == [("accepted", None), ("rejected", "case_exists")]
    assert [o[1].status for o in outcomes] == ["accepted", "accepted"], "the rest of the batch is kept"
    assert outcomes[0][0].stream_id == outcomes[1][0].stream_id
    with psycopg.connect(database_url) as conn:
        rows = conn.execute("SELECT originator_id, originator_version FROM casework_events "
                            "WHERE originator_id = %s", (outcomes[0][0].stream_id,)).fetchall()
    assert [version for _, version in rows] == [1], "the case was received once"
    first.close()
    second.close()


async def test_the_writer_reconnects_after_the_database_drops_its_connection(database_url: str) -> None:
    app = IntakeApplication(POLICY, database_url)
    assert app.writer is not None
    try:
        [accepted] = await app.submit_async([complaint("BEFORE", "before")])
        assert accepted.status == "accepted"
        backend = terminate(database_url, app.writer.connection)
        with pytest.raises(psycopg.OperationalError):
            await app.submit_async([complaint("DURING", "during")])
        [after] = await app.submit_async([complaint("DURING", "during")])  # the consumer retries so
        assert after.status == "accepted"
        assert app.writer.connection is not None and app.writer.connection.info.backend_pid != backend
    finally:
        await app.aclose()
        app.close()


@pytest.fixture
async def positions(database_url: str) -> AsyncIterator[tuple[IntakeApplication, PostgresTrackingRecorder,
                                                             AsyncPositionWriter]]:
    """Intake's application, its tracking recorder, and the relay's asyncio position writer."""
    app = IntakeApplication(POLICY, database_url)
    tracking = app.factory.tracking_recorder()
    assert isinstance(tracking, PostgresTrackingRecorder)
    writer = AsyncPositionWriter(tracking, store_settings(app))
    try:
        yield app, tracking, writer
    finally:
        await writer.close()
        await app.aclose()
        app.close()


def terminate(database_url: str, connection: psycopg.AsyncConnection[Any] | None) -> int:
    """Have PostgreSQL drop a connection, as a restart or a network fault would; returns its pid."""
    assert connection is not None
    backend = connection.info.backend_pid
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (backend,))
    return backend


async def test_the_relay_position_written_on_the_event_loop_is_the_one_the_library_reads(
        database_url: str, positions: tuple[IntakeApplication, PostgresTrackingRecorder, AsyncPositionWriter]) -> None:
    """The relay saves its position with the tracking recorder's own upsert: the library reads
    it back, it never goes down, and a dropped connection is opened again on the next save."""
    _, tracking, writer = positions
    await writer.save(Tracking("test.position", 7))
    await writer.save(Tracking("test.position", 9))
    assert tracking.max_tracking_id("test.position") == 9
    with pytest.raises(IntegrityError):
        await writer.save(Tracking("test.position", 8))
    assert tracking.max_tracking_id("test.position") == 9, "a saved position never goes back"
    terminate(database_url, writer.connection)
    with pytest.raises(psycopg.OperationalError):
        await writer.save(Tracking("test.position", 10))
    await writer.save(Tracking("test.position", 11))
    assert tracking.max_tracking_id("test.position") == 11


async def test_the_relay_reads_a_page_on_the_event_loop_as_the_library_reads_it(database_url: str) -> None:
    """The relay's own page read returns what the recorder's `select_notifications` returns,
    field for field and in order, and a dropped connection is opened again on the next read."""
    app = IntakeApplication(POLICY, database_url)
    assert isinstance(app.recorder, PostgresApplicationRecorder)
    reader = AsyncNotificationReader(app.recorder, store_settings(app))
    try:
        outcomes = await app.submit_async([complaint(f"PAGE-{i}", f"page-{i}") for i in range(6)])
        assert [o.status for o in outcomes] == ["accepted"] * 6
        library = app.recorder.select_notifications(3, 5)
        ours = await reader.select(3, 5)
        assert len(library) == 5
        assert [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in ours] == \
               [(n.id, n.originator_id, n.originator_version, n.topic, n.state) for n in library]
        assert await reader.select(10**9, 5) == []
        terminate(database_url, reader.connection)
        with pytest.raises(psycopg.OperationalError):
            await reader.select(1, 100)
        assert [n.id for n in await reader.select(1, 100)] == [n.id for n in app.recorder.select_notifications(1, 100)]
    finally:
        await reader.close()
        await app.aclose()
        app.close()


async def test_the_relay_position_alone_is_written_without_waiting_for_the_disk(
        positions: tuple[IntakeApplication, PostgresTrackingRecorder, AsyncPositionWriter]) -> None:
    """Losing the last position in a database crash only repeats events; losing events is never allowed."""
    app, _, writer = positions
    await writer.save(Tracking("test.position.async", 1))
    assert writer.connection is not None
    cursor = await writer.connection.execute("SHOW synchronous_commit")
    assert await cursor.fetchone() == ("off",)
    assert app.writer is not None
    await app.submit_async([complaint("SYNC", "sync")])
    assert app.writer.connection is not None
    cursor = await app.writer.connection.execute("SHOW synchronous_commit")
    assert await cursor.fetchone() == ("on",), "events are committed to disk before they are acked"


async def test_a_batch_insert_waits_for_the_table_lock_and_notifies_with_its_writer(database_url: str) -> None:
    """The insert function takes the library's table lock, which keeps notification ids visible
    in order for the relay, and notifies the channel the relay listens on, naming the writer."""
    app = IntakeApplication(POLICY, database_url)
    assert app.writer is not None
    try:
        await app.submit_async([complaint("FIRST", "first")])  # the function exists from here on
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as listener, \
                await psycopg.AsyncConnection.connect(database_url) as holder:
            await listener.execute(f'LISTEN "{app.recorder.channel_name}"')
            # ROW SHARE conflicts with the recorder's EXCLUSIVE lock, not with a plain INSERT.
            await holder.execute("LOCK TABLE casework_events IN ROW SHARE MODE")
            insert = asyncio.create_task(app.submit_async([complaint("LOCKED", "locked")]))
            await asyncio.sleep(0.5)
            assert not insert.done(), "the insert went ahead while another transaction held the lock"
            await holder.commit()
            [outcome] = await asyncio.wait_for(insert, 10)
            assert outcome.status == "accepted"
            notify = await asyncio.wait_for(anext(listener.notifies()), 5)
            assert notify.payload == app.recorder.notify_payload
    finally:
        await app.aclose()
        app.close()


async def test_a_batch_of_receives_is_decided_without_reading_and_its_repeats_still_found(database_url: str) -> None:
    """Receives only create streams, so their batch skips the read; a case or a command seen
    before collides on the insert's unique key and the batch is read and decided again."""
    app = IntakeApplication(POLICY, database_url)
    assert app.writer is not None
    reads: list[int] = []
    select = app.writer.select_streams

    async def counted(ids: Sequence[UUID]) -> Any:
        reads.append(len(ids))
        return await select(ids)

    app.writer.select_streams = counted  # type: ignore[method-assign]
    try:
        [first] = await app.submit_async([complaint("SEEN", "seen-1")])
        assert first.status == "accepted" and reads == [], "a batch of receives reads nothing"
        outcomes = await app.submit_async([
            complaint("NEW", "new-1"),     # new: accepted
            complaint("SEEN", "seen-2"),   # the case exists: rejected
            complaint("SEEN", "seen-1"),   # the same command again: its first answer
        ])
        assert [(o.status, o.error.code if o.error else None) for o in outcomes] == [
            ("accepted", None), ("rejected", "case_exists"), ("duplicate", None)]
        assert outcomes[2].stream_id == first.stream_id and outcomes[2].version == first.version
        with psycopg.connect(database_url) as conn:
            versions = conn.execute("SELECT originator_version FROM casework_events WHERE originator_id = %s",
                                    (first.stream_id,)).fetchall()
        assert versions == [(1,)], "the case was received once"
    finally:
        await app.aclose()
        app.close()


@pytest.mark.parametrize("store", ["intake's events", "audit's snapshots"])
def test_every_start_creates_the_event_type_without_an_error(database_url: str, store: str) -> None:
    """PostgreSQL logs each failed statement as an ERROR; the recorders' CREATE TYPE, run on
    every start of every service and every audit, must not fail when the type is already there."""
    from casework.audit_asof import AuditSnapshots

    app: Any = IntakeApplication(POLICY, database_url) if store == "intake's events" else AuditSnapshots(database_url)
    try:
        recorder = app.recorder if store == "intake's events" else app.snapshots.recorder
        if store == "audit's snapshots":  # the library's own table, under a quiet recorder
            assert (type(recorder).__name__, recorder.events_table_name) == (
                "QuietAggregateRecorder", "casework_audit_snapshots")
        creates = [s for s in recorder.sql_create_statements if "CREATE TYPE" in s.as_string()]
        assert creates, "the recorder no longer creates a type: this test has nothing to check"
        with psycopg.connect(database_url) as conn:  # one transaction: any error would abort it
            for statement in creates * 2:
                conn.execute(statement)
            row = conn.execute("SELECT to_regtype('stored_event_uuid')").fetchone()
            assert row is not None and row[0] is not None
    finally:
        app.close()


def test_the_tracking_table_is_created_without_a_failing_probe(database_url: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """On a fresh database the library's probe of the missing table would fail (an ERROR in
    PostgreSQL's log at every first start); it runs only once the table is there, where it
    still guards the library's migration of older tracking tables."""
    probes: list[str] = []
    real = PostgresTrackingRecorder.max_tracking_id

    def probe(self: PostgresTrackingRecorder, application_name: str) -> int | None:
        probes.append(application_name)
        return real(self, application_name)

    monkeypatch.setattr(PostgresTrackingRecorder, "max_tracking_id", probe)
    app = IntakeApplication(POLICY, database_url)
    try:
        tracking = app.factory.tracking_recorder()
        assert isinstance(tracking, QuietTrackingRecorder)
        assert probes == [], "the probe ran against a missing table"
        assert tracking.max_tracking_id("__migration__") == 1, "the table was created as the library creates it"
        probes.clear()
        again = app.factory.tracking_recorder()  # a later start finds the table and probes it
        assert probes == ["__migration__"]
        assert again.tracking_migration_previous == 1
        tracking.insert_tracking(Tracking("casework.relay", 7))
        assert again.max_tracking_id("casework.relay") == 7
    finally:
        app.close()
