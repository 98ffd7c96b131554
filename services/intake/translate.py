"""Recorded domain events -> the messages of the contract; the only module that knows both."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import orjson

from services.intake.domain import CommandRecord, Complaint, Period, SurplusReport
from shared.chain import ChainedAggregate, wire_name
from shared.events import EscalationNotice
from shared.publishing import Outgoing, event_envelope, event_message

STREAMS: dict[str, type[ChainedAggregate]] = {
    "Complaint": Complaint, "SurplusReport": SurplusReport, "Period": Period, "CommandRecord": CommandRecord,
}


def event_type(event: Any) -> str:
    aggregate = STREAMS[type(event).__qualname__.split(".")[0]]
    return wire_name(aggregate.STREAM, type(event))


def event_body(event: Any) -> dict[str, Any]:
    """The contract's envelope followed by the event's own fields."""
    return event_envelope(event, event_type(event))


def outgoing(event: Any, position: int) -> list[Outgoing]:
    """What the relay publishes for one recorded event (outcomes for command records)."""
    message_id = f"{event.originator_id}:{event.originator_version}"
    headers = {"x-casework-position": position, "x-casework-stream": str(event.originator_id),
               "x-casework-version": event.originator_version}
    if isinstance(event, CommandRecord.Processed):
        return outcome_messages(event, message_id, headers)
    messages = [event_message(event_body(event), position)]
    if isinstance(event, Complaint.Escalated):
        messages.append(escalation_notice(event, message_id, headers))
    return messages


def outcome_body(event: Any) -> bytes:
    """The `Outcome` a command record answers, as `Outcome.model_dump_json(exclude_none=True)` writes it.

    Written directly: the record was validated when it was made, and building the model
    again for every command cost the relay a twentieth of its time.
    """
    document: dict[str, Any] = {"schema_version": 1, "command_id": event.command_id}
    if event.routing_key is not None:
        document["command"] = event.routing_key
    document["status"] = event.status
    if event.stream_id:
        document["stream_id"] = str(UUID(event.stream_id))
    if event.version is not None:
        document["version"] = event.version
    if event.error_code:
        document["error"] = {"code": event.error_code, "message": event.error_message}
    return orjson.dumps(document)


def outcome_messages(event: Any, message_id: str, headers: dict[str, Any]) -> list[Outgoing]:
    body = outcome_body(event)
    messages = [Outgoing("casework.events", f"command.{event.status}.{event.user_id}", message_id, body, headers)]
    if event.reply_to:
        messages.append(Outgoing("", event.reply_to, message_id, body, headers, event.correlation_id))
    return messages


def escalation_routing_key(level: str, branch_id: str, region_id: str, department: str) -> str:
    return {"branch": f"branch.{branch_id}", "regional": f"regional.{region_id}", "hq": f"hq.{department}"}[level]


def escalation_notice(event: Any, message_id: str, headers: dict[str, Any]) -> Outgoing:
    notice = EscalationNotice(
        case_id=event.originator_id, case_ref=event.case_ref, branch_id=event.branch_id,
        region_id=event.region_id, department=event.department, level=event.level,
        category=event.category, waybill_no=event.waybill_no, reason=event.reason,
        escalated_at=event.timestamp, owner=event.owner, owner_branch=event.owner_branch,
    )
    key = escalation_routing_key(event.level, event.branch_id, event.region_id, event.department)
    return Outgoing("casework.escalations", key, message_id, notice.model_dump_json().encode(), headers)
