"""The demo's two brokers: FastStream's in-process TestRabbitBroker, or a real RabbitMQ."""

from __future__ import annotations

import contextlib
import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import unquote, urlsplit

import aio_pika
from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.rabbit.testing import TestRabbitBroker

from casework.settings import Settings
from shared.broker import make_broker
from shared.publishing import BrokerPublisher, RelayPublisher
from shared.topology import COMMANDS, DEAD, ESCALATIONS, EVENTS, bound, declare

if TYPE_CHECKING:
    from casework.demo_world import World
    from services.escalation.main import EscalationService
    from services.intake.main import IntakeService
    from services.rewards.main import RewardsService

EXCHANGES = (COMMANDS, EVENTS, ESCALATIONS, DEAD)
QUEUES = ("casework.intake", "casework.escalation", "casework.rewards")


class BrokerInUse(RuntimeError):
    """Raised when casework's queues on the given broker already have consumers or messages."""


@dataclass
class Delivery:
    """A message as a queue hands it to its consumer in process: acknowledgements go nowhere."""

    routing_key: str
    body: bytes
    message_id: str | None
    headers: dict[str, Any]
    content_type: str | None
    channel: object = field(default_factory=object)

    async def ack(self, multiple: bool = False) -> None:
        return None

    async def reject(self, requeue: bool = False) -> None:
        return None


def copy(delivery: Any) -> Delivery:
    return Delivery(delivery.routing_key or "", delivery.body, delivery.message_id, dict(delivery.headers or {}),
                    delivery.content_type)


class InProcess:
    """One RabbitBroker under TestRabbitBroker for all three services; the contract's bindings applied here."""

    description = "in-process broker (FastStream's TestRabbitBroker): nothing to install"
    identity = "each actor publishes as the RabbitMQ user the policy knows it by (branch-GZ01, hq-warehousing, …)"
    # Publishing delivers before it returns: every counter is current when read.
    calm = 2
    interval = 0.005

    def __init__(self) -> None:
        self.broker = RabbitBroker(log_level=logging.DEBUG)
        self.stack = contextlib.AsyncExitStack()
        self.world: World | None = None

    def settings(self, database_url: str) -> Settings:
        # The URLs are never dialled in process; the escalation and rewards services read their
        # RabbitMQ user from them, as they would from their own logins.
        return Settings(amqp_url="amqp://svc-intake@in-process/", database_url=database_url,
                        escalation_amqp_url="amqp://svc-escalation@in-process/",
                        rewards_amqp_url="amqp://svc-rewards@in-process/", relay_poll_seconds=0.05)

    def relay_publisher(self) -> RelayPublisher | None:
        return BrokerPublisher(self.broker)

    def speaker(self, user: str) -> str:
        """Nothing checks user_id in process: each actor speaks as its own user."""
        return user

    def services(self, world: World) -> tuple[IntakeService, EscalationService, RewardsService]:
        self.world = world
        for exchange in EXCHANGES:
            self._observe(exchange.name)
        return world.build(self.settings(world.database_url), self.broker, self.relay_publisher())

    def _observe(self, exchange: str) -> None:
        """A subscriber with `#` on each exchange; events also go on to the queues bound to them."""
        source = next(e for e in EXCHANGES if e.name == exchange)
        queue = RabbitQueue(f"casework.demo.{exchange}", routing_key="" if exchange == DEAD.name else "#")

        async def raw(message: Any) -> Any:
            return message.raw_message

        @self.broker.subscriber(queue, source, decoder=raw, no_reply=True)
        async def heard(delivery: Any) -> None:
            world = self.world
            assert world is not None
            key = delivery.routing_key or ""
            world.observer.record(exchange, key, delivery.message_id, delivery.body)
            if exchange != EVENTS.name:
                return
            # TestRabbitBroker routes only to subscribers declared on the exchange itself;
            # the service queues are bound by `declare`, which it does not play.
            if bound("escalation", exchange, key) and world.escalation.consumer is not None:
                await world.escalation.consumer.receive(cast(Any, copy(delivery)))
            if bound("rewards", exchange, key):
                await world.rewards.consumer.receive(cast(Any, copy(delivery)))

    async def open(self, world: World) -> None:
        await self.stack.enter_async_context(TestRabbitBroker(self.broker))

    async def send(self, routing_key: str, body: dict[str, Any], message_id: str, user: str,
                   at: datetime) -> None:
        await self.broker.publish(json.dumps(body, ensure_ascii=False).encode(), exchange=COMMANDS,
                                  routing_key=routing_key, message_id=message_id, user_id=user,
                                  content_type="application/json", persist=True, timestamp=at)

    async def backlog(self) -> int:
        return 0

    async def close(self) -> None:
        await self.stack.aclose()


