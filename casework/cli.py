"""The `casework` command line."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
import uuid
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit, urlunsplit

import typer
from rich.console import Console
from rich.markup import escape
from typer.core import TyperGroup

from casework.groups import command_group
from casework.settings import Settings


class Casework(TyperGroup):
    """The root command: a failure the person can act on ends in one `error:` line and its exit code."""

    def invoke(self, ctx: Any) -> Any:  # click's Context, vendored by typer
        try:
            return super().invoke(ctx)
        except Exception as error:
            from casework.failures import explain

            known = explain(error)
            if known is None:
                raise
            fail(*known)
            raise


class SaidOnce(logging.Filter):
    """aiormq logs a failed connect at ERROR and raises it as well; the one who catches it (a
    command's `error:` line, a robust connection's retry) says it, so the log line is dropped."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("error when creating transport")


logging.getLogger("aiormq.connection").addFilter(SaidOnce())

app = command_group("casework: complaint cases on RabbitMQ.", cls=Casework, add_completion=False)
subscribe_app = command_group("Tail what casework publishes.")
app.add_typer(subscribe_app, name="subscribe")
console = Console()
err = Console(stderr=True)


def fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def settings() -> Settings:
    from casework.settings import ConfigurationError, load

    try:
        return load(Settings)
    except ConfigurationError as error:
        fail(f"configuration: {error}")
        raise


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@app.command()
def run(
    only: Annotated[str, typer.Option(help="Comma-separated: intake, relay (intake's relay apart), "
                                            "escalation, rewards.")] = "intake,escalation,rewards",
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Run the services until SIGINT or SIGTERM, then let the work in hand finish.

    On a stop signal they stop consuming; the batch in hand commits and its events go out, for
    up to CASEWORK_STOP_GRACE_SECONDS (10 s by default)."""
    from casework.runtime import SERVICES
    from casework.runtime import run as run_services

    names = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in names if n not in SERVICES]
    if unknown or not names:
        fail(f"unknown service(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(SERVICES)}")
    configure_logging(verbose)
    config = settings()
    try:
        config.load_policy()
    except ValueError as error:
        fail(str(error))
    asyncio.run(run_services(names, config))


@app.command()
def topology() -> None:
    """Declare the exchanges, queues and bindings of the contract (idempotent)."""
    from urllib.parse import unquote, urlsplit

    from shared.broker import make_broker
    from shared.topology import declare

    url = settings().amqp_url

    async def go() -> tuple[list[str], list[str]]:
        broker = make_broker(url)
        async with broker:
            await broker.connect()
            return await declare(broker)

    exchanges, queues = asyncio.run(go())
    where = urlsplit(url)
    console.print(f"declared on {where.hostname}:{where.port or 5672}, vhost {unquote(where.path[1:]) or '/'}:\n"
                  f"  exchanges {', '.join(exchanges)}\n  queues {', '.join(queues)}, with their bindings")


def url_as(url: str, user: str | None, password: str | None) -> str:
    """The broker URL, logged in as another user (whose name the broker then validates)."""
    if not user:
        return url
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(user, safe='')}:{quote(password if password is not None else user, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@app.command()
def publish(
    routing_key: Annotated[str, typer.Argument(help="The command, e.g. complaint.receive.")],
    body: Annotated[str, typer.Option("--json", help="The command body as JSON, or @FILE.")],
    user: Annotated[str | None, typer.Option(help="Connect and speak as this RabbitMQ user.")] = None,
    password: Annotated[str | None, typer.Option(
        envvar="CASEWORK_PASSWORD",
        help="Its password (default: the user's name, as every development user in deploy/ has).")] = None,
    message_id: Annotated[str | None, typer.Option(help="Idempotency key (default: a new UUID).")] = None,
    wait: Annotated[bool, typer.Option(help="Wait for the outcome and print it.")] = False,
    timeout: Annotated[float, typer.Option(help="Seconds to wait for the outcome.")] = 30.0,
) -> None:
    """Publish one command with publisher confirms (and print its outcome with --wait)."""
    import aio_pika

    from shared.events import COMMANDS

    if routing_key not in COMMANDS:
        fail(f"unknown command {routing_key!r}; intake takes {', '.join(sorted(COMMANDS))}")
    try:
        text = Path(body[1:]).read_text() if body.startswith("@") else body
    except (OSError, UnicodeDecodeError) as error:
        fail(f"--json {body}: {getattr(error, 'strerror', None) or error}")
    try:
        json.loads(text)
    except json.JSONDecodeError as error:
        fail(f"--json is not JSON: {error}")
    url = url_as(settings().amqp_url, user, password)
    speaker = urlsplit(url).username or "guest"

    async def go() -> int:
        connection = await aio_pika.connect(url)
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            reply = await channel.declare_queue(exclusive=True) if wait else None
            exchange = await channel.get_exchange("casework.commands", ensure=False)
            mid = message_id or str(uuid.uuid4())
            await exchange.publish(aio_pika.Message(
                text.encode(), message_id=mid, user_id=speaker, content_type="application/json",
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT, reply_to=reply.name if reply else None,
                correlation_id=mid, timestamp=None), routing_key=routing_key)
            if reply is None:
                console.print(f"published {routing_key} as {speaker} (message_id {mid})")
                return 0
            async with reply.iterator(timeout=timeout) as messages:
                async for message in messages:
                    await message.ack()
                    outcome = json.loads(message.body)
                    console.print_json(data=outcome)
                    return 0 if outcome.get("status") in ("accepted", "duplicate") else 1
            return 1

    try:
        code = asyncio.run(go())
    except TimeoutError:
        fail(f"no outcome within {timeout:.0f}s: is `casework run` running?", code=3)
    except Exception as error:
        from casework.failures import explain

        fail(*(explain(error) or (f"{type(error).__name__}: {error}", 3)))
    raise typer.Exit(code)


@app.command()
def contract(
    asyncapi: Annotated[bool, typer.Option(
        "--asyncapi", help="The AsyncAPI document (the only format; the default).")] = True,
    output: Annotated[Path | None, typer.Option("-o", help="Write it to this file.")] = None,
) -> None:
    """The AsyncAPI document generated from the services' FastStream routers."""
    from casework.asyncapi import asyncapi_document

    document = json.dumps(asyncapi_document(), indent=2, ensure_ascii=False, sort_keys=True) + "\n"  # stable diffs
    if output:
        output.write_text(document)
        console.print(f"wrote {output}")
    else:
        sys.stdout.write(document)


@subscribe_app.command("escalations")
def subscribe_escalations(
    binding: Annotated[str, typer.Argument(help="e.g. hq.warehousing, regional.south, branch.GZ01")],
    queue: Annotated[str | None, typer.Option(help="Durable queue (default `casework.sub.<user>.<binding>`).")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
    user: Annotated[str | None, typer.Option(help="Connect as this RabbitMQ user.")] = None,
    password: Annotated[str | None, typer.Option(
        envvar="CASEWORK_PASSWORD",
        help="Its password (default: the user's name, as every development user in deploy/ has).")] = None,
    limit: Annotated[int, typer.Option(help="Stop after this many notices (0: never).")] = 0,
) -> None:
    """Tail escalation notices from a durable named queue, so nothing is missed while offline."""
    import aio_pika

    url = url_as(settings().amqp_url, user, password)
    who = urlsplit(url).username or "guest"
    name = queue or f"casework.sub.{who}.{binding}"

    async def go() -> None:
        connection = await aio_pika.connect_robust(url)
        async with connection:
            channel = await connection.channel()
            await channel.set_qos(prefetch_count=100)
            declared = await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
            await declared.bind("casework.escalations", routing_key=binding)
            err.print(f"listening on {name} ({binding}); Ctrl-C to stop")
            seen = 0
            async with declared.iterator() as messages:
                async for message in messages:
                    notice = json.loads(message.body)
                    if as_json:
                        sys.stdout.write(json.dumps(notice, ensure_ascii=False) + "\n")
                        sys.stdout.flush()
                    else:
                        reason = notice.get("reason")
                        if isinstance(reason, dict):
                            reason = f"{reason['stage']} overdue {reason['overdue_seconds']}s (due {reason['due_at']})"
                        holder = notice.get("owner") or notice.get("owner_branch")
                        held = f", held by {holder}" if holder else ""
                        if notice.get("owner") and notice.get("owner_branch"):
                            held += f" ({notice['owner_branch']})"
                        console.print(f"{notice.get('escalated_at', notice.get('warned_at', ''))[:19]} "
                                      f"[bold]{message.routing_key}[/bold] case {notice.get('case_ref')} "
                                      f"({notice.get('branch_id')}, {notice.get('category', '')}{held}): "
                                      f"{reason or ''}")
                    await message.ack()
                    seen += 1
                    if limit and seen >= limit:
                        return

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(go())


@app.command()
def demo(
    amqp_url: Annotated[str | None, typer.Option(help="Play it through this RabbitMQ instead of in process.")] = None,
    database_url: Annotated[str | None, typer.Option(help="Play it on this store instead of a scratch SQLite.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the story's key facts as JSON at the end.")] = False,
) -> None:
    """The whole handbook story in one process: three days of complaints, escalations and rewards in seconds."""
    from casework.demo import run_demo

    raise typer.Exit(run_demo(amqp_url=amqp_url, database_url=database_url, as_json=as_json))


def mount() -> None:
    """Each part of the product brings its own sub-commands."""
    from casework.audit_cli import audit_app
    from casework.dead_cli import dead_app
    from casework.replay_cli import replay_app
    from services.escalation.cli import escalation_app
    from services.rewards.cli import rewards_app

    app.add_typer(audit_app, name="audit")
    app.add_typer(escalation_app, name="escalation")
    app.add_typer(rewards_app, name="rewards")
    app.add_typer(replay_app, name="replay")
    app.add_typer(dead_app, name="dead")


def main() -> None:
    mount()
    app()
