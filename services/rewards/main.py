"""Composition root of the rewards service: application, consumer and relay on one broker, one leader per store."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from urllib.parse import urlsplit

from faststream.rabbit import RabbitBroker

from casework.settings import Settings
from services.rewards.application import Clock, RewardsApplication, utc_now
from services.rewards.consumer import RewardsConsumer, build_router
from services.rewards.translate import outgoing
from shared.broker import make_broker
from shared.policy import Policy
from shared.publishing import RelayPublisher
from shared.relay import Relay
from shared.relay_lock import RelayLock, store_settings
from shared.serve import serve, tune_gc
from shared.topology import declare

log = logging.getLogger("casework.rewards")


class LeadershipLost(RuntimeError):
    """Raised when another rewards process took the store over; this one stops and may be restarted."""


class RewardsService:
    """Runs until `stopping` is set; then stops consuming, lets the current batch commit, and its relay publish it.

    A `broker` passed in is hosted: its owner connects, declares, starts and stops it (the
    demo's in-process broker); `relay_publisher` replaces the relay's own AMQP connection.
    """

    def __init__(self, settings: Settings, policy: Policy, clock: Clock = utc_now, batch_size: int = 1000,
                 broker: RabbitBroker | None = None, relay_publisher: RelayPublisher | None = None) -> None:
        tune_gc()
        url = settings.amqp_url_for("rewards")
        self.settings = settings
        self.app = RewardsApplication(policy, settings.database_url, clock=clock,
                                      user_id=urlsplit(url).username or "guest")
        self.hosted = broker is not None
        self.broker = broker if broker is not None else make_broker(url)
        self.relay = Relay(self.app, relay_publisher or url, outgoing, "rewards.relay",
                           settings.relay_page_size, settings.relay_poll_seconds, settings.relay_refusal_seconds)
        self.app.on_recorded = self.relay.note_recorded
        self.consumer = RewardsConsumer(self.app, self.broker, batch_size, on_commit=self.relay.poke)
        # Twice a batch in flight: the next batch arrives while this one commits (acks come after commit).
        self.broker.include_router(build_router(self.consumer, max(settings.prefetch, 2 * batch_size)))
        # One consumer per store keeps the ledgers' cache authoritative; a second writer that
        # slipped in anyway would only meet version conflicts, never doubles.
        self.leadership = RelayLock(store_settings(self.app), "rewards.consumer")

    async def run(self, stopping: asyncio.Event) -> None:
        if not self.hosted:
            await self.broker.connect()
            # Its own queue and bindings only: svc-rewards may configure nothing else (deploy/rabbitmq).
            await declare(self.broker, "rewards")
        try:
            if not await self._lead(stopping):
                return
            await asyncio.to_thread(self.app.warm)
            if not self.hosted:
                await self.broker.start()
            log.info("rewards consuming casework.rewards; store %s", self.settings.database_url)
            await self._serve(stopping)
        finally:
            if not self.hosted:
                await self.broker.stop()
            self.leadership.release()
            self.app.close()

    async def _lead(self, stopping: asyncio.Event) -> bool:
        """Wait to be the one rewards process of this store (or to be told to stop)."""
        while not stopping.is_set():
            try:
                if await asyncio.to_thread(self.leadership.try_acquire):
                    return True
            except Exception as error:
                log.warning("rewards cannot reach its store to lead (%s); retrying", error)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), 1.0)
        return False

    async def _serve(self, stopping: asyncio.Event) -> None:
        work = [self.consumer.run(), self.relay.run(), self._keep_leading()]
        await serve(work, stopping, self.broker, self.idle, self.hosted, self.settings.stop_grace_seconds)

    async def _keep_leading(self) -> None:
        """The lock dies with its database session: take it back, or stop if another process has it."""
        while True:
            await asyncio.sleep(5.0)
            if await asyncio.to_thread(self.leadership.still_held):
                continue
            while True:
                try:
                    acquired = await asyncio.to_thread(self.leadership.try_acquire)
                    break
                except Exception as error:
                    log.warning("rewards leadership check failed (%s); retrying", error)
                    await asyncio.sleep(1.0)
            if not acquired:
                raise LeadershipLost("another rewards process leads this store now")

    def idle(self) -> bool:
        """Nothing taken from the queue is still waiting to commit, and what was committed is published."""
        return self.consumer.idle() and self.relay.caught_up()
