"""Run any subset of the services in one process, stopping gracefully on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Protocol

from casework.settings import Settings

SERVICES = ("intake", "escalation", "rewards")
log = logging.getLogger("casework")


class Service(Protocol):
    async def run(self, stopping: asyncio.Event) -> None: ...


def build(name: str, settings: Settings) -> Service:
    policy = settings.load_policy()
    if name == "intake":
        from services.intake.main import IntakeService

        return IntakeService(settings, policy)
    if name == "escalation":
        from services.escalation.main import EscalationService

        return EscalationService(settings, policy)
    if name == "rewards":
        from services.rewards.main import RewardsService

        return RewardsService(settings, policy)
    raise ValueError(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")


async def run(names: list[str], settings: Settings) -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    services = [build(name, settings) for name in names]
    log.info("running %s", ", ".join(names))
    await asyncio.gather(*(service.run(stopping) for service in services))
    log.info("stopped")
