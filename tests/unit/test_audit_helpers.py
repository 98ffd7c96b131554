"""Shared by the audit tests: a case told through intake with a fake clock, and raw tampering."""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from casework.audit import cipher_env
from services.intake.application import IntakeApplication, Submission
from shared.events.commands import parse_command
from shared.policy import load_policy

T0 = datetime(2026, 11, 2, 1, 0, tzinfo=UTC)
# Every command waits this long in the queue: each event occurs before it is recorded.
QUEUED = timedelta(minutes=10)


class Story:
    """Intake on a store, driven by a fake clock; commands sent as a branch's RabbitMQ user."""

    def __init__(self, url: str, cipher_key: str | None = None, start: datetime = T0) -> None:
        self.now = start
        self.app = IntakeApplication(load_policy(), url, clock=lambda: self.now,
                                     env=cipher_env(cipher_key))

    def send(self, routing_key: str, body: dict[str, Any], user: str = "branch-GZ01") -> Any:
        command = parse_command(routing_key, json.dumps(body).encode())
        [outcome] = self.app.submit([Submission(command=command, message_id=str(uuid.uuid4()),
                                                user_id=user, sent_at=self.now - QUEUED)])
        assert outcome.status == "accepted", outcome
        return outcome

    def at(self, **delta: float) -> Story:
        self.now += timedelta(**delta)
        return self

    def close(self) -> None:
        self.app.close()


CUSTOMER = {"name": "李小姐", "phone": "13800000000"}


def tell_case(story: Story, case_ref: str = "C-1") -> UUID:
    """Received, verified, a wait on the customer, escalated, handed over, remediated, closed."""
    received = story.send("complaint.receive", {
        "branch_id": "GZ01", "case_ref": case_ref, "waybill_no": "WB123456", "category": "damage",
        "customer": CUSTOMER, "description": "Two cartons crushed on delivery",
        "occurred_at": (story.now - timedelta(hours=3)).isoformat(), "claimed_amount": "180.00"})
    case = received.stream_id
    story.at(hours=1).send("complaint.verify", {"case_id": str(case), "verified_by": "张三",
                                                "summary": "crushed cartons confirmed",
                                                "customer_confirmed": True})
    story.at(minutes=30).send("complaint.await_customer", {"case_id": str(case),
                                                           "reason": "photos of the cartons"})
    story.at(hours=2).send("complaint.resume", {"case_id": str(case)})
    story.at(hours=1).send("complaint.escalate", {"case_id": str(case), "level": "regional",
                                                  "reason": "customer asks for a manager"})
    story.at(hours=1).send("complaint.hand_over", {"case_id": str(case), "to": "王经理",
                                                   "note": "regional manager takes it"})
    story.at(hours=3).send("complaint.remediate", {"case_id": str(case), "action": "refund",
                                                   "remediated_by": "王经理",
                                                   "compensation": "120.00"})
    story.at(hours=1).send("complaint.close", {"case_id": str(case), "closed_by": "王经理",
                                               "resolution": "refunded",
                                               "customer_satisfied": True})
    return case  # type: ignore[no-any-return]


def sqlite_path(url: str) -> str:
    return urlsplit(url).path[1:]


@contextmanager
def raw_sqlite(url: str) -> Iterator[sqlite3.Connection]:
    """The events table itself, as someone with the database file would change it."""
    connection = sqlite3.connect(sqlite_path(url))
    try:
        yield connection
        connection.commit()
    finally:
        connection.close()


