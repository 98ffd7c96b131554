"""The intake consumer: check what the broker proved, parse, batch into the application, ack after commit."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aio_pika
import aiormq
from aiormq.abc import DeliveredMessage
from faststream import AckPolicy
from faststream.rabbit import Channel, RabbitBroker, RabbitMessage, RabbitRouter
from pamqp.commands import Basic
from pydantic import ValidationError

from services.intake.application import IntakeApplication, Submission
from shared.events import COMMANDS, MAX_BODY_BYTES, ErrorCode, Outcome, OutcomeError, parse_command
from shared.faults import crash_point
from shared.outages import OUTAGES, alone, dead_letter_headers, until_stored
from shared.topology import COMMANDS as COMMANDS_EXCHANGE
from shared.topology import DEAD, EVENTS, INTAKE_QUEUE, declare_consumed_queue

log = logging.getLogger("casework.intake")

# A batch that would start with fewer than LINGER_BELOW commands waits LINGER_SECONDS for more.
LINGER_BELOW = 16
LINGER_SECONDS = 0.002


class Malformed(Exception):
    """Raised when a message cannot be read as a command at all; it goes to casework.dead."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code


class Delivery:
    """A delivery as aiormq hands it over, read with the names of aio-pika's message.

    aio-pika's message object copies and converts every property of every delivery, and
    takes a task more to reach the consumer: 20 µs a command, a twentieth of intake's time.
    Here only what the consumer reads is copied, as it is, and the ack goes to aiormq's channel.
    """

    __slots__ = ("_message", "body", "content_type", "correlation_id", "delivery_tag", "headers", "message_id",
                 "reply_to", "routing_key", "timestamp", "user_id")

    def __init__(self, message: DeliveredMessage) -> None:
        self._message = message
        properties = message.header.properties
        self.body: bytes = message.body
        self.routing_key: str | None = message.routing_key
        self.delivery_tag: int | None = message.delivery_tag
        self.headers: dict[str, Any] | None = properties.headers
        self.message_id: str | None = properties.message_id
        self.user_id: str | None = properties.user_id
        self.reply_to: str | None = properties.reply_to
        self.correlation_id: str | None = properties.correlation_id
        self.content_type: str | None = properties.content_type
        self.timestamp: datetime | None = properties.timestamp

    @property
    def channel(self) -> aiormq.abc.AbstractChannel:
        if self._message.channel.is_closed:
            raise aio_pika.exceptions.ChannelInvalidStateError
        return self._message.channel

    async def ack(self, multiple: bool = False) -> None:
        await self.channel.basic_ack(delivery_tag=self.delivery_tag or 0, multiple=multiple)


# aio-pika's message from an in-process broker (through FastStream), aiormq's from AmqpSource.
Received = aio_pika.IncomingMessage | Delivery


@dataclass
class Pending:
    submission: Submission
    raw: Received
    channel: int = 0


def read_submission(raw: Received) -> Submission:
    """Everything that makes a message unusable, checked before any store is touched."""
    if len(raw.body) > MAX_BODY_BYTES:
        raise Malformed(ErrorCode.TOO_LARGE, f"body is {len(raw.body)} bytes; the limit is {MAX_BODY_BYTES}")
    if "x-death" in (raw.headers or {}):
        # Dead-lettered into casework.commands by somebody's queue: not a command anyone sent.
        raise Malformed(ErrorCode.REROUTED, "the message was dead-lettered from another queue, not published")
    key = raw.routing_key or ""
    if key not in COMMANDS:
        raise Malformed(ErrorCode.UNKNOWN_COMMAND, f"no command is called {key!r}")
    if not raw.message_id:
        raise Malformed(ErrorCode.MISSING_MESSAGE_ID, "message_id is required: it is the idempotency key")
    try:
        command = parse_command(key, raw.body)  # one pass: pydantic parses the JSON as it validates
    except ValidationError as error:
        unreadable = [e for e in error.errors() if e["type"] == "json_invalid"]
        if unreadable:
            raise Malformed(ErrorCode.NOT_JSON, f"body is not JSON: {unreadable[0]['msg']}") from None
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()[:10])
        raise Malformed(ErrorCode.SCHEMA_INVALID, problems) from None
    return Submission(command=command, message_id=raw.message_id, user_id=raw.user_id or "",
                      reply_to=raw.reply_to, correlation_id=raw.correlation_id, sent_at=raw.timestamp
                      if raw.timestamp and raw.timestamp.tzinfo else None)


