"""Run any subset of the services in one process, stopping gracefully on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import importlib
import logging
import signal
from typing import Protocol

from casework.settings import Settings
from shared.serve import tune_gc

SERVICES = ("intake", "relay", "escalation", "rewards")
# Service name -> (module, class). `relay` is intake's relay in a process of its own.
FACTORIES = {
    "intake": ("services.intake.main", "IntakeService"),
    "relay": ("services.intake.main", "RelayService"),
    "escalation": ("services.escalation.main", "EscalationService"),
    "rewards": ("services.rewards.main", "RewardsService"),
}
log = logging.getLogger("casework")


class Service(Protocol):
    async def run(self, stopping: asyncio.Event) -> None: ...


def build(name: str, settings: Settings) -> Service:
    """Import only what the chosen services need."""
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; choose from {', '.join(SERVICES)}")
    module_name, class_name = FACTORIES[name]
    factory = getattr(importlib.import_module(module_name), class_name)
    service: Service = factory(settings, settings.load_policy())
    return service


async def run(names: list[str], settings: Settings) -> None:
    tune_gc()
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stopping.set)
    services = [build(name, settings) for name in names]
    log.info("running %s", ", ".join(names))
    await asyncio.gather(*(service.run(stopping) for service in services))
    log.info("stopped")
