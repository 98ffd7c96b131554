"""Ledgers per branch and period, the surplus reports that feed them, and each period's book."""

from __future__ import annotations

from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar
from uuid import NAMESPACE_URL, UUID, uuid5

from services.rewards.money import text as _amount
from shared.chain import Cause, ChainedAggregate

NAMESPACE = uuid5(NAMESPACE_URL, "urn:casework:rewards")
UPSTREAM = uuid5(NAMESPACE_URL, "urn:casework")


@lru_cache(maxsize=4096)
def ledger_id(branch_id: str, period: str) -> UUID:
    """One ledger per branch and period: the same pair can never open two."""
    return uuid5(NAMESPACE, f"ledger:{branch_id}:{period}")


def claim_id(report_id: UUID) -> UUID:
    return uuid5(NAMESPACE, f"claim:{report_id}")


@lru_cache(maxsize=256)
def book_id(period_stream: UUID) -> UUID:
    return uuid5(NAMESPACE, f"book:{period_stream}")


@lru_cache(maxsize=256)
def period_stream_id(period: str) -> UUID:
    """Intake's stream id of a period; its events name the stream, not the period."""
    return uuid5(UPSTREAM, f"period:{period}")


class RewardsError(Exception):
    """Raised when an upstream event cannot take effect; carries a stable code."""

    code: ClassVar[str] = "rejected"


class PeriodClosed(RewardsError):
    """Raised when an entry would change a period whose decision is already recorded."""

    code = "period_decided"


class LedgerEvent(ChainedAggregate.Event):
    """An event of a branch's ledger; branch_id routes it (`ledger.credited.GZ01`)."""

    branch_id: str


class Ledger(ChainedAggregate):
    """A branch's rewards and penalties in one period. Written by rewards; read by settlement and the registry."""

    STREAM: ClassVar[str] = "ledger"

    class Opened(ChainedAggregate.Created):
        branch_id: str
        period: str
        currency: str

        def on(self, ledger: Any) -> None:
            ledger.branch_id, ledger.period, ledger.currency = self.branch_id, self.period, self.currency
            ledger.credits, ledger.debits = {}, {}
            ledger.reward_total, ledger.penalty_total = Decimal("0.00"), Decimal("0.00")
            ledger.decided, ledger.settled = False, False

    class Credited(LedgerEvent):
        """The branch reported surplus goods and HQ approved: its reward, with the registry row's facts."""

        report_id: str
        amount: str
        report_ref: str
        reported_by: str
        goods_name: str
        window: str
        clearance_date: str
        category: str | None
        reviewer: str
        reviewed_at: str
        matched_case_id: str | None
        responsible_branches: list[dict[str, str]]
        penalties: list[dict[str, str]]

        def on(self, ledger: Any) -> None:
            ledger.credits[self.report_id] = self
            ledger.reward_total += Decimal(self.amount)

    class Debited(LedgerEvent):
        """The branch is held responsible for a shortage: its share of the penalty."""

        report_id: str
        amount: str
        share: str
        reporting_branch: str
        report_ref: str

        def on(self, ledger: Any) -> None:
            ledger.debits[self.report_id] = self
            ledger.penalty_total += Decimal(self.amount)

    class Decided(LedgerEvent):
        """HQ's decision froze the period: the branch's totals as the registry states them."""

        decided_by: str
        credits: int
        debits: int
        reward_total: str
        penalty_total: str
        net: str

        def on(self, ledger: Any) -> None:
            ledger.decided = True

    class Settled(LedgerEvent):
        """The settlement centre pays out (net reward) or charges (net penalty) the branch."""

        settled_by: str
        kind: str
        amount: str

        def on(self, ledger: Any) -> None:
            ledger.settled = True

    if TYPE_CHECKING:
        branch_id: str
        period: str
        currency: str
        credits: dict[str, Ledger.Credited]
        debits: dict[str, Ledger.Debited]
        reward_total: Decimal
        penalty_total: Decimal
        decided: bool
        settled: bool

    @classmethod
    def open(cls, cause: Cause, branch_id: str, period: str, currency: str) -> Ledger:
        return cls._start(cls.Opened, ledger_id(branch_id, period), cause,
                          branch_id=branch_id, period=period, currency=currency)

    @property
    def net(self) -> Decimal:
        return self.reward_total - self.penalty_total

    def _check_open(self) -> None:
        if self.decided:
            raise PeriodClosed(f"period {self.period} of {self.branch_id} is already decided")

    def credit(self, cause: Cause, report_id: str, amount: Decimal, **row: Any) -> None:
        self._check_open()
        self._record(self.Credited, cause, report_id=report_id, amount=_amount(amount), **row)

    def debit(self, cause: Cause, report_id: str, amount: Decimal, share: str, reporting_branch: str,
              report_ref: str) -> None:
        self._check_open()
        self._record(self.Debited, cause, report_id=report_id, amount=_amount(amount), share=share,
                     reporting_branch=reporting_branch, report_ref=report_ref)

    def decide(self, cause: Cause, decided_by: str) -> None:
        self._check_open()
        self._record(self.Decided, cause, decided_by=decided_by, credits=len(self.credits), debits=len(self.debits),
                     reward_total=_amount(self.reward_total), penalty_total=_amount(self.penalty_total),
                     net=_amount(self.net))

    def settle(self, cause: Cause, settled_by: str) -> None:
        if not self.decided:
            raise RewardsError(f"period {self.period} of {self.branch_id} is not decided")
        if self.settled:
            return
        net = self.net
        kind = "payout" if net > 0 else "charge" if net < 0 else "none"
        self._record(self.Settled, cause, settled_by=settled_by, kind=kind, amount=_amount(abs(net)))


