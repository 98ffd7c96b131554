"""Replay recorded history: re-publish a range into one subscriber's queue."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import aio_pika
from eventsourcing.application import Application

from services.intake.translate import outgoing
from shared.publishing import Outgoing
from shared.store import eventsourcing_env
from shared.topology import topic_matches


class StoreLog(Application[UUID]):
    """The intake store's notification log, read-only."""

    name = "casework"
    log_section_size = 1000

    def __init__(self, database_url: str) -> None:
        super().__init__(env=eventsourcing_env(database_url, "casework"))


@dataclass(frozen=True)
class ReplayRange:
    """Notification positions, inclusive at both ends (`stop` None: to the end)."""

    start: int
    stop: int | None = None


def history(database_url: str, span: ReplayRange, page: int = 1000) -> Iterator[tuple[int, list[Outgoing]]]:
    """(position, messages) for every recorded event in the range, in order."""
    log = StoreLog(database_url)
    try:
        position = span.start
        while True:
            notifications = log.recorder.select_notifications(position, page, stop=span.stop)
            if not notifications:
                return
            for notification in notifications:
                yield notification.id, outgoing(log.mapper.to_domain_event(notification), notification.id)
            position = notifications[-1].id + 1
    finally:
        log.close()


def last_position(database_url: str) -> int:
    log = StoreLog(database_url)
    try:
        return log.recorder.max_notification_id() or 0
    finally:
        log.close()


class QueueNotFound(LookupError):
    """`replay publish` names a queue the broker does not have."""


async def publish_range(database_url: str, amqp_url: str, span: ReplayRange, binding: str, queue: str,
                        exchange: str = "casework.events",
                        progress: Callable[[int], None] | None = None) -> int:
    """Send the range's messages that `binding` matches on `exchange` straight into `queue`.

    The default exchange routes by queue name, so no other subscriber sees them; each keeps
    its original message id, so the subscriber drops what it already had.
    """
    connection = await aio_pika.connect_robust(amqp_url)
    sent = 0
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        try:
            await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelNotFoundEntity:
            raise QueueNotFound(f"no queue {queue!r} on the broker at CASEWORK_AMQP_URL: the subscriber "
                                "declares and binds its queue first") from None
        pending: list[Any] = []
        for position, messages in await asyncio.to_thread(lambda: list(history(database_url, span))):
            for message in messages:
                if message.exchange != exchange or not topic_matches(binding, message.routing_key):
                    continue
                headers = {**message.headers, "x-casework-replayed": True,
                           "x-casework-routing-key": message.routing_key}
                pending.append(channel.default_exchange.publish(aio_pika.Message(
                    message.body, message_id=message.message_id, headers=headers, content_type="application/json",
                    delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=queue))
                sent += 1
            if len(pending) >= 500:
                await asyncio.gather(*pending)
                pending = []
            if progress:
                progress(position)
        await asyncio.gather(*pending)
    return sent
