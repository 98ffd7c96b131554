"""A queue that refuses events (full, `x-overflow: reject-publish`) cannot hold up the group for long.

A branch may declare its own queues with any arguments, so one branch's full queue, careless
or hostile, would otherwise stop every branch's events and outcomes behind the refused one.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import unquote, urlsplit

import aio_pika
import pytest

from tests.conftest import rabbitmqctl
from tests.integration.test_intake_guarantees import relay_position
from tests.support.live import Client, complaint_body, intake_service, running, until

pytestmark = pytest.mark.integration

# Three complaints of the refusing branch and three of another: six cases, six command records.
NOTIFICATIONS = 12


async def refusing_queue(client: Client, *keys: str) -> aio_pika.abc.AbstractQueue:
    """A queue bound to `keys` on casework.events that holds one message and refuses every other."""
    assert client.channel is not None
    full = await client.channel.declare_queue(exclusive=True, arguments={
        "x-max-length": 1, "x-overflow": "reject-publish"})
    await client.channel.default_exchange.publish(aio_pika.Message(b"filler"), routing_key=full.name)
    for key in keys:
        await full.bind("casework.events", routing_key=key)
    return full


async def until_refused(client: Client, queue_name: str) -> None:
    """Fill the queue with probes until it refuses one: its length limit has taken effect."""
    assert client.connection is not None
    channel = await client.connection.channel(publisher_confirms=True)
    try:
        for _ in range(100):
            try:
                await channel.default_exchange.publish(aio_pika.Message(b"probe"), routing_key=queue_name)
            except aio_pika.exceptions.DeliveryError:
                return
            await asyncio.sleep(0.1)
        raise TimeoutError(f"{queue_name} never refused a message")
    finally:
        await channel.close()


async def drain(queue_name: str, client: Client) -> list[aio_pika.abc.AbstractIncomingMessage]:
    assert client.channel is not None
    queue = await client.channel.get_queue(queue_name, ensure=False)
    taken = []
    while (message := await queue.get(fail=False, no_ack=True)) is not None:
        taken.append(message)
    return taken


async def publish_complaints(client: Client) -> None:
    for branch in ("GZ01", "SZ02"):
        for i in range(3):
            await client.publish("complaint.receive", complaint_body(branch_id=branch, case_ref=f"{branch}-{i}"))


async def test_a_subscribers_queue_that_keeps_refusing_is_passed_over(
        amqp_url: str, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """After the patience, the relay moves on: the services' own queues have every event, the
    other subscribers every event and outcome, and the refusing queue misses what it refused."""
    caplog.set_level(logging.WARNING, logger="casework.relay")
    async with Client(amqp_url) as client:
        await client.declare_topology()
        full = await refusing_queue(client, "complaint.*.GZ01", "command.*.*")
        events = await client.tap("casework.events", "complaint.received.*")
        outcomes = await client.tap("casework.events", "command.#")
        async with running(intake_service(amqp_url, database_url, relay_refusal_seconds=1.0)):
            await publish_complaints(client)
            await outcomes.collect(6, timeout=60)
            await until(lambda: relay_position(database_url) >= NOTIFICATIONS, what="the relay passing the refusal")
            await events.settle(quiet=0.5)
        escalation = await drain("casework.escalation", client)
        rewards = await drain("casework.rewards", client)
        left_in_full = await drain(full.name, client)
    received = {m.message_id for m in events.messages}
    assert len(received) == 6
    assert {m.message_id for m in escalation} == received
    assert {m.message_id for m in rewards} == received
    assert {m.routing_key for m in escalation} == {"complaint.received.GZ01", "complaint.received.SZ02"}
    assert [m.body for m in left_in_full] == [b"filler"]
    assert any("passing over" in r.getMessage() for r in caplog.records)


async def test_the_services_own_queue_refusing_is_never_passed_over(
        amqp_url: str, database_url: str, caplog: pytest.LogCaptureFixture) -> None:
    """If casework.escalation itself refuses, passing over would lose events for escalation:
    the relay holds past its patience, and goes on once the queue takes messages again."""
    caplog.set_level(logging.WARNING, logger="casework.relay")
    vhost = unquote(urlsplit(amqp_url).path[1:])
    async with Client(amqp_url) as client:
        await client.declare_topology()
        rabbitmqctl("set_policy", "-p", vhost, "escalation-full", "^casework\\.escalation$",
                    '{"max-length": 1}', "--apply-to", "queues")
        try:
            await until_refused(client, "casework.escalation")
            async with running(intake_service(amqp_url, database_url, relay_refusal_seconds=0.2)):
                await publish_complaints(client)

                def refused_by_own_queue() -> Any:
                    return any("own services' queues refuse" in r.getMessage() for r in caplog.records)

                await until(refused_by_own_queue, what="the relay trying the services' queues directly")
                assert relay_position(database_url) == 0
                rabbitmqctl("set_policy", "-p", vhost, "escalation-full", "^casework\\.escalation$",
                            '{"max-length": 100000}', "--apply-to", "queues")  # the operator lifts the limit
                await until(lambda: relay_position(database_url) >= NOTIFICATIONS, what="the relay going on")
            escalation = await drain("casework.escalation", client)
        finally:
            rabbitmqctl("clear_policy", "-p", vhost, "escalation-full")
    assert len({m.message_id for m in escalation if m.routing_key.startswith("complaint.")}) == 6
    assert not any("passing over" in r.getMessage() for r in caplog.records)
