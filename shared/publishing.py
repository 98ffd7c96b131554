"""What the relays send and how: messages as the contract has them, and the publishers that
write a page of them to RabbitMQ (or an in-process broker) and report the broker's confirms."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import aio_pika
import aiormq
import orjson
from aiormq.abc import ChannelFrame
from faststream.rabbit import RabbitBroker
from pamqp.body import ContentBody
from pamqp.commands import Basic
from pamqp.header import ContentHeader

from shared.chain import own_fields


@dataclass(frozen=True)
class Outgoing:
    """One message to publish: where, with which key and id, and the JSON body."""

    exchange: str
    routing_key: str
    message_id: str
    body: bytes
    headers: dict[str, Any] = field(default_factory=dict)
    correlation_id: str | None = None


Translate = Callable[[Any, int], list[Outgoing]]


class Refused(RuntimeError):
    """The broker nacked these messages: a queue they were routed to refused them (full,
    `x-overflow: reject-publish`). Every other queue they were routed to took them."""

    def __init__(self, messages: Sequence[Outgoing]) -> None:
        named = ", ".join(f"{m.message_id} on {m.routing_key}" for m in messages[:3])
        more = f" and {len(messages) - 3} more" if len(messages) > 3 else ""
        super().__init__(f"broker refused {named}{more}")
        self.messages = list(messages)


def dumps(document: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON; anything JSON has no type for is written as its str()."""
    return orjson.dumps(document, default=str, option=orjson.OPT_PASSTHROUGH_DATETIME)


def event_envelope(event: Any, event_type: str) -> dict[str, Any]:
    """A recorded chained event as the contract publishes it: the envelope, then its own fields."""
    return {
        "schema_version": 1,
        "stream_id": str(event.originator_id),
        "version": event.originator_version,
        "event": event_type,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.timestamp.isoformat(),
        "branch_id": getattr(event, "branch_id", "HQ"),
        "hash": event.hash,
        "prev_hash": event.prev_hash,
        **{k: v for k, v in own_fields(event).items() if k != "branch_id"},
    }


def event_message(body: dict[str, Any], position: int, exchange: str = "casework.events") -> Outgoing:
    """`<stream>.<event>.<branch_id>` with message id `<stream_id>:<version>` and the contract's headers."""
    headers = {"x-casework-position": position, "x-casework-stream": body["stream_id"],
               "x-casework-version": body["version"]}
    return Outgoing(exchange, f"{body['event']}.{body['branch_id']}", f"{body['stream_id']}:{body['version']}",
                    dumps(body), headers)


class RelayPublisher(Protocol):
    """Where the relay sends messages.

    `send_page` hands a page to the broker, after every page sent before it, and returns
    what to await for the broker's confirmation of all of it (which raises if any was
    refused); the relay sends the next page meanwhile.
    """

    async def send_page(self, messages: Sequence[Outgoing]) -> Awaitable[None]: ...

    async def close(self) -> None: ...


class AmqpPublisher:
    """Publishes a page of messages as one write on its own connection, then awaits every confirm.

    aiormq's `basic_publish` takes the channel lock, two context managers, a queue slot and
    a task per message: most of the relay's time. Here the page's frames go out under the
    lock at once, each with the delivery tag and confirmation future that aiormq's own
    confirm handling settles, exactly as `basic_publish` registers them (aiormq is pinned
    to the minor version this follows). `mandatory` is off: an event nobody subscribed to
    is not an error, and a returned copy of each cost the relay and the broker work.
    """

    def __init__(self, amqp_url: str, user_id: str | None = None) -> None:
        self.amqp_url = amqp_url
        self.user_id = user_id  # when set, the broker checks it against the connection's login
        self.connection: aio_pika.abc.AbstractRobustConnection | None = None
        self.channel: aio_pika.abc.AbstractChannel | None = None

    async def _underlay(self) -> aiormq.Channel:
        if self.connection is None:
            self.connection = await aio_pika.connect_robust(self.amqp_url, reconnect_interval=1.0)
        if self.channel is None:
            self.channel = await self.connection.channel(publisher_confirms=True)
        # After a reconnect the robust channel sits on a new aiormq channel: ask every time.
        return cast(aiormq.Channel, await self.channel.get_underlay_channel())

    async def publish_page(self, messages: Sequence[Outgoing]) -> None:
        """Send a page and wait until the broker confirmed all of it."""
        await (await self.send_page(messages))

    async def send_page(self, messages: Sequence[Outgoing]) -> Awaitable[None]:
        channel = await self._underlay()
        confirmations: list[asyncio.Future[Any]] = []
        async with channel.lock:
            first = channel.delivery_tag
            try:
                frames: list[Any] = []
                for message in messages:
                    channel.delivery_tag += 1
                    confirmation = channel.create_future()
                    channel.confirmations[channel.delivery_tag] = confirmation
                    confirmations.append(confirmation)
                    frames.append(Basic.Publish(exchange=message.exchange, routing_key=message.routing_key))
                    frames.append(ContentHeader(body_size=len(message.body), properties=Basic.Properties(
                        message_id=message.message_id, headers=message.headers, content_type="application/json",
                        delivery_mode=2, correlation_id=message.correlation_id, user_id=self.user_id)))
                    frames.extend(ContentBody(message.body[i:i + channel.max_content_size])
                                  for i in range(0, len(message.body), channel.max_content_size))
                await channel.write_queue.put(ChannelFrame.marshall(channel.number, frames))
            except BaseException:
                # Nothing was written: give the tags back so the broker's numbering still matches.
                for tag in range(first + 1, channel.delivery_tag + 1):
                    channel.confirmations.pop(tag, None)
                channel.delivery_tag = first
                for confirmation in confirmations:
                    confirmation.cancel()
                raise
        return asyncio.ensure_future(self._confirmed(messages, confirmations))

    @staticmethod
    async def _confirmed(messages: Sequence[Outgoing], confirmations: list[asyncio.Future[Any]]) -> None:
        # aiormq settles a nacked message's future with DeliveryError; anything else (a closed
        # channel, say) is raised as it is.
        confirms = await asyncio.gather(*confirmations, return_exceptions=True)
        for confirm in confirms:
            if isinstance(confirm, BaseException) and not isinstance(confirm, aiormq.exceptions.DeliveryError):
                raise confirm
        refused = [message for message, confirm in zip(messages, confirms, strict=True)
                   if not isinstance(confirm, Basic.Ack)]
        if refused:
            raise Refused(refused)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()
            self.connection = None
            self.channel = None


class BrokerPublisher:
    """Publishes through a FastStream broker: the demo's in-process broker, or any other."""

    def __init__(self, broker: RabbitBroker) -> None:
        self.broker = broker

    async def send_page(self, messages: Sequence[Outgoing]) -> Awaitable[None]:
        """Publishes the page and returns once it is confirmed: pages never overlap here."""
        await asyncio.gather(*(self.broker.publish(
            message.body, exchange=message.exchange or None, routing_key=message.routing_key,
            message_id=message.message_id, headers=message.headers, persist=True,
            content_type="application/json", correlation_id=message.correlation_id) for message in messages))
        confirmed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        confirmed.set_result(None)
        return confirmed

    async def close(self) -> None:
        return None