class Claim(ChainedAggregate):
    """A surplus report as rewards knows it: its details, and an approved review that came before them."""

    STREAM: ClassVar[str] = "claim"

    class Opened(ChainedAggregate.Created):
        report_id: str
        details: dict[str, Any] | None
        review: dict[str, Any] | None

        def on(self, claim: Any) -> None:
            claim.report_id, claim.details, claim.review = self.report_id, self.details, self.review

    class DetailsNoted(ChainedAggregate.Event):
        details: dict[str, Any]

        def on(self, claim: Any) -> None:
            claim.details = self.details

    if TYPE_CHECKING:
        report_id: str
        details: dict[str, Any] | None
        review: dict[str, Any] | None

    @classmethod
    def reported(cls, cause: Cause, report_id: UUID, details: dict[str, Any]) -> Claim:
        return cls._start(cls.Opened, claim_id(report_id), cause, report_id=str(report_id), details=details,
                          review=None)

    @classmethod
    def parked(cls, cause: Cause, report_id: UUID, review: dict[str, Any]) -> Claim:
        """The review overtook the report (redelivery reorders): keep it until the details arrive."""
        return cls._start(cls.Opened, claim_id(report_id), cause, report_id=str(report_id), details=None,
                          review=review)

    def note_details(self, cause: Cause, details: dict[str, Any]) -> None:
        self._record(self.DetailsNoted, cause, details=details)


class Book(ChainedAggregate):
    """A rewards period as rewards keeps it: its ledgers, HQ's decision and the settlement."""

    STREAM: ClassVar[str] = "book"

    class Opened(ChainedAggregate.Created):
        period_stream: str
        period: str

        def on(self, book: Any) -> None:
            book.period_stream, book.period, book.branches = self.period_stream, self.period, set()
            book.decision, book.settlement, book.decided, book.settled, book.digest = None, None, False, False, ""

    class Named(ChainedAggregate.Event):
        period: str

        def on(self, book: Any) -> None:
            book.period = self.period

    class LedgerAdded(ChainedAggregate.Event):
        ledger_branch: str

        def on(self, book: Any) -> None:
            book.branches.add(self.ledger_branch)

    class DecisionReceived(ChainedAggregate.Event):
        decided_by: str
        review_count: int
        decided_at: str

        def on(self, book: Any) -> None:
            book.decision = {"decided_by": self.decided_by, "review_count": self.review_count,
                             "decided_at": self.decided_at, "command_id": self.command_id}

    class Decided(ChainedAggregate.Event):
        review_count: int
        reward_total: str
        penalty_total: str
        digest: str

        def on(self, book: Any) -> None:
            book.decided, book.digest = True, self.digest

    class SettlementReceived(ChainedAggregate.Event):
        settled_by: str
        settled_at: str

        def on(self, book: Any) -> None:
            book.settlement = {"settled_by": self.settled_by, "settled_at": self.settled_at,
                               "command_id": self.command_id}

    class Settled(ChainedAggregate.Event):
        payout_total: str
        charge_total: str

        def on(self, book: Any) -> None:
            book.settled = True

    if TYPE_CHECKING:
        period_stream: str
        period: str
        branches: set[str]
        decision: dict[str, Any] | None
        settlement: dict[str, Any] | None
        decided: bool
        settled: bool
        digest: str

    @classmethod
    def open(cls, cause: Cause, period_stream: UUID, period: str) -> Book:
        return cls._start(cls.Opened, book_id(period_stream), cause, period_stream=str(period_stream),
                          period=period)

    def name(self, cause: Cause, period: str) -> None:
        if not self.period:
            self._record(self.Named, cause, period=period)

    def add_ledger(self, cause: Cause, branch_id: str) -> None:
        if branch_id not in self.branches:
            self._record(self.LedgerAdded, cause, ledger_branch=branch_id)

    def receive_decision(self, cause: Cause, decided_by: str, review_count: int, decided_at: str) -> bool:
        if self.decision is not None:
            return False
        self._record(self.DecisionReceived, cause, decided_by=decided_by, review_count=review_count,
                     decided_at=decided_at)
        return True

    def decide(self, cause: Cause, reward_total: Decimal, penalty_total: Decimal, digest: str) -> None:
        if self.decision is None:
            raise RewardsError(f"period {self.period} has no decision to complete")
        self._record(self.Decided, cause, review_count=self.decision["review_count"],
                     reward_total=_amount(reward_total), penalty_total=_amount(penalty_total), digest=digest)

    def receive_settlement(self, cause: Cause, settled_by: str, settled_at: str) -> bool:
        if self.settlement is not None:
            return False
        self._record(self.SettlementReceived, cause, settled_by=settled_by, settled_at=settled_at)
        return True

    def settle(self, cause: Cause, payout_total: Decimal, charge_total: Decimal) -> None:
        self._record(self.Settled, cause, payout_total=_amount(payout_total), charge_total=_amount(charge_total))
