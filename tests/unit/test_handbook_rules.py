"""The complaint handbook's rules (shared/domain/DOMAIN.md), each as a user of intake would see it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

import pytest

from casework.demo_world import POLICY as DEMO_POLICY
from services.intake.application import IntakeApplication
from services.intake.domain import complaint_id, report_id
from services.intake.translate import escalation_notice, event_body, event_type
from shared.chain import event_hash
from shared.events import Outcome
from shared.policy import default_policy_path, load_policy
from shared.policy.model import CATEGORIES, STAGES
from tests.unit.commands import BODIES, act, code, receive, report, send

POLICY = load_policy()
BRANCHES = sorted(POLICY.organisation.branches)
# The id a case would have had: GZ01 never registered a case "NEVER".
NO_CASE = complaint_id("GZ01", "NEVER")
NO_REPORT = report_id("GZ01", "NEVER")


@pytest.fixture
def app() -> IntakeApplication:
    return IntakeApplication(POLICY, "memory:")


def recorded(app: IntakeApplication) -> list[str]:
    """Every event in the store, in order, by type name (e.g. 'Complaint.Received')."""
    return [n.topic.split(":")[-1] for n in app.recorder.select_notifications(start=1, limit=10_000)]


def sent(app: IntakeApplication, command: Callable[[], Outcome]) -> tuple[Outcome, list[str]]:
    """A command's outcome and what the store gained while it was applied."""
    before = len(recorded(app))
    outcome = command()
    return outcome, recorded(app)[before:]


# -- rule 1: register first -----------------------------------------------------------
@pytest.mark.parametrize("command", sorted(BODIES))
def test_a_command_on_an_unregistered_case_is_rejected_and_records_nothing(
        app: IntakeApplication, command: str) -> None:
    outcome, gained = sent(app, lambda: act(app, command, NO_CASE))
    assert (outcome.status, code(outcome), outcome.stream_id) == ("rejected", "case_not_found", NO_CASE)
    assert gained == ["CommandRecord.Processed"]
    assert list(app.events.get(NO_CASE)) == []


def test_a_review_of_an_unreported_surplus_is_rejected_and_records_nothing(app: IntakeApplication) -> None:
    body = {"report_id": str(NO_REPORT), "reviewer": "赵", "approved": True, "reason": "reported in time"}
    outcome, gained = sent(app, lambda: send(app, "surplus.review", body, user="hq-warehousing"))
    assert (outcome.status, code(outcome), outcome.stream_id) == ("rejected", "report_not_found", NO_REPORT)
    assert gained == ["CommandRecord.Processed"]
    assert list(app.events.get(NO_REPORT)) == []


def test_a_hand_over_to_a_branch_the_policy_does_not_know_changes_nothing(app: IntakeApplication) -> None:
    case_id = receive(app).stream_id
    outcome, gained = sent(app, lambda: act(app, "hand_over", case_id, to_branch="XX99"))
    assert code(outcome) == "unknown_branch"
    assert gained == ["CommandRecord.Processed"]
    assert app.repository.get(case_id).owner_branch == "GZ01"


def test_a_surplus_report_that_names_no_inspector_is_not_registered(app: IntakeApplication) -> None:
    outcome, gained = sent(app, lambda: report(app, "NOONE", inspected_with=[]))
    assert code(outcome) == "evidence_incomplete"
    assert gained == ["CommandRecord.Processed"]
    assert list(app.events.get(report_id("GZ01", "NOONE"))) == []


# -- rules 2 and 8: hand over, never drop; cross-branch help --------------------------
# Each hand-over in turn: who sends it, to whom; then who owns the case and which
# branches may act on it (the branch that registered it and the one holding it).
HAND_OVERS = [
    ("GZ01", "Liu", "SZ02", ("Liu", "SZ02"), {"GZ01", "SZ02"}),
    ("SZ02", "Chen", "SH01", ("Chen", "SH01"), {"GZ01", "SH01"}),
    ("SH01", "Wu", None, ("Wu", "SH01"), {"GZ01", "SH01"}),
    ("GZ01", "Zhang", "GZ01", ("Zhang", "GZ01"), {"GZ01"}),
]


