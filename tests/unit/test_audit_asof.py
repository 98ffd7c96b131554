"""`casework audit state`: the case as known at each moment, from events and from snapshots."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from casework.audit import StoreReader, public_state
from casework.audit_asof import AsOfReader
from tests.unit.test_audit_helpers import Story, raw_store, tell_case

TICK = timedelta(microseconds=1)


@pytest.fixture
def told(sqlite_url: str) -> Iterator[tuple[UUID, list[Any]]]:
    story = Story(sqlite_url)
    case = tell_case(story)
    story.at(hours=1).send("complaint.reopen", {"case_id": str(case), "reason": "still broken"})
    for n in range(6):  # a longer stream, so snapshots come into play
        story.at(minutes=20).send("complaint.hand_over", {"case_id": str(case), "to": f"staff {n}",
                                                          "note": "shift change"})
    story.close()
    reader = StoreReader(sqlite_url)
    events = reader.stream(case)
    reader.close()
    yield case, events


def moments(events: list[Any]) -> list[tuple[datetime, int]]:
    """Each moment worth asking about, with the version known then."""
    asks = [(events[0].occurred_at, 0), (events[0].timestamp - TICK, 0)]
    for event in events:
        version = event.originator_version
        asks += [(event.occurred_at, version - 1),  # happened, not yet recorded
                 (event.timestamp - TICK, version - 1), (event.timestamp, version),
                 (event.timestamp + TICK, version)]
    return asks


def expected(url: str, case: UUID, version: int) -> dict[str, Any] | None:
    """The library's own replay to a version: the yardstick."""
    if version == 0:
        return None
    app = StoreReader(url)
    try:
        return public_state(app.repository.get(case, version=version))
    finally:
        app.close()


def known(reader: AsOfReader, case: UUID, moment: datetime) -> tuple[int, dict[str, Any] | None]:
    result = reader.at_time(case, moment)
    return result.version, public_state(result.aggregate) if result.aggregate is not None else None


@pytest.mark.parametrize(("interval", "snapshots"), [(3, True), (100, True), (3, False)])
def test_state_at_every_moment_is_what_was_recorded_by_then(
        sqlite_url: str, told: tuple[UUID, list[Any]], interval: int, snapshots: bool) -> None:
    case, events = told
    reader = AsOfReader(sqlite_url, interval=interval, use_snapshots=snapshots)
    try:
        for moment, version in moments(events):
            assert known(reader, case, moment) == (version, expected(sqlite_url, case, version)), moment
    finally:
        reader.close()


def test_an_event_that_happened_but_was_not_yet_recorded_is_not_known(
        sqlite_url: str, told: tuple[UUID, list[Any]]) -> None:
    case, events = told
    verified = events[1]
    assert verified.occurred_at < verified.timestamp
    reader = AsOfReader(sqlite_url)
    between = verified.occurred_at + (verified.timestamp - verified.occurred_at) / 2
    state = reader.at_time(case, between).as_json(between)
    reader.close()
    assert state["version"] == 1
    assert state["state"]["status"] == "received"


def test_before_its_first_recording_the_case_was_unknown(
        sqlite_url: str, told: tuple[UUID, list[Any]]) -> None:
    case, events = told
    reader = AsOfReader(sqlite_url)
    # The customer's complaint happened hours before the branch recorded it.
    assert reader.at_time(case, events[0].timestamp - timedelta(hours=1)).aggregate is None
    reader.close()


def test_snapshots_are_written_once_and_then_start_the_replay(
        sqlite_url: str, told: tuple[UUID, list[Any]]) -> None:
    case, events = told
    first = AsOfReader(sqlite_url, interval=3)
    cold = first.at_time(case, events[-1].timestamp)
    first.close()
    again = AsOfReader(sqlite_url, interval=3)
    warm = again.at_time(case, events[-1].timestamp)
    middle = again.at_time(case, events[7].timestamp)
    again.close()
    assert (cold.from_snapshot, cold.snapshots_written) == (None, 5)  # versions 3, 6, 9, 12, 15
    assert (warm.from_snapshot, warm.replayed, warm.snapshots_written) == (15, 0, 0)
    assert (middle.from_snapshot, middle.replayed, middle.version) == (6, 2, 8)
    assert public_state(warm.aggregate) == public_state(cold.aggregate)


def test_state_by_version_matches_the_library_at_every_version(
        sqlite_url: str, told: tuple[UUID, list[Any]]) -> None:
    case, events = told
    reader = AsOfReader(sqlite_url, interval=4)
    try:
        for event in events:
            v = event.originator_version
            result = reader.at_version(case, v)
            assert (result.version, public_state(result.aggregate)) == (v, expected(sqlite_url, case, v))
    finally:
        reader.close()


def test_a_damaged_snapshot_is_ignored(sqlite_url: str, told: tuple[UUID, list[Any]]) -> None:
    case, events = told
    AsOfReader(sqlite_url, interval=3).at_time(case, events[-1].timestamp)
    audit_file = sqlite_url.replace("store.sqlite3", "store-casework_audit.sqlite3")
    with raw_store(audit_file) as raw:
        raw.sql("UPDATE stored_snapshots SET state = ? WHERE originator_version = 15", b"{broken")
        [(twelve,)] = raw.sql("SELECT state FROM stored_snapshots WHERE originator_version = 12").fetchall()
        state = json.loads(twelve)
        state["state"]["last_hash"] = "0" * 64
        raw.sql("UPDATE stored_snapshots SET state = ? WHERE originator_version = 12", json.dumps(state).encode())
    reader = AsOfReader(sqlite_url, interval=3)
    result = reader.at_time(case, events[-1].timestamp)
    reader.close()
    assert result.from_snapshot == 9  # 15 does not decode; 12 does not match the chain
    assert public_state(result.aggregate) == expected(sqlite_url, case, len(events))


def test_a_clock_that_went_back_does_not_make_a_later_event_known_early(sqlite_url: str) -> None:
    story = Story(sqlite_url)
    case = tell_case(story)
    story.at(hours=-2).send("complaint.reopen", {"case_id": str(case), "reason": "still broken"})
    story.close()
    reader = StoreReader(sqlite_url)
    events = reader.stream(case)
    reader.close()
    closed, reopened = events[-2], events[-1]
    assert reopened.timestamp < closed.timestamp
    asof = AsOfReader(sqlite_url, interval=3)
    # Reopened claims 08:30, but it follows versions 7 (09:30) and 8 (10:30): not known before.
    assert asof.at_time(case, reopened.timestamp).version == 6
    assert asof.at_time(case, closed.timestamp).version == 9
    asof.close()
