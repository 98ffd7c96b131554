"""The ladder on a fake clock: order and timing of rungs, progress, close, reopen, manual escalation, pause."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.escalation import codec
from services.escalation.domain import CaseClock, Escalation, Fact, Lapse, StageWarning
from services.escalation.ladder import apply, due_at, fire, next_action, settle
from services.escalation.rules import PolicyBook, Rules
from tests.unit.test_escalation_kit import T0
from tests.unit.test_escalation_kit import short_policy as policy

RULES = Rules(policy())


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class Live:
    """One case, driven the way the service and intake drive it: actions fire at their due times,
    and every escalation comes back as an `escalated` event recorded at the same moment."""

    book: PolicyBook = field(default_factory=lambda: PolicyBook.single(policy()))
    clock: CaseClock | None = None
    now: datetime = T0
    version: int = 0
    sent: list[tuple[float, str, str]] = field(default_factory=list)
    ids: list[str] = field(default_factory=list)

    def event(self, seconds: float, kind: str, **fields: Any) -> Live:
        self.run(seconds)
        self.version += 1
        moment = at(seconds)
        fact = Fact(case_id="case-1", version=self.version, kind=kind, occurred_at=moment, recorded_at=moment,
                    branch_id="GZ01", category=fields.pop("category", "shortage"), case_ref="C-1", **fields)
        self.clock = apply(self.clock, fact, self.book.at(moment))
        return self

    def run(self, seconds: float) -> Live:
        """Let time pass up to `seconds`, firing every action at its own due time."""
        until = at(seconds)
        while self.clock and (action := next_action(self.clock)) and action.at <= until:
            self.clock, effects = fire(self.clock, action.at, self.book.at(action.at))
            for effect in effects:
                self._record(effect, action.at)
        self.now = max(self.now, until)
        return self

    def _record(self, effect: Escalation | StageWarning, moment: datetime) -> None:
        seconds = (moment - T0).total_seconds()
        self.ids.append(effect.message_id)
        if isinstance(effect, StageWarning):
            self.sent.append((seconds, "warning", effect.stage))
            return
        self.sent.append((seconds, effect.level, effect.stage))
        self.version += 1
        assert self.clock is not None
        self.clock = apply(self.clock, Fact(
            case_id="case-1", version=self.version, kind="escalated", occurred_at=moment, recorded_at=moment,
            branch_id="GZ01", level=effect.level, department=effect.department, command_id=effect.message_id,
            lapse=Lapse(effect.stage, effect.due_at)), self.book.at(moment))

    def escalations(self) -> list[tuple[float, str, str]]:
        return [entry for entry in self.sent if entry[1] != "warning"]


# -- the climb -------------------------------------------------------------------------------------


LADDER_CASES = {
    "neglected: branch at the lapse, then one rung per ladder step, never past hq": (
        [(0, "received")], 10_000,
        [(80, "warning", "verify"), (100, "branch", "verify"), (150, "regional", "verify"), (200, "hq", "verify"),
         (800, "warning", "close")]),
    "attended in time: no warning, no escalation": (
        [(0, "received"), (50, "verified"), (100, "remediated"), (150, "closed")], 10_000, []),
    "verification after the lapse stops the climb": (
        [(0, "received"), (120, "verified"), (200, "remediated"), (250, "closed")], 10_000,
        [(80, "warning", "verify"), (100, "branch", "verify")]),
    "the next stage's lapse continues from the rung reached": (
        [(0, "received"), (120, "verified")], 400,
        [(80, "warning", "verify"), (100, "branch", "verify"), (280, "warning", "remediate"),
         (320, "regional", "remediate"), (370, "hq", "remediate")]),
    "closing cancels every clock": (
        [(0, "received"), (110, "verified"), (120, "closed")], 10_000,
        [(80, "warning", "verify"), (100, "branch", "verify")]),
}


@pytest.mark.parametrize(("events", "until", "expected"), LADDER_CASES.values(), ids=LADDER_CASES.keys())
def test_ladder(events: list[tuple[float, str]], until: float, expected: list[tuple[float, str, str]]) -> None:
    live = Live()
    for seconds, kind in events:
        live.event(seconds, kind)
    live.run(until)
    assert live.sent == expected


def test_a_rung_is_never_sent_twice_even_before_intake_records_it() -> None:
    clock = apply(None, Fact("c", 1, "received", at(0), at(0), "GZ01", "shortage", "C"), RULES)
    sent: list[str] = []
    for seconds in (100, 100, 120, 150, 150, 199, 200, 5000):
        clock, effects = fire(clock, at(seconds), RULES)
        sent += [e.level for e in effects if isinstance(e, Escalation)]
    assert sent == ["branch", "regional", "hq"]
    assert clock.rung == 2


def test_closing_leaves_nothing_due() -> None:
    live = Live().event(0, "received").event(110, "verified").event(120, "closed")
    assert live.clock is not None and due_at(live.clock) is None and live.clock.closed


def test_reopening_restarts_the_stages_from_the_rung_reached() -> None:
    live = Live().event(0, "received").run(160).event(160, "verified").event(170, "remediated")
    live.event(180, "closed").event(500, "reopened").run(10_000)
    assert live.escalations() == [(100, "branch", "verify"), (150, "regional", "verify"), (600, "hq", "verify")]
    assert "escalate:case-1:verify-2:hq" in live.ids
    assert ("warning:case-1:verify:2") in live.ids  # the new cycle warns again, once


def test_manual_escalation_moves_the_case_to_that_rung() -> None:
    live = Live().event(0, "received").event(30, "escalated", level="regional").run(10_000)
    assert live.escalations() == [(100, "hq", "verify")]


def test_a_climb_is_measured_from_the_previous_escalation_even_a_manual_one() -> None:
    live = Live().event(0, "received").run(120).event(120, "escalated", level="regional").run(10_000)
    assert live.escalations() == [(100, "branch", "verify"), (170, "hq", "verify")]


def test_hq_department_follows_the_category() -> None:
    clock = apply(None, Fact("c", 1, "received", at(0), at(0), "GZ01", "damage", "C"), RULES)
    _, effects = fire(clock, at(100), RULES)
    [escalation] = [e for e in effects if isinstance(e, Escalation)]
    assert escalation.department == "claims"
    assert escalation.message_id == "escalate:c:verify-1:branch"


def test_the_reason_carries_stage_due_time_and_how_overdue() -> None:
    clock = apply(None, Fact("c", 1, "received", at(0), at(0), "GZ01", "shortage", "C"), RULES)
    _, effects = fire(clock, at(107.5), RULES)  # the service was late by 7.5 s
    [escalation] = [e for e in effects if isinstance(e, Escalation)]
    assert (escalation.stage, escalation.due_at, escalation.overdue_seconds) == ("verify", at(100), 7)


# -- pausing -----------------------------------------------------------------------------------------


def test_the_clock_stops_while_awaiting_the_customer() -> None:
    live = Live().event(0, "received").event(50, "awaiting_customer").run(250)
    assert live.sent == []
    live.event(250, "resumed").run(10_000)
    assert live.sent[:3] == [(280, "warning", "verify"), (300, "branch", "verify"), (350, "regional", "verify")]
    assert live.clock is not None and live.clock.paused_total == timedelta(seconds=200)
    assert live.clock.pauses == 1


def test_a_pause_also_stops_the_climb() -> None:
    live = Live().event(0, "received").run(120).event(120, "awaiting_customer").run(1000)
    live.event(1000, "resumed").run(1050)
    assert live.escalations() == [(100, "branch", "verify"), (1030, "regional", "verify")]


def test_paused_case_has_nothing_due() -> None:
    live = Live().event(0, "received").event(10, "awaiting_customer")
    assert live.clock is not None and next_action(live.clock) is None


# -- working time and policy versions ------------------------------------------------------------------


def test_deadlines_count_working_time_of_the_branch_region() -> None:
    rules = Rules(policy(calendar="cn-office", stages={"verify": "2h"}))
    shanghai = ZoneInfo("Asia/Shanghai")
    friday_five = datetime(2025, 6, 13, 17, 0, tzinfo=shanghai)
    clock = apply(None, Fact("c", 1, "received", friday_five, friday_five, "GZ01", "shortage", "C"), rules)
    stage = clock.stages["verify"]
    assert stage.due is not None and stage.due.at == datetime(2025, 6, 14, 9, 30, tzinfo=shanghai)


def test_a_new_policy_applies_from_the_next_stage_boundary() -> None:
    old, new = policy(version="old"), policy(version="new", stages={"verify": 50, "remediate": 60, "close": 1000})
    live = Live(book=PolicyBook([(at(-1), Rules(old)), (at(20), Rules(new))]))
    live.event(0, "received").event(30, "hand_over").run(110).event(110, "verified").run(1000)
    assert live.escalations()[:2] == [(100, "branch", "verify"), (170, "regional", "remediate")]
    assert live.clock is not None
    assert (live.clock.stages["verify"].policy, live.clock.stages["remediate"].policy) == ("old", "new")


# -- rebuilding ---------------------------------------------------------------------------------------------


def test_settle_takes_warnings_as_sent_but_leaves_an_owed_escalation_due() -> None:
    clock = apply(None, Fact("c", 1, "received", at(0), at(0), "GZ01", "shortage", "C"), RULES)
    settled = settle(clock, at(5000), RULES)
    assert settled.stages["verify"].warned
    action = next_action(settled)
    assert action is not None and (action.kind, action.at) == ("lapse", at(100))


EVENTS = st.sampled_from(["verified", "remediated", "closed", "reopened", "awaiting_customer", "resumed",
                          "hand_over", "escalated"])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 400), EVENTS, st.sampled_from(["branch", "regional", "hq"])),
                max_size=15))
def test_any_history_climbs_strictly_and_round_trips(steps: list[tuple[int, str, str]]) -> None:
    live = Live().event(0, "received")
    seconds = 0
    for gap, kind, level in steps:
        seconds += gap
        assert live.clock is not None
        if kind == "escalated" and ["branch", "regional", "hq"].index(level) <= live.clock.rung:
            continue  # intake refuses an escalation that does not climb
        live.event(seconds, kind, **({"level": level} if kind == "escalated" else {}))
    live.run(seconds + 5000)
    levels = [level for _, level, _ in live.escalations()]
    assert len(set(live.ids)) == len(live.ids)
    assert levels == sorted(set(levels), key=["branch", "regional", "hq"].index)
    assert live.clock is not None
    assert codec.dumps(codec.loads(codec.dumps(live.clock))) == codec.dumps(live.clock)
    again, effects = fire(live.clock, live.now, RULES)
    assert effects == [] and codec.dumps(again) == codec.dumps(live.clock)


def test_a_lower_rung_recorded_late_does_not_restart_the_climb() -> None:
    clock = apply(None, Fact("c", 1, "received", at(0), at(0), "GZ01", "shortage", "C"), RULES)
    clock, _ = fire(clock, at(100), RULES)  # branch sent
    clock, _ = fire(clock, at(150), RULES)  # regional sent before intake recorded branch
    clock = apply(clock, Fact("c", 2, "escalated", at(100), at(100), "GZ01", level="branch",
                              command_id="escalate:c:verify-1:branch", lapse=Lapse("verify", at(100))), RULES)
    _, effects = fire(clock, at(150), RULES)
    assert effects == []
    _, effects = fire(clock, at(200), RULES)
    assert [e.level for e in effects if isinstance(e, Escalation)] == ["hq"]
