"""How a service stops: the work in hand finishes first, unless the work itself has failed.

No broker is involved: `serve` is given a hosted broker with no subscribers of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from shared.serve import serve


class NoBroker:
    subscribers: tuple[Any, ...] = ()


async def test_a_stop_waits_for_the_batch_in_hand() -> None:
    committed: list[str] = []
    in_hand = asyncio.Event()
    release = asyncio.Event()

    async def work() -> None:
        in_hand.set()
        await release.wait()  # a commit waiting on the database
        committed.append("batch")
        in_hand.clear()
        await asyncio.Event().wait()  # then waits for the next delivery

    stopping = asyncio.Event()
    serving = asyncio.create_task(serve([work()], stopping, NoBroker(),  # type: ignore[arg-type]
                                        idle=lambda: not in_hand.is_set(), hosted=True))
    await in_hand.wait()
    stopping.set()
    for _ in range(10):
        await asyncio.sleep(0.01)
    assert not serving.done(), "stopped while a batch was in hand"
    release.set()
    await asyncio.wait_for(serving, 5)
    assert committed == ["batch"]


async def test_a_failed_task_is_raised_without_waiting_for_work_that_cannot_finish(
        caplog: pytest.LogCaptureFixture) -> None:
    """The consumer died with a batch in hand: the service stops and says so at once, instead
    of waiting out the drain period for a commit that will never come."""

    async def broken() -> None:
        raise RuntimeError("the consumer failed")

    serving = serve([broken()], asyncio.Event(), NoBroker(),  # type: ignore[arg-type]
                    idle=lambda: False, hosted=True, drain_seconds=3600)
    with pytest.raises(RuntimeError, match="the consumer failed"):
        await asyncio.wait_for(serving, 5)
    assert "redelivers it to the next start" in caplog.text


async def test_a_stop_gives_up_on_work_that_never_finishes_after_the_drain_period(
        caplog: pytest.LogCaptureFixture) -> None:
    """A commit that never comes holds the stop for the drain period, no longer: then the
    service says it leaves work for RabbitMQ to redeliver, cancels it and returns."""
    cancelled = asyncio.Event()

    async def stuck() -> None:
        try:
            await asyncio.Event().wait()  # a batch whose commit never returns
        finally:
            cancelled.set()

    stopping = asyncio.Event()
    stopping.set()
    loop = asyncio.get_running_loop()
    asked = loop.time()
    await asyncio.wait_for(serve([stuck()], stopping, NoBroker(),  # type: ignore[arg-type]
                                 idle=lambda: False, hosted=True, drain_seconds=0.2), 5)
    assert loop.time() - asked >= 0.2, "gave up before the drain period was over"
    assert cancelled.is_set()
    assert [r.levelname for r in caplog.records if "redelivers it to the next start" in r.getMessage()] == ["WARNING"]
