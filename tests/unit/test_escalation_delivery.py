"""Exactly once per event: duplicates, reordering and gaps give the same clocks; the store keeps rows honest."""

from __future__ import annotations

import asyncio
import json
import random
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from services.escalation import codec
from services.escalation.application import EscalationApplication, GapError
from services.escalation.consumer import EscalationConsumer
from services.escalation.domain import Fact
from services.escalation.rules import PolicyBook, Rules
from services.escalation.store import Change, SqliteClockStore, from_us, store_location
from services.intake.translate import event_body
from tests.unit.test_escalation_kit import T0, World, short_policy


def busy_world() -> World:
    """Three cases with every kind of complaint event, recorded by intake over simulated time."""
    world = World()
    a, b, c = world.receive("A"), world.receive("B"), world.receive("C", category="damage")
    world.clock.advance(timedelta(seconds=30))
    world.act("verify", a)
    world.act("await_customer", b)
    world.act("hand_over", c)
    world.clock.advance(timedelta(seconds=60))
    world.act("resume", b)
    world.act("remediate", a)
    world.act("escalate", c, level="regional")
    world.act("close", a)
    world.act("reopen", a)
    return world


def fresh_app(world: World, with_history: bool = True) -> EscalationApplication:
    return EscalationApplication(SqliteClockStore(":memory:"), PolicyBook.single(world.policy),
                                 world.history if with_history else None)


def states(app: EscalationApplication) -> dict[str, str]:
    return {row.case_id: row.state for row in app.store.rows()}


