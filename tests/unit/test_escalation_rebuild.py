"""Rebuild from history equals the live clocks; restarts, crashes and a second scheduler escalate once per lapse."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

from services.escalation.application import EscalationApplication
from services.escalation.rules import Rules
from services.escalation.store import SqliteClockStore
from tests.unit.test_escalation_kit import T0, World, short_policy


def story(world: World) -> None:
    """Neglected, attended, paused, reopened and manually escalated cases over an hour."""
    neglected, attended, paused, repeat, manual = (world.receive(ref) for ref in ("N", "A", "P", "R", "M"))
    world.run(40)
    world.act("verify", attended)
    world.act("await_customer", paused)
    world.act("escalate", manual, level="regional")
    world.run(90)
    world.act("remediate", attended)
    world.act("close", attended)
    world.run(130)
    world.act("verify", repeat)
    world.act("remediate", repeat)
    world.act("close", repeat)
    world.run(300)
    world.act("resume", paused)
    world.act("reopen", repeat)
    world.run(3600)
    assert neglected and attended


def test_rebuild_from_history_equals_the_live_clocks() -> None:
    world = World()
    story(world)
    rebuilt = world.app.rebuild(world.history.facts(), world.clock())
    assert len(rebuilt) == 5
    assert world.app.differences(rebuilt) == []


def test_rebuild_in_the_middle_of_a_climb_equals_the_live_clocks() -> None:
    world = World()
    world.receive("N")
    world.run(170)  # branch at 100, regional at 150, hq owed at 200
    assert world.app.differences(world.app.rebuild(world.history.facts(), world.clock())) == []


def test_rebuild_keeps_each_stage_on_the_policy_it_started_under() -> None:
    store = SqliteClockStore(":memory:")
    world = World(short_policy(version="old"), store=store)
    case = world.receive("N")
    world.run(60)
    # A new policy is deployed: the running verify stage keeps its deadline; remediate takes the new one.
    new = short_policy(version="new", stages={"verify": 10, "remediate": 20, "close": 1000})
    book = EscalationApplication.load_book(store, Rules(new), world.clock())
    world.app = EscalationApplication(store, book, world.history)
    world.run(110)
    world.act("verify", case)
    world.run(3600)
    assert [f.level for f in world.facts() if f.kind == "escalated"] == ["branch", "regional", "hq"]
    assert [(e.stage, e.level) for e in world.published] == [
        ("verify", "branch"), ("remediate", "regional"), ("remediate", "hq")]
    assert world.app.differences(world.app.rebuild(world.history.facts(), world.clock())) == []


def test_deadlines_that_lapsed_while_down_fire_once_on_start_up() -> None:
    world = World()
    cases = [world.receive(f"C{i}") for i in range(4)]
    world.run(10)
    # Down from t=10 to t=2000: every verify (100) and close (1000) deadline lapses meanwhile. One case is
    # settled late meanwhile; the restarted service reads that from the store before it fires.
    world.clock.set(T0 + timedelta(seconds=500))
    for command in ("verify", "remediate", "close"):
        world.act(command, cases[0])
    world.clock.set(T0 + timedelta(seconds=2000))
    world.fire()
    # Each lapse fires once, at once: verify's sends branch, close's regional; no ladder step has passed.
    assert sorted(world.escalated()) == sorted((str(c), level) for c in cases[1:] for level in ("branch", "regional"))
    world.fire()
    assert len(world.escalated()) == 6  # nothing fires twice


def test_a_crash_between_publishing_and_recording_escalates_once() -> None:
    world = World()
    world.receive("N")
    world.run(10)
    world.clock.set(T0 + timedelta(seconds=100))
    plans = world.app.plan_due(world.clock(), 500)
    for effect in (e for plan in plans for e in plan.effects):
        world.publish(effect)
    # The process dies here: nothing recorded. A restarted one, even without reading the store first,
    # publishes the same deterministic message id, and intake answers it as a duplicate.
    restarted = EscalationApplication(world.store, world.app.book, history=None)
    replans = restarted.plan_due(world.clock(), 500)
    for effect in (e for plan in replans for e in plan.effects):
        world.publish(effect)
    assert restarted.commit(replans) == []
    world.deliver()
    assert [level for _, level in world.escalated()] == ["branch"]
    first, repeat = (e.message_id for e in world.published)
    assert first == repeat


def test_two_schedulers_on_one_store_escalate_once_per_lapse() -> None:
    world = World()
    for i in range(3):
        world.receive(f"C{i}")
    world.run(10)
    other = EscalationApplication(world.store, world.app.book, world.history)
    for moment in (100, 150, 200):
        world.clock.set(T0 + timedelta(seconds=moment))
        mine, theirs = world.app.plan_due(world.clock(), 500), other.plan_due(world.clock(), 500)
        for effect in [e for p in mine for e in p.effects] + [e for p in theirs for e in p.effects]:
            world.publish(effect)
        assert world.app.commit(mine) == []
        assert sorted(other.commit(theirs)) == sorted(p.case_id for p in theirs)  # all stale: refused
        assert all(not p.effects for p in other.plan_due(world.clock(), 500))
        world.deliver()
    assert Counter(level for _, level in world.escalated()) == {"branch": 3, "regional": 3, "hq": 3}
