"""Ledgers from upstream events: exact amounts, each event once, whatever the order or repetition."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from services.rewards.domain import Book, Ledger, ledger_id
from services.rewards.money import text
from services.rewards.upstream import read as parse
from shared.chain import event_hash, wire_name
from shared.events import EventMessage
from tests.unit.test_rewards_helpers import (
    THIRDS,
    World,
    decided_world,
    entries,
    fed,
    recorded,
    rewards,
    three_way_world,
)

D = Decimal


def test_an_approved_review_credits_the_reporter_and_debits_each_share_exactly() -> None:
    world, report = three_way_world()

    app = fed(world.messages())

    rid = str(report)
    assert entries(app) == [
        ("Credited", "GZ01", rid, "200.00"),
        ("Debited", "HZ03", rid, "66.67"),
        ("Debited", "SH01", rid, "66.67"),
        ("Debited", "SZ02", rid, "66.66"),
    ]
    credit = app.repository.get(ledger_id("GZ01", "2026-11")).credits[rid]
    assert (credit.reported_by, credit.goods_name, credit.reviewer) == ("王五", "电饭煲", "赵专员")


def test_many_uneven_splits_keep_every_total_exact() -> None:
    world = World()
    for n in range(30):
        world.review(world.report(ref=f"R-{n}"), THIRDS)

    app = fed(world.messages())

    ledgers = {b: app.repository.get(ledger_id(b, "2026-11")) for b in ("GZ01", "SZ02", "SH01", "HZ03")}
    assert ledgers["GZ01"].reward_total == D("6000.00")
    # Thirds of 200.00: HZ03 always takes the odd cent, SH01 wins the tie with SZ02.
    assert [ledgers[b].penalty_total for b in ("HZ03", "SH01", "SZ02")] == [D("2000.10"), D("2000.10"), D("1999.80")]
    assert sum(ledger.penalty_total for ledger in ledgers.values()) == D("6000.00")


def test_the_same_review_delivered_twice_counts_once() -> None:
    world, _ = three_way_world()
    messages = world.messages()

    in_one_batch = fed(messages + messages)
    across_batches = fed(messages + messages, batch=1)

    assert entries(in_one_batch) == entries(across_batches) == entries(fed(messages))
    assert len(entries(in_one_batch)) == 4


def test_a_review_that_overtakes_its_report_waits_for_it_and_then_counts_once() -> None:
    world, _ = three_way_world()
    messages = world.messages()
    reported = [m for m in messages if m[0].startswith("surplus.reported")]
    reviewed = [m for m in messages if m[0].startswith("surplus.reviewed")]
    app = rewards()

    [parked] = app.process(read(reviewed))
    assert parked.status == "parked"
    assert entries(app) == []
    app.process(read(reported + reviewed + reported))

    assert entries(app) == entries(fed(messages))


@pytest.mark.parametrize("seed", range(12))
def test_any_order_with_repeats_gives_the_same_registry_bytes(seed: int) -> None:
    world = decided_world()
    messages = world.messages()
    rnd = random.Random(seed)
    shuffled = messages + rnd.sample(messages, k=len(messages) // 2)
    rnd.shuffle(shuffled)

    expected = fed(messages).registry("2026-11")
    got = fed(shuffled, batch=rnd.choice([1, 3, 500])).registry("2026-11")

    assert expected is not None and got is not None
    assert got.to_json() == expected.to_json()
    assert got.to_csv() == expected.to_csv()


def test_a_decision_waits_until_every_review_of_the_period_has_arrived() -> None:
    world = decided_world()
    messages = world.messages()
    late = [m for m in messages if m[0].startswith("surplus.reviewed")][-1]
    app = rewards()

    app.process(read([m for m in messages if m is not late]))
    assert app.registry("2026-11") is None
    assert app.book("2026-11").decision["review_count"] == 3  # received, waiting

    app.process(read([late]))

    registry = app.registry("2026-11")
    assert registry is not None and len(registry.rows) == 3


def test_a_redelivered_decision_records_nothing_more() -> None:
    world = decided_world()
    app = fed(world.messages())
    before = len(recorded(app))

    decided = [m for m in world.messages() if m[0].startswith("period.decided")]
    app.process(read(decided))

    assert len(recorded(app)) == before


def test_the_decision_records_each_branchs_totals_and_the_registry_digest() -> None:
    app = fed(decided_world().messages())

    decided = {e.branch_id: e for e in recorded(app) if isinstance(e, Ledger.Decided)}
    [book] = [e for e in recorded(app) if isinstance(e, Book.Decided)]

    assert {b: (e.reward_total, e.penalty_total, e.net) for b, e in decided.items()} == {
        "GZ01": ("400.00", "0.00", "400.00"),
        "SH01": ("200.00", "66.67", "133.33"),
        "SZ02": ("0.00", "266.66", "-266.66"),
        "HZ03": ("0.00", "66.67", "-66.67"),
    }
    assert book.digest == app.registry("2026-11").digest


def test_settlement_pays_out_net_rewards_and_charges_net_penalties() -> None:
    world = decided_world()
    assert world.settle().status == "accepted"

    app = fed(world.messages())

    settled = {e.branch_id: (e.kind, e.amount) for e in recorded(app) if isinstance(e, Ledger.Settled)}
    assert settled == {"GZ01": ("payout", "400.00"), "SH01": ("payout", "133.33"),
                       "SZ02": ("charge", "266.66"), "HZ03": ("charge", "66.67")}
    [book] = [e for e in recorded(app) if isinstance(e, Book.Settled)]
    assert (book.payout_total, book.charge_total) == ("533.33", "333.33")


def test_a_settlement_that_overtakes_the_decision_waits_for_it() -> None:
    world = decided_world()
    world.settle()
    messages = world.messages()
    settled = [m for m in messages if m[0].startswith("period.settled")]
    app = rewards()

    app.process(read(settled))
    assert not [e for e in recorded(app) if isinstance(e, Ledger.Settled)]
    app.process(read(messages))

    assert len([e for e in recorded(app) if isinstance(e, Ledger.Settled)]) == 4


def test_a_rejected_review_changes_no_ledger() -> None:
    world = World()
    world.review(world.report(), approved=False)

    assert entries(fed(world.messages())) == []


def test_a_review_after_the_decision_accrues_in_the_next_period() -> None:
    world = decided_world()
    world.review(world.report(ref="R-late"), {"SZ02": "1"})

    app = fed(world.messages())

    assert len(app.registry("2026-11").rows) == 3
    assert app.repository.get(ledger_id("GZ01", "2026-12")).reward_total == D("200.00")
    assert app.repository.get(ledger_id("SZ02", "2026-12")).penalty_total == D("200.00")


def test_weekly_periods_work_like_months() -> None:
    from shared.policy import load_policy

    base = load_policy()
    weekly = base.model_copy(update={"rewards": base.rewards.model_copy(update={"period": "week"})})
    world = World(weekly)
    world.review(world.report(), {"SZ02": "0.5", "SH01": "0.5"})
    assert world.decide("2026-W46").status == "accepted"

    registry = fed(world.messages(), weekly).registry("2026-W46")

    assert registry is not None
    assert [(r["report_ref"], r["reward"], r["penalty"]) for r in registry.rows] == [("R-1", "200.00", "200.00")]


def test_a_goods_category_with_its_own_amounts_is_rewarded_by_them() -> None:
    from shared.policy import load_policy
    from shared.policy.model import RewardAmounts

    base = load_policy()
    amounts = {"electronics": RewardAmounts(reward=D("500.00"), penalty=D("300.00"))}
    policy = base.model_copy(update={"rewards": base.rewards.model_copy(update={"categories": amounts})})
    world = World(policy)
    world.review(world.report(category="electronics"), {"SZ02": "0.5", "SH01": "0.5"})

    app = fed(world.messages(), policy)

    assert [amount for *_, amount in entries(app)] == ["500.00", "150.00", "150.00"]


def test_every_ledger_stream_is_hash_chained() -> None:
    app = fed(decided_world().messages())

    ledger_events = [e for e in recorded(app) if isinstance(e, Ledger.Event)]
    assert ledger_events
    for event in ledger_events:
        assert event.hash == event_hash(event, wire_name(Ledger.STREAM, type(event)))
        assert (event.principal, event.user_id) == ("service:rewards", "svc-rewards")


def test_an_interrupted_commit_leaves_nothing_and_the_retry_counts_once() -> None:
    world, _ = three_way_world()
    events = read(world.messages())
    app = rewards()

    def die() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        app.process(events, before_commit=die)
    assert recorded(app) == []
    app.process(events)
    app.process(events)  # the ack was lost: the broker delivers it all again

    assert len(entries(app)) == 4


def test_two_writers_on_one_store_still_count_each_review_once(tmp_path: object) -> None:
    world = World()
    for n in range(20):
        world.review(world.report(ref=f"R-{n}"), {"SZ02": "0.5", "SH01": "0.5"})
    events = read(world.messages())
    url = f"sqlite:///{tmp_path}/store.sqlite3"
    first, second = rewards(url=url), rewards(url=url)
    first.warm()
    second.warm()

    for n in range(0, len(events), 5):
        first.process(events[n:n + 5])
        second.process(events[max(0, n - 7):n + 3])  # stale cache, overlapping work
    second.process(events)

    assert entries(first) == entries(second)
    assert len(entries(first)) == 60
    assert text(first.repository.get(ledger_id("SZ02", "2026-11")).penalty_total) == "2000.00"


def read(messages: list[tuple[str, bytes]]) -> list[EventMessage]:
    """The events rewards acts on, parsed as the consumer parses them."""
    return [event for message in messages if (event := parse(*message)) is not None]


def test_rewards_names_intakes_period_streams_as_intake_does() -> None:
    from services.intake.domain import period_id
    from services.rewards.domain import period_stream_id

    # period.decided names its stream, not its period: rewards finds the book through this id.
    assert [period_stream_id(p) for p in ("2026-11", "2026-W48")] == [period_id(p) for p in ("2026-11", "2026-W48")]


@pytest.mark.parametrize("alone", [True, False], ids=["alone", "in-a-batch"])
def test_an_event_that_cannot_take_effect_is_rejected_with_its_code_alone_or_in_a_batch(
        alone: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alone, it used to be raised instead, which the consumer took for an outage and retried for ever."""
    from services.rewards.application import RewardsApplication
    from services.rewards.domain import PeriodClosed

    world, _ = three_way_world()
    messages = world.messages()
    reviewed = [m for m in messages if m[0].startswith("surplus.reviewed")]
    app = rewards()
    def closed(self: RewardsApplication, work: object, cause: object, event: object) -> None:
        raise PeriodClosed("period 2026-11 is decided")

    monkeypatch.setattr(RewardsApplication, "_on_reviewed", closed)
    batch = reviewed if alone else [m for m in messages if m not in reviewed] + reviewed
    results = app.process(read(batch))
    assert (results[-1].status, results[-1].code) == ("rejected", "period_decided")
    assert all(r.status != "rejected" for r in results[:-1])
