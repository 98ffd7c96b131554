"""Shared pieces of the escalation unit tests (this module holds no tests): a short policy and a small world
where intake (in memory) and the escalation application run on one fake clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from services.escalation.application import EscalationApplication
from services.escalation.clock import FakeClock
from services.escalation.domain import Escalation, Fact, StageWarning
from services.escalation.history import IntakeHistory
from services.escalation.rules import Rules
from services.escalation.store import ClockStore, SqliteClockStore
from services.escalation.translate import escalate_command
from services.intake.application import IntakeApplication, Submission
from shared.events import parse_command
from shared.policy import Policy, load_policy
from tests.unit.commands import act, receive

T0 = datetime(2025, 6, 2, 9, 0, tzinfo=UTC)  # a Monday, long before the wall clock


def short_policy(calendar: str = "24x7", version: str = "", **sla: Any) -> Policy:
    """The packaged policy with every region on `calendar` and an SLA in seconds."""
    data = load_policy().model_dump(mode="python")
    for region in data["organisation"]["regions"].values():
        region["calendar"] = calendar
    data["sla"] = {"stages": {"verify": 100, "remediate": 200, "close": 1000}, "ladder_step": 50,
                   "warning_at": 0.8, "departments": {"shortage": "warehousing", "damage": "claims"}, **sla}
    if version:
        data["version"] = version
    return Policy.model_validate(data)


class World:
    """Intake and the escalation application on one fake clock; the service fires exactly at due times."""

    def __init__(self, policy: Policy | None = None, store: ClockStore | None = None) -> None:
        self.policy = policy or short_policy()
        self.clock = FakeClock(T0)
        self.intake = IntakeApplication(self.policy, "memory:", clock=self.clock)
        self.history = IntakeHistory(self.intake)
        self.store = store or SqliteClockStore(":memory:")
        book = EscalationApplication.load_book(self.store, Rules(self.policy), T0 - timedelta(days=1))
        self.app = EscalationApplication(self.store, book, self.history)
        self.delivered = 0
        self.warnings: list[StageWarning] = []
        self.published: list[Escalation] = []

    # -- intake's side ------------------------------------------------------------------------------
    def receive(self, case_ref: str = "C1", category: str = "shortage") -> UUID:
        outcome = receive(self.intake, case_ref=case_ref, category=category)
        assert outcome.status == "accepted", outcome
        assert outcome.stream_id is not None
        return outcome.stream_id

    def act(self, command: str, case_id: UUID, **overrides: Any) -> None:
        outcome = act(self.intake, command, case_id, **overrides)
        assert outcome.status == "accepted", outcome

    def facts(self) -> list[Fact]:
        return list(self.history.facts())

    def escalated(self) -> list[tuple[str, str]]:
        return [(f.case_id, f.level) for f in self.facts() if f.kind == "escalated"]

    # -- the service's side ---------------------------------------------------------------------------
    def deliver(self) -> None:
        """Hand the events recorded since the last delivery to the application, in order."""
        facts = self.facts()
        self.app.handle(facts[self.delivered:])
        self.delivered = len(facts)

    def fire(self) -> None:
        """What the scheduler does at the current time: plan, publish to intake, commit."""
        while plans := self.app.plan_due(self.clock(), 500):
            for effect in (e for plan in plans for e in plan.effects):
                self.publish(effect)
            assert self.app.commit(plans) == []
            self.deliver()

    def publish(self, effect: Escalation | StageWarning) -> None:
        if isinstance(effect, StageWarning):
            self.warnings.append(effect)
            return
        self.published.append(effect)
        message = escalate_command(effect)
        command = parse_command(message.routing_key, message.body)
        self.intake.submit([Submission(command=command, message_id=message.message_id,
                                       user_id="svc-escalation", sent_at=self.clock())])

    def run(self, seconds: float) -> None:
        """Let time pass to T0 + seconds with a perfect scheduler: each deadline fires at its due time."""
        self.deliver()
        until = T0 + timedelta(seconds=seconds)
        while (due := self.app.next_due()) is not None and due <= until:
            self.clock.set(max(due, self.clock()))
            self.fire()
        self.clock.set(max(until, self.clock()))
        self.deliver()

    def states(self) -> dict[str, str]:
        return {row.case_id: row.state for row in self.store.rows()}
