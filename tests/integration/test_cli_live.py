"""The command line against a real RabbitMQ: `casework subscribe escalations` as an HQ
department runs it (each notice on one line, with who holds the case, from a durable queue that
kept what came while it was not running), `casework topology`, and a login RabbitMQ refuses, as
every command that connects names it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from uuid import uuid4

import aio_pika
import pytest
from typer.testing import CliRunner

from shared.events.messages import EscalationNotice
from tests.support.live import Client

pytestmark = pytest.mark.integration


def notice(owner: str | None, owner_branch: str | None) -> bytes:
    return EscalationNotice(
        case_id=uuid4(), case_ref="SZ-0042", branch_id="GZ01", region_id="south", department="warehousing",
        level="hq", category="shortage", waybill_no="WB1", reason="customer called three times",
        escalated_at=datetime(2026, 11, 28, 9, 0, tzinfo=UTC), owner=owner, owner_branch=owner_branch,
    ).model_dump_json().encode()


def test_each_notice_names_who_holds_the_case(amqp_url: str) -> None:
    queue = "casework.sub.test.hq.warehousing"

    async def waiting_for_the_subscriber() -> None:
        async with Client(amqp_url) as client:
            await client.declare_topology()
            assert client.channel is not None
            declared = await client.channel.declare_queue(queue, durable=True, arguments={"x-queue-type": "quorum"})
            await declared.bind("casework.escalations", routing_key="hq.warehousing")
            escalations = await client.channel.get_exchange("casework.escalations")
            for body in (notice("Liu", "SZ02"), notice(None, "GZ01"), notice(None, None)):
                await escalations.publish(aio_pika.Message(body), routing_key="hq.warehousing")

    asyncio.run(waiting_for_the_subscriber())
    from casework.cli import app

    result = CliRunner().invoke(app, ["subscribe", "escalations", "hq.warehousing", "--queue", queue, "--limit", "3"],
                                env={"CASEWORK_AMQP_URL": amqp_url, "COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3, lines
    assert "hq.warehousing case SZ-0042 (GZ01, shortage, held by Liu (SZ02)): customer called three times" in lines[0]
    assert "(GZ01, shortage, held by GZ01):" in lines[1]
    assert "(GZ01, shortage):" in lines[2]

    async def left() -> int:
        async with Client(amqp_url) as client:
            assert client.channel is not None
            channel = await client.channel.get_underlay_channel()
            return (await channel.queue_declare(queue, passive=True)).message_count or 0

    assert asyncio.run(left()) == 0, "the notices it printed were not acked"


@pytest.mark.parametrize("command", [
    ("publish", "complaint.receive", "--json", "{}", "--user", "branch-nobody"),
    ("publish", "complaint.receive", "--json", "{}", "--user", "guest", "--password", "wrong"),
    ("subscribe", "escalations", "hq.warehousing", "--user", "guest", "--password", "wrong", "--limit", "1"),
    ("dead", "list"),
    ("run", "--only", "intake"),
], ids=lambda command: " ".join(command[:2]) + (" " + command[-1] if "--password" in command else ""))
def test_a_login_rabbitmq_refuses_is_named_as_such(amqp_url: str, command: tuple[str, ...]) -> None:
    """Not a traceback, nor 'cannot reach': the broker answered, and said no to the user or password."""
    from urllib.parse import urlsplit, urlunsplit

    from casework.cli import app, mount

    if not any(group.name == "dead" for group in app.registered_groups):
        mount()
    parts = urlsplit(amqp_url)
    wrong = urlunsplit(parts._replace(netloc=f"guest:wrong@{parts.hostname}:{parts.port or 5672}"))
    url = wrong if command[0] in ("dead", "run") else amqp_url
    result = CliRunner().invoke(app, list(command), env={"CASEWORK_AMQP_URL": url, "CASEWORK_DATABASE_URL": "memory:",
                                                         "COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    said = result.stderr
    assert said.startswith("error: RabbitMQ refused the login: no such user, or a wrong password"), said


def test_topology_declares_the_contract_and_says_where(amqp_url: str) -> None:
    from urllib.parse import unquote, urlsplit

    from casework.cli import app

    result = CliRunner().invoke(app, ["topology"], env={"CASEWORK_AMQP_URL": amqp_url, "COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    where = urlsplit(amqp_url)
    vhost = unquote(where.path[1:])
    assert result.stdout.startswith(f"declared on {where.hostname}:{where.port or 5672}, vhost {vhost}:")
    assert "casework.intake, casework.dead, casework.escalation, casework.rewards" in result.stdout

    async def queues() -> list[str]:
        async with Client(amqp_url) as client:
            assert client.channel is not None
            return [(await client.channel.declare_queue(name, passive=True)).name
                    for name in ("casework.intake", "casework.dead", "casework.escalation", "casework.rewards")]

    assert len(asyncio.run(queues())) == 4  # a passive declare of a queue that is not there raises
