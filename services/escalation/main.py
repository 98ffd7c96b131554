"""Composition root of the escalation service: clock store, consumer, scheduler and publisher on one broker."""

from __future__ import annotations

import asyncio
import logging

from faststream.rabbit import RabbitBroker

from casework.settings import Settings, load
from services.escalation.application import EscalationApplication
from services.escalation.clock import Clock, utc_now
from services.escalation.consumer import EscalationConsumer, build_router
from services.escalation.history import IntakeHistory
from services.escalation.publisher import EffectPublisher, user_of
from services.escalation.rules import Rules
from services.escalation.scheduler import Scheduler
from services.escalation.settings import EscalationSettings
from services.escalation.store import ClockStore, open_store, store_location
from shared.broker import make_broker
from shared.policy import Policy
from shared.serve import serve
from shared.topology import declare

log = logging.getLogger("casework.escalation")


class EscalationService:
    """Runs until `stopping` is set; clocks are durable, so a restart fires what lapsed meanwhile, once.

    A `broker` passed in is hosted: its owner connects, declares, starts and stops it (the
    demo's in-process broker, which hands the consumer its deliveries).
    """

    def __init__(self, settings: Settings, policy: Policy, clock: Clock = utc_now,
                 options: EscalationSettings | None = None, broker: RabbitBroker | None = None) -> None:
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.options = options or load(EscalationSettings)
        self.location = self.options.store_url or store_location(settings.database_url)
        url = settings.amqp_url_for("escalation")
        self.hosted = broker is not None
        self.broker = broker if broker is not None else make_broker(url)
        self.publisher = EffectPublisher(self.broker, user_of(url), clock)
        self.store: ClockStore | None = None
        self.history: IntakeHistory | None = None
        self.app: EscalationApplication | None = None
        self.scheduler: Scheduler | None = None
        self.consumer: EscalationConsumer | None = None
        self.ready = asyncio.Event()  # set once consuming and firing

    def _open(self) -> EscalationApplication:
        self.store = open_store(self.location)
        book = EscalationApplication.load_book(self.store, Rules(self.policy), self.clock())
        self.history = IntakeHistory.open(self.settings.database_url)
        return EscalationApplication(self.store, book, self.history, catch_up=self.options.catch_up)

    async def run(self, stopping: asyncio.Event) -> None:
        self.app = await asyncio.to_thread(self._open)
        o = self.options
        self.scheduler = Scheduler(self.app, self.publisher, self.clock, batch=o.fire_batch,
                                   max_sleep=o.max_sleep_seconds, coalesce=o.coalesce_seconds,
                                   crash_after_publish=o.crash_after_publish, stats_file=o.stats_file)
        listen = getattr(self.clock, "listen", None)
        if callable(listen):
            listen(self.scheduler.poke)
        self.consumer = EscalationConsumer(self.app, self.broker, o.batch_size, on_due=self.scheduler.notify)
        self.broker.include_router(build_router(self.consumer, o.prefetch))
        if not self.hosted:
            await self.broker.connect()
            await declare(self.broker, "escalation")
            await self.broker.start()
        log.info("escalation consuming casework.escalation; clocks in %s; policy %s",
                 self.location.split("@")[-1], self.policy.version)
        self.ready.set()
        try:
            await serve([self.consumer.run(), self.scheduler.run()], stopping, self.broker,
                        self.consumer.idle, self.hosted, self.settings.stop_grace_seconds)
        finally:
            if not self.hosted:
                await self.broker.stop()
            self.close()

    def close(self) -> None:
        if self.history is not None:
            self.history.close()
        if self.store is not None:
            self.store.close()
