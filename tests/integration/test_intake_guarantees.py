"""Guarantees 1, 2 and 4 attacked through real RabbitMQ and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Coroutine
from datetime import datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import aio_pika
import psycopg
import pytest

import services.intake.consumer as consumer_module
from services.intake.domain import complaint_id
from services.intake.main import IntakeService
from tests.conftest import rabbitmqctl
from tests.support.live import (
    APPENDS,
    Client,
    Tap,
    case_command,
    complaint_body,
    get_one,
    intake_service,
    out_of_order,
    running,
    slow_pages,
    until,
)
from tests.support.processes import ServiceProcess
from tests.support.store import event_counts, received_streams, stream_event_counts

pytestmark = pytest.mark.integration


async def test_same_message_id_twice_is_one_event_and_a_duplicate(amqp_url: str, database_url: str) -> None:
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        events = await client.tap("casework.events", "complaint.#")
        async with running(intake_service(amqp_url, database_url)):
            body = complaint_body()
            await client.publish("complaint.receive", body, message_id="same-1")
            await client.publish("complaint.receive", body, message_id="same-1")
            await outcomes.collect(2)
            await events.settle()
    assert sorted(o["status"] for o in outcomes.bodies()) == ["accepted", "duplicate"]
    assert [e.routing_key for e in events.messages] == ["complaint.received.GZ01"]


async def test_same_case_ref_under_two_message_ids_is_one_stream(amqp_url: str, database_url: str) -> None:
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        async with running(intake_service(amqp_url, database_url)):
            body = complaint_body(case_ref="ONE")
            first = await client.publish("complaint.receive", body)
            second = await client.publish("complaint.receive", body)
            a, b = await outcomes.outcome_for(first), await outcomes.outcome_for(second)
    assert (a["status"], b["status"], b["error"]["code"]) == ("accepted", "rejected", "case_exists")
    assert a["stream_id"] == b["stream_id"]
    assert received_streams(database_url) == 1


async def test_redelivery_after_commit_before_ack_is_not_doubled(
    amqp_url: str, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The channel closes after the commit and before the ack: RabbitMQ redelivers the command."""
    closed: list[str] = []
    real_ack = consumer_module.safe_ack

    async def close_instead_of_ack(raw: aio_pika.IncomingMessage, multiple: bool = False) -> None:
        if not closed:
            closed.append(raw.message_id or "")
            await raw.channel.close()
            return
        await real_ack(raw, multiple)

    monkeypatch.setattr(consumer_module, "safe_ack", close_instead_of_ack)
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        async with running(intake_service(amqp_url, database_url)):
            mid = await client.publish("complaint.receive", complaint_body())
            await outcomes.collect(2, timeout=30)
    assert closed == [mid]
    assert sorted(o["status"] for o in outcomes.bodies()) == ["accepted", "duplicate"]
    assert event_counts(database_url)["Complaint.Received"] == 1


@pytest.mark.parametrize(
    ("routing_key", "body", "code"),
    [
        ("complaint.receive", b"{not json", "not_json"),
        ("complaint.receive", json.dumps({"branch_id": "GZ01"}).encode(), "schema_invalid"),
        ("complaint.receive", json.dumps({**complaint_body(), "extra": 1}).encode(), "schema_invalid"),
        ("complaint.receive", json.dumps(complaint_body(description="x" * 70_000)).encode(), "too_large"),
        ("complaint.explode", json.dumps(complaint_body()).encode(), "unknown_command"),
    ],
    ids=["not-json", "schema-invalid", "unknown-field", "oversized", "unknown-routing-key"],
)
async def test_malformed_goes_to_dead_letters_and_the_next_is_accepted(
    amqp_url: str, database_url: str, routing_key: str, body: bytes, code: str
) -> None:
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        async with running(intake_service(amqp_url, database_url)):
            bad = await client.publish(routing_key, body)
            good = await client.publish("complaint.receive", complaint_body())
            rejected, accepted = await outcomes.outcome_for(bad), await outcomes.outcome_for(good)
            assert client.channel is not None
            dead_queue = await client.channel.get_queue("casework.dead")
            dead = await get_one(dead_queue)
    assert (rejected["status"], rejected["error"]["code"]) == ("rejected", code)
    assert accepted["status"] == "accepted"
    assert dead is not None and dead.message_id == bad and dead.body == body
    assert json.loads(dead.headers["x-casework-error"])["code"] == code
    assert dead.headers["x-casework-user-id"] == client.user, "the dead letter no longer says who sent it"
    assert datetime.fromisoformat(dead.headers["x-casework-set-aside-at"]).tzinfo is not None


