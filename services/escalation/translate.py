"""Wire messages <-> the escalation domain; the only module that knows both."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from services.escalation.domain import Escalation, Fact, Lapse, StageWarning
from shared.events import EventMessage, WarningNotice
from shared.events.commands import ComplaintEscalate, LapseReason
from shared.relay import Outgoing

OWN_COMMANDS = "escalate:"


class NotAComplaintEvent(ValueError):
    """Raised when a message on the escalation queue is not a complaint event."""


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def fact_from_message(message: EventMessage) -> Fact:
    """A complaint event as published by intake's relay (or read back from its store)."""
    stream, _, kind = message.event.partition(".")
    if stream != "complaint" or not kind:
        raise NotAComplaintEvent(f"{message.event!r} is not a complaint event")
    command_id = str(message.field("command_id") or "")
    reason = message.field("reason")
    lapse = None
    # Only this service's own escalations record a lapse; a branch quoting a stage does not.
    if kind == "escalated" and command_id.startswith(OWN_COMMANDS) and isinstance(reason, dict):
        try:
            parsed = LapseReason.model_validate(reason)
        except ValidationError:
            pass  # a recorded event is never refused: without a readable reason it is a plain escalation
        else:
            lapse = Lapse(parsed.stage, _utc(parsed.due_at))
    return Fact(
        case_id=str(message.stream_id), version=message.version, kind=kind,
        occurred_at=_utc(message.occurred_at), recorded_at=_utc(message.recorded_at),
        branch_id=message.branch_id, category=str(message.field("category") or ""),
        case_ref=str(message.field("case_ref") or ""), level=str(message.field("level") or ""),
        department=str(message.field("department") or ""), command_id=command_id, lapse=lapse,
    )


def fact_from_body(body: dict[str, Any] | bytes) -> Fact:
    message = (EventMessage.model_validate_json(body) if isinstance(body, bytes)
               else EventMessage.model_validate(body))
    return fact_from_message(message)


def escalate_command(effect: Escalation) -> Outgoing:
    command = ComplaintEscalate(
        case_id=UUID(effect.case_id), level=effect.level,
        reason=LapseReason(stage=effect.stage, due_at=effect.due_at,
                           overdue_seconds=effect.overdue_seconds),
        department=effect.department,
    )
    return Outgoing("casework.commands", ComplaintEscalate.routing_key, effect.message_id,
                    command.model_dump_json().encode())


def warning_notice(effect: StageWarning) -> Outgoing:
    notice = WarningNotice(case_id=UUID(effect.case_id), case_ref=effect.case_ref, branch_id=effect.branch_id,
                           stage=effect.stage, due_at=effect.due_at,
                           warned_at=effect.warned_at)
    return Outgoing("casework.escalations", f"warning.{effect.branch_id}", effect.message_id,
                    notice.model_dump_json().encode())


def outgoing(effect: Escalation | StageWarning) -> Outgoing:
    return escalate_command(effect) if isinstance(effect, Escalation) else warning_notice(effect)
