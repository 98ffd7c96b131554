"""Escalation timer benchmark: open cases loaded straight into the clock store, deadlines spread over the
next hours; measures due-to-published delay, the scheduler's cost per wake-up as the count grows, peak RSS.

    python bench/escalation.py --sizes 100000,1000000 --spread 7200 --duration 90

Each size adds cases to the same store (so the second size measures with that many open clocks), runs
`casework run --only escalation` as its own process, and collects complaint.escalate from a queue bound
to casework.commands. Nothing else runs: no intake, so every lapse is the first rung of its case.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aio_pika
import psycopg

from services.escalation import codec
from services.escalation.domain import Fact
from services.escalation.ladder import apply
from services.escalation.rules import Rules
from services.escalation.store import Change, PostgresClockStore
from services.intake.application import IntakeApplication
from shared.broker import make_broker
from shared.policy import default_policy_path, load_policy
from shared.topology import declare

VERIFY = timedelta(hours=1)
BRANCHES = ("GZ01", "SZ02", "SH01", "HZ03", "UR01")


def policy_file(directory: Path) -> Path:
    """The packaged policy on 24x7 calendars, so the due times are exactly the ones loaded."""
    text = re.sub(r'calendar = "[a-z-]+"', 'calendar = "24x7"', default_policy_path().read_text())
    path = directory / "bench-policy.toml"
    path.write_text(text.replace('verify = "2h"', 'verify = "1h"'))
    return path


def clocks(rules: Rules, count: int, offset: int, first_due: datetime, spread: float) -> list[Change]:
    """Shortage cases received an hour before their verify deadline; the warning already sent."""
    changes = []
    for i in range(count):
        due = first_due + timedelta(seconds=spread * i / count)
        case_id = str(uuid.UUID(int=offset + i + 1))
        received = due - VERIFY
        clock = apply(None, Fact(case_id, 1, "received", received, received, BRANCHES[i % 5], "shortage",
                                 f"B-{offset + i}"), rules)
        clock.stages["verify"].warned = True
        changes.append(Change(case_id, 0, 1, due, clock.branch_id, codec.dumps(clock)))
    return changes


def load(store: PostgresClockStore, rules: Rules, count: int, offset: int, first_due: datetime,
         spread: float, chunk: int = 50_000) -> float:
    started = time.perf_counter()
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        first = first_due + timedelta(seconds=spread * start / count)
        store.copy_in(clocks(rules, size, offset + start, first, spread * size / count))
    with store.pool.connection() as conn:
        conn.execute("ANALYZE escalation_clocks")
    return time.perf_counter() - started


def probe(store: PostgresClockStore, rounds: int = 300) -> dict[str, float]:
    """What one wake-up asks the store (next due time, then what is due), timed from outside."""
    samples = []
    now = datetime.now(UTC)
    for _ in range(rounds):
        started = time.perf_counter()
        store.next_due()
        store.due(now, 500)
        samples.append(time.perf_counter() - started)
    samples.sort()
    return {"p50_ms": samples[len(samples) // 2] * 1000, "p99_ms": samples[int(len(samples) * 0.99)] * 1000}


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(amqp_url: str, env: dict[str, str], first_due: datetime, duration: float,
                  stats_file: Path, log: Path) -> dict[str, Any]:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.set_qos(prefetch_count=1000)
        tap = await channel.declare_queue(exclusive=True)
        await tap.bind("casework.commands", routing_key="complaint.escalate")
        delays: list[float] = []
        # Deadlines that passed before the service was up (loading ran long) are a start-up burst,
        # not timer precision: counted, not measured.
        boot = time.time() + 5.0
        burst = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal burst
            arrived = time.time()
            due = datetime.fromisoformat(json.loads(message.body)["reason"]["due_at"]).timestamp()
            if due < boot:
                burst += 1
            else:
                delays.append(arrived - due)
            await message.ack()

        await tap.consume(on_message)
        with log.open("ab") as output:
            service = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "casework", "run", "--only", "escalation", stdout=output, stderr=output,
                env={**os.environ, **env, "CASEWORK_ESCALATION_STATS_FILE": str(stats_file)})
        try:
            await asyncio.sleep(max(0.0, first_due.timestamp() - time.time()) + duration)
            rss = peak_rss_mib(service.pid)
        finally:
            service.send_signal(signal.SIGTERM)
            await asyncio.wait_for(service.wait(), 60)
    stats = json.loads(await asyncio.to_thread(stats_file.read_text)) if await asyncio.to_thread(
        stats_file.exists) else {}
    return {"delays": delays, "burst": burst, "rss_mib": rss, "scheduler": stats}


def summary(delays: list[float]) -> dict[str, float]:
    if not delays:
        return {"count": 0}
    ordered = sorted(delays)
    return {"count": len(ordered), "p50_s": statistics.median(ordered),
            "p99_s": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], "max_s": ordered[-1]}


def scratch(amqp_server: str, pg_server: str, tag: str) -> tuple[str, str]:
    """A fresh vhost and database for one run."""
    vhost = f"casework-bench-{tag}"
    parts = urlsplit(amqp_server)
    if shutil.which("rabbitmqctl"):
        subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
        subprocess.run(["rabbitmqctl", "-q", "set_permissions", "-p", vhost, parts.username or "guest",
                        ".*", ".*", ".*"], check=True, capture_output=True)
        amqp_url = urlunsplit((parts.scheme, parts.netloc, "/" + vhost, "", ""))
    else:
        amqp_url = amqp_server
    name = f"casework_bench_{tag}"
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    pg = urlsplit(pg_server)
    return amqp_url, urlunsplit((pg.scheme, pg.netloc, "/" + name, "", ""))


def cleanup(amqp_server: str, pg_server: str, tag: str) -> None:
    if shutil.which("rabbitmqctl"):
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", f"casework-bench-{tag}"], check=False,
                       capture_output=True)
    with psycopg.connect(pg_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "casework_bench_{tag}" WITH (FORCE)')


async def declare_topology(amqp_url: str) -> None:
    broker = make_broker(amqp_url)
    await broker.connect()
    await declare(broker)
    await broker.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    amqp_url, database_url = scratch(args.amqp_url, args.database_url, tag)
    workdir = Path(tempfile.mkdtemp(prefix="casework-bench-"))
    try:
        path = policy_file(workdir)
        policy = load_policy(path)
        IntakeApplication(policy, database_url).close()  # intake's (empty) tables, read before each firing
        asyncio.run(declare_topology(amqp_url))
        env = {"CASEWORK_AMQP_URL": amqp_url, "CASEWORK_DATABASE_URL": database_url, "CASEWORK_POLICY": str(path)}
        store = PostgresClockStore(database_url)
        results: list[dict[str, Any]] = []
        loaded = 0
        for size in (int(s) for s in args.sizes.split(",")):
            add = size - loaded
            # Loading runs at roughly 15,000 clocks a second here; the first deadline falls after it.
            first_due = datetime.now(UTC) + timedelta(seconds=args.lead + add / 15_000)
            seconds = load(store, Rules(policy), add, loaded, first_due, args.spread)
            loaded = size
            open_clocks = store.counts()[1]
            outside = probe(store)
            print(f"{open_clocks} open clocks ({add} loaded in {seconds:.1f}s); measuring {args.duration}s",
                  file=sys.stderr)
            measured = asyncio.run(measure(amqp_url, env, first_due, args.duration,
                                           workdir / f"stats-{size}.json", workdir / "service.log"))
            results.append({"open_clocks": open_clocks, "rate_per_s": add / args.spread,
                            "delay": summary(measured["delays"]), "start_up_burst": measured["burst"],
                            "peak_rss_mib": measured["rss_mib"],
                            "wake_probe": outside, "scheduler": measured["scheduler"]})
        store.close()
        return {"spread_s": args.spread, "duration_s": args.duration, "runs": results}
    finally:
        if not args.keep:
            cleanup(args.amqp_url, args.database_url, tag)
            shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", default="100000,1000000", help="open cases per run, cumulative")
    parser.add_argument("--spread", type=float, default=7200.0, help="seconds the deadlines of a run span")
    parser.add_argument("--lead", type=float, default=30.0, help="seconds from loading to the first deadline")
    parser.add_argument("--duration", type=float, default=90.0, help="seconds of firing measured per run")
    parser.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/")
    parser.add_argument("--database-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the vhost, database and logs")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
