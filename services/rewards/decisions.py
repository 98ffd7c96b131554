"""A period's decision and settlement, recorded once every approved review of it has been accrued."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder
from eventsourcing.utils import get_topic
from psycopg.sql import SQL, Identifier

from services.rewards.domain import Book, Ledger, ledger_id
from services.rewards.money import text
from services.rewards.registry import LedgerView, build_registry, paused_gc
from services.rewards.workspace import Work
from shared.chain import Cause

log = logging.getLogger("casework.rewards")
CauseFor = Callable[[dict[str, Any], str], Cause]


def complete(work: Work, aggregate_id: UUID, currency: str, cause_for: CauseFor) -> None:
    """Record a received decision once all `review_count` reviews are in the ledgers, then any settlement.

    Redelivery can bring a review after the decision that counted it, and a settlement
    before its decision: both wait here until the period's books add up.
    """
    book = work.get(aggregate_id)
    if not isinstance(book, Book) or book.decision is None or not book.period:
        return
    if book.decided and (book.settlement is None or book.settled):
        return  # nothing waits: leave its ledgers in the store
    found = (work.get(ledger_id(branch, book.period)) for branch in sorted(book.branches))
    ledgers = [ledger for ledger in found if isinstance(ledger, Ledger)]
    if not book.decided:
        accrued = sum(len(ledger.credits) for ledger in ledgers)
        expected = book.decision["review_count"]
        if accrued != expected:
            level = logging.ERROR if accrued > expected else logging.INFO
            log.log(level, "decision of %s waits: %d of %d approved reviews accrued", book.period, accrued, expected)
            return
        with paused_gc():
            views = [LedgerView.of(ledger) for ledger in ledgers]
            registry = build_registry(book.period, currency, book.decision, views)
            digest = registry.digest
        cause = cause_for(book.decision, book.decision["decided_at"])
        for ledger in ledgers:
            ledger.decide(cause, book.decision["decided_by"])
        book.decide(cause, registry.reward_total, registry.penalty_total, digest)
        log.info("period %s decided: %d reviews, registry %s", book.period, accrued, digest[:12])
    if book.settlement is not None and not book.settled:
        cause = cause_for(book.settlement, book.settlement["settled_at"])
        for ledger in ledgers:
            ledger.settle(cause, book.settlement["settled_by"])
        payout = sum((ledger.net for ledger in ledgers if ledger.net > 0), Decimal("0.00"))
        charge = sum((-ledger.net for ledger in ledgers if ledger.net < 0), Decimal("0.00"))
        book.settle(cause, payout, charge)
        work.retired.update(ledger.id for ledger in ledgers)
        log.info("period %s settled: payouts %s, charges %s", book.period, text(payout), text(charge))


def decided_views(app: Application[UUID], book: Book) -> list[LedgerView]:
    """A decided period's ledgers as its registry needs them: only credits and decisions are read.

    Debits make up most of a ledger, and each decision already states their count and sum.
    """
    branches = {ledger_id(branch, book.period): branch for branch in book.branches}
    credited = get_topic(Ledger.Credited)
    credits: dict[UUID, list[dict[str, Any]]] = {aggregate_id: [] for aggregate_id in branches}
    decided: dict[UUID, dict[str, Any]] = {}
    for stored in stored_entries(app, list(branches), [credited, get_topic(Ledger.Decided)]):
        aggregate_id = UUID(str(stored.originator_id))
        if stored.topic == credited:
            credits[aggregate_id].append(fields_of(app, stored))
        else:
            decided[aggregate_id] = fields_of(app, stored)
    missing = sorted(branches[i] for i in branches if i not in decided)
    if missing:
        raise ValueError(f"ledgers of {', '.join(missing)} in {book.period} are not decided")
    return [LedgerView(branches[i], credits[i], decided[i]["credits"], Decimal(decided[i]["reward_total"]),
                       decided[i]["debits"], Decimal(decided[i]["penalty_total"])) for i in branches]


def stored_entries(app: Application[UUID], ids: list[UUID], topics: list[str]) -> Iterator[Any]:
    """The stored events of these aggregates with these topics; on PostgreSQL in one query."""
    recorder = app.recorder
    if isinstance(recorder, PostgresApplicationRecorder):
        query = SQL("SELECT originator_id, originator_version, topic, state FROM {}.{} "
                    "WHERE originator_id = ANY(%s) AND topic = ANY(%s)").format(
            Identifier(recorder.datastore.schema), Identifier(recorder.events_table_name))
        with recorder.datastore.get_connection() as conn, conn.cursor() as cursor:
            cursor.execute(query, (ids, topics))
            for row in cursor.fetchall():
                yield StoredEvent(row["originator_id"], row["originator_version"], row["topic"], bytes(row["state"]))
        return
    for aggregate_id in ids:
        yield from (stored for stored in recorder.select_events(aggregate_id) if stored.topic in topics)


def fields_of(app: Application[UUID], stored: Any) -> dict[str, Any]:
    """An event's recorded fields, without building the event: the registry reads 100,000 of them."""
    mapper = app.mapper
    if not isinstance(mapper.transcoder, JSONTranscoder):
        return dict(vars(mapper.to_domain_event(stored)))
    state = stored.state
    if mapper.cipher:
        state = mapper.cipher.decrypt(state)
    if mapper.compressor:
        state = mapper.compressor.decompress(state)
    # Only plain strings, numbers, lists and objects are read; the library's tagged values
    # (times, ids of the envelope) stay as they were stored.
    fields: dict[str, Any] = json.loads(state)
    return fields
