"""deploy/rabbitmq/definitions.json: it imports, and the real broker enforces its permissions.

The definitions are loaded into a scratch vhost with prefixed user names (the same rewrite
in every permission and in every regex that names a user), so the broker's own `/` and
`casework` vhosts and users are never touched. Passwords stay the development ones: each
user's password is its unprefixed name, which also proves the password hashes are right.

Needs `rabbitmqctl` for the broker (override with CASEWORK_TEST_RABBITMQCTL, e.g.
"docker exec -i rabbitmq rabbitmqctl") and CASEWORK_TEST_AMQP_URL for host and port.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import importlib.util
import json
import os
import re
import secrets
import shlex
import shutil
import subprocess
import textwrap
import time
import tomllib
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import aio_pika
import aiormq.exceptions
import pytest
from aio_pika.abc import AbstractChannel, AbstractConnection

ROOT = Path(__file__).resolve().parents[2]
DEFINITIONS = ROOT / "deploy" / "rabbitmq" / "definitions.json"
GENERATOR = ROOT / "deploy" / "rabbitmq" / "generate_definitions.py"

TOPIC_EXCHANGES = ("casework.commands", "casework.events", "casework.escalations", "casework.services")
CONTRACT_QUEUES = ("casework.intake", "casework.escalation", "casework.rewards", "casework.dead")
QUORUM_WITH_DEAD_LETTERS = {
    "x-queue-type": "quorum",
    "x-delivery-limit": 20,
    "x-dead-letter-exchange": "casework.dead",
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}

AccessRefused = aiormq.exceptions.ChannelAccessRefused
PreconditionFailed = aio_pika.exceptions.ChannelPreconditionFailed


def load_definitions() -> dict:
    return json.loads(DEFINITIONS.read_text(encoding="utf-8"))


# --- the file itself (no broker needed) ------------------------------------------------


def test_definitions_file_is_what_the_generator_writes() -> None:
    spec = importlib.util.spec_from_file_location("generate_definitions", GENERATOR)
    assert spec and spec.loader
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    assert DEFINITIONS.read_text(encoding="utf-8") == generator.render(), (
        "definitions.json is stale: run python deploy/rabbitmq/generate_definitions.py"
    )


def test_every_development_password_is_the_users_own_name() -> None:
    for user in load_definitions()["users"]:
        assert user["hashing_algorithm"] == "rabbit_password_hashing_sha256"
        raw = base64.b64decode(user["password_hash"])
        salt, digest = raw[:4], raw[4:]
        assert hashlib.sha256(salt + user["name"].encode()).digest() == digest, user["name"]


def test_no_user_reaches_a_topic_exchange_without_topic_permissions() -> None:
    """RabbitMQ allows every routing key on a topic exchange a user has no topic permission for."""
    definitions = load_definitions()
    topics = {(t["user"], t["exchange"]) for t in definitions["topic_permissions"]}
    admins = {u["name"] for u in definitions["users"] if "administrator" in u["tags"]}
    for perm in definitions["permissions"]:
        if perm["user"] in admins:
            continue
        for exchange in TOPIC_EXCHANGES:
            if any(re.search(perm[kind], exchange) for kind in ("write", "read")):
                assert (perm["user"], exchange) in topics, (perm["user"], exchange)


def test_broker_users_are_the_policys_users() -> None:
    """Every RabbitMQ user acts as a principal, in the packaged policy and in the cluster's."""
    broker_users = {user["name"] for user in load_definitions()["users"]}
    packaged = tomllib.loads((ROOT / "shared" / "policy" / "default.toml").read_text(encoding="utf-8"))
    configmap = (ROOT / "deploy" / "k8s" / "policy-configmap.yaml").read_text(encoding="utf-8")
    cluster = tomllib.loads(textwrap.dedent(configmap.split("policy.toml: |\n", 1)[1]))
    assert set(packaged["users"]) - {"guest"} == broker_users
    assert set(cluster["users"]) == broker_users  # no development guest in the cluster


# --- a scratch copy on the real broker -----------------------------------------------------


def rabbitmqctl_command() -> list[str]:
    return shlex.split(os.environ.get("CASEWORK_TEST_RABBITMQCTL", "rabbitmqctl"))


