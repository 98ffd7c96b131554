"""Intake's review and period rules, as the rewards mechanism relies on them: each refusal has its code."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.unit.test_rewards_helpers import THIRDS, World


@pytest.fixture
def world() -> World:
    return World()


def code(outcome: object) -> str | None:
    error = getattr(outcome, "error", None)
    return error.code if error else None


def test_a_report_is_reviewed_only_once(world: World) -> None:
    report = world.report()
    assert world.review(report).status == "accepted"

    again = world.review(report)

    assert (again.status, code(again)) == ("rejected", "already_reviewed")


def test_a_branch_cannot_review_surplus_reports(world: World) -> None:
    report = world.report()

    outcome = world.send("branch-GZ01", "surplus.review", world.review_body(report))

    assert (outcome.status, code(outcome)) == ("rejected", "forbidden")


def test_shares_must_add_up_to_one(world: World) -> None:
    report = world.report()

    outcome = world.review(report, {"SZ02": "0.5", "SH01": "0.4"})

    assert (outcome.status, code(outcome)) == ("rejected", "shares_invalid")


def test_a_branch_is_named_once_among_the_responsible(world: World) -> None:
    outcome = world.send("hq-warehousing", "surplus.review", {
        **world.review_body(world.report()),
        "responsible_branches": [{"branch_id": "SZ02", "share": "0.5"}, {"branch_id": "SZ02", "share": "0.5"}]})

    assert (outcome.status, code(outcome)) == ("rejected", "shares_invalid")


def test_a_rejected_report_holds_no_branch_responsible(world: World) -> None:
    outcome = world.review(world.report(), {"SZ02": "1"}, approved=False)

    assert (outcome.status, code(outcome)) == ("rejected", "shares_invalid")


def test_a_report_matches_only_a_shortage_complaint(world: World) -> None:
    damage = world.shortage(ref="C-damage", category="damage")

    outcome = world.review(world.report(), THIRDS, matched=damage)

    assert (outcome.status, code(outcome)) == ("rejected", "match_invalid")


def test_a_report_cannot_match_an_unknown_case(world: World) -> None:
    outcome = world.review(world.report(), THIRDS, matched=world.report(ref="R-other"))

    assert (outcome.status, code(outcome)) == ("rejected", "match_invalid")


def test_a_shortage_is_matched_by_one_report_only(world: World) -> None:
    case = world.shortage()
    assert world.review(world.report(ref="R-1"), matched=case).status == "accepted"

    outcome = world.review(world.report(ref="R-2"), matched=case)

    assert (outcome.status, code(outcome)) == ("rejected", "already_matched")


def test_deciding_an_already_decided_period_is_rejected(world: World) -> None:
    assert world.decide().status == "accepted"

    outcome = world.decide()

    assert (outcome.status, code(outcome)) == ("rejected", "period_decided")


def test_only_hq_warehousing_decides(world: World) -> None:
    outcome = world.decide(user="hq-settlement")

    assert (outcome.status, code(outcome)) == ("rejected", "forbidden")


def test_settling_an_undecided_period_is_rejected(world: World) -> None:
    world.review(world.report())  # the period exists, but is not decided

    outcome = world.settle()

    assert (outcome.status, code(outcome)) == ("rejected", "period_not_decided")


def test_a_period_is_settled_once_and_only_by_the_settlement_centre(world: World) -> None:
    world.decide()
    assert code(world.settle(user="hq-warehousing")) == "forbidden"
    assert world.settle().status == "accepted"

    outcome = world.settle()

    assert (outcome.status, code(outcome)) == ("rejected", "period_settled")


def test_a_period_that_has_not_begun_cannot_be_decided(world: World) -> None:
    outcome = world.decide("2026-12")

    assert (outcome.status, code(outcome)) == ("rejected", "period_invalid")


def test_a_review_recorded_after_the_decision_falls_in_the_next_period(world: World) -> None:
    world.decide()
    world.now += timedelta(hours=1)

    world.review(world.report())

    reviewed = [body for key, body in world.messages() if key.startswith("surplus.reviewed")]
    assert b'"period":"2026-12"' in reviewed[-1]


def test_a_rejected_review_does_not_claim_the_shortage_it_names(world: World) -> None:
    case = world.shortage()
    rejected = world.review(world.report(ref="R-rejected"), matched=case, approved=False)

    outcome = world.review(world.report(ref="R-real"), matched=case)

    assert rejected.error is not None and rejected.error.code == "match_invalid"
    assert outcome.status == "accepted"
