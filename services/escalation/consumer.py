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
from faststream.rabbit import Channel, RabbitBroker, RabbitMessage, RabbitRouter
from pydantic import ValidationError

from services.escalation.application import ContentionError, EscalationApplication, GapError
from services.escalation.domain import Fact
from services.escalation.translate import NotAComplaintEvent, fact_from_body
from shared.outages import OUTAGES, alone, dead_letter, until_stored
from shared.topology import ESCALATION_QUEUE

log = logging.getLogger("casework.escalation")


@dataclass
class Pending:
    fact: Fact
    raw: aio_pika.IncomingMessage


# Waited out, never set aside: the store down, a version not readable yet, or other writers.
WAITS: tuple[type[BaseException], ...] = (*OUTAGES, GapError, ContentionError)
Handled = tuple[int, datetime | None, list[tuple[Pending, Exception]]]


class EscalationConsumer:
    """Each batch is one transaction over the clocks it touches; nothing is acked before it commits.

    An event it cannot read, or fails on by its own fault (twice alone, as intake does with
    commands), goes to casework.dead (`shared.outages.dead_letter`), so that one bad event
    never stops every other case's clock.
    """

    def __init__(self, app: EscalationApplication, broker: RabbitBroker, batch_size: int = 200,
                 on_due: Callable[[datetime | None], None] | None = None) -> None:
        self.app = app
        self.broker = broker
        self.batch_size = batch_size
        self.on_due = on_due
        self.queue: asyncio.Queue[Pending] = asyncio.Queue()
        self.busy = False  # a batch is taken from the queue and not yet acked

    async def receive(self, raw: aio_pika.IncomingMessage) -> None:
        try:
            fact = fact_from_body(raw.body)
        except (ValidationError, NotAComplaintEvent, ValueError) as error:
            await self.dead_letter(raw, "schema_invalid", f"not a complaint event of the contract: {error}")
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
            while batch:
                done, due, faulty = await self._handle_until_stored(batch)
                if self.on_due is not None:
                    self.on_due(due)
                set_aside = {id(pending) for pending, _ in faulty}
                for pending, error in faulty:
                    await self.set_aside(pending, error)
                await asyncio.gather(*(safe_ack(p.raw) for p in batch[:done] if id(p) not in set_aside))
                batch = batch[done:]
            self.busy = False

    async def _handle_until_stored(self, batch: list[Pending]) -> Handled:
        """How many of the batch are handled, the earliest new due time, and those set aside.

        A store outage or an unreadable gap holds the batch; it is never acked unapplied.
        """
        async def whole() -> Handled:
            try:
                return len(batch), await asyncio.to_thread(self.app.handle, [p.fact for p in batch]), []
            except GapError:
                # The missing versions may be among the deliveries already prefetched: take them in.
                while not self.queue.empty():
                    batch.append(self.queue.get_nowait())
                raise

        return await until_stored(whole, lambda: self._one_at_a_time(batch), f"{len(batch)} events", WAITS)

    async def _one_at_a_time(self, batch: list[Pending]) -> Handled | None:
        """Each event alone, in order; one that fails alone is set aside. A wait met on the way
        stops there (None if nothing was handled before it)."""
        due: datetime | None = None
        faulty: list[tuple[Pending, Exception]] = []
        for done, pending in enumerate(batch):
            try:
                result = await alone(lambda: asyncio.to_thread(self.app.handle, [pending.fact]), WAITS)  # noqa: B023
            except WAITS:
                return (done, due, faulty) if done else None
            if isinstance(result, Exception):
                faulty.append((pending, result))
            elif result is not None:
                due = result if due is None else min(due, result)
        return len(batch), due, faulty

    async def set_aside(self, pending: Pending, error: Exception) -> None:
        log.error("escalation cannot apply %s to the clock of case %s and sets it aside in casework.dead: %s: %s",
                  pending.raw.message_id, pending.fact.case_id, type(error).__name__, error, exc_info=error)
        await self.dead_letter(pending.raw, "internal_error",
                               f"escalation failed on this event ({type(error).__name__}); it is set aside so "
                               "that other cases' clocks run; `casework dead redrive` sends it back once that "
                               "is put right")

    async def dead_letter(self, raw: aio_pika.IncomingMessage, code: str, message: str) -> None:
        await dead_letter(self.broker, raw, code, message, "escalation")
        await safe_ack(raw)


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
