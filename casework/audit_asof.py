"""A stream as it was known at a past moment or version, started from audit's snapshots."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import EventStore, StoredEvent
from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import get_topic

from casework.audit import StoreReader, public_state, store_env
from shared.pgstore import QuietAggregateRecorder

log = logging.getLogger("casework.audit")

SNAPSHOT_INTERVAL = 100
BOOKKEEPING = ("_id", "_version", "_pending_events")


class AuditSnapshots(Application[UUID]):
    """Audit's own snapshot store: derived data, in tables of its own so no writer collides."""

    name = "casework_audit"
    is_snapshotting_enabled = True

    def __init__(self, database_url: str, cipher_key: str | None = None) -> None:
        super().__init__(env=store_env(database_url, self.name, cipher_key))

    def construct_snapshot_store(self) -> EventStore[UUID]:
        """The library's snapshot store; on PostgreSQL with a recorder that creates its type quietly."""
        factory = self.factory
        if not isinstance(factory, PostgresFactory):
            return super().construct_snapshot_store()
        recorder = QuietAggregateRecorder(datastore=factory.datastore,
                                          events_table_name=f"{factory.env.name.lower() or 'stored'}_snapshots")
        if factory.env_create_table():
            recorder.create_table()
        return factory.event_store(mapper=self.mapper, recorder=recorder)


@dataclass
class AsOf:
    """What a replay found: the aggregate (None before the stream existed) and how it got there."""

    stream_id: UUID
    aggregate: Any
    known_at: datetime | None
    from_snapshot: int | None = None
    replayed: int = 0
    snapshots_written: int = 0

    @property
    def version(self) -> int:
        return int(self.aggregate.version) if self.aggregate is not None else 0

    def as_json(self, moment: datetime | None = None) -> dict[str, Any]:
        agg = self.aggregate
        state = {"created_on": agg.created_on, "modified_on": agg.modified_on,
                 **public_state(agg)} if agg is not None else None
        return {
            "stream_id": str(self.stream_id),
            "as_of": moment.isoformat() if moment else None,
            "version": self.version,
            "known_since": self.known_at.isoformat() if self.known_at else None,
            "last_hash": getattr(agg, "last_hash", None),
            "type": type(agg).__name__ if agg is not None else None,
            "state": state,
            "from_snapshot": self.from_snapshot,
            "replayed": self.replayed,
        }


