"""kill -9 of the rewards process, and redelivery over a real broker: every credit and debit exactly once."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import aio_pika
import psycopg
import pytest

from services.rewards.domain import Ledger
from services.rewards.main import RewardsService
from tests.integration.test_rewards_flow import rewards_service
from tests.support.live import Client, running
from tests.support.processes import ServiceProcess
from tests.unit.test_rewards_helpers import THIRDS, World, decided_world, entries, fed, recorded, rewards

pytestmark = pytest.mark.integration
Message = tuple[str, bytes]


def busy_world(reviews: int) -> World:
    """Many reviews in thirds on top of the decided three; decided again only once (2026-11)."""
    world = World()
    case = world.shortage()
    for n in range(reviews):
        report = world.report(branch=("GZ01", "SH01", "UR01")[n % 3], ref=f"R-{n:04d}")
        world.review(report, THIRDS, matched=case if n == 0 else None)
    assert world.decide().status == "accepted"
    assert world.settle().status == "accepted"
    return world


async def publish(client: Client, messages: list[Message]) -> None:
    """As intake's relay would: persistent, confirmed, message_id = stream_id:version."""
    assert client.channel is not None
    exchange = await client.channel.get_exchange("casework.events", ensure=False)
    for key, body in messages:
        head = json.loads(body)
        await exchange.publish(aio_pika.Message(body, message_id=f"{head['stream_id']}:{head['version']}",
                                                content_type="application/json",
                                                delivery_mode=aio_pika.DeliveryMode.PERSISTENT), routing_key=key)


def topic_counts(database_url: str) -> Counter[str]:
    """How many events of each kind the rewards store holds (read with plain SQL, as an auditor would)."""
    with psycopg.connect(database_url) as conn:
        exists = conn.execute("SELECT to_regclass('public.rewards_events')").fetchone()
        if not exists or exists[0] is None:
            return Counter()
        rows = conn.execute("SELECT topic, count(*) FROM rewards_events GROUP BY topic").fetchall()
    return Counter({topic.split(":")[1]: count for topic, count in rows})


async def waiting(what: str, done: Callable[[], bool], timeout: float = 120.0, every: float = 0.2) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await asyncio.to_thread(done):
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"still waiting for {what}")
        await asyncio.sleep(every)


async def queue_depth(client: Client, expected: int, timeout: float = 30.0) -> None:
    """Wait for the broker to report `expected` ready messages in casework.rewards."""
    assert client.channel is not None
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        # The raw channel: aio-pika's robust channel answers a repeated declare from its first result.
        raw = await client.channel.get_underlay_channel()
        declared = await raw.queue_declare("casework.rewards", passive=True)
        count = int(declared.message_count or 0)
        if count == expected:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"casework.rewards holds {count} messages, not {expected}")
        await asyncio.sleep(0.5)


async def quiet(service: RewardsService, seconds: float = 2.0, timeout: float = 120.0) -> int:
    """Wait until the service has taken nothing new for `seconds`: the queue is drained. Returns the count."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    seen, since = -1, loop.time()
    while True:
        handled = service.consumer.handled
        if handled != seen or service.consumer.busy or not service.consumer.queue.empty():
            seen, since = handled, loop.time()
        elif loop.time() - since >= seconds:
            return handled
        if loop.time() > deadline:
            raise TimeoutError(f"rewards still busy after {handled} messages")
        await asyncio.sleep(0.1)


def service(amqp_url: str, database_url: str, log: Path) -> ServiceProcess:
    return ServiceProcess("rewards", {"CASEWORK_AMQP_URL": amqp_url, "CASEWORK_DATABASE_URL": database_url,
                                      "CASEWORK_RELAY_POLL_SECONDS": "0.2"}, log)


def ledger_kinds(messages: list[Message]) -> Counter[str]:
    """What a correct run records: ledger events by kind, and the books' decision and settlement."""
    kinds = Counter(f"Ledger.{type(e).__name__}" for e in recorded(fed(messages)) if isinstance(e, Ledger.Event))
    return kinds + Counter({"Book.Decided": 1, "Book.Settled": 1})


