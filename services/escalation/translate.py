"""Wire messages <-> the escalation domain; the only module that knows both."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from services.escalation.domain import Escalation, Fact, Lapse, StageWarning
from shared.events import EventMessage, WarningNotice
from shared.events.commands import ComplaintEscalate, LapseReason
from shared.publishing import Outgoing

OWN_COMMANDS = "escalate:"


class NotAComplaintEvent(ValueError):
    """Raised when a message on the escalation queue is not a complaint event."""


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)


def fact_from_message(message: EventMessage) -> Fact:
    """A complaint event as published by intake's relay."""
    return _fact(message.event, str(message.stream_id), message.version, message.occurred_at,
                 message.recorded_at, message.branch_id, message.field)


def fact_from_event(event: Any, event_type: str) -> Fact:
    """A complaint event read back from intake's store: the same fact, without the wire's round trip."""
    return _fact(event_type, str(event.originator_id), event.originator_version, event.occurred_at,
                 event.timestamp, event.branch_id, lambda name: getattr(event, name, None))


def _fact(event_type: str, case_id: str, version: int, occurred_at: datetime, recorded_at: datetime,
          branch_id: str, field: Callable[[str], Any]) -> Fact:
    stream, _, kind = event_type.partition(".")
    if stream != "complaint" or not kind:
        raise NotAComplaintEvent(f"{event_type!r} is not a complaint event")
    command_id = str(field("command_id") or "")
    reason = field("reason")
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
        case_id=case_id, version=version, kind=kind, occurred_at=_utc(occurred_at), recorded_at=_utc(recorded_at),
        branch_id=branch_id, category=str(field("category") or ""), case_ref=str(field("case_ref") or ""),
        level=str(field("level") or ""), department=str(field("department") or ""), command_id=command_id,
        lapse=lapse,
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
