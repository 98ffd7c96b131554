"""Read a stream back from the store for auditors: every event with who, when and what."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application

from services.intake.translate import event_body
from shared.store import eventsourcing_env


class StoreReader(Application[UUID]):
    """Read-only access to intake's event store (same tables, no writes)."""

    name = "casework"

    def __init__(self, database_url: str) -> None:
        super().__init__(env=eventsourcing_env(database_url, "casework"))


def timeline(database_url: str, stream_id: UUID) -> list[dict[str, Any]]:
    reader = StoreReader(database_url)
    try:
        rows = []
        for event in reader.events.get(stream_id):
            body = event_body(event)
            envelope = {k: body.pop(k) for k in ("stream_id", "version", "event", "occurred_at", "recorded_at",
                                                 "branch_id", "hash", "prev_hash", "schema_version")}
            who = {k: body.pop(k, None) for k in ("principal", "user_id", "command_id")}
            rows.append({**envelope, **who, "fields": body})
        return rows
    finally:
        reader.close()
