"""A branch publishes commands through real RabbitMQ into a real PostgreSQL store."""

from __future__ import annotations

import asyncio
import json

import pytest

from tests.support.live import Client, complaint_body, intake_service, running, slow_pages, until

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


async def test_relay_in_its_own_process_publishes_what_intake_records(amqp_url: str, database_url: str) -> None:
    """Intake without its relay records; a separate relay, woken by NOTIFY, publishes."""
    from casework.settings import Settings
    from services.intake.main import RelayService
    from shared.policy import load_policy

    async with Client(amqp_url) as client:
        await client.declare_topology()
        events = await client.tap("casework.events", "complaint.#")
        relay = lambda: RelayService(Settings(amqp_url=amqp_url, database_url=database_url,  # noqa: E731
                                              relay_poll_seconds=30), load_policy())
        async with running(intake_service(amqp_url, database_url, intake_relay=False)):
            await client.publish("complaint.receive", complaint_body(case_ref="APART-1"))
            await asyncio.sleep(1.0)
            assert await events.settle(quiet=0.5) == [], "intake alone publishes nothing"
            async with running(relay):
                await asyncio.sleep(0.5)
                await client.publish("complaint.receive", complaint_body(case_ref="APART-2"))
                received = await events.collect(2, timeout=10)
    assert sorted(json.loads(m.body)["case_ref"] for m in received) == ["APART-1", "APART-2"]


def test_processes_starting_together_on_a_fresh_database_all_open_it(database_url: str) -> None:
    """Several intake replicas (or intake and its relay) creating the tables at once."""
    import threading

    from services.intake.application import IntakeApplication
    from shared.policy import load_policy

    errors: list[str] = []

    def start() -> None:
        try:
            IntakeApplication(load_policy(), database_url).close()
        except Exception as error:
            errors.append(repr(error))

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


async def test_a_relay_in_its_own_process_publishes_what_the_store_holds_before_it_stops(
        amqp_url: str, database_url: str) -> None:
    """Asked to stop just after intake committed a command, the relay apart publishes it first,
    though the broker is slow to take each page."""
    from casework.settings import Settings
    from services.intake.main import RelayService
    from shared.policy import load_policy

    async with Client(amqp_url) as client:
        await client.declare_topology()
        events = await client.tap("casework.events", "complaint.#")
        relay = RelayService(Settings(amqp_url=amqp_url, database_url=database_url, relay_poll_seconds=30),
                             load_policy())
        slow_pages(relay.relay, 1.0)
        async with running(intake_service(amqp_url, database_url, intake_relay=False)):
            stopping = asyncio.Event()
            task = asyncio.create_task(relay.run(stopping))
            await until(lambda: relay.relay.leading, timeout=5, what="the relay taking its lock")
            await client.publish("complaint.receive", complaint_body(case_ref="LAST"))
            await until(lambda: (relay.app.recorder.max_notification_id() or 0) >= 2, timeout=5,
                        what="intake committing the command")
            stopping.set()
            await asyncio.wait_for(task, 30)
        [received] = await events.collect(1, timeout=2)
    assert json.loads(received.body)["case_ref"] == "LAST"
