"""Publishes the service's effects with confirms, persistent, as its own validated RabbitMQ user."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

from faststream.rabbit import RabbitBroker
from pamqp.commands import Basic

from services.escalation.clock import Clock
from services.escalation.domain import Effect
from services.escalation.translate import outgoing


class PublishRefused(RuntimeError):
    """Raised when the broker nacks a message; the clock is then not recorded and fires again."""


def user_of(amqp_url: str) -> str:
    return unquote(urlsplit(amqp_url).username or "guest")


class EffectPublisher:
    """complaint.escalate to casework.commands, warnings to casework.escalations."""

    def __init__(self, broker: RabbitBroker, user_id: str, clock: Clock) -> None:
        self.broker = broker
        self.user_id = user_id
        self.clock = clock

    async def __call__(self, effect: Effect) -> None:
        message = outgoing(effect)
        confirm = await self.broker.publish(
            message.body, exchange=message.exchange, routing_key=message.routing_key,
            message_id=message.message_id, user_id=self.user_id, persist=True,
            content_type="application/json",
            # A command must reach intake's queue; a warning nobody subscribed to may go nowhere.
            mandatory=message.exchange == "casework.commands",
            # Intake dates the escalation by this timestamp; the service's clock, not the host's.
            timestamp=self.clock(),
        )
        if isinstance(confirm, Basic.Nack):
            raise PublishRefused(f"broker refused {message.message_id}")