async def test_without_user_id_the_command_is_rejected(amqp_url: str, database_url: str) -> None:
    async with Client(amqp_url) as client:
        await client.declare_topology()
        assert client.channel is not None
        reply = await client.channel.declare_queue(exclusive=True)
        async with running(intake_service(amqp_url, database_url)):
            await client.publish("complaint.receive", complaint_body(), user_id=None, reply_to=reply.name)
            answer = await get_one(reply)
    outcome = json.loads(answer.body)
    assert (outcome["status"], outcome["error"]["code"]) == ("rejected", "missing_user_id")
    assert received_streams(database_url) == 0


@pytest.fixture
def branch_user(amqp_url: str, tmp_path: Path) -> tuple[str, str, Path]:
    """A real RabbitMQ user that the test's policy maps to branch:GZ01."""
    from urllib.parse import urlsplit

    vhost = urlsplit(amqp_url).path.lstrip("/")
    name = f"t{uuid.uuid4().hex[:8]}-gz01"
    rabbitmqctl("add_user", name, "pw")
    rabbitmqctl("set_permissions", "-p", vhost, name, "^amq\\.gen.*", "^casework\\.commands$|^amq\\.gen.*",
                "^casework\\.events$|^amq\\.gen.*")
    policy = Path("shared/policy/default.toml").read_text().replace(
        '"branch-GZ01" = "branch:GZ01"', f'"branch-GZ01" = "branch:GZ01"\n"{name}" = "branch:GZ01"')
    path = tmp_path / "policy.toml"
    path.write_text(policy)
    yield name, amqp_url.replace("guest:guest@", f"{name}:pw@"), path
    rabbitmqctl("delete_user", name)


async def test_branch_acts_for_itself_not_for_another(
    amqp_url: str, database_url: str, branch_user: tuple[str, str, Path]
) -> None:
    from shared.policy import load_policy

    _, url, policy_path = branch_user
    async with Client(amqp_url) as admin:
        await admin.declare_topology()
        outcomes = await admin.tap("casework.events", "command.#")
        service = intake_service(amqp_url, database_url, policy=load_policy(policy_path))
        async with running(service), Client(url) as branch:
            own = await branch.publish("complaint.receive", complaint_body(branch_id="GZ01"))
            other = await branch.publish("complaint.receive", complaint_body(branch_id="SZ02"))
            mine, theirs = await outcomes.outcome_for(own), await outcomes.outcome_for(other)
    assert mine["status"] == "accepted"
    assert (theirs["status"], theirs["error"]["code"]) == ("rejected", "not_your_branch")


async def test_forged_user_id_is_refused_by_rabbitmq(amqp_url: str, branch_user: tuple[str, str, Path]) -> None:
    _, url, _ = branch_user
    async with Client(amqp_url) as admin:
        await admin.declare_topology()
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("casework.commands", ensure=False)
        with pytest.raises(aio_pika.exceptions.ChannelPreconditionFailed):
            await exchange.publish(aio_pika.Message(b"{}", message_id="x", user_id="branch-SZ02"),
                                   routing_key="complaint.receive")
            await channel.get_exchange("casework.commands")  # the refusal arrives as a channel close


EXISTING = ("hand_over", "remediate", "verify")  # what the flow does to existing case i: EXISTING[i % 3]