def assert_exactly_once(database_url: str, messages: list[Message],
                        ledger: list[aio_pika.abc.AbstractIncomingMessage]) -> None:
    expected = fed(messages)
    store = rewards(url=database_url)
    try:
        assert entries(store) == entries(expected)
        assert store.registry("2026-11").to_csv() == expected.registry("2026-11").to_csv()
    finally:
        store.close()
    kinds = ledger_kinds(messages)
    counts = topic_counts(database_url)
    assert {kind: counts[kind] for kind in kinds} == dict(kinds)
    # The relay may repeat itself after a kill; the message ids let every subscriber drop repeats.
    by_id: dict[str, bytes] = {}
    for message in ledger:
        assert by_id.setdefault(message.message_id or "", message.body) == message.body
    published = Counter(json.loads(body)["event"] for body in by_id.values())
    assert published == Counter({f"ledger.{k.split('.')[1].lower()}": n for k, n in kinds.items()
                                 if k.startswith("Ledger.")})


@pytest.mark.parametrize("point", ["before_commit", "after_commit"])
async def test_kill_9_between_processing_and_commit_counts_everything_once(
        point: str, amqp_url: str, database_url: str, tmp_path: Path) -> None:
    messages = busy_world(30).messages()
    async with Client(amqp_url) as client:
        await client.declare_topology()
        ledger = await client.tap("casework.events", "ledger.#")
        await publish(client, messages)
        crashing = service(amqp_url, database_url, tmp_path / "rewards.log").start(CASEWORK_FAULT=f"rewards_{point}")
        await waiting("the injected crash", lambda: crashing.exited() is not None)
        assert crashing.exited() == 137, crashing.log()
        counts = topic_counts(database_url)
        if point == "before_commit":
            assert sum(counts.values()) == 0  # processed, never committed
        else:
            assert sum(counts.values()) > 0  # committed, never acked: it all comes back

        async with running(rewards_service(amqp_url, database_url)) as restarted:
            redelivered = await quiet(restarted)
            await ledger.collect(sum(ledger_kinds(messages).values()) - 2, timeout=60)
            await ledger.settle(quiet=1.0)
    assert redelivered > 0  # what the killed process had taken came back
    assert_exactly_once(database_url, messages, ledger.messages)


async def test_kill_9_at_any_moment_under_load_counts_everything_once(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    messages = busy_world(1500).messages()  # several batches: the kill lands between two of them
    async with Client(amqp_url) as client:
        await client.declare_topology()
        ledger = await client.tap("casework.events", "ledger.#")
        await publish(client, messages)
        victim = service(amqp_url, database_url, tmp_path / "rewards.log").start()
        await waiting("the first ledger entries", lambda: topic_counts(database_url)["Ledger.Credited"] > 0,
                      every=0.02)
        victim.kill()
        assert topic_counts(database_url)["Book.Decided"] == 0  # killed in the middle of the work
        restarted = service(amqp_url, database_url, tmp_path / "rewards.log").start()
        try:
            await waiting("the period to be settled", lambda: topic_counts(database_url)["Book.Settled"] == 1)
        finally:
            assert restarted.stop() == 0, restarted.log()
        async with running(rewards_service(amqp_url, database_url)) as again:
            await quiet(again)  # whatever the stopped process left unacked has come back and changed nothing
            await ledger.collect(sum(ledger_kinds(messages).values()) - 2, timeout=120)
            await ledger.settle(quiet=1.0)
    assert_exactly_once(database_url, messages, ledger.messages)


async def test_events_delivered_twice_and_out_of_order_count_once(amqp_url: str, database_url: str) -> None:
    messages = decided_world().messages()
    backwards = list(reversed(messages))
    async with Client(amqp_url) as client:
        await client.declare_topology()
        ledger = await client.tap("casework.events", "ledger.#")
        async with running(rewards_service(amqp_url, database_url)) as service:
            await publish(client, backwards + messages + backwards)
            assert await quiet(service) == 3 * len(messages)
            await ledger.collect(4 + 3 + 4 + 4, timeout=60)
            await ledger.settle(quiet=1.0)
    store = rewards(url=database_url)
    try:
        assert entries(store) == entries(fed(messages))
        assert store.registry("2026-11").to_json() == fed(messages).registry("2026-11").to_json()
    finally:
        store.close()
    assert len(ledger.messages) == len({m.message_id for m in ledger.messages}) == 15

