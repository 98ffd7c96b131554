"""Raw intake-pipeline ceiling (aio-pika → psycopg → confirmed publish) for scaling benchmarks."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import statistics
import sys
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aio_pika
import psycopg
from aio_pika.abc import (
    AbstractChannel,
    AbstractConnection,
    AbstractExchange,
    AbstractIncomingMessage,
)
from psycopg import sql

DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"

PREFETCH = 500
BATCH_MAX = 200
# Confirms are awaited oldest-first once this many are outstanding: enough to keep the
# broker's quorum writes batched, bounded so a stalled broker shows up as a timeout.
CONFIRM_WINDOW = 1000
PAYLOAD_BYTES = 400
RUN_TIMEOUT = 120.0
SETUP_TIMEOUT = 60.0
TEARDOWN_TIMEOUT = 30.0
# A run during which other processes took more than this share of all CPUs is flagged.
DISTURBED_SHARE = 0.05
OUT_ROUTING_KEY = "complaint.case.received"
# The live publisher runs this file as a script, so it works from any working directory.
_THIS_FILE = Path(__file__).resolve()

log = logging.getLogger(__name__)


class CeilingTimeoutError(TimeoutError):
    """A ceiling run did not finish within its time bound."""


@contextlib.asynccontextmanager
async def _bounded(seconds: float, what: str) -> AsyncIterator[None]:
    try:
        async with asyncio.timeout(seconds):
            yield
    except TimeoutError as exc:
        raise CeilingTimeoutError(f"{what} did not finish within {seconds:g} s") from exc


@dataclass(frozen=True)
class _Scratch:
    tag: str

    @classmethod
    def new(cls) -> _Scratch:
        return cls(uuid.uuid4().hex[:12])

    @property
    def in_queue(self) -> str:
        return f"bench.ceiling.{self.tag}.in"

    @property
    def out_exchange(self) -> str:
        return f"bench.ceiling.{self.tag}.out"

    @property
    def sink_queue(self) -> str:
        return f"bench.ceiling.{self.tag}.sink"

    @property
    def table(self) -> str:
        return f"bench_ceiling_{self.tag}"


_FILLER = "Parcel arrived with the outer carton crushed and two items missing. "


def _payload(seq: int, message_id: str) -> bytes:
    doc: dict[str, Any] = {
        "type": "ComplaintReceived",
        "message_id": message_id,
        "seq": seq,
        "case_ref": f"CASE-{seq:08d}",
        "channel": "email",
        "country": "DE",
        "complainant": {"customer_id": f"C{seq % 9973:06d}", "tier": "gold"},
        "shipment": {"tracking": f"JD{seq:012d}", "carrier": "road"},
        "received_at": "2024-11-27T17:02:00+00:00",
        "summary": "",
    }
    room = PAYLOAD_BYTES - len(json.dumps(doc, separators=(",", ":")))
    doc["summary"] = (_FILLER * (room // len(_FILLER) + 1))[: max(room, 0)]
    return json.dumps(doc, separators=(",", ":")).encode()


def _messages(n: int) -> list[aio_pika.Message]:
    out = []
    for seq in range(n):
        message_id = str(uuid.uuid4())
        out.append(
            aio_pika.Message(
                _payload(seq, message_id),
                message_id=message_id,
                content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            )
        )
    return out


async def _publish_all(exchange: AbstractExchange, messages: Sequence[aio_pika.Message], routing_key: str) -> None:
    """Publish with a rolling window of outstanding confirms; raises on any nack/return."""
    pending: deque[asyncio.Task[Any]] = deque()
    try:
        for message in messages:
            pending.append(asyncio.create_task(exchange.publish(message, routing_key)))
            if len(pending) >= CONFIRM_WINDOW:
                await pending.popleft()
        while pending:
            await pending.popleft()
    finally:
        for task in pending:
            task.cancel()


class _Pipeline:
    """Consume → batch insert (one transaction) → ack → confirmed publish, for n messages."""

    def __init__(self, n: int, db: psycopg.AsyncConnection[Any], exchange: AbstractExchange, table: str) -> None:
        self._n = n
        self._db = db
        self._exchange = exchange
        self._insert = sql.SQL("INSERT INTO {} (message_id, body) VALUES (%s, %s)").format(sql.Identifier(table))
        self._buffer: list[AbstractIncomingMessage] = []
        self._arrived = asyncio.Event()
        self._confirms: deque[asyncio.Task[Any]] = deque()
        self.inserted = 0
        self.confirmed = 0
        self.batches = 0

    async def on_message(self, message: AbstractIncomingMessage) -> None:
        self._buffer.append(message)
        self._arrived.set()

    async def _forward(self, incoming: AbstractIncomingMessage) -> None:
        await self._exchange.publish(
            aio_pika.Message(
                incoming.body,
                message_id=incoming.message_id,
                content_type=incoming.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            OUT_ROUTING_KEY,
        )
        self.confirmed += 1

    async def run(self) -> None:
        try:
            async with self._db.cursor() as cur:
                while self.inserted < self._n:
                    await self._arrived.wait()
                    # No waiting for a full batch: whatever has arrived goes in now, which is
                    # what keeps latency low when the queue is nearly empty.
                    batch = self._buffer[:BATCH_MAX]
                    del self._buffer[:BATCH_MAX]
                    if not self._buffer:
                        self._arrived.clear()
                    async with self._db.transaction():
                        await cur.executemany(self._insert, [(m.message_id, m.body) for m in batch])
                    # Deliveries on one channel are processed in order, so one multiple-ack
                    # settles the whole batch.
                    await batch[-1].ack(multiple=True)
                    self.inserted += len(batch)
                    self.batches += 1
                    for message in batch:
                        self._confirms.append(asyncio.create_task(self._forward(message)))
                        if len(self._confirms) >= CONFIRM_WINDOW:
                            await self._confirms.popleft()
                while self._confirms:
                    await self._confirms.popleft()
        finally:
            for task in self._confirms:
                task.cancel()


@contextlib.asynccontextmanager
async def _clients(
    amqp_url: str, database_url: str
) -> AsyncIterator[tuple[AbstractConnection, psycopg.AsyncConnection[Any]]]:
    amqp = await aio_pika.connect(amqp_url)
    try:
        db = await psycopg.AsyncConnection.connect(database_url, autocommit=True)
        try:
            yield amqp, db
        finally:
            await db.close()
    finally:
        await amqp.close()


async def _setup(amqp: AbstractConnection, db: psycopg.AsyncConnection[Any], s: _Scratch) -> None:
    quorum = {"x-queue-type": "quorum"}
    channel = await amqp.channel()
    try:
        await channel.declare_queue(s.in_queue, durable=True, arguments=quorum)
        out = await channel.declare_exchange(s.out_exchange, aio_pika.ExchangeType.TOPIC, durable=True)
        # Without a bound queue the outgoing publishes would be unroutable and the broker
        # would confirm them without storing anything, inflating the ceiling.
        sink = await channel.declare_queue(s.sink_queue, durable=True, arguments=quorum)
        await sink.bind(out, "#")
    finally:
        await channel.close()
    await db.execute(
        sql.SQL(
            "CREATE TABLE {} (message_id uuid PRIMARY KEY, body bytea NOT NULL,"
            " received_at timestamptz NOT NULL DEFAULT now())"
        ).format(sql.Identifier(s.table))
    )


async def _teardown(s: _Scratch, amqp_url: str, database_url: str) -> None:
    """Best effort on fresh connections, so a broken run still leaves nothing behind."""

    async def broker() -> None:
        amqp = await aio_pika.connect(amqp_url)
        try:
            for kind, name in (
                ("queue", s.in_queue),
                ("queue", s.sink_queue),
                ("exchange", s.out_exchange),
            ):
                # A failed delete closes its channel; a fresh one keeps the others going.
                try:
                    channel = await amqp.channel()
                    if kind == "queue":
                        await channel.queue_delete(name)
                    else:
                        await channel.exchange_delete(name)
                    await channel.close()
                except Exception as exc:
                    log.warning("could not delete %s %s: %s", kind, name, exc)
        finally:
            await amqp.close()

    async def database() -> None:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as db:
            await db.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(s.table)))

    for step in (broker, database):
        try:
            async with asyncio.timeout(TEARDOWN_TIMEOUT):
                await step()
        except Exception as exc:
            log.warning("ceiling teardown (%s) failed for %s: %s", step.__name__, s.tag, exc)


async def _time_pipeline(
    amqp: AbstractConnection,
    db: psycopg.AsyncConnection[Any],
    s: _Scratch,
    n: int,
    mode: str,
    kickoff: Callable[[], Awaitable[float]] | None = None,
    sidecar: asyncio.Task[Any] | None = None,
) -> float:
    """Run the pipeline over n messages; msg/s from kickoff until the last confirm."""
    consume_channel: AbstractChannel = await amqp.channel(publisher_confirms=False)
    publish_channel: AbstractChannel = await amqp.channel(publisher_confirms=True, on_return_raises=True)
    await consume_channel.set_qos(prefetch_count=PREFETCH)
    queue = await consume_channel.get_queue(s.in_queue, ensure=False)
    exchange = await publish_channel.get_exchange(s.out_exchange, ensure=False)
    pipeline = _Pipeline(n, db, exchange, s.table)
    run: asyncio.Task[None] | None = None
    try:
        started = time.perf_counter()
        await queue.consume(pipeline.on_message, no_ack=False)
        if kickoff is not None:
            started = await kickoff()
        run = asyncio.create_task(pipeline.run())
        try:
            async with asyncio.timeout(RUN_TIMEOUT):
                if sidecar is not None:
                    done, _ = await asyncio.wait({run, sidecar}, return_when=asyncio.FIRST_COMPLETED)
                    if sidecar in done:
                        sidecar.result()
                await run
        except TimeoutError as exc:
            raise CeilingTimeoutError(
                f"{mode} ceiling run of {n} messages did not finish within {RUN_TIMEOUT:g} s"
                f" ({pipeline.inserted} inserted, {pipeline.confirmed} confirmed)"
            ) from exc
        elapsed = time.perf_counter() - started
        log.debug("%s: %d messages in %d batches, %.3f s", mode, n, pipeline.batches, elapsed)
        return n / elapsed
    finally:
        if run is not None and not run.done():
            run.cancel()
            with contextlib.suppress(BaseException):
                await run
        for channel in (consume_channel, publish_channel):
            with contextlib.suppress(Exception):
                await channel.close()


async def drain_ceiling(n: int, amqp_url: str, database_url: str) -> float:
    """msg/s of the raw pipeline draining n messages queued beforehand."""
    s = _Scratch.new()
    try:
        async with _clients(amqp_url, database_url) as (amqp, db):
            async with _bounded(SETUP_TIMEOUT + n / 1000, f"drain setup of {n} messages"):
                await _setup(amqp, db, s)
                channel = await amqp.channel(publisher_confirms=True, on_return_raises=True)
                await _publish_all(channel.default_exchange, _messages(n), s.in_queue)
                queued = await channel.declare_queue(s.in_queue, passive=True)
                count = queued.declaration_result.message_count
                await channel.close()
            if count != n:
                raise RuntimeError(f"prefill left {count} messages queued, expected {n}")
            return await _time_pipeline(amqp, db, s, n, "drain")
    finally:
        await _teardown(s, amqp_url, database_url)


async def _publisher(amqp_url: str, queue_name: str, n: int) -> None:
    """Child side of the live mode: wait for "go" on stdin, publish n, report on stdout."""
    messages = _messages(n)
    amqp = await aio_pika.connect(amqp_url)
    try:
        channel = await amqp.channel(publisher_confirms=True, on_return_raises=True)
        print("ready", flush=True)
        loop = asyncio.get_running_loop()
        # Read in a thread so the connection's reader and heartbeats keep running.
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if line.strip() != "go":
            return
        started = time.perf_counter()
        await _publish_all(channel.default_exchange, messages, queue_name)
        seconds = time.perf_counter() - started
        print(json.dumps({"published": n, "seconds": seconds}), flush=True)
    finally:
        await amqp.close()


async def _live(n: int, amqp_url: str, database_url: str) -> float:
    s = _Scratch.new()
    proc: asyncio.subprocess.Process | None = None
    sidecar: asyncio.Task[Any] | None = None
    try:
        async with _clients(amqp_url, database_url) as (amqp, db):
            async with _bounded(SETUP_TIMEOUT, "live setup and publisher start"):
                await _setup(amqp, db, s)
                # A separate interpreter, not a thread: the publisher must not share this
                # process's GIL and event loop with the pipeline it is feeding.
                proc = await asyncio.create_subprocess_exec(
                    sys.executable,
                    str(_THIS_FILE),
                    "--publisher-queue",
                    s.in_queue,
                    "--n",
                    str(n),
                    stdin=asyncio.subprocess.PIPE,
                    stdout=asyncio.subprocess.PIPE,
                    env={**os.environ, "CASEWORK_BENCH_AMQP_URL": amqp_url},
                )
                assert proc.stdin is not None and proc.stdout is not None
                line = await proc.stdout.readline()
                if line.strip() != b"ready":
                    raise RuntimeError(f"live publisher did not start (exit {await proc.wait()})")

            async def kickoff() -> float:
                started = time.perf_counter()
                proc.stdin.write(b"go\n")
                await proc.stdin.drain()
                return started

            async def watch() -> dict[str, Any]:
                report = await proc.stdout.readline()
                code = await proc.wait()
                if code != 0 or not report:
                    raise RuntimeError(f"live publisher failed (exit {code})")
                return json.loads(report)

            sidecar = asyncio.create_task(watch())
            rate = await _time_pipeline(amqp, db, s, n, "live", kickoff, sidecar)
            async with _bounded(SETUP_TIMEOUT, "live publisher exit"):
                report = await sidecar
            log.debug("live publisher alone: %.0f msg/s", n / report["seconds"])
            return rate
    finally:
        if sidecar is not None and not sidecar.done():
            sidecar.cancel()
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await _teardown(s, amqp_url, database_url)


def live_ceiling(n: int, amqp_url: str, database_url: str) -> float:
    """msg/s of the raw pipeline fed concurrently by a publisher in another process.

    Runs its own event loop, so call it from synchronous code.
    """
    return asyncio.run(_live(n, amqp_url, database_url))


async def _serve(amqp_url: str, database_url: str, tag: str, n: int) -> None:
    """Child side of the latency mode: the pipeline over n messages on a scratch set up for it."""
    s = _Scratch(tag)
    async with _clients(amqp_url, database_url) as (amqp, db):

        async def kickoff() -> float:
            print("ready", flush=True)
            return time.perf_counter()

        await _time_pipeline(amqp, db, s, n, "latency", kickoff)


async def latency_ceiling(rate: float, seconds: float, amqp_url: str, database_url: str) -> dict[str, float]:
    """p50/p99 of the raw pipeline at a steady rate: a message sent → its forward delivered.

    The pipeline runs in a process of its own, the load comes from this one, through the
    same pacing and listener as `bench.intake`'s command → outcome latency (`bench.load`).
    Each forward is routed to the listener's classic queue as an outcome is, and to the
    quorum sink as an event is.
    """
    # Here, not at the top: this file also runs as a script (the publisher and the pipeline
    # children), where the repository's packages need not be importable.
    from bench import load
    from shared.publishing import Outgoing

    n = int(rate * seconds)
    s = _Scratch.new()
    proc: asyncio.subprocess.Process | None = None
    try:
        async with _clients(amqp_url, database_url) as (amqp, db):
            async with _bounded(SETUP_TIMEOUT, "latency setup and pipeline start"):
                await _setup(amqp, db, s)
                channel = await amqp.channel()
                arrived = await load.listen(channel, s.out_exchange, "#",
                                            lambda message: str(message.header.properties.message_id))
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, str(_THIS_FILE), "--serve", s.tag, "--n", str(n),
                    stdout=asyncio.subprocess.PIPE,
                    env={**os.environ, "CASEWORK_BENCH_AMQP_URL": amqp_url,
                         "CASEWORK_BENCH_DATABASE_URL": database_url},
                )
                assert proc.stdout is not None
                if (await proc.stdout.readline()).strip() != b"ready":
                    raise RuntimeError(f"ceiling pipeline did not start (exit {await proc.wait()})")
            ids = [str(uuid.uuid4()) for _ in range(n)]
            sent = await load.paced_publish(amqp_url, n, rate,
                                            lambda j: Outgoing("", s.in_queue, ids[j], _payload(j, ids[j])))
            await load.wait_answered(arrived, n)
            async with _bounded(RUN_TIMEOUT, "ceiling pipeline exit"):
                if await proc.wait() != 0:
                    raise RuntimeError(f"ceiling pipeline failed (exit {proc.returncode})")
            return load.delays(sent, arrived)
    finally:
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        await _teardown(s, amqp_url, database_url)


def _cpu_busy(interval: float) -> float | None:
    """Share of all CPUs busy over interval, from /proc/stat; None where it does not exist."""

    def sample() -> tuple[int, int]:
        with open("/proc/stat") as f:
            ticks = [int(x) for x in f.readline().split()[1:9]]
        return sum(ticks), ticks[3] + ticks[4]

    try:
        total0, idle0 = sample()
        time.sleep(interval)
        total1, idle1 = sample()
    except (OSError, ValueError):
        return None
    return 1 - (idle1 - idle0) / max(total1 - total0, 1)


# Broker and database work for the pipeline; any other process is interference.
_PIPELINE_COMMANDS = frozenset({"beam.smp", "postgres", "epmd", "erl_child_setup", "inet_gethost"})


def _cpu_by_pid() -> dict[int, tuple[str, float]] | None:
    """CPU seconds used so far by each user-space process, from /proc; None without it."""
    try:
        pids = [int(name) for name in os.listdir("/proc") if name.isdigit()]
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    usage: dict[int, tuple[str, float]] = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                raw = f.read()
            comm = raw[raw.index("(") + 1 : raw.rindex(")")]
            fields = raw[raw.rindex(")") + 2 :].split()
            # Children of kthreadd are kernel threads, mostly flushing our own writes.
            if fields[1] == "2" or pid == 2:
                continue
            usage[pid] = (comm, (int(fields[11]) + int(fields[12])) / tick)
        except (OSError, ValueError, IndexError):
            continue
    return usage


def _foreign_cpu(before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]) -> float:
    """CPU-s other processes used between two snapshots.

    A lower bound: a process that started and ended in between is not seen. The live
    publisher has exited by the second snapshot, so it is not counted either.
    """
    me = os.getpid()
    total = 0.0
    for pid, (comm, cpu) in after.items():
        if pid == me or comm in _PIPELINE_COMMANDS:
            continue
        old_comm, old_cpu = before.get(pid, (comm, 0.0))
        total += max(cpu - (old_cpu if old_comm == comm else 0.0), 0.0)
    return total


def wait_for_idle_cpu(timeout: float = 30.0, busy_below: float = 0.15) -> bool:
    """Wait until the machine is nearly idle; False if it never was within timeout.

    The ceiling saturates both cores, so anything else running (another test suite, a
    service left up) lowers it; better to start in a quiet moment and say when there was none.
    """
    deadline = time.monotonic() + timeout
    while True:
        busy = _cpu_busy(1.0)
        if busy is None or busy < busy_below:
            return True
        if time.monotonic() >= deadline:
            return False


def _run(mode: str, n: int, amqp_url: str, database_url: str) -> float:
    if mode == "drain":
        return asyncio.run(drain_ceiling(n, amqp_url, database_url))
    return live_ceiling(n, amqp_url, database_url)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ceiling",
        description="Raw ceiling of the intake pipeline with bare aio-pika and psycopg.",
    )
    parser.add_argument("--n", type=int, default=20000, help="messages per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per mode; the median is kept")
    parser.add_argument("--mode", choices=("drain", "live", "both"), default="both")
    parser.add_argument("--json", action="store_true", help="print a JSON object")
    parser.add_argument(
        "--no-settle",
        action="store_true",
        help="do not wait (up to 30 s) for a quiet machine before each run",
    )
    parser.add_argument("--publisher-queue", help=argparse.SUPPRESS)
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.n < 1 or args.repeat < 1:
        parser.error("--n and --repeat must be positive")

    amqp_url = os.environ.get("CASEWORK_BENCH_AMQP_URL", DEFAULT_AMQP_URL)
    database_url = os.environ.get("CASEWORK_BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)

    if args.publisher_queue:
        asyncio.run(_publisher(amqp_url, args.publisher_queue, args.n))
        return
    if args.serve:
        asyncio.run(_serve(amqp_url, database_url, args.serve, args.n))
        return

    modes = ("drain", "live") if args.mode == "both" else (args.mode,)
    cpus = os.cpu_count() or 1
    results: dict[str, dict[str, Any]] = {}
    for mode in modes:
        runs: list[float] = []
        foreign: list[float | None] = []
        disturbed: list[bool] = []
        for i in range(args.repeat):
            quiet = args.no_settle or wait_for_idle_cpu()
            before = _cpu_by_pid()
            started = time.monotonic()
            rate = _run(mode, args.n, amqp_url, database_url)
            wall = time.monotonic() - started
            after = _cpu_by_pid()
            other = _foreign_cpu(before, after) if before and after else None
            runs.append(rate)
            foreign.append(other)
            disturbed.append(not quiet or (other or 0.0) > DISTURBED_SHARE * wall * cpus)
            note = " (disturbed)" if disturbed[-1] else ""
            other_text = "" if other is None else f", other processes {other:.1f} CPU-s"
            print(
                f"{mode} run {i + 1}/{args.repeat}: {rate:,.0f} msg/s{other_text}{note}",
                file=sys.stderr,
            )
        clean = [x for x, d in zip(runs, disturbed, strict=True) if not d]
        results[mode] = {
            "n": args.n,
            "median": statistics.median(runs),
            "median_undisturbed": statistics.median(clean) if clean else None,
            "best": max(runs),
            "runs": runs,
            "foreign_cpu_s": foreign,
            "disturbed": disturbed,
        }

    if args.json:
        print(
            json.dumps(
                {
                    "unit": "msg/s",
                    "prefetch": PREFETCH,
                    "batch_max": BATCH_MAX,
                    "confirm_window": CONFIRM_WINDOW,
                    "payload_bytes": PAYLOAD_BYTES,
                    "modes": results,
                }
            )
        )
        return
    print(f"{'mode':<6} {'n':>7} {'median msg/s':>13} {'undisturbed':>12}  runs msg/s")
    for mode, r in results.items():
        runs_text = ", ".join(f"{x:,.0f}{'*' if d else ''}" for x, d in zip(r["runs"], r["disturbed"], strict=True))
        clean_text = "—" if r["median_undisturbed"] is None else f"{r['median_undisturbed']:,.0f}"
        print(f"{mode:<6} {r['n']:>7} {r['median']:>13,.0f} {clean_text:>12}  {runs_text}")
    if any(any(r["disturbed"]) for r in results.values()):
        print(
            f"* other processes used over {DISTURBED_SHARE:.0%} of the machine during the run,"
            " or it never went quiet before it: that figure is low"
        )


if __name__ == "__main__":
    main()
