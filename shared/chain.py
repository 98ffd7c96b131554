"""Hash-chained aggregates: every event carries the hash of its predecessor and its own."""

from __future__ import annotations

import hashlib
import json
import re
import threading
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar, Self
from uuid import UUID

import orjson
from eventsourcing.domain import Aggregate

GENESIS = "0" * 64
ENVELOPE = frozenset({"originator_id", "originator_version", "timestamp", "originator_topic", "hash", "prev_hash"})


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    raise TypeError(f"cannot hash a {type(value).__name__}")


def canonical(
    stream_id: UUID, version: int, event_type: str, fields: dict[str, Any],
    occurred_at: datetime, recorded_at: datetime, prev_hash: str,
) -> bytes:
    """The bytes a hash covers: sorted keys, no spaces, UTC times, fixed field set.

    A field that is null counts as absent, so an event written before an optional field
    existed and the same event upcast to carry it as null hash alike.
    """
    document = {
        "stream_id": str(stream_id),
        "version": version,
        "type": event_type,
        "fields": {k: v for k, v in fields.items() if v is not None},
        "occurred_at": occurred_at.isoformat(),
        "recorded_at": recorded_at.isoformat(),
        "prev_hash": prev_hash,
    }
    try:
        return orjson.dumps(document, default=_jsonable, option=_ORJSON_CANONICAL)
    except orjson.JSONEncodeError:
        # Integers beyond 64 bits, and anything else orjson declines: the reference encoding.
        return canonical_reference(document)


# Sorted keys, and datetimes through `_jsonable` as the reference encoding writes them.
_ORJSON_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME


def canonical_reference(document: dict[str, Any]) -> bytes:
    """The definition of the canonical encoding; `canonical` writes the same bytes faster.

    Event fields hold no floats (money is a decimal string), where the two would differ.
    """
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_jsonable).encode()


def chain_hash(prev_hash: str, body: bytes) -> str:
    return hashlib.sha256(prev_hash.encode() + body).hexdigest()


def own_fields(event: object) -> dict[str, Any]:
    """The event's own fields: everything but the envelope the store and the chain add."""
    return {k: v for k, v in vars(event).items() if k not in ENVELOPE and k != "occurred_at"}


def event_hash(event: Any, event_type: str) -> str:
    """Recompute an event's hash from its content; equal to event.hash when untouched."""
    body = canonical(
        event.originator_id, event.originator_version, event_type, own_fields(event),
        event.occurred_at, event.timestamp, event.prev_hash,
    )
    return chain_hash(event.prev_hash, body)


_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def wire_name(stream: str, event_class: type) -> str:
    """`Complaint.HandedOver` -> `complaint.handed_over`."""
    return _wire_name(stream, event_class.__name__)


@lru_cache(maxsize=1024)
def _wire_name(stream: str, class_name: str) -> str:
    return f"{stream}.{_SNAKE.sub('_', class_name).lower()}"


@dataclass(frozen=True)
class Cause:
    """Who caused an event, by which command, and when it happened and was recorded."""

    principal: str
    user_id: str
    command_id: str
    occurred_at: datetime
    recorded_at: datetime


_made_here = threading.local()


def events_made() -> int:
    """How many chained events this thread has made so far: a command that is refused after the
    count moved had already changed a stream (see `IntakeApplication._apply`)."""
    count: int = getattr(_made_here, "count", 0)
    return count


class ChainedAggregate(Aggregate):
    """An aggregate whose events form a SHA-256 chain from a fixed genesis value."""

    STREAM: ClassVar[str] = ""
    if TYPE_CHECKING:
        last_hash: str

    class Event(Aggregate.Event):
        occurred_at: datetime
        principal: str
        user_id: str
        command_id: str
        prev_hash: str
        hash: str

        def apply(self, aggregate: Any) -> None:
            aggregate.last_hash = self.hash
            self.on(aggregate)

        def on(self, aggregate: Any) -> None:
            """Subclasses change the aggregate's state here."""

    class Created(Event, Aggregate.Created):
        def apply(self, aggregate: Any) -> None:
            aggregate.last_hash = self.hash
            self.on(aggregate)

    @staticmethod
    def _envelope(
        stream_id: UUID, version: int, event_type: str, cause: Cause, prev_hash: str, fields: dict[str, Any], /
    ) -> dict[str, Any]:
        _made_here.count = events_made() + 1
        hashed = {**fields, "principal": cause.principal, "user_id": cause.user_id, "command_id": cause.command_id}
        body = canonical(stream_id, version, event_type, hashed, cause.occurred_at, cause.recorded_at, prev_hash)
        return {
            **hashed,
            "timestamp": cause.recorded_at,
            "occurred_at": cause.occurred_at,
            "prev_hash": prev_hash,
            "hash": chain_hash(prev_hash, body),
        }

    @classmethod
    def _start(cls, event_class: type[Created], id_: UUID, cause: Cause, /, **fields: Any) -> Self:
        event_type = wire_name(cls.STREAM, event_class)
        kwargs = cls._envelope(id_, 1, event_type, cause, GENESIS, fields)
        return cls._create(event_class, id=id_, **kwargs)

    def _record(self, event_class: type[Event], cause: Cause, /, **fields: Any) -> None:
        if "branch_id" in event_class.__dataclass_fields__ and "branch_id" not in fields:
            fields["branch_id"] = getattr(self, "branch_id")  # noqa: B009
        event_type = wire_name(self.STREAM, event_class)
        kwargs = self._envelope(self.id, self.version + 1, event_type, cause, self.last_hash, fields)
        self.trigger_event(event_class, **kwargs)