# What a batch came to: the commands recorded (a prefix of it), their outcomes, and the one
# after them that was set aside, if any.
Recorded = tuple[list["Pending"], list[Outcome], tuple["Pending", Exception] | None]


class IntakeConsumer:
    """Collects commands into batches; each batch is one transaction, acked only after it commits."""

    def __init__(self, app: IntakeApplication, broker: RabbitBroker, batch_size: int = 200,
                 on_commit: Callable[[], None] | None = None) -> None:
        self.app = app
        self.broker = broker
        self.batch_size = batch_size
        self.on_commit = on_commit
        self.queue: asyncio.Queue[Pending] = asyncio.Queue()
        self.acks = Acks()
        self.busy = False  # a batch is taken from the queue and not yet acked

    async def receive(self, raw: Received) -> None:
        channel = self.acks.taken(raw)
        try:
            submission = read_submission(raw)
        except Malformed as error:
            await self.dead_letter(raw, error.code, str(error), channel)
            return
        if not submission.user_id:
            await self.answer_unrecorded(raw, Outcome(
                command_id=submission.message_id, command=submission.command.routing_key, status="rejected",
                error=OutcomeError(code=ErrorCode.MISSING_USER_ID,
                                   message="user_id is required; the broker validates it against your login")))
            await self.acks.ack(raw, channel)
            return
        await self.queue.put(Pending(submission, raw, channel))

    def idle(self) -> bool:
        """Nothing waits in the queue, and every batch taken from it is recorded and acked."""
        return self.queue.empty() and not self.busy

    async def run(self) -> None:
        """Take what has arrived (up to batch_size), record it, answer duplicates, ack."""
        while True:
            batch = [await self.queue.get()]
            self.busy = True
            if self.queue.qsize() < LINGER_BELOW:
                # A few more milliseconds make a batch of several commands out of a trickle:
                # the transaction's fixed cost dominated intake's time at moderate rates.
                await asyncio.sleep(LINGER_SECONDS)
            while len(batch) < self.batch_size and not self.queue.empty():
                batch.append(self.queue.get_nowait())
            while batch:
                recorded, outcomes, faulty = await self._record(batch)
                crash_point("intake_before_ack")
                if self.on_commit and recorded:
                    self.on_commit()
                for pending, outcome in zip(recorded, outcomes, strict=True):
                    if outcome.status == "duplicate":
                        await self.answer_unrecorded(pending.raw, outcome)
                if faulty is not None:
                    await self.set_aside(*faulty)
                await self.acks.ack_batch(recorded)
                batch = batch[len(recorded) + (faulty is not None):]
            self.busy = False

    async def _record(self, batch: list[Pending]) -> Recorded:
        """Record the batch, or its first part: (recorded, their outcomes, a command set aside).

        An outage waits (`shared.outages`); after a fault the commands are recorded one at a
        time, in order, and one that fails alone is set aside, the rest recorded. An outage met
        on the way stops there and waits, keeping what was recorded.
        """
        async def whole() -> Recorded:
            return batch, await self.app.submit_async([p.submission for p in batch]), None

        return await until_stored(whole, lambda: self._one_at_a_time(batch), f"{len(batch)} commands")

    async def _one_at_a_time(self, batch: list[Pending]) -> Recorded | None:
        recorded: list[Pending] = []
        outcomes: list[Outcome] = []
        for pending in batch:
            try:
                result = await alone(lambda: self.app.submit_async([pending.submission]))  # noqa: B023
            except OUTAGES:
                return (recorded, outcomes, None) if recorded else None  # wait, keeping what was recorded
            if isinstance(result, Exception):
                return recorded, outcomes, (pending, result)
            recorded.append(pending)
            outcomes.extend(result)
        return recorded, outcomes, None

    async def set_aside(self, pending: Pending, error: Exception) -> None:
        """A command intake fails on by its own fault goes to casework.dead, so the rest flow."""
        log.error("intake cannot record %s (%s) and sets it aside in casework.dead: %s: %s",
                  pending.submission.message_id, pending.submission.command.routing_key, type(error).__name__,
                  error, exc_info=error)
        await self.dead_letter(pending.raw, ErrorCode.INTERNAL_ERROR,
                               f"intake failed on this command ({type(error).__name__}); it is set aside "
                               "so that other commands flow, and can be sent again once that is put right",
                               pending.channel)

    async def dead_letter(self, raw: Received, code: ErrorCode, message: str,
                          channel: int) -> None:
        log.info("dead-lettering %s (%s): %s", raw.message_id, code, message)
        # The copy is published as intake: who sent the command stays readable in a header.
        headers = dead_letter_headers(raw.headers, raw.routing_key, code.value, message,
                                      **{"x-casework-user-id": raw.user_id or ""})
        await self.broker.publish(
            raw.body, exchange=DEAD, routing_key=raw.routing_key or "", message_id=raw.message_id,
            headers=headers, persist=True, content_type=raw.content_type, user_id=None,
        )
        if raw.user_id:
            await self.answer_unrecorded(raw, Outcome(
                command_id=raw.message_id or "", command=raw.routing_key, status="rejected",
                error=OutcomeError(code=code, message=message)))
        await self.acks.ack(raw, channel)

    async def answer_unrecorded(self, raw: Received, outcome: Outcome) -> None:
        """Answers that the log does not hold (duplicates, unreadable commands) go straight out."""
        body = outcome.model_dump_json(exclude_none=True).encode()
        user = raw.user_id or "anonymous"
        await self.broker.publish(body, exchange=EVENTS, routing_key=f"command.{outcome.status}.{user}",
                                  persist=True, content_type="application/json",
                                  message_id=f"{outcome.command_id}:{outcome.status}:{time.time_ns()}")
        if raw.reply_to:
            await self.broker.publish(body, routing_key=raw.reply_to, correlation_id=raw.correlation_id,
                                      content_type="application/json", persist=True)


