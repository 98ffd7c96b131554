"""Replay benchmark: rebuild throughput over a large recorded history, as a ratio of reading the raw log.

Loads N complaint events straight into a scratch store (the intake application, in
batches), then times (a) reading the raw notification log, (b) decoding every event into
domain objects as the relay and rebuilds do, (c) rebuilding the escalation clocks from it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

from casework.replay import StoreLog
from services.intake.application import IntakeApplication, Submission
from shared.events import parse_command
from shared.policy import load_policy

PG = "postgresql://postgres@127.0.0.1:5432/postgres"


def load(database_url: str, n_events: int, progress: bool) -> int:
    """Record about n_events events: complaints received, verified and escalated (3 events + 1 record each... )."""
    clock_time = [datetime(2026, 11, 2, 1, 0, tzinfo=UTC)]

    def clock() -> datetime:
        clock_time[0] += timedelta(milliseconds=5)
        return clock_time[0]

    app = IntakeApplication(load_policy(), database_url, clock=clock)
    per_case = 4  # received + its command record, verified + its command record
    cases = n_events // per_case
    done = 0
    batch = 250
    for start in range(0, cases, batch):
        receives = []
        verifies = []
        for i in range(start, min(cases, start + batch)):
            body = {"branch_id": "GZ01", "case_ref": f"R{i:08d}", "waybill_no": "SH1", "category": "damage",
                    "customer": {"name": "李小姐", "phone": "13800000000"}, "description": "crushed carton"}
            receives.append(Submission(parse_command("complaint.receive", json.dumps(body).encode()),
                                       f"r{i}", "branch-GZ01"))
        outcomes = app.submit(receives)
        for i, outcome in zip(range(start, start + len(receives)), outcomes, strict=True):
            body = {"case_id": str(outcome.stream_id), "verified_by": "张", "summary": "restated",
                    "customer_confirmed": True}
            verifies.append(Submission(parse_command("complaint.verify", json.dumps(body).encode()),
                                       f"v{i}", "branch-GZ01"))
        app.submit(verifies)
        done += len(receives) * per_case
        if progress and start % 25_000 == 0:
            print(f"  loaded {done:,} events", file=sys.stderr)
    app.close()
    return done


def read_raw(database_url: str) -> tuple[int, float]:
    log = StoreLog(database_url)
    start, count, began = 1, 0, time.perf_counter()
    while notifications := log.recorder.select_notifications(start, 1000):
        count += len(notifications)
        start = notifications[-1].id + 1
    elapsed = time.perf_counter() - began
    log.close()
    return count, elapsed


def decode_all(database_url: str) -> tuple[int, float]:
    log = StoreLog(database_url)
    start, count, began = 1, 0, time.perf_counter()
    while notifications := log.recorder.select_notifications(start, 1000):
        for notification in notifications:
            log.mapper.to_domain_event(notification)
        count += len(notifications)
        start = notifications[-1].id + 1
    elapsed = time.perf_counter() - began
    log.close()
    return count, elapsed


def rebuild_escalation(database_url: str) -> tuple[int, float]:
    from services.escalation.application import EscalationApplication
    from services.escalation.history import IntakeHistory
    from services.escalation.rules import PolicyBook
    from services.escalation.store import open_store

    history = IntakeHistory.open(database_url)
    store = open_store(f"sqlite:///{tempfile.mkdtemp()}/clocks.sqlite3")
    began = time.perf_counter()
    app = EscalationApplication(store, PolicyBook.single(load_policy()), history)
    clocks = app.rebuild(history.facts(), datetime(2026, 11, 9, tzinfo=UTC))
    elapsed = time.perf_counter() - began
    history.close()
    store.close()
    return len(clocks), elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite store instead of PostgreSQL")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    name = f"bench_replay_{uuid.uuid4().hex[:8]}"
    if args.sqlite:
        url = f"sqlite:///{tempfile.mkdtemp()}/store.sqlite3"
    else:
        with psycopg.connect(PG, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        url = PG.rsplit("/", 1)[0] + "/" + name
    try:
        print(f"loading {args.events:,} events …", file=sys.stderr)
        loaded = load(url, args.events, progress=True)
        raw_n, raw_s = read_raw(url)
        dec_n, dec_s = decode_all(url)
        clocks, reb_s = rebuild_escalation(url)
    finally:
        if not args.sqlite:
            with psycopg.connect(PG, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    result: dict[str, Any] = {
        "events": loaded,
        "raw_read_per_s": raw_n / raw_s,
        "decode_per_s": dec_n / dec_s,
        "rebuild_events_per_s": raw_n / reb_s,
        "rebuild_clocks": clocks,
        "rebuild_ratio_of_raw": (raw_n / reb_s) / (raw_n / raw_s),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{'events recorded':<40}{loaded:>14,}")
    print(f"{'raw notification log read (events/s)':<40}{result['raw_read_per_s']:>14,.0f}")
    print(f"{'decode to domain events (events/s)':<40}{result['decode_per_s']:>14,.0f}")
    print(f"{'escalation rebuild (events/s)':<40}{result['rebuild_events_per_s']:>14,.0f}   target ≥ 50,000")
    print(f"{'rebuild as a ratio of the raw read':<40}{result['rebuild_ratio_of_raw']:>14.2f}")


if __name__ == "__main__":
    main()