async def test_kill_9_intake_during_2000_confirmed_commands(
    amqp_url: str, database_url: str, tmp_path: Path
) -> None:
    """kill -9 of intake the moment one of its batches is committed, in the middle of 1,700 new
    cases and 300 commands on cases recorded before: those append to streams already there,
    so only the idempotency record keeps a redelivered one from being applied twice."""
    env = {"CASEWORK_AMQP_URL": amqp_url, "CASEWORK_DATABASE_URL": database_url}
    service = ServiceProcess("intake", env, tmp_path / "intake.log")
    refs = [f"E{i:03d}" for i in range(300)]
    cases = {ref: complaint_id("GZ01", ref) for ref in refs}
    kinds = {ref: EXISTING[i % 3] for i, ref in enumerate(refs)}
    async with Client(amqp_url) as client:
        await client.declare_topology()
        received = await client.tap("casework.events", "complaint.received.*")
        outcomes = await client.tap("casework.events", "command.#")
        with service.start():
            for ref in refs:
                await client.publish("complaint.receive", complaint_body(case_ref=ref))
                if kinds[ref] == "remediate":
                    await client.publish(*case_command("verify", cases[ref]))
            await until(lambda: event_counts(database_url)["CommandRecord.Processed"] == 400, timeout=60,
                        what="the existing cases to be recorded")

            flow: dict[str, str | None] = {}  # message id -> the existing case it acts on, or None: a new one
            for i in range(2000):
                flow[f"k-{i}"] = refs[i // 20 * 3 + i % 20] if i % 20 < 3 else None
            with psycopg.connect(database_url, autocommit=True) as commits:
                commits.execute("LISTEN casework_events")  # the store notifies this channel as each batch commits
                publishing = asyncio.create_task(publish_flow(client, flow, cases, kinds))
                await asyncio.to_thread(kill_on_commit, service, commits, 3)
            recorded = event_counts(database_url)["CommandRecord.Processed"] - 400
            assert 0 < recorded < len(flow), f"killed with {recorded} of the flow recorded"
            service.start()
            await publishing
            await outcomes.answered(accepted=flow)
            await received.collect(2000, timeout=120)
            await received.settle(quiet=1.0)
            await outcomes.settle(quiet=0.1)
            service.stop()
    assert received_streams(database_url) == 2000, service.log()[-2000:]
    appended = {key: n for key, n in stream_event_counts(database_url).items()
                if key[0] in cases.values() and key[1] in APPENDS.values()}
    expected = {(cases[ref], APPENDS[kind]): 1 for ref, kind in kinds.items()}
    expected |= {(cases[ref], APPENDS["verify"]): 1 for ref, kind in kinds.items() if kind == "remediate"}
    assert appended == expected
    assert event_counts(database_url)["CommandRecord.Processed"] == 2400
    seen = outcomes.by_command()
    assert [(mid, body) for mid in flow for _, body in seen[mid] if body["status"] == "rejected"] == []
    for mid, ref in flow.items():  # a duplicate names the stream the command was recorded on
        case = cases[ref] if ref else complaint_id("GZ01", f"K{mid}")
        assert {body["stream_id"] for _, body in seen[mid]} == {str(case)}, seen[mid]
    assert len({m.message_id for m in received.messages}) == 2000


async def publish_flow(client: Client, flow: dict[str, str | None], cases: dict[str, UUID],
                       kinds: dict[str, str], together: int = 100) -> None:
    """Publish the flow `together` commands at a time, each confirmed (no two act on one case)."""
    def one(mid: str, ref: str | None) -> Coroutine[Any, Any, str]:
        if ref is None:
            return client.publish("complaint.receive", complaint_body(case_ref=f"K{mid}"), message_id=mid)
        return client.publish(*case_command(kinds[ref], cases[ref]), message_id=mid)

    items = list(flow.items())
    for start in range(0, len(items), together):
        await asyncio.gather(*(one(mid, ref) for mid, ref in items[start:start + together]))


def kill_on_commit(service: ServiceProcess, listening: psycopg.Connection[Any], commits: int,
                   timeout: float = 60.0) -> None:
    """SIGKILL the process as PostgreSQL tells of the `commits`-th commit since LISTEN began.

    The notification reaches the listener as the commit's answer reaches intake, so the kill
    comes within a moment of a commit: most often before intake has acked the batch.
    """
    told = sum(1 for _ in listening.notifies(timeout=timeout, stop_after=commits))
    if told < commits:
        raise TimeoutError(f"the store told of {told} commits, not {commits}")
    service.kill()


async def test_kill_9_relay_between_publish_and_position_repeats_never_gaps(
    amqp_url: str, database_url: str, tmp_path: Path
) -> None:
    """Fifty cases received and verified: each arrives at least once, and the first arrivals
    keep the store's order, across streams and within each stream."""
    from services.intake.domain import complaint_id

    env = {"CASEWORK_AMQP_URL": amqp_url, "CASEWORK_DATABASE_URL": database_url}
    service = ServiceProcess("intake", env, tmp_path / "intake.log")
    async with Client(amqp_url) as client:
        await client.declare_topology()
        received = await client.tap("casework.events", "complaint.received.*", "complaint.verified.*")
        for i in range(50):
            await client.publish("complaint.receive", complaint_body(case_ref=f"R{i:03d}"), message_id=f"r-{i}")
            await client.publish("complaint.verify", {
                "case_id": str(complaint_id("GZ01", f"R{i:03d}")), "verified_by": "Zhang", "summary": "restated",
                "customer_confirmed": True}, message_id=f"v-{i}")
        service.start(CASEWORK_FAULT="relay_after_publish")
        for _ in range(600):
            if service.exited() is not None:
                break
            await asyncio.sleep(0.05)
        assert service.exited() == 137, service.log()[-2000:]
        first_run = len(await received.settle(quiet=0.5))
        service.start()
        await received.collect(first_run + 100, timeout=60)
        await received.settle(quiet=1.0)
    service.stop()
    ids = [m.message_id for m in received.messages]
    assert first_run > 0
    assert len(set(ids)) == 100
    assert len(ids) > 100, "the page published before the crash is published again"
    assert out_of_order(received.messages) == []


async def test_a_refused_publish_holds_the_relay_at_its_position(amqp_url: str, database_url: str) -> None:
    """A subscriber's queue refuses (full, reject-publish): the broker nacks, and within its
    patience the relay keeps its position and publishes the page again until every message is
    confirmed (test_relay_refusals.py: what happens after the patience)."""
    async with Client(amqp_url) as client:
        await client.declare_topology()
        assert client.channel is not None
        full = await client.channel.declare_queue(exclusive=True, arguments={
            "x-max-length": 1, "x-overflow": "reject-publish"})
        await client.channel.default_exchange.publish(aio_pika.Message(b"filler"), routing_key=full.name)
        await full.bind("casework.events", routing_key="complaint.received.*")
        events = await client.tap("casework.events", "complaint.received.*")
        async with running(intake_service(amqp_url, database_url, relay_refusal_seconds=3600)):
            for i in range(3):
                await client.publish("complaint.receive", complaint_body(case_ref=f"FULL-{i}"), message_id=f"full-{i}")
            await events.collect(6, timeout=30)  # every attempt reaches the other queues
            assert relay_position(database_url) == 0, "a nacked page must not advance the position"
            await full.delete(if_unused=False, if_empty=False)
            for _ in range(100):
                if relay_position(database_url) >= 6:
                    break
                await asyncio.sleep(0.1)
    assert relay_position(database_url) >= 6  # three complaints and three command records
    assert len({m.message_id for m in events.messages}) == 3
    assert len(events.messages) > 3
    assert out_of_order(events.messages) == []


def relay_position(database_url: str) -> int:
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT max(notification_id) FROM casework_tracking WHERE application_name = %s",
                           ("casework.relay",)).fetchone()
    return int(row[0] or 0) if row else 0


