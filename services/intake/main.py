"""Composition root of the intake service: application, consumer and relay on one broker."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from faststream.rabbit import RabbitBroker

from casework.settings import Settings
from services.intake.application import Clock, IntakeApplication, utc_now
from services.intake.consumer import AmqpSource, IntakeConsumer, build_router
from services.intake.translate import outgoing
from shared.broker import make_broker
from shared.policy import Policy
from shared.publishing import RelayPublisher
from shared.relay import Relay
from shared.serve import serve
from shared.topology import declare

log = logging.getLogger("casework.intake")


class IntakeService:
    """Runs until `stopping` is set; then stops consuming and lets the current batch commit.

    A `broker` passed in is hosted: its owner connects, declares, starts and stops it (the
    demo's in-process broker); `relay_publisher` replaces the relay's own AMQP connection.
    """

    def __init__(self, settings: Settings, policy: Policy, clock: Clock = utc_now,
                 broker: RabbitBroker | None = None, relay_publisher: RelayPublisher | None = None) -> None:
        self.settings = settings
        self.app = IntakeApplication(policy, settings.database_url, clock=clock)
        self.hosted = broker is not None
        self.broker = broker if broker is not None else make_broker(settings.amqp_url_for("intake"))
        self.relay = Relay(self.app, relay_publisher or settings.amqp_url_for("intake"), outgoing, "casework.relay",
                           settings.relay_page_size, settings.relay_poll_seconds, settings.relay_refusal_seconds)
        # With the relay in its own process (`casework run --only relay`), PostgreSQL's NOTIFY wakes it.
        self.relay_here = settings.intake_relay
        if self.relay_here:
            # The relay publishes this process's commits from memory, without reading them back.
            self.app.on_recorded = self.relay.remember
        self.consumer = IntakeConsumer(self.app, self.broker, settings.intake_batch_size,
                                       on_commit=self.relay.poke if self.relay_here else None)
        # An in-process broker delivers through FastStream; a real one feeds the consumer directly.
        self.source: AmqpSource | None = None
        if self.hosted:
            self.broker.include_router(build_router(self.consumer, settings.prefetch))
        else:
            self.source = AmqpSource(settings.amqp_url_for("intake"), self.consumer, settings.prefetch)

    async def run(self, stopping: asyncio.Event) -> None:
        if not self.hosted:
            await self.broker.connect()
            await declare(self.broker)
            await self.broker.start()
        if self.source is not None:
            await self.source.start()
        log.info("intake consuming casework.intake; store %s", self.settings.database_url)
        work = [self.consumer.run(), *([self.relay.run()] if self.relay_here else [])]
        try:
            await serve(work, stopping, self.broker, self.idle, self.hosted, self.settings.stop_grace_seconds,
                        stop_consuming=[self.source.stop_consuming] if self.source else [])
        finally:
            if self.source is not None:
                await self.source.close()
            if not self.hosted:
                await self.broker.stop()
            await self.app.aclose()
            self.app.close()

    def idle(self) -> bool:
        """Every command taken is committed and acked, and its events and outcome published."""
        return self.consumer.idle() and (not self.relay_here or self.relay.caught_up())


class RelayService:
    """Intake's relay alone, for a process of its own: it publishes what any intake process recorded."""

    def __init__(self, settings: Settings, policy: Policy, clock: Clock = utc_now) -> None:
        self.app = IntakeApplication(policy, settings.database_url, clock=clock)
        self.relay = Relay(self.app, settings.amqp_url_for("intake"), outgoing, "casework.relay",
                           settings.relay_page_size, settings.relay_poll_seconds, settings.relay_refusal_seconds)
        self.grace_seconds = settings.stop_grace_seconds

    async def run(self, stopping: asyncio.Event) -> None:
        log.info("relay following the intake store")
        task = asyncio.create_task(self.relay.run())
        await asyncio.wait([task, asyncio.create_task(stopping.wait())], return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            await self._catch_up(self.grace_seconds)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        self.app.close()

    async def _catch_up(self, seconds: float) -> None:
        """Before stopping, publish what the store held when the stop was asked for (for up to `seconds`)."""
        if not self.relay.leading:
            return  # another relay process publishes
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        try:
            head = await asyncio.to_thread(self.app.recorder.max_notification_id) or 0
        except Exception as error:
            log.warning("relay cannot read the store's head before stopping (%s)", error)
            return
        if self.relay.position < head:
            log.info("stopping: publishing up to %d first (up to %g s)", head, seconds)
        while self.relay.position < head and loop.time() < deadline:
            self.relay.poke()
            await asyncio.sleep(0.05)
