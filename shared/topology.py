"""The broker topology of the contract, declared idempotently by every service and `casework topology`."""

from __future__ import annotations

from functools import cache

import aio_pika
from faststream.rabbit import ExchangeType, QueueType, RabbitBroker, RabbitExchange, RabbitQueue
from faststream.rabbit.schemas.queue import QuorumQueueArgs

DELIVERY_LIMIT = 20
DEAD_LETTERING: QuorumQueueArgs = {
    "x-delivery-limit": DELIVERY_LIMIT,
    "x-dead-letter-exchange": "casework.dead",
    "x-dead-letter-strategy": "at-least-once",
    "x-overflow": "reject-publish",
}

COMMANDS = RabbitExchange("casework.commands", type=ExchangeType.TOPIC, durable=True)
EVENTS = RabbitExchange("casework.events", type=ExchangeType.TOPIC, durable=True)
ESCALATIONS = RabbitExchange("casework.escalations", type=ExchangeType.TOPIC, durable=True)
DEAD = RabbitExchange("casework.dead", type=ExchangeType.FANOUT, durable=True)
# Bound only by casework's own services' queues, with the same keys as on casework.events:
# the way round a subscriber's queue that keeps refusing an event (see shared.relay).
SERVICES = RabbitExchange("casework.services", type=ExchangeType.TOPIC, durable=True)

INTAKE_QUEUE = RabbitQueue("casework.intake", durable=True, queue_type=QueueType.QUORUM,
                           arguments=DEAD_LETTERING, routing_key="#")
ESCALATION_QUEUE = RabbitQueue("casework.escalation", durable=True, queue_type=QueueType.QUORUM,
                               arguments=DEAD_LETTERING, routing_key="complaint.#")
REWARDS_QUEUE = RabbitQueue("casework.rewards", durable=True, queue_type=QueueType.QUORUM,
                            arguments=DEAD_LETTERING, routing_key="surplus.#")
DEAD_QUEUE = RabbitQueue("casework.dead", durable=True, queue_type=QueueType.QUORUM)

# The rewards service also follows complaints (to learn of matched shortages) and periods.
REWARDS_EXTRA_KEYS = ("complaint.#", "period.#")
ESCALATION_KEYS = ("complaint.#",)
REWARDS_KEYS = ("surplus.#", *REWARDS_EXTRA_KEYS)


BINDINGS: dict[str, tuple[tuple[RabbitQueue, RabbitExchange, tuple[str, ...]], ...]] = {
    "intake": ((INTAKE_QUEUE, COMMANDS, ("#",)), (DEAD_QUEUE, DEAD, ("",))),
    # The services' queues take the same keys from casework.services as from casework.events.
    "escalation": ((ESCALATION_QUEUE, EVENTS, ESCALATION_KEYS), (ESCALATION_QUEUE, SERVICES, ESCALATION_KEYS)),
    "rewards": ((REWARDS_QUEUE, EVENTS, REWARDS_KEYS), (REWARDS_QUEUE, SERVICES, REWARDS_KEYS)),
}


EXCHANGES: dict[str, tuple[RabbitExchange, ...]] = {
    "intake": (COMMANDS, EVENTS, ESCALATIONS, DEAD, SERVICES),
    "escalation": (COMMANDS, EVENTS, ESCALATIONS, SERVICES),
    "rewards": (EVENTS, SERVICES),
}


def topic_matches(pattern: str, key: str) -> bool:
    """RabbitMQ's topic rule: `*` is exactly one word, `#` zero or more."""
    words, keys = pattern.split("."), key.split(".")

    @cache
    def match(i: int, j: int) -> bool:
        if i == len(words):
            return j == len(keys)
        if words[i] == "#":
            return any(match(i + 1, k) for k in range(j, len(keys) + 1))
        return j < len(keys) and words[i] in ("*", keys[j]) and match(i + 1, j + 1)

    return match(0, 0)


def bound(service: str, exchange: str, key: str) -> bool:
    """Whether the contract's bindings route a message with this key on `exchange` to the service's queue."""
    return any(bound_exchange.name == exchange and any(topic_matches(p, key) for p in keys)
               for _, bound_exchange, keys in BINDINGS[service])


def reaches_services(exchange: str, key: str) -> bool:
    """Whether casework's own services' queues take a message with this key on `exchange`."""
    return any(bound(service, exchange, key) for service in BINDINGS if service != "intake")


async def declare(broker: RabbitBroker, service: str | None = None) -> tuple[list[str], list[str]]:
    """Declare the contract's exchanges, queues and bindings; safe to repeat. Returns the names
    of the exchanges and of the queues declared.

    With a service named, only the exchanges it uses and its own queue and bindings: in
    production each service's RabbitMQ user may configure nothing else
    (deploy/rabbitmq/definitions.json), and any service may start first.
    """
    exchanges: list[str] = []
    queues: dict[str, None] = {}
    for exchange in EXCHANGES["intake" if service is None else service]:
        await broker.declare_exchange(exchange)
        exchanges.append(exchange.name)
    for part in BINDINGS if service is None else (service,):
        for queue, exchange, keys in BINDINGS[part]:
            declared = await broker.declare_queue(queue)
            queues[queue.name] = None
            for key in keys:
                await declared.bind(exchange.name, routing_key=key)
    return exchanges, list(queues)


async def declare_consumed_queue(channel: aio_pika.abc.AbstractRobustChannel, queue: RabbitQueue,
                                 exchange: RabbitExchange, keys: tuple[str, ...]) -> aio_pika.abc.AbstractQueue:
    """A queue a service consumes with aio-pika itself, declared on the consuming channel.

    A robust channel repeats these declarations after it reconnects, so a broker that lost
    the queue gets it back before consuming starts again.
    """
    source = await channel.declare_exchange(exchange.name, aio_pika.ExchangeType(exchange.type.value),
                                            durable=exchange.durable)
    declared = await channel.declare_queue(queue.name, durable=queue.durable, arguments=dict(queue.arguments or {}))
    for key in keys:
        await declared.bind(source, routing_key=key)
    return declared