def branches_that_may_act(app: IntakeApplication, case_id: UUID) -> set[str]:
    """Probe every branch with a reopen of the open case: the state refuses it only past authorisation."""
    probes = {branch: code(act(app, "reopen", case_id, user=f"branch-{branch}")) for branch in BRANCHES}
    assert set(probes.values()) <= {"invalid_transition", "not_your_branch"}, probes
    return {branch for branch, answer in probes.items() if answer == "invalid_transition"}


@pytest.mark.parametrize("received_by", [None, "Huang"])
def test_the_case_is_owned_by_whoever_it_was_last_handed_to(app: IntakeApplication, received_by: str | None) -> None:
    """From registration on: by the one who registered it, where the branch names them (and
    always by the branch), then by each colleague it is handed to."""
    case_id = receive(app, branch="GZ01", **({"received_by": received_by} if received_by else {})).stream_id
    case = app.repository.get(case_id)
    assert (case.owner, case.owner_branch) == (received_by, "GZ01")
    [received] = list(app.events.get(case_id))
    assert received.received_by == received_by
    assert branches_that_may_act(app, case_id) == {"GZ01"}
    for sender, to, to_branch, owner, may_act in HAND_OVERS:
        extra = {"to_branch": to_branch} if to_branch else {}
        outcome = act(app, "hand_over", case_id, user=f"branch-{sender}", to=to, **extra)
        assert outcome.status == "accepted", (sender, outcome.error)
        case = app.repository.get(case_id)
        assert (case.owner, case.owner_branch) == owner
        assert branches_that_may_act(app, case_id) == may_act, (sender, to, to_branch)


# -- rule 3: clarify, analyse, solve --------------------------------------------------
@pytest.mark.parametrize(("confirmed", "cause"), [
    (True, "the driver left two cartons at the Foshan depot"),
    (False, None),
])
def test_verification_records_the_restated_problem_the_confirmation_and_the_cause(
        app: IntakeApplication, confirmed: bool, cause: str | None) -> None:
    case_id = receive(app).stream_id
    summary = "two of five cartons missing on delivery"
    outcome = act(app, "verify", case_id, summary=summary, customer_confirmed=confirmed, cause=cause)
    assert outcome.status == "accepted", outcome.error
    verified = event_body(list(app.events.get(case_id))[-1])
    assert verified["event"] == "complaint.verified"
    assert {k: verified[k] for k in ("summary", "customer_confirmed", "cause")} == {
        "summary": summary, "customer_confirmed": confirmed, "cause": cause}


# -- rule 4: the escalation ladder ----------------------------------------------------
@pytest.mark.parametrize(("received_by", "hand_to", "holder"), [
    ("Huang", None, ("Huang", "GZ01")),
    (None, None, (None, "GZ01")),
    ("Huang", ("Liu", "SZ02"), ("Liu", "SZ02")),
])
def test_whoever_is_told_of_an_escalation_learns_who_holds_the_case(
        app: IntakeApplication, received_by: str | None, hand_to: tuple[str, str] | None,
        holder: tuple[str | None, str]) -> None:
    case_id = receive(app, **({"received_by": received_by} if received_by else {})).stream_id
    if hand_to:
        assert act(app, "hand_over", case_id, to=hand_to[0], to_branch=hand_to[1]).status == "accepted"
    assert act(app, "escalate", case_id).status == "accepted"
    *_, escalated = app.events.get(case_id)
    assert (escalated.owner, escalated.owner_branch) == holder
    notice = json.loads(escalation_notice(escalated, "m", {}).body)
    assert (notice["owner"], notice["owner_branch"], notice["level"]) == (*holder, "branch")
    assert event_hash(escalated, event_type(escalated)) == escalated.hash


# -- rule 5: speed matters ------------------------------------------------------------
@pytest.mark.parametrize("policy", [default_policy_path(), DEMO_POLICY], ids=["default", "demo"])
@pytest.mark.parametrize("stage", STAGES)
def test_held_goods_have_the_tightest_deadline_of_every_category(policy: Path, stage: str) -> None:
    sla = load_policy(policy).sla
    detention = sla.deadline(stage, "detention")
    assert detention is not None
    others = {c: sla.deadline(stage, c) for c in CATEGORIES if c != "detention"}
    # A category without a deadline for the stage is looser still.
    assert {c: d for c, d in others.items() if d is not None and d <= detention} == {}
