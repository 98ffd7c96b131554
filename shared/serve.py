"""How every service runs: its tasks until asked to stop, then a graceful stop that loses nothing."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

from faststream.rabbit import RabbitBroker

log = logging.getLogger("casework")


def tune_gc() -> None:
    """Collect cycles less often: services hold many long-lived objects and make little garbage.

    With the default thresholds the collector keeps walking live aggregates and ledgers:
    about a fifth of intake's and rewards' time under load.
    """
    gc.freeze()
    gc.set_threshold(100_000, 50, 1000)


async def serve(work: list[Coroutine[Any, Any, None]], stopping: asyncio.Event, broker: RabbitBroker,
                idle: Callable[[], bool], hosted: bool = False, drain_seconds: float = 10.0,
                stop_consuming: Sequence[Callable[[], Awaitable[None]]] = ()) -> None:
    """Run `work` until `stopping` is set or a task fails; then stop consuming, let what was
    already taken from the queue commit and be acked, and cancel the rest.

    Anything unacknowledged when the process goes is redelivered, and the services' exactly-
    once records turn the redelivery into a repeat, so this only makes stopping quicker to
    recover from. A failed task's error is raised after the stop. `stop_consuming` stops
    consumers that are not the broker's own subscribers.
    """
    tasks = [asyncio.create_task(coroutine) for coroutine in work]
    stop = asyncio.create_task(stopping.wait())
    done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
    if not hosted:
        for subscriber in broker.subscribers:
            await subscriber.stop()
    for stop_one in stop_consuming:
        await stop_one()
    loop = asyncio.get_running_loop()
    # A task that ended has stopped its part of the work: nothing more will commit.
    deadline = loop.time() + (0 if done - {stop} else drain_seconds)
    if not idle() and loop.time() < deadline:
        log.info("stopping: letting the work in hand commit and be acked (up to %g s)", drain_seconds)
    while not idle() and loop.time() < deadline:
        await asyncio.sleep(0.05)
    if not idle():
        log.warning("stopping with work not yet committed; RabbitMQ redelivers it to the next start")
    await asyncio.sleep(0.1)
    for task in [stop, *tasks]:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    for task in done:
        if task is not stop and task.exception():
            raise task.exception()  # type: ignore[misc]
