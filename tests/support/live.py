"""Run casework services in the test's event loop and talk to them over real RabbitMQ."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Collection
from datetime import datetime
from typing import Any
from uuid import UUID

import aio_pika

from casework.settings import Settings
from shared.policy import Policy, load_policy


def complaint_body(branch_id: str = "GZ01", case_ref: str | None = None, category: str = "shortage",
                   **extra: Any) -> dict[str, Any]:
    return {
        "branch_id": branch_id,
        "case_ref": case_ref or f"C-{uuid.uuid4().hex[:8]}",
        "waybill_no": "WB123456",
        "category": category,
        "customer": {"name": "李小姐", "phone": "13800000000"},
        "description": "Three cartons short on delivery",
        **extra,
    }


# The commands that append to an existing case, and the event each appends. A verify needs a
# case just received; a remediate one verified; a hand-over either.
APPENDS = {"hand_over": "Complaint.HandedOver", "remediate": "Complaint.Remediated", "verify": "Complaint.Verified"}


def case_command(kind: str, case_id: UUID) -> tuple[str, dict[str, Any]]:
    """A command on an existing case (`verify`, `hand_over` or `remediate`): routing key and body."""
    bodies: dict[str, dict[str, Any]] = {
        "verify": {"verified_by": "Zhang", "summary": "three cartons short", "customer_confirmed": True},
        "hand_over": {"to": "Li", "note": "the warehouse team takes it"},
        "remediate": {"action": "cartons sent again", "remediated_by": "Li", "compensation": "120.00"},
    }
    return f"complaint.{kind}", {"case_id": str(case_id), **bodies[kind]}


@contextlib.asynccontextmanager
async def running(service_factory: Callable[[], Any]) -> AsyncIterator[Any]:
    """Start a service (anything with `async run(stopping)`); stop it gracefully on exit."""
    service = service_factory()
    stopping = asyncio.Event()
    task = asyncio.create_task(service.run(stopping))
    await asyncio.sleep(0)
    try:
        yield service
    finally:
        stopping.set()
        await asyncio.wait_for(task, 30)


def intake_service(amqp_url: str, database_url: str, policy: Policy | None = None,
                   clock: Callable[[], datetime] | None = None, **settings: Any) -> Callable[[], Any]:
    from services.intake.application import utc_now
    from services.intake.main import IntakeService

    config = Settings(amqp_url=amqp_url, database_url=database_url, **settings)
    return lambda: IntakeService(config, policy or load_policy(), clock=clock or utc_now)


class Client:
    """A branch system or HQ subscriber: publishes commands as a user, collects what comes back."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None
        self.user = ""

    async def __aenter__(self) -> Client:
        from urllib.parse import urlsplit

        self.user = urlsplit(self.url).username or "guest"
        self.connection = await aio_pika.connect_robust(self.url)
        self.channel = await self.connection.channel(publisher_confirms=True)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self.connection:
            await self.connection.close()

    async def declare_topology(self) -> None:
        from shared.broker import make_broker
        from shared.topology import declare

        broker = make_broker(self.url)
        await broker.connect()
        await declare(broker)
        await broker.stop()

    async def publish(self, routing_key: str, body: dict[str, Any] | bytes, message_id: str | None = None,
                      user_id: str | None = "self", reply_to: str | None = None, **properties: Any) -> str:
        assert self.channel is not None
        mid = message_id or str(uuid.uuid4())
        payload = body if isinstance(body, bytes) else json.dumps(body).encode()
        exchange = await self.channel.get_exchange("casework.commands", ensure=False)
        await exchange.publish(aio_pika.Message(
            payload, message_id=mid, user_id=self.user if user_id == "self" else user_id,
            content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            reply_to=reply_to, correlation_id=mid, **properties), routing_key=routing_key)
        return mid

    async def tap(self, exchange: str, *keys: str) -> Tap:
        """A server-named queue bound now, so everything published from here on is seen."""
        assert self.channel is not None
        queue = await self.channel.declare_queue(exclusive=True)
        for key in keys:
            await queue.bind(exchange, routing_key=key)
        return Tap(queue)


