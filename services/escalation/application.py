"""The escalation use cases: apply complaint facts exactly once, plan what is due, rebuild from history."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from services.escalation import codec
from services.escalation.domain import CaseClock, Effect, Fact
from services.escalation.history import History
from services.escalation.ladder import apply, due_at, fire, settle
from services.escalation.rules import PolicyBook, Rules, policy_document, policy_from_document
from services.escalation.store import Change, ClockStore

log = logging.getLogger("casework.escalation")
ATTEMPTS = 20


class GapError(RuntimeError):
    """Raised when a case's missing versions cannot be read yet; the facts are held, never skipped."""


class ContentionError(RuntimeError):
    """Raised when other writers kept changing the same clocks through every retry."""


@dataclass(frozen=True)
class Plan:
    """A clock after firing what was due, the row revision it was read at, and what to publish."""

    case_id: str
    rev: int
    clock: CaseClock
    effects: list[Effect]


def change(case_id: str, rev: int, clock: CaseClock) -> Change:
    return Change(case_id, rev, clock.version, due_at(clock), clock.branch_id, codec.dumps(clock))


class EscalationApplication:
    """Clocks live in the store; every use case reads rows, runs the pure ladder, writes them back if unchanged."""

    def __init__(self, store: ClockStore, book: PolicyBook, history: History | None = None,
                 catch_up: bool = True) -> None:
        self.store = store
        self.book = book
        self.history = history
        self.catch_up = catch_up
        self.last_lookup = 0.0

    # -- policy versions ---------------------------------------------------------------------------
    @classmethod
    def load_book(cls, store: ClockStore, current: Rules | None, since: datetime) -> PolicyBook:
        """The recorded policy versions, with `current` recorded as taking effect at `since` if it is new."""
        recorded = store.policies()
        if current is not None and (not recorded or recorded[-1][1] != current.version):
            store.record_policy(since, current.version, policy_document(current.policy))
            recorded = store.policies()
        if not recorded:
            raise ValueError("no policy recorded in the clock store; start the service once first")
        return PolicyBook([(at, Rules(policy_from_document(document))) for at, _, document in recorded])

    # -- facts ---------------------------------------------------------------------------------------
    def handle(self, facts: Sequence[Fact]) -> datetime | None:
        """Apply facts in version order per case, once each; return the earliest new due time."""
        pending: dict[str, list[Fact]] = defaultdict(list)
        for fact in facts:
            pending[fact.case_id].append(fact)
        earliest: datetime | None = None
        for _ in range(ATTEMPTS):
            rows = self.store.load(list(pending))
            changes: list[Change] = []
            for case_id, case_facts in pending.items():
                row = rows.get(case_id)
                before = codec.loads(row.state) if row else None
                after = self.advance(case_id, before, case_facts)
                if after is not None and after is not before:
                    changes.append(change(case_id, row.rev if row else 0, after))
            conflicts = set(self.store.save(changes))
            for saved in changes:
                if saved.case_id not in conflicts and saved.due is not None:
                    earliest = saved.due if earliest is None else min(earliest, saved.due)
            if not conflicts:
                return earliest
            pending = {case_id: pending[case_id] for case_id in conflicts}
        raise ContentionError(f"clocks of {len(pending)} cases kept changing under this writer")

    def advance(self, case_id: str, clock: CaseClock | None, facts: Iterable[Fact]) -> CaseClock | None:
        """The clock after the facts it has not seen; a version gap is filled from history first."""
        for fact in sorted(facts, key=lambda f: f.version):
            current = clock.version if clock else 0
            if fact.version <= current:
                continue  # a redelivery, or a version already read from history
            if fact.version > current + 1:
                clock = self._fill(case_id, clock, current, fact.version - 1)
            clock = apply(clock, fact, self.book.at(fact.recorded_at))
        return clock

    def _fill(self, case_id: str, clock: CaseClock | None, current: int, upto: int) -> CaseClock | None:
        missing = self.history.after(case_id, current, upto) if self.history else []
        if [f.version for f in missing] != list(range(current + 1, upto + 1)):
            raise GapError(f"case {case_id}: versions {current + 1}..{upto} are not readable yet")
        log.info("case %s: read versions %d..%d from the event store", case_id, current + 1, upto)
        for fact in missing:
            clock = apply(clock, fact, self.book.at(fact.recorded_at))
        return clock

    # -- time ----------------------------------------------------------------------------------------
    def plan_due(self, now: datetime, limit: int) -> list[Plan]:
        """Fire the earliest clocks due by `now`, after catching each up with the event store."""
        plans = []
        started = time.perf_counter()
        rows = self.store.due(now, limit)
        self.last_lookup = time.perf_counter() - started
        for row in rows:
            clock = codec.loads(row.state)
            if self.history is not None and self.catch_up:
                # The queue may lag the store: progress already recorded must stop an escalation.
                clock = self.advance(row.case_id, clock, self.history.after(row.case_id, clock.version)) or clock
            fired, effects = fire(clock, now, self.book.at(now))
            plans.append(Plan(row.case_id, row.rev, fired, effects))
        return plans

    def commit(self, plans: Sequence[Plan]) -> list[str]:
        """Record fired clocks; the case ids returned changed meanwhile and must be planned again."""
        return self.store.save([change(p.case_id, p.rev, p.clock) for p in plans])

    def next_due(self) -> datetime | None:
        return self.store.next_due()

    def clock(self, case_id: str) -> CaseClock | None:
        row = self.store.load([case_id]).get(case_id)
        return codec.loads(row.state) if row else None

    # -- history -------------------------------------------------------------------------------------
    def rebuild(self, facts: Iterable[Fact], now: datetime) -> dict[str, CaseClock]:
        """Every clock from the recorded facts alone, as the live service holds it once caught up."""
        clocks: dict[str, CaseClock] = {}
        for fact in facts:
            clock = clocks.get(fact.case_id)
            if clock is not None:
                if fact.version <= clock.version:
                    continue
                clock = settle(clock, fact.occurred_at, self.book.at(fact.occurred_at))
            clocks[fact.case_id] = apply(clock, fact, self.book.at(fact.recorded_at))
        return {case_id: settle(clock, now, self.book.at(now)) for case_id, clock in clocks.items()}

    def differences(self, rebuilt: dict[str, CaseClock]) -> list[str]:
        """Case ids whose stored clock is not byte for byte the rebuilt one."""
        stored = {row.case_id: row.state for row in self.store.rows()}
        ids = sorted(set(stored) | set(rebuilt))
        return [i for i in ids if i not in rebuilt or stored.get(i) != codec.dumps(rebuilt[i])]

    def replace(self, rebuilt: dict[str, CaseClock]) -> None:
        self.store.replace_all([change(case_id, 0, clock) for case_id, clock in sorted(rebuilt.items())])
