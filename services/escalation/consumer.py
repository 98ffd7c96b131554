"""The escalation consumer: complaint events from casework.escalation, batched into the clocks, acked after commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitMessage, RabbitRouter
from pydantic import ValidationError

from services.escalation.application import EscalationApplication, GapError
from services.escalation.domain import Fact
from services.escalation.translate import NotAComplaintEvent, fact_from_body
from shared.topology import ESCALATION_QUEUE

log = logging.getLogger("casework.escalation")


@dataclass
class Pending:
    fact: Fact
    raw: aio_pika.IncomingMessage


class EscalationConsumer:
    """Each batch is one transaction over the clocks it touches; nothing is acked before it commits."""

    def __init__(self, app: EscalationApplication, batch_size: int = 200,
                 on_due: Callable[[datetime | None], None] | None = None) -> None:
        self.app = app
        self.batch_size = batch_size
        self.on_due = on_due
        self.queue: asyncio.Queue[Pending] = asyncio.Queue()
        self.busy = False  # a batch is taken from the queue and not yet acked

    async def receive(self, raw: aio_pika.IncomingMessage) -> None:
        try:
            fact = fact_from_body(raw.body)
        except (ValidationError, NotAComplaintEvent, ValueError) as error:
            # Not an event of the contract: the queue dead-letters it to casework.dead.
            log.warning("rejecting %s from casework.escalation: %s", raw.message_id, error)
            with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError):
                await raw.reject(requeue=False)
            return
        await self.queue.put(Pending(fact, raw))

    def idle(self) -> bool:
        """Nothing waits in the queue, and every batch taken from it is recorded and acked."""
        return self.queue.empty() and not self.busy

    async def run(self) -> None:
        while True:
            batch = [await self.queue.get()]
            self.busy = True
            while len(batch) < self.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            due = await self._handle_until_stored(batch)
            if self.on_due is not None:
                self.on_due(due)
            await asyncio.gather(*(safe_ack(p.raw) for p in batch))
            self.busy = False

    async def _handle_until_stored(self, batch: list[Pending]) -> datetime | None:
        """A store outage or an unreadable gap holds the batch; it is never acked unapplied."""
        delay = 0.2
        while True:
            try:
                return await asyncio.to_thread(self.app.handle, [p.fact for p in batch])
            except GapError as error:
                # The missing versions may be among the deliveries already prefetched: take them in.
                while not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                log.warning("%s; holding %d events and retrying in %.1fs", error, len(batch), delay)
            except Exception as error:
                log.warning("clock store unavailable (%s: %s); holding %d events and retrying in %.1fs",
                            type(error).__name__, error, len(batch), delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


async def safe_ack(raw: aio_pika.IncomingMessage) -> None:
    """After a broker restart the delivery tag is gone; the redelivery is then a repeat and ignored."""
    with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError):
        await raw.ack()


def build_router(consumer: EscalationConsumer, prefetch: int) -> RabbitRouter:
    router = RabbitRouter()

    @router.subscriber(ESCALATION_QUEUE, ack_policy=AckPolicy.MANUAL, channel=Channel(prefetch_count=prefetch),
                       decoder=raw_body, no_reply=True, title="casework.escalation:complaint-events")
    async def on_complaint_event(body: bytes, message: RabbitMessage) -> None:
        """Every recorded complaint event; the SLA clocks follow them."""
        await consumer.receive(message.raw_message)

    return router


async def raw_body(message: Any) -> bytes:
    body: bytes = message.body
    return body