async def test_commands_take_effect_in_the_order_they_were_published(amqp_url: str, database_url: str) -> None:
    """Each case's verify follows its receive in the queue, so none finds its case missing."""
    from services.intake.domain import complaint_id

    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        async with running(intake_service(amqp_url, database_url)):
            for i in range(150):
                ref = f"ORDER-{i}"
                await client.publish("complaint.receive", complaint_body(case_ref=ref))
                await client.publish("complaint.verify", {
                    "case_id": str(complaint_id("GZ01", ref)), "verified_by": "Zhang", "summary": "restated",
                    "customer_confirmed": True})
            await outcomes.collect(300, timeout=60)
    statuses = [(o["command"], o["status"], (o.get("error") or {}).get("code")) for o in outcomes.bodies()]
    assert statuses.count(("complaint.verify", "accepted", None)) == 150, [s for s in statuses if s[1] != "accepted"]


async def test_intake_consumes_again_after_its_queue_is_deleted(amqp_url: str, database_url: str) -> None:
    """RabbitMQ cancels the consumer of a deleted queue; intake declares the queue again and carries on."""
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        async with running(intake_service(amqp_url, database_url)):
            before = await client.publish("complaint.receive", complaint_body(case_ref="BEFORE"))
            assert (await outcomes.outcome_for(before))["status"] == "accepted"
            assert client.channel is not None
            await client.channel.queue_delete("casework.intake")
            assert await consumers_of("casework.intake", amqp_url, until=1) == 1, "intake consumes again"
            after = await client.publish("complaint.receive", complaint_body(case_ref="AFTER"))
            assert (await outcomes.outcome_for(after))["status"] == "accepted"


