"""What sits in casework.dead, and sending the events a service set aside back to it.

Nothing in casework.dead is thrown away: it waits for a person. A command intake could not
use was answered `rejected`, so its sender corrects it or, for `internal_error`, sends it
again once the fault is put right. An event that escalation or rewards set aside
(`internal_error`), or that the broker dead-lettered from their queues after 20 deliveries,
has no sender to do that: `redrive` publishes it again to `casework.services` with its
original routing key and message id, so that the services' queues take it and the service
applies it, once (both drop a message id they have seen).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from casework.replay import QueueNotFound
from shared.topology import DEAD_QUEUE, ESCALATION_QUEUE, REWARDS_QUEUE, SERVICES

EVENT_QUEUES = {ESCALATION_QUEUE.name: "escalation", REWARDS_QUEUE.name: "rewards"}
# What the dead-lettering added, dropped again when a letter is sent back.
ADDED_HEADERS = ("x-casework-error", "x-casework-consumer", "x-casework-routing-key", "x-casework-user-id",
                 "x-casework-set-aside-at", "x-death",
                 "x-delivery-count", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason",
                 "x-last-death-exchange", "x-last-death-queue", "x-last-death-reason")


@dataclass(frozen=True)
class DeadLetter:
    """One message in casework.dead: what it was, who put it there and why."""

    message_id: str
    routing_key: str  # as it was first published
    set_aside_by: str  # intake, escalation, rewards, or the queue the broker took it from
    code: str  # casework's error code, or the broker's reason (delivery_limit, rejected, …)
    reason: str
    size: int
    sender: str = ""  # a command's RabbitMQ user, where it named one
    at: str = ""  # when it was put there (ISO 8601, UTC), where that is known

    @classmethod
    def of(cls, message: AbstractIncomingMessage) -> DeadLetter:
        headers: dict[str, Any] = dict(message.headers or {})
        routing_key = str(headers.get("x-casework-routing-key") or message.routing_key or "")
        if "x-casework-error" in headers:
            try:
                error = json.loads(str(headers["x-casework-error"]))
                code, reason = str(error.get("code", "")), str(error.get("message", ""))
            except (ValueError, AttributeError):
                code, reason = "unknown", str(headers["x-casework-error"])
            by = str(headers.get("x-casework-consumer") or "intake")
            at = str(headers.get("x-casework-set-aside-at") or "")
        else:
            deaths = headers.get("x-death") or [{}]
            first = deaths[0] if isinstance(deaths, list) and deaths and isinstance(deaths[0], dict) else {}
            queue, code = str(first.get("queue", "")), str(first.get("reason", "unknown"))
            by = EVENT_QUEUES.get(queue, queue or "unknown")
            reason = f"the broker dead-lettered it from {queue or 'a queue'} ({code})"
            when = first.get("time")
            at = when.astimezone(UTC).isoformat(timespec="seconds") if isinstance(when, datetime) else ""
        sender = str(headers.get("x-casework-user-id") or message.user_id or "")
        return cls(message.message_id or "", routing_key, by, code, reason, len(message.body), sender, at)

    @property
    def why_it_stays(self) -> str | None:
        """None if `redrive` may send it back; otherwise why not."""
        if self.set_aside_by not in EVENT_QUEUES.values():
            return ("a command: its sender was answered rejected and sends it again"
                    if self.set_aside_by in ("intake", "casework.intake") else f"set aside by {self.set_aside_by}")
        if self.code not in ("internal_error", "delivery_limit"):
            return f"{self.code}: it would fail the same way again"
        return None


async def dead_queue(channel: AbstractChannel) -> AbstractQueue:
    try:
        return await channel.declare_queue(DEAD_QUEUE.name, passive=True)
    except aio_pika.exceptions.ChannelNotFoundEntity:
        raise QueueNotFound(f"this vhost has no {DEAD_QUEUE.name} queue: run `casework topology`, or start the "
                            "services, which declare it") from None


async def peek(amqp_url: str, limit: int) -> tuple[int, list[DeadLetter]]:
    """How many messages casework.dead holds, and the first `limit` of them, all left in place."""
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await dead_queue(channel)
        total = queue.declaration_result.message_count or 0
        letters: list[DeadLetter] = []
        # Taken without an ack, they go back to the queue, in order, when the channel closes.
        while len(letters) < min(limit, total):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            letters.append(DeadLetter.of(message))
        await channel.close()
    return total, letters


@dataclass
class Redriven:
    sent: list[DeadLetter]
    refused: list[tuple[DeadLetter, str]]  # asked for, and why it cannot be sent back
    missing: list[str]  # asked-for ids casework.dead does not hold


async def redrive(amqp_url: str, ids: Collection[str] | None) -> Redriven:
    """Send back the letters named by `ids` (every one that can go, for None), each confirmed
    by the broker before it is removed from casework.dead; the rest stay where they were."""
    result = Redriven([], [], [])
    seen: set[str] = set()
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await dead_queue(channel)
        services = await channel.get_exchange(SERVICES.name, ensure=False)
        while (message := await queue.get(no_ack=False, fail=False)) is not None:
            letter = DeadLetter.of(message)
            seen.add(letter.message_id)
            if ids is not None and letter.message_id not in ids:
                continue
            if (why := letter.why_it_stays) is not None:
                if ids is not None:
                    result.refused.append((letter, why))
                continue
            headers = {k: v for k, v in (message.headers or {}).items() if k not in ADDED_HEADERS}
            await services.publish(aio_pika.Message(
                message.body, message_id=message.message_id, headers=headers, content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=letter.routing_key)
            await message.ack()
            result.sent.append(letter)
        await channel.close()
    result.missing = sorted(set(ids or ()) - seen)
    return result