class Acks:
    """Settles deliveries, a whole batch with one multiple-ack where that is exact.

    A multiple-ack settles every unsettled delivery up to its tag on the channel, so it is
    used only when every delivery taken on that channel up to the batch's newest one is in
    the batch; a message still on its way to casework.dead keeps the batch to single acks.
    One ack frame instead of two hundred saves the broker and the consumer work per command.
    """

    def __init__(self) -> None:
        self.unsettled: dict[int, set[int]] = {}

    @staticmethod
    def channel_of(raw: Received) -> int:
        try:
            return id(raw.channel)
        except aio_pika.exceptions.ChannelInvalidStateError:  # closed, or an in-process broker's message
            return 0

    def taken(self, raw: Received) -> int:
        """Note a delivery as unsettled; returns the key of its channel."""
        channel = self.channel_of(raw)
        self.unsettled.setdefault(channel, set()).add(raw.delivery_tag or 0)
        return channel

    def _settled(self, channel: int, tags: set[int]) -> None:
        left = self.unsettled.get(channel)
        if left is not None:
            left -= tags
            if not left:
                del self.unsettled[channel]

    async def ack(self, raw: Received, channel: int) -> None:
        await safe_ack(raw)
        self._settled(channel, {raw.delivery_tag or 0})

    async def ack_batch(self, batch: list[Pending]) -> None:
        by_channel: dict[int, list[Received]] = {}
        for pending in batch:
            by_channel.setdefault(pending.channel, []).append(pending.raw)
        for channel, messages in by_channel.items():
            tags = {raw.delivery_tag or 0 for raw in messages}
            newest = max(messages, key=lambda raw: raw.delivery_tag or 0)
            top = newest.delivery_tag or 0
            older = {tag for tag in self.unsettled.get(channel, ()) if tag <= top}
            if channel and older <= tags:
                await safe_ack(newest, multiple=True)
            else:
                for raw in messages:
                    await safe_ack(raw)
            self._settled(channel, tags)


async def safe_ack(raw: Received, multiple: bool = False) -> None:
    """After a broker restart the delivery tag is gone; the redelivery will be answered as a duplicate."""
    with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError):
        await raw.ack(multiple=multiple)


