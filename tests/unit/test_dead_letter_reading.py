"""Reading a message in casework.dead: who set it aside, why, and whether `casework dead redrive` may send it back."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from casework.dead import DeadLetter


@dataclass
class Delivered:
    """The parts of a delivery DeadLetter reads."""

    routing_key: str
    headers: dict[str, Any] = field(default_factory=dict)
    message_id: str = "m-1"
    body: bytes = b"{}"
    user_id: str | None = None


def error(code: str, consumer: str | None = None, key: str = "complaint.received.GZ01") -> dict[str, Any]:
    headers = {"x-casework-error": json.dumps({"code": code, "message": f"{code} happened"}),
               "x-casework-routing-key": key}
    return headers | ({"x-casework-consumer": consumer} if consumer else {})


def death(queue: str, reason: str) -> dict[str, Any]:
    return {"x-death": [{"queue": queue, "reason": reason, "count": 1, "exchange": "casework.events"}]}


@pytest.mark.parametrize(("headers", "by", "code", "may_go"), [
    (error("internal_error", "escalation"), "escalation", "internal_error", True),
    (error("internal_error", "rewards"), "rewards", "internal_error", True),
    (error("schema_invalid", "escalation"), "escalation", "schema_invalid", False),
    (error("period_decided", "rewards"), "rewards", "period_decided", False),
    (error("internal_error", key="complaint.receive"), "intake", "internal_error", False),
    (error("not_json", key="complaint.receive"), "intake", "not_json", False),
    (death("casework.escalation", "delivery_limit"), "escalation", "delivery_limit", True),
    (death("casework.rewards", "delivery_limit"), "rewards", "delivery_limit", True),
    (death("casework.intake", "delivery_limit"), "casework.intake", "delivery_limit", False),
    (death("casework.escalation", "rejected"), "escalation", "rejected", False),
    ({}, "unknown", "unknown", False),
], ids=lambda value: value if isinstance(value, str) else None)
def test_who_set_it_aside_why_and_whether_it_may_be_sent_back(headers: dict[str, Any], by: str, code: str,
                                                               may_go: bool) -> None:
    letter = DeadLetter.of(Delivered("complaint.received.GZ01", headers))  # type: ignore[arg-type]
    assert (letter.set_aside_by, letter.code) == (by, code)
    assert (letter.why_it_stays is None) == may_go, letter.why_it_stays
    assert letter.routing_key == headers.get("x-casework-routing-key", "complaint.received.GZ01")


def test_an_error_header_that_is_not_json_is_still_shown() -> None:
    letter = DeadLetter.of(Delivered("x", {"x-casework-error": "plain words"}))  # type: ignore[arg-type]
    assert (letter.code, letter.reason, letter.why_it_stays is None) == ("unknown", "plain words", False)


def test_a_command_names_its_sender_from_intakes_header() -> None:
    headers = error("schema_invalid", key="complaint.receive") | {"x-casework-user-id": "branch-GZ01"}
    letter = DeadLetter.of(Delivered("complaint.receive", headers, user_id="svc-intake"))  # type: ignore[arg-type]
    assert (letter.set_aside_by, letter.sender) == ("intake", "branch-GZ01")


def test_when_it_was_set_aside_comes_from_casework_or_from_the_broker() -> None:
    ours = DeadLetter.of(Delivered("complaint.receive", error("not_json", key="complaint.receive")  # type: ignore[arg-type]
                                   | {"x-casework-set-aside-at": "2026-11-28T08:55:46+00:00"}))
    death_at = datetime(2026, 11, 28, 16, 55, 46, tzinfo=timezone(timedelta(hours=8)))
    brokers = DeadLetter.of(Delivered("complaint.received.GZ01", {"x-death": [  # type: ignore[arg-type]
        {"queue": "casework.escalation", "reason": "delivery_limit", "time": death_at}]}))
    assert ours.at == brokers.at == "2026-11-28T08:55:46+00:00"


def test_dead_list_for_people_shows_each_whole_message_id_and_what_can_be_sent_back() -> None:
    from rich.console import Console

    from casework.dead_cli import render_letters

    event = DeadLetter("8c1f6a0e-52f2-5d7e-9c55-2f1f0a6d2b11:3", "complaint.verified.GZ01", "escalation",
                       "internal_error", "KeyError: 'a bug'", 700, at="2026-11-28T10:47:05+00:00")
    command = DeadLetter("a862907a-c693-4ec4-9508-e8988cfeef91", "complaint.receive", "intake", "schema_invalid",
                         "case_ref: Field required; " * 6, 40, sender="branch-GZ01", at="2026-11-28T10:47:11+00:00")
    console = Console(record=True, width=80)
    render_letters(console, 3, [event, command])
    lines = [line.rstrip() for line in console.export_text().splitlines()]
    assert lines[0] == "casework.dead: 3 messages, the first 2 shown"
    assert lines[2:6] == ["8c1f6a0e-52f2-5d7e-9c55-2f1f0a6d2b11:3 · complaint.verified.GZ01",
                          "   set aside 2026-11-28 10:47:05 by escalation",
                          "   internal_error: KeyError: 'a bug'",
                          "   can be sent back (casework dead redrive)"]
    assert "a862907a-c693-4ec4-9508-e8988cfeef91 · complaint.receive" in lines
    assert "   set aside 2026-11-28 10:47:11 by intake (from branch-GZ01)" in lines
    reason = lines.index("   set aside 2026-11-28 10:47:11 by intake (from branch-GZ01)") + 1
    assert all(line.startswith("   ") for line in lines[reason:]), "a long reason wraps under itself"
    assert lines[-1] == "   stays: a command: its sender was answered rejected and sends it again"
    assert max(len(line) for line in lines) <= 80
