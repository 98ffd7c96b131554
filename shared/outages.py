"""How a consumer waits out the store, and sets aside a message it fails on by its own fault.

An outage of the store never drops or rejects a message: the batch waits, unacked, and goes
through after. Any other failure is a fault of casework's own, which must not hold up every
message behind one: after the batch failed so `ISOLATE_AFTER` times, the consumer takes its
messages one at a time (`alone`), and sets aside one that still fails on its own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import aio_pika
import psycopg
from eventsourcing.persistence import PersistenceError
from faststream.rabbit import RabbitBroker

from shared.topology import DEAD

log = logging.getLogger("casework")

# What the store, its driver or the network raise while they are down or refuse writes.
OUTAGES: tuple[type[BaseException], ...] = (
    PersistenceError, psycopg.Error, sqlite3.Error, OSError, TimeoutError, ConnectionError)
# A batch failing with a fault this often is taken one message at a time.
ISOLATE_AFTER = 2

T = TypeVar("T")


async def until_stored(attempt: Callable[[], Awaitable[T]], one_at_a_time: Callable[[], Awaitable[T | None]],
                       what: str, waits: tuple[type[BaseException], ...] = OUTAGES) -> T:
    """`attempt()` until it goes through, waiting out outages (`waits`) with back-off; after a
    fault `ISOLATE_AFTER` times, `one_at_a_time()` instead, unless it met an outage (None)."""
    delay, faults = 0.2, 0
    while True:
        try:
            return await attempt()
        except waits as error:
            log.warning("holding %s, unacked, and retrying in %.1fs: %s: %s",
                        what, delay, type(error).__name__, error)
        except Exception as error:
            faults += 1
            log.warning("%s failed (%s: %s)", what, type(error).__name__, error)
            if faults >= ISOLATE_AFTER and (parted := await one_at_a_time()) is not None:
                return parted
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def alone(attempt: Callable[[], Awaitable[T]],
                waits: tuple[type[BaseException], ...] = OUTAGES) -> T | Exception:
    """One message on its own, tried twice: its result, or the fault it failed with both times.

    An outage (`waits`) is raised as it is: then the store is at fault, not the message.
    """
    failure: Exception | None = None
    for _ in range(2):
        try:
            return await attempt()
        except waits:
            raise
        except Exception as error:
            failure = error
            await asyncio.sleep(0.1)
    assert failure is not None
    return failure


def dead_letter_headers(headers: dict[str, Any] | None, routing_key: str | None, code: str, message: str,
                        **extra: str) -> dict[str, Any]:
    """A copy's headers in casework.dead: the delivery's own, then why (`x-casework-error`), its
    routing key, when it was set aside, and `extra` as given (empty values left out)."""
    return {**(headers or {}), "x-casework-error": json.dumps({"code": code, "message": message}),
            "x-casework-routing-key": routing_key or "",
            "x-casework-set-aside-at": datetime.now(UTC).isoformat(timespec="seconds"),
            **{name: value for name, value in extra.items() if value}}


async def dead_letter(broker: RabbitBroker, raw: aio_pika.abc.AbstractIncomingMessage, code: str, message: str,
                      consumer: str) -> None:
    """Publish a delivery to casework.dead as it came, with why, its routing key and the consumer
    that set it aside (`dead_letter_headers`); the caller acks it once this returns."""
    log.warning("%s dead-lettering %s %s (%s): %s", consumer, raw.routing_key, raw.message_id, code, message)
    headers = dead_letter_headers(raw.headers, raw.routing_key, code, message, **{"x-casework-consumer": consumer})
    await broker.publish(raw.body, exchange=DEAD, routing_key=raw.routing_key or "", message_id=raw.message_id,
                         headers=headers, persist=True, content_type=raw.content_type)
