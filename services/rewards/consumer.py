"""The rewards consumer: batches from casework.rewards into one transaction each, acked only after commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import aio_pika
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitRouter

from services.rewards import upstream as up
from services.rewards.application import Result, RewardsApplication
from shared.events import EventMessage
from shared.faults import crash_point
from shared.outages import OUTAGES, alone, dead_letter, until_stored
from shared.topology import REWARDS_QUEUE

log = logging.getLogger("casework.rewards")


def before_commit() -> None:
    """CASEWORK_FAULT=rewards_before_commit: die with the batch processed and nothing committed."""
    crash_point("rewards_before_commit")


class RewardsConsumer:
    """Takes what has arrived (up to batch_size), records its effects in one transaction, then acks it all."""

    def __init__(self, app: RewardsApplication, broker: RabbitBroker, batch_size: int = 1000,
                 on_commit: Callable[[], None] | None = None, linger: float = 0.05) -> None:
        self.app = app
        self.broker = broker
        self.batch_size = batch_size
        self.linger = linger
        self.on_commit = on_commit
        self.queue: asyncio.Queue[aio_pika.IncomingMessage] = asyncio.Queue()
        self.handled = 0
        self.busy = False

    async def receive(self, raw: aio_pika.IncomingMessage) -> None:
        await self.queue.put(raw)

    def idle(self) -> bool:
        """Nothing waits in the queue, and every batch taken from it is recorded and acked."""
        return self.queue.empty() and not self.busy

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await self.queue.get()]
            # Linger a moment for more: one transaction per few hundred events costs far less
            # than one per handful, and rewards is never in a hurry (outside first, inside later).
            deadline = loop.time() + self.linger
            while len(batch) < self.batch_size:
                if self.queue.empty():
                    if loop.time() >= deadline:
                        break
                    await asyncio.sleep(0.005)
                    continue
                batch.append(self.queue.get_nowait())
            self.busy = True
            try:
                await self.handle(batch)
            except (aio_pika.exceptions.AMQPError, ConnectionError, RuntimeError) as error:
                # The broker went away mid-batch: what was committed stays, and the unacked
                # messages come back on the new channel to find their effects recorded.
                log.warning("rewards batch of %d not acked (%s); the broker redelivers it", len(batch), error)
            finally:
                self.busy = False

    async def handle(self, batch: list[aio_pika.IncomingMessage]) -> None:
        """Everything in the batch is processed, dead-lettered or passed over before any of it is acked."""
        readable: list[tuple[aio_pika.IncomingMessage, EventMessage]] = []
        dead: list[tuple[aio_pika.IncomingMessage, str, str]] = []
        for raw in batch:
            try:
                event = up.read(raw.routing_key or "", raw.body)
            except up.Unusable as error:
                dead.append((raw, error.code, str(error)))
                continue
            if event is not None:
                readable.append((raw, event))
        results = await self._process_until_stored([event for _, event in readable])
        if any(r.status in ("applied", "parked") for r in results):
            crash_point("rewards_after_commit")  # committed, not acked: all of it comes back
        dead.extend((raw, r.code, r.message) for (raw, _), r in zip(readable, results, strict=True)
                    if r.status == "rejected")
        for raw, code, message in dead:
            await self.dead_letter(raw, code, message)
        if self.on_commit and results:
            self.on_commit()
        await ack_all(batch)
        self.handled += len(batch)

    async def _process_until_stored(self, events: list[EventMessage]) -> list[Result]:
        """An outage of the store never drops an event: the batch waits, unacked, and goes through after.

        After a fault (`shared.outages`) the events are processed one at a time, and one that
        fails alone is rejected as `internal_error`, which sends it to casework.dead, while the
        others take effect.
        """
        if not events:
            return []
        return await until_stored(lambda: asyncio.to_thread(self.app.process, events, before_commit),
                                  lambda: self._one_at_a_time(events), f"{len(events)} events")

    async def _one_at_a_time(self, events: list[EventMessage]) -> list[Result] | None:
        """Each event alone, in order; None if the store turned out to be down (then all wait again:
        what took effect meanwhile is found recorded when the batch comes round)."""
        results: list[Result] = []
        for event in events:
            try:
                result = await alone(lambda: asyncio.to_thread(self.app.process, [event], before_commit))  # noqa: B023
            except OUTAGES:
                return None
            if isinstance(result, Exception):
                log.error("rewards cannot process %s %s and sets it aside in casework.dead: %s: %s",
                          event.event, up.message_id(event), type(result).__name__, result, exc_info=result)
                results.append(Result("rejected", "internal_error",
                                      f"rewards failed on this event ({type(result).__name__}); it is set aside "
                                      "so that other events flow; `casework dead redrive` sends it back once "
                                      "that is put right"))
            else:
                results.extend(result)
        return results

    async def dead_letter(self, raw: aio_pika.IncomingMessage, code: str, message: str) -> None:
        await dead_letter(self.broker, raw, code, message, "rewards")


async def ack_all(batch: list[aio_pika.IncomingMessage]) -> None:
    """One multiple-ack per channel: the batch holds every delivery up to its last, in order.

    After a broker restart the delivery tags are gone; the redeliveries then meet their
    effects already recorded and change nothing.
    """
    last: dict[int, aio_pika.IncomingMessage] = {}
    for raw in batch:
        last[id(raw.channel)] = raw
    for raw in last.values():
        with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError):
            await raw.ack(multiple=True)


def build_router(consumer: RewardsConsumer, prefetch: int) -> RabbitRouter:
    router = RabbitRouter()

    @router.subscriber(REWARDS_QUEUE, ack_policy=AckPolicy.MANUAL, channel=Channel(prefetch_count=prefetch),
                       decoder=raw_message, no_reply=True, title="casework.rewards:events")
    async def on_event(raw: Any) -> None:
        """Surplus reports and reviews, rewards periods' decisions and settlements (complaints pass by)."""
        await consumer.receive(raw)

    return router


async def raw_message(message: Any) -> Any:
    """The aio-pika message itself: injecting RabbitMessage instead costs a thread hop per message."""
    return message.raw_message
