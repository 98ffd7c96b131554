"""`casework audit timeline|state|verify|keygen` as an auditor types them."""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest

from casework.audit_sign import load_private, load_public, public_raw
from tests.unit.test_audit_helpers import CUSTOMER, Story, raw_store, run_audit, tell_case


@pytest.fixture
def case(sqlite_url: str) -> Iterator[UUID]:
    story = Story(sqlite_url)
    stream = tell_case(story)
    story.close()
    yield stream


def test_timeline_json_has_who_when_what_pauses_and_escalations(sqlite_url: str, case: UUID) -> None:
    code, out = run_audit(sqlite_url, "timeline", str(case), "--json")
    assert code == 0
    events = out["events"]
    assert [e["version"] for e in events] == list(range(1, 9))
    first = events[0]
    assert (first["occurred_at"], first["recorded_at"]) == ("2026-11-01T22:00:00+00:00", "2026-11-02T01:00:00+00:00")
    assert (first["principal"], first["user_id"]) == ("branch:GZ01", "branch-GZ01")
    assert events[1]["changes"] == {"status": ["received", "verified"]}
    assert out["pauses"] == [{"from_version": 3, "to_version": 4, "reason": "photos of the cartons",
                              "since": "2026-11-02T02:20:00+00:00", "until": "2026-11-02T04:20:00+00:00",
                              "seconds": 7200}]
    [escalation] = out["escalations"]
    assert (escalation["level"], escalation["reason"]) == ("regional", "customer asks for a manager")
    assert out["chain_ok"] is True


def test_timeline_json_shows_the_amount_claimed_and_the_amount_agreed(sqlite_url: str, case: UUID) -> None:
    # The customer claimed 180.00 when the complaint came in; 120.00 was agreed (理赔).
    code, out = run_audit(sqlite_url, "timeline", str(case), "--json")
    assert code == 0
    fields = {e["event"]: e["fields"] for e in out["events"]}
    claimed = fields["complaint.received"]["claimed_amount"]
    agreed = fields["complaint.remediated"]["compensation"]
    assert (claimed, agreed) == ("180.00", "120.00")


def test_timeline_for_people(sqlite_url: str, case: UUID) -> None:
    code, text = run_audit(sqlite_url, "timeline", str(case), COLUMNS="80")
    assert code == 0
    lines = [line.rstrip() for line in text.splitlines()]
    assert lines[0] == f"complaint {case}: 8 events, chain ok"
    # Each event: version, name, when it happened and when it was recorded, then who.
    at = lines.index("v1 complaint.received · 2026-11-01 22:00:00, recorded 2026-11-02 01:00:00")
    assert lines[at + 1] == "   by branch:GZ01 (branch-GZ01)"
    assert "v2 complaint.verified · 2026-11-02 01:50:00, recorded 02:00:00" in lines
    # What an event set is shown as it is; what it changed, from → to.
    assert "   case_ref        C-1" in lines
    assert "   status  received → verified" in lines
    assert not [line for line in lines if "None" in line or "null" in line]
    assert "   reason  customer asks for a manager" in lines
    assert "waited on the customer v3–v4: 2h00m (photos of the cartons)" in lines
    assert max(len(line) for line in lines) <= 80


def test_timeline_for_people_marks_where_the_chain_breaks(sqlite_url: str, case: UUID) -> None:
    with raw_store(sqlite_url) as raw:
        raw.set_state(case, 2, raw.state(case, 2).replace(b"crushed", b"crusted", 1))
    code, text = run_audit(sqlite_url, "timeline", str(case))
    assert code == 0
    lines = text.splitlines()
    assert lines[0] == f"complaint {case}: 8 events, chain BROKEN"
    marked = [line.split(" ·")[0] for line in lines if "chain BROKEN here" in line]
    assert marked == ["v2 complaint.verified"]


