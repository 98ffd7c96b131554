"""The graceful stop of a real `casework run` process, asked for with a real signal, and its limit.

A table lock taken by the test holds intake's batch in the middle of its commit.
"""

from __future__ import annotations

import contextlib
import json
import signal
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from tests.conftest import rabbitmqctl
from tests.integration.test_rewards_crashes import (
    assert_exactly_once,
    busy_world,
    ledger_kinds,
    publish,
    quiet,
    topic_counts,
)
from tests.integration.test_rewards_crashes import service as rewards_process
from tests.integration.test_rewards_flow import rewards_service
from tests.support.live import Client, Tap, complaint_body, running, until
from tests.support.processes import ServiceProcess
from tests.support.store import event_counts, event_ids, inserts_waiting, received_streams

pytestmark = pytest.mark.integration

BURST = 300  # commands the relay is stopped behind: 600 events, 60 pages of 10


@contextlib.asynccontextmanager
async def events_locked(database_url: str, table: str = "casework_events",
                        mode: str = "ROW SHARE") -> AsyncIterator[None]:
    """The service's insert (intake's by default) waits for this lock until the block ends.

    ROW SHARE holds intake's and rewards' inserts, which lock their table EXCLUSIVE; SHARE
    holds plain writes (escalation's clocks) and still lets the service read.
    """
    async with await psycopg.AsyncConnection.connect(database_url) as holder:
        await holder.execute(sql.SQL("LOCK TABLE {} IN {} MODE").format(sql.Identifier(table), sql.SQL(mode)))
        yield


async def waiting_in_queue(client: Client, queue: str = "casework.intake") -> int:
    """Messages in the queue (intake's by default) that nobody holds: what the next start is given again."""
    assert client.channel is not None
    # Asked on the channel itself: aio-pika's robust channel answers a repeated passive declare
    # with the queue it declared before, and that queue's count from then.
    channel = await client.channel.get_underlay_channel()
    declared = await channel.queue_declare(queue, passive=True)
    return declared.message_count or 0


def consuming(amqp_url: str, queue: str = "casework.intake") -> bool:
    """Whether anyone consumes the queue (intake's by default): the first thing a stop ends."""
    vhost = urlsplit(amqp_url).path.lstrip("/")
    return queue in rabbitmqctl("list_consumers", "-p", vhost, "queue_name").split()


async def exits_within(service: ServiceProcess, seconds: float) -> bool:
    try:
        await until(lambda: service.exited() is not None, timeout=seconds, what="the process to exit")
    except TimeoutError:
        return False
    return True


async def signalled_while_held(service: ServiceProcess, amqp_url: str, database_url: str, table: str,
                               queue: str, signal_number: signal.Signals = signal.SIGTERM) -> None:
    """Inside a held lock on `table`: once the service's write waits for it, the signal; the
    service stops consuming `queue` and, its batch not yet committed, stays up."""
    name = service.only
    await until(lambda: inserts_waiting(database_url, table), timeout=10, what=f"{name}'s write waiting")
    service.send(signal_number)
    await until(lambda: not consuming(amqp_url, queue), timeout=10, what=f"{name} to stop consuming")
    assert not await exits_within(service, 1.0), f"{name} exited with its batch still held"


async def exits_by_itself(service: ServiceProcess) -> None:
    """Once the held batch commits, the process exits 0 without being asked again."""
    assert await exits_within(service, 20), f"{service.only} did not exit once its batch committed"
    assert service.exited() == 0, service.log()[-2000:]


def casework_process(only: str, amqp_url: str, database_url: str, tmp_path: Path) -> ServiceProcess:
    env = {"CASEWORK_AMQP_URL": amqp_url, "CASEWORK_DATABASE_URL": database_url}
    return ServiceProcess(only, env, tmp_path / f"{only}.log")


