"""Outages under load: PostgreSQL stopped, RabbitMQ restarted. Nothing lost, nothing doubled.

These stop the local servers, so they run only where the test may control them (root, with
pg_ctlcluster and rabbitmqctl), as on CI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess

import aio_pika
import pytest

from tests.support.live import Client, complaint_body, get_one, intake_service, running
from tests.support.store import event_counts, received_streams

CONTROLLABLE = bool(shutil.which("pg_ctlcluster") and shutil.which("rabbitmqctl") and os.geteuid() == 0)
pytestmark = [
    pytest.mark.integration,
    pytest.mark.slow,
    pytest.mark.skipif(not CONTROLLABLE, reason="needs root and the local servers' control commands"),
]


def postgres(action: str) -> None:
    cluster = sorted(os.listdir("/etc/postgresql"))[0]
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", action, *(
        ["-m", "fast"] if action == "stop" else [])], check=True, timeout=60)


def ensure_postgres() -> None:
    if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode != 0:
        postgres("start")
    wait_for_postgres()


def wait_for_postgres() -> None:
    for _ in range(60):
        if subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1"], check=False).returncode == 0:
            return
        subprocess.run(["sleep", "0.5"], check=False)


async def publish_steadily(url: str, count: int, rate: float, prefix: str) -> None:
    """A branch system that keeps publishing through outages: retries until the broker confirms."""
    connection = await aio_pika.connect_robust(url, reconnect_interval=0.5)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        for i in range(count):
            body = complaint_body(case_ref=f"{prefix}{i:05d}")
            while True:
                try:
                    exchange = await channel.get_exchange("casework.commands", ensure=False)
                    await exchange.publish(aio_pika.Message(
                        json.dumps(body).encode(), message_id=f"{prefix}-{i}", user_id="guest",
                        delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key="complaint.receive",
                        timeout=5)
                    break
                except (aio_pika.exceptions.AMQPError, ConnectionError, TimeoutError, RuntimeError):
                    await asyncio.sleep(0.5)
            await asyncio.sleep(1 / rate)


async def durable_tap(client: Client, name: str, key: str) -> aio_pika.abc.AbstractQueue:
    assert client.channel is not None
    queue = await client.channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
    await queue.bind("casework.events", routing_key=key)
    return queue


async def drain_ids(url: str, name: str, expected: int, timeout: float) -> list[str]:
    """Every message id that reached the tap queue, waiting for at least `expected` of them."""
    ids: list[str] = []
    deadline = asyncio.get_running_loop().time() + timeout
    async with Client(url) as client:
        assert client.channel is not None
        queue = await client.channel.get_queue(name)
        while len(set(ids)) < expected and asyncio.get_running_loop().time() < deadline:
            with contextlib.suppress(TimeoutError):
                message = await get_one(queue, timeout=1)
                ids.append(message.message_id or "")
    return ids


async def test_postgres_stopped_for_10_seconds_under_load(amqp_url: str, database_url: str) -> None:
    async with Client(amqp_url) as client:
        await client.declare_topology()
        await durable_tap(client, "tap.received", "complaint.received.*")
    try:
        async with running(intake_service(amqp_url, database_url)):
            publisher = asyncio.create_task(publish_steadily(amqp_url, 400, rate=40, prefix="P"))
            await asyncio.sleep(3)
            await asyncio.to_thread(postgres, "stop")
            await asyncio.sleep(10)
            await asyncio.to_thread(postgres, "start")
            await asyncio.to_thread(wait_for_postgres)
            await publisher
            ids = await drain_ids(amqp_url, "tap.received", 400, timeout=120)
    finally:
        await asyncio.to_thread(ensure_postgres)
    async with Client(amqp_url) as client:
        assert client.channel is not None
        dead = await client.channel.get_queue("casework.dead")
        assert dead.declaration_result.message_count == 0
    assert len(set(ids)) == 400
    assert received_streams(database_url) == 400
    assert event_counts(database_url)["CommandRecord.Processed"] == 400


def rabbitmq(action: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", action], check=True, timeout=120)


async def test_rabbitmq_restarted_under_load(amqp_url: str, database_url: str) -> None:
    async with Client(amqp_url) as client:
        await client.declare_topology()
        await durable_tap(client, "tap.received", "complaint.received.*")
    try:
        async with running(intake_service(amqp_url, database_url)):
            publisher = asyncio.create_task(publish_steadily(amqp_url, 400, rate=40, prefix="Q"))
            await asyncio.sleep(3)
            await asyncio.to_thread(rabbitmq, "stop_app")
            await asyncio.sleep(3)
            await asyncio.to_thread(rabbitmq, "start_app")
            await asyncio.to_thread(rabbitmq, "await_startup")
            await publisher
            ids = await drain_ids(amqp_url, "tap.received", 400, timeout=120)
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            rabbitmq("start_app")
    assert len(set(ids)) == 400
    assert received_streams(database_url) == 400
    assert event_counts(database_url)["CommandRecord.Processed"] == 400
