"""`casework audit verify` against every kind of tampering, done with SQL on the SQLite store."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any
from uuid import UUID

import pytest

from casework.audit import StoreReader
from casework.audit_verify import Verification, verify
from tests.unit.test_audit_helpers import Story, forge, raw_store, tell_case


@pytest.fixture
def case(sqlite_url: str) -> Iterator[UUID]:
    story = Story(sqlite_url)
    stream = tell_case(story)
    tell_case(story, "C-2")  # a neighbour that must stay intact
    story.close()
    yield stream


def found(result: Verification) -> list[tuple[int | None, str]]:
    return [(f.version, f.kind) for f in result.findings]


def both(url: str, case: UUID) -> list[tuple[int | None, str]]:
    """Findings of `verify --all` and `verify CASE_ID`, which must agree."""
    whole, one = verify(url), verify(url, case)
    assert {f.stream_id for f in whole.findings} <= {str(case)}
    assert found(whole) == found(one)
    return found(whole)


def test_an_untouched_store_is_intact(sqlite_url: str, case: UUID) -> None:
    result = verify(sqlite_url)
    assert result.intact
    assert result.streams == 2 + 16  # two cases and one record per command
    assert result.events == 16 + 16


def test_one_byte_changed_inside_a_value_is_an_edit(sqlite_url: str, case: UUID) -> None:
    with raw_store(sqlite_url) as raw:
        state = raw.state(case, 1)
        raw.set_state(case, 1, state.replace(b"crushed", b"crusted", 1))
    assert both(sqlite_url, case) == [(1, "edited")]


def test_one_byte_that_breaks_the_record_is_an_edit(sqlite_url: str, case: UUID) -> None:
    with raw_store(sqlite_url) as raw:
        state = raw.state(case, 5)
        raw.set_state(case, 5, b"[" + state[1:])
    result = verify(sqlite_url, case)
    assert found(result) == [(5, "edited")]
    assert "no longer decodes" in result.findings[0].detail


def test_a_changed_event_type_is_an_edit(sqlite_url: str, case: UUID) -> None:
    with raw_store(sqlite_url) as raw:
        raw.set_state(case, 2, raw.state(case, 2), topic="services.intake.domain:Complaint.Reopened")
    assert both(sqlite_url, case) == [(2, "edited")]


def test_a_deleted_record_is_named_removed(sqlite_url: str, case: UUID) -> None:
    with raw_store(sqlite_url) as raw:
        raw.delete(case, 4)
    assert both(sqlite_url, case) == [(4, "removed")]


def test_a_deleted_first_record_is_named_removed(sqlite_url: str, case: UUID) -> None:
    with raw_store(sqlite_url) as raw:
        raw.delete(case, 1)
    assert both(sqlite_url, case) == [(1, "removed")]


def test_a_deletion_with_the_gap_closed_is_still_a_removal(sqlite_url: str, case: UUID) -> None:
    with raw_store(sqlite_url) as raw:
        raw.delete(case, 3)
        raw.shift(case, 4, -1)
    assert both(sqlite_url, case) == [(3, "removed")]


def test_two_swapped_records_are_named_reordered(sqlite_url: str, case: UUID) -> None:
    with raw_store(sqlite_url) as raw:
        rows = {v: (t, s) for v, t, s in raw.rows(case)}
        raw.set_state(case, 3, rows[6][1], rows[6][0])
        raw.set_state(case, 6, rows[3][1], rows[3][0])
    result = verify(sqlite_url, case)
    assert found(result) == [(3, "reordered"), (6, "reordered")]
    assert "holds the record of version 6" in result.findings[0].detail


def test_neighbours_swapped_by_version_number_are_reordered(sqlite_url: str, case: UUID) -> None:
    with raw_store(sqlite_url) as raw:
        raw.sql("UPDATE {t} SET originator_version = 99 WHERE originator_id = ? AND "
                "originator_version = 4", raw.key(case))
        raw.sql("UPDATE {t} SET originator_version = 4 WHERE originator_id = ? AND "
                "originator_version = 5", raw.key(case))
        raw.sql("UPDATE {t} SET originator_version = 5 WHERE originator_id = ? AND "
                "originator_version = 99", raw.key(case))
    assert both(sqlite_url, case) == [(4, "reordered"), (5, "reordered")]


def test_a_well_formed_record_inserted_mid_stream_is_named(sqlite_url: str, case: UUID) -> None:
    reader = StoreReader(sqlite_url)
    prev = reader.decode(reader.recorder.select_events(case, gt=1, lte=2)[0]).hash
    topic, state, _ = forge(reader, case, 8, 3, prev, resolution="customer withdrew the claim")
    reader.close()
    with raw_store(sqlite_url) as raw:
        raw.shift(case, 3, 1)
        raw.insert(case, 3, topic, state)
    result = verify(sqlite_url, case)
    assert found(result) == [(3, "inserted")]


def test_a_copy_of_a_record_appended_is_named_inserted(sqlite_url: str, case: UUID) -> None:
    with raw_store(sqlite_url) as raw:
        remediated = raw.state(case, 7)
        raw.insert(case, 9, "services.intake.domain:Complaint.Remediated", remediated)
    assert both(sqlite_url, case) == [(9, "inserted")]


def test_a_made_up_record_appended_is_named_inserted(sqlite_url: str, case: UUID) -> None:
    with raw_store(sqlite_url) as raw:
        made_up = raw.state(case, 7).replace(b"120.00", b"999.00")
        raw.insert(case, 9, "services.intake.domain:Complaint.Remediated", made_up)
    assert both(sqlite_url, case) == [(9, "inserted")]


def test_a_record_edited_and_re_hashed_alone_is_an_edit(sqlite_url: str, case: UUID) -> None:
    reader = StoreReader(sqlite_url)
    prev = reader.decode(reader.recorder.select_events(case, gt=5, lte=6)[0]).hash
    topic, state, _ = forge(reader, case, 7, 7, prev, compensation="1200.00")
    reader.close()
    with raw_store(sqlite_url) as raw:
        raw.set_state(case, 7, state, topic)
    result = verify(sqlite_url, case)
    assert found(result) == [(7, "edited")]
    assert "re-hashed" in result.findings[0].detail


def test_a_record_moved_to_another_stream_is_named_in_both(sqlite_url: str, case: UUID) -> None:
    other = verify(sqlite_url).heads
    neighbour = next(UUID(s) for s, (v, _) in other.items() if v == 8 and UUID(s) != case)
    with raw_store(sqlite_url) as raw:
        raw.sql("UPDATE {t} SET originator_id = ?, originator_version = 9 WHERE originator_id = ? "
                "AND originator_version = 2", raw.key(neighbour), raw.key(case))
    result = verify(sqlite_url)
    assert (str(case), 2, "removed") in [(f.stream_id, f.version, f.kind) for f in result.findings]
    assert any(f.stream_id == str(neighbour) and f.version == 9 for f in result.findings)


def test_records_written_before_an_upcaster_verify_as_written(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from services.intake.domain import Complaint

    story = Story(sqlite_url)
    case = story.send("complaint.receive", {
        "branch_id": "GZ01", "case_ref": "OLD-1", "waybill_no": "WB1", "category": "other",
        "customer": {"name": "陈先生", "phone": "13900000000"}, "description": "late"}).stream_id
    story.close()
    with raw_store(sqlite_url) as raw:  # as the first releases wrote it: class version 1
        state = json.loads(raw.state(case, 1))
        for key in ("class_version", "claimed_amount", "channel"):
            state.pop(key)
        raw.set_state(case, 1, json.dumps(state, ensure_ascii=False).encode())

    def upcast(state: dict[str, Any]) -> None:  # an upcaster that fills in a real value
        state.setdefault("claimed_amount", None)
        state.setdefault("channel", "counter")

    monkeypatch.setattr(Complaint.Received, "upcast_v1_v2", staticmethod(upcast))
    assert verify(sqlite_url, case).intact
