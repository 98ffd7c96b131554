"""Through real RabbitMQ and PostgreSQL: a neglected shortage climbs branch → regional → hq.warehousing,
an attended one never escalates, and the clocks equal a rebuild from history."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from services.escalation.application import EscalationApplication
from services.escalation.history import IntakeHistory
from services.escalation.store import open_store
from tests.integration.test_escalation_kit import (
    escalation_service,
    escalations,
    fake_clock,
    recorded,
    short_policy,
    started,
)
from tests.support.live import Client, complaint_body, intake_service, running, until

pytestmark = pytest.mark.integration


async def accepted(client: Client, outcomes: Any, key: str, body: dict[str, Any]) -> str:
    outcome = await outcomes.outcome_for(await client.publish(key, body))
    assert outcome["status"] == "accepted", outcome
    return str(outcome["stream_id"])


async def test_neglected_shortage_climbs_to_hq_warehousing_and_attended_one_does_not(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    _, policy = short_policy(tmp_path, verify="10s", remediate="100s", close="200s", ladder="10s")
    clock = fake_clock()
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        notices = await client.tap("casework.escalations", "#")
        async with running(intake_service(amqp_url, database_url, policy, clock=clock)), \
                running(escalation_service(amqp_url, database_url, policy, clock)) as service:
            await started(service)
            neglected = await accepted(client, outcomes, "complaint.receive", complaint_body(case_ref="N-1"))
            attended = await accepted(client, outcomes, "complaint.receive", complaint_body(case_ref="A-1"))
            await accepted(client, outcomes, "complaint.verify", {
                "case_id": attended, "verified_by": "Zhang", "summary": "two cartons short",
                "customer_confirmed": True})
            await until(lambda: (c := service.app.clock(attended)) and c.version == 2, what="clocks")

            for seconds, expected in ((5, "warning.GZ01"), (5, "branch.GZ01"), (10, "regional.south"),
                                      (10, "hq.warehousing")):
                clock.advance(timedelta(seconds=seconds))
                [*_, notice] = await notices.collect(len(notices.messages) + 1)
                assert notice.routing_key == expected
                assert json.loads(notice.body)["case_id"] == neglected

            await accepted(client, outcomes, "complaint.remediate", {
                "case_id": attended, "action": "redelivered", "remediated_by": "Zhang"})
            await accepted(client, outcomes, "complaint.close", {
                "case_id": attended, "closed_by": "Zhang", "resolution": "delivered", "customer_satisfied": True})
            await until(lambda: (c := service.app.clock(attended)) and c.closed, what="attended closed")
            clock.advance(timedelta(hours=1))
            await notices.settle(quiet=1.0)

    bodies = [(m.routing_key, json.loads(m.body)) for m in notices.messages]
    assert [key for key, body in bodies if body["case_id"] == attended] == []
    # The close stage still warns once, at its threshold, after the case stood at hq.
    assert [(key, body.get("stage") or body["reason"]["stage"]) for key, body in bodies] == [
        ("warning.GZ01", "verify"), ("branch.GZ01", "verify"), ("regional.south", "verify"),
        ("hq.warehousing", "verify"), ("warning.GZ01", "close")]
    hq = bodies[3][1]
    assert (hq["level"], hq["department"], hq["reason"]["stage"]) == ("hq", "warehousing", "verify")
    assert escalations(database_url) == [(neglected, "branch"), (neglected, "regional"), (neglected, "hq")]


async def test_duplicated_and_reordered_events_give_the_clocks_a_rebuild_gives(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    # Deadlines far enough out that nothing lapses: the clocks alone are compared.
    _, policy = short_policy(tmp_path, verify="100s", remediate="100s", ladder="10s")
    clock = fake_clock()
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        events = await client.tap("casework.events", "complaint.#")
        async with running(intake_service(amqp_url, database_url, policy, clock=clock)):
            cases = [await accepted(client, outcomes, "complaint.receive", complaint_body(case_ref=f"D-{i}"))
                     for i in range(4)]
            for case in cases[:2]:
                await accepted(client, outcomes, "complaint.await_customer", {"case_id": case, "reason": "photos"})
            clock.advance(timedelta(seconds=30))
            await accepted(client, outcomes, "complaint.resume", {"case_id": cases[0]})
            await accepted(client, outcomes, "complaint.verify", {
                "case_id": cases[2], "verified_by": "Li", "summary": "short", "customer_confirmed": True})
            await events.collect(8)
        # Replay what the relay published, out of order and with repeats, straight onto the service's queue.
        messages = list(events.messages)
        messy = [*reversed(messages), *messages[:3]]  # every case's last version first, then repeats
        channel = client.channel
        assert channel is not None
        # The relay's own in-order copies are dropped, so the service sees only the messy stream.
        await (await channel.declare_queue("casework.escalation", passive=True)).purge()
        await channel.default_exchange.publish(aio_pika.Message(b"{not json"), routing_key="casework.escalation")
        for message in messy:
            await channel.default_exchange.publish(aio_pika.Message(
                message.body, message_id=message.message_id, headers=message.headers,
                content_type="application/json"), routing_key="casework.escalation")
        # One event per transaction, so that a later version really arrives before an earlier one.
        async with running(escalation_service(amqp_url, database_url, policy, clock, batch_size=1)) as service:
            await started(service)
            await until(lambda: all((c := service.app.clock(case)) and c.version == v
                                    for case, v in zip(cases, (3, 2, 2, 1), strict=True)), what="all versions")
            live = {row.case_id: row.state for row in service.app.store.rows()}
    store = open_store(database_url)
    history = IntakeHistory.open(database_url)
    try:
        app = EscalationApplication(store, EscalationApplication.load_book(store, None, clock()), history)
        rebuilt = app.rebuild(recorded(database_url), clock())
        assert app.differences(rebuilt) == []
        assert len(live) == 4
    finally:
        history.close()
        store.close()