def test_duplicated_and_shuffled_deliveries_give_the_same_clocks() -> None:
    world = busy_world()
    facts = world.facts()
    in_order = fresh_app(world)
    for fact in facts:
        in_order.handle([fact])
    for seed in range(5):
        rng = random.Random(seed)
        messy = [*facts, *rng.sample(facts, len(facts) // 2)]
        rng.shuffle(messy)
        app = fresh_app(world)
        while messy:
            size = rng.randint(1, 4)
            app.handle(messy[:size])
            messy = messy[size:]
        assert states(app) == states(in_order), f"seed {seed}"


def test_a_redelivered_event_is_ignored_and_writes_nothing() -> None:
    world = busy_world()
    app = fresh_app(world)
    facts = world.facts()
    app.handle(facts)
    revisions = {row.case_id: row.rev for row in app.store.rows()}
    app.handle(facts[:3])
    assert {row.case_id: row.rev for row in app.store.rows()} == revisions


def test_a_gap_is_filled_from_the_event_store() -> None:
    world = busy_world()
    facts = [f for f in world.facts() if f.case_id == str(world.facts()[0].case_id)]
    app = fresh_app(world)
    app.handle([facts[-1]])  # only the last version arrives
    clock = app.clock(facts[0].case_id)
    reference = fresh_app(world)
    reference.handle(facts)
    assert clock is not None and clock.version == facts[-1].version
    assert codec.dumps(clock) == states(reference)[facts[0].case_id]


def test_a_gap_that_cannot_be_read_is_held_not_skipped() -> None:
    world = busy_world()
    facts = [f for f in world.facts() if f.case_id == world.facts()[0].case_id]
    app = fresh_app(world, with_history=False)
    app.handle(facts[:1])
    with pytest.raises(GapError):
        app.handle([facts[3]])
    clock = app.clock(facts[0].case_id)
    assert clock is not None and clock.version == 1
    app.handle(facts[1:])  # once the missing versions arrive, everything applies
    clock = app.clock(facts[0].case_id)
    assert clock is not None and clock.version == facts[-1].version


def test_a_stale_writer_is_refused_and_the_fresh_one_kept() -> None:
    store = SqliteClockStore(":memory:")
    assert store.save([Change("c", 0, 1, None, "GZ01", "{}")]) == []
    assert store.save([Change("c", 0, 1, None, "GZ01", "{}")]) == ["c"]  # created meanwhile
    assert store.save([Change("c", 1, 2, None, "GZ01", "{}")]) == []
    assert store.save([Change("c", 1, 3, None, "GZ01", "{}")]) == ["c"]  # read before the last write
    assert store.load(["c"])["c"].rev == 2


def test_two_applications_on_one_store_apply_each_event_once() -> None:
    world = busy_world()
    facts = world.facts()
    shared = SqliteClockStore(":memory:")
    one, two = (EscalationApplication(shared, PolicyBook.single(world.policy), world.history) for _ in range(2))
    for index, fact in enumerate(facts):
        (one if index % 2 else two).handle([fact])
        (two if index % 2 else one).handle([fact])
    reference = fresh_app(world)
    reference.handle(facts)
    assert states(one) == states(reference)


def test_the_scheduler_reads_only_the_earliest_due_clocks_through_the_index() -> None:
    store = SqliteClockStore(":memory:")
    store.save([Change(f"c{i}", 0, 1, T0 + timedelta(seconds=i % 7), "GZ01", "{}") for i in range(50)]
               + [Change("idle", 0, 1, None, "GZ01", "{}")])
    due = store.due(T0 + timedelta(seconds=2), limit=10)
    assert len(due) == 10 and {r.case_id for r in due} <= {f"c{i}" for i in range(50) if i % 7 <= 2}
    assert store.next_due() == T0
    plan = store._run("EXPLAIN QUERY PLAN SELECT case_id FROM escalation_clocks WHERE due_us IS NOT NULL "
                      "AND due_us <= 1 ORDER BY due_us LIMIT 10")
    assert any("escalation_clocks_due" in str(step) for step in plan)


def test_the_clock_store_sits_beside_intake_store(tmp_path: Path) -> None:
    assert store_location(f"sqlite:///{tmp_path}/x.sqlite3") == f"sqlite:///{tmp_path}/x-escalation.sqlite3"
    assert store_location("postgresql://u@h:5432/db") == "postgresql://u@h:5432/db"
    assert from_us(0).year == 1970


def test_each_policy_version_is_recorded_once_with_when_it_took_effect() -> None:
    store = SqliteClockStore(":memory:")
    old, new = short_policy(version="old"), short_policy(version="new", stages={"verify": 10})
    EscalationApplication.load_book(store, Rules(old), T0)
    EscalationApplication.load_book(store, Rules(old), T0 + timedelta(hours=1))
    book = EscalationApplication.load_book(store, Rules(new), T0 + timedelta(hours=2))
    assert [version for _, version, _ in store.policies()] == ["old", "new"]
    assert book.at(T0 + timedelta(minutes=90)).version == "old"
    assert book.at(T0 + timedelta(hours=3)).deadline("verify", "other") == timedelta(seconds=10)


def test_facts_read_back_from_the_store_match_what_the_relay_publishes() -> None:
    world = busy_world()
    kinds = [f.kind for f in world.facts()]
    assert {"received", "verified", "awaiting_customer", "resumed", "escalated", "reopened"} <= set(kinds)
    assert all(isinstance(f, Fact) and f.occurred_at.tzinfo is not None for f in world.facts())


class FakeDelivery:
    """Just enough of an AMQP delivery for the consumer: a body, an id, its headers and ack."""

    def __init__(self, body: bytes, message_id: str = "m") -> None:
        self.body, self.message_id = body, message_id
        self.routing_key, self.headers, self.content_type = "complaint.received.GZ01", {}, "application/json"
        self.acked = False

    async def ack(self) -> None:
        self.acked = True


class DeadLetters:
    """Stands in for the broker, which the consumer only uses to publish to casework.dead."""

    def __init__(self) -> None:
        self.published: list[tuple[bytes, dict[str, Any]]] = []

    async def publish(self, body: bytes, **options: Any) -> None:
        self.published.append((body, options))


async def test_the_consumer_holds_a_gap_until_the_missing_version_is_delivered() -> None:
    world = World()
    case = world.receive("G")
    world.act("verify", case)
    bodies = [json.dumps(event_body(e), default=str).encode() for e in world.intake.events.get(case)]
    app = fresh_app(world, with_history=False)  # nothing to read missing versions from
    dead = DeadLetters()
    consumer = EscalationConsumer(app, dead, batch_size=1)  # type: ignore[arg-type]
    later, earlier, junk = FakeDelivery(bodies[1]), FakeDelivery(bodies[0]), FakeDelivery(b"{nope")
    for delivery in (later, earlier, junk):
        await consumer.receive(delivery)  # type: ignore[arg-type]
    task = asyncio.create_task(consumer.run())
    while not (later.acked and earlier.acked):
        await asyncio.sleep(0.01)
    task.cancel()
    clock = app.clock(str(case))
    assert clock is not None and clock.version == 2
    [(body, options)] = dead.published
    assert body == b"{nope" and options["exchange"].name == "casework.dead" and junk.acked
    assert json.loads(options["headers"]["x-casework-error"])["code"] == "schema_invalid"
