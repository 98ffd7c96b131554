"""Outside first, inside later: with rewards stopped and 10,000 messages waiting for it, complaints go on."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from tests.integration.test_escalation_kit import escalation_service, fake_clock, short_policy
from tests.integration.test_rewards_crashes import queue_depth, quiet, topic_counts
from tests.integration.test_rewards_flow import rewards_service
from tests.support.live import Client, complaint_body, intake_service, running

pytestmark = [pytest.mark.integration, pytest.mark.slow]
BACKLOG = 10_000


def surplus_reported(n: int) -> bytes:
    at = datetime(2026, 3, 1, tzinfo=UTC).isoformat()
    return json.dumps({
        "schema_version": 1, "stream_id": str(uuid.uuid4()), "version": 1, "event": "surplus.reported",
        "occurred_at": at, "recorded_at": at, "branch_id": "GZ01", "hash": "1" * 64, "prev_hash": "0" * 64,
        "report_ref": f"B-{n:05d}", "reported_by": "王五", "goods_name": "纸箱", "window": "1号窗口",
        "clearance_date": "2026-02-28", "inspected_with": ["仓管员"], "photos": ["photo://b"], "resealed": True,
        "waybill_no": None, "principal": "branch:GZ01", "user_id": "branch-GZ01", "command_id": f"b-{n}",
    }, ensure_ascii=False).encode()


async def fill_rewards_queue(client: Client, count: int) -> None:
    """What intake's relay would have sent while rewards was down: surplus.# reaches casework.rewards only."""
    assert client.channel is not None
    exchange = await client.channel.get_exchange("casework.events", ensure=False)
    for start in range(0, count, 500):
        await asyncio.gather(*(exchange.publish(
            aio_pika.Message(surplus_reported(n), message_id=f"backlog-{n}:1", content_type="application/json",
                             delivery_mode=aio_pika.DeliveryMode.PERSISTENT),
            routing_key="surplus.reported.GZ01") for n in range(start, min(start + 500, count))))


async def test_complaints_live_their_whole_life_and_escalate_on_time_while_rewards_is_down(
        amqp_url: str, database_url: str, tmp_path: Path) -> None:
    _, policy = short_policy(tmp_path, verify="10s", remediate="100s", close="1000s", ladder="10s")
    clock = fake_clock()
    t0 = clock()
    async with Client(amqp_url) as client:
        await client.declare_topology()
        await fill_rewards_queue(client, BACKLOG)
        await queue_depth(client, BACKLOG)
        outcomes = await client.tap("casework.events", "command.#")
        complaints = await client.tap("casework.events", "complaint.#")
        notices = await client.tap("casework.escalations", "branch.#", "regional.#", "hq.#")

        async def accepted(key: str, body: dict[str, Any]) -> str:
            outcome = await outcomes.outcome_for(await client.publish(key, body))
            assert outcome["status"] == "accepted", outcome
            return str(outcome["stream_id"])

        async with running(intake_service(amqp_url, database_url, policy, clock=clock)), \
                running(escalation_service(amqp_url, database_url, policy, clock)):
            neglected = await accepted("complaint.receive", complaint_body(case_ref="N-1"))
            case = await accepted("complaint.receive", complaint_body(case_ref="L-1"))
            for key, body in (
                ("complaint.verify", {"verified_by": "张三", "summary": "两箱少货", "customer_confirmed": True}),
                ("complaint.hand_over", {"to": "李四", "note": "请跟进", "to_branch": "SZ02"}),
                ("complaint.remediate", {"action": "补发", "remediated_by": "李四", "compensation": "50.00"}),
                ("complaint.close", {"closed_by": "李四", "resolution": "已补发", "customer_satisfied": True}),
                ("complaint.reopen", {"reason": "客户再次投诉"}),
                ("complaint.verify", {"verified_by": "张三", "summary": "仍少一箱", "customer_confirmed": True}),
                ("complaint.remediate", {"action": "赔付", "remediated_by": "李四", "compensation": "80.00"}),
                ("complaint.close", {"closed_by": "李四", "resolution": "已赔付", "customer_satisfied": True}),
            ):
                await accepted(key, {"case_id": case, **body})
            for step in range(3):  # each deadline passes exactly; each rung follows at once
                clock.set(t0 + timedelta(seconds=10 * (step + 1)))
                await notices.collect(step + 1, timeout=30)
            await complaints.settle(quiet=1.0)

        # Nothing of the complaints' life waited for rewards, which has not taken one message;
        # started now, it works through the whole backlog and the complaints that joined it.
        await queue_depth(client, BACKLOG + len(complaints.messages))
        async with running(rewards_service(amqp_url, database_url)) as rewards:
            handled = await quiet(rewards)
        assert handled == BACKLOG + len(complaints.messages)
        assert topic_counts(database_url)["Claim.Opened"] == BACKLOG

    lapses = [json.loads(m.body) for m in notices.messages]
    assert [(n["case_id"], n["level"]) for n in lapses] == [
        (neglected, "branch"), (neglected, "regional"), (neglected, "hq")]
    first = lapses[0]
    due = (t0 + timedelta(seconds=10)).isoformat().replace("+00:00", "Z")
    assert (first["reason"]["due_at"], first["reason"]["overdue_seconds"], first["escalated_at"]) == (due, 0, due)
    events = [json.loads(m.body)["event"] for m in complaints.messages if json.loads(m.body)["stream_id"] == case]
    assert events == ["complaint.received", "complaint.verified", "complaint.handed_over", "complaint.remediated",
                      "complaint.closed", "complaint.reopened", "complaint.verified", "complaint.remediated",
                      "complaint.closed"]
