"""What if another SLA policy had applied: recorded complaints replayed on a virtual clock, nothing written."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from services.escalation.domain import LEVELS, CaseClock, Escalation, Fact, Lapse
from services.escalation.ladder import apply, fire, next_action
from services.escalation.rules import Rules
from services.escalation.translate import OWN_COMMANDS

Key = tuple[str, str, str]  # level, department, branch


@dataclass
class SimulationReport:
    """Escalations per level, department and branch: those recorded, and those the other policy would make."""

    policy: str
    start: datetime | None
    end: datetime
    cases: int = 0
    actual: Counter[Key] = field(default_factory=Counter)
    simulated: Counter[Key] = field(default_factory=Counter)

    def rows(self) -> list[dict[str, Any]]:
        keys = sorted(set(self.actual) | set(self.simulated), key=lambda k: (LEVELS.index(k[0]), k[1], k[2]))
        return [{"level": level, "department": department, "branch_id": branch,
                 "actual": self.actual[(level, department, branch)],
                 "simulated": self.simulated[(level, department, branch)]} for level, department, branch in keys]

    def as_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy, "from": self.start.isoformat() if self.start else None,
            "to": self.end.isoformat(), "cases": self.cases, "rows": self.rows(),
            "total": {"actual": sum(self.actual.values()), "simulated": sum(self.simulated.values())},
        }


def simulate(facts: Iterable[Fact], rules: Rules, start: datetime | None, end: datetime) -> SimulationReport:
    """Replay every case received in [start, end) under `rules` up to `end`."""
    report = SimulationReport(rules.version, start, end)
    cases: dict[str, list[Fact]] = defaultdict(list)
    for fact in facts:
        cases[fact.case_id].append(fact)
    for case_facts in cases.values():
        case_facts.sort(key=lambda f: f.version)
        first = case_facts[0]
        if first.kind != "received" or first.occurred_at >= end or (start and first.occurred_at < start):
            continue
        report.cases += 1
        for fact in case_facts:
            if fact.kind == "escalated" and fact.occurred_at < end:
                report.actual[(fact.level, fact.department, first.branch_id)] += 1
        _replay(case_facts, rules, end, report.simulated)
    return report


def _replay(facts: list[Fact], rules: Rules, end: datetime, tally: Counter[Key]) -> None:
    clock: CaseClock | None = None
    for fact in facts:
        if fact.occurred_at >= end:
            break
        if fact.kind == "escalated" and fact.command_id.startswith(OWN_COMMANDS):
            continue  # what the policy of the day did; the replay makes its own
        if clock is not None:
            clock = _run_until(clock, fact.occurred_at, rules, tally)
        if fact.kind == "escalated":
            if clock is not None and fact.level in LEVELS and LEVELS.index(fact.level) <= clock.rung:
                continue  # intake would have refused it: the case already stood that high
            tally[(fact.level, fact.department, fact.branch_id)] += 1
        clock = apply(clock, fact, rules)
    if clock is not None:
        _run_until(clock, end, rules, tally)


def _run_until(clock: CaseClock, until: datetime, rules: Rules, tally: Counter[Key]) -> CaseClock:
    """Fire each action at its own due time, and feed each escalation back as intake would record it."""
    while (action := next_action(clock)) is not None and action.at < until:
        clock, effects = fire(clock, action.at, rules)
        for effect in effects:
            if isinstance(effect, Escalation):
                tally[(effect.level, effect.department, clock.branch_id)] += 1
                clock = apply(clock, Fact(
                    case_id=clock.case_id, version=clock.version, kind="escalated", occurred_at=action.at,
                    recorded_at=action.at, branch_id=clock.branch_id, level=effect.level,
                    department=effect.department, command_id=effect.message_id,
                    lapse=Lapse(effect.stage, effect.due_at)), rules)
    return clock