def test_timeline_table_shows_the_amount_claimed_beside_a_long_description(sqlite_url: str) -> None:
    story = Story(sqlite_url)
    case = story.send("complaint.receive", {
        "branch_id": "GZ01", "case_ref": "LONG", "waybill_no": "WB9", "category": "damage",
        "customer": CUSTOMER, "description": "压坏" * 2000, "claimed_amount": "180.00"}).stream_id
    story.send("complaint.verify", {"case_id": str(case), "verified_by": "张三", "summary": "crushed",
                                    "customer_confirmed": True})
    story.send("complaint.remediate", {"case_id": str(case), "action": "refund", "remediated_by": "张三",
                                       "compensation": "120.00"})
    story.close()
    code, text = run_audit(sqlite_url, "timeline", str(case))
    assert code == 0
    assert "180.00" in text and "120.00" in text


def test_state_between_occurrence_and_recording_leaves_the_event_out(sqlite_url: str, case: UUID) -> None:
    # Verification happened at 01:50 and was recorded at 02:00.
    code, out = run_audit(sqlite_url, "state", str(case), "--at", "2026-11-02T09:55:00+08:00", "--json")
    assert code == 0
    assert (out["version"], out["state"]["status"]) == (1, "received")
    code, out = run_audit(sqlite_url, "state", str(case), "--at", "2026-11-02T10:00:00+08:00", "--json")
    assert (out["version"], out["state"]["status"], out["known_since"]) == (2, "verified", "2026-11-02T02:00:00+00:00")


def test_state_by_version(sqlite_url: str, case: UUID) -> None:
    code, out = run_audit(sqlite_url, "state", str(case), "--version", "3", "--json")
    assert (code, out["version"], out["state"]["awaiting"]) == (0, 3, True)
    code, text = run_audit(sqlite_url, "state", str(case), "--version", "3")
    assert "awaiting" in text and "true" in text


def test_state_without_a_moment_or_version_is_the_case_now(sqlite_url: str, case: UUID) -> None:
    code, out = run_audit(sqlite_url, "state", str(case), "--json")
    assert (code, out["as_of"], out["version"], out["state"]["status"]) == (0, None, 8, "closed")
    code, text = run_audit(sqlite_url, "state", str(case))
    assert code == 0 and "at version 8" in text
    assert '"2026-' not in text, "times are shown as times, not as quoted JSON"


@pytest.mark.parametrize(("args", "code", "says"), [
    (["--at", "2026-11-02T00:59:59Z"], 1, "not yet known"),
    (["--version", "9"], 1, "has 8 versions"),
    (["--at", "2026-11-02T10:00:00"], 2, "no UTC offset"),
    (["--at", "2026-11-02T10:00:00Z", "--version", "2"], 2, "not both"),
])
def test_state_refuses_what_it_cannot_answer(sqlite_url: str, case: UUID, args: list[str], code: int,
                                             says: str) -> None:
    got, text = run_audit(sqlite_url, "state", str(case), *args)
    assert got == code
    assert says in text


def test_verify_needs_a_stream_or_all(sqlite_url: str, case: UUID) -> None:
    assert run_audit(sqlite_url, "verify")[0] == 2
    code, text = run_audit(sqlite_url, "verify", "--all")
    assert code == 0
    assert "intact" in text


def test_an_unknown_stream_is_reported(sqlite_url: str, case: UUID) -> None:
    other = "00000000-0000-0000-0000-000000000001"
    assert run_audit(sqlite_url, "timeline", other)[0] == 1
    code, out = run_audit(sqlite_url, "verify", other, "--json")
    assert (code, out["findings"][0]["kind"]) == (1, "removed")


def test_keygen_prints_a_working_key_pair(sqlite_url: str) -> None:
    code, keys = run_audit(sqlite_url, "keygen", "--cipher", "--json")
    assert code == 0
    private = load_private(keys["CASEWORK_AUDIT_SIGNING_KEY"])
    assert public_raw(private) == public_raw(load_public(keys["CASEWORK_AUDIT_PUBLIC_KEY"]))
    assert len(keys["CASEWORK_CIPHER_KEY"]) == 44
