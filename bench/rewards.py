"""Rewards benchmark: accrual throughput over a queued backlog, then deciding the period and writing its registry.

    python -m bench.rewards --reviews 100000 --branches 200

The backlog is what intake's relay publishes for each approved review (surplus.reported,
surplus.reviewed, period.review_assigned, and complaint.goods_located for matched ones),
queued on casework.rewards before the service starts; the service runs in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections import deque
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import aio_pika

from bench.intake import Scratch
from casework.settings import Settings
from services.rewards.application import RewardsApplication
from services.rewards.domain import period_stream_id
from services.rewards.main import RewardsService, tune_gc
from shared.broker import make_broker
from shared.policy import load_policy
from shared.topology import declare

PERIOD = "2026-11"
AT = "2026-11-20T06:00:00+00:00"
SPLITS = ([], [("1",)], [("0.5",), ("0.5",)], [("0.3333333333",), ("0.3333333333",), ("0.3333333334",)])
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:casework:bench")


def envelope(stream: uuid.UUID, version: int, event: str, branch: str) -> dict[str, Any]:
    return {"schema_version": 1, "stream_id": str(stream), "version": version, "event": event, "occurred_at": AT,
            "recorded_at": AT, "branch_id": branch, "hash": "1" * 64, "prev_hash": "0" * 64,
            "principal": "hq:warehousing", "user_id": "hq-warehousing", "command_id": str(uuid.uuid4())}


def backlog(reviews: int, branches: list[str], lean: bool = False) -> tuple[list[tuple[str, bytes]], Decimal]:
    """The messages casework.rewards receives for `reviews` approved reviews; and the penalties they carry.

    `lean` leaves out what rewards receives but passes over (review assignments, goods located).
    """
    period = period_stream_id(PERIOD)
    out = [("period.opened.HQ", envelope(period, 1, "period.opened", "HQ") | {"period": PERIOD})]
    penalised = 0
    for i in range(reviews):
        reporter = branches[i % len(branches)]
        report = uuid.uuid5(NAMESPACE, f"report:{i}")
        split = SPLITS[i % len(SPLITS)]
        blamed = [branches[(i * 7 + k * 13 + 1) % len(branches)] for k in range(len(split))]
        penalised += bool(split)
        matched = str(uuid.uuid5(NAMESPACE, f"case:{i}")) if i % 2 else None
        out.append((f"surplus.reported.{reporter}", envelope(report, 1, "surplus.reported", reporter) | {
            "report_ref": f"R-{i:07d}", "reported_by": f"staff-{i % 97}", "goods_name": "电饭煲", "window": "3号窗口",
            "clearance_date": "2026-11-19", "inspected_with": ["仓管员"], "photos": ["photo://x"], "resealed": True,
            "waybill_no": None}))
        out.append((f"surplus.reviewed.{reporter}", envelope(report, 2, "surplus.reviewed", reporter) | {
            "reviewer": "赵专员", "approved": True, "reason": "属实", "matched_case_id": matched, "period": PERIOD,
            "responsible_branches": [{"branch_id": b, "share": s[0]} for b, s in zip(blamed, split, strict=True)]}))
        if lean:
            continue
        out.append(("period.review_assigned.HQ", envelope(period, i + 2, "period.review_assigned", "HQ")
                    | {"report_id": str(report)}))
        if matched:
            case = uuid.UUID(matched)
            out.append(("complaint.goods_located.SZ02", envelope(case, 3, "complaint.goods_located", "SZ02")
                        | {"report_id": str(report), "reporting_branch": reporter}))
    encoded = [(key, json.dumps(body, ensure_ascii=False).encode()) for key, body in out]
    return encoded, Decimal(penalised) * Decimal("200.00")


async def publish(url: str, messages: list[tuple[str, bytes]], window: int = 1000) -> None:
    connection = await aio_pika.connect_robust(url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        exchange = await channel.get_exchange("casework.events", ensure=False)
        pending: deque[asyncio.Task[Any]] = deque()
        for key, body in messages:
            head = json.loads(body)
            message = aio_pika.Message(body, message_id=f"{head['stream_id']}:{head['version']}",
                                       content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT)
            pending.append(asyncio.create_task(exchange.publish(message, routing_key=key)))
            if len(pending) >= window:
                await pending.popleft()
        while pending:
            await pending.popleft()


async def until(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll until the condition holds; returns the moment it was seen."""
    started = time.perf_counter()
    while not await asyncio.to_thread(condition):
        if time.perf_counter() - started > timeout:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)
    return time.perf_counter()