@contextlib.asynccontextmanager
async def intake_watched(amqp_url: str, database_url: str,
                         tmp_path: Path) -> AsyncIterator[tuple[ServiceProcess, Client, Tap, Tap]]:
    """Intake as a process, not started yet; a client with the topology declared and taps on
    outcomes and complaint events. However the test ends, the process does not outlive it."""
    service = casework_process("intake", amqp_url, database_url, tmp_path)
    async with Client(amqp_url) as client:
        await client.declare_topology()
        outcomes = await client.tap("casework.events", "command.#")
        events = await client.tap("casework.events", "complaint.#")
        with service:
            yield service, client, outcomes, events


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
async def test_a_signal_lets_the_batch_held_mid_commit_finish_before_the_process_exits(
        amqp_url: str, database_url: str, tmp_path: Path, signal_number: signal.Signals) -> None:
    """Stopped by a supervisor or Ctrl-C while a batch waits on the database, intake waits for it:
    once the commit goes through, the branch has its answer and the events are out, the queue
    holds nothing to redeliver, and the process exits by itself, successfully."""
    async with intake_watched(amqp_url, database_url, tmp_path) as (service, client, outcomes, events):
        service.start()
        first = await client.publish("complaint.receive", complaint_body(case_ref="FIRST"))
        assert (await outcomes.outcome_for(first, timeout=30))["status"] == "accepted", service.log()
        async with events_locked(database_url):
            held = await client.publish("complaint.receive", complaint_body(case_ref="HELD"))
            await signalled_while_held(service, amqp_url, database_url, "casework_events", "casework.intake",
                                       signal_number)
        await exits_by_itself(service)
        assert (await outcomes.outcome_for(held, timeout=2))["status"] == "accepted"
        received = await events.collect(2, timeout=2)
        assert sorted(m.routing_key for m in received) == ["complaint.received.GZ01"] * 2
        assert await waiting_in_queue(client) == 0, "the held command was acked before intake exited"
    assert "redelivers it to the next start" not in service.log()


