"""`casework replay publish`: exactly the requested range, into one subscriber's queue only."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from casework.replay import ReplayRange, history, publish_range
from services.intake.application import IntakeApplication
from shared.policy import load_policy
from shared.topology import topic_matches
from tests.unit.commands import act, receive

pytestmark = pytest.mark.integration


def record_history(database_url: str) -> None:
    app = IntakeApplication(load_policy(), database_url)
    for i in range(4):
        case_id = receive(app, f"H{i}", branch="GZ01" if i % 2 else "SZ02").stream_id
        act(app, "verify", case_id, user="admin")
    app.close()


async def drain(queue: aio_pika.abc.AbstractQueue) -> list[aio_pika.abc.AbstractIncomingMessage]:
    messages = []
    await asyncio.sleep(0.5)
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        messages.append(message)
    return messages


async def test_replay_publishes_exactly_the_range_to_one_queue(amqp_url: str, database_url: str) -> None:
    record_history(database_url)
    expected = [m.message_id for _, messages in history(database_url, ReplayRange(3, 12)) for m in messages
                if m.exchange == "casework.events" and topic_matches("complaint.*.GZ01", m.routing_key)]
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.declare_exchange("casework.events", aio_pika.ExchangeType.TOPIC, durable=True)
        target = await channel.declare_queue("casework.sub.new-hq-system", durable=True)
        bystander = await channel.declare_queue("casework.sub.existing", durable=True)
        await bystander.bind("casework.events", routing_key="#")
        sent = await publish_range(database_url, amqp_url, ReplayRange(3, 12), "complaint.*.GZ01",
                                   "casework.sub.new-hq-system")
        got = await drain(target)
        untouched = await drain(bystander)
    assert expected, "the range holds GZ01 complaint events"
    assert sent == len(expected)
    assert [m.message_id for m in got] == expected
    assert all(m.headers["x-casework-routing-key"].endswith(".GZ01") for m in got)
    assert all(3 <= m.headers["x-casework-position"] <= 12 for m in got)
    assert untouched == []