async def consumers_of(queue: str, amqp_url: str, until: int, timeout: float = 15.0) -> int | None:
    """The queue's consumer count once it reaches `until` (None while the queue does not exist)."""
    deadline = asyncio.get_running_loop().time() + timeout
    count: int | None = None
    async with await aio_pika.connect(amqp_url) as connection:
        while asyncio.get_running_loop().time() < deadline:
            channel = await connection.channel()
            try:
                declared = await channel.declare_queue(queue, passive=True)
                count = declared.declaration_result.consumer_count
                if count == until:
                    return count
            except aio_pika.exceptions.ChannelNotFoundEntity:
                count = None
            await asyncio.sleep(0.2)
    return count


async def intake_answering(client: Client, outcomes: Tap, amqp_url: str,
                           database_url: str) -> tuple[IntakeService, asyncio.Event, asyncio.Task[None]]:
    """Intake started by hand, so that the test says when it stops, once it has answered a first command."""
    service: IntakeService = intake_service(amqp_url, database_url)()
    stopping = asyncio.Event()
    task = asyncio.create_task(service.run(stopping))
    first = await client.publish("complaint.receive", complaint_body(case_ref="FIRST"))
    assert (await outcomes.outcome_for(first))["status"] == "accepted"
    return service, stopping, task


async def test_a_graceful_stop_lets_the_batch_being_committed_finish(amqp_url: str, database_url: str) -> None:
    """Asked to stop while a batch waits on the database, intake commits it and acks it first:
    the branch gets its answer now, and the queue holds nothing to redeliver."""
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        service, stopping, task = await intake_answering(client, outcomes, amqp_url, database_url)
        async with await psycopg.AsyncConnection.connect(database_url) as holder:
            await holder.execute("LOCK TABLE casework_events IN ROW SHARE MODE")  # the insert waits for it
            held = await client.publish("complaint.receive", complaint_body(case_ref="HELD"))
            await until(lambda: service.consumer.busy, timeout=5, what="intake taking the command")
            stopping.set()
            await asyncio.sleep(1.0)
            assert not task.done(), "intake stopped with a batch not yet committed"
        await asyncio.wait_for(task, 30)
        assert (await outcomes.outcome_for(held))["status"] == "accepted"
        assert client.channel is not None
        queue = await client.channel.declare_queue("casework.intake", passive=True)
        assert queue.declaration_result.message_count == 0, "the held command was acked before intake stopped"


async def test_a_graceful_stop_publishes_what_was_committed_before_it_goes(amqp_url: str, database_url: str) -> None:
    """The relay in the intake process publishes, and has confirmed, every event and outcome of
    the commands intake committed before the process stops: the branch hears now, not after
    the next start."""
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        service, stopping, task = await intake_answering(client, outcomes, amqp_url, database_url)
        slow_pages(service.relay, 0.5)
        last = await client.publish("complaint.receive", complaint_body(case_ref="LAST"))
        await until(lambda: service.relay.recorded > 2, timeout=5, what="intake committing the command")
        stopping.set()
        await asyncio.wait_for(task, 30)
        assert service.relay.caught_up()
        assert (await outcomes.outcome_for(last, timeout=2))["status"] == "accepted"
