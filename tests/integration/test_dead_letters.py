"""`casework dead`: what waits in casework.dead is shown without being taken, and an event a
service set aside reaches it again once the fault is put right; nothing else is sent back.

The broker and the database are real; the fault is a clock step that raises for one case
reference while `broken` says so, as a bug would until it is fixed.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aio_pika
import pytest
from typer.testing import CliRunner

from casework.dead import peek, redrive
from tests.integration.test_escalation_faults import clock_step_failing_for
from tests.integration.test_escalation_flow import accepted
from tests.integration.test_escalation_kit import escalation_service, fake_clock, short_policy, started
from tests.support.live import Client, complaint_body, intake_service, running, until

pytestmark = pytest.mark.integration


async def dead_count(client: Client) -> int:
    assert client.channel is not None
    channel = await client.channel.get_underlay_channel()
    declared = await channel.queue_declare("casework.dead", passive=True)
    return declared.message_count or 0


async def holding(client: Client, count: int, timeout: float = 30.0) -> None:
    """Wait until casework.dead holds `count` messages."""
    deadline = asyncio.get_running_loop().time() + timeout
    while (held := await dead_count(client)) != count:
        if asyncio.get_running_loop().time() > deadline:
            raise TimeoutError(f"casework.dead holds {held}, not {count}")
        await asyncio.sleep(0.1)


async def test_a_set_aside_event_is_shown_then_sent_back_once_the_fault_is_put_right(
        amqp_url: str, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fault = clock_step_failing_for(monkeypatch, "BAD")
    _, policy = short_policy(tmp_path, verify="100s", remediate="100s", ladder="10s")
    clock = fake_clock()
    async with Client(amqp_url) as client:
        await client.declare_topology()
        assert client.channel is not None
        outcomes = await client.tap("casework.events", "command.#")
        async with running(intake_service(amqp_url, database_url, policy, clock=clock)), \
                running(escalation_service(amqp_url, database_url, policy, clock)) as service:
            await started(service)
            bad = await accepted(client, outcomes, "complaint.receive", complaint_body(case_ref="BAD"))
            await client.channel.default_exchange.publish(
                aio_pika.Message(b"{not json", message_id="junk-1"), routing_key="casework.escalation")
            await holding(client, 2)

            total, letters = await peek(amqp_url, limit=10)
            assert await dead_count(client) == 2, "looking took letters out of casework.dead"
            shown = {letter.message_id: letter for letter in letters}
            assert total == 2 and set(shown) == {f"{bad}:1", "junk-1"}
            assert (shown[f"{bad}:1"].set_aside_by, shown[f"{bad}:1"].code) == ("escalation", "internal_error")
            assert shown[f"{bad}:1"].routing_key == "complaint.received.GZ01"
            assert shown[f"{bad}:1"].why_it_stays is None
            assert shown["junk-1"].code == "schema_invalid" and shown["junk-1"].why_it_stays is not None
            assert service.app.clock(bad) is None

            fault.fixed = True
            refused = await redrive(amqp_url, {"junk-1", "no-such-id"})
            assert ([letter.message_id for letter, _ in refused.refused], refused.missing, refused.sent) == (
                ["junk-1"], ["no-such-id"], [])
            done = await redrive(amqp_url, None)
            assert [letter.message_id for letter in done.sent] == [f"{bad}:1"]
            await until(lambda: service.app.clock(bad) is not None, what="the clock of the case sent back")
            await until(service.consumer.idle, what="every delivery settled")
            assert await dead_count(client) == 1, "only the unreadable letter stays"
            again = await redrive(amqp_url, None)
            assert again.sent == [] and await dead_count(client) == 1


def test_dead_list_prints_what_waits_and_redrive_refuses_what_cannot_go(amqp_url: str) -> None:
    async def setup() -> None:
        async with Client(amqp_url) as client:
            await client.declare_topology()
            assert client.channel is not None
            await client.channel.default_exchange.publish(aio_pika.Message(
                b"{}", message_id="cmd-1", headers={"x-casework-error": json.dumps(
                    {"code": "schema_invalid", "message": "field required"}),
                    "x-casework-routing-key": "complaint.receive"}), routing_key="casework.dead")

    asyncio.run(setup())
    from casework.cli import app, mount

    if not any(group.name == "dead" for group in app.registered_groups):
        mount()
    runner = CliRunner()
    env = {"CASEWORK_AMQP_URL": amqp_url, "COLUMNS": "300"}
    listed = runner.invoke(app, ["dead", "list", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    document = json.loads(listed.stdout)
    assert document["total"] == 1
    [letter] = document["letters"]
    assert (letter["message_id"], letter["set_aside_by"], letter["code"], letter["redrivable"]) == (
        "cmd-1", "intake", "schema_invalid", False)
    refused = runner.invoke(app, ["dead", "redrive", "cmd-1"], env=env)
    assert refused.exit_code == 1
    assert "its sender was answered rejected" in refused.stderr
    assert json.loads(runner.invoke(app, ["dead", "list", "--json"], env=env).stdout)["total"] == 1
