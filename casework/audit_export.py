"""Dispute files: a case's events with their hashes and proofs, checkable offline by anyone."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from casework.audit import StoreReader, history
from casework.audit_chain import Finding, Record, analyse, compare_head
from casework.audit_sign import (
    CheckpointRejected,
    Signer,
    Verifier,
    canonical_json,
    check_checkpoint,
    header_of,
    leaf,
    merkle_levels,
    merkle_proof,
    merkle_root_from,
)
from casework.audit_verify import Verification, record_from_stored

EXPORT_FORMAT = "casework-dispute/1"


def _plain(value: Any) -> Any:
    """JSON types exactly as the chain's canonical form writes them."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    raise TypeError(f"cannot export a {type(value).__name__}")


def exported_event(record: Record) -> dict[str, Any]:
    assert record.occurred_at is not None and record.recorded_at is not None
    return {
        "version": record.version,
        "event": record.event_type,
        "occurred_at": record.occurred_at.isoformat(),
        "recorded_at": record.recorded_at.isoformat(),
        "prev_hash": record.prev_hash,
        "hash": record.hash,
        # Exactly what the hash covers, as written (not upcast), so anyone can recompute it.
        "content": json.loads(json.dumps(record.fields, default=_plain)),
    }


def checkpoint_proof(checkpoint: dict[str, Any], stream: str, verifier: Verifier) -> dict[str, Any]:
    """The signed checkpoint header and a Merkle path from this stream's head to its digest."""
    heads = check_checkpoint(checkpoint, verifier)
    if stream not in heads:
        raise CheckpointRejected(f"the checkpoint of {checkpoint['created_at']} has no stream {stream}")
    rows = checkpoint["heads"]
    levels = merkle_levels([leaf(r["stream_id"], r["version"], r["hash"]) for r in rows])
    index = next(i for i, r in enumerate(rows) if r["stream_id"] == stream)
    version, hash_ = heads[stream]
    return {"header": header_of(checkpoint), "signature": checkpoint["signature"],
            "head": {"stream_id": stream, "version": version, "hash": hash_},
            "proof": merkle_proof(levels, index)}


def build_export(reader: StoreReader, stream_id: UUID, signer: Signer, now: datetime,
                 proof: dict[str, Any] | None = None) -> dict[str, Any]:
    events = reader.stream(stream_id)
    records = [record_from_stored(reader, s) for s in reader.recorder.select_events(stream_id)]
    story = history(events)
    document = {
        "format": EXPORT_FORMAT,
        "exported_at": now.isoformat(),
        "stream_id": str(stream_id),
        "stream": story["stream"],
        "head": story["head"],
        "events": [exported_event(r) for r in records],
        "pauses": story["pauses"],
        "escalations": story["escalations"],
        "checkpoint": proof,
    }
    return {**document, "signature": signer.sign(canonical_json(document))}


def _record(stream_id: UUID, item: dict[str, Any]) -> Record:
    try:
        record = Record(version=int(item["version"]), hash=str(item["hash"]),
                        prev_hash=str(item["prev_hash"]), stream_id=stream_id,
                        event_type=str(item["event"]), fields=dict(item["content"]),
                        occurred_at=datetime.fromisoformat(item["occurred_at"]),
                        recorded_at=datetime.fromisoformat(item["recorded_at"]))
        record.hash_at(record.version)
    except (KeyError, TypeError, ValueError, AssertionError) as error:
        return Record(version=int(item.get("version", 0)), error=f"malformed event: {error}")
    return record


def verify_export(document: dict[str, Any], verifier: Verifier) -> Verification:
    """Check a dispute file with no database: the chain, the export's signature, the proof."""
    result = Verification()
    stream = str(document.get("stream_id"))
    if document.get("format") != EXPORT_FORMAT:
        result.findings.append(Finding(stream, None, "forged", "not a casework dispute file"))
        return result
    records = [_record(UUID(stream), item) for item in document.get("events", [])]
    records.sort(key=lambda r: r.version)
    result.streams, result.events = 1, len(records)
    result.findings.extend(analyse(stream, records))
    head = records[-1] if records else None
    if head is None or document.get("head") != {"version": head.version, "hash": head.hash}:
        result.findings.append(Finding(stream, None, "truncated",
                                       "the events do not end at the head the file states"))
    unsigned = {k: v for k, v in document.items() if k != "signature"}
    try:
        verifier.check(document.get("signature") or {}, canonical_json(unsigned))
    except CheckpointRejected as error:
        result.findings.append(Finding(stream, None, "forged", f"export signature: {error}"))
    proof = document.get("checkpoint")
    if proof:
        result.checkpoint = {"created_at": proof.get("header", {}).get("created_at")}
        result.findings.extend(_check_proof(stream, proof, records, verifier))
    return result


def _check_proof(stream: str, proof: dict[str, Any], records: list[Record],
                 verifier: Verifier) -> list[Finding]:
    try:
        header, head = proof["header"], proof["head"]
        verifier.check(proof["signature"], canonical_json(header))
        version, hash_ = int(head["version"]), str(head["hash"])
        root = merkle_root_from(leaf(stream, version, hash_), proof["proof"])
    except (KeyError, TypeError, ValueError) as error:
        return [Finding(stream, None, "forged", f"checkpoint proof: {error}")]
    if head.get("stream_id") != stream or root != header.get("digest"):
        return [Finding(stream, None, "forged",
                        "checkpoint proof: the head is not under the signed digest")]
    there = next((r for r in records if r.version == version and r.error is None), None)
    finding = compare_head(stream, max((r.version for r in records), default=0),
                           there.hash if there else None, version, hash_, str(header["created_at"]))
    return [finding] if finding else []
