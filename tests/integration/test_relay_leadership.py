"""One relay publishes per store: of two intake processes one leads, the other stands by and takes over.

Each process names its PostgreSQL sessions (PGAPPNAME), so pg_locks shows whose session holds
the relay's advisory lock. On SQLite the lock is a file's, and a process's log says it took it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import aio_pika
import psycopg
import pytest

from services.intake.application import IntakeApplication
from services.intake.domain import complaint_id
from shared.policy import load_policy
from shared.relay_lock import RelayLock
from tests.support.live import Client, Tap, complaint_body, out_of_order, until
from tests.support.processes import ServiceProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

NAMES = ("relay-a", "relay-b")
TAKEOVER_SECONDS = 5.0  # the standby asks for the lock every second
Message = aio_pika.abc.AbstractIncomingMessage


# The sessions holding intake's relay lock on the connection's database.
LOCK_HOLDERS = (
    "FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
    "AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()) "
    "AND (l.classid::bigint << 32 | l.objid::bigint) = %s")


def lock_sessions(database_url: str) -> list[tuple[str, int]]:
    """The sessions (process name, backend pid) holding intake's relay lock on this database."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(f"SELECT a.application_name, a.pid {LOCK_HOLDERS}",
                            (RelayLock({}, "casework.relay").key,)).fetchall()
    return sorted((name, pid) for name, pid in rows)


def relay_lock_holders(database_url: str) -> list[str]:
    """The processes (by session name) whose session holds intake's relay lock on this database."""
    return [name for name, _ in lock_sessions(database_url)]


def end_the_lock_session(database_url: str) -> None:
    """End the session holding the relay's lock, as a restart of the server or a cut connection
    would: the lock goes with it, though the process that took it lives on."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(f"SELECT pg_terminate_backend(a.pid) {LOCK_HOLDERS}", (RelayLock({}, "casework.relay").key,))


def asks_for_the_lock(database_url: str, name: str) -> bool:
    """A session of `name` asked for the relay's lock last, and holds it not: it stands by."""
    with psycopg.connect(database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = %s AND query LIKE 'SELECT pg_try_advisory_lock%%'", (name,)).fetchone()
    return bool(row and row[0]) and name not in relay_lock_holders(database_url)


def verify_body(case_ref: str) -> dict[str, object]:
    return {"case_id": str(complaint_id("GZ01", case_ref)), "verified_by": "Zhang", "summary": "restated",
            "customer_confirmed": True}


async def publish_cases(client: Client, prefix: str, count: int, pause: float = 0.0) -> None:
    """Receive and verify `count` cases: two commands each, so every case's stream has two versions."""
    for i in range(count):
        ref = f"{prefix}-{i:04d}"
        await client.publish("complaint.receive", complaint_body(case_ref=ref), message_id=f"{ref}-r")
        await client.publish("complaint.verify", verify_body(ref), message_id=f"{ref}-v")
        await asyncio.sleep(pause)


def relayed(messages: list[Message]) -> list[Message]:
    """What the relay published: recorded events and outcomes (a duplicate's answer is not recorded)."""
    return [m for m in messages if "x-casework-position" in (m.headers or {})]


def restarts(messages: list[Message]) -> list[int]:
    """Where the relayed sequence goes back (a repeat of what came before begins there)."""
    positions = [int(str(m.headers["x-casework-position"])) for m in relayed(messages)]
    return [i for i in range(1, len(positions)) if positions[i] <= positions[i - 1]]


class Store:
    """The intake store as any reader sees it: which events it holds, by message id."""

    def __init__(self, store_url: str) -> None:
        self.app = IntakeApplication(load_policy(), store_url)

    def message_ids(self) -> set[str]:
        return {f"{n.originator_id}:{n.originator_version}" for n in self.app.recorder.select_notifications(1, 100_000)}

    def commands_recorded(self) -> int:
        return sum(n.topic.endswith("CommandRecord.Processed")
                   for n in self.app.recorder.select_notifications(1, 100_000))


async def everything_published(tap: Tap, store: Store, commands: int, timeout: float = 60.0) -> set[str]:
    """Wait until the store recorded `commands` commands and the tap holds every event it recorded;
    the message ids of those events."""
    await until(lambda: store.commands_recorded() >= commands, timeout=timeout, what=f"{commands} commands recorded")
    expected = await asyncio.to_thread(store.message_ids)
    deadline = asyncio.get_running_loop().time() + timeout
    while missing := expected - {m.message_id for m in tap.messages}:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"{len(missing)} recorded events never published, e.g. {sorted(missing)[:3]}")
        with contextlib.suppress(TimeoutError):
            await tap.collect(len(tap.messages) + 1, timeout=0.5)
    return expected


@contextlib.contextmanager
def intake_processes(amqp_url: str, store_url: str, log_dir: Path) -> Iterator[dict[str, ServiceProcess]]:
    """Two intake processes (consumer and relay each) on one store, started together."""
    env = {"CASEWORK_AMQP_URL": amqp_url, "CASEWORK_DATABASE_URL": store_url}
    processes = {name: ServiceProcess("intake", env, log_dir / f"{name}.log") for name in NAMES}
    try:
        for name, process in processes.items():
            process.start(PGAPPNAME=name)
        yield processes
    finally:
        for process in processes.values():
            process.stop()


async def sample(observe: Callable[[], list[str]], samples: list[list[str]]) -> None:
    """Note what `observe` says ten times a second, until cancelled."""
    while True:
        samples.append(await asyncio.to_thread(observe))
        await asyncio.sleep(0.1)


