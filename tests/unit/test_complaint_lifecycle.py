"""The complaint lifecycle table, every allowed and forbidden transition, and a model-based check."""

from __future__ import annotations

import itertools
from typing import Any
from uuid import UUID

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from services.intake.application import IntakeApplication
from services.intake.domain import LEVELS, TRANSITIONS
from shared.events import Outcome
from shared.policy import load_policy
from tests.unit.commands import act, receive, report, review

POLICY = load_policy()
PATHS: dict[str, list[str]] = {
    "received": [],
    "verified": ["verify"],
    "remediated": ["verify", "remediate"],
    "closed": ["verify", "remediate", "close"],
    "reopened": ["verify", "remediate", "close", "reopen"],
}

# What the tests expect, written out by hand from docs/contract.md ("The complaint
# lifecycle"), not taken from the code: the code's TRANSITIONS and PAUSE_ALLOWS are what
# is under test. Command -> the states it is allowed in.
OPEN = {"received", "reopened", "verified", "remediated"}
ALLOWED_IN: dict[str, set[str]] = {
    "verify": {"received", "reopened"},
    "hand_over": OPEN,
    "escalate": OPEN,  # and only to a higher level: test_escalation_only_climbs
    "remediate": {"verified", "remediated"},
    "close": {"verified", "remediated"},
    "reopen": {"closed"},
    "await_customer": OPEN,  # and not already awaiting
    "resume": OPEN,  # and awaiting
    "locate_goods": OPEN | {"closed"},  # an approved surplus.review matching the shortage
}
# While a case awaits the customer only these go through.
WHILE_AWAITING = {"hand_over", "escalate", "resume", "locate_goods"}
COMMANDS = sorted(ALLOWED_IN)
_refs = itertools.count(1)


def app() -> IntakeApplication:
    return IntakeApplication(POLICY, "memory:")


def perform(application: IntakeApplication, command: str, case_id: UUID, **overrides: Any) -> Outcome:
    """A complaint command; locate_goods is HQ approving a new surplus report that matches the case."""
    if command != "locate_goods":
        return act(application, command, case_id, **overrides)
    found = report(application, f"FOUND-{next(_refs)}", branch="SZ02")
    assert found.status == "accepted", found.error
    return review(application, found.stream_id, matched_case_id=str(case_id))


def case_in(application: IntakeApplication, state: str, awaiting: bool) -> Any:
    case_id = receive(application).stream_id
    for command in PATHS[state]:
        assert act(application, command, case_id).status == "accepted", command
    if awaiting:
        assert act(application, "await_customer", case_id).status == "accepted"
    return case_id


def expected(command: str, state: str, awaiting: bool) -> bool:
    if state not in ALLOWED_IN[command]:
        return False
    if awaiting and command not in WHILE_AWAITING:
        return False
    if command == "await_customer":
        return not awaiting
    if command == "resume":
        return awaiting
    return True


CASES = [(c, s, w) for c in COMMANDS for s in PATHS for w in (False, True) if not (s == "closed" and w)]


@pytest.mark.parametrize(("command", "state", "awaiting"), CASES)
def test_transition_table(command: str, state: str, awaiting: bool) -> None:
    application = app()
    case_id = case_in(application, state, awaiting)
    outcome = perform(application, command, case_id)
    if expected(command, state, awaiting):
        assert outcome.status == "accepted", outcome.error
    else:
        assert outcome.status == "rejected"
        assert outcome.error is not None and outcome.error.code == "invalid_transition"


def test_every_command_of_the_code_is_in_the_documented_table() -> None:
    assert set(TRANSITIONS) == set(ALLOWED_IN)


def test_escalation_only_climbs() -> None:
    application = app()
    case_id = receive(application).stream_id
    assert act(application, "escalate", case_id, level="regional").status == "accepted"
    again = act(application, "escalate", case_id, level="regional")
    lower = act(application, "escalate", case_id, level="branch")
    assert again.error is not None and again.error.code == "level_not_higher"
    assert lower.error is not None and lower.error.code == "level_not_higher"
    assert act(application, "escalate", case_id, level="hq").status == "accepted"
    assert application.repository.get(case_id).level == "hq"


def test_reopen_keeps_the_rung_and_counts() -> None:
    application = app()
    case_id = case_in(application, "closed", False)
    act(application, "reopen", case_id)
    complaint = application.repository.get(case_id)
    assert (complaint.status, complaint.reopened_count) == ("reopened", 1)


class ComplaintMachine(RuleBasedStateMachine):
    """Random command sequences against a plain model of the lifecycle."""

    @initialize()
    def start(self) -> None:
        self.app = app()
        self.case_id = receive(self.app).stream_id
        self.model: dict[str, Any] = {"status": "received", "awaiting": False, "level": None, "reopened": 0,
                                      "located": False}

    def _apply(self, command: str, ok: bool, **overrides: Any) -> None:
        outcome = perform(self.app, command, self.case_id, **overrides)
        assert (outcome.status == "accepted") == ok, (command, self.model, outcome.error)

    @rule(command=st.sampled_from([c for c in COMMANDS if c != "escalate"]))
    def lifecycle(self, command: str) -> None:
        m = self.model
        # The goods of a case are located once: a second match is already_matched.
        ok = expected(command, m["status"], m["awaiting"]) and not (command == "locate_goods" and m["located"])
        self._apply(command, ok)
        if not ok:
            return
        status_after = {"verify": "verified", "remediate": "remediated", "close": "closed", "reopen": "reopened"}
        m["status"] = status_after.get(command, m["status"])
        m["awaiting"] = {"await_customer": True, "resume": False, "close": False}.get(command, m["awaiting"])
        m["reopened"] += command == "reopen"
        m["located"] = m["located"] or command == "locate_goods"

    @rule(level=st.sampled_from(LEVELS))
    def escalate(self, level: str) -> None:
        m = self.model
        climbs = m["level"] is None or LEVELS.index(level) > LEVELS.index(m["level"])
        ok = expected("escalate", m["status"], m["awaiting"]) and climbs
        self._apply("escalate", ok, level=level)
        if ok:
            m["level"] = level

    @invariant()
    def aggregate_matches_model(self) -> None:
        if not hasattr(self, "app"):
            return
        c = self.app.repository.get(self.case_id)
        assert (c.status, c.awaiting, c.level, c.reopened_count, c.matched_report_id is not None) == (
            self.model["status"], self.model["awaiting"], self.model["level"], self.model["reopened"],
            self.model["located"])


ComplaintMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=15, deadline=None)
TestComplaintMachine = ComplaintMachine.TestCase
