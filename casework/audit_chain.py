"""Recover a stream's hash chain from raw records and name every break: edited, removed, …"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from shared.chain import GENESIS, canonical, chain_hash

# How many consecutive records a removal may take out and still be counted one by one.
MAX_SKIP = 64


@dataclass(frozen=True)
class Finding:
    """One thing wrong with a stream: what kind, at which stored version, and why we say so."""

    stream_id: str
    version: int | None
    kind: str  # edited, removed, reordered, inserted, truncated, rewritten, forged
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"stream_id": self.stream_id, "version": self.version, "kind": self.kind,
                "detail": self.detail}


@dataclass
class Record:
    """A stored record as read, not as trusted: its claimed hashes and what it hashes to."""

    version: int
    hash: str = ""
    prev_hash: str = ""
    stream_id: UUID | None = None
    event_type: str = ""
    fields: dict[str, Any] | None = None
    occurred_at: datetime | None = None
    recorded_at: datetime | None = None
    error: str | None = None

    def hash_at(self, version: int) -> str:
        """The hash this record's content gives if it were the given version of its stream."""
        assert self.stream_id and self.fields is not None and self.occurred_at and self.recorded_at
        body = canonical(self.stream_id, version, self.event_type, self.fields, self.occurred_at,
                         self.recorded_at, self.prev_hash)
        return chain_hash(self.prev_hash, body)

    @property
    def intact(self) -> bool:
        return self.error is None and self.hash_at(self.version) == self.hash


class Report:
    """Findings of one stream, each (version, kind) once, in the order found."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        self.findings: dict[tuple[int | None, str], Finding] = {}

    def add(self, version: int | None, kind: str, detail: str) -> None:
        self.findings.setdefault((version, kind), Finding(self.stream_id, version, kind, detail))

    def has(self, kinds: set[str], up_to: int) -> bool:
        return any(k in kinds and v is not None and v <= up_to for v, k in self.findings)


def analyse(stream_id: str, records: list[Record]) -> list[Finding]:
    """Walk the chain by its own links from GENESIS; compare with how the records are stored."""
    report = Report(stream_id)
    holes = {r.version for r in records if r.error is not None}
    for record in records:
        if record.error is not None:
            report.add(record.version, "edited", f"the stored record no longer decodes ({record.error})")
    decoded = [r for r in records if r.error is None]
    chain, unchecked = _walk(decoded, holes, report)
    for origin, record in chain:
        if id(record) not in unchecked and record.hash_at(origin) != record.hash:
            report.add(record.version, "edited", "its content no longer gives the hash it carries")
    _displaced(chain, report)
    return sorted(report.findings.values(), key=lambda f: (f.version or 0, f.kind))


def _walk(decoded: list[Record], holes: set[int],
          report: Report) -> tuple[list[tuple[int, Record]], set[int]]:
    by_prev: dict[str, list[Record]] = defaultdict(list)
    for record in decoded:
        by_prev[record.prev_hash].append(record)
    used: set[int] = set()
    unchecked: set[int] = set()
    chain: list[tuple[int, Record]] = []
    origin, link = 1, GENESIS

    def followed(record: Record) -> bool:
        return any(id(r) not in used and r is not record for r in by_prev.get(record.hash, []))

    while len(used) < len(decoded):
        candidates = [r for r in by_prev.get(link, []) if id(r) not in used]
        if candidates:
            # Two records claim the same predecessor: the true one verifies and is followed.
            at = origin
            pick = max(candidates, key=lambda r: (r.hash_at(at) == r.hash, followed(r),
                                                  -abs(r.version - at)))
            for other in candidates:
                if other is not pick:
                    used.add(id(other))
                    report.add(other.version, "inserted",
                               f"claims to follow version {origin - 1} as the record stored at "
                               f"version {pick.version} does; it is not part of the chain")
        else:
            resumed, origin, named = _resume(decoded, used, origin, chain, holes, report, followed)
            if resumed is None:
                break
            pick = resumed
            if named:
                unchecked.add(id(pick))
        chain.append((origin, pick))
        used.add(id(pick))
        link, origin = pick.hash, origin + 1
    return chain, unchecked


def _resume(decoded: list[Record], used: set[int], origin: int, chain: list[tuple[int, Record]],
            holes: set[int], report: Report, followed: Any) -> tuple[Record | None, int, bool]:
    """The chain broke before `origin`: pick up the next segment and say what broke it."""
    rest = [r for r in decoded if id(r) not in used]
    if not rest:
        return None, origin, False
    hashes = {r.hash for r in rest}
    head = min([r for r in rest if r.prev_hash not in hashes] or rest, key=lambda r: r.version)
    found = _origin(head, origin)
    last = chain[-1][1] if chain else None
    is_tail = head.version == max(r.version for r in decoded) and not followed(head)
    if found is None:
        if is_tail and last is not None:
            report.add(head.version, "inserted", f"does not link to version {last.version}, "
                       "nothing follows it and its content gives no hash it carries")
            return head, origin, True
        return head, origin, False  # its content was edited: the content check names it
    if found > origin:
        for version in range(origin, found):
            if version not in holes:
                report.add(version, "removed",
                           f"the record of version {version} is gone: the chain goes on with the "
                           f"record of version {found}, stored at version {head.version}")
    elif last is None:
        report.add(head.version, "edited", "the first record does not start from the genesis hash")
    else:
        # Both records hash right but do not link: the earlier one was changed and re-hashed
        # (at the tail a record appended with a made-up link would look the same).
        report.add(last.version, "edited", f"its hash is not the one version {head.version} names "
                   "as its predecessor: the record was changed and re-hashed"
                   + (f", or version {head.version} was appended with a false link" if is_tail else ""))
    return head, found, False


def _origin(record: Record, origin: int) -> int | None:
    """The version this record's content hashes at (its place in the original chain)."""
    candidates: list[int] = [origin, record.version, *range(origin + 1, origin + MAX_SKIP + 1),
                             *range(record.version + 1, record.version + MAX_SKIP + 1)]
    seen: set[int] = set()
    for version in candidates:
        if version >= origin and version not in seen:
            seen.add(version)
            if record.hash_at(version) == record.hash:
                return version
    return None


def _displaced(chain: list[tuple[int, Record]], report: Report) -> None:
    """Records stored away from their place: swaps are reordering; shifts follow an insertion
    or a removal already reported, otherwise they are reordering too."""
    origin_at = {record.version: origin for origin, record in chain}
    for origin, record in chain:
        if record.version == origin:
            continue
        cycle, steps, at = False, 0, origin
        while at in origin_at and steps <= len(chain):
            if at == record.version:
                cycle = True
                break
            at, steps = origin_at[at], steps + 1
        if cycle or not report.has({"inserted", "removed"}, record.version):
            report.add(record.version, "reordered",
                       f"holds the record of version {origin}, stored out of its place")


def compare_head(stream_id: str, head_version: int, hash_there: str | None, version: int,
                 expected: str, signed_at: str) -> Finding | None:
    """A stream against its checkpointed head: shorter is truncated, different is rewritten."""
    if head_version < version:
        where = f"ends at version {head_version}" if head_version else "is gone"
        return Finding(stream_id, version, "truncated",
                       f"the stream {where}; the checkpoint of {signed_at} saw version {version}")
    if hash_there is not None and hash_there != expected:
        return Finding(stream_id, version, "rewritten",
                       f"version {version} no longer carries the hash the checkpoint of {signed_at} "
                       "signed: the chain up to it was rewritten")
    return None
