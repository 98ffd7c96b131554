"""A steady load with confirms and a listener that timestamps answers: the latency measure.

Shared by `bench.intake` (command → outcome through casework) and `bench.ceiling` (message →
forwarded message through the raw pipeline), so both latencies come from the same clock,
pacing and listener, and the one is a fair yardstick for the other.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import Callable

import aio_pika
import aiormq
from pamqp.commands import Basic

from shared.publishing import AmqpPublisher, Outgoing

PAGE_TICK = 0.002


async def paced_publish(url: str, n: int, rate: float, message: Callable[[int], Outgoing],
                        user_id: str | None = None) -> dict[str, float]:
    """Publish `message(0)` … `message(n - 1)` at a steady rate with confirms; each one's send time.

    Every PAGE_TICK the messages that are due go out as one page on the relay's own
    publisher (one socket write, confirms awaited in the background). The measure is of
    the service: at 1,000 commands/s a per-message client (aio-pika's `publish`, a task and
    a confirm future each) took a sixth of this machine's two cores from it.
    """
    sent: dict[str, float] = {}
    publisher = AmqpPublisher(url, user_id=user_id)
    await publisher.publish_page([])  # connect before the clock starts
    in_flight: set[asyncio.Task[None]] = set()
    start = time.perf_counter()
    i = 0
    while i < n:
        due = min(n, int((time.perf_counter() - start) * rate) + 1)
        page = [message(j) for j in range(i, due)]
        now = time.time()
        for out in page:
            sent[out.message_id] = now
        i = due
        if page:
            task = asyncio.create_task(publisher.publish_page(page))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if i < n:
            await asyncio.sleep(max(PAGE_TICK, start + i / rate - time.perf_counter()))
    await asyncio.gather(*in_flight)
    await publisher.close()
    return sent


async def listen(channel: aio_pika.abc.AbstractChannel, exchange: str, key: str,
                 id_of: Callable[[aiormq.abc.DeliveredMessage], str]) -> dict[str, float]:
    """Bind an exclusive queue to `exchange` and record when each answer arrives, by `id_of`.

    No acks, and aiormq's delivery without aio-pika's message object: the listener is load
    on the same two cores, and an exclusive queue loses nothing the measurement needs.
    """
    queue = await channel.declare_queue(exclusive=True)
    await queue.bind(exchange, routing_key=key)
    arrived: dict[str, float] = {}

    async def on_answer(message: aiormq.abc.DeliveredMessage) -> None:
        arrived[id_of(message)] = time.time()

    underlay = await channel.get_underlay_channel()
    await underlay.basic_consume(queue.name, on_answer, no_ack=True)
    return arrived


async def wait_answered(arrived: dict[str, float], n: int, timeout: float = 60.0) -> None:
    deadline = time.perf_counter() + timeout
    while len(arrived) < n and time.perf_counter() < deadline:
        await asyncio.sleep(0.1)


def delays(sent: dict[str, float], arrived: dict[str, float]) -> dict[str, float]:
    """p50, p99 and max of send → answer in ms, how many of the sent were answered, and the
    run's slowest stretch (see `slowest_stretch`)."""
    ms = sorted((arrived[m] - sent[m]) * 1000 for m in sent if m in arrived)
    if not ms:
        raise RuntimeError(f"none of {len(sent)} messages was answered")
    return {"n": len(sent), "answered": len(ms), "p50_ms": statistics.median(ms),
            "p99_ms": ms[max(int(len(ms) * 0.99) - 1, 0)], "max_ms": ms[-1], **slowest_stretch(sent, arrived)}


def slowest_stretch(sent: dict[str, float], arrived: dict[str, float], over_ms: float = 50.0,
                    apart: float = 0.3) -> dict[str, float]:
    """The stretch with the most messages slower than `over_ms`: its first send (epoch seconds),
    how long it lasted and how many it held. Slow messages sent less than `apart` seconds after
    the one before belong to one stretch.

    A run's p99 is decided by its few slow stretches; their wall-clock times line up with the
    broker's and the database's logs (a quorum write-ahead log rolling over shows there as
    `segment_writer` lines), which a percentile alone cannot.
    """
    slow = sorted(sent[m] for m in sent if m in arrived and (arrived[m] - sent[m]) * 1000 > over_ms)
    best = {"stretch_at": 0.0, "stretch_s": 0.0, "stretch_n": 0.0}
    first = 0
    for i in range(len(slow)):
        if i and slow[i] - slow[i - 1] >= apart:
            first = i
        if i - first + 1 > best["stretch_n"]:
            best = {"stretch_at": slow[first], "stretch_s": slow[i] - slow[first], "stretch_n": float(i - first + 1)}
    return best


async def broker_floor(url: str, rate: float, seconds: float, body_bytes: int = 600) -> dict[str, float]:
    """p50/p99 of RabbitMQ alone at a steady rate: a message sent → delivered to a consumer
    of one quorum queue, which acks each. Nothing else runs: no database, no forward.

    Every latency measured here goes through at least this much of the broker (a command
    into `casework.intake`, a message into the raw pipeline's queue), so it is the floor
    under both, with the same pacing and clock.
    """
    n = int(rate * seconds)
    body = b'{"pad": "' + b"x" * max(body_bytes - 11, 0) + b'"}'
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(f"bench.floor.{uuid.uuid4().hex[:12]}", durable=True,
                                            arguments={"x-queue-type": "quorum"})
        try:
            arrived: dict[str, float] = {}
            underlay = await channel.get_underlay_channel()
            await underlay.basic_qos(prefetch_count=500)

            async def on_message(message: aiormq.abc.DeliveredMessage) -> None:
                arrived[str(message.header.properties.message_id)] = time.time()
                assert isinstance(message.delivery, Basic.Deliver) and message.delivery.delivery_tag is not None
                await underlay.basic_ack(message.delivery.delivery_tag)

            consuming = await underlay.basic_consume(queue.name, on_message)
            sent = await paced_publish(url, n, rate, lambda j: Outgoing("", queue.name, f"floor-{j}", body))
            await wait_answered(arrived, n)
            assert consuming.consumer_tag is not None
            await underlay.basic_cancel(consuming.consumer_tag)
            return delays(sent, arrived)
        finally:
            await queue.delete(if_unused=False, if_empty=False)
