"""The demo's world: intake, escalation and rewards in one process on one virtual clock, and what subscribers see."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol
from uuid import UUID
from zoneinfo import ZoneInfo

from casework.settings import Settings
from services.escalation.clock import FakeClock
from services.escalation.main import EscalationService
from services.escalation.settings import EscalationSettings
from services.intake.main import IntakeService
from services.rewards.main import RewardsService
from shared.policy import Policy, load_policy
from shared.publishing import RelayPublisher

POLICY = Path(__file__).with_name("demo_policy.toml")
ZONE = ZoneInfo("Asia/Shanghai")
# Monday 2 November 2026, 09:00 in Guangzhou: a working day with no holiday near it.
START = datetime(2026, 11, 2, 9, 0, tzinfo=ZONE)


@dataclass(frozen=True)
class Seen:
    """One message as a subscriber bound with `#` received it."""

    exchange: str
    routing_key: str
    message_id: str
    body: dict[str, Any]


@dataclass
class Observer:
    """Everything published on casework's exchanges, in arrival order."""

    seen: list[Seen] = field(default_factory=list)
    commands: set[str] = field(default_factory=set)
    outcomes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def record(self, exchange: str, routing_key: str, message_id: str | None, body: bytes) -> None:
        try:
            document = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            document = {"raw": body.decode(errors="replace")}
        seen = Seen(exchange, routing_key, message_id or "", document if isinstance(document, dict) else {})
        self.seen.append(seen)
        if exchange == "casework.commands":
            self.commands.add(seen.message_id)
        elif routing_key.startswith("command."):
            self.outcomes[str(seen.body.get("command_id"))] = seen.body

    def on(self, exchange: str) -> list[Seen]:
        return [s for s in self.seen if s.exchange == exchange]

    @property
    def unanswered(self) -> int:
        """Commands published that have no outcome yet: intake still has work."""
        return len(self.commands - self.outcomes.keys())

    @property
    def escalations_answered(self) -> int:
        return sum(1 for command_id in self.outcomes if command_id.startswith("escalate:"))


class Transport(Protocol):
    """How commands reach intake and how the observer hears the exchanges: in process, or a real RabbitMQ."""

    description: str
    identity: str
    # How many equal idle looks, how far apart, make the world quiet: a real broker needs a
    # margin for messages on the wire, which no counter sees.
    calm: int
    interval: float

    def speaker(self, user: str) -> str: ...

    def settings(self, database_url: str) -> Settings: ...

    def relay_publisher(self) -> RelayPublisher | None: ...

    def services(self, world: World) -> tuple[IntakeService, EscalationService, RewardsService]: ...

    async def open(self, world: World) -> None: ...

    async def send(self, routing_key: str, body: dict[str, Any], message_id: str, user: str,
                   at: datetime) -> None: ...

    async def backlog(self) -> int: ...

    async def close(self) -> None: ...


