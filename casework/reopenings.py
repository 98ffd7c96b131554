"""Reopenings per branch (handbook: hand over, never drop; shirking shows as a repeat complaint).

A repeat complaint reopens its case (`complaint.reopened`). Each reopening counts against the
branch that owned the case when it was reopened: the one whose handling drew the repeat, after
any hand-over. Read from intake's notification log in order, so ownership is as it was then.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from casework.audit import StoreReader

PAGE = 1000
# Only these events move the counts; the rest of the log is skipped by its topic, undecoded.
RECEIVED, HANDED_OVER, REOPENED = "Complaint.Received", "Complaint.HandedOver", "Complaint.Reopened"
WANTED = (RECEIVED, HANDED_OVER, REOPENED)


@dataclass
class BranchReopenings:
    """One branch's figures over the period asked for."""

    branch_id: str
    received: int = 0  # cases the branch registered
    reopenings: int = 0  # reopenings of cases it owned at the time
    cases: set[str] = field(default_factory=set)  # the distinct cases those were

    def row(self) -> dict[str, Any]:
        rate = round(self.reopenings / self.received, 4) if self.received else None
        return {"branch_id": self.branch_id, "received": self.received, "reopenings": self.reopenings,
                "cases_reopened": len(self.cases), "reopenings_per_case_received": rate}


def _events(reader: StoreReader, progress: Callable[[int], None] | None) -> Iterator[Any]:
    start = 1
    while True:
        page = reader.recorder.select_notifications(start, PAGE)
        if not page:
            return
        for notification in page:
            if notification.topic.endswith(WANTED):
                yield reader.mapper.to_domain_event(notification)
        start = page[-1].id + 1
        if progress is not None:
            progress(page[-1].id)


def reopenings(database_url: str, cipher_key: str | None = None, since: datetime | None = None,
               until: datetime | None = None, progress: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
    """Rows per branch, most reopenings first: cases received and reopenings in [since, until)."""
    reader = StoreReader(database_url, cipher_key)
    try:
        owner: dict[str, str] = {}  # case → the branch that owns it now
        branches: dict[str, BranchReopenings] = {}

        def branch(branch_id: str) -> BranchReopenings:
            return branches.setdefault(branch_id, BranchReopenings(branch_id))

        for event in _events(reader, progress):
            case = str(event.originator_id)
            kind = type(event).__qualname__
            within = (since is None or event.timestamp >= since) and (until is None or event.timestamp < until)
            if kind == RECEIVED:
                owner[case] = event.branch_id
                if within:
                    branch(event.branch_id).received += 1
            elif kind == HANDED_OVER:
                owner[case] = event.to_branch
            elif kind == REOPENED and within:
                held_by = branch(owner.get(case, event.branch_id))
                held_by.reopenings += 1
                held_by.cases.add(case)
        return [b.row() for b in sorted(branches.values(), key=lambda b: (-b.reopenings, b.branch_id))]
    finally:
        reader.close()
