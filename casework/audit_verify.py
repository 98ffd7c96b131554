"""Verify the store's hash chains from raw stored records, alone or against a signed checkpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from uuid import UUID

from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import resolve_topic

from casework.audit import StoreReader
from casework.audit_chain import Finding, Record, analyse, compare_head
from casework.audit_sign import CheckpointRejected, Verifier, check_checkpoint
from services.intake.translate import event_type
from shared.chain import ENVELOPE, GENESIS

PAGE = 1000


def record_from_stored(reader: StoreReader, stored: StoredEvent) -> Record:
    """Decode one raw record; anything that fails (cipher tag, JSON, topic) makes it undecodable."""
    try:
        # The state as written, not upcast: a hash covers the fields its event had then.
        state = stored.state
        if reader.mapper.cipher:
            state = reader.mapper.cipher.decrypt(state)
        if reader.mapper.compressor:
            state = reader.mapper.compressor.decompress(state)
        fields = dict(reader.mapper.transcoder.decode(state))
        fields.pop("class_version", None)
        assert isinstance(stored.originator_id, UUID)
        record = Record(version=stored.originator_version, hash=str(fields["hash"]),
                        prev_hash=str(fields["prev_hash"]), stream_id=stored.originator_id,
                        event_type=event_type(object.__new__(resolve_topic(stored.topic))),
                        fields={k: v for k, v in fields.items() if k not in ENVELOPE and k != "occurred_at"},
                        occurred_at=fields["occurred_at"], recorded_at=fields["timestamp"])
        record.hash_at(record.version)  # fields that no longer hash are damage too
    except Exception as error:
        return Record(version=stored.originator_version, error=f"{type(error).__name__}: "
                      f"{str(error)[:160]}")
    return record


@dataclass
class Checkpoint:
    """A checkpoint whose digest and signature held: the heads it vouches for."""

    heads: dict[str, tuple[int, str]]
    created_at: str
    path: str = ""


def load_checkpoint(path: Path, verifier: Verifier) -> Checkpoint:
    """Read and check a checkpoint file; raises CheckpointRejected when forged or edited."""
    try:
        document = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise CheckpointRejected(f"{path} is not JSON: {error}") from error
    heads = check_checkpoint(document, verifier)
    return Checkpoint(heads, str(document["created_at"]), str(path))


@dataclass
class Verification:
    """What a verification read and found; intact only when nothing was found."""

    streams: int = 0
    events: int = 0
    findings: list[Finding] = field(default_factory=list)
    heads: dict[str, tuple[int, str]] = field(default_factory=dict)
    checkpoint: dict[str, Any] | None = None

    @property
    def intact(self) -> bool:
        return not self.findings

    def as_json(self) -> dict[str, Any]:
        return {"intact": self.intact, "streams": self.streams, "events": self.events,
                "checkpoint": self.checkpoint, "findings": [f.as_json() for f in self.findings]}


def _compare(result: Verification, checkpoint: Checkpoint | None, stream: str, head_version: int,
             hash_there: str | None) -> None:
    if checkpoint is None or stream not in checkpoint.heads:
        return
    version, expected = checkpoint.heads[stream]
    finding = compare_head(stream, head_version, hash_there, version, expected,
                           checkpoint.created_at)
    if finding is not None:
        result.findings.append(finding)


def _full(reader: StoreReader, stream_id: UUID, result: Verification,
          checkpoint: Checkpoint | None) -> None:
    """Read one stream whole, in stored version order, and analyse it."""
    records = [record_from_stored(reader, s) for s in reader.recorder.select_events(stream_id)]
    stream = str(stream_id)
    result.events += len(records)
    if not records:
        _compare(result, checkpoint, stream, 0, None)
        return
    result.streams += 1
    findings = analyse(stream, records)
    result.findings.extend(findings)
    by_version = {r.version: r for r in records}
    head = records[-1]
    if not findings:
        result.heads[stream] = (head.version, head.hash)
    wanted = checkpoint.heads.get(stream) if checkpoint else None
    there = by_version.get(wanted[0]) if wanted else None
    hash_there = there.hash if there is not None and there.error is None else None
    if wanted and any(r.hash == wanted[1] and r.error is None for r in records):
        # The checkpointed head is still in the chain, only displaced: the analysis named why.
        hash_there = wanted[1]
    _compare(result, checkpoint, stream, head.version, hash_there)


def verify_stream(reader: StoreReader, stream_id: UUID,
                  checkpoint: Checkpoint | None = None) -> Verification:
    result = Verification()
    _full(reader, stream_id, result, checkpoint)
    if result.streams == 0 and not result.findings:
        result.findings.append(Finding(str(stream_id), None, "removed", "no such stream in the store"))
    return result


def verify_all(reader: StoreReader, checkpoint: Checkpoint | None = None) -> Verification:
    """One pass over the notification log; a stream that breaks is then re-read and analysed."""
    result = Verification()
    last: dict[UUID, tuple[int, str]] = {}
    suspects: set[UUID] = set()
    wanted = {UUID(s): v for s, (v, _) in checkpoint.heads.items()} if checkpoint else {}
    seen_at: dict[UUID, str] = {}
    start = 1
    while page := reader.recorder.select_notifications(start, PAGE):
        for stored in page:
            stream = stored.originator_id
            assert isinstance(stream, UUID)
            if stream in suspects:
                continue
            result.events += 1
            record = record_from_stored(reader, stored)
            version, previous = last.get(stream, (0, GENESIS))
            if record.error is not None or record.version != version + 1 \
                    or record.prev_hash != previous or not record.intact:
                suspects.add(stream)
                result.events -= version + 1  # re-counted when the stream is read whole
                last.pop(stream, None)
                continue
            last[stream] = (record.version, record.hash)
            if wanted.get(stream) == record.version:
                seen_at[stream] = record.hash
        start = page[-1].id + 1
    result.events = max(result.events, 0)
    for stream, (version, hash_) in last.items():
        result.streams += 1
        result.heads[str(stream)] = (version, hash_)
        _compare(result, checkpoint, str(stream), version, seen_at.get(stream))
    for stream in sorted(suspects, key=str):
        _full(reader, stream, result, checkpoint)
    if checkpoint is not None:
        present = {str(s) for s in last} | {str(s) for s in suspects}
        for stream in sorted(set(checkpoint.heads) - present):
            _compare(result, checkpoint, stream, 0, None)
    result.findings.sort(key=lambda f: (f.stream_id, f.version or 0, f.kind))
    return result


def verify(database_url: str, stream_id: UUID | None = None, checkpoint: Checkpoint | None = None,
           cipher_key: str | None = None) -> Verification:
    reader = StoreReader(database_url, cipher_key)
    try:
        result = verify_stream(reader, stream_id, checkpoint) if stream_id else \
            verify_all(reader, checkpoint)
    finally:
        reader.close()
    if checkpoint is not None:
        result.checkpoint = {"file": checkpoint.path, "created_at": checkpoint.created_at,
                             "streams": len(checkpoint.heads), "signature": "valid"}
    return result
