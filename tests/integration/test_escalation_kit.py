"""Shared pieces of the escalation integration tests (this module holds no tests): a short policy file,
service factories on a fake clock, and readers of what intake recorded."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from casework.settings import Settings
from services.escalation.clock import FakeClock
from services.escalation.domain import Fact
from services.escalation.history import IntakeHistory
from services.escalation.main import EscalationService
from services.escalation.settings import EscalationSettings
from shared.policy import Policy, default_policy_path, load_policy

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, before the wall clock: intake never caps it


def policy_text(verify: str = "10s", remediate: str = "20s", close: str = "100s", ladder: str = "10s",
                warning: float = 0.5) -> str:
    """The packaged policy with 24x7 regions and short deadlines for shortages."""
    text = default_policy_path().read_text()
    text = re.sub(r'calendar = "[a-z-]+"', 'calendar = "24x7"', text)
    head, rest = text.split("[sla]\n", 1)
    tail = rest[rest.index("[sla.departments]"):]
    sla = (f'[sla]\nladder_step = "{ladder}"\nwarning_at = {warning}\n\n'
           f'[sla.stages]\nverify = "1h"\nremediate = "1h"\nclose = "1d"\n\n'
           f'[sla.categories.shortage]\nverify = "{verify}"\nremediate = "{remediate}"\nclose = "{close}"\n\n')
    return head + sla + tail


def short_policy(tmp_path: Path, **durations: Any) -> tuple[Path, Policy]:
    path = tmp_path / "policy.toml"
    path.write_text(policy_text(**durations))
    return path, load_policy(path)


def escalation_service(amqp_url: str, database_url: str, policy: Policy, clock: Callable[[], datetime],
                       **options: Any) -> Callable[[], EscalationService]:
    settings = Settings(amqp_url=amqp_url, database_url=database_url)
    return lambda: EscalationService(settings, policy, clock=clock, options=EscalationSettings(**options))


def fake_clock() -> FakeClock:
    return FakeClock(T0)


def recorded(database_url: str) -> list[Fact]:
    """Every complaint event intake recorded, read from its store."""
    history = IntakeHistory.open(database_url)
    try:
        return list(history.facts())
    finally:
        history.close()


def escalations(database_url: str) -> list[tuple[str, str]]:
    return [(f.case_id, f.level) for f in recorded(database_url) if f.kind == "escalated"]


async def started(service: EscalationService, timeout: float = 60.0) -> None:
    """Wait until the service consumes and fires (fails instead of hanging if it never does)."""
    await asyncio.wait_for(service.ready.wait(), timeout)