class World:
    """The three services, one FakeClock, an observer; quiet() waits until nothing is in flight."""

    def __init__(self, transport: Transport, database_url: str, policy: Policy | None = None) -> None:
        self.transport = transport
        self.database_url = database_url
        self.policy = policy or load_policy(POLICY)
        self.clock = FakeClock(START)
        self.observer = Observer()
        self.cases: set[str] = set()
        self.intake, self.escalation, self.rewards = transport.services(self)
        self.stopping = asyncio.Event()
        self.tasks: list[asyncio.Task[None]] = []
        self.sent = 0

    def build(self, settings: Settings, broker: Any = None, relay: RelayPublisher | None = None,
              ) -> tuple[IntakeService, EscalationService, RewardsService]:
        """The services as `casework run` builds them, on the demo's clock (and broker, when in process)."""
        # The clocks beside the demo's store, whatever CASEWORK_ESCALATION_* the shell holds.
        options = EscalationSettings(store_url=None, crash_after_publish=False, stats_file=None)
        intake = IntakeService(settings, self.policy, clock=self.clock, broker=broker, relay_publisher=relay)
        escalation = EscalationService(settings, self.policy, clock=self.clock, options=options, broker=broker)
        rewards = RewardsService(settings, self.policy, clock=self.clock, broker=broker, relay_publisher=relay)
        # The story sends one command at a time: waiting 50 ms for more would only slow each step.
        rewards.consumer.linger = 0.0
        return intake, escalation, rewards

    async def start(self) -> None:
        await self.transport.open(self)
        for service in (self.intake, self.escalation, self.rewards):
            self.tasks.append(asyncio.create_task(service.run(self.stopping)))
        ready = asyncio.create_task(self.escalation.ready.wait())
        done, _ = await asyncio.wait([ready, *self.tasks], timeout=60, return_when=asyncio.FIRST_COMPLETED)
        if ready not in done:
            ready.cancel()
            self._raise_crashed()
            raise TimeoutError("the escalation service did not start within 60 s")

    async def stop(self) -> None:
        self.stopping.set()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(asyncio.gather(*self.tasks, return_exceptions=True), 30)
        await self.transport.close()

    def _raise_crashed(self) -> None:
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError(f"a service stopped: {task.exception()!r}") from task.exception()

    def now(self) -> datetime:
        return self.clock().astimezone(ZONE)

    async def send(self, user: str, routing_key: str, body: dict[str, Any]) -> str:
        """Publish one command as `user` would, dated by the virtual clock; returns its message id."""
        self.sent += 1
        message_id = f"demo-{self.sent:03d}-{routing_key}"
        self.observer.commands.add(message_id)  # in flight from now, whenever a tap hears it
        await self.transport.send(routing_key, body, message_id, user, self.clock())
        return message_id

    # -- time ------------------------------------------------------------------------------------
    async def advance_to(self, moment: datetime, on_quiet: Callable[[], None] | None = None) -> None:
        """Move the clock to `moment` in steps, stopping at every deadline so it fires on time."""
        while self.clock() < moment:
            due = await asyncio.to_thread(self._next_due)
            # With no clock running nothing can happen before the next command: go straight there.
            target = moment if due is None else min(moment, self._next_step())
            if due is not None and self.clock() < due < target:
                target = due
            self.clock.set(target)
            await self.quiet()
            if on_quiet is not None:
                on_quiet()

    def _next_step(self) -> datetime:
        """Half an hour in office hours; overnight, straight to 08:00 (a deadline stops it earlier)."""
        local = self.now()
        if 8 <= local.hour < 19:
            return self.clock() + timedelta(minutes=30)
        morning = local.replace(hour=8, minute=0, second=0, microsecond=0)
        return morning if morning > local else morning + timedelta(days=1)

    def _next_due(self) -> datetime | None:
        app = self.escalation.app
        return app.next_due() if app is not None else None

    async def quiet(self, timeout: float = 20.0) -> None:
        """Wait until every command is answered, every event relayed and consumed, nothing due."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        previous: tuple[Any, ...] | None = None
        calm = 0
        while calm < self.transport.calm:
            self._raise_crashed()
            state = await self._state()
            busy = state[0]
            calm = calm + 1 if not busy and state == previous else 0
            previous = state
            if loop.time() > deadline:
                raise TimeoutError(f"the services did not settle within {timeout:.0f} s: {state}")
            await asyncio.sleep(self.transport.interval)

    async def _state(self) -> tuple[Any, ...]:
        stores = await asyncio.to_thread(self._store_state)
        backlog = await self.transport.backlog()
        queues = (self.intake.consumer.queue.qsize(), self.rewards.consumer.queue.qsize(),
                  self.escalation.consumer.queue.qsize() if self.escalation.consumer else 0)
        scheduler = self.escalation.scheduler
        # An escalation the scheduler recorded as sent is in flight until its outcome is heard.
        unheard = scheduler is not None and scheduler.stats.escalations > self.observer.escalations_answered
        busy = (stores[0] or backlog > 0 or any(queues) or self.rewards.consumer.busy
                or self.observer.unanswered > 0 or unheard)
        return (busy, stores, backlog, queues, len(self.observer.seen), self.rewards.consumer.handled)

    def _store_state(self) -> tuple[Any, ...]:
        """Relays caught up with their logs, clocks with the cases, nothing due by now."""
        intake_head = self.intake.app.recorder.max_notification_id() or 0
        rewards_head = self.rewards.app.recorder.max_notification_id() or 0
        relays_behind = intake_head != self.intake.relay.position or rewards_head != self.rewards.relay.position
        clocks_behind = False
        due = self._next_due()
        app = self.escalation.app
        for case_id in sorted(self.cases):
            stored = self.intake.app.recorder.select_events(UUID(case_id), desc=True, limit=1)
            clock = app.clock(case_id) if app is not None else None
            if stored and (clock is None or clock.version < stored[0].originator_version):
                clocks_behind = True
        busy = relays_behind or clocks_behind or (due is not None and due <= self.clock())
        return (busy, intake_head, self.intake.relay.position, rewards_head, self.rewards.relay.position, due)
