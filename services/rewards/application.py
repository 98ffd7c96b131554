"""The rewards Application: upstream events in, ledger entries, decisions and settlements recorded once."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import IntegrityError, Recording
from eventsourcing.utils import get_topic

from services.rewards import upstream as up
from services.rewards.decisions import complete, decided_views
from services.rewards.domain import (
    Book,
    Claim,
    Ledger,
    PeriodClosed,
    RewardsError,
    book_id,
    claim_id,
    ledger_id,
    period_stream_id,
)
from services.rewards.money import allocate, share, text
from services.rewards.registry import Registry, build_registry, paused_gc
from services.rewards.workspace import Cache, Work
from shared.chain import Cause
from shared.events import EventMessage
from shared.policy import Policy
from shared.store import eventsourcing_env, open_application

log = logging.getLogger("casework.rewards")
Clock = Callable[[], datetime]
CREATIONS = (Claim.Opened, Ledger.Opened, Book.Opened)


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Result:
    """What one upstream event did: applied, parked, duplicate, ignored, or rejected with a code."""

    status: str
    code: str = ""
    message: str = ""


class RewardsApplication(Application[UUID]):
    """The only writer of ledger, claim and book streams."""

    name = "rewards"
    log_section_size = 1000

    def __init__(self, policy: Policy, database_url: str, clock: Clock = utc_now, user_id: str = "rewards",
                 env: dict[str, str] | None = None, claim_cache: int = 50_000) -> None:
        self.policy = policy
        self.clock = clock
        self.user_id = user_id
        self.cache = Cache(claim_cache)
        # Told of every commit's events, with their notification ids (the relay in this process).
        self.on_recorded: Callable[[list[Recording[UUID]]], None] | None = None
        settings = {**eventsourcing_env(database_url, "rewards"), **(env or {})}
        open_application(lambda: super(RewardsApplication, self).__init__(env=settings), settings)

    def _notify(self, recordings: list[Recording[UUID]]) -> None:
        if self.on_recorded is not None:
            self.on_recorded(recordings)

    # -- reading -----------------------------------------------------------------------
    def _load(self, aggregate_id: UUID) -> Any | None:
        try:
            return self.repository.get(aggregate_id)
        except AggregateNotFoundError:
            return None

    def learn_store(self) -> list[UUID]:
        """Note every aggregate id the store holds (so absence needs no query); returns the books."""
        topics = {get_topic(cls): cls for cls in CREATIONS}
        known: set[UUID] = set()
        books: list[UUID] = []
        start = 1
        while page := self.recorder.select_notifications(start, 1000, topics=list(topics)):
            for notification in page:
                aggregate_id = UUID(str(notification.originator_id))
                known.add(aggregate_id)
                if topics[notification.topic] is Book.Opened:
                    books.append(aggregate_id)
            start = page[-1].id + 1
        self.cache.known = known
        return books

    def warm(self) -> None:
        """Learn the store, then finish any decision or settlement a crash left waiting."""
        books = self.learn_store()

        def revisit(work: Work) -> list[Result]:
            work.periods.update(books)
            return []

        self._commit(revisit, None)

    def book(self, period: str) -> Book | None:
        found = self._load(book_id(period_stream_id(period)))
        return found if isinstance(found, Book) else None

    def ledgers(self, book: Book) -> list[Ledger]:
        """The period's ledgers, by branch."""
        found = (self._load(ledger_id(branch, book.period)) for branch in sorted(book.branches))
        return [ledger for ledger in found if isinstance(ledger, Ledger)]

    def registry(self, period: str) -> Registry | None:
        """The period's registry as decided, or None while it is not decided."""
        book = self.book(period)
        if book is None or not book.decided or book.decision is None:
            return None
        with paused_gc():
            return build_registry(book.period, self.policy.rewards.currency, book.decision, decided_views(self, book))

    # -- the one use case --------------------------------------------------------------
    def process(self, events: Sequence[EventMessage], before_commit: Callable[[], None] | None = None,
                attempts: int = 5) -> list[Result]:
        """Apply upstream events and record their effects in one transaction; each takes effect once."""
        for attempt in range(attempts):
            try:
                return self._commit(lambda work: [self._apply(work, e) for e in events], before_commit)
            except IntegrityError:
                # Another writer got there first: what we hold is stale. Learn the store again.
                log.info("version conflict in the rewards store; retrying (%d)", attempt + 1)
                self.cache.clear()
                self.learn_store()
            except RewardsError as error:
                if len(events) > 1:  # take them one at a time: only the one that cannot is rejected
                    return [self.process([event], before_commit)[0] for event in events]
                log.warning("%s %s rejected: %s", events[0].event, up.message_id(events[0]), error)
                return [Result("rejected", error.code, str(error))]
        raise RuntimeError(f"rewards store kept conflicting after {attempts} attempts")

    def _commit(self, apply: Callable[[Work], list[Result]],
                before_commit: Callable[[], None] | None) -> list[Result]:
        work = Work(self.cache, self._load)
        try:
            results = apply(work)
            for book in sorted(work.periods):
                self._complete(work, book)
            changed = work.changed()
            if changed:
                if before_commit is not None:
                    before_commit()
                self.save(*changed)
        except BaseException:
            work.abandoned()
            raise
        work.committed()
        return results

    def _apply(self, work: Work, event: EventMessage) -> Result:
        cause = up.cause(event, self.user_id, self.clock())
        if isinstance(event, up.Reported):
            return self._on_reported(work, cause, event)
        if isinstance(event, up.Reviewed):
            return self._on_reviewed(work, cause, event)
        if isinstance(event, up.PeriodOpened):
            self._book(work, cause, event.stream_id, event.period)
            return Result("applied")
        if isinstance(event, up.PeriodDecided):
            book = self._book(work, cause, event.stream_id, "")
            work.periods.add(book.id)
            fresh = book.receive_decision(cause, event.decided_by, event.review_count, event.recorded_at.isoformat())
            return Result("applied" if fresh else "duplicate")
        if isinstance(event, up.PeriodSettled):
            book = self._book(work, cause, event.stream_id, "")
            work.periods.add(book.id)
            fresh = book.receive_settlement(cause, event.settled_by, event.recorded_at.isoformat())
            return Result("applied" if fresh else "duplicate")
        return Result("ignored")

    # -- surplus reports and reviews ---------------------------------------------------
    def _on_reported(self, work: Work, cause: Cause, event: up.Reported) -> Result:
        details = {"report_ref": event.report_ref, "reported_by": event.reported_by,
                   "goods_name": event.goods_name, "window": event.window,
                   "clearance_date": event.clearance_date.isoformat(), "category": event.goods_category}
        claim = work.get(claim_id(event.stream_id))
        if claim is None:
            work.add(Claim.reported(cause, event.stream_id, details))
            return Result("applied")
        if claim.details is not None:
            return Result("duplicate")
        claim.note_details(cause, details)
        if claim.review is not None:
            self._accrue(work, claim.review, details)
        return Result("applied")

    def _on_reviewed(self, work: Work, cause: Cause, event: up.Reviewed) -> Result:
        if not event.approved:
            return Result("ignored")
        if not event.period:
            raise RewardsError(f"approved review {up.message_id(event)} names no period")
        review = {
            "report_id": str(event.stream_id), "command_id": cause.command_id,
            "reviewed_at": event.recorded_at.isoformat(), "branch_id": event.branch_id,
            "reviewer": event.reviewer, "matched_case_id": event.matched_case_id, "period": event.period,
            "responsible_branches": [{"branch_id": b.branch_id, "share": str(b.share.normalize())}
                                     for b in event.responsible_branches],
        }
        claim = work.get(claim_id(event.stream_id))
        if claim is None:
            work.add(Claim.parked(cause, event.stream_id, review))
            return Result("parked")
        if claim.review is not None or claim.details is None:
            return Result("duplicate")
        return self._accrue(work, review, claim.details)

    def amounts(self, category: str | None) -> tuple[Decimal, Decimal]:
        """The reward and the (whole) penalty for a report of this goods category."""
        rules = self.policy.rewards
        own = rules.categories.get(category) if category else None
        return (own.reward, own.penalty) if own else (rules.reward, rules.penalty)

    def _accrue(self, work: Work, review: dict[str, Any], details: dict[str, Any]) -> Result:
        """Credit the reporter and debit each responsible branch, all in the review's period."""
        cause = Cause(principal="service:rewards", user_id=self.user_id, command_id=review["command_id"],
                      occurred_at=datetime.fromisoformat(review["reviewed_at"]), recorded_at=self.clock())
        period, reporter, report_id = review["period"], review["branch_id"], review["report_id"]
        credited = work.get(ledger_id(reporter, period))
        if credited is not None and report_id in credited.credits:
            return Result("duplicate")  # also after the decision: a repeat is no late review
        book = self._book(work, cause, period_stream_id(period), period)
        if book.decided:
            raise PeriodClosed(f"review of report {report_id} falls in period {period}, which is already decided")
        ledger = self._ledger(work, cause, book, reporter)
        reward, penalty = self.amounts(details["category"])
        responsible = review["responsible_branches"]
        parts = allocate(penalty, [(b["branch_id"], share(b["share"])) for b in responsible])
        penalties = [{"branch_id": b["branch_id"], "share": b["share"], "amount": text(amount)}
                     for b, amount in zip(responsible, parts, strict=True)]
        debtors = [self._ledger(work, cause, book, b["branch_id"]) for b in responsible]
        ledger.credit(cause, report_id, reward, report_ref=details["report_ref"],
                      reported_by=details["reported_by"], goods_name=details["goods_name"],
                      window=details["window"], clearance_date=details["clearance_date"],
                      category=details["category"], reviewer=review["reviewer"],
                      reviewed_at=review["reviewed_at"], matched_case_id=review["matched_case_id"],
                      responsible_branches=responsible, penalties=penalties)
        for debtor, entry, amount in zip(debtors, responsible, parts, strict=True):
            if report_id not in debtor.debits:
                debtor.debit(cause, report_id, amount, entry["share"], reporter, details["report_ref"])
        work.periods.add(book.id)
        return Result("applied")

    def _book(self, work: Work, cause: Cause, stream: UUID, period: str) -> Book:
        book = work.get(book_id(stream))
        if book is None:
            book = Book.open(cause, stream, period)
            work.add(book)
        elif period:
            book.name(cause, period)
        return book

    def _ledger(self, work: Work, cause: Cause, book: Book, branch_id: str) -> Ledger:
        ledger = work.get(ledger_id(branch_id, book.period))
        if ledger is None:
            ledger = Ledger.open(cause, branch_id, book.period, self.policy.rewards.currency)
            work.add(ledger)
        book.add_ledger(cause, branch_id)
        return ledger

    # -- decisions and settlements ---------------------------------------------------
    def _complete(self, work: Work, aggregate_id: UUID) -> None:
        complete(work, aggregate_id, self.policy.rewards.currency, self._cause)

    def _cause(self, upstream: dict[str, Any], at: str) -> Cause:
        """Decisions and settlements are caused by HQ's command, when intake recorded it."""
        return Cause(principal="service:rewards", user_id=self.user_id, command_id=upstream["command_id"],
                     occurred_at=datetime.fromisoformat(at), recorded_at=self.clock())
