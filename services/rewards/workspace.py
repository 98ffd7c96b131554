"""Aggregates of one transaction, read through a cache that the store's version checks keep honest."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from services.rewards.domain import Claim
from shared.chain import ChainedAggregate

Load = Callable[[UUID], Any]


class Cache:
    """Aggregates as this process last saved or read them, and the ids the store is known to hold.

    Neither can double an effect: an aggregate written from a stale copy, or created again
    because its id was missing from `known`, conflicts in the store (IntegrityError), and
    the application then clears the cache and does the work again from the store.
    """

    def __init__(self, claim_limit: int = 50_000) -> None:
        self.claim_limit = claim_limit
        self.pinned: dict[UUID, ChainedAggregate] = {}
        self.claims: OrderedDict[UUID, ChainedAggregate] = OrderedDict()
        self.known: set[UUID] | None = None

    def get(self, aggregate_id: UUID) -> ChainedAggregate | None:
        found = self.pinned.get(aggregate_id)
        if found is None:
            found = self.claims.get(aggregate_id)
            if found is not None:
                self.claims.move_to_end(aggregate_id)
        return found

    def surely_absent(self, aggregate_id: UUID) -> bool:
        return self.known is not None and aggregate_id not in self.known

    def put(self, aggregate: ChainedAggregate) -> None:
        # Ledgers and books are few and hot; claims are many and each is wanted about twice.
        if isinstance(aggregate, Claim):
            self.claims[aggregate.id] = aggregate
            self.claims.move_to_end(aggregate.id)
            while len(self.claims) > self.claim_limit:
                self.claims.popitem(last=False)
        else:
            self.pinned[aggregate.id] = aggregate
        if self.known is not None:
            self.known.add(aggregate.id)

    def evict(self, ids: Iterable[UUID]) -> None:
        for aggregate_id in ids:
            self.pinned.pop(aggregate_id, None)
            self.claims.pop(aggregate_id, None)

    def clear(self) -> None:
        self.pinned.clear()
        self.claims.clear()
        self.known = None


class Work:
    """The aggregates one transaction reads and changes; saved together or not at all."""

    def __init__(self, cache: Cache, load: Load) -> None:
        self.cache = cache
        self.load = load
        self.touched: dict[UUID, ChainedAggregate] = {}
        self.created: set[UUID] = set()
        self.periods: set[UUID] = set()  # books whose decision or settlement may now complete
        self.retired: set[UUID] = set()  # settled: nothing will write them again, so no need to keep them

    def get(self, aggregate_id: UUID) -> Any | None:
        if aggregate_id in self.touched:
            return self.touched[aggregate_id]
        aggregate = self.cache.get(aggregate_id)
        if aggregate is None and not self.cache.surely_absent(aggregate_id):
            aggregate = self.load(aggregate_id)
        if aggregate is not None:
            self.touched[aggregate_id] = aggregate
        return aggregate

    def add(self, aggregate: ChainedAggregate) -> None:
        self.touched[aggregate.id] = aggregate
        self.created.add(aggregate.id)

    def changed(self) -> list[ChainedAggregate]:
        return [a for a in self.touched.values() if a.pending_events]

    def committed(self) -> None:
        """The transaction committed: what it read and wrote is now the store's state."""
        for aggregate in self.touched.values():
            self.cache.put(aggregate)
        self.cache.evict(self.retired)

    def abandoned(self) -> None:
        """The transaction failed: copies it changed no longer match the store."""
        self.cache.evict(self.touched)
        if self.cache.known is not None:
            self.cache.known -= self.created