class AsOfReader:
    """Rebuilds a stream at a version or at a moment; keeps a snapshot every `interval` events."""

    def __init__(self, database_url: str, cipher_key: str | None = None,
                 interval: int = SNAPSHOT_INTERVAL, use_snapshots: bool = True) -> None:
        self.reader = StoreReader(database_url, cipher_key)
        self.interval = interval
        self.snapshots: AuditSnapshots | None = None
        if use_snapshots:
            try:
                self.snapshots = AuditSnapshots(database_url, cipher_key)
            except Exception as error:  # e.g. an auditor's read-only database role
                log.warning("audit snapshots unavailable, replaying from events: %s", error)

    def close(self) -> None:
        self.reader.close()
        if self.snapshots is not None:
            self.snapshots.close()

    def at_version(self, stream_id: UUID, version: int) -> AsOf:
        rows = self._snapshot_rows(stream_id, lte=version)
        bases = (s for s in map(self._decode_snapshot, reversed(rows)) if s is not None)
        return self._replay(stream_id, bases, None, version, {r.originator_version for r in rows})

    def at_time(self, stream_id: UUID, moment: datetime) -> AsOf:
        """The stream as known at `moment`: every event up to the first recorded after it."""
        rows = self._snapshot_rows(stream_id)
        decoded: dict[int, Any] = {}
        index = self._latest_known(rows, moment, decoded)
        bases = (s for j in range(index if index is not None else -1, -1, -1)
                 if (s := self._cached(rows, j, decoded)) is not None and s.timestamp <= moment)
        # The first snapshot after the base that was not yet known bounds the read.
        upper = next((rows[j].originator_version for j in range(0 if index is None else index + 1,
                                                                len(rows))
                      if (s := self._cached(rows, j, decoded)) is not None and s.timestamp > moment),
                     None)
        return self._replay(stream_id, bases, moment, upper, {r.originator_version for r in rows})

    def _cached(self, rows: list[StoredEvent], index: int, decoded: dict[int, Any]) -> Any:
        if index not in decoded:
            decoded[index] = self._decode_snapshot(rows[index])
        return decoded[index]

    def _latest_known(self, rows: list[StoredEvent], moment: datetime,
                      decoded: dict[int, Any]) -> int | None:
        """Binary search: known_at only grows with the version, so the predicate is monotone."""
        lo, hi, found = 0, len(rows) - 1, None
        while lo <= hi:
            mid = (lo + hi) // 2
            snapshot = self._cached(rows, mid, decoded)
            if snapshot is not None and snapshot.timestamp <= moment:
                found, lo = mid, mid + 1
            else:
                hi = mid - 1
        return found

    def _replay(self, stream_id: UUID, bases: Iterator[Any], moment: datetime | None, upper: int | None,
                existing: set[int]) -> AsOf:
        """Replay from the latest snapshot that links into the chain (or from the start)."""
        for base in bases:
            start = base.originator_version
            stored = self.reader.recorder.select_events(stream_id, gt=start - 1, lte=upper)
            if self._links(base, stored):
                break
            log.warning("snapshot %s v%s disagrees with the chain; not used", stream_id, start)
        else:
            base, start = None, 0
            stored = self.reader.recorder.select_events(stream_id, lte=upper)
        result = AsOf(stream_id, base.mutate(None) if base is not None else None,
                      base.timestamp if base is not None else None, start or None)
        fresh: list[StoredEvent] = []
        for row in stored:
            if row.originator_version <= start:
                continue
            event = self.reader.decode(row)
            if moment is not None and event.timestamp > moment:
                break
            result.aggregate = event.mutate(result.aggregate)
            result.replayed += 1
            known = result.known_at
            result.known_at = event.timestamp if known is None else max(known, event.timestamp)
            if self.snapshots is not None and result.version % self.interval == 0 \
                    and result.version not in existing:
                fresh.append(self._snapshot(result))
        result.snapshots_written = self._save(fresh)
        return result

    def _links(self, base: Any, stored: Any) -> bool:
        """A snapshot is used only when its last hash is the stored event's at its version."""
        first = stored[0] if stored else None
        if first is None or first.originator_version != base.originator_version:
            return False
        return bool(self.reader.decode(first).hash == base.state.get("last_hash"))

    def _snapshot(self, result: AsOf) -> StoredEvent:
        agg = result.aggregate
        assert result.known_at is not None
        state = {k: v for k, v in vars(agg).items() if k not in BOOKKEEPING}
        # The snapshot's timestamp is when its version became known, not when it was taken:
        # that is what lets an as-of query by time start from it.
        snapshot = Snapshot(originator_id=agg.id, originator_version=agg.version,
                            timestamp=result.known_at, topic=get_topic(type(agg)), state=state)
        assert self.snapshots is not None
        return self.snapshots.mapper.to_stored_event(snapshot)

    def _snapshot_rows(self, stream_id: UUID, lte: int | None = None) -> list[StoredEvent]:
        if self.snapshots is None or self.snapshots.snapshots is None:
            return []
        try:
            return list(self.snapshots.snapshots.recorder.select_events(stream_id, lte=lte))
        except Exception as error:
            log.warning("cannot read audit snapshots: %s", error)
            return []

    def _decode_snapshot(self, row: StoredEvent) -> Any:
        assert self.snapshots is not None
        try:
            return self.snapshots.mapper.to_domain_event(row)
        except Exception as error:  # e.g. written under a cipher key since rotated
            log.warning("ignoring snapshot %s v%s: %s", row.originator_id, row.originator_version,
                        error)
            return None

    def _save(self, fresh: list[StoredEvent]) -> int:
        if not fresh or self.snapshots is None or self.snapshots.snapshots is None:
            return 0
        try:
            self.snapshots.snapshots.recorder.insert_events(fresh)
        except Exception as error:  # another auditor wrote them first, or no write access
            log.info("audit snapshots not saved: %s", error)
            return 0
        return len(fresh)


def state_at(database_url: str, stream_id: UUID, *, at: datetime | None = None,
             version: int | None = None, cipher_key: str | None = None) -> AsOf:
    """One as-of query: by moment (events recorded at or before it) or by version."""
    reader = AsOfReader(database_url, cipher_key)
    try:
        if version is not None:
            return reader.at_version(stream_id, version)
        if at is None:
            raise ValueError("give a moment or a version")
        return reader.at_time(stream_id, at)
    finally:
        reader.close()
