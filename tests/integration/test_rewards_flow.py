"""From a surplus report to a settled period, through real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import psycopg
import pytest

from casework.settings import Settings
from services.rewards.main import RewardsService
from services.rewards.rebuild import rebuild
from shared.policy import Policy, load_policy
from tests.support.live import Client, Tap, complaint_body, intake_service, running, slow_pages, until
from tests.unit.test_rewards_helpers import NOV_10, THIRDS, rewards
from tests.unit.test_rewards_registry import EXPECTED_CSV

pytestmark = pytest.mark.integration


def rewards_service(amqp_url: str, database_url: str, policy: Policy | None = None,
                    **options: Any) -> Callable[[], RewardsService]:
    config = Settings(amqp_url=amqp_url, database_url=database_url, relay_poll_seconds=0.2)
    return lambda: RewardsService(config, policy or load_policy(), **options)


def surplus_body(branch: str, ref: str, reported_by: str = "王五", goods: str = "电饭煲") -> dict[str, Any]:
    return {"branch_id": branch, "report_ref": ref, "reported_by": reported_by, "goods_name": goods,
            "window": "3号窗口", "clearance_date": "2026-11-09", "inspected_with": ["现场管理员", "仓管员"],
            "photos": ["photo://1"], "resealed": True}


def review_body(report: str, shares: dict[str, str] | None = None, matched: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"report_id": report, "reviewer": "赵专员", "approved": True, "reason": "属实"}
    if matched:
        body["matched_case_id"] = matched
    if shares:
        body["responsible_branches"] = [{"branch_id": b, "share": s} for b, s in shares.items()]
    return body


async def accepted_by(client: Client, outcomes: Tap, key: str, body: dict[str, Any]) -> str:
    """Publish a command and wait for it to be accepted; returns its stream id."""
    outcome = await outcomes.outcome_for(await client.publish(key, body))
    assert outcome["status"] == "accepted", outcome
    return str(outcome["stream_id"])


async def test_a_surplus_report_goes_all_the_way_to_a_settled_period(amqp_url: str, database_url: str) -> None:
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        ledger = await client.tap("casework.events", "ledger.#")

        async def accepted(key: str, body: dict[str, Any]) -> str:
            return await accepted_by(client, outcomes, key, body)

        async with running(intake_service(amqp_url, database_url, clock=lambda: NOV_10)), \
                running(rewards_service(amqp_url, database_url)):
            case = await accepted("complaint.receive", complaint_body("SZ02", "C-1", description="三箱少货"))
            r1 = await accepted("surplus.report", surplus_body("GZ01", "R-1"))
            r2 = await accepted("surplus.report", surplus_body("GZ01", "R-2"))
            r3 = await accepted("surplus.report", surplus_body("SH01", "R-3", "周六", "羽绒服"))
            await accepted("surplus.review", review_body(r1, THIRDS, matched=case))
            await accepted("surplus.review", review_body(r2, {"SZ02": "1"}))
            await accepted("surplus.review", review_body(r3))
            await accepted("rewards.decide_period", {"period": "2026-11", "decided_by": "钱主任"})
            await accepted("rewards.settle_period", {"period": "2026-11", "settled_by": "孙会计"})
            # 4 ledgers: opened, 3 credits, 4 debits, decided and settled each.
            await ledger.collect(4 + 3 + 4 + 4 + 4, timeout=60)
            await ledger.settle(quiet=1.0)

    published = ledger.bodies()
    assert len({m.message_id for m in ledger.messages}) == len(ledger.messages) == 19
    settled = {b["branch_id"]: (b["kind"], b["amount"]) for b in published if b["event"] == "ledger.settled"}
    assert settled == {"GZ01": ("payout", "400.00"), "SH01": ("payout", "133.33"),
                       "SZ02": ("charge", "266.66"), "HZ03": ("charge", "66.67")}
    credited = next(m for m in ledger.messages if m.routing_key == "ledger.credited.GZ01")
    body = json.loads(credited.body)
    assert credited.message_id == f"{body['stream_id']}:{body['version']}"
    assert (body["principal"], body["user_id"]) == ("service:rewards", "guest")

    store = rewards(url=database_url)
    try:
        registry = store.registry("2026-11")
        assert registry is not None
        assert registry.to_csv("Asia/Shanghai") == EXPECTED_CSV.encode("utf-8")
        rebuilt = rebuild(load_policy(), database_url)
        assert rebuilt.registry("2026-11").to_json() == registry.to_json()
        assert store.book("2026-11").digest == registry.digest
    finally:
        store.close()



async def test_an_unreadable_event_goes_to_the_dead_letters_and_the_rest_goes_on(
        amqp_url: str, database_url: str) -> None:
    import aio_pika

    from tests.integration.test_rewards_crashes import publish, quiet
    from tests.unit.test_rewards_helpers import decided_world, entries, fed

    messages = decided_world().messages()
    async with Client(amqp_url) as client:
        await client.declare_topology()
        dead = await client.tap("casework.dead", "")
        assert client.channel is not None
        exchange = await client.channel.get_exchange("casework.events", ensure=False)
        async with running(rewards_service(amqp_url, database_url)) as service:
            await exchange.publish(aio_pika.Message(b'{"event": "surplus.reviewed"}', message_id="bad:1"),
                                   routing_key="surplus.reviewed.GZ01")
            await publish(client, messages)
            await quiet(service)
            [letter] = await dead.collect(1)
    assert letter.message_id == "bad:1"
    assert json.loads(letter.headers["x-casework-error"])["code"] == "schema_invalid"
    store = rewards(url=database_url)
    try:
        assert entries(store) == entries(fed(messages))
    finally:
        store.close()


async def test_a_graceful_stop_publishes_what_rewards_committed_before_it_goes(
        amqp_url: str, database_url: str) -> None:
    """Stopped right after it credits a ledger, rewards still publishes the credit before the
    process goes, though the broker is slow to take each page."""
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        ledger = await client.tap("casework.events", "ledger.#")
        async with running(intake_service(amqp_url, database_url, clock=lambda: NOV_10)):
            service = rewards_service(amqp_url, database_url)()
            slow_pages(service.relay, 1.0)
            stopping = asyncio.Event()
            task = asyncio.create_task(service.run(stopping))
            report = await accepted_by(client, outcomes, "surplus.report", surplus_body("GZ01", "R-STOP"))
            await accepted_by(client, outcomes, "surplus.review", review_body(report))
            await until(lambda: credits(database_url), what="the ledger credited in the store")
            stopping.set()
            await asyncio.wait_for(task, 30)
        assert service.relay.caught_up()
        await ledger.collect(2, timeout=2)
    assert [m.routing_key for m in ledger.messages] == ["ledger.opened.GZ01", "ledger.credited.GZ01"]


def credits(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT count(*) FROM rewards_events WHERE topic LIKE %s", ("%:Ledger.Credited",)).fetchone()
    return int(row[0]) if row else 0
