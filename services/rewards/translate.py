"""Recorded ledger events -> messages on casework.events; the only module that knows both."""

from __future__ import annotations

from typing import Any

from services.rewards.domain import Ledger
from shared.chain import wire_name
from shared.publishing import Outgoing, event_envelope, event_message

EVENTS_EXCHANGE = "casework.events"


def event_body(event: Any) -> dict[str, Any]:
    """The contract's envelope followed by the event's own fields, as intake publishes its own."""
    return event_envelope(event, wire_name(Ledger.STREAM, type(event)))


def outgoing(event: Any, position: int) -> list[Outgoing]:
    """Ledger events go out as `ledger.<event>.<branch_id>`; claims and books stay inside rewards."""
    if not isinstance(event, Ledger.Event):
        return []
    return [event_message(event_body(event), position, EVENTS_EXCHANGE)]