class AmqpSource:
    """Feeds the consumer from casework.intake on its own robust aio-pika connection.

    On a real broker this is the hot path: FastStream's per-message machinery (context,
    middlewares, dependency injection) cost intake a third of its time, and aio-pika's
    message object a twentieth more. aio-pika keeps the connection and the channel, and
    after a reconnect declares the queue and sets the prefetch again; the consumer is
    aiormq's own, on aio-pika's channel, taken up again on every channel aio-pika reopens
    and only there, so deliveries reach the consumer by one path, in order.
    """

    def __init__(self, amqp_url: str, consumer: IntakeConsumer, prefetch: int) -> None:
        self.amqp_url = amqp_url
        self.consumer = consumer
        self.prefetch = prefetch
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.channel: aio_pika.abc.AbstractRobustChannel | None = None
        self.queue: aio_pika.abc.AbstractQueue | None = None
        self.tag: str | None = None
        self.consuming = False
        self.resuming: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.connection = await aio_pika.connect_robust(self.amqp_url, reconnect_interval=1.0)
        self.channel = await self.connection.channel()
        await self.channel.set_qos(prefetch_count=self.prefetch)
        self.consuming = True
        self.channel.reopen_callbacks.add(self._consume_again)
        await self._declare_and_consume()

    async def _consume(self) -> None:
        assert self.channel is not None and self.queue is not None
        underlay = await self.channel.get_underlay_channel()
        self.tag = f"casework.intake.{uuid.uuid4().hex}"
        underlay.on_consumer_cancel_callbacks.add(self._cancelled)
        await underlay.basic_consume(self.queue.name, self._deliver, consumer_tag=self.tag)

    async def _deliver(self, message: DeliveredMessage) -> None:
        await self.consumer.receive(Delivery(message))

    async def _consume_again(self, *_: Any) -> None:
        """aio-pika reopened the channel, and declared the queue and set the prefetch on it.

        If consuming fails, the channel is closed with it and reopened, which brings this
        round again.
        """
        if self.consuming:
            try:
                await self._consume()
            except Exception as error:
                log.warning("intake cannot consume on the reopened channel (%s); waiting for the next", error)
                raise

    def _cancelled(self, frame: Basic.Cancel) -> None:
        """The broker cancelled the consumer (the queue was deleted, say): declare it, consume again.

        Called by the channel's reader, which must go on reading the answers this waits for.
        """
        if self.consuming and frame.consumer_tag == self.tag:
            log.warning("RabbitMQ cancelled intake's consumer; declaring casework.intake and consuming again")
            self.resuming = asyncio.create_task(self._declare_and_consume())

    async def _declare_and_consume(self) -> None:
        assert self.channel is not None
        self.queue = await declare_consumed_queue(self.channel, INTAKE_QUEUE, COMMANDS_EXCHANGE, ("#",))
        await self._consume()

    async def stop_consuming(self) -> None:
        """Take no new deliveries; those already taken still commit and are acked."""
        self.consuming = False
        if self.channel is not None and self.tag is not None:
            with contextlib.suppress(aio_pika.exceptions.AMQPError, RuntimeError, ConnectionError):
                underlay = await self.channel.get_underlay_channel()
                await underlay.basic_cancel(self.tag)
            self.tag = None

    async def close(self) -> None:
        self.consuming = False
        if self.connection is not None:
            await self.connection.close()
            self.connection = None


def build_router(consumer: IntakeConsumer, prefetch: int) -> RabbitRouter:
    router = RabbitRouter()

    @router.subscriber(INTAKE_QUEUE, COMMANDS_EXCHANGE, ack_policy=AckPolicy.MANUAL,
                       channel=Channel(prefetch_count=prefetch), parser=plain_message, decoder=raw_delivery,
                       no_reply=True,
                       title="casework.intake:commands")
    async def on_command(delivery: Any) -> None:
        """Every command of the contract, from branch systems, HQ and the escalation service."""
        await consumer.receive(delivery)

    return router


async def plain_message(raw: aio_pika.IncomingMessage, _: Any) -> RabbitMessage:
    """FastStream's own parser, without a fresh uuid4 for ids the message does not carry.

    The consumer reads aio-pika's message itself; generating two random ids per command cost
    a twentieth of the intake process.
    """
    return RabbitMessage(body=raw.body, headers=raw.headers, reply_to=raw.reply_to or "",
                         content_type=raw.content_type, message_id=raw.message_id or "",
                         correlation_id=raw.correlation_id or raw.message_id or "", raw_message=raw)


async def raw_delivery(message: RabbitMessage) -> Any:
    """Hand the handler aio-pika's own message: the consumer reads its properties and acks it itself.

    Injecting FastStream's message object costs about half of consume throughput.
    """
    return message.raw_message


__all__ = ["AmqpSource", "IntakeConsumer", "Malformed", "build_router", "read_submission"]
