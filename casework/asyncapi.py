"""The AsyncAPI document of the contract, generated from FastStream declarations of every message."""

from __future__ import annotations

from typing import Any

from faststream.rabbit import RabbitBroker, RabbitQueue
from faststream.specification import AsyncAPI

from shared.events import COMMANDS, EscalationNotice, EventMessage, Outcome, WarningNotice
from shared.events.commands import Command
from shared.topology import COMMANDS as COMMANDS_EXCHANGE
from shared.topology import ESCALATIONS, EVENTS, INTAKE_QUEUE


def _document_command(broker: RabbitBroker, key: str, model: type[Command]) -> None:
    queue = RabbitQueue(INTAKE_QUEUE.name, durable=True, routing_key=key, declare=False)

    async def handler(body: Any) -> None:
        """Placeholder: the real consumer reads raw bytes to dead-letter what does not parse."""

    handler.__annotations__["body"] = model
    broker.subscriber(queue, COMMANDS_EXCHANGE, title=key, description=model.__doc__)(handler)


def asyncapi_document() -> dict[str, Any]:
    broker = RabbitBroker("amqp://guest:guest@127.0.0.1:5672/", description="casework wire contract")
    for key, model in COMMANDS.items():
        _document_command(broker, key, model)
    broker.publisher(exchange=EVENTS, routing_key="command.{status}.{user}", title="command outcome",
                     schema=Outcome, description=Outcome.__doc__)
    broker.publisher(exchange=EVENTS, routing_key="{stream}.{event}.{branch_id}", title="recorded event",
                     schema=EventMessage, description=EventMessage.__doc__)
    broker.publisher(exchange=ESCALATIONS, routing_key="{level}.{target}", title="escalation notice",
                     schema=EscalationNotice, description=EscalationNotice.__doc__)
    broker.publisher(exchange=ESCALATIONS, routing_key="warning.{branch_id}", title="SLA warning",
                     schema=WarningNotice, description=WarningNotice.__doc__)
    spec = AsyncAPI(broker, title="casework", version="1", description="Complaint cases on RabbitMQ")
    document: dict[str, Any] = spec.to_specification().to_jsonable()
    return document