async def run(reviews: int, branch_count: int, lean: bool = False) -> dict[str, Any]:
    branches = [f"B{n:03d}" for n in range(branch_count)]
    messages, penalties = backlog(reviews, branches, lean)
    with Scratch() as scratch:
        broker = make_broker(scratch.amqp_url)
        await broker.connect()
        await declare(broker)
        await broker.stop()
        started = time.perf_counter()
        await publish(scratch.amqp_url, messages)
        published = time.perf_counter() - started

        config = Settings(amqp_url=scratch.amqp_url, database_url=scratch.database_url, relay_poll_seconds=0.2)
        service = RewardsService(config, load_policy())
        stopping = asyncio.Event()
        task = asyncio.create_task(service.run(stopping))
        started = time.perf_counter()
        accrued = await until(lambda: service.consumer.handled >= len(messages), 3600, "accrual")
        accrual = accrued - started
        app = service.app
        relayed = await until(lambda: service.relay.position >= (app.recorder.max_notification_id() or 0),
                              3600, "relay") - started

        decided_message = envelope(period_stream_id(PERIOD), reviews + 2, "period.decided", "HQ") | {
            "decided_by": "钱主任", "review_count": reviews}
        started = time.perf_counter()
        await publish(scratch.amqp_url, [("period.decided.HQ", json.dumps(decided_message).encode())])
        decided = await until(lambda: (b := app.book(PERIOD)) is not None and b.decided, 600, "decision") - started
        stopping.set()
        await asyncio.wait_for(task, 60)

        started = time.perf_counter()
        reader = RewardsApplication(load_policy(), scratch.database_url)  # as `casework rewards registry` does
        registry = reader.registry(PERIOD)
        assert registry is not None
        out = Path(tempfile.mkdtemp(prefix="bench-rewards-"))
        (out / f"registry-{PERIOD}.csv").write_bytes(registry.to_csv())
        (out / f"registry-{PERIOD}.json").write_bytes(registry.to_json())
        written = time.perf_counter() - started
        book = reader.book(PERIOD)
        reader.close()

    assert len(registry.rows) == reviews, "every review has its row"
    assert registry.reward_total == Decimal(reviews) * Decimal("200.00"), "rewards exact to the cent"
    assert registry.penalty_total == penalties, "penalties exact to the cent"
    assert book is not None and book.digest == registry.digest
    return {
        "reviews": reviews, "branches": branch_count, "lean": lean, "messages": len(messages),
        "publish_seconds": round(published, 2),
        "accrual_seconds": round(accrual, 2), "accrual_reviews_per_s": round(reviews / accrual),
        "messages_per_s": round(len(messages) / accrual), "relay_caught_up_seconds": round(relayed, 2),
        "decision_seconds": round(decided, 2), "registry_seconds": round(written, 2),
        "decision_and_registry_seconds": round(decided + written, 2),
        "registry_bytes": {"csv": len(registry.to_csv()), "json": len(registry.to_json())},
    }


def direct(reviews: int, branch_count: int) -> dict[str, Any]:
    """The application alone on PostgreSQL, fed in batches of 1000; then the decision and the registry."""
    from services.rewards.rebuild import feed

    tune_gc()  # as the service does
    messages, _ = backlog(reviews, [f"B{n:03d}" for n in range(branch_count)], lean=True)
    decided = envelope(period_stream_id(PERIOD), reviews + 2, "period.decided", "HQ") | {
        "decided_by": "钱主任", "review_count": reviews}
    with Scratch() as scratch:
        app = RewardsApplication(load_policy(), scratch.database_url)
        app.warm()
        started = time.perf_counter()
        feed(app, messages, batch=1000)
        accrual = time.perf_counter() - started
        started = time.perf_counter()
        feed(app, [("period.decided.HQ", json.dumps(decided).encode())])
        decision = time.perf_counter() - started
        app.close()
        written = write_registry(scratch.database_url)
    return {"reviews": reviews, "direct_seconds": round(accrual, 2), "direct_reviews_per_s": round(reviews / accrual),
            "decision_seconds": round(decision, 2), "registry_seconds": round(written, 2),
            "decision_and_registry_seconds": round(decision + written, 2)}


def write_registry(database_url: str) -> float:
    """As `casework rewards registry` does: a fresh application reads the store; CSV and JSON to files."""
    started = time.perf_counter()
    reader = RewardsApplication(load_policy(), database_url)
    registry = reader.registry(PERIOD)
    assert registry is not None
    out = Path(tempfile.mkdtemp(prefix="bench-rewards-"))
    (out / f"registry-{PERIOD}.csv").write_bytes(registry.to_csv())
    (out / f"registry-{PERIOD}.json").write_bytes(registry.to_json())
    reader.close()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.rewards", description=__doc__)
    parser.add_argument("--reviews", type=int, default=100_000)
    parser.add_argument("--branches", type=int, default=200)
    parser.add_argument("--lean", action="store_true", help="only the surplus events rewards acts on")
    parser.add_argument("--direct", action="store_true", help="the application alone, without the broker")
    args = parser.parse_args(argv)
    if args.direct:
        result = direct(args.reviews, args.branches)
    else:
        result = asyncio.run(run(args.reviews, args.branches, args.lean))
    sys.stdout.write(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        main()
