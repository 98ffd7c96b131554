"""The outbox relay: publishes every recorded event in notification order, then advances its position.

Intake relays complaint, surplus and period streams; rewards relays its ledgers. Each
follows its own application's notification log under its own lock and tracking name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Awaitable, Sequence
from dataclasses import replace
from typing import Any, cast

import aio_pika
import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import Notification, Recording, Tracking
from eventsourcing.postgres import PostgresApplicationRecorder, PostgresTrackingRecorder

from shared.faults import crash_point
from shared.pgstore import AsyncNotificationReader, AsyncPositionWriter
from shared.publishing import AmqpPublisher, Outgoing, Refused, RelayPublisher, Translate
from shared.relay_lock import RelayLock, store_settings
from shared.store import creating_tables, pg_connection_args
from shared.topology import SERVICES, reaches_services

log = logging.getLogger("casework.relay")

# A page not confirmed within this is published again (the broker or the network is stuck).
PAGE_TIMEOUT = 60.0
# After a wake-up by another process's commit, the relay waits this long for more commits
# before reading a page.
LINGER_SECONDS = 0.003
# At most this many pages are sent and not yet confirmed.
PAGES_IN_FLIGHT = 4
# The confirmed position is written at most this often: a crash repeats no more than that.
SAVE_EVERY_SECONDS = 0.1
# A leading relay makes sure this often that its lock's database session still lives.
LOCK_CHECK_SECONDS = 1.0
# At most this many events recorded in this process wait in memory for the relay; beyond
# that it is behind (the broker is down, say) and reads them back from the store instead.
RECENT_LIMIT = 10_000
# A key whose messages a queue went on refusing for the relay's patience has its later
# refusals passed over at once for this long; then it gets the patience again. So a queue
# that refuses on and off holds the relay for at most the patience every this often.
REFUSAL_MEMORY = 600.0
# What publishing raises when the broker or the network fails it: the relay holds and tries again.
PUBLISH_FAILURES = (TimeoutError, aio_pika.exceptions.AMQPError, ConnectionError, OSError, RuntimeError)


class Relay:
    """Follows the notification log; a page's position is saved only after the broker confirmed it.

    Pages go out one after another without waiting for the previous page's confirmation
    (up to PAGES_IN_FLIGHT); confirmations settle in order and advance `position`. The
    position is saved behind the publishing, so a commit per page is not on every event's
    path either. A refused or timed-out page sends the relay back to its confirmed
    position, and a crash or a lost lock before the write back to its saved one: repeats
    with the same message ids, never a gap.

    A queue that refuses what is routed to it (full, `x-overflow: reject-publish`) holds
    the relay, and every branch's events behind it, for up to `refusal_seconds`. After that
    a subscriber's queue must not hold up the group: the refused messages go to casework's
    own services' queues through `casework.services` (their keys bound there as on
    `casework.events`), with confirms, and the relay moves on; the refusing queue misses
    them, as a queue that drops its oldest would. If one of the services' own queues
    refuses, nothing is passed over: the relay holds.
    """

    def __init__(self, app: Application[Any], target: str | RelayPublisher, translate: Translate, name: str,
                 page_size: int = 500, poll_seconds: float = 0.5, refusal_seconds: float = 10.0) -> None:
        self.app = app
        self.refusal_seconds = refusal_seconds
        # When a queue first refused messages with this (exchange, routing key), by the loop's clock.
        self.refused_since: dict[tuple[str, str], float] = {}
        # Ids of refused messages the services' own queues have confirmed: their refusal is let pass.
        self.passed_over: set[str] = set()
        self.translate = translate
        self.name = name
        self.publisher = AmqpPublisher(target) if isinstance(target, str) else target
        self.page_size = page_size
        self.poll_seconds = poll_seconds
        self.wakeup = asyncio.Event()
        with creating_tables(store_settings(app)):
            self.tracking = app.factory.tracking_recorder()
        self.lock = RelayLock(store_settings(app), name)
        # On PostgreSQL the position is written on the event loop; SQLite's writes stay in a thread.
        self.position_writer = (
            AsyncPositionWriter(self.tracking, self.lock.env)
            if isinstance(self.tracking, PostgresTrackingRecorder) and self.tracking.datastore.single_row_tracking
            else None)
        # On PostgreSQL pages of the store are read on the event loop too; SQLite's in a thread.
        self.reader = (AsyncNotificationReader(app.recorder, self.lock.env)
                       if isinstance(app.recorder, PostgresApplicationRecorder) else None)
        self.position = 0  # published and confirmed up to here
        self.sent = 0  # handed to the broker up to here
        self.saved = 0  # written to the store up to here
        self.in_flight: deque[tuple[int, asyncio.Future[None]]] = deque()
        self.failure: Exception | None = None
        self.saver: asyncio.Task[None] | None = None
        self.leading = False
        self.lock_lost = False  # set by the lock's watch: this relay must stop publishing
        # Events this process recorded, by notification id, until the relay publishes them.
        self.recent: dict[int, Any] = {}
        self.recent_lock = threading.Lock()  # `remember` runs in the writer's thread
        self.remembering = False  # handed this process's commits (and poked after each)
        self.from_memory = False  # the last page came from `recent`
        self.others_committed = True  # another process committed since the store was last read
        self.store_reads = 0  # pages asked of the store (the rest came from memory)
        self.recorded = 0  # the newest notification id this process committed while leading

    def poke(self) -> None:
        """New events were committed in this process: look now rather than at the next poll."""
        self.wakeup.set()

    def remember(self, recordings: Sequence[Recording[Any]]) -> None:
        """Keep events this process has just committed, so the relay need not read them back.

        Called after the commit, with the notification ids the store gave the events. The
        relay takes from here only an unbroken run that starts right after what it has
        sent, so the order is the store's: another process's events, or a gap, send it to
        the store as before.
        """
        self.remembering = True
        self.note_recorded(recordings)
        if not self.leading:
            return
        with self.recent_lock:
            if len(self.recent) + len(recordings) > RECENT_LIMIT:
                self.recent.clear()
                return
            for recording in recordings:
                self.recent[recording.notification.id] = recording.domain_event

    def note_recorded(self, recordings: Sequence[Recording[Any]]) -> None:
        """This process committed these; a graceful stop waits until the relay has them confirmed."""
        if self.leading and recordings:
            self.recorded = max(self.recorded, *(recording.notification.id for recording in recordings))

    def caught_up(self) -> bool:
        """Everything this process committed while it led is published and confirmed."""
        return self.position >= self.recorded

    def _take_recent(self) -> list[tuple[int, Any]]:
        """The remembered events that follow the position without a gap, up to a page."""
        taken: list[tuple[int, Any]] = []
        with self.recent_lock:
            following = self.sent + 1
            while len(taken) < self.page_size and (event := self.recent.pop(following, None)) is not None:
                taken.append((following, event))
                following += 1
            if not taken and self.recent:
                # Whatever is at or below was sent from the store meanwhile.
                self.recent = {n: e for n, e in self.recent.items() if n > self.sent}
        return taken

    async def run(self) -> None:
        listener = asyncio.create_task(self._listen())
        try:
            await self._lead()
        finally:
            listener.cancel()
            if self.in_flight:  # a moment for the last confirmations: a shorter repeat after a restart
                await asyncio.wait([page for _, page in self.in_flight], timeout=5.0)
            self._rewind()
            self._save_soon(delay=0.0)
            if self.saver is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(self.saver), 5.0)
            self.lock.release()
            await self.publisher.close()
            if self.position_writer is not None:
                await self.position_writer.close()
            if self.reader is not None:
                await self.reader.close()

    async def _lead(self) -> None:
        while True:
            await self._acquire()
            log.info("%s holds the lock; publishing from position %s", self.name, self.position)
            watch = asyncio.create_task(self._watch_lock())
            try:
                await self._publish_while_held()
            finally:
                watch.cancel()
            log.warning("%s lost its lock (its database session ended); standing by", self.name)
            self._stand_by()

    async def _acquire(self) -> None:
        while True:
            try:
                if await asyncio.to_thread(self._try_lock):
                    return
            except Exception as error:  # the store is down: wait for it
                log.warning("relay cannot ask the store for its lock (%s); retrying", error)
            await asyncio.sleep(1.0)

    async def _watch_lock(self) -> None:
        """The lock lives as long as its database session: once that ends (the server restarted,
        the connection was cut) another relay may take it, and this one must stop publishing."""
        while await asyncio.to_thread(self.lock.still_held):
            await asyncio.sleep(LOCK_CHECK_SECONDS)
        self.lock_lost = True
        self.wakeup.set()

    def _stand_by(self) -> None:
        """Stop leading: what was not confirmed is the next leader's to publish, from the saved position."""
        self.leading = self.lock_lost = False
        self._rewind()
        self.recorded = min(self.recorded, self.position)

    async def _publish_while_held(self) -> None:
        while not self.lock_lost:
            self.wakeup.clear()  # a commit from now on brings the relay round again
            try:
                published = await self.publish_pending()
            except Refused as refusal:
                moving_on = await self._bear(refusal)
                self._rewind()
                if not moving_on:
                    await asyncio.sleep(1.0)
                continue
            except PUBLISH_FAILURES as error:
                log.warning("relay cannot publish (%s); publishing again from position %s", error, self.position)
                self._rewind()
                await asyncio.sleep(1.0)
                continue
            except Exception as error:  # the store is down: wait for it, never skip
                log.warning("relay cannot read the store (%s); retrying", error)
                await asyncio.sleep(1.0)
                continue
            if published and (not self.from_memory or self.sent + 1 in self.recent or self.others_committed):
                continue  # there may be more: in the store, in memory, or from another process
            # Nothing more, or this process's commits all sent: until the next commit, of this
            # process (a poke) or another (NOTIFY), the poll, or the lock's loss.
            self._save_soon()  # again, if the last write failed
            if self.failure is not None:
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wakeup.wait(), self.poll_seconds)
                if self.sent + 1 not in self.recent:
                    # Every commit notifies: a moment's wait gathers several into one page, whose
                    # fixed cost (a read, a write, a position) dominated the relay at moderate rates.
                    await asyncio.sleep(LINGER_SECONDS)

    def _try_lock(self) -> bool:
        if not self.lock.try_acquire():
            return False
        self.position = self.sent = self.saved = self.tracking.max_tracking_id(self.name) or 0
        self.leading = True
        return True

    async def publish_pending(self) -> int:
        """Send one page after what was sent; returns how many events it carried.

        Raises what made an earlier page fail, so the caller rewinds to the confirmed position.
        """
        if self.failure is not None:
            raise self.failure
        while len(self.in_flight) >= PAGES_IN_FLIGHT:
            await asyncio.wait([self.in_flight[0][1]])
            if self.failure is not None:
                raise self.failure
        events = self._take_recent()
        self.from_memory = bool(events)
        if not events:
            self.others_committed = False  # what they commit from here on, the next read sees
            self.store_reads += 1
        events = events or [
            (notification.id, self.app.mapper.to_domain_event(notification))
            for notification in await self._read(self.sent + 1)]
        if not events:
            return 0
        messages: list[Outgoing] = []
        for position, event in events:
            messages.extend(self.translate(event, position))
        async with asyncio.timeout(PAGE_TIMEOUT):
            confirmation = await self.publisher.send_page(messages)
        if self.passed_over:
            confirmation = self._letting_pass(confirmation)
        page = asyncio.ensure_future(asyncio.wait_for(confirmation, PAGE_TIMEOUT))
        self.in_flight.append((events[-1][0], page))
        page.add_done_callback(self._settle)
        self.sent = events[-1][0]
        return len(events)

    async def _read(self, start: int) -> Sequence[Notification]:
        if self.reader is not None:
            return await self.reader.select(start, self.page_size)
        return await asyncio.to_thread(self.app.recorder.select_notifications, start, self.page_size)

    def _settle(self, _: asyncio.Future[None]) -> None:
        """Confirmed pages, oldest first, advance the position; a failed one stops it there."""
        while self.in_flight and self.failure is None:
            last, page = self.in_flight[0]
            if not page.done():
                break
            if not page.cancelled() and isinstance(page.exception(), Refused):
                self.failure = cast(Refused, page.exception())
                self.wakeup.set()
                return
            if page.cancelled() or page.exception() is not None:
                self.failure = RuntimeError(f"the page after position {self.position} was not confirmed: "
                                            f"{'cancelled' if page.cancelled() else page.exception()!r}")
                self.wakeup.set()
                return
            self.in_flight.popleft()
            crash_point("relay_after_publish")
            self.position = last
        self._save_soon()

    async def _letting_pass(self, confirmation: Awaitable[None]) -> None:
        """The page's confirmation, with the refusals of messages already passed over let pass."""
        try:
            await confirmation
        except Refused as refusal:
            ids = {message.message_id for message in refusal.messages}
            if not ids <= self.passed_over:
                raise
            self.passed_over -= ids

    async def _bear(self, refusal: Refused) -> bool:
        """Note a refusal; past the patience, give the services their copies and pass it over.

        Returns whether the relay may go on at once (the refused messages were passed over).
        """
        now = asyncio.get_running_loop().time()
        self.refused_since = {key: since for key, since in self.refused_since.items() if now - since < REFUSAL_MEMORY}
        keys = {(message.exchange, message.routing_key) for message in refusal.messages}
        waited = min(now - self.refused_since.setdefault(key, now) for key in keys)
        if waited < self.refusal_seconds:
            log.warning("a queue refuses what the relay routes to it (%s); holding for up to %.0f s more",
                        refusal, self.refusal_seconds - waited)
            return False
        own = [replace(message, exchange=SERVICES.name) for message in refusal.messages
               if reaches_services(message.exchange, message.routing_key)]
        try:
            if own:
                async with asyncio.timeout(PAGE_TIMEOUT):
                    await (await self.publisher.send_page(own))
        except Refused as own_refusal:
            log.error("casework's own services' queues refuse %s: holding until they take them", own_refusal)
            return False
        except PUBLISH_FAILURES as error:
            log.warning("relay cannot give the services their copies (%s); trying again", error)
            return False
        if len(self.passed_over) > RECENT_LIMIT:  # ids whose later copies were taken after all
            self.passed_over.clear()  # their keys' refusals still pass at once (refused_since)
        self.passed_over.update(message.message_id for message in refusal.messages)
        positions = [p for message in refusal.messages if (p := message.headers.get("x-casework-position"))]
        log.error("a subscriber's queue refused for %.0f s: passing over it (%s); casework's services have "
                  "their copies, that queue misses these%s", waited, refusal,
                  f" (`casework replay publish --from {min(positions)}` sends them again)" if positions else "")
        return True

    def _rewind(self) -> None:
        """Back to the confirmed position: whatever was sent after it goes out again."""
        for _, page in self.in_flight:
            page.remove_done_callback(self._settle)
            page.cancel()
        self.in_flight.clear()
        self.failure = None
        self.sent = self.position
        with self.recent_lock:
            self.recent.clear()

    def _save_soon(self, delay: float = SAVE_EVERY_SECONDS) -> None:
        if self.saved < self.position and (self.saver is None or self.saver.done()):
            self.saver = asyncio.create_task(self._save(delay))

    async def _save(self, delay: float) -> None:
        """Write the latest confirmed position, after `delay` gathers the pages confirmed meanwhile.

        At 1,000 commands/s a write per page was eighty transactions a second. On PostgreSQL
        the write is one statement on the event loop: in a thread it took a sixteenth of a
        draining intake process, every round trip waiting for the interpreter.
        """
        try:
            await asyncio.sleep(delay)
            while self.saved < self.position:
                target = self.position
                if self.position_writer is not None:
                    await self.position_writer.save(Tracking(self.name, target))
                else:
                    await asyncio.to_thread(self.tracking.insert_tracking, Tracking(self.name, target))
                self.saved = target
        except Exception as error:  # the store is down: the next page tries again
            log.warning("relay cannot save its position %s (%s)", self.position, error)

    async def _listen(self) -> None:
        """On PostgreSQL, LISTEN for commits of any process; this process's own, when they are
        handed over directly, need no wake-up."""
        recorder = self.app.recorder
        if not isinstance(recorder, PostgresApplicationRecorder):
            return
        # The recorder's own channel: the one its inserts, and intake's insert function, notify.
        listen = psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(recorder.channel_name))
        own = getattr(recorder, "notify_payload", None)
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    **pg_connection_args(self.lock.env), autocommit=True)  # type: ignore[arg-type]
                async with conn:
                    await conn.execute(listen)
                    async for notify in conn.notifies():
                        if not (self.remembering and own and notify.payload == own):
                            self.others_committed = True
                            self.wakeup.set()
            except psycopg.Error as error:
                log.info("relay LISTEN connection lost (%s); polling until it is back", error)
                await asyncio.sleep(1.0)
