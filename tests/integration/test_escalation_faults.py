"""An event escalation cannot use, or fails on by its own fault, goes to casework.dead; every
other case's clock goes on.

The fault is made by a clock step that raises for one case reference, as a bug would: the
broker and the database are real.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import aio_pika
import pytest

from services.escalation.application import EscalationApplication
from services.escalation.domain import CaseClock, Fact
from tests.integration.test_escalation_flow import accepted
from tests.integration.test_escalation_kit import escalation_service, fake_clock, short_policy, started
from tests.support.live import Client, complaint_body, get_one, intake_service, running, until

pytestmark = pytest.mark.integration


@dataclass
class Fault:
    """A bug in the clock step for one case reference, until `fixed`; the cases it failed."""

    fixed: bool = False
    failed: list[str] = field(default_factory=list)


def clock_step_failing_for(monkeypatch: pytest.MonkeyPatch, case_ref: str) -> Fault:
    fault = Fault()
    advance = EscalationApplication.advance

    def flawed(self: EscalationApplication, case_id: str, clock: CaseClock | None,
               facts: Iterable[Fact]) -> CaseClock | None:
        facts = list(facts)
        if not fault.fixed and any(f.case_ref == case_ref for f in facts):
            fault.failed.append(case_id)
            raise KeyError("a bug")
        return advance(self, case_id, clock, facts)

    monkeypatch.setattr(EscalationApplication, "advance", flawed)
    return fault


async def test_an_event_escalation_fails_on_is_set_aside_and_other_clocks_run(
        amqp_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    failed = clock_step_failing_for(monkeypatch, "BAD").failed
    _, policy = short_policy(tmp_path, verify="100s", remediate="100s", ladder="10s")
    clock = fake_clock()
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        async with running(intake_service(amqp_url, database_url, policy, clock=clock)), \
                running(escalation_service(amqp_url, database_url, policy, clock)) as service:
            await started(service)
            before, bad, after = [await accepted(client, outcomes, "complaint.receive", complaint_body(case_ref=ref))
                                  for ref in ("BEFORE", "BAD", "AFTER")]
            assert client.channel is not None
            dead = await get_one(await client.channel.get_queue("casework.dead"))
            await until(lambda: service.app.clock(after) is not None, what="the clock of the case after")
            await until(service.consumer.idle, what="every delivery settled")
            clocks = {case: service.app.clock(case) for case in (before, bad, after)}
        waiting = await client.channel.declare_queue("casework.escalation", passive=True)
    assert clocks[before] is not None and clocks[after] is not None and clocks[bad] is None
    assert set(failed) == {bad} and len(failed) >= 3  # the batch, then twice alone
    assert dead.message_id == f"{bad}:1"
    assert dead.headers["x-casework-consumer"] == "escalation"
    assert dead.headers["x-casework-routing-key"] == "complaint.received.GZ01"
    assert json.loads(dead.headers["x-casework-error"])["code"] == "internal_error"
    assert "x-casework-set-aside-at" in dead.headers
    assert json.loads(dead.body)["stream_id"] == bad
    assert waiting.declaration_result.message_count == 0


async def test_an_event_escalation_cannot_read_is_dead_lettered_with_its_reason(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    _, policy = short_policy(tmp_path)
    async with Client(amqp_url) as client:
        await client.declare_topology()
        assert client.channel is not None
        async with running(escalation_service(amqp_url, database_url, policy, fake_clock())) as service:
            await started(service)
            await client.channel.default_exchange.publish(
                aio_pika.Message(b"{not json", message_id="junk-1"), routing_key="casework.escalation")
            dead = await get_one(await client.channel.get_queue("casework.dead"))
            await until(service.consumer.idle, what="every delivery settled")
        waiting = await client.channel.declare_queue("casework.escalation", passive=True)
    assert (dead.message_id, dead.body) == ("junk-1", b"{not json")
    assert dead.headers["x-casework-consumer"] == "escalation"
    assert json.loads(dead.headers["x-casework-error"])["code"] == "schema_invalid"
    assert waiting.declaration_result.message_count == 0
