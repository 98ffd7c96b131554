"""The timer: sleep until the earliest due clock, fire what is due, publish, record; woken early by nearer deadlines."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from services.escalation.application import EscalationApplication, Plan
from services.escalation.clock import Clock
from services.escalation.domain import Effect, Escalation

log = logging.getLogger("casework.escalation")
Publish = Callable[[Effect], Awaitable[None]]


@dataclass
class SchedulerStats:
    """What a wake-up costs: finding what is due must not grow with the number of open cases."""

    wakeups: int = 0
    fired: int = 0
    escalations: int = 0
    lookup_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))
    wake_seconds: deque[float] = field(default_factory=lambda: deque(maxlen=100_000))

    def as_dict(self) -> dict[str, float | int]:
        return {"wakeups": self.wakeups, "fired": self.fired, "escalations": self.escalations,
                **_summary("lookup_ms", self.lookup_seconds), **_summary("wake_ms", self.wake_seconds)}


def _summary(name: str, values: deque[float]) -> dict[str, float]:
    samples = sorted(values)
    if not samples:
        return {}
    def pick(q: float) -> float:
        return samples[min(len(samples) - 1, int(q * len(samples)))] * 1000
    return {f"{name}_p50": pick(0.5), f"{name}_p99": pick(0.99), f"{name}_max": samples[-1] * 1000,
            f"{name}_mean": sum(samples) / len(samples) * 1000}


class Scheduler:
    """One loop: `plan_due` → publish every effect with confirms → `commit`; a crash in between repeats ids."""

    def __init__(self, app: EscalationApplication, publish: Publish, clock: Clock, batch: int = 500,
                 max_sleep: float = 30.0, coalesce: float = 0.02, crash_after_publish: bool = False,
                 stats_file: Path | None = None) -> None:
        self.app = app
        self.publish = publish
        self.clock = clock
        self.batch = batch
        self.max_sleep = max_sleep
        self.coalesce = coalesce
        self.crash_after_publish = crash_after_publish
        self.stats_file = stats_file
        self.stats = SchedulerStats()
        self.wakeup = asyncio.Event()
        self.target: datetime | None = None

    def notify(self, due: datetime | None) -> None:
        """A clock was updated: wake now if it is due before the time the loop sleeps until."""
        if due is not None and (self.target is None or due < self.target):
            self.wakeup.set()

    def poke(self) -> None:
        """Look at the clock again (a fake clock moved)."""
        self.wakeup.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    fired = await self.fire_due()
                except Exception as error:  # the store or the broker is away: wait for it, never skip
                    log.warning("escalation scheduler cannot fire (%s: %s); retrying", type(error).__name__, error)
                    await asyncio.sleep(1.0)
                    continue
                if fired:
                    continue
                await self._sleep()
        finally:
            self.write_stats()

    async def fire_due(self) -> int:
        """Fire one batch of due clocks; returns how many clocks were due."""
        now = self.clock()
        started = time.perf_counter()
        plans = await asyncio.to_thread(self.app.plan_due, now, self.batch)
        self.stats.wakeups += 1
        self.stats.lookup_seconds.append(self.app.last_lookup)
        if not plans:
            return 0
        effects = [effect for plan in plans for effect in plan.effects]
        await asyncio.gather(*(self.publish(effect) for effect in effects))
        if self.crash_after_publish and any(isinstance(e, Escalation) for e in effects):
            # Fault injection for the crash tests: kill -9 itself after the confirms, before recording.
            log.warning("CASEWORK_ESCALATION_CRASH_AFTER_PUBLISH: killing this process before recording")
            os.kill(os.getpid(), signal.SIGKILL)
        conflicts = await asyncio.to_thread(self.app.commit, plans)
        self.stats.wake_seconds.append(time.perf_counter() - started)
        self._count(plans, set(conflicts))
        if conflicts:
            log.info("%d clocks changed while firing; planning them again", len(conflicts))
        return len(plans)

    def _count(self, plans: list[Plan], conflicts: set[str]) -> None:
        for plan in plans:
            if plan.case_id in conflicts:
                continue
            self.stats.fired += 1
            for effect in plan.effects:
                if isinstance(effect, Escalation):
                    self.stats.escalations += 1
                    log.info("escalated case %s to %s (%s lapsed at %s)", effect.case_id, effect.level,
                             effect.stage, effect.due_at.isoformat())

    async def _sleep(self) -> None:
        self.wakeup.clear()
        self.target = await asyncio.to_thread(self.app.next_due)
        now = self.clock()
        if self.target is None:
            timeout = self.max_sleep
        else:
            # A few milliseconds of coalescing turns a dense stream of deadlines into batches.
            timeout = min(self.max_sleep, max((self.target - now).total_seconds(), self.coalesce, 0.0))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wakeup.wait(), timeout)
        self.target = None

    def write_stats(self) -> None:
        if self.stats_file is not None:
            self.stats_file.write_text(json.dumps(self.stats.as_dict(), indent=2) + "\n")