@pytest.mark.slow
async def test_past_its_grace_period_intake_exits_and_the_held_command_is_answered_once_after_a_restart(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    """A commit that outlasts CASEWORK_STOP_GRACE_SECONDS does not hold the stop: the process
    exits, its insert abandoned and the command unacked. The next start records it and
    answers it once: nothing was recorded behind the process's back."""
    async with intake_watched(amqp_url, database_url, tmp_path) as (service, client, outcomes, events):
        service.start(CASEWORK_STOP_GRACE_SECONDS="1")
        first = await client.publish("complaint.receive", complaint_body(case_ref="FIRST"))
        assert (await outcomes.outcome_for(first, timeout=30))["status"] == "accepted", service.log()
        async with events_locked(database_url):
            held = await client.publish("complaint.receive", complaint_body(case_ref="HELD"))
            await until(lambda: inserts_waiting(database_url), timeout=10, what="the batch's insert waiting")
            service.send(signal.SIGTERM)
            # Well short of the default 10 s, however slow the machine is to shut down.
            assert await exits_within(service, 8), "intake held on past its grace period"
            assert service.exited() == 0, service.log()[-2000:]
            assert "redelivers it to the next start" in service.log()
            assert inserts_waiting(database_url) == 0, "the abandoned insert still waits to commit"
            assert await waiting_in_queue(client) == 1, "the held command is back in the queue"
        assert event_counts(database_url)["Complaint.Received"] == 1
        service.start()
        assert (await outcomes.outcome_for(held, timeout=30))["status"] == "accepted", service.log()
        await outcomes.settle(quiet=1.0)
        assert service.stop() == 0, service.log()[-2000:]
        assert [o["status"] for o in outcomes.bodies() if o["command_id"] == held] == ["accepted"]
        await events.settle(quiet=0.5)
        assert sorted(e["case_ref"] for e in events.bodies()) == ["FIRST", "HELD"]
        assert event_counts(database_url)["Complaint.Received"] == 2
        assert await waiting_in_queue(client) == 0


@pytest.mark.slow
async def test_a_relay_in_its_own_process_publishes_what_the_store_held_when_the_signal_came(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    """`casework run --only relay`, frozen (SIGSTOP, as a starved machine would leave it) while
    intake commits a burst of commands, is stopped with SIGTERM the moment it runs again: it
    publishes the whole burst, page after page, before it exits 0. A restart then carries on
    from there: the next command's events come and none before them is missing."""
    relay = casework_process("relay", amqp_url, database_url, tmp_path)
    async with intake_watched(amqp_url, database_url, tmp_path) as (intake, client, outcomes, events):
        intake.start(CASEWORK_INTAKE_RELAY="false")
        with relay:
            # Small pages: the burst is many round trips to the broker, not one.
            relay.start(CASEWORK_RELAY_PAGE_SIZE="10")
            first = await client.publish("complaint.receive", complaint_body(case_ref="FIRST"))
            assert (await outcomes.outcome_for(first, timeout=30))["status"] == "accepted", relay.log()
            relay.send(signal.SIGSTOP)
            try:
                for n in range(BURST):
                    await client.publish("complaint.receive", complaint_body(case_ref=f"BURST-{n:03d}"))
                await until(lambda: received_streams(database_url) == BURST + 1, timeout=60,
                            what="intake committing the burst")
                assert await outcomes.settle(quiet=0.5) == outcomes.messages[:1], "the frozen relay published"
                relay.send(signal.SIGTERM)
            finally:
                relay.send(signal.SIGCONT)
            assert await exits_within(relay, 20), "the relay did not exit"
            assert relay.exited() == 0, relay.log()[-2000:]
            await outcomes.settle(quiet=0.5)
            await events.settle(quiet=0.5)
            assert published_ids(outcomes, events) == event_ids(database_url), "exited before the burst was out"
            relay.start()
            last = await client.publish("complaint.receive", complaint_body(case_ref="LAST"))
            assert (await outcomes.outcome_for(last, timeout=30))["status"] == "accepted", relay.log()
            await events.collect(BURST + 2, timeout=10)
            assert relay.stop() == 0, relay.log()[-2000:]
    assert published_ids(outcomes, events) == event_ids(database_url)

def published_ids(*taps: Tap) -> set[str]:
    return {message.message_id or "" for tap in taps for message in tap.messages}


@pytest.mark.slow
async def test_rewards_stopped_by_a_signal_commits_and_publishes_its_held_batch_and_loses_nothing(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    """`casework run --only rewards`, sent SIGTERM while a batch of reviews waits on its events
    table, stays up until the batch commits, publishes its ledger entries and exits 0 by
    itself. Restarted on what is left, it counts every credit and debit once."""
    messages = busy_world(30).messages()
    half = len(messages) // 2
    rewards = rewards_process(amqp_url, database_url, tmp_path / "rewards.log")
    async with Client(amqp_url) as client:
        await client.declare_topology()
        ledger = await client.tap("casework.events", "ledger.#")
        with rewards:
            await publish(client, messages[:half])
            rewards.start()
            await until(lambda: topic_counts(database_url)["Ledger.Credited"], timeout=60, what="the first credits")
            async with events_locked(database_url, "rewards_events"):
                await publish(client, messages[half:])
                await signalled_while_held(rewards, amqp_url, database_url, "rewards_events", "casework.rewards")
            await exits_by_itself(rewards)
        assert "redelivers it to the next start" not in rewards.log()
        await ledger.settle(quiet=0.5)
        assert published_kinds(ledger) == ledger_entries(database_url), "rewards exited with entries unpublished"
        async with running(rewards_service(amqp_url, database_url)) as restarted:
            await quiet(restarted)
            await ledger.collect(sum(ledger_kinds(messages).values()) - 2, timeout=60)
            await ledger.settle(quiet=1.0)
    assert_exactly_once(database_url, messages, ledger.messages)


@pytest.mark.slow
async def test_escalation_stopped_by_a_signal_records_its_held_batch_before_it_exits(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    """`casework run --only escalation`, sent SIGTERM while the clock of a new case waits on
    the clocks table, stays up until that write commits, acks the event and exits 0 by itself:
    the case has its clock and casework.escalation holds nothing to redeliver."""
    escalation = casework_process("escalation", amqp_url, database_url, tmp_path)
    async with intake_watched(amqp_url, database_url, tmp_path) as (intake, client, outcomes, _):
        intake.start()
        with escalation:
            escalation.start()
            await until(lambda: consuming(amqp_url, "casework.escalation"), timeout=60,
                        what="escalation consuming (its tables made)")
            first = await outcomes.outcome_for(
                await client.publish("complaint.receive", complaint_body(case_ref="FIRST")), timeout=30)
            await until(lambda: clocks(database_url, first["stream_id"]), timeout=30, what="the first clock")
            async with events_locked(database_url, "escalation_clocks", "SHARE"):
                held = await outcomes.outcome_for(
                    await client.publish("complaint.receive", complaint_body(case_ref="HELD")), timeout=30)
                await signalled_while_held(escalation, amqp_url, database_url, "escalation_clocks",
                                           "casework.escalation")
            await exits_by_itself(escalation)
        assert clocks(database_url, held["stream_id"]), "the held event's clock was not recorded"
        assert await waiting_in_queue(client, "casework.escalation") == 0, "the held event was left unacked"
    assert "redelivers it to the next start" not in escalation.log()


def clocks(database_url: str, case_id: str) -> int:
    with psycopg.connect(database_url) as conn:
        try:
            row = conn.execute("SELECT count(*) FROM escalation_clocks WHERE case_id = %s", (case_id,)).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0  # escalation has not made its tables yet
    return int(row[0]) if row else 0


def published_kinds(tap: Tap) -> Counter[str]:
    """Ledger events on the tap by kind (`ledger.credited`), each message id once."""
    return Counter(json.loads(body)["event"] for body in {m.message_id: m.body for m in tap.messages}.values())


def ledger_entries(database_url: str) -> Counter[str]:
    """Ledger events in rewards' store, by the kind they are published as."""
    return Counter({f"ledger.{kind.split('.')[1].lower()}": count
                    for kind, count in topic_counts(database_url).items() if kind.startswith("Ledger.")})
