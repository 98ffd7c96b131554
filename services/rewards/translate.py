"""Recorded ledger events -> messages on casework.events; the only module that knows both."""

from __future__ import annotations

import json
from typing import Any

from services.rewards.domain import Ledger
from shared.chain import own_fields, wire_name
from shared.relay import Outgoing

EVENTS_EXCHANGE = "casework.events"


def dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"), default=str).encode()


def event_body(event: Any) -> dict[str, Any]:
    """The contract's envelope followed by the event's own fields, as intake publishes its own."""
    return {
        "schema_version": 1,
        "stream_id": str(event.originator_id),
        "version": event.originator_version,
        "event": wire_name(Ledger.STREAM, type(event)),
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.timestamp.isoformat(),
        "branch_id": event.branch_id,
        "hash": event.hash,
        "prev_hash": event.prev_hash,
        **{k: v for k, v in own_fields(event).items() if k != "branch_id"},
    }


def outgoing(event: Any, position: int) -> list[Outgoing]:
    """Ledger events go out as `ledger.<event>.<branch_id>`; claims and books stay inside rewards."""
    if not isinstance(event, Ledger.Event):
        return []
    body = event_body(event)
    headers = {"x-casework-position": position, "x-casework-stream": body["stream_id"],
               "x-casework-version": body["version"]}
    return [Outgoing(EVENTS_EXCHANGE, f"{body['event']}.{body['branch_id']}",
                     f"{body['stream_id']}:{body['version']}", dumps(body), headers)]
