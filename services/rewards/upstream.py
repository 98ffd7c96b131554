"""Events from casework.events as rewards reads them: the ones it acts on, parsed; the rest passed over."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from shared.chain import Cause
from shared.events import EventMessage


class Unusable(Exception):
    """Raised when a message rewards acts on cannot be read; it goes to casework.dead with this reason."""

    code = "schema_invalid"


class Reported(EventMessage):
    """surplus.reported: the report's details, which the registry row and the credit name."""

    report_ref: str
    reported_by: str
    goods_name: str
    window: str
    clearance_date: date
    goods_category: str | None = None


class Share(BaseModel):
    """A responsible branch and its share of the penalty, as intake recorded it."""

    model_config = ConfigDict(frozen=True)
    branch_id: str
    share: Annotated[Decimal, Field(gt=0, le=1)]


class Reviewed(EventMessage):
    """surplus.reviewed: approved ones credit the reporter and debit the responsible branches."""

    reviewer: str
    approved: bool
    reason: str = ""
    matched_case_id: str | None = None
    responsible_branches: tuple[Share, ...] = ()
    period: str = ""


class PeriodOpened(EventMessage):
    period: str


class PeriodDecided(EventMessage):
    decided_by: str
    review_count: Annotated[int, Field(ge=0)]


class PeriodSettled(EventMessage):
    settled_by: str


MODELS: dict[str, type[EventMessage]] = {
    "surplus.reported": Reported,
    "surplus.reviewed": Reviewed,
    "period.opened": PeriodOpened,
    "period.decided": PeriodDecided,
    "period.settled": PeriodSettled,
}


def event_name(routing_key: str) -> str:
    """`surplus.reviewed.GZ01` -> `surplus.reviewed`."""
    return ".".join(routing_key.split(".")[:2])


def read(routing_key: str, body: bytes) -> EventMessage | None:
    """The event if rewards acts on it, None for the others (complaints, review assignments)."""
    model = MODELS.get(event_name(routing_key))
    if model is None:
        return None
    try:
        event = model.model_validate_json(body)
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}"
                             for e in error.errors()[:10])
        raise Unusable(problems) from None
    if event.event != event_name(routing_key):
        raise Unusable(f"routing key {routing_key!r} carries a {event.event!r} event")
    return event


def message_id(event: EventMessage) -> str:
    """The contract's id of an upstream event; the same fact always has the same id."""
    return f"{event.stream_id}:{event.version}"


def cause(event: EventMessage, user_id: str, recorded_at: datetime) -> Cause:
    """Rewards' own record of an upstream event: caused by it, occurring when it was recorded upstream."""
    return Cause(principal="service:rewards", user_id=user_id, command_id=message_id(event),
                 occurred_at=event.recorded_at, recorded_at=recorded_at)
