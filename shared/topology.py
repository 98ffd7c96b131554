"""The broker topology of the contract, declared idempotently by every service and `casework topology`."""

from __future__ import annotations

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

INTAKE_QUEUE = RabbitQueue("casework.intake", durable=True, queue_type=QueueType.QUORUM,
                           arguments=DEAD_LETTERING, routing_key="#")
ESCALATION_QUEUE = RabbitQueue("casework.escalation", durable=True, queue_type=QueueType.QUORUM,
                               arguments=DEAD_LETTERING, routing_key="complaint.#")
REWARDS_QUEUE = RabbitQueue("casework.rewards", durable=True, queue_type=QueueType.QUORUM,
                            arguments=DEAD_LETTERING, routing_key="surplus.#")
DEAD_QUEUE = RabbitQueue("casework.dead", durable=True, queue_type=QueueType.QUORUM)

# The rewards service also follows complaints (to learn of matched shortages) and periods.
REWARDS_EXTRA_KEYS = ("complaint.#", "period.#")


async def declare(broker: RabbitBroker) -> None:
    """Declare every exchange, queue and binding of the contract; safe to repeat."""
    for exchange in (COMMANDS, EVENTS, ESCALATIONS, DEAD):
        await broker.declare_exchange(exchange)
    bindings = (
        (INTAKE_QUEUE, COMMANDS, ("#",)),
        (ESCALATION_QUEUE, EVENTS, ("complaint.#",)),
        (REWARDS_QUEUE, EVENTS, ("surplus.#", *REWARDS_EXTRA_KEYS)),
        (DEAD_QUEUE, DEAD, ("",)),
    )
    for queue, exchange, keys in bindings:
        declared = await broker.declare_queue(queue)
        for key in keys:
            await declared.bind(exchange.name, routing_key=key)