def logs(processes: dict[str, ServiceProcess]) -> str:
    return "\n".join(f"--- {name}\n{process.log()[-3000:]}" for name, process in processes.items())


async def leader_killed_while_commands_flow(amqp_url: str, store_url: str, tmp_path: Path,
                                            leaders: Callable[[dict[str, ServiceProcess]], list[str]],
                                            standing_by: Callable[[ServiceProcess, str], bool]) -> None:
    """Both running: one publishes, nothing twice. The leader killed mid-flow: the other takes over
    by itself, every recorded event arrives, first arrivals in order, repeats only at the takeover."""
    store = Store(store_url)
    loop = asyncio.get_running_loop()
    try:
        async with Client(amqp_url) as client:
            await client.declare_topology()
            tap = await client.tap("casework.events", "#")
            with intake_processes(amqp_url, store_url, tmp_path) as processes:
                holders = await until(lambda: leaders(processes), what="a relay taking the lock")
                assert len(holders) == 1, logs(processes)
                [leader], [standby] = holders, set(NAMES) - set(holders)
                await until(lambda: standing_by(processes[standby], standby), what="the other relay standing by")

                samples: list[list[str]] = []
                watch = asyncio.create_task(sample(lambda: leaders(processes), samples))
                await publish_cases(client, "BOTH", 50)
                await everything_published(tap, store, commands=100)
                both = len(relayed(await tap.settle(quiet=1.0)))
                watch.cancel()
                assert {tuple(s) for s in samples} == {(leader,)}, "one relay leads while both run"
                assert restarts(tap.messages) == [], "with both running, nothing is published twice"

                flow = asyncio.create_task(publish_cases(client, "FLOW", 150, pause=0.005))
                await tap.collect(both + 100, timeout=30)  # the leader is publishing the flow
                processes[leader].kill()
                killed = loop.time()
                await until(lambda: leaders(processes) == [standby], timeout=TAKEOVER_SECONDS,
                            what=f"{standby} taking over from {leader} within {TAKEOVER_SECONDS} s")
                took_over = loop.time() - killed
                await flow
                expected = await everything_published(tap, store, commands=400)
                await tap.settle(quiet=1.0)
    finally:
        store.app.close()
    messages = all_in_order(tap, expected)
    back = restarts(messages)
    assert len(back) <= 1 and all(i > both for i in back), (
        f"repeats only where {standby} took over ({took_over:.1f} s after the kill): restarts at {back}")


def all_in_order(tap: Tap, expected: set[str]) -> list[Message]:
    """What the relays published of the store's events: every recorded one and nothing else, in order."""
    messages = relayed(tap.messages)
    assert {m.message_id for m in messages} == expected, "every recorded event, and nothing else"
    assert out_of_order(messages) == []
    return messages


async def test_on_postgresql_one_relay_leads_and_the_standby_takes_over_when_it_is_killed(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    await leader_killed_while_commands_flow(
        amqp_url, database_url, tmp_path,
        leaders=lambda _: relay_lock_holders(database_url),
        standing_by=lambda _, name: asks_for_the_lock(database_url, name))


def sqlite_leaders(processes: dict[str, ServiceProcess]) -> list[str]:
    """Live processes whose relay took the file lock (which it keeps until it dies)."""
    return sorted(name for name, process in processes.items()
                  if process.exited() is None and "casework.relay holds the lock" in process.log())


async def test_on_sqlite_one_relay_leads_and_the_standby_takes_over_when_it_is_killed(
        amqp_url: str, sqlite_url: str, tmp_path: Path) -> None:
    await leader_killed_while_commands_flow(
        amqp_url, sqlite_url, tmp_path, leaders=sqlite_leaders,
        # The relay asks for the lock as the consumer starts, and every second after.
        standing_by=lambda process, _: "intake consuming casework.intake" in process.log())


async def test_a_relay_whose_lock_session_ends_stands_by_while_the_other_leads(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    """The advisory lock lives as long as its database session (a restart of the server, a cut
    connection end it). Then the standby may take the lock at once, so the relay that held it
    must stop publishing, and ask for the lock again like any standby."""
    store = Store(database_url)
    try:
        async with Client(amqp_url) as client:
            await client.declare_topology()
            tap = await client.tap("casework.events", "#")
            with intake_processes(amqp_url, database_url, tmp_path):
                [(leader, session)] = await until(lambda: lock_sessions(database_url), what="a relay taking the lock")
                [standby] = set(NAMES) - {leader}
                await until(lambda: asks_for_the_lock(database_url, standby), what="the other relay standing by")
                await publish_cases(client, "BEFORE", 20)
                await everything_published(tap, store, commands=40)

                end_the_lock_session(database_url)
                # Either relay may take the lock now; the other must then stand by.
                [(leader, _)] = await until(lambda: [s for s in lock_sessions(database_url) if s[1] != session],
                                            timeout=TAKEOVER_SECONDS, what="a new session taking the lock")
                [standby] = set(NAMES) - {leader}
                await until(lambda: asks_for_the_lock(database_url, standby), timeout=TAKEOVER_SECONDS,
                            what=f"{standby} standing by")
                since = len(relayed(await tap.settle(quiet=0.5)))
                await publish_cases(client, "AFTER", 50)
                expected = await everything_published(tap, store, commands=140)
                await tap.settle(quiet=1.0)
    finally:
        store.app.close()
    messages = all_in_order(tap, expected)
    assert restarts(messages[since:]) == [], f"only {leader} publishes once {standby} stands by"
