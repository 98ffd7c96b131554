"""What-if replay: the policy of the day reproduces what happened, another shows its own; nothing is written."""

from __future__ import annotations

from datetime import timedelta

from services.escalation.rules import Rules
from services.escalation.simulate import simulate
from tests.unit.test_escalation_kit import T0, World, short_policy


def recorded_world() -> World:
    world = World()
    neglected, attended, manual = world.receive("N"), world.receive("A"), world.receive("M", category="damage")
    world.run(30)
    world.act("verify", attended)
    world.act("escalate", manual, level="regional")
    world.run(60)
    world.act("remediate", attended)
    world.act("close", attended)
    world.run(5000)
    assert neglected
    return world


def test_the_policy_of_the_day_reproduces_what_happened() -> None:
    world = recorded_world()
    report = simulate(world.facts(), Rules(world.policy), None, world.clock())
    assert report.cases == 3
    assert report.simulated == report.actual
    assert report.actual[("hq", "warehousing", "GZ01")] == 1
    assert report.actual[("regional", "claims", "GZ01")] == 1  # the manual one


def test_a_tighter_policy_escalates_the_attended_case_too() -> None:
    world = recorded_world()
    tight = short_policy(version="tight", stages={"verify": 20, "remediate": 200, "close": 1000}, ladder_step=10)
    report = simulate(world.facts(), Rules(tight), None, world.clock())
    rows = {(r["level"], r["department"]): (r["actual"], r["simulated"]) for r in report.rows()}
    assert rows[("branch", "warehousing")] == (1, 2)
    assert report.as_dict()["total"]["simulated"] > report.as_dict()["total"]["actual"]


def test_a_lenient_policy_keeps_only_the_manual_escalation() -> None:
    world = recorded_world()
    lenient = short_policy(version="lenient", stages={"verify": 90_000, "remediate": 90_000, "close": 90_000})
    report = simulate(world.facts(), Rules(lenient), None, world.clock())
    assert sum(report.simulated.values()) == 1
    assert report.simulated[("regional", "claims", "GZ01")] == 1


def test_the_window_selects_cases_by_when_they_were_received() -> None:
    world = recorded_world()
    report = simulate(world.facts(), Rules(world.policy), T0 + timedelta(seconds=1), world.clock())
    assert report.cases == 0 and report.rows() == []