class Tap:
    """Messages collected from one queue, with waits that fail clearly instead of hanging."""

    def __init__(self, queue: aio_pika.abc.AbstractQueue) -> None:
        self.queue = queue
        self.messages: list[aio_pika.abc.AbstractIncomingMessage] = []

    async def collect(self, count: int, timeout: float = 20.0) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Wait until `count` messages have arrived in all (raises TimeoutError with what came)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.messages) < count:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                raise TimeoutError(f"expected {count} messages, got {len(self.messages)}: "
                                   f"{[m.routing_key for m in self.messages]}")
            message = await self.queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(0.02)
                continue
            self.messages.append(message)
        return self.messages

    async def settle(self, quiet: float = 1.0) -> list[aio_pika.abc.AbstractIncomingMessage]:
        """Collect until nothing new arrives for `quiet` seconds (to prove there is no extra)."""
        while True:
            message = await self.queue.get(fail=False, no_ack=True)
            if message is None:
                await asyncio.sleep(quiet)
                message = await self.queue.get(fail=False, no_ack=True)
                if message is None:
                    return self.messages
            self.messages.append(message)

    def bodies(self) -> list[dict[str, Any]]:
        return [json.loads(m.body) for m in self.messages]

    def by_command(self) -> dict[str, list[tuple[str, dict[str, Any]]]]:
        """Outcomes collected so far, by command id: (the outcome message's id, its body)."""
        seen: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
        for message in self.messages:
            body = json.loads(message.body)
            seen[body["command_id"]].append((message.message_id or "", body))
        return seen

    async def answered(self, accepted: Collection[str], repeated: Collection[str] = (),
                       timeout: float = 60.0) -> None:
        """Wait until each of `accepted` has an accepted outcome and each of `repeated` a second answer.

        The relay may publish one outcome twice (with one message id); a second answer has
        another message id: intake's `duplicate`, or whatever processing the command again said.
        """
        def lacking(mid: str, answers: list[tuple[str, dict[str, Any]]]) -> int:
            """How many more messages the command needs, at least."""
            unaccepted = mid in accepted and not any(body["status"] == "accepted" for _, body in answers)
            second = 2 - len({message_id for message_id, _ in answers}) if mid in repeated else 0
            return max(int(unaccepted), second)

        while True:
            seen = self.by_command()
            missing = sum(lacking(mid, seen[mid]) for mid in {*accepted, *repeated})
            if not missing:
                return
            await self.collect(len(self.messages) + missing, timeout=timeout)

    async def outcome_for(self, message_id: str, timeout: float = 20.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            for body in self.bodies():
                if body.get("command_id") == message_id:
                    return body
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError(f"no outcome for {message_id}")
            await self.collect(len(self.messages) + 1, timeout=max(0.1, deadline - asyncio.get_running_loop().time()))


def out_of_order(messages: list[aio_pika.abc.AbstractIncomingMessage]) -> list[str]:
    """Where the first arrivals of relayed events break the store's order (none, in order).

    A repeat (at least once) is skipped; among first arrivals the positions (notification
    ids, `x-casework-position`) ascend, and so does each stream's version.
    """
    seen: set[str | None] = set()
    last_position = 0
    last_version: dict[str, int] = {}
    faults: list[str] = []
    for message in messages:
        if message.message_id in seen:
            continue
        seen.add(message.message_id)
        headers = message.headers
        position, version = int(str(headers["x-casework-position"])), int(str(headers["x-casework-version"]))
        stream = str(headers["x-casework-stream"])
        if position <= last_position:
            faults.append(f"{message.message_id} at position {position} after position {last_position}")
        if version <= last_version.get(stream, 0):
            faults.append(f"{message.message_id} after version {last_version[stream]} of its stream")
        last_position = max(last_position, position)
        last_version[stream] = max(last_version.get(stream, 0), version)
    return faults


async def get_one(queue: aio_pika.abc.AbstractQueue, timeout: float = 20.0) -> aio_pika.abc.AbstractIncomingMessage:
    """The next message of a queue, polling until it comes (raises TimeoutError)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        message = await queue.get(fail=False, no_ack=True)
        if message is not None:
            return message
        await asyncio.sleep(0.05)
    raise TimeoutError(f"nothing arrived on {queue.name}")


async def until(condition: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    """Wait for an asynchronous effect to show (polling); fails clearly instead of hanging."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await asyncio.to_thread(condition)
        if value:
            return value
        if loop.time() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def slow_pages(relay: Any, seconds: float) -> None:
    """A broker slow to take each of the relay's pages: every page waits `seconds` first."""
    send_page = relay.publisher.send_page

    async def slowly(messages: Any) -> Any:
        await asyncio.sleep(seconds)
        return await send_page(messages)

    relay.publisher.send_page = slowly
