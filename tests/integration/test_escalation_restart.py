"""One escalation per lapse through real RabbitMQ and PostgreSQL: after downtime, with two services at once,
and when the service is killed between sending an escalation and recording it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from services.escalation import codec
from services.escalation.store import open_store
from tests.integration.test_escalation_kit import (
    escalation_service,
    escalations,
    fake_clock,
    short_policy,
    started,
)
from tests.support.live import Client, complaint_body, intake_service, running, until

pytestmark = pytest.mark.integration


async def receive_cases(client: Client, count: int, prefix: str) -> list[str]:
    outcomes = await client.tap("casework.events", "command.#")
    ids = []
    for i in range(count):
        outcome = await outcomes.outcome_for(await client.publish("complaint.receive",
                                                                  complaint_body(case_ref=f"{prefix}-{i}")))
        assert outcome["status"] == "accepted", outcome
        ids.append(str(outcome["stream_id"]))
    return ids


async def test_deadlines_that_lapsed_while_the_service_was_down_fire_once_on_restart(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    _, policy = short_policy(tmp_path, verify="10s", close="20s", ladder="30s")
    clock = fake_clock()
    async with Client(amqp_url) as client:
        await client.declare_topology()
        escalated = await client.tap("casework.escalations", "branch.#", "regional.#", "hq.#")
        async with running(intake_service(amqp_url, database_url, policy, clock=clock)):
            async with running(escalation_service(amqp_url, database_url, policy, clock)) as service:
                await started(service)
                cases = await receive_cases(client, 3, "D")
                await until(lambda: all(service.app.clock(c) for c in cases), what="clocks")
            clock.advance(timedelta(seconds=25))  # verify lapsed at 10 s, close at 20 s: both while down
            async with running(escalation_service(amqp_url, database_url, policy, clock)) as service:
                await started(service)
                await escalated.collect(6)
                clock.advance(timedelta(seconds=5))  # less than a ladder step since the restart
                await escalated.settle(quiet=1.0)
                assert len(escalated.messages) == 6
                clock.advance(timedelta(seconds=30))
                await escalated.collect(9)
                await escalated.settle(quiet=1.0)
    per_lapse = Counter(escalations(database_url))
    assert per_lapse == {(case, level): 1 for case in cases for level in ("branch", "regional", "hq")}


async def test_two_escalation_services_at_once_still_escalate_once_per_lapse(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    _, policy = short_policy(tmp_path, verify="10s", close="1000s", ladder="10s")
    clock = fake_clock()
    async with Client(amqp_url) as client:
        await client.declare_topology()
        escalated = await client.tap("casework.escalations", "branch.#", "regional.#", "hq.#")
        async with running(intake_service(amqp_url, database_url, policy, clock=clock)), \
                running(escalation_service(amqp_url, database_url, policy, clock)) as one, \
                running(escalation_service(amqp_url, database_url, policy, clock)) as two:
            await started(one)
            await started(two)
            cases = await receive_cases(client, 10, "T")
            await until(lambda: all(one.app.clock(c) for c in cases), what="clocks")
            for rung, seconds in enumerate((10, 10, 10), start=1):
                clock.advance(timedelta(seconds=seconds))  # both schedulers wake at the same instant
                await escalated.collect(10 * rung)
            await escalated.settle(quiet=1.0)
    assert len(escalated.messages) == 30
    assert Counter(escalations(database_url)) == {
        (case, level): 1 for case in cases for level in ("branch", "regional", "hq")}


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "casework", "run", "--only", "escalation"],
                            env={**os.environ, **env}, stdout=log.open("ab"), stderr=subprocess.STDOUT,
                            cwd=Path(__file__).resolve().parents[2])


@pytest.mark.slow
async def test_killed_between_sending_and_recording_escalates_once_per_lapse(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    policy_file, policy = short_policy(tmp_path, verify="2s", close="1h", ladder="2s")
    env = {"CASEWORK_AMQP_URL": amqp_url, "CASEWORK_DATABASE_URL": database_url,
           "CASEWORK_POLICY": str(policy_file)}
    log = tmp_path / "escalation.log"
    async with Client(amqp_url) as client:
        await client.declare_topology()
        async with running(intake_service(amqp_url, database_url, policy)):
            doomed = spawn({**env, "CASEWORK_ESCALATION_CRASH_AFTER_PUBLISH": "1"}, log)
            try:
                [case] = await receive_cases(client, 1, "K")
                code = await asyncio.to_thread(doomed.wait, 60)
            finally:
                if doomed.poll() is None:
                    doomed.kill()
            assert code == -signal.SIGKILL, log.read_text()
            # The broker confirmed the command before the kill, so intake records it...
            await until(lambda: (case, "branch") in escalations(database_url), what="branch recorded")
            store = open_store(database_url)
            try:
                row = store.load([case])[case]
            finally:
                store.close()
            clock_row: Any = codec.loads(row.state)
            # ...while the clock store never learnt that it was sent.
            assert clock_row.sent == -1 and clock_row.stages["verify"].phase == "running"
            # The restart does not read the store first: the repeat must collapse at intake.
            survivor = spawn({**env, "CASEWORK_ESCALATION_CATCH_UP": "0"}, log)
            try:
                await until(lambda: (case, "hq") in escalations(database_url), timeout=60,
                            what=f"hq escalation; log:\n{log.read_text()}")
            finally:
                survivor.send_signal(signal.SIGTERM)
                await asyncio.to_thread(survivor.wait, 30)
    assert Counter(escalations(database_url)) == {(case, "branch"): 1, (case, "regional"): 1, (case, "hq"): 1}


async def test_a_graceful_stop_lets_the_batch_being_committed_finish(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    """Asked to stop while a batch of events waits on the database, escalation records the
    clocks and acks the events first: the queue holds nothing to redeliver."""
    _, policy = short_policy(tmp_path, verify="10s", close="1000s", ladder="10s")
    clock = fake_clock()
    async with Client(amqp_url) as client:
        await client.declare_topology()
        async with running(intake_service(amqp_url, database_url, policy, clock=clock)):
            service = escalation_service(amqp_url, database_url, policy, clock)()
            stopping = asyncio.Event()
            task = asyncio.create_task(service.run(stopping))
            await started(service)
            [first] = await receive_cases(client, 1, "BEFORE")
            await until(lambda: service.app.clock(first), what="the first clock")
            async with await psycopg.AsyncConnection.connect(database_url) as holder:
                # SHARE lets the service read its clocks and makes its writes wait.
                await holder.execute("LOCK TABLE escalation_clocks IN SHARE MODE")
                [held] = await receive_cases(client, 1, "HELD")
                await until(lambda: service.consumer.busy, what="escalation taking the event")
                stopping.set()
                await asyncio.sleep(1.0)
                assert not task.done(), "escalation stopped with a batch not yet committed"
            await asyncio.wait_for(task, 30)
        assert client.channel is not None
        queue = await client.channel.declare_queue("casework.escalation", passive=True)
        assert queue.declaration_result.message_count == 0, "the held event was acked before escalation stopped"
    store = open_store(database_url)
    try:
        assert held in store.load([held]), "the held event's clock was recorded"
    finally:
        store.close()
