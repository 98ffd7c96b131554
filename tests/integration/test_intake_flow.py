"""A branch publishes commands through real RabbitMQ into a real PostgreSQL store."""

from __future__ import annotations

import pytest

from tests.support.live import Client, complaint_body, intake_service, running

pytestmark = pytest.mark.integration


async def test_complaint_is_recorded_answered_and_published(amqp_url: str, database_url: str) -> None:
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        events = await client.tap("casework.events", "complaint.#")
        async with running(intake_service(amqp_url, database_url)):
            mid = await client.publish("complaint.receive", complaint_body(case_ref="C-1"))
            outcome = await outcomes.outcome_for(mid)
            [event] = await events.collect(1)
    assert outcome["status"] == "accepted"
    assert event.routing_key == "complaint.received.GZ01"
    assert event.message_id == f"{outcome['stream_id']}:1"
    assert event.headers["x-casework-version"] == 1
