"""The escalation ladder: pure rules that move a case clock on a fact or a clock reading."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from services.escalation.domain import (
    LEVELS,
    NO_RUNG,
    STAGES,
    TOP,
    ZERO,
    Action,
    CaseClock,
    Effect,
    Escalation,
    Fact,
    StageClock,
    StageWarning,
    Timer,
)
from services.escalation.rules import Rules

# -- facts -------------------------------------------------------------------------------------


def apply(clock: CaseClock | None, fact: Fact, rules: Rules) -> CaseClock:
    """The clock after one fact, computed under the rules in force when the fact was recorded."""
    case = CaseClock(case_id=fact.case_id, branch_id=fact.branch_id) if clock is None else clock.copy()
    handler = _HANDLERS.get(fact.kind)
    if handler is not None:
        handler(case, fact, rules)
    case.version = max(case.version, fact.version)
    return case


def _received(case: CaseClock, fact: Fact, rules: Rules) -> None:
    case.branch_id, case.category, case.case_ref = fact.branch_id, fact.category, fact.case_ref
    _start(case, "verify", fact.occurred_at, rules)
    _start(case, "close", fact.occurred_at, rules)


def _verified(case: CaseClock, fact: Fact, rules: Rules) -> None:
    _complete(case, "verify")
    _start(case, "remediate", fact.occurred_at, rules)


def _remediated(case: CaseClock, fact: Fact, rules: Rules) -> None:
    _complete(case, "remediate")


def _closed(case: CaseClock, fact: Fact, rules: Rules) -> None:
    if case.paused_since is not None:
        _resumed(case, fact, rules)
    for name in STAGES:
        _complete(case, name)
    case.closed, case.climb, case.sent = True, None, NO_RUNG


def _reopened(case: CaseClock, fact: Fact, rules: Rules) -> None:
    # A repeat complaint keeps the rung reached: the new cycle climbs on from there.
    case.closed = False
    _start(case, "verify", fact.occurred_at, rules)
    _start(case, "close", fact.occurred_at, rules)


def _escalated(case: CaseClock, fact: Fact, rules: Rules) -> None:
    if fact.level not in LEVELS:
        return
    if fact.lapse is not None and fact.lapse.stage in case.stages:
        stage = case.stages[fact.lapse.stage]
        if stage.phase == "running":
            _lapse(stage, fact.lapse.due_at)
    level = LEVELS.index(fact.level)
    case.reached = max(case.reached, level)
    if level < case.sent:
        return  # a lower rung recorded late: the climb runs from the newer one already sent
    case.sent = NO_RUNG
    case.last_escalation = fact.occurred_at
    _restart_climb(case, fact.occurred_at, rules)


def _awaiting(case: CaseClock, fact: Fact, rules: Rules) -> None:
    if case.paused_since is not None:
        return
    case.paused_since, case.pauses = fact.occurred_at, case.pauses + 1
    calendar = rules.calendar(case.branch_id)
    for timer in _timers(case):
        timer.pause(fact.occurred_at, calendar)


def _resumed(case: CaseClock, fact: Fact, rules: Rules) -> None:
    if case.paused_since is None:
        return
    case.paused_total += max(ZERO, fact.occurred_at - case.paused_since)
    case.paused_since = None
    calendar = rules.calendar(case.branch_id)
    for timer in _timers(case):
        timer.resume(fact.occurred_at, calendar)


_HANDLERS: dict[str, Callable[[CaseClock, Fact, Rules], None]] = {
    "received": _received, "verified": _verified, "remediated": _remediated, "closed": _closed,
    "reopened": _reopened, "escalated": _escalated, "awaiting_customer": _awaiting, "resumed": _resumed,
}


def _timers(case: CaseClock) -> list[Timer]:
    timers = [t for s in case.stages.values() if s.phase == "running" for t in (s.due, s.warn) if t]
    return [*timers, case.climb] if case.climb else timers


def _start(case: CaseClock, name: str, at: datetime, rules: Rules) -> None:
    previous = case.stages[name]
    budget = rules.deadline(name, case.category)
    stage = StageClock(cycle=previous.cycle + 1, phase="running", policy=rules.version, started_at=at,
                       step=rules.ladder_step)
    if budget is not None:
        calendar = rules.calendar(case.branch_id)
        stage.due = Timer(at=calendar.add(at, budget))
        stage.warn = Timer(at=calendar.add(at, budget * rules.warning_at))
        if case.paused_since is not None:
            stage.due.pause(at, calendar)
            stage.warn.pause(at, calendar)
    case.stages[name] = stage
    _after_stage_change(case)


def _complete(case: CaseClock, name: str) -> None:
    stage = case.stages[name]
    if stage.phase in ("running", "lapsed"):
        # A finished stage keeps no timers or flags, so a rebuilt clock equals the live one.
        case.stages[name] = StageClock(cycle=stage.cycle, phase="done", policy=stage.policy,
                                       started_at=stage.started_at, step=stage.step)
    _after_stage_change(case)


def _after_stage_change(case: CaseClock) -> None:
    if _owner(case) is None:
        case.climb = None


def _lapse(stage: StageClock, due_at: datetime) -> None:
    stage.phase, stage.lapsed_at, stage.warned, stage.due, stage.warn = "lapsed", due_at, True, None, None


def _owner(case: CaseClock) -> str | None:
    """The stage that drives the climb: the earliest to lapse of those lapsed and not completed."""
    lapsed = [(s.lapsed_at, STAGES.index(n), n) for n, s in case.stages.items() if s.phase == "lapsed"]
    return min(lapsed)[2] if lapsed else None


def _restart_climb(case: CaseClock, at: datetime, rules: Rules) -> None:
    owner = _owner(case)
    if owner is None or case.rung >= TOP:
        case.climb = None
        return
    step = case.stages[owner].step
    if case.paused_since is not None:
        case.climb = Timer(left=step)
    else:
        case.climb = Timer(at=rules.calendar(case.branch_id).add(at, step))


# -- time ----------------------------------------------------------------------------------------


def next_action(case: CaseClock) -> Action | None:
    """What is due next, or None while the case is closed, paused or has nothing left to do."""
    if case.closed or case.paused_since is not None:
        return None
    candidates: list[Action] = []
    for index, name in enumerate(STAGES):
        stage = case.stages[name]
        if stage.phase != "running":
            continue
        if stage.warn is not None and stage.warn.at is not None and not stage.warned:
            candidates.append(Action(stage.warn.at, 0, index, "warn"))
        if stage.due is not None and stage.due.at is not None:
            candidates.append(Action(stage.due.at, 1, index, "lapse"))
    owner = _owner(case)
    if case.climb is not None and case.climb.at is not None and owner is not None and case.rung < TOP:
        candidates.append(Action(case.climb.at, 2, STAGES.index(owner), "climb"))
    return min(candidates) if candidates else None


def due_at(case: CaseClock) -> datetime | None:
    action = next_action(case)
    return action.at if action else None


def fire(case: CaseClock, now: datetime, rules: Rules) -> tuple[CaseClock, list[Effect]]:
    """Do everything due by `now`, each at most once; what to publish comes back as effects."""
    case = case.copy()
    effects: list[Effect] = []
    while (action := next_action(case)) is not None and action.at <= now:
        effects.extend(_perform(case, action, now, rules))
    return case, effects


def settle(case: CaseClock, until: datetime, rules: Rules) -> CaseClock:
    """Take as done what leaves no record (warnings, a lapse at the top); stop at an escalation.

    Rebuilding from history uses this: escalations are known from the recorded `escalated`
    events, so one missing from history is still owed and stays due.
    """
    case = case.copy()
    while (action := next_action(case)) is not None and action.at <= until:
        if action.kind == "climb" or (action.kind == "lapse" and case.rung < TOP):
            break
        _perform(case, action, action.at, rules)
    return case


def _perform(case: CaseClock, action: Action, now: datetime, rules: Rules) -> list[Effect]:
    stage = case.stages[action.stage]
    if action.kind == "warn":
        stage.warned = True
        due = stage.due.at if stage.due and stage.due.at else action.at
        return [StageWarning(case.case_id, case.case_ref, case.branch_id, action.stage, stage.cycle, due, now)]
    if action.kind == "lapse":
        _lapse(stage, action.at)
        if case.rung >= TOP:
            return []
    # A first lapse is sent for its own stage; a climb for the stage that drives it.
    return [_escalate(case, action.stage, now, rules)]


def _escalate(case: CaseClock, name: str, now: datetime, rules: Rules) -> Escalation:
    stage = case.stages[name]
    lapsed_at = stage.lapsed_at or now
    case.sent = case.rung + 1
    case.last_escalation = now
    _restart_climb(case, now, rules)
    return Escalation(case.case_id, name, stage.cycle, LEVELS[case.sent], rules.department(case.category),
                      lapsed_at, max(0, int((now - lapsed_at).total_seconds())), now)