def rabbitmqctl(*args: str, stdin: str | None = None) -> str:
    result = subprocess.run(
        [*rabbitmqctl_command(), *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"rabbitmqctl {' '.join(args)} failed: {result.stdout}{result.stderr}")
    return result.stdout


def scratch_copy(definitions: dict, vhost: str, prefix: str) -> dict:
    """The same definitions for another vhost, with every user name (also inside regexes) prefixed."""
    names = sorted((u["name"] for u in definitions["users"]), key=len, reverse=True)
    named = re.compile(r"(?<![A-Za-z0-9_-])(" + "|".join(map(re.escape, names)) + r")(?![A-Za-z0-9_-])")

    def rename(text: str) -> str:
        return named.sub(lambda m: prefix + m.group(1), text)

    copy = json.loads(json.dumps(definitions))
    for vh in copy["vhosts"]:
        vh["name"] = vhost
    for user in copy["users"]:
        user["name"] = prefix + user["name"]
    for perm in copy["permissions"]:
        perm.update({k: rename(perm[k]) for k in ("user", "configure", "write", "read")})
    for perm in copy["topic_permissions"]:
        perm.update({k: rename(perm[k]) for k in ("user", "write", "read")})
    for kind in ("permissions", "topic_permissions", "queues", "exchanges", "bindings", "policies"):
        for item in copy.get(kind, []):
            item["vhost"] = vhost
    return copy


@dataclass(frozen=True)
class Scratch:
    vhost: str
    prefix: str
    host: str
    port: int

    def user(self, name: str) -> str:
        return self.prefix + name

    async def connect(self, name: str) -> AbstractConnection:
        """Connect as one of the definitions' users (development password = its own name)."""
        return await aio_pika.connect(
            host=self.host,
            port=self.port,
            login=self.user(name),
            password=name,
            virtualhost=self.vhost,
        )


@pytest.fixture(scope="module")
def scratch() -> Iterator[Scratch]:
    if shutil.which(rabbitmqctl_command()[0]) is None:
        pytest.skip("rabbitmqctl is not available (set CASEWORK_TEST_RABBITMQCTL)")
    url = urlsplit(os.environ.get("CASEWORK_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"))
    token = secrets.token_hex(4)
    vhost = f"casework-test-{token}"
    prefix = f"t{token}-"
    definitions = load_definitions()
    copy = scratch_copy(definitions, vhost, prefix)
    try:
        rabbitmqctl("import_definitions", "--format", "json", stdin=json.dumps(copy))
        ready = Scratch(vhost, prefix, url.hostname or "127.0.0.1", url.port or 5672)
        wait_for_import(ready, copy)
        yield ready
    finally:
        for name in list_names("list_vhosts", "name"):
            if name == vhost:
                rabbitmqctl("delete_vhost", vhost)
        existing = set(list_names("list_users", "user"))
        for user in copy["users"]:
            if user["name"] in existing:
                rabbitmqctl("delete_user", user["name"])


def wait_for_import(scratch: Scratch, copy: dict) -> None:
    """rabbitmqctl may return before the import is done; bindings are the last thing it adds."""
    wanted = {(b["source"], b["destination"], b["routing_key"]) for b in copy["bindings"]}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if scratch.vhost in list_names("list_vhosts", "name") and contract_bindings(scratch) >= wanted:
            return
        time.sleep(0.2)
    raise AssertionError(f"definitions never finished importing into {scratch.vhost}")


def list_names(command: str, column: str) -> list[str]:
    rows = json.loads(rabbitmqctl(command, "--formatter", "json", "-q"))
    return [row[column] for row in rows]


@pytest.fixture
async def connections(scratch: Scratch) -> AsyncIterator[dict[str, AbstractConnection]]:
    """Connections opened by a test, one per user name, closed when it ends."""
    opened: dict[str, AbstractConnection] = {}
    yield opened
    for connection in opened.values():
        await connection.close()


@pytest.fixture
def channel_for(scratch: Scratch, connections: dict[str, AbstractConnection]):
    """A fresh channel (publisher confirms on) on the user's connection."""

    async def open_channel(name: str) -> AbstractChannel:
        if name not in connections:
            connections[name] = await scratch.connect(name)
        return await connections[name].channel(publisher_confirms=True)

    return open_channel


def command(user_id: str, body: dict | None = None) -> aio_pika.Message:
    return aio_pika.Message(
        json.dumps(body or {}).encode(),
        message_id=str(uuid.uuid4()),
        user_id=user_id,
        content_type="application/json",
        delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
    )


async def fetch(channel: AbstractChannel, queue_name: str, message_id: str) -> aio_pika.IncomingMessage:
    """The message with this id from a queue (others are acknowledged and dropped)."""
    queue = await channel.get_queue(queue_name, ensure=False)
    for _ in range(100):
        message = await queue.get(fail=False, no_ack=False)
        if message is None:
            await asyncio.sleep(0.05)
            continue
        await message.ack()
        if message.message_id == message_id:
            return message
    raise AssertionError(f"message {message_id} never reached {queue_name}")


@contextmanager
def refused(what: str) -> Iterator[None]:
    """The broker closes the channel with ACCESS_REFUSED, naming what was refused."""
    with pytest.raises(AccessRefused) as error:
        yield
    text = error.value.args[0]
    assert text.startswith(f"ACCESS_REFUSED - access to {what}"), text


async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """A consumer callback for consumes that the broker must refuse."""


# --- 1. the topology --------------------------------------------------------------------


@pytest.mark.integration
def test_exchanges_are_durable_with_the_contracts_types(scratch: Scratch) -> None:
    rows = json.loads(
        rabbitmqctl(
            "list_exchanges",
            "-p",
            scratch.vhost,
            "name",
            "type",
            "durable",
            "auto_delete",
            "internal",
            "--formatter",
            "json",
            "-q",
        )
    )
    ours = {row["name"]: row for row in rows if row["name"].startswith("casework.")}
    assert {name: row["type"] for name, row in ours.items()} == {
        "casework.commands": "topic",
        "casework.events": "topic",
        "casework.escalations": "topic",
        "casework.dead": "fanout",
        "casework.services": "topic",
    }
    for row in ours.values():
        assert (row["durable"], row["auto_delete"], row["internal"]) == (True, False, False)


@pytest.mark.integration
def test_queues_are_durable_quorum_queues_with_dead_lettering(scratch: Scratch) -> None:
    rows = json.loads(
        rabbitmqctl(
            "list_queues",
            "-p",
            scratch.vhost,
            "name",
            "type",
            "durable",
            "arguments",
            "--formatter",
            "json",
            "-q",
        )
    )
    queues = {row["name"]: row for row in rows if row["name"] in CONTRACT_QUEUES}
    assert set(queues) == set(CONTRACT_QUEUES)
    for row in queues.values():
        assert row["type"] == "quorum"
        assert row["durable"] is True
    for name in ("casework.intake", "casework.escalation", "casework.rewards"):
        assert arguments(queues[name]) == QUORUM_WITH_DEAD_LETTERS, name
    assert arguments(queues["casework.dead"]) == {"x-queue-type": "quorum"}


def arguments(row: dict) -> dict:
    """rabbitmqctl lists a queue's arguments as [name, AMQP type, value] triples."""
    return {name: value for name, _kind, value in row["arguments"]}


def contract_bindings(scratch: Scratch) -> set[tuple[str, str, str]]:
    """(exchange, queue, key) of every binding to the contract's queues (not the default exchange's)."""
    columns = ("source_name", "destination_name", "routing_key")
    rows = json.loads(rabbitmqctl("list_bindings", "-p", scratch.vhost, *columns, "--formatter", "json", "-q"))
    return {
        (row["source_name"], row["destination_name"], row["routing_key"])
        for row in rows
        if row["source_name"] and row["destination_name"] in CONTRACT_QUEUES
    }


@pytest.mark.integration
def test_queues_are_bound_as_the_contract_says(scratch: Scratch) -> None:
    bindings = contract_bindings(scratch)
    assert bindings == {
        ("casework.commands", "casework.intake", "#"),
        ("casework.events", "casework.escalation", "complaint.#"),
        ("casework.events", "casework.rewards", "complaint.#"),
        ("casework.events", "casework.rewards", "surplus.#"),
        ("casework.events", "casework.rewards", "period.#"),
        ("casework.services", "casework.escalation", "complaint.#"),
        ("casework.services", "casework.rewards", "complaint.#"),
        ("casework.services", "casework.rewards", "surplus.#"),
        ("casework.services", "casework.rewards", "period.#"),
        ("casework.dead", "casework.dead", ""),
    }


@pytest.mark.integration
async def test_passive_declares_find_the_topology(scratch: Scratch, channel_for) -> None:
    channel = await channel_for("admin")
    for name in (*TOPIC_EXCHANGES, "casework.dead"):
        await channel.declare_exchange(name, passive=True)
    for name in ("casework.intake", "casework.escalation", "casework.rewards", "casework.dead"):
        await channel.declare_queue(name, passive=True)


# --- 2. branches publish commands for themselves only ------------------------------------


@pytest.mark.integration
async def test_branch_command_with_its_own_user_id_reaches_intake(scratch: Scratch, channel_for) -> None:
    channel = await channel_for("branch-GZ01")
    exchange = await channel.get_exchange("casework.commands", ensure=False)
    message = command(scratch.user("branch-GZ01"), {"branch_id": "GZ01"})

    await exchange.publish(message, routing_key="complaint.receive")  # confirmed

    received = await fetch(await channel_for("admin"), "casework.intake", message.message_id)
    assert received.user_id == scratch.user("branch-GZ01")
    assert received.routing_key == "complaint.receive"


@pytest.mark.integration
async def test_branch_cannot_publish_as_another_branch(scratch: Scratch, channel_for) -> None:
    channel = await channel_for("branch-GZ01")
    exchange = await channel.get_exchange("casework.commands", ensure=False)
    with pytest.raises(PreconditionFailed) as error:
        await exchange.publish(command(scratch.user("branch-SZ02")), routing_key="complaint.receive")
    assert error.value.args[0].startswith("PRECONDITION_FAILED - user_id property set to"), error.value


@pytest.mark.integration
@pytest.mark.parametrize(
    "routing_key",
    ["rewards.settle_period", "rewards.decide_period", "surplus.review", "ledger.credited", ""],
)
async def test_branch_cannot_send_commands_outside_its_role(scratch: Scratch, channel_for, routing_key: str) -> None:
    channel = await channel_for("branch-GZ01")
    exchange = await channel.get_exchange("casework.commands", ensure=False)
    with refused(f"topic '{routing_key}' in exchange 'casework.commands'"):
        await exchange.publish(command(scratch.user("branch-GZ01")), routing_key=routing_key)


@pytest.mark.integration
@pytest.mark.parametrize("exchange_name",
                         ["casework.events", "casework.escalations", "casework.dead", "casework.services", ""])
async def test_branch_cannot_publish_events_notices_or_dead_letters(
    scratch: Scratch, channel_for, exchange_name: str
) -> None:
    channel = await channel_for("branch-GZ01")
    exchange = await channel.get_exchange(exchange_name, ensure=False) if exchange_name else channel.default_exchange
    with refused(f"exchange '{exchange_name or 'amq.default'}'"):
        await exchange.publish(command(scratch.user("branch-GZ01")), routing_key="casework.intake")


# --- 3. branches read nothing but their own ----------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("queue_name", ["casework.intake", "casework.dead", "casework.escalation", "casework.rewards"])
async def test_branch_cannot_consume_service_queues(scratch: Scratch, channel_for, queue_name: str) -> None:
    channel = await channel_for("branch-GZ01")
    queue = await channel.get_queue(queue_name, ensure=False)
    with refused(f"queue '{queue_name}'"):
        await queue.consume(ignore)


@pytest.mark.integration
async def test_branch_reads_its_own_outcomes_and_escalations(scratch: Scratch, channel_for) -> None:
    me = scratch.user("branch-GZ01")
    channel = await channel_for("branch-GZ01")
    queue = await channel.declare_queue(f"casework.client.{me}.outcomes", durable=True)
    await queue.bind("casework.events", routing_key=f"command.*.{me}")
    await queue.bind("casework.escalations", routing_key="branch.GZ01")
    await queue.bind("casework.escalations", routing_key="warning.GZ01")
    server_named = await channel.declare_queue(exclusive=True)
    assert server_named.name.startswith("amq.gen-")
    await server_named.bind("casework.events", routing_key=f"command.accepted.{me}")

    intake = await channel_for("svc-intake")
    events = await intake.get_exchange("casework.events", ensure=False)
    outcome = command(scratch.user("svc-intake"), {"status": "accepted"})
    await events.publish(outcome, routing_key=f"command.accepted.{me}")

    received = await fetch(await channel_for("branch-GZ01"), queue.name, outcome.message_id)
    assert received.user_id == scratch.user("svc-intake")


@pytest.mark.integration
@pytest.mark.parametrize(
    ("exchange", "routing_key"),
    [
        ("casework.events", "command.*.{other}"),
        ("casework.events", "command.#"),
        ("casework.events", "#"),
        ("casework.events", "complaint.escalated.SZ02"),
        ("casework.escalations", "branch.SZ02"),
        ("casework.escalations", "warning.*"),
        ("casework.escalations", "hq.claims"),
        ("casework.escalations", "#"),
    ],
)
async def test_branch_cannot_bind_to_what_others_receive(
    scratch: Scratch, channel_for, exchange: str, routing_key: str
) -> None:
    channel = await channel_for("branch-GZ01")
    queue = await channel.declare_queue(exclusive=True)
    key = routing_key.format(other=scratch.user("branch-SZ02"))
    with refused(f"topic '{key}' in exchange '{exchange}'"):
        await queue.bind(exchange, routing_key=key)


@pytest.mark.integration
@pytest.mark.parametrize("user", ["branch-GZ01", "hq-warehousing", "regional-south"])
async def test_only_the_services_queues_bind_to_casework_services(scratch: Scratch, channel_for, user: str) -> None:
    """What the relay sends there reaches casework's own services only: nobody else listens in."""
    channel = await channel_for(user)
    queue = await channel.declare_queue(exclusive=True)
    with refused("exchange 'casework.services'"):
        await queue.bind("casework.services", routing_key="complaint.#")


@pytest.mark.integration
async def test_branch_cannot_declare_queues_named_for_another_user(scratch: Scratch, channel_for) -> None:
    channel = await channel_for("branch-GZ01")
    name = f"casework.client.{scratch.user('branch-SZ02')}.x"
    with refused(f"queue '{name}'"):
        await channel.declare_queue(name, durable=True)


# --- 4. HQ departments read only their own escalations -----------------------------------


@pytest.mark.integration
async def test_hq_department_subscribes_to_its_own_escalations(scratch: Scratch, channel_for) -> None:
    me = scratch.user("hq-warehousing")
    channel = await channel_for("hq-warehousing")
    queue = await channel.declare_queue(f"casework.sub.{me}.main", durable=True, arguments={"x-queue-type": "quorum"})
    await queue.bind("casework.escalations", routing_key="hq.warehousing")

    intake = await channel_for("svc-intake")
    escalations = await intake.get_exchange("casework.escalations", ensure=False)
    notice = command(scratch.user("svc-intake"), {"level": "hq", "department": "warehousing"})
    await escalations.publish(notice, routing_key="hq.warehousing")

    received = await fetch(await channel_for("hq-warehousing"), queue.name, notice.message_id)
    assert received.routing_key == "hq.warehousing"


@pytest.mark.integration
async def test_hq_department_cannot_bind_to_another_departments_escalations(scratch: Scratch, channel_for) -> None:
    me = scratch.user("hq-warehousing")
    channel = await channel_for("hq-warehousing")
    queue = await channel.declare_queue(f"casework.sub.{me}.snoop", durable=True)
    with refused("topic 'hq.claims' in exchange 'casework.escalations'"):
        await queue.bind("casework.escalations", routing_key="hq.claims")


@pytest.mark.integration
async def test_hq_department_cannot_declare_a_queue_named_for_another(scratch: Scratch, channel_for) -> None:
    channel = await channel_for("hq-warehousing")
    name = f"casework.sub.{scratch.user('hq-claims')}.x"
    with refused(f"queue '{name}'"):
        await channel.declare_queue(name, durable=True)


@pytest.mark.integration
async def test_hq_department_cannot_consume_another_departments_queue(scratch: Scratch, channel_for) -> None:
    claims = await channel_for("hq-claims")
    theirs = await claims.declare_queue(f"casework.sub.{scratch.user('hq-claims')}.main", durable=True)
    await theirs.bind("casework.escalations", routing_key="hq.claims")

    channel = await channel_for("hq-warehousing")
    queue = await channel.get_queue(theirs.name, ensure=False)
    with refused(f"queue '{theirs.name}'"):
        await queue.consume(ignore)


@pytest.mark.integration
async def test_regional_office_binds_only_its_own_region(scratch: Scratch, channel_for) -> None:
    me = scratch.user("regional-south")
    channel = await channel_for("regional-south")
    queue = await channel.declare_queue(f"casework.sub.{me}.main", durable=True)
    await queue.bind("casework.escalations", routing_key="regional.south")
    with refused("topic 'regional.east' in exchange 'casework.escalations'"):
        await queue.bind("casework.escalations", routing_key="regional.east")


# --- 5. the escalation service sends complaint.escalate and nothing else ------------------


@pytest.mark.integration
async def test_escalation_service_sends_complaint_escalate(scratch: Scratch, channel_for) -> None:
    channel = await channel_for("svc-escalation")
    exchange = await channel.get_exchange("casework.commands", ensure=False)
    message = command(scratch.user("svc-escalation"), {"level": "regional"})

    await exchange.publish(message, routing_key="complaint.escalate")

    received = await fetch(await channel_for("admin"), "casework.intake", message.message_id)
    assert received.user_id == scratch.user("svc-escalation")


@pytest.mark.integration
@pytest.mark.parametrize("routing_key", ["complaint.close", "complaint.receive", "rewards.settle_period"])
async def test_escalation_service_cannot_send_other_commands(scratch: Scratch, channel_for, routing_key: str) -> None:
    channel = await channel_for("svc-escalation")
    exchange = await channel.get_exchange("casework.commands", ensure=False)
    with refused(f"topic '{routing_key}' in exchange 'casework.commands'"):
        await exchange.publish(command(scratch.user("svc-escalation")), routing_key=routing_key)


# --- the services' own working rights ------------------------------------------------------


@pytest.mark.integration
async def test_intake_replies_through_the_default_exchange(scratch: Scratch, channel_for) -> None:
    branch = await channel_for("branch-GZ01")
    reply_queue = await branch.declare_queue(exclusive=True)

    intake = await channel_for("svc-intake")
    reply = command(scratch.user("svc-intake"), {"status": "accepted"})
    await intake.default_exchange.publish(reply, routing_key=reply_queue.name)

    received = await fetch(branch, reply_queue.name, reply.message_id)
    assert received.user_id == scratch.user("svc-intake")


@pytest.mark.integration
async def test_branch_gets_its_reply_through_direct_reply_to(scratch: Scratch, channel_for) -> None:
    branch = await channel_for("branch-GZ01")
    replies: asyncio.Future[aio_pika.abc.AbstractIncomingMessage] = asyncio.get_running_loop().create_future()

    async def on_reply(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        replies.set_result(message)

    pseudo_queue = await branch.get_queue("amq.rabbitmq.reply-to", ensure=False)
    await pseudo_queue.consume(on_reply, no_ack=True)
    request = command(scratch.user("branch-GZ01"))
    request.reply_to = "amq.rabbitmq.reply-to"
    commands = await branch.get_exchange("casework.commands", ensure=False)
    await commands.publish(request, routing_key="complaint.receive")
    received = await fetch(await channel_for("admin"), "casework.intake", request.message_id)

    intake = await channel_for("svc-intake")
    reply = command(scratch.user("svc-intake"), {"status": "accepted"})
    await intake.default_exchange.publish(reply, routing_key=received.reply_to)

    assert (await asyncio.wait_for(replies, 5)).message_id == reply.message_id


@pytest.mark.integration
@pytest.mark.parametrize("service", ["intake", "escalation", "rewards"])
async def test_services_redeclare_their_own_topology(scratch: Scratch, service: str) -> None:
    """What each service declares at start-up (shared.topology.declare) its own user may declare."""
    from shared.broker import make_broker
    from shared.topology import declare

    user = f"svc-{service}"
    broker = make_broker(f"amqp://{scratch.user(user)}:{user}@{scratch.host}:{scratch.port}/{scratch.vhost}")
    await broker.connect()
    try:
        await declare(broker, service)
    finally:
        await broker.stop()


@pytest.mark.integration
async def test_intake_declares_the_contract_topology_at_start_up(scratch: Scratch) -> None:
    """What intake's start-up runs (shared.topology.declare) works as svc-intake and adds nothing."""
    from shared.broker import make_broker
    from shared.topology import declare

    broker = make_broker(
        f"amqp://{scratch.user('svc-intake')}:svc-intake@{scratch.host}:{scratch.port}/{scratch.vhost}"
    )
    await broker.connect()
    try:
        await declare(broker)
    finally:
        await broker.stop()
    defined = {(b["source"], b["destination"], b["routing_key"]) for b in load_definitions()["bindings"]}
    assert contract_bindings(scratch) == defined


@pytest.mark.integration
@pytest.mark.parametrize("queue_name", ["casework.escalation", "casework.rewards"])
async def test_intake_cannot_consume_the_other_services_queues(scratch: Scratch, channel_for, queue_name: str) -> None:
    channel = await channel_for("svc-intake")
    queue = await channel.get_queue(queue_name, ensure=False)
    with refused(f"queue '{queue_name}'"):
        await queue.consume(ignore)


@pytest.mark.integration
@pytest.mark.parametrize(
    ("user", "exchange", "routing_key", "refusal"),
    [
        ("svc-intake", "casework.commands", "complaint.escalate", "exchange"),
        ("svc-intake", "casework.escalations", "warning.GZ01", "topic"),
        ("svc-intake", "casework.events", "ledger.credited.GZ01", "topic"),
        ("svc-escalation", "casework.escalations", "hq.claims", "topic"),
        ("svc-escalation", "casework.events", "complaint.escalated.GZ01", "exchange"),
        ("svc-rewards", "casework.events", "complaint.closed.GZ01", "topic"),
        ("svc-rewards", "casework.commands", "rewards.settle_period", "exchange"),
    ],
)
async def test_services_cannot_publish_for_one_another(
    scratch: Scratch, channel_for, user: str, exchange: str, routing_key: str, refusal: str
) -> None:
    """Refused by the exchange permission where a service has none, else by the routing key."""
    channel = await channel_for(user)
    target = await channel.get_exchange(exchange, ensure=False)
    what = f"exchange '{exchange}'" if refusal == "exchange" else f"topic '{routing_key}' in exchange '{exchange}'"
    with refused(what):
        await target.publish(command(scratch.user(user)), routing_key=routing_key)


@pytest.mark.integration
async def test_intake_service_runs_as_svc_intake_and_answers_a_branch(
        scratch: Scratch, channel_for, database_url: str) -> None:
    """The service itself under its least-privilege user: declares, consumes, records and relays."""
    from casework.settings import Settings
    from services.intake.main import IntakeService
    from shared.policy import load_policy
    from tests.support.live import complaint_body, get_one, running

    policy = load_policy()
    policy = policy.model_copy(update={"users": {scratch.user(u): p for u, p in policy.users.items()}})
    me = scratch.user("branch-GZ01")
    branch = await channel_for("branch-GZ01")
    answers = await branch.declare_queue(exclusive=True)
    await answers.bind("casework.events", routing_key=f"command.*.{me}")
    url = f"amqp://{scratch.user('svc-intake')}:svc-intake@{scratch.host}:{scratch.port}/{scratch.vhost}"
    settings = Settings(amqp_url=url, database_url=database_url)
    sent = command(me, complaint_body(case_ref="LEAST-PRIVILEGE-1"))
    async with running(lambda: IntakeService(settings, policy)):
        commands = await branch.get_exchange("casework.commands", ensure=False)
        await commands.publish(sent, routing_key="complaint.receive")
        while True:  # other tests of this module leave commands in the shared queue
            outcome = json.loads((await get_one(answers, timeout=30)).body)
            if outcome["command_id"] == sent.message_id:
                break
    assert outcome["status"] == "accepted", outcome
