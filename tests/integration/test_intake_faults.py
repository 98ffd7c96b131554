"""A command intake fails on by its own fault is set aside; an outage is still waited out.

The fault is made by a handler that raises for one case reference, as a bug would: the
broker and the database are real.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from services.intake.application import IntakeApplication
from tests.support.live import Client, complaint_body, get_one, intake_service, running
from tests.support.store import event_counts

pytestmark = pytest.mark.integration


def failing_for(monkeypatch: pytest.MonkeyPatch, case_ref: str, error: Callable[[], Exception],
                times: int | None = None) -> list[str]:
    """Make receiving `case_ref` raise `error()` (`times` times, or always); returns the calls."""
    calls: list[str] = []
    receive = IntakeApplication._complaint_receive

    def flawed(self: IntakeApplication, batch: Any, actor: Any, cause: Any, cmd: Any) -> Any:
        if cmd.case_ref == case_ref:
            calls.append(case_ref)
            if times is None or len(calls) <= times:
                raise error()
        return receive(self, batch, actor, cause, cmd)

    monkeypatch.setattr(IntakeApplication, "_complaint_receive", flawed)
    return calls


async def test_a_command_intake_fails_on_is_set_aside_and_the_others_flow(
        amqp_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    failing_for(monkeypatch, "BAD", lambda: KeyError("a bug"))
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        async with running(intake_service(amqp_url, database_url)):
            sent = [await client.publish("complaint.receive", complaint_body(case_ref=ref))
                    for ref in ("BEFORE", "BAD", "AFTER")]
            answers = [await outcomes.outcome_for(mid) for mid in sent]
            assert client.channel is not None
            dead = await get_one(await client.channel.get_queue("casework.dead"))
        waiting = await client.channel.declare_queue("casework.intake", passive=True)
    assert [(a["status"], a.get("error", {}).get("code")) for a in answers] == [
        ("accepted", None), ("rejected", "internal_error"), ("accepted", None)]
    assert dead.message_id == sent[1]
    assert json.loads(dead.headers["x-casework-error"])["code"] == "internal_error"
    assert event_counts(database_url)["Complaint.Received"] == 2
    assert waiting.declaration_result.message_count == 0


async def test_an_outage_is_waited_out_never_set_aside(
        amqp_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store failing as a stopped database does, more often than a fault is tried, still waits."""
    calls = failing_for(monkeypatch, "SLOW", lambda: psycopg.OperationalError("the database is shutting down"),
                        times=5)
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        dead = await client.tap("casework.dead", "")
        async with running(intake_service(amqp_url, database_url)):
            slow = await client.publish("complaint.receive", complaint_body(case_ref="SLOW"))
            answer = await outcomes.outcome_for(slow, timeout=60)
            await dead.settle(quiet=0.5)
    assert answer["status"] == "accepted"
    assert len(calls) == 6
    assert dead.messages == []
    assert event_counts(database_url)["Complaint.Received"] == 1
