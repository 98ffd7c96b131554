"""How a consumer waits out the store, and sets aside a message it fails on by its own fault.

An outage of the store never drops or rejects a message: the batch waits, unacked, and goes
through after. Any other failure is a fault of casework's own, which must not hold up every
message behind one: after the batch failed so `ISOLATE_AFTER` times, the consumer takes its
messages one at a time (`alone`), and sets aside one that still fails on its own.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from typing import TypeVar

import psycopg
from eventsourcing.persistence import PersistenceError

log = logging.getLogger("casework")

# What the store, its driver or the network raise while they are down or refuse writes.
OUTAGES: tuple[type[BaseException], ...] = (
    PersistenceError, psycopg.Error, sqlite3.Error, OSError, TimeoutError, ConnectionError)
# A batch failing with a fault this often is taken one message at a time.
ISOLATE_AFTER = 2

T = TypeVar("T")


async def until_stored(attempt: Callable[[], Awaitable[T]], one_at_a_time: Callable[[], Awaitable[T | None]],
                       what: str) -> T:
    """`attempt()` until it goes through, waiting out outages with back-off; after a fault
    `ISOLATE_AFTER` times, `one_at_a_time()` instead, unless it met an outage (None)."""
    delay, faults = 0.2, 0
    while True:
        try:
            return await attempt()
        except OUTAGES as error:
            log.warning("store unavailable (%s: %s); holding %s and retrying in %.1fs",
                        type(error).__name__, error, what, delay)
        except Exception as error:
            faults += 1
            log.warning("%s failed (%s: %s)", what, type(error).__name__, error)
            if faults >= ISOLATE_AFTER and (parted := await one_at_a_time()) is not None:
                return parted
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def alone(attempt: Callable[[], Awaitable[T]]) -> T | Exception:
    """One message on its own, tried twice: its result, or the fault it failed with both times.

    An outage is raised as it is: then the store is at fault, not the message.
    """
    failure: Exception | None = None
    for _ in range(2):
        try:
            return await attempt()
        except OUTAGES:
            raise
        except Exception as error:
            failure = error
            await asyncio.sleep(0.1)
    assert failure is not None
    return failure