class Rabbit:
    """A real RabbitMQ: the services connect as `casework run` would; the observer taps every exchange."""

    calm = 3
    interval = 0.01

    def __init__(self, amqp_url: str) -> None:
        self.url = amqp_url
        self.user = unquote(urlsplit(amqp_url).username or "guest")
        parts = urlsplit(amqp_url)
        self.description = f"RabbitMQ at {parts.hostname}:{parts.port or 5672}, vhost {unquote(parts.path[1:]) or '/'}"
        self.identity = (f"RabbitMQ lets a login send only its own user_id, so every actor publishes as {self.user!r} "
                         "(admin in the demo policy); the story still names who acts")
        self.connection: aio_pika.abc.AbstractConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None

    def settings(self, database_url: str) -> Settings:
        # Every service on the given broker, whatever CASEWORK_*_AMQP_URL the shell holds.
        return Settings(amqp_url=self.url, intake_amqp_url=self.url, escalation_amqp_url=self.url,
                        rewards_amqp_url=self.url, database_url=database_url, relay_poll_seconds=0.05)

    def relay_publisher(self) -> RelayPublisher | None:
        return None

    def speaker(self, user: str) -> str:
        """RabbitMQ validates user_id against the login: every actor speaks as the login."""
        return self.user

    def services(self, world: World) -> tuple[IntakeService, EscalationService, RewardsService]:
        return world.build(self.settings(world.database_url))

    async def open(self, world: World) -> None:
        self.connection = await aio_pika.connect(self.url)
        await self._check_unused()
        broker = make_broker(self.url)
        await broker.connect()
        try:
            await declare(broker)
        finally:
            await broker.stop()
        self.channel = await self.connection.channel(publisher_confirms=True)
        for exchange in EXCHANGES:
            tap = await self.channel.declare_queue(exclusive=True, auto_delete=True)
            await tap.bind(exchange.name, routing_key="" if exchange is DEAD else "#")
            await tap.consume(self._recorder(world, exchange.name), no_ack=True)

    @staticmethod
    def _recorder(world: World, exchange: str) -> Any:
        async def record(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            world.observer.record(exchange, message.routing_key or "", message.message_id, message.body)
        return record

    async def _check_unused(self) -> None:
        """Another casework on this vhost would take the demo's commands: refuse, before declaring anything."""
        assert self.connection is not None
        for name in QUEUES:
            # A passive declaration of a missing queue closes its channel: one channel per look.
            channel = await self.connection.channel()
            try:
                queue = await channel.declare_queue(name, passive=True)
            except aio_pika.exceptions.ChannelClosed:
                continue
            result = queue.declaration_result
            await channel.close()
            if result.consumer_count or result.message_count:
                raise BrokerInUse(
                    f"queue {name} has {result.consumer_count} consumers and {result.message_count} messages: "
                    "another casework uses this vhost. Give the demo a vhost of its own, e.g. "
                    "`rabbitmqctl add_vhost casework-demo && rabbitmqctl set_permissions -p casework-demo "
                    f"{self.user} '.*' '.*' '.*'` and --amqp-url amqp://…/casework-demo")

    async def send(self, routing_key: str, body: dict[str, Any], message_id: str, user: str,
                   at: datetime) -> None:
        assert self.channel is not None
        exchange = await self.channel.get_exchange(COMMANDS.name, ensure=False)
        # RabbitMQ accepts only the login's own user_id: every actor speaks as that login here.
        await exchange.publish(aio_pika.Message(
            json.dumps(body, ensure_ascii=False).encode(), message_id=message_id, user_id=self.user,
            content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT, timestamp=at,
        ), routing_key=routing_key)

    async def backlog(self) -> int:
        """Messages ready in the services' queues (those taken but unacked are in the consumers)."""
        assert self.channel is not None
        total = 0
        for name in QUEUES:
            queue = await self.channel.declare_queue(name, passive=True)
            total += queue.declaration_result.message_count or 0
        return total

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