class RawStore:
    """Rows of the events table, read and changed with plain SQL (sqlite3 or psycopg)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sqlite = url.startswith("sqlite")
        if self.sqlite:
            self.conn: Any = sqlite3.connect(sqlite_path(url))
            self.table, self.mark = "stored_events", "?"
        else:
            import psycopg

            self.conn = psycopg.connect(url)
            self.table, self.mark = "casework_events", "%s"

    def key(self, stream: UUID) -> Any:
        return stream.hex if self.sqlite else stream

    def sql(self, statement: str, *params: Any) -> Any:
        return self.conn.execute(statement.format(t=self.table).replace("?", self.mark), params)

    def rows(self, stream: UUID) -> list[tuple[int, str, bytes]]:
        found = self.sql("SELECT originator_version, topic, state FROM {t} WHERE originator_id = ? "
                         "ORDER BY originator_version", self.key(stream)).fetchall()
        return [(v, t, bytes(s)) for v, t, s in found]

    def state(self, stream: UUID, version: int) -> bytes:
        return next(s for v, _, s in self.rows(stream) if v == version)

    def set_state(self, stream: UUID, version: int, state: bytes, topic: str | None = None) -> None:
        self.sql("UPDATE {t} SET state = ? WHERE originator_id = ? AND originator_version = ?",
                 state, self.key(stream), version)
        if topic is not None:
            self.sql("UPDATE {t} SET topic = ? WHERE originator_id = ? AND originator_version = ?",
                     topic, self.key(stream), version)

    def delete(self, stream: UUID, *versions: int) -> None:
        for version in versions:
            self.sql("DELETE FROM {t} WHERE originator_id = ? AND originator_version = ?",
                     self.key(stream), version)

    def shift(self, stream: UUID, from_version: int, delta: int) -> None:
        """Renumber versions >= from_version by delta (through negatives: the key is unique)."""
        self.sql("UPDATE {t} SET originator_version = -(originator_version + ?) "
                 "WHERE originator_id = ? AND originator_version >= ?", delta, self.key(stream),
                 from_version)
        self.sql("UPDATE {t} SET originator_version = -originator_version "
                 "WHERE originator_id = ? AND originator_version < 0", self.key(stream))

    def insert(self, stream: UUID, version: int, topic: str, state: bytes) -> None:
        self.sql("INSERT INTO {t} (originator_id, originator_version, topic, state) "
                 "VALUES (?, ?, ?, ?)", self.key(stream), version, topic, state)

    def close(self) -> None:
        self.conn.commit()
        self.conn.close()


@contextmanager
def raw_store(url: str) -> Iterator[RawStore]:
    store = RawStore(url)
    try:
        yield store
    finally:
        store.close()


def forge(reader: Any, stream: UUID, source_version: int, version: int, prev_hash: str,
          **changes: Any) -> tuple[str, bytes, str]:
    """A well-formed record: the source event changed, re-hashed as `version` after prev_hash.

    Returns (topic, stored state, hash): what an attacker who knows the chain rule writes.
    """
    from services.intake.translate import event_type
    from shared.chain import event_hash

    [stored] = reader.recorder.select_events(stream, gt=source_version - 1, lte=source_version)
    event = reader.decode(stored)
    state = {**vars(event), **changes, "prev_hash": prev_hash, "originator_version": version}
    forged = object.__new__(type(event))
    object.__setattr__(forged, "__dict__", state)
    state["hash"] = event_hash(forged, event_type(forged))
    encoded = reader.mapper.to_stored_event(forged)
    return encoded.topic, encoded.state, state["hash"]


def rehash_from(reader: Any, raw: RawStore, stream: UUID, version: int, **changes: Any) -> None:
    """Change one record and re-hash every record after it: a chain consistent in itself."""
    [previous] = reader.recorder.select_events(stream, gt=version - 2, lte=version - 1)
    prev_hash = reader.decode(previous).hash
    head = reader.recorder.select_events(stream, desc=True, limit=1)[0].originator_version
    for v in range(version, head + 1):
        topic, state, prev_hash = forge(reader, stream, v, v, prev_hash,
                                        **(changes if v == version else {}))
        raw.set_state(stream, v, state, topic)


def run_audit(url: str, *args: str, **env: str) -> tuple[int, Any]:
    """`casework audit ARGS` with the store at url; (exit code, parsed JSON or the text)."""
    from typer.testing import CliRunner

    from casework.audit_cli import audit_app

    result = CliRunner().invoke(audit_app, list(args), env={
        "CASEWORK_DATABASE_URL": url, "CASEWORK_CIPHER_KEY": "", "CASEWORK_AUDIT_SIGNING_KEY": "",
        "CASEWORK_AUDIT_PUBLIC_KEY": "", "CASEWORK_AUDIT_HMAC_KEY": "", "COLUMNS": "200", **env})
    try:
        return result.exit_code, json.loads(result.stdout)
    except ValueError:
        return result.exit_code, result.stdout + result.stderr


def kinds(document: dict[str, Any]) -> list[tuple[int | None, str]]:
    return [(f["version"], f["kind"]) for f in document["findings"]]
