"""Read a stream back from the store for auditors: every event with who, when and what."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import StoredEvent

from services.intake.translate import event_body
from shared.chain import GENESIS, event_hash
from shared.store import CIPHER_TOPIC, CipherKeyError, check_cipher_key, cipher_env, eventsourcing_env

ENVELOPE = ("stream_id", "version", "event", "occurred_at", "recorded_at", "branch_id", "hash",
            "prev_hash", "schema_version")
WHO = ("principal", "user_id", "command_id")
__all__ = ["CIPHER_TOPIC", "CipherKeyError", "check_cipher_key", "cipher_env"]


def store_env(database_url: str, application: str = "casework",
              cipher_key: str | None = None) -> dict[str, str]:
    """`eventsourcing_env` plus the cipher: what every Application on the store must use."""
    return eventsourcing_env(database_url, application, cipher_key if cipher_key is not None else "")


class StoreReader(Application[UUID]):
    """Read-only access to intake's event store (same tables, no writes)."""

    name = "casework"

    def __init__(self, database_url: str, cipher_key: str | None = None) -> None:
        super().__init__(env=store_env(database_url, "casework", cipher_key))

    def decode(self, stored: StoredEvent) -> Any:
        return self.mapper.to_domain_event(stored)

    def stream(self, stream_id: UUID, gt: int | None = None, lte: int | None = None) -> list[Any]:
        return [self.decode(s) for s in self.recorder.select_events(stream_id, gt=gt, lte=lte)]


def parse_time(text: str) -> datetime:
    """An ISO 8601 time with its offset (a time without one names no moment)."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset, e.g. 2026-11-02T09:30:00+08:00")
    return moment


def public_state(aggregate: Any) -> dict[str, Any]:
    """An aggregate's own attributes, without the library's bookkeeping."""
    return {k: v for k, v in vars(aggregate).items() if not k.startswith("_") and k != "last_hash"}


def changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, list[Any]]:
    return {k: [before.get(k), v] for k, v in after.items() if before.get(k) != v}


def timeline_rows(events: list[Any]) -> list[dict[str, Any]]:
    """One row per event: envelope, who, its own fields, what it changed, chain status."""
    rows: list[dict[str, Any]] = []
    aggregate: Any = None
    previous = GENESIS
    for event in events:
        body = event_body(event)
        envelope = {k: body.pop(k) for k in ENVELOPE}
        who = {k: body.pop(k, None) for k in WHO}
        before = public_state(aggregate) if aggregate is not None else {}
        aggregate = event.mutate(aggregate)
        intact = event.prev_hash == previous and event_hash(event, envelope["event"]) == event.hash
        previous = event.hash
        rows.append({**envelope, **who, "fields": body,
                     "changes": changes(before, public_state(aggregate)), "chain_ok": intact})
    return rows


def pauses(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each wait on the customer (awaiting_customer → resumed) and how long it lasted."""
    found: list[dict[str, Any]] = []
    for row in rows:
        if row["event"] == "complaint.awaiting_customer":
            found.append({"from_version": row["version"], "reason": row["fields"].get("reason"),
                          "since": row["occurred_at"], "until": None, "to_version": None,
                          "seconds": None})
        elif row["event"] == "complaint.resumed" and found and found[-1]["until"] is None:
            pause = found[-1]
            pause.update(until=row["occurred_at"], to_version=row["version"])
            span = datetime.fromisoformat(pause["until"]) - datetime.fromisoformat(pause["since"])
            pause["seconds"] = int(span.total_seconds())
    return found


def escalations(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"version": r["version"], "at": r["occurred_at"], "recorded_at": r["recorded_at"],
             "level": r["fields"].get("level"), "department": r["fields"].get("department"),
             "reason": r["fields"].get("reason"), "by": r["principal"], "user_id": r["user_id"]}
            for r in rows if r["event"] == "complaint.escalated"]


def history(events: list[Any]) -> dict[str, Any]:
    """A stream's timeline with its pauses and escalations, as JSON-ready data."""
    rows = timeline_rows(events)
    return {
        "stream_id": rows[0]["stream_id"] if rows else None,
        "stream": rows[0]["event"].split(".")[0] if rows else None,
        "head": {"version": rows[-1]["version"], "hash": rows[-1]["hash"]} if rows else None,
        "chain_ok": all(r["chain_ok"] for r in rows),
        "events": rows,
        "pauses": pauses(rows),
        "escalations": escalations(rows),
    }


def timeline(database_url: str, stream_id: UUID, cipher_key: str | None = None) -> dict[str, Any]:
    reader = StoreReader(database_url, cipher_key)
    try:
        return history(reader.stream(stream_id))
    finally:
        reader.close()

