"""What wakes the relay on PostgreSQL: its own process's commits are handed to it, another's NOTIFY.

The relay skips the NOTIFY its own commits cause (it has their events already); a commit of
any other writer must still wake it at once. Polling is slowed to half a minute here, so
only a wake-up can publish within the test's few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from services.intake.application import IntakeApplication
from services.intake.translate import outgoing
from shared.policy import load_policy
from shared.relay import Relay
from tests.unit.commands import receive
from tests.unit.test_relay_pages import Pages

pytestmark = pytest.mark.integration

POLICY = load_policy()


@contextlib.asynccontextmanager
async def leading(relay: Relay) -> AsyncIterator[None]:
    task = asyncio.create_task(relay.run())
    for _ in range(200):
        if relay.leading:
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.3)  # LISTEN is in place
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def published(pages: Pages, case_refs: set[str], timeout: float = 5.0) -> set[str]:
    seen: set[str] = set()
    for _ in range(int(timeout / 0.05)):
        seen = {m.body.decode() for page in pages.sent for m in page}
        seen = {ref for ref in case_refs if any(ref in body for body in seen)}
        if seen == case_refs:
            break
        await asyncio.sleep(0.05)
    return seen


async def test_own_commits_come_from_memory_and_another_writers_wake_the_relay(database_url: str) -> None:
    here = IntakeApplication(POLICY, database_url)
    elsewhere = IntakeApplication(POLICY, database_url)  # another intake process's writer
    pages = Pages()
    relay = Relay(here, pages, outgoing, "test.relay", poll_seconds=30.0)
    here.on_recorded = relay.remember
    try:
        async with leading(relay):
            await asyncio.to_thread(receive, here, "HERE-1")
            relay.poke()  # as intake's consumer does after each commit
            assert await published(pages, {"HERE-1"}) == {"HERE-1"}

            await asyncio.to_thread(receive, elsewhere, "ELSEWHERE-1")
            assert await published(pages, {"ELSEWHERE-1"}) == {"ELSEWHERE-1"}, "another writer's NOTIFY woke it"
            await asyncio.sleep(0.2)
            reads = relay.store_reads

            await asyncio.to_thread(receive, here, "HERE-2")
            relay.poke()
            assert await published(pages, {"HERE-2"}) == {"HERE-2"}
            await asyncio.sleep(0.2)
            assert relay.store_reads == reads, "this process's own commit is not read back from the store"
        positions = [m.headers["x-casework-position"] for page in pages.sent for m in page]
        assert positions == sorted(positions) and len(positions) == len(set(positions))
    finally:
        here.close()
        elsewhere.close()

