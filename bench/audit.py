"""`audit state` on one long stream: as-of by time and by version, with and without snapshots."""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from casework.audit import StoreReader
from casework.audit_asof import AsOfReader
from casework.audit_verify import verify
from services.intake.application import IntakeApplication, Submission
from shared.events.commands import parse_command
from shared.policy import load_policy

START = datetime(2026, 11, 2, tzinfo=UTC)
BATCH = 200


@contextmanager
def store(postgres: str | None) -> Iterator[str]:
    """A fresh store: a SQLite file in a temporary folder, or a new PostgreSQL database."""
    if not postgres:
        with tempfile.TemporaryDirectory() as folder:
            yield f"sqlite:///{folder}/store.sqlite3"
        return
    import psycopg

    name = f"casework_bench_audit_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    parts = urlsplit(postgres)
    try:
        yield urlunsplit((parts.scheme, parts.netloc, "/" + name, "", ""))
    finally:
        with psycopg.connect(postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def long_case(url: str, events: int) -> uuid.UUID:
    """Received, verified, then the customer awaited and resumed until the stream is long enough."""
    ticks = iter(range(10**9))
    app = IntakeApplication(load_policy(), url, clock=lambda: START + timedelta(seconds=next(ticks)))

    def submission(key: str, body: dict[str, Any]) -> Submission:
        return Submission(parse_command(key, json.dumps(body).encode()), str(uuid.uuid4()), "branch-GZ01")

    [outcome] = app.submit([submission("complaint.receive", {
        "branch_id": "GZ01", "case_ref": "BENCH-1", "waybill_no": "WB1", "category": "damage",
        "customer": {"name": "李小姐", "phone": "13800000000"}, "description": "crushed"})])
    case = str(outcome.stream_id)
    commands = [("complaint.verify", {"case_id": case, "verified_by": "张三", "summary": "ok",
                                      "customer_confirmed": True})]
    for n in range(events - 2):
        commands.append(("complaint.await_customer", {"case_id": case, "reason": f"question {n}"})
                        if n % 2 == 0 else ("complaint.resume", {"case_id": case}))
    for start in range(0, len(commands), BATCH):
        app.submit([submission(k, b) for k, b in commands[start:start + BATCH]])
    app.close()
    assert outcome.stream_id is not None
    return outcome.stream_id


def timed(call: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    result = call()
    return (time.perf_counter() - started) * 1000, result


def summary(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"median_ms": round(statistics.median(ordered), 2),
            "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))], 2), "max_ms": round(ordered[-1], 2)}


def run(url: str, events: int, queries: int, seed: int) -> dict[str, Any]:
    built, case = timed(lambda: long_case(url, events))
    reader = StoreReader(url)
    stream = reader.stream(case)
    reader.close()
    times = [e.timestamp for e in stream]
    rng = random.Random(seed)
    moments = [times[0] + (times[-1] - times[0]) * rng.random() for _ in range(queries)]
    versions = [rng.randint(1, len(stream)) for _ in range(queries)]

    bare = AsOfReader(url, use_snapshots=False)
    no_snapshots = [timed(lambda m=m: bare.at_time(case, m))[0] for m in moments[:5]]
    bare.close()
    asof = AsOfReader(url)
    cold, first = timed(lambda: asof.at_time(case, times[-1]))
    by_time = [timed(lambda m=m: asof.at_time(case, m))[0] for m in moments]
    by_version = [timed(lambda v=v: asof.at_version(case, v))[0] for v in versions]
    asof.close()
    verified, result = timed(lambda: verify(url, case))
    assert result.intact and first.version == len(stream)
    return {
        "store": urlsplit(url).scheme, "events_in_stream": len(stream), "build_s": round(built / 1000, 1),
        "first_query_ms": round(cold, 1), "snapshots_written": first.snapshots_written,
        "as_of_time_warm": summary(by_time), "as_of_version_warm": summary(by_version),
        "as_of_time_without_snapshots": summary(no_snapshots), "verify_stream_ms": round(verified, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--postgres", metavar="URL", help="server to make a throwaway database on")
    args = parser.parse_args()
    with store(args.postgres) as url:
        print(json.dumps(run(url, args.events, args.queries, args.seed), indent=2))


if __name__ == "__main__":
    main()
